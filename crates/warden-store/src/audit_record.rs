//! What one audit entry says, and its canonical JSON.
//!
//! A request record borrows from the request it describes and is encoded on the caller's thread,
//! straight into the one buffer that travels to the writer. Building owned strings for every
//! field cost the proxy nine allocations per call, each freed on the writer's thread (a
//! cross-thread free in the allocator), and the generic serializer was the writer's largest
//! single cost; the hand-written encoder below writes the same bytes `serde_json` would (a
//! property test holds it to that), so the trail's format did not change.

use std::io::Write as _;
use std::net::IpAddr;

use serde::Serialize;

/// One call through the gateway, as the trail keeps it. Field order is the canonical order;
/// empty fields are left out, which keeps entries small (they are hashed, stored and exported).
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord<'a> {
    pub at_ms: i64,
    pub request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<&'a str>,
    /// The credential's id (key id, token id), never the secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<&'a str>,
    pub client_ip: IpAddr,
    pub method: &'a str,
    pub route: &'a str,
    pub path: &'a str,
    pub status: u16,
    /// `allowed`, `denied` or `failed`.
    pub decision: &'a str,
    /// The check that refused, if one did.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub phase: &'a str,
    /// The reason code (the finer cause where there is one).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'a str,
    /// `check:kind@location:action` for each finding: never a value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
    pub bytes_in: u64,
    /// Sent to the client; in compliance mode, what the response declared when it was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    /// Microseconds from the request's arrival to its record.
    pub latency_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<&'a str>,
    /// False when the client or upstream went away before the response was complete; `None` when
    /// recorded before the response was sent (compliance mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete: Option<bool>,
}

impl Default for RequestRecord<'_> {
    fn default() -> Self {
        RequestRecord {
            at_ms: 0,
            request_id: "",
            consumer: None,
            credential_id: None,
            client_ip: IpAddr::from([0, 0, 0, 0]),
            method: "",
            route: "",
            path: "",
            status: 0,
            decision: "",
            phase: "",
            reason: "",
            findings: Vec::new(),
            bytes_in: 0,
            bytes_out: None,
            latency_us: 0,
            upstream: None,
            complete: None,
        }
    }
}

/// What the trail records, in the order it happened.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record<'a> {
    Request(RequestRecord<'a>),
    /// Key changes, config reloads, alerts: from the store's admin event log.
    Admin {
        at_ms: i64,
        actor: String,
        action: String,
        subject: String,
        detail: serde_json::Value,
    },
}

impl Record<'_> {
    /// The canonical JSON: what is hashed into the chain and stored.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Record::Request(r) => r.encode(out),
            admin => serde_json::to_writer(out, admin).expect("records always serialize"),
        }
    }

    pub fn at_ms(&self) -> i64 {
        match self {
            Record::Request(r) => r.at_ms,
            Record::Admin { at_ms, .. } => *at_ms,
        }
    }
}

impl RequestRecord<'_> {
    /// Writes exactly what `serde_json::to_writer(out, &Record::Request(self))` would.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut n = itoa::Buffer::new();
        out.extend_from_slice(b"{\"kind\":\"request\",\"at_ms\":");
        out.extend_from_slice(n.format(self.at_ms).as_bytes());
        field(out, b"request_id", self.request_id);
        if let Some(c) = self.consumer {
            field(out, b"consumer", c);
        }
        if let Some(c) = self.credential_id {
            field(out, b"credential_id", c);
        }
        // An address never needs escaping.
        out.extend_from_slice(b",\"client_ip\":\"");
        match self.client_ip {
            IpAddr::V4(v4) => {
                for (i, o) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push(b'.');
                    }
                    out.extend_from_slice(n.format(o).as_bytes());
                }
            }
            v6 => {
                let _ = write!(out, "{v6}");
            }
        }
        out.push(b'"');
        field(out, b"method", self.method);
        field(out, b"route", self.route);
        field(out, b"path", self.path);
        out.extend_from_slice(b",\"status\":");
        out.extend_from_slice(n.format(self.status).as_bytes());
        field(out, b"decision", self.decision);
        if !self.phase.is_empty() {
            field(out, b"phase", self.phase);
        }
        if !self.reason.is_empty() {
            field(out, b"reason", self.reason);
        }
        if !self.findings.is_empty() {
            out.extend_from_slice(b",\"findings\":[");
            for (i, f) in self.findings.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, f);
            }
            out.push(b']');
        }
        out.extend_from_slice(b",\"bytes_in\":");
        out.extend_from_slice(n.format(self.bytes_in).as_bytes());
        if let Some(b) = self.bytes_out {
            out.extend_from_slice(b",\"bytes_out\":");
            out.extend_from_slice(n.format(b).as_bytes());
        }
        out.extend_from_slice(b",\"latency_us\":");
        out.extend_from_slice(n.format(self.latency_us).as_bytes());
        if let Some(u) = self.upstream {
            field(out, b"upstream", u);
        }
        if let Some(c) = self.complete {
            out.extend_from_slice(if c {
                b",\"complete\":true"
            } else {
                b",\"complete\":false"
            });
        }
        out.push(b'}');
    }
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name);
    out.extend_from_slice(b"\":");
    string(out, value);
}

/// A JSON string as `serde_json` escapes it: `"`, `\` and control characters only, the short
/// forms where JSON has them, else `\u00xx` in lower-case hex.
fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        // Control characters, quotes, backslashes and non-ASCII, where escaping can go wrong.
        proptest::string::string_regex("[\\x00-\\x1f\"\\\\a-z/%é€😀 -]{0,24}").unwrap()
    }

    fn ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u16; 8]>().prop_map(IpAddr::from),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn the_hand_encoder_writes_what_serde_json_writes(
            at_ms in any::<i64>(), request_id in text(), consumer in proptest::option::of(text()),
            credential in proptest::option::of(text()), client_ip in ip(), method in text(),
            route in text(), path in text(), status in any::<u16>(), decision in text(),
            phase in text(), reason in text(), findings in proptest::collection::vec(text(), 0..3),
            bytes_in in any::<u64>(), bytes_out in proptest::option::of(any::<u64>()),
            latency_us in any::<u64>(), upstream in proptest::option::of(text()),
            complete in proptest::option::of(any::<bool>()),
        ) {
            let rec = Record::Request(RequestRecord {
                at_ms, request_id: &request_id, consumer: consumer.as_deref(),
                credential_id: credential.as_deref(), client_ip, method: &method, route: &route,
                path: &path, status, decision: &decision, phase: &phase, reason: &reason,
                findings, bytes_in, bytes_out, latency_us, upstream: upstream.as_deref(), complete,
            });
            let mut mine = Vec::new();
            rec.encode(&mut mine);
            prop_assert_eq!(String::from_utf8(mine).unwrap(), serde_json::to_string(&rec).unwrap());
        }
    }
}
