//! `vitals serve`: wires configuration, store, engine and HTTP together and runs until
//! SIGTERM. No decisions are made here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use vitals::probes::from_fn;
use vitals::{Check, Health, Report};

use tokio_util::sync::CancellationToken;

use crate::api::{self, Access, Api, Metrics};
use crate::config::Config;
use crate::engine::{self, Engine, Restored, Signal};
use crate::recovery::{Escalation, EscalationHook, Initial, Recoverer};
use crate::replicas::{self, Membership};
use crate::store::{self, HistoryStore, PgStore, PgWriter, RecordWriter, Store, Writer};
use crate::targets::{TargetError, spec};

mod persist;
pub(crate) mod reload;
mod udp_sources;
use crate::udp;
use persist::persist;

/// Why the monitor could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the store in {dir}: {source}")]
    Store {
        dir: String,
        #[source]
        source: store::StoreError,
    },
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid monitor health checks: {0}")]
    Health(#[from] vitals::BuildError),
    #[error("server failed: {0}")]
    Server(#[source] std::io::Error),
    #[error(transparent)]
    Notify(#[from] crate::notify::NotifyError),
    #[error(transparent)]
    PingIds(#[from] crate::ping_ids::PingIdError),
}

/// Run the monitor on `config` until SIGTERM or SIGINT, then drain and flush the store.
/// `on_listening` is told the bound address (useful with port 0). With no file to read
/// again, SIGHUP and `POST /api/v1/reload` change nothing (see [`run_from`]).
pub async fn run(
    config: Config,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> Result<(), ServeError> {
    run_from(None, config, on_listening).await
}

/// [`run`], with `config` read from `path`: SIGHUP and `POST /api/v1/reload` read it again
/// and apply its targets without a restart (`serve/reload.rs`).
pub async fn run_from(
    path: Option<std::path::PathBuf>,
    mut config: Config,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> Result<(), ServeError> {
    let dir = config.server.data_dir.clone();
    let store_error = |source| ServeError::Store {
        dir: dir.display().to_string(),
        source,
    };
    // The history: SQLite in the data directory, or PostgreSQL shared by replicas. The data
    // directory holds the notifier's outbox and the ping ids either way.
    let writing = Store::open(&dir).map_err(store_error)?;
    let reader = Store::open_read_only(&dir).map_err(store_error)?;
    let (writer, saved, shared, membership) = match config.server.store.as_deref() {
        None => {
            let saved = writing.load_states().map_err(store_error)?;
            (
                RecordWriter::Sqlite(Writer::spawn(writing)),
                saved,
                None,
                None,
            )
        }
        Some(url) => {
            drop(writing);
            let pg_error = |source| ServeError::Store {
                dir: vitals_probes::redact_url(url),
                source,
            };
            let pg = PgStore::connect(url).await.map_err(pg_error)?;
            let membership = Arc::new(Membership::new(replica_id(), replicas::DEFAULT_LEASE));
            // Announced a round before planning, so replicas starting together see each
            // other and each takes its own share at once.
            pg.announce(&membership.me, None, membership.lease.as_millis() as i64)
                .await
                .map_err(pg_error)?;
            tokio::time::sleep(membership.round()).await;
            membership.join(&pg).await.map_err(pg_error)?;
            tracing::info!(replica = %membership.me, shards = membership.held().len(), "joined the replicas");
            let saved = pg.load_states().await.map_err(pg_error)?;
            let writer = PgWriter::spawn(
                pg.clone(),
                store::WriterConfig::default(),
                Some(Arc::clone(&membership)),
            );
            (
                RecordWriter::Postgres(writer),
                saved,
                Some(pg),
                Some(membership),
            )
        }
    };
    // Heartbeats without a ping id get one nobody can guess, kept beside the database.
    for (target, ping_id) in crate::ping_ids::resolve(&dir, &mut config)? {
        tracing::info!(
            %target,
            url = %format!("/ping/{ping_id}"),
            file = %dir.join(crate::ping_ids::FILE).display(),
            "generated a ping id for a heartbeat target without one; its senders must use this url"
        );
    }

    let restored: HashMap<String, Restored> = reload::restored(saved);
    let restored_count = restored.len();

    let http = reqwest::Client::new();
    // With replicas, this one runs the targets of the shards it holds.
    let owned: Vec<crate::config::Target> = config
        .targets
        .iter()
        .filter(|target| membership.as_ref().is_none_or(|m| m.owns(&target.id)))
        .cloned()
        .collect();
    let specs = owned
        .iter()
        .map(|target| spec(target, &http))
        .collect::<Result<Vec<_>, _>>()?;
    let (records, receiver) = engine::records(100_000);
    let topology = reload::topology(&config);
    let engine = Engine::start(
        specs,
        records,
        engine::Options {
            restored,
            topology,
            max_concurrency: config.server.max_concurrency,
            clock: engine::Clock::system(),
        },
    );
    // Its own connection; delivers what an earlier run left in the outbox at once.
    let notifier = crate::notify::Notifier::start(&config)?;
    let recovery = start_recovery(&config, &engine, &notifier);
    let stopping = CancellationToken::new();
    let persisting = tokio::spawn(persist(
        receiver,
        writer.clone(),
        notifier.clone(),
        recovery.clone(),
        stopping.clone(),
    ));
    let maintaining = match &shared {
        None => tokio::spawn(maintain(dir.clone(), config.retention.clone())),
        Some(pg) => tokio::spawn(maintain_postgres(pg.clone(), config.retention.clone())),
    };
    let capping = tokio::spawn(cap_ping_bodies(
        dir.clone(),
        config.server.ping_bytes_per_target,
    ));

    let reader = Arc::new(reader);
    let store_check = StoreCheck {
        sqlite: Arc::clone(&reader),
        postgres: shared.clone(),
    };
    // The monitor counts as started (its /startupz, and READY=1 to systemd under
    // `Type=notify`) once its HTTP listener is bound.
    let (listening, bound) = tokio::sync::watch::channel(false);
    let health = Health::builder()
        .drain_delay(config.server.drain_delay)
        .on_startup("listening", move || {
            let mut bound = bound.clone();
            async move {
                bound
                    .wait_for(|bound| *bound)
                    .await
                    .map(|_| ())
                    .map_err(|_| "the monitor stopped before it listened")
            }
        })
        .service_id("vitals-monitor")
        .version(env!("CARGO_PKG_VERSION"))
        .check(
            Check::new(
                "store",
                from_fn(move || {
                    let store = store_check.clone();
                    async move { store.check().await }
                }),
            )
            .interval(Duration::from_secs(10)),
        )
        .start()?;

    let (udp, udp_sources) = match config.server.udp_listen {
        Some(addr) => {
            let (counters, sources) = start_udp(&config, &engine, addr).await?;
            (Some(counters), Some(sources))
        }
        None => (None, None),
    };

    let access = Access {
        api_token: config.server.api_token.clone(),
        read_token: config.server.read_token.clone(),
        // People reach it over TLS through a proxy: the login cookie must not leave it.
        secure_cookie: config
            .server
            .public_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://")),
    };
    // The dashboard reads what the API reads, under the same read rule. With PostgreSQL the
    // history is not read back yet (uptime and rollups are SQLite's): no store, rather than
    // an empty one that would say "no history".
    let history_reader = shared.is_none().then(|| Arc::clone(&reader));
    let dashboard = crate::dashboard::Dashboard::new(
        engine.clone(),
        history_reader.clone(),
        &config.targets,
        access.clone(),
    )
    .with_alerts(notifier.clone())
    .stop_live_on(health.subscribe_phase());

    if let Some(addr) = config.server.agent_check_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Listen {
                addr: addr.to_string(),
                source,
            })?;
        let engine = engine.clone();
        tokio::spawn(async move {
            if let Err(error) = crate::agent_check::serve(listener, engine).await {
                tracing::error!(%error, "the agent-check listener stopped");
            }
        });
    }

    let metrics = Arc::new(Metrics::default());
    let store_for_reload = Arc::clone(&reader);
    let api = Api::new(
        engine.clone(),
        history_reader,
        udp,
        Arc::clone(&metrics),
        access.clone(),
    )
    .with_alert_path(api::alert_metrics::AlertPath {
        notifier: Some(notifier.clone()),
        recovery: Some(recovery.clone()),
        writer: Some(writer.clone()),
        store: Some(notifier.store()),
    })
    .with_recovery(recovery.clone())
    .with_pings(&config);
    let api = match (&shared, &membership) {
        (Some(store), Some(membership)) => api.with_fleet(api::replicas::Fleet {
            store: store.clone(),
            membership: Arc::clone(membership),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap_or_default(),
        }),
        _ => api,
    };
    let reloader = Arc::new(reload::Reloader {
        path,
        running: tokio::sync::Mutex::new(reload::Running {
            targets: owned,
            config: config.clone(),
            discovered: std::collections::BTreeMap::new(),
            tasks: HashMap::new(),
        }),
        engine: engine.clone(),
        http: http.clone(),
        notifier: notifier.clone(),
        recovery,
        pings: api.pings(),
        dashboard: dashboard.clone(),
        udp: udp_sources,
        store: store_for_reload,
        shared: shared.clone(),
        membership: membership.clone(),
        metrics,
        this: std::sync::OnceLock::new(),
    });
    let _ = reloader.this.set(Arc::downgrade(&reloader));
    let api = api.with_reload(Arc::clone(&reloader) as Arc<dyn api::reload::Reload>);
    reloader.running.lock().await.tasks = crate::discovery::start(&config.discovery, &reloader);
    // Installed before the address is announced: SIGHUP's default action ends the process.
    let hangups = on_hangup(Arc::clone(&reloader)).map_err(ServeError::Server)?;
    let alerts = api::alerts::router(notifier.clone(), access.clone());
    let app = api::router(api)
        .merge(alerts)
        .merge(crate::dashboard::router(dashboard))
        .merge(health.probes_router());
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.server.listen.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(ServeError::Server)?;
    let leasing = match (&shared, &membership) {
        (Some(pg), Some(membership)) => {
            let reloader = Arc::clone(&reloader);
            Some(tokio::spawn(replicas::lease_loop(
                pg.clone(),
                Arc::clone(membership),
                Some(format!("http://{addr}")),
                stopping.clone(),
                move || {
                    let reloader = Arc::clone(&reloader);
                    async move { reloader.reshard().await }
                },
            )))
        }
        _ => None,
    };
    // The one start-up line: what listens where, on which store, with what.
    tracing::info!(
        http = %addr,
        udp = %config.server.udp_listen.map_or("off".to_string(), |a| a.to_string()),
        agent_check = %config.server.agent_check_listen.map_or("off".to_string(), |a| a.to_string()),
        store = %shared.as_ref().map_or_else(|| dir.join(store::DB_FILE).display().to_string(), |pg| pg.url().to_owned()),
        targets = config.targets.len(),
        restored = restored_count,
        alert_channels = config.notify.channels.len(),
        "vitals monitor listening on http://{addr}"
    );
    // Signals are listened for from here, before anyone is told the monitor listens: a
    // SIGTERM right after the banner drains it rather than killing it.
    let drained = health.drained();
    listening.send_replace(true);
    on_listening(addr);
    // The library's server, with the monitor's connection limit.
    vitals::serve_router_with(
        listener,
        app,
        vitals::ServerLimits {
            max_connections: config.server.max_connections,
            ..vitals::ServerLimits::default()
        },
        drained,
    )
    .await
    .map_err(ServeError::Server)?;

    hangups.abort();
    drop(engine);
    stopping.cancel();
    if let Err(error) = persisting.await {
        tracing::error!(%error, "the store's record loop failed");
    }
    // Leaves the fleet: the others take this replica's shards at their next round.
    if let Some(leasing) = leasing
        && let Err(error) = leasing.await
    {
        tracing::error!(%error, "the lease loop failed");
    }
    // Deliveries in hand finish and are recorded, so the next run does not repeat them.
    notifier.shutdown().await;
    maintaining.abort();
    capping.abort();
    if let Err(error) = writer.flush().await {
        tracing::error!(%error, "could not flush the store on shutdown");
    }
    Ok(())
}

/// This replica's name among the replicas: `VITALS_REPLICA`, or `HOSTNAME-PID`, so a
/// restarted process is a new replica and the old one's leases run out.
fn replica_id() -> String {
    if let Ok(name) = std::env::var("VITALS_REPLICA")
        && !name.trim().is_empty()
    {
        return name;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "vitals".to_owned());
    format!("{host}-{}", std::process::id())
}

/// The monitor's own `store` check: the history store answers a read.
#[derive(Clone)]
struct StoreCheck {
    sqlite: Arc<Store>,
    postgres: Option<PgStore>,
}

impl StoreCheck {
    async fn check(self) -> Report {
        if let Some(pg) = self.postgres {
            return match pg.ping().await {
                Ok(()) => Report::pass().with_output("postgresql answers"),
                Err(error) => Report::fail(format!("postgresql: {error}")),
            };
        }
        let store = self.sqlite;
        let read = tokio::task::spawn_blocking(move || store.transitions("", 1).map(|_| ())).await;
        match read {
            Ok(Ok(())) => Report::pass().with_output("sqlite answers"),
            Ok(Err(error)) => Report::fail(format!("sqlite: {error}")),
            Err(error) => Report::fail(format!("sqlite read panicked: {error}")),
        }
    }
}

/// Prune the PostgreSQL history every ten minutes (first after one): raw results and pings
/// past `raw_days`, transitions past `rollup_days`. Several replicas may run it at once: a
/// delete is idempotent.
async fn maintain_postgres(store: PgStore, retention: crate::config::Retention) {
    let mut ticks = tokio::time::interval(Duration::from_secs(600));
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match store
            .prune(
                std::time::SystemTime::now(),
                retention.raw_days,
                retention.rollup_days,
            )
            .await
        {
            Ok(pruned) => tracing::info!(pruned, "postgresql store pruned"),
            Err(error) => tracing::error!(%error, "postgresql store maintenance failed"),
        }
    }
}

/// How much the kernel may queue for the heartbeat socket: at 300,000 beats/s a 100 ms
/// stall of the listener is ~2.4 MB of datagrams. Linux caps it at `net.core.rmem_max`.
const UDP_RECEIVE_BUFFER: usize = 8 << 20;

/// A UDP socket with a large receive buffer, so bursts wait in the kernel instead of being
/// dropped there.
fn bind_udp(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(error) = socket.set_recv_buffer_size(UDP_RECEIVE_BUFFER) {
        tracing::warn!(%error, "could not enlarge the udp receive buffer");
    }
    // Linux reports twice what it grants (half is bookkeeping).
    let granted = socket.recv_buffer_size().unwrap_or_default() / 2;
    if granted < UDP_RECEIVE_BUFFER {
        tracing::warn!(
            granted,
            wanted = UDP_RECEIVE_BUFFER,
            "the kernel granted a smaller udp receive buffer; raise it with `sysctl -w net.core.rmem_max={UDP_RECEIVE_BUFFER}` to drop fewer beats in bursts"
        );
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    tokio::net::UdpSocket::from_std(socket.into())
}

/// Listen for authenticated UDP heartbeats of every heartbeat target that has a key; the
/// sources follow reloads (`udp_sources`).
async fn start_udp(
    config: &Config,
    engine: &Engine,
    addr: std::net::SocketAddr,
) -> Result<(Arc<udp::Counters>, Arc<udp_sources::UdpSources>), ServeError> {
    let (sources, updates) = udp_sources::UdpSources::new();
    let verifier = sources.verifier(config)?;
    let sources = Arc::new(sources);
    let socket = bind_udp(addr).map_err(|source| ServeError::Listen {
        addr: addr.to_string(),
        source,
    })?;
    let counters = Arc::new(udp::Counters::default());
    let (beats, mut received) = tokio::sync::mpsc::channel::<Vec<udp::Beat>>(64);
    let clock = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            })
    };
    let listening = Arc::clone(&counters);
    tokio::spawn(async move {
        if let Err(error) =
            udp::listen_with_updates(socket, verifier, updates, beats, listening, clock).await
        {
            tracing::error!(%error, "udp heartbeat listener stopped");
        }
    });
    let engine = engine.clone();
    let ids = Arc::clone(&sources);
    tokio::spawn(async move {
        while let Some(batch) = received.recv().await {
            let at = std::time::SystemTime::now();
            let ping_ids = ids.ping_ids(&batch);
            engine.heartbeats(
                batch
                    .into_iter()
                    .zip(ping_ids)
                    .filter_map(|(beat, ping_id)| {
                        let ping = engine::PingRecord {
                            target: String::new(),
                            at,
                            signal: Signal::Beat(beat.status),
                            rid: None,
                            body: None,
                            duration: None,
                            source: None,
                        };
                        Some((ping_id?, ping))
                    }),
            );
        }
    });
    Ok((counters, sources))
}

