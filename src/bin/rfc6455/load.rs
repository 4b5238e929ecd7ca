//! `rfc6455 load`: a load generator for any WebSocket echo server.
//!
//! Thousands of connections driven from one mio loop per thread (`--threads`), each keeping
//! `--depth` messages in flight; throughput and latency percentiles over a measurement window
//! that starts after `--warmup`. `--idle` only opens connections and holds them, so the
//! server's memory per connection can be read.
//!
//! `--churn` measures new connections per second instead: each connection exchanges one
//! message, closes, and connects again (over `wss://` with TLS session resumption, or without
//! it with `--no-resume`).
//!
//! `--broadcast` drives a server that sends every message to every connection (its sender
//! included): once all connections have joined, `--publishers` of them publish numbered,
//! timestamped messages (see [`broadcast`]) at `--rate`, or with `--depth` in flight each,
//! and every connection checks it receives every one, in order; latency is from the
//! publisher's send to each receipt. With `--serve ROOM` the same run speaks `rfc6455 serve`'s
//! JSON protocol: every connection joins ROOM, and messages are checked by their text (see
//! [`serve`]).
//!
//! The hot path allocates nothing per message (see [`worker`]); masking keys come from a
//! xorshift generator seeded once per thread, which is enough for masking (see
//! `worker::XorShift`) but is not a cryptographic generator.
//!
//! Exit status: 0 if the run had no error; 1 if it had any (a failed connection, a wrong
//! echo, no echo at all …) or could not start (the host does not resolve, too few file
//! descriptors); 2 for bad arguments (an option out of range, a URL that is not ws://, a
//! congestion control the kernel refuses); 141, quietly, once its output is closed (`| head`),
//! as if SIGPIPE had ended it.

/// `println!` that ends the process quietly once stdout is closed (`rfc6455 load … | head`),
/// as SIGPIPE ends C programs, where std's would panic.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(141);
        }
    }};
}

mod broadcast;
mod histogram;
mod serve;
mod tls;
mod worker;

use broadcast::Broadcast;
use rfc6455::proto::Url;
use std::net::ToSocketAddrs;
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use worker::{Errors, Kind, Live, Payload, Plan, Report};

/// Options of `rfc6455 load`.
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  rfc6455 load ws://127.0.0.1:9001/ -c 100 -s 20 -d 5
  rfc6455 load ws://127.0.0.1:9001/ -c 10 -s 16384 --binary --depth 4 -d 5 --threads 2
  ulimit -n 20000; rfc6455 load ws://127.0.0.1:9001/ --idle -c 10000 -d 5 --server-pid PID
  rfc6455 load ws://127.0.0.1:9001/ --broadcast -c 1000 --publishers 2 -s 64 -d 5  # vs echo --broadcast
  rfc6455 load wss://localhost:9002/ --ca ca.pem --churn -c 50 -d 5 [--no-resume]

--churn: new connections per second. Each connection connects, completes the TCP, TLS (for
wss://) and WebSocket handshakes, sends one message (-s), closes with 1000 once its echo is
back, and once the server has closed TCP connects again; -c of them at once. The count is of
cycles completed in the window; over wss://, how many handshakes resumed a TLS session is
shown (--no-resume: none, every one is a full handshake).

Throughput counts echoes received in the window (after --warmup, for -d seconds); MB/s is
payload bytes (10^6) each way. Latency is from queueing a message to reading its echo.
Durations are in seconds (fractions allowed), at most 1e9.

--broadcast: for a server that sends every message to every connection, the sender
included. Publishing starts once all connections have joined; each payload starts with the
publisher's id, a sequence number from 0 and its send time (24 bytes with --binary; 48 for
text, as ASCII hex so the payload stays UTF-8), then a fixed pattern up to -s. Every
connection checks it gets each publisher's messages all, in order, intact: a gap is lost
(a late message then counts again, as reordered), and what has not arrived 1 s after
publishing stops is lost. Throughput counts deliveries (each copy received) and MB/s their
payload; latency is from the publisher's send to each receipt.

