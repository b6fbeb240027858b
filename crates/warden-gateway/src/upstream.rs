//! Upstream services: round robin over the targets, keep-alive HTTP/1.1 connection pools, and the
//! timeouts that turn a dead or slow upstream into a clean 502/504 instead of a hung client.
//!
//! Pools are per worker thread (see `workers`): a request only ever uses connections owned by the
//! thread it runs on, so no lock or wake-up crosses threads. The HTTP/1.1 client is the gateway's
//! own (`h1` for the wire format, `conn` for the exchange), run inside the request's task: hyper's
//! client gives each connection a task of its own and talks to it through channels, which cost a
//! measurable share of a proxied request (bench/README.md).

pub mod conn;
pub mod h1;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::{Request, Response};
use http_body::Body;
use tokio::net::TcpStream;

use warden_policy::traffic::breaker::{Admission, State};

use crate::body::GatewayBody;
use crate::config::{RetryConfig, Target, UpstreamConfig};
use crate::traffic::{RetryBudget, TargetBreaker, TrafficState};
use conn::{Conn, Exchange, ExchangeError};
use h1::Framing;

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
    /// The connection broke during the exchange, the upstream broke the protocol, or the request
    /// body failed (e.g. over its limit).
    Exchange(ExchangeError),
    /// No answer (head) within the read timeout.
    Timeout,
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
        let (mut parts, mut body) = req.into_parts();
        let framing = h1::request_framing(
            &parts.method,
            &mut parts.headers,
            body.is_end_stream(),
            body.size_hint().exact(),
        )
        .map_err(|e| UpstreamError::Exchange(e.into()))?;
        let mut head = BytesMut::new();
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        h1::encode_request_head(&parts.method, target, &parts.headers, &mut head);
        let mut head = Some(head.freeze());

        if let Some((conn, idle_for)) = pool.take(t) {
            // A kept-alive connection can be closed by the server at the moment we reuse it (a
            // close already signalled is caught by `take`). Only a request that is safe to repeat
            // (idempotent, no body) is then sent again on a fresh connection, as nginx does. A
            // connection that finished a response moments ago is not at risk of the server's idle
            // close, and under load that is nearly every reuse.
            let replay =
                idle_for >= FRESH && idempotent(&parts.method) && framing == Framing::Empty;
            // The encoded head is kept only when it may be sent again.
            let first = if replay { head.clone() } else { head.take() };
            let first = first.expect("the head is there until sent without a way back");
            let mut ex =
                Exchange::new(conn, &parts.method, first, body, framing, self.read_timeout);
            match poll_fn(|cx| ex.poll_head(cx)).await {
                Ok(resp) => return Ok(ex.into_response(resp, pool.clone(), t)),
                Err(ExchangeError::Timeout) => return Err(UpstreamError::Timeout),
                Err(e) if replay => {
                    tracing::debug!(upstream = %self.name, error = %e, "reused connection failed; retrying on a new one");
                    body = crate::body::empty();
                }
                Err(e) => return Err(UpstreamError::Exchange(e)),
            }
        }
        let conn = match self.connect(&self.targets[t]).await {
            Ok(c) => c,
            Err(why) => {
                return Err(UpstreamError::Connect(
                    why,
                    Some(Box::new(Request::from_parts(parts, body))),
                ))
            }
        };
        let head = head.expect("kept: no pooled connection, or one that may be retried");
        let mut ex = Exchange::new(conn, &parts.method, head, body, framing, self.read_timeout);
        match poll_fn(|cx| ex.poll_head(cx)).await {
            Ok(resp) => Ok(ex.into_response(resp, pool.clone(), t)),
            Err(ExchangeError::Timeout) => Err(UpstreamError::Timeout),
            Err(e) => Err(UpstreamError::Exchange(e)),
        }
    }

    async fn connect(&self, target: &Target) -> Result<Conn, String> {
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
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(s)) => Ok(Conn::new(s)),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("connect timeout".into()),
        }
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
    if !idempotent(req.method()) || req.body().size_hint().exact() != Some(0) {
        return None;
    }
    let mut copy = Request::new(crate::body::empty());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

/// Methods whose repetition has the effect of one call (RFC 9110 §9.2.2).
fn idempotent(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::PUT
            | http::Method::DELETE
            | http::Method::TRACE
    )
}

/// Idle keep-alive connections of one worker, per target, most recently used last.
pub struct Pool {
    idle: Mutex<Vec<VecDeque<Idle>>>,
    max_idle: usize,
    idle_timeout: Duration,
    /// In its worker's list of pools to sweep (see `sweep_idle_pools`).
    registered: AtomicBool,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

thread_local! {
    /// The pools this thread has put connections into, for `sweep_idle_pools`.
    static IDLE_POOLS: RefCell<Vec<Weak<Pool>>> = const { RefCell::new(Vec::new()) };
}

/// How often a worker closes the idle connections its upstreams have closed or that have been
/// idle too long (see `sweep_idle_pools`).
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Closes, in this worker's pools, the idle connections that the server has closed or that sat idle
/// past the pool's timeout. Nothing watches an idle connection otherwise (no task per connection),
/// so without this a closed one would sit in CLOSE_WAIT until its target's next call.
pub fn sweep_idle_pools() {
    IDLE_POOLS.with(|pools| {
        pools.borrow_mut().retain(|p| match p.upgrade() {
            Some(pool) => {
                pool.sweep();
                true
            }
            None => false,
        })
    });
}

impl Pool {
    fn new(targets: usize, max_idle: usize, idle_timeout: Duration) -> Pool {
        Pool {
            idle: Mutex::new((0..targets).map(|_| VecDeque::new()).collect()),
            max_idle,
            idle_timeout,
            registered: AtomicBool::new(false),
        }
    }

    /// The most recently used live connection to target `t`, if any, and how long it sat idle.
    /// LIFO keeps a small hot set and lets the rest age out.
    fn take(&self, t: usize) -> Option<(Conn, Duration)> {
        let mut idle = lock(&self.idle);
        while let Some(mut entry) = idle[t].pop_back() {
            let idle_for = entry.since.elapsed();
            if idle_for < self.idle_timeout && entry.conn.is_usable() {
                return Some((entry.conn, idle_for));
            }
        }
        None
    }

    /// Takes back a connection whose exchange ended cleanly.
    pub(crate) fn put(self: &Arc<Self>, t: usize, conn: Conn) {
        if !self.registered.swap(true, Ordering::Relaxed) {
            IDLE_POOLS.with(|pools| pools.borrow_mut().push(Arc::downgrade(self)));
        }
        let mut idle = lock(&self.idle);
        let q = &mut idle[t];
        let now = Instant::now();
        while q
            .front()
            .is_some_and(|e| now.duration_since(e.since) >= self.idle_timeout)
        {
            q.pop_front();
        }
        if q.len() < self.max_idle {
            q.push_back(Idle { conn, since: now });
        }
    }

    fn sweep(&self) {
        let now = Instant::now();
        for q in lock(&self.idle).iter_mut() {
            q.retain_mut(|e| now.duration_since(e.since) < self.idle_timeout && e.conn.is_usable());
        }
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
