//! The real `warden` binary: config errors at the command line, serving from a config file with
//! reload on SIGHUP, draining on SIGTERM, quick mode's secure defaults, and the demo.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::*;

fn config(api: SocketAddr, extra_route: &str) -> String {
    format!(
        "listeners:\n  - address: 127.0.0.1:0\n    plain_http: true\nadmin:\n  address: 127.0.0.1:0\nlimits:\n  shutdown_grace: 10s\nupstreams:\n  api:\n    targets: [\"http://{api}\"]\nroutes:\n{extra_route}  - name: all\n    path_prefix: /\n    upstream: api\n"
    )
}

/// Writes `text` to `file`, runs `warden check-config` on it, returns (exit code, stdout, stderr).
fn check_config(file: &Path, text: &str) -> (Option<i32>, String, String) {
    std::fs::write(file, text).unwrap();
    let out = Command::new(BIN)
        .args(["check-config", file.to_str().unwrap()])
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn check_config_names_file_line_and_field() {
    let dir = temp_dir("check");
    let file = dir.join("warden.yaml");
    let good = config("127.0.0.1:9".parse().unwrap(), "");

    let (code, _, err) = check_config(&file, &good.replace("upstream: api", "upstream: nope"));
    assert_eq!(code, Some(2));
    let want = format!(
        "{}:14: routes[0].upstream: unknown upstream `nope`",
        file.display()
    );
    assert!(err.contains(&want), "{err}");

    let (code, _, err) = check_config(&file, &good.replace("    plain_http: true\n", ""));
    assert_eq!(code, Some(2));
    assert!(
        err.contains(&format!("{}:2:", file.display())) && err.contains("plain_http"),
        "{err}"
    );

    let (code, out, err) = check_config(&file, &good);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(": ok (1 listener(s), 1 upstream(s), 1 route(s))"),
        "{out}"
    );
}

#[test]
fn check_config_refuses_a_key_that_does_not_match_its_certificate() {
    let dir = temp_dir("tlspair");
    let a = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), a.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), b.signing_key.serialize_pem()).unwrap();
    let text = config("127.0.0.1:9".parse().unwrap(), "")
        .replace("plain_http: true", "tls: {cert: cert.pem, key: key.pem}");
    let (code, out, err) = check_config(&dir.join("warden.yaml"), &text);
    assert_eq!(code, Some(2), "{out}");
    assert!(err.contains("listeners[0].tls"), "{err}");
}

#[test]
fn serve_reloads_on_sighup_and_keeps_old_config_when_broken() {
    let dir = temp_dir("reload");
    let (_api, api) = start_api(&dir);
    let file = dir.join("warden.yaml");
    std::fs::write(&file, config(api, "")).unwrap();
    let mut gw = Proc::spawn(&["serve", "--config", file.to_str().unwrap()], &dir);
    let addr = gw.addr_of("listening");
    assert_eq!(http(addr, "GET", "/users/1").0, 200);
    // One JSON access log line per request, with what an operator filters on.
    let line = gw.wait_for("\"target\":\"warden::access\"");
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["method"], "GET");
    assert_eq!(entry["route"], "all");
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["decision"], "allowed");
    assert_eq!(entry["client_ip"], "127.0.0.1");
    assert_eq!(entry["request_id"].as_str().map(str::len), Some(36));
    assert!(entry["duration_ms"].as_f64().is_some() && entry["bytes_out"].as_u64() > Some(0));
    // The embedded store's folder exists, private to its owner.
    let data = dir.join("data");
    assert!(data.is_dir());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );

    let deny = "  - name: users\n    path_prefix: /users\n    upstream: api\n    ip_rules: {deny: [127.0.0.0/8]}\n";
    std::fs::write(&file, config(api, deny)).unwrap();
    gw.signal("HUP");
    gw.wait_for("config reloaded");
    let (status, body) = http(addr, "GET", "/users/1");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("urn:warden:problem:forbidden"));

    // Broken: the error names file and line, and the previous config keeps serving.
    std::fs::write(
        &file,
        config(api, deny).replace("127.0.0.0/8", "127.0.0.0/99"),
    )
    .unwrap();
    gw.signal("HUP");
    let line = gw.wait_for("config reload rejected");
    assert!(line.contains(&format!("{}:", file.display())), "{line}");
    assert_eq!(http(addr, "GET", "/users/1").0, 403);
    assert_eq!(http(addr, "GET", "/health").0, 200);

    // Editing the file is enough, no signal needed.
    std::fs::write(&file, config(api, "")).unwrap();
    gw.wait_for("config reloaded");
    assert_eq!(http(addr, "GET", "/users/1").0, 200);
}

