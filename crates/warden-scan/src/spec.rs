//! What the scanner needs from a spec: each operation with its parameters, body and response
//! schemas resolved, whether it wants credentials, whether it looks like an admin or login
//! operation, and a valid example value for anything it must send.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use warden_openapi::load::{escape, Loader};

const METHODS: [&str; 7] = ["get", "head", "options", "post", "put", "patch", "delete"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    Path,
    Query,
    Header,
}

#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub place: In,
    pub required: bool,
    pub schema: Value,
}

impl Param {
    pub fn is_integer(&self) -> bool {
        matches!(
            self.schema.get("type").and_then(Value::as_str),
            Some("integer" | "number")
        )
    }
    pub fn is_string(&self) -> bool {
        matches!(
            self.schema.get("type").and_then(Value::as_str),
            None | Some("string")
        ) && self.schema.get("enum").is_none()
    }
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub method: http::Method,
    /// As the spec writes it: `/users/{id}`.
    pub path: String,
    pub id: String,
    /// JSON pointer of the operation in the bundled document, for file:line in reports.
    pub pointer: String,
    pub params: Vec<Param>,
    /// The JSON request body's schema (fully resolved), if the operation takes one.
    pub body: Option<Value>,
    /// Whether the spec asks for credentials (a non-empty security requirement).
    pub secured: bool,
    /// Roles or scopes the spec reserves this operation for.
    pub roles: Vec<String>,
    pub login: bool,
    /// Resolved JSON schemas of the 2xx answers.
    pub responses: Vec<Value>,
}

impl Operation {
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
    pub fn safe(&self) -> bool {
        matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS")
    }
    /// Meant for administrators only: the spec says so by role or scope, or the path does.
    pub fn admin(&self) -> bool {
        self.roles
            .iter()
            .any(|r| r.to_ascii_lowercase().contains("admin"))
            || self
                .path
                .split('/')
                .any(|s| s.eq_ignore_ascii_case("admin") || s.eq_ignore_ascii_case("internal"))
    }
    pub fn path_params(&self) -> impl Iterator<Item = &Param> {
        self.params.iter().filter(|p| p.place == In::Path)
    }
}

pub struct Api {
    pub file: PathBuf,
    pub loader: Loader,
    pub ops: Vec<Operation>,
    /// The path of the first server URL (`/api/v2`), joined in front of every path.
    pub base_path: String,
    /// The header an `apiKey` scheme names, if the spec has one.
    pub api_key_header: Option<String>,
}

