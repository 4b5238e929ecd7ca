//! The tokio adapter (`rfc6455::tokio`) against our blocking client, against itself and
//! against tokio-tungstenite both ways: echo, deflate, split, backpressure, rejection, one
//! write per read (and per burst of reads for a message streaming through), reunite, and the
//! cancel-safety of `recv`.

use futures_util::{SinkExt, StreamExt};
use rfc6455::proto::deflate::DeflateConfig;
use rfc6455::proto::{Rejection, Request};
use rfc6455::tokio::{accept, accept_with, client, connect, AcceptOptions, ConnectOptions};
use rfc6455::{CloseCode, Message};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite;

/// Bounds every test: a hang fails instead of blocking CI.
const LIMIT: Duration = Duration::from_secs(20);

async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    (listener, url)
}

/// An echo server on our adapter for one connection with `options`.
async fn echo_server(options: AcceptOptions) -> (String, tokio::task::JoinHandle<()>) {
    let (listener, url) = listener().await;
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = accept_with(tcp, |r: &Request| Ok(r.accept()), &options)
            .await
            .unwrap();
        while let Some(message) = ws.recv().await {
            let message = message.unwrap();
            ws.send(message).await.unwrap();
        }
    });
    (url, task)
}

#[tokio::test]
async fn echo_with_our_blocking_client_and_deflate() {
    let options = AcceptOptions::default().deflate(DeflateConfig::default());
    let (url, server) = echo_server(options).await;
    let client = tokio::task::spawn_blocking(move || {
        use rfc6455::client::{Client, ConnectOptions};
        let options = ConnectOptions::default().deflate(DeflateConfig::default());
        let mut c = Client::connect_with(&url, &options).unwrap();
        assert!(c.deflate().is_some(), "permessage-deflate negotiated");
        let big = "compress me ".repeat(10_000);
        for text in ["hello", "", big.as_str()] {
            c.send_text(text).unwrap();
            match c.recv().unwrap() {
                rfc6455::Event::Message(m) => assert_eq!(m.as_text(), Some(text)),
                other => panic!("{other:?}"),
            }
        }
        let payload: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        c.send_binary(&payload).unwrap();
        match c.recv().unwrap() {
            rfc6455::Event::Message(m) => assert_eq!(m.as_bytes(), &payload[..]),
            other => panic!("{other:?}"),
        }
        let reply = c.close(CloseCode::NORMAL, "bye").unwrap();
        assert_eq!(reply.map(|f| f.code), Some(CloseCode::NORMAL));
    });
    tokio::time::timeout(LIMIT, client).await.unwrap().unwrap();
    tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn our_server_with_tokio_tungstenite_client() {
    let (url, server) = echo_server(AcceptOptions::default()).await;
    let run = async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        for i in 0..100 {
            ws.send(tungstenite::Message::text(format!("message {i}")))
                .await
                .unwrap();
        }
        ws.send(tungstenite::Message::binary(vec![7u8; 300_000]))
            .await
            .unwrap();
        for i in 0..100 {
            let m = ws.next().await.unwrap().unwrap();
            assert_eq!(m.into_text().unwrap().as_str(), format!("message {i}"));
        }
        let m = ws.next().await.unwrap().unwrap();
        assert_eq!(m.into_data().len(), 300_000);
        ws.close(None).await.unwrap();
        // The server answers the close and closes TCP: the stream ends.
        while let Some(m) = ws.next().await {
            if m.is_err() {
                break;
            }
        }
    };
    tokio::time::timeout(LIMIT, run).await.unwrap();
    tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn our_client_with_tokio_tungstenite_server() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        // tungstenite writes its close reply on the next poll: read on until the end.
        while let Some(Ok(m)) = ws.next().await {
            if m.is_text() || m.is_binary() {
                ws.send(m).await.unwrap();
            }
        }
    });
    let run = async {
        let (mut ws, response) = connect(&url).await.unwrap();
        assert_eq!(response.status(), 101);
        ws.send(Message::text("hello")).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("hello"));
        let payload = vec![9u8; 200_000];
        ws.send(Message::binary(payload.clone())).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap().as_bytes(), &payload[..]);
        // Through the Sink and Stream impls too.
        SinkExt::send(&mut ws, Message::text("sink")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap().as_text(), Some("sink"));
        let reply = ws.close(CloseCode::NORMAL, "done").await.unwrap();
        assert_eq!(reply.map(|f| f.code), Some(CloseCode::NORMAL));
    };
    tokio::time::timeout(LIMIT, run).await.unwrap();
    tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn our_client_with_our_server_deflate_over_duplex() {
    let (a, b) = tokio::io::duplex(4096);
    let server = tokio::spawn(async move {
        let options = AcceptOptions::default().deflate(DeflateConfig::default());
        let mut ws = accept_with(b, |r: &Request| Ok(r.accept()), &options)
            .await
            .unwrap();
        assert!(ws.connection().deflate_params().is_some());
        while let Some(m) = ws.recv().await {
            ws.send(m.unwrap()).await.unwrap();
        }
    });
    let run = async {
        let options = ConnectOptions::default().deflate(DeflateConfig::default());
        let (mut ws, _) = client(a, "ws://localhost/", &options).await.unwrap();
        assert!(ws.connection().deflate_params().is_some());
        let text = "abc".repeat(50_000);
        ws.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap().as_text(), Some(&text[..]));
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    };
    tokio::time::timeout(LIMIT, run).await.unwrap();
    tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_refused_request_gets_the_status() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let result = accept_with(
            tcp,
            |r: &Request| {
                assert_eq!(r.path(), "/private");
                Err(Rejection::new(403))
            },
            &AcceptOptions::default(),
        )
        .await;
        assert!(matches!(result, Err(rfc6455::tokio::Error::Rejected(403))));
    });
    let err = connect(&format!("{url}private")).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn split_halves_in_two_tasks() {
    let (url, server) = echo_server(AcceptOptions::default()).await;
    let (ws, _) = connect(&url).await.unwrap();
    let (mut reader, mut writer) = ws.split();
    let writer_task = tokio::spawn(async move {
        for i in 0..1000 {
            writer.send(Message::text(format!("{i}"))).await.unwrap();
        }
        writer
    });
    let reader_task = tokio::spawn(async move {
        for i in 0..1000 {
            let m = reader.recv().await.unwrap().unwrap();
            assert_eq!(m.as_text(), Some(format!("{i}").as_str()));
        }
        reader
    });
    let mut writer = tokio::time::timeout(LIMIT, writer_task)
        .await
        .unwrap()
        .unwrap();
    let mut reader = tokio::time::timeout(LIMIT, reader_task)
        .await
        .unwrap()
        .unwrap();
    writer.close(CloseCode::NORMAL, "").await.unwrap();
    assert!(tokio::time::timeout(LIMIT, reader.recv())
        .await
        .unwrap()
        .is_none());
    assert_eq!(reader.peer_close().map(|f| f.code), Some(CloseCode::NORMAL));
    tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
}

