//! The load balancer's tables: `[admin]`, `[[listener]]`, `[[pool]]` (which takes
//! `[defaults]`' keys too), `[pool.outlier]` and `[[pool.backend]]`. `[defaults]` is the
//! monitor's (`monitor`).

use super::monitor::DEFAULTS;
use super::typed::HoldsDefaults;

schema! {
    /// `[admin]`.
    admin (ADMIN) {
        LISTEN: SocketAddr = "listen";
        TOKEN: Token = "token";
        HOSTS: List = "hosts";
    }

    /// `[[listener]]`.
    listener (LISTENER) {
        LISTEN: SocketAddr = "listen";
        POOL: Str = "pool";
        MAX_HEADER_BYTES: Bytes = "max_header_bytes";
        TRUSTED_PROXIES: List = "trusted_proxies";
        TLS_CERTIFICATES: List = "tls_certificates";
        MAX_CONCURRENT_STREAMS: Count = "max_concurrent_streams";
    }

    /// `[[pool]]`: its own keys, and the schedule and thresholds of `[defaults]`; `outlier`
    /// and `backend` are tables read on their own ([`NESTED`]).
    pool (POOL) includes DEFAULTS {
        ID: Id = "id";
        BALANCE: Str = "balance";
        HEALTH_PATH: Str = "health_path";
        HEALTH_CHECK: Str = "health_check";
        GRPC_SERVICE: Str = "grpc_service";
        PANIC_THRESHOLD: Number = "panic_threshold";
        SLOW_START: Duration = "slow_start";
        CONNECT_TIMEOUT: Duration = "connect_timeout";
        REQUEST_TIMEOUT: Duration = "request_timeout";
        RETRY_BUDGET: Number = "retry_budget";
        RETRY_MIN_PER_SECOND: Count = "retry_min_per_second";
        IDEMPOTENT_METHODS: List = "idempotent_methods";
        BACKEND_PROTOCOL: Str = "backend_protocol";
        BACKEND_TLS: Bool = "backend_tls";
        BACKEND_CA_FILE: Path = "backend_ca_file";
        BACKEND_SERVER_NAME: Str = "backend_server_name";
    }

    /// `[pool.outlier]`.
    outlier (OUTLIER) {
        CONSECUTIVE_FAILURES: Count = "consecutive_failures";
        BASE_EJECTION: Duration = "base_ejection";
        MAX_EJECTION_PERCENT: Number = "max_ejection_percent";
    }

    /// `[[pool.backend]]`.
    backend (BACKEND) {
        ADDRESS: SocketAddr = "address";
        ID: Id = "id";
        WEIGHT: Count = "weight";
    }
}

impl HoldsDefaults for pool::Table {}

/// The tables nested in a pool, `[pool.outlier]` and `[[pool.backend]]`, read apart from
/// the pool's plain keys.
pub const NESTED: [&str; 2] = ["outlier", "backend"];

/// The load balancer's sections.
pub const TOP: &[&str] = &["admin", "defaults", "listener", "pool"];
