//! `rfc6455 client` in a pipe, against a tungstenite echo server on 127.0.0.1.
#![cfg(all(feature = "client", feature = "server"))]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(10);

/// What the server received, and the client's close code.
type Seen = (Vec<tungstenite::Message>, Option<u16>);

/// Echoes until the client closes.
fn echo_server() -> (String, JoinHandle<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let handle = thread::spawn(move || {
        let (stream, _): (TcpStream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(BOUND)).unwrap();
        let mut ws = tungstenite::accept(stream).unwrap();
        let mut got = Vec::new();
        let mut code = None;
        loop {
            match ws.read() {
                Ok(tungstenite::Message::Close(frame)) => code = frame.map(|f| u16::from(f.code)),
                Ok(m) if m.is_text() || m.is_binary() => {
                    got.push(m.clone());
                    ws.send(m).unwrap();
                }
                Ok(_) => {}
                Err(_) => return (got, code),
            }
        }
    });
    (url, handle)
}

/// Reads the request, answers `reply` (nothing if `None`), and waits for the client to go.
fn raw_server(reply: Option<&'static str>) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(BOUND)).unwrap();
        let mut buf = [0; 4096];
        let _ = stream.read(&mut buf);
        if let Some(reply) = reply {
            stream.write_all(reply.as_bytes()).unwrap();
        }
        while matches!(stream.read(&mut buf), Ok(1..)) {}
    });
    (url, handle)
}

fn run(url: &str, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rfc6455"))
        .arg("client")
        .arg(url)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    // The client's own bounds (--wait, the close timeout) end it; no sleep here.
    child.wait_with_output().unwrap()
}

#[test]
fn echo_hi_in_a_pipe() {
    let (url, server) = echo_server();
    let out = run(&url, &["--wait", "0.5"], b"hi\nsecond line\r\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\nsecond line\n");
    assert!(
        stderr.lines().any(|l| l == "closed: 1000 (normal closure)"),
        "{stderr}"
    );
    let (got, code) = server.join().unwrap();
    assert_eq!(
        got,
        [
            tungstenite::Message::text("hi"),
            tungstenite::Message::text("second line")
        ]
    );
    assert_eq!(code, Some(1000));
}

#[test]
fn binary_lines_come_back_as_hex() {
    let (url, server) = echo_server();
    let out = run(&url, &["--binary", "--wait", "0.5"], b"\x00\xffab\n");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "[binary 4 bytes] 00ff6162\n"
    );
    let (got, _) = server.join().unwrap();
    assert_eq!(got, [tungstenite::Message::binary(b"\x00\xffab".to_vec())]);
}

#[test]
fn durations_too_large_for_the_clock_are_no_deadline() {
    let (url, server) = echo_server();
    let huge = ["--connect-timeout", "1e19", "--ping-interval", "1e19"];
    let out = run(&url, &[&huge[..], &["--wait", "0.3"]].concat(), b"hi\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(server.join().unwrap().1, Some(1000));
}

/// Runs the client with `url` and `args`; checks it exits 2 (bad arguments) saying `why`.
fn refused(url: &str, args: &[&str], why: &str) {
    let out = run(url, args, b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{url} {args:?}: {stderr}");
    assert!(stderr.contains(why), "{url} {args:?}: {stderr}");
}

#[test]
fn bad_arguments_and_refusals_say_why() {
    let url = "ws://127.0.0.1:1/";
    refused(url, &["-H", "no colon"], "'Name: value'");
    let more_than_0 = "give a number of seconds more than 0";
    refused(url, &["--connect-timeout", "0"], more_than_0);
    // A negative number is a value out of range, not an unknown option.
    refused(url, &["--connect-timeout", "-1"], more_than_0);
    refused(
        url,
        &["--wait", "-1"],
        "--wait -1: give a number of seconds, 0 or more",
    );
    // Headers and URLs the client cannot use are bad arguments too.
    refused(url, &["-H", "Bad Name: x"], "non-empty HTTP token");
    refused(url, &["-H", "Host: other"], "writes this header itself");
    refused("http://127.0.0.1:1/", &[], "WebSocket URLs use ws://");
    refused("127.0.0.1:1", &[], "no scheme");
    refused("ws://127.0.0.1:99999/", &[], "from 1 to 65535");
    refused(
        "wss://127.0.0.1:1/",
        &["--ca", "/nonexistent/ca.pem"],
        "--ca: cannot read",
    );
    // Nothing listening is not a bad argument.
    let out = run(url, &[], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not connect"));
}

#[test]
fn refusals_and_timeouts_say_what_to_do_in_the_commands_words() {
    let expect = |reply, args: &[&str], says: &str| {
        let (url, server) = raw_server(reply);
        let out = run(&url, args, b"");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(!stderr.contains("ConnectOptions"), "{stderr}");
        server.join().unwrap();
    };
    expect(
        None,
        &["--connect-timeout", "0.2"],
        "timed out waiting for the opening handshake; the server did not answer in time \
         (raise --connect-timeout if it is just slow)",
    );
    expect(
        Some("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        &[],
        "the server answered 200 OK instead of 101 Switching Protocols: this URL is an \
         ordinary HTTP one, not a WebSocket endpoint (check its path)",
    );
    expect(
        Some("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"),
        &[],
        "503 Service Unavailable instead of 101 Switching Protocols: the server is at its \
         connection limit or unavailable (retry later)",
    );
}
