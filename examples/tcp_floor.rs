//! The floor under scenario c of `benches/load.sh`: the same traffic as an echo of 16 KiB
//! messages, with no WebSocket at all. A plain TCP echo server and a client that keeps one
//! message of SIZE bytes in flight on each of CONNS connections, both one mio loop on one
//! thread, like `rfc6455 echo --threads 1` and `rfc6455 load`. Whatever this pair reaches is
//! the most any WebSocket server could reach with any client on the same machine, since both
//! do strictly less here (no framing, no masking, no parsing):
//!
//! ```text
//! cargo build --release --example tcp_floor
//! taskset -c 0 target/release/examples/tcp_floor server 127.0.0.1:9200 &
//! taskset -c 1 target/release/examples/tcp_floor client 127.0.0.1:9200 10 16384 5
//! ```
//!
//! The client prints round trips per second over SECONDS, after one second of warmup.
//!
//! `wsclient` is the same client speaking just enough WebSocket to drive a real server: one
//! fixed handshake, then a binary frame masked once, up front, with a fixed key, resent
//! as is (a real client must draw a fresh key per frame); it reads only frame headers, to
//! find where each echo ends (a server may echo a message as several frames).
//! Against `rfc6455 echo` it shows what the server reaches when the client costs nothing
//! but its syscalls:
//!
//! ```text
//! taskset -c 0 target/release/rfc6455 echo --threads 1 --listen 127.0.0.1:9201 &
//! taskset -c 1 target/release/examples/tcp_floor wsclient 127.0.0.1:9201 10 16384 5
//! ```

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use rfc6455::proto::{FrameHeader, Status, MAX_HEADER_LEN};
use rfc6455::{Config, Connection};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        "usage: tcp_floor server ADDR | tcp_floor (client | wsclient) ADDR CONNS SIZE SECONDS";
    let result = match args.get(1).map(String::as_str) {
        Some("server") if args.len() == 3 => server(parse(&args[2])),
        Some(role @ ("client" | "wsclient")) if args.len() == 6 => client(
            parse(&args[2]),
            parse(&args[3]),
            parse(&args[4]),
            Duration::from_secs(parse(&args[5])),
            role == "wsclient",
        ),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("tcp_floor: {e}");
        std::process::exit(1);
    }
}

fn parse<T: std::str::FromStr>(text: &str) -> T {
    text.parse().unwrap_or_else(|_| {
        eprintln!("tcp_floor: cannot read {text:?}");
        std::process::exit(2)
    })
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Writes `data` now, keeping in `pending` what the socket did not take.
fn send(sock: &mut TcpStream, pending: &mut Vec<u8>, data: &[u8]) -> io::Result<()> {
    if !pending.is_empty() {
        pending.extend_from_slice(data);
        return flush(sock, pending);
    }
    match sock.write(data) {
        Ok(n) => pending.extend_from_slice(&data[n..]),
        Err(e) if would_block(&e) => pending.extend_from_slice(data),
        Err(e) => return Err(e),
    }
    Ok(())
}

fn flush(sock: &mut TcpStream, pending: &mut Vec<u8>) -> io::Result<()> {
    while !pending.is_empty() {
        match sock.write(pending) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(e) if would_block(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Echoes every byte back, reading into one 64 KiB buffer like `rfc6455 echo`.
fn server(addr: SocketAddr) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<Option<(TcpStream, Vec<u8>)>> = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut events = Events::with_capacity(1024);
    loop {
        poll.poll(&mut events, None)?;
        for event in &events {
            if event.token() == LISTENER {
                while let Ok((mut sock, _)) = listener.accept() {
                    sock.set_nodelay(true)?;
                    let token = Token(conns.len());
                    poll.registry().register(
                        &mut sock,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    conns.push(Some((sock, Vec::new())));
                }
                continue;
            }
            let slot = &mut conns[event.token().0];
            let Some((sock, pending)) = slot else {
                continue;
            };
            let mut alive = flush(sock, pending).is_ok();
            while alive {
                match sock.read(&mut buf) {
                    Ok(0) => alive = false,
                    Ok(n) => {
                        alive = send(sock, pending, &buf[..n]).is_ok();
                        if n < buf.len() {
                            break; // drained: edge-triggered, the next byte raises an event
                        }
                    }
                    Err(e) if would_block(&e) => break,
                    Err(_) => alive = false,
                }
            }
            if !alive {
                *slot = None;
            }
        }
    }
}

/// A binary frame of `size` bytes masked with a fixed key (made by the crate's own client
/// core).
fn ws_frame(size: usize) -> Vec<u8> {
    let mut client = Connection::client(Config::default(), || [0x37, 0xfa, 0x21, 0x3d]);
    client.send_binary(&vec![0x5a; size]).unwrap();
    client.poll_transmit().to_vec()
}

/// Where the echoes end in a server's stream of frames: skips payloads, parses headers.
#[derive(Default)]
struct Frames {
    /// Payload bytes left in the current frame.
    rest: u64,
    /// The current frame ends its message.
    fin: bool,
    /// A header split between reads, so far.
    head: Vec<u8>,
}

impl Frames {
    /// Walks `data`; returns how many messages ended in it.
    fn ends(&mut self, mut data: &[u8]) -> io::Result<u64> {
        let mut ended = 0;
        while !data.is_empty() {
            if self.rest > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.rest).unwrap_or(usize::MAX));
                self.rest -= n as u64;
                data = &data[n..];
                ended += u64::from(self.rest == 0 && self.fin);
                continue;
            }
            let had = self.head.len();
            let add = data.len().min(MAX_HEADER_LEN - had);
            self.head.extend_from_slice(&data[..add]);
            match FrameHeader::parse(&self.head) {
                Ok(Status::Complete(h, n)) => {
                    data = &data[n - had..];
                    self.head.clear();
                    (self.rest, self.fin) = (h.payload_len, h.fin);
                    ended += u64::from(self.rest == 0 && self.fin);
                }
                Ok(Status::Partial) => data = &data[add..],
                Err(e) => return Err(io::Error::other(format!("the server sent {e}"))),
            }
        }
        Ok(ended)
    }
}

/// Sends a fixed upgrade request on a blocking socket and reads up to the end of the 101.
fn ws_handshake(sock: &mut std::net::TcpStream, addr: SocketAddr) -> io::Result<()> {
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    sock.write_all(request.as_bytes())?;
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        sock.read_exact(&mut byte)?; // byte by byte: nothing after the head may be consumed
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(io::Error::other(
            String::from_utf8_lossy(&head).into_owned(),
        ));
    }
    Ok(())
}

