//! One target's page at `/targets/<id>`: its state and flags, what it depends on and what
//! depends on it, a 90-day uptime bar, the latency chart over a chosen range, the transition
//! timeline with reasons, the latest outputs, and for heartbeats the latest pings (the last
//! run's body and duration).
//!
//! One trip to the blocking pool reads everything the page needs from the store (six indexed
//! queries for one target). What this is not: a place to change the target (the API's pause,
//! resume and maintenance do that).

use std::time::SystemTime;

use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::chart::{self, RANGES, Range};
use super::page::{self, Nav};
use super::{Dashboard, access};
use crate::engine::TargetView;
use crate::store::{
    Bucket, CheckResult, History, Ping, PingKind, Rollup, Store, StoreError, Transition,
};

/// Days in the uptime bar.
pub(super) const BAR_DAYS: usize = 90;
const TRANSITIONS: usize = 50;
const RESULTS: usize = 20;
const PINGS: usize = 10;
/// A ping body longer than this is cut on the page (the store keeps it whole).
const BODY_SHOWN: usize = 10_000;

#[derive(Debug, Default, Deserialize)]
pub(super) struct Params {
    range: Option<String>,
}

/// Everything the page reads from the store.
struct Stored {
    history: History,
    days: Vec<Rollup>,
    latency: Vec<Rollup>,
    transitions: Vec<Transition>,
    results: Vec<CheckResult>,
    pings: Vec<Ping>,
}

fn read(
    store: &Store,
    id: &str,
    passive: bool,
    range: Range,
    now: SystemTime,
) -> Result<Stored, StoreError> {
    let ids = [id.to_string()];
    let history = store
        .histories(&ids, now, Bucket::Day, BAR_DAYS)?
        .remove(id)
        .unwrap_or_default();
    let first_day = bar_start(now);
    Ok(Stored {
        history,
        days: store.rollups(id, Bucket::Day, first_day, now)?,
        latency: store.rollups(id, range.bucket, now - range.span, now)?,
        transitions: store.transitions(id, TRANSITIONS)?,
        results: store.recent_results(id, RESULTS)?,
        pings: if passive {
            store.last_pings(id, PINGS)?
        } else {
            Vec::new()
        },
    })
}

/// The first day of the bar (UTC midnight, `BAR_DAYS - 1` days before today's).
fn bar_start(now: SystemTime) -> SystemTime {
    let day = Bucket::Day.duration().as_secs();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let today = secs - secs % day;
    SystemTime::UNIX_EPOCH
        + std::time::Duration::from_secs(today.saturating_sub(day * (BAR_DAYS as u64 - 1)))
}

pub(super) async fn page(
    State(dashboard): State<Dashboard>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let here = uri.path_and_query().map_or("/", |p| p.as_str());
    if let Some(denied) = access::denied(&dashboard.inner.access, &headers, here) {
        return denied;
    }
    let engine = &dashboard.inner.engine;
    let Some(view) = engine.view(&id) else {
        return page::error(
            StatusCode::NOT_FOUND,
            &format!("no target with id {id:?}; the overview lists every target"),
        );
    };
    let range = match params.range.as_deref().filter(|r| !r.is_empty()) {
        None => RANGES[1],
        Some(name) => match RANGES.into_iter().find(|r| r.name == name) {
            Some(range) => range,
            None => {
                return page::error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "range={name:?} is not a chart range; use one of {}",
                        RANGES.map(|r| r.name).join(", ")
                    ),
                );
            }
        },
    };
    let now = SystemTime::now();
    let stored = match &dashboard.inner.store {
        Some(store) => {
            let store = store.clone();
            let passive = !view.active;
            let key = id.clone();
            let what = format!("the history of {id:?}");
            match page::blocking(&what, move || read(&store, &key, passive, range, now)).await {
                Ok(stored) => Some(stored),
                Err(response) => return response,
            }
        }
        None => None,
    };
    let meta = dashboard.meta(&view);
    let look = page::look(&view);
    let main = html! {
        div.target-head data-target=(view.id) {
            h1 { (view.name) }
            p.status-line {
                (page::pill(look))
                " since " (page::time_ago(now, view.since))
                @if view.flapping { " " span.flag { "flapping" } }
                " " (page::blocked(&view))
                @if let Some(until) = view.maintenance_until { " " span.flag { "maintenance until " (page::when(until)) } }
            }
            p.live-note hidden { "The state changed. " a href=(here) { "Reload" } " for the new history." }
        }
        @if !view.blocked_by.is_empty() {
            section #root-cause .notice.notice-bad aria-label="Root cause" {
                "Blocked: impaired because what it depends on is. Root cause: "
                (links(&dashboard, &view.blocked_by, &[]))
            }
        }
        dl.facts {
            dt { "Id" } dd { code { (view.id) } }
            dt { "Kind" } dd { (if view.active { "active check" } else { "heartbeat (passive)" }) }
            dt { "Group" } dd { (meta.group.as_deref().unwrap_or("—")) }
            dt { "Tags" } dd { @if meta.tags.is_empty() { "—" } @else { (meta.tags.join(", ")) } }
            @if let Some(parent) = &view.parent {
                dt { "Part of" } dd { (links(&dashboard, std::slice::from_ref(parent), &[])) }
            }
            dt { "Depends on" } dd { (links(&dashboard, &meta.depends_on, &view.blocked_by)) }
            dt { "Needed by" } dd { (links(&dashboard, &meta.dependents, &[])) }
        }
        (latest(&view, now))
        @match &stored {
            None => p.notice { "No history: this monitor runs without a store." },
            Some(stored) => (history(&view, stored, range, now, here)),
        }
    };
    page::respond(
        StatusCode::OK,
        page::layout(&view.name, Nav::Target, true, main),
    )
}

