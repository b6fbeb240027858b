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

use serde_json::Value;
use warden_policy::json::{self, Member, Members, Path, Seg};

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

/// An object's declared properties, looked up by a key's bytes straight from the body. Most
/// objects declare fewer than 64, with distinct fingerprints (see [`head_word`]): for those, a
/// multiplier chosen at load sends each fingerprint to a slot of its own (eight slots a name),
/// so a lookup is one multiply, one load and one compare, the name itself checked only on a
/// match, at a fraction of a hash lookup's cost, which the response filter pays on every
/// member of every answer. Other objects get a hash map.
#[derive(Debug, Default)]
struct PropTable {
    /// Index into `few` by slot, `EMPTY` where none.
    slots: Vec<u8>,
    mul: u64,
    /// 64 less the table's bits.
    shift: u32,
    heads: Vec<u64>,
    few: Vec<(Box<[u8]>, Prop)>,
    many: PropMap,
}

/// A name's fingerprint, from at most two loads: up to eight bytes, the name itself as a
/// little-endian word (zero-padded), so equal fingerprints and lengths mean equal names;
/// longer, its first and last eight bytes mixed (`created_at` and `created_by` differ). The
/// length is mixed in either way (`ab` and `ab\0`).
#[inline(always)]
fn head_word(b: &[u8]) -> u64 {
    let n = b.len();
    let w2 = |i: usize| u64::from(u16::from_le_bytes([b[i], b[i + 1]]));
    let w4 = |i: usize| u64::from(u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]));
    let w8 = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(w)
    };
    // Two overlapping reads cover a short name: the bytes they share sit at the same place
    // in both, so or-ing them is exact.
    let word = match n {
        0 => 0,
        1 => u64::from(b[0]),
        2..=3 => w2(0) | w2(n - 2) << (8 * (n - 2)),
        4..=7 => w4(0) | w4(n - 4) << (8 * (n - 4)),
        8 => w8(0),
        _ => w8(0) ^ w8(n - 8).rotate_left(29),
    };
    word ^ (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl PropTable {
    const FEW: usize = 64;
    const EMPTY: u8 = u8::MAX;

    fn slot(&self, head: u64) -> usize {
        (head.wrapping_mul(self.mul) >> self.shift) as usize
    }

    /// Builds the table from unique names (collected so at load).
    fn new(props: Vec<(&[u8], Prop)>) -> PropTable {
        let heads: Vec<u64> = props.iter().map(|(n, _)| head_word(n)).collect();
        let mut t = PropTable::default();
        if props.len() <= Self::FEW {
            // Eight slots a name: odd multipliers from a fixed sequence find a table without
            // collisions in a few tries (about 50 for 64 names); names of the same fingerprint
            // never separate.
            let size = (props.len() * 8).next_power_of_two().max(16);
            t.shift = 64 - size.trailing_zeros();
            let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
            for _ in 0..4096 {
                seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
                t.mul = (seed ^ (seed >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9) | 1;
                let mut slots = vec![Self::EMPTY; size];
                let free = heads.iter().enumerate().all(|(i, h)| {
                    let s = &mut slots[t.slot(*h)];
                    let was = *s;
                    *s = i as u8;
                    was == Self::EMPTY
                });
                if free {
                    t.slots = slots;
                    t.heads = heads;
                    t.few = props.into_iter().map(|(n, p)| (n.into(), p)).collect();
                    return t;
                }
            }
        }
        t.many = props.into_iter().map(|(n, p)| (n.to_vec(), p)).collect();
        t
    }

    #[inline]
    fn get(&self, key: &[u8]) -> Option<&Prop> {
        if self.few.is_empty() {
            return if self.many.is_empty() {
                None
            } else {
                self.many.get(key)
            };
        }
        let head = head_word(key);
        let i = usize::from(self.slots[self.slot(head)]);
        let (name, prop) = self.few.get(i)?;
        (self.heads[i] == head && name.len() == key.len() && (key.len() <= 8 || **name == *key))
            .then_some(prop)
    }
}

#[derive(Debug, Default)]
struct Object {
    props: PropTable,
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
            let mut table = Vec::with_capacity(props.len());
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
                let prop = Prop {
                    node,
                    read_only,
                    write_only,
                };
                table.push((name.as_bytes(), prop));
            }
            o.props = PropTable::new(table);
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
                    push_index(loc, i);
                    self.visit(items, v, loc, found, dir, depth + 1);
                    loc.truncate(len);
                }
            }
            _ => {}
        }
    }
}

/// Appends `[n]` (without the formatting machinery: a walk writes one per array item it enters).
pub(crate) fn push_index(loc: &mut String, n: usize) {
    loc.push('[');
    loc.push_str(itoa::Buffer::new().format(n));
    loc.push(']');
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
            Step::Index(n) => push_index(&mut loc, *n),
        }
    }
    loc
}

