//! `rfc6455 load` end to end: runs the command for about a second against small echo servers
//! made with `tungstenite` in threads. No timing assertions: only that messages flowed, that
//! errors are counted and that the exit status says so.

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use tungstenite::{accept, Message};

/// Serves each connection in a thread, answering every data message with `reply(message)`.
fn server(reply: fn(Message) -> Message) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/echo", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream, reply));
        }
    });
    url
}

fn serve(stream: TcpStream, reply: fn(Message) -> Message) {
    let Ok(mut ws) = accept(stream) else { return };
    while let Ok(m) = ws.read() {
        if (m.is_text() || m.is_binary()) && ws.send(reply(m)).is_err() {
            return;
        }
    }
}

fn load(args: &[&str]) -> (Output, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rfc6455"))
        .arg("load")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out, stdout)
}

/// The number after `label` on the line starting with `line`.
fn echoes(stdout: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("messages"))
        .expect("a messages line");
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap()
}

#[test]
fn text_and_binary_echoes_flow_without_errors() {
    let url = server(|m| m);
    for extra in [
        &["-s", "20"][..],
        &["-s", "3000", "--binary", "--depth", "4", "--threads", "2"],
        // Framed ahead of time, and echoed in parts by servers that stream.
        &["-s", "100000", "--binary", "--depth", "3"],
    ] {
        let mut args = vec![&url[..], "-c", "8", "-d", "1", "--warmup", "0.2"];
        args.extend_from_slice(extra);
        let (out, stdout) = load(&args);
        assert!(out.status.success(), "{args:?}");
        assert!(echoes(&stdout) > 0, "{args:?}");
        assert!(stdout.contains("errors       none"), "{args:?}");
        assert!(stdout.contains("8 established, 8 of 8 up at the end, 8 closed with 1000"));
        assert!(stdout.contains("latency      p50"));
        assert!(
            !stdout.contains("left TCP open"),
            "the client must see the server's close"
        );
    }
}

#[test]
fn idle_connections_are_held_and_closed() {
    let url = server(|m| m);
    let (out, stdout) = load(&[&url, "--idle", "-c", "20", "-d", "0.5", "--warmup", "0.5"]);
    assert!(out.status.success());
    assert!(stdout.contains("20 established, 20 of 20 up at the end, 20 closed with 1000"));
}

/// `--churn`: each slot closes after one echo and connects again, so far more connections are
/// made than slots, and every one is closed cleanly.
#[test]
fn churn_makes_new_connections_again_and_again() {
    let url = server(|m| m);
    let (out, stdout) = load(&[&url, "--churn", "-c", "4", "-d", "1", "--warmup", "0.2"]);
    assert!(out.status.success());
    assert!(stdout.contains("errors       none"));
    let line = stdout
        .lines()
        .find(|l| l.starts_with("new conns"))
        .expect("a new conns line");
    let opened: u64 = line
        .split_whitespace()
        .nth(2)
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap();
    assert!(opened > 8, "only {opened} connections for 4 slots: {line}");
    // Every connection established was closed with 1000: in the cycle, or at the end.
    let line = stdout
        .lines()
        .find(|l| l.starts_with("connections"))
        .expect("a connections line");
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[1], words[words.len() - 4], "{line}");
}

#[test]
fn a_wrong_echo_is_an_error() {
    let url = server(|m| match m {
        Message::Text(t) => Message::text(t.as_str().to_uppercase()),
        other => other,
    });
    let (out, stdout) = load(&[&url, "-c", "2", "-d", "0.5", "--warmup", "0"]);
    assert!(!out.status.success());
    assert!(
        stdout.contains("an echo did not match what was sent"),
        "{stdout}"
    );
    let url = server(|m| Message::binary(m.into_data()));
    let (out, stdout) = load(&[&url, "-c", "2", "-d", "0.5", "--warmup", "0"]);
    assert!(!out.status.success());
    assert!(
        stdout.contains("expected a 20-byte text echo, got a 20-byte binary message"),
        "{stdout}"
    );
    // A large echo is checked as it arrives (in parts, its 256 KiB reads cannot hold it).
    let url = server(|m| {
        let mut data = m.into_data().to_vec();
        data[600_000] ^= 1;
        Message::binary(data)
    });
    let large = |url: &str| load(&[url, "-c", "1", "-s", "1000000", "--binary", "-d", "0.5"]);
    let (out, stdout) = large(&url);
    assert!(!out.status.success());
    assert!(
        stdout.contains("a 1000000-byte binary echo differs from the message sent within bytes"),
        "{stdout}"
    );
    let url = server(|m| Message::binary(m.into_data().slice(..999_999)));
    let (out, stdout) = large(&url);
    assert!(!out.status.success());
    assert!(
        stdout.contains("expected a 1000000-byte binary echo, got 999999 bytes"),
        "{stdout}"
    );
}

