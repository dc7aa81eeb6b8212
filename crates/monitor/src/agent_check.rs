//! HAProxy's agent check for the monitor's targets: one TCP port for all of them, where
//! HAProxy's `agent-send "<target-id>\n"` names the target and the reply says how HAProxy
//! should treat it, so a team that keeps HAProxy in front routes on the monitor's verdicts.
//!
//! The replies follow the core state machine's idea of rotation
//! ([`State::is_serving`]): healthy is `up ready 100%`; degraded and failing (one failure
//! seen, given a retry chance) stay up at a reduced weight; unknown, unhealthy, down and
//! recovering (passing again, not yet trusted) are `down ready #<state>`; a paused target or
//! one in maintenance is `maint`; an id the monitor does not know is `down ready #unknown
//! target`. The wire side (reading the line, answering, closing cleanly) is the library's
//! [`vitals::agent_check::serve_with`]; this module is only the mapping. See
//! `docs/AGENT_CHECK.md`.
//!
//! What it is not: it runs no check (it reads the engine's table, like the API) and it takes
//! no orders from HAProxy.

use std::io;
use std::time::SystemTime;

use tokio::net::TcpListener;
use vitals::agent_check::{DEFAULT_DEGRADED_WEIGHT, DEFAULT_TIMEOUT, Reply, Request, serve_with};
use vitals_core::machine::State;

use crate::engine::{Engine, TargetView};

/// Answer HAProxy's agent checks for the targets of `engine` on `listener` until the future
/// is dropped. Returns only on an accept error that no retry can fix.
pub async fn serve(listener: TcpListener, engine: Engine) -> io::Result<()> {
    serve_with(listener, Request::Line, DEFAULT_TIMEOUT, move |id: &str| {
        if id.is_empty() {
            return Reply::Down {
                reason: "no target id: set agent-send \"<target-id>\\n\" on the server line"
                    .to_string(),
            };
        }
        reply(id, engine.view(id).as_ref(), SystemTime::now())
    })
    .await
}

/// The reply for target `id`, seen as `view` (None: no such target) at wall time `now`.
pub fn reply(id: &str, view: Option<&TargetView>, now: SystemTime) -> Reply {
    let Some(view) = view else {
        return Reply::Down {
            reason: format!("unknown target {id:?}"),
        };
    };
    // Flags first: an operator's pause or maintenance says "out on purpose", whatever the
    // checks found meanwhile.
    if view.paused {
        return Reply::Maint {
            reason: "paused".to_string(),
        };
    }
    if view.maintenance_until.is_some_and(|until| until > now) {
        return Reply::Maint {
            reason: "maintenance".to_string(),
        };
    }
    match view.state {
        State::Healthy => Reply::Up { weight: 100 },
        State::Degraded | State::Failing => Reply::Up {
            weight: DEFAULT_DEGRADED_WEIGHT,
        },
        // Only the state: the agent port has no authentication, while check outputs may be
        // behind the API's read token.
        State::Unknown | State::Unhealthy | State::Down | State::Recovering => Reply::Down {
            reason: view.state.as_str().to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use vitals_core::machine::Thresholds;

    use super::*;
    use crate::engine::{Cadence, Mode, Options, TargetSpec, records};

    /// A real view of a real engine's target, to set the fields under test on (so that
    /// fields added to `TargetView` later need no change here).
    async fn base() -> TargetView {
        let probe = vitals_probes::from_fn(|| async { vitals_core::Report::pass() });
        let interval = Duration::from_secs(10);
        let engine = Engine::start(
            vec![TargetSpec {
                id: "api".into(),
                name: "API".into(),
                thresholds: Thresholds::default(),
                mode: Mode::Active {
                    probe: Arc::new(probe),
                    cadence: Cadence {
                        interval,
                        timeout: Duration::from_secs(1),
                        jitter: Duration::ZERO,
                        interval_changing: interval,
                        interval_down: interval,
                    },
                    confirm: None,
                },
            }],
            records(16).0,
            Options::default(),
        );
        engine.view("api").unwrap()
    }

    fn with(view: &TargetView, change: impl FnOnce(&mut TargetView)) -> Option<TargetView> {
        let mut view = view.clone();
        change(&mut view);
        Some(view)
    }

    fn check(view: Option<TargetView>, now: SystemTime, expected: &str) {
        assert_eq!(
            reply("api", view.as_ref(), now).to_string(),
            expected,
            "{view:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn target_states_map_to_agent_replies() {
        let base = base().await;
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for (state, expected) in [
            (State::Healthy, "up ready 100%\n"),
            (State::Degraded, "up ready 50%\n"),
            (State::Failing, "up ready 50%\n"),
            (State::Unknown, "down ready #unknown\n"),
            (State::Unhealthy, "down ready #unhealthy\n"),
            (State::Down, "down ready #down\n"),
            (State::Recovering, "down ready #recovering\n"),
        ] {
            check(with(&base, |view| view.state = state), now, expected);
            // The core's notion of rotation and the reply agree.
            assert_eq!(expected.starts_with("up"), state.is_serving(), "{state:?}");
        }
        check(None, now, "down ready #unknown target \"api\"\n");
    }

    #[tokio::test(start_paused = true)]
    async fn pause_and_maintenance_win_over_the_state() {
        let base = base().await;
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let paused = with(&base, |view| {
            view.state = State::Down;
            view.paused = true;
        });
        check(paused, now, "maint #paused\n");
        let healthy = |until: SystemTime| {
            with(&base, |view| {
                view.state = State::Healthy;
                view.maintenance_until = Some(until);
            })
        };
        check(
            healthy(now + Duration::from_secs(60)),
            now,
            "maint #maintenance\n",
        );
        // A maintenance window that is over no longer counts.
        check(
            healthy(now - Duration::from_secs(1)),
            now,
            "up ready 100%\n",
        );
    }
}