#[test]
fn sigterm_drains_in_flight_requests() {
    let dir = temp_dir("drain");
    let (_api, api) = start_api(&dir);
    let mut gw = Proc::spawn(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &format!("http://{api}"),
            "--admin",
            "127.0.0.1:0",
        ],
        &dir,
    );
    let addr = gw.addr_of("listening");
    let slow = std::thread::spawn(move || http(addr, "GET", "/slow/1000"));
    std::thread::sleep(Duration::from_millis(300));
    gw.signal("TERM");
    gw.wait_for("draining");
    let (status, body) = slow.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("slept_ms"));
    assert!(gw.wait_exit().success());
}

#[test]
fn quick_mode_refuses_plain_http_beyond_loopback() {
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--upstream",
            "http://127.0.0.1:9",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-cert"));
}

#[test]
fn quick_mode_serves_tls() {
    let dir = temp_dir("quicktls");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    let (_api, api) = start_api(&dir);
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let mut gw = Proc::spawn(
        &[
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--upstream",
            &format!("http://{api}"),
            "--admin",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &dir,
    );
    let line = gw.wait_for("\"message\":\"listening\"");
    assert!(line.contains("\"tls\":true"), "{line}");
}

#[test]
fn demo_starts_and_protects_the_example_api() {
    let dir = temp_dir("demo");
    let (mut demo, gw) = start_demo(&dir);
    let alice = demo
        .wait_for("  alice  wdn_")
        .trim()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let token_line = {
        demo.wait_for("A token from the demo's JWT issuer");
        let mut line = String::new();
        while !line.trim().starts_with("eyJ") {
            line = demo.wait_for("");
        }
        line.trim().to_string()
    };
    let key = vec![format!("X-API-Key: {alice}")];
    assert_eq!(
        http(gw, "GET", "/users/1").0,
        401,
        "a credential is required"
    );
    let (status, body) = http_raw(gw, "GET", "/users/1", &key, "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("alice"));
    // The API leaks alice's identity and card numbers and her password hash; they leave masked.
    for leaked in ["11010519491231002X", "4111111111111111", "$2b$12$"] {
        assert!(!body.contains(leaked), "{leaked} in {body}");
    }
    assert!(body.contains("************1111"), "{body}");
    let bearer = vec![format!("Authorization: Bearer {token_line}")];
    let (status, body) = http_raw(gw, "GET", "/users/1", &bearer, "");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("alice") && !body.contains("password_hash"),
        "{body}"
    );
    // The spec's contract: bob's record and bob's order are not alice's (owner rules on the
    // path and on the response), undeclared operations do not exist, and registering as an
    // admin is mass assignment.
    let reason = |b: &str| serde_json::from_str::<serde_json::Value>(b).unwrap()["reason"].clone();
    let (status, body) = http_raw(gw, "GET", "/users/2", &key, "");
    assert_eq!((status, reason(&body)), (403, "not-owner".into()), "{body}");
    let (status, body) = http_raw(gw, "GET", "/orders/102", &key, "");
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("monitor"), "{body}");
    assert_eq!(http_raw(gw, "GET", "/orders/101", &key, "").0, 200);
    let (status, body) = http_raw(gw, "GET", "/users", &key, "");
    assert_eq!(
        (status, reason(&body)),
        (404, "undeclared-operation".into()),
        "{body}"
    );
    let json_ct = vec!["Content-Type: application/json".to_string()];
    let (status, body) = http_raw(
        gw,
        "POST",
        "/register",
        &json_ct,
        r#"{"username":"eve","email":"eve@example.com","password":"longenough","admin":true}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(r#"{"location":"body.admin","rule":"undeclared-property"}"#),
        "{body}"
    );
    let (status, body) = http_raw(
        gw,
        "POST",
        "/register",
        &json_ct,
        r#"{"username":"eve","email":"eve@example.com","password":"longenough"}"#,
    );
    assert_eq!(status, 201, "{body}");
    assert!(
        body.contains(r#""role":"user""#) && !body.contains("password"),
        "{body}"
    );
    // And its stack trace on a quote in /search leaves as a generic problem.
    let (status, body) = http_raw(gw, "GET", "/search?q=%27", &key, "");
    assert_eq!(status, 500);
    assert!(
        body.contains("upstream-error") && !body.contains("Traceback"),
        "{body}"
    );
    // An injection never reaches it.
    let (status, body) = http_raw(
        gw,
        "GET",
        "/search?q=x%27%20UNION%20SELECT%20password%20FROM%20users--",
        &key,
        "",
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("attack-detected") && !body.contains("UNION"),
        "{body}"
    );
    // The API's own login: unknown user and wrong password look alike; a real login's token
    // works afterwards, a never-issued one does not.
    let login = |user: &str, pass: &str| {
        http_raw(
            gw,
            "POST",
            "/login",
            &["Content-Type: application/json".to_string()],
            &format!("{{\"username\":\"{user}\",\"password\":\"{pass}\"}}"),
        )
    };
    let (s1, b1) = login("nobody", "x");
    let (s2, b2) = login("alice", "x");
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(reason(&b1), reason(&b2));
    assert_eq!(login("bob", "bob123").0, 200);
    assert_eq!(
        http_raw(
            gw,
            "GET",
            "/users/2",
            &["Authorization: Bearer demo-bob".to_string()],
            ""
        )
        .0,
        200
    );
    assert_eq!(
        http_raw(
            gw,
            "GET",
            "/users/3",
            &["Authorization: Bearer demo-admin".to_string()],
            ""
        )
        .0,
        401
    );
    let (status, body) = http_raw(gw, "DELETE", "/admin/users/2", &key, "");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("operation-not-permitted"), "{body}");
    assert_eq!(
        http_raw(
            gw,
            "GET",
            "/users/2",
            &["Authorization: Bearer demo-bob".to_string()],
            ""
        )
        .0,
        200,
        "the admin operation never reached the API"
    );
    // Rate limits (last: they spend this client's allowance). Anonymous calls count by IP.
    let (s, head, _) = http_with_head(gw, "/health");
    assert_eq!(s, 200);
    assert!(
        head.contains("ratelimit-policy: \"per-consumer\";q=300;w=60"),
        "{head}"
    );
    let mut allowed = 1;
    let refused = loop {
        let (s, head, body) = http_with_head(gw, "/health");
        if s != 200 {
            break (s, head, body);
        }
        allowed += 1;
        assert!(allowed <= 60, "no limit after {allowed} calls");
    };
    assert_eq!(refused.0, 429, "{}", refused.2);
    assert!(refused.2.contains("rate-limited"), "{}", refused.2);
    assert!(refused.1.contains("retry-after: "), "{}", refused.1);
    assert!(
        allowed >= 40,
        "the burst is 50 (minus this test's other anonymous calls): {allowed}"
    );
}

