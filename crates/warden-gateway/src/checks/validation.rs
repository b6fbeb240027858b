//! Validation against the API's contract (`routes[].openapi`): parameters (path, query, header,
//! cookie) and JSON bodies against their schemas, strictly (undeclared and `readOnly` properties
//! are refused: no mass assignment), with bounds on depth, array and string length that hold
//! even where the spec forgot them; and responses filtered (undeclared and `writeOnly` fields
//! removed: no excessive data exposure), or refused in `strict` mode.

use bytes::Bytes;
use http::header;
use http::{request, response};
use warden_openapi::strict_json::JsonProblem;
use warden_openapi::{check_json_limits, is_json, Violation, MAX_VIOLATIONS};
use warden_policy::{ProblemKind, Rejection, Verdict};

use super::contract::{self, Called};
use crate::config::{Config, ResponseMode};
use crate::context::RequestCtx;
use crate::pipeline::Check;

const NAME: &str = "validation";

pub struct ValidationCheck;

impl ValidationCheck {
    pub fn new(_config: &Config) -> Self {
        ValidationCheck
    }

    /// A 400 listing each violation (location and rule, never the value), or in monitor mode
    /// findings and the call goes on.
    fn invalid(ctx: &mut RequestCtx, called: &Called, mut violations: Vec<Violation>) -> Verdict {
        violations.truncate(MAX_VIOLATIONS);
        for v in &violations {
            contract::record(ctx, NAME, v.rule, &v.location, called.api.monitor);
        }
        if called.api.monitor {
            return Verdict::Continue;
        }
        Verdict::Reject(
            Rejection::new(ProblemKind::BadRequest, "invalid-request")
                .with_detail(format!(
                    "the request does not match operation `{}`",
                    called.op().id
                ))
                .with_violations(violations),
        )
    }

    fn content_type(head: &request::Parts) -> Option<&str> {
        head.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }

    /// Whether the request announces a body (`Content-Length` > 0 or chunked).
    fn announces_body(head: &request::Parts) -> bool {
        head.headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(head.headers.contains_key(header::TRANSFER_ENCODING), |n| {
                n > 0
            })
    }
}

