//! One load thread: a mio loop that owns its share of the connections outright.
//!
//! Each connection goes `Waiting → Connecting → Handshake → Open → Closing → Done`. While
//! open it keeps `depth` messages in flight: every echo received (validated, timed) sends one
//! more. Per message there is no allocation: the payload is prepared once and the core copies
//! it, masked, into the connection's transmit buffer; the send times live in a ring per
//! connection (capacity `depth`, allocated once); reads land in one buffer per thread; all
//! that a readable event produces for a connection goes out in one `write`.
//!
//! `--churn`: a connection sends one message, closes with 1000 once its echo is back, and once
//! the server has closed TCP the same slot connects again, until the window ends; what is
//! measured is new connections (TCP, TLS, WebSocket handshakes, one echo, the close) per second.

use super::broadcast::{self, Broadcast};
use super::histogram::Histogram;
use super::serve::{self, Serve};
use super::tls::{Sock as TcpStream, TlsPlan};
use mio::{Events, Interest, Poll, Token};
use rfc6455::proto::{
    ClientHandshake, ClientHandshakeError, ClientOptions, ClientSession, RandomKeys, Response,
    Status, Url,
};
use rfc6455::tls::rustls;
use rfc6455::{CloseCode, Config, Connection, Event, Message, State};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Plan {
    /// The server connection `n` (the run's index) goes to.
    fn target(&self, n: usize) -> (&Url, SocketAddr) {
        match n % (self.also.len() + 1) {
            0 => (&self.url, self.addr),
            k => (&self.also[k - 1].0, self.also[k - 1].1),
        }
    }
}

/// What every thread runs, decided once by the command.
pub struct Plan {
    pub url: Url,
    pub addr: SocketAddr,
    /// `--also`: more servers; connection N goes to the (N mod count)-th of `url` and these.
    pub also: Vec<(Url, SocketAddr)>,
    /// The payload of every message, prepared once.
    pub payload: Payload,
    pub depth: usize,
    pub idle: bool,
    /// `--churn`: close after one echo and connect again (see the module doc).
    pub churn: bool,
    /// Compare every echo byte for byte (otherwise only its type and length).
    pub verify: bool,
    /// Time zero of the run, shared by all threads.
    pub t0: Instant,
    /// The measurement window, as nanoseconds since `t0`.
    pub window: (u64, u64),
    pub handshake_timeout: Duration,
    pub close_timeout: Duration,
    /// At most this many connections per thread may be connecting or handshaking at once, so
    /// thousands of connections do not overflow the server's listen backlog.
    pub max_pending: usize,
    /// `--tcp-congestion`: set on every connection.
    pub congestion: Option<String>,
    /// `--broadcast`: publishers and receivers instead of echoes (`payload` is then the
    /// pattern the header is written over, and `depth` the messages in flight per publisher).
    pub broadcast: Option<Arc<Broadcast>>,
    /// `--broadcast --serve ROOM`: the broadcast in `rfc6455 serve`'s JSON protocol.
    pub serve: Option<Serve>,
    /// `wss://`: every connection speaks TLS.
    pub tls: Option<TlsPlan>,
}

/// Sets `TCP_CONGESTION`, saying where the choices are listed if the kernel refuses.
pub fn set_congestion(socket: &socket2::SockRef<'_>, name: &str) -> Result<(), String> {
    socket.set_tcp_congestion(name.as_bytes()).map_err(|e| {
        format!("--tcp-congestion {name}: {e} (choices: /proc/sys/net/ipv4/tcp_available_congestion_control, and without root tcp_allowed_congestion_control)")
    })
}

/// A message's payload, in the type it is sent as.
pub enum Payload {
    Text(String),
    Binary(Vec<u8>),
}

impl Payload {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Payload::Text(text) => text.as_bytes(),
            Payload::Binary(data) => data,
        }
    }

    pub fn is_text(&self) -> bool {
        matches!(self, Payload::Text(_))
    }

    pub fn message(&self) -> Message<'_> {
        match self {
            Payload::Text(text) => Message::text(text.as_str()),
            Payload::Binary(data) => Message::binary(data.as_slice()),
        }
    }
}

impl Plan {
    fn now(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }
}

/// Counters a thread publishes for the progress line (cumulative, stored once per loop turn).
#[derive(Default)]
pub struct Live {
    /// Echoes received so far, warmup included.
    pub echoes: AtomicU64,
    /// Connections open now.
    pub up: AtomicU64,
    /// Errors so far.
    pub errors: AtomicU64,
    /// `--broadcast`: messages published so far by this thread's publishers.
    pub published: AtomicU64,
}

/// Kinds of failure, counted separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Connect,
    Handshake,
    Protocol,
    BadEcho,
    Lost,
    Reordered,
    Corrupt,
    ServeError,
    UnexpectedClose,
    Io,
    CloseTimeout,
    Unfinished,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::Connect,
        Kind::Handshake,
        Kind::Protocol,
        Kind::BadEcho,
        Kind::Lost,
        Kind::Reordered,
        Kind::Corrupt,
        Kind::ServeError,
        Kind::UnexpectedClose,
        Kind::Io,
        Kind::CloseTimeout,
        Kind::Unfinished,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            Kind::Connect => "TCP connect failed",
            Kind::Handshake => "opening handshake failed",
            Kind::Protocol => "the server broke the protocol",
            Kind::BadEcho => "an echo did not match what was sent",
            Kind::Lost => {
                "broadcast messages lost (a gap in a publisher's sequence, or never received)"
            }
            Kind::Reordered => "broadcast messages out of order or duplicated",
            Kind::Corrupt => "broadcast messages with a wrong type, length, header or payload",
            Kind::ServeError => "serve answered with an error",
            Kind::UnexpectedClose => "the server closed a connection before the end",
            Kind::Io => "socket error",
            Kind::CloseTimeout => "close handshake not answered in time",
            Kind::Unfinished => "still connecting when the run ended",
        }
    }
}

/// Error counts with a few examples (different messages) of each kind.
#[derive(Default)]
pub struct Errors {
    pub counts: [u64; Kind::ALL.len()],
    pub samples: Vec<(Kind, String)>,
}

impl Errors {
    const SAMPLES_PER_KIND: usize = 3;

    fn add(&mut self, kind: Kind, message: impl FnOnce() -> String) {
        self.add_n(kind, 1, message);
    }

    /// Counts `n` errors of one kind (e.g. messages lost in one gap) with one example.
    fn add_n(&mut self, kind: Kind, n: u64, message: impl FnOnce() -> String) {
        self.counts[kind as usize] += n;
        self.sample(kind, message);
    }

