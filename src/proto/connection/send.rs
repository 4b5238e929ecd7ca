//! The send path: messages copied into the transmit buffer, queued by value
//! ([`Connection::send_owned`]), written through ([`Connection::send_through`]), sent in parts
//! ([`Connection::send_part`], other messages held behind them) or shared between connections
//! ([`Connection::send_shared`]); control frames; and the frames all of them become.

use super::*;

/// The smallest owned payload [`Connection::send_owned`] queues without copying: below this a
/// copy costs less than a separate piece in the transmit queue.
pub const OWNED_SEND_MIN: usize = 16 << 10;

/// Slots of [`Connection::send_through`]'s one write: what is queued, then header and payload.
pub(super) const THROUGH_PIECES: usize = 16;

impl Connection {
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
    pub(super) fn take_held(&mut self) -> VecDeque<Message<'static>> {
        self.rare.as_mut().map_or_else(VecDeque::new, |r| {
            r.held_bytes = 0;
            std::mem::take(&mut r.held)
        })
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

    pub(super) fn write_close(&mut self, code: CloseCode, reason: &str) {
        let reason = truncate_reason(reason);
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        payload[..2].copy_from_slice(&code.0.to_be_bytes());
        payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
        self.write_frame(OpCode::Close, true, &payload[..2 + reason.len()]);
        self.take_held();
    }

    pub(super) fn write_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
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

    /// Queues one final, uncompressed frame whose payload stays in its own allocation.
    fn write_frame_owned(&mut self, opcode: OpCode, mut payload: Vec<u8>) {
        let mask = self.write_header(opcode, true, 0, payload.len());
        if let Some(key) = mask {
            apply_mask(&mut payload, key, 0);
        }
        self.push_segment(SegmentData::Owned(payload));
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
}
