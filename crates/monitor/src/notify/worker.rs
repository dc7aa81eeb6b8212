//! The delivery worker of one channel: claims due outbox rows, delivers them in order,
//! marks them delivered, and on failure reschedules the row with exponential backoff and
//! waits. One worker per channel, so a channel that stays down holds up only itself.
//!
//! A row the channel refused for good (a 4xx other than 408 and 429, an alert that cannot
//! be sent as it is) or that failed the channel's `max_attempts` is dead-lettered: kept in
//! the outbox with its last error, never tried again, and the rows behind it go on (issue
//! 11, item 11). One bad alert no longer holds its channel for ever.
//!
//! What this is not: a policy. It delivers whatever the outbox holds for its channel.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::channel::Sender;
use super::counts::{Delivery, DeliveryCounts};
use crate::store::{OutboxRow, Store, StoreError};

/// Rows claimed per pass.
const BATCH: usize = 32;
/// How long a claim lasts: longer than any attempt (a channel's timeout), so that only a
/// worker that died mid-attempt loses its claim.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// How long to wait before trying again when the store itself fails.
const STORE_RETRY: Duration = Duration::from_secs(5);

/// The wait before retry number `attempts` (1 for the first retry): `min * 2^(attempts-1)`,
/// at most `max`.
pub fn backoff(attempts: u32, min: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(31));
    min.saturating_mul(factor).min(max)
}

#[derive(Debug)]
pub(super) struct Worker {
    pub(super) sender: Sender,
    pub(super) store: Arc<Store>,
    pub(super) wake: Arc<Notify>,
    pub(super) retry_min: Duration,
    pub(super) retry_max: Duration,
    pub(super) counts: Arc<DeliveryCounts>,
    /// Cancelled by [`Notifier::shutdown`](super::Notifier::shutdown): stop between attempts.
    pub(super) stop: CancellationToken,
}

impl Worker {
    pub(super) async fn run(self) {
        let id = self.sender.channel.id.clone();
        while !self.stop.is_cancelled() {
            let wait = match self.pass().await {
                Ok(wait) => wait,
                Err(error) => {
                    tracing::error!(channel = %id, %error, "outbox unavailable; retrying");
                    Some(STORE_RETRY)
                }
            };
            match wait {
                Some(wait) => {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.wake.notified() => {}
                        () = self.stop.cancelled() => {}
                    }
                }
                None => {
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = self.stop.cancelled() => {}
                    }
                }
            }
        }
    }

    /// Delivers what is due; returns how long to wait for the next due row (`None`: until
    /// woken).
    async fn pass(&self) -> Result<Option<Duration>, String> {
        let channel = self.sender.channel.id.clone();
        let lease = self.sender.channel.timeout + LEASE_MARGIN;
        loop {
            let rows = self
                .blocking({
                    let channel = channel.clone();
                    move |s| s.outbox_claim(&channel, SystemTime::now(), lease, BATCH)
                })
                .await?;
            if rows.is_empty() {
                break;
            }
            let mut rows = rows.into_iter();
            while let Some(row) = rows.next() {
                if self.stop.is_cancelled() {
                    // Shutting down: give back what was not tried, untouched.
                    let rest: Vec<i64> =
                        std::iter::once(row.id).chain(rows.map(|r| r.id)).collect();
                    self.blocking(move |s| s.outbox_release(&rest)).await?;
                    return Ok(None);
                }
                if let Some(wait) = self.deliver(&row).await? {
                    // The channel is failing: give the rest back untouched and end the pass
                    // until the failed row's backoff is over, so that it goes first again
                    // and the rows keep their order.
                    let rest: Vec<i64> = rows.map(|r| r.id).collect();
                    self.blocking(move |s| s.outbox_release(&rest)).await?;
                    return Ok(Some(wait));
                }
            }
        }
        let next = self.blocking(move |s| s.outbox_next_due(&channel)).await?;
        Ok(next.map(|at| {
            at.duration_since(SystemTime::now())
                .unwrap_or_default()
                // Whole milliseconds in the store: never wake a hair too early and spin.
                .saturating_add(Duration::from_millis(1))
        }))
    }

    /// One attempt: `Ok(None)` when the row is done with (accepted, or dead-lettered), else
    /// how long until the row's next attempt.
    async fn deliver(&self, row: &OutboxRow) -> Result<Option<Duration>, String> {
        let id = row.id;
        let attempts = row.attempts.saturating_add(1);
        match self.sender.deliver(row).await {
            Ok(()) => {
                tracing::info!(channel = %row.channel, key = %row.key, attempts, "alert delivered");
                self.blocking(move |s| s.outbox_delivered(id, SystemTime::now()))
                    .await?;
                self.counts.add(&row.channel, Delivery::Delivered);
                Ok(None)
            }
            Err(failure) => {
                let max = self.sender.channel.max_attempts;
                let out_of_attempts = max > 0 && attempts >= max;
                if failure.permanent || out_of_attempts {
                    let why = if failure.permanent {
                        "refused for good".to_owned()
                    } else {
                        format!("{attempts} attempts failed")
                    };
                    let error = format!("dead letter ({why}): {}", failure.message);
                    tracing::error!(channel = %row.channel, key = %row.key, attempts, %error, "alert dead-lettered; the rows behind it go on");
                    self.blocking(move |s| s.outbox_dead(id, SystemTime::now(), &error))
                        .await?;
                    self.counts.add(&row.channel, Delivery::DeadLetter);
                    return Ok(None);
                }
                let wait = backoff(attempts, self.retry_min, self.retry_max);
                let error = failure.message;
                tracing::warn!(channel = %row.channel, key = %row.key, attempts, retry_in = ?wait, %error, "alert delivery failed");
                let due = SystemTime::now() + wait;
                self.blocking(move |s| s.outbox_retry(id, due, &error))
                    .await?;
                self.counts.add(&row.channel, Delivery::Failed);
                Ok(Some(wait))
            }
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, String> {
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(e) => Err(format!("an outbox query panicked: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_minimum_to_the_cap() {
        let min = Duration::from_secs(1);
        let max = Duration::from_secs(300);
        let waits: Vec<u64> = (1..=11).map(|n| backoff(n, min, max).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(u32::MAX, min, max), max);
    }
}
