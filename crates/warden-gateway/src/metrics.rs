//! Prometheus metrics, served on the admin listener's `/metrics`. Labels stay low-cardinality: route
//! names come from the config, never from request paths.
//!
//! The two series touched by every request (request counts and latency) are kept per worker thread
//! in [`RequestShards`] and summed at scrape time: with prometheus-client's families, each request
//! took a shared lock and bumped atomics that every worker writes, and those cache lines bouncing
//! between cores cost about 3% of the proxy's CPU per request (bench/README.md). Gauges that mirror
//! a counter the gateway keeps anyway (open connections, requests in flight) are read at scrape time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: Arc<str>,
    pub status: u16,
    pub decision: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    pub upstream: String,
    pub kind: &'static str,
}

/// `kind` is a data class or detector id and `action` what was done: both from fixed lists.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    pub route: Arc<str>,
    pub check: &'static str,
    pub kind: String,
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

pub struct Metrics {
    pub registry: Registry,
    pub requests: Arc<RequestShards>,
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    pub open_connections: Gauge,
    pub rejected_connections: Counter,
    pub in_flight: Gauge,
    pub reloads: Family<ResultLabels, Counter>,
    pub findings: Family<FindingLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("warden");
        let requests = Arc::new(RequestShards::new(SHARDS));
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        let open_connections = Gauge::default();
        let rejected_connections = Counter::default();
        let in_flight = Gauge::default();
        let reloads = Family::<ResultLabels, Counter>::default();
        let findings = Family::<FindingLabels, Counter>::default();
        registry.register_collector(Box::new(requests.clone()));
        registry.register(
            "upstream_errors",
            "Failed upstream calls, by kind",
            upstream_errors.clone(),
        );
        registry.register(
            "open_connections",
            "Client connections currently open",
            open_connections.clone(),
        );
        registry.register(
            "rejected_connections",
            "Connections refused because max_connections was reached",
            rejected_connections.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Requests currently being handled",
            in_flight.clone(),
        );
        registry.register(
            "config_reloads",
            "Config reload attempts, by result",
            reloads.clone(),
        );
        registry.register(
            "findings",
            "What the checks found (attacks in requests, personal data in responses), by action",
            findings.clone(),
        );
        Metrics {
            registry,
            requests,
            upstream_errors,
            open_connections,
            rejected_connections,
            in_flight,
            reloads,
            findings,
        }
    }

    /// The exposition text. `open_connections` and `in_flight` are the gateway's own counters, read
    /// now rather than mirrored into gauges on every request.
    pub fn encode_with(&self, open_connections: usize, in_flight: usize) -> String {
        self.open_connections.set(open_connections as i64);
        self.in_flight.set(in_flight as i64);
        self.encode()
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Latency buckets: 0.25 ms to ~8 s. A gateway hop is sub-millisecond, a slow upstream is seconds.
const LATENCY_BUCKETS: usize = 16;

fn bucket_bound(i: usize) -> f64 {
    0.00025 * f64::powi(2.0, i as i32)
}

/// Workers beyond this many share shards, which stays correct (each shard has a lock).
const SHARDS: usize = 64;

/// Per-worker request counts and latency histograms, summed when scraped.
#[derive(Debug)]
pub struct RequestShards {
    shards: Vec<Padded>,
}

/// One shard per cache line pair, so two workers never write the same line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// A handful of series per worker (routes × statuses × reasons), so a linear scan that compares
/// route names by pointer first beats hashing the labels on every request.
#[derive(Debug, Default)]
struct Shard {
    requests: Vec<(RequestLabels, u64)>,
    latency: Vec<(Arc<str>, Hist)>,
}

fn same_route(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

#[derive(Debug, Default, Clone)]
struct Hist {
    sum: f64,
    count: u64,
    /// Non-cumulative counts per bucket; the last slot is +Inf.
    buckets: [u64; LATENCY_BUCKETS + 1],
}

impl RequestShards {
    fn new(shards: usize) -> RequestShards {
        RequestShards {
            shards: (0..shards.max(1)).map(|_| Padded::default()).collect(),
        }
    }

    /// Records one finished request on the calling worker's shard. The lock is only ever contended
    /// by a scrape.
    pub fn record(&self, labels: RequestLabels, seconds: f64) {
        let shard = &self.shards[crate::workers::current() % self.shards.len()].0;
        let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
        let hist = match shard
            .latency
            .iter()
            .position(|(r, _)| same_route(r, &labels.route))
        {
            Some(i) => &mut shard.latency[i].1,
            None => {
                shard.latency.push((labels.route.clone(), Hist::default()));
                &mut shard.latency.last_mut().expect("just pushed").1
            }
        };
        hist.sum += seconds;
        hist.count += 1;
        let slot = (0..LATENCY_BUCKETS)
            .find(|&i| seconds <= bucket_bound(i))
            .unwrap_or(LATENCY_BUCKETS);
        hist.buckets[slot] += 1;
        let found = shard.requests.iter_mut().find(|(l, _)| {
            l.status == labels.status
                && l.decision == labels.decision
                && l.reason == labels.reason
                && same_route(&l.route, &labels.route)
        });
        match found {
            Some((_, n)) => *n += 1,
            None => shard.requests.push((labels, 1)),
        }
    }

    /// Sums every shard: request counts by label set and latency by route, each sorted.
    fn totals(&self) -> Totals {
        let mut requests: HashMap<RequestLabels, u64> = HashMap::new();
        let mut latency: HashMap<Arc<str>, Hist> = HashMap::new();
        for shard in &self.shards {
            let shard = shard.0.lock().unwrap_or_else(|p| p.into_inner());
            for (k, v) in &shard.requests {
                *requests.entry(k.clone()).or_default() += v;
            }
            for (route, h) in &shard.latency {
                let total = latency.entry(route.clone()).or_default();
                total.sum += h.sum;
                total.count += h.count;
                for (t, b) in total.buckets.iter_mut().zip(h.buckets) {
                    *t += b;
                }
            }
        }
        let mut requests: Vec<_> = requests.into_iter().collect();
        requests.sort_by(|a, b| {
            (&a.0.route, a.0.status, a.0.decision, a.0.reason).cmp(&(
                &b.0.route,
                b.0.status,
                b.0.decision,
                b.0.reason,
            ))
        });
        let mut latency: Vec<_> = latency.into_iter().collect();
        latency.sort_by(|a, b| a.0.cmp(&b.0));
        Totals { requests, latency }
    }
}

struct Totals {
    requests: Vec<(RequestLabels, u64)>,
    latency: Vec<(Arc<str>, Hist)>,
}

impl Collector for RequestShards {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Totals { requests, latency } = self.totals();
        let mut family = encoder.encode_descriptor(
            "requests",
            "Requests handled, by route, status and decision",
            None,
            MetricType::Counter,
        )?;
        for (labels, n) in &requests {
            family
                .encode_family(labels)?
                .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(n, None)?;
        }
        let mut family = encoder.encode_descriptor(
            "request_duration_seconds",
            "Time from request head to end of response",
            None,
            MetricType::Histogram,
        )?;
        for (route, h) in &latency {
            // Per-bucket counts, not cumulative: the encoder accumulates them itself.
            let buckets: Vec<(f64, u64)> = h
                .buckets
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    let bound = if i == LATENCY_BUCKETS {
                        f64::INFINITY
                    } else {
                        bucket_bound(i)
                    };
                    (bound, n)
                })
                .collect();
            family
                .encode_family(&RouteLabels {
                    route: route.clone(),
                })?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    h.sum, h.count, &buckets, None,
                )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(route: &str, status: u16) -> RequestLabels {
        RequestLabels {
            route: Arc::from(route),
            status,
            decision: "allowed",
            reason: "",
        }
    }

    #[test]
    fn shards_are_summed_per_label_set_and_route() {
        let m = Metrics::new();
        // Two workers (threads) and two config generations (equal names, different pointers).
        std::thread::scope(|s| {
            s.spawn(|| m.requests.record(labels("api", 200), 0.0001));
        });
        m.requests.record(labels("api", 200), 0.003);
        m.requests.record(labels("api", 404), 10.0);
        let text = m.encode_with(3, 1);
        assert!(text.contains("warden_requests_total{route=\"api\",status=\"200\",decision=\"allowed\",reason=\"\"} 2"), "{text}");
        assert!(text.contains("warden_requests_total{route=\"api\",status=\"404\",decision=\"allowed\",reason=\"\"} 1"), "{text}");
        assert!(
            text.contains("warden_request_duration_seconds_count{route=\"api\"} 3"),
            "{text}"
        );
        // 0.1 ms falls in the first bucket, 3 ms in the 4 ms one, 10 s only in +Inf.
        for (le, n) in [
            ("0.00025", 1),
            ("0.002", 1),
            ("0.004", 2),
            ("8.192", 2),
            ("+Inf", 3),
        ] {
            let line = format!(
                "warden_request_duration_seconds_bucket{{le=\"{le}\",route=\"api\"}} {n}\n"
            );
            assert!(text.contains(&line), "{line} in {text}");
        }
        assert!(text.contains("warden_open_connections 3"), "{text}");
        assert!(text.contains("warden_requests_in_flight 1"), "{text}");
    }
}
