//! The monitor's web pages: the operator dashboard (overview at `/`, a page per target at
//! `/targets/<id>`, live updates at `/events`), the public status page at `/status`, and SVG
//! badges at `/badge/<id>.svg`. See `docs/DASHBOARD.md`.
//!
//! Pages are rendered on the server with maud (which escapes every value), charts are SVG
//! drawn on the server, and the one small script (`assets/dashboard.js`) only listens to
//! server-sent events. Every asset is compiled into the binary; nothing comes from another
//! host. Pages read the engine (current states, in memory) and the store (history, through
//! batched queries on the blocking pool); they judge nothing and change nothing.
//!
//! Access: the operator pages and `/events` follow the API's read rule (public unless
//! `server.read_token` is set; then a bearer token, or the cookie `/login` sets). The status
//! page and the badges are public by design: they show names and states, never outputs.
//!
//! What this is not: the JSON API (`api`), or a way to pause or change targets.

mod access;
mod alerts;
mod assets;
mod badge;
mod chart;
mod live;
mod overview;
mod page;
mod status;
mod target;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use axum::routing::get;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use vitals::Phase;

use crate::api::Access;
use crate::config::Target;

use crate::engine::{Engine, TargetView};
use crate::store::Store;
pub(crate) use page::segment;

/// What the configuration says of a target beyond what the engine runs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meta {
    pub(crate) group: Option<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) depends_on: Vec<String>,
    /// Targets whose `depends_on` names this one.
    pub(crate) dependents: Vec<String>,
}

/// What the configuration says of every target, for the dashboard.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    /// By configured target id.
    meta: HashMap<String, Meta>,
    /// Every group and tag, sorted, for the filters.
    pub(crate) groups: Vec<String>,
    pub(crate) tags: Vec<String>,
}

impl Catalog {
    fn of(targets: &[Target]) -> Catalog {
        let mut dependents: HashMap<&str, Vec<String>> = HashMap::new();
        for target in targets {
            for dependency in &target.depends_on {
                dependents
                    .entry(dependency.as_str())
                    .or_default()
                    .push(target.id.clone());
            }
        }
        let meta: HashMap<String, Meta> = targets
            .iter()
            .map(|target| {
                let meta = Meta {
                    group: target.group.clone(),
                    tags: target.tags.clone(),
                    depends_on: target.depends_on.clone(),
                    dependents: dependents.remove(target.id.as_str()).unwrap_or_default(),
                };
                (target.id.clone(), meta)
            })
            .collect();
        let mut groups: Vec<String> = meta.values().filter_map(|m| m.group.clone()).collect();
        groups.sort();
        groups.dedup();
        let mut tags: Vec<String> = meta.values().flat_map(|m| m.tags.clone()).collect();
        tags.sort();
        tags.dedup();
        Catalog { meta, groups, tags }
    }
}

/// The dashboard's shared state; clone it freely.
#[derive(Debug, Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Engine,
    store: Option<Arc<Store>>,
    /// What the configuration says of each target; a reload replaces it.
    catalog: ArcSwap<Catalog>,
    access: Access,
    /// The notifier, for the alert groups page (none: the page says so).
    alerts: Option<crate::notify::Notifier>,
    /// Cancelled when the server drains, so open event streams end and do not hold up the
    /// graceful shutdown.
    closing: CancellationToken,
}

impl Dashboard {
    /// The dashboard of `engine`, with history from `store` (pages show no history without
    /// one) and groups, tags and dependencies from the configured `targets`.
    pub fn new(
        engine: Engine,
        store: Option<Arc<Store>>,
        targets: &[Target],
        access: Access,
    ) -> Dashboard {
        let catalog = ArcSwap::from_pointee(Catalog::of(targets));
        Dashboard {
            inner: Arc::new(Inner {
                engine,
                store,
                catalog,
                access,
                alerts: None,
                closing: CancellationToken::new(),
            }),
        }
    }

    /// The alert groups page reads `notifier`'s open groups. Call it before cloning.
    pub fn with_alerts(mut self, notifier: crate::notify::Notifier) -> Dashboard {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.alerts = Some(notifier);
        }
        self
    }

    /// End every live event stream once `phase` reaches draining, so a browser left open
    /// cannot hold up the graceful shutdown. Call it inside the tokio runtime.
    pub fn stop_live_on(self, mut phase: watch::Receiver<Phase>) -> Dashboard {
        let closing = self.inner.closing.clone();
        tokio::spawn(async move {
            let _ = phase
                .wait_for(|phase| matches!(phase, Phase::Draining | Phase::Stopped))
                .await;
            closing.cancel();
        });
        self
    }

    /// What the configuration says of `view`. A vitals service's own check (`<id>/<check>`)
    /// is filed under its service's group and tags; dependencies are the service's, not its.
    fn meta(&self, view: &TargetView) -> Meta {
        let catalog = self.inner.catalog.load();
        if let Some(meta) = catalog.meta.get(&view.id) {
            return meta.clone();
        }
        match view.parent.as_ref().and_then(|p| catalog.meta.get(p)) {
            Some(parent) => Meta {
                group: parent.group.clone(),
                tags: parent.tags.clone(),
                ..Meta::default()
            },
            None => Meta::default(),
        }
    }

    /// The groups and tags for the filters.
    pub(crate) fn catalog(&self) -> Arc<Catalog> {
        self.inner.catalog.load_full()
    }

    /// A reload changed the targets: groups, tags and dependencies as configured now.
    pub fn set_targets(&self, targets: &[Target]) {
        self.inner.catalog.store(Arc::new(Catalog::of(targets)));
    }
}

/// The dashboard's routes, to merge into the monitor's router. None of them clashes with the
/// API (`/api/v1/…`, `/ping/…`, `/metrics`) or the probes (`/livez`, `/readyz`, …), and it
/// sets no fallback, so the API's JSON 404 still answers unknown paths.
pub fn router(dashboard: Dashboard) -> Router {
    Router::new()
        .route("/", get(overview::page))
        // A wildcard: ids of a vitals service's checks hold a slash (`orders/database`).
        .route("/targets/{*id}", get(target::page))
        .route("/events", get(live::events))
        .route("/status", get(status::page))
        .route("/alerts", get(alerts::page))
        .route("/badge/{file}", get(badge::svg))
        .route("/assets/{file}", get(assets::serve))
        .route("/login", get(access::login_form).post(access::login))
        .with_state(dashboard)
}
