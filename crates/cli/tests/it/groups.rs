//! An alert group across a `kill -9` of the real `vitals serve`: twenty heartbeat targets of
//! one group fail; the monitor is killed with SIGKILL while the group waits to collect
//! members; after the restart exactly one notification arrives, listing all twenty, under the
//! group's key and sequence 1.

#![allow(clippy::unwrap_used, missing_debug_implementations)] // test helpers

use std::time::Duration;

use crate::support::{ping, serve};
use serde_json::Value;
use vitals_testkit::{Signal, Webhook, holds, until};

const MEMBERS: usize = 20;
const WAIT: Duration = Duration::from_secs(30);

fn pending(data: &std::path::Path) -> Vec<vitals_monitor::store::OutboxRow> {
    vitals_monitor::store::Store::open_read_only(data)
        .unwrap()
        .outbox(100, true)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_during_the_group_wait_still_sends_one_notification_with_every_member() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hook = Webhook::start().unwrap();
    let config = dir.path().join("vitals.toml");
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n\n\
         [notify]\ngroup_wait = \"8s\"\nretry_min = \"50ms\"\nretry_max = \"200ms\"\n\n\
         [[channel]]\nid = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n\n\
         [[rule]]\non = [\"unhealthy\", \"recovered\"]\nchannels = [\"hook\"]\n\n",
        data.display().to_string(),
        hook.url()
    );
    for i in 0..MEMBERS {
        text.push_str(&format!(
            "[[target]]\nid = \"job-{i:02}\"\nkind = \"heartbeat\"\nperiod = \"1h\"\ngroup = \"batch\"\n\
             public_ping_id = true\n\
             fall = 1\nrise = 1\ndown_after = 2\nflap = false\n\n"
        ));
    }
    std::fs::write(&config, text).unwrap();
    let client = reqwest::Client::new();

    let (mut first, base) = serve(&config).await;
    for i in 0..MEMBERS {
        ping(&client, &base, &format!("job-{i:02}")).await;
    }
    for i in 0..MEMBERS {
        ping(&client, &base, &format!("job-{i:02}/fail")).await;
    }
    // The group's notification is in the outbox, not due yet, listing every member.
    let rows = until("one waiting row listing all twenty", WAIT, async || {
        holds(pending(&data), |rows| {
            rows.len() == 1
                && serde_json::from_str::<Value>(&rows[0].payload).unwrap()["firing"]
                    .as_array()
                    .is_some_and(|f| f.len() == MEMBERS)
        })
    })
    .await;
    first.kill().await.unwrap();
    assert!(
        hook.is_empty(),
        "killed inside the group wait: nothing sent yet"
    );
    let key = rows[0].key.clone();

    let (mut second, base) = serve(&config).await;
    until("the group's notification delivered", WAIT, async || {
        pending(&data).is_empty() && !hook.is_empty()
    })
    .await;
    // Nothing else is on its way: the group is no longer waiting, and unchanged.
    let alerts: Value = client
        .get(format!("{base}/api/v1/alerts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let groups = alerts["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["firing"].as_array().unwrap().len(), MEMBERS);
    until("the group flushed", WAIT, async || {
        let alerts: Value = client
            .get(format!("{base}/api/v1/alerts"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        alerts["groups"][0]["waiting"] == false && alerts["groups"][0]["changed"] == false
    })
    .await;
    let requests = hook.requests();
    assert_eq!(requests.len(), 1, "exactly one notification");
    assert_eq!(requests[0].header("idempotency-key"), Some(key.as_str()));
    assert!(key.ends_with(":1@hook"), "{key}");
    let body = requests[0].json().unwrap();
    let mut members: Vec<&str> = body["firing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["target"].as_str().unwrap())
        .collect();
    members.sort_unstable();
    let expected: Vec<String> = (0..MEMBERS).map(|i| format!("job-{i:02}")).collect();
    assert_eq!(members, expected);
    assert_eq!(body["status"], "firing");
    assert_eq!(body["labels"]["group"], "batch");
    second.signal(Signal::SIGTERM).unwrap();
    second.wait(Duration::from_secs(30)).await.unwrap();
}
