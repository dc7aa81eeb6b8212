//! The dashboard served by a real `vitals serve` on loopback: every page and the badge, a
//! target with no history, a name full of HTML (escaped, never markup), a real TCP service
//! that dies (its transition on the target page, its change on `/events`), the read token
//! (pages and events closed, status page and badges open), and 10,000 targets.

#![allow(clippy::unwrap_used, missing_debug_implementations)] // test helpers

use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use vitals_core::Kind;
use vitals_core::machine::State;
use vitals_monitor::store::{CheckResult, Store, Transition};
use vitals_testkit::{holds, until};

struct Monitor {
    base: String,
    client: reqwest::Client,
    _data: tempfile::TempDir,
}

const TOKEN: &str = "read-token-0123456789abcdef";

/// Start the monitor with `server` lines added to `[server]` and `targets`; `prepare` may
/// fill the data directory first.
async fn start_with(
    server: &str,
    targets: &str,
    prepare: impl FnOnce(&std::path::Path),
) -> Monitor {
    let data = tempfile::tempdir().unwrap();
    prepare(data.path());
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n{server}\n\n{targets}",
        data.path().display().to_string()
    );
    Monitor {
        base: crate::support::serve(&text).await,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _data: data,
    }
}

async fn start(targets: &str) -> Monitor {
    start_with("", targets, |_| {}).await
}

impl Monitor {
    async fn get(&self, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, response.text().await.unwrap(), headers)
    }

    async fn page(&self, path: &str) -> String {
        let (status, body, headers) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        let kind = headers["content-type"].to_str().unwrap();
        assert!(kind.starts_with("text/html"), "GET {path}: {kind}");
        body
    }

    /// Poll `path` until its body contains `needle` (a real process needs real time).
    async fn wait_for(&self, path: &str, needle: &str) -> String {
        let what = format!("{path} to show {needle:?}");
        until(what, Duration::from_secs(20), async || {
            holds(self.get(path).await.1, |body| body.contains(needle))
        })
        .await
    }
}

const HOSTILE: &str = "<script>alert(1)</script>&\"'";

fn tcp_target(id: &str, addr: std::net::SocketAddr) -> String {
    format!(
        "[[target]]\nid = \"{id}\"\nkind = \"tcp\"\naddress = \"{addr}\"\ngroup = \"shop\"\ntags = [\"edge\"]\ninterval = \"200ms\"\ntimeout = \"100ms\"\njitter = \"0s\"\ninterval_changing = \"100ms\"\ninterval_down = \"200ms\"\nfall = 1\ndown_after = 2\nrise = 1\n"
    )
}

#[tokio::test]
async fn pages_escape_names_and_show_a_target_with_no_history() {
    let monitor = start(&format!(
        "[[target]]\nid = \"quiet\"\nname = {HOSTILE:?}\nkind = \"heartbeat\"\nperiod = \"1h\"\ngroup = \"jobs\"\n"
    ))
    .await;
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;'";
    for path in ["/", "/targets/quiet", "/status"] {
        let body = monitor.page(path).await;
        assert!(
            !body.contains("<script>alert"),
            "{path} let markup through:\n{body}"
        );
        assert!(body.contains(escaped), "{path} lost the name:\n{body}");
    }
    let (_, _, headers) = monitor.get("/").await;
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");

    // Never heard from: says so instead of failing or showing zeros.
    let page = monitor.page("/targets/quiet").await;
    assert!(page.contains("No result yet"), "{page}");
    assert!(page.contains("No transition yet"), "{page}");
    assert!(page.contains("No latency data"), "{page}");
    assert!(page.contains("unknown"), "{page}");
    let overview = monitor.page("/").await;
    assert!(overview.contains("data-target=\"quiet\""), "{overview}");

    let (status, svg, headers) = monitor.get("/badge/quiet.svg").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/svg+xml; charset=utf-8");
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.contains(escaped) && !svg.contains("<script>"), "{svg}");
    assert!(svg.contains(">unknown</text>"), "{svg}");
    let (status, svg, _) = monitor.get("/badge/nope.svg").await;
    assert_eq!(status, 404);
    assert!(svg.contains("no such target"), "{svg}");
}

