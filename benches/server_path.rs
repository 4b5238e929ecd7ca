//! The server's per-message path through the core: parse → handler → encode.
//!
//! A server-role [`Connection`] is fed masked client frames from a buffer through
//! [`Connection::read`] (unmasking in place, as the event loop does with its read buffer),
//! each message is "handled" by echoing it through [`Connection::send_through`] (as the
//! server's `Context::send` does: a message of 16 KiB or more that lies whole in the read
//! buffer goes to a "socket" that takes everything, with what is queued ahead of it; a
//! collected one is queued by value), and the rest of the output is taken with
//! `poll_transmit_vectored` / `consume_transmit` (one vectored write, as the loop's flush). The transmit buffer is lent and taken
//! back with `swap_transmit_buffer`, as the loop does. Throughput counts payload bytes.
//!
//! Groups:
//! - `one_per_read`: one message per read.
//! - `corked_16`: 16 messages per read, one transmit for all 16.
//! - `reads_64k`: 16 messages cut into 64 KiB reads (the loop's read buffer), so messages
//!   larger than a read take the buffering path.
//!
//! Each iteration first copies the masked wire bytes into the read buffer (a memcpy, like
//! the socket read it stands for).
//!
//! ```text
//! cargo bench --bench server_path
//! ```

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rfc6455::{Config, Connection, Event};
use std::hint::black_box;
use std::io::IoSlice;
use std::time::Duration;

const SIZES: [(usize, &str); 4] = [
    (20, "20B"),
    (1 << 10, "1KiB"),
    (16 << 10, "16KiB"),
    (1 << 20, "1MiB"),
];

/// `count` masked binary frames of `size` bytes, as a client sends them.
fn wire(size: usize, count: usize) -> Vec<u8> {
    let mut client = Connection::client(Config::default(), || [0x37, 0xfa, 0x21, 0x3d]);
    let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut out = Vec::new();
    for _ in 0..count {
        client.send_binary(&payload).unwrap();
        out.extend_from_slice(client.poll_transmit());
        let n = client.poll_transmit().len();
        client.consume_transmit(n);
    }
    out
}

/// The loop's work for the bytes of one batch, read in `chunk`-sized reads: copy in, parse,
/// echo, write out. Returns the bytes written.
fn echo(
    server: &mut Connection,
    wire: &[u8],
    buf: &mut [u8],
    chunk: usize,
    spare: &mut Vec<u8>,
) -> usize {
    let mut written = 0;
    for piece in wire.chunks(chunk) {
        let buf = &mut buf[..piece.len()];
        buf.copy_from_slice(piece);
        server.swap_transmit_buffer(spare);
        let mut input = &mut buf[..];
        while let Some(event) = server.read(&mut input).unwrap() {
            if let Event::Message(m) = event {
                // As the server's Context::send with room in the socket.
                server
                    .send_through(m, |pieces| {
                        let bytes: usize = black_box(pieces).iter().map(|p| p.len()).sum();
                        written += bytes;
                        Ok(bytes)
                    })
                    .unwrap();
            }
        }
        // As the loop's flush: vectored writes of up to 16 pieces until all is out.
        while server.transmit_len() > 0 {
            let mut pieces = [IoSlice::new(&[]); 16];
            let n = server.poll_transmit_vectored(&mut pieces);
            let bytes: usize = black_box(&pieces[..n]).iter().map(|p| p.len()).sum();
            written += bytes;
            server.consume_transmit(bytes);
        }
        server.swap_transmit_buffer(spare);
        server.shrink_buffers();
    }
    written
}

fn bench(c: &mut Criterion, group: &str, per_batch: usize, read_size: Option<usize>) {
    let mut g = c.benchmark_group(group);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.sample_size(20);
    for (size, name) in SIZES {
        let wire = wire(size, per_batch);
        let chunk = read_size.unwrap_or(wire.len());
        g.throughput(Throughput::Bytes((size * per_batch) as u64));
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            let mut server = Connection::server(Config::default());
            let mut buf = vec![0u8; chunk];
            let mut spare = Vec::new();
            b.iter(|| echo(&mut server, &wire, &mut buf, chunk, &mut spare));
        });
    }
    g.finish();
}

fn server_path(c: &mut Criterion) {
    bench(c, "server_path/one_per_read", 1, None);
    bench(c, "server_path/corked_16", 16, None);
    bench(c, "server_path/reads_64k", 16, Some(64 << 10));
}

criterion_group!(benches, server_path);
criterion_main!(benches);
