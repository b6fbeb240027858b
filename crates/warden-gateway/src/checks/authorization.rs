//! Authorization from the API's contract (`routes[].openapi`): default deny (an operation the
//! spec does not declare is refused: 404, or 405 with `Allow`), function level (the operation's
//! `security` scopes and `x-warden` roles), and object level (CEL owner rules over the request,
//! and over the response for APIs whose ids say nothing about their owner: a response that fails
//! its rule becomes a 404 and is never sent).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{request, response};
use serde_json::Value;
use warden_openapi::{Match, Rule, Vars};
use warden_policy::{ProblemKind, Rejection, Verdict};

use super::contract::{self, Allow, Called, Enforced};
use crate::config::Config;
use crate::context::RequestCtx;
use crate::pipeline::Check;

const NAME: &str = "authorization";

/// Headers rules never see.
const CREDENTIAL_HEADERS: [&str; 4] = [
    "authorization",
    "cookie",
    "x-api-key",
    "proxy-authorization",
];

pub struct AuthorizationCheck {
    routes: Vec<Option<Arc<Enforced>>>,
}

impl AuthorizationCheck {
    pub fn new(config: &Config) -> Self {
        AuthorizationCheck {
            routes: contract::per_route(config),
        }
    }

    pub fn active(&self) -> bool {
        self.routes.iter().any(Option::is_some)
    }

    fn api(&self, ctx: &RequestCtx) -> Option<&Arc<Enforced>> {
        self.routes.get(ctx.route?.0)?.as_ref()
    }

    /// Refuses, or in monitor mode records and lets the call go on.
    fn refuse(
        ctx: &mut RequestCtx,
        api: &Enforced,
        rejection: Rejection,
        location: &str,
    ) -> Verdict {
        contract::record(
            ctx,
            NAME,
            rejection.recorded_reason(),
            location,
            api.monitor,
        );
        if api.monitor {
            Verdict::Continue
        } else {
            Verdict::Reject(rejection)
        }
    }

    /// Function level: who may call this operation at all.
    fn function_level(ctx: &mut RequestCtx, called: &Called) -> Verdict {
        let op = called.op();
        let api = &called.api;
        match &ctx.identity {
            None if !op.anonymous() || !op.roles.is_empty() || !op.scopes.is_empty() => {
                let r = Rejection::new(ProblemKind::Unauthorized, "unauthenticated")
                    .with_cause("operation-needs-credentials");
                Self::refuse(ctx, api, r, "operation")
            }
            Some(id) if !op.permits(&id.roles, &id.scopes) => {
                let r = Rejection::new(ProblemKind::Forbidden, "operation-not-permitted")
                    .with_detail(format!(
                        "`{}` needs a role or scope this caller does not have",
                        op.id
                    ));
                Self::refuse(ctx, api, r, "operation")
            }
            _ => Verdict::Continue,
        }
    }

    fn exempt(ctx: &RequestCtx, called: &Called) -> bool {
        let op = called.op();
        ctx.identity
            .as_ref()
            .is_some_and(|id| id.roles.iter().any(|r| op.exempt_roles.contains(r)))
    }

    /// Object level: the owner rule over the request. `response` is the parsed response body for
    /// the response rule.
    fn object_level(
        ctx: &mut RequestCtx,
        called: &Called,
        rule: &Rule,
        response: Option<&Value>,
    ) -> Verdict {
        let api = &called.api;
        let caller = contract::caller(ctx, &api.attributes);
        let path = Value::Object(called.params.path.clone());
        let query = Value::Object(called.params.query.clone());
        let headers = Value::Object(called.params.headers.clone());
        let vars = Vars {
            path: Some(&path),
            query: Some(&query),
            headers: Some(&headers),
            body: called.body.as_deref(),
            caller: Some(&caller),
            response,
        };
        let (kind, reason) = if response.is_some() {
            (ProblemKind::NotFound, "not-found")
        } else {
            (ProblemKind::Forbidden, "not-owner")
        };
        let location = if response.is_some() {
            "response_owner"
        } else {
            "owner"
        };
        match rule.eval(&vars) {
            Ok(true) => Verdict::Continue,
            Ok(false) => {
                let cause = if response.is_some() {
                    "response-not-owned"
                } else {
                    "not-owner"
                };
                Self::refuse(
                    ctx,
                    api,
                    Rejection::new(kind, reason).with_cause(cause),
                    location,
                )
            }
            Err(e) => {
                tracing::warn!(request_id = %ctx.request_id, operation = %called.op().id, rule = %rule.source, error = %e, "an owner rule could not be evaluated");
                if api.rule_errors_open {
                    contract::record(ctx, NAME, "rule-error", location, true);
                    return Verdict::Continue;
                }
                Self::refuse(
                    ctx,
                    api,
                    Rejection::new(kind, reason).with_cause("rule-error"),
                    location,
                )
            }
        }
    }

