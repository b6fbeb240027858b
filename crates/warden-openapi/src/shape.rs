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

/// FNV-1a over a property name. The maps are built from the spec and never grow from a
/// request, so an attacker's keys can only miss, never crowd a bucket: SipHash's protection
/// against flooding buys nothing here, and costs a measurable share of the response filter.
#[derive(Default)]
struct NameHasher(u64);

impl std::hash::Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.round(u64::from(*b));
        }
    }
    /// A byte slice's length prefix: one round instead of eight.
    fn write_usize(&mut self, n: usize) {
        self.round(n as u64);
    }
}

impl NameHasher {
    fn round(&mut self, x: u64) {
        let h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        self.0 = (h ^ x).wrapping_mul(0x0100_0000_01b3);
    }
}

/// Keyed by the name's bytes, so the text filter looks a key up straight from the body.
type PropMap = HashMap<Vec<u8>, Prop, std::hash::BuildHasherDefault<NameHasher>>;

#[derive(Debug, Default)]
struct Object {
    props: PropMap,
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
                    name.as_bytes().to_vec(),
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
                    let next = match shape.props.get(k.as_bytes()) {
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
pub(crate) fn push_segment(loc: &mut String, name: impl AsRef<[u8]>) {
    let name = name.as_ref();
    let tame = !name.is_empty()
        && name.len() <= 64
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'$'));
    // Tame names are ASCII, so each byte is one character.
    let ascii = name.iter().map(|b| char::from(*b));
    if tame && name.iter().all(u8::is_ascii_digit) {
        loc.push('[');
        loc.extend(ascii);
        loc.push(']');
    } else if tame {
        loc.push('.');
        loc.extend(ascii);
    } else {
        loc.push_str(".<property>");
    }
}

/// A response filter that works on the text itself: no tree is built, members are removed by
/// splicing, and an answer with nothing to remove is left byte for byte as it came.
struct TextWalk<'t, 's> {
    b: &'t [u8],
    i: usize,
    shapes: &'s Shapes,
    base: &'s str,
    /// The members and items above the current value; a location is written from it only for
    /// a finding (an answer as declared costs no formatting).
    path: Vec<Step<'t>>,
    found: Vec<Violation>,
    edits: Vec<std::ops::Range<usize>>,
}

/// One step of the path to a value: a member's name (borrowed from the body, or decoded when it
/// had escapes) or an item's index. A location is written from the steps only for a finding.
pub(crate) enum Step<'a> {
    Key(std::borrow::Cow<'a, [u8]>),
    Index(usize),
}

