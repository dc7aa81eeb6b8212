//! The one place that knows every configuration key: its name, the type of its value, and
//! which target kinds accept it. The walker reads these tables; nothing else lists keys.
//!
//! Not here: what a value means once it is read, or how keys relate to each other (timeout
//! against interval, period against schedule). That is `build` and `cross`.
//!
//! docs/CONFIG.md documents every key listed here; keep the two in step.

/// What a target checks. Its name in TOML is the `kind` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Http,
    Tcp,
    Postgres,
    Redis,
    Exec,
    Vitals,
    Heartbeat,
}

impl Kind {
    pub(super) const ALL: [Kind; 7] = [
        Kind::Http,
        Kind::Tcp,
        Kind::Postgres,
        Kind::Redis,
        Kind::Exec,
        Kind::Vitals,
        Kind::Heartbeat,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Tcp => "tcp",
            Kind::Postgres => "postgres",
            Kind::Redis => "redis",
            Kind::Exec => "exec",
            Kind::Vitals => "vitals",
            Kind::Heartbeat => "heartbeat",
        }
    }

    pub(super) fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of kinds, as a bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Kinds(u8);

impl Kinds {
    pub(super) fn contains(self, kind: Kind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Both sets together.
    pub(super) fn union(self, other: Kinds) -> Kinds {
        Kinds(self.0 | other.0)
    }

    /// The kinds' names, in the order of [`Kind::ALL`], for "it is for http or vitals targets".
    pub(super) fn names(self) -> Vec<&'static str> {
        Kind::ALL
            .into_iter()
            .filter(|&kind| self.contains(kind))
            .map(Kind::name)
            .collect()
    }
}

const HTTP: u8 = 1 << Kind::Http as u8;
const TCP: u8 = 1 << Kind::Tcp as u8;
const POSTGRES: u8 = 1 << Kind::Postgres as u8;
const REDIS: u8 = 1 << Kind::Redis as u8;
const EXEC: u8 = 1 << Kind::Exec as u8;
const VITALS: u8 = 1 << Kind::Vitals as u8;
const HEARTBEAT: u8 = 1 << Kind::Heartbeat as u8;
/// Targets the monitor probes on a schedule (everything but heartbeats).
const ACTIVE: u8 = HTTP | TCP | POSTGRES | REDIS | EXEC | VITALS;
pub(super) const ANY: u8 = ACTIVE | HEARTBEAT;

/// The type of a key's value: how the walker reads and checks it on its own, before any
/// other key is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
    /// A non-empty string.
    Str,
    /// A bearer token: visible ASCII without spaces, at least 16 characters.
    Token,
    /// A non-empty path.
    Path,
    /// A humantime duration string: "30s", "1m 30s", "500ms".
    Duration,
    /// A whole number from 0 to 2^32 - 1.
    Count,
    /// A whole number of bytes.
    Bytes,
    /// A finite number, whole or not.
    Number,
    /// A list of non-empty strings.
    List,
    /// An IP address and port: "127.0.0.1:7070".
    SocketAddr,
    /// A target id: `[a-z0-9][a-z0-9_.-]{0,63}`.
    Id,
    /// A heartbeat's ping id: a UUID or a slug.
    PingId,
    /// An http:// or https:// URL.
    HttpUrl,
    PostgresUrl,
    RedisUrl,
    /// host:port.
    HostPort,
    /// A program and its arguments, as a list.
    Command,
    /// An HTTP method.
    Method,
    /// A table of header names to values.
    Headers,
    /// A status code, "200-299", or [200, 299].
    StatusRange,
    /// Any TOML value, kept as JSON.
    Json,
    /// A cron expression.
    Cron,
    /// An IANA time zone name.
    TimeZone,
    /// Hex-encoded key bytes, at least 16 of them.
    HexKey,
    /// "3 of 10" or { failures = 3, of_last = 10 }.
    Window,
    /// { transitions = 8, within = "10m" }, or false.
    Flap,
    /// "deadline", "phi", or a table with kind = "phi" and its tuning.
    Detector,
    /// The `[target.recover]` table: keys in [`RECOVER`] and [`RECOVER_HTTP`], read by
    /// `recovery`.
    Recover,
}

