//! A publish through the core: encode once → queue to every subscriber → take each
//! subscriber's output as the loop's flush does (one vectored "write" that takes everything).
//!
//! - `shared`: what the server's topics do: one [`SharedFrame`] per publish, handed to each
//!   subscriber with [`Connection::send_shared`] (a frame of 16 KiB or more is queued by
//!   reference, a smaller one copied into the subscriber's transmit buffer).
//! - `per_subscriber`: what a handler that loops over its connections does: `send` per
//!   subscriber, a frame built (header encoded, payload copied) for each.
//!
//! - `publish_deflate_16KiB_text`: subscribers with permessage-deflate
//!   (`server_no_context_takeover`): the shared frame compressed once per publish against
//!   `send` compressing it for each subscriber.
//!
//! For 1, 100 and 10,000 subscribers and 64 B and 16 KiB messages; throughput counts
//! deliveries (elements). The transmit buffer is lent from one spare as the loop does.
//!
//! ```text
//! cargo bench --bench publish
//! ```

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rfc6455::{Config, Connection, Message, SharedFrame};
use std::hint::black_box;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;

/// Takes everything `conn` has queued, as one vectored write that the socket takes whole.
fn drain(conn: &mut Connection, spare: &mut Vec<u8>) -> usize {
    let mut pieces = [IoSlice::new(&[]); 16];
    let n = conn.poll_transmit_vectored(&mut pieces);
    let written: usize = pieces[..n].iter().map(|p| black_box(p.len())).sum();
    conn.consume_transmit(written);
    conn.swap_transmit_buffer(spare);
    written
}

/// Benches `shared` (one `SharedFrame` per publish) against `per_subscriber` (`send` to each)
/// over `conns`, publishing `message`.
fn shared_against_per_subscriber(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    conns: &mut [Connection],
    message: &Message<'_>,
) {
    let mut spare = Vec::new();
    let subscribers = conns.len();
    group.throughput(Throughput::Elements(subscribers as u64));
    group.bench_function(BenchmarkId::new("shared", subscribers), |b| {
        b.iter(|| {
            let frame = SharedFrame::new(message);
            let mut total = 0;
            for conn in conns.iter_mut() {
                conn.swap_transmit_buffer(&mut spare);
                conn.send_shared(&frame).unwrap();
                total += drain(conn, &mut spare);
            }
            total
        })
    });
    group.bench_function(BenchmarkId::new("per_subscriber", subscribers), |b| {
        b.iter(|| {
            let mut total = 0;
            for conn in conns.iter_mut() {
                conn.swap_transmit_buffer(&mut spare);
                conn.send(message.clone()).unwrap();
                total += drain(conn, &mut spare);
            }
            total
        })
    });
}

fn publish(c: &mut Criterion) {
    let config = Arc::new(Config::default());
    for (size, size_name) in [(64usize, "64B"), (16 << 10, "16KiB")] {
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let mut group = c.benchmark_group(format!("publish_{size_name}"));
        group.measurement_time(Duration::from_secs(3));
        group.warm_up_time(Duration::from_secs(1));
        for subscribers in [1usize, 100, 10_000] {
            let mut conns: Vec<Connection> = (0..subscribers)
                .map(|_| Connection::server_shared(config.clone()))
                .collect();
            shared_against_per_subscriber(&mut group, &mut conns, &Message::binary(&payload[..]));
        }
        group.finish();
    }
}

/// permessage-deflate, `server_no_context_takeover`: the shared frame is compressed once per
/// publish; `send` compresses it again for every subscriber.
#[cfg(feature = "deflate")]
fn publish_deflate(c: &mut Criterion) {
    use rfc6455::proto::deflate::DeflateParams;
    let config = Arc::new(Config::default());
    let mut params = DeflateParams::default();
    params.server_no_context_takeover = true;
    let text: String = (0..16 << 10)
        .map(|i| ["chat ", "room ", "hello ", "message "][i % 4])
        .collect::<String>()[..16 << 10]
        .to_owned();
    let mut group = c.benchmark_group("publish_deflate_16KiB_text");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    for subscribers in [1usize, 100] {
        let mut conns: Vec<Connection> = (0..subscribers)
            .map(|_| {
                let mut conn = Connection::server_shared(config.clone());
                conn.set_deflate(params);
                conn
            })
            .collect();
        shared_against_per_subscriber(&mut group, &mut conns, &Message::text(text.as_str()));
    }
    group.finish();
}

#[cfg(not(feature = "deflate"))]
fn publish_deflate(_: &mut Criterion) {}

criterion_group!(benches, publish, publish_deflate);
criterion_main!(benches);
