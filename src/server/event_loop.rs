//! One event loop: a mio `Poll`, its listeners, a slab of connections, a timer heap, a read
//! buffer and a spare transmit buffer. See the module docs of [`server`](super) for the shape.

use super::topics::Topics;
use super::transport::{Transport, PLAIN_HTTP_ON_TLS, PLAIN_HTTP_RESPONSE};
use super::{
    CloseReason, ConnId, Context, Handle, Handler, HttpContext, Limits, SlowSubscriber, Timeouts,
};
use crate::proto::{
    CloseCode, Config, Connection, Error, Event, HandshakeError, HttpRequest, HttpResponse,
    Message, Rejection, Request, SharedFrame, State, Status,
};
use crate::TimeoutKind;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::any::Any;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, IoSlice, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener as StdListener};
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The waker's token.
pub(super) const WAKER: Token = Token(usize::MAX);

/// Listener `i` has token `LISTENERS + i`; connections have their slab key, always below.
const LISTENERS: usize = usize::MAX / 2;

/// The read buffer every connection of a loop shares.
const READ_BUFFER: usize = 64 * 1024;

/// Reads of one connection per turn (1 MiB with the 64 KiB buffer). A peer with more to
/// give waits for the next turn, after the other connections' events: one fast sender must
/// not starve the rest of its loop.
const READS_PER_TURN: usize = 16;
/// Most pieces (HTTP response, frame headers, payloads queued by value) in one write.
const WRITE_PIECES: usize = 16;

/// The spare transmit buffer is kept up to this capacity between uses.
const SPARE_KEEP: usize = 4 << 20;

/// Refused connections lingering (to deliver their 503/429) beyond this are just dropped.
const MAX_REFUSING: usize = 1024;

/// The server's permessage-deflate configuration, if it offers the extension.
#[cfg(feature = "deflate")]
pub(super) type DeflateOption = Option<crate::proto::deflate::DeflateConfig>;
/// Without the `deflate` feature there is nothing to configure.
#[cfg(not(feature = "deflate"))]
pub(super) type DeflateOption = ();

/// The server's TLS configuration, if it has TLS listeners.
#[cfg(feature = "tls")]
pub(super) type TlsOption = Option<crate::tls::TlsConfig>;
/// Without the `tls` feature there is nothing to configure.
#[cfg(not(feature = "tls"))]
pub(super) type TlsOption = ();

/// Work for a loop from a [`Handle`].
pub(super) enum Command {
    Send(ConnId, Message<'static>),
    Close(ConnId, CloseCode, String),
    /// One per loop per publish, whatever the number of subscribers.
    Publish(Arc<Publication>),
}

/// A message published to a topic: encoded once, shared by every loop and subscriber.
pub(super) struct Publication {
    pub(super) topic: Box<[u8]>,
    pub(super) frame: SharedFrame,
    /// The publisher, when it asked to be left out.
    pub(super) except: Option<ConnId>,
}

/// One loop's counters for [`Handle::topic_stats`]: written by that loop only (each on its
/// own cache lines, so loops do not contend).
#[derive(Default)]
#[repr(align(128))]
pub(super) struct LoopStats {
    pub(super) delivered: AtomicU64,
    pub(super) delivered_bytes: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) slow_closed: AtomicU64,
    /// Written by publishers on other threads when this loop's mailbox is full.
    pub(super) missed: AtomicU64,
}

/// What a [`Context`] reaches of its loop beyond the connection: topics, the connections'
/// application states, and the publishes to deliver once the callback returns.
pub(super) struct Local {
    pub(super) topics: Topics,
    pub(super) states: HashMap<u32, Box<dyn Any + Send>>,
    pub(super) pending: Vec<Arc<Publication>>,
    pub(super) max_subscriptions: usize,
}

/// A loop's mailbox: commands plus the waker that makes it look.
pub(super) struct Mailbox {
    pub(super) tx: SyncSender<Command>,
    pub(super) waker: Waker,
}

