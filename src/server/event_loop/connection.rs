//! One connection: its state ([`Entry`]) and the reading, writing and lingering of it.

use super::*;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Reading the request head into `http`.
    Handshake,
    /// Writing a refusal from `http`; then linger.
    Refusing,
    /// WebSocket frames; `http` holds what is left of the 101.
    Open,
    /// A plain HTTP request waits for `Handle::respond_http` until `since` (a deadline here),
    /// reading nothing more.
    Deferred,
    /// Write side shut down; reading and discarding until EOF or the close timeout.
    Linger,
}

/// The HTTP bytes of a connection (the request head while it is incomplete, then the
/// response not yet written): one pointer while empty, which an open connection almost
/// always is, instead of a `Vec`'s three words.
// The extra allocation is the point: an empty `HttpBuf` is one word.
#[allow(clippy::box_collection)]
#[derive(Default)]
pub(super) struct HttpBuf(Option<Box<Vec<u8>>>);

impl HttpBuf {
    /// The buffer to write into.
    pub(super) fn vec(&mut self) -> &mut Vec<u8> {
        self.0.get_or_insert_with(Box::default)
    }

    pub(super) fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.vec().extend_from_slice(bytes);
    }

    pub(super) fn clear(&mut self) {
        if let Some(v) = &mut self.0 {
            v.clear();
        }
    }

    /// Drops the first `n` bytes; frees the buffer once it is empty.
    pub(super) fn consume(&mut self, n: usize) {
        if let Some(v) = &mut self.0 {
            v.drain(..n.min(v.len()));
            if v.is_empty() {
                self.0 = None;
            }
        }
    }
}

impl std::ops::Deref for HttpBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_deref().map_or(&[], |v| v)
    }
}

impl std::ops::DerefMut for HttpBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0.as_deref_mut().map_or(&mut [], |v| v)
    }
}

/// One connection. Times are milliseconds since the loop started; the optional one is a
/// `NonZeroU64` (see [`tick`]) so it takes 8 bytes, not 16: an idle connection is this
/// struct, one slab slot and one timer entry, nothing else.
pub(super) struct Entry {
    pub(super) transport: Transport,
    pub(super) peer: SocketAddr,
    pub(super) conn: Connection,
    /// The request head while it is incomplete, then the HTTP response not yet written.
    pub(super) http: HttpBuf,
    pub(super) generation: u32,
    pub(super) phase: Phase,
    /// Counted in the connection limits (refused ones are not).
    pub(super) counted: bool,
    /// `Handler::open` accepted it and `Handler::close` has not been called yet.
    pub(super) reportable: bool,
    pub(super) writable: bool,
    pub(super) paused: bool,
    /// The message being received in parts began with the write queue under its high-water
    /// mark: reading goes on until its last part (see `read_ready`).
    pub(super) parts_read_through: bool,
    pub(super) overflow: bool,
    /// When the phase began: accepted (handshake), refusing, open, linger; for a deferred
    /// HTTP request, its deadline. The close handshake's start is the core's (`timers`).
    pub(super) since: u64,
    /// The core's heartbeat, idle and close timers, in the loop's milliseconds.
    pub(super) timers: Timers,
    pub(super) timer_at: Option<NonZeroU64>,
}

impl Entry {
    /// The id of the connection in slot `key` of loop `thread`.
    pub(super) fn id(&self, thread: u32, key: usize) -> ConnId {
        ConnId {
            thread,
            slot: key as u32,
            generation: self.generation,
        }
    }
}

impl<H: Handler> EventLoop<H> {
    // ------------------------------------------------------------------------ reading

    /// Reads until the socket would block (or a per-turn cap): for readiness that did not
    /// come with a fresh edge (resumed after backpressure, another turn), and for an edge that
    /// reported the peer's FIN or an error, which only a read that returns 0 or fails shows.
    pub(super) fn on_readable(&mut self, key: usize) {
        let mut buf = std::mem::take(&mut self.buf);
        self.read_ready(key, &mut buf, false);
        self.buf = buf;
    }

    /// For a readable edge: a read that emptied the socket (a short one; with TLS, a short
    /// read of the socket with all its records handed out) means bytes arriving after it
    /// raise a new edge, so the extra read that would only return `WouldBlock` is skipped (it
    /// was one syscall in three at one message in flight, plain or TLS).
    pub(super) fn on_readable_edge(&mut self, key: usize) {
        let mut buf = std::mem::take(&mut self.buf);
        self.read_ready(key, &mut buf, true);
        self.buf = buf;
    }

