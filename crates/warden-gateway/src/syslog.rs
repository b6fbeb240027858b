//! Sending audit entries and alerts to a syslog server: RFC 5424 or CEF, over UDP (one datagram per
//! message) or TCP (octet-counted frames, RFC 6587). Blocking I/O: callers run it off the workers.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use warden_policy::syslog;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Rfc5424,
    Cef,
}

/// `udp://host:port` or `tcp://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Target {
    pub tcp: bool,
    pub address: String,
}

impl TryFrom<String> for Target {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let (tcp, rest) = match s.split_once("://") {
            Some(("udp", r)) => (false, r),
            Some(("tcp", r)) => (true, r),
            _ => {
                return Err(format!(
                    "syslog target `{s}` must be udp://host:port or tcp://host:port"
                ))
            }
        };
        match rest.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => Ok(Target {
                tcp,
                address: rest.to_string(),
            }),
            _ => Err(format!("syslog target `{s}` needs a host and a port")),
        }
    }
}

/// An open connection (TCP) or socket (UDP) to a syslog server.
pub struct Sender {
    udp: Option<(UdpSocket, SocketAddr)>,
    tcp: Option<TcpStream>,
}

impl Sender {
    pub fn connect(t: &Target) -> std::io::Result<Sender> {
        let addr = t.address.to_socket_addrs()?.next().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{}: no address", t.address),
            )
        })?;
        if t.tcp {
            let s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
            s.set_write_timeout(Some(Duration::from_secs(5)))?;
            Ok(Sender {
                udp: None,
                tcp: Some(s),
            })
        } else {
            let bind: SocketAddr = if addr.is_ipv4() {
                "0.0.0.0:0".parse().expect("valid")
            } else {
                "[::]:0".parse().expect("valid")
            };
            Ok(Sender {
                udp: Some((UdpSocket::bind(bind)?, addr)),
                tcp: None,
            })
        }
    }

    pub fn send(&mut self, msg: &str) -> std::io::Result<()> {
        if let Some((s, addr)) = &self.udp {
            s.send_to(msg.as_bytes(), addr)?;
        }
        if let Some(s) = &mut self.tcp {
            write!(s, "{} {msg}", msg.len())?;
        }
        Ok(())
    }
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "-".into())
}

/// An audit entry (its JSON body, sequence number and hash) as one syslog message.
pub fn entry_message(format: Format, seq: u64, hash: &str, body: &serde_json::Value) -> String {
    let s = |k: &str| body[k].as_str().unwrap_or("").to_string();
    let at = body["at_ms"].as_i64().unwrap_or(0);
    let kind = s("kind");
    let decision = s("decision");
    let (severity, cef_severity) = match (kind.as_str(), decision.as_str()) {
        ("request", "allowed") => (6, 1),
        ("request", "denied") => (5, 5),
        ("request", _) => (4, 6),
        _ if s("action").starts_with("alert.raised") => (4, 8),
        _ => (5, 3),
    };
    let msg = match format {
        Format::Rfc5424 => body.to_string(),
        Format::Cef => {
            let (signature, name) = if kind == "request" {
                (
                    format!("request:{decision}"),
                    format!("{} {} {decision}", s("method"), s("route")),
                )
            } else {
                (s("action"), format!("{} {}", s("action"), s("subject")))
            };
            let mut ext = vec![("rt", at.to_string())];
            let mut add = |k: &'static str, v: String| {
                if !v.is_empty() {
                    ext.push((k, v));
                }
            };
            add("src", s("client_ip"));
            add("suser", s("consumer"));
            add("requestMethod", s("method"));
            add("request", s("path"));
            add("outcome", decision.clone());
            add("reason", s("reason"));
            let status = body["status"]
                .as_u64()
                .map(|v| v.to_string())
                .unwrap_or_default();
            // Custom fields come in label/value pairs; a pair without a value is left out.
            for (label_key, label, key, value) in [
                ("cs1Label", "route", "cs1", s("route")),
                ("cs2Label", "requestId", "cs2", s("request_id")),
                ("cn1Label", "status", "cn1", status),
            ] {
                if !value.is_empty() {
                    add(label_key, label.into());
                    add(key, value);
                }
            }
            add("cs3Label", "chain".into());
            add("cs3", format!("{seq}:{hash}"));
            if kind != "request" {
                add("suser", s("actor"));
                add("msg", body["detail"].to_string());
            }
            syslog::cef(
                env!("CARGO_PKG_VERSION"),
                &signature,
                &name,
                cef_severity,
                &ext,
            )
        }
    };
    syslog::rfc5424(
        severity,
        at,
        &host(),
        "warden",
        std::process::id(),
        &kind,
        &[("seq", seq.to_string()), ("hash", hash.to_string())],
        &msg,
    )
}

/// An alert (as `Alerts` delivers it) as one syslog message.
pub fn alert_message(format: Format, doc: &serde_json::Value) -> String {
    let alert = doc["alert"].as_str().unwrap_or("alert");
    let subject = doc["subject"].as_str().unwrap_or("");
    let at = doc["at_ms"].as_i64().unwrap_or(0);
    let resolved = doc["resolved"].as_bool().unwrap_or(false);
    let msg = match format {
        Format::Rfc5424 => doc.to_string(),
        Format::Cef => syslog::cef(
            env!("CARGO_PKG_VERSION"),
            &format!("alert:{alert}"),
            &format!("{alert} {}", if resolved { "resolved" } else { "raised" }),
            if resolved { 3 } else { 8 },
            &[
                ("rt", at.to_string()),
                ("suser", subject.to_string()),
                ("msg", doc["detail"].to_string()),
            ],
        ),
    };
    syslog::rfc5424(
        if resolved { 5 } else { 2 },
        at,
        &host(),
        "warden",
        std::process::id(),
        "alert",
        &[("alert", alert.to_string())],
        &msg,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            Target::try_from("tcp://127.0.0.1:514".to_string()).unwrap(),
            Target {
                tcp: true,
                address: "127.0.0.1:514".into()
            }
        );
        assert!(Target::try_from("http://x:1".to_string()).is_err());
        assert!(Target::try_from("udp://x".to_string()).is_err());
    }

    #[test]
    fn a_denied_call_as_cef() {
        let body = serde_json::json!({"kind": "request", "at_ms": 0, "method": "GET", "route": "api",
            "path": "/users/1", "decision": "denied", "reason": "attack-detected", "status": 403,
            "client_ip": "192.0.2.9", "request_id": "r-1"});
        let m = entry_message(Format::Cef, 7, "ab", &body);
        assert!(m.starts_with("<109>1 1970-01-01T00:00:00.000Z "), "{m}");
        assert!(m.contains("CEF:0|Warden|Warden Gateway|"), "{m}");
        assert!(m.contains("|request:denied|GET api denied|5|rt=0 src=192.0.2.9 requestMethod=GET request=/users/1 outcome=denied reason=attack-detected"), "{m}");
        assert!(m.contains("cs3=7:ab"), "{m}");
    }
}
