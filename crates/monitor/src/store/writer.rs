//! [`Writer`]: the engine's non-blocking way to write, one OS thread owning the connection.
//!
//! SQLite calls block, and a commit can wait for a checkpoint or for the busy timeout, so no
//! tokio worker ever makes one. The engine sends commands over a channel to a dedicated
//! thread that owns the read-write [`Store`]:
//!
//! - **Transitions, pings, states and flags are awaited**: the future resolves once the
//!   transaction holding them has committed, and they are never dropped. Commands are
//!   unbounded in the channel, but each has a caller waiting on it, so the queue is bounded by
//!   the number of waiting tasks.
//! - **Results are fire-and-forget and batched**: the thread groups them into one transaction
//!   of up to [`WriterConfig::max_batch`] results, waiting at most [`WriterConfig::linger`]
//!   after the first one for more to arrive. An awaited command commits at once, together with
//!   whatever is queued before it (group commit), and never waits for the linger.
//! - **Backpressure drops results, not callers**: at most [`WriterConfig::queue_capacity`]
//!   results wait in the channel. Beyond that, new results are dropped and counted
//!   ([`WriterStats::dropped_results`]), with one warning when dropping starts and one note
//!   when it stops. A result is a summary whose loss costs a point on a latency chart;
//!   blocking the engine instead would delay checks and transitions, which cost correctness.
//!
//! Commands are executed in the order they were sent, so a transition sent after a batch of
//! results is committed with or after them. Reads do not go through the writer: open a second
//! [`Store`] (usually [`Store::open_read_only`]) and call it from `spawn_blocking`; WAL lets
//! readers run while the writer writes.
//!
//! What this is not: a connection pool, or a retry loop. A failed commit is reported to every
//! awaited command in it and logged for the results in it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::Duration;

use tokio::sync::oneshot;

use super::write::Batch;
use super::{CheckResult, Flags, Ping, Store, StoreError, TargetState, Transition};

/// How the writer thread batches and bounds results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterConfig {
    /// Results per transaction at most. Measured (docs/STORAGE.md), one result per
    /// transaction writes about 32,000 results/s and 100 or more per transaction about
    /// 85,000/s; beyond 1,000 nothing is gained and the write lock is held longer.
    pub max_batch: usize,
    /// How long the first queued result waits for company before it is committed anyway.
    /// At 10,000 targets checked every 30 s, 100 ms turns 333 commits a second (each writing
    /// at least one 4 KiB page to the WAL) into 10.
    pub linger: Duration,
    /// Results allowed to wait in the channel before new ones are dropped.
    pub queue_capacity: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_batch: 1_000,
            linger: Duration::from_millis(100),
            // Ten seconds of the target rate (10,000 checks/s), about 2 MB of summaries.
            queue_capacity: 100_000,
        }
    }
}

/// Counters of what the writer did with results since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Results in the channel right now.
    pub queued: usize,
    /// Results committed.
    pub written_results: u64,
    /// Results dropped because the queue was full or the writer had stopped.
    pub dropped_results: u64,
    /// Results refused (bad input) or lost in a failed commit.
    pub failed_results: u64,
    /// Transactions committed (`written_results / commits` is the mean batch).
    pub commits: u64,
    /// Time spent in those transactions, from the first write to the commit
    /// (`commit_time / commits` is the mean write latency).
    pub commit_time: std::time::Duration,
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Command {
    Results(Vec<CheckResult>),
    Transition(Box<Transition>, Reply<i64>),
    States(Vec<TargetState>, Reply<()>),
    Flags(String, Flags, Reply<()>),
    Ping(Box<Ping>, Reply<()>),
    Flush(Reply<()>),
    Close(Reply<()>),
}

#[derive(Debug, Default)]
struct Shared {
    queued: AtomicUsize,
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    commits: AtomicU64,
    commit_micros: AtomicU64,
    /// Set while results are being dropped, so the warning is logged once per episode.
    dropping: AtomicBool,
}

/// The handle to the writer thread. Cheap to clone; every clone feeds the same thread.
///
/// The thread stops after [`Writer::close`], or once every clone is dropped (it then commits
/// what is queued first).
#[derive(Debug, Clone)]
pub struct Writer {
    tx: Sender<Command>,
    shared: Arc<Shared>,
    config: WriterConfig,
}