/// `recv` in a `select!` that a timer wins over and over while messages arrive: every
/// message arrives once, in order.
#[tokio::test]
async fn recv_is_cancel_safe() {
    const N: usize = 2000;
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = accept(tcp).await.unwrap();
        let (mut got, mut cancelled) = (0usize, 0usize);
        loop {
            tokio::select! {
                m = ws.recv() => match m {
                    Some(m) => {
                        let m = m.unwrap();
                        assert_eq!(m.as_bytes(), format!("{got:06}").repeat(50).as_bytes());
                        got += 1;
                    }
                    None => break,
                },
                _ = tokio::time::sleep(Duration::from_micros(50)) => cancelled += 1,
            }
        }
        (got, cancelled)
    });
    let (ws, _) = connect(&url).await.unwrap();
    let (mut reader, mut writer) = ws.split();
    // Messages of 300 bytes, sent in bursts with pauses, so many arrive split across reads
    // and many recv futures are dropped mid-message.
    for i in 0..N {
        writer
            .send(Message::text(format!("{i:06}").repeat(50)))
            .await
            .unwrap();
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    writer.close(CloseCode::NORMAL, "").await.unwrap();
    assert!(tokio::time::timeout(LIMIT, reader.recv())
        .await
        .unwrap()
        .is_none());
    let (got, cancelled) = tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
    assert_eq!(got, N);
    assert!(
        cancelled > 0,
        "the timer never won: the test tested nothing"
    );
}

