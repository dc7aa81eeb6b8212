//! The testkit against real servers: start, query, count, stop (refused), start again.
//!
//! These start private servers, so they need PostgreSQL and Redis installed (scripts/test
//! installs them) but not the shared servers.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vitals_testkit::{Postgres, Redis, Signal, is_running, signal};

#[tokio::test]
async fn postgres_counts_queries_and_survives_a_restart() {
    let mut pg = Postgres::start().await.expect("start postgresql");
    assert!(pg.url().ends_with(&format!(":{}/postgres", pg.port())));
    assert!(is_running(pg.pid()));

    pg.reset_query_counts().await.expect("reset");
    let client = pg.connect().await.expect("connect");
    for _ in 0..3 {
        let row = client.query_one("SELECT 1", &[]).await.expect("select 1");
        assert_eq!(row.get::<_, i32>(0), 1);
    }
    pg.execute("SELECT 1").await.expect("execute");
    // Prepared (extended protocol) and simple-protocol runs land in the same normalized entry.
    assert_eq!(pg.count_queries("SELECT $1").await.expect("count"), 4);
    // The counting queries themselves are never counted.
    assert_eq!(pg.count_queries("%").await.expect("count all"), 4);
    drop(client);

    let old_pid = pg.pid();
    pg.stop().await.expect("stop");
    assert!(!is_running(old_pid), "postmaster {old_pid} still there");
    let refused = pg.connect().await.expect_err("connect after stop");
    assert!(
        refused.to_string().contains("connect"),
        "unexpected error: {refused}"
    );
    pg.stop()
        .await
        .expect_err("stopping twice is a usage error");

    pg.start_again().await.expect("start again");
    assert_ne!(pg.pid(), old_pid);
    pg.execute("SELECT 1").await.expect("works again");
    // A clean shutdown saves pg_stat_statements' counters (pg_stat_statements.save is on), so
    // they carry on across stop() and start_again(): 4 before, 1 after.
    assert_eq!(pg.count_queries("SELECT $1").await.expect("count"), 5);
}

#[tokio::test]
async fn postgres_paused_by_sigstop_accepts_nothing_until_continued() {
    let pg = Postgres::start().await.expect("start postgresql");
    signal(pg.pid(), Signal::SIGSTOP).expect("pause");
    let attempt = tokio::time::timeout(Duration::from_millis(500), pg.connect()).await;
    assert!(attempt.is_err(), "a paused postmaster answered");
    signal(pg.pid(), Signal::SIGCONT).expect("resume");
    pg.execute("SELECT 1").await.expect("works after SIGCONT");
}

#[tokio::test]
async fn dropping_postgres_kills_it_and_removes_its_directory() {
    let pg = Postgres::start().await.expect("start postgresql");
    let (pid, dir) = (pg.pid(), pg.data_dir());
    drop(pg);
    assert!(!is_running(pid), "postmaster {pid} outlived its Postgres");
    assert!(!dir.exists(), "{} was left behind", dir.display());
}

#[tokio::test]
async fn redis_answers_ping_and_survives_a_restart() {
    let mut redis = Redis::start().await.expect("start redis");
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
    redis.ping().await.expect("ping");

    let old_pid = redis.pid();
    redis.stop().await.expect("stop");
    assert!(!is_running(old_pid), "redis {old_pid} still there");
    let refused = TcpStream::connect(("127.0.0.1", redis.port()))
        .await
        .expect_err("connect after stop");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    redis.start_again().await.expect("start again");
    assert_ne!(redis.pid(), old_pid);
    redis.ping().await.expect("ping again");
}

#[tokio::test]
async fn dropping_redis_kills_it() {
    let redis = Redis::start().await.expect("start redis");
    let pid = redis.pid();
    drop(redis);
    assert!(!is_running(pid), "redis {pid} outlived its Redis");
}

#[tokio::test]
async fn shared_servers_answer_when_scripts_test_started_them() {
    let (Ok(pg_url), Ok(redis_url)) = (
        vitals_testkit::shared_postgres_url(),
        vitals_testkit::shared_redis_url(),
    ) else {
        eprintln!("shared servers not set up (run scripts/test); nothing to check");
        return;
    };
    let (client, connection) = tokio_postgres::connect(&pg_url, tokio_postgres::NoTls)
        .await
        .expect("connect to the shared postgresql");
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'",
            &[],
        )
        .await
        .expect("query the shared postgresql");
    assert_eq!(
        row.get::<_, i64>(0),
        1,
        "pg_stat_statements is not installed"
    );

    let addr = redis_url.trim_start_matches("redis://");
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the shared redis");
    stream.write_all(b"PING\r\n").await.expect("send PING");
    let mut answer = [0u8; 7];
    stream.read_exact(&mut answer).await.expect("read PONG");
    assert_eq!(&answer, b"+PONG\r\n");
}

#[test]
fn shared_urls_explain_how_to_get_them() {
    // Either scripts/test set them, or the error says to run it.
    match vitals_testkit::shared_postgres_url() {
        Ok(url) => assert!(url.starts_with("postgres://"), "{url}"),
        Err(e) => assert!(e.to_string().contains("scripts/test"), "{e}"),
    }
    match vitals_testkit::shared_redis_url() {
        Ok(url) => assert!(url.starts_with("redis://"), "{url}"),
        Err(e) => assert!(e.to_string().contains("scripts/test"), "{e}"),
    }
}

#[test]
fn free_ports_are_bindable_and_not_well_known() {
    let port = vitals_testkit::free_port().expect("free port");
    assert!(port >= 10000, "{port}");
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
}
