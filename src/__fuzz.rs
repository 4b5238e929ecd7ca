//! Property checks shared by the fuzz targets (`fuzz/`) and the stable crash replay
//! (`tests/fuzz_regressions.rs`). **Not public API**: hidden from the docs, exempt from semver,
//! may change or vanish in any release.
//!
//! Compiled only for fuzzing and tests: under `cfg(fuzzing)` (cargo-fuzz sets it) or with the
//! hidden `__fuzz` feature, which the fuzz crate and this crate's own tests enable (the replay
//! of committed crash inputs runs under a plain `cargo test` on stable, where `cfg(fuzzing)` is
//! never set). Keeping the properties here, in one place, is what lets the fuzzers and the
//! replay check exactly the same things.
//!
//! Every `check_*` function takes the raw fuzz input and panics when a property fails.

use crate::proto::{apply_mask, extend_masked, Utf8Validator};
use crate::proto::{ClientHandshake, ClientOptions, ExtensionOffer, HandshakeLimits, Request, Url};
use crate::proto::{FrameHeader, OpCode, Status, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crate::{CloseCode, CloseFrame, Config, Connection, Error, Event, ProtocolError};
use crate::{Message, Part, Role, State};
use base64::Engine as _;

#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tls")]
pub use tls::check_tls_session;

// ---------------------------------------------------------------------------------------------
// Frame headers
// ---------------------------------------------------------------------------------------------

/// `FrameHeader::parse` on arbitrary bytes.
///
/// - Prefixes: parsing `data[..k]` for growing `k` gives `Partial` until it gives a result,
///   and from then on always that same result (a `Complete` header ignores trailing bytes; an
///   error proven by some bytes stays proven). At [`MAX_HEADER_LEN`] bytes it is decided.
/// - A `Complete(h, n)`: every field agrees with the bits on the wire, `h` keeps the struct's
///   invariants (control frames final and ≤ 125 bytes, 63-bit length), `parse(encode(h)) == h`,
///   and `encode(h) == data[..n]` whenever the input used the minimal length encoding (a
///   longer encoding is only ever a non-minimal one).
/// - An error is a protocol error (close code 1002) that names what the bytes show.
pub fn check_frame_header(data: &[u8]) {
    let full = FrameHeader::parse(data);

    let mut settled = None;
    for k in 0..=data.len().min(MAX_HEADER_LEN) {
        let r = FrameHeader::parse(&data[..k]);
        match &settled {
            None if r == Ok(Status::Partial) => {}
            None => settled = Some(r),
            Some(s) => assert_eq!(&r, s, "prefix of {k} bytes changed a settled result"),
        }
    }
    match &settled {
        None => {
            assert_eq!(full, Ok(Status::Partial));
            assert!(data.len() < MAX_HEADER_LEN, "14 bytes must decide a header");
            // Whatever follows, 14 bytes decide.
            for fill in [0x00, 0xFF] {
                let mut padded = data.to_vec();
                padded.resize(MAX_HEADER_LEN, fill);
                assert_ne!(FrameHeader::parse(&padded), Ok(Status::Partial));
            }
        }
        Some(s) => assert_eq!(&full, s, "trailing bytes changed the result"),
    }

    match full {
        Ok(Status::Partial) => {}
        Ok(Status::Complete(h, n)) => check_parsed_header(data, h, n),
        Err(e) => {
            assert_eq!(e.close_code(), CloseCode::PROTOCOL_ERROR, "{e:?}");
            let (b0, b1) = (data[0], data[1]);
            match e {
                ProtocolError::ReservedOpcode(op) => {
                    assert_eq!(op, b0 & 0x0F);
                    assert!(OpCode::from_bits(op).is_none());
                }
                ProtocolError::FragmentedControlFrame => {
                    assert!(b0 & 0x08 != 0 && b0 & 0x80 == 0)
                }
                ProtocolError::ControlFrameTooLong => {
                    assert!(b0 & 0x08 != 0 && usize::from(b1 & 0x7F) > MAX_CONTROL_PAYLOAD)
                }
                ProtocolError::InvalidLength => {
                    assert!(b1 & 0x7F == 127 && data.len() >= 10 && data[2] & 0x80 != 0)
                }
                other => panic!("FrameHeader::parse returned {other:?}, a connection-level error"),
            }
        }
    }
}

fn check_parsed_header(data: &[u8], h: FrameHeader, n: usize) {
    assert!(
        (2..=MAX_HEADER_LEN).contains(&n) && n <= data.len(),
        "length {n}"
    );
    // The fields are the bits on the wire.
    let (b0, b1) = (data[0], data[1]);
    assert_eq!(h.fin, b0 & 0x80 != 0);
    assert_eq!(h.rsv, (b0 >> 4) & 0x7);
    assert_eq!(h.opcode.bits(), b0 & 0x0F);
    assert_eq!(h.mask.is_some(), b1 & 0x80 != 0);
    if let Some(key) = h.mask {
        assert_eq!(key, data[n - 4..n]);
    }
    // The invariants of a header that exists.
    if h.opcode.is_control() {
        assert!(
            h.fin && h.payload_len <= MAX_CONTROL_PAYLOAD as u64,
            "{h:?}"
        );
    }
    assert_eq!(h.payload_len >> 63, 0);
    // Round trips.
    let mut out = [0u8; MAX_HEADER_LEN];
    let m = h.encode(&mut out);
    assert_eq!(m, h.encoded_len());
    assert!(
        m <= n,
        "the minimal encoding is never longer than the input's"
    );
    assert_eq!(FrameHeader::parse(&out[..m]), Ok(Status::Complete(h, m)));
    if m == n {
        assert_eq!(&out[..m], &data[..n], "encode ∘ parse is not the identity");
    }
    let mut v = Vec::new();
    h.encode_to(&mut v);
    assert_eq!(v, &out[..m]);
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

/// The fuzz input of the connection targets, decoded.
///
/// Layout: byte 0 flags (bit 0 `auto_pong`, bit 1 "this side sends a close first", bit 2
/// binary messages from `8 × (byte 0 >> 3)` bytes are received in parts),
/// byte 1 `max_frame_size / 4`, byte 2 `max_message_size / 8`, byte 3 the number of split
/// points (mod 16), then that many chunk lengths (0–255 each), then the peer's byte stream,
/// cut into those chunks (the rest is one last chunk). Missing bytes read as 0.
#[derive(Debug)]
struct ConnInput<'a> {
    config: Config,
    close_first: bool,
    stream: &'a [u8],
    chunks: Vec<&'a [u8]>,
}

impl<'a> ConnInput<'a> {
    fn decode(data: &'a [u8]) -> ConnInput<'a> {
        let byte = |i: usize| data.get(i).copied().unwrap_or(0);
        let config = Config {
            auto_pong: byte(0) & 1 != 0,
            max_frame_size: usize::from(byte(1)) * 4,
            max_message_size: usize::from(byte(2)) * 8,
            stream_binary_from: (byte(0) & 4 != 0).then_some(usize::from(byte(0) >> 3) * 8),
            ..Config::default()
        };
        let rest = data.get(4..).unwrap_or(&[]);
        let (lens, stream) = rest.split_at(usize::from(byte(3) % 16).min(rest.len()));
        let mut chunks = Vec::new();
        let mut left = stream;
        for &len in lens {
            let (chunk, tail) = left.split_at(usize::from(len).min(left.len()));
            chunks.push(chunk);
            left = tail;
        }
        chunks.push(left);
        ConnInput {
            config,
            close_first: byte(0) & 2 != 0,
            stream,
            chunks,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Path {
    /// `handle_bytes` + `poll_event`.
    Queued,
    /// `read` on a mutable buffer (zero-copy).
    Read,
}

/// Everything observable about one run.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<Event<'static>>,
    error: Option<ProtocolError>,
    transmit: Vec<u8>,
    state: State,
}

/// A `Connection` of `role` with small limits, fed the peer bytes of `data` (see the layout on
/// `ConnInput`) in the chunks `data` chooses.
///
/// - Differential: `read` (zero-copy) and `handle_bytes`/`poll_event` give the same events,
///   error, state and transmitted bytes for the same chunks, and so does feeding the whole
///   stream in one call (the split never matters).
/// - No message is larger than `max_message_size`; a ping or pong payload is ≤ 125 bytes;
///   nothing is delivered after `Event::Close`, which leaves the state `Closed`.
/// - `read` returns `Ok(None)` only with its input used up (no byte is dropped).
/// - An error is `Error::Protocol` with a sendable close code; the state is then `Closed`, the
///   error is sticky (`error()`, `handle_bytes`, `read` all report it; nothing more is queued)
///   and the transport should close once the transmit queue is written.
/// - The transmit queue parses as frames masked exactly when the role is client, holds only
///   pongs and at most one close frame (last): the pongs echo the pings when `auto_pong` is
///   on and this side had not closed first; the close carries the error's code after an
///   error, echoes the peer's code after a close, and is absent otherwise.
pub fn check_connection(role: Role, data: &[u8]) {
    let input = ConnInput::decode(data);
    check_conn_input(role, &input, None);
}

/// The checks of [`check_connection`] on decoded input, with permessage-deflate enabled on
/// the connection when `deflate` is given. Returns the outcome of the run.
fn check_conn_input(role: Role, input: &ConnInput<'_>, deflate: Option<&Deflate>) -> Outcome {
    let queued = run(role, input, Path::Queued, &input.chunks, deflate);
    let read = run(role, input, Path::Read, &input.chunks, deflate);
    assert_eq!(queued, read, "handle_bytes and read disagree");
    let whole = run(role, input, Path::Queued, &[input.stream], deflate);
    assert_eq!(
        joined(&queued),
        joined(&whole),
        "the split of the stream changed the outcome"
    );
    queued
}

/// `outcome` with each message received in parts (which split differently as the input
/// does) joined into one `Message`, or, if unfinished, into one `Part`.
fn joined(outcome: &Outcome) -> Outcome {
    let mut events = Vec::new();
    let mut parts: Option<Vec<u8>> = None;
    for event in &outcome.events {
        match event {
            Event::Part(p) => {
                let data = parts.get_or_insert_with(Vec::new);
                data.extend_from_slice(&p.data);
                if p.last {
                    let data = parts.take().unwrap_or_default();
                    events.push(Event::Message(Message::binary(data)));
                }
            }
            other => events.push(other.clone()),
        }
    }
    if let Some(data) = parts {
        events.push(Event::Part(Part {
            data: data.into(),
            first: true,
            last: false,
        }));
    }
    Outcome {
        events,
        error: outcome.error.clone(),
        transmit: outcome.transmit.clone(),
        state: outcome.state,
    }
}

/// The parts of a message come in order, alone (no message starts before the last), and do
/// not add up to more than `max_message_size`.
fn check_parts(config: &Config, events: &[Event<'_>]) {
    let mut streamed: Option<usize> = None;
    for event in events {
        match event {
            Event::Part(p) => {
                assert_eq!(p.first, streamed.is_none(), "{p:?} out of order");
                assert!(
                    !p.data.is_empty() || p.last,
                    "an empty part before the last"
                );
                let total = streamed.unwrap_or(0) + p.data.len();
                assert!(total <= config.max_message_size, "parts over the limit");
                assert!(
                    config.stream_binary_from.is_some(),
                    "a part while not streaming"
                );
                streamed = (!p.last).then_some(total);
            }
            Event::Message(_) => assert!(streamed.is_none(), "a message inside another"),
            _ => {}
        }
    }
}

/// The parameters of permessage-deflate for a connection run, or nothing without the feature.
#[cfg(feature = "deflate")]
type Deflate = crate::proto::deflate::DeflateParams;
#[cfg(not(feature = "deflate"))]
type Deflate = std::convert::Infallible;

fn run(
    role: Role,
    input: &ConnInput<'_>,
    path: Path,
    chunks: &[&[u8]],
    deflate: Option<&Deflate>,
) -> Outcome {
    let config = input.config.clone();
    #[allow(unused_mut)]
    let mut conn = match role {
        Role::Server => Connection::server(config),
        Role::Client => {
            let mut n = 0u32;
            Connection::client(config, move || {
                n = n.wrapping_add(0x9E37_79B9);
                n.to_be_bytes()
            })
        }
    };
    #[cfg(feature = "deflate")]
    if let Some(params) = deflate {
        conn.set_deflate(*params);
    }
    #[cfg(not(feature = "deflate"))]
    let _ = deflate;
    if input.close_first {
        conn.close(CloseCode::NORMAL, "bye").unwrap();
        assert_eq!(conn.state(), State::Closing);
    }

    let mut events: Vec<Event<'static>> = Vec::new();
    let mut error = None;
    for chunk in chunks {
        let before = events.len();
        let result = feed(&mut conn, path, chunk, &mut events);
        for event in &events[before..] {
            check_event(&input.config, event);
        }
        if let Some(i) = events.iter().position(|e| matches!(e, Event::Close(_))) {
            assert_eq!(i, events.len() - 1, "an event after Event::Close");
            assert_eq!(conn.state(), State::Closed);
        }
        if let Err(e) = result {
            let Error::Protocol(e) = e else {
                panic!("receiving failed with {e:?}, not a protocol error");
            };
            assert!(e.close_code().is_sendable(), "{e:?}");
            error = Some(e);
            break;
        }
    }

    check_parts(&input.config, &events);
    let outcome = Outcome {
        events,
        error,
        transmit: conn.poll_transmit().to_vec(),
        state: conn.state(),
    };
    check_transmit(role, input, &outcome);

    if let Some(e) = &outcome.error {
        assert_eq!(conn.state(), State::Closed);
        assert_eq!(conn.error(), Some(e));
        let err = Err(Error::Protocol(e.clone()));
        assert_eq!(conn.handle_bytes(b"\x81\x80\0\0\0\0\x81\0"), err);
        assert_eq!(conn.poll_event(), None);
        let mut more = *b"\x81\x80\0\0\0\0";
        assert_eq!(conn.read(&mut &mut more[..]).map(|_| ()), err);
        assert_eq!(
            conn.poll_transmit(),
            &outcome.transmit[..],
            "queued after the error"
        );
        assert_eq!(conn.handle_eof(), Ok(()));
        conn.consume_transmit(outcome.transmit.len());
        assert!(conn.should_close_transport());
    } else if conn.state() == State::Closed {
        assert_eq!(conn.error(), None);
        assert_eq!(conn.handle_eof(), Ok(()));
    } else {
        assert_eq!(conn.handle_eof(), Err(Error::ConnectionLost));
        assert_eq!(conn.state(), State::Closed);
    }
    outcome
}

fn feed(
    conn: &mut Connection,
    path: Path,
    chunk: &[u8],
    events: &mut Vec<Event<'static>>,
) -> Result<(), Error> {
    match path {
        Path::Queued => {
            let result = conn.handle_bytes(chunk);
            events.extend(std::iter::from_fn(|| conn.poll_event()));
            // An error after events fails the connection once they are handed out; the next
            // call reports it.
            result.and_then(|()| conn.handle_bytes(&[]))
        }
        Path::Read => {
            let mut buf = chunk.to_vec();
            let mut input = &mut buf[..];
            loop {
                match conn.read(&mut input) {
                    Ok(Some(event)) => events.push(event.into_owned()),
                    Ok(None) => {
                        assert!(input.is_empty(), "read stopped with input left");
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

fn check_event(config: &Config, event: &Event<'_>) {
    match event {
        Event::Message(m) => assert!(
            m.len() <= config.max_message_size,
            "a {}-byte message over max_message_size {}",
            m.len(),
            config.max_message_size
        ),
        Event::Ping(p) | Event::Pong(p) => assert!(p.len() <= MAX_CONTROL_PAYLOAD),
        Event::Close(_) | Event::Part(_) => {}
    }
}

/// The frames this side queued, unmasked: (opcode, payload).
fn sent_frames(role: Role, mut wire: &[u8]) -> Vec<(OpCode, Vec<u8>)> {
    let mut frames = Vec::new();
    while !wire.is_empty() {
        let Ok(Status::Complete(h, n)) = FrameHeader::parse(wire) else {
            panic!("the transmit queue does not parse: {wire:02x?}");
        };
        assert!(h.fin && h.rsv == 0, "{h:?}");
        assert_eq!(h.mask.is_some(), role == Role::Client, "masking by role");
        let end = n + usize::try_from(h.payload_len).unwrap();
        assert!(end <= wire.len(), "a truncated frame in the transmit queue");
        let mut payload = wire[n..end].to_vec();
        if let Some(key) = h.mask {
            apply_mask(&mut payload, key, 0);
        }
        frames.push((h.opcode, payload));
        wire = &wire[end..];
    }
    frames
}

fn check_transmit(role: Role, input: &ConnInput<'_>, outcome: &Outcome) {
    let mut frames = sent_frames(role, &outcome.transmit);
    let close = match frames.last() {
        Some((OpCode::Close, _)) => frames.pop().map(|(_, payload)| payload),
        _ => None,
    };
    if let Some(payload) = &close {
        assert!(
            CloseFrame::parse(payload).is_ok(),
            "this side sent a close frame it would reject: {payload:02x?}"
        );
    }
    for (opcode, _) in &frames {
        assert_eq!(*opcode, OpCode::Pong, "only pongs besides one final close");
    }
    let pongs: Vec<&[u8]> = frames.iter().map(|(_, p)| &p[..]).collect();

    if input.close_first {
        assert!(pongs.is_empty(), "a pong after this side's close");
        assert_eq!(close.as_deref(), Some(&b"\x03\xe8bye"[..]));
        return;
    }
    let pings: Vec<&[u8]> = outcome
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Ping(p) => Some(&p[..]),
            _ => None,
        })
        .collect();
    if input.config.auto_pong {
        assert_eq!(pongs, pings, "auto_pong: one pong per ping, same payload");
    } else {
        assert!(pongs.is_empty(), "a pong with auto_pong off");
    }
    let peer_close = outcome.events.iter().find_map(|e| match e {
        Event::Close(c) => Some(c),
        _ => None,
    });
    match (&outcome.error, peer_close, close) {
        (Some(e), None, Some(payload)) => {
            assert_eq!(payload[..2], e.close_code().0.to_be_bytes(), "{e:?}")
        }
        (None, Some(Some(frame)), Some(payload)) => {
            assert_eq!(
                payload,
                frame.code.0.to_be_bytes(),
                "the close reply echoes the code"
            )
        }
        (None, Some(None), Some(payload)) => assert!(payload.is_empty()),
        (None, None, None) => {}
        other => panic!("close frames do not match what happened: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Opening handshake
// ---------------------------------------------------------------------------------------------

/// Byte 0 picks `max_head_size` (16 + 16·b, so 16–4096), byte 1 `max_headers` (b mod 72, so
/// the header array is sometimes on the heap); the rest is the peer's bytes.
fn handshake_input(data: &[u8]) -> (HandshakeLimits, &[u8]) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let limits = HandshakeLimits {
        max_head_size: 16 + 16 * usize::from(byte(0)),
        max_headers: usize::from(byte(1) % 72),
    };
    (limits, data.get(2..).unwrap_or(&[]))
}

/// The prefix lengths worth checking: all of them for short inputs, an even sample plus those
/// around `head_len` for long ones (each parse costs up to the whole input).
fn prefix_lengths(len: usize, head_len: Option<usize>) -> Vec<usize> {
    let step = (len / 128).max(1);
    let mut ks: Vec<usize> = (0..len).step_by(step).collect();
    if let Some(n) = head_len {
        ks.extend([n.saturating_sub(2), n.saturating_sub(1), n, n + 1]);
    }
    ks.push(len.saturating_sub(1));
    ks.retain(|&k| k <= len);
    ks.sort_unstable();
    ks.dedup();
    ks
}

/// `Request::parse` (the server's side) on arbitrary bytes, with limits from the input.
///
/// - A complete request: its head length is ≤ the input and ≤ `max_head_size`, ends a line,
///   and parsing just the head gives the same request; the key is base64 of 16 bytes; every
///   accessor works; and the server's `accept()` answer is accepted by a client that sent
///   that key (`ClientHandshake::parse_response`).
/// - `Partial` only while the input is shorter than `max_head_size`.
/// - An error maps to a 4xx status whose `response()` is a well-formed HTTP/1.1 response with
///   that status, `Connection: close` and a `Content-Length` matching its body.
/// - Prefixes: every prefix shorter than a complete head is `Partial`, every longer one gives
///   the same request; a prefix of an input that fails is `Partial` or fails with the same
///   status.
pub fn check_handshake_request(data: &[u8]) {
    let (limits, buf) = handshake_input(data);
    let full = Request::parse(buf, &limits);
    let head_len = match &full {
        Ok(Status::Complete(req, n)) => {
            let n = *n;
            assert!(
                n <= buf.len() && n <= limits.max_head_size,
                "head length {n}"
            );
            assert!(buf[..n].ends_with(b"\n"), "a head ends with a line end");
            assert_eq!(Request::parse(&buf[..n], &limits), full);
            let key: [u8; 16] = base64::engine::general_purpose::STANDARD
                .decode(req.key())
                .expect("the key is base64")
                .try_into()
                .expect("the key is 16 bytes");
            let _ = (
                req.target(),
                req.path(),
                req.query(),
                req.host(),
                req.origin(),
            );
            let _ = (
                req.protocols().count(),
                req.extensions(),
                req.headers().count(),
            );
            // The server's answer satisfies a client that sent this key.
            let url = Url::parse("ws://example.com/").unwrap();
            let client = ClientHandshake::new(&url, &ClientOptions::default(), &mut || key)
                .expect("default options always form a request");
            let whole = req.accept().to_bytes();
            // A request with `Expect: 100-continue` gets a 100 first (RFC 7230 §6.7), which
            // the client that sent it reads past; ours never sends Expect.
            let answer = whole
                .strip_prefix(&b"HTTP/1.1 100 Continue\r\n\r\n"[..])
                .unwrap_or(&whole);
            match client.parse_response(answer) {
                Ok(Status::Complete(_, m)) => assert_eq!(m, answer.len()),
                other => panic!("the client refuses the server's accept: {other:?}"),
            }
            Some(n)
        }
        Ok(Status::Partial) => {
            assert!(
                buf.len() < limits.max_head_size,
                "Partial past the head limit"
            );
            None
        }
        Err(e) => {
            check_rejection(e.status(), &e.response());
            None
        }
    };
    for k in prefix_lengths(buf.len(), head_len) {
        let r = Request::parse(&buf[..k], &limits);
        match (&full, &r) {
            (Ok(Status::Complete(_, n)), _) if k >= *n => assert_eq!(r, full, "prefix {k}"),
            (_, Ok(Status::Partial)) => {}
            (Err(e), Err(p)) => assert_eq!(p.status(), e.status(), "prefix {k}: {p:?} vs {e:?}"),
            _ => panic!("prefix {k} gives {r:?}, the whole input {full:?}"),
        }
    }
}

/// The response the server sends with a refusal.
fn check_rejection(status: u16, response: &[u8]) {
    assert!((400..500).contains(&status), "status {status}");
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut res = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(n)) = res.parse(response) else {
        panic!(
            "the rejection does not parse: {:?}",
            String::from_utf8_lossy(response)
        );
    };
    assert_eq!(res.version, Some(1));
    assert_eq!(res.code, Some(status));
    let header = |name: &str| {
        res.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    // `close`, or `Upgrade, close` on a 426.
    let connection = header("connection").expect("a Connection header");
    let listed: Vec<&[u8]> = connection
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .collect();
    let want: &[&[u8]] = if status == 426 {
        &[b"Upgrade", b"close"]
    } else {
        &[b"close"]
    };
    assert_eq!(listed, want);
    let len = header("content-length").expect("a Content-Length");
    assert_eq!(len, (response.len() - n).to_string().as_bytes());
}

/// The client's offer the response target answers: subprotocols `chat` and `superchat`,
/// permessage-deflate, and the RFC 6455 §1.3 key (`dGhlIHNhbXBsZSBub25jZQ==`).
fn fuzz_client(limits: HandshakeLimits) -> ClientHandshake {
    let mut options = ClientOptions::default()
        .protocol("chat")
        .protocol("superchat");
    options.extensions =
        vec![ExtensionOffer::new("permessage-deflate").with_param("client_max_window_bits", None)];
    options.limits = limits;
    let url = Url::parse("ws://server.example.com/chat").unwrap();
    ClientHandshake::new(&url, &options, &mut || *b"the sample nonce").unwrap()
}

/// `ClientHandshake::parse_response` (the client's side) on arbitrary bytes, answering a fixed
/// offer (`fuzz_client`), with limits from the input.
///
/// - A complete response: its head length is ≤ the input and ≤ `max_head_size`, ends a line,
///   and parsing just the head gives the same response; the status is 101, the accept value
///   is the one for the key sent, the subprotocol (if any) and every extension were offered.
/// - `Partial` only while the input is shorter than `max_head_size`.
/// - Prefixes: as for requests, with "the same kind of error" for "the same status".
pub fn check_handshake_response(data: &[u8]) {
    let (limits, buf) = handshake_input(data);
    let client = fuzz_client(limits.clone());
    assert_eq!(client.key(), "dGhlIHNhbXBsZSBub25jZQ==");
    let full = client.parse_response(buf);
    let head_len = match &full {
        Ok(Status::Complete(res, n)) => {
            let n = *n;
            assert!(
                n <= buf.len() && n <= limits.max_head_size,
                "head length {n}"
            );
            assert!(buf[..n].ends_with(b"\n"), "a head ends with a line end");
            assert_eq!(client.parse_response(&buf[..n]), full);
            assert_eq!(res.status(), 101);
            assert_eq!(
                res.header("sec-websocket-accept"),
                Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            );
            assert!(matches!(res.protocol(), None | Some("chat" | "superchat")));
            for e in res.extensions() {
                assert!(e.name.eq_ignore_ascii_case("permessage-deflate"), "{e:?}");
            }
            let _ = (res.reason(), res.headers().count());
            Some(n)
        }
        Ok(Status::Partial) => {
            assert!(
                buf.len() < limits.max_head_size,
                "Partial past the head limit"
            );
            None
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            None
        }
    };
    for k in prefix_lengths(buf.len(), head_len) {
        let r = client.parse_response(&buf[..k]);
        match (&full, &r) {
            (Ok(Status::Complete(_, n)), _) if k >= *n => assert_eq!(r, full, "prefix {k}"),
            (_, Ok(Status::Partial)) => {}
            (Err(e), Err(p)) => assert_eq!(
                std::mem::discriminant(p),
                std::mem::discriminant(e),
                "prefix {k}: {p:?} vs {e:?}"
            ),
            _ => panic!("prefix {k} gives {r:?}, the whole input {full:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// permessage-deflate
// ---------------------------------------------------------------------------------------------

/// The agreed parameters an `inflate` input picks: byte 0 bit 1 `server_no_context_takeover`,
/// bit 2 `client_no_context_takeover`; byte 1 the window bits (server's high nibble, client's
/// low nibble, each mod 8, plus 8); threshold 0 (everything sent is compressed), level byte
/// 1 mod 10.
#[cfg(feature = "deflate")]
fn deflate_params(flags: u8, bits: u8, level: u8) -> crate::proto::deflate::DeflateParams {
    crate::proto::deflate::DeflateParams {
        server_no_context_takeover: flags & 2 != 0,
        client_no_context_takeover: flags & 4 != 0,
        server_max_window_bits: 8 + (bits >> 4) % 8,
        client_max_window_bits: 8 + (bits & 0x0F) % 8,
        compression_threshold: 0,
        compression_level: u32::from(level % 10),
    }
}

/// A connection with permessage-deflate negotiated, fed arbitrary bytes.
///
/// Layout: byte 0 flags (bit 0 client role, bits 1–2 no-context-takeover as in
/// `deflate_params`, bit 3 "framed"), byte 1 window bits, then the layout of
/// [`check_connection`] (4-byte prefix, split lengths, peer stream). When "framed", the peer
/// stream is first rewritten from records `[b0, len, len bytes]` into frames with that first
/// byte (0xC1 is a final compressed text frame), the length and, for a server, a mask: the
/// fuzzer then only has to find deflate bodies, not frame headers.
///
/// Every property of [`check_connection`] holds, RSV1 messages included (the differential
/// `read` vs `handle_bytes`, splits, no message over `max_message_size`, sticky errors, the
/// transmit queue), and an error carries 1002, 1007 or 1009.
#[cfg(feature = "deflate")]
pub fn check_inflate(data: &[u8]) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let (flags, bits) = (byte(0), byte(1));
    let role = if flags & 1 != 0 {
        Role::Client
    } else {
        Role::Server
    };
    let params = deflate_params(flags, bits, 6);
    let rest = data.get(2..).unwrap_or(&[]);
    let owned;
    let rest = if flags & 8 != 0 {
        owned = framed(role, rest);
        &owned[..]
    } else {
        rest
    };
    let input = ConnInput::decode(rest);
    let outcome = check_conn_input(role, &input, Some(&params));
    if let Some(e) = &outcome.error {
        let code = e.close_code().0;
        assert!(
            matches!(code, 1002 | 1007 | 1009),
            "{e:?} closes with {code}"
        );
    }
}

/// Rewrites the peer stream of a `ConnInput` layout (after its prefix and split lengths) from
/// `[b0, len, payload]` records into frames.
#[cfg(feature = "deflate")]
fn framed(role: Role, rest: &[u8]) -> Vec<u8> {
    let splits = 4 + usize::from(rest.get(3).copied().unwrap_or(0) % 16);
    let head = splits.min(rest.len());
    let mut out = rest[..head].to_vec();
    let mut records = &rest[head..];
    while let [b0, len, tail @ ..] = records {
        let n = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(n);
        let header = FrameHeader {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 7,
            opcode: OpCode::from_bits(b0 & 0x0F).unwrap_or(OpCode::Binary),
            mask: (role == Role::Server).then_some([0x37, 0xFA, 0x21, 0x3D]),
            payload_len: n as u64,
        };
        header.encode_to(&mut out);
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(key) = header.mask {
            apply_mask(&mut out[start..], key, 0);
        }
        records = next;
    }
    out
}

/// deflate → inflate round trips between two connections with permessage-deflate.
///
/// Layout: byte 0 flags as in [`check_inflate`] (bit 0 unused), byte 1 window bits, byte 2 the
/// level, byte 3 a separator; the rest is cut at every separator byte into messages, sent
/// client → server and server → client (text when valid UTF-8, binary otherwise), each
/// compressed with the agreed parameters (always, for a direction with context takeover) and
/// received equal. Both directions keep or reset
/// their context as agreed, so a message may depend on all the earlier ones.
#[cfg(feature = "deflate")]
pub fn check_deflate_round_trip(data: &[u8]) {
    use crate::Message;
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let params = deflate_params(byte(0), byte(1), byte(2));
    let separator = byte(3);
    let body = data.get(4..).unwrap_or(&[]);
    let config = Config {
        max_message_size: 1 << 20,
        max_frame_size: 1 << 20,
        ..Config::default()
    };
    let mut client = Connection::client(config.clone(), || [0x12, 0x34, 0x56, 0x78]);
    let mut server = Connection::server(config);
    client.set_deflate(params);
    server.set_deflate(params);
    for part in body.split(|&b| b == separator) {
        let message = match std::str::from_utf8(part) {
            Ok(text) => Message::text(text),
            Err(_) => Message::binary(part),
        };
        let always = !part.is_empty();
        let client_compresses = always && !params.client_no_context_takeover;
        let server_compresses = always && !params.server_no_context_takeover;
        deliver(&mut client, &mut server, &message, client_compresses);
        deliver(&mut server, &mut client, &message, server_compresses);
    }
}

/// Sends `message` from `from`, checks it went out compressed if `compressed`, and that `to`
/// receives it equal.
#[cfg(feature = "deflate")]
fn deliver(
    from: &mut Connection,
    to: &mut Connection,
    message: &crate::Message<'_>,
    compressed: bool,
) {
    from.send(message.clone()).unwrap();
    let wire = from.poll_transmit().to_vec();
    from.consume_transmit(wire.len());
    if compressed {
        // Threshold 0 and context takeover: compressed even when it does not shrink (without
        // context takeover a message that does not shrink goes out as it is).
        assert_eq!(wire[0] & 0x40, 0x40, "a message went out uncompressed");
    }
    to.handle_bytes(&wire).unwrap();
    match to.poll_event() {
        Some(Event::Message(got)) => assert_eq!(&got, message),
        other => panic!("expected the message back, got {other:?}"),
    }
    assert_eq!(to.poll_event(), None);
    from.shrink_buffers();
}

// ---------------------------------------------------------------------------------------------
// UTF-8 validation and masking
// ---------------------------------------------------------------------------------------------

/// The streaming UTF-8 validator and the masking functions against their definitions.
///
/// Layout: two cut points (bytes 0-1, scaled to the text's length), a masking key (bytes 2-5)
/// and a key offset and alignment (byte 6), then the text.
///
/// - `Utf8Validator` fed the text in three pieces accepts exactly what `str::from_utf8`
///   accepts, and fails on the first piece already when std proves an error inside it.
/// - `apply_mask` at any key offset and buffer alignment, and `extend_masked`, equal a byte
///   by byte XOR, and `apply_mask` returns the key offset after the buffer; `extend_masked`
///   also on the text repeated to 4-16 KiB and just past, where it copies first.
pub fn check_primitives(data: &[u8]) {
    let Some((&[c1, c2, k0, k1, k2, k3, shift], text)) = data.split_first_chunk::<7>() else {
        return;
    };
    let cut = |c: u8| usize::from(c) * text.len() / 255;
    let (a, b) = (cut(c1).min(cut(c2)), cut(c1).max(cut(c2)));
    let mut v = Utf8Validator::default();
    let first = v.feed(&text[..a]);
    let whole = first
        .and_then(|()| v.feed(&text[a..b]))
        .and_then(|()| v.feed(&text[b..]))
        .and_then(|()| v.finish());
    let std = std::str::from_utf8(text);
    assert_eq!(
        whole.is_ok(),
        std.is_ok(),
        "validator vs std::str::from_utf8"
    );
    if let Err(e) = std {
        if let Some(bad) = e.error_len() {
            // std may need the byte after the `bad` ones to know they are bad.
            if e.valid_up_to() + bad < a {
                assert!(
                    first.is_err(),
                    "an error inside the first piece is reported there"
                );
            }
        }
    }

    let key = [k0, k1, k2, k3];
    let offset = usize::from(shift & 3);
    let start = usize::from(shift >> 2).min(text.len());
    // The definition: `text` with the bytes from `start` on XORed from `key[offset]`.
    let masked = |offset: usize| -> Vec<u8> {
        let mut out = text.to_vec();
        for (i, byte) in out[start..].iter_mut().enumerate() {
            *byte ^= key[(offset + i) % 4];
        }
        out
    };
    let mut fast = text.to_vec();
    let next = apply_mask(&mut fast[start..], key, offset);
    assert_eq!(fast, masked(offset), "apply_mask vs byte-wise XOR");
    assert_eq!(next, (offset + text.len() - start) % 4);
    let mut fused = text[..start].to_vec();
    extend_masked(&mut fused, &text[start..], key);
    assert_eq!(fused, masked(0), "extend_masked vs byte-wise XOR");

    // From 4 to 16 KiB `extend_masked` copies, then masks: inputs are shorter, so the text
    // is repeated to a length from 4 KiB - 1 to 16 KiB + 14, across both switch points
    // (bytes 0 and 6 pick it).
    if !text.is_empty() {
        let len = (4 << 10) - 1 + usize::from(c1) * 48 + usize::from(shift & 63);
        let long: Vec<u8> = text.iter().copied().cycle().take(len).collect();
        let mut fused = vec![0xEE];
        extend_masked(&mut fused, &long, key);
        assert_eq!(fused.len(), 1 + len);
        for (i, (&got, &plain)) in fused[1..].iter().zip(&long).enumerate() {
            assert_eq!(
                got,
                plain ^ key[i % 4],
                "extend_masked of {len} bytes, at {i}"
            );
        }
    }
}