/// A tiny upstream on a thread: each path gets its canned (status, content type, body).
fn canned_upstream(answers: Vec<(&'static str, u16, &'static str, String)>) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let answers = answers.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    return;
                }
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let target = first.split_whitespace().nth(1).unwrap_or("/");
                let path = target.split('?').next().unwrap_or("/");
                let (status, ct, body) = answers
                    .iter()
                    .find(|a| a.0 == path)
                    .map(|a| (a.1, a.2, a.3.clone()))
                    .unwrap_or((404, "text/plain", String::new()));
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    addr
}

#[test]
fn quick_mode_blocks_attacks_masks_personal_data_and_scrubs_leaky_errors() {
    // What an outside check does: quick mode, no config, a JSON API that leaks.
    let dir = temp_dir("quickpii");
    let id = "11010519491231002X";
    let card = "4111111111111111";
    let api = canned_upstream(vec![
        (
            "/valid",
            200,
            "application/json",
            format!(r#"{{"id_card":"{id}","card":"{card}"}}"#),
        ),
        (
            "/near",
            200,
            "application/json",
            r#"{"id_card":"110105194912310021","card":"4111111111111112"}"#.to_string(),
        ),
        (
            "/boom",
            500,
            "text/html",
            "<pre>Traceback (most recent call last):\n  File \"/srv/app.py\", line 3</pre>"
                .to_string(),
        ),
    ]);
    let mut gw = Proc::spawn(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--upstream",
            &format!("http://{api}"),
        ],
        &dir,
    );
    let addr = gw.addr_of("listening");
    let (s, head, body) = http_with_head(addr, "/valid");
    assert_eq!(s, 200, "{body}");
    assert!(!body.contains(id) && !body.contains(card), "{body}");
    assert!(
        body.contains("************1111") && body.contains("002X"),
        "{body}"
    );
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    let (_, _, body) = http_with_head(addr, "/near");
    assert!(
        body.contains("110105194912310021") && body.contains("4111111111111112"),
        "{body}"
    );
    let (s, head, body) = http_with_head(addr, "/boom");
    assert_eq!(s, 500);
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    assert!(
        !body.contains("Traceback") && body.contains("upstream-error"),
        "{body}"
    );
    // The access log names what was found and where, never the value.
    let line = gw.wait_for("card@body.card:mask");
    assert!(!line.contains(card), "{line}");
    // Attack detection is on and blocking without a config; the log says what and where.
    let (s, _, body) = http_with_head(
        addr,
        "/valid?next=%253Cscript%253Ealert(1)%253C%252Fscript%253E",
    );
    assert_eq!(s, 403, "{body}");
    assert!(
        body.contains("attack-detected") && !body.contains("alert("),
        "{body}"
    );
    let line = gw.wait_for("xss@query.next:block");
    assert!(
        line.contains("url-decode"),
        "the decodings are recorded: {line}"
    );
    assert!(!line.contains("alert("), "{line}");
    gw.signal("TERM");
    gw.wait_exit();
}

