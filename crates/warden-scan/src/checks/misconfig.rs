//! How the API is set up (API8): CORS, security headers, error answers that spill internals,
//! plain HTTP, TRACE.

use warden_policy::leaks;

use super::crawl::{concrete, required_query};
use crate::client::{Exchange, Req};
use crate::spec::In;
use crate::Scan;

const EVIL_ORIGIN: &str = "https://wardenscan-evil.example";

pub async fn misconfig(scan: &mut Scan) {
    let samples: Vec<(usize, Exchange)> = scan
        .seen
        .iter()
        .filter(|s| s.exchange.ok() && !scan.is_soft404(&s.exchange))
        .map(|s| (s.op, s.exchange.clone()))
        .collect();
    cors(scan, &samples).await;
    headers(scan, &samples);
    errors(scan).await;
    plain_http(scan);
    trace(scan, &samples).await;
}

async fn cors(scan: &mut Scan, samples: &[(usize, Exchange)]) {
    let Some((i, x)) = samples.first().cloned() else {
        return;
    };
    let op = scan.op(i).clone();
    let who = scan
        .users
        .iter()
        .find(|u| Some(&u.name) == x.caller.as_ref())
        .cloned();
    for origin in [EVIL_ORIGIN, "null"] {
        let req = Req::new(op.method.clone(), x.path.clone()).header("origin", origin);
        let Some(r) = scan.send(&req, who.as_ref()).await else {
            return;
        };
        let allowed = r.header("access-control-allow-origin").unwrap_or("");
        let credentials = r
            .header("access-control-allow-credentials")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if allowed == origin && credentials {
            let msg = format!("{} answers Origin `{origin}` with Access-Control-Allow-Origin: {origin} and credentials allowed: any web page can read the user's data", op.label());
            scan.report("cors-credentials", Some(&op), msg, vec![r]);
            return;
        }
    }
}

fn headers(scan: &mut Scan, samples: &[(usize, Exchange)]) {
    let https = scan.client.base().starts_with("https://");
    let mut missing: Vec<(&str, &str, Exchange, usize)> = Vec::new();
    for (i, x) in samples {
        let nosniff = x
            .header("x-content-type-options")
            .is_some_and(|v| v.eq_ignore_ascii_case("nosniff"));
        if !nosniff && !missing.iter().any(|m| m.0 == "X-Content-Type-Options") {
            missing.push((
                "X-Content-Type-Options",
                "nosniff, so browsers never sniff a JSON answer into HTML",
                x.clone(),
                *i,
            ));
        }
        let cache = x.header("cache-control").unwrap_or("").to_ascii_lowercase();
        let private =
            cache.contains("no-store") || cache.contains("private") || cache.contains("no-cache");
        if x.caller.is_some() && !private && !missing.iter().any(|m| m.0 == "Cache-Control") {
            missing.push((
                "Cache-Control",
                "no-store on authenticated answers, so shared caches never keep them",
                x.clone(),
                *i,
            ));
        }
        if https
            && x.header("strict-transport-security").is_none()
            && !missing.iter().any(|m| m.0 == "Strict-Transport-Security")
        {
            missing.push((
                "Strict-Transport-Security",
                "so browsers never fall back to plain HTTP",
                x.clone(),
                *i,
            ));
        }
    }
    for (name, why, x, i) in missing {
        let op = scan.op(i).clone();
        let msg = format!("answers lack {name} ({why}); first seen on {}", op.label());
        scan.report("security-headers", None, msg, vec![x]);
    }
}

/// Malformed values where the spec wants typed ones; an error answer that names a stack frame,
/// a SQL dialect or a server path is a finding.
async fn errors(scan: &mut Scan) {
    let who = scan.users.first().cloned();
    let seen: Vec<Exchange> = scan.seen.iter().map(|s| s.exchange.clone()).collect();
    for x in seen {
        report_leak(scan, None, &x);
    }
    for i in 0..scan.api.ops.len() {
        let op = scan.op(i).clone();
        if !op.safe() || op.login {
            continue;
        }
        let Some(base) = concrete(scan, &op).into_iter().next() else {
            continue;
        };
        let mut probes = Vec::new();
        for p in &op.params {
            match p.place {
                In::Path if p.is_integer() => {
                    let template = op
                        .path
                        .replace(&format!("{{{}}}", p.name), "wardenscan%27%22");
                    let filled = concrete_with(scan, &op, &template);
                    probes.push(filled);
                }
                In::Query => {
                    let path = base.split('?').next().unwrap_or(&base).to_string();
                    probes.push(format!(
                        "{path}{}",
                        required_query(&op, Some((&p.name, "wardenscan'\"<>")))
                    ));
                }
                _ => {}
            }
        }
        for path in probes {
            let Some(x) = scan
                .send(&Req::new(op.method.clone(), path), who.as_ref())
                .await
            else {
                continue;
            };
            report_leak(scan, Some(i), &x);
        }
    }
}

fn concrete_with(scan: &Scan, op: &crate::spec::Operation, template: &str) -> String {
    let mut probe = op.clone();
    probe.path = template.to_string();
    concrete(scan, &probe)
        .into_iter()
        .next()
        .unwrap_or_else(|| template.to_string())
}

fn report_leak(scan: &mut Scan, op: Option<usize>, x: &Exchange) {
    if x.status < 400 {
        return;
    }
    let html = x
        .header("content-type")
        .is_some_and(|c| c.contains("text/html"));
    let Some(leak) = leaks::find(x.body.as_bytes(), html) else {
        return;
    };
    let op = op
        .or_else(|| {
            scan.seen
                .iter()
                .find(|s| s.exchange.url == x.url)
                .map(|s| s.op)
        })
        .map(|i| scan.op(i).clone());
    let Some(op) = op else { return };
    if scan.has("verbose-error", &op) {
        return;
    }
    let msg = format!(
        "{} answered {} with a {} in the body",
        op.label(),
        x.status,
        leak.id().replace('-', " ")
    );
    scan.report("verbose-error", Some(&op), msg, vec![x.clone()]);
}

fn plain_http(scan: &mut Scan) {
    let base = scan.client.base().to_string();
    let Some(rest) = base.strip_prefix("http://") else {
        return;
    };
    let host = rest.split(['/', ':']).next().unwrap_or("");
    let loopback = host == "localhost" || host.starts_with("127.") || host == "[::1]";
    if !loopback {
        let msg =
            format!("{base} is plain HTTP: credentials and data cross the network in the clear");
        scan.report("plain-http", None, msg, Vec::new());
    }
}

async fn trace(scan: &mut Scan, samples: &[(usize, Exchange)]) {
    let mut paths = vec!["/".to_string()];
    if let Some((_, x)) = samples.first() {
        paths.push(x.path.clone());
    }
    let marker = "wardenscan-trace-9b2e";
    for path in paths {
        let req = Req::new(http::Method::TRACE, path.clone()).header("x-wardenscan-trace", marker);
        let Some(x) = scan.send(&req, None).await else {
            continue;
        };
        if x.ok() && x.body.contains(marker) {
            let msg = format!("TRACE {path} echoes the request back, headers included");
            scan.report("trace-enabled", None, msg, vec![x]);
            return;
        }
    }
}
