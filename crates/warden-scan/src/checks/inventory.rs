//! What the API serves beside its spec (API9): older versions still answering, undocumented
//! endpoints, and documented ones that do not exist.

use crate::client::Req;
use crate::{normalise_probe, Scan};

/// Paths that, answering, mean something is exposed that the spec does not own.
const WORDLIST: &[&str] = &[
    "admin",
    "debug",
    "console",
    "internal",
    "test",
    "status",
    "info",
    "env",
    ".env",
    ".git/config",
    "config",
    "metrics",
    "actuator",
    "actuator/env",
    "actuator/health",
    "server-status",
    "swagger.json",
    "openapi.json",
    "api-docs",
    "v2/api-docs",
    "swagger-ui.html",
    "graphql",
    "phpinfo.php",
    "backup",
    "echo",
    "trace",
    "dump",
    "heapdump",
    "logs",
    "users",
    "accounts",
    "export",
];

/// Whether a concrete path is one the spec declares (for any method).
fn declared(scan: &Scan, path: &str) -> bool {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    scan.api.ops.iter().any(|op| {
        let t: Vec<&str> = op.path.trim_matches('/').split('/').collect();
        t.len() == segs.len()
            && t.iter()
                .zip(&segs)
                .all(|(a, b)| a.starts_with('{') || a == b)
    })
}

pub async fn inventory(scan: &mut Scan) {
    let who = scan.users.first().cloned();
    // Older versions: /v2/... documented, /v1/... tried.
    let samples: Vec<(usize, crate::client::Exchange)> = scan
        .seen
        .iter()
        .filter(|s| s.exchange.ok() && !scan.is_soft404(&s.exchange))
        .map(|s| (s.op, s.exchange.clone()))
        .collect();
    let mut tried = Vec::new();
    for (i, x) in samples.iter().take(20) {
        let full = x.url.split_once("://").map_or("", |(_, r)| r);
        let full = full.find('/').map_or("/", |k| &full[k..]).to_string();
        let segs: Vec<&str> = full.split('/').collect();
        for (k, seg) in segs.iter().enumerate() {
            let Some(n) = seg.strip_prefix('v').and_then(|d| d.parse::<u32>().ok()) else {
                continue;
            };
            for older in (0..n).rev().take(3) {
                let mut alt = segs.clone();
                let v = format!("v{older}");
                alt[k] = &v;
                let path = alt.join("/");
                if tried.contains(&path) {
                    continue;
                }
                tried.push(path.clone());
                let req = Req {
                    from_root: true,
                    ..Req::new(http::Method::GET, path.clone())
                };
                let Some(r) = scan.send(&req, who.as_ref()).await else {
                    continue;
                };
                if r.ok() && !scan.is_soft404(&r) {
                    let op = scan.op(*i).clone();
                    let msg = format!("{path} answers {} beside the documented {full}", r.status);
                    scan.report("old-version", Some(&op), msg, vec![r]);
                }
            }
        }
    }
    // Undocumented endpoints: a wordlist, and the collection above every documented item path.
    let mut paths: Vec<String> = WORDLIST.iter().map(|w| format!("/{w}")).collect();
    for op in &scan.api.ops {
        let collection = crate::collection_of(&op.path);
        if collection != op.path
            && !collection.contains('{')
            && !collection.is_empty()
            && !paths.contains(&collection)
        {
            paths.push(collection);
        }
    }
    for path in paths {
        if declared(scan, &path) {
            continue;
        }
        let Some(r) = scan.send(&Req::get(path.clone()), who.as_ref()).await else {
            continue;
        };
        if r.ok() && !scan.is_soft404(&r) && !r.body.trim().is_empty() {
            let msg = format!("GET {path} answers {} and is not in the spec", r.status);
            scan.report("undocumented-endpoint", None, msg, vec![r]);
        }
    }
    // Documented operations the API answers exactly like an unknown path.
    let Some((status, body)) = scan.soft404.clone() else {
        return;
    };
    for i in 0..scan.api.ops.len() {
        let mine: Vec<_> = scan
            .seen
            .iter()
            .filter(|s| s.op == i)
            .map(|s| &s.exchange)
            .collect();
        if mine.is_empty()
            || !mine
                .iter()
                .all(|x| x.status == status && normalise_probe(&x.body) == body)
        {
            continue;
        }
        let op = scan.op(i).clone();
        let x = mine[0].clone();
        let msg = format!(
            "{} answers {} exactly as an unknown path does",
            op.label(),
            x.status
        );
        scan.report("missing-operation", Some(&op), msg, vec![x]);
    }
}
