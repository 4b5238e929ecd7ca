//! The sans-IO core: no sockets, no clock, no RNG, no threads.
//!
//! Bytes go in through `handle_*`/`read` methods, events and bytes come out through `poll_*`.
//! Everything here builds without the `server` and `client` features.
//!
//! The connection itself and its types are at the crate root ([`Connection`]
//! and the rest); here are the pieces around it: the frame codec ([`FrameHeader`]), masking
//! ([`apply_mask`]), streaming UTF-8 ([`Utf8Validator`]), the opening handshake (RFC 6455 §4:
//! [`Request`] and [`Accept`]/[`Rejection`] for a server, [`ClientHandshake`] for a client),
//! and permessage-deflate in its own module.

// One public path per type. The connection's own types (`Connection`, `Config`, `Event`,
// `Message`, errors, close codes) are at the crate root; the rest of the core is here:
// frame codec, masking, UTF-8, the opening handshake, and `deflate` as a module of its own.
// The submodules are private; the crate's own code may still name the root types through
// `crate::proto::*` (the `pub(crate) use` below).
mod close;
mod config;
pub(crate) mod connection;
#[cfg(feature = "deflate")]
pub mod deflate;
mod error;
mod frame;
mod handshake;
mod mask;
mod shared;
mod utf8;

pub use frame::{
    FrameHeader, OpCode, Status, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, RSV1, RSV2, RSV3,
};
#[cfg(feature = "rand")]
pub use handshake::RandomKeys;
pub use handshake::{
    accept_key, format_extensions, parse_extensions, Accept, ClientHandshake, ClientHandshakeError,
    ClientOptions, ExtensionError, ExtensionOffer, HandshakeError, HandshakeLimits, HeaderError,
    HttpError, HttpRequest, HttpResponse, KeySource, Rejection, Request, Response, Url, UrlError,
};
pub use handshake::{ClientSession, ServerSession, SessionError};
pub use mask::{apply_mask, extend_masked};
pub use utf8::{InvalidUtf8, Utf8Validator};

/// The connection types, public at the crate root (`rfc6455::Connection`, ...).
pub(crate) mod root {
    pub use super::close::{CloseCode, CloseFrame, MAX_CLOSE_REASON};
    pub use super::config::Config;
    pub use super::connection::{
        Connection, Event, MaskSource, Message, Part, Role, State, TimeoutKind, OWNED_SEND_MIN,
    };
    pub use super::error::{Error, ProtocolError, UsageError};
    pub use super::shared::SharedFrame;
}
#[allow(unused_imports)]
pub(crate) use root::*;