/// Counts the writes that reach the transport.
struct CountingStream {
    inner: TcpStream,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for CountingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// 100 messages that arrive in one read are echoed with one write (the mio server's rule).
#[tokio::test]
async fn one_write_answers_one_read() {
    let (listener, url) = listener().await;
    let writes = Arc::new(AtomicUsize::new(0));
    let counted = writes.clone();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let stream = CountingStream {
            inner: tcp,
            writes: counted,
        };
        let mut ws = accept(stream).await.unwrap();
        let mut n = 0;
        // The client drops TCP at the end: ConnectionLost ends the loop.
        while let Some(Ok(m)) = ws.recv().await {
            ws.send(m).await.unwrap();
            n += 1;
        }
        n
    });
    let mut tcp = TcpStream::connect(url.trim_start_matches("ws://").trim_end_matches('/'))
        .await
        .unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut burst = Vec::new();
    let mut masker = rfc6455::Connection::client(rfc6455::Config::default(), || [1, 2, 3, 4]);
    for i in 0..100 {
        masker.send_text(&format!("m{i}")).unwrap();
    }
    burst.extend_from_slice(masker.poll_transmit());
    // Wait for the 101 so the burst lands in one read of its own.
    let mut head = vec![0u8; 1024];
    let n = tokio::io::AsyncReadExt::read(&mut tcp, &mut head)
        .await
        .unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 101"));
    let before = writes.load(Ordering::Relaxed);
    tcp.write_all(&burst).await.unwrap();
    let mut echoed = 0;
    let mut buf = vec![0u8; 65536];
    while echoed < burst.len() - 100 * 4 {
        let n = tokio::io::AsyncReadExt::read(&mut tcp, &mut buf)
            .await
            .unwrap();
        assert!(n > 0);
        echoed += n;
    }
    let used = writes.load(Ordering::Relaxed) - before;
    assert!(used <= 2, "{used} writes for one read of 100 messages");
    drop(tcp);
    let n = tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
    assert_eq!(n, 100);
}

/// A peer that does not read: the Sink stops being ready with a bounded queue.
#[tokio::test]
async fn sink_backpressure_bounds_the_queue() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move { accept(b).await.unwrap() });
    let (mut ws, _) = client(a, "ws://localhost/", &ConnectOptions::default())
        .await
        .unwrap();
    let _server_ws = server.await.unwrap(); // never reads
    let mut sent = 0usize;
    loop {
        let feed = SinkExt::feed(&mut ws, Message::binary(vec![1u8; 10_000]));
        match tokio::time::timeout(Duration::from_millis(300), feed).await {
            Ok(result) => {
                result.unwrap();
                sent += 1;
                assert!(sent < 1000, "the sink never pushed back");
            }
            Err(_) => break, // not ready: backpressure
        }
    }
    let queued = ws.connection().transmit_len();
    assert!(
        queued <= rfc6455::tokio::DEFAULT_WRITE_BUFFER + 10_100,
        "{queued} bytes queued"
    );
}

fn timer_config() -> rfc6455::Config {
    let mut config = rfc6455::Config::default();
    config.ping_interval = Some(Duration::from_millis(100));
    config.ping_timeout = Duration::from_millis(200);
    config.close_timeout = Duration::from_millis(300);
    config
}

/// A raw TCP peer that completes the handshake as a client, then reads and never answers.
async fn mute_client(url: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(url.trim_start_matches("ws://").trim_end_matches('/'))
        .await
        .unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    tcp
}

#[tokio::test]
async fn heartbeat_fails_a_silent_peer_and_keeps_an_answering_one() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let options = AcceptOptions::default().config(timer_config());
        let mut results = Vec::new();
        for _ in 0..2 {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = accept_with(tcp, |r: &Request| Ok(r.accept()), &options)
                .await
                .unwrap();
            let started = std::time::Instant::now();
            let mut last = None;
            while let Some(m) = ws.recv().await {
                match m {
                    Ok(m) => ws.send(m).await.unwrap(),
                    Err(e) => {
                        last = Some(e);
                        break;
                    }
                }
            }
            results.push((last.map(|e| e.to_string()), started.elapsed()));
        }
        results
    });
    // A peer that never answers: failed after about ping_interval + ping_timeout.
    let silent = mute_client(&url).await;
    // An answering peer (our client answers pings while it receives) lives past many
    // intervals and closes cleanly.
    let (mut ws, _) = connect(&url).await.unwrap();
    let alive = tokio::time::timeout(Duration::from_millis(800), ws.recv()).await;
    assert!(
        alive.is_err(),
        "the answering client's connection ended: {alive:?}"
    );
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    drop(silent);
    let results = tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
    let (error, elapsed) = &results[0];
    assert!(
        error.as_deref().is_some_and(|e| e.contains("heartbeat")),
        "{error:?}"
    );
    assert!(*elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(
        results[1].0, None,
        "the answering client's connection failed"
    );
}

