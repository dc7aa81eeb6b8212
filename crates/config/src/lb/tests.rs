//! The load balancer configuration: a good file read back, and mistakes reported all at
//! once with their lines and fields.

use std::time::Duration;

use super::*;

const GOOD: &str = r#"
[admin]
listen = "127.0.0.1:9901"

[[listener]]
listen = "127.0.0.1:8080"
pool = "web"

[[pool]]
id = "web"
balance = "least_requests"
health_path = "/readyz"
interval = "1s"
timeout = "500ms"
fall = 3
rise = 2
slow_start = "10s"
idempotent_methods = ["post"]

[pool.outlier]
consecutive_failures = 3
base_ejection = "10s"

[[pool.backend]]
address = "127.0.0.1:9001"
weight = 2

[[pool.backend]]
id = "b"
address = "127.0.0.1:9002"
"#;

#[test]
fn a_good_file_is_read_with_defaults_filled_in() {
    let config = parse(GOOD, "lb.toml").unwrap();
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.listeners[0].pool, "web");
    assert_eq!(
        config.listeners[0].max_header_bytes,
        defaults::MAX_HEADER_BYTES
    );
    let pool = &config.pools[0];
    assert_eq!(pool.balance, Balance::LeastRequests);
    assert_eq!(pool.schedule.interval, Duration::from_secs(1));
    assert_eq!(pool.schedule.timeout, Duration::from_millis(500));
    // Unlike the monitor's targets, a down backend is checked at the interval.
    assert_eq!(pool.schedule.interval_down, Duration::from_secs(1));
    assert_eq!(pool.thresholds.fall, 3);
    assert_eq!(pool.idempotent_methods, vec!["POST".to_string()]);
    assert_eq!(pool.outlier.consecutive_failures, 3);
    assert_eq!(
        pool.outlier.max_ejection_percent,
        defaults::MAX_EJECTION_PERCENT
    );
    assert_eq!(pool.backends[0].name, "127.0.0.1:9001");
    assert_eq!(pool.backends[0].weight, 2);
    assert_eq!(pool.backends[1].name, "b");
    assert!(is_lb(GOOD));
    assert!(!is_lb("[[target]]\nid = \"a\"\n"));
}

/// `errors` has exactly one line per `expected`, each starting with it.
fn starts_each_line(errors: &str, expected: &[&str]) {
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(lines.len(), expected.len(), "{errors}");
    for (line, expected) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(expected),
            "{line:?} should start with {expected:?}"
        );
    }
}

#[test]
fn every_mistake_is_reported_in_one_pass() {
    let text = r#"
[[listener]]
listen = "127.0.0.1:8080"
pool = "api"

[[listener]]
listen = "127.0.0.1:8080"
pool = "web"

[[pool]]
id = "web"
balance = "random"
timeout = "5s"
interval = "1s"
panic_threshold = 150
health_path = "readyz"

[[pool.backend]]
address = "localhost:9001"

[[pool.backend]]
address = "127.0.0.1:9002"
weight = 0

[[pool]]
id = "web"
retyr_budget = 10
[[pool.backend]]
address = "127.0.0.1:9003"
"#;
    let errors = parse(text, "lb.toml").unwrap_err().to_string();
    let expected = [
        "lb.toml:4:8: listener[0].pool: no pool has id \"api\"",
        "lb.toml:7:10: listener[1].listen: 127.0.0.1:8080 is already used by listener[0].listen",
        "lb.toml:12:11: pool[0] (\"web\").balance: unknown balance \"random\"",
        "lb.toml:13:11: pool[0] (\"web\").timeout: 5s is longer than interval 1s",
        "lb.toml:15:19: pool[0] (\"web\").panic_threshold: 150 is not a percentage",
        "lb.toml:16:15: pool[0] (\"web\").health_path: \"readyz\" is not a path",
        "lb.toml:19:11: pool[0] (\"web\").backend[0].address: \"localhost:9001\" is not an IP address and port",
        "lb.toml:23:10: pool[0] (\"web\").backend[1].weight: 0 is outside 1 to 1000",
        "lb.toml:26:6: pool[1] (\"web\").id: duplicate id \"web\": pool[0] on line 11",
        "lb.toml:27:1: pool[1] (\"web\").retyr_budget: unknown key `retyr_budget`; did you mean `retry_budget`?",
    ];
    starts_each_line(&errors, &expected);
}

