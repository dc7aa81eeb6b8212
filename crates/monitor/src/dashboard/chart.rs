//! Pictures drawn on the server as SVG and HTML: the overview's 24-hour strip, the 90-day
//! uptime bar (one focusable cell per day, its figures on hover, focus or tap), and the
//! latency chart (p50 and p95 from the rollups).
//!
//! Colour never carries meaning alone: the strip and the bar have text labels with the same
//! figures, and the chart's p95 line is dashed where p50 is solid. What this is not: data
//! access; callers pass in what the store returned.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use maud::{Markup, html};

use super::page::{millis, percent};
use crate::store::{Bucket, Rollup};

/// The colour class of a cell whose up share is `share`.
fn tone(share: Option<f64>) -> &'static str {
    match share {
        None => "c-none",
        Some(s) if s >= 1.0 => "c-good",
        Some(s) if s >= 0.95 => "c-warn",
        Some(_) => "c-bad",
    }
}

/// Counts of cells with any downtime and with no data, for text labels.
fn summary(cells: &[Option<f64>], unit: &str) -> String {
    let down = cells.iter().filter(|c| c.is_some_and(|s| s < 1.0)).count();
    let unknown = cells.iter().filter(|c| c.is_none()).count();
    format!(
        "{} {unit}s: {down} with downtime, {unknown} without data",
        cells.len()
    )
}

/// The overview's strip: one small bar per hour, oldest first.
pub(super) fn strip(hours: &[Option<f64>]) -> Markup {
    const W: usize = 4;
    let label = summary(hours, "hour");
    html! {
        svg.strip width=(hours.len() * W) height="16" viewBox={ "0 0 " (hours.len() * W) " 16" }
            role="img" aria-label=(label) {
            title { (label) }
            @for (i, share) in hours.iter().enumerate() {
                rect class=(tone(*share)) x=(i * W) y="0" width=(W - 1) height="16" {}
            }
        }
    }
}

/// Per-day figures beside the up share, from the day rollups (absent before the first
/// maintenance run covers the day).
pub(super) fn day_figures(rollup: Option<&Rollup>) -> String {
    match rollup {
        Some(r) => format!(
            "; {} checks, {} failed; p95 {}",
            r.count,
            r.failures,
            millis(r.p95)
        ),
        None => String::new(),
    }
}

/// The uptime bar: one cell per UTC day, the last one today. `first_day` is the first cell's
/// start; `rollups` are day rollups of the same range (any order).
pub(super) fn uptime_bar(
    days: &[Option<f64>],
    first_day: SystemTime,
    rollups: &[Rollup],
) -> Markup {
    let day = Bucket::Day.duration();
    let total = days.iter().flatten().count();
    let mean = (total > 0).then(|| days.iter().flatten().sum::<f64>() / total as f64);
    let label = format!(
        "Uptime per day, {} (mean of known days {})",
        summary(days, "day"),
        percent(mean)
    );
    html! {
        div.bar-wrap {
            ol.bar aria-label=(label) {
                @for (i, share) in days.iter().enumerate() {
                    @let start = first_day + day * i as u32;
                    @let date = chrono::DateTime::<chrono::Utc>::from(start).format("%Y-%m-%d").to_string();
                    @let rollup = rollups.iter().find(|r| r.start == start);
                    @let tip = format!("{date}: {} up{}", percent(*share), day_figures(rollup));
                    li class=(tone(*share)) tabindex="0" data-tip=(tip) aria-label=(tip) {}
                }
            }
            p.bar-legend {
                span { (days.len()) " days ago" }
                span { "mean " (percent(mean)) }
                span { "today" }
            }
        }
    }
}

/// A chart range: how far back, and the rollup width that gives a readable number of points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Range {
    pub(super) name: &'static str,
    pub(super) span: Duration,
    pub(super) bucket: Bucket,
}

pub(super) const RANGES: [Range; 5] = [
    Range {
        name: "1h",
        span: Duration::from_secs(3600),
        bucket: Bucket::Minute,
    },
    Range {
        name: "24h",
        span: Duration::from_secs(86_400),
        bucket: Bucket::Minute,
    },
    Range {
        name: "7d",
        span: Duration::from_secs(7 * 86_400),
        bucket: Bucket::Hour,
    },
    Range {
        name: "30d",
        span: Duration::from_secs(30 * 86_400),
        bucket: Bucket::Hour,
    },
    Range {
        name: "90d",
        span: Duration::from_secs(90 * 86_400),
        bucket: Bucket::Day,
    },
];

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 712.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 190.0;

