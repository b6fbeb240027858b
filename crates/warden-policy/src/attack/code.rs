//! Code injection for the runtimes behind APIs: PHP (`<?php`, `system(`, superglobals,
//! serialised objects), Java (`Runtime.getRuntime().exec`, Spring's `class.module.classLoader`,
//! OGNL, serialised objects), Node.js (`child_process`, prototype pollution through `__proto__`),
//! Python (`__import__('os')`, pickle) and Ruby. Each needs a call or a structure around the word,
//! so prose about "the system" or "eval" passes.

use super::signals::Presence;
use super::{Detector, Hit, Normalized, Place, CRITICAL, ERROR, WARNING};

/// Function names that run commands or code, counted when followed by `(`.
const CALLS: [&str; 60] = [
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
    "bzdecompress",
    "gzdecode",
    "gzuncompress",
    "zlib_decode",
    "convert_uudecode",
    "fsockopen",
    "pfsockopen",
    "stream_socket_client",
    "curl_init",
    "curl_exec",
    "posix_getpwuid",
    "posix_getegid",
    "posix_geteuid",
    "posix_getuid",
    "posix_setuid",
    "posix_kill",
    "get_defined_functions",
    "get_defined_vars",
    "get_defined_constants",
    "assert_options",
    "ini_set",
    "putenv",
    "show_source",
    "highlight_file",
    "move_uploaded_file",
    "parse_ini_file",
    "register_shutdown_function",
    "register_tick_function",
    "unserialize",
    "var_dump",
];