/// One message of `size` bytes in flight per connection; counts the echoes.
fn client(
    addr: SocketAddr,
    conns: usize,
    size: usize,
    seconds: Duration,
    ws: bool,
) -> io::Result<()> {
    struct Conn {
        sock: TcpStream,
        pending: Vec<u8>,
        received: usize,
        frames: Frames,
    }
    let mut poll = Poll::new()?;
    let payload = size;
    let message = if ws {
        ws_frame(payload)
    } else {
        vec![0x5au8; payload]
    };
    let mut all = Vec::with_capacity(conns);
    for i in 0..conns {
        let mut sock = std::net::TcpStream::connect(addr)?;
        if ws {
            ws_handshake(&mut sock, addr)?;
        }
        sock.set_nodelay(true)?;
        sock.set_nonblocking(true)?;
        let mut sock = TcpStream::from_std(sock);
        poll.registry()
            .register(&mut sock, Token(i), Interest::READABLE | Interest::WRITABLE)?;
        let mut conn = Conn {
            sock,
            pending: Vec::new(),
            received: 0,
            frames: Frames::default(),
        };
        send(&mut conn.sock, &mut conn.pending, &message)?;
        all.push(conn);
    }
    let mut buf = vec![0u8; 256 << 10];
    let mut events = Events::with_capacity(1024);
    let start = Instant::now();
    let (from, to) = (
        start + Duration::from_secs(1),
        start + Duration::from_secs(1) + seconds,
    );
    let mut counted = 0u64;
    while Instant::now() < to {
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for event in &events {
            let conn = &mut all[event.token().0];
            flush(&mut conn.sock, &mut conn.pending)?;
            loop {
                match conn.sock.read(&mut buf) {
                    Ok(0) => return Err(io::Error::other("the server closed a connection")),
                    Ok(n) => {
                        let echoes = if ws {
                            conn.frames.ends(&buf[..n])?
                        } else {
                            conn.received += n;
                            let whole = conn.received / payload;
                            conn.received %= payload;
                            whole as u64
                        };
                        for _ in 0..echoes {
                            let now = Instant::now();
                            if now >= from && now < to {
                                counted += 1;
                            }
                            send(&mut conn.sock, &mut conn.pending, &message)?;
                        }
                        if n < buf.len() {
                            break;
                        }
                    }
                    Err(e) if would_block(&e) => break,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let rate = counted as f64 / seconds.as_secs_f64();
    println!(
        "{counted} echoes in {:.2} s = {rate:.0} msg/s ({conns} connections x {payload} B, one in flight each)",
        seconds.as_secs_f64()
    );
    Ok(())
}
