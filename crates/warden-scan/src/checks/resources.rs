//! Limits (API4) and server-side requests (API7): a burst that should meet a 429, page sizes far
//! beyond reason, inputs whose cost grows faster than their length, and URL parameters the server
//! fetches (seen by a canary listener the scanner runs).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::crawl::{concrete, required_query, unique_tag};
use crate::client::{Exchange, Req};
use crate::spec::{example, properties, In};
use crate::Scan;

/// Fires `burst` requests at once at a read the first user may make.
pub async fn burst(scan: &mut Scan) {
    let Some(who) = scan
        .ordinary()
        .first()
        .map(|u| (*u).clone())
        .or_else(|| scan.users.first().cloned())
    else {
        scan.notes
            .push("no-rate-limit: needs a user to send the burst as".into());
        return;
    };
    let sample = scan
        .seen
        .iter()
        .find(|s| {
            s.exchange.ok()
                && s.exchange.caller.as_deref() == Some(&who.name)
                && !scan.is_soft404(&s.exchange)
        })
        .map(|s| (s.op, s.exchange.clone()));
    let Some((i, x)) = sample else { return };
    let op = scan.op(i).clone();
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..scan.config.burst {
        let client = scan.client.clone();
        let req = Req::new(op.method.clone(), x.path.clone());
        let who = who.clone();
        set.spawn(async move { client.send_now(&req, Some(&who)).await });
    }
    let mut answers: Vec<Exchange> = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(Ok(x)) = r {
            answers.push(x);
        }
    }
    let took = started.elapsed();
    let limited = answers
        .iter()
        .filter(|x| x.status == 429 || x.status == 503)
        .count();
    let ok = answers.iter().filter(|x| x.ok()).count();
    if limited == 0 && ok * 10 >= scan.config.burst * 9 {
        let msg = format!(
            "{} requests to {} {} in {} ms as {}: {ok} answered 2xx, none 429",
            scan.config.burst,
            op.method,
            x.path,
            took.as_millis(),
            who.name
        );
        let last = answers.into_iter().last().into_iter().collect();
        scan.report("no-rate-limit", Some(&op), msg, last);
    }
}

const PAGE_PARAMS: &[&str] = &[
    "limit",
    "page_size",
    "pagesize",
    "per_page",
    "perpage",
    "size",
    "count",
    "max",
    "top",
    "first",
    "take",
    "pagelength",
];

/// Page-size parameters asked for 100,000 items: a finding when the answer holds more items
/// than any sane page (100, or the spec's own maximum).
pub async fn page_size(scan: &mut Scan) {
    let who = scan.users.first().cloned();
    for op in scan.api.ops.clone().iter().filter(|o| o.safe()) {
        for p in op
            .params
            .iter()
            .filter(|p| p.place == In::Query && p.is_integer())
        {
            if !PAGE_PARAMS.contains(&p.name.to_ascii_lowercase().as_str()) {
                continue;
            }
            let Some(path) = concrete(scan, op).into_iter().next() else {
                continue;
            };
            let path = path.split('?').next().unwrap_or("").to_string();
            let req = Req::new(
                op.method.clone(),
                format!("{path}{}", required_query(op, Some((&p.name, "100000")))),
            );
            let Some(x) = scan.send(&req, who.as_ref()).await else {
                continue;
            };
            let declared = p
                .schema
                .get("maximum")
                .and_then(Value::as_u64)
                .unwrap_or(100)
                .max(100) as usize;
            let items = x.json().map_or(0, |j| largest_array(&j, 0));
            if x.ok() && items > declared {
                let msg = format!(
                    "{}: `{}=100000` returned {items} items in one answer",
                    op.label(),
                    p.name
                );
                scan.report("unbounded-page-size", Some(op), msg, vec![x]);
            }
        }
    }
}

fn largest_array(v: &Value, depth: usize) -> usize {
    if depth > 4 {
        return 0;
    }
    match v {
        Value::Array(a) => a.len().max(
            a.iter()
                .take(5)
                .map(|x| largest_array(x, depth + 1))
                .max()
                .unwrap_or(0),
        ),
        Value::Object(m) => m
            .values()
            .map(|x| largest_array(x, depth + 1))
            .max()
            .unwrap_or(0),
        _ => 0,
    }
}

