//! Cross-site scripting: libinjection's HTML5 tokeniser decides whether a value would start
//! script in any HTML context (text, attribute values in each quoting); a few constructs it does
//! not cover (`javascript:` URLs spelled with whitespace, CSS `expression(`) are matched after
//! normalisation.

use super::{Detector, Hit, Normalized, Place, CRITICAL, ERROR, WARNING};

/// DOM events attackers use; any other `on...=` scores lower.
const EVENTS: [&str; 24] = [
    "onload",
    "onerror",
    "onclick",
    "onmouseover",
    "onmouseenter",
    "onfocus",
    "onblur",
    "onchange",
    "onsubmit",
    "onkeydown",
    "onkeyup",
    "onkeypress",
    "oninput",
    "onanimationstart",
    "ontoggle",
    "onpointerover",
    "onbegin",
    "onend",
    "onzoom",
    "onwheel",
    "onscroll",
    "onbeforeunload",
    "onhashchange",
    "onmessage",
];

/// `on<letters>=` preceded by a quote, space or slash, as an injected attribute.
fn event_handler(l: &str) -> Option<u8> {
    let b = l.as_bytes();
    let mut from = 0;
    while let Some(p) = l[from..].find("on") {
        let at = from + p;
        from = at + 2;
        if at > 0
            && !matches!(
                b[at - 1],
                b' ' | b'"' | b'\'' | b'/' | b'\t' | b'\n' | b'`' | b';'
            )
        {
            continue;
        }
        let name_len = b[at..]
            .iter()
            .take_while(|c| c.is_ascii_lowercase())
            .count();
        if name_len < 5 {
            continue;
        }
        let rest = l[at + name_len..].trim_start();
        if rest.starts_with('=') {
            let name = &l[at..at + name_len];
            return Some(if EVENTS.contains(&name) || name_len > 20 {
                CRITICAL
            } else {
                WARNING
            });
        }
    }
    None
}

/// libinjection's XSS check needs markup, or a quote that could close an attribute before an
/// `=` or a call: a URL's `?id=4711&ref=home` has neither, and is most of what carries `=`.
fn worth_tokenising(v: &Normalized<'_>) -> bool {
    let (mut quote, mut eq_or_call) = (false, false);
    for c in v.decoded.bytes() {
        match c {
            b'<' | b'>' | b'`' => return true,
            b'"' | b'\'' => quote = true,
            b'=' | b'(' => eq_or_call = true,
            _ => {}
        }
    }
    quote && eq_or_call
}

/// The value with spaces and control characters taken out: `java\tscript:` and friends, as
/// browsers ignore them in schemes.
fn squeezed(lower: &str) -> std::borrow::Cow<'_, str> {
    if lower.chars().any(|c| c.is_whitespace() || c.is_control()) {
        lower
            .chars()
            .filter(|c| !c.is_whitespace() && !c.is_control())
            .collect::<String>()
            .into()
    } else {
        lower.into()
    }
}

/// Script written to run where it lands: a dialog or timer sink called (`alert()`,
/// `setTimeout(name,1)`), a global reached by bracket (`self["alert"]`, `(document)["cookie"]`),
/// or a function run by a tagged template (`[].sort.call\`${alert}\``). Read on the compact
/// view with spaces taken out, so comments and spacing between the parts do not hide them.
fn script_shape(c: &str) -> Option<&'static str> {
    const SINKS: [&str; 7] = [
        "alert(",
        "prompt(",
        "confirm(",
        "settimeout(",
        "setinterval(",
        "atob(",
        "btoa(",
    ];
    const GLOBALS: [&str; 7] = [
        "window",
        "self",
        "document",
        "top",
        "parent",
        "globalthis",
        "frames",
    ];
    let b = c.as_bytes();
    let word_start = |at: usize| super::word_start(b, at);
    for p in memchr::memchr_iter(b'(', b) {
        let before = &c[..=p];
        if let Some(sink) = SINKS.iter().find(|s| before.ends_with(*s)) {
            if word_start(p + 1 - sink.len()) {
                return Some("script-sink-call");
            }
        }
    }
    for p in memchr::memchr_iter(b'[', b) {
        let quoted = matches!(b.get(p + 1), Some(b'"' | b'\'' | b'`'));
        let before = c[..p].strip_suffix(')').unwrap_or(&c[..p]);
        if quoted
            && GLOBALS
                .iter()
                .any(|g| before.ends_with(g) && word_start(before.len() - g.len()))
        {
            return Some("global-by-bracket");
        }
    }
    for p in memchr::memchr_iter(b'`', b) {
        let before = &c[..p];
        if before.ends_with(".call") || before.ends_with(".apply") {
            return Some("tagged-template-call");
        }
    }
    None
}

