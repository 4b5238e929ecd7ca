//! Helpers shared by the tests that run the mio server over real sockets on 127.0.0.1: a
//! handler that echoes and reports what it saw, a running server, a blocking test client.
//! Every wait is bounded by [`BOUND`]; no sleep decides an outcome.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]
#![allow(clippy::field_reassign_with_default)]

use rfc6455::proto::{Accept, ClientHandshake, ClientOptions, Rejection, Request, Status, Url};
use rfc6455::server::{Builder, CloseReason, ConnId, Context, Handle, Handler, Limits, Timeouts};
use rfc6455::{Config, Connection, Event, Message, Part};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The longest any single wait may take before the test fails.
pub const BOUND: Duration = Duration::from_secs(20);

/// What the test handler saw.
#[derive(Debug)]
pub enum Seen {
    Open(ConnId),
    Close(ConnId, String),
    Backlog(usize),
}

/// Echoes, refuses `/private` with 403, reports opens, closes and a backed-up queue.
#[derive(Clone)]
pub struct TestHandler {
    seen: Arc<Mutex<Sender<Seen>>>,
    high_water: usize,
    reported_backlog: bool,
}

impl TestHandler {
    pub fn new(high_water: usize) -> (TestHandler, Receiver<Seen>) {
        let (tx, rx) = mpsc::channel();
        let h = TestHandler {
            seen: Arc::new(Mutex::new(tx)),
            high_water,
            reported_backlog: false,
        };
        (h, rx)
    }

    fn tell(&self, seen: Seen) {
        let _ = self.seen.lock().unwrap().send(seen);
    }

    fn report_backlog(&mut self, ctx: &mut Context<'_>) {
        let queued = ctx.queued();
        if queued >= self.high_water {
            if !self.reported_backlog {
                self.reported_backlog = true;
                self.tell(Seen::Backlog(queued));
            }
            // Every time: the largest backlog observed is what the test bounds.
            self.tell(Seen::Backlog(queued));
        }
    }
}

impl Handler for TestHandler {
    fn open(&mut self, ctx: &mut Context<'_>, request: &Request) -> Result<Accept, Rejection> {
        if request.path() == "/private" {
            return Err(Rejection::new(403).body("no entry\n"));
        }
        self.tell(Seen::Open(ctx.id()));
        Ok(request.accept())
    }

    fn message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        let _ = ctx.send(message);
        self.report_backlog(ctx);
    }

    fn part(&mut self, ctx: &mut Context<'_>, part: Part<'_>) {
        let _ = ctx.send_part(&part.data, part.last);
        self.report_backlog(ctx);
    }

    fn close(&mut self, ctx: &mut Context<'_>, reason: CloseReason<'_>) {
        self.tell(Seen::Close(ctx.id(), format!("{reason:?}")));
    }
}

/// A server running on its own thread, bound to 127.0.0.1 on a port the system picked.
pub struct Running {
    pub addr: SocketAddr,
    pub handle: Handle,
    pub thread: Option<JoinHandle<std::io::Result<()>>>,
    pub seen: Receiver<Seen>,
    /// Reports skipped while looking for a particular one; [`stop`](Self::stop) returns them.
    skipped: RefCell<Vec<Seen>>,
}

impl Running {
    pub fn start(limits: Limits, timeouts: Timeouts) -> Running {
        Running::start_with(Config::default(), limits, timeouts, 2)
    }

    pub fn start_with(
        config: Config,
        limits: Limits,
        timeouts: Timeouts,
        threads: usize,
    ) -> Running {
        let (handler, seen) = TestHandler::new(limits.write_high_water);
        let server = Builder::new()
            .listen("127.0.0.1:0")
            .threads(threads)
            .config(config)
            .limits(limits)
            .timeouts(timeouts)
            .shutdown_on_signals(false)
            .bind(handler)
            .expect("bind 127.0.0.1:0");
        let addr = server.local_addrs()[0];
        let handle = server.handle();
        let thread = Some(std::thread::spawn(move || server.run()));
        Running {
            addr,
            handle,
            thread,
            seen,
            skipped: RefCell::new(Vec::new()),
        }
    }

    pub fn default() -> Running {
        Running::start(Limits::default(), Timeouts::default())
    }

    pub fn next_seen(&self) -> Seen {
        self.seen.recv_timeout(BOUND).expect("the handler reports")
    }

    pub fn next_open(&self) -> ConnId {
        loop {
            match self.next_seen() {
                Seen::Open(id) => return id,
                other => self.skipped.borrow_mut().push(other),
            }
        }
    }

    pub fn next_close(&self) -> (ConnId, String) {
        loop {
            match self.next_seen() {
                Seen::Close(id, why) => return (id, why),
                other => self.skipped.borrow_mut().push(other),
            }
        }
    }