/// Reload the configuration on each SIGHUP; a refused file is logged with every error and
/// changes nothing.
fn on_hangup(reloader: Arc<reload::Reloader>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            match reloader.reload_file().await {
                Ok(done) => tracing::info!(%done, "configuration reloaded"),
                Err(refused) => {
                    for error in &refused.errors {
                        tracing::error!("{error}");
                    }
                    tracing::error!(reason = %refused.message, "configuration reload refused; the running configuration stays");
                }
            }
        }
    }))
}

/// Roll raw results up and prune old history every ten minutes (first after one), on a
/// connection of its own so the writer never waits for it.
async fn maintain(dir: std::path::PathBuf, retention: crate::config::Retention) {
    let mut ticks = tokio::time::interval(Duration::from_secs(600));
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let dir = dir.clone();
        let retention = retention.clone();
        let done = tokio::task::spawn_blocking(move || {
            Store::open(&dir)?.rollup_and_prune(
                std::time::SystemTime::now(),
                retention.raw_days,
                retention.rollup_days,
            )
        })
        .await;
        match done {
            Ok(Ok(done)) => tracing::info!(?done, "store maintenance done"),
            Ok(Err(error)) => tracing::error!(%error, "store maintenance failed"),
            Err(error) => tracing::error!(%error, "store maintenance panicked"),
        }
    }
}

