//! Errors: [`ProtocolError`] when the peer broke the protocol, [`Error`] for everything a
//! [`Connection`](crate::Connection) call can report.
//!
//! Every peer error maps to its close code in exactly one place:
//! [`ProtocolError::close_code`].

use super::close::CloseCode;
use std::fmt;

/// The peer broke RFC 6455 (or a limit). The connection queues a close frame with
/// [`close_code`](Self::close_code) and fails; the error is sticky.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame used a reserved opcode (0x3–0x7, 0xB–0xF).
    ReservedOpcode(u8),
    /// A frame set RSV bits that no negotiated extension owns.
    ReservedBits(u8),
    /// A close, ping or pong frame without FIN.
    FragmentedControlFrame,
    /// A close, ping or pong frame with more than 125 bytes of payload, or a length in the
    /// 16- or 64-bit form, which only longer payloads use (RFC 6455 §5.5).
    ControlFrameTooLong,
    /// A 64-bit payload length with its most significant bit set.
    InvalidLength,
    /// A client sent a frame without a mask (a server must fail these).
    UnmaskedFrame,
    /// A server sent a masked frame (a client must fail these).
    MaskedFrame,
    /// A continuation frame arrived with no fragmented message in progress.
    UnexpectedContinuation,
    /// A new text or binary frame arrived while a fragmented message was still in progress.
    ExpectedContinuation,
    /// A frame's declared payload exceeds the configured `max_frame_size`.
    FrameTooLarge {
        /// The declared length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A message exceeds the configured `max_message_size`.
    MessageTooLarge {
        /// The size the message reached (or declared).
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A text message, or a close frame's reason, is not valid UTF-8.
    InvalidUtf8,
    /// A close frame with a 1-byte payload.
    InvalidClosePayload,
    /// A close frame with a code that may not appear on the wire.
    InvalidCloseCode(u16),
    /// A compressed message did not inflate (permessage-deflate).
    InvalidCompressedData,
}

impl ProtocolError {
    /// The close code this failure sends to the peer: 1007 for bad UTF-8 or compressed data,
    /// 1009 for a frame or message over a limit, 1002 for everything else.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCompressedData => {
                CloseCode::INVALID_PAYLOAD
            }
            ProtocolError::FrameTooLarge { .. } | ProtocolError::MessageTooLarge { .. } => {
                CloseCode::MESSAGE_TOO_BIG
            }
            ProtocolError::ReservedOpcode(_)
            | ProtocolError::ReservedBits(_)
            | ProtocolError::FragmentedControlFrame
            | ProtocolError::ControlFrameTooLong
            | ProtocolError::InvalidLength
            | ProtocolError::UnmaskedFrame
            | ProtocolError::MaskedFrame
            | ProtocolError::UnexpectedContinuation
            | ProtocolError::ExpectedContinuation
            | ProtocolError::InvalidClosePayload
            | ProtocolError::InvalidCloseCode(_) => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// A short reason for the close frame (fits in 123 bytes).
    pub(crate) fn close_reason(&self) -> &'static str {
        match self {
            ProtocolError::ReservedOpcode(_) => "reserved opcode",
            ProtocolError::ReservedBits(_) => "reserved bits set",
            ProtocolError::FragmentedControlFrame => "fragmented control frame",
            ProtocolError::ControlFrameTooLong => "control frame too long",
            ProtocolError::InvalidLength => "invalid payload length",
            ProtocolError::UnmaskedFrame => "client frames must be masked",
            ProtocolError::MaskedFrame => "server frames must not be masked",
            ProtocolError::UnexpectedContinuation => "continuation without a message",
            ProtocolError::ExpectedContinuation => "expected a continuation frame",
            ProtocolError::FrameTooLarge { .. } => "frame too large",
            ProtocolError::MessageTooLarge { .. } => "message too large",
            ProtocolError::InvalidUtf8 => "invalid UTF-8",
            ProtocolError::InvalidClosePayload => "close payload of one byte",
            ProtocolError::InvalidCloseCode(_) => "invalid close code",
            ProtocolError::InvalidCompressedData => "invalid compressed data",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedOpcode(op) => write!(f, "the peer used reserved opcode {op:#x}"),
            ProtocolError::ReservedBits(bits) => write!(
                f,
                "the peer set reserved bits {bits:#05b} that no negotiated extension uses"
            ),
            ProtocolError::FragmentedControlFrame => f.write_str("the peer fragmented a control frame"),
            ProtocolError::ControlFrameTooLong => {
                f.write_str("the peer sent a control frame with a 16- or 64-bit length; control frames carry at most 125 bytes")
            }
            ProtocolError::InvalidLength => f.write_str("the peer sent a 64-bit length with the top bit set"),
            ProtocolError::UnmaskedFrame => f.write_str("the client sent an unmasked frame; clients must mask"),
            ProtocolError::MaskedFrame => f.write_str("the server sent a masked frame; servers must not mask"),
            ProtocolError::UnexpectedContinuation => {
                f.write_str("the peer sent a continuation frame with no message in progress")
            }
            ProtocolError::ExpectedContinuation => {
                f.write_str("the peer started a new message before finishing the previous one")
            }
            ProtocolError::FrameTooLarge { len, max } => write!(
                f,
                "the peer sent a {len}-byte frame, over the {max}-byte max_frame_size (raise it in Config if such frames are expected)"
            ),
            ProtocolError::MessageTooLarge { len, max } => write!(
                f,
                "the peer's message reached {len} bytes, over the {max}-byte max_message_size (raise it in Config if such messages are expected)"
            ),
            ProtocolError::InvalidUtf8 => f.write_str("the peer sent text that is not valid UTF-8"),
            ProtocolError::InvalidClosePayload => f.write_str("the peer sent a close frame with a 1-byte payload"),
            ProtocolError::InvalidCloseCode(code) => {
                write!(f, "the peer sent close code {code}, which may not appear on the wire")
            }
            ProtocolError::InvalidCompressedData => f.write_str("the peer sent compressed data that does not inflate"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// What a [`Connection`](crate::Connection) call can fail with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke the protocol; a close frame with the matching code is queued.
    Protocol(ProtocolError),
    /// The connection is closing or closed: nothing more can be sent.
    Closed,
    /// The transport ended before the close handshake finished (reads as close code 1006).
    ConnectionLost,
    /// The caller asked for something the protocol forbids; the connection is unchanged.
    Usage(UsageError),
}

/// A call the protocol does not allow. Nothing was queued.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// A ping or pong payload over 125 bytes.
    ControlPayloadTooLong(usize),
    /// A close code that may not be sent (see [`CloseCode::is_sendable`]).
    UnsendableCloseCode(u16),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Protocol(e) => write!(f, "{e} (closing with {})", e.close_code()),
            Error::Closed => f.write_str("the connection is closed or closing; nothing more can be sent"),
            Error::ConnectionLost => f.write_str("the connection was lost before the close handshake finished"),
            Error::Usage(UsageError::ControlPayloadTooLong(len)) => write!(
                f,
                "a ping or pong payload is limited to 125 bytes, this one has {len}; send the data as a message instead"
            ),
            Error::Usage(UsageError::UnsendableCloseCode(code)) => write!(
                f,
                "close code {code} may not be sent; use 1000-1003, 1007-1014 or an application code 3000-4999"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Error {
        Error::Protocol(e)
    }
}
