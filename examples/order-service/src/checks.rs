//! The order service's checks, as the seed lists them: the database (critical), the cache
//! (non-critical), the task queue's length (not ready above 10,000), memory and disk.

use std::time::Duration;

use vitals::probes::{Disk, Limits, Memory, Postgres, Redis, Threshold};
use vitals::{Check, Health, Status};

use crate::Args;
use crate::orders::Store;

/// Register the checks and the startup hooks, and start them.
pub(crate) fn register(store: &Store, args: &Args) -> anyhow::Result<Health> {
    let every = |check: Check| {
        check
            .interval(args.check_interval)
            .timeout(args.check_interval.min(Duration::from_secs(2)))
            .jitter(args.check_interval / 10)
    };
    let queue = store.clone();
    let queue_length = Threshold::new(
        "queue length",
        "items",
        Limits::fail_above(10_000.0)?,
        move || {
            let queue = queue.clone();
            async move { queue.queue_length().await }
        },
    )
    .external()
    // A queue it cannot measure (Redis down or hung) degrades, never fails: the cache check
    // already says Redis is down, and a cache outage must not take every replica out of
    // rotation (issue 11, item 9). Warn is the default; said here because it matters.
    .when_unmeasurable(Status::Warn);

    let init_db = store.clone();
    let init_config = store.clone();
    let health = Health::builder()
        .service_id("order-service")
        .version(env!("CARGO_PKG_VERSION"))
        .drain_delay(args.drain_delay)
        // Through the application's own pool: the check sees what requests see.
        .check(
            every(Check::new(
                "database",
                Postgres::from_pool(store.pool().clone()),
            ))
            .startup(),
        )
        .check(every(Check::new("cache", Redis::connect(&args.redis_url)?)).non_critical())
        .check(every(Check::new("queue", queue_length)))
        // The seed fails /health above 90 % memory and 95 % disk. Here they degrade instead
        // of taking every replica out of rotation at once on a shared full disk.
        .check(every(Check::new("memory", Memory::default())).non_critical())
        .check(every(Check::new("disk", Disk::new("/"))).non_critical())
        .on_startup("database", move || {
            let store = init_db.clone();
            async move { store.migrate().await }
        })
        .on_startup("configuration", move || {
            let store = init_config.clone();
            async move { store.load_config().await }
        })
        .start()?;
    Ok(health)
}
