//! The detectors the replay compares, each with its knobs swept, and vitals' defaults named.
//!
//! What it is not: a recommendation; the tables say which settings fare how.

use std::time::Duration;

use vitals_core::{Deadline, PhiAccrual, PhiConfig};

use crate::metrics::{self, Clock, Score};
use crate::trace::{PERIOD, Trace};
use crate::two_level;

#[derive(Clone)]
pub enum Kind {
    Deadline {
        grace: Duration,
    },
    Phi(PhiConfig),
    /// The heartbeat detector's suspicion confirmed by a probe (`two_level.rs`).
    TwoLevel(Box<Kind>),
}

pub struct Candidate {
    pub family: &'static str,
    pub knobs: String,
    pub kind: Kind,
}

impl Candidate {
    pub fn score(&self, clock: Clock, trace: &Trace, crashes: &[f64]) -> Score {
        let period = Duration::from_secs_f64(PERIOD);
        match &self.kind {
            Kind::Deadline { grace } => {
                metrics::heartbeat_only(clock, trace, crashes, || Deadline::new(period, *grace))
            }
            Kind::Phi(config) => metrics::heartbeat_only(clock, trace, crashes, || {
                PhiAccrual::new(config.clone()).expect("swept configs are valid")
            }),
            Kind::TwoLevel(inner) => match &**inner {
                Kind::Deadline { grace } => {
                    two_level::score(clock, trace, crashes, || Deadline::new(period, *grace))
                }
                Kind::Phi(config) => two_level::score(clock, trace, crashes, || {
                    PhiAccrual::new(config.clone()).expect("swept configs are valid")
                }),
                Kind::TwoLevel(_) => Score::default(),
            },
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn all() -> Vec<Candidate> {
    let period = Duration::from_secs_f64(PERIOD);
    let mut all = Vec::new();
    for grace in [20, 50, 100, 200, 500, 1000, 1500, 2000] {
        let note = match grace {
            1000 => " (monitor default before issue 15)",
            200 => " (monitor default since issue 15)",
            _ => "",
        };
        all.push(Candidate {
            family: "deadline",
            knobs: format!("grace {grace} ms{note}"),
            kind: Kind::Deadline { grace: ms(grace) },
        });
    }
    all.push(Candidate {
        family: "phi",
        knobs: "PhiConfig::default() before issue 15 (estimate 1 s, min_std_dev 100 ms)".into(),
        kind: Kind::Phi(PhiConfig {
            threshold: 8.0,
            max_samples: 200,
            min_std_dev: ms(100),
            acceptable_pause: Duration::ZERO,
            first_heartbeat_estimate: Duration::from_secs(1),
        }),
    });
    all.push(Candidate {
        family: "phi",
        knobs: "monitor default before issue 15 (pause 1 s, min_std_dev 100 ms)".into(),
        kind: Kind::Phi(PhiConfig {
            threshold: 8.0,
            max_samples: 200,
            min_std_dev: ms(100),
            acceptable_pause: Duration::from_secs(1),
            first_heartbeat_estimate: period,
        }),
    });
    for threshold in [1.0, 3.0, 8.0, 12.0] {
        for min_std in [10, 25, 100] {
            for pause in [0, 500] {
                all.push(Candidate {
                    family: "phi",
                    knobs: format!(
                        "threshold {threshold}, min_std_dev {min_std} ms, pause {pause} ms"
                    ),
                    kind: Kind::Phi(PhiConfig {
                        threshold,
                        max_samples: 200,
                        min_std_dev: ms(min_std),
                        acceptable_pause: ms(pause),
                        first_heartbeat_estimate: period,
                    }),
                });
            }
        }
    }
    for grace in [20, 50, 100, 200] {
        let note = if grace == 200 {
            " (monitor default)"
        } else {
            ""
        };
        all.push(Candidate {
            family: "two-level",
            knobs: format!("deadline grace {grace} ms{note} + TCP confirm"),
            kind: Kind::TwoLevel(Box::new(Kind::Deadline { grace: ms(grace) })),
        });
    }
    for threshold in [1.0, 3.0, 8.0] {
        for min_std in [10, 25] {
            all.push(Candidate {
                family: "two-level",
                knobs: format!("phi threshold {threshold}, min_std_dev {min_std} ms + TCP confirm"),
                kind: Kind::TwoLevel(Box::new(Kind::Phi(PhiConfig {
                    threshold,
                    max_samples: 200,
                    min_std_dev: ms(min_std),
                    acceptable_pause: Duration::ZERO,
                    first_heartbeat_estimate: period,
                }))),
            });
        }
    }
    all
}
