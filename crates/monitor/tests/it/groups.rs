//! Alert groups end to end: a real `vitals serve` checks 500 real TCP listeners on loopback
//! in three groups; every port closes at once, then opens again. Two real webhook receivers
//! (two channels) each get one notification per group for the failure and one per group for
//! the recovery, listing every member. The figure docs/ALERTS.md reports (notifications per
//! storm, before and after groups) is the ignored test at the end.

#![allow(clippy::unwrap_used, missing_debug_implementations)] // test helpers

use std::fmt::Write;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use vitals_testkit::{Webhook, holds, until};

const GROUPS: [&str; 3] = ["shop", "search", "data"];

/// Real TCP servers: each accepts and closes, until it is closed (refused) and opened again
/// on the same port.
struct Ports {
    addrs: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Ports {
    async fn open(n: usize) -> Ports {
        // All bound before any is served: a port freed now could be the next one handed out.
        let mut listeners = Vec::new();
        for _ in 0..n {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let mut ports = Ports {
            addrs: listeners.iter().map(|l| l.local_addr().unwrap()).collect(),
            tasks: Vec::new(),
        };
        for listener in listeners {
            ports.serve(listener);
        }
        ports
    }

    fn serve(&mut self, listener: TcpListener) {
        self.tasks.push(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        }));
    }

    /// The same ports again (a closed listener's port is free to bind at once).
    async fn reopen(&mut self) {
        for addr in self.addrs.clone() {
            let listener = until(
                format!("{addr} free again"),
                Duration::from_secs(10),
                async || TcpListener::bind(addr).await.map_err(|e| e.to_string()),
            )
            .await;
            self.serve(listener);
        }
    }

