//! Warden API keys: `wdn_<id>_<secret>`, where the id (12 lower-case letters and digits) names the
//! key and the secret is 256 random bits in base64url. The prefix makes leaked keys recognisable to
//! secret scanners; the id lets the gateway find the key without comparing against every hash.
//! Only SHA-256 of the secret is stored: the secret is random and long, so a fast hash is enough
//! (a slow KDF protects low-entropy passwords, which these are not), and it is compared in constant
//! time.

use std::collections::HashMap;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::{AuthFailure, Identity, Method};

pub const PREFIX: &str = "wdn_";
const ID_LEN: usize = 12;
const SECRET_BYTES: usize = 32;
/// `wdn_` + id + `_` + base64url(32 bytes).
pub const KEY_LEN: usize = PREFIX.len() + ID_LEN + 1 + 43;

/// A freshly made key: the full text (shown once) and what may be stored.
pub struct NewKey {
    pub id: String,
    pub text: String,
    pub hash: [u8; 32],
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the system random source failed")]
pub struct RandomError;

pub fn generate() -> Result<NewKey, RandomError> {
    let rng = SystemRandom::new();
    let mut raw = [0u8; ID_LEN + SECRET_BYTES];
    rng.fill(&mut raw).map_err(|_| RandomError)?;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    // 36 does not divide 256: the slight bias over 12 characters does not matter for an id.
    let id: String = raw[..ID_LEN]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    let secret = URL_SAFE_NO_PAD.encode(&raw[ID_LEN..]);
    let text = format!("{PREFIX}{id}_{secret}");
    Ok(NewKey {
        hash: hash_secret(&secret),
        id,
        text,
    })
}

pub fn hash_secret(secret: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// Splits a presented key into (id, secret) if it has the right shape.
pub fn parse(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix(PREFIX)?;
    if text.len() != KEY_LEN {
        return None;
    }
    let (id, secret) = rest.split_at(ID_LEN);
    let secret = secret.strip_prefix('_')?;
    let ok_id = id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok_secret = secret
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (ok_id && ok_secret).then_some((id, secret))
}

/// Whether text looks like a Warden key at all (to route a bearer token to the right verifier).
pub fn looks_like(text: &str) -> bool {
    text.starts_with(PREFIX)
}

/// What the gateway knows about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub id: String,
    pub consumer: String,
    pub hash: [u8; 32],
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    /// Unix seconds; `None` never expires. Rotation sets it to the end of the overlap.
    pub not_after: Option<i64>,
    pub revoked: bool,
}

/// All keys, by id. Rebuilt whenever the store changes; lookups are a hash map hit and one
/// constant-time comparison.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    by_id: HashMap<String, KeyEntry>,
}

impl KeySet {
    pub fn new(entries: impl IntoIterator<Item = KeyEntry>) -> KeySet {
        KeySet {
            by_id: entries.into_iter().map(|e| (e.id.clone(), e)).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The key id a presented key claims, for lockout counting before it is verified.
    pub fn claimed_id(text: &str) -> Option<&str> {
        parse(text).map(|(id, _)| id)
    }

    pub fn verify(&self, text: &str, now: i64) -> Result<Identity, AuthFailure> {
        let (id, secret) = parse(text).ok_or(AuthFailure::Malformed)?;
        // Hash before the lookup, so unknown ids cost the same time as known ones.
        let presented = hash_secret(secret);
        let entry = self.by_id.get(id).ok_or(AuthFailure::UnknownKey)?;
        if aws_lc_rs::constant_time::verify_slices_are_equal(&presented, &entry.hash).is_err() {
            return Err(AuthFailure::BadSecret);
        }
        if entry.revoked {
            return Err(AuthFailure::Revoked);
        }
        if entry.not_after.is_some_and(|t| now >= t) {
            return Err(AuthFailure::Expired);
        }
        Ok(Identity {
            consumer: entry.consumer.clone(),
            credential_id: entry.id.clone(),
            method: Method::ApiKey,
            roles: entry.roles.clone(),
            scopes: entry.scopes.clone(),
            claims: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(k: &NewKey) -> KeyEntry {
        KeyEntry {
            id: k.id.clone(),
            consumer: "alice".into(),
            hash: k.hash,
            roles: vec![],
            scopes: vec!["orders:read".into()],
            not_after: None,
            revoked: false,
        }
    }

    #[test]
    fn generated_keys_verify_and_tampering_does_not() {
        let k = generate().unwrap();
        assert_eq!(k.text.len(), KEY_LEN);
        assert!(k.text.starts_with("wdn_"));
        let set = KeySet::new([entry(&k)]);
        let id = set.verify(&k.text, 0).unwrap();
        assert_eq!(
            (id.consumer.as_str(), id.credential_id.as_str()),
            ("alice", k.id.as_str())
        );
        let mut bad = k.text.clone();
        let last = bad.pop().unwrap();
        bad.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(set.verify(&bad, 0), Err(AuthFailure::BadSecret));
        let other = generate().unwrap();
        assert_eq!(set.verify(&other.text, 0), Err(AuthFailure::UnknownKey));
        assert_eq!(set.verify("wdn_short", 0), Err(AuthFailure::Malformed));
        assert_eq!(set.verify("Bearer nope", 0), Err(AuthFailure::Malformed));
    }

    #[test]
    fn expiry_and_revocation() {
        let k = generate().unwrap();
        let mut e = entry(&k);
        e.not_after = Some(100);
        let set = KeySet::new([e.clone()]);
        assert!(set.verify(&k.text, 99).is_ok());
        assert_eq!(set.verify(&k.text, 100), Err(AuthFailure::Expired));
        e.revoked = true;
        assert_eq!(
            KeySet::new([e]).verify(&k.text, 0),
            Err(AuthFailure::Revoked)
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = parse(&s);
        }
    }
}
