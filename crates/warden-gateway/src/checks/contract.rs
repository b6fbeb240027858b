//! What the `authorization` and `validation` checks share: the OpenAPI contract each route
//! enforces, and the operation a request calls, looked up once (by `authorization`, which runs
//! first) and kept in the request's context for both.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use serde_json::{json, Map, Value};
use warden_openapi::{Contract, JsonLimits, Operation, Params, Violation};

use crate::config::{Config, ContractMode, ResponseMode, RuleErrorMode};
use crate::context::{Finding, RequestCtx};

/// One route's contract and how strictly it is enforced.
pub struct Enforced {
    pub contract: Arc<Contract>,
    pub monitor: bool,
    pub allow_undeclared_query: bool,
    pub responses: ResponseMode,
    pub max_response_bytes: u64,
    pub limits: JsonLimits,
    pub rule_errors_open: bool,
    /// `auth.consumers.<name>.attributes`, which rules read as `caller.<attribute>`.
    pub attributes: Arc<BTreeMap<String, Map<String, Value>>>,
}

/// The contract of each route, by route index.
pub fn per_route(config: &Config) -> Vec<Option<Arc<Enforced>>> {
    let attributes: Arc<BTreeMap<String, Map<String, Value>>> = Arc::new(
        config
            .auth
            .consumers
            .iter()
            .map(|(name, c)| (name.clone(), c.attributes.clone().into_iter().collect()))
            .collect(),
    );
    config
        .routes
        .iter()
        .map(|r| {
            let o = r.openapi.as_ref()?;
            let compiled = o.compiled.as_ref()?;
            Some(Arc::new(Enforced {
                contract: compiled.0.clone(),
                monitor: o.mode == ContractMode::Monitor,
                allow_undeclared_query: o.allow_undeclared_query,
                responses: o.responses,
                max_response_bytes: o.max_response_bytes.0,
                limits: o.json.limits(),
                rule_errors_open: o.on_rule_error == RuleErrorMode::Open,
                attributes: attributes.clone(),
            }))
        })
        .collect()
}

/// The operation this request calls, kept in `ctx.ext`.
#[derive(Clone)]
pub struct Called {
    pub api: Arc<Enforced>,
    pub op: usize,
    /// Typed parameter values (`path.id` is a number when the spec says integer).
    pub params: Arc<Params>,
    /// What is wrong with the parameters: `validation` refuses on it.
    pub param_violations: Arc<Vec<Violation>>,
    /// The JSON request body, once a check has parsed it.
    pub body: Option<Arc<Value>>,
}

impl Called {
    pub fn op(&self) -> &Operation {
        &self.api.contract.operations[self.op]
    }
}

/// `Allow` for a 405, added on the way out.
#[derive(Clone)]
pub struct Allow(pub HeaderValue);

pub fn called(ctx: &RequestCtx) -> Option<&Called> {
    ctx.ext.get::<Called>()
}

/// The request's JSON body, parsed once and kept for the other check.
/// `None` when it is not JSON, or names a key twice (validation says which).
pub fn json_body(ctx: &mut RequestCtx, body: &Bytes) -> Option<Arc<Value>> {
    if let Some(v) = called(ctx).and_then(|c| c.body.clone()) {
        return Some(v);
    }
    let v: Arc<Value> = Arc::new(warden_openapi::strict_json::parse(body).ok()?);
    if let Some(c) = ctx.ext.get_mut::<Called>() {
        c.body = Some(v.clone());
    }
    Some(v)
}

/// What rules see as `caller`: the identity, and the consumer's configured attributes.
pub fn caller(ctx: &RequestCtx, attributes: &BTreeMap<String, Map<String, Value>>) -> Value {
    let Some(id) = &ctx.identity else {
        return json!({"anonymous": true, "roles": [], "scopes": []});
    };
    let mut m = attributes.get(&id.consumer).cloned().unwrap_or_default();
    m.insert("consumer".into(), id.consumer.clone().into());
    m.insert("id".into(), id.consumer.clone().into());
    m.insert("credential".into(), id.credential_id.clone().into());
    m.insert("method".into(), id.method.id().into());
    m.insert("roles".into(), id.roles.clone().into());
    m.insert("scopes".into(), id.scopes.clone().into());
    m.insert("anonymous".into(), false.into());
    if let Some(c) = &id.claims {
        m.insert("claims".into(), (**c).clone());
    }
    Value::Object(m)
}

/// Records what a check refused, or in monitor mode would have refused.
pub fn record(
    ctx: &mut RequestCtx,
    check: &'static str,
    kind: &str,
    location: &str,
    monitor: bool,
) {
    ctx.findings.push(Finding {
        check,
        kind: kind.to_string(),
        location: location.to_string(),
        action: if monitor { "alert" } else { "block" },
        ..Default::default()
    });
}
