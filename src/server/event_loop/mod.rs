//! One event loop: a mio `Poll`, its listeners, a slab of connections, a timer heap, a read
//! buffer and a spare transmit buffer. See the module docs of [`server`](super) for the shape.
//!
//! The loop itself is here (polling, accepting, the mailbox, topics, shutdown); the code of
//! one connection (reading, writing, lingering) is in `connection`, its deadlines in `timers`.

mod connection;
mod timers;

use connection::{Entry, HttpBuf, Phase};
use timers::{ms, tick};

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
}
