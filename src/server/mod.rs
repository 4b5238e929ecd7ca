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
//!   encodes the frame once ([`SharedFrame`]): this loop's subscribers get it
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
//!   adds the answer to the handler's [`Accept`], and calls
//!   [`Connection::shrink_buffers`](crate::Connection::shrink_buffers) whenever a
//!   connection's output has drained, which frees a compressor that keeps no context between
//!   messages.

mod event_loop;
mod topics;
mod transport;

pub use topics::{TopicError, MAX_TOPIC_LEN};

use crate::proto::{
    Accept, CloseCode, CloseFrame, Config, Error, HandshakeLimits, Message, Part, ProtocolError,
    Rejection, Request,
};
use crate::proto::{HttpRequest, HttpResponse, SharedFrame};
use crate::TimeoutKind;
use event_loop::{Command, DeflateOption, EventLoop, Local, Publication, Shared, TlsOption};
use std::any::Any;
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// The application's side of the server: one value per loop thread (each gets a clone), so
/// it can keep per-thread state without locks.
///
/// Every callback gets a [`Context`] for the connection concerned.
pub trait Handler: Send + 'static {
    /// A valid handshake request arrived. Return the `101` response to accept (the default
    /// accepts with no subprotocol: `Ok(request.accept())`; pick one with
    /// `request.accept().protocol("chat")`), or a [`Rejection`] such as
    /// `Rejection::new(403)` to refuse. Messages sent through `ctx` here go out right after
    /// the `101`.
    fn open(&mut self, ctx: &mut Context<'_>, request: &Request) -> Result<Accept, Rejection> {
        let _ = ctx;
        Ok(request.accept())
    }

    /// A plain HTTP request (not a WebSocket upgrade) arrived on the same port: a page, a
    /// health check, an API call. Return the response, or `None` (the default) to answer as
    /// to a failed handshake (`426 Upgrade Required`, or `405` for a method other than GET).
    ///
    /// The body is read first, up to [`Limits::max_http_body`] (`413` over it, read no
    /// further). The response always ends the connection (`Connection: close`). This runs on
    /// the loop's thread: answer quickly.
    fn http(&mut self, ctx: &mut HttpContext<'_>, request: &HttpRequest) -> Option<HttpResponse> {
        let _ = (ctx, request);
        None
    }

    /// A complete text or binary message. It borrows the loop's read buffer where it can:
    /// call [`Message::into_owned`] to keep it.
    fn message(&mut self, ctx: &mut Context<'_>, message: Message<'_>);

    /// A piece of a large binary message, as it arrives: only when the server's
    /// [`Config::stream_binary_from`] is set (see [`Part`] for the order). Pass it on with
    /// [`Context::send_part`] to relay or echo the message without collecting it.
    ///
    /// The default closes the connection with 1011 (internal error): a server that asks
    /// for parts must take them.
    fn part(&mut self, ctx: &mut Context<'_>, part: Part<'_>) {
        let _ = part;
        let _ = ctx.close(
            CloseCode::INTERNAL_ERROR,
            "this server cannot take messages in parts",
        );
    }

    /// The connection ended, for `reason`. Called exactly once for every connection that
    /// [`open`](Self::open) accepted; nothing can be sent any more.
    fn close(&mut self, ctx: &mut Context<'_>, reason: CloseReason<'_>) {
        let _ = (ctx, reason);
    }
}

/// Identifies one connection of a [`Server`], unique across its threads: a stale id (of a
/// connection that has gone) never reaches a later connection that reuses its slot.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    thread: u32,
    slot: u32,
    generation: u32,
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnId({self})")
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.thread, self.slot, self.generation)
    }
}

/// Why a connection ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum CloseReason<'a> {
    /// The close handshake finished; this is the peer's close frame (`None` when it carried
    /// no code, which reads as 1005). Either side may have started it.
    Closed(Option<CloseFrame<'a>>),
    /// The peer broke the protocol or a [`Config`] limit; a close frame with the matching
    /// code (1002, 1007, 1009) was sent.
    Protocol(ProtocolError),
    /// The TCP connection ended or failed before the close handshake finished (1006).
    Lost,
    /// The peer did not answer in time.
    Timeout(TimeoutKind),
    /// A send, or the pongs the core answers pings with, would have taken the write queue
    /// over [`Limits::max_write_queue`]: the peer does not read fast enough. The connection
    /// was failed with 1008.
    Overflow {
        /// Bytes that were queued then (messages held behind a message sent in parts
        /// included); a refused send is not among them, so this may be under `limit`.
        queued: usize,
        /// The limit.
        limit: usize,
    },
}

/// For logs: `closed: 1000 (normal closure)`, `lost: ...`, `timed out: ...`.
impl fmt::Display for CloseReason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Closed(Some(frame)) => write!(f, "closed: {frame}"),
            CloseReason::Closed(None) => f.write_str("closed: no status code"),
            CloseReason::Protocol(e) => write!(f, "failed: {e}; closed with {}", e.close_code()),
            CloseReason::Lost => {
                f.write_str("lost: the TCP connection ended before the close handshake (1006)")
            }
            CloseReason::Timeout(TimeoutKind::Idle) => {
                f.write_str("timed out: no message within the idle timeout")
            }
            CloseReason::Timeout(TimeoutKind::Heartbeat) => {
                f.write_str("timed out: no answer to a heartbeat ping")
            }
            CloseReason::Timeout(TimeoutKind::Close) => {
                f.write_str("timed out: no answer to our close frame")
            }
            CloseReason::Overflow { queued, limit } => write!(
                f,
                "failed: the peer does not read ({queued} bytes queued for it, limit {limit}); \
                 closed with {}",
                CloseCode::POLICY_VIOLATION
            ),
        }
    }
}