/// One key: its name, its type, and the target kinds it belongs to (every kind outside
/// `[[target]]`). A name may appear twice with different types for different kinds (`url`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Key {
    pub(super) name: &'static str,
    pub(super) ty: Ty,
    pub(super) kinds: Kinds,
}

pub(super) const fn key(name: &'static str, ty: Ty, kinds: u8) -> Key {
    Key {
        name,
        ty,
        kinds: Kinds(kinds),
    }
}

/// The sections of the file, with the type each must be.
pub(super) const TOP: &[&str] = &[
    "server",
    "retention",
    "defaults",
    "target",
    "notify",
    "channel",
    "rule",
    "maintenance",
];

pub(super) const SERVER: &[Key] = &[
    key("listen", Ty::SocketAddr, ANY),
    key("udp_listen", Ty::SocketAddr, ANY),
    key("data_dir", Ty::Path, ANY),
    key("api_token", Ty::Token, ANY),
    key("read_token", Ty::Token, ANY),
    key("ping_body_limit", Ty::Bytes, ANY),
    key("max_concurrency", Ty::Count, ANY),
    key("udp_max_skew", Ty::Duration, ANY),
    key("agent_check_listen", Ty::SocketAddr, ANY),
    key("canaries", Ty::List, ANY),
];

pub(super) const RETENTION: &[Key] = &[
    key("raw_days", Ty::Count, ANY),
    key("rollup_days", Ty::Count, ANY),
];

/// Keys of the thresholds, shared by `[defaults]` and every target.
pub(super) const THRESHOLD_KEYS: [&str; 5] =
    ["fall", "rise", "down_after", "failures_in_window", "flap"];

pub(super) const DEFAULTS: &[Key] = &[
    key("interval", Ty::Duration, ANY),
    key("timeout", Ty::Duration, ANY),
    key("jitter", Ty::Duration, ANY),
    key("interval_changing", Ty::Duration, ANY),
    key("interval_down", Ty::Duration, ANY),
    key("fall", Ty::Count, ANY),
    key("rise", Ty::Count, ANY),
    key("down_after", Ty::Count, ANY),
    key("failures_in_window", Ty::Window, ANY),
    key("flap", Ty::Flap, ANY),
];

pub(super) const TARGET: &[Key] = &[
    // Every kind.
    key("id", Ty::Id, ANY),
    key("kind", Ty::Str, ANY),
    key("name", Ty::Str, ANY),
    key("group", Ty::Str, ANY),
    key("tags", Ty::List, ANY),
    key("depends_on", Ty::List, ANY),
    key("fall", Ty::Count, ANY),
    key("rise", Ty::Count, ANY),
    key("down_after", Ty::Count, ANY),
    key("failures_in_window", Ty::Window, ANY),
    key("flap", Ty::Flap, ANY),
    key("recover", Ty::Recover, ANY),
    // Probed targets: a heartbeat's rhythm is its sender's, set by period or schedule.
    key("interval", Ty::Duration, ACTIVE),
    key("timeout", Ty::Duration, ACTIVE),
    key("jitter", Ty::Duration, ACTIVE),
    key("interval_changing", Ty::Duration, ACTIVE),
    key("interval_down", Ty::Duration, ACTIVE),
    // What to look at.
    key("url", Ty::HttpUrl, HTTP | VITALS),
    key("url", Ty::PostgresUrl, POSTGRES),
    key("url", Ty::RedisUrl, REDIS),
    key("address", Ty::HostPort, TCP),
    key("command", Ty::Command, EXEC),
    // HTTP.
    key("method", Ty::Method, HTTP),
    key("headers", Ty::Headers, HTTP),
    key("expect_status", Ty::StatusRange, HTTP),
    key("body_contains", Ty::Str, HTTP),
    key("json_path", Ty::Str, HTTP),
    key("json_equals", Ty::Json, HTTP),
    key("warn_over", Ty::Duration, HTTP),
    // Heartbeats.
    key("ping_id", Ty::PingId, HEARTBEAT),
    key("period", Ty::Duration, HEARTBEAT),
    key("schedule", Ty::Cron, HEARTBEAT),
    key("timezone", Ty::TimeZone, HEARTBEAT),
    key("grace", Ty::Duration, HEARTBEAT),
    key("detector", Ty::Detector, HEARTBEAT),
    key("udp_key", Ty::HexKey, HEARTBEAT),
];

