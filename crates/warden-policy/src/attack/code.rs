//! Code injection for the runtimes behind APIs: PHP (`<?php`, `system(`, superglobals,
//! serialised objects), Java (`Runtime.getRuntime().exec`, Spring's `class.module.classLoader`,
//! OGNL, serialised objects), Node.js (`child_process`, prototype pollution through `__proto__`),
//! Python (`__import__('os')`, pickle) and Ruby. Each needs a call or a structure around the word,
//! so prose about "the system" or "eval" passes.

use super::{Detector, Hit, Normalized, Place, CRITICAL, ERROR};

/// Function names that run commands or code, counted when followed by `(`.
const CALLS: [&str; 30] = [
    "system",
    "exec",
    "passthru",
    "shell_exec",
    "popen",
    "proc_open",
    "pcntl_exec",
    "eval",
    "assert",
    "create_function",
    "call_user_func",
    "call_user_func_array",
    "preg_replace",
    "base64_decode",
    "gzinflate",
    "str_rot13",
    "file_get_contents",
    "file_put_contents",
    "fopen",
    "readfile",
    "include",
    "require",
    "require_once",
    "include_once",
    "phpinfo",
    "__import__",
    "os.system",
    "subprocess.popen",
    "subprocess.call",
    "execsync",
];

const MARKERS: [(&str, &str); 58] = [
    ("com.opensymphony.xwork2", "java-gadget"),
    ("com.sun.org.apache", "java-gadget"),
    ("new function (", "js-function-constructor"),
    ("org.apache.commons.collections", "java-gadget"),
    ("process[", "node-process"),
    ("require[", "node-process"),
    ("<?php", "php-open-tag"),
    ("<?=", "php-open-tag"),
    ("<? ", "php-open-tag"),
    ("<?\t", "php-open-tag"),
    ("[php]", "php-open-tag"),
    ("[/php]", "php-open-tag"),
    ("{php}", "php-open-tag"),
    ("{/php}", "php-open-tag"),
    ("$_get[", "php-superglobal"),
    ("$_post[", "php-superglobal"),
    ("$_request[", "php-superglobal"),
    ("$_server[", "php-superglobal"),
    ("$_cookie[", "php-superglobal"),
    ("$_files[", "php-superglobal"),
    ("$_env[", "php-superglobal"),
    ("$globals[", "php-superglobal"),
    ("java.lang.runtime", "java-runtime"),
    ("java.runtime", "java-runtime"),
    ("getruntime().exec", "java-runtime"),
    ("java.lang.processbuilder", "java-runtime"),
    ("processbuilder", "java-runtime"),
    ("class.module.classloader", "java-classloader"),
    ("class.classloader", "java-classloader"),
    ("@java.lang", "java-ognl"),
    ("(#_memberaccess", "java-ognl"),
    ("#context[", "java-ognl"),
    ("clonetransformer", "java-gadget"),
    ("forclosure", "java-gadget"),
    ("instantiatefactory", "java-gadget"),
    ("instantiatetransformer", "java-gadget"),
    ("invokertransformer", "java-gadget"),
    ("prototypeclonefactory", "java-gadget"),
    ("prototypeserializationfactory", "java-gadget"),
    ("whileclosure", "java-gadget"),
    ("chainedtransformer", "java-gadget"),
    ("java.beans.xmldecoder", "java-gadget"),
    ("com.sun.org.apache.xalan", "java-gadget"),
    ("child_process", "node-child-process"),
    ("process.mainmodule", "node-child-process"),
    ("process.binding(", "node-child-process"),
    ("require.main", "node-child-process"),
    ("constructor._load", "node-child-process"),
    ("_$$nd_func$$_", "node-serialize"),
    ("__js_function", "node-serialize"),
    ("xyqktkrfrlvoqyqk", "node-serialize"),
    ("string.fromcharcode", "js-obfuscation"),
    ("this.constructor.constructor", "js-sandbox-escape"),
    ("new function(", "js-function-constructor"),
    ("module.exports=", "node-module"),
    ("kernel.exec", "ruby-exec"),
    ("io.popen", "ruby-exec"),
    ("process.env", "node-env"),
];

/// Whether `name` is called in `l`: `Some(true)` when written like code (`system(`), `Some(false)`
/// when spaced like prose (`system (`).
fn called(l: &str, name: &str) -> Option<bool> {
    let mut from = 0;
    let mut spaced = None;
    while let Some(p) = l[from..].find(name) {
        let start = from + p;
        let end = start + name.len();
        let b = l.as_bytes();
        let word_start =
            start == 0 || !b[start - 1].is_ascii_alphanumeric() && b[start - 1] != b'_';
        if word_start {
            if l[end..].starts_with('(') {
                return Some(true);
            }
            if l[end..].trim_start().starts_with('(') {
                spaced = Some(false);
            }
        }
        from = end;
    }
    spaced
}

fn markers() -> &'static aho_corasick::AhoCorasick {
    static M: std::sync::OnceLock<aho_corasick::AhoCorasick> = std::sync::OnceLock::new();
    M.get_or_init(|| {
        aho_corasick::AhoCorasick::builder()
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(MARKERS.iter().map(|(m, _)| m))
            .expect("static patterns")
    })
}

