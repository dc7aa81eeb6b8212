//! DNS discovery against a real DNS server on loopback (`vitals_testkit::DnsServer`), through
//! hickory-resolver over a real UDP socket: A and AAAA, SRV with its targets resolved, records
//! that change between two looks, a name that goes (no targets), and a server that is gone
//! (an error: the targets found before stay, which `serve` does).

#![allow(clippy::unwrap_used)] // test

use std::net::{Ipv4Addr, Ipv6Addr};

use vitals_monitor::config::{DnsRecord as Kind, Found};
use vitals_monitor::discovery::dns::Dns;
use vitals_testkit::{DnsRecord, DnsServer};

fn addresses(found: &[Found]) -> Vec<String> {
    found.iter().map(Found::address).collect()
}

#[tokio::test]
async fn a_and_aaaa_records_become_addresses_and_follow_changes() {
    let server = DnsServer::start().unwrap();
    server.set(
        "orders.shop.test",
        vec![
            DnsRecord::A(Ipv4Addr::new(10, 1, 0, 2)),
            DnsRecord::A(Ipv4Addr::new(10, 1, 0, 1)),
            DnsRecord::Aaaa(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
        ],
    );
    let both = Dns::new(
        "orders.shop.test",
        Kind::Ip,
        Some(8000),
        Some(server.addr()),
    )
    .unwrap();
    assert_eq!(
        addresses(&both.resolve().await.unwrap()),
        ["10.1.0.1:8000", "10.1.0.2:8000", "[fd00::1]:8000"]
    );
    let v4 = Dns::new("orders.shop.test", Kind::A, Some(8000), Some(server.addr())).unwrap();
    assert_eq!(
        addresses(&v4.resolve().await.unwrap()),
        ["10.1.0.1:8000", "10.1.0.2:8000"]
    );
    let v6 = Dns::new(
        "orders.shop.test",
        Kind::Aaaa,
        Some(81),
        Some(server.addr()),
    )
    .unwrap();
    assert_eq!(addresses(&v6.resolve().await.unwrap()), ["[fd00::1]:81"]);

    // A pod goes, another comes: asked again, DNS says so (no cache in between).
    server.set(
        "orders.shop.test",
        vec![
            DnsRecord::A(Ipv4Addr::new(10, 1, 0, 2)),
            DnsRecord::A(Ipv4Addr::new(10, 1, 0, 3)),
        ],
    );
    assert_eq!(
        addresses(&both.resolve().await.unwrap()),
        ["10.1.0.2:8000", "10.1.0.3:8000"]
    );
    // Scaled to zero: the name is gone (NXDOMAIN), which is no targets, not an error.
    server.set("orders.shop.test", Vec::new());
    assert!(both.resolve().await.unwrap().is_empty());
}

#[tokio::test]
async fn srv_records_give_each_target_its_port_and_addresses() {
    let server = DnsServer::start().unwrap();
    let srv = "_http._tcp.orders.shop.test";
    server.set(
        srv,
        vec![
            DnsRecord::Srv {
                target: "pod-a.orders.shop.test".into(),
                port: 8000,
            },
            DnsRecord::Srv {
                target: "pod-b.orders.shop.test".into(),
                port: 8001,
            },
        ],
    );
    server.set(
        "pod-a.orders.shop.test",
        vec![DnsRecord::A(Ipv4Addr::new(10, 2, 0, 1))],
    );
    server.set(
        "pod-b.orders.shop.test",
        vec![DnsRecord::A(Ipv4Addr::new(10, 2, 0, 2))],
    );
    let dns = Dns::new(srv, Kind::Srv, None, Some(server.addr())).unwrap();
    assert_eq!(
        addresses(&dns.resolve().await.unwrap()),
        ["10.2.0.1:8000", "10.2.0.2:8001"]
    );
    assert!(server.queries() >= 5, "SRV, then A and AAAA of each target");
}

#[tokio::test]
async fn a_server_that_is_gone_is_an_error_not_an_empty_set() {
    let server = DnsServer::start().unwrap();
    let addr = server.addr();
    drop(server);
    let dns = Dns::new("orders.shop.test", Kind::A, Some(80), Some(addr)).unwrap();
    let error = dns.resolve().await.unwrap_err();
    assert!(
        error.contains("DNS A lookup of \"orders.shop.test\" failed"),
        "{error}"
    );
}
