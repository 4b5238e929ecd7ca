//! The tokio adapter (`rfc6455::tokio`) against our blocking client, against itself and
//! against tokio-tungstenite both ways: echo, deflate, split, backpressure, rejection, one
//! write per read, and the cancel-safety of `recv`.

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
