//! `rfc6455 serve` run as a command, spoken to over real sockets: every row of its protocol,
//! every error code, recovery, presence, private messages, the rate limit, Origin, JWT, the
//! publish API and the metrics. Every wait is bounded.
#![cfg(all(feature = "server", feature = "cli"))]

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{raw, read_to_end, Client, BOUND};
use hmac::{Hmac, KeyInit, Mac};
use rfc6455::proto::{ClientHandshake, ClientOptions, Status, Url};
use rfc6455::{CloseCode, Config, Connection, Event, Message};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::SocketAddr;

/// A `rfc6455 serve` child on a port of its choosing, killed on drop.
struct Serve {
    _command: common::Command,
    addr: SocketAddr,
}

impl Serve {
    fn start(args: &[&str]) -> Serve {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0", "--threads", "2"];
        all.extend_from_slice(args);
        let command = common::Command::start(&all);
        let addr = command.addr;
        Serve {
            _command: command,
            addr,
        }
    }

    /// Connects to `path` with extra header lines; the HTTP refusal as text if refused.
    fn try_connect(&self, path: &str, headers: &[(&str, &str)]) -> Result<Chat, String> {
        let url: Url = format!("ws://{}{path}", self.addr).parse().unwrap();
        let mut options = ClientOptions::default();
        for (name, value) in headers {
            options = options.header(*name, *value);
        }
        let hs = ClientHandshake::new(&url, &options, &mut || [9u8; 16]).unwrap();
        let mut stream = raw(self.addr);
        stream.write_all(hs.request()).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).unwrap();
            if n == 0 {
                return Err(String::from_utf8_lossy(&buf).into_owned());
            }
            buf.extend_from_slice(&chunk[..n]);
            match hs.parse_response(&buf) {
                Ok(Status::Complete(_, head)) => {
                    let mut conn = Connection::client(Config::default(), || [1, 2, 3, 4]);
                    conn.handle_bytes(&buf[head..]).unwrap();
                    return Ok(Chat(Client { stream, conn }));
                }
                Ok(Status::Partial) => {}
                Err(_) => {
                    // A refusal: read the rest of its body.
                    let _ = stream.read_to_end(&mut buf);
                    return Err(String::from_utf8_lossy(&buf).into_owned());
                }
            }
        }
    }

    /// Connects as `nick` and reads the welcome.
    fn join_as(&self, nick: &str) -> Chat {
        let mut chat = self
            .try_connect(&format!("/ws?nick={nick}"), &[])
            .unwrap_or_else(|e| panic!("refused: {e}"));
        let welcome = chat.recv();
        assert_eq!(welcome, json!({"type": "welcome", "nick": nick}));
        chat
    }

    fn http(&self, request: &str) -> String {
        let mut stream = raw(self.addr);
        stream.write_all(request.as_bytes()).unwrap();
        read_to_end(stream)
    }
}

struct Chat(Client);

impl Chat {
    fn send(&mut self, value: Value) {
        self.0.send(Message::text(value.to_string()));
    }

    fn send_raw(&mut self, text: &str) {
        self.0.send(Message::text(text));
    }

    /// The next JSON message.
    fn recv(&mut self) -> Value {
        let m = self.0.next_message();
        serde_json::from_str(m.as_text().expect("text")).expect("JSON")
    }

    /// The next message of `kind`, skipping others (presence, say) up to a bound.
    fn recv_type(&mut self, kind: &str) -> Value {
        for _ in 0..100 {
            let v = self.recv();
            if v["type"] == kind {
                return v;
            }
        }
        panic!("no {kind} in 100 messages");
    }

    fn command(&mut self, value: Value) -> Value {
        self.send(value);
        self.recv()
    }

    /// The close frame (code) that ends the connection.
    fn close_code(&mut self) -> u16 {
        loop {
            match self.0.next() {
                Some(Event::Close(Some(frame))) => return frame.code.0,
                Some(Event::Close(None)) => return 1005,
                Some(_) => {}
                None => return 1006,
            }
        }
    }
}

fn join(chat: &mut Chat, room: &str) -> Value {
    let joined = chat.command(json!({"type": "join", "room": room}));
    assert_eq!(joined["type"], "joined", "{joined}");
    joined
}

