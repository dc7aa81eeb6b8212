//! DNS discovery: the addresses of a name (A and AAAA), or the targets of its SRV records
//! (each a host name and port, then that name's addresses) — what a Kubernetes headless
//! Service publishes for its pods.
//!
//! Asked again at every refresh, through hickory-resolver with no cache (an answer's TTL says
//! how long a cache may keep it; discovery wants what DNS says now): the system's resolver
//! configuration (`/etc/resolv.conf`, search domains included) or one `nameserver`. A name
//! with no records (NXDOMAIN, or no data) has no targets: a Deployment scaled to zero. Any
//! other failure (timeout, refused, SERVFAIL) is an error, and the targets found before stay.
//!
//! What it is not: a cache, or a watch of the Kubernetes API.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};

use crate::config::{DnsRecord, Found};

/// A resolver for one discovery.
pub struct Dns {
    resolver: TokioResolver,
    name: String,
    record: DnsRecord,
    port: Option<u16>,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns")
            .field("name", &self.name)
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl Dns {
    /// Ask `nameserver` (UDP, then TCP for truncated answers), or the system's resolvers.
    pub fn new(
        name: &str,
        record: DnsRecord,
        port: Option<u16>,
        nameserver: Option<SocketAddr>,
    ) -> Result<Dns, String> {
        let mut builder = match nameserver {
            Some(server) => {
                let mut config = NameServerConfig::udp_and_tcp(server.ip());
                for connection in &mut config.connections {
                    connection.port = server.port();
                }
                let mut resolver = ResolverConfig::from_parts(None, Vec::new(), Vec::new());
                resolver.add_name_server(config);
                Resolver::builder_with_config(resolver, TokioRuntimeProvider::default())
            }
            None => Resolver::builder_tokio()
                .map_err(|e| format!("cannot read the system's resolver configuration: {e}"))?,
        };
        builder.options_mut().cache_size = 0;
        let resolver = builder
            .build()
            .map_err(|e| format!("cannot make a DNS resolver: {e}"))?;
        Ok(Dns {
            resolver,
            name: name.to_owned(),
            record,
            port,
        })
    }

    /// What DNS says now, sorted, each address once.
    pub async fn resolve(&self) -> Result<Vec<Found>, String> {
        let mut found: BTreeMap<(String, u16), Found> = BTreeMap::new();
        let mut add = |ip: IpAddr, port: u16| {
            let one = Found {
                host: ip.to_string(),
                port,
                labels: Vec::new(),
            };
            found.insert((one.host.clone(), port), one);
        };
        match self.record {
            DnsRecord::Srv => {
                for (target, port) in self.srv().await? {
                    for ip in self.ips(&target, DnsRecord::Ip).await? {
                        add(ip, port);
                    }
                }
            }
            record => {
                let port = self.port.unwrap_or(0);
                for ip in self.ips(&self.name, record).await? {
                    add(ip, port);
                }
            }
        }
        Ok(found.into_values().collect())
    }

    async fn srv(&self) -> Result<Vec<(String, u16)>, String> {
        let lookup = match self.resolver.srv_lookup(self.name.as_str()).await {
            Ok(lookup) => lookup,
            Err(error) if error.is_no_records_found() => return Ok(Vec::new()),
            Err(error) => return Err(failed(&self.name, "SRV", &error)),
        };
        Ok(lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::SRV(srv) if srv.port != 0 => Some((srv.target.to_utf8(), srv.port)),
                _ => None,
            })
            .collect())
    }

    async fn ips(&self, name: &str, record: DnsRecord) -> Result<Vec<IpAddr>, String> {
        let mut ips = Vec::new();
        if matches!(record, DnsRecord::Ip | DnsRecord::A) {
            ips.extend(self.lookup(name, RecordKind::A).await?);
        }
        if matches!(record, DnsRecord::Ip | DnsRecord::Aaaa) {
            ips.extend(self.lookup(name, RecordKind::Aaaa).await?);
        }
        Ok(ips)
    }

    async fn lookup(&self, name: &str, kind: RecordKind) -> Result<Vec<IpAddr>, String> {
        let lookup = match kind {
            RecordKind::A => self.resolver.ipv4_lookup(name).await,
            RecordKind::Aaaa => self.resolver.ipv6_lookup(name).await,
        };
        let lookup = match lookup {
            Ok(lookup) => lookup,
            Err(error) if error.is_no_records_found() => return Ok(Vec::new()),
            Err(error) => return Err(failed(name, kind.name(), &error)),
        };
        Ok(lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                _ => None,
            })
            .collect())
    }
}

#[derive(Debug, Clone, Copy)]
enum RecordKind {
    A,
    Aaaa,
}

impl RecordKind {
    fn name(self) -> &'static str {
        match self {
            RecordKind::A => "A",
            RecordKind::Aaaa => "AAAA",
        }
    }
}

fn failed(name: &str, record: &str, error: &NetError) -> String {
    format!("DNS {record} lookup of {name:?} failed: {error}")
}
