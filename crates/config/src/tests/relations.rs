//! Rejected combinations: keys that contradict each other within a target or against
//! `[defaults]`, and targets that contradict each other. Each test is a file and the exact
//! errors it must produce, in order, with line and field.

use super::{check, ok};
use crate::TargetKind;

#[test]
fn canaries_name_targets() {
    check(
        r#"
[server]
canaries = ["gateway", "gatway", "gateway"]
[[target]]
id = "gateway"
kind = "tcp"
address = "10.0.0.1:53"
"#,
        &[
            "2 server.canaries: no target has id \"gatway\"; did you mean \"gateway\"?",
            "2 server.canaries: \"gateway\" is listed twice",
        ],
    );
}

#[test]
fn schedule_problems_are_reported_where_they_were_written() {
    // In [defaults] alone: once, at [defaults], not again at each target.
    check(
        r#"
[defaults]
interval = "10s"
timeout = "20s"
[[target]]
id = "a"
kind = "tcp"
address = "h:1"
[[target]]
id = "b"
kind = "tcp"
address = "h:1"
"#,
        &["3 defaults.timeout: 20s is longer than interval 10s;"],
    );
    // Against an inherited or built-in value: at the target, saying where the other came from.
    check(
        r#"
[defaults]
timeout = "20s"
[[target]]
id = "a"
kind = "tcp"
address = "h:1"
interval = "15s"
[[target]]
id = "b"
kind = "tcp"
address = "h:1"
timeout = "45s"
[[target]]
id = "c"
kind = "tcp"
address = "h:1"
interval = "0s"
jitter = "1s"
[[target]]
id = "d"
kind = "tcp"
address = "h:1"
interval = "30s"
jitter = "30s"
interval_changing = "40s"
interval_down = "10s"
"#,
        &[
            "7 target[0] (\"a\").interval: 15s is shorter than timeout 20s (from [defaults])",
            "12 target[1] (\"b\").timeout: 45s is longer than interval 30s (the default)",
            "17 target[2] (\"c\").interval: is zero",
            "24 target[3] (\"d\").jitter: not shorter than interval 30s",
            "25 target[3] (\"d\").interval_changing: 40s is longer than interval 30s",
            "26 target[3] (\"d\").interval_down: 10s is shorter than interval 30s",
        ],
    );
    check(
        "[[target]]\nid = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\ntimeout = \"5s\"\ninterval_changing = \"2s\"\n",
        &["6 target[0] (\"a\").interval_changing: 2s is shorter than timeout 5s"],
    );
}

#[test]
fn http_options_are_checked_against_each_other() {
    check(
        r#"
[[target]]
id = "a"
kind = "http"
url = "http://h/"
json_equals = "pass"
method = "head"
body_contains = "ok"
timeout = "2s"
warn_over = "2s"
headers = { "Bad Name" = "x", Good = "line\nbreak", N = 1 }
[[target]]
id = "b"
kind = "http"
url = "http://h/"
method = "FETCH"
json_path = "status"
"#,
        &[
            "5 target[0] (\"a\").json_equals: needs json_path",
            "6 target[0] (\"a\").method: a HEAD answer has no body",
            "9 target[0] (\"a\").warn_over: 2s is not shorter than timeout 2s",
            "10 target[0] (\"a\").headers.Bad Name: is not a header name",
            "10 target[0] (\"a\").headers.Good: without newlines",
            "10 target[0] (\"a\").headers.N: expected a string, found integer 1",
            "15 target[1] (\"b\").method: method \"FETCH\" is not one of GET",
            "16 target[1] (\"b\").json_path: like \"$.status\"",
        ],
    );
}

