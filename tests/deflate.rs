//! permessage-deflate through `Connection`: RFC 7692 examples on the wire, RSV1 rules,
//! client ⇄ server round trips in arbitrary splits, bombs, bad data.
#![cfg(feature = "deflate")]
// Config and DeflateParams are #[non_exhaustive]: default-then-assign is how users build them.
#![allow(clippy::field_reassign_with_default)]

use rfc6455::proto::deflate::{DeflateConfig, DeflateParams};
use rfc6455::{CloseCode, Config, Connection, Error, Event, Message, ProtocolError};
use std::borrow::Cow;

fn params(snct: bool, cnct: bool, smwb: u8, cmwb: u8, threshold: usize) -> DeflateParams {
    let mut p = DeflateParams::default();
    p.server_no_context_takeover = snct;
    p.client_no_context_takeover = cnct;
    p.server_max_window_bits = smwb;
    p.client_max_window_bits = cmwb;
    p.compression_threshold = threshold;
    p
}

fn pair(config: Config, p: DeflateParams) -> (Connection, Connection) {
    let mut n = 0u32;
    let mut client = Connection::client(config.clone(), move || {
        n = n.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        n.to_le_bytes()
    });
    let mut server = Connection::server(config);
    client.set_deflate(p);
    server.set_deflate(p);
    (client, server)
}

fn drain(conn: &mut Connection) -> Vec<u8> {
    let out = conn.poll_transmit().to_vec();
    conn.consume_transmit(out.len());
    out
}

fn events(conn: &mut Connection) -> Vec<Event<'static>> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

/// Close code of the close frame at the start of an unmasked server transmit.
fn close_code_sent(server: &Connection) -> u16 {
    let out = server.poll_transmit();
    assert_eq!(out[0], 0x88, "a close frame: {out:02x?}");
    u16::from_be_bytes([out[2], out[3]])
}

/// A small deterministic generator, so failures repeat.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn sample_messages(rng: &mut Rng) -> Vec<Message<'static>> {
    let words = [
        "alpha ",
        "beta ",
        "γάμμα ",
        "δέλτα ",
        "{\"id\":42,\"ok\":true} ",
        "€ ",
        "\n",
    ];
    let mut messages = vec![Message::text(""), Message::binary(vec![])];
    for i in 0..24 {
        let len = [3, 60, 64, 65, 200, 1000, 5000, 30_000][i % 8];
        let mut text = String::new();
        while text.len() < len {
            text.push_str(words[rng.below(words.len())]);
        }
        if i % 3 == 0 {
            let mut noise: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            noise.extend_from_slice(text.as_bytes());
            messages.push(Message::binary(noise));
        } else {
            messages.push(Message::text(text));
        }
    }
    messages
}

/// Feeds `wire` in random pieces (sometimes a byte at a time).
fn feed(conn: &mut Connection, wire: &[u8], rng: &mut Rng) -> Result<Vec<Event<'static>>, Error> {
    let mut at = 0;
    while at < wire.len() {
        let n = match rng.below(4) {
            0 => 1,
            1 => 1 + rng.below(16),
            _ => 1 + rng.below(4096),
        }
        .min(wire.len() - at);
        conn.handle_bytes(&wire[at..at + n])?;
        at += n;
    }
    Ok(events(conn))
}

#[test]
fn round_trips_both_ways_in_arbitrary_splits_for_every_takeover_combination() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (snct, cnct) in [(false, false), (true, false), (false, true), (true, true)] {
        for (smwb, cmwb) in [(15, 15), (8, 9), (10, 12)] {
            for frame_size in [usize::MAX, 1000] {
                let mut config = Config::default();
                config.max_send_frame_size = frame_size;
                let (mut client, mut server) = pair(config, params(snct, cnct, smwb, cmwb, 64));
                let messages = sample_messages(&mut rng);
                let total: usize = messages.iter().map(Message::len).sum();
                for m in &messages {
                    client.send(m.clone()).unwrap();
                }
                let wire = drain(&mut client);
                assert!(
                    wire.len() < total,
                    "client→server was compressed: {} of {total}",
                    wire.len()
                );
                let got = feed(&mut server, &wire, &mut rng).unwrap();
                let expected: Vec<Event> = messages.iter().cloned().map(Event::Message).collect();
                assert_eq!(
                    got, expected,
                    "client→server snct={snct} cnct={cnct} bits={smwb}/{cmwb}"
                );

                for m in &messages {
                    server.send(m.clone()).unwrap();
                }
                let wire = drain(&mut server);
                assert!(wire.len() < total, "server→client was compressed");
                let got = feed(&mut client, &wire, &mut rng).unwrap();
                assert_eq!(
                    got, expected,
                    "server→client snct={snct} cnct={cnct} bits={smwb}/{cmwb}"
                );
                // Idle: shrinking must not lose any context a later message needs.
                server.shrink_buffers();
                client.shrink_buffers();
                client.send(messages[5].clone()).unwrap();
                let wire = drain(&mut client);
                let got = feed(&mut server, &wire, &mut rng).unwrap();
                assert_eq!(got, vec![Event::Message(messages[5].clone())]);
            }
        }
    }
}

