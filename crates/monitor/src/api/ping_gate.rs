//! Who may ping, and how often: the checks an HTTP ping passes before the engine hears of it
//! (issue 11, items 1 and 2).
//!
//! - A target with a `ping_key` takes only pings that carry it (`?key=` or `X-Ping-Key`),
//!   compared in constant time.
//! - A target with a `udp_key` and no `ping_key` takes no HTTP pings: they would bypass the
//!   key its UDP beats are verified with.
//! - Each ping id may ping `ping_rate` times a minute, in bursts of half a minute's worth (a
//!   token bucket). The key is checked first, so pings without it cannot spend a keyed
//!   target's allowance.
//!
//! Unknown ping ids pass through: the engine answers them 404, as healthchecks.io does; ids
//! are unguessable, so that confirms nothing. The rules take `now` as an argument.
//!
//! What this is not: judging the ping (the engine) or limiting connections (`serve/http.rs`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{Config, TargetKind};

/// Why a ping was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The target has a ping key and the ping did not carry it.
    Key,
    /// The target takes authenticated UDP heartbeats only.
    UdpOnly,
    /// Over the rate; the next ping is accepted after this long.
    Rate(Duration),
}

/// The per-ping-id rules, built once from the configuration (ping ids resolved).
#[derive(Debug, Default)]
pub(crate) struct PingGate {
    doors: HashMap<String, Door>,
}

#[derive(Debug)]
struct Door {
    key: Option<String>,
    udp_only: bool,
    bucket: Option<Mutex<Bucket>>,
}

impl PingGate {
    /// One door per heartbeat target; `config.server.ping_rate` of 0 sets no rate.
    pub(crate) fn new(config: &Config, now: Instant) -> PingGate {
        let rate = config.server.ping_rate;
        let doors = config
            .targets
            .iter()
            .filter_map(|target| match &target.kind {
                TargetKind::Heartbeat(heartbeat) => Some(heartbeat),
                _ => None,
            })
            .filter_map(|heartbeat| {
                let door = Door {
                    key: heartbeat.ping_key.clone(),
                    udp_only: heartbeat.udp_key.is_some() && heartbeat.ping_key.is_none(),
                    bucket: (rate > 0).then(|| Mutex::new(Bucket::per_minute(rate, now))),
                };
                Some((heartbeat.ping_id.clone()?, door))
            })
            .collect();
        PingGate { doors }
    }

    /// This gate, with the rate buckets of ping ids `old` also has carried over (a reload):
    /// a reload hands no sender a fresh burst, and forgets the ids that went.
    pub(crate) fn keeping_buckets(mut self, old: &PingGate) -> PingGate {
        for (ping_id, door) in &mut self.doors {
            let kept = old.doors.get(ping_id).and_then(|old| old.bucket.as_ref());
            if let (Some(bucket), Some(kept)) = (door.bucket.as_mut(), kept) {
                let kept = kept
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let bucket = bucket
                    .get_mut()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if bucket.capacity == kept.capacity {
                    bucket.tokens = kept.tokens;
                    bucket.at = kept.at;
                }
            }
        }
        self
    }

    /// Whether a ping for `ping_id` carrying `key` may go on at `now`.
    pub(crate) fn admit(
        &self,
        ping_id: &str,
        key: Option<&str>,
        now: Instant,
    ) -> Result<(), Refusal> {
        let Some(door) = self.doors.get(ping_id) else {
            return Ok(());
        };
        if let Some(expected) = &door.key {
            if !key.is_some_and(|given| super::same(given, expected)) {
                return Err(Refusal::Key);
            }
        } else if door.udp_only {
            return Err(Refusal::UdpOnly);
        }
        match &door.bucket {
            None => Ok(()),
            // A poisoned lock only means another ping panicked mid-update: the bucket's
            // numbers are still numbers.
            Some(bucket) => bucket
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(now)
                .map_err(Refusal::Rate),
        }
    }
}

/// A token bucket: `capacity` tokens, one more every `every`.
#[derive(Debug)]
struct Bucket {
    capacity: f64,
    tokens: f64,
    every: Duration,
    at: Instant,
}

impl Bucket {
    /// `rate` a minute, bursts of half a minute's worth (at least one).
    fn per_minute(rate: u32, now: Instant) -> Bucket {
        let capacity = f64::from((rate / 2).max(1));
        Bucket {
            capacity,
            tokens: capacity,
            every: Duration::from_secs(60) / rate.max(1),
            at: now,
        }
    }

    /// Spend one token, or say how long until there is one.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at);
        self.at = self.at.max(now);
        self.tokens =
            (self.tokens + elapsed.as_secs_f64() / self.every.as_secs_f64()).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.every.mul_f64(1.0 - self.tokens))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)] // a base for simulated time
    fn base() -> Instant {
        Instant::now()
    }

    fn gate(text: &str, now: Instant) -> PingGate {
        let mut config = crate::config::parse(text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
        crate::ping_ids::resolve(tempfile::tempdir().unwrap().path(), &mut config).unwrap();
        PingGate::new(&config, now)
    }

    #[test]
    fn a_burst_of_half_a_minute_then_the_rate() {
        let start = base();
        let gate = gate(
            "[server]\nping_rate = 60\n[[target]]\nid = \"a\"\nkind = \"heartbeat\"\nperiod = \"1m\"\nping_id = \"a-5f2b\"\n",
            start,
        );
        for _ in 0..30 {
            assert_eq!(gate.admit("a-5f2b", None, start), Ok(()));
        }
        assert_eq!(
            gate.admit("a-5f2b", None, start),
            Err(Refusal::Rate(Duration::from_secs(1)))
        );
        let later = start + Duration::from_millis(1500);
        assert_eq!(gate.admit("a-5f2b", None, later), Ok(()));
        assert!(matches!(
            gate.admit("a-5f2b", None, later),
            Err(Refusal::Rate(_))
        ));
        // Unknown ids pass: the engine answers them.
        assert_eq!(gate.admit("nope", None, later), Ok(()));
        // A long silence refills the burst, no more.
        let much_later = later + Duration::from_secs(3600);
        for _ in 0..30 {
            assert_eq!(gate.admit("a-5f2b", None, much_later), Ok(()));
        }
        assert!(gate.admit("a-5f2b", None, much_later).is_err());
    }

    #[test]
    fn keys_are_checked_before_the_rate_and_udp_targets_refuse_http() {
        let now = base();
        let gate = gate(
            "[server]\nudp_listen = \"127.0.0.1:0\"\nping_rate = 2\n\
             [[target]]\nid = \"keyed\"\nkind = \"heartbeat\"\nperiod = \"1m\"\nping_key = \"0123456789abcdef0123\"\n\
             [[target]]\nid = \"udp\"\nkind = \"heartbeat\"\nperiod = \"1m\"\nudp_key = \"00112233445566778899aabbccddeeff\"\n",
            now,
        );
        for _ in 0..5 {
            assert_eq!(gate.admit("keyed", None, now), Err(Refusal::Key));
            assert_eq!(
                gate.admit("keyed", Some("0123456789abcdef012"), now),
                Err(Refusal::Key)
            );
        }
        assert_eq!(
            gate.admit("keyed", Some("0123456789abcdef0123"), now),
            Ok(())
        );
        assert_eq!(gate.admit("udp", None, now), Err(Refusal::UdpOnly));
    }
}
