//! The YAML configuration: its types, its defaults, and its validation.
//!
//! Everything that can be wrong with a config is found here, at load, and reported with the file, the
//! line and the field, so that `warden check-config`, startup and hot reload all refuse a bad file the
//! same way. Checks that need only one value (a CIDR, a URL, a duration) run while deserializing, so the
//! YAML parser attaches the exact line; checks that relate two places (a route naming an upstream) run
//! afterwards and locate the offending field with [`locate`].
//!
//! Secure by default: every protection that needs no per-API knowledge has a safe default here, and a
//! config must say so explicitly to weaken it (`plain_http: true`, `admin.allow_remote: true`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::uri::Scheme;
use ipnet::IpNet;
use serde::Deserialize;

mod attack;
mod audit;
mod auth;
mod openapi;
mod protection;
mod traffic;
pub use attack::*;
pub use audit::*;
pub use auth::*;
pub use openapi::*;
pub use protection::*;
pub use traffic::*;

/// A config that parsed and passed validation. Relative paths are already resolved against the
/// config file's folder.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub admin: Admin,
    /// Where the embedded store lives (keys, audit log, inventory). The CLI's `--data-dir` wins.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub limits: Limits,
    /// Worker threads handling connections; default: one per CPU core. Fixed at start.
    #[serde(default)]
    pub workers: Option<usize>,
    /// Peers whose `X-Forwarded-For` we believe (a load balancer in front of Warden). Empty by
    /// default: the socket peer is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<IpNet>,
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    pub routes: Vec<RouteConfig>,
    /// Who may call: JWT issuers, signing partners, consumers, lockout, login operations.
    #[serde(default)]
    pub auth: Auth,
    /// Injection, traversal, SSRF and other attacks in requests. On and blocking by default.
    #[serde(default)]
    pub attack_detection: AttackDetection,
    /// Personal and secret data in responses: found, masked, reported. On by default.
    #[serde(default)]
    pub data_protection: DataProtection,
    /// Security headers on every response. On by default.
    #[serde(default)]
    pub security_headers: SecurityHeaders,
    /// Cross-origin policy; without it the upstream's CORS headers pass, minus unsafe ones.
    #[serde(default)]
    pub cors: Option<Cors>,
    /// Upstream 5xx answers that leak internals become a generic problem. On by default.
    #[serde(default)]
    pub error_scrubbing: ErrorScrubbing,
    /// Rate limits, quotas and per-consumer concurrency; shared through Redis when configured.
    #[serde(default)]
    pub traffic: Traffic,
    /// Every call and admin event, chained and signed, in the data folder's store. On by default.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Detectors that raise alerts (auth failure bursts, object probing, path sweeps, large
    /// responses) and where alerts go. The detectors are on by default.
    #[serde(default)]
    pub alerts: AlertsConfig,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, try_from = "RawListener")]
pub struct Listener {
    pub address: SocketAddr,
    pub tls: Option<TlsConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    address: SocketAddr,
    #[serde(default)]
    tls: Option<TlsConfig>,
    #[serde(default)]
    plain_http: bool,
}

impl TryFrom<RawListener> for Listener {
    type Error = String;
    fn try_from(raw: RawListener) -> Result<Self, String> {
        match (&raw.tls, raw.plain_http) {
            (None, false) => Err(format!(
                "listener {} has no `tls` section; add `tls: {{cert: FILE, key: FILE}}`, or set \
                 `plain_http: true` to accept unencrypted HTTP on purpose",
                raw.address
            )),
            (Some(_), true) => Err(format!(
                "listener {} sets both `tls` and `plain_http: true`; keep one",
                raw.address
            )),
            _ => Ok(Listener {
                address: raw.address,
                tls: raw.tls,
            }),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Lowest TLS version offered; ALPN offers h2 and http/1.1 either way.
    #[serde(default)]
    pub min_version: TlsVersion,
}

/// TLS 1.0 and 1.1 are not offered at all: the lowest a config can ask for is 1.2.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum TlsVersion {
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, try_from = "RawAdmin")]
pub struct Admin {
    /// `None` turns the admin listener off.
    pub address: Option<SocketAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    address: Option<SocketAddr>,
    #[serde(default)]
    allow_remote: bool,
}

