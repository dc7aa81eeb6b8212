//! An SVG of the replay: per profile, each detector setting as a point, mean time to a
//! confirmed death (y) against false confirmed deaths per hour (x, logarithmic; 0 on the
//! left edge). A heartbeat-only detector's every suspicion is its verdict, so it sits where
//! its false suspicions put it; the two-level detector's points sit on the left edge.
//!
//! What it is not: a charting library; a few hundred lines of SVG text, no dependency.

use std::fmt::Write as _;

use crate::metrics::Score;

const W: f64 = 260.0;
const H: f64 = 220.0;
const PAD: f64 = 40.0;

fn colour(family: &str) -> &'static str {
    match family {
        "deadline" => "#1f77b4",
        "phi" => "#ff7f0e",
        _ => "#2ca02c",
    }
}

/// `panels`: (profile, [(family, score)]).
pub fn svg(panels: &[(&str, Vec<(&str, Score)>)]) -> String {
    let width = PAD + panels.len() as f64 * (W + PAD);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{}" font-family="sans-serif" font-size="11">"#,
        H + 2.0 * PAD + 20.0
    );
    let _ = write!(
        out,
        r#"<text x="{PAD}" y="16" font-size="13">Mean time to a confirmed death (ms, y, 0–2,200) against false deaths per hour (x, log: 0, 1, 10, 100, 1000); 100 ms heartbeats</text>"#
    );
    let x_of = |deaths: f64| (deaths.max(0.0) + 1.0).log10() / 3.0 * W;
    let y_of = |ms: f64| H - (ms.min(2200.0) / 2200.0) * H;
    for (n, (profile, points)) in panels.iter().enumerate() {
        let left = PAD + n as f64 * (W + PAD);
        let top = PAD;
        let _ = write!(
            out,
            r##"<g transform="translate({left},{top})"><rect width="{W}" height="{H}" fill="none" stroke="#999"/><text x="4" y="-6" font-size="12">{profile}</text>"##
        );
        for tick in [0.0, 1.0, 10.0, 100.0, 1000.0] {
            let x = x_of(tick);
            let _ = write!(
                out,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{H}" y2="{}" stroke="#999"/><text x="{x:.1}" y="{}" text-anchor="middle">{tick}</text>"##,
                H + 4.0,
                H + 15.0
            );
        }
        for tick in [0.0, 250.0, 500.0, 1000.0, 1500.0, 2000.0] {
            let y = y_of(tick);
            let _ = write!(
                out,
                r##"<line x1="-4" x2="0" y1="{y:.1}" y2="{y:.1}" stroke="#999"/><text x="-6" y="{:.1}" text-anchor="end">{tick}</text>"##,
                y + 4.0
            );
        }
        let goal = y_of(250.0);
        let _ = write!(
            out,
            r##"<line x1="0" x2="{W}" y1="{goal:.1}" y2="{goal:.1}" stroke="#2ca02c" stroke-dasharray="4 3"/>"##
        );
        for (family, score) in points {
            if !score.confirmed_mean.is_finite() {
                continue;
            }
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}" fill-opacity="0.7"/>"#,
                x_of(score.false_deaths),
                y_of(score.confirmed_mean * 1000.0),
                colour(family)
            );
        }
        out.push_str("</g>");
    }
    let legend_y = H + 2.0 * PAD + 10.0;
    for (i, family) in ["deadline", "phi", "two-level"].iter().enumerate() {
        let x = PAD + i as f64 * 120.0;
        let _ = write!(
            out,
            r#"<circle cx="{x}" cy="{}" r="4" fill="{}"/><text x="{}" y="{legend_y}">{family}</text>"#,
            legend_y - 4.0,
            colour(family),
            x + 8.0
        );
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{legend_y}">dashed: the 250 ms goal</text></svg>"#,
        PAD + 380.0
    );
    out.push('\n');
    out
}
