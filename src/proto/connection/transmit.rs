//! The transmit queue: the `out` buffer, plus payloads queued by reference after a given
//! offset of it (owned ones from [`Connection::send_owned`], shared frames from
//! [`Connection::send_shared`]). [`Connection::poll_transmit`] and
//! [`Connection::poll_transmit_vectored`] read it out, [`Connection::consume_transmit`]
//! marks it written; an event loop lends one buffer to many connections with
//! [`Connection::swap_transmit_buffer`], and an idle connection gives its buffers back
//! ([`Connection::shrink_buffers`]).

use super::*;

/// A payload queued as it is (see [`Connection::send_owned`]), or a whole frame shared with
/// other connections ([`Connection::send_shared`]), written once `out[..at]` is.
pub(super) struct Segment {
    pub(super) at: usize,
    pub(super) data: SegmentData,
}

pub(super) enum SegmentData {
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

impl Connection {
    /// Once every queued byte is written, the transmit buffer starts over.
    pub(super) fn recycle_out(&mut self) {
        if self.out_pos == self.out.len() && !self.has_segments() {
            self.out.clear();
            self.out_pos = 0;
        }
    }

    /// Queues `data` by reference, to go out after everything in `out` now.
    pub(super) fn push_segment(&mut self, data: SegmentData) {
        let at = self.out.len();
        let rare = self.rare();
        rare.segment_bytes += data.len();
        rare.segments.push_back(Segment { at, data });
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
