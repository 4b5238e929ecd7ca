//! The application's side: [`Handler`], and the [`Context`] its callbacks get.

use super::event_loop::Local;
use super::event_loop::Publication;
use super::transport;
use super::{Handle, SendError, TopicError};
use crate::proto::{
    Accept, CloseCode, CloseFrame, Error, Message, Part, ProtocolError, Rejection, Request,
};
use crate::proto::{HttpRequest, HttpResponse, SharedFrame};
use crate::TimeoutKind;
use std::any::Any;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

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
    /// The body is read first, up to [`Limits::max_http_body`](crate::server::Limits::max_http_body) (`413` over it, read no
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
    /// [`Config::stream_binary_from`](crate::Config::stream_binary_from) is set (see [`Part`] for the order). Pass it on with
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

/// Identifies one connection of a [`Server`](crate::server::Server), unique across its threads: a stale id (of a
/// connection that has gone) never reaches a later connection that reuses its slot.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(super) thread: u32,
    pub(super) slot: u32,
    pub(super) generation: u32,
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
    /// The peer broke the protocol or a [`Config`](crate::Config) limit; a close frame with the matching
    /// code (1002, 1007, 1009) was sent.
    Protocol(ProtocolError),
    /// The TCP connection ended or failed before the close handshake finished (1006).
    Lost,
    /// The peer did not answer in time.
    Timeout(TimeoutKind),
    /// A send, or the pongs the core answers pings with, would have taken the write queue
    /// over [`Limits::max_write_queue`](crate::server::Limits::max_write_queue): the peer does not read fast enough. The connection
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

impl<'a> Context<'a> {
    /// The one place the loop makes a `Context`: for connection `id`, whose core is `conn`.
    /// A send that would take the write queue over `max_write_queue` sets `overflow`;
    /// `direct` is the socket when a large message may be written to it at once.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        id: ConnId,
        peer: SocketAddr,
        conn: &'a mut crate::Connection,
        handle: &'a Handle,
        max_write_queue: usize,
        overflow: &'a mut bool,
        direct: Option<&'a mut transport::Transport>,
        local: &'a mut Local,
    ) -> Context<'a> {
        Context {
            id,
            peer,
            conn,
            handle,
            max_write_queue,
            overflow,
            direct,
            local,
        }
    }
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
    /// over [`Limits::max_write_queue`](crate::server::Limits::max_write_queue) (the connection is then failed with 1008 and
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
    /// [`Timeouts::close`](crate::server::Timeouts::close) passes).
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

    /// Subscribes this connection to `topic` (any bytes, at most [`MAX_TOPIC_LEN`](crate::server::MAX_TOPIC_LEN)):
    /// from now on it receives what is [published](Self::publish) to it, from any loop or
    /// thread. `Ok(false)` if it already was. The subscription ends with the connection.
    /// Fails over [`Limits::max_subscriptions`](crate::server::Limits::max_subscriptions) topics for one connection.
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
    pub(super) peer: SocketAddr,
    pub(super) handle: &'a Handle,
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

#[cfg(test)]
mod tests {
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
