//! The connection state machine: bytes in, events and bytes out. This file holds the struct,
//! its states and the transitions, to check against RFC 6455 (the one a timer makes, an
//! unanswered close, is in `timers.rs`).
//! The data paths are beside it — `recv.rs` (parsing), `send.rs` (framing), `transmit.rs` (the
//! queue of bytes to write), `timers.rs` (heartbeat, idle and close deadlines) — and
//! `tests.rs`.
//!
//! ```text
//!            send close                       receive close (reply queued)
//!   Open ─────────────────► Closing ─────────────────────────────────► Closed
//!    │                                                                    ▲
//!    └──── receive close (reply queued) / protocol error (close queued) ──┘
//! ```
//!
//! A close or an error is "received" when the receive path hands it out, after the events
//! before it: [`Connection::read`] returns it, or [`Connection::poll_event`] reaches it. So
//! whatever the application sends in answer to those events goes out before the close.
//!
//! Receiving has two forms:
//! - [`Connection::read`] parses from a buffer the caller owns, unmasks in place and hands out
//!   payloads that borrow it: a whole single-frame message is never copied. Only the bytes of
//!   an unfinished frame or message are kept inside the connection.
//! - [`Connection::handle_bytes`] + [`Connection::poll_event`] take a shared slice and queue
//!   owned events: simpler, at the cost of copying each payload.

use super::close::{truncate_reason, CloseCode, CloseFrame};
use super::config::Config;
#[cfg(feature = "deflate")]
use super::deflate::{Codec, DeflateParams};
use super::error::{Error, ProtocolError, UsageError};
use super::frame::{FrameHeader, OpCode, Status, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, RSV1};
use super::mask::{apply_mask, extend_masked};
use super::shared::SharedFrame;
use super::utf8::Utf8Validator;

mod recv;
mod send;
mod timers;
mod transmit;
pub use send::OWNED_SEND_MIN;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
pub use timers::TimeoutKind;
use transmit::{Segment, SegmentData};

/// Which end of the connection this is. It decides who masks (RFC 6455 §5.1).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Masks what it sends, fails masked frames.
    Client,
    /// Does not mask, fails unmasked frames, closes the transport first.
    Server,
}

/// Where the connection is in its life.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// This side sent a close frame and waits for the peer's. Incoming messages are still
    /// delivered; nothing more can be sent.
    Closing,
    /// The close handshake finished or the connection failed. Nothing more is sent or
    /// delivered; once [`Connection::poll_transmit`] is empty, see
    /// [`Connection::should_close_transport`].
    Closed,
}

/// A complete data message.
#[derive(Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message: always valid UTF-8.
    Text(Cow<'a, str>),
    /// A binary message.
    Binary(Cow<'a, [u8]>),
}

impl<'a> Message<'a> {
    /// A text message.
    pub fn text(text: impl Into<Cow<'a, str>>) -> Message<'a> {
        Message::Text(text.into())
    }

    /// A binary message.
    pub fn binary(data: impl Into<Cow<'a, [u8]>>) -> Message<'a> {
        Message::Binary(data.into())
    }

    /// The text, if this is a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(text) => Some(text),
            Message::Binary(_) => None,
        }
    }

    /// The payload bytes (a text message's UTF-8).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(data) => data,
        }
    }

    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }

    /// The payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies the payload if it is borrowed, so the message outlives the buffer it came from.
    pub fn into_owned(self) -> Message<'static> {
        match self {
            Message::Text(text) => Message::Text(Cow::Owned(text.into_owned())),
            Message::Binary(data) => Message::Binary(Cow::Owned(data.into_owned())),
        }
    }
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 64;
        match self {
            Message::Text(text) if text.len() <= SHOWN => write!(f, "Text({text:?})"),
            Message::Text(text) => write!(f, "Text({} bytes)", text.len()),
            Message::Binary(data) if data.len() <= SHOWN => write!(f, "Binary({data:02x?})"),
            Message::Binary(data) => write!(f, "Binary({} bytes)", data.len()),
        }
    }
}

