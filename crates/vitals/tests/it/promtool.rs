//! The library's `/metrics`, after checks that pass, warn and fail, is what Prometheus' own
//! linter accepts (issue 11: `promtool check metrics` passes on every `/metrics`).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::common::Switch;
use vitals::{Check, Health};

#[tokio::test]
async fn the_librarys_metrics_pass_promtool() {
    let (db, cache) = (Switch::default(), Switch::default());
    cache.fail();
    let health = Health::builder()
        .service_id("orders")
        .check(
            Check::new("database", db.probe())
                .interval(Duration::from_millis(50))
                .timeout(Duration::from_millis(50)),
        )
        .check(
            Check::new("cache", cache.probe())
                .non_critical()
                .interval(Duration::from_millis(50))
                .timeout(Duration::from_millis(50)),
        )
        .start()
        .unwrap();
    vitals_testkit::until("both checks ran", Duration::from_secs(10), async || {
        db.runs() > 0 && cache.runs() > 0
    })
    .await;
    let answer = crate::common::get(&health.router(), "/metrics").await;
    assert_eq!(answer.status, 200);
    vitals_testkit::promtool_check(&answer.body);
}
