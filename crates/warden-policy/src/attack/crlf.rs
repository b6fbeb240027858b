//! CRLF and header injection: a line break in a value that ends up in a header, a URL or a
//! cookie lets an attacker add headers (`Set-Cookie`), split a response, or forge log lines. In
//! JSON text line breaks are normal and this detector does not look there.

use super::{Detector, Hit, Normalized, Place, CRITICAL, ERROR};

/// A request line inside a value (`GET http://x/ HTTP/1.1`): a second request for a proxy or a
/// back end that splits on it (request smuggling), or a probe for one. `Some(true)` when it
/// starts the value or a line of it, as a smuggled request does; `Some(false)` when prose
/// quotes one mid-sentence.
fn request_line(l: &str) -> Option<bool> {
    const METHODS: [&str; 9] = [
        "get", "post", "put", "delete", "head", "options", "patch", "connect", "trace",
    ];
    let is_request = |w: &[&str]| {
        let version = w[2].strip_prefix("http/");
        METHODS.contains(&w[0])
            && version.is_some_and(|v| v.as_bytes().first().is_some_and(u8::is_ascii_digit))
    };
    let leading = l.split(['\r', '\n']).any(|line| {
        let w: Vec<&str> = line.split_ascii_whitespace().take(3).collect();
        w.len() == 3 && is_request(&w)
    });
    if leading {
        return Some(true);
    }
    let words: Vec<&str> = l.split_ascii_whitespace().take(64).collect();
    words.windows(3).any(is_request).then_some(false)
}

pub fn check(v: &Normalized<'_>, place: Place, out: &mut Vec<Hit>) {
    if let Some(leading) = v
        .lower
        .contains("http/")
        .then(|| request_line(&v.lower))
        .flatten()
    {
        let score = if leading && place.is_line_oriented() {
            CRITICAL
        } else {
            ERROR
        };
        out.push(Hit::new(Detector::Crlf, "request-line", score, 1));
        return;
    }
    if !place.is_line_oriented() {
        return;
    }
    let d = v.decoded.as_ref();
    let Some(p) = d.find(['\r', '\n']) else {
        return;
    };
    let after = d[p..].trim_start_matches(['\r', '\n']);
    let name_end = after.find(':');
    let header_like = name_end.is_some_and(|e| {
        e > 0
            && after[..e]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if header_like || after.to_ascii_lowercase().starts_with("http/") {
        out.push(Hit::new(Detector::Crlf, "header-injection", CRITICAL, 1));
    } else if d[p..]
        .split(['\r', '\n'])
        .filter(|line| !line.is_empty())
        .take(8)
        .any(mail_command)
    {
        out.push(Hit::new(
            Detector::Crlf,
            "mail-command-injection",
            CRITICAL,
            1,
        ));
    } else {
        out.push(Hit::new(Detector::Crlf, "line-break", ERROR, 1));
    }
}

/// A line that a mail server reads as a command: SMTP (`MAIL FROM:<a@b>`, `RCPT TO:<x>`,
/// `EHLO host`), POP3 (`RETR 1`, `TOP 1 2`, `APOP user digest`) or a tagged IMAP command
/// (`a001 EXAMINE INBOX`). A value that reaches a mail server's socket with a line break in
/// it lets the attacker send mail or read a mailbox as the application.
fn mail_command(line: &str) -> bool {
    let l = line.trim().to_ascii_lowercase();
    let mut words = l.split_whitespace();
    let (Some(first), second) = (words.next(), words.next()) else {
        return false;
    };
    let numeric = |w: Option<&str>| w.is_some_and(|w| w.bytes().all(|b| b.is_ascii_digit()));
    if l.starts_with("mail from:<") || l.starts_with("rcpt to:<") {
        return true;
    }
    match first {
        "ehlo" | "helo" => second.is_some_and(|h| h.contains('.')) && words.next().is_none(),
        "data" | "quit" | "rset" | "noop" | "stat" | "capa" => second.is_none(),
        "retr" | "dele" | "top" | "list" | "uidl" => numeric(second),
        "apop" => words
            .next()
            .is_some_and(|d| d.len() == 32 && d.bytes().all(|b| b.is_ascii_hexdigit())),
        "auth" => {
            let third = words.next();
            matches!(
                second,
                Some("plain" | "login" | "cram-md5" | "xoauth2" | "gssapi" | "ntlm")
            ) || third.is_some_and(|t| t.len() >= 8 && !t.contains('.')) && words.next().is_none()
        }
        "vrfy" | "expn" => second.is_some() && words.next().is_none(),
        tag if tag.len() <= 8
            && tag.bytes().any(|b| b.is_ascii_digit())
            && tag.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            matches!(
                second,
                Some(
                    "login"
                        | "authenticate"
                        | "select"
                        | "examine"
                        | "list"
                        | "lsub"
                        | "copy"
                        | "store"
                        | "search"
                        | "fetch"
                        | "append"
                        | "uid"
                        | "create"
                        | "delete"
                        | "rename"
                        | "expunge"
                        | "status"
                        | "logout"
                        | "capability"
                )
            )
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::normalize::{normalize, Encoding};

    fn score(s: &str, place: Place) -> u8 {
        let mut out = Vec::new();
        check(&normalize(s, Encoding::Form), place, &mut out);
        out.iter().map(|h| h.score).sum()
    }

    #[test]
    fn request_lines_inside_values() {
        assert!(score("GET%20http%3A%2F%2Fwww.foo.bar%20HTTP%2F1.2", Place::Query) >= 5);
        assert!(score("POST /admin HTTP/1.1", Place::Header) >= 5);
        assert!(score("x%0d%0aPOST /admin HTTP/1.1", Place::Cookie) >= 5);
        // In a JSON text (a ticket quoting a request) it counts, but not alone.
        let quoted = score(
            "the log says GET /index.html HTTP/1.1 then 404",
            Place::JsonString,
        );
        assert!(quoted > 0 && quoted < 5);
        assert_eq!(score("we get http/2 for free", Place::Query), 0);
        let mid = score("the old one sent GET / HTTP/1.1 and waited", Place::Query);
        assert!(mid > 0 && mid < 5);
    }

    #[test]
    fn injected_headers() {
        assert!(score("en%0d%0aSet-Cookie:%20session=evil", Place::Query) >= 5);
        assert!(score("x%0d%0a%0d%0aHTTP/1.1 200 OK", Place::Query) >= 5);
        assert!(score("%250d%250aLocation:%20http://evil", Place::Header) >= 5);
        assert_eq!(score("line one%0Aline two", Place::JsonString), 0);
        assert_eq!(score("plain", Place::Query), 0);
    }

    #[test]
    fn mail_commands_after_a_line_break() {
        for s in [
            "x%0d%0aMAIL%20FROM:%3Ca@b.com%3E",
            "%0d%0aEHLO%20test.com",
            "%0d%0aRCPT%20TO:%3Cpostmaster%3E",
            "x%0d%0aa001%20EXAMINE%20INBOX",
            "1%0d%0aRETR%20123",
            "%0d%0aQUIT",
        ] {
            assert!(score(s, Place::Form) >= 5, "{s}");
        }
        // A form's text with ordinary lines: a line break alone stays below the threshold.
        for s in [
            "Dear team,%0d%0aData is attached.",
            "Order 12%0d%0aList of items follows",
            "hello%0d%0aHelo there, friend",
        ] {
            assert!(score(s, Place::Form) < 5, "{s}");
        }
    }
}
