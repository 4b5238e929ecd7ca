//! The receive path. [`Connection::read`] parses out of the caller's buffer and hands out
//! payloads that borrow it; [`Connection::handle_bytes`] + [`Connection::poll_event`] queue
//! owned events. Both run the same parser: frame headers (a partial one kept), the checks a
//! new frame passes before any payload is buffered, control frames, and the data paths — a
//! whole single-frame message, a message handed out in parts, one collected (or inflated)
//! across frames and reads. Acting on what was received (pongs, close replies, failing the
//! connection) is the state machine's, in `mod.rs`.

use super::*;

/// The most [`Connection::read`] reserves ahead for a frame's payload before it arrives.
const RESERVE_AHEAD: usize = 1 << 20;

/// Splits the first `n` bytes off `input`.
fn take<'a>(input: &mut &'a mut [u8], n: usize) -> &'a mut [u8] {
    let all = std::mem::take(input);
    let (head, rest) = all.split_at_mut(n.min(all.len()));
    *input = rest;
    head
}

impl Connection {
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
    pub(super) fn end_queued(&self) -> bool {
        self.rare
            .as_ref()
            .and_then(|r| r.queued.as_ref())
            .is_some_and(|q| q.error.is_some() || matches!(q.events.back(), Some(Event::Close(_))))
    }

    /// A message is being received in parts ([`Event::Part`]) and its last part has not
    /// arrived yet.
    pub fn receiving_parts(&self) -> bool {
        self.message_streamed
    }
}
