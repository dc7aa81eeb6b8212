//! The outbox queries against a real SQLite file: claims, retries, deliveries,
//! cancellation, silences and saved policy state.

use std::time::{Duration, SystemTime};

use super::*;

fn alert(key: &str, muted_by: Option<&str>) -> AlertRecord {
    AlertRecord {
        key: key.into(),
        target: "api".into(),
        kind: "down".into(),
        at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
        payload: "{}".into(),
        muted_by: muted_by.map(Into::into),
        group_key: None,
    }
}

#[test]
fn rows_are_claimed_once_retried_and_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000);
    let channels = vec!["hook".to_owned(), "mail".to_owned()];
    assert_eq!(
        store
            .enqueue_alert(&alert("a", None), &channels, now)
            .unwrap(),
        2
    );
    // The same alert again (a retry after a crash) creates nothing.
    assert_eq!(
        store
            .enqueue_alert(&alert("a", None), &channels, now)
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .enqueue_alert(&alert("m", Some("silence 1")), &channels, now)
            .unwrap(),
        0
    );

    let lease = Duration::from_secs(60);
    let rows = store.outbox_claim("hook", now, lease, 10).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].key, "a@hook");
    // Claimed: nobody else gets it until the lease ends.
    assert!(
        store
            .outbox_claim("hook", now, lease, 10)
            .unwrap()
            .is_empty()
    );
    let later = now + Duration::from_secs(5);
    store
        .outbox_retry(rows[0].id, later, "connection refused")
        .unwrap();
    assert!(
        store
            .outbox_claim("hook", now, lease, 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.outbox_next_due("hook").unwrap(), Some(later));
    let again = store.outbox_claim("hook", later, lease, 10).unwrap();
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].last_error.as_deref(), Some("connection refused"));
    store.outbox_delivered(again[0].id, later).unwrap();
    assert_eq!(store.outbox_next_due("hook").unwrap(), None);
    assert_eq!(
        store.outbox(10, true).unwrap().len(),
        1,
        "mail is still pending"
    );

    store.cancel_alert("a", "blocked by db").unwrap();
    assert!(store.outbox(10, true).unwrap().is_empty());
    let alerts = store.alerts(10).unwrap();
    assert_eq!(alerts.len(), 2);
    assert!(alerts.iter().all(|a| a.muted_by.is_some()));
}

#[test]
fn silences_and_states_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000);
    let id = store
        .add_silence(&Silence {
            id: 0,
            targets: vec!["api".into()],
            groups: vec![],
            created: now,
            until: now + Duration::from_secs(600),
            comment: "deploy".into(),
        })
        .unwrap();
    assert_eq!(store.silences(now).unwrap()[0].targets, ["api"]);
    assert!(store.expire_silence(id, now).unwrap());
    assert!(store.silences(now).unwrap().is_empty());
    assert!(!store.expire_silence(id + 1, now).unwrap());
    store.save_notify_state("api", "{\"a\":1}").unwrap();
    store.save_notify_state("api", "{\"a\":2}").unwrap();
    assert_eq!(
        store.load_notify_states().unwrap(),
        [("api".to_owned(), "{\"a\":2}".to_owned())]
    );
}

/// Issue 11, item 11: a row that failed and was dead-lettered no longer holds back the rows
/// behind it, is never claimed again, and shows as dead.
#[test]
fn a_dead_letter_lets_the_rows_behind_it_go() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000);
    let channels = vec!["hook".to_owned()];
    store
        .enqueue_alert(&alert("a", None), &channels, now)
        .unwrap();
    store
        .enqueue_alert(&alert("b", None), &channels, now)
        .unwrap();
    let lease = Duration::from_secs(60);
    let first = store.outbox_claim("hook", now, lease, 10).unwrap();
    assert_eq!(first.len(), 2);
    store.outbox_release(&[first[1].id]).unwrap();
    store
        .outbox_retry(first[0].id, now, "HTTP 503 Service Unavailable")
        .unwrap();
    // In order: b waits behind the failed a.
    let claimed = store.outbox_claim("hook", now, lease, 10).unwrap();
    assert_eq!(
        claimed.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        ["a@hook"]
    );
    store
        .outbox_dead(claimed[0].id, now, "HTTP 409 Conflict: key reused")
        .unwrap();
    let b_created = store.outbox(10, true).unwrap()[0].created;
    assert_eq!(store.outbox_backlog().unwrap(), (1, Some(b_created)));
    let claimed = store.outbox_claim("hook", now, lease, 10).unwrap();
    assert_eq!(
        claimed.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        ["b@hook"]
    );
    let dead = store
        .outbox(10, false)
        .unwrap()
        .into_iter()
        .find(|r| r.key == "a@hook")
        .unwrap();
    assert_eq!(dead.dead, Some(now));
    assert_eq!(dead.attempts, 2);
    assert_eq!(
        dead.last_error.as_deref(),
        Some("HTTP 409 Conflict: key reused")
    );
    let pending: Vec<String> = store
        .outbox(10, true)
        .unwrap()
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(pending, ["b@hook"]);
}
