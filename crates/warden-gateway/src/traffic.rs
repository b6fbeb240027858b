//! Traffic-control state that outlives config generations: rate limiters and quota counters (in
//! process, or in Redis for several replicas), concurrency counters, circuit breakers and retry
//! budgets. A reload that keeps a limit's definition keeps its counters.
//!
//! Redis holds the shared counters; every update is one server-side script, so replicas never race
//! on a read-modify-write. When Redis cannot be reached, each limit does what its
//! `on_store_error` says (count locally meanwhile, or refuse), Redis is left alone for
//! `retry_after`, and one alert is raised per outage (log, metrics, the store's admin events).

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::RateLimiter;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use warden_policy::traffic::breaker::{Breaker, Policy as BreakerPolicy};
use warden_policy::traffic::window::Period;

use crate::config::{Quota, Rate, RedisConfig};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One limit's answer for one call: what the `RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The most calls the limit lets through at once (burst, or the quota).
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the allowance is whole again (quota: until the window ends).
    pub reset_secs: u64,
    /// Refused: seconds until a call would be let through.
    pub retry_after_secs: u64,
}

/// The shared store could not answer; the limit's fallback decides.
#[derive(Debug, Clone, Copy)]
pub struct StoreDown;

type LocalLimiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// GCRA in this process (governor), keyed by the limit's key.
pub struct LocalRate {
    limiter: LocalLimiter,
    burst: u32,
    interval: Duration,
    clock: DefaultClock,
    checks: AtomicU64,
}

impl LocalRate {
    fn new(rate: Rate, burst: u32) -> LocalRate {
        let interval = rate.period / rate.count;
        let burst = burst.max(1);
        let quota = governor::Quota::with_period(interval)
            .expect("validated: the interval is at least 1 µs")
            .allow_burst(NonZeroU32::new(burst).expect("burst is at least 1"));
        LocalRate {
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            burst,
            interval,
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    pub fn check(&self, key: &str) -> Decision {
        // Forget idle keys now and then, or a key per client IP grows without bound.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 10_000 == 9_999 {
            self.limiter.retain_recent();
        }
        match self.limiter.check_key(&key.to_string()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit: u64::from(self.burst),
                    remaining: u64::from(remaining),
                    reset_secs: ceil_secs(self.interval * (self.burst - remaining)),
                    retry_after_secs: 0,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Decision {
                    allowed: false,
                    limit: u64::from(self.burst),
                    remaining: 0,
                    reset_secs: ceil_secs(wait).max(1),
                    retry_after_secs: ceil_secs(wait).max(1),
                }
            }
        }
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000) as u64
}

/// Fixed-window counts in this process: (window start, calls) per key.
#[derive(Default)]
pub struct LocalQuota {
    counts: Mutex<HashMap<String, (u64, u64)>>,
}

impl LocalQuota {
    pub fn check(&self, key: &str, quota: Quota, now_ms: u64) -> Decision {
        let (start, end) = quota.period.window(now_ms);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.len() > 100_000 {
            counts.retain(|_, (s, _)| *s == start);
        }
        let entry = counts.entry(key.to_string()).or_insert((start, 0));
        if entry.0 != start {
            *entry = (start, 0);
        }
        entry.1 += 1;
        quota_decision(quota, entry.1, end - now_ms)
    }
}

fn quota_decision(quota: Quota, count: u64, left_ms: u64) -> Decision {
    let limit = u64::from(quota.limit);
    let allowed = count <= limit;
    let reset = left_ms.div_ceil(1000).max(1);
    Decision {
        allowed,
        limit,
        remaining: limit.saturating_sub(count),
        reset_secs: reset,
        retry_after_secs: if allowed { 0 } else { reset },
    }
}

