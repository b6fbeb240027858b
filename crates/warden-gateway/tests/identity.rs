//! Authentication through the real proxy: API keys from the store (revoked, rotated, expired),
//! JWT (claims, `alg: none`, algorithm confusion, tampering, JWKS refresh on an unknown `kid`),
//! signed requests (replay, stale timestamp), lockout, the upstream's own login and token
//! provenance, and weak secrets refused at load.

mod common;

use std::time::Duration;

use common::*;
use http::{Request, StatusCode};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use warden_gateway::services::Services;
use warden_policy::auth::keygen::{generate, Kind};
use warden_policy::auth::sha256_hex;
use warden_policy::auth::signature::{authorization, RequestParts};
use warden_store::Store;

const SECRET: &str = "k3J9x!Qm2#vL8pZ7@rT4wN6yB1cF5hD0-test";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A 401 that says nothing about why, with a WWW-Authenticate challenge.
fn assert_unauthorized(s: StatusCode, h: &http::HeaderMap, b: &[u8]) {
    let doc = assert_problem(s, h, b, 401, "unauthorized");
    assert_eq!(doc["reason"], "unauthenticated");
    assert!(h["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer realm=\"warden\""));
}

/// The cause recorded for the last refused requests, from the metrics (never in the answer).
async fn causes(gw: &warden_gateway::Gateway) -> String {
    let admin = gw.admin_addr().unwrap();
    let req = Request::get(format!("http://{admin}/metrics"))
        .body(empty())
        .unwrap();
    let (_, _, b) = send(&h1_client(), req).await;
    String::from_utf8_lossy(&b).into_owned()
}