#[test]
fn rooms_messages_presence_and_listing() {
    let serve = Serve::start(&[]);
    let mut ann = serve.join_as("ann");
    let mut joined = join(&mut ann, "lobby");
    let epoch = joined["epoch"].take();
    assert!(epoch.as_u64().unwrap() > 1_600_000_000_000, "{epoch}");
    assert_eq!(
        joined,
        json!({"type": "joined", "room": "lobby", "members": ["ann"], "history": [], "seq": 0, "epoch": null})
    );
    let mut bob = serve.join_as("bob");
    let joined = bob.command(json!({"type": "join", "room": "lobby", "ref": 7}));
    assert_eq!(joined["members"], json!(["ann", "bob"]));
    assert_eq!(joined["ref"], 7);
    assert_eq!(
        ann.recv(),
        json!({"type": "presence", "room": "lobby", "event": "join", "nick": "bob"})
    );
    // A message reaches every member, the sender included, with seq from 1.
    ann.send(json!({"type": "message", "room": "lobby", "text": "hi bob"}));
    for chat in [&mut ann, &mut bob] {
        let m = chat.recv();
        assert_eq!(
            (&m["type"], &m["room"], &m["seq"], &m["from"], &m["text"]),
            (
                &json!("message"),
                &json!("lobby"),
                &json!(1),
                &json!("ann"),
                &json!("hi bob")
            )
        );
        assert!(m["ts"].as_u64().unwrap() > 1_600_000_000_000);
    }
    // A newcomer gets the history.
    let mut cat = serve.join_as("cat");
    let joined = join(&mut cat, "lobby");
    assert_eq!(joined["history"][0]["text"], "hi bob");
    assert_eq!(joined["seq"], 1);
    // Rooms and their member counts.
    join(&mut cat, "kitchen");
    let rooms = cat.command(json!({"type": "rooms", "ref": "r"}));
    assert_eq!(
        rooms,
        json!({"type": "rooms", "rooms": [{"room": "kitchen", "members": 1}, {"room": "lobby", "members": 3}], "ref": "r"})
    );
    // Leave: a reply, and presence for the others.
    bob.send(json!({"type": "leave", "room": "lobby"}));
    assert_eq!(
        bob.recv_type("left"),
        json!({"type": "left", "room": "lobby"})
    );
    let left = json!({"type": "presence", "room": "lobby", "event": "leave", "nick": "bob"});
    assert_eq!(
        ann.recv_type("presence"),
        json!({"type": "presence", "room": "lobby", "event": "join", "nick": "cat"})
    );
    assert_eq!(ann.recv_type("presence"), left);
    // Disconnecting leaves every room, with presence.
    drop(cat);
    assert_eq!(
        ann.recv_type("presence"),
        json!({"type": "presence", "room": "lobby", "event": "leave", "nick": "cat"})
    );
    // bob left: he gets nothing more from the room; a message after shows the order.
    ann.send(json!({"type": "message", "room": "lobby", "text": "bye"}));
    assert_eq!(ann.recv()["seq"], 2);
    assert_eq!(
        bob.command(json!({"type": "rooms"}))["rooms"],
        json!([{"room": "lobby", "members": 1}])
    );
}

