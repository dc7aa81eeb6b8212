//! The sender of `bench/detect.sh` (issue 15): one process that beats over UDP every period
//! and holds a TCP listener, as a service with a heartbeat and a port would.
//!
//! ```text
//! beat_sender <udp host:port> <id> <hex key> <tcp listen host:port> [period ms, default 100]
//! ```
//!
//! `kill -9` makes it gone (the kernel closes the listener: a connect is refused); `SIGSTOP`
//! stalls it (no beats, but the kernel still completes handshakes); `SIGUSR1` makes it skip
//! the next 15 beats (1.5 s of lost beats, the process alive and accepting). It prints
//! `ready` once listening.
//!
//! What it is not: a load generator (`bench_load.rs` is).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::signal::unix::{SignalKind, signal};

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [udp, id, key, tcp, rest @ ..] = args.as_slice() else {
        eprintln!("usage: beat_sender <udp host:port> <id> <hex key> <tcp host:port> [period ms]");
        std::process::exit(2);
    };
    let period = rest
        .first()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_millis(100), Duration::from_millis);
    let Some(key) = parse_hex(key) else {
        eprintln!("beat_sender: the key is not hex");
        std::process::exit(2);
    };
    let listener = match tokio::net::TcpListener::bind(tcp).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("beat_sender: cannot listen on {tcp}: {error}");
            std::process::exit(1);
        }
    };
    tokio::spawn(async move {
        // Accept and close: all a confirmation needs is the handshake.
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    let socket = match tokio::net::UdpSocket::bind("127.0.0.1:0").await {
        Ok(socket) => socket,
        Err(error) => {
            eprintln!("beat_sender: {error}");
            std::process::exit(1);
        }
    };
    let Ok(mut skip_signal) = signal(SignalKind::user_defined1()) else {
        eprintln!("beat_sender: cannot listen for SIGUSR1");
        std::process::exit(1);
    };
    println!("ready");
    // Sequence numbers grow across restarts: start from the clock (see udp::encode).
    let mut seq = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let mut skip = 0u32;
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut datagram = Vec::new();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = skip_signal.recv() => {
                skip = 15;
                continue;
            }
        }
        if skip > 0 {
            skip -= 1;
            continue;
        }
        seq += 1;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        if vitals_monitor::udp::encode(
            id,
            seq,
            now_ms,
            vitals_core::Status::Pass,
            &key,
            &mut datagram,
        )
        .is_ok()
        {
            let _ = socket.send_to(&datagram, udp).await;
        }
    }
}
