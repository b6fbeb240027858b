//! `warden scan`: tests a running API, from its OpenAPI spec, for the OWASP API Security Top 10
//! (2023). It plays the users it is given against each other (A's objects replayed with B's
//! credentials), then probes each operation for missing authentication, data exposure, missing
//! limits, misconfiguration, undocumented endpoints and injection.
//!
//! A finding needs proof, not a hunch: B must get A's data (not merely a 200), a mass-assigned
//! field must stick, a time-based injection must be slow when asked and fast when not, twice. The
//! scanner is read-only (GET, HEAD, OPTIONS, plus the login it was told to use) unless allowed to
//! write, and it keeps to a request budget and rate.

pub mod checks;
pub mod client;
pub mod report;
pub mod spec;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use warden_openapi::lint::Severity;

use client::{Client, Credential, Exchange, Identity, Req, SendError};
use serde_json::Value;
use spec::{Api, Operation};

/// What the user hands the scanner for one identity.
#[derive(Debug, Clone)]
pub enum Given {
    Bearer(String),
    ApiKey(String),
    /// A password for the spec's login operation.
    Login(String),
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub given: Given,
    pub admin: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub spec: PathBuf,
    pub target: String,
    pub users: Vec<User>,
    pub api_key_header: Option<String>,
    /// Values for parameters, by name.
    pub seeds: Vec<(String, String)>,
    pub allow_writes: bool,
    pub max_requests: usize,
    /// Requests per second.
    pub rate: u32,
    pub timeout: Duration,
    pub insecure: bool,
    /// How many requests the rate-limit check fires at once.
    pub burst: usize,
    /// The pause time-based injection asks for.
    pub delay: Duration,
    /// Where the SSRF canary listens; the target must be able to reach it.
    pub canary: SocketAddr,
}

impl Config {
    pub fn new(spec: PathBuf, target: String) -> Config {
        Config {
            spec,
            target,
            users: Vec::new(),
            api_key_header: None,
            seeds: Vec::new(),
            allow_writes: false,
            max_requests: 5000,
            rate: 50,
            timeout: Duration::from_secs(10),
            insecure: false,
            burst: 100,
            delay: Duration::from_secs(2),
            canary: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// OWASP API Security Top 10 (2023) categories, plus injection (API8:2019, folded into
/// misconfiguration in 2023 but still the scanner's most serious find).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    Api1,
    Api2,
    Api3,
    Api4,
    Api5,
    Api7,
    Api8,
    Api9,
    Injection,
}

impl Category {
    pub fn label(self) -> &'static str {
        match self {
            Category::Api1 => "API1:2023 Broken Object Level Authorization",
            Category::Api2 => "API2:2023 Broken Authentication",
            Category::Api3 => "API3:2023 Broken Object Property Level Authorization",
            Category::Api4 => "API4:2023 Unrestricted Resource Consumption",
            Category::Api5 => "API5:2023 Broken Function Level Authorization",
            Category::Api7 => "API7:2023 Server Side Request Forgery",
            Category::Api8 => "API8:2023 Security Misconfiguration",
            Category::Api9 => "API9:2023 Improper Inventory Management",
            Category::Injection => "API8:2023 Security Misconfiguration (injection)",
        }
    }
    pub fn short(self) -> &'static str {
        match self {
            Category::Api1 => "API1",
            Category::Api2 => "API2",
            Category::Api3 => "API3",
            Category::Api4 => "API4",
            Category::Api5 => "API5",
            Category::Api7 => "API7",
            Category::Api8 => "API8",
            Category::Api9 => "API9",
            Category::Injection => "INJ",
        }
    }
}

/// One kind of flaw the scanner looks for.
#[derive(Debug)]
pub struct Check {
    pub id: &'static str,
    pub category: Category,
    pub severity: Severity,
    pub title: &'static str,
    pub fix: &'static str,
    /// Sends writes (POST, PUT, PATCH, DELETE): runs only with --allow-writes.
    pub writes: bool,
    pub cwe: u32,
}

macro_rules! check {
    ($id:literal, $cat:ident, $sev:ident, $writes:literal, $cwe:literal, $title:literal, $fix:literal) => {
        Check {
            id: $id,
            category: Category::$cat,
            severity: Severity::$sev,
            title: $title,
            fix: $fix,
            writes: $writes,
            cwe: $cwe,
        }
    };
}

