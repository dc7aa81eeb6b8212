//! The shared servers that `scripts/test` starts once for the whole test run.
//!
//! Most tests only need *a* PostgreSQL or Redis that stays up: they read the URL here instead
//! of paying for a private server. `scripts/test` starts one PostgreSQL (with
//! `pg_stat_statements` loaded) and one Redis on loopback, exports their URLs as
//! `VITALS_TEST_PG_URL` and `VITALS_TEST_REDIS_URL`, runs `cargo test`, and stops both by PID.
//!
//! What it is not: a server a test may stop, restart, pause or count queries on exclusively;
//! other tests run against the same servers at the same time. A test that breaks its server
//! on purpose starts its own [`Postgres`](crate::Postgres) or [`Redis`](crate::Redis).

use crate::Error;
use crate::process::env_nonempty;

const HINT: &str = "run the tests with `scripts/test` (it starts a shared PostgreSQL and \
                    Redis on loopback and sets VITALS_TEST_PG_URL and VITALS_TEST_REDIS_URL), \
                    or set the variable to the URL of a server that stays up";

/// The shared PostgreSQL's URL, from `VITALS_TEST_PG_URL`
/// (e.g. `postgres://postgres@127.0.0.1:PORT/postgres`).
pub fn shared_postgres_url() -> Result<String, Error> {
    read("VITALS_TEST_PG_URL")
}

/// The shared Redis' URL, from `VITALS_TEST_REDIS_URL` (e.g. `redis://127.0.0.1:PORT`).
pub fn shared_redis_url() -> Result<String, Error> {
    read("VITALS_TEST_REDIS_URL")
}

fn read(var: &'static str) -> Result<String, Error> {
    env_nonempty(var)
        .and_then(|v| v.into_string().ok())
        .ok_or(Error::EnvNotSet { var, hint: HINT })
}
