//! Upstream 5xx answers that leak internals (stack traces, SQL errors, debug pages, file paths)
//! leave as a generic `application/problem+json` with the same status and the request id; the
//! original is never sent. What leaked is recorded as a finding, so the audit trail still tells
//! the operators which request broke and how.

use bytes::Bytes;
use http::{header, response};
use warden_policy::{leaks, ProblemKind, Rejection, Verdict};

use crate::config::{Config, ScrubMode};
use crate::context::{Finding, RequestCtx};
use crate::pipeline::Check;

pub struct ErrorScrubbing {
    mode: ScrubMode,
    limit: u64,
}

impl ErrorScrubbing {
    pub fn new(config: &Config) -> Self {
        ErrorScrubbing {
            mode: config.error_scrubbing.mode,
            limit: config.error_scrubbing.max_body_bytes.0,
        }
    }
}

fn content_type(head: &response::Parts) -> &str {
    head.headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

impl Check for ErrorScrubbing {
    fn name(&self) -> &'static str {
        "error_scrubbing"
    }

    fn response_body_limit(&self, _ctx: &RequestCtx, head: &response::Parts) -> Option<u64> {
        (head.status.is_server_error() && self.mode != ScrubMode::Off).then_some(self.limit)
    }

    fn response_body(
        &self,
        ctx: &mut RequestCtx,
        head: &mut response::Parts,
        body: &mut Bytes,
    ) -> Verdict {
        let ct = content_type(head).to_ascii_lowercase();
        let leak = match self.mode {
            ScrubMode::Off => None,
            // A compressed body cannot be read; an error that needs compressing is no plain message.
            _ if head.headers.contains_key(header::CONTENT_ENCODING) => Some("unreadable"),
            ScrubMode::All5xx if !ct.starts_with("application/problem+json") => Some("error-body"),
            _ => leaks::find(body, ct.starts_with("text/html")).map(|l| l.id()),
        };
        let Some(kind) = leak else {
            return Verdict::Continue;
        };
        ctx.findings.push(Finding {
            check: self.name(),
            kind: kind.to_string(),
            location: "body".into(),
            action: "replace",
            ..Default::default()
        });
        let rejection = Rejection::new(ProblemKind::UpstreamError, "upstream-error-scrubbed");
        let doc = crate::problem::document(&rejection, head.status.as_u16(), &ctx.request_id);
        crate::problem::replace_body(head, body, doc);
        crate::problem::set_headers(&mut head.headers, &ctx.request_id);
        Verdict::Continue
    }

    /// An error body too large to inspect is not passed on either.
    fn response_oversized(&self, ctx: &mut RequestCtx, _head: &mut response::Parts) -> Verdict {
        ctx.findings.push(Finding {
            check: self.name(),
            kind: "oversized-error".into(),
            location: "body".into(),
            action: "replace",
            ..Default::default()
        });
        Verdict::reject(ProblemKind::UpstreamError, "upstream-error-scrubbed")
    }
}
