//! One request's path through the gateway. [`handle`] is the single place that walks the phases:
//!
//! ```text
//! request id ─▶ in-flight limit ─▶ path sanity ─▶ route ─▶ hop-by-hop strip ─▶ body size (413)
//!   ─▶ pipeline.request_head ─▶ [pipeline.request_body when a check needs it]
//!   ─▶ upstream (pool, read timeout: 502/504) ─▶ pipeline.response_head ─▶ stream the response
//!   ─▶ log phase when the response body ends (metrics, access log, pipeline.log)
//! ```
//!
//! Every exit, allowed or refused, goes through `finish`, so every request is logged and counted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use warden_policy::{client_ip, ProblemKind, Rejection};

use crate::body::{BodyStats, CompletionBody, GatewayBody, LimitedBody};
use crate::context::{Decision, RequestCtx};
use crate::headers::{self, X_REQUEST_ID};
use crate::metrics::{RequestLabels, RouteLabels, UpstreamErrorLabels};
use crate::pipeline::{Denial, Outcome};
use crate::problem::problem_response;
use crate::runtime::Runtime;
use crate::shared::Shared;
use crate::upstream::UpstreamError;

/// What the handler knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    pub forwarded: headers::PeerHeaders,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, tls: bool) -> ConnInfo {
        ConnInfo {
            peer,
            tls,
            forwarded: headers::PeerHeaders::new(peer.ip(), tls),
        }
    }
}

pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<GatewayBody>, Infallible> {
    let started = Instant::now();
    let rt = shared.runtime.load_full();
    let request_id = headers::request_id(req.headers());
    let trusted = rt.trusted_proxies();
    let client_ip = client_ip::resolve(
        conn.peer.ip(),
        req.headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok()),
        trusted,
    );
    let mut ctx = RequestCtx {
        request_id,
        started,
        peer: conn.peer,
        client_ip,
        tls: conn.tls,
        route: None,
        route_name: String::new(),
        decision: Decision::Allowed,
    };
    let method = req.method().clone();
    let stats = Arc::new(BodyStats::default());

    let in_flight = InFlight::enter(&shared, rt.config.limits.max_requests_in_flight);
    let result = match in_flight {
        Some(_) => proxy(&shared, &rt, &conn, &mut ctx, req, stats.clone()).await,
        None => Err(Failure::Gateway(Rejection::new(
            ProblemKind::Overloaded,
            "too-many-requests-in-flight",
        ))),
    };
    let (resp, upstream) = match result {
        Ok((resp, upstream)) => (resp, Some(upstream)),
        Err(Failure::Denied(Denial { phase, rejection })) => {
            let resp = problem_response(&rejection, &ctx.request_id);
            ctx.decision = Decision::Denied { phase, rejection };
            (resp, None)
        }
        Err(Failure::Gateway(rejection)) => {
            let resp = problem_response(&rejection, &ctx.request_id);
            ctx.decision = Decision::Failed { rejection };
            (resp, None)
        }
        Err(Failure::Upstream {
            rejection,
            upstream,
        }) => {
            let resp = problem_response(&rejection, &ctx.request_id);
            ctx.decision = Decision::Failed { rejection };
            (resp, Some(upstream))
        }
    };
    Ok(finish(
        shared, rt, ctx, method, resp, upstream, stats, in_flight,
    ))
}

enum Failure {
    /// A pipeline check refused the request.
    Denied(Denial),
    /// The gateway refused or failed it before any upstream was involved.
    Gateway(Rejection),
    /// The upstream failed (refused connection, reset, timeout).
    Upstream {
        rejection: Rejection,
        upstream: String,
    },
}

