//! [`WebSocket`]: the core driven over an `AsyncRead + AsyncWrite`, and its split halves.
//!
//! All the driving is in [`Inner`]: one receive path (`poll_recv`), one write path
//! (`poll_write_out`), one timer hook (`poll_timers`). `WebSocket` owns an `Inner`; the halves
//! of [`WebSocket::split`] share one behind a mutex that is held only inside a poll, never
//! across an await.

use super::Error;
use crate::proto::{CloseCode, CloseFrame, Connection, Event, Message, State};
use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use futures_core::Stream;
use futures_sink::Sink;
use std::cell::Cell;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Wake, Waker};

/// The size of one read. The buffer is lent to a connection only while it holds bytes it has
/// not handed out yet; an idle connection holds none.
const READ_BUF: usize = 64 * 1024;
/// A transmit buffer larger than this is not kept for the next connection.
const SPARE_WRITE_MAX: usize = 4 << 20;
/// Slots for one vectored write.
const WRITE_PIECES: usize = 16;
/// Reads answered with one write, at most. As the mio server does, the receive path reads
/// again before it writes, until the transport has nothing more (`Pending`) or this many
/// reads were made: a large message streaming in goes back out in writes of up to 512 KiB,
/// not one per read. (Over tokio's `TcpStream` the read after a short one costs no syscall:
/// tokio knows the socket is drained.) 8 rather than the mio server's 16: in scenario d (1 MiB
/// echoes, one at a time) 8 did 1,811–1,955 msg/s and 16 did 1,685–1,847 in the same five
/// rounds (benches/LOAD.md): the peer gets the first half back sooner.
const READS_PER_WRITE: u8 = 8;

thread_local! {
    // One read buffer and one transmit buffer per thread, lent to whichever connection this
    // thread is serving: no allocation per read, and none kept by an idle connection.
    static SPARE_READ: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static SPARE_WRITE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

fn take_read_buf() -> Vec<u8> {
    let spare = SPARE_READ.try_with(Cell::take).unwrap_or_default();
    if spare.len() == READ_BUF {
        spare
    } else {
        vec![0; READ_BUF]
    }
}

fn give_read_buf(buf: Vec<u8>) {
    if buf.len() == READ_BUF {
        let _ = SPARE_READ.try_with(|spare| spare.set(buf));
    }
}

/// Which side of a split is polling: each keeps its own write waker (see [`WriteWakers`]).
#[derive(Copy, Clone)]
pub(super) enum Side {
    Reader = 0,
    Writer = 1,
}

/// After a split, both halves may write (the reader its pongs and close replies, the writer
/// its messages), but a transport keeps one write waker. Both halves' wakers are kept here
/// and the transport gets one that wakes them both.
#[derive(Default)]
struct WriteWakers {
    slots: Mutex<[Option<Waker>; 2]>,
}

impl Wake for WriteWakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let taken = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            [slots[0].take(), slots[1].take()]
        };
        for waker in taken.into_iter().flatten() {
            waker.wake();
        }
    }
}

/// How the receive path ends.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Phase {
    Open,
    /// The close handshake is over or the connection failed: write what is queued, then
    /// close the transport (a server, or after a failure) or wait for the server to.
    Ending,
    Done,
}

pub(super) struct Inner<S> {
    io: S,
    pub(super) conn: Connection,
    /// `rbuf[start..end]` was read but not parsed yet; empty (no allocation) otherwise.
    rbuf: Vec<u8>,
    start: usize,
    end: usize,
    phase: Phase,
    /// What `recv` returns once the ending is over: a protocol error, or `None` after a
    /// clean close.
    end_result: Option<Error>,
    peer_close: Option<CloseFrame<'static>>,
    /// Bytes queued over which sending waits for the transport ([`Sink::poll_ready`]).
    high_water: usize,
    /// Something was written since the transport was last flushed.
    unflushed: bool,
    /// The transport was shut down.
    shut: bool,
    wakers: Option<(Arc<WriteWakers>, Waker)>,
    /// After a split: the reader's waker while it waits to read.
    reader_waker: Option<Waker>,
    timers: super::timers::Timers,
    /// The message `recv` is collecting from parts (`Config::stream_binary_from`).
    parts: Vec<u8>,
    /// Reads since the last write in the receive path: the next read comes before the write
    /// (up to [`READS_PER_WRITE`]), which waits for a read that finds nothing.
    reads: u8,
}

