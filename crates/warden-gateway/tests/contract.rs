//! The API's OpenAPI contract enforced through the real proxy: default deny (404, 405 with
//! `Allow`), function level (scopes and roles), object level (owner rules on the request path,
//! the request body and the response), strict request validation (no mass assignment), response
//! filtering, monitor mode, and specs that cannot load. OpenAPI 3.1 with `$ref` across files and
//! 3.0 in JSON.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::*;
use http::{HeaderMap, Request, StatusCode};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use warden_gateway::Config;

const SECRET: &str = "c0ntract-T3st!secret#for.hs256.tokens-only";

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../warden-openapi/tests/fixtures")
        .join(name);
    p.canonicalize().unwrap().display().to_string()
}

fn token(sub: &str, scope: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": "https://idp.test", "aud": "shop", "sub": sub, "scope": scope, "iat": now, "exp": now + 600});
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn account(owner: &str) -> String {
    json!({"id": 1, "owner": owner, "name": "Main", "pin": "1234", "password_hash": "$2b$12$x",
           "address": {"city": "Lyon", "internal_note": "vip"}})
    .to_string()
}

type Seen = Arc<Mutex<Vec<HeaderMap>>>;

async fn shop(openapi_extra: &str) -> (warden_gateway::Gateway, Seen) {
    std::env::set_var("WARDEN_TEST_CONTRACT_SECRET", SECRET);
    let (addr, seen) = canned_upstream(vec![
        Canned::json("/api/v2/accounts/alice/items/7", account("alice")),
        Canned::json("/api/v2/accounts/bob/items/7", account("bob")),
        Canned::json("/api/v2/accounts", format!("[{}]", account("alice"))).method("GET"),
        Canned::json("/api/v2/accounts", account("alice"))
            .method("POST")
            .status(201),
        Canned::json("/api/v2/accounts/alice", account("alice")),
        Canned::json("/api/v2/accounts/bob", account("bob")),
        Canned::json("/api/v2/undeclared", "{}"),
    ])
    .await;
    let text = format!(
        "auth:\n  jwt:\n    - issuer: https://idp.test\n      audiences: [shop]\n      algorithms: [HS256]\n      secret: {{env: WARDEN_TEST_CONTRACT_SECRET}}\n  consumers:\n    sam: {{roles: [support]}}\nupstreams:\n  stub:\n    targets: [\"http://UP\"]\n    read_timeout: 2s\nroutes:\n  - name: shop\n    path_prefix: /\n    upstream: stub\n    openapi: {{spec: \"{}\"{openapi_extra}}}\n",
        fixture("shop-3.1.yaml")
    );
    (start(&config_text(addr, &text)).await, seen)
}

async fn call(
    gw: &warden_gateway::Gateway,
    method: &str,
    path: &str,
    who: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(url(gw, path));
    if let Some(t) = who {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            full_body(b.to_string())
        }
        None => empty(),
    };
    let (s, h, b) = send(&h1_client(), req.body(body).unwrap()).await;
    let v = serde_json::from_slice(&b).unwrap_or(Value::Null);
    (s, h, v)
}

/// A request with a body sent as given (`call` always sends JSON it serialised itself).
async fn raw(
    gw: &warden_gateway::Gateway,
    method: &str,
    path: &str,
    token: &str,
    content_type: &str,
    body: &str,
) -> (StatusCode, HeaderMap, bytes::Bytes) {
    let req = Request::builder()
        .method(method)
        .uri(url(gw, path))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", content_type)
        .body(full_body(body.to_string()))
        .unwrap();
    send(&h1_client(), req).await
}

fn full_body(s: String) -> warden_gateway::body::GatewayBody {
    warden_gateway::body::full(bytes::Bytes::from(s))
}

