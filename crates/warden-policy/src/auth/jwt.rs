//! JWT bearer tokens (RFC 7519), verified with `jsonwebtoken` on the aws-lc-rs backend.
//!
//! The rules that matter, each tested: the token's `iss` picks the issuer, and only that issuer's
//! keys and algorithms are tried; `alg: none` never verifies; a key is only used with algorithms of
//! its own family, so an RSA public key can never be taken as an HMAC secret (algorithm confusion);
//! keys embedded in the header (`jwk`, `jku`, `x5u`, `x5c`) are ignored; `exp` is required, `nbf`,
//! `iss` and `aud` are checked, with a configurable leeway.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::Value;

use super::{AuthFailure, Identity, Method};

/// Which claims say who the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMap {
    /// The consumer name (default `sub`).
    pub consumer: String,
    /// Roles: an array of strings, or one space-separated string.
    pub roles: Option<String>,
    /// Scopes: `scope` (space-separated, RFC 8693) or `scp` (array) by default.
    pub scopes: Option<String>,
}

impl Default for ClaimMap {
    fn default() -> Self {
        ClaimMap {
            consumer: "sub".into(),
            roles: Some("roles".into()),
            scopes: None,
        }
    }
}

/// One trusted issuer.
#[derive(Clone)]
pub struct Issuer {
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one.
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub leeway_secs: u64,
    pub claims: ClaimMap,
    pub keys: KeyRing,
}

/// An issuer's verification keys.
#[derive(Clone, Default)]
pub struct KeyRing {
    by_kid: HashMap<String, Vec<Key>>,
    /// Keys without an id: tried for tokens without `kid`.
    anonymous: Vec<Key>,
}

#[derive(Clone)]
struct Key {
    key: DecodingKey,
    family: AlgorithmFamily,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM public key of the RSA, EC or Ed25519 kind ({0})")]
    Pem(String),
    #[error("not a JWKS document: {0}")]
    Jwks(String),
    #[error("the JWKS holds no usable public key")]
    EmptyJwks,
}

impl KeyRing {
    pub fn is_empty(&self) -> bool {
        self.by_kid.is_empty() && self.anonymous.is_empty()
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// A public key from PEM, for the algorithms of `family`.
    pub fn add_pem(
        &mut self,
        kid: Option<&str>,
        pem: &[u8],
        family: AlgorithmFamily,
    ) -> Result<(), KeyError> {
        let key = match family {
            AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
            AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
            AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem),
            AlgorithmFamily::Hmac => {
                return Err(KeyError::Pem("HMAC keys are secrets, not PEM".into()))
            }
        }
        .map_err(|e| KeyError::Pem(e.to_string()))?;
        self.add(kid, Key { key, family });
        Ok(())
    }

    /// An HMAC secret (checked for weakness by the caller, at config load).
    pub fn add_secret(&mut self, kid: Option<&str>, secret: &[u8]) {
        self.add(
            kid,
            Key {
                key: DecodingKey::from_secret(secret),
                family: AlgorithmFamily::Hmac,
            },
        );
    }

    /// Every public key of a JWKS document. Symmetric (`oct`) keys are skipped: a key set fetched
    /// from a URL is for public keys.
    pub fn from_jwks(text: &str) -> Result<KeyRing, KeyError> {
        let set: JwkSet = serde_json::from_str(text).map_err(|e| KeyError::Jwks(e.to_string()))?;
        let mut ring = KeyRing::default();
        for jwk in &set.keys {
            let family = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
                AlgorithmParameters::EllipticCurve(_) => AlgorithmFamily::Ec,
                AlgorithmParameters::OctetKeyPair(_) => AlgorithmFamily::Ed,
                _ => continue,
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            ring.add(jwk.common.key_id.as_deref(), Key { key, family });
        }
        if ring.is_empty() {
            return Err(KeyError::EmptyJwks);
        }
        Ok(ring)
    }

    fn add(&mut self, kid: Option<&str>, key: Key) {
        match kid {
            Some(k) => self.by_kid.entry(k.to_string()).or_default().push(key),
            None => self.anonymous.push(key),
        }
    }

    /// Keys merged from another ring (static keys plus fetched JWKS).
    pub fn merged(&self, other: &KeyRing) -> KeyRing {
        let mut out = self.clone();
        for (kid, keys) in &other.by_kid {
            out.by_kid
                .entry(kid.clone())
                .or_default()
                .extend(keys.iter().cloned());
        }
        out.anonymous.extend(other.anonymous.iter().cloned());
        out
    }
}

