//! The monitor's HAProxy agent check against the real HAProxy: one agent port for every
//! target, HAProxy naming each with `agent-send`; as a target's state and flags change,
//! HAProxy itself shows its server UP, UP at reduced weight, DOWN and MAINT, and a server
//! naming an unknown target DOWN.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use vitals_core::Report;
use vitals_core::machine::Thresholds;
use vitals_monitor::agent_check;
use vitals_monitor::engine::{Cadence, Engine, Mode, Options, TargetSpec, records};
use vitals_probes::{Probe, from_fn};

use vitals_testkit::Haproxy;

/// A probe whose result the test sets: 0 pass, 1 warn, 2 fail.
fn switch(result: &Arc<AtomicU8>) -> Arc<dyn Probe> {
    let result = Arc::clone(result);
    Arc::new(from_fn(move || {
        let now = result.load(Ordering::SeqCst);
        async move {
            match now {
                0 => Report::pass(),
                1 => Report::warn("slow"),
                _ => Report::fail("connection refused"),
            }
        }
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_routes_on_the_monitors_target_states() {
    let Some(binary) = Haproxy::binary() else {
        return;
    };
    let result = Arc::new(AtomicU8::new(0));
    let fast = Duration::from_millis(100);
    let (records, _stored) = records(1024);
    let engine = Engine::start(
        vec![TargetSpec {
            id: "api".into(),
            name: "API".into(),
            thresholds: Thresholds::default(),
            mode: Mode::Active {
                probe: switch(&result),
                cadence: Cadence {
                    interval: fast,
                    timeout: Duration::from_millis(50),
                    jitter: Duration::ZERO,
                    interval_changing: fast,
                    interval_down: fast,
                },
                confirm: None,
            },
        }],
        records,
        Options::default(),
    );

    // The backend HAProxy's own check connects to: a listener that accepts and hangs up.
    let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    let accepting = tokio::spawn(async move {
        loop {
            let _ = backend.accept().await;
        }
    });
    let agent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_port = agent.local_addr().unwrap().port();
    let answering = tokio::spawn(agent_check::serve(agent, engine.clone()));

    let server = |name: &str, target: &str| {
        format!(
            "server {name} {backend_addr} weight 100 check inter 100ms agent-check \
             agent-addr 127.0.0.1 agent-port {agent_port} agent-send \"{target}\\n\" agent-inter 100ms"
        )
    };
    let haproxy = Haproxy::start(&binary, &[server("api", "api"), server("ghost", "nope")]).await;

    haproxy.wait_for("api", "UP", Some(100)).await;
    haproxy.wait_for("ghost", "DOWN", None).await;
    let (_, _, last_agent) = haproxy.server("ghost").await;
    assert!(last_agent.contains("unknown target"), "{last_agent}");

    // Degraded: in rotation at the reduced weight.
    result.store(1, Ordering::SeqCst);
    haproxy.wait_for("api", "UP", Some(50)).await;

    // Failing, then unhealthy (fall 2): out.
    result.store(2, Ordering::SeqCst);
    haproxy.wait_for("api", "DOWN", None).await;
    let (_, _, last_agent) = haproxy.server("api").await;
    assert!(
        ["unhealthy", "down"]
            .iter()
            .any(|state| last_agent.contains(state)),
        "{last_agent}"
    );

    // Recovering stays out; healthy after rise 2 is back at full weight.
    result.store(0, Ordering::SeqCst);
    haproxy.wait_for("api", "UP", Some(100)).await;

    // An operator's pause and maintenance window: MAINT, and back when they end.
    engine.set_paused("api", true).unwrap();
    haproxy.wait_for("api", "MAINT", None).await;
    engine.set_paused("api", false).unwrap();
    haproxy.wait_for("api", "UP", Some(100)).await;
    engine
        .set_maintenance("api", Some(SystemTime::now() + Duration::from_secs(3600)))
        .unwrap();
    haproxy.wait_for("api", "MAINT", None).await;
    engine.set_maintenance("api", None).unwrap();
    haproxy.wait_for("api", "UP", Some(100)).await;

    answering.abort();
    accepting.abort();
}
