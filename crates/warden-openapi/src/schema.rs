//! Schemas, both ways.
//!
//! Values are checked against their JSON Schema constraints by the `jsonschema` crate, compiled
//! once per schema (OpenAPI 3.0 keywords translated to 2020-12 first). What JSON Schema does not
//! say by default, that a property the schema does not name is unwelcome, is decided by
//! `shape.rs`.

use serde_json::{json, Map, Value};

use crate::load::{at, decode_fragment, BUNDLED};
use crate::Violation;

pub(crate) use crate::shape::push_segment;

/// How deep `$ref` chains and schema nesting are followed before giving up (cycles, abuse).
const MAX_DEPTH: usize = 64;

/// Builds the self-contained request-side schema for `site` (a schema taken from `doc`).
pub(crate) fn request_schema(doc: &Value, site: &Value, v30: bool) -> Value {
    let mut root = Map::new();
    root.insert(
        "$schema".into(),
        "https://json-schema.org/draft/2020-12/schema".into(),
    );
    let t = Transform { doc, v30 };
    if let Some(schemas) = doc.pointer("/components/schemas") {
        let mut schemas = schemas.clone();
        if let Value::Object(m) = &mut schemas {
            for v in m.values_mut() {
                t.apply(v, 0);
            }
        }
        root.insert("components".into(), json!({ "schemas": schemas }));
    }
    if let Some(bundled) = doc.get(BUNDLED) {
        let mut bundled = bundled.clone();
        if let Value::Object(m) = &mut bundled {
            for v in m.values_mut() {
                t.apply(v, 0);
            }
        }
        root.insert(BUNDLED.into(), bundled);
    }
    let mut site = site.clone();
    t.apply(&mut site, 0);
    match site {
        Value::Object(m) => root.extend(m),
        Value::Bool(false) => {
            root.insert("not".into(), json!({}));
        }
        _ => {}
    }
    Value::Object(root)
}

struct Transform<'d> {
    doc: &'d Value,
    v30: bool,
}

impl Transform<'_> {
    fn apply(&self, node: &mut Value, depth: usize) {
        let Value::Object(map) = node else { return };
        if depth > MAX_DEPTH {
            return;
        }
        if self.v30 {
            translate_30(map);
        }
        bound_integer_format(map);
        // readOnly properties belong to responses: a request need not send them (and may not:
        // `Shape`'s walk refuses them).
        let mut read_only = Vec::new();
        if let Some(Value::Object(props)) = map.get_mut("properties") {
            for (name, sub) in props.iter_mut() {
                if self.flag(sub, "readOnly", 0) {
                    read_only.push(name.clone());
                }
                self.apply(sub, depth + 1);
            }
        }
        if !read_only.is_empty() {
            if let Some(Value::Array(req)) = map.get_mut("required") {
                req.retain(|r| r.as_str().is_none_or(|r| !read_only.iter().any(|n| n == r)));
            }
        }
        for key in ["patternProperties", "$defs", "definitions"] {
            if let Some(Value::Object(m)) = map.get_mut(key) {
                for sub in m.values_mut() {
                    self.apply(sub, depth + 1);
                }
            }
        }
        for key in [
            "additionalProperties",
            "items",
            "contains",
            "additionalItems",
        ] {
            if let Some(sub) = map.get_mut(key) {
                self.apply(sub, depth + 1);
            }
        }
        if let Some(Value::Array(items)) = map.get_mut("prefixItems") {
            for sub in items {
                self.apply(sub, depth + 1);
            }
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(Value::Array(items)) = map.get_mut(key) {
                for sub in items {
                    self.apply(sub, depth + 1);
                }
            }
        }
        for key in ["not", "if", "then", "else"] {
            if let Some(sub) = map.get_mut(key) {
                self.apply(sub, depth + 1);
            }
        }
    }

    fn target(&self, reference: &Value) -> Option<&Value> {
        let r = reference.as_str()?.strip_prefix('#')?;
        at(self.doc, &decode_fragment(r))
    }

    /// Whether a schema, or the one its `$ref` names, carries `flag: true`.
    fn flag(&self, schema: &Value, flag: &str, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        if schema.get(flag) == Some(&Value::Bool(true)) {
            return true;
        }
        match schema.get("$ref").and_then(|r| self.target(r)) {
            Some(t) => self.flag(t, flag, depth + 1),
            None => false,
        }
    }
}

