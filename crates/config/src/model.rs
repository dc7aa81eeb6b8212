//! The validated configuration: plain data the monitor runs from. Every value here has
//! passed every check, defaults are filled in, and `[defaults]` is merged into each target.
//!
//! Not here: TOML, spans or errors. A `Config` can also be built in code (tests, embedders)
//! without a file; the checks in `build` then do not run, so build it with care.

use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

pub use vitals_core::Cadence;

use vitals_core::detector::PhiConfig;
use vitals_core::machine::Thresholds;
use vitals_core::recovery::BudgetPolicy;

/// Built-in defaults, documented in docs/CONFIG.md.
pub mod defaults {
    use std::time::Duration;

    pub const LISTEN_PORT: u16 = 7070;
    pub const DATA_DIR: &str = "./vitals-data";
    /// healthchecks.io keeps the first 100,000 bytes of a ping body.
    pub const PING_BODY_LIMIT: usize = 100_000;
    pub const MAX_CONCURRENCY: usize = 1024;
    /// Open HTTP connections at once; more are answered 503 and closed. Under the common
    /// `ulimit -n 1024` with room for checks, the store and the UDP socket.
    pub const MAX_CONNECTIONS: usize = 512;
    /// Pings a minute per ping id; a sender beating every second fits twice over.
    pub const PING_RATE: u32 = 120;
    /// Bytes of ping bodies kept per target: a thousand 1 kB logs; older bodies are dropped
    /// first (the pings themselves are kept).
    pub const PING_BYTES_PER_TARGET: usize = 1_000_000;
    pub const UDP_MAX_SKEW: Duration = Duration::from_secs(30);
    /// How long the monitor keeps serving after SIGTERM or Ctrl-C with its `/readyz` failing,
    /// so a load balancer in front stops sending before it closes.
    pub const DRAIN_DELAY: Duration = Duration::from_secs(5);
    pub const RAW_DAYS: u32 = 7;
    pub const ROLLUP_DAYS: u32 = 365;
    pub const INTERVAL: Duration = Duration::from_secs(30);
    /// The timeout unless set; the interval when that is shorter.
    pub const TIMEOUT: Duration = Duration::from_secs(10);
    /// The interval while the state is changing is at most this (and never below the timeout).
    pub const INTERVAL_CHANGING: Duration = vitals_core::cadence::INTERVAL_CHANGING;
    /// The interval while down is at least this (and never below the interval).
    pub const INTERVAL_DOWN: Duration = vitals_core::cadence::INTERVAL_DOWN;
    /// Grace of a heartbeat expected every `period`, unless set: a fifth of the period, at
    /// least a second, but never more than two periods (one with `confirm`). The second's
    /// floor keeps a sender beating every few seconds from being failed by one late
    /// datagram; below a second it was a wall: a 100 ms sender was suspected only after
    /// 1.1 s, 16 times slower than a LAN needs (issue 15). Two periods is the shortest grace
    /// the trace replay found free of false suspicions on LAN and heavy-tailed traces at
    /// 100 ms (BENCHMARKS.md); stalls and burst loss are what `confirm` is for. With
    /// `confirm` a suspicion only costs a connect, so one period: a crash is confirmed in
    /// about 150 ms instead of 250.
    pub fn heartbeat_grace(period: Duration, confirmed: bool) -> Duration {
        let periods = if confirmed { 1 } else { 2 };
        (period / 5).max(Duration::from_secs(1).min(period.saturating_mul(periods)))
    }
    /// Grace of a cron heartbeat: healthchecks.io's default, since cron jobs usually ping when
    /// they finish and their run time varies.
    pub const CRON_GRACE: Duration = Duration::from_secs(3600);
}

/// Everything `vitals serve` runs from.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: Server,
    pub retention: Retention,
    /// In file order.
    pub targets: Vec<Target>,
    /// `[notify]`, `[[channel]]`, `[[rule]]`, `[[maintenance]]`.
    pub notify: super::notify::Notifications,
    /// `[[discovery]]`: targets found in files and DNS, each from a template.
    pub discovery: Vec<super::discovery::Discovery>,
}

impl Config {
    /// What `vitals serve` runs with no `--config`: listen on 127.0.0.1:7070, keep data in
    /// `./vitals-data`, no targets (they can still send heartbeats once configured).
    pub fn embedded_default() -> Config {
        Config {
            server: Server::default(),
            retention: Retention::default(),
            targets: Vec::new(),
            notify: super::notify::Notifications::default(),
            discovery: Vec::new(),
        }
    }
}

