//! Signing in, learning what the API holds, and the helpers that turn an operation into concrete
//! requests: every read operation is called as every user with the ids learned so far, and the
//! successful answers are kept for the checks that compare users.

use std::collections::BTreeSet;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{Map, Value};

use crate::client::{Credential, Identity, Req};
use crate::spec::{example, password_field, username_field, In, Operation};
use crate::{credential_of, Given, Scan, Seen, PROBE};

/// Characters left alone in a path segment or query value.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn encode(v: &str) -> String {
    utf8_percent_encode(v, SEGMENT).to_string()
}

/// Turns the given users into identities, calling the spec's login operation where asked.
pub async fn sign_in(scan: &mut Scan) -> Result<(), String> {
    let header = scan
        .config
        .api_key_header
        .clone()
        .or_else(|| scan.api.api_key_header.clone())
        .unwrap_or_else(|| "X-API-Key".to_string());
    for user in scan.config.users.clone() {
        let credential = match (&user.given, credential_of(&user.given, &header)) {
            (_, Some(c)) => c,
            (Given::Login(password), None) => login(scan, &user.name, password).await?,
            _ => unreachable!("credential_of covers the other kinds"),
        };
        scan.users.push(Identity {
            name: user.name.clone(),
            admin: user.admin,
            credential,
        });
    }
    // What an unknown path answers, to tell real endpoints from a catch-all. A target that does
    // not answer at all ends the scan here: "no findings" from a dead target would be a lie.
    let who = scan.users.first().cloned();
    let probe = Req::get(format!("/{PROBE}"));
    match scan.client.send(&probe, who.as_ref()).await {
        Ok(x) => scan.soft404 = Some((x.status, crate::normalise_probe(&x.body))),
        Err(crate::client::SendError::Transport(e)) => {
            return Err(format!("the target does not answer: {e}"))
        }
        Err(crate::client::SendError::Budget) => {}
    }
    Ok(())
}

async fn login(scan: &mut Scan, name: &str, password: &str) -> Result<Credential, String> {
    let Some(op) = scan.api.login().cloned() else {
        return Err(format!(
            "--login {name}=…: the spec has no login operation (a POST to …/login with a password field, or `x-warden: {{login: true}}`)"
        ));
    };
    let body = login_body(&op, name, password);
    let x = scan
        .client
        .send(
            &Req::new(op.method.clone(), op.path.clone()).json(body),
            None,
        )
        .await
        .map_err(|e| format!("login as {name}: {e:?}"))?;
    if !x.ok() {
        return Err(format!(
            "login as {name} at {} answered {}",
            op.label(),
            x.status
        ));
    }
    if let Some(token) = x.json().as_ref().and_then(find_token) {
        return Ok(Credential::Bearer(token));
    }
    if let Some(cookie) = x.header("set-cookie") {
        let pair = cookie.split(';').next().unwrap_or("").to_string();
        return Ok(Credential::Header("cookie".into(), pair));
    }
    Err(format!(
        "login as {name} at {} returned no token or cookie",
        op.label()
    ))
}

