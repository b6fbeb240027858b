//! Path traversal and file inclusion: `..` segments in any spelling (normalisation has already
//! decoded `%2e%2e%2f`, `..%c0%af` and the like), references to files an attacker wants
//! (`/etc/passwd`, `win.ini`, `.ssh/id_rsa`), stream wrappers that turn an include into code or
//! file access (`php://filter`, `expect://`, `phar://`), and remote inclusion of a URL that ends
//! in `?` to cut off the application's own suffix.

use super::signals::WordSet;
use super::{Detector, Hit, Normalized, Place, CRITICAL, ERROR, WARNING};

static SENSITIVE: WordSet = WordSet::new(&[
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/etc/hosts",
    "/etc/issue",
    "/etc/motd",
    "/etc/crontab",
    "/etc/subuid",
    "/etc/subgid",
    "/etc/sudoers",
    "/proc/self/",
    "/proc/version",
    "/proc/cmdline",
    "/proc/interrupts",
    "/proc/net/",
    "/sys/class",
    "/sys/kernel",
    "/var/log/",
    "/root/",
    ".ssh/id_rsa",
    ".ssh/authorized_keys",
    ".bash_history",
    ".htpasswd",
    ".htaccess",
    "wp-config.php",
    "web.config",
    "/windows/win.ini",
    "/windows/system32",
    "boot.ini",
    "/.env",
    "/etc/environment",
    "/.git/",
    "/.aws/credentials",
    "/etc/ssh/",
    "/dev/tcp/",
    "/.docker",
    "/wp-content/debug.log",
    "/.svn/",
    "/.npmrc",
    "/.kube/config",
]);

/// Files and folders nobody serves on purpose: backups, logs, tool and editor configuration.
static RESTRICTED_PATH: WordSet = WordSet::new(&[
    ".sql",
    ".sql.zip",
    ".sql.gz",
    ".bak",
    ".old",
    ".swp",
    "debug.log",
    "error.log",
    "errors.log",
    ".ds_store",
    ".claude/",
    ".cursor/",
    ".aider",
    ".codex/",
    // Agent and automation tool folders (their rules and MCP configs hold keys and prompts).
    ".cursorignore",
    ".roo/",
    ".cline/",
    ".windsurf/",
    ".opencode/",
    ".plandex/",
    ".continue/",
    ".n8n/",
    "id_rsa",
    ".git/config",
]);

