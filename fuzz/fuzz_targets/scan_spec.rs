//! Any text given to `warden scan` as a spec loads or fails with a SpecError, and every example
//! the scanner would send can be built from what loaded: no panic, no hang, no blow-up from a
//! recursive schema referenced from many places.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let dir = std::env::temp_dir().join(format!("warden-fuzz-scan-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join("spec.yaml");
    if std::fs::write(&file, text).is_err() {
        return;
    }
    let Ok(api) = warden_scan::spec::Api::load(&file) else {
        return;
    };
    for op in &api.ops {
        if let Some(body) = &op.body {
            let _ = warden_scan::spec::example(body, "fuzz");
            let _ = warden_scan::spec::properties(body);
        }
        for p in &op.params {
            let _ = warden_scan::spec::example(&p.schema, "fuzz");
        }
        let _ = op.admin();
    }
});
