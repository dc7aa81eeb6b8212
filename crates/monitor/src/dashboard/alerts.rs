//! The alert groups page at `/alerts`: every open group (a rule and the values of its
//! `group_by` labels), where its notifications stand, and its members, each a link to its
//! target. `?group=<key>` shows one group: the page group notifications link to.
//!
//! Read from the notifier's policy (in memory, what the next notification will say); the
//! history of what was sent is `/api/v1/alerts`. What this is not: a place to silence or
//! acknowledge (silences are `POST /api/v1/silences`).

use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::page::{self, Nav};
use super::{Dashboard, access};
use crate::notify::{Alert, GroupState};

#[derive(Debug, Default, Deserialize)]
pub(super) struct Params {
    group: Option<String>,
}

pub(super) async fn page(
    State(dashboard): State<Dashboard>,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let here = uri.path_and_query().map_or("/alerts", |p| p.as_str());
    if let Some(denied) = access::denied(&dashboard.inner.access, &headers, here) {
        return denied;
    }
    let Some(notifier) = &dashboard.inner.alerts else {
        return page::error(
            StatusCode::NOT_FOUND,
            "this monitor runs without notifications, so it has no alert groups",
        );
    };
    let mut groups = notifier.groups().await;
    let wanted = params.group.filter(|g| !g.is_empty());
    if let Some(key) = &wanted {
        groups.retain(|g| &g.key == key);
        if groups.is_empty() {
            let message = format!(
                "group={key:?} is not open: it closed when its last member recovered (its \
                 notifications are in /api/v1/alerts), or never existed"
            );
            return page::error(StatusCode::NOT_FOUND, &message);
        }
    }
    let main = html! {
        h1 { "Alert groups" }
        @if groups.is_empty() {
            p { "No open group: nothing is alerting." }
        }
        @for group in &groups {
            (section(group))
        }
    };
    page::respond(
        StatusCode::OK,
        page::layout("Alert groups", Nav::Alerts, false, main),
    )
}

fn section(group: &GroupState) -> Markup {
    let title: Vec<String> = group
        .labels
        .iter()
        .map(|(label, value)| format!("{label}={value}"))
        .collect();
    let title = if title.is_empty() {
        format!("rule[{}]", group.rule)
    } else {
        title.join(", ")
    };
    html! {
        section.group id=(group.key) {
            h2 {
                a href={ "/alerts?group=" (page::segment(&group.key)) } { (title) }
            }
            p {
                (group.firing.len()) " firing, " (group.resolved.len()) " resolved since the last notification · "
                @if group.flushed {
                    "notification " (group.sequence) " sent"
                    @if group.changed { "; changed since, an update follows at the next interval" }
                } @else {
                    "waiting to collect members (group_wait)"
                }
                " · opened " (page::when(group.opened))
                " · key " code { (group.key) }
            }
            (members("Firing", group.firing.values()))
            (members("Resolved", group.resolved.values()))
        }
    }
}

fn members<'a>(title: &str, alerts: impl ExactSizeIterator<Item = &'a Alert>) -> Markup {
    if alerts.len() == 0 {
        return html! {};
    }
    html! {
        table {
            caption { (title) }
            thead { tr { th { "target" } th { "alert" } th { "since" } th { "dependents" } } }
            tbody {
                @for alert in alerts {
                    tr {
                        td { a href=(page::target_href(&alert.target)) { (alert.name) } }
                        td { (alert.kind.as_str()) }
                        td { (page::when(alert.at)) }
                        td { (alert.dependents.join(", ")) }
                    }
                }
            }
        }
    }
}
