//! The validated load balancer configuration: plain data `vitals lb` runs from. Every value
//! here has passed every check and defaults are filled in.
//!
//! Not here: TOML, spans or errors (see the parent module), or anything that runs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use vitals_core::machine::Thresholds;

use crate::Cadence;

/// Built-in defaults, documented in docs/LB.md.
pub mod defaults {
    use std::time::Duration;

    pub const ADMIN_PORT: u16 = 9901;
    /// nginx allows 4 × 8 KiB of request headers; a little more is kind to big cookies.
    pub const MAX_HEADER_BYTES: usize = 32 * 1024;
    pub const HEALTH_PATH: &str = "/readyz";
    /// Below this share of healthy backends, spread over all of them (Envoy's default).
    pub const PANIC_THRESHOLD: f64 = 50.0;
    pub const SLOW_START: Duration = Duration::ZERO;
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    /// Retries may add at most this share of load (linkerd's retry ratio).
    pub const RETRY_BUDGET: f64 = 20.0;
    /// Retries allowed per second however few requests there are, so that a quiet pool can
    /// still ride out one dead backend (linkerd's min retries per second).
    pub const RETRY_MIN_PER_SECOND: u32 = 10;
    pub const CONSECUTIVE_FAILURES: u32 = 5;
    pub const BASE_EJECTION: Duration = Duration::from_secs(30);
    pub const MAX_EJECTION_PERCENT: f64 = 50.0;
    /// Request bodies up to this size are kept so that the request can be retried.
    pub const RETRY_BODY_BYTES: usize = 64 * 1024;
    /// HTTP/2 streams one client connection may have open at once (HAProxy's
    /// `tune.h2.max-concurrent-streams` is 100, nginx's `http2_max_concurrent_streams` 128).
    pub const MAX_CONCURRENT_STREAMS: u32 = 100;
}

/// Everything `vitals lb` runs from.
#[derive(Debug, Clone, PartialEq)]
pub struct LbConfig {
    pub admin: Admin,
    /// At least one.
    pub listeners: Vec<Listener>,
    /// At least one; ids unique; every listener names one of them.
    pub pools: Vec<Pool>,
}

/// The admin API: state, drain/undrain, `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    /// Default 127.0.0.1:9901.
    pub listen: SocketAddr,
    /// Drain and undrain need `Authorization: Bearer <token>`. Without one they are taken
    /// only on a loopback `listen`.
    pub token: Option<String>,
    /// Host names the admin API answers to, besides IP addresses and `localhost` (a
    /// request naming another host is refused: DNS rebinding).
    pub hosts: Vec<String>,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, defaults::ADMIN_PORT)),
            token: None,
            hosts: Vec::new(),
        }
    }
}

/// An IP network, `10.0.0.0/8` or one address (`127.0.0.1` is `127.0.0.1/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    /// Leading bits that must match: at most 32 for IPv4, 128 for IPv6.
    pub prefix: u8,
}

impl IpNet {
    /// Reads `10.0.0.0/8`, `::1`, `fd00::/8`; `None` if it is not one.
    pub fn parse(text: &str) -> Option<IpNet> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, bits)) => (addr.parse::<IpAddr>().ok()?, Some(bits.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// One listening socket (HTTP/1.1 and HTTP/2, over TLS when it has certificates) and the
/// pool it sends to.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub listen: SocketAddr,
    pub pool: String,
    /// Requests with more header bytes than this get 431 (HTTP/1.1); an HTTP/2 header list
    /// larger than this is refused too.
    pub max_header_bytes: usize,
    /// Peers whose `X-Forwarded-For` is kept (and appended to): proxies in front of the
    /// balancer. From anyone else the header is replaced by the peer's address.
    pub trusted_proxies: Vec<IpNet>,
    /// PEM files, each a certificate chain and its private key (or the key in the same
    /// name plus `.key`, as HAProxy's `crt`). Empty: plain TCP. The first one is the
    /// default; the others are chosen by the name the client asks for (SNI).
    pub tls_certificates: Vec<PathBuf>,
    /// HTTP/2 streams one connection may have open at once.
    pub max_concurrent_streams: u32,
}

/// How the balancer speaks to a pool's backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1, keep-alive.
    Http1,
    /// HTTP/2 (prior knowledge over TCP; over TLS too, where ALPN offers only h2).
    Http2,
}