/// All of one request's shared limits in one round trip, in order, stopping at the first refusal.
/// Per limit, three arguments: `r`, the emission interval (µs) and the burst, for a rate; `q`, the
/// allowance and the key's lifetime (ms), for a quota. Returns four numbers per limit evaluated.
///
/// Rates are GCRA on the Redis server's clock, so replicas agree whatever their own clocks say: the
/// key holds the theoretical arrival time (µs), and a call is allowed when, with it, no more than
/// `burst` emission intervals are outstanding ({allowed, remaining, retry_after_us, reset_us}).
/// A quota's key names its window and expires with it ({allowed, count, 0, 0}).
const LIMITS_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i, key in ipairs(KEYS) do
  local kind, a, b = ARGV[3*i-2], tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  if kind == 'r' then
    local capacity = b * a
    local tat = tonumber(redis.call('GET', key) or now)
    if tat < now then tat = now end
    local outstanding = tat + a - now
    if outstanding > capacity then
      table.insert(out, 0); table.insert(out, 0)
      table.insert(out, outstanding - capacity); table.insert(out, tat - now)
      return out
    end
    redis.call('SET', key, string.format('%.0f', tat + a), 'PX', math.floor(outstanding / 1000) + 1)
    table.insert(out, 1); table.insert(out, math.floor((capacity - outstanding) / a))
    table.insert(out, 0); table.insert(out, outstanding)
  else
    local n = redis.call('INCR', key)
    if n == 1 then redis.call('PEXPIRE', key, b) end
    local ok = 1
    if n > a then ok = 0 end
    table.insert(out, ok); table.insert(out, n); table.insert(out, 0); table.insert(out, 0)
    if ok == 0 then return out end
  end
end
return out
"#;

/// One limit for [`RedisStore::decide`].
pub enum Ask {
    Rate { rate: Rate, burst: u32 },
    Quota(Quota),
}

pub struct RedisStore {
    config: RedisConfig,
    client: redis::Client,
    /// One multiplexed connection for the process (calls are pipelined on it), made on first use;
    /// it reconnects by itself. One per worker was tried: each then had to find out on its own
    /// that Redis was back, failing a call each time.
    conn: OnceLock<ConnectionManager>,
    limits: redis::Script,
    /// Until when (ms since the epoch) Redis is skipped after a failure.
    down_until: AtomicU64,
    down: AtomicBool,
    alerts: Arc<crate::alerts::Alerts>,
    /// Credential ids (API key ids, token ids) revoked through Redis by any replica's operator,
    /// as last read; kept when Redis is unreachable, so known revocations still hold.
    revoked: arc_swap::ArcSwap<HashSet<String>>,
}

/// How often the revocations shared in Redis are read again.
pub const REVOCATION_POLL: Duration = Duration::from_millis(250);

impl RedisStore {
    fn new(config: RedisConfig, alerts: Arc<crate::alerts::Alerts>) -> Result<RedisStore, String> {
        let client = redis::Client::open(config.url.0.as_str()).map_err(|e| e.to_string())?;
        Ok(RedisStore {
            config,
            client,
            conn: OnceLock::new(),
            limits: redis::Script::new(LIMITS_SCRIPT),
            down_until: AtomicU64::new(0),
            down: AtomicBool::new(false),
            alerts,
            revoked: arc_swap::ArcSwap::default(),
        })
    }

    /// The Redis set that holds shared revocations.
    pub fn revoked_key(prefix: &str) -> String {
        format!("{prefix}:revoked")
    }

    pub fn is_revoked(&self, credential_id: &str) -> bool {
        self.revoked.load().contains(credential_id)
    }