    /// Function level and the request owner rule; in the body phase for a signed request (its
    /// caller is known only then) or a rule that reads the body.
    fn decide(&self, ctx: &mut RequestCtx, body: Option<(&Bytes, bool)>) -> Verdict {
        let Some(called) = contract::called(ctx).cloned() else {
            return Verdict::Continue;
        };
        if ctx.auth_pending {
            return Verdict::Continue;
        }
        let in_body_phase = body.is_some();
        let reads_body = called.op().owner.as_ref().is_some_and(|r| r.reads_body);
        let deferred = ctx.ext.get::<Deferred>().is_some();
        if !in_body_phase || deferred {
            if let Verdict::Reject(r) = Self::function_level(ctx, &called) {
                return Verdict::Reject(r);
            }
        }
        // Parameters the contract refuses are refused by validation, next, with a 400 that says
        // why; a rule over them would only say 403.
        if called.op().owner.is_none()
            || Self::exempt(ctx, &called)
            || reads_body != in_body_phase
            || !called.param_violations.is_empty()
        {
            return Verdict::Continue;
        }
        let mut called = called;
        if let Some((bytes, json)) = body {
            match contract::json_body(ctx, bytes) {
                Some(v) => called.body = Some(v),
                // Declared as JSON but not JSON: validation, next, refuses it with a 400 that says so.
                None if json => return Verdict::Continue,
                // Anything else gives the rule nothing to read: fail closed.
                None => {
                    let r = Rejection::new(ProblemKind::Forbidden, "not-owner")
                        .with_cause("rule-error");
                    return Self::refuse(ctx, &called.api, r, "owner");
                }
            }
        }
        let rule = called.op().owner.as_ref().expect("checked above");
        Self::object_level(ctx, &called, rule, None)
    }
}

/// Function level waits for the body phase (a signed request's caller is known only then).
#[derive(Clone)]
struct Deferred;

