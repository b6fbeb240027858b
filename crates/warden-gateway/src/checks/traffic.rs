//! Rate limits, quotas and concurrency caps (OWASP API4). After identity, so limits can be kept
//! per consumer; before attack detection and the upstream, so a flood costs as little as possible.
//!
//! Limits are evaluated rates first, then quotas, and stop at the first refusal, so a call that a
//! rate limit refuses does not also eat into the caller's daily quota. Shared limits are decided
//! by Redis in the I/O phase; local ones in place. Every response that a limit applied to carries
//! the `RateLimit-*` headers, so well-behaved clients can pace themselves; a refusal adds
//! `Retry-After`.
//!
//! Concurrency caps hold a slot from here until the response has been sent in full: the slot lives
//! in the request's context, which the log phase drops.

use std::sync::Arc;

use http::{header, request, response, HeaderValue, Method};
use warden_policy::{ProblemKind, Rejection, Verdict};

use crate::config::{Config, KeyPart, Priority, StoreFallback};
use crate::context::{Finding, RequestCtx};
use crate::pipeline::{Apply, Check, Pending};
use crate::services::Services;
use crate::traffic::{now_ms, Ask, Decision, InFlight, LocalQuota, LocalRate, RedisStore, Slot};

pub struct TrafficCheck {
    inner: Arc<Inner>,
}

struct Inner {
    limits: Vec<Limit>,
    redis: Option<Arc<RedisStore>>,
    services: Arc<Services>,
    per_consumer: Option<usize>,
    /// Per route: its priority and its upstream's in-flight counter and cap, when capped.
    routes: Vec<RouteCap>,
}

struct RouteCap {
    priority: Priority,
    upstream: Option<(Arc<InFlight>, usize, crate::config::Shares)>,
}

struct Limit {
    name: String,
    key: Vec<KeyPart>,
    kind: Kind,
    /// Route indices it applies to (all when empty).
    routes: Vec<usize>,
    methods: Vec<Method>,
    paths: Vec<String>,
    shared: bool,
    fallback: StoreFallback,
    /// This limit's item of `RateLimit-Policy`.
    policy: String,
}

enum Kind {
    Rate {
        rate: crate::config::Rate,
        burst: u32,
        local: Arc<LocalRate>,
    },
    Quota {
        quota: crate::config::Quota,
        local: Arc<LocalQuota>,
    },
}

/// What the limits said about one request; kept in the context for the way out.
#[derive(Clone, Default)]
struct Outcome {
    /// (limit index, decision) for each limit evaluated.
    decisions: Vec<(usize, Decision)>,
    refusal: Option<Refusal>,
    /// Limits that fell back because Redis was unreachable, and what they did.
    fallbacks: Vec<(usize, &'static str)>,
}

#[derive(Clone, Copy)]
enum Refusal {
    /// Limit index.
    Limit(usize),
    /// The shared store is down and this limit (index) refuses meanwhile.
    StoreDown(usize),
    Concurrency {
        upstream: bool,
    },
}

/// The request's concurrency slots, released when the context is dropped (response finished).
#[derive(Clone)]
struct Slots(#[allow(dead_code)] Arc<Vec<Slot>>);

impl TrafficCheck {
    pub fn new(config: &Config, services: Arc<Services>) -> TrafficCheck {
        let t = &config.traffic;
        let redis = t.redis.as_ref().and_then(|r| {
            match services.traffic.redis(r) {
                Ok(s) => Some(s),
                Err(e) => {
                    // Validated at load; a client that cannot be built still must not stop serving.
                    tracing::error!(error = %e, "cannot set up the Redis client; shared limits use their fallback");
                    None
                }
            }
        });
        let names: Vec<String> = (0..config.routes.len())
            .map(|i| config.route_name(i))
            .collect();
        let limits = t
            .limits
            .iter()
            .map(|l| {
                let name = l.name.0.clone();
                let (kind, policy) = match (l.rate, l.quota) {
                    (Some(rate), _) => {
                        let burst = l.burst.unwrap_or(rate.count);
                        let local = services.traffic.local_rate(&name, rate, burst);
                        let w = rate.period.as_secs().max(1);
                        (
                            Kind::Rate { rate, burst, local },
                            format!("\"{name}\";q={};w={w}", rate.count),
                        )
                    }
                    (None, Some(quota)) => {
                        let local = services.traffic.local_quota(&name, quota);
                        let w = crate::traffic::quota_window_secs(quota.period);
                        (
                            Kind::Quota { quota, local },
                            format!("\"{name}\";q={};w={w}", quota.limit),
                        )
                    }
                    (None, None) => unreachable!("validated: a limit has a rate or a quota"),
                };
                Limit {
                    name,
                    key: l.key.clone(),
                    kind,
                    routes: l
                        .routes
                        .iter()
                        .filter_map(|r| names.iter().position(|n| n == r))
                        .collect(),
                    methods: l.methods.iter().map(|m| m.0.clone()).collect(),
                    paths: l.paths.clone(),
                    shared: l.shared(t.redis.is_some()),
                    fallback: l.on_store_error,
                    policy,
                }
            })
            .collect::<Vec<_>>();
        // Rates before quotas: see the module comment.
        let mut limits = limits;
        limits.sort_by_key(|l| matches!(l.kind, Kind::Quota { .. }));
        let routes = config
            .routes
            .iter()
            .map(|r| {
                let up = &config.upstreams[&r.upstream];
                RouteCap {
                    priority: r.priority,
                    upstream: up.max_concurrent.map(|cap| {
                        (
                            services.traffic.upstream_in_flight(&r.upstream),
                            cap,
                            up.priority_shares,
                        )
                    }),
                }
            })
            .collect();
        TrafficCheck {
            inner: Arc::new(Inner {
                limits,
                redis,
                per_consumer: t.max_concurrent_per_consumer,
                routes,
                services,
            }),
        }
    }

    /// Whether there is anything for this check to do.
    pub fn active(&self) -> bool {
        let i = &self.inner;
        !i.limits.is_empty()
            || i.per_consumer.is_some()
            || i.routes.iter().any(|r| r.upstream.is_some())
    }
}

impl Inner {
    /// The limits that apply to this request, with the key each counts it under.
    fn applicable(&self, ctx: &RequestCtx, head: &request::Parts) -> Vec<(usize, String)> {
        let route = ctx.route.map(|r| r.0);
        let path = head.uri.path();
        self.limits
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                (l.routes.is_empty() || route.is_some_and(|r| l.routes.contains(&r)))
                    && (l.methods.is_empty() || l.methods.contains(&ctx.method))
                    && (l.paths.is_empty()
                        || l.paths.iter().any(|p| match p.strip_suffix('*') {
                            Some(prefix) => path.starts_with(prefix),
                            None => path == p,
                        }))
            })
            .map(|(i, l)| (i, self.key(l, ctx, head)))
            .collect()
    }