--broadcast --serve ROOM: the same through `rfc6455 serve`'s JSON protocol. Connection N
connects with ?nick=loadN added to the URL, waits for serve's welcome, sends
{\"type\":\"join\",\"room\":ROOM} and has joined once the joined reply arrives; publishers send
{\"type\":\"message\",\"room\":ROOM,\"text\":PAYLOAD} (-s is the length of the text, not of the
JSON), and each message serve delivers is checked by its text field. Presence and other
replies are counted, not checked. serve's defaults are for the internet (10 messages/s per
connection, 100 connections per IP): for a benchmark start it with
  rfc6455 serve --rate 1000000/s --burst 1000000 --max-per-ip 100000
(the tool says so when serve answers rate_limited or refuses connections with 429), e.g.
  rfc6455 load ws://127.0.0.1:8080/ws --broadcast --serve lobby -c 1000 -s 64 -d 5

Exit status: 0 if the run had no error, 1 if it had any or could not start, 2 for bad
arguments, 141 once its output is closed (e.g. by `| head`).")]
pub struct Args {
    /// The server's URL, ws:// or wss:// (the server must echo every message back).
    url: String,
    /// wss://: trust only the CA certificates in this PEM file instead of the Mozilla roots.
    #[arg(long, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    /// wss://: DANGER, accept any certificate for any name (a local server with a throwaway
    /// certificate only).
    #[arg(long = "insecure-accept-any-certificate", visible_alias = "insecure")]
    insecure: bool,
    /// Connections to open, 1 to 1000000 (one address reaches a server through at most
    /// about 64k local ports anyway).
    #[arg(short = 'c', long = "connections", default_value_t = 100,
          value_parser = whole(1, MAX_CONNECTIONS, "connections"),
          allow_negative_numbers = true)]
    connections: usize,
    /// Payload size of each message, in bytes: 0 to 1073741824 (1 GiB). Servers refuse far
    /// less by default (rfc6455's limit is 64 MiB), and every connection holds a copy.
    #[arg(short = 's', long = "size", default_value_t = 20,
          value_parser = whole(0, MAX_SIZE, "bytes (1 GiB)"),
          allow_negative_numbers = true)]
    size: usize,
    /// Send binary messages (default: text).
    #[arg(long)]
    binary: bool,
    /// Messages in flight per connection: send this many, then one more per echo. With
    /// --broadcast: per publisher, until its own copy comes back.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65536),
          allow_negative_numbers = true)]
    depth: u32,
    /// Length of the measurement window, in seconds (more than 0).
    #[arg(short = 'd', long = "duration", value_name = "SECS", default_value = "5",
          value_parser = seconds(false), allow_negative_numbers = true)]
    duration: Duration,
    /// Seconds to run before measuring (connections open during it); excluded from all numbers.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = seconds(true),
          allow_negative_numbers = true)]
    warmup: Duration,
    /// Threads, each with its own event loop and a share of the connections.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024),
          allow_negative_numbers = true)]
    threads: u32,
    /// Only open the connections and hold them (answering pings) for the whole run.
    #[arg(long, conflicts_with = "broadcast")]
    idle: bool,
    /// Measure new connections per second: each connection sends one message, closes once
    /// its echo is back, and connects again (see below).
    #[arg(long, conflicts_with_all = ["broadcast", "idle"])]
    churn: bool,
    /// wss://: no TLS session resumption (every handshake a full one).
    #[arg(long)]
    no_resume: bool,
    /// Drive a broadcast server (one that sends every message to every connection, the
    /// sender included) instead of an echo server: see below.
    #[arg(long)]
    broadcast: bool,
    /// With --broadcast: how many of the connections publish (at most --connections).
    #[arg(long, value_name = "K", default_value_t = 1, requires = "broadcast",
          value_parser = whole(1, MAX_CONNECTIONS, "publishers"),
          allow_negative_numbers = true)]
    publishers: usize,
    /// With --broadcast: drive `rfc6455 serve` in room ROOM through its JSON protocol (see
    /// below); the URL is serve's WebSocket endpoint, e.g. ws://127.0.0.1:8080/ws.
    #[arg(
        long,
        value_name = "ROOM",
        requires = "broadcast",
        conflicts_with = "binary"
    )]
    serve: Option<String>,
    /// More servers (repeat): the connections are spread over the URL and these, round
    /// robin (connection N to the (N mod count)-th), e.g. the nodes of one `rfc6455 serve
    /// --redis`. Same scheme as the URL.
    #[arg(long, value_name = "URL", requires = "broadcast")]
    also: Vec<String>,
    /// With --broadcast: messages per second per publisher (default: as fast as --depth in
    /// flight per publisher allows).
    #[arg(long, value_name = "R", requires = "broadcast", value_parser = rate,
          allow_negative_numbers = true)]
    rate: Option<f64>,
    /// With --idle: the server's process id, to read its memory (VmRSS) before and after.
    #[arg(
        long,
        value_name = "PID",
        requires = "idle",
        allow_negative_numbers = true
    )]
    server_pid: Option<u32>,
    /// Check only each echo's type and length, not its bytes (--broadcast: the header is
    /// still read, the pattern after it is not compared).
    #[arg(long)]
    no_verify: bool,
    /// TCP congestion control for the tool's connections (Linux: reno, cubic, bbr…; default:
    /// the system's). Against a server on this host, `reno` keeps BBR's pacing out of the
    /// measurement of every server alike.
    #[arg(long, value_name = "ALGORITHM")]
    tcp_congestion: Option<String>,
    /// Seconds a connection may take to connect and finish its handshake (more than 0).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds(false),
          allow_negative_numbers = true)]
    handshake_timeout: Duration,
}