/// The login operation's body for a user: the spec's example with name and password put in.
pub fn login_body(op: &Operation, name: &str, password: &str) -> Value {
    let schema = op.body.clone().unwrap_or_default();
    let mut body = match example(&schema, "wardenscan") {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    body.insert(
        username_field(&schema).unwrap_or_else(|| "username".into()),
        Value::String(name.into()),
    );
    body.insert(
        password_field(&schema).unwrap_or_else(|| "password".into()),
        Value::String(password.into()),
    );
    Value::Object(body)
}

fn find_token(v: &Value) -> Option<String> {
    let m = v.as_object()?;
    for key in [
        "access_token",
        "accessToken",
        "token",
        "id_token",
        "jwt",
        "bearer",
    ] {
        if let Some(t) = m.get(key).and_then(Value::as_str) {
            return Some(t.to_string());
        }
    }
    m.values()
        .find_map(|x| x.as_object().and_then(|_| find_token(x)))
}

/// Values to try for a path parameter: seeds and learned ids first, small integers last.
pub fn candidates(scan: &Scan, op: &Operation, name: &str, integer: bool) -> Vec<String> {
    let prefix = op
        .path
        .split(&format!("{{{name}}}"))
        .next()
        .unwrap_or("")
        .trim_end_matches('/');
    let resource = prefix.rsplit('/').next().unwrap_or("");
    let singular = resource.strip_suffix('s').unwrap_or(resource);
    let mut keys = vec![
        format!("{prefix}#id"),
        format!("{singular}_id"),
        format!("{singular}Id"),
    ];
    if name != "id" {
        keys.insert(0, name.to_string());
    }
    let mut out: Vec<String> = Vec::new();
    for (k, v) in &scan.config.seeds {
        if k == name && !out.contains(v) {
            out.push(v.clone());
        }
    }
    for k in &keys {
        for v in scan.ids.get(k).into_iter().flatten() {
            let numeric = v.parse::<f64>().is_ok();
            if (!integer || numeric) && !out.contains(v) {
                out.push(v.clone());
            }
        }
    }
    if out.is_empty() {
        if integer {
            out.extend(["1", "2", "3"].map(String::from));
        } else {
            let schema = op
                .params
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.schema.clone())
                .unwrap_or_default();
            if let Some(s) = example(&schema, "wardenscan").as_str() {
                out.push(s.to_string());
            }
        }
    }
    out.truncate(6);
    out
}

/// The operation's path with every parameter filled, and its required query parameters.
pub fn concrete(scan: &Scan, op: &Operation) -> Vec<String> {
    let mut paths = vec![op.path.clone()];
    for p in op.path_params() {
        let values = candidates(scan, op, &p.name, p.is_integer());
        let mut next = Vec::new();
        for path in &paths {
            for v in &values {
                next.push(path.replace(&format!("{{{}}}", p.name), &encode(v)));
            }
        }
        next.truncate(8);
        paths = next;
    }
    let query = required_query(op, None);
    paths.into_iter().map(|p| format!("{p}{query}")).collect()
}

