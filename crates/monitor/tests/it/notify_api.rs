//! The monitor end to end with notifications: a heartbeat target fails and recovers, alerts
//! reach a real webhook receiver, a silence created through the API mutes them (still
//! recorded), and `/api/v1/alerts`, `/api/v1/outbox` and `/api/v1/silences` show it all.

#![allow(clippy::unwrap_used, missing_debug_implementations)] // test helpers

use std::time::Duration;

use serde_json::{Value, json};
use vitals_testkit::{Webhook, holds, until};

const TOKEN: &str = "s3cret-token-0123456789";
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_mutes_alerts_which_are_still_recorded_and_listed() {
    let data = tempfile::tempdir().unwrap();
    let got = Webhook::start().unwrap();
    let hook = got.url();
    let text = format!(
        r#"[server]
listen = "127.0.0.1:0"
data_dir = {data:?}
api_token = "{TOKEN}"

[notify]
group_wait = "0s"

[[target]]
id = "job"
name = "Nightly job"
kind = "heartbeat"
# Pinged as /ping/job: a public ping id, accepted as such (issue 11, item 1).
ping_id = "job"
public_ping_id = true
period = "1h"
fall = 1
rise = 1
down_after = 2
flap = false

[[channel]]
id = "hook"
kind = "webhook"
url = "{hook}"

[[rule]]
group_by = ["..."]
targets = ["job"]
on = ["unhealthy", "recovered"]
channels = ["hook"]
"#,
        data = data.path().display().to_string()
    );
    let base = crate::support::serve(&text).await;
    let client = reqwest::Client::new();
    let ping = async |path: &str| {
        let status = client
            .get(format!("{base}/ping/{path}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    };
    // The token reads everything, the outbox included (which needs it).
    let get = async |path: &str| -> Value {
        client
            .get(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };

    // An outage and its resolution reach the receiver.
    ping("job").await;
    ping("job/fail").await;
    ping("job").await;
    until("two alerts arrive", WAIT, async || got.len() == 2).await;
    {
        let got = got.json().unwrap();
        assert_eq!(got[0]["kind"], "unhealthy");
        assert_eq!(got[0]["name"], "Nightly job");
        assert_eq!(got[1]["kind"], "recovered");
    }

    // A silence: refused without the token, and for nonsense; created with it.
    let url = format!("{base}/api/v1/silences");
    let body = json!({"targets": ["job"], "duration": "1h", "comment": "deploy"});
    let denied = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    let bad = client
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&json!({"targets": ["job"], "duration": "soon"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert!(
        bad["error"].as_str().unwrap().contains("duration \"soon\""),
        "{bad}"
    );
    let created = client
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let silence: Value = created.json().await.unwrap();
    let id = silence["id"].as_i64().unwrap();
    assert_eq!(
        get("/api/v1/silences").await["silences"][0]["comment"],
        "deploy"
    );

    // Silenced: recorded and listed with the reason, sent nowhere.
    ping("job/fail").await;
    let muted_by = format!("silence {id}");
    until("the muted alert is recorded", WAIT, async || {
        holds(get("/api/v1/alerts").await, |a| {
            a["alerts"][0]["muted_by"] == muted_by.as_str()
        })
    })
    .await;
    let alerts = get("/api/v1/alerts").await;
    assert_eq!(alerts["alerts"][0]["kind"], "unhealthy");
    assert_eq!(alerts["alerts"][0]["alert"]["target"], "job");
    assert_eq!(got.len(), 2);

    // The silence ends; the resolution of a muted problem is recorded, not sent.
    let ended = client
        .delete(format!("{url}/{id}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 204);
    assert_eq!(get("/api/v1/silences").await["silences"], json!([]));
    ping("job").await;
    until("the resolution is recorded", WAIT, async || {
        holds(get("/api/v1/alerts").await, |a| {
            a["alerts"][0]["kind"] == "recovered"
        })
    })
    .await;
    let alerts = get("/api/v1/alerts").await;
    assert_eq!(
        alerts["alerts"][0]["muted_by"],
        "its problem alert was muted"
    );
    assert_eq!(alerts["alerts"].as_array().unwrap().len(), 4);

    // The next outage is sent again; the outbox lists every delivery.
    ping("job/fail").await;
    until("the third alert arrives", WAIT, async || got.len() == 3).await;
    until("the outbox shows it delivered", WAIT, async || {
        holds(get("/api/v1/outbox?pending=true").await, |o| {
            o["outbox"] == json!([])
        })
    })
    .await;
    let outbox = get("/api/v1/outbox").await;
    let rows = outbox["outbox"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter()
            .all(|r| r["channel"] == "hook" && r["delivered"].is_string())
    );
}
