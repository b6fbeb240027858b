//! Checks that change data, run only with --allow-writes: mass assignment (API3), admin writes by
//! ordinary users (API5) and undeclared methods (API5). They act on objects the scanner created
//! itself wherever it can, never on other people's.

use serde_json::{json, Map, Value};

use super::crawl::{markers, owned_by, required_query, scalar, unique_tag};
use crate::client::{Exchange, Identity, Req};
use crate::spec::{example, properties, Operation};
use crate::Scan;

/// Fields that grant privilege when a client can set them.
fn privileged() -> [(&'static str, Value); 5] {
    [
        ("role", json!("admin")),
        ("admin", json!(true)),
        ("is_admin", json!(true)),
        ("isAdmin", json!(true)),
        ("verified", json!(true)),
    ]
}

/// Where to send a write: for an item path, an object of `who`'s own that a read found.
fn own_target(scan: &Scan, op: &Operation, who: &Identity) -> Option<String> {
    if op.path_params().next().is_none() {
        return Some(format!("{}{}", op.path, required_query(op, None)));
    }
    let mine = markers(scan, who);
    scan.seen
        .iter()
        .filter(|s| {
            scan.op(s.op).path == op.path
                && s.exchange.caller.as_deref() == Some(&who.name)
                && s.exchange.ok()
        })
        .find(|s| s.exchange.json().is_some_and(|j| owned_by(&j, &mine)))
        .map(|s| s.exchange.path.clone())
}

/// The read of an object at `path` (a GET on the same template), for reading a write back.
fn read_back_path(
    scan: &Scan,
    op: &Operation,
    path: &str,
    created_id: Option<String>,
) -> Option<String> {
    let template = match created_id {
        Some(_) => format!("{}/{{", op.path.trim_end_matches('/')),
        None => op.path.clone(),
    };
    let get = scan.api.ops.iter().find(|o| {
        o.method == http::Method::GET
            && (o.path == template
                || (o.path.starts_with(&template)
                    && o.path.matches('{').count() == 1
                    && o.path.ends_with('}')))
    })?;
    match created_id {
        Some(id) => Some(
            get.path
                .rsplit_once('{')
                .map(|(head, _)| format!("{head}{id}"))
                .unwrap_or_default(),
        ),
        None => Some(path.split('?').next().unwrap_or(path).to_string()),
    }
}

/// B writes to A's record (PATCH or PUT on an item A read as its own); a finding when A then
/// reads B's values back.
pub async fn object_level_writes(scan: &mut Scan) {
    let users: Vec<Identity> = scan.ordinary().into_iter().cloned().collect();
    let (Some(a), Some(b)) = (users.first().cloned(), users.get(1).cloned()) else {
        return;
    };
    for i in 0..scan.api.ops.len() {
        let op = scan.op(i).clone();
        let writes_item = op.method == http::Method::PATCH || op.method == http::Method::PUT;
        if !writes_item || op.admin() || op.path_params().next().is_none() {
            continue;
        }
        let Some(schema) = &op.body else { continue };
        let Some(path) = own_target(scan, &op, &a) else {
            continue;
        };
        let body = example(schema, &unique_tag());
        let Value::Object(sent) = &body else { continue };
        let marks: Map<String, Value> = sent
            .iter()
            .filter(|(_, v)| v.as_str().is_some_and(|s| s.contains("wardenscan")))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if marks.is_empty() {
            continue;
        }
        let Some(x) = scan
            .send(
                &Req::new(op.method.clone(), path.clone()).json(body.clone()),
                Some(&b),
            )
            .await
        else {
            continue;
        };
        if !x.ok() {
            continue;
        }
        let Some(back) = read_back_path(scan, &op, &path, None) else {
            continue;
        };
        let Some(r) = scan.send(&Req::get(back), Some(&a)).await else {
            continue;
        };
        let changed = stuck_fields(&r, &marks);
        if r.ok() && !changed.is_empty() {
            let msg = format!(
                "{} changed {}'s record with {} {path}: {} then read {}",
                b.name,
                a.name,
                op.method,
                a.name,
                changed.join(", ")
            );
            scan.report("bola", Some(&op), msg, vec![x, r]);
        }
    }
}

pub async fn mass_assignment(scan: &mut Scan) {
    let Some(a) = scan.ordinary().first().map(|u| (*u).clone()) else {
        return;
    };
    for i in 0..scan.api.ops.len() {
        let op = scan.op(i).clone();
        if op.safe() || op.login || op.admin() || op.method == http::Method::DELETE {
            continue;
        }
        let Some(schema) = &op.body else { continue };
        let Some(path) = own_target(scan, &op, &a) else {
            continue;
        };
        let declared = properties(schema);
        let mut injected = Map::new();
        for (k, v) in privileged() {
            let writable = declared
                .get(k)
                .is_some_and(|s| s.get("readOnly").and_then(Value::as_bool) != Some(true));
            if !writable {
                injected.insert(k.to_string(), v);
            }
        }
        // Read-only fields other than ids (changing an id is another check's business).
        let read_only = op
            .responses
            .iter()
            .flat_map(properties)
            .chain(declared.clone());
        for (k, s) in read_only {
            let lk = k.to_ascii_lowercase();
            if s.get("readOnly").and_then(Value::as_bool) != Some(true)
                || lk == "id"
                || lk.ends_with("_id")
                || k.ends_with("Id")
                || injected.contains_key(&k)
            {
                continue;
            }
            let v = match s.get("type").and_then(Value::as_str) {
                Some("integer") => json!(987_654_321),
                Some("number") => json!(0.01),
                Some("boolean") => json!(true),
                Some("string") if s.get("enum").is_some() => {
                    let options = s["enum"].as_array().cloned().unwrap_or_default();
                    options
                        .iter()
                        .find(|o| o.as_str().is_some_and(|o| o.contains("admin")))
                        .or(options.last())
                        .cloned()
                        .unwrap_or(Value::Null)
                }
                Some("string") => json!("wardenscan-read-only"),
                _ => continue,
            };
            injected.insert(k, v);
        }
        if injected.is_empty() {
            continue;
        }
        let mut body = example(schema, &unique_tag());
        if let Value::Object(m) = &mut body {
            m.extend(injected.clone());
        }
        let Some(x) = scan
            .send(
                &Req::new(op.method.clone(), path.clone()).json(body),
                Some(&a),
            )
            .await
        else {
            continue;
        };
        if !x.ok() {
            continue;
        }
        let created = x.json().and_then(|j| j.get("id").map(scalar));
        if let Some(id) = &created {
            if op.method == http::Method::POST {
                scan.created.push((i, id.clone()));
            }
        }
        let mut evidence = vec![x.clone()];
        let mut stuck = stuck_fields(&x, &injected);
        if stuck.is_empty() {
            if let Some(back) = read_back_path(
                scan,
                &op,
                &path,
                created.filter(|_| op.method == http::Method::POST),
            ) {
                if let Some(r) = scan.send(&Req::get(back), Some(&a)).await {
                    stuck = stuck_fields(&r, &injected);
                    evidence.push(r);
                }
            }
        }
        if !stuck.is_empty() {
            let msg = format!(
                "{} accepted and kept {} set by {}",
                op.label(),
                stuck.join(", "),
                a.name
            );
            scan.report("mass-assignment", Some(&op), msg, evidence);
        }
    }
}

fn stuck_fields(x: &Exchange, injected: &Map<String, Value>) -> Vec<String> {
    let Some(Value::Object(m)) = x.json() else {
        return Vec::new();
    };
    injected
        .iter()
        .filter(|(k, v)| m.get(*k) == Some(v))
        .map(|(k, v)| format!("`{k}: {v}`"))
        .collect()
}

/// Admin operations that write, tried by an ordinary user on an object the scanner made.
pub async fn admin_writes(scan: &mut Scan) {
    let users: Vec<Identity> = scan.ordinary().into_iter().cloned().collect();
    let Some(b) = users.get(1).or(users.first()).cloned() else {
        return;
    };
    for i in 0..scan.api.ops.len() {
        let op = scan.op(i).clone();
        if !op.admin() || op.safe() {
            continue;
        }
        let path = if op.path_params().next().is_some() {
            match own_object_for(scan, &op) {
                Some(p) => p,
                None => {
                    scan.notes.push(format!(
                        "admin-operation: {} skipped: no object the scanner made itself to try it on (give one with --seed NAME=VALUE)",
                        op.label()
                    ));
                    continue;
                }
            }
        } else {
            format!("{}{}", op.path, required_query(&op, None))
        };
        let mut req = Req::new(op.method.clone(), path.clone());
        if let Some(schema) = &op.body {
            req = req.json(example(schema, &unique_tag()));
        }
        let Some(x) = scan.send(&req, Some(&b)).await else {
            continue;
        };
        if x.ok() && !scan.is_soft404(&x) {
            let msg = format!(
                "{}, an ordinary user, got {} from the admin operation {} {path}",
                b.name, x.status, op.method
            );
            scan.report("admin-operation", Some(&op), msg, vec![x]);
        }
    }
}

/// An object for an admin item operation (`/admin/users/{id}`): a seed for its parameter, or one
/// the scanner created whose schema is the one the API serves under the same resource name.
fn own_object_for(scan: &Scan, op: &Operation) -> Option<String> {
    let params: Vec<&str> = op.path_params().map(|p| p.name.as_str()).collect();
    if params.len() != 1 {
        return None;
    }
    let name = params[0];
    if let Some((_, v)) = scan.config.seeds.iter().find(|(k, _)| k == name) {
        return Some(op.path.replace(&format!("{{{name}}}"), v));
    }
    let resource = op
        .path
        .split(&format!("{{{name}}}"))
        .next()?
        .trim_end_matches('/')
        .rsplit('/')
        .next()?
        .to_string();
    let schemas: Vec<&Value> = scan
        .api
        .ops
        .iter()
        .filter(|o| {
            o.method == http::Method::GET
                && crate::collection_of(&o.path).rsplit('/').next() == Some(resource.as_str())
        })
        .flat_map(|o| o.responses.iter())
        .collect();
    scan.created
        .iter()
        .rev()
        .find(|(ci, _)| {
            let c = scan.op(*ci);
            crate::collection_of(&c.path).rsplit('/').next() == Some(resource.as_str())
                || c.responses.iter().any(|r| schemas.contains(&r))
        })
        .map(|(_, id)| op.path.replace(&format!("{{{name}}}"), id))
}

/// On objects the scanner created: the methods the spec does not declare for their path.
pub async fn method_switch(scan: &mut Scan) {
    let Some(a) = scan.ordinary().first().map(|u| (*u).clone()) else {
        return;
    };
    let created = scan.created.clone();
    for (ci, id) in created {
        let Some(path) = read_back_path(scan, &scan.op(ci).clone(), "", Some(id)) else {
            continue;
        };
        let Some(get) = scan
            .api
            .ops
            .iter()
            .find(|o| o.method == http::Method::GET && path_matches(&o.path, &path))
            .cloned()
        else {
            continue;
        };
        let declared: Vec<http::Method> = scan
            .api
            .ops
            .iter()
            .filter(|o| o.path == get.path)
            .map(|o| o.method.clone())
            .collect();
        for m in [http::Method::PUT, http::Method::PATCH, http::Method::DELETE] {
            if declared.contains(&m) {
                continue;
            }
            let mut req = Req::new(m.clone(), path.clone());
            if m != http::Method::DELETE {
                req = req.json(json!({}));
            }
            let Some(x) = scan.send(&req, Some(&a)).await else {
                continue;
            };
            if x.ok() && !scan.is_soft404(&x) {
                let msg = format!(
                    "{m} {path} answered {}; the spec declares only {}",
                    x.status,
                    declared
                        .iter()
                        .map(|d| d.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                scan.report("method-switch", Some(&get), msg, vec![x]);
            }
        }
    }
}

fn path_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.trim_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    t.len() == p.len() && t.iter().zip(&p).all(|(a, b)| a.starts_with('{') || a == b)
}
