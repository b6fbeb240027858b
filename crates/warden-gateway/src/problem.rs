//! The one place where a rejection becomes an HTTP response: `application/problem+json` (RFC 9457).
//!
//! The body names the problem (`type`, `title`, `status`), the reason code and the request id, and
//! nothing from the request itself: echoing a payload back would turn the gateway into a reflector.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use warden_policy::{ProblemKind, Rejection};

use crate::body::{full, GatewayBody};

/// Prefix of every problem `type`. A URN rather than a URL: stable, and never dereferenced by
/// clients; `docs/problems.md` lists every slug.
pub const TYPE_PREFIX: &str = "urn:warden:problem:";

pub fn problem_response(rejection: &Rejection, request_id: &str) -> Response<GatewayBody> {
    let kind = rejection.kind;
    let mut doc = serde_json::json!({
        "type": format!("{TYPE_PREFIX}{}", kind.slug()),
        "title": kind.title(),
        "status": kind.status(),
        "reason": rejection.reason,
        "request_id": request_id,
    });
    if let Some(detail) = &rejection.detail {
        doc["detail"] = serde_json::Value::String(detail.clone());
    }
    let body = Bytes::from(serde_json::to_vec(&doc).expect("a JSON value always serializes"));
    let mut resp = Response::new(full(body));
    *resp.status_mut() =
        StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert(crate::headers::X_REQUEST_ID, v);
    }
    resp
}

pub fn simple(kind: ProblemKind, reason: &'static str, request_id: &str) -> Response<GatewayBody> {
    problem_response(&Rejection::new(kind, reason), request_id)
}