#[tokio::test]
async fn bad_input_is_named_and_routes_leave_the_api_alone() {
    let monitor = start("[[target]]\nid = \"job\"\nkind = \"heartbeat\"\nperiod = \"1h\"\n").await;
    let (status, body, _) = monitor.get("/?state=sideways").await;
    assert_eq!(status, 400);
    assert!(
        body.contains("state=&quot;sideways&quot; is not a state"),
        "{body}"
    );
    let (status, body, _) = monitor.get("/?page=zero").await;
    assert_eq!(status, 400);
    assert!(body.contains("page=&quot;zero&quot;"), "{body}");
    let (status, body, _) = monitor.get("/targets/job?range=2y").await;
    assert_eq!(status, 400);
    assert!(
        body.contains("range=&quot;2y&quot; is not a chart range"),
        "{body}"
    );
    let (status, body, _) = monitor.get("/targets/nope").await;
    assert_eq!(status, 404);
    assert!(
        body.contains("no target with id &quot;nope&quot;"),
        "{body}"
    );
    // The API, its JSON 404 and the probes are untouched by the dashboard's routes.
    let (status, body, _) = monitor.get("/api/v1/targets").await;
    assert_eq!(status, 200);
    assert!(body.starts_with('{'), "{body}");
    let (status, body, _) = monitor.get("/no/such/page").await;
    assert_eq!(status, 404);
    assert!(body.contains("\"error\""), "{body}");
    assert_eq!(monitor.get("/livez").await.0, 200);
    let (status, css, headers) = monitor.get("/assets/dashboard.css").await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert!(
        !css.contains("http://") && !css.contains("https://"),
        "assets load nothing from outside"
    );
    let (_, js, _) = monitor.get("/assets/dashboard.js").await;
    assert!(
        js.contains("EventSource") && !js.contains("innerHTML"),
        "{js}"
    );
    assert_eq!(monitor.get("/assets/other.js").await.0, 404);
}

#[tokio::test]
async fn a_dead_service_shows_as_down_live_and_in_its_timeline() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = tokio::spawn(async move {
        loop {
            let _ = listener.accept().await;
        }
    });
    // "cart" checks the same service and depends on "shop": when both fail, shop is the
    // root cause and cart is blocked by it.
    let monitor = start(&format!(
        "{}\n{}depends_on = [\"shop\"]\n",
        tcp_target("shop", addr),
        tcp_target("cart", addr)
    ))
    .await;
    monitor.wait_for("/", ">healthy</span>").await;
    let page = monitor.page("/targets/shop").await;
    assert!(
        page.contains("href=\"/targets/cart\""),
        "dependents listed:\n{page}"
    );
    let dependent = monitor.page("/targets/cart").await;
    assert!(
        dependent.contains("href=\"/targets/shop\""),
        "depends_on listed:\n{dependent}"
    );
    assert!(
        !dependent.contains("id=\"root-cause\""),
        "nothing is blocked yet"
    );

    // Listen for live changes, then stop the service.
    let mut events = monitor
        .client
        .get(format!("{}/events", monitor.base))
        .send()
        .await
        .unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    service.abort();
    let _ = service.await;

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    while !(seen.contains("event: target") && seen.contains("\"label\":\"down\"")) {
        let chunk = tokio::time::timeout_at(deadline, events.chunk())
            .await
            .expect("no down event within 20 s")
            .unwrap()
            .expect("the event stream ended");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("\"id\":\"shop\""), "{seen}");

    let page = monitor
        .wait_for("/targets/shop", "→ <strong>down</strong>")
        .await;
    assert!(
        page.contains("failures in a row") || page.contains("failure"),
        "a reason is shown:\n{page}"
    );
    // The root cause comes first, the target it blocks right after, marked.
    let overview = monitor
        .wait_for("/?state=problems", "blocked by shop</span>")
        .await;
    let shop = overview.find("<tr data-target=\"shop\"").unwrap();
    let cart = overview.find("<tr data-target=\"cart\"").unwrap();
    assert!(shop < cart, "root cause first:\n{overview}");
    let blocked = monitor.page("/targets/cart").await;
    assert!(blocked.contains("id=\"root-cause\""), "{blocked}");
    assert!(
        blocked.contains("root cause</strong>"),
        "the dependency is marked:\n{blocked}"
    );
    let status = monitor.page("/status").await;
    assert!(
        status.contains("Ongoing incidents") && status.contains("outage"),
        "{status}"
    );
    let (_, badge, _) = monitor.get("/badge/shop.svg").await;
    assert!(badge.contains(">down</text>"), "{badge}");
}

