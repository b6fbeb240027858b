//! A scan's findings as a terminal summary, JSON, SARIF 2.1.0 (for code-scanning dashboards),
//! JUnit XML (for CI test reports) or a self-contained HTML page.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{json, Value};

use crate::client::Exchange;
use crate::{Check, Finding, Report, Severity, CHECKS};

const ORDER: [Severity; 5] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
    Severity::Info,
];

pub fn counts(report: &Report) -> Vec<(Severity, usize)> {
    ORDER
        .iter()
        .map(|s| {
            (
                *s,
                report
                    .findings
                    .iter()
                    .filter(|f| f.check.severity == *s)
                    .count(),
            )
        })
        .collect()
}

fn shown(p: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    cwd.as_deref()
        .and_then(|c| p.strip_prefix(c).ok())
        .unwrap_or(p)
        .display()
        .to_string()
}

fn location(f: &Finding) -> String {
    match f.line {
        Some(l) => format!("{}:{l}", shown(&f.file)),
        None => shown(&f.file),
    }
}

pub fn summary_line(report: &Report) -> String {
    let parts: Vec<String> = counts(report)
        .iter()
        .map(|(s, n)| format!("{n} {}", s.label()))
        .collect();
    format!(
        "{} finding(s): {} ({} checks run, {} requests in {:.1} s)",
        report.findings.len(),
        parts.join(", "),
        report.checks_run.len(),
        report.requests,
        report.duration.as_secs_f64()
    )
}

pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "warden scan {} (spec {})\n",
        report.target,
        shown(&report.spec)
    );
    for f in &report.findings {
        let _ = writeln!(
            out,
            "{:<8} {:<5} {:<26} {}",
            f.check.severity.label().to_ascii_uppercase(),
            f.check.category.short(),
            f.check.id,
            f.operation.as_deref().unwrap_or("(whole API)")
        );
        let _ = writeln!(out, "         {}", f.message);
        let _ = writeln!(out, "         at {}; fix: {}", location(f), f.check.fix);
    }
    if report.findings.is_empty() {
        let _ = writeln!(out, "no findings");
    }
    for n in &report.notes {
        let _ = writeln!(out, "note: {n}");
    }
    let _ = writeln!(out, "\n{}", summary_line(report));
    out
}

fn exchange_json(x: &Exchange) -> Value {
    json!({
        "request": {"method": x.method, "url": x.url, "headers": x.request_headers, "body": x.request_body},
        "response": {"status": x.status, "headers": x.headers, "body": x.shown_body(),
            "elapsed_ms": x.elapsed.as_millis() as u64},
    })
}

pub fn json(report: &Report) -> Value {
    let findings: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            json!({
                "check": f.check.id, "title": f.check.title, "category": f.check.category.label(),
                "severity": f.check.severity.label(), "cwe": f.check.cwe, "operation": f.operation,
                "message": f.message, "fix": f.check.fix,
                "location": {"file": shown(&f.file), "line": f.line},
                "evidence": f.evidence.iter().map(exchange_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    let summary: serde_json::Map<String, Value> = counts(report)
        .iter()
        .map(|(s, n)| (s.label().to_string(), json!(n)))
        .collect();
    json!({
        "tool": "warden scan", "version": env!("CARGO_PKG_VERSION"),
        "target": report.target, "spec": shown(&report.spec),
        "requests": report.requests, "duration_ms": report.duration.as_millis() as u64,
        "summary": summary, "findings": findings, "notes": report.notes, "checks_run": report.checks_run,
    })
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// The number code-scanning dashboards sort by (GitHub reads `security-severity`).
fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

fn rule(c: &Check) -> Value {
    json!({
        "id": c.id,
        "name": c.title,
        "shortDescription": {"text": c.title},
        "fullDescription": {"text": format!("{} — {}", c.category.label(), c.title)},
        "help": {"text": c.fix},
        "defaultConfiguration": {"level": level(c.severity)},
        "properties": {
            "tags": ["security", "owasp-api-top-10", c.category.short(), format!("external/cwe/cwe-{}", c.cwe)],
            "security-severity": security_severity(c.severity),
        },
    })
}

pub fn sarif(report: &Report) -> Value {
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let mut physical = json!({"artifactLocation": {"uri": shown(&f.file)}});
            if let Some(l) = f.line {
                physical["region"] = json!({"startLine": l});
            }
            let mut location = json!({"physicalLocation": physical});
            if let Some(op) = &f.operation {
                location["logicalLocations"] = json!([{"name": op, "kind": "function"}]);
            }
            let index = CHECKS.iter().position(|c| c.id == f.check.id).unwrap_or(0);
            json!({
                "ruleId": f.check.id,
                "ruleIndex": index,
                "level": level(f.check.severity),
                "message": {"text": f.message},
                "locations": [location],
                "partialFingerprints": {"wardenScan/v1": fingerprint(f)},
                "properties": {"evidence": f.evidence.iter().map(exchange_json).collect::<Vec<_>>()},
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "warden-scan",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://owasp.org/API-Security/editions/2023/en/0x11-t10/",
                "rules": CHECKS.iter().map(rule).collect::<Vec<_>>(),
            }},
            "invocations": [{"executionSuccessful": true}],
            "properties": {"target": report.target},
            "results": results,
        }],
    })
}

