//! Checks across targets: unique ids and ping ids, and dependencies that name existing
//! targets, not the target itself, and form no cycle (root-cause analysis walks them).
//!
//! Not here: anything within one target (`build`, `kinds`).

use std::collections::{HashMap, HashSet};

use super::error::Diag;
use super::fields::suggest;
use super::val::At;

/// What the cross-target checks need to know of one target, gathered even when the target
/// itself has errors, so that a duplicate id is reported alongside them.
#[derive(Debug)]
pub(super) struct TargetInfo {
    /// `target[2] ("api")`.
    pub(super) path: String,
    /// The id as written, if it is a string (valid or not): references to an invalid id
    /// are not reported as unreachable on top of the invalid id.
    pub(super) raw_id: Option<At<String>>,
    /// The id, if valid.
    pub(super) id: Option<At<String>>,
    pub(super) depends_on: Vec<At<String>>,
    /// A heartbeat's ping id and whether it defaulted to the id.
    pub(super) ping_id: Option<(At<String>, bool)>,
    /// The name, if set and valid (the status page shows it).
    pub(super) name: Option<At<String>>,
    /// Whether its ping id may be a public name: its pings carry a key, or the operator
    /// said so with `public_ping_id = true`.
    pub(super) public_ping_id: bool,
}

pub(super) fn check(diag: &mut Diag<'_>, targets: &[TargetInfo]) {
    let ids = unique_ids(diag, targets);
    unique_ping_ids(diag, targets, &ids);
    secret_ping_ids(diag, targets);
    let edges = references(diag, targets);
    cycles(diag, targets, &edges);
}

/// Reports duplicate ids; returns each valid id's first target.
fn unique_ids<'t>(diag: &mut Diag<'_>, targets: &'t [TargetInfo]) -> HashMap<&'t str, usize> {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (index, target) in targets.iter().enumerate() {
        let Some(id) = &target.id else { continue };
        match first.get(id.value.as_str()) {
            Some(&earlier) => {
                let line = targets[earlier]
                    .id
                    .as_ref()
                    .map_or(0, |e| diag.line_of(&e.span));
                diag.error(
                    &id.span,
                    format!("{}.id", target.path),
                    format!("duplicate id {:?}: target[{earlier}] on line {line} has it already; ids must be unique", id.value),
                );
            }
            None => {
                first.insert(&id.value, index);
            }
        }
    }
    first
}

fn unique_ping_ids(diag: &mut Diag<'_>, targets: &[TargetInfo], ids: &HashMap<&str, usize>) {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (index, target) in targets.iter().enumerate() {
        let Some((ping_id, defaulted)) = &target.ping_id else {
            continue;
        };
        // A defaulted ping id of a duplicate id was reported as the duplicate id.
        let duplicate_id = target
            .id
            .as_ref()
            .is_some_and(|id| ids.get(id.value.as_str()) != Some(&index));
        if *defaulted && duplicate_id {
            continue;
        }
        match first.get(ping_id.value.as_str()) {
            Some(&earlier) => {
                let line = targets[earlier]
                    .ping_id
                    .as_ref()
                    .map_or(0, |(p, _)| diag.line_of(&p.span));
                let how = if *defaulted {
                    " (the default: the target's id)"
                } else {
                    ""
                };
                diag.error(
                    &ping_id.span,
                    format!("{}.ping_id", target.path),
                    format!(
                        "duplicate ping_id {:?}{how}: target[{earlier}] on line {line} uses it already; give each heartbeat its own ping_id",
                        ping_id.value
                    ),
                );
            }
            None => {
                first.insert(&ping_id.value, index);
            }
        }
    }
}

/// Reports a ping id that equals a name anyone can read (a target's id or name, which the
/// status page, badges and `/metrics` show) on a target whose pings carry no key: whoever
/// reads the name could send its pings. Keyed targets, and targets that say
/// `public_ping_id = true`, may.
fn secret_ping_ids(diag: &mut Diag<'_>, targets: &[TargetInfo]) {
    let mut public: HashMap<&str, &TargetInfo> = HashMap::new();
    for target in targets {
        for name in [target.id.as_ref(), target.name.as_ref()]
            .into_iter()
            .flatten()
        {
            public.entry(name.value.as_str()).or_insert(target);
        }
    }
    for target in targets {
        let Some((ping_id, _)) = &target.ping_id else {
            continue;
        };
        if target.public_ping_id {
            continue;
        }
        let Some(owner) = public.get(ping_id.value.as_str()) else {
            continue;
        };
        let whose = if std::ptr::eq(*owner, target) {
            "this target's id or name".to_string()
        } else {
            format!("the id or name of {}", owner.path)
        };
        diag.error(
            &ping_id.span,
            format!("{}.ping_id", target.path),
            format!(
                "ping_id {:?} is {whose}, which the status page, badges and /metrics show, so anyone could send this target's pings; remove ping_id to have the monitor generate one, set ping_key, or set public_ping_id = true to accept that",
                ping_id.value
            ),
        );
    }
}

