//! Config for what the gateway does to responses: personal-data protection, security headers, CORS
//! and error scrubbing. All on by default; a config turns a part off explicitly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use warden_policy::pii::{self, DataClass, FieldPattern};

use super::ByteSize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DataProtection {
    pub enabled: bool,
    /// Responses up to this size are parsed and rewritten; larger ones follow `oversized`.
    pub max_body_bytes: ByteSize,
    pub oversized: Oversized,
    /// Bodies that are not JSON: text is scanned as text by default; binary always passes.
    pub non_json: NonJson,
    /// When protection fails on a response (a key is missing, JSON too deep): `block` answers 502
    /// rather than send what could not be checked.
    pub on_error: OnError,
    /// Action for high-confidence findings of verified classes (card, cn_id, iban, private_key,
    /// api_key, secret) that no rule covers.
    pub default_verified: ActionName,
    /// Action for other findings of medium or high confidence that no rule covers.
    pub default_other: ActionName,
    /// Characters left readable by `mask`.
    pub keep_last: usize,
    /// Scan `X-*` response headers as well as bodies.
    pub scan_headers: bool,
    pub keys: PiiKeys,
    pub rules: Vec<PiiRule>,
}

impl Default for DataProtection {
    fn default() -> Self {
        DataProtection {
            enabled: true,
            max_body_bytes: ByteSize(1 << 20),
            oversized: Oversized::Pass,
            non_json: NonJson::ScanText,
            on_error: OnError::Block,
            default_verified: ActionName::Mask,
            default_other: ActionName::Alert,
            keep_last: 4,
            scan_headers: true,
            keys: PiiKeys::default(),
            rules: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Oversized {
    Pass,
    Block,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NonJson {
    Pass,
    Block,
    ScanText,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    Block,
    Pass,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ActionName {
    Mask,
    Hash,
    Drop,
    Encrypt,
    Allow,
    Alert,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PiiKeys {
    /// Key for the `hash` action (HMAC-SHA256), 32 bytes written as 64 hex digits.
    #[serde(default)]
    pub hash: Option<KeySource>,
    #[serde(default)]
    pub encryption: Option<EncryptionKeys>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EncryptionKeys {
    /// The key id new values are encrypted under.
    pub active: String,
    /// Every key id that may still appear in stored values (for `warden pii decrypt`).
    pub keys: BTreeMap<String, KeySource>,
}

/// Where a secret key comes from, `{env: NAME}` or `{file: PATH}`: never the config text itself,
/// so configs can be shared and logged.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(try_from = "RawKeySource")]
pub enum KeySource {
    /// An environment variable holding 64 hex digits.
    Env(String),
    /// A file holding 64 hex digits (whitespace ignored).
    File(PathBuf),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeySource {
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    file: Option<PathBuf>,
}

impl TryFrom<RawKeySource> for KeySource {
    type Error = String;
    fn try_from(raw: RawKeySource) -> Result<Self, String> {
        match (raw.env, raw.file) {
            (Some(e), None) => Ok(KeySource::Env(e)),
            (None, Some(f)) => Ok(KeySource::File(f)),
            _ => Err("a key comes from exactly one of `env: NAME` or `file: PATH`".into()),
        }
    }
}

impl KeySource {
    /// Reads the 32-byte key. The message names the source, never the content.
    pub fn load(&self) -> Result<Vec<u8>, String> {
        let (text, from) = match self {
            KeySource::Env(name) => (
                std::env::var(name)
                    .map_err(|_| format!("environment variable {name} is not set"))?,
                format!("environment variable {name}"),
            ),
            KeySource::File(path) => (
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?,
                format!("key file {}", path.display()),
            ),
        };
        let hex: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = warden_policy::hex::decode(&hex)
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                format!(
                "{from} must hold exactly 64 hex digits (32 bytes); `warden pii keygen` makes one"
            )
            })?;
        Ok(bytes)
    }

    pub(super) fn resolve(&mut self, base: &Path) {
        if let KeySource::File(p) = self {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, try_from = "RawPiiRule")]
pub struct PiiRule {
    pub classes: Vec<DataClass>,
    pub fields: Vec<FieldPattern>,
    pub routes: Vec<String>,
    pub action: ActionName,
    pub keep_last: Option<usize>,
    pub allow_scopes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPiiRule {
    #[serde(default)]
    classes: Vec<String>,
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    routes: Vec<String>,
    action: ActionName,
    #[serde(default)]
    keep_last: Option<usize>,
    #[serde(default)]
    allow_scopes: Vec<String>,
}

impl TryFrom<RawPiiRule> for PiiRule {
    type Error = String;
    fn try_from(raw: RawPiiRule) -> Result<Self, String> {
        let classes = raw
            .classes
            .iter()
            .map(|c| {
                DataClass::parse(c).ok_or_else(|| {
                    let known: Vec<_> = DataClass::ALL.iter().map(|c| c.id()).collect();
                    format!("unknown data class `{c}`; known: {}", known.join(", "))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let fields = raw
            .fields
            .iter()
            .map(|f| FieldPattern::parse(f))
            .collect::<Result<Vec<_>, _>>()?;
        if classes.is_empty() && fields.is_empty() {
            return Err("a rule needs `classes`, `fields` or both; a rule for everything would act on every guess".into());
        }
        if raw.action == ActionName::Allow
            && raw.allow_scopes.is_empty()
            && raw.routes.is_empty()
            && fields.is_empty()
        {
            // Legitimate (turn a class off), but usually a mistake: say how to be explicit.
            tracing::debug!("a data_protection rule allows {:?} everywhere", raw.classes);
        }
        Ok(PiiRule {
            classes,
            fields,
            routes: raw.routes,
            action: raw.action,
            keep_last: raw.keep_last,
            allow_scopes: raw.allow_scopes,
        })
    }
}

impl DataProtection {
    /// Cross-field checks: actions that need keys have them, and the keys load.
    pub(super) fn validate(&self) -> Option<(String, String)> {
        let uses = |a: ActionName| {
            self.default_verified == a
                || self.default_other == a
                || self.rules.iter().any(|r| r.action == a)
        };
        if uses(ActionName::Hash) {
            match &self.keys.hash {
                None => return Some((
                    "data_protection.keys.hash".into(),
                    "the `hash` action needs a key: `keys: {hash: {env: NAME}}` or `{file: PATH}`"
                        .into(),
                )),
                Some(k) => {
                    if let Err(e) = k.load() {
                        return Some(("data_protection.keys.hash".into(), e));
                    }
                }
            }
        }
        if let Some(enc) = &self.keys.encryption {
            if !enc.keys.contains_key(&enc.active) {
                return Some((
                    "data_protection.keys.encryption.active".into(),
                    format!("active key `{}` is not among `keys`", enc.active),
                ));
            }
            for (kid, k) in &enc.keys {
                if kid.is_empty()
                    || !kid
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Some((
                        format!("data_protection.keys.encryption.keys.{kid}"),
                        "key ids may only hold letters, digits, `-` and `_`".into(),
                    ));
                }
                if let Err(e) = k.load() {
                    return Some((format!("data_protection.keys.encryption.keys.{kid}"), e));
                }
            }
        } else if uses(ActionName::Encrypt) {
            return Some((
                "data_protection.keys.encryption".into(),
                "the `encrypt` action needs `keys: {encryption: {active: ID, keys: {ID: {file: PATH}}}}`".into(),
            ));
        }
        if self.keep_last > 8 {
            return Some((
                "data_protection.keep_last".into(),
                "at most 8 characters may stay readable".into(),
            ));
        }
        None
    }

    pub(super) fn resolve_paths(&mut self, base: &Path) {
        if let Some(k) = &mut self.keys.hash {
            k.resolve(base);
        }
        if let Some(enc) = &mut self.keys.encryption {
            for k in enc.keys.values_mut() {
                k.resolve(base);
            }
        }
    }

    /// The compiled policy. Keys were checked at load; one that has since become unreadable is
    /// left out, and the actions that need it fail (closed, by `on_error`).
    pub fn policy(&self) -> pii::Policy {
        let action = |a: ActionName, keep: Option<usize>| match a {
            ActionName::Mask => pii::Action::Mask {
                keep_last: keep.unwrap_or(self.keep_last),
            },
            ActionName::Hash => pii::Action::Hash,
            ActionName::Drop => pii::Action::Drop,
            ActionName::Encrypt => pii::Action::Encrypt,
            ActionName::Allow => pii::Action::Allow,
            ActionName::Alert => pii::Action::Alert,
        };
        let keys = pii::Keys {
            hash: self.keys.hash.as_ref().and_then(|k| k.load().ok()),
            encryption: self.keys.encryption.as_ref().and_then(|e| {
                let key = e.keys.get(&e.active)?.load().ok()?;
                Some((e.active.clone(), key))
            }),
        };
        pii::Policy {
            rules: self
                .rules
                .iter()
                .map(|r| pii::Rule {
                    classes: r.classes.clone(),
                    fields: r.fields.clone(),
                    routes: r.routes.clone(),
                    action: action(r.action, r.keep_last),
                    allow_scopes: r.allow_scopes.clone(),
                })
                .collect(),
            default_verified: action(self.default_verified, None),
            default_other: action(self.default_other, None),
            keys,
            ..pii::Policy::default()
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityHeaders {
    pub enabled: bool,
    /// `Strict-Transport-Security` on responses sent over TLS.
    pub hsts: Hsts,
    /// Set when the upstream sent none. The default suits a JSON API: nothing may load or frame it.
    pub content_security_policy: Option<String>,
    pub frame_options: Option<String>,
    pub referrer_policy: Option<String>,
    /// `Cache-Control: no-store`: `auto` on responses to requests with credentials, on routes marked
    /// `sensitive`, and on responses where personal data was found; `always`; or `never`.
    pub no_store: NoStore,
    /// Response headers that only advertise the upstream's software.
    pub remove: Vec<String>,
}

impl Default for SecurityHeaders {
    fn default() -> Self {
        SecurityHeaders {
            enabled: true,
            hsts: Hsts::default(),
            content_security_policy: Some("default-src 'none'; frame-ancestors 'none'".into()),
            frame_options: Some("DENY".into()),
            referrer_policy: Some("no-referrer".into()),
            no_store: NoStore::Auto,
            remove: vec![
                "x-powered-by".into(),
                "x-aspnet-version".into(),
                "x-aspnetmvc-version".into(),
            ],
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Hsts {
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    pub include_subdomains: bool,
    pub preload: bool,
}

impl Default for Hsts {
    fn default() -> Self {
        Hsts {
            enabled: true,
            max_age: Duration::from_secs(365 * 24 * 3600),
            include_subdomains: true,
            preload: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NoStore {
    Auto,
    Always,
    Never,
}

/// Cross-origin policy. With a `cors` section the gateway answers preflights itself and is the
/// only source of `Access-Control-*` headers; without one, the upstream's pass, except the
/// combination browsers must never see: credentials with a wildcard or `null` origin.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, try_from = "RawCors")]
pub struct Cors {
    /// Exact origins (`https://app.example.com`), or `*` for any (then without credentials).
    pub allowed_origins: Vec<String>,
    pub allow_credentials: bool,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCors {
    allowed_origins: Vec<String>,
    #[serde(default)]
    allow_credentials: bool,
    #[serde(default = "default_cors_methods")]
    allowed_methods: Vec<String>,
    #[serde(default = "default_cors_headers")]
    allowed_headers: Vec<String>,
    #[serde(default)]
    expose_headers: Vec<String>,
    #[serde(default = "default_cors_max_age", with = "humantime_serde")]
    max_age: Duration,
}

fn default_cors_methods() -> Vec<String> {
    ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        .map(String::from)
        .to_vec()
}
fn default_cors_headers() -> Vec<String> {
    ["authorization", "content-type", "x-api-key", "x-request-id"]
        .map(String::from)
        .to_vec()
}
fn default_cors_max_age() -> Duration {
    Duration::from_secs(600)
}

impl TryFrom<RawCors> for Cors {
    type Error = String;
    fn try_from(raw: RawCors) -> Result<Self, String> {
        let wildcard = raw.allowed_origins.iter().any(|o| o == "*");
        if wildcard && raw.allow_credentials {
            return Err("`allowed_origins: [\"*\"]` with `allow_credentials: true` would let any site read responses with the user's cookies or tokens; list the origins instead".into());
        }
        for o in &raw.allowed_origins {
            if o == "*" {
                continue;
            }
            if o == "null" {
                return Err("the `null` origin (sandboxed frames, file: pages) cannot be trusted; remove it".into());
            }
            let ok = o.parse::<http::Uri>().ok().is_some_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https"))
                    && u.host().is_some()
                    && u.path() == "/"
                    && !o.ends_with('/')
            });
            if !ok {
                return Err(format!(
                    "origin `{o}` must be a scheme and host with an optional port, like `https://app.example.com`"
                ));
            }
        }
        for m in &raw.allowed_methods {
            if m.parse::<http::Method>().is_err() {
                return Err(format!("`{m}` is not an HTTP method"));
            }
        }
        for h in raw.allowed_headers.iter().chain(&raw.expose_headers) {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(format!("`{h}` is not a header name"));
            }
        }
        Ok(Cors {
            allowed_origins: raw
                .allowed_origins
                .iter()
                .map(|o| o.to_ascii_lowercase())
                .collect(),
            allow_credentials: raw.allow_credentials,
            allowed_methods: raw
                .allowed_methods
                .iter()
                .map(|m| m.to_ascii_uppercase())
                .collect(),
            allowed_headers: raw
                .allowed_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            expose_headers: raw.expose_headers,
            max_age: raw.max_age,
        })
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ErrorScrubbing {
    pub mode: ScrubMode,
    /// Upstream 5xx bodies up to this size are inspected; larger ones are replaced outright.
    pub max_body_bytes: ByteSize,
}

impl Default for ErrorScrubbing {
    fn default() -> Self {
        ErrorScrubbing {
            mode: ScrubMode::Leaky,
            max_body_bytes: ByteSize(256 * 1024),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ScrubMode {
    /// Replace 5xx answers that carry stack traces, SQL errors, file paths or debug pages.
    Leaky,
    /// Replace every upstream 5xx body that is not already `application/problem+json`.
    All5xx,
    Off,
}