/// Each string query parameter at 1k, 4k and 16k characters. Linear work grows 4× per step; a
/// finding needs the 16k answer to take over a second and over 6× the 4k one, twice.
pub async fn redos(scan: &mut Scan) {
    let who = scan.users.first().cloned();
    for op in scan.api.ops.clone().iter().filter(|o| o.safe() && !o.login) {
        for p in op
            .params
            .iter()
            .filter(|p| p.place == In::Query && p.is_string())
        {
            let Some(path) = concrete(scan, op).into_iter().next() else {
                continue;
            };
            let path = path.split('?').next().unwrap_or("").to_string();
            let time = async |scan: &mut Scan, n: usize| -> Option<(Duration, Exchange)> {
                let value = format!("{}!", "a".repeat(n));
                let req = Req::new(
                    op.method.clone(),
                    format!("{path}{}", required_query(op, Some((&p.name, &value)))),
                );
                let x = scan.send(&req, who.as_ref()).await?;
                Some((x.elapsed, x))
            };
            let Some((_, _)) = time(scan, 1024).await else {
                continue;
            };
            let Some((t4, _)) = time(scan, 4096).await else {
                continue;
            };
            let Some((t16, x16)) = time(scan, 16384).await else {
                continue;
            };
            let slow = |t: Duration| {
                t > Duration::from_secs(1) && t.as_secs_f64() > 6.0 * t4.as_secs_f64().max(0.01)
            };
            if !slow(t16) {
                continue;
            }
            let Some((again, _)) = time(scan, 16384).await else {
                continue;
            };
            if slow(again) {
                let msg = format!(
                    "{}: `{}` of 4,096 characters took {} ms, of 16,384 took {} ms (linear work would take ~4×)",
                    op.label(),
                    p.name,
                    t4.as_millis(),
                    t16.as_millis()
                );
                scan.report("redos", Some(op), msg, vec![x16]);
            }
        }
    }
}

/// Whether a parameter or field is meant to carry a URL.
fn url_like(name: &str, schema: &Value) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        schema.get("format").and_then(Value::as_str),
        Some("uri" | "url" | "uri-reference")
    ) || [
        "url", "uri", "callback", "webhook", "link", "href", "redirect", "image", "avatar", "feed",
        "endpoint", "target", "dest", "source", "src",
    ]
    .iter()
    .any(|w| {
        n == *w
            || n.ends_with(&format!("_{w}"))
            || n.starts_with(&format!("{w}_"))
            || n.ends_with(&w.to_ascii_uppercase())
    })
}

/// URL parameters pointed at the canary; a request reaching it is the finding.
pub async fn ssrf(scan: &mut Scan) {
    let listener = match TcpListener::bind(scan.config.canary).await {
        Ok(l) => l,
        Err(e) => {
            scan.notes.push(format!(
                "ssrf: cannot start the canary on {}: {e}",
                scan.config.canary
            ));
            return;
        }
    };
    let Ok(addr) = listener.local_addr() else {
        return;
    };
    let hits: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = hits.clone();
    let canary = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or(0);
                let line = String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                sink.lock().expect("canary lock").push(line);
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    let who = scan.users.first().cloned();
    for op in scan.api.ops.clone() {
        if !op.safe() && !scan.config.allow_writes || op.login {
            continue;
        }
        let mut probes: Vec<(String, Req)> = Vec::new();
        let Some(path) = concrete(scan, &op).into_iter().next() else {
            continue;
        };
        let bare = path.split('?').next().unwrap_or("").to_string();
        for p in op
            .params
            .iter()
            .filter(|p| p.place == In::Query && url_like(&p.name, &p.schema))
        {
            let token = unique_tag();
            let url = format!("http://{addr}/{token}");
            probes.push((
                token,
                Req::new(
                    op.method.clone(),
                    format!("{bare}{}", required_query(&op, Some((&p.name, &url)))),
                ),
            ));
        }
        if let Some(schema) = &op.body {
            for (name, s) in properties(schema) {
                if !url_like(&name, &s) {
                    continue;
                }
                let token = unique_tag();
                let mut body = example(schema, &unique_tag());
                body[&name] = Value::String(format!("http://{addr}/{token}"));
                probes.push((token, Req::new(op.method.clone(), path.clone()).json(body)));
            }
        }
        for (token, req) in probes {
            let Some(x) = scan.send(&req, who.as_ref()).await else {
                continue;
            };
            let deadline = Instant::now() + Duration::from_millis(1500);
            let hit = loop {
                if let Some(h) = hits
                    .lock()
                    .expect("canary lock")
                    .iter()
                    .find(|h| h.contains(&token))
                    .cloned()
                {
                    break Some(h);
                }
                if Instant::now() > deadline {
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            if let Some(line) = hit {
                let msg = format!(
                    "{} fetched the URL it was given: the canary received `{line}`",
                    op.label()
                );
                scan.report("ssrf", Some(&op), msg, vec![x]);
            }
        }
    }
    canary.abort();
}
