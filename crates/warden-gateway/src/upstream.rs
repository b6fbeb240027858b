//! Upstream services: round robin over the targets, keep-alive HTTP/1.1 connection pools, and the
//! timeouts that turn a dead or slow upstream into a clean 502/504 instead of a hung client.
//!
//! Pools are per worker thread (see `workers`): a request only ever uses connections owned by the
//! thread it runs on, so no lock or wake-up crosses threads. The pool is built directly on hyper's
//! connection API rather than on hyper_util's pooled client, whose shared pool, per-request client
//! clone and lazily built connect future were a measurable share of the proxy's CPU time.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use warden_policy::traffic::breaker::{Admission, State};

use crate::body::{BoxError, GatewayBody};
use crate::config::{RetryConfig, Target, UpstreamConfig};
use crate::traffic::{RetryBudget, TargetBreaker, TrafficState};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One route's way to its upstream: a pool per worker thread and per target. Per route (not per
/// upstream) because connect timeouts can differ per route.
pub struct Upstream {
    pub name: Arc<str>,
    pub targets: Vec<Target>,
    pub read_timeout: Duration,
    connect_timeout: Duration,
    pools: Vec<Arc<Pool>>,
    next: AtomicUsize,
    /// One per target, shared with every config generation (empty: breaker off).
    breakers: Vec<Arc<TargetBreaker>>,
    pub retries: RetryConfig,
    pub retry_budget: Arc<RetryBudget>,
}

/// Which target a call goes to, and whether it is a half-open breaker's probe.
#[derive(Debug, Clone, Copy)]
pub struct Pick {
    pub target: usize,
    probe: bool,
}

/// Why an upstream call failed; decides between 502 reasons and feeds the error metrics.
#[derive(Debug)]
pub enum UpstreamError {
    /// No connection could be made (refused, unreachable, DNS, connect timeout). The request never
    /// left, so it is handed back, whatever its method or body: it can go to another target.
    Connect(String, Option<Box<Request<GatewayBody>>>),
    /// The connection broke during the exchange, or the request body failed (e.g. over its limit).
    Exchange(hyper::Error),
}

impl Upstream {
    pub fn new(
        name: &str,
        cfg: &UpstreamConfig,
        connect_timeout: Option<Duration>,
        read_timeout: Option<Duration>,
        workers: usize,
        traffic: &TrafficState,
    ) -> Self {
        let pools = (0..workers.max(1))
            .map(|_| {
                Arc::new(Pool::new(
                    cfg.targets.len(),
                    cfg.pool_max_idle_per_target,
                    cfg.pool_idle_timeout,
                ))
            })
            .collect();
        Upstream {
            name: name.into(),
            targets: cfg.targets.clone(),
            read_timeout: read_timeout.unwrap_or(cfg.read_timeout),
            connect_timeout: connect_timeout.unwrap_or(cfg.connect_timeout),
            pools,
            next: AtomicUsize::new(0),
            breakers: if cfg.circuit_breaker.enabled {
                let policy = cfg.circuit_breaker.policy();
                cfg.targets
                    .iter()
                    .map(|t| {
                        traffic.breaker(name, &format!("{}{}", t.authority, t.base_path), policy)
                    })
                    .collect()
            } else {
                Vec::new()
            },
            retries: cfg.retries.clone(),
            retry_budget: traffic.retry_budget(
                name,
                cfg.retries.budget_percent,
                cfg.retries.budget_min_per_sec,
            ),
        }
    }

    /// Round robin. Relaxed is enough: fairness, not exactness, is the goal. A single target skips
    /// the shared counter, which every worker would otherwise write on every request.
    fn next_index(&self) -> usize {
        match self.targets.len() {
            1 => 0,
            n => self.next.fetch_add(1, Ordering::Relaxed) % n,
        }
    }

