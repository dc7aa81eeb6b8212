//! The monitor's tables: `[server]`, `[retention]`, `[defaults]`, `[[target]]` and the tables
//! nested in a target (`failures_in_window`, `flap`, `detector`, `recover`).
//!
//! Not here: the alerting sections (`notify`), the load balancer's tables (`lb`).

use super::typed::{HoldsDefaults, TypedKey, Untyped};
use super::*;

schema! {
    /// `[server]`.
    server (SERVER) {
        LISTEN: SocketAddr = "listen";
        UDP_LISTEN: SocketAddr = "udp_listen";
        DATA_DIR: Path = "data_dir";
        STORE: Str = "store";
        API_TOKEN: Token = "api_token";
        READ_TOKEN: Token = "read_token";
        PING_BODY_LIMIT: Bytes = "ping_body_limit";
        MAX_CONCURRENCY: Count = "max_concurrency";
        UDP_MAX_SKEW: Duration = "udp_max_skew";
        AGENT_CHECK_LISTEN: SocketAddr = "agent_check_listen";
        CANARIES: List = "canaries";
        PUBLIC_URL: HttpUrl = "public_url";
        MAX_CONNECTIONS: Count = "max_connections";
        PING_RATE: Count = "ping_rate";
        PING_BYTES_PER_TARGET: Bytes = "ping_bytes_per_target";
        DRAIN_DELAY: Duration = "drain_delay";
    }

    /// `[[discovery]]`: where targets are found, and how often; its `target` table is a
    /// `[[target]]` template, read by `discovery`.
    discovery (DISCOVERY) {
        NAME: Id = "name";
        FILE_SD: Path = "file_sd";
        DNS: Str = "dns";
        TYPE: Str = "type";
        PORT: Count = "port";
        NAMESERVER: SocketAddr = "nameserver";
        REFRESH: Duration = "refresh";
    }

    /// `[retention]`.
    retention (RETENTION) {
        RAW_DAYS: Count = "raw_days";
        ROLLUP_DAYS: Count = "rollup_days";
    }

    /// `[defaults]`: the schedule and thresholds every target (and pool) inherits.
    defaults (DEFAULTS) {
        INTERVAL: Duration = "interval";
        TIMEOUT: Duration = "timeout";
        JITTER: Duration = "jitter";
        INTERVAL_CHANGING: Duration = "interval_changing";
        INTERVAL_DOWN: Duration = "interval_down";
        FALL: Count = "fall";
        RISE: Count = "rise";
        DOWN_AFTER: Count = "down_after";
        FAILURES_IN_WINDOW: Window = "failures_in_window";
        FLAP: Flap = "flap";
    }

    /// `[[target]]`. Its schedule and threshold keys are `[defaults]`' again, for the kinds
    /// they belong to; code reads them as `defaults::INTERVAL.within::<target::Table>()`
    /// (through `inherit`), so their own constants go unused.
    target (TARGET) {
        // Every kind.
        ID: Id = "id";
        KIND: Str = "kind";
        NAME: Str = "name";
        GROUP: Str = "group";
        TAGS: List = "tags";
        DEPENDS_ON: List = "depends_on";
        #[allow(dead_code, reason = "read as `defaults::X.within()`")]
        FALL: Count = "fall";
        #[allow(dead_code, reason = "read as `defaults::X.within()`")]
        RISE: Count = "rise";
        #[allow(dead_code, reason = "read as `defaults::X.within()`")]
        DOWN_AFTER: Count = "down_after";
        #[allow(dead_code, reason = "read as `defaults::X.within()`")]
        FAILURES_IN_WINDOW: Window = "failures_in_window";
        #[allow(dead_code, reason = "read as `defaults::X.within()`")]
        FLAP: Flap = "flap";
        RECOVER: Recover = "recover";
        // Probed targets: a heartbeat's rhythm is its sender's, set by period or schedule.
        #[allow(dead_code, reason = "read as `defaults::X.within()`")]
        INTERVAL: Duration = "interval" for ACTIVE;
        #[allow(dead_code, reason = "read as `defaults::X.within()`")]
        TIMEOUT: Duration = "timeout" for ACTIVE;
        #[allow(dead_code, reason = "read as `defaults::X.within()`")]
        JITTER: Duration = "jitter" for ACTIVE;
        #[allow(dead_code, reason = "read as `defaults::X.within()`")]
        INTERVAL_CHANGING: Duration = "interval_changing" for ACTIVE;
        #[allow(dead_code, reason = "read as `defaults::X.within()`")]
        INTERVAL_DOWN: Duration = "interval_down" for ACTIVE;
        // What to look at. `url` is one key with a type per kind: each constant reads it.
        URL: HttpUrl = "url" for HTTP | VITALS;
        POSTGRES_URL: PostgresUrl = "url" for POSTGRES;
        REDIS_URL: RedisUrl = "url" for REDIS;
        ADDRESS: HostPort = "address" for TCP | GRPC;
        COMMAND: Command = "command" for EXEC;
        // HTTP.
        METHOD: Method = "method" for HTTP;
        HEADERS: Headers = "headers" for HTTP;
        EXPECT_STATUS: StatusRange = "expect_status" for HTTP;
        BODY_CONTAINS: Str = "body_contains" for HTTP;
        JSON_PATH: Str = "json_path" for HTTP;
        JSON_EQUALS: Json = "json_equals" for HTTP;
        WARN_OVER: Duration = "warn_over" for HTTP;
        // gRPC health checking.
        SERVICE: Str = "service" for GRPC;
        TLS: Bool = "tls" for GRPC;
        TLS_CA_CERT: Path = "tls_ca_cert" for GRPC;
        TLS_SERVER_NAME: Str = "tls_server_name" for GRPC;
        TLS_INSECURE_SKIP_VERIFY: Bool = "tls_insecure_skip_verify" for GRPC;
        // Heartbeats.
        PING_ID: PingId = "ping_id" for HEARTBEAT;
        PERIOD: Duration = "period" for HEARTBEAT;
        SCHEDULE: Cron = "schedule" for HEARTBEAT;
        TIMEZONE: TimeZone = "timezone" for HEARTBEAT;
        GRACE: Duration = "grace" for HEARTBEAT;
        DETECTOR: Detector = "detector" for HEARTBEAT;
        UDP_KEY: HexKey = "udp_key" for HEARTBEAT;
        PING_KEY: Token = "ping_key" for HEARTBEAT;
        PUBLIC_PING_ID: Bool = "public_ping_id" for HEARTBEAT;
        CONFIRM: ConfirmUrl = "confirm" for HEARTBEAT | HTTP | TCP | GRPC | VITALS;
    }

    /// `failures_in_window = { failures = 3, of_last = 10 }`.
    window (WINDOW) {
        FAILURES: Count = "failures";
        OF_LAST: Count = "of_last";
    }

    /// `flap = { transitions = 8, within = "10m" }`.
    flap (FLAP) {
        TRANSITIONS: Count = "transitions";
        WITHIN: Duration = "within";
    }

    /// `[target.recover]`; its `http` table is `recover_http`.
    recover (RECOVER) {
        COMMAND: Command = "command";
        MAX_ATTEMPTS: Count = "max_attempts";
        WINDOW: Duration = "window";
        BACKOFF: Duration = "backoff";
        BACKOFF_MAX: Duration = "backoff_max";
        RESET_AFTER: Duration = "reset_after";
        TIMEOUT: Duration = "timeout";
        TRUST_UNAUTHENTICATED_PINGS: Bool = "trust_unauthenticated_pings";
    }

    /// `[target.recover]`'s `http = { url = "…", method = "POST" }`.
    recover_http (RECOVER_HTTP) {
        URL: HttpUrl = "url";
        METHOD: Method = "method";
        HEADERS: Headers = "headers";
    }

    /// `detector = { kind = "phi", threshold = 8, … }`.
    detector (DETECTOR) {
        KIND: Str = "kind";
        THRESHOLD: Number = "threshold";
        MAX_SAMPLES: Count = "max_samples";
        MIN_STD_DEV: Duration = "min_std_dev";
        ACCEPTABLE_PAUSE: Duration = "acceptable_pause";
    }
}

