//! Hostile input against the real server: slow, endless and abandoned handshakes, absurd
//! frame lengths, a million fragments, ping floods, peers that never read, peers that vanish,
//! too many connections from one address, and the idle and close timeouts.
//!
//! Every test runs the server in-process on 127.0.0.1 (port 0) with short timeouts, keeps a
//! canary client echoing through the whole scenario (checked at the end), measures the
//! process's resident memory before and after (`VmRSS` from `/proc/self/status`) against a
//! stated bound, and stops the server checking that no loop panicked. Waits are bounded
//! (upper bounds only); no sleep decides an outcome.
//!
//! RSS is process-wide, so the tests take one lock and run one at a time; the bounds still
//! leave wide margins because the allocator keeps freed memory cached.
#![cfg(feature = "server")]
#![allow(clippy::field_reassign_with_default)]

mod common;

use common::{raw, request_bytes, Client, Running, Seen, BOUND};
use rfc6455::server::{ConnId, Heartbeat, Limits, Timeouts};
use rfc6455::{CloseCode, Config, Connection, Event, Message};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// One test at a time: RSS is measured for the whole process.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`), where `/proc` exists.
fn status(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * KIB)
}

/// RSS at the start of a scenario. The peak (`VmHWM`) is reset there too where the kernel
/// allows it (`/proc/self/clear_refs`, Linux 4.0+), so the scenario's own peak is checked,
/// not only what is left at the end.
struct Rss {
    before: Option<u64>,
    peak_reset: bool,
}

impl Rss {
    fn now() -> Rss {
        let peak_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        Rss {
            before: status("VmRSS:"),
            peak_reset,
        }
    }

    /// Asserts that RSS, at its peak and at the end, rose at most `bound` bytes over its
    /// value at [`now`](Self::now).
    fn check(&self, what: &str, bound: u64) {
        let (Some(before), Some(after)) = (self.before, status("VmRSS:")) else {
            eprintln!("{what}: no /proc/self/status, RSS not checked");
            return;
        };
        let peak = match (self.peak_reset, status("VmHWM:")) {
            (true, Some(peak)) => peak.max(after),
            _ => after,
        };
        let growth = after.saturating_sub(before);
        let peak_growth = peak.saturating_sub(before);
        eprintln!(
            "{what}: RSS before {} KiB, after {} KiB (+{} KiB), peak {} KiB (+{} KiB{}), bound +{} KiB",
            before / KIB,
            after / KIB,
            growth / KIB,
            peak / KIB,
            peak_growth / KIB,
            if self.peak_reset { "" } else { ", peak not measured" },
            bound / KIB
        );
        assert!(
            peak_growth <= bound,
            "{what}: RSS rose by {} KiB, over the {} KiB bound",
            peak_growth / KIB,
            bound / KIB
        );
    }
}

/// A client echoing small messages through the whole scenario, on its own thread.
struct Canary {
    id: ConnId,
    /// Echoes completed so far.
    rounds: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(Client, usize)>,
}

impl Canary {
    /// Connects first, so the next `Open` the handler reports is the canary's.
    fn start(server: &Running) -> Canary {
        let mut client = Client::connect(server.addr);
        let id = server.next_open();
        // One echo before the scenario starts: the canary is known to be live, however short
        // the scenario turns out to be (a fast one may end before the next paced round).
        let first = Message::text("canary before");
        client.send(first.clone());
        assert_eq!(client.next_message(), first, "canary before the scenario");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let rounds = Arc::new(AtomicUsize::new(0));
        let counter = rounds.clone();
        let thread = std::thread::spawn(move || {
            let mut rounds = 0;
            while !stopping.load(Ordering::SeqCst) {
                let message = Message::text(format!("canary {rounds}"));
                client.send(message.clone());
                assert_eq!(client.next_message(), message, "canary round {rounds}");
                rounds += 1;
                counter.store(rounds, Ordering::SeqCst);
                // Pacing only: keeps the canary from competing with the scenario for CPU.
                std::thread::sleep(Duration::from_millis(10));
            }
            (client, rounds)
        });
        Canary {
            id,
            rounds,
            stop,
            thread,
        }
    }