impl Check for ValidationCheck {
    fn name(&self) -> &'static str {
        NAME
    }

    fn request_head(&self, ctx: &mut RequestCtx, head: &mut request::Parts) -> Verdict {
        let Some(called) = contract::called(ctx).cloned() else {
            return Verdict::Continue;
        };
        let op = called.op();
        let mut violations: Vec<Violation> = called.param_violations.as_ref().clone();
        let body_coming = Self::announces_body(head);
        match &op.body {
            None if body_coming => violations.push(Violation {
                location: "body".into(),
                rule: "undeclared-body",
            }),
            Some(b) if b.required && !super::attack_detection::may_have_body(head) => violations
                .push(Violation {
                    location: "body".into(),
                    rule: "required",
                }),
            Some(_) if body_coming || super::attack_detection::may_have_body(head) => {
                let media = Self::content_type(head).and_then(|ct| op.media_for(ct));
                if media.is_none() && body_coming {
                    let accepted = op.accepted_media().join(", ");
                    contract::record(
                        ctx,
                        NAME,
                        "unsupported-media-type",
                        "header.content-type",
                        called.api.monitor,
                    );
                    if !called.api.monitor {
                        return Verdict::Reject(
                            Rejection::new(
                                ProblemKind::UnsupportedMediaType,
                                "unsupported-media-type",
                            )
                            .with_detail(format!("`{}` accepts {accepted}", op.id)),
                        );
                    }
                }
                if media.is_some_and(|m| m.json)
                    && head
                        .headers
                        .get(header::CONTENT_ENCODING)
                        .is_some_and(|v| v != "identity")
                {
                    // A compressed JSON body cannot be checked: refuse rather than pass it unread.
                    violations.push(Violation {
                        location: "header.content-encoding".into(),
                        rule: "not-inspectable",
                    });
                }
            }
            _ => {}
        }
        if violations.is_empty() {
            Verdict::Continue
        } else {
            violations.sort();
            Self::invalid(ctx, &called, violations)
        }
    }

    fn needs_body(&self, ctx: &RequestCtx, head: &request::Parts) -> bool {
        let Some(called) = contract::called(ctx) else {
            return false;
        };
        match &called.op().body {
            // Over HTTP/2 a body may come without Content-Length: read it to know.
            None => super::attack_detection::may_have_body(head) && !Self::announces_body(head),
            Some(_) => Self::content_type(head)
                .and_then(|ct| called.op().media_for(ct))
                .is_some_and(|m| m.json),
        }
    }

    fn request_body(
        &self,
        ctx: &mut RequestCtx,
        head: &mut request::Parts,
        body: &Bytes,
    ) -> Verdict {
        let Some(called) = contract::called(ctx).cloned() else {
            return Verdict::Continue;
        };
        if !self.needs_body(ctx, head) {
            return Verdict::Continue;
        }
        let op = called.op();
        let media = Self::content_type(head).and_then(|ct| op.media_for(ct));
        let Some(media) = media else {
            if !body.is_empty() {
                let v = vec![Violation {
                    location: "body".into(),
                    rule: "undeclared-body",
                }];
                return Self::invalid(ctx, &called, v);
            }
            return Verdict::Continue;
        };
        if body.is_empty() {
            let required = op.body.as_ref().is_some_and(|b| b.required);
            if required {
                let v = vec![Violation {
                    location: "body".into(),
                    rule: "required",
                }];
                return Self::invalid(ctx, &called, v);
            }
            return Verdict::Continue;
        }
        // Parsed here, the body's extremes come with it, and the limits walk runs only when
        // one of them is past its limit (to say where).
        let (mut value, extremes) = match called.body.as_deref() {
            Some(v) => (v.clone(), None),
            None => match warden_openapi::strict_json::parse_counted(body) {
                Ok((v, x)) => (v, Some(x)),
                Err(problem) => {
                    let rule = match problem {
                        JsonProblem::DuplicateKey => "duplicate-key",
                        JsonProblem::Syntax => "json-syntax",
                    };
                    let v = vec![Violation {
                        location: "body".into(),
                        rule,
                    }];
                    return Self::invalid(ctx, &called, v);
                }
            },
        };
        let mut violations = Vec::new();
        let limits = &called.api.limits;
        let within = extremes.is_some_and(|x| {
            x.depth <= limits.max_depth
                && x.array_items <= limits.max_array_items
                && x.string_bytes <= limits.max_string_chars
        });
        if !within {
            check_json_limits(&value, limits, &mut violations);
        }
        if violations.is_empty() {
            called
                .api
                .contract
                .check_body(media, &mut value, &mut violations);
        }
        if !violations.is_empty() {
            return Self::invalid(ctx, &called, violations);
        }
        // Kept for the checks after this one: attack detection reads the tree instead of
        // scanning the text again.
        if let Some(c) = ctx.ext.get_mut::<Called>() {
            c.body.get_or_insert_with(|| std::sync::Arc::new(value));
        }
        Verdict::Continue
    }

    fn response_body_limit(&self, ctx: &RequestCtx, head: &response::Parts) -> Option<u64> {
        let c = contract::called(ctx)?;
        let ct = crate::headers::media_type(&head.headers);
        (c.api.responses != ResponseMode::Off
            && c.op().has_response_schemas()
            && is_json(&ct)
            && super::data_protection::has_body(ctx, head)
            && !super::data_protection::encoded(head))
        .then_some(c.api.max_response_bytes)
    }

    fn response_body(
        &self,
        ctx: &mut RequestCtx,
        head: &mut response::Parts,
        body: &mut Bytes,
    ) -> Verdict {
        let Some(called) = contract::called(ctx).cloned() else {
            return Verdict::Continue;
        };
        if body.is_empty() {
            return Verdict::Continue;
        }
        let Some(shape) = called.op().response_shape(head.status.as_u16()) else {
            return Verdict::Continue; // no schema for this status
        };
        // Removing members is something data protection's walk of the same answer can do as it
        // goes: one pass instead of two. Only where nothing between the two checks rewrites the
        // body (error scrubbing takes 5xx answers) and data protection will read it as JSON; it
        // hands the answer back here if its walk fails.
        let removing = called.api.responses == ResponseMode::Filter && !called.api.monitor;
        let ahead = ctx
            .ext
            .get::<super::data_protection::JsonWalkAhead>()
            .is_some_and(|a| body.len() as u64 <= a.limit);
        if removing && ahead && !head.status.is_server_error() {
            ctx.ext.insert(Deferred { called, shape });
            return Verdict::Continue;
        }
        filter_now(ctx, head, body, &called, shape)
    }

    fn response_oversized(&self, ctx: &mut RequestCtx, _head: &mut response::Parts) -> Verdict {
        let Some(called) = contract::called(ctx).cloned() else {
            return Verdict::Continue;
        };
        if called.api.responses == ResponseMode::Strict && !called.api.monitor {
            contract::record(ctx, NAME, "response-not-inspectable", "body", false);
            return Verdict::reject(ProblemKind::UpstreamError, "response-not-inspectable");
        }
        contract::record(ctx, NAME, "response-not-inspectable", "body", true);
        Verdict::Continue
    }
}

