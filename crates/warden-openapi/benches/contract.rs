//! In-process cost of the contract's per-request work on bench/corpus's order API: the operation
//! lookup, the request body check (schema constraints, then the declared-properties walk) and the
//! response filter. `cargo bench -p warden-openapi --bench contract`.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use http::Method;
use serde_json::Value;
use warden_openapi::{check_json_limits, Contract, JsonLimits, Match};

fn corpus(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../bench/corpus")
        .join(name)
}

fn bench(c: &mut Criterion) {
    let contract = Contract::load(&corpus("order-spec.yaml"), None).unwrap();
    let order = std::fs::read(corpus("order.json")).unwrap();
    let answer = std::fs::read(corpus("order-response.json")).unwrap();
    let clean = std::fs::read(corpus("order-response-clean.json")).unwrap();
    let Match::Found { op, .. } = contract.find(&Method::POST, "/v1/orders") else {
        panic!()
    };
    let media = op.media_for("application/json").unwrap();
    c.bench_function("find", |b| {
        b.iter(|| {
            matches!(
                contract.find(&Method::POST, "/v1/orders"),
                Match::Found { .. }
            )
        })
    });
    c.bench_function("parse request", |b| {
        b.iter(|| serde_json::from_slice::<Value>(&order).unwrap())
    });
    let parsed: Value = serde_json::from_slice(&order).unwrap();
    c.bench_function("json limits", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            check_json_limits(&parsed, &JsonLimits::default(), &mut out);
            out.len()
        })
    });
    c.bench_function("schema constraints", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            media
                .validator
                .as_ref()
                .unwrap()
                .check(&parsed, "body", &mut out);
            out.len()
        })
    });
    c.bench_function("check body (constraints + declared)", |b| {
        b.iter(|| {
            let mut v = parsed.clone();
            let mut out = Vec::new();
            contract.check_body(media, &mut v, &mut out);
            assert!(out.is_empty(), "{out:?}");
        })
    });
    c.bench_function("filter response (parse, filter, serialise)", |b| {
        b.iter(|| {
            let mut v: Value = serde_json::from_slice(&answer).unwrap();
            let removed = contract.filter_response(op, 200, &mut v).unwrap();
            assert_eq!(removed.len(), 4);
            serde_json::to_vec(&v).unwrap()
        })
    });
    c.bench_function("filter response, answer as declared (parse, check)", |b| {
        b.iter(|| {
            let mut v: Value = serde_json::from_slice(&clean).unwrap();
            assert!(contract
                .filter_response(op, 200, &mut v)
                .unwrap()
                .is_empty());
        })
    });
    c.bench_function("text filter (what the gateway runs)", |b| {
        b.iter(|| {
            let (found, new) = contract
                .filter_response_text(op, 200, &answer)
                .unwrap()
                .unwrap();
            assert_eq!(found.len(), 4);
            new.unwrap().len()
        })
    });
    c.bench_function("text filter, answer as declared", |b| {
        b.iter(|| {
            let (found, new) = contract
                .filter_response_text(op, 200, &clean)
                .unwrap()
                .unwrap();
            assert!(found.is_empty() && new.is_none());
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
