//! Path templates (`/users/{id}/orders/{order}.json`) and matching a request path against them.
//! Concrete segments win over templated ones, as OpenAPI says (`/users/me` before `/users/{id}`).

/// One path segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Literal(String),
    /// `prefix{name}suffix`; the whole segment is usually just `{name}`.
    Param {
        prefix: String,
        name: String,
        suffix: String,
    },
}

#[derive(Debug, Clone)]
pub struct Template {
    pub text: String,
    segs: Vec<Seg>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        if !text.starts_with('/') {
            return Err("a path must start with `/`".into());
        }
        let mut segs = Vec::new();
        for raw in text.trim_start_matches('/').split('/') {
            match raw.find('{') {
                None if raw.contains('}') => return Err(format!("`{raw}`: unbalanced `}}`")),
                None => segs.push(Seg::Literal(raw.to_string())),
                Some(open) => {
                    let close = raw[open..]
                        .find('}')
                        .map(|c| open + c)
                        .ok_or_else(|| format!("`{raw}`: unbalanced `{{`"))?;
                    let name = &raw[open + 1..close];
                    let suffix = &raw[close + 1..];
                    if name.is_empty() || suffix.contains(['{', '}']) {
                        return Err(format!(
                            "`{raw}`: one named parameter per path segment is supported"
                        ));
                    }
                    segs.push(Seg::Param {
                        prefix: raw[..open].to_string(),
                        name: name.to_string(),
                        suffix: suffix.to_string(),
                    });
                }
            }
        }
        Ok(Template {
            text: text.to_string(),
            segs,
        })
    }

    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segs.iter().filter_map(|s| match s {
            Seg::Param { name, .. } => Some(name.as_str()),
            Seg::Literal(_) => None,
        })
    }

    /// The raw (still percent-encoded) parameter values when `path` matches.
    pub fn matches<'p>(&self, segments: &[&'p str]) -> Option<Vec<(&str, &'p str)>> {
        if segments.len() != self.segs.len() {
            return None;
        }
        let mut out = Vec::new();
        for (seg, s) in self.segs.iter().zip(segments) {
            match seg {
                Seg::Literal(l) => {
                    if l != s {
                        return None;
                    }
                }
                Seg::Param {
                    prefix,
                    name,
                    suffix,
                } => {
                    let v = s
                        .strip_prefix(prefix.as_str())?
                        .strip_suffix(suffix.as_str())?;
                    if v.is_empty() {
                        return None;
                    }
                    out.push((name.as_str(), v));
                }
            }
        }
        Some(out)
    }

    /// Sort key: literal segments before parameters, position by position.
    pub fn specificity(&self) -> Vec<u8> {
        self.segs
            .iter()
            .map(|s| match s {
                Seg::Literal(_) => 0,
                Seg::Param { prefix, suffix, .. } if !prefix.is_empty() || !suffix.is_empty() => 1,
                Seg::Param { .. } => 2,
            })
            .collect()
    }
}

/// The segments of a request path (after the API's base path), as the templates see them.
pub fn segments(path: &str) -> Vec<&str> {
    path.trim_start_matches('/').split('/').collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_and_bind() {
        let t = Template::parse("/users/{user}/orders/{id}.json").unwrap();
        let got = t.matches(&segments("/users/alice/orders/7.json")).unwrap();
        assert_eq!(got, vec![("user", "alice"), ("id", "7")]);
        assert!(t.matches(&segments("/users/alice/orders/7")).is_none());
        assert!(t.matches(&segments("/users/alice/orders/.json")).is_none());
        assert!(t.matches(&segments("/users/alice/orders")).is_none());
        assert!(Template::parse("/a/{b").is_err());
        assert!(Template::parse("/a/{b}{c}").is_err());
        assert!(Template::parse("a").is_err());
        let me = Template::parse("/users/me").unwrap();
        let id = Template::parse("/users/{id}").unwrap();
        assert!(me.specificity() < id.specificity());
    }
}
