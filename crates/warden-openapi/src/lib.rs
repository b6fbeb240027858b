//! An API's OpenAPI 3.0 or 3.1 contract, compiled once at load into what the gateway enforces on
//! every call: which operations exist (everything else is refused), who may call each one
//! (`security`, `x-warden` roles and object rules), what a request may carry (parameters and JSON
//! bodies, strictly), and what a response may reveal (undeclared and `writeOnly` fields removed).
//!
//! Pure after load: no I/O, no clock. The gateway's `openapi` checks call into it.

pub mod lint;
pub mod load;
pub mod router;
pub mod rules;
pub mod schema;
pub mod shape;
pub mod strict_json;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use http::{HeaderMap, Method};
use serde_json::{Map, Value};

pub use load::SpecError;
use load::{escape, Loader};
use router::Template;
pub use rules::{Rule, Vars};
pub use schema::Validator;
use shape::{Direction, Shapes, Step};

/// At most this many violations are listed for one request (the rest adds nothing).
pub const MAX_VIOLATIONS: usize = 20;

pub use warden_policy::Violation;

/// Limits that hold for every JSON body, whatever the spec forgot to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    pub max_depth: usize,
    pub max_array_items: usize,
    pub max_string_chars: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        JsonLimits {
            max_depth: 32,
            max_array_items: 10_000,
            max_string_chars: 100_000,
        }
    }
}

/// Where a parameter travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    Path,
    Query,
    Header,
    Cookie,
}

impl In {
    fn label(self) -> &'static str {
        match self {
            In::Path => "path",
            In::Query => "query",
            In::Header => "header",
            In::Cookie => "cookie",
        }
    }
}

#[derive(Debug)]
pub struct Param {
    pub name: String,
    pub location: In,
    pub required: bool,
    /// The JSON type the raw text is read as (`integer`, `array`...), from the schema.
    kind: Kind,
    item_kind: Kind,
    /// Arrays in the query: `explode` (repeated `?a=1&a=2`, the default) or comma-separated.
    explode: bool,
    validator: Option<Validator>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Integer,
    Number,
    Boolean,
    Array,
    Other,
}

#[derive(Debug)]
pub struct Media {
    /// `application/json`, `application/*`, `*/*`.
    pub range: String,
    pub json: bool,
    pub validator: Option<Validator>,
    /// Its shape, for the walk over declared properties.
    shape: Option<usize>,
}

#[derive(Debug)]
pub struct RequestBody {
    pub required: bool,
    pub media: Vec<Media>,
}

/// A security requirement alternative: every scheme in it, with the scopes (or roles) it needs.
pub type Requirement = Vec<(String, Vec<String>)>;

#[derive(Debug)]
pub struct Operation {
    /// `operationId`, or `GET /users/{id}` when the spec gives none.
    pub id: String,
    pub method: Method,
    pub template: Template,
    /// JSON pointer of the operation in the spec, for messages.
    pub pointer: String,
    /// The effective `security`: any one alternative suffices; an empty alternative means
    /// anonymous callers are welcome. Empty list: the operation asks for nothing.
    pub security: Vec<Requirement>,
    /// From `x-warden`: the caller needs one of these roles...
    pub roles: Vec<String>,
    /// ...and all of these scopes.
    pub scopes: Vec<String>,
    pub owner: Option<Rule>,
    pub response_owner: Option<Rule>,
    /// Callers with one of these roles are exempt from the owner rules (support staff, admins).
    pub exempt_roles: Vec<String>,
    pub params: Vec<Param>,
    pub body: Option<RequestBody>,
    /// Status (`200`, `2XX`, `default`) → the shape of its JSON body, if it declares one.
    responses: Vec<(String, Option<usize>)>,
}

/// The outcome of looking a request up.
#[derive(Debug)]
pub enum Match<'c> {
    Found {
        op: &'c Operation,
        /// Decoded path parameter values, by name.
        path: Vec<(String, String)>,
    },
    /// The path exists, not with this method: these are allowed.
    WrongMethod(Vec<Method>),
    NotFound,
}

