//! Upstream services: a pooled keep-alive HTTP client per route, round robin over the targets, and
//! the timeouts that turn a dead or slow upstream into a clean 502/504 instead of a hung client.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::GatewayBody;
use crate::config::{Target, UpstreamConfig};

pub type HttpClient = Client<HttpConnector, GatewayBody>;

/// One route's way to its upstream. A client per route (not per upstream) because connect timeouts
/// can differ per route, and within that one per worker thread, so that a request only ever uses
/// connections owned by its own thread (see `workers`). Pools are cheap; idle connections time out.
pub struct Upstream {
    pub name: String,
    pub targets: Vec<Target>,
    pub read_timeout: Duration,
    clients: Vec<HttpClient>,
    next: AtomicUsize,
}

impl Upstream {
    pub fn new(
        name: &str,
        cfg: &UpstreamConfig,
        connect_timeout: Option<Duration>,
        read_timeout: Option<Duration>,
        workers: usize,
    ) -> Self {
        let clients = (0..workers.max(1))
            .map(|_| client(cfg, connect_timeout))
            .collect();
        Upstream {
            name: name.to_string(),
            targets: cfg.targets.clone(),
            read_timeout: read_timeout.unwrap_or(cfg.read_timeout),
            clients,
            next: AtomicUsize::new(0),
        }
    }

    /// The calling worker's client.
    pub fn client(&self) -> &HttpClient {
        &self.clients[crate::workers::current() % self.clients.len()]
    }

    /// Round robin. Relaxed is enough: fairness, not exactness, is the goal.
    pub fn pick(&self) -> &Target {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.targets[i % self.targets.len()]
    }
}

fn client(cfg: &UpstreamConfig, connect_timeout: Option<Duration>) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout.unwrap_or(cfg.connect_timeout)));
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(cfg.pool_idle_timeout)
        .pool_max_idle_per_host(cfg.pool_max_idle_per_target)
        // The client must not rewrite Host from the target URL: the upstream sees the host the
        // client asked for, as with any transparent reverse proxy.
        .set_host(false)
        .build(connector)
}

/// The URI to send upstream: the target's base path, then the request path (minus the route prefix
/// when `strip_prefix` is set), then the query untouched.
pub fn upstream_uri(
    target: &Target,
    path: &str,
    query: Option<&str>,
) -> Result<http::Uri, http::Error> {
    let mut pq = String::with_capacity(
        target.base_path.len() + path.len() + query.map_or(0, |q| q.len() + 1),
    );
    pq.push_str(&target.base_path);
    if path.is_empty() || !path.starts_with('/') {
        pq.push('/');
    }
    pq.push_str(path);
    if let Some(q) = query {
        pq.push('?');
        pq.push_str(q);
    }
    http::Uri::builder()
        .scheme("http")
        .authority(target.authority.clone())
        .path_and_query(pq)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_joins_base_path_and_query() {
        let t = Target::try_from("http://127.0.0.1:9/base/".to_string()).unwrap();
        assert_eq!(
            upstream_uri(&t, "/users/1", Some("a=1"))
                .unwrap()
                .to_string(),
            "http://127.0.0.1:9/base/users/1?a=1"
        );
        assert_eq!(
            upstream_uri(&t, "", None).unwrap().to_string(),
            "http://127.0.0.1:9/base/"
        );
        let t = Target::try_from("http://up:80".to_string()).unwrap();
        assert_eq!(
            upstream_uri(&t, "/", None).unwrap().to_string(),
            "http://up:80/"
        );
    }
}
