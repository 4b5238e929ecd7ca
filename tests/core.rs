//! The sans-IO core end to end: bad inputs and the close code each must produce, any message
//! sequence surviving any split of the byte stream, and an in-memory client⇄server pair.

use proptest::prelude::*;
use rfc6455::proto::{FrameHeader, OpCode, Status};
use rfc6455::{
    CloseCode, CloseFrame, Config, Connection, Error, Event, Message, ProtocolError, Role, State,
};
use std::borrow::Cow;

const KEY: [u8; 4] = [0x5a, 0x17, 0xc3, 0x88];

/// One raw frame: `b0` is the first byte (FIN, RSV, opcode); masked with `KEY` when `masked`.
fn raw(b0: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![b0];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend((n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend((n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend(KEY);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
    } else {
        out.extend(payload);
    }
    out
}

/// A frame as a client sends it (masked).
fn c(b0: u8, payload: &[u8]) -> Vec<u8> {
    raw(b0, true, payload)
}

fn cat(frames: &[Vec<u8>]) -> Vec<u8> {
    frames.concat()
}

fn small_limits() -> Config {
    let mut config = Config::default();
    config.max_frame_size = 1000;
    config.max_message_size = 1500;
    config
}

/// The close code in the first frame of `wire` (which must be an unmasked close frame).
fn close_code_sent(wire: &[u8]) -> Option<u16> {
    let Ok(Status::Complete(header, n)) = FrameHeader::parse(wire) else {
        return None;
    };
    if header.opcode != OpCode::Close || header.mask.is_some() || wire.len() < n + 2 {
        return None;
    }
    Some(u16::from_be_bytes([wire[n], wire[n + 1]]))
}

#[test]
fn bad_input_table_each_fails_with_its_close_code() {
    let server = Role::Server;
    let client = Role::Client;
    let table: Vec<(&str, Role, Vec<u8>, ProtocolError, u16)> = vec![
        (
            "unmasked frame to a server",
            server,
            raw(0x81, false, b"hi"),
            ProtocolError::UnmaskedFrame,
            1002,
        ),
        (
            "masked frame to a client",
            client,
            raw(0x81, true, b"hi"),
            ProtocolError::MaskedFrame,
            1002,
        ),
        (
            "RSV1 without an extension",
            server,
            c(0xC1, b"hi"),
            ProtocolError::ReservedBits(4),
            1002,
        ),
        (
            "RSV2",
            server,
            c(0xA2, b"hi"),
            ProtocolError::ReservedBits(2),
            1002,
        ),
        (
            "RSV3 on a ping",
            server,
            c(0x99, b""),
            ProtocolError::ReservedBits(1),
            1002,
        ),
        (
            "reserved data opcode 3",
            server,
            c(0x83, b""),
            ProtocolError::ReservedOpcode(3),
            1002,
        ),
        (
            "reserved control opcode B",
            server,
            c(0x8B, b""),
            ProtocolError::ReservedOpcode(0xB),
            1002,
        ),
        (
            "fragmented ping",
            server,
            c(0x09, b"x"),
            ProtocolError::FragmentedControlFrame,
            1002,
        ),
        (
            "ping of 126 bytes",
            server,
            c(0x89, &[0; 126]),
            ProtocolError::ControlFrameTooLong,
            1002,
        ),
        (
            "64-bit length with the top bit",
            server,
            vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4],
            ProtocolError::InvalidLength,
            1002,
        ),
        (
            "continuation without a start",
            server,
            c(0x80, b"x"),
            ProtocolError::UnexpectedContinuation,
            1002,
        ),
        (
            "new message inside a fragmented one",
            server,
            cat(&[c(0x01, b"a"), c(0x81, b"b")]),
            ProtocolError::ExpectedContinuation,
            1002,
        ),
        (
            "frame over max_frame_size",
            server,
            c(0x82, &[0; 1001]),
            ProtocolError::FrameTooLarge {
                len: 1001,
                max: 1000,
            },
            1009,
        ),
        (
            "message over max_message_size",
            server,
            cat(&[c(0x02, &[0; 1000]), c(0x80, &[0; 501])]),
            ProtocolError::MessageTooLarge {
                len: 1501,
                max: 1500,
            },
            1009,
        ),
        (
            "invalid UTF-8 in one frame",
            server,
            c(0x81, b"\xce\xba\xff"),
            ProtocolError::InvalidUtf8,
            1007,
        ),
        (
            "invalid UTF-8 across fragments",
            server,
            cat(&[c(0x01, b"\xce"), c(0x80, b"\x41")]),
            ProtocolError::InvalidUtf8,
            1007,
        ),
        (
            "text ending inside a code point",
            server,
            c(0x81, b"ok\xe2\x82"),
            ProtocolError::InvalidUtf8,
            1007,
        ),
        (
            "close with 1 byte",
            server,
            c(0x88, b"\x03"),
            ProtocolError::InvalidClosePayload,
            1002,
        ),
        (
            "close code 1005",
            server,
            c(0x88, b"\x03\xed"),
            ProtocolError::InvalidCloseCode(1005),
            1002,
        ),
        (
            "close code 1006",
            server,
            c(0x88, b"\x03\xee"),
            ProtocolError::InvalidCloseCode(1006),
            1002,
        ),
        (
            "close code 999",
            server,
            c(0x88, b"\x03\xe7"),
            ProtocolError::InvalidCloseCode(999),
            1002,
        ),
        (
            "close code 1016",
            server,
            c(0x88, b"\x03\xf8"),
            ProtocolError::InvalidCloseCode(1016),
            1002,
        ),
        (
            "close code 2999",
            server,
            c(0x88, b"\x0b\xb7"),
            ProtocolError::InvalidCloseCode(2999),
            1002,
        ),
        (
            "close code 5000",
            server,
            c(0x88, b"\x13\x88"),
            ProtocolError::InvalidCloseCode(5000),
            1002,
        ),
        (
            "close reason not UTF-8",
            server,
            c(0x88, b"\x03\xe8\xff"),
            ProtocolError::InvalidUtf8,
            1007,
        ),
        (
            "client: close code 1015",
            client,
            raw(0x88, false, b"\x03\xf7"),
            ProtocolError::InvalidCloseCode(1015),
            1002,
        ),
    ];
    for (name, role, wire, expected, code) in table {
        assert_eq!(
            expected.close_code(),
            CloseCode(code),
            "{name}: code mapping"
        );
        // Whole, and one byte at a time: the same verdict.
        for step in [wire.len(), 1] {
            let mut conn = match role {
                Role::Server => Connection::server(small_limits()),
                Role::Client => Connection::client(small_limits(), || [9, 9, 9, 9]),
            };
            let mut result = Ok(());
            for piece in wire.chunks(step.max(1)) {
                result = conn.handle_bytes(piece);
                if result.is_err() {
                    break;
                }
            }
            assert_eq!(
                result,
                Err(Error::Protocol(expected.clone())),
                "{name} (step {step})"
            );
            assert_eq!(conn.state(), State::Closed, "{name}");
            if role == Role::Server {
                assert_eq!(
                    close_code_sent(conn.poll_transmit()),
                    Some(code),
                    "{name}: close frame queued"
                );
            } else {
                assert!(
                    !conn.poll_transmit().is_empty(),
                    "{name}: close frame queued"
                );
            }
            // Sticky: the same error again, even for good input.
            assert_eq!(
                conn.handle_bytes(&c(0x81, b"ok")),
                Err(Error::Protocol(expected.clone())),
                "{name}"
            );
            assert!(conn.should_close_transport() || !conn.poll_transmit().is_empty());
        }
    }
}

#[test]
fn a_code_point_split_across_frames_is_fine() {
    let mut s = Connection::server(Config::default());
    // "€" = E2 82 AC, split over three frames.
    let wire = cat(&[c(0x01, b"\xe2"), c(0x00, b"\x82"), c(0x80, b"\xac")]);
    s.handle_bytes(&wire).unwrap();
    assert_eq!(s.poll_event(), Some(Event::Message(Message::text("€"))));
}

#[test]
fn invalid_utf8_fails_before_the_frame_ends() {
    // Autobahn 6.4.x: the bad byte arrives, the rest of the frame never does.
    let mut s = Connection::server(Config::default());
    let frame = c(0x81, "κόσμε\u{1}\u{1}".as_bytes());
    let mut poisoned = frame.clone();
    let bad_at = 6 + 4; // header, then the 4th payload byte
    poisoned[bad_at] = 0xff ^ KEY[(bad_at - 6) % 4];
    assert!(s.handle_bytes(&poisoned[..bad_at]).is_ok());
    assert_eq!(
        s.handle_bytes(&poisoned[bad_at..=bad_at]),
        Err(Error::Protocol(ProtocolError::InvalidUtf8))
    );
}

#[test]
fn events_before_an_error_are_kept_and_answered_first() {
    let mut s = Connection::server(Config::default());
    let wire = cat(&[c(0x81, b"first"), c(0x89, b"p"), c(0x83, b"")]);
    // The error waits for the events before it.
    assert_eq!(s.handle_bytes(&wire), Ok(()));
    assert_eq!(s.poll_event(), Some(Event::Message(Message::text("first"))));
    assert_eq!(s.send_text("echo"), Ok(()));
    assert_eq!(s.poll_event(), Some(Event::Ping(Cow::Borrowed(b"p"))));
    assert_eq!(s.state(), State::Open);
    // Handing out the last event before it fails the connection.
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.state(), State::Closed);
    let err = Err(Error::Protocol(ProtocolError::ReservedOpcode(3)));
    assert_eq!(s.error(), Some(&ProtocolError::ReservedOpcode(3)));
    assert_eq!(s.handle_bytes(&c(0x81, b"ok")), err);
    // The echo, then the pong, then the close.
    let out = s.poll_transmit();
    assert_eq!(&out[..6], &[0x81, 0x04, b'e', b'c', b'h', b'o']);
    assert_eq!(&out[6..9], &[0x8A, 0x01, b'p']);
    assert_eq!(close_code_sent(&out[9..]), Some(1002));
}

#[derive(Clone, Debug)]
enum Op {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        ".{0,300}".prop_map(Op::Text),
        proptest::collection::vec(any::<u8>(), 0..2000).prop_map(Op::Binary),
        proptest::collection::vec(any::<u8>(), 0..=125).prop_map(Op::Ping),
    ]
}

