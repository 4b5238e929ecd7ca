//! Our client against our own server: `rfc6455 echo` run as a child process on 127.0.0.1.
#![cfg(all(feature = "client", feature = "server"))]

use rfc6455::client::{Backoff, Client, ConnectOptions, Reconnect};
use rfc6455::{CloseCode, Config, Event, Message, State};
use std::borrow::Cow;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(10);

/// `rfc6455 echo` on a free port; killed on drop.
struct EchoServer {
    child: Child,
    url: String,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn echo_server() -> EchoServer {
    // Port 0: the server binds a free port itself and says which (a port picked here and
    // freed could be picked again by a test running in parallel before the server binds it).
    echo_server_on("127.0.0.1:0")
}

fn echo_server_on(listen: &str) -> EchoServer {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rfc6455"))
        .args(["echo", "--threads", "1", "--listen", listen])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped stdout");
    // The line once bound, or EOF if the server could not bind.
    BufReader::new(stdout).read_line(&mut line).unwrap();
    // "rfc6455 echo: listening on ws://127.0.0.1:PORT (1 threads)"
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches(',');
    EchoServer {
        url: format!("{url}/echo"),
        child,
    }
}

impl EchoServer {
    /// SIGKILL: no close frame, no graceful shutdown.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

fn options() -> ConnectOptions {
    let mut config = Config::default();
    config.max_frame_size = 64 << 20;
    ConnectOptions::default()
        .config(config)
        .read_timeout(Some(BOUND))
        .close_timeout(Duration::from_secs(2))
}

#[test]
fn round_trips_from_0_bytes_to_16_mib() {
    let server = echo_server();
    let mut client = Client::connect_with(&server.url, &options()).unwrap();
    for len in [0, 1, 125, 126, 65536, 1 << 20, 16 << 20] {
        let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        client.send_binary(&data).unwrap();
        match client.recv().unwrap() {
            Event::Message(Message::Binary(got)) => assert!(got == data, "{len}"),
            other => panic!("{len}: {other:?}"),
        }
        let text = "ü".repeat(len / 2);
        client.send_text(&text).unwrap();
        assert_eq!(client.recv().unwrap(), Event::Message(Message::text(text)));
    }
    client.ping(b"ours").unwrap();
    assert_eq!(
        client.recv().unwrap(),
        Event::Pong(Cow::Borrowed(b"ours".as_slice()))
    );
    let reply = client.close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(reply.map(|f| f.code), Some(CloseCode::NORMAL));
    assert_eq!(client.state(), State::Closed);
}

#[test]
fn many_clients_at_once() {
    let server = echo_server();
    let threads: Vec<_> = (0..8)
        .map(|n| {
            let url = server.url.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect_with(&url, &options()).unwrap();
                for i in 0..100 {
                    let text = format!("client {n} message {i}");
                    client.send_text(&text).unwrap();
                    assert_eq!(client.recv().unwrap(), Event::Message(Message::text(text)));
                }
                client.close(CloseCode::NORMAL, "").unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// The loop of `Reconnect`'s documentation outlives a server that is SIGKILLed and restarted
/// on the same port.
#[test]
fn reconnect_loop_survives_a_server_restart() {
    let server = echo_server();
    let url = server.url.clone();
    let listen = url
        .trim_start_matches("ws://")
        .trim_end_matches("/echo")
        .to_owned();
    let (echoed, echoes) = std::sync::mpsc::channel();
    let client = std::thread::spawn(move || {
        let mut ws = Reconnect::new(url, options(), Backoff::default())
            .on_connect(|client| client.send_text("subscribe"));
        let mut errors = Vec::new();
        let mut received = 0;
        // As in Reconnect's documentation, until the second echo.
        loop {
            match ws.recv() {
                Ok(Event::Message(m)) => {
                    received += 1;
                    echoed.send(m.into_owned()).unwrap();
                    if received == 2 {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) if ws.is_stopped() => break errors.push(format!("giving up: {e}")),
                Err(e) => errors.push(e.to_string()),
            }
        }
        ws.close(CloseCode::NORMAL, "bye").unwrap();
        (ws.connects(), errors)
    });
    assert_eq!(
        echoes.recv_timeout(BOUND).unwrap(),
        Message::text("subscribe")
    );
    server.kill();
    let _restarted = echo_server_on(&listen);
    assert_eq!(
        echoes.recv_timeout(BOUND).unwrap(),
        Message::text("subscribe"),
        "the echo of on_connect's message after the restart"
    );
    let (connects, errors) = client.join().unwrap();
    assert_eq!(connects, 2);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("(1006)"), "{errors:?}");
}
