//! `warden lint`'s rules, each on a tiny spec that has the gap and on one that does not.

use warden_openapi::lint::{lint, Severity, RULES};

fn rules_found(spec: &str) -> Vec<&'static str> {
    let dir =
        std::env::temp_dir().join(format!("warden-lint-{}-{}", std::process::id(), fastrand()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("spec.yaml");
    std::fs::write(&file, spec).unwrap();
    let report = lint(&file).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    report.findings.iter().map(|f| f.rule).collect()
}

fn fastrand() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// A spec with no gaps: every rule stays silent on it.
const CLEAN: &str = "\
openapi: 3.1.0
info: {title: clean, version: '1'}
servers: [{url: 'https://api.example.com/v1'}]
security: [{bearer: []}]
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
  responses:
    Denied: {description: denied}
  schemas:
    Account:
      type: object
      additionalProperties: false
      properties:
        id: {type: string, format: uuid}
        name: {type: string, maxLength: 100}
        tags: {type: array, maxItems: 10, items: {type: string, enum: [a, b]}}
        balance: {type: integer, minimum: 0, maximum: 1000000}
        password: {type: string, maxLength: 128, writeOnly: true}
paths:
  /accounts/{accountId}:
    parameters:
      - {name: accountId, in: path, required: true, schema: {type: string, format: uuid}}
    put:
      requestBody:
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Account'}
      responses:
        '200': {description: ok}
        '401': {$ref: '#/components/responses/Denied'}
        '403': {$ref: '#/components/responses/Denied'}
        '429': {description: slow down}
";

fn with(from: &str, to: &str) -> String {
    assert!(CLEAN.contains(from), "{from}");
    CLEAN.replace(from, to)
}

fn assert_rule(rule: &str, flawed: &str) {
    assert!(
        !rules_found(CLEAN).contains(&rule),
        "{rule} fires on the clean spec"
    );
    let found = rules_found(flawed);
    assert!(found.contains(&rule), "{rule} missing from {found:?}");
}

#[test]
fn the_clean_spec_is_clean() {
    assert_eq!(rules_found(CLEAN), Vec::<&str>::new());
}

#[test]
fn no_security_schemes() {
    assert_rule(
        "no-security-schemes",
        &with(
            "  securitySchemes:\n    bearer: {type: http, scheme: bearer}\n",
            "",
        ),
    );
}

#[test]
fn operation_without_security_and_public_operations() {
    let spec = with("security: [{bearer: []}]\n", "");
    assert_rule("operation-without-security", &spec);
    let public = with("    put:\n", "    put:\n      security: []\n");
    let found = rules_found(&public);
    assert!(
        found.contains(&"public-operation") && !found.contains(&"operation-without-security"),
        "{found:?}"
    );
}

#[test]
fn plain_http_server() {
    assert_rule(
        "plain-http-server",
        &with("https://api.example.com/v1", "http://api.example.com/v1"),
    );
}

#[test]
fn unbounded_strings_arrays_and_numbers() {
    assert_rule(
        "string-unbounded",
        &with(
            "name: {type: string, maxLength: 100}",
            "name: {type: string}",
        ),
    );
    assert_rule(
        "array-unbounded",
        &with("tags: {type: array, maxItems: 10,", "tags: {type: array,"),
    );
    assert_rule(
        "number-unbounded",
        &with(
            "balance: {type: integer, minimum: 0, maximum: 1000000}",
            "balance: {type: integer}",
        ),
    );
}

#[test]
fn open_objects() {
    assert_rule(
        "object-open",
        &with("      additionalProperties: false\n", ""),
    );
}

#[test]
fn sensitive_properties_not_write_only() {
    assert_rule(
        "sensitive-not-write-only",
        &with(
            "password: {type: string, maxLength: 128, writeOnly: true}",
            "password: {type: string, maxLength: 128}",
        ),
    );
    assert_rule(
        "sensitive-not-write-only",
        &with(
            "        password:",
            "        api_key: {type: string, maxLength: 64}\n        password:",
        ),
    );
    // An issued token the API returns on purpose says so with readOnly.
    assert!(!rules_found(&with(
        "        password:",
        "        access_token: {type: string, maxLength: 64, readOnly: true}\n        password:"
    ))
    .contains(&"sensitive-not-write-only"));
}

#[test]
fn missing_auth_and_rate_limit_answers() {
    assert_rule(
        "missing-auth-responses",
        &with(
            "        '403': {$ref: '#/components/responses/Denied'}\n",
            "",
        ),
    );
    assert_rule(
        "missing-429",
        &with("        '429': {description: slow down}\n", ""),
    );
}

#[test]
fn sequential_ids() {
    assert_rule("sequential-id", &with("{name: accountId, in: path, required: true, schema: {type: string, format: uuid}}", "{name: accountId, in: path, required: true, schema: {type: integer, minimum: 1, maximum: 99999999}}"));
}

#[test]
fn every_rule_is_tested_and_findings_point_at_lines() {
    let tested = [
        "no-security-schemes",
        "operation-without-security",
        "public-operation",
        "plain-http-server",
        "string-unbounded",
        "array-unbounded",
        "number-unbounded",
        "object-open",
        "sensitive-not-write-only",
        "missing-auth-responses",
        "missing-429",
        "sequential-id",
    ];
    for r in RULES {
        assert!(tested.contains(&r.id), "{} has no test", r.id);
    }
    let dir = std::env::temp_dir().join(format!("warden-lint-lines-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("spec.yaml");
    std::fs::write(
        &file,
        with(
            "name: {type: string, maxLength: 100}",
            "name: {type: string}",
        ),
    )
    .unwrap();
    let report = lint(&file).unwrap();
    let f = &report.findings[0];
    assert_eq!((f.rule, f.line), ("string-unbounded", Some(16)));
    assert_eq!(f.severity, Severity::Medium);
    assert_eq!(report.score, 97);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn findings_in_other_files_point_there() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let report = lint(&dir.join("shop-3.1.yaml")).unwrap();
    let f = report
        .findings
        .iter()
        .find(|f| f.rule == "string-unbounded" && f.file.ends_with("common.yaml"))
        .expect("Problem.title in common.yaml");
    assert!(f.line.is_some(), "{f:?}");
}