const MARKERS: [(&str, &str); 59] = [
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
    ("process.spawn(", "ruby-exec"),
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
        let word_start = super::word_start(b, start);
        if word_start {
            let rest = &l[end..];
            let opened = start > 0 && matches!(b[start - 1], b'(' | b'\'' | b'"');
            if rest.starts_with('(') || opened && expression_call(rest) {
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

/// What follows a function name in PHP's callable expressions: `'system'('id')`,
/// `(system)('id')`, `("system")("id")` — the name quoted or parenthesised, then the call
/// (the caller checks the name opens with a quote or a parenthesis: `(the system)(x)` is prose).
fn expression_call(rest: &str) -> bool {
    let r = rest.strip_prefix(['\'', '"']).unwrap_or(rest);
    let quoted = r.len() < rest.len();
    let r = r.trim_start();
    let closed = r.strip_prefix(')').map(str::trim_start);
    match closed {
        Some(after) => after.starts_with('('),
        None => quoted && r.starts_with('('),
    }
}

/// How far the code checks read for the end of a group, a comment or a loop condition: an
/// attack's are short, and reading each from every opener to the value's end would make a
/// value of openers quadratic.
const REACH: usize = 512;

/// Reads past what PHP reads past before a call's `(`: whitespace and comments (`/*x*/`,
/// `//x⏎`, `#x⏎`). Returns where it stopped and whether the gap was odd: anything but nothing
/// or one space, which prose writes and an evasion does not.
fn skip_gap(lower: &str, from: usize) -> (usize, bool) {
    let b = lower.as_bytes();
    let mut i = from;
    loop {
        match b.get(i) {
            Some(c) if c.is_ascii_whitespace() || *c == 0x0b => i += 1,
            Some(b'/') if b.get(i + 1) == Some(&b'*') => {
                let reach = &b[i + 2..b.len().min(i + 2 + REACH)];
                match memchr::memmem::find(reach, b"*/") {
                    Some(e) => i += 2 + e + 2,
                    None => break,
                }
            }
            Some(b'/' | b'#') if b[i] == b'#' || b.get(i + 1) == Some(&b'/') => {
                match memchr::memchr(b'\n', &b[i..b.len().min(i + REACH)]) {
                    Some(e) => i += e + 1,
                    None => break,
                }
            }
            _ => break,
        }
    }
    let odd = i - from > 1 || (i > from && b[from] != b' ');
    (i, odd)
}

/// Whether `name` is called in `lower` (the view with comments still in) with an odd gap before
/// its `(` (see [`skip_gap`]): `exec/*x*/()`, `exec\t(`, `exec #c⏎(`.
fn odd_gap(lower: &str, name: &str) -> bool {
    let b = lower.as_bytes();
    lower.match_indices(name).any(|(start, _)| {
        if !super::word_start(b, start) {
            return false;
        }
        let (at, odd) = skip_gap(lower, start + name.len());
        odd && b.get(at) == Some(&b'(')
    })
}

/// Java packages that only appear in exploit payloads or in code.
static JAVA_PACKAGES: super::signals::WordSet = super::signals::WordSet::new(&[
    "java.io.",
    "java.util.",
    "java.net.",
    "java.nio.",
    "javax.",
    "sun.misc.",
    "jdk.jshell",
]);

/// A value that is a dotted Java type name and nothing else (`java.io.File`, `a.b$Inner`).
fn java_type_name(l: &str) -> bool {
    l.trim_end()
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'$'))
}

/// Java gadget class names and the serialisation stream's magic bytes, as base64 spells them
/// from each of the three byte offsets they can start at inside a longer blob: a serialised
/// gadget chain wrapped in something else, or cut so it does not begin with `rO0AB`. Not
/// `Runtime` or `ProcessBuilder` as Java source writes them: a code-hosting API takes source
/// files in base64, and those names are in ordinary programs.
const ENCODED_JAVA: [&[u8]; 17] = [
    // The stream's magic and version, then TC_OBJECT: the 4 bytes alone encode to as few as 4
    // characters, which a large random blob (an image) holds by chance.
    b"\xac\xed\x00\x05s",
    b"java.lang.Runtime",
    b"processbuilder",
    b"InvokerTransformer",
    b"invokertransformer",
    b"ChainedTransformer",
    b"InstantiateTransformer",
    b"instantiatetransformer",
    b"InstantiateFactory",
    b"instantiatefactory",
    b"clonetransformer",
    b"forclosure",
    b"whileclosure",
    b"prototypeclonefactory",
    b"prototypeserializationfactory",
    b"TemplatesImpl",
    b"JdbcRowSetImpl",
];

/// The stream's magic and version with six bits of a neighbouring byte, at each of the three
/// offsets (`rO0ABQ`, `KztAAU`, `Cs7QAF`): 36 bits, which chance puts in a megabyte of random
/// base64 about once in twenty thousand blobs.
const MAGIC_BASE64: [&str; 3] = ["rO0ABQ", "KztAAU", "Cs7QAF"];

/// The base64 characters that depend on `word` alone when it starts `offset` bytes into the
/// encoded data: the first ones share bits with the bytes before it, the last with those after.
fn base64_core(word: &[u8], offset: usize) -> String {
    use base64::Engine;
    let mut data = vec![0u8; offset];
    data.extend_from_slice(word);
    let text = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&data);
    let first = (8 * offset).div_ceil(6);
    let last = 8 * (offset + word.len()) / 6;
    text[first..last].to_string()
}

/// Whether a value that could be base64 (`A-Z a-z 0-9 + / = - _`, six characters or more)
/// carries one of [`ENCODED_JAVA`]. Case-sensitive: base64 is. Asked of every bare name and
/// identifier, hence a hand-walked DFA rather than a searcher (see [`Presence`]).
pub fn encoded_java(raw: &str) -> bool {
    if raw.len() < 6 {
        return false;
    }
    // Every pattern holds a capital letter: names and ids in lower case (most of a JSON
    // document's keys) end here without walking the automaton.
    let mut upper = false;
    for b in raw.bytes() {
        if !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')) {
            return false;
        }
        upper |= b.is_ascii_uppercase();
    }
    upper && encoded_java_walk(raw)
}

