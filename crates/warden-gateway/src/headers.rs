//! Proxy header hygiene: hop-by-hop headers never cross the gateway, the upstream learns who the
//! client is through `X-Forwarded-*` and `Forwarded` (RFC 7239), and every request carries an id.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Removes hop-by-hop headers and every header the sender listed in `Connection`. The listed names
/// go first: a client can name `Authorization` or `X-Forwarded-For` there to make a naive proxy drop
/// it after its checks ran, so we drop them before any check sees the request.
/// The media type of a `Content-Type`, lower case, without parameters (`application/json` for
/// `Application/JSON; charset=utf-8`); empty when absent or unreadable.
pub fn media_type(headers: &HeaderMap) -> String {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names (no hashing) finds which are present; most messages carry none, and
    // an upstream's response usually just `Connection: keep-alive`. Only those are then removed.
    let mut present: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        if is_hop_by_hop(name.as_str()) && !present.contains(name) {
            present.push(name.clone());
        }
    }
    if present.is_empty() {
        return;
    }
    if present.contains(&header::CONNECTION) {
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
    }
    for name in present {
        headers.remove(name);
    }
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the legacy ones
/// still seen in the wild, and `Upgrade` (no protocol switching through the gateway yet).
pub(crate) fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
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

thread_local! {
    /// Per thread: `Uuid::now_v7`'s context is one mutex for the whole process, taken on every
    /// request by every worker. Ids still sort by time to the millisecond; within one they are
    /// ordered per worker.
    static IDS: uuid::ContextV7 = const { uuid::ContextV7::new() };
}

/// Keeps a well-formed incoming `X-Request-Id` (so traces join up across hops) or makes a new one.
/// UUIDv7 sorts by time, which makes ids handy in logs.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(X_REQUEST_ID)
        .and_then(valid_request_id)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
            IDS.with(|ids| uuid::Uuid::new_v7(uuid::Timestamp::now(ids)))
                .hyphenated()
                .encode_lower(&mut buf)
                .to_owned()
        })
}

/// The per-connection parts of the forwarding headers, formatted once when the connection is
/// accepted rather than on every request (formatting showed up in profiles of the hot path).
#[derive(Debug)]
pub struct PeerHeaders {
    /// The socket peer as an `X-Forwarded-For` entry.
    xff: HeaderValue,
    /// `for=<peer>;proto=<http|https>`, the start of this hop's `Forwarded` element.
    forwarded: String,
    proto: HeaderValue,
    /// The last `Host` seen on this connection and this hop's whole `Forwarded` element for it: a
    /// client sends the same Host on every request of a connection.
    last: std::sync::Mutex<Option<(HeaderValue, HeaderValue)>>,
}

impl PeerHeaders {
    pub fn new(peer: IpAddr, tls: bool) -> PeerHeaders {
        let peer = peer.to_canonical();
        let proto = if tls { "https" } else { "http" };
        let node = match peer {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("\"[{v6}]\""),
        };
        PeerHeaders {
            xff: HeaderValue::from_str(&peer.to_string())
                .expect("an IP address is a valid header value"),
            forwarded: format!("for={node};proto={proto}"),
            proto: HeaderValue::from_static(proto),
            last: std::sync::Mutex::new(None),
        }
    }

    /// This hop's `Forwarded` element for a request with this `Host`, from the connection's cache
    /// when the Host is the one seen last.
    fn element(&self, host: Option<&HeaderValue>) -> Option<HeaderValue> {
        let Some(host) = host else {
            return forwarded_value(None, &self.forwarded, None);
        };
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((h, v)) = &*last {
            if h.as_bytes() == host.as_bytes() {
                return Some(v.clone());
            }
        }
        let v = forwarded_value(None, &self.forwarded, Some(host))?;
        // An owned copy: the request's own value shares the connection's read buffer.
        if let Ok(h) = HeaderValue::from_bytes(host.as_bytes()) {
            *last = Some((h, v.clone()));
        }
        Some(v)
    }
}

/// `Forwarded`: the elements before this hop's (`prior`), then this hop's (`own`, with the Host
/// as a `host=` parameter, quoted when it needs to be, left out when it cannot be written).
fn forwarded_value(
    prior: Option<&str>,
    own: &str,
    host: Option<&HeaderValue>,
) -> Option<HeaderValue> {
    let mut fwd = String::with_capacity(prior.map_or(0, |p| p.len() + 2) + own.len() + 32);
    if let Some(prior) = prior {
        fwd.push_str(prior);
        fwd.push_str(", ");
    }
    fwd.push_str(own);
    if let Some(host) = host.and_then(|h| h.to_str().ok()).filter(|h| {
        h.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b';' && b != b'\\')
    }) {
        fwd.push_str(";host=");
        if host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            fwd.push_str(host);
        } else {
            fwd.push('"');
            fwd.push_str(host);
            fwd.push('"');
        }
    }
    HeaderValue::from_maybe_shared(bytes::Bytes::from(fwd)).ok()
}