/// The connection a [`Handler`] callback is about.
pub struct Context<'a> {
    id: ConnId,
    peer: SocketAddr,
    conn: &'a mut crate::Connection,
    handle: &'a Handle,
    max_write_queue: usize,
    overflow: &'a mut bool,
    /// The socket, when a large message may be written to it at once (nothing of the HTTP
    /// response is still waiting, and the handler was called from reading).
    /// With TLS, the transport encrypts it into rustls' buffer instead.
    direct: Option<&'a mut transport::Transport>,
    /// The loop's topics, per-connection states and publishes to deliver.
    local: &'a mut Local,
}

impl Context<'_> {
    /// This connection's id, for [`Handle::send`] from elsewhere.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Queues a message; it is written when the callback returns. Fails with
    /// [`Error::Closed`] once the connection is closing, and when the write queue would go
    /// over [`Limits::max_write_queue`] (the connection is then failed with 1008 and
    /// [`Handler::close`] gets [`CloseReason::Overflow`]).
    pub fn send(&mut self, message: Message<'_>) -> Result<(), Error> {
        if self.would_overflow(message.len()) {
            return Err(Error::Closed);
        }
        // A message of 16 KiB or more is written from where it lies, not copied: an owned
        // one (it arrived in pieces, or it is a `Vec` of yours) is queued as it is; a borrowed
        // one (straight from the read buffer) goes to the socket now, with whatever is queued
        // ahead of it, and only what the socket does not take is copied.
        match self.direct.as_deref_mut() {
            Some(transport) => self.conn.send_through(message, |pieces| {
                io::Write::write_vectored(transport, pieces)
            }),
            None => self.conn.send_owned(message),
        }
    }

    /// Sends the next part of a binary message, as
    /// [`Connection::send_part`](crate::Connection::send_part) does: the first call starts the
    /// message, `last` ends it, and messages sent meanwhile wait for its end. Parts are copied into the write queue and go out when the callback's readiness turn
    /// ends, with the parts of the other reads of that turn: fewer, larger writes. (Writing
    /// each part from the read buffer at once, as `send` does, was slower with 1 MiB
    /// messages, each small write paced by the kernel: see benches/LOAD.md in the
    /// repository.) Fails like [`send`](Self::send).
    ///
    /// ```
    /// use rfc6455::server::{Context, Handler};
    /// use rfc6455::{Message, Part};
    ///
    /// /// Echoes every message; large binary ones as they arrive, when the server's
    /// /// `Config::stream_binary_from` asks for parts.
    /// #[derive(Clone)]
    /// struct Echo;
    ///
    /// impl Handler for Echo {
    ///     fn message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
    ///         let _ = ctx.send(message);
    ///     }
    ///     fn part(&mut self, ctx: &mut Context<'_>, part: Part<'_>) {
    ///         let _ = ctx.send_part(&part.data, part.last);
    ///     }
    /// }
    /// ```
    pub fn send_part(&mut self, data: &[u8], last: bool) -> Result<(), Error> {
        if self.would_overflow(data.len()) {
            return Err(Error::Closed);
        }
        self.conn.send_part(data, last)
    }

    /// Whether `len` more bytes would take the write queue (held messages included) over
    /// `max_write_queue`; if so, marks the connection to be failed with 1008.
    fn would_overflow(&mut self, len: usize) -> bool {
        if *self.overflow {
            return true;
        }
        if self.conn.transmit_len() + self.conn.held_len() + len > self.max_write_queue {
            *self.overflow = true;
        }
        *self.overflow
    }

    /// Queues a text message (see [`send`](Self::send)).
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.send(Message::text(text))
    }

    /// Queues a binary message (see [`send`](Self::send)).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.send(Message::binary(data))
    }

    /// Starts the close handshake; [`Handler::close`] follows when the peer answers (or
    /// [`Timeouts::close`] passes).
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.conn.close(code, reason)
    }

    /// Bytes queued for this connection that the socket has not taken yet.
    pub fn queued(&self) -> usize {
        self.conn.transmit_len()
    }

    /// A handle to reach other connections (on any thread) or stop the server.
    pub fn handle(&self) -> &Handle {
        self.handle
    }

    // -------------------------------------------------------------------------- topics

    /// Subscribes this connection to `topic` (any bytes, at most [`MAX_TOPIC_LEN`]):
    /// from now on it receives what is [published](Self::publish) to it, from any loop or
    /// thread. `Ok(false)` if it already was. The subscription ends with the connection.
    /// Fails over [`Limits::max_subscriptions`] topics for one connection.
    pub fn subscribe(&mut self, topic: impl AsRef<[u8]>) -> Result<bool, TopicError> {
        let max = self.local.max_subscriptions;
        self.local
            .topics
            .subscribe(self.id.slot as usize, topic.as_ref(), max)
    }

    /// Ends this connection's subscription to `topic`; `false` if it had none.
    pub fn unsubscribe(&mut self, topic: impl AsRef<[u8]>) -> bool {
        self.local
            .topics
            .unsubscribe(self.id.slot as usize, topic.as_ref())
    }

    /// Whether this connection is subscribed to `topic`.
    pub fn is_subscribed(&self, topic: impl AsRef<[u8]>) -> bool {
        self.local
            .topics
            .is_subscribed(self.id.slot as usize, topic.as_ref())
    }

    /// Sends `message` to every subscriber of `topic` on every loop, this connection
    /// included if it is subscribed. The frame is encoded once and shared by all of them
    /// (see [`SharedFrame`]); each other loop gets one command for it, whatever its number of
    /// subscribers.
    ///
    /// Subscribers on this loop get it when the callback returns, after what the callback
    /// sent them directly; subscribers on other loops when their loop next looks at its
    /// mailbox. Messages one connection publishes to a topic reach every subscriber in the
    /// order published. Fails with [`SendError::Full`] when another loop's mailbox is full:
    /// that loop's subscribers miss the message (the others get it).
    pub fn publish(
        &mut self,
        topic: impl AsRef<[u8]>,
        message: Message<'_>,
    ) -> Result<(), SendError> {
        self.publish_frame(topic.as_ref(), SharedFrame::new(&message), None)
    }

    /// [`publish`](Self::publish), leaving this connection out.
    pub fn publish_to_others(
        &mut self,
        topic: impl AsRef<[u8]>,
        message: Message<'_>,
    ) -> Result<(), SendError> {
        let except = Some(self.id);
        self.publish_frame(topic.as_ref(), SharedFrame::new(&message), except)
    }

    fn publish_frame(
        &mut self,
        topic: &[u8],
        frame: SharedFrame,
        except: Option<ConnId>,
    ) -> Result<(), SendError> {
        let publication = Arc::new(Publication {
            topic: topic.into(),
            frame,
            except,
        });
        self.local.pending.push(publication.clone());
        self.handle
            .publish_to_loops(publication, Some(self.id.thread))
    }

    // ------------------------------------------------------------------ per-connection state

    /// This connection's application state, if [`set_state`](Self::set_state) stored one
    /// of type `T`. The server keeps one value per connection and drops it when the
    /// connection is gone (after [`Handler::close`]), so a handler needs no map of its own
    /// keyed by [`ConnId`].
    ///
    /// ```
    /// use rfc6455::proto::{Accept, Rejection, Request};
    /// use rfc6455::server::{CloseReason, Context, Handler};
    /// use rfc6455::Message;
    ///
    /// struct User { nick: String, messages: u64 }
    ///
    /// #[derive(Clone)]
    /// struct Chat;
    ///
    /// impl Handler for Chat {
    ///     fn open(&mut self, ctx: &mut Context<'_>, request: &Request) -> Result<Accept, Rejection> {
    ///         let nick = request.query().unwrap_or("anonymous").to_owned();
    ///         ctx.set_state(User { nick, messages: 0 });
    ///         let _ = ctx.subscribe("lobby");
    ///         Ok(request.accept())
    ///     }
    ///     fn message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
    ///         let Some(user) = ctx.state::<User>() else { return };
    ///         user.messages += 1;
    ///         let line = format!("{}: {}", user.nick, message.as_text().unwrap_or("(binary)"));
    ///         let _ = ctx.publish("lobby", Message::text(line));
    ///     }
    ///     fn close(&mut self, ctx: &mut Context<'_>, _: CloseReason<'_>) {
    ///         if let Some(user) = ctx.state::<User>() {
    ///             let line = format!("{} left after {} messages", user.nick, user.messages);
    ///             let _ = ctx.publish_to_others("lobby", Message::text(line));
    ///         }
    ///     }
    /// }
    /// ```
    pub fn state<T: Send + 'static>(&mut self) -> Option<&mut T> {
        self.local
            .states
            .get_mut(&self.id.slot)
            .and_then(|b| b.downcast_mut::<T>())
    }

    /// Stores this connection's application state (replacing any value, of any type).
    pub fn set_state<T: Send + 'static>(&mut self, value: T) {
        self.local
            .states
            .insert(self.id.slot, Box::new(value) as Box<dyn Any + Send>);
    }

    /// Takes this connection's state out, if it is a `T`.
    pub fn take_state<T: Send + 'static>(&mut self) -> Option<T> {
        let boxed = self.local.states.remove(&self.id.slot)?;
        match boxed.downcast::<T>() {
            Ok(value) => Some(*value),
            Err(other) => {
                self.local.states.insert(self.id.slot, other);
                None
            }
        }
    }
}

