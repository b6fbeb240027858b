//! The outcome of a check. A check never builds an HTTP response itself: it names the problem and a
//! machine-readable reason, and the gateway maps that to `application/problem+json` in one place.

use std::fmt;

/// What a check decided about a request. No booleans whose meaning needs a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Verdict {
    /// Let the request go on to the next check.
    Continue,
    /// End the request here; the gateway answers with the rejection's problem document.
    Reject(Rejection),
}

impl Verdict {
    pub fn reject(kind: ProblemKind, reason: &'static str) -> Self {
        Verdict::Reject(Rejection::new(kind, reason))
    }
}

/// A refusal: which problem it is (decides status and `type`), a stable reason code for the audit
/// trail and metrics, and an optional detail safe to show the client (never the request's payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub kind: ProblemKind,
    /// Stable, lower-case, dash-separated code such as `ip-denied`, shown to the client.
    pub reason: &'static str,
    pub detail: Option<String>,
    /// The finer cause, for the audit trail, logs and metrics only: where telling the client would
    /// help an attacker (which part of a credential failed), `reason` stays generic.
    pub cause: Option<&'static str>,
    /// What is wrong with the request, item by item (schema validation): where and which rule,
    /// never the values. Shown to the client.
    pub violations: Vec<Violation>,
}

/// One thing wrong with a request: where (`query.limit`, `body.items[2].qty`) and which rule
/// (`maximum`, `undeclared-property`). Never the value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    pub location: String,
    pub rule: &'static str,
}

impl Rejection {
    pub fn new(kind: ProblemKind, reason: &'static str) -> Self {
        Rejection {
            kind,
            reason,
            detail: None,
            cause: None,
            violations: Vec::new(),
        }
    }

    pub fn with_cause(mut self, cause: &'static str) -> Self {
        self.cause = Some(cause);
        self
    }

    /// What logs, metrics and the audit trail record: the cause when there is one.
    pub fn recorded_reason(&self) -> &'static str {
        self.cause.unwrap_or(self.reason)
    }

    pub fn with_violations(mut self, violations: Vec<Violation>) -> Self {
        self.violations = violations;
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// Every problem the gateway itself can answer with. The slug is part of the public contract (it is
/// the last part of the problem `type` URI), so variants may be added but never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NoRoute,
    RequestTimeout,
    PayloadTooLarge,
    HeadersTooLarge,
    UpstreamUnavailable,
    Overloaded,
    UpstreamTimeout,
    Internal,
    /// The upstream answered with an error the gateway would not pass on as it was.
    UpstreamError,
    TooManyRequests,
    /// The upstream failed repeatedly and the gateway stopped calling it for a while.
    CircuitOpen,
    /// The API's contract declares no such operation, or the object is not the caller's.
    NotFound,
    /// The path exists with other methods (the answer carries `Allow`).
    MethodNotAllowed,
    UnsupportedMediaType,
}

impl ProblemKind {
    pub const ALL: [ProblemKind; 17] = [
        ProblemKind::BadRequest,
        ProblemKind::Unauthorized,
        ProblemKind::Forbidden,
        ProblemKind::NoRoute,
        ProblemKind::RequestTimeout,
        ProblemKind::PayloadTooLarge,
        ProblemKind::HeadersTooLarge,
        ProblemKind::UpstreamUnavailable,
        ProblemKind::Overloaded,
        ProblemKind::UpstreamTimeout,
        ProblemKind::Internal,
        ProblemKind::UpstreamError,
        ProblemKind::TooManyRequests,
        ProblemKind::CircuitOpen,
        ProblemKind::NotFound,
        ProblemKind::MethodNotAllowed,
        ProblemKind::UnsupportedMediaType,
    ];

    pub fn status(self) -> u16 {
        match self {
            ProblemKind::BadRequest => 400,
            ProblemKind::Unauthorized => 401,
            ProblemKind::TooManyRequests => 429,
            ProblemKind::Forbidden => 403,
            ProblemKind::NoRoute => 404,
            ProblemKind::RequestTimeout => 408,
            ProblemKind::PayloadTooLarge => 413,
            ProblemKind::HeadersTooLarge => 431,
            ProblemKind::Internal => 500,
            ProblemKind::UpstreamUnavailable => 502,
            ProblemKind::Overloaded => 503,
            ProblemKind::UpstreamTimeout => 504,
            ProblemKind::UpstreamError => 502,
            ProblemKind::CircuitOpen => 503,
            ProblemKind::NotFound => 404,
            ProblemKind::MethodNotAllowed => 405,
            ProblemKind::UnsupportedMediaType => 415,
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            ProblemKind::BadRequest => "bad-request",
            ProblemKind::Unauthorized => "unauthorized",
            ProblemKind::TooManyRequests => "too-many-requests",
            ProblemKind::Forbidden => "forbidden",
            ProblemKind::NoRoute => "no-route",
            ProblemKind::RequestTimeout => "request-timeout",
            ProblemKind::PayloadTooLarge => "payload-too-large",
            ProblemKind::HeadersTooLarge => "headers-too-large",
            ProblemKind::UpstreamUnavailable => "upstream-unavailable",
            ProblemKind::Overloaded => "overloaded",
            ProblemKind::UpstreamTimeout => "upstream-timeout",
            ProblemKind::Internal => "internal-error",
            ProblemKind::UpstreamError => "upstream-error",
            ProblemKind::CircuitOpen => "circuit-open",
            ProblemKind::NotFound => "not-found",
            ProblemKind::MethodNotAllowed => "method-not-allowed",
            ProblemKind::UnsupportedMediaType => "unsupported-media-type",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::BadRequest => "The request is malformed",
            ProblemKind::Unauthorized => "Authentication is required",
            ProblemKind::TooManyRequests => "Too many requests",
            ProblemKind::Forbidden => "Access to this resource is forbidden",
            ProblemKind::NoRoute => "No route matches this request",
            ProblemKind::RequestTimeout => "The request was not received in time",
            ProblemKind::PayloadTooLarge => "The request body is too large",
            ProblemKind::HeadersTooLarge => "The request headers are too large",
            ProblemKind::UpstreamUnavailable => "The upstream service is unavailable",
            ProblemKind::Overloaded => "The gateway is overloaded",
            ProblemKind::UpstreamTimeout => "The upstream service did not answer in time",
            ProblemKind::Internal => "The gateway failed to handle the request",
            ProblemKind::UpstreamError => "The upstream service failed to handle the request",
            ProblemKind::CircuitOpen => {
                "The upstream service is failing; calls to it are paused for a moment"
            }
            ProblemKind::NotFound => "The resource does not exist",
            ProblemKind::MethodNotAllowed => "The method is not allowed on this resource",
            ProblemKind::UnsupportedMediaType => "The request body's media type is not accepted",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn slugs_and_statuses_are_distinct_and_well_formed() {
        let slugs: HashSet<_> = ProblemKind::ALL.iter().map(|k| k.slug()).collect();
        assert_eq!(slugs.len(), ProblemKind::ALL.len());
        for k in ProblemKind::ALL {
            assert!(k
                .slug()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-'));
            assert!((400..600).contains(&k.status()));
        }
    }
}
