//! The request pipeline: the named phases every check can take part in, and the one list that wires
//! the checks in order. Read [`Pipeline::build`] to see what runs on a request, top to bottom.
//!
//! Phases, in the order the proxy calls them:
//! 1. `answer`: before anything else looks at the request, a check may answer it itself (CORS
//!    preflight). Not a refusal: the request simply never goes upstream.
//! 2. `request_head`: after routing, before the body is read. Most checks live here (IP rules,
//!    authentication; later limits, authorization, parameter validation). May edit the head.
//!    A check that needs I/O first (a JWKS refresh, a shared counter) returns a future from
//!    `request_io`; the proxy awaits it, lets it record its result in the context, then calls
//!    `request_head`. Checks without I/O pay nothing for this.
//! 3. `request_body`: only for checks that ask for it via `needs_body`; the body is then buffered up
//!    to the route's limit and handed over whole (schema validation, attack detection).
//! 4. `response_head`: once the upstream answered; may rewrite headers.
//! 5. `response_body`: only when a check asks via `response_body_limit`; the body is buffered up
//!    to the largest limit asked for and may be rewritten (data protection, error scrubbing). Past
//!    the limit, `response_oversized` decides instead.
//! 6. `outgoing`: every response the gateway sends, upstream or its own refusal (security headers,
//!    CORS).
//! 7. `log`: for every request, allowed or refused, after the response is finished.
//!
//! A check returns an explicit [`Verdict`]; the first `Reject` ends the request and is recorded as the
//! decision, with the check's name as the phase that decided.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{request, response, Response};
use warden_policy::Verdict;

use crate::body::GatewayBody;
use crate::checks;
use crate::config::Config;
use crate::context::RequestCtx;
use crate::services::Services;

/// What a check's I/O hands back: how to record its result in the request's context.
pub type Apply = Box<dyn FnOnce(&mut RequestCtx) + Send>;
/// I/O a check needs before it can decide (see `Check::request_io`).
pub type Pending = Pin<Box<dyn Future<Output = Option<Apply>> + Send>>;

/// The longest the pipeline waits for a check's I/O. Past it the check decides without (each
/// check's `request_head` then fails closed or open as its config says).
pub const IO_DEADLINE: Duration = Duration::from_secs(5);

/// One security check. Every method defaults to "no opinion", so a check implements only what it
/// needs. Checks must be cheap and must not block: they run on the proxy's hot path.
pub trait Check: Send + Sync + 'static {
    /// Stable name, recorded as the deciding phase in logs, metrics and the audit trail.
    fn name(&self) -> &'static str;

    /// Answers the request directly (it is not proxied), or `None` to go on.
    fn answer(
        &self,
        _ctx: &mut RequestCtx,
        _head: &request::Parts,
    ) -> Option<Response<GatewayBody>> {
        None
    }

    /// I/O to do before `request_head` for this request, if any.
    fn request_io(&self, _ctx: &RequestCtx, _head: &request::Parts) -> Option<Pending> {
        None
    }

    fn request_head(&self, _ctx: &mut RequestCtx, _head: &mut request::Parts) -> Verdict {
        Verdict::Continue
    }

    /// Whether this check needs the whole request body for this request.
    fn needs_body(&self, _ctx: &RequestCtx, _head: &request::Parts) -> bool {
        false
    }

    /// I/O to do before `request_body`, for checks that could only decide once the body was read
    /// (a limit keyed by a consumer that a signed request names only once its body is verified).
    fn request_body_io(
        &self,
        _ctx: &RequestCtx,
        _head: &request::Parts,
        _body: &Bytes,
    ) -> Option<Pending> {
        None
    }

    fn request_body(
        &self,
        _ctx: &mut RequestCtx,
        _head: &mut request::Parts,
        _body: &Bytes,
    ) -> Verdict {
        Verdict::Continue
    }

    fn response_head(&self, _ctx: &mut RequestCtx, _head: &mut response::Parts) -> Verdict {
        Verdict::Continue
    }

    /// How much of the response body this check wants to see whole, if any.
    fn response_body_limit(&self, _ctx: &RequestCtx, _head: &response::Parts) -> Option<u64> {
        None
    }

    /// The whole response body (within the limit asked for); may replace it and edit the head.
    fn response_body(
        &self,
        _ctx: &mut RequestCtx,
        _head: &mut response::Parts,
        _body: &mut Bytes,
    ) -> Verdict {
        Verdict::Continue
    }

    /// The body was larger than this check's limit (it streams through unseen unless refused).
    fn response_oversized(&self, _ctx: &mut RequestCtx, _head: &mut response::Parts) -> Verdict {
        Verdict::Continue
    }

    /// Every response, the gateway's own included; headers only.
    fn outgoing(&self, _ctx: &RequestCtx, _head: &mut response::Parts) {}

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
    pub upstream: Option<std::sync::Arc<str>>,
}

/// The checks of one config generation, in order.
#[derive(Clone)]
pub struct Pipeline {
    checks: Vec<Arc<dyn Check>>,
}

