//! `vitals serve` and `vitals check-config`: load and validate the configuration, then hand
//! it to the monitor. Errors are printed the way the config module words them.

use std::path::PathBuf;

use anyhow::Context;
use vitals_monitor::config::{self, Config};

/// Load `path`, or the embedded defaults without one. Every error is printed, one per line.
fn load(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(path) => config::load(path).map_err(|errors| {
            anyhow::anyhow!(
                "{errors}\n{} error(s); the monitor did not start",
                errors.0.len()
            )
        }),
        None => Ok(Config::embedded_default()),
    }
}

/// `VITALS_API_TOKEN` and `VITALS_READ_TOKEN`, when set, stand for `server.api_token` and
/// `server.read_token`: tokens from a secret store (a Kubernetes Secret) rather than the file.
fn tokens_from_env(config: &mut Config) -> anyhow::Result<()> {
    for (name, token) in [
        ("VITALS_API_TOKEN", &mut config.server.api_token),
        ("VITALS_READ_TOKEN", &mut config.server.read_token),
    ] {
        match std::env::var(name) {
            Ok(value) if value.trim().is_empty() => {
                anyhow::bail!("{name} is set but empty; unset it or give it a token")
            }
            Ok(value) if value.len() < 16 => {
                anyhow::bail!("{name} is shorter than 16 characters; use a long random token")
            }
            Ok(value) if !value.chars().all(|c| c.is_ascii_graphic()) => {
                anyhow::bail!("{name} holds a space or a character that is not visible ASCII")
            }
            Ok(value) => *token = Some(value),
            Err(std::env::VarError::NotPresent) => {}
            Err(std::env::VarError::NotUnicode(_)) => anyhow::bail!("{name} is not UTF-8"),
        }
    }
    Ok(())
}

pub async fn serve(path: Option<PathBuf>, store: Option<String>) -> anyhow::Result<()> {
    let mut config = load(path.as_ref())?;
    tokens_from_env(&mut config)?;
    if let Some(url) = store {
        if !config::is_postgres_url(&url) {
            anyhow::bail!(
                "--store {:?} is not a PostgreSQL URL; write postgres://USER:PASSWORD@HOST:5432/DATABASE, or leave it out to keep SQLite in the data directory",
                vitals_probes::redact_url(&url)
            );
        }
        config.server.store = Some(url);
    }
    if path.is_none() {
        eprintln!(
            "vitals: no --config given; running on embedded defaults (data in {}, no targets). See examples/vitals.toml.",
            config.server.data_dir.display()
        );
    }
    // With a file, SIGHUP and `POST /api/v1/reload` read it again.
    vitals_monitor::serve::run_from(path, config, |addr| {
        println!("vitals monitor on http://{addr} (API: /api/v1/targets, pings: /ping/<id>, metrics: /metrics)");
    })
    .await
    .context("the monitor stopped")?;
    println!("vitals monitor stopped");
    Ok(())
}

pub fn check_config(path: PathBuf, strict: bool) -> anyhow::Result<()> {
    match config::load(&path) {
        Ok(config) => {
            let warnings = missing_programs(&config);
            for warning in &warnings {
                eprintln!("{}: warning: {warning}", path.display());
            }
            if strict && !warnings.is_empty() {
                anyhow::bail!(
                    "{}: {} warning(s), refused by --strict",
                    path.display(),
                    warnings.len()
                );
            }
            println!("{}: ok ({} targets)", path.display(), config.targets.len());
            Ok(())
        }
        Err(errors) => {
            for error in &errors.0 {
                eprintln!("{error}");
            }
            anyhow::bail!("{}: {} error(s)", path.display(), errors.0.len())
        }
    }
}

/// Every program the configuration would run (exec checks, recovery commands, command
/// channels) that cannot be found on this machine: not on `PATH`, or a path that is not an
/// executable file. A valid file may name the programs of another machine, so these are
/// warnings unless `--strict` (issue 17, item 4).
fn missing_programs(config: &Config) -> Vec<String> {
    use vitals_monitor::config::{ChannelKind, RecoveryAction, TargetKind};
    let mut programs: Vec<(String, &str)> = Vec::new();
    for target in &config.targets {
        if let TargetKind::Exec { command } = &target.kind
            && let Some(program) = command.first()
        {
            programs.push((format!("target {:?}, command", target.id), program));
        }
        if let Some(recovery) = &target.recover
            && let RecoveryAction::Command(command) = &recovery.action
            && let Some(program) = command.first()
        {
            programs.push((format!("target {:?}, recover", target.id), program));
        }
    }
    for channel in &config.notify.channels {
        if let ChannelKind::Command { command } = &channel.kind
            && let Some(program) = command.first()
        {
            programs.push((format!("channel {:?}, command", channel.id), program));
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    programs
        .into_iter()
        .filter(|(_, program)| !runnable(program, &path))
        .map(|(place, program)| {
            if program.contains('/') {
                format!("{place}: {program:?} is not an executable file here")
            } else {
                format!("{place}: {program:?} is not found on PATH here")
            }
        })
        .collect()
}

/// Whether `program` names an executable file: a path as given, or a name searched on `path`
/// as `execvp` would.
fn runnable(program: &str, path: &std::ffi::OsStr) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |candidate: &std::path::Path| {
        std::fs::metadata(candidate)
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return executable(std::path::Path::new(program));
    }
    std::env::split_paths(path).any(|dir| executable(&dir.join(program)))
}
