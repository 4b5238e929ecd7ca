//! `rfc6455 echo`: not written yet.

use std::process::ExitCode;

/// Options of `rfc6455 echo`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args) -> ExitCode {
    eprintln!("rfc6455 echo: not implemented yet");
    ExitCode::FAILURE
}