#[test]
fn negotiated_pair_talks() {
    let config = DeflateConfig::default();
    let (response, server_params) = config.server_negotiate(&[config.client_offer()]).unwrap();
    let client_params = config.client_accept_response(&[response]).unwrap().unwrap();
    let mut client = Connection::client(Config::default(), || [7; 4]);
    let mut server = Connection::server(Config::default());
    client.set_deflate(client_params);
    server.set_deflate(server_params);
    assert_eq!(server.deflate_params(), Some(&server_params));
    let text = "the same words again and again ".repeat(100);
    client.send_text(&text).unwrap();
    let wire = drain(&mut client);
    assert_eq!(wire[0], 0xc1, "FIN + RSV1 + text");
    assert!(wire.len() < 200);
    server.handle_bytes(&wire).unwrap();
    assert_eq!(
        events(&mut server),
        vec![Event::Message(Message::text(text))]
    );
}

/// A complete request head offering `extensions` (none when empty).
fn request_offering(extensions: &str) -> rfc6455::proto::Request {
    use rfc6455::proto::{HandshakeLimits, Request, Status};
    let mut head = String::from(
        "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n",
    );
    if !extensions.is_empty() {
        head.push_str(&format!("Sec-WebSocket-Extensions: {extensions}\r\n"));
    }
    head.push_str("\r\n");
    match Request::parse(head.as_bytes(), &HandshakeLimits::default()).unwrap() {
        Status::Complete(request, _) => request,
        Status::Partial => unreachable!("the head is complete"),
    }
}

/// A client handshake (fixed key) and the server's 101 answering it with `extensions`.
fn response_with(
    session: &rfc6455::proto::ClientSession,
    extensions: &str,
) -> rfc6455::proto::Response {
    use rfc6455::proto::{accept_key, ClientHandshake, ClientOptions, Status, Url};
    let url: Url = "ws://example.com/chat".parse().unwrap();
    let options = session.offer(&ClientOptions::default());
    let handshake = ClientHandshake::new(&url, &options, &mut || [7u8; 16]).unwrap();
    let mut reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        accept_key(handshake.key().as_bytes())
    );
    if !extensions.is_empty() {
        reply.push_str(&format!("Sec-WebSocket-Extensions: {extensions}\r\n"));
    }
    reply.push_str("\r\n");
    match handshake.parse_response(reply.as_bytes()).unwrap() {
        Status::Complete(response, _) => response,
        Status::Partial => unreachable!("the head is complete"),
    }
}

#[test]
fn server_session_answers_as_the_negotiation_does_and_configures_the_connection() {
    use rfc6455::proto::ServerSession;
    let config = DeflateConfig::default();
    let offer = "permessage-deflate; client_max_window_bits";
    let request = request_offering(offer);
    let session = ServerSession::new().deflate(config.clone());
    let (conn, response) = session.accept(&request, request.accept(), Config::default());

    // The same bytes and parameters as negotiating by hand.
    let (answer, params) = config.server_negotiate(request.extensions()).unwrap();
    let by_hand = request.accept().extensions(&[answer]).unwrap().to_bytes();
    assert_eq!(response, by_hand);
    assert_eq!(conn.deflate_params(), Some(&params));

    // An existing connection is configured the same way.
    let mut existing = Connection::server(Config::default());
    let accept = session.negotiate(&request, request.accept(), &mut existing);
    assert_eq!(accept.to_bytes(), by_hand);
    assert_eq!(existing.deflate_params(), Some(&params));
}