/// A glob (`*`, `?`, `[...]`) matching `text` whole: shells expand `/etc/pa[s]swd` and
/// `/???/??t` to the files attackers want, so the glob is matched against those names.
fn glob(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let (mut star_p, mut star_t) = (None, 0);
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star_p = Some(pi);
                    star_t = ti;
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                b'[' => {
                    if let Some(end) = p[pi..].iter().position(|c| *c == b']') {
                        let set = &p[pi + 1..pi + end];
                        let (neg, set) = match set.first() {
                            Some(b'!' | b'^') => (true, &set[1..]),
                            _ => (false, set),
                        };
                        let mut hit = false;
                        let mut i = 0;
                        while i < set.len() {
                            if i + 2 < set.len() && set[i + 1] == b'-' {
                                hit |= (set[i]..=set[i + 2]).contains(&t[ti]);
                                i += 3;
                            } else {
                                hit |= set[i] == t[ti];
                                i += 1;
                            }
                        }
                        if hit != neg {
                            pi += end + 1;
                            ti += 1;
                            continue;
                        }
                    }
                }
                c if c == t[ti] => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star_p {
            Some(sp) => {
                pi = sp + 1;
                star_t += 1;
                ti = star_t;
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// Targets of shell globs: sensitive files and the shells and tools an attacker runs.
const GLOB_TARGETS: [&str; 16] = [
    "/etc",
    "/etc/passwd",
    "/etc/shadow",
    "/etc/hosts",
    "/bin/bash",
    "/bin/sh",
    "/usr/bin/id",
    "/usr/bin/uname",
    "/bin/cat",
    "/usr/bin/wget",
    "/usr/bin/curl",
    "/bin/ls",
    "/bin/nc",
    "/usr/bin/whoami",
    "/usr/bin/perl",
    "/usr/bin/python",
];

/// Stream wrappers, split at their first `:` (the place they are looked up from).
const WRAPPERS: [(&str, &str); 10] = [
    ("php", "://"),
    ("file", "://"),
    ("expect", "://"),
    ("phar", "://"),
    ("zip", "://"),
    ("data", "://"),
    ("glob", "://"),
    ("compress.zlib", "://"),
    ("jar", ":file:"),
    ("netdoc", "://"),
];

/// Where a stream wrapper starts in `l`, found from each `:` (every wrapper has one, and a
/// value's colons are few): the search automaton over the whole value cost more than the
/// rest of this detector on an ordinary URL.
fn wrapper_starts(l: &str) -> impl Iterator<Item = usize> + '_ {
    memchr::memchr_iter(b':', l.as_bytes()).flat_map(move |p| {
        WRAPPERS
            .iter()
            .filter(move |(name, tail)| l[..p].ends_with(name) && l[p..].starts_with(tail))
            .map(move |(name, _)| p - name.len())
    })
}

/// Whether the value has a `..` path segment (between separators, or at either end next to one).
fn dot_dot(s: &str) -> usize {
    let b = s.as_bytes();
    let mut n = 0;
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'.' && b[i + 1] == b'.' {
            let before = i == 0 || matches!(b[i - 1], b'/' | b'\\' | b';' | b'=' | b' ' | b':');
            // `../`, `..\`, and Tomcat's `..;/`.
            let after = matches!(b.get(i + 2), Some(b'/' | b'\\' | b';'));
            let end = i + 2 == b.len() && i > 0 && matches!(b[i - 1], b'/' | b'\\');
            if before && (after || end) {
                n += 1;
                i += 2;
                continue;
            }
        }
        i += 1;
    }
    n
}

pub fn check(v: &Normalized<'_>, place: Place, out: &mut Vec<Hit>) {
    let l = v.lower.as_ref();
    if l.len() < 3 {
        return;
    }
    let traversals = dot_dot(l);
    let path_shaped = !l.contains(' ');
    if traversals > 0 {
        // Prose says "../README" once in a while, never "../../" or "..\".
        let score = if traversals >= 2
            || l.contains("..\\")
            || l.contains("..;")
            || (path_shaped && place != Place::JsonString)
        {
            CRITICAL
        } else {
            ERROR
        };
        out.push(Hit::new(Detector::Traversal, "dot-dot-segment", score, 1));
    }
    let slashed: std::borrow::Cow<'_, str> = if l.contains('\\') {
        l.replace('\\', "/").into()
    } else {
        l.into()
    };
    let mut sensitive = false;
    if let Some((i, _)) = SENSITIVE.find(&slashed) {
        let f = SENSITIVE.word(i);
        {
            // A bare mention in prose ("edit /etc/hosts") is weaker than a path-shaped value or a
            // command around it (`cat /etc/subuid`).
            let commanded = [
                "cat ", "type ", "more ", "less ", "head ", "tail ", "nl ", "tac ", "grep ", "cp ",
                "curl ", "wget ", "ls ", "if=",
            ]
            .iter()
            .any(|c| {
                slashed.contains(&format!("{c}{}", f.trim_start_matches('/')))
                    || slashed.contains(&format!("{c}{f}"))
            });
            let score = if path_shaped || traversals > 0 || commanded {
                CRITICAL
            } else {
                WARNING
            };
            out.push(Hit::new(Detector::Traversal, "sensitive-file", score, 1));
            sensitive = true;
        }
    }
    // In a sentence (`cat /[?]tc/pa[?]swd`) only outside JSON text, where `/*` and `?` are prose.
    if !sensitive
        && (path_shaped || place != Place::JsonString)
        && slashed.contains(['[', '?', '*'])
    {
        // `/etc/pa[s]swd`, `/???/??t /???/p??s??`: every path token tried as a glob. A token
        // needs a letter of its own: `/*` alone matches every folder.
        // The separators are ASCII: split the bytes (a `char` pattern decodes every one).
        let separator = |b: &u8| {
            matches!(
                b,
                b' ' | b'\t'
                    | b';'
                    | b'|'
                    | b'&'
                    | b'='
                    | b'`'
                    | b'('
                    | b')'
                    | b'+'
                    | b'{'
                    | b'}'
                    | b','
            )
        };
        for token in slashed.as_bytes().split(separator) {
            if token.starts_with(b"/")
                && token.len() <= 64
                && token.iter().any(|b| matches!(b, b'[' | b'?' | b'*'))
                && token.iter().any(u8::is_ascii_alphabetic)
                && GLOB_TARGETS.iter().any(|t| glob(token, t.as_bytes()))
            {
                out.push(Hit::new(Detector::Traversal, "glob-path", CRITICAL, 1));
                sensitive = true;
                break;
            }
        }
    }
    if !sensitive && place == Place::Path {
        // Hidden files and folders (`/.env`, `/.git/config`), backups and logs in request paths.
        let hidden = slashed.split('/').any(|seg| {
            seg.starts_with('.') && seg.len() > 1 && seg != ".." && seg != ".well-known"
        });
        if RESTRICTED_PATH.found_in(&slashed) {
            out.push(Hit::new(
                Detector::Traversal,
                "restricted-file",
                CRITICAL,
                1,
            ));
        } else if hidden {
            out.push(Hit::new(Detector::Traversal, "hidden-file", ERROR, 1));
        }
    }
    for p in wrapper_starts(l) {
        {
            // `data://` appears in normal URLs only as `data:` without slashes; any wrapper at the
            // start of a value, or after `=`, is an include.
            if p == 0 || matches!(l.as_bytes()[p - 1], b'=' | b' ' | b'"' | b'\'') {
                out.push(Hit::new(Detector::Traversal, "stream-wrapper", CRITICAL, 1));
                break;
            }
        }
    }
    // Remote file inclusion: a URL to an IP address, or one ending in `?` (or a NUL) to drop the
    // suffix the application appends.
    for scheme in ["http://", "https://", "ftp://", "ftps://"] {
        if let Some(rest) = l.strip_prefix(scheme) {
            let host = if rest.starts_with('[') {
                rest.split_inclusive(']').next().unwrap_or("")
            } else {
                rest.split(['/', ':', '?', '#']).next().unwrap_or("")
            };
            let ends_cut = l.ends_with('?') && rest.contains('/');
            let ip_host = !host.is_empty()
                && (host.bytes().all(|c| c.is_ascii_digit() || c == b'.')
                    || (host.starts_with('[') && host.ends_with(']')));
            if ends_cut && place.is_line_oriented() {
                out.push(Hit::new(Detector::Traversal, "remote-include", CRITICAL, 1));
            } else if ends_cut {
                out.push(Hit::new(Detector::Traversal, "remote-include", WARNING, 2));
            } else if ip_host && names_script(rest) {
                // A script fetched from a bare address: what a dropper or an include of
                // attacker code looks like; no CDN or API hands out such links.
                let score = if place.is_line_oriented() {
                    CRITICAL
                } else {
                    ERROR
                };
                out.push(Hit::new(
                    Detector::Traversal,
                    "remote-include-ip-script",
                    score,
                    1,
                ));
            } else if ip_host && place.is_line_oriented() {
                out.push(Hit::new(
                    Detector::Traversal,
                    "remote-include-ip",
                    WARNING,
                    2,
                ));
            }
            break;
        }
    }
}

