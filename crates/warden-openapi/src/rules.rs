//! Object-level rules: CEL expressions (the language Envoy and Kubernetes use for the same job)
//! that bind a value in the request, or in the response, to the caller's identity, e.g.
//! `path.id == caller.user_id` or `response.owner == caller.id`. Compiled once at load; a rule
//! that names a variable the gateway does not provide is a load error, not a 3 a.m. surprise.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

/// The variables a rule may read.
pub const REQUEST_VARS: [&str; 5] = ["path", "query", "headers", "body", "caller"];

pub struct Rule {
    pub source: String,
    program: cel::Program,
    /// The rule reads the request body: it is decided once the body has been read.
    pub reads_body: bool,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rule({})", self.source)
    }
}

/// What a rule sees.
#[derive(Default)]
pub struct Vars<'a> {
    pub path: Option<&'a Value>,
    pub query: Option<&'a Value>,
    pub headers: Option<&'a Value>,
    pub body: Option<&'a Value>,
    pub caller: Option<&'a Value>,
    pub response: Option<&'a Value>,
}

impl Rule {
    /// `response_side`: the rule runs on the response and may also read `response`.
    pub fn compile(source: &str, response_side: bool) -> Result<Rule, String> {
        let program = cel::Program::compile(source).map_err(|e| {
            format!(
                "not a valid CEL expression: {}",
                e.to_string().lines().next().unwrap_or("")
            )
        })?;
        let refs = program.references();
        for v in refs.variables() {
            let known = REQUEST_VARS.contains(&v) || (response_side && v == "response");
            if !known {
                let mut names = REQUEST_VARS.join(", ");
                if response_side {
                    names.push_str(", response");
                }
                return Err(format!("`{v}` is not a variable rules can read ({names})"));
            }
        }
        let reads_body = refs.has_variable("body");
        Ok(Rule {
            source: source.to_string(),
            program,
            reads_body,
        })
    }

    /// `Ok(true)` when the rule holds. Anything but a boolean result is an error: the caller
    /// decides whether an error fails closed (the default) or open.
    pub fn eval(&self, vars: &Vars<'_>) -> Result<bool, String> {
        let mut ctx = cel::Context::default();
        let null = Value::Null;
        for (name, v) in [
            ("path", vars.path),
            ("query", vars.query),
            ("headers", vars.headers),
            ("body", vars.body),
            ("caller", vars.caller),
            ("response", vars.response),
        ] {
            ctx.add_variable_from_value(name, to_cel(v.unwrap_or(&null), 0));
        }
        match self.program.execute(&ctx) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("gave {:?}, not a boolean", other.type_of())),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// JSON in CEL's terms. Every integer is an `int`, so that `path.id == caller.user_id` compares
/// like with like whether a number came from a URL, a token or a YAML file.
fn to_cel(v: &Value, depth: usize) -> cel::Value {
    if depth > 64 {
        return cel::Value::Null;
    }
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(f)) => cel::Value::Float(f),
            _ => cel::Value::Null,
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(
            items.iter().map(|i| to_cel(i, depth + 1)).collect(),
        )),
        Value::Object(map) => {
            let m: HashMap<cel::objects::Key, cel::Value> = map
                .iter()
                .map(|(k, v)| {
                    (
                        cel::objects::Key::String(Arc::new(k.clone())),
                        to_cel(v, depth + 1),
                    )
                })
                .collect();
            cel::Value::Map(cel::objects::Map { map: Arc::new(m) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_bind_request_values_to_the_caller() {
        let r = Rule::compile("path.id == caller.user_id", false).unwrap();
        let caller = json!({"user_id": 7, "roles": ["user"]});
        let ok = json!({"id": 7});
        let other = json!({"id": 8});
        let vars = |p| Vars {
            path: Some(p),
            caller: Some(&caller),
            ..Vars::default()
        };
        assert_eq!(r.eval(&vars(&ok)), Ok(true));
        assert_eq!(r.eval(&vars(&other)), Ok(false));
        let r = Rule::compile("body.account_id in caller.accounts", false).unwrap();
        assert!(r.reads_body);
        let caller = json!({"accounts": ["a1", "a2"]});
        let body = json!({"account_id": "a2"});
        assert_eq!(
            r.eval(&Vars {
                body: Some(&body),
                caller: Some(&caller),
                ..Vars::default()
            }),
            Ok(true)
        );
    }

    #[test]
    fn unknown_variables_and_bad_syntax_fail_at_load() {
        assert!(Rule::compile("user.id == 1", false)
            .unwrap_err()
            .contains("`user`"));
        assert!(Rule::compile("response.owner == caller.id", false).is_err());
        assert!(Rule::compile("response.owner == caller.id", true).is_ok());
        assert!(Rule::compile("path.id ==", false).is_err());
    }

    #[test]
    fn a_missing_value_is_an_error_not_a_pass() {
        let r = Rule::compile("path.id == caller.user_id", false).unwrap();
        let caller = json!({});
        let p = json!({"id": 1});
        assert!(r
            .eval(&Vars {
                path: Some(&p),
                caller: Some(&caller),
                ..Vars::default()
            })
            .is_err());
        let r = Rule::compile("path.id", false).unwrap();
        assert!(r
            .eval(&Vars {
                path: Some(&p),
                ..Vars::default()
            })
            .is_err());
    }
}
