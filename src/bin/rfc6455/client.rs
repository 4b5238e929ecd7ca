//! `rfc6455 client URL`: an interactive client for the terminal, in the spirit of wscat.
//!
//! - Each line of stdin is sent as a text message (`--binary`: as a binary message), without
//!   its line ending.
//! - Each message received is printed to stdout on its own line: text as it is, binary as
//!   `[binary N bytes] HEX` (the whole payload in lowercase hex).
//! - Connection events (connected, pongs, the close code and reason, errors) go to stderr.
//! - When stdin ends (e.g. `echo hi | rfc6455 client URL`), messages are still printed for
//!   `--wait` seconds (default 1), then the client closes with 1000 and exits.
//! - Exit status: 0 after a close handshake with 1000, 1001 or no code; 1 for any other close
//!   code, a lost connection or an error; 2 for bad arguments (an option out of range, a URL
//!   that does not parse or is not ws://, a header or subprotocol that cannot be sent).
//!
//! A thread reads stdin into a channel; the main thread owns the connection and waits on the
//! socket with a short read timeout (50 ms), checking the channel in between.

use rfc6455::client::{Client, ClientError, ConnectOptions};
use rfc6455::{CloseCode, Event, Message};
use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::sync::mpsc::{self, TryRecvError};
use std::time::{Duration, Instant};

/// How long the main loop waits on the socket before looking at stdin again.
const TICK: Duration = Duration::from_millis(50);

/// Options of `rfc6455 client`.
#[derive(clap::Args)]
#[command(after_help = "\
Exit status: 0 after a normal close (1000, 1001 or no code), 1 for any other ending or an
error, 2 for bad arguments (including a URL or header that cannot be used).")]
pub struct Args {
    /// The server's URL, e.g. ws://127.0.0.1:9001/chat or wss://example.com/chat.
    url: String,
    /// wss://: trust only the CA certificates in this PEM file (a private or test CA)
    /// instead of the Mozilla roots built in.
    #[arg(long, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    /// wss://: DANGER, accept any certificate for any name: no authentication, anyone on
    /// the path can read and change the traffic. For a local server with a throwaway
    /// certificate only.
    #[arg(long = "insecure-accept-any-certificate", visible_alias = "insecure")]
    insecure: bool,
    /// Send each line as a binary message instead of text.
    #[arg(long)]
    binary: bool,
    /// Offer a subprotocol (repeat for several, most preferred first).
    #[arg(long = "subprotocol", value_name = "P")]
    subprotocols: Vec<String>,
    /// Send an extra handshake header, e.g. -H 'Authorization: Bearer abc' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Send a ping every SECS seconds (pongs are reported on stderr); 0 sends none.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    ping_interval: Option<f64>,
    /// After stdin ends, keep printing messages for SECS seconds, then close with 1000.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    wait: f64,
    /// Offer permessage-deflate (RFC 7692) with the default parameters; messages are
    /// compressed if the server accepts.
    #[arg(long)]
    deflate: bool,
    /// Give up connecting (TCP and handshake) after SECS seconds (more than 0).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10.0,
        allow_negative_numbers = true
    )]
    connect_timeout: f64,
}

/// `--name SECS` as a duration: 0 or more, or more than 0 unless `zero_ok`.
fn seconds(name: &str, secs: f64, zero_ok: bool) -> Result<Duration, String> {
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if zero_ok || !d.is_zero() => Ok(d),
        _ if zero_ok => Err(format!(
            "--{name} {secs}: give a number of seconds, 0 or more"
        )),
        _ => Err(format!(
            "--{name} {secs}: give a number of seconds more than 0"
        )),
    }
}