    fn read_ready(&mut self, key: usize, buf: &mut [u8], short_read_ends: bool) {
        let mut reads = 0;
        loop {
            let Some(e) = self.conns.get_mut(key) else {
                return;
            };
            if e.phase == Phase::Open
                && e.conn.transmit_len() >= self.limits.write_high_water
                && !(e.conn.receiving_parts() && e.parts_read_through)
            {
                // Backpressure: the peer gets no more of our attention until it reads. Not in
                // the middle of a message received in parts that began under the mark: a peer
                // that writes a whole message before it reads (as blocking clients do) would
                // wait for us while we wait for it. What that one message adds is queued
                // instead, as much as collecting it would have held, and all of it, pongs
                // included, stays under `max_write_queue` (see `check_overflow`).
                e.paused = true;
                break;
            }
            if (e.phase == Phase::Refusing && !e.transport.is_handshaking())
                || e.phase == Phase::Deferred
            {
                // The request is not read; lingering after the response drains it. (A TLS
                // handshake still has to finish before the refusal can be written.)
                break;
            }
            if reads == READS_PER_TURN {
                self.more.push(key);
                break;
            }
            reads += 1;
            match e.transport.read(buf) {
                Ok(0) => {
                    self.on_eof(key);
                    return;
                }
                Ok(n) => {
                    e.timers.heard(self.now);
                    let drained = short_read_ends && e.transport.read_drained(n, buf.len());
                    match e.phase {
                        Phase::Handshake => self.on_handshake_bytes(key, &mut buf[..n]),
                        Phase::Open => self.on_frames(key, &mut buf[..n]),
                        Phase::Refusing | Phase::Linger | Phase::Deferred => {}
                    }
                    if drained {
                        break;
                    }
                }
                Err(e) if would_block(&e) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::InvalidData && e.transport.is_tls() => {
                    // Not TLS, or TLS gone wrong: the alert (or a plain 400), then a clean
                    // close rather than a reset.
                    if err.to_string() == PLAIN_HTTP_ON_TLS {
                        e.transport.stream.write_all(PLAIN_HTTP_RESPONSE).ok();
                    }
                    let _ = e.transport.write_records();
                    self.report(key, CloseReason::Lost);
                    self.begin_linger(key);
                    return;
                }
                Err(_) => {
                    self.report(key, CloseReason::Lost);
                    self.remove(key);
                    return;
                }
            }
        }
        self.flush(key);
    }

    fn on_eof(&mut self, key: usize) {
        if let Some(e) = self.conns.get_mut(key) {
            if e.phase == Phase::Open {
                let _ = e.conn.handle_eof();
                let pending = !e.http.is_empty() || e.conn.transmit_len() > 0;
                self.report(key, CloseReason::Lost);
                if pending {
                    // The peer may only have shut down its sending side (a close frame, then
                    // SHUT_WR): what was answered before its EOF (the 101, echoes, the close
                    // reply) still goes out, within the close timeout; `flush` then closes.
                    self.after_state_change(key);
                    self.flush(key);
                    return;
                }
            }
        }
        self.remove(key);
    }

    fn on_handshake_bytes(&mut self, key: usize, data: &mut [u8]) {
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        let parsed = if e.http.is_empty() {
            Request::parse(data, &self.limits.handshake)
        } else {
            e.http.extend_from_slice(data);
            Request::parse(&e.http, &self.limits.handshake)
        };
        match parsed {
            Ok(Status::Partial) => {
                if e.http.is_empty() {
                    e.http.extend_from_slice(data);
                }
            }
            Err(error) => {
                let buffered = !e.http.is_empty();
                let input: &[u8] = if buffered { &e.http } else { data };
                let limits = &self.limits;
                match HttpRequest::parse(input, &limits.handshake, limits.max_http_body) {
                    // A plain request whose body is still on its way.
                    Ok(Status::Partial) => {
                        if !buffered {
                            e.http.extend_from_slice(data);
                        }
                    }
                    Ok(Status::Complete(request, _)) if !request.is_upgrade() => {
                        e.http = HttpBuf::default();
                        self.on_http(key, &request, &error);
                    }
                    Err(http)
                        if matches!(
                            error,
                            HandshakeError::MethodNotAllowed(_)
                                | HandshakeError::MissingHeader("Upgrade")
                        ) =>
                    {
                        let response = http.response();
                        self.respond(key, &response);
                    }
                    _ => self.refuse(key, &error.rejection()),
                }
            }
            Ok(Status::Complete(request, head_len)) => {
                // Bytes behind the head are the first frames: keep them.
                let mut head = std::mem::take(&mut e.http);
                let rest: &mut [u8] = if head.is_empty() {
                    &mut data[head_len..]
                } else {
                    &mut head[head_len..]
                };
                self.on_request(key, &request, rest);
            }
        }
    }

