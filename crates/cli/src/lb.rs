//! `vitals lb --config lb.toml`: load and validate the load balancer's configuration (and
//! the certificates it names), then run it until Ctrl-C or SIGTERM, which let the requests
//! in flight finish; SIGHUP reads the file again and applies it. `vitals lb --check` and `vitals check-config` on a file
//! with `[[listener]]` or `[[pool]]` validate it without starting.

use std::path::{Path, PathBuf};

use anyhow::Context;
use vitals_monitor::config::lb::{self, LbConfig};

fn load(path: &Path) -> anyhow::Result<LbConfig> {
    let config = lb::load(path).map_err(|errors| {
        anyhow::anyhow!(
            "{errors}\n{} error(s); the load balancer did not start",
            errors.0.len()
        )
    })?;
    let errors = vitals_lb::check(&config);
    if !errors.is_empty() {
        anyhow::bail!(
            "{}: {}\n{} error(s); the load balancer did not start",
            path.display(),
            errors.join(&format!("\n{}: ", path.display())),
            errors.len()
        );
    }
    Ok(config)
}

/// Whether the file at `path` is a load balancer configuration (for `check-config`).
pub fn is_lb_file(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| lb::is_lb(&text))
}

/// `vitals check-config` on a load balancer file: every error, one per line.
pub fn check_config(path: &Path) -> anyhow::Result<()> {
    match lb::load(path) {
        Ok(config) if !vitals_lb::check(&config).is_empty() => {
            let errors = vitals_lb::check(&config);
            for error in &errors {
                eprintln!("{}: {error}", path.display());
            }
            anyhow::bail!("{}: {} error(s)", path.display(), errors.len())
        }
        Ok(config) => {
            let backends: usize = config.pools.iter().map(|p| p.backends.len()).sum();
            println!(
                "{}: ok (load balancer: {} listeners, {} pools, {backends} backends)",
                path.display(),
                config.listeners.len(),
                config.pools.len()
            );
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

pub async fn run(path: PathBuf, check: bool) -> anyhow::Result<()> {
    if check {
        return check_config(&path);
    }
    let config = load(&path)?;
    let schemes: Vec<&str> = config
        .listeners
        .iter()
        .map(|l| {
            if l.tls_certificates.is_empty() {
                "http"
            } else {
                "https"
            }
        })
        .collect();
    vitals_lb::run_file(
        path,
        config,
        |bound| {
            for (i, (address, pool)) in bound.listeners.iter().enumerate() {
                let scheme = schemes.get(i).copied().unwrap_or("http");
                println!("vitals lb on {scheme}://{address} (pool {pool})");
            }
            println!(
                "vitals lb admin on http://{} (API: /api/v1/pools, metrics: /metrics)",
                bound.admin
            );
        },
        shutdown(),
    )
    .await
    .context("the load balancer stopped")?;
    println!("vitals lb stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C still stops");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
