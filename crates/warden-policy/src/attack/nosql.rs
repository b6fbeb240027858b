//! NoSQL operator injection: a JSON body or a query string (`user[$ne]=x`, as Express and PHP
//! parse it) that smuggles MongoDB query operators into a lookup, turning "the user named x" into
//! "any user not named x", or running JavaScript on the server (`$where`, `$function`).

use super::{Detector, Hit, Normalized, Place, CRITICAL, ERROR};

/// A field name in the lookup syntax of Django's ORM (and its imitators) that reaches what a
/// filter should not: a secret (`password__startswith`, guessed a character at a time) or a
/// relation chain four hops deep (`created_by__departments__employees__user__username__startswith`),
/// which walks from the object the API meant to filter into other users' records. Plain lookups
/// (`created__gte`, `name__icontains`) are what such APIs document, and pass.
pub fn orm_lookup(name: &str) -> Option<&'static str> {
    const SECRETS: [&str; 12] = [
        "password",
        "passwd",
        "password_hash",
        "secret",
        "token",
        "api_key",
        "apikey",
        "salt",
        "otp",
        "is_superuser",
        "is_staff",
        "is_admin",
    ];
    const LOOKUPS: [&str; 20] = [
        "exact",
        "iexact",
        "contains",
        "icontains",
        "startswith",
        "istartswith",
        "endswith",
        "iendswith",
        "regex",
        "iregex",
        "gt",
        "gte",
        "lt",
        "lte",
        "in",
        "isnull",
        "range",
        "has_key",
        "has_keys",
        "contained_by",
    ];
    memchr::memmem::find(name.as_bytes(), b"__")?;
    if name.starts_with('_') || name.ends_with('_') {
        return None;
    }
    let segments: Vec<&str> = name.split("__").collect();
    if segments.len() < 2 || segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    let lower = |s: &str| s.to_ascii_lowercase();
    let last = lower(segments[segments.len() - 1]);
    // A secret compared other than for equality: `password__startswith` guesses it, and
    // `password__isnull` tells whose is set; `device__token` (equality) is an ordinary lookup.
    let probing = LOOKUPS.contains(&last.as_str()) && !matches!(last.as_str(), "exact" | "in");
    let secret = segments[..segments.len() - 1]
        .iter()
        .any(|s| SECRETS.contains(&lower(s).as_str()));
    if probing && secret {
        return Some("orm-secret-lookup");
    }
    (segments.len() >= 5 && LOOKUPS.contains(&last.as_str())).then_some("orm-deep-lookup")
}

/// Operators that evaluate code on the server.
const CODE: [&str; 4] = ["$where", "$function", "$accumulator", "$expr"];
/// Operators that turn an equality lookup into something else.
const QUERY: [&str; 18] = [
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$regex",
    "$exists",
    "$or",
    "$and",
    "$nor",
    "$not",
    "$elemmatch",
    "$eq",
    "$all",
    "$size",
    "$type",
];

fn operator(name: &str) -> Option<(&'static str, u8)> {
    if CODE.contains(&name) {
        return Some(("code-operator", CRITICAL));
    }
    QUERY
        .contains(&name)
        .then_some(("query-operator", CRITICAL))
}

pub fn check(v: &Normalized<'_>, place: Place, out: &mut Vec<Hit>) {
    let l = v.lower.as_ref();
    if !l.contains('$') {
        return;
    }
    match place {
        Place::JsonKey => {
            if let Some((rule, score)) = operator(l.trim()) {
                out.push(Hit::new(Detector::Nosql, rule, score, 1));
            }
        }
        Place::QueryName | Place::FormName | Place::CookieName => {
            // `user[$ne]`, `filter[where][$regex]`.
            for part in l.split(['[', ']', '.']) {
                if let Some((rule, score)) = operator(part.trim()) {
                    out.push(Hit::new(Detector::Nosql, rule, score, 1));
                    return;
                }
            }
        }
        _ => {
            // A JSON object with an operator inside a string parameter: `{"$ne": null}`.
            let compact: String = l.chars().filter(|c| !c.is_whitespace()).collect();
            for op in CODE.iter().chain(QUERY.iter()) {
                for q in ['"', '\''] {
                    if compact.contains(&format!("{{{q}{op}{q}:")) {
                        out.push(Hit::new(Detector::Nosql, "operator-in-value", CRITICAL, 1));
                        return;
                    }
                }
            }
            // `$where` JavaScript: `'; return true; var x='`, `this.password.match(/.*/)`.
            if compact.contains("$where")
                || (compact.contains("this.") && compact.contains("return"))
            {
                out.push(Hit::new(Detector::Nosql, "server-javascript", ERROR, 1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::normalize::{normalize, Encoding};

    fn score(s: &str, place: Place) -> u8 {
        let mut out = Vec::new();
        check(&normalize(s, Encoding::Plain), place, &mut out);
        out.iter().map(|h| h.score).sum()
    }

    #[test]
    fn orm_lookups_that_reach_too_far() {
        for n in [
            "password__isnull",
            "user__password__startswith",
            "created_by__departments__employees__user__username__startswith",
            "api_key__istartswith",
        ] {
            assert!(orm_lookup(n).is_some(), "{n}");
        }
        for n in [
            "created__gte",
            "name__icontains",
            "author__name__startswith",
            "__proto__",
            "token",
            "snake_case_name",
            "a____b",
            "device__token",
            "password__exact",
        ] {
            assert!(orm_lookup(n).is_none(), "{n}");
        }
    }

    #[test]
    fn operators_in_keys_names_and_values() {
        assert!(score("$ne", Place::JsonKey) >= 5);
        assert!(score("$where", Place::JsonKey) >= 5);
        assert!(score("user[$ne]", Place::QueryName) >= 5);
        assert!(score("{\"$gt\": \"\"}", Place::Query) >= 5);
        assert_eq!(score("$price", Place::JsonKey), 0);
        assert_eq!(score("costs $5", Place::JsonString), 0);
        assert_eq!(score("user[name]", Place::QueryName), 0);
    }
}