impl Writer {
    /// Moves `store` (the read-write connection) to a new thread with default batching.
    pub fn spawn(store: Store) -> Writer {
        Self::spawn_with(store, WriterConfig::default())
    }

    /// Like [`Writer::spawn`] with explicit batching and queue limits.
    ///
    /// If the OS refuses a new thread, the error is logged and every call on the returned
    /// writer fails with [`StoreError::WriterClosed`] (there is nothing better to return from
    /// a constructor that cannot fail).
    pub fn spawn_with(store: Store, config: WriterConfig) -> Writer {
        let config = WriterConfig {
            max_batch: config.max_batch.max(1),
            ..config
        };
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("vitals-store-writer".to_owned())
            .spawn(move || run(store, rx, &thread_shared, config));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the store's writer thread");
        }
        Writer { tx, shared, config }
    }

    /// Records a transition and waits until it is committed; returns its id.
    ///
    /// Dropping the future does not cancel the write: once sent, it commits.
    pub async fn transition(&self, t: Transition) -> Result<i64, StoreError> {
        self.call(|reply| Command::Transition(Box::new(t), reply))
            .await
    }

    /// Queues results; never blocks, never fails. See the module docs for what happens when
    /// the queue is full.
    pub fn results(&self, batch: Vec<CheckResult>) {
        let n = batch.len();
        if n == 0 {
            return;
        }
        let before = self.shared.queued.fetch_add(n, Ordering::AcqRel);
        if before + n > self.config.queue_capacity {
            self.shared.queued.fetch_sub(n, Ordering::AcqRel);
            self.drop_results(n, "the writer's queue is full");
            return;
        }
        if self.tx.send(Command::Results(batch)).is_err() {
            self.shared.queued.fetch_sub(n, Ordering::AcqRel);
            self.drop_results(n, "the writer has stopped");
        }
    }

    /// Queues one result (see [`Writer::results`]).
    pub fn result(&self, r: CheckResult) {
        self.results(vec![r]);
    }

    /// Saves target states (flags untouched) and waits for the commit.
    pub async fn save_states(&self, states: Vec<TargetState>) -> Result<(), StoreError> {
        self.call(|reply| Command::States(states, reply)).await
    }

    /// Sets a target's flags and waits for the commit.
    pub async fn set_flags(&self, target: String, flags: Flags) -> Result<(), StoreError> {
        self.call(|reply| Command::Flags(target, flags, reply))
            .await
    }

    /// Records a ping and waits for the commit.
    pub async fn ping(&self, p: Ping) -> Result<(), StoreError> {
        self.call(|reply| Command::Ping(Box::new(p), reply)).await
    }

    /// Waits until everything sent before this call is committed (results included, except
    /// those dropped for backpressure or refused as bad input: see [`Writer::stats`]).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.call(Command::Flush).await
    }

    /// Commits what is queued, closes the database, and stops the thread. Commands sent
    /// afterwards, through any clone, fail with [`StoreError::WriterClosed`].
    pub async fn close(self) -> Result<(), StoreError> {
        self.call(Command::Close).await
    }

    pub fn stats(&self) -> WriterStats {
        WriterStats {
            queued: self.shared.queued.load(Ordering::Acquire),
            written_results: self.shared.written.load(Ordering::Relaxed),
            dropped_results: self.shared.dropped.load(Ordering::Relaxed),
            failed_results: self.shared.failed.load(Ordering::Relaxed),
            commits: self.shared.commits.load(Ordering::Relaxed),
            commit_time: std::time::Duration::from_micros(
                self.shared.commit_micros.load(Ordering::Relaxed),
            ),
        }
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .map_err(|_| StoreError::WriterClosed)?;
        answer.await.map_err(|_| StoreError::WriterClosed)?
    }

    fn drop_results(&self, n: usize, why: &'static str) {
        let total = self.shared.dropped.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if !self.shared.dropping.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                dropped_total = total,
                capacity = self.config.queue_capacity,
                "dropping check results: {why}; they are summaries, transitions are unaffected"
            );
        }
    }
}

