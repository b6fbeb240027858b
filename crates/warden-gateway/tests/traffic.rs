//! Traffic control through the real proxy: rate limits by each key type with their `RateLimit-*`
//! and `Retry-After` headers, per-flow limits, quota windows, concurrency caps and priority
//! shedding, the circuit breaker against an upstream that fails and recovers, and retries.
//! Limits shared through Redis are tested in `traffic_redis.rs`.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use warden_gateway::services::Services;
use warden_store::Store;

/// A GET (or other method) with headers; returns status, headers and body.
async fn call(
    gw: &warden_gateway::Gateway,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, Bytes) {
    let mut req = Request::builder().method(method).uri(url(gw, path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(&h1_client(), req.body(empty()).unwrap()).await
}

fn num(h: &http::HeaderMap, name: &str) -> u64 {
    h[name].to_str().unwrap().parse().unwrap()
}

/// Asserts a 429 from limit `name` with sane `Retry-After` and `RateLimit-*` headers.
fn assert_limited(s: StatusCode, h: &http::HeaderMap, b: &[u8], reason: &str, name: &str) {
    let doc = assert_problem(s, h, b, 429, "too-many-requests");
    assert_eq!(doc["reason"], reason);
    assert_eq!(doc["detail"], format!("limit `{name}`"));
    let retry = num(h, "retry-after");
    assert!(retry >= 1, "{h:?}");
    assert_eq!(num(h, "ratelimit-remaining"), 0);
    assert!(h["ratelimit"]
        .to_str()
        .unwrap()
        .starts_with(&format!("\"{name}\";r=0;t=")));
}

const LIMITS: &str = "\
trusted_proxies: [127.0.0.1/32]
traffic:
  limits:
    - {name: per-consumer, key: [consumer], rate: 2/min, routes: [c]}
    - {name: per-key, key: [credential], rate: 2/min, routes: [k]}
    - {name: per-ip, key: [ip], rate: 2/min, routes: [ip]}
    - {name: per-route, key: [route], rate: 2/min, routes: [r]}
    - {name: per-op, key: [operation], rate: 2/min, routes: [op]}
    - {name: per-tenant, key: [\"header:x-tenant\"], rate: 2/min, routes: [h]}
    - {name: login-by-ip, key: [ip], rate: 2/min, methods: [POST], paths: [/flow/login]}
upstreams:
  stub:
    targets: [\"http://UP\"]
routes:
  - {name: c, path_prefix: /c, upstream: stub}
  - {name: k, path_prefix: /k, upstream: stub}
  - {name: ip, path_prefix: /ip, upstream: stub, auth: none}
  - {name: r, path_prefix: /r, upstream: stub, auth: none}
  - {name: op, path_prefix: /op, upstream: stub, auth: none}
  - {name: h, path_prefix: /h, upstream: stub, auth: none}
  - {name: flow, path_prefix: /flow, upstream: stub, auth: none}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_by_each_key_type_with_headers() {
    let up = upstream().await;
    let dir = temp_dir("traffic-keys");
    let mut store = Store::open(&dir).unwrap();
    let (_, alice1) = store.create_key("alice", &[], &[], None, "test").unwrap();
    let (_, alice2) = store.create_key("alice", &[], &[], None, "test").unwrap();
    let (_, bob) = store.create_key("bob", &[], &[], None, "test").unwrap();
    let gw = start_with(
        &config_text(up.addr, LIMITS),
        Services::with_store(&dir).unwrap(),
    )
    .await;

    // Consumer: both of alice's keys draw on one allowance; bob has his own.
    let (s, h, _) = call(&gw, "GET", "/c/echo", &[("x-api-key", alice1.as_str())]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(num(&h, "ratelimit-limit"), 2);
    assert_eq!(num(&h, "ratelimit-remaining"), 1);
    assert!((1..=60).contains(&num(&h, "ratelimit-reset")), "{h:?}");
    assert_eq!(h["ratelimit-policy"], "\"per-consumer\";q=2;w=60");
    let (s, h, _) = call(&gw, "GET", "/c/echo", &[("x-api-key", alice2.as_str())]).await;
    assert_eq!((s, num(&h, "ratelimit-remaining")), (StatusCode::OK, 0));
    let (s, h, b) = call(&gw, "GET", "/c/echo", &[("x-api-key", alice1.as_str())]).await;
    assert_limited(s, &h, &b, "rate-limited", "per-consumer");
    assert!(
        (25..=30).contains(&num(&h, "retry-after")),
        "one call per 30 s: {h:?}"
    );
    assert_eq!(
        call(&gw, "GET", "/c/echo", &[("x-api-key", bob.as_str())])
            .await
            .0,
        StatusCode::OK
    );

    // Credential: each of alice's keys has its own allowance.
    for _ in 0..2 {
        assert_eq!(
            call(&gw, "GET", "/k/x", &[("x-api-key", alice1.as_str())])
                .await
                .0,
            StatusCode::OK
        );
    }
    let (s, h, b) = call(&gw, "GET", "/k/x", &[("x-api-key", alice1.as_str())]).await;
    assert_limited(s, &h, &b, "rate-limited", "per-key");
    assert_eq!(
        call(&gw, "GET", "/k/x", &[("x-api-key", alice2.as_str())])
            .await
            .0,
        StatusCode::OK
    );

    // Client IP (through a trusted proxy's X-Forwarded-For).
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    for _ in 0..2 {
        assert_eq!(
            call(&gw, "GET", "/ip/x", &from("203.0.113.7")).await.0,
            StatusCode::OK
        );
    }
    let (s, h, b) = call(&gw, "GET", "/ip/x", &from("203.0.113.7")).await;
    assert_limited(s, &h, &b, "rate-limited", "per-ip");
    assert_eq!(
        call(&gw, "GET", "/ip/x", &from("203.0.113.8")).await.0,
        StatusCode::OK
    );

    // Route: every caller shares it.
    assert_eq!(
        call(&gw, "GET", "/r/a", &from("198.51.100.1")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&gw, "GET", "/r/b", &from("198.51.100.2")).await.0,
        StatusCode::OK
    );
    let (s, h, b) = call(&gw, "GET", "/r/c", &from("198.51.100.3")).await;
    assert_limited(s, &h, &b, "rate-limited", "per-route");

    // Operation: GET and POST on one route count apart.
    for _ in 0..2 {
        assert_eq!(call(&gw, "GET", "/op/x", &[]).await.0, StatusCode::OK);
    }
    let (s, h, b) = call(&gw, "GET", "/op/x", &[]).await;
    assert_limited(s, &h, &b, "rate-limited", "per-op");
    assert_eq!(call(&gw, "POST", "/op/x", &[]).await.0, StatusCode::OK);

    // A header's value (a tenant), and calls without it sharing one counter.
    for _ in 0..2 {
        assert_eq!(
            call(&gw, "GET", "/h/x", &[("x-tenant", "acme")]).await.0,
            StatusCode::OK
        );
    }
    let (s, h, b) = call(&gw, "GET", "/h/x", &[("x-tenant", "acme")]).await;
    assert_limited(s, &h, &b, "rate-limited", "per-tenant");
    assert_eq!(
        call(&gw, "GET", "/h/x", &[("x-tenant", "globex")]).await.0,
        StatusCode::OK
    );

    // A per-flow limit: POST /flow/login only; other methods and paths are not counted.
    let ip = from("192.0.2.50");
    for _ in 0..2 {
        assert_eq!(
            call(&gw, "POST", "/flow/login", &ip).await.0,
            StatusCode::OK
        );
    }
    let (s, h, b) = call(&gw, "POST", "/flow/login", &ip).await;
    assert_limited(s, &h, &b, "rate-limited", "login-by-ip");
    let (s, h, _) = call(&gw, "GET", "/flow/login", &ip).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!h.contains_key("ratelimit"), "no limit applied: no headers");
    assert_eq!(
        call(&gw, "POST", "/flow/other", &ip).await.0,
        StatusCode::OK
    );

    // The refusals are counted with their reason.
    let m = metrics(&gw).await;
    assert!(m.contains("reason=\"rate-limited\""), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_is_counted_per_window_and_resets() {
    let up = upstream().await;
    let gw = start(&config_text(
        up.addr,
        &format!(
            "traffic:\n  limits:\n    - {{name: burst-quota, key: [ip], quota: 3/2s}}\n    - {{name: steady, key: [ip], rate: 100/s}}\n{BASIC}"
        ),
    ))
    .await;
    // Start just after a 2 s window begins, so the test does not straddle a boundary.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(2000 - now % 2000 + 30)).await;
    for left in [2, 1, 0] {
        let (s, h, _) = call(&gw, "GET", "/x", &[]).await;
        assert_eq!(s, StatusCode::OK);
        // The closest limit to refusing is the one reported.
        assert_eq!(num(&h, "ratelimit-remaining"), left);
        assert_eq!(num(&h, "ratelimit-limit"), 3);
        assert!(num(&h, "ratelimit-reset") <= 2);
        assert_eq!(
            h["ratelimit-policy"],
            "\"steady\";q=100;w=1, \"burst-quota\";q=3;w=2"
        );
    }
    let (s, h, b) = call(&gw, "GET", "/x", &[]).await;
    assert_limited(s, &h, &b, "quota-exceeded", "burst-quota");
    assert!(num(&h, "retry-after") <= 2);
    let hits = up.hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (s, h, _) = call(&gw, "GET", "/x", &[]).await;
    assert_eq!(s, StatusCode::OK, "a new window");
    assert_eq!(num(&h, "ratelimit-remaining"), 2);
    assert_eq!(
        up.hits.load(Ordering::SeqCst),
        hits + 1,
        "the refused call never went upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_caps_and_priority_shedding() {
    let up = upstream().await;
    let text = config_text(
        up.addr,
        "\
trusted_proxies: [127.0.0.1/32]
traffic:
  max_concurrent_per_consumer: 2
upstreams:
  stub:
    targets: [\"http://UP\"]
    max_concurrent: 4
    priority_shares: {low: 50, normal: 75}
routes:
  - {name: batch, path_prefix: /batch, strip_prefix: true, upstream: stub, priority: low}
  - {name: pay, path_prefix: /pay, strip_prefix: true, upstream: stub, priority: high}
",
    );
    let gw = Arc::new(start(&text).await);
    let slow = |path: &'static str, ip: &'static str| {
        let gw = gw.clone();
        tokio::spawn(async move { call(&gw, "GET", path, &[("x-forwarded-for", ip)]).await.0 })
    };
    // Two low-priority calls fill the low share (50% of 4).
    let low = [
        slow("/batch/slow/1500", "10.0.0.1"),
        slow("/batch/slow/1500", "10.0.0.2"),
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    let (s, h, b) = call(
        &gw,
        "GET",
        "/batch/slow/10",
        &[("x-forwarded-for", "10.0.0.3")],
    )
    .await;
    let doc = assert_problem(s, &h, &b, 503, "overloaded");
    assert_eq!(doc["reason"], "upstream-saturated");
    assert_eq!(h["retry-after"], "1");
    assert!(t.elapsed() < Duration::from_millis(500), "shed at once");
    // High priority still gets through, up to the whole cap.
    let high = [
        slow("/pay/slow/1500", "10.0.0.4"),
        slow("/pay/slow/1500", "10.0.0.5"),
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, h, b) = call(
        &gw,
        "GET",
        "/pay/slow/10",
        &[("x-forwarded-for", "10.0.0.6")],
    )
    .await;
    assert_eq!(
        assert_problem(s, &h, &b, 503, "overloaded")["reason"],
        "upstream-saturated"
    );
    for j in low.into_iter().chain(high) {
        assert_eq!(j.await.unwrap(), StatusCode::OK);
    }
    // Slots come back when responses finish.
    assert_eq!(call(&gw, "GET", "/batch/echo", &[]).await.0, StatusCode::OK);

    // Per consumer (here: per client IP, nobody is authenticated): two in flight, not three.
    let mine = [
        slow("/pay/slow/1000", "10.9.9.9"),
        slow("/pay/slow/1000", "10.9.9.9"),
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, h, b) = call(&gw, "GET", "/pay/echo", &[("x-forwarded-for", "10.9.9.9")]).await;
    assert_eq!(
        assert_problem(s, &h, &b, 429, "too-many-requests")["reason"],
        "too-many-concurrent-requests"
    );
    assert_eq!(
        call(&gw, "GET", "/pay/echo", &[("x-forwarded-for", "10.8.8.8")])
            .await
            .0,
        StatusCode::OK
    );
    for j in mine {
        assert_eq!(j.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(
        call(&gw, "GET", "/pay/echo", &[("x-forwarded-for", "10.9.9.9")])
            .await
            .0,
        StatusCode::OK
    );
}

/// An upstream that answers 503 while `failing` is set, 200 otherwise; counts its calls.
async fn flaky_upstream(failing: Arc<AtomicBool>, hits: Arc<AtomicUsize>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (failing, hits) = (failing.clone(), hits.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |_req| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let status = if failing.load(Ordering::SeqCst) {
                        503
                    } else {
                        200
                    };
                    async move {
                        let mut r = Response::new(Full::new(Bytes::from_static(b"{}")));
                        *r.status_mut() = StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_opens_probes_and_closes() {
    let failing = Arc::new(AtomicBool::new(true));
    let hits = Arc::new(AtomicUsize::new(0));
    let addr = flaky_upstream(failing.clone(), hits.clone()).await;
    let gw = start(&config_text(
        addr,
        "\
upstreams:
  stub:
    targets: [\"http://UP\"]
    circuit_breaker: {consecutive_failures: 3, open_for: 700ms}
routes:
  - {name: main, path_prefix: /, upstream: stub}
",
    ))
    .await;
    for _ in 0..3 {
        assert_eq!(get(&gw, "/x").await.0, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    // Open: answered at once, without calling the upstream.
    let (s, h, b) = get(&gw, "/x").await;
    let doc = assert_problem(s, &h, &b, 503, "circuit-open");
    assert_eq!(doc["reason"], "circuit-open");
    assert_eq!(h["retry-after"], "1");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert!(metrics(&gw).await.contains(&format!(
        "warden_circuit_breaker_open{{upstream=\"stub\",target=\"{addr}\"}} 1"
    )));

    // Half-open: one probe goes through; it fails, so the breaker opens again.
    tokio::time::sleep(Duration::from_millis(750)).await;
    assert_eq!(get(&gw, "/x").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    assert_problem_slug(&gw, "circuit-open").await;
    assert_eq!(hits.load(Ordering::SeqCst), 4);

    // The upstream recovers: the next probe succeeds and closes the breaker.
    failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(750)).await;
    for _ in 0..5 {
        assert_eq!(get(&gw, "/x").await.0, StatusCode::OK);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 9);
    assert!(metrics(&gw).await.contains(&format!(
        "warden_circuit_breaker_open{{upstream=\"stub\",target=\"{addr}\"}} 0"
    )));
}

async fn assert_problem_slug(gw: &warden_gateway::Gateway, slug: &str) {
    let (s, h, b) = get(gw, "/x").await;
    assert_problem(s, &h, &b, 503, slug);
}

async fn metrics(gw: &warden_gateway::Gateway) -> String {
    let admin = gw.admin_addr().unwrap();
    let (_, _, m) = send(
        &h1_client(),
        Request::get(format!("http://{admin}/metrics"))
            .body(empty())
            .unwrap(),
    )
    .await;
    String::from_utf8_lossy(&m).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_calls_are_retried_on_another_target_only_when_safe() {
    let up = upstream().await;
    // A port nobody listens on: connections are refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = start(&config_text(
        up.addr,
        &format!(
            "\
upstreams:
  stub:
    targets: [\"http://{dead}\", \"http://UP\"]
    circuit_breaker: {{enabled: false}}
    retries: {{attempts: 1, budget_percent: 100, budget_min_per_sec: 100}}
routes:
  - {{name: main, path_prefix: /, upstream: stub}}
"
        ),
    ))
    .await;
    // Every GET lands, whichever target round robin picked first.
    for _ in 0..6 {
        assert_eq!(get(&gw, "/echo").await.0, StatusCode::OK);
    }
    assert_eq!(up.hits.load(Ordering::SeqCst), 6);
    // A refused connection means the request never left: a POST with a body goes on too.
    for _ in 0..2 {
        let req = Request::post(url(&gw, "/echo"))
            .body(warden_gateway::body::full(Bytes::from_static(b"{\"a\":1}")))
            .unwrap();
        assert_eq!(send(&h1_client(), req).await.0, StatusCode::OK);
    }
    assert_eq!(up.hits.load(Ordering::SeqCst), 8);

    // An answer the config says to retry (503): a GET is asked again, a POST (which the upstream
    // may have acted on) never.
    let hits = Arc::new(AtomicUsize::new(0));
    let flaky = flaky_upstream(Arc::new(AtomicBool::new(true)), hits.clone()).await;
    let gw = start(&config_text(
        flaky,
        "\
upstreams:
  stub:
    targets: [\"http://UP\"]
    circuit_breaker: {enabled: false}
    retries: {attempts: 1, statuses: [503], budget_percent: 100, budget_min_per_sec: 100}
routes:
  - {name: main, path_prefix: /, upstream: stub}
",
    ))
    .await;
    assert_eq!(get(&gw, "/x").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(hits.load(Ordering::SeqCst), 2, "the GET was tried twice");
    let req = Request::post(url(&gw, "/x"))
        .body(warden_gateway::body::full(Bytes::from_static(b"{}")))
        .unwrap();
    assert_eq!(
        send(&h1_client(), req).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3, "the POST only once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_traffic_config_is_refused_at_load_with_its_line() {
    let base = "listeners:\n  - address: 127.0.0.1:0\n    plain_http: true\nupstreams:\n  s:\n    targets: [\"http://127.0.0.1:9\"]\nroutes:\n  - {name: main, path_prefix: /, upstream: s}\n";
    for (extra, line, needle) in [
        (
            "traffic:\n  limits:\n    - {name: a, rate: 10/fortnight}\n",
            11,
            "period",
        ),
        (
            "traffic:\n  limits:\n    - {name: a}\n",
            11,
            "give a `rate`",
        ),
        (
            "traffic:\n  limits:\n    - {name: a, rate: 1/s, store: shared}\n",
            11,
            "traffic.redis",
        ),
        (
            "traffic:\n  limits:\n    - {name: a, rate: 1/s, key: [tenant]}\n",
            11,
            "unknown key part",
        ),
        (
            "traffic:\n  limits:\n    - {name: a, rate: 1/s, routes: [nope]}\n",
            11,
            "no route is named",
        ),
        ("traffic:\n  redis: {url: \"http://x\"}\n", 10, "redis://"),
    ] {
        let text = format!("{base}{extra}");
        let err = warden_gateway::Config::parse(&text, std::path::Path::new("t.yaml")).unwrap_err();
        assert!(err.to_string().contains(needle), "{extra}: {err}");
        assert_eq!(err.line, Some(line), "{extra}: {err}");
    }
}
