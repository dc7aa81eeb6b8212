//! Authenticated UDP heartbeats, for senders that beat often or are many: one small datagram
//! per heartbeat, authenticated with a key per source, with replays, stale times and bad MACs
//! dropped and counted. The format is specified in `docs/PROTOCOL.md` for senders in any
//! language.
//!
//! - [`encode`] builds a datagram (for Rust senders, tests and benchmarks).
//! - [`Verifier`] is the sans-IO judge: shape, key, MAC, time, replay window. Time is an
//!   argument.
//! - [`listen`] is the thin async loop around it: socket in, batches of [`Beat`]s out,
//!   [`Counters`] for `/metrics`.
//!
//! What it is not: a transport for details or logs (a datagram carries a status and nothing
//! else; HTTP pings carry bodies), nor a failure detector (a [`Beat`] is an arrival; the
//! engine feeds it to the target's deadline or phi accrual detector). It does not encrypt:
//! a heartbeat's content is not secret, only its origin must be proved.
//!
//! ```
//! use std::time::Duration;
//! use vitals_core::Status;
//! use vitals_monitor::udp::{Reject, Verifier, encode};
//!
//! let key = b"a 32-byte key shared with sender";
//! let mut verifier = Verifier::new(Duration::from_secs(30));
//! verifier.add_source("billing-api", 7, key)?;
//!
//! let mut datagram = Vec::new();
//! encode("billing-api", 1, 1_767_225_600_000, Status::Pass, key, &mut datagram)?;
//! let beat = verifier.verify(&datagram, 1_767_225_600_250).unwrap();
//! assert_eq!((beat.target, beat.status), (7, Status::Pass));
//! assert_eq!(verifier.verify(&datagram, 1_767_225_600_300), Err(Reject::Replayed));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod listener;
mod verifier;
mod window;
mod wire;

#[cfg(test)]
mod tests;

pub use listener::{Counters, MAX_BATCH, listen, listen_with_updates};
pub use verifier::{AddSourceError, Beat, DEFAULT_MAX_SKEW, Reject, Verifier};
pub use wire::{
    EncodeError, HEADER_LEN, MAGIC, MAX_DATAGRAM, MAX_ID_LEN, MIN_DATAGRAM, MIN_KEY_LEN, TAG_LEN,
    VERSION, encode,
};