/// Runs the command.
pub fn run(args: Args) -> ExitCode {
    let setup = || -> Result<(ConnectOptions, Option<Duration>, Duration), String> {
        let connect_timeout = seconds("connect-timeout", args.connect_timeout, false)?;
        let mut options = ConnectOptions::default().connect_timeout(Some(connect_timeout));
        if args.deflate {
            #[cfg(feature = "deflate")]
            {
                options = options.deflate(rfc6455::proto::deflate::DeflateConfig::default());
            }
            #[cfg(not(feature = "deflate"))]
            return Err("--deflate: this build has no deflate feature; rebuild with it".into());
        }
        for p in &args.subprotocols {
            options = options.protocol(p.clone());
        }
        #[cfg(feature = "tls")]
        {
            if let Some(path) = &args.ca {
                let certs = rfc6455::tls::load_certs(path).map_err(|e| format!("--ca: {e}"))?;
                options = options.ca(certs);
            }
            if args.insecure {
                eprintln!(
                    "rfc6455 client: WARNING: --insecure: the server's certificate is not \
                     checked; this connection is not authenticated"
                );
                options = options.danger_accept_invalid_certs(true);
            }
        }
        #[cfg(not(feature = "tls"))]
        if args.ca.is_some() || args.insecure {
            return Err("--ca/--insecure: this build has no tls feature; rebuild with it".into());
        }
        for h in &args.headers {
            let Some((name, value)) = h.split_once(':') else {
                return Err(format!("-H {h:?}: write a header as 'Name: value'"));
            };
            options = options.header(name.trim(), value.trim());
        }
        let ping = match args.ping_interval {
            Some(secs) => Some(seconds("ping-interval", secs, true)?).filter(|d| !d.is_zero()),
            None => None,
        };
        Ok((options, ping, seconds("wait", args.wait, true)?))
    };
    let (options, ping_interval, wait) = match setup() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("rfc6455 client: {e}");
            return ExitCode::from(2);
        }
    };
    let mut client = match Client::connect_with(&args.url, &options) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("rfc6455 client: {}", describe(&e));
            let bad_argument = matches!(
                e,
                ClientError::Url(_) | ClientError::TlsNotSupported | ClientError::InvalidOption(_)
            );
            return ExitCode::from(if bad_argument { 2 } else { 1 });
        }
    };
    #[cfg(feature = "deflate")]
    if args.deflate {
        match client.deflate() {
            Some(p) => eprintln!(
                "permessage-deflate: server_no_context_takeover={} client_no_context_takeover={} \
                 server_max_window_bits={} client_max_window_bits={}",
                p.server_no_context_takeover,
                p.client_no_context_takeover,
                p.server_max_window_bits,
                p.client_max_window_bits
            ),
            None => eprintln!("permessage-deflate: not accepted by the server"),
        }
    }
    match client.protocol() {
        Some(p) => eprintln!("connected to {} (subprotocol {p})", args.url),
        None => eprintln!("connected to {}", args.url),
    }
    match session(&mut client, args.binary, ping_interval, wait) {
        Ok(code) => report_close(code),
        Err(e) => {
            eprintln!("rfc6455 client: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error in the command's words: hints name its options, not the library's.
fn describe(e: &ClientError) -> String {
    match e {
        ClientError::Timeout {
            during: during @ "the opening handshake",
        } => format!(
            "timed out waiting for {during}; the server did not answer in time (raise \
             --connect-timeout if it is just slow)"
        ),
        ClientError::Timeout { during } => {
            format!("timed out waiting for {during}; the server did not answer in time")
        }
        // Name the flag the option came from.
        ClientError::InvalidOption(e)
            if e.name().eq_ignore_ascii_case("Sec-WebSocket-Protocol") =>
        {
            format!(
                "--subprotocol: {} (a subprotocol is one word: letters, digits and \
                 !#$%&'*+-.^_`|~, no spaces; repeat --subprotocol to offer several)",
                e.reason()
            )
        }
        ClientError::InvalidOption(e)
            if !e.name().eq_ignore_ascii_case("Sec-WebSocket-Extensions") =>
        {
            format!("-H: {e}")
        }
        #[cfg(feature = "deflate")]
        ClientError::Deflate(e) => {
            format!("WebSocket handshake failed: {e} (or connect without --deflate)")
        }
        e => e.to_string(),
    }
}

/// Shows how the connection closed; 0 for a normal ending.
fn report_close(frame: Option<rfc6455::CloseFrame<'_>>) -> ExitCode {
    match frame {
        Some(f) => {
            // The code with its name, and the reason if any: "1000 (normal closure): bye".
            eprintln!("closed: {f}");
            if matches!(f.code, CloseCode::NORMAL | CloseCode::GOING_AWAY) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        None => {
            eprintln!("closed: no status code");
            ExitCode::SUCCESS
        }
    }
}

/// A line from stdin, or its end.
enum Input {
    Line(Vec<u8>),
    End,
}

fn spawn_stdin_reader() -> mpsc::Receiver<Input> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let stdin = io::stdin();
        let mut stdin = stdin.lock();
        loop {
            let mut line = Vec::new();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if line.ends_with(b"\n") {
                        line.pop();
                        if line.ends_with(b"\r") {
                            line.pop();
                        }
                    }
                    if tx.send(Input::Line(line)).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Input::End);
    });
    rx
}

/// Runs until the connection closes; returns the close frame that ended it.
fn session(
    client: &mut Client,
    binary: bool,
    ping_interval: Option<Duration>,
    wait: Duration,
) -> Result<Option<rfc6455::CloseFrame<'static>>, ClientError> {
    client.set_read_timeout(Some(TICK))?;
    let lines = spawn_stdin_reader();
    let mut stdin_done_at: Option<Instant> = None;
    // An interval too large to add to the clock never comes round: no ping.
    let mut next_ping = ping_interval.and_then(|d| Instant::now().checked_add(d));
    let stdout = io::stdout();
    loop {
        // Send what stdin has.
        while stdin_done_at.is_none() {
            match lines.try_recv() {
                Ok(Input::Line(line)) => {
                    if binary {
                        client.send_binary(&line)?;
                    } else {
                        match String::from_utf8(line) {
                            Ok(text) => client.send_text(&text)?,
                            Err(_) => eprintln!(
                                "rfc6455 client: skipped a line that is not UTF-8 (use --binary to send raw bytes)"
                            ),
                        }
                    }
                }
                Ok(Input::End) | Err(TryRecvError::Disconnected) => {
                    stdin_done_at = Some(Instant::now())
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        if stdin_done_at.is_some_and(|t| t.elapsed() >= wait) {
            return client.close(CloseCode::NORMAL, "");
        }
        if let (Some(at), Some(every)) = (next_ping, ping_interval) {
            if Instant::now() >= at {
                client.ping(b"")?;
                next_ping = Instant::now().checked_add(every);
            }
        }
        match client.recv() {
            Ok(Event::Message(m)) => {
                let mut out = stdout.lock();
                let written = match &m {
                    Message::Text(text) => writeln!(out, "{text}"),
                    Message::Binary(data) => write!(out, "[binary {} bytes] ", data.len())
                        .and_then(|()| {
                            for b in data.iter() {
                                write!(out, "{b:02x}")?;
                            }
                            writeln!(out)
                        }),
                }
                .and_then(|()| out.flush());
                if written.is_err() {
                    // stdout is gone (e.g. `| head -1`): nothing more to show.
                    return client.close(CloseCode::GOING_AWAY, "");
                }
            }
            Ok(Event::Ping(_)) => {}
            Ok(Event::Pong(_)) => eprintln!("pong"),
            Ok(Event::Close(frame)) => return Ok(frame),
            Ok(_) => {}
            Err(ClientError::Timeout { during: "a read" }) => {}
            Err(e) => return Err(e),
        }
    }
}