/// Something the peer sent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A complete text or binary message.
    Message(Message<'a>),
    /// A ping. With [`Config::auto_pong`] the pong is already queued.
    Ping(Cow<'a, [u8]>),
    /// A pong.
    Pong(Cow<'a, [u8]>),
    /// The peer's close frame (`None` when it carried no code, which reads as 1005). If this
    /// side had not sent a close yet, the reply is already queued — after whatever was sent
    /// in answer to the events before this one. The state is now [`State::Closed`].
    Close(Option<CloseFrame<'a>>),
    /// A piece of a binary message that is handed out as it arrives rather than collected
    /// (see [`Config::stream_binary_from`]). The pieces of one message come in order, with
    /// nothing but control frames' events between them.
    Part(Part<'a>),
}

/// A piece of a binary message received in parts: [`Event::Part`].
///
/// To pass a message on as it arrives, hand each piece to
/// [`Connection::send_part`] with the same `last`.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Part<'a> {
    /// The bytes (already unmasked). May be empty only on the last part.
    pub data: Cow<'a, [u8]>,
    /// This is the message's first part.
    pub first: bool,
    /// This is the message's last part.
    pub last: bool,
}

impl fmt::Debug for Part<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Part")
            .field("len", &self.data.len())
            .field("first", &self.first)
            .field("last", &self.last)
            .finish()
    }
}

impl Event<'_> {
    /// Copies any borrowed payload.
    pub fn into_owned(self) -> Event<'static> {
        match self {
            Event::Message(m) => Event::Message(m.into_owned()),
            Event::Ping(p) => Event::Ping(Cow::Owned(p.into_owned())),
            Event::Pong(p) => Event::Pong(Cow::Owned(p.into_owned())),
            Event::Close(c) => Event::Close(c.map(CloseFrame::into_owned)),
            Event::Part(p) => Event::Part(Part {
                data: Cow::Owned(p.data.into_owned()),
                ..p
            }),
        }
    }
}

/// Where masking keys for a client's frames come from. The core has no RNG of its own.
///
/// Any `FnMut() -> [u8; 4] + Send` is one; the [`client`](crate) layer uses a random source.
pub trait MaskSource: Send {
    /// The key for the next frame.
    fn next_mask(&mut self) -> [u8; 4];
}

impl<F: FnMut() -> [u8; 4] + Send> MaskSource for F {
    fn next_mask(&mut self) -> [u8; 4] {
        self()
    }
}

/// The frame whose payload is being received. 16 bytes: whether it is masked follows from
/// the role (`start_frame` refuses the other kind).
#[derive(Copy, Clone, Debug)]
struct InFrame {
    opcode: OpCode,
    fin: bool,
    /// The masking key (a server's frames are all masked, a client's never are).
    mask: [u8; 4],
    remaining: u64,
    /// Key offset of the next payload byte.
    mask_pos: u8,
    /// No payload byte of this frame has been consumed yet.
    untouched: bool,
}

/// What only an unfinished frame or message needs: allocated when one is left over at the
/// end of the input, freed by [`Connection::shrink_buffers`] once none is.
#[derive(Default)]
struct Partial {
    header: [u8; MAX_HEADER_LEN],
    header_len: u8,
    /// The payload so far of a message spread over frames or reads (or inflated).
    message: Vec<u8>,
    /// A control frame's payload so far.
    control: Vec<u8>,
    utf8: Utf8Validator,
    /// Bytes handed out so far of a message received in parts.
    streamed: u64,
}

/// What few connections use: made on first use.
#[derive(Default)]
struct Rare {
    /// A client's masking keys.
    masks: Option<Box<dyn MaskSource>>,
    queued: Option<Box<Queued>>,
    /// Payloads queued by [`Connection::send_owned`], in order, each to go out after
    /// `out[..at]`; the bytes of the first already written; the bytes of all still to write.
    segments: VecDeque<Segment>,
    segment_pos: usize,
    segment_bytes: usize,
    /// Messages sent while a message in parts was open (see [`Connection::send_part`]), to go
    /// out after its last part; and their payload bytes.
    held: VecDeque<Message<'static>>,
    held_bytes: usize,
    /// permessage-deflate, once negotiated (see [`Connection::set_deflate`]).
    #[cfg(feature = "deflate")]
    deflate: Option<Box<Codec>>,
    /// The timers' times, once the driver has passed the time in (see `timers.rs`).
    clock: Option<Box<timers::Clock>>,
}