/// The automaton of [`encoded_java`] alone, for a caller that has read the value's characters
/// already (every pattern holds a capital letter: a value without one need not be walked).
pub fn encoded_java_walk(raw: &str) -> bool {
    static ENCODED: Presence = Presence::new();
    raw.len() >= 6
        && ENCODED.any(
            || {
                ENCODED_JAVA
                    .iter()
                    .flat_map(|w| (0..3).map(move |o| base64_core(w, o)))
                    .chain(MAGIC_BASE64.iter().map(|m| m.to_string()))
            },
            raw,
        )
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
    let l = v.compact();
    // Prototype pollution: `{"__proto__": {...}}`, `?__proto__[admin]=1`, `constructor[prototype]`.
    if place.is_name()
        && (l.contains("__proto__")
            || l.contains("constructor[prototype]")
            || l.contains("constructor][prototype]")
            || l.contains("constructor.prototype")
            || l == "prototype" && place == Place::JsonKey)
    {
        out.push(Hit::new(Detector::Code, "prototype-pollution", CRITICAL, 1));
        return;
    }
    if l.len() < 4 {
        return;
    }
    static MARKED: Presence = Presence::new();
    let marked = MARKED.any(|| MARKERS.iter().map(|(m, _)| m), l);
    if let Some(m) = marked.then(|| markers().find(l)).flatten() {
        out.push(Hit::new(
            Detector::Code,
            MARKERS[m.pattern().as_usize()].1,
            CRITICAL,
            1,
        ));
        return;
    }
    // Java packages that only appear in exploit payloads or in code: alarming outside free text.
    if let Some((_, at)) = JAVA_PACKAGES.find(l) {
        // In free text a class name may be a stack trace in a bug report; a value that is
        // nothing but a class name (`java.io.File`, `javax.script.ScriptEngineManager`) is a
        // gadget or reflection target.
        let bare = at == 0 && java_type_name(l);
        let score = if place == Place::JsonString && !bare {
            ERROR
        } else {
            CRITICAL
        };
        out.push(Hit::new(Detector::Code, "java-class", score, 1));
        return;
    }
    // `java.lang` is in every Java stack trace, so only a value that is nothing but a class name
    // (`java.lang.Runtime`, `org.omg.CORBA`: what a polymorphic deserialiser is steered with)
    // is critical; a mention in a longer value is not enough alone.
    let lb = l.as_bytes();
    let rooted = |root: &[u8]| memchr::memmem::find(lb, root);
    if let Some(at) = rooted(b"java.lang.").or_else(|| rooted(b"org.omg.")) {
        let score = if at == 0 && java_type_name(l) {
            CRITICAL
        } else {
            WARNING
        };
        out.push(Hit::new(Detector::Code, "java-class", score, 1));
        return;
    }
    if php_variable_call(&v.lower) {
        let score = if place == Place::JsonString {
            ERROR
        } else {
            CRITICAL
        };
        out.push(Hit::new(Detector::Code, "php-variable-call", score, 1));
        return;
    }
    if l.contains("@{")
        && l.split("@{")
            .skip(1)
            .any(|rest| rest.trim_start().starts_with('['))
    {
        // Perl's `@{[ expr ]}` interpolation runs code inside a string.
        out.push(Hit::new(Detector::Code, "perl-interpolation", CRITICAL, 1));
        return;
    }
    if l.contains("while(!") || l.contains("for(;;)") || endless_while(l) {
        // An endless loop handed to a server-side `eval` (Node.js DoS).
        let score = if place == Place::JsonString {
            ERROR
        } else {
            CRITICAL
        };
        out.push(Hit::new(Detector::Code, "endless-loop", score, 1));
        return;
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
    if encoded_java(d) {
        out.push(Hit::new(Detector::Code, "java-gadget-base64", CRITICAL, 1));
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
    if !place.is_free_text() && console_call(l) {
        out.push(Hit::new(Detector::Code, "js-console-call", CRITICAL, 1));
        return;
    }
    if let Some(rule) = php_shape(l, &v.lower, place) {
        out.push(Hit::new(Detector::Code, rule, place.shape_score(), 1));
        return;
    }
    static CALLED: Presence = Presence::new();
    if l.contains('(') && CALLED.any(|| CALLS, l) {
        let mut found: Vec<&str> = calls()
            .find_overlapping_iter(l)
            .map(|m| CALLS[m.pattern().as_usize()])
            .collect();
        found.dedup();
        for f in found {
            let free_text = place.is_free_text();
            match called(l, f) {
                Some(true) => {
                    // A call with something inside that looks like code or a command; outside
                    // free text, any call (`chr(123)` in a query parameter).
                    let score = if !free_text
                        || l.contains('$')
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
                Some(false)
                    if !free_text
                        && (l.contains(['$', '\'', '"', ';']) || odd_gap(&v.lower, f)) =>
                {
                    // `eval\r($foo)`, `exec  ('id')`, `exec/**/()`: whitespace or a comment
                    // between name and call.
                    out.push(Hit::new(
                        Detector::Code,
                        "dangerous-call-spaced",
                        CRITICAL,
                        1,
                    ));
                    return;
                }
                Some(false) => {
                    out.push(Hit::new(Detector::Code, "dangerous-call-spaced", ERROR, 2));
                    return;
                }
                // `exec #c⏎(`: a line comment the compact view keeps.
                None if !free_text && odd_gap(&v.lower, f) => {
                    out.push(Hit::new(
                        Detector::Code,
                        "dangerous-call-spaced",
                        CRITICAL,
                        1,
                    ));
                    return;
                }
                None => {}
            }
        }
    }
}

/// `while(true);`, `while(Infinity);`, `while(new Date);`, `while((1))`: a loop whose condition
/// compares nothing, with an empty body or none. A real loop tests something (`while(i<n)`) or
/// calls something (`while(next())`).
fn endless_while(l: &str) -> bool {
    let b = l.as_bytes();
    static WHILE: std::sync::OnceLock<memchr::memmem::Finder<'static>> = std::sync::OnceLock::new();
    let finder = WHILE.get_or_init(|| memchr::memmem::Finder::new(b"while("));
    let mut from = 0;
    while let Some(p) = finder.find(&b[from..]) {
        let start = from + p;
        let open = start + 5;
        from = open + 1;
        if !super::word_start(b, start) {
            continue;
        }
        // The condition: up to the parenthesis that closes `while(`, within a short reach (a
        // value of nested `while(` read to its end from each would take quadratic time).
        let mut depth = 0usize;
        let mut close = None;
        for (i, &c) in b[open..b.len().min(open + REACH)].iter().enumerate() {
            match c {
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(open + i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(close) = close else { continue };
        let cond = &l[open + 1..close];
        let constant = !cond.is_empty()
            && !cond.contains(['<', '>', '=', ','])
            && !cond.contains("()")
            && !cond.contains("&&")
            && !cond.contains("||")
            && !cond.contains('.');
        let body = l[close + 1..].trim_start();
        if constant && (body.is_empty() || body.starts_with([';', ')']) || body.starts_with("{}")) {
            return true;
        }
    }
    false
}

/// `$a(1)`, `$__[$_[1]](7)`, `${'a'}(11)`, `$OOO0{0}(15)`, `$f /*x*/ (17)`: PHP calling a
/// function whose name is in a variable or an expression. Read on the view with comments in;
/// one plain space before the `(` is prose (`pay $amount (see invoice)`), more is a call.
fn php_variable_call(lower: &str) -> bool {
    let b = lower.as_bytes();
    // Past a group opened at `i` (`[`, `{` or `(`), nesting counted; `None` if it never closes.
    let group_end = |i: usize| {
        let mut depth = 0usize;
        for (k, &c) in b[i..b.len().min(i + REACH)].iter().enumerate() {
            match c {
                b'[' | b'{' | b'(' => depth += 1,
                b']' | b'}' | b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(i + k + 1);
                    }
                }
                _ => {}
            }
        }
        None
    };
    for at in memchr::memchr_iter(b'$', b) {
        let mut j = at + 1;
        while b.get(j) == Some(&b' ') {
            j += 1;
        }
        match b.get(j) {
            // `${}()` is no call: PHP wants a name inside.
            Some(b'{') => match group_end(j) {
                Some(e) if e > j + 2 => j = e,
                Some(_) => continue,
                None => return false,
            },
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
            }
            _ => continue,
        }
        // Subscripts, `[...]` or `{...}`, each maybe after a gap.
        let mut odd = false;
        loop {
            let (k, gap_odd) = skip_gap(lower, j);
            match b.get(k) {
                Some(b'[' | b'{') => match group_end(k) {
                    Some(e) if e > k + 2 => {
                        odd |= gap_odd;
                        j = e;
                    }
                    Some(_) => break,
                    None => return false,
                },
                Some(b'(') if k == j || gap_odd || odd => return true,
                _ => break,
            }
        }
    }
    false
}

/// `console.log(1)`, `console["info"](1)`, `console.info.call(this,1)`: the harmless call a
/// server-side JavaScript injection is probed with (its output shows up in the logs).
fn console_call(l: &str) -> bool {
    l.match_indices("console").any(|(p, _)| {
        let rest = l[p + 7..].trim_start();
        let member = if let Some(r) = rest.strip_prefix('.') {
            r
        } else if let Some(r) = rest.strip_prefix('[') {
            r.trim_start_matches(['"', '\'', ' '])
        } else {
            return false;
        };
        ["log", "info", "warn", "error", "debug", "trace", "dir"]
            .iter()
            .any(|m| {
                member.strip_prefix(m).is_some_and(|r| {
                    let r = r.trim_start_matches(['"', '\'', ']', ' ']);
                    r.starts_with('(') || r.starts_with(".call(") || r.starts_with(".apply(")
                })
            })
    })
}

/// Settings of php.ini a request can reach (through `.user.ini`, `-d` to a CGI binary, or an
/// application that passes `ini_set` its input): set in a value, they are an attack.
const PHP_INI: [&str; 24] = [
    "allow_url_include",
    "allow_url_fopen",
    "auto_prepend_file",
    "auto_append_file",
    "disable_functions",
    "open_basedir",
    "memory_limit",
    "max_execution_time",
    "extension_dir",
    "include_path",
    "unserialize_max_depth",
    "display_errors",
    "error_reporting",
    "log_errors",
    "error_log",
    "upload_tmp_dir",
    "post_max_size",
    "upload_max_filesize",
    "safe_mode",
    "register_globals",
    "session.save_path",
    "session.serialize_handler",
    "opcache.",
    "mbstring.",
];

/// PHP functions a value names only to have them called: called as the whole value
/// (`intval(foo)`, `strip_tags()`), they are a probe of an `eval` or a callback parameter.
const PHP_FUNCTIONS: [&str; 24] = [
    "intval",
    "strval",
    "printf",
    "sprintf",
    "print_r",
    "strrev",
    "str_replace",
    "strip_tags",
    "is_array",
    "file_exists",
    "gethostbyname",
    "array_diff",
    "array_map",
    "date_add",
    "checkdate",
    "symlink",
    "serialize",
    "filegroup",
    "fileowner",
    "unpack",
    "crypt",
    "chroot",
    "phpversion",
    "getenv",
];

/// PHP's own syntax where a value is a token (outside free text; an error in it):
/// - a callable expression: a bracketed or quoted name called, the statement ended
///   (`[system][0](ls);`, `(sy.(st).em)('uname');`, `("sys"."tem")('id');`);
/// - a variable variable: `$ {'a'}`, `${$a}`, `${'ff'}` (a quoted or `$` name inside, or a space
///   after `$`, which no shell or template allows);
/// - a php.ini setting assigned (`memory_limit = 512M`, `opcache.jit=1`);
/// - a whole value that calls one of [`PHP_FUNCTIONS`], or a snake_case function of PHP's
///   families (`array_…`, `str_…`, `file_…`, `posix_…`), with whatever gap PHP reads past.
fn php_shape(l: &str, lower: &str, place: Place) -> Option<&'static str> {
    let t = l.trim();
    let b = t.as_bytes();
    if t.ends_with(';') && t.contains('(') {
        let called = ["](", ")(", "}(", "] (", ") (", "} ("]
            .iter()
            .any(|p| t.contains(p));
        let concatenated = t.contains("'.'") || t.contains("\".\"") || t.contains("' . '");
        let built = t.starts_with(['(', '[']) || t.contains("define(") || t.contains('$');
        // Code, not a sentence with references in brackets ("see also (2)(b);").
        let words = super::prose_words(t);
        // `"sys"."tem" ('id');`: a concatenated name called.
        let quote_called = ["'(", "' (", "\"(", "\" ("].iter().any(|p| t.contains(p));
        if (called && (concatenated || built) || quote_called && concatenated) && words <= 1 {
            return Some("php-callable-expression");
        }
    }
    if let Some(at) = memchr::memchr(b'$', b) {
        let rest = t[at + 1..].trim_start_matches([' ', '\t']);
        let spaced = rest.len() < t.len() - at - 1;
        if let Some(inner) = rest.strip_prefix('{') {
            let inner = inner.trim_start();
            if spaced && !inner.is_empty() || inner.starts_with(['\'', '"', '$']) {
                return Some("php-variable-variable");
            }
        }
    }
    if place.is_free_text() {
        return None;
    }
    if let Some(eq) = t.find('=') {
        let name = t[..eq].trim_end();
        if PHP_INI.iter().any(|d| {
            if d.ends_with('.') {
                name.starts_with(d)
            } else {
                name == *d
            }
        }) {
            return Some("php-ini-setting");
        }
    }
    let name_end = t
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(t.len());
    let name = &t[..name_end];
    let family = [
        "array_", "str_", "file_", "posix_", "mb_", "preg_", "ini_", "func_",
    ]
    .iter()
    .any(|f| name.starts_with(f) && name.len() > f.len());
    if name_end > 0 && (family || PHP_FUNCTIONS.contains(&name)) {
        // Past the gap PHP reads past (on the view with comments in), a `(` and, at the end, `)`.
        let raw_at = lower.find(name).map(|p| p + name.len());
        let opens = raw_at.is_some_and(|p| {
            let (k, _) = skip_gap(lower, p);
            lower.as_bytes().get(k) == Some(&b'(')
        });
        let closes = t.trim_end_matches(';').trim_end().ends_with(')') || t.ends_with('(');
        if opens && closes {
            return Some("php-function-call");
        }
    }
    None
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
    fn php_shapes_where_a_value_is_a_token() {
        for s in [
            "[system][0](ls);",
            "(sy.(st).em)('uname');",
            "( string ) \"sys\".\"t\".\"em\" ('uname');",
            "$y = 'sys'.'tem';($y)('uname');",
            "${'ff'}",
            "$ {$a}",
            "memory_limit = 512M",
            "opcache.jit_max_polymorphic_calls=50",
            "strip_tags()",
            "intval(foo)",
            "array_diff (",
            "file_exists (\n\n)",
        ] {
            assert!(blocked(s, Place::Query), "{s}");
        }
        for s in [
            "[1](#notes); see also (2)(b);",
            "f(a)(b);",
            "Total: ${total}",
            "memory_limit is too low",
            "str_replace vs preg_replace",
            "printf is how C prints",
            "engine=true",
        ] {
            assert!(!blocked(s, Place::Query), "{s}");
        }
        // In JSON text the shapes are an error, below the threshold alone.
        assert!(!blocked("intval(foo)", Place::JsonString));
    }

    #[test]
    fn java_magic_in_base64_at_each_offset() {
        for s in ["rO0ABQ", "xKztAAUz", "abCs7QAFxx"] {
            assert!(encoded_java(s), "{s}");
        }
        assert!(!encoded_java("rO0AAQ"));
    }

    #[test]
    fn every_encoded_pattern_holds_a_capital() {
        // `encoded_java` skips values without one.
        for w in ENCODED_JAVA {
            for o in 0..3 {
                let core = base64_core(w, o);
                assert!(core.len() >= 6, "{core}");
                assert!(core.bytes().any(|b| b.is_ascii_uppercase()), "{core}");
            }
        }
    }

    #[test]
    fn java_gadgets_in_base64_at_any_offset() {
        use base64::Engine;
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        let chain = b"org.apache.commons.collections.functors.InvokerTransformer";
        for pad in 0..3 {
            let mut data = vec![b'x'; pad];
            data.extend_from_slice(chain);
            assert!(encoded_java(&b64(&data)), "offset {pad}");
            let mut stream = vec![b'z'; pad + 1];
            stream.extend_from_slice(b"\xac\xed\x00\x05sr\x00\x11java.util.HashMap");
            // The magic's own 4-5 characters are too short a pattern to trust inside a large
            // blob; only the six of MAGIC_BASE64 count (here at the end of the data, at offset
            // 3, the padding's zero bits spell `rO0ABQ`).
            let mut short = vec![b'z'; pad + 1];
            short.extend_from_slice(b"\xac\xed\x00\x05");
            assert_eq!(
                encoded_java(&b64(&short)),
                pad == 2,
                "bare magic at offset {}",
                pad + 1
            );
            assert!(encoded_java(&b64(&stream)), "magic at offset {}", pad + 1);
        }
        assert!(
            !encoded_java("cnVudGltZQ"),
            "plain `runtime` is too common to count"
        );
        for s in [
            "SGVsbG8sIHdvcmxkIQ",
            "orderId",
            "eyJhbGciOiJIUzI1NiJ9",
            &b64(b"the regenerator runtime and a process builder"),
            &b64(b"Process p = new ProcessBuilder(cmd).start(); Runtime.getRuntime().gc();"),
        ] {
            assert!(!encoded_java(s), "{s}");
        }
    }

    #[test]
    fn php_calls_through_variables_and_expressions() {
        for s in [
            "$__[$_[1]](7)",
            "${@a}(10)",
            "${'a'}(11)",
            "${$s20}['q53b3a6'](13)",
            "$ooo000000{0}(15)",
            "$ooo0000o0  (16)",
            "$_ab_4c[5]['d'] /*lol*/ (17)",
            "$function\r\n (23)",
            "$____[_]{_}[@_](25)",
            "$ {@_.__}(31);",
            "${$foo->bar}(200)",
            "$a/*c*/()",
            "$a //x\n()",
        ] {
            assert!(php_variable_call(s), "{s}");
        }
        for s in [
            "pay $amount (see invoice)",
            "costs $5 (five dollars)",
            "$x",
            "a $ (b)",
            "${unclosed(1)",
            "${}()",
            "$a{}()",
        ] {
            assert!(!php_variable_call(s), "{s}");
        }
        for (s, p) in [
            ("(system)('whoami')", Place::Form),
            ("('system')('whoami')", Place::Form),
            ("return\"system\"(xyz).s", Place::Query),
            ("exec/*comment*/()", Place::Query),
            ("exec\t(blah)", Place::Query),
            ("exec #c\n (blah)", Place::Query),
            ("fsockopen('foo', 25)", Place::Query),
        ] {
            assert!(blocked(s, p), "{s}");
        }
        for s in [
            "exec (see below)",
            "(the system)",
            "the file system (ext4)",
            "(the operating system)(linux)",
        ] {
            assert!(!blocked(s, Place::Query), "{s}");
        }
    }

    #[test]
    fn endless_loops_and_real_ones() {
        for s in [
            "while(true);",
            "while(infinity);",
            "while(-1);",
            "while(+1);",
            "while(new date);",
            "while(this);",
            "while((true)))",
            "x;while(1){}",
        ] {
            assert!(endless_while(s), "{s}");
        }
        for s in [
            "while(i<10);",
            "while(next());",
            "while(it.hasnext()) { x(); }",
            "while(queue) { drain(queue); }",
            "awhile(1);",
            "while(",
            "while(a && b);",
        ] {
            assert!(!endless_while(s), "{s}");
        }
    }

    #[test]
    fn java_type_names_alone_but_not_in_stack_traces() {
        assert!(blocked("java.lang.Runtime", Place::JsonString));
        assert!(blocked("org.omg.CORBA", Place::Query));
        assert!(blocked("java.lang.String", Place::JsonKey));
        for s in [
            "java.lang.NullPointerException: name is null at Foo.bar(Foo.java:12)",
            "we moved off java.lang.Thread to virtual threads",
        ] {
            assert!(!blocked(s, Place::JsonString), "{s}");
            assert!(!blocked(s, Place::Query), "{s}");
        }
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
            ("java.io.FileOutputStream", Place::JsonString),
            ("$__['o'](5)", Place::Form),
            ("@{[system 'whoami']}", Place::Query),
            ("while(!false)", Place::Query),
            ("passthru(ls)", Place::Query),
            ("eval\r($foo)", Place::Query),
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
            "at java.io.FileInputStream.open(Native Method) in the log",
            "It costs $5 (tax included)",
            "run exec(summary) later",
        ] {
            assert!(!blocked(s, Place::JsonString), "{s}");
        }
    }
}
