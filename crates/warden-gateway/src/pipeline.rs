//! The request pipeline: the named phases every check can take part in, and the one list that wires
//! the checks in order. Read [`Pipeline::build`] to see what runs on a request, top to bottom.
//!
//! Phases, in the order the proxy calls them:
//! 1. `request_head`: after routing, before the body is read. Most checks live here (IP rules;
//!    later authentication, limits, authorization, parameter validation).
//! 2. `request_body`: only for checks that ask for it via `needs_body`; the body is then buffered up
//!    to the route's limit and handed over whole (schema validation, attack detection).
//! 3. `response_head`: once the upstream answered; may rewrite headers (security headers).
//! 4. `log`: for every request, allowed or refused, after the response is finished.
//!
//! A check returns an explicit [`Verdict`]; the first `Reject` ends the request and is recorded as the
//! decision, with the check's name as the phase that decided.

use std::sync::Arc;

use bytes::Bytes;
use http::request;
use warden_policy::Verdict;

use crate::checks;
use crate::config::Config;
use crate::context::RequestCtx;

/// One security check. Every method defaults to "no opinion", so a check implements only what it
/// needs. Checks must be cheap and must not block: they run on the proxy's hot path.
pub trait Check: Send + Sync + 'static {
    /// Stable name, recorded as the deciding phase in logs, metrics and the audit trail.
    fn name(&self) -> &'static str;

    fn request_head(&self, _ctx: &mut RequestCtx, _head: &request::Parts) -> Verdict {
        Verdict::Continue
    }

    /// Whether this check needs the whole request body for this request.
    fn needs_body(&self, _ctx: &RequestCtx, _head: &request::Parts) -> bool {
        false
    }

    fn request_body(
        &self,
        _ctx: &mut RequestCtx,
        _head: &request::Parts,
        _body: &Bytes,
    ) -> Verdict {
        Verdict::Continue
    }

    fn response_head(&self, _ctx: &mut RequestCtx, _head: &mut http::response::Parts) -> Verdict {
        Verdict::Continue
    }

    fn log(&self, _ctx: &RequestCtx, _outcome: &Outcome) {}
}

/// What the log phase learns about a finished request.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// False when the client or upstream went away before the response body was complete.
    pub complete: bool,
    pub upstream: Option<String>,
}

/// The checks of one config generation, in order.
#[derive(Clone)]
pub struct Pipeline {
    checks: Vec<Arc<dyn Check>>,
}

impl Pipeline {
    /// The wiring: the order here is the order a request meets the checks.
    pub fn build(config: &Config) -> Pipeline {
        let checks: Vec<Arc<dyn Check>> = vec![
            // Connection rules first: cheapest, and a denied network should learn nothing more.
            Arc::new(checks::ip_rules::IpRulesCheck::new(config)),
        ];
        Pipeline { checks }
    }

    /// For tests and embedders that assemble their own list.
    pub fn from_checks(checks: Vec<Arc<dyn Check>>) -> Pipeline {
        Pipeline { checks }
    }

    pub fn request_head(&self, ctx: &mut RequestCtx, head: &request::Parts) -> Result<(), Denial> {
        self.run(|c| c.request_head(ctx, head))
    }

    pub fn needs_body(&self, ctx: &RequestCtx, head: &request::Parts) -> bool {
        self.checks.iter().any(|c| c.needs_body(ctx, head))
    }

    pub fn request_body(
        &self,
        ctx: &mut RequestCtx,
        head: &request::Parts,
        body: &Bytes,
    ) -> Result<(), Denial> {
        self.run(|c| c.request_body(ctx, head, body))
    }

    pub fn response_head(
        &self,
        ctx: &mut RequestCtx,
        head: &mut http::response::Parts,
    ) -> Result<(), Denial> {
        self.run(|c| c.response_head(ctx, head))
    }

    pub fn log(&self, ctx: &RequestCtx, outcome: &Outcome) {
        for c in &self.checks {
            c.log(ctx, outcome);
        }
    }

    fn run(&self, mut phase: impl FnMut(&dyn Check) -> Verdict) -> Result<(), Denial> {
        for c in &self.checks {
            if let Verdict::Reject(rejection) = phase(c.as_ref()) {
                return Err(Denial {
                    phase: c.name(),
                    rejection,
                });
            }
        }
        Ok(())
    }
}

/// A check's refusal, with the check that made it.
#[derive(Debug, Clone)]
pub struct Denial {
    pub phase: &'static str,
    pub rejection: warden_policy::Rejection,
}