/// Sets X-Forwarded-For/-Proto/-Host and `Forwarded`. From an untrusted peer, whatever the client
/// sent in these headers is thrown away first, so the upstream never sees a forged chain.
/// `host` is the client's Host header as sent (port included).
pub fn set_forwarded(
    headers: &mut HeaderMap,
    peer: &PeerHeaders,
    peer_trusted: bool,
    host: Option<&HeaderValue>,
) {
    let prior = |headers: &HeaderMap, name: &HeaderName| {
        let joined: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!joined.is_empty()).then(|| joined.join(", "))
    };
    // Usually none of them is present: one pass over the names spares the hashed lookups.
    let present = headers.keys().any(|k| {
        matches!(
            k.as_str(),
            "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-host" | "forwarded"
        )
    });
    let (prior_xff, prior_fwd) = if !present {
        (None, None)
    } else if peer_trusted {
        (prior(headers, &X_FORWARDED_FOR), prior(headers, &FORWARDED))
    } else {
        headers.remove(&X_FORWARDED_PROTO);
        headers.remove(&X_FORWARDED_HOST);
        (None, None)
    };
    match prior_xff {
        Some(mut chain) => {
            chain.push_str(", ");
            chain.push_str(peer.xff.to_str().unwrap_or_default());
            insert(headers, X_FORWARDED_FOR, chain);
        }
        None => {
            headers.insert(X_FORWARDED_FOR, peer.xff.clone());
        }
    }
    if !present || !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, peer.proto.clone());
    }
    if let Some(host) = host {
        if !present || !headers.contains_key(&X_FORWARDED_HOST) {
            headers.insert(X_FORWARDED_HOST, host.clone());
        }
    }
    let element = match prior_fwd {
        None => peer.element(host),
        Some(prior) => forwarded_value(Some(&prior), &peer.forwarded, host),
    };
    if let Some(v) = element {
        headers.insert(FORWARDED, v);
    }
}

/// Takes the string's buffer as the header value, without copying it.
fn insert(headers: &mut HeaderMap, name: HeaderName, value: String) {
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
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
    fn each_hop_by_hop_header_is_stripped_alone() {
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
        ] {
            let mut h = map(&[(name, "x"), ("x-kept", "yes")]);
            strip_hop_by_hop(&mut h);
            assert_eq!(h.len(), 1, "{name}");
        }
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
    fn fresh_request_ids_are_uuid_v7_in_order() {
        let ids: Vec<String> = (0..200).map(|_| request_id(&HeaderMap::new())).collect();
        for id in &ids {
            assert_eq!(
                uuid::Uuid::parse_str(id).unwrap().get_version_num(),
                7,
                "{id}"
            );
        }
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids made one after another sort in order"
        );
    }

    #[test]
    fn the_forwarded_element_follows_the_host_on_one_connection() {
        // Several requests of one connection (HTTP/2 may carry several authorities): the cached
        // element is used only for the Host it was made for.
        let peer = PeerHeaders::new("2001:db8::7".parse().unwrap(), true);
        for host in ["a.test", "a.test", "b.test:8443", "a.test", "we ird"] {
            let mut h = HeaderMap::new();
            let host = HeaderValue::from_str(host).unwrap();
            set_forwarded(&mut h, &peer, false, Some(&host));
            let want = match host.to_str().unwrap() {
                "we ird" => "for=\"[2001:db8::7]\";proto=https".to_string(),
                "b.test:8443" => {
                    "for=\"[2001:db8::7]\";proto=https;host=\"b.test:8443\"".to_string()
                }
                h => format!("for=\"[2001:db8::7]\";proto=https;host={h}"),
            };
            assert_eq!(h["forwarded"], want.as_str());
        }
        let mut h = HeaderMap::new();
        set_forwarded(&mut h, &peer, false, None);
        assert_eq!(h["forwarded"], "for=\"[2001:db8::7]\";proto=https");
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
            &PeerHeaders::new(peer, false),
            false,
            Some(&HeaderValue::from_static("api.test")),
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
        set_forwarded(&mut h, &PeerHeaders::new(peer, false), true, None);
        assert_eq!(h["x-forwarded-for"], "198.51.100.1, 10.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["forwarded"], "for=10.0.0.1;proto=http");
    }

    #[test]
    fn ipv6_forwarded_node_is_quoted() {
        let mut h = HeaderMap::new();
        let peer: IpAddr = "2001:db8::1".parse().unwrap();
        set_forwarded(&mut h, &PeerHeaders::new(peer, true), false, None);
        assert_eq!(h["forwarded"], "for=\"[2001:db8::1]\";proto=https");
    }
}