/// Sends `ops` from `from`, feeds the bytes to `to` cut at `cuts`, returns what `to` saw.
fn transfer(
    from: &mut Connection,
    to: &mut Connection,
    ops: &[Op],
    cuts: &[usize],
    zero_copy: bool,
) -> Vec<Event<'static>> {
    for op in ops {
        match op {
            Op::Text(t) => from.send_text(t).unwrap(),
            Op::Binary(b) => from.send_binary(b).unwrap(),
            Op::Ping(p) => from.ping(p).unwrap(),
        }
    }
    let wire = from.poll_transmit().to_vec();
    from.consume_transmit(wire.len());
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    bounds.push(0);
    bounds.push(wire.len());
    bounds.sort_unstable();
    let mut seen = Vec::new();
    for pair in bounds.windows(2) {
        let piece = &wire[pair[0]..pair[1]];
        if zero_copy {
            let mut buf = piece.to_vec();
            let mut input = &mut buf[..];
            while let Some(event) = to.read(&mut input).unwrap() {
                seen.push(event.into_owned());
            }
        } else {
            to.handle_bytes(piece).unwrap();
            seen.extend(std::iter::from_fn(|| to.poll_event()));
        }
    }
    seen
}

fn expected(ops: &[Op]) -> Vec<Event<'static>> {
    ops.iter()
        .map(|op| match op {
            Op::Text(t) => Event::Message(Message::text(t.clone())),
            Op::Binary(b) => Event::Message(Message::binary(b.clone())),
            Op::Ping(p) => Event::Ping(Cow::Owned(p.clone())),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_messages_in_any_split_arrive_intact(
        ops in proptest::collection::vec(op(), 0..12),
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
        frame_size in 1usize..600,
        client_sends in any::<bool>(),
        zero_copy in any::<bool>(),
        mask_seed in any::<u32>(),
    ) {
        let mut config = Config::default();
        config.max_send_frame_size = frame_size;
        let mut seed = mask_seed;
        let masks = move || { seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223); seed.to_be_bytes() };
        let mut client = Connection::client(config.clone(), masks);
        let mut server = Connection::server(config);
        let seen = if client_sends {
            transfer(&mut client, &mut server, &ops, &cuts, zero_copy)
        } else {
            transfer(&mut server, &mut client, &ops, &cuts, zero_copy)
        };
        prop_assert_eq!(seen, expected(&ops));
    }

    #[test]
    fn one_byte_at_a_time(ops in proptest::collection::vec(op(), 1..4)) {
        let mut client = Connection::client(Config::default(), || KEY);
        let mut server = Connection::server(Config::default());
        let cuts: Vec<usize> = (1..20_000).collect();
        let seen = transfer(&mut client, &mut server, &ops, &cuts, false);
        prop_assert_eq!(seen, expected(&ops));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_errors_carry_a_close_code(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        step in 1usize..64,
        server_role in any::<bool>(),
    ) {
        let mut conn = if server_role {
            Connection::server(small_limits())
        } else {
            Connection::client(small_limits(), || KEY)
        };
        for piece in bytes.chunks(step) {
            if let Err(e) = conn.handle_bytes(piece) {
                let Error::Protocol(p) = e else { panic!("unexpected {e:?}") };
                prop_assert!(p.close_code().is_sendable());
                prop_assert_eq!(conn.state(), State::Closed);
                break;
            }
        }
        while let Some(event) = conn.poll_event() {
            if let Event::Message(m) = event {
                prop_assert!(m.len() <= 1500);
            }
        }
    }
}

/// Moves everything `from` has to send into `to`, returning the events `to` produced.
fn pump(from: &mut Connection, to: &mut Connection) -> Result<Vec<Event<'static>>, Error> {
    let wire = from.poll_transmit().to_vec();
    from.consume_transmit(wire.len());
    to.handle_bytes(&wire)?;
    Ok(std::iter::from_fn(|| to.poll_event()).collect())
}

