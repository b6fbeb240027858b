//! Normalisation, once per inspected value: undo the encodings attackers use to slip past
//! pattern matching, and record which were needed, since heavy encoding is itself a signal.
//!
//! In order: percent-decoding (repeated while it changes, up to three rounds; IIS `%uXXXX` too),
//! overlong UTF-8 (`%c0%af` for `/`), HTML entities, NUL bytes removed, Unicode NFKC (full-width
//! `＜script＞` becomes `<script>`), then lower case. A second, compact view also drops SQL
//! comments (`/**/`, keeping MySQL's `/*!...*/` content) and collapses whitespace, for the
//! keyword-based detectors. Everything is linear in the input, and values are cut at a bound.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

/// Which transformations a value needed. The first percent-decoding of a value that arrives
/// percent-encoded (query, form, path, cookie) is the transport's, not an evasion, and is not
/// recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Transforms(u16);

impl Transforms {
    pub const URL_DECODE: Transforms = Transforms(1);
    pub const MULTI_URL_DECODE: Transforms = Transforms(1 << 1);
    pub const HTML_ENTITIES: Transforms = Transforms(1 << 2);
    pub const UNICODE: Transforms = Transforms(1 << 3);
    pub const NULL_BYTES: Transforms = Transforms(1 << 4);
    pub const OVERLONG_UTF8: Transforms = Transforms(1 << 5);
    pub const SQL_COMMENTS: Transforms = Transforms(1 << 6);
    pub const WHITESPACE: Transforms = Transforms(1 << 7);
    pub const TRUNCATED: Transforms = Transforms(1 << 8);
    pub const JS_ESCAPES: Transforms = Transforms(1 << 9);

    const NAMES: [(Transforms, &'static str); 10] = [
        (Transforms::URL_DECODE, "url-decode"),
        (Transforms::MULTI_URL_DECODE, "multi-url-decode"),
        (Transforms::HTML_ENTITIES, "html-entities"),
        (Transforms::UNICODE, "unicode-nfkc"),
        (Transforms::NULL_BYTES, "null-bytes"),
        (Transforms::OVERLONG_UTF8, "overlong-utf8"),
        (Transforms::SQL_COMMENTS, "sql-comments"),
        (Transforms::WHITESPACE, "whitespace"),
        (Transforms::TRUNCATED, "truncated"),
        (Transforms::JS_ESCAPES, "js-escapes"),
    ];

    pub fn contains(self, other: Transforms) -> bool {
        self.0 & other.0 == other.0
    }

    fn insert(&mut self, other: Transforms) {
        self.0 |= other.0;
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Transformations that hide content (not mere whitespace or comments), counted as a signal.
    pub fn evasions(self) -> u32 {
        [
            Transforms::URL_DECODE,
            Transforms::MULTI_URL_DECODE,
            Transforms::HTML_ENTITIES,
            Transforms::UNICODE,
            Transforms::NULL_BYTES,
            Transforms::OVERLONG_UTF8,
            Transforms::JS_ESCAPES,
        ]
        .iter()
        .filter(|t| self.contains(**t))
        .count() as u32
    }

    pub fn names(self) -> Vec<&'static str> {
        Transforms::NAMES
            .iter()
            .filter(|(t, _)| self.contains(*t))
            .map(|(_, n)| *n)
            .collect()
    }
}

/// How a value arrived, which decides the first decoding round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Query string or form body: percent-encoding with `+` for space.
    Form,
    /// Path segment or cookie: percent-encoding, `+` is itself.
    Percent,
    /// Already decoded (JSON strings, headers).
    Plain,
}

/// A value as the detectors see it.
#[derive(Debug, Clone)]
pub struct Normalized<'a> {
    /// Decoded, case kept (libinjection tokenises this).
    pub decoded: Cow<'a, str>,
    /// Decoded and lower-cased.
    pub lower: Cow<'a, str>,
    /// Lower-cased, SQL comments removed, whitespace runs collapsed to one space; `None` when
    /// that is `lower` unchanged (most values: no copy made). Read it through [`Self::compact`].
    pub compact: Option<String>,
    /// Only for a value with null bytes or bytes that are not UTF-8: the compact view with each
    /// of them read as a space instead of dropped. Dropping them undoes `ja\0vascript:`; a
    /// database's lexer may instead take them as separators (`1%00UNION%00SELECT`,
    /// `1%A0UNION%A0SELECT` to MySQL), which only this view shows.
    pub separated: Option<String>,
    pub transforms: Transforms,
}