fn calls() -> &'static aho_corasick::AhoCorasick {
    static M: std::sync::OnceLock<aho_corasick::AhoCorasick> = std::sync::OnceLock::new();
    M.get_or_init(|| {
        aho_corasick::AhoCorasick::builder()
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(CALLS)
            .expect("static patterns")
    })
}

pub fn check(v: &Normalized<'_>, place: Place, out: &mut Vec<Hit>) {
    let l = v.compact.as_ref();
    // Prototype pollution: `{"__proto__": {...}}`, `?__proto__[admin]=1`, `constructor[prototype]`.
    if place.is_name()
        && (l.contains("__proto__")
            || l.contains("constructor[prototype]")
            || l == "prototype" && place == Place::JsonKey)
    {
        out.push(Hit::new(Detector::Code, "prototype-pollution", CRITICAL, 1));
        return;
    }
    if l.len() < 4 {
        return;
    }
    if let Some(m) = markers().find(l) {
        out.push(Hit::new(
            Detector::Code,
            MARKERS[m.pattern().as_usize()].1,
            CRITICAL,
            1,
        ));
        return;
    }
    // Java packages that only appear in exploit payloads or in code: alarming outside free text.
    for pkg in [
        "java.io.",
        "java.util.",
        "java.net.",
        "java.nio.",
        "javax.",
        "sun.misc.",
        "jdk.jshell",
    ] {
        if l.contains(pkg) {
            let score = if place == Place::JsonString {
                ERROR
            } else {
                CRITICAL
            };
            out.push(Hit::new(Detector::Code, "java-class", score, 1));
            return;
        }
    }
    if l.trim_end().ends_with("<?") {
        out.push(Hit::new(Detector::Code, "php-open-tag", ERROR, 1));
        return;
    }
    // Serialised objects: PHP `O:8:"stdClass":1:{`, Java `rO0AB` (base64) / `aced0005` (hex),
    // Python pickle with a global call.
    let d = v.decoded.as_ref();
    if d.starts_with("rO0AB") || l.starts_with("aced0005") {
        out.push(Hit::new(Detector::Code, "java-serialized", CRITICAL, 1));
        return;
    }
    if php_serialized_object(l) {
        out.push(Hit::new(Detector::Code, "php-serialized", CRITICAL, 1));
        return;
    }
    if l.contains("cos\nsystem") || l.contains("cposix\nsystem") || l.contains("c__builtin__") {
        out.push(Hit::new(Detector::Code, "python-pickle", CRITICAL, 1));
        return;
    }
    if l.contains('(') {
        let mut found: Vec<&str> = calls()
            .find_overlapping_iter(l)
            .map(|m| CALLS[m.pattern().as_usize()])
            .collect();
        found.dedup();
        for f in found {
            match called(l, f) {
                Some(true) => {
                    // A call with something inside that looks like code or a command.
                    let score = if l.contains('$')
                        || l.contains('\'')
                        || l.contains('"')
                        || l.contains(';')
                    {
                        CRITICAL
                    } else {
                        ERROR
                    };
                    out.push(Hit::new(Detector::Code, "dangerous-call", score, 1));
                    return;
                }
                Some(false) => {
                    out.push(Hit::new(Detector::Code, "dangerous-call-spaced", ERROR, 2));
                    return;
                }
                None => {}
            }
        }
    }
}

/// `O:<len>:"<class>":<n>:{` or `a:<n>:{` as PHP's `serialize` writes them.
fn php_serialized_object(l: &str) -> bool {
    let b = l.as_bytes();
    for (i, w) in b.windows(2).enumerate() {
        if (w == b"o:" || w == b"c:") && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) {
            let rest = &l[i + 2..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 && rest[digits..].starts_with(":\"") {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::normalize::{normalize, Encoding};

    fn blocked(s: &str, place: Place) -> bool {
        let mut out = Vec::new();
        check(&normalize(s, Encoding::Plain), place, &mut out);
        out.iter().any(|h| h.score >= 5)
    }

    #[test]
    fn payloads() {
        for (s, p) in [
            ("<?php system($_GET['c']); ?>", Place::JsonString),
            ("system('id')", Place::Query),
            (
                "${T(java.lang.Runtime).getRuntime().exec('id')}",
                Place::Query,
            ),
            (
                "class.module.classLoader.resources.context.parent.pipeline.first.pattern",
                Place::QueryName,
            ),
            ("__proto__", Place::JsonKey),
            ("__proto__[isAdmin]", Place::QueryName),
            ("require('child_process').exec('id')", Place::JsonString),
            ("O:8:\"stdClass\":1:{s:1:\"a\";s:1:\"b\";}", Place::Cookie),
            ("rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcA", Place::Cookie),
            ("__import__('os').system('id')", Place::JsonString),
        ] {
            assert!(blocked(s, p), "{s}");
        }
    }

    #[test]
    fn prose_passes() {
        for s in [
            "the system (as a whole) works",
            "we evaluate options",
            "Prototype of the new design",
            "include the attachment",
            "exec summary (draft)",
            "Call me at 5",
        ] {
            assert!(!blocked(s, Place::JsonString), "{s}");
        }
    }
}
