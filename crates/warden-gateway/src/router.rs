//! Picks the route for a request: host first (exact beats `*.` wildcard beats any), then the longest
//! path prefix on whole segments. Routing sees the path only after dot-segments were refused (see
//! `proxy::sane_path`), so `/public/../admin` cannot reach a route it does not name.

use crate::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteId(pub usize);

#[derive(Debug, Clone)]
pub struct Router {
    /// Route ids in match order: most specific first.
    order: Vec<RouteId>,
    hosts: Vec<Option<String>>,
    prefixes: Vec<String>,
}

impl Router {
    pub fn new(config: &Config) -> Router {
        let hosts: Vec<Option<String>> = config
            .routes
            .iter()
            .map(|r| r.host.as_ref().map(|h| h.0.clone()))
            .collect();
        let prefixes: Vec<String> = config
            .routes
            .iter()
            .map(|r| r.path_prefix.0.clone())
            .collect();
        let mut order: Vec<RouteId> = (0..config.routes.len()).map(RouteId).collect();
        let host_rank = |h: &Option<String>| match h {
            Some(h) if !h.starts_with("*.") => 0,
            Some(_) => 1,
            None => 2,
        };
        // Stable sort keeps config order among equals, which `Config::validate` makes impossible anyway.
        order.sort_by_key(|id| {
            (
                host_rank(&hosts[id.0]),
                std::cmp::Reverse(prefixes[id.0].len()),
            )
        });
        Router {
            order,
            hosts,
            prefixes,
        }
    }

    /// Whether any route names a host; when none does, the caller can skip working out the host.
    pub fn uses_hosts(&self) -> bool {
        self.hosts.iter().any(Option::is_some)
    }

    /// `host` is lower-cased by the caller and has no port.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<RouteId> {
        self.order.iter().copied().find(|id| {
            host_matches(self.hosts[id.0].as_deref(), host)
                && prefix_matches(&self.prefixes[id.0], path)
        })
    }
}

fn host_matches(pattern: Option<&str>, host: Option<&str>) -> bool {
    match (pattern, host) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(p), Some(h)) => match p.strip_prefix("*.") {
            // One label deep: `*.example.com` matches `a.example.com`, not `a.b.example.com`.
            Some(suffix) => h
                .strip_suffix(suffix)
                .and_then(|rest| rest.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
            None => p == h,
        },
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Host header (h1) or `:authority` (h2), lower-cased and without port.
pub fn request_host(req: &http::request::Parts) -> Option<String> {
    let raw = req
        .uri
        .authority()
        .map(|a| a.host().to_string())
        .or_else(|| {
            req.headers
                .get(http::header::HOST)?
                .to_str()
                .ok()
                .map(strip_port)
        })?;
    Some(raw.trim_end_matches('.').to_ascii_lowercase())
}

fn strip_port(h: &str) -> String {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_string();
    }
    h.rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(h, |(host, _)| host)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn router(routes: &str) -> Router {
        let text = format!(
            "listeners: [{{address: '127.0.0.1:0', plain_http: true}}]\nupstreams:\n  u:\n    targets: ['http://127.0.0.1:1']\nroutes:\n{routes}"
        );
        Router::new(&Config::parse(&text, Path::new("t.yaml")).unwrap())
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let r = router("  - {path_prefix: /, upstream: u}\n  - {path_prefix: /v1, upstream: u}\n  - {path_prefix: /v1/admin, upstream: u}\n");
        assert_eq!(r.route(None, "/v1/admin/x"), Some(RouteId(2)));
        assert_eq!(r.route(None, "/v1/adminx"), Some(RouteId(1)));
        assert_eq!(r.route(None, "/v10"), Some(RouteId(0)));
        assert_eq!(r.route(None, "/v1"), Some(RouteId(1)));
    }

    #[test]
    fn host_specificity() {
        let r = router(
            "  - {path_prefix: /, upstream: u}\n  - {host: '*.example.com', upstream: u}\n  - {host: api.example.com, upstream: u}\n",
        );
        assert_eq!(r.route(Some("api.example.com"), "/"), Some(RouteId(2)));
        assert_eq!(r.route(Some("www.example.com"), "/"), Some(RouteId(1)));
        assert_eq!(r.route(Some("a.b.example.com"), "/"), Some(RouteId(0)));
        assert_eq!(r.route(None, "/"), Some(RouteId(0)));
    }

    #[test]
    fn no_catch_all_means_no_route() {
        let r = router("  - {path_prefix: /api, upstream: u}\n");
        assert_eq!(r.route(None, "/other"), None);
    }

    #[test]
    fn host_port_is_dropped() {
        assert_eq!(strip_port("api.test:8080"), "api.test");
        assert_eq!(strip_port("[::1]:8080"), "::1");
        assert_eq!(strip_port("api.test"), "api.test");
    }
}