#[derive(Debug)]
pub struct Contract {
    pub source: PathBuf,
    pub title: String,
    pub v30: bool,
    /// The path the API is served under (from `servers[0]`), without a trailing `/`.
    pub base_path: String,
    shapes: Shapes,
    pub operations: Vec<Operation>,
    /// Operation indexes in matching order (most specific template first).
    order: Vec<usize>,
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

impl Contract {
    /// Loads and compiles a spec; `base_path` overrides the one `servers` gives.
    pub fn load(path: &Path, base_path: Option<&str>) -> Result<Contract, SpecError> {
        let (loader, doc) = Loader::load(path)?;
        let root = loader.root.clone();
        let err = |ptr: &str, msg: String| loader.error(&root, ptr, msg);
        let version = doc.get("openapi").and_then(Value::as_str).unwrap_or("");
        let v30 = version.starts_with("3.0");
        if !v30 && !version.starts_with("3.1") {
            return Err(err(
                "/openapi",
                format!(
                    "`openapi: {version}` is not supported: Warden reads OpenAPI 3.0 and 3.1 (convert a Swagger 2.0 file first)"
                ),
            ));
        }
        let title = doc
            .pointer("/info/title")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let base_path = match base_path {
            Some(b) => b.trim_end_matches('/').to_string(),
            None => server_base(&doc),
        };
        let root_security = doc.get("security");
        let mut operations = Vec::new();
        let mut shapes = Shapes::default();
        let paths = doc.get("paths").and_then(Value::as_object);
        for (p, item) in paths.into_iter().flatten() {
            let item_ptr = format!("/paths/{}", escape(p));
            let template = Template::parse(p).map_err(|m| err(&item_ptr, m))?;
            let item = resolve(&doc, item);
            let shared_params = item.get("parameters");
            for m in METHODS {
                let Some(op) = item.get(m) else { continue };
                let ptr = format!("{item_ptr}/{m}");
                operations.push(compile_op(
                    &doc,
                    &mut shapes,
                    v30,
                    &template,
                    m,
                    op,
                    shared_params,
                    root_security,
                    &ptr,
                    &|p: &str, msg: String| err(p, msg),
                )?);
            }
        }
        let mut order: Vec<usize> = (0..operations.len()).collect();
        order.sort_by_key(|&i| operations[i].template.specificity());
        Ok(Contract {
            source: root,
            title,
            v30,
            base_path,
            shapes,
            operations,
            order,
        })
    }

    /// Finds the operation a request calls. `path` is the request path as received (no query).
    pub fn find(&self, method: &Method, path: &str) -> Match<'_> {
        let Some(rest) = path.strip_prefix(self.base_path.as_str()) else {
            return Match::NotFound;
        };
        if !(rest.starts_with('/') || rest.is_empty()) {
            return Match::NotFound;
        }
        let rest = if rest.is_empty() { "/" } else { rest };
        let segs = router::segments(rest);
        let mut allowed = Vec::new();
        let mut found_template: Option<&str> = None;
        for &i in &self.order {
            let op = &self.operations[i];
            // Only the most specific template that matches counts (`/users/me` hides `/users/{id}`).
            if found_template.is_some_and(|t| t != op.template.text) {
                continue;
            }
            let Some(bound) = op.template.matches(&segs) else {
                continue;
            };
            found_template = Some(&op.template.text);
            if op.method == *method
                || (*method == Method::HEAD
                    && op.method == Method::GET
                    && !self.declares(&op.template.text, &Method::HEAD))
            {
                let path = bound
                    .into_iter()
                    .map(|(n, v)| {
                        (
                            n.to_string(),
                            percent_encoding::percent_decode_str(v)
                                .decode_utf8_lossy()
                                .into_owned(),
                        )
                    })
                    .collect();
                return Match::Found { op, path };
            }
            allowed.push(op.method.clone());
        }
        if allowed.is_empty() {
            Match::NotFound
        } else {
            Match::WrongMethod(allowed)
        }
    }

    fn declares(&self, template: &str, method: &Method) -> bool {
        self.operations
            .iter()
            .any(|o| o.template.text == template && o.method == *method)
    }

    /// Removes undeclared and `writeOnly` fields from a JSON response body and says where they
    /// were. `None` when the operation declares no JSON schema for this status (nothing to hold
    /// the body against).
    pub fn filter_response(
        &self,
        op: &Operation,
        status: u16,
        body: &mut Value,
    ) -> Option<Vec<Violation>> {
        let shape = op.response_shape(status)?;
        Some(self.shapes.walk(shape, body, "body", Direction::Response))
    }

    /// The same on the response's text, without building a tree: `Ok((found, None))` when
    /// nothing was removed (the text stays as it came), `Ok((found, Some(new)))` otherwise.
    /// `None` when the operation declares no JSON schema for this status.
    pub fn filter_response_text(
        &self,
        op: &Operation,
        status: u16,
        text: &[u8],
    ) -> Option<shape::Filtered> {
        let shape = op.response_shape(status)?;
        Some(self.shapes.filter_text(shape, text, "body"))
    }