    /// Reads the shared revocations every `REVOCATION_POLL` on a thread of its own (a blocking
    /// connection, off the workers), until the store is dropped.
    fn watch_revocations(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let key = Self::revoked_key(&self.config.prefix);
        let spawned = std::thread::Builder::new()
            .name("warden-revocations".into())
            .spawn(move || {
                let mut conn: Option<redis::Connection> = None;
                while let Some(store) = weak.upgrade() {
                    if conn.is_none() {
                        conn = store
                            .client
                            .get_connection_with_timeout(store.config.timeout)
                            .ok();
                        if let Some(c) = &mut conn {
                            let _ = c.set_read_timeout(Some(store.config.timeout));
                        }
                    }
                    if let Some(c) = &mut conn {
                        match redis::cmd("SMEMBERS").arg(&key).query::<HashSet<String>>(c) {
                            Ok(set) => {
                                if **store.revoked.load() != set {
                                    store.revoked.store(Arc::new(set));
                                }
                            }
                            Err(_) => conn = None,
                        }
                    }
                    drop(store);
                    std::thread::sleep(REVOCATION_POLL);
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the revocation watcher");
        }
    }

    pub fn prefix(&self) -> &str {
        &self.config.prefix
    }

    pub fn is_up(&self) -> bool {
        !self.down.load(Ordering::Relaxed)
    }

    fn conn(&self) -> Option<ConnectionManager> {
        let slot = &self.conn;
        if let Some(c) = slot.get() {
            return Some(c.clone());
        }
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.config.timeout))
            .set_response_timeout(Some(self.config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(self.config.retry_after);
        let made = ConnectionManager::new_lazy_with_config(self.client.clone(), cfg).ok()?;
        Some(slot.get_or_init(|| made).clone())
    }

    /// Runs one call within the timeout, tracking Redis's health.
    async fn call<T, F>(&self, f: impl FnOnce(ConnectionManager) -> F) -> Result<T, StoreDown>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let now = now_ms();
        if now < self.down_until.load(Ordering::Relaxed) {
            return Err(StoreDown);
        }
        let Some(conn) = self.conn() else {
            self.failed(now, "the connection could not be set up");
            return Err(StoreDown);
        };
        match tokio::time::timeout(self.config.timeout, f(conn)).await {
            Ok(Ok(v)) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    self.alerts
                        .resolve("shared-store-unreachable", &self.config.url.0);
                }
                Ok(v)
            }
            Ok(Err(e)) => {
                self.failed(now, &e.to_string());
                Err(StoreDown)
            }
            Err(_) => {
                self.failed(now, "timed out");
                Err(StoreDown)
            }
        }
    }

    async fn script<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreDown> {
        self.call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await
    }

    /// Spends `nonce` for `ttl_secs`: true the first time, false for a replay.
    pub async fn spend_nonce(&self, nonce: &str, ttl_secs: i64) -> Result<bool, StoreDown> {
        let key = format!("{}:nonce:{nonce}", self.config.prefix);
        let set: Option<String> = self
            .call(|mut conn| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl_secs.max(1))
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(set.is_some())
    }

    fn failed(&self, now: u64, why: &str) {
        self.down_until.store(
            now + self.config.retry_after.as_millis() as u64,
            Ordering::Relaxed,
        );
        if !self.down.swap(true, Ordering::Relaxed) {
            self.alerts
                .raise("shared-store-unreachable", &self.config.url.0, why);
        }
    }

    /// Decides `asks` (keys already prefixed) in one round trip, in order; the decisions stop at
    /// the first refusal.
    pub async fn decide(
        &self,
        asks: &[(String, Ask)],
        now_ms: u64,
    ) -> Result<Vec<Decision>, StoreDown> {
        let mut inv = self.limits.prepare_invoke();
        let mut quota_left = Vec::with_capacity(asks.len());
        for (key, ask) in asks {
            match ask {
                Ask::Rate { rate, burst } => {
                    let interval_us = (rate.period.as_micros() / u128::from(rate.count)).max(1);
                    inv.key(key)
                        .arg("r")
                        .arg(interval_us as u64)
                        .arg((*burst).max(1));
                    quota_left.push(0);
                }
                Ask::Quota(q) => {
                    let (start, end) = q.period.window(now_ms);
                    // Kept a little past the window's end: replicas' clocks differ slightly.
                    inv.key(format!("{key}:{start}"))
                        .arg("q")
                        .arg(q.limit)
                        .arg(end - now_ms + 60_000);
                    quota_left.push(end - now_ms);
                }
            }
        }
        let flat: Vec<i64> = self.script(inv).await?;
        let secs = |us: i64| (us.max(0) as u64).div_ceil(1_000_000);
        Ok(flat
            .chunks_exact(4)
            .zip(asks.iter().zip(quota_left))
            .map(|(v, ((_, ask), left_ms))| match ask {
                Ask::Rate { burst, .. } => {
                    let allowed = v[0] == 1;
                    Decision {
                        allowed,
                        limit: u64::from(*burst),
                        remaining: v[1].max(0) as u64,
                        reset_secs: secs(v[3]).max(u64::from(!allowed)),
                        retry_after_secs: if allowed { 0 } else { secs(v[2]).max(1) },
                    }
                }
                Ask::Quota(q) => quota_decision(*q, v[1].max(0) as u64, left_ms),
            })
            .collect())
    }

    /// One rate decided by Redis.
    pub async fn rate(&self, key: &str, rate: Rate, burst: u32) -> Result<Decision, StoreDown> {
        let d = self
            .decide(&[(key.to_string(), Ask::Rate { rate, burst })], now_ms())
            .await?;
        d.into_iter().next().ok_or(StoreDown)
    }

    /// One quota decided by Redis.
    pub async fn quota(&self, key: &str, quota: Quota, now_ms: u64) -> Result<Decision, StoreDown> {
        let d = self
            .decide(&[(key.to_string(), Ask::Quota(quota))], now_ms)
            .await?;
        d.into_iter().next().ok_or(StoreDown)
    }
}

