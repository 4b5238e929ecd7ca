//! Memory per idle connection: opens N WebSocket connections to a running server, finishes
//! each handshake, holds them, and reports how much the server's resident set grew.
//!
//! ```text
//! ulimit -n 20000
//! target/release/rfc6455 echo --threads 1 --listen 127.0.0.1:9101 --max-connections 20000 &
//! cargo run --release --example idle_rss -- 127.0.0.1:9101 10000 $!
//! ```
//!
//! Reads `VmRSS` from `/proc/PID/status` before the first connection and after the last
//! handshake (settled for a moment), and prints `(after - before) / N`. Kernel socket buffers
//! are not part of the resident set, so this is the server's own per-connection cost: its
//! slab entry, timer entry and whatever the allocator keeps for it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn open(addr: &str) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut head = Vec::new();
    let mut byte = [0u8; 256];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut byte)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&byte[..n]);
        if head.len() > 4096 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(std::io::Error::other(
            String::from_utf8_lossy(&head).into_owned(),
        ));
    }
    Ok(stream)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(addr), Some(n), Some(pid)) = (
        args.first(),
        args.get(1).and_then(|n| n.parse::<usize>().ok()),
        args.get(2).and_then(|p| p.parse::<u32>().ok()),
    ) else {
        eprintln!("usage: idle_rss ADDR N SERVER_PID");
        return ExitCode::from(2);
    };
    let Some(before) = rss_kib(pid) else {
        eprintln!("idle_rss: cannot read /proc/{pid}/status");
        return ExitCode::FAILURE;
    };
    let started = Instant::now();
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        match open(addr) {
            Ok(s) => held.push(s),
            Err(e) => {
                eprintln!("idle_rss: connection {i}: {e}");
                return ExitCode::FAILURE;
            }
        }
        if started.elapsed() > Duration::from_secs(120) {
            eprintln!("idle_rss: gave up after {i} connections (120 s)");
            return ExitCode::FAILURE;
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(pid).unwrap_or(before);
    let per = (after.saturating_sub(before) * 1024) as f64 / n as f64;
    println!(
        "{n} idle connections in {:.1} s: server RSS {before} KiB -> {after} KiB, {per:.0} B/conn",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
