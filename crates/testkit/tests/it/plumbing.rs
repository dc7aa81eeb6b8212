//! The testkit's plumbing on its own: polls, held ports, the webhook receiver and started
//! programs. Needs nothing but loopback and `/bin/sh`.

#![allow(clippy::unwrap_used)] // test helpers

use std::io::ErrorKind;
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use vitals_testkit::{Error, Ready, Running, Signal, Webhook, reserve_port, until, until_blocking};

#[tokio::test]
async fn until_returns_what_the_condition_found() {
    let mut asked = 0;
    let found = until("the third answer", Duration::from_secs(5), async || {
        asked += 1;
        (asked == 3).then_some(asked * 10)
    })
    .await;
    assert_eq!(found, 30);
    until("a bool", Duration::from_secs(1), async || true).await;
    let mut n = 0;
    let got: u32 = until_blocking("the second answer", Duration::from_secs(5), || {
        n += 1;
        if n == 2 { Ok(n) } else { Err(n) }
    });
    assert_eq!(got, 2);
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "waiting for the state to be healthy; last seen: \"down\"")]
async fn until_names_what_was_awaited_and_the_last_value_seen() {
    until(
        "the state to be healthy",
        Duration::from_secs(1),
        async || Err::<(), _>("down"),
    )
    .await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "timed out after 1s waiting for a flag (it never held)")]
async fn until_on_a_bool_says_it_never_held() {
    until("a flag", Duration::from_secs(1), async || false).await;
}

#[tokio::test]
async fn a_reserved_port_refuses_connections_until_it_listens() {
    let port = reserve_port().expect("a port");
    let addr = port.addr();
    let refused = TcpStream::connect(addr).await.expect_err("nothing listens");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    // Held: nobody else binds it meanwhile (std sets SO_REUSEADDR, as servers do).
    let taken = std::net::TcpListener::bind(addr).expect_err("the port is held");
    assert_eq!(taken.kind(), ErrorKind::AddrInUse);
    let listener = port.listen().expect("listen");
    assert_eq!(listener.local_addr().unwrap(), addr);
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let (_client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    accepted.expect("accepted on the same port");
}

/// One HTTP/1.1 request over a fresh connection; the status line's code and the body.
async fn post(url_addr: std::net::SocketAddr, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(url_addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-key: k1\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let code = answer[9..12].parse().unwrap();
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (code, body)
}

#[tokio::test]
async fn the_webhook_records_requests_and_answers_as_told() {
    let hook = Webhook::start().expect("a receiver");
    assert!(hook.url().ends_with("/hook"), "{}", hook.url());
    assert!(hook.is_empty());
    hook.answer_next([StatusCode::INTERNAL_SERVER_ERROR]);
    assert_eq!(post(hook.addr(), "/hook", r#"{"n":1}"#).await.0, 500);
    assert_eq!(
        post(hook.addr(), "/hook", r#"{"n":2}"#).await,
        (200, "ok".into())
    );
    hook.answer(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(post(hook.addr(), "/other?x=1", "not json").await.0, 503);

    let requests = hook.requests();
    assert_eq!(hook.len(), 3);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/hook");
    assert_eq!(requests[0].header("x-key"), Some("k1"));
    assert_eq!(requests[1].json().unwrap()["n"], 2);
    assert_eq!(requests[2].path, "/other?x=1");
    assert_eq!(requests[2].text(), "not json");
    let error = hook.json().expect_err("the third body is not JSON");
    assert!(matches!(error, Error::NotJson { .. }), "{error}");
    assert!(error.to_string().contains("POST /other?x=1"), "{error}");
}

#[tokio::test]
async fn the_webhook_comes_up_on_a_reserved_port_and_can_be_slow() {
    let port = reserve_port().unwrap();
    let addr = port.addr();
    assert!(TcpStream::connect(addr).await.is_err(), "down at first");
    let hook = Webhook::on(port.listen().unwrap()).unwrap();
    assert_eq!(hook.addr(), addr);
    hook.delay(Duration::from_millis(200));
    let sent = tokio::spawn(post(addr, "/hook", "{}"));
    until(
        "the request is recorded",
        Duration::from_secs(5),
        async || hook.len() == 1,
    )
    .await;
    assert!(!sent.is_finished(), "recorded before the answer");
    assert_eq!(sent.await.unwrap().0, 200);
}

#[tokio::test]
async fn a_program_is_ready_at_its_banner_and_keeps_its_output() {
    let mut program = Running::start(
        Command::new("/bin/sh").args([
            "-c",
            "echo starting; echo oops >&2; echo 'up on http://x/ now'; echo more; exec sleep 30",
        ]),
        Ready::Line("up on "),
    )
    .await
    .expect("started");
    assert_eq!(program.banner(), "up on http://x/ now");
    assert_eq!(program.line(0).await.as_deref(), Some("starting"));
    assert_eq!(program.line(2).await.as_deref(), Some("more"));
    until("stderr is written", Duration::from_secs(5), async || {
        program.stderr() == "oops\n"
    })
    .await;
    let status = program.kill().await.expect("killed");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(Signal::SIGKILL as i32)
    );
}

#[tokio::test]
async fn a_program_that_exits_early_says_why() {
    let error = Running::start(
        Command::new("/bin/sh").args(["-c", "echo 'address already in use' >&2; exit 3"]),
        Ready::Line("never"),
    )
    .await
    .expect_err("it exits");
    let message = error.to_string();
    assert!(message.contains("exited early"), "{message}");
    assert!(message.contains("address already in use"), "{message}");
}

#[tokio::test]
async fn a_program_is_ready_when_it_accepts_connections_and_is_reaped_on_drop() {
    let port = reserve_port().unwrap();
    let addr = port.addr();
    let listener = port.listen().unwrap();
    // A stand-in for a server that binds the port itself: this test listens for it.
    let program = Running::start(
        Command::new("/bin/sh").args(["-c", "exec sleep 30"]),
        Ready::Connects(addr),
    )
    .await
    .expect("ready");
    let pid = program.pid();
    drop(listener);
    drop(program);
    assert!(!vitals_testkit::is_running(pid), "killed and reaped");
}