    /// [`Contract::filter_response_text`] for a shape already looked up.
    pub fn filter_shape_text(&self, shape: usize, text: &[u8]) -> shape::Filtered {
        self.shapes.filter_text(shape, text, "body")
    }

    /// The response filter for a walk that also does other work (data protection's), which
    /// then starts it at the operation's [`Operation::response_shape`].
    pub fn response_filter(&self) -> shape::ResponseFilter<'_> {
        self.shapes.response_filter("body")
    }

    /// Checks a JSON request body: its schema's constraints, then undeclared and `readOnly`
    /// properties (mass assignment).
    pub fn check_body(&self, media: &Media, body: &mut Value, out: &mut Vec<Violation>) {
        if let Some(v) = &media.validator {
            v.check(body, "body", out);
        }
        if let Some(shape) = media.shape {
            out.extend(self.shapes.walk(shape, body, "body", Direction::Request));
        }
        out.sort_by(|a, b| a.location.cmp(&b.location));
        out.dedup();
        out.truncate(MAX_VIOLATIONS);
    }
}

impl Operation {
    /// Whether the operation lets anonymous callers in.
    pub fn anonymous(&self) -> bool {
        self.security.is_empty() || self.security.iter().any(Vec::is_empty)
    }

    /// Whether a caller with these roles and scopes satisfies the operation's requirements
    /// (the spec's `security` scopes, and `x-warden` roles and scopes).
    pub fn permits(&self, roles: &[String], scopes: &[String]) -> bool {
        let has = |s: &String| scopes.contains(s) || roles.contains(s);
        let security = self.security.is_empty()
            || self
                .security
                .iter()
                .any(|alt| alt.iter().all(|(_, needs)| needs.iter().all(has)));
        let role = self.roles.is_empty() || self.roles.iter().any(|r| roles.contains(r));
        security && role && self.scopes.iter().all(|s| scopes.contains(s))
    }

    /// The shape a JSON answer with `status` is held against: the exact status's, else its
    /// class's (`2XX`), else `default`'s. `None` when the first of those the spec names has no
    /// JSON schema, or none is named.
    pub fn response_shape(&self, status: u16) -> Option<usize> {
        let digits = [
            b'0' + (status / 100 % 10) as u8,
            b'0' + (status / 10 % 10) as u8,
            b'0' + (status % 10) as u8,
        ];
        let exact = |k: &str| k.as_bytes() == digits;
        let class = |k: &str| {
            k.len() == 3 && k.as_bytes()[0] == digits[0] && k[1..].eq_ignore_ascii_case("xx")
        };
        let default = |k: &str| k.eq_ignore_ascii_case("default");
        [&exact as &dyn Fn(&str) -> bool, &class, &default]
            .iter()
            .find_map(|is| self.responses.iter().find(|(k, _)| is(k)).map(|(_, s)| *s))?
    }

