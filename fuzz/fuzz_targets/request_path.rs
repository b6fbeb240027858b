//! A path the gateway accepts must contain no dot-segment in any spelling the upstream might decode.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|path: &str| {
    if warden_gateway::proxy::sane_path(path) {
        let decoded = path.to_ascii_lowercase().replace("%2e", ".");
        assert!(!decoded.split('/').any(|s| s == ".." || s == "."));
        assert!(!decoded.contains("%2f") && !decoded.contains('\\'));
    }
});