/// `base` followed by the steps, as [`push_segment`] spells them.
pub(crate) fn location(base: &str, path: &[Step<'_>]) -> String {
    let mut loc = base.to_string();
    for step in path {
        match step {
            Step::Key(k) => push_segment(&mut loc, k),
            Step::Index(n) => {
                let _ = write!(loc, "[{n}]");
            }
        }
    }
    loc
}

/// Not JSON (the walk stops at the first thing that is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotJson;

/// What the text filter found, and the new text when it removed something.
pub type Filtered = Result<(Vec<Violation>, Option<Vec<u8>>), NotJson>;

impl Shapes {
    /// Removes undeclared and `writeOnly` members from a JSON text along shape `node`. Returns
    /// what was found and, when something was removed, the new text. Text that is not UTF-8
    /// is not JSON: strings with bytes past ASCII are checked as the walk meets them, so the
    /// body needs no separate UTF-8 pass.
    pub fn filter_text(&self, node: usize, text: &[u8], base: &str) -> Filtered {
        let mut w = TextWalk {
            b: text,
            i: 0,
            shapes: self,
            base,
            path: Vec::new(),
            found: Vec::new(),
            edits: Vec::new(),
        };
        w.ws();
        w.value(Some(node), 0)?;
        w.ws();
        if w.i != w.b.len() {
            return Err(NotJson);
        }
        if w.edits.is_empty() {
            return Ok((w.found, None));
        }
        // An object's edits are pushed as its members end, so a run closed by a kept member
        // comes after the edits inside that member: put them in text order (they never overlap).
        w.edits.sort_unstable_by_key(|e| e.start);
        let mut out = Vec::with_capacity(text.len());
        let mut at = 0;
        for e in &w.edits {
            out.extend_from_slice(&text[at..e.start]);
            at = e.end;
        }
        out.extend_from_slice(&text[at..]);
        Ok((w.found, Some(out)))
    }
}

impl<'t> TextWalk<'t, '_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), NotJson> {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(NotJson)
        }
    }

    fn value(&mut self, node: Option<usize>, depth: usize) -> Result<(), NotJson> {
        if depth > 128 {
            return Err(NotJson);
        }
        match self.b.get(self.i) {
            Some(b'{') => self.object(node, depth),
            Some(b'[') => self.array(node, depth),
            Some(b'"') => self.string().map(|_| ()),
            Some(b't') => self.word(b"true"),
            Some(b'f') => self.word(b"false"),
            Some(b'n') => self.word(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(NotJson),
        }
    }

    fn word(&mut self, w: &[u8]) -> Result<(), NotJson> {
        if self.b[self.i..].starts_with(w) {
            self.i += w.len();
            Ok(())
        } else {
            Err(NotJson)
        }
    }

    /// JSON's number grammar, `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, checked without
    /// converting (the value itself is never needed here).
    fn number(&mut self) -> Result<(), NotJson> {
        let digits = |w: &mut Self| {
            let from = w.i;
            while w.b.get(w.i).is_some_and(u8::is_ascii_digit) {
                w.i += 1;
            }
            w.i - from
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(NotJson),
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(NotJson);
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(NotJson);
            }
        }
        Ok(())
    }

    /// Skips a string; returns its raw contents (escapes still in) and whether it had any.
    #[inline(always)]
    fn string(&mut self) -> Result<(usize, usize, bool), NotJson> {
        self.expect(b'"')?;
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let mut escaped = false;
        let mut wide = false;
        loop {
            i = warden_policy::json::plain_run_end(b, i, true);
            match b.get(i) {
                None => return Err(NotJson),
                Some(b'"') => break,
                Some(b'\\') => {
                    // A backslash and the character it escapes (control characters are never
                    // escaped raw); `\u` digits are ordinary characters to this walk.
                    escaped = true;
                    match b.get(i + 1) {
                        Some(c) if *c >= 0x20 => {
                            wide |= *c >= 0x80;
                            i += 2;
                        }
                        _ => return Err(NotJson),
                    }
                }
                Some(c) if *c >= 0x80 => {
                    wide = true;
                    i += 1;
                }
                Some(_) => return Err(NotJson),
            }
        }
        if wide && std::str::from_utf8(&b[start..i]).is_err() {
            return Err(NotJson);
        }
        self.i = i + 1;
        Ok((start, i, escaped))
    }

    fn object(&mut self, node: Option<usize>, depth: usize) -> Result<(), NotJson> {
        self.i += 1;
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(());
        }
        let shape = node.and_then(|n| self.shapes.nodes[n].object.as_ref());
        // Runs of removed members, closed by the next kept member or by the object's end, become
        // one edit each, so the commas between members always stay right.
        let mut last_kept_end: Option<usize> = None;
        let mut run_start: Option<usize> = None;
        let mut last_end;
        loop {
            self.ws();
            let member_start = self.i;
            let (ks, ke, escaped) = self.string()?;
            // Raw bytes unless escaped (already checked to be UTF-8 by `string`).
            let text: &'t [u8] = self.b;
            let key: std::borrow::Cow<'t, [u8]> = if escaped {
                serde_json::from_slice::<String>(&text[ks - 1..=ke])
                    .map_err(|_| NotJson)?
                    .into_bytes()
                    .into()
            } else {
                text[ks..ke].into()
            };
            self.ws();
            self.expect(b':')?;
            self.ws();
            let (next, rule) = match shape {
                None => (None, None),
                Some(s) => match s.props.get(key.as_ref()) {
                    Some(p) if p.write_only => (None, Some("write-only")),
                    Some(p) => (Some(p.node), None),
                    None if s.open => (None, None),
                    None => match s.extra {
                        Some(e) => (Some(e), None),
                        None => (None, Some("undeclared-property")),
                    },
                },
            };
            let descend = next.is_some() && matches!(self.b.get(self.i), Some(b'{' | b'['));
            let pushed = descend || rule.is_some();
            if pushed {
                self.path.push(Step::Key(key));
            }
            if descend {
                self.value(next, depth + 1)?;
            } else {
                self.value(None, depth + 1)?;
            }
            if let Some(rule) = rule {
                let location = location(self.base, &self.path);
                self.found.push(Violation { location, rule });
                run_start.get_or_insert(member_start);
            } else {
                if let Some(s) = run_start.take() {
                    self.edits.push(s..member_start);
                }
                last_kept_end = Some(self.i);
            }
            if pushed {
                self.path.pop();
            }
            last_end = self.i;
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    if let Some(s) = run_start {
                        self.edits.push(last_kept_end.unwrap_or(s)..last_end);
                    }
                    return Ok(());
                }
                _ => return Err(NotJson),
            }
        }
    }

    fn array(&mut self, node: Option<usize>, depth: usize) -> Result<(), NotJson> {
        self.i += 1;
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(());
        }
        let items = node.and_then(|n| self.shapes.nodes[n].items);
        let mut n = 0usize;
        loop {
            self.ws();
            if items.is_some() && matches!(self.b.get(self.i), Some(b'{' | b'[')) {
                self.path.push(Step::Index(n));
                self.value(items, depth + 1)?;
                self.path.pop();
            } else {
                self.value(None, depth + 1)?;
            }
            n += 1;
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(NotJson),
            }
        }
    }
}
