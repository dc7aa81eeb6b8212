//! The overview at `/`: every target with its state, since when, uptime over 24 h and 30 d,
//! latest latency and a 24-hour strip; filters by state, group and tag, a search by name,
//! what needs a person first, a page at a time.
//!
//! Filtering and sorting use the engine's in-memory states only; the store is asked once per
//! page view, for the page's targets together (`Store::histories`), so 10,000 targets cost
//! what 100 do. What this is not: the target page or anything live (the script updates
//! states in place from `/events`).

use std::time::SystemTime;

use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use vitals_core::machine::State as MachineState;

use super::page::{self, Nav};
use super::{Dashboard, Meta, access, chart};
use crate::engine::TargetView;
use crate::store::{Bucket, History};

/// Rows per page: small enough to render at once on a phone, large enough to rarely page.
pub(super) const PAGE_SIZE: usize = 100;

/// Hours in the strip.
const STRIP_HOURS: usize = 24;

/// The query string, all optional; bad values are a 400 naming the parameter.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Params {
    state: Option<String>,
    group: Option<String>,
    tag: Option<String>,
    q: Option<String>,
    page: Option<String>,
}

/// What the state filter can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StateFilter {
    All,
    /// Anything that is not healthy (and not paused).
    Problems,
    Paused,
    Is(MachineState),
}

impl StateFilter {
    fn parse(value: Option<&str>) -> Result<StateFilter, String> {
        match value.unwrap_or("") {
            "" | "all" => Ok(StateFilter::All),
            "problems" => Ok(StateFilter::Problems),
            "paused" => Ok(StateFilter::Paused),
            other => MachineState::ALL
                .into_iter()
                .find(|s| s.as_str() == other)
                .map(StateFilter::Is)
                .ok_or_else(|| {
                    format!(
                        "state={other:?} is not a state; use all, problems, paused or one of {}",
                        MachineState::ALL.map(MachineState::as_str).join(", ")
                    )
                }),
        }
    }

    fn keeps(self, view: &TargetView) -> bool {
        match self {
            StateFilter::All => true,
            StateFilter::Problems => !view.paused && view.state != MachineState::Healthy,
            StateFilter::Paused => view.paused,
            StateFilter::Is(state) => !view.paused && view.state == state,
        }
    }
}

/// The filters as validated.
struct Filters {
    state: StateFilter,
    group: Option<String>,
    tag: Option<String>,
    /// Lowercased search text.
    q: Option<String>,
    page: usize,
}

fn validate(params: &Params) -> Result<Filters, String> {
    let nonempty = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
    let page = match params.page.as_deref().filter(|p| !p.is_empty()) {
        None => 1,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|&p| p >= 1)
            .ok_or_else(|| format!("page={text:?} is not a page number; pages start at 1"))?,
    };
    Ok(Filters {
        state: StateFilter::parse(params.state.as_deref())?,
        group: nonempty(&params.group),
        tag: nonempty(&params.tag),
        q: nonempty(&params.q).map(|q| q.to_lowercase()),
        page,
    })
}

fn keeps(filters: &Filters, view: &TargetView, meta: &Meta) -> bool {
    filters.state.keeps(view)
        && filters
            .group
            .as_ref()
            .is_none_or(|g| meta.group.as_ref() == Some(g))
        && filters.tag.as_ref().is_none_or(|t| meta.tags.contains(t))
        && filters.q.as_ref().is_none_or(|q| {
            view.name.to_lowercase().contains(q) || view.id.to_lowercase().contains(q)
        })
}

