use super::send::THROUGH_PIECES;
use super::*;

fn server() -> Connection {
    Connection::server(Config::default())
}

/// A masked client frame, as bytes.
fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut c = Connection::client(Config::default(), || [0xA1, 0xB2, 0xC3, 0xD4]);
    let op = OpCode::from_bits(opcode).unwrap();
    c.write_frame(op, fin, payload);
    c.poll_transmit().to_vec()
}

fn events(conn: &mut Connection) -> Vec<Event<'static>> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

#[test]
fn rfc_5_7_examples_server_receives() {
    // A single-frame masked text message.
    let mut s = server();
    s.handle_bytes(&[
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ])
    .unwrap();
    assert_eq!(events(&mut s), vec![Event::Message(Message::text("Hello"))]);
    // A masked ping; the pong goes back unmasked.
    s.handle_bytes(&[
        0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ])
    .unwrap();
    assert_eq!(events(&mut s), vec![Event::Ping(Cow::Borrowed(b"Hello"))]);
    assert_eq!(
        s.poll_transmit(),
        &[0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    );
}

#[test]
fn rfc_5_7_examples_client_receives() {
    let mut c = Connection::client(Config::default(), || [0x37, 0xfa, 0x21, 0x3d]);
    // Unmasked "Hello", then the same in two fragments.
    c.handle_bytes(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])
        .unwrap();
    c.handle_bytes(&[0x01, 0x03, 0x48, 0x65, 0x6c]).unwrap();
    c.handle_bytes(&[0x80, 0x02, 0x6c, 0x6f]).unwrap();
    // Unmasked pong; 256 and 64 KiB binary headers.
    c.handle_bytes(&[0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])
        .unwrap();
    let mut big = vec![0x82, 0x7E, 0x01, 0x00];
    big.extend(std::iter::repeat_n(7u8, 256));
    big.extend([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
    big.extend(std::iter::repeat_n(9u8, 65536));
    c.handle_bytes(&big).unwrap();
    assert_eq!(
        events(&mut c),
        vec![
            Event::Message(Message::text("Hello")),
            Event::Message(Message::text("Hello")),
            Event::Pong(Cow::Borrowed(b"Hello")),
            Event::Message(Message::binary(vec![7u8; 256])),
            Event::Message(Message::binary(vec![9u8; 65536])),
        ]
    );
    // And the client's own "Hello" is the masked example byte for byte.
    c.send_text("Hello").unwrap();
    assert_eq!(
        c.poll_transmit(),
        &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
    );
}

#[test]
fn control_frames_inside_a_fragmented_message() {
    let mut s = server();
    let mut wire = client_frame(false, 0x1, b"Hel");
    wire.extend(client_frame(true, 0x9, b"p"));
    wire.extend(client_frame(false, 0x0, b"l"));
    wire.extend(client_frame(true, 0xA, b""));
    wire.extend(client_frame(true, 0x0, b"o"));
    for byte in &wire {
        s.handle_bytes(std::slice::from_ref(byte)).unwrap();
    }
    assert_eq!(
        events(&mut s),
        vec![
            Event::Ping(Cow::Borrowed(b"p")),
            Event::Pong(Cow::Borrowed(b"")),
            Event::Message(Message::text("Hello")),
        ]
    );
}

#[test]
fn close_handshake_server_answers_and_closes_first() {
    let mut s = server();
    s.handle_bytes(&client_frame(true, 0x8, b"\x03\xe8bye"))
        .unwrap();
    assert_eq!(
        events(&mut s),
        vec![Event::Close(Some(CloseFrame {
            code: CloseCode::NORMAL,
            reason: "bye".into()
        }))]
    );
    assert_eq!(s.state(), State::Closed);
    assert_eq!(s.poll_transmit(), &[0x88, 0x02, 0x03, 0xe8]);
    assert!(!s.should_close_transport(), "the reply is not written yet");
    s.consume_transmit(4);
    assert!(s.should_close_transport());
    assert_eq!(s.send_text("late"), Err(Error::Closed));
}

#[test]
fn close_handshake_client_initiates_and_waits_for_the_server() {
    let mut c = Connection::client(Config::default(), || [0; 4]);
    c.close(CloseCode::GOING_AWAY, "done").unwrap();
    assert_eq!(c.state(), State::Closing);
    let n = c.poll_transmit().len();
    c.consume_transmit(n);
    // Messages the server sent before its close are still delivered.
    c.handle_bytes(&[0x81, 0x02, b'h', b'i', 0x88, 0x02, 0x03, 0xe9])
        .unwrap();
    assert_eq!(
        events(&mut c),
        vec![
            Event::Message(Message::text("hi")),
            Event::Close(Some(CloseFrame {
                code: CloseCode::GOING_AWAY,
                reason: "".into()
            }))
        ]
    );
    assert_eq!(c.state(), State::Closed);
    assert!(c.poll_transmit().is_empty(), "no second close frame");
    assert!(
        !c.should_close_transport(),
        "a client waits for the server to close TCP"
    );
    assert_eq!(c.handle_eof(), Ok(()));
}

#[test]
fn eof_before_the_close_handshake_is_a_lost_connection() {
    let mut s = server();
    s.handle_bytes(&client_frame(true, 0x2, b"abc")[..5])
        .unwrap();
    assert_eq!(s.handle_eof(), Err(Error::ConnectionLost));
    assert_eq!(s.state(), State::Closed);
}

#[test]
fn errors_queue_their_close_frame_and_stick() {
    let mut s = server();
    let err = s.handle_bytes(&client_frame(true, 0x0, b"x")).unwrap_err();
    assert_eq!(err, Error::Protocol(ProtocolError::UnexpectedContinuation));
    let out = s.poll_transmit();
    assert_eq!(&out[..4], &[0x88, out[1], 0x03, 0xea]);
    assert_eq!(s.handle_bytes(&client_frame(true, 0x1, b"fine")), Err(err));
    assert!(events(&mut s).is_empty());
}

#[test]
fn limits_are_checked_against_the_length_field() {
    let mut config = Config::default();
    config.max_frame_size = 100;
    config.max_message_size = 150;
    let mut s = Connection::server(config.clone());
    // Only the header of a 101-byte frame: refused before any payload arrives.
    let frame = client_frame(true, 0x2, &[0; 101]);
    let err = s.handle_bytes(&frame[..8]).unwrap_err();
    assert_eq!(
        err,
        Error::Protocol(ProtocolError::FrameTooLarge { len: 101, max: 100 })
    );
    let mut s = Connection::server(config);
    let mut wire = client_frame(false, 0x2, &[0; 100]);
    wire.extend(client_frame(true, 0x0, &[0; 51]));
    let err = s.handle_bytes(&wire).unwrap_err();
    assert!(err.to_string().contains("max_message_size"), "{err}");
    assert_eq!(&s.poll_transmit()[2..4], &[0x03, 0xf1]);
}

#[test]
fn invalid_utf8_fails_mid_frame() {
    let mut s = server();
    let frame = client_frame(
        true,
        0x1,
        b"valid then \xF4\x90 and more that never arrives",
    );
    // Only up to the impossible byte: the frame is far from complete.
    let err = s.handle_bytes(&frame[..6 + 13]).unwrap_err();
    assert_eq!(err, Error::Protocol(ProtocolError::InvalidUtf8));
    assert_eq!(&s.poll_transmit()[2..4], &[0x03, 0xef]);
}

#[test]
fn read_borrows_a_whole_message_from_the_input() {
    let mut s = server();
    let mut buf = client_frame(true, 0x2, b"zero copy");
    let start = buf.as_ptr() as usize;
    let mut input = &mut buf[..];
    let Some(Event::Message(Message::Binary(Cow::Borrowed(data)))) = s.read(&mut input).unwrap()
    else {
        panic!("expected a borrowed binary message");
    };
    assert_eq!(data, b"zero copy");
    assert_eq!(
        data.as_ptr() as usize,
        start + 6,
        "the payload is the input's own bytes"
    );
    assert!(s.read(&mut input).unwrap().is_none());
}

#[test]
fn large_messages_are_sent_in_frames_of_the_configured_size() {
    let mut config = Config::default();
    config.max_send_frame_size = 4;
    let mut s = Connection::server(config);
    s.send_binary(b"0123456789").unwrap();
    assert_eq!(
        s.poll_transmit(),
        b"\x02\x040123\x00\x044567\x80\x0289".as_slice()
    );
}

#[test]
fn usage_errors_change_nothing() {
    let mut s = server();
    assert_eq!(
        s.ping(&[0; 126]),
        Err(Error::Usage(UsageError::ControlPayloadTooLong(126)))
    );
    assert_eq!(
        s.close(CloseCode::NO_STATUS, ""),
        Err(Error::Usage(UsageError::UnsendableCloseCode(1005)))
    );
    assert!(s.poll_transmit().is_empty());
    assert_eq!(s.state(), State::Open);
}

#[test]
fn transmit_buffer_is_lent_and_taken_back_only_when_empty() {
    let mut s = server();
    let mut spare = Vec::with_capacity(4096);
    assert!(s.swap_transmit_buffer(&mut spare));
    assert_eq!(spare.capacity(), 0, "the connection's own buffer was empty");
    s.send_text("hi").unwrap();
    assert!(!s.swap_transmit_buffer(&mut spare), "bytes are pending");
    assert_eq!(s.poll_transmit(), b"\x81\x02hi");
    s.consume_transmit(4);
    assert!(s.swap_transmit_buffer(&mut spare));
    assert!(spare.capacity() >= 4096 && spare.is_empty());
    assert!(s.poll_transmit().is_empty());
}

/// Everything `conn` has to send, taken `step` bytes at a time through `poll_transmit`.
fn drain_in_steps(conn: &mut Connection, step: usize) -> Vec<u8> {
    let mut wire = Vec::new();
    loop {
        let piece = conn.poll_transmit();
        if piece.is_empty() {
            assert_eq!(conn.transmit_len(), 0);
            return wire;
        }
        let n = piece.len().min(step);
        wire.extend_from_slice(&piece[..n]);
        let before = conn.transmit_len();
        conn.consume_transmit(n);
        assert_eq!(conn.transmit_len(), before - n);
    }
}

/// Everything `conn` has to send, through `poll_transmit_vectored` with `slots` pieces.
fn drain_vectored(conn: &mut Connection, slots: usize) -> Vec<u8> {
    let mut wire = Vec::new();
    loop {
        let mut pieces = vec![std::io::IoSlice::new(&[]); slots];
        let n = conn.poll_transmit_vectored(&mut pieces);
        if n == 0 {
            assert_eq!(conn.transmit_len(), 0);
            return wire;
        }
        let before = wire.len();
        for piece in &pieces[..n] {
            assert!(!piece.is_empty(), "no empty pieces");
            wire.extend_from_slice(piece);
        }
        conn.consume_transmit(wire.len() - before);
    }
}

/// How [`owned_and_copied`] queues its big messages.
#[derive(Clone, Copy, Debug)]
enum Way {
    Copied,
    Owned,
    /// `send_through` with a transport that takes at most this many bytes per write.
    Through(usize),
}

/// The same sends through `send` (copying), `send_owned` and `send_through`, with writes
/// in between: every way puts the same bytes on the wire.
fn owned_and_copied(role: Role, drain: &dyn Fn(&mut Connection) -> Vec<u8>) {
    let make = || {
        let mut counter = 0u8;
        let masks = move || {
            counter = counter.wrapping_add(1);
            [counter, 0x5a, counter ^ 0xff, 3]
        };
        match role {
            Role::Server => server(),
            Role::Client => Connection::client(Config::default(), masks),
        }
    };
    let big = |len: usize, seed: u8| -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect()
    };
    let ways = [
        Way::Copied,
        Way::Owned,
        Way::Through(0),
        Way::Through(1),
        Way::Through(3),
        Way::Through(4097),
        Way::Through(20_000),
        Way::Through(usize::MAX),
    ];
    let mut wires = Vec::new();
    for way in ways {
        let mut conn = make();
        let wire = std::cell::RefCell::new(Vec::new());
        let send = |conn: &mut Connection, message: Message<'static>| match way {
            Way::Copied => conn.send(message).unwrap(),
            Way::Owned => conn.send_owned(message).unwrap(),
            Way::Through(budget) => {
                let message = match &message {
                    Message::Text(text) => Message::text(&text[..]),
                    Message::Binary(data) => Message::binary(&data[..]),
                };
                conn.send_through(message, |pieces| {
                    let mut room = budget;
                    for piece in pieces {
                        assert!(!piece.is_empty(), "no empty pieces");
                        let n = piece.len().min(room);
                        wire.borrow_mut().extend_from_slice(&piece[..n]);
                        room -= n;
                    }
                    Ok(budget - room)
                })
                .unwrap()
            }
        };
        let conn = &mut conn;
        conn.ping(b"p").unwrap();
        send(conn, Message::binary(big(OWNED_SEND_MIN, 3)));
        // Write part of the queue, ending inside the first payload.
        for _ in 0..2 {
            let n = conn.poll_transmit().len().min(1000);
            wire.borrow_mut()
                .extend_from_slice(&conn.poll_transmit()[..n]);
            conn.consume_transmit(n);
        }
        conn.send_text("small").unwrap();
        send(conn, Message::text("é".repeat(40_000)));
        send(conn, Message::binary(big(100_000, 7)));
        conn.pong(b"").unwrap();
        let rest = drain(conn);
        wire.borrow_mut().extend(rest);
        // Once empty, the queue is one buffer again.
        send(conn, Message::binary(big(20_000, 5)));
        let rest = drain(conn);
        wire.borrow_mut().extend(rest);
        wires.push((way, wire.into_inner()));
    }
    for (way, wire) in &wires[1..] {
        assert!(wire == &wires[0].1, "{role:?} {way:?}");
    }
    // And the peer reads every message back.
    let mut peer = match role {
        Role::Server => Connection::client(Config::default(), || [0; 4]),
        Role::Client => server(),
    };
    peer.handle_bytes(&wires[0].1).unwrap();
    let sizes: Vec<usize> = std::iter::from_fn(|| peer.poll_event())
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.len()),
            _ => None,
        })
        .collect();
    assert_eq!(sizes, [OWNED_SEND_MIN, 5, 80_000, 100_000, 20_000]);
}

