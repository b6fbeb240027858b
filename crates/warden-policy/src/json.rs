//! A small, strict JSON scanner that reports every key and scalar with its path and byte span,
//! without building a tree, and a splicer that rewrites chosen spans in the original text.
//!
//! Why not `serde_json::Value`: data protection rewrites a handful of leaves in a response, and
//! re-serialising a tree would reformat every number (`1.10` → `1.1`), reorder nothing but cost an
//! allocation per node; attack detection only reads. Both want paths (`user.cards[0].number`) and
//! spans, which a tree does not keep. The scanner accepts exactly RFC 8259 JSON (what `serde_json`
//! accepts), runs in linear time and stops at a depth limit instead of recursing without bound.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

/// Where the run of plain characters in a JSON string that starts at `i` ends: the index of the
/// first quote, backslash or control character (or, with `past_ascii`, byte past ASCII), or
/// `b.len()`. Eight bytes at a time: the strings in API bodies are mostly short, where a
/// `memchr` call costs more than the loop it replaces. The word that holds a stop gives its
/// place directly: in each test below the lowest flagged byte is exact (a borrow only runs
/// upward from a byte that matched), so its trailing zeros count the plain bytes before it.
#[inline(always)]
pub fn plain_run_end(b: &[u8], mut i: usize, past_ascii: bool) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Each term flags (in the byte's high bit) the bytes that are that kind of byte.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let high = if past_ascii { HIGH } else { 0 };
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let quote = zero(w ^ (ONES * u64::from(b'"')));
        let backslash = zero(w ^ (ONES * u64::from(b'\\')));
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let stops = quote | backslash | control | (w & high);
        if stops != 0 {
            return i + (stops.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let stops = |c: u8| c == b'"' || c == b'\\' || c < 0x20 || (past_ascii && c >= 0x80);
    while i < b.len() {
        if stops(b[i]) {
            return i;
        }
        i += 1;
    }
    b.len()
}

/// One step of a path: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg<'a> {
    Key(Cow<'a, str>),
    Index(usize),
}

/// A path as the scanner sees it; `Display` renders `a.b[0]["odd key"]`.
#[derive(Debug, Clone, Copy)]
pub struct Path<'p, 'a>(pub &'p [Seg<'a>]);

impl Path<'_, '_> {
    /// The innermost object key, if the leaf sits under one (`[0]` steps are skipped).
    pub fn last_key(&self) -> Option<&str> {
        self.0.iter().rev().find_map(|s| match s {
            Seg::Key(k) => Some(k.as_ref()),
            Seg::Index(_) => None,
        })
    }
}

impl fmt::Display for Path<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("$");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(n) => write!(f, "[{n}]")?,
                Seg::Key(k) => {
                    let plain = !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                    if plain {
                        if i > 0 {
                            f.write_str(".")?;
                        }
                        f.write_str(k)?;
                    } else {
                        // Keys are data: render them escaped so a path never splits a log line.
                        write!(f, "[{}]", escape_key(k))?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn escape_key(k: &str) -> String {
    let mut out = String::with_capacity(k.len() + 2);
    out.push('"');
    for c in k.chars().take(64) {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A scalar value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    /// The decoded string (escapes resolved).
    Str(Cow<'a, str>),
    /// The number exactly as written.
    Num(&'a str),
    Bool(bool),
    Null,
}

/// What the scanner reports, in document order.
#[derive(Debug)]
pub enum Event<'e, 'a> {
    /// An object key. `path` is the object's path; `span` covers the key's quotes.
    Key {
        path: Path<'e, 'a>,
        key: &'e str,
        span: Range<usize>,
    },
    /// A scalar. `span` covers the value as written (quotes included); `member` covers
    /// `"key": value` when the scalar is an object member, for removing the whole member.
    Leaf {
        path: Path<'e, 'a>,
        value: &'e Scalar<'a>,
        span: Range<usize>,
        member: Option<Range<usize>>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("invalid JSON at byte {at}: {what}")]
    Syntax { at: usize, what: &'static str },
    #[error("JSON nested deeper than {limit} levels")]
    TooDeep { limit: usize },
}

/// What a scan saw, for limits and statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    pub max_depth: usize,
    pub max_array_len: usize,
    pub max_string_len: usize,
    pub leaves: usize,
}

/// Scans `input`, calling `on` for every key and scalar. Fails on the first syntax error, or when
/// nesting passes `max_depth`.
pub fn walk<'a>(
    input: &'a str,
    max_depth: usize,
    mut on: impl FnMut(Event<'_, 'a>),
) -> Result<Shape, JsonError> {
    let walked = walk_members(input, max_depth, &mut KeepAll, None, |e| {
        on(e);
        false
    })?;
    Ok(walked.shape)
}

/// What to do with an object member, decided from its name before its value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member<N> {
    /// Keep it; its value is held against `Some(node)`, or against nothing.
    Keep(Option<N>),
    /// Remove it from the text. Its value is still read (the text must be JSON) but reported to
    /// no one: a field that is not sent needs no other look.
    Remove,
}

/// Decides member by member which ones a JSON text keeps, as the walk meets them: an API
/// contract's response filter (undeclared and `writeOnly` fields) rides on the walk that
/// data protection makes anyway, so one pass over the answer serves both.
pub trait Members {
    /// Where the walk stands in the decider's own tree (a schema, say).
    type Node: Copy;
    /// Member `key` of an object held against `object`; `path` is the object's.
    fn member(&mut self, object: Self::Node, path: Path<'_, '_>, key: &str) -> Member<Self::Node>;
    /// What an array held against `array` holds its items against.
    fn items(&self, array: Self::Node) -> Option<Self::Node>;
}

/// Keeps every member.
pub struct KeepAll;

impl Members for KeepAll {
    type Node = ();
    fn member(&mut self, _: (), _: Path<'_, '_>, _: &str) -> Member<()> {
        Member::Keep(None)
    }
    fn items(&self, _: ()) -> Option<()> {
        None
    }
}

/// What [`walk_members`] saw and what it took out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walked {
    pub shape: Shape,
    /// Spans to delete so that the removed members are gone and the text stays JSON: a run of
    /// neighbouring removed members is one span, taking its commas with it. In text order; they
    /// never overlap.
    pub removed: Vec<Range<usize>>,
}

/// [`walk`], with `members` deciding which members stay (the walk starts at `root`), and `on`
/// able to remove the member that holds the scalar it was just shown by returning `true`
/// (ignored for array items and the top value). Removed members' keys and leaves are not shown.
pub fn walk_members<'a, M: Members>(
    input: &'a str,
    max_depth: usize,
    members: &mut M,
    root: Option<M::Node>,
    mut on: impl FnMut(Event<'_, 'a>) -> bool,
) -> Result<Walked, JsonError> {
    let mut s = Scanner {
        b: input.as_bytes(),
        src: input,
        i: 0,
        path: Vec::new(),
        max_depth,
        shape: Shape::default(),
        members,
        quiet: 0,
        removed: Vec::new(),
    };
    s.ws();
    s.value(&mut on, None, root)?;
    s.ws();
    if s.i != s.b.len() {
        return Err(s.err("trailing characters after the JSON value"));
    }
    // An object's runs are closed as its members end, after the runs inside those members.
    s.removed.sort_unstable_by_key(|r| r.start);
    Ok(Walked {
        shape: s.shape,
        removed: s.removed,
    })
}

struct Scanner<'a, 'm, M: Members> {
    b: &'a [u8],
    src: &'a str,
    i: usize,
    path: Vec<Seg<'a>>,
    max_depth: usize,
    shape: Shape,
    members: &'m mut M,
    /// Above zero inside a removed member: nothing is shown.
    quiet: u32,
    removed: Vec<Range<usize>>,
}

impl<'a, M: Members> Scanner<'a, '_, M> {
    fn err(&self, what: &'static str) -> JsonError {
        JsonError::Syntax { at: self.i, what }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    /// `member_start`: where the `"key"` of the enclosing member began, if any. Returns whether
    /// `on` asked for the member to go.
    fn value(
        &mut self,
        on: &mut impl FnMut(Event<'_, 'a>) -> bool,
        member_start: Option<usize>,
        node: Option<M::Node>,
    ) -> Result<bool, JsonError> {
        let start = self.i;
        match self.peek() {
            Some(b'{') => self.object(on, node).map(|()| false),
            Some(b'[') => self.array(on, node).map(|()| false),
            Some(b'"') => {
                let v = Scalar::Str(self.string()?);
                Ok(self.leaf(on, &v, start, member_start))
            }
            Some(b't') => self.literal(b"true", Scalar::Bool(true), on, member_start),
            Some(b'f') => self.literal(b"false", Scalar::Bool(false), on, member_start),
            Some(b'n') => self.literal(b"null", Scalar::Null, on, member_start),
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                let v = Scalar::Num(&self.src[start..self.i]);
                Ok(self.leaf(on, &v, start, member_start))
            }
            Some(_) => Err(self.err("expected a value")),
            None => Err(self.err("unexpected end of input")),
        }
    }

    fn leaf(
        &mut self,
        on: &mut impl FnMut(Event<'_, 'a>) -> bool,
        v: &Scalar<'a>,
        start: usize,
        member_start: Option<usize>,
    ) -> bool {
        self.shape.leaves += 1;
        if self.quiet > 0 {
            return false;
        }
        let remove = on(Event::Leaf {
            path: Path(&self.path),
            value: v,
            span: start..self.i,
            member: member_start.map(|m| m..self.i),
        });
        remove && member_start.is_some()
    }

    fn literal(
        &mut self,
        word: &'static [u8],
        v: Scalar<'a>,
        on: &mut impl FnMut(Event<'_, 'a>) -> bool,
        member_start: Option<usize>,
    ) -> Result<bool, JsonError> {
        let start = self.i;
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(self.leaf(on, &v, start, member_start))
        } else {
            Err(self.err("expected true, false or null"))
        }
    }

    fn enter(&mut self) -> Result<(), JsonError> {
        let depth = self.path.len() + 1;
        if depth > self.max_depth {
            return Err(JsonError::TooDeep {
                limit: self.max_depth,
            });
        }
        self.shape.max_depth = self.shape.max_depth.max(depth);
        Ok(())
    }

    fn object(
        &mut self,
        on: &mut impl FnMut(Event<'_, 'a>) -> bool,
        node: Option<M::Node>,
    ) -> Result<(), JsonError> {
        self.enter()?;
        self.i += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        // Runs of removed members, closed by the next kept member or by the object's end, become
        // one span each, so the commas between the members that stay always come out right.
        let mut last_kept_end: Option<usize> = None;
        let mut run_start: Option<usize> = None;
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected an object key"));
            }
            let key_start = self.i;
            let key = self.string()?;
            let rule = match node {
                Some(n) if self.quiet == 0 => self.members.member(n, Path(&self.path), &key),
                _ => Member::Keep(None),
            };
            let dropped = matches!(rule, Member::Remove);
            if self.quiet == 0 && !dropped {
                on(Event::Key {
                    path: Path(&self.path),
                    key: &key,
                    span: key_start..self.i,
                });
            }
            self.ws();
            self.expect(b':', "expected `:` after an object key")?;
            self.ws();
            self.path.push(Seg::Key(key));
            // A scalar member reports its own span; containers report their leaves.
            let remove = match rule {
                Member::Remove => {
                    self.quiet += 1;
                    self.value(on, Some(key_start), None)?;
                    self.quiet -= 1;
                    true
                }
                Member::Keep(next) => self.value(on, Some(key_start), next)?,
            };
            self.path.pop();
            if remove {
                run_start.get_or_insert(key_start);
            } else {
                if let Some(s) = run_start.take() {
                    self.removed.push(s..key_start);
                }
                last_kept_end = Some(self.i);
            }
            let last_end = self.i;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    if let Some(s) = run_start {
                        self.removed.push(last_kept_end.unwrap_or(s)..last_end);
                    }
                    return Ok(());
                }
                _ => return Err(self.err("expected `,` or `}` in an object")),
            }
        }
    }

    fn array(
        &mut self,
        on: &mut impl FnMut(Event<'_, 'a>) -> bool,
        node: Option<M::Node>,
    ) -> Result<(), JsonError> {
        self.enter()?;
        self.i += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        let items = node.and_then(|n| self.members.items(n));
        let mut n = 0;
        loop {
            self.ws();
            self.path.push(Seg::Index(n));
            self.value(on, None, items)?;
            self.path.pop();
            n += 1;
            self.shape.max_array_len = self.shape.max_array_len.max(n);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected `,` or `]` in an array")),
            }
        }
    }

    fn number(&mut self) -> Result<(), JsonError> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.err("expected a digit")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err("expected a digit after `.`"));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err("expected a digit in the exponent"));
            }
            self.digits();
        }
        Ok(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    /// A string starting at the opening quote; returns its decoded content.
    #[inline(always)]
    fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.i += 1;
        let start = self.i;
        // Fast path: no escapes.
        self.i = plain_run_end(self.b, self.i, false);
        match self.peek() {
            None => return Err(self.err("unterminated string")),
            Some(b'"') => {
                let s = &self.src[start..self.i];
                self.i += 1;
                self.shape.max_string_len = self.shape.max_string_len.max(s.len());
                return Ok(Cow::Borrowed(s));
            }
            Some(b'\\') => {}
            Some(_) => return Err(self.err("control character in a string")),
        }
        let mut out = String::from(&self.src[start..self.i]);
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    self.shape.max_string_len = self.shape.max_string_len.max(out.len());
                    return Ok(Cow::Owned(out));
                }
                Some(0..=0x1f) => return Err(self.err("control character in a string")),
                Some(b'\\') => {
                    self.i += 1;
                    let c = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.i += 1;
                            let hi = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&hi) {
                                if !self.b[self.i..].starts_with(b"\\u") {
                                    return Err(self.err("lone surrogate in a \\u escape"));
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("invalid surrogate pair"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err(self.err("lone surrogate in a \\u escape"));
                            } else {
                                hi
                            };
                            out.push(char::from_u32(c).ok_or_else(|| self.err("bad escape"))?);
                            continue;
                        }
                        _ => return Err(self.err("invalid escape")),
                    };
                    self.i += 1;
                    out.push(c);
                }
                Some(_) => {
                    // Copy the run up to the next quote, escape or control character (ASCII
                    // bytes, so the run ends on a character boundary).
                    let end = plain_run_end(self.b, self.i, false);
                    out.push_str(&self.src[self.i..end]);
                    self.i = end;
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .b
            .get(self.i..self.i + 4)
            .ok_or_else(|| self.err("short \\u escape"))?;
        let mut v = 0u32;
        for &d in digits {
            v = v * 16
                + (d as char)
                    .to_digit(16)
                    .ok_or_else(|| self.err("bad \\u escape"))?;
        }
        self.i += 4;
        Ok(v)
    }
}