    /// The canary echoed all along and still does; then it closes cleanly.
    fn finish(self, server: &Running) {
        self.stop.store(true, Ordering::SeqCst);
        let (mut client, rounds) = self.thread.join().expect("the canary kept echoing");
        let last = Message::binary(vec![0xCA; 70_000]);
        client.send(last.clone());
        assert_eq!(client.next_message(), last);
        client.conn.close(CloseCode::NORMAL, "canary done").unwrap();
        client.flush();
        loop {
            match client.next() {
                Some(Event::Close(_)) | None => break,
                Some(_) => {}
            }
        }
        assert!(client.next().is_none(), "EOF after the close handshake");
        let why = server.close_of(self.id);
        assert!(
            why.starts_with("Closed(Some(") && why.contains("1000"),
            "{why}"
        );
        eprintln!("canary: {rounds} echoes during the scenario, then a clean close");
    }
}

/// The header of a masked client frame: `first` is FIN/RSV/opcode.
fn header(first: u8, len: u64, mask: [u8; 4]) -> Vec<u8> {
    let mut h = vec![first];
    if len < 126 {
        h.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        h.push(0x80 | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(0x80 | 127);
        h.extend_from_slice(&len.to_be_bytes());
    }
    h.extend_from_slice(&mask);
    h
}

/// A whole masked client frame.
fn frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut f = header(first, payload.len() as u64, mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Reads until the server closes: EOF, or a reset (closing a socket with unread input sends
/// RST, which is how a dropped connection may look from here). Fails after [`BOUND`].
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("the server did not close within {BOUND:?}: {e}"),
        }
    }
}

/// The close frame a client receives next (skipping anything else), then EOF.
fn expect_close(client: &mut Client, code: CloseCode) {
    loop {
        match client.next() {
            Some(Event::Close(Some(frame))) => {
                assert_eq!(frame.code, code, "{frame:?}");
                break;
            }
            Some(Event::Close(None)) => panic!("a close frame without a code"),
            Some(_) => {}
            None => panic!("EOF before the close frame"),
        }
    }
    assert!(client.next().is_none(), "EOF after the close frame");
}

fn no_heartbeat(mut timeouts: Timeouts) -> Timeouts {
    timeouts.heartbeat = None;
    timeouts
}

// ------------------------------------------------------------------------------- handshake

