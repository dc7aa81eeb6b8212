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

pub async fn serve(path: Option<PathBuf>) -> anyhow::Result<()> {
    let mut config = load(path.as_ref())?;
    tokens_from_env(&mut config)?;
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
    .context("the monitor stopped")
}

pub fn check_config(path: PathBuf) -> anyhow::Result<()> {
    match config::load(&path) {
        Ok(config) => {
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
