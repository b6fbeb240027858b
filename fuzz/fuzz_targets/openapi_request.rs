//! Any request held against a real contract (the 3.1 fixture: `$ref` across files, `allOf`,
//! several path parameters) is looked up, its parameters and JSON body checked, and any JSON
//! answer filtered, without a panic; what goes back to the client names locations made only of
//! tame characters (never a raw value from the request); and the text filter the gateway runs
//! agrees with the tree filter.
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
            let text = c.filter_response_text(op, 200, body.as_bytes());
            // A key named twice is one member in the tree and two in the text; requests with one
            // are refused (strict_json), answers keep whichever members are declared.
            let unique = warden_openapi::strict_json::parse(body.as_bytes()).is_ok();
            if let (Some(removed), true) = (c.filter_response(op, 200, &mut v), unique) {
                assert!(removed.iter().all(tame));
                // The text filter (what the gateway runs) leaves exactly what the tree filter does.
                let (mut found, new) = text.unwrap().expect("serde_json accepted it");
                let out: serde_json::Value =
                    serde_json::from_slice(new.as_deref().unwrap_or(body.as_bytes())).unwrap();
                assert_eq!(out, v);
                let mut removed = removed;
                found.sort();
                removed.sort();
                assert_eq!(found, removed);
                // Filtering is idempotent: what is left is all declared.
                assert!(c.filter_response(op, 200, &mut v).unwrap().is_empty());
            }
        }
    }
    assert!(out.iter().all(tame), "{out:?}");
});