pub static CHECKS: &[Check] = &[
    check!("bola", Api1, High, false, 639, "Another user's object is readable",
        "Check on every request that the object belongs to the caller (or a role that may see it); never trust the id alone"),
    check!("no-auth", Api2, High, false, 306, "Operation answers without credentials",
        "Require authentication on every operation the spec secures"),
    check!("invalid-credential", Api2, High, false, 287, "Operation accepts an invalid credential",
        "Verify every credential (signature, expiry, revocation) before answering"),
    check!("jwt-alg-none", Api2, Critical, false, 347, "Unsigned JWT (alg: none) accepted",
        "Pin the accepted algorithms when verifying tokens; refuse `none`"),
    check!("jwt-unverified", Api2, Critical, false, 347, "JWT signed with another key accepted",
        "Verify token signatures against the issuer's key"),
    check!("jwt-weak-secret", Api2, Critical, false, 521, "JWT signed with a guessable secret",
        "Sign HS256 tokens with at least 256 random bits, or use an asymmetric algorithm"),
    check!("jwt-expired", Api2, High, false, 613, "Expired JWT accepted",
        "Check `exp` (and `nbf`) on every token"),
    check!("user-enumeration", Api2, Medium, true, 204, "Login tells unknown users from wrong passwords",
        "Answer every failed login with the same status, body and timing"),
    check!("secret-in-response", Api3, High, false, 200, "Response carries a credential",
        "Never return passwords, hashes, keys or tokens; declare response schemas and filter to them"),
    check!("personal-data-in-response", Api3, Medium, false, 359, "Response carries unmasked personal data",
        "Return only what the caller needs; mask card and identity numbers"),
    check!("undeclared-response-field", Api3, Low, false, 213, "Response carries fields the spec does not declare",
        "Serialise responses from the declared schema, not from the storage model"),
    check!("mass-assignment", Api3, High, true, 915, "Undeclared or read-only field accepted and stored",
        "Bind request bodies to an allow-list of writable fields"),
    check!("no-rate-limit", Api4, Medium, false, 770, "No rate limit: a burst is answered in full",
        "Limit requests per caller and answer 429 with Retry-After"),
    check!("unbounded-page-size", Api4, Medium, false, 770, "Page size accepted far beyond reason",
        "Cap page-size parameters (and declare the maximum in the spec)"),
    check!("redos", Api4, High, false, 1333, "Response time grows super-linearly with input length",
        "Bound input lengths and use a linear-time regex engine"),
    check!("admin-operation", Api5, High, false, 285, "Ordinary user reaches an admin operation",
        "Check the caller's role on every administrative operation"),
    check!("method-switch", Api5, Medium, true, 285, "Undeclared method answered",
        "Refuse methods the API does not offer (405) on every path"),
    check!("ssrf", Api7, High, false, 918, "Server fetches a URL the caller supplies",
        "Fetch only from an allow-list of hosts; refuse loopback, private and metadata addresses"),
    check!("cors-credentials", Api8, High, false, 942, "CORS trusts any origin with credentials",
        "Allow only known origins; never reflect Origin with Access-Control-Allow-Credentials"),
    check!("security-headers", Api8, Low, false, 693, "Security headers missing",
        "Send X-Content-Type-Options: nosniff and Cache-Control: no-store (and HSTS over HTTPS)"),
    check!("verbose-error", Api8, Medium, false, 209, "Error reveals internals (stack trace, SQL, paths)",
        "Answer errors with a generic problem document; log the details server-side"),
    check!("plain-http", Api8, Medium, false, 319, "API served over plain HTTP",
        "Serve only over TLS"),
    check!("trace-enabled", Api8, Low, false, 693, "TRACE echoes requests",
        "Disable the TRACE method"),
    check!("old-version", Api9, Medium, false, 1059, "An older API version still answers",
        "Retire old versions, or protect them like the current one"),
    check!("undocumented-endpoint", Api9, Medium, false, 1059, "Undocumented endpoint answers",
        "Document every endpoint, or remove it"),
    check!("missing-operation", Api9, Info, false, 1059, "Operation in the spec does not exist",
        "Keep the spec and the implementation in step"),
    check!("sql-injection", Injection, Critical, false, 89, "SQL injection",
        "Use parameterised queries"),
    check!("nosql-injection", Injection, Critical, false, 943, "NoSQL operator injection",
        "Accept only scalars where scalars are meant; never pass request objects to a query"),
    check!("command-injection", Injection, Critical, false, 78, "OS command injection",
        "Never build shell commands from input; pass arguments as a list"),
];

