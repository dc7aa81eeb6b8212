//! What a proxy changes in headers: hop-by-hop headers (RFC 9110 §7.6.1) are removed in
//! both directions, including those a `Connection` header names, and the client's address
//! is appended to `X-Forwarded-For` — to the one a trusted proxy sent, or in place of one
//! any other client sent, which it could have made up (issue 11, item 12).
//!
//! Not here: Host (kept as the client sent it, so virtual hosts work behind the balancer).

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

/// Headers that belong to one connection, not to the message.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Removes hop-by-hop headers, and any header the `Connection` header lists.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none (HTTP/1.1 keeps alive without `Connection`): look first,
    // without hashing, since every removal hashes its name (issue 16's profile: twice per
    // request, ten names each, was the balancer's most frequent hash).
    let any = headers
        .keys()
        .any(|name| HOP_BY_HOP.contains(name) || name == "proxy-connection");
    if !any {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    // `TE: trailers` says the client takes trailers, which gRPC needs: it is the one TE
    // passed on (as HTTP/2 allows, RFC 9113 §8.2.2).
    let trailers = headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove("proxy-connection");
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Appends `client` to `X-Forwarded-For` (one header, comma-separated, as is customary)
/// when `client` is a `trusted` proxy; otherwise the header becomes `client` alone.
pub fn forwarded_for(headers: &mut HeaderMap, client: IpAddr, trusted: bool) {
    // From anyone else, whatever they sent is replaced (`insert` drops every old value).
    let previous: Vec<&str> = if trusted {
        headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    } else {
        Vec::new()
    };
    let value = if previous.is_empty() {
        client.to_string()
    } else {
        format!("{}, {client}", previous.join(", "))
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(&X_FORWARDED_FOR, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, X-Secret".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-kept"]);
    }

    #[test]
    fn te_trailers_is_the_one_te_passed_on() {
        let mut h = HeaderMap::new();
        h.insert(header::TE, "gzip, trailers".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.get(header::TE).unwrap(), "trailers");
        let mut h = HeaderMap::new();
        h.insert(header::TE, "gzip".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-kept"]);
    }

    #[test]
    fn the_client_is_appended_to_x_forwarded_for_of_a_trusted_proxy() {
        let mut h = HeaderMap::new();
        forwarded_for(&mut h, "10.0.0.1".parse().unwrap(), true);
        forwarded_for(&mut h, "::1".parse().unwrap(), true);
        assert_eq!(h.get("x-forwarded-for").unwrap(), "10.0.0.1, ::1");
    }

    /// Issue 11, item 12: any client could claim any address.
    #[test]
    fn x_forwarded_for_from_an_untrusted_client_is_replaced() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        h.append("x-forwarded-for", "198.51.100.1".parse().unwrap());
        forwarded_for(&mut h, "10.0.0.1".parse().unwrap(), false);
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h.get("x-forwarded-for").unwrap(), "10.0.0.1");
    }
}
