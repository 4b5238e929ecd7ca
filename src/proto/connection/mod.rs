//! The connection state machine: bytes in, events and bytes out. All transitions live here.
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

mod timers;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
pub use timers::TimeoutKind;

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

/// The most [`Connection::read`] reserves ahead for a frame's payload before it arrives.
const RESERVE_AHEAD: usize = 1 << 20;

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

/// A payload queued as it is (see [`Connection::send_owned`]), or a whole frame shared with
/// other connections ([`Connection::send_shared`]), written once `out[..at]` is.
struct Segment {
    at: usize,
    data: SegmentData,
}

enum SegmentData {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl std::ops::Deref for SegmentData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            SegmentData::Owned(v) => v,
            SegmentData::Shared(s) => s,
        }
    }
}

/// The smallest owned payload [`Connection::send_owned`] queues without copying: below this a
/// copy costs less than a separate piece in the transmit queue.
pub const OWNED_SEND_MIN: usize = 16 << 10;

/// Slots of [`Connection::send_through`]'s one write: what is queued, then header and payload.
const THROUGH_PIECES: usize = 16;

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

/// Splits the first `n` bytes off `input`.
fn take<'a>(input: &mut &'a mut [u8], n: usize) -> &'a mut [u8] {
    let all = std::mem::take(input);
    let (head, rest) = all.split_at_mut(n.min(all.len()));
    *input = rest;
    head
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

    // ----------------------------------------------------------------------------------------
    // permessage-deflate (RFC 7692)
    // ----------------------------------------------------------------------------------------

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

    // ----------------------------------------------------------------------------------------
    // Receiving
    // ----------------------------------------------------------------------------------------

    /// Parses the next event out of `input`, unmasking in place, and advances `input` past
    /// what it consumed.
    ///
    /// Returns `Ok(None)` once `input` is used up: bytes of an unfinished frame have been
    /// kept inside the connection, so the caller may reuse its buffer. Call it in a loop until
    /// it returns `Ok(None)` or an error, then write out [`poll_transmit`](Self::poll_transmit)
    /// (pongs and close replies are queued there).
    ///
    /// A message that arrived whole in `input` is handed out borrowing it, without a copy.
    ///
    /// On a protocol error the close frame with the matching code is queued, the state becomes
    /// [`State::Closed`] and every later call returns the same error: write out the close
    /// frame, then close the transport.
    ///
    /// ```
    /// use rfc6455::{Config, Connection, Event};
    /// let mut server = Connection::server(Config::default());
    /// let mut buf = [0x82, 0x83, 1, 2, 3, 4, 1 ^ 0xA, 2 ^ 0xB, 3 ^ 0xC];
    /// let mut input = &mut buf[..];
    /// while let Some(event) = server.read(&mut input).unwrap() {
    ///     if let Event::Message(m) = event {
    ///         assert_eq!(m.as_bytes(), &[0xA, 0xB, 0xC]);
    ///     }
    /// }
    /// ```
    pub fn read<'a>(&mut self, input: &mut &'a mut [u8]) -> Result<Option<Event<'a>>, Error> {
        if !input.is_empty() {
            self.note_heard();
        }
        if let Some(e) = &self.error {
            return Err(Error::Protocol(ProtocolError::clone(e)));
        }
        match self.next_event(input) {
            Ok(Some(event)) => {
                self.on_event(&event);
                Ok(Some(event))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(self.fail_protocol(e)),
        }
    }

    /// Parses the next event out of `input`, as [`read`](Self::read) describes, without
    /// acting on it: the auto-pong and the close reply are [`on_event`](Self::on_event)'s,
    /// failing the connection for an error is [`fail_protocol`](Self::fail_protocol)'s. Both
    /// receive paths act on an event when they hand it out, so whatever the application sends
    /// in answer to the events before it goes out first (RFC 6455 §5.5.1 lets a close reply
    /// wait). After an error or a close event, nothing more may be parsed until it was acted on.
    #[inline]
    fn next_event<'a>(
        &mut self,
        input: &mut &'a mut [u8],
    ) -> Result<Option<Event<'a>>, ProtocolError> {
        loop {
            if self.state == State::Closed {
                // Nothing after the close handshake is delivered.
                take(input, usize::MAX);
                return Ok(None);
            }
            // The frame in progress, or a new one. It lives in a local from here on (a frame
            // whole in `input` never goes back into `self`) and is put back by the paths that
            // leave it unfinished.
            let mut frame = match self.frame.take() {
                Some(frame) => frame,
                None => {
                    if input.is_empty() {
                        return Ok(None);
                    }
                    match self.read_header(input)? {
                        Some(header) => self.start_frame(header)?,
                        None => return Ok(None),
                    }
                }
            };

            let masked = self.role == Role::Server;
            if frame.opcode.is_control() {
                let need = frame.remaining as usize;
                let buffered = self.partial.as_ref().is_some_and(|p| !p.control.is_empty());
                if !buffered && input.len() >= need {
                    let payload = take(input, need);
                    if masked {
                        apply_mask(payload, frame.mask, 0);
                    }
                    return Self::control_event(frame.opcode, Cow::Borrowed(payload));
                }
                let chunk = take(input, need);
                if masked {
                    frame.mask_pos = apply_mask(chunk, frame.mask, frame.mask_pos.into()) as u8;
                }
                self.partial().control.extend_from_slice(chunk);
                frame.remaining -= chunk.len() as u64;
                if frame.remaining > 0 {
                    self.frame = Some(frame);
                    return Ok(None);
                }
                let payload = std::mem::take(&mut self.partial().control);
                return Self::control_event(frame.opcode, Cow::Owned(payload));
            }

            // Fast path: a whole single-frame message lies in `input`.
            if frame.untouched
                && frame.fin
                && frame.opcode != OpCode::Continuation
                && !self.message_compressed
                && input.len() as u64 >= frame.remaining
            {
                let payload = take(input, frame.remaining as usize);
                if masked {
                    apply_mask(payload, frame.mask, 0);
                }
                self.in_message = false;
                let message = if frame.opcode == OpCode::Text {
                    match std::str::from_utf8(payload) {
                        Ok(text) => Message::Text(Cow::Borrowed(text)),
                        Err(_) => return Err(ProtocolError::InvalidUtf8),
                    }
                } else {
                    Message::Binary(Cow::Borrowed(payload))
                };
                return Ok(Some(Event::Message(message)));
            }

            if input.is_empty() && frame.remaining > 0 {
                // Nothing to go on: the frame stays untouched, so the next input may still
                // hold it whole.
                self.frame = Some(frame);
                return Ok(None);
            }

            // A large binary message that does not lie whole in `input` (a whole one took the
            // fast path) is handed out in parts, decided on its first frame's first byte.
            if frame.untouched
                && frame.opcode == OpCode::Binary
                && !self.message_compressed
                && self
                    .config
                    .stream_binary_from
                    .is_some_and(|from| frame.remaining >= from as u64)
            {
                self.message_streamed = true;
                self.partial().streamed = 0;
            }
            if self.message_streamed {
                let chunk = take(
                    input,
                    usize::try_from(frame.remaining).unwrap_or(usize::MAX),
                );
                frame.remaining -= chunk.len() as u64;
                let last = frame.fin && frame.remaining == 0;
                if chunk.is_empty() && !last {
                    continue; // an empty frame that does not end the message
                }
                if masked {
                    frame.mask_pos = apply_mask(chunk, frame.mask, frame.mask_pos.into()) as u8;
                }
                frame.untouched = false;
                if frame.remaining > 0 {
                    self.frame = Some(frame);
                }
                let partial = self.partial();
                let first = partial.streamed == 0;
                partial.streamed += chunk.len() as u64;
                if last {
                    self.in_message = false;
                    self.message_streamed = false;
                }
                return Ok(Some(Event::Part(Part {
                    data: Cow::Borrowed(chunk),
                    first,
                    last,
                })));
            }

            // Slow path: collect the payload piece by piece.
            let chunk = take(
                input,
                usize::try_from(frame.remaining).unwrap_or(usize::MAX),
            );
            if masked {
                frame.mask_pos = apply_mask(chunk, frame.mask, frame.mask_pos.into()) as u8;
            }
            if self.message_compressed {
                self.inflate_chunk(chunk, frame.fin && frame.remaining == chunk.len() as u64)?;
            } else {
                let text = self.message_text;
                let partial = self.partial();
                if text && partial.utf8.feed(chunk).is_err() {
                    return Err(ProtocolError::InvalidUtf8);
                }
                if frame.untouched {
                    // Room for the whole frame in one step (its length passed the limits in
                    // start_frame) instead of doubling up to it, copying each time; capped, so
                    // a peer that declares big frames and sends nothing reserves little.
                    let rest = usize::try_from(frame.remaining).unwrap_or(usize::MAX);
                    partial.message.reserve(rest.min(RESERVE_AHEAD));
                }
                partial.message.extend_from_slice(chunk);
            }
            frame.remaining -= chunk.len() as u64;
            frame.untouched = false;
            if frame.remaining > 0 {
                self.frame = Some(frame);
                return Ok(None);
            }
            if !frame.fin {
                continue;
            }
            self.in_message = false;
            let partial = self.partial();
            let data = std::mem::take(&mut partial.message);
            let finished = partial.utf8.finish();
            let message = if self.message_text {
                if finished.is_err() {
                    return Err(ProtocolError::InvalidUtf8);
                }
                match String::from_utf8(data) {
                    Ok(text) => Message::Text(Cow::Owned(text)),
                    Err(_) => return Err(ProtocolError::InvalidUtf8),
                }
            } else {
                Message::Binary(Cow::Owned(data))
            };
            return Ok(Some(Event::Message(message)));
        }
    }

    /// Reads a frame header, buffering a partial one. `Ok(None)`: `input` ran out first.
    fn read_header(&mut self, input: &mut &mut [u8]) -> Result<Option<FrameHeader>, ProtocolError> {
        let have = self.partial.as_ref().map_or(0, |p| p.header_len as usize);
        if have == 0 {
            return match FrameHeader::parse(input)? {
                Status::Complete(header, n) => {
                    take(input, n);
                    Ok(Some(header))
                }
                Status::Partial => {
                    let rest = take(input, MAX_HEADER_LEN);
                    let partial = self.partial();
                    partial.header[..rest.len()].copy_from_slice(rest);
                    partial.header_len = rest.len() as u8;
                    Ok(None)
                }
            };
        }
        let partial = self.partial();
        let add = (MAX_HEADER_LEN - have).min(input.len());
        partial.header[have..have + add].copy_from_slice(&input[..add]);
        match FrameHeader::parse(&partial.header[..have + add])? {
            Status::Complete(header, n) => {
                take(input, n - have);
                partial.header_len = 0;
                Ok(Some(header))
            }
            Status::Partial => {
                take(input, add);
                partial.header_len = (have + add) as u8;
                Ok(None)
            }
        }
    }

    /// Checks a new frame against the role, the extensions, the message in progress and the
    /// limits, before any of its payload is buffered; returns the frame to read.
    fn start_frame(&mut self, header: FrameHeader) -> Result<InFrame, ProtocolError> {
        if header.rsv & !self.rsv_allowed != 0 {
            return Err(ProtocolError::ReservedBits(header.rsv));
        }
        // permessage-deflate owns RSV1 on the first frame of a data message only
        // (RFC 7692 §6.1); anywhere else it is still a protocol error.
        let compressed = header.rsv & RSV1 != 0;
        if compressed && !matches!(header.opcode, OpCode::Text | OpCode::Binary) {
            return Err(ProtocolError::ReservedBits(header.rsv));
        }
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        match header.opcode {
            OpCode::Continuation if !self.in_message => {
                return Err(ProtocolError::UnexpectedContinuation)
            }
            OpCode::Text | OpCode::Binary if self.in_message => {
                return Err(ProtocolError::ExpectedContinuation)
            }
            OpCode::Text | OpCode::Binary => {
                self.message_text = header.opcode == OpCode::Text;
                self.message_compressed = compressed;
                self.message_streamed = false;
                if let Some(partial) = &mut self.partial {
                    partial.utf8.reset();
                    partial.streamed = 0;
                }
            }
            _ => {}
        }
        if !header.opcode.is_control() {
            if header.payload_len > self.config.max_frame_size as u64 {
                return Err(ProtocolError::FrameTooLarge {
                    len: header.payload_len,
                    max: self.config.max_frame_size,
                });
            }
            // A compressed message's size is what it inflates to, checked as it inflates.
            let total = self.message_len() + header.payload_len;
            if !self.message_compressed && total > self.config.max_message_size as u64 {
                return Err(ProtocolError::MessageTooLarge {
                    len: total,
                    max: self.config.max_message_size,
                });
            }
            self.in_message = !header.fin;
        }
        Ok(InFrame {
            opcode: header.opcode,
            fin: header.fin,
            mask: header.mask.unwrap_or_default(),
            remaining: header.payload_len,
            mask_pos: 0,
            untouched: true,
        })
    }

    /// The event a whole control frame makes; a close frame's payload is checked here.
    fn control_event(
        opcode: OpCode,
        payload: Cow<'_, [u8]>,
    ) -> Result<Option<Event<'_>>, ProtocolError> {
        Ok(Some(match opcode {
            OpCode::Ping => Event::Ping(payload),
            OpCode::Pong => Event::Pong(payload),
            _ => Event::Close(CloseFrame::parse(&payload)?.map(CloseFrame::into_owned)),
        }))
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

    /// Inflates a piece of a compressed message onto `self.message`; `last` ends the message.
    #[cfg(feature = "deflate")]
    fn inflate_chunk(&mut self, chunk: &[u8], last: bool) -> Result<(), ProtocolError> {
        let max = self.config.max_message_size;
        let Some(codec) = self.rare.as_mut().and_then(|r| r.deflate.as_deref_mut()) else {
            // start_frame only lets RSV1 through once set_deflate has run.
            return Err(ProtocolError::ReservedBits(RSV1));
        };
        let partial = self.partial.get_or_insert_with(Box::default);
        let mut text = self.message_text.then_some(&mut partial.utf8);
        codec.inflate(chunk, &mut partial.message, max, text.as_deref_mut())?;
        if last {
            codec.finish_message(&mut partial.message, max, text)?;
        }
        Ok(())
    }

    #[cfg(not(feature = "deflate"))]
    fn inflate_chunk(&mut self, _chunk: &[u8], _last: bool) -> Result<(), ProtocolError> {
        Err(ProtocolError::ReservedBits(RSV1))
    }

    /// Feeds bytes the transport read; events are queued for [`poll_event`](Self::poll_event).
    ///
    /// Accepts any split of the stream, down to one byte at a time. After calling it, drain
    /// `poll_event` (answering each event as it comes), then write out
    /// [`poll_transmit`](Self::poll_transmit).
    ///
    /// Events are acted on when `poll_event` hands them out, as [`read`](Self::read) does, so
    /// they are answered in the order they arrived: for a message and a close that came in
    /// one read, the application's answer to the message goes out before the close reply
    /// (RFC 6455 §5.5.1 lets the reply wait), and [`state`](Self::state) stays
    /// [`State::Open`] until the [`Event::Close`] is handed out. Nothing after the peer's
    /// close frame is parsed.
    ///
    /// A protocol error fails the connection (its close frame queued, the state
    /// [`State::Closed`]) once the events parsed before it have been handed out: at once,
    /// returning the error, if there are none; otherwise when `poll_event` has handed out the
    /// last of them and returns `None`, and every later call returns the error. Nothing
    /// after the error is parsed.
    pub fn handle_bytes(&mut self, data: &[u8]) -> Result<(), Error> {
        if !data.is_empty() {
            self.note_heard();
        }
        if let Some(e) = &self.error {
            return Err(Error::Protocol(ProtocolError::clone(e)));
        }
        let mut queued = self.rare().queued.take().unwrap_or_default();
        let result = self.queue_events(&mut queued, data);
        self.rare().queued = Some(queued);
        result
    }

    fn queue_events(&mut self, queued: &mut Queued, data: &[u8]) -> Result<(), Error> {
        if queued.error.is_some() || matches!(queued.events.back(), Some(Event::Close(_))) {
            // A close or an error waits for the events before it; nothing after it counts.
            if queued.events.is_empty() {
                if let Some(e) = queued.error.take() {
                    return Err(self.fail_protocol(e));
                }
            }
            return Ok(());
        }
        queued.scratch.clear();
        queued.scratch.extend_from_slice(data);
        let mut input = &mut queued.scratch[..];
        let result = loop {
            match self.next_event(&mut input) {
                Ok(Some(event)) => {
                    let close = matches!(event, Event::Close(_));
                    queued.events.push_back(event.into_owned());
                    if close {
                        break Ok(());
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) if queued.events.is_empty() => break Err(self.fail_protocol(e)),
                Err(e) => {
                    queued.error = Some(e);
                    break Ok(());
                }
            }
        };
        queued.scratch.clear();
        result
    }

    /// The next event queued by [`handle_bytes`](Self::handle_bytes), acted on as it is
    /// handed out: the pong for a ping is queued now ([`Config::auto_pong`]); for a close,
    /// the reply is queued now (unless this side closed first) and the state becomes
    /// [`State::Closed`]. Once the events before a protocol error are all handed out, the
    /// call that returns `None` fails the connection (see `handle_bytes`).
    pub fn poll_event(&mut self) -> Option<Event<'static>> {
        let queued = self.rare.as_mut()?.queued.as_mut()?;
        if let Some(event) = queued.events.pop_front() {
            self.on_event(&event);
            return Some(event);
        }
        if let Some(e) = queued.error.take() {
            self.fail_protocol(e);
        }
        None
    }

    /// Whether `handle_bytes` queued the peer's close or a protocol error that
    /// [`poll_event`](Self::poll_event) has not reached yet.
    fn end_queued(&self) -> bool {
        self.rare
            .as_ref()
            .and_then(|r| r.queued.as_ref())
            .is_some_and(|q| q.error.is_some() || matches!(q.events.back(), Some(Event::Close(_))))
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

    // ----------------------------------------------------------------------------------------
    // Sending
    // ----------------------------------------------------------------------------------------

    /// Queues a message. Messages over [`Config::max_send_frame_size`] go out as several
    /// frames. Fails with [`Error::Closed`] once a close frame was sent or received.
    pub fn send(&mut self, message: Message<'_>) -> Result<(), Error> {
        if self.sending_parts {
            return self.hold(message);
        }
        match &message {
            Message::Text(text) => self.send_data(OpCode::Text, text.as_bytes()),
            Message::Binary(data) => self.send_data(OpCode::Binary, data),
        }
    }

    /// Queues a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.send(Message::text(text))
    }

    /// Queues a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.send(Message::binary(data))
    }

    /// Like [`send`](Self::send), but an owned payload of at least [`OWNED_SEND_MIN`] bytes
    /// that fits in one frame is queued as it is (a client masks it in place) instead of
    /// being copied into the transmit buffer. An echo of a message that arrived in pieces
    /// (handed out owned by [`read`](Self::read)) then costs no copy at all.
    ///
    /// The transmit queue may then be in several pieces, so write it with
    /// [`poll_transmit_vectored`](Self::poll_transmit_vectored), or call
    /// [`poll_transmit`](Self::poll_transmit) and [`consume_transmit`](Self::consume_transmit)
    /// until it is empty.
    ///
    /// ```
    /// use rfc6455::{Config, Connection, Message};
    /// use std::io::IoSlice;
    /// let mut server = Connection::server(Config::default());
    /// server.send_owned(Message::binary(vec![7u8; 100_000])).unwrap();
    /// let mut pieces = [IoSlice::new(&[]); 4];
    /// let n = server.poll_transmit_vectored(&mut pieces);
    /// assert_eq!(n, 2); // the 4-byte header, then the payload where it lies
    /// assert_eq!(pieces[0].len() + pieces[1].len(), server.transmit_len());
    /// ```
    pub fn send_owned(&mut self, message: Message<'_>) -> Result<(), Error> {
        if self.sending_parts {
            return self.hold(message);
        }
        let (opcode, data) = match message {
            Message::Text(Cow::Owned(text)) => (OpCode::Text, text.into_bytes()),
            Message::Binary(Cow::Owned(data)) => (OpCode::Binary, data),
            borrowed => return self.send(borrowed),
        };
        let by_value = data.len() >= OWNED_SEND_MIN
            && data.len() <= self.config.max_send_frame_size
            // A compressed message is a new buffer anyway (set_deflate owns RSV1).
            && self.rsv_allowed & RSV1 == 0;
        if !by_value {
            return self.send_data(opcode, &data);
        }
        if self.state != State::Open {
            return Err(Error::Closed);
        }
        self.write_frame_owned(opcode, data);
        Ok(())
    }

    /// Like [`send_owned`](Self::send_owned), for a transport you can write to right now:
    /// a borrowed payload of at least [`OWNED_SEND_MIN`] bytes that fits in one frame is
    /// offered to `write` where it lies, after everything already queued, as one vectored
    /// write (your transport's `write_vectored`). Only what `write` does not take is copied
    /// into the queue, so a server echoing a message straight out of its read buffer copies
    /// nothing when the socket has room.
    ///
    /// `write` is called at most once, and only then: every other message (small, owned,
    /// compressed, several frames, or from a client, which must mask a copy) goes the way of
    /// `send_owned`, and so does any while a message sent in parts is open (it is held; see
    /// [`send_part`](Self::send_part)). An error from `write` counts as nothing written; the
    /// whole message is queued and your next write meets the error again.
    ///
    /// ```
    /// use rfc6455::{Config, Connection, Message};
    /// use std::io::Write;
    /// let mut server = Connection::server(Config::default());
    /// let payload = vec![7u8; 40_000];
    /// let mut socket = Vec::new(); // stands in for a TcpStream with room for 30,000 bytes
    /// server
    ///     .send_through(Message::binary(&payload[..]), |pieces| {
    ///         let mut room = 30_000;
    ///         for piece in pieces {
    ///             let n = piece.len().min(room);
    ///             socket.write_all(&piece[..n])?;
    ///             room -= n;
    ///         }
    ///         Ok(30_000 - room)
    ///     })
    ///     .unwrap();
    /// assert_eq!(socket.len(), 30_000);
    /// assert_eq!(server.transmit_len(), 4 + 40_000 - 30_000); // the rest is queued, copied
    /// ```
    pub fn send_through<W>(&mut self, message: Message<'_>, write: W) -> Result<(), Error>
    where
        W: FnOnce(&[std::io::IoSlice<'_>]) -> std::io::Result<usize>,
    {
        let (opcode, data) = match &message {
            Message::Text(Cow::Borrowed(text)) => (OpCode::Text, text.as_bytes()),
            Message::Binary(Cow::Borrowed(data)) => (OpCode::Binary, *data),
            _ => return self.send_owned(message),
        };
        let direct = self.role == Role::Server
            && data.len() >= OWNED_SEND_MIN
            && data.len() <= self.config.max_send_frame_size
            && self.rsv_allowed & RSV1 == 0
            && !self.sending_parts;
        if !direct {
            return self.send(message);
        }
        if self.state != State::Open {
            return Err(Error::Closed);
        }
        let mut header = [0u8; MAX_HEADER_LEN];
        let header_len = FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload_len: data.len() as u64,
        }
        .encode(&mut header);
        let header = &header[..header_len];
        let queued = self.transmit_len();
        let written = {
            let mut pieces = [std::io::IoSlice::new(&[]); THROUGH_PIECES];
            let n = self.poll_transmit_vectored(&mut pieces[..THROUGH_PIECES - 2]);
            if pieces[..n].iter().map(|p| p.len()).sum::<usize>() < queued {
                // Too many pieces queued to go ahead of this one in a single write.
                return self.send(message);
            }
            pieces[n] = std::io::IoSlice::new(header);
            pieces[n + 1] = std::io::IoSlice::new(data);
            write(&pieces[..n + 2]).unwrap_or(0)
        };
        let from_queue = written.min(queued);
        self.consume_transmit(from_queue);
        let taken = written - from_queue;
        self.recycle_out();
        if taken < header_len {
            self.out.extend_from_slice(&header[taken..]);
            self.out.extend_from_slice(data);
        } else {
            let from_data = (taken - header_len).min(data.len());
            self.out.extend_from_slice(&data[from_data..]);
        }
        Ok(())
    }

    /// Sends the next part of a binary message whose end is not known yet, as a frame of its
    /// own: the first call starts the message, `last` ends it. A relay or an echo passes on
    /// each [`Event::Part`] it receives this way, with the same `last`, and the message
    /// streams through without being collected. Parts are never compressed; a part larger
    /// than [`Config::max_send_frame_size`] goes out as several frames.
    ///
    /// Until the last part, pings, pongs and a close go out between the parts (RFC 6455
    /// §5.4 lets control frames interleave), but any other message sent meanwhile is held
    /// ([`held_len`](Self::held_len)) and queued right after the last part. Fails with
    /// [`Error::Closed`] once a close frame was sent or received; held messages are then
    /// dropped, never sent, and no longer counted in `held_len`.
    ///
    /// ```
    /// use rfc6455::{Config, Connection};
    /// let mut server = Connection::server(Config::default());
    /// server.send_part(b"Hel", false)?;
    /// server.send_binary(b"held")?; // waits for the last part
    /// server.ping(b"")?; // goes out between the parts
    /// server.send_part(b"lo", true)?;
    /// let wire = server.poll_transmit();
    /// assert_eq!(&wire[..5], &[0x02, 3, b'H', b'e', b'l']); // binary, not final
    /// assert_eq!(&wire[5..7], &[0x89, 0]); // the ping
    /// assert_eq!(&wire[7..11], &[0x80, 2, b'l', b'o']); // continuation, final
    /// assert_eq!(&wire[11..], &[0x82, 4, b'h', b'e', b'l', b'd']); // then the held message
    /// # Ok::<(), rfc6455::Error>(())
    /// ```
    pub fn send_part(&mut self, data: &[u8], last: bool) -> Result<(), Error> {
        if self.state != State::Open {
            return Err(Error::Closed);
        }
        let opcode = if self.sending_parts {
            OpCode::Continuation
        } else {
            OpCode::Binary
        };
        self.write_message(opcode, 0, data, last);
        self.sending_parts = !last;
        if last {
            for message in self.take_held() {
                self.send_owned(message)?;
            }
        }
        Ok(())
    }

    /// Takes the messages held behind a message sent in parts: to send them after its last
    /// part, or to drop them once a close frame went out or the transport ended (nothing may
    /// follow either).
    fn take_held(&mut self) -> VecDeque<Message<'static>> {
        self.rare.as_mut().map_or_else(VecDeque::new, |r| {
            r.held_bytes = 0;
            std::mem::take(&mut r.held)
        })
    }

    /// A message is being received in parts ([`Event::Part`]) and its last part has not
    /// arrived yet.
    pub fn receiving_parts(&self) -> bool {
        self.message_streamed
    }

    /// Payload bytes of the messages held until a message sent in parts ends (see
    /// [`send_part`](Self::send_part)); they are not in [`transmit_len`](Self::transmit_len)
    /// yet.
    pub fn held_len(&self) -> usize {
        self.rare.as_ref().map_or(0, |r| r.held_bytes)
    }

    fn hold(&mut self, message: Message<'_>) -> Result<(), Error> {
        if self.state != State::Open {
            return Err(Error::Closed);
        }
        let rare = self.rare();
        rare.held_bytes += message.len();
        rare.held.push_back(message.into_owned());
        Ok(())
    }

    fn send_data(&mut self, opcode: OpCode, data: &[u8]) -> Result<(), Error> {
        if self.state != State::Open {
            return Err(Error::Closed);
        }
        #[cfg(feature = "deflate")]
        if let Some(mut codec) = self.rare.as_mut().and_then(|r| r.deflate.take()) {
            if let Some(compressed) = codec.compress(data) {
                self.write_message(opcode, RSV1, compressed, true);
            } else {
                self.write_message(opcode, 0, data, true);
            }
            self.rare().deflate = Some(codec);
            return Ok(());
        }
        self.write_message(opcode, 0, data, true);
        Ok(())
    }

    /// Queues a message (or, without `fin`, the start of one) as frames of at most
    /// `max_send_frame_size`, `rsv` on the first.
    fn write_message(&mut self, opcode: OpCode, rsv: u8, data: &[u8], fin: bool) {
        let max = self.config.max_send_frame_size.max(1);
        if data.len() <= max {
            self.write_frame_rsv(opcode, fin, rsv, data);
            return;
        }
        let mut chunks = data.chunks(max).peekable();
        let (mut opcode, mut rsv) = (opcode, rsv);
        while let Some(chunk) = chunks.next() {
            self.write_frame_rsv(opcode, fin && chunks.peek().is_none(), rsv, chunk);
            opcode = OpCode::Continuation;
            rsv = 0;
        }
    }

    /// Queues a ping (payload at most 125 bytes).
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Queues an unsolicited pong (payload at most 125 bytes), e.g. as a heartbeat.
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.send_control(OpCode::Pong, payload)
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), Error> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(Error::Usage(UsageError::ControlPayloadTooLong(
                payload.len(),
            )));
        }
        if self.state != State::Open {
            return Err(Error::Closed);
        }
        self.write_frame(opcode, true, payload);
        Ok(())
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

    fn write_close(&mut self, code: CloseCode, reason: &str) {
        let reason = truncate_reason(reason);
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        payload[..2].copy_from_slice(&code.0.to_be_bytes());
        payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
        self.write_frame(OpCode::Close, true, &payload[..2 + reason.len()]);
        self.take_held();
    }

    fn write_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
        self.write_frame_rsv(opcode, fin, 0, payload);
    }

    fn write_frame_rsv(&mut self, opcode: OpCode, fin: bool, rsv: u8, payload: &[u8]) {
        let mask = self.write_header(opcode, fin, rsv, payload.len());
        match mask {
            Some(key) => extend_masked(&mut self.out, payload, key),
            None => self.out.extend_from_slice(payload),
        }
    }

    /// Appends a frame header (masked with a fresh key for a client) to the transmit buffer,
    /// reusing the buffer from the start once all of it was written; returns the key.
    fn write_header(&mut self, opcode: OpCode, fin: bool, rsv: u8, len: usize) -> Option<[u8; 4]> {
        self.recycle_out();
        let mask = match &mut self.rare {
            Some(rare) => rare.masks.as_mut().map(|m| m.next_mask()),
            None => None,
        };
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len: len as u64,
        };
        header.encode_to(&mut self.out);
        mask
    }

    /// Once every queued byte is written, the transmit buffer starts over.
    fn recycle_out(&mut self) {
        if self.out_pos == self.out.len() && !self.has_segments() {
            self.out.clear();
            self.out_pos = 0;
        }
    }

    /// Queues one final, uncompressed frame whose payload stays in its own allocation.
    fn write_frame_owned(&mut self, opcode: OpCode, mut payload: Vec<u8>) {
        let mask = self.write_header(opcode, true, 0, payload.len());
        if let Some(key) = mask {
            apply_mask(&mut payload, key, 0);
        }
        self.push_segment(SegmentData::Owned(payload));
    }

    /// Queues `data` by reference, to go out after everything in `out` now.
    fn push_segment(&mut self, data: SegmentData) {
        let at = self.out.len();
        let rare = self.rare();
        rare.segment_bytes += data.len();
        rare.segments.push_back(Segment { at, data });
    }

    /// Queues a message encoded once for many connections (see [`SharedFrame`]): a frame of
    /// [`OWNED_SEND_MIN`] bytes or more by reference, a smaller one copied into the transmit
    /// buffer. A client masks a copy (a server's frame is unmasked). While a message sent in
    /// parts is open, the message is held like any other (see [`send_part`](Self::send_part)).
    /// With permessage-deflate negotiated, a server that compresses each message alone
    /// (`server_no_context_takeover`) with a 15-bit window sends the frame compressed, once for
    /// every such connection (the first compresses it, at its own level; under its
    /// threshold, or when it does not shrink, it goes out plain); every other deflate
    /// connection gets it uncompressed, which RFC 7692 allows for any message. Fails with [`Error::Closed`] once a close frame was sent or
    /// received.
    pub fn send_shared(&mut self, frame: &SharedFrame) -> Result<(), Error> {
        if self.state != State::Open {
            return Err(Error::Closed);
        }
        if self.sending_parts {
            return self.hold(frame.message());
        }
        if self.role == Role::Client {
            let opcode = if frame.is_text() {
                OpCode::Text
            } else {
                OpCode::Binary
            };
            self.write_frame(opcode, true, frame.payload());
            return Ok(());
        }
        #[cfg_attr(not(feature = "deflate"), allow(unused_mut))]
        let mut bytes = frame.shared_bytes();
        // A connection that compresses each message alone with the full window takes the
        // frame compressed once for all of them.
        #[cfg(feature = "deflate")]
        if let Some((threshold, level)) = self
            .rare
            .as_ref()
            .and_then(|r| r.deflate.as_ref())
            .and_then(|c| c.takes_messages_compressed_alone())
        {
            if frame.payload().len() >= threshold {
                if let Some(compressed) = frame.compressed(level) {
                    bytes = compressed;
                }
            }
        }
        self.recycle_out();
        if bytes.len() < OWNED_SEND_MIN {
            self.out.extend_from_slice(bytes);
        } else {
            let bytes = bytes.clone();
            self.push_segment(SegmentData::Shared(bytes));
        }
        Ok(())
    }

    fn has_segments(&self) -> bool {
        self.rare.as_ref().is_some_and(|r| !r.segments.is_empty())
    }

    /// The next bytes waiting to be written to the transport: all of them, or, after
    /// [`send_owned`](Self::send_owned), the first of several pieces. Write as many as it
    /// takes, call [`consume_transmit`](Self::consume_transmit) with that count, and call
    /// again until it returns an empty slice.
    pub fn poll_transmit(&self) -> &[u8] {
        if let Some(rare) = &self.rare {
            if let Some(first) = rare.segments.front() {
                return if self.out_pos < first.at {
                    &self.out[self.out_pos..first.at]
                } else {
                    &first.data[rare.segment_pos..]
                };
            }
        }
        &self.out[self.out_pos..]
    }

    /// Fills `pieces` with the bytes waiting to be written, in order, for one vectored write
    /// (`std::io::Write::write_vectored`); returns how many it filled (0: nothing to write).
    /// Queues longer than `pieces` are cut short; what is left comes next time.
    pub fn poll_transmit_vectored<'a>(&'a self, pieces: &mut [std::io::IoSlice<'a>]) -> usize {
        let slots = pieces.len();
        let mut n = 0;
        let mut push = |bytes: &'a [u8]| {
            if !bytes.is_empty() && n < pieces.len() {
                pieces[n] = std::io::IoSlice::new(bytes);
                n += 1;
            }
        };
        let mut pos = self.out_pos;
        if let Some(rare) = &self.rare {
            let mut written = rare.segment_pos;
            // Each segment takes at least one slot: the rest cannot fit this time.
            for segment in rare.segments.iter().take(slots) {
                push(&self.out[pos..segment.at]);
                push(&segment.data[written..]);
                pos = segment.at;
                written = 0;
            }
        }
        push(&self.out[pos..]);
        n
    }

    /// Bytes waiting to be written, in all pieces.
    pub fn transmit_len(&self) -> usize {
        let segments = self
            .rare
            .as_ref()
            .map_or(0, |r| r.segment_bytes - r.segment_pos);
        self.out.len() - self.out_pos + segments
    }

    /// Marks `n` bytes of the transmit queue as written (at most
    /// [`transmit_len`](Self::transmit_len) count).
    pub fn consume_transmit(&mut self, mut n: usize) {
        if let Some(rare) = &mut self.rare {
            while let Some(first) = rare.segments.front() {
                let before = (first.at - self.out_pos).min(n);
                self.out_pos += before;
                n -= before;
                if self.out_pos < first.at {
                    return;
                }
                let left = first.data.len() - rare.segment_pos;
                if n < left {
                    rare.segment_pos += n;
                    return;
                }
                n -= left;
                rare.segment_pos = 0;
                rare.segment_bytes -= first.data.len();
                rare.segments.pop_front();
            }
        }
        self.out_pos = (self.out_pos + n).min(self.out.len());
        self.recycle_out();
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

    /// Frees buffers that hold no data, so an idle connection costs only its fixed state.
    pub fn shrink_buffers(&mut self) {
        if self.out_pos == self.out.len() && !self.has_segments() {
            self.out = Vec::new();
            self.out_pos = 0;
        }
        let mid_message = self.frame.is_some() || self.in_message;
        if !mid_message && self.partial.as_ref().is_some_and(|p| p.header_len == 0) {
            self.partial = None;
        }
        if let Some(rare) = &mut self.rare {
            if rare.queued.as_ref().is_some_and(|q| q.events.is_empty()) {
                rare.queued = None;
            }
            #[cfg(feature = "deflate")]
            if let Some(codec) = &mut rare.deflate {
                codec.shrink(mid_message);
            }
            if rare.is_unused() {
                // A server connection that once sent a message by value keeps nothing of it.
                self.rare = None;
            }
        }
    }

    /// Exchanges the (empty) transmit buffer with `spare`, so an event loop can lend one
    /// allocation to whichever connection it is serving and take it back once everything
    /// was written: no allocation per message, and an idle connection holds no buffer.
    ///
    /// Does nothing and returns `false` while bytes wait in
    /// [`poll_transmit`](Self::poll_transmit); otherwise `spare` is cleared, swapped in, and
    /// `spare` receives the connection's previous (empty) buffer.
    pub fn swap_transmit_buffer(&mut self, spare: &mut Vec<u8>) -> bool {
        if self.out_pos != self.out.len() || self.has_segments() {
            return false;
        }
        spare.clear();
        std::mem::swap(&mut self.out, spare);
        spare.clear();
        self.out_pos = 0;
        true
    }
}