impl Normalized<'_> {
    /// Lower-cased, SQL comments removed, whitespace runs collapsed to one space.
    pub fn compact(&self) -> &str {
        self.compact.as_deref().unwrap_or(&self.lower)
    }
}

/// Values longer than this are cut: detectors stay bounded in time per value.
pub const MAX_VALUE: usize = 16 * 1024;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One round of percent-decoding (and `%uXXXX`). Returns `None` when nothing changed.
fn percent_decode(input: &[u8], plus_is_space: bool) -> Option<Vec<u8>> {
    if !(input.contains(&b'%') || plus_is_space && input.contains(&b'+')) {
        return None;
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    let mut changed = false;
    while i < input.len() {
        let b = input[i];
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                input.get(i + 1).copied().and_then(hex),
                input.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h * 16 + l);
                i += 3;
                changed = true;
                continue;
            }
            // IIS-style %uXXXX.
            if matches!(input.get(i + 1), Some(b'u' | b'U')) {
                let digits: Option<Vec<u8>> = input
                    .get(i + 2..i + 6)
                    .map(|d| d.iter().map(|c| hex(*c)).collect::<Option<Vec<u8>>>())
                    .unwrap_or(None);
                if let Some(d) = digits {
                    let cp = d.iter().fold(0u32, |a, x| a * 16 + u32::from(*x));
                    if let Some(c) = char::from_u32(cp) {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        i += 6;
                        changed = true;
                        continue;
                    }
                }
            }
        } else if b == b'+' && plus_is_space {
            out.push(b' ');
            i += 1;
            changed = true;
            continue;
        }
        out.push(b);
        i += 1;
    }
    changed.then_some(out)
}

/// Replaces overlong UTF-8 encodings of ASCII (a classic way to spell `/` or `.` past filters)
/// and makes the rest valid UTF-8. Returns whether an overlong form was found.
fn fix_utf8(bytes: Vec<u8>) -> (String, bool) {
    match String::from_utf8(bytes) {
        Ok(s) => (s, false),
        Err(e) => {
            let b = e.into_bytes();
            let mut out = Vec::with_capacity(b.len());
            let mut overlong = false;
            let mut i = 0;
            while i < b.len() {
                match (b[i], b.get(i + 1).copied(), b.get(i + 2).copied()) {
                    (0xC0 | 0xC1, Some(c), _) if c & 0xC0 == 0x80 => {
                        out.push(((b[i] & 0x1F) << 6) | (c & 0x3F));
                        overlong = true;
                        i += 2;
                    }
                    (0xE0, Some(c1), Some(c2))
                        if (0x80..0xA0).contains(&c1) && c2 & 0xC0 == 0x80 =>
                    {
                        let cp = (u32::from(c1 & 0x3F) << 6) | u32::from(c2 & 0x3F);
                        if cp < 0x80 {
                            out.push(cp as u8);
                        }
                        overlong = true;
                        i += 3;
                    }
                    _ => {
                        out.push(b[i]);
                        i += 1;
                    }
                }
            }
            (String::from_utf8_lossy(&out).into_owned(), overlong)
        }
    }
}