#[test]
fn server_session_without_an_acceptable_offer_answers_plain() {
    use rfc6455::proto::ServerSession;
    let plain_answer = |request: &rfc6455::proto::Request| request.accept().to_bytes();
    for (session, offer) in [
        // No offer.
        (ServerSession::new().deflate(DeflateConfig::default()), ""),
        // An offer the RFC says to decline (unknown parameter).
        (
            ServerSession::new().deflate(DeflateConfig::default()),
            "permessage-deflate; x=1",
        ),
        // An offer, and a session that negotiates nothing.
        (ServerSession::new(), "permessage-deflate"),
    ] {
        let request = request_offering(offer);
        let (conn, response) = session.accept(&request, request.accept(), Config::default());
        assert_eq!(response, plain_answer(&request), "{offer:?}");
        assert_eq!(conn.deflate_params(), None, "{offer:?}");
    }
}

#[test]
fn client_session_offers_uses_the_answer_and_refuses_a_bad_one() {
    use rfc6455::proto::{ClientOptions, ClientSession, SessionError};
    let config = DeflateConfig::default();
    let session = ClientSession::new().deflate(config.clone());
    let offered = session.offer(&ClientOptions::default());
    assert_eq!(offered.extensions, vec![config.client_offer()]);
    assert!(ClientSession::new()
        .offer(&ClientOptions::default())
        .extensions
        .is_empty());

    let answer = "permessage-deflate; server_no_context_takeover";
    let conn = session
        .connection(&response_with(&session, answer), Config::default(), || {
            [1; 4]
        })
        .unwrap();
    let expected = config
        .client_accept_response(response_with(&session, answer).extensions())
        .unwrap();
    assert_eq!(conn.deflate_params(), expected.as_ref());
    assert!(expected.is_some());

    // The server did not take it: no compression, no error.
    let conn = session
        .connection(&response_with(&session, ""), Config::default(), || [1; 4])
        .unwrap();
    assert_eq!(conn.deflate_params(), None);

    // An answer RFC 7692 forbids: the client must fail the connection.
    let bad = response_with(
        &session,
        "permessage-deflate; server_no_context_takeover; x=1",
    );
    let err = session
        .connection(&bad, Config::default(), || [1; 4])
        .unwrap_err();
    assert!(matches!(err, SessionError::Deflate(_)), "{err:?}");
}

#[test]
fn rfc_7692_7_2_3_1_fragmented_hello_on_the_wire() {
    let mut client = Connection::client(Config::default(), || [0; 4]);
    client.set_deflate(DeflateParams::default());
    // RSV1 only on the first frame.
    client
        .handle_bytes(&[0x41, 0x03, 0xf2, 0x48, 0xcd])
        .unwrap();
    assert_eq!(client.poll_event(), None);
    client
        .handle_bytes(&[0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00])
        .unwrap();
    assert_eq!(
        client.poll_event(),
        Some(Event::Message(Message::text("Hello")))
    );
    // §7.2.3.2 with context takeover, then a ping in between does not disturb anything.
    client
        .handle_bytes(&[0x89, 0x00, 0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00])
        .unwrap();
    assert_eq!(
        events(&mut client),
        vec![
            Event::Ping(Cow::Borrowed(b"")),
            Event::Message(Message::text("Hello"))
        ]
    );
    // Our own "Hello", with threshold 0, goes out exactly as §7.2.3.1 writes it (masked).
    let mut server = Connection::server(Config::default());
    server.set_deflate(params(false, false, 15, 15, 0));
    server.send_text("Hello").unwrap();
    assert_eq!(
        server.poll_transmit(),
        &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
    );
}

#[test]
fn rsv1_is_allowed_on_the_first_data_frame_only() {
    let frame = |bytes: &[u8]| {
        let mut s = Connection::server(Config::default());
        s.set_deflate(DeflateParams::default());
        let err = s.handle_bytes(bytes).unwrap_err();
        (err, close_code_sent(&s))
    };
    // RSV1 on a continuation frame (after a compressed first frame).
    let (err, code) = frame(&[0x41, 0x80, 0, 0, 0, 0, 0xc0, 0x80, 0, 0, 0, 0]);
    assert!(
        matches!(err, Error::Protocol(ProtocolError::ReservedBits(_))),
        "{err}"
    );
    assert_eq!(code, 1002);
    // RSV1 on a ping.
    let (_, code) = frame(&[0xc9, 0x80, 0, 0, 0, 0]);
    assert_eq!(code, 1002);
    // RSV2 stays reserved.
    let (_, code) = frame(&[0xa1, 0x80, 0, 0, 0, 0]);
    assert_eq!(code, 1002);
    // Without the extension RSV1 is reserved too.
    let mut s = Connection::server(Config::default());
    assert!(s.handle_bytes(&[0xc1, 0x80, 0, 0, 0, 0]).is_err());
    assert_eq!(close_code_sent(&s), 1002);
}

