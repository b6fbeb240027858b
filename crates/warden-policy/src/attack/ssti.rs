//! Server-side template injection: template syntax that evaluates (`{{7*7}}`, `${7*7}`,
//! `<%= 7*7 %>`, `#{7*7}`) or reaches into the runtime (`{{''.__class__.__mro__}}`,
//! `${T(java.lang.Runtime)}`, `{{constructor.constructor('...')()}}`). Plain placeholders such as
//! `{{name}}` in content pass: only expressions with operators, calls or dunders count.

use super::signals::WordSet;
use super::{Detector, Hit, Normalized, Place, CRITICAL};

static RUNTIME: WordSet = WordSet::new(&[
    "__class__",
    "__mro__",
    "__subclasses__",
    "__globals__",
    "__builtins__",
    "__import__",
    ".__init__",
    "__init__.",
    "freemarker.template.utility",
    "t(java.lang",
    "java.lang.runtime",
    "constructor.constructor",
    "#set(",
    "$class.inspect",
    "getclass()",
    "self._templatereference",
    "lipsum.__globals__",
]);

/// Template delimiters: (open, close).
const DELIMS: [(&str, &str); 7] = [
    ("{{", "}}"),
    ("${", "}"),
    ("#{", "}"),
    ("<%=", "%>"),
    ("<%", "%>"),
    ("{%", "%}"),
    ("*{", "}"),
];

/// A template statement (`{% if True %}`, `<% for x in y %>`): control flow that only a template
/// engine reads.
fn statement(open: &str, expr: &str) -> bool {
    let e = expr.trim_start_matches('=').trim_start();
    matches!(open, "{%" | "<%")
        && ["if ", "for ", "set ", "macro ", "block ", "with "]
            .iter()
            .any(|w| e.starts_with(w))
}

/// Whether an expression computes something (as opposed to naming a variable).
fn evaluates(expr: &str) -> bool {
    let e = expr.trim();
    let arithmetic = e.char_indices().any(|(i, c)| {
        matches!(c, '*' | '+' | '/' | '%')
            && i > 0
            && e[..i]
                .trim_end()
                .ends_with(|d: char| d.is_ascii_digit() || d == ')')
    });
    arithmetic || e.contains('(') || e.contains('[') || e.contains('|') && e.contains("attr")
}

pub fn check(v: &Normalized<'_>, place: Place, out: &mut Vec<Hit>) {
    // In JSON text or a body a template may be the content (an e-mail template with a total);
    // in a query, form, cookie, header or path, an expression is a probe for an engine.
    let score = place.shape_score();
    let c = v.compact();
    if !c.bytes().any(|b| matches!(b, b'{' | b'%' | b'_' | b'(')) {
        return;
    }
    if RUNTIME.found_in(c) {
        out.push(Hit::new(Detector::Ssti, "runtime-access", CRITICAL, 1));
        return;
    }
    for (open, close) in DELIMS {
        let mut from = 0;
        while let Some(p) = c[from..].find(open) {
            let start = from + p + open.len();
            let Some(end) = c[start..].find(close) else {
                break;
            };
            let expr = &c[start..start + end];
            // `${jndi:...}` belongs to the JNDI detector; `{%` blocks are control flow.
            if open == "{%" && (expr.trim_start().starts_with("import") || expr.contains("include"))
            {
                out.push(Hit::new(Detector::Ssti, "template-import", CRITICAL, 1));
                return;
            }
            if !expr.starts_with("jndi") && evaluates(expr) {
                out.push(Hit::new(Detector::Ssti, "expression", score, 1));
                out.push(Hit::new(Detector::Ssti, "expression-pl2", 1, 2));
                return;
            }
            if statement(open, expr) {
                out.push(Hit::new(Detector::Ssti, "statement", score, 1));
                return;
            }
            from = start + end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::normalize::{normalize, Encoding};

    fn score(s: &str, pl: u8) -> u8 {
        let mut out = Vec::new();
        check(&normalize(s, Encoding::Plain), Place::JsonString, &mut out);
        out.iter()
            .filter(|h| h.paranoia <= pl)
            .map(|h| h.score)
            .sum()
    }

    #[test]
    fn probes_outside_free_text_are_critical() {
        let at = |s: &str, place| {
            let mut out = Vec::new();
            check(&normalize(s, Encoding::Plain), place, &mut out);
            out.iter()
                .filter(|h| h.paranoia == 1)
                .map(|h| h.score)
                .sum::<u8>()
        };
        for s in [
            "{{7*7}}",
            "<%= 7*7 %>",
            "#{7*7}",
            "{% if true %}49{% endif %}",
            "<% if true %>49<% endif %>",
        ] {
            assert!(at(s, Place::Query) >= 5, "{s}");
            assert!(at(s, Place::JsonString) < 5, "{s}");
        }
        assert_eq!(at("Hello {{name}}", Place::Query), 0);
        assert_eq!(at("50% off <%name%>", Place::Query), 0);
    }

    #[test]
    fn template_payloads() {
        assert!(score("{{''.__class__.__mro__[1].__subclasses__()}}", 1) >= 5);
        assert!(score("${T(java.lang.Runtime).getRuntime().exec('id')}", 1) >= 5);
        assert!(score("{{constructor.constructor('alert(1)')()}}", 1) >= 5);
        assert!(score("{% import os %}", 1) >= 5);
        assert_eq!(
            score("{{7*7}}", 1),
            4,
            "an expression alone is an error, not yet a block"
        );
        assert!(score("{{7*7}}", 2) >= 5);
        assert_eq!(
            score("Hello {{name}}, your order {{order.id}} shipped", 4),
            0
        );
        assert_eq!(score("price: ${amount}", 4), 0);
    }
}