impl Rare {
    fn is_unused(&self) -> bool {
        #[cfg(feature = "deflate")]
        if self.deflate.is_some() {
            return false;
        }
        self.masks.is_none()
            && self.clock.is_none()
            && self.queued.is_none()
            && self.segments.is_empty()
            && self.held.is_empty()
    }
}

/// State for [`Connection::handle_bytes`] / [`Connection::poll_event`], made on first use so
/// connections driven through [`Connection::read`] do not carry it.
#[derive(Default)]
struct Queued {
    scratch: Vec<u8>,
    /// Parsed, not yet handed out (nor acted on); a close is always last.
    events: VecDeque<Event<'static>>,
    /// A protocol error after `events`, to fail the connection once they are handed out.
    error: Option<ProtocolError>,
}

/// One WebSocket connection, after the opening handshake, without any I/O.
///
/// Feed it what the transport read, write out what it has to send:
///
/// ```
/// use rfc6455::{Config, Connection, Event, Message};
///
/// let mut server = Connection::server(Config::default());
/// // A masked "Hello" from RFC 6455 §5.7, and a masked close 1000, in one read.
/// let hello = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
/// let close = [0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8];
/// let received = server.handle_bytes(&[&hello[..], &close[..]].concat());
/// while let Some(event) = server.poll_event() {
///     if let Event::Message(m) = event {
///         // The echo. `send` fails (Error::Closed) only once this side has sent a close:
///         // skip the message then, and keep going so what is queued still goes out.
///         if let Err(e) = server.send(m) {
///             eprintln!("not echoed: {e}");
///         }
///     }
/// }
/// // The unmasked echo, also from §5.7, then the close reply: the answers go out in the
/// // order the events came.
/// assert_eq!(
///     server.poll_transmit(),
///     &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x88, 0x02, 0x03, 0xe8]
/// );
/// // A peer error would be in `received`, its close frame already queued above.
/// received?;
/// # Ok::<(), rfc6455::Error>(())
/// ```
//
// An idle server connection is this struct alone (88 bytes on 64-bit targets): the config is
// shared, receive state lives in `partial` only while a frame or message is unfinished, and
// what few connections use sits behind `rare`.
pub struct Connection {
    config: Arc<Config>,
    out: Vec<u8>,
    out_pos: usize,
    frame: Option<InFrame>,
    partial: Option<Box<Partial>>,
    rare: Option<Box<Rare>>,
    error: Option<Box<ProtocolError>>,

    role: Role,
    state: State,
    /// RSV bits a negotiated extension owns.
    rsv_allowed: u8,
    /// A fragmented message has started and its final frame has not.
    in_message: bool,
    message_text: bool,
    /// The message in progress had RSV1 on its first frame (permessage-deflate).
    message_compressed: bool,
    /// The message in progress is handed out in parts (`Config::stream_binary_from`).
    message_streamed: bool,
    /// A message sent by `send_part` is open: its last part has not been sent.
    sending_parts: bool,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("error", &self.error)
            .field(
                "buffered_message",
                &self.partial.as_ref().map_or(0, |p| p.message.len()),
            )
            .field("pending_transmit", &self.transmit_len())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A server-side connection: expects masked frames, sends unmasked ones.
    pub fn server(config: Config) -> Connection {
        Connection::new(Role::Server, Arc::new(config), None)
    }

    /// A server-side connection sharing `config` with others: a server with many
    /// connections keeps one copy of its limits instead of one per connection.
    pub fn server_shared(config: Arc<Config>) -> Connection {
        Connection::new(Role::Server, config, None)
    }

