//! The JSON scanner accepts exactly what serde_json accepts (bar numbers beyond f64's range), never panics, reports spans that lie
//! inside the input on character boundaries, and splicing nothing gives the input back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use warden_policy::json::{splice, walk, Event};

fuzz_target!(|text: &str| {
    let mut spans = Vec::new();
    let ours = walk(text, 128, |e| match e {
        Event::Key { span, .. } | Event::Leaf { span, .. } => spans.push(span),
    });
    let theirs = serde_json::from_str::<serde_json::Value>(text);
    // `1e999` is valid JSON grammar (RFC 8259 leaves number range to implementations); serde_json
    // refuses numbers beyond f64, the scanner, which never converts numbers, does not.
    let out_of_range = theirs
        .as_ref()
        .is_err_and(|e| e.to_string().contains("number out of range"));
    if !out_of_range {
        assert_eq!(ours.is_ok(), theirs.is_ok(), "{text:?}");
    }
    for s in spans {
        assert!(s.end <= text.len() && text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
    }
    assert_eq!(splice(text, Vec::new()), text);
});
