//! Synthetic heartbeat traces: when each beat was sent, when (or whether) it arrived, and
//! when the sender was stalled.
//!
//! One sender beats every `PERIOD` (100 ms). Five profiles, each from a seed:
//!
//! - `lan`: the sender's timer wakes up to a few milliseconds late (exponential, mean 1 ms)
//!   and the network adds 0.25 ms plus an exponential 0.5 ms; nothing is lost.
//! - `pareto`: LAN, plus a heavy-tailed delay on every beat (Pareto, scale 1 ms, shape 1.5:
//!   one beat in a thousand is over 100 ms late, about one an hour over 1 s).
//! - `stall`: LAN, plus sender stalls (a GC pause, a CPU starved by its neighbours): a Poisson
//!   process of one a minute on average, each 0.3–1.5 s (uniform); beats due inside a stall
//!   are skipped, the sender resumes on its grid.
//! - `loss`: LAN, plus burst loss on a Gilbert–Elliott channel (per beat: good → bad 0.5 %,
//!   bad → good 25 %, so bursts of 4 beats on average; losing 0.1 % in good, 75 % in bad).
//! - `mixed`: all of the above at once.
//!
//! What it is not: a network simulator. Beats are independent datagrams; a beat may overtake
//! another (the detectors keep the latest arrival). The parameters are stated here and in
//! BENCHMARKS.md so that a reader can disagree with them.

use vitals_core::SplitMix64;

/// The heartbeat period of every trace, in seconds.
pub const PERIOD: f64 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Lan,
    Pareto,
    Stall,
    Loss,
    Mixed,
}

impl Profile {
    pub const ALL: [Profile; 5] = [
        Profile::Lan,
        Profile::Pareto,
        Profile::Stall,
        Profile::Loss,
        Profile::Mixed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Profile::Lan => "lan",
            Profile::Pareto => "pareto",
            Profile::Stall => "stall",
            Profile::Loss => "loss",
            Profile::Mixed => "mixed",
        }
    }

    fn pareto(self) -> bool {
        matches!(self, Profile::Pareto | Profile::Mixed)
    }

    fn stalls(self) -> bool {
        matches!(self, Profile::Stall | Profile::Mixed)
    }

    fn loss(self) -> bool {
        matches!(self, Profile::Loss | Profile::Mixed)
    }
}

/// One beat: sent at `sent`, arrived at `arrival` (`None`: lost). Seconds from the start.
#[derive(Debug, Clone, Copy)]
pub struct Beat {
    pub sent: f64,
    pub arrival: Option<f64>,
}

/// A trace of `seconds` of heartbeats.
#[derive(Debug, Clone)]
pub struct Trace {
    pub seconds: f64,
    /// Every beat sent, in sending order.
    pub beats: Vec<Beat>,
    /// Arrivals in arrival order: (arrival, sent).
    pub arrivals: Vec<(f64, f64)>,
    /// Sender stalls, [start, end), in order.
    pub stalls: Vec<(f64, f64)>,
    /// Whether the Gilbert–Elliott channel was in its bad state for the beat sent at each
    /// grid slot (index = slot), so a confirmation probe sent then can share its fate.
    pub bad: Vec<bool>,
}

impl Trace {
    pub fn generate(profile: Profile, seconds: f64, seed: u64) -> Trace {
        let mut rng = SplitMix64::new(seed ^ (profile as u64).wrapping_mul(0x9E37_79B9));
        let slots = (seconds / PERIOD) as usize;
        // Stalls first, as a Poisson process of rate 1/60 s.
        let mut stalls = Vec::new();
        if profile.stalls() {
            let mut t = exponential(&mut rng, 60.0);
            while t < seconds {
                let length = 0.3 + 1.2 * rng.fraction();
                stalls.push((t, t + length));
                t += length + exponential(&mut rng, 60.0);
            }
        }
        let mut beats = Vec::with_capacity(slots);
        let mut bad = Vec::with_capacity(slots);
        let mut in_bad = false;
        let mut stall = stalls.iter().peekable();
        for slot in 0..slots {
            let due = slot as f64 * PERIOD;
            let sent = due + exponential(&mut rng, 0.001);
            while stall.peek().is_some_and(|&&(_, end)| end <= sent) {
                stall.next();
            }
            // Every random draw is made whether or not it is used, so that a profile's beats
            // line up with the LAN trace of the same seed.
            let stalled = stall.peek().is_some_and(|&&(start, _)| start <= sent);
            in_bad = if in_bad {
                rng.fraction() >= 0.25
            } else {
                rng.fraction() < 0.005
            };
            let lose_draw = rng.fraction();
            let network = 0.000_25 + exponential(&mut rng, 0.000_5);
            let tail = 0.001 / (1.0 - rng.fraction()).powf(1.0 / 1.5);
            bad.push(profile.loss() && in_bad);
            if stalled {
                continue;
            }
            let lost = profile.loss() && lose_draw < if in_bad { 0.75 } else { 0.001 };
            let delay = network + if profile.pareto() { tail } else { 0.0 };
            beats.push(Beat {
                sent,
                arrival: (!lost).then_some(sent + delay),
            });
        }
        let mut arrivals: Vec<(f64, f64)> = beats
            .iter()
            .filter_map(|beat| beat.arrival.map(|arrival| (arrival, beat.sent)))
            .collect();
        arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
        Trace {
            seconds,
            beats,
            arrivals,
            stalls,
            bad,
        }
    }

    /// Whether the channel was in its bad state at `t`.
    pub fn bad_at(&self, t: f64) -> bool {
        let slot = (t / PERIOD) as usize;
        self.bad.get(slot).copied().unwrap_or(false)
    }
}

/// Exponential with the given mean.
fn exponential(rng: &mut SplitMix64, mean: f64) -> f64 {
    -mean * (1.0 - rng.fraction()).ln()
}