#[test]
fn slow_endless_and_unfinished_handshakes_are_dropped() {
    let _serial = serial();
    let mut timeouts = no_heartbeat(Timeouts::default());
    timeouts.handshake = Duration::from_secs(1);
    timeouts.close = Duration::from_secs(2);
    let server = Running::start(Limits::default(), timeouts);
    let addr = server.addr;
    let canary = Canary::start(&server);
    let memory = Rss::now();

    // A valid request, one byte per 100 ms: it would take ~20 s, the timeout is 1 s.
    let request = request_bytes(addr, "/echo");
    let mut trickle = raw(addr);
    let trickled = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let trickler = {
        let mut w = trickle.try_clone().unwrap();
        let request = request.clone();
        let (trickled, stop) = (trickled.clone(), stop.clone());
        std::thread::spawn(move || {
            for b in request {
                if stop.load(Ordering::SeqCst) || w.write_all(&[b]).is_err() {
                    break;
                }
                trickled.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    // A request that never ends: no blank line, then silence.
    let mut unfinished = raw(addr);
    unfinished
        .write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        .unwrap();

    // Endless headers, as fast as the server takes them: 1 MiB of them against the 8 KiB
    // head limit, then EOF (so the server's lingering ends on our FIN, not on a reset).
    let mut endless = raw(addr);
    let endless_writer = {
        let mut w = endless.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = w.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n");
            let line = format!("X-Endless: {}\r\n", "a".repeat(1000));
            for _ in 0..1024 {
                if w.write_all(line.as_bytes()).is_err() {
                    break; // the server is allowed to give up on us
                }
            }
            let _ = w.shutdown(std::net::Shutdown::Write);
        })
    };

    // More header lines than the 64 allowed, in well under 8 KiB.
    let mut many = raw(addr);
    let mut head = b"GET /echo HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..100 {
        head.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    assert!(head.len() < 2048);
    many.write_all(&head).unwrap();

    let answer = String::from_utf8_lossy(&read_until_closed(&mut endless)).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 431 "),
        "endless headers: {answer}"
    );
    endless_writer.join().unwrap();
    let answer = String::from_utf8_lossy(&read_until_closed(&mut many)).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 431 "),
        "100 header lines: {answer}"
    );

    let answer = read_until_closed(&mut unfinished);
    assert!(answer.is_empty(), "no answer to an unfinished request");

    let answer = read_until_closed(&mut trickle);
    stop.store(true, Ordering::SeqCst);
    trickler.join().unwrap();
    let sent = trickled.load(Ordering::SeqCst);
    assert!(answer.is_empty(), "no answer to a trickled request");
    assert!(
        sent < request.len(),
        "dropped by the timeout after {sent} of {} bytes",
        request.len()
    );
    eprintln!("trickle: dropped after {sent} of {} bytes", request.len());

    // Nothing of this reaches the handler, and the server holds none of it.
    memory.check("handshakes", 16 * MIB);
    canary.finish(&server);
    let rest = server.stop();
    assert!(rest.is_empty(), "{rest:?}");
}

// ------------------------------------------------------------------------- frame lengths

#[test]
fn absurd_declared_lengths_fail_with_1002_and_1009() {
    let _serial = serial();
    let server = Running::start(Limits::default(), no_heartbeat(Timeouts::default()));
    let canary = Canary::start(&server);
    let memory = Rss::now();
    let cases = [
        (
            1u64 << 63,
            CloseCode::PROTOCOL_ERROR,
            "Protocol(InvalidLength)",
        ),
        (
            1u64 << 62,
            CloseCode::MESSAGE_TOO_BIG,
            "Protocol(FrameTooLarge { len: 4611686018427387904, max: 16777216 })",
        ),
        (
            u64::MAX,
            CloseCode::PROTOCOL_ERROR,
            "Protocol(InvalidLength)",
        ),
    ];
    for (len, code, reason) in cases {
        let mut client = Client::connect(server.addr);
        let id = server.next_open();
        // The declared length, then the start of a payload that will never be read.
        let mut wire = header(0x82, len, [1, 2, 3, 4]);
        wire.extend_from_slice(&[0u8; 100]);
        client.stream.write_all(&wire).unwrap();
        expect_close(&mut client, code);
        assert_eq!(server.close_of(id), reason, "length {len:#x}");
    }
    memory.check("absurd lengths", 16 * MIB);
    canary.finish(&server);
    server.stop();
}