    fn key(&self, l: &Limit, ctx: &RequestCtx, head: &request::Parts) -> String {
        let mut k = String::with_capacity(64);
        k.push_str(&l.name);
        for part in &l.key {
            k.push('|');
            match part {
                KeyPart::Consumer => match &ctx.identity {
                    Some(id) => {
                        k.push_str("c=");
                        k.push_str(&id.consumer);
                    }
                    None => anonymous(&mut k, ctx),
                },
                KeyPart::Credential => match &ctx.identity {
                    Some(id) => {
                        k.push_str("k=");
                        k.push_str(&id.credential_id);
                    }
                    None => anonymous(&mut k, ctx),
                },
                KeyPart::Ip => {
                    k.push_str("ip=");
                    k.push_str(&ctx.client_ip.to_canonical().to_string());
                }
                KeyPart::Route => {
                    k.push_str("r=");
                    k.push_str(ctx.route_name.as_deref().unwrap_or("-"));
                }
                KeyPart::Operation => {
                    k.push_str("op=");
                    k.push_str(ctx.method.as_str());
                    k.push(' ');
                    k.push_str(ctx.route_name.as_deref().unwrap_or("-"));
                }
                KeyPart::Header(name) => {
                    k.push_str("h=");
                    if let Some(v) = head.headers.get(name) {
                        k.push_str(&String::from_utf8_lossy(v.as_bytes()));
                    }
                }
            }
        }
        // A client-chosen header value could be huge: keep keys short for Redis and memory.
        if k.len() > 200 {
            let digest = warden_policy::auth::sha256_hex(k.as_bytes());
            k = format!("{}|#{digest}", l.name);
        }
        k
    }

    fn needs_identity(&self) -> bool {
        self.limits.iter().any(|l| {
            l.key
                .iter()
                .any(|p| matches!(p, KeyPart::Consumer | KeyPart::Credential))
        }) || self.per_consumer.is_some()
    }

    /// Decides locally (no Redis), in order, stopping at the first refusal.
    fn decide_local(&self, items: &[(usize, String)]) -> Outcome {
        let mut out = Outcome::default();
        let now = now_ms();
        for (i, key) in items {
            let d = self.local(*i, key, now);
            out.decisions.push((*i, d));
            if !d.allowed {
                out.refusal = Some(Refusal::Limit(*i));
                break;
            }
        }
        out
    }

    fn local(&self, i: usize, key: &str, now: u64) -> Decision {
        match &self.limits[i].kind {
            Kind::Rate { local, .. } => local.check(key),
            Kind::Quota { quota, local } => local.check(key, *quota, now),
        }
    }