fn violations(doc: &Value) -> Vec<(String, String)> {
    doc["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["location"].as_str().unwrap().to_string(),
                v["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeclared_operations_are_refused_before_the_upstream() {
    let (gw, seen) = shop("").await;
    let alice = token("alice", "shop:read shop:write");
    let (s, h, doc) = call(&gw, "GET", "/api/v2/undeclared", Some(&alice), None).await;
    assert_eq!(
        (s.as_u16(), doc["reason"].as_str()),
        (404, Some("undeclared-operation"))
    );
    assert_eq!(h["content-type"], "application/problem+json");
    let (s, h, doc) = call(&gw, "DELETE", "/api/v2/accounts", Some(&alice), None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{doc}");
    assert_eq!(h["allow"], "GET, POST");
    // Outside the spec's base path (servers: .../api/v2) nothing is declared.
    let (s, _, _) = call(&gw, "GET", "/accounts", Some(&alice), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_and_object_level_authorization() {
    let (gw, seen) = shop("").await;
    let alice = token("alice", "shop:read");
    let writer = token("alice", "shop:read shop:write");
    let sam = token("sam", "shop:read");
    // Path rule: `path.owner == caller.consumer`, several path parameters bound.
    let (s, _, body) = call(
        &gw,
        "GET",
        "/api/v2/accounts/alice/items/7",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, _, doc) = call(
        &gw,
        "GET",
        "/api/v2/accounts/bob/items/7",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(
        (s.as_u16(), doc["reason"].as_str()),
        (403, Some("not-owner")),
        "{doc}"
    );
    // Support staff are exempt from the owner rule.
    let (s, _, body) = call(&gw, "GET", "/api/v2/accounts/bob/items/7", Some(&sam), None).await;
    assert_eq!((s, body["owner"].as_str()), (StatusCode::OK, Some("bob")));
    // Function level: listing is for admin and support; writing needs the write scope.
    let (s, _, doc) = call(&gw, "GET", "/api/v2/accounts", Some(&alice), None).await;
    assert_eq!(
        (s.as_u16(), doc["reason"].as_str()),
        (403, Some("operation-not-permitted"))
    );
    let (s, _, list) = call(&gw, "GET", "/api/v2/accounts", Some(&sam), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(list[0].get("password_hash").is_none(), "{list}");
    let good = json!({"owner": "alice", "name": "Main"});
    let (s, _, doc) = call(
        &gw,
        "POST",
        "/api/v2/accounts",
        Some(&alice),
        Some(good.clone()),
    )
    .await;
    assert_eq!(
        (s.as_u16(), doc["reason"].as_str()),
        (403, Some("operation-not-permitted"))
    );
    // Body rule: `body.owner == caller.consumer`.
    let (s, _, doc) = call(
        &gw,
        "POST",
        "/api/v2/accounts",
        Some(&writer),
        Some(json!({"owner": "bob", "name": "x"})),
    )
    .await;
    assert_eq!(
        (s.as_u16(), doc["reason"].as_str()),
        (403, Some("not-owner"))
    );
    let (s, _, _) = call(&gw, "POST", "/api/v2/accounts", Some(&writer), Some(good)).await;
    assert_eq!(s, StatusCode::CREATED);
    // Response rule: `response.owner == caller.consumer`; bob's account never leaves.
    let hits = seen.lock().unwrap().len();
    let (s, h, doc) = call(&gw, "GET", "/api/v2/accounts/bob", Some(&alice), None).await;
    let doc = assert_problem(s, &h, doc.to_string().as_bytes(), 404, "not-found");
    assert!(!doc.to_string().contains("bob"), "{doc}");
    assert_eq!(
        seen.lock().unwrap().len(),
        hits + 1,
        "the upstream was asked; its answer was withheld"
    );
    let (s, _, body) = call(&gw, "GET", "/api/v2/accounts/alice", Some(&alice), None).await;
    assert_eq!((s, body["owner"].as_str()), (StatusCode::OK, Some("alice")));
    let (s, _, _) = call(&gw, "GET", "/api/v2/accounts/bob", Some(&sam), None).await;
    assert_eq!(s, StatusCode::OK, "exempt role");
    // The compressed-answer loophole is closed: the upstream was asked for identity encoding.
    let last = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last["accept-encoding"], "identity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_validated_strictly_and_violations_listed_without_values() {
    let (gw, seen) = shop("").await;
    let writer = token("alice", "shop:read shop:write");
    let (s, h, doc) = call(&gw, "POST", "/api/v2/accounts", Some(&writer),
        Some(json!({"owner": "alice", "name": "Main", "admin": true, "id": 99, "address": {"city": "Lyon", "country": "<script>"}}))).await;
    let doc = assert_problem(s, &h, doc.to_string().as_bytes(), 400, "bad-request");
    assert_eq!(doc["reason"], "invalid-request");
    assert_eq!(
        violations(&doc),
        vec![
            ("body.address.country".to_string(), "pattern".to_string()),
            ("body.admin".to_string(), "undeclared-property".to_string()),
            ("body.id".to_string(), "read-only".to_string()),
        ]
    );
    assert!(
        !doc.to_string().contains("script"),
        "values are never echoed: {doc}"
    );
    let reader = token("alice", "shop:read");
    let (s, _, doc) = call(
        &gw,
        "GET",
        "/api/v2/accounts/alice/items/0?verbose=maybe&debug=1",
        Some(&reader),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{doc}");
    assert_eq!(
        violations(&doc),
        vec![
            ("path.item".to_string(), "minimum".to_string()),
            (
                "query.debug".to_string(),
                "undeclared-parameter".to_string()
            ),
            ("query.verbose".to_string(), "type".to_string()),
        ]
    );
    // A body the operation does not declare, in a media type it does not accept, or not JSON.
    let accounts = "/api/v2/accounts";
    let (s, h, b) = raw(&gw, "POST", accounts, &writer, "text/plain", "owner=alice").await;
    assert_problem(s, &h, &b, 415, "unsupported-media-type");
    let (s, _, b) = raw(
        &gw,
        "POST",
        accounts,
        &writer,
        "application/json",
        "{\"owner\": ",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let text = String::from_utf8_lossy(&b);
    assert!(text.contains("json-syntax"), "{text}");
    // A key named twice: parsers disagree on which counts, so it is refused.
    let dup = r#"{"owner": "alice", "name": "n", "owner": "bob"}"#;
    let (s, _, b) = raw(&gw, "POST", accounts, &writer, "application/json", dup).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let text = String::from_utf8_lossy(&b);
    assert!(
        text.contains(r#"{"location":"body","rule":"duplicate-key"}"#),
        "{text}"
    );
    let item = "/api/v2/accounts/alice/items/7";
    let (s, _, b) = raw(&gw, "GET", item, &reader, "application/json", "{}").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&b).contains("undeclared-body"));
    // Depth bound, though the spec declares `meta` as a free-form object.
    let mut deep = json!("x");
    for _ in 0..40 {
        deep = json!({"a": deep});
    }
    let (s, _, doc) = call(
        &gw,
        "POST",
        "/api/v2/accounts",
        Some(&writer),
        Some(json!({"owner": "alice", "name": "n", "meta": deep})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(violations(&doc)[0].1, "max-depth");
    // The array and string bounds too, each named where it broke; at the bound, no refusal.
    for (meta, location, rule) in [
        (
            json!({"list": vec![0; 10_001]}),
            "body.meta.list",
            "max-array-items",
        ),
        (
            json!({"t": "é".repeat(100_001)}),
            "body.meta.t",
            "max-string-length",
        ),
    ] {
        let body = json!({"owner": "alice", "name": "n", "meta": meta});
        let (s, _, doc) = call(&gw, "POST", "/api/v2/accounts", Some(&writer), Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{rule}");
        assert_eq!(
            violations(&doc),
            vec![(location.to_string(), rule.to_string())]
        );
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "no invalid request reached the upstream"
    );
    // 100,000 characters in 200,000 bytes: within the bound (characters are what it counts).
    let body = json!({"owner": "alice", "name": "n", "meta": {"t": "é".repeat(100_000)}});
    let (s, _, doc) = call(&gw, "POST", "/api/v2/accounts", Some(&writer), Some(body)).await;
    assert!(s.is_success(), "{s} {doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_lose_undeclared_and_write_only_fields_or_fail_in_strict_mode() {
    let (gw, _) = shop("").await;
    let alice = token("alice", "shop:read");
    let req = Request::get(url(&gw, "/api/v2/accounts/alice/items/7"))
        .header("authorization", format!("Bearer {alice}"))
        .body(empty())
        .unwrap();
    let (s, h, b) = send(&h1_client(), req).await;
    assert_eq!(s, StatusCode::OK);
    let body: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        body,
        json!({"id": 1, "owner": "alice", "name": "Main", "address": {"city": "Lyon"}})
    );
    assert_eq!(h["content-length"], b.len().to_string());
    let (gw, _) = shop(", responses: strict").await;
    let (s, h, doc) = call(
        &gw,
        "GET",
        "/api/v2/accounts/alice/items/7",
        Some(&alice),
        None,
    )
    .await;
    let doc = assert_problem(s, &h, doc.to_string().as_bytes(), 502, "upstream-error");
    assert_eq!(doc["reason"], "response-contract-violated");
    assert!(!doc.to_string().contains("1234"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_mode_records_and_lets_through() {
    let (gw, seen) = shop(", mode: monitor").await;
    let alice = token("alice", "shop:read");
    let (s, _, body) = call(&gw, "GET", "/api/v2/undeclared", Some(&alice), None).await;
    assert_eq!((s, body), (StatusCode::OK, json!({})), "proxied");
    let (s, _, body) = call(
        &gw,
        "GET",
        "/api/v2/accounts/bob/items/7",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        body.get("pin").is_some(),
        "nothing is changed in monitor mode"
    );
    assert_eq!(seen.lock().unwrap().len(), 2);
    let metrics = reqwest_metrics(&gw).await;
    assert!(
        metrics.contains("check=\"authorization\",kind=\"undeclared-operation\",action=\"alert\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("check=\"authorization\",kind=\"not-owner\",action=\"alert\""),
        "{metrics}"
    );
}

async fn reqwest_metrics(gw: &warden_gateway::Gateway) -> String {
    let addr = gw.admin_addr().unwrap();
    let req = Request::get(format!("http://{addr}/metrics"))
        .body(empty())
        .unwrap();
    let (_, _, b) = send(&h1_client(), req).await;
    String::from_utf8_lossy(&b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_3_0_in_json() {
    let (addr, _) = canned_upstream(vec![Canned::json(
        "/notes/1",
        r#"{"text":"hi","secret":"s","internal":1}"#,
    )])
    .await;
    let text = format!(
        "upstreams:\n  stub:\n    targets: [\"http://UP\"]\nroutes:\n  - name: notes\n    path_prefix: /\n    upstream: stub\n    auth: none\n    openapi: {{spec: \"{}\"}}\n",
        fixture("legacy-3.0.json")
    );
    let gw = start(&config_text(addr, &text)).await;
    let (s, _, body) = call(
        &gw,
        "PUT",
        "/notes/1",
        None,
        Some(json!({"text": "hi", "due": null})),
    )
    .await;
    assert_eq!((s, body), (StatusCode::OK, json!({"text": "hi"})));
    // OpenAPI 3.0's boolean exclusiveMinimum, and a format on a nullable string.
    for (path, due, want) in [
        ("/notes/0", "someday", ("path.id", "exclusiveMinimum")),
        ("/notes/1", "someday", ("body.due", "format")),
    ] {
        let body = json!({"text": "hi", "due": due});
        let (s, _, doc) = call(&gw, "PUT", path, None, Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{doc}");
        assert_eq!(
            violations(&doc),
            vec![(want.0.to_string(), want.1.to_string())]
        );
    }
}

#[test]
fn a_spec_that_cannot_load_is_a_config_error_naming_the_file_pointer_and_line() {
    let text = format!(
        "listeners:\n  - address: 127.0.0.1:0\n    plain_http: true\nupstreams:\n  stub:\n    targets: [\"http://127.0.0.1:1\"]\nroutes:\n  - name: a\n    path_prefix: /\n    upstream: stub\n    openapi: {{spec: \"{}\"}}\n",
        fixture("broken-ref.yaml")
    );
    let e = Config::parse(&text, std::path::Path::new("/etc/warden/gw.yaml")).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("broken-ref.yaml:10:"), "{msg}");
    assert!(
        msg.contains("/paths/~1things/post/requestBody/content/application~1json/schema/$ref"),
        "{msg}"
    );
    assert!(
        msg.contains("#/components/schemas/Thing") && msg.contains("/etc/warden/gw.yaml"),
        "{msg}"
    );
    let text = text.replace(
        "broken-ref.yaml\"}",
        "shop-3.1.yaml\", operations: {nope: {roles: [x]}}}",
    );
    let msg = Config::parse(&text, std::path::Path::new("gw.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("routes[0].openapi.operations.nope") && msg.contains("getItem"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_overrides_operations_and_rules_read_headers_and_token_claims() {
    let (gw, _) = shop(", operations: {listAccounts: {roles: [], owner: \"headers['x-tenant'] == caller.claims.tenant\"}}").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": "https://idp.test", "aud": "shop", "sub": "alice", "scope": "shop:read",
                        "tenant": "t1", "iat": now, "exp": now + 600});
    let alice = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let get = |tenant: Option<&'static str>| {
        let mut req = Request::get(url(&gw, "/api/v2/accounts"))
            .header("authorization", format!("Bearer {alice}"));
        if let Some(t) = tenant {
            req = req.header("x-tenant", t);
        }
        send_owned(req.body(empty()).unwrap())
    };
    assert_eq!(
        get(Some("t1")).await,
        StatusCode::OK,
        "the role requirement is lifted, the rule holds"
    );
    assert_eq!(get(Some("t2")).await, StatusCode::FORBIDDEN);
    assert_eq!(
        get(None).await,
        StatusCode::FORBIDDEN,
        "a rule that cannot be evaluated fails closed"
    );
}

async fn send_owned(req: Request<warden_gateway::body::GatewayBody>) -> StatusCode {
    send(&h1_client(), req).await.0
}

// A body the contract accepts is still inspected for attacks: from the tree validation parsed,
// not by scanning the text again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_body_is_still_inspected_for_attacks() {
    let (gw, _) = shop("").await;
    let writer = token("alice", "shop:read shop:write");
    let body = json!({"owner": "alice", "name": "x' OR '1'='1' --", "address": {"city": "Lyon"}});
    let (s, h, doc) = call(&gw, "POST", "/api/v2/accounts", Some(&writer), Some(body)).await;
    let doc = assert_problem(s, &h, doc.to_string().as_bytes(), 403, "forbidden");
    assert_eq!(doc["reason"], "attack-detected");
    assert!(!doc.to_string().contains("OR '1'"), "no echo: {doc}");
    let metrics = reqwest_metrics(&gw).await;
    assert!(
        metrics.contains("check=\"attack_detection\",kind=\"sqli\",action=\"block\""),
        "{metrics}"
    );
    // The same shape with a harmless name goes through.
    let body = json!({"owner": "alice", "name": "O'Brien's main account; union of two", "address": {"city": "Lyon"}});
    let (s, _, _) = call(&gw, "POST", "/api/v2/accounts", Some(&writer), Some(body)).await;
    assert_eq!(s, StatusCode::CREATED);
}

/// The contract's response filter and data protection read the answer in one walk: what the
/// contract removes is gone before data protection would look at it (a card in an undeclared
/// field is removed, not masked, and not reported as personal data), a card in a declared field
/// is masked, and members dropped by a data protection rule next to removed ones leave valid JSON.
/// An answer that says JSON and is not still gets both checks, one after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_walk_filters_and_protects_the_answer() {
    std::env::set_var("WARDEN_TEST_CONTRACT_SECRET", SECRET);
    let card = "4111 1111 1111 1111";
    let leaky = json!({"id": 1, "owner": "alice", "name": card, "pin": "1234",
                       "password_hash": "5500 0000 0000 0004",
                       "address": {"city": "Lyon", "internal_note": "vip"}});
    let (addr, _) = canned_upstream(vec![
        Canned::json("/api/v2/accounts/alice/items/7", leaky.to_string()),
        Canned::json(
            "/api/v2/accounts/alice/items/8",
            format!("{{\"id\": 1, \"name\": \"{card}\", \"pin\": "),
        ),
    ])
    .await;
    let text = format!(
        "auth:\n  jwt:\n    - issuer: https://idp.test\n      audiences: [shop]\n      algorithms: [HS256]\n      secret: {{env: WARDEN_TEST_CONTRACT_SECRET}}\nupstreams:\n  stub:\n    targets: [\"http://UP\"]\n    read_timeout: 2s\nroutes:\n  - name: shop\n    path_prefix: /\n    upstream: stub\n    openapi: {{spec: \"{}\"}}\ndata_protection:\n  rules:\n    - {{fields: [owner], action: drop}}\n",
        fixture("shop-3.1.yaml")
    );
    let gw = start(&config_text(addr, &text)).await;
    let alice = token("alice", "shop:read");
    let (s, _, body) = call(
        &gw,
        "GET",
        "/api/v2/accounts/alice/items/7",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // `owner` (dropped by the rule), `password_hash` and `pin` (removed by the contract) were
    // neighbours at the end of the object: one run, commas right.
    assert_eq!(
        body,
        json!({"id": 1, "name": "**** **** **** 1111", "address": {"city": "Lyon"}})
    );
    let metrics = reqwest_metrics(&gw).await;
    let found = |check: &str, kind: &str| {
        metrics.lines().any(|l| {
            l.starts_with("warden_findings_total")
                && l.contains(&format!("check=\"{check}\""))
                && l.contains(&format!("kind=\"{kind}\""))
        })
    };
    assert!(
        found("validation", "response-undeclared-property"),
        "{metrics}"
    );
    assert!(found("validation", "response-write-only"), "{metrics}");
    assert!(found("data_protection", "card"), "{metrics}");
    // Only the declared card was seen by data protection: the removed one was never read.
    let cards: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("warden_findings_total") && l.contains("kind=\"card\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(cards, 1.0, "{metrics}");

    // Cut short: not JSON to either check, so the contract records it and data protection
    // reads it as text, masking the card all the same.
    let (s, _, b) = send(
        &h1_client(),
        Request::get(url(&gw, "/api/v2/accounts/alice/items/8"))
            .header("authorization", format!("Bearer {alice}"))
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let b = String::from_utf8_lossy(&b);
    assert!(!b.contains(card) && b.contains("1111"), "{b}");
    assert!(reqwest_metrics(&gw).await.contains("response-not-json"));
}
