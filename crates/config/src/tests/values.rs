//! Rejected values: each test is a file with mistakes in single keys (types, durations,
//! addresses, unknown or foreign keys…) and the exact errors it must produce, in order, with
//! line and field.

use super::{check, ok};
use crate::{TargetKind, parse};

#[test]
fn status_ranges_take_three_forms() {
    for (written, range) in [
        ("204", 204..=204),
        ("\"200-399\"", 200..=399),
        ("\"301\"", 301..=301),
        ("[200, 299]", 200..=299),
    ] {
        let config = ok(&format!(
            "[[target]]\nid = \"a\"\nkind = \"http\"\nurl = \"http://h/\"\nexpect_status = {written}\n"
        ));
        let TargetKind::Http(http) = &config.targets[0].kind else {
            panic!("http")
        };
        assert_eq!(http.expect_status, range, "{written}");
    }
    check(
        r#"
[[target]]
id = "a"
kind = "http"
url = "http://h/"
expect_status = "299-200"
[[target]]
id = "b"
kind = "http"
url = "http://h/"
expect_status = 99
"#,
        &[
            "5 target[0] (\"a\").expect_status: backwards; write 200-299",
            "10 target[1] (\"b\").expect_status: from 100 to 599",
        ],
    );
}

#[test]
fn syntax_errors_stop_with_one_positioned_error() {
    check(
        "[server]\nlisten = \"127.0.0.1:7070\n",
        &["2 : invalid TOML"],
    );
    check(
        "[server]\nlisten = \"a\"\nlisten = \"b\"\n",
        &["3 : duplicate key `listen`"],
    );
    check("[target]\nid = \"x\"\n[[target]]\n", &["3 : invalid TOML"]);
}

#[test]
fn durations_need_units() {
    check(
        r#"
[defaults]
interval = 30
timeout = "10"
jitter = "1 fortnight"
interval_down = 1.5
interval_changing = true
"#,
        &[
            "2 defaults.interval: 30 has no unit; write \"30s\"",
            "3 defaults.timeout: 10 has no unit",
            "4 defaults.jitter: is not a duration",
            "5 defaults.interval_down: 1.5 has no unit",
            "6 defaults.interval_changing: expected a duration like \"30s\", found boolean true",
        ],
    );
    check(
        "[server]\nudp_max_skew = \"400d\"\n",
        &["2 server.udp_max_skew: longer than 366 days"],
    );
}

#[test]
fn unknown_keys_suggest_the_close_one_and_foreign_keys_name_their_kind() {
    check(
        r#"
[server]
listn = "127.0.0.1:7070"
[retention]
raw = 3
[defualts]
[[target]]
id = "a"
kind = "http"
url = "http://h/"
timout = "1s"
period = "1m"
[[target]]
id = "b"
kind = "tcp"
address = "h:1"
url = "http://h/"
[[target]]
id = "c"
kind = "heartbeat"
period = "1m"
interval = "1m"
"#,
        &[
            "2 server.listn: did you mean `listen`?",
            "4 retention.raw: unknown key `raw`; known: raw_days, rollup_days",
            "5 defualts: unknown section `defualts`; did you mean `defaults`?",
            "10 target[0] (\"a\").timout: did you mean `timeout`?",
            "11 target[0] (\"a\").period: `period` does not belong to an http target; it is for heartbeat targets",
            "16 target[1] (\"b\").url: it is for http, postgres, redis or vitals targets",
            "21 target[2] (\"c\").interval: does not belong to a heartbeat target",
        ],
    );
}

#[test]
fn target_kinds_and_required_keys() {
    check(
        r#"
[[target]]
id = "a"
[[target]]
id = "b"
kind = "htpp"
url = "http://h/"
[[target]]
kind = "tcp"
[[target]]
id = "d"
kind = "exec"
command = "check_load -w 5"
[[target]]
id = "e"
kind = "exec"
command = []
"#,
        &[
            "1 target[0] (\"a\").kind: missing kind; set kind = \"http\"",
            "5 target[1] (\"b\").kind: unknown kind \"htpp\"; did you mean \"http\"?",
            "7 target[2].id: missing id",
            "7 target[2].address: missing address; a tcp target needs it, like address = \"127.0.0.1:5432\"",
            "12 target[3] (\"d\").command: write [\"check_load\", \"-w\", \"5\"]",
            "16 target[4] (\"e\").command: is empty",
        ],
    );
    check("target = 3\n", &["1 target: write [[target]]"]);
    check(
        "target = [3]\n",
        &["1 target[0]: expected a table, found integer 3"],
    );
}