/// A response filter left to data protection's walk (see `ValidationCheck::response_body`).
#[derive(Clone)]
pub(crate) struct Deferred {
    pub called: Called,
    pub shape: usize,
}

/// Filters the answer on its own walk: where no other walk will, or one failed.
pub(crate) fn filter_now(
    ctx: &mut RequestCtx,
    head: &mut response::Parts,
    body: &mut Bytes,
    called: &Called,
    shape: usize,
) -> Verdict {
    let filtered = called.api.contract.filter_shape_text(shape, body);
    let (found, new) = match filtered {
        Ok(result) => result,
        Err(_) => {
            not_json(ctx);
            return Verdict::Continue;
        }
    };
    if found.is_empty() {
        return Verdict::Continue;
    }
    let strict = called.api.responses == ResponseMode::Strict && !called.api.monitor;
    record_removed(ctx, called, &found);
    if called.api.monitor {
        return Verdict::Continue;
    }
    if strict {
        return Verdict::reject(ProblemKind::UpstreamError, "response-contract-violated");
    }
    if let Some(new) = new {
        crate::problem::replace_body(head, body, Bytes::from(new));
    }
    Verdict::Continue
}

/// The answer said JSON and was not: nothing to hold against the schema, so it passes.
pub(crate) fn not_json(ctx: &mut RequestCtx) {
    contract::record(ctx, NAME, "response-not-json", "body", true);
}

/// Records what the response filter found: one finding per rule, naming the first few places
/// (an upstream that leaks a field leaks it on every call, and each finding is counted, logged
/// and audited).
pub(crate) fn record_removed(ctx: &mut RequestCtx, called: &Called, found: &[Violation]) {
    if found.is_empty() {
        return;
    }
    let action = if called.api.monitor {
        "alert"
    } else if called.api.responses == ResponseMode::Strict {
        "block"
    } else {
        "remove"
    };
    for rule in ["undeclared-property", "write-only"] {
        let places: Vec<&str> = found
            .iter()
            .filter(|v| v.rule == rule)
            .map(|v| v.location.as_str())
            .collect();
        if places.is_empty() {
            continue;
        }
        let mut location = places.iter().take(3).copied().collect::<Vec<_>>().join(",");
        if places.len() > 3 {
            location.push_str(&format!(" (+{} more)", places.len() - 3));
        }
        ctx.findings.push(crate::context::Finding {
            check: NAME,
            kind: format!("response-{rule}"),
            location,
            action,
            ..Default::default()
        });
    }
}
