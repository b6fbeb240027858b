//! Every check against a tiny target that has the flaw and one that does not. Each target is a
//! few lines of handler behind a real HTTP server, described by a real spec; the scanner runs in
//! process exactly as `warden scan` runs it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use warden_scan::{Config, Given, User};

/// A request as a handler sees it.
struct Call {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    headers: http::HeaderMap,
    body: Option<Value>,
}

impl Call {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn bearer(&self) -> Option<&str> {
        self.header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
    }
    /// The caller, for targets whose tokens are `tA` and `tB`.
    fn user(&self) -> Option<&'static str> {
        match self.bearer() {
            Some("tA") => Some("a"),
            Some("tB") => Some("b"),
            Some("tAdmin") => Some("root"),
            _ => None,
        }
    }
    fn q(&self, k: &str) -> &str {
        self.query.get(k).map_or("", String::as_str)
    }
}

#[derive(Default)]
struct Resp {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

fn reply(status: u16, v: Value) -> Resp {
    Resp {
        status,
        body: v.to_string(),
        headers: vec![("content-type", "application/json".into())],
        ..Resp::default()
    }
}

type Handler = Arc<dyn Fn(&Call) -> Resp + Send + Sync>;

async fn serve(handler: Handler, bind: SocketAddr) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let bytes = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let query = parts
                            .uri
                            .query()
                            .unwrap_or("")
                            .split('&')
                            .filter_map(|kv| kv.split_once('='))
                            .map(|(k, v)| (decode(k), decode(v)))
                            .collect();
                        let call = Call {
                            method: parts.method.to_string(),
                            path: parts.uri.path().to_string(),
                            query,
                            headers: parts.headers,
                            body: serde_json::from_slice(&bytes).ok(),
                        };
                        let r = handler(&call);
                        if !r.delay.is_zero() {
                            tokio::time::sleep(r.delay).await;
                        }
                        let mut resp = http::Response::new(Full::new(Bytes::from(r.body)));
                        *resp.status_mut() = http::StatusCode::from_u16(r.status).unwrap();
                        for (k, v) in r.headers {
                            resp.headers_mut().append(k, v.parse().unwrap());
                        }
                        Ok::<_, Infallible>(resp)
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

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn spec(paths: &str) -> PathBuf {
    spec_with("", paths)
}

/// A spec file: a bearer-secured API with these paths (YAML, indented two spaces).
fn spec_with(servers: &str, paths: &str) -> PathBuf {
    let text = format!(
        "openapi: 3.0.3\ninfo: {{title: tiny, version: '1'}}\n{servers}components:\n  securitySchemes:\n    bearer: {{type: http, scheme: bearer}}\nsecurity:\n  - bearer: []\npaths:\n{paths}"
    );
    let n = uuid::Uuid::new_v4().simple().to_string();
    let file = std::env::temp_dir().join(format!("wardenscan-{n}.yaml"));
    std::fs::write(&file, text).unwrap();
    file
}

fn users() -> Vec<User> {
    vec![
        User {
            name: "a".into(),
            given: Given::Bearer("tA".into()),
            admin: false,
        },
        User {
            name: "b".into(),
            given: Given::Bearer("tB".into()),
            admin: false,
        },
    ]
}

/// Runs a scan of `handler` described by `spec`; returns the check ids found, with messages.
async fn scan_with(
    spec: &Path,
    handler: Handler,
    tweak: impl FnOnce(&mut Config),
) -> BTreeMap<&'static str, Vec<String>> {
    let addr = serve(handler, "127.0.0.1:0".parse().unwrap()).await;
    scan_at(spec, &format!("http://{addr}"), tweak).await
}

async fn scan_at(
    spec: &Path,
    target: &str,
    tweak: impl FnOnce(&mut Config),
) -> BTreeMap<&'static str, Vec<String>> {
    let mut config = Config::new(spec.to_path_buf(), target.to_string());
    config.users = users();
    config.rate = 1000;
    config.burst = 40;
    config.delay = Duration::from_secs(1);
    tweak(&mut config);
    let report = warden_scan::run(config, &warden_scan::Silent)
        .await
        .unwrap();
    let mut out: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for f in report.findings {
        out.entry(f.check.id).or_default().push(f.message);
    }
    out
}

