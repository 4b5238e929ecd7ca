//! Topics over real sockets on 127.0.0.1: subscribe, unsubscribe and publish across two
//! loops, from a foreign thread, under concurrent publishers, with slow subscribers and
//! connections closing mid-publish. Every wait is bounded; no sleep decides an outcome.
#![cfg(feature = "server")]
#![allow(clippy::field_reassign_with_default)]

mod common;

use common::Client;
use rfc6455::proto::{Accept, Rejection, Request};
use rfc6455::server::{
    CloseReason, Context, Handle, Handler, Limits, Server, SlowSubscriber, Timeouts, TopicError,
};
use rfc6455::{CloseCode, Event, Message};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// Text commands, each answered `ok ...` to the sender once done:
/// `sub T`, `unsub T`, `pub T TEXT` (publish), `others T TEXT` (publish to others).
/// On open it says `thread N` (its loop) and subscribes to the query's topic, if any.
#[derive(Clone)]
struct PubSub {
    closes: Arc<Mutex<Sender<String>>>,
}

impl Handler for PubSub {
    fn open(&mut self, ctx: &mut Context<'_>, request: &Request) -> Result<Accept, Rejection> {
        let thread = ctx.id().to_string();
        let thread = thread.split('.').next().unwrap_or("?").to_owned();
        let _ = ctx.send_text(&format!("thread {thread}"));
        if let Some(topic) = request.query() {
            ctx.subscribe(topic).expect("a short topic");
        }
        Ok(request.accept())
    }

    fn message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        let text = message.as_text().unwrap_or("").to_owned();
        let mut words = text.splitn(3, ' ');
        let (verb, topic, rest) = (
            words.next().unwrap_or(""),
            words.next().unwrap_or(""),
            words.next().unwrap_or(""),
        );
        let answer = match verb {
            "sub" => format!("ok sub {topic} {:?}", ctx.subscribe(topic)),
            "unsub" => format!("ok unsub {topic} {}", ctx.unsubscribe(topic)),
            "pub" => format!("ok pub {:?}", ctx.publish(topic, Message::text(rest))),
            "others" => format!(
                "ok others {:?}",
                ctx.publish_to_others(topic, Message::text(rest))
            ),
            "silent" => {
                // Publish without an answer (for floods).
                let _ = ctx.publish(topic, Message::text(rest));
                return;
            }
            _ => format!("bad {text}"),
        };
        let _ = ctx.send_text(&answer);
    }

    fn close(&mut self, _: &mut Context<'_>, reason: CloseReason<'_>) {
        let _ = self.closes.lock().unwrap().send(format!("{reason:?}"));
    }
}

struct Running {
    addr: SocketAddr,
    handle: Handle,
    closes: Receiver<String>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Running {
    fn start(limits: Limits) -> Running {
        let (tx, closes) = mpsc::channel();
        // A slow subscriber closed with 1008 reads its close frame only after the flood, which
        // takes longer than the default 5 s close timeout on a loaded machine: the server would
        // drop it, close frame unsent, before it looks.
        let mut timeouts = Timeouts::default();
        timeouts.close = common::BOUND;
        let server = Server::builder()
            .listen("127.0.0.1:0")
            .threads(2)
            .limits(limits)
            .timeouts(timeouts)
            .shutdown_on_signals(false)
            .bind(PubSub {
                closes: Arc::new(Mutex::new(tx)),
            })
            .expect("bind");
        let addr = server.local_addrs()[0];
        let handle = server.handle();
        let thread = Some(std::thread::spawn(move || server.run()));
        Running {
            addr,
            handle,
            closes,
            thread,
        }
    }

    /// A client and the loop it landed on; subscribed to `topic` from the start if given.
    fn connect(&self, topic: Option<&str>) -> (Client, String) {
        let stream = common::raw(self.addr);
        let path = match topic {
            Some(t) => format!("/?{t}"),
            None => "/".to_owned(),
        };
        let mut client = handshake_at(stream, self.addr, &path);
        let hello = client.next_message();
        let thread = hello.as_text().unwrap().to_owned();
        (client, thread)
    }

    /// Clients until both loops have at least `each` (the kernel spreads connections over
    /// the two `SO_REUSEPORT` listeners by a hash of the address: bounded tries).
    fn connect_on_both(&self, topic: Option<&str>, each: usize) -> Vec<(Client, String)> {
        let mut clients = Vec::new();
        let mut count: HashMap<String, usize> = HashMap::new();
        for _ in 0..400 {
            let (client, thread) = self.connect(topic);
            *count.entry(thread.clone()).or_default() += 1;
            clients.push((client, thread));
            if count.len() == 2 && count.values().all(|&n| n >= each) {
                return clients;
            }
        }
        panic!("400 connections did not reach both loops: {count:?}");
    }

    fn stop(mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            t.join().unwrap().unwrap();
        }
    }
}