    fn on_request(&mut self, key: usize, request: &Request, rest: &mut [u8]) {
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        e.conn.swap_transmit_buffer(&mut self.spare);
        let id = e.id(self.index, key);
        let mut ctx = Context::new(
            id,
            e.peer,
            &mut e.conn,
            &self.handle,
            self.limits.max_write_queue,
            &mut e.overflow,
            None,
            &mut self.local,
        );
        match self.handler.open(&mut ctx, request) {
            Ok(accept) => {
                #[cfg(feature = "deflate")]
                let accept = match &self.deflate {
                    Some(config) => crate::proto::ServerSession::new()
                        .deflate(config.clone())
                        .negotiate(request, accept, &mut e.conn),
                    None => accept,
                };
                accept.write_to(e.http.vec());
                e.phase = Phase::Open;
                e.reportable = true;
                e.since = self.now;
                e.timers.message(self.now);
                self.check_overflow(key);
                if let Some(at) = self.next_deadline(key) {
                    self.arm(key, at);
                }
                if !rest.is_empty() {
                    self.on_frames(key, rest);
                }
            }
            Err(rejection) => {
                // Anything the handler queued, subscribed or stored is dropped with the
                // connection (what it published goes out: it was published).
                self.local.topics.unsubscribe_all(key);
                self.local.states.remove(&(key as u32));
                let mut fresh = Connection::server_shared(self.config.clone());
                std::mem::swap(&mut e.conn, &mut fresh);
                self.refuse(key, &rejection);
            }
        }
    }

    fn on_frames(&mut self, key: usize, data: &mut [u8]) {
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        e.conn.swap_transmit_buffer(&mut self.spare);
        let id = e.id(self.index, key);
        let mut input = data;
        let mut ended = None;
        loop {
            match e.conn.read(&mut input) {
                Ok(None) => break,
                Ok(Some(event @ (Event::Message(_) | Event::Part(_)))) => {
                    e.timers.message(self.now);
                    if let Event::Part(part) = &event {
                        if part.first {
                            e.parts_read_through =
                                e.conn.transmit_len() < self.limits.write_high_water;
                        }
                    }
                    let mut ctx = Context::new(
                        id,
                        e.peer,
                        &mut e.conn,
                        &self.handle,
                        self.limits.max_write_queue,
                        &mut e.overflow,
                        e.http.is_empty().then_some(&mut e.transport),
                        &mut self.local,
                    );
                    match event {
                        Event::Message(message) => self.handler.message(&mut ctx, message),
                        Event::Part(part) => self.handler.part(&mut ctx, part),
                        _ => {}
                    }
                    if e.overflow {
                        break;
                    }
                }
                Ok(Some(Event::Close(frame))) => {
                    // The reply is queued; anything after the close is ignored by the core.
                    if e.reportable {
                        e.reportable = false;
                        let mut overflow = false;
                        let mut ctx = Context::new(
                            id,
                            e.peer,
                            &mut e.conn,
                            &self.handle,
                            self.limits.max_write_queue,
                            &mut overflow,
                            None,
                            &mut self.local,
                        );
                        self.handler.close(&mut ctx, CloseReason::Closed(frame));
                        self.local.topics.unsubscribe_all(key);
                        self.local.states.remove(&(key as u32));
                    }
                }
                Ok(Some(_)) => {} // pings are answered by the core; any byte counts as a pong
                Err(Error::Protocol(p)) => {
                    ended = Some(CloseReason::Protocol(p));
                    break;
                }
                Err(_) => break,
            }
        }
        if let Some(reason) = ended {
            self.report(key, reason);
        }
        self.check_overflow(key);
        self.after_state_change(key);
    }

