//! Which properties a schema declares, compiled once into a tree of shapes, and the walk that
//! holds a value against it: in a request an undeclared or `readOnly` property is a violation
//! (mass assignment), in a response an undeclared or `writeOnly` one is removed (excessive data
//! exposure).
//!
//! A shape is the union of everything a schema says through `$ref`, `allOf`, `anyOf` and `oneOf`:
//! a property any member names is declared. (`unevaluatedProperties: false` in the JSON Schema
//! would say much the same, but it reports the properties of a failing `allOf` member as
//! undeclared too, which misleads the client.) Compiled at load, so the walk per call is a hash
//! lookup per property; recursive schemas become cycles in the tree.

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::Value;

use crate::load::{at, decode_fragment};
use crate::Violation;

const MAX_DEPTH: usize = 64;

#[derive(Debug, Default)]
struct Node {
    /// `None`: not an object schema, or a free-form one (nothing to hold properties against).
    object: Option<Object>,
    items: Option<usize>,
}

#[derive(Debug, Default)]
struct Object {
    props: HashMap<String, Prop>,
    /// The schema of properties it does not name (`additionalProperties: {schema}`).
    extra: Option<usize>,
    /// `additionalProperties: true` or `patternProperties`: other properties are welcome.
    open: bool,
}

#[derive(Debug)]
struct Prop {
    node: usize,
    read_only: bool,
    write_only: bool,
}

/// Every shape of one contract.
#[derive(Debug, Default)]
pub struct Shapes {
    nodes: Vec<Node>,
    /// Built nodes by the addresses of the schemas they unite (the document does not change
    /// while shapes are built, so an address names a schema).
    memo: HashMap<Vec<usize>, usize>,
}

/// Which way a value travels: what is unwelcome differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Undeclared and `readOnly` properties are reported; the value is left as it is.
    Request,
    /// Undeclared and `writeOnly` properties are removed, and reported.
    Response,
}

fn resolve<'d>(doc: &'d Value, mut schema: &'d Value) -> &'d Value {
    for _ in 0..MAX_DEPTH {
        let Some(r) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
        else {
            return schema;
        };
        let target = if r.contains('%') {
            at(doc, &decode_fragment(r))
        } else {
            at(doc, r)
        };
        match target {
            Some(t) => schema = t,
            None => return schema,
        }
    }
    schema
}

/// `schema` and every member of its compositions, `$ref`s followed.
fn flatten<'d>(doc: &'d Value, schema: &'d Value, out: &mut Vec<&'d Value>, depth: usize) {
    let schema = resolve(doc, schema);
    if depth > MAX_DEPTH || out.iter().any(|s| std::ptr::eq(*s, schema)) {
        return;
    }
    out.push(schema);
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(members)) = schema.get(key) {
            for m in members {
                flatten(doc, m, out, depth + 1);
            }
        }
    }
}

impl Shapes {
    /// The shape of the union of `schemas` (usually one).
    pub fn build(&mut self, doc: &Value, schemas: &[&Value]) -> usize {
        let mut key: Vec<usize> = schemas
            .iter()
            .map(|s| *s as *const Value as usize)
            .collect();
        key.sort_unstable();
        if let Some(&id) = self.memo.get(&key) {
            return id;
        }
        let id = self.nodes.len();
        self.nodes.push(Node::default());
        self.memo.insert(key, id);
        let mut flat = Vec::new();
        for s in schemas {
            flatten(doc, s, &mut flat, 0);
        }
        let mut named = false;
        let mut open = false;
        let mut extra: Vec<&Value> = Vec::new();
        let mut props: Vec<(&str, Vec<&Value>)> = Vec::new();
        let mut items: Vec<&Value> = Vec::new();
        for s in &flat {
            if let Some(Value::Object(p)) = s.get("properties") {
                named = true;
                for (k, v) in p {
                    match props.iter_mut().find(|(n, _)| n == k) {
                        Some((_, list)) => list.push(v),
                        None => props.push((k.as_str(), vec![v])),
                    }
                }
            }
            match s.get("additionalProperties") {
                None | Some(Value::Bool(false)) => {}
                Some(Value::Bool(true)) => open = true,
                Some(schema) => extra.push(schema),
            }
            if s.get("patternProperties").is_some() {
                open = true;
            }
            if let Some(i) = s.get("items") {
                items.push(i);
            }
        }
        let object = if named || !extra.is_empty() {
            let mut o = Object {
                open,
                ..Object::default()
            };
            for (name, subs) in props {
                let flag = |f: &str| {
                    subs.iter().any(|s| {
                        let mut all = Vec::new();
                        flatten(doc, s, &mut all, 0);
                        all.iter().any(|x| x.get(f) == Some(&Value::Bool(true)))
                    })
                };
                let (read_only, write_only) = (flag("readOnly"), flag("writeOnly"));
                let node = self.build(doc, &subs);
                o.props.insert(
                    name.to_string(),
                    Prop {
                        node,
                        read_only,
                        write_only,
                    },
                );
            }
            if !extra.is_empty() {
                o.extra = Some(self.build(doc, &extra));
            }
            Some(o)
        } else {
            None
        };
        let items = (!items.is_empty()).then(|| self.build(doc, &items));
        self.nodes[id] = Node { object, items };
        id
    }

