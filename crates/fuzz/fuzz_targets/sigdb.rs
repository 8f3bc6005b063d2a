//! Signature database: parse an apps.d TOML file, then compile it.
#![no_main]

use geofence_classify::sigdb::SignatureDb;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(defs) = SignatureDb::parse_file("fuzz.toml", text) else {
        return;
    };
    if let Ok(db) = SignatureDb::from_defs(defs) {
        for (i, app) in db.apps().iter().enumerate() {
            let r = db
                .find(app.id.as_str())
                .expect("every compiled app is findable");
            assert_eq!(usize::from(r.0), i);
        }
        let _ = db.match_host("a.b.example.com");
        let _ = db.match_port(geofence_classify::sigs::Transport::Udp, 3478);
        for (_, p) in db.patterns() {
            let _ = p.matches(geofence_classify::sigs::Transport::Udp, data);
        }
    }
});
