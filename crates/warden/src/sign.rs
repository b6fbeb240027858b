//! `warden sign`: the client side of signed requests, for partners and tests. It computes the
//! `Authorization: WARDEN-HMAC-SHA256 ...` header for one request (docs/signing.md).

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use warden_policy::auth::sha256_hex;
use warden_policy::auth::signature::{authorization, RequestParts};

use crate::cli::{Failure, SignArgs};

pub fn run(args: SignArgs) -> Result<(), Failure> {
    let secret = match (&args.secret_env, &args.secret_file) {
        (Some(var), _) => std::env::var(var)
            .map(String::into_bytes)
            .map_err(|_| Failure::BadInput(format!("--secret-env: {var} is not set")))?,
        (None, Some(f)) => {
            let mut b = std::fs::read(f)
                .map_err(|e| Failure::BadInput(format!("--secret-file {}: {e}", f.display())))?;
            while b.last().is_some_and(|c| c.is_ascii_whitespace()) {
                b.pop();
            }
            b
        }
        (None, None) => {
            return Err(Failure::BadInput(
                "give --secret-env or --secret-file".into(),
            ))
        }
    };
    let uri: http::Uri = args
        .url
        .parse()
        .map_err(|e| Failure::BadInput(format!("`{}` is not a URL: {e}", args.url)))?;
    let authority = uri
        .authority()
        .ok_or_else(|| Failure::BadInput(format!("`{}` has no host", args.url)))?
        .to_string();
    let body: Vec<u8> = match &args.data {
        Some(d) if d.starts_with('@') => {
            std::fs::read(&d[1..]).map_err(|e| Failure::BadInput(format!("--data {d}: {e}")))?
        }
        Some(d) => d.as_bytes().to_vec(),
        None => Vec::new(),
    };
    let mut headers: Vec<(String, String)> = vec![("host".into(), authority)];
    for h in &args.headers {
        let (n, v) = h
            .split_once(':')
            .ok_or_else(|| Failure::BadInput(format!("--header `{h}` must be `Name: value`")))?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut signed: Vec<&str> = vec!["host"];
    for s in args
        .signed_headers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if s != "host" && headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(s)) {
            signed.push(s);
        }
    }
    let mut raw = [0u8; 16];
    SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| Failure::Runtime(anyhow::anyhow!("the system random source failed")))?;
    let nonce: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let parts = RequestParts {
        method: &args.method,
        path: uri.path(),
        query: uri.query(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect(),
        body_sha256_hex: sha256_hex(&body),
    };
    let value = authorization(&args.key_id, &secret, ts, &nonce, &signed, &parts);
    if args.curl {
        let q = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        let mut cmd = format!(
            "curl -X {} {}",
            args.method.to_ascii_uppercase(),
            q(&args.url)
        );
        for (n, v) in headers.iter().filter(|(n, _)| n != "host") {
            cmd.push_str(&format!(" -H {}", q(&format!("{n}: {v}"))));
        }
        cmd.push_str(&format!(" -H {}", q(&format!("Authorization: {value}"))));
        if let Some(d) = &args.data {
            cmd.push_str(&format!(" --data-binary {}", q(d)));
        }
        crate::out(&cmd);
    } else {
        crate::out(format!("Authorization: {value}"));
    }
    Ok(())
}
