//! Security headers on every response, the gateway's own refusals included: `nosniff` always, a
//! restrictive CSP, frame and referrer policy unless the upstream chose its own, HSTS over TLS,
//! `Cache-Control: no-store` where a response is private, and the upstream's software banners
//! removed.

use http::header::{self, HeaderName, HeaderValue};
use http::response;

use crate::config::{Config, NoStore};
use crate::context::RequestCtx;
use crate::pipeline::Check;

pub struct SecurityHeadersCheck {
    csp: Option<HeaderValue>,
    frame_options: Option<HeaderValue>,
    referrer_policy: Option<HeaderValue>,
    hsts: Option<HeaderValue>,
    no_store: NoStore,
    /// Indexed by route id.
    sensitive: Vec<bool>,
    remove: Vec<HeaderName>,
}

impl SecurityHeadersCheck {
    pub fn new(config: &Config) -> Self {
        let c = &config.security_headers;
        let value = |s: &Option<String>| s.as_deref().and_then(|v| HeaderValue::from_str(v).ok());
        let hsts = c.hsts.enabled.then(|| {
            let mut v = format!("max-age={}", c.hsts.max_age.as_secs());
            if c.hsts.include_subdomains {
                v.push_str("; includeSubDomains");
            }
            if c.hsts.preload {
                v.push_str("; preload");
            }
            HeaderValue::from_str(&v).expect("digits and ASCII words")
        });
        SecurityHeadersCheck {
            csp: value(&c.content_security_policy),
            frame_options: value(&c.frame_options),
            referrer_policy: value(&c.referrer_policy),
            hsts,
            no_store: c.no_store,
            sensitive: config.routes.iter().map(|r| r.sensitive).collect(),
            remove: c
                .remove
                .iter()
                .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
                .collect(),
        }
    }
}

const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

impl Check for SecurityHeadersCheck {
    fn name(&self) -> &'static str {
        "security_headers"
    }

    fn outgoing(&self, ctx: &RequestCtx, head: &mut response::Parts) {
        let h = &mut head.headers;
        for name in &self.remove {
            h.remove(name);
        }
        h.insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
        for (name, value) in [
            (header::CONTENT_SECURITY_POLICY, &self.csp),
            (header::X_FRAME_OPTIONS, &self.frame_options),
            (header::REFERRER_POLICY, &self.referrer_policy),
        ] {
            if let Some(v) = value {
                if !h.contains_key(&name) {
                    h.insert(name, v.clone());
                }
            }
        }
        if ctx.tls {
            if let Some(v) = &self.hsts {
                h.insert(header::STRICT_TRANSPORT_SECURITY, v.clone());
            }
        }
        let sensitive = ctx
            .route
            .is_some_and(|r| self.sensitive.get(r.0).copied().unwrap_or(false));
        let personal_data = ctx.findings.iter().any(|f| f.check == "data_protection");
        match self.no_store {
            NoStore::Never => {}
            NoStore::Always => {
                h.insert(header::CACHE_CONTROL, NO_STORE);
            }
            // Forced where a cache would keep personal data or a route's private answers; set when
            // the upstream said nothing for answers to a credentialed request.
            NoStore::Auto if sensitive || personal_data => {
                h.insert(header::CACHE_CONTROL, NO_STORE);
            }
            NoStore::Auto if ctx.has_credentials && !h.contains_key(header::CACHE_CONTROL) => {
                h.insert(header::CACHE_CONTROL, NO_STORE);
            }
            NoStore::Auto => {}
        }
    }
}