    /// Reads and checks the parameters. Returns the typed values by location (for the rules).
    pub fn check_params(
        &self,
        path: &[(String, String)],
        query: Option<&str>,
        headers: &HeaderMap,
        unknown_query: bool,
        out: &mut Vec<Violation>,
    ) -> Params {
        let mut query_values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            query_values
                .entry(k.into_owned())
                .or_default()
                .push(v.into_owned());
        }
        let cookies = headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>();
        let mut typed = Params::default();
        for p in &self.params {
            let loc = format!("{}{}", p.location.label(), schema::segment(&p.name));
            let raw: Vec<String> = match p.location {
                In::Path => path
                    .iter()
                    .filter(|(n, _)| *n == p.name)
                    .map(|(_, v)| v.clone())
                    .collect(),
                In::Query => query_values.get(&p.name).cloned().unwrap_or_default(),
                In::Header => headers
                    .get_all(p.name.as_str())
                    .iter()
                    .filter_map(|v| v.to_str().ok().map(str::to_owned))
                    .collect(),
                In::Cookie => cookies
                    .iter()
                    .filter(|(n, _)| *n == p.name)
                    .map(|(_, v)| v.clone())
                    .collect(),
            };
            if raw.is_empty() {
                if p.required {
                    out.push(Violation {
                        location: loc,
                        rule: "required",
                    });
                }
                continue;
            }
            let value = if p.kind == Kind::Array {
                let parts: Vec<String> = if p.explode && p.location == In::Query {
                    raw
                } else {
                    raw.iter()
                        .flat_map(|r| r.split(',').map(str::to_owned))
                        .collect()
                };
                Value::Array(parts.iter().map(|s| coerce(s, p.item_kind)).collect())
            } else {
                if raw.len() > 1 {
                    // `?id=1&id=2` where one is expected: parameter pollution.
                    out.push(Violation {
                        location: loc,
                        rule: "repeated",
                    });
                    continue;
                }
                coerce(&raw[0], p.kind)
            };
            if let Some(v) = &p.validator {
                v.check(&value, &loc, out);
            }
            let target = match p.location {
                In::Path => &mut typed.path,
                In::Query => &mut typed.query,
                In::Header => &mut typed.headers,
                In::Cookie => &mut typed.cookies,
            };
            target.insert(p.name.clone(), value);
        }
        if !unknown_query {
            for name in query_values.keys() {
                if !self
                    .params
                    .iter()
                    .any(|p| p.location == In::Query && p.name == *name)
                {
                    out.push(Violation {
                        location: format!("query{}", schema::segment(name)),
                        rule: "undeclared-parameter",
                    });
                }
            }
        }
        typed
    }

    /// The declared media type a request's `Content-Type` falls under.
    pub fn media_for(&self, content_type: &str) -> Option<&Media> {
        let body = self.body.as_ref()?;
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let ty = essence.split_once('/').map_or(essence, |(t, _)| t);
        // Exact ranges first, then `type/*`, then `*/*`.
        let score = |range: &str| -> Option<u8> {
            let (rt, rs) = range.split_once('/')?;
            match (rt, rs) {
                _ if range.eq_ignore_ascii_case(essence) => Some(0),
                (t, "*") if t.eq_ignore_ascii_case(ty) => Some(1),
                ("*", "*") => Some(2),
                _ => None,
            }
        };
        body.media
            .iter()
            .filter_map(|m| score(&m.range).map(|s| (s, m)))
            .min_by_key(|(s, _)| *s)
            .map(|(_, m)| m)
    }

    /// The media types the operation accepts, for the error message.
    pub fn accepted_media(&self) -> Vec<&str> {
        self.body
            .iter()
            .flat_map(|b| b.media.iter().map(|m| m.range.as_str()))
            .collect()
    }

    /// Whether any declared response of this operation has a JSON schema (the response phase
    /// then needs the body).
    pub fn has_response_schemas(&self) -> bool {
        self.responses.iter().any(|(_, s)| s.is_some())
    }

    pub fn reads_response(&self) -> bool {
        self.response_owner.is_some() || self.has_response_schemas()
    }
}

/// Typed parameter values, by location: what rules read as `path`, `query`...
#[derive(Debug, Default)]
pub struct Params {
    pub path: Map<String, Value>,
    pub query: Map<String, Value>,
    pub headers: Map<String, Value>,
    pub cookies: Map<String, Value>,
}

/// Checks the limits that hold for every JSON body. The location is written only for a
/// violation (from the stack of keys and indexes above it): a compliant body, nearly every one,
/// costs no allocation and no formatting.
pub fn check_json_limits(value: &Value, limits: &JsonLimits, out: &mut Vec<Violation>) {
    fn report(path: &[Step<'_>], rule: &'static str, out: &mut Vec<Violation>) {
        out.push(Violation {
            location: shape::location("body", path),
            rule,
        });
    }
    fn walk<'v>(v: &'v Value, l: &JsonLimits, path: &mut Vec<Step<'v>>, out: &mut Vec<Violation>) {
        // Numbers, booleans and nulls can break only the depth limit.
        let deep = |item: &Value, path: &Vec<Step<'_>>| {
            matches!(item, Value::Array(_) | Value::Object(_) | Value::String(_))
                || path.len() >= l.max_depth
        };
        if out.len() >= MAX_VIOLATIONS {
            return;
        }
        if path.len() > l.max_depth {
            return report(path, "max-depth", out);
        }
        match v {
            // A string has at least as many bytes as characters: count only the long ones.
            Value::String(s)
                if s.len() > l.max_string_chars && s.chars().count() > l.max_string_chars =>
            {
                report(path, "max-string-length", out)
            }
            Value::Array(items) if items.len() > l.max_array_items => {
                report(path, "max-array-items", out)
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if deep(item, path) {
                        path.push(Step::Index(i));
                        walk(item, l, path, out);
                        path.pop();
                    }
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    if deep(item, path) {
                        path.push(Step::Key(k.as_bytes().into()));
                        walk(item, l, path, out);
                        path.pop();
                    }
                }
            }
            _ => {}
        }
    }
    walk(value, limits, &mut Vec::with_capacity(16), out);
}

