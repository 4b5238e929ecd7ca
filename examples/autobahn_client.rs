//! The Autobahn|Testsuite client loop: run every case of a `wstest -m fuzzingserver`.
//!
//! ```text
//! cargo run --release --example autobahn_client -- ws://127.0.0.1:9001 rfc6455 [--deflate]
//! ```
//!
//! Reads `/getCaseCount`, runs each case through `/runCase?case=N&agent=AGENT` echoing every
//! message back as it came (text as text, binary as binary), then asks for
//! `/updateReports?agent=AGENT`.
//!
//! `--deflate` offers `permessage-deflate; client_max_window_bits` (context takeover both
//! ways, any window the server picks) and accepts whatever valid answer the server gives,
//! so cases 12.* and 13.* run.

use rfc6455::client::{Client, ClientError, ConnectOptions};
use rfc6455::proto::deflate::DeflateConfig;
use rfc6455::{CloseCode, Config, Event};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let deflate = args.iter().any(|a| a == "--deflate");
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let (Some(base), Some(agent)) = (positional.first(), positional.get(1)) else {
        eprintln!("usage: autobahn_client ws://127.0.0.1:9001 AGENT [--deflate]");
        return ExitCode::from(2);
    };
    let base = base.trim_end_matches('/');
    match run(base, agent, deflate) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autobahn_client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn options(deflate: bool) -> ConnectOptions {
    let mut config = Config::default();
    // Case 9.* sends messages up to 16 MiB, in frames up to that size.
    config.max_frame_size = 64 << 20;
    config.max_message_size = 64 << 20;
    let options = ConnectOptions::default()
        .config(config)
        .read_timeout(Some(Duration::from_secs(60)));
    if !deflate {
        return options;
    }
    // Ask for nothing but the extension: the cases test what the server chooses.
    let mut config = DeflateConfig::default();
    config.server_no_context_takeover = false;
    options.deflate(config)
}

fn run(base: &str, agent: &str, deflate: bool) -> Result<(), ClientError> {
    let count = case_count(base)?;
    eprintln!("autobahn_client: {count} cases");
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        match echo(&url, &options(deflate)) {
            Ok(()) => {}
            // The fuzzing server breaks the protocol on purpose: a failed case is its verdict
            // to make, not ours.
            Err(e) => eprintln!("case {case}: {e}"),
        }
    }
    let mut client = Client::connect_with(
        &format!("{base}/updateReports?agent={agent}"),
        &options(false),
    )?;
    client.close(CloseCode::NORMAL, "")?;
    Ok(())
}

fn case_count(base: &str) -> Result<u32, ClientError> {
    let mut client = Client::connect_with(&format!("{base}/getCaseCount"), &options(false))?;
    let mut count = None;
    loop {
        match client.recv()? {
            Event::Message(m) => count = m.as_text().and_then(|t| t.trim().parse().ok()),
            Event::Close(_) => break,
            _ => {}
        }
    }
    count.ok_or_else(|| {
        ClientError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the fuzzing server sent no case count",
        ))
    })
}

fn echo(url: &str, options: &ConnectOptions) -> Result<(), ClientError> {
    let mut client = Client::connect_with(url, options)?;
    loop {
        match client.recv()? {
            Event::Message(m) => client.send(m)?,
            Event::Close(_) => return Ok(()),
            _ => {}
        }
    }
}