    /// Walks `value` along shape `node` (see the module doc), reporting under `base`.
    pub fn walk(
        &self,
        node: usize,
        value: &mut Value,
        base: &str,
        dir: Direction,
    ) -> Vec<Violation> {
        let mut found = Vec::new();
        let mut loc = base.to_string();
        self.visit(node, value, &mut loc, &mut found, dir, 0);
        found
    }

    fn visit(
        &self,
        node: usize,
        value: &mut Value,
        loc: &mut String,
        found: &mut Vec<Violation>,
        dir: Direction,
        depth: usize,
    ) {
        if depth > MAX_DEPTH || found.len() >= crate::MAX_VIOLATIONS * 4 {
            return;
        }
        let node = &self.nodes[node];
        match value {
            Value::Object(map) => {
                let Some(shape) = &node.object else { return };
                let mut unwelcome: Vec<String> = Vec::new();
                for (k, v) in map.iter_mut() {
                    // The location is written only where it is needed: on a finding, or to
                    // descend into a nested object or array.
                    let here = |loc: &String| {
                        let mut l = loc.clone();
                        push_segment(&mut l, k);
                        l
                    };
                    let next = match shape.props.get(k.as_str()) {
                        Some(p)
                            if (dir == Direction::Request && p.read_only)
                                || (dir == Direction::Response && p.write_only) =>
                        {
                            let rule = if dir == Direction::Request {
                                "read-only"
                            } else {
                                "write-only"
                            };
                            found.push(Violation {
                                location: here(loc),
                                rule,
                            });
                            unwelcome.push(k.clone());
                            None
                        }
                        Some(p) => Some(p.node),
                        None if shape.open => None,
                        None => match shape.extra {
                            Some(extra) => Some(extra),
                            None => {
                                found.push(Violation {
                                    location: here(loc),
                                    rule: "undeclared-property",
                                });
                                unwelcome.push(k.clone());
                                None
                            }
                        },
                    };
                    if let Some(next) = next {
                        if matches!(v, Value::Object(_) | Value::Array(_)) {
                            let len = loc.len();
                            push_segment(loc, k);
                            self.visit(next, v, loc, found, dir, depth + 1);
                            loc.truncate(len);
                        }
                    }
                }
                if dir == Direction::Response {
                    for k in unwelcome {
                        map.remove(&k);
                    }
                }
            }
            Value::Array(list) => {
                let Some(items) = node.items else { return };
                for (i, v) in list.iter_mut().enumerate() {
                    if !matches!(v, Value::Object(_) | Value::Array(_)) {
                        continue;
                    }
                    let len = loc.len();
                    let _ = write!(loc, "[{i}]");
                    self.visit(items, v, loc, found, dir, depth + 1);
                    loc.truncate(len);
                }
            }
            _ => {}
        }
    }
}

/// Appends `.name` for a tame property name, `[n]` for one made of digits; anything else is not
/// repeated back to the client (it came from the request).
pub(crate) fn push_segment(loc: &mut String, name: &str) {
    let tame = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'$');
    if tame && name.bytes().all(|b| b.is_ascii_digit()) {
        loc.push('[');
        loc.push_str(name);
        loc.push(']');
    } else if tame {
        loc.push('.');
        loc.push_str(name);
    } else {
        loc.push_str(".<property>");
    }
}