impl TryFrom<RawAdmin> for Admin {
    type Error = String;
    fn try_from(raw: RawAdmin) -> Result<Self, String> {
        if let Some(addr) = raw.address {
            if !addr.ip().is_loopback() && !raw.allow_remote {
                return Err(format!(
                    "admin address {addr} is not a loopback address; the admin API exposes \
                     metrics and health to anyone who reaches it. Use 127.0.0.1, or set \
                     `allow_remote: true` if a firewall protects it"
                ));
            }
        }
        Ok(Admin {
            address: raw.address,
        })
    }
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            address: Some(SocketAddr::from(([127, 0, 0, 1], 9901))),
        }
    }
}

/// Limits that protect the gateway itself. The defaults are deliberately tight for an API gateway:
/// JSON APIs rarely need more, and a route can raise `max_body_bytes` where it must.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// A client must send a complete request head within this time (slowloris).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers) accepted; larger gets 431.
    pub max_header_bytes: ByteSize,
    /// Largest request body accepted; larger gets 413, even when streamed without a length.
    pub max_body_bytes: ByteSize,
    /// Open client connections; past this, new connections get one 503 and are closed.
    pub max_connections: usize,
    /// Requests being handled at once across all connections; past this, 503.
    pub max_requests_in_flight: usize,
    /// A connection with no request in flight and no bytes moving for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// On SIGTERM, in-flight requests get this long to finish before connections are cut.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: ByteSize(16 * 1024),
            max_body_bytes: ByteSize(10 * 1024 * 1024),
            max_connections: 10_000,
            max_requests_in_flight: 10_000,
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// One or more `http://host:port` base URLs, used in turn (round robin).
    pub targets: Vec<Target>,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time allowed for the upstream's response head once the request is sent.
    #[serde(default = "default_read_timeout", with = "humantime_serde")]
    pub read_timeout: Duration,
    /// Idle keep-alive connections kept per target.
    #[serde(default = "default_pool_max_idle")]
    pub pool_max_idle_per_target: usize,
    #[serde(default = "default_pool_idle_timeout", with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// Calls in flight to this upstream at once (all targets, all routes); past a priority's share
    /// of it, calls of that priority are shed with 503.
    #[serde(default)]
    pub max_concurrent: Option<usize>,
    /// The share of `max_concurrent` low and normal priority calls may fill.
    #[serde(default)]
    pub priority_shares: Shares,
    /// Per target: stop calling a failing target for a while. On by default.
    #[serde(default)]
    pub circuit_breaker: BreakerConfig,
    /// Retries to another target: on connection failure (any call: it never left; one retry by
    /// default) and on listed 5xx answers (idempotent, bodiless calls only).
    #[serde(default)]
    pub retries: RetryConfig,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(3)
}
fn default_read_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_pool_max_idle() -> usize {
    256
}
fn default_pool_idle_timeout() -> Duration {
    Duration::from_secs(90)
}

/// An upstream base URL: scheme, authority and an optional base path, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Target {
    pub authority: http::uri::Authority,
    /// Prefix put in front of the forwarded path, without a trailing slash ("" for none).
    pub base_path: String,
}

