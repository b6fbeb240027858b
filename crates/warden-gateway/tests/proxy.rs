//! The proxy over real sockets: forwarding and header hygiene, h1/h2/TLS, streaming, every error the
//! gateway makes, the gateway's own limits, IP rules, graceful shutdown and reload.

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_with_clean_headers_both_ways() {
    let up = upstream().await;
    let gw = start(&config_text(up.addr, BASIC)).await;
    let req = Request::get(url(&gw, "/echo?a=1"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("connection", "x-secret")
        .header("x-secret", "dropped")
        .header("keep-alive", "timeout=1")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("x-request-id", "test-123")
        .body(empty())
        .unwrap();
    let (status, headers, body) = send(&h1_client(), req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = echoed(&body);
    // A client cannot forge its address from an untrusted peer.
    assert_eq!(header(&seen, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(header(&seen, "x-forwarded-proto"), Some("http"));
    assert!(header(&seen, "forwarded")
        .unwrap()
        .starts_with("for=127.0.0.1;proto=http;host="));
    assert_eq!(header(&seen, "x-request-id"), Some("test-123"));
    for gone in [
        "x-secret",
        "keep-alive",
        "proxy-authorization",
        "connection",
    ] {
        assert_eq!(header(&seen, gone), None, "{gone} reached the upstream");
    }
    // And the upstream's hop-by-hop headers do not reach the client.
    assert!(headers.get("x-upstream-private").is_none());
    assert!(headers.get("keep-alive").is_none());
    assert_eq!(headers["x-request-id"], "test-123");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generates_a_request_id_when_none_or_garbage() {
    let up = upstream().await;
    let gw = start(&config_text(up.addr, BASIC)).await;
    let req = Request::get(url(&gw, "/echo"))
        .header("x-request-id", "bad id with spaces")
        .body(empty())
        .unwrap();
    let (_, headers, body) = send(&h1_client(), req).await;
    let id = headers["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(header(&echoed(&body), "x-request-id"), Some(id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_client_reaches_http1_upstream() {
    let up = upstream().await;
    let gw = start(&config_text(up.addr, BASIC)).await;
    let (status, _, body) = send(
        &h2c_client(),
        Request::get(url(&gw, "/echo")).body(empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["version"], "HTTP/1.1");
    assert!(
        header(&echoed(&body), "host").is_some(),
        "h2 :authority must become Host upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_offers_h2_and_http1_via_alpn() {
    let up = upstream().await;
    let cert = test_cert();
    let text = format!(
        "listeners:\n  - address: 127.0.0.1:0\n    tls:\n      cert: {}\n      key: {}\nadmin:\n  address: null\n{}",
        cert.dir.join("cert.pem").display(),
        cert.dir.join("key.pem").display(),
        BASIC.replace("UP", &up.addr.to_string())
    );
    let gw = start(&text).await;
    let addr = gw.listen_addrs()[0];
    let (proto, status, body) = tls_get(addr, &cert.cert_pem, &[b"h2", b"http/1.1"], "/echo").await;
    assert_eq!((proto.as_slice(), status), (&b"h2"[..], StatusCode::OK));
    assert_eq!(header(&echoed(&body), "x-forwarded-proto"), Some("https"));
    let (proto, status, _) = tls_get(addr, &cert.cert_pem, &[b"http/1.1"], "/echo").await;
    assert_eq!(
        (proto.as_slice(), status),
        (&b"http/1.1"[..], StatusCode::OK)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_large_bodies_both_ways() {
    let up = upstream().await;
    let gw = start(&config_text(
        up.addr,
        &format!("limits:\n  max_body_bytes: 64MiB\n{BASIC}"),
    ))
    .await;
    let size = 24 << 20;
    for client in [h1_client(), h2c_client()] {
        let body = Generated {
            left: size,
            chunk: 64 << 10,
        }
        .boxed_unsync();
        let req = Request::post(url(&gw, "/upload")).body(body).unwrap();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let mut got = 0usize;
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                got += data.len();
            }
        }
        assert_eq!(got, size);
        let (status, _, down) = send(
            &client,
            Request::get(url(&gw, &format!("/download/{}", 32 << 20)))
                .body(empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(down.len(), 32 << 20);
        assert!(down.iter().all(|b| *b == b'd'));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_is_404_problem() {
    let up = upstream().await;
    let gw = start(&config_text(
        up.addr,
        &BASIC.replace("path_prefix: /", "path_prefix: /api"),
    ))
    .await;
    let (s, h, b) = get(&gw, "/elsewhere").await;
    let doc = assert_problem(s, &h, &b, 404, "no-route");
    assert_eq!(doc["reason"], "no-route");
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    let (s, _, _) = get(&gw, "/api/x").await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_413_with_or_without_length() {
    let up = upstream().await;
    let gw = start(&config_text(
        up.addr,
        &format!("limits:\n  max_body_bytes: 1KiB\n{BASIC}"),
    ))
    .await;
    let req = Request::post(url(&gw, "/upload"))
        .body(warden_gateway::body::full(vec![b'a'; 2000]))
        .unwrap();
    let (s, h, b) = send(&h1_client(), req).await;
    assert_problem(s, &h, &b, 413, "payload-too-large");
    assert_eq!(
        up.hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "declared length is refused before the upstream"
    );
    // Chunked, no length: refused once the stream passes the limit.
    let req = Request::post(url(&gw, "/upload"))
        .body(
            Generated {
                left: 4000,
                chunk: 500,
            }
            .boxed_unsync(),
        )
        .unwrap();
    let resp = h1_client().request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let b = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    assert_problem(parts.status, &parts.headers, &b, 413, "payload-too-large");
    // Within the limit is fine.
    let req = Request::post(url(&gw, "/upload"))
        .body(warden_gateway::body::full(vec![b'a'; 1000]))
        .unwrap();
    assert_eq!(send(&h1_client(), req).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_502_problem() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let dead: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let gw = start(&config_text(dead, BASIC)).await;
    let (s, h, b) = get(&gw, "/x").await;
    let doc = assert_problem(s, &h, &b, 502, "upstream-unavailable");
    assert_eq!(doc["reason"], "upstream-connect-failed");
    let metrics = admin_get(&gw, "/metrics").await;
    assert!(
        metrics.contains("warden_upstream_errors_total{upstream=\"stub\",kind=\"connect\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_kept_alive_and_reused() {
    let up = upstream().await;
    let gw = start(&config_text(up.addr, &format!("workers: 1\n{BASIC}"))).await;
    for _ in 0..20 {
        assert_eq!(get(&gw, "/echo").await.0, StatusCode::OK);
    }
    // Bodies read in full return their connection to the pool, so one connection serves all.
    assert_eq!(up.conns.load(std::sync::atomic::Ordering::SeqCst), 1);
    let (s, _, body) = get(&gw, &format!("/download/{}", 1 << 20)).await;
    assert_eq!((s, body.len()), (StatusCode::OK, 1 << 20));
    assert_eq!(up.conns.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// An upstream that answers one request per connection and then drops the socket without saying
/// `Connection: close`, as servers with short keep-alive timeouts do.
async fn one_shot_upstream(linger: Duration) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                tokio::time::sleep(linger).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_closing_idle_connections_causes_no_errors() {
    let addr = one_shot_upstream(Duration::from_millis(20)).await;
    let gw = start(&config_text(addr, &format!("workers: 1\n{BASIC}"))).await;
    for i in 0..10 {
        let (s, _, body) = get(&gw, "/x").await;
        assert_eq!((s, &body[..]), (StatusCode::OK, &b"ok"[..]), "request {i}");
        // Sometimes the close has been seen before the next request, sometimes not yet.
        tokio::time::sleep(Duration::from_millis(if i % 2 == 0 { 5 } else { 60 })).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_never_sent_twice() {
    // The reused connection dies after the POST went out: the upstream may have acted on it, so
    // the gateway reports the failure instead of repeating the request.
    let addr = one_shot_upstream(Duration::from_millis(300)).await;
    let gw = start(&config_text(addr, &format!("workers: 1\n{BASIC}"))).await;
    assert_eq!(get(&gw, "/x").await.0, StatusCode::OK);
    let req = Request::post(url(&gw, "/orders"))
        .body(warden_gateway::body::full(&b"{}"[..]))
        .unwrap();
    let (s, h, b) = send(&h1_client(), req).await;
    assert_eq!(
        assert_problem(s, &h, &b, 502, "upstream-unavailable")["reason"],
        "upstream-failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_is_504_problem() {
    let up = upstream().await;
    let gw = start(&config_text(
        up.addr,
        &BASIC.replace("read_timeout: 2s", "read_timeout: 200ms"),
    ))
    .await;
    let started = Instant::now();
    let (s, h, b) = get(&gw, "/slow/3000").await;
    assert_problem(s, &h, &b, 504, "upstream-timeout");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_in_flight_is_503_problem() {
    let up = upstream().await;
    let gw = start(&config_text(
        up.addr,
        &format!("limits:\n  max_requests_in_flight: 1\n{BASIC}"),
    ))
    .await;
    let slow_url = url(&gw, "/slow/1500");
    let slow = tokio::spawn(async move {
        send(&h1_client(), Request::get(slow_url).body(empty()).unwrap())
            .await
            .0
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, h, b) = get(&gw, "/echo").await;
    let doc = assert_problem(s, &h, &b, 503, "overloaded");
    assert_eq!(doc["reason"], "too-many-requests-in-flight");
    assert_eq!(slow.await.unwrap(), StatusCode::OK);
    assert_eq!(
        get(&gw, "/echo").await.0,
        StatusCode::OK,
        "the slot is released once the response is done"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_get_503_and_close() {
    let up = upstream().await;
    let gw = start(&config_text(
        up.addr,
        &format!("limits:\n  max_connections: 1\n{BASIC}"),
    ))
    .await;
    let holder = TcpStream::connect(gw.listen_addrs()[0]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answer = raw(&gw, b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too-many-connections"), "{answer}");
    drop(holder);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(&gw, "/echo").await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_clients_are_cut_off() {
    let up = upstream().await;
    let gw = start(&config_text(
        up.addr,
        &format!("limits:\n  header_read_timeout: 500ms\n{BASIC}"),
    ))
    .await;
    let addr = gw.listen_addrs()[0];
    // Trickles one header byte every 100 ms, for ever.
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /echo HTTP/1.1\r\nHost: t\r\nX-A: ")
        .await
        .unwrap();
    let closed_after = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if s.write_all(b"a").await.is_err() || started.elapsed() > Duration::from_secs(5) {
            break started.elapsed();
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
            Ok(Ok(_)) => break started.elapsed(), // a 408 or similar, then close
            Err(_) => {}
        }
    };
    assert!(
        closed_after < Duration::from_secs(3),
        "trickling client held on for {closed_after:?}"
    );
    // A client that connects and says nothing at all (before HTTP/1 vs HTTP/2 is even known).
    let started = Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("silent client not cut off");
    assert!(matches!(n, Ok(0) | Err(_)));
    assert!(started.elapsed() < Duration::from_secs(3));
    // The server task releases its slot just after closing the socket: allow it that moment.
    let deadline = Instant::now() + Duration::from_secs(1);
    while gw.open_connections() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(gw.open_connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_after_a_good_request_is_cut_off() {
    // The header timeout holds for every request on a keep-alive connection, not just the first.
    let up = upstream().await;
    let gw = start(&config_text(
        up.addr,
        &format!("limits:\n  header_read_timeout: 500ms\n  idle_timeout: 30s\n{BASIC}"),
    ))
    .await;
    let mut s = TcpStream::connect(gw.listen_addrs()[0]).await.unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    // A second request whose head never completes: one byte every 100 ms.
    s.write_all(b"GET /x HTTP/1.1\r\nX-A: ").await.unwrap();
    let started = Instant::now();
    let closed_after = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if s.write_all(b"a").await.is_err() || started.elapsed() > Duration::from_secs(5) {
            break started.elapsed();
        }
        match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            Ok(Ok(_)) | Ok(Err(_)) => break started.elapsed(),
            Err(_) => {}
        }
    };
    assert!(
        closed_after < Duration::from_secs(3),
        "trickling keep-alive client held on for {closed_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_download_on_keep_alive_is_not_mistaken_for_a_slow_head() {
    // While a response streams for longer than the header timeout, the next pipelined request
    // waits its turn; the connection is not cut.
    let up = upstream().await;
    let gw = start(&config_text(
        up.addr,
        &format!("limits:\n  header_read_timeout: 300ms\n{BASIC}"),
    ))
    .await;
    let mut s = TcpStream::connect(gw.listen_addrs()[0]).await.unwrap();
    s.write_all(b"GET /download/16777216 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    // The response cannot fit in the socket buffers: it is still streaming when the next request
    // arrives and for well past the header timeout.
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(b"GET /slow/1 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let deadline = Instant::now() + Duration::from_secs(5);
    // Both responses: the 16 MiB body and then the short one, whose last bytes end the stream.
    while !got.ends_with(b"slow done") && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    assert_eq!(
        got.windows(12).filter(|w| w == b"HTTP/1.1 200").count(),
        2,
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed() {
    let up = upstream().await;
    let gw = start(&config_text(
        up.addr,
        &format!("limits:\n  idle_timeout: 400ms\n{BASIC}"),
    ))
    .await;
    let mut s = TcpStream::connect(gw.listen_addrs()[0]).await.unwrap();
    s.write_all(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Keep-alive: the connection stays open after the answer, until idle_timeout passes.
    let started = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("idle connection not closed");
    assert!(matches!(end, Ok(0) | Err(_)));
    let idle_for = started.elapsed();
    assert!(
        idle_for >= Duration::from_millis(300) && idle_for < Duration::from_secs(2),
        "{idle_for:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused() {
    let up = upstream().await;
    let gw = start(&config_text(up.addr, BASIC)).await;
    let big = "a".repeat(40 * 1024);
    let answer = raw(
        &gw,
        format!("GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_never_reach_the_router() {
    let up = upstream().await;
    let gw = start(&config_text(up.addr, BASIC)).await;
    for path in ["/public/../admin", "/public/%2e%2e/admin", "/a%2fb"] {
        let answer = raw(
            &gw,
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(answer.contains("path-not-normalized"));
    }
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_rules_per_route() {
    let up = upstream().await;
    let routes = "\
upstreams:
  stub:
    targets: [\"http://UP\"]
routes:
  - name: denied
    path_prefix: /denied
    upstream: stub
    ip_rules: {deny: [127.0.0.0/8]}
  - name: office
    path_prefix: /office
    upstream: stub
    ip_rules: {allow: [10.0.0.0/8]}
  - name: open
    path_prefix: /
    upstream: stub
";
    let gw = start(&config_text(up.addr, routes)).await;
    let (s, h, b) = get(&gw, "/denied/x").await;
    assert_eq!(
        assert_problem(s, &h, &b, 403, "forbidden")["reason"],
        "ip-denied"
    );
    let (s, h, b) = get(&gw, "/office").await;
    assert_eq!(
        assert_problem(s, &h, &b, 403, "forbidden")["reason"],
        "ip-not-allowed"
    );
    // A forged X-Forwarded-For from an untrusted peer changes nothing.
    let req = Request::get(url(&gw, "/office"))
        .header("x-forwarded-for", "10.1.1.1")
        .body(empty())
        .unwrap();
    assert_eq!(send(&h1_client(), req).await.0, StatusCode::FORBIDDEN);
    assert_eq!(get(&gw, "/open").await.0, StatusCode::OK);
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Behind a trusted proxy (here: loopback), the forwarded client address is the one judged.
    let trusted = format!("trusted_proxies: [127.0.0.0/8]\n{routes}");
    let gw = start(&config_text(up.addr, &trusted)).await;
    let req = Request::get(url(&gw, "/office"))
        .header("x-forwarded-for", "10.1.1.1")
        .body(empty())
        .unwrap();
    let (s, _, body) = send(&h1_client(), req).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        header(&echoed(&body), "x-forwarded-for"),
        Some("10.1.1.1, 127.0.0.1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let up = upstream().await;
    let gw = std::sync::Arc::new(start(&config_text(up.addr, BASIC)).await);
    let slow_url = url(&gw, "/slow/800");
    let in_flight = tokio::spawn(async move {
        send(&h1_client(), Request::get(slow_url).body(empty()).unwrap()).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let g = gw.clone();
    let stopping = tokio::spawn(async move { g.shutdown().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Draining: readiness turns red so load balancers stop sending, new connections are refused.
    assert!(
        TcpStream::connect(gw.listen_addrs()[0]).await.is_err(),
        "listener still accepting while draining"
    );
    assert_eq!(admin_get(&gw, "/readyz").await, "draining\n");
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"slow done");
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("shutdown finished")
        .unwrap();
    assert!(TcpStream::connect(gw.listen_addrs()[0]).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_good_config_and_keeps_old_on_broken() {
    let up = upstream().await;
    let dir = std::env::temp_dir().join(format!("warden-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("warden.yaml");
    let text = config_text(up.addr, BASIC);
    std::fs::write(&file, &text).unwrap();
    let gw = start(&text).await;
    assert_eq!(get(&gw, "/x").await.0, StatusCode::OK);
    let first_hash = gw.config_hash();

    let denied = config_text(
        up.addr,
        &format!("{BASIC}    ip_rules: {{deny: [127.0.0.1/32]}}\n"),
    );
    std::fs::write(&file, &denied).unwrap();
    let new_hash = gw.reload(&file).expect("good config reloads");
    assert_ne!(new_hash, first_hash);
    assert_eq!(get(&gw, "/x").await.0, StatusCode::FORBIDDEN);

    std::fs::write(&file, denied.replace("upstream: stub", "upstream: missing")).unwrap();
    let err = gw.reload(&file).expect_err("broken config is refused");
    assert_eq!(err.field.as_deref(), Some("routes[0].upstream"));
    assert!(err.line.is_some());
    assert_eq!(gw.config_hash(), new_hash, "the old config keeps serving");
    assert_eq!(get(&gw, "/x").await.0, StatusCode::FORBIDDEN);
    let metrics = admin_get(&gw, "/metrics").await;
    assert!(
        metrics.contains("warden_config_reloads_total{result=\"rejected\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_serves_health_readiness_and_metrics() {
    let up = upstream().await;
    let gw = start(&config_text(up.addr, BASIC)).await;
    get(&gw, "/echo").await;
    assert_eq!(admin_get(&gw, "/healthz").await, "ok\n");
    assert_eq!(admin_get(&gw, "/readyz").await, "ready\n");
    let m = admin_get(&gw, "/metrics").await;
    assert!(m.contains("warden_requests_total{route=\"main\",status=\"200\",decision=\"allowed\",reason=\"\"} 1"), "{m}");
    assert!(
        m.contains("warden_request_duration_seconds_count{route=\"main\"} 1"),
        "{m}"
    );
    assert!(m.contains("warden_open_connections"), "{m}");
}

async fn admin_get(gw: &warden_gateway::Gateway, path: &str) -> String {
    let req = Request::get(format!("http://{}{}", gw.admin_addr().unwrap(), path))
        .body(empty())
        .unwrap();
    String::from_utf8(send(&h1_client(), req).await.2.to_vec()).unwrap()
}

/// Sends raw bytes and reads the answer until the server closes or 3 s pass.
async fn raw(gw: &warden_gateway::Gateway, request: &[u8]) -> String {
    let mut s = TcpStream::connect(gw.listen_addrs()[0]).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}
