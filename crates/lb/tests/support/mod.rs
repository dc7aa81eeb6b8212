//! Test support: real backend processes (`vitals-lb-testbackend`), the balancer on loopback,
//! and a client that counts answers per backend. Bounded polls are `vitals_testkit::until`.

#![allow(clippy::unwrap_used)] // test helpers
#![allow(dead_code)] // each test file uses a part

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use vitals_lb::Bound;
use vitals_testkit::free_port;

/// A backend process that answers with its name.
pub struct Backend {
    pub name: String,
    pub address: SocketAddr,
    pub child: Child,
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        let address: SocketAddr = format!("127.0.0.1:{}", free_port().unwrap())
            .parse()
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_vitals-lb-testbackend"))
            .args(["--name", name, "--listen", &address.to_string()])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next_line().await.unwrap().unwrap();
        assert!(line.starts_with("listening on"), "{line}");
        Backend {
            name: name.to_string(),
            address,
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

/// The balancer running in this process, and where it listens.
pub struct Lb {
    pub base: String,
    pub admin: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Lb {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One pool "web" over `backends`; `pool_keys` adds TOML lines to the pool.
pub async fn start_lb(backends: &[&Backend], pool_keys: &str) -> Lb {
    start_lb_with(backends, pool_keys, "", "").await
}

/// [`start_lb`], with TOML lines added to `[admin]` and to the `[[listener]]` too.
pub async fn start_lb_with(
    backends: &[&Backend],
    pool_keys: &str,
    admin_keys: &str,
    listener_keys: &str,
) -> Lb {
    let named: Vec<(&str, SocketAddr)> = backends
        .iter()
        .map(|b| (b.name.as_str(), b.address))
        .collect();
    start_lb_on(&named, pool_keys, admin_keys, listener_keys).await
}

/// [`start_lb`] over backends given by name and address (servers of the test's own).
pub async fn start_lb_at(backends: &[(&str, SocketAddr)], pool_keys: &str) -> Lb {
    start_lb_on(backends, pool_keys, "", "").await
}

async fn start_lb_on(
    backends: &[(&str, SocketAddr)],
    pool_keys: &str,
    admin_keys: &str,
    listener_keys: &str,
) -> Lb {
    let port = free_port().unwrap();
    let mut text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n{admin_keys}\n\n[[listener]]\nlisten = \"127.0.0.1:{port}\"\npool = \"web\"\n{listener_keys}\n\n[[pool]]\nid = \"web\"\n{pool_keys}\n"
    );
    for (name, address) in backends {
        text.push_str(&format!(
            "\n[[pool.backend]]\nid = \"{name}\"\naddress = \"{address}\"\n"
        ));
    }
    let config =
        vitals_config::lb::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    let (tx, rx) = tokio::sync::oneshot::channel::<Bound>();
    let task = tokio::spawn(async move {
        let result = vitals_lb::run(
            config,
            move |bound| {
                let _ = tx.send(bound.clone());
            },
            std::future::pending(),
        )
        .await;
        panic!("the balancer stopped: {result:?}");
    });
    let bound = rx.await.unwrap();
    Lb {
        base: format!("http://{}", bound.listeners[0].0),
        admin: format!("http://{}", bound.admin),
        task,
    }
}

impl Lb {
    /// The admin API's view of backend `name`.
    pub async fn backend(&self, client: &reqwest::Client, name: &str) -> serde_json::Value {
        let pools: serde_json::Value = client
            .get(format!("{}/api/v1/pools", self.admin))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pools[0]["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .cloned()
            .unwrap()
    }

    pub async fn in_rotation(&self, client: &reqwest::Client, name: &str) -> bool {
        self.backend(client, name).await["in_rotation"] == true
    }

    /// Requests failed by the client's doing (`aborted`, `slow`), from `/metrics`.
    pub async fn client_faults(&self, client: &reqwest::Client, reason: &str) -> u64 {
        self.metric_sum(
            client,
            "vitals_lb_client_faults_total{",
            &format!("reason=\"{reason}\""),
        )
        .await
    }

    /// The sum of the series of `/metrics` that start with `prefix` and contain `label`.
    pub async fn metric_sum(&self, client: &reqwest::Client, prefix: &str, label: &str) -> u64 {
        let text = client
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(prefix) && l.contains(label))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    }

    /// Tries sent to backend `name` so far (every status class), from `/metrics`.
    pub async fn tries(&self, client: &reqwest::Client, name: &str) -> u64 {
        let text = client
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| {
                l.starts_with("vitals_lb_requests_total{")
                    && l.contains(&format!("backend=\"{name}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    }
}

/// Answers of `n` GETs of `path`, counted by body (the backend's name) or by failure.
pub async fn count(client: &reqwest::Client, url: &str, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let key = match client.get(url).send().await {
            Ok(r) if r.status() == 200 => r.text().await.unwrap(),
            Ok(r) => format!("status {}", r.status()),
            Err(e) => format!("error {e}"),
        };
        *seen.entry(key).or_insert(0) += 1;
    }
    seen
}
