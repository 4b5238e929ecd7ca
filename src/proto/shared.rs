//! A message encoded once, as a server's frame, to be queued on many connections by
//! reference: what a broadcast or a pub/sub topic sends.

use super::connection::Message;
use super::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use std::fmt;
use std::sync::Arc;

/// A text or binary message encoded once as one unmasked, final frame (header and payload in
/// one shared allocation), for [`Connection::send_shared`](super::Connection::send_shared).
///
/// Cloning it clones a pointer. A server that sends the same message to many connections
/// builds one `SharedFrame` and hands it to each: no header is built and, from
/// [`OWNED_SEND_MIN`](super::OWNED_SEND_MIN) bytes up, no payload copied per connection
/// (smaller frames are copied into each connection's transmit buffer, which costs less than
/// a separate piece in its vectored write).
///
/// ```
/// use rfc6455::{Config, Connection, Message, SharedFrame};
///
/// let frame = SharedFrame::new(&Message::text("Hello"));
/// let mut a = Connection::server(Config::default());
/// let mut b = Connection::server(Config::default());
/// a.send_shared(&frame)?;
/// b.send_shared(&frame)?;
/// assert_eq!(a.poll_transmit(), &[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
/// assert_eq!(a.poll_transmit(), b.poll_transmit());
/// # Ok::<(), rfc6455::Error>(())
/// ```
#[derive(Clone)]
pub struct SharedFrame {
    bytes: Arc<[u8]>,
    header_len: u8,
    text: bool,
    /// The same message compressed on its own (RSV1 set), made by the first connection
    /// that can take it; `None` inside when compressing does not pay.
    #[cfg(feature = "deflate")]
    compressed: Arc<std::sync::OnceLock<Option<Arc<[u8]>>>>,
}

impl SharedFrame {
    /// Encodes `message` as one final, unmasked frame (the form a server sends), whatever its
    /// size: a connection's [`Config::max_send_frame_size`](super::Config::max_send_frame_size)
    /// does not split it. A client connection masks a copy of it instead of sharing it.
    pub fn new(message: &Message<'_>) -> SharedFrame {
        let (opcode, payload) = match message {
            Message::Text(text) => (OpCode::Text, text.as_bytes()),
            Message::Binary(data) => (OpCode::Binary, &data[..]),
        };
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload_len: payload.len() as u64,
        };
        let mut bytes = Vec::with_capacity(MAX_HEADER_LEN + payload.len());
        header.encode_to(&mut bytes);
        let header_len = bytes.len();
        bytes.extend_from_slice(payload);
        SharedFrame {
            bytes: bytes.into(),
            header_len: header_len as u8,
            text: matches!(opcode, OpCode::Text),
            #[cfg(feature = "deflate")]
            compressed: Arc::default(),
        }
    }

    /// The frame compressed on its own with a 15-bit window at `level` (made once, by the
    /// first caller, whose `level` then holds for all), if that makes it smaller.
    #[cfg(feature = "deflate")]
    pub(crate) fn compressed(&self, level: u32) -> Option<&Arc<[u8]>> {
        self.compressed
            .get_or_init(|| {
                let payload = super::deflate::compress_alone(self.payload(), level)?;
                let header = FrameHeader {
                    fin: true,
                    rsv: super::frame::RSV1,
                    opcode: if self.text {
                        OpCode::Text
                    } else {
                        OpCode::Binary
                    },
                    mask: None,
                    payload_len: payload.len() as u64,
                };
                let mut bytes = Vec::with_capacity(MAX_HEADER_LEN + payload.len());
                header.encode_to(&mut bytes);
                bytes.extend_from_slice(&payload);
                Some(bytes.into())
            })
            .as_ref()
    }

    /// The whole frame, header and payload, as it goes on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The message's payload.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[usize::from(self.header_len)..]
    }

    /// Whether it is a text message.
    pub fn is_text(&self) -> bool {
        self.text
    }

    /// The frame's length on the wire.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always `false`: a frame has at least its two header bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The message again, borrowing the payload.
    pub fn message(&self) -> Message<'_> {
        let payload = self.payload();
        match (self.text, std::str::from_utf8(payload)) {
            (true, Ok(text)) => Message::text(text),
            // Built from a `Message::Text`, so always UTF-8; binary otherwise.
            _ => Message::binary(payload),
        }
    }

    /// The shared bytes (for the transmit queue).
    pub(crate) fn shared_bytes(&self) -> &Arc<[u8]> {
        &self.bytes
    }
}

impl fmt::Debug for SharedFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedFrame")
            .field("text", &self.text)
            .field("payload_len", &self.payload().len())
            .finish()
    }
}