    /// The next target whose breaker lets a call through, avoiding `avoid` (a target that just
    /// failed) while another is available. `Err`: every breaker is open, for this many ms at least.
    pub fn pick(&self, avoid: Option<usize>) -> Result<Pick, u64> {
        let n = self.targets.len();
        let start = self.next_index();
        if self.breakers.is_empty() {
            let target = match avoid {
                Some(a) if a == start && n > 1 => (start + 1) % n,
                _ => start,
            };
            return Ok(Pick {
                target,
                probe: false,
            });
        }
        let now = crate::traffic::now_ms();
        let mut wait = u64::MAX;
        let order = (0..n)
            .map(|i| (start + i) % n)
            .filter(|t| Some(*t) != avoid || n == 1);
        for t in order {
            match lock(&self.breakers[t].breaker).admit(now) {
                Admission::Allowed => {
                    return Ok(Pick {
                        target: t,
                        probe: false,
                    })
                }
                Admission::Probe => {
                    return Ok(Pick {
                        target: t,
                        probe: true,
                    })
                }
                Admission::Refused { retry_after_ms } => wait = wait.min(retry_after_ms),
            }
        }
        match avoid {
            // The only other targets are open: the one that just failed may still take a retry.
            Some(a) if n > 1 => match lock(&self.breakers[a].breaker).admit(now) {
                Admission::Allowed => Ok(Pick {
                    target: a,
                    probe: false,
                }),
                Admission::Probe => Ok(Pick {
                    target: a,
                    probe: true,
                }),
                Admission::Refused { retry_after_ms } => Err(wait.min(retry_after_ms)),
            },
            _ => Err(wait),
        }
    }

    /// Tells the target's breaker how the call went; logs when that opens or closes it.
    pub fn report(&self, pick: Pick, ok: bool) {
        let Some(b) = self.breakers.get(pick.target) else {
            return;
        };
        let changed = lock(&b.breaker).record(crate::traffic::now_ms(), ok, pick.probe);
        match changed {
            Some(State::Open) => tracing::warn!(
                upstream = %self.name,
                target = %b.target,
                "circuit breaker opened: calls to this target are paused"
            ),
            Some(State::Closed) => tracing::info!(
                upstream = %self.name,
                target = %b.target,
                "circuit breaker closed: the target answered a probe"
            ),
            _ => {}
        }
    }

    /// Sends `req` (origin-form URI, Host set) to target `t` on a pooled or new connection.
    pub async fn send(
        &self,
        t: usize,
        req: Request<GatewayBody>,
    ) -> Result<Response<GatewayBody>, UpstreamError> {
        let pool = &self.pools[crate::workers::current() % self.pools.len()];
        let mut req = req;
        while let Some((mut sender, idle_for)) = pool.take(t) {
            if sender.ready().await.is_err() {
                continue;
            }
            // A kept-alive connection can be closed by the server at the moment we reuse it. If the
            // request had not left yet, hyper hands it back; if it had, only a request that is safe
            // to repeat (idempotent, no body) is sent again on a fresh connection, as nginx does.
            // A connection that finished a response moments ago is not at risk of the server's idle
            // close, and under load that is nearly every reuse: skip copying the request then.
            let replay = if idle_for < FRESH {
                None
            } else {
                replayable(&req)
            };
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(pool.track(t, sender, resp)),
                Err(mut e) => match (e.take_message(), replay) {
                    (Some(unsent), _) => req = unsent,
                    (None, Some(copy)) => {
                        tracing::debug!(upstream = %self.name, error = %e.into_error(), "reused connection failed; retrying on a new one");
                        req = copy;
                        break;
                    }
                    (None, None) => return Err(UpstreamError::Exchange(e.into_error())),
                },
            }
        }
        let mut sender = match self.connect(&self.targets[t]).await {
            Ok(s) => s,
            Err(why) => return Err(UpstreamError::Connect(why, Some(Box::new(req)))),
        };
        match sender.send_request(req).await {
            Ok(resp) => Ok(pool.track(t, sender, resp)),
            Err(e) => Err(UpstreamError::Exchange(e)),
        }
    }

    async fn connect(&self, target: &Target) -> Result<http1::SendRequest<GatewayBody>, String> {
        let host = target.authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = target.authority.port_u16().unwrap_or(80);
        let connect = async {
            let stream = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => TcpStream::connect(SocketAddr::new(ip, port)).await,
                Err(_) => TcpStream::connect((host, port)).await,
            }?;
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(stream)
        };
        let stream = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("connect timeout".into()),
        };
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        // The connection is driven by its own task on this worker; it ends when the sender and any
        // response body are gone, or when the server closes.
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// Idle for less than this, a pooled connection is reused without keeping a copy of the request to
/// replay: servers close idle keep-alive connections after seconds, not milliseconds, and announce
/// other closes with `Connection: close`, which keeps the connection out of the pool.
const FRESH: Duration = Duration::from_millis(2);

