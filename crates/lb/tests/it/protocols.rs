//! TLS, HTTP/2 and upgrades through the balancer with real clients (issue 16): curl over
//! HTTP/2 and HTTP/1.1 to certificates chosen by SNI; `kill -9` of a backend during a TLS +
//! HTTP/2 load fails no request; a handshake of garbage is closed without disturbing other
//! connections; an HTTP/2 header list over the limit is refused and the stream bound is
//! announced; a WebSocket passes through, and a drained backend keeps its open one.
//!
//! No timing is asserted: each test waits for a state with a bounded poll.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::support::{Backend, Load, Tls, WsBackend, assert_none_failed, h2_client, start_lb_on};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vitals_testkit::{Signal, signal, until, wait_for_exit};

const PATIENCE: Duration = Duration::from_secs(15);

fn fast() -> String {
    "interval = \"200ms\"\ntimeout = \"200ms\"\ninterval_changing = \"200ms\"\ninterval_down = \"200ms\"\nfall = 3\nrise = 2\nconnect_timeout = \"200ms\"\nrequest_timeout = \"300ms\"\n[pool.outlier]\nconsecutive_failures = 2\nbase_ejection = \"1s\"\n".into()
}

async fn all_in_rotation(lb: &crate::support::Lb, names: &[&str]) {
    let client = reqwest::Client::new();
    for name in names {
        until(&format!("{name} is in rotation"), PATIENCE, async || {
            lb.in_rotation(&client, name).await
        })
        .await;
    }
}

fn port(lb: &crate::support::Lb) -> u16 {
    lb.bound.listeners[0].0.port()
}