#[cfg(test)]
// Config is #[non_exhaustive]: default-then-assign is how users build one too.
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;

    fn server() -> Connection {
        Connection::server(Config::default())
    }

    /// A masked client frame, as bytes.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut c = Connection::client(Config::default(), || [0xA1, 0xB2, 0xC3, 0xD4]);
        let op = OpCode::from_bits(opcode).unwrap();
        c.write_frame(op, fin, payload);
        c.poll_transmit().to_vec()
    }

    fn events(conn: &mut Connection) -> Vec<Event<'static>> {
        std::iter::from_fn(|| conn.poll_event()).collect()
    }

    #[test]
    fn rfc_5_7_examples_server_receives() {
        // A single-frame masked text message.
        let mut s = server();
        s.handle_bytes(&[
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ])
        .unwrap();
        assert_eq!(events(&mut s), vec![Event::Message(Message::text("Hello"))]);
        // A masked ping; the pong goes back unmasked.
        s.handle_bytes(&[
            0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ])
        .unwrap();
        assert_eq!(events(&mut s), vec![Event::Ping(Cow::Borrowed(b"Hello"))]);
        assert_eq!(
            s.poll_transmit(),
            &[0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
    }

    #[test]
    fn rfc_5_7_examples_client_receives() {
        let mut c = Connection::client(Config::default(), || [0x37, 0xfa, 0x21, 0x3d]);
        // Unmasked "Hello", then the same in two fragments.
        c.handle_bytes(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])
            .unwrap();
        c.handle_bytes(&[0x01, 0x03, 0x48, 0x65, 0x6c]).unwrap();
        c.handle_bytes(&[0x80, 0x02, 0x6c, 0x6f]).unwrap();
        // Unmasked pong; 256 and 64 KiB binary headers.
        c.handle_bytes(&[0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])
            .unwrap();
        let mut big = vec![0x82, 0x7E, 0x01, 0x00];
        big.extend(std::iter::repeat_n(7u8, 256));
        big.extend([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
        big.extend(std::iter::repeat_n(9u8, 65536));
        c.handle_bytes(&big).unwrap();
        assert_eq!(
            events(&mut c),
            vec![
                Event::Message(Message::text("Hello")),
                Event::Message(Message::text("Hello")),
                Event::Pong(Cow::Borrowed(b"Hello")),
                Event::Message(Message::binary(vec![7u8; 256])),
                Event::Message(Message::binary(vec![9u8; 65536])),
            ]
        );
        // And the client's own "Hello" is the masked example byte for byte.
        c.send_text("Hello").unwrap();
        assert_eq!(
            c.poll_transmit(),
            &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
    }

    #[test]
    fn control_frames_inside_a_fragmented_message() {
        let mut s = server();
        let mut wire = client_frame(false, 0x1, b"Hel");
        wire.extend(client_frame(true, 0x9, b"p"));
        wire.extend(client_frame(false, 0x0, b"l"));
        wire.extend(client_frame(true, 0xA, b""));
        wire.extend(client_frame(true, 0x0, b"o"));
        for byte in &wire {
            s.handle_bytes(std::slice::from_ref(byte)).unwrap();
        }
        assert_eq!(
            events(&mut s),
            vec![
                Event::Ping(Cow::Borrowed(b"p")),
                Event::Pong(Cow::Borrowed(b"")),
                Event::Message(Message::text("Hello")),
            ]
        );
    }

    #[test]
    fn close_handshake_server_answers_and_closes_first() {
        let mut s = server();
        s.handle_bytes(&client_frame(true, 0x8, b"\x03\xe8bye"))
            .unwrap();
        assert_eq!(
            events(&mut s),
            vec![Event::Close(Some(CloseFrame {
                code: CloseCode::NORMAL,
                reason: "bye".into()
            }))]
        );
        assert_eq!(s.state(), State::Closed);
        assert_eq!(s.poll_transmit(), &[0x88, 0x02, 0x03, 0xe8]);
        assert!(!s.should_close_transport(), "the reply is not written yet");
        s.consume_transmit(4);
        assert!(s.should_close_transport());
        assert_eq!(s.send_text("late"), Err(Error::Closed));
    }

    #[test]
    fn close_handshake_client_initiates_and_waits_for_the_server() {
        let mut c = Connection::client(Config::default(), || [0; 4]);
        c.close(CloseCode::GOING_AWAY, "done").unwrap();
        assert_eq!(c.state(), State::Closing);
        let n = c.poll_transmit().len();
        c.consume_transmit(n);
        // Messages the server sent before its close are still delivered.
        c.handle_bytes(&[0x81, 0x02, b'h', b'i', 0x88, 0x02, 0x03, 0xe9])
            .unwrap();
        assert_eq!(
            events(&mut c),
            vec![
                Event::Message(Message::text("hi")),
                Event::Close(Some(CloseFrame {
                    code: CloseCode::GOING_AWAY,
                    reason: "".into()
                }))
            ]
        );
        assert_eq!(c.state(), State::Closed);
        assert!(c.poll_transmit().is_empty(), "no second close frame");
        assert!(
            !c.should_close_transport(),
            "a client waits for the server to close TCP"
        );
        assert_eq!(c.handle_eof(), Ok(()));
    }

    #[test]
    fn eof_before_the_close_handshake_is_a_lost_connection() {
        let mut s = server();
        s.handle_bytes(&client_frame(true, 0x2, b"abc")[..5])
            .unwrap();
        assert_eq!(s.handle_eof(), Err(Error::ConnectionLost));
        assert_eq!(s.state(), State::Closed);
    }

    #[test]
    fn errors_queue_their_close_frame_and_stick() {
        let mut s = server();
        let err = s.handle_bytes(&client_frame(true, 0x0, b"x")).unwrap_err();
        assert_eq!(err, Error::Protocol(ProtocolError::UnexpectedContinuation));
        let out = s.poll_transmit();
        assert_eq!(&out[..4], &[0x88, out[1], 0x03, 0xea]);
        assert_eq!(s.handle_bytes(&client_frame(true, 0x1, b"fine")), Err(err));
        assert!(events(&mut s).is_empty());
    }

    #[test]
    fn limits_are_checked_against_the_length_field() {
        let mut config = Config::default();
        config.max_frame_size = 100;
        config.max_message_size = 150;
        let mut s = Connection::server(config.clone());
        // Only the header of a 101-byte frame: refused before any payload arrives.
        let frame = client_frame(true, 0x2, &[0; 101]);
        let err = s.handle_bytes(&frame[..8]).unwrap_err();
        assert_eq!(
            err,
            Error::Protocol(ProtocolError::FrameTooLarge { len: 101, max: 100 })
        );
        let mut s = Connection::server(config);
        let mut wire = client_frame(false, 0x2, &[0; 100]);
        wire.extend(client_frame(true, 0x0, &[0; 51]));
        let err = s.handle_bytes(&wire).unwrap_err();
        assert!(err.to_string().contains("max_message_size"), "{err}");
        assert_eq!(&s.poll_transmit()[2..4], &[0x03, 0xf1]);
    }

    #[test]
    fn invalid_utf8_fails_mid_frame() {
        let mut s = server();
        let frame = client_frame(
            true,
            0x1,
            b"valid then \xF4\x90 and more that never arrives",
        );
        // Only up to the impossible byte: the frame is far from complete.
        let err = s.handle_bytes(&frame[..6 + 13]).unwrap_err();
        assert_eq!(err, Error::Protocol(ProtocolError::InvalidUtf8));
        assert_eq!(&s.poll_transmit()[2..4], &[0x03, 0xef]);
    }

    #[test]
    fn read_borrows_a_whole_message_from_the_input() {
        let mut s = server();
        let mut buf = client_frame(true, 0x2, b"zero copy");
        let start = buf.as_ptr() as usize;
        let mut input = &mut buf[..];
        let Some(Event::Message(Message::Binary(Cow::Borrowed(data)))) =
            s.read(&mut input).unwrap()
        else {
            panic!("expected a borrowed binary message");
        };
        assert_eq!(data, b"zero copy");
        assert_eq!(
            data.as_ptr() as usize,
            start + 6,
            "the payload is the input's own bytes"
        );
        assert!(s.read(&mut input).unwrap().is_none());
    }

    #[test]
    fn large_messages_are_sent_in_frames_of_the_configured_size() {
        let mut config = Config::default();
        config.max_send_frame_size = 4;
        let mut s = Connection::server(config);
        s.send_binary(b"0123456789").unwrap();
        assert_eq!(
            s.poll_transmit(),
            b"\x02\x040123\x00\x044567\x80\x0289".as_slice()
        );
    }

    #[test]
    fn usage_errors_change_nothing() {
        let mut s = server();
        assert_eq!(
            s.ping(&[0; 126]),
            Err(Error::Usage(UsageError::ControlPayloadTooLong(126)))
        );
        assert_eq!(
            s.close(CloseCode::NO_STATUS, ""),
            Err(Error::Usage(UsageError::UnsendableCloseCode(1005)))
        );
        assert!(s.poll_transmit().is_empty());
        assert_eq!(s.state(), State::Open);
    }

    #[test]
    fn transmit_buffer_is_lent_and_taken_back_only_when_empty() {
        let mut s = server();
        let mut spare = Vec::with_capacity(4096);
        assert!(s.swap_transmit_buffer(&mut spare));
        assert_eq!(spare.capacity(), 0, "the connection's own buffer was empty");
        s.send_text("hi").unwrap();
        assert!(!s.swap_transmit_buffer(&mut spare), "bytes are pending");
        assert_eq!(s.poll_transmit(), b"\x81\x02hi");
        s.consume_transmit(4);
        assert!(s.swap_transmit_buffer(&mut spare));
        assert!(spare.capacity() >= 4096 && spare.is_empty());
        assert!(s.poll_transmit().is_empty());
    }

    /// Everything `conn` has to send, taken `step` bytes at a time through `poll_transmit`.
    fn drain_in_steps(conn: &mut Connection, step: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        loop {
            let piece = conn.poll_transmit();
            if piece.is_empty() {
                assert_eq!(conn.transmit_len(), 0);
                return wire;
            }
            let n = piece.len().min(step);
            wire.extend_from_slice(&piece[..n]);
            let before = conn.transmit_len();
            conn.consume_transmit(n);
            assert_eq!(conn.transmit_len(), before - n);
        }
    }

    /// Everything `conn` has to send, through `poll_transmit_vectored` with `slots` pieces.
    fn drain_vectored(conn: &mut Connection, slots: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        loop {
            let mut pieces = vec![std::io::IoSlice::new(&[]); slots];
            let n = conn.poll_transmit_vectored(&mut pieces);
            if n == 0 {
                assert_eq!(conn.transmit_len(), 0);
                return wire;
            }
            let before = wire.len();
            for piece in &pieces[..n] {
                assert!(!piece.is_empty(), "no empty pieces");
                wire.extend_from_slice(piece);
            }
            conn.consume_transmit(wire.len() - before);
        }
    }

    /// How [`owned_and_copied`] queues its big messages.
    #[derive(Clone, Copy, Debug)]
    enum Way {
        Copied,
        Owned,
        /// `send_through` with a transport that takes at most this many bytes per write.
        Through(usize),
    }

    /// The same sends through `send` (copying), `send_owned` and `send_through`, with writes
    /// in between: every way puts the same bytes on the wire.
    fn owned_and_copied(role: Role, drain: &dyn Fn(&mut Connection) -> Vec<u8>) {
        let make = || {
            let mut counter = 0u8;
            let masks = move || {
                counter = counter.wrapping_add(1);
                [counter, 0x5a, counter ^ 0xff, 3]
            };
            match role {
                Role::Server => server(),
                Role::Client => Connection::client(Config::default(), masks),
            }
        };
        let big = |len: usize, seed: u8| -> Vec<u8> {
            (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect()
        };
        let ways = [
            Way::Copied,
            Way::Owned,
            Way::Through(0),
            Way::Through(1),
            Way::Through(3),
            Way::Through(4097),
            Way::Through(20_000),
            Way::Through(usize::MAX),
        ];
        let mut wires = Vec::new();
        for way in ways {
            let mut conn = make();
            let wire = std::cell::RefCell::new(Vec::new());
            let send = |conn: &mut Connection, message: Message<'static>| match way {
                Way::Copied => conn.send(message).unwrap(),
                Way::Owned => conn.send_owned(message).unwrap(),
                Way::Through(budget) => {
                    let message = match &message {
                        Message::Text(text) => Message::text(&text[..]),
                        Message::Binary(data) => Message::binary(&data[..]),
                    };
                    conn.send_through(message, |pieces| {
                        let mut room = budget;
                        for piece in pieces {
                            assert!(!piece.is_empty(), "no empty pieces");
                            let n = piece.len().min(room);
                            wire.borrow_mut().extend_from_slice(&piece[..n]);
                            room -= n;
                        }
                        Ok(budget - room)
                    })
                    .unwrap()
                }
            };
            let conn = &mut conn;
            conn.ping(b"p").unwrap();
            send(conn, Message::binary(big(OWNED_SEND_MIN, 3)));
            // Write part of the queue, ending inside the first payload.
            for _ in 0..2 {
                let n = conn.poll_transmit().len().min(1000);
                wire.borrow_mut()
                    .extend_from_slice(&conn.poll_transmit()[..n]);
                conn.consume_transmit(n);
            }
            conn.send_text("small").unwrap();
            send(conn, Message::text("é".repeat(40_000)));
            send(conn, Message::binary(big(100_000, 7)));
            conn.pong(b"").unwrap();
            let rest = drain(conn);
            wire.borrow_mut().extend(rest);
            // Once empty, the queue is one buffer again.
            send(conn, Message::binary(big(20_000, 5)));
            let rest = drain(conn);
            wire.borrow_mut().extend(rest);
            wires.push((way, wire.into_inner()));
        }
        for (way, wire) in &wires[1..] {
            assert!(wire == &wires[0].1, "{role:?} {way:?}");
        }
        // And the peer reads every message back.
        let mut peer = match role {
            Role::Server => Connection::client(Config::default(), || [0; 4]),
            Role::Client => server(),
        };
        peer.handle_bytes(&wires[0].1).unwrap();
        let sizes: Vec<usize> = std::iter::from_fn(|| peer.poll_event())
            .filter_map(|e| match e {
                Event::Message(m) => Some(m.len()),
                _ => None,
            })
            .collect();
        assert_eq!(sizes, [OWNED_SEND_MIN, 5, 80_000, 100_000, 20_000]);
    }

    #[test]
    fn owned_sends_put_the_same_bytes_on_the_wire_as_copied_ones() {
        for role in [Role::Server, Role::Client] {
            for step in [1, 3, 4096, 65_536, usize::MAX] {
                owned_and_copied(role, &|c| drain_in_steps(c, step));
            }
            for slots in [1, 2, 3, 16] {
                owned_and_copied(role, &|c| drain_vectored(c, slots));
            }
        }
    }

    /// Offers `message` through a transport that takes `room` bytes; returns what it took
    /// and how many times it was called.
    fn through(conn: &mut Connection, message: Message<'_>, room: usize) -> (Vec<u8>, usize) {
        let (mut taken, mut calls) = (Vec::new(), 0);
        conn.send_through(message, |pieces| {
            calls += 1;
            for piece in pieces {
                taken.extend_from_slice(piece);
            }
            taken.truncate(room);
            Ok(taken.len())
        })
        .unwrap();
        (taken, calls)
    }

    #[test]
    fn through_writes_a_borrowed_payload_from_where_it_lies() {
        let mut s = server();
        let payload = vec![9u8; OWNED_SEND_MIN];
        s.send_text("queued first").unwrap();
        let mut addresses = Vec::new();
        s.send_through(Message::binary(&payload[..]), |pieces| {
            addresses.extend(pieces.iter().map(|p| p.as_ptr()));
            Ok(pieces.iter().map(|p| p.len()).sum())
        })
        .unwrap();
        assert_eq!(addresses.len(), 3, "queued frame, header, payload");
        assert_eq!(addresses[2], payload.as_ptr(), "the payload was not copied");
        assert_eq!(s.transmit_len(), 0);

        // Not taken, or taken in part: the rest is queued, in order, after the first write.
        let (taken, _) = through(&mut s, Message::binary(&payload[..]), 0);
        assert!(taken.is_empty());
        assert_eq!(s.transmit_len(), 4 + OWNED_SEND_MIN);
        let (taken, _) = through(&mut s, Message::binary(&payload[..]), 10);
        assert_eq!(taken.len(), 10);
        assert_eq!(s.transmit_len(), 2 * (4 + OWNED_SEND_MIN) - 10);

        // A failed write is nothing written.
        let mut s = server();
        s.send_through(Message::binary(&payload[..]), |_| {
            Err(std::io::ErrorKind::BrokenPipe.into())
        })
        .unwrap();
        assert_eq!(s.transmit_len(), 4 + OWNED_SEND_MIN);

        // Not offered to the transport: small, owned, several frames, from a client,
        // compressed, closed.
        let mut config = Config::default();
        config.max_send_frame_size = 20_000;
        let mut s = Connection::server(config);
        let mut c = Connection::client(Config::default(), || [1, 2, 3, 4]);
        let small = [1u8; OWNED_SEND_MIN - 1];
        let large = [2u8; 20_001];
        for (client, message) in [
            (false, Message::binary(&small[..])),
            (false, Message::binary(payload.clone())),
            (false, Message::binary(&large[..])),
            (true, Message::binary(&payload[..])),
        ] {
            let conn = if client { &mut c } else { &mut s };
            let before = conn.transmit_len();
            let len = message.len();
            let (_, calls) = through(conn, message, usize::MAX);
            assert_eq!(calls, 0);
            assert!(conn.transmit_len() >= before + len, "queued instead");
        }
        #[cfg(feature = "deflate")]
        {
            let mut s = server();
            s.set_deflate(DeflateParams::default());
            let (_, calls) = through(&mut s, Message::binary(&payload[..]), usize::MAX);
            assert_eq!(calls, 0);
            assert!(s.transmit_len() < 1000, "compressed instead");
        }
        let mut s = server();
        s.close(CloseCode::NORMAL, "").unwrap();
        let refused = s.send_through(Message::binary(&payload[..]), |_| Ok(0));
        assert!(matches!(refused, Err(Error::Closed)));
    }

    #[test]
    fn through_after_an_owned_payload_keeps_the_order_when_the_write_stops_inside_it() {
        let first: Vec<u8> = (0..20_000).map(|i| (i % 241) as u8).collect();
        let second: Vec<u8> = (0..30_000).map(|i| (i % 239) as u8).collect();
        let mut copied = server();
        copied.send_binary(&first).unwrap();
        copied.send_binary(&second).unwrap();
        let expected = drain_in_steps(&mut copied, usize::MAX);
        // The write ends in the owned payload's middle, at its end, and inside the header.
        for room in [10_000, 4 + 20_000, 4 + 20_000 + 2] {
            let mut s = server();
            s.send_owned(Message::binary(first.clone())).unwrap();
            let (mut wire, calls) = through(&mut s, Message::binary(&second[..]), room);
            assert_eq!(calls, 1);
            wire.extend(drain_vectored(&mut s, 3));
            assert!(wire == expected, "room {room}");
        }
    }

    #[test]
    fn through_queues_behind_more_pieces_than_one_write_takes() {
        let mut s = server();
        let owned: Vec<Vec<u8>> = (0..THROUGH_PIECES)
            .map(|i| vec![i as u8; OWNED_SEND_MIN])
            .collect();
        for data in owned {
            s.send_owned(Message::binary(data)).unwrap();
        }
        let before = s.transmit_len();
        let payload = vec![7u8; OWNED_SEND_MIN];
        let (_, calls) = through(&mut s, Message::binary(&payload[..]), usize::MAX);
        assert_eq!(calls, 0, "it would have jumped the queue");
        assert_eq!(s.transmit_len(), before + 4 + OWNED_SEND_MIN);
        let wire = drain_vectored(&mut s, 3);
        assert_eq!(&wire[wire.len() - OWNED_SEND_MIN..], &payload[..]);
    }

    #[test]
    fn owned_sends_queue_the_payload_apart_only_when_it_pays() {
        let mut s = server();
        let payload = vec![1u8; OWNED_SEND_MIN];
        let address = payload.as_ptr();
        s.send_owned(Message::binary(payload)).unwrap();
        {
            let mut pieces = [std::io::IoSlice::new(&[]); 4];
            assert_eq!(
                s.poll_transmit_vectored(&mut pieces),
                2,
                "header, then payload"
            );
            assert_eq!(pieces[1].as_ptr(), address, "the payload was not copied");
        }
        let mut spare = Vec::new();
        assert!(!s.swap_transmit_buffer(&mut spare), "bytes are pending");
        s.shrink_buffers();
        assert_eq!(
            s.transmit_len(),
            4 + OWNED_SEND_MIN,
            "shrinking keeps queued bytes"
        );
        s.consume_transmit(usize::MAX);
        assert!(s.swap_transmit_buffer(&mut spare));
        s.shrink_buffers();
        assert!(s.rare.is_none(), "nothing is kept once it is written");

        // Copied instead: too small, borrowed, more than one frame.
        let mut config = Config::default();
        config.max_send_frame_size = 50_000;
        let mut s = Connection::server(config);
        s.send_owned(Message::binary(vec![1u8; OWNED_SEND_MIN - 1]))
            .unwrap();
        s.send_owned(Message::binary(&[2u8; 20_000][..])).unwrap();
        s.send_owned(Message::binary(vec![3u8; 50_001])).unwrap();
        let mut pieces = [std::io::IoSlice::new(&[]); 4];
        assert_eq!(s.poll_transmit_vectored(&mut pieces), 1);
        assert_eq!(s.transmit_len(), s.poll_transmit().len());

        // Compressed: deflate makes a new buffer anyway.
        #[cfg(feature = "deflate")]
        {
            let mut s = server();
            s.set_deflate(DeflateParams::default());
            s.send_owned(Message::binary(vec![4u8; OWNED_SEND_MIN]))
                .unwrap();
            assert_eq!(s.poll_transmit_vectored(&mut pieces), 1);
            assert!(s.transmit_len() < 1000, "compressed");
        }

        // Closed: refused like send.
        let mut s = server();
        s.close(CloseCode::NORMAL, "").unwrap();
        let refused = s.send_owned(Message::binary(vec![0u8; OWNED_SEND_MIN]));
        assert!(matches!(refused, Err(Error::Closed)));
    }

    #[test]
    fn auto_pong_can_be_switched_off() {
        let mut config = Config::default();
        config.auto_pong = false;
        let mut s = Connection::server(config);
        s.handle_bytes(&client_frame(true, 0x9, b"beat")).unwrap();
        assert_eq!(events(&mut s), vec![Event::Ping(Cow::Borrowed(b"beat"))]);
        assert!(s.poll_transmit().is_empty());
    }
}
