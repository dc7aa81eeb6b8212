//! The dashboard end to end in real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven over WebDriver: load the overview, stop a monitored HTTP
//! service, see its row turn to down without a reload, open its page, see the transition;
//! then cut the connection to the monitor and see the page say so.
//! Screenshots of the overview (desktop and phone width) and the target page are saved under
//! `<target dir>/test-artifacts/`.
//!
//! Skips, saying why, only when Chromium or ChromeDriver is missing and `CI` is unset; on CI
//! a missing browser is a failure (`scripts/test` installs both).

#![allow(clippy::unwrap_used, missing_debug_implementations)] // test helpers

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use fantoccini::{Client, ClientBuilder, Locator};
use tokio::process::Command;
use vitals_monitor::{config, serve};
use vitals_testkit::{Ready, Running, holds, until_every};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// ChromeDriver on a free port (another one if that was taken), killed and reaped (by its
/// own pid) when dropped; and its URL.
async fn start_driver() -> (Running, String) {
    let (driver, port) = Running::start_on_free_port(
        |port| {
            let mut command = Command::new(CHROMEDRIVER);
            command
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1");
            command
        },
        |_| Ready::Line("ChromeDriver was started successfully"),
    )
    .await
    .unwrap();
    (driver, format!("http://127.0.0.1:{port}"))
}

async fn browser(driver: &str, profile: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_string(),
        serde_json::json!({
            "binary": CHROMIUM,
            // Without the background-networking flags Chromium keeps trying outside hosts
            // and hangs on a closed network.
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", profile.display()),
                "--window-size=1280,900",
            ],
        }),
    );
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(capabilities)
        .connect(driver)
        .await
        .unwrap()
}

/// A TCP relay in front of the monitor, so the test can cut the browser off from it:
/// aborting the returned task closes the listener and every relayed connection.
async fn relay(to: std::net::SocketAddr) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            connections.spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, task)
}

fn artifacts() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target dir>/tmp; artifacts go beside it.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn save_screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    let path = artifacts().join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

/// The text of the state in the overview row of `id`, if the row is there.
async fn row_state(browser: &Client, id: &str) -> Option<String> {
    let selector = format!("tr[data-target=\"{id}\"] .state-text");
    let element = browser.find(Locator::Css(&selector)).await.ok()?;
    element.text().await.ok()
}

async fn wait_for_row(browser: &Client, id: &str, state: &str) {
    let what = format!("row {id} to show {state}");
    until_every(what, WAIT, BROWSER_POLL, async || {
        holds(row_state(browser, id).await, |seen| {
            seen.as_deref() == Some(state)
        })
    })
    .await;
}