/// Whether a URL's path (after the authority) names a file a server would run or include.
fn names_script(after_scheme: &str) -> bool {
    let path = after_scheme.split(['?', '#']).next().unwrap_or("");
    let Some((_, file)) = path.rsplit_once('/') else {
        return false;
    };
    let Some((_, ext)) = file.rsplit_once('.') else {
        return false;
    };
    // Remote includes also fetch plain text and include files that hold code.
    super::server_script(ext) || matches!(ext, "pl" | "py" | "sh" | "txt" | "inc")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::normalize::{normalize, Encoding};

    fn blocked(s: &str, place: Place, enc: Encoding) -> bool {
        let mut out = Vec::new();
        check(&normalize(s, enc), place, &mut out);
        out.iter()
            .filter(|h| h.paranoia == 1)
            .map(|h| h.score)
            .sum::<u8>()
            >= 5
    }

    #[test]
    fn traversal_in_its_spellings() {
        for s in [
            "../../etc/passwd",
            "..%2f..%2f..%2fetc%2fpasswd",
            "%2e%2e%2f%2e%2e%2fwindows/win.ini",
            "..%c0%af..%c0%afetc/shadow",
            "....//....//etc/passwd",
            "..\\..\\boot.ini",
            "php://filter/convert.base64-encode/resource=index.php",
            "file:///etc/passwd",
            "http://evil.example/shell.txt?",
            "/proc/self/environ",
            "/etc/pa[s]swd",
            "/???/??t",
            "cat /e?c/pa??wd",
            "cat /etc/[p//]asswd",
            "/[e///]tc",
            "..;/admin",
            "http://66.240.183.75/crash.php",
            "https://[2001:41d0:701:1100::29c8]/gecko.php",
            "http://198.51.100.9:8080/x/shell.txt?cmd=id",
        ] {
            assert!(blocked(s, Place::Query, Encoding::Form), "{s}");
        }
    }

    #[test]
    fn addresses_without_a_script_or_in_json_prose_do_not_block() {
        for (s, place) in [
            ("http://203.0.113.7/images/logo.png", Place::Query),
            ("http://203.0.113.7:9000/", Place::Query),
            ("https://[2001:db8::1]/status", Place::Query),
            ("https://example.com/index.php", Place::Query),
            // In a JSON string it still scores, below the threshold on its own.
            ("http://66.240.183.75/crash.php", Place::JsonString),
        ] {
            assert!(!blocked(s, place, Encoding::Plain), "{s}");
        }
    }

    #[test]
    fn ordinary_values_pass() {
        for s in [
            "wait... what?",
            "see ../README for details",
            "v1.2..v1.3",
            "https://example.com/page?",
            "/users/42/orders",
            "etc/passwd-like names are fine in prose: the etc folder",
            "/.well-known/openid-configuration",
        ] {
            assert!(!blocked(s, Place::JsonString, Encoding::Plain), "{s}");
        }
    }
}
