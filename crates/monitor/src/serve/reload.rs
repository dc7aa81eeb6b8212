//! Configuration reload (SIGHUP and `POST /api/v1/reload`) and discovered targets: a new set
//! of targets for the running monitor, without a restart.
//!
//! Both come down to one step, [`Reloader::apply`]: the targets of the file plus those each
//! discovery found are compared with those running, by id and definition (`config::Target`'s
//! equality, ping ids resolved); unchanged ones are handed to the engine as
//! [`Desired::Unchanged`] (their probes, pools and live state stay), the others as new
//! specs. The engine's `Fleet::apply` says what each kind of change keeps (ARCHITECTURE.md).
//! Then everything else keyed by target follows the new set: alert names and groups, recovery
//! budgets, ping keys and rates, UDP sources, the dashboard's groups and tags. A removed
//! target's alert tracks and group memberships go with its `Retired` record, in order.
//!
//! A file with errors is refused whole, every error listed, and the running configuration
//! stays. What cannot change without a restart (listeners, the data directory, tokens,
//! notifications, retention) is left as it runs, and the answer names it.
//!
//! What it is not: the configuration reader (`vitals-config`) or the rules of a change (the
//! fleet's).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::{OnceLock, Weak};

use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::api::Pings;
use crate::api::reload::{Refused, Reload};
use crate::config::{Config, Target};
use crate::dashboard::Dashboard;
use crate::engine::{Applied, Desired, Engine, Restored, Topology};
use crate::notify::Notifier;
use crate::recovery::{Initial, Recoverer};
use crate::store::{Store, TargetState};
use crate::targets::spec;

use super::udp_sources::UdpSources;

/// Everything a new set of targets reaches. Cheap to share: the SIGHUP task, the API and
/// each discovery hold it.
pub(crate) struct Reloader {
    /// The file SIGHUP and the API read again; none: the monitor runs on embedded defaults.
    pub(crate) path: Option<PathBuf>,
    pub(crate) running: Mutex<Running>,
    pub(crate) engine: Engine,
    pub(crate) http: reqwest::Client,
    pub(crate) notifier: Notifier,
    pub(crate) recovery: Recoverer,
    pub(crate) pings: Pings,
    pub(crate) dashboard: Dashboard,
    pub(crate) udp: Option<Arc<UdpSources>>,
    /// Saved states for targets that come (back): a read-only connection.
    pub(crate) store: Arc<Store>,
    /// The shared store, when there is one: saved states come from it instead.
    pub(crate) shared: Option<crate::store::PgStore>,
    /// With replicas: only the targets of the shards this one holds run here.
    pub(crate) membership: Option<Arc<crate::replicas::Membership>>,
    /// `/metrics`, where discoveries count what they find and their failures.
    pub(crate) metrics: Arc<crate::api::Metrics>,
    /// Itself, for the discovery tasks a reload starts (set once, right after it is made).
    pub(crate) this: OnceLock<Weak<Reloader>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What runs now.
#[derive(Debug)]
pub(crate) struct Running {
    /// The configuration as running: the file's, ping ids resolved, its targets the file's
    /// own (discovered ones are in `discovered`).
    pub(crate) config: Config,
    /// Targets found by each discovery, by its name.
    pub(crate) discovered: BTreeMap<String, Vec<Target>>,
    /// The targets running, file's then discovered, as last applied.
    pub(crate) targets: Vec<Target>,
    /// The task of each discovery, by name.
    pub(crate) tasks: HashMap<String, tokio::task::AbortHandle>,
}

/// What cannot change without a restart, by the name people write in the file.
fn needs_restart(running: &Config, next: &Config) -> Vec<&'static str> {
    let (a, b) = (&running.server, &next.server);
    // Every field named, so that a new `[server]` key fails to compile here until someone
    // says whether a reload applies it. `canaries` does apply (the fleet's topology).
    let crate::config::Server {
        listen: _,
        udp_listen: _,
        data_dir: _,
        store: _,
        api_token: _,
        read_token: _,
        ping_body_limit: _,
        ping_bytes_per_target: _,
        ping_rate: _,
        max_connections: _,
        public_url: _,
        max_concurrency: _,
        udp_max_skew: _,
        agent_check_listen: _,
        canaries: _,
        drain_delay: _,
    } = b;
    let mut fields = Vec::new();
    let mut differ = |differs: bool, name: &'static str| {
        if differs {
            fields.push(name);
        }
    };
    differ(a.listen != b.listen, "server.listen");
    differ(a.udp_listen != b.udp_listen, "server.udp_listen");
    differ(a.data_dir != b.data_dir, "server.data_dir");
    // `--store` sets it outside the file: a file without the key changes nothing.
    differ(b.store.is_some() && a.store != b.store, "server.store");
    differ(a.api_token != b.api_token, "server.api_token");
    differ(a.read_token != b.read_token, "server.read_token");
    differ(
        a.ping_body_limit != b.ping_body_limit,
        "server.ping_body_limit",
    );
    differ(
        a.ping_bytes_per_target != b.ping_bytes_per_target,
        "server.ping_bytes_per_target",
    );
    differ(a.ping_rate != b.ping_rate, "server.ping_rate");
    differ(
        a.max_connections != b.max_connections,
        "server.max_connections",
    );
    differ(a.public_url != b.public_url, "server.public_url");
    differ(
        a.max_concurrency != b.max_concurrency,
        "server.max_concurrency",
    );
    differ(a.udp_max_skew != b.udp_max_skew, "server.udp_max_skew");
    differ(
        a.agent_check_listen != b.agent_check_listen,
        "server.agent_check_listen",
    );
    differ(a.drain_delay != b.drain_delay, "server.drain_delay");
    differ(running.retention != next.retention, "[retention]");
    differ(
        running.notify != next.notify,
        "[notify], [[channel]], [[rule]], [[maintenance]]",
    );
    fields
}

