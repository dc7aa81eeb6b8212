//! [`Writer`]: the engine's non-blocking way to write, one OS thread owning the connection.
//!
//! SQLite calls block, and a commit can wait for a checkpoint or for the busy timeout, so no
//! tokio worker ever makes one. The engine sends commands over a channel to a dedicated
//! thread that owns the read-write [`Store`]:
//!
//! - **Transitions, states and flags are awaited**: the future resolves once the transaction
//!   holding them has committed, and they are never dropped. Commands are unbounded in the
//!   channel, but each has a caller waiting on it, so the queue is bounded by the number of
//!   waiting tasks.
//! - **Results and pings are fire-and-forget and batched**: the thread wakes once per
//!   [`WriterConfig::linger`] (a tick) and commits what came since in one transaction of up
//!   to [`WriterConfig::max_batch`], so none waits more than one linger; a full batch wakes
//!   it at once. They never wake it one by one. An awaited command wakes it and commits at
//!   once, together with whatever is queued before it (group commit), and never waits for
//!   the tick.
//! - **Backpressure drops results and pings, not callers**: at most
//!   [`WriterConfig::queue_capacity`] of them, and [`WriterConfig::queue_bytes`] of their
//!   text, wait in the channel. Beyond that, new ones are dropped and counted
//!   ([`WriterStats::dropped_results`], [`WriterStats::dropped_pings`]), with one warning when
//!   dropping starts and one note when it stops. A result is a summary whose loss costs a
//!   point on a latency chart, a ping a line in a heartbeat's log (its effect on the target's
//!   state is a transition, never dropped); blocking the engine instead would delay checks
//!   and transitions, which cost correctness.
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
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
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
    /// The writer's tick: results and pings queued since the last one are committed
    /// together, so none waits longer than this. At 10,000 targets checked every 30 s, 100 ms
    /// turns 333 commits a second (each writing at least one 4 KiB page to the WAL) into 10.
    /// Zero commits each as it comes (and wakes the thread for each).
    pub linger: Duration,
    /// Results and pings allowed to wait in the channel before new ones are dropped.
    pub queue_capacity: usize,
    /// Bytes of text (target names, outputs, ping bodies) allowed to wait in the channel: a
    /// flood of large ping bodies is bounded by this, not by the count.
    pub queue_bytes: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_batch: 1_000,
            linger: Duration::from_millis(100),
            // Ten seconds of the target rate (10,000 checks/s), about 2 MB of summaries.
            queue_capacity: 100_000,
            // A hundred thousand summaries are a few MB; this leaves room for ping bodies
            // while bounding what a flood of them can hold.
            queue_bytes: 64 << 20,
        }
    }
}

/// Counters of what the writer did with results since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Results and pings in the channel right now.
    pub queued: usize,
    /// Bytes of their text in the channel right now.
    pub queued_bytes: usize,
    /// Results committed.
    pub written_results: u64,
    /// Results dropped because the queue was full or the writer had stopped.
    pub dropped_results: u64,
    /// Results refused (bad input) or lost in a failed commit.
    pub failed_results: u64,
    /// Pings committed.
    pub written_pings: u64,
    /// Pings dropped because the queue was full or the writer had stopped.
    pub dropped_pings: u64,
    /// Pings refused (bad input) or lost in a failed commit.
    pub failed_pings: u64,
    /// Transactions committed (`written_results / commits` is the mean batch).
    pub commits: u64,
    /// Time spent in those transactions, from the first write to the commit
    /// (`commit_time / commits` is the mean write latency).
    pub commit_time: std::time::Duration,
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Command {
    /// Fire-and-forget; the bytes of their text, as counted in `Shared::queued_bytes`.
    Results(Vec<CheckResult>, usize),
    Pings(Vec<Ping>, usize),
    Transition(Box<Transition>, Reply<i64>),
    States(Vec<TargetState>, Reply<()>),
    Flags(String, Flags, Reply<()>),
    Flush(Reply<()>),
    Close(Reply<()>),
}

