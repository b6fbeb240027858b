//! Personal and secret data in responses. The decisions are `warden_policy::pii`; this adapter
//! picks which responses to read (JSON within the size limit, text when configured, never binary
//! or compressed), asks the upstream for uncompressed answers so they can be read, applies the
//! policy to the body and to `X-*` headers, and records every finding.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{request, response, Method};
use warden_policy::pii::{self, Audience};
use warden_policy::{ProblemKind, Verdict};

use super::validation;
use crate::config::{Config, NonJson, OnError, Oversized};
use crate::context::{Finding, RequestCtx};
use crate::pipeline::Check;

pub struct DataProtectionCheck {
    policy: pii::Policy,
    limit: u64,
    oversized: Oversized,
    non_json: NonJson,
    on_error: OnError,
    scan_headers: bool,
    /// Indexed by route id: protection on for that route.
    enabled: Vec<bool>,
}

impl DataProtectionCheck {
    pub fn new(config: &Config) -> Self {
        let c = &config.data_protection;
        DataProtectionCheck {
            policy: c.policy(),
            limit: c.max_body_bytes.0,
            oversized: c.oversized,
            non_json: c.non_json,
            on_error: c.on_error,
            scan_headers: c.scan_headers,
            enabled: config.routes.iter().map(|r| r.data_protection).collect(),
        }
    }

    fn on_route(&self, ctx: &RequestCtx) -> bool {
        ctx.route
            .is_some_and(|r| self.enabled.get(r.0).copied().unwrap_or(true))
    }

    fn record(ctx: &mut RequestCtx, findings: Vec<pii::Finding>) {
        ctx.findings.extend(findings.into_iter().map(|f| Finding {
            check: "data_protection",
            kind: f.class_id().to_string(),
            location: f.location,
            action: f.action,
            ..Default::default()
        }));
    }

    fn failed(&self, ctx: &mut RequestCtx, why: &str) -> Verdict {
        let action = match self.on_error {
            OnError::Block => "block",
            OnError::Pass => "pass",
        };
        ctx.findings.push(Finding {
            check: "data_protection",
            kind: why.to_string(),
            location: "body".into(),
            action,
            ..Default::default()
        });
        match self.on_error {
            OnError::Block => Verdict::reject(ProblemKind::UpstreamError, "data-protection-failed"),
            OnError::Pass => Verdict::Continue,
        }
    }
}

impl DataProtectionCheck {
    /// One walk for both: the contract's undeclared and `writeOnly` members go, and what stays is
    /// protected. When the walk cannot finish (not JSON, a protection error), the filter runs on
    /// its own first, then this check as if alone, so neither is ever skipped.
    fn protect_filtered(
        &self,
        ctx: &mut RequestCtx,
        head: &mut response::Parts,
        body: &mut Bytes,
        deferred: validation::Deferred,
    ) -> Verdict {
        let fused = std::str::from_utf8(body).ok().and_then(|text| {
            let aud = Audience {
                route: ctx.route_name.as_deref().unwrap_or("-"),
                scopes: ctx.scopes(),
            };
            let mut filter = deferred.called.api.contract.response_filter();
            let protected = self
                .policy
                .protect_json_with(text, aud, &mut filter, Some(deferred.shape))
                .ok()?;
            Some((protected, filter.found))
        });
        let Some((protected, removed)) = fused else {
            let called = &deferred.called;
            if let v @ Verdict::Reject(_) =
                validation::filter_now(ctx, head, body, called, deferred.shape)
            {
                return v;
            }
            return self.response_body(ctx, head, body);
        };
        validation::record_removed(ctx, &deferred.called, &removed);
        Self::record(ctx, protected.findings);
        if let Some(new) = protected.body {
            crate::problem::replace_body(head, body, Bytes::from(new));
        }
        Verdict::Continue
    }
}

/// Left in the request's context by `response_head` when this check will read the answer as
/// JSON if it is no larger than `limit`: the contract's filter can then ride on that walk.
#[derive(Clone, Copy)]
pub(crate) struct JsonWalkAhead {
    pub limit: u64,
}

enum Kind {
    Json,
    Text,
    Other,
}

fn body_kind(head: &response::Parts) -> Kind {
    let essence = crate::headers::media_type(&head.headers);
    let essence = essence.as_str();
    if essence == "application/json" || essence.ends_with("+json") {
        Kind::Json
    } else if essence.starts_with("text/") || essence.ends_with("/xml") || essence.ends_with("+xml")
    {
        Kind::Text
    } else if essence.is_empty() {
        // No type said: read it, it may well be JSON.
        Kind::Text
    } else {
        Kind::Other
    }
}

pub(crate) fn has_body(ctx: &RequestCtx, head: &response::Parts) -> bool {
    ctx.method != Method::HEAD
        && !head.status.is_informational()
        && head.status != http::StatusCode::NO_CONTENT
        && head.status != http::StatusCode::NOT_MODIFIED
}

pub(crate) fn encoded(head: &response::Parts) -> bool {
    head.headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v != "identity")
}

