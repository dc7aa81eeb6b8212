//! What one probe request costs inside the process: the router, the snapshot read, the verdict
//! and the rendered body, without sockets. `cargo bench -p vitals --bench probes`.
//!
//! The loopback numbers under load (wrk, side by side with the seed's Flask app) come from
//! `bench/probe-storm.sh`; this isolates the part vitals controls.

use std::hint::black_box;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;
use vitals::probes::from_fn;
use vitals::{Check, Health, Report};

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let health = runtime.block_on(async {
        let mut builder = Health::builder().service_id("bench");
        for name in ["database", "cache", "queue", "memory", "disk"] {
            builder = builder.check(
                Check::new(
                    name,
                    from_fn(|| async { Report::pass().with_output("ok").with_observed(0.4, "ms") }),
                )
                .interval(Duration::from_secs(3600))
                .jitter(Duration::ZERO),
            );
        }
        let health = builder.start().expect("valid checks");
        // Let every check produce its first result.
        tokio::time::sleep(Duration::from_millis(50)).await;
        health
    });
    let router = health.router();
    for path in ["/livez", "/readyz", "/readyz?verbose", "/health"] {
        c.bench_function(&format!("GET {path}"), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let request = Request::get(path).body(Body::empty()).expect("a request");
                    let response = router.clone().oneshot(request).await.expect("infallible");
                    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                        .await
                        .expect("a body");
                    black_box(body)
                })
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