fn handshake_at(stream: std::net::TcpStream, addr: SocketAddr, path: &str) -> Client {
    use rfc6455::proto::{ClientHandshake, ClientOptions, Status, Url};
    use rfc6455::{Config, Connection};
    use std::io::{Read, Write};
    let mut stream = stream;
    let url: Url = format!("ws://{addr}{path}").parse().unwrap();
    let hs = ClientHandshake::new(&url, &ClientOptions::default(), &mut || [7u8; 16]).unwrap();
    stream.write_all(hs.request()).unwrap();
    let mut conn = Connection::client(Config::default(), || [1, 2, 3, 4]);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).expect("handshake response");
        assert!(n > 0, "EOF during the handshake");
        buf.extend_from_slice(&chunk[..n]);
        if let Status::Complete(_, head_len) = hs.parse_response(&buf).expect("101") {
            conn.handle_bytes(&buf[head_len..]).unwrap();
            return Client { stream, conn };
        }
    }
}

fn text(client: &mut Client) -> String {
    client.next_message().as_text().unwrap().to_owned()
}

fn command(client: &mut Client, line: &str) -> String {
    client.send(Message::text(line));
    text(client)
}

#[test]
fn publish_reaches_subscribers_on_both_loops_and_no_one_else() {
    let server = Running::start(Limits::default());
    let mut subs = server.connect_on_both(Some("news"), 2);
    let mut outsiders = server.connect_on_both(None, 1);
    let (mut publisher, _) = server.connect(None);

    assert_eq!(command(&mut publisher, "pub news first"), "ok pub Ok(())");
    for (client, thread) in &mut subs {
        assert_eq!(text(client), "first", "subscriber on {thread}");
    }
    // Unsubscribe one on each loop; subscribe an outsider on each; publish again.
    let mut gone = Vec::new();
    for want in ["thread 0", "thread 1"] {
        let i = subs.iter().position(|(_, t)| t == want).unwrap();
        let (mut client, thread) = subs.remove(i);
        assert_eq!(command(&mut client, "unsub news"), "ok unsub news true");
        assert_eq!(command(&mut client, "unsub news"), "ok unsub news false");
        gone.push((client, thread));
        let j = outsiders.iter().position(|(_, t)| t == want).unwrap();
        let (mut client, thread) = outsiders.remove(j);
        assert_eq!(command(&mut client, "sub news"), "ok sub news Ok(true)");
        assert_eq!(command(&mut client, "sub news"), "ok sub news Ok(false)");
        subs.push((client, thread));
    }
    assert_eq!(command(&mut publisher, "pub news second"), "ok pub Ok(())");
    // Another topic, published to after "second": whoever wrongly got "second" would see it
    // before this marker.
    for (client, _) in gone.iter_mut().chain(outsiders.iter_mut()) {
        assert_eq!(command(client, "sub marker"), "ok sub marker Ok(true)");
    }
    assert_eq!(command(&mut publisher, "pub marker end"), "ok pub Ok(())");
    for (client, thread) in &mut subs {
        assert_eq!(text(client), "second", "subscriber on {thread}");
    }
    for (client, thread) in gone.iter_mut().chain(outsiders.iter_mut()) {
        assert_eq!(
            text(client),
            "end",
            "non-subscriber on {thread} got something else"
        );
    }
    server.stop();
}

#[test]
fn the_sender_gets_its_own_publish_unless_it_leaves_itself_out() {
    let server = Running::start(Limits::default());
    let (mut a, _) = server.connect(Some("room"));
    let (mut b, _) = server.connect(Some("room"));
    // Published after the callback's own sends: the answer comes first.
    assert_eq!(command(&mut a, "pub room hi"), "ok pub Ok(())");
    assert_eq!(text(&mut a), "hi");
    assert_eq!(text(&mut b), "hi");
    assert_eq!(command(&mut a, "others room psst"), "ok others Ok(())");
    assert_eq!(text(&mut b), "psst");
    assert_eq!(command(&mut a, "pub room again"), "ok pub Ok(())");
    assert_eq!(text(&mut a), "again", "a got its own 'others' publish");
    server.stop();
}

