//! [`DnsServer`]: a small authoritative DNS server on a loopback UDP port, answering A, AAAA
//! and SRV questions from records the test sets (and changes) — what a Kubernetes headless
//! Service publishes, for testing DNS discovery against a real resolver over a real socket.
//!
//! It speaks just enough of RFC 1035: one question per query, answers with the question's
//! name compressed, NXDOMAIN for a name it has no records of, an empty answer (NODATA) for a
//! name without records of the type asked. Additional records (EDNS) in queries are ignored.
//!
//! What it is not: a recursive resolver, or anything beyond loopback.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::Error;

/// One record of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsRecord {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    /// A service's target host name and port (priority and weight 0).
    Srv {
        target: String,
        port: u16,
    },
}

impl DnsRecord {
    fn qtype(&self) -> u16 {
        match self {
            DnsRecord::A(_) => 1,
            DnsRecord::Aaaa(_) => 28,
            DnsRecord::Srv { .. } => 33,
        }
    }
}

type Zone = Arc<Mutex<HashMap<String, Vec<DnsRecord>>>>;

/// A DNS server on `127.0.0.1`, answering until dropped.
#[derive(Debug)]
pub struct DnsServer {
    addr: SocketAddr,
    zone: Zone,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DnsServer {
    /// Bind a free loopback UDP port and answer on a thread of its own.
    pub fn start() -> Result<DnsServer, Error> {
        let io = |what: &str| {
            let what = format!("dns server: {what}");
            move |e| Error::io(what, e)
        };
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(io("cannot bind a loopback port"))?;
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(io("cannot set a read timeout"))?;
        let addr = socket.local_addr().map_err(io("no local address"))?;
        let zone: Zone = Arc::default();
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (zone, queries, stop) =
                (Arc::clone(&zone), Arc::clone(&queries), Arc::clone(&stop));
            std::thread::spawn(move || serve(&socket, &zone, &queries, &stop))
        };
        Ok(DnsServer {
            addr,
            zone,
            queries,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The records of `name` from now on (none: the name does not exist).
    pub fn set(&self, name: &str, records: Vec<DnsRecord>) {
        let mut zone = self.zone.lock().unwrap_or_else(|e| e.into_inner());
        if records.is_empty() {
            zone.remove(&normal(name));
        } else {
            zone.insert(normal(name), records);
        }
    }

    /// Questions answered so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::Relaxed)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn serve(socket: &UdpSocket, zone: &Zone, queries: &AtomicUsize, stop: &AtomicBool) {
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Some(answer) = answer(buf.get(..len).unwrap_or_default(), zone) else {
            continue;
        };
        queries.fetch_add(1, Ordering::Relaxed);
        let _ = socket.send_to(&answer, peer);
    }
}

/// The response to `query`, or None for a datagram that is no query.
fn answer(query: &[u8], zone: &Zone) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let question_end = at + 4;
    query.get(..question_end)?;
    let name = labels.join(".");
    let records: Option<Vec<DnsRecord>> = zone
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&name)
        .cloned();
    let matching: Vec<DnsRecord> = records
        .iter()
        .flatten()
        .filter(|record| record.qtype() == qtype)
        .cloned()
        .collect();
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&query[..2]); // id
    let rcode = if records.is_none() { 3 } else { 0 }; // NXDOMAIN, or NOERROR
    out.push(0x84 | (query[2] & 0x01)); // QR, AA, RD as asked
    out.push(0x80 | rcode); // RA
    out.extend_from_slice(&1u16.to_be_bytes()); // one question
    out.extend_from_slice(&u16::try_from(matching.len()).ok()?.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // no authority, no additional
    out.extend_from_slice(&query[12..question_end]);
    for record in matching {
        out.extend_from_slice(&[0xC0, 12]); // the question's name
        out.extend_from_slice(&record.qtype().to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes()); // IN
        out.extend_from_slice(&5u32.to_be_bytes()); // TTL: 5 s, as kube-dns answers
        let data = match record {
            DnsRecord::A(ip) => ip.octets().to_vec(),
            DnsRecord::Aaaa(ip) => ip.octets().to_vec(),
            DnsRecord::Srv { target, port } => {
                let mut data = vec![0, 0, 0, 0];
                data.extend_from_slice(&port.to_be_bytes());
                for label in normal(&target).split('.').filter(|l| !l.is_empty()) {
                    data.push(u8::try_from(label.len()).ok()?);
                    data.extend_from_slice(label.as_bytes());
                }
                data.push(0);
                data
            }
        };
        out.extend_from_slice(&u16::try_from(data.len()).ok()?.to_be_bytes());
        out.extend_from_slice(&data);
    }
    Some(out)
}
