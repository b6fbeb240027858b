//! Recognises error answers that leak an application's internals: stack traces, SQL errors,
//! framework debug pages, server file paths. An upstream 5xx carrying one is replaced by a generic
//! problem before it reaches the client: such details map the application for an attacker (which
//! framework, which database, which query broke and how).

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// What a leak reveals; the names appear in findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leak {
    StackTrace,
    SqlError,
    DebugPage,
    FilePath,
}

impl Leak {
    pub fn id(self) -> &'static str {
        match self {
            Leak::StackTrace => "stack-trace",
            Leak::SqlError => "sql-error",
            Leak::DebugPage => "debug-page",
            Leak::FilePath => "file-path",
        }
    }
}

/// Phrases that only appear when internals spill out, compared without regard to case.
const MARKERS: &[(&str, Leak)] = &[
    ("traceback (most recent call last)", Leak::StackTrace),
    ("exception in thread", Leak::StackTrace),
    ("\tat java.", Leak::StackTrace),
    ("\n\tat ", Leak::StackTrace),
    ("\n    at ", Leak::StackTrace),
    ("at object.<anonymous>", Leak::StackTrace),
    ("(node:internal", Leak::StackTrace),
    ("goroutine 1 [running]", Leak::StackTrace),
    ("panicked at", Leak::StackTrace),
    ("stack backtrace:", Leak::StackTrace),
    ("system.nullreferenceexception", Leak::StackTrace),
    ("unhandled exception", Leak::StackTrace),
    ("uncaught exception", Leak::StackTrace),
    ("php fatal error", Leak::StackTrace),
    ("php warning:", Leak::StackTrace),
    (".php on line", Leak::StackTrace),
    (".py\", line ", Leak::StackTrace),
    (".rb:", Leak::StackTrace),
    ("nullpointerexception", Leak::StackTrace),
    ("stacktrace", Leak::StackTrace),
    ("stack trace:", Leak::StackTrace),
    ("sqlstate", Leak::SqlError),
    ("syntax error at or near", Leak::SqlError),
    ("you have an error in your sql syntax", Leak::SqlError),
    ("unclosed quotation mark", Leak::SqlError),
    ("unterminated quoted string", Leak::SqlError),
    ("quoted string not properly terminated", Leak::SqlError),
    ("ora-00", Leak::SqlError),
    ("ora-01", Leak::SqlError),
    ("psycopg2.", Leak::SqlError),
    ("pg::", Leak::SqlError),
    ("sqlite3.", Leak::SqlError),
    ("sqlite_error", Leak::SqlError),
    ("mysql_fetch", Leak::SqlError),
    ("mysqli_", Leak::SqlError),
    ("microsoft ole db provider", Leak::SqlError),
    ("odbc driver", Leak::SqlError),
    ("jdbc", Leak::SqlError),
    ("hibernate", Leak::SqlError),
    ("sequelizedatabaseerror", Leak::SqlError),
    ("mongoerror", Leak::SqlError),
    ("mongoservererror", Leak::SqlError),
    ("duplicate key value violates", Leak::SqlError),
    ("werkzeug debugger", Leak::DebugPage),
    ("whitelabel error page", Leak::DebugPage),
    ("django", Leak::DebugPage),
    ("laravel", Leak::DebugPage),
    ("rails.root", Leak::DebugPage),
    ("<title>action controller: exception", Leak::DebugPage),
    ("server error in '/' application", Leak::DebugPage),
    ("/var/www/", Leak::FilePath),
    ("/usr/src/app/", Leak::FilePath),
    ("/home/", Leak::FilePath),
    ("/srv/", Leak::FilePath),
    ("c:\\inetpub", Leak::FilePath),
    ("c:\\users\\", Leak::FilePath),
    ("node_modules/", Leak::FilePath),
    ("site-packages/", Leak::FilePath),
];

fn matcher() -> &'static AhoCorasick {
    static M: OnceLock<AhoCorasick> = OnceLock::new();
    M.get_or_init(|| {
        AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostFirst)
            .build(MARKERS.iter().map(|(p, _)| p))
            .expect("static patterns build")
    })
}

/// The first leak found in an error body, if any. `html` marks a `text/html` body: an API that
/// answers an error with a web page is showing a framework's error page.
pub fn find(body: &[u8], html: bool) -> Option<Leak> {
    if let Some(m) = matcher().find(body) {
        return Some(MARKERS[m.pattern().as_usize()].1);
    }
    html.then_some(Leak::DebugPage)
}

/// Every kind of leak in a body, each once, in the order first seen (a stack trace often
/// carries the SQL error that caused it).
pub fn all(body: &[u8]) -> Vec<Leak> {
    let mut out = Vec::new();
    for m in matcher().find_iter(body) {
        let leak = MARKERS[m.pattern().as_usize()].1;
        if !out.contains(&leak) {
            out.push(leak);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaks_are_recognised() {
        let cases: [(&str, Leak); 6] = [
            (
                "Traceback (most recent call last):\n  File \"/srv/app/db.py\", line 42",
                Leak::StackTrace,
            ),
            (
                "java.lang.IllegalStateException\n\tat com.acme.Foo.bar(Foo.java:12)",
                Leak::StackTrace,
            ),
            ("ERROR: syntax error at or near \"'\"", Leak::SqlError),
            ("SQLSTATE[42000]: Syntax error", Leak::SqlError),
            (
                "{\"error\":\"ENOENT: /var/www/app/config.json\"}",
                Leak::FilePath,
            ),
            ("<h1>Whitelabel Error Page</h1>", Leak::DebugPage),
        ];
        for (body, leak) in cases {
            assert_eq!(find(body.as_bytes(), false), Some(leak), "{body}");
        }
    }

    #[test]
    fn plain_errors_pass() {
        for body in [
            "{\"error\":\"internal error\",\"code\":\"E42\"}",
            "{\"type\":\"about:blank\",\"title\":\"Service Unavailable\"}",
            "upstream overloaded, retry later",
        ] {
            assert_eq!(find(body.as_bytes(), false), None, "{body}");
        }
        assert_eq!(find(b"<html>oops</html>", true), Some(Leak::DebugPage));
    }
}