    /// A handler's send hit the write queue limit, or what the core queued on its own (pongs)
    /// took the queue over it: fail the connection with 1008.
    pub(super) fn check_overflow(&mut self, key: usize) {
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        let queued = e.conn.transmit_len() + e.conn.held_len();
        e.overflow |= queued > self.limits.max_write_queue;
        if !e.overflow || !e.reportable {
            return;
        }
        let _ = e
            .conn
            .fail(CloseCode::POLICY_VIOLATION, "write queue overflow");
        self.report(
            key,
            CloseReason::Overflow {
                queued,
                limit: self.limits.max_write_queue,
            },
        );
    }

    /// Notes when a close began so the close timeout can run.
    pub(super) fn after_state_change(&mut self, key: usize) {
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        let state = e.conn.state();
        if e.phase == Phase::Open && state != State::Open && e.timers.closing_since().is_none() {
            e.timers.date(state, self.now);
            if let Some(at) = self.next_deadline(key) {
                self.arm(key, at);
            }
        }
    }

    /// Calls `Handler::close` once, if the handler accepted the connection.
    pub(super) fn report(&mut self, key: usize, reason: CloseReason<'_>) {
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        if !e.reportable {
            return;
        }
        e.reportable = false;
        let mut overflow = false;
        let mut ctx = Context::new(
            e.id(self.index, key),
            e.peer,
            &mut e.conn,
            &self.handle,
            0,
            &mut overflow,
            None,
            &mut self.local,
        );
        self.handler.close(&mut ctx, reason);
        // Subscriptions and state end with the connection.
        self.local.topics.unsubscribe_all(key);
        self.local.states.remove(&(key as u32));
    }

    // ------------------------------------------------------------------------ writing

    pub(super) fn on_writable(&mut self, key: usize) {
        self.flush(key);
    }

