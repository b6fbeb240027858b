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

use crate::body::{BodyStats, Collected, CompletionBody, GatewayBody, LimitedBody};
use crate::context::{Decision, RequestCtx};
use crate::headers::{self, X_REQUEST_ID};
use crate::metrics::{RequestLabels, UpstreamErrorLabels};
use crate::pipeline::{Denial, Outcome};
use crate::problem::problem_response;
use crate::runtime::Runtime;
use crate::shared::{RuntimeRef, Shared};
use crate::upstream::UpstreamError;

/// What the handler knows about the connection a request came on. Requests hold it by `Arc`, one
/// per connection, so the gateway-wide state is reached without touching its reference count.
pub struct ConnInfo {
    pub shared: Arc<Shared>,
    pub peer: SocketAddr,
    pub tls: bool,
    pub forwarded: headers::PeerHeaders,
}

impl ConnInfo {
    pub fn new(shared: Arc<Shared>, peer: SocketAddr, tls: bool) -> ConnInfo {
        ConnInfo {
            shared,
            peer,
            tls,
            forwarded: headers::PeerHeaders::new(peer.ip(), tls),
        }
    }
}

/// Handles one request. `guard` is dropped once the response has been sent in full (or abandoned):
/// the connection uses it to know a request is running.
pub async fn handle<G: Send + 'static>(
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
    guard: G,
) -> Result<Response<GatewayBody>, Infallible> {
    let started = Instant::now();
    let shared = &conn.shared;
    let rt = shared.runtime();
    let request_id = headers::request_id(req.headers());
    let trusted = rt.trusted_proxies();
    // One pass over the names answers what would otherwise take four hashed lookups.
    let h = req.headers();
    let (mut has_credentials, mut has_xff) = (false, false);
    for name in h.keys() {
        if name == header::AUTHORIZATION || name == header::COOKIE || name == headers::X_API_KEY {
            has_credentials = true;
        } else if name == headers::X_FORWARDED_FOR {
            has_xff = true;
        }
    }
    let xff = has_xff.then(|| h.get_all(headers::X_FORWARDED_FOR));
    let client_ip = client_ip::resolve(
        conn.peer.ip(),
        xff.iter()
            .flat_map(|all| all.iter())
            .filter_map(|v| v.to_str().ok()),
        trusted,
    );
    let mut ctx = RequestCtx {
        request_id,
        started,
        peer: conn.peer,
        client_ip,
        tls: conn.tls,
        method: req.method().clone(),
        path: req.uri().path().to_string(),
        origin: h.get(header::ORIGIN).cloned(),
        has_credentials,
        route: None,
        route_name: None,
        answered_by: None,
        identity: None,
        auth_pending: false,
        ext: http::Extensions::new(),
        findings: Vec::new(),
        decision: Decision::Allowed,
    };
    let method = req.method().clone();
    let stats = Arc::new(BodyStats::default());

    let in_flight = InFlight::enter(&conn, rt.config.limits.max_requests_in_flight);
    let result = match in_flight {
        Some(_) => proxy(shared, &rt, &conn, &mut ctx, req, stats.clone()).await,
        None => Err(Failure::Gateway(Rejection::new(
            ProblemKind::Overloaded,
            "too-many-requests-in-flight",
        ))),
    };
    let (resp, upstream) = match result {
        Ok((resp, upstream)) => (resp, upstream),
        Err(Failure::Denied(Denial { phase, rejection }, upstream)) => {
            let resp = problem_response(&rejection, &ctx.request_id);
            ctx.decision = Decision::Denied { phase, rejection };
            (resp, upstream)
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
            let mut resp = problem_response(&rejection, &ctx.request_id);
            if let Some(RetryAfter(secs)) = ctx.ext.get::<RetryAfter>() {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*secs));
            }
            ctx.decision = Decision::Failed { rejection };
            (resp, Some(upstream))
        }
    };
    // Compliance mode: the call is on record before any byte of the answer leaves, or it is
    // refused.
    let mut resp = resp;
    if let Some(audit) = rt.services.audit().filter(|a| a.compliance) {
        let declared = content_length(resp.headers());
        let rec = crate::audit::request_record(
            &ctx,
            &ctx.path,
            resp.status().as_u16(),
            stats.bytes.load(Ordering::Relaxed),
            declared,
            None,
            upstream.as_deref(),
        );
        if audit.record_durably(&rec).await {
            ctx.ext.insert(crate::audit::Recorded);
        } else {
            let rejection = Rejection::new(ProblemKind::Overloaded, "audit-unavailable");
            resp = problem_response(&rejection, &ctx.request_id);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            ctx.decision = Decision::Failed { rejection };
        }
    }
    Ok(finish(
        conn,
        rt,
        ctx,
        method,
        resp,
        upstream,
        stats,
        (in_flight, guard),
    ))
}