/// curl over TLS to `name` (resolved to the balancer): HTTP version and body.
async fn curl(
    ca: &std::path::Path,
    lb: &crate::support::Lb,
    name: &str,
    version: &str,
) -> (String, String) {
    let port = port(lb);
    let out = tokio::process::Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            version,
            "--cacert",
            ca.to_str().unwrap(),
            "--resolve",
            &format!("{name}:{port}:127.0.0.1"),
            "--write-out",
            "\n%{http_version}",
            &format!("https://{name}:{port}/"),
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "curl {version} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, http) = text.rsplit_once('\n').unwrap();
    (http.to_string(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_speaks_http2_and_http1_over_tls_with_the_certificate_sni_asks_for() {
    let a = Backend::start("a").await;
    // Each certificate has its own CA: curl trusting only b.test's passes only if the
    // balancer answered "b.test" with b.test's certificate (the second, chosen by SNI).
    let tls = Tls::new(&["a.test", "b.test"]);
    let lb = start_lb_on(&[("a", a.address)], &fast(), "", &tls.listener_keys()).await;
    all_in_rotation(&lb, &["a"]).await;
    for (name, ca) in ["a.test", "b.test"].into_iter().zip(&tls.cas) {
        assert_eq!(
            curl(ca, &lb, name, "--http2").await,
            ("2".to_string(), "a".to_string())
        );
        assert_eq!(
            curl(ca, &lb, name, "--http1.1").await,
            ("1.1".to_string(), "a".to_string())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_backend_during_tls_http2_load_fails_no_request() {
    let (a, mut b, c) = (
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    );
    let tls = Tls::new(&["lb.test"]);
    let lb = start_lb_on(
        &[("a", a.address), ("b", b.address), ("c", c.address)],
        &fast(),
        "",
        &tls.listener_keys(),
    )
    .await;
    all_in_rotation(&lb, &["a", "b", "c"]).await;
    let client = h2_client(&tls.ca, "lb.test");
    let url: hyper::Uri = format!("https://127.0.0.1:{}/", port(&lb)).parse().unwrap();
    // 16 streams at once over one HTTP/2 connection.
    let load = Load::start(16, move || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            use http_body_util::BodyExt;
            match client.get(url).await {
                Ok(r) if r.status() == 200 && r.version() == hyper::Version::HTTP_2 => {
                    let body = r.into_body().collect().await.unwrap().to_bytes();
                    String::from_utf8_lossy(&body).into_owned()
                }
                Ok(r) => format!("status {} {:?}", r.status(), r.version()),
                Err(e) => format!("error {e:?}"),
            }
        }
    });
    let http = reqwest::Client::new();
    until("b has served under load", PATIENCE, async || {
        lb.tries(&http, "b").await > 50
    })
    .await;
    signal(b.pid(), Signal::SIGKILL).unwrap();
    wait_for_exit(&mut b.child, PATIENCE).await.unwrap();
    until("b is out of rotation", PATIENCE, async || {
        !lb.in_rotation(&http, "b").await
    })
    .await;
    let after = lb.tries(&http, "a").await + lb.tries(&http, "c").await;
    until("the others served on", PATIENCE, async || {
        lb.tries(&http, "a").await + lb.tries(&http, "c").await > after + 200
    })
    .await;
    let answers: Vec<String> = load.finish().await.concat();
    assert_none_failed(&answers, &["a", "b", "c"], 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_of_garbage_is_closed_and_other_connections_carry_on() {
    let a = Backend::start("a").await;
    let tls = Tls::new(&["lb.test"]);
    let lb = start_lb_on(&[("a", a.address)], &fast(), "", &tls.listener_keys()).await;
    all_in_rotation(&lb, &["a"]).await;
    let address: SocketAddr = lb.bound.listeners[0].0;
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&tls.ca).unwrap()).unwrap(),
        )
        .resolve("lb.test", address)
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let url = format!("https://lb.test:{}/", address.port());
    assert_eq!(
        client.get(&url).send().await.unwrap().text().await.unwrap(),
        "a"
    );

    // Not TLS at all, then bytes that look like a record but are not a ClientHello.
    for garbage in [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        [0x16, 0x03, 0x01, 0x00, 0x10]
            .into_iter()
            .chain(std::iter::repeat_n(0xAB, 16))
            .collect(),
    ] {
        let mut raw = TcpStream::connect(address).await.unwrap();
        raw.write_all(&garbage).await.unwrap();
        let mut reply = Vec::new();
        // The balancer answers with a TLS alert at most, then closes.
        tokio::time::timeout(PATIENCE, raw.read_to_end(&mut reply))
            .await
            .expect("the connection was not closed")
            .ok();
        assert!(
            !String::from_utf8_lossy(&reply).contains("HTTP/1.1"),
            "{reply:?}"
        );
    }
    // The kept-alive TLS connection, and new ones, still work.
    for _ in 0..3 {
        assert_eq!(
            client.get(&url).send().await.unwrap().text().await.unwrap(),
            "a"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_and_header_lists_are_bounded() {
    let a = Backend::start("a").await;
    let lb = start_lb_on(
        &[("a", a.address)],
        &fast(),
        "",
        "max_concurrent_streams = 7\nmax_header_bytes = 8192\n",
    )
    .await;
    all_in_rotation(&lb, &["a"]).await;
    let address = lb.bound.listeners[0].0;
    // Cleartext HTTP/2 (prior knowledge), with the h2 crate to read the server's SETTINGS.
    let tcp = TcpStream::connect(address).await.unwrap();
    let (mut send, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let request = http::Request::get(format!("http://{address}/"))
        .body(())
        .unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    let response = tokio::select! {
        response = response => response.unwrap(),
        closed = &mut connection => panic!("the connection ended first: {closed:?}"),
    };
    assert_eq!(response.status(), 200);
    // The server's SETTINGS came before its answer.
    assert_eq!(
        connection.max_concurrent_send_streams(),
        7,
        "the server announces its stream bound"
    );

    // A header list over max_header_bytes is refused; the balancer serves on.
    let big = tokio::process::Command::new("curl")
        .args([
            "--silent",
            "--http2-prior-knowledge",
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_code}",
            "-H",
            &format!("x-big: {}", "x".repeat(16 * 1024)),
            &format!("http://{address}/"),
        ])
        .output()
        .await
        .unwrap();
    let code = String::from_utf8_lossy(&big.stdout).to_string();
    assert_ne!(code, "200", "a 16 KiB header passed an 8 KiB bound");
    let ok = reqwest::get(format!("http://{address}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(ok, "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_passes_through_and_a_drained_backend_keeps_its_open_one() {
    let (a, b) = (WsBackend::start("a").await, WsBackend::start("b").await);
    let lb = start_lb_on(&[("a", a.address), ("b", b.address)], &fast(), "", "").await;
    all_in_rotation(&lb, &["a", "b"]).await;
    let ws_url = format!("ws://{}/chat", lb.bound.listeners[0].0);
    let (mut first, response) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    assert_eq!(response.status(), 101);
    first.send("hello".into()).await.unwrap();
    let reply = first.next().await.unwrap().unwrap().into_text().unwrap();
    let (owner, other) = if reply.starts_with("a:") {
        ("a", "b")
    } else {
        ("b", "a")
    };
    assert_eq!(reply.as_str(), format!("{owner}: hello"));

    // Drain the backend that holds it: no new requests, the open WebSocket stays.
    let http = reqwest::Client::new();
    let drained = http
        .post(format!(
            "{}/api/v1/pools/web/backends/{owner}/drain",
            lb.admin
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(drained.status(), 200);
    for i in 0..3 {
        let (mut new, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
        new.send(format!("new {i}").into()).await.unwrap();
        let reply = new.next().await.unwrap().unwrap().into_text().unwrap();
        assert_eq!(reply.as_str(), format!("{other}: new {i}"));
    }
    for i in 0..3 {
        first.send(format!("still {i}").into()).await.unwrap();
        let reply = first.next().await.unwrap().unwrap().into_text().unwrap();
        assert_eq!(reply.as_str(), format!("{owner}: still {i}"));
    }
    // It counts in flight on its backend while open.
    assert!(
        lb.backend(&http, owner).await["in_flight"]
            .as_u64()
            .unwrap()
            >= 1
    );
    first.close(None).await.unwrap();
    drop(first);
    until("the closed tunnel is out of flight", PATIENCE, async || {
        lb.backend(&http, owner).await["in_flight"] == 0
    })
    .await;
}

/// A backend that speaks only TLS, with a certificate for `backend.test`: `/readyz` ready,
/// everything else "secure".
async fn tls_backend(tls: &Tls) -> SocketAddr {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let server = Arc::new(vitals_lb::tls::ServerTls::new("backend", &tls.files).unwrap());
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = socket.accept().await else {
                continue;
            };
            let server = Arc::clone(&server);
            tokio::spawn(async move {
                let Ok(stream) = server.acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    |request: hyper::Request<hyper::body::Incoming>| async move {
                        let body = if request.uri().path() == "/readyz" {
                            "ready"
                        } else {
                            "secure"
                        };
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from(body),
                        )))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_backends_is_verified_against_the_pools_ca_file() {
    let tls = Tls::new(&["backend.test"]);
    let backend = tls_backend(&tls).await;
    let keys = |name: &str| {
        format!(
            "backend_tls = true\nbackend_ca_file = {:?}\nbackend_server_name = \"{name}\"\n{}",
            tls.ca.display().to_string(),
            fast()
        )
    };
    // Checks and requests go over TLS, the certificate verified for backend.test.
    let lb = start_lb_on(&[("s", backend)], &keys("backend.test"), "", "").await;
    all_in_rotation(&lb, &["s"]).await;
    assert_eq!(
        reqwest::get(&lb.base).await.unwrap().text().await.unwrap(),
        "secure"
    );

    // The same backend asked to be another.test: its certificate does not say so, so its
    // checks fail and it never comes into rotation.
    let wrong = start_lb_on(&[("s", backend)], &keys("other.test"), "", "").await;
    let http = reqwest::Client::new();
    until("the check has concluded", PATIENCE, async || {
        wrong.backend(&http, "s").await["state"] != "unknown"
    })
    .await;
    let view = wrong.backend(&http, "s").await;
    assert_eq!(view["in_rotation"], false, "{view}");
    assert_eq!(reqwest::get(&wrong.base).await.unwrap().status(), 503);
}
