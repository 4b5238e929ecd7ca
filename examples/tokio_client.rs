//! A client on `rfc6455::tokio`: sends each line of standard input as a text message and
//! prints what comes back; or, with `--autobahn AGENT`, runs every case of a
//! `wstest -m fuzzingserver`, echoing each message (`bash autobahn/run.sh tokio-client`).
//!
//! ```text
//! cargo run --example tokio_client -- ws://127.0.0.1:9001/
//! cargo run --release --example tokio_client -- ws://127.0.0.1:9001 --autobahn rfc6455-tokio
//! ```

use rfc6455::proto::deflate::DeflateConfig;
use rfc6455::tokio::{connect_with, ConnectOptions, Error};
use rfc6455::{CloseCode, Config, Message};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .first()
        .cloned()
        .unwrap_or_else(|| "ws://127.0.0.1:9001/".into());
    if let Some(i) = args.iter().position(|a| a == "--autobahn") {
        let agent = args.get(i + 1).map_or("rfc6455-tokio", String::as_str);
        return autobahn(url.trim_end_matches('/'), agent).await;
    }
    let (mut ws, _) = connect_with(&url, &ConnectOptions::default()).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => match line? {
                Some(line) => ws.send(Message::text(line)).await?,
                None => break,
            },
            message = ws.recv() => match message {
                Some(message) => println!("< {:?}", message?),
                None => return Ok(()),
            },
        }
    }
    ws.close(CloseCode::NORMAL, "").await?;
    Ok(())
}

fn options(deflate: bool) -> ConnectOptions {
    let mut config = Config::default();
    config.max_frame_size = 64 << 20;
    let options = ConnectOptions::default().config(config);
    if !deflate {
        return options;
    }
    // Ask for nothing but the extension: the cases test what the server chooses.
    let mut deflate = DeflateConfig::default();
    deflate.server_no_context_takeover = false;
    options.deflate(deflate)
}

async fn autobahn(base: &str, agent: &str) -> Result<(), Error> {
    let (mut ws, _) = connect_with(&format!("{base}/getCaseCount"), &options(false)).await?;
    let count: u32 = match ws.recv().await {
        Some(Ok(m)) => m.as_text().and_then(|t| t.trim().parse().ok()).unwrap_or(0),
        _ => 0,
    };
    while ws.recv().await.is_some() {}
    eprintln!("tokio_client: {count} cases");
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        // The fuzzing server breaks the protocol on purpose: its verdict, not ours.
        if let Err(e) = echo(&url).await {
            eprintln!("case {case}: {e}");
        }
    }
    let url = format!("{base}/updateReports?agent={agent}");
    let (mut ws, _) = connect_with(&url, &options(false)).await?;
    ws.close(CloseCode::NORMAL, "").await?;
    Ok(())
}

async fn echo(url: &str) -> Result<(), Error> {
    let (mut ws, _) = connect_with(url, &options(true)).await?;
    while let Some(message) = ws.recv().await {
        ws.send(message?).await?;
    }
    Ok(())
}