#[test]
fn huge_declared_lengths_are_not_allocated_up_front() {
    let _serial = serial();
    const CLIENTS: usize = 50;
    const DECLARED: u64 = 15 * MIB; // under the default 16 MiB frame limit
    const SENT: usize = 64 * 1024; // of each frame's payload, then silence
                                   // One loop thread: a round trip on a fresh connection then proves the loop has handled
                                   // everything the 50 clients wrote before it.
    let server = Running::start_with(
        Config::default(),
        Limits::default(),
        no_heartbeat(Timeouts::default()),
        1,
    );
    let canary = Canary::start(&server);
    let memory = Rss::now();
    // Reserving without touching would not show in RSS (untouched pages are not resident),
    // so the address space is checked too. It is noisier (thread stacks, malloc arenas of
    // 64 MiB), hence a bound of half the declared total.
    let virtual_before = status("VmSize:");
    let mut wire = header(0x82, DECLARED, [0, 0, 0, 0]);
    wire.extend(std::iter::repeat_n(0x42u8, SENT));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let mut client = Client::connect(server.addr);
        let id = server.next_open();
        client.stream.write_all(&wire).unwrap();
        clients.push((client, id));
    }
    let mut sync = Client::connect(server.addr);
    let sync_id = server.next_open();
    sync.send(Message::text("after the 50"));
    assert_eq!(sync.next_message(), Message::text("after the 50"));
    // Declared: 50 × 15 MiB = 750 MiB. Held for real: 50 × 64 KiB of payload (each in a
    // buffer of at most twice that) = 3–6 MiB. The bound is 48 MiB: far under the declared
    // total (under 4 declared frames' worth), far over what is held.
    memory.check(
        &format!("{CLIENTS} frames declaring {} MiB each", DECLARED / MIB),
        48 * MIB,
    );
    if let (Some(before), Some(after)) = (virtual_before, status("VmSize:")) {
        let growth = after.saturating_sub(before);
        eprintln!(
            "{CLIENTS} frames declaring {} MiB each: VmSize +{} MiB, bound +{} MiB",
            DECLARED / MIB,
            growth / MIB,
            CLIENTS as u64 * DECLARED / 2 / MIB
        );
        assert!(
            growth < CLIENTS as u64 * DECLARED / 2,
            "address space grew {growth}"
        );
    }
    // The frames were accepted and waited on, not refused: dropping the peers in the middle
    // of them is a lost connection.
    for (client, id) in clients {
        drop(client);
        assert_eq!(server.close_of(id), "Lost");
    }
    drop(sync);
    assert_eq!(server.close_of(sync_id), "Lost");
    canary.finish(&server);
    server.stop();
}

// ------------------------------------------------------------------- a million fragments

/// One binary message of `count` 1-byte fragments: byte `i` is `i % 251`.
fn one_byte_fragments(count: usize) -> Vec<u8> {
    let mask = [0x37, 0xFA, 0x21, 0x3D];
    let mut wire = Vec::with_capacity(count * 7);
    for i in 0..count {
        let first = match i {
            0 => 0x02,                   // binary, not final
            _ if i + 1 == count => 0x80, // continuation, final
            _ => 0x00,                   // continuation
        };
        wire.extend_from_slice(&[first, 0x81]);
        wire.extend_from_slice(&mask);
        wire.push((i % 251) as u8 ^ mask[0]);
    }
    wire
}

/// Writes `wire` in 1 MiB chunks from another thread (the server may stop reading us).
fn write_in_background(stream: &TcpStream, wire: Arc<Vec<u8>>) -> JoinHandle<()> {
    let mut w = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        for chunk in wire.chunks(1 << 20) {
            if w.write_all(chunk).is_err() {
                return;
            }
        }
    })
}

#[test]
fn a_message_of_a_million_one_byte_fragments() {
    let _serial = serial();
    const COUNT: usize = 1_000_000;
    let memory = Rss::now();
    let wire = Arc::new(one_byte_fragments(COUNT));
    let expected: Vec<u8> = (0..COUNT).map(|i| (i % 251) as u8).collect();

    // Under the default 64 MiB message limit it is one 1 MB message: echoed intact.
    let server = Running::start(Limits::default(), no_heartbeat(Timeouts::default()));
    let canary = Canary::start(&server);
    let mut client = Client::connect(server.addr);
    server.next_open();
    let started = Instant::now();
    let writer = write_in_background(&client.stream, wire.clone());
    let echoed = client.next_message();
    writer.join().unwrap();
    assert!(echoed == Message::binary(&expected[..]), "echoed intact");
    eprintln!("a million fragments echoed in {:?}", started.elapsed());
    drop(echoed);
    canary.finish(&server);
    server.stop();

    // With a 256 KiB message limit the 262 145th fragment takes it over: 1009, and the rest
    // of the 7 MB is read and discarded while the server lingers.
    let mut config = Config::default();
    config.max_message_size = 256 * 1024;
    let server = Running::start_with(
        config,
        Limits::default(),
        no_heartbeat(Timeouts::default()),
        2,
    );
    let canary = Canary::start(&server);
    let mut client = Client::connect(server.addr);
    let id = server.next_open();
    let writer = write_in_background(&client.stream, wire.clone());
    expect_close(&mut client, CloseCode::MESSAGE_TOO_BIG);
    assert_eq!(
        server.close_of(id),
        "Protocol(MessageTooLarge { len: 262145, max: 262144 })"
    );
    writer.join().unwrap();
    canary.finish(&server);
    server.stop();

    drop((wire, expected));
    // Held at once: the 7 MB wire and 1 MB expected here, the server's 1 MB message and
    // 1 MB echo, the client's 1 MB copy. 64 MiB leaves room for the allocator's caching.
    memory.check("a million fragments", 64 * MIB);
}

