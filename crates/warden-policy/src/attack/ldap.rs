//! LDAP filter injection: a value pasted into a search filter (`(uid=VALUE)`) that closes the
//! application's clause and opens its own, `admin)(|(uid=*` or `*)(objectClass=*`. What gives
//! it away is the filter's own grammar right after a closing parenthesis: `)(` followed by an
//! attribute comparison (`uid=`, `cn>=`, `sn~=`) or a filter operator (`&`, `|`, `!`), or an
//! operator between the two parentheses (`)|(`, `)&(`, `)!(`), where that `)` closes nothing
//! the value opened: a whole filter sent as a value (`(&(objectClass=user)(cn=a*))`, to an API
//! that takes one) is balanced and passes. Prose and code rarely put a comparison straight
//! after `)(`, and never `)|(`.

use super::{Detector, Hit, Normalized, Place, CRITICAL, ERROR};

/// Where the filter breaks out, if it does: the offset of the `)` that starts it.
pub fn breakout(l: &str) -> Option<usize> {
    let b = l.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    // Parentheses the value opened and has not closed, up to `from`.
    let mut open = 0usize;
    let mut from = 0;
    while let Some(p) = memchr_close(&b[from..]) {
        let close = from + p;
        open += b[from..close].iter().filter(|&&c| c == b'(').count();
        from = close + 1;
        if open > 0 {
            open -= 1;
            continue;
        }
        let mut i = skip_ws(close + 1);
        // `)|(`, `)&(`, `)!(`: an operator joining the closed clause to a new one.
        let mut op = false;
        if i < b.len() && matches!(b[i], b'|' | b'&' | b'!') {
            op = true;
            i = skip_ws(i + 1);
        }
        if i >= b.len() || b[i] != b'(' {
            continue;
        }
        let j = skip_ws(i + 1);
        if op {
            return Some(close);
        }
        if j < b.len() && matches!(b[j], b'|' | b'&' | b'!') {
            // `)(|(uid=*`, `)(&)`: a new filter's operator.
            let k = skip_ws(j + 1);
            if k >= b.len() || matches!(b[k], b'(' | b')') {
                return Some(close);
            }
            continue;
        }
        if comparison(&b[j..]) {
            return Some(close);
        }
    }
    None
}

fn memchr_close(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b')')
}

/// An attribute description (`uid`, `objectClass`, `cn;lang-en`, `2.5.4.3`) followed by a filter
/// comparison: `=`, `>=`, `<=`, `~=` (and `:=`, the extensible match).
fn comparison(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'-' | b'.' | b';')) {
        i += 1;
    }
    if i == 0 || i > 64 {
        return false;
    }
    match b.get(i) {
        Some(b'=') => true,
        Some(b'>' | b'<' | b'~' | b':') => b.get(i + 1) == Some(&b'='),
        _ => false,
    }
}

pub fn check(v: &Normalized<'_>, place: Place, out: &mut Vec<Hit>) {
    let l = v.lower.as_ref();
    if breakout(l).is_none() {
        return;
    }
    // In free text a parenthesised aside followed by another (`(see a)(b=c)`) is conceivable;
    // a value with no space in it is a token, and a token with a filter in it is an attack.
    let score = if place == Place::JsonString && l.trim().contains(char::is_whitespace) {
        ERROR
    } else {
        CRITICAL
    };
    out.push(Hit::new(Detector::Ldap, "filter-breakout", score, 1));
}

#[cfg(test)]
mod tests {
    use super::breakout;

    #[test]
    fn filter_breakouts() {
        for s in [
            "*)(uid=*))(|(uid=*",
            "admin)(|(password=*",
            "admin)(|",
            "void)(objectclass=users))(&(objectclass=void)",
            "eb9adbd87d)!(sn=*",
            "val)&(cn=admin",
            "val)|(uid=*",
            "value)(gidnumber<=100",
            "john)(sn~=smith",
            "bar)(&)",
            "test) ( & ",
            "aaa*aaa)(cn>=bob)",
        ] {
            assert!(breakout(s).is_some(), "{s}");
        }
    }

    proptest::proptest! {
        /// A value whose every `)` closes a `(` it opened (a whole filter) never breaks out,
        /// whatever else it holds; the same value after `x)` always does when a filter follows.
        #[test]
        fn only_an_unopened_parenthesis_breaks_out(s in "[a-z=()|&!* ]{0,60}") {
            let mut depth = 0i32;
            let balanced = s.bytes().all(|c| {
                match c {
                    b'(' => depth += 1,
                    b')' => depth -= 1,
                    _ => {}
                }
                depth >= 0
            });
            if balanced {
                proptest::prop_assert_eq!(breakout(&s), None, "{:?}", s);
            }
            let closed = format!("x)(uid={s}");
            proptest::prop_assert!(breakout(&closed).is_some(), "{:?}", closed);
        }
    }

    #[test]
    fn prose_and_code_pass() {
        for s in [
            "(see above)(and below)",
            "f(x)(y)",
            "call(a)(b, c)",
            "smile :) (really)",
            "a (b) = c",
            "fn(a) == (b)",
            "(1)(2)(3)",
            "if (x) (y = 1)",
            "ratio (a)/(b)",
            "(&(objectclass=user)(|(cn=a*)(sn=b*)))",
            "(useraccountcontrol:1.2.840.113556.1.4.803:=67108864)(&(objectcategory=group))",
        ] {
            assert!(breakout(s).is_none(), "{s}");
        }
    }
}