async fn proxy(
    shared: &Shared,
    rt: &Runtime,
    conn: &ConnInfo,
    ctx: &mut RequestCtx,
    req: Request<Incoming>,
    stats: Arc<BodyStats>,
) -> Result<(Response<GatewayBody>, String), Failure> {
    let (mut head, body) = req.into_parts();
    let gateway = |kind, reason| Failure::Gateway(Rejection::new(kind, reason));

    if !sane_path(head.uri.path()) {
        return Err(gateway(ProblemKind::BadRequest, "path-not-normalized"));
    }
    let host = crate::router::request_host(&head);
    let route_id = rt
        .router
        .route(host.as_deref(), head.uri.path())
        .ok_or_else(|| gateway(ProblemKind::NoRoute, "no-route"))?;
    let route = &rt.routes[route_id.0];
    ctx.route = Some(route_id);
    ctx.route_name.clone_from(&route.name);

    // Before any check looks at headers: a header listed in `Connection` must not be seen by a check
    // and then dropped on the way out, or checks and upstream would disagree about the request.
    headers::strip_hop_by_hop(&mut head.headers);
    head.headers.remove(header::EXPECT);

    let limit = route.max_body_bytes;
    if let Some(len) = content_length(&head.headers) {
        if len > limit {
            return Err(gateway(ProblemKind::PayloadTooLarge, "body-too-large"));
        }
    }

    rt.pipeline
        .request_head(ctx, &head)
        .map_err(Failure::Denied)?;

    let body: GatewayBody = if rt.pipeline.needs_body(ctx, &head) {
        let collected = Limited::new(body, limit as usize)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    gateway(ProblemKind::PayloadTooLarge, "body-too-large")
                } else {
                    gateway(ProblemKind::BadRequest, "body-read-failed")
                }
            })?;
        let bytes: Bytes = collected.to_bytes();
        stats.bytes.store(bytes.len() as u64, Ordering::Relaxed);
        rt.pipeline
            .request_body(ctx, &head, &bytes)
            .map_err(Failure::Denied)?;
        crate::body::full(bytes)
    } else {
        LimitedBody::new(body, limit, stats.clone()).boxed_unsync()
    };

    // Build the upstream request.
    let upstream = &route.upstream;
    let target_index = upstream.pick();
    let target = &upstream.targets[target_index];
    let path = if route.strip_prefix && route.prefix.0 != "/" {
        head.uri
            .path()
            .strip_prefix(route.prefix.0.as_str())
            .unwrap_or(head.uri.path())
    } else {
        head.uri.path()
    };
    let uri = crate::upstream::upstream_uri(target, path, head.uri.query())
        .map_err(|_| gateway(ProblemKind::BadRequest, "uri-invalid"))?;
    if !head.headers.contains_key(header::HOST) {
        // HTTP/2 carries the host in :authority; the HTTP/1.1 upstream needs a Host header.
        if let Some(v) = head
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            head.headers.insert(header::HOST, v);
        }
    }
    let peer_trusted = rt
        .trusted_proxies()
        .iter()
        .any(|n| n.contains(&conn.peer.ip().to_canonical()));
    // The Host as the client sent it, port included: what X-Forwarded-Host conventionally carries.
    let client_host = head.headers.get(header::HOST).cloned();
    headers::set_forwarded(
        &mut head.headers,
        &conn.forwarded,
        peer_trusted,
        client_host.as_ref(),
    );
    // One header value for both directions (a clone shares the bytes).
    let request_id = HeaderValue::from_str(&ctx.request_id).ok();
    if let Some(v) = &request_id {
        head.headers.insert(X_REQUEST_ID, v.clone());
    }
    head.uri = uri;
    // Upstreams speak HTTP/1.1 whatever the client spoke: the pool is h1, and hyper refuses to send
    // an HTTP/2-versioned request over it.
    head.version = Version::HTTP_11;
    let upstream_req = Request::from_parts(head, body);

    let name = upstream.name.clone();
    let sent = tokio::time::timeout(
        upstream.read_timeout,
        upstream.send(target_index, upstream_req),
    )
    .await;
    let upstream_fail = |kind: ProblemKind, reason: &'static str, metric: &'static str| {
        shared
            .metrics
            .upstream_errors
            .get_or_create(&UpstreamErrorLabels {
                upstream: name.clone(),
                kind: metric,
            })
            .inc();
        Failure::Upstream {
            rejection: Rejection::new(kind, reason),
            upstream: name.clone(),
        }
    };
    let resp = match sent {
        Err(_elapsed) => {
            return Err(upstream_fail(
                ProblemKind::UpstreamTimeout,
                "upstream-timeout",
                "timeout",
            ))
        }
        Ok(Err(_)) if stats.too_large.load(Ordering::Relaxed) => {
            return Err(Failure::Upstream {
                rejection: Rejection::new(ProblemKind::PayloadTooLarge, "body-too-large"),
                upstream: name,
            })
        }
        Ok(Err(UpstreamError::Connect(_))) => {
            return Err(upstream_fail(
                ProblemKind::UpstreamUnavailable,
                "upstream-connect-failed",
                "connect",
            ))
        }
        Ok(Err(_)) => {
            return Err(upstream_fail(
                ProblemKind::UpstreamUnavailable,
                "upstream-failed",
                "protocol",
            ))
        }
        Ok(Ok(resp)) => resp,
    };

    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    if let Some(v) = request_id {
        parts.headers.insert(X_REQUEST_ID, v);
    }
    rt.pipeline
        .response_head(ctx, &mut parts)
        .map_err(Failure::Denied)?;
    let body = body.map_err(crate::body::BoxError::from).boxed_unsync();
    Ok((Response::from_parts(parts, body), name))
}

