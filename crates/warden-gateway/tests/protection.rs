//! Response protection through the real proxy: personal data masked (and hashed, dropped,
//! encrypted by policy), leaky errors scrubbed, security headers, CORS.

mod common;

use common::*;
use http::{Request, StatusCode};
use warden_policy::pii::protect::{decrypt, encrypted_key_id, pseudonym};
use warden_policy::pii::DataClass;

const ID: &str = "11010519491231002X";
const ID_BAD: &str = "110105194912310021";
const CARD: &str = "4111111111111111";
const CARD_BAD: &str = "4111111111111112";

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

async fn gateway(answers: Vec<Canned>, extra: &str) -> warden_gateway::Gateway {
    let (addr, _) = canned_upstream(answers).await;
    start(&config_text(addr, &format!("{extra}{BASIC}"))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_personal_data_is_masked_by_default_and_near_misses_pass() {
    let body = format!(
        r#"{{"user": {{"name": "Li Lei", "id_number": "{ID}", "card": "{CARD}", "note": "card {CARD} on file", "email": "li@example.com"}},
            "near": {{"id_number": "{ID_BAD}", "card": "{CARD_BAD}"}}, "total": 12.50}}"#
    );
    let gw = gateway(vec![Canned::json("/me", body)], "").await;
    let (s, h, b) = get(&gw, "/me").await;
    assert_eq!(s, StatusCode::OK);
    let text = String::from_utf8_lossy(&b).to_string();
    assert!(!text.contains(ID) && !text.contains(CARD), "{text}");
    let v = json(&b);
    assert_eq!(v["user"]["id_number"], "**************002X");
    assert_eq!(v["user"]["card"], "************1111");
    assert_eq!(v["user"]["note"], "card ************1111 on file");
    assert_eq!(
        v["user"]["email"], "li@example.com",
        "reported, not masked by default"
    );
    assert_eq!(v["near"]["id_number"], ID_BAD);
    assert_eq!(v["near"]["card"], CARD_BAD);
    assert!(
        text.contains("12.50"),
        "numbers keep their spelling: {text}"
    );
    assert_eq!(h["content-length"], b.len().to_string());
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(
        h["cache-control"], "no-store",
        "a response with personal data is not cached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_text_bodies_and_headers_are_masked() {
    let gw = gateway(
        vec![
            Canned {
                method: None,
                path: "/text",
                status: 200,
                headers: vec![("content-type", "text/plain".into())],
                body: format!("customer {ID} paid with {CARD}"),
            },
            Canned::json("/hdr", "{}").with("x-customer-card", CARD),
            Canned::json(
                "/user",
                r#"{"username": "bob", "password_hash": "$2b$12$abcdefghijk"}"#,
            ),
        ],
        "",
    )
    .await;
    let (_, _, b) = get(&gw, "/text").await;
    assert_eq!(
        &b[..],
        b"customer **************002X paid with ************1111"
    );
    let (_, h, _) = get(&gw, "/hdr").await;
    assert_eq!(h["x-customer-card"], "************1111");
    let (_, _, b) = get(&gw, "/user").await;
    assert_eq!(json(&b)["password_hash"], "[REDACTED]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_hash_drop_encrypt_and_route_exemptions() {
    let dir = std::env::temp_dir().join(format!("warden-pii-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hash_hex = "11".repeat(32);
    let enc_hex = "22".repeat(32);
    std::fs::write(dir.join("enc.key"), &enc_hex).unwrap();
    std::env::set_var("WARDEN_TEST_HASH_KEY_POLICIES", &hash_hex);
    let extra = format!(
        "data_protection:
  keys:
    hash: {{env: WARDEN_TEST_HASH_KEY_POLICIES}}
    encryption: {{active: k1, keys: {{k1: {{file: {}}}}}}}
  rules:
    - {{classes: [email], action: hash}}
    - {{fields: [\"users[*].internal_notes\"], action: drop}}
    - {{classes: [card], routes: [main], action: encrypt}}
",
        dir.join("enc.key").display()
    );
    let body = format!(
        r#"{{"users": [{{"email": "a@b.io", "internal_notes": "vip", "card": "{CARD}", "id": 1}}]}}"#
    );
    let gw = gateway(vec![Canned::json("/users", body)], &extra).await;
    let (s, _, b) = get(&gw, "/users").await;
    assert_eq!(s, StatusCode::OK);
    let u = &json(&b)["users"][0];
    assert_eq!(
        u["email"],
        pseudonym(&[0x11; 32], Some(DataClass::Email), "a@b.io")
    );
    assert!(u.get("internal_notes").is_none(), "{u}");
    let token = u["card"].as_str().unwrap();
    assert_eq!(encrypted_key_id(token), Some("k1"));
    assert_eq!(decrypt(token, &[0x22; 32]).unwrap(), CARD);
    assert_eq!(u["id"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_can_turn_protection_off() {
    let (addr, _) = canned_upstream(vec![Canned::json(
        "/raw",
        format!(r#"{{"card": "{CARD}"}}"#),
    )])
    .await;
    let text = config_text(
        addr,
        &BASIC.replace(
            "    upstream: stub\n",
            "    upstream: stub\n    data_protection: false\n",
        ),
    );
    let gw = start(&text).await;
    let (_, _, b) = get(&gw, "/raw").await;
    assert_eq!(json(&b)["card"], CARD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_responses_pass_or_block_as_configured() {
    let big = format!(r#"{{"card": "{CARD}", "pad": "{}"}}"#, "x".repeat(4096));
    let answers = vec![Canned::json("/big", big)];
    let gw = gateway(
        answers.clone(),
        "data_protection:\n  max_body_bytes: 1KiB\n",
    )
    .await;
    let (s, _, b) = get(&gw, "/big").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        String::from_utf8_lossy(&b).contains(CARD),
        "passed uninspected"
    );
    let gw = gateway(
        answers,
        "data_protection:\n  max_body_bytes: 1KiB\n  oversized: block\n",
    )
    .await;
    let (s, h, b) = get(&gw, "/big").await;
    assert_eq!(
        assert_problem(s, &h, &b, 502, "upstream-error")["reason"],
        "response-too-large-to-inspect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_is_asked_for_uncompressed_answers() {
    let (addr, seen) = canned_upstream(vec![Canned::json("/x", "{}")]).await;
    let gw = start(&config_text(addr, BASIC)).await;
    let req = Request::get(url(&gw, "/x"))
        .header("accept-encoding", "gzip, br")
        .body(empty())
        .unwrap();
    send(&h1_client(), req).await;
    assert_eq!(seen.lock().unwrap()[0]["accept-encoding"], "identity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaky_errors_are_scrubbed_and_plain_ones_pass() {
    let trace = "Traceback (most recent call last):\n  File \"/srv/app/db.py\", line 42, in query\npsycopg2.errors.SyntaxError: syntax error at or near \"'\"";
    let gw = gateway(
        vec![
            Canned {
                method: None,
                path: "/boom",
                status: 500,
                headers: vec![
                    ("content-type", "text/plain".into()),
                    ("x-powered-by", "Flask".into()),
                ],
                body: trace.into(),
            },
            Canned::json("/busy", r#"{"error": "busy, retry"}"#).status(503),
            Canned {
                method: None,
                path: "/html",
                status: 502,
                headers: vec![("content-type", "text/html".into())],
                body: "<html><body><h1>Whitelabel Error Page</h1></body></html>".into(),
            },
        ],
        "",
    )
    .await;
    let (s, h, b) = get(&gw, "/boom").await;
    let doc = assert_problem(s, &h, &b, 500, "upstream-error");
    assert_eq!(doc["reason"], "upstream-error-scrubbed");
    let text = String::from_utf8_lossy(&b);
    assert!(
        !text.contains("Traceback") && !text.contains("psycopg2"),
        "{text}"
    );
    assert!(h.get("x-powered-by").is_none());
    let (s, _, b) = get(&gw, "/busy").await;
    assert_eq!(s.as_u16(), 503);
    assert_eq!(json(&b)["error"], "busy, retry");
    let (s, h, b) = get(&gw, "/html").await;
    assert_problem(s, &h, &b, 502, "upstream-error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_are_set_and_upstream_choices_kept() {
    let gw = gateway(
        vec![
            Canned::json("/a", "{}"),
            Canned::json("/b", "{}")
                .with("content-security-policy", "default-src 'self'")
                .with("cache-control", "max-age=60"),
        ],
        "",
    )
    .await;
    let (_, h, _) = get(&gw, "/a").await;
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(
        h["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(
        h.get("strict-transport-security").is_none(),
        "HSTS only over TLS"
    );
    assert!(h.get("cache-control").is_none());
    let (_, h, _) = get(&gw, "/b").await;
    assert_eq!(h["content-security-policy"], "default-src 'self'");
    assert_eq!(h["cache-control"], "max-age=60");
    // A credentialed request's answer is private unless the upstream said otherwise.
    let req = Request::get(url(&gw, "/a"))
        .header("authorization", "Bearer x")
        .body(empty())
        .unwrap();
    let (_, h, _) = send(&h1_client(), req).await;
    assert_eq!(h["cache-control"], "no-store");
    // The gateway's own refusals carry them too.
    let (s, h, _) = get(&gw, "/a/../b").await;
    assert_eq!(s.as_u16(), 400);
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_is_sent_over_tls() {
    let (addr, _) = canned_upstream(vec![Canned::json("/a", "{}")]).await;
    let cert = test_cert();
    let text = format!(
        "listeners:\n  - address: 127.0.0.1:0\n    tls: {{cert: {}, key: {}}}\nadmin:\n  address: 127.0.0.1:0\n{}",
        cert.dir.join("cert.pem").display(),
        cert.dir.join("key.pem").display(),
        BASIC.replace("UP", &addr.to_string())
    );
    let gw = start(&text).await;
    let (_, status, _, headers) =
        tls_get_with_headers(gw.listen_addrs()[0], &cert.cert_pem, &[b"http/1.1"], "/a").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_policy_answers_preflights_and_owns_the_headers() {
    let gw = gateway(
        vec![Canned::json("/data", "{}")
            // A classic hole: the upstream reflects any origin, with credentials.
            .with("access-control-allow-origin", "https://evil.example")
            .with("access-control-allow-credentials", "true")],
        "cors:\n  allowed_origins: [\"https://app.example.com\"]\n  allow_credentials: true\n",
    )
    .await;
    let preflight = |origin: &str, method: &str, headers: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri(url(&gw, "/data"))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", headers)
            .body(empty())
            .unwrap()
    };
    let (s, h, _) = send(
        &h1_client(),
        preflight(
            "https://app.example.com",
            "PATCH",
            "Authorization, Content-Type",
        ),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("PATCH"));
    let (s, h, b) = send(&h1_client(), preflight("https://evil.example", "GET", "")).await;
    assert_eq!(
        assert_problem(s, &h, &b, 403, "forbidden")["reason"],
        "cors-preflight-refused"
    );
    let (s, h, b) = send(
        &h1_client(),
        preflight("https://app.example.com", "GET", "x-secret"),
    )
    .await;
    assert_problem(s, &h, &b, 403, "forbidden");
    // Actual requests: only the allowed origin is named, never the upstream's reflection.
    for (origin, allowed) in [
        ("https://app.example.com", true),
        ("https://evil.example", false),
    ] {
        let req = Request::get(url(&gw, "/data"))
            .header("origin", origin)
            .body(empty())
            .unwrap();
        let (_, h, _) = send(&h1_client(), req).await;
        match allowed {
            true => assert_eq!(h["access-control-allow-origin"], origin),
            false => {
                assert!(h.get("access-control-allow-origin").is_none());
                assert!(h.get("access-control-allow-credentials").is_none());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cors_policy_credentials_never_go_with_a_wildcard() {
    let gw = gateway(
        vec![Canned::json("/data", "{}")
            .with("access-control-allow-origin", "*")
            .with("access-control-allow-credentials", "true")],
        "",
    )
    .await;
    let (_, h, _) = get(&gw, "/data").await;
    assert_eq!(h["access-control-allow-origin"], "*");
    assert!(h.get("access-control-allow-credentials").is_none());
}

#[test]
fn unsafe_or_incomplete_protection_configs_are_refused_at_load() {
    let parse = |extra: &str| {
        let text = config_text("127.0.0.1:9".parse().unwrap(), &format!("{extra}{BASIC}"));
        warden_gateway::Config::parse(&text, std::path::Path::new("t.yaml"))
    };
    let e = parse("cors:\n  allowed_origins: [\"*\"]\n  allow_credentials: true\n").unwrap_err();
    assert!(
        e.message.contains("allow_credentials") && e.line.is_some(),
        "{e}"
    );
    let e =
        parse("data_protection:\n  rules:\n    - {classes: [card], action: hash}\n").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("data_protection.keys.hash"), "{e}");
    let e =
        parse("data_protection:\n  rules:\n    - {classes: [cards], action: mask}\n").unwrap_err();
    assert!(e.message.contains("unknown data class `cards`"), "{e}");
    let e = parse("data_protection:\n  keys:\n    hash: {env: WARDEN_TEST_UNSET_VARIABLE}\n  default_other: hash\n").unwrap_err();
    assert!(
        e.message.contains("WARDEN_TEST_UNSET_VARIABLE is not set"),
        "{e}"
    );
    let e = parse(
        "data_protection:\n  rules:\n    - {classes: [card], routes: [nope], action: mask}\n",
    )
    .unwrap_err();
    assert!(e.message.contains("no route is named `nope`"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_holding_an_allowed_scope_see_the_original() {
    let (addr, _) = canned_upstream(vec![Canned::json(
        "/card",
        format!(r#"{{"card": "{CARD}"}}"#),
    )])
    .await;
    let dir = temp_dir("pii-scope");
    let mut store = warden_store::Store::open(&dir).unwrap();
    let (_, back_office) = store
        .create_key("back-office", &["pii:read".into()], &[], None, "t")
        .unwrap();
    let (_, app) = store
        .create_key("app", &["orders:read".into()], &[], None, "t")
        .unwrap();
    let text = config_text(
        addr,
        &format!("data_protection:\n  rules:\n    - {{classes: [card], action: mask, allow_scopes: [\"pii:read\"]}}\n{BASIC}"),
    );
    let gw = start_with(
        &text,
        warden_gateway::services::Services::with_store(&dir).unwrap(),
    )
    .await;
    let (_, _, b) = get_with(&gw, "/card", &[("x-api-key", &back_office)]).await;
    assert_eq!(json(&b)["card"], CARD);
    let (_, _, b) = get_with(&gw, "/card", &[("x-api-key", &app)]).await;
    assert_eq!(json(&b)["card"], "************1111");
}