/// Decodes HTML character references. Returns `None` when there were none.
fn html_decode(s: &str) -> Option<String> {
    if !s.contains('&') {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let body = &rest[1..];
        let (decoded, used) = if let Some(num) = body.strip_prefix('#') {
            let (radix, digits) = match num.strip_prefix(['x', 'X']) {
                Some(h) => (16, h),
                None => (10, num),
            };
            let len = digits
                .find(|c: char| !c.is_digit(radix))
                .unwrap_or(digits.len())
                .min(8);
            let cp = u32::from_str_radix(&digits[..len], radix).ok();
            match cp.and_then(char::from_u32) {
                Some(c) if len > 0 => {
                    let prefix = 1 + (num.len() - digits.len()) + len;
                    let semi = usize::from(body[prefix..].starts_with(';'));
                    (Some(c), 1 + prefix + semi)
                }
                _ => (None, 1),
            }
        } else {
            const NAMED: [(&str, char); 16] = [
                ("lt;", '<'),
                ("gt;", '>'),
                ("amp;", '&'),
                ("quot;", '"'),
                ("apos;", '\''),
                ("nbsp;", ' '),
                ("colon;", ':'),
                ("lpar;", '('),
                ("rpar;", ')'),
                ("sol;", '/'),
                ("bsol;", '\\'),
                ("tab;", '\t'),
                ("newline;", '\n'),
                ("grave;", '`'),
                ("semi;", ';'),
                ("equals;", '='),
            ];
            match NAMED.iter().find(|(n, _)| {
                body.get(..n.len())
                    .is_some_and(|b| b.eq_ignore_ascii_case(n))
            }) {
                Some((n, c)) => (Some(*c), 1 + n.len()),
                None => (None, 1),
            }
        };
        match decoded {
            Some(c) => {
                out.push(c);
                changed = true;
            }
            None => out.push('&'),
        }
        rest = &rest[used.min(rest.len())..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// Decodes JavaScript escapes (`\u0063`, `\x63`), which scripts and JSON-in-strings accept.
fn js_decode(s: &str) -> Option<String> {
    // One pass for both escapes (two `contains` calls cost more on the short values most are).
    let escape = |w: &[u8]| w[0] == b'\\' && matches!(w[1], b'u' | b'x');
    if !s.as_bytes().windows(2).any(escape) {
        return None;
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let (len, digits) = match b[i + 1] {
                b'u' => (4, b.get(i + 2..i + 6)),
                b'x' => (2, b.get(i + 2..i + 4)),
                _ => (0, None),
            };
            if let Some(d) = digits.filter(|d| d.iter().all(u8::is_ascii_hexdigit)) {
                let cp = d
                    .iter()
                    .fold(0u32, |a, c| a * 16 + (*c as char).to_digit(16).unwrap_or(0));
                if let Some(c) = char::from_u32(cp) {
                    out.push(c);
                    i += 2 + len;
                    changed = true;
                    continue;
                }
            }
        }
        let ch = s[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    changed.then_some(out)
}

/// Removes SQL comments (keeping the content of MySQL's executable `/*!...*/`) and collapses
/// whitespace. Returns the transformations applied.
fn compact(lower: &str) -> (String, Transforms) {
    let mut t = Transforms::default();
    let mut out = String::with_capacity(lower.len());
    let mut rest = lower;
    while let Some(p) = rest.find("/*") {
        out.push_str(&rest[..p]);
        let after = &rest[p + 2..];
        let end = after.find("*/");
        let inner = &after[..end.unwrap_or(after.len())];
        t.insert(Transforms::SQL_COMMENTS);
        if let Some(exec) = inner.strip_prefix('!') {
            // `/*!50000union*/`: MySQL runs it. Keep the code, drop the version.
            out.push(' ');
            out.push_str(exec.trim_start_matches(|c: char| c.is_ascii_digit()));
        }
        out.push(' ');
        rest = end.map_or("", |e| &after[e + 2..]);
    }
    out.push_str(rest);
    let mut collapsed = String::with_capacity(out.len());
    let mut last_space = false;
    for c in out.chars() {
        if c.is_whitespace() || c == '\u{b}' {
            if !last_space {
                collapsed.push(' ');
            }
            if c != ' ' || last_space {
                t.insert(Transforms::WHITESPACE);
            }
            last_space = true;
        } else {
            collapsed.push(c);
            last_space = false;
        }
    }
    (collapsed.trim().to_string(), t)
}

/// Whether `b[at..]` may continue an `&` into an entity: `#`, or a run of letters ending in
/// `;`. The run is read once per `&`, and a run never holds another `&`, so a value is still
/// read in linear time.
fn entity_at(b: &[u8], at: usize) -> bool {
    match b.get(at) {
        Some(b'#') => true,
        Some(c) if c.is_ascii_alphabetic() => {
            let run = b[at..]
                .iter()
                .take_while(|c| c.is_ascii_alphabetic())
                .count();
            b.get(at + run) == Some(&b';')
        }
        _ => false,
    }
}

/// Normalises one value.
pub fn normalize(raw: &str, encoding: Encoding) -> Normalized<'_> {
    let mut t = Transforms::default();
    let mut raw = raw;
    if raw.len() > MAX_VALUE {
        let mut cut = MAX_VALUE;
        while !raw.is_char_boundary(cut) {
            cut -= 1;
        }
        raw = &raw[..cut];
        t.insert(Transforms::TRUNCATED);
    }
    let b = raw.as_bytes();
    // Nothing any decoding step would change: no escapes of any kind, no comment opener, no
    // control whitespace, ASCII only. `/` and `&` are common in URLs and prose, so only `/*`
    // and a possible entity count: `&#`, or letters closed by `;` (`&lt;`: every named entity
    // `html_decode` knows ends so, while a query string's `&ref=home` does not).
    // One pass of table loads also notes what the fast path needs: upper case to fold, double
    // spaces to collapse. The two-byte tests run only where their first byte occurs.
    const UPPER: u8 = 1;
    const SPACE: u8 = 2;
    const ESCAPE: u8 = 4;
    const PLUS: u8 = 8;
    const SLASH: u8 = 16;
    const AMP: u8 = 32;
    const CLASS: [u8; 256] = {
        let mut t = super::byte_flags(&[
            (b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", UPPER),
            (b" ", SPACE),
            (b"%\0\t\n\r\\", ESCAPE),
            (b"+", PLUS),
            (b"/", SLASH),
            (b"&", AMP),
        ]);
        let mut c = 0x80;
        while c < 256 {
            t[c] = ESCAPE;
            c += 1;
        }
        t
    };
    let f = super::flags_of(&CLASS, b);
    let plain = f & ESCAPE == 0
        && !(f & PLUS != 0 && encoding == Encoding::Form)
        && !(f & SLASH != 0 && memchr::memmem::find(b, b"/*").is_some())
        && !(f & AMP != 0 && memchr::memchr_iter(b'&', b).any(|i| entity_at(b, i + 1)));
    let upper = f & UPPER != 0;
    let double_space = f & SPACE != 0 && memchr::memmem::find(b, b"  ").is_some();
    if plain {
        // The common case: nothing to decode, nothing to compact.
        let lower: Cow<'_, str> = if upper {
            Cow::Owned(raw.to_ascii_lowercase())
        } else {
            Cow::Borrowed(raw)
        };
        let compact = double_space.then(|| {
            let (c, ct) = compact(&lower);
            t.insert(ct);
            c
        });
        return Normalized {
            decoded: Cow::Borrowed(raw),
            lower,
            compact,
            separated: None,
            transforms: t,
        };
    }
    decode(raw, encoding, t)
}

/// The slow path: every decoding tried, in order.
fn decode(raw: &str, encoding: Encoding, mut t: Transforms) -> Normalized<'_> {
    let b = raw.as_bytes();
    // Percent-decoding, repeated: attackers encode twice to pass a filter that decodes once.
    let mut bytes: Cow<'_, [u8]> = Cow::Borrowed(b);
    let mut rounds = 0;
    for round in 0..3 {
        let plus = encoding == Encoding::Form && round == 0;
        match percent_decode(&bytes, plus) {
            Some(next) => {
                bytes = Cow::Owned(next);
                rounds += 1;
            }
            None => break,
        }
    }
    let free = usize::from(encoding != Encoding::Plain);
    if rounds > free {
        t.insert(Transforms::URL_DECODE);
        if rounds > free + 1 {
            t.insert(Transforms::MULTI_URL_DECODE);
        }
    }
    let (mut s, overlong) = match bytes {
        Cow::Borrowed(_) => (raw.to_string(), false),
        Cow::Owned(v) => fix_utf8(v),
    };
    if overlong {
        t.insert(Transforms::OVERLONG_UTF8);
    }
    if let Some(h) = html_decode(&s) {
        t.insert(Transforms::HTML_ENTITIES);
        s = h;
        // Entities hiding percent-encoding (`&#37;27`): one more round.
        if let Some(again) = percent_decode(s.as_bytes(), false) {
            s = fix_utf8(again).0;
        }
    }
    if let Some(j) = js_decode(&s) {
        t.insert(Transforms::JS_ESCAPES);
        s = j;
    }
    let separated = s.contains(['\0', char::REPLACEMENT_CHARACTER]).then(|| {
        compact(
            &s.replace(['\0', char::REPLACEMENT_CHARACTER], " ")
                .to_lowercase(),
        )
        .0
    });
    if s.contains('\0') {
        t.insert(Transforms::NULL_BYTES);
        s = s.replace('\0', "");
    }
    if !s.is_ascii() {
        let n: String = s.nfkc().collect();
        if n != s {
            t.insert(Transforms::UNICODE);
            s = n;
        }
    }
    let lower = s.to_lowercase();
    let (compact, ct) = compact(&lower);
    t.insert(ct);
    Normalized {
        decoded: Cow::Owned(s),
        lower: Cow::Owned(lower),
        compact: Some(compact),
        separated,
        transforms: t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str, e: Encoding) -> (String, String, Vec<&'static str>) {
        let v = normalize(s, e);
        (
            v.lower.to_string(),
            v.compact().to_string(),
            v.transforms.names(),
        )
    }

    #[test]
    fn encodings_are_undone_and_recorded() {
        assert_eq!(n("%27%20OR%201=1", Encoding::Form).0, "' or 1=1");
        assert!(
            n("%27%20OR", Encoding::Form).2.is_empty(),
            "the transport's own decoding"
        );
        assert_eq!(
            n("%2527", Encoding::Form),
            ("'".into(), "'".into(), vec!["url-decode"])
        );
        assert_eq!(
            n("%252527", Encoding::Form).2,
            vec!["url-decode", "multi-url-decode"]
        );
        assert_eq!(n("&lt;script&gt;", Encoding::Plain).0, "<script>");
        assert_eq!(n("&#x3C;img&#60;", Encoding::Plain).0, "<img<");
        assert_eq!(
            n("%c0%af..%c0%afetc", Encoding::Percent),
            ("/../etc".into(), "/../etc".into(), vec!["overlong-utf8"])
        );
        assert_eq!(n("＜ＳＣＲＩＰＴ＞", Encoding::Plain).0, "<script>");
        assert_eq!(n("a%00b", Encoding::Percent).0, "ab");
        assert_eq!(n("%u003cscript", Encoding::Percent).0, "<script");
        let (_, compact, t) = n("UNION/**/SELECT/*!50000CONCAT*/(1)\t\t--", Encoding::Plain);
        assert_eq!(compact, "union select concat (1) --");
        assert!(t.contains(&"sql-comments") && t.contains(&"whitespace"));
        assert_eq!(n("a+b", Encoding::Form).0, "a b");
        assert_eq!(n("a+b", Encoding::Percent).0, "a+b");
        assert_eq!(
            n("c\\u006fnsole", Encoding::Plain),
            ("console".into(), "console".into(), vec!["js-escapes"])
        );
    }

    #[test]
    fn null_and_stray_bytes_are_also_read_as_spaces() {
        let v = normalize("1%00UNION%00SELECT%A02", Encoding::Percent);
        assert_eq!(v.compact(), "1unionselect\u{fffd}2");
        assert_eq!(v.separated.as_deref(), Some("1 union select 2"));
        assert!(v.transforms.contains(Transforms::NULL_BYTES));
        // Nothing of the kind: no extra view, no extra work.
        assert_eq!(
            normalize("1 union select 2", Encoding::Percent).separated,
            None
        );
        assert_eq!(normalize("café", Encoding::Percent).separated, None);
    }

    #[test]
    fn plain_values_take_the_fast_path() {
        let v = normalize("hello World", Encoding::Plain);
        assert!(matches!(v.decoded, Cow::Borrowed(_)));
        assert_eq!(v.lower, "hello world");
        assert!(v.transforms.is_empty());
        // A query string's `&name=` is no entity; `&lt;` and `&#60` are.
        let url = normalize(
            "https://shop.example.com/p?id=4711&ref=home&amp",
            Encoding::Plain,
        );
        assert!(matches!(url.decoded, Cow::Borrowed(_)));
        for (s, want) in [
            ("x&lt;script", "x<script"),
            ("x&#60;b", "x<b"),
            ("&QUOT;a", "\"a"),
        ] {
            let v = normalize(s, Encoding::Plain);
            assert_eq!(v.decoded, want, "{s}");
            assert!(v.transforms.contains(Transforms::HTML_ENTITIES), "{s}");
        }
    }

    proptest::proptest! {
        /// The fast path gives what the full decoding would: it only skips steps that would
        /// change nothing (a value without leading or trailing spaces: the full path trims).
        #[test]
        fn the_fast_path_agrees_with_the_full_decoding(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Strategy::prop_map(proptest::sample::select(vec![
                        "&lt;", "&AMP;", "&#60;", "&#x3c", "&ref=", "&x", "&", ";", "=", "#",
                        "/*", "*/", "/", "%2", "%", "+", " ", "  ", "\\", "?",
                    ]), str::to_string),
                    "[a-zA-Z0-9.-]{1,4}",
                ],
                0..10,
            )
        ) {
            let s = parts.concat();
            let s = s.trim();
            for e in [Encoding::Form, Encoding::Percent, Encoding::Plain] {
                let fast = normalize(s, e);
                if matches!(fast.decoded, Cow::Owned(_)) {
                    continue; // not taken: nothing to compare
                }
                let full = decode(s, e, Transforms::default());
                proptest::prop_assert_eq!(&fast.decoded, &full.decoded, "{:?}", s);
                proptest::prop_assert_eq!(&fast.lower, &full.lower, "{:?}", s);
                proptest::prop_assert_eq!(fast.compact(), full.compact(), "{:?}", s);
                proptest::prop_assert_eq!(fast.transforms, full.transforms, "{:?}", s);
            }
        }

        #[test]
        fn never_panics_and_stays_bounded(s in "\\PC{0,200}") {
            for e in [Encoding::Form, Encoding::Percent, Encoding::Plain] {
                let v = normalize(&s, e);
                // Decoding never grows a value by more than NFKC's worst case.
                proptest::prop_assert!(v.lower.len() <= s.len() * 18 + 16);
            }
        }
    }
}
