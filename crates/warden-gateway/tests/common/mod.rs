//! Shared harness for the gateway's integration tests: a stub upstream on an ephemeral port, a
//! gateway started from YAML on ephemeral ports, and clients for HTTP/1.1, h2c and TLS (h1 or h2).
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use warden_gateway::body::GatewayBody;
use warden_gateway::{Config, Gateway, Runtime};

/// A stub upstream. `/echo` answers with the request's headers as JSON; `/upload` streams the body
/// back; `/download/N` sends N bytes; `/slow/MS` answers after MS milliseconds.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    /// TCP connections accepted, to see keep-alive reuse.
    pub conns: Arc<AtomicUsize>,
}

pub async fn upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let conns = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let c = conns.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            c.fetch_add(1, Ordering::SeqCst);
            let h = h.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    h.fetch_add(1, Ordering::SeqCst);
                    async move { Ok::<_, Infallible>(stub(req).await) }
                });
                let builder = auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    Upstream { addr, hits, conns }
}

async fn stub(
    req: Request<Incoming>,
) -> Response<http_body_util::combinators::BoxBody<Bytes, hyper::Error>> {
    let path = req.uri().path().to_string();
    let full = |b: Bytes| Full::new(b).map_err(|n: Infallible| match n {}).boxed();
    if path == "/upload" {
        // Stream the request body straight back, never holding it whole.
        return Response::new(req.into_body().boxed());
    }
    if let Some(n) = path.strip_prefix("/download/") {
        return Response::new(full(Bytes::from(vec![b'd'; n.parse().unwrap()])));
    }
    if let Some(ms) = path.strip_prefix("/slow/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
        return Response::new(full(Bytes::from_static(b"slow done")));
    }
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let doc = serde_json::json!({"path": path, "query": req.uri().query(), "headers": headers, "version": format!("{:?}", req.version())});
    let mut resp = Response::new(full(Bytes::from(doc.to_string())));
    // Hop-by-hop headers from the upstream must not reach the client either.
    resp.headers_mut()
        .insert("connection", "x-upstream-private".parse().unwrap());
    resp.headers_mut()
        .insert("x-upstream-private", "secret".parse().unwrap());
    resp.headers_mut()
        .insert("keep-alive", "timeout=5".parse().unwrap());
    *resp.status_mut() = StatusCode::OK;
    resp
}

/// The echoed headers, as (name, value) pairs.
pub fn echoed(body: &[u8]) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    serde_json::from_value(v["headers"].clone()).unwrap()
}

pub fn header<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A config with one plain listener on an ephemeral port, admin on an ephemeral port, and the
/// given extra YAML appended (upstreams/routes/limits use `UP` for the stub's address).
pub fn config_text(upstream: SocketAddr, body: &str) -> String {
    format!(
        "listeners:\n  - address: 127.0.0.1:0\n    plain_http: true\nadmin:\n  address: 127.0.0.1:0\n{}",
        body.replace("UP", &upstream.to_string())
    )
}