#[test]
fn owned_sends_put_the_same_bytes_on_the_wire_as_copied_ones() {
    for role in [Role::Server, Role::Client] {
        for step in [1, 3, 4096, 65_536, usize::MAX] {
            owned_and_copied(role, &|c| drain_in_steps(c, step));
        }
        for slots in [1, 2, 3, 16] {
            owned_and_copied(role, &|c| drain_vectored(c, slots));
        }
    }
}

/// Offers `message` through a transport that takes `room` bytes; returns what it took
/// and how many times it was called.
fn through(conn: &mut Connection, message: Message<'_>, room: usize) -> (Vec<u8>, usize) {
    let (mut taken, mut calls) = (Vec::new(), 0);
    conn.send_through(message, |pieces| {
        calls += 1;
        for piece in pieces {
            taken.extend_from_slice(piece);
        }
        taken.truncate(room);
        Ok(taken.len())
    })
    .unwrap();
    (taken, calls)
}

#[test]
fn through_writes_a_borrowed_payload_from_where_it_lies() {
    let mut s = server();
    let payload = vec![9u8; OWNED_SEND_MIN];
    s.send_text("queued first").unwrap();
    let mut addresses = Vec::new();
    s.send_through(Message::binary(&payload[..]), |pieces| {
        addresses.extend(pieces.iter().map(|p| p.as_ptr()));
        Ok(pieces.iter().map(|p| p.len()).sum())
    })
    .unwrap();
    assert_eq!(addresses.len(), 3, "queued frame, header, payload");
    assert_eq!(addresses[2], payload.as_ptr(), "the payload was not copied");
    assert_eq!(s.transmit_len(), 0);

    // Not taken, or taken in part: the rest is queued, in order, after the first write.
    let (taken, _) = through(&mut s, Message::binary(&payload[..]), 0);
    assert!(taken.is_empty());
    assert_eq!(s.transmit_len(), 4 + OWNED_SEND_MIN);
    let (taken, _) = through(&mut s, Message::binary(&payload[..]), 10);
    assert_eq!(taken.len(), 10);
    assert_eq!(s.transmit_len(), 2 * (4 + OWNED_SEND_MIN) - 10);

    // A failed write is nothing written.
    let mut s = server();
    s.send_through(Message::binary(&payload[..]), |_| {
        Err(std::io::ErrorKind::BrokenPipe.into())
    })
    .unwrap();
    assert_eq!(s.transmit_len(), 4 + OWNED_SEND_MIN);

    // Not offered to the transport: small, owned, several frames, from a client,
    // compressed, closed.
    let mut config = Config::default();
    config.max_send_frame_size = 20_000;
    let mut s = Connection::server(config);
    let mut c = Connection::client(Config::default(), || [1, 2, 3, 4]);
    let small = [1u8; OWNED_SEND_MIN - 1];
    let large = [2u8; 20_001];
    for (client, message) in [
        (false, Message::binary(&small[..])),
        (false, Message::binary(payload.clone())),
        (false, Message::binary(&large[..])),
        (true, Message::binary(&payload[..])),
    ] {
        let conn = if client { &mut c } else { &mut s };
        let before = conn.transmit_len();
        let len = message.len();
        let (_, calls) = through(conn, message, usize::MAX);
        assert_eq!(calls, 0);
        assert!(conn.transmit_len() >= before + len, "queued instead");
    }
    #[cfg(feature = "deflate")]
    {
        let mut s = server();
        s.set_deflate(DeflateParams::default());
        let (_, calls) = through(&mut s, Message::binary(&payload[..]), usize::MAX);
        assert_eq!(calls, 0);
        assert!(s.transmit_len() < 1000, "compressed instead");
    }
    let mut s = server();
    s.close(CloseCode::NORMAL, "").unwrap();
    let refused = s.send_through(Message::binary(&payload[..]), |_| Ok(0));
    assert!(matches!(refused, Err(Error::Closed)));
}