    /// Keeps `message` as an example of `kind` if it is new and there is room.
    fn sample(&mut self, kind: Kind, message: impl FnOnce() -> String) {
        let of_kind = || self.samples.iter().filter(move |(k, _)| *k == kind);
        if of_kind().count() < Self::SAMPLES_PER_KIND {
            let message = message();
            if !of_kind().any(|(_, m)| *m == message) {
                self.samples.push((kind, message));
            }
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn merge(&mut self, other: Errors) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        for (kind, message) in other.samples {
            self.sample(kind, || message);
        }
    }
}

/// What a thread hands back at the end.
#[derive(Default)]
pub struct Report {
    /// Round-trip times of the echoes received in the window, in nanoseconds.
    pub latency: Histogram,
    /// Echoes received in the window (`--broadcast`: deliveries, every copy received).
    pub echoes: u64,
    /// `--broadcast`: messages published in the window.
    pub published: u64,
    /// `--broadcast`: messages received before publishing began, not counted.
    pub ignored: u64,
    /// `--serve`: presence and other messages that are not room messages, not checked.
    pub other: u64,
    /// `--serve`: messages serve refused with `rate_limited` (or connections it closed for it).
    pub rate_limited: u64,
    /// `--serve`: connections refused with 429 (serve's per-IP limit).
    pub refused: u64,
    /// Connections whose handshake completed.
    pub established: u64,
    /// `--churn`: connections that completed their cycle (handshake, echo, clean close) in
    /// the window.
    pub churned: u64,
    /// `wss://`: of the connections established, how many resumed a TLS session.
    pub resumed: u64,
    /// Connections open when the window ended.
    pub up_at_end: u64,
    /// Connections closed with a completed close handshake.
    pub closed_clean: u64,
    /// Of those, how many the server answered but then left open until the close timeout
    /// (the server should close TCP first, RFC 6455 §7.1.1).
    pub close_lingered: u64,
    pub errors: Errors,
}

enum Handshaking {
    Wait,
    Failed(Kind, String),
    /// The server's response, and the bytes that followed its head.
    Done(Box<Response>, Vec<u8>),
}

enum Phase {
    Waiting,
    Connecting,
    Handshake(Box<Handshake>),
    Open,
    Closing,
    Done,
}

struct Handshake {
    client: ClientHandshake,
    /// How much of the request was written.
    written: usize,
    /// The response as received so far.
    response: Vec<u8>,
}

struct Conn {
    sock: Option<TcpStream>,
    phase: Phase,
    ws: Option<Connection>,
    /// Send times (ns since `t0`) of the messages in flight, oldest first: echoes come back
    /// in order.
    sent: VecDeque<u64>,
    /// Bytes of the echo being received in parts so far.
    received: usize,
    /// Large payloads: the next message, already framed and masked (with a fresh key, by a
    /// client core of its own) while this connection waited for an echo.
    next: Option<Box<Prepared>>,
    /// Handshake or close deadline (ns since `t0`), 0 for none.
    deadline: u64,
    /// `--broadcast`: the next sequence number expected from each publisher (allocated once
    /// the connection is open).
    expected: Box<[u64]>,
    /// `--broadcast`: this connection's index in the thread's publishers, or [`NOT_A_PUBLISHER`].
    slot: usize,
    /// `--serve`: how far the connection is into joining the room.
    step: Step,
    /// `wss:// --churn`: this slot's TLS configuration, with its own session cache.
    tls_config: Option<Arc<rustls::ClientConfig>>,
}

/// `--serve`: a connection's way into the room.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Waiting for `{"type":"welcome",…}`.
    Welcome,
    /// `join` sent, waiting for `{"type":"joined",…}`.
    Joining,
    /// In the room (counted in [`Broadcast::join`]).
    Joined,
}

const NOT_A_PUBLISHER: usize = usize::MAX;

/// `--broadcast`: one of this thread's publishing connections.
struct Publisher {
    /// Its connection on this thread.
    conn: usize,
    /// Its publisher id, 0..K across all threads.
    id: usize,
    /// Messages it sent: the next one's sequence number.
    seq: u64,
    /// It stopped (and said so in [`Broadcast::stop`]).
    stopped: bool,
}

/// A publisher with `--rate` defers a message while its connection holds more than this
/// unsent: the server is not keeping up, and the tool should not buffer without bound.
const PUBLISH_QUEUE_MAX: usize = 4 << 20;

/// A frame made ahead of time, so that masking a large payload is not on the path from one
/// echo to the next message.
struct Prepared {
    /// A client core used only to frame and mask: its transmit queue holds the frame.
    frame: Connection,
    /// The frame was sent (counted in flight): write it before anything queued after it.
    due: bool,
}

/// Payloads from this size are framed ahead of time ([`Prepared`]). Below it the tool's time
/// goes to many connections at once, with no wait to hide the masking in (at 16 KiB it was
/// no faster: see benches/LOAD.md).
const PREPARE_MIN: usize = 64 << 10;

/// xorshift64 (Marsaglia 2003): a fast non-cryptographic generator.
///
/// Masking keys only have to be unpredictable to intermediaries on the network path
/// (RFC 6455 §10.3: so a script cannot make a proxy see bytes it chose), not to someone who
/// can read this process, so xorshift seeded once per thread from `rand`'s OS-seeded generator
/// is enough for a load generator. A client talking to untrusted networks on behalf of
/// untrusted scripts should use a cryptographic generator.
#[derive(Clone)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed | 1) // never zero: zero is a fixed point
    }

    #[inline]
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// A connection's masking keys: its own xorshift stream.
fn mask_source(mut rng: XorShift) -> impl FnMut() -> [u8; 4] + Send + 'static {
    move || ((rng.next() >> 32) as u32).to_ne_bytes()
}

struct Worker<'a> {
    plan: &'a Plan,
    live: &'a Live,
    poll: Poll,
    conns: Vec<Conn>,
    /// The one read buffer of this thread.
    buf: Vec<u8>,
    config: Config,
    /// What the core negotiates (nothing today: the load tool offers no extension), and the
    /// request's options with its offers.
    session: ClientSession,
    options: ClientOptions,
    /// Seeds each connection's masking generator; itself seeded once per thread.
    seeds: XorShift,
    next_start: usize,
    /// `--churn`: slots closed cleanly, to connect again.
    restart: Vec<usize>,
    pending: usize,
    up: u64,
    echoes_total: u64,
    ending: bool,
    report: Report,
    /// This thread's index and the number of threads: connection `i` here is the run's
    /// `thread + i * threads`.
    thread: usize,
    threads: usize,
    /// `--broadcast`: this thread's publishers, and the buffer each message is made in (the
    /// pattern, its header rewritten per message).
    publishers: Vec<Publisher>,
    scratch: Payload,
    /// Where the header goes in `scratch` (after serve's JSON prefix with `--serve`).
    header_at: usize,
    /// When publishing began, once this thread has seen it.
    started: Option<u64>,
    /// The window has ended and the publishers stopped: until this time (ns since `t0`)
    /// receivers wait for the messages in flight.
    draining: Option<u64>,
    /// Drained yet? is checked at most once per millisecond: at this time next.
    next_drain_check: u64,
    /// With `--rate`: when the next message of this thread's publishers is due.
    next_due: u64,
    published_total: u64,
}

