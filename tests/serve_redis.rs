//! `rfc6455 serve --redis`: two and three nodes sharing one real `redis-server` (each test
//! starts its own on a free port, no persistence, and kills it at the end). Cross-node
//! delivery and order under concurrent senders, private messages, the publish API,
//! presence, recovery on another node and after a node's restart, a node killed, Redis
//! killed and restarted, and subscriptions only where there are members. Every wait is
//! bounded.
#![cfg(all(feature = "server", feature = "cli"))]

mod common;

use common::{raw, read_to_end, Client, BOUND};
use rfc6455::{Event, Message};
use serde_json::{json, Value};
use std::io::{BufRead, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` of this test's own, killed on drop.
struct Redis {
    child: Option<Child>,
    port: u16,
    /// More arguments for redis-server.
    args: Vec<String>,
}

impl Redis {
    fn start() -> Redis {
        Redis::start_with(free_port(), Vec::new())
    }

    fn start_with(port: u16, args: Vec<String>) -> Redis {
        let mut redis = Redis {
            child: None,
            port,
            args,
        };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian: apt-get install redis-server; .ci/run installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + BOUND;
        while self.cli(&["PING"]).trim() != "PONG" {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Nodes subscribed to a room's channel (sharded on Redis 7+).
    fn subscribers(&self, room: &str) -> u64 {
        let channel = format!("rfc6455:room:{{{room}}}");
        let count = |verb| {
            let out = self.cli(&["PUBSUB", verb, &channel]);
            out.lines()
                .nth(1)
                .and_then(|l| l.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        count("SHARDNUMSUB") + count("NUMSUB")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of three primaries and no replicas, each a `redis-server` of this test's
/// own (no persistence; its cluster state in a directory removed at the end).
struct Cluster {
    nodes: Vec<Redis>,
    dir: std::path::PathBuf,
}

impl Cluster {
    fn start() -> Cluster {
        // A node also listens on its port + 10000 (the cluster bus).
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < 3 {
            let port = free_port();
            if port < 55000
                && !ports.contains(&port)
                && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok()
            {
                ports.push(port);
            }
        }
        let dir = std::env::temp_dir().join(format!(
            "rfc6455-cluster-{}-{}",
            std::process::id(),
            ports[0]
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let nodes: Vec<Redis> = ports
            .iter()
            .map(|&port| {
                let args = [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "5000",
                    "--dir",
                    dir.to_str().unwrap(),
                    "--cluster-config-file",
                    &format!("nodes-{port}.conf"),
                ];
                Redis::start_with(port, args.iter().map(|a| a.to_string()).collect())
            })
            .collect();
        let cluster = Cluster { nodes, dir };
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli");
        assert!(out.status.success(), "redis-cli --cluster create: {out:?}");
        let deadline = Instant::now() + BOUND;
        for node in &cluster.nodes {
            while !node.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "the cluster never became ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }

    /// Two of the three: the bridge finds the third from them.
    fn url(&self) -> String {
        format!(
            "redis+cluster://127.0.0.1:{},127.0.0.1:{}",
            self.nodes[0].port, self.nodes[1].port
        )
    }

    /// Subscriptions to a room's channel on each primary.
    fn subscribers(&self, room: &str) -> Vec<u64> {
        self.nodes.iter().map(|n| n.subscribers(room)).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `rfc6455 serve --redis` node on a port of its choosing, killed on drop.
struct Node {
    child: Child,
    addr: SocketAddr,
}

const FAST: &[&str] = &["--rate", "1000/s", "--burst", "1000", "--api-key", "k3y"];

impl Node {
    fn start(redis: &Redis, args: &[&str]) -> Node {
        Node::start_url(&redis.url(), args)
    }

    fn start_url(url: &str, args: &[&str]) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rfc6455"))
            .args(["serve", "--listen", "127.0.0.1:0", "--threads", "2"])
            .args(["--redis", url])
            .args(FAST)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("rfc6455 serve");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .parse()
            .unwrap();
        let node = Node { child, addr };
        node.wait_health(200);
        node
    }

    fn http(&self, request: &str) -> String {
        let mut stream = raw(self.addr);
        stream.write_all(request.as_bytes()).unwrap();
        read_to_end(stream)
    }

    fn get(&self, path: &str) -> String {
        self.http(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
    }

    fn wait_health(&self, status: u16) {
        let deadline = Instant::now() + BOUND;
        let want = format!("HTTP/1.1 {status}");
        loop {
            let answer = self.get("/healthz");
            if answer.starts_with(&want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "healthz never {status}: {answer}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn publish(&self, room: &str, text: &str) -> String {
        let body = json!({"room": room, "text": text}).to_string();
        self.http(&format!(
            "POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k3y\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    fn connect(&self, nick: &str) -> Chat {
        let mut chat = Chat(ws(self.addr, &format!("/ws?nick={nick}")));
        assert_eq!(chat.recv(), json!({"type": "welcome", "nick": nick}));
        chat
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A WebSocket client connected to `path`.
fn ws(addr: SocketAddr, path: &str) -> Client {
    use rfc6455::proto::{ClientHandshake, ClientOptions, Status, Url};
    use rfc6455::{Config, Connection};
    let url: Url = format!("ws://{addr}{path}").parse().unwrap();
    let hs = ClientHandshake::new(&url, &ClientOptions::default(), &mut || [9u8; 16]).unwrap();
    let mut stream = raw(addr);
    stream.write_all(hs.request()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "refused: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
        match hs.parse_response(&buf) {
            Ok(Status::Complete(_, head)) => {
                let mut conn = Connection::client(Config::default(), || [1, 2, 3, 4]);
                conn.handle_bytes(&buf[head..]).unwrap();
                return Client { stream, conn };
            }
            Ok(Status::Partial) => {}
            Err(e) => panic!("refused: {e} {}", String::from_utf8_lossy(&buf)),
        }
    }
}

struct Chat(Client);

impl Chat {
    fn send(&mut self, value: Value) {
        self.0.send(Message::text(value.to_string()));
    }

    fn recv(&mut self) -> Value {
        let m = self.0.next_message();
        serde_json::from_str(m.as_text().expect("text")).expect("JSON")
    }

    /// The next message within `wait`, or `None`.
    fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        let deadline = Instant::now() + wait;
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            if let Some(event) = self.0.conn.poll_event() {
                self.0.flush();
                if let Event::Message(m) = event {
                    return Some(serde_json::from_str(m.as_text().expect("text")).unwrap());
                }
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.0.stream.set_read_timeout(Some(left)).unwrap();
            let n = match self.0.stream.read(&mut chunk) {
                Ok(0) => panic!("EOF"),
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    self.0.stream.set_read_timeout(Some(BOUND)).unwrap();
                    return None;
                }
                Err(e) => panic!("{e}"),
            };
            self.0.stream.set_read_timeout(Some(BOUND)).unwrap();
            self.0.conn.handle_bytes(&chunk[..n]).unwrap();
        }
    }

    /// The next message of `kind`, skipping others, within the bound.
    fn recv_type(&mut self, kind: &str) -> Value {
        for _ in 0..10_000 {
            let v = self.recv();
            if v["type"] == kind {
                return v;
            }
            assert_ne!(v["type"], "error", "waiting for a {kind}: {v}");
        }
        panic!("no {kind}");
    }

    fn join(&mut self, room: &str, since: Option<u64>) -> Value {
        let mut command = json!({"type": "join", "room": room});
        if let Some(s) = since {
            command["since"] = s.into();
        }
        self.send(command);
        let joined = self.recv_type("joined");
        assert_eq!(joined["room"], room, "{joined}");
        joined
    }

    /// Sends to `room` and waits for its own message to come back.
    fn say(&mut self, room: &str, text: &str) -> Value {
        self.send(json!({"type": "message", "room": room, "text": text}));
        loop {
            let m = self.recv_type("message");
            if m["text"] == text {
                return m;
            }
        }
    }

    /// The next `n` room messages (skipping presence and replies).
    fn messages(&mut self, n: usize) -> Vec<Value> {
        (0..n).map(|_| self.recv_type("message")).collect()
    }
}

fn seqs(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect()
}

fn texts(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

fn metric(node: &Node, name: &str) -> f64 {
    node.get("/metrics")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

#[test]
fn two_nodes_share_rooms_in_one_order_private_messages_and_the_api() {
    let redis = Redis::start();
    let a = Node::start(&redis, &[]);
    let b = Node::start(&redis, &[]);
    let mut ann = a.connect("ann");
    let mut bob = b.connect("bob");
    let mut cid = a.connect("cid");
    assert_eq!(ann.join("r", None)["members"], json!(["ann"]));
    let joined = bob.join("r", None);
    assert_eq!(joined["members"], json!(["ann", "bob"]));
    // Presence crosses nodes; the joiner is left out of its own.
    assert_eq!(
        ann.recv(),
        json!({"type": "presence", "room": "r", "event": "join", "nick": "bob"})
    );
    assert_eq!(cid.join("r", None)["members"], json!(["ann", "bob", "cid"]));
    assert_eq!(bob.recv_type("presence")["nick"], "cid");
    assert_eq!(ann.recv_type("presence")["nick"], "cid");
    assert_eq!(redis.subscribers("r"), 2, "one subscription per node");

    // Two senders on two nodes at once: every member gets all of it, in one seq order.
    const N: usize = 40;
    for i in 0..N {
        ann.send(json!({"type": "message", "room": "r", "text": format!("a{i}")}));
        bob.send(json!({"type": "message", "room": "r", "text": format!("b{i}")}));
    }
    let got: Vec<Vec<Value>> = [&mut ann, &mut bob, &mut cid]
        .into_iter()
        .map(|c| c.messages(2 * N))
        .collect();
    let order = seqs(&got[0]);
    assert_eq!(order, (1..=2 * N as u64).collect::<Vec<_>>());
    for g in &got {
        assert_eq!(seqs(g), order);
        assert_eq!(texts(g), texts(&got[0]));
        for prefix in ["a", "b"] {
            let mine: Vec<String> = texts(g)
                .into_iter()
                .filter(|t| t.starts_with(prefix))
                .collect();
            let want: Vec<String> = (0..N).map(|i| format!("{prefix}{i}")).collect();
            assert_eq!(mine, want, "a sender's messages in its order");
        }
    }
    for c in [&mut ann, &mut bob, &mut cid] {
        assert_eq!(
            c.recv_within(Duration::from_millis(300)),
            None,
            "nothing twice"
        );
    }

    // Private messages reach a nick on the other node; unknown nicks are an error.
    ann.send(json!({"type": "private", "to": "bob", "text": "psst", "ref": 7}));
    let echo = ann.recv();
    assert_eq!(
        (echo["type"].as_str(), echo["ref"].as_i64()),
        (Some("private"), Some(7))
    );
    let got = bob.recv();
    assert_eq!(
        (got["from"].as_str(), got["text"].as_str()),
        (Some("ann"), Some("psst"))
    );
    ann.send(json!({"type": "private", "to": "nobody", "text": "x", "ref": 8}));
    let e = ann.recv();
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_i64()),
        (Some("no_such_user"), Some(8))
    );

    // The publish API on either node reaches every node, and answers with the seq Redis
    // gave it (the request waits for it, deferred, off the loop).
    let answer = b.publish("r", "deploy");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(
        answer.ends_with(&format!("\r\n\r\n{{\"seq\":{}}}", 2 * N + 1)),
        "{answer}"
    );
    for c in [&mut ann, &mut bob, &mut cid] {
        let m = c.recv_type("message");
        assert_eq!(
            (m["text"].as_str(), m["seq"].as_u64()),
            (Some("deploy"), Some(2 * N as u64 + 1))
        );
        assert_eq!(m["from"], "system");
    }

    // Listing covers every node.
    bob.send(json!({"type": "rooms"}));
    assert_eq!(
        bob.recv_type("rooms")["rooms"],
        json!([{"room": "r", "members": 3}])
    );

    // Subscribed only where there are members: a room on node A alone is not on B.
    ann.join("only-a", None);
    assert_eq!(redis.subscribers("only-a"), 1);
    let before = metric(&b, "rfc6455_serve_redis_received_total");
    for i in 0..5 {
        ann.send(json!({"type": "message", "room": "only-a", "text": format!("x{i}")}));
    }
    assert_eq!(texts(&ann.messages(5)), ["x0", "x1", "x2", "x3", "x4"]);
    assert_eq!(
        metric(&b, "rfc6455_serve_redis_received_total"),
        before,
        "B got none of it"
    );
    // The last local member leaving unsubscribes the node.
    ann.send(json!({"type": "leave", "room": "only-a"}));
    assert_eq!(ann.recv_type("left")["room"], "only-a");
    let deadline = Instant::now() + BOUND;
    while redis.subscribers("only-a") != 0 {
        assert!(Instant::now() < deadline, "still subscribed");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Leaving on one node: the others see it.
    cid.send(json!({"type": "leave", "room": "r"}));
    assert_eq!(
        bob.recv_type("presence"),
        json!({"type": "presence", "room": "r", "event": "leave", "nick": "cid"})
    );
}

#[test]
fn three_nodes_recovery_on_another_node_and_after_a_restart() {
    let redis = Redis::start();
    let nodes: Vec<Node> = (0..3)
        .map(|_| Node::start(&redis, &["--history", "5"]))
        .collect();
    let mut ann = nodes[0].connect("ann");
    let mut bob = nodes[1].connect("bob");
    let mut cid = nodes[2].connect("cid");
    for c in [&mut ann, &mut bob, &mut cid] {
        c.join("r", None);
    }
    bob.send(json!({"type": "message", "room": "r", "text": "m1"}));
    for c in [&mut ann, &mut bob, &mut cid] {
        assert_eq!(c.recv_type("message")["seq"], 1);
    }
    // ann goes away; three messages while it is away, from two nodes.
    drop(ann);
    for i in 2..=4 {
        let c = if i == 3 { &mut cid } else { &mut bob };
        c.say("r", &format!("m{i}"));
    }
    // It reconnects to another node and recovers exactly what it missed.
    let mut ann = nodes[2].connect("ann");
    let joined = ann.join("r", Some(1));
    assert_eq!(joined["recovered"], true, "{joined}");
    assert_eq!(
        texts(joined["history"].as_array().unwrap()),
        ["m2", "m3", "m4"]
    );
    assert_eq!(joined["seq"], 4);
    // Too far back for the five held: the latest, and it says so.
    for i in 5..=8 {
        bob.say("r", &format!("m{i}"));
    }
    let mut dan = nodes[0].connect("dan");
    let joined = dan.join("r", Some(1));
    assert_eq!(joined["recovered"], false);
    assert_eq!(seqs(joined["history"].as_array().unwrap()), [4, 5, 6, 7, 8]);
    // Every node restarted: the history is still there, and the seq goes on.
    drop((ann, bob, cid, dan));
    drop(nodes);
    let node = Node::start(&redis, &["--history", "5"]);
    let mut eve = node.connect("eve");
    let joined = eve.join("r", Some(6));
    assert_eq!(
        (joined["recovered"].as_bool(), joined["seq"].as_u64()),
        (Some(true), Some(8))
    );
    assert_eq!(texts(joined["history"].as_array().unwrap()), ["m7", "m8"]);
    eve.send(json!({"type": "message", "room": "r", "text": "m9"}));
    assert_eq!(eve.recv_type("message")["seq"], 9);
}

#[test]
fn presence_of_a_killed_node_leaves_within_the_ttl() {
    let redis = Redis::start();
    // Presence entries live 2 s and are refreshed every 2/3 s: a dead node's members leave
    // within 2 s plus a refresh period.
    let mut a = Node::start(&redis, &["--presence-ttl", "2"]);
    let b = Node::start(&redis, &["--presence-ttl", "2"]);
    let mut ann = a.connect("ann");
    let mut amy = a.connect("amy");
    let mut bob = b.connect("bob");
    ann.join("r", None);
    amy.join("r", None);
    bob.join("r", None);
    // Still there after several TTLs: the refresh keeps it.
    std::thread::sleep(Duration::from_secs(3));
    let mut cal = b.connect("cal");
    assert_eq!(
        cal.join("r", None)["members"],
        json!(["amy", "ann", "bob", "cal"])
    );
    a.kill();
    let killed = Instant::now();
    let mut left = Vec::new();
    while left.len() < 2 {
        let p = bob.recv_type("presence");
        if p["event"] == "leave" {
            left.push(p["nick"].as_str().unwrap().to_owned());
        }
    }
    left.sort();
    assert_eq!(left, ["amy", "ann"]);
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(4), "ghosts for {took:?}");
    let mut dan = b.connect("dan");
    assert_eq!(dan.join("r", None)["members"], json!(["bob", "cal", "dan"]));
    drop((ann, amy));
}

#[test]
fn redis_down_errors_then_delivery_resumes_in_order() {
    let mut redis = Redis::start();
    let a = Node::start(&redis, &[]);
    let b = Node::start(&redis, &[]);
    let mut ann = a.connect("ann");
    let mut bob = b.connect("bob");
    ann.join("r", None);
    bob.join("r", None);
    for i in 1..=3 {
        ann.send(json!({"type": "message", "room": "r", "text": format!("m{i}")}));
    }
    assert_eq!(seqs(&bob.messages(3)), [1, 2, 3]);
    assert_eq!(seqs(&ann.messages(3)), [1, 2, 3]);

    redis.kill();
    a.wait_health(503);
    b.wait_health(503);
    // Connections stay up; sends are refused out loud.
    ann.send(json!({"type": "message", "room": "r", "text": "lost?", "ref": 1}));
    let e = ann.recv_type("error");
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_i64()),
        (Some("unavailable"), Some(1))
    );
    bob.send(json!({"type": "private", "to": "ann", "text": "x"}));
    assert_eq!(bob.recv_type("error")["code"], "unavailable");
    let refused = a.publish("r", "x");
    assert!(
        refused.starts_with("HTTP/1.1 503") && refused.contains("cannot reach Redis"),
        "{refused}"
    );
    assert_eq!(metric(&a, "rfc6455_serve_redis_up"), 0.0);
    assert_eq!(metric(&a, "rfc6455_serve_redis_outages_total"), 1.0);

    // Back (empty: no persistence): the bridges reconnect and resubscribe.
    redis.spawn();
    a.wait_health(200);
    b.wait_health(200);
    assert_eq!(metric(&b, "rfc6455_serve_redis_up"), 1.0);
    let deadline = Instant::now() + BOUND;
    while redis.subscribers("r") != 2 {
        assert!(Instant::now() < deadline, "not resubscribed");
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in 4..=9 {
        let sender = if i % 2 == 0 { &mut ann } else { &mut bob };
        sender.send(json!({"type": "message", "room": "r", "text": format!("m{i}")}));
    }
    // The seq goes on from where the nodes saw it (Redis lost its counter), nothing twice.
    let want: Vec<String> = (4..=9).map(|i| format!("m{i}")).collect();
    for c in [&mut ann, &mut bob] {
        let got = c.messages(6);
        assert_eq!(seqs(&got), [4, 5, 6, 7, 8, 9]);
        let mut t = texts(&got);
        t.sort();
        assert_eq!(t, want);
        assert_eq!(c.recv_within(Duration::from_millis(300)), None);
    }
}

#[test]
fn a_cluster_of_three_primaries_two_nodes_delivery_recovery_presence() {
    let cluster = Cluster::start();
    let a = Node::start_url(&cluster.url(), &["--history", "5"]);
    let b = Node::start_url(&cluster.url(), &["--history", "5"]);
    let mut ann = a.connect("ann");
    let mut bob = b.connect("bob");
    // Rooms whose keys and channels are spread over the primaries.
    let rooms: Vec<String> = (0..6).map(|i| format!("room{i}")).collect();
    for room in &rooms {
        assert_eq!(ann.join(room, None)["members"], json!(["ann"]));
        assert_eq!(bob.join(room, None)["members"], json!(["ann", "bob"]));
        assert_eq!(
            ann.recv(),
            json!({"type": "presence", "room": room, "event": "join", "nick": "bob"})
        );
    }
    let mut holders = std::collections::HashSet::new();
    for room in &rooms {
        let subs = cluster.subscribers(room);
        assert_eq!(
            subs.iter().sum::<u64>(),
            2,
            "{room}: one subscription per node: {subs:?}"
        );
        holders.insert(
            subs.iter()
                .position(|&n| n == 2)
                .expect("both on the slot's primary"),
        );
    }
    assert!(holders.len() >= 2, "rooms on one primary only: {holders:?}");

    // Two senders on two nodes at once, in every room: one seq order per room everywhere.
    const N: usize = 15;
    for i in 0..N {
        for room in &rooms {
            ann.send(json!({"type": "message", "room": room, "text": format!("a{i}")}));
            bob.send(json!({"type": "message", "room": room, "text": format!("b{i}")}));
        }
    }
    let total = 2 * N * rooms.len();
    let by_room = |c: &mut Chat| {
        let mut got: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
        for m in c.messages(total) {
            got.entry(m["room"].as_str().unwrap().to_owned())
                .or_default()
                .push(m);
        }
        got
    };
    let (at_a, at_b) = (by_room(&mut ann), by_room(&mut bob));
    for room in &rooms {
        let (x, y) = (&at_a[room], &at_b[room]);
        assert_eq!(seqs(x), (1..=2 * N as u64).collect::<Vec<_>>(), "{room}");
        assert_eq!(
            (seqs(x), texts(x)),
            (seqs(y), texts(y)),
            "{room}: one order"
        );
        for prefix in ["a", "b"] {
            let mine: Vec<String> = texts(x)
                .into_iter()
                .filter(|t| t.starts_with(prefix))
                .collect();
            let want: Vec<String> = (0..N).map(|i| format!("{prefix}{i}")).collect();
            assert_eq!(mine, want, "{room}: a sender's messages in its order");
        }
    }
    for c in [&mut ann, &mut bob] {
        assert_eq!(
            c.recv_within(Duration::from_millis(300)),
            None,
            "nothing twice"
        );
    }

    // Private messages and the listing across nodes.
    ann.send(json!({"type": "private", "to": "bob", "text": "psst"}));
    assert_eq!(ann.recv_type("private")["to"], "bob");
    assert_eq!(bob.recv_type("private")["text"], "psst");
    bob.send(json!({"type": "rooms"}));
    let listed: Vec<Value> = rooms
        .iter()
        .map(|r| json!({"room": r, "members": 2}))
        .collect();
    assert_eq!(bob.recv_type("rooms")["rooms"], json!(listed));

    // Recovery with `since` on the other node.
    drop(ann);
    assert_eq!(bob.recv_type("presence")["event"], "leave");
    for i in 0..3 {
        bob.say("room3", &format!("late{i}"));
    }
    let mut ann = b.connect("ann");
    let joined = ann.join("room3", Some(2 * N as u64));
    assert_eq!(joined["recovered"], true, "{joined}");
    assert_eq!(
        texts(joined["history"].as_array().unwrap()),
        ["late0", "late1", "late2"]
    );
    assert_eq!(joined["seq"], 2 * N as u64 + 3);
    assert_eq!(joined["members"], json!(["ann", "bob"]));
    // And it goes on live for both, from the publish API too.
    ann.send(json!({"type": "message", "room": "room3", "text": "back"}));
    assert_eq!(bob.recv_type("message")["seq"], 2 * N as u64 + 4);
    let answer = a.publish("room3", "api");
    assert!(
        answer.ends_with(&format!("\r\n\r\n{{\"seq\":{}}}", 2 * N + 5)),
        "{answer}"
    );
    assert_eq!(ann.recv_type("message")["text"], "back");
    assert_eq!(ann.recv_type("message")["seq"], 2 * N as u64 + 5);
}

#[test]
fn a_node_whose_clients_only_listen_refills_after_redis_restarts() {
    let mut redis = Redis::start();
    let a = Node::start(&redis, &[]);
    let b = Node::start(&redis, &[]);
    let mut ann = a.connect("ann");
    let mut lis = b.connect("lis");
    ann.join("r", None);
    lis.join("r", None);
    for i in 1..=3 {
        ann.say("r", &format!("m{i}"));
    }
    assert_eq!(seqs(&lis.messages(3)), [1, 2, 3]);

    // Node B sleeps (SIGSTOP) through Redis' restart and the messages sent after it: when
    // it wakes, its subscription is gone and nothing more is sent, so only its catch-up
    // from the room's stream can bring them.
    let signal = |sig: &str| {
        let pid = b.child.id().to_string();
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    };
    signal("-STOP");
    redis.kill();
    a.wait_health(503);
    redis.spawn();
    a.wait_health(200);
    for i in 4..=6 {
        assert_eq!(ann.say("r", &format!("m{i}"))["seq"], i);
    }
    signal("-CONT");
    b.wait_health(200);
    let got = lis.messages(3);
    assert_eq!(
        (seqs(&got), texts(&got)),
        (
            vec![4, 5, 6],
            vec!["m4".to_owned(), "m5".into(), "m6".into()]
        )
    );
    assert_eq!(
        lis.recv_within(Duration::from_millis(300)),
        None,
        "nothing twice"
    );
    assert_eq!(metric(&b, "rfc6455_serve_redis_gap_filled_total"), 3.0);
    // And live again.
    ann.say("r", "m7");
    let m = lis.recv_type("message");
    assert_eq!(
        (m["seq"].as_u64(), m["text"].as_str()),
        (Some(7), Some("m7"))
    );
    assert_eq!(lis.recv_within(Duration::from_millis(300)), None);

    // Redis restarts empty again; once the nodes with members are back, they have put the
    // room's seq back (7): the publish API on a node without members, which knows no seq of
    // the room, goes on from there (not from 1, which every node would drop as old).
    let c = Node::start(&redis, &[]);
    redis.kill();
    a.wait_health(503);
    redis.spawn();
    let deadline = Instant::now() + BOUND;
    while redis.cli(&["GET", "rfc6455:room:{r}:seq"]).trim() != "7" {
        assert!(Instant::now() < deadline, "the seq floor never came back");
        std::thread::sleep(Duration::from_millis(20));
    }
    c.wait_health(200);
    let answer = c.publish("r", "m8");
    assert!(answer.ends_with("\r\n\r\n{\"seq\":8}"), "{answer}");
    for chat in [&mut ann, &mut lis] {
        let m = chat.recv_type("message");
        assert_eq!(
            (m["seq"].as_u64(), m["text"].as_str()),
            (Some(8), Some("m8"))
        );
    }
}