impl HoldsDefaults for defaults::Table {}
impl HoldsDefaults for target::Table {}

/// The `[recover]` table's `http` key: a table of its own (`recover_http`), read apart from
/// the flat keys.
pub const RECOVER_HTTP_TABLE: &str = "http";

/// Keys of the thresholds, shared by `[defaults]` and every target.
pub const THRESHOLD_KEYS: [TypedKey<defaults::Table, Untyped>; 5] = [
    defaults::FALL.untyped(),
    defaults::RISE.untyped(),
    defaults::DOWN_AFTER.untyped(),
    defaults::FAILURES_IN_WINDOW.untyped(),
    defaults::FLAP.untyped(),
];

/// The keys a kind must have, beyond `id` and `kind`.
pub fn required(kind: Kind) -> &'static [TypedKey<target::Table, Untyped>] {
    match kind {
        Kind::Http | Kind::Vitals => const { &[target::URL.untyped()] },
        Kind::Postgres => const { &[target::POSTGRES_URL.untyped()] },
        Kind::Redis => const { &[target::REDIS_URL.untyped()] },
        Kind::Tcp | Kind::Grpc => const { &[target::ADDRESS.untyped()] },
        Kind::Exec => const { &[target::COMMAND.untyped()] },
        // Period or schedule, exactly one: checked with the pair.
        Kind::Heartbeat => &[],
    }
}
