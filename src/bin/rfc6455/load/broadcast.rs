//! `--broadcast`: what the threads share, and the payload every publisher sends.
//!
//! A payload starts with a header, then a deterministic pattern up to `-s` bytes (the same
//! pattern the echo mode sends, so corruption is caught by one comparison):
//!
//! | field        | binary          | text (ASCII hex, lowercase) |
//! |--------------|-----------------|-----------------------------|
//! | publisher id | u64 LE, 8 bytes | 16 hex digits               |
//! | sequence     | u64 LE, 8 bytes | 16 hex digits               |
//! | sent at (ns since the run's start) | u64 LE, 8 bytes | 16 hex digits |
//!
//! so a binary payload needs at least [`BINARY_HEADER`] bytes and a text one
//! [`TEXT_HEADER`]. Publishing starts once every connection has finished its handshake,
//! with sequence 0, so a receiver expects 0 first from every publisher: anything else is a
//! gap (loss) or, below what it expects, a message out of order or duplicated. A message
//! that arrives late is both: its gap when the next one overtakes it, then itself (the
//! receiver keeps one number per publisher, not the set of gaps, so it cannot tell a late
//! message from a duplicate).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Header length of a binary payload: three u64.
pub const BINARY_HEADER: usize = 24;
/// Header length of a text payload: three u64 as 16 hex digits each.
pub const TEXT_HEADER: usize = 48;

/// The header length for a payload of this type.
pub fn header_len(text: bool) -> usize {
    if text {
        TEXT_HEADER
    } else {
        BINARY_HEADER
    }
}

/// The broadcast run's settings and what every thread must see of the others.
pub struct Broadcast {
    /// Publishers (K): the connections whose index across all threads is below K.
    pub publishers: usize,
    /// Connections (C): publishing starts once this many have joined.
    pub connections: usize,
    /// Messages per second per publisher; `None`: as fast as `depth` in flight allows.
    pub rate: Option<f64>,
    /// How long after the window ends receivers may wait for the messages still in flight.
    pub grace: Duration,
    /// Connections whose handshake has completed, all threads.
    pub joined: AtomicUsize,
    /// When publishing began (ns since `t0`, at least 1); 0 before. Stored by the thread
    /// that completed the last handshake, read by every thread.
    pub start: AtomicU64,
    /// Each publisher's message count once it stopped (it sent seqs `0..count`).
    pub published: Vec<AtomicU64>,
    /// Publishers that stopped (the window ended, or their connection is gone).
    pub stopped: AtomicUsize,
}

impl Broadcast {
    pub fn new(
        publishers: usize,
        connections: usize,
        rate: Option<f64>,
        grace: Duration,
    ) -> Broadcast {
        Broadcast {
            publishers,
            connections,
            rate,
            grace,
            joined: AtomicUsize::new(0),
            start: AtomicU64::new(0),
            published: (0..publishers).map(|_| AtomicU64::new(0)).collect(),
            stopped: AtomicUsize::new(0),
        }
    }

    /// When publishing began (ns since `t0`), if it has.
    pub fn started(&self) -> Option<u64> {
        match self.start.load(Ordering::Acquire) {
            0 => None,
            at => Some(at),
        }
    }

    /// Counts one more connection joined at `now`; the last one starts publishing.
    pub fn join(&self, now: u64) {
        if self.joined.fetch_add(1, Ordering::AcqRel) + 1 == self.connections {
            self.start.store(now.max(1), Ordering::Release);
        }
    }

    /// Publisher `id` stopped after sending `count` messages.
    pub fn stop(&self, id: usize, count: u64) {
        self.published[id].store(count, Ordering::Release);
        self.stopped.fetch_add(1, Ordering::AcqRel);
    }

    /// Every publisher's final count, once all have stopped.
    pub fn final_counts(&self) -> Option<Vec<u64>> {
        (self.stopped.load(Ordering::Acquire) >= self.publishers).then(|| {
            self.published
                .iter()
                .map(|c| c.load(Ordering::Acquire))
                .collect()
        })
    }
}

/// Writes the header of publisher `id`'s message `seq`, sent at `at`, into `out` (at least
/// [`header_len`] bytes).
pub fn write_header(out: &mut [u8], text: bool, id: u64, seq: u64, at: u64) {
    for (n, value) in [id, seq, at].into_iter().enumerate() {
        if text {
            let field = &mut out[n * 16..n * 16 + 16];
            for (k, digit) in field.iter_mut().enumerate() {
                let nibble = (value >> (60 - 4 * k)) & 0xf;
                *digit = b"0123456789abcdef"[nibble as usize];
            }
        } else {
            out[n * 8..n * 8 + 8].copy_from_slice(&value.to_le_bytes());
        }
    }
}

/// Reads a header written by [`write_header`]: (publisher id, seq, sent at), or `None` if
/// the payload is too short or a text header is not hex.
pub fn read_header(data: &[u8], text: bool) -> Option<(u64, u64, u64)> {
    let mut fields = [0u64; 3];
    if data.len() < header_len(text) {
        return None;
    }
    for (n, value) in fields.iter_mut().enumerate() {
        if text {
            for &digit in &data[n * 16..n * 16 + 16] {
                let nibble = match digit {
                    b'0'..=b'9' => digit - b'0',
                    b'a'..=b'f' => digit - b'a' + 10,
                    _ => return None,
                };
                *value = *value << 4 | u64::from(nibble);
            }
        } else {
            *value = u64::from_le_bytes(data[n * 8..n * 8 + 8].try_into().ok()?);
        }
    }
    Some((fields[0], fields[1], fields[2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        for text in [false, true] {
            let mut buf = [b'x'; 64];
            write_header(&mut buf, text, 7, u64::MAX - 1, 123_456_789);
            assert_eq!(
                read_header(&buf, text),
                Some((7, u64::MAX - 1, 123_456_789))
            );
            assert_eq!(buf[header_len(text)], b'x', "the pattern after it is kept");
            assert_eq!(read_header(&buf[..header_len(text) - 1], text), None);
        }
        let mut buf = [0u8; 48];
        write_header(&mut buf, true, 1, 2, 3);
        assert!(std::str::from_utf8(&buf).is_ok());
        buf[20] = b'G';
        assert_eq!(read_header(&buf, true), None);
    }
}