#[tokio::test]
async fn idle_timeout_closes_with_1001() {
    let (listener, url) = listener().await;
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut config = rfc6455::Config::default();
        config.idle_timeout = Some(Duration::from_millis(200));
        let options = AcceptOptions::default().config(config);
        let mut ws = accept_with(tcp, |r: &Request| Ok(r.accept()), &options)
            .await
            .unwrap();
        while let Some(Ok(m)) = ws.recv().await {
            ws.send(m).await.unwrap();
        }
    });
    let (mut ws, _) = connect(&url).await.unwrap();
    let end = tokio::time::timeout(LIMIT, ws.recv()).await.unwrap();
    assert!(end.is_none(), "{end:?}");
    assert_eq!(ws.peer_close().map(|f| f.code), Some(CloseCode::GOING_AWAY));
}

/// A server that answers the close but never closes TCP: the client's wait is bounded by
/// close_timeout (RFC 6455 §7.1.1).
#[tokio::test]
async fn a_client_waits_for_the_servers_eof_a_bounded_time() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            rfc6455::proto::accept_key(key.as_bytes())
        );
        tcp.write_all(response.as_bytes()).await.unwrap();
        // The client's masked close (2 + 4 + 2 bytes), answered; TCP stays open.
        let mut close = [0u8; 8];
        tcp.read_exact(&mut close).await.unwrap();
        assert_eq!(close[0], 0x88);
        tcp.write_all(&[0x88, 0x02, 0x03, 0xe8]).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
    });
    let mut config = rfc6455::Config::default();
    config.close_timeout = Duration::from_millis(300);
    let options = ConnectOptions::default().config(config);
    let (mut ws, _) = rfc6455::tokio::connect_with(&url, &options).await.unwrap();
    let started = std::time::Instant::now();
    let reply = tokio::time::timeout(LIMIT, ws.close(CloseCode::NORMAL, ""))
        .await
        .unwrap();
    assert_eq!(reply.unwrap().map(|f| f.code), Some(CloseCode::NORMAL));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "did not wait: {waited:?}"
    );
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    server.abort();
}

/// The hyper upgrade through axum: a valid request becomes a WebSocket (deflate agreed); a
/// request without a key is answered 400 with the reason.
#[tokio::test]
async fn hyper_upgrade_through_axum() {
    use axum::body::Body;
    use rfc6455::tokio::{rejection_response, upgrade};
    async fn route(mut request: axum::extract::Request) -> axum::response::Response {
        let options = AcceptOptions::default().deflate(DeflateConfig::default());
        match upgrade(&mut request, &options) {
            Ok((response, websocket)) => {
                tokio::spawn(async move {
                    let mut ws = websocket.await.unwrap();
                    while let Some(Ok(m)) = ws.recv().await {
                        ws.send(m).await.unwrap();
                    }
                });
                response.map(Body::new)
            }
            Err(e) => rejection_response(&e).unwrap().map(Body::from),
        }
    }
    let (listener, url) = listener().await;
    let app = axum::Router::new().route("/ws", axum::routing::get(route));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let run = async {
        let options = ConnectOptions::default().deflate(DeflateConfig::default());
        let (mut ws, _) = rfc6455::tokio::connect_with(&format!("{url}ws"), &options)
            .await
            .unwrap();
        assert!(ws.connection().deflate_params().is_some());
        let text = "through axum ".repeat(1000);
        ws.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap().as_text(), Some(&text[..]));
        ws.close(CloseCode::NORMAL, "").await.unwrap();
        // tokio-tungstenite too.
        let (mut t, _) = tokio_tungstenite::connect_async(format!("{url}ws"))
            .await
            .unwrap();
        t.send(tungstenite::Message::text("hi")).await.unwrap();
        assert_eq!(
            t.next()
                .await
                .unwrap()
                .unwrap()
                .into_text()
                .unwrap()
                .as_str(),
            "hi"
        );
        // Not a handshake: 400, and the body says which header is missing.
        let mut tcp = TcpStream::connect(url.trim_start_matches("ws://").trim_end_matches('/'))
            .await
            .unwrap();
        tcp.write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::io::AsyncReadExt::read(&mut tcp, &mut buf)
            .await
            .unwrap();
        let reply = String::from_utf8_lossy(&buf[..n]);
        assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
        assert!(reply.contains("Sec-WebSocket-Key"), "{reply}");
    };
    tokio::time::timeout(LIMIT, run).await.unwrap();
}

