//! Load for `bench/monitor.sh`: the fast local HTTP targets the monitor and HAProxy check,
//! and a UDP heartbeat sender. Not a general load generator: it does what the benchmark
//! needs and prints what it did.
//!
//! ```text
//! bench_load serve PORT...                      HTTP 200 "ok" on every path of each port;
//!                                               GET /__count gives the requests per port;
//!                                               env THREADS=n runtime threads (default 1)
//! bench_load udp ADDR SOURCES SECONDS [FIRST]   UDP heartbeats round-robin over SOURCES
//!                                               sources from FIRST (ids hb-000000…, keys as
//!                                               `bench_load key` prints them), 64 to a
//!                                               `sendmmsg` call
//! bench_load key SOURCE                         the hex key of SOURCE, for the config
//! bench_load sizes                              stack sizes of the engine's public per-target
//!                                               types, for the memory analysis
//! bench_load clients N                          RSS growth from N `reqwest::Client::new()`,
//!                                               what each HTTP probe made with `Http::new` costs
//! ```

use std::io::IoSlice;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
use tokio::time::Instant;
use vitals_core::Status;

fn usage() -> ! {
    eprintln!(
        "usage: bench_load serve PORT... | udp ADDR SOURCES SECONDS [FIRST] | key SOURCE | sizes | clients N"
    );
    std::process::exit(1);
}

fn parse<T: std::str::FromStr>(what: &str, value: Option<&String>) -> T {
    let Some(value) = value else { usage() };
    value.parse().unwrap_or_else(|_| {
        eprintln!("bench_load: {what}: cannot read {value:?}");
        std::process::exit(1)
    })
}

/// The key of heartbeat source `source`: 32 bytes, its index in the first eight.
fn key(source: u64) -> [u8; 32] {
    let mut key = [0x5a; 32];
    key[..8].copy_from_slice(&source.to_be_bytes());
    key
}

fn id(source: u64) -> String {
    format!("hb-{source:06}")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(args[1..].iter().map(|p| parse("PORT", Some(p))).collect()),
        Some("udp") => udp(
            parse("ADDR", args.get(1)),
            parse("SOURCES", args.get(2)),
            parse("SECONDS", args.get(3)),
            args.get(4).map_or(0, |first| parse("FIRST", Some(first))),
        ),
        Some("key") => println!("{}", hex::encode(key(parse("SOURCE", args.get(1))))),
        Some("sizes") => sizes(),
        Some("clients") => clients(parse("N", args.get(1))),
        _ => usage(),
    }
}

fn serve(ports: Vec<u16>) {
    if ports.is_empty() {
        usage();
    }
    // One thread unless told otherwise: the benchmark pins this process to its own core.
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|threads| threads.parse().ok())
        .unwrap_or(1);
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .unwrap_or_else(|error| panic!("cannot start tokio: {error}"));
    runtime.block_on(async move {
        let mut servers = Vec::new();
        for port in ports {
            let count = Arc::new(AtomicU64::new(0));
            let app = Router::new()
                .route(
                    "/__count",
                    axum::routing::get(|State(count): State<Arc<AtomicU64>>| async move {
                        count.load(Ordering::Relaxed).to_string()
                    }),
                )
                .fallback(|State(count): State<Arc<AtomicU64>>| async move {
                    count.fetch_add(1, Ordering::Relaxed);
                    "ok"
                })
                .with_state(count);
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap_or_else(|error| panic!("cannot bind 127.0.0.1:{port}: {error}"));
            servers.push(tokio::spawn(
                async move { axum::serve(listener, app).await },
            ));
        }
        eprintln!("bench_load: serving on {} ports", servers.len());
        for server in servers {
            let _ = server.await;
        }
    });
}

/// Datagrams handed to the kernel per `sendmmsg(2)`: one system call per batch rather than
/// per datagram, so that the sender (on one core, beside a second sender) is not what limits
/// the monitor's measured ingestion rate.
const SEND_BATCH: usize = 64;

