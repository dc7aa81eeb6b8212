//! Pages of `/api/v1/targets`: at most `limit` rows (100 unless asked, 1,000 at most) in a
//! stable order by id, and an opaque `cursor` for the page after.
//!
//! The order is by configured target id; a vitals service's own checks (`<id>/<check>`)
//! follow their service, by check name. A cursor names the last row of the page it ends, and
//! the next page starts after that row wherever it would sort: so a cursor stays good when
//! rows come and go between pages (after a restart with another configuration, or when a
//! service reports a new check), and a walk through the pages never shows a row twice. It is
//! that id in hex, so that it needs no escaping in a URL; clients hand it back unchanged.
//!
//! A page costs what its rows cost, not what 100,000 targets cost: the order is sorted once,
//! on the first request, and each row is read from the engine by id. The one exception is a
//! page holding a service target: the engine has no lookup of one service's checks, so the
//! handler then reads every row once to find them.
//!
//! What it is not: a filter. Every target is listed, in this order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::engine::{Engine, Mode, TargetSpec, TargetView};

/// Rows per page when `limit` is not given: as the dashboard shows.
pub(super) const DEFAULT_LIMIT: usize = 100;
/// The most rows a page holds: about 220 kB of JSON, so no request can ask the monitor to
/// build the 22 MB answer of 100,000 targets at once again.
pub(super) const MAX_LIMIT: usize = 1000;

/// Where a page starts: after the row with this id. `check` is set when that row was one of
/// service `id`'s checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct After {
    id: String,
    check: Option<String>,
}

/// `limit` and `cursor` as validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Request {
    pub(super) limit: usize,
    pub(super) after: Option<After>,
}

/// Validates the query's `limit` and `cursor`; an error names the parameter and what it
/// takes. An empty value counts as absent, as in the dashboard's query strings.
pub(super) fn request(limit: Option<&str>, cursor: Option<&str>) -> Result<Request, String> {
    let range = format!("use 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})");
    let limit = match limit.filter(|text| !text.is_empty()) {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            Ok(n) => return Err(format!("limit={n} is out of range; {range}")),
            Err(_) => return Err(format!("limit={text:?} is not a whole number; {range}")),
        },
    };
    let after = match cursor.filter(|text| !text.is_empty()) {
        None => None,
        Some(text) => Some(decode(text).ok_or_else(|| {
            format!(
                "cursor={text:?} is not a cursor this API gave out; pass next_cursor from the previous page unchanged, or leave cursor out for the first page"
            )
        })?),
    };
    Ok(Request { limit, after })
}

/// The cursor of the page after the row `id`.
pub(super) fn cursor(id: &str) -> String {
    hex::encode(id)
}

fn decode(cursor: &str) -> Option<After> {
    let id = String::from_utf8(hex::decode(cursor).ok()?).ok()?;
    let (id, check) = match id.split_once('/') {
        Some((id, check)) => (id.to_owned(), Some(check.to_owned())),
        None => (id, None),
    };
    (!id.is_empty()).then_some(After { id, check })
}

/// The indices of a set of targets ordered by id, and the set it was sorted for.
#[derive(Debug)]
pub(crate) struct Order {
    specs: Arc<[TargetSpec]>,
    order: Arc<Vec<usize>>,
}

/// The indices of `specs` ordered by id: what [`page`] walks. Sorted once per set of
/// targets (at the first request after start-up or a reload) and kept in `cache`.
pub(super) fn order(cache: &Mutex<Option<Order>>, specs: &Arc<[TargetSpec]>) -> Arc<Vec<usize>> {
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(cached) = cache.as_ref()
        && Arc::ptr_eq(&cached.specs, specs)
    {
        return Arc::clone(&cached.order);
    }
    let mut order: Vec<usize> = (0..specs.len()).collect();
    order.sort_unstable_by(|&a, &b| specs[a].id.cmp(&specs[b].id));
    let order = Arc::new(order);
    *cache = Some(Order {
        specs: Arc::clone(specs),
        order: Arc::clone(&order),
    });
    order
}

