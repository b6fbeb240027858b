//! Key pairs for signing tokens, as PEM: what the demo uses to mint example JWTs, and what tests
//! and benchmarks sign with. Keys are made at run time; none is ever stored in the repository.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Which kind of key pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rsa2048,
    EcP256,
    EcP384,
    Ed25519,
}

pub struct KeyPairPem {
    pub private_pem: String,
    pub public_pem: String,
}

#[derive(Debug, thiserror::Error)]
#[error("key generation failed")]
pub struct KeygenError;

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

pub fn generate(kind: Kind) -> Result<KeyPairPem, KeygenError> {
    let e = |_| KeygenError;
    let (private, public): (Vec<u8>, Vec<u8>) = match kind {
        Kind::Rsa2048 => {
            let kp =
                aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(e)?;
            let p: Pkcs8V1Der = kp.as_der().map_err(e)?;
            let q: PublicKeyX509Der = kp.public_key().as_der().map_err(e)?;
            (p.as_ref().to_vec(), q.as_ref().to_vec())
        }
        Kind::EcP256 | Kind::EcP384 => {
            let alg = if kind == Kind::EcP256 {
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING
            } else {
                &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING
            };
            let kp = EcdsaKeyPair::generate(alg).map_err(e)?;
            let p = kp.to_pkcs8v1().map_err(e)?;
            let q: PublicKeyX509Der = kp.public_key().as_der().map_err(e)?;
            (p.as_ref().to_vec(), q.as_ref().to_vec())
        }
        Kind::Ed25519 => {
            let doc = Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new()).map_err(e)?;
            let kp = Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|_| KeygenError)?;
            let q: PublicKeyX509Der = kp.public_key().as_der().map_err(e)?;
            (doc.as_ref().to_vec(), q.as_ref().to_vec())
        }
    };
    Ok(KeyPairPem {
        private_pem: pem("PRIVATE KEY", &private),
        public_pem: pem("PUBLIC KEY", &public),
    })
}