#[test]
fn a_foreign_thread_publishes_through_the_handle() {
    let server = Running::start(Limits::default());
    let mut subs = server.connect_on_both(Some("alerts"), 1);
    let handle = server.handle.clone();
    std::thread::spawn(move || {
        for i in 0..100 {
            handle
                .publish("alerts", Message::text(format!("alert {i}")))
                .unwrap();
        }
    })
    .join()
    .unwrap();
    for (client, thread) in &mut subs {
        for i in 0..100 {
            assert_eq!(text(client), format!("alert {i}"), "on {thread}");
        }
    }
    let stats = server.handle.topic_stats();
    assert_eq!(stats.delivered, 100 * subs.len() as u64, "{stats:?}");
    server.stop();
}

#[test]
fn concurrent_publishers_each_arrive_in_order_everywhere() {
    let server = Running::start(Limits::default());
    let mut subs = server.connect_on_both(Some("t"), 2);
    const PUBLISHERS: usize = 4;
    const EACH: usize = 500;
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let (mut client, _) = server.connect(None);
            std::thread::spawn(move || {
                for i in 0..EACH {
                    client.send(Message::text(format!("silent t {p}:{i}")));
                }
                client
            })
        })
        .collect();
    let publishers: Vec<Client> = publishers.into_iter().map(|t| t.join().unwrap()).collect();
    for (client, thread) in &mut subs {
        let mut next = [0usize; PUBLISHERS];
        for _ in 0..PUBLISHERS * EACH {
            let got = text(client);
            let (p, i) = got.split_once(':').unwrap();
            let (p, i): (usize, usize) = (p.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[p], "publisher {p} out of order on {thread}");
            next[p] += 1;
        }
        assert_eq!(next, [EACH; PUBLISHERS], "on {thread}");
    }
    drop(publishers);
    server.stop();
}

/// Kernel socket buffers absorb a few MB before the server's queue grows at all: the slow
/// subscriber needs many more bytes than that published to it.
fn flood(server: &Running, fast: &mut Client, count: usize, size: usize) {
    let payload = "x".repeat(size);
    let window = 2_000;
    let mut sent = 0;
    while sent < count {
        let n = window.min(count - sent);
        for _ in 0..n {
            // A full mailbox only delays: retry.
            let deadline = Instant::now() + common::BOUND;
            while server
                .handle
                .publish("flood", Message::text(payload.as_str()))
                .is_err()
            {
                assert!(Instant::now() < deadline, "mailbox full for too long");
                std::thread::yield_now();
            }
        }
        // The fast subscriber keeps up: publishing waits for it, window by window.
        for _ in 0..n {
            assert_eq!(fast.next_message().len(), size);
        }
        sent += n;
    }
}

fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_subscriber_that_never_reads_is_closed_with_1008_and_the_rest_get_everything() {
    let mut limits = Limits::default();
    limits.max_publish_queue = 256 << 10;
    let server = Running::start(limits);
    let (mut fast, _) = server.connect(Some("flood"));
    let (slow, slow_thread) = server.connect(Some("flood"));
    let before = rss_kib();
    flood(&server, &mut fast, 1_000_000, 16);
    let grown = rss_kib().saturating_sub(before);
    let reason = server
        .closes
        .recv_timeout(common::BOUND)
        .expect("the slow subscriber's close");
    assert!(
        reason.starts_with("Overflow"),
        "slow subscriber on {slow_thread}: {reason}"
    );
    let stats = server.handle.topic_stats();
    assert_eq!(stats.slow_closed, 1, "{stats:?}");
    assert!(stats.delivered >= 1_000_000, "{stats:?}");
    // The slow one's queue is bounded by the limit; the test's own fast client reads all.
    assert!(
        grown < 32 << 10,
        "RSS grew {grown} KiB over a million publishes"
    );
    // It still gets a proper close frame, with 1008, after what was queued for it.
    let mut slow = slow;
    loop {
        match slow.next() {
            Some(Event::Close(Some(frame))) => {
                assert_eq!(frame.code, CloseCode::POLICY_VIOLATION);
                break;
            }
            Some(Event::Message(_)) => {}
            other => panic!("expected the 1008 close, got {other:?}"),
        }
    }
    server.stop();
}

