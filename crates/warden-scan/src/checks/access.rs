//! Who may do what: one user's objects replayed with another's credentials (API1), operations
//! tried without or with broken credentials and forged tokens (API2), admin operations tried by
//! ordinary users (API5), and the login operation's answers to strangers (API2).

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use super::crawl::{concrete, login_body, markers, owned_by};
use super::{same_data, same_shape};
use crate::client::{Credential, Exchange, Identity, Req};
use crate::{Scan, Seen};

/// A's records, fetched again by B: a finding only when B gets A's data.
pub async fn object_level(scan: &mut Scan) {
    let users: Vec<Identity> = scan.ordinary().into_iter().cloned().collect();
    for a in &users {
        let mine = markers(scan, a);
        for b in users.iter().filter(|b| b.name != a.name) {
            let theirs = markers(scan, b);
            let pairs: Vec<(usize, Exchange, Exchange)> = scan
                .seen
                .iter()
                .filter(|s| s.exchange.caller.as_deref() == Some(&a.name) && s.exchange.ok())
                .filter(|s| scan.op(s.op).path_params().next().is_some())
                .filter_map(|s| {
                    let other = scan.seen.iter().find(|t| {
                        t.op == s.op
                            && t.exchange.url == s.exchange.url
                            && t.exchange.caller.as_deref() == Some(&b.name)
                    })?;
                    Some((s.op, s.exchange.clone(), other.exchange.clone()))
                })
                .collect();
            for (i, xa, xb) in pairs {
                let op = scan.op(i).clone();
                if scan.has("bola", &op) || !xb.ok() {
                    continue;
                }
                let (Some(ja), Some(jb)) = (xa.json(), xb.json()) else {
                    continue;
                };
                if owned_by(&ja, &mine) && !owned_by(&ja, &theirs) && same_data(&ja, &jb) {
                    let msg = format!(
                        "{} read {}'s record at {} {}: the same data {} gets",
                        b.name, a.name, xb.method, xb.path, a.name
                    );
                    scan.report("bola", Some(&op), msg, vec![xa, xb]);
                }
            }
        }
    }
}

/// Secured operations asked again without credentials, then with a credential that is no good.
pub async fn authentication(scan: &mut Scan) {
    let samples = first_ok_per_op(scan, |s, op| op.secured && s.exchange.caller.is_some());
    for (i, x) in samples {
        let op = scan.op(i).clone();
        let path = x.path.clone();
        let req = Req::new(op.method.clone(), path.clone());
        let Some(anon) = scan.send(&req, None).await else {
            continue;
        };
        if answered_like(scan, &anon, &x) {
            let msg = format!(
                "{} {path} answered {} without credentials",
                op.method, anon.status
            );
            scan.report("no-auth", Some(&op), msg, vec![anon]);
            continue;
        }
        let who = scan
            .users
            .iter()
            .find(|u| Some(&u.name) == x.caller.as_ref())
            .cloned();
        let Some(who) = who else { continue };
        let forged = match &who.credential {
            Credential::Bearer(_) => Credential::Bearer("wardenscan.invalid.credential".into()),
            Credential::Header(h, v) => Credential::Header(
                h.clone(),
                format!("{}x", v.chars().rev().collect::<String>()),
            ),
        };
        let fake = Identity {
            credential: forged,
            ..who.clone()
        };
        let Some(bad) = scan.send(&req, Some(&fake)).await else {
            continue;
        };
        if answered_like(scan, &bad, &x) {
            let msg = format!(
                "{} {path} answered {} to an invalid credential",
                op.method, bad.status
            );
            scan.report("invalid-credential", Some(&op), msg, vec![bad]);
        }
    }
}

/// Whether a probe got the real answer: a success shaped like the legitimate one.
fn answered_like(scan: &Scan, probe: &Exchange, real: &Exchange) -> bool {
    if !probe.ok() || scan.is_soft404(probe) {
        return false;
    }
    match (probe.json(), real.json()) {
        (Some(p), Some(r)) => same_shape(&p, &r),
        _ => probe.body == real.body && !probe.body.is_empty(),
    }
}

/// For each operation, the first successful answer that matches.
fn first_ok_per_op(
    scan: &Scan,
    pick: impl Fn(&Seen, &crate::spec::Operation) -> bool,
) -> Vec<(usize, Exchange)> {
    let mut out: Vec<(usize, Exchange)> = Vec::new();
    for s in &scan.seen {
        let op = scan.op(s.op);
        if s.exchange.ok()
            && !scan.is_soft404(&s.exchange)
            && pick(s, op)
            && !out.iter().any(|(i, _)| *i == s.op)
        {
            out.push((s.op, s.exchange.clone()));
        }
    }
    out
}

