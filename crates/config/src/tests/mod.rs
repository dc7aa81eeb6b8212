//! Tests of the configuration: data-driven through [`check`] (TOML in, the exact list of
//! errors out, each with its line and field), valid files and what they build, the
//! documented example, and garbage. Rejected files are in `values.rs`
//! (single keys) and `relations.rs` (keys and targets against each other).

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::keys;

mod discovery;
mod mutations;
mod relations;
mod values;

/// Parses `text` (a leading newline is dropped, so line 1 is the first written line) and
/// asserts exactly these errors, in order, each written `"LINE FIELD: FRAGMENT"` where
/// FRAGMENT is part of the message.
#[track_caller]
fn check(text: &str, expected: &[&str]) {
    let text = text.strip_prefix('\n').unwrap_or(text);
    let errors = match parse(text, "t.toml") {
        Ok(_) => Vec::new(),
        Err(errors) => errors.0,
    };
    let got = errors.iter().map(|e| format!("{e}\n")).collect::<String>();
    assert_eq!(errors.len(), expected.len(), "errors:\n{got}");
    for (error, expected) in errors.iter().zip(expected) {
        let (line, rest) = expected.split_once(' ').expect("LINE FIELD: FRAGMENT");
        let (field, fragment) = rest.split_once(": ").expect("LINE FIELD: FRAGMENT");
        assert_eq!(
            (error.line.to_string().as_str(), error.field.as_str()),
            (line, field),
            "errors:\n{got}"
        );
        assert!(
            error.message.contains(fragment),
            "{error}\nlacks {fragment:?}"
        );
        assert_eq!(error.file, "t.toml");
    }
}