/// `document.cookie`, `window.location`, `.innerhtml` and the like, found from each `.`.
fn dom_access(l: &str) -> bool {
    const DOCUMENT: [&str; 7] = [
        "cookie",
        "domain",
        "write",
        "location",
        "createelement",
        "body",
        "queryselector",
    ];
    memchr::memchr_iter(b'.', l.as_bytes()).any(|p| {
        let (before, after) = (&l[..p], &l[p + 1..]);
        before.ends_with("document") && DOCUMENT.iter().any(|w| after.starts_with(w))
            || before.ends_with("window") && after.starts_with("location")
            || after.starts_with("innerhtml")
    })
}

/// `<img src=`, `<a href=`, `<iframe src=`, `<form action=`: an element that loads or links,
/// with the attribute that says what, not closed by a `>`.
fn loading_tag(l: &str) -> bool {
    // Where the last `>` stands, found once: a tag is left open if none follows it.
    let last_close = memchr::memrchr(b'>', l.as_bytes());
    memchr::memchr_iter(b'<', l.as_bytes()).any(|p| {
        if last_close.is_some_and(|g| g > p) {
            return false;
        }
        let rest = &l[p + 1..];
        let name = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let element = matches!(
            &rest[..name],
            "img"
                | "image"
                | "iframe"
                | "frame"
                | "script"
                | "svg"
                | "object"
                | "embed"
                | "video"
                | "audio"
                | "source"
                | "a"
                | "form"
                | "input"
                | "body"
                | "link"
                | "meta"
                | "base"
                | "isindex"
                | "math"
        );
        let attrs = rest[name..].trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        element
            && name < rest.len()
            && [
                "src",
                "href",
                "data",
                "action",
                "formaction",
                "background",
                "xlink:href",
                "srcdoc",
            ]
            .iter()
            .any(|a| {
                attrs.strip_prefix(a).is_some_and(|r| {
                    // Left open (no `>` after it, above): the page's own markup that
                    // follows becomes the address (dangling markup).
                    r.trim_start().starts_with('=')
                })
            })
    })
}

/// JavaScript written with six characters only (`(![]+[])[+[]]`, `+!![]`): a run of `[]()!+` that
/// coerces an empty array, which no prose, markdown (`![](img.png)`) or ordinary code writes.
fn jsfuck(l: &str) -> bool {
    let runs = l.split(|c: char| !matches!(c, '[' | ']' | '(' | ')' | '!' | '+'));
    runs.filter(|r| r.len() >= 5)
        .any(|r| r.contains("[]") && r.contains('+') && r.contains('!'))
}

/// The words that can start JSFuck (`![]`, `+[]`): a cue bit of the trigger walk.
pub(crate) static JSFUCK_WORDS: super::signals::WordSet =
    super::signals::WordSet::new(&["![]", "+[]"]);

pub fn check(v: &Normalized<'_>, place: Place, out: &mut Vec<Hit>) {
    check_cued(v, place, None, out);
}

