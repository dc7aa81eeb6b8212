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

pub async fn serve(path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = load(path.as_ref())?;
    if path.is_none() {
        eprintln!(
            "vitals: no --config given; running on embedded defaults (data in {}, no targets). See examples/vitals.toml.",
            config.server.data_dir.display()
        );
    }
    vitals_monitor::serve::run(config, |addr| {
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