fn consumer_seen(body: &[u8]) -> Option<String> {
    header(&echoed(body), "x-warden-consumer").map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_from_the_store_valid_missing_revoked_rotated_expired() {
    let up = upstream().await;
    let dir = temp_dir("keys");
    let mut store = Store::open(&dir).unwrap();
    let (alice, alice_key) = store
        .create_key("alice", &["orders:read".into()], &[], None, "test")
        .unwrap();
    let (_, expired_key) = store
        .create_key("carol", &[], &[], Some(now() - 1), "test")
        .unwrap();
    let services = Services::with_store(&dir).unwrap();
    let gw = start_with(&config_text(up.addr, BASIC), services).await;

    let (s, _, b) = get_with(&gw, "/echo", &[("x-api-key", &alice_key)]).await;
    assert_eq!(s, StatusCode::OK);
    let seen = echoed(&b);
    assert_eq!(header(&seen, "x-warden-consumer"), Some("alice"));
    assert_eq!(header(&seen, "x-warden-scopes"), Some("orders:read"));
    assert_eq!(
        header(&seen, "x-api-key"),
        None,
        "the key never reaches the upstream"
    );
    let bearer = format!("Bearer {alice_key}");
    assert_eq!(
        get_with(&gw, "/echo", &[("authorization", &bearer)])
            .await
            .0,
        StatusCode::OK
    );

    // A client cannot pose as someone else with our own headers.
    let (_, _, b) = get_with(
        &gw,
        "/echo",
        &[("x-api-key", &alice_key), ("x-warden-consumer", "admin")],
    )
    .await;
    assert_eq!(consumer_seen(&b).as_deref(), Some("alice"));

    let (s, h, b) = get(&gw, "/echo").await;
    assert_unauthorized(s, &h, &b);
    let mut wrong = alice_key.clone();
    wrong.replace_range(wrong.len() - 4.., "AAAA");
    for bad in [
        wrong.as_str(),
        "wdn_nope",
        "not-a-key",
        expired_key.as_str(),
    ] {
        let (s, h, b) = get_with(&gw, "/echo", &[("x-api-key", bad)]).await;
        assert_unauthorized(s, &h, &b);
    }
    let m = causes(&gw).await;
    for cause in [
        "credential-missing",
        "bad-secret",
        "credential-malformed",
        "expired",
    ] {
        assert!(m.contains(&format!("reason=\"{cause}\"")), "{cause} in {m}");
    }

    // Rotation with a 2 s overlap: both work, then only the new one.
    let (_, new_key) = store.rotate_key(&alice.id, 2, "test").unwrap();
    let rotated_at = std::time::Instant::now();
    // Not polled: each refusal would count towards the lockout of this client.
    tokio::time::sleep(warden_gateway::services::KEY_POLL * 3).await;
    assert_eq!(
        get_with(&gw, "/echo", &[("x-api-key", &new_key)]).await.0,
        StatusCode::OK,
        "the new key is accepted once the store is polled"
    );
    assert_eq!(
        get_with(&gw, "/echo", &[("x-api-key", &alice_key)]).await.0,
        StatusCode::OK,
        "the old key still works inside the overlap"
    );
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(rotated_at.elapsed())).await;
    assert_eq!(
        get_with(&gw, "/echo", &[("x-api-key", &alice_key)])
            .await
            .0
            .as_u16(),
        401
    );
    assert_eq!(
        get_with(&gw, "/echo", &[("x-api-key", &new_key)]).await.0,
        StatusCode::OK
    );

    // Revocation, by another process's connection, takes effect within a second.
    let new_id = store
        .list_keys()
        .unwrap()
        .into_iter()
        .find(|k| k.rotated_to.is_none() && k.consumer == "alice")
        .unwrap()
        .id;
    Store::open(&dir)
        .unwrap()
        .revoke_key(&new_id, "test")
        .unwrap();
    let revoked_at = std::time::Instant::now();
    while get_with(&gw, "/echo", &[("x-api-key", &new_key)]).await.0 == StatusCode::OK {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "revocation not effective within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(causes(&gw).await.contains("reason=\"revoked\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_routes_are_stated_and_other_routes_require_a_credential() {
    let up = upstream().await;
    let dir = temp_dir("public");
    Store::open(&dir)
        .unwrap()
        .create_key("a", &[], &[], None, "t")
        .unwrap();
    let text = config_text(
        up.addr,
        "upstreams:\n  stub:\n    targets: [\"http://UP\"]\nroutes:\n  - {name: health, path_prefix: /health, upstream: stub, auth: none}\n  - {name: main, path_prefix: /, upstream: stub}\n",
    );
    let gw = start_with(&text, Services::with_store(&dir).unwrap()).await;
    assert_eq!(get(&gw, "/health").await.0, StatusCode::OK);
    assert_eq!(get(&gw, "/x").await.0.as_u16(), 401);
}

fn jwt_config(extra: &str) -> String {
    format!(
        "auth:\n  jwt:\n    - issuer: https://idp.test\n      audiences: [orders]\n      algorithms: [HS256]\n      secret: {{env: WARDEN_TEST_JWT_SECRET}}\n      leeway: 2s\n{extra}{BASIC}"
    )
}

fn claims() -> Value {
    json!({"iss": "https://idp.test", "aud": "orders", "sub": "alice", "exp": now() + 300,
           "roles": ["user"], "scope": "orders:read"})
}

fn hs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_claims_algorithms_and_tampering() {
    std::env::set_var("WARDEN_TEST_JWT_SECRET", SECRET);
    let up = upstream().await;
    let gw = start(&config_text(up.addr, &jwt_config(""))).await;
    let bearer = |t: &str| format!("Bearer {t}");
    let call = |t: String| {
        let gw = &gw;
        async move { get_with(gw, "/echo", &[("authorization", &bearer(&t))]).await }
    };
    let (s, _, b) = call(hs256(&claims())).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(consumer_seen(&b).as_deref(), Some("alice"));
    assert_eq!(header(&echoed(&b), "x-warden-roles"), Some("user"));

    let with = |k: &str, v: Value| {
        let mut c = claims();
        c[k] = v;
        hs256(&c)
    };
    let token = hs256(&claims());
    let parts: Vec<&str> = token.split('.').collect();
    let none_header = base64_url(br#"{"alg":"none","typ":"JWT"}"#);
    let cases = [
        (with("exp", json!(now() - 60)), "expired"),
        (with("nbf", json!(now() + 600)), "not-yet-valid"),
        (with("aud", json!("billing")), "wrong-audience"),
        (with("iss", json!("https://evil.test")), "untrusted-issuer"),
        (
            format!("{none_header}.{}.", parts[1]),
            "algorithm-not-allowed",
        ),
        (
            format!("{}.{}.{}", parts[0], parts[1], flip(parts[2], 10)),
            "bad-signature",
        ),
        (
            "eyJhbGciOiJIUzI1NiJ9.e30".to_string(),
            "credential-malformed",
        ),
    ];
    for (t, cause) in &cases {
        let (s, h, b) = call(t.clone()).await;
        assert_unauthorized(s, &h, &b);
        assert!(
            causes(&gw).await.contains(&format!("reason=\"{cause}\"")),
            "{cause}"
        );
    }
    // A payload swapped for another subject's, signature kept: refused on the signature.
    let admin_payload = with("sub", json!("admin"));
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        admin_payload.split('.').nth(1).unwrap(),
        parts[2]
    );
    let (s, h, b) = call(forged).await;
    assert_unauthorized(s, &h, &b);
}

/// `s` with the character at `i` changed to another base64url character.
fn flip(s: &str, i: usize) -> String {
    let mut b = s.as_bytes().to_vec();
    b[i] = if b[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

fn base64_url(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_key_cannot_be_used_as_an_hmac_secret() {
    let up = upstream().await;
    let dir = temp_dir("confusion");
    let kp = generate(Kind::Rsa2048).unwrap();
    std::fs::write(dir.join("idp.pem"), &kp.public_pem).unwrap();
    let text = config_text(
        up.addr,
        &format!(
            "auth:\n  jwt:\n    - issuer: https://idp.test\n      audiences: [orders]\n      algorithms: [RS256]\n      keys: [{{file: {}}}]\n{BASIC}",
            dir.join("idp.pem").display()
        ),
    );
    let gw = start(&text).await;
    let real = encode(
        &Header::new(Algorithm::RS256),
        &claims(),
        &EncodingKey::from_rsa_pem(kp.private_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        get_with(
            &gw,
            "/echo",
            &[("authorization", &format!("Bearer {real}"))]
        )
        .await
        .0,
        StatusCode::OK
    );
    // The attacker knows the public key and signs HS256 with it.
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(kp.public_pem.as_bytes()),
    )
    .unwrap();
    let (s, h, b) = get_with(
        &gw,
        "/echo",
        &[("authorization", &format!("Bearer {forged}"))],
    )
    .await;
    assert_unauthorized(s, &h, &b);
    assert!(causes(&gw)
        .await
        .contains("reason=\"algorithm-not-allowed\""));
}

fn jwks(keys: &[(&str, &str)]) -> String {
    let set = JwkSet {
        keys: keys
            .iter()
            .map(|(kid, private_pem)| {
                let mut jwk = Jwk::from_encoding_key(
                    &EncodingKey::from_ec_pem(private_pem.as_bytes()).unwrap(),
                    Algorithm::ES256,
                )
                .unwrap();
                jwk.common.key_id = Some(kid.to_string());
                jwk
            })
            .collect(),
    };
    serde_json::to_string(&set).unwrap()
}

fn es256(kid: &str, private_pem: &str) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(kid.into());
    encode(
        &h,
        &claims(),
        &EncodingKey::from_ec_pem(private_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_triggers_a_jwks_refresh_over_https() {
    let up = upstream().await;
    let k1 = generate(Kind::EcP256).unwrap();
    let k2 = generate(Kind::EcP256).unwrap();
    let served = std::sync::Arc::new(std::sync::Mutex::new(jwks(&[("k1", &k1.private_pem)])));
    let (jwks_addr, ca_pem, fetches) = jwks_server(served.clone()).await;
    let dir = temp_dir("jwks");
    std::fs::write(dir.join("ca.pem"), ca_pem).unwrap();
    let text = config_text(
        up.addr,
        &format!(
            "auth:\n  jwt:\n    - issuer: https://idp.test\n      audiences: [orders]\n      algorithms: [ES256]\n      jwks_url: https://localhost:{}/jwks.json\n      jwks_ca_file: {}\n      jwks_min_refresh: 1s\n{BASIC}",
            jwks_addr.port(),
            dir.join("ca.pem").display()
        ),
    );
    let gw = start(&text).await;
    let call = |t: String| {
        let gw = &gw;
        async move {
            get_with(gw, "/echo", &[("authorization", &format!("Bearer {t}"))])
                .await
                .0
        }
    };
    // The first token fetches the key set.
    assert_eq!(call(es256("k1", &k1.private_pem)).await, StatusCode::OK);
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The issuer rotates to k2: the first k2 token refreshes the set and is accepted.
    *served.lock().unwrap() = jwks(&[("k1", &k1.private_pem), ("k2", &k2.private_pem)]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(call(es256("k2", &k2.private_pem)).await, StatusCode::OK);
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 2);
    // Made-up key ids do not hammer the identity provider: at most one fetch per second.
    for i in 0..5 {
        assert_eq!(
            call(es256(&format!("bogus{i}"), &k2.private_pem))
                .await
                .as_u16(),
            401
        );
    }
    assert!(fetches.load(std::sync::atomic::Ordering::SeqCst) <= 3);
    assert!(causes(&gw).await.contains("reason=\"unknown-key\""));
}

/// An HTTPS server for `/jwks.json` with its own CA; returns (address, CA PEM, fetch counter).
async fn jwks_server(
    body: std::sync::Arc<std::sync::Mutex<String>>,
) -> (
    std::net::SocketAddr,
    String,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rustls_pki_types::pem::PemObject;
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &rcgen::Issuer::from_params(&ca_params, &ca_key))
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls_pki_types::PrivateKeyDer::from_pem_slice(leaf_key.serialize_pem().as_bytes())
                .unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let f = fetches.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let body = body.clone();
            let f = f.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(move |_req| {
                    f.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let text = body.lock().unwrap().clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(text)),
                        ))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, ca.pem(), fetches)
}

fn signed_config(extra: &str) -> String {
    format!(
        "auth:\n  signatures:\n    window: 5m\n    keys:\n      partner-a: {{secret: {{env: WARDEN_TEST_SIGNING_SECRET}}, consumer: partner-a, scopes: [payments:write]}}\n{extra}{BASIC}"
    )
}

fn sign(
    gw: &warden_gateway::Gateway,
    method: &str,
    path_q: &str,
    body: &str,
    ts: i64,
    nonce: &str,
) -> Request<warden_gateway::body::GatewayBody> {
    let host = gw.listen_addrs()[0].to_string();
    let (path, query) = path_q
        .split_once('?')
        .map_or((path_q, None), |(p, q)| (p, Some(q)));
    let parts = RequestParts {
        method,
        path,
        query,
        headers: vec![("host", &host), ("content-type", "application/json")],
        body_sha256_hex: sha256_hex(body.as_bytes()),
    };
    let auth = authorization(
        "partner-a",
        SECRET.as_bytes(),
        ts,
        nonce,
        &["host", "content-type"],
        &parts,
    );
    Request::builder()
        .method(method)
        .uri(url(gw, path_q))
        .header("host", host)
        .header("content-type", "application/json")
        .header("authorization", auth)
        .body(warden_gateway::body::full(body.to_string()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_requests_replay_stale_and_tampered() {
    std::env::set_var("WARDEN_TEST_SIGNING_SECRET", SECRET);
    let up = upstream().await;
    let gw = start(&config_text(up.addr, &signed_config(""))).await;
    let body = r#"{"amount": 100}"#;
    let req = sign(
        &gw,
        "POST",
        "/echo?b=2&a=1",
        body,
        now(),
        "nonce-0000000000000001",
    );
    let replay = sign(
        &gw,
        "POST",
        "/echo?b=2&a=1",
        body,
        now(),
        "nonce-0000000000000001",
    );
    let (s, _, b) = send(&h1_client(), req).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    let seen = echoed(&b);
    assert_eq!(header(&seen, "x-warden-consumer"), Some("partner-a"));
    assert_eq!(
        header(&seen, "authorization"),
        None,
        "the signature is Warden's, not the upstream's"
    );
    let (s, h, b) = send(&h1_client(), replay).await;
    assert_unauthorized(s, &h, &b);
    assert!(causes(&gw).await.contains("reason=\"replay\""));
    let stale = sign(
        &gw,
        "POST",
        "/echo",
        body,
        now() - 600,
        "nonce-0000000000000002",
    );
    let (s, h, b) = send(&h1_client(), stale).await;
    assert_unauthorized(s, &h, &b);
    assert!(causes(&gw).await.contains("reason=\"stale-timestamp\""));
    // Signed for one body, sent with another.
    let mut tampered = sign(&gw, "POST", "/echo", body, now(), "nonce-0000000000000003");
    *tampered.body_mut() = warden_gateway::body::full(r#"{"amount": 100000}"#);
    let (s, h, b) = send(&h1_client(), tampered).await;
    assert_unauthorized(s, &h, &b);
    assert!(causes(&gw).await.contains("reason=\"bad-signature\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_lock_out_then_the_lock_expires() {
    let up = upstream().await;
    let dir = temp_dir("lockout");
    let (_, good) = Store::open(&dir)
        .unwrap()
        .create_key("alice", &[], &[], None, "t")
        .unwrap();
    let text = config_text(
        up.addr,
        &format!("auth:\n  lockout: {{max_failures: 3, window: 1m, lock: 1s}}\n{BASIC}"),
    );
    let gw = start_with(&text, Services::with_store(&dir).unwrap()).await;
    let mut bad = good.clone();
    bad.replace_range(bad.len() - 4.., "ZZZZ");
    for _ in 0..3 {
        assert_eq!(
            get_with(&gw, "/echo", &[("x-api-key", &bad)])
                .await
                .0
                .as_u16(),
            401
        );
    }
    // Locked: even the right key is refused, with the same answer as any failure.
    let (s, h, b) = get_with(&gw, "/echo", &[("x-api-key", &good)]).await;
    assert_unauthorized(s, &h, &b);
    assert!(causes(&gw).await.contains("reason=\"locked-out\""));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        get_with(&gw, "/echo", &[("x-api-key", &good)]).await.0,
        StatusCode::OK
    );
}

fn login_upstream() -> Vec<Canned> {
    vec![
        Canned::json("/login", r#"{"token": "tok-alice-1"}"#),
        Canned::json("/login-unknown", r#"{"error": "no such user"}"#).status(404),
        Canned::json("/login-wrong", r#"{"error": "wrong password"}"#).status(401),
        Canned::json("/data", r#"{"ok": true}"#),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_failures_are_uniform_and_limited_and_issued_tokens_are_the_only_ones_accepted() {
    let (addr, _) = canned_upstream(login_upstream()).await;
    let text = config_text(
        addr,
        "auth:
  login:
    - {path: /login, max_attempts: 3}
    - {path: /login-unknown, max_attempts: 3}
    - {path: /login-wrong, max_attempts: 3}
  issued_tokens: {enabled: true, ttl: 1h}
upstreams:
  stub: {targets: [\"http://UP\"]}
routes:
  - {name: login, path_prefix: /login, upstream: stub, auth: none}
  - {name: login-unknown, path_prefix: /login-unknown, upstream: stub, auth: none}
  - {name: login-wrong, path_prefix: /login-wrong, upstream: stub, auth: none}
  - {name: api, path_prefix: /, upstream: stub}
",
    );
    let gw = start(&text).await;
    let post = |path: &str, user: &str| {
        Request::post(url(&gw, path))
            .header("content-type", "application/json")
            .body(warden_gateway::body::full(format!(
                r#"{{"username": "{user}", "password": "x"}}"#
            )))
            .unwrap()
    };
    // Unknown user and wrong password look the same from outside.
    let (s1, h1, b1) = send(&h1_client(), post("/login-unknown", "nobody")).await;
    let (s2, h2, b2) = send(&h1_client(), post("/login-wrong", "alice")).await;
    let strip = |b: &[u8]| {
        let mut v: Value = serde_json::from_slice(b).unwrap();
        v.as_object_mut().unwrap().remove("request_id");
        v
    };
    assert_eq!((s1, strip(&b1)), (s2, strip(&b2)));
    assert_problem(s1, &h1, &b1, 401, "unauthorized");
    assert_eq!(strip(&b1)["reason"], "login-failed");
    let _ = h2;
    // Per-username attempt limit: after 3 failures for bob, even a login that would work fails.
    for _ in 0..3 {
        send(&h1_client(), post("/login-wrong", "bob")).await;
    }
    let (s, _, b) = send(&h1_client(), post("/login", "bob")).await;
    assert_eq!(s.as_u16(), 401, "{}", String::from_utf8_lossy(&b));
    // A successful login's token is recorded and accepted; any other bearer token is not.
    let (s, _, b) = send(&h1_client(), post("/login", "carol")).await;
    assert_eq!(s, StatusCode::OK);
    let token = serde_json::from_slice::<Value>(&b).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        get_with(
            &gw,
            "/data",
            &[("authorization", &format!("Bearer {token}"))]
        )
        .await
        .0,
        StatusCode::OK
    );
    let (s, h, b) = get_with(
        &gw,
        "/data",
        &[("authorization", "Bearer tok-forged-with-a-leaked-key")],
    )
    .await;
    assert_unauthorized(s, &h, &b);
    assert!(causes(&gw).await.contains("reason=\"not-issued\""));
}

#[test]
fn weak_or_impossible_auth_configs_are_refused_at_load() {
    let parse = |extra: &str| {
        let text = config_text("127.0.0.1:9".parse().unwrap(), &format!("{extra}{BASIC}"));
        warden_gateway::Config::parse(&text, std::path::Path::new("t.yaml"))
    };
    std::env::set_var("WARDEN_TEST_WEAK_SECRET", "secret");
    let weak = "auth:\n  jwt:\n    - issuer: i\n      audiences: [a]\n      algorithms: [HS256]\n      secret: {env: WARDEN_TEST_WEAK_SECRET}\n";
    let e = parse(weak).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("auth.jwt[0].secret"));
    assert!(
        e.message.contains("weak") && e.message.contains("well-known"),
        "{e}"
    );
    assert_eq!(e.line, Some(11), "{e}");
    assert!(parse(&format!("{weak}      allow_weak_secret: true\n")).is_ok());
    let e = parse("auth:\n  jwt:\n    - {issuer: i, audiences: [a], algorithms: [none]}\n")
        .unwrap_err();
    assert!(e.message.contains("never accepted"), "{e}");
    let e = parse("auth:\n  jwt:\n    - {issuer: i, audiences: [a], algorithms: [RS256, HS256], secret: {env: WARDEN_TEST_WEAK_SECRET}}\n").unwrap_err();
    assert!(e.message.contains("mixes"), "{e}");
    let e = parse("auth:\n  jwt:\n    - {issuer: i, audiences: [a], algorithms: [RS256], jwks_url: \"http://idp/jwks\"}\n").unwrap_err();
    assert!(e.message.contains("https"), "{e}");
    let e = parse("auth:\n  jwt:\n    - {issuer: i, audiences: [], algorithms: [RS256], jwks_url: \"https://idp/jwks\"}\n").unwrap_err();
    assert!(e.message.contains("aud"), "{e}");
    let text = config_text(
        "127.0.0.1:9".parse().unwrap(),
        &BASIC.replace(
            "    upstream: stub\n",
            "    upstream: stub\n    auth: [jwt]\n",
        ),
    );
    let e = warden_gateway::Config::parse(&text, std::path::Path::new("t.yaml")).unwrap_err();
    assert!(
        e.message
            .contains("accepts `jwt` but auth.jwt lists no issuer"),
        "{e}"
    );
}
