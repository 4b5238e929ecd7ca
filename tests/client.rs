//! The blocking client against real sockets on 127.0.0.1: tungstenite's server for the
//! happy paths, hand-written servers for the misbehaving ones.
#![cfg(feature = "client")]

use rfc6455::client::{Backoff, Client, ClientError, ConnectOptions, Reconnect};
use rfc6455::proto::{accept_key, ClientHandshakeError};
use rfc6455::ProtocolError;
use rfc6455::{CloseCode, CloseFrame, Config, Connection, Event, Message, State};
use std::borrow::Cow;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Every blocking call in these tests is bounded by this, so a bug fails instead of hanging.
const BOUND: Duration = Duration::from_secs(10);

fn options() -> ConnectOptions {
    let mut config = Config::default();
    config.max_frame_size = 32 << 20;
    ConnectOptions::default()
        .config(config)
        .connect_timeout(Some(BOUND))
        .read_timeout(Some(BOUND))
        .write_timeout(Some(BOUND))
        .close_timeout(Duration::from_secs(2))
}

/// A server on a free port that runs `serve` on its first connection.
fn server<T: Send + 'static>(
    serve: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (String, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/test", listener.local_addr().unwrap());
    let handle = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(BOUND)).unwrap();
        stream.set_write_timeout(Some(BOUND)).unwrap();
        serve(stream)
    });
    (url, handle)
}

type Ws = tungstenite::WebSocket<TcpStream>;

/// A tungstenite server on a free port.
fn tungstenite_server<T: Send + 'static>(
    serve: impl FnOnce(Ws) -> T + Send + 'static,
) -> (String, JoinHandle<T>) {
    server(|stream| {
        let mut config = tungstenite::protocol::WebSocketConfig::default();
        config.max_frame_size = Some(64 << 20);
        config.max_message_size = Some(64 << 20);
        let ws = tungstenite::accept_with_config(stream, Some(config)).unwrap();
        serve(ws)
    })
}

/// Echoes every message until the client closes; returns the client's close frame.
fn echo(mut ws: Ws) -> Option<(u16, String)> {
    let mut close = None;
    loop {
        match ws.read() {
            Ok(m @ (tungstenite::Message::Text(_) | tungstenite::Message::Binary(_))) => {
                ws.send(m).unwrap()
            }
            Ok(tungstenite::Message::Close(frame)) => {
                close = frame.map(|f| (u16::from(f.code), f.reason.to_string()))
            }
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => return close,
            Err(e) => panic!("server: {e}"),
        }
    }
}

/// Reads a handshake request by hand and answers 101 with the right accept key (or `accept`
/// if given). Returns the stream, ready for frames.
fn handshake_by_hand(stream: &mut TcpStream, accept: Option<&str>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let key = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("sec-websocket-key:")
                .then(|| l[18..].trim().to_owned())
        })
        .unwrap();
    let accept = accept.map_or_else(|| accept_key(key.as_bytes()), str::to_owned);
    write!(
        stream,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .unwrap();
}