impl Protocol {
    pub const NAMES: [&'static str; 2] = ["http1", "h2"];
}

/// TLS to a pool's backends (HAProxy's `ssl verify required ca-file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendTls {
    /// The CA certificates (PEM) backends' certificates must chain to; none: the system's.
    pub ca_file: Option<PathBuf>,
    /// The name asked for (SNI) and verified; none: the backend's IP address.
    pub server_name: Option<String>,
}

/// How a pool picks a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Smooth weighted round robin (nginx's).
    RoundRobin,
    /// The less loaded (in-flight requests over weight) of two backends picked at random.
    LeastRequests,
}

impl Balance {
    pub const ALL: [Balance; 2] = [Balance::RoundRobin, Balance::LeastRequests];

    pub fn name(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round_robin",
            Balance::LeastRequests => "least_requests",
        }
    }
}

/// Passive health checking from real traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct Outlier {
    /// Connect errors, resets, timeouts or 5xx in a row that eject a backend; 0 turns
    /// ejection off.
    pub consecutive_failures: u32,
    /// The n-th ejection lasts n × this (until a passing active check ends it sooner).
    pub base_ejection: Duration,
    /// At most this share of the pool is ejected at once (but one backend always may be).
    pub max_ejection_percent: f64,
}

impl Default for Outlier {
    fn default() -> Self {
        Outlier {
            consecutive_failures: defaults::CONSECUTIVE_FAILURES,
            base_ejection: defaults::BASE_EJECTION,
            max_ejection_percent: defaults::MAX_EJECTION_PERCENT,
        }
    }
}

/// A group of interchangeable backends.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// Target id syntax; unique.
    pub id: String,
    pub balance: Balance,
    /// Path of each backend's readiness endpoint, starting with `/` (HTTP checks).
    pub health_path: String,
    /// How backends are checked: HTTP GET of `health_path`, or gRPC health.
    pub health_check: HealthCheck,
    pub schedule: Cadence,
    pub thresholds: Thresholds,
    /// Percent (0–100) of backends that must be in rotation; below it, traffic spreads over
    /// every backend not drained.
    pub panic_threshold: f64,
    /// A backend back in rotation ramps up its weight over this long; zero turns it off.
    pub slow_start: Duration,
    pub connect_timeout: Duration,
    /// How long one try may wait for the response's headers.
    pub request_timeout: Duration,
    /// Percent (0–100) of extra load retries may add.
    pub retry_budget: f64,
    pub retry_min_per_second: u32,
    /// Methods retried besides GET, HEAD, PUT, DELETE and OPTIONS (upper case).
    pub idempotent_methods: Vec<String>,
    pub outlier: Outlier,
    /// How requests go to backends.
    pub protocol: Protocol,
    /// TLS to backends, when set.
    pub tls: Option<BackendTls>,
    /// At least one; addresses unique.
    pub backends: Vec<Backend>,
}

/// How a pool checks its backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck {
    /// GET `health_path`: 2xx passes, 503 drains.
    Http,
    /// `grpc.health.v1.Health/Check` of `service`: SERVING passes, NOT_SERVING drains.
    Grpc { service: String },
}

impl HealthCheck {
    pub const NAMES: [&'static str; 2] = ["http", "grpc"];
}

/// One instance of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    /// Its name in the admin API and metrics: `id` if set, else the address.
    pub name: String,
    pub address: SocketAddr,
    /// 1 to 1000.
    pub weight: u32,
}
