//! The supervisor's decisions, sans-IO: when to start the child, when to probe it, what a
//! probe result means, when to stop, kill, restart or give up, and what to answer on
//! `/readyz` meanwhile. The rules are kubelet's (docs/SUPERVISE.md has the table, with the
//! test for each row).
//!
//! In quinn-proto's vocabulary: inputs are `handle_*(now, …)`, outputs are
//! [`Supervisor::poll_action`] (what the driver must do now) and
//! [`Supervisor::poll_timeout`] (when to call [`Supervisor::handle_timeout`] next). Time is an
//! argument and only moves forward; nothing here spawns, signals, sleeps or reads a clock.
//! The driver (`driver.rs`) performs the actions and reports what happened.
//!
//! What it is not: a probe runner (the driver runs probes, cut at their timeout, and reports
//! success or failure) or a process table (one child at a time; its process group is the
//! driver's business).

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// The three probes of a container, in kubelet's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 3] = [
        ProbeKind::Startup,
        ProbeKind::Liveness,
        ProbeKind::Readiness,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Startup => "startup",
            ProbeKind::Liveness => "liveness",
            ProbeKind::Readiness => "readiness",
        }
    }

    fn index(self) -> usize {
        match self {
            ProbeKind::Startup => 0,
            ProbeKind::Liveness => 1,
            ProbeKind::Readiness => 2,
        }
    }
}

/// One probe's timing and thresholds, with Kubernetes' names and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeTiming {
    /// `initialDelaySeconds` (0): from the child's start, or from the startup probe's success
    /// for liveness and readiness when there is a startup probe, to the first run.
    pub initial_delay: Duration,
    /// `periodSeconds` (10): from one run's start to the next.
    pub period: Duration,
    /// `timeoutSeconds` (1): a run that takes longer is a failure.
    pub timeout: Duration,
    /// `successThreshold` (1): consecutive successes that make a failed probe succeed (must
    /// be 1 for liveness and startup).
    pub success_threshold: u32,
    /// `failureThreshold` (3): consecutive failures that make the probe fail.
    pub failure_threshold: u32,
    /// The probe-level `terminationGracePeriodSeconds` (liveness and startup only): the
    /// grace after this probe's failure, instead of the supervisor's.
    pub grace: Option<Duration>,
}

impl Default for ProbeTiming {
    fn default() -> Self {
        ProbeTiming {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
            grace: None,
        }
    }
}

/// `restartPolicy`: what an exit of the child leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Restart after every exit (Kubernetes' default).
    #[default]
    Always,
    /// Restart after a failure: a non-zero exit, death by a signal, or a kill after a failed
    /// liveness or startup probe. Exit 0 ends the supervisor with 0.
    OnFailure,
    /// Never restart: the supervisor exits with the child's code.
    Never,
}

/// CrashLoopBackOff: kubelet restarts the first exit at once, then waits `initial` (10 s),
/// doubling up to `max` (5 min); a child that ran `reset_after` (10 min) before exiting
/// starts the sequence anew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

impl Backoff {
    /// The wait before restart number `step` of a crash loop (0 for the first restart).
    pub fn delay(&self, step: u32) -> Duration {
        if step == 0 {
            return Duration::ZERO;
        }
        self.initial
            .saturating_mul(1u32.checked_shl(step - 1).unwrap_or(u32::MAX))
            .min(self.max)
    }
}

/// Everything the supervisor decides by. The default has no probes, restart policy Always,
/// a grace period of 30 s and kubelet's back-off.
#[derive(Debug, Clone)]
pub struct Settings {
    pub startup: Option<ProbeTiming>,
    pub liveness: Option<ProbeTiming>,
    pub readiness: Option<ProbeTiming>,
    pub restart: RestartPolicy,
    /// `terminationGracePeriodSeconds` (30): from SIGTERM to SIGKILL of the process group.
    pub grace: Duration,
    pub backoff: Backoff,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            startup: None,
            liveness: None,
            readiness: None,
            restart: RestartPolicy::default(),
            grace: Duration::from_secs(30),
            backoff: Backoff::default(),
        }
    }
}