/// One change to the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub span: Range<usize>,
    pub replacement: String,
}

/// A JSON string literal for `s`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Applies non-overlapping edits (any order) to `text`. Overlapping edits keep the first by
/// position and drop the rest.
pub fn splice(text: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|e| (e.span.start, e.span.end));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for e in edits {
        if e.span.start < at {
            continue;
        }
        out.push_str(&text[at..e.span.start]);
        out.push_str(&e.replacement);
        at = e.span.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(text: &str) -> Vec<(String, Scalar<'_>, String)> {
        let mut out = Vec::new();
        walk(text, 64, |e| {
            if let Event::Leaf {
                path, value, span, ..
            } = e
            {
                out.push((path.to_string(), value.clone(), text[span].to_string()));
            }
        })
        .unwrap();
        out
    }

    #[test]
    fn paths_values_and_spans() {
        let text = r#" {"a": {"b": [1, "x\"y", true]}, "we ird": null, "n": -1.5e3 } "#;
        let got = leaves(text);
        assert_eq!(
            got,
            vec![
                ("a.b[0]".into(), Scalar::Num("1"), "1".into()),
                (
                    "a.b[1]".into(),
                    Scalar::Str("x\"y".into()),
                    r#""x\"y""#.into()
                ),
                ("a.b[2]".into(), Scalar::Bool(true), "true".into()),
                (r#"["we ird"]"#.into(), Scalar::Null, "null".into()),
                ("n".into(), Scalar::Num("-1.5e3"), "-1.5e3".into()),
            ]
        );
    }

    #[test]
    fn escapes_and_surrogates_decode() {
        let got = leaves(r#"["\u00e9\ud83d\ude00\n\/"]"#);
        assert_eq!(got[0].1, Scalar::Str("é😀\n/".into()));
    }

    #[test]
    fn invalid_json_is_refused() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            "-",
            "\"\\x\"",
            "\"a\nb\"",
            "[1] x",
            "{a:1}",
            "\"\\ud800\"",
            "tru",
            "[\"\\u12\"]",
        ] {
            assert!(walk(bad, 64, |_| {}).is_err(), "{bad:?}");
        }
        for good in ["0", "-0.5E+2", "\"\"", "[]", "{}", " [ { } , [ ] ] "] {
            assert!(walk(good, 64, |_| {}).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert_eq!(
            walk(&deep, 64, |_| {}),
            Err(JsonError::TooDeep { limit: 64 })
        );
        assert_eq!(walk(&deep, 100, |_| {}).unwrap().max_depth, 100);
    }

    /// Replaces and removes through `walk_members`: by name (the `Members` hook) and by value
    /// (`on` returning true), in any mix of neighbours, and the text stays JSON.
    fn edited(text: &str, by_name: &[&str], by_value: &[&str], masked: &str) -> String {
        struct Named<'n>(&'n [&'n str]);
        impl Members for Named<'_> {
            type Node = ();
            fn member(&mut self, _: (), _: Path<'_, '_>, key: &str) -> Member<()> {
                if self.0.contains(&key) {
                    Member::Remove
                } else {
                    Member::Keep(Some(()))
                }
            }
            fn items(&self, _: ()) -> Option<()> {
                Some(())
            }
        }
        let mut edits = Vec::new();
        let walked = walk_members(text, 8, &mut Named(by_name), Some(()), |e| {
            let Event::Leaf { path, span, .. } = e else {
                return false;
            };
            let key = path.last_key().unwrap_or("");
            assert!(!by_name.contains(&key), "a removed member was shown: {key}");
            if key == masked {
                edits.push(Edit {
                    span,
                    replacement: quote("***"),
                });
            }
            by_value.contains(&key)
        })
        .unwrap();
        edits.extend(walked.removed.into_iter().map(|span| Edit {
            span,
            replacement: String::new(),
        }));
        let out = splice(text, edits);
        assert!(walk(&out, 8, |_| {}).is_ok(), "{out}");
        out
    }

    /// A document from a list of steps: each adds a member (key `abcd`[k]) at nesting `d`,
    /// holding a number, an object or an array of one object.
    fn grow(steps: &[(usize, usize, u8)]) -> serde_json::Value {
        use serde_json::{json, Map, Value};
        let mut root = Map::new();
        for (i, &(k, depth, kind)) in steps.iter().enumerate() {
            let mut at = &mut root;
            for _ in 0..depth {
                let next = at.entry("d").or_insert_with(|| Value::Object(Map::new()));
                if !next.is_object() {
                    *next = Value::Object(Map::new());
                }
                at = next.as_object_mut().unwrap();
            }
            let key = ["a", "b", "c", "d"][k];
            let v = match kind {
                0 => json!(i),
                1 => json!({ "a": i, "x": "y" }),
                _ => json!([{ "b": i }, 2]),
            };
            if key != "d" || !at.contains_key("d") {
                at.insert(key.to_string(), v);
            }
        }
        Value::Object(root)
    }

    /// What removing `gone` does to the tree: by name, any member so named; by value, only those
    /// that hold a scalar.
    fn strip(v: &mut serde_json::Value, gone: &[&str], by_value: bool) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, v| {
                    let scalar = !(v.is_object() || v.is_array());
                    !(gone.contains(&k.as_str()) && (!by_value || scalar))
                });
                m.values_mut().for_each(|v| strip(v, gone, by_value));
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|v| strip(v, gone, by_value)),
            _ => {}
        }
    }

    #[test]
    fn members_are_replaced_and_removed() {
        let text = r#"{"a": "secret", "b": 2, "c": 3}"#;
        assert_eq!(edited(text, &[], &["c"], "a"), r#"{"a": "***", "b": 2}"#);
        assert_eq!(edited(text, &["b"], &["c"], "a"), r#"{"a": "***"}"#);
        assert_eq!(edited(text, &["a"], &["b"], "a"), r#"{"c": 3}"#);
        assert_eq!(edited(text, &["a", "b", "c"], &[], "a"), "{}");
        assert_eq!(edited(text, &["b"], &[], "a"), r#"{"a": "***", "c": 3}"#);
        assert_eq!(edited(r#"{ "x": 1 }"#, &["x"], &[], "a"), "{  }");
        assert_eq!(
            edited(r#"{"x": 1,  "y": 2}"#, &[], &["x"], "a"),
            r#"{"y": 2}"#
        );
        // Nested, in arrays, and a removed member holding what would otherwise be shown.
        let nested = r#"[{"x": {"a": "s", "y": [1, {"x": 0}]}, "k": "v"}, {"x": 1}]"#;
        assert_eq!(edited(nested, &["x"], &[], "a"), r#"[{"k": "v"}, {}]"#);
        assert_eq!(
            edited(nested, &["y"], &["k"], "a"),
            r#"[{"x": {"a": "***"}}, {"x": 1}]"#
        );
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_serde_json(text in r#"[\[\]{}",:0-9a-z\\ .eE+-]{0,60}"#) {
            let ours = walk(&text, 128, |_| {}).is_ok();
            let theirs = serde_json::from_str::<serde_json::Value>(&text).is_ok();
            proptest::prop_assert_eq!(ours, theirs, "{}", text);
        }

        // The word-at-a-time scan stops exactly where a byte-at-a-time one does.
        #[test]
        fn plain_runs_end_where_a_byte_loop_says(
            // Mostly plain bytes, so that runs span several words.
            b in proptest::collection::vec(proptest::sample::select(b"aaaaaaaaaaaaaaaaaaa ~0\"\\\x1f\x7f\x80\xe9\xff".to_vec()), 0..64),
            from in 0usize..64,
            past_ascii in proptest::bool::ANY,
        ) {
            let from = from.min(b.len());
            let naive = (from..b.len())
                .find(|&i| matches!(b[i], b'"' | b'\\' | 0..=0x1f) || (past_ascii && b[i] >= 0x80))
                .unwrap_or(b.len());
            proptest::prop_assert_eq!(plain_run_end(&b, from, past_ascii), naive);
        }

        // Removing members by name from any document gives what removing them from its tree
        // gives, and by value (the leaves under one name) too.
        #[test]
        fn removals_match_the_tree(
            doc in proptest::collection::vec((0usize..4, 0usize..3, 0u8..3), 0..24),
            gone in proptest::sample::subsequence(vec!["a", "b", "c", "d"], 0..4),
            by_value in proptest::bool::ANY,
        ) {
            let value = grow(&doc);
            let text = serde_json::to_string_pretty(&value).unwrap();
            let (names, values): (&[&str], &[&str]) = if by_value { (&[], &gone) } else { (&gone, &[]) };
            let out = edited(&text, names, values, "");
            let mut expected = value.clone();
            strip(&mut expected, &gone, by_value);
            proptest::prop_assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap(), expected);
        }

        #[test]
        fn string_leaves_match_serde_json(v in proptest::collection::vec("\\PC{0,40}", 0..6)) {
            let text = serde_json::to_string(&v).unwrap();
            let mut got = Vec::new();
            walk(&text, 8, |e| if let Event::Leaf { value: Scalar::Str(s), .. } = e { got.push(s.to_string()) }).unwrap();
            proptest::prop_assert_eq!(got, v);
        }
    }
}