/// One awaited command waiting for the group's commit.
enum Waiter {
    Transition(Reply<i64>, Result<i64, StoreError>),
    Unit(Reply<()>, Result<(), StoreError>),
}

/// What the writer thread has gathered for its next transaction.
#[derive(Default)]
struct Group {
    results: Vec<CheckResult>,
    commands: Vec<Command>,
    /// A Close was received: commit, close the connection, then answer it.
    close: Option<Reply<()>>,
}

impl Group {
    fn is_empty(&self) -> bool {
        self.results.is_empty() && self.commands.is_empty()
    }

    fn len(&self) -> usize {
        self.results.len() + self.commands.len()
    }

    /// Adds one command; returns true if it must be committed without lingering.
    fn add(&mut self, cmd: Command, shared: &Shared) -> bool {
        match cmd {
            Command::Results(batch) => {
                shared.queued.fetch_sub(batch.len(), Ordering::AcqRel);
                self.results.extend(batch);
                false
            }
            Command::Close(reply) => {
                self.close = Some(reply);
                true
            }
            other => {
                self.commands.push(other);
                true
            }
        }
    }
}

/// The linger is measured in real time on purpose: this is an OS thread doing real I/O, never
/// driven by tokio's (possibly paused) clock, and `recv_timeout` waits in real time anyway.
#[allow(clippy::disallowed_methods)]
fn real_now() -> std::time::Instant {
    std::time::Instant::now()
}