/// The flawed target must produce `id`; the mended one must not.
async fn pair(id: &str, spec: PathBuf, flawed: Handler, fixed: Handler, tweak: fn(&mut Config)) {
    let found = scan_with(&spec, flawed, tweak).await;
    assert!(
        found.contains_key(id),
        "{id} not found on the flawed target; found {found:#?}"
    );
    let clean = scan_with(&spec, fixed, tweak).await;
    assert!(
        !clean.contains_key(id),
        "{id} reported on the mended target: {:#?}",
        clean[id]
    );
}

fn none(_: &mut Config) {}
fn writes(c: &mut Config) {
    c.allow_writes = true;
}

const NOTES: &str = "  /notes/{id}:\n    get:\n      parameters:\n        - {name: id, in: path, required: true, schema: {type: integer}}\n      responses:\n        '200': {description: a note}\n";

fn note(id: &str) -> Option<Value> {
    match id {
        "1" => Some(json!({"id": 1, "owner": "a", "text": "a's note"})),
        "2" => Some(json!({"id": 2, "owner": "b", "text": "b's note"})),
        _ => None,
    }
}

/// Notes behind `auth`, which decides who may read which: None = 401.
fn notes(auth: fn(&Call, &Value) -> Option<bool>) -> Handler {
    Arc::new(move |c: &Call| {
        let id = c.path.trim_start_matches("/notes/");
        match note(id) {
            Some(n) => match auth(c, &n) {
                None => reply(401, json!({"error": "log in"})),
                Some(true) => reply(200, n),
                Some(false) => reply(404, json!({"error": "no such note"})),
            },
            None => reply(404, json!({"error": "no such note"})),
        }
    })
}

#[tokio::test]
async fn bola_needs_b_to_get_a_s_record() {
    pair(
        "bola",
        spec(NOTES),
        notes(|c, _| c.user().map(|_| true)),
        notes(|c, n| c.user().map(|u| n["owner"] == u)),
        none,
    )
    .await;
}

/// Notes that can be edited: by anyone, or by their owner only.
fn editable_notes(owner_only: bool) -> Handler {
    let store = Arc::new(Mutex::new(vec![note("1").unwrap(), note("2").unwrap()]));
    Arc::new(move |c: &Call| {
        let Some(who) = c.user() else {
            return reply(401, json!({"error": "log in"}));
        };
        let mut notes = store.lock().unwrap();
        let id = c.path.trim_start_matches("/notes/");
        let Some(n) = notes
            .iter_mut()
            .find(|n| id.parse::<u64>().ok() == n["id"].as_u64())
        else {
            return reply(404, json!({"error": "no such note"}));
        };
        if owner_only && n["owner"] != who {
            return reply(404, json!({"error": "no such note"}));
        }
        if c.method == "PATCH" {
            if let Some(text) = c.body.as_ref().and_then(|b| b["text"].as_str()) {
                n["text"] = json!(text);
            }
        }
        reply(200, n.clone())
    })
}

#[tokio::test]
async fn bola_on_writes_needs_a_to_read_b_s_change() {
    let patchable = format!("{NOTES}    patch:\n      parameters:\n        - {{name: id, in: path, required: true, schema: {{type: integer}}}}\n      requestBody:\n        content:\n          application/json:\n            schema: {{type: object, properties: {{text: {{type: string}}}}}}\n      responses:\n        '200': {{description: the note}}\n");
    // Reads are owner-only on both sides, so only the write can show the flaw.
    let flawed = editable_notes(false);
    let read_guard: Handler = Arc::new(move |c: &Call| {
        let id = c.path.trim_start_matches("/notes/");
        if c.method == "GET"
            && note(id).is_some_and(|n| Some(n["owner"].as_str().unwrap()) != c.user())
        {
            return reply(404, json!({"error": "no such note"}));
        }
        flawed(c)
    });
    let found = scan_with(&spec(&patchable), read_guard, writes).await;
    let bola = found.get("bola").cloned().unwrap_or_default();
    assert!(
        bola.iter()
            .any(|m| m.contains("changed a's record with PATCH")),
        "{found:#?}"
    );
    let clean = scan_with(&spec(&patchable), editable_notes(true), writes).await;
    assert!(!clean.contains_key("bola"), "{clean:#?}");
}