/// `recv`'s delivery: every message owned, parts collected into one.
fn owned<S>(event: Event<'_>, reply: &mut Reply<'_, S>) -> Option<Message<'static>> {
    match event {
        Event::Message(m) => Some(m.into_owned()),
        Event::Part(part) => {
            reply.parts.extend_from_slice(&part.data);
            part.last
                .then(|| Message::Binary(std::mem::take(reply.parts).into()))
        }
        _ => None,
    }
}

/// Answers from inside [`WebSocket::recv_with`], while the received message still lies in
/// the read buffer: [`send`](Self::send) offers a large payload straight to the transport
/// ([`Connection::send_through`]), so an echo or a relay copies nothing.
pub struct Reply<'a, S> {
    conn: &'a mut Connection,
    io: &'a mut S,
    waker: &'a Waker,
    unflushed: &'a mut bool,
    parts: &'a mut Vec<u8>,
}

impl<S> std::fmt::Debug for Reply<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply").finish_non_exhaustive()
    }
}

impl<S> Reply<'_, S>
where
    S: AsyncWrite + Unpin,
{
    /// Sends `message`, which may borrow the received one: a payload of 16 KiB or more goes
    /// to the transport where it lies, after everything queued, in one vectored write;
    /// whatever the transport does not take (and every smaller message) is queued and goes
    /// out with the answers to the rest of the read.
    pub fn send(&mut self, message: Message<'_>) -> Result<(), Error> {
        let io = &mut *self.io;
        let mut cx = Context::from_waker(self.waker);
        let unflushed = &mut *self.unflushed;
        self.conn
            .send_through(message, |pieces| {
                match Pin::new(io).poll_write_vectored(&mut cx, pieces) {
                    Poll::Ready(Ok(n)) => {
                        *unflushed = true;
                        Ok(n)
                    }
                    Poll::Ready(Err(e)) => Err(e),
                    Poll::Pending => Ok(0),
                }
            })
            .map_err(Error::WebSocket)
    }

    /// Sends a piece of a message in parts ([`Connection::send_part`]): pass each received
    /// [`Part`](crate::Part) on with its `last`.
    pub fn send_part(&mut self, data: &[u8], last: bool) -> Result<(), Error> {
        self.conn.send_part(data, last).map_err(Error::WebSocket)
    }

    /// The connection (its state, the negotiated extensions).
    pub fn connection(&self) -> &Connection {
        self.conn
    }
}

