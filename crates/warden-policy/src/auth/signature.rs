//! Signed requests for server-to-server partners: HMAC-SHA256 over a canonical form of the request,
//! with a key id, a timestamp and a nonce. A request is accepted once, within a window around its
//! timestamp (±5 minutes by default); a replayed copy is refused with reason `replay`. The exact
//! canonical form is documented in `docs/signing.md`; `warden sign` produces the header.
//!
//! The header:
//! `Authorization: WARDEN-HMAC-SHA256 KeyId=<id>,Timestamp=<unix seconds>,Nonce=<nonce>,SignedHeaders=host;content-type,Signature=<hex>`

use aws_lc_rs::hmac;

use super::AuthFailure;

pub const SCHEME: &str = "WARDEN-HMAC-SHA256";

/// The parts of a signature header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub key_id: String,
    pub timestamp: i64,
    pub nonce: String,
    /// Lower-case header names, in the order they are signed.
    pub signed_headers: Vec<String>,
    pub signature: Vec<u8>,
}

/// What is signed, besides the header fields.
#[derive(Debug, Clone)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The path as sent (percent-encoded), without the query.
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// (lower-case name, value) for every header of the request; only signed ones are used.
    pub headers: Vec<(&'a str, &'a str)>,
    pub body_sha256_hex: String,
}

