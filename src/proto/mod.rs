//! The sans-IO core: no sockets, no clock, no RNG, no threads.
//!
//! Bytes go in through `handle_*`/`read` methods, events and bytes come out through `poll_*`.
//! Everything here builds without the `server` and `client` features.

pub mod close;
pub mod config;
pub mod connection;
#[cfg(feature = "deflate")]
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use config::Config;
pub use connection::{Connection, Event, Message, Part, Role, State, OWNED_SEND_MIN};
pub use error::{Error, ProtocolError, UsageError};
pub use frame::{FrameHeader, OpCode, Status};
#[cfg(feature = "rand")]
pub use handshake::RandomKeys;
pub use handshake::{
    accept_key, format_extensions, parse_extensions, Accept, ClientHandshake, ClientHandshakeError,
    ClientOptions, ExtensionError, ExtensionOffer, HandshakeError, HandshakeLimits, HeaderError,
    KeySource, Rejection, Request, Response, Url, UrlError,
};
pub use mask::apply_mask;
pub use utf8::Utf8Validator;