/// An unmasked server frame.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xFFFF => {
            out.push(126);
            out.extend((n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend((n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// Reads what the client sends until its close frame (or EOF), and returns the events a
/// server sees.
fn client_events(stream: &mut TcpStream) -> Vec<Event<'static>> {
    let mut conn = Connection::server(Config::default());
    let mut events = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return events,
            Ok(n) => n,
        };
        let result = conn.handle_bytes(&buf[..n]);
        events.extend(std::iter::from_fn(|| conn.poll_event()));
        if result.is_err() || matches!(events.last(), Some(Event::Close(_))) {
            return events;
        }
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn messages_from_0_bytes_to_16_mib_round_trip() {
    let (url, server) = tungstenite_server(echo);
    let mut client = Client::connect_with(&url, &options()).unwrap();
    assert_eq!(client.state(), State::Open);
    for len in [
        0,
        1,
        125,
        126,
        65535,
        65536,
        1 << 20,
        (16 << 20) - 7,
        16 << 20,
    ] {
        let data = pattern(len);
        client.send_binary(&data).unwrap();
        match client.recv().unwrap() {
            Event::Message(Message::Binary(got)) => assert!(got == data, "binary {len}"),
            other => panic!("{len}: {other:?}"),
        }
        let text = "é".repeat(len / 2);
        client.send(Message::text(text.as_str())).unwrap();
        match client.recv().unwrap() {
            Event::Message(Message::Text(got)) => assert!(got == text, "text {len}"),
            other => panic!("{len}: {other:?}"),
        }
    }
    // The client closes first: the server sees 1000 and the reason, the client its reply.
    let reply = client.close(CloseCode::NORMAL, "done").unwrap();
    assert_eq!(reply.map(|f| f.code), Some(CloseCode::NORMAL));
    assert_eq!(client.state(), State::Closed);
    assert_eq!(server.join().unwrap(), Some((1000, "done".to_owned())));
    assert!(matches!(client.recv(), Err(ClientError::Closed(Some(_)))));
    assert!(matches!(
        client.send_text("late"),
        Err(ClientError::Closed(_))
    ));
}

#[test]
fn fragmented_messages_and_many_frames_per_read() {
    let (url, server) = server(|mut stream| {
        handshake_by_hand(&mut stream, None);
        let mut wire = Vec::new();
        // Three fragments with a ping between them …
        wire.extend(frame(false, 0x1, b"frag"));
        wire.extend(frame(true, 0x9, b"beat"));
        wire.extend(frame(false, 0x0, b"men"));
        wire.extend(frame(true, 0x0, b"ted"));
        // … a fragmented binary message of 3 MiB …
        let big = pattern(3 << 20);
        for (i, chunk) in big.chunks(1 << 20).enumerate() {
            wire.extend(frame(i == 2, if i == 0 { 0x2 } else { 0x0 }, chunk));
        }
        // … then 200 small messages and a close, all in one write.
        for i in 0..200 {
            wire.extend(frame(true, 0x1, format!("m{i}").as_bytes()));
        }
        wire.extend(frame(true, 0x8, b"\x03\xe8bye"));
        stream.write_all(&wire).unwrap();
        let events = client_events(&mut stream);
        (events, big)
    });
    let mut client = Client::connect_with(&url, &options()).unwrap();
    assert_eq!(
        client.recv().unwrap(),
        Event::Ping(Cow::Borrowed(b"beat".as_slice()))
    );
    assert_eq!(
        client.recv().unwrap(),
        Event::Message(Message::text("fragmented"))
    );
    let Event::Message(Message::Binary(big)) = client.recv().unwrap() else {
        panic!("expected the 3 MiB message");
    };
    for i in 0..200 {
        assert_eq!(
            client.recv().unwrap(),
            Event::Message(Message::text(format!("m{i}")))
        );
    }
    let close = client.recv().unwrap();
    assert_eq!(
        close,
        Event::Close(Some(CloseFrame {
            code: CloseCode::NORMAL,
            reason: "bye".into()
        }))
    );
    assert_eq!(
        client.close_frame().map(|f| f.code),
        Some(CloseCode::NORMAL)
    );
    drop(client);
    let (events, sent) = server.join().unwrap();
    assert!(*big == sent[..]);
    // The client answered the ping, then the close.
    assert_eq!(
        events,
        vec![
            Event::Pong(Cow::Borrowed(b"beat".as_slice())),
            Event::Close(Some(CloseFrame {
                code: CloseCode::NORMAL,
                reason: "".into()
            }))
        ]
    );
}

#[test]
fn ping_gets_its_pong() {
    let (url, server) = tungstenite_server(echo);
    let mut client = Client::connect_with(&url, &options()).unwrap();
    client.ping(b"are you there").unwrap();
    assert_eq!(
        client.recv().unwrap(),
        Event::Pong(Cow::Borrowed(b"are you there".as_slice()))
    );
    assert!(matches!(client.ping(&[0; 126]), Err(ClientError::Usage(_))));
    client.close(CloseCode::GOING_AWAY, "").unwrap();
    assert_eq!(server.join().unwrap(), Some((1001, String::new())));
}

#[test]
fn server_closes_first() {
    let (url, server) = tungstenite_server(|mut ws| {
        ws.send(tungstenite::Message::text("last words")).unwrap();
        ws.close(Some(tungstenite::protocol::CloseFrame {
            code: 4001.into(),
            reason: "maintenance".into(),
        }))
        .unwrap();
        // Until the client's reply; then tungstenite closes TCP.
        loop {
            match ws.read() {
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => break,
                Err(e) => panic!("server: {e}"),
            }
        }
    });
    let mut client = Client::connect_with(&url, &options()).unwrap();
    assert_eq!(
        client.recv().unwrap(),
        Event::Message(Message::text("last words"))
    );
    let Event::Close(Some(frame)) = client.recv().unwrap() else {
        panic!("expected the server's close");
    };
    assert_eq!((frame.code.0, &*frame.reason), (4001, "maintenance"));
    assert_eq!(client.state(), State::Closed);
    server.join().unwrap();
    match client.recv() {
        Err(e @ ClientError::Closed(Some(_))) => {
            assert!(e.to_string().contains("maintenance"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    // Closing again is harmless and reports the server's frame.
    let again = client.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(again.map(|f| f.code.0), Some(4001));
}

#[test]
#[allow(clippy::result_large_err)] // tungstenite's callback signature
fn subprotocol_and_headers_are_sent() {
    let (url, server) = server(|stream| {
        let mut seen = None;
        let callback = |req: &tungstenite::handshake::server::Request,
                        mut resp: tungstenite::handshake::server::Response| {
            seen = req
                .headers()
                .get("x-token")
                .map(|v| v.to_str().unwrap().to_owned());
            resp.headers_mut()
                .insert("Sec-WebSocket-Protocol", "v2".parse().unwrap());
            Ok(resp)
        };
        let ws = tungstenite::accept_hdr(stream, callback).unwrap();
        echo(ws);
        seen
    });
    let options = options()
        .protocol("v3")
        .protocol("v2")
        .header("X-Token", "secret");
    let mut client = Client::connect_with(&url, &options).unwrap();
    assert_eq!(client.protocol(), Some("v2"));
    client.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(server.join().unwrap().as_deref(), Some("secret"));
}

#[test]
fn wrong_accept_key_is_a_handshake_error() {
    let (url, server) = server(|mut stream| {
        handshake_by_hand(&mut stream, Some("bm90IHRoZSByaWdodCBrZXk="));
    });
    let err = Client::connect_with(&url, &options()).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Handshake(ClientHandshakeError::AcceptMismatch { .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("Sec-WebSocket-Accept"), "{err}");
    server.join().unwrap();
}

#[test]
fn refusal_shows_status_and_reason() {
    let (url, server) = server(|mut stream| {
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf).unwrap();
        stream
            .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\nno way")
            .unwrap();
    });
    let err = Client::connect_with(&url, &options()).unwrap_err();
    match &err {
        ClientError::Handshake(ClientHandshakeError::UnexpectedStatus { status, reason }) => {
            assert_eq!((*status, reason.as_str()), (403, "Forbidden"))
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("403 Forbidden"), "{err}");
    assert!(
        err.to_string().contains("check the credentials and Origin"),
        "{err}"
    );
    server.join().unwrap();
}

/// A server that completes the handshake, writes `wire`, and reports what the client sent.
fn misbehaving(wire: Vec<u8>) -> (String, JoinHandle<Vec<Event<'static>>>) {
    server(move |mut stream| {
        handshake_by_hand(&mut stream, None);
        stream.write_all(&wire).unwrap();
        client_events(&mut stream)
    })
}

fn close_code(events: &[Event<'_>]) -> Option<u16> {
    events.iter().find_map(|e| match e {
        Event::Close(Some(f)) => Some(f.code.0),
        _ => None,
    })
}

#[test]
fn masked_frame_from_the_server_fails_with_1002() {
    let wire = vec![0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
    let (url, server) = misbehaving(wire);
    let mut client = Client::connect_with(&url, &options()).unwrap();
    let err = client.recv().unwrap_err();
    assert!(
        matches!(err, ClientError::Protocol(ProtocolError::MaskedFrame)),
        "{err:?}"
    );
    assert!(err.to_string().contains("masked"), "{err}");
    assert_eq!(client.state(), State::Closed);
    assert!(matches!(client.recv(), Err(ClientError::Protocol(_))));
    drop(client);
    assert_eq!(close_code(&server.join().unwrap()), Some(1002));
}

#[test]
fn bad_close_code_fails_with_1002() {
    let (url, server) = misbehaving(frame(true, 0x8, &1005u16.to_be_bytes()));
    let mut client = Client::connect_with(&url, &options()).unwrap();
    let err = client.recv().unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Protocol(ProtocolError::InvalidCloseCode(1005))
        ),
        "{err:?}"
    );
    drop(client);
    assert_eq!(close_code(&server.join().unwrap()), Some(1002));
}

/// A server that answers the close but keeps TCP open: the client waits for its EOF (RFC 6455
/// §7.1.1) for the close timeout, no longer, and then closes TCP itself.
#[test]
fn the_client_waits_for_the_servers_eof_a_bounded_time() {
    let (url, server) = server(|mut stream| {
        handshake_by_hand(&mut stream, None);
        let events = client_events(&mut stream);
        stream
            .write_all(&frame(true, 0x8, &1000u16.to_be_bytes()))
            .unwrap();
        let answered = Instant::now();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        (close_code(&events), answered.elapsed(), rest)
    });
    let options = options().close_timeout(Duration::from_millis(300));
    let mut client = Client::connect_with(&url, &options).unwrap();
    let started = Instant::now();
    let reply = client.close(CloseCode::NORMAL, "").unwrap();
    let waited = started.elapsed();
    assert_eq!(reply.map(|f| f.code), Some(CloseCode::NORMAL));
    assert_eq!(client.state(), State::Closed);
    let (code, eof_after, rest) = server.join().unwrap();
    assert_eq!(code, Some(1000));
    assert!(rest.is_empty(), "sent after its close frame: {rest:?}");
    assert!(
        eof_after >= Duration::from_millis(250),
        "the client closed TCP without waiting for the server: after {eof_after:?}"
    );
    assert!(
        (Duration::from_millis(250)..Duration::from_secs(2)).contains(&waited),
        "close() returned after {waited:?}; the close timeout is 300 ms"
    );
}

/// The side that fails the connection closes TCP first: after a protocol error the client
/// sends its close frame (1002) and closes at once, without waiting for the server.
#[test]
fn after_a_protocol_error_the_client_closes_tcp_at_once() {
    let (url, server) = server(|mut stream| {
        handshake_by_hand(&mut stream, None);
        // A masked frame from the server: 1002.
        stream
            .write_all(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2])
            .unwrap();
        let events = client_events(&mut stream);
        let closing = Instant::now();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        (close_code(&events), closing.elapsed())
    });
    let options = options().close_timeout(Duration::from_secs(5));
    let mut client = Client::connect_with(&url, &options).unwrap();
    let started = Instant::now();
    let err = client.recv().unwrap_err();
    assert!(
        matches!(err, ClientError::Protocol(ProtocolError::MaskedFrame)),
        "{err:?}"
    );
    let (code, eof_after) = server.join().unwrap();
    assert_eq!(code, Some(1002));
    assert!(
        eof_after < Duration::from_secs(2) && started.elapsed() < Duration::from_secs(2),
        "the client waited for the server (EOF {eof_after:?} after its close frame, recv \
         returned after {:?}); the close timeout is 5 s",
        started.elapsed()
    );
    drop(client);
}

#[test]
fn silent_server_is_a_read_timeout_that_leaves_the_connection_usable() {
    let (go_on, wait) = mpsc::channel::<()>();
    let (url, server) = server(move |mut stream| {
        handshake_by_hand(&mut stream, None);
        // Silent until the client has timed out.
        wait.recv_timeout(BOUND).unwrap();
        stream.write_all(&frame(true, 0x1, b"late")).unwrap();
        let events = client_events(&mut stream);
        // Never answer the close, and keep TCP open until the client gives up.
        let _ = wait.recv_timeout(BOUND);
        events
    });
    let options = options()
        .read_timeout(Some(Duration::from_millis(100)))
        .close_timeout(Duration::from_millis(300));
    let mut client = Client::connect_with(&url, &options).unwrap();
    let err = client.recv().unwrap_err();
    assert!(
        matches!(err, ClientError::Timeout { during: "a read" }),
        "{err:?}"
    );
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(client.state(), State::Open);
    go_on.send(()).unwrap();
    client.set_read_timeout(Some(BOUND)).unwrap();
    assert_eq!(
        client.recv().unwrap(),
        Event::Message(Message::text("late"))
    );
    // The server never answers the close: bounded by the close timeout.
    let err = client.close(CloseCode::NORMAL, "").unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Timeout {
                during: "the close handshake"
            }
        ),
        "{err:?}"
    );
    assert_eq!(client.state(), State::Closed);
    go_on.send(()).unwrap();
    assert_eq!(close_code(&server.join().unwrap()), Some(1000));
}

#[test]
fn silent_server_during_the_handshake_times_out() {
    let (url, server) = server(|mut stream| {
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf);
        let _ = stream.read(&mut buf); // until the client gives up
    });
    let options = options().connect_timeout(Some(Duration::from_millis(200)));
    let err = Client::connect_with(&url, &options).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Timeout {
                during: "the opening handshake"
            }
        ),
        "{err:?}"
    );
    drop(err);
    server.join().unwrap();
}

#[test]
fn timeouts_too_large_for_the_clock_mean_no_deadline() {
    let (url, server) = tungstenite_server(echo);
    // The client runs in a thread so that a hang fails the test after BOUND.
    let (done, result) = mpsc::channel();
    thread::spawn(move || {
        let options = options()
            .connect_timeout(Some(Duration::MAX))
            .close_timeout(Duration::MAX);
        let run = || -> Result<_, ClientError> {
            let mut client = Client::connect_with(&url, &options)?;
            client.send_text("hi")?;
            let echo = client.recv()?;
            Ok((echo, client.close(CloseCode::NORMAL, "")?))
        };
        let _ = done.send(run());
    });
    let (echo, reply) = result.recv_timeout(BOUND).unwrap().unwrap();
    assert_eq!(echo, Event::Message(Message::text("hi")));
    assert_eq!(reply.map(|f| f.code), Some(CloseCode::NORMAL));
    assert_eq!(server.join().unwrap(), Some((1000, String::new())));
}

#[test]
fn tcp_dropped_mid_frame_is_a_lost_connection() {
    let (url, server) = server(|mut stream| {
        handshake_by_hand(&mut stream, None);
        let whole = frame(true, 0x2, &[7; 100]);
        stream.write_all(&whole[..30]).unwrap();
    });
    let mut client = Client::connect_with(&url, &options()).unwrap();
    server.join().unwrap();
    let err = client.recv().unwrap_err();
    assert!(matches!(err, ClientError::ConnectionLost(_)), "{err:?}");
    assert!(err.to_string().contains("1006"), "{err}");
    assert_eq!(client.state(), State::Closed);
}

#[test]
fn unusable_urls_say_why() {
    // wss:// is a URL the client takes (TLS): nothing listens on port 1, so the connect fails.
    let err = Client::connect("wss://127.0.0.1:1/").unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    assert!(matches!(
        Client::connect("http://127.0.0.1/"),
        Err(ClientError::Url(_))
    ));
    let options = options().header("Bad Name", "x");
    assert!(matches!(
        Client::connect_with("ws://127.0.0.1:1/", &options),
        Err(ClientError::InvalidOption(_))
    ));
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Client::connect(&format!("ws://127.0.0.1:{port}/")).unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn reconnect_after_a_lost_connection_and_stop_on_a_normal_close() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = thread::spawn(move || {
        // First connection: accepted, then dropped without a close frame.
        let (mut stream, _) = listener.accept().unwrap();
        handshake_by_hand(&mut stream, None);
        let mut hello = [0u8; 11]; // the masked "hello" on_connect sends
        stream.read_exact(&mut hello).unwrap();
        drop(stream);
        // Second: one message, then a normal close.
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(BOUND)).unwrap();
        let mut ws = tungstenite::accept(stream).unwrap();
        let hello = ws.read().unwrap();
        ws.send(tungstenite::Message::text("welcome back")).unwrap();
        ws.close(None).unwrap();
        while ws.read().is_ok() {}
        hello
    });
    let slept = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&slept);
    let backoff = Backoff::default();
    let mut ws = Reconnect::new(url, options(), backoff.clone())
        .with_sleep(move |d| recorded.lock().unwrap().push(d))
        .on_connect(|client| client.send_text("hello"));
    assert!(matches!(ws.recv(), Err(ClientError::ConnectionLost(_))));
    assert_eq!(
        ws.recv().unwrap(),
        Event::Message(Message::text("welcome back"))
    );
    assert_eq!(ws.connects(), 2);
    assert!(matches!(ws.recv().unwrap(), Event::Close(None)));
    assert_eq!(
        server.join().unwrap(),
        tungstenite::Message::text("hello"),
        "on_connect ran on the new connection"
    );
    // A close frame, even without a code, is the server ending things on purpose.
    assert!(matches!(ws.recv(), Err(ClientError::Stopped)));
    let delays = slept.lock().unwrap().clone();
    assert_eq!(delays.len(), 1, "one backoff delay before the reconnect");
    let first = backoff.delay(0, 0.0);
    assert!(delays[0] <= first && delays[0] >= first / 2, "{delays:?}");
}