impl Api {
    pub fn load(path: &Path) -> Result<Api, warden_openapi::SpecError> {
        let (loader, doc) = Loader::load(path)?;
        let mut ops = Vec::new();
        let top_security = doc.get("security").cloned();
        if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
            for (p, item) in paths {
                let item = warden_openapi::resolve(&doc, item);
                let shared = params_of(&doc, item.get("parameters"));
                for m in METHODS {
                    let Some(op) = item.get(m) else { continue };
                    let mut params = shared.clone();
                    for q in params_of(&doc, op.get("parameters")) {
                        params.retain(|x| !(x.name == q.name && x.place == q.place));
                        params.push(q);
                    }
                    let security = op.get("security").or(top_security.as_ref());
                    let secured = security.and_then(Value::as_array).is_some_and(|reqs| {
                        !reqs.is_empty()
                            && reqs
                                .iter()
                                .all(|r| r.as_object().is_some_and(|o| !o.is_empty()))
                    });
                    let mut roles: Vec<String> = security
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_object)
                        .flat_map(|o| o.values())
                        .filter_map(Value::as_array)
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect();
                    let ext = op.get("x-warden");
                    for key in ["roles", "scopes"] {
                        roles.extend(
                            ext.and_then(|x| x.get(key))
                                .and_then(Value::as_array)
                                .into_iter()
                                .flatten()
                                .filter_map(Value::as_str)
                                .map(str::to_owned),
                        );
                    }
                    let body = op
                        .get("requestBody")
                        .map(|b| warden_openapi::resolve(&doc, b))
                        .and_then(|b| b.get("content"))
                        .and_then(Value::as_object)
                        .and_then(|c| c.iter().find(|(k, _)| k.contains("json")))
                        .and_then(|(_, media)| media.get("schema"))
                        .map(|s| deep_resolve(&doc, s));
                    let id = op
                        .get("operationId")
                        .and_then(Value::as_str)
                        .map_or_else(|| format!("{m} {p}"), str::to_owned);
                    let login = ext.and_then(|x| x.get("login")).and_then(Value::as_bool)
                        == Some(true)
                        || (m == "post"
                            && ["login", "signin", "sign-in", "token", "auth"]
                                .iter()
                                .any(|w| p.to_ascii_lowercase().ends_with(w))
                            && body.as_ref().is_some_and(|b| password_field(b).is_some()));
                    let responses = op
                        .get("responses")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                        .filter(|(code, _)| code.starts_with('2'))
                        .filter_map(|(_, r)| {
                            let r = warden_openapi::resolve(&doc, r);
                            let content = r.get("content")?.as_object()?;
                            let (_, media) = content.iter().find(|(k, _)| k.contains("json"))?;
                            Some(deep_resolve(&doc, media.get("schema")?))
                        })
                        .collect();
                    ops.push(Operation {
                        method: m.to_ascii_uppercase().parse().expect("known methods parse"),
                        path: p.clone(),
                        id,
                        pointer: format!("/paths/{}/{m}", escape(p)),
                        params,
                        body,
                        secured,
                        roles,
                        login,
                        responses,
                    });
                }
            }
        }
        let base_path = doc
            .pointer("/servers/0/url")
            .and_then(Value::as_str)
            .map(|u| {
                let rest = u.split_once("://").map_or(u, |(_, r)| r);
                let path = if u.contains("://") {
                    rest.find('/').map_or("", |i| &rest[i..])
                } else {
                    rest
                };
                path.trim_end_matches('/').to_string()
            })
            .unwrap_or_default();
        let api_key_header = doc
            .pointer("/components/securitySchemes")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(_, s)| warden_openapi::resolve(&doc, s))
            .find(|s| {
                s.get("type").and_then(Value::as_str) == Some("apiKey")
                    && s.get("in").and_then(Value::as_str) == Some("header")
            })
            .and_then(|s| s.get("name").and_then(Value::as_str))
            .map(str::to_owned);
        Ok(Api {
            file: path.to_path_buf(),
            loader,
            ops,
            base_path,
            api_key_header,
        })
    }

    /// The file and line an operation was written at.
    pub fn location(&self, op: &Operation) -> (PathBuf, Option<usize>) {
        let (file, _, line) = self.loader.origin(&op.pointer);
        (file, line)
    }

    pub fn login(&self) -> Option<&Operation> {
        self.ops.iter().find(|o| o.login)
    }
}

fn params_of(doc: &Value, list: Option<&Value>) -> Vec<Param> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| warden_openapi::resolve(doc, p))
        .filter_map(|p| {
            let place = match p.get("in")?.as_str()? {
                "path" => In::Path,
                "query" => In::Query,
                "header" => In::Header,
                _ => return None,
            };
            Some(Param {
                name: p.get("name")?.as_str()?.to_string(),
                place,
                required: place == In::Path
                    || p.get("required").and_then(Value::as_bool) == Some(true),
                schema: p
                    .get("schema")
                    .map(|s| deep_resolve(doc, s))
                    .unwrap_or_else(|| json!({"type": "string"})),
            })
        })
        .collect()
}

/// A schema with every `$ref` replaced by its target, to a bounded depth (specs may recurse)
/// and a bounded size (a recursive schema referenced from many places would otherwise grow
/// exponentially); beyond either bound a schema becomes `{}`, which accepts anything.
pub fn deep_resolve(doc: &Value, node: &Value) -> Value {
    let mut budget = 20_000usize;
    resolve_bounded(doc, node, 0, &mut budget)
}

