//! `warden scan` through the real binary against the demo API: every planted flaw found, and
//! nothing found on the same API with its flaws fixed; each report format well formed.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use serde_json::Value;

fn spec() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/demo-openapi.yaml")
        .to_str()
        .unwrap()
        .to_string()
}

fn start(dir: &Path, fixed: bool) -> (Proc, String) {
    let mut args = vec!["demo-api", "--listen", "127.0.0.1:0"];
    if fixed {
        args.push("--fixed");
    }
    let mut api = Proc::spawn(&args, dir);
    let line = api.wait_for("listening on http://");
    let url = format!("http://{}", line.rsplit("http://").next().unwrap());
    (api, url)
}

fn scan(dir: &Path, target: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let spec = spec();
    let mut args = vec![
        "scan",
        "--spec",
        &spec,
        "--target",
        target,
        "--login",
        "alice=alice123",
        "--login",
        "bob=bob123",
        "--login",
        "admin=admin123",
        "--admin",
        "admin",
        "--allow-writes",
    ];
    args.extend_from_slice(extra);
    warden(dir, &args)
}

fn ids(report: &Value) -> BTreeSet<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn scan_finds_every_planted_flaw_and_nothing_once_fixed() {
    let dir = temp_dir("scan-demo");
    let (_api, url) = start(&dir, false);
    let (code, out, err) = scan(&dir, &url, &["--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let found = ids(&report);
    // The demo API's flaws, as its module documents them.
    for flaw in [
        "bola",                      // any caller reads any user or order
        "no-auth",                   // reads answer without credentials
        "mass-assignment",           // /register and PATCH /users/{id} keep `role`/`admin`
        "secret-in-response",        // password hashes
        "personal-data-in-response", // identity and card numbers
        "admin-operation",           // the admin delete checks nothing
        "user-enumeration",          // "no such user" vs "wrong password"
        "verbose-error",             // /search's stack trace
        "sql-injection",             // ... which is a SQL syntax error
        "undocumented-endpoint",     // GET /users and /echo
        "no-rate-limit",
        "security-headers",
    ] {
        assert!(found.contains(flaw), "{flaw} not found; found {found:?}");
    }
    let bola: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "bola")
        .collect();
    assert!(
        bola.iter().any(|f| f["operation"] == "GET /orders/{id}"),
        "{bola:?}"
    );
    // Evidence is the exchange that proves it, with the credential cut short and no password.
    let evidence = bola[0]["evidence"].to_string();
    assert!(
        evidence.contains("Bearer demo-") && !evidence.contains("alice123"),
        "{evidence}"
    );
    let enumeration = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "user-enumeration")
        .unwrap();
    assert!(!enumeration.to_string().contains("alice123"));
    assert!(report["findings"][0]["location"]["line"].is_u64());

    let (_fixed, fixed_url) = start(&dir, true);
    let (code, out, err) = scan(&dir, &fixed_url, &["--format", "json", "--fail-on", "info"]);
    assert_eq!(code, Some(0), "fixed API must scan clean: {out}\n{err}");
    let clean: Value = serde_json::from_str(&out).unwrap();
    assert!(ids(&clean).is_empty(), "{clean:#}");
    // It did look: as many checks ran, and a comparable number of requests went out.
    assert_eq!(clean["checks_run"], report["checks_run"]);
    assert!(
        clean["requests"].as_u64().unwrap() > 150,
        "{}",
        clean["requests"]
    );
}