/// Decides which members of a response stay, along a shape, as `json::walk_members` meets them:
/// undeclared and `writeOnly` members go, and each is recorded under `base`. Locations are
/// written only for a finding, so an answer as declared costs no formatting.
pub struct ResponseFilter<'s> {
    shapes: &'s Shapes,
    base: &'s str,
    pub found: Vec<Violation>,
}

impl Members for ResponseFilter<'_> {
    type Node = usize;

    fn member(&mut self, object: usize, path: Path<'_, '_>, key: &str) -> Member<usize> {
        let Some(shape) = &self.shapes.nodes[object].object else {
            return Member::Keep(None);
        };
        let rule = match shape.props.get(key.as_bytes()) {
            Some(p) if p.write_only => "write-only",
            Some(p) => return Member::Keep(Some(p.node)),
            None if shape.open => return Member::Keep(None),
            None => match shape.extra {
                Some(e) => return Member::Keep(Some(e)),
                None => "undeclared-property",
            },
        };
        let mut location = self.base.to_string();
        for seg in path.0 {
            match seg {
                Seg::Key(k) => push_segment(&mut location, k.as_bytes()),
                Seg::Index(n) => push_index(&mut location, *n),
            }
        }
        push_segment(&mut location, key);
        self.found.push(Violation { location, rule });
        Member::Remove
    }

    fn items(&self, array: usize) -> Option<usize> {
        self.shapes.nodes[array].items
    }
}

/// Not JSON (the walk stops at the first thing that is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotJson;

/// What the text filter found, and the new text when it removed something.
pub type Filtered = Result<(Vec<Violation>, Option<Vec<u8>>), NotJson>;

/// How deep a response the filter reads (deeper is not JSON to it).
const MAX_TEXT_DEPTH: usize = 128;

impl Shapes {
    /// The filter for a response held against shape `node`, for a walk that also does other
    /// work (data protection's): see [`ResponseFilter`].
    pub fn response_filter<'s>(&'s self, base: &'s str) -> ResponseFilter<'s> {
        ResponseFilter {
            shapes: self,
            base,
            found: Vec::new(),
        }
    }

    /// Removes undeclared and `writeOnly` members from a JSON text along shape `node`, on the
    /// text itself: no tree is built, members are cut out, and an answer with nothing to remove
    /// is left byte for byte as it came. Returns what was found and, when something was
    /// removed, the new text.
    pub fn filter_text(&self, node: usize, text: &[u8], base: &str) -> Filtered {
        let text = std::str::from_utf8(text).map_err(|_| NotJson)?;
        let mut filter = self.response_filter(base);
        let walked = json::walk_members(text, MAX_TEXT_DEPTH, &mut filter, Some(node), |_| false)
            .map_err(|_| NotJson)?;
        if walked.removed.is_empty() {
            return Ok((filter.found, None));
        }
        let mut out = Vec::with_capacity(text.len());
        let mut at = 0;
        for cut in &walked.removed {
            out.extend_from_slice(&text.as_bytes()[at..cut.start]);
            at = cut.end;
        }
        out.extend_from_slice(&text.as_bytes()[at..]);
        Ok((filter.found, Some(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_fingerprint_as_their_bytes_and_length() {
        let text: Vec<u8> = (1..=12u8).map(|i| i.wrapping_mul(37) | 0x80).collect();
        for n in 0..=8 {
            let mut want = [0u8; 8];
            want[..n].copy_from_slice(&text[..n]);
            let len = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            assert_eq!(head_word(&text[..n]), u64::from_le_bytes(want) ^ len, "{n}");
        }
        assert_ne!(head_word(b"created_at"), head_word(b"created_by"));
    }

    /// Both regimes find exactly the names put in: names sharing their first eight bytes, names
    /// that are prefixes of others, the empty name, and bytes past ASCII.
    #[test]
    fn prop_tables_find_exactly_their_names() {
        let names: Vec<Vec<u8>> = [
            "",
            "a",
            "ab",
            "ab\0",
            "abc",
            "id",
            "created",
            "created_",
            "created_at",
            "created_by",
            "créé",
            "12345678",
            "123456789",
            "1234567",
        ]
        .iter()
        .map(|n| n.as_bytes().to_vec())
        .chain((0..60).map(|i| format!("field_number_{i}").into_bytes()))
        .collect();
        for count in [0, 3, PropTable::FEW, names.len()] {
            let props = names[..count]
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let prop = Prop {
                        node: i,
                        read_only: false,
                        write_only: false,
                    };
                    (n.as_slice(), prop)
                })
                .collect();
            let t = PropTable::new(props);
            assert_eq!(t.many.is_empty(), count <= PropTable::FEW);
            for (i, n) in names.iter().enumerate() {
                let want = (i < count).then_some(i);
                assert_eq!(t.get(n).map(|p| p.node), want, "{count}: {n:?}");
            }
            for absent in [
                "b",
                "created_a",
                "created_atx",
                "1234567\0",
                "field_number_",
            ] {
                assert!(t.get(absent.as_bytes()).is_none(), "{count}: {absent}");
            }
        }
    }
}
