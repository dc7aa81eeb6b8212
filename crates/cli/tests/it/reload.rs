//! Configuration reload of a real `vitals serve` (issue 14): `kill -HUP` and
//! `POST /api/v1/reload` add, change and remove targets without touching the unchanged ones;
//! a file with mistakes is refused with every error and the running configuration stays.

#![allow(clippy::unwrap_used)] // test helpers

use std::path::Path;
use std::time::Duration;

use crate::support::{get, ids, ping, reasons, serve};
use serde_json::Value;
use vitals_testkit::{Signal, Webhook, holds, until};

const TOKEN: &str = "reload-test-token";

fn write_config(path: &Path, data: &Path, targets: &str, retention: u32) {
    std::fs::write(
        path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\napi_token = \"{TOKEN}\"\n\n[retention]\nraw_days = {retention}\n\n[defaults]\ninterval = \"1s\"\ntimeout = \"1s\"\njitter = \"0s\"\nfall = 1\nrise = 1\ndown_after = 2\n\n{targets}",
            data.display().to_string()
        ),
    )
    .unwrap();
}

#[tokio::test]
async fn sighup_and_the_api_reload_targets_keeping_the_unchanged_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("vitals.toml");
    let web = Webhook::start().unwrap();
    // A bound socket completes TCP handshakes from its backlog: a live TCP target.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = tcp.local_addr().unwrap();
    let first = format!(
        "[[target]]\nid = \"web\"\nkind = \"http\"\nurl = \"{}/health\"\n\n\
         [[target]]\nid = \"gone\"\nkind = \"tcp\"\naddress = \"{tcp}\"\n\n\
         [[target]]\nid = \"job\"\nkind = \"heartbeat\"\nping_id = \"job-ping\"\nperiod = \"1h\"\n",
        web.url()
    );
    write_config(&config, &data, &first, 7);
    let client = reqwest::Client::new();
    let (monitor, base) = serve(&config).await;
    until(
        "web and gone healthy",
        Duration::from_secs(20),
        async || {
            let web = get(&client, format!("{base}/api/v1/targets/web")).await;
            let gone = get(&client, format!("{base}/api/v1/targets/gone")).await;
            holds((web, gone), |(web, gone)| {
                web["state"] == "healthy" && gone["state"] == "healthy"
            })
        },
    )
    .await;
    ping(&client, &base, "job-ping").await;
    let web_before = get(&client, format!("{base}/api/v1/targets/web")).await;
    let checks_before = web.len();

    // web unchanged, gone removed, job's period changed, new added: then SIGHUP.
    let second = format!(
        "[[target]]\nid = \"web\"\nkind = \"http\"\nurl = \"{}/health\"\n\n\
         [[target]]\nid = \"job\"\nkind = \"heartbeat\"\nping_id = \"job-ping\"\nperiod = \"2h\"\n\n\
         [[target]]\nid = \"new\"\nkind = \"tcp\"\naddress = \"{tcp}\"\n",
        web.url()
    );
    write_config(&config, &data, &second, 7);
    monitor.signal(Signal::SIGHUP).unwrap();
    until("the reloaded set", Duration::from_secs(20), async || {
        holds(ids(&client, &base).await, |ids| {
            ids == &["job".to_owned(), "new".to_owned(), "web".to_owned()]
        })
    })
    .await;
    until("new checked", Duration::from_secs(20), async || {
        holds(
            get(&client, format!("{base}/api/v1/targets/new")).await,
            |new| new["state"] == "healthy",
        )
    })
    .await;
    let web_after = get(&client, format!("{base}/api/v1/targets/web")).await;
    assert_eq!(
        web_after["since"], web_before["since"],
        "web's state was kept"
    );
    assert_eq!(
        web_after["transitions"], web_before["transitions"],
        "no transition of web was repeated"
    );
    let job = get(&client, format!("{base}/api/v1/targets/job")).await;
    assert_eq!(
        job["state"], "healthy",
        "a changed target keeps its state: {job}"
    );
    let marks = reasons(&job);
    assert!(
        marks.iter().any(|r| r.contains("definition changed")),
        "{job}"
    );
    let status = client
        .get(format!("{base}/api/v1/targets/gone"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404, "gone is no longer watched");
    // Nor in /metrics: its series went with it; new's came.
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("target=\"gone\""), "{metrics}");
    assert!(
        metrics.contains("vitals_target_up{target=\"new\"} 1"),
        "{metrics}"
    );
    vitals_testkit::promtool_check(&metrics);
    // web kept its schedule: still checked about once a second, not restarted.
    until("web still checked", Duration::from_secs(10), async || {
        holds(web.len(), |n| *n > checks_before + 1)
    })
    .await;

    // A file with two mistakes: refused with both, by line, and nothing changes.
    let broken = format!(
        "{second}\n[[target]]\nid = \"bad\"\nkind = \"tcp\"\nadress = \"x\"\ninterval = \"soon\"\n"
    );
    write_config(&config, &data, &broken, 7);
    let unauthorized = client
        .post(format!("{base}/api/v1/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let refused = client
        .post(format!("{base}/api/v1/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    let errors: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(errors.len() >= 2, "{body}");
    assert!(errors.iter().any(|e| e.contains("adress")), "{body}");
    assert!(errors.iter().any(|e| e.contains("soon")), "{body}");
    assert!(errors.iter().all(|e| e.contains("vitals.toml:")), "{body}");
    // SIGHUP with the same file: logged, refused, the monitor runs on.
    monitor.signal(Signal::SIGHUP).unwrap();
    until("the refusal logged", Duration::from_secs(10), async || {
        holds(monitor.stderr(), |err| {
            err.contains("configuration reload refused")
        })
    })
    .await;
    assert_eq!(ids(&client, &base).await, ["job", "new", "web"]);

    // A good file through the API; what needs a restart is named, and not applied.
    write_config(&config, &data, &first, 8);
    let done = client
        .post(format!("{base}/api/v1/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let done: Value = done.json().await.unwrap();
    assert_eq!(done["added"], serde_json::json!(["gone"]), "{done}");
    assert_eq!(done["removed"], serde_json::json!(["new"]), "{done}");
    assert_eq!(done["changed"], serde_json::json!(["job"]), "{done}");
    assert_eq!(done["unchanged"], 1, "{done}");
    assert_eq!(
        done["needs_restart"],
        serde_json::json!(["[retention]"]),
        "{done}"
    );
    // gone came back: its history was kept, and it carries on from its saved state.
    let gone = get(&client, format!("{base}/api/v1/targets/gone")).await;
    let reasons = reasons(&gone);
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("removed from the configuration")),
        "{gone}"
    );
    assert_eq!(gone["state"], "healthy", "{gone}");
    monitor.signal(Signal::SIGTERM).unwrap();
    let mut monitor = monitor;
    let status = monitor.wait(Duration::from_secs(30)).await.unwrap();
    assert!(status.success(), "{status:?}");
}
