//! Heap held by one idle server-side TLS connection (rustls `ServerConnection` after the
//! handshake and one exchange), measured with a counting allocator around the server's calls
//! only. Run with `cargo test --release --test tls_memory -- --nocapture` for the figure.
//!
//! With rustls 0.23.48 on aws-lc-rs it is 6,425 bytes. On ring it was 7,449 (TLS 1.3,
//! AES-256-GCM): 4,096 the record
//! deframer's read buffer (rustls' buffered API keeps 4 KiB after every read and has no way
//! to release it), 1,168 the `ServerConnection` itself (boxed by the transport), 640 the
//! handshake deframer, 2 × 560 the AEAD keys, 224 the traffic state, 2 × 96 the send and
//! plaintext queues, 9 the SNI name. The server's own part of a connection is measured
//! separately (benches/LOAD.md's idle figures).
//! (The library forbids `unsafe`; a `GlobalAlloc` cannot be written without it, and this test
//! binary is not part of the library.)
#![cfg(feature = "tls")]

use rcgen::{CertificateParams, KeyPair};
use rfc6455::tls::rustls;
use rfc6455::tls::TlsConfig;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::sync::Arc;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn counted() -> bool {
    COUNTED.try_with(Cell::get).unwrap_or(false)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            LIVE.fetch_add(layout.size() as isize, Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counted() {
            LIVE.fetch_sub(layout.size() as isize, Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counted() {
            LIVE.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` with this thread's allocations counted.
fn server_side<T>(f: impl FnOnce() -> T) -> T {
    COUNTED.with(|c| c.set(true));
    let out = f();
    COUNTED.with(|c| c.set(false));
    out
}

/// Moves every record `from` has queued into `to`.
fn pump(from: &mut dyn FnMut(&mut Vec<u8>), to: &mut dyn FnMut(&[u8])) -> usize {
    // Big enough not to grow while the server writes into it: counted, it would look like the
    // server's (and be freed uncounted).
    let mut wire = Vec::with_capacity(1 << 16);
    from(&mut wire);
    if !wire.is_empty() {
        to(&wire);
    }
    wire.len()
}

#[test]
fn heap_of_an_idle_server_tls_connection() {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let server_config =
        TlsConfig::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let client_config = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let config = server_config.rustls().clone();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();

    let before = LIVE.load(Relaxed);
    let mut server = server_side(|| Box::new(rustls::ServerConnection::new(config).unwrap()));
    let mut client = rustls::ClientConnection::new(client_config, name).unwrap();
    let mut plaintext = [0u8; 1024];
    for _ in 0..10 {
        let c2s = pump(
            &mut |w| {
                while client.wants_write() {
                    client.write_tls(w).unwrap();
                }
            },
            &mut |bytes| {
                server_side(|| {
                    let mut rd = bytes;
                    while !rd.is_empty() {
                        server.read_tls(&mut rd).unwrap();
                        server.process_new_packets().unwrap();
                    }
                    while let Ok(n) = server.reader().read(&mut plaintext) {
                        if n == 0 {
                            break;
                        }
                    }
                })
            },
        );
        let s2c = pump(
            &mut |w| {
                server_side(|| {
                    while server.wants_write() {
                        server.write_tls(w).unwrap();
                    }
                })
            },
            &mut |bytes| {
                let mut rd = bytes;
                while !rd.is_empty() {
                    client.read_tls(&mut rd).unwrap();
                    client.process_new_packets().unwrap();
                }
            },
        );
        if !client.is_handshaking() && !server.is_handshaking() && c2s == 0 && s2c == 0 {
            break;
        }
    }
    assert!(!server.is_handshaking());
    // One request and one reply, as an upgrade request and its 101 would be.
    client.writer().write_all(&[b'x'; 300]).unwrap();
    let mut wire = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut wire).unwrap();
    }
    server_side(|| {
        let mut rd = &wire[..];
        while !rd.is_empty() {
            server.read_tls(&mut rd).unwrap();
            server.process_new_packets().unwrap();
        }
        let mut got = 0;
        while let Ok(n) = server.reader().read(&mut plaintext) {
            if n == 0 {
                break;
            }
            got += n;
        }
        assert_eq!(got, 300);
        server.writer().write_all(&[b'y'; 200]).unwrap();
        let mut out = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut out).unwrap();
        }
    });
    let idle = LIVE.load(Relaxed) - before;
    println!(
        "idle server TLS connection: {idle} bytes of heap (size_of ServerConnection {})",
        std::mem::size_of::<rustls::ServerConnection>()
    );
    // A guard against growth (a rustls upgrade, or a buffer kept by mistake): 6,425 today.
    assert!(
        idle <= 8 << 10,
        "an idle TLS connection holds {idle} bytes of heap, more than 8 KiB"
    );
    server_side(|| drop(server));
    let after = LIVE.load(Relaxed) - before;
    assert!(
        after <= 0,
        "{after} bytes still held after the connection was dropped"
    );
}