impl Pipeline {
    /// The wiring: the order here is the order a request meets the checks.
    pub fn build(config: &Config, services: &Arc<Services>) -> Pipeline {
        let mut checks: Vec<Arc<dyn Check>> = vec![
            // Connection rules first: cheapest, and a denied network should learn nothing more.
            Arc::new(checks::ip_rules::IpRulesCheck::new(config)),
        ];
        // CORS answers preflights before any credential is asked for (browsers send none), and
        // owns the Access-Control-* headers on the way out.
        checks.push(Arc::new(checks::cors::CorsCheck::new(config)));
        // Who is calling, before anything that depends on it (limits per consumer, authorization).
        checks.push(Arc::new(checks::identity::IdentityCheck::new(
            config,
            services.clone(),
        )));
        // The upstream's own login: attempt limits per username and IP, uniform failures, and
        // the tokens it issues (for token provenance).
        if !config.auth.login.is_empty() {
            checks.push(Arc::new(checks::login::LoginGuard::new(
                config,
                services.clone(),
            )));
        }
        // Rate limits, quotas and concurrency caps: per consumer, so after identity; before
        // anything that reads the body or calls upstream, so a flood costs little.
        let traffic = checks::traffic::TrafficCheck::new(config, services.clone());
        if traffic.active() {
            checks.push(Arc::new(traffic));
        }
        // The API's contract: an operation the spec does not declare, a caller it does not allow
        // (function level, then object level) and a request it does not describe are refused
        // here, after limits (a flood costs little) and before attack detection (what the
        // contract refuses needs no deeper look). Validation also filters the responses.
        let authorization = checks::authorization::AuthorizationCheck::new(config);
        if authorization.active() {
            checks.push(Arc::new(authorization));
            checks.push(Arc::new(checks::validation::ValidationCheck::new(config)));
        }
        // Attacks in what the request carries. After identity: an unauthenticated request is
        // refused without being read, and a route's consumer is known to the audit.
        let attacks = checks::attack_detection::AttackDetectionCheck::new(config);
        if attacks.active() {
            checks.push(Arc::new(attacks));
        }
        // Response side, in the order a response is rewritten: scrub a leaky error first (its
        // body is then ours, nothing to mask), then mask personal data, then add headers.
        if config.error_scrubbing.mode != crate::config::ScrubMode::Off {
            checks.push(Arc::new(checks::error_scrubbing::ErrorScrubbing::new(
                config,
            )));
        }
        if config.data_protection.enabled {
            checks.push(Arc::new(checks::data_protection::DataProtectionCheck::new(
                config,
            )));
        }
        if config.security_headers.enabled {
            checks.push(Arc::new(
                checks::security_headers::SecurityHeadersCheck::new(config),
            ));
        }
        // Last, log phase only: patterns across finished calls become alerts.
        services.traffic.alerts.configure(&config.alerts);
        if config.alerts.any_detector() {
            checks.push(Arc::new(checks::alerting::AlertingCheck::new(
                config,
                services.clone(),
            )));
        }
        Pipeline { checks }
    }

    /// For tests and embedders that assemble their own list.
    pub fn from_checks(checks: Vec<Arc<dyn Check>>) -> Pipeline {
        Pipeline { checks }
    }

    pub fn answer(
        &self,
        ctx: &mut RequestCtx,
        head: &request::Parts,
    ) -> Option<(&'static str, Response<GatewayBody>)> {
        self.checks
            .iter()
            .find_map(|c| c.answer(ctx, head).map(|r| (c.name(), r)))
    }

    pub async fn request_head(
        &self,
        ctx: &mut RequestCtx,
        head: &mut request::Parts,
    ) -> Result<(), Denial> {
        for c in &self.checks {
            if let Some(io) = c.request_io(ctx, head) {
                if let Ok(Some(apply)) = tokio::time::timeout(IO_DEADLINE, io).await {
                    apply(ctx);
                }
            }
            if let Verdict::Reject(rejection) = c.request_head(ctx, head) {
                return Err(Denial {
                    phase: c.name(),
                    rejection,
                });
            }
        }
        Ok(())
    }

    pub fn needs_body(&self, ctx: &RequestCtx, head: &request::Parts) -> bool {
        self.checks.iter().any(|c| c.needs_body(ctx, head))
    }

    pub async fn request_body(
        &self,
        ctx: &mut RequestCtx,
        head: &mut request::Parts,
        body: &Bytes,
    ) -> Result<(), Denial> {
        for c in &self.checks {
            if let Some(io) = c.request_body_io(ctx, head, body) {
                if let Ok(Some(apply)) = tokio::time::timeout(IO_DEADLINE, io).await {
                    apply(ctx);
                }
            }
            if let Verdict::Reject(rejection) = c.request_body(ctx, head, body) {
                return Err(Denial {
                    phase: c.name(),
                    rejection,
                });
            }
        }
        Ok(())
    }

    pub fn response_head(
        &self,
        ctx: &mut RequestCtx,
        head: &mut response::Parts,
    ) -> Result<(), Denial> {
        self.run(|c| c.response_head(ctx, head))
    }

    /// The largest response body any check wants to see, if any does.
    pub fn response_body_limit(&self, ctx: &RequestCtx, head: &response::Parts) -> Option<u64> {
        self.checks
            .iter()
            .filter_map(|c| c.response_body_limit(ctx, head))
            .max()
    }

    /// Hands a buffered body of `len` bytes to each check that asked for at least that much, and
    /// reports it as oversized to those that asked for less.
    pub fn response_body(
        &self,
        ctx: &mut RequestCtx,
        head: &mut response::Parts,
        body: &mut Bytes,
    ) -> Result<(), Denial> {
        let len = body.len() as u64;
        self.run(|c| match c.response_body_limit(ctx, head) {
            Some(limit) if len <= limit => c.response_body(ctx, head, body),
            Some(_) => c.response_oversized(ctx, head),
            None => Verdict::Continue,
        })
    }

    /// The body is larger than every limit asked for: it will stream through.
    pub fn response_oversized(
        &self,
        ctx: &mut RequestCtx,
        head: &mut response::Parts,
    ) -> Result<(), Denial> {
        self.run(|c| match c.response_body_limit(ctx, head) {
            Some(_) => c.response_oversized(ctx, head),
            None => Verdict::Continue,
        })
    }

    pub fn outgoing(&self, ctx: &RequestCtx, head: &mut response::Parts) {
        for c in &self.checks {
            c.outgoing(ctx, head);
        }
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