/// OpenAPI 3.0's schema dialect in JSON Schema 2020-12 terms.
fn translate_30(map: &mut Map<String, Value>) {
    if map.remove("nullable") == Some(Value::Bool(true)) {
        match map.get_mut("type") {
            Some(Value::String(t)) => {
                let t = t.clone();
                map.insert("type".into(), json!([t, "null"]));
            }
            Some(Value::Array(ts)) if !ts.contains(&json!("null")) => ts.push(json!("null")),
            _ => {}
        }
        if let Some(Value::Array(e)) = map.get_mut("enum") {
            if !e.contains(&Value::Null) {
                e.push(Value::Null);
            }
        }
    }
    for (flag, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        match map.get(flag) {
            Some(Value::Bool(true)) => {
                if let Some(b) = map.remove(bound) {
                    map.insert(flag.into(), b);
                } else {
                    map.remove(flag);
                }
            }
            Some(Value::Bool(false)) => {
                map.remove(flag);
            }
            _ => {}
        }
    }
}

/// `format: int32`/`int64` are ranges; JSON Schema validators ignore them, so say them as bounds.
fn bound_integer_format(map: &mut Map<String, Value>) {
    let (lo, hi) = match map.get("format").and_then(Value::as_str) {
        Some("int32") => (json!(i32::MIN), json!(i32::MAX)),
        Some("int64") => (json!(i64::MIN), json!(i64::MAX)),
        _ => return,
    };
    map.entry("minimum").or_insert(lo);
    map.entry("maximum").or_insert(hi);
}

/// A compiled request-side validator.
pub struct Validator {
    inner: jsonschema::Validator,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Validator")
    }
}

impl Validator {
    pub(crate) fn compile(schema: &Value) -> Result<Validator, String> {
        let inner = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .with_pattern_options(jsonschema::PatternOptions::regex())
            .build(schema)
            .map_err(|e| e.to_string())?;
        Ok(Validator { inner })
    }

    /// Appends what is wrong with `value` to `out`, located under `base` (`body`, `query.limit`).
    pub fn check(&self, value: &Value, base: &str, out: &mut Vec<Violation>) {
        // Most calls are valid: `is_valid` stops at the first failure and builds no errors,
        // where `iter_errors` collects each keyword's (a third of the cost on a valid body).
        if self.inner.is_valid(value) {
            return;
        }
        for e in self.inner.iter_errors(value).take(crate::MAX_VIOLATIONS) {
            let mut location = base.to_string();
            for seg in e.instance_path().iter() {
                location.push_str(&segment(&seg.to_string()));
            }
            use jsonschema::error::ValidationErrorKind as K;
            match e.kind() {
                K::UnevaluatedProperties { unexpected }
                | K::AdditionalProperties { unexpected } => {
                    for name in unexpected {
                        out.push(Violation {
                            location: format!("{location}{}", segment(name)),
                            rule: "undeclared-property",
                        });
                    }
                }
                K::FalseSchema => out.push(Violation {
                    location,
                    rule: "read-only",
                }),
                K::Required { property } => out.push(Violation {
                    location: format!("{location}{}", segment(property.as_str().unwrap_or("?"))),
                    rule: "required",
                }),
                kind => out.push(Violation {
                    location,
                    rule: keyword(kind.keyword()),
                }),
            }
        }
    }
}

/// The keyword as a `'static` name (violations are listed, counted and compared by it).
fn keyword(k: &str) -> &'static str {
    const KNOWN: [&str; 30] = [
        "type",
        "enum",
        "const",
        "format",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
        "uniqueItems",
        "contains",
        "minProperties",
        "maxProperties",
        "required",
        "propertyNames",
        "dependentRequired",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
        "if",
        "items",
        "prefixItems",
        "unevaluatedItems",
        "additionalItems",
    ];
    KNOWN.iter().find(|n| **n == k).copied().unwrap_or("schema")
}

/// `.name`, `[n]` or `.<property>` (see [`push_segment`]).
pub(crate) fn segment(name: &str) -> String {
    let mut s = String::new();
    push_segment(&mut s, name);
    s
}
