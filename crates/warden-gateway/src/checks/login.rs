//! The upstream's own login and password-reset operations. Attempts are counted per claimed
//! username and per client IP (locked out past `max_attempts` within `window`, then as
//! `auth.lockout`), and every failure answer of the upstream (any 4xx) is replaced by one uniform
//! 401, so answers do not tell an existing username from an unknown one. With `issued_tokens`, the
//! tokens a successful login hands out are recorded: only those are accepted later as
//! `issued_token` credentials.

use std::sync::Arc;

use bytes::Bytes;
use http::{request, response, Method};
use serde_json::Value;
use warden_policy::auth::lockout::Policy as LockoutPolicy;
use warden_policy::{ProblemKind, Rejection, Verdict};

use crate::config::{Config, LoginOperation};
use crate::context::{Finding, RequestCtx};
use crate::pipeline::Check;
use crate::services::{now_secs, Services};

pub struct LoginGuard {
    services: Arc<Services>,
    ops: Vec<Op>,
    issued: Option<i64>,
}

struct Op {
    method: Method,
    config: LoginOperation,
    per_user: LockoutPolicy,
    per_ip: LockoutPolicy,
}

impl LoginGuard {
    pub fn new(config: &Config, services: Arc<Services>) -> Self {
        let base = config.auth.lockout.policy();
        LoginGuard {
            services,
            ops: config
                .auth
                .login
                .iter()
                .filter_map(|op| {
                    let policy = |max: u32| LockoutPolicy {
                        max_failures: max,
                        window_secs: op.window.as_secs() as i64,
                        ..base
                    };
                    Some(Op {
                        method: op.method.parse().ok()?,
                        config: op.clone(),
                        per_user: policy(op.max_attempts),
                        per_ip: policy(op.max_attempts_per_ip),
                    })
                })
                .collect(),
            issued: config
                .auth
                .issued_tokens
                .enabled
                .then_some(config.auth.issued_tokens.ttl.as_secs() as i64),
        }
    }

    fn op(&self, ctx: &RequestCtx, path: &str) -> Option<usize> {
        self.ops
            .iter()
            .position(|op| op.method == ctx.method && op.config.path == path)
    }

    fn ip_key(ctx: &RequestCtx) -> String {
        format!("login-ip:{}", ctx.client_ip)
    }

    fn user_key(user: &str) -> String {
        format!("login-user:{user}")
    }

    fn uniform(cause: &'static str) -> Verdict {
        Verdict::Reject(Rejection::new(ProblemKind::Unauthorized, "login-failed").with_cause(cause))
    }
}

/// A login attempt in progress: which operation, for which username.
#[derive(Clone)]
struct Attempt {
    op: usize,
    user: Option<String>,
}

/// The username a login body names: a JSON field, or a form field.
fn username(body: &[u8], field: &str) -> Option<String> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return v.get(field)?.as_str().map(|s| s.trim().to_lowercase());
    }
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == field).then(|| v.replace('+', " ").trim().to_lowercase())
    })
}

impl Check for LoginGuard {
    fn name(&self) -> &'static str {
        "login_guard"
    }

    fn needs_body(&self, ctx: &RequestCtx, head: &request::Parts) -> bool {
        self.op(ctx, head.uri.path()).is_some()
    }

    fn request_body(
        &self,
        ctx: &mut RequestCtx,
        head: &mut request::Parts,
        body: &Bytes,
    ) -> Verdict {
        let Some(op) = self.op(ctx, head.uri.path()) else {
            return Verdict::Continue;
        };
        let user = username(body, &self.ops[op].config.username_field);
        let mut keys = vec![Self::ip_key(ctx)];
        keys.extend(user.as_deref().map(Self::user_key));
        let locked = self.services.login_locked(&keys).is_some();
        ctx.ext.insert(Attempt { op, user });
        if locked {
            ctx.findings.push(Finding {
                check: self.name(),
                kind: "login-locked-out".into(),
                location: "body".into(),
                action: "block",
                ..Default::default()
            });
            return Self::uniform("locked-out");
        }
        Verdict::Continue
    }

    fn response_head(&self, ctx: &mut RequestCtx, head: &mut response::Parts) -> Verdict {
        let Some(attempt) = ctx.ext.get::<Attempt>().cloned() else {
            return Verdict::Continue;
        };
        let op = &self.ops[attempt.op];
        if head.status.is_client_error() {
            self.services.login_failed(&[Self::ip_key(ctx)], &op.per_ip);
            if let Some(user) = &attempt.user {
                self.services
                    .login_failed(&[Self::user_key(user)], &op.per_user);
            }
            return Self::uniform("login-rejected-upstream");
        }
        if head.status.is_success() {
            if let Some(user) = &attempt.user {
                self.services.login_succeeded(&Self::user_key(user));
            }
        }
        Verdict::Continue
    }

    fn response_body_limit(&self, ctx: &RequestCtx, head: &response::Parts) -> Option<u64> {
        (self.issued.is_some() && head.status.is_success() && ctx.ext.get::<Attempt>().is_some())
            .then_some(1 << 20)
    }

    fn response_body(
        &self,
        ctx: &mut RequestCtx,
        _head: &mut response::Parts,
        body: &mut Bytes,
    ) -> Verdict {
        let Some(Attempt {
            op,
            user: Some(user),
        }) = ctx.ext.get::<Attempt>().cloned()
        else {
            return Verdict::Continue;
        };
        let Some(ttl) = self.issued else {
            return Verdict::Continue;
        };
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return Verdict::Continue;
        };
        let now = now_secs();
        for field in &self.ops[op].config.token_fields {
            if let Some(token) = v.get(field).and_then(Value::as_str) {
                let expires = warden_policy::auth::jwt::unverified_exp(token)
                    .map_or(now + ttl, |e| e.min(now + ttl));
                self.services.record_issued(token, &user, expires);
            }
        }
        Verdict::Continue
    }
}
