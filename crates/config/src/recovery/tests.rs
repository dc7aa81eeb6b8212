//! `[target.recover]`: what valid tables build, and every refusal with its line and field.

use std::time::Duration;

use super::*;
use crate::parse;

const HEAD: &str = "[[target]]\nid = \"api\"\nkind = \"tcp\"\naddress = \"127.0.0.1:9\"\n";

/// Parses HEAD plus `recover` (line 5 is the first line of `recover`) and returns the
/// errors as `"LINE FIELD: MESSAGE"`.
fn errors(recover: &str) -> Vec<String> {
    match parse(&format!("{HEAD}{recover}"), "t.toml") {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .0
            .iter()
            .map(|e| format!("{} {}: {}", e.line, e.field, e.message))
            .collect(),
    }
}

/// Asserts exactly one error, on `line` and `field`, whose message contains `fragment`.
#[track_caller]
fn refused(recover: &str, line: usize, field: &str, fragment: &str) {
    let errors = errors(recover);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let prefix = format!("{line} target[0] (\"api\").{field}: ");
    assert!(
        errors[0].starts_with(&prefix) && errors[0].contains(fragment),
        "{:?} is not {prefix}…{fragment}…",
        errors[0]
    );
}

fn recovery(recover: &str) -> Recovery {
    let config = parse(&format!("{HEAD}{recover}"), "t.toml").unwrap_or_else(|e| panic!("{e}"));
    config.targets[0].recover.clone().expect("a recovery")
}

#[test]
fn a_command_with_defaults() {
    let r = recovery("[target.recover]\ncommand = [\"systemctl\", \"restart\", \"api\"]\n");
    assert_eq!(
        r.action,
        RecoveryAction::Command(vec!["systemctl".into(), "restart".into(), "api".into()])
    );
    assert_eq!(r.policy, BudgetPolicy::default());
    assert_eq!(r.timeout, DEFAULT_ACTION_TIMEOUT);
    assert_eq!(r.action.describe(), "systemctl restart api");
}

#[test]
fn an_http_request_with_every_key() {
    let r = recovery(
        "[target.recover]\nhttp = { url = \"http://127.0.0.1:9000/restart\", method = \"put\", headers = { Authorization = \"Bearer x\" } }\nmax_attempts = 5\nwindow = \"2h\"\nbackoff = \"1m\"\nbackoff_max = \"20m\"\nreset_after = \"15m\"\ntimeout = \"5s\"\n",
    );
    assert_eq!(
        r.action,
        RecoveryAction::Http {
            url: "http://127.0.0.1:9000/restart".into(),
            method: "PUT".into(),
            headers: vec![("Authorization".into(), "Bearer x".into())],
        }
    );
    assert_eq!(
        r.policy,
        BudgetPolicy {
            max_attempts: 5,
            window: Duration::from_secs(7200),
            backoff: Duration::from_secs(60),
            backoff_max: Duration::from_secs(1200),
            reset_after: Duration::from_secs(900),
        }
    );
    assert_eq!(r.timeout, Duration::from_secs(5));
    assert_eq!(r.action.describe(), "PUT http://127.0.0.1:9000/restart");
}

#[test]
fn an_inline_table_and_a_default_method() {
    let text = "[[target]]\nid = \"api\"\nkind = \"tcp\"\naddress = \"127.0.0.1:9\"\nrecover = { http = { url = \"http://127.0.0.1:9000/r\" } }\n";
    let config = parse(text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    let recover = config.targets[0].recover.clone().expect("a recovery");
    assert_eq!(recover.action.describe(), "POST http://127.0.0.1:9000/r");
    assert_eq!(
        parse(HEAD, "t.toml").map(|c| c.targets[0].recover.clone()),
        Ok(None)
    );
}

#[test]
fn a_long_backoff_raises_an_unwritten_backoff_max() {
    let r =
        recovery("[target.recover]\ncommand = [\"true\"]\nbackoff = \"15m\"\nwindow = \"3h\"\n");
    assert_eq!(r.policy.backoff_max, Duration::from_secs(900));
}

#[test]
fn an_action_is_required_and_only_one() {
    refused(
        "[target.recover]\nmax_attempts = 3\n",
        5,
        "recover",
        "has no action; give command = [",
    );
    refused(
        "[target.recover]\ncommand = [\"true\"]\nhttp = { url = \"http://127.0.0.1:1/\" }\n",
        5,
        "recover",
        "has both command and http",
    );
    refused(
        "[target.recover]\nhttp = { method = \"POST\" }\n",
        6,
        "recover.http.url",
        "missing url",
    );
    refused(
        "recover = [\"systemctl\", \"restart\"]\n",
        5,
        "recover",
        "expected a table",
    );
}

#[test]
fn bad_values_point_at_their_key() {
    refused(
        "[target.recover]\ncommand = [\"true\"]\nmax_attempts = 0\n",
        7,
        "recover.max_attempts",
        "max_attempts is 0; allow at least 1 attempt",
    );
    refused(
        "[target.recover]\ncommand = [\"true\"]\nbackoff = \"soon\"\n",
        7,
        "recover.backoff",
        "soon",
    );
    refused(
        "[target.recover]\ncommand = [\"true\"]\nwindow = 60\n",
        7,
        "recover.window",
        "has no unit",
    );
    refused(
        "[target.recover]\ncommand = [\"true\"]\nbackoff = \"0s\"\n",
        7,
        "recover.backoff",
        "backoff is zero",
    );
    refused(
        "[target.recover]\ncommand = [\"true\"]\ntimeout = \"0s\"\n",
        7,
        "recover.timeout",
        "is zero",
    );
    refused(
        "[target.recover]\ncommand = [\"true\"]\nbackoff = \"1m\"\nbackoff_max = \"30s\"\n",
        8,
        "recover.backoff_max",
        "backoff_max (30s) is shorter than backoff (60s)",
    );
    refused(
        "[target.recover]\ncommand = \"systemctl restart api\"\n",
        6,
        "recover.command",
        "command is a list",
    );
    refused(
        "[target.recover]\nhttp = { url = \"ftp://x/\" }\n",
        6,
        "recover.http.url",
        "not an http:// or https:// URL",
    );
    refused(
        "[target.recover]\ncommand = [\"true\"]\nretries = 3\n",
        7,
        "recover.retries",
        "unknown key `retries`",
    );
}

#[test]
fn a_window_too_short_for_the_attempts_is_refused() {
    // 3 attempts, 30 s then 60 s apart, found spent 120 s after the third: 210 s.
    refused(
        "[target.recover]\ncommand = [\"true\"]\nwindow = \"2m\"\n",
        7,
        "recover.window",
        "window (120s) cannot hold 3 attempts with their backoff, which take 210s",
    );
    // Not written: the error points at the table.
    refused(
        "[target.recover]\ncommand = [\"true\"]\nbackoff = \"30m\"\n",
        5,
        "recover.window",
        "window (3600s) cannot hold 3 attempts",
    );
}

#[test]
fn every_bad_key_is_reported_at_once() {
    let errors =
        errors("[target.recover]\ncommand = [\"\"]\nbackoff = \"x\"\nhttp = { url = 3 }\n");
    assert_eq!(errors.len(), 3, "{errors:#?}");
}