#[test]
fn control_frames_and_small_messages_are_never_compressed() {
    let mut s = Connection::server(Config::default());
    s.set_deflate(params(false, false, 15, 15, 64));
    s.ping(&[b'p'; 100]).unwrap();
    s.send_text(&"x".repeat(63)).unwrap();
    s.send_text(&"x".repeat(64)).unwrap();
    s.close(CloseCode::NORMAL, &"bye ".repeat(30)).unwrap();
    let out = drain(&mut s);
    assert_eq!(out[0], 0x89);
    let second = 2 + 100;
    assert_eq!(
        out[second], 0x81,
        "63 bytes: under the threshold, RSV1 clear"
    );
    let third = second + 2 + 63;
    assert_eq!(out[third], 0xc1, "64 bytes: compressed");
    let fourth = third + 2 + out[third + 1] as usize;
    assert_eq!(out[fourth], 0x88);
}

#[test]
fn compressed_messages_split_into_frames_carry_rsv1_on_the_first_only() {
    let mut config = Config::default();
    config.max_send_frame_size = 16;
    let mut s = Connection::server(config);
    s.set_deflate(params(false, false, 15, 15, 0));
    let mut rng = Rng(7);
    let text: String = (0..400)
        .map(|_| ["ab", "cd", "ef", "λ"][rng.below(4)])
        .collect();
    s.send_text(&text).unwrap();
    let out = drain(&mut s);
    let mut at = 0;
    let mut first = true;
    while at < out.len() {
        let expected = if first { 0x41 } else { 0x00 };
        assert_eq!(out[at] & 0x7f, expected, "frame at {at}");
        first = false;
        at += 2 + (out[at + 1] & 0x7f) as usize;
    }
    let mut c = Connection::client(Config::default(), || [0; 4]);
    c.set_deflate(DeflateParams::default());
    c.handle_bytes(&out).unwrap();
    assert_eq!(events(&mut c), vec![Event::Message(Message::text(text))]);
}

/// A compressed message of `n` zero bytes, as a client would send it (masked, one frame).
fn compressed_zeros(n: usize) -> Vec<u8> {
    let mut c = Connection::client(Config::default(), || [0x12, 0x34, 0x56, 0x78]);
    c.set_deflate(params(false, false, 15, 15, 0));
    c.send_binary(&vec![0u8; n]).unwrap();
    drain(&mut c)
}

#[test]
fn a_deflate_bomb_fails_with_1009_without_inflating_it() {
    // 16 MiB of zeros is ~16 KiB on the wire; the limit is 1 MiB.
    let wire = compressed_zeros(16 << 20);
    assert!(wire.len() < 20_000, "{} bytes", wire.len());
    let mut config = Config::default();
    config.max_message_size = 1 << 20;
    let mut s = Connection::server(config);
    s.set_deflate(DeflateParams::default());
    let err = s.handle_bytes(&wire).unwrap_err();
    assert!(
        matches!(err, Error::Protocol(ProtocolError::MessageTooLarge { max: 1048576, len }) if len <= (1 << 20) + 4096),
        "{err}"
    );
    assert_eq!(close_code_sent(&s), 1009);
    // And it fails as soon as the limit is crossed, not at the end of the frame: the first
    // 2 KiB of compressed input are already enough.
    let mut s = Connection::server({
        let mut c = Config::default();
        c.max_message_size = 1 << 20;
        c
    });
    s.set_deflate(DeflateParams::default());
    assert!(s.handle_bytes(&wire[..2048]).is_err());
}

#[test]
fn a_message_exactly_at_the_limit_is_fine() {
    let mut config = Config::default();
    config.max_message_size = 100_000;
    let mut s = Connection::server(config);
    s.set_deflate(DeflateParams::default());
    s.handle_bytes(&compressed_zeros(100_000)).unwrap();
    assert_eq!(
        events(&mut s),
        vec![Event::Message(Message::binary(vec![0u8; 100_000]))]
    );
    s.handle_bytes(&compressed_zeros(100_001)).unwrap_err();
}