#[test]
fn heartbeats_need_one_expectation() {
    check(
        r#"
[[target]]
id = "both"
kind = "heartbeat"
period = "1m"
schedule = "* * * * *"
[[target]]
id = "neither"
kind = "heartbeat"
grace = "1m"
[[target]]
id = "tz"
kind = "heartbeat"
period = "1m"
timezone = "UTC"
[[target]]
id = "cron"
kind = "heartbeat"
schedule = "0 25 * * *"
[[target]]
id = "zone"
kind = "heartbeat"
schedule = "0 3 * * *"
timezone = "Europe/Berln"
[[target]]
id = "phi-cron"
kind = "heartbeat"
schedule = "0 3 * * *"
detector = "phi"
[[target]]
id = "zero"
kind = "heartbeat"
period = "0s"
detector = "accrual"
[[target]]
id = "feb30"
kind = "heartbeat"
schedule = "0 0 30 2 *"
timezone = "America/New_York"
"#,
        &[
            "5 target[0] (\"both\").schedule: period or schedule, not both",
            "6 target[1] (\"neither\").period: missing period or schedule",
            "14 target[2] (\"tz\").timezone: timezone applies to schedule",
            "18 target[3] (\"cron\").schedule: \"0 25 * * *\" is not a cron expression",
            "23 target[4] (\"zone\").timezone: did you mean \"Europe/Berlin\"?",
            "28 target[5] (\"phi-cron\").detector: phi accrual learns a steady rhythm and needs a period",
            "32 target[6] (\"zero\").period: is zero",
            "33 target[6] (\"zero\").detector: unknown detector \"accrual\"",
            "37 target[7] (\"feb30\").schedule: \"0 0 30 2 *\" matches no date",
        ],
    );
}

#[test]
fn phi_tuning_errors_point_inside_the_table() {
    check(
        r#"
[[target]]
id = "a"
kind = "heartbeat"
period = "1s"
detector = { kind = "phi", threshold = 0, max_samples = 10 }
[[target]]
id = "b"
kind = "heartbeat"
period = "1s"
detector = { kind = "deadline", treshold = 3 }
"#,
        &[
            "5 target[0] (\"a\").detector.threshold: must be a finite number above 0",
            "10 target[1] (\"b\").detector.kind: the deadline detector takes no tuning",
            "10 target[1] (\"b\").detector.treshold: did you mean `threshold`?",
        ],
    );
}

#[test]
fn ids_ping_ids_and_references_across_targets() {
    check(
        r#"
[[target]]
id = "db"
kind = "heartbeat"
period = "1m"
[[target]]
id = "db"
kind = "tcp"
address = "h:1"
[[target]]
id = "api"
kind = "heartbeat"
period = "1m"
ping_id = "db"
depends_on = ["api", "db", "dbx", "db"]
[[target]]
id = "Web Front"
kind = "tcp"
address = "h:1"
[[target]]
id = "front"
kind = "tcp"
address = "h:1"
depends_on = ["Web Front"]
"#,
        &[
            "6 target[1] (\"db\").id: duplicate id \"db\": target[0] on line 2 has it already",
            "13 target[2] (\"api\").ping_id: ping_id \"db\" is the id or name of target[0] (\"db\"), which the status page, badges and /metrics show",
            "14 target[2] (\"api\").depends_on: cannot depend on itself",
            "14 target[2] (\"api\").depends_on: unreachable reference: no target has id \"dbx\"; did you mean \"db\"?",
            "14 target[2] (\"api\").depends_on: \"db\" is listed twice",
            "16 target[3] (\"Web Front\").id: try \"web-front\"",
        ],
    );
}

#[test]
fn dependency_cycles_are_reported_once() {
    check(
        r#"
[[target]]
id = "a"
kind = "tcp"
address = "h:1"
depends_on = ["b"]
[[target]]
id = "b"
kind = "tcp"
address = "h:1"
depends_on = ["c"]
[[target]]
id = "c"
kind = "tcp"
address = "h:1"
depends_on = ["a"]
[[target]]
id = "d"
kind = "tcp"
address = "h:1"
depends_on = ["a", "c"]
"#,
        &["15 target[2] (\"c\").depends_on: dependency cycle a → b → c → a"],
    );
}

