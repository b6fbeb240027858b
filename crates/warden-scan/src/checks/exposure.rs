//! What the answers gave away (API3): credentials, unmasked card and identity numbers, and fields
//! the spec never promised. Judged on the answers the crawl already has: no extra requests.

use serde_json::Value;
use warden_policy::pii::detect::{current_year, scan_str, KeyHint};
use warden_policy::pii::DataClass;

use super::leaves;
use crate::spec::properties;
use crate::Scan;

/// Field names whose value is a credential whatever it looks like.
fn credential_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    let k = k.rsplit(['.', ']']).next().unwrap_or(&k);
    k.contains("password")
        || k.contains("passwd")
        || k.contains("secret")
        || k == "api_key"
        || k == "apikey"
        || k.ends_with("private_key")
        || k == "pin"
        || k == "otp"
        || k == "mfa_secret"
        || k.ends_with("_hash") && (k.contains("pass") || k.contains("pwd"))
}

pub async fn exposure(scan: &mut Scan) {
    let year = current_year();
    let seen = scan.seen.clone();
    for s in &seen {
        let x = &s.exchange;
        if !x.ok() || scan.is_soft404(x) {
            continue;
        }
        let op = scan.op(s.op).clone();
        let Some(body) = x.json() else { continue };
        let mut found = Vec::new();
        leaves(&body, String::new(), &mut found, 0);
        for (at, v) in &found {
            let key = at
                .rsplit(['.', '['])
                .next()
                .unwrap_or(at)
                .trim_end_matches(']');
            let text = match v {
                Value::String(t) => t.clone(),
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            if text.is_empty() {
                continue;
            }
            // A login answers with a token by design.
            if credential_key(at) && !op.login {
                let msg = format!("{} returns `{at}`, a credential", op.label());
                scan.report("secret-in-response", Some(&op), msg, vec![x.clone()]);
                continue;
            }
            let mut matches = Vec::new();
            scan_str(&text, KeyHint::of(Some(key)), year, &mut matches);
            for m in matches {
                let serious = matches!(
                    m.class,
                    DataClass::Card
                        | DataClass::CnId
                        | DataClass::UsSsn
                        | DataClass::Iban
                        | DataClass::PrivateKey
                        | DataClass::ApiKey
                );
                if serious && m.range.len() * 2 > text.len() {
                    let msg = format!("{} returns `{at}` unmasked ({})", op.label(), m.class.id());
                    scan.report("personal-data-in-response", Some(&op), msg, vec![x.clone()]);
                }
            }
        }
        // Fields outside every declared response schema.
        let declared: serde_json::Map<String, Value> =
            op.responses.iter().flat_map(properties).collect();
        if let (false, Value::Object(m)) = (declared.is_empty(), &body) {
            let extra: Vec<&String> = m.keys().filter(|k| !declared.contains_key(*k)).collect();
            for k in extra {
                if credential_key(k) {
                    continue;
                }
                let msg = format!(
                    "{} returns `{k}`, which its response schema does not declare",
                    op.label()
                );
                scan.report("undeclared-response-field", Some(&op), msg, vec![x.clone()]);
            }
        }
    }
}
