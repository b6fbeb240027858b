//! Any text given as a config must parse or fail with a ConfigError, never panic; and a located
//! error must point at a line that exists.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(e) = warden_gateway::Config::parse(text, std::path::Path::new("fuzz.yaml")) {
        if let Some(line) = e.line {
            assert!(line >= 1 && line <= text.lines().count().max(1) + 1);
        }
    }
    for field in ["routes[0].upstream", "listeners[1].address", "a.b[2].c"] {
        let _ = warden_gateway::config::locate(text, field);
    }
});
