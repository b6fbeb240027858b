//! Syslog messages stay one line whatever goes in, keep their RFC 5424 header, and a CEF message
//! has exactly its seven unescaped header separators.
#![no_main]
use libfuzzer_sys::fuzz_target;
use warden_policy::syslog::{cef, rfc5424};

fuzz_target!(|input: (i64, &str, &str, &str)| {
    let (at, host, text, value) = input;
    let m = rfc5424(
        6,
        at,
        host,
        "warden",
        1,
        "request",
        &[("k", value.to_string())],
        text,
    );
    assert!(!m.contains('\n') && !m.contains('\r'));
    assert!(m.starts_with("<110>1 "));
    let c = cef("1", text, value, 5, &[("msg", text.to_string())]);
    assert!(!c.contains('\n') && !c.contains('\r'));
    // Count `|` not preceded by an escaping backslash (pairs of backslashes escape each other).
    let (mut bars, mut escaped) = (0, false);
    for ch in c.chars() {
        match ch {
            '\\' if !escaped => escaped = true,
            '|' if !escaped => bars += 1,
            _ => escaped = false,
        }
        if ch != '\\' {
            escaped = false;
        }
    }
    assert!(bars >= 7, "{c:?}");
});