/// What a [`Handler::http`] call can reach besides the request.
pub struct HttpContext<'a> {
    peer: SocketAddr,
    handle: &'a Handle,
}

impl HttpContext<'_> {
    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// A handle to publish, send to connections or stop the server.
    pub fn handle(&self) -> &Handle {
        self.handle
    }
}

/// Sends to connections and stops the server from any thread. Cheap to clone.
///
/// Each loop has a bounded mailbox ([`Limits::mailbox`] commands) and a `mio::Waker`.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

/// Why [`Handle::send`] or [`Handle::close`] could not queue a command.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The loop's mailbox is full: it is behind. Retry later, or drop the message.
    Full,
    /// The server has stopped (or the id belongs to no loop of this server).
    Stopped,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full => f.write_str(
                "the event loop's mailbox is full; retry later or raise Limits::mailbox",
            ),
            SendError::Stopped => f.write_str("the server has stopped"),
        }
    }
}

impl std::error::Error for SendError {}

impl Handle {
    /// Queues `message` for connection `id` (copying it). A message for a connection that
    /// has gone, or is closing, is dropped silently: ids may go stale at any moment.
    pub fn send(&self, id: ConnId, message: Message<'_>) -> Result<(), SendError> {
        self.command(id.thread, Command::Send(id, message.into_owned()))
    }

    /// Sends `message` to every subscriber of `topic` on every loop (see
    /// [`Context::publish`]): the frame is encoded once here and each loop gets one command.
    /// Messages published from one thread to a topic reach every subscriber in the order
    /// published. Fails with [`SendError::Full`] if a loop's mailbox is full (that loop's
    /// subscribers miss it; the others get it).
    pub fn publish(&self, topic: impl AsRef<[u8]>, message: Message<'_>) -> Result<(), SendError> {
        self.publish_from(topic.as_ref(), &message, None)
    }