impl TryFrom<String> for Target {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let uri: http::Uri = s.parse().map_err(|e| format!("`{s}` is not a URL: {e}"))?;
        match uri.scheme() {
            Some(scheme) if *scheme == Scheme::HTTP => {}
            Some(scheme) if *scheme == Scheme::HTTPS => {
                return Err(format!(
                    "`{s}`: https upstreams are not supported yet; terminate TLS to the upstream \
                     with a sidecar, or use http:// on a private network"
                ))
            }
            _ => return Err(format!("`{s}` must start with http://")),
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("`{s}` has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!(
                "`{s}`: credentials in upstream URLs are not allowed"
            ));
        }
        if uri.query().is_some() {
            return Err(format!("`{s}`: an upstream URL cannot carry a query"));
        }
        let base_path = uri.path().trim_end_matches('/').to_string();
        Ok(Target {
            authority,
            base_path,
        })
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name used in metrics, logs and the audit trail; defaults to `route-N`.
    #[serde(default)]
    pub name: Option<String>,
    /// Exact host (`api.example.com`) or one-level wildcard (`*.example.com`); any host when absent.
    #[serde(default)]
    pub host: Option<HostPattern>,
    /// Matched on whole segments: `/v1` matches `/v1` and `/v1/x`, never `/v10`.
    #[serde(default = "default_prefix")]
    pub path_prefix: PathPrefix,
    pub upstream: String,
    /// Remove `path_prefix` before forwarding (`/v1/users` → `/users`).
    #[serde(default)]
    pub strip_prefix: bool,
    #[serde(default)]
    pub ip_rules: IpRulesConfig,
    /// Overrides `limits.max_body_bytes` for this route.
    #[serde(default)]
    pub max_body_bytes: Option<ByteSize>,
    /// Overrides the upstream's `read_timeout` for this route.
    #[serde(default, with = "humantime_serde")]
    pub read_timeout: Option<Duration>,
    /// Overrides the upstream's `connect_timeout` for this route.
    #[serde(default, with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    /// Responses on this route carry data that must not be cached (`Cache-Control: no-store`).
    #[serde(default)]
    pub sensitive: bool,
    /// Credential types accepted here (`[api_key, jwt, signature, issued_token]`), or `none` for a
    /// public route. Left out: any configured type, required once one is configured.
    #[serde(default)]
    pub auth: RouteAuth,
    /// Set to `false` to pass this route's responses without personal-data protection.
    #[serde(default = "yes")]
    pub data_protection: bool,
    /// Changes to `attack_detection` for this route (mode, paranoia, threshold).
    #[serde(default)]
    pub attack_detection: RouteAttackDetection,
    /// Rank of this route's calls when its upstream is saturated: `low`, `normal` or `high`.
    #[serde(default)]
    pub priority: Priority,
    /// The API's OpenAPI contract, enforced on this route: undeclared operations refused,
    /// function- and object-level authorization, request validation, response filtering.
    #[serde(default)]
    pub openapi: Option<RouteOpenApi>,
}

fn yes() -> bool {
    true
}

