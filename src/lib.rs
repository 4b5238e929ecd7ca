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
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod proto;
#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "client")]
pub mod client;

// Property checks for the fuzz targets and tests/fuzz_regressions.rs only: never in a
// normal build (cargo-fuzz sets `cfg(fuzzing)`; the crate's own tests enable `__fuzz`).
#[cfg(any(fuzzing, feature = "__fuzz"))]
#[doc(hidden)]
pub mod __fuzz;

pub use proto::{
    CloseCode, CloseFrame, Config, Connection, Error, Event, Message, Part, ProtocolError, Role,
    State,
};

#[cfg(feature = "client")]
pub use client::Client;
