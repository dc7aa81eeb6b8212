//! `Upgrade` requests (WebSocket and any other protocol an HTTP/1.1 client switches to):
//! the request goes to the picked backend with its `Connection: upgrade` and `Upgrade`
//! headers, and when the backend answers 101 the two connections are spliced, byte for
//! byte, until either side closes.
//!
//! A tunnel counts as a request in flight on its backend for as long as it is open (so
//! `least_requests` sees it), and belongs to the balancer's connections: draining a backend
//! (admin, 503 readiness) sends it no new requests but leaves its open tunnels alone, and
//! a stopping balancer waits for them as for any request in flight, up to its drain time.
//!
//! Not here: picking, retries (`proxy`). WebSockets over HTTP/2 (RFC 8441's extended
//! CONNECT) are not offered; browsers fall back to HTTP/1.1 for them.

use http::header::{self, HeaderMap, HeaderValue};
use http::request;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_util::task::TaskTracker;

/// An upgrade a client asked for: the protocol, and its side of the connection once the
/// response has gone out.
#[derive(Debug)]
pub struct Upgrade {
    protocol: HeaderValue,
    client: OnUpgrade,
}

/// Whether `connection` lists the `upgrade` option.
fn lists_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|option| option.trim().eq_ignore_ascii_case("upgrade"))
}

/// Takes the upgrade out of a request that asks for one (HTTP/1.1, `Connection: upgrade`,
/// `Upgrade: <protocol>`), before hop-by-hop headers are stripped.
pub fn take(parts: &mut request::Parts) -> Option<Upgrade> {
    if parts.version != http::Version::HTTP_11 || !lists_upgrade(&parts.headers) {
        return None;
    }
    let protocol = parts.headers.get(header::UPGRADE)?.clone();
    let client = parts.extensions.remove::<OnUpgrade>()?;
    Some(Upgrade { protocol, client })
}

/// The headers that ask a backend (or tell a client) to switch protocols.
pub fn ask(headers: &mut HeaderMap, upgrade: &Upgrade) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, upgrade.protocol.clone());
}

/// The backend agreed (101): once both sides have switched, copy bytes both ways on a task
/// the balancer waits for when stopping. `guard` (the try's in-flight count) lives as long
/// as the tunnel.
pub fn splice<G: Send + 'static>(
    upgrade: Upgrade,
    response: &mut http::Response<Incoming>,
    guard: G,
    tunnels: &TaskTracker,
) {
    let backend = hyper::upgrade::on(response);
    tunnels.spawn(async move {
        let _guard = guard;
        let (client, backend) = match tokio::try_join!(upgrade.client, backend) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(%error, "an upgrade did not complete");
                return;
            }
        };
        let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
        if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
            tracing::debug!(%error, "an upgraded connection ended with an error");
        }
    });
}