/// `recv_with` echoes without copying, large messages part by part, in order with small
/// ones; `recv` on the other side gets them whole.
#[tokio::test]
async fn recv_with_echoes_messages_and_parts() {
    use rfc6455::tokio::Reply;
    use rfc6455::Event;
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut config = rfc6455::Config::default();
        config.stream_binary_from = Some(64 << 10);
        let options = AcceptOptions::default().config(config);
        let mut ws = accept_with(tcp, |r: &Request| Ok(r.accept()), &options)
            .await
            .unwrap();
        let mut parts = 0;
        let mut echo = |event: Event<'_>, reply: &mut Reply<'_, TcpStream>| match event {
            Event::Message(m) => reply.send(m),
            Event::Part(p) => {
                parts += 1;
                reply.send_part(&p.data, p.last)
            }
            _ => Ok(()),
        };
        while let Some(Ok(result)) = ws.recv_with(&mut echo).await {
            result.unwrap();
        }
        parts
    });
    let (mut ws, _) = connect(&url).await.unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let medium = vec![5u8; 40_000];
    ws.send(Message::text("first")).await.unwrap();
    ws.send(Message::binary(big.clone())).await.unwrap();
    ws.send(Message::binary(medium.clone())).await.unwrap();
    ws.send(Message::text("last")).await.unwrap();
    let run = async {
        assert_eq!(ws.recv().await.unwrap().unwrap().as_text(), Some("first"));
        assert_eq!(ws.recv().await.unwrap().unwrap().as_bytes(), &big[..]);
        assert_eq!(ws.recv().await.unwrap().unwrap().as_bytes(), &medium[..]);
        assert_eq!(ws.recv().await.unwrap().unwrap().as_text(), Some("last"));
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    };
    tokio::time::timeout(LIMIT, run).await.unwrap();
    let parts = tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
    assert!(parts > 1, "the large message did not come in parts");
}

/// `recv` collects a message that the config streams in parts.
#[tokio::test]
async fn recv_collects_parts() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut config = rfc6455::Config::default();
        config.stream_binary_from = Some(1000);
        let options = AcceptOptions::default().config(config);
        let mut ws = accept_with(tcp, |r: &Request| Ok(r.accept()), &options)
            .await
            .unwrap();
        ws.recv().await.unwrap().unwrap()
    });
    let (mut ws, _) = connect(&url).await.unwrap();
    let big = vec![3u8; 500_000];
    ws.send(Message::binary(big.clone())).await.unwrap();
    let got = tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
    assert_eq!(got.as_bytes(), &big[..]);
}