#[test]
fn through_after_an_owned_payload_keeps_the_order_when_the_write_stops_inside_it() {
    let first: Vec<u8> = (0..20_000).map(|i| (i % 241) as u8).collect();
    let second: Vec<u8> = (0..30_000).map(|i| (i % 239) as u8).collect();
    let mut copied = server();
    copied.send_binary(&first).unwrap();
    copied.send_binary(&second).unwrap();
    let expected = drain_in_steps(&mut copied, usize::MAX);
    // The write ends in the owned payload's middle, at its end, and inside the header.
    for room in [10_000, 4 + 20_000, 4 + 20_000 + 2] {
        let mut s = server();
        s.send_owned(Message::binary(first.clone())).unwrap();
        let (mut wire, calls) = through(&mut s, Message::binary(&second[..]), room);
        assert_eq!(calls, 1);
        wire.extend(drain_vectored(&mut s, 3));
        assert!(wire == expected, "room {room}");
    }
}

#[test]
fn through_queues_behind_more_pieces_than_one_write_takes() {
    let mut s = server();
    let owned: Vec<Vec<u8>> = (0..THROUGH_PIECES)
        .map(|i| vec![i as u8; OWNED_SEND_MIN])
        .collect();
    for data in owned {
        s.send_owned(Message::binary(data)).unwrap();
    }
    let before = s.transmit_len();
    let payload = vec![7u8; OWNED_SEND_MIN];
    let (_, calls) = through(&mut s, Message::binary(&payload[..]), usize::MAX);
    assert_eq!(calls, 0, "it would have jumped the queue");
    assert_eq!(s.transmit_len(), before + 4 + OWNED_SEND_MIN);
    let wire = drain_vectored(&mut s, 3);
    assert_eq!(&wire[wire.len() - OWNED_SEND_MIN..], &payload[..]);
}