#[test]
fn thresholds_are_validated_by_the_core_and_placed_on_their_key() {
    check(
        r#"
[defaults]
fall = 0
[[target]]
id = "a"
kind = "tcp"
address = "h:1"
[[target]]
id = "b"
kind = "tcp"
address = "h:1"
fall = 4
[[target]]
id = "c"
kind = "tcp"
address = "h:1"
fall = 2
failures_in_window = { failures = 5, of_last = 3 }
[[target]]
id = "d"
kind = "tcp"
address = "h:1"
fall = 1
flap = { transitions = 1 }
[[target]]
id = "e"
kind = "tcp"
address = "h:1"
fall = 1
failures_in_window = "3 out of 10"
"#,
        &[
            "2 defaults.fall: fall must be at least 1",
            "11 target[1] (\"b\").down_after: down_after (3) must be at least fall (4): a target is unhealthy before it is down (down_after comes from the built-in defaults; set it on this target)",
            "17 target[2] (\"c\").failures_in_window.of_last: failures_in_window.of_last (3) must be at least failures_in_window.failures (5)",
            "23 target[3] (\"d\").flap.transitions: flap.transitions (1) must be at least 2",
            "29 target[4] (\"e\").failures_in_window: write \"3 of 10\"",
        ],
    );
}

/// Every mistake the issue names, in one file: all are reported, each on its line.
#[test]
fn a_config_full_of_mistakes_reports_every_one() {
    check(
        r#"
[server]
listen = "127.0.0.1"
ping_body_limt = 5

[defaults]
jitter = 3
fall = 3
down_after = 2

[[target]]
id = "api"
kind = "http"
url = "tcp://api.internal:80"
timeout = "40s"
period = "1m"

[[target]]
id = "api"
kind = "tcp"
address = "db.internal"
depends_on = ["cache"]

[[target]]
id = "nightly"
kind = "heartbeat"
schedule = "0 3 * * * * * *"
timezone = "Mars/Olympus"
udp_key = "not hex"

[[target]]
id = "self"
kind = "redis"
url = "redis://127.0.0.1:6379"
depends_on = ["self"]
interval = "0s"
"#,
        &[
            "2 server.listen: is not an IP address and port",
            "3 server.ping_body_limt: did you mean `ping_body_limit`?",
            "6 defaults.jitter: 3 has no unit",
            "8 defaults.down_after: down_after (2) must be at least fall (3)",
            "13 target[0] (\"api\").url: is not an http:// or https:// URL",
            "14 target[0] (\"api\").timeout: 40s is longer than interval",
            "15 target[0] (\"api\").period: does not belong to an http target",
            "18 target[1] (\"api\").id: duplicate id \"api\"",
            "20 target[1] (\"api\").address: has no port",
            "21 target[1] (\"api\").depends_on: unreachable reference: no target has id \"cache\"",
            "26 target[2] (\"nightly\").schedule: is not a cron expression",
            "27 target[2] (\"nightly\").timezone: unknown time zone \"Mars/Olympus\"",
            "28 target[2] (\"nightly\").udp_key: set server.udp_listen",
            "28 target[2] (\"nightly\").udp_key: is not hex",
            "34 target[3] (\"self\").depends_on: cannot depend on itself",
            "35 target[3] (\"self\").interval: is zero",
        ],
    );
}

