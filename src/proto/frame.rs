//! Frame headers (RFC 6455 §5.2): parse from any prefix of the input, emit with the minimal
//! length encoding.
//!
//! A [`FrameHeader`] that exists is structurally valid: the opcode is known, a control frame is
//! final and at most 125 bytes, and a 64-bit length has its top bit clear. Rules that depend on
//! the connection (which role must mask, which RSV bits an extension owns, whether a
//! continuation is expected) are checked by [`Connection`](crate::Connection).

use super::error::ProtocolError;

/// The longest a frame header can be: 2 bytes, 8 of extended length, 4 of masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// The largest payload a control frame (close, ping, pong) may carry (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame's opcode (RFC 6455 §5.2). Reserved opcodes are rejected by the parser.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: a later frame of a fragmented message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// The opcode for the low nibble `bits`, or `None` for a reserved value (0x3–0x7, 0xB–0xF).
    #[inline]
    pub fn from_bits(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The 4-bit value on the wire.
    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, ping and pong are control frames.
    pub fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }
}

/// The result of parsing from a buffer that may not hold the whole header yet.
///
/// "Need more bytes" is not an error: it is [`Status::Partial`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Status<T> {
    /// Parsed; the value and how many bytes of input it took.
    Complete(T, usize),
    /// The input ends before the header does; call again with more bytes.
    Partial,
}

/// RSV1: the bit permessage-deflate owns (RFC 7692 §6).
pub const RSV1: u8 = 0b100;
/// RSV2.
pub const RSV2: u8 = 0b010;
/// RSV3.
pub const RSV3: u8 = 0b001;

/// A parsed, structurally valid frame header.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of its message.
    pub fin: bool,
    /// RSV1, RSV2, RSV3 as the low three bits (see [`RSV1`]).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, when the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Parses a header from the start of `buf`.
    ///
    /// Returns [`Status::Partial`] when `buf` is a strict prefix of a header (including the
    /// empty slice), and an error as soon as the bytes present prove the header invalid:
    /// a reserved opcode, a fragmented or over-long control frame, or a 64-bit length with
    /// its most significant bit set.
    #[inline]
    pub fn parse(buf: &[u8]) -> Result<Status<FrameHeader>, ProtocolError> {
        // Slice patterns and `split_first_chunk` keep this to one length check per field, with
        // no index panics left for the compiler to prove away.
        let Some((&[b0, b1], rest)) = buf.split_first_chunk::<2>() else {
            return Ok(Status::Partial);
        };
        let fin = b0 & 0x80 != 0;
        let rsv = (b0 >> 4) & 0x7;
        let opcode =
            OpCode::from_bits(b0 & 0x0F).ok_or(ProtocolError::ReservedOpcode(b0 & 0x0F))?;
        let len7 = b1 & 0x7F;
        if opcode.is_control() {
            if !fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if len7 > MAX_CONTROL_PAYLOAD as u8 {
                return Err(ProtocolError::ControlFrameTooLong);
            }
        }
        let (payload_len, rest) = match len7 {
            126 => match rest.split_first_chunk::<2>() {
                Some((ext, rest)) => (u64::from(u16::from_be_bytes(*ext)), rest),
                None => return Ok(Status::Partial),
            },
            127 => match rest.split_first_chunk::<8>() {
                Some((ext, rest)) => {
                    let len = u64::from_be_bytes(*ext);
                    if len >> 63 != 0 {
                        return Err(ProtocolError::InvalidLength);
                    }
                    (len, rest)
                }
                None => return Ok(Status::Partial),
            },
            len => (u64::from(len), rest),
        };
        let (mask, rest) = if b1 & 0x80 != 0 {
            match rest.split_first_chunk::<4>() {
                Some((key, rest)) => (Some(*key), rest),
                None => return Ok(Status::Partial),
            }
        } else {
            (None, rest)
        };
        Ok(Status::Complete(
            FrameHeader {
                fin,
                rsv,
                opcode,
                mask,
                payload_len,
            },
            buf.len() - rest.len(),
        ))
    }

    /// How many bytes [`encode`](Self::encode) writes for this header.
    pub fn encoded_len(&self) -> usize {
        let ext = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + ext + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Writes the header with the minimal length encoding into `out` and returns how many
    /// bytes it wrote (2 to 14).
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0x7) << 4) | self.opcode.bits();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut n = match self.payload_len {
            len @ 0..=125 => {
                out[1] = mask_bit | len as u8;
                2
            }
            len @ 126..=0xFFFF => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            len => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&len.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            out[n..n + 4].copy_from_slice(&key);
            n += 4;
        }
        n
    }

    /// Appends the encoded header to `out`.
    pub fn encode_to(&self, out: &mut Vec<u8>) {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = self.encode(&mut buf);
        out.extend_from_slice(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(fin: bool, opcode: OpCode, mask: Option<[u8; 4]>, len: u64) -> FrameHeader {
        FrameHeader {
            fin,
            rsv: 0,
            opcode,
            mask,
            payload_len: len,
        }
    }

    #[test]
    fn every_prefix_of_a_header_is_partial() {
        for (header, wire_len) in [
            (h(true, OpCode::Text, Some([1, 2, 3, 4]), 5), 6),
            (h(true, OpCode::Binary, Some([1, 2, 3, 4]), 256), 8),
            (h(false, OpCode::Binary, Some([1, 2, 3, 4]), 65536), 14),
            (h(true, OpCode::Binary, None, 65536), 10),
        ] {
            let mut buf = Vec::new();
            header.encode_to(&mut buf);
            assert_eq!(buf.len(), wire_len);
            for cut in 0..wire_len {
                assert_eq!(
                    FrameHeader::parse(&buf[..cut]),
                    Ok(Status::Partial),
                    "cut {cut}"
                );
            }
            buf.extend_from_slice(b"trailing payload");
            assert_eq!(
                FrameHeader::parse(&buf),
                Ok(Status::Complete(header, wire_len))
            );
        }
    }

    #[test]
    fn minimal_length_encoding_at_the_boundaries() {
        for (len, wire) in [
            (0, 2),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (u64::MAX >> 1, 10),
        ] {
            let header = h(true, OpCode::Binary, None, len);
            assert_eq!(header.encoded_len(), wire, "len {len}");
            let mut buf = [0u8; MAX_HEADER_LEN];
            assert_eq!(header.encode(&mut buf), wire);
            assert_eq!(
                FrameHeader::parse(&buf[..wire]),
                Ok(Status::Complete(header, wire))
            );
        }
    }

    #[test]
    fn structural_errors_are_detected_from_the_bytes_present() {
        // Reserved opcodes, from the first two bytes alone.
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(
                FrameHeader::parse(&[0x80 | op, 0x80]),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
        // A ping without FIN.
        assert_eq!(
            FrameHeader::parse(&[0x09, 0x80]),
            Err(ProtocolError::FragmentedControlFrame)
        );
        // A close with a 126-byte payload (16-bit length form).
        assert_eq!(
            FrameHeader::parse(&[0x88, 0xFE]),
            Err(ProtocolError::ControlFrameTooLong)
        );
        // A 64-bit length with the top bit set.
        let bad = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(FrameHeader::parse(&bad), Err(ProtocolError::InvalidLength));
    }

    #[test]
    fn rsv_bits_are_reported_not_judged() {
        let Ok(Status::Complete(header, 2)) = FrameHeader::parse(&[0xF1, 0x00]) else {
            panic!("should parse");
        };
        assert_eq!(header.rsv, RSV1 | RSV2 | RSV3);
    }
}
