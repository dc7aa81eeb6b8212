//! [`Verifier`]: the sans-IO judge of UDP heartbeats. It holds each source's key and replay
//! window and turns one datagram plus the receiver's clock into a [`Beat`] or a [`Reject`].
//!
//! Not here: sockets, channels, counters (see the listener) or what a beat means for a target
//! (the engine feeds it to the target's failure detector). Time is an argument, so every rule
//! is tested without a clock.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use hmac::Mac;
use vitals_core::Status;

use super::window::ReplayWindow;
use super::wire::{self, HmacSha256};

/// How far the sender's clock may be from the receiver's before a datagram is stale.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(30);

/// One authenticated, fresh, first-seen heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beat {
    /// The target index given to [`Verifier::add_source`] for the datagram's id.
    pub target: usize,
    /// The status the sender reports about itself.
    pub status: Status,
    /// The sender's sequence number.
    pub seq: u64,
    /// The sender's clock when it sent the datagram, Unix milliseconds.
    pub sent_ms: u64,
}

/// Why a datagram was dropped. [`Reject::reason`] is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reject {
    /// Not shaped like a version-1 heartbeat; the text says exactly how.
    #[error("malformed datagram: {0}")]
    Malformed(&'static str),
    /// Well formed, but no source has this id.
    #[error(
        "unknown source id; add the id and its key to the monitor's config, or fix the sender's id"
    )]
    UnknownSource,
    /// The MAC does not match the key configured for the id.
    #[error("bad mac; the sender's key differs from the one configured for this id")]
    BadMac,
    /// Authentic, but its sequence number was seen, or is too far below the highest seen.
    #[error(
        "replayed sequence number; a sender must use a new, growing sequence number for every datagram, across its restarts too (start from the clock in nanoseconds)"
    )]
    Replayed,
    /// Authentic, but the sender's time is further than the maximum skew from the receiver's.
    #[error(
        "stale time; the sender's clock is too far from the monitor's: synchronize it (NTP) or raise the maximum skew"
    )]
    Stale,
}

impl Reject {
    /// Every reason label, in a fixed order (the order of [`super::Counters`]' fields).
    pub const REASONS: [&'static str; 5] = [
        "malformed",
        "unknown_source",
        "bad_mac",
        "replayed",
        "stale",
    ];

    /// The metric label: `malformed`, `unknown_source`, `bad_mac`, `replayed` or `stale`.
    pub fn reason(&self) -> &'static str {
        match self {
            Reject::Malformed(_) => "malformed",
            Reject::UnknownSource => "unknown_source",
            Reject::BadMac => "bad_mac",
            Reject::Replayed => "replayed",
            Reject::Stale => "stale",
        }
    }
}

/// Why [`Verifier::add_source`] refused a source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddSourceError {
    /// The id breaks the id rules.
    #[error(
        "udp source id {id:?} is invalid: {reason}; ids are 1 to 64 characters of A-Z a-z 0-9 _ . -"
    )]
    InvalidId {
        /// The id as given.
        id: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// Another source already has this id.
    #[error("udp source id {id:?} is configured twice; give each source its own id")]
    DuplicateId {
        /// The id.
        id: String,
    },
    /// The key is shorter than [`super::MIN_KEY_LEN`].
    #[error(
        "key of udp source {id:?} is {len} bytes; use at least 16 random bytes (32 recommended, e.g. `openssl rand -hex 32`)"
    )]
    KeyTooShort {
        /// The id.
        id: String,
        /// The key's length in bytes.
        len: usize,
    },
}

/// What the verifier knows about one id.
struct Source {
    target: usize,
    /// HMAC state with the key already absorbed; cloned for every datagram.
    mac: HmacSha256,
    window: ReplayWindow,
}

/// Verifies heartbeat datagrams: shape, key, MAC, time, replay, in that order.
///
/// Replay state is in memory only. After a monitor restart every window is empty, so a
/// captured datagram could be accepted once more; the time check bounds that to captures
/// younger than the maximum skew, and the sender's next datagram (a higher sequence number)
/// is accepted as usual. Persisting windows would close that gap at the cost of a write per
/// datagram, which 300,000 heartbeats a second cannot afford.
///
/// `verify` allocates nothing: the id is looked up by borrowed bytes, and the MAC state is a
/// stack copy of the per-source state.
pub struct Verifier {
    max_skew_ms: u64,
    sources: HashMap<Box<[u8]>, Source>,
}