/// One page: up to `limit` rows after `after`, and the cursor of the next page if there are
/// more. `order` is [`order`]'s.
pub(super) fn page(
    engine: &Engine,
    specs: &[TargetSpec],
    order: &[usize],
    after: Option<&After>,
    limit: usize,
) -> (Vec<TargetView>, Option<String>) {
    let start = after.map_or(0, |after| {
        order.partition_point(|&i| specs[i].id.as_str() < after.id.as_str())
    });
    let mut checks: Option<HashMap<String, Vec<TargetView>>> = None;
    // One row more than asked tells whether there is a next page.
    let mut rows = Vec::with_capacity(limit + 1);
    for &index in order.get(start..).unwrap_or_default() {
        if rows.len() > limit {
            break;
        }
        let spec = &specs[index];
        // The target the cursor names was shown; of its checks, those after the cursor's.
        let resumed = after.filter(|after| after.id == spec.id);
        if resumed.is_none() {
            rows.extend(engine.view(&spec.id));
        }
        if matches!(spec.mode, Mode::Service { .. }) {
            let checks = checks.get_or_insert_with(|| checks_by_service(engine));
            let after_check = resumed.and_then(|after| after.check.as_deref());
            rows.extend(
                checks
                    .remove(&spec.id)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|row| after_check.is_none_or(|after| check_name(row) > after)),
            );
        }
    }
    let next = (rows.len() > limit).then(|| {
        rows.truncate(limit);
        rows.last().map(|row| cursor(&row.id))
    });
    (rows, next.flatten())
}

/// Every service's checks, each service's by name.
fn checks_by_service(engine: &Engine) -> HashMap<String, Vec<TargetView>> {
    let mut by_service: HashMap<String, Vec<TargetView>> = HashMap::new();
    for view in engine.views() {
        if let Some(parent) = view.parent.clone() {
            by_service.entry(parent).or_default().push(view);
        }
    }
    for checks in by_service.values_mut() {
        checks.sort_by(|a, b| a.id.cmp(&b.id));
    }
    by_service
}

/// `check` of a row `<service>/<check>`.
fn check_name(row: &TargetView) -> &str {
    row.id.split_once('/').map_or("", |(_, check)| check)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(id: &str, check: Option<&str>) -> Option<After> {
        Some(After {
            id: id.to_owned(),
            check: check.map(str::to_owned),
        })
    }

    #[test]
    fn limit_defaults_and_is_bounded() {
        let limit = |text| request(text, None).map(|r| r.limit);
        assert_eq!(limit(None), Ok(DEFAULT_LIMIT));
        assert_eq!(limit(Some("")), Ok(DEFAULT_LIMIT));
        assert_eq!(limit(Some("1")), Ok(1));
        assert_eq!(limit(Some("1000")), Ok(1000));
        assert_eq!(
            limit(Some("0")),
            Err("limit=0 is out of range; use 1 to 1000 (default 100)".into())
        );
        assert_eq!(
            limit(Some("1001")),
            Err("limit=1001 is out of range; use 1 to 1000 (default 100)".into())
        );
        assert_eq!(
            limit(Some("-5")),
            Err("limit=\"-5\" is not a whole number; use 1 to 1000 (default 100)".into())
        );
    }

    #[test]
    fn cursors_name_the_row_they_follow() {
        let parsed = |id: &str| request(None, Some(&cursor(id))).map(|r| r.after);
        assert_eq!(parsed("api"), Ok(after("api", None)));
        assert_eq!(
            parsed("orders/database"),
            Ok(after("orders", Some("database")))
        );
        assert_eq!(request(None, Some("")).map(|r| r.after), Ok(None));
        for bad in ["zz", "616", "ff", "2f6462"] {
            let error = request(None, Some(bad)).unwrap_err();
            assert!(
                error.starts_with(&format!("cursor={bad:?} is not a cursor")),
                "{error}"
            );
        }
    }
}