/// The writer thread's loop.
fn run(store: Store, rx: Receiver<Command>, shared: &Shared, config: WriterConfig) {
    let mut group = Group::default();
    // Deadline of the oldest uncommitted result.
    let mut deadline = None;
    let mut disconnected = false;
    loop {
        let urgent = if group.is_empty() {
            match rx.recv() {
                Ok(cmd) => group.add(cmd, shared),
                Err(_) => break,
            }
        } else {
            let wait = deadline.map_or(Duration::ZERO, |d: std::time::Instant| {
                d.saturating_duration_since(real_now())
            });
            match rx.recv_timeout(wait) {
                Ok(cmd) => group.add(cmd, shared),
                Err(RecvTimeoutError::Timeout) => true,
                Err(RecvTimeoutError::Disconnected) => {
                    disconnected = true;
                    true
                }
            }
        };
        if deadline.is_none() && !group.results.is_empty() {
            deadline = Some(real_now() + config.linger);
        }
        let mut commit = urgent || group.results.len() >= config.max_batch;
        if commit && group.close.is_none() {
            // Group commit: take whatever else is already queued, without waiting.
            while group.len() < config.max_batch && group.close.is_none() {
                match rx.try_recv() {
                    Ok(cmd) => {
                        group.add(cmd, shared);
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                }
            }
            commit = true;
        }
        if commit {
            let close = group.close.take();
            execute(&store, std::mem::take(&mut group), shared);
            deadline = None;
            if let Some(reply) = close {
                drop(store);
                // Whatever was sent after the close is not written: count results as dropped
                // (awaited commands see their reply dropped, which is WriterClosed). The
                // channel is gone before the close is answered, so once `close()` returns
                // every send fails and is counted by the sender.
                for cmd in rx.try_iter() {
                    if let Command::Results(batch) = cmd {
                        shared.queued.fetch_sub(batch.len(), Ordering::AcqRel);
                        shared
                            .dropped
                            .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    }
                }
                drop(rx);
                let _ = reply.send(Ok(()));
                tracing::debug!("store writer closed");
                return;
            }
            if disconnected {
                break;
            }
        }
    }
    if !group.is_empty() {
        execute(&store, group, shared);
    }
    tracing::debug!("store writer stopped: every handle was dropped");
}

/// Runs one group in one transaction and answers every waiter after the commit.
fn execute(store: &Store, group: Group, shared: &Shared) {
    let Group {
        results, commands, ..
    } = group;
    let mut pending: VecDeque<Command> = commands.into();
    let mut done: Vec<Waiter> = Vec::with_capacity(pending.len());
    let mut written = 0u64;
    let mut refused = 0u64;
    let started = real_now();
    let outcome = store.with_batch(|batch| {
        for r in &results {
            // One at a time so one bad result (a time before 1970, an empty target) costs
            // only itself; a database error aborts the whole group instead.
            match batch.results(std::slice::from_ref(r)) {
                Ok(()) => written += 1,
                Err(e @ StoreError::Sqlite { .. }) => return Err(e),
                Err(e) => {
                    if refused == 0 {
                        tracing::warn!(error = %e, "refused a check result");
                    }
                    refused += 1;
                }
            }
        }
        while let Some(cmd) = pending.pop_front() {
            let Some(waiter) = apply(batch, cmd) else {
                continue;
            };
            if let Some(e) = waiter.database_error() {
                let reason = e.to_string();
                done.push(waiter);
                return Err(StoreError::Commit { reason });
            }
            done.push(waiter);
        }
        Ok(())
    });
    shared.failed.fetch_add(refused, Ordering::Relaxed);
    match outcome {
        Ok(()) => {
            shared.written.fetch_add(written, Ordering::Relaxed);
            shared.commits.fetch_add(1, Ordering::Relaxed);
            let took = u64::try_from(real_now().saturating_duration_since(started).as_micros())
                .unwrap_or(u64::MAX);
            shared.commit_micros.fetch_add(took, Ordering::Relaxed);
            for w in done {
                w.answer();
            }
        }
        Err(e) => {
            let reason = match e {
                StoreError::Commit { reason } => reason,
                other => other.to_string(),
            };
            shared.failed.fetch_add(written, Ordering::Relaxed);
            tracing::error!(error = %reason, results = written, "a store write group failed");
            let err = || StoreError::Commit {
                reason: reason.clone(),
            };
            for w in done {
                w.fail(err());
            }
            for cmd in pending {
                if let Some(w) = Waiter::unanswered(cmd) {
                    w.fail(err());
                }
            }
        }
    }
    if shared.dropping.load(Ordering::Acquire)
        && shared.queued.load(Ordering::Acquire) == 0
        && shared.dropping.swap(false, Ordering::AcqRel)
    {
        tracing::info!(
            dropped_total = shared.dropped.load(Ordering::Relaxed),
            "the store writer caught up; check results are stored again"
        );
    }
}

/// Applies one awaited command inside the batch.
fn apply(batch: &mut Batch<'_>, cmd: Command) -> Option<Waiter> {
    Some(match cmd {
        Command::Transition(t, reply) => Waiter::Transition(reply, batch.transition(&t)),
        Command::States(states, reply) => Waiter::Unit(reply, batch.states(&states)),
        Command::Flags(target, flags, reply) => Waiter::Unit(reply, batch.flags(&target, &flags)),
        Command::Ping(p, reply) => Waiter::Unit(reply, batch.ping(&p)),
        Command::Flush(reply) => Waiter::Unit(reply, Ok(())),
        // Taken apart by `Group::add`; never among the commands.
        Command::Results(_) | Command::Close(_) => return None,
    })
}

impl Waiter {
    /// A command that never ran, ready to be failed.
    fn unanswered(cmd: Command) -> Option<Waiter> {
        Some(match cmd {
            Command::Transition(_, reply) => Waiter::Transition(reply, Ok(0)),
            Command::States(_, reply)
            | Command::Flags(_, _, reply)
            | Command::Ping(_, reply)
            | Command::Flush(reply)
            | Command::Close(reply) => Waiter::Unit(reply, Ok(())),
            Command::Results(_) => return None,
        })
    }

    /// The database error this command hit, if any (bad input is not one: it only fails the
    /// command itself).
    fn database_error(&self) -> Option<&StoreError> {
        match self {
            Waiter::Transition(_, Err(e @ StoreError::Sqlite { .. }))
            | Waiter::Unit(_, Err(e @ StoreError::Sqlite { .. })) => Some(e),
            _ => None,
        }
    }

    /// Sends the command's own result; a caller that stopped waiting is no error.
    fn answer(self) {
        match self {
            Waiter::Transition(reply, r) => {
                let _ = reply.send(r);
            }
            Waiter::Unit(reply, r) => {
                let _ = reply.send(r);
            }
        }
    }

    fn fail(self, e: StoreError) {
        match self {
            Waiter::Transition(reply, _) => {
                let _ = reply.send(Err(e));
            }
            Waiter::Unit(reply, _) => {
                let _ = reply.send(Err(e));
            }
        }
    }
}
