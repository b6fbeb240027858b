//! Prometheus metrics, served on the admin listener's `/metrics`. Labels stay low-cardinality: route
//! names come from the config, never from request paths.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub status: u16,
    pub decision: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    pub upstream: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    pub open_connections: Gauge,
    pub rejected_connections: Counter,
    pub in_flight: Gauge,
    pub reloads: Family<ResultLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("warden");
        let requests = Family::<RequestLabels, Counter>::default();
        // 0.25 ms to ~8 s: a gateway hop is sub-millisecond, a slow upstream is seconds.
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.00025, 2.0, 16))
        });
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        let open_connections = Gauge::default();
        let rejected_connections = Counter::default();
        let in_flight = Gauge::default();
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests handled, by route, status and decision",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request head to end of response",
            latency.clone(),
        );
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
        Metrics {
            registry,
            requests,
            latency,
            upstream_errors,
            open_connections,
            rejected_connections,
            in_flight,
            reloads,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
