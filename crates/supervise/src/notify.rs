//! systemd's notifications for `vitals supervise` under `Type=notify`: `READY=1` once the
//! child is first ready, `STATUS=` with what the supervisor says about the child,
//! `STOPPING=1` when the supervisor is asked to stop, and `WATCHDOG=1` every half of
//! `WATCHDOG_USEC` for as long as the supervisor's loop publishes (the supervisor restarts a
//! wedged child itself; systemd's watchdog watches the supervisor). The sending is the
//! library's ([`vitals::systemd::Notifier`]); only what to say is here.

use tokio::sync::watch;
use vitals::systemd::{Notifier, Watchdog};

use crate::driver::Published;

/// What systemd was told so far; [`Told::update`] is the message for a new view, if any.
#[derive(Debug, Default)]
pub(crate) struct Told {
    ready: bool,
    stopping: bool,
    status: String,
}

impl Told {
    pub(crate) fn update(&mut self, published: &Published) -> Option<String> {
        let view = &published.view;
        let mut lines = Vec::new();
        if view.ready && !self.ready && !self.stopping {
            self.ready = true;
            lines.push("READY=1".to_string());
        }
        if view.shutting_down && !self.stopping {
            self.stopping = true;
            lines.push("STOPPING=1".to_string());
        }
        let status = format!(
            "child {}: {} (restarts: {})",
            view.phase, view.reason, view.restarts
        );
        if status != self.status {
            lines.push(format!("STATUS={status}"));
            self.status = status;
        }
        (!lines.is_empty()).then(|| lines.join("\n"))
    }
}

/// Tell systemd about every view published, when `NOTIFY_SOCKET` is set. The task ends
/// once the sender is dropped and the last view has been told: await it before exiting, so
/// that `STOPPING=1` is not lost to a quick exit.
pub(crate) fn start_from_env(
    published: watch::Receiver<Published>,
) -> Option<tokio::task::JoinHandle<()>> {
    match Notifier::from_env() {
        Ok(Some(notifier)) => Some(tokio::spawn(tell(
            notifier,
            published,
            Watchdog::from_env(),
        ))),
        Ok(None) => None,
        Err(error) => {
            tracing::warn!(%error, "not notifying systemd");
            None
        }
    }
}

async fn tell(
    notifier: Notifier,
    mut published: watch::Receiver<Published>,
    mut watchdog: Watchdog,
) {
    let mut told = Told::default();
    loop {
        let message = told.update(&published.borrow_and_update());
        if let Some(message) = message {
            send(&notifier, &message).await;
        }
        tokio::select! {
            changed = published.changed() => if changed.is_err() { return },
            () = watchdog.tick() => send(&notifier, "WATCHDOG=1").await,
        }
    }
}

async fn send(notifier: &Notifier, message: &str) {
    if let Err(error) = notifier.send(message).await {
        tracing::warn!(%error, "could not notify systemd");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::View;

    fn at(phase: &'static str, ready: bool, shutting_down: bool, reason: &str) -> Published {
        Published {
            view: View {
                phase,
                ready,
                shutting_down,
                reason: reason.to_string(),
                restarts: 0,
                last_exit: None,
            },
            pid: None,
        }
    }

    #[test]
    fn ready_once_stopping_once_status_on_change() {
        let mut told = Told::default();
        let starting = at("starting", false, false, "startup probe has not passed yet");
        assert_eq!(
            told.update(&starting).as_deref(),
            Some("STATUS=child starting: startup probe has not passed yet (restarts: 0)")
        );
        assert_eq!(told.update(&starting), None);
        let ready = at("running", true, false, "readiness probe passes");
        assert_eq!(
            told.update(&ready).as_deref(),
            Some("READY=1\nSTATUS=child running: readiness probe passes (restarts: 0)")
        );
        let unready = at("running", false, false, "readiness probe fails: HTTP 503");
        assert!(told.update(&unready).is_some_and(|m| !m.contains("READY")));
        assert!(told.update(&ready).is_some_and(|m| !m.contains("READY")));
        let stopping = at("stopping", false, true, "stopping: received SIGTERM");
        assert!(
            told.update(&stopping)
                .is_some_and(|m| m.starts_with("STOPPING=1\nSTATUS="))
        );
    }
}