#[test]
fn reconnect_stops_for_good_once_closed_on_purpose() {
    let (url, server) = tungstenite_server(echo);
    let mut ws = Reconnect::new(url, options(), Backoff::default())
        .with_sleep(|_| panic!("no reconnect after a purposeful close"));
    ws.send(Message::text("x")).unwrap();
    assert_eq!(ws.recv().unwrap(), Event::Message(Message::text("x")));
    ws.close(CloseCode::NORMAL, "bye").unwrap();
    assert!(matches!(ws.recv(), Err(ClientError::Stopped)));
    assert!(matches!(
        ws.send(Message::text("y")),
        Err(ClientError::Stopped)
    ));
    assert_eq!(server.join().unwrap(), Some((1000, "bye".to_owned())));
}

#[test]
fn reconnect_gives_up_after_max_attempts() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let slept = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&slept);
    let mut backoff = Backoff::default();
    backoff.max_attempts = Some(4);
    backoff.jitter = 0.0;
    let mut ws = Reconnect::new(format!("ws://127.0.0.1:{port}/"), options(), backoff)
        .with_sleep(move |d| recorded.lock().unwrap().push(d));
    let err = ws.recv().unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    let ms: Vec<u128> = slept
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.as_millis())
        .collect();
    assert_eq!(ms, [500, 1000, 2000], "4 attempts, 3 waits between them");
    assert!(matches!(ws.recv(), Err(ClientError::Stopped)));
}