/// Issue 11, item 1: a ping id nobody can read elsewhere, unless the pings carry a key or the
/// operator accepts a public one.
#[test]
fn ping_ids_are_secret_unless_keyed_or_declared_public() {
    check(
        r#"
[[target]]
id = "backup"
kind = "heartbeat"
name = "Nightly-backup"
period = "1d"
ping_id = "backup"
[[target]]
id = "cleanup"
kind = "heartbeat"
period = "1h"
ping_id = "Nightly-backup"
"#,
        &[
            "6 target[0] (\"backup\").ping_id: ping_id \"backup\" is this target's id or name",
            "11 target[1] (\"cleanup\").ping_id: ping_id \"Nightly-backup\" is the id or name of target[0] (\"backup\")",
        ],
    );
    let config = ok(r#"
[server]
udp_listen = "127.0.0.1:0"
[[target]]
id = "generated"
kind = "heartbeat"
period = "1h"
[[target]]
id = "keyed"
kind = "heartbeat"
period = "1h"
ping_key = "0123456789abcdef0123"
[[target]]
id = "udp"
kind = "heartbeat"
period = "1h"
udp_key = "00112233445566778899aabbccddeeff"
[[target]]
id = "public"
kind = "heartbeat"
period = "1h"
ping_id = "public"
public_ping_id = true
[[target]]
id = "declared"
kind = "heartbeat"
period = "1h"
public_ping_id = true
"#);
    let ping = |i: usize| match &config.targets[i].kind {
        TargetKind::Heartbeat(h) => (h.ping_id.clone(), h.ping_key.clone()),
        _ => unreachable!(),
    };
    assert_eq!(ping(0), (None, None), "generated by the monitor");
    assert_eq!(
        ping(1),
        (Some("keyed".into()), Some("0123456789abcdef0123".into()))
    );
    assert_eq!(ping(2), (Some("udp".into()), None));
    assert_eq!(ping(3), (Some("public".into()), None));
    assert_eq!(
        ping(4),
        (Some("declared".into()), None),
        "public: pinged by its id"
    );
}

/// Issue 11, item 12: the tokens earlier examples shipped are public knowledge.
#[test]
fn the_example_tokens_are_refused() {
    check(
        r#"
[server]
api_token = "change-me-0123456789abcdef0123456789abcdef"
read_token = "read-only-0123456789abcdef"
"#,
        &[
            "2 server.api_token: is the example's token, which anyone can read",
            "3 server.read_token: is the example's token",
        ],
    );
}

#[test]
fn confirm_addresses_are_checked_where_they_are_written() {
    // Issue 15.
    let hb = |confirm: &str| {
        format!(
            "[[target]]\nid = \"w\"\nkind = \"heartbeat\"\nperiod = \"100ms\"\nconfirm = {confirm}\n"
        )
    };
    check(
        &hb("\"udp://127.0.0.1:9\""),
        &[
            "5 target[0] (\"w\").confirm: udp:// cannot confirm a suspicion; write \"tcp://host:port\"",
        ],
    );
    check(
        &hb("\"127.0.0.1:9\""),
        &[
            "5 target[0] (\"w\").confirm: \"127.0.0.1:9\" has no scheme; write \"tcp://127.0.0.1:9\"",
        ],
    );
    check(
        &hb("\"tcp://127.0.0.1\""),
        &["5 target[0] (\"w\").confirm: in \"tcp://127.0.0.1\": \"127.0.0.1\" has no port"],
    );
    check(&hb("9"), &["5 target[0] (\"w\").confirm: expected"]);
    check(
        "[[target]]\nid = \"c\"\nkind = \"heartbeat\"\nschedule = \"0 3 * * *\"\nconfirm = \"tcp://h:1\"\n",
        &["5 target[0] (\"c\").confirm: confirm needs a period"],
    );
    check(
        "[[target]]\nid = \"t\"\nkind = \"exec\"\ncommand = [\"true\"]\nconfirm = \"tcp://h:1\"\n",
        &["5 target[0] (\"t\").confirm: `confirm` does not belong to a"],
    );
    check(&hb("\"tcp://127.0.0.1:9\""), &[]);
    check(&hb("\"http://127.0.0.1:9/livez\""), &[]);
    check(
        "[[target]]\nid = \"api\"\nkind = \"http\"\nurl = \"http://h:1/\"\nconfirm = \"tcp://h:1\"\n",
        &[],
    );
}