#[test]
fn a_file_without_listeners_or_backends_is_refused() {
    let errors = parse("[[pool]]\nid = \"web\"\n", "lb.toml")
        .unwrap_err()
        .to_string();
    assert!(errors.contains("no [[listener]]"), "{errors}");
    assert!(
        errors.contains("pool[0] (\"web\").backend: no backends"),
        "{errors}"
    );
}

#[test]
fn the_admin_token_hosts_and_trusted_proxies_are_read_and_bad_networks_named() {
    let text = GOOD
        .replace(
            "listen = \"127.0.0.1:9901\"",
            "listen = \"127.0.0.1:9901\"\ntoken = \"0123456789abcdef0123\"\nhosts = [\"LB.internal\"]",
        )
        .replace(
            "pool = \"web\"\n\n[[pool]]",
            "pool = \"web\"\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n\n[[pool]]",
        );
    let config = parse(&text, "lb.toml").unwrap();
    assert_eq!(config.admin.token.as_deref(), Some("0123456789abcdef0123"));
    assert_eq!(config.admin.hosts, vec!["lb.internal".to_owned()]);
    let nets = &config.listeners[0].trusted_proxies;
    assert_eq!(nets.len(), 2);
    assert!(nets[0].contains("10.1.2.3".parse().unwrap()));
    assert!(!nets[0].contains("11.0.0.1".parse().unwrap()));
    assert!(nets[1].contains("::1".parse().unwrap()));
    assert!(!nets[1].contains("127.0.0.1".parse().unwrap()));
    // An IPv4 peer seen on an IPv6 socket is still itself.
    assert!(nets[0].contains("::ffff:10.0.0.7".parse().unwrap()));

    let bad = GOOD.replace(
        "pool = \"web\"\n\n[[pool]]",
        "pool = \"web\"\ntrusted_proxies = [\"10.0.0.0/33\", \"proxy.internal\"]\n\n[[pool]]",
    );
    let errors = parse(&bad, "lb.toml").unwrap_err().to_string();
    assert!(
        errors.contains(
            "listener[0].trusted_proxies: \"10.0.0.0/33\" is not an IP address or network"
        ),
        "{errors}"
    );
    assert!(errors.contains("\"proxy.internal\" is not"), "{errors}");
    let short = GOOD.replace(
        "listen = \"127.0.0.1:9901\"",
        "listen = \"127.0.0.1:9901\"\ntoken = \"short\"",
    );
    let errors = parse(&short, "lb.toml").unwrap_err().to_string();
    assert!(errors.contains("admin.token"), "{errors}");
}

#[test]
fn a_network_of_no_bits_holds_every_address_of_its_family() {
    let all = IpNet::parse("0.0.0.0/0").unwrap();
    assert!(all.contains("203.0.113.9".parse().unwrap()));
    assert!(!all.contains("2001:db8::1".parse().unwrap()));
    assert_eq!(IpNet::parse("::/129"), None);
    assert_eq!(IpNet::parse("10.0.0.1/x"), None);
}

