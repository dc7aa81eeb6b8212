//! Throughput of UDP heartbeat ingestion, printed rather than asserted (speed belongs in
//! benchmarks, not in pass/fail tests). Ignored by default; run in release:
//!
//! ```sh
//! cargo test -p vitals-monitor --release --lib udp::tests::bench -- --ignored --nocapture --test-threads 1
//! ```
//!
//! - `verify_alone`: the sans-IO verifier on pre-built datagrams, accepted and rejected.
//! - `listener_over_loopback`: one plain thread blasts pre-built datagrams through 127.0.0.1
//!   into `listen`; what comes out of the channel is counted, with the CPU time of the thread
//!   running listener and consumer. On loopback the sender's thread pays for the kernel's
//!   whole delivery, so one sender thread is usually the limit here, not the listener.
//! - `listener_capacity`: the listener's cost when it is saturated, which one sender thread
//!   cannot show: the runtime is frozen while bursts fill the socket buffer, then timed while
//!   it drains them. Time per beat there is what one core spends per heartbeat at full load.
//!
//! Run them on an otherwise idle machine: other processes on the same cores take CPU from the
//! listener, and the kernel's default socket buffer (about 200 KiB) overflows within
//! milliseconds at these rates.

use std::net::UdpSocket as StdUdpSocket;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use vitals_core::Status;

use super::super::*;

const NOW: u64 = 1_767_225_600_000;
const SOURCES: usize = 1_000;

fn key(source: usize) -> [u8; 32] {
    let mut k = [0x5a; 32];
    k[..8].copy_from_slice(&(source as u64).to_be_bytes());
    k
}

fn id(source: usize) -> String {
    format!("service-{source:05}.example")
}

fn verifier() -> Verifier {
    let mut v = Verifier::default();
    for s in 0..SOURCES {
        v.add_source(&id(s), s, &key(s)).unwrap();
    }
    v
}

/// `n` datagrams round-robin over the sources, each source's sequence numbers growing.
fn datagrams(
    n: usize,
    id_of: impl Fn(usize) -> String,
    key_of: impl Fn(usize) -> [u8; 32],
) -> Vec<Vec<u8>> {
    let ids: Vec<String> = (0..SOURCES).map(id_of).collect();
    (0..n)
        .map(|i| {
            let s = i % SOURCES;
            let mut out = Vec::new();
            encode(
                &ids[s],
                (i / SOURCES) as u64 + 1,
                NOW,
                Status::Pass,
                &key_of(s),
                &mut out,
            )
            .unwrap();
            out
        })
        .collect()
}

fn report(what: &str, n: usize, took: Duration) {
    let per_s = n as f64 / took.as_secs_f64();
    let ns = took.as_nanos() as f64 / n as f64;
    println!("{what:<48} {per_s:>12.0} datagrams/s  {ns:>7.0} ns each");
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn verify_alone() {
    let n = 1_000_000;
    let good = datagrams(n, id, key);
    let unknown = datagrams(n, |s| format!("nobody-{s:05}.example"), key);
    let forged = datagrams(n, id, |s| key(s + 1));
    let mut garbage = good.clone();
    for d in &mut garbage {
        d[2] = 9; // version
    }
    for (what, set, accepted) in [
        ("verify: accepted", &good, true),
        ("verify: unknown_source", &unknown, false),
        ("verify: bad_mac", &forged, false),
        ("verify: malformed", &garbage, false),
    ] {
        let mut best = Duration::MAX;
        for _round in 0..3 {
            let mut v = verifier();
            let start = Instant::now();
            let mut ok = 0usize;
            for d in set {
                ok += usize::from(v.verify(d, NOW).is_ok());
            }
            best = best.min(start.elapsed());
            assert_eq!(ok, if accepted { n } else { 0 });
        }
        report(what, n, best);
    }
}

/// CPU time this thread has run, from the scheduler's own accounting.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    let ns = stat.split_whitespace().next().unwrap().parse().unwrap();
    Duration::from_nanos(ns)
}

/// What the monitor's side saw.
struct Received {
    beats: u64,
    batches: u64,
    /// First beat to last beat.
    span: Duration,
    /// CPU time of the thread running listener and consumer.
    cpu: Duration,
    counters: Arc<Counters>,
}

