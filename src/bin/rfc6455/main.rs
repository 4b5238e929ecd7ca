//! The `rfc6455` command: `serve` (a chat and notification server), `echo` (the Autobahn
//! testee), `client` (a terminal client), `load` (a load generator).

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod client;
mod echo;
mod load;
mod serve;

/// A WebSocket stack written from RFC 6455 up.
#[derive(Parser)]
#[command(name = "rfc6455", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A chat and notification server with its browser page: rooms, history, presence,
    /// private messages, JWT, rate limits, an HTTP publish API and metrics, on one port.
    Serve(serve::Args),
    /// Echo every text and binary message back (the Autobahn testee).
    Echo(echo::Args),
    /// An interactive client: stdin lines go out as messages, messages received are printed.
    Client(client::Args),
    /// A load generator: many connections echoing messages, with throughput and latency.
    Load(load::Args),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => serve::run(args),
        Command::Echo(args) => echo::run(args),
        Command::Client(args) => client::run(args),
        Command::Load(args) => load::run(args),
    }
}