impl Settings {
    fn timing(&self, kind: ProbeKind) -> Option<&ProbeTiming> {
        match kind {
            ProbeKind::Startup => self.startup.as_ref(),
            ProbeKind::Liveness => self.liveness.as_ref(),
            ProbeKind::Readiness => self.readiness.as_ref(),
        }
    }
}

/// How the child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// As a shell reports it: the code, or 128 + the signal's number.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(code) => code,
            Exit::Signal(signal) => 128 + signal,
        }
    }

    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit {code}"),
            Exit::Signal(signal) => write!(f, "killed by signal {signal}"),
        }
    }
}

/// The signals the supervisor passes on to the child. TERM and INT also stop supervising.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sig {
    Term,
    Int,
    Hup,
    Quit,
    Usr1,
    Usr2,
}

impl Sig {
    pub const FORWARDED: [Sig; 6] = [
        Sig::Term,
        Sig::Int,
        Sig::Hup,
        Sig::Quit,
        Sig::Usr1,
        Sig::Usr2,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Sig::Term => "SIGTERM",
            Sig::Int => "SIGINT",
            Sig::Hup => "SIGHUP",
            Sig::Quit => "SIGQUIT",
            Sig::Usr1 => "SIGUSR1",
            Sig::Usr2 => "SIGUSR2",
        }
    }
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the child (it leads a process group of its own). Report a failure to start with
    /// [`Supervisor::handle_spawn_failed`].
    Spawn,
    /// Run this probe once, cut at `timeout`, and report with [`Supervisor::handle_probe`]
    /// quoting `generation`.
    Probe {
        kind: ProbeKind,
        generation: u64,
        timeout: Duration,
    },
    /// Send this signal to the child (its process, not its group).
    Signal(Sig),
    /// SIGKILL the child's whole process group.
    KillGroup,
    /// Something worth a log line.
    Note(String),
    /// Stop supervising and exit with this code. Nothing follows.
    Exit(i32),
}

/// A probe's result as kubelet keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Unknown,
    Success,
    Failure,
}

/// One probe of the running child.
#[derive(Debug, Clone)]
struct Probe {
    timing: ProbeTiming,
    /// When the next run is due; `None` while the probe is off (a liveness probe before the
    /// startup probe passed, a startup probe after it passed).
    next: Option<Instant>,
    in_flight: bool,
    /// The last raw result and how many times in a row it came (kubelet's `resultRun`).
    last: Option<bool>,
    run: u32,
    verdict: Verdict,
    output: String,
}

impl Probe {
    fn new(timing: ProbeTiming, initial: Verdict) -> Self {
        Probe {
            timing,
            next: None,
            in_flight: false,
            last: None,
            run: 0,
            verdict: initial,
            output: String::new(),
        }
    }

    /// Feed one result; the verdict changes only after `successThreshold` successes or
    /// `failureThreshold` failures in a row. Returns the new verdict if it changed.
    fn record(&mut self, success: bool, output: String) -> Option<Verdict> {
        self.in_flight = false;
        self.output = output;
        if self.last == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let threshold = if success {
            self.timing.success_threshold
        } else {
            self.timing.failure_threshold
        };
        if self.run < threshold {
            return None;
        }
        let verdict = if success {
            Verdict::Success
        } else {
            Verdict::Failure
        };
        (self.verdict != verdict).then(|| {
            self.verdict = verdict;
            verdict
        })
    }
}

/// Where the child is.
#[derive(Debug, Clone)]
enum Child {
    /// Not running; start at `at`.
    Waiting { at: Instant },
    Running {
        /// The startup probe has passed (or there is none).
        started: bool,
        /// Boxed: the other states are a few words.
        probes: Box<[Option<Probe>; 3]>,
    },
    /// Told to stop with SIGTERM at `since`; SIGKILL to the group at `kill_at` unless it
    /// exits first.
    Stopping {
        since: Instant,
        kill_at: Instant,
        killed: bool,
        why: String,
    },
    /// The supervisor has exited.
    Done { code: i32 },
}