/// Saved states by target id, as the engine carries on from them.
pub(crate) fn restored(saved: Vec<TargetState>) -> HashMap<String, Restored> {
    saved
        .into_iter()
        .map(|saved| {
            (
                saved.target.clone(),
                Restored {
                    state: saved.state,
                    since: saved.since,
                    consecutive_failures: saved.consecutive_failures,
                    consecutive_successes: saved.consecutive_successes,
                    flapping: saved.flapping,
                    paused: saved.flags.paused,
                    maintenance_until: saved.flags.maintenance_until,
                },
            )
        })
        .collect()
}

impl Reloader {
    /// Read the file again and apply it (SIGHUP, the API).
    pub(crate) async fn reload_file(&self) -> Result<Value, Refused> {
        let Some(path) = self.path.clone() else {
            return Err(Refused {
                message: "this monitor was started without a configuration file: there is nothing to reload".into(),
                errors: Vec::new(),
                no_file: true,
            });
        };
        let loaded = tokio::task::spawn_blocking(move || crate::config::load(&path)).await;
        let mut next = match loaded {
            Ok(Ok(next)) => next,
            Ok(Err(errors)) => {
                return Err(Refused {
                    message: format!(
                        "{} error(s) in the configuration; nothing was changed and the running configuration stays",
                        errors.0.len()
                    ),
                    errors: errors.0.iter().map(ToString::to_string).collect(),
                    no_file: false,
                });
            }
            Err(error) => {
                return Err(refused(format!(
                    "reading the configuration panicked: {error}"
                )));
            }
        };
        let mut running = self.running.lock().await;
        let restart = needs_restart(&running.config, &next);
        // What needs a restart runs as it is until then.
        next.server = crate::config::Server {
            canaries: next.server.canaries.clone(),
            ..running.config.server.clone()
        };
        next.retention = running.config.retention.clone();
        next.notify = running.config.notify.clone();
        // Discoveries that changed or went stop, and what they found goes with them; new and
        // changed ones start once the file's targets are applied.
        let kept: Vec<String> = next
            .discovery
            .iter()
            .filter(|d| running.config.discovery.contains(d))
            .map(|d| d.name.clone())
            .collect();
        let mut discovered = running.discovered.clone();
        discovered.retain(|name, _| kept.contains(name));
        let starting: Vec<crate::config::Discovery> = next
            .discovery
            .iter()
            .filter(|d| !kept.contains(&d.name))
            .cloned()
            .collect();
        let dir = next.server.data_dir.clone();
        let generated = crate::ping_ids::resolve(&dir, &mut next)
            .map_err(|error| refused(format!("ping ids: {error}")))?;
        for (target, ping_id) in generated {
            tracing::info!(%target, url = %format!("/ping/{ping_id}"), "generated a ping id for a new heartbeat target");
        }
        let targets = all_targets(&next.targets, &discovered);
        let applied = self.apply(&mut running, &next, targets).await?;
        running.tasks.retain(|name, task| {
            let keep = kept.contains(name);
            if !keep {
                task.abort();
                self.metrics.discovery_removed(name);
            }
            keep
        });
        if let Some(this) = self.this.get().and_then(Weak::upgrade) {
            running
                .tasks
                .extend(crate::discovery::start(&starting, &this));
        }
        running.discovered = discovered;
        running.config = next;
        for field in &restart {
            tracing::warn!(%field, "changed in the file, but applied only at the next restart");
        }
        Ok(json!({
            "added": applied.added,
            "changed": applied.changed,
            "removed": applied.removed,
            "unchanged": applied.unchanged,
            "needs_restart": restart,
        }))
    }

