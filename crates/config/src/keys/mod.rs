//! The one place that knows every configuration key: its name, the type of its value, the
//! table it belongs to and which target kinds accept it. Each table is declared once, with
//! `schema!`; the declaration makes both the key list the walker checks a table against
//! ("unknown key, did you mean …") and one typed constant per key, which is the only way the
//! rest of the crate can name a key. `fields.get(target::TIMEOUT)` is a `Duration` because
//! the declaration says so, and `target::TIMOUT` does not compile.
//!
//! The declarations: `monitor` (the monitor's tables), `alerts` (its alerting sections),
//! `lb` (the load balancer's); the machinery: `typed` ([`TypedKey`], [`Section`], the value
//! types).
//!
//! Not here: what a value means once it is read, or how keys relate to each other (timeout
//! against interval, period against schedule). That is `build` and `cross`.
//!
//! docs/CONFIG.md documents every key listed here; keep the two in step.

#[macro_use]
mod schema;
mod alerts;
pub mod lb;
mod monitor;
mod typed;

pub use alerts::{channel, maintenance, notify, rule};
pub use lb::{admin, backend, listener, outlier, pool};
pub use monitor::{
    RECOVER_HTTP_TABLE, THRESHOLD_KEYS, defaults, detector, discovery, flap, recover, recover_http,
    required, retention, server, target, window,
};
pub use typed::{HoldsDefaults, Section, Ty, TypedKey, Untyped, ValueType, ty};

/// The key lists, for tests that go through every key (the walker reaches them through
/// [`Section::KEYS`]).
#[cfg(test)]
pub use alerts::{CHANNEL, MAINTENANCE, NOTIFY, RULE};
#[cfg(test)]
pub use monitor::{
    DEFAULTS, DETECTOR, DISCOVERY, FLAP, RECOVER, RECOVER_HTTP, RETENTION, SERVER, TARGET, WINDOW,
};

/// What a target checks. Its name in TOML is the `kind` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Http,
    Tcp,
    Postgres,
    Redis,
    Exec,
    Vitals,
    Grpc,
    Heartbeat,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Http,
        Kind::Tcp,
        Kind::Postgres,
        Kind::Redis,
        Kind::Exec,
        Kind::Vitals,
        Kind::Grpc,
        Kind::Heartbeat,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Tcp => "tcp",
            Kind::Postgres => "postgres",
            Kind::Redis => "redis",
            Kind::Exec => "exec",
            Kind::Vitals => "vitals",
            Kind::Grpc => "grpc",
            Kind::Heartbeat => "heartbeat",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of kinds, as a bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Kinds(u8);

impl Kinds {
    /// The kinds of a bit mask made of the constants below ([`ANY`], …).
    pub const fn of(mask: u8) -> Kinds {
        Kinds(mask)
    }
}

impl Kinds {
    pub fn contains(self, kind: Kind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Both sets together.
    pub fn union(self, other: Kinds) -> Kinds {
        Kinds(self.0 | other.0)
    }

    /// The kinds' names, in the order of [`Kind::ALL`], for "it is for http or vitals targets".
    pub fn names(self) -> Vec<&'static str> {
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
const GRPC: u8 = 1 << Kind::Grpc as u8;
const HEARTBEAT: u8 = 1 << Kind::Heartbeat as u8;
/// Targets the monitor probes on a schedule (everything but heartbeats).
const ACTIVE: u8 = HTTP | TCP | POSTGRES | REDIS | EXEC | VITALS | GRPC;
/// Every kind: the kinds of every key outside `[[target]]`.
pub const ANY: u8 = ACTIVE | HEARTBEAT;

/// One entry of a table's key list: its name, its type, and the target kinds it belongs to
/// (every kind outside `[[target]]`). A name may appear twice with different types for
/// different kinds (`url`). Made by `schema!`; code names keys by [`TypedKey`].
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    pub ty: Ty,
    pub kinds: Kinds,
}

/// The sections of the file, with the type each must be.
pub const TOP: &[&str] = &[
    "server",
    "retention",
    "defaults",
    "target",
    "notify",
    "channel",
    "rule",
    "maintenance",
    "discovery",
];

#[cfg(test)]
mod tests;