/// `?a=1&b=x` for the required query parameters; `replace` swaps one parameter's value.
pub fn required_query(op: &Operation, replace: Option<(&str, &str)>) -> String {
    let mut parts = Vec::new();
    for p in op.params.iter().filter(|p| p.place == In::Query) {
        let value = match replace {
            Some((n, v)) if n == p.name => v.to_string(),
            _ if !p.required => continue,
            _ => scalar(&example(&p.schema, "wardenscan")),
        };
        parts.push(format!("{}={}", encode(&p.name), encode(&value)));
    }
    if let Some((n, v)) = replace {
        if !op
            .params
            .iter()
            .any(|p| p.place == In::Query && p.name == n)
        {
            parts.push(format!("{}={}", encode(n), encode(v)));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

pub fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Calls every read operation as every user.
pub async fn crawl(scan: &mut Scan) {
    for _ in 0..2 {
        crawl_once(scan).await;
    }
}

async fn crawl_once(scan: &mut Scan) {
    let users = scan.users.clone();
    for i in 0..scan.api.ops.len() {
        let op = scan.api.ops[i].clone();
        if op.method != http::Method::GET || op.login {
            continue;
        }
        for path in concrete(scan, &op) {
            if scan
                .seen
                .iter()
                .any(|s| s.op == i && s.exchange.path == path)
            {
                continue;
            }
            let mut any = false;
            for u in &users {
                let Some(x) = scan.send(&Req::get(path.clone()), Some(u)).await else {
                    continue;
                };
                if let Some(j) = x.json() {
                    if x.ok() {
                        scan.learn_ids(&op.path, &j);
                    }
                }
                any = true;
                scan.seen.push(Seen { op: i, exchange: x });
            }
            if users.is_empty() && !any {
                if let Some(x) = scan.send(&Req::get(path.clone()), None).await {
                    scan.seen.push(Seen { op: i, exchange: x });
                }
            }
        }
    }
}

/// With writes allowed: creates one object per create operation, as the first ordinary user, so
/// that the checks have objects whose owner is known; then crawls what became reachable.
pub async fn create(scan: &mut Scan) {
    let Some(a) = scan.ordinary().first().map(|u| (*u).clone()) else {
        return;
    };
    for i in 0..scan.api.ops.len() {
        let op = scan.api.ops[i].clone();
        if op.method != http::Method::POST
            || op.login
            || op.admin()
            || op.path_params().next().is_some()
        {
            continue;
        }
        let Some(schema) = &op.body else { continue };
        let body = example(schema, &unique_tag());
        let path = format!("{}{}", op.path, required_query(&op, None));
        let Some(x) = scan
            .send(&Req::new(op.method.clone(), path).json(body), Some(&a))
            .await
        else {
            continue;
        };
        if !x.ok() {
            continue;
        }
        if let Some(j) = x.json() {
            scan.learn_ids(&op.path, &j);
            if let Some(id) = j.get("id").map(crawl_scalar) {
                scan.created.push((i, id));
            }
        }
        scan.seen.push(Seen { op: i, exchange: x });
    }
    crawl_once(scan).await;
}

fn crawl_scalar(v: &Value) -> String {
    scalar(v)
}

/// A fresh lowercase tag: generated names must not collide with earlier runs.
pub fn unique_tag() -> String {
    let n = uuid::Uuid::new_v4().as_u128() % 1_000_000_000;
    format!("wardenscan{n}")
}

/// Who an answer belongs to: identity names and the ids of records naming them.
pub fn markers(scan: &Scan, who: &Identity) -> BTreeSet<String> {
    let name = who.name.to_ascii_lowercase();
    let mut out = BTreeSet::from([name.clone()]);
    for s in scan
        .seen
        .iter()
        .filter(|s| s.exchange.caller.as_deref() == Some(&who.name) && s.exchange.ok())
    {
        let Some(j) = s.exchange.json() else { continue };
        for_objects(&j, 0, &mut |m| {
            let names_them = ["username", "login", "user", "name", "email"]
                .iter()
                .any(|k| {
                    m.get(*k).and_then(Value::as_str).is_some_and(|v| {
                        let v = v.to_ascii_lowercase();
                        v == name || v.split('@').next() == Some(name.as_str())
                    })
                });
            if names_them {
                if let Some(id) = m.get("id") {
                    out.insert(scalar(id));
                }
            }
        });
    }
    out
}

/// Whether an answer holds a record owned by someone with these markers.
pub fn owned_by(v: &Value, markers: &BTreeSet<String>) -> bool {
    const OWNER_KEYS: [&str; 13] = [
        "username",
        "login",
        "user",
        "owner",
        "owner_id",
        "ownerid",
        "user_id",
        "userid",
        "account_id",
        "customer_id",
        "created_by",
        "author",
        "email",
    ];
    let mut hit = false;
    for_objects(v, 0, &mut |m| {
        for (k, x) in m {
            if !OWNER_KEYS.contains(&k.to_ascii_lowercase().as_str()) {
                continue;
            }
            let s = scalar(x).to_ascii_lowercase();
            let local = s.split('@').next().unwrap_or("").to_string();
            if markers.contains(&s) || (k.eq_ignore_ascii_case("email") && markers.contains(&local))
            {
                hit = true;
            }
        }
    });
    hit
}

fn for_objects(v: &Value, depth: usize, f: &mut dyn FnMut(&Map<String, Value>)) {
    if depth > 3 {
        return;
    }
    match v {
        Value::Object(m) => {
            f(m);
            for x in m.values() {
                for_objects(x, depth + 1, f);
            }
        }
        Value::Array(a) => a.iter().take(50).for_each(|x| for_objects(x, depth + 1, f)),
        _ => {}
    }
}
