//! The `grpc.health.v1` service (issue 14) against real clients on real sockets: tonic's
//! generated client and gRPC's own Python client (PyPI's `grpcio-health-checking`), talking
//! to `Health::serve` with the HTTP probes on the same port. Check, Watch (current status
//! first, then only changes; an unknown name stays open), List, draining, the Watch budget,
//! and a mount on a plain tonic server. The slow reader runs on the paused clock without a
//! network: it is about what the stream holds, not about sockets.

#![cfg(feature = "grpc")]
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use vitals::grpc::Source;
use vitals::grpc::pb::health_check_response::ServingStatus;
use vitals::grpc::pb::health_client::HealthClient;
use vitals::grpc::pb::{HealthCheckRequest, HealthCheckResponse};
use vitals::{Check, Group, Health, Thresholds};
use vitals_testkit::{Ready, Running, grpc_health_command, grpc_health_once, grpc_python, until};

use crate::common::Switch;

const WITHIN: Duration = Duration::from_secs(20);

/// fall 1, rise 1: one result flips a check, so tests wait one interval, not two.
fn quick() -> Thresholds {
    Thresholds {
        fall: 1,
        rise: 1,
        ..Thresholds::default()
    }
}

/// A service with a critical `database` (the `db` gRPC name) and a non-critical `cache`,
/// `orders.v1.Orders` following readiness; checks every 50 ms.
fn service(database: &Switch, cache: &Switch) -> vitals::HealthBuilder {
    let every = |check: Check| {
        check
            .interval(Duration::from_millis(50))
            .timeout(Duration::from_millis(40))
            .jitter(Duration::ZERO)
            .thresholds(quick())
    };
    Health::builder()
        .check(every(Check::new("database", database.probe())))
        .check(every(Check::new("cache", cache.probe()).non_critical()))
        .grpc_service("orders.v1.Orders", Source::Group(Group::Readiness))
        .grpc_service("db", Source::Check("database".into()))
        .drain_delay(Duration::from_secs(1))
}

/// Serves `health` (HTTP probes, gRPC health and `/hello`) with `Health::serve` on a free
/// port, in the background.
async fn serve(health: &Health) -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/hello", axum::routing::get(|| async { "hello" }))
        .merge(health.router())
        .merge(health.grpc().router());
    let health = health.clone();
    let serving = tokio::spawn(async move { health.serve(listener, app).await });
    (addr, serving)
}

async fn client(addr: SocketAddr) -> HealthClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
}

fn request(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.into(),
    }
}

async fn check(client: &mut HealthClient<Channel>, service: &str) -> Result<ServingStatus, Code> {
    match client.check(request(service)).await {
        Ok(response) => Ok(response.into_inner().status()),
        Err(status) => Err(status.code()),
    }
}

/// Waits until Check of `""` answers SERVING (the first check runs have passed).
async fn until_serving(grpc: &mut HealthClient<Channel>) {
    until("the server to be SERVING", WITHIN, async || {
        (check(grpc, "").await == Ok(ServingStatus::Serving)).then_some(())
    })
    .await;
}

