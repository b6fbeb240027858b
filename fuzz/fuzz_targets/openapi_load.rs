//! Any text given as an OpenAPI spec loads or fails with a SpecError (never a panic or a hang),
//! and a located error points at a line that exists.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let dir = std::env::temp_dir().join(format!("warden-fuzz-openapi-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join("spec.yaml");
    if std::fs::write(&file, text).is_err() {
        return;
    }
    if let Err(e) = warden_openapi::Contract::load(&file, None) {
        if let (Some(line), true) = (e.line, e.file == file) {
            assert!(line >= 1 && line <= text.split_inclusive(['\n', '\r']).count() + 1, "line {line}");
        }
    }
});
