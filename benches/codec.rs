//! Codec benchmarks: `rfc6455` side by side with `tungstenite` on the same bytes.
//!
//! Groups, each with `Throughput::Bytes` of the payload (the header for `header_parse`):
//!
//! - `header_parse`: `FrameHeader::parse(&[u8])` vs tungstenite's `FrameHeader::parse(&mut Cursor)`.
//! - `mask`: in-place XOR. tungstenite's `apply_mask` is private (`protocol::frame::mask` is not
//!   exported), so its side is a verbatim copy of tungstenite 0.28's `apply_mask_fast32`
//!   (`src/protocol/frame/mask.rs`, MIT), compiled here with the same flags as ours. The
//!   `memcpy` line is `copy_from_slice` of the same number of bytes.
//! - `utf8_ascii`, `utf8_mixed`: ours `Utf8Validator::feed` + `finish` on the whole buffer vs
//!   tungstenite's public `Utf8Bytes::try_from(Bytes)` (what it runs on a text frame).
//! - `recv_binary`, `recv_text`: a whole masked client frame received by a server. Both sides
//!   copy the same wire bytes once per message (the "socket read"), then parse, unmask and (for
//!   text) validate:
//!   - ours: `copy_from_slice` of the frame into a buffer, then `Connection::read` on it;
//!   - tungstenite: `WebSocket::from_raw_socket(Replay, Role::Server, ..)` then `read()`, where
//!     `Replay`'s `Read` copies the same frame, repeated without end, into whatever buffer
//!     tungstenite offers (so per message it also copies exactly the frame's bytes once).
//!
//!   `memcpy` is `copy_from_slice` of the payload size, to read "within 2× of memcpy" off.
//!
//! Run: `cargo bench --bench codec` (short warm-up and measurement are set below; command-line
//! flags override them). Quick check that everything runs: `cargo bench --bench codec -- --test`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rfc6455::proto::{apply_mask, extend_masked, FrameHeader, OpCode, Status, Utf8Validator};
use rfc6455::{Config, Connection, Event};
use std::hint::black_box;
use std::io::{self, Cursor, Read, Write};
use std::time::Duration;

const SIZES: [usize; 5] = [16, 125, 1024, 64 << 10, 1 << 20];
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn size_label(n: usize) -> String {
    match n {
        n if n >= 1 << 20 => format!("{}MiB", n >> 20),
        n if n >= 1 << 10 => format!("{}KiB", n >> 10),
        n => format!("{n}B"),
    }
}

/// `len` bytes of printable ASCII.
fn ascii_text(len: usize) -> Vec<u8> {
    (0..len).map(|i| b' ' + (i * 7 % 95) as u8).collect()
}

/// `len` bytes of valid UTF-8 mixing 1-, 2-, 3- and 4-byte characters (about 40 % ASCII by
/// character), padded with ASCII at the end so the length is exact.
fn mixed_text(len: usize) -> Vec<u8> {
    const SAMPLE: &str = "Hello, κόσμε! ÀÉÎõü 漢字かな 🦀🎉 price: 5€ — naïve café ";
    let mut out = String::with_capacity(len);
    'fill: loop {
        for c in SAMPLE.chars() {
            if out.len() + c.len_utf8() > len {
                break 'fill;
            }
            out.push(c);
        }
    }
    while out.len() < len {
        out.push('.');
    }
    out.into_bytes()
}

/// Binary payload: every byte value.
fn binary(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

/// A masked, final client frame carrying `payload`.
fn client_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        fin: true,
        rsv: 0,
        opcode,
        mask: Some(KEY),
        payload_len: payload.len() as u64,
    };
    let mut wire = Vec::with_capacity(14 + payload.len());
    header.encode_to(&mut wire);
    let start = wire.len();
    wire.extend_from_slice(payload);
    apply_mask(&mut wire[start..], KEY, 0);
    wire
}