pub fn check(id: &str) -> &'static Check {
    CHECKS
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check named {id}"))
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub check: &'static Check,
    /// `GET /users/{id}`, or none for findings about the whole API.
    pub operation: Option<String>,
    pub message: String,
    pub evidence: Vec<Exchange>,
    /// The spec file and line of the operation.
    pub file: PathBuf,
    pub line: Option<usize>,
}

#[derive(Debug)]
pub struct Report {
    pub target: String,
    pub spec: PathBuf,
    pub findings: Vec<Finding>,
    pub requests: usize,
    pub duration: Duration,
    /// What the scan could not do, and why.
    pub notes: Vec<String>,
    pub checks_run: Vec<&'static str>,
}

/// Where a running scan tells its progress (the CLI draws a bar).
pub trait Progress: Send + Sync {
    fn begin(&self, steps: u64);
    fn step(&self, name: &str);
    fn end(&self);
}

pub struct Silent;
impl Progress for Silent {
    fn begin(&self, _: u64) {}
    fn step(&self, _: &str) {}
    fn end(&self) {}
}

/// A successful answer observed while crawling: which operation, who asked, what came back.
#[derive(Debug, Clone)]
pub struct Seen {
    pub op: usize,
    pub exchange: Exchange,
}

/// The scan's shared state, passed to each check.
pub struct Scan {
    pub config: Config,
    pub api: Api,
    pub client: Client,
    pub users: Vec<Identity>,
    pub seen: Vec<Seen>,
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
    /// Ids the scan learned, by parameter name and by path template.
    pub ids: BTreeMap<String, BTreeSet<String>>,
    /// What an unknown path answers: (status, body with the probe's token removed).
    pub soft404: Option<(u16, String)>,
    /// Requests still rate limited after waiting: the scan saw less than it asked for.
    pub limited: usize,
    /// Objects the scanner created itself: (the creating operation, the new object's id).
    pub created: Vec<(usize, String)>,
}

impl Scan {
    /// Ordinary users: the ones the object-level and function-level checks play.
    pub fn ordinary(&self) -> Vec<&Identity> {
        self.users.iter().filter(|u| !u.admin).collect()
    }

    pub fn op(&self, i: usize) -> &Operation {
        &self.api.ops[i]
    }

    pub fn report(
        &mut self,
        id: &str,
        op: Option<&Operation>,
        message: String,
        evidence: Vec<Exchange>,
    ) {
        let check = check(id);
        let operation = op.map(Operation::label);
        if self
            .findings
            .iter()
            .any(|f| f.check.id == id && f.operation == operation && f.message == message)
        {
            return;
        }
        let (file, line) = match op {
            Some(o) => self.api.location(o),
            None => (self.api.file.clone(), None),
        };
        self.findings.push(Finding {
            check,
            operation,
            message,
            evidence,
            file,
            line,
        });
    }

    pub fn has(&self, id: &str, op: &Operation) -> bool {
        let label = op.label();
        self.findings
            .iter()
            .any(|f| f.check.id == id && f.operation.as_deref() == Some(label.as_str()))
    }

