//! `warden lint`: a static security audit of a spec, reported like a compiler (rule, severity,
//! file:line, what is wrong, how to fix it), with a score out of 100. Each rule is a gap an
//! attacker uses: an operation anyone may call, an input with no bound, a secret that comes back
//! in responses, ids that can be counted.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::load::{escape, Loader, SpecError, BUNDLED};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        [
            Severity::Info,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .find(|v| v.label() == s)
    }

    /// Points a finding takes off the score.
    fn weight(self) -> u32 {
        match self {
            Severity::Info => 0,
            Severity::Low => 1,
            Severity::Medium => 3,
            Severity::High => 8,
            Severity::Critical => 15,
        }
    }
}

/// One rule: its id, severity and how to fix what it finds.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    pub fix: &'static str,
}

pub const RULES: [Rule; 12] = [
    Rule { id: "no-security-schemes", severity: Severity::High, fix: "declare how callers authenticate under components.securitySchemes (OAuth2, bearer JWT, API key)" },
    Rule { id: "operation-without-security", severity: Severity::High, fix: "add a `security` requirement to the operation (or at the top level); `security: []` states a public operation on purpose" },
    Rule { id: "public-operation", severity: Severity::Info, fix: "confirm this operation is meant to be public (`security: []`)" },
    Rule { id: "plain-http-server", severity: Severity::High, fix: "serve the API over https:// only" },
    Rule { id: "string-unbounded", severity: Severity::Medium, fix: "give the string a maxLength, a pattern, an enum or a format" },
    Rule { id: "array-unbounded", severity: Severity::Medium, fix: "give the array a maxItems" },
    Rule { id: "number-unbounded", severity: Severity::Low, fix: "give the number a minimum and a maximum (or an integer format)" },
    Rule { id: "object-open", severity: Severity::Medium, fix: "add `additionalProperties: false` so undeclared fields (`admin`, `role`) are refused: mass assignment" },
    Rule { id: "sensitive-not-write-only", severity: Severity::High, fix: "mark the property `writeOnly: true` so it is accepted in requests and never returned" },
    Rule { id: "missing-auth-responses", severity: Severity::Low, fix: "declare the 401 and 403 answers a secured operation gives" },
    Rule { id: "missing-429", severity: Severity::Low, fix: "declare the 429 answer (rate limiting) so clients can plan for it" },
    Rule { id: "sequential-id", severity: Severity::Medium, fix: "use unguessable ids (UUID, `format: uuid`) and check ownership of every object: integers can be counted" },
];

fn rule(id: &str) -> Rule {
    *RULES.iter().find(|r| r.id == id).expect("a listed rule")
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub file: PathBuf,
    pub line: Option<usize>,
    pub pointer: String,
    pub message: String,
    pub fix: &'static str,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(
            f,
            ": {} [{}] {}\n    fix: {}",
            self.severity.label(),
            self.rule,
            self.message,
            self.fix
        )
    }
}

#[derive(Debug)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// 100 minus the findings' weights (each rule counts at most three times its weight).
    pub score: u32,
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Property names that hold secrets or identity numbers.
fn sensitive(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace(['-', '_'], "");
    [
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "privatekey",
        "pin",
        "cvv",
        "cvc",
        "ssn",
        "socialsecurity",
        "nationalid",
        "idcard",
        "idnumber",
        "passport",
        "taxid",
        "cardnumber",
    ]
    .iter()
    .any(|s| n == *s || n.ends_with(s) || (s.len() > 4 && n.contains(s)))
        && !n.ends_with("type")
        && !n.ends_with("expiresat")
}

pub fn lint(path: &Path) -> Result<Report, SpecError> {
    let (loader, doc) = Loader::load(path)?;
    let mut l = Linter {
        loader: &loader,
        doc: &doc,
        findings: Vec::new(),
        seen: HashSet::new(),
    };
    l.run();
    let mut findings = l.findings;
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.file.cmp(&b.file))
            .then(a.line.cmp(&b.line))
    });
    let mut lost = 0u32;
    for r in RULES {
        let n = findings.iter().filter(|f| f.rule == r.id).count() as u32;
        lost += (n * r.severity.weight()).min(3 * r.severity.weight());
    }
    Ok(Report {
        findings,
        score: 100u32.saturating_sub(lost),
    })
}

struct Linter<'a> {
    loader: &'a Loader,
    doc: &'a Value,
    findings: Vec<Finding>,
    /// Schemas already looked at (by pointer): a shared component is reported once.
    seen: HashSet<String>,
}

