//! Attacks in requests: injection, traversal, SSRF, XXE, template and JNDI lookups, CRLF. The
//! detectors and the scoring are `warden_policy::attack`; this adapter hands them the request's
//! parts (path, query, cookies, free-text headers, the body by its media type), applies the
//! route's mode, and records what was found.
//!
//! A request with a body is inspected whole in the body phase (head and body score together);
//! one without, in the head phase. Binary uploads (images, archives, octet streams) stream
//! through uninspected: no text detector reads them, and buffering them would cost memory.

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::request;
use std::cell::RefCell;

use warden_policy::attack::{CleanValues, Inspector, Report, Settings};
use warden_policy::{ProblemKind, Rejection, Verdict};

use crate::config::{AttackMode, BeyondBudget, Config};
use crate::context::{Finding, RequestCtx};
use crate::pipeline::Check;

const NAME: &str = "attack_detection";

thread_local! {
    /// Per worker thread, so no lock: header and cookie values this worker found clean. Clean
    /// means no detector fired at any paranoia level, so the set is valid for every route and
    /// config generation.
    static CLEAN: RefCell<CleanValues> = RefCell::new(CleanValues::new(4096));
}

/// One route's effective settings.
struct RoutePolicy {
    mode: AttackMode,
    settings: Settings,
}

pub struct AttackDetectionCheck {
    /// Indexed by route id.
    routes: Vec<RoutePolicy>,
    budget: usize,
    beyond_budget: BeyondBudget,
}

/// Bytes as text for the detectors, invalid sequences replaced. Valid UTF-8 (nearly every
/// request) is checked by `str::from_utf8`, which runs over ASCII a word at a time;
/// `from_utf8_lossy` walks every byte even when nothing needs replacing.
fn text_of(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

impl AttackDetectionCheck {
    pub fn new(config: &Config) -> Self {
        let c = &config.attack_detection;
        let routes = config
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let name = config.route_name(i);
                let o = &r.attack_detection;
                RoutePolicy {
                    mode: o.mode.unwrap_or(c.mode),
                    settings: Settings {
                        paranoia: o.paranoia.unwrap_or(c.paranoia),
                        threshold: o.threshold.unwrap_or(c.threshold),
                        exclusions: c
                            .exclusions
                            .iter()
                            .filter(|e| e.routes.is_empty() || e.routes.contains(&name))
                            .map(|e| e.exclusion.clone())
                            .collect(),
                    },
                }
            })
            .collect();
        AttackDetectionCheck {
            routes,
            budget: c.max_inspect_bytes.0 as usize,
            beyond_budget: c.beyond_budget,
        }
    }

    /// Whether any route inspects at all (the pipeline leaves the check out otherwise).
    pub fn active(&self) -> bool {
        self.routes.iter().any(|r| r.mode != AttackMode::Off)
    }

    fn policy(&self, ctx: &RequestCtx) -> Option<&RoutePolicy> {
        let p = self.routes.get(ctx.route?.0)?;
        (p.mode != AttackMode::Off).then_some(p)
    }

    fn inspect_head(inspector: &mut Inspector<'_>, head: &request::Parts) {
        inspector.path(head.uri.path());
        if let Some(q) = head.uri.query() {
            inspector.params(q, false);
        }
        for (name, value) in &head.headers {
            let value = text_of(value.as_bytes());
            if name == header::COOKIE {
                inspector.cookies(&value);
            } else if warden_policy::attack::engine::inspect_header(name.as_str()) {
                inspector.header(name.as_str(), &value);
            }
        }
    }

    /// Scores the report, records the findings, and refuses when the route's mode says so.
    fn decide(&self, ctx: &mut RequestCtx, policy: &RoutePolicy, report: Report) -> Verdict {
        let over = report.score >= policy.settings.threshold;
        let block = policy.mode == AttackMode::Block;
        let action = match (over, block) {
            (true, true) => "block",
            (true, false) => "detect",
            (false, _) => "alert",
        };
        let top = report
            .findings
            .iter()
            .max_by_key(|f| f.score)
            .map(|f| f.detector);
        ctx.findings
            .extend(report.findings.into_iter().map(|f| Finding {
                check: NAME,
                kind: f.detector.id().to_string(),
                location: f.location,
                action,
                rule: f.rule,
                transforms: f.transforms,
            }));
        if report.incomplete {
            let refuse = self.beyond_budget == BeyondBudget::Block && block;
            ctx.findings.push(Finding {
                check: NAME,
                kind: "not-inspected".into(),
                location: "request".into(),
                action: if refuse { "block" } else { "pass" },
                rule: "budget",
                transforms: Vec::new(),
            });
            if refuse && !over {
                return Verdict::Reject(
                    Rejection::new(ProblemKind::Forbidden, "not-inspectable").with_detail(
                        "The request is larger than the gateway inspects, or encoded so that it \
                         cannot be read; send it uncompressed and smaller.",
                    ),
                );
            }
        }
        match (over && block, top) {
            (true, Some(d)) => Verdict::Reject(
                Rejection::new(ProblemKind::Forbidden, "attack-detected")
                    .with_cause(d.id())
                    .with_detail(format!(
                        "The request looks like an attack ({}). If it is legitimate, give the \
                         request id to the API's operators.",
                        d.id()
                    )),
            ),
            _ => Verdict::Continue,
        }
    }
}