/// Adds `credential_id` to the revocations every gateway sharing this Redis reads (`warden keys
/// revoke --config`). The set only grows; it holds ids, a few bytes each.
pub fn share_revocation(config: &RedisConfig, credential_id: &str) -> Result<(), String> {
    let client = redis::Client::open(config.url.0.as_str()).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(3))
        .map_err(|e| e.to_string())?;
    redis::cmd("SADD")
        .arg(RedisStore::revoked_key(&config.prefix))
        .arg(credential_id)
        .query::<i64>(&mut conn)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// One upstream target's breaker, with the names `/metrics` reports it under.
pub struct TargetBreaker {
    pub upstream: String,
    pub target: String,
    pub breaker: Mutex<Breaker>,
}

/// Retries an upstream may still make: each call deposits `ratio` of a retry, time adds
/// `min_per_sec`, a retry takes one. Keeps retries from multiplying the load on a failing upstream.
pub struct RetryBudget {
    ratio: f64,
    min_per_sec: f64,
    state: Mutex<(f64, u64)>,
}

impl RetryBudget {
    fn new(percent: u8, min_per_sec: u32) -> RetryBudget {
        RetryBudget {
            ratio: f64::from(percent) / 100.0,
            min_per_sec: f64::from(min_per_sec),
            state: Mutex::new((f64::from(min_per_sec), now_ms())),
        }
    }

    fn cap(&self) -> f64 {
        (self.min_per_sec * 10.0).max(10.0)
    }

    pub fn deposit(&self) {
        if self.ratio > 0.0 {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.0 = (s.0 + self.ratio).min(self.cap());
        }
    }

    pub fn withdraw(&self) -> bool {
        let now = now_ms();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let refill = now.saturating_sub(s.1) as f64 / 1000.0 * self.min_per_sec;
        s.0 = (s.0 + refill).min(self.cap());
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Calls in flight against a cap; released by dropping the `Slot`.
#[derive(Default)]
pub struct InFlight(AtomicUsize);

impl InFlight {
    /// Takes a slot if fewer than `cap` are taken.
    pub fn try_enter(self: &Arc<Self>, cap: usize) -> Option<Slot> {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            if cur >= cap {
                return None;
            }
            match self
                .0
                .compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Some(Slot(self.clone())),
                Err(now) => cur = now,
            }
        }
    }