pub fn parse_header(value: &str) -> Result<SignatureHeader, AuthFailure> {
    let rest = value
        .strip_prefix(SCHEME)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or(AuthFailure::Malformed)?;
    let (mut key_id, mut ts, mut nonce, mut signed, mut sig) = (None, None, None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or(AuthFailure::Malformed)?;
        let slot = match k {
            "KeyId" => &mut key_id,
            "Timestamp" => &mut ts,
            "Nonce" => &mut nonce,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut sig,
            _ => return Err(AuthFailure::Malformed),
        };
        if slot.replace(v.to_string()).is_some() {
            return Err(AuthFailure::Malformed);
        }
    }
    let key_id = key_id
        .filter(|k| !k.is_empty() && k.len() <= 128)
        .ok_or(AuthFailure::Malformed)?;
    let timestamp = ts
        .and_then(|t| t.parse::<i64>().ok())
        .ok_or(AuthFailure::Malformed)?;
    let nonce = nonce
        .filter(|n| {
            (16..=128).contains(&n.len())
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .ok_or(AuthFailure::Malformed)?;
    let signed_headers: Vec<String> = signed
        .ok_or(AuthFailure::Malformed)?
        .split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if !signed_headers.iter().any(|h| h == "host") || signed_headers.iter().any(String::is_empty) {
        return Err(AuthFailure::Malformed);
    }
    let signature =
        crate::hex::decode(&sig.ok_or(AuthFailure::Malformed)?).ok_or(AuthFailure::Malformed)?;
    if signature.len() != 32 {
        return Err(AuthFailure::Malformed);
    }
    Ok(SignatureHeader {
        key_id,
        timestamp,
        nonce,
        signed_headers,
        signature,
    })
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode_component(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query in canonical form: each parameter decoded, re-encoded per RFC 3986, sorted by name
/// and then value, joined with `&`. `a=1&b` and `b=&a=%31` are the same query.
pub fn canonical_query(query: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                encode_component(&decode_component(k)),
                encode_component(&decode_component(v)),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The exact text that is signed (see `docs/signing.md`).
pub fn canonical(h: &SignatureHeader, r: &RequestParts<'_>) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(SCHEME);
    out.push('\n');
    out.push_str(&h.timestamp.to_string());
    out.push('\n');
    out.push_str(&h.nonce);
    out.push('\n');
    out.push_str(&r.method.to_ascii_uppercase());
    out.push('\n');
    out.push_str(if r.path.is_empty() { "/" } else { r.path });
    out.push('\n');
    out.push_str(&canonical_query(r.query));
    out.push('\n');
    out.push_str(&h.signed_headers.join(";"));
    out.push('\n');
    for name in &h.signed_headers {
        let values: Vec<String> = r
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push_str(&r.body_sha256_hex);
    out
}

pub fn sign(secret: &[u8], canonical: &str) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::sign(&key, canonical.as_bytes())
        .as_ref()
        .try_into()
        .expect("HMAC-SHA256 is 32 bytes")
}

/// Checks the timestamp window and the signature. The nonce is checked (and spent) by the caller
/// afterwards, against shared state: only a correctly signed request may use up a nonce.
pub fn verify(
    h: &SignatureHeader,
    r: &RequestParts<'_>,
    secret: &[u8],
    now: i64,
    window_secs: i64,
) -> Result<(), AuthFailure> {
    if (now - h.timestamp).abs() > window_secs {
        return Err(AuthFailure::StaleTimestamp);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, canonical(h, r).as_bytes(), &h.signature)
        .map_err(|_| AuthFailure::BadSignature)
}

/// The full `Authorization` value for a request (client side: `warden sign`, tests, partners).
pub fn authorization(
    key_id: &str,
    secret: &[u8],
    timestamp: i64,
    nonce: &str,
    signed_headers: &[&str],
    r: &RequestParts<'_>,
) -> String {
    let h = SignatureHeader {
        key_id: key_id.to_string(),
        timestamp,
        nonce: nonce.to_string(),
        signed_headers: signed_headers
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect(),
        signature: Vec::new(),
    };
    let sig = sign(secret, &canonical(&h, r));
    let hex: String = sig.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{SCHEME} KeyId={key_id},Timestamp={timestamp},Nonce={nonce},SignedHeaders={},Signature={hex}",
        h.signed_headers.join(";")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"partner-secret-0123456789abcdef!";

    fn parts<'a>(query: Option<&'a str>, body: &str) -> RequestParts<'a> {
        RequestParts {
            method: "POST",
            path: "/v1/payments",
            query,
            headers: vec![("host", "api.test"), ("content-type", "application/json")],
            body_sha256_hex: super::super::sha256_hex(body.as_bytes()),
        }
    }

    #[test]
    fn round_trip_and_tampering() {
        let nonce = "n0nce-0123456789abcdef";
        let r = parts(Some("b=2&a=1"), "{}");
        let value = authorization(
            "partner-a",
            SECRET,
            1000,
            nonce,
            &["host", "content-type"],
            &r,
        );
        let h = parse_header(&value).unwrap();
        assert_eq!(h.key_id, "partner-a");
        assert!(verify(&h, &r, SECRET, 1000, 300).is_ok());
        // The same query in another order and spelling still verifies.
        assert!(verify(&h, &parts(Some("a=%31&b=2"), "{}"), SECRET, 1100, 300).is_ok());
        assert_eq!(
            verify(&h, &parts(Some("a=1&b=3"), "{}"), SECRET, 1000, 300),
            Err(AuthFailure::BadSignature)
        );
        assert_eq!(
            verify(&h, &parts(Some("a=1&b=2"), "{ }"), SECRET, 1000, 300),
            Err(AuthFailure::BadSignature)
        );
        assert_eq!(
            verify(&h, &r, b"other-secret-0123456789abcdef!!!", 1000, 300),
            Err(AuthFailure::BadSignature)
        );
        assert_eq!(
            verify(&h, &r, SECRET, 1301, 300),
            Err(AuthFailure::StaleTimestamp)
        );
        assert_eq!(
            verify(&h, &r, SECRET, 699, 300),
            Err(AuthFailure::StaleTimestamp)
        );
    }

    #[test]
    fn header_shape_is_strict() {
        let ok = "WARDEN-HMAC-SHA256 KeyId=k,Timestamp=1,Nonce=0123456789abcdef,SignedHeaders=host,Signature=";
        let sig = "00".repeat(32);
        assert!(parse_header(&format!("{ok}{sig}")).is_ok());
        for bad in [
            format!("{ok}{}", "00".repeat(31)),
            format!("{ok}{sig},KeyId=x"),
            ok.replace("Nonce=0123456789abcdef", "Nonce=short") + &sig,
            ok.replace("SignedHeaders=host", "SignedHeaders=date") + &sig,
            format!("Bearer {sig}"),
        ] {
            assert!(parse_header(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn canonical_form_is_the_documented_one() {
        let h = SignatureHeader {
            key_id: "k".into(),
            timestamp: 1700000000,
            nonce: "0123456789abcdef".into(),
            signed_headers: vec!["host".into(), "content-type".into()],
            signature: vec![],
        };
        let r = RequestParts {
            method: "post",
            path: "/v1/pay%20ments",
            query: Some("z=1&a=hello+world&a=%7E"),
            headers: vec![
                ("Host", "api.test"),
                ("Content-Type", "application/json;  charset=utf-8"),
            ],
            body_sha256_hex: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                .into(),
        };
        assert_eq!(
            canonical(&h, &r),
            "WARDEN-HMAC-SHA256\n1700000000\n0123456789abcdef\nPOST\n/v1/pay%20ments\na=hello%20world&a=~&z=1\nhost;content-type\nhost:api.test\ncontent-type:application/json; charset=utf-8\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,200}") {
            let _ = parse_header(&s);
            let _ = canonical_query(Some(&s));
        }
    }
}
