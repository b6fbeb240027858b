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
    let body = document(rejection, kind.status(), request_id);
    let mut resp = Response::new(full(body));
    *resp.status_mut() =
        StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    set_headers(resp.headers_mut(), request_id);
    resp
}

/// The problem document for `rejection`, answered with `status`.
pub fn document(rejection: &Rejection, status: u16, request_id: &str) -> Bytes {
    let kind = rejection.kind;
    let mut doc = serde_json::json!({
        "type": format!("{TYPE_PREFIX}{}", kind.slug()),
        "title": kind.title(),
        "status": status,
        "reason": rejection.reason,
        "request_id": request_id,
    });
    if let Some(detail) = &rejection.detail {
        doc["detail"] = serde_json::Value::String(detail.clone());
    }
    if !rejection.violations.is_empty() {
        doc["violations"] = rejection
            .violations
            .iter()
            .map(|v| serde_json::json!({"location": v.location, "rule": v.rule}))
            .collect();
    }
    Bytes::from(serde_json::to_vec(&doc).expect("a JSON value always serializes"))
}

/// The headers every problem carries, also when a check swaps an upstream body for a problem.
pub fn set_headers(h: &mut http::HeaderMap, request_id: &str) {
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
}

/// Replaces a response's body with `body` and fixes the headers that described the old one.
pub fn replace_body(head: &mut http::response::Parts, body: &mut Bytes, new: Bytes) {
    for h in [
        header::CONTENT_ENCODING,
        header::ETAG,
        header::LAST_MODIFIED,
        http::HeaderName::from_static("content-md5"),
        header::CONTENT_RANGE,
        header::ACCEPT_RANGES,
    ] {
        head.headers.remove(h);
    }
    head.headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(new.len()));
    *body = new;
}

pub fn simple(kind: ProblemKind, reason: &'static str, request_id: &str) -> Response<GatewayBody> {
    problem_response(&Rejection::new(kind, reason), request_id)
}