#[tokio::test]
async fn no_auth_and_invalid_credentials() {
    pair(
        "no-auth",
        spec(NOTES),
        notes(|_, _| Some(true)),
        notes(|c, n| c.user().map(|u| n["owner"] == u)),
        none,
    )
    .await;
    pair(
        "invalid-credential",
        spec(NOTES),
        // Any bearer at all is taken as the note's owner.
        notes(|c, _| c.bearer().map(|_| true)),
        notes(|c, n| c.user().map(|u| n["owner"] == u)),
        none,
    )
    .await;
}

fn jwt(secret: &[u8], sub: &str, exp: u64) -> String {
    let h = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
    let p = URL_SAFE_NO_PAD.encode(json!({"sub": sub, "exp": exp}).to_string());
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret),
        format!("{h}.{p}").as_bytes(),
    );
    format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// How a target verifies its tokens.
#[derive(Clone, Copy)]
struct Verify {
    secret: &'static [u8],
    allow_none: bool,
    check_signature: bool,
    check_exp: bool,
}

fn jwt_notes(v: Verify) -> Handler {
    Arc::new(move |c: &Call| {
        let sub = c.bearer().and_then(|t| {
            let mut parts = t.split('.');
            let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
            let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
            let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()?;
            let unsigned = header["alg"] == "none" && s.is_empty();
            let signed = URL_SAFE_NO_PAD.decode(s).ok().is_some_and(|sig| {
                hmac::verify(
                    &hmac::Key::new(hmac::HMAC_SHA256, v.secret),
                    format!("{h}.{p}").as_bytes(),
                    &sig,
                )
                .is_ok()
            });
            let ok = (unsigned && v.allow_none) || signed || !v.check_signature && !unsigned;
            let fresh = !v.check_exp || claims["exp"].as_u64().is_some_and(|e| e > now());
            (ok && fresh).then(|| claims["sub"].as_str().unwrap_or("").to_string())
        });
        let id = c.path.trim_start_matches("/notes/");
        match (sub, note(id)) {
            (None, _) => reply(401, json!({"error": "log in"})),
            (Some(u), Some(n)) if n["owner"] == u.as_str() => reply(200, n),
            _ => reply(404, json!({"error": "no such note"})),
        }
    })
}

/// Each side's tokens are signed with the secret that side verifies with.
async fn jwt_pair(id: &str, flawed: Verify, fixed: Verify) {
    let spec = spec(NOTES);
    let tokens = |c: &mut Config, secret: &[u8]| {
        c.users = vec![
            User {
                name: "a".into(),
                given: Given::Bearer(jwt(secret, "a", now() + 3600)),
                admin: false,
            },
            User {
                name: "b".into(),
                given: Given::Bearer(jwt(secret, "b", now() + 3600)),
                admin: false,
            },
        ];
    };
    let found = scan_with(&spec, jwt_notes(flawed), |c| tokens(c, flawed.secret)).await;
    assert!(found.contains_key(id), "{id} not found; found {found:#?}");
    let clean = scan_with(&spec, jwt_notes(fixed), |c| tokens(c, fixed.secret)).await;
    assert!(
        !clean.contains_key(id),
        "{id} on the mended target: {clean:#?}"
    );
}

const STRONG: &[u8] = b"k9Vq2mZ7xR4tL8wN3bH6yJ1cF5gD0sPe";
const STRICT: Verify = Verify {
    secret: STRONG,
    allow_none: false,
    check_signature: true,
    check_exp: true,
};

