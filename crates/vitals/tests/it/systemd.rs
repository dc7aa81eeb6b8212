//! sd_notify against a real unix datagram socket, as systemd's `NOTIFY_SOCKET` is (issue 14):
//! `READY=1` only once the startup hooks pass, `WATCHDOG=1` only while liveness passes,
//! `STOPPING=1` on drain, `STATUS=` with the verdict; and an abstract socket (`@name`).

#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::common::Switch;
use tokio::net::UnixDatagram;
use tokio::sync::watch;
use vitals::systemd::{Notifier, watch as notify_systemd};
use vitals::{Check, Health, Thresholds};

/// The next datagram, within 10 s.
async fn next(socket: &UnixDatagram) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buf))
        .await
        .expect("a notification within 10 s")
        .unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

/// Datagrams until one satisfies `done`; returns all of them, that one last.
async fn until(socket: &UnixDatagram, done: impl Fn(&str) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let message = next(socket).await;
        let stop = done(&message);
        seen.push(message);
        if stop {
            return seen;
        }
    }
}

fn quick() -> Thresholds {
    Thresholds {
        fall: 1,
        rise: 1,
        ..Thresholds::default()
    }
}

#[tokio::test]
async fn ready_after_hooks_watchdog_only_while_alive_stopping_on_drain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();

    let heart = Switch::default();
    let (open, gate) = watch::channel(false);
    let health = Health::builder()
        .check(
            Check::new("heart", heart.probe())
                .liveness()
                .interval(Duration::from_millis(50))
                .jitter(Duration::ZERO)
                .timeout(Duration::from_millis(40))
                .thresholds(quick()),
        )
        .on_startup("migrate", move || {
            let mut gate = gate.clone();
            async move {
                gate.wait_for(|open| *open)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        })
        .drain_delay(Duration::from_millis(100))
        .start()
        .unwrap();
    let notifier = Notifier::new(path.to_str().unwrap()).unwrap();
    tokio::spawn(notify_systemd(
        health.clone(),
        notifier,
        Some(Duration::from_millis(50)),
    ));

    // Starting: a status, pings (liveness passes), and no READY=1 until the hook passes.
    let first = next(&socket).await;
    assert!(first.starts_with("STATUS=starting: "), "{first}");
    let before = until(&socket, |m| m == "WATCHDOG=1").await;
    assert!(before.iter().all(|m| !m.contains("READY=1")), "{before:?}");
    open.send_replace(true);
    let got = until(&socket, |m| m.contains("READY=1")).await;
    assert_eq!(got.last().unwrap(), "READY=1\nSTATUS=ready", "{got:?}");
    until(&socket, |m| m == "WATCHDOG=1").await;

    // Liveness fails: the status says so and the pings stop until it passes again.
    heart.fail();
    let failing = until(&socket, |m| m.contains("liveness failing")).await;
    assert!(
        failing.last().unwrap().contains("liveness failing (heart)"),
        "{failing:?}"
    );
    // Several watchdog periods with liveness failing.
    tokio::time::sleep(Duration::from_millis(400)).await;
    heart.pass();
    let meanwhile = until(&socket, |m| m == "STATUS=ready").await;
    assert!(
        meanwhile.iter().all(|m| m != "WATCHDOG=1"),
        "a ping while liveness failed: {meanwhile:?}"
    );
    until(&socket, |m| m == "WATCHDOG=1").await;

    health.shutdown();
    let stopping = until(&socket, |m| m.contains("STOPPING=1")).await;
    assert!(
        stopping
            .last()
            .unwrap()
            .starts_with("STOPPING=1\nSTATUS=draining"),
        "{stopping:?}"
    );
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn abstract_sockets_written_with_an_at_sign_are_reached() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("vitals-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let std_socket = std::os::unix::net::UnixDatagram::bind_addr(&addr).unwrap();
    std_socket.set_nonblocking(true).unwrap();
    let socket = UnixDatagram::from_std(std_socket).unwrap();
    let notifier = Notifier::new(&format!("@{name}")).unwrap();
    notifier.send("STATUS=hello").await.unwrap();
    assert_eq!(next(&socket).await, "STATUS=hello");
}

#[tokio::test]
async fn a_socket_nobody_listens_on_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nobody.sock");
    let error = Notifier::new(path.to_str().unwrap())
        .unwrap()
        .send("READY=1")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("nobody.sock"), "{error}");
}