fn secs(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// An SVG path through `points` (x in seconds, y in ms), broken where buckets are missing
/// so a gap in the data is not drawn as a straight line.
fn path(points: &[(f64, f64)], gap: f64, x: impl Fn(f64) -> f64, y: impl Fn(f64) -> f64) -> String {
    let mut d = String::new();
    let mut last: Option<f64> = None;
    for &(px, py) in points {
        if last.is_some_and(|l| px - l <= gap) {
            let _ = write!(d, "L{:.1},{:.1} ", x(px), y(py));
        } else {
            // A zero-length segment: with round caps a lone point still shows as a dot.
            let _ = write!(d, "M{:.1},{:.1} l0,0 ", x(px), y(py));
        }
        last = Some(px);
    }
    d
}

/// The latency chart of `rollups` (oldest first) over `range` ending at `now`.
pub(super) fn latency(rollups: &[Rollup], range: Range, now: SystemTime) -> Markup {
    if rollups.is_empty() {
        return html! {
            p.muted { "No latency data in this range yet. Rollups are computed every ten minutes from the raw results." }
        };
    }
    let to = secs(now);
    let from = to - range.span.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let top = rollups.iter().map(|r| ms(r.p95)).fold(1.0_f64, f64::max) * 1.1;
    let x = |s: f64| LEFT + (s - from) / (to - from) * (RIGHT - LEFT);
    let y = |v: f64| BOTTOM - v / top * (BOTTOM - TOP);
    let half = range.bucket.duration().as_secs_f64() / 2.0;
    let p50: Vec<(f64, f64)> = rollups
        .iter()
        .map(|r| (secs(r.start) + half, ms(r.p50)))
        .collect();
    let p95: Vec<(f64, f64)> = rollups
        .iter()
        .map(|r| (secs(r.start) + half, ms(r.p95)))
        .collect();
    // Break the lines only where data is missing for a while: three times the usual spacing
    // of points (a target checked every ten minutes fills one minute bucket in ten).
    let mut spacing: Vec<f64> = p50.windows(2).map(|w| w[1].0 - w[0].0).collect();
    spacing.sort_by(f64::total_cmp);
    let usual = spacing.get(spacing.len() / 2).copied().unwrap_or(0.0);
    let gap = (usual * 3.0).max(half * 3.0);
    let worst = rollups.iter().map(|r| r.p95).max().unwrap_or_default();
    let median = {
        let mut all: Vec<Duration> = rollups.iter().map(|r| r.p50).collect();
        all.sort();
        all.get(all.len() / 2).copied().unwrap_or_default()
    };
    let description = format!(
        "Latency over the last {}: {} points; median p50 {}, highest p95 {}.",
        range.name,
        rollups.len(),
        millis(median),
        millis(worst)
    );
    let label_time = |s: f64| {
        let t = UNIX_EPOCH + Duration::from_secs_f64(s.max(0.0));
        let format = if range.span > Duration::from_secs(86_400) {
            "%m-%d %H:%M"
        } else {
            "%H:%M"
        };
        chrono::DateTime::<chrono::Utc>::from(t)
            .format(format)
            .to_string()
    };
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-labelledby="chart-title chart-desc" {
                title #chart-title { "Latency, p50 and p95" }
                desc #chart-desc { (description) }
                @for frac in [0.0, 0.5, 1.0] {
                    @let value = top / 1.1 * frac;
                    line.grid x1=(LEFT) x2=(RIGHT) y1=(format!("{:.1}", y(value))) y2=(format!("{:.1}", y(value))) {}
                    text.axis x=(LEFT - 6.0) y=(format!("{:.1}", y(value) + 4.0)) text-anchor="end" {
                        (millis(Duration::from_secs_f64(value / 1000.0)))
                    }
                }
                @for frac in [0.0, 0.5, 1.0] {
                    @let s = from + (to - from) * frac;
                    text.axis x=(format!("{:.1}", x(s))) y=(HEIGHT - 8.0)
                        text-anchor=(if frac == 0.0 { "start" } else if frac == 1.0 { "end" } else { "middle" }) {
                        (label_time(s)) " UTC"
                    }
                }
                path.p95 d=(path(&p95, gap, x, y)) {}
                path.p50 d=(path(&p50, gap, x, y)) {}
            }
            figcaption {
                span.key.key-p50 aria-hidden="true" {} " p50 (solid) "
                span.key.key-p95 aria-hidden="true" {} " p95 (dashed) · " (description)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_break_at_gaps() {
        let d = path(&[(0.0, 1.0), (1.0, 1.0), (5.0, 1.0)], 1.5, |x| x, |y| y);
        assert_eq!(d, "M0.0,1.0 l0,0 L1.0,1.0 M5.0,1.0 l0,0 ");
    }

    #[test]
    fn tones_tell_full_partial_and_unknown_apart() {
        assert_eq!(tone(None), "c-none");
        assert_eq!(tone(Some(1.0)), "c-good");
        assert_eq!(tone(Some(0.97)), "c-warn");
        assert_eq!(tone(Some(0.5)), "c-bad");
    }
}