#[derive(Debug, Default)]
struct Shared {
    queued: AtomicUsize,
    queued_bytes: AtomicUsize,
    results: Counts,
    pings: Counts,
    commits: AtomicU64,
    commit_micros: AtomicU64,
    /// Set while results are being dropped, so the warning is logged once per episode.
    dropping: AtomicBool,
}

/// What became of the fire-and-forget writes of one kind.
#[derive(Debug, Default)]
struct Counts {
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

/// The two kinds of fire-and-forget writes.
#[derive(Debug, Clone, Copy)]
enum Loose {
    Results,
    Pings,
}

impl Loose {
    fn counts(self, shared: &Shared) -> &Counts {
        match self {
            Loose::Results => &shared.results,
            Loose::Pings => &shared.pings,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Loose::Results => "check results",
            Loose::Pings => "pings",
        }
    }
}

impl Shared {
    /// Takes `n` writes of `bytes` off the queue's accounting.
    fn dequeued(&self, n: usize, bytes: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
        self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// The text a result holds, as the queue's byte budget counts it.
fn result_bytes(r: &CheckResult) -> usize {
    r.target.len() + r.output.as_ref().map_or(0, String::len)
}

/// The text a ping holds, as the queue's byte budget counts it.
fn ping_bytes(p: &Ping) -> usize {
    let len = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    p.target.len() + len(&p.rid) + len(&p.body) + len(&p.source)
}

/// The handle to the writer thread. Cheap to clone; every clone feeds the same thread.
///
/// The thread stops after [`Writer::close`], or once every clone is dropped (it then commits
/// what is queued first).
#[derive(Debug, Clone)]
pub struct Writer {
    // Dropped before `waker`, so the thread wakes to find the channel closed.
    tx: Sender<Command>,
    waker: Arc<Waker>,
    shared: Arc<Shared>,
    config: WriterConfig,
}

/// Wakes the writer thread from its park: for an awaited command, a full batch, or (on drop,
/// when the last [`Writer`] goes) a closed channel. Results and pings do not wake it one by
/// one: at 10,000 a second that was 10,000 context switches a second on the monitor's cores.
#[derive(Debug)]
struct Waker(Option<std::thread::Thread>);

impl Waker {
    fn wake(&self) {
        if let Some(thread) = &self.0 {
            thread.unpark();
        }
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        self.wake();
    }
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
        let thread = match spawned {
            Ok(handle) => Some(handle.thread().clone()),
            Err(e) => {
                tracing::error!(error = %e, "could not start the store's writer thread");
                None
            }
        };
        Writer {
            tx,
            waker: Arc::new(Waker(thread)),
            shared,
            config,
        }
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
        let bytes = batch.iter().map(result_bytes).sum();
        let n = batch.len();
        self.enqueue(n, bytes, Loose::Results, || Command::Results(batch, bytes));
    }

    /// Queues one result (see [`Writer::results`]).
    pub fn result(&self, r: CheckResult) {
        self.results(vec![r]);
    }

    /// Queues pings, like results: never blocks, never fails, dropped and counted when the
    /// queue is full.
    pub fn pings(&self, batch: Vec<Ping>) {
        let bytes = batch.iter().map(ping_bytes).sum();
        let n = batch.len();
        self.enqueue(n, bytes, Loose::Pings, || Command::Pings(batch, bytes));
    }

    /// Queues one ping (see [`Writer::pings`]).
    pub fn ping(&self, p: Ping) {
        self.pings(vec![p]);
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
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let Shared { results, pings, .. } = &*self.shared;
        WriterStats {
            queued: self.shared.queued.load(Ordering::Acquire),
            queued_bytes: self.shared.queued_bytes.load(Ordering::Acquire),
            written_results: load(&results.written),
            dropped_results: load(&results.dropped),
            failed_results: load(&results.failed),
            written_pings: load(&pings.written),
            dropped_pings: load(&pings.dropped),
            failed_pings: load(&pings.failed),
            commits: load(&self.shared.commits),
            commit_time: std::time::Duration::from_micros(load(&self.shared.commit_micros)),
        }
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .map_err(|_| StoreError::WriterClosed)?;
        self.waker.wake();
        answer.await.map_err(|_| StoreError::WriterClosed)?
    }

    /// Sends `n` fire-and-forget writes holding `bytes` of text, or drops and counts them when
    /// the queue is over either budget or the thread has stopped.
    fn enqueue(&self, n: usize, bytes: usize, kind: Loose, command: impl FnOnce() -> Command) {
        if n == 0 {
            return;
        }
        let shared = &self.shared;
        let before = shared.queued.fetch_add(n, Ordering::AcqRel);
        let before_bytes = shared.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        // A lone write larger than the byte budget still goes into an empty queue, so no
        // budget can stop every write.
        let over = before + n > self.config.queue_capacity
            || (before_bytes + bytes > self.config.queue_bytes && before > 0);
        if over {
            shared.dequeued(n, bytes);
            self.drop(kind, n, "the writer's queue is full");
        } else if self.tx.send(command()).is_err() {
            shared.dequeued(n, bytes);
            self.drop(kind, n, "the writer has stopped");
        } else if self.config.linger.is_zero()
            || (before < self.config.max_batch && before + n >= self.config.max_batch)
        {
            // Otherwise the thread finds them on its next tick.
            self.waker.wake();
        }
    }

    fn drop(&self, kind: Loose, n: usize, why: &'static str) {
        let counts = kind.counts(&self.shared);
        let total = counts.dropped.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if !self.shared.dropping.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                dropped_total = total,
                capacity = self.config.queue_capacity,
                bytes = self.config.queue_bytes,
                "dropping {}: {why}; transitions are unaffected",
                kind.name()
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
    pings: Vec<Ping>,
    commands: Vec<Command>,
    /// A Close was received: commit, close the connection, then answer it.
    close: Option<Reply<()>>,
}

impl Group {
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn len(&self) -> usize {
        self.loose() + self.commands.len()
    }

    /// Fire-and-forget writes gathered.
    fn loose(&self) -> usize {
        self.results.len() + self.pings.len()
    }

    /// Adds one command; returns true if it must be committed without lingering.
    fn add(&mut self, cmd: Command, shared: &Shared) -> bool {
        match cmd {
            Command::Results(batch, bytes) => {
                shared.dequeued(batch.len(), bytes);
                self.results.extend(batch);
                false
            }
            Command::Pings(batch, bytes) => {
                shared.dequeued(batch.len(), bytes);
                self.pings.extend(batch);
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

/// The writer thread's loop: take what is queued, commit when something awaits, when a batch
/// is full or on the linger's tick, otherwise park until the tick or a wake (see [`Waker`]).
fn run(store: Store, rx: Receiver<Command>, shared: &Shared, config: WriterConfig) {
    let mut group = Group::default();
    let mut tick = real_now() + config.linger;
    loop {
        let mut urgent = false;
        let mut disconnected = false;
        while group.close.is_none() && group.len() < config.max_batch {
            match rx.try_recv() {
                Ok(cmd) => urgent |= group.add(cmd, shared),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    disconnected = true;
                    break;
                }
            }
        }
        let now = real_now();
        let ticked = now >= tick;
        if ticked {
            tick = now + config.linger;
        }
        // A result waits at most one linger: it is committed on the first tick after it came.
        let commit = urgent
            || disconnected
            || group.len() >= config.max_batch
            || ((ticked || config.linger.is_zero()) && group.loose() > 0);
        if commit && !group.is_empty() {
            let close = group.close.take();
            execute(&store, std::mem::take(&mut group), shared);
            if let Some(reply) = close {
                drop(store);
                // Whatever was sent after the close is not written: count results as dropped
                // (awaited commands see their reply dropped, which is WriterClosed). The
                // channel is gone before the close is answered, so once `close()` returns
                // every send fails and is counted by the sender.
                for cmd in rx.try_iter() {
                    let (kind, n, bytes) = match cmd {
                        Command::Results(batch, bytes) => (Loose::Results, batch.len(), bytes),
                        Command::Pings(batch, bytes) => (Loose::Pings, batch.len(), bytes),
                        _ => continue,
                    };
                    shared.dequeued(n, bytes);
                    kind.counts(shared)
                        .dropped
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
                drop(rx);
                let _ = reply.send(Ok(()));
                tracing::debug!("store writer closed");
                return;
            }
        }
        if disconnected {
            break;
        }
        if commit {
            continue; // more may have come meanwhile
        }
        if config.linger.is_zero() {
            std::thread::park();
        } else {
            std::thread::park_timeout(tick.saturating_duration_since(now));
        }
    }
    tracing::debug!("store writer stopped: every handle was dropped");
}

/// Runs one group in one transaction and answers every waiter after the commit.
fn execute(store: &Store, group: Group, shared: &Shared) {
    let Group {
        results,
        pings,
        commands,
        ..
    } = group;
    let mut pending: VecDeque<Command> = commands.into();
    let mut done: Vec<Waiter> = Vec::with_capacity(pending.len());
    let (mut written_results, mut written_pings) = (0u64, 0u64);
    let (mut refused_results, mut refused_pings) = (0u64, 0u64);
    let started = real_now();
    let outcome = store.with_batch(|batch| {
        // One bad result (a time before 1970, an empty target) costs only itself; a database
        // error aborts the whole group instead.
        written_results = batch.results_each(&results, |e| {
            if refused_results == 0 {
                tracing::warn!(error = %e, "refused a check result");
            }
            refused_results += 1;
        })?;
        written_pings = batch.pings_each(&pings, |e| {
            if refused_pings == 0 {
                tracing::warn!(error = %e, "refused a ping");
            }
            refused_pings += 1;
        })?;
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
    let count = |c: &AtomicU64, n: u64| c.fetch_add(n, Ordering::Relaxed);
    count(&shared.results.failed, refused_results);
    count(&shared.pings.failed, refused_pings);
    match outcome {
        Ok(()) => {
            count(&shared.results.written, written_results);
            count(&shared.pings.written, written_pings);
            count(&shared.commits, 1);
            let took = u64::try_from(real_now().saturating_duration_since(started).as_micros())
                .unwrap_or(u64::MAX);
            count(&shared.commit_micros, took);
            for w in done {
                w.answer();
            }
        }
        Err(e) => {
            let reason = match e {
                StoreError::Commit { reason } => reason,
                other => other.to_string(),
            };
            count(&shared.results.failed, written_results);
            count(&shared.pings.failed, written_pings);
            tracing::error!(
                error = %reason,
                results = written_results,
                pings = written_pings,
                "a store write group failed"
            );
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
            dropped_results = shared.results.dropped.load(Ordering::Relaxed),
            dropped_pings = shared.pings.dropped.load(Ordering::Relaxed),
            "the store writer caught up; results and pings are stored again"
        );
    }
}

/// Applies one awaited command inside the batch.
fn apply(batch: &mut Batch<'_>, cmd: Command) -> Option<Waiter> {
    Some(match cmd {
        Command::Transition(t, reply) => Waiter::Transition(reply, batch.transition(&t)),
        Command::States(states, reply) => Waiter::Unit(reply, batch.states(&states)),
        Command::Flags(target, flags, reply) => Waiter::Unit(reply, batch.flags(&target, &flags)),
        Command::Flush(reply) => Waiter::Unit(reply, Ok(())),
        // Taken apart by `Group::add`; never among the commands.
        Command::Results(..) | Command::Pings(..) | Command::Close(_) => return None,
    })
}

impl Waiter {
    /// A command that never ran, ready to be failed.
    fn unanswered(cmd: Command) -> Option<Waiter> {
        Some(match cmd {
            Command::Transition(_, reply) => Waiter::Transition(reply, Ok(0)),
            Command::States(_, reply)
            | Command::Flags(_, _, reply)
            | Command::Flush(reply)
            | Command::Close(reply) => Waiter::Unit(reply, Ok(())),
            Command::Results(..) | Command::Pings(..) => return None,
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
