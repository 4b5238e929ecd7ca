//! # rfc6455
//!
//! A WebSocket stack written from RFC 6455 up, in three layers that each work alone:
//!
//! ```text
//!   bytes from any transport                              bytes to any transport
//!            │                                                      ▲
//!  ┌─────────▼──────────────────────────────────────────────────────┴─────────┐
//!  │ proto: the sans-IO core. No sockets, clock, RNG or threads.               │
//!  │   handshake → Connection: frames · masking · close · UTF-8 · limits       │
//!  └─────────▲──────────────────────────────────────────────────────┬─────────┘
//!            │ handle_bytes / read                 poll_event / poll_transmit
//!  ┌─────────┴──────────────────────────────────────────────────────▼─────────┐
//!  │ server (mio, one loop per thread)          client (blocking std::net)    │
//!  └──────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! The core is a state machine the caller drives:
//!
//! ```
//! use rfc6455::{Config, Connection, Event, Message};
//!
//! let mut client = Connection::client(Config::default(), || [1, 2, 3, 4]);
//! let mut server = Connection::server(Config::default());
//!
//! client.send(Message::text("hello")).unwrap();
//! let wire = client.poll_transmit().to_vec();
//! client.consume_transmit(wire.len());
//!
//! server.handle_bytes(&wire).unwrap();
//! match server.poll_event() {
//!     Some(Event::Message(m)) => assert_eq!(m.as_text(), Some("hello")),
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```
//!
//! To put the core under another runtime or event loop, see [`embedding`]: the calling
//! order, each event, timers and backpressure, with a driver on std threads.
//!
//! # Crate map
//!
//! Every protocol rule lives in [`proto`], once; the drivers ([`server`], [`client`]) only
//! move bytes and time. Where each rule is:
//!
//! | rule | where |
//! |---|---|
//! | opening handshake, RFC 6455 §4 | server side [`proto::Request`] (§4.2) answered with [`proto::Accept`] or [`proto::Rejection`]; client side [`proto::ClientHandshake`] (§4.1); [`proto::accept_key`] |
//! | framing, §5.2 | [`proto::FrameHeader`], [`proto::OpCode`]; frames are read and written by [`Connection`] |
//! | masking, §5.3 | [`proto::apply_mask`], [`proto::extend_masked`]; a client's keys come from a [`MaskSource`] |
//! | fragmentation, §5.4 | [`Connection::poll_event`] reassembles; [`Event::Part`] and [`Connection::send_part`] stream a message in parts |
//! | control frames, §5.5 | [`Connection`] answers pings ([`Event::Ping`], [`Connection::ping`], [`Connection::pong`]); [`proto::MAX_CONTROL_PAYLOAD`] |
//! | closing, §7 | [`Connection::close`], [`CloseFrame`], [`CloseCode`]; a peer's error carries its code in [`ProtocolError`] |
//! | UTF-8, §8.1 | [`proto::Utf8Validator`], streaming, used by [`Connection`] for text and close reasons |
//! | limits (§10.4) | [`Config`] |
//! | permessage-deflate, RFC 7692 | [`proto::deflate`]: negotiation and the codec [`Connection::set_deflate`] enables |
//! | sessions: what a handshake agrees applied to the connection | [`proto::ServerSession`] (answers the offers, configures the server's [`Connection`]), [`proto::ClientSession`] (makes the offers, checks the answers) |
//!
//! The connection's types are at the crate root ([`Connection`], [`Config`], [`Event`],
//! [`Message`], the errors and close codes); the rest of the core is in [`proto`].
//!
//! ## Features
//!
//! | feature | default | what it adds | what it pulls in |
//! |---|:-:|---|---|
//! | `server` | yes | `rfc6455::server`: the mio event-loop server with topics | `mio`, `slab`, `socket2`, `signal-hook` |
//! | `client` | yes | `rfc6455::client`: the blocking `Client` and `Reconnect` | `rand` (masks and handshake keys) |
//! | `deflate` | yes | permessage-deflate (RFC 7692) in the core, the server and the client | `flate2` (pure-Rust `zlib-rs` backend) |
//! | `tokio` | no | `rfc6455::tokio`: the core on tokio over any `AsyncRead + AsyncWrite`, server (`accept`) and client (`connect`) roles, `Stream`/`Sink`, split, the core's timers | `tokio` (`net`, `io-util`, `time`, `rt`), `futures-core`, `futures-sink`, `rand` |
//! | `hyper` | no | `rfc6455::tokio::upgrade`: a hyper 1 (or axum) request upgraded to a `WebSocket` | `tokio`, `hyper`, `hyper-util`, `http`, `http-body-util`, `bytes` |
//! | `cli` | yes | only what the `rfc6455` command needs (the library never uses it) | `clap`, `serde_json`, `hmac`, `sha2`, `prometheus-client`, `log`, `env_logger` |
//!
//! [`proto`], the sans-IO core, is always there and needs only `httparse`, `sha1` and `base64`
//! (randomness comes in as a parameter). For just the core:
//!
//! ```toml
//! [dependencies]
//! rfc6455 = { version = "0.1", default-features = false }
//! ```
//!
//! and `features = ["deflate"]` to add compression to it.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod embedding;
pub mod proto;
#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "client")]
pub mod client;

#[cfg(feature = "tls")]
pub mod tls;

#[cfg(feature = "tokio")]
pub mod tokio;

// Property checks for the fuzz targets and tests/fuzz_regressions.rs only: never in a
// normal build (cargo-fuzz sets `cfg(fuzzing)`; the crate's own tests enable `__fuzz`).
#[cfg(any(fuzzing, feature = "__fuzz"))]
#[doc(hidden)]
pub mod __fuzz;

pub use proto::root::{
    CloseCode, CloseFrame, Config, Connection, Error, Event, MaskSource, Message, Part,
    ProtocolError, Role, SharedFrame, State, TimeoutKind, UsageError, MAX_CLOSE_REASON,
    OWNED_SEND_MIN,
};