fn config(c: Criterion) -> Criterion {
    c.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

// ------------------------------------------------------------------------------------------
// header parse
// ------------------------------------------------------------------------------------------

fn header_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("header_parse");
    for (name, len) in [
        ("6B_len125", 125usize),
        ("8B_len1KiB", 1024),
        ("14B_len1MiB", 1 << 20),
    ] {
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Binary,
            mask: Some(KEY),
            payload_len: len as u64,
        };
        let mut wire = Vec::new();
        header.encode_to(&mut wire);
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(BenchmarkId::new("rfc6455", name), |b| {
            b.iter(|| match FrameHeader::parse(black_box(&wire[..])) {
                Ok(Status::Complete(h, n)) => (h.payload_len, n),
                _ => unreachable!(),
            })
        });
        group.bench_function(BenchmarkId::new("tungstenite", name), |b| {
            b.iter(|| {
                let mut cursor = Cursor::new(black_box(&wire[..]));
                match tungstenite::protocol::frame::FrameHeader::parse(&mut cursor) {
                    Ok(Some((h, len))) => (h.is_final, len, cursor.position()),
                    _ => unreachable!(),
                }
            })
        });
    }
    group.finish();
}

// ------------------------------------------------------------------------------------------
// mask
// ------------------------------------------------------------------------------------------

/// tungstenite 0.28 `src/protocol/frame/mask.rs`, verbatim apart from names: the crate does not
/// export it.
mod tungstenite_mask {
    #[inline]
    fn apply_mask_fallback(buf: &mut [u8], mask: [u8; 4]) {
        for (i, byte) in buf.iter_mut().enumerate() {
            *byte ^= mask[i & 3];
        }
    }

    #[inline]
    pub fn apply_mask_fast32(buf: &mut [u8], mask: [u8; 4]) {
        let mask_u32 = u32::from_ne_bytes(mask);

        // SAFETY: u32 has no invalid bit patterns (as in tungstenite).
        let (prefix, words, suffix) = unsafe { buf.align_to_mut::<u32>() };
        apply_mask_fallback(prefix, mask);
        let head = prefix.len() & 3;
        let mask_u32 = if head > 0 {
            if cfg!(target_endian = "big") {
                mask_u32.rotate_left(8 * head as u32)
            } else {
                mask_u32.rotate_right(8 * head as u32)
            }
        } else {
            mask_u32
        };
        for word in words.iter_mut() {
            *word ^= mask_u32;
        }
        apply_mask_fallback(suffix, mask_u32.to_ne_bytes());
    }
}

fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for size in SIZES {
        let label = size_label(size);
        let src = binary(size);
        let mut buf = src.clone();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("rfc6455", &label), |b| {
            b.iter(|| apply_mask(black_box(&mut buf[..]), black_box(KEY), 0))
        });
        group.bench_function(BenchmarkId::new("tungstenite", &label), |b| {
            b.iter(|| tungstenite_mask::apply_mask_fast32(black_box(&mut buf[..]), black_box(KEY)))
        });
        group.bench_function(BenchmarkId::new("memcpy", &label), |b| {
            b.iter(|| black_box(&mut buf[..]).copy_from_slice(black_box(&src[..])))
        });
    }
    group.finish();
}

/// What a client does with each payload it sends: append it masked behind the frame's header
/// (4 bytes here), in one pass (`extend_masked`) or copied then masked in place.
fn mask_copy(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask_copy");
    // Both ends of `extend_masked`'s copy-then-mask range (4 and 16 KiB) and either side.
    for size in [
        1 << 10,
        2 << 10,
        4 << 10,
        8 << 10,
        16 << 10,
        24 << 10,
        32 << 10,
        64 << 10,
        1 << 20,
    ] {
        let label = size_label(size);
        let src = binary(size);
        let mut out = Vec::with_capacity(size + 4);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("extend_masked", &label), |b| {
            b.iter(|| {
                out.clear();
                out.extend_from_slice(&[0x82, 0xFE, 0, 0]);
                extend_masked(&mut out, black_box(&src), black_box(KEY));
                black_box(&out);
            })
        });
        group.bench_function(BenchmarkId::new("copy_then_mask", &label), |b| {
            b.iter(|| {
                out.clear();
                out.extend_from_slice(&[0x82, 0xFE, 0, 0]);
                out.extend_from_slice(black_box(&src));
                apply_mask(&mut out[4..], black_box(KEY), 0);
                black_box(&out);
            })
        });
    }
    group.finish();
}

// ------------------------------------------------------------------------------------------
// UTF-8
// ------------------------------------------------------------------------------------------