#[test]
fn owned_sends_queue_the_payload_apart_only_when_it_pays() {
    let mut s = server();
    let payload = vec![1u8; OWNED_SEND_MIN];
    let address = payload.as_ptr();
    s.send_owned(Message::binary(payload)).unwrap();
    {
        let mut pieces = [std::io::IoSlice::new(&[]); 4];
        assert_eq!(
            s.poll_transmit_vectored(&mut pieces),
            2,
            "header, then payload"
        );
        assert_eq!(pieces[1].as_ptr(), address, "the payload was not copied");
    }
    let mut spare = Vec::new();
    assert!(!s.swap_transmit_buffer(&mut spare), "bytes are pending");
    s.shrink_buffers();
    assert_eq!(
        s.transmit_len(),
        4 + OWNED_SEND_MIN,
        "shrinking keeps queued bytes"
    );
    s.consume_transmit(usize::MAX);
    assert!(s.swap_transmit_buffer(&mut spare));
    s.shrink_buffers();
    assert!(s.rare.is_none(), "nothing is kept once it is written");

    // Copied instead: too small, borrowed, more than one frame.
    let mut config = Config::default();
    config.max_send_frame_size = 50_000;
    let mut s = Connection::server(config);
    s.send_owned(Message::binary(vec![1u8; OWNED_SEND_MIN - 1]))
        .unwrap();
    s.send_owned(Message::binary(&[2u8; 20_000][..])).unwrap();
    s.send_owned(Message::binary(vec![3u8; 50_001])).unwrap();
    let mut pieces = [std::io::IoSlice::new(&[]); 4];
    assert_eq!(s.poll_transmit_vectored(&mut pieces), 1);
    assert_eq!(s.transmit_len(), s.poll_transmit().len());

    // Compressed: deflate makes a new buffer anyway.
    #[cfg(feature = "deflate")]
    {
        let mut s = server();
        s.set_deflate(DeflateParams::default());
        s.send_owned(Message::binary(vec![4u8; OWNED_SEND_MIN]))
            .unwrap();
        assert_eq!(s.poll_transmit_vectored(&mut pieces), 1);
        assert!(s.transmit_len() < 1000, "compressed");
    }

    // Closed: refused like send.
    let mut s = server();
    s.close(CloseCode::NORMAL, "").unwrap();
    let refused = s.send_owned(Message::binary(vec![0u8; OWNED_SEND_MIN]));
    assert!(matches!(refused, Err(Error::Closed)));
}

#[test]
fn auto_pong_can_be_switched_off() {
    let mut config = Config::default();
    config.auto_pong = false;
    let mut s = Connection::server(config);
    s.handle_bytes(&client_frame(true, 0x9, b"beat")).unwrap();
    assert_eq!(events(&mut s), vec![Event::Ping(Cow::Borrowed(b"beat"))]);
    assert!(s.poll_transmit().is_empty());
}