impl<'a> Linter<'a> {
    fn report(&mut self, id: &str, pointer: &str, message: String) {
        let r = rule(id);
        let (file, pointer, line) = self.loader.origin(pointer);
        self.findings.push(Finding {
            rule: r.id,
            severity: r.severity,
            file,
            line,
            pointer,
            message,
            fix: r.fix,
        });
    }

    fn run(&mut self) {
        let doc = self.doc;
        let schemes = doc
            .pointer("/components/securitySchemes")
            .and_then(Value::as_object);
        if schemes.is_none_or(|s| s.is_empty()) {
            self.report(
                "no-security-schemes",
                "/components",
                "the spec declares no security scheme: nothing says how callers authenticate"
                    .into(),
            );
        }
        for (i, s) in doc
            .get("servers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(url) = s.get("url").and_then(Value::as_str) {
                if url.starts_with("http://") {
                    self.report(
                        "plain-http-server",
                        &format!("/servers/{i}/url"),
                        format!(
                            "server `{url}` is plain HTTP: credentials and data travel in clear"
                        ),
                    );
                }
            }
        }
        let root_security = doc.get("security");
        for (p, item) in doc
            .get("paths")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let item_ptr = format!("/paths/{}", escape(p));
            for m in METHODS {
                let Some(op) = item.get(m) else { continue };
                let ptr = format!("{item_ptr}/{m}");
                let name = format!("{} {p}", m.to_ascii_uppercase());
                self.operation(&name, op, &ptr, root_security);
                for (i, param) in item
                    .get("parameters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    self.parameter(&format!("{item_ptr}/parameters/{i}"), param);
                }
                for (i, param) in op
                    .get("parameters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    self.parameter(&format!("{ptr}/parameters/{i}"), param);
                }
            }
        }
        if let Some(Value::Object(schemas)) = doc.pointer("/components/schemas") {
            for (name, s) in schemas {
                self.schema(s, &format!("/components/schemas/{}", escape(name)), name);
            }
        }
        if let Some(Value::Object(slots)) = doc.get(BUNDLED) {
            for (n, s) in slots {
                // Schemas from other files are reached through their slots.
                if s.get("type").is_some()
                    || s.get("properties").is_some()
                    || s.get("allOf").is_some()
                {
                    self.schema(s, &format!("/{BUNDLED}/{n}"), "");
                }
            }
        }
    }

    fn operation(
        &mut self,
        name: &str,
        op: &'a Value,
        ptr: &str,
        root_security: Option<&'a Value>,
    ) {
        let own = op.get("security");
        let security = own.or(root_security).and_then(Value::as_array);
        let secured = security.is_some_and(|alts| {
            !alts.is_empty()
                && alts
                    .iter()
                    .all(|a| a.as_object().is_some_and(|m| !m.is_empty()))
        });
        match (security, own) {
            (Some(alts), Some(_)) if alts.is_empty() => {
                self.report(
                    "public-operation",
                    &format!("{ptr}/security"),
                    format!("{name} is public (`security: []`)"),
                );
            }
            _ if !secured => {
                self.report(
                    "operation-without-security",
                    ptr,
                    format!("{name} has no security requirement: anyone may call it"),
                );
            }
            _ => {}
        }
        let responses = op.get("responses").and_then(Value::as_object);
        let has = |code: &str| {
            responses.is_some_and(|r| {
                r.contains_key(code) || r.contains_key(&format!("{}XX", &code[..1]))
            })
        };
        if secured && !(has("401") && has("403")) {
            let missing: Vec<&str> = ["401", "403"].into_iter().filter(|c| !has(c)).collect();
            self.report(
                "missing-auth-responses",
                &format!("{ptr}/responses"),
                format!(
                    "{name} is secured but declares no {} answer",
                    missing.join(" or ")
                ),
            );
        }
        if !has("429") {
            self.report(
                "missing-429",
                &format!("{ptr}/responses"),
                format!("{name} declares no 429 (too many requests) answer"),
            );
        }
        if let Some(body) = op
            .pointer("/requestBody/content")
            .and_then(Value::as_object)
        {
            for (media, m) in body {
                if let Some(s) = m.get("schema") {
                    self.schema(
                        s,
                        &format!("{ptr}/requestBody/content/{}/schema", escape(media)),
                        "",
                    );
                }
            }
        }
        for (code, r) in responses.into_iter().flatten() {
            for (media, m) in r
                .get("content")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                if let Some(s) = m.get("schema") {
                    self.schema(
                        s,
                        &format!(
                            "{ptr}/responses/{}/content/{}/schema",
                            escape(code),
                            escape(media)
                        ),
                        "",
                    );
                }
            }
        }
    }

    fn parameter(&mut self, ptr: &str, param: &'a Value) {
        let param = self.resolve(param);
        let Some(schema) = param.get("schema") else {
            return;
        };
        let name = param.get("name").and_then(Value::as_str).unwrap_or("");
        let schema_ptr = format!("{ptr}/schema");
        if !self.seen.insert(schema_ptr.clone()) {
            return;
        }
        let target = self.resolve(schema);
        let lname = name.to_ascii_lowercase();
        if param.get("in").and_then(Value::as_str) == Some("path")
            && target.get("type").and_then(Value::as_str) == Some("integer")
            && (lname == "id" || lname.ends_with("_id") || lname.ends_with("id"))
        {
            self.report("sequential-id", &schema_ptr, format!("path parameter `{name}` is an integer: ids that can be counted invite object-level probing"));
        }
        self.bounds(target, &schema_ptr, &format!("parameter `{name}`"));
    }

    fn resolve(&self, mut node: &'a Value) -> &'a Value {
        for _ in 0..32 {
            match node
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix('#'))
                .and_then(|p| self.doc.pointer(&crate::load::decode_fragment(p)))
            {
                Some(t) => node = t,
                None => break,
            }
        }
        node
    }

    /// Bounds on one schema node (no recursion).
    fn bounds(&mut self, s: &Value, ptr: &str, what: &str) {
        let bounded_by = |keys: &[&str]| keys.iter().any(|k| s.get(*k).is_some());
        match s.get("type").and_then(Value::as_str) {
            Some("string") if !bounded_by(&["maxLength", "pattern", "enum", "const", "format"]) => {
                self.report(
                    "string-unbounded",
                    ptr,
                    format!("{what}: a string of any length and content"),
                );
            }
            Some("array") if !bounded_by(&["maxItems"]) => {
                self.report(
                    "array-unbounded",
                    ptr,
                    format!("{what}: an array of any length"),
                );
            }
            Some("integer" | "number")
                if !(bounded_by(&["maximum", "exclusiveMaximum", "enum", "const"])
                    || matches!(
                        s.get("format").and_then(Value::as_str),
                        Some("int32" | "int8" | "int16")
                    )) =>
            {
                self.report(
                    "number-unbounded",
                    ptr,
                    format!("{what}: a number without an upper bound"),
                );
            }
            _ => {}
        }
    }

    fn schema(&mut self, s: &'a Value, ptr: &str, what: &str) {
        if s.get("$ref").is_some() || !self.seen.insert(ptr.to_string()) || ptr.len() > 2000 {
            return;
        }
        let label = if what.is_empty() {
            ptr.rsplit('/')
                .next()
                .unwrap_or("schema")
                .replace("~1", "/")
                .replace("~0", "~")
        } else {
            what.to_string()
        };
        self.bounds(s, ptr, &format!("`{label}`"));
        if let Some(Value::Object(props)) = s.get("properties") {
            if s.get("additionalProperties").is_none() && s.get("unevaluatedProperties").is_none() {
                self.report(
                    "object-open",
                    ptr,
                    format!("`{label}` accepts properties it does not declare"),
                );
            }
            for (k, v) in props {
                let sub = format!("{ptr}/properties/{}", escape(k));
                let target = self.resolve(v);
                // `readOnly` says the API returns it on purpose (an issued token); that is a
                // decision, not an oversight.
                let marked = |flag: &str| {
                    target.get(flag) == Some(&Value::Bool(true))
                        || v.get(flag) == Some(&Value::Bool(true))
                };
                if sensitive(k) && !marked("writeOnly") && !marked("readOnly") {
                    self.report("sensitive-not-write-only", &sub, format!("`{k}` looks like a secret or an identity number and may be returned in responses"));
                }
                self.schema(v, &sub, k);
            }
        }
        for key in ["items", "additionalProperties", "not"] {
            if let Some(sub) = s.get(key).filter(|v| v.is_object()) {
                self.schema(sub, &format!("{ptr}/{key}"), &format!("{label}.{key}"));
            }
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            for (i, sub) in s
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                self.schema(sub, &format!("{ptr}/{key}/{i}"), &label);
            }
        }
    }
}