#[tokio::test]
async fn forged_tokens() {
    jwt_pair(
        "jwt-alg-none",
        Verify {
            allow_none: true,
            ..STRICT
        },
        STRICT,
    )
    .await;
    jwt_pair(
        "jwt-unverified",
        Verify {
            check_signature: false,
            ..STRICT
        },
        STRICT,
    )
    .await;
    // A guessable secret is found offline, and then lets the scanner forge an expired token.
    let weak = Verify {
        secret: b"secret",
        ..STRICT
    };
    jwt_pair("jwt-weak-secret", weak, STRICT).await;
    let spec = spec(NOTES);
    let tokens = |c: &mut Config| {
        c.users = vec![
            User {
                name: "a".into(),
                given: Given::Bearer(jwt(b"secret", "a", now() + 3600)),
                admin: false,
            },
            User {
                name: "b".into(),
                given: Given::Bearer(jwt(b"secret", "b", now() + 3600)),
                admin: false,
            },
        ];
    };
    let found = scan_with(
        &spec,
        jwt_notes(Verify {
            check_exp: false,
            ..weak
        }),
        tokens,
    )
    .await;
    assert!(found.contains_key("jwt-expired"), "{found:#?}");
    let clean = scan_with(&spec, jwt_notes(weak), tokens).await;
    assert!(
        !clean.contains_key("jwt-expired") && clean.contains_key("jwt-weak-secret"),
        "{clean:#?}"
    );
}

const LOGIN: &str = "  /login:\n    post:\n      security: []\n      requestBody:\n        content:\n          application/json:\n            schema:\n              type: object\n              properties:\n                username: {type: string}\n                password: {type: string}\n      responses:\n        '200': {description: token}\n  /me:\n    get:\n      responses:\n        '200': {description: me}\n";

fn login(distinct_errors: bool, takes_operators: bool) -> Handler {
    Arc::new(move |c: &Call| match c.path.as_str() {
        "/login" => {
            let body = c.body.clone().unwrap_or_default();
            let (name, pass) = (body["username"].as_str().unwrap_or(""), &body["password"]);
            let token = match name {
                "a" => "tA",
                "b" => "tB",
                _ if distinct_errors => return reply(401, json!({"error": "no such user"})),
                _ => return reply(401, json!({"error": "invalid username or password"})),
            };
            if pass.is_object() && takes_operators || pass.as_str() == Some(&format!("{name}-pass"))
            {
                return reply(200, json!({"token": token}));
            }
            if pass.is_object() {
                return reply(400, json!({"error": "password must be a string"}));
            }
            let msg = if distinct_errors {
                "wrong password"
            } else {
                "invalid username or password"
            };
            reply(401, json!({"error": msg}))
        }
        "/me" => match c.user() {
            Some(u) => reply(200, json!({"name": u})),
            None => reply(401, json!({"error": "log in"})),
        },
        _ => reply(404, json!({"error": "not found"})),
    })
}

fn login_users(c: &mut Config) {
    c.allow_writes = true;
    c.users = vec![
        User {
            name: "a".into(),
            given: Given::Login("a-pass".into()),
            admin: false,
        },
        User {
            name: "b".into(),
            given: Given::Login("b-pass".into()),
            admin: false,
        },
    ];
}

#[tokio::test]
async fn login_enumeration_and_nosql_operators() {
    pair(
        "user-enumeration",
        spec(LOGIN),
        login(true, false),
        login(false, false),
        login_users,
    )
    .await;
    pair(
        "nosql-injection",
        spec(LOGIN),
        login(false, true),
        login(false, false),
        login_users,
    )
    .await;
}

const ME: &str = "  /me:\n    get:\n      responses:\n        '200':\n          description: me\n          content:\n            application/json:\n              schema:\n                type: object\n                properties:\n                  id: {type: integer}\n                  name: {type: string}\n                  card: {type: string}\n    patch:\n      requestBody:\n        content:\n          application/json:\n            schema:\n              type: object\n              properties:\n                name: {type: string}\n      responses:\n        '200': {description: me}\n";

