//! Reloading the balancer's configuration through the admin API (issue 16, item 4): under
//! load, a backend added and one removed fail no request; backends that did not change keep
//! their state (a drained one stays drained, a healthy one is never `unknown` again); a
//! listener comes and goes; a file with mistakes is refused with every error and the
//! running configuration stays.
//!
//! SIGHUP on a real `vitals lb` process under wrk is in `crates/cli/tests/lb.rs`.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::{Backend, Load, assert_none_failed, start_lb_file};
use vitals_testkit::{free_port, until};

const PATIENCE: Duration = Duration::from_secs(15);

/// A configuration: one pool "web" over `backends`, one listener per port in `listeners`.
fn config(listeners: &[u16], backends: &[(&str, SocketAddr)], extra_pool_keys: &str) -> String {
    let mut text = "[admin]\nlisten = \"127.0.0.1:0\"\n".to_string();
    for port in listeners {
        text.push_str(&format!(
            "\n[[listener]]\nlisten = \"127.0.0.1:{port}\"\npool = \"web\"\n"
        ));
    }
    text.push_str(&format!(
        "\n[[pool]]\nid = \"web\"\ninterval = \"200ms\"\ntimeout = \"200ms\"\nfall = 3\nrise = 2\nconnect_timeout = \"200ms\"\nrequest_timeout = \"2s\"\n{extra_pool_keys}\n"
    ));
    for (name, address) in backends {
        text.push_str(&format!(
            "\n[[pool.backend]]\nid = \"{name}\"\naddress = \"{address}\"\n"
        ));
    }
    text
}