#[test]
fn in_memory_pair_echo_then_client_closes() {
    let mut client = Connection::client(Config::default(), || KEY);
    let mut server = Connection::server(Config::default());
    let big = vec![0xA5u8; 3 << 20]; // split into 1 MiB frames by default
    client.send_text("hello").unwrap();
    client.send_binary(&big).unwrap();
    client.ping(b"are you there").unwrap();
    let got = pump(&mut client, &mut server).unwrap();
    assert_eq!(got.len(), 3);
    for event in got {
        if let Event::Message(m) = event {
            server.send(m).unwrap();
        }
    }
    let echoed = pump(&mut server, &mut client).unwrap();
    assert_eq!(
        echoed,
        vec![
            // The pong was queued while the ping was handled, before the application echoed.
            Event::Pong(Cow::Borrowed(b"are you there")),
            Event::Message(Message::text("hello")),
            Event::Message(Message::binary(big)),
        ]
    );

    client.close(CloseCode::NORMAL, "bye").unwrap();
    let at_server = pump(&mut client, &mut server).unwrap();
    assert_eq!(
        at_server,
        vec![Event::Close(Some(CloseFrame {
            code: CloseCode::NORMAL,
            reason: "bye".into()
        }))]
    );
    let at_client = pump(&mut server, &mut client).unwrap();
    assert_eq!(
        at_client,
        vec![Event::Close(Some(CloseFrame {
            code: CloseCode::NORMAL,
            reason: "".into()
        }))]
    );
    assert!(server.should_close_transport());
    assert_eq!(client.state(), State::Closed);
    assert_eq!(client.handle_eof(), Ok(()));
}

