//! One `Watch` stream: the current status first, then each change.
//!
//! The stream holds no queue. It is a loop that computes the name's status from the latest
//! snapshot and phase when it is polled, yields it if it differs from the last one sent, and
//! otherwise waits for a publish, a phase change or [`RECHECK`](super::RECHECK). A client that
//! stops reading stops the polling (HTTP/2 flow control), so whatever happens meanwhile costs
//! nothing, and when it reads again it gets the status of that moment: memory per stream is
//! constant, as in grpc-go, whose channel of one holds only the latest status.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;
use tonic::Status;

use super::pb::HealthCheckResponse;
use super::pb::health_check_response::ServingStatus;
use super::{RECHECK, Resolved, response, serving};
use crate::health::Health;
use crate::lifecycle::Phase;
use crate::snapshot::Snapshot;

/// The stream a Watch answers with.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

struct Watcher {
    health: Health,
    /// `None`: a name that is not configured (it stays unknown).
    resolved: Option<Resolved>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    phase: watch::Receiver<Phase>,
    last: Option<ServingStatus>,
    /// Returned to the Watch budget when the stream is dropped.
    _permit: OwnedSemaphorePermit,
}

impl Watcher {
    fn current(&mut self) -> ServingStatus {
        let Some(resolved) = self.resolved else {
            return ServingStatus::ServiceUnknown;
        };
        let snapshot = Arc::clone(&self.snapshots.borrow_and_update());
        let phase = self.phase.borrow_and_update().clone();
        serving(&self.health, resolved, &snapshot, &phase, Instant::now())
    }

    fn stopped(&self) -> bool {
        matches!(*self.phase.borrow(), Phase::Stopped)
    }
}

pub(crate) fn stream(
    health: Health,
    resolved: Option<Resolved>,
    permit: OwnedSemaphorePermit,
) -> WatchStream {
    let watcher = Watcher {
        snapshots: health.subscribe(),
        phase: health.subscribe_phase(),
        health,
        resolved,
        last: None,
        _permit: permit,
    };
    Box::pin(futures_util::stream::unfold(watcher, next))
}

/// The next message of the stream, or its end once the server has stopped.
async fn next(mut watcher: Watcher) -> Option<(Result<HealthCheckResponse, Status>, Watcher)> {
    loop {
        let status = watcher.current();
        if watcher.last != Some(status) {
            watcher.last = Some(status);
            return Some((Ok(response(status)), watcher));
        }
        if watcher.stopped() {
            // The drain delay is over: end the call (status OK) so the server can close;
            // clients retry a Watch that ends.
            return None;
        }
        let Watcher {
            snapshots, phase, ..
        } = &mut watcher;
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return None },
            changed = phase.changed() => if changed.is_err() { return None },
            () = tokio::time::sleep(RECHECK) => {}
        }
    }
}