/// [`check`], given the trigger walk's mask (read from the lower-case view, as JSFuck is).
pub fn check_cued(v: &Normalized<'_>, place: Place, cues: Option<u32>, out: &mut Vec<Hit>) {
    if worth_tokenising(v) && libinjectionrs::detect_xss(v.decoded.as_bytes()).is_injection() {
        out.push(Hit::new(Detector::Xss, "libinjection", CRITICAL, 1));
        return;
    }
    let jsfuck_cue = match cues {
        Some(m) => m & super::signals::CUE_JSFUCK != 0,
        None => JSFUCK_WORDS.found_in(&v.lower),
    };
    if jsfuck_cue && jsfuck(&v.lower) {
        out.push(Hit::new(Detector::Xss, "jsfuck", CRITICAL, 1));
        return;
    }
    let squeezed = squeezed(&v.lower);
    // Each marker below holds a `:`, `(`, `-` or `<`; looked up only where one stands (a URL's
    // `=` wakes this detector, and a substring search per marker was most of its cost).
    let sb = squeezed.as_bytes();
    let (mut script_url, mut data_url) = (false, false);
    for p in memchr::memchr_iter(b':', sb) {
        let (before, after) = (&squeezed[..p], &squeezed[p + 1..]);
        script_url |= ["javascript", "vbscript", "livescript"]
            .iter()
            .any(|s| before.ends_with(s));
        data_url |= before.ends_with("data")
            && (after.starts_with("text/html") || after.starts_with("image/svg+xml"));
    }
    if script_url {
        out.push(Hit::new(Detector::Xss, "script-url", CRITICAL, 1));
        return;
    }
    if data_url {
        out.push(Hit::new(Detector::Xss, "data-url", CRITICAL, 1));
        return;
    }
    let paren = memchr::memchr(b'(', sb).is_some();
    if paren && squeezed.contains("expression(") && squeezed.contains("style")
        || paren && squeezed.contains("url(javascript")
        || memchr::memchr(b'-', sb).is_some() && squeezed.contains("-moz-binding")
    {
        out.push(Hit::new(Detector::Xss, "css-script", CRITICAL, 1));
        return;
    }
    let l = v.lower.as_ref();
    if memchr::memchr(b'<', sb).is_some()
        && (squeezed.contains("<script") || l.contains("<!--#exec") || l.contains("<!--#include"))
    {
        out.push(Hit::new(Detector::Xss, "script-tag", CRITICAL, 1));
        return;
    }
    // Event handlers: `" onerror=`, ` onload =`, `/onmouseover=`.
    if let Some(score) = event_handler(l) {
        out.push(Hit::new(Detector::Xss, "event-handler", score, 1));
        return;
    }
    // Namespaced tags browsers still run (`<v:vmlframe`, `<x:script`).
    if let Some(p) = l.find('<') {
        let tag: String = l[p + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == ':')
            .collect();
        let local = tag.rsplit(':').next().unwrap_or("");
        if tag.contains(':') && matches!(local, "vmlframe" | "script" | "iframe" | "imagedata") {
            // Old IE's VML frame and namespaced script elements load and run what they point at.
            out.push(Hit::new(Detector::Xss, "namespaced-tag", CRITICAL, 1));
            return;
        }
        if tag.contains(':') && tag.split(':').all(|t| !t.is_empty()) {
            out.push(Hit::new(Detector::Xss, "namespaced-tag", ERROR, 1));
        }
    }
    if let Some(rule) = script_shape(&self::squeezed(v.compact())) {
        out.push(Hit::new(Detector::Xss, rule, place.shape_score(), 1));
        return;
    }
    // Script reaching into the page: critical where a value is a token (a parameter holding
    // `document.cookie` is a probe), an error in text that may be a snippet. Read with comments
    // and spaces out too (`document /*x*/ . cookie`).
    if dom_access(l) || v.compact.is_some() && dom_access(&self::squeezed(v.compact())) {
        out.push(Hit::new(
            Detector::Xss,
            "dom-access",
            place.shape_score(),
            1,
        ));
    }
    // A tag that loads or links something left open where a value is a token (`<img src='`,
    // `<a href=`): the page's markup that follows becomes its address and leaks (dangling
    // markup). Closed tags (`<a href="/x">x</a>`) are left to the rules above.
    if !place.is_free_text() && loading_tag(l) {
        out.push(Hit::new(Detector::Xss, "loading-tag", CRITICAL, 1));
        return;
    }
    // Paranoia 2: any tag-like text at all.
    if let Some(p) = l.find('<') {
        if l[p + 1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '!') {
            out.push(Hit::new(Detector::Xss, "html-tag", WARNING, 2));
            out.push(Hit::new(Detector::Xss, "html-tag-pl3", 2, 3));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::normalize::{normalize, Encoding};

    fn blocked(s: &str) -> bool {
        let mut out = Vec::new();
        check(&normalize(s, Encoding::Plain), Place::JsonString, &mut out);
        out.iter().any(|h| h.paranoia == 1 && h.score >= 5)
    }

    #[test]
    fn script_shapes() {
        for (s, rule) in [
            ("alert()", "script-sink-call"),
            ("x\";settimeout(name, 1)//", "script-sink-call"),
            (
                "self[/*foo*/\"alert\"](self[\"document\"/*bar*/][\"cookie\"])",
                "global-by-bracket",
            ),
            ("(document /*foo*/)[\"cookie\"]", "global-by-bracket"),
            (
                "[ ] . sort . call ` ${ alert } 1337 `",
                "tagged-template-call",
            ),
        ] {
            let v = normalize(s, Encoding::Plain);
            assert_eq!(script_shape(&squeezed(v.compact())), Some(rule), "{s}");
        }
        for s in [
            "please confirm (by email) your alert preferences",
            "set a timer with settimeouts",
            "the window [see fig. 2]",
            "myalert(1)",
        ] {
            let v = normalize(s, Encoding::Plain);
            assert_eq!(script_shape(&squeezed(v.compact())), None, "{s}");
        }
    }

    #[test]
    fn jsfuck_but_not_markdown() {
        for s in [
            "(![]+[])[+!+[]]",
            "+!![]",
            "[][(![]+[])[+[]]+([![]]+[][[]])[+!+[]+[+[]]]]",
        ] {
            assert!(jsfuck(s), "{s}");
        }
        for s in ["![](img.png)", "see [1]+[2]", "a[] = !b", "x = (a+b)[0]!"] {
            assert!(!jsfuck(s), "{s}");
        }
    }

    #[test]
    fn script_is_caught_in_its_spellings() {
        for s in [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "\"><svg/onload=alert(1)>",
            "javascript:alert(document.cookie)",
            "java\tscript:alert(1)",
            "&lt;script&gt;alert(1)&lt;/script&gt;",
            "＜script＞alert(1)＜/script＞",
            "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        ] {
            assert!(blocked(s), "{s}");
        }
    }

    #[test]
    fn each_marker_names_its_rule() {
        let rules = |s: &str| {
            let mut out = Vec::new();
            check(&normalize(s, Encoding::Plain), Place::Query, &mut out);
            out.iter().map(|h| h.rule).collect::<Vec<_>>()
        };
        for (s, rule) in [
            ("VBScript:msgbox(1)", "script-url"),
            ("x livescript:go", "script-url"),
            ("java\tscript:alert(1)", "script-url"),
            ("data:image/svg+xml;base64,AAAA", "data-url"),
            ("data:text/html,hi", "data-url"),
            ("style=width:expression(alert(1))", "css-script"),
            ("background:url(javascript:x)", "script-url"),
            ("behavior: -moz-binding: url(x.xml#xss)", "css-script"),
            ("<!--#include file=x -->", "script-tag"),
            ("<!--#exec cmd=ls -->", "script-tag"),
            ("x = document.domain + 1", "dom-access"),
            ("window.location = evil", "dom-access"),
            ("el.innerHTML = x", "dom-access"),
        ] {
            assert!(rules(s).contains(&rule), "{s}: {:?}", rules(s));
        }
        // The words apart from their punctuation are prose.
        for s in [
            "the document cookie policy",
            "a window location",
            "data: text",
        ] {
            assert!(rules(s).is_empty(), "{s}: {:?}", rules(s));
        }
    }

    #[test]
    fn ordinary_text_passes() {
        for s in [
            "x < y and y > z",
            "<b>bold</b> and *markdown*",
            "a=b",
            "time: 10:30",
            "f(x) = 2x",
            "smile :)",
            "see https://example.com/a?b=c",
        ] {
            assert!(!blocked(s), "{s}");
        }
    }

    /// The marker rules as the substring searches they replaced found them, kept as the
    /// reference the byte-anchored lookups are held to: the first marker rule, and whether DOM
    /// access is named.
    fn markers_by_search(v: &Normalized<'_>) -> (Option<&'static str>, bool) {
        let sq = squeezed(&v.lower);
        let l = v.lower.as_ref();
        let has = |hay: &str, words: &[&str]| words.iter().any(|w| hay.contains(w));
        let first = if has(&sq, &["javascript:", "vbscript:", "livescript:"]) {
            Some("script-url")
        } else if has(&sq, &["data:text/html", "data:image/svg+xml"]) {
            Some("data-url")
        } else if has(&sq, &["expression("]) && has(&sq, &["style"])
            || has(&sq, &["url(javascript", "-moz-binding"])
        {
            Some("css-script")
        } else if has(&sq, &["<script"]) || has(l, &["<!--#exec", "<!--#include"]) {
            Some("script-tag")
        } else {
            None
        };
        let dom = has(
            l,
            &[
                "document.cookie",
                "document.domain",
                "document.write",
                "window.location",
                "document.location",
                ".innerhtml",
                "document.createelement",
                "document.body",
            ],
        );
        (first, dom)
    }

    proptest::proptest! {
        /// Markers looked up at their `:`, `.`, `(`, `-` or `<` give the rules the substring
        /// searches gave.
        #[test]
        fn markers_give_what_the_searches_gave(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Strategy::prop_map(
                        proptest::sample::select(vec![
                            "javascript", "vbscript", "livescript", "data", ":", "text/html",
                            "image/svg+xml", "expression(", "style", "url(", "-moz-binding",
                            "<script", "<!--#exec", "<!--#include", "document", "window", ".",
                            "cookie", "domain", "write", "location", "createelement", "body",
                            "innerhtml", "\t", " ", "<", "(",
                            // Whole markers, and their halves, so both meet often.
                            "javascript:", "java", "script:", "data:", "document.", "window.",
                            ".innerhtml", "url(javascript", "<scr", "data:text/html",
                            "data:image/svg+xml",
                        ]),
                        str::to_string,
                    ),
                    "[a-z]{1,3}",
                ],
                0..10,
            )
        ) {
            let s = parts.concat();
            let v = normalize(&s, Encoding::Plain);
            let mut hits = Vec::new();
            check(&v, Place::Query, &mut hits);
            let rules: Vec<&str> = hits.iter().map(|h| h.rule).collect();
            // libinjection answers first in both, and alone.
            if rules != ["libinjection"] {
                let (first, dom) = markers_by_search(&v);
                match first {
                    // A marker rule ends the checks.
                    Some(rule) => proptest::prop_assert_eq!(&rules, &[rule], "{:?}", s),
                    None => {
                        let markers = ["script-url", "data-url", "css-script", "script-tag"];
                        proptest::prop_assert!(
                            !rules.iter().any(|r| markers.contains(r)),
                            "{:?}: {:?}", s, rules
                        );
                        // An event handler ends them before DOM access is asked.
                        let want = dom && event_handler(&v.lower).is_none();
                        proptest::prop_assert_eq!(rules.contains(&"dom-access"), want, "{:?}", s);
                    }
                }
            }
        }
    }
}
