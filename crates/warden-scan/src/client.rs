//! The scanner's HTTP: every request paced to the configured rate, counted against the budget, and
//! kept as evidence with credentials and passwords blanked out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Bodies beyond this are cut: evidence, not archives.
const MAX_BODY: usize = 1 << 20;
/// How much of a body a report shows.
const SHOWN: usize = 2048;

#[derive(Debug, Clone)]
pub enum Credential {
    Bearer(String),
    Header(String, String),
}

/// A caller the scanner plays: one of the users it was given.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub admin: bool,
    pub credential: Credential,
}

impl Identity {
    pub fn header(&self) -> (String, String) {
        match &self.credential {
            Credential::Bearer(t) => ("authorization".into(), format!("Bearer {t}")),
            Credential::Header(h, v) => (h.to_ascii_lowercase(), v.clone()),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Req {
    pub method: http::Method,
    /// Path and query, already percent-encoded, relative to the target's base.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    /// Raw body text, for malformed-input probes.
    pub raw_body: Option<String>,
    /// `path` starts at the host's root, not at the target's base path (other API versions).
    pub from_root: bool,
}

impl Req {
    pub fn new(method: http::Method, path: impl Into<String>) -> Req {
        Req {
            method,
            path: path.into(),
            ..Req::default()
        }
    }
    pub fn get(path: impl Into<String>) -> Req {
        Req::new(http::Method::GET, path)
    }
    pub fn json(mut self, body: Value) -> Req {
        self.body = Some(body);
        self
    }
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Req {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }
}

/// One request and its answer, as a report shows it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub url: String,
    /// The request's path and query relative to the target's base: what to send to ask again.
    pub path: String,
    pub request_headers: Vec<(String, String)>,
    pub request_body: Option<String>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub elapsed: Duration,
    /// Who sent it: an identity's name, or none.
    pub caller: Option<String>,
}

impl Exchange {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
    /// The evidence form: bodies cut short.
    pub fn shown_body(&self) -> String {
        cut(&self.body)
    }
}

fn cut(s: &str) -> String {
    if s.len() <= SHOWN {
        return s.to_string();
    }
    let mut end = SHOWN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &s[..end], s.len())
}

#[derive(Debug)]
pub enum SendError {
    /// The request budget is spent; the scan winds down.
    Budget,
    Transport(String),
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    interval: Duration,
    next: Arc<Mutex<Instant>>,
    sent: Arc<AtomicUsize>,
    errors: Arc<AtomicUsize>,
    budget: usize,
}

impl Client {
    pub fn new(
        base: &str,
        rate: u32,
        budget: usize,
        timeout: Duration,
        insecure: bool,
    ) -> Result<Client, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .danger_accept_invalid_certs(insecure)
            .user_agent(concat!("warden-scan/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            interval: Duration::from_secs(1) / rate.max(1),
            next: Arc::new(Mutex::new(Instant::now())),
            sent: Arc::new(AtomicUsize::new(0)),
            errors: Arc::new(AtomicUsize::new(0)),
            budget,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }
    pub fn errors(&self) -> usize {
        self.errors.load(Ordering::Relaxed)
    }
    pub fn exhausted(&self) -> bool {
        self.sent() >= self.budget
    }

    /// Sends at the configured pace.
    pub async fn send(&self, req: &Req, who: Option<&Identity>) -> Result<Exchange, SendError> {
        let wait = {
            let mut next = self.next.lock().expect("pace lock");
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + self.interval;
            at - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        self.send_now(req, who).await
    }

    /// Sends without pacing: for bursts, which are the point of the rate-limit check.
    pub async fn send_now(&self, req: &Req, who: Option<&Identity>) -> Result<Exchange, SendError> {
        if self.sent.fetch_add(1, Ordering::Relaxed) >= self.budget {
            return Err(SendError::Budget);
        }
        let url = if req.from_root {
            format!("{}{}", origin(&self.base), req.path)
        } else {
            format!("{}{}", self.base, req.path)
        };
        let mut headers = req.headers.clone();
        if let Some(id) = who {
            headers.push(id.header());
        }
        let mut builder = self.http.request(req.method.clone(), &url);
        for (k, v) in &headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let body_text = match (&req.body, &req.raw_body) {
            (_, Some(raw)) => Some(raw.clone()),
            (Some(v), None) => Some(v.to_string()),
            (None, None) => None,
        };
        if let Some(b) = &body_text {
            if !headers.iter().any(|(k, _)| k == "content-type") {
                builder = builder.header("content-type", "application/json");
            }
            builder = builder.body(b.clone());
        }
        let started = Instant::now();
        let result = async {
            let mut resp = builder.send().await?;
            let status = resp.status().as_u16();
            let headers: Vec<(String, String)> = resp
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await? {
                body.extend_from_slice(&chunk);
                if body.len() >= MAX_BODY {
                    body.truncate(MAX_BODY);
                    break;
                }
            }
            Ok::<_, reqwest::Error>((status, headers, body))
        }
        .await;
        let (status, resp_headers, body) = match result {
            Ok(r) => r,
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                return Err(SendError::Transport(format!("{} {url}: {e}", req.method)));
            }
        };
        Ok(Exchange {
            method: req.method.to_string(),
            url,
            path: req.path.clone(),
            request_headers: headers
                .iter()
                .map(|(k, v)| (k.clone(), redact_header(k, v)))
                .collect(),
            request_body: body_text.map(|b| cut(&redact_body(&b))),
            status,
            headers: resp_headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            elapsed: started.elapsed(),
            caller: who.map(|w| w.name.clone()),
        })
    }
}

/// Credentials in evidence keep only enough to tell them apart.
fn redact_header(name: &str, value: &str) -> String {
    let n = name.to_ascii_lowercase();
    let secret = n == "authorization"
        || n == "cookie"
        || n.contains("key")
        || n.contains("token")
        || n.contains("secret");
    if !secret {
        return value.to_string();
    }
    let keep: String = value.chars().take(12).collect();
    if keep.len() < value.len() {
        format!("{keep}…")
    } else {
        value.to_string()
    }
}

/// Passwords the scanner was given never appear in a report.
fn redact_body(body: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<Value>(body) else {
        return body.to_string();
    };
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if k.to_ascii_lowercase().contains("pass") && x.is_string() {
                        *x = Value::String("[redacted]".into());
                    } else {
                        walk(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v.to_string()
}

/// `https://host:8443/api/v2` → `https://host:8443`.
pub fn origin(base: &str) -> &str {
    let after = base.find("://").map_or(0, |i| i + 3);
    base[after..].find('/').map_or(base, |i| &base[..after + i])
}
