//! `vitals probe URL`: STUB being written.

use std::process::ExitCode;

/// Arguments of `vitals probe`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// `http://…`, `https://…` or `tcp://host:port`.
    pub url: String,
}

pub async fn run(args: ProbeArgs) -> ExitCode {
    let _ = args;
    ExitCode::from(1)
}