#[tokio::test]
async fn a_vitals_services_checks_are_rows_with_pages_and_badges() {
    use vitals::probes::from_fn;
    use vitals::{Check, Health, Report};
    let fast = Duration::from_millis(100);
    let health = Health::builder()
        .check(
            Check::new("database", from_fn(|| async { Report::pass() }))
                .interval(fast)
                .timeout(fast),
        )
        .start()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = health.clone();
    tokio::spawn(async move { service.serve(listener, service.router()).await });
    let monitor = start(&format!(
        "[[target]]\nid = \"orders\"\nname = \"Orders\"\nkind = \"vitals\"\nurl = \"http://{addr}/health\"\ngroup = \"shop\"\ninterval = \"200ms\"\ntimeout = \"100ms\"\njitter = \"0s\"\ninterval_changing = \"100ms\"\ninterval_down = \"200ms\"\n"
    ))
    .await;
    // The check's row is filed under its service's group.
    monitor
        .wait_for("/?group=shop", "data-target=\"orders/database\"")
        .await;
    let page = monitor.page("/targets/orders/database").await;
    assert!(page.contains("Orders: database"), "{page}");
    assert!(page.contains("Part of"), "{page}");
    let (status, badge, _) = monitor.get("/badge/orders%2Fdatabase.svg").await;
    assert_eq!(status, 200, "{badge}");
    assert!(badge.contains("Orders: database"), "{badge}");
}

