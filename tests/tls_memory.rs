//! Heap held by one idle server-side TLS connection (a `tls::Session` after the handshake and
//! one exchange, as the server's transport keeps it), and by one whose socket never empties,
//! measured with a counting allocator around the server's calls only. Run with
//! `cargo test --release --test tls_memory -- --nocapture` for the figure.
//!
//! rustls' buffered `ServerConnection`, which the server used before `Session`, held 6,425
//! bytes idle on aws-lc-rs (7,449 on ring: 4,096 of it the record deframer's read buffer,
//! which rustls' buffered API keeps after every read, 1,168 the `ServerConnection` itself,
//! 640 the handshake deframer, 2 × 560 the AEAD keys). A `Session` keeps its keys and
//! rustls' `KernelConnection` (for key updates); its read and write buffers are the thread's
//! while it is idle. The thread's buffers are made by a first connection, before counting.
//! The server's own part of a connection is measured separately (benches/LOAD.md's idle
//! figures).
//! (The library forbids `unsafe`; a `GlobalAlloc` cannot be written without it, and this test
//! binary is not part of the library.)
#![cfg(feature = "tls")]

use rcgen::{CertificateParams, KeyPair};
use rfc6455::tls::rustls;
use rfc6455::tls::{Session, TlsConfig};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::sync::Arc;

struct Counting;

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
    /// Bytes allocated less bytes freed by this thread's counted calls (per thread: the tests
    /// run side by side).
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn counted() -> bool {
    COUNTED.try_with(Cell::get).unwrap_or(false)
}

fn add(bytes: isize) {
    if counted() {
        let _ = LIVE.try_with(|live| live.set(live.get() + bytes));
    }
}

fn live() -> isize {
    LIVE.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as isize - layout.size() as isize);
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

/// Bytes as a non-blocking socket: `WouldBlock` once they are read.
struct Wire<'a>(&'a [u8]);

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_empty() {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// A server session and a rustls client through the handshake and one exchange (a 300-byte
/// request, a 200-byte answer, as an upgrade and its 101 would be), the session's calls
/// counted when `counted`.
fn connect(config: &TlsConfig, client: Arc<rustls::ClientConfig>, counted: bool) -> Session {
    let run = |f: &mut dyn FnMut()| {
        if counted {
            server_side(f)
        } else {
            f()
        }
    };
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut client = rustls::ClientConnection::new(client, name).unwrap();
    let mut session = None;
    run(&mut || session = Some(Session::server(config.rustls().clone()).unwrap()));
    let mut session = session.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    // Made here, not in a counted call: it would look like the session's.
    let mut got = Vec::with_capacity(1024);
    for _ in 0..10 {
        if !client.is_handshaking() && got.is_empty() {
            client.writer().write_all(&[b'x'; 300]).unwrap();
        }
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        // Big enough not to grow while the session writes into it: counted, it would look
        // like the session's (and be freed uncounted).
        let mut back = Vec::with_capacity(1 << 16);
        run(&mut || {
            let mut socket = Wire(&wire);
            while let Ok(read) = session.read(&mut socket, &mut buf) {
                if read.len == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..read.len]);
            }
            if got.len() == 300 {
                session
                    .write_vectored(&[std::io::IoSlice::new(&[b'y'; 200])])
                    .unwrap();
                got.push(0);
            }
            session.write_records(&mut back).unwrap();
        });
        let mut rd = &back[..];
        while !rd.is_empty() {
            client.read_tls(&mut rd).unwrap();
            client.process_new_packets().unwrap();
        }
        let mut answer = Vec::new();
        let _ = client.reader().read_to_end(&mut answer);
        if answer.len() == 200 {
            return session;
        }
    }
    panic!("no answer after 10 rounds");
}

/// A server configuration for a self-signed "localhost" and a rustls client that trusts it.
fn configs() -> (TlsConfig, Arc<rustls::ClientConfig>) {
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
    (server_config, client_config)
}

#[test]
fn heap_of_an_idle_server_tls_connection() {
    let (server_config, client_config) = configs();
    // The thread's buffers, made uncounted.
    drop(connect(&server_config, client_config.clone(), false));
    let before = live();
    let session = connect(&server_config, client_config, true);
    let idle = live() - before;
    println!(
        "idle server TLS connection: {idle} bytes of heap (size_of Session {})",
        std::mem::size_of::<Session>()
    );
    // A guard against growth (a rustls upgrade, or a buffer kept by mistake).
    assert!(
        idle <= 4 << 10,
        "an idle TLS connection holds {idle} bytes of heap, more than 4 KiB"
    );
    server_side(|| drop(session));
    let after = live() - before;
    assert!(
        after <= 0,
        "{after} bytes still held after the connection was dropped"
    );
}

/// Takes `left` more bytes, then says `WouldBlock`: a reader slower than the writer, whose
/// socket never empties.
struct Slow {
    left: usize,
}

impl Write for Slow {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.left);
        self.left -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A session whose socket never empties keeps a bounded outgoing buffer: 32 MiB offered
/// 16 KiB at a time to a socket that takes 16 KiB per call (so a few bytes always wait) used
/// to grow the buffer by everything sent (records were written from the front and sealed at
/// the back, and the front came back to the start only once the socket had taken all).
#[test]
fn a_socket_that_never_empties_keeps_the_outgoing_buffer_bounded() {
    let (server_config, client_config) = configs();
    let mut session = connect(&server_config, client_config, false);
    let message = vec![b'z'; 16 << 10];
    let before = live();
    let mut most = 0;
    let mut sent = 0;
    server_side(|| {
        for _ in 0..2048 {
            match session.write_vectored(&[std::io::IoSlice::new(&message)]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            let mut socket = Slow { left: 16 << 10 };
            assert!(!session.write_records(&mut socket).unwrap());
            most = most.max(live() - before);
        }
    });
    println!("{sent} bytes sealed; the most heap held: {most} bytes");
    assert!(sent > 16 << 20, "only {sent} bytes were taken");
    assert!(
        most <= 512 << 10,
        "the session held {most} bytes of heap after {sent} bytes sent through a slow socket"
    );
}
