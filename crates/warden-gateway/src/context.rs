//! The per-request context that flows through every phase: who is calling, which route matched,
//! what has been decided so far. Later phases (identity, authorization, detection) add their fields
//! here rather than passing values around.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

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
    /// Whether the client reached us over TLS (feeds X-Forwarded-Proto).
    pub tls: bool,
    pub route: Option<RouteId>,
    pub route_name: String,
    /// Set by the phase that ended the request, if any: what the audit trail records as the decision.
    pub decision: Decision,
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
            Decision::Denied { rejection, .. } | Decision::Failed { rejection } => rejection.reason,
        }
    }
}