/// What the verifier learned about a token it could not verify yet: its issuer uses a key id it
/// does not know (time to refresh that issuer's JWKS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Verified(Identity),
    Failed(AuthFailure),
    UnknownKid { issuer: usize, kid: String },
}

/// The header fields we read ourselves, before any library does: `alg: none` is refused by name.
fn header(token: &str) -> Result<(String, Option<String>), AuthFailure> {
    let first = token.split('.').next().ok_or(AuthFailure::Malformed)?;
    let raw = URL_SAFE_NO_PAD
        .decode(first.trim_end_matches('='))
        .map_err(|_| AuthFailure::Malformed)?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| AuthFailure::Malformed)?;
    let alg = v["alg"].as_str().ok_or(AuthFailure::Malformed)?.to_string();
    let kid = v["kid"].as_str().map(str::to_owned);
    Ok((alg, kid))
}

fn claims_unverified(token: &str) -> Result<Value, AuthFailure> {
    let mut parts = token.split('.');
    let (_, payload, sig) = (parts.next(), parts.next(), parts.next());
    if sig.is_none() || parts.next().is_some() {
        return Err(AuthFailure::Malformed);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(payload.ok_or(AuthFailure::Malformed)?.trim_end_matches('='))
        .map_err(|_| AuthFailure::Malformed)?;
    serde_json::from_slice(&raw).map_err(|_| AuthFailure::Malformed)
}

/// Whether a bearer token is shaped like a JWT (three base64url parts, a JSON header).
pub fn looks_like(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("eyJ")
}

pub struct Verifier {
    pub issuers: Vec<Issuer>,
}

/// The `iss` and `kid` a token claims, read without verifying anything: enough to pick an issuer
/// and to see whether its key set needs a refresh.
pub fn claimed_issuer_and_kid(token: &str) -> Option<(String, Option<String>)> {
    let (_, kid) = header(token).ok()?;
    let iss = claims_unverified(token).ok()?["iss"].as_str()?.to_string();
    Some((iss, kid))
}

/// A token's `exp`, read without verifying it: for remembering an issued token no longer than it
/// lives.
pub fn unverified_exp(token: &str) -> Option<i64> {
    claims_unverified(token).ok()?["exp"].as_i64()
}

impl Verifier {
    pub fn verify(&self, token: &str) -> Outcome {
        self.verify_with(token, &[])
    }

    /// Like `verify`, with extra keys per issuer (by index): the issuers' fetched JWKS.
    pub fn verify_with(&self, token: &str, extra: &[Option<std::sync::Arc<KeyRing>>]) -> Outcome {
        match self.try_verify(token, extra) {
            Ok(o) => o,
            Err(f) => Outcome::Failed(f),
        }
    }

    /// The index of the issuer named `iss`.
    pub fn issuer_index(&self, iss: &str) -> Option<usize> {
        self.issuers.iter().position(|i| i.issuer == iss)
    }

    fn try_verify(
        &self,
        token: &str,
        extra: &[Option<std::sync::Arc<KeyRing>>],
    ) -> Result<Outcome, AuthFailure> {
        let (alg_name, kid) = header(token)?;
        if alg_name.eq_ignore_ascii_case("none") {
            return Err(AuthFailure::AlgorithmNotAllowed);
        }
        let alg: Algorithm = alg_name
            .parse()
            .map_err(|_| AuthFailure::AlgorithmNotAllowed)?;
        let claims = claims_unverified(token)?;
        let iss = claims["iss"].as_str().ok_or(AuthFailure::UntrustedIssuer)?;
        let (index, issuer) = self
            .issuers
            .iter()
            .enumerate()
            .find(|(_, i)| i.issuer == iss)
            .ok_or(AuthFailure::UntrustedIssuer)?;
        if !issuer.algorithms.contains(&alg) {
            return Err(AuthFailure::AlgorithmNotAllowed);
        }
        let fetched = extra.get(index).and_then(Option::as_ref);
        let rings = std::iter::once(&issuer.keys).chain(fetched.map(|r| r.as_ref()));
        let candidates: Vec<&Key> = match &kid {
            Some(k) => {
                let by_kid: Vec<&Key> = rings
                    .clone()
                    .flat_map(|r| r.by_kid.get(k).into_iter().flatten())
                    .collect();
                if by_kid.is_empty() {
                    let anonymous: Vec<&Key> = rings.flat_map(|r| r.anonymous.iter()).collect();
                    if anonymous.is_empty() {
                        return Ok(Outcome::UnknownKid {
                            issuer: index,
                            kid: k.clone(),
                        });
                    }
                    anonymous
                } else {
                    by_kid
                }
            }
            None => rings.flat_map(|r| r.anonymous.iter()).collect(),
        };
        // Only keys of the algorithm's own family: the key decides how a signature is checked,
        // never the token.
        let mut last = AuthFailure::AlgorithmNotAllowed;
        for key in candidates.into_iter().filter(|k| k.family == alg.family()) {
            let mut v = Validation::new(alg);
            v.leeway = issuer.leeway_secs;
            v.validate_nbf = true;
            v.set_required_spec_claims(&["exp", "iss", "aud"]);
            v.set_issuer(&[&issuer.issuer]);
            v.set_audience(&issuer.audiences);
            match jsonwebtoken::decode::<Value>(token, &key.key, &v) {
                Ok(data) => {
                    return Ok(Outcome::Verified(identity(
                        &issuer.claims,
                        &data.claims,
                        token,
                    )?))
                }
                Err(e) => {
                    last = match e.kind() {
                        ErrorKind::InvalidSignature => AuthFailure::BadSignature,
                        ErrorKind::ExpiredSignature => AuthFailure::Expired,
                        ErrorKind::ImmatureSignature => AuthFailure::NotYetValid,
                        ErrorKind::InvalidAudience => AuthFailure::WrongAudience,
                        ErrorKind::InvalidIssuer => AuthFailure::UntrustedIssuer,
                        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
                            AuthFailure::AlgorithmNotAllowed
                        }
                        ErrorKind::MissingRequiredClaim(_) => AuthFailure::MissingClaim,
                        _ => AuthFailure::Malformed,
                    };
                    // A wrong signature may be a rotated key: try the others. Anything else is
                    // about the token, not the key.
                    if last != AuthFailure::BadSignature {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn identity(map: &ClaimMap, claims: &Value, token: &str) -> Result<Identity, AuthFailure> {
    let consumer = claims[&map.consumer]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or(AuthFailure::MissingClaim)?
        .to_string();
    let roles = map
        .roles
        .as_ref()
        .map_or_else(Vec::new, |c| strings(&claims[c]));
    let scopes = match &map.scopes {
        Some(c) => strings(&claims[c]),
        None => {
            let mut s = strings(&claims["scope"]);
            s.extend(strings(&claims["scp"]));
            s
        }
    };
    // `jti` when the token has one; otherwise a digest, so the audit trail can still tell tokens
    // apart without holding them.
    let credential_id = match claims["jti"].as_str() {
        Some(j) if !j.is_empty() => j.to_string(),
        _ => format!("sha256:{}", &super::sha256_hex(token.as_bytes())[..16]),
    };
    Ok(Identity {
        consumer,
        credential_id,
        method: Method::Jwt,
        roles,
        scopes,
        claims: Some(std::sync::Arc::new(claims.clone())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"k3J9x!Qm2#vL8pZ7@rT4wN6yB1cF5hD0";

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    fn issuer(algs: Vec<Algorithm>, keys: KeyRing) -> Verifier {
        Verifier {
            issuers: vec![Issuer {
                issuer: "https://idp.test".into(),
                audiences: vec!["api".into()],
                algorithms: algs,
                leeway_secs: 5,
                claims: ClaimMap::default(),
                keys,
            }],
        }
    }

    fn hs_token(claims: Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn good_claims() -> Value {
        json!({"iss": "https://idp.test", "aud": "api", "sub": "alice", "exp": now() + 60,
               "roles": ["user"], "scope": "orders:read orders:write", "jti": "t1"})
    }

    fn hs_verifier() -> Verifier {
        let mut ring = KeyRing::default();
        ring.add_secret(None, SECRET);
        issuer(vec![Algorithm::HS256], ring)
    }

    #[test]
    fn a_valid_token_maps_claims() {
        match hs_verifier().verify(&hs_token(good_claims())) {
            Outcome::Verified(id) => {
                assert_eq!(id.consumer, "alice");
                assert_eq!(id.roles, vec!["user"]);
                assert_eq!(id.scopes, vec!["orders:read", "orders:write"]);
                assert_eq!(id.credential_id, "t1");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn claims_are_enforced() {
        let v = hs_verifier();
        let with = |k: &str, val: Value| {
            let mut c = good_claims();
            c[k] = val;
            v.verify(&hs_token(c))
        };
        assert_eq!(
            with("exp", json!(now() - 60)),
            Outcome::Failed(AuthFailure::Expired)
        );
        assert_eq!(
            with("nbf", json!(now() + 600)),
            Outcome::Failed(AuthFailure::NotYetValid)
        );
        assert_eq!(
            with("aud", json!("other")),
            Outcome::Failed(AuthFailure::WrongAudience)
        );
        assert_eq!(
            with("iss", json!("https://evil")),
            Outcome::Failed(AuthFailure::UntrustedIssuer)
        );
        let mut no_exp = good_claims();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            v.verify(&hs_token(no_exp)),
            Outcome::Failed(AuthFailure::MissingClaim)
        );
    }

    #[test]
    fn alg_none_and_tampering_fail() {
        let v = hs_verifier();
        let token = hs_token(good_claims());
        let parts: Vec<&str> = token.split('.').collect();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert_eq!(
            v.verify(&unsigned),
            Outcome::Failed(AuthFailure::AlgorithmNotAllowed)
        );
        let admin = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&json!({"iss": "https://idp.test", "aud": "api", "sub": "admin", "exp": now() + 60})).unwrap(),
        );
        let tampered = format!("{}.{admin}.{}", parts[0], parts[2]);
        assert_eq!(
            v.verify(&tampered),
            Outcome::Failed(AuthFailure::BadSignature)
        );
        assert_eq!(v.verify("eyJ.x.y"), Outcome::Failed(AuthFailure::Malformed));
    }

    #[test]
    fn an_rsa_public_key_is_never_an_hmac_secret() {
        // The classic confusion: sign HS256 with the RSA public key's PEM as the secret.
        let kp = super::super::keygen::generate(super::super::keygen::Kind::Rsa2048).unwrap();
        let mut ring = KeyRing::default();
        ring.add_pem(None, kp.public_pem.as_bytes(), AlgorithmFamily::Rsa)
            .unwrap();
        // Even an issuer that (wrongly) allows both families never checks HS256 with an RSA key.
        let v = issuer(vec![Algorithm::RS256, Algorithm::HS256], ring);
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &good_claims(),
            &EncodingKey::from_secret(kp.public_pem.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            v.verify(&forged),
            Outcome::Failed(AuthFailure::AlgorithmNotAllowed)
        );
        // The genuine RS256 token verifies.
        let real = encode(
            &Header::new(Algorithm::RS256),
            &good_claims(),
            &EncodingKey::from_rsa_pem(kp.private_pem.as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(matches!(v.verify(&real), Outcome::Verified(_)));
    }

    #[test]
    fn every_asymmetric_family_verifies() {
        use super::super::keygen::{generate, Kind};
        for (kind, alg, fam) in [
            (Kind::EcP256, Algorithm::ES256, AlgorithmFamily::Ec),
            (Kind::EcP384, Algorithm::ES384, AlgorithmFamily::Ec),
            (Kind::Ed25519, Algorithm::EdDSA, AlgorithmFamily::Ed),
            (Kind::Rsa2048, Algorithm::PS256, AlgorithmFamily::Rsa),
        ] {
            let kp = generate(kind).unwrap();
            let mut ring = KeyRing::default();
            ring.add_pem(Some("k"), kp.public_pem.as_bytes(), fam)
                .unwrap();
            let v = issuer(vec![alg], ring);
            let key = match fam {
                AlgorithmFamily::Ec => EncodingKey::from_ec_pem(kp.private_pem.as_bytes()),
                AlgorithmFamily::Ed => EncodingKey::from_ed_pem(kp.private_pem.as_bytes()),
                _ => EncodingKey::from_rsa_pem(kp.private_pem.as_bytes()),
            }
            .unwrap();
            let mut h = Header::new(alg);
            h.kid = Some("k".into());
            let token = encode(&h, &good_claims(), &key).unwrap();
            assert!(matches!(v.verify(&token), Outcome::Verified(_)), "{alg:?}");
        }
    }

    #[test]
    fn unknown_kid_asks_for_a_refresh() {
        let mut ring = KeyRing::default();
        ring.add_secret(Some("old"), SECRET);
        let v = issuer(vec![Algorithm::HS256], ring);
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("new".into());
        let token = encode(&h, &good_claims(), &EncodingKey::from_secret(SECRET)).unwrap();
        assert_eq!(
            v.verify(&token),
            Outcome::UnknownKid {
                issuer: 0,
                kid: "new".into()
            }
        );
    }
}