// ---------------------------------------------------------------- peers that do not read

#[test]
fn a_ping_flood_whose_pongs_are_never_read_is_paused_then_dropped() {
    let _serial = serial();
    let mut limits = Limits::default();
    limits.write_high_water = 64 * 1024;
    let mut timeouts = Timeouts::default();
    timeouts.heartbeat = Some(Heartbeat::new(
        Duration::from_millis(500),
        Duration::from_millis(500),
    ));
    timeouts.close = Duration::from_millis(500);
    let server = Running::start(limits, timeouts);
    let canary = Canary::start(&server);
    let flooder = Client::connect(server.addr);
    let id = server.next_open();
    let memory = Rss::now();

    // 1000 pings of 125 bytes, written over and over; not a byte is ever read.
    let payload = [0x70u8; 125];
    let pings: Vec<u8> = (0..1000)
        .flat_map(|_| frame(0x89, &payload, [9, 8, 7, 6]))
        .collect();
    let written = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut w = flooder.stream.try_clone().unwrap();
        w.set_write_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let (written, stop) = (written.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut at = 0;
            // Capped, so that a server that never pauses fails the test below, not the machine.
            while !stop.load(Ordering::SeqCst) && written.load(Ordering::SeqCst) < 256 << 20 {
                match w.write(&pings[at..]) {
                    Ok(n) => {
                        written.fetch_add(n, Ordering::SeqCst);
                        at = (at + n) % pings.len();
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock
                                | io::ErrorKind::TimedOut
                                | io::ErrorKind::Interrupted
                        ) => {}
                    Err(_) => break, // the server dropped us
                }
            }
        })
    };
    // Over the high-water mark the server stops reading the flooder; with nothing read the
    // heartbeat ping (queued behind the pongs) goes unanswered, and it is failed.
    let why = server.close_of(id);
    assert_eq!(why, "Timeout(Heartbeat)");
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let written = written.load(Ordering::SeqCst);
    eprintln!(
        "ping flood: {} KiB of pings taken before the drop",
        written / 1024
    );
    // What the flooder got rid of is the server's 64 KiB mark plus one 64 KiB read, and
    // what both kernels' socket buffers hold (a few MiB on loopback): not a flood.
    assert!(
        (written as u64) < 64 * MIB,
        "{written} bytes of pings taken"
    );
    // The server holds at most the mark plus the pongs of one read.
    memory.check("ping flood", 16 * MIB);
    drop(flooder);
    canary.finish(&server);
    server.stop();
}

