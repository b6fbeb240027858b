//! The cost of verifying one credential, per kind: what authentication adds to each request.
//! Run: `cargo bench -p warden-policy --bench auth` (results in bench/README.md).

use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{encode, Algorithm, AlgorithmFamily, EncodingKey, Header};
use warden_policy::auth::api_key::{self, KeyEntry, KeySet};
use warden_policy::auth::jwt::{ClaimMap, Issuer, KeyRing, Verifier};
use warden_policy::auth::keygen::{generate, Kind};
use warden_policy::auth::sha256_hex;
use warden_policy::auth::signature::{self, RequestParts};

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

fn claims() -> serde_json::Value {
    serde_json::json!({"iss": "https://idp", "aud": "api", "sub": "alice", "exp": now() + 3600,
                       "roles": ["user"], "scope": "orders:read", "jti": "t-1"})
}

fn verifier(alg: Algorithm, keys: KeyRing) -> Verifier {
    Verifier {
        issuers: vec![Issuer {
            issuer: "https://idp".into(),
            audiences: vec!["api".into()],
            algorithms: vec![alg],
            leeway_secs: 30,
            claims: ClaimMap::default(),
            keys,
        }],
    }
}

fn bench(c: &mut Criterion) {
    // API key among 10,000 keys.
    let target = api_key::generate().unwrap();
    let mut entries: Vec<KeyEntry> = (0..9_999)
        .map(|i| {
            let k = api_key::generate().unwrap();
            KeyEntry {
                id: k.id,
                consumer: format!("c{i}"),
                hash: k.hash,
                roles: vec![],
                scopes: vec![],
                not_after: None,
                revoked: false,
            }
        })
        .collect();
    entries.push(KeyEntry {
        id: target.id.clone(),
        consumer: "alice".into(),
        hash: target.hash,
        roles: vec![],
        scopes: vec!["s".into()],
        not_after: None,
        revoked: false,
    });
    let set = KeySet::new(entries);
    c.bench_function("api_key (10k keys)", |b| {
        b.iter(|| set.verify(&target.text, 0).unwrap())
    });

    let secret = b"k3J9x!Qm2#vL8pZ7@rT4wN6yB1cF5hD0-bench";
    let mut ring = KeyRing::default();
    ring.add_secret(None, secret);
    let v = verifier(Algorithm::HS256, ring);
    let t = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(secret),
    )
    .unwrap();
    c.bench_function("jwt HS256", |b| {
        b.iter(|| {
            assert!(matches!(
                v.verify(&t),
                warden_policy::auth::jwt::Outcome::Verified(_)
            ))
        })
    });

    for (name, kind, alg, fam) in [
        (
            "jwt RS256",
            Kind::Rsa2048,
            Algorithm::RS256,
            AlgorithmFamily::Rsa,
        ),
        (
            "jwt ES256",
            Kind::EcP256,
            Algorithm::ES256,
            AlgorithmFamily::Ec,
        ),
        (
            "jwt EdDSA",
            Kind::Ed25519,
            Algorithm::EdDSA,
            AlgorithmFamily::Ed,
        ),
    ] {
        let kp = generate(kind).unwrap();
        let mut ring = KeyRing::default();
        ring.add_pem(None, kp.public_pem.as_bytes(), fam).unwrap();
        let v = verifier(alg, ring);
        let key = match fam {
            AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(kp.private_pem.as_bytes()),
            AlgorithmFamily::Ec => EncodingKey::from_ec_pem(kp.private_pem.as_bytes()),
            _ => EncodingKey::from_ed_pem(kp.private_pem.as_bytes()),
        }
        .unwrap();
        let t = encode(&Header::new(alg), &claims(), &key).unwrap();
        c.bench_function(name, |b| {
            b.iter(|| {
                assert!(matches!(
                    v.verify(&t),
                    warden_policy::auth::jwt::Outcome::Verified(_)
                ))
            })
        });
    }

    // A signed POST with a 1 KB body: hashing the body is part of the cost.
    let body = vec![b'x'; 1024];
    let ts = now();
    let parts = || RequestParts {
        method: "POST",
        path: "/v1/payments",
        query: Some("b=2&a=1"),
        headers: vec![("host", "api.test"), ("content-type", "application/json")],
        body_sha256_hex: sha256_hex(&body),
    };
    let value = signature::authorization(
        "p",
        secret,
        ts,
        "nonce-0123456789abcdef",
        &["host", "content-type"],
        &parts(),
    );
    c.bench_function("signed request (1 KB body)", |b| {
        b.iter(|| {
            let h = signature::parse_header(&value).unwrap();
            signature::verify(&h, &parts(), secret, ts, 300).unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
