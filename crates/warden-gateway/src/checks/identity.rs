//! Authentication: who is calling, proven by which credential. The decisions are
//! `warden_policy::auth`; this adapter finds the credential in the request, picks the route's
//! accepted types, keeps the lockout counters, refreshes JWKS when an unknown key id shows up, and
//! tells the upstream who called (`X-Warden-Consumer` and friends, after removing any the client
//! sent).
//!
//! Every failure answers the same generic 401 with `WWW-Authenticate`; the cause (unknown key,
//! expired, replay...) goes to the audit trail only. Signed requests are verified once the body is
//! read (the signature covers its digest); meanwhile `ctx.auth_pending` says so.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{request, response};
use warden_policy::auth::api_key::{self, KeySet};
use warden_policy::auth::jwt::{self, ClaimMap, Issuer, KeyRing, Outcome, Verifier};
use warden_policy::auth::lockout::Policy as LockoutPolicy;
use warden_policy::auth::signature::{self, RequestParts};
use warden_policy::auth::{sha256_hex, AuthFailure, Identity, Method};
use warden_policy::{ProblemKind, Rejection, Verdict};

use crate::config::{parse_algorithm, Config, ConsumerConfig, RouteAuth, StoreFallback};
use crate::context::{Finding, RequestCtx};
use crate::pipeline::{Check, Pending};
use crate::services::{now_secs, JwksLocation, JwksSource, Services};

pub struct IdentityCheck {
    inner: Arc<Inner>,
}

struct Inner {
    services: Arc<Services>,
    /// Indexed by route id.
    routes: Vec<RouteAuth>,
    key_headers: Vec<HeaderName>,
    jwt: Option<JwtSetup>,
    signatures: Option<SignatureSetup>,
    issued_tokens: bool,
    consumers: BTreeMap<String, ConsumerConfig>,
    lockout: LockoutPolicy,
    /// Where spent nonces are shared between replicas, if anywhere.
    redis: Option<Arc<crate::traffic::RedisStore>>,
    nonce_fallback: StoreFallback,
}

struct JwtSetup {
    verifier: Verifier,
    /// Tokens verified recently, by digest, with the time their entry ends: signature checks cost
    /// 5 to 45 µs (bench/README.md), and clients send the same token many times.
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], (Identity, i64)>>,
    /// Per issuer (same order): its JWKS cache and refresh intervals, if it has one.
    jwks: Vec<Option<(Arc<JwksSource>, std::time::Duration, std::time::Duration)>>,
}

struct SignatureSetup {
    window_secs: i64,
    required_headers: Vec<String>,
    keys: BTreeMap<String, SigningKey>,
}

struct SigningKey {
    secret: Vec<u8>,
    consumer: String,
    scopes: Vec<String>,
    roles: Vec<String>,
}

/// What the request presents.
enum Presented {
    None,
    ApiKey(String),
    Jwt(String),
    Signature(String),
    Bearer(String),
    /// A scheme we do not take (Basic, Digest...): as good as none.
    Foreign,
}

impl Presented {
    fn method(&self) -> Option<Method> {
        match self {
            Presented::ApiKey(_) => Some(Method::ApiKey),
            Presented::Jwt(_) => Some(Method::Jwt),
            Presented::Signature(_) => Some(Method::Signature),
            Presented::Bearer(_) => Some(Method::IssuedToken),
            Presented::None | Presented::Foreign => None,
        }
    }
}

const UPSTREAM_HEADERS: [&str; 5] = [
    "x-warden-consumer",
    "x-warden-credential",
    "x-warden-auth-method",
    "x-warden-roles",
    "x-warden-scopes",
];