impl<S> Inner<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    pub(super) fn new(io: S, conn: Connection, rest: Vec<u8>, high_water: usize) -> Inner<S> {
        let end = rest.len();
        Inner {
            io,
            conn,
            rbuf: rest,
            start: 0,
            end,
            phase: Phase::Open,
            end_result: None,
            peer_close: None,
            high_water,
            unflushed: false,
            shut: false,
            wakers: None,
            reader_waker: None,
            timers: super::timers::Timers::default(),
            parts: Vec::new(),
            reads: 0,
        }
    }

    fn split_wakers(&mut self) {
        let wakers = Arc::new(WriteWakers::default());
        let waker = Waker::from(wakers.clone());
        self.wakers = Some((wakers, waker));
    }

    /// Bytes read and not handed out yet: more messages of the same read may follow.
    fn input_pending(&self) -> bool {
        self.start < self.end
    }

    /// The receive path leaves the answers to what was read for the next read: the last one
    /// found bytes (more may follow), fewer than [`READS_PER_WRITE`] reads went unanswered,
    /// and the queue is under the high-water mark.
    fn answers_wait(&self) -> bool {
        (1..READS_PER_WRITE).contains(&self.reads) && self.conn.transmit_len() < self.high_water
    }

    /// Parses one event out of the read buffer and hands a message or a part to `deliver`.
    /// `Some` for what `recv` returns now.
    fn parse_one<T, F>(&mut self, cx: &mut Context<'_>, deliver: &mut F) -> Option<Result<T, Error>>
    where
        F: FnMut(Event<'_>, &mut Reply<'_, S>) -> Option<T>,
    {
        let mut input = &mut self.rbuf[self.start..self.end];
        let result = self.conn.read(&mut input);
        let left = input.len();
        let out = match result {
            Ok(Some(event @ (Event::Message(_) | Event::Part(_)))) => {
                let mut reply = Reply {
                    conn: &mut self.conn,
                    io: &mut self.io,
                    waker: cx.waker(),
                    unflushed: &mut self.unflushed,
                    parts: &mut self.parts,
                };
                deliver(event, &mut reply).map(Ok)
            }
            Ok(Some(Event::Close(frame))) => {
                self.peer_close = frame.map(CloseFrame::into_owned);
                self.phase = Phase::Ending;
                None
            }
            // Pongs are queued by the core (auto_pong).
            Ok(Some(_)) => None,
            Ok(None) => None,
            Err(e) => {
                // The close frame with the error's code is queued: it goes out, then the
                // transport closes, then recv returns the error.
                self.end_result = Some(Error::WebSocket(e));
                self.phase = Phase::Ending;
                None
            }
        };
        self.start = self.end - left;
        if self.start == self.end || self.phase != Phase::Open {
            self.release_read_buf();
        }
        out
    }

    fn release_read_buf(&mut self) {
        self.start = 0;
        self.end = 0;
        give_read_buf(std::mem::take(&mut self.rbuf));
    }

    /// Lends the thread's transmit buffer to the connection for the answers to a read.
    fn lend_transmit_buf(&mut self) {
        let mut spare = SPARE_WRITE.try_with(Cell::take).unwrap_or_default();
        if spare.capacity() > 0 {
            // On success `spare` becomes the connection's previous, empty buffer; dropped.
            self.conn.swap_transmit_buffer(&mut spare);
        }
    }

    /// Takes the transmit buffer back once everything is written, and frees what an idle
    /// connection does not need.
    fn go_idle(&mut self) {
        let mut buf = Vec::new();
        if self.conn.swap_transmit_buffer(&mut buf)
            && buf.capacity() > 0
            && buf.capacity() <= SPARE_WRITE_MAX
        {
            let _ = SPARE_WRITE.try_with(|spare| {
                let old = spare.take();
                spare.set(if old.capacity() >= buf.capacity() {
                    old
                } else {
                    buf
                });
            });
        }
        self.conn.shrink_buffers();
    }

    /// Writes what the connection has queued, then flushes the transport.
    pub(super) fn poll_write_out(
        &mut self,
        cx: &mut Context<'_>,
        side: Side,
    ) -> Poll<io::Result<()>> {
        if self.conn.transmit_len() == 0 && !self.unflushed {
            return Poll::Ready(Ok(()));
        }
        let Some((wakers, waker)) = &self.wakers else {
            return self.write_out(cx);
        };
        {
            let mut slots = wakers.slots.lock().unwrap_or_else(|e| e.into_inner());
            let slot = &mut slots[side as usize];
            if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *slot = Some(cx.waker().clone());
            }
        }
        let waker = waker.clone();
        self.write_out(&mut Context::from_waker(&waker))
    }

    fn write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.conn.transmit_len() > 0 {
            let written = if self.io.is_write_vectored() {
                let mut pieces = [IoSlice::new(&[]); WRITE_PIECES];
                let n = self.conn.poll_transmit_vectored(&mut pieces);
                ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &pieces[..n]))
            } else {
                ready!(Pin::new(&mut self.io).poll_write(cx, self.conn.poll_transmit()))
            };
            match written {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.conn.consume_transmit(n);
                    self.unflushed = true;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        self.unflushed = false;
        Poll::Ready(Ok(()))
    }

    /// The next message, or `None` once the connection has ended cleanly. Cancel-safe: a
    /// message leaves the read buffer only in the poll that returns it.
    pub(super) fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        side: Side,
    ) -> Poll<Option<Result<Message<'static>, Error>>> {
        self.poll_recv_with(cx, side, &mut owned)
    }

    /// The receive path: `deliver` gets each message or part as it is parsed and says
    /// whether `recv` returns now (`Some`) or goes on.
    pub(super) fn poll_recv_with<T, F>(
        &mut self,
        cx: &mut Context<'_>,
        side: Side,
        deliver: &mut F,
    ) -> Poll<Option<Result<T, Error>>>
    where
        F: FnMut(Event<'_>, &mut Reply<'_, S>) -> Option<T>,
    {
        loop {
            match self.phase {
                Phase::Done => return Poll::Ready(None),
                Phase::Ending => {
                    ready!(self.poll_end(cx, side));
                    self.phase = Phase::Done;
                    self.go_idle();
                    return Poll::Ready(self.end_result.take().map(Err));
                }
                Phase::Open => {}
            }
            if self.input_pending() {
                if let Some(out) = self.parse_one(cx, deliver) {
                    return Poll::Ready(Some(out));
                }
                continue;
            }
            // Everything read is handed out: the answers to it go out in one write, after
            // the next read if that one finds more.
            let blocked = if self.answers_wait() {
                false
            } else {
                self.reads = 0;
                match self.poll_write_out(cx, side) {
                    Poll::Ready(Ok(())) => false,
                    Poll::Ready(Err(e)) => return self.fail_io(e),
                    Poll::Pending => self.conn.transmit_len() >= self.high_water,
                }
            };
            if self.timers.poll(&mut self.conn, cx).is_ready() {
                // A heartbeat ping or an idle close may be queued: write it. A timer that
                // ended the connection (no pong, no close reply) ends `recv` with its kind.
                if self.conn.state() == State::Closed {
                    self.end_result = self.conn.timed_out().map(Error::Timeout);
                    self.phase = Phase::Ending;
                }
                continue;
            }
            if blocked {
                // Over the high-water mark: stop reading until the peer reads.
                return Poll::Pending;
            }
            if self.rbuf.len() != READ_BUF {
                self.rbuf = take_read_buf();
            }
            let mut buf = ReadBuf::new(&mut self.rbuf);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Pending => {
                    if self.reads > 0 {
                        // Nothing more to read: write the answers to the reads before.
                        self.reads = 0;
                        if let Poll::Ready(Err(e)) = self.poll_write_out(cx, side) {
                            return self.fail_io(e);
                        }
                    }
                    self.release_read_buf();
                    if self.conn.transmit_len() == 0 {
                        self.go_idle();
                    }
                    if self.wakers.is_some() {
                        // After a split, the writer's close wakes the reader to run the timer.
                        self.reader_waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return self.fail_io(e),
                Poll::Ready(Ok(())) => {}
            }
            let n = buf.filled().len();
            if n == 0 && self.reads > 0 {
                // The end of the input: write the answers to the reads before it first (the
                // next read finds the end again).
                self.reads = 0;
                self.release_read_buf();
                continue;
            }
            if n == 0 {
                self.release_read_buf();
                self.phase = Phase::Done;
                self.go_idle();
                return match self.conn.handle_eof() {
                    Ok(()) => Poll::Ready(None),
                    Err(e) => Poll::Ready(Some(Err(Error::WebSocket(e)))),
                };
            }
            self.start = 0;
            self.end = n;
            self.reads = self.reads.saturating_add(1);
            if self.conn.transmit_len() == 0 {
                self.lend_transmit_buf();
            }
        }
    }

    fn fail_io<T>(&mut self, e: io::Error) -> Poll<Option<Result<T, Error>>> {
        self.release_read_buf();
        self.phase = Phase::Done;
        Poll::Ready(Some(Err(Error::Io(e))))
    }

    /// The end of the connection: writes what is queued (the close reply, or the close frame
    /// of a failure), then closes the transport if this side closes first, or waits for the
    /// peer to.
    fn poll_end(&mut self, cx: &mut Context<'_>, side: Side) -> Poll<()> {
        loop {
            if self.shut {
                return Poll::Ready(());
            }
            match self.poll_write_out(cx, side) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => {
                    self.shut = true;
                    return Poll::Ready(());
                }
                Poll::Pending => {
                    // A peer that never reads: bounded by the core's close timer.
                    if self.timers.poll(&mut self.conn, cx).is_ready() {
                        if let Some(kind) = self.conn.timed_out() {
                            self.end_result.get_or_insert(Error::Timeout(kind));
                            self.shut = true;
                            return Poll::Ready(());
                        }
                        continue;
                    }
                    return Poll::Pending;
                }
            }
            if self.conn.should_close_transport() || self.conn.state() != State::Closed {
                // A server (or either side after a failure) closes first. The state is not
                // Closed only after an I/O-less ending such as a timer's.
                let _ = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
                self.shut = true;
                return Poll::Ready(());
            }
            // A client waits for the server to close TCP (RFC 6455 §7.1.1), bounded by the
            // core's close timeout.
            if self.timers.poll(&mut self.conn, cx).is_ready() {
                continue; // the close timeout may have passed: should_close_transport says
            }
            if self.rbuf.len() != READ_BUF {
                self.rbuf = take_read_buf();
            }
            let mut buf = ReadBuf::new(&mut self.rbuf);
            let result = ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf));
            let n = buf.filled().len();
            if result.is_err() || n == 0 {
                self.release_read_buf();
                self.shut = true;
                return Poll::Ready(());
            }
            // Bytes after the close are ignored (RFC 6455 §5.5.1).
        }
    }

    pub(super) fn queue(&mut self, message: Message<'_>) -> Result<(), Error> {
        self.conn.send_owned(message).map_err(Error::WebSocket)
    }

    /// Room to queue another message: the queue is under the high-water mark, or written
    /// down below it.
    pub(super) fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        side: Side,
    ) -> Poll<Result<(), Error>> {
        if self.conn.state() != State::Open {
            return Poll::Ready(Err(Error::WebSocket(crate::Error::Closed)));
        }
        if self.conn.transmit_len() < self.high_water {
            return Poll::Ready(Ok(()));
        }
        match self.poll_write_out(cx, side) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(Error::Io(e))),
            Poll::Pending if self.conn.transmit_len() < self.high_water => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    pub(super) fn poll_flush(
        &mut self,
        cx: &mut Context<'_>,
        side: Side,
    ) -> Poll<Result<(), Error>> {
        self.poll_write_out(cx, side).map_err(Error::Io)
    }

    /// Starts the close handshake (if it has not started) and writes the close frame.
    pub(super) fn poll_close_send(
        &mut self,
        cx: &mut Context<'_>,
        side: Side,
        code: CloseCode,
        reason: &str,
    ) -> Poll<Result<(), Error>> {
        if self.conn.state() == State::Open {
            self.conn.close(code, reason).map_err(Error::WebSocket)?;
            if let Some(reader) = self.reader_waker.take() {
                reader.wake();
            }
        }
        self.poll_flush(cx, side)
    }
}

