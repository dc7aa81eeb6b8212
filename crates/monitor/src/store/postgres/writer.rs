//! [`PgWriter`]: the record loop's way to write to PostgreSQL, one tokio task that keeps the
//! order of what it is sent and batches results and pings, as the SQLite
//! [`Writer`](crate::store::Writer) does on its thread.
//!
//! - Transitions, states and flags are awaited: the future resolves once PostgreSQL
//!   committed them (or with the error). Everything sent before them goes first.
//! - Results and pings are fire-and-forget, gathered for [`WriterConfig::linger`] or
//!   [`WriterConfig::max_batch`] rows, then written in one statement each. At most
//!   [`WriterConfig::queue_capacity`] of them and [`WriterConfig::queue_bytes`] of their text
//!   wait; more are dropped and counted, as in SQLite.
//!
//! What this is not: a spool for a PostgreSQL outage (an awaited write fails with the
//! store's error), or a pool (the [`PgStore`] has one).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::{Fence, PgStore};
use crate::replicas::Membership;
use crate::store::history_store::HistoryStore;
use crate::store::{
    CheckResult, Flags, Ping, StoreError, TargetState, Transition, WriterConfig, WriterStats,
};

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Command {
    Results(Vec<CheckResult>, usize),
    Pings(Vec<Ping>, usize),
    Transition(Box<Transition>, Option<Fence>, Reply<i64>),
    States(Vec<(Option<Fence>, TargetState)>, Reply<()>),
    Flags(String, Flags, Reply<()>),
    Flush(Reply<()>),
}

#[derive(Debug, Default)]
struct Shared {
    queued: AtomicUsize,
    queued_bytes: AtomicUsize,
    written_results: AtomicU64,
    dropped_results: AtomicU64,
    failed_results: AtomicU64,
    written_pings: AtomicU64,
    dropped_pings: AtomicU64,
    failed_pings: AtomicU64,
    commits: AtomicU64,
    commit_micros: AtomicU64,
    dropping: AtomicBool,
}

/// The handle to the writing task. Cheap to clone; the task ends when every clone is gone,
/// after writing what was queued.
#[derive(Debug, Clone)]
pub struct PgWriter {
    tx: mpsc::UnboundedSender<Command>,
    /// With replicas: the shards this one holds. Writes for other shards are refused here,
    /// and the store refuses stale epochs of the rest.
    membership: Option<Arc<Membership>>,
    shared: Arc<Shared>,
    config: WriterConfig,
}

