//! permessage-deflate throughput through `Connection`: compress (send) and decompress
//! (receive) of text messages, 1 KiB and 64 KiB, in uncompressed bytes per second.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rfc6455::proto::deflate::DeflateParams;
use rfc6455::{Config, Connection};
use std::hint::black_box;

/// JSON-ish chat text: compresses about 4:1 or better, like real traffic.
fn payload(len: usize) -> String {
    let words = [
        "{\"user\":\"",
        "alice",
        "bob",
        "carol",
        "\",\"text\":\"",
        "hello",
        "world",
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "lazy",
        "dog",
        "\",\"ts\":",
        "1700000000",
        "},",
        " ",
    ];
    let mut out = String::with_capacity(len + 16);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.push_str(words[(state % words.len() as u64) as usize]);
    }
    out.truncate(len);
    out
}

fn params(no_context_takeover: bool) -> DeflateParams {
    let mut p = DeflateParams::default();
    p.server_no_context_takeover = no_context_takeover;
    p.client_no_context_takeover = no_context_takeover;
    p.compression_threshold = 0;
    p
}

fn compress(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate/compress");
    for len in [1024, 64 * 1024] {
        let text = payload(len);
        group.throughput(Throughput::Bytes(len as u64));
        for (name, no_takeover) in [("takeover", false), ("no_takeover", true)] {
            let mut server = Connection::server(Config::default());
            server.set_deflate(params(no_takeover));
            group.bench_with_input(BenchmarkId::new(name, len), &text, |b, text| {
                b.iter(|| {
                    server.send_text(black_box(text)).unwrap();
                    let n = server.poll_transmit().len();
                    server.consume_transmit(n);
                })
            });
        }
    }
    group.finish();
}

fn decompress(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate/decompress");
    for len in [1024, 64 * 1024] {
        let text = payload(len);
        // Without context takeover every message stands alone, so one can be replayed.
        let mut client = Connection::client(Config::default(), || [1, 2, 3, 4]);
        client.set_deflate(params(true));
        client.send_text(&text).unwrap();
        let wire = client.poll_transmit().to_vec();
        eprintln!(
            "deflate {len} B text → {} B on the wire ({:.1}x)",
            wire.len(),
            len as f64 / wire.len() as f64
        );
        let mut server = Connection::server(Config::default());
        server.set_deflate(params(true));
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("no_takeover", len), &wire, |b, wire| {
            b.iter(|| {
                server.handle_bytes(black_box(wire)).unwrap();
                black_box(server.poll_event().unwrap());
            })
        });
        // Reference: the same text uncompressed through the same path.
        let mut plain = Connection::client(Config::default(), || [1, 2, 3, 4]);
        plain.send_text(&text).unwrap();
        let wire = plain.poll_transmit().to_vec();
        let mut server = Connection::server(Config::default());
        group.bench_with_input(BenchmarkId::new("uncompressed", len), &wire, |b, wire| {
            b.iter(|| {
                server.handle_bytes(black_box(wire)).unwrap();
                black_box(server.poll_event().unwrap());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, compress, decompress);
criterion_main!(benches);