/// The monitor's own listeners, storage and limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// HTTP: API, pings, metrics, the monitor's own probes. Default 127.0.0.1:7070.
    pub listen: SocketAddr,
    /// UDP heartbeats; off unless set.
    pub udp_listen: Option<SocketAddr>,
    /// Where the SQLite database lives, relative to the working directory unless absolute.
    pub data_dir: PathBuf,
    /// The shared store of replicas, `postgres://…` (docs/HA.md); `None` keeps SQLite in
    /// `data_dir`.
    pub store: Option<String>,
    /// Bearer token for changing operations (pause, resume, maintenance). With none set,
    /// changing operations are refused.
    pub api_token: Option<String>,
    /// When set, reads need a bearer token too: this one or `api_token`.
    pub read_token: Option<String>,
    /// Bytes of a ping's body kept as its log; longer bodies are refused (413). 0 keeps no
    /// body (the ping still counts).
    pub ping_body_limit: usize,
    /// Bytes of ping bodies kept per target; the oldest bodies go first.
    pub ping_bytes_per_target: usize,
    /// Pings a minute per ping id (bursts of half a minute's worth); more are answered 429.
    /// 0: no limit.
    pub ping_rate: u32,
    /// Open HTTP connections at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// The URL people reach the monitor at, when a proxy in front of it terminates TLS:
    /// with https, the login cookie is `Secure`.
    pub public_url: Option<String>,
    /// Active checks in flight at once.
    pub max_concurrency: usize,
    /// How far a UDP heartbeat's timestamp may be from the monitor's clock.
    pub udp_max_skew: Duration,
    /// How long it keeps serving after SIGTERM or Ctrl-C, `/readyz` failing; a second signal
    /// cuts it short.
    pub drain_delay: Duration,
    /// HAProxy agent checks for every target (docs/AGENT_CHECK.md); off unless set.
    pub agent_check_listen: Option<SocketAddr>,
    /// Ids of targets that tell whether the monitor itself is connected: when all of them
    /// fail, the monitor is isolated and judges no other target down (docs/ALERTS.md).
    pub canaries: Vec<String>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, defaults::LISTEN_PORT)),
            udp_listen: None,
            data_dir: PathBuf::from(defaults::DATA_DIR),
            store: None,
            api_token: None,
            read_token: None,
            ping_body_limit: defaults::PING_BODY_LIMIT,
            ping_bytes_per_target: defaults::PING_BYTES_PER_TARGET,
            ping_rate: defaults::PING_RATE,
            max_connections: defaults::MAX_CONNECTIONS,
            public_url: None,
            max_concurrency: defaults::MAX_CONCURRENCY,
            udp_max_skew: defaults::UDP_MAX_SKEW,
            drain_delay: defaults::DRAIN_DELAY,
            agent_check_listen: None,
            canaries: Vec::new(),
        }
    }
}

/// How long history is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Days of raw results.
    pub raw_days: u32,
    /// Days of per-minute, per-hour and per-day rollups; at least `raw_days`.
    pub rollup_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            raw_days: defaults::RAW_DAYS,
            rollup_days: defaults::ROLLUP_DAYS,
        }
    }
}

/// One monitored thing.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// `[a-z0-9][a-z0-9_.-]{0,63}`, unique.
    pub id: String,
    /// For people; the id unless set.
    pub name: String,
    pub group: Option<String>,
    pub tags: Vec<String>,
    /// Ids of targets this one needs, for root-cause analysis. All exist, none is this
    /// target, and they form no cycle.
    pub depends_on: Vec<String>,
    pub kind: TargetKind,
    /// When to probe. For heartbeat targets, whose rhythm is set by their sender
    /// ([`HeartbeatSpec::expect`]), this holds the `[defaults]` and is not used.
    pub schedule: Cadence,
    pub thresholds: Thresholds,
    /// What to do when it fails (`[target.recover]`), if anything.
    pub recover: Option<Recovery>,
    /// Where a suspicion is confirmed (issue 15): `tcp://host:port` or an HTTP URL. With it,
    /// a heartbeat target's silence alone never fails it, and an active target whose check
    /// fails is down at once when the confirmation is refused.
    pub confirm: Option<String>,
}

/// The cadence of a target that sets nothing.
pub fn default_cadence() -> Cadence {
    Cadence::with_interval(defaults::INTERVAL, defaults::TIMEOUT)
}

/// What a target checks, and how.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "built once per target at start-up; a box would only make matching clumsier"
)]
pub enum TargetKind {
    Http(HttpSpec),
    /// Connect, then close.
    Tcp {
        /// `host:port`.
        address: String,
    },
    /// `SELECT 1` through a small pool.
    Postgres {
        url: String,
    },
    /// `PING` through one connection.
    Redis {
        url: String,
    },
    /// A command whose exit code 0 / 1 / 2 means pass / warn / fail (the Nagios plugin
    /// convention); anything else fails.
    Exec {
        /// The program then its arguments; no shell runs it.
        command: Vec<String>,
    },
    /// A service built with the vitals library: its `/health` JSON, each check shown on its
    /// own.
    Vitals {
        url: String,
    },
    /// `grpc.health.v1.Health/Check` of one service name.
    Grpc(GrpcSpec),
    /// A passive target that pings the monitor.
    Heartbeat(HeartbeatSpec),
}

