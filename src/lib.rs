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
//! ## Features
//!
//! | feature | default | what it adds | what it pulls in |
//! |---|:-:|---|---|
//! | `server` | yes | `rfc6455::server`: the mio event-loop server | `mio`, `slab`, `socket2`, `signal-hook` |
//! | `client` | yes | `rfc6455::client`: the blocking `Client` and `Reconnect` | nothing more (`std::net`) |
//! | `deflate` | yes | permessage-deflate (RFC 7692) in the core, the server and the client | `flate2` (pure-Rust `zlib-rs` backend) |
//!
//! [`proto`], the sans-IO core, is always there and needs only `httparse`, `sha1`, `base64`
//! and `rand`. For just the core:
//!
//! ```toml
//! [dependencies]
//! rfc6455 = { version = "0.1", default-features = false }
//! ```
//!
//! and `features = ["deflate"]` to add compression to it.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod proto;
#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "client")]
pub mod client;

#[doc(hidden)]
pub mod __fuzz;

pub use proto::{
    CloseCode, CloseFrame, Config, Connection, Error, Event, Message, Part, ProtocolError, Role,
    State,
};

#[cfg(feature = "client")]
pub use client::Client;