fn lock<S>(inner: &Mutex<Inner<S>>) -> MutexGuard<'_, Inner<S>> {
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

/// A WebSocket connection over `S` (a `TcpStream`, a TLS stream, hyper's `Upgraded` …),
/// made by [`accept`](super::accept), [`client`](super::client) or [`connect`](super::connect).
///
/// - [`recv`](Self::recv) returns the next message, `None` once the connection ended cleanly.
///   Pings are answered by the core; the peer's close is answered, and then the server
///   closes TCP (a client waits for the server to). **`recv` is cancel-safe**: dropping its
///   future (in a `select!` branch that lost) loses nothing; the next call goes on where it
///   was.
/// - [`send`](Self::send) queues a message and writes — unless more received messages are
///   waiting in the read buffer, in which case it leaves the write to the `recv` that finds
///   the buffer empty: all the answers to one read go out in one write. [`flush`](Self::flush)
///   writes at once.
/// - As a `futures` [`Stream`] of messages and a [`Sink`] of [`Message`]s; the sink is ready
///   while less than [`AcceptOptions::write_buffer`](super::AcceptOptions::write_buffer)
///   bytes wait for the transport, which is the backpressure.
/// - [`split`](Self::split) gives a reader and a writer for two tasks.
pub struct WebSocket<S> {
    inner: Inner<S>,
}