    /// Decides with Redis for shared limits, stopping at the first refusal: local rates first
    /// (nothing shared is spent on a call they refuse), then every shared limit in one round
    /// trip, then local quotas. Rates still come before quotas.
    async fn decide(self: Arc<Self>, items: Vec<(usize, String)>) -> Outcome {
        let now = now_ms();
        let is_quota = |i: usize| matches!(self.limits[i].kind, Kind::Quota { .. });
        let shared = |i: usize| self.limits[i].shared;
        let (local_rates, rest): (Vec<_>, Vec<_>) = items
            .into_iter()
            .partition(|(i, _)| !shared(*i) && !is_quota(*i));
        let mut out = self.decide_local(&local_rates);
        if out.refusal.is_some() {
            return out;
        }
        let (remote, local_quotas): (Vec<_>, Vec<_>) =
            rest.into_iter().partition(|(i, _)| shared(*i));
        if let (Some(redis), false) = (&self.redis, remote.is_empty()) {
            let asks: Vec<(String, Ask)> = remote
                .iter()
                .map(|(i, key)| {
                    let k = format!("{}:rl:{key}", redis.prefix());
                    match &self.limits[*i].kind {
                        Kind::Rate { rate, burst, .. } => (
                            k,
                            Ask::Rate {
                                rate: *rate,
                                burst: *burst,
                            },
                        ),
                        Kind::Quota { quota, .. } => (k, Ask::Quota(*quota)),
                    }
                })
                .collect();
            match redis.decide(&asks, now).await {
                Ok(decisions) => {
                    for ((i, _), d) in remote.iter().zip(decisions) {
                        out.decisions.push((*i, d));
                        if !d.allowed {
                            out.refusal = Some(Refusal::Limit(*i));
                            return out;
                        }
                    }
                }
                Err(_) => {
                    for (i, key) in &remote {
                        match self.limits[*i].fallback {
                            StoreFallback::Local => {
                                out.fallbacks.push((*i, "local"));
                                let d = self.local(*i, key, now);
                                out.decisions.push((*i, d));
                                if !d.allowed {
                                    out.refusal = Some(Refusal::Limit(*i));
                                    return out;
                                }
                            }
                            StoreFallback::Refuse => {
                                out.fallbacks.push((*i, "refuse"));
                                out.refusal = Some(Refusal::StoreDown(*i));
                                return out;
                            }
                        }
                    }
                }
            }
        }
        let quotas = self.decide_local(&local_quotas);
        out.decisions.extend(quotas.decisions);
        out.refusal = quotas.refusal;
        out
    }

    fn io(self: &Arc<Self>, ctx: &RequestCtx, head: &request::Parts) -> Option<Pending> {
        let items = self.applicable(ctx, head);
        let redis_needed =
            self.redis.is_some() && items.iter().any(|(i, _)| self.limits[*i].shared);
        if !redis_needed {
            return None;
        }
        let me = self.clone();
        Some(Box::pin(async move {
            let outcome = me.decide(items).await;
            Some(Box::new(move |ctx: &mut RequestCtx| {
                ctx.ext.insert(outcome);
            }) as Apply)
        }))
    }

    /// Records the limits' outcome, takes concurrency slots, and refuses when something says so.
    fn enforce(&self, ctx: &mut RequestCtx, head: &request::Parts) -> Verdict {
        let mut outcome = match ctx.ext.remove::<Outcome>() {
            Some(o) => o,
            None => self.decide_local(&self.applicable(ctx, head)),
        };
        for (i, action) in &outcome.fallbacks {
            ctx.findings.push(Finding {
                check: "traffic",
                kind: "shared-store-unreachable".into(),
                location: format!("limit.{}", self.limits[*i].name),
                action,
                ..Finding::default()
            });
        }
        if outcome.refusal.is_none() {
            match self.take_slots(ctx) {
                Ok(slots) => {
                    if !slots.is_empty() {
                        ctx.ext.insert(Slots(Arc::new(slots)));
                    }
                }
                Err(upstream) => outcome.refusal = Some(Refusal::Concurrency { upstream }),
            }
        }
        let refusal = outcome.refusal;
        ctx.ext.insert(outcome);
        ctx.ext.insert(Decided);
        match refusal {
            None => Verdict::Continue,
            Some(Refusal::Limit(i)) => {
                let reason = match self.limits[i].kind {
                    Kind::Rate { .. } => "rate-limited",
                    Kind::Quota { .. } => "quota-exceeded",
                };
                Verdict::Reject(
                    Rejection::new(ProblemKind::TooManyRequests, reason)
                        .with_detail(format!("limit `{}`", self.limits[i].name)),
                )
            }
            Some(Refusal::StoreDown(i)) => Verdict::Reject(
                Rejection::new(ProblemKind::Overloaded, "limit-store-unavailable")
                    .with_detail(format!("limit `{}`", self.limits[i].name)),
            ),
            Some(Refusal::Concurrency { upstream: true }) => Verdict::Reject(Rejection::new(
                ProblemKind::Overloaded,
                "upstream-saturated",
            )),
            Some(Refusal::Concurrency { upstream: false }) => Verdict::Reject(Rejection::new(
                ProblemKind::TooManyRequests,
                "too-many-concurrent-requests",
            )),
        }
    }