fn default_prefix() -> PathPrefix {
    PathPrefix("/".into())
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IpRulesConfig {
    #[serde(default)]
    pub allow: Vec<IpNet>,
    #[serde(default)]
    pub deny: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HostPattern(pub String);

impl TryFrom<String> for HostPattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        let bare = lower.strip_prefix("*.").unwrap_or(&lower);
        let ok = !bare.is_empty()
            && bare.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !ok {
            return Err(format!(
                "host `{s}` must be a host name such as `api.example.com` or `*.example.com` \
                 (no port, no scheme)"
            ));
        }
        Ok(HostPattern(lower))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PathPrefix(pub String);

impl TryFrom<String> for PathPrefix {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if !s.starts_with('/') {
            return Err(format!("path_prefix `{s}` must start with `/`"));
        }
        if s.split('/').any(|seg| seg == "." || seg == "..") || s.contains(['?', '#', '%']) {
            return Err(format!(
                "path_prefix `{s}` must be a plain path without `..`, `%`, `?` or `#`"
            ));
        }
        let trimmed = s.trim_end_matches('/');
        Ok(PathPrefix(if trimmed.is_empty() {
            "/".into()
        } else {
            trimmed.into()
        }))
    }
}

/// A size in bytes, written as a number or with a unit: `512`, `64KiB`, `10MiB`, `1GiB`, `10MB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "ByteSizeRepr")]
pub struct ByteSize(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum ByteSizeRepr {
    Number(u64),
    Text(String),
}

impl TryFrom<ByteSizeRepr> for ByteSize {
    type Error = String;
    fn try_from(r: ByteSizeRepr) -> Result<Self, String> {
        match r {
            ByteSizeRepr::Number(n) => Ok(ByteSize(n)),
            ByteSizeRepr::Text(s) => s.parse(),
        }
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("size `{s}` must start with a number"))?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" => 1000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            other => {
                return Err(format!(
                    "size unit `{other}` is unknown; use B, KiB, MiB, GiB, KB, MB or GB"
                ))
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("size `{s}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.0)
    }
}

/// A config problem, pointing at the file, line and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted path of the field, where known (`routes[1].upstream`).
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            column: None,
            field: None,
            message: format!("cannot read the config file: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates config text; `path` names the file in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let err_at = |field: Option<String>, message: String| {
            // A field inside a flow mapping (`{name: a, rate: 1/s}`) has no line of its own: point
            // at the nearest enclosing node that has one.
            let line = field.as_deref().and_then(|f| {
                let mut f = f;
                loop {
                    if let Some(line) = locate(text, f) {
                        return Some(line);
                    }
                    f = &f[..f.rfind(['.', '['])?];
                }
            });
            ConfigError {
                file: path.to_path_buf(),
                line,
                column: None,
                field,
                message,
            }
        };
        let mut cfg: Config = serde_yaml::from_str(text).map_err(|e| {
            let loc = e.location();
            ConfigError {
                file: path.to_path_buf(),
                line: loc.as_ref().map(|l| l.line()),
                column: loc.as_ref().map(|l| l.column()),
                field: None,
                message: strip_location(&e.to_string()),
            }
        })?;
        // Paths first: validation reads key files, relative to the config's folder.
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve_paths(base);
        if let Some((field, message)) = cfg.validate() {
            return Err(err_at(Some(field), message));
        }
        // Specs last: they are the slowest part of a load, and only worth reading in a config
        // that is otherwise sound.
        let mut cache = Vec::new();
        for (i, r) in cfg.routes.iter_mut().enumerate() {
            if let Some(o) = &mut r.openapi {
                if let Err(e) = o.compile(&format!("routes[{i}].openapi"), &mut cache) {
                    return Err(match e {
                        // The error is in the spec: point at its file and line, and say which
                        // route of which config brought it in.
                        CompileError::Spec(field, e) => ConfigError {
                            file: e.file.clone(),
                            line: e.line,
                            column: None,
                            field: (!e.pointer.is_empty()).then(|| format!("at {}", e.pointer)),
                            message: format!(
                                "{} (the spec of {field} in {})",
                                e.message,
                                path.display()
                            ),
                        },
                        CompileError::Field(field, message) => err_at(Some(field), message),
                    });
                }
            }
        }
        Ok(cfg)
    }

    /// Cross-field checks; returns the first problem as (field path, message).
    fn validate(&self) -> Option<(String, String)> {
        if self.listeners.is_empty() {
            return Some(("listeners".into(), "at least one listener is needed".into()));
        }
        for (i, l) in self.listeners.iter().enumerate() {
            if self.listeners[..i]
                .iter()
                .any(|o| o.address == l.address && l.address.port() != 0)
            {
                return Some((
                    format!("listeners[{i}].address"),
                    format!("{} is listed twice", l.address),
                ));
            }
        }
        if self.workers == Some(0) {
            return Some((
                "workers".into(),
                "must be at least 1 (or left out: one per CPU core)".into(),
            ));
        }
        if self.limits.max_header_bytes.0 < 1024 {
            return Some((
                "limits.max_header_bytes".into(),
                "must be at least 1KiB; browsers and proxies send more than that".into(),
            ));
        }
        if self.limits.max_connections == 0 || self.limits.max_requests_in_flight == 0 {
            return Some((
                "limits".into(),
                "max_connections and max_requests_in_flight must be > 0".into(),
            ));
        }
        if self.limits.header_read_timeout.is_zero() || self.limits.idle_timeout.is_zero() {
            return Some(("limits".into(), "timeouts must be greater than zero".into()));
        }
        for (name, up) in &self.upstreams {
            if up.targets.is_empty() {
                return Some((
                    format!("upstreams.{name}.targets"),
                    "needs at least one target URL".into(),
                ));
            }
            if up.max_concurrent == Some(0) {
                return Some((
                    format!("upstreams.{name}.max_concurrent"),
                    "must be at least 1 (or left out: no cap)".into(),
                ));
            }
            let shares = up.priority_shares;
            if shares.low == 0 || shares.low > shares.normal || shares.normal > 100 {
                return Some((
                    format!("upstreams.{name}.priority_shares"),
                    "needs 0 < low <= normal <= 100 (percent)".into(),
                ));
            }
            if up.retries.statuses.iter().any(|s| !(500..600).contains(s)) {
                return Some((
                    format!("upstreams.{name}.retries.statuses"),
                    "only 5xx answers can be retried".into(),
                ));
            }
            if up.connect_timeout.is_zero() || up.read_timeout.is_zero() {
                return Some((
                    format!("upstreams.{name}"),
                    "timeouts must be greater than zero".into(),
                ));
            }
        }
        if self.routes.is_empty() {
            return Some(("routes".into(), "at least one route is needed".into()));
        }
        if let Some(problem) = self.data_protection.validate() {
            return Some(problem);
        }
        if let Some(problem) = self.attack_detection.validate() {
            return Some(problem);
        }
        for (i, r) in self.routes.iter().enumerate() {
            if let Some(problem) = r
                .attack_detection
                .validate(&format!("routes[{i}].attack_detection"))
            {
                return Some(problem);
            }
        }
        if let Some(problem) = self.auth.validate() {
            return Some(problem);
        }
        let names: Vec<String> = (0..self.routes.len()).map(|i| self.route_name(i)).collect();
        if let Some(problem) = self.traffic.validate(&names) {
            return Some(problem);
        }
        if let Some(problem) = self.audit.validate() {
            return Some(problem);
        }
        for (i, r) in self.routes.iter().enumerate() {
            if let RouteAuth::Methods(methods) = &r.auth {
                use warden_policy::auth::Method;
                for m in methods {
                    let missing = match m {
                        Method::ApiKey => None,
                        Method::Jwt if self.auth.jwt.is_empty() => Some("auth.jwt lists no issuer"),
                        Method::Signature if self.auth.signatures.is_none() => {
                            Some("auth.signatures is not configured")
                        }
                        Method::IssuedToken if !self.auth.issued_tokens.enabled => {
                            Some("auth.issued_tokens is not enabled")
                        }
                        _ => None,
                    };
                    if let Some(why) = missing {
                        return Some((
                            format!("routes[{i}].auth"),
                            format!("accepts `{}` but {why}", m.id()),
                        ));
                    }
                }
            }
        }
        let route_lists = self
            .data_protection
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("data_protection.rules[{i}].routes"), &r.routes))
            .chain(
                self.attack_detection
                    .exclusions
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        (
                            format!("attack_detection.exclusions[{i}].routes"),
                            &e.routes,
                        )
                    }),
            );
        for (field, routes) in route_lists {
            if let Some(r) = routes
                .iter()
                .find(|r| !(0..self.routes.len()).any(|j| &self.route_name(j) == *r))
            {
                return Some((field, format!("no route is named `{r}`")));
            }
        }
        let mut seen = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            if !self.upstreams.contains_key(&r.upstream) {
                let known: Vec<_> = self.upstreams.keys().map(String::as_str).collect();
                return Some((
                    format!("routes[{i}].upstream"),
                    format!(
                        "unknown upstream `{}`; declared upstreams: {}",
                        r.upstream,
                        known.join(", ")
                    ),
                ));
            }
            let key = (r.host.clone(), r.path_prefix.clone());
            if seen.contains(&key) {
                return Some((
                    format!("routes[{i}].path_prefix"),
                    "another route already has this host and path_prefix; the second could never match"
                        .into(),
                ));
            }
            seen.push(key);
            let name = self.route_name(i);
            if self.routes[..i]
                .iter()
                .enumerate()
                .any(|(j, _)| self.route_name(j) == name)
            {
                return Some((
                    format!("routes[{i}].name"),
                    format!("route name `{name}` is used twice"),
                ));
            }
        }
        None
    }

    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    pub fn route_name(&self, index: usize) -> String {
        self.routes[index]
            .name
            .clone()
            .unwrap_or_else(|| format!("route-{index}"))
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for l in &mut self.listeners {
            if let Some(tls) = &mut l.tls {
                fix(&mut tls.cert);
                fix(&mut tls.key);
            }
        }
        if let Some(d) = &mut self.data_dir {
            fix(d);
        }
        self.data_protection.resolve_paths(base);
        self.auth.resolve_paths(base);
        for r in &mut self.routes {
            if let Some(o) = &mut r.openapi {
                fix(&mut o.spec);
            }
        }
    }
}