    /// `discovery` found `targets` (its whole set, replacing what it found before). Ignored
    /// when a reload has changed or removed the discovery since.
    pub(crate) async fn discovered(
        &self,
        discovery: &crate::config::Discovery,
        targets: Vec<Target>,
    ) -> Result<Applied, Refused> {
        let name = discovery.name.as_str();
        let mut running = self.running.lock().await;
        if !running.config.discovery.contains(discovery)
            || running.discovered.get(name) == Some(&targets)
        {
            return Ok(Applied::default());
        }
        let mut discovered = running.discovered.clone();
        discovered.insert(name.to_owned(), targets);
        let config = running.config.clone();
        let all = all_targets(&config.targets, &discovered);
        let applied = self.apply(&mut running, &config, all).await?;
        running.discovered = discovered;
        Ok(applied)
    }

    /// The held shards changed: run the targets of exactly those (the file's and the
    /// discovered), the new ones carrying on from their state in the shared store.
    pub(crate) async fn reshard(&self) {
        let mut running = self.running.lock().await;
        let config = running.config.clone();
        let all = all_targets(&config.targets, &running.discovered);
        if let Err(refused) = self.apply(&mut running, &config, all).await {
            tracing::error!(reason = %refused.message, "could not run the targets of the shards held");
        }
    }

