//! `vitals-demo`: the demo service on its own, the quickest first build (`cargo run -p
//! vitals-demo`). The same service is `vitals demo` in the full command.

use std::process::ExitCode;

use clap::Parser;

/// A service embedding the vitals library, with live probes and a simulated database and
/// cache you can break and mend over HTTP (`/` lists how). The same as `vitals demo`.
///
/// Example: vitals-demo --listen 127.0.0.1:9001
#[derive(Debug, Parser)]
#[command(name = "vitals-demo", version)]
struct Cli {
    #[command(flatten)]
    args: vitals_demo::Args,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Colour only on a terminal, never with NO_COLOR; RUST_LOG filters (as `vitals`).
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && !no_color)
        .init();
    match vitals_demo::run(cli.args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vitals-demo: {error}");
            ExitCode::FAILURE
        }
    }
}