impl Check for DataProtectionCheck {
    fn name(&self) -> &'static str {
        "data_protection"
    }

    fn request_head(&self, ctx: &mut RequestCtx, head: &mut request::Parts) -> Verdict {
        if self.on_route(ctx) {
            // A compressed answer could not be inspected.
            head.headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
        }
        Verdict::Continue
    }

    fn response_head(&self, ctx: &mut RequestCtx, head: &mut response::Parts) -> Verdict {
        if !self.on_route(ctx) {
            return Verdict::Continue;
        }
        // Only a contract's route has a filter to hand over (the marker is not free).
        if super::contract::called(ctx).is_some()
            && self.response_body_limit(ctx, head).is_some()
            && matches!(body_kind(head), Kind::Json)
        {
            ctx.ext.insert(JsonWalkAhead { limit: self.limit });
        }
        if self.scan_headers {
            let aud = Audience {
                route: ctx.route_name.as_deref().unwrap_or("-"),
                scopes: ctx.scopes(),
            };
            let mut found = Vec::new();
            let mut rewrites = Vec::new();
            for (name, value) in &head.headers {
                if !name.as_str().starts_with("x-") || name == crate::headers::X_REQUEST_ID {
                    continue;
                }
                let Ok(text) = value.to_str() else { continue };
                match self
                    .policy
                    .protect_text(text, &format!("header.{name}"), aud)
                {
                    Ok(p) => {
                        found.extend(p.findings);
                        if let Some(new) = p.body {
                            rewrites.push((name.clone(), new));
                        }
                    }
                    Err(_) => rewrites.push((name.clone(), String::new())),
                }
            }
            Self::record(ctx, found);
            for (name, new) in rewrites {
                match HeaderValue::from_str(&new) {
                    Ok(v) if !new.is_empty() => {
                        head.headers.insert(name, v);
                    }
                    _ => {
                        head.headers.remove(name);
                    }
                }
            }
        }
        if has_body(ctx, head) && encoded(head) && !matches!(body_kind(head), Kind::Other) {
            // Asked for identity and got compressed anyway: unreadable, so treated as too large.
            return self.response_oversized(ctx, head);
        }
        Verdict::Continue
    }

    fn response_body_limit(&self, ctx: &RequestCtx, head: &response::Parts) -> Option<u64> {
        if !self.on_route(ctx) || !has_body(ctx, head) || encoded(head) {
            return None;
        }
        match body_kind(head) {
            Kind::Json => Some(self.limit),
            Kind::Text if self.non_json != NonJson::Pass => Some(self.limit),
            _ => None,
        }
    }

    fn response_body(
        &self,
        ctx: &mut RequestCtx,
        head: &mut response::Parts,
        body: &mut Bytes,
    ) -> Verdict {
        // The contract's response filter, when validation left it to this walk.
        if let Some(filter) = ctx.ext.remove::<validation::Deferred>() {
            return self.protect_filtered(ctx, head, body, filter);
        }
        if body.is_empty() {
            return Verdict::Continue;
        }
        let kind = body_kind(head);
        if matches!(kind, Kind::Text) && self.non_json == NonJson::Block {
            ctx.findings.push(Finding {
                check: self.name(),
                kind: "non-json".into(),
                location: "body".into(),
                action: "block",
                ..Default::default()
            });
            return Verdict::reject(ProblemKind::UpstreamError, "response-not-inspectable");
        }
        let Ok(text) = std::str::from_utf8(body) else {
            return self.failed(ctx, "not-utf8");
        };
        let aud = Audience {
            route: ctx.route_name.as_deref().unwrap_or("-"),
            scopes: ctx.scopes(),
        };
        let result = match kind {
            // A body that says JSON but is not still gets read, as text.
            Kind::Json => match self.policy.protect_json(text, aud) {
                Err(pii::protect::ProtectError::Json(_)) => {
                    self.policy.protect_text(text, "body", aud)
                }
                other => other,
            },
            _ => self.policy.protect_text(text, "body", aud),
        };
        match result {
            Ok(p) => {
                Self::record(ctx, p.findings);
                if let Some(new) = p.body {
                    crate::problem::replace_body(head, body, Bytes::from(new));
                }
                Verdict::Continue
            }
            Err(pii::protect::ProtectError::MissingKey(_)) => self.failed(ctx, "missing-key"),
            Err(_) => self.failed(ctx, "protection-error"),
        }
    }

    fn response_oversized(&self, ctx: &mut RequestCtx, _head: &mut response::Parts) -> Verdict {
        let action = match self.oversized {
            Oversized::Pass => "pass",
            Oversized::Block => "block",
        };
        ctx.findings.push(Finding {
            check: self.name(),
            kind: "uninspected".into(),
            location: "body".into(),
            action,
            ..Default::default()
        });
        match self.oversized {
            Oversized::Pass => Verdict::Continue,
            Oversized::Block => {
                Verdict::reject(ProblemKind::UpstreamError, "response-too-large-to-inspect")
            }
        }
    }
}