fn coerce(raw: &str, kind: Kind) -> Value {
    match kind {
        Kind::Integer => raw
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.to_string())),
        Kind::Number => raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(raw.to_string())),
        Kind::Boolean => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(raw.to_string()),
        },
        _ => Value::String(raw.to_string()),
    }
}

/// Follows `$ref`s (within the bundled document) to the node they name.
pub fn resolve<'d>(doc: &'d Value, mut node: &'d Value) -> &'d Value {
    for _ in 0..64 {
        match node
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|p| load::at(doc, &load::decode_fragment(p)))
        {
            Some(t) => node = t,
            None => break,
        }
    }
    node
}

/// A schema's `type`, or the first non-null one of a 3.1 type list (`[string, "null"]`).
pub fn primary_type(schema: &Value) -> Option<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => Some(t.as_str()),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    }
}

fn kind_of(doc: &Value, schema: &Value) -> Kind {
    let schema = resolve(doc, schema);
    let ty = primary_type(schema).unwrap_or("");
    match ty {
        "string" => Kind::String,
        "integer" => Kind::Integer,
        "number" => Kind::Number,
        "boolean" => Kind::Boolean,
        "array" => Kind::Array,
        _ => Kind::Other,
    }
}

fn server_base(doc: &Value) -> String {
    let Some(server) = doc.pointer("/servers/0") else {
        return String::new();
    };
    let mut url = server
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if let Some(Value::Object(vars)) = server.get("variables") {
        for (k, v) in vars {
            if let Some(d) = v.get("default").and_then(Value::as_str) {
                url = url.replace(&format!("{{{k}}}"), d);
            }
        }
    }
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]).to_string(),
        None => url,
    };
    path.trim_end_matches('/').to_string()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
