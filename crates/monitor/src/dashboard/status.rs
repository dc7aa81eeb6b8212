//! The public status page at `/status`: for the users of the services, not their operators.
//! Groups, each target's current state in plain words, a 90-day uptime bar, and the ongoing
//! incidents.
//!
//! Public by design (no token, whatever `read_token` says): it shows names, states and
//! uptime, never outputs, reasons or addresses, which may name internal hosts. One store
//! query for every target's bar. What this is not: an incident-management tool with
//! messages written by people.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use vitals_core::machine::State as MachineState;

use super::page::{self, Nav};
use super::{Dashboard, chart, target};
use crate::engine::TargetView;
use crate::store::Bucket;

/// The words users see, and the look (class and symbol) that repeats them.
fn public(view: &TargetView) -> (&'static str, &'static str, &'static str) {
    if view.paused {
        return ("Paused", "none", "⏸");
    }
    if view.maintenance_until.is_some() {
        return ("Maintenance", "info", "🛠");
    }
    match view.state {
        MachineState::Healthy => ("Operational", "good", "✔"),
        MachineState::Degraded | MachineState::Failing => ("Degraded", "warn", "▲"),
        MachineState::Unhealthy | MachineState::Down => ("Outage", "bad", "✖"),
        MachineState::Recovering => ("Recovering", "info", "↻"),
        MachineState::Unknown => ("No data", "none", "?"),
    }
}

/// A group with more targets than this shows one bar for the group (the mean of its
/// targets, day by day) and its targets' states without bars, so the page stays small
/// however many targets there are.
const BARS_PER_GROUP: usize = 20;

/// The day-by-day mean of several targets' cells (days no target knows stay unknown).
fn mean_cells(cells: &[&[Option<f64>]], days: usize) -> Vec<Option<f64>> {
    (0..days)
        .map(|day| {
            let known: Vec<f64> = cells
                .iter()
                .filter_map(|c| c.get(day).copied().flatten())
                .collect();
            (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64)
        })
        .collect()
}

fn is_incident(view: &TargetView) -> bool {
    !view.paused && matches!(view.state, MachineState::Unhealthy | MachineState::Down)
}

pub(super) async fn page(State(dashboard): State<Dashboard>) -> Response {
    let now = SystemTime::now();
    let views = dashboard.inner.engine.views();
    let histories = match &dashboard.inner.store {
        Some(store) => {
            let store = store.clone();
            let ids: Vec<String> = views.iter().map(|v| v.id.clone()).collect();
            let read = move || store.histories(&ids, now, Bucket::Day, target::BAR_DAYS);
            match page::blocking("the status history", read).await {
                Ok(histories) => histories,
                // Logged by `blocking`; the public is told no internals.
                Err(_) => {
                    return page::error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the status history cannot be read right now; try again in a minute",
                    );
                }
            }
        }
        None => Default::default(),
    };
    // Groups in name order; targets without one last, under "Other services".
    let mut groups: BTreeMap<(bool, String), Vec<&TargetView>> = BTreeMap::new();
    for view in &views {
        let key = match &dashboard.meta(view).group {
            Some(group) => (false, group.clone()),
            None => (true, "Other services".to_string()),
        };
        groups.entry(key).or_default().push(view);
    }
    let incidents: Vec<&TargetView> = views.iter().filter(|v| is_incident(v)).collect();
    let first_day = {
        let day = Bucket::Day.duration().as_secs();
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        SystemTime::UNIX_EPOCH
            + std::time::Duration::from_secs(
                (secs - secs % day).saturating_sub(day * (target::BAR_DAYS as u64 - 1)),
            )
    };
    let main = html! {
        h1 { "Service status" }
        @if dashboard.inner.engine.is_isolated() {
            p.banner.st-warn role="status" {
                span aria-hidden="true" { "⚠ " }
                "Our monitoring cannot reach its reference points right now, so the states below may be out of date."
            }
        }
        @if views.is_empty() {
            p.banner.st-info { "No services are monitored yet." }
        } @else if incidents.is_empty() {
            p.banner.st-good { span aria-hidden="true" { "✔ " } "All systems operational" }
        } @else {
            p.banner.st-bad { span aria-hidden="true" { "✖ " } (incidents.len()) " service" (if incidents.len() == 1 { "" } else { "s" }) " with an outage" }
        }
        section aria-labelledby="incidents" {
            h2 #incidents { "Ongoing incidents" }
            @if incidents.is_empty() {
                p.muted { "None." }
            } @else {
                ul {
                    @for view in &incidents {
                        li {
                            strong { (view.name) } ": outage"
                            @if let Some(since) = view.since {
                                " since " time datetime=(page::rfc3339(since)) { (page::when(since)) }
                            }
                        }
                    }
                }
            }
        }
        @for ((_, name), members) in &groups {
            section.group aria-label=(name) {
                h2 { (name) }
                @let bars = members.len() <= BARS_PER_GROUP;
                @if !bars {
                    @let cells: Vec<&[Option<f64>]> = members.iter().filter_map(|v| histories.get(&v.id)).map(|h| h.cells.as_slice()).collect();
                    p.muted { (members.len()) " services; the bar shows their mean uptime per day." }
                    (chart::uptime_bar(&mean_cells(&cells, target::BAR_DAYS), first_day, &[]))
                }
                ul.services {
                    @for view in members {
                        @let (words, class, symbol) = public(view);
                        li {
                            div.service-head {
                                span.service-name { (view.name) }
                                span class={ "state st-" (class) } { span aria-hidden="true" { (symbol) } " " (words) }
                            }
                            @if bars {
                                @let history = histories.get(&view.id).cloned().unwrap_or_default();
                                (chart::uptime_bar(&history.cells, first_day, &[]))
                            }
                        }
                    }
                }
            }
        }
        p.muted { "Updated " (page::when(now)) ". Reload for the latest." }
    };
    page::respond(
        StatusCode::OK,
        page::layout("Status", Nav::Status, false, main),
    )
}
