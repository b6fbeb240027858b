//! `warden lint SPEC`: the static audit of `warden_openapi::lint`, printed like a compiler.

use warden_openapi::lint::{lint, Severity, RULES};

use crate::cli::{Failure, LintArgs};

pub fn run(args: LintArgs) -> Result<(), Failure> {
    let report = lint(&args.spec).map_err(|e| Failure::BadInput(e.to_string()))?;
    let cwd = std::env::current_dir().ok();
    let shown = |p: &std::path::Path| -> String {
        cwd.as_deref()
            .and_then(|c| p.strip_prefix(c).ok())
            .unwrap_or(p)
            .display()
            .to_string()
    };
    if args.format == "json" {
        let findings: Vec<_> = report
            .findings
            .iter()
            .map(|f| {
                serde_json::json!({"rule": f.rule, "severity": f.severity.label(), "file": shown(&f.file),
                    "line": f.line, "pointer": f.pointer, "message": f.message, "fix": f.fix})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"score": report.score, "findings": findings})
        );
    } else {
        for f in &report.findings {
            let line = f.line.map(|l| format!(":{l}")).unwrap_or_default();
            println!(
                "{}{line}: {} [{}] {}\n    fix: {}",
                shown(&f.file),
                f.severity.label(),
                f.rule,
                f.message,
                f.fix
            );
        }
        let mut counts = Vec::new();
        for sev in [
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Low,
            Severity::Info,
        ] {
            let n = report.findings.iter().filter(|f| f.severity == sev).count();
            if n > 0 {
                counts.push(format!("{n} {}", sev.label()));
            }
        }
        let rules_hit = RULES
            .iter()
            .filter(|r| report.findings.iter().any(|f| f.rule == r.id))
            .count();
        println!(
            "\n{}: score {}/100; {} finding(s){}; {rules_hit} of {} rules found something",
            shown(&args.spec),
            report.score,
            report.findings.len(),
            if counts.is_empty() {
                String::new()
            } else {
                format!(" ({})", counts.join(", "))
            },
            RULES.len()
        );
    }
    fail_on(
        args.fail_on.as_deref(),
        report.findings.iter().map(|f| f.severity),
    )
}

/// `--fail-on SEVERITY` (lint and scan): exit 1 when a finding is that severe or worse.
pub fn fail_on(flag: Option<&str>, found: impl Iterator<Item = Severity>) -> Result<(), Failure> {
    let Some(threshold) = flag.and_then(Severity::parse) else {
        return Ok(());
    };
    let n = found.filter(|s| *s >= threshold).count();
    if n > 0 {
        return Err(Failure::Runtime(anyhow::anyhow!(
            "{n} finding(s) at or above `{}` (--fail-on)",
            threshold.label()
        )));
    }
    Ok(())
}