/// Seconds a client should wait before trying again, for a failure that knows.
#[derive(Clone, Copy)]
struct RetryAfter(u64);

enum Failure {
    /// A pipeline check refused the request (or the upstream's response to it, named here).
    Denied(Denial, Option<Arc<str>>),
    /// The gateway refused or failed it before any upstream was involved.
    Gateway(Rejection),
    /// The upstream failed (refused connection, reset, timeout).
    Upstream {
        rejection: Rejection,
        upstream: Arc<str>,
    },
}

async fn proxy(
    shared: &Shared,
    rt: &Runtime,
    conn: &ConnInfo,
    ctx: &mut RequestCtx,
    req: Request<Incoming>,
    stats: Arc<BodyStats>,
) -> Result<(Response<GatewayBody>, Option<Arc<str>>), Failure> {
    let (mut head, body) = req.into_parts();
    let gateway = |kind, reason| Failure::Gateway(Rejection::new(kind, reason));

    if !sane_path(head.uri.path()) {
        return Err(gateway(ProblemKind::BadRequest, "path-not-normalized"));
    }
    let host = if rt.router.uses_hosts() {
        crate::router::request_host(&head)
    } else {
        None
    };
    let route_id = rt
        .router
        .route(host.as_deref(), head.uri.path())
        .ok_or_else(|| gateway(ProblemKind::NoRoute, "no-route"))?;
    let route = &rt.routes[route_id.0];
    ctx.route = Some(route_id);
    ctx.route_name = Some(route.name.clone());

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

    if let Some((by, resp)) = rt.pipeline.answer(ctx, &head) {
        ctx.answered_by = Some(by);
        return Ok((resp, None));
    }
    let denied = |d| Failure::Denied(d, None);
    rt.pipeline
        .request_head(ctx, &mut head)
        .await
        .map_err(denied)?;

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
            .request_body(ctx, &mut head, &bytes)
            .await
            .map_err(denied)?;
        crate::body::full(bytes)
    } else {
        LimitedBody::new(body, limit, stats.clone()).boxed_unsync()
    };

    // Build the upstream request.
    let upstream = &route.upstream;
    let mut pick = match upstream.pick(None) {
        Ok(p) => p,
        Err(wait_ms) => {
            // Fast, and telling the client when a probe will be let through.
            ctx.ext.insert(RetryAfter(wait_ms.div_ceil(1000).max(1)));
            return Err(Failure::Upstream {
                rejection: Rejection::new(ProblemKind::CircuitOpen, "circuit-open"),
                upstream: upstream.name.clone(),
            });
        }
    };
    // Kept for a retry to another target (a clone shares the bytes).
    let original = head.uri.clone();
    let stripping = route.strip_prefix && route.prefix.0 != "/";
    let target_uri = |t: usize| {
        let target = &upstream.targets[t];
        if target.base_path.is_empty() && !stripping && original.path().starts_with('/') {
            // Path and query go upstream as the client sent them: no need to build them again.
            return Ok(original.clone());
        }
        let path = if stripping {
            original
                .path()
                .strip_prefix(route.prefix.0.as_str())
                .unwrap_or(original.path())
        } else {
            original.path()
        };
        crate::upstream::upstream_uri(target, path, original.query())
            .map_err(|_| gateway(ProblemKind::BadRequest, "uri-invalid"))
    };
    let uri = target_uri(pick.target)?;
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
    // Room for the forwarding headers and the request id: one growth of the map, not several.
    head.headers.reserve(5);
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
    let mut upstream_req = Request::from_parts(head, body);

    let name = upstream.name.clone();
    let upstream_fail = |kind: ProblemKind, reason: &'static str, metric: &'static str| {
        shared
            .metrics
            .upstream_errors
            .get_or_create(&UpstreamErrorLabels {
                upstream: name.to_string(),
                kind: metric,
            })
            .inc();
        Failure::Upstream {
            rejection: Rejection::new(kind, reason),
            upstream: name.clone(),
        }
    };
    // Attempts: the first, then retries while the retry budget lasts: on a connection failure
    // (the request never left, so any call can go to another target), and on a listed 5xx for an
    // idempotent, bodiless call (a copy is kept only when such statuses are configured).
    let retries = &upstream.retries;
    upstream.retry_budget.deposit();
    let mut attempt = 0;
    let resp = loop {
        let may_retry = attempt < retries.attempts;
        let copy = (may_retry && !retries.statuses.is_empty())
            .then(|| crate::upstream::replayable(&upstream_req))
            .flatten();
        // Within the route's read timeout (kept by the connection's own timer: see upstream.rs).
        let mut sent = upstream.send(pick.target, upstream_req).await;
        let (ok, again) = match &mut sent {
            Ok(r) => {
                let status = r.status().as_u16();
                let again = copy.filter(|_| retries.statuses.contains(&status));
                (!matches!(status, 502..=504), again)
            }
            Err(UpstreamError::Connect(_, unsent)) => {
                (false, unsent.take().map(|b| *b).filter(|_| may_retry))
            }
            _ => (false, None),
        };
        upstream.report(pick, ok);
        let next = match again {
            Some(req) if upstream.retry_budget.withdraw() => {
                upstream.pick(Some(pick.target)).ok().map(|p| (req, p))
            }
            _ => None,
        };
        let Some((mut req, next)) = next else {
            break sent;
        };
        tracing::debug!(upstream = %name, attempt, "retrying on another attempt");
        *req.uri_mut() = target_uri(next.target)?;
        upstream_req = req;
        pick = next;
        attempt += 1;
    };
    let resp = match resp {
        Err(UpstreamError::Timeout) => {
            return Err(upstream_fail(
                ProblemKind::UpstreamTimeout,
                "upstream-timeout",
                "timeout",
            ))
        }
        Err(_) if stats.too_large.load(Ordering::Relaxed) => {
            return Err(Failure::Upstream {
                rejection: Rejection::new(ProblemKind::PayloadTooLarge, "body-too-large"),
                upstream: name,
            })
        }
        Err(UpstreamError::Connect(..)) => {
            return Err(upstream_fail(
                ProblemKind::UpstreamUnavailable,
                "upstream-connect-failed",
                "connect",
            ))
        }
        Err(_) => {
            return Err(upstream_fail(
                ProblemKind::UpstreamUnavailable,
                "upstream-failed",
                "protocol",
            ))
        }
        Ok(resp) => resp,
    };

    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    if let Some(v) = request_id {
        parts.headers.insert(X_REQUEST_ID, v);
    }
    let denied = |d| Failure::Denied(d, Some(name.clone()));
    rt.pipeline.response_head(ctx, &mut parts).map_err(denied)?;
    let body = match rt.pipeline.response_body_limit(ctx, &parts) {
        None => body,
        Some(limit) if content_length(&parts.headers).is_some_and(|n| n > limit) => {
            rt.pipeline
                .response_oversized(ctx, &mut parts)
                .map_err(denied)?;
            body
        }
        Some(limit) => {
            // Read within the upstream's read timeout: a stalled body must not hold the request.
            let collected = tokio::time::timeout(
                upstream.read_timeout,
                crate::body::collect_up_to(body, limit),
            )
            .await;
            match collected {
                Ok(Ok(Collected::Whole(mut bytes))) => {
                    rt.pipeline
                        .response_body(ctx, &mut parts, &mut bytes)
                        .map_err(denied)?;
                    crate::body::full(bytes)
                }
                Ok(Ok(Collected::Partial(prefix, rest))) => {
                    rt.pipeline
                        .response_oversized(ctx, &mut parts)
                        .map_err(denied)?;
                    crate::body::chain(prefix, rest)
                }
                Ok(Err(_)) => {
                    return Err(upstream_fail(
                        ProblemKind::UpstreamUnavailable,
                        "upstream-failed",
                        "protocol",
                    ))
                }
                Err(_) => {
                    return Err(upstream_fail(
                        ProblemKind::UpstreamTimeout,
                        "upstream-timeout",
                        "timeout",
                    ))
                }
            }
        }
    };
    Ok((Response::from_parts(parts, body), Some(name)))
}