/// The monitor's side on a thread of its own: a current-thread runtime running the listener
/// and a consumer standing for the engine, so that its CPU time can be read apart from the
/// sender's. Sends the socket's address, then runs until beats stop coming.
fn receive(addr_tx: std::sync::mpsc::Sender<std::net::SocketAddr>) -> Received {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        addr_tx.send(socket.local_addr().unwrap()).unwrap();
        let counters = Arc::new(Counters::default());
        let (tx, mut rx) = mpsc::channel::<Vec<Beat>>(64);
        let verifier = verifier();
        let cpu0 = thread_cpu();
        tokio::spawn(listen(socket, verifier, tx, counters.clone(), || NOW));
        let (mut beats, mut batches) = (0u64, 0u64);
        let (mut first, mut last) = (None, Instant::now());
        loop {
            // Long until the first beat, then short: the end is when nothing more comes.
            let wait = Duration::from_millis(if first.is_none() { 10_000 } else { 300 });
            let Ok(Some(batch)) = tokio::time::timeout(wait, rx.recv()).await else {
                break;
            };
            first.get_or_insert_with(Instant::now);
            last = Instant::now();
            batches += 1;
            beats += batch.len() as u64;
            std::hint::black_box(batch.iter().map(|b| b.seq).sum::<u64>());
        }
        Received {
            beats,
            batches,
            span: first.map_or(Duration::ZERO, |f| last - f),
            cpu: thread_cpu() - cpu0,
            counters,
        }
    })
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn listener_over_loopback() {
    let n = 1_000_000;
    let set = datagrams(n, id, key);
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let receiver = std::thread::spawn(move || receive(addr_tx));
    let addr = addr_rx.recv().unwrap();

    let sender = StdUdpSocket::bind("127.0.0.1:0").unwrap();
    sender.connect(addr).unwrap();
    let start = Instant::now();
    for d in &set {
        // A full receive buffer on loopback drops rather than blocks; nothing to retry.
        let _ = sender.send(d);
    }
    let send_took = start.elapsed();
    let got = receiver.join().unwrap();

    let rejected: u64 = got
        .counters
        .rejected_by_reason()
        .iter()
        .map(|&(_, n)| n)
        .sum();
    assert_eq!(rejected, 0);
    assert_eq!(got.counters.accepted.load(Ordering::Relaxed), got.beats);
    report("sender: one thread, send() on loopback", n, send_took);
    report(
        "listener: accepted, first to last beat",
        got.beats as usize,
        got.span,
    );
    println!(
        "listener: {} of {n} accepted ({:.1} % dropped by the kernel), {:.0} per batch",
        got.beats,
        100.0 * (n as f64 - got.beats as f64) / n as f64,
        got.beats as f64 / got.batches.max(1) as f64
    );
    report(
        "listener: CPU per beat, as beats/s per core",
        got.beats as usize,
        got.cpu,
    );
}

/// Per burst of `burst` datagrams: the receiving runtime is frozen (its only thread blocks on
/// a std channel, on purpose) while the sender fills the socket buffer, then the time until
/// the consumer has every beat is measured. With nothing else running, that wall time is the
/// listener's and consumer's CPU time.
fn drain_bursts(burst: usize, rounds: usize) -> (u64, Duration) {
    let set = datagrams(burst * rounds, id, key);
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let receiver = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(socket.local_addr().unwrap()).unwrap();
            let (tx, mut rx) = mpsc::channel::<Vec<Beat>>(64);
            let counters = Arc::new(Counters::default());
            tokio::spawn(listen(socket, verifier(), tx, counters, || NOW));
            tokio::task::yield_now().await; // let the listener register with the reactor
            let (mut beats, mut busy) = (0u64, Duration::ZERO);
            while go_rx.recv().is_ok() {
                let start = Instant::now();
                let mut this = 0;
                while this < burst {
                    this += rx.recv().await.unwrap().len();
                }
                busy += start.elapsed();
                beats += this as u64;
                done_tx.send(()).unwrap();
            }
            (beats, busy)
        })
    });
    let sender = StdUdpSocket::bind("127.0.0.1:0").unwrap();
    sender.connect(addr_rx.recv().unwrap()).unwrap();
    for chunk in set.chunks(burst) {
        for d in chunk {
            sender.send(d).unwrap();
        }
        go_tx.send(()).unwrap();
        done_rx.recv().unwrap();
    }
    drop(go_tx);
    receiver.join().unwrap()
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn listener_capacity() {
    // Bursts small enough for the default socket buffer, so that none is dropped.
    for burst in [1, 16, 64, 128] {
        let (beats, busy) = drain_bursts(burst, 200_000 / burst);
        report(
            &format!("listener: draining bursts of {burst}"),
            beats as usize,
            busy,
        );
    }
}