    /// [`publish`](Self::publish), leaving connection `except` out (the one that caused it,
    /// say).
    ///
    /// Every loop's mailbox is first in, first out, so publishes made one at a time through
    /// handles (under a lock of the application's, for instance) reach every subscriber on
    /// every loop in that one order. ([`Context::publish`] delivers to its own loop's
    /// subscribers without the mailbox: faster, but only ordered per publisher.)
    pub fn publish_except(
        &self,
        topic: impl AsRef<[u8]>,
        message: Message<'_>,
        except: ConnId,
    ) -> Result<(), SendError> {
        self.publish_from(topic.as_ref(), &message, Some(except))
    }

    fn publish_from(
        &self,
        topic: &[u8],
        message: &Message<'_>,
        except: Option<ConnId>,
    ) -> Result<(), SendError> {
        let publication = Arc::new(Publication {
            topic: topic.into(),
            frame: SharedFrame::new(message),
            except,
        });
        self.publish_to_loops(publication, None)
    }

    /// Counts of what topics did, over every loop, since the server started.
    pub fn topic_stats(&self) -> TopicStats {
        let mut total = TopicStats::default();
        for stats in &self.shared.stats {
            let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            total.delivered += get(&stats.delivered);
            total.delivered_bytes += get(&stats.delivered_bytes);
            total.dropped += get(&stats.dropped);
            total.slow_closed += get(&stats.slow_closed);
            total.missed += get(&stats.missed);
        }
        total
    }

    /// Hands `publication` to every loop but `skip` (which delivers it itself).
    fn publish_to_loops(
        &self,
        publication: Arc<Publication>,
        skip: Option<u32>,
    ) -> Result<(), SendError> {
        let mut result = Ok(());
        for (i, mailbox) in self.shared.mailboxes.iter().enumerate() {
            if skip == Some(i as u32) {
                continue;
            }
            match mailbox.tx.try_send(Command::Publish(publication.clone())) {
                Ok(()) => {
                    let _ = mailbox.waker.wake();
                }
                Err(TrySendError::Full(_)) => {
                    self.shared.stats[i].missed.fetch_add(1, Ordering::Relaxed);
                    result = Err(SendError::Full);
                }
                Err(TrySendError::Disconnected(_)) => {
                    if result.is_ok() {
                        result = Err(SendError::Stopped);
                    }
                }
            }
        }
        result
    }

    /// Starts the close handshake with connection `id`.
    pub fn close(&self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), SendError> {
        self.command(id.thread, Command::Close(id, code, reason.to_owned()))
    }

    /// Stops the server gracefully: stop accepting, send 1001 to every peer after what is
    /// already queued for it, wait up to [`Timeouts::close`] for their replies, then make
    /// [`Server::run`] return. Idempotent.
    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for mailbox in &self.shared.mailboxes {
            // A loop that has exited no longer needs waking.
            let _ = mailbox.waker.wake();
        }
    }

    fn command(&self, thread: u32, command: Command) -> Result<(), SendError> {
        let mailbox = self
            .shared
            .mailboxes
            .get(thread as usize)
            .ok_or(SendError::Stopped)?;
        match mailbox.tx.try_send(command) {
            Ok(()) => {
                let _ = mailbox.waker.wake();
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(SendError::Full),
            Err(TrySendError::Disconnected(_)) => Err(SendError::Stopped),
        }
    }
}

/// What topics did, from [`Handle::topic_stats`].
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicStats {
    /// Published messages queued to a subscriber.
    pub delivered: u64,
    /// Their bytes on the wire (frame headers included).
    pub delivered_bytes: u64,
    /// Published messages not queued to a slow subscriber ([`SlowSubscriber::Drop`]).
    pub dropped: u64,
    /// Subscribers closed for being slow ([`SlowSubscriber::Close`]).
    pub slow_closed: u64,
    /// Publishes a loop missed because its mailbox was full.
    pub missed: u64,
}

/// What happens to a subscriber whose queue is over [`Limits::max_publish_queue`] when a
/// message is published to it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlowSubscriber {
    /// Fail the connection with 1008 ([`CloseReason::Overflow`]). The default: a
    /// subscriber that misses messages silently is worse than one that reconnects.
    #[default]
    Close,
    /// Skip the message for this subscriber and count it ([`TopicStats::dropped`]).
    Drop,
}

/// Time limits. Start from [`Timeouts::default`] and change fields.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// A client must complete its handshake request within this. Default 10 s.
    pub handshake: Duration,
    /// Close a connection (1001, "idle timeout") when no data message arrived for this long.
    /// Default off.
    pub idle: Option<Duration>,
    /// Ping quiet peers, drop those that do not answer. Default every 30 s, 10 s to answer.
    pub heartbeat: Option<Heartbeat>,
    /// How long to wait for the peer's close frame after sending one, and then for its EOF
    /// after shutting down the write side. Default 5 s.
    pub close: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            handshake: Duration::from_secs(10),
            idle: None,
            heartbeat: Some(Heartbeat::default()),
            close: Duration::from_secs(5),
        }
    }
}

/// Heartbeat: a ping after `interval` without a byte from the peer; the connection fails
/// (1001, "heartbeat timeout") if nothing arrives within `timeout` after it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Heartbeat {
    /// Quiet time before a ping. Default 30 s.
    pub interval: Duration,
    /// Time to answer it. Default 10 s.
    pub timeout: Duration,
}

impl Heartbeat {
    /// A heartbeat with these times.
    pub fn new(interval: Duration, timeout: Duration) -> Heartbeat {
        Heartbeat { interval, timeout }
    }
}