/// Wraps the response so that the log phase runs when its body is done (or abandoned), then hands
/// it to hyper. Metrics, the access log and each check's `log` hang off that one callback.
#[allow(clippy::too_many_arguments)]
fn finish(
    conn: Arc<ConnInfo>,
    rt: RuntimeRef,
    ctx: RequestCtx,
    method: http::Method,
    resp: Response<GatewayBody>,
    upstream: Option<Arc<str>>,
    stats: Arc<BodyStats>,
    guards: impl Send + 'static,
) -> Response<GatewayBody> {
    let status = resp.status().as_u16();
    let (mut parts, body) = resp.into_parts();
    rt.pipeline.outgoing(&ctx, &mut parts);
    let body = CompletionBody::new(body, move |bytes_out, complete| {
        let _guards = guards; // Released when the response is finished, not when its head is.
        let route: Arc<str> = ctx.route_name.clone().unwrap_or_else(|| Arc::from("-"));
        let elapsed = ctx.started.elapsed();
        conn.shared.metrics.requests.record(
            RequestLabels {
                route: route.clone(),
                status,
                decision: ctx.decision.label(),
                reason: ctx.decision.reason(),
            },
            elapsed.as_secs_f64(),
        );
        for f in &ctx.findings {
            conn.shared
                .metrics
                .findings
                .get_or_create(&crate::metrics::FindingLabels {
                    route: route.clone(),
                    check: f.check,
                    kind: f.kind.clone(),
                    action: f.action,
                })
                .inc();
        }
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
            findings = %FindingsSummary(&ctx.findings),
        );
        rt.pipeline.log(&ctx, &outcome);
        if let Some(audit) = rt.services.audit() {
            if ctx.ext.get::<crate::audit::Recorded>().is_none() {
                audit.record(&crate::audit::request_record(
                    &ctx,
                    &ctx.path,
                    status,
                    outcome.bytes_in,
                    Some(bytes_out),
                    Some(complete),
                    outcome.upstream.as_deref(),
                ));
            }
        }
    });
    Response::from_parts(parts, body.boxed_unsync())
}

