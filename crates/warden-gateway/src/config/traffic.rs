//! Config for traffic control: rate limits and quotas (`traffic:`), and the per-upstream parts
//! (`max_concurrent`, `circuit_breaker`, `retries`) that sit on each upstream.
//!
//! Limits are off until a config lists them: how many calls an API can take is per-API knowledge.
//! The circuit breaker and connect-failure retries need none, so they are on by default.

use std::time::Duration;

use serde::Deserialize;
use warden_policy::traffic::window::Period;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Traffic {
    /// Where shared counters live when several gateways serve one API. Without it, every limit
    /// counts in this process only.
    pub redis: Option<RedisConfig>,
    pub limits: Vec<LimitConfig>,
    /// Requests one consumer (or, unauthenticated, one client IP) may have in flight at once.
    pub max_concurrent_per_consumer: Option<usize>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port[/db]`.
    pub url: RedisUrl,
    /// Prepended to every key, so several deployments can share one Redis.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// The longest a limit waits for Redis before its `on_store_error` applies.
    #[serde(default = "default_redis_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// After a failure, Redis is left alone this long (limits use their fallback), then tried again.
    #[serde(default = "default_redis_retry", with = "humantime_serde")]
    pub retry_after: Duration,
    /// Signed requests' nonces are spent in Redis, so a replay to another replica is caught.
    /// When Redis is down: `refuse` signed requests (503, the default: a replay window is a
    /// hole), or spend nonces in this process only (`local`).
    #[serde(default = "refuse")]
    pub nonces_on_store_error: StoreFallback,
}

fn refuse() -> StoreFallback {
    StoreFallback::Refuse
}

fn default_prefix() -> String {
    "warden".into()
}
fn default_redis_timeout() -> Duration {
    Duration::from_millis(250)
}
fn default_redis_retry() -> Duration {
    Duration::from_secs(1)
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RedisUrl(pub String);

impl TryFrom<String> for RedisUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match redis::parse_redis_url(&s) {
            Some(u) if u.scheme() == "redis" => Ok(RedisUrl(s)),
            Some(u) => Err(format!(
                "redis url scheme `{}` is not supported; use redis://host:port",
                u.scheme()
            )),
            None => Err(format!(
                "`{s}` is not a Redis URL; write it as redis://host:port[/db]"
            )),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Names the limit in `RateLimit-Policy`, logs, metrics and Redis keys.
    pub name: LimitName,
    /// What one counter is kept per; several parts combine (`[consumer, operation]`).
    #[serde(default = "default_key")]
    pub key: Vec<KeyPart>,
    /// A rate (GCRA): `100/s`, `600/min`, `5/10s`. Give either `rate` or `quota`.
    #[serde(default)]
    pub rate: Option<Rate>,
    /// Requests allowed at once on top of the steady rate; default: the rate's count.
    #[serde(default)]
    pub burst: Option<u32>,
    /// A fixed allowance per window: `10000/day`, `100000/month` (UTC calendar), `50/1h`.
    #[serde(default)]
    pub quota: Option<Quota>,
    /// Only on these routes (all when empty).
    #[serde(default)]
    pub routes: Vec<String>,
    /// Only for these methods (all when empty).
    #[serde(default)]
    pub methods: Vec<MethodName>,
    /// Only on these paths: exact (`/login`) or a prefix ending in `*` (`/orders/*`). With
    /// `methods`, this makes a per-flow limit on a sensitive operation.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Count in Redis (`shared`, the default when `traffic.redis` is set) or in this process.
    #[serde(default)]
    pub store: Option<LimitStore>,
    /// When Redis cannot be reached: `local` counts in this process meanwhile (fail-open to a
    /// per-replica limit), `refuse` answers 503 (fail-closed).
    #[serde(default)]
    pub on_store_error: StoreFallback,
}

fn default_key() -> Vec<KeyPart> {
    vec![KeyPart::Consumer]
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct LimitName(pub String);

impl TryFrom<String> for LimitName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(LimitName(s))
        } else {
            Err(format!(
                "limit name `{s}` must be 1-64 letters, digits, `-`, `_` or `.` (it appears in \
                 response headers and Redis keys)"
            ))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct MethodName(pub http::Method);

impl TryFrom<String> for MethodName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        http::Method::from_bytes(s.to_ascii_uppercase().as_bytes())
            .map(MethodName)
            .map_err(|_| format!("`{s}` is not an HTTP method"))
    }
}

/// One part of a limit's key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum KeyPart {
    /// The authenticated consumer; the client IP for anonymous calls.
    Consumer,
    /// The credential (API key id, token hash); the client IP for anonymous calls.
    Credential,
    /// The client IP, as resolved through `trusted_proxies`.
    Ip,
    /// The route's name.
    Route,
    /// The method and route (`POST orders`).
    Operation,
    /// A request header's value (`header:x-tenant`); calls without it share one counter.
    Header(http::HeaderName),
}

impl TryFrom<String> for KeyPart {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.as_str() {
            "consumer" => KeyPart::Consumer,
            "credential" => KeyPart::Credential,
            "ip" => KeyPart::Ip,
            "route" => KeyPart::Route,
            "operation" => KeyPart::Operation,
            other => match other.strip_prefix("header:") {
                Some(h) => KeyPart::Header(
                    http::HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes())
                        .map_err(|_| format!("`{h}` is not a header name"))?,
                ),
                None => {
                    return Err(format!(
                        "unknown key part `{s}`; use consumer, credential, ip, route, operation \
                         or header:NAME"
                    ))
                }
            },
        })
    }
}

/// `count/period`: GCRA lets `count` calls per `period` through, evenly refilled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Rate {
    pub count: u32,
    pub period: Duration,
}

impl TryFrom<String> for Rate {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let (count, period) = split_count(&s)?;
        let period = match period {
            "day" | "d" => Duration::from_secs(86_400),
            p => unit_duration(p).ok_or_else(|| bad_period(&s))?,
        };
        if period.as_micros() / u128::from(count) == 0 {
            return Err(format!(
                "rate `{s}` is finer than one call per microsecond; use a larger period"
            ));
        }
        Ok(Rate { count, period })
    }
}

/// `limit/period` counted in fixed windows: `day` and `month` are UTC calendar windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Quota {
    pub limit: u32,
    pub period: Period,
}

impl TryFrom<String> for Quota {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let (limit, period) = split_count(&s)?;
        let period = match period {
            "day" | "d" => Period::Day,
            "month" => Period::Month,
            p => Period::Fixed(
                unit_duration(p)
                    .filter(|d| d.as_millis() > 0)
                    .ok_or_else(|| bad_period(&s))?
                    .as_millis() as u64,
            ),
        };
        Ok(Quota { limit, period })
    }
}

fn split_count(s: &str) -> Result<(u32, &str), String> {
    let (n, p) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` must be COUNT/PERIOD, e.g. `100/min` or `10000/day`"))?;
    let n: u32 = n
        .trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{s}`: the count must be a whole number above 0"))?;
    Ok((n, p.trim()))
}

fn unit_duration(p: &str) -> Option<Duration> {
    Some(match p {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        other => humantime::parse_duration(other).ok()?,
    })
}

fn bad_period(s: &str) -> String {
    format!("`{s}`: the period must be s, min, h, day, month or a duration such as 10s")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitStore {
    Local,
    Shared,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreFallback {
    #[default]
    Local,
    Refuse,
}

/// How a route's calls rank when an upstream is saturated (`max_concurrent`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
}

impl Priority {
    pub fn label(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
}

/// Which share of an upstream's `max_concurrent` each priority may fill: past its share, a call is
/// shed (503), so the capacity left over stays free for higher priorities. High may fill it all.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Shares {
    /// Percent, default 50.
    pub low: u8,
    /// Percent, default 80.
    pub normal: u8,
}

impl Default for Shares {
    fn default() -> Self {
        Shares {
            low: 50,
            normal: 80,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    pub enabled: bool,
    /// Open after this many failures in a row (0: off).
    pub consecutive_failures: u32,
    /// Open when this percentage of calls in `window` failed (0: off)…
    pub error_rate: u8,
    /// …once `window` holds this many calls.
    pub min_requests: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Stay open this long, then let one probe through.
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            enabled: true,
            consecutive_failures: 5,
            error_rate: 50,
            min_requests: 20,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(5),
        }
    }
}

impl BreakerConfig {
    pub fn policy(&self) -> warden_policy::traffic::breaker::Policy {
        warden_policy::traffic::breaker::Policy {
            consecutive_failures: self.consecutive_failures,
            error_rate: f64::from(self.error_rate) / 100.0,
            min_requests: self.min_requests,
            window_ms: self.window.as_millis() as u64,
            open_ms: self.open_for.as_millis() as u64,
        }
    }
}

/// Retries, to another target when there is one: a call whose connection failed (it never left,
/// whatever its method), and an idempotent, bodiless call answered with one of `statuses`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Extra attempts after the first (0: never retry).
    pub attempts: u32,
    /// Upstream answers that are retried, besides connection failures (always retried: the
    /// request never left).
    pub statuses: Vec<u16>,
    /// Retries may add at most this percentage to the calls an upstream gets…
    pub budget_percent: u8,
    /// …plus this many per second, so a quiet upstream can still be retried.
    pub budget_min_per_sec: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 1,
            statuses: Vec::new(),
            budget_percent: 20,
            budget_min_per_sec: 10,
        }
    }
}

impl Traffic {
    pub fn validate(&self, routes: &[String]) -> Option<(String, String)> {
        for (i, l) in self.limits.iter().enumerate() {
            let at = |f: &str| format!("traffic.limits[{i}]{f}");
            match (&l.rate, &l.quota) {
                (None, None) => {
                    return Some((at(""), "give a `rate` (e.g. 100/min) or a `quota`".into()))
                }
                (Some(_), Some(_)) => {
                    return Some((
                        at(".quota"),
                        "a limit is either a rate or a quota; write two limits".into(),
                    ))
                }
                _ => {}
            }
            if l.quota.is_some() && l.burst.is_some() {
                return Some((at(".burst"), "only a `rate` has a burst".into()));
            }
            if l.burst == Some(0) {
                return Some((at(".burst"), "must be at least 1".into()));
            }
            if l.key.is_empty() {
                return Some((at(".key"), "needs at least one part".into()));
            }
            if self.limits[..i].iter().any(|o| o.name == l.name) {
                return Some((
                    at(".name"),
                    format!("limit name `{}` is used twice", l.name.0),
                ));
            }
            if l.store == Some(LimitStore::Shared) && self.redis.is_none() {
                return Some((
                    at(".store"),
                    "`shared` needs `traffic.redis`; add it or use `store: local`".into(),
                ));
            }
            if let Some(r) = l.routes.iter().find(|r| !routes.contains(r)) {
                return Some((at(".routes"), format!("no route is named `{r}`")));
            }
            if let Some(p) = l
                .paths
                .iter()
                .find(|p| !p.starts_with('/') || p.trim_end_matches('*').contains('*'))
            {
                return Some((
                    at(".paths"),
                    format!("`{p}` must start with `/`, with at most a trailing `*`"),
                ));
            }
        }
        if self.max_concurrent_per_consumer == Some(0) {
            return Some((
                "traffic.max_concurrent_per_consumer".into(),
                "must be at least 1".into(),
            ));
        }
        None
    }
}

impl LimitConfig {
    /// Whether this limit counts in Redis.
    pub fn shared(&self, redis: bool) -> bool {
        match self.store {
            Some(LimitStore::Shared) => true,
            Some(LimitStore::Local) => false,
            None => redis,
        }
    }
}
