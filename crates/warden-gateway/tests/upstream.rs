//! The gateway's own HTTP/1.1 client, through the real proxy, against an upstream that writes
//! exactly the bytes each test gives it: body framings (chunked, close-delimited, HEAD, interim
//! answers), answers that would smuggle or desynchronise a kept-alive connection, upstreams that
//! die mid-answer, and idle connections the upstream closes.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the scripted upstream does after writing its answer.
#[derive(Clone, Copy, PartialEq)]
enum Then {
    /// Wait for the next request on the same connection.
    KeepAlive,
    /// Close the connection.
    Close,
    /// Stop reading, keep the socket open for a while, then close (an upload answered early).
    Stall,
}

/// Answers each request with the bytes `script` gives for its path (request heads only: a request
/// body is not read, except where a test says so through `Then::Stall`).
struct Scripted {
    addr: std::net::SocketAddr,
    conns: Arc<AtomicUsize>,
    /// Every request head received, as text.
    seen: Arc<Mutex<Vec<String>>>,
    /// Every request body received, raw, one after the other.
    bodies: Arc<Mutex<Vec<u8>>>,
}

async fn scripted(script: fn(&str) -> (Vec<u8>, Then)) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let (c, s, b) = (conns.clone(), seen.clone(), bodies.clone());
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            c.fetch_add(1, Ordering::SeqCst);
            let (s, b) = (s.clone(), b.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(end) = read_head(&mut sock, &mut buf).await else {
                        return;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end);
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    s.lock().unwrap().push(head.clone());
                    let (answer, then) = script(&path);
                    if then != Then::Stall {
                        let Some(body) = read_body(&mut sock, &mut buf, &head).await else {
                            return;
                        };
                        b.lock().unwrap().extend_from_slice(&body);
                    }
                    if sock.write_all(&answer).await.is_err() {
                        return;
                    }
                    match then {
                        Then::KeepAlive => {}
                        Then::Close => return,
                        Then::Stall => {
                            tokio::time::sleep(Duration::from_secs(2)).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    Scripted {
        addr,
        conns,
        seen,
        bodies,
    }
}

/// Reads the body the head announces, raw (chunked bodies as framed); `None` if the peer went.
async fn read_body(sock: &mut TcpStream, buf: &mut Vec<u8>, head: &str) -> Option<Vec<u8>> {
    let lower = head.to_ascii_lowercase();
    let done = |b: &[u8]| {
        if lower.contains("transfer-encoding: chunked") {
            b.windows(5).any(|w| w == b"0\r\n\r\n")
        } else {
            let len = lower
                .split("\r\n")
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |n| n.trim().parse::<usize>().unwrap());
            b.len() >= len
        }
    };
    while !done(buf) {
        let mut chunk = [0u8; 65536];
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let end = if lower.contains("transfer-encoding: chunked") {
        buf.windows(5).position(|w| w == b"0\r\n\r\n").unwrap() + 5
    } else {
        lower
            .split("\r\n")
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |n| n.trim().parse::<usize>().unwrap())
    };
    Some(buf.drain(..end).collect())
}

/// Reads until a blank line; the head's length, or `None` once the peer has gone.
async fn read_head(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        let mut chunk = [0u8; 4096];
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn gateway(up: &Scripted) -> warden_gateway::Gateway {
    start(&config_text(up.addr, &format!("workers: 1\n{BASIC}"))).await
}

/// A GET that may fail: `Err` when the gateway cut the answer off (before or after its head).
async fn get_raw(
    gw: &warden_gateway::Gateway,
    path: &str,
) -> Result<(StatusCode, Vec<u8>), String> {
    let req = Request::get(url(gw, path)).body(empty()).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), h1_client().request(req))
        .await
        .expect("an answer in 10 s")
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .expect("the body in 10 s")
        .map_err(|e| e.to_string())?;
    Ok((status, body.to_bytes().to_vec()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_answers_are_decoded_and_the_connection_kept() {
    let up = scripted(|_| {
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n\
              5\r\nhello\r\n7;ext=\"v\"\r\n, world\r\n0\r\nX-Digest: abc\r\n\r\n"
                .to_vec(),
            Then::KeepAlive,
        )
    })
    .await;
    let gw = gateway(&up).await;
    for _ in 0..3 {
        let (status, h, body) = get(&gw, "/c").await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"hello, world"[..]));
        assert_eq!(h["content-type"], "text/plain");
        assert!(!h.contains_key("x-digest"), "trailers are not forwarded");
    }
    assert_eq!(
        up.conns.load(Ordering::SeqCst),
        1,
        "one connection for all three"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_delimited_answers_arrive_whole_and_end_their_connection() {
    let up = scripted(|_| {
        (
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it, until the close"
                .to_vec(),
            Then::Close,
        )
    })
    .await;
    let gw = gateway(&up).await;
    for _ in 0..2 {
        let (status, body) = get_raw(&gw, "/old").await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, b"all of it, until the close");
    }
    assert_eq!(up.conns.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interim_answers_are_skipped_and_reasons_kept() {
    let up = scripted(|_| {
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n\
              HTTP/1.1 201 Made It\r\nContent-Length: 2\r\n\r\nok"
                .to_vec(),
            Then::KeepAlive,
        )
    })
    .await;
    let gw = gateway(&up).await;
    let req = Request::post(url(&gw, "/things"))
        .body(warden_gateway::body::full(&b"{}"[..]))
        .unwrap();
    let resp = h1_client().request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let reason = resp.extensions().get::<hyper::ext::ReasonPhrase>().cloned();
    assert_eq!(reason.as_ref().map(|r| r.as_bytes()), Some(&b"Made It"[..]));
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ok");
    // The POST went out with its length, the way the client sent it.
    let seen = up.seen.lock().unwrap().clone();
    assert!(
        seen[0].starts_with("POST /things HTTP/1.1\r\n"),
        "{}",
        seen[0]
    );
    assert!(seen[0].contains("\r\ncontent-length: 2\r\n"), "{}", seen[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_answer_has_no_body_whatever_its_length_says() {
    let up = scripted(|_| {
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n".to_vec(),
            Then::KeepAlive,
        )
    })
    .await;
    let gw = gateway(&up).await;
    for _ in 0..3 {
        let req = Request::head(url(&gw, "/h")).body(empty()).unwrap();
        let (status, h, body) = send(&h1_client(), req).await;
        assert_eq!((status, body.len()), (StatusCode::OK, 0));
        assert_eq!(h["content-length"], "10");
    }
    // Had the gateway waited for ten body bytes, the second HEAD would have timed out.
    assert_eq!(up.conns.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_would_desynchronise_the_connection_are_refused() {
    let up = scripted(|path| {
        let answer: &[u8] = match path {
            "/two-lengths" => {
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\nhello"
            }
            "/signed-length" => b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
            "/te-in-1.0" => {
                b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            }
            "/switch" => b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            "/not-http" => b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
            "/huge-head" => return (huge_head(), Then::KeepAlive),
            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        };
        (answer.to_vec(), Then::KeepAlive)
    })
    .await;
    // Six failures in a row would open the circuit breaker; this test is about each answer.
    let gw = start(&config_text(
        up.addr,
        &format!("workers: 1\n{BASIC}").replace(
            "read_timeout: 2s",
            "read_timeout: 2s\n    circuit_breaker: {enabled: false}",
        ),
    ))
    .await;
    for path in [
        "/two-lengths",
        "/signed-length",
        "/te-in-1.0",
        "/switch",
        "/not-http",
        "/huge-head",
    ] {
        let (s, h, b) = get(&gw, path).await;
        let doc = assert_problem(s, &h, &b, 502, "upstream-unavailable");
        assert_eq!(doc["reason"], "upstream-failed", "{path}");
        assert!(
            !String::from_utf8_lossy(&b).contains("hello"),
            "{path}: nothing of the answer leaks"
        );
    }
    // The broken connections were dropped, not reused: a good answer still comes back whole.
    assert_eq!(&get(&gw, "/fine").await.2[..], b"ok");
}

fn huge_head() -> Vec<u8> {
    let mut v = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..2000 {
        v.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "f".repeat(40)).as_bytes());
    }
    v.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_framings_at_once_read_as_chunked_and_end_the_connection() {
    // `Content-Length: 3` would leave "2\r\nok…" on the connection for the next caller.
    let up = scripted(|_| {
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
                .to_vec(),
            Then::KeepAlive,
        )
    })
    .await;
    let gw = gateway(&up).await;
    for _ in 0..2 {
        let (status, h, body) = get(&gw, "/both").await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
        assert_ne!(
            h.get("content-length").map(|v| v.as_bytes()),
            Some(&b"3"[..])
        );
    }
    assert_eq!(
        up.conns.load(Ordering::SeqCst),
        2,
        "not reused after such an answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_cut_short_is_cut_short_for_the_client_too() {
    let up = scripted(|path| {
        let answer: &[u8] = match path {
            "/short" => b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this much",
            "/bad-chunk" => {
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"
            }
            _ => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        };
        (answer.to_vec(), Then::Close)
    })
    .await;
    let paths = ["/short", "/bad-chunk", "/unfinished-chunks"];
    // By default the answer is read whole before it leaves (data protection inspects it): the
    // client gets a clear 502.
    let gw = gateway(&up).await;
    for path in paths {
        let (s, h, b) = get(&gw, path).await;
        assert_problem(s, &h, &b, 502, "upstream-unavailable");
    }
    // Streamed, the answer may have started to leave before the break: the client's exchange
    // must fail, never end as if complete.
    let gw = start(&config_text(
        up.addr,
        &format!("workers: 1\ndata_protection: {{enabled: false}}\n{BASIC}"),
    ))
    .await;
    for path in paths {
        let got = get_raw(&gw, path).await;
        assert!(got.is_err(), "{path}: {got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_from_the_upstream_is_honoured() {
    let up = scripted(|_| {
        (
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            // The socket stays open: only the header says not to reuse it.
            Then::KeepAlive,
        )
    })
    .await;
    let gw = gateway(&up).await;
    for _ in 0..3 {
        let (status, h, body) = get(&gw, "/x").await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
        assert!(!h.contains_key("connection"));
    }
    assert_eq!(up.conns.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_answered_early_gets_the_upstreams_answer() {
    // The upstream refuses after reading the head only and stops reading: the gateway cannot write
    // the rest of the 8 MiB, but the upstream's answer is what the client gets, not a 502 or 504.
    let up = scripted(|_| {
        (
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo much".to_vec(),
            Then::Stall,
        )
    })
    .await;
    let gw = start(&config_text(
        up.addr,
        &format!("workers: 1\nlimits:\n  max_body_bytes: 64MiB\n{BASIC}"),
    ))
    .await;
    let req = Request::post(url(&gw, "/upload"))
        .body(warden_gateway::body::full(vec![b'u'; 8 << 20]))
        .unwrap();
    let (status, _, body) = send(&h1_client(), req).await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::PAYLOAD_TOO_LARGE, &b"too much"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_the_upstream_closes_are_closed_here_too() {
    // The upstream answers, then closes its side. Nothing reads an idle pooled connection, so the
    // worker's sweep must notice the close and release the socket (no CLOSE_WAIT left behind).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        read_head(&mut sock, &mut buf).await.unwrap();
        sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .await
            .unwrap();
        sock.shutdown().await.unwrap();
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        let _ = sock.read_to_end(&mut rest).await;
        let _ = tx.send(started.elapsed());
    });
    let gw = start(&config_text(addr, &format!("workers: 1\n{BASIC}"))).await;
    assert_eq!(&get(&gw, "/x").await.2[..], b"ok");
    let closed_after = tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .expect("the gateway closed its end within 5 s")
        .unwrap();
    assert!(closed_after < Duration::from_secs(3), "{closed_after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_uploads_go_upstream_chunked() {
    let up = scripted(|_| (b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(), Then::KeepAlive)).await;
    let gw = gateway(&up).await;
    let body = Pieces(vec![
        bytes::Bytes::from_static(b"defgh"),
        bytes::Bytes::from_static(b"abc"),
    ])
    .boxed_unsync();
    let req = Request::builder()
        .method(Method::PUT)
        .uri(url(&gw, "/stream"))
        .body(body)
        .unwrap();
    let (status, _, _) = send(&h1_client(), req).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let seen = up.seen.lock().unwrap().clone();
    assert!(
        seen[0].contains("\r\ntransfer-encoding: chunked\r\n"),
        "{}",
        seen[0]
    );
    assert!(!seen[0].contains("content-length"), "{}", seen[0]);
    // The chunks themselves, then the last chunk (the scripted upstream leaves the body unread).
    let raw = up.bodies.lock().unwrap().clone();
    assert_eq!(raw, b"3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n");
}

/// A body of a few pieces (taken from the back) whose length is not known in advance.
struct Pieces(Vec<bytes::Bytes>);

impl http_body::Body for Pieces {
    type Data = bytes::Bytes;
    type Error = warden_gateway::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.pop().map(|b| Ok(http_body::Frame::data(b))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_timeout_holds_on_every_reuse_of_a_connection() {
    // One timer per connection, moved forward by each call: it must fire for a slow answer on a
    // reused connection, and must not fire for a prompt one after it went off while idle.
    let up = upstream().await;
    let cfg = format!("workers: 1\n{BASIC}").replace("read_timeout: 2s", "read_timeout: 300ms");
    let gw = start(&config_text(up.addr, &cfg)).await;
    assert_eq!(get(&gw, "/slow/10").await.0, StatusCode::OK);
    let (s, h, b) = get(&gw, "/slow/1000").await;
    assert_problem(s, &h, &b, 504, "upstream-timeout");
    assert_eq!(get(&gw, "/slow/10").await.0, StatusCode::OK);
    // Idle past the timeout (the timer goes off with nobody waiting), then reused.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..3 {
        assert_eq!(get(&gw, "/slow/150").await.0, StatusCode::OK);
    }
    // The slow call's connection was closed, the others reused.
    assert_eq!(up.conns.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_line_upstream_is_origin_form_with_base_path_and_prefix_applied() {
    let up = scripted(|_| (b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(), Then::KeepAlive)).await;
    let cfg = format!(
        "workers: 1
upstreams:
  plain: {{targets: [\"http://{a}\"]}}
  based: {{targets: [\"http://{a}/base/\"]}}
routes:
  - {{name: strip, path_prefix: /strip, strip_prefix: true, upstream: plain}}
  - {{name: based, path_prefix: /b, upstream: based}}
  - {{name: main, path_prefix: /, upstream: plain}}
",
        a = up.addr
    );
    let gw = start(&config_text(up.addr, &cfg)).await;
    for path in ["/a/b%20c?q=1&r=%2F", "/strip/x?y=2", "/b/c?d"] {
        assert_eq!(get(&gw, path).await.0, StatusCode::NO_CONTENT, "{path}");
    }
    // HTTP/2 carries an absolute URI; HTTP/1.1 upstream gets origin-form and a Host.
    let req = Request::get(url(&gw, "/h2/path?z=9"))
        .body(empty())
        .unwrap();
    assert_eq!(send(&h2c_client(), req).await.0, StatusCode::NO_CONTENT);
    let lines: Vec<String> = up
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|h| h.lines().next().unwrap().to_string())
        .collect();
    assert_eq!(
        lines,
        [
            "GET /a/b%20c?q=1&r=%2F HTTP/1.1",
            "GET /x?y=2 HTTP/1.1",
            "GET /base/b/c?d HTTP/1.1",
            "GET /h2/path?z=9 HTTP/1.1",
        ]
    );
    let h2 = up.seen.lock().unwrap()[3].clone();
    assert!(
        h2.contains(&format!("\r\nhost: {}\r\n", gw.listen_addrs()[0])),
        "{h2}"
    );
}
