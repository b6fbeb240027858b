//! Schemas, both ways.
//!
//! Values are checked against their JSON Schema constraints by the `jsonschema` crate, compiled
//! once per schema (OpenAPI 3.0 keywords translated to 2020-12 first). What JSON Schema does not
//! say by default, that a property the schema does not name is unwelcome, is decided by our own
//! walk (`declared`), which follows `$ref`, `allOf`, `anyOf` and `oneOf` and collects every
//! property any of them names: in a request an undeclared or `readOnly` property is a violation
//! (mass assignment), in a response an undeclared or `writeOnly` one is removed (excessive data
//! exposure). Adding `unevaluatedProperties: false` to the schemas instead would report the
//! properties of a failing `allOf` member as undeclared, which misleads the client.

use serde_json::{json, Map, Value};

use crate::load::{at, decode_fragment, BUNDLED};
use crate::Violation;

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

/// `.name` for a tame property name or `[3]` for an index; anything else is not repeated back to
/// the client (it came from the request).
pub(crate) fn segment(name: &str) -> String {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        format!("[{name}]")
    } else if !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'$')
    {
        format!(".{name}")
    } else {
        ".<property>".to_string()
    }
}

/// Which way a value travels: what is unwelcome differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Undeclared and `readOnly` properties are reported; the value is left as it is.
    Request,
    /// Undeclared and `writeOnly` properties are removed, and reported.
    Response,
}

/// Walks `value` along `schema` (see the module doc). Returns (location, rule) for each
/// property that should not be there; never the values.
pub(crate) fn declared(
    doc: &Value,
    schema: &Value,
    value: &mut Value,
    base: &str,
    dir: Direction,
) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut loc = base.to_string();
    filter(doc, schema, value, &mut loc, &mut found, dir, 0);
    found
}

fn resolve<'d>(doc: &'d Value, mut schema: &'d Value) -> &'d Value {
    for _ in 0..MAX_DEPTH {
        match schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|p| at(doc, &decode_fragment(p)))
        {
            Some(t) => schema = t,
            None => return schema,
        }
    }
    schema
}

/// What an object schema (with its compositions) says about properties.
#[derive(Default)]
struct Shape<'d> {
    declared: Vec<(&'d str, &'d Value)>,
    /// Some schema names properties: only then are others undeclared.
    named: bool,
    /// `additionalProperties` other than `false` somewhere: extras are allowed (and this is
    /// their schema, when one is given).
    extra: Option<&'d Value>,
    open: bool,
}

fn shape<'d>(doc: &'d Value, schema: &'d Value, out: &mut Shape<'d>, depth: usize) {
    if depth > MAX_DEPTH {
        out.open = true;
        return;
    }
    let schema = resolve(doc, schema);
    if let Some(Value::Object(props)) = schema.get("properties") {
        out.named = true;
        for (k, v) in props {
            out.declared.push((k.as_str(), v));
        }
    }
    match schema.get("additionalProperties") {
        Some(Value::Bool(false)) | None => {}
        Some(Value::Bool(true)) => out.open = true,
        Some(s) => {
            out.extra = Some(s);
        }
    }
    if schema.get("patternProperties").is_some() {
        out.open = true;
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(items)) = schema.get(key) {
            for s in items {
                shape(doc, s, out, depth + 1);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
/// Whether a schema (through `$ref` and `allOf`) carries `flag: true`.
fn flagged(doc: &Value, schema: &Value, flag: &str, depth: usize) -> bool {
    let schema = resolve(doc, schema);
    if schema.get(flag) == Some(&Value::Bool(true)) {
        return true;
    }
    depth < MAX_DEPTH
        && schema
            .get("allOf")
            .and_then(Value::as_array)
            .is_some_and(|all| all.iter().any(|s| flagged(doc, s, flag, depth + 1)))
}

fn filter(
    doc: &Value,
    schema: &Value,
    value: &mut Value,
    loc: &mut String,
    found: &mut Vec<Violation>,
    dir: Direction,
    depth: usize,
) {
    if depth > MAX_DEPTH || (dir == Direction::Request && found.len() >= crate::MAX_VIOLATIONS) {
        return;
    }
    match value {
        Value::Object(map) => {
            let mut s = Shape::default();
            shape(doc, schema, &mut s, 0);
            if !s.named && s.extra.is_none() {
                // A free-form object: nothing to hold it against.
                return;
            }
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let len = loc.len();
                loc.push_str(&segment(&k));
                // A property several members of a composition declare (`allOf: [Base, Extra]`
                // both naming `payment`) is held against all of their schemas at once.
                let mut subs = s.declared.iter().filter(|(n, _)| *n == k).map(|(_, v)| *v);
                let merged;
                let declared = match (subs.next(), subs.next()) {
                    (Some(one), None) => Some(one),
                    (Some(a), Some(b)) => {
                        let mut all = vec![a.clone(), b.clone()];
                        all.extend(subs.cloned());
                        merged = json!({ "allOf": all });
                        Some(&merged)
                    }
                    _ => None,
                };
                let hidden = match dir {
                    Direction::Request => "readOnly",
                    Direction::Response => "writeOnly",
                };
                let mut unwelcome = |rule: &'static str| {
                    if dir == Direction::Response {
                        map.remove(&k);
                    }
                    found.push(Violation {
                        location: loc.clone(),
                        rule,
                    });
                };
                match declared {
                    Some(sub) if flagged(doc, sub, hidden, 0) => {
                        unwelcome(if dir == Direction::Request {
                            "read-only"
                        } else {
                            "write-only"
                        });
                    }
                    Some(sub) => {
                        if let Some(v) = map.get_mut(&k) {
                            filter(doc, sub, v, loc, found, dir, depth + 1);
                        }
                    }
                    None if s.open => {}
                    None => match s.extra {
                        Some(extra) => {
                            if let Some(v) = map.get_mut(&k) {
                                filter(doc, extra, v, loc, found, dir, depth + 1);
                            }
                        }
                        None => unwelcome("undeclared-property"),
                    },
                }
                loc.truncate(len);
            }
        }
        Value::Array(items) => {
            let schema = resolve(doc, schema);
            let item_schema = schema.get("items").or_else(|| {
                // A composition of array schemas: use the first that says what its items are.
                ["allOf", "anyOf", "oneOf"].iter().find_map(|k| {
                    schema
                        .get(*k)?
                        .as_array()?
                        .iter()
                        .find_map(|s| resolve(doc, s).get("items"))
                })
            });
            if let Some(item_schema) = item_schema {
                for (i, v) in items.iter_mut().enumerate() {
                    let len = loc.len();
                    loc.push_str(&format!("[{i}]"));
                    filter(doc, item_schema, v, loc, found, dir, depth + 1);
                    loc.truncate(len);
                }
            }
        }
        _ => {}
    }
}