/// Runs `count` connections until the window ends and every connection is closed, or until
/// every connection has failed. This is thread `thread` of `threads`: its connection `i` is
/// the run's connection `thread + i * threads` (with `--broadcast`, those below K publish).
pub fn run(plan: &Plan, live: &Live, count: usize, thread: usize, threads: usize) -> Report {
    let mut worker = match Poll::new() {
        Ok(poll) => Worker::new(plan, live, poll, count, thread, threads),
        Err(e) => {
            let mut report = Report::default();
            report
                .errors
                .add(Kind::Io, || format!("cannot create an event loop: {e}"));
            return report;
        }
    };
    worker.run();
    worker.report
}

impl<'a> Worker<'a> {
    fn new(
        plan: &'a Plan,
        live: &'a Live,
        poll: Poll,
        count: usize,
        thread: usize,
        threads: usize,
    ) -> Worker<'a> {
        let mut config = Config::default();
        let size = plan.payload.as_bytes().len();
        config.max_frame_size = config.max_frame_size.max(size);
        config.max_message_size = config.max_message_size.max(size);
        config.max_send_frame_size = config.max_send_frame_size.max(size);
        // Large binary echoes are checked as they arrive, not collected and then compared:
        // one pass over each instead of a copy and a pass.
        // A broadcast message is checked whole (its header first).
        config.stream_binary_from = plan.broadcast.is_none().then_some(4 << 10);
        let publishers: Vec<Publisher> = match &plan.broadcast {
            Some(b) => (0..count)
                .map(|i| (i, thread + i * threads))
                .take_while(|&(_, id)| id < b.publishers)
                .map(|(conn, id)| Publisher {
                    conn,
                    id,
                    seq: 0,
                    stopped: false,
                })
                .collect(),
            None => Vec::new(),
        };
        let conns = (0..count)
            .map(|i| Conn {
                sock: None,
                phase: Phase::Waiting,
                ws: None,
                sent: VecDeque::new(),
                received: 0,
                next: None,
                deadline: 0,
                expected: Box::default(),
                slot: if i < publishers.len() {
                    i
                } else {
                    NOT_A_PUBLISHER
                },
                step: Step::Welcome,
                tls_config: None,
            })
            .collect();
        let session = ClientSession::new();
        let (scratch, header_at) = match (&plan.payload, &plan.serve) {
            (Payload::Text(text), Some(serve)) => {
                let (json, at) = serve.message(text);
                (Payload::Text(json), at)
            }
            (Payload::Text(text), None) if plan.broadcast.is_some() => {
                (Payload::Text(text.clone()), 0)
            }
            (Payload::Binary(data), _) if plan.broadcast.is_some() => {
                (Payload::Binary(data.clone()), 0)
            }
            _ => (Payload::Binary(Vec::new()), 0),
        };
        Worker {
            plan,
            live,
            poll,
            conns,
            // Big enough that a 16 KiB echo usually arrives whole and is handed out without a
            // copy; bigger messages are collected by the core.
            buf: vec![0; 256 << 10],
            config,
            options: session.offer(&ClientOptions::default()),
            session,
            seeds: XorShift::new(rand::random()),
            next_start: 0,
            restart: Vec::new(),
            pending: 0,
            up: 0,
            echoes_total: 0,
            ending: false,
            report: Report::default(),
            thread,
            threads,
            publishers,
            scratch,
            header_at,
            started: None,
            draining: None,
            next_drain_check: 0,
            next_due: u64::MAX,
            published_total: 0,
        }
    }

    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        let mut next_scan = 0;
        loop {
            let now = self.plan.now();
            if !self.ending && self.draining.is_none() && now >= self.plan.window.1 {
                if self.plan.broadcast.is_some() {
                    self.stop_publishing(now);
                } else {
                    self.begin_end(now);
                }
            }
            if let Some(until) = self.draining {
                if now >= until || self.drained(now) {
                    self.count_missing();
                    self.draining = None;
                    self.begin_end(now);
                }
            }
            if self.ending && self.conns.iter().all(|c| matches!(c.phase, Phase::Done)) {
                break;
            }
            if !self.ending && self.draining.is_none() {
                self.start_connections(now);
                if self.plan.broadcast.is_some() {
                    self.publish(now);
                }
            }
            if now >= next_scan {
                self.check_deadlines(now);
                next_scan = now + 50_000_000;
            }
            self.live.echoes.store(self.echoes_total, Relaxed);
            self.live.up.store(self.up, Relaxed);
            self.live.errors.store(self.report.errors.total(), Relaxed);
            self.live.published.store(self.published_total, Relaxed);
            // Every connection started, none connecting or up: nothing is left to run (before
            // the end, that means every one failed).
            if self.next_start == self.conns.len()
                && self.restart.is_empty()
                && self.pending == 0
                && self.up == 0
            {
                break;
            }

            let mut timeout = if self.ending {
                Duration::from_millis(50)
            } else {
                Duration::from_nanos(self.plan.window.1.saturating_sub(now))
                    .min(Duration::from_millis(50))
            };
            if self.plan.broadcast.is_some() && !self.ending {
                let wait = if self.draining.is_some() {
                    1_000_000
                } else if self.started.is_none() && !self.publishers.is_empty() {
                    // The last handshake may complete on another thread: look again soon.
                    1_000_000
                } else {
                    self.next_due.saturating_sub(now)
                };
                timeout = timeout.min(Duration::from_nanos(wait));
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                self.report
                    .errors
                    .add(Kind::Io, || format!("waiting for events failed: {e}"));
                for i in 0..self.conns.len() {
                    self.drop_conn(i);
                }
                break;
            }
            // Publishers first (`--broadcast`; they are the first connections): with one
            // message in flight, a publisher sends its next as soon as it reads its own copy,
            // not after this thread has read every other receiver's.
            let publishers = self.publishers.len();
            for first in [true, false] {
                if first && publishers == 0 {
                    continue;
                }
                for event in events.iter() {
                    let i = event.token().0;
                    if i < self.conns.len() && (i < publishers) == first {
                        self.on_event(i, event.is_read_closed() || event.is_error());
                    }
                }
            }
        }
    }

    /// Opens connections while fewer than `max_pending` are on their way.
    fn start_connections(&mut self, now: u64) {
        while self.pending < self.plan.max_pending {
            let i = if let Some(i) = self.restart.pop() {
                i
            } else if self.next_start < self.conns.len() {
                self.next_start += 1;
                self.next_start - 1
            } else {
                break;
            };
            let plan = self.plan;
            let tls = match &plan.tls {
                // --churn: one client per slot, with a session cache of its own, so a
                // connection resumes the session of the slot's previous one, as a returning
                // browser does. (One cache shared by all keeps 8 TLS 1.3 tickets per server
                // name: a burst of reconnections would find it empty.)
                Some(tls) if plan.churn && tls.resume => {
                    let config = self.conns[i].tls_config.get_or_insert_with(|| {
                        let mut config = (*tls.config).clone();
                        config.resumption = rustls::client::Resumption::in_memory_sessions(1);
                        Arc::new(config)
                    });
                    Some((tls, &*config))
                }
                Some(tls) => Some((tls, &tls.config)),
                None => None,
            };
            let addr = self.plan.target(self.thread + i * self.threads).1;
            let sock = TcpStream::connect(addr, tls).and_then(|mut sock| {
                if let Some(name) = &self.plan.congestion {
                    set_congestion(&socket2::SockRef::from(&sock), name)
                        .map_err(io::Error::other)?;
                }
                self.poll.registry().register(
                    &mut sock,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                Ok(sock)
            });
            match sock {
                Ok(sock) => {
                    let conn = &mut self.conns[i];
                    conn.sock = Some(sock);
                    conn.phase = Phase::Connecting;
                    conn.deadline = now + self.plan.handshake_timeout.as_nanos() as u64;
                    self.pending += 1;
                }
                Err(e) => {
                    self.conns[i].phase = Phase::Done;
                    self.report.errors.add(Kind::Connect, || {
                        format!("connecting to {addr}: {e} (is the server running? is the file descriptor limit high enough?)")
                    });
                }
            }
        }
    }

    /// Fails handshakes and closes that took too long.
    fn check_deadlines(&mut self, now: u64) {
        for i in 0..self.conns.len() {
            let conn = &self.conns[i];
            if conn.deadline == 0 || now < conn.deadline {
                continue;
            }
            match conn.phase {
                Phase::Connecting | Phase::Handshake(_) => {
                    let t = self.plan.handshake_timeout;
                    self.fail(i, Kind::Handshake, || {
                        format!("no handshake response within {t:?}; the server may be overloaded, try fewer connections")
                    });
                }
                Phase::Closing => {
                    let acknowledged = self.conns[i]
                        .ws
                        .as_ref()
                        .is_some_and(|ws| ws.state() == State::Closed);
                    if acknowledged {
                        // The server answered the close frame but did not close the TCP
                        // connection; the client may close it now (RFC 6455 §7.1.1).
                        self.report.closed_clean += 1;
                        self.report.close_lingered += 1;
                        self.drop_conn(i);
                        self.churned(i);
                    } else {
                        let t = self.plan.close_timeout;
                        self.fail(i, Kind::CloseTimeout, || {
                            format!("the server did not answer the close frame within {t:?}")
                        });
                    }
                }
                _ => {}
            }
        }
    }

    /// The window is over: stop sending, close every open connection with 1000.
    fn begin_end(&mut self, now: u64) {
        self.ending = true;
        self.report.up_at_end = self.up;
        // `--churn`: slots between two connections, and connections on their way, are part of
        // the cycle, not failures.
        for i in std::mem::take(&mut self.restart) {
            self.conns[i].phase = Phase::Done;
        }
        for i in 0..self.conns.len() {
            if self.plan.churn
                && matches!(self.conns[i].phase, Phase::Connecting | Phase::Handshake(_))
            {
                self.drop_conn(i);
                continue;
            }
            match self.conns[i].phase {
                Phase::Open => {
                    let conn = &mut self.conns[i];
                    if let Some(ws) = conn.ws.as_mut() {
                        // Fails only if a close was already sent or received, which moves the
                        // phase out of Open first.
                        let _ = ws.close(CloseCode::NORMAL, "");
                    }
                    conn.phase = Phase::Closing;
                    conn.deadline = now + self.plan.close_timeout.as_nanos() as u64;
                    self.flush(i);
                }
                Phase::Connecting | Phase::Handshake(_) => {
                    self.fail(i, Kind::Unfinished, || {
                        "the handshake had not completed when the run ended; raise --warmup".into()
                    });
                }
                Phase::Waiting => {
                    self.fail(i, Kind::Unfinished, || {
                        "never started: earlier connections were still connecting; raise --warmup"
                            .into()
                    });
                }
                Phase::Closing | Phase::Done => {}
            }
        }
    }

    fn on_event(&mut self, i: usize, drain: bool) {
        let now = self.plan.now();
        if matches!(self.conns[i].phase, Phase::Connecting) && !self.on_connecting(i) {
            return;
        }
        if matches!(self.conns[i].phase, Phase::Handshake(_)) {
            self.on_handshake(i, now);
        }
        if matches!(self.conns[i].phase, Phase::Open | Phase::Closing) {
            self.on_open(i, now, drain);
        }
    }

    /// Checks whether the non-blocking connect finished; if so writes the request. Returns
    /// whether the connection moved on to the handshake.
    fn on_connecting(&mut self, i: usize) -> bool {
        let Some(sock) = self.conns[i].sock.as_ref() else {
            return false;
        };
        let n = self.thread + i * self.threads;
        let (target, addr) = self.plan.target(n);
        match sock.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => {
                self.fail(i, Kind::Connect, || {
                    format!("connecting to {addr}: {e} (is the server running?)")
                });
                return false;
            }
        }
        match sock.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return false,
            Err(e) => {
                self.fail(i, Kind::Connect, || format!("connecting to {addr}: {e}"));
                return false;
            }
        }
        let _ = sock.set_nodelay(true);
        let url = match &self.plan.serve {
            // `?nick=loadN`, N the run's index of this connection.
            Some(serve) => match serve.url(target, n) {
                Ok(url) => std::borrow::Cow::Owned(url),
                Err(e) => {
                    self.fail(i, Kind::Handshake, || format!("cannot build the URL: {e}"));
                    return false;
                }
            },
            None => std::borrow::Cow::Borrowed(target),
        };
        let client = match ClientHandshake::new(&url, &self.options, &mut RandomKeys) {
            Ok(client) => client,
            Err(e) => {
                self.fail(i, Kind::Handshake, || {
                    format!("cannot build the request: {e}")
                });
                return false;
            }
        };
        self.conns[i].phase = Phase::Handshake(Box::new(Handshake {
            client,
            written: 0,
            response: Vec::new(),
        }));
        true
    }

    fn on_handshake(&mut self, i: usize, now: u64) {
        let (response, mut rest) = match self.drive_handshake(i) {
            Handshaking::Wait => return,
            Handshaking::Failed(kind, message) => return self.fail(i, kind, || message),
            Handshaking::Done(response, rest) => (response, rest),
        };
        let masks = mask_source(XorShift::new(self.seeds.next()));
        let ws = match self
            .session
            .connection(&response, self.config.clone(), masks)
        {
            Ok(ws) => ws,
            Err(e) => {
                let url = &self.plan.url;
                return self.fail(i, Kind::Handshake, || format!("{url}: {e}"));
            }
        };
        let conn = &mut self.conns[i];
        conn.phase = Phase::Open;
        conn.deadline = 0;
        conn.ws = Some(ws);
        let broadcast = self.plan.broadcast.as_deref();
        if let Some(b) = broadcast {
            conn.expected = vec![0; b.publishers].into_boxed_slice();
            if self.plan.serve.is_none() {
                b.join(now);
            }
            // With --serve: once serve's `joined` reply arrives.
            conn.step = Step::Welcome;
        } else {
            conn.sent = VecDeque::with_capacity(self.plan.depth);
        }
        if !self.plan.idle
            && broadcast.is_none()
            && self.plan.payload.as_bytes().len() >= PREPARE_MIN
        {
            let masks = mask_source(XorShift::new(self.seeds.next()));
            let mut frame = Connection::client(self.config.clone(), masks);
            if frame.send(self.plan.payload.message()).is_ok() {
                conn.next = Some(Box::new(Prepared { frame, due: false }));
            }
        }
        self.pending -= 1;
        self.up += 1;
        self.report.established += 1;
        if conn.sock.as_ref().is_some_and(|s| s.resumed()) {
            self.report.resumed += 1;
        }
        if !self.plan.idle && !self.ending && broadcast.is_none() {
            for _ in 0..self.plan.depth {
                self.send_one(i, now);
            }
        }
        // Frames the server sent right behind its response.
        if !rest.is_empty() && !self.on_bytes(i, &mut rest, now) {
            return;
        }
        self.flush(i);
    }

    /// Writes the rest of the request, reads the response. `Done` carries the bytes that
    /// followed the response head.
    fn drive_handshake(&mut self, i: usize) -> Handshaking {
        let conn = &mut self.conns[i];
        let (Some(sock), Phase::Handshake(hs)) = (conn.sock.as_mut(), &mut conn.phase) else {
            return Handshaking::Wait;
        };
        while hs.written < hs.client.request().len() {
            match sock.write(&hs.client.request()[hs.written..]) {
                Ok(n) => hs.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Handshaking::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Handshaking::Failed(
                        Kind::Io,
                        format!("sending the handshake request: {e}"),
                    )
                }
            }
        }
        loop {
            match sock.read(&mut self.buf) {
                Ok(0) => {
                    return Handshaking::Failed(
                        Kind::Handshake,
                        "the server closed the connection during the handshake".into(),
                    )
                }
                Ok(n) => {
                    hs.response.extend_from_slice(&self.buf[..n]);
                    match hs.client.parse_response(&hs.response) {
                        Ok(Status::Partial) => {}
                        Ok(Status::Complete(response, head_len)) => {
                            let rest = hs.response.split_off(head_len);
                            return Handshaking::Done(Box::new(response), rest);
                        }
                        Err(e) => {
                            if self.plan.serve.is_some()
                                && matches!(
                                    e,
                                    ClientHandshakeError::UnexpectedStatus { status: 429, .. }
                                )
                            {
                                self.report.refused += 1;
                            }
                            return Handshaking::Failed(
                                Kind::Handshake,
                                format!("{}: {e}", self.plan.url),
                            );
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Handshaking::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Handshaking::Failed(
                        Kind::Io,
                        format!("reading the handshake response: {e}"),
                    )
                }
            }
        }
    }

    /// Queues one message on connection `i`.
    #[inline]
    fn send_one(&mut self, i: usize, now: u64) {
        let conn = &mut self.conns[i];
        let Some(ws) = conn.ws.as_mut() else { return };
        if let Some(next) = conn.next.as_deref_mut() {
            // The prepared frame goes out only with nothing of the core's queued ahead of it.
            let ready = !next.due && next.frame.transmit_len() > 0;
            if ready && ws.transmit_len() == 0 && ws.state() == State::Open {
                next.due = true;
                conn.sent.push_back(now);
                return;
            }
        }
        if ws.send(self.plan.payload.message()).is_ok() {
            conn.sent.push_back(now);
        }
    }

    /// Reads and answers what the server sent. `drain`: the event reported the peer's end of
    /// stream (or an error), so read until `read` says so.
    fn on_open(&mut self, i: usize, now: u64, drain: bool) {
        let mut buf = std::mem::take(&mut self.buf);
        while let Some(sock) = self.conns[i].sock.as_mut() {
            match sock.read(&mut buf) {
                Ok(0) => {
                    self.on_eof(i);
                    break;
                }
                Ok(n) => {
                    if !self.on_bytes(i, &mut buf[..n], now) {
                        break;
                    }
                    // A short read drained the socket: stop here rather than spend a second
                    // `read` per message on learning `WouldBlock`. Safe with edge-triggered
                    // epoll and kqueue: bytes arriving after this read raise a new event. Not
                    // so an end of stream that came with this event: then read on to see it.
                    let drained = self.conns[i]
                        .sock
                        .as_ref()
                        .is_some_and(|s| s.read_drained(n, buf.len()));
                    if drained && !drain && matches!(self.conns[i].phase, Phase::Open) {
                        self.flush(i);
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.flush(i);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let kind = if matches!(self.conns[i].phase, Phase::Closing) {
                        Kind::CloseTimeout
                    } else {
                        Kind::Io
                    };
                    self.fail(i, kind, || format!("reading: {e}"));
                    break;
                }
            }
        }
        self.buf = buf;
    }

    /// Handles bytes from the server. Returns false if the connection is gone.
    fn on_bytes(&mut self, i: usize, data: &mut [u8], now: u64) -> bool {
        let mut input = data;
        loop {
            let conn = &mut self.conns[i];
            let Some(ws) = conn.ws.as_mut() else {
                return false;
            };
            let event = match ws.read(&mut input) {
                Ok(None) => return true,
                Ok(Some(event)) => event,
                Err(e) => {
                    // The core queued a close frame with the matching code: send it.
                    self.flush(i);
                    self.fail(i, Kind::Protocol, || e.to_string());
                    return false;
                }
            };
            match event {
                Event::Message(m) if self.plan.broadcast.is_some() => {
                    let plan = self.plan;
                    let Some(b) = plan.broadcast.as_deref() else {
                        continue;
                    };
                    let global = self.thread + i * self.threads;
                    let (is_text, data) = match &plan.serve {
                        None => (m.is_text(), m.as_bytes()),
                        Some(serve) => {
                            let Some(text) =
                                serve_message(serve, b, conn, &mut self.report, &m, now, global)
                            else {
                                continue;
                            };
                            (true, text)
                        }
                    };
                    if self.started.is_none() && b.started().is_none() {
                        // Not one of ours: ours are published once all have joined.
                        self.report.ignored += 1;
                        continue;
                    }
                    let from = deliver(
                        plan,
                        &mut conn.expected,
                        &mut self.report,
                        (is_text, data),
                        now,
                        global,
                    );
                    self.echoes_total += 1;
                    let slot = conn.slot;
                    // Its own message back: one fewer in flight.
                    if from.is_some()
                        && b.rate.is_none()
                        && slot != NOT_A_PUBLISHER
                        && from == Some(self.publishers[slot].id)
                    {
                        self.fill(slot, now);
                    }
                }
                Event::Message(m) => {
                    if conn.sent.is_empty() {
                        if self.plan.idle {
                            continue; // a server may talk to idle clients; not our business
                        }
                        let len = m.len();
                        self.fail(i, Kind::BadEcho, || {
                            format!("a {len}-byte message arrived with no message in flight")
                        });
                        return false;
                    }
                    let payload = self.plan.payload.as_bytes();
                    if m.is_text() != self.plan.payload.is_text()
                        || m.len() != payload.len()
                        || (self.plan.verify && m.as_bytes() != payload)
                    {
                        let (text, len) = (m.is_text(), m.len());
                        let want = if self.plan.payload.is_text() {
                            "text"
                        } else {
                            "binary"
                        };
                        let expected = payload.len();
                        self.fail(i, Kind::BadEcho, || {
                            let got = if text { "text" } else { "binary" };
                            if len != expected || got != want {
                                format!("expected a {expected}-byte {want} echo, got a {len}-byte {got} message")
                            } else {
                                format!("a {len}-byte {got} echo differs from the message sent")
                            }
                        });
                        return false;
                    }
                    self.echoed(i, now);
                }
                // A large binary echo, checked as it arrives instead of collected first.
                Event::Part(p) => {
                    if conn.sent.is_empty() {
                        if self.plan.idle {
                            continue;
                        }
                        self.fail(i, Kind::BadEcho, || {
                            "a message arrived with no message in flight".into()
                        });
                        return false;
                    }
                    let payload = self.plan.payload.as_bytes();
                    let (at, end) = (conn.received, conn.received + p.data.len());
                    let expected = payload.len();
                    if self.plan.payload.is_text() {
                        self.fail(i, Kind::BadEcho, || {
                            format!("expected a {expected}-byte text echo, got a binary message")
                        });
                        return false;
                    }
                    if end > expected || (p.last && end < expected) {
                        self.fail(i, Kind::BadEcho, || {
                            let more = if p.last { "" } else { " or more" };
                            format!("expected a {expected}-byte binary echo, got {end} bytes{more}")
                        });
                        return false;
                    }
                    if self.plan.verify && p.data[..] != payload[at..end] {
                        self.fail(i, Kind::BadEcho, || {
                            format!("a {expected}-byte binary echo differs from the message sent within bytes {at}..{end}")
                        });
                        return false;
                    }
                    if p.last {
                        conn.received = 0;
                        self.echoed(i, now);
                    } else {
                        conn.received = end;
                    }
                }
                Event::Close(frame) => {
                    if matches!(conn.phase, Phase::Closing) {
                        // Our close, answered: now wait for the server to close TCP.
                        continue;
                    }
                    if self.plan.serve.is_some()
                        && frame
                            .as_ref()
                            .is_some_and(|f| f.reason.contains("rate limit"))
                    {
                        self.report.rate_limited += 1;
                    }
                    let what = match frame {
                        Some(f) => format!("close frame {f}"),
                        None => "close frame without a code".into(),
                    };
                    self.flush(i); // the core queued our reply
                    self.fail(i, Kind::UnexpectedClose, || {
                        format!("the server sent a {what} during the run")
                    });
                    return false;
                }
                // Pings (the core queued the pong), pongs.
                _ => {}
            }
        }
    }

    /// The echo of connection `i`'s oldest message in flight arrived: count it, time it, and
    /// send the next.
    fn echoed(&mut self, i: usize, now: u64) {
        let Some(sent) = self.conns[i].sent.pop_front() else {
            return;
        };
        self.echoes_total += 1;
        let (start, end) = self.plan.window;
        if now >= start && now < end {
            self.report.echoes += 1;
            self.report.latency.record(now.saturating_sub(sent));
        }
        if !matches!(self.conns[i].phase, Phase::Open) {
            return;
        }
        if !self.plan.churn {
            return self.send_one(i, now);
        }
        let conn = &mut self.conns[i];
        if let Some(ws) = conn.ws.as_mut() {
            let _ = ws.close(CloseCode::NORMAL, "");
        }
        conn.phase = Phase::Closing;
        conn.deadline = now + self.plan.close_timeout.as_nanos() as u64;
        // `on_open` flushes once this read is handled.
    }

    /// `--churn`: connection `i` completed its cycle (closed cleanly, now dropped): count it
    /// and let the slot connect again.
    fn churned(&mut self, i: usize) {
        if !self.plan.churn || self.ending {
            return;
        }
        let now = self.plan.now();
        if now >= self.plan.window.0 && now < self.plan.window.1 {
            self.report.churned += 1;
        }
        self.conns[i].phase = Phase::Waiting;
        self.restart.push(i);
    }

    fn on_eof(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        let clean = conn
            .ws
            .as_mut()
            .is_some_and(|ws| ws.handle_eof().is_ok() && matches!(conn.phase, Phase::Closing));
        if clean {
            self.report.closed_clean += 1;
            self.drop_conn(i);
            self.churned(i);
        } else if matches!(conn.phase, Phase::Closing) {
            self.fail(i, Kind::CloseTimeout, || {
                "the server closed TCP without answering the close frame".into()
            });
        } else {
            self.fail(i, Kind::UnexpectedClose, || {
                "the server closed the TCP connection without a close frame".into()
            });
        }
    }

    /// Writes everything the core has queued for connection `i`, as far as the socket takes it:
    /// first a prepared frame that is due, then the core's queue. Once a prepared frame is
    /// written, the next one is made.
    fn flush(&mut self, i: usize) {
        let message = self.plan.payload.message();
        let conn = &mut self.conns[i];
        let (Some(sock), Some(ws)) = (conn.sock.as_mut(), conn.ws.as_mut()) else {
            return;
        };
        loop {
            let due = conn.next.as_deref_mut().filter(|n| n.due);
            let out = match &due {
                Some(next) => next.frame.poll_transmit(),
                None => ws.poll_transmit(),
            };
            if out.is_empty() {
                let Some(next) = due else {
                    // TLS records still waiting for the socket (nothing to do for TCP).
                    match sock.flush() {
                        Err(e) if e.kind() != io::ErrorKind::WouldBlock => {
                            self.fail(i, Kind::Io, || format!("writing: {e}"));
                        }
                        _ => {}
                    }
                    return;
                };
                next.due = false;
                let _ = next.frame.send(message.clone());
                continue;
            }
            match sock.write(out) {
                Ok(n) => match due {
                    Some(next) => next.frame.consume_transmit(n),
                    None => ws.consume_transmit(n),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let kind = if matches!(conn.phase, Phase::Closing) {
                        Kind::CloseTimeout
                    } else {
                        Kind::Io
                    };
                    self.fail(i, kind, || format!("writing: {e}"));
                    return;
                }
            }
        }
    }

    fn fail(&mut self, i: usize, kind: Kind, message: impl FnOnce() -> String) {
        self.report.errors.add(kind, message);
        self.drop_conn(i);
    }

    /// Closes the socket and forgets the connection.
    fn drop_conn(&mut self, i: usize) {
        if self.conns[i].slot != NOT_A_PUBLISHER {
            self.stop_publisher(self.conns[i].slot);
        }
        let conn = &mut self.conns[i];
        match conn.phase {
            Phase::Connecting | Phase::Handshake(_) => self.pending -= 1,
            Phase::Open | Phase::Closing => self.up -= 1,
            Phase::Waiting | Phase::Done => {}
        }
        if let Some(mut sock) = conn.sock.take() {
            let _ = self.poll.registry().deregister(&mut sock);
        }
        conn.phase = Phase::Done;
        conn.ws = None;
        conn.next = None;
        conn.sent = VecDeque::new();
        conn.deadline = 0;
    }

    /// `--broadcast`: starts the publishers once every connection has joined, and with
    /// `--rate` sends the messages that are due.
    fn publish(&mut self, now: u64) {
        let plan = self.plan;
        let Some(b) = plan.broadcast.as_deref() else {
            return;
        };
        let start = match self.started {
            Some(start) => start,
            None => {
                let Some(start) = b.started() else { return };
                self.started = Some(start);
                if b.rate.is_none() {
                    for slot in 0..self.publishers.len() {
                        self.fill(slot, now);
                        self.flush(self.publishers[slot].conn);
                    }
                    return;
                }
                start
            }
        };
        let Some(rate) = b.rate else { return };
        let due = |seq: u64| start.saturating_add((seq as f64 * 1e9 / rate) as u64);
        let mut next_due = u64::MAX;
        for slot in 0..self.publishers.len() {
            let conn = self.publishers[slot].conn;
            let mut sent = false;
            while !self.publishers[slot].stopped && now >= due(self.publishers[slot].seq) {
                let queued = self.conns[conn]
                    .ws
                    .as_ref()
                    .map_or(0, |ws| ws.transmit_len());
                if queued > PUBLISH_QUEUE_MAX || !self.publish_one(slot, now) {
                    break;
                }
                sent = true;
            }
            if sent {
                self.flush(conn);
            }
            let p = &self.publishers[slot];
            if !p.stopped {
                next_due = next_due.min(due(p.seq));
            }
        }
        self.next_due = next_due;
    }

    /// `--broadcast` at full speed: sends publisher `slot`'s messages until `depth` are in
    /// flight (sent, and not yet received back by the publisher itself).
    fn fill(&mut self, slot: usize, now: u64) {
        loop {
            let p = &self.publishers[slot];
            let landed = self.conns[p.conn].expected.get(p.id).copied().unwrap_or(0);
            if p.stopped || p.seq.saturating_sub(landed) >= self.plan.depth as u64 {
                return;
            }
            if !self.publish_one(slot, now) {
                return;
            }
        }
    }

    /// Queues publisher `slot`'s next message, its header saying who, which and when.
    /// Returns false if the connection cannot send.
    fn publish_one(&mut self, slot: usize, now: u64) -> bool {
        let p = &mut self.publishers[slot];
        let conn = &mut self.conns[p.conn];
        let Some(ws) = conn.ws.as_mut() else {
            return false;
        };
        if p.stopped || !matches!(conn.phase, Phase::Open) {
            return false;
        }
        let (id, seq) = (p.id as u64, p.seq);
        match &mut self.scratch {
            Payload::Binary(data) => broadcast::write_header(data, false, id, seq, now),
            Payload::Text(text) => {
                let mut header = [0; broadcast::TEXT_HEADER];
                broadcast::write_header(&mut header, true, id, seq, now);
                // ASCII hex: always UTF-8; the same length, so nothing moves or allocates.
                if let Ok(header) = std::str::from_utf8(&header) {
                    let at = self.header_at;
                    text.replace_range(at..at + broadcast::TEXT_HEADER, header);
                }
            }
        }
        if ws.send(self.scratch.message()).is_err() {
            return false;
        }
        p.seq += 1;
        self.published_total += 1;
        let (start, end) = self.plan.window;
        if now >= start && now < end {
            self.report.published += 1;
        }
        true
    }

    /// Publisher `slot` sends no more; the other threads learn its count.
    fn stop_publisher(&mut self, slot: usize) {
        let p = &mut self.publishers[slot];
        if !p.stopped {
            p.stopped = true;
            if let Some(b) = self.plan.broadcast.as_deref() {
                b.stop(p.id, p.seq);
            }
        }
    }

    /// The window is over: stop publishing, and give what is in flight a grace to land.
    fn stop_publishing(&mut self, now: u64) {
        for slot in 0..self.publishers.len() {
            self.stop_publisher(slot);
        }
        let grace = self
            .plan
            .broadcast
            .as_deref()
            .map_or(0, |b| b.grace.as_nanos() as u64);
        self.draining = Some(now + grace);
    }

    /// Whether every open connection here has received every message published (checked at
    /// most once a millisecond).
    fn drained(&mut self, now: u64) -> bool {
        if now < self.next_drain_check {
            return false;
        }
        self.next_drain_check = now + 1_000_000;
        let Some(counts) = self
            .plan
            .broadcast
            .as_deref()
            .and_then(|b| b.final_counts())
        else {
            return false; // a publisher on another thread has not stopped yet
        };
        self.conns
            .iter()
            .filter(|c| matches!(c.phase, Phase::Open))
            .all(|c| {
                c.expected
                    .iter()
                    .zip(&counts)
                    .all(|(got, sent)| got >= sent)
            })
    }

    /// After the grace: what a connection still open never received of the messages
    /// published is lost.
    fn count_missing(&mut self) {
        let Some(b) = self.plan.broadcast.as_deref() else {
            return;
        };
        let grace = b.grace;
        let Some(counts) = b.final_counts() else {
            self.report.errors.add(Kind::Lost, || {
                "a publisher did not stop within the grace: its last messages were not checked"
                    .into()
            });
            return;
        };
        for i in 0..self.conns.len() {
            if !matches!(self.conns[i].phase, Phase::Open) {
                continue;
            }
            let global = self.thread + i * self.threads;
            for (id, &sent) in counts.iter().enumerate() {
                let got = self.conns[i].expected[id];
                if sent > got {
                    self.report.errors.add_n(Kind::Lost, sent - got, || {
                        format!("connection {global} had not received publisher {id}'s messages {got}..{sent} ({} messages) {grace:?} after publishing stopped", sent - got)
                    });
                }
            }
        }
    }
}

/// `--broadcast`: checks a message received by connection `conn` (the run's index) against
/// what its publisher sent, and counts it. Returns its publisher's id if its header is sound.
fn deliver(
    plan: &Plan,
    expected: &mut [u64],
    report: &mut Report,
    (is_text, data): (bool, &[u8]),
    now: u64,
    conn: usize,
) -> Option<usize> {
    let pattern = plan.payload.as_bytes();
    let text = plan.payload.is_text();
    if is_text != text || data.len() != pattern.len() {
        let (got, len, want, size) = (is_text, data.len(), text, pattern.len());
        let kind = |text: bool| if text { "text" } else { "binary" };
        report.errors.add(Kind::Corrupt, || {
            format!(
                "connection {conn} received a {len}-byte {} message, expected {size}-byte {}",
                kind(got),
                kind(want)
            )
        });
        return None;
    }
    let Some((id, seq, at)) = broadcast::read_header(data, text) else {
        report.errors.add(Kind::Corrupt, || {
            format!("connection {conn} received a message whose header is not the tool's")
        });
        return None;
    };
    let publishers = expected.len();
    if id >= publishers as u64 {
        report.errors.add(Kind::Corrupt, || {
            format!("connection {conn} received a message from publisher {id}, but only {publishers} publish")
        });
        return None;
    }
    let header = broadcast::header_len(text);
    if plan.verify && data[header..] != pattern[header..] {
        report.errors.add(Kind::Corrupt, || {
            format!("connection {conn} received publisher {id}'s message {seq} with a payload that differs from the one sent")
        });
    }
    let want = &mut expected[id as usize];
    if seq == *want {
        *want += 1;
    } else if seq > *want {
        let lost = seq - *want;
        let from = *want;
        report.errors.add_n(Kind::Lost, lost, || {
            format!("connection {conn} expected publisher {id}'s message {from}, got {seq}: {lost} lost")
        });
        *want = seq + 1;
    } else {
        let from = *want;
        report.errors.add(Kind::Reordered, || {
            format!("connection {conn} expected publisher {id}'s message {from}, got {seq} again or late")
        });
    }
    let (start, end) = plan.window;
    if now >= start && now < end {
        report.echoes += 1;
        report.latency.record(now.saturating_sub(at));
    }
    Some(id as usize)
}

/// `--serve`: reads a message serve sent connection `conn` (the run's index): a room message
/// gives its text (the broadcast payload) to check; `welcome` sends the join, `joined`
/// counts the connection in; errors are counted (`rate_limited` apart, for the hint); the
/// rest (presence, other replies) is counted and not checked.
fn serve_message<'m>(
    serve: &Serve,
    b: &Broadcast,
    conn: &mut Conn,
    report: &mut Report,
    m: &'m Message<'_>,
    now: u64,
    global: usize,
) -> Option<&'m [u8]> {
    let corrupt = |report: &mut Report, why: &'static str| {
        report.errors.add(Kind::Corrupt, || {
            format!("connection {global} received a message from serve {why}")
        });
        None
    };
    if !m.is_text() {
        return corrupt(report, "that is binary, not JSON text");
    }
    let data: &'m [u8] = m.as_bytes();
    let Some(fields) = serve::scan(data) else {
        return corrupt(report, "that is not one JSON object");
    };
    let kind = fields.kind.map_or(&b""[..], |k| k.bytes);
    match (kind, conn.step) {
        (b"message", Step::Joined) => match fields.text {
            Some(text) if !text.escaped => Some(text.bytes),
            Some(_) => corrupt(report, "whose \"text\" has escapes: not the tool's payload"),
            None => corrupt(report, "of type message without a \"text\" string"),
        },
        (b"welcome", Step::Welcome) => {
            if let Some(ws) = conn.ws.as_mut() {
                if ws.send(Message::text(serve.join.as_str())).is_ok() {
                    conn.step = Step::Joining;
                }
            }
            None
        }
        (b"joined", Step::Joining) => {
            conn.step = Step::Joined;
            b.join(now);
            None
        }
        (b"error", _) => {
            let code = fields.code.map_or(&b""[..], |c| c.bytes);
            if code == b"rate_limited" {
                report.rate_limited += 1;
            }
            report.errors.add(Kind::ServeError, || {
                let mut reply = String::from_utf8_lossy(data).into_owned();
                if reply.len() > 200 {
                    let mut end = 200;
                    while !reply.is_char_boundary(end) {
                        end -= 1;
                    }
                    reply.truncate(end);
                    reply.push('…');
                }
                format!("connection {global}: {reply}")
            });
            None
        }
        _ => {
            report.other += 1;
            None
        }
    }
}
