//! Heap cost of permessage-deflate per connection, measured with a counting allocator.
//!
//! Run with `cargo test --release --test deflate_memory -- --nocapture` to see the table.
//! One test only, and only its own thread is counted: libtest's main thread allocates now and
//! then while a test runs (a CPU hog beside the test made "everything freed" fail 1 run in 3).
//! (The library forbids `unsafe`; a `GlobalAlloc` cannot be written without it, and this
//! test binary is not part of the library.)
#![cfg(feature = "deflate")]
#![allow(clippy::field_reassign_with_default)]

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use rfc6455::proto::deflate::{DeflateConfig, DeflateParams};
use rfc6455::{Config, Connection};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

struct Counting;
// Signed: a block allocated before counting began may be freed while it is on.
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread's allocations are counted (see `count_this_thread`).
fn counted() -> bool {
    COUNTED.try_with(Cell::get).unwrap_or(false)
}

fn count_this_thread() {
    COUNTED.with(|c| c.set(true));
}

fn add(bytes: usize) {
    if counted() {
        let live = LIVE.fetch_add(bytes as isize, Relaxed) + bytes as isize;
        PEAK.fetch_max(live, Relaxed);
    }
}

fn sub(bytes: usize) {
    if counted() {
        LIVE.fetch_sub(bytes as isize, Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        sub(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }
    // Counted as the allocator holds it: old and new block at once (a copying realloc).
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size);
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        sub(layout.size());
        new
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Relaxed)
}

/// Bytes counted since `before` (a `live()` reading).
fn since(before: isize) -> usize {
    usize::try_from(live() - before).unwrap_or(0)
}

fn kib(n: usize) -> String {
    format!("{:.1} KiB", n as f64 / 1024.0)
}

fn text(len: usize) -> String {
    let words = ["alpha ", "beta ", "gamma ", "{\"id\":42} ", "delta "];
    let mut out = String::new();
    let mut i = 7usize;
    while out.len() < len {
        i = i.wrapping_mul(31).wrapping_add(17);
        out.push_str(words[i % words.len()]);
    }
    out
}

/// A server connection's heap after one 10 KiB text each way, and after shrink_buffers.
fn connection_cost(server_params: DeflateParams, client_params: DeflateParams) -> (usize, usize) {
    let msg = text(10_240);
    let mut client = Connection::client(Config::default(), || [1, 2, 3, 4]);
    client.set_deflate(client_params);
    client.send_text(&msg).unwrap();
    let wire = client.poll_transmit().to_vec();
    client.consume_transmit(wire.len());

    let before = live();
    let mut server = Connection::server(Config::default());
    server.set_deflate(server_params);
    server.handle_bytes(&wire).unwrap();
    while server.poll_event().is_some() {}
    server.send_text(&msg).unwrap();
    let n = server.poll_transmit().len();
    server.consume_transmit(n);
    let busy = since(before) + std::mem::size_of::<Connection>();
    server.shrink_buffers();
    let idle = since(before) + std::mem::size_of::<Connection>();
    drop(server);
    assert!(live() <= before, "everything freed");
    (busy, idle)
}

#[test]
fn memory_per_connection() {
    count_this_thread();
    println!("\nzlib-rs state (flate2, memLevel 8), heap bytes:");
    println!("{:>6} {:>14} {:>14}", "bits", "compressor", "decompressor");
    let mut compressor_15 = 0;
    for bits in [9u8, 10, 12, 15] {
        let before = live();
        let c = Compress::new_with_window_bits(Compression::new(6), false, bits);
        let compressor = since(before);
        drop(c);
        let mut c = Compress::new_with_window_bits(Compression::new(6), false, bits);
        let mut compressed = Vec::with_capacity(8192);
        c.compress_vec(text(4000).as_bytes(), &mut compressed, FlushCompress::Sync)
            .unwrap();
        let mut out = Vec::with_capacity(8192);
        let before = live();
        let mut d = Decompress::new_with_window_bits(false, bits);
        d.decompress_vec(&compressed, &mut out, FlushDecompress::None)
            .unwrap();
        // The window is allocated on first use, so this is the working size.
        let decompressor = since(before);
        println!(
            "{bits:>6} {:>14} {:>14}",
            kib(compressor),
            kib(decompressor)
        );
        if bits == 15 {
            compressor_15 = compressor;
        }
        drop((c, d, out, compressed));
    }
    assert!(compressor_15 < 400 << 10, "{compressor_15}");

    let takeover = DeflateParams::default();
    let lean = {
        let config = DeflateConfig::default();
        let (_, params) = config.server_negotiate(&[config.client_offer()]).unwrap();
        params
    };
    let mut none = lean;
    none.client_no_context_takeover = true;
    let mut small = takeover;
    small.client_max_window_bits = 10;
    small.server_max_window_bits = 10;
    println!("\nserver connection after one 10 KiB message each way:");
    println!("{:<54} {:>12} {:>12}", "", "busy", "idle*");
    let no_deflate = {
        let before = live();
        let mut s = Connection::server(Config::default());
        s.send_text(&text(10_240)).unwrap();
        let n = s.poll_transmit().len();
        s.consume_transmit(n);
        s.shrink_buffers();
        since(before) + std::mem::size_of::<Connection>()
    };
    println!("{:<54} {:>12} {:>12}", "no deflate", "", kib(no_deflate));
    for (name, p) in [
        ("context takeover both ways, 15 bits", takeover),
        ("context takeover both ways, 10 bits", small),
        ("DeflateConfig::default (server_no_context_takeover)", lean),
        ("no context takeover either way", none),
    ] {
        let (busy, idle) = connection_cost(p, p);
        println!("{name:<54} {:>12} {:>12}", kib(busy), kib(idle));
        if p.server_no_context_takeover && p.client_no_context_takeover {
            assert!(idle < 4 << 10, "{name}: {idle}");
        }
    }
    println!("* after Connection::shrink_buffers()");

    // A bomb: 16 MiB of zeros (~16 KiB compressed) against a 1 MiB limit.
    let mut c = Connection::client(Config::default(), || [0; 4]);
    let mut p = DeflateParams::default();
    p.compression_threshold = 0;
    c.set_deflate(p);
    c.send_binary(&vec![0u8; 16 << 20]).unwrap();
    let wire = c.poll_transmit().to_vec();
    drop(c);
    let mut config = Config::default();
    config.max_message_size = 1 << 20;
    let mut s = Connection::server(config);
    s.set_deflate(DeflateParams::default());
    let before = live();
    PEAK.store(before, Relaxed);
    assert!(s.handle_bytes(&wire).is_err());
    let peak = usize::try_from(PEAK.load(Relaxed) - before).unwrap_or(0);
    println!(
        "\nbomb: {} compressed → 16 MiB, limit 1 MiB: peak extra heap {} (incl. a {} copy of the input in handle_bytes)",
        kib(wire.len()),
        kib(peak),
        kib(wire.len())
    );
    // Growing the message Vec to the limit: at worst the last reallocation holds the old
    // and the new block at once, as for any message assembled in a growing buffer.
    assert!(peak < 2 * (1 << 20) + (100 << 10), "peak {peak}");
}