/// `/me` answering `extra` beside the declared fields.
fn me(extra: Value) -> Handler {
    Arc::new(move |c: &Call| match c.user() {
        Some(u) => {
            let mut v = json!({"id": if u == "a" { 1 } else { 2 }, "name": u});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            reply(200, v)
        }
        None => reply(401, json!({"error": "log in"})),
    })
}

#[tokio::test]
async fn data_exposure() {
    pair(
        "secret-in-response",
        spec(ME),
        me(json!({"password": "hunter2"})),
        me(json!({})),
        none,
    )
    .await;
    pair(
        "personal-data-in-response",
        spec(ME),
        me(json!({"card": "4111111111111111"})),
        me(json!({"card": "****1111"})),
        none,
    )
    .await;
    pair(
        "undeclared-response-field",
        spec(ME),
        me(json!({"internal_notes": "vip"})),
        me(json!({})),
        none,
    )
    .await;
}

/// `/me` storing a PATCH: every field, or only `name`.
fn profile(any_field: bool) -> Handler {
    let store = Arc::new(Mutex::new(json!({"id": 1, "name": "a"})));
    Arc::new(move |c: &Call| {
        if c.user().is_none() {
            return reply(401, json!({"error": "log in"}));
        }
        let mut me = store.lock().unwrap();
        if c.method == "PATCH" {
            for (k, v) in c
                .body
                .clone()
                .unwrap_or_default()
                .as_object()
                .cloned()
                .unwrap_or_default()
            {
                if any_field || k == "name" {
                    me[k] = v;
                }
            }
        }
        reply(200, me.clone())
    })
}

#[tokio::test]
async fn mass_assignment_must_stick() {
    pair(
        "mass-assignment",
        spec(ME),
        profile(true),
        profile(false),
        writes,
    )
    .await;
}

const ITEMS: &str = "  /items:\n    get:\n      parameters:\n        - {name: limit, in: query, schema: {type: integer}}\n      responses:\n        '200': {description: items}\n";

#[tokio::test]
async fn limits() {
    let count = |cap: usize| -> Handler {
        Arc::new(move |c: &Call| {
            if c.path != "/items" {
                return reply(404, json!({"error": "not found"}));
            }
            let n = c.q("limit").parse::<usize>().unwrap_or(10).min(cap);
            reply(200, json!({"items": (0..n).collect::<Vec<_>>()}))
        })
    };
    pair(
        "unbounded-page-size",
        spec(ITEMS),
        count(5000),
        count(50),
        none,
    )
    .await;

    let limited = |limit: Option<usize>| -> Handler {
        let hits = Arc::new(Mutex::new((Instant::now(), 0usize)));
        Arc::new(move |c: &Call| {
            if c.path != "/items" {
                return reply(404, json!({"error": "not found"}));
            }
            let mut h = hits.lock().unwrap();
            if h.0.elapsed() > Duration::from_secs(1) {
                *h = (Instant::now(), 0);
            }
            h.1 += 1;
            match limit {
                Some(l) if h.1 > l => reply(429, json!({"error": "slow down"})),
                _ => reply(200, json!({"items": []})),
            }
        })
    };
    pair(
        "no-rate-limit",
        spec(ITEMS),
        limited(None),
        limited(Some(20)),
        none,
    )
    .await;
}

const SEARCH: &str = "  /search:\n    get:\n      parameters:\n        - {name: q, in: query, required: true, schema: {type: string}}\n      responses:\n        '200': {description: results}\n";

#[tokio::test]
async fn redos_needs_super_linear_growth() {
    // Quadratic: 4k characters ~0.1 s, 16k ~1.5 s. Linear: 16k ~40 ms.
    let timed = |quadratic: bool| -> Handler {
        Arc::new(move |c: &Call| {
            let n = c.q("q").len() as f64 / 1000.0;
            let ms = if quadratic { n * n * 6.0 } else { n * 2.5 };
            Resp {
                delay: Duration::from_millis(ms as u64),
                ..reply(200, json!({"results": []}))
            }
        })
    };
    pair("redos", spec(SEARCH), timed(true), timed(false), none).await;
}