fn compile_op(
    doc: &Value,
    shapes: &mut Shapes,
    v30: bool,
    template: &Template,
    method: &str,
    op: &Value,
    shared_params: Option<&Value>,
    root_security: Option<&Value>,
    ptr: &str,
    err: &dyn Fn(&str, String) -> SpecError,
) -> Result<Operation, SpecError> {
    let id = op
        .get("operationId")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{} {}", method.to_ascii_uppercase(), template.text));
    let security_src = op.get("security").or(root_security);
    let mut security = Vec::new();
    if let Some(Value::Array(alts)) = security_src {
        for alt in alts {
            let mut req = Vec::new();
            for (scheme, scopes) in alt.as_object().into_iter().flatten() {
                req.push((scheme.clone(), strings(Some(scopes))));
            }
            security.push(req);
        }
    }
    let x = op.get("x-warden");
    let x_ptr = format!("{ptr}/x-warden");
    let rule = |key: &str, response: bool| -> Result<Option<Rule>, SpecError> {
        match x.and_then(|x| x.get(key)) {
            None => Ok(None),
            Some(Value::String(src)) => Rule::compile(src, response)
                .map(Some)
                .map_err(|m| err(&format!("{x_ptr}/{key}"), m)),
            Some(_) => Err(err(
                &format!("{x_ptr}/{key}"),
                "a rule is a CEL expression in a string".into(),
            )),
        }
    };
    let owner = rule("owner", false)?;
    let response_owner = rule("response_owner", true)?;
    // Parameters: the path item's, overridden by the operation's (same name and location).
    let mut raw_params: Vec<(String, &Value)> = Vec::new();
    for (src, base) in [
        (
            shared_params,
            ptr.rsplit_once('/').map_or("", |p| p.0).to_string(),
        ),
        (op.get("parameters"), ptr.to_string()),
    ] {
        for (i, p) in src
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let p = resolve(doc, p);
            let key = (
                p.get("name").and_then(Value::as_str).unwrap_or(""),
                p.get("in").and_then(Value::as_str).unwrap_or(""),
            );
            raw_params.retain(|(_, q)| {
                (
                    q.get("name").and_then(Value::as_str).unwrap_or(""),
                    q.get("in").and_then(Value::as_str).unwrap_or(""),
                ) != key
            });
            raw_params.push((format!("{base}/parameters/{i}"), p));
        }
    }
    let mut params = Vec::new();
    for (pp, p) in raw_params {
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| err(&pp, "a parameter needs a `name`".into()))?;
        let location = match p.get("in").and_then(Value::as_str) {
            Some("path") => In::Path,
            Some("query") => In::Query,
            Some("header") => In::Header,
            Some("cookie") => In::Cookie,
            other => {
                return Err(err(
                    &format!("{pp}/in"),
                    format!(
                        "`in: {}` is not one of path, query, header, cookie",
                        other.unwrap_or("")
                    ),
                ))
            }
        };
        // OpenAPI: these headers are described elsewhere and ignored as parameters.
        if location == In::Header
            && ["accept", "content-type", "authorization"]
                .contains(&name.to_ascii_lowercase().as_str())
        {
            continue;
        }
        if location == In::Path && !template.param_names().any(|n| n == name) {
            return Err(err(
                &pp,
                format!(
                    "path parameter `{name}` is not in the path `{}`",
                    template.text
                ),
            ));
        }
        let schema = p
            .get("schema")
            .or_else(|| p.pointer("/content/application~1json/schema"));
        let validator = match schema {
            Some(s) => Some(
                Validator::compile(&schema::request_schema(doc, s, v30))
                    .map_err(|m| err(&format!("{pp}/schema"), m))?,
            ),
            None => None,
        };
        let kind = schema.map_or(Kind::String, |s| kind_of(doc, s));
        let item_kind = schema
            .map(|s| resolve(doc, s))
            .and_then(|s| s.get("items"))
            .map_or(Kind::String, |s| kind_of(doc, s));
        params.push(Param {
            name: if location == In::Header {
                name.to_ascii_lowercase()
            } else {
                name.to_string()
            },
            location,
            required: location == In::Path || p.get("required") == Some(&Value::Bool(true)),
            kind,
            item_kind,
            explode: p.get("explode").and_then(Value::as_bool).unwrap_or(true),
            validator,
        });
    }
    for name in template.param_names() {
        if !params
            .iter()
            .any(|p| p.location == In::Path && p.name == name)
        {
            // Undeclared path parameters are plain strings; the template still binds them.
            params.push(Param {
                name: name.to_string(),
                location: In::Path,
                required: true,
                kind: Kind::String,
                item_kind: Kind::String,
                explode: false,
                validator: None,
            });
        }
    }
    let body = match op.get("requestBody") {
        None => None,
        Some(b) => {
            let b = resolve(doc, b);
            let mut media = Vec::new();
            for (range, m) in b
                .get("content")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let range_lc = range.to_ascii_lowercase();
                let essence = range_lc.split(';').next().unwrap_or("").trim().to_string();
                let json = is_json(&essence);
                let validator = match (json, m.get("schema")) {
                    (true, Some(s)) => Some(
                        Validator::compile(&schema::request_schema(doc, s, v30)).map_err(
                            |msg| {
                                err(
                                    &format!("{ptr}/requestBody/content/{}/schema", escape(range)),
                                    msg,
                                )
                            },
                        )?,
                    ),
                    _ => None,
                };
                let shape = match (json, m.get("schema")) {
                    (true, Some(s)) => Some(shapes.build(doc, &[s])),
                    _ => None,
                };
                media.push(Media {
                    range: essence,
                    json,
                    validator,
                    shape,
                });
            }
            Some(RequestBody {
                required: b.get("required") == Some(&Value::Bool(true)),
                media,
            })
        }
    };
    let mut responses = Vec::new();
    for (status, r) in op
        .get("responses")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let r = resolve(doc, r);
        let schema = r
            .get("content")
            .and_then(Value::as_object)
            .and_then(|c| c.iter().find(|(k, _)| is_json(&k.to_ascii_lowercase())))
            .and_then(|(_, m)| m.get("schema"))
            .map(|s| shapes.build(doc, &[s]));
        responses.push((status.clone(), schema));
    }
    Ok(Operation {
        id,
        method: Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .expect("a listed method"),
        template: template.clone(),
        pointer: ptr.to_string(),
        security,
        roles: strings(x.and_then(|x| x.get("roles"))),
        scopes: strings(x.and_then(|x| x.get("scopes"))),
        owner,
        response_owner,
        exempt_roles: strings(x.and_then(|x| x.get("exempt_roles"))),
        params,
        body,
        responses,
    })
}

/// `application/json`, `application/problem+json`, `application/vnd.api+json`...
pub fn is_json(essence: &str) -> bool {
    let essence = essence.split(';').next().unwrap_or("").trim();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}