pub const BASIC: &str = "\
upstreams:
  stub:
    targets: [\"http://UP\"]
    read_timeout: 2s
routes:
  - name: main
    path_prefix: /
    upstream: stub
";

pub async fn start(text: &str) -> Gateway {
    start_with(text, warden_gateway::services::Services::without_store()).await
}

/// Starts a gateway whose shared services (the key store...) the test made.
pub async fn start_with(text: &str, services: Arc<warden_gateway::services::Services>) -> Gateway {
    let cfg = Config::parse(text, &PathBuf::from("test.yaml")).unwrap_or_else(|e| panic!("{e}"));
    Gateway::start(Runtime::new(cfg, text, services))
        .await
        .unwrap()
}

/// A fresh, empty folder for this test.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "warden-test-{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A GET with extra headers.
pub async fn get_with(
    gw: &Gateway,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, Bytes) {
    let mut req = Request::get(url(gw, path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(&h1_client(), req.body(empty()).unwrap()).await
}

pub fn url(gw: &Gateway, path: &str) -> String {
    format!("http://{}{}", gw.listen_addrs()[0], path)
}

pub fn h1_client() -> Client<hyper_util::client::legacy::connect::HttpConnector, GatewayBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2c_client() -> Client<hyper_util::client::legacy::connect::HttpConnector, GatewayBody> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

pub fn empty() -> GatewayBody {
    warden_gateway::body::empty()
}

pub async fn get(gw: &Gateway, path: &str) -> (StatusCode, http::HeaderMap, Bytes) {
    let req = Request::get(url(gw, path)).body(empty()).unwrap();
    send(&h1_client(), req).await
}

pub async fn send(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, GatewayBody>,
    req: Request<GatewayBody>,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("no answer in 20s")
        .unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, bytes)
}

/// Asserts a problem+json answer with the given status and type slug; returns the document.
pub fn assert_problem(
    status: StatusCode,
    headers: &http::HeaderMap,
    body: &[u8],
    want: u16,
    slug: &str,
) -> serde_json::Value {
    assert_eq!(
        status.as_u16(),
        want,
        "body: {}",
        String::from_utf8_lossy(body)
    );
    assert_eq!(headers["content-type"], "application/problem+json");
    let doc: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(doc["type"], format!("urn:warden:problem:{slug}"));
    assert_eq!(doc["status"], want);
    assert!(doc["title"].as_str().is_some_and(|t| !t.is_empty()));
    let id = doc["request_id"].as_str().expect("request_id");
    assert_eq!(headers["x-request-id"], id);
    doc
}

/// A self-signed certificate for `localhost`, made now and written to a temp folder.
pub struct TestCert {
    pub dir: PathBuf,
    pub cert_pem: String,
}

pub fn test_cert() -> TestCert {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "warden-tls-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let cert_pem = ck.cert.pem();
    std::fs::write(dir.join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    TestCert { dir, cert_pem }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Connects over TLS offering `alpn`, and returns the negotiated protocol and a GET's answer.
pub async fn tls_get(
    addr: SocketAddr,
    cert_pem: &str,
    alpn: &[&[u8]],
    path: &str,
) -> (Vec<u8>, StatusCode, Bytes) {
    let (proto, status, body, _) = tls_get_with_headers(addr, cert_pem, alpn, path).await;
    (proto, status, body)
}

/// [`tls_get`], with the response headers.
pub async fn tls_get_with_headers(
    addr: SocketAddr,
    cert_pem: &str,
    alpn: &[&[u8]],
    path: &str,
) -> (Vec<u8>, StatusCode, Bytes, http::HeaderMap) {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let proto = tls.get_ref().1.alpn_protocol().unwrap_or_default().to_vec();
    let io = TokioIo::new(tls);
    let uri = format!("https://localhost:{}{}", addr.port(), path);
    let resp = if proto == b"h2" {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        sender
            .send_request(Request::get(uri).body(empty()).unwrap())
            .await
            .unwrap()
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let req = Request::get(uri)
            .header("host", "localhost")
            .body(empty())
            .unwrap();
        sender.send_request(req).await.unwrap()
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (proto, status, body, headers)
}

/// A request body of `left` bytes in `chunk`-sized frames, generated on demand and with no length
/// announced (sent chunked), so neither side ever holds it whole.
pub struct Generated {
    pub left: usize,
    pub chunk: usize,
}

impl http_body::Body for Generated {
    type Data = Bytes;
    type Error = warden_gateway::body::BoxError;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.chunk.min(self.left);
        self.left -= n;
        let fill = (self.left % 251) as u8;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![fill; n])))))
    }
}

/// One canned answer of [`canned_upstream`].
#[derive(Clone)]
pub struct Canned {
    pub path: &'static str,
    /// Answers only this method, when set.
    pub method: Option<&'static str>,
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Canned {
    pub fn json(path: &'static str, body: impl Into<String>) -> Canned {
        Canned {
            path,
            method: None,
            status: 200,
            headers: vec![("content-type", "application/json".into())],
            body: body.into(),
        }
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Canned {
        self.headers.push((name, value.into()));
        self
    }

    pub fn method(mut self, method: &'static str) -> Canned {
        self.method = Some(method);
        self
    }

    pub fn status(mut self, status: u16) -> Canned {
        self.status = status;
        self
    }
}

/// An upstream that answers each path with its canned response (404 otherwise), and records the
/// request headers it received in `seen`.
pub async fn canned_upstream(
    answers: Vec<Canned>,
) -> (SocketAddr, Arc<std::sync::Mutex<Vec<http::HeaderMap>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answers = Arc::new(answers);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let answers = answers.clone();
            let seen = seen2.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    seen.lock().unwrap().push(req.headers().clone());
                    let found = answers
                        .iter()
                        .find(|a| {
                            a.path == req.uri().path()
                                && a.method.is_none_or(|m| m == req.method().as_str())
                        })
                        .cloned();
                    async move {
                        let a = found.unwrap_or(Canned {
                            path: "",
                            method: None,
                            status: 404,
                            headers: vec![],
                            body: String::new(),
                        });
                        let mut resp = Response::new(Full::new(Bytes::from(a.body)));
                        *resp.status_mut() = StatusCode::from_u16(a.status).unwrap();
                        for (k, v) in a.headers {
                            resp.headers_mut().append(k, v.parse().unwrap());
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}