    /// One write of everything pending (the HTTP response, then frames); what the socket
    /// refuses stays queued with WRITABLE interest on. Then moves the phase on: resume a
    /// paused reader, shut down the write side once the close is out.
    pub(super) fn flush(&mut self, key: usize) {
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        // While handshaking, `http` is the request head being read: nothing to write. Until
        // the TLS handshake is done, only its records are: plaintext waits in `http` and the
        // core's queue, where the loop's accounting (backpressure, limits) sees it.
        let tls = e.transport.is_tls();
        let plaintext = !e.transport.is_handshaking();
        let write_http = matches!(e.phase, Phase::Refusing | Phase::Open) && plaintext;
        let write_out = e.phase == Phase::Open && plaintext;
        if !write_http && !tls {
            return;
        }
        let mut lost = false;
        loop {
            if tls {
                // Records first: plaintext is encrypted only once the socket has taken what
                // was encrypted before, so rustls holds at most its buffer limit.
                match e.transport.write_records() {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        lost = true;
                        break;
                    }
                }
                if !write_http {
                    break;
                }
            }
            // The HTTP response, then the frames: one piece each, or more where a payload
            // queued by value lies apart from the headers.
            let mut pieces = [IoSlice::new(&[]); WRITE_PIECES];
            let mut n = 0;
            if !e.http.is_empty() {
                pieces[0] = IoSlice::new(&e.http);
                n = 1;
            }
            if write_out {
                n += e.conn.poll_transmit_vectored(&mut pieces[n..]);
            }
            let wanted: usize = pieces[..n].iter().map(|p| p.len()).sum();
            if wanted == 0 {
                break;
            }
            let result = match &pieces[..n] {
                [one] => e.transport.write(one),
                many => e.transport.write_vectored(many),
            };
            match result {
                // rustls' buffer is full: its records go first, on the next turn of this loop.
                Ok(0) if tls && e.transport.wants_write() => continue,
                Ok(0) => {
                    lost = true;
                    break;
                }
                Ok(written) => {
                    let from_http = written.min(e.http.len());
                    e.http.consume(from_http);
                    if write_out {
                        e.conn.consume_transmit(written - from_http);
                    }
                    if written < wanted && !tls {
                        // The socket is full: another try would only block.
                        break;
                    }
                }
                Err(err) if would_block(&err) => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    lost = true;
                    break;
                }
            }
        }
        if lost {
            self.report(key, CloseReason::Lost);
            self.remove(key);
            return;
        }
        let pending = e.transport.wants_write()
            || (write_http && !e.http.is_empty())
            || (write_out && e.conn.transmit_len() > 0);
        if !pending && e.phase == Phase::Open {
            // Take the lent buffer back; an idle connection keeps nothing.
            e.conn.swap_transmit_buffer(&mut self.spare);
            if self.spare.capacity() > SPARE_KEEP {
                self.spare = Vec::new();
            }
            e.conn.shrink_buffers();
        }
        if pending != e.writable {
            let interest = if pending {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut e.transport.stream, Token(key), interest)
                .is_err()
            {
                self.report(key, CloseReason::Lost);
                self.remove(key);
                return;
            }
            e.writable = pending;
        }
        if e.paused && e.conn.transmit_len() < self.limits.write_high_water {
            e.paused = false;
            self.resume.push(key);
        }
        let done_writing = !pending
            && match e.phase {
                Phase::Refusing => plaintext,
                Phase::Open => e.conn.should_close_transport(),
                Phase::Handshake | Phase::Linger | Phase::Deferred => false,
            };
        if done_writing {
            self.begin_linger(key);
        }
    }

    /// Half-closes (TLS close_notify, then FIN), then drains the peer until its EOF (see the
    /// module docs).
    fn begin_linger(&mut self, key: usize) {
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        e.transport.shutdown_write();
        e.phase = Phase::Linger;
        e.since = self.now;
        e.conn = Connection::server_shared(self.config.clone());
        let at = self.now + ms(self.timeouts.close);
        self.arm(key, at);
        // Bytes may already be waiting (edge-triggered: no new event for them).
        let mut buf = std::mem::take(&mut self.buf);
        self.linger_read(key, &mut buf);
        self.buf = buf;
    }

    fn linger_read(&mut self, key: usize, buf: &mut [u8]) {
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        if buf.is_empty() {
            // The loop's buffer is lent to the read this flush happens inside: a read into an
            // empty slice returns 0, which would look like EOF and drop the socket with unread
            // bytes, and the reset could destroy the close frame. Read on the next turn.
            self.more.push(key);
            return;
        }
        for _ in 0..READS_PER_TURN {
            // Raw bytes: with TLS, records no one will decrypt.
            match e.transport.stream.read(buf) {
                Ok(0) => {
                    self.remove(key);
                    return;
                }
                Ok(_) => {}
                Err(err) if would_block(&err) => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.remove(key);
                    return;
                }
            }
        }
        // Still talking: the rest is read (and discarded) on its next turn.
        self.more.push(key);
    }

    /// Drops a connection: deregisters it and gives back its place in the limits.
    pub(super) fn remove(&mut self, key: usize) {
        if !self.conns.contains(key) {
            return;
        }
        let mut e = self.conns.remove(key);
        self.local.topics.unsubscribe_all(key);
        self.local.states.remove(&(key as u32));
        if e.phase == Phase::Open && !e.conn.poll_transmit().is_empty() {
            // Last chance for what is queued (a close reply) when a timer or an error ends the
            // connection; after the peer's EOF, `on_eof` has flushed it properly.
            e.transport.write_last(e.conn.poll_transmit());
        }
        let _ = self.poll.registry().deregister(&mut e.transport.stream);
        if !e.counted {
            self.refusing = self.refusing.saturating_sub(1);
        }
        if e.counted {
            let shared = &self.handle.shared;
            shared.connections.fetch_sub(1, Ordering::SeqCst);
            if self.limits.max_connections_per_ip != usize::MAX {
                let mut per_ip = shared.per_ip.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(count) = per_ip.get_mut(&e.peer.ip()) {
                    *count -= 1;
                    if *count == 0 {
                        per_ip.remove(&e.peer.ip());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_idle_connection_is_under_a_quarter_kib() {
        // An idle connection is its slab slot (this entry; the slab's vacant/occupied tag
        // fits in a niche) plus one 16-byte timer entry. The goal is at most 256 bytes of
        // RSS per idle connection; `examples/idle_rss.rs` measures that end to end. mio's
        // TcpStream is 4 bytes in release builds, 16 with debug assertions: the limit is for
        // release, and debug builds get those 12 bytes on top (rounded up to 8). The
        // transport's TLS state is one optional box (8 bytes, null for plain TCP), paid for by
        // keeping the HTTP bytes behind one (`HttpBuf`); a TLS connection's rustls state is
        // measured separately (benches/LOAD.md).
        let entry = std::mem::size_of::<super::Entry>();
        let conn = std::mem::size_of::<crate::Connection>();
        eprintln!("connection entry {entry} bytes, of which the core's Connection {conn}");
        assert!(conn <= 88, "the core's Connection grew to {conn} bytes");
        let limit = if cfg!(debug_assertions) { 216 } else { 208 };
        assert!(
            entry <= limit,
            "a connection's fixed state grew to {entry} bytes"
        );
    }
}
