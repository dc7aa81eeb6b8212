//! `/api/v1/targets` a page at a time (issue 10): `limit` rows in order of id, `next_cursor`
//! and a `Link` header to the next page, and 400s naming a bad `limit` or `cursor`. Against
//! a real `vitals serve` on loopback.

#![allow(clippy::unwrap_used)] // test helpers

use serde_json::Value;

/// A monitor with `count` heartbeat targets, written in reverse order of id, so that the
/// pages' order is seen to be the ids' and not the file's.
async fn monitor(count: usize, data: &tempfile::TempDir) -> String {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n",
        data.path().display().to_string()
    );
    for i in (0..count).rev() {
        text.push_str(&format!(
            "\n[[target]]\nid = \"t-{i:03}\"\nkind = \"heartbeat\"\nperiod = \"1h\"\n"
        ));
    }
    crate::support::serve(&text).await
}

/// Status, `Link` header and JSON body of GET `url`.
async fn get(url: &str) -> (u16, Option<String>, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    let link = response
        .headers()
        .get("link")
        .map(|link| link.to_str().unwrap().to_owned());
    (status, link, response.json().await.unwrap())
}

fn ids(page: &Value) -> Vec<String> {
    page["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_walk_every_target_once_in_order_of_id() {
    let data = tempfile::tempdir().unwrap();
    let base = monitor(250, &data).await;
    let expected: Vec<String> = (0..250).map(|i| format!("t-{i:03}")).collect();

    // Without parameters: the first 100.
    let (status, _, first) = get(&format!("{base}/api/v1/targets")).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&first), expected[..100]);
    assert_eq!(first["isolated"], false);

    // Following next_cursor.
    let mut seen = Vec::new();
    let mut url = format!("{base}/api/v1/targets?limit=90");
    let mut sizes = Vec::new();
    loop {
        let (status, link, page) = get(&url).await;
        assert_eq!(status, 200, "{page}");
        sizes.push(ids(&page).len());
        seen.extend(ids(&page));
        let Some(cursor) = page["next_cursor"].as_str() else {
            assert!(page["next_cursor"].is_null(), "{page}");
            assert_eq!(link, None, "the last page links nowhere");
            break;
        };
        // The Link header says the same, relative to the server.
        let next = format!("/api/v1/targets?limit=90&cursor={cursor}");
        assert_eq!(link, Some(format!("<{next}>; rel=\"next\"")));
        url = format!("{base}{next}");
    }
    assert_eq!(sizes, [90, 90, 70]);
    assert_eq!(seen, expected);

    // A page exactly as long as what is left has no next page.
    let (_, link, all) = get(&format!("{base}/api/v1/targets?limit=250")).await;
    assert_eq!(ids(&all), expected);
    assert!(all["next_cursor"].is_null() && link.is_none(), "{all}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_limit_or_cursor_is_a_400_naming_it() {
    let data = tempfile::tempdir().unwrap();
    let base = monitor(3, &data).await;
    for (query, says) in [
        (
            "limit=0",
            "limit=0 is out of range; use 1 to 1000 (default 100)",
        ),
        (
            "limit=1001",
            "limit=1001 is out of range; use 1 to 1000 (default 100)",
        ),
        (
            "limit=ten",
            "limit=\"ten\" is not a whole number; use 1 to 1000 (default 100)",
        ),
        ("cursor=nonsense", "cursor=\"nonsense\" is not a cursor"),
    ] {
        let (status, _, body) = get(&format!("{base}/api/v1/targets?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.starts_with(says), "{query}: {error}");
    }
    // A cursor after a target that is gone still leads on from where it would sort.
    let after_t0 = hex_of("t-000a");
    let (status, _, page) = get(&format!("{base}/api/v1/targets?cursor={after_t0}")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), ["t-001", "t-002"]);
}

/// What a cursor holds, for a test that makes one up (clients never do).
fn hex_of(id: &str) -> String {
    id.bytes().map(|b| format!("{b:02x}")).collect()
}