impl<S> std::fmt::Debug for WebSocket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("conn", &self.inner.conn)
            .finish_non_exhaustive()
    }
}

impl<S> WebSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    pub(super) fn from_inner(inner: Inner<S>) -> WebSocket<S> {
        WebSocket { inner }
    }

    /// The next message; `None` once the connection has ended cleanly (the close handshake
    /// is over and the transport closed). An error ends the connection too (a protocol error
    /// has sent its close frame first); later calls return `None`.
    ///
    /// Cancel-safe: see the type's documentation.
    pub async fn recv(&mut self) -> Option<Result<Message<'static>, Error>> {
        poll_fn(|cx| self.inner.poll_recv(cx, Side::Reader)).await
    }

    /// Receives without copying: hands `f` the next message, borrowed from the read buffer,
    /// and a [`Reply`] to answer it with there and then; returns what `f` returns. With
    /// [`Config::stream_binary_from`](crate::Config::stream_binary_from) set, large binary
    /// messages come as [`Event::Part`]s as they arrive (pass them on with
    /// [`Reply::send_part`]); otherwise every event is an [`Event::Message`]. Pings, pongs
    /// and the close are handled as in [`recv`](Self::recv). The answers `f` queues go out
    /// in one write when the transport has nothing more to read (or after 8 reads), from
    /// the next call: call it again (or [`flush`](Self::flush)) to have them written.
    /// Cancel-safe like `recv`: `f` runs only in the poll that returns.
    ///
    /// ```no_run
    /// # async fn echo(mut ws: rfc6455::tokio::WebSocket<tokio::net::TcpStream>) {
    /// use rfc6455::Event;
    /// while let Some(Ok(Ok(()))) = ws
    ///     .recv_with(|event, reply| match event {
    ///         Event::Message(m) => reply.send(m),
    ///         Event::Part(p) => reply.send_part(&p.data, p.last),
    ///         _ => Ok(()),
    ///     })
    ///     .await
    /// {}
    /// # }
    /// ```
    pub async fn recv_with<R, F>(&mut self, mut f: F) -> Option<Result<R, Error>>
    where
        F: FnMut(Event<'_>, &mut Reply<'_, S>) -> R,
    {
        let mut deliver = |event: Event<'_>, reply: &mut Reply<'_, S>| Some(f(event, reply));
        poll_fn(|cx| self.inner.poll_recv_with(cx, Side::Reader, &mut deliver)).await
    }

    /// Queues `message` and writes it, unless received messages still wait in the read
    /// buffer (see the type's documentation). Waits only while the transport does not take
    /// the bytes. The message is queued in the first poll: if the future is dropped after
    /// that, the message still goes out with the next write.
    ///
    /// Owned payloads of 16 KiB or more are queued without a copy
    /// ([`Connection::send_owned`]).
    pub async fn send(&mut self, message: Message<'_>) -> Result<(), Error> {
        self.inner.queue(message)?;
        if self.inner.input_pending() && self.inner.conn.transmit_len() < self.inner.high_water {
            return Ok(());
        }
        self.flush().await
    }

    /// Queues a ping; it goes out with the next write ([`flush`](Self::flush)).
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.inner.conn.ping(payload).map_err(Error::WebSocket)
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.inner.poll_flush(cx, Side::Writer)).await
    }

    /// Closes the connection: sends a close frame with `code` and `reason`, reads (and drops)
    /// messages until the peer's close arrives, and closes the transport (a client waits for
    /// the server to). Returns the peer's close frame (`None` if it had no code).
    pub async fn close(
        &mut self,
        code: CloseCode,
        reason: &str,
    ) -> Result<Option<CloseFrame<'static>>, Error> {
        poll_fn(|cx| self.inner.poll_close_send(cx, Side::Writer, code, reason)).await?;
        while let Some(result) = self.recv().await {
            result?;
        }
        Ok(self.inner.peer_close.clone())
    }

    /// The peer's close frame, once received.
    pub fn peer_close(&self) -> Option<&CloseFrame<'static>> {
        self.inner.peer_close.as_ref()
    }

    /// The sans-IO connection: its [`state`](Connection::state), negotiated
    /// [`deflate_params`](Connection::deflate_params), [`config`](Connection::config).
    pub fn connection(&self) -> &Connection {
        &self.inner.conn
    }

    /// The transport.
    pub fn get_ref(&self) -> &S {
        &self.inner.io
    }

    /// Splits the connection into a reader and a writer that can live in different tasks.
    /// They share the connection behind a mutex held only inside a poll. The reader answers
    /// pings and the peer's close and runs the timers: keep receiving on it.
    pub fn split(self) -> (WsReader<S>, WsWriter<S>) {
        let mut inner = self.inner;
        inner.split_wakers();
        let shared = Arc::new(Mutex::new(inner));
        (
            WsReader {
                inner: shared.clone(),
            },
            WsWriter { inner: shared },
        )
    }
}

