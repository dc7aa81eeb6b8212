//! Target discovery: each `[[discovery]]` of the configuration finds addresses — in a
//! `file_sd` file ([`file_sd`]) or in DNS ([`dns`]) — and makes a target of each from its
//! template; the set goes to the running monitor through the same step as a configuration
//! reload (`serve/reload.rs`), so targets appear and disappear without a restart, and one that
//! comes back carries on from its saved state and history (its id is the discovery's name and
//! its address).
//!
//! One task per discovery: it looks every `refresh` (a file only when its modification time
//! or size changed), and hands over the whole set it found. A source that fails — a file that
//! does not read, DNS that does not answer — is logged with why and counted in `/metrics`
//! (`vitals_discovery_errors_total`), and the targets found before stay. An address whose target cannot be made (the template refuses it) is logged and left
//! out; the others go on.
//!
//! What it is not: the template's rules (`vitals-config`) or what a change keeps (the fleet).

pub mod dns;
pub mod file_sd;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::task::AbortHandle;

use crate::config::{Discovery, DiscoverySource, Found};
use crate::serve::reload::Reloader;

/// Where one discovery looks.
#[derive(Debug)]
enum Source {
    File {
        path: PathBuf,
        /// Modification time and size when last read, read or not.
        seen: Option<(SystemTime, u64)>,
    },
    /// Boxed: a resolver is large, and a file source small.
    Dns(Box<dns::Dns>),
}

impl Source {
    fn new(source: &DiscoverySource) -> Result<Source, String> {
        Ok(match source {
            DiscoverySource::File(path) => Source::File {
                path: path.clone(),
                seen: None,
            },
            DiscoverySource::Dns {
                name,
                record,
                port,
                nameserver,
            } => Source::Dns(Box::new(dns::Dns::new(name, *record, *port, *nameserver)?)),
        })
    }

    /// What the source says now; `None` when a file has not changed since it was last read.
    async fn poll(&mut self) -> Result<Option<Vec<Found>>, String> {
        match self {
            Source::Dns(dns) => dns.resolve().await.map(Some),
            Source::File { path, seen } => {
                let meta = tokio::fs::metadata(&*path)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let now = (
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    meta.len(),
                );
                if *seen == Some(now) {
                    return Ok(None);
                }
                *seen = Some(now);
                let text = tokio::fs::read_to_string(&*path)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                file_sd::parse(path, &text).map(Some)
            }
        }
    }
}

/// Start one task per discovery; each ends with the runtime, or when aborted (a reload
/// changed or removed its discovery).
pub(crate) fn start(
    discoveries: &[Discovery],
    reloader: &Arc<Reloader>,
) -> HashMap<String, AbortHandle> {
    discoveries
        .iter()
        .map(|discovery| {
            let task = tokio::spawn(run(discovery.clone(), Arc::clone(reloader)));
            (discovery.name.clone(), task.abort_handle())
        })
        .collect()
}

async fn run(discovery: Discovery, reloader: Arc<Reloader>) {
    let name = discovery.name.clone();
    let mut source = match Source::new(&discovery.source) {
        Ok(source) => source,
        Err(error) => {
            tracing::error!(discovery = %name, %error, "discovery cannot start; it finds nothing until the monitor restarts");
            return;
        }
    };
    let mut failing = false;
    loop {
        match source.poll().await {
            Ok(Some(found)) => {
                if std::mem::take(&mut failing) {
                    tracing::info!(discovery = %name, "discovery reads its source again");
                }
                let targets = found
                    .iter()
                    .filter_map(|one| match discovery.instantiate(one) {
                        Ok(target) => Some(target),
                        Err(error) => {
                            tracing::warn!(discovery = %name, address = %one.address(), %error, "no target for this address; left out");
                            None
                        }
                    })
                    .collect::<Vec<_>>();
                let count = targets.len();
                reloader.metrics.discovered(&name, count);
                match reloader.discovered(&discovery, targets).await {
                    Ok(applied) if applied == Default::default() => {}
                    Ok(applied) => tracing::info!(
                        discovery = %name,
                        targets = count,
                        added = ?applied.added,
                        removed = ?applied.removed,
                        changed = ?applied.changed,
                        "discovered targets applied"
                    ),
                    Err(refused) => tracing::error!(
                        discovery = %name,
                        reason = %refused.message,
                        errors = ?refused.errors,
                        "discovered targets refused; the ones found before stay"
                    ),
                }
            }
            Ok(None) => {}
            Err(error) => {
                failing = true;
                reloader.metrics.discovery_failed(&name);
                tracing::error!(discovery = %name, %error, "discovery failed; the targets found before stay");
            }
        }
        tokio::time::sleep(discovery.refresh).await;
    }
}
