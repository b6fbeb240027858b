//! Listeners and connections: accept, TLS handshake, HTTP/1.1 or HTTP/2 (ALPN on TLS, prior
//! knowledge h2c on plain listeners), and the limits that protect the gateway itself.
//!
//! Per connection, a watchdog enforces what hyper alone does not: hyper's header read timeout only
//! starts once it waits for an HTTP/1 request head, so a client that connects and sends nothing (or
//! dribbles the first bytes before the protocol is known, or holds an idle HTTP/2 connection) would
//! otherwise hold a slot for ever.

use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use warden_policy::ProblemKind;

use crate::config::Limits;
use crate::proxy::{self, ConnInfo};
use crate::shared::Shared;
use crate::workers::Workers;

/// Connections accepted past `max_connections` get a quick 503 rather than a silent reset, but only
/// this many at once; beyond that they are closed straight away.
const OVERFLOW_SLOTS: usize = 64;

pub struct ListenerTask {
    pub listener: TcpListener,
    pub tls: Option<TlsAcceptor>,
}

/// Tracks live connections so shutdown can wait for them.
#[derive(Default)]
pub struct ConnTracker {
    live: AtomicUsize,
    notify: tokio::sync::Notify,
}

impl ConnTracker {
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    pub async fn wait_idle(&self) {
        loop {
            let notified = self.notify.notified();
            if self.live() == 0 {
                return;
            }
            notified.await;
        }
    }
}

struct ConnGuard {
    shared: Arc<Shared>,
    tracker: Arc<ConnTracker>,
    counted: bool,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.counted {
            self.shared.open_connections.fetch_sub(1, Ordering::AcqRel);
        }
        if self.tracker.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.tracker.notify.notify_waiters();
        }
    }
}

pub async fn accept_loop(
    task: ListenerTask,
    shared: Arc<Shared>,
    tracker: Arc<ConnTracker>,
    workers: Arc<Workers>,
    mut shutdown: watch::Receiver<bool>,
) {
    let overflow = Arc::new(tokio::sync::Semaphore::new(OVERFLOW_SLOTS));
    loop {
        let accepted = tokio::select! {
            res = task.listener.accept() => res,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let limits = shared.peek().config.limits.clone();
        let open = shared.open_connections.fetch_add(1, Ordering::AcqRel);
        let over = open >= limits.max_connections;
        if over {
            shared.open_connections.fetch_sub(1, Ordering::AcqRel);
            shared.metrics.rejected_connections.inc();
        }
        tracker.live.fetch_add(1, Ordering::AcqRel);
        let guard = ConnGuard {
            shared: shared.clone(),
            tracker: tracker.clone(),
            counted: !over,
        };
        let conn = ConnInfo::new(shared.clone(), peer, task.tls.is_some());
        let tls = task.tls.clone();
        let shutdown = shutdown.clone();
        if over {
            let Ok(permit) = overflow.clone().try_acquire_owned() else {
                drop(stream);
                drop(guard);
                continue;
            };
            tokio::spawn(async move {
                let _permit = permit;
                let _guard = guard;
                serve_overloaded(stream, tls, conn, &limits).await;
            });
            continue;
        }
        // The socket moves to a worker's runtime: deregister it here, register it there.
        let Ok(std_stream) = stream.into_std() else {
            continue;
        };
        workers.dispatch(async move {
            let _guard = guard;
            match TcpStream::from_std(std_stream) {
                Ok(stream) => serve(stream, tls, conn, limits, shutdown).await,
                Err(e) => tracing::warn!(error = %e, "cannot move a connection to its worker"),
            }
        });
    }
}

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // No hyper header_read_timeout: the connection watchdog enforces it for every request head,
    // which spares a timer per request on the hot path (bench/README.md).
    b.http1()
        // hyper refuses buffers under 8 KiB; the head limit is at least that on HTTP/1.1.
        .max_buf_size((limits.max_header_bytes.0 as usize).max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes.0).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    b
}

async fn serve(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    conn: ConnInfo,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = ActivityIo {
        inner: stream,
        activity: activity.clone(),
    };
    match tls {
        Some(acceptor) => {
            // The handshake is part of "sending the request head" for slowloris purposes.
            match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(io)).await {
                Ok(Ok(tls_stream)) => {
                    if tls_stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        activity.h2.store(true, Ordering::Relaxed);
                    }
                    serve_http(tls_stream, conn, &limits, activity, shutdown).await
                }
                Ok(Err(e)) => {
                    tracing::debug!(peer = %conn.peer, error = %e, "TLS handshake failed")
                }
                Err(_) => tracing::debug!(peer = %conn.peer, "TLS handshake timed out"),
            }
        }
        None => {
            activity.sniff_h2.store(true, Ordering::Relaxed);
            serve_http(io, conn, &limits, activity, shutdown).await
        }
    }
}