/// Keep each target's stored ping bodies within `budget` bytes, every ten seconds, on a
/// connection of its own (a retention step: the writer stores every ping as it comes). At
/// the default rate a flooded id adds at most 60 + 20 bodies between two runs; the query
/// reads only rows that still have a body, a few per target.
async fn cap_ping_bodies(dir: std::path::PathBuf, budget: usize) {
    let mut ticks = tokio::time::interval(Duration::from_secs(10));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let dir = dir.clone();
        let done =
            tokio::task::spawn_blocking(move || Store::open(&dir)?.cap_ping_bodies(budget)).await;
        match done {
            Ok(Ok(0)) => {}
            Ok(Ok(dropped)) => tracing::info!(
                dropped,
                budget,
                "dropped the oldest ping bodies over the per-target budget"
            ),
            Ok(Err(error)) => tracing::error!(%error, "capping ping bodies failed"),
            Err(error) => tracing::error!(%error, "capping ping bodies panicked"),
        }
    }
}

/// Automatic recovery for targets with `[target.recover]`: budgets start from the engine's
/// (restored) states, the recovery log shares the notifier's connection, and a spent budget
/// becomes an `escalation` alert.
fn start_recovery(
    config: &Config,
    engine: &Engine,
    notifier: &crate::notify::Notifier,
) -> Recoverer {
    // Only the targets with a recovery action: a view of every target would cost a
    // root-cause lookup each (7 % of start-up at 100,000 targets).
    let states: HashMap<String, Initial> = config
        .targets
        .iter()
        .filter(|target| target.recover.is_some())
        .filter_map(|target| engine.view(&target.id))
        .map(|view| {
            let initial = Initial {
                state: view.state,
                since: view.since,
                paused: view.paused,
                maintenance_until: view.maintenance_until,
            };
            (view.id, initial)
        })
        .collect();
    let alerts = notifier.clone();
    let escalate: EscalationHook = Arc::new(move |e: Escalation| {
        let alerts = alerts.clone();
        let last = e.last_result.as_deref().unwrap_or("none");
        let reason = format!(
            "{} attempts of `{}` did not bring it back (last result: {last}); automatic recovery stopped and the target needs a person",
            e.attempts, e.action
        );
        tokio::spawn(async move { alerts.escalation(&e.target, &reason).await });
    });
    Recoverer::start(
        &config.targets,
        |id| states.get(id).cloned(),
        Some(notifier.store()),
        Some(escalate),
    )
}