/// `kind@location:action[decodings]` for each finding, comma-separated, at most ten: enough for a log line,
/// never a value.
struct FindingsSummary<'a>(&'a [crate::context::Finding]);

impl std::fmt::Display for FindingsSummary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, x) in self.0.iter().take(10).enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}@{}:{}", x.kind, x.location, x.action)?;
            if !x.transforms.is_empty() {
                write!(f, "[{}]", x.transforms.join("+"))?;
            }
        }
        if self.0.len() > 10 {
            write!(f, ",+{}", self.0.len() - 10)?;
        }
        Ok(())
    }
}

/// Counts a request against `max_requests_in_flight` until dropped.
struct InFlight(Arc<ConnInfo>);

impl InFlight {
    fn enter(conn: &Arc<ConnInfo>, limit: usize) -> Option<InFlight> {
        let prev = conn.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        if prev >= limit {
            conn.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(InFlight(conn.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
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
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') || bytes.contains(&b'\\') {
        return false;
    }
    // Percent-escapes that would change how the path splits or ends: %2F (/), %5C (\), %00.
    let escaped = |i: usize| -> Option<u8> {
        let hex = |b: u8| (b as char).to_digit(16);
        Some((hex(*bytes.get(i + 1)?)? * 16 + hex(*bytes.get(i + 2)?)?) as u8)
    };
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%' && matches!(escaped(i), Some(b'/' | b'\\' | 0)) {
            return false;
        }
    }
    !path.split('/').any(|seg| {
        // A segment that is `.` or `..` once `%2e` is read as a dot.
        let mut dots = 0;
        let mut rest = seg.as_bytes();
        while !rest.is_empty() {
            if rest[0] == b'.' {
                rest = &rest[1..];
            } else if rest.len() >= 3
                && rest[0] == b'%'
                && rest[1] == b'2'
                && matches!(rest[2], b'e' | b'E')
            {
                rest = &rest[3..];
            } else {
                return false;
            }
            dots += 1;
        }
        dots == 1 || dots == 2
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
