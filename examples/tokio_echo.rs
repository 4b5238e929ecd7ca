//! An echo server on `rfc6455::tokio`, one current-thread runtime (one core): every message
//! back as it came. The Autobahn testee of `bash autobahn/run.sh tokio-server` and the tokio
//! row of `benches/load.sh`.
//!
//! ```text
//! cargo run --release --example tokio_echo -- 127.0.0.1:9001 [--deflate]
//! ```

use rfc6455::proto::deflate::DeflateConfig;
use rfc6455::proto::Request;
use rfc6455::tokio::{accept_with, AcceptOptions, Reply};
use rfc6455::{Config, Event};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args.iter().find(|a| !a.starts_with("--")).cloned();
    let addr = addr.unwrap_or_else(|| "127.0.0.1:9001".into());
    let mut config = Config::default();
    config.max_frame_size = 64 << 20; // Autobahn 9.* sends frames up to 16 MiB
                                      // As `rfc6455 echo`: large binary messages are echoed part by part as they arrive.
    config.stream_binary_from = Some(64 << 10);
    let mut options = AcceptOptions::default().config(config);
    if args.iter().any(|a| a == "--deflate") {
        options = options.deflate(DeflateConfig::default());
    }
    let options = Arc::new(options);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(&addr).await?;
        eprintln!("tokio_echo: listening on {addr}");
        loop {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            let options = options.clone();
            tokio::spawn(async move {
                let accept = |request: &Request| Ok(request.accept());
                let Ok(mut ws) = accept_with(tcp, accept, &options).await else {
                    return;
                };
                // Each message is answered where it lies in the read buffer (no copy); the
                // answers to one read go out in one write.
                let echo = |event: Event<'_>, reply: &mut Reply<'_, TcpStream>| match event {
                    Event::Message(m) => reply.send(m),
                    Event::Part(p) => reply.send_part(&p.data, p.last),
                    _ => Ok(()),
                };
                while let Some(Ok(Ok(()))) = ws.recv_with(echo).await {}
            });
        }
    })
}
