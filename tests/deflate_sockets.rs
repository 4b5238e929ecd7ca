//! permessage-deflate over real sockets on 127.0.0.1: our client and our server with and
//! without it, and tungstenite's client (which has no deflate) against our deflate server.
#![cfg(all(feature = "client", feature = "server", feature = "deflate"))]

use rfc6455::client::{Client, ConnectOptions};
use rfc6455::proto::deflate::{DeflateConfig, DeflateParams};
use rfc6455::server::{Builder, Context, Handle, Handler};
use rfc6455::{CloseCode, Config, Event, Message};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(20);

#[derive(Clone)]
struct Echo;

impl Handler for Echo {
    fn message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        let _ = ctx.send(message);
    }
}

/// Our echo server on a free port, with `deflate` if given; stopped on drop.
struct Running {
    addr: SocketAddr,
    handle: Handle,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Running {
    fn start(deflate: Option<DeflateConfig>) -> Running {
        let mut config = Config::default();
        config.max_message_size = 32 << 20;
        config.max_frame_size = 32 << 20;
        let mut builder = Builder::new()
            .listen("127.0.0.1:0")
            .threads(1)
            .config(config)
            .shutdown_on_signals(false);
        if let Some(deflate) = deflate {
            builder = builder.deflate(deflate);
        }
        let server = builder.bind(Echo).expect("bind 127.0.0.1:0");
        let addr = server.local_addrs()[0];
        let handle = server.handle();
        let thread = Some(std::thread::spawn(move || server.run()));
        Running {
            addr,
            handle,
            thread,
        }
    }

    fn url(&self) -> String {
        format!("ws://{}/echo", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let result = thread.join();
            if !std::thread::panicking() {
                result.expect("no panic").expect("run returns Ok");
            }
        }
    }
}

fn options(deflate: Option<DeflateConfig>) -> ConnectOptions {
    let mut config = Config::default();
    config.max_message_size = 32 << 20;
    config.max_frame_size = 32 << 20;
    let options = ConnectOptions::default()
        .config(config)
        .read_timeout(Some(BOUND))
        .close_timeout(Duration::from_secs(2));
    match deflate {
        Some(deflate) => options.deflate(deflate),
        None => options,
    }
}

/// Compressible text and binary, incompressible binary, from empty to 4 MiB, then many
/// small messages: every one comes back equal.
fn exercise(client: &mut Client) {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut noise = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    for len in [0, 1, 63, 64, 200, 70_000, 1 << 20, 4 << 20] {
        let text: String = "deflate me, ü ".chars().cycle().take(len).collect();
        client.send_text(&text).unwrap();
        assert_eq!(
            client.recv().unwrap(),
            Event::Message(Message::text(text)),
            "{len}"
        );
        let binary: Vec<u8> = (0..len).map(|i| (i % 7) as u8).collect();
        client.send_binary(&binary).unwrap();
        match client.recv().unwrap() {
            Event::Message(Message::Binary(got)) => assert!(got == binary, "binary {len}"),
            other => panic!("binary {len}: {other:?}"),
        }
        let random = noise(len);
        client.send_binary(&random).unwrap();
        match client.recv().unwrap() {
            Event::Message(Message::Binary(got)) => assert!(got == random, "random {len}"),
            other => panic!("random {len}: {other:?}"),
        }
    }
    for i in 0..500 {
        let text = format!(
            "message number {i}: {}",
            "the same words again ".repeat(i % 9)
        );
        client.send_text(&text).unwrap();
        assert_eq!(client.recv().unwrap(), Event::Message(Message::text(text)));
    }
    let reply = client.close(CloseCode::NORMAL, "done").unwrap();
    assert_eq!(reply.map(|f| f.code), Some(CloseCode::NORMAL));
}

fn agreed(client: &Client) -> DeflateParams {
    *client
        .deflate()
        .expect("the server accepted permessage-deflate")
}

#[test]
fn both_sides_default_configs() {
    let server = Running::start(Some(DeflateConfig::default()));
    let mut client =
        Client::connect_with(&server.url(), &options(Some(DeflateConfig::default()))).unwrap();
    let params = agreed(&client);
    assert!(params.server_no_context_takeover);
    assert!(!params.client_no_context_takeover);
    let header = client
        .response()
        .header("sec-websocket-extensions")
        .unwrap();
    assert!(header.starts_with("permessage-deflate"), "{header}");
    exercise(&mut client);
}

#[test]
fn context_takeover_both_ways() {
    let mut takeover = DeflateConfig::default();
    takeover.server_no_context_takeover = false;
    let server = Running::start(Some(takeover.clone()));
    let mut client = Client::connect_with(&server.url(), &options(Some(takeover))).unwrap();
    let params = agreed(&client);
    assert!(!params.server_no_context_takeover && !params.client_no_context_takeover);
    exercise(&mut client);
}

#[test]
fn no_context_takeover_either_way_and_small_windows() {
    let mut reset = DeflateConfig::default();
    reset.client_no_context_takeover = true;
    reset.server_max_window_bits = 9;
    reset.client_max_window_bits = 8;
    let server = Running::start(Some(DeflateConfig::default()));
    let mut client = Client::connect_with(&server.url(), &options(Some(reset))).unwrap();
    let params = agreed(&client);
    assert!(params.server_no_context_takeover && params.client_no_context_takeover);
    assert_eq!(params.server_max_window_bits, 9);
    assert_eq!(params.client_max_window_bits, 8);
    exercise(&mut client);
}

#[test]
fn a_server_without_deflate_gives_a_plain_connection() {
    let server = Running::start(None);
    let mut client =
        Client::connect_with(&server.url(), &options(Some(DeflateConfig::default()))).unwrap();
    assert!(client.deflate().is_none());
    assert!(client
        .response()
        .header("sec-websocket-extensions")
        .is_none());
    exercise(&mut client);
}

#[test]
fn a_client_without_deflate_gets_a_plain_connection() {
    let server = Running::start(Some(DeflateConfig::default()));
    let mut client = Client::connect_with(&server.url(), &options(None)).unwrap();
    assert!(client.deflate().is_none());
    assert!(client
        .response()
        .header("sec-websocket-extensions")
        .is_none());
    exercise(&mut client);
}

#[test]
fn tungstenite_client_without_deflate_against_our_deflate_server() {
    let server = Running::start(Some(DeflateConfig::default()));
    let stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let (mut ws, response) = tungstenite::client(server.url(), stream).unwrap();
    assert!(response.headers().get("sec-websocket-extensions").is_none());
    for len in [0, 100, 70_000, 1 << 20] {
        let text: String = "tungstenite ".chars().cycle().take(len).collect();
        ws.send(tungstenite::Message::text(text.clone())).unwrap();
        match ws.read().unwrap() {
            tungstenite::Message::Text(got) => assert_eq!(got.as_str(), text, "{len}"),
            other => panic!("{len}: {other:?}"),
        }
        let binary: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        ws.send(tungstenite::Message::binary(binary.clone()))
            .unwrap();
        match ws.read().unwrap() {
            tungstenite::Message::Binary(got) => assert_eq!(got.as_ref(), &binary[..], "{len}"),
            other => panic!("{len}: {other:?}"),
        }
    }
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("closing: {e}"),
        }
    }
}

#[test]
fn an_invalid_deflate_answer_fails_the_connect() {
    // A server that answers with a parameter RFC 7692 does not define.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .trim()
            .to_owned();
        let accept = rfc6455::proto::Accept::new(&key).to_bytes();
        let mut reply = String::from_utf8(accept).unwrap();
        reply.truncate(reply.len() - 2);
        reply.push_str("Sec-WebSocket-Extensions: permessage-deflate; x_bogus=1\r\n\r\n");
        stream.write_all(reply.as_bytes()).unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        rest
    });
    let err = Client::connect_with(
        &format!("ws://{addr}/"),
        &options(Some(DeflateConfig::default())),
    )
    .unwrap_err();
    assert!(
        matches!(err, rfc6455::client::ClientError::Deflate(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("x_bogus"), "{err}");
    let after = server.join().unwrap();
    assert!(
        after.is_empty(),
        "nothing is sent after a failed negotiation"
    );
}