#[test]
fn pii_keygen_and_decrypt_round_trip() {
    let dir = temp_dir("piikeys");
    let out = Command::new(BIN).args(["pii", "keygen"]).output().unwrap();
    let key = String::from_utf8(out.stdout).unwrap();
    assert_eq!(key.trim().len(), 64);
    std::fs::write(dir.join("k1.key"), &key).unwrap();
    let api = canned_upstream(vec![(
        "/card",
        200,
        "application/json",
        r#"{"card":"4111111111111111"}"#.to_string(),
    )]);
    let cfg = config(api, "").replace(
        "upstreams:",
        "data_protection:\n  keys:\n    encryption: {active: k1, keys: {k1: {file: k1.key}}}\n  rules:\n    - {classes: [card], action: encrypt}\nupstreams:",
    );
    let file = dir.join("warden.yaml");
    std::fs::write(&file, &cfg).unwrap();
    let mut gw = Proc::spawn(&["serve", "--config", file.to_str().unwrap()], &dir);
    let addr = gw.addr_of("listening");
    let (_, _, body) = http_with_head(addr, "/card");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = v["card"].as_str().unwrap().to_string();
    assert!(token.starts_with("enc:v1:k1:"), "{token}");
    let out = Command::new(BIN)
        .args(["pii", "decrypt", "--config", file.to_str().unwrap(), &token])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "4111111111111111"
    );
    // A tampered value does not decrypt, and says so.
    let mut bad = token.clone();
    bad.pop();
    bad.push(if token.ends_with('A') { 'B' } else { 'A' });
    let out = Command::new(BIN)
        .args(["pii", "decrypt", "--config", file.to_str().unwrap(), &bad])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not decrypt"));
    gw.signal("TERM");
    gw.wait_exit();
}

