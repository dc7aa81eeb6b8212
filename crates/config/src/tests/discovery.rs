//! `[[discovery]]`: sources, the template checked at its own lines, and targets made from it.

use super::*;
use crate::{DiscoverySource, DnsRecord, Found, instance_id};

#[test]
fn a_file_and_a_dns_discovery_read_and_make_targets_with_the_defaults() {
    let config = ok(r#"
[defaults]
interval = "7s"
timeout = "2s"

[[discovery]]
name = "edge"
file_sd = "sd/targets.yaml"
[discovery.target]
kind = "tcp"
address = "{address}"

[[discovery]]
name = "orders"
dns = "_http._tcp.orders.shop.svc.cluster.local"
type = "SRV"
nameserver = "10.96.0.10:53"
refresh = "1m"
[discovery.target]
kind = "http"
name = "order {host}"
url = "http://{host}:{port}/readyz"
headers = { "X-Probe" = "{id}" }
group = "orders"
tags = ["k8s"]
"#);
    let [edge, orders] = &config.discovery[..] else {
        panic!("two discoveries: {:?}", config.discovery);
    };
    assert_eq!(edge.source, DiscoverySource::File("sd/targets.yaml".into()));
    assert_eq!(edge.refresh, crate::DEFAULT_FILE_REFRESH);
    assert_eq!(
        orders.source,
        DiscoverySource::Dns {
            name: "_http._tcp.orders.shop.svc.cluster.local".into(),
            record: DnsRecord::Srv,
            port: None,
            nameserver: Some("10.96.0.10:53".parse().unwrap()),
        }
    );
    assert_eq!(orders.refresh, secs(60));

    let mut found = Found::parse("[fd00::1]:8000").unwrap();
    found.labels = vec![("zone".into(), "a".into())];
    let target = orders.instantiate(&found).unwrap();
    assert_eq!(target.id, "orders-fd00--1-8000");
    assert_eq!(target.name, "order [fd00::1]");
    assert_eq!(target.group.as_deref(), Some("orders"));
    assert_eq!(target.tags, ["k8s", "zone=a"]);
    assert_eq!(target.schedule.interval, secs(7), "[defaults] apply");
    let TargetKind::Http(http) = &target.kind else {
        panic!("{target:?}");
    };
    assert_eq!(http.url.as_str(), "http://[fd00::1]:8000/readyz");
    assert_eq!(
        http.headers,
        [("X-Probe".to_owned(), "orders-fd00--1-8000".to_owned())]
    );

    let target = edge
        .instantiate(&Found::parse("web-1.example.com:443").unwrap())
        .unwrap();
    assert_eq!(target.id, "edge-web-1.example.com-443");
    assert_eq!(target.name, "edge web-1.example.com:443");
    assert!(
        matches!(&target.kind, TargetKind::Tcp { address } if address == "web-1.example.com:443")
    );
}

#[test]
fn template_mistakes_are_reported_at_their_own_lines() {
    check(
        r#"
[[discovery]]
name = "orders"
dns = "orders.svc"
port = 8000
[discovery.target]
kind = "http"
url = "http://{address}/readyz"
timeout = "soon"
adress = "x"
"#,
        &[
            r#"8 discovery[0] ("orders").target.timeout: "soon""#,
            r#"9 discovery[0] ("orders").target.adress: unknown key"#,
        ],
    );
    check(
        r#"
[[discovery]]
name = "orders"
dns = "orders.svc"
[discovery.target]
id = "mine"
kind = "http"
url = "http://{address}/"
"#,
        &[r#"3 discovery[0] ("orders").port: missing port"#],
    );
    check(
        r#"
[[discovery]]
name = "a"
file_sd = "x.json"
port = 80
[discovery.target]
kind = "tcp"
address = "{address}"

[[discovery]]
name = "b"
file_sd = "y.json"
[discovery.target]
id = "b"
kind = "tcp"
address = "{address}"

[[discovery]]
name = "c"
dns = "c.svc"
type = "SRV"
[discovery.target]
kind = "heartbeat"
period = "1m"

[[discovery]]
name = "d"
[discovery.target]
kind = "tcp"
address = "{address}"
"#,
        &[
            r#"4 discovery[0] ("a").port: is for DNS discovery"#,
            r#"13 discovery[1] ("b").target.id: made from the discovery's name"#,
            r#"22 discovery[2] ("c").target.kind: heartbeat targets are not found"#,
            r#"25 discovery[3] ("d"): says nowhere to look"#,
        ],
    );
}

#[test]
fn instance_ids_are_valid_target_ids_and_stable() {
    assert_eq!(
        instance_id("orders", "10.1.2.3", 8000),
        "orders-10.1.2.3-8000"
    );
    let long = instance_id("orders", &"pod-".repeat(30), 8000);
    assert_eq!(long.len(), 64);
    assert_eq!(long, instance_id("orders", &"pod-".repeat(30), 8000));
    assert_ne!(long, instance_id("orders", &"pod-".repeat(31), 8000));
    assert!(Found::parse("10.0.0.1").is_err());
    assert!(Found::parse("a b:80").is_err());
    assert!(Found::parse("host:0").is_err());
    assert_eq!(
        Found::parse("Host.Example:80").unwrap().host,
        "host.example"
    );
}
