//! The JSON scanner accepts exactly what serde_json accepts, never panics, reports spans that lie
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
    assert_eq!(ours.is_ok(), theirs.is_ok(), "{text:?}");
    for s in spans {
        assert!(s.end <= text.len() && text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
    }
    assert_eq!(splice(text, Vec::new()), text);
});
