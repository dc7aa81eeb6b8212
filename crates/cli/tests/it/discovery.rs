//! Target discovery in a real `vitals serve` (issue 14): targets found in a `file_sd` file and
//! in DNS (a real DNS server on loopback) appear and disappear without a restart, keep their
//! history when they come back, and a file that does not read keeps the last good set.

#![allow(clippy::unwrap_used)] // test helpers

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::time::Duration;

use crate::support::{get, ids, reasons, serve};
use vitals_testkit::{DnsRecord, DnsServer, Signal, holds, until};

fn config(path: &Path, data: &Path, discovery: &str) {
    std::fs::write(
        path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n\n[defaults]\ninterval = \"1s\"\ntimeout = \"1s\"\njitter = \"0s\"\nfall = 1\nrise = 1\n\n{discovery}",
            data.display().to_string()
        ),
    )
    .unwrap();
}

#[tokio::test]
async fn file_sd_targets_come_and_go_and_a_bad_file_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join("targets.json");
    // Bound sockets complete TCP handshakes from their backlog: two live TCP servers.
    let one = TcpListener::bind("127.0.0.1:0").unwrap();
    let two = TcpListener::bind("127.0.0.1:0").unwrap();
    let (one, two) = (one.local_addr().unwrap(), two.local_addr().unwrap());
    let id = |addr: std::net::SocketAddr| format!("edge-127.0.0.1-{}", addr.port());
    std::fs::write(
        &sd,
        format!(r#"[{{"targets": ["{one}"], "labels": {{"zone": "a"}}}}]"#),
    )
    .unwrap();
    let file = dir.path().join("vitals.toml");
    config(
        &file,
        &dir.path().join("data"),
        &format!(
            "[[discovery]]\nname = \"edge\"\nfile_sd = {:?}\nrefresh = \"1s\"\n[discovery.target]\nkind = \"tcp\"\naddress = \"{{address}}\"\ngroup = \"edge\"\n",
            sd.display().to_string()
        ),
    );
    let with_discovery = std::fs::read_to_string(&file).unwrap();
    let client = reqwest::Client::new();
    let (monitor, base) = serve(&file).await;
    let healthy = async |id: String| {
        until(
            format!("{id} healthy"),
            Duration::from_secs(20),
            async || {
                holds(
                    get(&client, format!("{base}/api/v1/targets/{id}")).await,
                    |t| t["state"] == "healthy",
                )
            },
        )
        .await
    };
    let first = healthy(id(one)).await;
    assert_eq!(first["name"], format!("edge {one}"));

    // A second target appears; then the file breaks: the two stay, the error is logged.
    std::fs::write(&sd, format!(r#"[{{"targets": ["{one}", "{two}"]}}]"#)).unwrap();
    healthy(id(two)).await;
    std::fs::write(&sd, r#"[{"targets": ["no-port-here"]}]"#).unwrap();
    until(
        "the bad file reported",
        Duration::from_secs(20),
        async || {
            holds(monitor.stderr(), |err| {
                err.contains("discovery failed") && err.contains("no-port-here")
            })
        },
    )
    .await;
    let mut both = vec![id(one), id(two)];
    both.sort();
    assert_eq!(ids(&client, &base).await, both);
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("vitals_discovery_errors_total{discovery=\"edge\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vitals_discovered_targets{discovery=\"edge\"} 2"),
        "{metrics}"
    );
    vitals_testkit::promtool_check(&metrics);

    // One goes: removed, its history kept; it comes back carrying on from where it was.
    std::fs::write(&sd, format!(r#"[{{"targets": ["{two}"]}}]"#)).unwrap();
    until("one removed", Duration::from_secs(20), async || {
        holds(ids(&client, &base).await, |ids| ids == &[id(two)])
    })
    .await;
    std::fs::write(&sd, format!(r#"[{{"targets": ["{one}", "{two}"]}}]"#)).unwrap();
    let back = healthy(id(one)).await;
    let reasons = reasons(&back);
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("removed from the configuration")),
        "{back}"
    );
    assert_eq!(
        back["since"], first["since"],
        "its state carried on: {back}"
    );

    // A reload without the discovery stops it and its targets go; with it again, they come
    // back.
    config(&file, &dir.path().join("data"), "");
    monitor.signal(Signal::SIGHUP).unwrap();
    until(
        "the discovery stopped",
        Duration::from_secs(20),
        async || holds(ids(&client, &base).await, Vec::is_empty),
    )
    .await;
    std::fs::write(&file, &with_discovery).unwrap();
    monitor.signal(Signal::SIGHUP).unwrap();
    until("the discovery back", Duration::from_secs(20), async || {
        holds(ids(&client, &base).await, |ids| ids.len() == 2)
    })
    .await;

    monitor.signal(Signal::SIGTERM).unwrap();
    let mut monitor = monitor;
    assert!(
        monitor
            .wait(Duration::from_secs(30))
            .await
            .unwrap()
            .success()
    );
}

#[tokio::test]
async fn dns_discovery_follows_a_headless_service() {
    let dns = DnsServer::start().unwrap();
    let pod = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = pod.local_addr().unwrap().port();
    dns.set("orders.shop.test", vec![DnsRecord::A(Ipv4Addr::LOCALHOST)]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vitals.toml");
    config(
        &file,
        &dir.path().join("data"),
        &format!(
            "[[discovery]]\nname = \"orders\"\ndns = \"orders.shop.test\"\nport = {port}\nnameserver = \"{}\"\nrefresh = \"1s\"\n[discovery.target]\nkind = \"tcp\"\naddress = \"{{host}}:{{port}}\"\n",
            dns.addr()
        ),
    );
    let client = reqwest::Client::new();
    let (monitor, base) = serve(&file).await;
    let id = format!("orders-127.0.0.1-{port}");
    until("the pod found", Duration::from_secs(20), async || {
        holds(
            get(&client, format!("{base}/api/v1/targets/{id}")).await,
            |t| t["state"] == "healthy",
        )
    })
    .await;
    // The Deployment scaled to zero: the name is gone, and so is the target.
    dns.set("orders.shop.test", Vec::new());
    until("the pod gone", Duration::from_secs(20), async || {
        holds(ids(&client, &base).await, Vec::is_empty)
    })
    .await;
    monitor.signal(Signal::SIGTERM).unwrap();
    let mut monitor = monitor;
    assert!(
        monitor
            .wait(Duration::from_secs(30))
            .await
            .unwrap()
            .success()
    );
}