/// What the body is, for the detectors.
#[derive(PartialEq)]
enum BodyKind {
    Json,
    Form,
    /// XML, multipart, text, or a type we do not know: read as one text value.
    Text,
    /// Media and archives: no text detector applies.
    Binary,
}

fn body_kind(headers: &HeaderMap) -> BodyKind {
    let essence = crate::headers::media_type(headers);
    let essence = essence.as_str();
    if essence == "application/json" || essence.ends_with("+json") {
        BodyKind::Json
    } else if essence == "application/x-www-form-urlencoded" {
        BodyKind::Form
    } else if essence.starts_with("image/")
        || essence.starts_with("audio/")
        || essence.starts_with("video/")
        || essence.starts_with("font/")
        || matches!(
            essence,
            "application/octet-stream"
                | "application/pdf"
                | "application/zip"
                | "application/gzip"
                | "application/x-tar"
                | "application/grpc"
                | "application/protobuf"
                | "application/x-protobuf"
        )
    {
        BodyKind::Binary
    } else {
        BodyKind::Text
    }
}

/// The body may hold bytes: a non-zero length, or no length at all (chunked, HTTP/2).
pub(crate) fn may_have_body(head: &request::Parts) -> bool {
    match head
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(n) => n > 0,
        None => {
            head.headers.contains_key(header::TRANSFER_ENCODING)
                || head.version >= http::Version::HTTP_2
        }
    }
}

/// A body the gateway cannot read as sent (compressed): the detectors would see noise.
fn encoded(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
}

impl Check for AttackDetectionCheck {
    fn name(&self) -> &'static str {
        NAME
    }

    fn request_head(&self, ctx: &mut RequestCtx, head: &mut request::Parts) -> Verdict {
        let Some(policy) = self.policy(ctx) else {
            return Verdict::Continue;
        };
        if self.needs_body(ctx, head) {
            return Verdict::Continue; // Head and body are scored together there.
        }
        let mut report = CLEAN.with_borrow_mut(|seen| {
            let mut inspector =
                Inspector::new(&policy.settings, self.budget).with_clean_values(seen);
            Self::inspect_head(&mut inspector, head);
            inspector.finish()
        });
        if encoded(&head.headers)
            && may_have_body(head)
            && body_kind(&head.headers) != BodyKind::Binary
        {
            // A compressed body: the detectors would see noise.
            report.incomplete = true;
        }
        self.decide(ctx, policy, report)
    }

    fn needs_body(&self, ctx: &RequestCtx, head: &request::Parts) -> bool {
        self.policy(ctx).is_some()
            && may_have_body(head)
            && !encoded(&head.headers)
            && body_kind(&head.headers) != BodyKind::Binary
    }

    fn request_body(
        &self,
        ctx: &mut RequestCtx,
        head: &mut request::Parts,
        body: &Bytes,
    ) -> Verdict {
        let Some(policy) = self.policy(ctx) else {
            return Verdict::Continue;
        };
        if !self.needs_body(ctx, head) {
            return Verdict::Continue; // Decided in the head phase.
        }
        // The contract's validation may have parsed the body already (strictly: a key named
        // twice is refused there, so the tree holds everything the text does).
        let parsed = super::contract::called(ctx).and_then(|c| c.body.clone());
        let report = CLEAN.with_borrow_mut(|seen| {
            let mut inspector =
                Inspector::new(&policy.settings, self.budget).with_clean_values(seen);
            Self::inspect_head(&mut inspector, head);
            if !body.is_empty() {
                match (body_kind(&head.headers), &parsed) {
                    (BodyKind::Json, Some(tree)) => inspector.json_value(tree),
                    (kind, _) => {
                        let text = text_of(body);
                        match kind {
                            BodyKind::Json => {
                                if !inspector.json(&text) {
                                    inspector.unparsed(&text);
                                }
                            }
                            BodyKind::Form => inspector.params(&text, true),
                            BodyKind::Text => inspector.text(&text),
                            BodyKind::Binary => {}
                        }
                    }
                }
            }
            inspector.finish()
        });
        self.decide(ctx, policy, report)
    }
}

#[cfg(test)]
mod tests {
    use super::text_of;

    proptest::proptest! {
        #[test]
        fn text_is_what_lossy_decoding_gives(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            proptest::prop_assert_eq!(text_of(&bytes), String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn valid_text_is_borrowed() {
        assert!(matches!(
            text_of("Mary O'Brien é".as_bytes()),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(text_of(b"a\xffb"), "a\u{fffd}b");
    }
}