#[tokio::test]
async fn admin_reads_and_method_switching() {
    let admin_spec = spec("  /admin/stats:\n    get:\n      x-warden: {roles: [admin]}\n      responses:\n        '200': {description: stats}\n");
    let stats = |check: bool| -> Handler {
        Arc::new(move |c: &Call| match c.user() {
            _ if c.path != "/admin/stats" => reply(404, json!({"error": "not found"})),
            Some("root") => reply(200, json!({"users": 3})),
            Some(_) if !check => reply(200, json!({"users": 3})),
            Some(_) => reply(403, json!({"error": "admins only"})),
            None => reply(401, json!({"error": "log in"})),
        })
    };
    pair(
        "admin-operation",
        admin_spec,
        stats(false),
        stats(true),
        none,
    )
    .await;

    let things = "  /things:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema: {type: object, properties: {name: {type: string}}}\n      responses:\n        '201': {description: made}\n  /things/{id}:\n    get:\n      parameters:\n        - {name: id, in: path, required: true, schema: {type: integer}}\n      responses:\n        '200': {description: a thing}\n";
    let store = |deletes: bool| -> Handler {
        let next = Arc::new(AtomicUsize::new(1));
        Arc::new(move |c: &Call| match (c.method.as_str(), c.path.as_str()) {
            ("POST", "/things") => reply(
                201,
                json!({"id": next.fetch_add(1, Ordering::SeqCst), "owner": c.user()}),
            ),
            ("GET", p) if p.starts_with("/things/") => {
                reply(200, json!({"id": 1, "owner": c.user()}))
            }
            ("DELETE", p) if p.starts_with("/things/") && deletes => Resp {
                status: 204,
                ..Resp::default()
            },
            (_, p) if p.starts_with("/things") => {
                reply(405, json!({"error": "method not allowed"}))
            }
            _ => reply(404, json!({"error": "not found"})),
        })
    };
    pair(
        "method-switch",
        spec(things),
        store(true),
        store(false),
        writes,
    )
    .await;
}

#[tokio::test]
async fn ssrf_reaches_the_canary() {
    let preview = "  /preview:\n    get:\n      parameters:\n        - {name: url, in: query, required: true, schema: {type: string, format: uri}}\n      responses:\n        '200': {description: a preview}\n";
    let fetcher = |fetches: bool| -> Handler {
        Arc::new(move |c: &Call| {
            let url = c.q("url").to_string();
            if fetches {
                if let Some(rest) = url.strip_prefix("http://") {
                    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
                    if let Ok(mut s) = std::net::TcpStream::connect(host) {
                        use std::io::Write;
                        let _ = write!(
                            s,
                            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                        );
                    }
                }
            }
            reply(200, json!({"title": "preview"}))
        })
    };
    pair("ssrf", spec(preview), fetcher(true), fetcher(false), none).await;
}

