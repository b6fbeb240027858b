//! The per-request context that flows through every phase: who is calling, which route matched,
//! what has been found and decided so far. Later phases (identity, authorization, detection) add
//! their fields here rather than passing values around.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use http::HeaderValue;
use warden_policy::Rejection;

use crate::router::RouteId;

#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub request_id: String,
    pub started: Instant,
    /// The socket peer.
    pub peer: SocketAddr,
    /// The client as resolved through trusted proxies (see `warden_policy::client_ip`).
    pub client_ip: IpAddr,
    /// Whether the client reached us over TLS (feeds X-Forwarded-Proto and HSTS).
    pub tls: bool,
    pub method: http::Method,
    /// The request path as received (no query), for the audit trail.
    pub path: String,
    /// The request's `Origin`, for CORS on the way out.
    pub origin: Option<HeaderValue>,
    /// The request carried credentials (Authorization, Cookie, an API key header): its response is
    /// private to the caller and must not be cached.
    pub has_credentials: bool,
    pub route: Option<RouteId>,
    /// The matched route's name; `None` before routing (or when no route matched).
    pub route_name: Option<Arc<str>>,
    /// The check that answered the request itself (`Check::answer`), if one did.
    pub answered_by: Option<&'static str>,
    /// Who the caller is, once the identity phase has authenticated it.
    pub identity: Option<Identity>,
    /// Authentication waits for the body (a signed request covers its digest): checks that need
    /// the caller's identity decide in the body phase.
    pub auth_pending: bool,
    /// Per-check state that spans phases (a login attempt's username, a limit's counter),
    /// keyed by type. Empty, and free, unless a check uses it.
    pub ext: http::Extensions,
    /// What the checks found, allowed or not: personal data in the response, attacks in the
    /// request. Never holds the values themselves.
    pub findings: Vec<Finding>,
    /// Set by the phase that ended the request, if any: what the audit trail records as the decision.
    pub decision: Decision,
}

pub use warden_policy::auth::Identity;

/// One thing a check noticed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finding {
    /// The check that found it (`data_protection`, `error_scrubbing`, ...).
    pub check: &'static str,
    /// What was found, e.g. `card`, `cn_id`, `stack-trace`.
    pub kind: String,
    /// Where: `body.users[0].card`, `header.x-phone`, `query.q`.
    pub location: String,
    /// What was done about it: `mask`, `alert`, `block`, ...
    pub action: &'static str,
    /// The detector's rule, where a check has several per kind (`libinjection`, `metadata-host`).
    pub rule: &'static str,
    /// The decodings the value needed before it read as an attack (`url-decode`, `html-entities`):
    /// heavy encoding is itself a sign of evasion.
    pub transforms: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// A check refused the request; `phase` names the check.
    Denied {
        phase: &'static str,
        rejection: Rejection,
    },
    /// The gateway itself failed the request (no route, limits, upstream errors).
    Failed {
        rejection: Rejection,
    },
}

impl Decision {
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Denied { .. } => "denied",
            Decision::Failed { .. } => "failed",
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Decision::Allowed => "",
            Decision::Denied { rejection, .. } | Decision::Failed { rejection } => {
                rejection.recorded_reason()
            }
        }
    }
}

impl RequestCtx {
    pub fn scopes(&self) -> &[String] {
        self.identity.as_ref().map_or(&[], |i| &i.scopes)
    }
}