impl IdentityCheck {
    pub fn new(config: &Config, services: Arc<Services>) -> Self {
        let auth = &config.auth;
        let jwt = (!auth.jwt.is_empty()).then(|| {
            let mut issuers = Vec::new();
            let mut jwks = Vec::new();
            for i in &auth.jwt {
                let algorithms: Vec<_> = i
                    .algorithms
                    .iter()
                    .filter_map(|a| parse_algorithm(a).ok())
                    .collect();
                let family = algorithms.first().map(|a| a.family());
                let mut keys = KeyRing::default();
                if let Some(secret) = i.secret.as_ref().and_then(|s| s.load().ok()) {
                    keys.add_secret(None, &secret);
                }
                for k in &i.keys {
                    // Checked at load; a file that has since become unreadable is skipped.
                    if let (Ok(pem), Some(f)) = (std::fs::read(&k.file), family) {
                        let _ = keys.add_pem(k.kid.as_deref(), &pem, f);
                    }
                }
                let location = match (&i.jwks_url, &i.jwks_file) {
                    (Some(url), _) => Some(JwksLocation::Url {
                        url: url.clone(),
                        ca_file: i.jwks_ca_file.clone(),
                    }),
                    (None, Some(f)) => Some(JwksLocation::File(f.clone())),
                    (None, None) => None,
                };
                jwks.push(location.map(|l| (services.jwks(l), i.jwks_min_refresh, i.jwks_refresh)));
                issuers.push(Issuer {
                    issuer: i.issuer.clone(),
                    audiences: i.audiences.clone(),
                    algorithms,
                    leeway_secs: i.leeway.as_secs(),
                    claims: ClaimMap {
                        consumer: i.claims.consumer.clone(),
                        roles: i.claims.roles.clone(),
                        scopes: i.claims.scopes.clone(),
                    },
                    keys,
                });
            }
            JwtSetup {
                verifier: Verifier { issuers },
                verified: Default::default(),
                jwks,
            }
        });
        let signatures = auth.signatures.as_ref().map(|s| SignatureSetup {
            window_secs: s.window.as_secs() as i64,
            required_headers: s
                .required_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            keys: s
                .keys
                .iter()
                .filter_map(|(id, k)| {
                    Some((
                        id.clone(),
                        SigningKey {
                            secret: k.secret.load().ok()?,
                            consumer: k.consumer.clone(),
                            scopes: k.scopes.clone(),
                            roles: k.roles.clone(),
                        },
                    ))
                })
                .collect(),
        });
        let redis = config
            .traffic
            .redis
            .as_ref()
            .and_then(|r| services.traffic.redis(r).ok());
        IdentityCheck {
            inner: Arc::new(Inner {
                services,
                routes: config.routes.iter().map(|r| r.auth.clone()).collect(),
                key_headers: auth
                    .api_keys
                    .headers
                    .iter()
                    .filter_map(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok())
                    .collect(),
                jwt,
                signatures,
                issued_tokens: auth.issued_tokens.enabled,
                consumers: auth.consumers.clone(),
                lockout: auth.lockout.policy(),
                redis,
                nonce_fallback: config
                    .traffic
                    .redis
                    .as_ref()
                    .map_or(StoreFallback::Refuse, |r| r.nonces_on_store_error),
            }),
        }
    }
}

impl Inner {
    /// The credential types this route accepts and requires; empty means no authentication.
    fn accepted(&self, ctx: &RequestCtx, keys: &KeySet) -> Vec<Method> {
        let route = ctx
            .route
            .and_then(|r| self.routes.get(r.0))
            .cloned()
            .unwrap_or_default();
        match route {
            RouteAuth::Public => Vec::new(),
            RouteAuth::Methods(m) => m,
            RouteAuth::Default => {
                let mut m = Vec::new();
                if !keys.is_empty() {
                    m.push(Method::ApiKey);
                }
                if self.jwt.is_some() {
                    m.push(Method::Jwt);
                }
                if self.signatures.is_some() {
                    m.push(Method::Signature);
                }
                if self.issued_tokens {
                    m.push(Method::IssuedToken);
                }
                m
            }
        }
    }