impl TargetKind {
    /// The `kind` as written in TOML.
    pub fn name(&self) -> &'static str {
        match self {
            TargetKind::Http(_) => "http",
            TargetKind::Tcp { .. } => "tcp",
            TargetKind::Postgres { .. } => "postgres",
            TargetKind::Redis { .. } => "redis",
            TargetKind::Exec { .. } => "exec",
            TargetKind::Vitals { .. } => "vitals",
            TargetKind::Grpc(_) => "grpc",
            TargetKind::Heartbeat(_) => "heartbeat",
        }
    }
}

/// A gRPC health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcSpec {
    /// `host:port`.
    pub address: String,
    /// The service name asked about; `""` (the server as a whole) unless set.
    pub service: String,
    /// TLS, when `tls = true`.
    pub tls: Option<GrpcTlsSpec>,
}

/// TLS of a gRPC health check: the system's roots unless a CA file is given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GrpcTlsSpec {
    pub ca_cert: Option<std::path::PathBuf>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpSpec {
    /// http:// or https://.
    pub url: String,
    /// Upper case; GET unless set.
    pub method: String,
    /// Checked as HTTP header names and values.
    pub headers: Vec<(String, String)>,
    /// 200-299 unless set.
    pub expect_status: RangeInclusive<u16>,
    pub body_contains: Option<String>,
    /// JSONPath (RFC 9535), such as `$.status`.
    pub json_path: Option<String>,
    /// What every match of `json_path` must equal; only with `json_path`. Without it, the
    /// path must match something.
    pub json_equals: Option<serde_json::Value>,
    /// A response slower than this warns; shorter than the timeout.
    pub warn_over: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatSpec {
    /// The `<ping_id>` in `/ping/<ping_id>`: a UUID or a slug; unique across targets. Also
    /// the source id of UDP heartbeats. Unless set, the target id when the target's pings
    /// are authenticated (`ping_key`, `udp_key`), else `None`: the monitor generates a UUID
    /// and keeps it in its store, so nothing public names it.
    pub ping_id: Option<String>,
    /// When set, HTTP pings must carry it (`?key=` or an `X-Ping-Key` header).
    pub ping_key: Option<String>,
    pub expect: Expect,
    pub detector: DetectorKind,
    /// Key for authenticated UDP heartbeats (at least 16 bytes); UDP is refused without one.
    pub udp_key: Option<Vec<u8>>,
}

/// When heartbeats are expected.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "built once per target at start-up; a box would only make matching clumsier"
)]
pub enum Expect {
    /// Every `period`, late by at most `grace`.
    Period { period: Duration, grace: Duration },
    /// At each time of a cron schedule in a time zone, late by at most `grace`.
    Cron {
        schedule: croner::Cron,
        /// As written, for people.
        expression: String,
        timezone: chrono_tz::Tz,
        grace: Duration,
    },
}

impl Expect {
    pub fn grace(&self) -> Duration {
        match self {
            Expect::Period { grace, .. } | Expect::Cron { grace, .. } => *grace,
        }
    }
}

/// Which failure detector judges a heartbeat target.
#[derive(Debug, Clone, PartialEq)]
pub enum DetectorKind {
    /// Suspected once the next heartbeat is later than the expectation plus grace.
    Deadline,
    /// Phi accrual, learning the sender's rhythm; only with a period. Its
    /// `first_heartbeat_estimate` is the period, and its `acceptable_pause` the grace unless
    /// set.
    Phi(PhiConfig),
}

/// How long an action may run unless `timeout` is set: long enough for a service manager to
/// stop and start a service, short enough that a hung command does not hold up the next try.
pub const DEFAULT_ACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// What a target does to recover, and how often it may.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    pub action: RecoveryAction,
    /// Attempts, window, backoff and reset; validated.
    pub policy: BudgetPolicy,
    /// An action still running after this is killed (a command) or cut (a request), and
    /// counts as a failed attempt.
    pub timeout: Duration,
    /// Whether a heartbeat's HTTP ping without a `ping_key` may make the action run (anyone
    /// who learns the ping URL could then run it). Off: only silence, authenticated pings
    /// and probes do.
    pub trust_unauthenticated_pings: bool,
}

/// The recovery action itself.
#[derive(Debug, Clone, PartialEq)]
pub enum RecoveryAction {
    /// The program then its arguments; no shell runs it. It runs in a process group of its
    /// own, so a service it starts does not share the monitor's terminal signals.
    Command(Vec<String>),
    /// An HTTP request; a 2xx answer is success.
    Http {
        url: String,
        /// Upper case; POST unless set.
        method: String,
        headers: Vec<(String, String)>,
    },
}

impl RecoveryAction {
    /// The action as people read it: the command line, or `POST http://…`.
    pub fn describe(&self) -> String {
        match self {
            RecoveryAction::Command(argv) => argv
                .iter()
                .map(|arg| {
                    if arg.is_empty() || arg.contains(char::is_whitespace) {
                        format!("{arg:?}")
                    } else {
                        arg.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
            RecoveryAction::Http { url, method, .. } => format!("{method} {url}"),
        }
    }
}