/// How long the browser gets to show something, and how often it is asked.
const WAIT: Duration = Duration::from_secs(30);
const BROWSER_POLL: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_service_turns_down_live_in_chromium() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but {CHROMIUM} or {CHROMEDRIVER} is missing: install the packages chromium and chromium-driver"
        );
        eprintln!(
            "SKIPPED: {CHROMIUM} or {CHROMEDRIVER} is missing; apt-get install -y chromium chromium-driver"
        );
        return;
    }

    // The monitored service: a real HTTP server on loopback that the test stops.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service_addr = listener.local_addr().unwrap();
    let service = tokio::spawn(async move {
        let app = Router::new().route("/healthz", get(|| async { "ok" }));
        axum::serve(listener, app).await.unwrap();
    });

    let data = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n\n\
         [[target]]\nid = \"web\"\nname = \"Web shop\"\nkind = \"http\"\nurl = \"http://{service_addr}/healthz\"\n\
         group = \"shop\"\ninterval = \"200ms\"\ntimeout = \"100ms\"\njitter = \"0s\"\n\
         interval_changing = \"100ms\"\ninterval_down = \"200ms\"\nfall = 1\ndown_after = 2\nrise = 1\n\n\
         [[target]]\nid = \"nightly\"\nkind = \"heartbeat\"\nperiod = \"1d\"\ngroup = \"jobs\"\n",
        data.path().display().to_string()
    );
    let config = config::parse(&text, "test.toml").unwrap_or_else(|errors| panic!("{errors}"));
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(serve::run(config, move |addr| {
        let _ = tx.send(addr);
    }));
    let (relayed, relay) = relay(rx.await.unwrap()).await;
    let base = format!("http://{relayed}");

    let (_driver, driver_url) = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let browser = browser(&driver_url, profile.path()).await;

    browser.goto(&format!("{base}/")).await.unwrap();
    wait_for_row(&browser, "web", "healthy").await;
    let notice_hidden = browser
        .execute(
            "window.__sameDocument = true; return document.getElementById('connection').hidden;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        notice_hidden,
        serde_json::json!(true),
        "connected: no notice"
    );
    save_screenshot(&browser, "dashboard-overview.png").await;

    service.abort();
    let _ = service.await;
    wait_for_row(&browser, "web", "down").await;
    // The same document: the row changed by server-sent events, not by a reload.
    let same = browser
        .execute("return window.__sameDocument === true;", vec![])
        .await
        .unwrap();
    assert_eq!(same, serde_json::json!(true), "the page was reloaded");
    let note = browser
        .execute(
            "return document.querySelector('.stale-note').hidden;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        note,
        serde_json::json!(false),
        "the counts are said to be stale"
    );
    save_screenshot(&browser, "dashboard-overview-down.png").await;

    browser
        .find(Locator::Css("tr[data-target=\"web\"] a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The transition is committed by the store writer a moment after the change: reload
    // until the target page lists it.
    let mut reload = false;
    let what = "the target page to list the transition to down";
    until_every(
        what,
        Duration::from_secs(20),
        Duration::from_millis(200),
        async || {
            if std::mem::replace(&mut reload, true) {
                browser.refresh().await.unwrap();
            }
            let timeline = match browser.find(Locator::Css("ol.timeline")).await {
                Ok(list) => list.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            holds(timeline, |timeline| timeline.contains("→ down"))
        },
    )
    .await;
    let heading = browser
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(heading, "Web shop");
    save_screenshot(&browser, "dashboard-target.png").await;

    // A phone-sized window: the overview still shows state and name.
    browser.set_window_size(390, 844).await.unwrap();
    browser.goto(&format!("{base}/")).await.unwrap();
    wait_for_row(&browser, "web", "down").await;
    save_screenshot(&browser, "dashboard-overview-phone.png").await;
    browser.goto(&format!("{base}/status")).await.unwrap();
    save_screenshot(&browser, "dashboard-status-phone.png").await;

    // Cut the browser off from the monitor: the overview says so.
    browser.set_window_size(1280, 900).await.unwrap();
    browser.goto(&format!("{base}/")).await.unwrap();
    wait_for_row(&browser, "web", "down").await;
    relay.abort();
    let _ = relay.await;
    let what = "the page to say it lost its connection";
    until_every(what, Duration::from_secs(20), BROWSER_POLL, async || {
        let hidden = browser
            .execute(
                "return document.getElementById('connection').hidden;",
                vec![],
            )
            .await
            .unwrap();
        holds(hidden, |hidden| *hidden == serde_json::json!(false))
    })
    .await;
    let notice = browser
        .find(Locator::Id("connection"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        notice.contains("Connection to the monitor lost"),
        "{notice}"
    );
    save_screenshot(&browser, "dashboard-connection-lost.png").await;

    browser.close().await.unwrap();
}

/// Not a test: how long Chromium takes to show the overview of 10,000 targets (navigation
/// start to `load`, which includes the server's render, the transfer and the layout).
/// `cargo test -p vitals-monitor --test dashboard_browser -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it with --ignored --nocapture"]
async fn measure_the_overview_of_ten_thousand_targets_in_chromium() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        eprintln!("SKIPPED: {CHROMIUM} or {CHROMEDRIVER} is missing");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n\n",
        data.path().display().to_string()
    );
    for i in 0..10_000 {
        text.push_str(&format!(
            "[[target]]\nid = \"t{i:05}\"\nkind = \"heartbeat\"\nperiod = \"1h\"\ngroup = \"g{}\"\n",
            i % 10
        ));
    }
    let config = config::parse(&text, "test.toml").unwrap_or_else(|errors| panic!("{errors}"));
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(serve::run(config, move |addr| {
        let _ = tx.send(addr);
    }));
    let base = format!("http://{}", rx.await.unwrap());
    let (_driver, driver_url) = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let browser = browser(&driver_url, profile.path()).await;
    for round in 1..=5 {
        browser
            .goto(&format!("{base}/?round={round}"))
            .await
            .unwrap();
        let timing = browser
            .execute(
                "const t = performance.getEntriesByType('navigation')[0]; \
                 return [t.responseStart - t.startTime, t.domContentLoadedEventEnd - t.startTime, t.loadEventEnd - t.startTime];",
                vec![],
            )
            .await
            .unwrap();
        eprintln!("round {round}: [first byte, DOM ready, load] in ms: {timing}");
    }
    browser.close().await.unwrap();
}