#[tokio::test]
async fn a_read_token_closes_the_dashboard_but_not_the_status_page_or_badges() {
    let monitor = start_with(
        &format!("read_token = \"{TOKEN}\""),
        "[[target]]\nid = \"job\"\nkind = \"heartbeat\"\nperiod = \"1h\"\n",
        |_| {},
    )
    .await;
    for path in ["/", "/targets/job", "/events"] {
        let (status, body, _) = monitor.get(path).await;
        assert_eq!(status, 401, "{path}");
        assert!(body.contains("action=\"/login\""), "{path}: {body}");
    }
    assert_eq!(monitor.get("/status").await.0, 200);
    assert_eq!(monitor.get("/badge/job.svg").await.0, 200);

    let bearer = monitor
        .client
        .get(format!("{}/", monitor.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);

    let login = |token: &'static str| {
        monitor
            .client
            .post(format!("{}/login", monitor.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}&next=%2Ftargets%2Fjob"))
            .send()
    };
    let wrong = login("not-the-token").await.unwrap();
    assert_eq!(wrong.status(), 401);
    let right = login(TOKEN).await.unwrap();
    assert_eq!(right.status(), 303);
    assert_eq!(right.headers()["location"], "/targets/job");
    let cookie = right.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let with_cookie = monitor
        .client
        .get(format!("{}/targets/job", monitor.base))
        .header("cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status(), 200);
}

#[tokio::test]
async fn the_target_page_draws_latency_and_day_figures_from_rollups() {
    let monitor = start_with(
        "",
        "[[target]]\nid = \"api\"\nkind = \"heartbeat\"\nperiod = \"1h\"\n",
        |dir| {
            let store = Store::open(dir).unwrap();
            let now = SystemTime::now();
            store
                .record_transition(&Transition {
                    id: None,
                    target: "api".into(),
                    at: now - Duration::from_secs(30 * 3600),
                    from: State::Unknown.into(),
                    to: State::Healthy.into(),
                    reason: "seeded".into(),
                    cause_kind: None,
                    cause_output: None,
                })
                .unwrap();
            // Every 10 minutes over the last 26 hours (so yesterday is a whole rolled-up
            // day): 10 ms, and 30 ms every third result.
            let results: Vec<CheckResult> = (12..26 * 6)
                .map(|i| CheckResult {
                    target: "api".into(),
                    at: now - Duration::from_secs(600 * i),
                    kind: Kind::Pass,
                    duration: Duration::from_millis(if i % 3 == 0 { 30 } else { 10 }),
                    output: None,
                })
                .collect();
            store.record_results(&results).unwrap();
            store.rollup_and_prune(now, 7, 365).unwrap();
        },
    )
    .await;
    let page = monitor.page("/targets/api").await;
    assert!(page.contains("<path class=\"p50\" d=\"M"), "{page}");
    assert!(page.contains("<path class=\"p95\" d=\"M"), "{page}");
    assert!(page.contains("highest p95 30.0 ms"), "{page}");
    assert!(
        page.contains("checks, 0 failed; p95 30.0 ms"),
        "yesterday's figures:\n{page}"
    );
    let week = monitor.page("/targets/api?range=7d").await;
    assert!(week.contains("Latency over the last 7d"), "{week}");
    assert!(week.contains("aria-current=\"true\">7d<"), "{week}");
}

#[tokio::test]
async fn a_heartbeat_page_shows_the_last_run_body_and_duration() {
    let monitor = start(
        "[[target]]\nid = \"backup\"\nkind = \"heartbeat\"\nping_id = \"backup-job\"\nperiod = \"1h\"\n",
    )
    .await;
    let ping = |path: &str, body: &'static str| {
        monitor
            .client
            .post(format!("{}/ping/backup-job{path}", monitor.base))
            .body(body)
            .send()
    };
    assert!(
        ping("/start?rid=r1", "")
            .await
            .unwrap()
            .status()
            .is_success()
    );
    assert!(
        ping("?rid=r1", "dumped 42 tables <b>fine</b>")
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let page = monitor
        .wait_for(
            "/targets/backup",
            "dumped 42 tables &lt;b&gt;fine&lt;/b&gt;",
        )
        .await;
    assert!(page.contains("Last run"), "{page}");
    assert!(page.contains(", ran for "), "the run's duration:\n{page}");
    assert!(page.contains("run <code>r1</code>"), "{page}");
}

/// 10,000 targets with a transition each: the overview renders a page of 100, the worst
/// first, with the pager; filters and search work; the status page stays bounded. Times are
/// printed, never asserted (see docs/DASHBOARD.md for measured numbers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_targets() {
    const N: usize = 10_000;
    let mut targets = String::new();
    for i in 0..N {
        targets.push_str(&format!(
            "[[target]]\nid = \"t{i:05}\"\nkind = \"heartbeat\"\nperiod = \"1h\"\ngroup = \"g{}\"\ntags = [\"{}\"]\n",
            i % 10,
            if i % 2 == 0 { "even" } else { "odd" }
        ));
    }
    let monitor = start_with("", &targets, |dir| {
        let store = Store::open(dir).unwrap();
        let now = SystemTime::now();
        for i in 0..N {
            let to = if i == 4321 {
                State::Down
            } else {
                State::Healthy
            };
            store
                .record_transition(&Transition {
                    id: None,
                    target: format!("t{i:05}"),
                    at: now - Duration::from_secs(7200),
                    from: State::Unknown.into(),
                    to: to.into(),
                    reason: "seeded".into(),
                    cause_kind: None,
                    cause_output: None,
                })
                .unwrap();
        }
    })
    .await;

    let started = std::time::SystemTime::now();
    let overview = monitor.page("/").await;
    let took = started.elapsed().unwrap_or_default();
    eprintln!(
        "overview of {N} targets: {took:?}, {} bytes",
        overview.len()
    );
    assert_eq!(overview.matches("<tr data-target=").count(), 100);
    assert!(overview.contains("page 1 of 100"), "pager");
    assert!(overview.contains("href=\"/?page=2\""), "next link");
    // The target the store says was down for two hours shows its 24 h uptime (seeded, not
    // the engine's unknown state, which is all a restart restores for heartbeats here).
    let found = monitor.page("/?q=T04321").await;
    assert_eq!(
        found.matches("<tr data-target=").count(),
        1,
        "search is case-insensitive"
    );
    assert!(found.contains("data-target=\"t04321\""));
    assert!(
        found.contains("<td>0 %</td>") || found.contains("0.00 %"),
        "{found}"
    );
    let last = monitor.page("/?page=100&tag=even&group=g2").await;
    assert!(last.contains("1000 of 10000 targets"), "filters combine");

    let started = std::time::SystemTime::now();
    let status = monitor.page("/status").await;
    let took = started.elapsed().unwrap_or_default();
    eprintln!(
        "status page of {N} targets: {took:?}, {} bytes",
        status.len()
    );
    assert!(
        status.contains("1000 services; the bar shows their mean uptime"),
        "groups aggregate"
    );
    assert!(
        status.len() < 5_000_000,
        "the status page stays bounded: {} bytes",
        status.len()
    );
}

/// An empty setup says how to add a first target, and the status page does not claim that
/// "all systems" are operational when it watches none (issue 17, item 8).
#[tokio::test]
async fn an_empty_setup_says_how_to_begin() {
    let monitor = start("").await;
    let overview = monitor.page("/").await;
    assert!(overview.contains("No targets yet."), "{overview}");
    assert!(!overview.contains("Isolated"), "{overview}");
    let status = monitor.page("/status").await;
    assert!(
        status.contains("No services are monitored yet."),
        "{status}"
    );
    assert!(!status.contains("All systems operational"), "{status}");
}
