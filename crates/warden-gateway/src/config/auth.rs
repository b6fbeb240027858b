//! Config for authentication: JWT issuers, signed-request partners, consumers, lockout, the
//! upstream's own login operations and token provenance. API keys live in the embedded store
//! (`warden keys`), not here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use warden_policy::auth::weak_secrets;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    pub api_keys: ApiKeys,
    /// Roles and scopes by consumer name, added to whatever the credential itself carries.
    pub consumers: BTreeMap<String, ConsumerConfig>,
    pub jwt: Vec<JwtIssuer>,
    pub signatures: Option<Signatures>,
    pub lockout: LockoutConfig,
    /// The upstream's own login and password-reset operations.
    pub login: Vec<LoginOperation>,
    pub issued_tokens: IssuedTokens,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiKeys {
    /// Headers a key may come in, besides `Authorization: Bearer wdn_...`.
    pub headers: Vec<String>,
}

impl Default for ApiKeys {
    fn default() -> Self {
        ApiKeys {
            headers: vec!["x-api-key".into()],
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerConfig {
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    /// Facts about the consumer that object-level rules read as `caller.<name>` (`user_id: 7`,
    /// `accounts: [a1, a2]`).
    pub attributes: BTreeMap<String, serde_json::Value>,
}

/// One trusted token issuer.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtIssuer {
    /// The `iss` claim it puts in its tokens.
    pub issuer: String,
    /// `aud` values accepted; a token must carry one of them.
    pub audiences: Vec<String>,
    /// The only algorithms accepted from this issuer. `none` is never accepted.
    pub algorithms: Vec<String>,
    /// JWKS over HTTPS, fetched lazily, refreshed every `jwks_refresh` and when an unknown `kid`
    /// shows up (at most once per `jwks_min_refresh`).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Extra CA certificate (PEM) for the JWKS server, besides the public web roots.
    #[serde(default)]
    pub jwks_ca_file: Option<PathBuf>,
    /// JWKS from a file, re-read on refresh.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Public keys in PEM files.
    #[serde(default)]
    pub keys: Vec<PemKey>,
    /// The HMAC secret for HS256/384/512.
    #[serde(default)]
    pub secret: Option<KeySourceRaw>,
    /// Accept an HMAC secret that is short or well known. Only for testing against such issuers.
    #[serde(default)]
    pub allow_weak_secret: bool,
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    #[serde(default = "default_jwks_refresh", with = "humantime_serde")]
    pub jwks_refresh: Duration,
    #[serde(default = "default_jwks_min_refresh", with = "humantime_serde")]
    pub jwks_min_refresh: Duration,
    #[serde(default)]
    pub claims: ClaimsConfig,
}

fn default_leeway() -> Duration {
    Duration::from_secs(30)
}
fn default_jwks_refresh() -> Duration {
    Duration::from_secs(600)
}
fn default_jwks_min_refresh() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PemKey {
    #[serde(default)]
    pub kid: Option<String>,
    pub file: PathBuf,
}

/// An HMAC secret's source. Unlike [`KeySource`] (64 hex digits), a JWT or signing secret is taken
/// as the raw bytes of the variable or file, as issuers hand them out.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeySourceRaw {
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl KeySourceRaw {
    pub fn load(&self) -> Result<Vec<u8>, String> {
        match (&self.env, &self.file) {
            (Some(name), None) => std::env::var(name)
                .map(String::into_bytes)
                .map_err(|_| format!("environment variable {name} is not set")),
            (None, Some(path)) => std::fs::read(path)
                .map(|mut b| {
                    while b.last().is_some_and(|c| c.is_ascii_whitespace()) {
                        b.pop();
                    }
                    b
                })
                .map_err(|e| format!("cannot read secret file {}: {e}", path.display())),
            _ => Err("a secret comes from exactly one of `env: NAME` or `file: PATH`".into()),
        }
    }

    fn resolve(&mut self, base: &Path) {
        if let Some(p) = &mut self.file {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimsConfig {
    pub consumer: String,
    pub roles: Option<String>,
    pub scopes: Option<String>,
}

impl Default for ClaimsConfig {
    fn default() -> Self {
        ClaimsConfig {
            consumer: "sub".into(),
            roles: Some("roles".into()),
            scopes: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Signatures {
    /// How far a request's timestamp may be from the gateway's clock, either way.
    #[serde(default = "default_window", with = "humantime_serde")]
    pub window: Duration,
    /// Headers every signature must cover (`host` always is).
    #[serde(default)]
    pub required_headers: Vec<String>,
    pub keys: BTreeMap<String, SigningKey>,
}

fn default_window() -> Duration {
    Duration::from_secs(300)
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SigningKey {
    pub secret: KeySourceRaw,
    pub consumer: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub allow_weak_secret: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    /// Failed authentications, per client IP and per claimed identity, before a lockout.
    pub max_failures: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// The first lockout's length; each further one doubles, up to `max_lock`.
    #[serde(with = "humantime_serde")]
    pub lock: Duration,
    #[serde(with = "humantime_serde")]
    pub max_lock: Duration,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            max_failures: 10,
            window: Duration::from_secs(600),
            lock: Duration::from_secs(900),
            max_lock: Duration::from_secs(86_400),
        }
    }
}

impl LockoutConfig {
    pub fn policy(&self) -> warden_policy::auth::lockout::Policy {
        warden_policy::auth::lockout::Policy {
            max_failures: self.max_failures,
            window_secs: self.window.as_secs() as i64,
            lock_secs: self.lock.as_secs().max(1) as i64,
            max_lock_secs: self.max_lock.as_secs().max(1) as i64,
        }
    }
}

/// An operation of the upstream that checks a password (login, password reset): attempts are
/// limited per claimed username and per IP, and its failure answers are replaced by one uniform
/// answer so they do not tell which usernames exist.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoginOperation {
    pub path: String,
    #[serde(default = "default_post")]
    pub method: String,
    /// The field of the JSON or form body that names the account.
    #[serde(default = "default_username_field")]
    pub username_field: String,
    /// Failed attempts per username before a lockout (then as `auth.lockout`).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Failed attempts per client IP before a lockout: higher, since one office or NAT may hold
    /// many honest users, but still far below what guessing needs.
    #[serde(default = "default_attempts_per_ip")]
    pub max_attempts_per_ip: u32,
    #[serde(default = "default_attempt_window", with = "humantime_serde")]
    pub window: Duration,
    /// Response fields holding the token the login hands out (for `issued_tokens`).
    #[serde(default = "default_token_fields")]
    pub token_fields: Vec<String>,
}

fn default_post() -> String {
    "POST".into()
}
fn default_username_field() -> String {
    "username".into()
}
fn default_attempts() -> u32 {
    5
}
fn default_attempts_per_ip() -> u32 {
    50
}
fn default_attempt_window() -> Duration {
    Duration::from_secs(900)
}
fn default_token_fields() -> Vec<String> {
    ["token", "access_token", "id_token", "refresh_token"]
        .map(String::from)
        .to_vec()
}

/// Token provenance: accept a bearer token (as credential `issued_token`) only if one of the
/// `login` operations handed it out through the gateway, and only until it expires. A token forged
/// with a leaked or guessed signing key was never issued, so it is refused.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IssuedTokens {
    pub enabled: bool,
    /// Lifetime of a recorded token, unless it is a JWT with an earlier `exp`.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
}

impl Default for IssuedTokens {
    fn default() -> Self {
        IssuedTokens {
            enabled: false,
            ttl: Duration::from_secs(3600),
        }
    }
}

/// A route's authentication requirement: `auth: none` (public), or the credential types it accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RouteAuth {
    /// Not said: every configured credential type is accepted and one is required, once any is
    /// configured (or API keys exist in the store).
    #[default]
    Default,
    /// `auth: none`: public, stated explicitly.
    Public,
    Methods(Vec<warden_policy::auth::Method>),
}

impl<'de> Deserialize<'de> for RouteAuth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let names = match Raw::deserialize(d)? {
            Raw::One(s) if s == "none" => return Ok(RouteAuth::Public),
            Raw::One(s) => vec![s],
            Raw::Many(v) => v,
        };
        let known = || {
            warden_policy::auth::Method::ALL
                .iter()
                .map(|m| m.id())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if names.is_empty() {
            return Err(serde::de::Error::custom(
                "an empty list accepts nothing; write `auth: none` for a public route",
            ));
        }
        names
            .iter()
            .map(|n| {
                warden_policy::auth::Method::parse(n).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "unknown credential type `{n}`; known: {}, or `none`",
                        known()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(RouteAuth::Methods)
    }
}

pub fn parse_algorithm(s: &str) -> Result<jsonwebtoken::Algorithm, String> {
    if s.eq_ignore_ascii_case("none") {
        return Err("`none` means unsigned tokens and is never accepted".into());
    }
    s.parse()
        .map_err(|_| format!("unknown algorithm `{s}`; use HS256/384/512, RS256/384/512, PS256/384/512, ES256/384 or EdDSA"))
}

impl Auth {
    pub(super) fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for i in &mut self.jwt {
            if let Some(p) = &mut i.jwks_file {
                fix(p);
            }
            if let Some(p) = &mut i.jwks_ca_file {
                fix(p);
            }
            for k in &mut i.keys {
                fix(&mut k.file);
            }
            if let Some(s) = &mut i.secret {
                s.resolve(base);
            }
        }
        if let Some(sig) = &mut self.signatures {
            for k in sig.keys.values_mut() {
                k.secret.resolve(base);
            }
        }
    }

    /// Cross-field checks and key loading: weak secrets, unusable keys and impossible issuers are
    /// refused here, at load, with the field they are in.
    pub(super) fn validate(&self) -> Option<(String, String)> {
        for (i, iss) in self.jwt.iter().enumerate() {
            let at = |f: &str| format!("auth.jwt[{i}].{f}");
            if iss.issuer.is_empty() {
                return Some((at("issuer"), "must name the `iss` value".into()));
            }
            if iss.audiences.is_empty() {
                return Some((at("audiences"), "list at least one accepted `aud`: a token minted for another API must not work here".into()));
            }
            if iss.algorithms.is_empty() {
                return Some((
                    at("algorithms"),
                    "list the algorithms this issuer signs with".into(),
                ));
            }
            let mut families = Vec::new();
            for a in &iss.algorithms {
                match parse_algorithm(a) {
                    Ok(alg) => families.push(alg.family()),
                    Err(e) => return Some((at("algorithms"), e)),
                }
            }
            let hmac = families.contains(&jsonwebtoken::AlgorithmFamily::Hmac);
            let public = families
                .iter()
                .any(|f| *f != jsonwebtoken::AlgorithmFamily::Hmac);
            if hmac && public {
                return Some((at("algorithms"), "mixes HMAC and public-key algorithms; an issuer uses one kind (mixing them is how algorithm confusion starts)".into()));
            }
            match (&iss.secret, hmac) {
                (Some(_), false) => {
                    return Some((at("secret"), "a secret is only for HS256/384/512".into()))
                }
                (None, true) => {
                    return Some((
                        at("secret"),
                        "HS* algorithms need `secret: {env: NAME}` or `{file: PATH}`".into(),
                    ))
                }
                (Some(s), true) => match s.load() {
                    Err(e) => return Some((at("secret"), e)),
                    Ok(bytes) => {
                        if let Some(why) = weak_secrets::weakness(&bytes) {
                            if !iss.allow_weak_secret {
                                return Some((at("secret"), format!("this HMAC secret is weak: {why}. Tokens signed with it can be forged offline. Use 32+ random bytes (e.g. `openssl rand -base64 48`), or set `allow_weak_secret: true` for a test issuer")));
                            }
                        }
                    }
                },
                (None, false) => {}
            }
            if !hmac && iss.keys.is_empty() && iss.jwks_url.is_none() && iss.jwks_file.is_none() {
                return Some((
                    at("keys"),
                    "a public-key issuer needs `keys`, `jwks_url` or `jwks_file`".into(),
                ));
            }
            if let Some(url) = &iss.jwks_url {
                if !url.starts_with("https://") {
                    return Some((
                        at("jwks_url"),
                        "must be https://: keys fetched over plain HTTP can be swapped in transit"
                            .into(),
                    ));
                }
                if url
                    .parse::<http::Uri>()
                    .ok()
                    .and_then(|u| u.host().map(str::to_owned))
                    .is_none()
                {
                    return Some((at("jwks_url"), format!("`{url}` is not a URL")));
                }
            }
            for (k, key) in iss.keys.iter().enumerate() {
                let pem = match std::fs::read(&key.file) {
                    Ok(p) => p,
                    Err(e) => {
                        return Some((
                            format!("auth.jwt[{i}].keys[{k}].file"),
                            format!("cannot read {}: {e}", key.file.display()),
                        ))
                    }
                };
                let mut ring = warden_policy::auth::jwt::KeyRing::default();
                let family = families[0];
                if let Err(e) = ring.add_pem(key.kid.as_deref(), &pem, family) {
                    return Some((
                        format!("auth.jwt[{i}].keys[{k}].file"),
                        format!("{}: {e}", key.file.display()),
                    ));
                }
            }
            if let Some(f) = &iss.jwks_file {
                match std::fs::read_to_string(f) {
                    Err(e) => {
                        return Some((at("jwks_file"), format!("cannot read {}: {e}", f.display())))
                    }
                    Ok(text) => {
                        if let Err(e) = warden_policy::auth::jwt::KeyRing::from_jwks(&text) {
                            return Some((at("jwks_file"), format!("{}: {e}", f.display())));
                        }
                    }
                }
            }
            if self.jwt[..i].iter().any(|o| o.issuer == iss.issuer) {
                return Some((
                    at("issuer"),
                    format!("issuer `{}` is listed twice", iss.issuer),
                ));
            }
        }
        if let Some(sig) = &self.signatures {
            if sig.window.is_zero() {
                return Some((
                    "auth.signatures.window".into(),
                    "must be greater than zero".into(),
                ));
            }
            for (id, k) in &sig.keys {
                let at = format!("auth.signatures.keys.{id}.secret");
                match k.secret.load() {
                    Err(e) => return Some((at, e)),
                    Ok(bytes) => {
                        if let Some(why) = weak_secrets::weakness(&bytes) {
                            if !k.allow_weak_secret {
                                return Some((at, format!("this signing secret is weak: {why}")));
                            }
                        }
                    }
                }
            }
        }
        for (i, op) in self.login.iter().enumerate() {
            if !op.path.starts_with('/') {
                return Some((
                    format!("auth.login[{i}].path"),
                    "must start with `/`".into(),
                ));
            }
            if op.method.parse::<http::Method>().is_err() {
                return Some((
                    format!("auth.login[{i}].method"),
                    format!("`{}` is not an HTTP method", op.method),
                ));
            }
            if op.max_attempts == 0 || op.max_attempts_per_ip == 0 {
                return Some((
                    format!("auth.login[{i}].max_attempts"),
                    "must be at least 1".into(),
                ));
            }
        }
        if self.issued_tokens.enabled && self.login.is_empty() {
            return Some(("auth.issued_tokens".into(), "token provenance records what `login` operations hand out: declare at least one in `auth.login`".into()));
        }
        if self.lockout.max_failures == 0 {
            return Some((
                "auth.lockout.max_failures".into(),
                "must be at least 1".into(),
            ));
        }
        None
    }
}