#[test]
fn urls_and_addresses_must_suit_the_kind() {
    check(
        r#"
[[target]]
id = "a"
kind = "http"
url = "127.0.0.1:8080/health"
[[target]]
id = "b"
kind = "vitals"
url = "ftp://h/"
[[target]]
id = "c"
kind = "postgres"
url = "mysql://h/db"
[[target]]
id = "d"
kind = "redis"
url = "http://h:6379"
[[target]]
id = "e"
kind = "tcp"
address = "db.internal"
[[target]]
id = "f"
kind = "tcp"
address = "tcp://h:1"
[[target]]
id = "g"
kind = "tcp"
address = "::1:80"
[[target]]
id = "h"
kind = "tcp"
address = "h:99999"
[[target]]
id = "i"
kind = "http"
url = "http://h/a b"
"#,
        &[
            "4 target[0] (\"a\").url: has no scheme; write \"http://127.0.0.1:8080/health\"",
            "8 target[1] (\"b\").url: is not an http:// or https:// URL",
            "12 target[2] (\"c\").url: must start with postgres:// or postgresql://",
            "16 target[3] (\"d\").url: must start with redis://, rediss://, redis+unix:// or unix://",
            "20 target[4] (\"e\").address: has no port; write it like \"db.internal:5432\"",
            "24 target[5] (\"f\").address: without a scheme",
            "28 target[6] (\"g\").address: in brackets: \"[::1]:80\"",
            "32 target[7] (\"h\").address: from 1 to 65535",
            "36 target[8] (\"i\").url: is not a valid URL",
        ],
    );
    ok("[[target]]\nid = \"a\"\nkind = \"tcp\"\naddress = \"[::1]:5432\"\n");
}

#[test]
fn udp_keys_are_hex_long_enough_and_need_a_listener() {
    check(
        r#"
[server]
udp_listen = "127.0.0.1:7071"
[[target]]
id = "a"
kind = "heartbeat"
period = "1s"
udp_key = "zz"
[[target]]
id = "b"
kind = "heartbeat"
period = "1s"
udp_key = "00112233"
"#,
        &[
            "7 target[0] (\"a\").udp_key: is not hex",
            "12 target[1] (\"b\").udp_key: is 4 bytes; use at least 16",
        ],
    );
    check(
        "[[target]]\nid = \"a\"\nkind = \"heartbeat\"\nperiod = \"1s\"\nudp_key = \"000102030405060708090a0b0c0d0e0f\"\n",
        &["5 target[0] (\"a\").udp_key: set server.udp_listen"],
    );
}

#[test]
fn columns_count_characters_from_one() {
    let errors = parse("[[target]]\nid = \"ä\"\nkind = \"tcp\"\naddress = \"h:1\"\nname = \"éé\"\ntags = [\"é\", 1]\n", "f")
        .unwrap_err();
    let positions: Vec<(usize, usize)> = errors.0.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(positions, [(2, 6), (6, 14)], "{errors}");
}

/// `kind = "grpc"` (issue 14): the TLS keys need `tls = true`, skipping verification
/// contradicts a CA file, and a service name is one short printable name.
#[test]
fn grpc_targets_and_their_tls_keys() {
    let config = ok(r#"
[[target]]
id = "plain"
kind = "grpc"
address = "127.0.0.1:50051"

[[target]]
id = "tls"
kind = "grpc"
address = "[::1]:443"
service = "orders.v1.Orders"
tls = true
tls_ca_cert = "/etc/ca.pem"
tls_server_name = "orders.internal"
"#);
    let TargetKind::Grpc(plain) = &config.targets[0].kind else {
        panic!("grpc")
    };
    assert_eq!(
        (plain.address.as_str(), plain.service.as_str(), &plain.tls),
        ("127.0.0.1:50051", "", &None)
    );
    let TargetKind::Grpc(tls) = &config.targets[1].kind else {
        panic!("grpc")
    };
    let settings = tls.tls.as_ref().expect("tls");
    assert_eq!(tls.service, "orders.v1.Orders");
    assert_eq!(
        settings.ca_cert.as_deref(),
        Some(std::path::Path::new("/etc/ca.pem"))
    );
    assert_eq!(settings.server_name.as_deref(), Some("orders.internal"));
    assert!(!settings.insecure_skip_verify);

    check(
        r#"
[[target]]
id = "a"
kind = "grpc"
tls_ca_cert = "/etc/ca.pem"
tls_server_name = "x"
tls_insecure_skip_verify = true
[[target]]
id = "b"
kind = "grpc"
address = "h:1"
tls = true
tls_ca_cert = "/etc/ca.pem"
tls_insecure_skip_verify = true
service = "bad\u0007name"
[[target]]
id = "c"
kind = "grpc"
address = "h"
url = "grpc://h:1"
[[target]]
id = "d"
kind = "tcp"
address = "h:1"
service = "x"
"#,
        &[
            "1 target[0] (\"a\").address: missing address; a grpc target needs it, like address = \"127.0.0.1:50051\"",
            "4 target[0] (\"a\").tls_ca_cert: applies to TLS: add tls = true",
            "5 target[0] (\"a\").tls_server_name: applies to TLS: add tls = true",
            "6 target[0] (\"a\").tls_insecure_skip_verify: applies to TLS: add tls = true",
            "13 target[1] (\"b\").tls_insecure_skip_verify: contradicts tls_ca_cert",
            "14 target[1] (\"b\").service: at most 256 bytes without control characters",
            "18 target[2] (\"c\").address: \"h\" has no port",
            "19 target[2] (\"c\").url: it is for http, postgres, redis or vitals targets",
            "24 target[3] (\"d\").service: it is for grpc targets",
        ],
    );
}
