//! The normaliser never panics, stays within its size bound, and its views agree: the lower-case
//! view is the decoded one folded, the compact view is never longer than the lower-case one.
#![no_main]
use libfuzzer_sys::fuzz_target;
use warden_policy::attack::normalize::{normalize, Encoding};

fuzz_target!(|s: &str| {
    for e in [Encoding::Form, Encoding::Percent, Encoding::Plain] {
        let v = normalize(s, e);
        assert!(v.lower.len() <= s.len() * 18 + 16, "{} -> {}", s.len(), v.lower.len());
        assert!(v.compact().len() <= v.lower.len());
        let _ = v.transforms.names();
    }
});