/// The most connections `-c` takes: far beyond what one address can open to one server.
const MAX_CONNECTIONS: usize = 1_000_000;
/// The largest message `-s` takes: 1 GiB, 16 times rfc6455's default max_message_size.
const MAX_SIZE: usize = 1 << 30;

/// The longest duration option, in seconds (about 31 years): the run's times, in nanoseconds,
/// stay within a u64.
const MAX_SECS: f64 = 1e9;

/// A clap parser for a number of seconds up to [`MAX_SECS`]; 0 only if `zero_ok`.
fn seconds(zero_ok: bool) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync {
    let at_least = if zero_ok { "0 or more" } else { "more than 0" };
    move |value| {
        let secs = value
            .parse::<f64>()
            .map_err(|_| format!("give a number of seconds, {at_least}, e.g. 0.5"))?;
        if secs > MAX_SECS {
            return Err(format!("must be at most {MAX_SECS:e} seconds"));
        }
        match Duration::try_from_secs_f64(secs) {
            Ok(d) if zero_ok || !d.is_zero() => Ok(d),
            _ => Err(format!("must be {at_least} seconds")), // negative, NaN or 0
        }
    }
}

/// A clap parser for `--rate`: messages per second, more than 0, at most a billion.
fn rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(r) if r > 0.0 && r <= 1e9 => Ok(r),
        _ => Err("give messages per second, more than 0 and at most 1e9, e.g. 1000".into()),
    }
}

/// A clap parser for a whole number from `min` to `max` (`unit` follows `max` in the error).
fn whole(
    min: usize,
    max: usize,
    unit: &'static str,
) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync {
    move |value| match value.parse::<i128>() {
        Ok(n) if n < min as i128 => Err(format!("must be {min} or more")),
        Ok(n) if n > max as i128 => Err(format!("must be at most {max} {unit}")),
        Ok(n) => Ok(n as usize),
        Err(_) => Err(format!("give a whole number from {min} to {max}")),
    }
}