#[test]
fn recovery_with_since_inside_and_outside_the_history() {
    let serve = Serve::start(&["--history", "3"]);
    let mut ann = serve.join_as("ann");
    join(&mut ann, "r");
    for i in 1..=5 {
        ann.send(json!({"type": "message", "room": "r", "text": format!("m{i}")}));
        assert_eq!(ann.recv()["seq"], i);
    }
    let mut bob = serve.join_as("bob");
    let inside = bob.command(json!({"type": "join", "room": "r", "since": 3}));
    assert_eq!(inside["recovered"], true);
    let texts: Vec<&str> = inside["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["m4", "m5"]);
    let mut cat = serve.join_as("cat");
    let outside = cat.command(json!({"type": "join", "room": "r", "since": 1}));
    assert_eq!(outside["recovered"], false);
    let seqs: Vec<u64> = outside["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 4, 5]);
    assert_eq!(outside["seq"], 5);
}

#[test]
fn private_messages_reach_every_connection_of_the_nick() {
    let serve = Serve::start(&[]);
    let mut ann = serve.join_as("ann");
    let mut bob1 = serve.join_as("bob");
    let mut bob2 = serve.join_as("bob");
    let mut cat = serve.join_as("cat");
    let reply = ann.command(json!({"type": "private", "to": "bob", "text": "psst", "ref": 1}));
    assert_eq!(
        (
            &reply["type"],
            &reply["from"],
            &reply["to"],
            &reply["text"],
            &reply["ref"]
        ),
        (
            &json!("private"),
            &json!("ann"),
            &json!("bob"),
            &json!("psst"),
            &json!(1)
        )
    );
    for bob in [&mut bob1, &mut bob2] {
        let m = bob.recv();
        assert_eq!(
            (&m["type"], &m["from"], &m["text"]),
            (&json!("private"), &json!("ann"), &json!("psst"))
        );
        assert!(m.get("ref").is_none());
    }
    // cat got nothing: the next thing it reads is its own answer.
    assert_eq!(cat.command(json!({"type": "rooms"}))["type"], "rooms");
    let err = ann.command(json!({"type": "private", "to": "nobody", "text": "x"}));
    assert_eq!(err["code"], "no_such_user");
}

#[test]
fn every_error_code_is_a_reply() {
    let serve = Serve::start(&["--max-text", "10", "--max-rooms", "2"]);
    let mut ann = serve.join_as("ann");
    let cases: Vec<(Value, &str)> = vec![
        (json!({"type": "dance", "ref": [1]}), "bad_request"),
        (json!({"room": "x"}), "bad_request"),
        (json!({"type": "join"}), "bad_request"),
        (json!({"type": "join", "room": "bad room"}), "bad_request"),
        (
            json!({"type": "join", "room": "r", "since": "yesterday"}),
            "bad_request",
        ),
        (
            json!({"type": "message", "room": "r", "text": "x"}),
            "not_member",
        ),
        (json!({"type": "leave", "room": "r"}), "not_member"),
        (
            json!({"type": "private", "to": "zed", "text": "x"}),
            "no_such_user",
        ),
    ];
    for (command, code) in cases {
        let reply = ann.command(command.clone());
        assert_eq!(
            (reply["type"].as_str(), reply["code"].as_str()),
            (Some("error"), Some(code)),
            "{command}: {reply}"
        );
        assert!(reply["message"].as_str().unwrap().len() > 10, "{reply}");
        if let Some(r) = command.get("ref") {
            assert_eq!(&reply["ref"], r);
        }
    }
    ann.send_raw("{not json");
    assert_eq!(ann.recv()["code"], "bad_json");
    ann.send_raw("[1, 2]");
    assert_eq!(ann.recv()["code"], "bad_json");
    join(&mut ann, "r");
    let long = ann.command(json!({"type": "message", "room": "r", "text": "elevenchars"}));
    assert_eq!(long["code"], "too_long");
    // Ten characters, not bytes.
    ann.send(json!({"type": "message", "room": "r", "text": "éééééééééé"}));
    assert_eq!(ann.recv()["type"], "message");
    join(&mut ann, "s");
    let full = ann.command(json!({"type": "join", "room": "t"}));
    assert_eq!(full["code"], "unavailable");
    // Binary messages close the connection with 1003.
    ann.0.send(Message::binary(vec![1, 2, 3]));
    assert_eq!(ann.close_code(), 1003);
}

#[test]
fn a_flood_is_rate_limited_then_closed_with_1008() {
    let serve = Serve::start(&["--rate", "5/s", "--burst", "3", "--flood-close", "2"]);
    let mut ann = serve.join_as("ann");
    join(&mut ann, "r");
    let started = std::time::Instant::now();
    let mut limited = 0;
    let mut delivered = 0;
    // 50 messages a second: over the rate; closed once it has flooded for 2 s.
    let code = loop {
        assert!(started.elapsed() < BOUND, "never closed");
        ann.send(json!({"type": "message", "room": "r", "text": "spam"}));
        std::thread::sleep(std::time::Duration::from_millis(20));
        ann.0.stream.set_nonblocking(true).unwrap();
        let mut chunk = [0u8; 4096];
        let closed = loop {
            match ann.0.stream.read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => ann.0.conn.handle_bytes(&chunk[..n]).unwrap_or(()),
                Err(_) => break false,
            }
        };
        ann.0.stream.set_nonblocking(false).unwrap();
        let mut code = None;
        while let Some(event) = ann.0.conn.poll_event() {
            match event {
                Event::Message(m) => {
                    let v: Value = serde_json::from_str(m.as_text().unwrap()).unwrap();
                    match v["code"].as_str() {
                        Some("rate_limited") => limited += 1,
                        _ => delivered += 1,
                    }
                }
                Event::Close(frame) => code = Some(frame.map_or(1005, |f| f.code.0)),
                _ => {}
            }
        }
        if let Some(code) = code {
            break code;
        }
        assert!(!closed, "EOF without a close frame");
    };
    let took = started.elapsed().as_secs_f64();
    assert_eq!(code, CloseCode::POLICY_VIOLATION.0);
    assert!(limited > 10, "limited {limited}");
    // The burst, then about 5 a second.
    assert!(
        delivered >= 3 && delivered <= 3 + (5.0 * took) as usize + 2,
        "delivered {delivered} in {took:.1}s"
    );
    assert!(
        (2.0..6.0).contains(&took),
        "closed after {took:.1}s of flooding"
    );
}

#[test]
fn origins_and_endpoints() {
    let serve = Serve::start(&["--allow-origin", "https://chat.example"]);
    let addr = serve.addr.to_string();
    let same = format!("http://{addr}");
    for (origin, ok) in [
        (None, true),
        (Some(same.as_str()), true),
        (Some("https://chat.example"), true),
        (Some("https://evil.example"), false),
    ] {
        let headers: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
        match serve.try_connect("/ws?nick=ann", &headers) {
            Ok(_) => assert!(ok, "{origin:?} let in"),
            Err(refusal) => {
                assert!(!ok, "{origin:?} refused: {refusal}");
                assert!(refusal.starts_with("HTTP/1.1 403 "), "{refusal}");
            }
        }
    }
    let no_nick = serve.try_connect("/ws", &[]).err().unwrap();
    assert!(
        no_nick.starts_with("HTTP/1.1 400 ") && no_nick.contains("nick"),
        "{no_nick}"
    );
    let elsewhere = serve.try_connect("/chat?nick=a", &[]).err().unwrap();
    assert!(elsewhere.starts_with("HTTP/1.1 404 "), "{elsewhere}");
    let page = serve.http("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        page.starts_with("HTTP/1.1 200 OK\r\n") && page.contains("text/html"),
        "{page}"
    );
    for path in ["/app.js", "/style.css"] {
        let r = serve.http(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {r}");
    }
    let health = serve.http("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(health.ends_with("\r\n\r\nok\n"), "{health}");
    let missing = serve.http("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
    let wrong = serve.http("DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(wrong.starts_with("HTTP/1.1 405 "), "{wrong}");
}

fn sign(secret: &[u8], header: &str, claims: Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(header);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).unwrap();
    mac.update(format!("{header}.{payload}").as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{signature}")
}

#[test]
fn jwt_tokens_are_verified() {
    const SECRET: &str = "a-secret-of-32-bytes-for-testing";
    let serve = Serve::start(&["--jwt-secret", SECRET]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let hs256 = r#"{"alg":"HS256","typ":"JWT"}"#;
    let good = sign(
        SECRET.as_bytes(),
        hs256,
        json!({"sub": "u1", "name": "ann", "exp": now + 60, "rooms": ["ok"]}),
    );
    // In the query, or as a bearer header.
    let mut ann = serve
        .try_connect(&format!("/ws?token={good}"), &[])
        .expect("accepted");
    assert_eq!(ann.recv(), json!({"type": "welcome", "nick": "ann"}));
    let bearer = format!("Bearer {good}");
    let mut again = serve
        .try_connect("/ws", &[("Authorization", &bearer)])
        .expect("accepted");
    assert_eq!(again.recv()["nick"], "ann");
    join(&mut ann, "ok");
    assert_eq!(
        ann.command(json!({"type": "join", "room": "other"}))["code"],
        "forbidden"
    );
    let expired = sign(
        SECRET.as_bytes(),
        hs256,
        json!({"sub": "ann", "exp": now - 120}),
    );
    let forged = sign(
        b"another-secret-entirely-not-ours",
        hs256,
        json!({"sub": "ann"}),
    );
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(r#"{"sub":"ann"}"#)
    );
    for (token, why) in [
        (expired.as_str(), "expired"),
        (forged.as_str(), "signature"),
        (none.as_str(), "algorithm"),
        ("garbage", "JWT"),
    ] {
        let refusal = serve
            .try_connect(&format!("/ws?token={token}"), &[])
            .err()
            .unwrap();
        assert!(
            refusal.starts_with("HTTP/1.1 401 ") && refusal.contains(why),
            "{why}: {refusal}"
        );
    }
    let missing = serve.try_connect("/ws?nick=ann", &[]).err().unwrap();
    assert!(
        missing.starts_with("HTTP/1.1 401 ") && missing.contains("token"),
        "{missing}"
    );
}

fn post(serve: &Serve, key: Option<&str>, body: &str) -> String {
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    serve.http(&format!(
        "POST /api/publish HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

#[test]
fn the_publish_api_and_the_metrics() {
    let serve = Serve::start(&["--api-key", "k3y", "--max-body", "200"]);
    let mut ann = serve.join_as("ann");
    join(&mut ann, "news");
    let ok = post(
        &serve,
        Some("k3y"),
        r#"{"room":"news","text":"deploy done"}"#,
    );
    assert!(
        ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with(r#"{"seq":1}"#),
        "{ok}"
    );
    let m = ann.recv();
    assert_eq!(
        (&m["from"], &m["text"], &m["seq"]),
        (&json!("system"), &json!("deploy done"), &json!(1))
    );
    let named = post(
        &serve,
        Some("k3y"),
        r#"{"room":"news","text":"hi","from":"ci"}"#,
    );
    assert!(named.ends_with(r#"{"seq":2}"#), "{named}");
    assert_eq!(ann.recv()["from"], "ci");
    for (key, body, status) in [
        (Some("wrong"), r#"{"room":"news","text":"x"}"#, 401),
        (None, r#"{"room":"news","text":"x"}"#, 401),
        (Some("k3y"), "{nope", 400),
        (Some("k3y"), r#"{"room":"news"}"#, 400),
        (Some("k3y"), r#"{"room":"bad room","text":"x"}"#, 400),
    ] {
        let r = post(&serve, key, body);
        assert!(
            r.starts_with(&format!("HTTP/1.1 {status} ")),
            "{key:?} {body}: {r}"
        );
    }
    let big = post(
        &serve,
        Some("k3y"),
        &format!(r#"{{"room":"news","text":"{}"}}"#, "x".repeat(300)),
    );
    assert!(big.starts_with("HTTP/1.1 413 "), "{big}");
    // Traffic to count: errors, a message, a closed connection.
    ann.send_raw("nonsense");
    assert_eq!(ann.recv()["code"], "bad_json");
    ann.send(json!({"type": "message", "room": "news", "text": "seen"}));
    ann.recv();
    let mut bob = serve.join_as("bob");
    bob.0.conn.close(CloseCode::NORMAL, "bye").unwrap();
    bob.0.flush();
    assert_eq!(bob.close_code(), 1000);
    // Metrics are read once the server has counted the close: poll, bounded.
    let deadline = std::time::Instant::now() + BOUND;
    let metrics = loop {
        let text = serve.http("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        if text.contains("rfc6455_serve_connections_closed_total{code=\"1000\"} 1") {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no close counted:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    assert_eq!(value("rfc6455_serve_connections"), 1.0);
    assert_eq!(value("rfc6455_serve_connections_opened_total"), 2.0);
    assert_eq!(value("rfc6455_serve_api_publishes_total"), 2.0);
    assert_eq!(value("rfc6455_serve_room_messages_total"), 3.0);
    assert!(
        metrics.contains("rfc6455_serve_errors_total{code=\"bad_json\"} 1"),
        "{metrics}"
    );
    assert_eq!(value("rfc6455_serve_rooms"), 1.0);
    assert!(value("rfc6455_serve_deliveries_out_total") >= 3.0);
    // ann's join, "nonsense" and message; bob sent nothing.
    assert_eq!(value("rfc6455_serve_messages_in_total"), 3.0);
}