/// Stable across runs for the same flaw, so dashboards track it rather than reopen it.
fn fingerprint(f: &Finding) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (f.check.id, &f.operation).hash(&mut h);
    format!("{:016x}", h.finish())
}

fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// One test case per check that ran; a check with findings fails, listing them.
pub fn junit(report: &Report) -> String {
    let mut cases = String::new();
    let mut failures = 0;
    for id in &report.checks_run {
        let Some(c) = CHECKS.iter().find(|c| c.id == *id) else {
            continue;
        };
        let mine: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| f.check.id == *id)
            .collect();
        let _ = write!(
            cases,
            "    <testcase classname=\"{}\" name=\"{}: {}\"",
            c.category.short(),
            c.id,
            xml(c.title)
        );
        if mine.is_empty() {
            cases.push_str("/>\n");
            continue;
        }
        failures += 1;
        let detail: Vec<String> = mine
            .iter()
            .map(|f| {
                format!(
                    "{} ({}) {}",
                    f.operation.as_deref().unwrap_or("(whole API)"),
                    location(f),
                    f.message
                )
            })
            .collect();
        let _ = write!(
            cases,
            ">\n      <failure type=\"{}\" message=\"{} finding(s)\">{}\nfix: {}</failure>\n    </testcase>\n",
            c.severity.label(),
            mine.len(),
            xml(&detail.join("\n")),
            xml(c.fix)
        );
    }
    let tests = report.checks_run.len();
    let time = report.duration.as_secs_f64();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"warden scan\" tests=\"{tests}\" failures=\"{failures}\" time=\"{time:.3}\">\n  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" time=\"{time:.3}\">\n{cases}  </testsuite>\n</testsuites>\n",
        xml(&report.target)
    )
}

pub fn html(report: &Report) -> String {
    let mut rows = String::new();
    for f in &report.findings {
        let mut evidence = String::new();
        for x in &f.evidence {
            let _ = write!(
                evidence,
                "<pre>{} {}\n{}{}\n\n→ {} ({} ms)\n{}</pre>",
                xml(&x.method),
                xml(&x.url),
                x.request_headers
                    .iter()
                    .map(|(k, v)| format!("{}: {}\n", xml(k), xml(v)))
                    .collect::<String>(),
                x.request_body.as_deref().map(xml).unwrap_or_default(),
                x.status,
                x.elapsed.as_millis(),
                xml(&x.shown_body())
            );
        }
        let _ = writeln!(
            rows,
            "<tr class=\"{sev}\"><td>{sev}</td><td>{cat}</td><td><code>{id}</code><br>{title}</td><td><code>{op}</code><br><small>{loc}</small></td><td>{msg}<details><summary>evidence and fix</summary><p><b>Fix:</b> {fix}</p>{evidence}</details></td></tr>",
            sev = f.check.severity.label(),
            cat = xml(f.check.category.label()),
            id = f.check.id,
            title = xml(f.check.title),
            op = xml(f.operation.as_deref().unwrap_or("(whole API)")),
            loc = xml(&location(f)),
            msg = xml(&f.message),
            fix = xml(f.check.fix),
        );
    }
    let notes: String = report
        .notes
        .iter()
        .map(|n| format!("<li>{}</li>", xml(n)))
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>warden scan: {target}</title>\n<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #ccc;padding:.4em;vertical-align:top;text-align:left}}pre{{white-space:pre-wrap;background:#f6f6f6;padding:.5em}}.critical td:first-child{{background:#7a0000;color:#fff}}.high td:first-child{{background:#d33;color:#fff}}.medium td:first-child{{background:#f90}}.low td:first-child{{background:#fd6}}</style></head>\n<body><h1>warden scan</h1><p>Target <code>{target}</code>, spec <code>{spec}</code>.</p><p>{summary}</p>\n<table><tr><th>Severity</th><th>Category</th><th>Check</th><th>Operation</th><th>Finding</th></tr>\n{rows}</table><ul>{notes}</ul></body></html>\n",
        target = xml(&report.target),
        spec = xml(&shown(&report.spec)),
        summary = xml(&summary_line(report)),
    )
}