pub(super) async fn page(
    State(dashboard): State<Dashboard>,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let here = uri.path_and_query().map_or("/", |p| p.as_str());
    if let Some(denied) = access::denied(&dashboard.inner.access, &headers, here) {
        return denied;
    }
    let filters = match validate(&params) {
        Ok(filters) => filters,
        Err(message) => return page::error(StatusCode::BAD_REQUEST, &message),
    };
    let now = SystemTime::now();
    let views = dashboard.inner.engine.views();
    let counts = count_states(&views);
    let mut rows: Vec<TargetView> = views
        .into_iter()
        .filter(|view| keeps(&filters, view, &dashboard.meta(view)))
        .collect();
    rows.sort_by(|a, b| {
        page::rank(a)
            .cmp(&page::rank(b))
            .then_with(|| a.name.cmp(&b.name))
    });
    let matching = rows.len();
    let pages = matching.div_ceil(PAGE_SIZE).max(1);
    let current = filters.page.min(pages);
    let shown: Vec<TargetView> = rows
        .into_iter()
        .skip((current - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .collect();

    let histories = match &dashboard.inner.store {
        Some(store) => {
            let store = store.clone();
            let ids: Vec<String> = shown.iter().map(|v| v.id.clone()).collect();
            let read = move || store.histories(&ids, now, Bucket::Hour, STRIP_HOURS);
            match page::blocking("the targets' history", read).await {
                Ok(histories) => histories,
                Err(response) => return response,
            }
        }
        None => Default::default(),
    };

    let table = html! {
        table.targets {
            caption.visually-hidden { "Targets, those needing attention first" }
            thead {
                tr {
                    th scope="col" { "State" }
                    th scope="col" { "Target" }
                    th.wide scope="col" { "Group" }
                    th scope="col" { "Since" }
                    th scope="col" { abbr title="uptime over the last 24 hours" { "24 h" } }
                    th.wide scope="col" { abbr title="uptime over the last 30 days" { "30 d" } }
                    th.wide scope="col" { "Latency" }
                    th.wide scope="col" { "Last 24 h" }
                }
            }
            tbody {
                @for view in &shown {
                    (row(now, view, &dashboard.meta(view), histories.get(&view.id)))
                }
            }
        }
    };
    let total = dashboard.inner.engine.specs().len();
    let main = html! {
        h1 { "Overview" }
        (isolation_banner(&dashboard))
        @if total == 0 {
            p.banner.st-info role="status" {
                "No targets yet. Add a " code { "[[target]]" } " to the configuration file (see "
                code { "docs/CONFIG.md" } "; " code { "examples/quickstart.toml" }
                " is a small start) and restart "
                code { "vitals serve" } "; " code { "vitals check-config FILE" } " checks it first."
            }
        }
        (summary(&counts))
        // Shown by the script after a live change: rows update in place, counts and order do not.
        p.muted.stale-note hidden {
            "States have changed since this page loaded; counts and order are as of then. "
            a href=(here) { "Reload" }
        }
        (filter_form(&dashboard, &filters))
        p.muted #results {
            (matching) " of " (total) " targets"
            @if pages > 1 { ", page " (current) " of " (pages) }
        }
        @if shown.is_empty() {
            p { "No target matches these filters." }
        } @else {
            (table)
        }
        (pager(&params, current, pages))
    };
    page::respond(
        StatusCode::OK,
        page::layout("Overview", Nav::Overview, true, main),
    )
}

/// While every canary fails the monitor suspects its own network: say so above everything,
/// since the states below are held rather than judged (no target goes down or alerts).
fn isolation_banner(dashboard: &Dashboard) -> Markup {
    let engine = &dashboard.inner.engine;
    if !engine.is_isolated() {
        return html! {};
    }
    let canaries: Vec<String> = engine
        .specs()
        .iter()
        .filter(|spec| engine.is_canary(&spec.id))
        .map(|spec| spec.name.clone())
        .collect();
    html! {
        p.banner.st-bad role="alert" {
            span aria-hidden="true" { "⚠ " }
            "Isolated: every canary is failing (" (canaries.join(", ")) "), so this monitor's own "
            "network is suspect. Failures of other targets are recorded but not judged: none goes "
            "down or alerts until a canary passes again."
        }
    }
}

/// Counts per look, most urgent first, for the line at the top.
fn count_states(views: &[TargetView]) -> Vec<(page::Look, usize)> {
    let mut counts: Vec<(u8, page::Look, usize)> = Vec::new();
    for view in views {
        let look = page::look(view);
        let rank = page::rank(view);
        match counts.iter_mut().find(|(_, l, _)| l.label == look.label) {
            Some((_, _, n)) => *n += 1,
            None => counts.push((rank, look, 1)),
        }
    }
    counts.sort_by_key(|(rank, _, _)| *rank);
    counts.into_iter().map(|(_, l, n)| (l, n)).collect()
}

fn summary(counts: &[(page::Look, usize)]) -> Markup {
    html! {
        ul.counts aria-label="Targets by state" {
            @for (look, n) in counts {
                li {
                    a href={ "/?state=" (look.label) } {
                        (page::pill(*look)) " " strong { (n) }
                    }
                }
            }
        }
    }
}

fn row(now: SystemTime, view: &TargetView, meta: &Meta, history: Option<&History>) -> Markup {
    let look = page::look(view);
    let empty = History::default();
    let history = history.unwrap_or(&empty);
    html! {
        tr data-target=(view.id) data-name=(view.name) {
            td {
                (page::pill(look))
                @if view.maintenance_until.is_some() { " " span.flag { "maintenance" } }
                " " (page::blocked(view))
            }
            th scope="row" { a href=(page::target_href(&view.id)) { (view.name) } }
            td.wide { (meta.group.as_deref().unwrap_or("—")) }
            td { (page::time_ago(now, view.since)) }
            td { (page::percent(history.day)) }
            td.wide { (page::percent(history.month)) }
            td.wide { @match &view.last { Some(last) => (page::millis(last.duration)), None => "—" } }
            td.wide { (chart::strip(&history.cells)) }
        }
    }
}

fn filter_form(dashboard: &Dashboard, filters: &Filters) -> Markup {
    let catalog = dashboard.catalog();
    let state_value = match filters.state {
        StateFilter::All => "all",
        StateFilter::Problems => "problems",
        StateFilter::Paused => "paused",
        StateFilter::Is(state) => state.as_str(),
    };
    let states = ["all", "problems", "paused"]
        .into_iter()
        .chain(MachineState::ALL.map(MachineState::as_str));
    html! {
        form.filters method="get" action="/" role="search" {
            label {
                "Search "
                input type="search" name="q" value=[filters.q.as_deref()] placeholder="name or id";
            }
            label {
                "State "
                select name="state" {
                    @for s in states {
                        option value=(s) selected[s == state_value] { (s) }
                    }
                }
            }
            @if !catalog.groups.is_empty() {
                label {
                    "Group "
                    select name="group" {
                        option value="" { "all" }
                        @for g in &catalog.groups {
                            option value=(g) selected[filters.group.as_ref() == Some(g)] { (g) }
                        }
                    }
                }
            }
            @if !catalog.tags.is_empty() {
                label {
                    "Tag "
                    select name="tag" {
                        option value="" { "all" }
                        @for t in &catalog.tags {
                            option value=(t) selected[filters.tag.as_ref() == Some(t)] { (t) }
                        }
                    }
                }
            }
            button type="submit" { "Filter" }
            a href="/" { "Clear" }
        }
    }
}

/// Previous / next links that keep the filters.
fn pager(params: &Params, current: usize, pages: usize) -> Markup {
    if pages <= 1 {
        return html! {};
    }
    let link = |page: usize| {
        let mut query = form_urlencoded(params);
        query.push_str(&format!("page={page}"));
        format!("/?{query}")
    };
    html! {
        nav.pager aria-label="Pages" {
            @if current > 1 { a href=(link(current - 1)) rel="prev" { "← Previous" } }
            span { "Page " (current) " of " (pages) }
            @if current < pages { a href=(link(current + 1)) rel="next" { "Next →" } }
        }
    }
}

/// The filter parameters (not the page) as `k=v&` pairs, percent-encoded.
fn form_urlencoded(params: &Params) -> String {
    let mut out = String::new();
    for (key, value) in [
        ("q", &params.q),
        ("state", &params.state),
        ("group", &params.group),
        ("tag", &params.tag),
    ] {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            out.push_str(key);
            out.push('=');
            out.push_str(&page::segment(value));
            out.push('&');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_parameters_name_themselves() {
        let params = Params {
            state: Some("sideways".into()),
            ..Params::default()
        };
        let error = validate(&params).err().unwrap();
        assert!(error.starts_with("state=\"sideways\""), "{error}");
        let params = Params {
            page: Some("0".into()),
            ..Params::default()
        };
        assert!(validate(&params).err().unwrap().starts_with("page=\"0\""));
    }
}