/// Reports depends_on entries that name no target, the target itself, or a target twice.
/// Returns the valid edges (from, to, the entry), for the cycle check.
fn references<'t>(
    diag: &mut Diag<'_>,
    targets: &'t [TargetInfo],
) -> Vec<(usize, usize, &'t At<String>)> {
    let mut by_raw_id: HashMap<&str, usize> = HashMap::new();
    for (index, target) in targets.iter().enumerate() {
        if let Some(raw) = &target.raw_id {
            by_raw_id.entry(&raw.value).or_insert(index);
        }
    }
    let mut hints = Hints::new(targets);
    let mut edges = Vec::new();
    for (from, target) in targets.iter().enumerate() {
        let field = format!("{}.depends_on", target.path);
        let own = target.raw_id.as_ref().map(|id| id.value.as_str());
        for (i, entry) in target.depends_on.iter().enumerate() {
            let name = entry.value.as_str();
            if Some(name) == own {
                diag.error(
                    &entry.span,
                    &field,
                    format!("a target cannot depend on itself; remove {name:?}"),
                );
            } else if target.depends_on[..i].iter().any(|e| e.value == name) {
                diag.error(
                    &entry.span,
                    &field,
                    format!("{name:?} is listed twice; remove one"),
                );
            } else if let Some(&to) = by_raw_id.get(name) {
                edges.push((from, to, entry));
            } else {
                diag.error(
                    &entry.span,
                    &field,
                    format!(
                        "unreachable reference: no target has id {name:?}{}",
                        hints.hint(name)
                    ),
                );
            }
        }
    }
    edges
}

/// "; did you mean "api"?" for names that match no target id. Each suggestion compares a
/// name with every id, so each distinct name is looked up once: a renamed target that many
/// others depend on costs one pass over the ids, not one per dependent. A file without
/// such mistakes costs nothing.
struct Hints<'t> {
    targets: &'t [TargetInfo],
    seen: HashMap<String, Option<&'t str>>,
}

impl<'t> Hints<'t> {
    fn new(targets: &'t [TargetInfo]) -> Self {
        Hints {
            targets,
            seen: HashMap::new(),
        }
    }

    fn hint(&mut self, name: &str) -> String {
        // Every id as written, in file order (the first of equally close ids wins).
        let ids = self
            .targets
            .iter()
            .filter_map(|target| target.raw_id.as_ref().map(|id| id.value.as_str()));
        let close = *self
            .seen
            .entry(name.to_owned())
            .or_insert_with(|| suggest(name, ids));
        close.map_or_else(String::new, |close| format!("; did you mean {close:?}?"))
    }
}

/// Reports canaries that name no target, or one twice.
pub(super) fn canaries(diag: &mut Diag<'_>, canaries: &[At<String>], targets: &[TargetInfo]) {
    if canaries.is_empty() {
        return;
    }
    let mut hints = Hints::new(targets);
    let ids: HashSet<&str> = targets
        .iter()
        .filter_map(|target| target.raw_id.as_ref().map(|id| id.value.as_str()))
        .collect();
    for (i, entry) in canaries.iter().enumerate() {
        let name = entry.value.as_str();
        if canaries[..i].iter().any(|e| e.value == name) {
            diag.error(
                &entry.span,
                "server.canaries",
                format!("{name:?} is listed twice; remove one"),
            );
        } else if !ids.contains(name) {
            diag.error(
                &entry.span,
                "server.canaries",
                format!(
                    "unreachable reference: no target has id {name:?}{}",
                    hints.hint(name)
                ),
            );
        }
    }
}

/// Reports each dependency cycle once, at the entry that closes it.
fn cycles(diag: &mut Diag<'_>, targets: &[TargetInfo], edges: &[(usize, usize, &At<String>)]) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut out: Vec<Vec<(usize, &At<String>)>> = vec![Vec::new(); targets.len()];
    for &(from, to, entry) in edges {
        out[from].push((to, entry));
    }
    let mut marks = vec![Mark::New; targets.len()];
    let name = |i: usize| {
        targets[i]
            .raw_id
            .as_ref()
            .map_or_else(|| format!("target[{i}]"), |id| id.value.clone())
    };
    for start in 0..targets.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // Iterative depth-first search: a long chain of dependencies must not overflow
        // the stack. Each frame is a target and the next of its edges to follow.
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::OnPath;
        while let Some(frame) = path.last_mut() {
            let node = frame.0;
            let Some(&(to, entry)) = out[node].get(frame.1) else {
                marks[node] = Mark::Done;
                path.pop();
                continue;
            };
            frame.1 += 1;
            match marks[to] {
                Mark::New => {
                    marks[to] = Mark::OnPath;
                    path.push((to, 0));
                }
                Mark::OnPath => {
                    let from = path.iter().position(|&(n, _)| n == to).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path[from..].iter().map(|&(n, _)| name(n)).collect();
                    cycle.push(name(to));
                    diag.error(
                        &entry.span,
                        format!("{}.depends_on", targets[node].path),
                        format!(
                            "dependency cycle {}; root-cause analysis needs dependencies without cycles: remove one of these",
                            cycle.join(" → ")
                        ),
                    );
                }
                Mark::Done => {}
            }
        }
    }
}