/// Wraps the response so that the log phase runs when its body is done (or abandoned), then hands
/// it to hyper. Metrics, the access log and each check's `log` hang off that one callback.
#[allow(clippy::too_many_arguments)]
fn finish(
    shared: Arc<Shared>,
    rt: Arc<Runtime>,
    ctx: RequestCtx,
    method: http::Method,
    resp: Response<GatewayBody>,
    upstream: Option<String>,
    stats: Arc<BodyStats>,
    in_flight: Option<InFlight>,
) -> Response<GatewayBody> {
    let status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    let body = CompletionBody::new(body, move |bytes_out, complete| {
        let _in_flight = in_flight; // Released when the response is finished, not when its head is.
        let route = if ctx.route_name.is_empty() {
            "-".to_string()
        } else {
            ctx.route_name.clone()
        };
        let elapsed = ctx.started.elapsed();
        shared
            .metrics
            .requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                status,
                decision: ctx.decision.label(),
                reason: ctx.decision.reason(),
            })
            .inc();
        shared
            .metrics
            .latency
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
            .observe(elapsed.as_secs_f64());
        let outcome = Outcome {
            status,
            bytes_in: stats.bytes.load(Ordering::Relaxed),
            bytes_out,
            complete,
            upstream,
        };
        let phase = match &ctx.decision {
            Decision::Denied { phase, .. } => *phase,
            _ => "",
        };
        tracing::info!(
            target: "warden::access",
            request_id = %ctx.request_id,
            client_ip = %ctx.client_ip,
            method = %method,
            route = %route,
            status,
            decision = ctx.decision.label(),
            phase,
            reason = ctx.decision.reason(),
            bytes_in = outcome.bytes_in,
            bytes_out,
            complete,
            upstream = outcome.upstream.as_deref().unwrap_or(""),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
        );
        rt.pipeline.log(&ctx, &outcome);
    });
    Response::from_parts(parts, body.boxed_unsync())
}

/// Counts a request against `max_requests_in_flight` until dropped.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: &Arc<Shared>, limit: usize) -> Option<InFlight> {
        let prev = shared.in_flight.fetch_add(1, Ordering::AcqRel);
        if prev >= limit {
            shared.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        shared.metrics.in_flight.inc();
        Some(InFlight(shared.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.in_flight.dec();
    }
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Refuses paths a router and an upstream could read differently: dot-segments (plain or
/// percent-encoded), encoded slashes and backslashes, and anything not starting with `/`. Routing on
/// such a path is how `/public/..%2fadmin` slips past a prefix rule in naive gateways.
pub fn sane_path(path: &str) -> bool {
    if !path.starts_with('/') {
        return false;
    }
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains('\\')
        || lower.contains("%00")
    {
        return false;
    }
    !lower.split('/').any(|seg| {
        let seg = seg.replace("%2e", ".");
        seg == "." || seg == ".."
    })
}

#[cfg(test)]
mod tests {
    use super::sane_path;

    #[test]
    fn dot_segments_and_encoded_separators_are_refused() {
        for bad in [
            "/a/../b",
            "/a/./b",
            "/%2e%2e/x",
            "/a/%2E./b",
            "/a%2fb",
            "/a\\b",
            "/a%5cb",
            "x",
            "/a/%00",
        ] {
            assert!(!sane_path(bad), "{bad}");
        }
        for good in ["/", "/a/b", "/a/..b", "/a/b.json", "/v1/users/%41"] {
            assert!(sane_path(good), "{good}");
        }
    }

    proptest::proptest! {
        // Mirrors the `request_path` fuzz target.
        #[test]
        fn accepted_paths_have_no_dot_segment_in_any_spelling(path in r"/[a-zA-Z0-9./%\\]{0,40}") {
            if sane_path(&path) {
                let decoded = path.to_ascii_lowercase().replace("%2e", ".");
                proptest::prop_assert!(!decoded.split('/').any(|s| s == ".." || s == "."));
                proptest::prop_assert!(!decoded.contains("%2f") && !decoded.contains('\\'));
            }
        }
    }
}