#[test]
fn a_peer_that_never_reads_overflows_the_write_queue_and_is_failed() {
    let _serial = serial();
    let mut limits = Limits::default();
    limits.write_high_water = 64 * 1024;
    limits.max_write_queue = 2 << 20;
    let mut timeouts = no_heartbeat(Timeouts::default());
    timeouts.close = Duration::from_millis(500);
    let server = Running::start(limits.clone(), timeouts);
    let canary = Canary::start(&server);
    let client = Client::connect(server.addr);
    let id = server.next_open();
    let memory = Rss::now();
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0usize;
    let why = loop {
        match server.seen.try_recv() {
            Ok(Seen::Close(closed, why)) => {
                assert_eq!(closed, id);
                break why;
            }
            Ok(_) => continue,
            Err(_) => {}
        }
        assert!(
            sent < 256 << 20,
            "256 MiB sent and the connection still open"
        );
        match server.handle.send(id, Message::binary(&chunk[..])) {
            Ok(()) => sent += chunk.len(),
            Err(_) => std::thread::yield_now(),
        }
    };
    assert!(why.starts_with("Overflow {"), "{why}");
    assert!(
        why.ends_with(&format!("limit: {} }}", limits.max_write_queue)),
        "{why}"
    );
    eprintln!("never-reading peer: {why} after {} KiB sent", sent / 1024);
    // The queue is capped at 2 MiB (its buffer may be twice that); the mailbox holds
    // commands in flight for a moment. 32 MiB is the bound.
    memory.check("never-reading peer", 32 * MIB);
    drop(client);
    canary.finish(&server);
    server.stop();
}

// ---------------------------------------------------------------------- vanishing peers

/// Closes with RST instead of FIN.
fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

#[test]
fn peers_that_vanish_are_reported_lost() {
    let _serial = serial();
    let server = Running::start(Limits::default(), no_heartbeat(Timeouts::default()));
    let canary = Canary::start(&server);
    let memory = Rss::now();

    // In the middle of a frame: FIN, then RST.
    for rst in [false, true] {
        let mut client = Client::connect(server.addr);
        let id = server.next_open();
        let mut wire = header(0x81, 1000, [1, 2, 3, 4]);
        wire.extend_from_slice(b"0123456789");
        client.stream.write_all(&wire).unwrap();
        if rst {
            reset(client.stream);
        } else {
            drop(client);
        }
        assert_eq!(server.close_of(id), "Lost", "mid-frame, rst {rst}");
    }

    // In the middle of the close handshake the server started: the close frame arrives,
    // the peer drops TCP without answering.
    let mut client = Client::connect(server.addr);
    let id = server.next_open();
    server.handle.close(id, CloseCode::NORMAL, "bye").unwrap();
    let mut first = [0u8; 2];
    client.stream.read_exact(&mut first).unwrap();
    assert_eq!(first[0], 0x88, "a close frame");
    drop(client);
    assert_eq!(server.close_of(id), "Lost", "server-started close");

    // The peer starts the close handshake and drops TCP before reading our answer: the
    // handshake is complete from the server's side.
    let mut client = Client::connect(server.addr);
    let id = server.next_open();
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"going");
    client
        .stream
        .write_all(&frame(0x88, &payload, [5, 6, 7, 8]))
        .unwrap();
    reset(client.stream);
    let why = server.close_of(id);
    assert!(
        why.starts_with("Closed(Some(CloseFrame { code: CloseCode(1000)"),
        "peer-started close: {why}"
    );

    // Before the handshake completes: half a request, or a whole one then RST before the
    // 101 is read. The handler may never hear of the first; if it accepted the second, it
    // must see exactly one close for it (checked after the stop).
    let request = request_bytes(server.addr, "/echo");
    let mut half = raw(server.addr);
    half.write_all(&request[..request.len() / 2]).unwrap();
    drop(half);
    let mut whole = raw(server.addr);
    whole.write_all(&request).unwrap();
    reset(whole);

    memory.check("vanishing peers", 16 * MIB);
    canary.finish(&server);
    let rest = server.stop();
    let opens: Vec<ConnId> = rest
        .iter()
        .filter_map(|s| match s {
            Seen::Open(id) => Some(*id),
            _ => None,
        })
        .collect();
    for id in &opens {
        let closes: Vec<&String> = rest
            .iter()
            .filter_map(|s| match s {
                Seen::Close(c, why) if c == id => Some(why),
                _ => None,
            })
            .collect();
        assert_eq!(closes, ["Lost"], "the reset request {id}");
    }
    assert!(opens.len() <= 1, "{rest:?}");
    eprintln!("request then RST: {rest:?}");
    assert_eq!(rest.len(), opens.len() * 2, "{rest:?}");
}

