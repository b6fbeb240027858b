//! The example API with its planted flaws mended, as its authors should have written it: tokens
//! are random and checked, every operation but health, login and registration needs one, users
//! reach only their own records, the admin operation checks the role, bodies bind to the fields
//! a client may set, answers carry no hashes and masked card and identity numbers, failed logins
//! all look alike, errors say nothing about internals, callers are rate limited, and only the
//! documented endpoints exist. `warden scan` must find nothing here.

use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use super::api::{read_body, reply, State};

/// Requests a caller may make at once, refilled at this many per second.
const BURST: f64 = 40.0;

pub(super) async fn handle(state: &Mutex<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let mut r = answer(state, req).await;
    let h = r.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn answer(state: &Mutex<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Some((_, parsed)) = read_body(req.into_body(), 1 << 20).await else {
        return reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"error": "body too large"}),
        );
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut st = state.lock().expect("demo state lock");
    let who = token.as_ref().and_then(|t| st.tokens.get(t)).cloned();
    if !allow(&mut st, who.as_deref().unwrap_or("anonymous")) {
        let mut r = reply(StatusCode::TOO_MANY_REQUESTS, json!({"error": "slow down"}));
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    let public = matches!(
        (&method, segments.as_slice()),
        (&Method::GET, ["health"]) | (&Method::POST, ["login" | "register"])
    );
    let me = who.as_ref().and_then(|w| {
        st.users
            .values()
            .find(|u| u["username"] == w.as_str())
            .cloned()
    });
    if !public && me.is_none() {
        return reply(StatusCode::UNAUTHORIZED, json!({"error": "log in first"}));
    }
    let my_id = me.as_ref().map(|u| u["id"].clone()).unwrap_or(Value::Null);
    let admin = me.as_ref().is_some_and(|u| u["role"] == "admin");
    let id_of = |s: &str| s.parse::<u64>().ok();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["health"]) => reply(StatusCode::OK, json!({"status": "ok"})),
        (&Method::POST, ["login"]) => {
            let field = |k: &str| {
                parsed
                    .as_ref()
                    .and_then(|v| v[k].as_str())
                    .unwrap_or("")
                    .to_string()
            };
            let (name, pass) = (field("username"), field("password"));
            let known = st.users.values().any(|u| u["username"] == name.as_str());
            if !known || pass != format!("{name}123") {
                return reply(
                    StatusCode::UNAUTHORIZED,
                    json!({"error": "invalid username or password"}),
                );
            }
            let token = uuid::Uuid::new_v4().simple().to_string();
            st.tokens.insert(token.clone(), name);
            reply(StatusCode::OK, json!({"token": token}))
        }
        (&Method::POST, ["register"]) => {
            let Some(Value::Object(fields)) = parsed else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "expected a JSON object"}),
                );
            };
            let text = |k: &str| fields.get(k).and_then(Value::as_str).map(str::to_owned);
            let (Some(name), Some(email), Some(_)) =
                (text("username"), text("email"), text("password"))
            else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "username, email and password are required"}),
                );
            };
            let id = st.users.keys().max().copied().unwrap_or(0) + 1;
            let user = json!({"id": id, "username": name, "email": email, "role": "user"});
            st.users.insert(id, user.clone());
            reply(StatusCode::CREATED, view(&user))
        }
        (&Method::GET, ["users", id]) => match id_of(id).and_then(|i| st.users.get(&i)) {
            Some(u) if admin || u["id"] == my_id => reply(StatusCode::OK, view(u)),
            _ => reply(StatusCode::NOT_FOUND, json!({"error": "user not found"})),
        },
        (&Method::PATCH, ["users", id]) => {
            let Some(Value::Object(changes)) = parsed else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "expected a JSON object"}),
                );
            };
            match id_of(id).and_then(|i| st.users.get_mut(&i)) {
                Some(Value::Object(u)) if u.get("id") == Some(&my_id) => {
                    for k in ["email", "phone"] {
                        if let Some(v) = changes.get(k).filter(|v| v.is_string()) {
                            u.insert(k.into(), v.clone());
                        }
                    }
                    reply(StatusCode::OK, view(&Value::Object(u.clone())))
                }
                _ => reply(StatusCode::NOT_FOUND, json!({"error": "user not found"})),
            }
        }
        (&Method::POST, ["orders"]) => {
            let id = st.next_order;
            st.next_order += 1;
            let item = parsed
                .as_ref()
                .and_then(|v| v["item"].as_str())
                .unwrap_or("thing")
                .to_string();
            let order = json!({"id": id, "user_id": my_id, "item": item, "total": 10.0});
            st.orders.insert(id, order.clone());
            reply(StatusCode::CREATED, order)
        }
        (&Method::GET, ["orders", id]) => match id_of(id).and_then(|i| st.orders.get(&i)) {
            Some(o) if admin || o["user_id"] == my_id => reply(StatusCode::OK, o.clone()),
            _ => reply(StatusCode::NOT_FOUND, json!({"error": "order not found"})),
        },
        // A parameterised query: a quote is just a character.
        (&Method::GET, ["search"]) => reply(StatusCode::OK, json!({"results": []})),
        (&Method::DELETE, ["admin", "users", id]) => {
            if !admin {
                return reply(
                    StatusCode::FORBIDDEN,
                    json!({"error": "administrators only"}),
                );
            }
            match id_of(id).and_then(|i| st.users.remove(&i)) {
                Some(_) => reply(StatusCode::NO_CONTENT, Value::Null),
                None => reply(StatusCode::NOT_FOUND, json!({"error": "user not found"})),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, json!({"error": "not found"})),
    }
}

/// A user as the API shows it: no hash, card and identity numbers masked to their last four.
fn view(user: &Value) -> Value {
    let mut out = Map::new();
    for (k, v) in user.as_object().into_iter().flatten() {
        match (k.as_str(), v.as_str()) {
            ("password_hash", _) => {}
            ("id_card" | "payment_card", Some(s)) => {
                let tail: String = s
                    .chars()
                    .rev()
                    .take(4)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                out.insert(k.clone(), json!(format!("****{tail}")));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// A token bucket per caller.
fn allow(st: &mut State, caller: &str) -> bool {
    let now = Instant::now();
    let (tokens, last) = st.buckets.entry(caller.to_string()).or_insert((BURST, now));
    *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * BURST).min(BURST);
    *last = now;
    if *tokens >= 1.0 {
        *tokens -= 1.0;
        true
    } else {
        false
    }
}