/// `/items` with the given extra response headers, and what TRACE and a bad id do.
fn configured(
    headers: Vec<(&'static str, String)>,
    trace_echoes: bool,
    leaky_errors: bool,
    reflect_origin: bool,
) -> Handler {
    Arc::new(move |c: &Call| {
        if c.method == "TRACE" {
            if trace_echoes {
                let echoed: String = c
                    .headers
                    .iter()
                    .map(|(k, v)| format!("{k}: {}\n", v.to_str().unwrap_or("")))
                    .collect();
                return Resp {
                    status: 200,
                    body: format!("TRACE {} HTTP/1.1\n{echoed}", c.path),
                    ..Resp::default()
                };
            }
            return reply(405, json!({"error": "method not allowed"}));
        }
        let mut r = match c.path.strip_prefix("/items/") {
            Some(id) if id.parse::<u64>().is_ok() => reply(200, json!({"id": id.parse::<u64>().unwrap(), "owner": c.user()})),
            Some(_) if leaky_errors => Resp {
                status: 500,
                body: "Traceback (most recent call last):\n  File \"/srv/app/views.py\", line 12, in item\nValueError: invalid literal for int()".into(),
                ..Resp::default()
            },
            Some(_) => reply(400, json!({"error": "bad id"})),
            None => reply(404, json!({"error": "not found"})),
        };
        r.headers.extend(headers.clone());
        if let (true, Some(origin)) = (reflect_origin, c.header("origin")) {
            r.headers
                .push(("access-control-allow-origin", origin.to_string()));
            r.headers
                .push(("access-control-allow-credentials", "true".into()));
        }
        r
    })
}

const ITEM: &str = "  /items/{id}:\n    get:\n      parameters:\n        - {name: id, in: path, required: true, schema: {type: integer}}\n      responses:\n        '200': {description: an item}\n";

fn good_headers() -> Vec<(&'static str, String)> {
    vec![
        ("x-content-type-options", "nosniff".into()),
        ("cache-control", "no-store".into()),
    ]
}

#[tokio::test]
async fn misconfiguration() {
    pair(
        "security-headers",
        spec(ITEM),
        configured(vec![], false, false, false),
        configured(good_headers(), false, false, false),
        none,
    )
    .await;
    pair(
        "cors-credentials",
        spec(ITEM),
        configured(good_headers(), false, false, true),
        configured(good_headers(), false, false, false),
        none,
    )
    .await;
    pair(
        "trace-enabled",
        spec(ITEM),
        configured(good_headers(), true, false, false),
        configured(good_headers(), false, false, false),
        none,
    )
    .await;
    pair(
        "verbose-error",
        spec(ITEM),
        configured(good_headers(), false, true, false),
        configured(good_headers(), false, false, false),
        none,
    )
    .await;
}

#[tokio::test]
async fn plain_http_is_reported_off_loopback_only() {
    // The machine's own non-loopback address, if it has one (no packet is sent).
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let Some(ip) = socket
        .connect("192.0.2.1:9")
        .ok()
        .and_then(|_| socket.local_addr().ok())
        .map(|a| a.ip())
        .filter(|ip| !ip.is_loopback())
    else {
        eprintln!("no non-loopback address here: the positive half is skipped");
        return;
    };
    let spec = spec(ITEM);
    let addr = serve(
        configured(good_headers(), false, false, false),
        SocketAddr::new(ip, 0),
    )
    .await;
    let found = scan_at(&spec, &format!("http://{addr}"), none).await;
    assert!(found.contains_key("plain-http"), "{found:#?}");
    // The same API on loopback (where plain HTTP never leaves the machine).
    let local = serve(
        configured(good_headers(), false, false, false),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let clean = scan_at(&spec, &format!("http://{local}"), none).await;
    assert!(!clean.contains_key("plain-http"), "{clean:#?}");
}

#[tokio::test]
async fn inventory() {
    let versioned = spec_with(
        "servers:\n  - url: /api/v2\n",
        "  /items:\n    get:\n      responses:\n        '200': {description: items}\n",
    );
    let versions = |old_too: bool| -> Handler {
        Arc::new(move |c: &Call| match c.path.as_str() {
            "/api/v2/items" => reply(200, json!({"items": [1, 2]})),
            "/api/v1/items" if old_too => reply(200, json!({"items": [1, 2, 3]})),
            _ => reply(404, json!({"error": "not found"})),
        })
    };
    pair(
        "old-version",
        versioned,
        versions(true),
        versions(false),
        none,
    )
    .await;

    let documented = "  /items:\n    get:\n      responses:\n        '200': {description: items}\n  /ghost:\n    get:\n      responses:\n        '200': {description: a documented operation}\n";
    let api = |debug: bool, ghost: bool| -> Handler {
        Arc::new(move |c: &Call| match c.path.as_str() {
            "/items" => reply(200, json!({"items": []})),
            "/debug" if debug => reply(200, json!({"env": {"DB_HOST": "10.0.0.5"}})),
            "/ghost" if ghost => reply(200, json!({"boo": true})),
            _ => reply(404, json!({"error": "not found"})),
        })
    };
    pair(
        "undocumented-endpoint",
        spec(documented),
        api(true, true),
        api(false, true),
        none,
    )
    .await;
    pair(
        "missing-operation",
        spec(documented),
        api(false, false),
        api(false, true),
        none,
    )
    .await;
}

/// A search whose query reaches SQL, MongoDB (brackets parsed into operators) or a shell as
/// `how` says.
fn search(how: &'static str) -> Handler {
    Arc::new(move |c: &Call| {
        let q = c.q("q");
        let plain = |q: &str| {
            reply(
                200,
                json!({"results": if q == "wardenscan" { vec![1, 2] } else { vec![] }}),
            )
        };
        if how == "nosql" {
            return match (c.query.get("q[$eq]"), c.query.get("q[$ne]")) {
                (Some(v), _) => plain(v),
                (_, Some(_)) => reply(200, json!({"results": [1, 2, 3]})),
                _ => plain(q),
            };
        }
        match how {
            "sql-error" if q.contains('\'') => Resp {
                status: 500,
                body: "You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version".into(),
                ..Resp::default()
            },
            "sql-boolean" if q.ends_with("' AND '1'='1") => plain("wardenscan"),
            "sql-boolean" if q.ends_with("' AND '1'='2") => reply(200, json!({"results": []})),
            "sql-time" if q.contains("SLEEP(1)") => Resp { delay: Duration::from_millis(1100), ..plain(q) },
            "cmd-output" if q.ends_with(";id") => reply(200, json!({"results": ["uid=33(www-data) gid=33(www-data) groups=33(www-data)"]})),
            "cmd-time" if q.contains(";sleep 1") => Resp { delay: Duration::from_millis(1100), ..plain(q) },
            _ => plain(q),
        }
    })
}

#[tokio::test]
async fn injection() {
    for how in ["sql-error", "sql-boolean", "sql-time"] {
        pair(
            "sql-injection",
            spec(SEARCH),
            search(how),
            search("literal"),
            none,
        )
        .await;
    }
    pair(
        "nosql-injection",
        spec(SEARCH),
        search("nosql"),
        search("literal"),
        none,
    )
    .await;
    for how in ["cmd-output", "cmd-time"] {
        pair(
            "command-injection",
            spec(SEARCH),
            search(how),
            search("literal"),
            none,
        )
        .await;
    }
}

/// A new check must come with its pair of targets here.
#[test]
fn every_check_has_a_flawed_and_a_mended_target() {
    let source: String = include_str!("checks.rs").split_whitespace().collect();
    for check in warden_scan::CHECKS {
        let named = [
            format!("pair(\"{}\"", check.id),
            format!("jwt_pair(\"{}\"", check.id),
            format!("contains_key(\"{}\")", check.id),
        ];
        assert!(
            named.iter().any(|n| source.contains(n.as_str())),
            "no test for {}",
            check.id
        );
    }
}

/// `--spec` may be a URL: the spec is fetched, and findings point at that URL.
#[tokio::test]
async fn spec_by_url() {
    let text = std::fs::read_to_string(spec(NOTES)).unwrap();
    let inner = notes(|_, _| Some(true));
    let handler: Handler = Arc::new(move |c: &Call| {
        if c.path == "/spec/tiny.yaml" {
            return Resp {
                status: 200,
                body: text.clone(),
                ..Resp::default()
            };
        }
        inner(c)
    });
    let addr = serve(handler, "127.0.0.1:0".parse().unwrap()).await;
    let url = format!("http://{addr}/spec/tiny.yaml");
    let mut config = Config::new(PathBuf::from(&url), format!("http://{addr}"));
    config.users = users();
    config.rate = 1000;
    let report = warden_scan::run(config, &warden_scan::Silent)
        .await
        .unwrap();
    let found = report
        .findings
        .iter()
        .find(|f| f.check.id == "no-auth")
        .expect("no-auth found");
    assert_eq!(found.file, PathBuf::from(&url));
    assert!(found.line.is_some());
    let missing = Config::new(
        PathBuf::from(format!("http://{addr}/spec/none.yaml")),
        format!("http://{addr}"),
    );
    let err = warden_scan::run(missing, &warden_scan::Silent)
        .await
        .unwrap_err();
    assert!(err.contains("none.yaml") && err.contains("404"), "{err}");
}
