//! The example API behind `warden demo`: users, orders, a login and an admin operation, written
//! deliberately naively so that Warden's protections have something to stop. Its flaws, on purpose:
//! any caller can read any user or order (object level), `PATCH /users/{id}` accepts any field
//! including `role` (mass assignment), responses carry password hashes, identity and card numbers
//! (excessive exposure), the
//! admin operation checks nothing (function level), login errors tell unknown users from wrong
//! passwords (enumeration), and `/search` leaks a stack trace on a quote (verbose errors).
//! `/echo` returns the request as the API saw it, which tests use to check the proxy's headers.
//!
//! `--fixed` serves the same API with those flaws mended (see [`fixed`]), so that `warden scan`
//! can be shown to find each flaw in one and nothing in the other.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::cli::{DemoApiArgs, Failure};

pub struct DemoApi {
    listener: TcpListener,
    state: Arc<Mutex<State>>,
    fixed: bool,
}

pub(super) struct State {
    pub(super) users: BTreeMap<u64, Value>,
    pub(super) orders: BTreeMap<u64, Value>,
    pub(super) next_order: u64,
    /// Tokens the fixed API issued at login: token → username.
    pub(super) tokens: BTreeMap<String, String>,
    /// The fixed API's rate limit: caller → (tokens left, last refill).
    pub(super) buckets: BTreeMap<String, (f64, std::time::Instant)>,
}

impl DemoApi {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<DemoApi> {
        DemoApi::bind_as(addr, false).await
    }