impl<S> Stream for WebSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Item = Result<Message<'static>, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().inner.poll_recv(cx, Side::Reader)
    }
}

impl<'a, S> Sink<Message<'a>> for WebSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().inner.poll_ready(cx, Side::Writer)
    }

    fn start_send(self: Pin<&mut Self>, item: Message<'a>) -> Result<(), Error> {
        self.get_mut().inner.queue(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().inner.poll_flush(cx, Side::Writer)
    }

    /// Sends a close frame (1000) and writes it. The peer's answer ends the stream.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut()
            .inner
            .poll_close_send(cx, Side::Writer, CloseCode::NORMAL, "")
    }
}

/// The receiving half of a [`WebSocket::split`]. It also answers pings and the peer's close
/// and runs the timers, so keep receiving on it until it returns `None`.
pub struct WsReader<S> {
    inner: Arc<Mutex<Inner<S>>>,
}

/// The sending half of a [`WebSocket::split`]. Every [`send`](Self::send) writes at once.
pub struct WsWriter<S> {
    inner: Arc<Mutex<Inner<S>>>,
}

impl<S> std::fmt::Debug for WsReader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsReader").finish_non_exhaustive()
    }
}

impl<S> std::fmt::Debug for WsWriter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsWriter").finish_non_exhaustive()
    }
}

