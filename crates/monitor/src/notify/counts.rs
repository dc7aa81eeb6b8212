//! What the delivery workers did, counted for `/metrics`: attempts by channel and result
//! (`delivered`, `failed`, `dead_letter`). Plain counters the scrape reads; nothing here
//! decides anything.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Delivery {
    Delivered,
    /// Failed; the row will be tried again.
    Failed,
    /// Failed for good, or out of attempts: the row is dead-lettered.
    DeadLetter,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::Failed => "failed",
            Delivery::DeadLetter => "dead_letter",
        }
    }
}

/// Attempts by channel and result since the monitor started.
#[derive(Debug, Default)]
pub struct DeliveryCounts {
    counts: Mutex<BTreeMap<(String, Delivery), u64>>,
}

impl DeliveryCounts {
    pub fn add(&self, channel: &str, result: Delivery) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry((channel.to_owned(), result)).or_insert(0) += 1;
    }

    /// Every (channel, result, count) so far.
    pub fn snapshot(&self) -> Vec<(String, Delivery, u64)> {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .iter()
            .map(|((channel, result), n)| (channel.clone(), *result, *n))
            .collect()
    }
}