#[test]
fn in_memory_pair_server_closes_and_fails() {
    let mut client = Connection::client(Config::default(), || KEY);
    let mut server = Connection::server(Config::default());
    server
        .fail(CloseCode::POLICY_VIOLATION, "no thanks")
        .unwrap();
    assert_eq!(server.state(), State::Closed);
    let got = pump(&mut server, &mut client).unwrap();
    assert_eq!(
        got,
        vec![Event::Close(Some(CloseFrame {
            code: CloseCode::POLICY_VIOLATION,
            reason: "no thanks".into()
        }))]
    );
    // The client answered; the server, already closed, ignores the answer.
    assert_eq!(pump(&mut client, &mut server).unwrap(), vec![]);
    assert!(server.should_close_transport());
}

// ---------------------------------------------------------------------------------------------
// Messages in parts (Config::stream_binary_from, Connection::send_part)
// ---------------------------------------------------------------------------------------------

fn streaming(from: usize) -> Config {
    let mut config = Config::default();
    config.stream_binary_from = Some(from);
    config
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Feeds `wire` to `to` through `read`, `step` bytes at a time; every `Part` must borrow the
/// caller's buffer (nothing of it was collected).
fn read_in_steps(to: &mut Connection, wire: &[u8], step: usize) -> Vec<Event<'static>> {
    let mut seen = Vec::new();
    for piece in wire.chunks(step) {
        let mut buf = piece.to_vec();
        let range = buf.as_ptr_range();
        let mut input = &mut buf[..];
        while let Some(event) = to.read(&mut input).unwrap() {
            if let Event::Part(p) = &event {
                let Cow::Borrowed(data) = &p.data else {
                    panic!("a part was copied")
                };
                assert!(data.is_empty() || range.contains(&data.as_ptr()));
            }
            seen.push(event.into_owned());
        }
        let state = format!("{to:?}");
        assert!(state.contains("buffered_message: 0"), "collected: {state}");
    }
    seen
}