    /// Run `targets` (with `config`'s canaries and dependencies) from now on — with
    /// replicas, those of them in the shards held. Refused whole when a target's probe
    /// cannot be built; nothing changes then.
    async fn apply(
        &self,
        running: &mut Running,
        config: &Config,
        mut targets: Vec<Target>,
    ) -> Result<Applied, Refused> {
        // Pings are admitted for every target (key, rate), then run here or forwarded to
        // the replica holding the target.
        let every = Config {
            targets: targets.clone(),
            ..config.clone()
        };
        if let Some(membership) = &self.membership {
            targets.retain(|target| membership.owns(&target.id));
        }
        let before: HashMap<&str, &Target> = running
            .targets
            .iter()
            .map(|target| (target.id.as_str(), target))
            .collect();
        let mut desired = Vec::with_capacity(targets.len());
        let mut errors = Vec::new();
        let mut added = Vec::new();
        for target in &targets {
            if before.get(target.id.as_str()) == Some(&target) {
                desired.push(Desired::Unchanged(target.id.clone()));
                continue;
            }
            if !before.contains_key(target.id.as_str()) {
                added.push(target.id.clone());
            }
            match spec(target, &self.http) {
                Ok(spec) => desired.push(Desired::Spec(spec)),
                Err(error) => errors.push(error.to_string()),
            }
        }
        let effective = Config {
            targets: targets.clone(),
            ..config.clone()
        };
        let verifier = match &self.udp {
            Some(udp) => match udp.verifier(&effective) {
                Ok(verifier) => Some((udp, verifier)),
                Err(error) => {
                    errors.push(error.to_string());
                    None
                }
            },
            None => None,
        };
        if !errors.is_empty() {
            return Err(Refused {
                message: format!(
                    "{} target(s) could not be built; nothing was changed",
                    errors.len()
                ),
                errors,
                no_file: false,
            });
        }
        // Targets that come (back) carry on from their saved state, as at start-up.
        let restored = if added.is_empty() {
            HashMap::new()
        } else if let Some(pg) = &self.shared {
            use crate::store::HistoryStore;
            match pg.load_states().await {
                Ok(saved) => restored(saved),
                Err(error) => {
                    tracing::warn!(%error, "could not read saved states; added targets start unknown");
                    HashMap::new()
                }
            }
        } else {
            let store = Arc::clone(&self.store);
            match tokio::task::spawn_blocking(move || store.load_states()).await {
                Ok(Ok(saved)) => restored(saved),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "could not read saved states; added targets start unknown");
                    HashMap::new()
                }
                Err(error) => {
                    tracing::warn!(%error, "reading saved states panicked; added targets start unknown");
                    HashMap::new()
                }
            }
        };
        let topology = topology(&effective);
        let applied = self.engine.apply(desired, &topology, &restored);
        self.notifier.set_targets(&targets).await;
        let engine = &self.engine;
        self.recovery.apply(&targets, |id| {
            engine.view(id).map(|view| Initial {
                state: view.state,
                since: view.since,
                paused: view.paused,
                maintenance_until: view.maintenance_until,
            })
        });
        self.pings.reload(&every);
        self.dashboard.set_targets(&targets);
        if let Some((udp, verifier)) = verifier {
            udp.replace(verifier).await;
        }
        tracing::info!(
            added = applied.added.len(),
            changed = applied.changed.len(),
            removed = applied.removed.len(),
            unchanged = applied.unchanged,
            "targets applied"
        );
        running.targets = targets;
        Ok(applied)
    }
}

impl Reload for Reloader {
    fn reload(&self) -> Pin<Box<dyn Future<Output = Result<Value, Refused>> + Send + '_>> {
        Box::pin(self.reload_file())
    }
}

fn refused(message: String) -> Refused {
    Refused {
        message,
        errors: Vec::new(),
        no_file: false,
    }
}

/// The file's targets, then each discovery's (by discovery name); an id the file has wins.
fn all_targets(file: &[Target], discovered: &BTreeMap<String, Vec<Target>>) -> Vec<Target> {
    let mut seen: std::collections::HashSet<&str> =
        file.iter().map(|target| target.id.as_str()).collect();
    let mut all = file.to_vec();
    for target in discovered.values().flatten() {
        if seen.insert(target.id.as_str()) {
            all.push(target.clone());
        }
    }
    all
}

/// Dependencies and canaries of `config`'s targets.
pub(crate) fn topology(config: &Config) -> Topology {
    Topology {
        depends_on: config
            .targets
            .iter()
            .filter(|target| !target.depends_on.is_empty())
            .map(|target| (target.id.clone(), target.depends_on.clone()))
            .collect(),
        canaries: config.server.canaries.clone(),
    }
}
