//! The per-connection compressor and decompressor (RFC 7692 §7.2).

use super::{DeflateParams, MIN_WINDOW_BITS};
use crate::proto::connection::Role;
use crate::proto::error::ProtocolError;
use crate::proto::utf8::Utf8Validator;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// What a sync flush ends with: an empty stored block's LEN/NLEN. RFC 7692 §7.2.1 strips it
/// from every compressed message; §7.2.2 appends it again before inflating.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Output space inflate gets per call, at least (less only right under the message limit).
const MIN_SPARE: usize = 4096;

/// flate2/zlib cannot go below 9 bits; see the module docs for why 9 is correct where 8 was
/// agreed.
fn zlib_bits(bits: u8) -> u8 {
    bits.clamp(MIN_WINDOW_BITS + 1, super::MAX_WINDOW_BITS)
}

/// Compressor and decompressor of one connection, each created on first use.
pub(crate) struct Codec {
    params: DeflateParams,
    send_bits: u8,
    /// Our direction is `no_context_takeover`: reset the compressor after every message.
    send_reset: bool,
    recv_bits: u8,
    /// The peer's direction is `no_context_takeover`: reset the decompressor after every
    /// message.
    recv_reset: bool,
    compressor: Option<Compress>,
    decompressor: Option<Decompress>,
    /// The last compressed message, reused.
    compressed: Vec<u8>,
    /// A block with BFINAL set ended the deflate stream in the message being received: how
    /// many bytes have followed it (see [`Codec::after_final_block`]).
    after_final: Option<u8>,
}

impl Codec {
    pub(crate) fn new(params: DeflateParams, role: Role) -> Codec {
        let (send_bits, send_reset, recv_bits, recv_reset) = match role {
            Role::Server => (
                params.server_max_window_bits,
                params.server_no_context_takeover,
                params.client_max_window_bits,
                params.client_no_context_takeover,
            ),
            Role::Client => (
                params.client_max_window_bits,
                params.client_no_context_takeover,
                params.server_max_window_bits,
                params.server_no_context_takeover,
            ),
        };
        Codec {
            params,
            send_bits: zlib_bits(send_bits),
            send_reset,
            recv_bits: zlib_bits(recv_bits),
            recv_reset,
            compressor: None,
            decompressor: None,
            compressed: Vec::new(),
            after_final: None,
        }
    }

    pub(crate) fn params(&self) -> &DeflateParams {
        &self.params
    }

    /// Whether a message compressed on its own (a fresh compressor with a 15-bit window,
    /// as [`compress_alone`] makes) may be sent on this connection: it compresses each message
    /// alone (no context takeover) with the full window, so such a message is exactly what
    /// it would send itself. Then the threshold and level to use.
    pub(crate) fn takes_messages_compressed_alone(&self) -> Option<(usize, u32)> {
        (self.send_reset && self.send_bits == super::MAX_WINDOW_BITS).then_some((
            self.params.compression_threshold,
            self.params.compression_level.min(9),
        ))
    }