    /// Sends, recording transport failures as notes instead of failing the scan.
    /// A 429 is waited out (its Retry-After, at most 5 s) and the request sent once more: the
    /// scanner must not mistake a rate limit for the API's answer.
    pub async fn send(&mut self, req: &Req, who: Option<&Identity>) -> Option<Exchange> {
        let mut result = self.client.send(req, who).await;
        if let Ok(x) = &result {
            if x.status == 429 {
                let wait = x
                    .header("retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(1)
                    .min(5);
                tokio::time::sleep(Duration::from_secs(wait)).await;
                result = self.client.send(req, who).await;
                if result.as_ref().is_ok_and(|x| x.status == 429) {
                    self.limited += 1;
                }
            }
        }
        match result {
            Ok(x) => Some(x),
            Err(SendError::Budget) => None,
            Err(SendError::Transport(e)) => {
                if self.notes.len() < 50 {
                    self.notes.push(format!("no answer: {e}"));
                }
                None
            }
        }
    }

    /// Whether an answer is the API's generic "no such path", not a real operation.
    pub fn is_soft404(&self, x: &Exchange) -> bool {
        if x.status == 404 || x.status == 405 {
            return true;
        }
        self.soft404
            .as_ref()
            .is_some_and(|(s, b)| *s == x.status && *b == normalise_probe(&x.body))
    }

    pub fn learn_ids(&mut self, op_path: &str, value: &Value) {
        let mut found = Vec::new();
        collect_ids(value, &mut found, 0);
        for (key, v) in found {
            if key == "id" {
                // An `id` belongs to the collection the answer came from: /orders, /orders/{id}.
                let collection = collection_of(op_path);
                self.ids
                    .entry(format!("{collection}#id"))
                    .or_default()
                    .insert(v.clone());
            }
            let entry = self.ids.entry(key).or_default();
            if entry.len() < 20 {
                entry.insert(v);
            }
        }
    }
}

/// `/orders/{id}` and `/orders` → `/orders`.
pub fn collection_of(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some((head, last)) if last.starts_with('{') => head.to_string(),
        _ => trimmed.to_string(),
    }
}

fn collect_ids(v: &Value, out: &mut Vec<(String, String)>, depth: usize) {
    if depth > 6 || out.len() > 200 {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let lk = k.to_ascii_lowercase();
                let id_like = lk == "id"
                    || lk.ends_with("_id")
                    || (k.ends_with("Id") && k.len() > 2)
                    || lk == "uuid";
                match x {
                    Value::Number(n) if id_like => out.push((k.clone(), n.to_string())),
                    Value::String(s) if id_like && s.len() <= 64 => {
                        out.push((k.clone(), s.clone()))
                    }
                    _ => collect_ids(x, out, depth + 1),
                }
            }
        }
        Value::Array(a) => a
            .iter()
            .take(50)
            .for_each(|x| collect_ids(x, out, depth + 1)),
        _ => {}
    }
}

/// The probe token the soft-404 request carried, removed so that answers can be compared.
pub const PROBE: &str = "wardenscan-no-such-path-7f3a";
pub fn normalise_probe(body: &str) -> String {
    comparable(&body.replace(PROBE, ""))
}

/// A body with what changes on every answer taken out (request ids, timestamps, nonces), so that
/// two answers can be compared for what they say.
pub fn comparable(body: &str) -> String {
    fn volatile_key(k: &str) -> bool {
        let k = k.to_ascii_lowercase();
        [
            "request_id",
            "requestid",
            "trace",
            "instance",
            "timestamp",
            "time",
            "date",
            "nonce",
            "correlation",
            "span",
        ]
        .iter()
        .any(|w| k.contains(w))
    }
    fn random_looking(s: &str) -> bool {
        let digits = s.bytes().filter(u8::is_ascii_digit).count();
        s.len() >= 16
            && digits >= 4
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|k, _| !volatile_key(k));
                m.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            Value::String(s) if random_looking(s) => *s = String::new(),
            _ => {}
        }
    }
    match serde_json::from_str::<Value>(body) {
        Ok(mut v) => {
            walk(&mut v);
            v.to_string()
        }
        Err(_) => body
            .split_inclusive(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .map(|w| {
                let (word, sep) = w.split_at(
                    w.len()
                        - w.chars().last().map_or(0, |c| {
                            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                                0
                            } else {
                                c.len_utf8()
                            }
                        }),
                );
                if random_looking(word) {
                    sep.to_string()
                } else {
                    w.to_string()
                }
            })
            .collect(),
    }
}