impl PgWriter {
    /// Starts the task on the current tokio runtime.
    pub fn spawn(
        store: PgStore,
        config: WriterConfig,
        membership: Option<Arc<Membership>>,
    ) -> PgWriter {
        let config = WriterConfig {
            max_batch: config.max_batch.max(1),
            ..config
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        tokio::spawn(run(store, rx, Arc::clone(&shared), config));
        PgWriter {
            tx,
            membership,
            shared,
            config,
        }
    }

    /// Records a transition and waits for the commit; returns its id.
    pub async fn transition(&self, t: Transition) -> Result<i64, StoreError> {
        let fence = self.fence(&t.target)?;
        self.call(|reply| Command::Transition(Box::new(t), fence, reply))
            .await
    }

    /// The fence for `target`: `None` without replicas, [`StoreError::Fenced`] when its
    /// shard is not held.
    fn fence(&self, target: &str) -> Result<Option<Fence>, StoreError> {
        let Some(membership) = &self.membership else {
            return Ok(None);
        };
        match membership.fence(target) {
            Some(fence) => Ok(Some(fence)),
            None => Err(StoreError::Fenced {
                shard: i32::from(crate::replicas::shard_of(target)),
                epoch: 0,
            }),
        }
    }

    fn owned<T>(&self, rows: &mut Vec<T>, target: impl Fn(&T) -> &str) {
        if let Some(membership) = &self.membership {
            rows.retain(|row| membership.owns(target(row)));
        }
    }

    /// Saves target states (flags untouched) and waits for the commit.
    pub async fn save_states(&self, states: Vec<TargetState>) -> Result<(), StoreError> {
        let fenced = states
            .into_iter()
            .map(|state| Ok((self.fence(&state.target)?, state)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.call(|reply| Command::States(fenced, reply)).await
    }

    /// Sets a target's flags and waits for the commit.
    pub async fn set_flags(&self, target: String, flags: Flags) -> Result<(), StoreError> {
        self.fence(&target)?;
        self.call(|reply| Command::Flags(target, flags, reply))
            .await
    }

    /// Waits until everything sent before is written (or dropped, or refused).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.call(Command::Flush).await
    }

    /// Queues results; never blocks, never fails.
    pub fn results(&self, mut batch: Vec<CheckResult>) {
        self.owned(&mut batch, |r| &r.target);
        let bytes = batch
            .iter()
            .map(|r| r.target.len() + r.output.as_ref().map_or(0, String::len))
            .sum();
        let n = batch.len();
        if self.admit(n, bytes) {
            if self.tx.send(Command::Results(batch, bytes)).is_err() {
                self.dequeued(n, bytes);
                self.shared
                    .dropped_results
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
        } else {
            self.shared
                .dropped_results
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Queues pings; never blocks, never fails.
    pub fn pings(&self, mut batch: Vec<Ping>) {
        self.owned(&mut batch, |p| &p.target);
        let len = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        let bytes = batch
            .iter()
            .map(|p| p.target.len() + len(&p.rid) + len(&p.body) + len(&p.source))
            .sum();
        let n = batch.len();
        if self.admit(n, bytes) {
            if self.tx.send(Command::Pings(batch, bytes)).is_err() {
                self.dequeued(n, bytes);
                self.shared
                    .dropped_pings
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
        } else {
            self.shared
                .dropped_pings
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> WriterStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let s = &*self.shared;
        WriterStats {
            queued: s.queued.load(Ordering::Acquire),
            queued_bytes: s.queued_bytes.load(Ordering::Acquire),
            written_results: load(&s.written_results),
            dropped_results: load(&s.dropped_results),
            failed_results: load(&s.failed_results),
            written_pings: load(&s.written_pings),
            dropped_pings: load(&s.dropped_pings),
            failed_pings: load(&s.failed_pings),
            commits: load(&s.commits),
            commit_time: std::time::Duration::from_micros(load(&s.commit_micros)),
        }
    }

    /// Counts `n` rows of `bytes` into the queue, or says no when that would pass a bound.
    fn admit(&self, n: usize, bytes: usize) -> bool {
        let queued = self.shared.queued.fetch_add(n, Ordering::AcqRel);
        let queued_bytes = self.shared.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        if queued + n > self.config.queue_capacity || queued_bytes + bytes > self.config.queue_bytes
        {
            self.dequeued(n, bytes);
            if !self.shared.dropping.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    queued,
                    queued_bytes,
                    "PostgreSQL is not keeping up: dropping check results and pings until it does"
                );
            }
            return false;
        }
        if self.shared.dropping.swap(false, Ordering::Relaxed) {
            tracing::info!("PostgreSQL keeps up again: no longer dropping results and pings");
        }
        true
    }

    fn dequeued(&self, n: usize, bytes: usize) {
        self.shared.queued.fetch_sub(n, Ordering::AcqRel);
        self.shared.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .map_err(|_| StoreError::WriterClosed)?;
        answer.await.map_err(|_| StoreError::WriterClosed)?
    }
}

/// Results and pings gathered for one write.
#[derive(Default)]
struct Loose {
    results: Vec<CheckResult>,
    pings: Vec<Ping>,
    bytes: usize,
}

impl Loose {
    fn len(&self) -> usize {
        self.results.len() + self.pings.len()
    }

    async fn write(&mut self, store: &PgStore, shared: &Shared) {
        if self.len() == 0 {
            return;
        }
        let results = std::mem::take(&mut self.results);
        let pings = std::mem::take(&mut self.pings);
        let (n_results, n_pings) = (results.len() as u64, pings.len() as u64);
        shared
            .queued
            .fetch_sub(results.len() + pings.len(), Ordering::AcqRel);
        shared
            .queued_bytes
            .fetch_sub(std::mem::take(&mut self.bytes), Ordering::AcqRel);
        let started = tokio::time::Instant::now();
        match store.record_results(results).await {
            Ok(()) => shared
                .written_results
                .fetch_add(n_results, Ordering::Relaxed),
            Err(error) => {
                tracing::warn!(%error, count = n_results, "check results not stored");
                shared
                    .failed_results
                    .fetch_add(n_results, Ordering::Relaxed)
            }
        };
        match store.record_pings(pings).await {
            Ok(()) => shared.written_pings.fetch_add(n_pings, Ordering::Relaxed),
            Err(error) => {
                tracing::warn!(%error, count = n_pings, "pings not stored");
                shared.failed_pings.fetch_add(n_pings, Ordering::Relaxed)
            }
        };
        shared.commits.fetch_add(1, Ordering::Relaxed);
        shared.commit_micros.fetch_add(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// Unfenced states in one statement; fenced ones each under their fence.
async fn save_states(
    store: &PgStore,
    states: Vec<(Option<Fence>, TargetState)>,
) -> Result<(), StoreError> {
    let (fenced, plain): (Vec<_>, Vec<_>) = states.into_iter().partition(|(f, _)| f.is_some());
    store
        .save_states(plain.into_iter().map(|(_, s)| s).collect())
        .await?;
    for (fence, state) in fenced {
        if let Some(fence) = fence {
            store.save_state_fenced(&fence, &state).await?;
        }
    }
    Ok(())
}

async fn run(
    store: PgStore,
    mut rx: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    config: WriterConfig,
) {
    let mut loose = Loose::default();
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let command = match deadline {
            None => rx.recv().await,
            Some(at) => match tokio::time::timeout_at(at, rx.recv()).await {
                Ok(command) => command,
                Err(_) => {
                    loose.write(&store, &shared).await;
                    deadline = None;
                    continue;
                }
            },
        };
        let Some(command) = command else {
            loose.write(&store, &shared).await;
            return;
        };
        match command {
            Command::Results(batch, bytes) => {
                loose.results.extend(batch);
                loose.bytes += bytes;
            }
            Command::Pings(batch, bytes) => {
                loose.pings.extend(batch);
                loose.bytes += bytes;
            }
            awaited => {
                // What came before goes first.
                loose.write(&store, &shared).await;
                deadline = None;
                match awaited {
                    Command::Transition(t, None, reply) => {
                        let _ = reply.send(store.record_transition(*t).await);
                    }
                    Command::Transition(t, Some(fence), reply) => {
                        let _ = reply.send(store.record_fenced(&fence, &t, None).await);
                    }
                    Command::States(states, reply) => {
                        let _ = reply.send(save_states(&store, states).await);
                    }
                    Command::Flags(target, flags, reply) => {
                        let _ = reply.send(store.set_flags(target, flags).await);
                    }
                    Command::Flush(reply) => {
                        let _ = reply.send(Ok(()));
                    }
                    Command::Results(..) | Command::Pings(..) => {}
                }
                continue;
            }
        }
        if loose.len() >= config.max_batch {
            loose.write(&store, &shared).await;
            deadline = None;
        } else if deadline.is_none() {
            deadline = Some(tokio::time::Instant::now() + config.linger);
        }
    }
}
