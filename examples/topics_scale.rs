//! Topics at scale: 10,000 connections each subscribed to one shared topic and to 10 topics
//! of its own (100,000 topics with one subscriber, one topic with 10,000), in one server
//! process. Reports the server's memory per subscription, the cost of subscribe and
//! unsubscribe, and the time to fan one publish out to the 10,000.
//!
//! ```text
//! ulimit -n 20000
//! cargo run --release --example topics_scale            # 10,000 connections × (1 + 10)
//! cargo run --release --example topics_scale -- 2000 5  # connections, own topics each
//! ```
//!
//! The server runs in this process (one loop); the clients in a child process (this program
//! again, with `clients`), so neither process needs more than 10,000 descriptors. Memory is
//! this process's `VmRSS` before and after every connection subscribed (the clients live
//! elsewhere); subscribe and unsubscribe are timed inside the handler, around the calls.

use rfc6455::client::Client;
use rfc6455::proto::{Accept, Rejection, Request};
use rfc6455::server::{Builder, Context, Handler, Limits};
use rfc6455::{Event, Message};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Timing {
    subscribe_ns: AtomicU64,
    subscribes: AtomicU64,
    unsubscribe_ns: AtomicU64,
    unsubscribes: AtomicU64,
}

/// `sub I`: subscribe to "shared" and to `own` topics of connection I; `unsub I`: the reverse.
#[derive(Clone)]
struct Scale {
    own: usize,
    timing: Arc<Timing>,
}

impl Scale {
    fn topics(&self, i: usize) -> Vec<String> {
        let mut topics: Vec<String> = (0..self.own).map(|k| format!("t{i}.{k}")).collect();
        topics.push("shared".into());
        topics
    }
}

impl Handler for Scale {
    fn open(&mut self, _: &mut Context<'_>, request: &Request) -> Result<Accept, Rejection> {
        Ok(request.accept())
    }

    fn message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        let text = message.as_text().unwrap_or("");
        let (verb, i) = text.split_once(' ').unwrap_or((text, "0"));
        let topics = self.topics(i.parse().unwrap_or(0));
        let started = Instant::now();
        match verb {
            "sub" => {
                for t in &topics {
                    let _ = ctx.subscribe(t);
                }
                let ns = started.elapsed().as_nanos() as u64;
                self.timing.subscribe_ns.fetch_add(ns, Relaxed);
                self.timing
                    .subscribes
                    .fetch_add(topics.len() as u64, Relaxed);
            }
            "unsub" => {
                for t in &topics {
                    ctx.unsubscribe(t);
                }
                let ns = started.elapsed().as_nanos() as u64;
                self.timing.unsubscribe_ns.fetch_add(ns, Relaxed);
                self.timing
                    .unsubscribes
                    .fetch_add(topics.len() as u64, Relaxed);
            }
            _ => return,
        }
        let _ = ctx.send_text("ok");
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The child: N clients; each step waits for a line on stdin, then reports on stdout.
fn clients(addr: &str, n: usize) -> Result<(), String> {
    let url = format!("ws://{addr}/");
    let mut all = Vec::with_capacity(n);
    for i in 0..n {
        all.push(Client::connect(&url).map_err(|e| format!("connection {i}: {e}"))?);
    }
    let say = |line: &str| {
        println!("{line}");
        let _ = std::io::stdout().flush();
    };
    let mut stdin = BufReader::new(std::io::stdin()).lines();
    say("connected");
    let wait_ok = |c: &mut Client, what: &str| -> Result<(), String> {
        match c.recv() {
            Ok(Event::Message(m)) if m.as_text() == Some(what) => Ok(()),
            other => Err(format!("expected {what:?}, got {other:?}")),
        }
    };
    let _ = stdin.next();
    for (i, c) in all.iter_mut().enumerate() {
        c.send_text(&format!("sub {i}"))
            .map_err(|e| e.to_string())?;
    }
    for c in all.iter_mut() {
        wait_ok(c, "ok")?;
    }
    say("subscribed");
    let _ = stdin.next();
    for c in all.iter_mut() {
        wait_ok(c, "to all")?;
    }
    say("received");
    for (i, c) in all.iter_mut().enumerate() {
        c.send_text(&format!("unsub {i}"))
            .map_err(|e| e.to_string())?;
    }
    for c in all.iter_mut() {
        wait_ok(c, "ok")?;
    }
    say("unsubscribed");
    let _ = stdin.next();
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("clients") {
        let n = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(0);
        return match clients(&args[1], n) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("clients: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let n: usize = args.first().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let own: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(10);
    let timing = Arc::new(Timing::default());
    let mut limits = Limits::default();
    limits.max_connections = n + 100;
    let server = match Builder::new()
        .listen("127.0.0.1:0")
        .threads(1)
        .limits(limits)
        .shutdown_on_signals(false)
        .bind(Scale {
            own,
            timing: timing.clone(),
        }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bind: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = server.local_addrs()[0].to_string();
    let handle = server.handle();
    std::thread::spawn(move || server.run());
    let exe = std::env::current_exe().expect("this program's path");
    let mut child = Command::new(exe)
        .args(["clients", &addr, &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the clients' process");
    let mut to_child = child.stdin.take().expect("stdin");
    let result = drive(&mut child, &mut to_child, n, own, &timing, &handle);
    drop(to_child);
    let _ = child.kill();
    let _ = child.wait();
    handle.shutdown();
    result
}

fn drive(
    child: &mut std::process::Child,
    to_child: &mut std::process::ChildStdin,
    n: usize,
    own: usize,
    timing: &Timing,
    handle: &rfc6455::server::Handle,
) -> ExitCode {
    let mut from_child = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut expect = |what: &str| -> bool {
        match from_child.next() {
            Some(Ok(line)) if line == what => true,
            other => {
                eprintln!(
                    "clients said {other:?}, expected {what:?} (ulimit -n must allow {n} sockets)"
                );
                false
            }
        }
    };
    if !expect("connected") {
        return ExitCode::FAILURE;
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib();
    let _ = writeln!(to_child, "go");
    if !expect("subscribed") {
        return ExitCode::FAILURE;
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_kib();
    let subscriptions = timing.subscribes.load(Relaxed);
    let started = Instant::now();
    let _ = handle.publish("shared", Message::text("to all"));
    while handle.topic_stats().delivered < n as u64 && started.elapsed() < Duration::from_secs(30) {
        std::hint::spin_loop();
    }
    let fanout = started.elapsed();
    let _ = writeln!(to_child, "go");
    if !expect("received") || !expect("unsubscribed") {
        return ExitCode::FAILURE;
    }
    let _ = writeln!(to_child, "done");
    let per = |ns: &AtomicU64, count: &AtomicU64| {
        ns.load(Relaxed) as f64 / count.load(Relaxed).max(1) as f64
    };
    println!("connections             {n}");
    println!(
        "subscriptions           {subscriptions} ({} topics of one subscriber, one of {n})",
        n * own
    );
    println!(
        "memory                  {} KiB more after subscribing = {:.0} bytes per subscription",
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 * 1024.0 / subscriptions.max(1) as f64
    );
    println!(
        "subscribe               {:.0} ns each (mean, inside the handler)",
        per(&timing.subscribe_ns, &timing.subscribes)
    );
    println!(
        "unsubscribe             {:.0} ns each (mean, inside the handler)",
        per(&timing.unsubscribe_ns, &timing.unsubscribes)
    );
    println!(
        "publish to {n}     {:.2} ms until queued to every subscriber (then written)",
        fanout.as_secs_f64() * 1e3
    );
    ExitCode::SUCCESS
}