/// Joins the parts in `events`, checking their flags; other events pass through.
fn join_parts(events: Vec<Event<'static>>) -> Vec<Event<'static>> {
    let mut out = Vec::new();
    let mut open: Option<Vec<u8>> = None;
    for event in events {
        match event {
            Event::Part(p) => {
                assert_eq!(p.first, open.is_none(), "{p:?}");
                let mut data = open.take().unwrap_or_default();
                data.extend_from_slice(&p.data);
                if p.last {
                    out.push(Event::Message(Message::binary(data)));
                } else {
                    open = Some(data);
                }
            }
            other => {
                assert!(
                    open.is_none() || matches!(other, Event::Ping(_) | Event::Pong(_)),
                    "{other:?} inside a message in parts"
                );
                out.push(other);
            }
        }
    }
    assert!(open.is_none(), "a message in parts never ended");
    out
}

#[test]
fn a_large_binary_message_arrives_in_parts_unless_it_arrives_whole() {
    let payload = pattern(5000);
    let wire = c(0x82, &payload);
    let Ok(Status::Complete(_, header)) = FrameHeader::parse(&wire) else {
        panic!("bad test frame")
    };
    for step in [1, 2, 7, 8, 100, 1024, 4999, wire.len() - 1, wire.len()] {
        let mut server = Connection::server(streaming(1000));
        let seen = read_in_steps(&mut server, &wire, step);
        if step == wire.len() {
            assert_eq!(seen, vec![Event::Message(Message::binary(payload.clone()))]);
            continue;
        }
        // One part per read that carried payload bytes (not those with header bytes only).
        let parts = seen.iter().filter(|e| matches!(e, Event::Part(_))).count();
        assert_eq!(
            parts,
            wire.len().div_ceil(step) - header / step,
            "step {step}"
        );
        assert_eq!(
            join_parts(seen),
            vec![Event::Message(Message::binary(payload.clone()))]
        );
    }
}

#[test]
fn a_fragmented_message_streams_frame_by_frame_with_control_frames_between() {
    let (a, b) = (pattern(2000), pattern(3000));
    let wire = cat(&[
        c(0x02, &a),   // binary, not final
        c(0x89, b"p"), // ping
        c(0x00, b""),  // empty continuation
        c(0x80, &b),   // final continuation
        c(0x81, b"after"),
    ]);
    let mut server = Connection::server(streaming(1000));
    let seen = read_in_steps(&mut server, &wire, wire.len());
    let is_part = |e: &Event<'_>, data: &[u8], first, last| matches!(e, Event::Part(p) if p.data == data && p.first == first && p.last == last);
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(is_part(&seen[0], &a, true, false), "{:?}", seen[0]);
    assert_eq!(seen[1], Event::Ping(Cow::Borrowed(b"p")));
    assert!(is_part(&seen[2], &b, false, true), "{:?}", seen[2]);
    assert_eq!(seen[3], Event::Message(Message::text("after")));
    assert_eq!(server.poll_transmit(), &[0x8A, 1, b'p']); // the pong
}

#[test]
fn small_and_text_messages_are_collected() {
    // Under the threshold, and text of any size: collected, whatever the split.
    for (b0, len) in [(0x82, 999), (0x81, 5000)] {
        let mut server = Connection::server(streaming(1000));
        let mut seen = Vec::new();
        for piece in c(b0, &vec![b'a'; len]).chunks(100) {
            server.handle_bytes(piece).unwrap();
            seen.extend(std::iter::from_fn(|| server.poll_event()));
        }
        assert_eq!(seen.len(), 1);
        assert!(matches!(&seen[0], Event::Message(m) if m.len() == len));
    }
}

#[cfg(feature = "deflate")]
#[test]
fn compressed_messages_are_collected() {
    use rfc6455::proto::deflate::DeflateParams;
    let mut params = DeflateParams::default();
    params.compression_threshold = 0;
    let mut client = Connection::client(Config::default(), || KEY);
    client.set_deflate(params);
    let payload = pattern(50_000);
    client.send_binary(&payload).unwrap();
    let wire = client.poll_transmit().to_vec();
    assert_eq!(wire[0], 0xC2, "not compressed");
    let mut server = Connection::server(streaming(10));
    server.set_deflate(params);
    let mut seen = Vec::new();
    for piece in wire.chunks(50) {
        server.handle_bytes(piece).unwrap();
        seen.extend(std::iter::from_fn(|| server.poll_event()));
    }
    assert_eq!(seen, vec![Event::Message(Message::binary(payload))]);
}

#[test]
fn parts_count_against_max_message_size() {
    let mut config = streaming(1000);
    config.max_message_size = 4000;
    let mut server = Connection::server(config);
    let wire = cat(&[c(0x02, &pattern(2000)), c(0x80, &pattern(2001))]);
    let mut buf = wire.clone();
    let mut input = &mut buf[..];
    assert!(matches!(server.read(&mut input), Ok(Some(Event::Part(p))) if p.data.len() == 2000));
    assert_eq!(
        server.read(&mut input),
        Err(Error::Protocol(ProtocolError::MessageTooLarge {
            len: 4001,
            max: 4000
        }))
    );
    assert_eq!(close_code_sent(server.poll_transmit()), Some(1009));
}

/// The frames in `wire` (unmasked, as a server sends them): (first byte, payload).
fn frames_of(mut wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while !wire.is_empty() {
        let Ok(Status::Complete(h, n)) = FrameHeader::parse(wire) else {
            panic!("does not parse: {wire:02x?}")
        };
        assert!(h.mask.is_none());
        let end = n + h.payload_len as usize;
        frames.push((wire[0], wire[n..end].to_vec()));
        wire = &wire[end..];
    }
    frames
}

#[test]
fn parts_go_out_as_one_fragmented_message_and_other_messages_wait_for_its_end() {
    let mut config = Config::default();
    config.max_send_frame_size = 1000;
    let mut server = Connection::server(config);
    server.send_part(b"one", false).unwrap();
    server.send_text("held text").unwrap();
    server.ping(b"p").unwrap();
    server.send_part(&pattern(2500), false).unwrap(); // over max_send_frame_size
    server.send_owned(Message::binary(pattern(20_000))).unwrap();
    let big = pattern(17_000);
    server
        .send_through(Message::binary(&big[..]), |_| {
            panic!("written while a message in parts is open")
        })
        .unwrap();
    assert_eq!(server.held_len(), 9 + 20_000 + 17_000);
    server.send_part(b"", true).unwrap();
    assert_eq!(server.held_len(), 0);
    server.send_binary(b"next").unwrap();
    let frames = frames_of(&drain(&mut server));
    let heads: Vec<(u8, usize)> = frames.iter().map(|(b0, p)| (*b0, p.len())).collect();
    let mut want = vec![
        (0x02, 3),    // binary, not final
        (0x89, 1),    // the ping, between the parts
        (0x00, 1000), // the 2,500-byte part as three frames
        (0x00, 1000),
        (0x00, 500),
        (0x80, 0), // the last part ends the message
        (0x81, 9), // then what was held, in order
        (0x02, 1000),
    ];
    want.extend([(0x00, 1000); 18]);
    want.extend([(0x80, 1000), (0x02, 1000)]);
    want.extend([(0x00, 1000); 15]);
    want.extend([(0x80, 1000), (0x82, 4)]);
    assert_eq!(heads, want);
    assert_eq!(frames[6].1, b"held text");
    let held: Vec<u8> = frames[7..27].iter().flat_map(|f| f.1.clone()).collect();
    assert_eq!(held, pattern(20_000));
    let held: Vec<u8> = frames[27..44].iter().flat_map(|f| f.1.clone()).collect();
    assert_eq!(held, big);

    // A close goes out between parts too; then nothing more can be sent, held or not.
    server.send_part(b"x", false).unwrap();
    server.send_text("never").unwrap();
    assert_eq!(server.held_len(), 5);
    server.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(
        server.held_len(),
        0,
        "dropped: nothing may follow a close frame"
    );
    assert_eq!(server.send_part(b"y", true), Err(Error::Closed));
    assert_eq!(server.send_text("late"), Err(Error::Closed));
    let heads: Vec<u8> = frames_of(server.poll_transmit())
        .iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(heads, vec![0x02, 0x88]);
}

#[test]
fn messages_held_behind_parts_are_dropped_when_the_connection_ends() {
    // The peer's close (answered), a protocol error (1002 sent), the transport's end:
    // in each case nothing held can go out any more, so none of it is kept.
    let endings: [fn(&mut Connection); 3] = [
        |conn| {
            let mut close = c(0x88, &1000u16.to_be_bytes());
            let mut input = &mut close[..];
            assert!(matches!(conn.read(&mut input), Ok(Some(Event::Close(_)))));
        },
        |conn| {
            let mut bad = c(0x80, b"no message is open");
            let mut input = &mut bad[..];
            assert!(conn.read(&mut input).is_err());
        },
        |conn| assert_eq!(conn.handle_eof(), Err(Error::ConnectionLost)),
    ];
    for end in endings {
        let mut server = Connection::server(Config::default());
        server.send_part(b"part", false).unwrap();
        server.send_binary(&[7; 3000]).unwrap();
        assert_eq!(server.held_len(), 3000);
        end(&mut server);
        assert_eq!(server.held_len(), 0);
        assert_eq!(server.send_part(b"end", true), Err(Error::Closed));
        let wire = drain(&mut server);
        assert!(
            !wire.windows(8).any(|w| w == [7; 8]),
            "a held message went out"
        );
    }
}

/// Everything `conn` has queued, drained.
fn drain(conn: &mut Connection) -> Vec<u8> {
    let mut wire = Vec::new();
    loop {
        let out = conn.poll_transmit();
        if out.is_empty() {
            return wire;
        }
        let n = out.len();
        wire.extend_from_slice(out);
        conn.consume_transmit(n);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A server relays what it receives part by part (`send_part`), in any split of its
    /// input: a client reading the relayed bytes gets the messages that were sent, whole.
    #[test]
    fn messages_relayed_in_parts_arrive_intact(
        sizes in proptest::collection::vec(0usize..70_000, 1..4),
        from in 0usize..20_000,
        frame_size in 1usize..80_000,
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut config = Config::default();
        config.max_send_frame_size = frame_size;
        let mut sender = Connection::client(config, || KEY);
        let messages: Vec<Vec<u8>> = sizes.iter().map(|&n| pattern(n)).collect();
        for m in &messages {
            sender.send_binary(m).unwrap();
        }
        let wire = drain(&mut sender);
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        bounds.extend([0, wire.len()]);
        bounds.sort_unstable();

        let mut server = Connection::server(streaming(from));
        let mut relay = Connection::server(Config::default());
        for pair in bounds.windows(2) {
            let mut buf = wire[pair[0]..pair[1]].to_vec();
            let mut input = &mut buf[..];
            while let Some(event) = server.read(&mut input).unwrap() {
                match event {
                    Event::Part(p) => relay.send_part(&p.data, p.last).unwrap(),
                    Event::Message(m) => relay.send(m).unwrap(),
                    other => panic!("{other:?}"),
                }
            }
        }
        let relayed = drain(&mut relay);

        let mut client = Connection::client(Config::default(), || KEY);
        client.handle_bytes(&relayed).unwrap();
        let got: Vec<Event<'static>> = std::iter::from_fn(|| client.poll_event()).collect();
        let want: Vec<Event<'static>> =
            messages.into_iter().map(|m| Event::Message(Message::binary(m))).collect();
        prop_assert_eq!(got, want);
    }
}

/// An echo server driven the way an application drives it: feed what the socket read in
/// `step`-byte pieces, echo each message as its event comes out, stop at an error. Returns
/// everything it queued to send, and the error if one came.
fn echo_server(wire: &[u8], step: usize, zero_copy: bool) -> (Vec<u8>, Option<Error>) {
    let mut conn = Connection::server(Config::default());
    let mut out = Vec::new();
    let mut error = None;
    for piece in wire.chunks(step.max(1)) {
        if zero_copy {
            let mut buf = piece.to_vec();
            let mut input = &mut buf[..];
            loop {
                match conn.read(&mut input) {
                    Ok(Some(Event::Message(m))) => conn.send(m).unwrap(),
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
        } else {
            let result = conn.handle_bytes(piece);
            while let Some(event) = conn.poll_event() {
                if let Event::Message(m) = event {
                    conn.send(m).unwrap(); // the echo: the connection is open until Close
                }
            }
            // An error after events comes out once they are handed out.
            if let Err(e) = result.and_then(|()| conn.handle_bytes(&[])) {
                error = Some(e);
            }
        }
        let n = conn.transmit_len();
        out.extend_from_slice(conn.poll_transmit());
        conn.consume_transmit(n);
        if error.is_some() {
            break;
        }
    }
    assert_eq!(conn.state(), State::Closed, "{wire:02x?}");
    assert!(conn.should_close_transport());
    (out, error)
}

/// RFC 6455 §5.5.1: the close reply may wait, so it goes out after the answers to the events
/// before the close, on both receive paths, whatever the split of the input.
#[test]
fn message_then_close_in_one_read_is_answered_then_closed() {
    let hello = c(0x81, b"Hello");
    let close_1000 = c(0x88, b"\x03\xe8");
    // (name, what the peer sends, what the echo server sends back, the error if any)
    type Row = (&'static str, Vec<u8>, Vec<u8>, Option<ProtocolError>);
    let table: Vec<Row> = vec![
        (
            "text + close 1000",
            cat(&[hello.clone(), close_1000.clone()]),
            vec![0x81, 5, b'H', b'e', b'l', b'l', b'o', 0x88, 2, 0x03, 0xe8],
            None,
        ),
        (
            "text + close without a code + bytes after it",
            cat(&[hello.clone(), c(0x88, b""), c(0x81, b"late")]),
            vec![0x81, 5, b'H', b'e', b'l', b'l', b'o', 0x88, 0],
            None,
        ),
        (
            "binary, ping, text + close 1001 with a reason",
            cat(&[
                c(0x82, &[1, 2]),
                c(0x89, b"p"),
                c(0x81, b"x"),
                c(0x88, b"\x03\xe9bye"),
            ]),
            vec![
                0x82, 2, 1, 2, 0x8a, 1, b'p', 0x81, 1, b'x', 0x88, 2, 0x03, 0xe9,
            ],
            None,
        ),
        (
            "fragmented text + close",
            cat(&[c(0x01, b"Hel"), c(0x80, b"lo"), close_1000.clone()]),
            vec![0x81, 5, b'H', b'e', b'l', b'l', b'o', 0x88, 2, 0x03, 0xe8],
            None,
        ),
        (
            "text + a reserved opcode",
            cat(&[hello.clone(), c(0x83, b""), close_1000.clone()]),
            vec![0x81, 5, b'H', b'e', b'l', b'l', b'o'],
            Some(ProtocolError::ReservedOpcode(3)),
        ),
        (
            "text + a close with code 1005",
            cat(&[hello.clone(), c(0x88, b"\x03\xed")]),
            vec![0x81, 5, b'H', b'e', b'l', b'l', b'o'],
            Some(ProtocolError::InvalidCloseCode(1005)),
        ),
    ];
    for (name, wire, expected, error) in table {
        for zero_copy in [false, true] {
            for step in [wire.len(), 1, 3] {
                let (out, got_error) = echo_server(&wire, step, zero_copy);
                let path = if zero_copy { "read" } else { "handle_bytes" };
                let context = format!("{name}, {path}, {step}-byte pieces");
                // After an error the close frame's reason is the error's text: the table
                // gives the bytes up to it, then its code must follow.
                match &error {
                    None => assert_eq!(out, expected, "{context}"),
                    Some(e) => {
                        let (head, close) = out.split_at(expected.len().min(out.len()));
                        assert_eq!(head, &expected[..], "{context}");
                        assert_eq!(close_code_sent(close), Some(e.close_code().0), "{context}");
                    }
                }
                assert_eq!(got_error, error.clone().map(Error::Protocol), "{context}");
            }
        }
    }
}

/// The state follows the events handed out: open (and sendable) until the close comes out.
#[test]
fn state_and_send_agree_until_the_close_is_handed_out() {
    let mut s = Connection::server(Config::default());
    let wire = cat(&[c(0x81, b"Hello"), c(0x88, b"\x03\xe8")]);
    s.handle_bytes(&wire).unwrap();
    assert_eq!(s.state(), State::Open);
    assert!(
        s.poll_transmit().is_empty(),
        "no reply before the close is handed out"
    );
    // The peer may half-close right after its close frame: not a lost connection.
    assert_eq!(s.handle_eof(), Ok(()));
    assert_eq!(s.poll_event(), Some(Event::Message(Message::text("Hello"))));
    assert_eq!(s.state(), State::Open);
    assert_eq!(s.send_text("Hello"), Ok(()));
    assert_eq!(
        s.poll_event(),
        Some(Event::Close(Some(CloseFrame {
            code: CloseCode::NORMAL,
            reason: "".into()
        })))
    );
    assert_eq!(s.state(), State::Closed);
    assert_eq!(s.send_text("late"), Err(Error::Closed));
    assert_eq!(s.poll_event(), None);
    assert_eq!(
        s.poll_transmit(),
        &[0x81, 5, b'H', b'e', b'l', b'l', b'o', 0x88, 2, 0x03, 0xe8]
    );
}
