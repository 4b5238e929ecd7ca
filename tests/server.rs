//! The mio server over real sockets on 127.0.0.1. Every test binds port 0 and bounds its
//! waits with timeouts; no sleep decides an outcome.
#![cfg(feature = "server")]
#![allow(clippy::field_reassign_with_default)]

mod common;

use common::{raw, read_to_end, request_bytes, Client, Running, Seen};
use rfc6455::server::{CloseReason, ConnId, Heartbeat, Limits, Timeouts};
use rfc6455::TimeoutKind;
use rfc6455::{CloseCode, Config, Connection, Event, Message};
use std::io::Write;
use std::time::Duration;

/// Deterministic payloads of mixed sizes around the header length boundaries, and sizes the
/// server writes straight from its read buffer (16 KiB up to what fits one read).
fn payload(client: usize, i: usize) -> Message<'static> {
    const SIZES: [usize; 10] = [0, 1, 125, 126, 1000, 16_384, 40_000, 65535, 65536, 100_000];
    let len = SIZES[(client + i) % SIZES.len()];
    if i.is_multiple_of(2) {
        let text: String = (0..len)
            .map(|k| char::from(b'a' + ((k + client + i) % 26) as u8))
            .collect();
        Message::text(text)
    } else {
        Message::binary(
            (0..len)
                .map(|k| (k * 31 + client * 7 + i) as u8)
                .collect::<Vec<_>>(),
        )
    }
}