/// yaml_serde appends ", line: N, column: M" (or " at line N column M") to its messages; we print the
/// location ourselves in `file:line:col` form, so drop it from the message.
fn strip_location(msg: &str) -> String {
    for marker in [" at line ", ", line: "] {
        if let Some(i) = msg.rfind(marker) {
            return msg[..i].to_string();
        }
    }
    msg.to_string()
}

pub use warden_policy::yaml_lines::locate;

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
listeners:
  - address: 127.0.0.1:0
    plain_http: true
upstreams:
  api:
    targets: [\"http://127.0.0.1:9000/base/\"]
routes:
  - name: api
    path_prefix: /v1/
    upstream: api
    ip_rules:
      deny: [10.0.0.0/8]
";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/warden/test.yaml"))
    }

    #[test]
    fn good_config_parses_with_secure_defaults() {
        let cfg = parse(GOOD).unwrap();
        assert_eq!(cfg.routes[0].path_prefix.0, "/v1");
        assert_eq!(cfg.upstreams["api"].targets[0].base_path, "/base");
        assert_eq!(cfg.limits, Limits::default());
        assert!(cfg.admin.address.unwrap().ip().is_loopback());
    }

    #[test]
    fn plain_listener_needs_explicit_opt_in() {
        let text = GOOD.replace("    plain_http: true\n", "");
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("plain_http"), "{err}");
        assert_eq!(err.line, Some(2), "{err}");
    }

    #[test]
    fn unknown_upstream_names_line_and_field() {
        let text = GOOD.replace("upstream: api", "upstream: nope");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("routes[0].upstream"));
        assert_eq!(err.line, Some(10), "{err}");
        assert!(err
            .to_string()
            .starts_with("/etc/warden/test.yaml:10: routes[0].upstream: unknown upstream `nope`"));
    }

    #[test]
    fn bad_cidr_and_unknown_field_have_lines() {
        let err = parse(&GOOD.replace("10.0.0.0/8", "10.0.0.0/33")).unwrap_err();
        assert_eq!(err.line, Some(12), "{err}");
        let err = parse(
            &GOOD
                .replace("strip_prefix", "x")
                .replace("    upstream: api", "    upstraem: api"),
        )
        .unwrap_err();
        assert!(err.message.contains("upstraem"), "{err}");
        assert_eq!(err.line, Some(10), "{err}");
    }

    #[test]
    fn https_and_credential_targets_are_refused() {
        assert!(parse(&GOOD.replace("http://127", "https://127")).is_err());
        assert!(parse(&GOOD.replace("http://127", "http://u:p@127")).is_err());
    }

    #[test]
    fn remote_admin_needs_opt_in() {
        let text = format!("{GOOD}admin:\n  address: 0.0.0.0:9901\n");
        assert!(parse(&text).unwrap_err().message.contains("allow_remote"));
        let text = format!("{GOOD}admin:\n  address: 0.0.0.0:9901\n  allow_remote: true\n");
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn byte_sizes() {
        assert_eq!("10MiB".parse::<ByteSize>().unwrap(), ByteSize(10 << 20));
        assert_eq!("512".parse::<ByteSize>().unwrap(), ByteSize(512));
        assert!("10 parsecs".parse::<ByteSize>().is_err());
        assert!("99999999999999GiB".parse::<ByteSize>().is_err());
    }

    proptest::proptest! {
        // The same properties the `config_parse` fuzz target checks, on stable and in CI.
        #[test]
        fn parse_never_panics(text in "[ -~\n\r\u{85}]{0,400}") {
            if let Err(e) = Config::parse(&text, Path::new("p.yaml")) {
                if let Some(line) = e.line {
                    // YAML ends a line at `\r` too, so count as it does.
                    let lines = 1 + text.replace("\r\n", "\n").matches(['\r', '\n', '\u{85}', '\u{2028}', '\u{2029}']).count();
                    proptest::prop_assert!(line >= 1 && line <= lines + 1);
                }
            }
        }

        #[test]
        fn parse_never_panics_on_mutated_good_config(cut in 0usize..GOOD.len(), junk in r"[-:\[\]{} a-z0-9/.\n]{0,12}") {
            let mut text = GOOD.to_string();
            let cut = (0..=cut).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
            text.insert_str(cut, &junk);
            let _ = Config::parse(&text, Path::new("p.yaml"));
            let _ = locate(&text, "routes[0].ip_rules.deny");
        }
    }
}
