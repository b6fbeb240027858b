//! Authentication decisions: who is calling, proven by what. Each credential type is one file;
//! all of them return an [`Identity`] or an [`AuthFailure`] whose cause is recorded but never told
//! to the client (every failure looks the same from outside, so answers do not reveal which keys or
//! users exist).

pub mod api_key;
pub mod jwt;
pub mod keygen;
pub mod lockout;
pub mod signature;
pub mod weak_secrets;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub consumer: String,
    /// Key id, token `jti` (or a digest of the token when it has none), signing key id: which
    /// credential was used, never the secret.
    pub credential_id: String,
    pub method: Method,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    /// A token's claims, for object-level rules (`caller.claims.accounts`); `None` for other
    /// credentials.
    pub claims: Option<std::sync::Arc<serde_json::Value>>,
}

/// The kinds of credentials, as named in config (`auth: [api_key, jwt]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    ApiKey,
    Jwt,
    Signature,
    /// A bearer token the upstream's own login issued through Warden (token provenance).
    IssuedToken,
}

impl Method {
    pub const ALL: [Method; 4] = [
        Method::ApiKey,
        Method::Jwt,
        Method::Signature,
        Method::IssuedToken,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Method::ApiKey => "api_key",
            Method::Jwt => "jwt",
            Method::Signature => "signature",
            Method::IssuedToken => "issued_token",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.id() == s)
    }
}

/// Why a credential was refused. Recorded in the audit trail and metrics; the client only ever
/// sees a generic 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no credential")]
    Missing,
    #[error("credential malformed")]
    Malformed,
    #[error("unknown key")]
    UnknownKey,
    #[error("wrong secret")]
    BadSecret,
    #[error("key revoked")]
    Revoked,
    #[error("credential expired")]
    Expired,
    #[error("credential not yet valid")]
    NotYetValid,
    #[error("signature does not verify")]
    BadSignature,
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    #[error("issuer not trusted")]
    UntrustedIssuer,
    #[error("audience not accepted")]
    WrongAudience,
    #[error("required claim missing")]
    MissingClaim,
    #[error("timestamp outside the window")]
    StaleTimestamp,
    #[error("nonce already used")]
    Replay,
    #[error("too many failures: locked out")]
    LockedOut,
    #[error("token was never issued through the gateway")]
    NotIssued,
    #[error("credential type not accepted on this route")]
    MethodNotAccepted,
}

impl AuthFailure {
    /// Stable code for the audit trail and metrics.
    pub fn code(self) -> &'static str {
        match self {
            AuthFailure::Missing => "credential-missing",
            AuthFailure::Malformed => "credential-malformed",
            AuthFailure::UnknownKey => "unknown-key",
            AuthFailure::BadSecret => "bad-secret",
            AuthFailure::Revoked => "revoked",
            AuthFailure::Expired => "expired",
            AuthFailure::NotYetValid => "not-yet-valid",
            AuthFailure::BadSignature => "bad-signature",
            AuthFailure::AlgorithmNotAllowed => "algorithm-not-allowed",
            AuthFailure::UntrustedIssuer => "untrusted-issuer",
            AuthFailure::WrongAudience => "wrong-audience",
            AuthFailure::MissingClaim => "missing-claim",
            AuthFailure::StaleTimestamp => "stale-timestamp",
            AuthFailure::Replay => "replay",
            AuthFailure::LockedOut => "locked-out",
            AuthFailure::NotIssued => "not-issued",
            AuthFailure::MethodNotAccepted => "method-not-accepted",
        }
    }

    /// Whether this failure counts toward lockout: guessing (wrong keys, secrets, signatures) does;
    /// a missing credential or a lockout itself does not.
    pub fn counts(self) -> bool {
        !matches!(
            self,
            AuthFailure::Missing | AuthFailure::LockedOut | AuthFailure::MethodNotAccepted
        )
    }
}

/// Hex of SHA-256, for ids derived from secrets (never reversible to them).
pub fn sha256_hex(data: &[u8]) -> String {
    crate::hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}
