//! A target's `[target.recover]` table: the action that may bring it back (a command, or an
//! HTTP request) and the restart budget that limits it.
//!
//! ```toml
//! [[target]]
//! id = "api"
//! kind = "http"
//! url = "http://127.0.0.1:8080/health"
//!
//! [target.recover]
//! command = ["systemctl", "restart", "api"]   # or: http = { url = "…", method = "POST" }
//! max_attempts = 3      # within window
//! window = "1h"
//! backoff = "30s"       # doubles after each attempt …
//! backoff_max = "10m"   # … up to this
//! reset_after = "10m"   # healthy this long: attempts are forgotten
//! timeout = "30s"       # the action is killed (or the request cut) after this
//! ```
//!
//! Every error points at the key that is wrong, or at the table when an action is missing.
//! The budget's rules are the core's ([`vitals_core::recovery::BudgetPolicy`]), checked by it.
//!
//! Not here: running the action or keeping the budget (`crate::recovery`).

use std::time::Duration;

use toml::Spanned;
use toml::de::DeValue;
use vitals_core::recovery::BudgetPolicy;

use super::error::Diag;
use super::fields::{At, Reported, Scope, Val, read_table};
use super::keys;

/// How long an action may run unless `timeout` is set: long enough for a service manager to
/// stop and start a service, short enough that a hung command does not hold up the next try.
pub const DEFAULT_ACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// What a target does to recover, and how often it may.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    pub action: RecoveryAction,
    /// Attempts, window, backoff and reset; validated.
    pub policy: BudgetPolicy,
    /// An action still running after this is killed (a command) or cut (a request), and
    /// counts as a failed attempt.
    pub timeout: Duration,
}

/// The recovery action itself.
#[derive(Debug, Clone, PartialEq)]
pub enum RecoveryAction {
    /// The program then its arguments; no shell runs it. It runs in a process group of its
    /// own, so a service it starts does not share the monitor's terminal signals.
    Command(Vec<String>),
    /// An HTTP request; a 2xx answer is success.
    Http {
        url: String,
        /// Upper case; POST unless set.
        method: String,
        headers: Vec<(String, String)>,
    },
}

impl RecoveryAction {
    /// The action as people read it: the command line, or `POST http://…`.
    pub fn describe(&self) -> String {
        match self {
            RecoveryAction::Command(argv) => argv
                .iter()
                .map(|arg| {
                    if arg.is_empty() || arg.contains(char::is_whitespace) {
                        format!("{arg:?}")
                    } else {
                        arg.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
            RecoveryAction::Http { url, method, .. } => format!("{method} {url}"),
        }
    }
}

/// Reads the `recover` table of a target; `field` is its path (`target[0] ("api").recover`).
pub(super) fn read(
    diag: &mut Diag<'_>,
    value: &Spanned<DeValue<'_>>,
    field: &str,
) -> Result<Val, Reported> {
    let DeValue::Table(table) = value.get_ref() else {
        diag.error(
            &value.span(),
            field,
            "expected a table: write [target.recover] under the target, with command = [...] or http = { url = \"...\" }",
        );
        return Err(Reported);
    };
    // `http` is itself a table with keys of its own: read apart from the flat keys.
    let mut flat = table.clone();
    let http = flat.remove("http");
    let outer = Spanned::new(value.span(), DeValue::Table(flat));
    let f = read_table(diag, &outer, keys::RECOVER, Scope::Any, field)?;
    let http = http.map(|http| read_http(diag, &http, &format!("{field}.http")));

    let command = f.list("command");
    let mut failed = false;
    let mut take = |read: Result<Option<At<Duration>>, Reported>, default| match read {
        Ok(at) => at.map_or(default, |at| at.value),
        Err(Reported) => {
            failed = true;
            default
        }
    };
    let base = BudgetPolicy::default();
    let window = take(f.duration("window"), base.window);
    let backoff = take(f.duration("backoff"), base.backoff);
    let backoff_max = take(f.duration("backoff_max"), base.backoff_max);
    let reset_after = take(f.duration("reset_after"), base.reset_after);
    let timeout = take(f.duration("timeout"), DEFAULT_ACTION_TIMEOUT);
    let max_attempts = match f.count("max_attempts") {
        Ok(at) => at.map_or(base.max_attempts, |at| at.value),
        Err(Reported) => {
            failed = true;
            base.max_attempts
        }
    };
    let policy = BudgetPolicy {
        max_attempts,
        window,
        backoff,
        backoff_max,
        reset_after,
    };
    let action = match (command, http) {
        (Ok(Some(_)), Some(_)) => {
            diag.error(
                &value.span(),
                field,
                "has both command and http; a recovery action is one of them: remove the other",
            );
            None
        }
        (Ok(Some(argv)), None) => Some(RecoveryAction::Command(
            argv.value.into_iter().map(|at| at.value).collect(),
        )),
        (Ok(None), Some(Ok(http))) => Some(http),
        (Ok(None), None) => {
            diag.error(
                &value.span(),
                field,
                "has no action; give command = [\"systemctl\", \"restart\", \"api\"], or http = { url = \"http://127.0.0.1:9000/restart\", method = \"POST\" }",
            );
            None
        }
        // Reported where it was read.
        (Err(Reported), _) | (_, Some(Err(Reported))) => None,
    };
    if failed {
        return Err(Reported);
    }
    // A backoff_max left out follows a longer backoff rather than contradicting it.
    let policy = if f.has("backoff") && !f.has("backoff_max") {
        BudgetPolicy {
            backoff_max: policy.backoff_max.max(policy.backoff),
            ..policy
        }
    } else {
        policy
    };
    if let Err(error) = policy.validate() {
        let span = f.span(error.field).unwrap_or_else(|| value.span());
        diag.error(&span, format!("{field}.{}", error.field), error.message);
        return Err(Reported);
    }
    if timeout.is_zero() {
        let span = f.span("timeout").unwrap_or_else(|| value.span());
        diag.error(
            &span,
            format!("{field}.timeout"),
            "is zero; the action could never finish: set it like \"30s\"",
        );
        return Err(Reported);
    }
    let action = action.ok_or(Reported)?;
    Ok(Val::Recover(Box::new(Recovery {
        action,
        policy,
        timeout,
    })))
}

/// `http = { url = "…", method = "POST", headers = { … } }`.
fn read_http(
    diag: &mut Diag<'_>,
    value: &Spanned<DeValue<'_>>,
    field: &str,
) -> Result<RecoveryAction, Reported> {
    if !matches!(value.get_ref(), DeValue::Table(_)) {
        diag.error(
            &value.span(),
            field,
            "expected a table like { url = \"http://127.0.0.1:9000/restart\", method = \"POST\" }",
        );
        return Err(Reported);
    }
    let f = read_table(diag, value, keys::RECOVER_HTTP, Scope::Any, field)?;
    if !f.has("url") {
        diag.error(
            &value.span(),
            format!("{field}.url"),
            "missing url; write url = \"http://127.0.0.1:9000/restart\"",
        );
    }
    let (url, method, headers) = (f.str("url"), f.str("method"), f.headers("headers"));
    Ok(RecoveryAction::Http {
        url: url?.ok_or(Reported)?.value,
        method: method?.map_or_else(|| "POST".to_owned(), |at| at.value),
        headers: headers?.map_or_else(Vec::new, |at| at.value),
    })
}

#[cfg(test)]
mod tests;