/// Common HS256 secrets from tutorials, defaults and leaked configs.
const WEAK_SECRETS: &[&str] = &[
    "secret",
    "Secret",
    "SECRET",
    "secret123",
    "secretkey",
    "secret-key",
    "secret_key",
    "mysecret",
    "my-secret",
    "my_secret",
    "jwt",
    "jwtsecret",
    "jwt-secret",
    "jwt_secret",
    "JWT_SECRET",
    "jwtkey",
    "key",
    "mykey",
    "password",
    "Password",
    "password123",
    "changeme",
    "changeit",
    "admin",
    "admin123",
    "123456",
    "12345678",
    "1234567890",
    "qwerty",
    "letmein",
    "test",
    "testing",
    "dev",
    "development",
    "default",
    "token",
    "auth",
    "authsecret",
    "your-256-bit-secret",
    "your-secret-key",
    "your_jwt_secret",
    "supersecret",
    "super-secret",
    "topsecret",
    "s3cr3t",
    "shhhhh",
    "shhhhhared-secret",
    "keyboard cat",
    "HS256",
    "hmac",
    "private",
    "app_secret",
    "appsecret",
    "api_secret",
    "apisecret",
    "secretsecret",
    "notasecret",
    "example",
    "demo",
    "hello",
    "welcome",
    "gsk",
    "abc123",
    "pass",
    "root",
    "toor",
    "node",
    "express",
    "django",
    "flask",
    "rails",
    "spring",
    "laravel",
    "symfony",
    "fastapi",
    "change_this_secret",
    "please-change-me",
];

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn parse_jwt(token: &str) -> Option<(Value, Value, String)> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()?;
    header.get("alg")?;
    Some((header, payload, s.to_string()))
}

fn hs_algorithm(alg: &str) -> Option<hmac::Algorithm> {
    match alg {
        "HS256" => Some(hmac::HMAC_SHA256),
        "HS384" => Some(hmac::HMAC_SHA384),
        "HS512" => Some(hmac::HMAC_SHA512),
        _ => None,
    }
}

fn sign(alg: hmac::Algorithm, secret: &[u8], header: &Value, payload: &Value) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let tag = hmac::sign(&hmac::Key::new(alg, secret), input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Forged tokens: unsigned, signed with another key, expired (when the secret was guessed); and
/// the token's own secret tried against a list of common ones, offline.
pub async fn tokens(scan: &mut Scan) {
    for who in scan.users.clone() {
        let Credential::Bearer(token) = &who.credential else {
            continue;
        };
        let Some((header, payload, _)) = parse_jwt(token) else {
            continue;
        };
        let alg = header["alg"].as_str().unwrap_or("").to_string();
        // A secured read this user may call, and that refuses strangers: forged tokens are
        // judged by whether they get the user's answer.
        let sample = first_ok_per_op(scan, |s, op| {
            op.secured && s.exchange.caller.as_deref() == Some(&who.name)
        })
        .into_iter()
        .find(|(i, _)| !scan.has("no-auth", scan.op(*i)));
        let mut cracked = None;
        if let Some(alg) = hs_algorithm(&alg) {
            let (signed, sig) = token.rsplit_once('.').unwrap_or_default();
            if let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) {
                cracked = WEAK_SECRETS
                    .iter()
                    .find(|s| {
                        hmac::verify(&hmac::Key::new(alg, s.as_bytes()), signed.as_bytes(), &sig)
                            .is_ok()
                    })
                    .map(|s| (*s, alg));
            }
        }
        if let Some((secret, _)) = cracked {
            let hint: String = secret.chars().take(2).collect();
            let msg = format!("{}'s token is signed with a secret from a list of common ones (`{hint}…`): anyone can mint tokens", who.name);
            scan.report("jwt-weak-secret", None, msg, Vec::new());
        }
        let Some((i, real)) = sample else { continue };
        let op = scan.op(i).clone();
        let path = real.path.clone();
        let try_token = async |scan: &mut Scan, forged: String| -> Option<Exchange> {
            let fake = Identity {
                credential: Credential::Bearer(forged),
                ..who.clone()
            };
            let x = scan
                .send(&Req::new(op.method.clone(), path.clone()), Some(&fake))
                .await?;
            answered_like(scan, &x, &real).then_some(x)
        };
        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&payload)
        );
        if let Some(x) = try_token(scan, none).await {
            let msg = format!(
                "{} {path} accepted {}'s claims in a token with `alg: none` and no signature",
                op.method, who.name
            );
            scan.report("jwt-alg-none", Some(&op), msg, vec![x]);
        }
        let other = sign(
            hmac::HMAC_SHA256,
            b"wardenscan-not-the-issuers-key",
            &json!({"alg": "HS256", "typ": "JWT"}),
            &payload,
        );
        if let Some(x) = try_token(scan, other).await {
            let msg = format!(
                "{} {path} accepted {}'s claims signed with a key the issuer never had",
                op.method, who.name
            );
            scan.report("jwt-unverified", Some(&op), msg, vec![x]);
        }
        if let Some((secret, alg)) = cracked {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut old = payload.clone();
            old["exp"] = json!(now.saturating_sub(86_400));
            old["iat"] = json!(now.saturating_sub(90_000));
            let expired = sign(alg, secret.as_bytes(), &header, &old);
            if let Some(x) = try_token(scan, expired).await {
                let msg = format!(
                    "{} {path} accepted {}'s token a day after it expired",
                    op.method, who.name
                );
                scan.report("jwt-expired", Some(&op), msg, vec![x]);
            }
        }
    }
}