fn utf8_group(c: &mut Criterion, name: &str, make: fn(usize) -> Vec<u8>) {
    let mut group = c.benchmark_group(name);
    for size in SIZES {
        let label = size_label(size);
        // `Bytes::from_static` makes tungstenite's side free of allocation and refcounting.
        let text: &'static [u8] = Box::leak(make(size).into_boxed_slice());
        assert!(std::str::from_utf8(text).is_ok());
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("rfc6455", &label), |b| {
            let mut v = Utf8Validator::default();
            b.iter(|| {
                let fed = v.feed(black_box(text));
                (fed, v.finish())
            })
        });
        group.bench_function(BenchmarkId::new("tungstenite", &label), |b| {
            b.iter(|| {
                let bytes = tungstenite::Bytes::from_static(black_box(text));
                tungstenite::Utf8Bytes::try_from(bytes).is_ok()
            })
        });
    }
    group.finish();
}

fn utf8(c: &mut Criterion) {
    utf8_group(c, "utf8_ascii", ascii_text);
    utf8_group(c, "utf8_mixed", mixed_text);
}

// ------------------------------------------------------------------------------------------
// whole-frame receive
// ------------------------------------------------------------------------------------------

/// An endless stream of the same frame: each `read` fills the whole buffer it is given.
struct Replay {
    wire: Vec<u8>,
    pos: usize,
}

impl Read for Replay {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            let k = (buf.len() - n).min(self.wire.len() - self.pos);
            buf[n..n + k].copy_from_slice(&self.wire[self.pos..self.pos + k]);
            self.pos = (self.pos + k) % self.wire.len();
            n += k;
        }
        Ok(n)
    }
}

impl Write for Replay {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn recv_group(c: &mut Criterion, name: &str, opcode: OpCode, make: fn(usize) -> Vec<u8>) {
    let mut group = c.benchmark_group(name);
    for size in SIZES {
        let label = size_label(size);
        let payload = make(size);
        let wire = client_frame(opcode, &payload);
        group.throughput(Throughput::Bytes(size as u64));

        group.bench_function(BenchmarkId::new("rfc6455", &label), |b| {
            let mut config = Config::default();
            config.max_frame_size = 16 << 20;
            config.max_message_size = 16 << 20;
            let mut conn = Connection::server(config);
            let mut buf = vec![0u8; wire.len()];
            b.iter(|| {
                buf.copy_from_slice(black_box(&wire));
                let mut input = &mut buf[..];
                match conn.read(&mut input) {
                    Ok(Some(Event::Message(m))) => m.len(),
                    other => panic!("unexpected {other:?}"),
                }
            })
        });

        group.bench_function(BenchmarkId::new("tungstenite", &label), |b| {
            use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
            let config = WebSocketConfig::default()
                .max_frame_size(Some(16 << 20))
                .max_message_size(Some(16 << 20));
            let replay = Replay {
                wire: wire.clone(),
                pos: 0,
            };
            let mut ws = WebSocket::from_raw_socket(replay, Role::Server, Some(config));
            b.iter(|| match ws.read() {
                Ok(m) if m.is_binary() || m.is_text() => m.len(),
                other => panic!("unexpected {other:?}"),
            })
        });

        group.bench_function(BenchmarkId::new("memcpy", &label), |b| {
            let mut dst = vec![0u8; size];
            b.iter(|| dst.copy_from_slice(black_box(&payload)))
        });
    }
    group.finish();
}

fn recv(c: &mut Criterion) {
    recv_group(c, "recv_binary", OpCode::Binary, binary);
    recv_group(c, "recv_text", OpCode::Text, mixed_text);
}

fn sanity() {
    // Both sides decode the same bytes to the same payload.
    for size in SIZES {
        let payload = mixed_text(size);
        let wire = client_frame(OpCode::Text, &payload);
        let mut buf = wire.clone();
        let mut input = &mut buf[..];
        let mut conn = Connection::server(Config::default());
        let ours = match conn.read(&mut input) {
            Ok(Some(Event::Message(m))) => m.as_bytes().to_vec(),
            other => panic!("unexpected {other:?}"),
        };
        let mut ws = tungstenite::protocol::WebSocket::from_raw_socket(
            Replay { wire, pos: 0 },
            tungstenite::protocol::Role::Server,
            None,
        );
        let theirs = ws.read().unwrap().into_data();
        assert_eq!(ours, payload);
        assert_eq!(&theirs[..], &payload[..]);
    }
}

fn all(c: &mut Criterion) {
    sanity();
    header_parse(c);
    mask(c);
    mask_copy(c);
    utf8(c);
    recv(c);
}

criterion_group! {
    name = benches;
    config = config(Criterion::default());
    targets = all
}
criterion_main!(benches);
