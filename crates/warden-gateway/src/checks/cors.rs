//! Cross-origin resource sharing. With a `cors` section the gateway is the only source of
//! `Access-Control-*` headers: it answers preflights itself, refuses origins it does not know, and
//! drops whatever the upstream said (an upstream that reflects any origin with credentials is the
//! classic CORS hole). Without one, the upstream's headers pass, except credentials next to a
//! wildcard or `null` origin, which would expose users' authenticated data to any site.

use http::header::{self, HeaderValue};
use http::{request, response, Method, Response, StatusCode};
use warden_policy::{ProblemKind, Verdict};

use crate::body::GatewayBody;
use crate::config::{Config, Cors};
use crate::context::RequestCtx;
use crate::pipeline::Check;

pub struct CorsCheck {
    policy: Option<Cors>,
}

impl CorsCheck {
    pub fn new(config: &Config) -> Self {
        CorsCheck {
            policy: config.cors.clone(),
        }
    }
}

fn is_preflight(head: &request::Parts) -> bool {
    head.method == Method::OPTIONS
        && head.headers.contains_key(header::ORIGIN)
        && head
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

impl Cors {
    fn origin_allowed(&self, origin: &HeaderValue) -> bool {
        let Ok(o) = origin.to_str() else {
            return false;
        };
        self.allowed_origins
            .iter()
            .any(|a| a == "*" || a.eq_ignore_ascii_case(o))
    }

    fn wildcard(&self) -> bool {
        self.allowed_origins.iter().any(|a| a == "*")
    }

    /// The preflight answer, or `None` when the preflight asks for something not allowed.
    fn preflight(&self, head: &request::Parts) -> Option<Response<GatewayBody>> {
        let origin = head.headers.get(header::ORIGIN)?;
        if !self.origin_allowed(origin) {
            return None;
        }
        let method = head
            .headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)?
            .to_str()
            .ok()?;
        if !self.allowed_methods.iter().any(|m| m == method) {
            return None;
        }
        let requested: Vec<String> = head
            .headers
            .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if !requested.iter().all(|h| self.allowed_headers.contains(h)) {
            return None;
        }
        let mut resp = Response::new(crate::body::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        self.allow_origin(h, origin);
        let join = |v: &[String]| HeaderValue::from_str(&v.join(", ")).ok();
        if let Some(v) = join(&self.allowed_methods) {
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        if let Some(v) = join(&self.allowed_headers) {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(self.max_age.as_secs()),
        );
        Some(resp)
    }

    fn allow_origin(&self, h: &mut http::HeaderMap, origin: &HeaderValue) {
        if self.wildcard() && !self.allow_credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        } else {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            h.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        if self.allow_credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

const CORS_HEADERS: [header::HeaderName; 6] = [
    header::ACCESS_CONTROL_ALLOW_ORIGIN,
    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
    header::ACCESS_CONTROL_ALLOW_METHODS,
    header::ACCESS_CONTROL_ALLOW_HEADERS,
    header::ACCESS_CONTROL_EXPOSE_HEADERS,
    header::ACCESS_CONTROL_MAX_AGE,
];

impl Check for CorsCheck {
    fn name(&self) -> &'static str {
        "cors"
    }

    fn answer(
        &self,
        _ctx: &mut RequestCtx,
        head: &request::Parts,
    ) -> Option<Response<GatewayBody>> {
        let policy = self.policy.as_ref()?;
        if !is_preflight(head) {
            return None;
        }
        policy.preflight(head)
    }

    fn request_head(&self, _ctx: &mut RequestCtx, head: &mut request::Parts) -> Verdict {
        // A preflight that `answer` did not answer asked for an origin, method or header that is
        // not allowed.
        if self.policy.is_some() && is_preflight(head) {
            return Verdict::reject(ProblemKind::Forbidden, "cors-preflight-refused");
        }
        Verdict::Continue
    }

    fn outgoing(&self, ctx: &RequestCtx, head: &mut response::Parts) {
        let h = &mut head.headers;
        match &self.policy {
            Some(policy) => {
                if ctx.answered_by == Some(self.name()) {
                    return; // Our own preflight answer.
                }
                for name in CORS_HEADERS {
                    h.remove(name);
                }
                if let Some(origin) = &ctx.origin {
                    if policy.origin_allowed(origin) {
                        policy.allow_origin(h, origin);
                        if !policy.expose_headers.is_empty() {
                            if let Ok(v) = HeaderValue::from_str(&policy.expose_headers.join(", "))
                            {
                                h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
                            }
                        }
                    }
                }
            }
            None => {
                let unsafe_origin = h
                    .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                    .is_some_and(|v| v == "*" || v == "null");
                if unsafe_origin {
                    h.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
                }
            }
        }
    }
}