impl Default for Heartbeat {
    fn default() -> Heartbeat {
        Heartbeat::new(Duration::from_secs(30), Duration::from_secs(10))
    }
}

/// Resource limits. Start from [`Limits::default`] and change fields. Message and frame
/// sizes are in [`Config`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Connections open at once (handshaking included), over all threads. More are answered
    /// `503 Service Unavailable` and closed. Default 10 000.
    pub max_connections: usize,
    /// Connections open at once from one IP address. More are answered
    /// `429 Too Many Requests` and closed. Default off (`usize::MAX`).
    pub max_connections_per_ip: usize,
    /// The handshake request head's size and header count (431 over them). Default 8 KiB, 64.
    pub handshake: HandshakeLimits,
    /// Stop reading a peer while this many bytes wait for it. Default 1 MiB.
    pub write_high_water: usize,
    /// A send that would queue more than this for one connection fails it (1008), and so do
    /// pongs the core queues on its own. It must leave room for the largest message you echo
    /// or send. Default 80 MiB (a 64 MiB message with room to spare).
    pub max_write_queue: usize,
    /// Commands ([`Handle::send`], [`Handle::close`], publishes from other loops and
    /// threads) waiting per loop. Default 65 536.
    pub mailbox: usize,
    /// A published message is not queued to a subscriber that already has this many bytes
    /// waiting for it: [`slow_subscriber`](Self::slow_subscriber) says what happens instead.
    /// Default 1 MiB.
    pub max_publish_queue: usize,
    /// What happens to a subscriber over [`max_publish_queue`](Self::max_publish_queue).
    /// Default [`SlowSubscriber::Close`].
    pub slow_subscriber: SlowSubscriber,
    /// Topics one connection may subscribe to. Default 1024.
    pub max_subscriptions: usize,
    /// The largest body of a plain HTTP request (see [`Handler::http`]); a larger one is
    /// answered `413` before it is read. Default 64 KiB.
    pub max_http_body: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 10_000,
            max_connections_per_ip: usize::MAX,
            handshake: HandshakeLimits::default(),
            write_high_water: 1 << 20,
            max_write_queue: 80 << 20,
            mailbox: 1 << 16,
            max_publish_queue: 1 << 20,
            slow_subscriber: SlowSubscriber::Close,
            max_subscriptions: 1024,
            max_http_body: 64 << 10,
        }
    }
}

/// Collects the options of a [`Server`]; [`bind`](Self::bind) opens the listeners.
#[derive(Clone, Debug)]
pub struct Builder {
    addrs: Vec<String>,
    tls_addrs: Vec<String>,
    tls: TlsOption,
    config: Config,
    threads: usize,
    timeouts: Timeouts,
    limits: Limits,
    signals: bool,
    deflate: DeflateOption,
    congestion: Option<String>,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// A builder with the defaults: no address yet, [`Config::default`], one thread per
    /// core, [`Timeouts::default`], [`Limits::default`], signals handled, no compression,
    /// the system's TCP congestion control.
    pub fn new() -> Builder {
        Builder {
            addrs: Vec::new(),
            tls_addrs: Vec::new(),
            tls: TlsOption::default(),
            config: Config::default(),
            threads: 0,
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            signals: true,
            deflate: DeflateOption::default(),
            congestion: None,
        }
    }

    /// Adds an address to listen on (`"127.0.0.1:9001"`, `"[::]:80"`; port 0 picks one:
    /// see [`Server::local_addrs`]). Call it once per address.
    pub fn listen(mut self, addr: impl Into<String>) -> Builder {
        self.addrs.push(addr.into());
        self
    }

    /// Adds an address to listen on with TLS (`wss://`, and `https://` for
    /// [`Handler::http`]); it needs [`tls`](Self::tls). Plain and TLS addresses can be
    /// mixed: handlers and topics see no difference (one topic reaches subscribers of both).
    #[cfg(feature = "tls")]
    pub fn listen_tls(mut self, addr: impl Into<String>) -> Builder {
        self.tls_addrs.push(addr.into());
        self
    }

