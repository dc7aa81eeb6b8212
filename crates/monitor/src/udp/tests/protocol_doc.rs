//! `docs/PROTOCOL.md` checked against the code: its test vector is what [`encode`] produces,
//! and its Python and shell senders, taken from the document as written, are accepted by a
//! real listener on 127.0.0.1.

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::process::Command;
use tokio::time::timeout;
use vitals_core::Status;

use super::super::*;
use super::listener::{LONG_ID, NEWLINE_ID, start};

const DOC: &str = include_str!("../../../../../docs/PROTOCOL.md");
/// The key `listener::start` configures for source "api".
const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const PATIENCE: Duration = Duration::from_secs(10);

/// The first fenced code block of the document whose info string is `lang`.
fn code_block(lang: &str) -> &'static str {
    let open = format!("```{lang}\n");
    let start = DOC.find(&open).expect("the document has the block") + open.len();
    let len = DOC[start..].find("\n```").expect("the block is closed");
    &DOC[start..start + len + 1]
}

fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[test]
fn the_test_vector_is_what_encode_produces() {
    let key: Vec<u8> = (0u8..32).collect();
    assert!(DOC.contains(&format!(
        "| key (32 bytes, hex) | `{}` |",
        hex::encode(&key)
    )));
    let mut out = Vec::new();
    encode(
        "billing-api",
        1,
        1_767_225_600_000,
        Status::Warn,
        &key,
        &mut out,
    )
    .unwrap();
    let hex = hex::encode(&out);
    assert_eq!(out.len(), 48);
    assert!(DOC.contains(&format!("The {}-byte datagram", out.len())));
    assert!(DOC.contains(&format!("```\n{hex}\n```")), "doc lacks {hex}");
    // The spaced version is the same bytes.
    let spaced = "5648 01 01 0000000000000001 0000019b76daa800 0b 62696c6c696e672d617069 b704bb7d7dfb9f8c8c028fa168646728";
    assert!(DOC.contains(spaced));
    assert_eq!(spaced.replace(' ', ""), hex);
    // The full MAC, for implementers checking their HMAC before truncation.
    let full = "b704bb7d7dfb9f8c8c028fa168646728541d65194764b476fd995fecefe429f4";
    assert!(DOC.contains(&format!("| full HMAC-SHA256 | `{full}` |")));
    assert!(full.starts_with(&hex[hex.len() - 2 * TAG_LEN..]));

    let mut v = Verifier::default();
    v.add_source("billing-api", 0, &key).unwrap();
    assert_eq!(
        v.verify(&out, 1_767_225_600_000),
        Ok(Beat {
            target: 0,
            status: Status::Warn,
            seq: 1,
            sent_ms: 1_767_225_600_000
        })
    );
}

#[test]
fn the_documented_limits_are_the_constants() {
    assert!(DOC.contains(&format!(
        "A datagram is {MIN_DATAGRAM} to {MAX_DATAGRAM} bytes."
    )));
    assert!(DOC.contains(&format!(
        "reads up to {},{:03}",
        MAX_BATCH / 1000,
        MAX_BATCH % 1000
    )));
    assert!(DOC.contains("30 seconds by\n   default"));
    assert_eq!(DEFAULT_MAX_SKEW, Duration::from_secs(30));
}

#[tokio::test]
async fn the_python_sender_is_accepted() {
    let (addr, mut rx, counters, _task) = start(wall_clock_ms).await;
    let mut python = Command::new("python3")
        .arg("-c")
        .arg(code_block("python"))
        .env("VITALS_KEY", hex::encode(KEY))
        .env("VITALS_ID", "api")
        .env("VITALS_PORT", addr.port().to_string())
        .env("VITALS_PERIOD", "0.05")
        .env("VITALS_STATUS", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 is installed");
    let mut got = Vec::new();
    while got.len() < 3 {
        let batch = timeout(PATIENCE, async {
            tokio::select! {
                batch = rx.recv() => batch.expect("listener stopped"),
                status = python.wait() => panic!("the python sender exited: {status:?}"),
            }
        })
        .await
        .expect("no beat from python within 10 s");
        got.extend(batch);
    }
    python.kill().await.unwrap();

    let start_ns =
        u64::try_from(UNIX_EPOCH.elapsed().unwrap().as_nanos()).unwrap() - 60_000_000_000;
    assert!(
        got.iter()
            .all(|b| b.target == 1 && b.status == Status::Warn)
    );
    assert!(
        got[0].seq > start_ns,
        "the sequence starts from the clock in nanoseconds"
    );
    assert!(got.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    assert!(counters.rejected_by_reason().iter().all(|&(_, n)| n == 0));
}

#[tokio::test]
async fn the_shell_sender_is_accepted_run_after_run() {
    let (addr, mut rx, counters, _task) = start(wall_clock_ms).await;
    let mut seqs = Vec::new();
    let runs = [
        ("api", 1, Status::Fail),
        (LONG_ID, 2, Status::Pass),
        (NEWLINE_ID, 3, Status::Warn),
        ("api", 1, Status::Warn),
    ];
    for (id, target, status) in runs {
        let out = timeout(
            PATIENCE,
            Command::new("bash")
                .arg("-c")
                .arg(code_block("bash"))
                .arg("vitals-beat")
                .arg(id)
                .arg(status.as_str())
                .env("VITALS_KEY", hex::encode(KEY))
                .env("VITALS_PORT", addr.port().to_string())
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("the shell sender finished within 10 s")
        .expect("bash is installed");
        assert!(
            out.status.success(),
            "shell sender failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let batch = timeout(PATIENCE, rx.recv())
            .await
            .expect("no beat from the shell sender within 10 s")
            .expect("listener stopped");
        assert_eq!(batch.len(), 1);
        assert_eq!((batch[0].target, batch[0].status), (target, status));
        seqs.push(batch[0].seq);
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "each run's clock-based sequence number is higher: {seqs:?}"
    );
    assert_eq!(
        counters.accepted.load(std::sync::atomic::Ordering::Relaxed),
        runs.len() as u64
    );
    assert!(counters.rejected_by_reason().iter().all(|&(_, n)| n == 0));

    // A status other than pass, warn, fail is refused before anything is sent.
    let out = Command::new("bash")
        .arg("-c")
        .arg(code_block("bash"))
        .arg("vitals-beat")
        .arg("api")
        .arg("ok")
        .env("VITALS_KEY", hex::encode(KEY))
        .env("VITALS_PORT", addr.port().to_string())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(out.stderr, b"status must be pass, warn or fail\n");
}