impl<S> WsReader<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// The next message, as [`WebSocket::recv`] (cancel-safe too).
    pub async fn recv(&mut self) -> Option<Result<Message<'static>, Error>> {
        poll_fn(|cx| lock(&self.inner).poll_recv(cx, Side::Reader)).await
    }

    /// The peer's close frame, once received.
    pub fn peer_close(&self) -> Option<CloseFrame<'static>> {
        lock(&self.inner).peer_close.clone()
    }

    /// Puts the two halves of one [`WebSocket::split`] back together. Halves of different
    /// connections are handed back unchanged in the error.
    ///
    /// ```no_run
    /// # async fn f(ws: rfc6455::tokio::WebSocket<tokio::net::TcpStream>) {
    /// let (reader, writer) = ws.split();
    /// // … a reader task and a writer task, then:
    /// let ws = reader.reunite(writer).expect("halves of one connection");
    /// # }
    /// ```
    pub fn reunite(self, writer: WsWriter<S>) -> Result<WebSocket<S>, ReuniteError<S>> {
        if !Arc::ptr_eq(&self.inner, &writer.inner) {
            return Err(ReuniteError(self, writer));
        }
        drop(writer);
        let Ok(inner) = Arc::try_unwrap(self.inner) else {
            unreachable!("the reader and the writer hold the only two references")
        };
        let mut inner = inner.into_inner().unwrap_or_else(|e| e.into_inner());
        inner.wakers = None;
        inner.reader_waker = None;
        Ok(WebSocket::from_inner(inner))
    }
}

/// [`WsReader::reunite`] was given halves of two different connections: here they are back.
pub struct ReuniteError<S>(pub WsReader<S>, pub WsWriter<S>);

impl<S> std::fmt::Debug for ReuniteError<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReuniteError(..)")
    }
}

impl<S> std::fmt::Display for ReuniteError<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the reader and the writer are halves of different connections")
    }
}

impl<S> std::error::Error for ReuniteError<S> {}

impl<S> WsWriter<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Queues `message` and writes everything queued.
    pub async fn send(&mut self, message: Message<'_>) -> Result<(), Error> {
        lock(&self.inner).queue(message)?;
        self.flush().await
    }

    /// Queues a ping and writes it.
    pub async fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        lock(&self.inner)
            .conn
            .ping(payload)
            .map_err(Error::WebSocket)?;
        self.flush().await
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| lock(&self.inner).poll_flush(cx, Side::Writer)).await
    }

    /// Sends a close frame and writes it. The reader sees the peer's answer and ends.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        poll_fn(|cx| lock(&self.inner).poll_close_send(cx, Side::Writer, code, reason)).await
    }
}

impl<S> Stream for WsReader<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Item = Result<Message<'static>, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        lock(&self.inner).poll_recv(cx, Side::Reader)
    }
}

impl<'a, S> Sink<Message<'a>> for WsWriter<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        lock(&self.inner).poll_ready(cx, Side::Writer)
    }

    fn start_send(self: Pin<&mut Self>, item: Message<'a>) -> Result<(), Error> {
        lock(&self.inner).queue(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        lock(&self.inner).poll_flush(cx, Side::Writer)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        lock(&self.inner).poll_close_send(cx, Side::Writer, CloseCode::NORMAL, "")
    }
}
