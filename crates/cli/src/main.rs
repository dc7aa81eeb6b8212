//! The `vitals` command: parses arguments, wires the library's parts together, and turns
//! errors into messages and exit codes. No health-checking logic lives here.

mod lb;
mod monitor;
mod probe;
mod supervise;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Heartbeats and health checks for services: a demo service, a monitor, a load balancer
/// and a one-shot probe.
///
/// Start with `vitals demo` (a service with probes you can break), then
/// `vitals serve --config examples/quickstart.toml` to watch it. `vitals <command> --help`
/// says more about each; the README walks through all of them.
#[derive(Debug, Parser)]
#[command(name = "vitals", version)]
struct Cli {
    /// How to write logs on standard error: `text` (coloured only on a terminal, and never
    /// when NO_COLOR is set) or `json` (one object per line, for log shippers).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "VITALS_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a demo service with live probes and dependencies you can break and mend.
    ///
    /// It needs no server: its "database" and "cache" are simulated, its memory and disk
    /// checks are real. Break one with `curl -X POST localhost:8000/demo/database/down` and
    /// watch /readyz, /health?verbose and /metrics react; `/` lists what it serves.
    ///
    /// Example: vitals demo --listen 127.0.0.1:9001
    Demo(vitals_demo::Args),
    /// Check one URL once, for Docker HEALTHCHECK and Kubernetes exec probes.
    ///
    /// Exit codes: 0 healthy, 1 usage error, 2 could not connect, 3 unexpected response,
    /// 4 reported unhealthy.
    ///
    /// Example: vitals probe http://127.0.0.1:8000/readyz --timeout 2s
    Probe(probe::ProbeArgs),
    /// Run the monitor: active checks and heartbeats, history, alerts, a dashboard.
    ///
    /// It listens on 127.0.0.1:7070 (dashboard at /, API at /api/v1, pings at /ping/<id>,
    /// metrics at /metrics) and keeps its history in ./vitals-data unless the file's [server]
    /// says otherwise. Without --config it runs on those defaults with no targets: it watches
    /// nothing until a file gives it [[target]]s.
    ///
    /// Example: vitals serve --config examples/quickstart.toml
    Serve {
        /// The TOML configuration (see examples/vitals.toml).
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// Keep the history in PostgreSQL, shared by replicas (postgres://USER@HOST/DB;
        /// docs/HA.md) instead of SQLite in the data directory; overrides server.store.
        #[arg(long, env = "VITALS_STORE", value_name = "URL")]
        store: Option<String>,
    },
    /// Run the load balancer: requests go to the healthy backends of each pool.
    ///
    /// HTTP/1.1 listeners in front of pools, each backend checked on its readiness path by the
    /// monitor's engine, with passive ejection, retries, drain, an admin API and metrics. Its
    /// listeners and admin address come from the file (examples/lb.toml: 127.0.0.1:8080,
    /// admin 127.0.0.1:9901). See docs/LB.md.
    ///
    /// Example: vitals lb --config examples/lb.toml
    Lb {
        /// The TOML configuration (see examples/lb.toml).
        #[arg(long)]
        config: std::path::PathBuf,
        /// Validate the configuration and exit; print every error with its line.
        #[arg(long)]
        check: bool,
    },
    /// Run a command and probe it with Kubernetes' semantics: startup, liveness and readiness
    /// probes, restart policy, CrashLoopBackOff; its readiness on /readyz (see
    /// docs/SUPERVISE.md).
    ///
    /// Exits with the child's code when the restart policy says so (Never, or OnFailure after
    /// a success), or after SIGTERM/SIGINT once the child has exited; 125 when the
    /// configuration is refused, 127 when the command cannot be started.
    ///
    /// Example: vitals supervise --config examples/supervise.toml -- vitals demo
    Supervise(supervise::SuperviseArgs),
    /// Validate a monitor or load balancer configuration without starting anything.
    ///
    /// Prints every error with its file, line and field, all at once, and exits 1; warns of
    /// programs the file would run that this machine lacks. A file with [[listener]] or
    /// [[pool]] is read as a load balancer's.
    ///
    /// Example: vitals check-config examples/vitals.toml
    CheckConfig {
        /// The TOML configuration to check.
        file: std::path::PathBuf,
        /// Also refuse the file for warnings: programs it would run (exec checks, recovery
        /// and channel commands) that are not found on this machine.
        #[arg(long)]
        strict: bool,
    },
}

/// Logs on standard error at `RUST_LOG` (default `info`). Colour codes only on a terminal:
/// files and the journal got escape sequences before (issue 14, item 6).
fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
            logs.with_ansi(std::io::stderr().is_terminal() && !no_color)
                .init();
        }
        LogFormat::Json => logs.json().with_ansi(false).init(),
    }
}

/// See the workspace's Cargo.toml: glibc's malloc was a sixth of the monitor's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // Usage errors exit 1, as `vitals probe` documents (clap's own default is 2, which there
    // means "could not connect"); help and version exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 1 } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    init_logs(cli.log_format);
    let result = match cli.command {
        Command::Probe(args) => return probe::run(args).await,
        Command::Supervise(args) => return supervise::run(args).await,
        Command::Serve { config, store } => monitor::serve(config, store).await,
        Command::Lb { config, check } => lb::run(config, check).await,
        Command::CheckConfig { file, .. } if lb::is_lb_file(&file) => lb::check_config(&file),
        Command::CheckConfig { file, strict } => monitor::check_config(file, strict),
        Command::Demo(args) => vitals_demo::run(args).await.map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vitals: {error:#}");
            ExitCode::FAILURE
        }
    }
}