    fn presented(&self, head: &request::Parts) -> Presented {
        if let Some(auth) = head.headers.get(header::AUTHORIZATION) {
            let Ok(v) = auth.to_str() else {
                return Presented::Foreign;
            };
            if v.starts_with(signature::SCHEME) {
                return Presented::Signature(v.to_string());
            }
            let bearer = v
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim());
            if let Some(t) = bearer {
                if api_key::looks_like(t) {
                    return Presented::ApiKey(t.to_string());
                }
                if self.jwt.is_some() && (jwt::looks_like(t) || !self.issued_tokens) {
                    return Presented::Jwt(t.to_string());
                }
                return Presented::Bearer(t.to_string());
            }
            return Presented::Foreign;
        }
        for h in &self.key_headers {
            if let Some(v) = head.headers.get(h).and_then(|v| v.to_str().ok()) {
                return Presented::ApiKey(v.trim().to_string());
            }
        }
        Presented::None
    }

    /// Lockout keys: the client IP, and the identity the credential claims (before verifying it).
    fn lock_keys(ctx: &RequestCtx, presented: &Presented) -> Vec<String> {
        let mut keys = vec![format!("ip:{}", ctx.client_ip)];
        let claimed = match presented {
            Presented::ApiKey(t) => KeySet::claimed_id(t).map(|id| format!("key:{id}")),
            Presented::Jwt(t) => {
                jwt::claimed_issuer_and_kid(t).map(|(iss, _)| format!("iss:{iss}"))
            }
            Presented::Signature(v) => signature::parse_header(v)
                .ok()
                .map(|h| format!("sig:{}", h.key_id)),
            _ => None,
        };
        keys.extend(claimed);
        keys
    }

    fn fail(&self, ctx: &mut RequestCtx, keys: &[String], failure: AuthFailure) -> Verdict {
        if failure.counts() {
            self.services.auth_failed(keys, &self.lockout);
        }
        ctx.auth_pending = false;
        Verdict::Reject(
            Rejection::new(ProblemKind::Unauthorized, "unauthenticated").with_cause(failure.code()),
        )
    }

    fn succeed(
        &self,
        ctx: &mut RequestCtx,
        head: &mut request::Parts,
        keys: &[String],
        mut id: Identity,
    ) -> Verdict {
        if let Some(k) = keys.get(1) {
            self.services.auth_succeeded(k);
        }
        if let Some(extra) = self.consumers.get(&id.consumer) {
            for r in &extra.roles {
                if !id.roles.contains(r) {
                    id.roles.push(r.clone());
                }
            }
            for s in &extra.scopes {
                if !id.scopes.contains(s) {
                    id.scopes.push(s.clone());
                }
            }
        }
        // Warden's own credentials are for Warden: the upstream never sees them.
        if matches!(id.method, Method::ApiKey | Method::Signature) {
            for h in &self.key_headers {
                head.headers.remove(h);
            }
            head.headers.remove(header::AUTHORIZATION);
        }
        let set = |head: &mut request::Parts, name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                head.headers.insert(name, v);
            }
        };
        set(head, "x-warden-consumer", &id.consumer);
        set(head, "x-warden-credential", &id.credential_id);
        set(head, "x-warden-auth-method", id.method.id());
        set(head, "x-warden-roles", &id.roles.join(" "));
        set(head, "x-warden-scopes", &id.scopes.join(" "));
        ctx.identity = Some(id);
        ctx.auth_pending = false;
        Verdict::Continue
    }

    fn verify_jwt(&self, token: &str) -> Result<Identity, AuthFailure> {
        let Some(setup) = &self.jwt else {
            return Err(AuthFailure::MethodNotAccepted);
        };
        let digest: [u8; 32] = {
            use sha2::Digest;
            sha2::Sha256::digest(token.as_bytes()).into()
        };
        let now = now_secs();
        if let Some((id, until)) = setup
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&digest)
        {
            if *until > now {
                return Ok(id.clone());
            }
        }
        let id = self.verify_jwt_uncached(setup, token)?;
        // Remembered until the token expires, and never longer than a minute: a key withdrawn from
        // the issuer's JWKS stops working within that minute.
        let until = jwt::unverified_exp(token).map_or(now + 60, |exp| exp.min(now + 60));
        let mut cache = setup.verified.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= 10_000 {
            cache.retain(|_, (_, u)| *u > now);
            if cache.len() >= 10_000 {
                cache.clear();
            }
        }
        cache.insert(digest, (id.clone(), until));
        Ok(id)
    }

    fn verify_jwt_uncached(&self, setup: &JwtSetup, token: &str) -> Result<Identity, AuthFailure> {
        let extra: Vec<Option<Arc<KeyRing>>> = setup
            .jwks
            .iter()
            .map(|j| j.as_ref().map(|(src, _, _)| src.ring()))
            .collect();
        match setup.verifier.verify_with(token, &extra) {
            Outcome::Verified(id) => Ok(id),
            Outcome::Failed(f) => Err(f),
            Outcome::UnknownKid { .. } => Err(AuthFailure::UnknownKey),
        }
    }

    /// The JWKS refresh a token needs before it can be verified, if any.
    fn jwks_refresh_for(&self, token: &str) -> Option<Pending> {
        let setup = self.jwt.as_ref()?;
        let (iss, kid) = jwt::claimed_issuer_and_kid(token)?;
        let index = setup.verifier.issuer_index(&iss)?;
        let (source, min, every) = setup.jwks.get(index)?.as_ref()?;
        let ring = source.ring();
        let unknown = match &kid {
            Some(k) => !setup.verifier.issuers[index].keys.has_kid(k) && !ring.has_kid(k),
            None => ring.is_empty(),
        };
        let (source, min) = (source.clone(), *min);
        if unknown && source.may_refresh(min) {
            return Some(Box::pin(async move {
                source.refresh(min).await;
                None
            }));
        }
        if source.may_refresh(*every) {
            // Periodic refresh, in the background: this request does not wait for it.
            tokio::spawn(async move { source.refresh(min).await });
        }
        None
    }

    /// Verifies a signed request's signature over its head and body, without spending its nonce:
    /// the identity, and the nonce to spend (its store key and lifetime).
    fn check_signature(
        &self,
        head: &request::Parts,
        body: &Bytes,
    ) -> Option<Result<(Identity, String, i64), AuthFailure>> {
        let setup = self.signatures.as_ref()?;
        let Presented::Signature(value) = self.presented(head) else {
            return None;
        };
        Some((|| {
            let h = signature::parse_header(&value)?;
            if setup
                .required_headers
                .iter()
                .any(|r| !h.signed_headers.contains(r))
            {
                return Err(AuthFailure::Malformed);
            }
            let key = setup.keys.get(&h.key_id).ok_or(AuthFailure::UnknownKey)?;
            let headers: Vec<(&str, &str)> = head
                .headers
                .iter()
                .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
                .chain(
                    // HTTP/2 carries the host in :authority.
                    head.uri.authority().map(|a| ("host", a.as_str())),
                )
                .collect();
            let parts = RequestParts {
                method: head.method.as_str(),
                path: head.uri.path(),
                query: head.uri.query(),
                headers,
                body_sha256_hex: sha256_hex(body),
            };
            signature::verify(&h, &parts, &key.secret, now_secs(), setup.window_secs)?;
            if self.redis.as_ref().is_some_and(|r| r.is_revoked(&h.key_id)) {
                return Err(AuthFailure::Revoked);
            }
            let identity = Identity {
                consumer: key.consumer.clone(),
                credential_id: h.key_id.clone(),
                method: Method::Signature,
                roles: key.roles.clone(),
                scopes: key.scopes.clone(),
                claims: None,
            };
            Ok((
                identity,
                format!("{}:{}", h.key_id, h.nonce),
                2 * setup.window_secs + 1,
            ))
        })())
    }

    /// The body phase of a signed request: verify, then spend the nonce (in process, or the
    /// answer Redis gave in the I/O phase).
    fn verify_signature(
        &self,
        ctx: &mut RequestCtx,
        head: &mut request::Parts,
        body: &Bytes,
    ) -> Verdict {
        let presented = self.presented(head);
        let keys = Self::lock_keys(ctx, &presented);
        let shared = ctx.ext.remove::<SharedNonce>();
        let Some(checked) = self.check_signature(head, body) else {
            return Verdict::Continue;
        };
        // `Err(None)`: the shared nonce store is down and the config says refuse.
        let result = checked.map_err(Some).and_then(|(id, nonce, ttl)| {
            // Only a correctly signed request may spend its nonce.
            let fresh = match shared {
                Some(SharedNonce::Spent(fresh)) => fresh,
                Some(SharedNonce::StoreDown) => match self.nonce_fallback {
                    StoreFallback::Local => {
                        ctx.findings.push(Finding {
                            check: "identity",
                            kind: "shared-store-unreachable".into(),
                            location: "nonce".into(),
                            action: "local",
                            ..Finding::default()
                        });
                        self.services.spend_nonce(&nonce, ttl)
                    }
                    StoreFallback::Refuse => return Err(None),
                },
                None => self.services.spend_nonce(&nonce, ttl),
            };
            if fresh {
                Ok(id)
            } else {
                Err(Some(AuthFailure::Replay))
            }
        });
        match result {
            Ok(id) => self.succeed(ctx, head, &keys, id),
            Err(Some(f)) => self.fail(ctx, &keys, f),
            Err(None) => {
                ctx.auth_pending = false;
                Verdict::Reject(Rejection::new(
                    ProblemKind::Overloaded,
                    "nonce-store-unavailable",
                ))
            }
        }
    }
}