/// Links to targets with their current state (words and symbol), or a dash; those in
/// `roots` are marked as the root cause.
fn links(dashboard: &Dashboard, ids: &[String], roots: &[String]) -> Markup {
    html! {
        @if ids.is_empty() { "—" } @else {
            ul.inline {
                @for id in ids {
                    li data-target=(id) {
                        @match dashboard.inner.engine.view(id) {
                            Some(other) => {
                                (page::pill(page::look(&other))) " " a href=(page::target_href(id)) { (other.name) }
                                @if roots.contains(id) { " " strong.flag.root { "root cause" } }
                            }
                            None => { code { (id) } " (not configured)" }
                        }
                    }
                }
            }
        }
    }
}

fn latest(view: &TargetView, now: SystemTime) -> Markup {
    html! {
        section aria-labelledby="latest" {
            h2 #latest { "Latest result" }
            @match &view.last {
                None => p.muted { "No result yet: this target has not been checked or heard from since the monitor started." },
                Some(last) => {
                    p {
                        strong { (last.kind.as_str()) } " " (page::time_ago(now, Some(last.at)))
                        ", took " (page::millis(last.duration))
                        @if let Some(observed) = &last.observed { ", observed " (observed.value) " " (observed.unit) }
                    }
                    @if let Some(output) = &last.output { pre.output { (output) } }
                }
            }
        }
    }
}

fn history(
    view: &TargetView,
    stored: &Stored,
    range: Range,
    now: SystemTime,
    here: &str,
) -> Markup {
    let path = here.split('?').next().unwrap_or(here);
    html! {
        section aria-labelledby="uptime" {
            h2 #uptime { "Uptime, last " (BAR_DAYS) " days" }
            p { "24 hours: " strong { (page::percent(stored.history.day)) } " · 30 days: " strong { (page::percent(stored.history.month)) } }
            (chart::uptime_bar(&stored.history.cells, bar_start(now), &stored.days))
        }
        section aria-labelledby="latency" {
            h2 #latency { "Latency" }
            nav.ranges aria-label="Chart range" {
                @for r in RANGES {
                    a href={ (path) "?range=" (r.name) } aria-current=[(r == range).then_some("true")] { (r.name) }
                }
            }
            (chart::latency(&stored.latency, range, now))
        }
        section aria-labelledby="transitions" {
            h2 #transitions { "Transitions" }
            @if stored.transitions.is_empty() {
                p.muted { "No transition yet." }
            } @else {
                ol.timeline {
                    @for t in &stored.transitions {
                        li {
                            time datetime=(page::rfc3339(t.at)) { (page::when(t.at)) }
                            " " span.move { (t.from) " → " strong { (t.to) } }
                            " — " span.reason { (t.reason) }
                            @if let Some(output) = &t.cause_output { pre.output { (output) } }
                        }
                    }
                }
            }
        }
        @if !view.active {
            (pings(&stored.pings, now))
        }
        section aria-labelledby="results" {
            h2 #results { "Recent results" }
            @if stored.results.is_empty() {
                p.muted { "No stored result yet." }
            } @else {
                table {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Kind" } th scope="col" { "Took" } th scope="col" { "Output" } } }
                    tbody {
                        @for r in &stored.results {
                            tr {
                                td { (page::time_ago(now, Some(r.at))) }
                                td { (r.kind.as_str()) }
                                td { (page::millis(r.duration)) }
                                td { @match &r.output { Some(o) => code { (o) }, None => span.muted { "(kept for warnings and failures only)" } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn ping_kind(kind: PingKind) -> String {
    match kind {
        PingKind::Exit(code) => format!("exit {code}"),
        other => other.as_str().to_string(),
    }
}

fn pings(pings: &[Ping], now: SystemTime) -> Markup {
    let last_run = pings.iter().find(|p| {
        matches!(
            p.kind,
            PingKind::Success | PingKind::Fail | PingKind::Exit(_)
        )
    });
    html! {
        section aria-labelledby="pings" {
            h2 #pings { "Heartbeats" }
            @match last_run {
                None => p.muted { "No completed run reported yet." },
                Some(run) => {
                    h3 { "Last run" }
                    p {
                        strong { (ping_kind(run.kind)) } " " (page::time_ago(now, Some(run.at)))
                        @if let Some(d) = run.duration { ", ran for " (page::millis(d)) }
                        @if let Some(source) = &run.source { ", from " code { (source) } }
                    }
                    (body(run.body.as_deref()))
                }
            }
            @if !pings.is_empty() {
                h3 { "Latest pings" }
                ol.timeline {
                    @for p in pings {
                        li {
                            time datetime=(page::rfc3339(p.at)) { (page::when(p.at)) }
                            " " strong { (ping_kind(p.kind)) }
                            @if let Some(d) = p.duration { " · " (page::millis(d)) }
                            @if let Some(rid) = &p.rid { " · run " code { (rid) } }
                            (body(p.body.as_deref()))
                        }
                    }
                }
            }
        }
    }
}

fn body(body: Option<&str>) -> Markup {
    match body.filter(|b| !b.is_empty()) {
        None => html! {},
        Some(text) => {
            let cut = text.char_indices().nth(BODY_SHOWN).map(|(i, _)| i);
            html! {
                pre.output { (cut.map_or(text, |i| &text[..i])) }
                @if cut.is_some() { p.muted { "(cut at " (BODY_SHOWN) " characters)" } }
            }
        }
    }
}