/// Admin read operations, asked by ordinary users. (Admin writes run in `writes`.)
pub async fn function_level(scan: &mut Scan) {
    let users: Vec<Identity> = scan.ordinary().into_iter().cloned().collect();
    for i in 0..scan.api.ops.len() {
        let op = scan.op(i).clone();
        if !op.admin() || !op.safe() {
            continue;
        }
        for path in concrete(scan, &op) {
            for u in &users {
                let Some(x) = scan
                    .send(&Req::new(op.method.clone(), path.clone()), Some(u))
                    .await
                else {
                    continue;
                };
                if x.ok() && !scan.is_soft404(&x) && !scan.has("admin-operation", &op) {
                    let msg = format!(
                        "{}, an ordinary user, got {} from the admin operation {} {path}",
                        u.name, x.status, op.method
                    );
                    scan.report("admin-operation", Some(&op), msg, vec![x]);
                }
            }
        }
    }
}

/// The login operation: does it tell an unknown user from a wrong password, and does it take a
/// query operator where a password belongs?
pub async fn login(scan: &mut Scan) {
    let Some(op) = scan.api.login().cloned() else {
        return;
    };
    let Some(known) = scan
        .config
        .users
        .iter()
        .find(|u| matches!(u.given, crate::Given::Login(_)))
        .map(|u| u.name.clone())
    else {
        scan.notes
            .push("user-enumeration and NoSQL login checks need a --login user".into());
        return;
    };
    let wrong = "wardenscan-Wrong-passw0rd";
    let stranger = "wardenscan-nobody-4c1d";
    let req = |name: &str, pass: Value| {
        let mut body = login_body(&op, name, wrong);
        let pf = crate::spec::password_field(op.body.as_ref().unwrap_or(&Value::Null))
            .unwrap_or_else(|| "password".into());
        body[pf] = pass;
        Req::new(op.method.clone(), op.path.clone()).json(body)
    };
    let (Some(a), Some(b)) = (
        scan.send(&req(&known, json!(wrong)), None).await,
        scan.send(&req(stranger, json!(wrong)), None).await,
    ) else {
        return;
    };
    let limited = |x: &Exchange| x.status == 429 || x.status == 503;
    if !limited(&a) && !limited(&b) && !a.ok() {
        let body_b = crate::comparable(&b.body.replace(stranger, &known));
        if a.status != b.status || crate::comparable(&a.body) != body_b {
            let msg =
                format!(
                "{} answers a wrong password for `{known}` with {} and an unknown user with {}{}",
                op.label(),
                a.status,
                b.status,
                if a.status == b.status { ", in different words" } else { "" }
            );
            scan.report("user-enumeration", Some(&op), msg, vec![a, b]);
        }
    }
    for operator in [json!({"$ne": null}), json!({"$gt": ""})] {
        let Some(x) = scan.send(&req(&known, operator.clone()), None).await else {
            continue;
        };
        if x.ok() && !scan.is_soft404(&x) {
            let msg = format!(
                "{} signed `{known}` in with the password {operator}",
                op.label()
            );
            scan.report("nosql-injection", Some(&op), msg, vec![x]);
            break;
        }
    }
}