#[test]
fn many_clients_echo_every_byte() {
    let server = Running::default();
    let addr = server.addr;
    let clients: Vec<_> = (0..50)
        .map(|c| {
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                for i in 0..100 {
                    let sent = payload(c, i);
                    client.send(sent.clone());
                    assert_eq!(client.next_message(), sent, "client {c} message {i}");
                }
                client.conn.close(CloseCode::NORMAL, "done").unwrap();
                client.flush();
                loop {
                    match client.next() {
                        Some(Event::Close(_)) | None => break,
                        Some(_) => {}
                    }
                }
                // The server closes TCP after the handshake.
                assert!(client.next().is_none());
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client thread");
    }
    server.stop();
}

#[test]
fn bytes_sent_right_after_the_request_head_are_not_lost() {
    let server = Running::default();
    let mut frames = Connection::client(Config::default(), || [9, 8, 7, 6]);
    frames.send_text("first").unwrap();
    frames.send_binary(&[1, 2, 3]).unwrap();
    // Large enough to be written straight from the read buffer, but not before the 101.
    let large: Vec<u8> = (0..40_000).map(|i| (i % 251) as u8).collect();
    frames.send_binary(&large).unwrap();
    let early = frames.poll_transmit().to_vec();
    let mut client = Client::connect_with(server.addr, &early);
    assert_eq!(client.next_message(), Message::text("first"));
    assert_eq!(client.next_message(), Message::binary(vec![1, 2, 3]));
    assert_eq!(client.next_message(), Message::binary(large));
    server.stop();
}

#[test]
fn refusals_carry_the_right_status() {
    let server = Running::default();
    // The handler's own refusal.
    let mut s = raw(server.addr);
    s.write_all(&request_bytes(server.addr, "/private"))
        .unwrap();
    let answer = read_to_end(s);
    assert!(answer.starts_with("HTTP/1.1 403 "), "{answer}");
    assert!(answer.ends_with("no entry\n"), "{answer}");
    // The handshake module's: not a GET, then a missing key.
    let mut s = raw(server.addr);
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(read_to_end(s).starts_with("HTTP/1.1 405 "));
    let mut s = raw(server.addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .unwrap();
    assert!(read_to_end(s).starts_with("HTTP/1.1 400 "));
    server.stop();
}

#[test]
fn a_head_over_the_limit_gets_431() {
    let server = Running::default();
    let mut s = raw(server.addr);
    let mut head = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', 20_000));
    // The server may answer and close before everything is written: ignore write errors.
    let _ = s.write_all(&head);
    assert!(read_to_end(s).starts_with("HTTP/1.1 431 "));
    server.stop();
}

#[test]
fn a_silent_client_is_dropped_by_the_handshake_timeout() {
    let mut timeouts = Timeouts::default();
    timeouts.handshake = Duration::from_millis(200);
    let server = Running::start(Limits::default(), timeouts);
    let silent = raw(server.addr);
    let mut slow = raw(server.addr);
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap(); // never finished
    assert_eq!(read_to_end(silent), "");
    assert_eq!(read_to_end(slow), "");
    server.stop();
}

#[test]
fn timeouts_as_long_as_a_duration_goes_mean_never() {
    // Every timer set to Duration::MAX: arming them must not overflow the loop's clock
    // (this test runs with overflow checks on), and a connection goes on as usual.
    let mut timeouts = Timeouts::default();
    timeouts.handshake = Duration::MAX;
    timeouts.idle = Some(Duration::MAX);
    timeouts.heartbeat = Some(Heartbeat::new(Duration::MAX, Duration::MAX));
    timeouts.close = Duration::MAX;
    let server = Running::start(Limits::default(), timeouts);
    let mut client = Client::connect(server.addr);
    client.send(Message::text("still here"));
    assert_eq!(client.next_message(), Message::text("still here"));
    client.conn.close(CloseCode::NORMAL, "").unwrap();
    client.flush();
    assert!(matches!(client.next(), Some(Event::Close(_))));
    drop(client); // the server lingers for our FIN as long as its close timeout: forever
    server.stop(); // fails if a loop panicked
}

#[test]
fn heartbeat_closes_a_peer_that_never_pongs() {
    let mut timeouts = Timeouts::default();
    timeouts.heartbeat = Some(Heartbeat::new(
        Duration::from_millis(100),
        Duration::from_millis(100),
    ));
    let server = Running::start(Limits::default(), timeouts);
    let mut config = Config::default();
    config.auto_pong = false;
    let mut client = Client::connect(server.addr);
    client.conn = Connection::client(config, || [1, 2, 3, 4]);
    let id = server.next_open();
    assert!(matches!(client.next(), Some(Event::Ping(_))));
    match client.next() {
        Some(Event::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::GOING_AWAY),
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert!(client.next().is_none(), "then EOF");
    let (closed, why) = server.next_close();
    assert_eq!(closed, id);
    assert_eq!(
        why,
        format!("{:?}", CloseReason::Timeout(TimeoutKind::Heartbeat))
    );
    server.stop();
}

#[test]
fn graceful_shutdown_delivers_queued_messages_then_1001() {
    let server = Running::default();
    let mut clients: Vec<Client> = (0..5).map(|_| Client::connect(server.addr)).collect();
    let ids: Vec<ConnId> = (0..5).map(|_| server.next_open()).collect();
    for id in &ids {
        server
            .handle
            .send(*id, Message::text("last words"))
            .unwrap();
    }
    let Running { handle, thread, .. } = &server;
    handle.shutdown();
    let waiters: Vec<_> = clients
        .drain(..)
        .map(|mut client| {
            std::thread::spawn(move || {
                assert_eq!(client.next_message(), Message::text("last words"));
                match client.next() {
                    Some(Event::Close(Some(frame))) => {
                        assert_eq!(frame.code, CloseCode::GOING_AWAY)
                    }
                    other => panic!("expected close 1001, got {other:?}"),
                }
                assert!(client.next().is_none(), "then EOF");
            })
        })
        .collect();
    for w in waiters {
        w.join().expect("client saw its message and 1001");
    }
    assert!(thread.is_some());
    server.stop();
}

#[test]
fn max_connections_are_refused_with_503() {
    let mut limits = Limits::default();
    limits.max_connections = 2;
    let server = Running::start(limits, Timeouts::default());
    let a = Client::connect(server.addr);
    let b = Client::connect(server.addr);
    let mut c = raw(server.addr);
    let _ = c.write_all(&request_bytes(server.addr, "/"));
    let answer = read_to_end(c);
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    drop((a, b));
    server.stop();
}

#[test]
fn a_peer_that_sends_but_never_reads_is_paused_at_the_high_water_mark() {
    // 32 MiB of 16 KiB messages: far more than socket buffers and the mark together. The
    // queue never holds much more than the mark plus the echoes of one read (64 KiB).
    paused_at_the_high_water_mark(Config::default(), 16 * 1024, 2048, 64 * 1024);
}

#[test]
fn a_peer_that_sends_large_messages_but_never_reads_is_paused_between_them() {
    // Messages received in parts: reading goes on through a message that began under the
    // mark (its sender may be waiting to finish it before it reads), so the queue may take
    // that one message more, but the next one is not read until the queue drains.
    let mut config = Config::default();
    config.stream_binary_from = Some(64 * 1024);
    paused_at_the_high_water_mark(config, 1 << 20, 24, (1 << 20) + 64 * 1024);
}

/// A client writes `count` binary messages of `len` bytes and reads nothing until the server
/// reports its queue at the high-water mark; every echo must then arrive, and the queue must
/// never have held more than the mark plus `over` (and some frame headers).
fn paused_at_the_high_water_mark(config: Config, len: usize, count: usize, over: usize) {
    let mut limits = Limits::default();
    limits.write_high_water = 256 * 1024;
    let server = Running::start_with(config, limits.clone(), Timeouts::default(), 2);
    let mut client = Client::connect(server.addr);
    let message = Message::binary(vec![0x5a; len]);
    let mut frames = Connection::client(Config::default(), || [4, 3, 2, 1]);
    for _ in 0..count {
        frames.send(message.clone()).unwrap();
    }
    let wire = frames.poll_transmit().to_vec();
    let mut writer = client.stream.try_clone().unwrap();
    let writing = std::thread::spawn(move || writer.write_all(&wire).unwrap());
    // Not a byte is read until the server reports its queue at the mark.
    assert!(matches!(server.next_seen(), Seen::Open(_)));
    assert!(matches!(server.next_seen(), Seen::Backlog(_)));
    for i in 0..count {
        assert_eq!(client.next_message(), message, "message {i}");
    }
    writing.join().unwrap();
    let worst = server
        .seen
        .try_iter()
        .filter_map(|s| match s {
            Seen::Backlog(n) => Some(n),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    assert!(
        worst <= limits.write_high_water + over + 16 * 1024 + 64,
        "queue reached {worst}"
    );
    server.stop();
}

#[test]
fn a_slow_reader_hits_the_write_queue_cap_and_is_closed() {
    let mut limits = Limits::default();
    limits.write_high_water = 64 * 1024;
    limits.max_write_queue = 1 << 20;
    let mut timeouts = Timeouts::default();
    timeouts.close = Duration::from_millis(300);
    let server = Running::start(limits.clone(), timeouts);
    let client = Client::connect(server.addr);
    let id = server.next_open();
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0usize;
    // Far more than the cap and the socket buffers; stops as soon as the server gives up.
    let reason = loop {
        match server.seen.try_recv() {
            Ok(Seen::Close(closed, why)) => {
                assert_eq!(closed, id);
                break why;
            }
            Ok(_) => continue,
            Err(_) => {}
        }
        assert!(sent < 1 << 30, "1 GiB queued and the connection still open");
        match server.handle.send(id, Message::binary(&chunk[..])) {
            Ok(()) => sent += chunk.len(),
            Err(_) => std::thread::yield_now(),
        }
    };
    let queued = overflow_queued(&reason);
    assert!(queued <= limits.max_write_queue, "{reason}");
    drop(client);
    server.stop();
}

/// The bytes queued in a reported `CloseReason::Overflow { queued, .. }`.
fn overflow_queued(reason: &str) -> usize {
    assert!(reason.starts_with("Overflow"), "{reason}");
    reason
        .split("queued: ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("queued in the reason")
}

#[test]
fn pongs_count_against_the_write_queue_limit() {
    // A peer opens a message in parts (so reading is not paused) and then only pings, never
    // reading: the pongs must not pile up past `max_write_queue`.
    let mut config = Config::default();
    config.stream_binary_from = Some(1000);
    let mut limits = Limits::default();
    limits.write_high_water = 64 * 1024;
    limits.max_write_queue = 1 << 20;
    let server = Running::start_with(config, limits.clone(), Timeouts::default(), 1);
    let mut client = Client::connect(server.addr);
    let id = server.next_open();
    client.conn.send_part(&[1; 2000], false).unwrap();
    client.flush();
    let mut pinger = Connection::client(Config::default(), || [1, 2, 3, 4]);
    for _ in 0..500 {
        pinger.ping(&[b'p'; 125]).unwrap();
    }
    let pings = pinger.poll_transmit().to_vec();
    client
        .stream
        .set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut sent = 0usize;
    let reason = loop {
        if let Ok(Seen::Close(closed, why)) = server.seen.try_recv() {
            assert_eq!(closed, id);
            break why;
        }
        assert!(
            sent < 1 << 30,
            "1 GiB of pings and the connection still open"
        );
        if client.stream.write_all(&pings).is_ok() {
            sent += pings.len();
        }
    };
    let queued = overflow_queued(&reason);
    // Checked after every read: over the limit by at most the pongs of one read.
    assert!(queued <= limits.max_write_queue + 64 * 1024, "{reason}");
    drop(client);
    server.stop();
}

#[test]
fn a_large_message_is_echoed_while_it_is_still_arriving() {
    let mut config = Config::default();
    config.stream_binary_from = Some(64 << 10);
    let server = Running::start_with(config, Limits::default(), Timeouts::default(), 1);
    let mut client = Client::connect(server.addr);
    let id = server.next_open();
    let large: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 253) as u8).collect();
    let mut frames = Connection::client(Config::default(), || [1, 2, 3, 4]);
    frames.send_binary(&large).unwrap();
    let wire = frames.poll_transmit().to_vec();
    let (head, tail) = wire.split_at(300_000);
    client.stream.write_all(head).unwrap();

    // The echo starts before the rest of the message is sent: a binary frame that does not
    // end the message (FIN clear), of the bytes received so far.
    let mut echoed = Vec::new();
    let mut chunk = [0u8; 65536];
    while echoed.len() < 2 {
        let n = std::io::Read::read(&mut client.stream, &mut chunk).expect("the echo begins");
        assert!(n > 0, "EOF");
        echoed.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(echoed[0], 0x02, "a first part, not a whole message");

    // A message sent to the connection meanwhile waits for the end of the one in parts.
    server
        .handle
        .send(id, Message::text("after the large one"))
        .unwrap();
    client.conn.handle_bytes(&echoed).unwrap();
    client.stream.write_all(tail).unwrap();
    assert_eq!(client.next_message(), Message::binary(large));
    assert_eq!(client.next_message(), Message::text("after the large one"));
    server.stop();
}

#[test]
fn a_handler_that_does_not_take_parts_closes_with_1011() {
    #[derive(Clone)]
    struct Collector;
    impl rfc6455::server::Handler for Collector {
        fn message(&mut self, ctx: &mut rfc6455::server::Context<'_>, message: Message<'_>) {
            let _ = ctx.send(message);
        }
    }
    let mut config = Config::default();
    config.stream_binary_from = Some(1000);
    let server = rfc6455::server::Builder::new()
        .listen("127.0.0.1:0")
        .threads(1)
        .config(config)
        .shutdown_on_signals(false)
        .bind(Collector)
        .unwrap();
    let addr = server.local_addrs()[0];
    let handle = server.handle();
    let thread = std::thread::spawn(move || server.run());
    let mut client = Client::connect(addr);
    let mut frames = Connection::client(Config::default(), || [1, 2, 3, 4]);
    frames.send_binary(&[5u8; 5000]).unwrap();
    let wire = frames.poll_transmit().to_vec();
    client.stream.write_all(&wire[..100]).unwrap();
    match client.next() {
        Some(Event::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::INTERNAL_ERROR),
        other => panic!("expected a close with 1011, got {other:?}"),
    }
    handle.shutdown();
    thread.join().unwrap().unwrap();
}

#[test]
fn a_second_server_on_a_port_in_use_fails_to_bind() {
    // Listeners use SO_REUSEPORT (one per loop); that must not let another server of the
    // same user share the port and take part of its connections.
    let server = Running::default();
    #[derive(Clone)]
    struct Nothing;
    impl rfc6455::server::Handler for Nothing {
        fn message(&mut self, _: &mut rfc6455::server::Context<'_>, _: Message<'_>) {}
    }
    let second = rfc6455::server::Builder::new()
        .listen(server.addr.to_string())
        .threads(2)
        .shutdown_on_signals(false)
        .bind(Nothing);
    let Err(e) = second else {
        panic!("a second server bound {}", server.addr)
    };
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    assert!(e.to_string().contains("another server"), "{e}");
    server.stop();
}

#[test]
fn a_peer_that_half_closes_still_gets_what_it_was_answered() {
    use std::io::Read;
    use std::net::Shutdown;
    let server = Running::default();
    // The request and a close frame in one write, then SHUT_WR: the EOF often comes in the
    // same turn as the request, and the 101 and the close reply must still both go out.
    for _ in 0..20 {
        let mut stream = raw(server.addr);
        let mut frames = Connection::client(Config::default(), || [1, 2, 3, 4]);
        frames.close(CloseCode::NORMAL, "").unwrap();
        let mut wire = request_bytes(server.addr, "/");
        wire.extend_from_slice(frames.poll_transmit());
        stream.write_all(&wire).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).unwrap();
        assert!(
            got.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&got)
        );
        assert!(got.ends_with(&[0x88, 0x02, 0x03, 0xe8]), "{got:02x?}");
    }
    // 3 MB of messages, a close and SHUT_WR, read by a reader that keeps up: every echo
    // arrives, then the close reply.
    let mut client = Client::connect(server.addr);
    let message = Message::text("x".repeat(100_000));
    for _ in 0..30 {
        client.conn.send(message.clone()).unwrap();
    }
    client.conn.close(CloseCode::NORMAL, "").unwrap();
    let mut wire = Vec::new();
    while !client.conn.poll_transmit().is_empty() {
        wire.extend_from_slice(client.conn.poll_transmit());
        client
            .conn
            .consume_transmit(client.conn.poll_transmit().len());
    }
    let mut writer = client.stream.try_clone().unwrap();
    let writing = std::thread::spawn(move || {
        writer.write_all(&wire).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    for i in 0..30 {
        assert_eq!(client.next_message(), message, "echo {i}");
    }
    match client.next() {
        Some(Event::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::NORMAL),
        other => panic!("expected the close reply, got {other:?}"),
    }
    writing.join().unwrap();
    server.stop();
}