/// What all loops share: mailboxes, the shutdown flag, connection counts for the limits.
pub(super) struct Shared {
    pub(super) mailboxes: Vec<Mailbox>,
    pub(super) shutdown: AtomicBool,
    /// One per loop.
    pub(super) stats: Vec<LoopStats>,
    connections: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl Shared {
    pub(super) fn new(mailboxes: Vec<Mailbox>, loops: usize) -> Shared {
        Shared {
            mailboxes,
            shutdown: AtomicBool::new(false),
            stats: (0..loops).map(|_| LoopStats::default()).collect(),
            connections: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading the request head into `http`.
    Handshake,
    /// Writing a refusal from `http`; then linger.
    Refusing,
    /// WebSocket frames; `http` holds what is left of the 101.
    Open,
    /// Write side shut down; reading and discarding until EOF or the close timeout.
    Linger,
}

/// One connection. Times are milliseconds since the loop started; optional ones are
/// `NonZeroU64` (see [`tick`]) so they take 8 bytes, not 16: an idle connection is this
/// struct, one slab slot and one timer entry, nothing else.
/// The HTTP bytes of a connection (the request head while it is incomplete, then the
/// response not yet written): one pointer while empty, which an open connection almost
/// always is, instead of a `Vec`'s three words.
// The extra allocation is the point: an empty `HttpBuf` is one word.
#[allow(clippy::box_collection)]
#[derive(Default)]
struct HttpBuf(Option<Box<Vec<u8>>>);

impl HttpBuf {
    /// The buffer to write into.
    fn vec(&mut self) -> &mut Vec<u8> {
        self.0.get_or_insert_with(Box::default)
    }

    fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.vec().extend_from_slice(bytes);
    }

    fn clear(&mut self) {
        if let Some(v) = &mut self.0 {
            v.clear();
        }
    }

    /// Drops the first `n` bytes; frees the buffer once it is empty.
    fn consume(&mut self, n: usize) {
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

struct Entry {
    transport: Transport,
    peer: SocketAddr,
    conn: Connection,
    /// The request head while it is incomplete, then the HTTP response not yet written.
    http: HttpBuf,
    generation: u32,
    phase: Phase,
    /// Counted in the connection limits (refused ones are not).
    counted: bool,
    /// `Handler::open` accepted it and `Handler::close` has not been called yet.
    reportable: bool,
    writable: bool,
    paused: bool,
    /// The message being received in parts began with the write queue under its high-water
    /// mark: reading goes on until its last part (see `read_ready`).
    parts_read_through: bool,
    overflow: bool,
    /// When the phase began (accept, linger), or the close started.
    since: u64,
    closing_since: Option<NonZeroU64>,
    last_heard: u64,
    last_message: u64,
    ping_sent: Option<NonZeroU64>,
    timer_at: Option<NonZeroU64>,
}

impl Entry {
    /// The id of the connection in slot `key` of loop `thread`.
    fn id(&self, thread: u32, key: usize) -> ConnId {
        ConnId {
            thread,
            slot: key as u32,
            generation: self.generation,
        }
    }
}

pub(super) struct EventLoop<H: Handler> {
    index: u32,
    poll: Poll,
    rx: Receiver<Command>,
    /// Each with whether it speaks TLS.
    listeners: Vec<(TcpListener, bool)>,
    /// The TLS configuration of the TLS listeners.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    tls: TlsOption,
    handler: H,
    handle: Handle,
    /// Shared by every connection of the loop.
    config: Arc<Config>,
    timeouts: Timeouts,
    limits: Limits,
    #[cfg_attr(not(feature = "deflate"), allow(dead_code))]
    deflate: DeflateOption,

    conns: Slab<Entry>,
    local: Local,
    timers: BinaryHeap<Reverse<(u64, u32, u32)>>,
    buf: Vec<u8>,
    spare: Vec<u8>,
    epoch: Instant,
    now: u64,
    next_generation: u32,
    refusing: usize,
    shutdown_at: Option<u64>,
    /// Connections with output to flush after the mailbox was drained.
    dirty: Vec<usize>,
    /// Paused connections whose queue drained: read them again (edge-triggered, so no new
    /// event would come for bytes already waiting).
    resume: Vec<usize>,
    /// Connections whose turn ended with bytes possibly still waiting: read them again on
    /// the next turn of the loop (edge-triggered, so no new event would come for them).
    more: Vec<usize>,
}

/// A timeout in the loop's milliseconds. Capped at 2^62 ms (146 million years, as good as
/// never) so that adding one to a time on the loop's clock cannot overflow.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).map_or(NEVER, |t| t.min(NEVER))
}

const NEVER: u64 = 1 << 62;

/// A time as an optional field: 0 ms (the loop's first millisecond) reads as 1.
fn tick(t: u64) -> NonZeroU64 {
    NonZeroU64::new(t).unwrap_or(NonZeroU64::MIN)
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl<H: Handler> EventLoop<H> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        index: u32,
        poll: Poll,
        rx: Receiver<Command>,
        std_listeners: Vec<(StdListener, bool)>,
        tls: TlsOption,
        handler: H,
        handle: Handle,
        config: Config,
        timeouts: Timeouts,
        limits: Limits,
        deflate: DeflateOption,
    ) -> io::Result<EventLoop<H>> {
        let mut listeners = Vec::with_capacity(std_listeners.len());
        for (i, (l, secure)) in std_listeners.into_iter().enumerate() {
            l.set_nonblocking(true)?;
            let mut l = TcpListener::from_std(l);
            poll.registry()
                .register(&mut l, Token(LISTENERS + i), Interest::READABLE)?;
            listeners.push((l, secure));
        }
        let max_subscriptions = limits.max_subscriptions;
        Ok(EventLoop {
            index,
            poll,
            rx,
            listeners,
            tls,
            handler,
            handle,
            config: Arc::new(config),
            timeouts,
            limits,
            deflate,
            conns: Slab::new(),
            local: Local {
                topics: Topics::default(),
                states: HashMap::new(),
                pending: Vec::new(),
                max_subscriptions,
            },
            timers: BinaryHeap::new(),
            buf: vec![0; READ_BUFFER],
            spare: Vec::new(),
            epoch: Instant::now(),
            now: 0,
            next_generation: 0,
            refusing: 0,
            shutdown_at: None,
            dirty: Vec::new(),
            resume: Vec::new(),
            more: Vec::new(),
        })
    }

    pub(super) fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = if self.more.is_empty() {
                self.poll_timeout()
            } else {
                Some(Duration::ZERO) // just look for events, then give those their turn
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.now = ms(self.epoch.elapsed());
            for event in events.iter() {
                let token = event.token();
                if token == WAKER {
                    self.drain_mailbox();
                } else if token.0 >= LISTENERS {
                    self.accept(token.0 - LISTENERS);
                } else {
                    let key = token.0;
                    if event.is_writable() {
                        self.on_writable(key);
                    }
                    if event.is_read_closed() || event.is_error() {
                        self.on_readable(key);
                    } else if event.is_readable() {
                        self.on_readable_edge(key);
                    }
                }
            }
            // What the callbacks published goes out once per turn: each subscriber gets
            // everything published to it in the turn in one write.
            self.deliver_pending();
            if self.shutdown_at.is_none() && self.handle.shared.shutdown.load(Ordering::SeqCst) {
                // Commands queued before the shutdown go out before the close frames.
                self.drain_mailbox();
                self.begin_shutdown();
            }
            self.run_timers();
            while let Some(key) = self.resume.pop() {
                self.on_readable(key);
            }
            // One more turn each; whoever still has bytes queues itself for the next.
            let more = std::mem::take(&mut self.more);
            for &key in &more {
                self.on_readable(key);
            }
            self.deliver_pending();
            if let Some(at) = self.shutdown_at {
                if self.conns.is_empty() {
                    return Ok(());
                }
                if self.now >= at {
                    let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                    for key in keys {
                        self.report(key, CloseReason::Timeout(TimeoutKind::Close));
                        self.remove(key);
                    }
                    return Ok(());
                }
            }
        }
    }

    fn poll_timeout(&mut self) -> Option<Duration> {
        let now = ms(self.epoch.elapsed());
        let mut next = self.timers.peek().map(|Reverse((at, _, _))| *at);
        if let Some(at) = self.shutdown_at {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        next.map(|at| Duration::from_millis(at.saturating_sub(now)))
    }

    // ------------------------------------------------------------------------ accepting

    fn accept(&mut self, index: usize) {
        loop {
            let Some((listener, secure)) = self.listeners.get(index) else {
                return;
            };
            let secure = *secure;
            let (stream, peer) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if would_block(&e) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                // Out of descriptors or memory: connections wait in the backlog until the next
                // accept edge. Nothing to do here that would not spin.
                Err(_) => return,
            };
            let _ = stream.set_nodelay(true);
            let transport = match self.transport(stream, secure) {
                Some(transport) => transport,
                None => continue,
            };
            let refusal = self.admit(peer.ip());
            if refusal.is_some() && self.refusing >= MAX_REFUSING {
                continue; // dropped: even refusing politely has a bound
            }
            let generation = self.next_generation;
            self.next_generation = self.next_generation.wrapping_add(1);
            let entry = Entry {
                transport,
                peer,
                conn: Connection::server_shared(self.config.clone()),
                http: HttpBuf::default(),
                generation,
                phase: Phase::Handshake,
                counted: refusal.is_none(),
                reportable: false,
                writable: false,
                paused: false,
                parts_read_through: false,
                overflow: false,
                since: self.now,
                closing_since: None,
                last_heard: self.now,
                last_message: self.now,
                ping_sent: None,
                timer_at: None,
            };
            let vacant = self.conns.vacant_entry();
            let key = vacant.key();
            let entry = vacant.insert(entry);
            if self
                .poll
                .registry()
                .register(&mut entry.transport.stream, Token(key), Interest::READABLE)
                .is_err()
            {
                self.remove(key);
                continue;
            }
            match refusal {
                None => {
                    let at = self.now + ms(self.timeouts.handshake);
                    self.arm(key, at);
                }
                Some(rejection) => {
                    self.refusing += 1;
                    self.refuse(key, &rejection);
                }
            }
        }
    }

    /// The transport for a connection accepted on a plain or a TLS listener.
    #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
    fn transport(&self, stream: TcpStream, secure: bool) -> Option<Transport> {
        #[cfg(feature = "tls")]
        if secure {
            let config = self.tls.as_ref()?;
            return Transport::tls(stream, config.rustls()).ok();
        }
        Some(Transport::plain(stream))
    }

    /// Counts a new connection in the limits, or says how to refuse it.
    fn admit(&self, ip: IpAddr) -> Option<Rejection> {
        let shared = &self.handle.shared;
        if shared.connections.fetch_add(1, Ordering::SeqCst) >= self.limits.max_connections {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
            return Some(
                Rejection::new(503)
                    .body("the server is at its connection limit; retry later\n")
                    .header("Retry-After", "1")
                    .unwrap_or_else(|_| Rejection::new(503)),
            );
        }
        if self.limits.max_connections_per_ip != usize::MAX {
            let mut per_ip = shared.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            let count = per_ip.entry(ip).or_insert(0);
            if *count >= self.limits.max_connections_per_ip {
                drop(per_ip);
                shared.connections.fetch_sub(1, Ordering::SeqCst);
                return Some(
                    Rejection::new(429)
                        .body("too many connections from your address; close some first\n"),
                );
            }
            *count += 1;
        }
        None
    }

    /// A plain HTTP request: the handler answers, or it is refused as a failed handshake.
    fn on_http(&mut self, key: usize, request: &HttpRequest, error: &HandshakeError) {
        let Some(e) = self.conns.get(key) else {
            return;
        };
        let mut ctx = HttpContext {
            peer: e.peer,
            handle: &self.handle,
        };
        match self.handler.http(&mut ctx, request) {
            Some(response) => self.respond(key, &response),
            None => self.refuse(key, &error.rejection()),
        }
    }

    /// Answers a plain HTTP request with `response`, then shuts down and lingers.
    fn respond(&mut self, key: usize, response: &HttpResponse) {
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        e.http.clear();
        response.write_to(e.http.vec());
        self.refusing_phase(key);
    }

    /// Answers with `rejection`, then shuts down and lingers.
    fn refuse(&mut self, key: usize, rejection: &Rejection) {
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        e.http.clear();
        rejection.write_to(e.http.vec());
        self.refusing_phase(key);
    }

    /// Writes what is in `http`, then shuts down and lingers.
    fn refusing_phase(&mut self, key: usize) {
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        e.phase = Phase::Refusing;
        e.since = self.now;
        let at = self.now + ms(self.timeouts.close);
        self.arm(key, at);
        self.flush(key);
    }

    // ------------------------------------------------------------------------ reading

    /// Reads until the socket would block (or a per-turn cap): for readiness that did not
    /// come with a fresh edge (resumed after backpressure, another turn), and for an edge that
    /// reported the peer's FIN or an error, which only a read that returns 0 or fails shows.
    fn on_readable(&mut self, key: usize) {
        let mut buf = std::mem::take(&mut self.buf);
        self.read_ready(key, &mut buf, false);
        self.buf = buf;
    }

    /// For a plain readable edge: a read that does not fill the buffer emptied the socket,
    /// and bytes arriving after it raise a new edge, so the extra read that would only return
    /// `WouldBlock` is skipped (it was one syscall in three at one message in flight).
    fn on_readable_edge(&mut self, key: usize) {
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
            if e.phase == Phase::Refusing && !e.transport.is_handshaking() {
                // The request is not read; lingering after the response drains it. (A TLS
                // handshake still has to finish before the refusal can be written.)
                break;
            }
            if reads == READS_PER_TURN {
                self.more.push(key);
                break;
            }
            reads += 1;
            let drains = e.transport.short_read_drains();
            match e.transport.read(buf) {
                Ok(0) => {
                    self.on_eof(key);
                    return;
                }
                Ok(n) => {
                    e.last_heard = self.now;
                    e.ping_sent = None;
                    match e.phase {
                        Phase::Handshake => self.on_handshake_bytes(key, &mut buf[..n]),
                        Phase::Open => self.on_frames(key, &mut buf[..n]),
                        Phase::Refusing | Phase::Linger => {}
                    }
                    if short_read_ends && drains && n < buf.len() {
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
        let mut ctx = Context {
            id,
            peer: e.peer,
            conn: &mut e.conn,
            handle: &self.handle,
            max_write_queue: self.limits.max_write_queue,
            overflow: &mut e.overflow,
            direct: None,
            local: &mut self.local,
        };
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
                e.last_message = self.now;
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
                    e.last_message = self.now;
                    if let Event::Part(part) = &event {
                        if part.first {
                            e.parts_read_through =
                                e.conn.transmit_len() < self.limits.write_high_water;
                        }
                    }
                    let mut ctx = Context {
                        id,
                        peer: e.peer,
                        conn: &mut e.conn,
                        handle: &self.handle,
                        max_write_queue: self.limits.max_write_queue,
                        overflow: &mut e.overflow,
                        direct: e.http.is_empty().then_some(&mut e.transport),
                        local: &mut self.local,
                    };
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
                        let mut ctx = Context {
                            id,
                            peer: e.peer,
                            conn: &mut e.conn,
                            handle: &self.handle,
                            max_write_queue: self.limits.max_write_queue,
                            overflow: &mut overflow,
                            direct: None,
                            local: &mut self.local,
                        };
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
    fn check_overflow(&mut self, key: usize) {
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
    fn after_state_change(&mut self, key: usize) {
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        if e.phase == Phase::Open && e.conn.state() != State::Open && e.closing_since.is_none() {
            e.closing_since = Some(tick(self.now));
            let at = self.now + ms(self.timeouts.close);
            self.arm(key, at);
        }
    }

    /// Calls `Handler::close` once, if the handler accepted the connection.
    fn report(&mut self, key: usize, reason: CloseReason<'_>) {
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        if !e.reportable {
            return;
        }
        e.reportable = false;
        let mut overflow = false;
        let mut ctx = Context {
            id: e.id(self.index, key),
            peer: e.peer,
            conn: &mut e.conn,
            handle: &self.handle,
            max_write_queue: 0,
            overflow: &mut overflow,
            direct: None,
            local: &mut self.local,
        };
        self.handler.close(&mut ctx, reason);
        // Subscriptions and state end with the connection.
        self.local.topics.unsubscribe_all(key);
        self.local.states.remove(&(key as u32));
    }

    // ------------------------------------------------------------------------ writing

    fn on_writable(&mut self, key: usize) {
        self.flush(key);
    }

    /// One write of everything pending (the HTTP response, then frames); what the socket
    /// refuses stays queued with WRITABLE interest on. Then moves the phase on: resume a
    /// paused reader, shut down the write side once the close is out.
    fn flush(&mut self, key: usize) {
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
                Phase::Handshake | Phase::Linger => false,
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
    fn remove(&mut self, key: usize) {
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

    // ------------------------------------------------------------------------ mailbox

    fn drain_mailbox(&mut self) {
        while let Ok(command) = self.rx.try_recv() {
            let (id, action) = match command {
                Command::Send(id, message) => (id, Ok(message)),
                Command::Close(id, code, reason) => (id, Err((code, reason))),
                Command::Publish(publication) => {
                    self.local.pending.push(publication);
                    continue;
                }
            };
            let key = id.slot as usize;
            let Some(e) = self.conns.get_mut(key) else {
                continue;
            };
            if e.generation != id.generation || e.phase != Phase::Open || e.overflow {
                continue; // stale id, or already going
            }
            e.conn.swap_transmit_buffer(&mut self.spare);
            match action {
                Ok(message) => {
                    if e.conn.transmit_len() + e.conn.held_len() + message.len()
                        > self.limits.max_write_queue
                    {
                        e.overflow = true;
                    } else {
                        let _ = e.conn.send_owned(message);
                    }
                }
                Err((code, reason)) => {
                    let _ = e.conn.close(code, &reason);
                }
            }
            self.check_overflow(key);
            self.after_state_change(key);
            self.dirty.push(key);
        }
        self.deliver_pending();
    }

    /// Writes out every connection marked dirty, each once.
    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for &key in &dirty {
            self.flush(key);
        }
        self.dirty = dirty;
        self.dirty.clear();
    }

    // ------------------------------------------------------------------------ topics

    /// Queues every publication waiting (from this loop's callbacks and from the mailbox)
    /// to this loop's subscribers, then writes each subscriber once: a subscriber that gets
    /// several messages in one turn gets them in one write.
    fn deliver_pending(&mut self) {
        while !self.local.pending.is_empty() {
            let batch = std::mem::take(&mut self.local.pending);
            for publication in &batch {
                self.deliver(publication);
            }
        }
        self.flush_dirty();
    }

    fn deliver(&mut self, publication: &Publication) {
        let shared = self.handle.shared.clone();
        let stats = &shared.stats[self.index as usize];
        let frame = &publication.frame;
        let limit = self.limits.max_publish_queue;
        let mut delivered = 0u64;
        let mut slow: Vec<(usize, usize)> = Vec::new();
        for &key in self.local.topics.subscribers(&publication.topic) {
            let key = key as usize;
            let Some(e) = self.conns.get_mut(key) else {
                continue;
            };
            if e.phase != Phase::Open || e.overflow || e.conn.state() != State::Open {
                continue;
            }
            if publication.except == Some(e.id(self.index, key)) {
                continue;
            }
            let queued = e.conn.transmit_len() + e.conn.held_len();
            if queued > 0 && queued + frame.len() > limit {
                slow.push((key, queued));
                continue;
            }
            e.conn.swap_transmit_buffer(&mut self.spare);
            if e.conn.send_shared(frame).is_ok() {
                delivered += 1;
                self.dirty.push(key);
            }
        }
        stats.delivered.fetch_add(delivered, Ordering::Relaxed);
        stats
            .delivered_bytes
            .fetch_add(delivered * frame.len() as u64, Ordering::Relaxed);
        for (key, queued) in slow {
            match self.limits.slow_subscriber {
                SlowSubscriber::Drop => {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                SlowSubscriber::Close => {
                    stats.slow_closed.fetch_add(1, Ordering::Relaxed);
                    let Some(e) = self.conns.get_mut(key) else {
                        continue;
                    };
                    e.overflow = true;
                    let _ = e.conn.fail(
                        CloseCode::POLICY_VIOLATION,
                        "too slow to read what is published",
                    );
                    self.report(key, CloseReason::Overflow { queued, limit });
                    self.after_state_change(key);
                    self.dirty.push(key);
                }
            }
        }
    }

    fn begin_shutdown(&mut self) {
        self.shutdown_at = Some(self.now + ms(self.timeouts.close));
        for (mut listener, _) in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let Some(e) = self.conns.get_mut(key) else {
                continue;
            };
            match e.phase {
                Phase::Handshake => self.remove(key),
                Phase::Open => {
                    e.conn.swap_transmit_buffer(&mut self.spare);
                    let _ = e.conn.close(CloseCode::GOING_AWAY, "server shutting down");
                    self.after_state_change(key);
                    self.flush(key);
                }
                Phase::Refusing | Phase::Linger => {}
            }
        }
    }

    // ------------------------------------------------------------------------ timers

    /// Makes sure connection `key` is looked at no later than `at`.
    fn arm(&mut self, key: usize, at: u64) {
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        let at = tick(at);
        if e.timer_at.is_some_and(|t| t <= at) {
            return; // an earlier check re-arms for the rest
        }
        e.timer_at = Some(at);
        self.timers
            .push(Reverse((at.get(), key as u32, e.generation)));
    }

    fn run_timers(&mut self) {
        while let Some(&Reverse((at, key, generation))) = self.timers.peek() {
            if at > self.now {
                break;
            }
            self.timers.pop();
            let key = key as usize;
            let Some(e) = self.conns.get_mut(key) else {
                continue;
            };
            if e.generation != generation || e.timer_at != Some(tick(at)) {
                continue; // stale: superseded or for a connection that has gone
            }
            e.timer_at = None;
            self.on_timer(key);
            if let Some(next) = self.next_deadline(key) {
                self.arm(key, next);
            }
        }
    }

    /// The earliest moment something is due for connection `key`.
    fn next_deadline(&self, key: usize) -> Option<u64> {
        let e = self.conns.get(key)?;
        let close = ms(self.timeouts.close);
        match e.phase {
            Phase::Handshake => Some(e.since + ms(self.timeouts.handshake)),
            Phase::Refusing | Phase::Linger => Some(e.since + close),
            Phase::Open => {
                if let Some(since) = e.closing_since {
                    return Some(since.get() + close);
                }
                let mut next = None::<u64>;
                let mut at = |t: u64| next = Some(next.map_or(t, |n| n.min(t)));
                if let Some(idle) = self.timeouts.idle {
                    at(e.last_message + ms(idle));
                }
                if let Some(hb) = &self.timeouts.heartbeat {
                    match e.ping_sent {
                        Some(sent) => at(sent.get() + ms(hb.timeout)),
                        None => at(e.last_heard + ms(hb.interval)),
                    }
                }
                next
            }
        }
    }

    fn on_timer(&mut self, key: usize) {
        let now = self.now;
        let close = ms(self.timeouts.close);
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        match e.phase {
            Phase::Handshake => {
                if now >= e.since + ms(self.timeouts.handshake) {
                    // Silent or slow: no answer, the request is not complete.
                    self.remove(key);
                }
            }
            Phase::Refusing | Phase::Linger => {
                if now >= e.since + close {
                    self.remove(key);
                }
            }
            Phase::Open => {
                if let Some(since) = e.closing_since {
                    if now >= since.get() + close {
                        self.report(key, CloseReason::Timeout(TimeoutKind::Close));
                        self.remove(key);
                    }
                    return;
                }
                if let Some(idle) = self.timeouts.idle {
                    if now >= e.last_message + ms(idle) {
                        e.conn.swap_transmit_buffer(&mut self.spare);
                        let _ = e.conn.close(CloseCode::GOING_AWAY, "idle timeout");
                        self.after_state_change(key);
                        self.flush(key);
                        return;
                    }
                }
                if let Some(hb) = self.timeouts.heartbeat.clone() {
                    match e.ping_sent {
                        Some(sent) if now >= sent.get() + ms(hb.timeout) => {
                            e.conn.swap_transmit_buffer(&mut self.spare);
                            let _ = e.conn.fail(CloseCode::GOING_AWAY, "heartbeat timeout");
                            self.report(key, CloseReason::Timeout(TimeoutKind::Heartbeat));
                            self.after_state_change(key);
                            self.flush(key);
                        }
                        None if now >= e.last_heard + ms(hb.interval) => {
                            e.conn.swap_transmit_buffer(&mut self.spare);
                            let _ = e.conn.ping(b"");
                            e.ping_sent = Some(tick(now));
                            self.flush(key);
                        }
                        _ => {}
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
