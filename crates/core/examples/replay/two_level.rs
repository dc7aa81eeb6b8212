//! The two-level detector replayed: a heartbeat detector's suspicion, confirmed by a probe
//! through `vitals_core::Confirmer`.
//!
//! The world answers the probes as a TCP connect to the sender's listener would:
//!
//! - after the crash: refused, `RTT` later (the kernel answers a SYN to a closed port with a
//!   reset; the process being gone is what closed it);
//! - while the sender is alive, stalled or not: accepted, `RTT` later (a stopped process's
//!   kernel still completes the handshake; the listen backlog is not full at these rates);
//! - while the Gilbert–Elliott channel is in its bad state: no answer, after the probe's
//!   timeout (the probe's SYN shares the heartbeats' fate).
//!
//! So a confirmed death of a live sender can only come from the evidence rules being wrong
//! (a stale or misattributed answer); the end-to-end bench (`bench/detect.sh`) checks the
//! world's side with real processes and signals.
//!
//! What it is not: a model of a host that vanishes (power loss): then nothing refuses, the
//! probe gets no answer, and the target stays unreachable, not dead.

use std::time::Duration;

use vitals_core::{ConfirmConfig, Confirmer, Detector, Evidence, Fact};

use crate::metrics::{Clock, Score, mean_p99};
use crate::trace::{PERIOD, Trace};

/// A confirmation's round trip on a LAN (connect refused or accepted), seconds.
pub const RTT: f64 = 0.001;

/// Scores the two-level detector over the heartbeat detector `make` makes.
pub fn score<D: Detector + Clone>(
    clock: Clock,
    trace: &Trace,
    crashes: &[f64],
    make: impl Fn() -> D,
) -> Score {
    let hours = trace.seconds / 3600.0;
    let config = ConfirmConfig::for_period(Duration::from_secs_f64(PERIOD));
    let reprobe = config.reprobe.as_secs_f64();
    let mut detector = make();
    let (mut suspicions, mut deaths, mut stalled, mut unreachable) = (0u64, 0u64, 0u64, 0u64);
    let mut suspect_delays = Vec::with_capacity(crashes.len());
    let mut confirm_delays = Vec::with_capacity(crashes.len());
    let mut crash = crashes.iter().copied().peekable();
    for (i, &(arrival, _)) in trace.arrivals.iter().enumerate() {
        while let Some(c) = crash.next_if(|&c| c <= arrival) {
            let (suspected, confirmed) = after_crash(clock, trace, i, c, detector.clone(), config);
            suspect_delays.push(suspected);
            confirm_delays.push(confirmed);
        }
        detector.handle_heartbeat(clock.at(arrival));
        let (Some(timeout), Some(&(next, _))) =
            (detector.poll_timeout(), trace.arrivals.get(i + 1))
        else {
            continue;
        };
        let s = clock.secs(timeout);
        if s >= next {
            continue;
        }
        // A wrong suspicion of a live sender: confirm until the next heartbeat clears it.
        suspicions += 1;
        let mut confirmer = Confirmer::new(config);
        confirmer.handle_suspicion(clock.at(s), true);
        let mut p = s;
        let (mut saw_stall, mut saw_unreachable) = (false, false);
        while p < next && !confirmer.fact().is_dead() {
            if confirmer.poll_probe(clock.at(p)) {
                let (evidence, answered) = if trace.bad_at(p) {
                    (Evidence::NoAnswer("no answer".into()), p + reprobe)
                } else {
                    (Evidence::Answered("accepted".into()), p + RTT)
                };
                if answered < next {
                    confirmer.handle_evidence(clock.at(answered), clock.at(p), evidence);
                }
            }
            match confirmer.fact() {
                Fact::Stalled { .. } => saw_stall = true,
                Fact::Unreachable { .. } => saw_unreachable = true,
                _ => {}
            }
            p += reprobe;
        }
        deaths += u64::from(confirmer.fact().is_dead());
        stalled += u64::from(saw_stall);
        unreachable += u64::from(saw_unreachable);
    }
    let (td_mean, td_p99) = mean_p99(&mut suspect_delays);
    let (confirmed_mean, confirmed_p99) = mean_p99(&mut confirm_delays);
    Score {
        td_mean,
        td_p99,
        false_suspicions: suspicions as f64 / hours,
        confirmed_mean,
        confirmed_p99,
        false_deaths: deaths as f64 / hours,
        stalled: stalled as f64 / hours,
        unreachable: unreachable as f64 / hours,
    }
}

/// (time to suspicion, time to confirmed death) of a crash at `c`, given the detector as it
/// was before arrival `i`.
fn after_crash<D: Detector>(
    clock: Clock,
    trace: &Trace,
    i: usize,
    c: f64,
    mut detector: D,
    config: ConfirmConfig,
) -> (f64, f64) {
    for &(arrival, sent) in trace.arrivals[i..]
        .iter()
        .take_while(|(a, _)| *a < c + 60.0)
    {
        if sent < c {
            detector.handle_heartbeat(clock.at(arrival));
        }
    }
    let Some(s) = detector.poll_timeout().map(|t| clock.secs(t)) else {
        return (f64::INFINITY, f64::INFINITY);
    };
    // The suspicion that lasts began at `s` (before the crash if the sender was silent
    // then, as in a stall). Probes go out every `reprobe` from it; before the crash the
    // living process answers them.
    let reprobe = config.reprobe.as_secs_f64();
    let mut confirmer = Confirmer::new(config);
    confirmer.handle_suspicion(clock.at(s), true);
    let mut p = s;
    while !confirmer.fact().is_dead() && p < c + 600.0 {
        if confirmer.poll_probe(clock.at(p)) {
            let (evidence, answered) = if p >= c {
                (Evidence::Refused("refused".into()), p + RTT)
            } else if trace.bad_at(p) {
                (Evidence::NoAnswer("no answer".into()), p + reprobe)
            } else {
                (Evidence::Answered("accepted".into()), p + RTT)
            };
            confirmer.handle_evidence(clock.at(answered), clock.at(p), evidence);
            if confirmer.fact().is_dead() {
                return ((s - c).max(0.0), answered - c);
            }
        }
        p += reprobe;
    }
    ((s - c).max(0.0), f64::INFINITY)
}