fn status(message: Option<HealthCheckResponse>) -> Option<ServingStatus> {
    message.map(|message| message.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_answers_from_the_snapshot_beside_the_http_probes_on_one_port() {
    let (database, cache) = (Switch::default(), Switch::default());
    let health = service(&database, &cache).start().unwrap();
    let (addr, _serving) = serve(&health).await;
    let mut grpc = client(addr).await;

    until_serving(&mut grpc).await;
    for name in ["orders.v1.Orders", "db", "liveness", "readiness", "startup"] {
        assert_eq!(
            check(&mut grpc, name).await,
            Ok(ServingStatus::Serving),
            "{name}"
        );
    }
    // Check of a name that is not configured: NOT_FOUND.
    assert_eq!(check(&mut grpc, "nope").await, Err(Code::NotFound));
    // HTTP/1.1 on the same port: the probes and the application.
    let http = reqwest::Client::new();
    let readyz = http
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(readyz.status(), 200);
    let hello = http
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(hello.text().await.unwrap(), "hello");

    // A non-critical failure degrades: still SERVING.
    cache.fail();
    let runs = cache.runs();
    until("the cache to run again", WITHIN, async || {
        (cache.runs() > runs + 1).then_some(())
    })
    .await;
    assert_eq!(check(&mut grpc, "").await, Ok(ServingStatus::Serving));

    // The database fails: readiness and `db` go NOT_SERVING; liveness has no database in it.
    database.fail();
    until("the server to be NOT_SERVING", WITHIN, async || {
        (check(&mut grpc, "").await == Ok(ServingStatus::NotServing)).then_some(())
    })
    .await;
    assert_eq!(check(&mut grpc, "db").await, Ok(ServingStatus::NotServing));
    assert_eq!(
        check(&mut grpc, "orders.v1.Orders").await,
        Ok(ServingStatus::NotServing)
    );
    assert_eq!(
        check(&mut grpc, "liveness").await,
        Ok(ServingStatus::Serving)
    );
    let readyz = http
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        readyz.status(),
        503,
        "gRPC and HTTP answer from one snapshot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sends_the_current_status_first_then_only_changes() {
    let (database, cache) = (Switch::default(), Switch::default());
    let health = service(&database, &cache).start().unwrap();
    let (addr, _serving) = serve(&health).await;
    let mut grpc = client(addr).await;
    until_serving(&mut grpc).await;

    let mut watch = grpc.watch(request("")).await.unwrap().into_inner();
    assert_eq!(
        status(watch.message().await.unwrap()),
        Some(ServingStatus::Serving)
    );
    // Ten more check runs publish ten snapshots; none changes the status, so nothing comes.
    let runs = database.runs();
    until("ten more runs", WITHIN, async || {
        (database.runs() >= runs + 10).then_some(())
    })
    .await;
    let quiet = tokio::time::timeout(Duration::from_millis(300), watch.message()).await;
    assert!(quiet.is_err(), "a message without a change: {quiet:?}");

    database.fail();
    assert_eq!(
        status(watch.message().await.unwrap()),
        Some(ServingStatus::NotServing)
    );
    database.pass();
    assert_eq!(
        status(watch.message().await.unwrap()),
        Some(ServingStatus::Serving)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_of_an_unknown_service_says_so_and_stays_open() {
    let (database, cache) = (Switch::default(), Switch::default());
    let health = service(&database, &cache).start().unwrap();
    let (addr, _serving) = serve(&health).await;
    let mut grpc = client(addr).await;

    let mut watch = grpc.watch(request("nope")).await.unwrap().into_inner();
    assert_eq!(
        status(watch.message().await.unwrap()),
        Some(ServingStatus::ServiceUnknown)
    );
    // Checks run and flip; the stream neither ends nor repeats itself.
    database.fail();
    let runs = database.runs();
    until("five more runs", WITHIN, async || {
        (database.runs() >= runs + 5).then_some(())
    })
    .await;
    let open = tokio::time::timeout(Duration::from_millis(300), watch.message()).await;
    assert!(
        open.is_err(),
        "the stream said {open:?}; it must stay open and quiet"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_turns_every_service_not_serving_at_once_and_ends_watches_when_stopped() {
    let (database, cache) = (Switch::default(), Switch::default());
    let health = service(&database, &cache)
        .drain_delay(Duration::from_secs(3))
        .start()
        .unwrap();
    let (addr, serving) = serve(&health).await;
    let mut grpc = client(addr).await;
    until_serving(&mut grpc).await;
    let names = ["", "liveness", "startup", "db", "orders.v1.Orders"];
    let mut watches = Vec::new();
    for name in names {
        let mut watch = grpc.watch(request(name)).await.unwrap().into_inner();
        assert_eq!(
            status(watch.message().await.unwrap()),
            Some(ServingStatus::Serving),
            "{name:?}"
        );
        watches.push(watch);
    }

    health.shutdown();
    for (name, watch) in names.iter().zip(&mut watches) {
        assert_eq!(
            status(watch.message().await.unwrap()),
            Some(ServingStatus::NotServing),
            "{name:?}"
        );
    }
    for name in names {
        assert_eq!(
            check(&mut grpc, name).await,
            Ok(ServingStatus::NotServing),
            "{name:?}"
        );
    }
    let listed = vitals::grpc::list(grpc_channel(addr).await).await.unwrap();
    assert!(
        listed
            .statuses
            .values()
            .all(|s| s.status() == ServingStatus::NotServing),
        "{listed:?}"
    );

    // After the drain delay every Watch ends (OK) and the server closes.
    for (name, watch) in names.iter().zip(&mut watches) {
        assert_eq!(status(watch.message().await.unwrap()), None, "{name:?}");
    }
    tokio::time::timeout(WITHIN, serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

async fn grpc_channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_gives_every_name_and_its_status() {
    let (database, cache) = (Switch::default(), Switch::default());
    database.fail();
    let health = service(&database, &cache).start().unwrap();
    let (addr, _serving) = serve(&health).await;
    let channel = grpc_channel(addr).await;
    let listed = until("the database to have failed", WITHIN, async || {
        let listed = vitals::grpc::list(channel.clone()).await.unwrap();
        let mut statuses: Vec<(String, ServingStatus)> = listed
            .statuses
            .into_iter()
            .map(|(name, response)| (name, response.status()))
            .collect();
        statuses.sort();
        holds(statuses, |statuses| {
            statuses
                .iter()
                .any(|(name, s)| name == "db" && *s == ServingStatus::NotServing)
        })
    })
    .await;
    use ServingStatus::{NotServing, Serving};
    let expected: Vec<(String, ServingStatus)> = [
        ("", NotServing),
        ("db", NotServing),
        ("liveness", Serving),
        ("orders.v1.Orders", NotServing),
        ("readiness", NotServing),
        ("startup", Serving),
    ]
    .into_iter()
    .map(|(name, s)| (name.to_string(), s))
    .collect();
    assert_eq!(listed, expected);
}

fn holds<T>(value: T, done: impl FnOnce(&T) -> bool) -> Result<T, T> {
    vitals_testkit::holds(value, done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_are_bounded() {
    let (database, cache) = (Switch::default(), Switch::default());
    let health = service(&database, &cache)
        .grpc_max_watchers(2)
        .start()
        .unwrap();
    let (addr, _serving) = serve(&health).await;
    let mut grpc = client(addr).await;
    let first = grpc.watch(request("")).await.unwrap().into_inner();
    let _second = grpc.watch(request("")).await.unwrap().into_inner();
    let refused = grpc.watch(request("")).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("at most 2"), "{refused:?}");
    // A closed stream gives its place back.
    drop(first);
    until("a place for a new Watch", WITHIN, async || {
        grpc.clone().watch(request("")).await.map(|_| ())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_mounts_on_a_plain_tonic_server() {
    let (database, cache) = (Switch::default(), Switch::default());
    let health = service(&database, &cache).start().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream_of(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health.grpc().service())
            .serve_with_incoming(incoming),
    );
    let mut grpc = client(addr).await;
    until_serving(&mut grpc).await;
    assert_eq!(check(&mut grpc, "nope").await, Err(Code::NotFound));
    let listed = vitals::grpc::list(grpc_channel(addr).await).await.unwrap();
    assert_eq!(listed.statuses.len(), 6, "{listed:?}");
}

/// The accepted connections of `listener`, as tonic's `serve_with_incoming` takes them.
fn tokio_stream_of(
    listener: TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}

/// A reader that stops reading misses nothing it needs and costs nothing meanwhile: when it
/// reads again it gets the status of that moment, once, not every change in between. On
/// the paused clock, the stream polled directly (no network).
#[tokio::test(start_paused = true)]
async fn a_slow_reader_gets_the_latest_status_not_a_backlog() {
    use vitals::grpc::pb::health_server::Health as _;
    let database = Switch::default();
    let health = Health::builder()
        .check(
            Check::new("database", database.probe())
                .interval(Duration::from_secs(1))
                .timeout(Duration::from_millis(500))
                .jitter(Duration::ZERO)
                .thresholds(quick()),
        )
        .start()
        .unwrap();
    crate::common::advance(0.1).await;
    let grpc = health.grpc();
    let mut watch = grpc
        .watch(tonic::Request::new(request("")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.next().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );
    // Nine flips while nobody reads: fail, pass, fail, … ending on fail.
    for flip in 0..9 {
        if flip % 2 == 0 {
            database.fail();
        } else {
            database.pass();
        }
        crate::common::advance(1.0).await;
    }
    assert_eq!(grpc.status(""), Some(ServingStatus::NotServing));
    assert_eq!(
        watch.next().await.unwrap().unwrap().status(),
        ServingStatus::NotServing
    );
    // Nothing else is waiting: the next message needs a change.
    let next = tokio::time::timeout(Duration::from_secs(5), watch.next()).await;
    assert!(next.is_err(), "a backlog: {next:?}");
}

/// Every problem of the gRPC settings at once, each naming the service and the field.
#[tokio::test]
async fn bad_grpc_settings_are_refused_with_every_problem() {
    let error = Health::builder()
        .check(Check::new("database", Switch::default().probe()))
        .grpc_service("", Source::Group(Group::Liveness))
        .grpc_service("db", Source::Check("databse".into()))
        .grpc_service("x", Source::Group(Group::Startup))
        .grpc_service("x", Source::Group(Group::Readiness))
        .grpc_max_watchers(0)
        .start()
        .unwrap_err();
    let text = error.to_string();
    for expected in [
        "server: grpc_service \"\" is built in and follows readiness; choose another name",
        "server: grpc_service \"db\" names \"databse\", which is not a registered check (registered: database)",
        "server: grpc_service \"x\" is configured twice",
        "server: grpc_max_watchers is zero",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    assert_eq!(error.problems.len(), 4, "{text}");
}

/// gRPC's own Python client (`grpcio-health-checking`): Check, Watch (first message, only
/// changes, unknown names stay open, draining, the end), List.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_python_client_checks_watches_and_lists() {
    let Some(python) = grpc_python() else {
        return;
    };
    let (database, cache) = (Switch::default(), Switch::default());
    let health = service(&database, &cache)
        .drain_delay(Duration::from_secs(2))
        .start()
        .unwrap();
    let (addr, _serving) = serve(&health).await;
    let address = addr.to_string();
    let once = async |args: &[&str]| grpc_health_once(&python, args).await.unwrap();
    until("the server to be SERVING", WITHIN, async || {
        holds(once(&["check", &address, ""]).await, |out| out == "SERVING")
    })
    .await;
    assert_eq!(once(&["check", &address, "db"]).await, "SERVING");
    assert_eq!(once(&["check", &address, "nope"]).await, "error NOT_FOUND");
    assert_eq!(
        once(&["list", &address]).await,
        r#"{"": "SERVING", "db": "SERVING", "liveness": "SERVING", "orders.v1.Orders": "SERVING", "readiness": "SERVING", "startup": "SERVING"}"#
    );

    let watch = |service: &'static str| {
        let mut command = grpc_health_command(&python, &["watch", &address, service]);
        async move { Running::start(&mut command, Ready::Spawned).await.unwrap() }
    };
    let overall = watch("").await;
    let unknown = watch("nope").await;
    assert_eq!(overall.line(0).await.as_deref(), Some("SERVING"));
    assert_eq!(unknown.line(0).await.as_deref(), Some("SERVICE_UNKNOWN"));
    let runs = database.runs();
    until("five more runs", WITHIN, async || {
        (database.runs() >= runs + 5).then_some(())
    })
    .await;
    database.fail();
    assert_eq!(overall.line(1).await.as_deref(), Some("NOT_SERVING"));
    database.pass();
    assert_eq!(overall.line(2).await.as_deref(), Some("SERVING"));
    assert_eq!(
        unknown.stdout(),
        ["SERVICE_UNKNOWN"],
        "the unknown name's stream stays open"
    );

    health.shutdown();
    assert_eq!(overall.line(3).await.as_deref(), Some("NOT_SERVING"));
    assert_eq!(once(&["check", &address, "liveness"]).await, "NOT_SERVING");
    // The drain delay over, both streams end with OK.
    assert_eq!(overall.line(4).await.as_deref(), Some("end"));
    assert_eq!(unknown.line(1).await.as_deref(), Some("end"));
    assert_eq!(overall.stdout().len(), 5, "{:?}", overall.stdout());
}

/// A Watch stream can stay quiet far longer than the idle timeout: HTTP/2 pings every third
/// of it keep the connection from counting as idle, so the next change still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_watch_outlives_the_idle_timeout() {
    let (database, cache) = (Switch::default(), Switch::default());
    let health = service(&database, &cache)
        .idle_timeout(Duration::from_millis(600))
        .start()
        .unwrap();
    let (addr, _serving) = serve(&health).await;
    let mut grpc = client(addr).await;
    until_serving(&mut grpc).await;
    let mut watch = grpc.watch(request("")).await.unwrap().into_inner();
    assert_eq!(
        status(watch.message().await.unwrap()),
        Some(ServingStatus::Serving)
    );
    // Five idle timeouts without a message on the stream.
    let quiet = tokio::time::timeout(Duration::from_secs(3), watch.message()).await;
    assert!(quiet.is_err(), "{quiet:?}");
    database.fail();
    assert_eq!(
        status(watch.message().await.unwrap()),
        Some(ServingStatus::NotServing)
    );
}
