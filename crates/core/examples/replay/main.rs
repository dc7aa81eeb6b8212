//! Trace replay: vitals' failure detectors scored on synthetic heartbeat traces (issue 15).
//!
//! ```text
//! cargo run --release -p vitals-core --example replay -- [--hours 4] [--seed 1] [--crashes 2000] [--csv out.csv] [--svg out.svg] [--only two-level]
//! ```
//!
//! Generates a trace per profile (`trace.rs`), replays each candidate detector on it with its
//! knobs swept, and prints, per profile, the mean and 99th percentile detection time of a
//! crash and the false suspicions per hour (`metrics.rs`, after Chen, Toueg and Aguilera
//! 2002). Everything is deterministic from the seed; nothing reads the clock but the one
//! `Instant` every simulated time is counted from.
//!
//! What it is not: a test. It asserts nothing; BENCHMARKS.md records what it printed.

mod candidates;
mod metrics;
mod plot;
mod trace;
mod two_level;

use std::fmt::Write as _;
use std::time::Instant;

use metrics::{Clock, Score};
use trace::{Profile, Trace};
use vitals_core::SplitMix64;

struct Args {
    hours: f64,
    seed: u64,
    crashes: usize,
    csv: Option<String>,
    svg: Option<String>,
    only: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        hours: 4.0,
        seed: 1,
        crashes: 2000,
        csv: None,
        svg: None,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--hours" => args.hours = value()?.parse().map_err(|e| format!("--hours: {e}"))?,
            "--seed" => args.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--crashes" => {
                args.crashes = value()?.parse().map_err(|e| format!("--crashes: {e}"))?
            }
            "--csv" => args.csv = Some(value()?),
            "--svg" => args.svg = Some(value()?),
            "--only" => args.only = Some(value()?),
            other => {
                return Err(format!(
                    "unknown argument {other:?}; try --hours, --seed, --crashes, --csv, --svg or --only"
                ));
            }
        }
    }
    if args.hours.is_nan() || args.hours <= 0.0 {
        return Err("--hours must be above 0".into());
    }
    Ok(args)
}

fn main() {
    let args = match args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("replay: {message}");
            std::process::exit(2);
        }
    };
    #[allow(clippy::disallowed_methods)] // the base every simulated instant is counted from
    let clock = Clock(Instant::now());
    let seconds = args.hours * 3600.0;
    let candidates = candidates::all();
    let mut csv = String::from(
        "profile,detector,knobs,td_mean_ms,td_p99_ms,false_susp_per_h,confirmed_mean_ms,confirmed_p99_ms,false_deaths_per_h,stalled_per_h,unreachable_per_h\n",
    );
    println!(
        "# Trace replay: {} h per profile, 100 ms heartbeats, {} crashes each, seed {}\n",
        args.hours, args.crashes, args.seed
    );
    let mut panels = Vec::new();
    for profile in Profile::ALL {
        let trace = Trace::generate(profile, seconds, args.seed);
        let crashes = crash_times(&trace, args.crashes, args.seed);
        let lost = trace.beats.iter().filter(|b| b.arrival.is_none()).count();
        println!(
            "## {} ({} beats sent, {} lost, {} stalls)\n",
            profile.name(),
            trace.beats.len(),
            lost,
            trace.stalls.len()
        );
        println!(
            "| detector | knobs | T_D mean | T_D p99 | false susp./h | confirmed mean | confirmed p99 | false deaths/h |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|---:|");
        let scores: Vec<(usize, Score)> = std::thread::scope(|scope| {
            let chunks: Vec<_> = candidates
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    args.only
                        .as_ref()
                        .is_none_or(|only| c.family.contains(only.as_str()))
                })
                .collect::<Vec<_>>()
                .chunks(4)
                .map(|chunk| chunk.to_vec())
                .collect();
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    let (trace, crashes) = (&trace, &crashes);
                    scope.spawn(move || {
                        chunk
                            .into_iter()
                            .map(|(i, c)| (i, c.score(clock, trace, crashes)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        for (i, s) in &scores {
            let c = &candidates[*i];
            println!(
                "| {} | {} | {} | {} | {:.1} | {} | {} | {:.1} |",
                c.family,
                c.knobs,
                ms(s.td_mean),
                ms(s.td_p99),
                s.false_suspicions,
                ms(s.confirmed_mean),
                ms(s.confirmed_p99),
                s.false_deaths
            );
            let _ = writeln!(
                csv,
                "{},{},{},{:.1},{:.1},{:.3},{:.1},{:.1},{:.3},{:.3},{:.3}",
                profile.name(),
                c.family,
                c.knobs.replace(',', ";"),
                s.td_mean * 1000.0,
                s.td_p99 * 1000.0,
                s.false_suspicions,
                s.confirmed_mean * 1000.0,
                s.confirmed_p99 * 1000.0,
                s.false_deaths,
                s.stalled,
                s.unreachable
            );
        }
        println!();
        panels.push((
            profile.name(),
            scores
                .iter()
                .map(|(i, s)| (candidates[*i].family, *s))
                .collect::<Vec<_>>(),
        ));
    }
    if let Some(path) = args.svg
        && let Err(error) = std::fs::write(&path, plot::svg(&panels))
    {
        eprintln!("replay: cannot write {path}: {error}");
        std::process::exit(1);
    }
    if let Some(path) = args.csv
        && let Err(error) = std::fs::write(&path, csv)
    {
        eprintln!("replay: cannot write {path}: {error}");
        std::process::exit(1);
    }
}

/// `n` crash instants, uniform over the trace after a minute of warm-up, sorted.
fn crash_times(trace: &Trace, n: usize, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed.wrapping_add(0xC4A5));
    let span = (trace.seconds - 120.0).max(1.0);
    let mut times: Vec<f64> = (0..n).map(|_| 60.0 + span * rng.fraction()).collect();
    times.sort_by(f64::total_cmp);
    times
}

fn ms(seconds: f64) -> String {
    if seconds.is_finite() {
        format!("{:.0} ms", seconds * 1000.0)
    } else {
        "never".into()
    }
}