impl fmt::Debug for Verifier {
    // Hand-written so that a debug print can never show key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("max_skew_ms", &self.max_skew_ms)
            .field("sources", &self.sources.len())
            .finish_non_exhaustive()
    }
}

impl Default for Verifier {
    /// A verifier with no sources and [`DEFAULT_MAX_SKEW`].
    fn default() -> Self {
        Verifier::new(DEFAULT_MAX_SKEW)
    }
}

impl Verifier {
    /// A verifier with no sources that rejects datagrams whose sender time is more than
    /// `max_skew` away from the receiver's ([`DEFAULT_MAX_SKEW`] is 30 s).
    pub fn new(max_skew: Duration) -> Self {
        Verifier {
            max_skew_ms: u64::try_from(max_skew.as_millis()).unwrap_or(u64::MAX),
            sources: HashMap::new(),
        }
    }

    /// Adds a source: datagrams carrying `id` and a MAC made with `key` become beats of
    /// `target` (an index the caller chooses, e.g. into its table of targets).
    pub fn add_source(
        &mut self,
        id: &str,
        target: usize,
        key: &[u8],
    ) -> Result<(), AddSourceError> {
        wire::check_id(id.as_bytes()).map_err(|reason| AddSourceError::InvalidId {
            id: id.to_owned(),
            reason,
        })?;
        let mac = wire::keyed_mac(key).ok_or_else(|| AddSourceError::KeyTooShort {
            id: id.to_owned(),
            len: key.len(),
        })?;
        if self.sources.contains_key(id.as_bytes()) {
            return Err(AddSourceError::DuplicateId { id: id.to_owned() });
        }
        self.sources.insert(
            id.as_bytes().into(),
            Source {
                target,
                mac,
                window: ReplayWindow::default(),
            },
        );
        Ok(())
    }

    /// Take over `old`'s replay windows for the ids both know (a reload replaced the
    /// verifier): a datagram accepted before the reload is not accepted again after it.
    pub fn keep_windows(&mut self, old: &mut Verifier) {
        for (id, source) in &mut self.sources {
            if let Some(kept) = old.sources.remove(id) {
                source.window = kept.window;
            }
        }
    }

    /// How many sources are configured.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether no source is configured.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Judges one datagram received when the receiver's wall clock read `now_ms` (Unix
    /// milliseconds).
    ///
    /// The order matters. An unknown id is rejected before any MAC is computed, so a flood of
    /// made-up ids costs a hash lookup each, not an HMAC; this does reveal by timing whether
    /// an id exists, which is harmless because the receiver never answers (there is nothing to
    /// time) and ids travel in clear in every datagram anyway: the key is the secret, not the
    /// id. Time and replay are judged only after the MAC verified, and the replay window is
    /// changed only by a datagram that passed everything else, so forged or stale datagrams
    /// cannot move it.
    pub fn verify(&mut self, datagram: &[u8], now_ms: u64) -> Result<Beat, Reject> {
        let frame = wire::parse(datagram).map_err(Reject::Malformed)?;
        let source = self
            .sources
            .get_mut(frame.id)
            .ok_or(Reject::UnknownSource)?;
        let mut mac = source.mac.clone();
        mac.update(frame.signed);
        // Constant-time comparison of the left 16 bytes of the MAC.
        mac.verify_truncated_left(frame.tag)
            .map_err(|_| Reject::BadMac)?;
        if now_ms.abs_diff(frame.sent_ms) > self.max_skew_ms {
            return Err(Reject::Stale);
        }
        if !source.window.accept(frame.seq) {
            return Err(Reject::Replayed);
        }
        Ok(Beat {
            target: source.target,
            status: frame.status,
            seq: frame.seq,
            sent_ms: frame.sent_ms,
        })
    }
}
