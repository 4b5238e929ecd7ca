//! `rfc6455 client` in a pipe, against a tungstenite echo server on 127.0.0.1; and the
//! arguments of `rfc6455 echo`.
#![cfg(all(feature = "client", feature = "server"))]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(10);

/// What the server received, and the client's close code.
type Seen = (Vec<tungstenite::Message>, Option<u16>);

/// Whether an error is EINTR. This process spawns the command, and on this kernel a child's
/// exit interrupts a blocking socket read that has a timeout (SO_RCVTIMEO) in any thread,
/// even with no signal handler: the read must be retried, not taken for the peer's end.
fn interrupted(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(e) if e.kind() == ErrorKind::Interrupted)
}

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
                    // A frame tungstenite could not write yet stays queued: flush it.
                    let mut sent = ws.send(m);
                    while sent.as_ref().is_err_and(interrupted) {
                        sent = ws.flush();
                    }
                    sent.unwrap();
                }
                Ok(_) => {}
                Err(e) if interrupted(&e) => {}
                Err(_) => return (got, code),
            }
        }
    });
    (url, handle)
}

/// A read, retried while interrupted (see `interrupted`).
fn read_retrying(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Reads the request, answers `reply` (nothing if `None`), and waits for the client to go.
fn raw_server(reply: Option<&'static str>) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(BOUND)).unwrap();
        let mut buf = [0; 4096];
        let _ = read_retrying(&mut stream, &mut buf);
        if let Some(reply) = reply {
            stream.write_all(reply.as_bytes()).unwrap();
        }
        while matches!(read_retrying(&mut stream, &mut buf), Ok(1..)) {}
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
    assert!(out.status.success(), "{}: {stderr}", out.status);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hi\nsecond line\n",
        "{stderr}"
    );
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
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "[binary 4 bytes] 00ff6162\n",
        "{stderr}"
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
    assert!(out.status.success(), "{}: {stderr}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n", "{stderr}");
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
    // The flag is named, with what a subprotocol may be.
    refused(
        url,
        &["--subprotocol", "a b"],
        "--subprotocol: subprotocol \"a b\" is not an HTTP token",
    );
    refused(
        "wss://127.0.0.1:1/",
        &["--ca", "/nonexistent/ca.pem"],
        "--ca: cannot read",
    );
    // Nothing listening is not a bad argument.
    let out = run(url, &[], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("could not connect"), "{stderr}");
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

#[test]
fn a_name_that_does_not_resolve_says_so() {
    // .invalid never resolves (RFC 6761 §6.4).
    let out = run("ws://no-such-host.invalid:9001/", &[], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("could not resolve the host name no-such-host.invalid"),
        "{stderr}"
    );
    assert!(!stderr.contains("server is running"), "{stderr}");
}

/// `rfc6455 echo` with `args`, killed once it printed its first line (or exited). Returns
/// the exit status if it exited by itself, its stdout line and its stderr.
fn echo_command(args: &[&str]) -> (Option<i32>, String, String) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_rfc6455"))
        .arg("echo")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    // The listening line, or EOF if it exits.
    stdout.read_line(&mut line).unwrap();
    let exited = child.try_wait().unwrap().and_then(|s| s.code());
    let code = match exited {
        Some(code) => Some(code),
        None if line.is_empty() => child.wait().unwrap().code(),
        None => {
            // Listening: connect once so that -v has something to say, then stop it.
            if let Some(addr) = line.split("ws://").nth(1).and_then(|r| r.split(' ').next()) {
                let url = format!("ws://{addr}/path");
                let out = run(&url, &["--wait", "0"], b"");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            child.kill().unwrap();
            None
        }
    };
    let out = child.wait_with_output().unwrap();
    (
        code,
        line,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn echo_listens_on_a_bare_port_and_labels_its_log_lines() {
    for listen in ["0", ":0"] {
        let (code, line, stderr) = echo_command(&["--listen", listen, "--threads", "1", "-v"]);
        assert_eq!(code, None, "--listen {listen}: {stderr}");
        assert!(
            line.starts_with("rfc6455 echo: listening on ws://127.0.0.1:"),
            "--listen {listen}: {line}"
        );
        // "conn 0.0.0 127.0.0.1:PORT open /path"
        let open = stderr.lines().find(|l| l.ends_with(" open /path"));
        let open = open.unwrap_or_else(|| panic!("no open line: {stderr}"));
        let words: Vec<&str> = open.split(' ').collect();
        assert_eq!(words[0], "conn", "{open}");
        assert_eq!(words[1].split('.').count(), 3, "{open}");
    }
}

#[test]
fn echo_refuses_bad_arguments_with_status_2() {
    for (args, says) in [
        (&["--listen", "nonsense"][..], "give HOST:PORT"),
        (&["--listen", "127.0.0.1"], "give HOST:PORT"),
        (&["--listen", "70000"], "port 70000 is not from 0 to 65535"),
        (
            &["--max-connections", "0"],
            "0 would refuse every connection",
        ),
    ] {
        let (code, line, stderr) = echo_command(args);
        assert_eq!(code, Some(2), "{args:?}: {line}{stderr}");
        assert!(stderr.contains(args[0]), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let help = Command::new(env!("CARGO_BIN_EXE_rfc6455"))
        .args(["echo", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("0 or not given: one per core"), "{help}");
}

/// A plain `rfc6455 echo` (no TLS, nothing to reload) gets SIGHUP: it says so on stderr and
/// goes on serving, instead of dying of the signal.
#[test]
fn echo_without_tls_survives_sighup() {
    let mut echo = common::Command::start_with(
        &["echo", "--listen", "127.0.0.1:0", "--threads", "1"],
        Stdio::piped(),
    );
    let url = format!("ws://{}/", echo.addr);
    let child = &mut echo.child;
    let mut stderr = child.stderr.take().unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    // Its line on stderr comes once the signal is handled; then it still echoes.
    let mut said = Vec::new();
    let mut byte = [0u8; 1];
    while !said.ends_with(b"\n") {
        let n = stderr.read(&mut byte).unwrap();
        assert!(n > 0, "stderr ended: {}", String::from_utf8_lossy(&said));
        said.push(byte[0]);
    }
    let said = String::from_utf8_lossy(&said).into_owned();
    assert!(
        said.contains("SIGHUP: no TLS certificate to reload"),
        "{said}"
    );
    let out = run(&url, &["--wait", "1"], b"still here\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "still here\n");
    assert_eq!(child.try_wait().unwrap(), None, "echo exited");
}