#[test]
fn no_server_is_a_clear_failure() {
    // A port that was free a moment ago: nothing listens on it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/");
    // Once every connection has failed the run stops: it does not wait out the 20 s.
    let (out, stdout) = load(&[&url, "-c", "3", "-d", "10", "--warmup", "10"]);
    assert!(!out.status.success());
    assert!(stdout.contains("3 × TCP connect failed"), "{stdout}");
    assert!(stdout.contains("every connection had failed"), "{stdout}");
    // One example of the one message, and no figures made of no samples.
    assert_eq!(stdout.matches("e.g.").count(), 1, "{stdout}");
    assert!(!stdout.contains("latency"), "{stdout}");
    assert!(!stdout.contains("messages"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no connection could be established"),
        "{stderr}"
    );
}

/// Runs `load` with `args` and checks it exits 2 (bad arguments) saying `why` on stderr.
fn refused(args: &[&str], why: &str) {
    let (out, _) = load(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(why), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
}

#[test]
fn out_of_range_counts_and_sizes_are_bad_arguments() {
    let url = "ws://127.0.0.1:1/";
    refused(&[url, "-c", "18446744073709551615"], "at most 1000000");
    refused(&[url, "-c", "0"], "must be 1 or more");
    refused(&[url, "-s", "100000000000"], "at most 1073741824 bytes");
    // Negative numbers are values out of range, not unknown options.
    refused(&[url, "-c", "-5"], "must be 1 or more");
    refused(&[url, "-s", "-1"], "must be 0 or more");
    refused(&[url, "--depth", "-1"], "-1 is not in 1..=65536");
}

#[test]
fn out_of_range_durations_are_bad_arguments() {
    let url = "ws://127.0.0.1:1/";
    refused(
        &[url, "--handshake-timeout", "0"],
        "must be more than 0 seconds",
    );
    refused(&[url, "-d", "0"], "must be more than 0 seconds");
    refused(&[url, "-d", "nan"], "must be more than 0 seconds");
    refused(&[url, "-d", "-1"], "must be more than 0 seconds");
    refused(&[url, "--warmup", "-0.5"], "must be 0 or more seconds");
    // Their sum overflowed a Duration.
    refused(
        &[url, "-d", "1e19", "--warmup", "1e19"],
        "at most 1e9 seconds",
    );
}

#[test]
fn unusable_urls_are_bad_arguments() {
    refused(&["http://127.0.0.1:1/"], "WebSocket URLs use ws://");
    refused(&["127.0.0.1:1"], "no scheme");
    refused(&["ws://127.0.0.1:99999/"], "from 1 to 65535");
    // wss:// is taken: tests/tls_command.rs runs load over it.
    refused(
        &["ws://127.0.0.1:1/", "--churn", "--no-resume"],
        "--no-resume is about TLS sessions",
    );
}

#[test]
fn progress_lines_covering_the_warmup_say_so() {
    let url = server(|m| m);
    let (out, stdout) = load(&[&url, "-c", "2", "--warmup", "1", "-d", "0.2"]);
    assert!(out.status.success());
    let progress: Vec<&str> = stdout.lines().filter(|l| l.contains("msg/s  ")).collect();
    assert_eq!(progress.len(), 2, "{stdout}");
    assert!(progress[0].contains("s warmup "), "{stdout}");
    assert!(!progress[1].contains("warmup"), "{stdout}");
}

#[test]
fn server_pid_needs_idle() {
    refused(&["ws://127.0.0.1:1/", "--server-pid", "1"], "--idle");
}

#[test]
fn a_closed_output_ends_the_run_quietly() {
    // `rfc6455 load … | head -1`: once the reader is gone the tool stops as SIGPIPE would stop
    // a C program (status 141), without a panic.
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let url = server(|m| m);
    let mut child = Command::new(env!("CARGO_BIN_EXE_rfc6455"))
        .args(["load", &url, "-c", "2", "-d", "30", "--warmup", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("rfc6455 load:"), "{first}");
    // The pipe's read end is closed here; the next progress line (within a second) fails.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

// --- `load --broadcast` -------------------------------------------------------------------

/// `rfc6455 echo` as a child process on a free port (killed on drop), with `args`.
struct EchoChild {
    _command: common::Command,
    url: String,
}

impl EchoChild {
    fn start(args: &[&str]) -> EchoChild {
        let mut all = vec!["echo", "--listen", "127.0.0.1:0", "--threads", "2"];
        all.extend_from_slice(args);
        let command = common::Command::start(&all);
        let url = format!("ws://{}/", command.addr);
        EchoChild {
            _command: command,
            url,
        }
    }
}

/// The number after `label` (e.g. "lost") on the line starting with `line`.
fn figure(stdout: &str, line: &str, label: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(line))
        .unwrap_or_else(|| panic!("no {line:?} line in {stdout}"));
    let mut words = line.split_whitespace();
    words
        .find(|w| *w == label)
        .and_then(|_| words.next())
        .unwrap_or_else(|| panic!("no {label:?} in {line:?}"))
        .replace(',', "")
        .parse()
        .unwrap()
}

#[test]
fn broadcast_against_echo_broadcast_has_every_message_in_order() {
    let server = EchoChild::start(&["--broadcast"]);
    for extra in [
        &[][..],
        // Publishers spread over two threads, at a fixed rate, binary.
        &["--threads", "2", "--rate", "300", "--binary"],
    ] {
        let mut args = vec![
            &server.url[..],
            "--broadcast",
            "-c",
            "50",
            "--publishers",
            "2",
            "-s",
            "64",
            "-d",
            "1",
            "--warmup",
            "0.5",
        ];
        args.extend_from_slice(extra);
        let (out, stdout) = load(&args);
        assert!(out.status.success(), "{args:?}");
        assert!(figure(&stdout, "deliveries", "deliveries") > 0, "{stdout}");
        assert!(stdout.contains("errors       none"), "{stdout}");
        assert_eq!(figure(&stdout, "integrity", "lost"), 0);
        assert_eq!(figure(&stdout, "integrity", "reordered"), 0);
        assert_eq!(figure(&stdout, "integrity", "corrupt"), 0);
        assert!(stdout.contains("(expected 50)"), "{stdout}");
        assert!(stdout.contains("from send to each receipt"), "{stdout}");
        assert!(stdout.contains("50 established, 50 of 50 up at the end, 50 closed with 1000"));
    }
}

#[test]
fn broadcast_against_an_echo_server_loses_what_others_should_have_had() {
    // A server that sends each message back to its sender only.
    let server = EchoChild::start(&[]);
    let (out, stdout) = load(&[
        &server.url,
        "--broadcast",
        "-c",
        "5",
        "-s",
        "64",
        "-d",
        "0.3",
        "--warmup",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    // Four of the five connections never see the publisher's messages.
    let published = figure(&stdout, "published", "published");
    assert!(published > 0, "{stdout}");
    assert!(
        figure(&stdout, "integrity", "lost") >= 4 * published,
        "{stdout}"
    );
    assert!(stdout.contains("publisher 0's messages 0.."), "{stdout}");
}

/// What a faulty broadcaster does wrong, once in `every` messages.
#[derive(Clone, Copy)]
enum Fault {
    /// Publishes nothing for it.
    Drop,
    /// Holds it and publishes it after the next one.
    Swap,
    /// Flips its last byte.
    Flip,
}

#[derive(Clone)]
struct Faulty {
    fault: Fault,
    every: u64,
    seen: u64,
    held: Option<rfc6455::Message<'static>>,
}

impl rfc6455::server::Handler for Faulty {
    fn open(
        &mut self,
        ctx: &mut rfc6455::server::Context<'_>,
        request: &rfc6455::proto::Request,
    ) -> Result<rfc6455::proto::Accept, rfc6455::proto::Rejection> {
        ctx.subscribe("all").unwrap();
        Ok(request.accept())
    }

    fn message(&mut self, ctx: &mut rfc6455::server::Context<'_>, message: rfc6455::Message<'_>) {
        self.seen += 1;
        let faulty = self.seen.is_multiple_of(self.every);
        match self.fault {
            Fault::Drop if faulty => {}
            Fault::Swap if faulty => self.held = Some(message.into_owned()),
            Fault::Flip if faulty => {
                let mut data = message.as_bytes().to_vec();
                *data.last_mut().unwrap() ^= 1;
                let _ = ctx.publish("all", rfc6455::Message::binary(data));
            }
            _ => {
                let _ = ctx.publish("all", message);
                if let Some(held) = self.held.take() {
                    let _ = ctx.publish("all", held);
                }
            }
        }
    }
}

/// A one-loop broadcaster with `fault` once in `every` messages; its URL.
fn faulty(fault: Fault, every: u64) -> String {
    let server = rfc6455::server::Server::builder()
        .listen("127.0.0.1:0")
        .threads(1)
        .shutdown_on_signals(false)
        .bind(Faulty {
            fault,
            every,
            seen: 0,
            held: None,
        })
        .unwrap();
    let url = format!("ws://{}/", server.local_addrs()[0]);
    std::thread::spawn(move || server.run());
    url
}

#[test]
fn a_broadcaster_that_drops_reorders_or_corrupts_is_caught() {
    let run = |url: &str| {
        load(&[
            url,
            "--broadcast",
            "-c",
            "10",
            "--publishers",
            "2",
            "-s",
            "40",
            "--binary",
            "--depth",
            "4",
            "-d",
            "0.5",
            "--warmup",
            "0.2",
        ])
    };
    let (out, stdout) = run(&faulty(Fault::Drop, 50));
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(figure(&stdout, "integrity", "lost") > 0, "{stdout}");
    assert_eq!(figure(&stdout, "integrity", "reordered"), 0, "{stdout}");
    assert!(
        stdout.contains("lost (a gap in a publisher's sequence"),
        "{stdout}"
    );

    let (out, stdout) = run(&faulty(Fault::Swap, 50));
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(figure(&stdout, "integrity", "reordered") > 0, "{stdout}");
    assert!(stdout.contains("again or late"), "{stdout}");

    let (out, stdout) = run(&faulty(Fault::Flip, 50));
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(figure(&stdout, "integrity", "corrupt") > 0, "{stdout}");
    assert_eq!(figure(&stdout, "integrity", "lost"), 0, "{stdout}");
    assert!(stdout.contains("differs from the one sent"), "{stdout}");

    // The same server without its fault passes: the faults above are what was caught.
    let (out, stdout) = run(&faulty(Fault::Drop, u64::MAX));
    assert!(out.status.success(), "{stdout}");
}

#[test]
fn broadcast_bad_arguments() {
    let url = "ws://127.0.0.1:1/";
    refused(
        &[url, "--broadcast", "-s", "47"],
        "a 48-byte header in each text message",
    );
    refused(
        &[url, "--broadcast", "-s", "23", "--binary"],
        "give -s 24 or more",
    );
    refused(
        &[url, "--broadcast", "-c", "3", "--publishers", "4"],
        "--publishers 4 is more than the 3 connections",
    );
    refused(&[url, "--broadcast", "--rate", "0"], "more than 0");
    refused(&[url, "--publishers", "2"], "--broadcast");
    refused(&[url, "--broadcast", "--idle"], "cannot be used with");
}

// --- `load --broadcast --serve` -----------------------------------------------------------

/// `rfc6455 serve` as a child process on a free port (killed on drop), with `args`.
struct ServeChild {
    _command: common::Command,
    url: String,
}

impl ServeChild {
    fn start(args: &[&str]) -> ServeChild {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let command = common::Command::start(&all);
        let url = format!("ws://{}/ws", command.addr);
        ServeChild {
            _command: command,
            url,
        }
    }
}

const BENCHMARK_LIMITS: [&str; 6] = [
    "--rate",
    "1000000/s",
    "--burst",
    "1000000",
    "--max-per-ip",
    "100000",
];

#[test]
fn broadcast_through_serve_has_every_message_in_order() {
    let server = ServeChild::start(&BENCHMARK_LIMITS);
    let args = [
        &server.url[..],
        "--broadcast",
        "--serve",
        "lobby",
        "-c",
        "30",
        "--publishers",
        "2",
        "-s",
        "64",
        "-d",
        "1",
        "--warmup",
        "0.5",
    ];
    let (out, stdout) = load(&args);
    assert!(out.status.success(), "{stdout}");
    assert!(figure(&stdout, "deliveries", "deliveries") > 0, "{stdout}");
    assert!(stdout.contains("errors       none"), "{stdout}");
    assert_eq!(figure(&stdout, "integrity", "lost"), 0, "{stdout}");
    assert_eq!(figure(&stdout, "integrity", "reordered"), 0, "{stdout}");
    assert_eq!(figure(&stdout, "integrity", "corrupt"), 0, "{stdout}");
    // Deliveries and publishes counted in the same window: messages in flight at its edges
    // may move the ratio a little off 30.
    let fan_out: f64 = stdout
        .split("fan-out ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("no fan-out in {stdout}"));
    assert_eq!(fan_out.round(), 30.0, "{stdout}");
    assert!(stdout.contains("(expected 30)"), "{stdout}");
    assert!(
        stdout.contains("once all 30 connections had joined"),
        "{stdout}"
    );
    assert!(stdout.contains("30 established, 30 of 30 up at the end, 30 closed with 1000"));
    assert!(!stdout.contains("hint"), "{stdout}");
}

#[test]
fn broadcast_through_serve_with_its_default_limits_says_how_to_start_it() {
    let server = ServeChild::start(&[]);
    // A publisher at full speed meets the 10/s limit once its burst of 20 is spent.
    let (out, stdout) = load(&[
        &server.url,
        "--broadcast",
        "--serve",
        "lobby",
        "-c",
        "3",
        "-s",
        "64",
        "-d",
        "0.5",
        "--warmup",
        "0.3",
    ]);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("serve answered with an error"), "{stdout}");
    assert!(stdout.contains("rate_limited"), "{stdout}");
    let hint =
        "start serve with --rate 1000000/s --burst 1000000 --max-per-ip 100000 for a benchmark";
    assert!(stdout.contains(hint), "{stdout}");
    // Its per-IP limit (100) refuses the rest with 429.
    let server = ServeChild::start(&[]);
    let (out, stdout) = load(&[
        &server.url,
        "--broadcast",
        "--serve",
        "lobby",
        "-c",
        "103",
        "-s",
        "64",
        "-d",
        "0.3",
        "--warmup",
        "0.5",
    ]);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("the server refused 3 connections with 429 Too Many Requests"),
        "{stdout}"
    );
    assert!(stdout.contains(hint), "{stdout}");
}

#[test]
fn serve_bad_arguments() {
    let url = "ws://127.0.0.1:9/ws";
    refused(&[url, "--serve", "lobby"], "--broadcast");
    refused(
        &[url, "--broadcast", "--serve", "lobby", "--binary"],
        "cannot be used with",
    );
    refused(
        &[url, "--broadcast", "--serve", "a b", "-s", "64"],
        "a room name is 1 to 64 letters",
    );
    refused(
        &[url, "--broadcast", "--serve", "lobby", "-s", "47"],
        "give -s 48 or more\n",
    );
}