/// `health_check = "grpc"` (issue 14): a pool checked over gRPC names a service, not a path.
#[test]
fn a_pool_can_be_checked_over_grpc() {
    let backend = "[[pool.backend]]\naddress = \"127.0.0.1:9001\"\n";
    let listener = "[[listener]]\nlisten = \"127.0.0.1:8080\"\npool = \"web\"\n";
    let config = parse(
        &format!("{listener}[[pool]]\nid = \"web\"\nhealth_check = \"grpc\"\ngrpc_service = \"orders.v1.Orders\"\n{backend}"),
        "lb.toml",
    )
    .unwrap();
    assert_eq!(
        config.pools[0].health_check,
        HealthCheck::Grpc {
            service: "orders.v1.Orders".into()
        }
    );
    let plain = parse(
        &format!("{listener}[[pool]]\nid = \"web\"\nhealth_check = \"grpc\"\n{backend}"),
        "lb.toml",
    )
    .unwrap();
    assert_eq!(
        plain.pools[0].health_check,
        HealthCheck::Grpc {
            service: String::new()
        }
    );
    assert_eq!(
        parse(GOOD, "lb.toml").unwrap().pools[0].health_check,
        HealthCheck::Http
    );

    let text = format!(
        "{listener}[[pool]]\nid = \"web\"\nhealth_check = \"grp\"\n{backend}[[pool]]\nid = \"api\"\nhealth_check = \"grpc\"\nhealth_path = \"/readyz\"\n{backend}[[pool]]\nid = \"db\"\ngrpc_service = \"x\"\n{backend}"
    );
    let errors = parse(&text, "lb.toml").unwrap_err().to_string();
    let expected = [
        "lb.toml:6:16: pool[0] (\"web\").health_check: unknown health check \"grp\"; did you mean \"grpc\"? choose http or grpc",
        "lb.toml:12:1: pool[1] (\"api\").health_path: health_path is for HTTP checks; a gRPC check names a service: use grpc_service",
        "lb.toml:17:1: pool[2] (\"db\").grpc_service: grpc_service is for gRPC checks: add health_check = \"grpc\", or remove it",
    ];
    starts_each_line(&errors, &expected);
}

#[test]
fn tls_http2_and_backend_keys_are_read_and_their_mistakes_named() {
    let good = r#"
[[listener]]
listen = "127.0.0.1:8443"
pool = "web"
tls_certificates = ["site.pem", "api.pem"]
max_concurrent_streams = 50

[[pool]]
id = "web"
backend_protocol = "h2"
backend_tls = true
backend_ca_file = "ca.pem"
backend_server_name = "web.internal"
[[pool.backend]]
address = "127.0.0.1:9001"
"#;
    let config = parse(good, "lb.toml").unwrap();
    let listener = &config.listeners[0];
    assert_eq!(
        listener.tls_certificates,
        vec![
            std::path::PathBuf::from("site.pem"),
            std::path::PathBuf::from("api.pem")
        ]
    );
    assert_eq!(listener.max_concurrent_streams, 50);
    let pool = &config.pools[0];
    assert_eq!(pool.protocol, super::Protocol::Http2);
    assert_eq!(
        pool.tls,
        Some(super::BackendTls {
            ca_file: Some("ca.pem".into()),
            server_name: Some("web.internal".into()),
        })
    );

    let bad = r#"
[[listener]]
listen = "127.0.0.1:8443"
pool = "web"
max_concurrent_streams = 0

[[pool]]
id = "web"
backend_protocol = "h3"
backend_ca_file = "ca.pem"
[[pool.backend]]
address = "127.0.0.1:9001"

[[pool]]
id = "api"
backend_tls = true
backend_server_name = "not a name"
[[pool.backend]]
address = "127.0.0.1:9002"
"#;
    let errors = parse(bad, "lb.toml").unwrap_err().to_string();
    let expected = [
        "lb.toml:5:26: listener[0].max_concurrent_streams: 0 is outside 1 to 10000",
        "lb.toml:9:20: pool[0] (\"web\").backend_protocol: unknown protocol \"h3\"; did you mean \"h2\"? choose http1 or h2",
        "lb.toml:10:19: pool[0] (\"web\").backend_ca_file: is for TLS to backends: add backend_tls = true, or remove it",
        "lb.toml:17:23: pool[1] (\"api\").backend_server_name: \"not a name\" is not a DNS name or IP address",
    ];
    starts_each_line(&errors, &expected);
}