    /// The certificate and TLS settings of the [`listen_tls`](Self::listen_tls) addresses:
    /// usually [`TlsConfig::from_pem_files`](crate::tls::TlsConfig::from_pem_files). The
    /// TLS handshake runs in the loop, sans-IO (rustls reads and writes through the same
    /// non-blocking socket), within [`Timeouts::handshake`] together with the HTTP upgrade.
    /// With signals on ([`shutdown_on_signals`](Self::shutdown_on_signals)), SIGHUP reloads
    /// the certificate and key files ([`TlsConfig::reload`](crate::tls::TlsConfig::reload)):
    /// open connections are kept; a bad new pair is refused with a line on stderr and the
    /// old one stays.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: crate::tls::TlsConfig) -> Builder {
        self.tls = Some(config);
        self
    }

    /// The core's limits and options for every connection.
    pub fn config(mut self, config: Config) -> Builder {
        self.config = config;
        self
    }

    /// Event loop threads. Default: the number of cores. 0 means the default.
    pub fn threads(mut self, threads: usize) -> Builder {
        self.threads = threads;
        self
    }

    /// Time limits and heartbeat.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Builder {
        self.timeouts = timeouts;
        self
    }

    /// Resource limits.
    pub fn limits(mut self, limits: Limits) -> Builder {
        self.limits = limits;
        self
    }

    /// Offers permessage-deflate (RFC 7692) to clients that ask for it, negotiated with
    /// `config` ([`DeflateConfig::server_negotiate`](crate::proto::deflate::DeflateConfig::server_negotiate)):
    /// the first acceptable offer of the request is answered in the `101` (appended to the
    /// extensions the handler's [`Accept`] names, if any) and the connection compresses and
    /// decompresses from then on. Clients that do not offer it, or offer only parameters
    /// this server declines, get a connection without it. (With this set, a handler must not
    /// answer `permessage-deflate` itself.)
    ///
    /// **Off by default**, for memory: without it an idle connection costs about 0.2 KiB of
    /// the core's state; with it, a connection busy with messages holds a compressor and a
    /// decompressor (about 425 KiB at 15 window bits). What an *idle* connection keeps
    /// depends on context takeover: with [`DeflateConfig::default`](crate::proto::deflate::DeflateConfig::default)
    /// (`server_no_context_takeover`) the compressor is freed once the connection's output
    /// drains and about 47 KiB (the client-to-server inflater's window) remain; setting
    /// `client_no_context_takeover` too brings it under 1 KiB at some cost in ratio; with
    /// context takeover both ways it is about 418 KiB. 10 000 idle connections: 2 MiB without
    /// deflate, 470 MiB with the default config, 4 GiB with context takeover both ways.
    ///
    /// ```no_run
    /// use rfc6455::proto::deflate::DeflateConfig;
    /// use rfc6455::server::Builder;
    /// # #[derive(Clone)] struct Echo;
    /// # impl rfc6455::server::Handler for Echo {
    /// #     fn message(&mut self, _: &mut rfc6455::server::Context<'_>, _: rfc6455::Message<'_>) {}
    /// # }
    /// let mut deflate = DeflateConfig::default();
    /// deflate.client_no_context_takeover = true; // idle connections < 1 KiB
    /// let server = Builder::new().listen("127.0.0.1:9001").deflate(deflate).bind(Echo)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(feature = "deflate")]
    pub fn deflate(mut self, config: crate::proto::deflate::DeflateConfig) -> Builder {
        self.deflate = Some(config);
        self
    }

    /// Whether [`Server::run`] shuts down gracefully on SIGINT and SIGTERM (a second signal
    /// exits at once with status 130). Default on; turn it off when embedding the server.
    pub fn shutdown_on_signals(mut self, on: bool) -> Builder {
        self.signals = on;
        self
    }

    /// The TCP congestion control algorithm for every accepted connection (`"reno"`,
    /// `"cubic"`, `"bbr"`; Linux and FreeBSD), set once on each listening socket, which its
    /// connections inherit. Default: the system's (`net.ipv4.tcp_congestion_control`).
    ///
    /// Worth setting when clients are on the same host, such as a reverse proxy in front of
    /// the server: BBR, a common system default, paces its sending to a modelled bottleneck
    /// bandwidth, and over loopback that model is noise (round trips of microseconds) and the
    /// pacing only adds timer waits: 1 MiB echoes over loopback go markedly faster with
    /// `"reno"` than with the system's BBR (the measurements are in benches/LOAD.md in the
    /// repository). Over real networks keep the system's choice.
    ///
    /// [`bind`](Self::bind) fails if the kernel refuses the name: unknown algorithms are not
    /// in `/proc/sys/net/ipv4/tcp_available_congestion_control`, and without
    /// `CAP_NET_ADMIN` only those in `tcp_allowed_congestion_control` may be chosen (`reno`
    /// always is).
    ///
    /// ```no_run
    /// use rfc6455::server::Builder;
    /// # #[derive(Clone)] struct Echo;
    /// # impl rfc6455::server::Handler for Echo {
    /// #     fn message(&mut self, _: &mut rfc6455::server::Context<'_>, _: rfc6455::Message<'_>) {}
    /// # }
    /// // Behind a proxy on the same host:
    /// let server = Builder::new().listen("127.0.0.1:9001").tcp_congestion("reno").bind(Echo)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn tcp_congestion(mut self, algorithm: impl Into<String>) -> Builder {
        self.congestion = Some(algorithm.into());
        self
    }

    /// Binds every listen address on every loop thread; each thread's handler is a clone of
    /// `handler`. Fails if there is no address, an address does not resolve, or a bind
    /// fails (in use, even by another server that also sets `SO_REUSEPORT`; no permission;
    /// not an address of this machine).
    pub fn bind<H: Handler + Clone>(self, handler: H) -> io::Result<Server<H>> {
        if self.addrs.is_empty() && self.tls_addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no listen address: call Builder::listen(\"127.0.0.1:9001\") first",
            ));
        }
        #[cfg(feature = "tls")]
        if !self.tls_addrs.is_empty() && self.tls.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TLS listen address without a certificate: call Builder::tls(TlsConfig::\
                 from_pem_files(cert, key)?) too",
            ));
        }
        let threads = if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.threads
        };
        let mut resolved = Vec::new();
        let secure = self.addrs.iter().map(|a| (a, false));
        for (addr, secure) in secure.chain(self.tls_addrs.iter().map(|a| (a, true))) {
            let found = addr.to_socket_addrs().map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot resolve listen address {addr}: {e}"),
                )
            })?;
            resolved.extend(found.map(|a| (a, secure)));
        }
        // listeners[thread][address]
        let mut listeners: Vec<Vec<(StdListener, bool)>> =
            (0..threads).map(|_| Vec::new()).collect();
        let mut local_addrs = Vec::new();
        let mut tls_addrs = Vec::new();
        for (addr, secure) in resolved {
            let congestion = self.congestion.as_deref();
            #[cfg(unix)]
            check_port_free(addr)?;
            let first = bind_listener(addr, congestion)?;
            let actual = first.local_addr()?;
            local_addrs.push(actual);
            if secure {
                tls_addrs.push(actual);
            }
            for per_thread in listeners.iter_mut().skip(1) {
                per_thread.push((another_listener(&first, actual, congestion)?, secure));
            }
            listeners[0].push((first, secure));
        }
        let mut loops = Vec::with_capacity(threads);
        let mut mailboxes = Vec::with_capacity(threads);
        let mut receivers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let poll = mio::Poll::new()?;
            let waker = mio::Waker::new(poll.registry(), event_loop::WAKER)?;
            let (tx, rx) = mpsc::sync_channel(self.limits.mailbox.max(1));
            mailboxes.push(event_loop::Mailbox { tx, waker });
            receivers.push((poll, rx));
        }
        let shared = Arc::new(Shared::new(mailboxes, threads));
        let handle = Handle { shared };
        for (index, ((poll, rx), listeners)) in receivers.into_iter().zip(listeners).enumerate() {
            loops.push(EventLoop::new(
                index as u32,
                poll,
                rx,
                listeners,
                self.tls.clone(),
                handler.clone(),
                handle.clone(),
                self.config.clone(),
                self.timeouts.clone(),
                self.limits.clone(),
                self.deflate.clone(),
            )?);
        }
        Ok(Server {
            loops,
            handle,
            local_addrs,
            tls_addrs,
            tls: self.tls,
            signals: self.signals,
        })
    }
}