    /// `fixed`: the same API with its planted flaws mended.
    pub async fn bind_as(addr: SocketAddr, fixed: bool) -> std::io::Result<DemoApi> {
        let listener = TcpListener::bind(addr).await?;
        Ok(DemoApi {
            listener,
            state: Arc::new(Mutex::new(State::seed())),
            fixed,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub async fn serve(self) {
        loop {
            let Ok((stream, _)) = self.listener.accept().await else {
                continue;
            };
            let state = self.state.clone();
            let fixed = self.fixed;
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let state = state.clone();
                    async move {
                        Ok::<_, Infallible>(if fixed {
                            super::fixed::handle(&state, req).await
                        } else {
                            handle(&state, req).await
                        })
                    }
                });
                let builder = auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    }
}

pub async fn run_standalone(args: DemoApiArgs) -> Result<(), Failure> {
    if !args.listen.ip().is_loopback() {
        return Err(Failure::BadInput(
            "--listen must be a loopback address: the example API is deliberately insecure".into(),
        ));
    }
    let api = DemoApi::bind_as(args.listen, args.fixed)
        .await
        .map_err(|e| Failure::Runtime(e.into()))?;
    let kind = if args.fixed { " (flaws fixed)" } else { "" };
    eprintln!("example API{kind} listening on http://{}", api.local_addr());
    api.serve().await;
    Ok(())
}

impl State {
    fn seed() -> State {
        // Identity and card numbers are valid (check digits) test values, not real people's.
        let user = |id: u64, name: &str, role: &str, phone: &str, id_card: &str, card: &str| {
            json!({
                "id": id, "username": name, "email": format!("{name}@example.com"), "role": role,
                "phone": phone, "password_hash": format!("$2b$12$demo.{name}.hash"),
                "id_card": id_card, "payment_card": card,
            })
        };
        let users = BTreeMap::from([
            (
                1,
                user(
                    1,
                    "alice",
                    "user",
                    "+14155550101",
                    "11010519491231002X",
                    "4111111111111111",
                ),
            ),
            (
                2,
                user(
                    2,
                    "bob",
                    "user",
                    "+14155550102",
                    "440524199001010018",
                    "5500005555555559",
                ),
            ),
            (
                3,
                user(
                    3,
                    "admin",
                    "admin",
                    "+14155550103",
                    "310101198003150014",
                    "378282246310005",
                ),
            ),
        ]);
        let order = |id: u64, owner: u64, item: &str, total: f64| json!({"id": id, "user_id": owner, "item": item, "total": total});
        let orders = BTreeMap::from([
            (101, order(101, 1, "keyboard", 49.5)),
            (102, order(102, 2, "monitor", 189.0)),
            (103, order(103, 1, "mouse", 19.99)),
        ]);
        State {
            users,
            orders,
            next_order: 104,
            tokens: BTreeMap::new(),
            buckets: BTreeMap::new(),
        }
    }
}

/// Who calls: the consumer Warden authenticated, or the API's own naive bearer token.
fn caller(req: &Request<Incoming>) -> Option<String> {
    if let Some(c) = req
        .headers()
        .get("x-warden-consumer")
        .and_then(|v| v.to_str().ok())
    {
        return Some(c.to_string());
    }
    let auth = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    auth.strip_prefix("Bearer demo-").map(str::to_owned)
}

async fn handle(state: &Mutex<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let who = caller(&req);
    let echo = json!({
        "method": method.as_str(),
        "path": path,
        "query": query,
        "version": format!("{:?}", req.version()),
        "headers": req.headers().iter().map(|(k, v)| json!([k.as_str(), String::from_utf8_lossy(v.as_bytes())])).collect::<Vec<_>>(),
    });
    let Some((body, parsed)) = read_body(req.into_body(), 64 << 20).await else {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "could not read body"}),
        );
    };
    if let (&Method::GET, ["slow", ms]) = (&method, segments.as_slice()) {
        let ms: u64 = ms.parse().unwrap_or(0).min(60_000);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        return reply(StatusCode::OK, json!({"slept_ms": ms}));
    }
    let mut st = state.lock().expect("demo state lock");
    match (&method, segments.as_slice()) {
        (&Method::GET, ["health"]) => reply(StatusCode::OK, json!({"status": "ok"})),
        (_, ["echo"]) => {
            let mut e = echo;
            e["body_bytes"] = json!(body.len());
            reply(StatusCode::OK, e)
        }
        // Streams back whatever was sent, for the body streaming tests.
        (&Method::POST, ["upload"]) => {
            let mut r = Response::new(Full::new(body));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            r
        }
        (&Method::GET, ["download", n]) => {
            let n: usize = n.parse().unwrap_or(0).min(256 << 20);
            Response::new(Full::new(Bytes::from(vec![b'x'; n])))
        }
        (&Method::POST, ["login"]) => {
            let name = parsed
                .as_ref()
                .and_then(|v| v["username"].as_str())
                .unwrap_or("");
            let pass = parsed
                .as_ref()
                .and_then(|v| v["password"].as_str())
                .unwrap_or("");
            match st.users.values().find(|u| u["username"] == name) {
                None => reply(StatusCode::UNAUTHORIZED, json!({"error": "no such user"})),
                Some(_) if pass != format!("{name}123") => {
                    reply(StatusCode::UNAUTHORIZED, json!({"error": "wrong password"}))
                }
                Some(_) => reply(StatusCode::OK, json!({"token": format!("demo-{name}")})),
            }
        }
        (&Method::POST, ["register"]) => {
            // Naive: every field the client sends is stored, `admin: true` included.
            let Some(Value::Object(fields)) = parsed else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "expected a JSON object"}),
                );
            };
            let id = st.users.keys().max().copied().unwrap_or(0) + 1;
            let name = fields
                .get("username")
                .and_then(Value::as_str)
                .unwrap_or("user")
                .to_string();
            let mut user = json!({"id": id, "username": name, "role": "user",
                "password_hash": format!("$2b$12$demo.{name}.hash")});
            if let Value::Object(u) = &mut user {
                if fields.get("admin") == Some(&Value::Bool(true)) {
                    u.insert("role".into(), json!("admin"));
                }
                u.extend(fields.into_iter().filter(|(k, _)| k != "password"));
            }
            st.users.insert(id, user.clone());
            reply(StatusCode::CREATED, user)
        }
        (&Method::GET, ["users"]) => reply(
            StatusCode::OK,
            Value::Array(st.users.values().cloned().collect()),
        ),
        (&Method::GET, ["users", id]) => {
            match id.parse().ok().and_then(|id: u64| st.users.get(&id)) {
                Some(u) => reply(StatusCode::OK, u.clone()),
                None => reply(StatusCode::NOT_FOUND, json!({"error": "user not found"})),
            }
        }
        (&Method::PATCH, ["users", id]) => {
            let Some(Value::Object(changes)) = parsed else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "expected a JSON object"}),
                );
            };
            match id.parse().ok().and_then(|id: u64| st.users.get_mut(&id)) {
                Some(Value::Object(u)) => {
                    u.extend(changes);
                    reply(StatusCode::OK, Value::Object(u.clone()))
                }
                _ => reply(StatusCode::NOT_FOUND, json!({"error": "user not found"})),
            }
        }
        (&Method::GET, ["orders", id]) => {
            match id.parse().ok().and_then(|id: u64| st.orders.get(&id)) {
                Some(o) => reply(StatusCode::OK, o.clone()),
                None => reply(StatusCode::NOT_FOUND, json!({"error": "order not found"})),
            }
        }
        (&Method::POST, ["orders"]) => {
            let Some(owner) = who.and_then(|w| {
                st.users
                    .values()
                    .find(|u| u["username"] == w.as_str())
                    .map(|u| u["id"].clone())
            }) else {
                return reply(StatusCode::UNAUTHORIZED, json!({"error": "log in first"}));
            };
            let id = st.next_order;
            st.next_order += 1;
            let item = parsed
                .as_ref()
                .and_then(|v| v["item"].as_str())
                .unwrap_or("thing")
                .to_string();
            let order = json!({"id": id, "user_id": owner, "item": item, "total": 10.0});
            st.orders.insert(id, order.clone());
            reply(StatusCode::CREATED, order)
        }
        (&Method::GET, ["search"]) => {
            if query.contains('\'') || query.contains("%27") {
                let trace = "Traceback (most recent call last):\n  File \"/srv/app/db.py\", line 42, in query\npsycopg2.errors.SyntaxError: unterminated quoted string at or near \"'\" LINE 1: SELECT * FROM users WHERE name = '''";
                let mut r = Response::new(Full::new(Bytes::from(trace)));
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                return r;
            }
            reply(StatusCode::OK, json!({"results": []}))
        }
        (&Method::DELETE, ["admin", "users", id]) => {
            match id.parse().ok().and_then(|id: u64| st.users.remove(&id)) {
                Some(_) => reply(StatusCode::NO_CONTENT, Value::Null),
                None => reply(StatusCode::NOT_FOUND, json!({"error": "user not found"})),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, json!({"error": "not found"})),
    }
}

/// The body, up to `limit` bytes, and what it says if it is JSON.
pub(super) async fn read_body(body: Incoming, limit: usize) -> Option<(Bytes, Option<Value>)> {
    let bytes = Limited::new(body, limit).collect().await.ok()?.to_bytes();
    let parsed = serde_json::from_slice(&bytes).ok();
    Some((bytes, parsed))
}

pub(super) fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let bytes = if body.is_null() {
        Bytes::new()
    } else {
        Bytes::from(body.to_string())
    };
    let mut r = Response::new(Full::new(bytes));
    *r.status_mut() = status;
    if !body.is_null() {
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    r
}