impl Check for AuthorizationCheck {
    fn name(&self) -> &'static str {
        NAME
    }

    fn request_head(&self, ctx: &mut RequestCtx, head: &mut request::Parts) -> Verdict {
        let Some(api) = self.api(ctx).cloned() else {
            return Verdict::Continue;
        };
        match api.contract.find(&head.method, &ctx.path) {
            Match::NotFound => {
                let r = Rejection::new(ProblemKind::NotFound, "undeclared-operation");
                Self::refuse(ctx, &api, r, "path")
            }
            Match::WrongMethod(allowed) => {
                let list: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
                if let Ok(v) = HeaderValue::from_str(&list.join(", ")) {
                    ctx.ext.insert(Allow(v));
                }
                let r = Rejection::new(ProblemKind::MethodNotAllowed, "method-not-allowed");
                Self::refuse(ctx, &api, r, "method")
            }
            Match::Found { op, path } => {
                let op_index = api
                    .contract
                    .operations
                    .iter()
                    .position(|o| std::ptr::eq(o, op))
                    .expect("the operation is the contract's own");
                let mut violations = Vec::new();
                let params = op.check_params(
                    &path,
                    head.uri.query(),
                    &head.headers,
                    api.allow_undeclared_query,
                    &mut violations,
                );
                if op.reads_response() {
                    // The response is read back: it must come uncompressed.
                    head.headers.insert(
                        header::ACCEPT_ENCODING,
                        HeaderValue::from_static("identity"),
                    );
                }
                let mut params = params;
                if op.owner.is_some() || op.response_owner.is_some() {
                    // Rules may read any header (`headers["x-tenant"]`), declared ones typed;
                    // never the credentials, which are Warden's business.
                    for (name, value) in &head.headers {
                        let n = name.as_str();
                        if CREDENTIAL_HEADERS.contains(&n) || params.headers.contains_key(n) {
                            continue;
                        }
                        if let Ok(v) = value.to_str() {
                            params
                                .headers
                                .insert(n.to_string(), Value::String(v.to_string()));
                        }
                    }
                }
                ctx.ext.insert(Called {
                    api: api.clone(),
                    op: op_index,
                    params: Arc::new(params),
                    param_violations: Arc::new(violations),
                    body: None,
                });
                if ctx.auth_pending {
                    ctx.ext.insert(Deferred);
                }
                self.decide(ctx, None)
            }
        }
    }

    fn needs_body(&self, ctx: &RequestCtx, _head: &request::Parts) -> bool {
        contract::called(ctx).is_some_and(|c| {
            ctx.auth_pending || c.op().owner.as_ref().is_some_and(|r| r.reads_body)
        })
    }

    fn request_body(
        &self,
        ctx: &mut RequestCtx,
        head: &mut request::Parts,
        body: &Bytes,
    ) -> Verdict {
        if contract::called(ctx).is_none() {
            return Verdict::Continue;
        }
        let deferred = ctx.ext.get::<Deferred>().is_some();
        let reads_body = contract::called(ctx)
            .is_some_and(|c| c.op().owner.as_ref().is_some_and(|r| r.reads_body));
        if !deferred && !reads_body {
            return Verdict::Continue;
        }
        if deferred && !reads_body {
            // Function level and a head-only owner rule, now that the caller is known.
            return self.decide(ctx, None);
        }
        let json = head
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(warden_openapi::is_json);
        self.decide(ctx, Some((body, json)))
    }

    fn response_body_limit(&self, ctx: &RequestCtx, head: &response::Parts) -> Option<u64> {
        let c = contract::called(ctx)?;
        (c.op().response_owner.is_some()
            && head.status.is_success()
            && super::data_protection::has_body(ctx, head))
        .then_some(c.api.max_response_bytes)
    }

    fn response_head(&self, ctx: &mut RequestCtx, head: &mut response::Parts) -> Verdict {
        let Some(c) = contract::called(ctx).cloned() else {
            return Verdict::Continue;
        };
        if c.op().response_owner.is_some()
            && head.status.is_success()
            && super::data_protection::has_body(ctx, head)
            && super::data_protection::encoded(head)
        {
            return self.response_oversized(ctx, head);
        }
        Verdict::Continue
    }

    fn response_body(
        &self,
        ctx: &mut RequestCtx,
        _head: &mut response::Parts,
        body: &mut Bytes,
    ) -> Verdict {
        let Some(called) = contract::called(ctx).cloned() else {
            return Verdict::Continue;
        };
        let Some(rule) = &called.op().response_owner else {
            return Verdict::Continue;
        };
        if Self::exempt(ctx, &called) {
            return Verdict::Continue;
        }
        let parsed: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => Value::Null,
        };
        Self::object_level(ctx, &called, rule, Some(&parsed))
    }

    fn response_oversized(&self, ctx: &mut RequestCtx, _head: &mut response::Parts) -> Verdict {
        let Some(called) = contract::called(ctx).cloned() else {
            return Verdict::Continue;
        };
        if called.op().response_owner.is_none() || Self::exempt(ctx, &called) {
            return Verdict::Continue;
        }
        // The owner cannot be checked on a body we cannot read: never send it unchecked.
        if called.api.rule_errors_open {
            contract::record(
                ctx,
                NAME,
                "response-not-inspectable",
                "response_owner",
                true,
            );
            return Verdict::Continue;
        }
        let r = Rejection::new(ProblemKind::UpstreamError, "response-not-inspectable");
        Self::refuse(ctx, &called.api, r, "response_owner")
    }

    fn outgoing(&self, ctx: &RequestCtx, head: &mut response::Parts) {
        if head.status == http::StatusCode::METHOD_NOT_ALLOWED {
            if let Some(Allow(v)) = ctx.ext.get::<Allow>() {
                head.headers.insert(header::ALLOW, v.clone());
            }
        }
    }
}
