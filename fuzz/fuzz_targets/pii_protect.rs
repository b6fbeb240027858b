//! Personal-data protection never panics, reports ranges inside the value, and turns valid JSON
//! into valid JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;
use warden_policy::pii::detect::{scan_str, KeyHint};
use warden_policy::json::JsonError;
use warden_policy::pii::protect::ProtectError;
use warden_policy::pii::{Audience, Policy};

fuzz_target!(|input: (&str, &str)| {
    let (key, text) = input;
    let mut out = Vec::new();
    scan_str(text, KeyHint::of(Some(key)), 2026, &mut out);
    for m in &out {
        assert!(m.range.end <= text.len() && text.is_char_boundary(m.range.start) && text.is_char_boundary(m.range.end));
    }
    let aud = Audience { route: "r", scopes: &[] };
    let policy = Policy::default();
    let _ = policy.protect_text(text, "body", aud);
    if serde_json::from_str::<serde_json::Value>(text).is_ok() {
        match policy.protect_json(text, aud) {
            Ok(p) => {
                if let Some(body) = p.body {
                    assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok(), "{body}");
                }
            }
            // serde_json allows deeper nesting than the scanner's limit; nothing else may fail.
            Err(ProtectError::Json(JsonError::TooDeep { .. })) => {}
            Err(e) => panic!("{e}"),
        }
    }
});
