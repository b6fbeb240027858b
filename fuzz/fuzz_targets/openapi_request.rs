//! Any request held against a real contract (the 3.1 fixture: `$ref` across files, `allOf`,
//! several path parameters) is looked up, its parameters and JSON body checked, and any JSON
//! answer filtered, without a panic; and what goes back to the client names locations made only of
//! tame characters (never a raw value from the request).
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use warden_openapi::{check_json_limits, Contract, JsonLimits, Match};

fn contract() -> &'static Contract {
    static C: OnceLock<Contract> = OnceLock::new();
    C.get_or_init(|| {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../crates/warden-openapi/tests/fixtures/shop-3.1.yaml");
        Contract::load(&p, None).expect("the fixture loads")
    })
}

fn tame(v: &warden_openapi::Violation) -> bool {
    v.location
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-$.[]<>".contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let method = match parts.next().unwrap_or("").len() % 4 {
        0 => http::Method::GET,
        1 => http::Method::POST,
        2 => http::Method::DELETE,
        _ => http::Method::PATCH,
    };
    let path = format!("/api/v2/{}", parts.next().unwrap_or(""));
    let query = parts.next();
    let body = parts.next().unwrap_or("");
    let c = contract();
    let mut out = Vec::new();
    if let Match::Found { op, path } = c.find(&method, &path) {
        op.check_params(&path, query, &http::HeaderMap::new(), false, &mut out);
        if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(body) {
            check_json_limits(&v, &JsonLimits::default(), &mut out);
            if let Some(m) = op.media_for("application/json") {
                c.check_body(m, &mut v, &mut out);
            }
            if let Some(removed) = c.filter_response(op, 200, &mut v) {
                assert!(removed.iter().all(tame));
                // Filtering is idempotent: what is left is all declared.
                assert!(c.filter_response(op, 200, &mut v).unwrap().is_empty());
            }
        }
    }
    assert!(out.iter().all(tame), "{out:?}");
});