/// What `/readyz`, the agent check and systemd are told.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct View {
    /// waiting, starting, running, stopping, exited.
    pub phase: &'static str,
    pub ready: bool,
    /// The supervisor was asked to stop (SIGTERM, SIGINT).
    pub shutting_down: bool,
    /// Why it is (not) ready, in words.
    pub reason: String,
    pub restarts: u32,
    /// How the previous child ended, as a shell would report it.
    pub last_exit: Option<i32>,
}

/// The supervisor of one child. See the module documentation.
#[derive(Debug)]
pub struct Supervisor {
    settings: Settings,
    child: Child,
    /// Bumped at every start, so a result of a previous child's probe is recognised.
    generation: u64,
    restarts: u32,
    /// Restarts in the current crash loop (the back-off step).
    loop_step: u32,
    last_exit: Option<Exit>,
    /// The current child is being stopped because a probe failed (a failure under
    /// OnFailure, whatever its exit code).
    stopped_by_probe: bool,
    shutting_down: bool,
    /// A child has run (and exited) before: a later failure to start is part of a crash
    /// loop, a first one is a wrong command.
    ever_started: bool,
    /// When the current (or last) child was started.
    started_at: Option<Instant>,
    actions: VecDeque<Action>,
}

impl Supervisor {
    /// A supervisor that starts the child at once.
    pub fn new(settings: Settings, now: Instant) -> Self {
        let mut supervisor = Supervisor {
            settings,
            child: Child::Waiting { at: now },
            generation: 0,
            restarts: 0,
            loop_step: 0,
            last_exit: None,
            stopped_by_probe: false,
            shutting_down: false,
            ever_started: false,
            started_at: None,
            actions: VecDeque::new(),
        };
        supervisor.start(now);
        supervisor
    }

