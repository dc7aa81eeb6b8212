//! `vitals supervise`: arguments, the configuration file, and the exit code. The
//! supervising is `vitals_supervise`'s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use vitals_supervise::{ProbeKind, config, reaper};

/// The exit code when the configuration or arguments are refused (as `docker run` does,
/// apart from the child's own codes).
const REFUSED: u8 = 125;

#[derive(Debug, clap::Args)]
pub struct SuperviseArgs {
    /// The configuration: probes as in a pod spec, restartPolicy,
    /// terminationGracePeriodSeconds, listen, agentCheck (see docs/SUPERVISE.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Serve the child's readiness on /readyz here (and /livez, /status); overrides `listen`.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Answer HAProxy agent checks here; overrides `agentCheck`.
    #[arg(long)]
    agent_check: Option<SocketAddr>,
    /// A startup probe, with Kubernetes' default timing: http://…, https://… or
    /// tcp://host:port (the file's table, if any, keeps its timing).
    #[arg(long, value_name = "URL")]
    startup: Option<String>,
    /// A liveness probe: http://…, https://… or tcp://host:port.
    #[arg(long, value_name = "URL")]
    liveness: Option<String>,
    /// A readiness probe: http://…, https://… or tcp://host:port.
    #[arg(long, value_name = "URL")]
    readiness: Option<String>,
    /// Reap orphaned descendants as PID 1 does (always on when running as PID 1).
    #[arg(long)]
    subreaper: bool,
    /// The command to run and its arguments, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub async fn run(args: SuperviseArgs) -> ExitCode {
    if reaper::needed(args.subreaper) {
        return match reaper::run(args.subreaper).await {
            Ok(code) => exit(code),
            Err(error) => {
                eprintln!("vitals supervise: {error}");
                ExitCode::from(REFUSED)
            }
        };
    }
    let plan = match &args.config {
        Some(path) => config::load(path, args.command),
        None => config::bare(args.command),
    };
    let mut plan = match plan {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("{error}\nvitals supervise: the configuration was refused; nothing started");
            return ExitCode::from(REFUSED);
        }
    };
    let flags = [
        (ProbeKind::Startup, &args.startup),
        (ProbeKind::Liveness, &args.liveness),
        (ProbeKind::Readiness, &args.readiness),
    ];
    for (kind, spec) in flags {
        if let Some(spec) = spec
            && let Err(error) = plan.set_probe_from_flag(kind, spec)
        {
            eprintln!("{error}\nvitals supervise: the arguments were refused; nothing started");
            return ExitCode::from(REFUSED);
        }
    }
    plan.listen = args.listen.or(plan.listen);
    plan.agent_check = args.agent_check.or(plan.agent_check);
    let command = plan.command.join(" ");
    let supervised = vitals_supervise::run(plan, |bound| {
        let mut banner = format!("vitals supervise: running {command}");
        if let Some(addr) = bound.http {
            banner.push_str(&format!("; readiness on http://{addr}/readyz"));
        }
        if let Some(addr) = bound.agent_check {
            banner.push_str(&format!("; agent check on {addr}"));
        }
        println!("{banner}");
    })
    .await;
    match supervised {
        Ok(code) => exit(code),
        Err(error) => {
            eprintln!("vitals supervise: {error}");
            ExitCode::from(REFUSED)
        }
    }
}

/// A child's code as this process's: codes are 0-255 on Unix.
fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1))
}