// ---------------------------------------------------------------------- per-IP limit

/// A connection from `local` (another loopback address) to `server`.
fn connect_from(local: &str, server: SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    let local: SocketAddr = format!("{local}:0").parse().unwrap();
    socket.bind(&local.into())?;
    socket.connect(&server.into())?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(BOUND))?;
    stream.set_write_timeout(Some(BOUND))?;
    Ok(stream)
}

/// A client connection if the server answers 101, `None` for a refusal.
fn try_connect(addr: SocketAddr) -> Option<Client> {
    let mut stream = raw(addr);
    stream.write_all(&request_bytes(addr, "/echo")).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    if !head.starts_with(b"HTTP/1.1 101 ") {
        assert!(head.starts_with(b"HTTP/1.1 429 "), "{head:?}");
        return None;
    }
    let conn = Connection::client(Config::default(), || [1, 2, 3, 4]);
    Some(Client { stream, conn })
}

#[test]
fn connections_over_the_per_ip_limit_get_429() {
    let _serial = serial();
    let mut limits = Limits::default();
    limits.max_connections_per_ip = 4; // the canary and three more
    let server = Running::start(limits, no_heartbeat(Timeouts::default()));
    let canary = Canary::start(&server);
    let memory = Rss::now();
    let mut clients: Vec<(Client, ConnId)> = (0..3)
        .map(|_| {
            let c = Client::connect(server.addr);
            (c, server.next_open())
        })
        .collect();
    for _ in 0..2 {
        let mut s = raw(server.addr);
        let _ = s.write_all(&request_bytes(server.addr, "/echo"));
        let answer = String::from_utf8_lossy(&read_until_closed(&mut s)).into_owned();
        assert!(answer.starts_with("HTTP/1.1 429 "), "{answer}");
    }
    for (i, (c, _)) in clients.iter_mut().enumerate() {
        let m = Message::text(format!("still here {i}"));
        c.send(m.clone());
        assert_eq!(c.next_message(), m);
    }
    // The limit is per address: another loopback address still gets in.
    match connect_from("127.0.0.2", server.addr) {
        Ok(stream) => {
            let mut other = Client::handshake(stream, server.addr, &[]);
            let id = server.next_open();
            other.send(Message::text("from .2"));
            assert_eq!(other.next_message(), Message::text("from .2"));
            drop(other);
            assert_eq!(server.close_of(id), "Lost");
        }
        Err(e) => eprintln!("cannot bind 127.0.0.2 ({e}); skipped the other address"),
    }
    // Once one goes, its place is free again. (The handler hears of the close a moment
    // before the count drops, so a reconnect may race it: retry a 429 within the bound.)
    let (gone, gone_id) = clients.remove(0);
    drop(gone);
    assert_eq!(server.close_of(gone_id), "Lost");
    let started = Instant::now();
    let mut again = loop {
        if let Some(client) = try_connect(server.addr) {
            break client;
        }
        assert!(started.elapsed() < BOUND, "the freed place never came back");
    };
    let again_id = server.next_open();
    again.send(Message::text("back"));
    assert_eq!(again.next_message(), Message::text("back"));
    memory.check("per-IP limit", 16 * MIB);
    drop(again);
    assert_eq!(server.close_of(again_id), "Lost");
    drop(clients);
    canary.finish(&server);
    server.stop();
}

// ---------------------------------------------------------------------- timeouts