/// What Redis said about a signed request's nonce, when nonces are shared.
#[derive(Clone, Copy)]
enum SharedNonce {
    Spent(bool),
    StoreDown,
}

impl Check for IdentityCheck {
    fn name(&self) -> &'static str {
        "identity"
    }

    fn request_io(&self, ctx: &RequestCtx, head: &request::Parts) -> Option<Pending> {
        let inner = &self.inner;
        inner.jwt.as_ref()?;
        if inner.accepted(ctx, &inner.services.keys()).is_empty() {
            return None;
        }
        match inner.presented(head) {
            Presented::Jwt(t) => inner.jwks_refresh_for(&t),
            _ => None,
        }
    }

    fn request_head(&self, ctx: &mut RequestCtx, head: &mut request::Parts) -> Verdict {
        let inner = &self.inner;
        // Whatever a client claims about who it is means nothing to the upstream.
        // One pass over the names first: clients almost never send these, and removing by name
        // hashes each of the five.
        if head
            .headers
            .keys()
            .any(|k| k.as_str().starts_with("x-warden-"))
        {
            for name in UPSTREAM_HEADERS {
                head.headers.remove(name);
            }
        }
        let keys_now = inner.services.keys();
        let accepted = inner.accepted(ctx, &keys_now);
        if accepted.is_empty() {
            return Verdict::Continue;
        }
        let presented = inner.presented(head);
        let lock_keys = Inner::lock_keys(ctx, &presented);
        let Some(method) = presented.method() else {
            return inner.fail(ctx, &lock_keys, AuthFailure::Missing);
        };
        if !accepted.contains(&method) {
            return inner.fail(ctx, &lock_keys, AuthFailure::MethodNotAccepted);
        }
        if inner.services.locked(&lock_keys).is_some() {
            return inner.fail(ctx, &lock_keys, AuthFailure::LockedOut);
        }
        let result = match &presented {
            Presented::ApiKey(t) => keys_now.verify(t, now_secs()),
            Presented::Jwt(t) => inner.verify_jwt(t),
            Presented::Bearer(t) => match inner.services.issued_to(t) {
                Some(consumer) => Ok(Identity {
                    consumer,
                    credential_id: format!("sha256:{}", &sha256_hex(t.as_bytes())[..16]),
                    method: Method::IssuedToken,
                    roles: Vec::new(),
                    scopes: Vec::new(),
                    claims: None,
                }),
                None => Err(AuthFailure::NotIssued),
            },
            Presented::Signature(v) => {
                // Checked in full once the body is read; refuse the obviously bad now.
                match signature::parse_header(v) {
                    Err(f) => Err(f),
                    Ok(_) => {
                        ctx.auth_pending = true;
                        return Verdict::Continue;
                    }
                }
            }
            Presented::None | Presented::Foreign => Err(AuthFailure::Missing),
        };
        // Revoked on another replica and shared through Redis (the local store may lag).
        let result = result.and_then(|id| match &inner.redis {
            Some(r) if r.is_revoked(&id.credential_id) => Err(AuthFailure::Revoked),
            _ => Ok(id),
        });
        match result {
            Ok(id) => inner.succeed(ctx, head, &lock_keys, id),
            Err(f) => inner.fail(ctx, &lock_keys, f),
        }
    }

    fn needs_body(&self, ctx: &RequestCtx, _head: &request::Parts) -> bool {
        ctx.auth_pending
    }

    /// With Redis, a correctly signed request's nonce is spent there, so a replay to another
    /// replica is caught too.
    fn request_body_io(
        &self,
        ctx: &RequestCtx,
        head: &request::Parts,
        body: &Bytes,
    ) -> Option<Pending> {
        if !ctx.auth_pending {
            return None;
        }
        let redis = self.inner.redis.clone()?;
        let Ok((_, nonce, ttl)) = self.inner.check_signature(head, body)? else {
            return None;
        };
        Some(Box::pin(async move {
            let spent = match redis.spend_nonce(&nonce, ttl).await {
                Ok(fresh) => SharedNonce::Spent(fresh),
                Err(_) => SharedNonce::StoreDown,
            };
            Some(Box::new(move |ctx: &mut RequestCtx| {
                ctx.ext.insert(spent);
            }) as crate::pipeline::Apply)
        }))
    }

    fn request_body(
        &self,
        ctx: &mut RequestCtx,
        head: &mut request::Parts,
        body: &Bytes,
    ) -> Verdict {
        if !ctx.auth_pending {
            return Verdict::Continue;
        }
        self.inner.verify_signature(ctx, head, body)
    }

    fn outgoing(&self, _ctx: &RequestCtx, head: &mut response::Parts) {
        if head.status == http::StatusCode::UNAUTHORIZED {
            let mut v = String::from("Bearer realm=\"warden\"");
            if self.inner.signatures.is_some() {
                v.push_str(", WARDEN-HMAC-SHA256 realm=\"warden\"");
            }
            if let Ok(v) = HeaderValue::from_str(&v) {
                head.headers.insert(header::WWW_AUTHENTICATE, v);
            }
        }
    }
}