async fn reload(lb: &crate::support::Lb) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/reload", lb.admin))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn in_rotation(lb: &crate::support::Lb, name: &str) {
    let client = reqwest::Client::new();
    until(&format!("{name} is in rotation"), PATIENCE, async || {
        lb.in_rotation(&client, name).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_added_and_one_removed_under_load_fail_no_request() {
    let (a, b, c) = (
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lb.toml");
    let port = free_port().unwrap();
    std::fs::write(
        &path,
        config(&[port], &[("a", a.address), ("b", b.address)], ""),
    )
    .unwrap();
    let lb = start_lb_file(&path).await;
    in_rotation(&lb, "a").await;
    in_rotation(&lb, "b").await;

    let client = reqwest::Client::new();
    let load = Load::get(8, &client, &lb.base);
    until("a has served under load", PATIENCE, async || {
        lb.tries(&client, "a").await > 50
    })
    .await;

    std::fs::write(
        &path,
        config(&[port], &[("b", b.address), ("c", c.address)], ""),
    )
    .unwrap();
    let (status, applied) = reload(&lb).await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["backends"]["added"], serde_json::json!(["web/c"]));
    assert_eq!(applied["backends"]["removed"], serde_json::json!(["web/a"]));
    assert_eq!(applied["backends"]["unchanged"], 1);
    assert_eq!(applied["listeners"]["unchanged"], 1);

    // b never left rotation; c comes in after its checks pass and takes traffic.
    assert!(lb.in_rotation(&client, "b").await);
    in_rotation(&lb, "c").await;
    until("c has served under load", PATIENCE, async || {
        lb.tries(&client, "c").await > 50
    })
    .await;
    let mut answers = Vec::new();
    for sequence in load.finish().await {
        // Each client's requests go one after another: once one has reached c (the new
        // configuration), none reaches a (gone from it).
        if let Some(first_c) = sequence.iter().position(|a| a == "c") {
            assert!(
                !sequence[first_c..].iter().any(|a| a == "a"),
                "a answered after the reload: {:?}",
                &sequence[first_c..]
            );
        }
        answers.extend(sequence);
    }
    assert_none_failed(&answers, &["a", "b", "c"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_backends_keep_their_state_across_a_reload() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lb.toml");
    let port = free_port().unwrap();
    std::fs::write(&path, config(&[port], &[("a", a.address)], "")).unwrap();
    let lb = start_lb_file(&path).await;
    in_rotation(&lb, "a").await;
    let client = reqwest::Client::new();
    let drained = client
        .post(format!("{}/api/v1/pools/web/backends/a/drain", lb.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(drained.status(), 200);

    // The pool changes (b added, a slower timeout: a new data path), a does not.
    std::fs::write(
        &path,
        config(
            &[port],
            &[("a", a.address), ("b", b.address)],
            "retry_budget = 30\n",
        ),
    )
    .unwrap();
    let (status, applied) = reload(&lb).await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["pools"]["changed"], serde_json::json!(["web"]));
    let view = lb.backend(&client, "a").await;
    assert_eq!(view["drained"], true, "{view}");
    assert_eq!(view["state"], "healthy", "{view}");
    in_rotation(&lb, "b").await;
    let answers = crate::support::count(&client, &lb.base, 20).await;
    assert_eq!(answers.get("b"), Some(&20), "{answers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_is_added_and_removed_by_a_reload() {
    let a = Backend::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lb.toml");
    let (first, second) = (free_port().unwrap(), free_port().unwrap());
    std::fs::write(&path, config(&[first], &[("a", a.address)], "")).unwrap();
    let lb = start_lb_file(&path).await;
    in_rotation(&lb, "a").await;

    std::fs::write(&path, config(&[first, second], &[("a", a.address)], "")).unwrap();
    let (status, applied) = reload(&lb).await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(
        applied["listeners"]["added"],
        serde_json::json!([format!("127.0.0.1:{second}")])
    );
    let url = format!("http://127.0.0.1:{second}/");
    let kept_alive = reqwest::Client::new();
    assert_eq!(
        kept_alive
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "a"
    );

    std::fs::write(&path, config(&[first], &[("a", a.address)], "")).unwrap();
    let (status, applied) = reload(&lb).await;
    assert_eq!(status, 200, "{applied}");
    until(
        "the removed listener stops accepting",
        PATIENCE,
        async || {
            tokio::net::TcpStream::connect(("127.0.0.1", second))
                .await
                .is_err()
        },
    )
    .await;
    // Its kept-alive connection was closed too (it was idle): nothing serves on it.
    until(
        "the kept-alive connection is closed",
        PATIENCE,
        async || kept_alive.get(&url).send().await.is_err(),
    )
    .await;
    assert_eq!(
        reqwest::get(&lb.base).await.unwrap().text().await.unwrap(),
        "a"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_is_refused_with_every_error_and_the_running_one_stays() {
    let a = Backend::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lb.toml");
    let port = free_port().unwrap();
    let good = config(&[port], &[("a", a.address)], "");
    std::fs::write(&path, &good).unwrap();
    let lb = start_lb_file(&path).await;
    in_rotation(&lb, "a").await;

    // Two mistakes the reader finds.
    std::fs::write(
        &path,
        good.replace("pool = \"web\"", "pool = \"wbe\"")
            .replace("fall = 3", "fall = 3\nbalance = \"fastest\""),
    )
    .unwrap();
    let (status, refused) = reload(&lb).await;
    assert_eq!(status, 400, "{refused}");
    let errors: Vec<String> = serde_json::from_value(refused["errors"].clone()).unwrap();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("no pool has id \"wbe\""), "{errors:?}");
    assert!(
        errors[1].contains("unknown balance \"fastest\""),
        "{errors:?}"
    );

    // A mistake found only when the configuration is put to work: a certificate file that
    // is not one. Named by field and file.
    let garbage = dir.path().join("site.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    std::fs::write(
        &path,
        good.replace(
            "pool = \"web\"",
            &format!(
                "pool = \"web\"\ntls_certificates = [{:?}]",
                garbage.display().to_string()
            ),
        ),
    )
    .unwrap();
    let (status, refused) = reload(&lb).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(
        refused["errors"],
        serde_json::json!([format!(
            "listener[0].tls_certificates[0]: {}: holds no certificate (expected -----BEGIN CERTIFICATE----- blocks, the server's first)",
            garbage.display()
        )])
    );

    // Still the old configuration, plain HTTP to a.
    assert_eq!(
        reqwest::get(&lb.base).await.unwrap().text().await.unwrap(),
        "a"
    );
}

#[tokio::test]
async fn a_reload_needs_the_admin_token() {
    let a = Backend::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lb.toml");
    let port = free_port().unwrap();
    std::fs::write(
        &path,
        config(&[port], &[("a", a.address)], "")
            .replace("[admin]\n", "[admin]\ntoken = \"0123456789abcdef0123\"\n"),
    )
    .unwrap();
    let lb = start_lb_file(&path).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/reload", lb.admin);
    let refused = client.post(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let taken = client
        .post(&url)
        .bearer_auth("0123456789abcdef0123")
        .send()
        .await
        .unwrap();
    assert_eq!(taken.status(), 200);
}