    /// The close reported for connection `id`, skipping other reports.
    pub fn close_of(&self, id: ConnId) -> String {
        loop {
            match self.next_seen() {
                Seen::Close(closed, why) if closed == id => return why,
                other => self.skipped.borrow_mut().push(other),
            }
        }
    }

    /// Shuts the server down gracefully and checks that its loops neither panicked nor
    /// failed. Returns what the handler reported that was skipped or not read yet.
    pub fn stop(mut self) -> Vec<Seen> {
        self.handle.shutdown();
        let (tx, rx) = mpsc::channel();
        let thread = self.thread.take().unwrap();
        std::thread::spawn(move || {
            let _ = tx.send(thread.join());
        });
        let result = rx.recv_timeout(BOUND).expect("the server stops in time");
        result.expect("no panic").expect("run returns Ok");
        let mut rest = std::mem::take(&mut *self.skipped.borrow_mut());
        rest.extend(self.seen.try_iter());
        rest
    }
}

/// A test client: the core's client connection over a blocking socket.
pub struct Client {
    pub stream: TcpStream,
    pub conn: Connection,
}

pub fn request_bytes(addr: SocketAddr, path: &str) -> Vec<u8> {
    let url: Url = format!("ws://{addr}{path}").parse().unwrap();
    let hs = ClientHandshake::new(&url, &ClientOptions::default(), &mut || [7u8; 16]).unwrap();
    hs.request().to_vec()
}

pub fn raw(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(BOUND)).unwrap();
    stream.set_write_timeout(Some(BOUND)).unwrap();
    stream
}

/// Reads until EOF: the whole HTTP answer of a refused connection.
pub fn read_to_end(mut stream: TcpStream) -> String {
    let mut out = Vec::new();
    stream.read_to_end(&mut out).expect("EOF within the bound");
    String::from_utf8_lossy(&out).into_owned()
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::connect_with(addr, &[])
    }

    /// Connects; `early` goes out in the same write as the request head.
    pub fn connect_with(addr: SocketAddr, early: &[u8]) -> Client {
        Client::handshake(raw(addr), addr, early)
    }

    /// Runs the handshake over `stream` (connected to `addr`).
    pub fn handshake(mut stream: TcpStream, addr: SocketAddr, early: &[u8]) -> Client {
        let url: Url = format!("ws://{addr}/echo").parse().unwrap();
        let hs = ClientHandshake::new(&url, &ClientOptions::default(), &mut || [7u8; 16]).unwrap();
        let mut first = hs.request().to_vec();
        first.extend_from_slice(early);
        stream.write_all(&first).unwrap();
        let mut conn = Connection::client(Config::default(), || [0x11, 0x22, 0x33, 0x44]);
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).expect("handshake response");
            assert!(n > 0, "EOF during the handshake");
            buf.extend_from_slice(&chunk[..n]);
            match hs.parse_response(&buf).expect("101") {
                Status::Complete(_, head_len) => {
                    conn.handle_bytes(&buf[head_len..]).unwrap();
                    break;
                }
                Status::Partial => {}
            }
        }
        Client { stream, conn }
    }

    pub fn flush(&mut self) {
        let out = self.conn.poll_transmit().to_vec();
        self.stream.write_all(&out).unwrap();
        self.conn.consume_transmit(out.len());
    }

    pub fn send(&mut self, message: Message<'_>) {
        self.conn.send(message).unwrap();
        self.flush();
    }

    /// The next event; `None` at EOF.
    pub fn next(&mut self) -> Option<Event<'static>> {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if let Some(event) = self.conn.poll_event() {
                self.flush(); // pongs, close replies
                return Some(event);
            }
            let n = self.stream.read(&mut chunk).expect("read within the bound");
            if n == 0 {
                return None;
            }
            self.conn.handle_bytes(&chunk[..n]).unwrap();
        }
    }

    pub fn next_message(&mut self) -> Message<'static> {
        loop {
            match self.next() {
                Some(Event::Message(m)) => return m,
                Some(Event::Close(c)) => panic!("closed: {c:?}"),
                Some(_) => {}
                None => panic!("EOF"),
            }
        }
    }
}

/// `rfc6455 ARGS…` as a child process, killed on drop, with the server address it printed on
/// its first line (`… listening on ws://ADDR …` or `http://ADDR/ …`).
pub struct Command {
    pub child: std::process::Child,
    pub addr: SocketAddr,
}

impl Command {
    pub fn start(args: &[&str]) -> Command {
        Command::start_with(args, std::process::Stdio::inherit())
    }

    /// As [`start`](Self::start), with stderr to `stderr` (`Stdio::piped()` to read it from
    /// `child.stderr`).
    pub fn start_with(args: &[&str], stderr: std::process::Stdio) -> Command {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rfc6455"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("rfc6455");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("the listening line");
        let addr = line
            .split(['/', ' ', ','])
            .find_map(|word| word.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Command { child, addr }
    }
}

impl Drop for Command {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