fn udp(addr: SocketAddr, sources: u64, seconds: u64, first: u64) {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.connect(addr).map(|()| socket))
        .unwrap_or_else(|error| panic!("cannot open a UDP socket to {addr}: {error}"));
    let ids: Vec<String> = (first..first + sources).map(id).collect();
    let keys: Vec<[u8; 32]> = (first..first + sources).map(key).collect();
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut batch: Vec<Vec<u8>> = (0..SEND_BATCH).map(|_| Vec::with_capacity(128)).collect();
    let (mut sent, mut failed, mut seq) = (0u64, 0u64, 0u64);
    let (mut source, mut time_ms) = (0usize, 0u64);
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(SEND_BATCH, None);
    // The socket is connected: no address per datagram.
    let addrs: [Option<SockaddrStorage>; SEND_BATCH] = [None; SEND_BATCH];
    while Instant::now() < until {
        time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(time_ms, |d| d.as_millis() as u64);
        // 16 batches between clock readings.
        for _ in 0..16 {
            let mut filled = 0;
            for datagram in &mut batch {
                if source == 0 {
                    seq += 1;
                }
                datagram.clear();
                let encoded = vitals_monitor::udp::encode(
                    &ids[source],
                    seq,
                    time_ms,
                    Status::Pass,
                    &keys[source],
                    datagram,
                );
                source = (source + 1) % ids.len();
                match encoded {
                    Ok(()) => filled += 1,
                    Err(_) => failed += 1,
                }
            }
            let slices: Vec<[IoSlice<'_>; 1]> = batch[..filled]
                .iter()
                .map(|datagram| [IoSlice::new(datagram)])
                .collect();
            match sendmmsg(
                socket.as_raw_fd(),
                &mut headers,
                &slices,
                &addrs[..filled],
                [],
                MsgFlags::empty(),
            ) {
                Ok(results) => {
                    let done = results.count() as u64;
                    sent += done;
                    failed += filled as u64 - done;
                }
                Err(_) => failed += filled as u64,
            }
        }
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "sent {sent} datagrams in {took:.2} s ({:.0}/s), {failed} failed",
        sent as f64 / took
    );
}

/// What one target costs before its heap allocations: the public types the engine keeps per
/// target (its private `Live` holds a `Machine`, an `Option<Outcome>`, a boxed detector and a
/// few flags and times).
fn sizes() {
    use std::mem::size_of;
    use vitals_core::detector::{Deadline, PhiAccrual};
    use vitals_core::machine::{Event, Machine, Thresholds};
    use vitals_monitor::engine::{Expectation, Mode, TargetSpec, TargetView};
    for (name, size) in [
        ("engine::TargetSpec", size_of::<TargetSpec>()),
        ("engine::Mode", size_of::<Mode>()),
        ("engine::Expectation", size_of::<Expectation>()),
        ("engine::TargetView", size_of::<TargetView>()),
        ("core::Machine", size_of::<Machine>()),
        ("core::Thresholds", size_of::<Thresholds>()),
        ("core::Event", size_of::<Event>()),
        ("core::Outcome", size_of::<vitals_core::Outcome>()),
        ("core::detector::Deadline", size_of::<Deadline>()),
        ("core::detector::PhiAccrual", size_of::<PhiAccrual>()),
    ] {
        println!("{name:<32} {size:>5} bytes");
    }
}

/// The resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn clients(n: usize) {
    let before = rss_kib();
    let clients: Vec<reqwest::Client> = (0..n).map(|_| reqwest::Client::new()).collect();
    let after = rss_kib();
    let shared = reqwest::Client::new();
    let clones: Vec<reqwest::Client> = (0..n).map(|_| shared.clone()).collect();
    let cloned = rss_kib();
    println!(
        "{n} clients: +{} KiB ({} bytes each); {n} clones of one client: +{} KiB",
        after - before,
        (after - before) * 1024 / n.max(1) as u64,
        cloned.saturating_sub(after)
    );
    drop((clients, clones));
}