/// Runs the command: exit status 2 for bad arguments (see the module doc).
pub fn run(args: Args) -> ExitCode {
    let url = match check_arguments(&args) {
        Ok(url) => url,
        Err(message) => {
            eprintln!("rfc6455 load: {message}");
            return ExitCode::from(2);
        }
    };
    match run_checked(args, url) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("rfc6455 load: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Fails early, and says why, if the kernel will not give a socket this congestion control.
fn check_congestion(name: &str) -> Result<(), String> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .map_err(|e| format!("cannot open a socket: {e}"))?;
    worker::set_congestion(&socket2::SockRef::from(&socket), name)
}

/// What clap cannot check: the URL, and that the kernel takes --tcp-congestion.
fn check_arguments(args: &Args) -> Result<Url, String> {
    let url = Url::parse(&args.url).map_err(|e| format!("{}: {e}", args.url))?;
    if args.broadcast {
        if args.publishers > args.connections {
            return Err(format!(
                "--publishers {} is more than the {} connections (-c): publishers are connections",
                args.publishers, args.connections
            ));
        }
        let header = broadcast::header_len(!args.binary);
        if args.size < header {
            let (kind, other) = if args.binary {
                ("binary", "")
            } else if args.serve.is_some() {
                ("text", "")
            } else {
                ("text", ", or 24 with --binary")
            };
            return Err(format!(
                "-s {}: --broadcast puts a {header}-byte header in each {kind} message (publisher, sequence, send time): give -s {header} or more{other}",
                args.size
            ));
        }
    }
    if let Some(room) = &args.serve {
        if !serve::valid_room(room) {
            return Err(format!(
                "--serve {room:?}: a room name is 1 to 64 letters, digits, '_', '.' or '-'"
            ));
        }
    }
    if args.no_resume && !url.is_secure() {
        return Err(format!(
            "--no-resume is about TLS sessions: give a wss:// URL, not {}",
            args.url
        ));
    }
    if let Some(name) = &args.tcp_congestion {
        check_congestion(name)?;
    }
    Ok(url)
}

fn run_checked(args: Args, url: Url) -> Result<ExitCode, String> {
    let addr = (url.host(), url.port())
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", url.host()))?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", url.host()))?;
    let (duration, warmup, handshake_timeout) =
        (args.duration, args.warmup, args.handshake_timeout);
    check_fd_limit(args.connections)?;

    let threads = (args.threads as usize).min(args.connections);
    let payload = if args.binary {
        // Bytes that are not valid UTF-8 and vary along the message, so a server that
        // mangles or reorders them is caught by the byte comparison.
        Payload::Binary((0..args.size).map(|i| (i * 31 + 0x80) as u8).collect())
    } else {
        Payload::Text(
            (0..args.size)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect(),
        )
    };
    let tls = if url.is_secure() {
        let mut options = rfc6455::client::ConnectOptions::default();
        if let Some(path) = &args.ca {
            options = options.ca(rfc6455::tls::load_certs(path).map_err(|e| format!("--ca: {e}"))?);
        }
        options = options.danger_accept_invalid_certs(args.insecure);
        let options = options.with_shared_tls().map_err(|e| e.to_string())?;
        let name = rfc6455::tls::rustls::pki_types::ServerName::try_from(url.host().to_string())
            .map_err(|e| format!("{}: {e}", url.host()))?;
        let mut config = options.tls_config.expect("with_shared_tls sets it");
        // The sessions take the traffic keys over from rustls after the handshake.
        Arc::make_mut(&mut config).enable_secret_extraction = true;
        if args.no_resume {
            Arc::make_mut(&mut config).resumption =
                rfc6455::tls::rustls::client::Resumption::disabled();
        }
        Some(tls::TlsPlan {
            config,
            name,
            resume: !args.no_resume,
        })
    } else {
        None
    };
    let server_rss_before = args.server_pid.map(rss_kib).transpose()?;
    let t0 = Instant::now();
    let window = (
        warmup.as_nanos() as u64,
        (warmup + duration).as_nanos() as u64,
    );
    let mut also = Vec::new();
    for other in &args.also {
        let other_url = Url::parse(other).map_err(|e| format!("--also {other}: {e}"))?;
        if other_url.scheme() != url.scheme() {
            return Err(format!(
                "--also {other}: use the URL's scheme, {}",
                url.scheme()
            ));
        }
        let other_addr = (other_url.host(), other_url.port())
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", other_url.host()))?
            .next()
            .ok_or_else(|| format!("{} resolves to no address", other_url.host()))?;
        also.push((other_url, other_addr));
    }
    let plan = Arc::new(Plan {
        url: url.clone(),
        addr,
        also,
        payload,
        depth: if args.churn { 1 } else { args.depth as usize },
        idle: args.idle,
        churn: args.churn,
        verify: !args.no_verify,
        t0,
        window,
        handshake_timeout,
        close_timeout: Duration::from_secs(3),
        max_pending: 256,
        congestion: args.tcp_congestion.clone(),
        tls,
        broadcast: args.broadcast.then(|| {
            Arc::new(Broadcast::new(
                args.publishers,
                args.connections,
                args.rate,
                BROADCAST_GRACE,
            ))
        }),
        serve: args.serve.as_deref().map(serve::Serve::new),
    });

    let kind = if args.binary { "binary" } else { "text" };
    if args.broadcast {
        let pace = match args.rate {
            Some(r) => format!("{r} msg/s each"),
            None => format!("depth {} each", args.depth),
        };
        let (serve, kind) = match &args.serve {
            Some(room) => (format!(" --serve {room}"), "text (in serve's JSON)"),
            None => (String::new(), kind),
        };
        println!(
            "rfc6455 load --broadcast{serve}: {url} ({addr}) · {} connections, {} publishing {} B {kind} at {pace} · {threads} thread(s) · {:.1} s after {:.1} s warmup",
            args.connections,
            args.publishers,
            args.size,
            duration.as_secs_f64(),
            warmup.as_secs_f64()
        );
    } else if args.idle {
        println!(
            "rfc6455 load --idle: {url} ({addr}) · {} connections held for {:.1} s (+{:.1} s to connect) · {threads} thread(s)",
            args.connections,
            duration.as_secs_f64(),
            warmup.as_secs_f64()
        );
    } else if args.churn {
        let resume = match (url.is_secure(), args.no_resume) {
            (false, _) => "",
            (true, false) => " · TLS session resumption on",
            (true, true) => " · TLS session resumption off",
        };
        println!(
            "rfc6455 load --churn: {url} ({addr}) · {} connections at once, each one {} B {kind} echo then closed and opened again{resume} · {threads} thread(s) · {:.1} s after {:.1} s warmup",
            args.connections,
            args.size,
            duration.as_secs_f64(),
            warmup.as_secs_f64()
        );
    } else {
        println!(
            "rfc6455 load: {url} ({addr}) · {} connections × {} B {kind} · depth {} · {threads} thread(s) · {:.1} s after {:.1} s warmup",
            args.connections,
            args.size,
            args.depth,
            duration.as_secs_f64(),
            warmup.as_secs_f64()
        );
    }

    let mut lives = Vec::new();
    let mut handles = Vec::new();
    for t in 0..threads {
        let count = args.connections / threads + usize::from(t < args.connections % threads);
        let live = Arc::new(Live::default());
        let (plan, thread_live) = (Arc::clone(&plan), Arc::clone(&live));
        let handle = std::thread::Builder::new()
            .name(format!("load-{t}"))
            .spawn(move || worker::run(&plan, &thread_live, count, t, threads))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        lives.push(live);
        handles.push(handle);
    }

    // Progress, once a second, until the window ends or every thread has ended early (a
    // thread ends once all its connections have failed).
    let total = |f: fn(&Live) -> u64| lives.iter().map(|l| f(l)).sum::<u64>();
    let all_ended = || handles.iter().all(|h| h.is_finished());
    let mut last = (0u64, Duration::ZERO);
    let mut last_published = 0u64;
    let mut server_rss_up = None;
    let mut stopped_early = false;
    let mut tick = 1;
    loop {
        let at = Duration::from_secs(tick).min(warmup + duration);
        while t0.elapsed() < at && !all_ended() {
            std::thread::sleep(
                at.saturating_sub(t0.elapsed())
                    .min(Duration::from_millis(50)),
            );
        }
        let ended = all_ended();
        let elapsed = t0.elapsed();
        let echoes = total(|l| l.echoes.load(Relaxed));
        let up = total(|l| l.up.load(Relaxed));
        let errors = total(|l| l.errors.load(Relaxed));
        let published = total(|l| l.published.load(Relaxed));
        // The line covers the time since the last one: warmup if that began in the warmup.
        let phase = if last.1 < warmup { "warmup" } else { "" };
        if args.idle {
            if let Some(pid) = args.server_pid {
                // Keep the last reading taken with every connection up.
                if up == args.connections as u64 {
                    server_rss_up = rss_kib(pid).ok();
                }
            }
            println!(
                "{:>5.1}s {phase:<6}  up {up}/{}  errors {errors}",
                elapsed.as_secs_f64(),
                args.connections
            );
        } else if args.broadcast {
            let dt = (elapsed - last.1).as_secs_f64().max(1e-9);
            let rate = (echoes - last.0) as f64 / dt;
            println!(
                "{:>5.1}s {phase:<6}  {:>10} deliveries/s  {:>9.2} MB/s  {:>9} published/s  up {up}/{}  errors {errors}",
                elapsed.as_secs_f64(),
                thousands(rate as u64),
                rate * args.size as f64 / 1e6,
                thousands(((published - last_published) as f64 / dt) as u64),
                args.connections
            );
        } else {
            let dt = (elapsed - last.1).as_secs_f64().max(1e-9);
            let rate = (echoes - last.0) as f64 / dt;
            println!(
                "{:>5.1}s {phase:<6}  {:>10} msg/s  {:>9.2} MB/s  up {up}/{}  errors {errors}",
                elapsed.as_secs_f64(),
                thousands(rate as u64),
                rate * args.size as f64 / 1e6,
                args.connections
            );
        }
        last = (echoes, elapsed);
        last_published = published;
        if ended && elapsed < warmup + duration {
            stopped_early = true;
            println!(
                "stopped      after {:.1} s: every connection had failed",
                elapsed.as_secs_f64()
            );
            break;
        }
        if at >= warmup + duration {
            break;
        }
        tick += 1;
    }

    // The threads close their connections (bounded by the close timeout) and report.
    let mut report = Report::default();
    for handle in handles {
        match handle.join() {
            Ok(r) => {
                report.latency.merge(&r.latency);
                report.echoes += r.echoes;
                report.published += r.published;
                report.ignored += r.ignored;
                report.other += r.other;
                report.rate_limited += r.rate_limited;
                report.refused += r.refused;
                report.established += r.established;
                report.churned += r.churned;
                report.resumed += r.resumed;
                report.up_at_end += r.up_at_end;
                report.closed_clean += r.closed_clean;
                report.close_lingered += r.close_lingered;
                report.errors.merge(r.errors);
            }
            Err(_) => {
                report.errors.merge(Errors::default());
                return Err(
                    "a load thread panicked (a bug in rfc6455 load; please report it)".into(),
                );
            }
        }
    }

    let n = args.connections as u64;
    if args.idle {
        println!(
            "connections  {} established, {} of {n} up at the end, {} closed with 1000",
            report.established, report.up_at_end, report.closed_clean
        );
        print_lingered(&report);
        if let Ok(own) = rss_kib(std::process::id()) {
            println!("load tool    VmRSS {own} KiB");
        }
        match (server_rss_before, server_rss_up, args.server_pid) {
            (Some(before), Some(up), _) if report.up_at_end > 0 => println!(
                "server       VmRSS {before} KiB before, {up} KiB with {} up: {:.2} KiB per connection",
                report.up_at_end,
                (up as f64 - before as f64) / report.up_at_end as f64
            ),
            (Some(_), None, _) => println!(
                "server       never had all {n} connections up at once: no per-connection figure"
            ),
            (_, _, None) => println!(
                "hint         pass --server-pid PID, or read `grep VmRSS /proc/PID/status` of the server before and while this runs; (after - before) / {n} is its memory per idle connection"
            ),
            _ => {}
        }
    } else {
        // Stopped early, the window was cut short where the last line was printed.
        let window = if stopped_early {
            last.1.saturating_sub(warmup)
        } else {
            duration
        };
        let secs = window.as_secs_f64().max(1e-9);
        if let Some(b) = plan.broadcast.as_deref() {
            print_broadcast(b, &report, &args, secs, warmup);
        } else if args.churn {
            let resumed = if url.is_secure() {
                format!(
                    "; {} of the {} TLS handshakes of the run resumed a session",
                    thousands(report.resumed),
                    thousands(report.established)
                )
            } else {
                String::new()
            };
            println!(
                "new conns    {} opened, echoed and closed in {secs:.2} s = {} connections/s{resumed}",
                thousands(report.churned),
                thousands((report.churned as f64 / secs) as u64)
            );
        } else if report.echoes > 0 || !stopped_early {
            let rate = report.echoes as f64 / secs;
            println!(
                "messages     {} echoes in {secs:.2} s = {} msg/s, {:.2} MB/s of payload each way",
                thousands(report.echoes),
                thousands(rate as u64),
                rate * args.size as f64 / 1e6
            );
        }
        let h = &report.latency;
        if h.count() > 0 {
            let what = if args.broadcast {
                ", from send to each receipt"
            } else {
                ""
            };
            println!(
                "latency      p50 {}  p99 {}  p99.9 {}  max {}  (mean {}, min {}, {} samples{what})",
                micros(h.quantile(0.5)),
                micros(h.quantile(0.99)),
                micros(h.quantile(0.999)),
                micros(h.max()),
                micros(h.mean()),
                micros(h.min()),
                thousands(h.count())
            );
        }
        println!(
            "connections  {} established, {} of {n} up at the end, {} closed with 1000",
            report.established, report.up_at_end, report.closed_clean
        );
        print_lingered(&report);
    }

    let errors = &report.errors;
    if errors.total() == 0 {
        println!("errors       none");
    } else {
        println!("errors       {}", errors.total());
        for kind in Kind::ALL {
            let count = errors.counts[kind as usize];
            if count == 0 {
                continue;
            }
            println!("  {count:>8} × {}", kind.describe());
            for (_, message) in errors.samples.iter().filter(|(k, _)| *k == kind) {
                println!("             e.g. {message}");
            }
        }
    }

    if report.rate_limited > 0 || report.refused > 0 {
        let mut what = Vec::new();
        if report.rate_limited > 0 {
            let n = report.rate_limited;
            what.push(format!(
                "refused {} message{} with rate_limited",
                thousands(n),
                if n == 1 { "" } else { "s" }
            ));
        }
        if report.refused > 0 {
            let n = report.refused;
            what.push(format!(
                "refused {} connection{} with 429 Too Many Requests",
                thousands(n),
                if n == 1 { "" } else { "s" }
            ));
        }
        println!(
            "hint         the server {}: {}",
            what.join(" and "),
            serve::HINT
        );
    }

    if report.established == 0 {
        eprintln!(
            "rfc6455 load: no connection could be established to {url}: see the errors above"
        );
        return Ok(ExitCode::FAILURE);
    }
    if errors.total() > 0 {
        eprintln!("rfc6455 load: {} errors: see above", errors.total());
        return Ok(ExitCode::FAILURE);
    }
    if args.broadcast && report.echoes == 0 {
        eprintln!(
            "rfc6455 load: no broadcast message was delivered in the measurement window: does the server send every message to every connection?"
        );
        return Ok(ExitCode::FAILURE);
    }
    if args.churn && report.churned == 0 {
        eprintln!(
            "rfc6455 load: no connection completed its cycle (handshake, echo, close) in the measurement window"
        );
        return Ok(ExitCode::FAILURE);
    }
    if !args.idle && report.echoes == 0 {
        eprintln!(
            "rfc6455 load: no echo arrived in the measurement window: is the server an echo server?"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The figures of a `--broadcast` run: when publishing began, deliveries, publish rate,
/// fan-out, and what was lost or out of order.
fn print_broadcast(b: &Broadcast, report: &Report, args: &Args, secs: f64, warmup: Duration) {
    let n = args.connections;
    match b.started() {
        Some(at) => {
            let at = Duration::from_nanos(at);
            println!(
                "publishing   began at {:.2} s, once all {n} connections had joined",
                at.as_secs_f64()
            );
            if at > warmup {
                println!(
                    "             (after the warmup: the window's first {:.2} s had no messages; raise --warmup)",
                    (at - warmup).as_secs_f64()
                );
            }
        }
        None => println!(
            "publishing   never began: {} of {n} connections joined",
            b.joined.load(Relaxed)
        ),
    }
    let rate = report.echoes as f64 / secs;
    println!(
        "deliveries   {} in {secs:.2} s = {}/s, {:.2} MB/s of payload delivered",
        thousands(report.echoes),
        thousands(rate as u64),
        rate * args.size as f64 / 1e6
    );
    let fan_out = if report.published > 0 {
        format!("{:.1}", report.echoes as f64 / report.published as f64)
    } else {
        "-".into()
    };
    println!(
        "published    {} in {secs:.2} s = {} msg/s by {} publisher(s); fan-out {fan_out} deliveries per publish (expected {n})",
        thousands(report.published),
        thousands((report.published as f64 / secs) as u64),
        args.publishers
    );
    let count = |kind: Kind| report.errors.counts[kind as usize];
    let ignored = if report.ignored > 0 {
        format!(
            " ({} messages before publishing began ignored)",
            report.ignored
        )
    } else {
        String::new()
    };
    println!(
        "integrity    lost {}  reordered {}  corrupt {}{ignored}",
        thousands(count(Kind::Lost)),
        thousands(count(Kind::Reordered)),
        thousands(count(Kind::Corrupt))
    );
    if args.serve.is_some() {
        println!(
            "serve        {} other messages (presence, replies) received and not checked",
            thousands(report.other)
        );
    }
}

/// The grace after publishing stops for the messages still in flight.
const BROADCAST_GRACE: Duration = Duration::from_secs(1);

/// Notes connections the server did not close after answering the close frame.
fn print_lingered(report: &Report) {
    if report.close_lingered > 0 {
        println!(
            "             ({} of them answered the close frame but the server left TCP open until the 3 s timeout)",
            report.close_lingered
        );
    }
}

/// Fails early, with the fix, if the connections cannot all get a file descriptor.
fn check_fd_limit(connections: usize) -> Result<(), String> {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return Ok(()); // not Linux: let connect report it
    };
    let Some(soft) = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok())
    else {
        return Ok(()); // "unlimited" or unreadable
    };
    let need = connections.saturating_add(64);
    if need > soft {
        return Err(format!(
            "{connections} connections need about {need} file descriptors but the limit is {soft}; \
             raise it in the shell first, e.g. `ulimit -n {}`",
            need.div_ceil(1000).saturating_mul(1000)
        ));
    }
    Ok(())
}

/// VmRSS of a process, in KiB, from /proc.
fn rss_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("{path} has no VmRSS line"))
}

/// 1234567 → "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() * 4 / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Nanoseconds as a readable duration.
fn micros(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1000), "1,000");
        assert_eq!(super::thousands(1234567), "1,234,567");
    }
}