    /// A client-side connection: masks every frame with a key from `masks`, expects unmasked
    /// frames.
    pub fn client(config: Config, masks: impl MaskSource + 'static) -> Connection {
        Connection::new(Role::Client, Arc::new(config), Some(Box::new(masks)))
    }

    fn new(role: Role, config: Arc<Config>, masks: Option<Box<dyn MaskSource>>) -> Connection {
        let rare = masks.map(|masks| {
            Box::new(Rare {
                masks: Some(masks),
                ..Rare::default()
            })
        });
        Connection {
            config,
            out: Vec::new(),
            out_pos: 0,
            frame: None,
            partial: None,
            rare,
            error: None,
            role,
            state: State::Open,
            rsv_allowed: 0,
            in_message: false,
            message_text: false,
            message_compressed: false,
            message_streamed: false,
            sending_parts: false,
        }
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    fn partial(&mut self) -> &mut Partial {
        self.partial.get_or_insert_with(Box::default)
    }

    /// Bytes of the message in progress received so far.
    fn message_len(&self) -> u64 {
        self.partial
            .as_ref()
            .map_or(0, |p| p.message.len() as u64 + p.streamed)
    }

    #[cfg(feature = "deflate")]
    fn codec(&self) -> Option<&Codec> {
        self.rare.as_ref()?.deflate.as_deref()
    }

    /// This connection's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the connection is in its life.
    pub fn state(&self) -> State {
        self.state
    }

    /// The limits and options in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The protocol error that failed this connection, if one did.
    pub fn error(&self) -> Option<&ProtocolError> {
        self.error.as_deref()
    }

    /// Enables permessage-deflate with the parameters the handshake agreed on
    /// ([`DeflateConfig::server_negotiate`] on a server,
    /// [`DeflateConfig::client_accept_response`] on a client).
    ///
    /// Call it right after creating the connection, before the first
    /// [`read`](Self::read)/[`handle_bytes`](Self::handle_bytes) or send: the peer may
    /// compress its very first message. From then on RSV1 is accepted on the first frame of
    /// a data message (still 1002 on continuation and control frames); such messages are
    /// inflated — bounded by [`Config::max_message_size`] (1009), UTF-8 checked as the text
    /// comes out (1007), corrupt data is 1007 — and handed out owned. Messages of at least
    /// [`DeflateParams::compression_threshold`] bytes are sent compressed; control frames
    /// never are. Uncompressed messages keep the zero-copy path.
    ///
    /// ```
    /// use rfc6455::proto::deflate::DeflateParams;
    /// use rfc6455::{Config, Connection, Event, Message};
    ///
    /// let mut client = Connection::client(Config::default(), || [0; 4]);
    /// client.set_deflate(DeflateParams::default());
    /// // RFC 7692 §7.2.3.1: "Hello" compressed, from the server.
    /// client.handle_bytes(&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])?;
    /// assert_eq!(client.poll_event(), Some(Event::Message(Message::text("Hello"))));
    /// # Ok::<(), rfc6455::Error>(())
    /// ```
    ///
    /// [`DeflateConfig::server_negotiate`]: super::deflate::DeflateConfig::server_negotiate
    /// [`DeflateConfig::client_accept_response`]: super::deflate::DeflateConfig::client_accept_response
    #[cfg(feature = "deflate")]
    pub fn set_deflate(&mut self, params: DeflateParams) {
        let codec = Codec::new(params, self.role);
        self.rare().deflate = Some(Box::new(codec));
        self.rsv_allowed |= RSV1;
    }

    /// The permessage-deflate parameters in force, if the extension is enabled.
    #[cfg(feature = "deflate")]
    pub fn deflate_params(&self) -> Option<&DeflateParams> {
        self.codec().map(Codec::params)
    }

    /// Acts on an event as it is handed out: queues the pong for a ping
    /// ([`Config::auto_pong`]), and for the peer's close queues the reply (unless this side
    /// closed first) and moves to [`State::Closed`].
    fn on_event(&mut self, event: &Event<'_>) {
        match event {
            Event::Message(_) | Event::Part(_) => self.note_message(),
            Event::Ping(payload) if self.config.auto_pong && self.state == State::Open => {
                self.write_frame(OpCode::Pong, true, payload);
            }
            Event::Close(frame) => {
                if self.state == State::Open {
                    // Echo the code, as RFC 6455 §5.5.1 suggests; no code gets an empty close.
                    let mut reply = [0u8; 2];
                    let len = match frame {
                        Some(f) => {
                            reply = f.code.0.to_be_bytes();
                            2
                        }
                        None => 0,
                    };
                    self.write_frame(OpCode::Close, true, &reply[..len]);
                    self.take_held();
                }
                self.state = State::Closed;
                self.release_receive_buffers();
            }
            _ => {}
        }
    }

    /// Fails the connection for a peer error: queues the close frame (unless one was sent
    /// already), makes the error sticky and drops receive buffers.
    fn fail_protocol(&mut self, e: ProtocolError) -> Error {
        if self.error.is_none() {
            if self.state == State::Open {
                self.write_close(e.close_code(), e.close_reason());
            }
            self.state = State::Closed;
            self.error = Some(Box::new(e.clone()));
            self.release_receive_buffers();
        }
        Error::Protocol(e)
    }

    fn release_receive_buffers(&mut self) {
        self.frame = None;
        self.in_message = false;
        self.message_compressed = false;
        self.message_streamed = false;
        self.partial = None;
        // Only called once nothing more can be sent or received.
        #[cfg(feature = "deflate")]
        if let Some(codec) = self.rare.as_mut().and_then(|r| r.deflate.as_mut()) {
            codec.release();
        }
    }

    /// The transport reached end of stream.
    ///
    /// `Ok` if the close handshake had finished (or the connection had already failed), or
    /// if [`handle_bytes`](Self::handle_bytes) queued the peer's close or a protocol error
    /// that [`poll_event`](Self::poll_event) has yet to reach; otherwise [`Error::ConnectionLost`] (close code 1006) and the state becomes
    /// [`State::Closed`].
    pub fn handle_eof(&mut self) -> Result<(), Error> {
        if self.state == State::Closed || self.end_queued() {
            // The peer's close (or the error) is still to be handed out by poll_event.
            return Ok(());
        }
        self.state = State::Closed;
        self.release_receive_buffers();
        self.take_held();
        Err(Error::ConnectionLost)
    }

    /// Starts the close handshake: queues a close frame and moves to [`State::Closing`].
    /// A reason over 123 bytes is cut at a character boundary.
    ///
    /// Keep reading: the peer's close arrives as [`Event::Close`]. A server then closes the
    /// transport; a client waits (a bounded time) for the server to.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if !code.is_sendable() {
            return Err(Error::Usage(UsageError::UnsendableCloseCode(code.0)));
        }
        if self.state != State::Open {
            return Err(Error::Closed);
        }
        self.write_close(code, reason);
        self.state = State::Closing;
        Ok(())
    }

    /// Fails the connection on purpose (e.g. 1008 for a policy violation the application
    /// detected): queues a close frame with `code` unless one was sent, and moves straight to
    /// [`State::Closed`] without waiting for the peer's reply.
    pub fn fail(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if !code.is_sendable() {
            return Err(Error::Usage(UsageError::UnsendableCloseCode(code.0)));
        }
        if self.state == State::Open {
            self.write_close(code, reason);
        }
        self.state = State::Closed;
        self.release_receive_buffers();
        Ok(())
    }

    /// Whether the caller should close the transport now: the connection is
    /// [`State::Closed`], everything queued has been written, and this side is the one that
    /// closes first (the server, or either side after a failure or a timeout), or, for a
    /// client whose driver runs the timers, it has waited
    /// [`Config::close_timeout`] for the server to (RFC 6455 §7.1.1).
    pub fn should_close_transport(&self) -> bool {
        self.state == State::Closed
            && self.poll_transmit().is_empty()
            && (self.role == Role::Server || self.error.is_some() || self.gave_up_waiting())
    }
}

#[cfg(test)]
// Config is #[non_exhaustive]: default-then-assign is how users build one too.
#[allow(clippy::field_reassign_with_default)]
mod tests;