#[test]
fn with_the_drop_policy_a_slow_subscriber_stays_and_misses_messages_in_order() {
    let mut limits = Limits::default();
    limits.max_publish_queue = 256 << 10;
    limits.slow_subscriber = SlowSubscriber::Drop;
    let server = Running::start(limits);
    let (mut fast, _) = server.connect(Some("flood"));
    let (mut slow, _) = server.connect(Some("flood"));
    let before = rss_kib();
    flood(&server, &mut fast, 1_000_000, 16);
    let grown = rss_kib().saturating_sub(before);
    // The fast subscriber has everything; the slow one's loop may still be going through
    // its mailbox (the two may be on different loops).
    let deadline = Instant::now() + common::BOUND;
    let stats = loop {
        let stats = server.handle.topic_stats();
        if stats.delivered + stats.dropped >= 2_000_000 || Instant::now() > deadline {
            break stats;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(stats.dropped > 0, "{stats:?}");
    assert_eq!(stats.slow_closed, 0, "{stats:?}");
    assert!(
        grown < 32 << 10,
        "RSS grew {grown} KiB over a million publishes"
    );
    assert_eq!(
        stats.delivered + stats.dropped,
        2_000_000,
        "each publish reaches each subscriber or is counted: {stats:?}"
    );
    // What it did get, it can still read; then it takes new messages again.
    let received = 2_000_000 - stats.dropped as usize - 1_000_000;
    for _ in 0..received {
        assert_eq!(slow.next_message().len(), 16);
    }
    server
        .handle
        .publish("flood", Message::text("after"))
        .unwrap();
    assert_eq!(text(&mut slow), "after");
    assert_eq!(text(&mut fast), "after");
    server.stop();
}

#[test]
fn subscribers_closing_mid_publish_do_not_disturb_the_rest() {
    let server = Running::start(Limits::default());
    let mut stay = server.connect_on_both(Some("t"), 1);
    let leaving: Vec<Client> = server
        .connect_on_both(Some("t"), 2)
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    let handle = server.handle.clone();
    let publisher = std::thread::spawn(move || {
        for i in 0..5_000 {
            while handle.publish("t", Message::text(format!("{i}"))).is_err() {
                std::thread::yield_now();
            }
        }
    });
    // Half leave abruptly (TCP dropped), half with a close handshake, while it publishes.
    for (n, mut client) in leaving.into_iter().enumerate() {
        if n % 2 == 0 {
            drop(client);
        } else {
            let _ = client.conn.close(CloseCode::NORMAL, "bye");
            client.flush();
        }
    }
    publisher.join().unwrap();
    for (client, thread) in &mut stay {
        for i in 0..5_000 {
            assert_eq!(text(client), i.to_string(), "on {thread}");
        }
    }
    server.stop();
}

#[test]
fn topic_names_and_counts_are_limited() {
    let mut limits = Limits::default();
    limits.max_subscriptions = 2;
    let server = Running::start(limits);
    let (mut client, _) = server.connect(None);
    let long = "x".repeat(rfc6455::server::MAX_TOPIC_LEN + 1);
    assert_eq!(
        command(&mut client, &format!("sub {long}")),
        format!(
            "ok sub {long} {:?}",
            Err::<bool, _>(TopicError::TooLong(long.len()))
        )
    );
    assert_eq!(command(&mut client, "sub a"), "ok sub a Ok(true)");
    assert_eq!(command(&mut client, "sub b"), "ok sub b Ok(true)");
    assert_eq!(command(&mut client, "sub c"), "ok sub c Err(TooMany(2))");
    assert_eq!(command(&mut client, "unsub a"), "ok unsub a true");
    assert_eq!(command(&mut client, "sub c"), "ok sub c Ok(true)");
    server.stop();
}

#[test]
fn ten_thousand_subscribers_each_get_one_message_exactly_once() {
    // The server runs as `rfc6455 echo --broadcast` in its own process: 10,000 sockets on
    // each side would not fit one process's descriptor limit.
    let server = common::Command::start(&[
        "echo",
        "--broadcast",
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "2",
        "--max-connections",
        "20000",
    ]);
    let addr = server.addr;
    const N: usize = 10_000;
    let mut clients: Vec<Client> = Vec::with_capacity(N);
    for i in 0..N {
        let stream = match std::net::TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => panic!("connection {i}: {e} (ulimit -n must allow 10,000 sockets)"),
        };
        stream
            .set_read_timeout(Some(common::BOUND))
            .expect("timeout");
        clients.push(handshake_at(stream, addr, "/"));
    }
    // Every connection is open (its 101 was read) and subscribed before it was answered.
    clients[0].send(Message::text("one for all"));
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(text(client), "one for all", "connection {i}");
    }
    // Exactly once: a second message is the next thing each one reads.
    clients[N - 1].send(Message::text("two"));
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(
            text(client),
            "two",
            "connection {i} got a duplicate or nothing"
        );
    }
    drop(server);
}
