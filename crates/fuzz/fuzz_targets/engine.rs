//! The whole pipeline: frames carved out of the input go through
//! decode -> flow table -> classifiers -> names -> geo -> policy.
//!
//! Input: a sequence of `[len_hi, len_lo, ctl, frame bytes...]`; `ctl` bits
//! 6-7 pick the link type (Ethernet, raw IP, Linux SLL, Linux SLL2) and bits
//! 0-5 advance the clock by that many 50 ms steps (so sweeps and expiry run).
#![no_main]

use std::sync::{Arc, OnceLock};

use geofence_classify::sigdb::SignatureDb;
use geofence_decode::LinkType;
use geofence_engine::{Engine, EngineConfig, Event};
use geofence_geo::GeoDb;
use geofence_policy::Policy;
use libfuzzer_sys::fuzz_target;

const POLICY: &str = r#"
[geoip]
databases = ["fuzz.mmdb"]

[jurisdictions]
prc = ["CN"]

[[rule]]
name = "conf-prc"
apps = ["conferencing"]
to = ["prc"]
action = "block"

[[rule]]
name = "unplaceable"
apps = ["conferencing"]
to = ["unknown"]
action = "alert"

[default]
action = "allow"
"#;

/// Indexed by the top two bits of `ctl`.
pub const LINKS: [LinkType; 4] = [
    LinkType::Ethernet,
    LinkType::RawIp,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
];

struct Shared {
    sigs: Arc<SignatureDb>,
    geo: Arc<GeoDb>,
    policy: Arc<Policy>,
}

/// The MaxMind GeoLite2 test databases from the shared directory when
/// present (so lookups and jurisdiction matches run), else no database.
fn geo() -> GeoDb {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/geo/maxmind-test"
    );
    let paths = [
        format!("{dir}/GeoLite2-Country-Test.mmdb"),
        format!("{dir}/GeoLite2-ASN-Test.mmdb"),
    ];
    GeoDb::open(&paths).unwrap_or_else(|e| {
        eprintln!("engine target: no test geo databases ({e}), using none");
        GeoDb::empty()
    })
}

fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| {
        let cfg = geofence_policy::load_str("fuzz-engine.toml", POLICY).expect("policy");
        Shared {
            sigs: Arc::new(SignatureDb::builtin()),
            geo: Arc::new(geo()),
            policy: Arc::new(Policy::from_config(&cfg).expect("policy")),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = shared();
    let mut engine = Engine::new(
        EngineConfig::default(),
        Arc::clone(&s.sigs),
        Arc::clone(&s.geo),
        Arc::clone(&s.policy),
    );
    let mut out: Vec<Event> = Vec::new();
    let mut ts: u64 = 1_700_000_000_000_000_000;
    let mut rest = data;
    let mut frames = 0u64;
    while let Some((h, tail)) = rest.split_at_checked(3) {
        let len = usize::from(u16::from_be_bytes([h[0], h[1]])).min(tail.len());
        let (frame, tail) = tail.split_at(len);
        rest = tail;
        let link = LINKS[usize::from(h[2] >> 6)];
        ts += u64::from(h[2] & 0x3F) * 50_000_000;
        engine.process_frame(ts, link, frame, &mut out);
        frames += 1;
        // Events come from packets: at most a few per frame.
        assert!(
            out.len() as u64 <= frames * 64,
            "{} events for {frames} frames",
            out.len()
        );
    }
    let st = engine.stats();
    assert_eq!(st.frames, frames);
    let reports = engine.finish();
    assert!(reports.len() as u64 <= frames);
});