/// The keys a kind must have, beyond `id` and `kind`.
pub(super) fn required(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Http | Kind::Postgres | Kind::Redis | Kind::Vitals => &["url"],
        Kind::Tcp => &["address"],
        Kind::Exec => &["command"],
        // Period or schedule, exactly one: checked with the pair.
        Kind::Heartbeat => &[],
    }
}

pub(super) const WINDOW: &[Key] = &[
    key("failures", Ty::Count, ANY),
    key("of_last", Ty::Count, ANY),
];

pub(super) const FLAP: &[Key] = &[
    key("transitions", Ty::Count, ANY),
    key("within", Ty::Duration, ANY),
];

/// `[target.recover]`; its `http` table is [`RECOVER_HTTP`].
pub(super) const RECOVER: &[Key] = &[
    key("command", Ty::Command, ANY),
    key("max_attempts", Ty::Count, ANY),
    key("window", Ty::Duration, ANY),
    key("backoff", Ty::Duration, ANY),
    key("backoff_max", Ty::Duration, ANY),
    key("reset_after", Ty::Duration, ANY),
    key("timeout", Ty::Duration, ANY),
];

pub(super) const RECOVER_HTTP: &[Key] = &[
    key("url", Ty::HttpUrl, ANY),
    key("method", Ty::Method, ANY),
    key("headers", Ty::Headers, ANY),
];

/// `[notify]`: delivery settings (config/notify.rs).
pub(super) const NOTIFY: &[Key] = &[
    key("group_wait", Ty::Duration, ANY),
    key("retry_min", Ty::Duration, ANY),
    key("retry_max", Ty::Duration, ANY),
];

/// `[[channel]]`: every kind's keys; config/notify.rs checks which kind takes which.
pub(super) const CHANNEL: &[Key] = &[
    key("id", Ty::Id, ANY),
    key("kind", Ty::Str, ANY),
    key("timeout", Ty::Duration, ANY),
    key("url", Ty::HttpUrl, ANY),
    key("secret", Ty::Str, ANY),
    key("headers", Ty::Headers, ANY),
    key("smtp", Ty::HostPort, ANY),
    key("tls", Ty::Str, ANY),
    key("username", Ty::Str, ANY),
    key("password", Ty::Str, ANY),
    key("from", Ty::Str, ANY),
    key("to", Ty::List, ANY),
    key("command", Ty::Command, ANY),
];

/// `[[rule]]`.
pub(super) const RULE: &[Key] = &[
    key("targets", Ty::List, ANY),
    key("groups", Ty::List, ANY),
    key("on", Ty::List, ANY),
    key("channels", Ty::List, ANY),
    key("repeat", Ty::Duration, ANY),
    key("repeat_max", Ty::Duration, ANY),
];

/// `[[maintenance]]`: one-off (from, until) or recurring (schedule, duration, timezone).
pub(super) const MAINTENANCE: &[Key] = &[
    key("id", Ty::Str, ANY),
    key("targets", Ty::List, ANY),
    key("groups", Ty::List, ANY),
    key("from", Ty::Str, ANY),
    key("until", Ty::Str, ANY),
    key("schedule", Ty::Cron, ANY),
    key("timezone", Ty::TimeZone, ANY),
    key("duration", Ty::Duration, ANY),
];

pub(super) const DETECTOR: &[Key] = &[
    key("kind", Ty::Str, ANY),
    key("threshold", Ty::Number, ANY),
    key("max_samples", Ty::Count, ANY),
    key("min_std_dev", Ty::Duration, ANY),
    key("acceptable_pause", Ty::Duration, ANY),
];