    /// The per-consumer slot, then the upstream slot within this route's priority share.
    /// `Err(true)`: the upstream is saturated for this priority; `Err(false)`: the consumer.
    fn take_slots(&self, ctx: &RequestCtx) -> Result<Vec<Slot>, bool> {
        let mut slots = Vec::new();
        if let Some(cap) = self.per_consumer {
            let who = match &ctx.identity {
                Some(id) => format!("c={}", id.consumer),
                None => format!("ip={}", ctx.client_ip.to_canonical()),
            };
            slots.push(
                self.services
                    .traffic
                    .consumer_slot(&who, cap)
                    .ok_or(false)?,
            );
        }
        let route = ctx.route.and_then(|r| self.routes.get(r.0));
        if let Some(RouteCap {
            priority,
            upstream: Some((in_flight, cap, shares)),
        }) = route
        {
            let share = match priority {
                Priority::Low => shares.low,
                Priority::Normal => shares.normal,
                Priority::High => 100,
            };
            let allowed = (cap * usize::from(share)).div_ceil(100).max(1);
            slots.push(in_flight.try_enter(allowed).ok_or(true)?);
        }
        Ok(slots)
    }
}

fn anonymous(k: &mut String, ctx: &RequestCtx) {
    k.push_str("ip=");
    k.push_str(&ctx.client_ip.to_canonical().to_string());
}

impl Check for TrafficCheck {
    fn name(&self) -> &'static str {
        "traffic"
    }

    fn request_io(&self, ctx: &RequestCtx, head: &request::Parts) -> Option<Pending> {
        if ctx.auth_pending && self.inner.needs_identity() {
            return None;
        }
        self.inner.io(ctx, head)
    }

    fn request_head(&self, ctx: &mut RequestCtx, head: &mut request::Parts) -> Verdict {
        // A signed request names its consumer once its body is verified: decide then.
        if ctx.auth_pending && self.inner.needs_identity() {
            return Verdict::Continue;
        }
        self.inner.enforce(ctx, head)
    }

    fn request_body_io(
        &self,
        ctx: &RequestCtx,
        head: &request::Parts,
        _body: &bytes::Bytes,
    ) -> Option<Pending> {
        if ctx.ext.get::<Decided>().is_some() {
            return None;
        }
        self.inner.io(ctx, head)
    }

    fn request_body(
        &self,
        ctx: &mut RequestCtx,
        head: &mut request::Parts,
        _body: &bytes::Bytes,
    ) -> Verdict {
        if ctx.ext.get::<Decided>().is_some() {
            return Verdict::Continue;
        }
        self.inner.enforce(ctx, head)
    }

    fn outgoing(&self, ctx: &RequestCtx, head: &mut response::Parts) {
        let Some(outcome) = ctx.ext.get::<Outcome>() else {
            return;
        };
        let h = &mut head.headers;
        let inner = &self.inner;
        // The limit to report: the one that refused, else the one closest to refusing.
        let shown = match outcome.refusal {
            Some(Refusal::Limit(i)) => outcome.decisions.iter().find(|(j, _)| *j == i),
            _ => outcome.decisions.iter().min_by_key(|(_, d)| d.remaining),
        };
        if !outcome.decisions.is_empty() {
            let policy: Vec<&str> = outcome
                .decisions
                .iter()
                .map(|(i, _)| inner.limits[*i].policy.as_str())
                .collect();
            set(h, "ratelimit-policy", policy.join(", "));
        }
        if let Some((i, d)) = shown {
            set(
                h,
                "ratelimit",
                format!(
                    "\"{}\";r={};t={}",
                    inner.limits[*i].name, d.remaining, d.reset_secs
                ),
            );
            set(h, "ratelimit-limit", d.limit.to_string());
            set(h, "ratelimit-remaining", d.remaining.to_string());
            set(h, "ratelimit-reset", d.reset_secs.to_string());
        }
        let retry_after = match (outcome.refusal, shown) {
            (Some(Refusal::Limit(_)), Some((_, d))) => Some(d.retry_after_secs.max(1)),
            (Some(Refusal::StoreDown(_) | Refusal::Concurrency { .. }), _) => Some(1),
            _ => None,
        };
        if let Some(s) = retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
    }
}

/// Marks a request whose limits were decided in the head phase.
#[derive(Clone)]
struct Decided;

fn set(h: &mut http::HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(name, v);
    }
}
