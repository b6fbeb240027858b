//! HMAC secrets too weak to sign tokens with: short ones, and the ones every tutorial, framework
//! default and leaked-config dump uses. A token signed with one can be forged offline in seconds.
//! The same list feeds the scanner's weak-secret check.

/// HS256 needs a 256-bit key (RFC 7518 §3.2); anything shorter is refused.
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// Secrets seen in tutorials, framework defaults and public breach dumps.
pub const COMMON: &[&str] = &[
    "secret",
    "secretkey",
    "secret-key",
    "secret_key",
    "your-256-bit-secret",
    "your-secret-key",
    "your_jwt_secret",
    "jwt_secret",
    "jwtsecret",
    "jwt-secret",
    "mysecret",
    "my-secret",
    "my_secret_key",
    "supersecret",
    "super-secret",
    "supersecretkey",
    "changeme",
    "change-me",
    "changethis",
    "password",
    "password123",
    "123456",
    "12345678",
    "admin",
    "test",
    "testing",
    "development",
    "dev",
    "default",
    "key",
    "private",
    "token",
    "s3cr3t",
    "qwerty",
    "letmein",
    "shhhhh",
    "keyboard cat",
    "gtfo",
    "secret123",
    "hs256-secret",
    "your-256-bit-secret-key-here",
    "this-is-a-very-long-secret-key-for-jwt-signing",
    "ThisIsMySuperSecretKeyForJWTTokenGeneration",
    "a-string-secret-at-least-256-bits-long",
    "0123456789abcdef0123456789abcdef",
    "00000000000000000000000000000000",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
];

/// Why a secret is weak, if it is.
pub fn weakness(secret: &[u8]) -> Option<String> {
    if let Ok(s) = std::str::from_utf8(secret) {
        if COMMON.iter().any(|c| c.eq_ignore_ascii_case(s.trim())) {
            return Some("it is a well-known default secret, found in public wordlists".into());
        }
    }
    if secret.len() < MIN_HMAC_SECRET_BYTES {
        return Some(format!(
            "it is {} bytes long; HMAC-SHA256 needs at least {MIN_HMAC_SECRET_BYTES} random bytes",
            secret.len()
        ));
    }
    let distinct = {
        let mut seen = [false; 256];
        secret.iter().for_each(|b| seen[*b as usize] = true);
        seen.iter().filter(|s| **s).count()
    };
    if distinct < 8 {
        return Some(format!("it uses only {distinct} distinct bytes"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_and_strong() {
        assert!(weakness(b"secret").is_some());
        assert!(weakness(b"your-256-bit-secret").is_some());
        assert!(weakness(b"a-string-secret-at-least-256-bits-long").is_some());
        assert!(weakness(b"short but unique!").is_some());
        assert!(weakness(&[b'a'; 40]).is_some());
        assert!(weakness(b"k3J9x!Qm2#vL8pZ7@rT4wN6yB1cF5hD0").is_none());
    }
}
