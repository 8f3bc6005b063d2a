//! Policy: TOML parse + full validation of arbitrary UTF-8 text. Every
//! error must point into the file (line >= 1).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match geofence_policy::load_str("fuzz.toml", text) {
        Ok(cfg) => {
            let p = geofence_policy::Policy::from_config(&cfg).expect("load_str validated it");
            let _ = p.rules().len();
        }
        Err(e) => {
            assert!(e.line >= 1, "error without position: {e:?}");
            assert!(
                e.line <= text.lines().count().max(1) + 1,
                "line past the end: {e:?}"
            );
            let _ = e.to_string();
        }
    }
});
