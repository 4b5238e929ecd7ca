//! The Autobahn|Testsuite client loop: run every case of a `wstest -m fuzzingserver`.
//!
//! ```text
//! cargo run --release --example autobahn_client -- ws://127.0.0.1:9001 rfc6455 [--deflate]
//! ```
//!
//! Reads `/getCaseCount`, runs each case through `/runCase?case=N&agent=AGENT` echoing every
//! message back as it came (text as text, binary as binary), then asks for
//! `/updateReports?agent=AGENT`.

use rfc6455::client::{Client, ClientError, ConnectOptions};
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
    if deflate {
        eprintln!(
            "autobahn_client: --deflate: permessage-deflate is not supported yet; run without it"
        );
        return ExitCode::FAILURE;
    }
    let base = base.trim_end_matches('/');
    match run(base, agent) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autobahn_client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn options() -> ConnectOptions {
    let mut config = Config::default();
    // Case 9.* sends messages up to 16 MiB, in frames up to that size.
    config.max_frame_size = 64 << 20;
    config.max_message_size = 64 << 20;
    ConnectOptions::default()
        .config(config)
        .read_timeout(Some(Duration::from_secs(60)))
}

fn run(base: &str, agent: &str) -> Result<(), ClientError> {
    let count = case_count(base)?;
    eprintln!("autobahn_client: {count} cases");
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        match echo(&url) {
            Ok(()) => {}
            // The fuzzing server breaks the protocol on purpose: a failed case is its verdict
            // to make, not ours.
            Err(e) => eprintln!("case {case}: {e}"),
        }
    }
    let mut client =
        Client::connect_with(&format!("{base}/updateReports?agent={agent}"), &options())?;
    client.close(CloseCode::NORMAL, "")?;
    Ok(())
}

fn case_count(base: &str) -> Result<u32, ClientError> {
    let mut client = Client::connect_with(&format!("{base}/getCaseCount"), &options())?;
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

fn echo(url: &str) -> Result<(), ClientError> {
    let mut client = Client::connect_with(url, &options())?;
    loop {
        match client.recv()? {
            Event::Message(m) => client.send(m)?,
            Event::Close(_) => return Ok(()),
            _ => {}
        }
    }
}