/// Parses `text`, which must be valid.
#[track_caller]
fn ok(text: &str) -> Config {
    parse(text, "t.toml").unwrap_or_else(|e| panic!("unexpected errors:\n{e}"))
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn embedded_default_listens_on_loopback_with_a_local_data_dir() {
    let config = Config::embedded_default();
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:7070");
    assert_eq!(
        config.server.data_dir,
        std::path::PathBuf::from("./vitals-data")
    );
    assert_eq!(config.server.ping_body_limit, 100_000);
    assert_eq!(config.server.max_concurrency, 1024);
    assert_eq!(config.server.udp_max_skew, secs(30));
    assert_eq!(config.server.drain_delay, secs(5));
    assert_eq!(
        (config.server.api_token, config.server.udp_listen),
        (None, None)
    );
    assert_eq!(
        (config.retention.raw_days, config.retention.rollup_days),
        (7, 365)
    );
    assert!(config.targets.is_empty());
    // An empty file is the embedded default.
    assert_eq!(ok(""), Config::embedded_default());
}

#[test]
fn the_display_names_file_line_column_and_field() {
    let errors = parse(
        "[[target]]\nid = \"api\"\nkind = \"http\"\nurl = \"http://127.0.0.1/\"\ninterval = \"30s\"\ntimeout = \"40s\"\n",
        "vitals.toml",
    )
    .unwrap_err();
    assert_eq!(
        errors.to_string(),
        "vitals.toml:6:11: target[0] (\"api\").timeout: 40s is longer than interval 30s; a check must finish before the next one starts"
    );
    let two = parse("[server]\nlisten = 1\nlistn = \"x\"\n", "f").unwrap_err();
    assert_eq!(
        two.to_string(),
        "f:2:10: server.listen: expected a string, found integer 1\nf:3:1: server.listn: unknown key `listn`; did you mean `listen`?"
    );
}

#[test]
fn a_target_inherits_defaults_and_derives_its_intervals() {
    let config = ok(r#"
[defaults]
interval = "1m"
timeout = "5s"
fall = 3
down_after = 4
failures_in_window = "3 of 10"
flap = false

[[target]]
id = "api"
kind = "http"
url = "https://api.example.com/health"

[[target]]
id = "fast"
kind = "tcp"
address = "127.0.0.1:5432"
interval = "2s"
timeout = "1s"
rise = 1
"#);
    let [api, fast] = &config.targets[..] else {
        panic!("two targets")
    };
    assert_eq!(api.name, "api");
    assert_eq!(
        api.schedule,
        Cadence {
            interval: secs(60),
            timeout: secs(5),
            jitter: secs(6),
            interval_changing: secs(5),
            interval_down: secs(60),
        }
    );
    assert_eq!(
        (
            api.thresholds.fall,
            api.thresholds.rise,
            api.thresholds.down_after
        ),
        (3, 2, 4)
    );
    assert_eq!(
        api.thresholds.window.map(|w| (w.failures, w.of_last)),
        Some((3, 10))
    );
    assert_eq!(api.thresholds.flap, None);
    assert_eq!(
        fast.schedule,
        Cadence {
            interval: secs(2),
            timeout: secs(1),
            jitter: Duration::from_millis(200),
            interval_changing: secs(2),
            interval_down: secs(60),
        }
    );
    assert_eq!(fast.thresholds.rise, 1);
    let TargetKind::Http(http) = &api.kind else {
        panic!("http")
    };
    assert_eq!(
        (http.method.as_str(), http.expect_status.clone()),
        ("GET", 200..=299)
    );
}

#[test]
fn inherited_per_state_intervals_are_clamped_to_the_target() {
    let config = ok(r#"
[defaults]
interval_changing = "20s"
interval_down = "2m"

[[target]]
id = "slow"
kind = "tcp"
address = "db:5432"
interval = "5m"
timeout = "30s"

[[target]]
id = "quick"
kind = "tcp"
address = "db:5432"
interval = "10s"
timeout = "1s"
"#);
    let slow = &config.targets[0].schedule;
    assert_eq!(
        (slow.interval_changing, slow.interval_down),
        (secs(30), secs(300))
    );
    let quick = &config.targets[1].schedule;
    assert_eq!(
        (quick.interval_changing, quick.interval_down),
        (secs(10), secs(120))
    );
}

#[test]
fn every_kind_builds_its_spec() {
    let config = ok(r#"
[server]
udp_listen = "127.0.0.1:7071"

[[target]]
id = "web"
kind = "http"
url = "http://127.0.0.1:8080/status"
method = "post"
headers = { Authorization = "Bearer x", X-Trace = "1" }
expect_status = [200, 204]
body_contains = "ok"
json_path = "$.status"
json_equals = { up = true, n = [1, 2.5] }
warn_over = "500ms"

[[target]]
id = "pg"
kind = "postgres"
url = "postgresql://monitor@127.0.0.1/postgres"

[[target]]
id = "cache"
kind = "redis"
url = "rediss://127.0.0.1:6380"

[[target]]
id = "load"
kind = "exec"
command = ["/usr/lib/nagios/plugins/check_load", "-w", "5"]

[[target]]
id = "orders"
kind = "vitals"
url = "http://127.0.0.1:8000/health"

[[target]]
id = "backup"
kind = "heartbeat"
schedule = "0 3 * * *"
timezone = "Europe/Berlin"

[[target]]
id = "worker"
kind = "heartbeat"
ping_id = "5f1c9a2e-7b3d-4c8e-9f10-2a3b4c5d6e7f"
period = "10s"
detector = { kind = "phi", threshold = 10 }
udp_key = "000102030405060708090a0b0c0d0e0f"
"#);
    let kinds: Vec<&str> = config.targets.iter().map(|t| t.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "http",
            "postgres",
            "redis",
            "exec",
            "vitals",
            "heartbeat",
            "heartbeat"
        ]
    );
    let TargetKind::Http(http) = &config.targets[0].kind else {
        panic!("http")
    };
    assert_eq!(http.method, "POST");
    assert_eq!(http.expect_status, 200..=204);
    assert_eq!(
        http.headers,
        [
            ("Authorization".into(), "Bearer x".into()),
            ("X-Trace".into(), "1".into())
        ]
    );
    assert_eq!(
        http.json_equals,
        Some(serde_json::json!({"up": true, "n": [1, 2.5]}))
    );
    assert_eq!(http.warn_over, Some(Duration::from_millis(500)));
    let TargetKind::Exec { command } = &config.targets[3].kind else {
        panic!("exec")
    };
    assert_eq!(command.len(), 3);
    let TargetKind::Heartbeat(backup) = &config.targets[5].kind else {
        panic!("heartbeat")
    };
    assert_eq!(backup.ping_id, None, "generated by the monitor");
    let Expect::Cron {
        timezone,
        grace,
        expression,
        ..
    } = &backup.expect
    else {
        panic!("cron")
    };
    assert_eq!(
        (*timezone, *grace, expression.as_str()),
        (chrono_tz::Europe::Berlin, secs(3600), "0 3 * * *")
    );
    assert_eq!(backup.detector, DetectorKind::Deadline);
    let TargetKind::Heartbeat(worker) = &config.targets[6].kind else {
        panic!("heartbeat")
    };
    assert_eq!(
        worker.expect,
        Expect::Period {
            period: secs(10),
            grace: secs(2)
        }
    );
    let DetectorKind::Phi(phi) = &worker.detector else {
        panic!("phi")
    };
    assert_eq!(
        (
            phi.threshold,
            phi.first_heartbeat_estimate,
            phi.acceptable_pause
        ),
        (10.0, secs(10), secs(2))
    );
    assert_eq!(
        phi.min_std_dev,
        Duration::from_millis(2500),
        "a quarter period"
    );
    assert_eq!(worker.udp_key.as_ref().map(Vec::len), Some(16));
}

#[test]
fn a_sub_second_heartbeat_gets_a_grace_of_two_periods() {
    // Issue 15: a 1 s floor made a 100 ms sender suspected only after 1.1 s.
    let grace = |period: &str| {
        let config = ok(&format!(
            "[[target]]\nid = \"hb\"\nkind = \"heartbeat\"\nperiod = \"{period}\"\n"
        ));
        let TargetKind::Heartbeat(hb) = &config.targets[0].kind else {
            panic!("heartbeat")
        };
        hb.expect.grace()
    };
    let ms = Duration::from_millis;
    assert_eq!(grace("100ms"), ms(200));
    assert_eq!(grace("400ms"), ms(800));
    assert_eq!(grace("1s"), ms(1000));
    assert_eq!(grace("10s"), ms(2000));
    assert_eq!(grace("1m"), ms(12_000));
}

#[test]
fn server_and_retention_values() {
    let config = ok(r#"
[server]
listen = "[::1]:9000"
data_dir = "/var/lib/vitals"
api_token = "0123456789abcdef0123"
read_token = "fedcba9876543210"
ping_body_limit = 0
max_concurrency = 64
udp_max_skew = "5s"
[retention]
raw_days = 30
rollup_days = 30
"#);
    assert_eq!(config.server.listen.to_string(), "[::1]:9000");
    assert_eq!(
        config.server.api_token.as_deref(),
        Some("0123456789abcdef0123")
    );
    assert_eq!(
        (config.server.ping_body_limit, config.server.max_concurrency),
        (0, 64)
    );
    assert_eq!(
        config.retention,
        Retention {
            raw_days: 30,
            rollup_days: 30
        }
    );
    check(
        r#"
[server]
listen = "localhost:7070"
api_token = "short"
read_token = "has a space in it!"
ping_body_limit = -1
max_concurrency = 0
udp_max_skew = "0s"
data_dir = ""
[retention]
raw_days = 0
rollup_days = 99999999999
"#,
        &[
            "2 server.listen: host names are not resolved here",
            "3 server.api_token: is 5 characters; use at least 16",
            "4 server.read_token: visible ASCII without spaces",
            "5 server.ping_body_limit: -1 is negative",
            "6 server.max_concurrency: at least 1",
            "7 server.udp_max_skew: is zero",
            "8 server.data_dir: is empty",
            "10 retention.raw_days: at least 1",
            "11 retention.rollup_days: is too large",
        ],
    );
    check(
        "[retention]\nraw_days = 30\nrollup_days = 10\n",
        &["3 retention.rollup_days: make rollup_days at least raw_days"],
    );
    check(
        "server = 1\n",
        &["1 server: expected a table, found integer 1"],
    );
    check(
        "[server]\ndrain_delay = \"10h\"\n",
        &["2 server.drain_delay: is longer than 10m"],
    );
}

#[test]
fn the_store_is_sqlite_unless_a_postgres_url_is_given() {
    assert_eq!(ok("").server.store, None);
    let config = ok("[server]\nstore = \"postgres://vitals@db.internal:5432/vitals\"\n");
    assert_eq!(
        config.server.store.as_deref(),
        Some("postgres://vitals@db.internal:5432/vitals")
    );
    check(
        "[server]\nstore = \"mysql://vitals@db/vitals\"\n",
        &["2 server.store: is not a PostgreSQL URL; write postgres://"],
    );
    check(
        "[server]\nstore = \"postgres://\"\n",
        &["2 server.store: is not a PostgreSQL URL"],
    );
}

#[test]
fn load_names_the_path_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let errors = load(&missing).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert_eq!((errors.0[0].line, errors.0[0].field.as_str()), (0, ""));
    let shown = errors.to_string();
    assert!(
        shown.starts_with(&format!(
            "{}: cannot read the configuration",
            missing.display()
        )),
        "{shown}"
    );
    assert!(shown.contains("check the path"), "{shown}");

    let file = dir.path().join("vitals.toml");
    std::fs::write(&file, "[server]\nlisten = 7070\n").unwrap();
    let errors = load(&file).unwrap_err();
    assert_eq!(errors.0[0].file, file.display().to_string());
    assert_eq!(errors.0[0].line, 2);
}

/// Every key list, for tests that go through all keys.
const KEY_LISTS: [&[keys::Key]; 8] = [
    keys::SERVER,
    keys::RETENTION,
    keys::DEFAULTS,
    keys::TARGET,
    keys::WINDOW,
    keys::FLAP,
    keys::DETECTOR,
    keys::DISCOVERY,
];

const EXAMPLE: &str = include_str!("../../../../examples/vitals.toml");
const DOCS: &str = include_str!("../../../../docs/CONFIG.md");

#[test]
fn the_example_parses_and_uses_every_key_and_kind() {
    let config = parse(EXAMPLE, "examples/vitals.toml").unwrap_or_else(|e| panic!("{e}"));
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/vitals.toml");
    assert_eq!(
        load(&path).map(|c| c.targets.len()),
        Ok(config.targets.len())
    );
    for kind in keys::Kind::ALL {
        assert!(
            config.targets.iter().any(|t| t.kind.name() == kind.name()),
            "no {} target",
            kind.name()
        );
    }
    let uses = |key: &str| {
        EXAMPLE.lines().any(|line| {
            line.trim_start().starts_with(&format!("{key} ="))
                || line.contains(&format!(" {key} ="))
        })
    };
    for section in KEY_LISTS {
        for key in section {
            assert!(
                uses(key.name),
                "examples/vitals.toml never sets `{}`",
                key.name
            );
        }
    }
    assert!(config.targets.iter().any(
        |t| matches!(&t.kind, TargetKind::Heartbeat(h) if matches!(h.expect, Expect::Cron { .. }))
    ));
    assert!(config.targets.iter().any(|t| matches!(&t.kind, TargetKind::Heartbeat(h) if matches!(h.detector, DetectorKind::Phi(_)))));
}

/// Sections documented in a file of their own, with that file.
const OTHER_DOCS: [(&[keys::Key], &str); 6] = [
    (keys::NOTIFY, ALERTS_DOCS),
    (keys::CHANNEL, ALERTS_DOCS),
    (keys::RULE, ALERTS_DOCS),
    (keys::MAINTENANCE, ALERTS_DOCS),
    (keys::RECOVER, RECOVERY_DOCS),
    (keys::RECOVER_HTTP, RECOVERY_DOCS),
];
const ALERTS_DOCS: &str = include_str!("../../../../docs/ALERTS.md");
const RECOVERY_DOCS: &str = include_str!("../../../../docs/RECOVERY.md");

#[test]
fn notification_and_recovery_keys_are_documented_and_in_the_example() {
    for (section, docs) in OTHER_DOCS {
        for key in section {
            assert!(
                docs.contains(&format!("`{}`", key.name)),
                "the docs never mention `{}`",
                key.name
            );
            assert!(
                EXAMPLE.contains(&format!("{} =", key.name)),
                "examples/vitals.toml never sets `{}`",
                key.name
            );
        }
    }
    let config = parse(EXAMPLE, "examples/vitals.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.notify.channels.len(), 4, "one channel of each kind");
}

#[test]
fn the_docs_describe_every_key() {
    for section in KEY_LISTS {
        for key in section {
            assert!(
                DOCS.contains(&format!("`{}`", key.name)),
                "docs/CONFIG.md never mentions `{}`",
                key.name
            );
        }
    }
}

/// Pieces of near-valid configuration, shuffled into files: they reach far deeper into the
/// walker than random bytes, which mostly stop at the TOML parser.
fn fragment() -> impl Strategy<Value = String> {
    let keys: Vec<&'static str> = KEY_LISTS
        .iter()
        .flat_map(|section| section.iter().map(|key| key.name))
        .chain(["bogus", "kind"])
        .collect();
    let values = prop::sample::select(vec![
        "\"30s\"",
        "0",
        "-1",
        "99999999999999999999",
        "1.5",
        "nan",
        "true",
        "false",
        "\"\"",
        "\"x\"",
        "\"http://h/\"",
        "\"h:1\"",
        "\"0 3 * * *\"",
        "\"* * * * * * * *\"",
        "\"L W # ? /\"",
        "\"Europe/Berlin\"",
        "\"tcp\"",
        "\"http\"",
        "\"heartbeat\"",
        "\"exec\"",
        "\"phi\"",
        "\"3 of 10\"",
        "\"0 of 0\"",
        "[]",
        "[1, \"a\"]",
        "[\"a\", \"b\"]",
        "{ kind = \"phi\", threshold = -1 }",
        "{ transitions = 0 }",
        "{ failures = 9 }",
        "\"00112233445566778899aabbccddeeff\"",
        "1979-05-27T07:32:00Z",
        "\"200-100\"",
        "\"é\\u0000\"",
    ]);
    let line = (prop::sample::select(keys), values).prop_map(|(k, v)| format!("{k} = {v}"));
    let header = prop::sample::select(vec![
        "[server]",
        "[retention]",
        "[defaults]",
        "[[target]]",
        "[[target]]",
        "[bogus]",
    ]);
    prop_oneof![3 => line, 1 => header.prop_map(str::to_owned)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn garbage_text_never_panics(text in any::<String>()) {
        if let Err(errors) = parse(&text, "fuzz.toml") {
            let syntax = errors.0.iter().any(|e| e.message.starts_with("invalid TOML"));
            prop_assert!(!syntax || errors.0.len() == 1, "a syntax error is reported alone");
            for error in &errors.0 {
                prop_assert!(error.line >= 1 && error.line <= text.split('\n').count());
            }
        }
    }

    #[test]
    fn shuffled_fragments_never_panic_and_errors_have_positions(lines in prop::collection::vec(fragment(), 0..40)) {
        let text = lines.join("\n");
        if let Err(errors) = parse(&text, "fuzz.toml") {
            prop_assert!(!errors.0.is_empty());
            let line_count = text.split('\n').count();
            for error in &errors.0 {
                prop_assert!(error.line >= 1 && error.line <= line_count, "{error} in\n{text}");
                prop_assert!(!error.message.is_empty());
            }
        }
    }

    #[test]
    fn cron_garbage_never_panics(expression in "[0-9*/,LW#?A-Z -]{0,40}") {
        let _ = parse(&format!("[[target]]\nid = \"a\"\nkind = \"heartbeat\"\nschedule = {expression:?}\n"), "fuzz.toml");
    }
}