#[test]
fn idle_peers_are_closed_and_silent_ones_dropped_after_the_close_timeout() {
    let _serial = serial();
    let mut timeouts = no_heartbeat(Timeouts::default());
    timeouts.idle = Some(Duration::from_millis(300));
    timeouts.close = Duration::from_millis(400);
    let server = Running::start(Limits::default(), timeouts);
    let canary = Canary::start(&server); // it sends a message every 10 ms: never idle
    let memory = Rss::now();

    // An idle peer that answers the close: the handshake completes with its 1001.
    let mut polite = Client::connect(server.addr);
    let polite_id = server.next_open();
    // A peer that never reads and never answers: dropped after the close timeout.
    let mut silent = raw(server.addr);
    silent
        .write_all(&request_bytes(server.addr, "/echo"))
        .unwrap();
    let silent_id = server.next_open();

    match polite.next() {
        Some(Event::Close(Some(frame))) => {
            assert_eq!(frame.code, CloseCode::GOING_AWAY);
            assert_eq!(frame.reason, "idle timeout");
        }
        other => panic!("expected the idle close, got {other:?}"),
    }
    assert!(polite.next().is_none(), "EOF after the close handshake");

    let mut whys = [server.next_close(), server.next_close()];
    whys.sort_by_key(|(id, _)| *id != polite_id);
    assert_eq!(whys[0].0, polite_id);
    // The peer's answer echoes our code.
    assert!(
        whys[0]
            .1
            .starts_with("Closed(Some(CloseFrame { code: CloseCode(1001)"),
        "{}",
        whys[0].1
    );
    assert_eq!(whys[1].0, silent_id);
    assert_eq!(whys[1].1, "Timeout(Close)");

    // What the silent peer would have read: the 101, the close frame, then the end.
    let bytes = read_until_closed(&mut silent);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
    let head_end = text.find("\r\n\r\n").unwrap() + 4;
    assert_eq!(bytes.get(head_end), Some(&0x88), "then a close frame");

    memory.check("idle and close timeouts", 16 * MIB);
    canary.finish(&server);
    server.stop();
}

// ---------------------------------------------------------------------- fairness

#[test]
fn a_flooding_peer_does_not_starve_the_others_on_its_loop() {
    let _serial = serial();
    // One loop: the flooder and the canary share it.
    let server = Running::start_with(
        Config::default(),
        Limits::default(),
        no_heartbeat(Timeouts::default()),
        1,
    );
    let canary = Canary::start(&server);
    let flooder = Client::connect(server.addr);
    let id = server.next_open();
    let memory = Rss::now();
    // Unsolicited pongs: valid, answered with nothing, so no backpressure ever pauses the
    // flooder. Written as fast as the socket takes them until the canary has been served.
    let pongs: Vec<u8> = (0..1000)
        .flat_map(|_| frame(0x8A, &[0x55; 125], [3, 1, 4, 1]))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = Arc::new(AtomicBool::new(true));
    let writer = {
        let mut w = flooder.stream.try_clone().unwrap();
        let (stop, flooding) = (stop.clone(), flooding.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            while !stop.load(Ordering::SeqCst) && started.elapsed() < BOUND {
                if w.write_all(&pongs).is_err() {
                    break;
                }
            }
            flooding.store(false, Ordering::SeqCst);
        })
    };
    // The canary must get echoes through while the flood goes on.
    let at_start = canary.rounds.load(Ordering::SeqCst);
    let started = Instant::now();
    while canary.rounds.load(Ordering::SeqCst) < at_start + 10 {
        assert!(started.elapsed() < BOUND, "the canary was starved");
        std::thread::sleep(Duration::from_millis(5)); // polling, not deciding
    }
    let starved = !flooding.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert!(
        !starved,
        "the canary got its echoes only after the flood ended ({:?})",
        started.elapsed()
    );
    eprintln!(
        "pong flood: the canary got 10 echoes in {:?} during it",
        started.elapsed()
    );
    memory.check("pong flood", 16 * MIB);
    drop(flooder);
    assert_eq!(server.close_of(id), "Lost");
    canary.finish(&server);
    server.stop();
}