    /// The next thing to do, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Supervisor::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.child {
            Child::Waiting { at } => Some(*at),
            Child::Running { probes, .. } => {
                probes.iter().flatten().filter_map(|probe| probe.next).min()
            }
            Child::Stopping {
                kill_at, killed, ..
            } => (!killed).then_some(*kill_at),
            Child::Done { .. } => None,
        }
    }

    /// Time passed: start a waiting child, run due probes, kill a child past its grace.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.child {
            Child::Waiting { at } if now >= *at => self.start(now),
            Child::Running { probes, .. } => {
                let generation = self.generation;
                for kind in ProbeKind::ALL {
                    let Some(probe) = probes[kind.index()].as_mut() else {
                        continue;
                    };
                    let Some(next) = probe.next.filter(|next| now >= *next) else {
                        continue;
                    };
                    // Like kubelet's ticker: a tick that finds the previous run still going
                    // is skipped, never queued.
                    let period = probe.timing.period;
                    let mut following = next + period;
                    while following <= now {
                        following += period;
                    }
                    probe.next = Some(following);
                    if !probe.in_flight {
                        probe.in_flight = true;
                        self.actions.push_back(Action::Probe {
                            kind,
                            generation,
                            timeout: probe.timing.timeout,
                        });
                    }
                }
            }
            Child::Stopping {
                kill_at,
                killed,
                since,
                ..
            } if !*killed && now >= *kill_at => {
                *killed = true;
                let waited = now.saturating_duration_since(*since);
                self.actions.push_back(Action::Note(format!(
                    "the child did not exit within {:?} of SIGTERM; killing its process group",
                    waited
                )));
                self.actions.push_back(Action::KillGroup);
            }
            _ => {}
        }
    }

    /// The child could not be started (no such program, not executable).
    pub fn handle_spawn_failed(&mut self, now: Instant, error: &str) {
        if !self.ever_started {
            // A command that never ran is a mistake in the command, not a crash loop.
            self.actions
                .push_back(Action::Note(format!("cannot start the command: {error}")));
            self.finish(127);
            return;
        }
        self.actions.push_back(Action::Note(format!(
            "cannot start the command again: {error}"
        )));
        self.exited(now, Exit::Code(127));
    }

    /// A probe run of child `generation` ended: `success` or not, with `output` saying why.
    pub fn handle_probe(
        &mut self,
        now: Instant,
        kind: ProbeKind,
        generation: u64,
        success: bool,
        output: String,
    ) {
        if generation != self.generation {
            return;
        }
        let Child::Running {
            started, probes, ..
        } = &mut self.child
        else {
            return;
        };
        let Some(probe) = probes[kind.index()].as_mut() else {
            return;
        };
        let Some(changed) = probe.record(success, output) else {
            return;
        };
        let failures = probe.run;
        let said = probe.output.clone();
        let grace = probe.timing.grace.unwrap_or(self.settings.grace);
        match (kind, changed) {
            (ProbeKind::Startup, Verdict::Success) => {
                *started = true;
                probe.next = None;
                // Liveness and readiness delays begin now, not at the child's start.
                for other in [ProbeKind::Liveness, ProbeKind::Readiness] {
                    if let Some(probe) = probes[other.index()].as_mut() {
                        probe.next = Some(now + probe.timing.initial_delay);
                    }
                }
                self.actions
                    .push_back(Action::Note("startup probe passed".to_string()));
            }
            (ProbeKind::Startup | ProbeKind::Liveness, Verdict::Failure) => {
                let why = format!(
                    "{} probe failed {failures} times in a row: {said}",
                    kind.as_str()
                );
                self.stop_with(now, why, true, Sig::Term, grace);
            }
            (ProbeKind::Readiness, Verdict::Success) => {
                self.actions.push_back(Action::Note("ready".to_string()));
            }
            (ProbeKind::Readiness, Verdict::Failure) => {
                self.actions.push_back(Action::Note(format!(
                    "not ready: readiness probe failed {failures} times in a row: {said}"
                )));
            }
            (ProbeKind::Liveness, Verdict::Success) | (_, Verdict::Unknown) => {}
        }
    }

    /// The child exited (its process; the driver kills what is left of its group).
    pub fn handle_exit(&mut self, now: Instant, exit: Exit) {
        self.exited(now, exit);
    }

    /// The supervisor received `sig`: pass it on; TERM and INT also end supervision once the
    /// child has exited, within the grace period.
    pub fn handle_signal(&mut self, now: Instant, sig: Sig) {
        let stops = matches!(sig, Sig::Term | Sig::Int);
        if stops && !self.shutting_down {
            self.shutting_down = true;
            self.actions.push_back(Action::Note(format!(
                "received {}: stopping the child, then exiting",
                sig.as_str()
            )));
        }
        match &mut self.child {
            Child::Running { .. } if stops => {
                let grace = self.settings.grace;
                self.stop_with(now, format!("received {}", sig.as_str()), false, sig, grace);
            }
            Child::Running { .. } | Child::Stopping { .. } => {
                self.actions.push_back(Action::Signal(sig));
            }
            Child::Waiting { .. } if stops => {
                self.actions.push_back(Action::Note(
                    "no child running (waiting to restart); exiting with 0".to_string(),
                ));
                self.finish(0);
            }
            Child::Waiting { .. } | Child::Done { .. } => {}
        }
    }

    /// What the supervisor's endpoints say now.
    pub fn view(&self, now: Instant) -> View {
        let last_exit = self.last_exit.map(Exit::code);
        let (phase, ready, reason) = match &self.child {
            Child::Waiting { at } => (
                "waiting",
                false,
                match self.last_exit {
                    Some(exit) => format!(
                        "back-off: the child ended ({exit}); restart in {:.1}s",
                        at.saturating_duration_since(now).as_secs_f64()
                    ),
                    None => "starting the child".to_string(),
                },
            ),
            Child::Running {
                started, probes, ..
            } => {
                let startup = probes[ProbeKind::Startup.index()].as_ref();
                let readiness = probes[ProbeKind::Readiness.index()].as_ref();
                if !*started {
                    let why = match startup {
                        Some(probe) if !probe.output.is_empty() => {
                            format!("startup probe has not passed: {}", probe.output)
                        }
                        _ => "startup probe has not passed yet".to_string(),
                    };
                    ("starting", false, why)
                } else if self.shutting_down {
                    ("running", false, "shutting down".to_string())
                } else {
                    match readiness {
                        None => ("running", true, "running (no readiness probe)".to_string()),
                        Some(probe) if probe.verdict == Verdict::Success => {
                            ("running", true, "readiness probe passes".to_string())
                        }
                        Some(probe) if probe.output.is_empty() => (
                            "running",
                            false,
                            "readiness probe has not passed yet".to_string(),
                        ),
                        Some(probe) => (
                            "running",
                            false,
                            format!("readiness probe fails: {}", probe.output),
                        ),
                    }
                }
            }
            Child::Stopping { why, .. } => ("stopping", false, format!("stopping: {why}")),
            Child::Done { code } => ("exited", false, format!("exited with {code}")),
        };
        View {
            phase,
            ready,
            shutting_down: self.shutting_down,
            reason,
            restarts: self.restarts,
            last_exit,
        }
    }

    fn start(&mut self, now: Instant) {
        self.generation += 1;
        let settings = &self.settings;
        let probe = |kind: ProbeKind, initial: Verdict| {
            settings
                .timing(kind)
                .map(|timing| Probe::new(*timing, initial))
        };
        // Kubernetes: readiness is Failure until it passes; liveness and startup have no
        // verdict until they run.
        let mut probes = [
            probe(ProbeKind::Startup, Verdict::Unknown),
            probe(ProbeKind::Liveness, Verdict::Unknown),
            probe(ProbeKind::Readiness, Verdict::Failure),
        ];
        let started = probes[ProbeKind::Startup.index()].is_none();
        for kind in ProbeKind::ALL {
            let gate_open = kind == ProbeKind::Startup || started;
            if let Some(probe) = probes[kind.index()].as_mut()
                && gate_open
            {
                probe.next = Some(now + probe.timing.initial_delay);
            }
        }
        self.started_at = Some(now);
        self.child = Child::Running {
            started,
            probes: Box::new(probes),
        };
        self.stopped_by_probe = false;
        self.actions.push_back(Action::Spawn);
    }

    /// `sig` now, SIGKILL of the group at the end of `grace`.
    fn stop_with(&mut self, now: Instant, why: String, by_probe: bool, sig: Sig, grace: Duration) {
        self.stopped_by_probe |= by_probe;
        self.actions.push_back(Action::Note(format!(
            "stopping the child: {why}; {} now, SIGKILL to its group after {grace:?}",
            sig.as_str()
        )));
        self.actions.push_back(Action::Signal(sig));
        let mut killed = false;
        if grace.is_zero() {
            killed = true;
            self.actions.push_back(Action::KillGroup);
        }
        self.child = Child::Stopping {
            since: now,
            kill_at: now + grace,
            killed,
            why,
        };
    }

    fn exited(&mut self, now: Instant, exit: Exit) {
        if matches!(self.child, Child::Done { .. }) {
            return;
        }
        // From the child's start, also when we stopped it: a run of 10 minutes ends a crash
        // loop however it ended.
        let ran = self
            .started_at
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        self.last_exit = Some(exit);
        self.ever_started = true;
        self.generation += 1;
        if self.shutting_down {
            self.actions.push_back(Action::Note(format!(
                "the child ended ({exit}); exiting with {}",
                exit.code()
            )));
            self.finish(exit.code());
            return;
        }
        let failed = self.stopped_by_probe || !exit.success();
        let restart = match self.settings.restart {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => failed,
            RestartPolicy::Never => false,
        };
        if !restart {
            self.actions.push_back(Action::Note(format!(
                "the child ended ({exit}); restart policy {:?}: exiting with {}",
                self.settings.restart,
                exit.code()
            )));
            self.finish(exit.code());
            return;
        }
        if ran >= self.settings.backoff.reset_after {
            self.loop_step = 0;
        }
        let delay = self.settings.backoff.delay(self.loop_step);
        self.loop_step = self.loop_step.saturating_add(1);
        self.restarts = self.restarts.saturating_add(1);
        self.actions.push_back(Action::Note(format!(
            "the child ended ({exit}) after {:.1}s; restart {} in {:.1}s",
            ran.as_secs_f64(),
            self.restarts,
            delay.as_secs_f64()
        )));
        if delay.is_zero() {
            self.start(now);
        } else {
            self.child = Child::Waiting { at: now + delay };
        }
    }

    fn finish(&mut self, code: i32) {
        self.child = Child::Done { code };
        self.actions.push_back(Action::Exit(code));
    }
}

#[cfg(test)]
mod tests;