#[test]
fn keys_cli_contract_and_quick_mode_enforcement() {
    let dir = temp_dir("keyscli");
    let (code, key, _) = warden(
        &dir,
        &[
            "keys",
            "create",
            "--consumer",
            "alice",
            "--scope",
            "orders:read",
            "--scope",
            "pii:read",
            "--expires",
            "30d",
        ],
    );
    assert_eq!(code, Some(0));
    let key = key.trim().to_string();
    assert!(
        key.starts_with("wdn_") && !key.contains('\n'),
        "one key on stdout: {key}"
    );
    let (_, list, _) = warden(&dir, &["keys", "list"]);
    let secret = &key[17..];
    assert!(!list.contains(secret), "list shows no secret: {list}");
    let id = &key[4..16];
    for want in [
        "alice",
        id,
        &format!("wdn_{id}"),
        "orders:read,pii:read",
        "active",
    ] {
        assert!(list.contains(want), "{want} in {list}");
    }
    let (_, json, _) = warden(&dir, &["keys", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(v["key_id"], id);
    assert!(v["expires_at"].as_str().is_some());

    // Quick mode on the same data folder: keys exist, so a credential is required.
    let api = canned_upstream(vec![(
        "/x",
        200,
        "application/json",
        "{\"ok\":true}".into(),
    )]);
    let mut gw = Proc::spawn(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--upstream",
            &format!("http://{api}"),
        ],
        &dir,
    );
    let addr = gw.addr_of("listening");
    assert_eq!(http_raw(addr, "GET", "/x", &[], "").0, 401);
    let with_key = vec![format!("X-API-Key: {key}")];
    assert_eq!(http_raw(addr, "GET", "/x", &with_key, "").0, 200);

    // Rotation prints a new key; both work during the overlap.
    let (code, new_key, err) = warden(&dir, &["keys", "rotate", id, "--overlap", "1h"]);
    assert_eq!(code, Some(0), "{err}");
    let new_key = new_key.trim().to_string();
    assert_ne!(new_key, key);
    let deadline = Instant::now() + Duration::from_secs(3);
    while http_raw(addr, "GET", "/x", &[format!("X-API-Key: {new_key}")], "").0 != 200 {
        assert!(Instant::now() < deadline, "the new key is not accepted");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http_raw(addr, "GET", "/x", &with_key, "").0, 200);
    // Revocation reaches the running gateway within a second.
    let (code, _, _) = warden(&dir, &["keys", "revoke", id]);
    assert_eq!(code, Some(0));
    let revoked = Instant::now();
    while http_raw(addr, "GET", "/x", &with_key, "").0 == 200 {
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "revocation took over a second"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, _, err) = warden(&dir, &["keys", "revoke", "nosuchkey00"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no key with id"), "{err}");
    gw.signal("TERM");
    gw.wait_exit();
}

#[test]
fn sign_produces_headers_the_gateway_accepts_once() {
    let dir = temp_dir("signcli");
    std::fs::write(
        dir.join("partner.secret"),
        "Zq8#uK2!pL9@wE4$rT7^yU1&iO5*aS3(\n",
    )
    .unwrap();
    let api = canned_upstream(vec![(
        "/pay",
        200,
        "application/json",
        "{\"ok\":true}".into(),
    )]);
    let cfg = config(api, "").replace(
        "upstreams:",
        "auth:\n  signatures:\n    keys:\n      partner-a: {secret: {file: partner.secret}, consumer: partner-a}\nupstreams:",
    );
    let file = dir.join("warden.yaml");
    std::fs::write(&file, cfg).unwrap();
    let mut gw = Proc::spawn(&["serve", "--config", file.to_str().unwrap()], &dir);
    let addr = gw.addr_of("listening");
    let body = "{\"amount\":100}";
    let out = Command::new(BIN)
        .args([
            "sign",
            "-X",
            "POST",
            "--key-id",
            "partner-a",
            "--secret-file",
        ])
        .arg(dir.join("partner.secret"))
        .args([
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
            &format!("http://{addr}/pay?b=2&a=1"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let auth = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        auth.starts_with("Authorization: WARDEN-HMAC-SHA256 KeyId=partner-a,"),
        "{auth}"
    );
    let headers = vec![auth.clone(), "Content-Type: application/json".to_string()];
    let (s, b) = http_raw(addr, "POST", "/pay?b=2&a=1", &headers, body);
    assert_eq!(s, 200, "{b}");
    let (s, b) = http_raw(addr, "POST", "/pay?b=2&a=1", &headers, body);
    assert_eq!(s, 401, "a replay is refused: {b}");
    gw.signal("TERM");
    gw.wait_exit();
}

const ITEMS_SPEC: &str = "\
openapi: 3.1.0
info: {title: Items, version: '1'}
paths:
  /items/{id}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer, minimum: 1}}
      responses:
        '200':
          description: an item
          content:
            application/json:
              schema:
                type: object
                properties:
                  id: {type: integer}
                  name: {type: string}
";

#[test]
fn quick_mode_with_a_spec_enforces_it_strictly() {
    let dir = temp_dir("quickspec");
    let spec = dir.join("items.yaml");
    std::fs::write(&spec, ITEMS_SPEC).unwrap();
    let api = canned_upstream(vec![
        (
            "/items/1",
            200,
            "application/json",
            r#"{"id":1,"name":"pen","cost_price":0.12}"#.to_string(),
        ),
        ("/admin", 200, "text/plain", "internal".to_string()),
    ]);
    let mut gw = Proc::spawn(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--upstream",
            &format!("http://{api}"),
            "--spec",
            spec.to_str().unwrap(),
        ],
        &dir,
    );
    let addr = gw.addr_of("listening");
    let (s, _, body) = http_with_head(addr, "/items/1");
    assert_eq!((s, body.as_str()), (200, r#"{"id":1,"name":"pen"}"#));
    let (s, _, body) = http_with_head(addr, "/items/0");
    assert_eq!(s, 400, "{body}");
    assert!(
        body.contains(r#""location":"path.id","rule":"minimum""#),
        "{body}"
    );
    let (s, _, body) = http_with_head(addr, "/admin");
    assert_eq!(s, 404, "{body}");
    assert!(
        body.contains("undeclared-operation") && !body.contains("internal"),
        "{body}"
    );
    let (s, _) = http(addr, "DELETE", "/items/1");
    assert_eq!(s, 405);
    drop(gw);
    // A spec that does not load stops quick mode with the spec's file, line and pointer.
    std::fs::write(
        &spec,
        ITEMS_SPEC.replace(
            "type: integer, minimum",
            "type: integer, minimum: x, maximum",
        ),
    )
    .unwrap();
    let (code, _, err) = warden(
        &dir,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "http://127.0.0.1:9",
            "--spec",
            spec.to_str().unwrap(),
        ],
    );
    assert_ne!(code, Some(0));
    assert!(
        err.contains("items.yaml:7")
            && err.contains("/paths/~1items~1{id}/get/parameters/0/schema"),
        "{err}"
    );
}

#[test]
fn check_config_reports_a_broken_spec_with_its_line_and_pointer() {
    let dir = temp_dir("specerr");
    std::fs::write(
        dir.join("api.yaml"),
        ITEMS_SPEC.replace(
            "name: {type: string}",
            "name: {$ref: '#/components/schemas/Name'}",
        ),
    )
    .unwrap();
    let text = "listeners:\n  - address: 127.0.0.1:0\n    plain_http: true\nupstreams:\n  api:\n    targets: [\"http://127.0.0.1:9\"]\nroutes:\n  - name: all\n    path_prefix: /\n    upstream: api\n    openapi: {spec: api.yaml}\n";
    let (code, _, err) = check_config(&dir.join("gw.yaml"), text);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("api.yaml:17"), "{err}");
    assert!(
        err.contains("#/components/schemas/Name") && err.contains("routes[0].openapi.spec"),
        "{err}"
    );
}

#[test]
fn a_reload_with_a_broken_spec_keeps_the_old_contract() {
    let dir = temp_dir("specreload");
    let (_api, api) = start_api(&dir);
    let spec = dir.join("api.yaml");
    let health = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /health:\n    get:\n      responses:\n        '200': {description: ok}\n";
    let users = "  /users/{id}:\n    get:\n      parameters:\n        - {name: id, in: path, required: true, schema: {type: integer}}\n      responses:\n        '200':\n          description: a user\n          content:\n            application/json:\n              schema: {$ref: 'shared.yaml#/User'}\n";
    std::fs::write(&spec, health).unwrap();
    let file = dir.join("warden.yaml");
    let text = config(api, "").replace(
        "    upstream: api\n",
        "    upstream: api\n    openapi: {spec: api.yaml}\n",
    );
    std::fs::write(&file, text).unwrap();
    let mut gw = Proc::spawn(&["serve", "--config", file.to_str().unwrap()], &dir);
    let addr = gw.addr_of("listening");
    assert_eq!(http(addr, "GET", "/health").0, 200);
    assert_eq!(http(addr, "GET", "/users/1").0, 404);
    // The new operation's schema lives in a file that does not exist yet: rejected, old kept.
    std::fs::write(&spec, format!("{health}{users}")).unwrap();
    gw.signal("HUP");
    let line = gw.wait_for("config reload rejected");
    assert!(
        line.contains("shared.yaml") && line.contains("api.yaml"),
        "{line}"
    );
    assert_eq!(http(addr, "GET", "/users/1").0, 404);
    assert_eq!(http(addr, "GET", "/health").0, 200);
    std::fs::write(
        dir.join("shared.yaml"),
        "User:\n  type: object\n  properties:\n    id: {type: integer}\n    username: {type: string}\n",
    )
    .unwrap();
    gw.signal("HUP");
    gw.wait_for("config reloaded");
    let (status, body) = http(addr, "GET", "/users/1");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body, r#"{"id":1,"username":"alice"}"#,
        "only what shared.yaml declares"
    );
}

#[test]
fn lint_reports_like_a_compiler_and_fails_on_request() {
    let dir = temp_dir("lint");
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo-openapi.yaml");
    let spec = spec.to_str().unwrap();
    let (code, out, err) = warden(&dir, &["lint", spec]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("demo-openapi.yaml:12: high [plain-http-server]"),
        "{out}"
    );
    assert!(out.contains("    fix: "), "{out}");
    assert!(out.contains("score ") && out.contains("/100"), "{out}");
    let (code, out, _) = warden(&dir, &["lint", spec, "--format", "json"]);
    assert_eq!(code, Some(0));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(doc["score"].as_u64().unwrap() < 100);
    assert!(doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["rule"] == "sequential-id" && f["line"].is_u64()));
    let (code, _, err) = warden(&dir, &["lint", spec, "--fail-on", "high"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--fail-on"), "{err}");
    let (code, _, err) = warden(&dir, &["lint", "/nonexistent/spec.yaml"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("/nonexistent/spec.yaml") && err.contains("cannot read"),
        "{err}"
    );
}
