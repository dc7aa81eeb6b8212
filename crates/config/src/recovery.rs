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
//! Not here: the types it builds ([`Recovery`], in `model`), running the action or keeping
//! the budget (the monitor's recovery executor).

use std::time::Duration;

use toml::Spanned;
use toml::de::DeValue;
use vitals_core::recovery::BudgetPolicy;

use super::error::Diag;
use super::fields::Scope;
use super::keys::Section;
use super::keys::{RECOVER_HTTP_TABLE, recover, recover_http};
use super::model::{DEFAULT_ACTION_TIMEOUT, Recovery, RecoveryAction};
use super::val::{At, Reported, Val};
use super::value;

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
    let http = flat.remove(RECOVER_HTTP_TABLE);
    let outer = Spanned::new(value.span(), DeValue::Table(flat));
    let f = value::table::<recover::Table>(diag, &outer, Scope::Any, field)?;
    let http = http.map(|http| read_http(diag, &http, &format!("{field}.{RECOVER_HTTP_TABLE}")));

    let command = f.get(recover::COMMAND);
    let trust = f.get(recover::TRUST_UNAUTHENTICATED_PINGS);
    let mut failed = false;
    let mut take = |read: Result<Option<At<Duration>>, Reported>, default| match read {
        Ok(at) => at.map_or(default, |at| at.value),
        Err(Reported) => {
            failed = true;
            default
        }
    };
    let base = BudgetPolicy::default();
    let window = take(f.get(recover::WINDOW), base.window);
    let backoff = take(f.get(recover::BACKOFF), base.backoff);
    let backoff_max = take(f.get(recover::BACKOFF_MAX), base.backoff_max);
    let reset_after = take(f.get(recover::RESET_AFTER), base.reset_after);
    let timeout = take(f.get(recover::TIMEOUT), DEFAULT_ACTION_TIMEOUT);
    let trust_unauthenticated_pings = match trust {
        Ok(at) => at.is_some_and(|at| at.value),
        Err(Reported) => {
            failed = true;
            false
        }
    };
    let max_attempts = match f.get(recover::MAX_ATTEMPTS) {
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
    let policy = if f.has(recover::BACKOFF) && !f.has(recover::BACKOFF_MAX) {
        BudgetPolicy {
            backoff_max: policy.backoff_max.max(policy.backoff),
            ..policy
        }
    } else {
        policy
    };
    if let Err(error) = policy.validate() {
        // The core names the field it blames by string: the one lookup by name here.
        let span = recover::Table::named(error.field)
            .and_then(|key| f.span(key))
            .unwrap_or_else(|| value.span());
        diag.error(&span, format!("{field}.{}", error.field), error.message);
        return Err(Reported);
    }
    if timeout.is_zero() {
        let span = f.span(recover::TIMEOUT).unwrap_or_else(|| value.span());
        diag.error(
            &span,
            recover::TIMEOUT.field(field),
            "is zero; the action could never finish: set it like \"30s\"",
        );
        return Err(Reported);
    }
    let action = action.ok_or(Reported)?;
    Ok(Val::Recover(Box::new(Recovery {
        action,
        policy,
        timeout,
        trust_unauthenticated_pings,
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
    let f = value::table::<recover_http::Table>(diag, value, Scope::Any, field)?;
    if !f.has(recover_http::URL) {
        diag.error(
            &value.span(),
            recover_http::URL.field(field),
            "missing url; write url = \"http://127.0.0.1:9000/restart\"",
        );
    }
    let (url, method, headers) = (
        f.get(recover_http::URL),
        f.get(recover_http::METHOD),
        f.get(recover_http::HEADERS),
    );
    Ok(RecoveryAction::Http {
        url: url?.ok_or(Reported)?.value,
        method: method?.map_or_else(|| "POST".to_owned(), |at| at.value),
        headers: headers?.map_or_else(Vec::new, |at| at.value),
    })
}

#[cfg(test)]
mod tests;