#[test]
fn invalid_utf8_inside_compressed_text_fails_early_with_1007() {
    let mut c = Connection::client(Config::default(), || [1, 2, 3, 4]);
    c.set_deflate(params(false, false, 15, 15, 0));
    // Valid text, then an impossible sequence, then 1 MiB more: send it as binary so the
    // client does not object, then flip the opcode to text.
    let mut payload = "ok ".repeat(1000).into_bytes();
    payload.extend_from_slice(b"\xF4\x90\x80\x80");
    payload.extend(std::iter::repeat_n(b'z', 1 << 20));
    c.send_binary(&payload).unwrap();
    let mut wire = drain(&mut c);
    wire[0] = (wire[0] & 0xf0) | 0x1;
    let mut s = Connection::server(Config::default());
    s.set_deflate(DeflateParams::default());
    // The bad bytes are inside the first KiB of the compressed data.
    let err = s.handle_bytes(&wire[..1024.min(wire.len())]).unwrap_err();
    assert_eq!(err, Error::Protocol(ProtocolError::InvalidUtf8));
    assert_eq!(close_code_sent(&s), 1007);
}

#[test]
fn corrupt_compressed_data_fails_with_1007() {
    let mut s = Connection::server(Config::default());
    s.set_deflate(DeflateParams::default());
    // Masked with a zero key: payload 0xff 0xff is a block of reserved type 11.
    let err = s
        .handle_bytes(&[0xc2, 0x82, 0, 0, 0, 0, 0xff, 0xff])
        .unwrap_err();
    assert_eq!(err, Error::Protocol(ProtocolError::InvalidCompressedData));
    assert_eq!(close_code_sent(&s), 1007);
}

#[test]
fn uncompressed_messages_keep_the_zero_copy_path() {
    let mut c = Connection::client(Config::default(), || [9, 9, 9, 9]);
    c.set_deflate(DeflateParams::default());
    c.send_binary(b"tiny").unwrap(); // under the threshold
    let mut buf = drain(&mut c);
    let mut s = Connection::server(Config::default());
    s.set_deflate(DeflateParams::default());
    let mut input = &mut buf[..];
    match s.read(&mut input).unwrap() {
        Some(Event::Message(Message::Binary(Cow::Borrowed(data)))) => assert_eq!(data, b"tiny"),
        other => panic!("expected a borrowed message, got {other:?}"),
    }
}

#[test]
fn a_shared_frame_is_compressed_once_for_every_connection_that_compresses_messages_alone() {
    use rfc6455::SharedFrame;
    let text: String = (0..40_000)
        .map(|i| char::from(b'a' + (i % 7) as u8))
        .collect();
    let big = Message::text(text.clone());
    let small = Message::text("tiny");
    // (server_no_context_takeover, server window bits, compressed on the wire?)
    let cases = [(true, 15, true), (false, 15, false), (true, 12, false)];
    let shared = SharedFrame::new(&big);
    let mut wires = Vec::new();
    for (snct, bits, compressed) in cases {
        for (message, frame) in [(&big, &shared), (&small, &SharedFrame::new(&small))] {
            let (mut client, mut server) =
                pair(Config::default(), params(snct, false, bits, 15, 64));
            server.send_shared(frame).unwrap();
            let wire = drain(&mut server);
            let rsv1 = wire[0] & 0x40 != 0;
            let expect_compressed = compressed && message.len() >= 64;
            assert_eq!(
                rsv1,
                expect_compressed,
                "snct {snct} bits {bits} len {}",
                message.len()
            );
            if expect_compressed {
                assert!(wire.len() < message.len() / 10, "{} bytes", wire.len());
                wires.push(wire.clone());
            }
            // Whatever was sent, the client reads the message back.
            client.handle_bytes(&wire).unwrap();
            assert_eq!(events(&mut client), [Event::Message(message.clone())]);
        }
    }
    // Another connection that takes it compressed gets the very same bytes (compressed once).
    let (_, mut other) = pair(Config::default(), params(true, true, 15, 15, 64));
    other.send_shared(&shared).unwrap();
    assert_eq!(drain(&mut other), wires[0]);
}