#[test]
fn scan_writes_sarif_junit_and_html_and_fails_on_request() {
    let dir = temp_dir("scan-formats");
    let (_api, url) = start(&dir, false);
    let sarif_file = dir.join("scan.sarif");
    let (code, out, err) = scan(
        &dir,
        &url,
        &[
            "--format",
            "sarif",
            "--output",
            sarif_file.to_str().unwrap(),
            "--fail-on",
            "high",
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--fail-on"), "{err}");
    assert!(
        out.contains("CRITICAL") && out.contains("finding(s):"),
        "the terminal gets the summary: {out}"
    );
    let sarif: Value =
        serde_json::from_str(&std::fs::read_to_string(&sarif_file).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let results = run["results"].as_array().unwrap();
    assert!(results.len() >= 12);
    for r in results {
        let index = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index], r["ruleId"].as_str().unwrap());
        assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
        let loc = &r["locations"][0]["physicalLocation"];
        assert!(loc["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("demo-openapi.yaml"));
    }
    assert!(results.iter().any(|r| r["ruleId"] == "bola"
        && r["locations"][0]["physicalLocation"]["region"]["startLine"].is_u64()));

    let (code, junit, _) = scan(&dir, &url, &["--format", "junit"]);
    assert_eq!(code, Some(0));
    assert!(junit.starts_with("<?xml"), "{junit}");
    assert!(
        junit.contains("<testcase classname=\"API1\" name=\"bola: "),
        "{junit}"
    );
    assert!(junit.contains("<failure type=\"high\""), "{junit}");
    assert_eq!(junit.matches("<testcase").count(), junit_tests(&junit));

    let (code, html, _) = scan(&dir, &url, &["--format", "html"]);
    assert_eq!(code, Some(0));
    assert!(
        html.starts_with("<!doctype html>") && html.contains("<td>critical</td>"),
        "{html}"
    );
    // Bodies shown as evidence are escaped, never live markup.
    assert!(!html.contains("<script"), "{html}");
}

fn junit_tests(xml: &str) -> usize {
    let at = xml.find("tests=\"").unwrap() + 7;
    xml[at..].split('"').next().unwrap().parse().unwrap()
}

#[test]
fn scan_refuses_bad_arguments_clearly() {
    let dir = temp_dir("scan-args");
    let spec = spec();
    let (code, _, err) = warden(
        &dir,
        &[
            "scan",
            "--spec",
            &spec,
            "--target",
            "http://127.0.0.1:9",
            "--login",
            "alice",
        ],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("--login alice: expected NAME=VALUE"), "{err}");
    let (code, _, err) = warden(
        &dir,
        &[
            "scan",
            "--spec",
            "/nonexistent.yaml",
            "--target",
            "http://127.0.0.1:9",
        ],
    );
    assert_eq!(code, Some(2));
    assert!(
        err.contains("/nonexistent.yaml") && err.contains("cannot read"),
        "{err}"
    );
    let (code, _, err) = warden(&dir, &["scan", "--spec", &spec, "--target", "ftp://x"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("http:// or https://"), "{err}");
    // A target that does not answer is an error, not a clean report.
    let (code, out, err) = warden(
        &dir,
        &["scan", "--spec", &spec, "--target", "http://127.0.0.1:9"],
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(err.contains("the target does not answer"), "{err}");
    // A login that fails is named, not ignored.
    let (_api, url) = start(&dir, false);
    let (code, _, err) = warden(
        &dir,
        &[
            "scan",
            "--spec",
            &spec,
            "--target",
            &url,
            "--login",
            "alice=wrong",
        ],
    );
    assert_eq!(code, Some(2));
    assert!(
        err.contains("login as alice") && err.contains("401"),
        "{err}"
    );
    assert!(
        !err.contains("wrong"),
        "the password is not repeated: {err}"
    );
}

/// The product's claim in one test: the naive demo API, behind Warden with the demo's config,
/// scans clean; every flaw the first test finds is stopped at the gateway.
#[test]
fn scan_through_the_demo_gateway_finds_nothing() {
    let dir = temp_dir("scan-gateway");
    let (_demo, gw) = start_demo(&dir);
    let (code, out, err) = scan(&dir, &format!("http://{gw}"), &["--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert!(ids(&report).is_empty(), "{report:#}");
    assert!(report["requests"].as_u64().unwrap() > 150);
}
