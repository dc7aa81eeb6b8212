//! Query parameters of the probe endpoints, validated against the registered checks.

use crate::health::Health;

/// What a probe request asked for.
#[derive(Debug, Default)]
pub(super) struct Params {
    pub(super) verbose: bool,
    pub(super) fresh: bool,
    /// Indices of the checks to leave out.
    pub(super) excluded: Vec<usize>,
}

/// A flag is on when present without a value or with any value but `0` / `false`
/// (`?verbose`, `?verbose=1`, `?verbose=true`).
fn flag(value: &str) -> bool {
    !matches!(value, "0" | "false")
}

impl Params {
    /// Parse the decoded query pairs. An unknown check name in `exclude` is an error naming
    /// it: a typo must not silently exclude nothing. Unknown parameters are ignored, as
    /// kube-apiserver does.
    pub(super) fn parse(pairs: &[(String, String)], health: &Health) -> Result<Params, String> {
        let mut params = Params::default();
        for (key, value) in pairs {
            match key.as_str() {
                "verbose" => params.verbose = flag(value),
                "fresh" => params.fresh = flag(value),
                "exclude" => {
                    for name in value
                        .split(',')
                        .map(str::trim)
                        .filter(|name| !name.is_empty())
                    {
                        match health.position(name) {
                            Some(index) => params.excluded.push(index),
                            None => {
                                let known: Vec<&str> =
                                    health.checks().iter().map(|check| check.name()).collect();
                                return Err(format!(
                                    "unknown check {name:?} in exclude; known checks: {}",
                                    if known.is_empty() {
                                        "none".to_string()
                                    } else {
                                        known.join(", ")
                                    }
                                ));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(params)
    }
}
