//! A WebSocket server on mio: one event loop per thread, driving the sans-IO
//! [`Connection`](crate::Connection).
//!
//! ```no_run
//! use rfc6455::server::{Builder, Context, Handler};
//! use rfc6455::Message;
//!
//! #[derive(Clone)]
//! struct Echo;
//!
//! impl Handler for Echo {
//!     fn message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
//!         let _ = ctx.send(message); // fails only once the connection is closing
//!     }
//! }
//!
//! let server = Builder::new().listen("127.0.0.1:9001").bind(Echo)?;
//! println!("listening on {:?}", server.local_addrs());
//! server.run()?; // until SIGINT/SIGTERM or Handle::shutdown
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # How it works
//!
//! - **One loop per thread, `SO_REUSEPORT` listeners.** Each loop owns its connections
//!   outright (a slab), so nothing on the hot path takes a lock. Each loop binds its own
//!   listening socket to the same address with `SO_REUSEPORT`, and the kernel spreads new
//!   connections across them. This was chosen over one acceptor thread handing sockets to
//!   the loops: no cross-thread hop per connection, no acceptor bottleneck, and a loop that
//!   is busy simply accepts later. (Where `SO_REUSEPORT` is not available the loops share
//!   one listening socket; accepts then race, which is correct, just less even.)
//!   Connection counts for the global and per-IP limits are the only shared state, touched
//!   once at accept and once at close.
//! - **Reads** go into one buffer per loop (64 KiB); [`Connection::read`](crate::Connection::read)
//!   parses in place, so a connection keeps only the bytes of an unfinished frame. A
//!   connection gets at most 16 reads (1 MiB) per turn, then waits behind the loop's other
//!   events, so one fast sender cannot starve its neighbours.
//! - **Writes** are direct: everything one readiness event produces for a connection goes out
//!   in one `write` (a vectored one while the handshake response is still pending); only what
//!   the socket refuses stays queued and `WRITABLE` interest is on only while it does. The loop
//!   lends one transmit buffer to the connection it serves and takes it back once it is
//!   drained, so an idle connection holds no buffer and echoing allocates nothing per message.
//! - **Backpressure**: over [`Limits::write_high_water`] queued bytes the loop stops reading the
//!   peer until the queue drains (except in the middle of a message received in parts that
//!   began under the mark: a peer that writes a whole message before reading would wait for
//!   us as we wait for it); a send, or pongs, that would take the queue over
//!   [`Limits::max_write_queue`] fail the connection with 1008 instead.
//! - **Topics** (publish/subscribe): each loop keeps its own subscriber table (a topic is a
//!   vector of its local subscribers), so subscribing and publishing take no lock. A publish
//!   encodes the frame once ([`SharedFrame`](crate::SharedFrame)): this loop's subscribers get it
//!   when the callback's turn ends, every other loop gets one mailbox command for it, whatever
//!   its number of subscribers. Each subscriber gets everything published to it in a turn in
//!   one write; a frame of 16 KiB or more is queued by reference, never copied per subscriber.
//!   A subscriber whose queue passes [`Limits::max_publish_queue`] is closed with 1008 or
//!   skipped and counted ([`Limits::slow_subscriber`]); a publish never waits for one.
//!   Order: what one connection (or one thread) publishes to a topic reaches every subscriber
//!   in that order; publishes from different sources may interleave differently on different
//!   loops, unless they are made one at a time through [`Handle::publish`] (see
//!   [`Handle::publish_except`]). Topic names are bytes, at most [`MAX_TOPIC_LEN`]; a
//!   connection has at most [`Limits::max_subscriptions`].
//! - **Plain HTTP** on the same port: a request that is not an upgrade goes to
//!   [`Handler::http`] (a page, a health check, an API), its body read first up to
//!   [`Limits::max_http_body`].
//! - **Per-connection state**: [`Context::set_state`] / [`Context::state`] keep one value of
//!   the application's per connection, dropped with it.
//! - **Timers** (handshake, idle, heartbeat, close) live in one binary heap per loop with lazy
//!   deletion: at most one live entry per connection, re-armed when it fires, never touched
//!   per message.
//! - **Closing**: after the close handshake or a failure the close frame is flushed, the write
//!   side is shut down, and the socket lingers, reading and discarding, until the peer's EOF or
//!   [`Timeouts::close`]; only then is it dropped (closing with unread data would send a RST
//!   that can destroy the close frame in flight).
//! - **permessage-deflate** (RFC 7692, feature `deflate`) is off unless
//!   [`Builder::deflate`] turns it on. Then the loop negotiates it from the request's offers,
//!   adds the answer to the handler's [`Accept`](crate::proto::Accept), and calls
//!   [`Connection::shrink_buffers`](crate::Connection::shrink_buffers) whenever a
//!   connection's output has drained, which frees a compressor that keeps no context between
//!   messages.

mod builder;
mod event_loop;
mod handle;
mod handler;
mod options;
mod signals;
mod socket;
mod topics;
mod transport;

pub use builder::{Builder, NoHandler, Server};
pub use handle::{Handle, SendError, TopicStats};
pub use handler::{CloseReason, ConnId, Context, Handler, HttpContext};
pub use options::{Heartbeat, Limits, SlowSubscriber, Timeouts};
pub use topics::{TopicError, MAX_TOPIC_LEN};