/// The same address for another loop: its own socket with `SO_REUSEPORT` on Unix, so the
/// kernel spreads connections; elsewhere the first socket, shared.
fn another_listener(
    first: &StdListener,
    addr: SocketAddr,
    congestion: Option<&str>,
) -> io::Result<StdListener> {
    #[cfg(unix)]
    {
        let _ = first;
        bind_listener(addr, congestion)
    }
    #[cfg(not(unix))]
    {
        let _ = (addr, congestion);
        first.try_clone()
    }
}

/// A listening socket with `SO_REUSEADDR` and (on Unix) `SO_REUSEPORT`, non-blocking, and
/// the congestion control its connections inherit, if one was chosen.
fn bind_listener(addr: SocketAddr, congestion: Option<&str>) -> io::Result<StdListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    if let Some(name) = congestion {
        set_congestion(&socket, name)?;
    }
    socket
        .bind(&addr.into())
        .map_err(|e| listen_error(addr, e))?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// With `SO_REUSEPORT` a second server of the same user may bind a port this one listens on,
/// and the kernel then gives it part of the connections without a word. A plain socket
/// (`SO_REUSEADDR` only, so connections in TIME_WAIT do not count) binds only where nothing
/// listens: bound and dropped first, it makes "in use" an error again.
#[cfg(unix)]
fn check_port_free(addr: SocketAddr) -> io::Result<()> {
    use socket2::{Domain, Protocol, Socket, Type};
    if addr.port() == 0 {
        return Ok(()); // the system picks a free one
    }
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into()).map_err(|e| listen_error(addr, e))
}

/// A bind error that says which address, and what to check for the common causes.
fn listen_error(addr: SocketAddr, e: io::Error) -> io::Error {
    let hint = match e.kind() {
        io::ErrorKind::AddrInUse => " (is another server using the port?)",
        io::ErrorKind::AddrNotAvailable => " (is the address one of this machine's?)",
        io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges)",
        _ => "",
    };
    io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}{hint}"))
}

/// Sets `TCP_CONGESTION`, saying what to do when the kernel refuses it.
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
fn set_congestion(socket: &socket2::Socket, name: &str) -> io::Result<()> {
    socket.set_tcp_congestion(name.as_bytes()).map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::NotFound => {
                "not an algorithm this kernel has: see /proc/sys/net/ipv4/tcp_available_congestion_control"
            }
            io::ErrorKind::PermissionDenied => {
                "not allowed without CAP_NET_ADMIN: see /proc/sys/net/ipv4/tcp_allowed_congestion_control (reno always is)"
            }
            _ => "the kernel refused it",
        };
        io::Error::new(
            e.kind(),
            format!("cannot use TCP congestion control {name:?}: {hint} ({e})"),
        )
    })
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
fn set_congestion(_: &socket2::Socket, name: &str) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("cannot use TCP congestion control {name:?}: only Linux and FreeBSD let a program choose it"),
    ))
}

/// A bound server, not yet running. Get its addresses and a [`Handle`], then
/// [`run`](Self::run) it (on this thread, or one you spawn).
pub struct Server<H: Handler> {
    loops: Vec<EventLoop<H>>,
    handle: Handle,
    local_addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    tls: TlsOption,
    signals: bool,
}

impl Server<NoHandler> {
    /// The same as [`Builder::new`], which is the constructor to use; kept so that code
    /// written against it still compiles.
    pub fn builder() -> Builder {
        Builder::new()
    }
}

/// Stands in for the handler type in [`Server::builder`]; never constructed.
#[doc(hidden)]
#[derive(Clone)]
pub enum NoHandler {}

impl Handler for NoHandler {
    fn message(&mut self, _: &mut Context<'_>, _: Message<'_>) {
        match *self {}
    }
}

impl<H: Handler> Server<H> {
    /// The addresses bound, with the ports the system picked for port 0: the plain ones
    /// ([`Builder::listen`]) in order, then the TLS ones.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The TLS addresses among [`local_addrs`](Self::local_addrs).
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// The number of event loop threads.
    pub fn threads(&self) -> usize {
        self.loops.len()
    }