    pub fn current(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct Slot(Arc<InFlight>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Everything above, found by name. Lookups happen when a config generation is built, not per call,
/// except per-consumer concurrency, whose keys are only known per call.
pub struct TrafficState {
    pub alerts: Arc<crate::alerts::Alerts>,
    rates: Mutex<HashMap<String, Arc<LocalRate>>>,
    quotas: Mutex<HashMap<String, Arc<LocalQuota>>>,
    redis: Mutex<Option<Arc<RedisStore>>>,
    upstreams: Mutex<HashMap<String, Arc<InFlight>>>,
    consumers: Mutex<HashMap<String, Arc<InFlight>>>,
    breakers: Mutex<HashMap<(String, String), Arc<TargetBreaker>>>,
    budgets: Mutex<HashMap<String, Arc<RetryBudget>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl TrafficState {
    pub fn new(store_dir: Option<PathBuf>) -> TrafficState {
        TrafficState {
            alerts: Arc::new(crate::alerts::Alerts::new(store_dir)),
            rates: Mutex::default(),
            quotas: Mutex::default(),
            redis: Mutex::default(),
            upstreams: Mutex::default(),
            consumers: Mutex::default(),
            breakers: Mutex::default(),
            budgets: Mutex::default(),
        }
    }

    /// The local limiter for a limit; the same one again while its definition is unchanged.
    pub fn local_rate(&self, name: &str, rate: Rate, burst: u32) -> Arc<LocalRate> {
        let id = format!("{name}|{rate:?}|{burst}");
        lock(&self.rates)
            .entry(id)
            .or_insert_with(|| Arc::new(LocalRate::new(rate, burst)))
            .clone()
    }

    pub fn local_quota(&self, name: &str, quota: Quota) -> Arc<LocalQuota> {
        let id = format!("{name}|{quota:?}");
        lock(&self.quotas).entry(id).or_default().clone()
    }

    /// The Redis store for `config`, reusing the current one when the config is unchanged.
    pub fn redis(&self, config: &RedisConfig) -> Result<Arc<RedisStore>, String> {
        let mut cur = lock(&self.redis);
        if let Some(r) = cur.as_ref().filter(|r| r.config == *config) {
            return Ok(r.clone());
        }
        let store = Arc::new(RedisStore::new(config.clone(), self.alerts.clone())?);
        store.watch_revocations();
        *cur = Some(store.clone());
        Ok(store)
    }

    pub fn upstream_in_flight(&self, upstream: &str) -> Arc<InFlight> {
        lock(&self.upstreams)
            .entry(upstream.to_string())
            .or_default()
            .clone()
    }

    /// A slot for `consumer` if it has fewer than `cap` calls in flight.
    pub fn consumer_slot(&self, consumer: &str, cap: usize) -> Option<Slot> {
        let mut map = lock(&self.consumers);
        if map.len() > 10_000 {
            map.retain(|_, c| c.current() > 0);
        }
        let c = map.entry(consumer.to_string()).or_default().clone();
        drop(map);
        c.try_enter(cap)
    }

    pub fn breaker(
        &self,
        upstream: &str,
        target: &str,
        policy: BreakerPolicy,
    ) -> Arc<TargetBreaker> {
        let mut map = lock(&self.breakers);
        let entry = map
            .entry((upstream.to_string(), target.to_string()))
            .or_insert_with(|| {
                Arc::new(TargetBreaker {
                    upstream: upstream.to_string(),
                    target: target.to_string(),
                    breaker: Mutex::new(Breaker::new(policy)),
                })
            });
        if lock(&entry.breaker).policy() != policy {
            *entry = Arc::new(TargetBreaker {
                upstream: upstream.to_string(),
                target: target.to_string(),
                breaker: Mutex::new(Breaker::new(policy)),
            });
        }
        entry.clone()
    }

    pub fn retry_budget(&self, upstream: &str, percent: u8, min_per_sec: u32) -> Arc<RetryBudget> {
        let id = format!("{upstream}|{percent}|{min_per_sec}");
        lock(&self.budgets)
            .entry(id)
            .or_insert_with(|| Arc::new(RetryBudget::new(percent, min_per_sec)))
            .clone()
    }

    /// Prometheus text for the traffic series (appended to `/metrics`).
    pub fn encode_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        if let Some(r) = lock(&self.redis).as_ref() {
            out.push_str("# HELP warden_shared_store_up Whether Redis answered the last call.\n");
            out.push_str("# TYPE warden_shared_store_up gauge\n");
            let _ = writeln!(out, "warden_shared_store_up {}", u8::from(r.is_up()));
        }
        let breakers = lock(&self.breakers);
        if !breakers.is_empty() {
            out.push_str("# HELP warden_circuit_breaker_open Whether a target's circuit breaker is open (1), half-open (0.5) or closed (0).\n");
            out.push_str("# TYPE warden_circuit_breaker_open gauge\n");
            let mut rows: Vec<_> = breakers.values().collect();
            rows.sort_by(|a, b| (&a.upstream, &a.target).cmp(&(&b.upstream, &b.target)));
            for b in rows {
                let v = match lock(&b.breaker).state() {
                    warden_policy::traffic::breaker::State::Closed => "0",
                    warden_policy::traffic::breaker::State::HalfOpen => "0.5",
                    warden_policy::traffic::breaker::State::Open => "1",
                };
                let _ = writeln!(
                    out,
                    "warden_circuit_breaker_open{{upstream=\"{}\",target=\"{}\"}} {v}",
                    b.upstream, b.target
                );
            }
        }
        drop(breakers);
        let alerts = self.alerts.counts();
        if !alerts.is_empty() {
            out.push_str("# HELP warden_alerts_total Alerts raised, by alert.\n");
            out.push_str("# TYPE warden_alerts_total counter\n");
            for (a, n) in alerts {
                let _ = writeln!(out, "warden_alerts_total{{alert=\"{a}\"}} {n}");
            }
        }
    }
}

/// The window a quota's `RateLimit-Policy` announces, in seconds.
pub fn quota_window_secs(period: Period) -> u64 {
    period.nominal_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_rate_reports_remaining_and_retry_after() {
        let r = LocalRate::new(
            Rate {
                count: 2,
                period: Duration::from_secs(10),
            },
            2,
        );
        let a = r.check("k");
        assert!(a.allowed);
        assert_eq!((a.limit, a.remaining), (2, 1));
        assert_eq!(a.reset_secs, 5);
        let b = r.check("k");
        assert!(b.allowed && b.remaining == 0);
        let c = r.check("k");
        assert!(!c.allowed);
        assert!((4..=5).contains(&c.retry_after_secs), "{c:?}");
        assert!(r.check("other").allowed, "keys count apart");
    }

    #[test]
    fn local_quota_resets_with_its_window() {
        let q = LocalQuota::default();
        let quota = Quota {
            limit: 2,
            period: Period::Fixed(1000),
        };
        assert!(q.check("k", quota, 10_100).allowed);
        let second = q.check("k", quota, 10_200);
        assert!(second.allowed && second.remaining == 0);
        let third = q.check("k", quota, 10_300);
        assert!(!third.allowed);
        assert_eq!(third.retry_after_secs, 1);
        assert!(q.check("k", quota, 11_000).allowed, "a new window");
    }

    #[test]
    fn retry_budget_is_bounded() {
        let b = RetryBudget::new(20, 0);
        let mut granted = 0;
        for _ in 0..100 {
            b.deposit();
            if b.withdraw() {
                granted += 1;
            }
        }
        assert!((19..=21).contains(&granted), "{granted}");
    }
}
