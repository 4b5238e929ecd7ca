//! `rfc6455 load`: not written yet.

use std::process::ExitCode;

/// Options of `rfc6455 load`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args) -> ExitCode {
    eprintln!("rfc6455 load: not implemented yet");
    ExitCode::FAILURE
}
