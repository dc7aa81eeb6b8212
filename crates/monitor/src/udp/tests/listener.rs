//! The listener on a real UDP socket on 127.0.0.1: datagrams of every kind go in from another
//! socket, beats come out of the channel, and the counters say what was dropped and why.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;
use vitals_core::Status;

use super::super::*;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const NOW: u64 = 1_767_225_600_000;
/// Generous: only reached when something is broken, never a pace the test depends on.
const PATIENCE: Duration = Duration::from_secs(10);

fn beat(id: &str, seq: u64, time_ms: u64, status: Status) -> Vec<u8> {
    let mut out = Vec::new();
    encode(id, seq, time_ms, status, KEY, &mut out).unwrap();
    out
}

/// The longest id there is, and one that repeats: senders that dump bytes with `od` must not
/// let it abbreviate repeated lines.
pub(super) const LONG_ID: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// Ten bytes long, so its length byte is 0x0a, a newline: senders that write the datagram
/// through a line-buffered stream must not let it be split there.
pub(super) const NEWLINE_ID: &str = "newline-id";

/// Starts a listener on a fresh loopback port with sources "api" (target 1), [`LONG_ID`]
/// (target 2) and [`NEWLINE_ID`] (target 3), all with `KEY`, and the given clock.
pub(super) async fn start(
    clock: impl Fn() -> u64 + Send + 'static,
) -> (
    std::net::SocketAddr,
    mpsc::Receiver<Vec<Beat>>,
    Arc<Counters>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let mut verifier = Verifier::default();
    verifier.add_source("api", 1, KEY).unwrap();
    verifier.add_source(LONG_ID, 2, KEY).unwrap();
    verifier.add_source(NEWLINE_ID, 3, KEY).unwrap();
    let (tx, rx) = mpsc::channel(16);
    let counters = Arc::new(Counters::default());
    let task = tokio::spawn(listen(socket, verifier, tx, counters.clone(), clock));
    (addr, rx, counters, task)
}

/// Reads beats until one with sequence number `last` arrives.
pub(super) async fn beats_until(rx: &mut mpsc::Receiver<Vec<Beat>>, last: u64) -> Vec<Beat> {
    let mut got = Vec::new();
    while got.last().is_none_or(|b: &Beat| b.seq != last) {
        let batch = timeout(PATIENCE, rx.recv())
            .await
            .expect("no beat within 10 s")
            .expect("listener stopped");
        assert!(!batch.is_empty(), "empty batches are never sent");
        got.extend(batch);
    }
    got
}

#[tokio::test]
async fn every_kind_of_datagram_is_judged_and_counted() {
    let (addr, mut rx, counters, task) = start(|| NOW).await;
    let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut oversized = beat("api", 50, NOW, Status::Pass);
    oversized.extend_from_slice(&[0; 1000]); // the kernel would cut this to a valid length
    let mut bad_mac = beat("api", 51, NOW, Status::Pass);
    let last = bad_mac.len() - 1;
    bad_mac[last] ^= 1;
    let mut other_key = Vec::new();
    encode(
        "api",
        52,
        NOW,
        Status::Pass,
        b"another key of 32 bytes, wrong!!",
        &mut other_key,
    )
    .unwrap();
    let datagrams = [
        beat("api", 1, NOW, Status::Pass),
        b"hello".to_vec(),
        oversized,
        beat("nobody", 2, NOW, Status::Pass),
        bad_mac,
        other_key,
        beat("api", 3, NOW - 31_000, Status::Pass),
        beat("api", 1, NOW, Status::Pass),
        beat("api", 4, NOW + 1_000, Status::Fail),
    ];
    for d in &datagrams {
        sender.send_to(d, addr).await.unwrap();
    }
    // One socket to one socket over loopback keeps order, so once the last beat is out,
    // everything before it has been judged and counted.
    let got = beats_until(&mut rx, 4).await;
    assert_eq!(
        got,
        [
            Beat {
                target: 1,
                status: Status::Pass,
                seq: 1,
                sent_ms: NOW
            },
            Beat {
                target: 1,
                status: Status::Fail,
                seq: 4,
                sent_ms: NOW + 1_000
            },
        ]
    );
    assert_eq!(counters.accepted.load(Ordering::Relaxed), 2);
    assert_eq!(
        counters.rejected_by_reason(),
        [
            ("malformed", 2),
            ("unknown_source", 1),
            ("bad_mac", 2),
            ("replayed", 1),
            ("stale", 1),
        ]
    );

    // Dropping the consumer stops the listener, even with nothing arriving.
    drop(rx);
    let ended = timeout(PATIENCE, task)
        .await
        .expect("listener kept running");
    assert!(ended.unwrap().is_ok());
}

#[tokio::test]
async fn a_burst_arrives_whole_and_in_order() {
    let (addr, mut rx, counters, _task) = start(|| NOW).await;
    let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // 100 datagrams fit the kernel's default receive buffer (about 200 KiB; a small datagram
    // takes about a KiB of it), so none is dropped however late the listener wakes.
    let n: u64 = 100;
    for seq in 1..=n {
        sender
            .send_to(&beat("api", seq, NOW, Status::Warn), addr)
            .await
            .unwrap();
    }
    let got = beats_until(&mut rx, n).await;
    assert_eq!(
        got.iter().map(|b| b.seq).collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>()
    );
    assert!(
        got.iter()
            .all(|b| b.status == Status::Warn && b.target == 1)
    );
    assert_eq!(counters.accepted.load(Ordering::Relaxed), n);
    assert!(counters.rejected_by_reason().iter().all(|&(_, n)| n == 0));
}

#[test]
fn counters_record_single_results() {
    let c = Counters::default();
    c.record(&Err(Reject::Stale));
    c.record(&Err(Reject::Stale));
    c.record(&Err(Reject::Malformed("x")));
    c.record(&Ok(Beat {
        target: 0,
        status: Status::Pass,
        seq: 0,
        sent_ms: 0,
    }));
    assert_eq!(c.accepted.load(Ordering::Relaxed), 1);
    assert_eq!(
        c.rejected_by_reason(),
        [
            ("malformed", 1),
            ("unknown_source", 0),
            ("bad_mac", 0),
            ("replayed", 0),
            ("stale", 2),
        ]
    );
}