#[test]
fn reconnect_keeps_the_connection_through_read_timeouts() {
    let (url, server) = tungstenite_server(echo);
    let options = options().read_timeout(Some(Duration::from_millis(100)));
    let mut ws = Reconnect::new(url, options, Backoff::default())
        .with_sleep(|_| panic!("no reconnect after a read timeout"));
    ws.send_text("first").unwrap();
    assert_eq!(ws.recv().unwrap(), Event::Message(Message::text("first")));
    // An idle connection: each recv times out, and the connection stays.
    for _ in 0..3 {
        let err = ws.recv().unwrap_err();
        assert!(
            matches!(err, ClientError::Timeout { during: "a read" }),
            "{err:?}"
        );
        assert!(!ws.is_stopped());
    }
    ws.send_binary(&[0, 1, 2]).unwrap();
    assert_eq!(
        ws.recv().unwrap(),
        Event::Message(Message::binary(vec![0, 1, 2]))
    );
    ws.ping(b"still there").unwrap();
    assert_eq!(
        ws.recv().unwrap(),
        Event::Pong(Cow::Borrowed(b"still there"))
    );
    assert_eq!(ws.connects(), 1, "one connection throughout");
    // The close goes out on that same connection.
    ws.close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(server.join().unwrap(), Some((1000, "bye".to_owned())));
}
