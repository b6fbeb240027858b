//! Proxy header hygiene: hop-by-hop headers never cross the gateway, the upstream learns who the
//! client is through `X-Forwarded-*` and `Forwarded` (RFC 7239), and every request carries an id.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the legacy ones
/// still seen in the wild.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes hop-by-hop headers and every header the sender listed in `Connection`. The listed names
/// go first: a client can name `Authorization` or `X-Forwarded-For` there to make a naive proxy drop
/// it after its checks ran, so we drop them before any check sees the request.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// Ids we accept from a client or an outer proxy: short, printable and free of anything that
/// could split a log line or a header.
pub fn valid_request_id(v: &HeaderValue) -> Option<&str> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'=')
        });
    ok.then_some(s)
}

/// Keeps a well-formed incoming `X-Request-Id` (so traces join up across hops) or makes a new one.
/// UUIDv7 sorts by time, which makes ids handy in logs.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(X_REQUEST_ID)
        .and_then(valid_request_id)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// Who the client is, as told to the upstream.
pub struct ForwardedFor<'a> {
    /// The socket peer; appended to X-Forwarded-For (it is the hop that reached us).
    pub peer_ip: IpAddr,
    /// Whether the client's incoming X-Forwarded-For is believed (the peer is a trusted proxy).
    pub peer_trusted: bool,
    pub tls: bool,
    pub host: Option<&'a str>,
}

/// Sets X-Forwarded-For/-Proto/-Host and `Forwarded`. From an untrusted peer, whatever the client
/// sent in these headers is thrown away first, so the upstream never sees a forged chain.
pub fn set_forwarded(headers: &mut HeaderMap, f: &ForwardedFor<'_>) {
    let proto = if f.tls { "https" } else { "http" };
    let peer = f.peer_ip.to_canonical();
    let prior_xff = if f.peer_trusted {
        let joined: Vec<&str> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!joined.is_empty()).then(|| joined.join(", "))
    } else {
        None
    };
    let prior_fwd = if f.peer_trusted {
        let joined: Vec<&str> = headers
            .get_all(&FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!joined.is_empty()).then(|| joined.join(", "))
    } else {
        None
    };
    if !f.peer_trusted {
        headers.remove(&X_FORWARDED_PROTO);
        headers.remove(&X_FORWARDED_HOST);
    }
    let xff = match prior_xff {
        Some(prior) => format!("{prior}, {peer}"),
        None => peer.to_string(),
    };
    insert(headers, X_FORWARDED_FOR, &xff);
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        insert(headers, X_FORWARDED_PROTO, proto);
    }
    if let Some(host) = f.host {
        if !headers.contains_key(&X_FORWARDED_HOST) {
            insert(headers, X_FORWARDED_HOST, host);
        }
    }
    let node = match peer {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    };
    let mut element = format!("for={node};proto={proto}");
    if let Some(host) = f.host.filter(|h| {
        h.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b';')
    }) {
        element.push_str(";host=");
        element.push_str(&quote_if_needed(host));
    }
    let fwd = match prior_fwd {
        Some(prior) => format!("{prior}, {element}"),
        None => element,
    };
    insert(headers, FORWARDED, &fwd);
}

fn quote_if_needed(v: &str) -> String {
    if v.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        v.to_string()
    } else {
        format!("\"{v}\"")
    }
}

fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn strips_hop_by_hop_and_connection_listed() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret, authorization"),
            ("x-secret", "1"),
            ("authorization", "Bearer x"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn request_id_is_propagated_only_when_sane() {
        assert_eq!(request_id(&map(&[("x-request-id", "abc-123")])), "abc-123");
        let fresh = request_id(&map(&[("x-request-id", "has space")]));
        assert_ne!(fresh, "has space");
        assert_eq!(fresh.len(), 36);
        assert_ne!(
            request_id(&map(&[("x-request-id", &"a".repeat(200))])).len(),
            200
        );
    }

    #[test]
    fn untrusted_peer_cannot_forge_the_chain() {
        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=1.2.3.4"),
        ]);
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        set_forwarded(
            &mut h,
            &ForwardedFor {
                peer_ip: peer,
                peer_trusted: false,
                tls: false,
                host: Some("api.test"),
            },
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.test");
        assert_eq!(h["forwarded"], "for=203.0.113.9;proto=http;host=api.test");
    }

    #[test]
    fn trusted_peer_chain_is_extended() {
        let mut h = map(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-proto", "https"),
        ]);
        let peer: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        set_forwarded(
            &mut h,
            &ForwardedFor {
                peer_ip: peer,
                peer_trusted: true,
                tls: false,
                host: None,
            },
        );
        assert_eq!(h["x-forwarded-for"], "198.51.100.1, 10.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["forwarded"], "for=10.0.0.1;proto=http");
    }

    #[test]
    fn ipv6_forwarded_node_is_quoted() {
        let mut h = HeaderMap::new();
        let peer: IpAddr = "2001:db8::1".parse().unwrap();
        set_forwarded(
            &mut h,
            &ForwardedFor {
                peer_ip: peer,
                peer_trusted: false,
                tls: true,
                host: None,
            },
        );
        assert_eq!(h["forwarded"], "for=\"[2001:db8::1]\";proto=https");
    }
}
