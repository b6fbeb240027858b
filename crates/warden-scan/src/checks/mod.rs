//! The scan's stages, in the order they run. Reads come first; writes (only with --allow-writes)
//! next, and the burst for the rate-limit check last, so that a limit it trips cannot spoil the
//! others.

pub mod access;
pub mod crawl;
pub mod exposure;
pub mod injection;
pub mod inventory;
pub mod misconfig;
pub mod resources;
pub mod writes;

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use crate::Scan;

pub type Run = for<'a> fn(&'a mut Scan) -> Pin<Box<dyn Future<Output = ()> + 'a>>;

pub struct Stage {
    pub name: &'static str,
    /// The check ids this stage can report.
    pub checks: &'static [&'static str],
    pub run: Run,
    pub writes: bool,
}

macro_rules! stage {
    ($name:literal, $writes:literal, [$($id:literal),*], $f:path) => {
        Stage {
            name: $name,
            checks: &[$($id),*],
            run: |s| Box::pin($f(s)),
            writes: $writes,
        }
    };
}

pub fn stages(allow_writes: bool) -> Vec<Stage> {
    let all = vec![
        stage!("crawling", false, [], crawl::crawl),
        stage!("creating objects", true, [], crawl::create),
        stage!("object level", false, ["bola"], access::object_level),
        stage!(
            "authentication",
            false,
            ["no-auth", "invalid-credential"],
            access::authentication
        ),
        stage!(
            "tokens",
            false,
            [
                "jwt-alg-none",
                "jwt-unverified",
                "jwt-weak-secret",
                "jwt-expired"
            ],
            access::tokens
        ),
        stage!(
            "function level",
            false,
            ["admin-operation"],
            access::function_level
        ),
        stage!(
            "data exposure",
            false,
            [
                "secret-in-response",
                "personal-data-in-response",
                "undeclared-response-field"
            ],
            exposure::exposure
        ),
        stage!(
            "misconfiguration",
            false,
            [
                "cors-credentials",
                "security-headers",
                "verbose-error",
                "plain-http",
                "trace-enabled"
            ],
            misconfig::misconfig
        ),
        stage!(
            "inventory",
            false,
            ["old-version", "undocumented-endpoint", "missing-operation"],
            inventory::inventory
        ),
        stage!(
            "injection",
            false,
            ["sql-injection", "nosql-injection", "command-injection"],
            injection::injection
        ),
        stage!("ssrf", false, ["ssrf"], resources::ssrf),
        stage!(
            "page sizes",
            false,
            ["unbounded-page-size"],
            resources::page_size
        ),
        stage!("redos", false, ["redos"], resources::redos),
        stage!(
            "login",
            true,
            ["user-enumeration", "nosql-injection"],
            access::login
        ),
        stage!(
            "object level writes",
            true,
            ["bola"],
            writes::object_level_writes
        ),
        stage!(
            "mass assignment",
            true,
            ["mass-assignment"],
            writes::mass_assignment
        ),
        stage!(
            "admin writes",
            true,
            ["admin-operation"],
            writes::admin_writes
        ),
        stage!(
            "method switching",
            true,
            ["method-switch"],
            writes::method_switch
        ),
        stage!("rate limit", false, ["no-rate-limit"], resources::burst),
    ];
    all.into_iter()
        .filter(|s| allow_writes || !s.writes)
        .collect()
}

/// Two JSON answers are "the same data" when equal, or when both are objects with the same keys
/// and the same identifying values: enough to say B saw A's record.
pub fn same_data(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            !x.is_empty()
                && x.len() == y.len()
                && x.keys().all(|k| y.contains_key(k))
                && x.iter()
                    .filter(|(k, _)| {
                        let k = k.to_ascii_lowercase();
                        k == "id" || k.ends_with("_id") || k == "username" || k == "email"
                    })
                    .all(|(k, v)| y.get(k) == Some(v))
        }
        _ => false,
    }
}

/// Same shape: both objects with the same keys, or both arrays, or equal.
pub fn same_shape(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => !x.is_empty() && x.keys().eq(y.keys()),
        (Value::Array(_), Value::Array(_)) => true,
        _ => a == b,
    }
}

/// Every string leaf with its dotted location, to a bounded depth.
pub fn leaves<'v>(v: &'v Value, at: String, out: &mut Vec<(String, &'v Value)>, depth: usize) {
    if depth > 8 || out.len() > 2000 {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let here = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                leaves(x, here, out, depth + 1);
            }
        }
        Value::Array(a) => {
            for x in a.iter().take(20) {
                leaves(x, format!("{at}[]"), out, depth + 1);
            }
        }
        _ => out.push((at, v)),
    }
}
