//! CRLF and header injection: a line break in a value that ends up in a header, a URL or a
//! cookie lets an attacker add headers (`Set-Cookie`), split a response, or forge log lines. In
//! JSON text line breaks are normal and this detector does not look there.

use super::{Detector, Hit, Normalized, Place, CRITICAL, ERROR};

pub fn check(v: &Normalized<'_>, place: Place, out: &mut Vec<Hit>) {
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
    } else {
        out.push(Hit::new(Detector::Crlf, "line-break", ERROR, 1));
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
    fn injected_headers() {
        assert!(score("en%0d%0aSet-Cookie:%20session=evil", Place::Query) >= 5);
        assert!(score("x%0d%0a%0d%0aHTTP/1.1 200 OK", Place::Query) >= 5);
        assert!(score("%250d%250aLocation:%20http://evil", Place::Header) >= 5);
        assert_eq!(score("line one%0Aline two", Place::JsonString), 0);
        assert_eq!(score("plain", Place::Query), 0);
    }
}