fn resolve_bounded(doc: &Value, node: &Value, depth: usize, budget: &mut usize) -> Value {
    let node = warden_openapi::resolve(doc, node);
    if depth > 8 || *budget == 0 {
        return json!({});
    }
    *budget -= 1;
    match node {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), resolve_bounded(doc, v, depth + 1, budget)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|v| resolve_bounded(doc, v, depth + 1, budget))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The properties a schema declares, through `allOf`/`anyOf`/`oneOf`.
pub fn properties(schema: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(p) = schema.get("properties").and_then(Value::as_object) {
        out.extend(p.clone());
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for sub in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.extend(properties(sub));
        }
    }
    out
}

pub fn password_field(schema: &Value) -> Option<String> {
    properties(schema)
        .keys()
        .find(|k| k.to_ascii_lowercase().contains("pass"))
        .cloned()
}

pub fn username_field(schema: &Value) -> Option<String> {
    let props = properties(schema);
    ["username", "user", "login", "email", "name"]
        .iter()
        .find_map(|w| props.keys().find(|k| k.to_ascii_lowercase() == *w))
        .or_else(|| {
            props
                .keys()
                .find(|k| k.to_ascii_lowercase().contains("user"))
        })
        .cloned()
}

/// A value the schema accepts, preferring what the spec itself offers (example, default, enum).
/// `tag` makes generated strings distinctive, so that the scanner can recognise them later.
pub fn example(schema: &Value, tag: &str) -> Value {
    for key in ["example", "default"] {
        if let Some(v) = schema.get(key) {
            return v.clone();
        }
    }
    if let Some(v) = schema
        .get("examples")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return v.clone();
    }
    if let Some(v) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return v.clone();
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        if let Some(subs) = schema.get(key).and_then(Value::as_array) {
            if key == "allOf" {
                let mut merged = Map::new();
                for s in subs {
                    if let Value::Object(m) = example(s, tag) {
                        merged.extend(m);
                    }
                }
                return Value::Object(merged);
            }
            if let Some(first) = subs.first() {
                return example(first, tag);
            }
        }
    }
    let ty = match warden_openapi::primary_type(schema) {
        Some(t) => t,
        None if schema.get("properties").is_some() => "object",
        None => "string",
    };
    match ty {
        "integer" => json!(schema
            .get("minimum")
            .and_then(Value::as_i64)
            .map_or(1, |m| m.max(1))),
        "number" => json!(schema
            .get("minimum")
            .and_then(Value::as_f64)
            .map_or(1.0, |m| m.max(1.0))),
        "boolean" => json!(false),
        "array" => json!([example(schema.get("items").unwrap_or(&json!({})), tag)]),
        "object" => {
            let mut out = Map::new();
            for (k, s) in properties(schema) {
                if s.get("readOnly").and_then(Value::as_bool) == Some(true) {
                    continue;
                }
                out.insert(k, example(&s, tag));
            }
            Value::Object(out)
        }
        _ => json!(string_example(schema, tag)),
    }
}

fn string_example(schema: &Value, tag: &str) -> String {
    let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = schema
        .get("maxLength")
        .and_then(Value::as_u64)
        .map_or(64, |m| m as usize);
    let mut s = match schema.get("format").and_then(Value::as_str) {
        Some("email") => format!("{tag}@example.com"),
        Some("uri" | "url") => "https://example.com/".to_string(),
        Some("uuid") => "123e4567-e89b-42d3-a456-426614174000".to_string(),
        Some("date") => "2024-01-31".to_string(),
        Some("date-time") => "2024-01-31T12:00:00Z".to_string(),
        Some("ipv4") => "192.0.2.10".to_string(),
        Some("password") => format!("{tag}-Passw0rd!"),
        _ => tag.to_string(),
    };
    while s.len() < min {
        s.push('x');
    }
    s.truncate(max.max(1));
    s
}
