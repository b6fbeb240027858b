//! Any text given as a config must parse or fail with a ConfigError, never panic; and a located
//! error must point at a line that exists.
#![no_main]
use libfuzzer_sys::fuzz_target;

/// Lines as libyaml (YAML 1.1) counts them: `\r\n`, `\r`, `\n`, NEL, U+2028 and U+2029 each end a
/// line, unlike `str::lines`.
fn yaml_lines(text: &str) -> usize {
    1 + text.replace("\r\n", "\n").matches(['\r', '\n', '\u{85}', '\u{2028}', '\u{2029}']).count()
}

fuzz_target!(|text: &str| {
    if let Err(e) = warden_gateway::Config::parse(text, std::path::Path::new("fuzz.yaml")) {
        if let Some(line) = e.line {
            assert!(line >= 1 && line <= yaml_lines(text) + 1, "line {line}");
        }
    }
    for field in ["routes[0].upstream", "listeners[1].address", "a.b[2].c"] {
        let _ = warden_gateway::config::locate(text, field);
    }
});