async fn serve_http<IO>(
    io: IO,
    conn: ConnInfo,
    limits: &Limits,
    activity: Arc<Activity>,
    mut shutdown: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = builder(limits);
    let act = activity.clone();
    let peer = conn.peer;
    let conn = Arc::new(conn);
    let service = service_fn(move |req| {
        let act = act.clone();
        let conn = conn.clone();
        async move {
            let _busy = act.begin_request();
            proxy::handle(conn, req, act.responding()).await
        }
    });
    let mut connection = pin!(builder.serve_connection(TokioIo::new(io), service));
    let mut draining = *shutdown.borrow();
    if draining {
        connection.as_mut().graceful_shutdown();
    }
    let mut watchdog = Watchdog::new();
    let mut tick =
        tokio::time::interval(Duration::from_millis(250).min(limits.header_read_timeout / 4));
    loop {
        tokio::select! {
            res = connection.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.changed(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = tick.tick() => {
                if let Some(why) = watchdog.check(&activity, limits.header_read_timeout, limits.idle_timeout) {
                    tracing::debug!(peer = %peer, why, "closing connection");
                    return; // Dropping the connection closes the socket.
                }
            }
        }
    }
}

/// Answers one request with 503 and closes: for connections past `max_connections`.
async fn serve_overloaded(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    conn: ConnInfo,
    limits: &Limits,
) {
    let service = service_fn(|_req| async {
        let id = uuid::Uuid::now_v7().to_string();
        let mut resp = crate::problem::simple(ProblemKind::Overloaded, "too-many-connections", &id);
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        resp.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
        Ok::<_, std::convert::Infallible>(resp)
    });
    let deadline = limits.header_read_timeout.min(Duration::from_secs(5));
    let fut = async {
        let builder = builder(limits);
        match tls {
            Some(acceptor) => {
                if let Ok(s) = acceptor.accept(stream).await {
                    let _ = builder.serve_connection(TokioIo::new(s), service).await;
                }
            }
            None => {
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        }
    };
    if tokio::time::timeout(deadline, fut).await.is_err() {
        tracing::debug!(peer = %conn.peer, "overflow connection timed out");
    }
}

/// Whether bytes moved on a connection and how many requests it has running. I/O only sets flags
/// (no clock read on the hot path); the watchdog turns flags into times on its own tick.
struct Activity {
    moved: AtomicBool,
    /// Bytes arrived while no request was running: the head of the next request has begun.
    read_while_idle: AtomicBool,
    requests_started: AtomicU64,
    /// Requests whose response head is not out yet (waiting on checks or the upstream).
    busy: AtomicUsize,
    /// Requests whose response is not finished yet; reads meanwhile are not a next head.
    responding: AtomicUsize,
    /// HTTP/2: reads between requests are frames (PING, SETTINGS), not a request head.
    h2: AtomicBool,
    /// Plain listener: look at the first bytes read for the HTTP/2 preface.
    sniff_h2: AtomicBool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            moved: AtomicBool::new(false),
            read_while_idle: AtomicBool::new(false),
            requests_started: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            responding: AtomicUsize::new(0),
            h2: AtomicBool::new(false),
            sniff_h2: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        self.moved.store(true, Ordering::Relaxed);
    }

    fn read(&self, bytes: &[u8]) {
        self.touch();
        if self.responding.load(Ordering::Relaxed) == 0 {
            self.read_while_idle.store(true, Ordering::Relaxed);
        }
        if self.sniff_h2.swap(false, Ordering::Relaxed) {
            // A first read too short to tell counts as HTTP/2: that only forgoes the keep-alive
            // head timer; the idle timeout still applies.
            const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";
            let n = bytes.len().min(PREFACE.len());
            if bytes[..n] == PREFACE[..n] {
                self.h2.store(true, Ordering::Relaxed);
            }
        }
    }

    fn begin_request(self: &Arc<Self>) -> Busy {
        self.requests_started.fetch_add(1, Ordering::Relaxed);
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.read_while_idle.store(false, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// Held until the response is finished (see `proxy::handle`).
    fn responding(self: &Arc<Self>) -> Responding {
        self.responding.fetch_add(1, Ordering::AcqRel);
        Responding(self.clone())
    }
}

/// The watchdog's view of one connection: when it started, when bytes last moved, and since when a
/// next request head has been arriving, to the precision of its tick.
struct Watchdog {
    start: Instant,
    last: Instant,
    /// (requests started at the time, first tick that saw head bytes without a request).
    head_pending: Option<(u64, Instant)>,
}

impl Watchdog {
    fn new() -> Watchdog {
        let now = Instant::now();
        Watchdog {
            start: now,
            last: now,
            head_pending: None,
        }
    }

    /// Why the connection should be closed now, if it should.
    fn check(
        &mut self,
        a: &Activity,
        header_timeout: Duration,
        idle_timeout: Duration,
    ) -> Option<&'static str> {
        const SLOW_HEAD: &str = "no complete request head within header_read_timeout";
        let now = Instant::now();
        if a.moved.swap(false, Ordering::Relaxed) {
            self.last = now;
        }
        if a.busy.load(Ordering::Acquire) > 0 {
            self.head_pending = None;
            return None;
        }
        let started = a.requests_started.load(Ordering::Relaxed);
        if started == 0 {
            return (now - self.start > header_timeout).then_some(SLOW_HEAD);
        }
        // A keep-alive HTTP/1 connection whose next head trickles in (slowloris after one good
        // request): timed from the first tick that saw its bytes.
        if !a.h2.load(Ordering::Relaxed)
            && a.responding.load(Ordering::Acquire) == 0
            && a.read_while_idle.load(Ordering::Relaxed)
        {
            let since = match self.head_pending {
                Some((n, since)) if n == started => since,
                _ => {
                    self.head_pending = Some((started, now));
                    now
                }
            };
            if now - since > header_timeout {
                return Some(SLOW_HEAD);
            }
        } else {
            self.head_pending = None;
        }
        (now - self.last > idle_timeout).then_some("idle_timeout")
    }
}

struct Responding(Arc<Activity>);

impl Drop for Responding {
    fn drop(&mut self) {
        self.0.responding.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Records activity on every successful read or write.
struct ActivityIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for ActivityIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read(&buf.filled()[before..]);
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ActivityIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
