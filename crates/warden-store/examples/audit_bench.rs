//! Sustained appends per second (chaining and group commit on SQLite) and verification speed of
//! the audit trail. Run: `bench/audit.sh` or
//! `cargo run --release -p warden-store --example audit_bench -- [ENTRIES=1000000]`.

use std::time::{Duration, Instant};

use warden_store::audit::{self, AuditWriter, RequestRecord, WriterOptions};

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("warden-audit-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let writer = AuditWriter::start(&dir, WriterOptions::default()).unwrap();
    // A typical record: an allowed call with a consumer and one finding. Its strings are made
    // here as the gateway has them (borrowed from the request), outside what is measured.
    let ids: Vec<(String, String)> = (1..=n)
        .map(|i| {
            (
                format!("0193a1b2-7c3d-7e4f-8a9b-{i:012x}"),
                format!("/v1/orders/{i}"),
            )
        })
        .collect();
    let findings = vec!["data_protection:email@body.email:mask".to_string()];
    let started = Instant::now();
    for (i, (id, path)) in (1..=n).zip(&ids) {
        let r = RequestRecord {
            at_ms: 1_764_000_000_000 + i as i64,
            request_id: id,
            consumer: Some("alice"),
            credential_id: Some("k7Hq2mZp9xWa"),
            client_ip: [203, 0, 113, 7].into(),
            method: "GET",
            route: "orders",
            path,
            status: 200,
            decision: "allowed",
            findings: findings.clone(),
            bytes_in: 0,
            bytes_out: Some(812),
            latency_us: 1250,
            upstream: Some("orders"),
            complete: Some(true),
            ..RequestRecord::default()
        };
        // The gateway drops on a full queue; the benchmark waits, to measure what is sustained.
        while writer.try_append(&r).is_err() {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    while writer.written() < n {
        std::thread::sleep(Duration::from_millis(1));
    }
    let append = started.elapsed();
    writer.shutdown();
    let started = Instant::now();
    let report = audit::verify(&dir, None).unwrap();
    let verify = started.elapsed();
    assert_eq!(report.problem, None);
    assert_eq!(report.entries, n);
    let size = std::fs::metadata(dir.join(warden_store::FILE_NAME))
        .map(|m| m.len())
        .unwrap_or(0)
        + std::fs::metadata(dir.join("warden.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    println!("| measure | value |");
    println!("| --- | ---: |");
    println!("| entries | {n} |");
    println!(
        "| appends/s (chained, group commit, SQLite WAL) | {:.0} |",
        n as f64 / append.as_secs_f64()
    );
    println!(
        "| verify entries/s (chain + {} checkpoints) | {:.0} |",
        report.checkpoints,
        n as f64 / verify.as_secs_f64()
    );
    println!(
        "| bytes per entry on disk | {:.0} |",
        size as f64 / n as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
}