    /// A handle to send to connections or stop the server.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs every loop on its own thread and blocks until they have all stopped (after
    /// [`Handle::shutdown`] or a signal). Fails if a thread cannot be started or a loop
    /// hits an error polling.
    pub fn run(self) -> io::Result<()> {
        let signals = if self.signals {
            #[cfg(feature = "tls")]
            let tls = self.tls.clone();
            #[cfg(not(feature = "tls"))]
            let tls = ();
            Some(signals::watch(self.handle.clone(), tls)?)
        } else {
            None
        };
        let mut threads = Vec::with_capacity(self.loops.len());
        for (i, event_loop) in self.loops.into_iter().enumerate() {
            let spawned = std::thread::Builder::new()
                .name(format!("rfc6455-loop-{i}"))
                .spawn(move || event_loop.run());
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    self.handle.shutdown();
                    return Err(e);
                }
            }
        }
        let mut result = Ok(());
        for t in threads {
            let outcome = t.join().unwrap_or_else(|_| {
                Err(io::Error::other(
                    "an event loop thread panicked (a handler bug?)",
                ))
            });
            if let Err(e) = outcome {
                self.handle.shutdown();
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        if let Some(signals) = signals {
            signals.close();
        }
        result
    }
}

mod signals {
    use super::{Handle, TlsOption};
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::iterator::{Handle as SignalsHandle, Signals};
    use std::io;

    /// Watches SIGINT/SIGTERM on a thread: the first starts a graceful shutdown, a second
    /// exits at once. With TLS, SIGHUP reloads the certificate and key.
    #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
    pub(super) fn watch(handle: Handle, tls: TlsOption) -> io::Result<SignalsHandle> {
        #[cfg(feature = "tls")]
        let mut signals = if tls.is_some() {
            Signals::new([SIGINT, SIGTERM, SIGHUP])?
        } else {
            Signals::new([SIGINT, SIGTERM])?
        };
        #[cfg(not(feature = "tls"))]
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let control = signals.handle();
        std::thread::Builder::new()
            .name("rfc6455-signals".into())
            .spawn(move || {
                let mut seen = 0;
                for signal in signals.forever() {
                    if signal == SIGHUP {
                        #[cfg(feature = "tls")]
                        if let Some(tls) = &tls {
                            reload(tls);
                        }
                        continue;
                    }
                    seen += 1;
                    if seen > 1 {
                        std::process::exit(130);
                    }
                    handle.shutdown();
                }
            })?;
        Ok(control)
    }

    /// SIGHUP: the new certificate and key for new handshakes, or a line saying why not.
    #[cfg(feature = "tls")]
    fn reload(tls: &crate::tls::TlsConfig) {
        match tls.reload() {
            Ok(Some((cert, key))) => eprintln!(
                "rfc6455: SIGHUP: reloaded the TLS certificate {} and key {}; new \
                 connections use them, open ones are kept",
                cert.display(),
                key.display()
            ),
            Ok(None) => eprintln!(
                "rfc6455: SIGHUP: this TLS configuration was not made from files; nothing to \
                 reload"
            ),
            Err(e) => eprintln!(
                "rfc6455: SIGHUP: kept the old TLS certificate and key, the new ones are \
                 refused: {e}"
            ),
        }
    }
}

#[cfg(test)]
mod display_tests {
    use super::*;
    use crate::proto::ProtocolError;

    #[test]
    fn close_reasons_read_as_sentences() {
        let frame = CloseFrame {
            code: CloseCode::NORMAL,
            reason: "bye".into(),
        };
        let cases = [
            (
                CloseReason::Closed(Some(frame)),
                "closed: 1000 (normal closure): bye",
            ),
            (CloseReason::Closed(None), "closed: no status code"),
            (
                CloseReason::Protocol(ProtocolError::FragmentedControlFrame),
                "failed: the peer fragmented a control frame; closed with 1002 (protocol error)",
            ),
            (
                CloseReason::Timeout(TimeoutKind::Heartbeat),
                "timed out: no answer to a heartbeat ping",
            ),
            (
                CloseReason::Overflow {
                    queued: 10,
                    limit: 8,
                },
                "failed: the peer does not read (10 bytes queued for it, limit 8); closed with \
                 1008 (policy violation)",
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::TcpStream;

    /// The algorithm the kernel reports for an accepted connection of `listener`.
    fn accepted_algorithm(listener: &StdListener) -> String {
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).unwrap();
        listener.set_nonblocking(false).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let mut name = socket2::SockRef::from(&accepted).tcp_congestion().unwrap();
        name.retain(|&b| b != 0); // the kernel pads it to 16 bytes
        String::from_utf8(name).unwrap()
    }

    #[test]
    fn connections_inherit_the_chosen_congestion_control() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let system = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
            .unwrap()
            .trim()
            .to_string();
        assert_eq!(
            accepted_algorithm(&bind_listener(any, None).unwrap()),
            system
        );
        // reno is always allowed; cubic (or bbr) only with CAP_NET_ADMIN or when the system
        // allows it, and at least one of them differs from the system's default.
        for name in ["reno", "cubic", "bbr"] {
            match bind_listener(any, Some(name)) {
                Ok(listener) => assert_eq!(accepted_algorithm(&listener), name),
                Err(e) if name != "reno" => {
                    assert!(e.to_string().contains(name), "{e}");
                }
                Err(e) => panic!("reno refused: {e}"),
            }
        }
    }

    #[test]
    fn an_unknown_congestion_control_fails_bind_saying_where_to_look() {
        #[derive(Clone)]
        struct Nothing;
        impl Handler for Nothing {
            fn message(&mut self, _: &mut Context<'_>, _: crate::Message<'_>) {}
        }
        let err = Server::builder()
            .listen("127.0.0.1:0")
            .tcp_congestion("no-such-algorithm")
            .bind(Nothing)
            .err()
            .expect("bind must fail");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let text = err.to_string();
        assert!(text.contains("\"no-such-algorithm\""), "{text}");
        assert!(text.contains("tcp_available_congestion_control"), "{text}");
    }
}
