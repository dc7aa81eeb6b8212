//! The async side of UDP heartbeats: [`listen`] reads datagrams from a socket, runs them
//! through the [`Verifier`], hands accepted [`Beat`]s on in batches and counts every outcome in
//! [`Counters`].
//!
//! Not here: any rule about what is accepted (the verifier decides; this loop only moves
//! bytes), and what happens to a beat next (the engine reads the channel).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::verifier::{Beat, Reject, Verifier};
use super::wire::MAX_DATAGRAM;

/// The most datagrams read per wakeup before the batch is handed on. Large enough that the
/// per-batch costs (a channel send, six atomic adds, one clock read) vanish per datagram,
/// small enough that a flood cannot keep this task from yielding or delay a beat by more than
/// about a millisecond.
pub const MAX_BATCH: usize = 1024;

/// Heartbeats accepted and rejected by reason, since start. Shared with `/metrics`, which
/// reads them with [`Counters::rejected_by_reason`] and `accepted`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Datagrams that became a [`Beat`].
    pub accepted: AtomicU64,
    /// [`Reject::Malformed`].
    pub malformed: AtomicU64,
    /// [`Reject::UnknownSource`].
    pub unknown_source: AtomicU64,
    /// [`Reject::BadMac`].
    pub bad_mac: AtomicU64,
    /// [`Reject::Replayed`].
    pub replayed: AtomicU64,
    /// [`Reject::Stale`].
    pub stale: AtomicU64,
}

impl Counters {
    /// Counts one verification result.
    pub fn record(&self, result: &Result<Beat, Reject>) {
        let mut tally = Tally::default();
        tally.count(result);
        self.add(&tally);
    }

    /// `(reason label, count)` for every reject reason, in [`Reject::REASONS`] order.
    pub fn rejected_by_reason(&self) -> [(&'static str, u64); 5] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            (Reject::REASONS[0], get(&self.malformed)),
            (Reject::REASONS[1], get(&self.unknown_source)),
            (Reject::REASONS[2], get(&self.bad_mac)),
            (Reject::REASONS[3], get(&self.replayed)),
            (Reject::REASONS[4], get(&self.stale)),
        ]
    }

    fn add(&self, tally: &Tally) {
        let fields = [
            &self.accepted,
            &self.malformed,
            &self.unknown_source,
            &self.bad_mac,
            &self.replayed,
            &self.stale,
        ];
        for (counter, &n) in fields.into_iter().zip(&tally.0) {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

/// Counts of one batch, added to the shared atomics once per batch rather than per datagram.
/// Index 0 is accepted, then the reasons in [`Reject::REASONS`] order.
#[derive(Debug, Default)]
struct Tally([u64; 6]);

impl Tally {
    fn count(&mut self, result: &Result<Beat, Reject>) {
        let i = match result {
            Ok(_) => 0,
            Err(Reject::Malformed(_)) => 1,
            Err(Reject::UnknownSource) => 2,
            Err(Reject::BadMac) => 3,
            Err(Reject::Replayed) => 4,
            Err(Reject::Stale) => 5,
        };
        self.0[i] += 1;
    }
}

/// Receives heartbeats on `socket` until the receiving side of `beats` is dropped (then it
/// returns `Ok`) or the socket fails (then it returns the error; ICMP errors from earlier
/// sends and interrupted calls are not failures).
///
/// `clock` gives the receiver's wall clock in Unix milliseconds (for instance from
/// `SystemTime::now()`); it is read once per batch, and tests pass a fixed value. Accepted
/// beats are sent as one `Vec` per wakeup, at most [`MAX_BATCH`] long, which costs one channel
/// operation per batch instead of one per heartbeat. When the consumer falls behind, the
/// listener waits for it and the kernel's socket buffer absorbs (then drops) the excess: a
/// heartbeat protocol may lose datagrams, and a later one carries the same news.
pub async fn listen(
    socket: UdpSocket,
    verifier: Verifier,
    beats: mpsc::Sender<Vec<Beat>>,
    counters: Arc<Counters>,
    clock: impl Fn() -> u64 + Send + 'static,
) -> io::Result<()> {
    let (_keep, updates) = mpsc::channel(1);
    listen_with_updates(socket, verifier, updates, beats, counters, clock).await
}

/// [`listen`], taking a new [`Verifier`] from `updates` whenever one comes (a reload
/// changed the sources); it takes over the replay windows of the ids it keeps.
pub async fn listen_with_updates(
    socket: UdpSocket,
    mut verifier: Verifier,
    mut updates: mpsc::Receiver<Verifier>,
    beats: mpsc::Sender<Vec<Beat>>,
    counters: Arc<Counters>,
    clock: impl Fn() -> u64 + Send + 'static,
) -> io::Result<()> {
    tracing::debug!(
        local = %socket.local_addr()?,
        sources = verifier.len(),
        "listening for udp heartbeats"
    );
    // One byte more than the largest valid datagram, so that an oversized one is seen as
    // oversized rather than silently cut to a valid-looking length by the kernel.
    let mut buf = [0u8; MAX_DATAGRAM + 1];
    // Made once and polled on every wait, so that waiting for it costs nothing per datagram.
    let consumer_gone = beats.closed();
    tokio::pin!(consumer_gone);
    loop {
        tokio::select! {
            biased;
            ready = socket.readable() => ready?,
            () = &mut consumer_gone => {
                tracing::info!("udp heartbeat consumer gone; listener stops");
                return Ok(());
            }
        }
        while let Ok(mut next) = updates.try_recv() {
            next.keep_windows(&mut verifier);
            tracing::info!(sources = next.len(), "udp heartbeat sources reloaded");
            verifier = next;
        }
        let now_ms = clock();
        let mut batch = Vec::new();
        let mut tally = Tally::default();
        // Bounded by attempts rather than by accepted beats, so that neither a flood of
        // rejects nor a run of socket errors keeps this task from yielding.
        for _ in 0..MAX_BATCH {
            let (len, peer) = match socket.try_recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if is_transient(&e) => {
                    tracing::debug!(error = %e, "udp receive error ignored");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let result = verifier.verify(buf.get(..len).unwrap_or(&buf), now_ms);
            tally.count(&result);
            match result {
                Ok(beat) => batch.push(beat),
                Err(reject) => log_reject(reject, peer),
            }
        }
        counters.add(&tally);
        if !batch.is_empty() && beats.send(batch).await.is_err() {
            tracing::info!("udp heartbeat consumer gone; listener stops");
            return Ok(());
        }
    }
}

/// Errors a UDP socket reports for someone else's trouble: an ICMP error from an earlier send,
/// a signal. The socket still works.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

// Trace level: under a flood of bad datagrams anything louder would be a second flood. The
// counters are the signal; this is for finding which peer sends them.
fn log_reject(reject: Reject, peer: SocketAddr) {
    tracing::trace!(%peer, reason = reject.reason(), detail = %reject, "udp heartbeat rejected");
}
