//! What one traffic decision costs: a GCRA rate and a quota counted in process, a breaker's
//! admit and report, and the same rate and quota decided by Redis (a round trip to the server in
//! `WARDEN_BENCH_REDIS`, default redis://127.0.0.1:6379; skipped when none answers).
//! Run: `cargo bench -p warden-gateway --bench traffic` (results in bench/README.md).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use warden_gateway::config::{Quota, Rate, RedisConfig, RedisUrl, StoreFallback};
use warden_gateway::traffic::{now_ms, TrafficState};
use warden_policy::traffic::breaker::{Breaker, Policy};
use warden_policy::traffic::window::Period;

fn bench(c: &mut Criterion) {
    let state = TrafficState::new(None);
    // Never refusing: the cost of an allowed call, which is what nearly every call is.
    let rate = Rate {
        count: 1_000_000,
        period: Duration::from_secs(1),
    };
    // A minute's window, so the keys this leaves in Redis are gone soon after.
    let quota = Quota {
        limit: u32::MAX,
        period: Period::Fixed(60_000),
    };
    let keys: Vec<String> = (0..10_000)
        .map(|i| format!("per-ip|ip=10.0.{}.{}", i / 256, i % 256))
        .collect();
    let local = state.local_rate("per-ip", rate, 1_000_000);
    let mut i = 0;
    c.bench_function("local rate (10k keys)", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            local.check(&keys[i])
        })
    });
    let q = state.local_quota("daily", quota);
    c.bench_function("local quota (10k keys)", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            q.check(&keys[i], quota, now_ms())
        })
    });
    let mut breaker = Breaker::new(Policy {
        consecutive_failures: 5,
        error_rate: 0.5,
        min_requests: 20,
        window_ms: 10_000,
        open_ms: 5_000,
    });
    c.bench_function("breaker admit + report", |b| {
        b.iter(|| {
            let now = now_ms();
            let a = breaker.admit(now);
            breaker.record(now, true, false);
            a
        })
    });

    let url =
        std::env::var("WARDEN_BENCH_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let redis = state
        .redis(&RedisConfig {
            url: RedisUrl(url.clone()),
            prefix: format!("warden-bench-{}", std::process::id()),
            timeout: Duration::from_secs(1),
            retry_after: Duration::from_secs(1),
            nonces_on_store_error: StoreFallback::Refuse,
        })
        .unwrap();
    if rt.block_on(redis.rate("probe", rate, 1_000_000)).is_err() {
        eprintln!("no Redis answers at {url}: the Redis rows are skipped");
        return;
    }
    c.bench_function("redis rate (round trip)", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            rt.block_on(redis.rate(&keys[i], rate, 1_000_000)).unwrap()
        })
    });
    c.bench_function("redis quota (round trip)", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            rt.block_on(redis.quota(&keys[i], quota, now_ms())).unwrap()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