/// A copy of `req` to send again if a reused connection dies under it: only for methods that are
/// idempotent (RFC 9110 §9.2.2) and requests without a body, since the first attempt may have
/// reached the upstream.
pub fn replayable(req: &Request<GatewayBody>) -> Option<Request<GatewayBody>> {
    let idempotent = matches!(
        *req.method(),
        http::Method::GET
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::PUT
            | http::Method::DELETE
            | http::Method::TRACE
    );
    if !idempotent || req.body().size_hint().exact() != Some(0) {
        return None;
    }
    let mut copy = Request::new(crate::body::empty());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

/// Idle keep-alive connections of one worker, per target, most recently used last.
struct Pool {
    idle: Mutex<Vec<VecDeque<Idle>>>,
    max_idle: usize,
    idle_timeout: Duration,
}

struct Idle {
    sender: http1::SendRequest<GatewayBody>,
    since: Instant,
}

impl Pool {
    fn new(targets: usize, max_idle: usize, idle_timeout: Duration) -> Pool {
        Pool {
            idle: Mutex::new((0..targets).map(|_| VecDeque::new()).collect()),
            max_idle,
            idle_timeout,
        }
    }

    /// The most recently used live connection to target `t`, if any, and how long it sat idle.
    /// LIFO keeps a small hot set and lets the rest age out.
    fn take(&self, t: usize) -> Option<(http1::SendRequest<GatewayBody>, Duration)> {
        let mut idle = self.idle.lock().expect("pool lock");
        while let Some(entry) = idle[t].pop_back() {
            let idle_for = entry.since.elapsed();
            if !entry.sender.is_closed() && idle_for < self.idle_timeout {
                return Some((entry.sender, idle_for));
            }
        }
        None
    }

    fn put(&self, t: usize, sender: http1::SendRequest<GatewayBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock");
        let q = &mut idle[t];
        let now = Instant::now();
        while q.front().is_some_and(|e| {
            now.duration_since(e.since) >= self.idle_timeout || e.sender.is_closed()
        }) {
            q.pop_front();
        }
        if q.len() < self.max_idle {
            q.push_back(Idle { sender, since: now });
        }
    }

    /// Wraps the response so the connection returns to the pool once its body has been read to the
    /// end; a body dropped early takes the connection down with it (it may be mid-message).
    fn track(
        self: &Arc<Self>,
        t: usize,
        sender: http1::SendRequest<GatewayBody>,
        resp: Response<Incoming>,
    ) -> Response<GatewayBody> {
        let (parts, body) = resp.into_parts();
        let mut pooled = PooledBody {
            inner: body,
            slot: Some((self.clone(), t, sender)),
        };
        if pooled.inner.is_end_stream() {
            pooled.release();
        }
        Response::from_parts(parts, GatewayBody::new(pooled))
    }
}

struct PooledBody {
    inner: Incoming,
    slot: Option<(Arc<Pool>, usize, http1::SendRequest<GatewayBody>)>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((pool, t, sender)) = self.slot.take() {
            pool.put(t, sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            Poll::Ready(Some(Err(_))) => self.slot = None,
            _ => {}
        }
        polled.map(|f| f.map(|r| r.map_err(BoxError::from)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The origin-form request target sent upstream: the target's base path, then the request path
/// (minus the route prefix when `strip_prefix` is set), then the query untouched.
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
    http::Uri::builder().path_and_query(pq).build()
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
            "/base/users/1?a=1"
        );
        assert_eq!(upstream_uri(&t, "", None).unwrap().to_string(), "/base/");
        let t = Target::try_from("http://up:80".to_string()).unwrap();
        assert_eq!(upstream_uri(&t, "/", None).unwrap().to_string(), "/");
    }
}