/// Runs the whole scan.
pub async fn run(config: Config, progress: &dyn Progress) -> Result<Report, String> {
    let started = Instant::now();
    let spec_file = fetch_spec(&config).await?;
    let api = Api::load(&spec_file).map_err(|e| e.to_string())?;
    let target = config.target.trim_end_matches('/').to_string();
    if !(target.starts_with("http://") || target.starts_with("https://")) {
        return Err(format!(
            "--target {target}: give an http:// or https:// URL"
        ));
    }
    // The spec's server path (/api/v2) applies unless the target already names a path.
    let has_path = target.splitn(4, '/').nth(3).is_some_and(|p| !p.is_empty());
    let base = if has_path {
        target.clone()
    } else {
        format!("{target}{}", api.base_path)
    };
    let client = Client::new(
        &base,
        config.rate,
        config.max_requests,
        config.timeout,
        config.insecure,
    )?;
    let mut scan = Scan {
        api,
        client,
        users: Vec::new(),
        seen: Vec::new(),
        findings: Vec::new(),
        notes: Vec::new(),
        ids: BTreeMap::new(),
        soft404: None,
        created: Vec::new(),
        limited: 0,
        config,
    };
    for (k, v) in scan.config.seeds.clone() {
        scan.ids.entry(k).or_default().insert(v);
    }
    let stages = checks::stages(scan.config.allow_writes);
    progress.begin(stages.len() as u64 + 1);
    progress.step("signing in");
    checks::crawl::sign_in(&mut scan).await?;
    let mut run = Vec::new();
    for stage in stages {
        progress.step(stage.name);
        if scan.client.exhausted() {
            scan.notes.push(format!(
                "request budget ({}) spent before `{}`",
                scan.config.max_requests, stage.name
            ));
            continue;
        }
        (stage.run)(&mut scan).await;
        for id in stage.checks {
            if !run.contains(id) {
                run.push(*id);
            }
        }
    }
    progress.end();
    if scan.limited > 0 {
        scan.notes.push(format!(
            "{} request(s) were still rate limited (429) after waiting: lower --rate for a complete scan",
            scan.limited
        ));
    }
    if scan.client.errors() > 0 {
        scan.notes
            .push(format!("{} request(s) got no answer", scan.client.errors()));
    }
    let mut findings = scan.findings;
    if spec_file != scan.config.spec {
        // Fetched from a URL: findings point at the URL, not at the temporary copy.
        let absolute = std::path::absolute(&spec_file).unwrap_or(spec_file.clone());
        for f in &mut findings {
            if f.file == spec_file || f.file == absolute {
                f.file = scan.config.spec.clone();
            }
        }
        let _ = std::fs::remove_file(&spec_file);
    }
    findings.sort_by(|a, b| {
        b.check
            .severity
            .cmp(&a.check.severity)
            .then(a.check.id.cmp(b.check.id))
    });
    Ok(Report {
        target: base,
        spec: scan.config.spec.clone(),
        findings,
        requests: scan.client.sent(),
        duration: started.elapsed(),
        notes: scan.notes,
        checks_run: run,
    })
}

/// A spec given as a URL is downloaded to a temporary file first (its `$ref`s into other files
/// cannot be followed from there; a single-document spec is what APIs usually publish).
async fn fetch_spec(config: &Config) -> Result<PathBuf, String> {
    let text = config.spec.to_string_lossy();
    if !(text.starts_with("http://") || text.starts_with("https://")) {
        return Ok(config.spec.clone());
    }
    let url = text.to_string();
    let client = Client::new(&url, config.rate, 1, config.timeout, config.insecure)?;
    let x = client
        .send(&Req::get(""), None)
        .await
        .map_err(|e| format!("--spec {url}: {e:?}"))?;
    if !x.ok() {
        return Err(format!("--spec {url}: answered {}", x.status));
    }
    let ext = if x.body.trim_start().starts_with('{') {
        "json"
    } else {
        "yaml"
    };
    let file = std::env::temp_dir().join(format!("warden-scan-spec-{}.{ext}", std::process::id()));
    std::fs::write(&file, &x.body).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok(file)
}

/// Builds an identity's credential from what the user gave (a login is performed by the crawl).
pub(crate) fn credential_of(given: &Given, api_key_header: &str) -> Option<Credential> {
    match given {
        Given::Bearer(t) => Some(Credential::Bearer(t.clone())),
        Given::ApiKey(k) => Some(Credential::Header(api_key_header.to_string(), k.clone())),
        Given::Login(_) => None,
    }
}