    /// Compresses one whole message. `None`: send it uncompressed (RSV1 clear) — it is under
    /// the threshold, or (without context takeover) did not shrink, or zlib failed, in which
    /// case the compressor starts over, which the peer cannot notice.
    pub(crate) fn compress(&mut self, data: &[u8]) -> Option<&[u8]> {
        if data.len() < self.params.compression_threshold {
            return None;
        }
        let (bits, level) = (self.send_bits, self.params.compression_level.min(9));
        let compressor = self.compressor.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::new(level), false, bits)
        });
        self.compressed.clear();
        let ok = deflate_sync(compressor, data, &mut self.compressed);
        if !ok || self.send_reset {
            compressor.reset();
        }
        // Without context takeover nothing depends on what we sent, so the smaller wins.
        if !ok || (self.send_reset && self.compressed.len() >= data.len()) {
            return None;
        }
        Some(&self.compressed)
    }

    /// Inflates the next piece of a compressed message's payload onto `out`, failing as
    /// soon as `out` would exceed `max` bytes (1009) or, for text, stops being UTF-8 (1007).
    /// Output grows in bounded steps, so a bomb costs at most `max` bytes.
    pub(crate) fn inflate(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
        mut text: Option<&mut Utf8Validator>,
    ) -> Result<(), ProtocolError> {
        let bits = self.recv_bits;
        let limit = max.saturating_add(1);
        if self.after_final.is_some() {
            return self.after_final_block(input);
        }
        loop {
            let inflater = self
                .decompressor
                .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
            if out.capacity() - out.len() < MIN_SPARE {
                // Geometric growth, but never past one byte over the limit.
                let want = out.len().max(MIN_SPARE).min(limit - out.len());
                out.reserve_exact(want);
            }
            let (in_before, len_before) = (inflater.total_in(), out.len());
            let result = inflater.decompress_vec(input, out, FlushDecompress::None);
            // The bytes inflated before a corrupt spot are judged first, as they would have
            // been had the corrupt bytes arrived in a later piece: errors come in stream
            // order, whatever the split (found by the `inflate` fuzz target).
            if out.len() > max {
                return Err(ProtocolError::MessageTooLarge {
                    len: out.len() as u64,
                    max,
                });
            }
            if let Some(validator) = text.as_deref_mut() {
                validator
                    .feed(&out[len_before..])
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            let status = result.map_err(|_| ProtocolError::InvalidCompressedData)?;
            let used = usize::try_from(inflater.total_in() - in_before).unwrap_or(usize::MAX);
            input = input.get(used..).unwrap_or_default();
            let produced = out.len() - len_before;
            if status == Status::StreamEnd {
                // A block with BFINAL set ended the deflate stream (RFC 7692 §7.2.3.4). The
                // next message starts a new one: a zlib sender resets its compressor after
                // finishing a stream, so no later data refers back.
                inflater.reset(false);
                self.after_final = Some(0);
                return self.after_final_block(input);
            }
            let full = out.len() == out.capacity();
            if !full && (input.is_empty() || used == 0 && produced == 0) {
                // Done, or inflate wants more input than this piece had.
                if !input.is_empty() {
                    return Err(ProtocolError::InvalidCompressedData);
                }
                return Ok(());
            }
        }
    }

    /// Ends a compressed message: inflates the stripped tail, then forgets the window if the
    /// peer's direction has no context takeover.
    pub(crate) fn finish_message(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
        text: Option<&mut Utf8Validator>,
    ) -> Result<(), ProtocolError> {
        if self.after_final.take().is_none() {
            self.inflate(&TAIL, out, max, text)?;
        }
        if self.recv_reset {
            if let Some(inflater) = &mut self.decompressor {
                inflater.reset(false);
            }
        }
        Ok(())
    }

    /// Bytes of the message after its final block: at most the one 0x00 a sender leaves of
    /// the empty stored block it appends and strips (RFC 7692 §7.2.1), or nothing, as in
    /// §7.2.3.4's example. Anything else is data past the end of the stream: 1007. The tail
    /// §7.2.2 appends is not inflated then, so the next message starts on a clean stream.
    fn after_final_block(&mut self, input: &[u8]) -> Result<(), ProtocolError> {
        for &byte in input {
            match &mut self.after_final {
                Some(seen @ 0) if byte == 0 => *seen = 1,
                _ => return Err(ProtocolError::InvalidCompressedData),
            }
        }
        Ok(())
    }

    /// Drops what holds no state: the compressed-message buffer, the compressor if our
    /// direction has no context takeover, the decompressor if the peer's has none and no
    /// compressed message is half-received.
    pub(crate) fn shrink(&mut self, mid_message: bool) {
        self.compressed = Vec::new();
        if self.send_reset {
            self.compressor = None;
        }
        if self.recv_reset && !mid_message {
            self.decompressor = None;
        }
    }

    /// The connection is over: free everything.
    pub(crate) fn release(&mut self) {
        self.after_final = None;
        self.compressed = Vec::new();
        self.compressor = None;
        self.decompressor = None;
    }
}

/// `data` compressed alone with a 15-bit window at `level` (RFC 7692 §7.2.1, the tail
/// removed), or `None` when it does not shrink or zlib fails: the message then goes out
/// uncompressed.
pub(crate) fn compress_alone(data: &[u8], level: u32) -> Option<Vec<u8>> {
    let mut compressor = Compress::new_with_window_bits(
        Compression::new(level.min(9)),
        false,
        super::MAX_WINDOW_BITS,
    );
    let mut out = Vec::new();
    (deflate_sync(&mut compressor, data, &mut out) && out.len() < data.len()).then_some(out)
}

/// Deflates all of `data` onto `out` and sync-flushes, then strips the flush's tail.
/// `false` if zlib failed or the output does not end as a sync flush must.
fn deflate_sync(compressor: &mut Compress, data: &[u8], out: &mut Vec<u8>) -> bool {
    out.reserve(data.len() / 2 + 64);
    let start = compressor.total_in();
    loop {
        let consumed = usize::try_from(compressor.total_in() - start).unwrap_or(usize::MAX);
        let Some(rest) = data.get(consumed..) else {
            return false;
        };
        if out.capacity() - out.len() < 64 {
            out.reserve(out.len().max(256));
        }
        let len_before = out.len();
        if compressor
            .compress_vec(rest, out, FlushCompress::Sync)
            .is_err()
        {
            return false;
        }
        let done = compressor.total_in() - start == data.len() as u64;
        // zlib has flushed everything once it stops short of filling the output.
        if done && out.len() < out.capacity() {
            break;
        }
        let progressed = out.len() > len_before
            || usize::try_from(compressor.total_in() - start).unwrap_or(usize::MAX) > consumed;
        if !progressed {
            return false;
        }
    }
    if !out.ends_with(&TAIL) {
        return false;
    }
    out.truncate(out.len() - TAIL.len());
    true
}