    /// Every port refuses connections from now on (once the aborted tasks drop them).
    fn close(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

/// The monitor's config: `n` TCP targets spread over [`GROUPS`], one rule with `group_by`
/// sending to two webhooks.
fn config(data: &std::path::Path, ports: &Ports, hooks: [&Webhook; 2], group_by: &str) -> String {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nmax_concurrency = 600\n\n\
         [notify]\ngroup_wait = \"15s\"\ngroup_interval = \"30s\"\nretry_min = \"50ms\"\nretry_max = \"200ms\"\n\n\
         [[channel]]\nid = \"one\"\nkind = \"webhook\"\nurl = \"{}\"\n\n\
         [[channel]]\nid = \"two\"\nkind = \"webhook\"\nurl = \"{}\"\n\n\
         [[rule]]\non = [\"down\", \"recovered\"]\nchannels = [\"one\", \"two\"]\ngroup_by = {group_by}\n\n",
        data.display().to_string(),
        hooks[0].url(),
        hooks[1].url(),
    );
    for (i, addr) in ports.addrs.iter().enumerate() {
        let group = GROUPS[i % GROUPS.len()];
        write!(
            text,
            "[[target]]\nid = \"{group}-{i:03}\"\nkind = \"tcp\"\naddress = \"{addr}\"\ngroup = \"{group}\"\n\
             interval = \"1s\"\ntimeout = \"500ms\"\njitter = \"0s\"\ninterval_changing = \"500ms\"\ninterval_down = \"1s\"\nflap = false\n\n"
        )
        .unwrap();
    }
    text
}

async fn targets(client: &reqwest::Client, monitor: &str) -> Vec<Value> {
    let list: Value = client
        .get(format!("{monitor}/api/v1/targets?limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["targets"].as_array().unwrap().clone()
}

async fn until_all(client: &reqwest::Client, monitor: &str, n: usize, state: &str) {
    until(
        format!("{n} targets {state}"),
        Duration::from_secs(90),
        async || {
            holds(targets(client, monitor).await, |t| {
                t.len() == n && t.iter().all(|t| t["state"] == state)
            })
        },
    )
    .await;
}

/// The open groups, as `/api/v1/alerts` shows them.
async fn groups(client: &reqwest::Client, monitor: &str) -> Vec<Value> {
    let alerts: Value = client
        .get(format!("{monitor}/api/v1/alerts?limit=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    alerts["groups"].as_array().unwrap().clone()
}

/// What one storm of `n` targets sent to each receiver: (during the failure, during the
/// recovery), as the JSON bodies received.
async fn storm(n: usize, group_by: &str) -> [(Vec<Value>, Vec<Value>); 2] {
    let mut ports = Ports::open(n).await;
    let hooks = [Webhook::start().unwrap(), Webhook::start().unwrap()];
    let data = tempfile::tempdir().unwrap();
    let monitor = crate::support::serve(&config(
        data.path(),
        &ports,
        [&hooks[0], &hooks[1]],
        group_by,
    ))
    .await;
    let client = reqwest::Client::new();
    until_all(&client, &monitor, n, "healthy").await;

    ports.close();
    until_all(&client, &monitor, n, "down").await;
    // Every failure notified (by group or one by one) and nothing more on its way: no
    // group waits or has changed since its last notification.
    // Distinct targets notified as failing (in a group's list, or alone).
    let firing = |hook: &Webhook| {
        let mut seen = std::collections::HashSet::new();
        for body in hook.json().unwrap() {
            match body["firing"].as_array() {
                Some(members) => seen.extend(members.iter().map(|m| m["target"].to_string())),
                None => {
                    seen.insert(body["target"].to_string());
                }
            }
        }
        seen.len()
    };
    until(
        "every failure notified",
        Duration::from_secs(60),
        async || {
            let open: Vec<(bool, bool, usize)> = groups(&client, &monitor)
                .await
                .iter()
                .map(|g| {
                    let firing = g["firing"].as_array().map_or(0, Vec::len);
                    (g["waiting"] == true, g["changed"] == true, firing)
                })
                .collect();
            let sent = [firing(&hooks[0]), firing(&hooks[1])];
            holds((open, sent), |(open, sent)| {
                open.iter()
                    .all(|(waiting, changed, _)| !waiting && !changed)
                    && *sent == [n, n]
            })
        },
    )
    .await;
    let failed = [hooks[0].json().unwrap(), hooks[1].json().unwrap()];
    // A group notification's link opens the dashboard's page of its members.
    if let Some(link) = failed[0][0]["dashboard"].as_str() {
        let page = client.get(format!("{monitor}{link}")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let page = page.text().await.unwrap();
        for member in failed[0][0]["firing"].as_array().unwrap() {
            let id = member["target"].as_str().unwrap();
            assert!(page.contains(&format!("/targets/{id}\"")), "{id} listed");
        }
        let gone = client
            .get(format!("{monitor}/alerts?group=nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), 404);
    }

    // The ports open again right after the groups' first notifications: every target is
    // back long before the next tick (30 s), so each group's resolution is one notification.
    ports.reopen().await;
    until_all(&client, &monitor, n, "healthy").await;
    let resolved = |hook: &Webhook, from: usize| {
        let mut seen = std::collections::HashSet::new();
        for body in &hook.json().unwrap()[from..] {
            match body["resolved"].as_array() {
                Some(members) => seen.extend(members.iter().map(|m| m["target"].to_string())),
                None => {
                    seen.insert(body["target"].to_string());
                }
            }
        }
        seen.len()
    };
    until(
        "every recovery notified",
        Duration::from_secs(90),
        async || {
            groups(&client, &monitor).await.is_empty()
                && resolved(&hooks[0], failed[0].len()) == n
                && resolved(&hooks[1], failed[1].len()) == n
        },
    )
    .await;
    let [one, two] = [hooks[0].json().unwrap(), hooks[1].json().unwrap()];
    let split = |all: Vec<Value>, k: usize| {
        let (a, b) = all.split_at(k);
        (a.to_vec(), b.to_vec())
    };
    [split(one, failed[0].len()), split(two, failed[1].len())]
}

#[tokio::test(flavor = "multi_thread")]
async fn five_hundred_ports_closing_together_make_one_notification_per_group_and_channel() {
    let [one, two] = storm(500, "[\"group\"]").await;
    for (failed, recovered) in [&one, &two] {
        assert_eq!(failed.len(), 3, "one per group: {failed:#?}");
        assert_eq!(recovered.len(), 3, "one per group");
        for notice in failed {
            assert_eq!(notice["status"], "firing");
            let members = notice["firing"].as_array().unwrap();
            let group = notice["labels"]["group"].as_str().unwrap();
            assert!(members.len() >= 166, "{group}: {}", members.len());
            assert!(
                members
                    .iter()
                    .all(|m| m["target"].as_str().unwrap().starts_with(group))
            );
            let summary = notice["summary"].as_str().unwrap();
            assert!(
                summary.starts_with(&format!("{group}: {} targets down — ", members.len())),
                "{summary}"
            );
            assert!(
                summary.ends_with(&format!("and {} more", members.len() - 10)),
                "{summary}"
            );
        }
        for notice in recovered {
            assert_eq!(notice["status"], "resolved");
            assert!(notice["firing"].as_array().unwrap().is_empty());
        }
    }
    // The same notifications on both channels.
    let keys = |notices: &[Value]| {
        let mut keys: Vec<String> = notices.iter().map(|n| n["key"].to_string()).collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&one.0), keys(&two.0));
}

/// The figure in docs/ALERTS.md: notifications per storm (500 targets in 3 groups failing and
/// recovering together), one by one (`["..."]`, before groups) and grouped (the default).
/// Each storm in a test of its own, so that its monitor stops with the test's runtime:
/// `cargo test -p vitals-monitor --test groups -- --ignored --nocapture --test-threads=1`.
async fn figure(name: &str, group_by: &str) {
    let started = tokio::time::Instant::now();
    let [one, two] = storm(500, group_by).await;
    println!(
        "500 targets, 3 groups, {name}: {} + {} notifications per channel (failure + \
         recovery; channel two: {} + {}); storm measured in {:.0?}",
        one.0.len(),
        one.1.len(),
        two.0.len(),
        two.1.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement: a storm of 500 targets"]
async fn storm_figure_one_by_one() {
    figure("one by one (group_by = [\"...\"])", "[\"...\"]").await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement: a storm of 500 targets"]
async fn storm_figure_grouped() {
    figure("grouped (group_by = [\"group\"])", "[\"group\"]").await;
}