/// A transport that hands out its input in the chunks given, one per read, and then has
/// nothing more (`Pending`, never woken: the test looks at what was written by then).
struct Scripted {
    chunks: std::collections::VecDeque<Vec<u8>>,
    out: Arc<std::sync::Mutex<Vec<u8>>>,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for Scripted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let Some(chunk) = self.chunks.front_mut() else {
            return Poll::Pending;
        };
        let n = chunk.len().min(buf.remaining());
        buf.put_slice(&chunk[..n]);
        chunk.drain(..n);
        if chunk.is_empty() {
            self.chunks.pop_front();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.out.lock().unwrap().extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let mut out = self.out.lock().unwrap();
        for buf in bufs {
            out.extend_from_slice(buf);
        }
        Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A 1 MiB message streaming in over 17 reads goes back out part by part in 3 writes (after
/// the 8th and the 16th read, and when there is nothing more to read), not one write per
/// read; and the echo is the message.
#[tokio::test]
async fn a_large_message_streams_back_in_few_writes() {
    use rfc6455::tokio::Reply;
    use rfc6455::Event;
    let payload: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 253) as u8).collect();
    let mut masker = rfc6455::Connection::client(rfc6455::Config::default(), || [9, 8, 7, 6]);
    masker.send_binary(&payload).unwrap();
    let frame = masker.poll_transmit().to_vec();
    let mut chunks: std::collections::VecDeque<Vec<u8>> = [b"GET / HTTP/1.1\r\nHost: x\r\n\
        Upgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .to_vec()]
    .into();
    chunks.extend(frame.chunks(64 << 10).map(<[u8]>::to_vec));
    assert_eq!(chunks.len(), 1 + 17);
    let (out, writes) = (Arc::default(), Arc::new(AtomicUsize::new(0)));
    let stream = Scripted {
        chunks,
        out: Arc::clone(&out),
        writes: Arc::clone(&writes),
    };
    let server = tokio::spawn(async move {
        let mut config = rfc6455::Config::default();
        config.stream_binary_from = Some(64 << 10);
        let options = AcceptOptions::default().config(config);
        let mut ws = accept_with(stream, |r: &Request| Ok(r.accept()), &options)
            .await
            .unwrap();
        let echo = |event: Event<'_>, reply: &mut Reply<'_, Scripted>| match event {
            Event::Message(m) => reply.send(m),
            Event::Part(p) => reply.send_part(&p.data, p.last),
            _ => Ok(()),
        };
        while let Some(Ok(result)) = ws.recv_with(echo).await {
            result.unwrap();
        }
    });
    // The echo, read back through a client connection.
    let head_len = {
        let started = std::time::Instant::now();
        loop {
            let done = {
                let out = out.lock().unwrap();
                let head = out.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
                head.filter(|head| out.len() >= head + payload.len())
            };
            if let Some(head) = done {
                break head;
            }
            assert!(started.elapsed() < LIMIT, "the echo did not come back");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    // Let the server reach its read that finds nothing, then look.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let out = out.lock().unwrap().clone();
    let mut client = rfc6455::Connection::client(rfc6455::Config::default(), || [0; 4]);
    let mut input = out[head_len..].to_vec();
    let mut rest = &mut input[..];
    let mut echoed = Vec::new();
    while let Some(event) = client.read(&mut rest).unwrap() {
        if let rfc6455::Event::Message(m) = event {
            echoed = m.as_bytes().to_vec();
            break;
        }
    }
    assert_eq!(echoed, payload, "the echo is not the message");
    let writes = writes.load(Ordering::Relaxed);
    // The 101, then the answers to reads 1-8, 9-16 and 17.
    assert!(writes <= 4, "{writes} writes for a message read in 17");
    server.abort();
}

/// The halves of one split go back together and the connection goes on; halves of two
/// connections are refused and handed back.
#[tokio::test]
async fn split_halves_reunite() {
    let (url, server) = echo_server(AcceptOptions::default()).await;
    let (url2, server2) = echo_server(AcceptOptions::default()).await;
    let (ws, _) = connect(&url).await.unwrap();
    let (ws2, _) = connect(&url2).await.unwrap();
    let (mut reader, mut writer) = ws.split();
    let (reader2, writer2) = ws2.split();
    writer.send(Message::text("before")).await.unwrap();
    assert_eq!(
        reader.recv().await.unwrap().unwrap().as_text(),
        Some("before")
    );
    let err = reader.reunite(writer2).unwrap_err();
    assert!(err.to_string().contains("different connections"), "{err}");
    let rfc6455::tokio::ReuniteError(reader, writer2) = err;
    let mut ws = reader.reunite(writer).unwrap();
    let mut ws2 = reader2.reunite(writer2).unwrap();
    for ws in [&mut ws, &mut ws2] {
        ws.send(Message::text("after")).await.unwrap();
        let m = tokio::time::timeout(LIMIT, ws.recv()).await.unwrap();
        assert_eq!(m.unwrap().unwrap().as_text(), Some("after"));
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    }
    tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
    tokio::time::timeout(LIMIT, server2).await.unwrap().unwrap();
}
