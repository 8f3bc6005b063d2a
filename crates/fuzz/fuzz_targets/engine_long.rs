//! Memory bound of the pipeline over a long run: ONE engine lives across
//! all fuzz inputs (same framing as the `engine` target), with small table
//! and cache limits, so millions of hostile frames from many flows go
//! through the same flow table, DNS name cache and STUN peer cache. The
//! live flow count must stay within `max_flows`; libFuzzer's
//! `-rss_limit_mb` catches any other growth. (A crash here may depend on
//! earlier inputs: reproduce with the whole corpus in order.)
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use geofence_classify::sigdb::SignatureDb;
use geofence_decode::LinkType;
use geofence_engine::flow::TableConfig;
use geofence_engine::{Engine, EngineConfig, Event};
use geofence_geo::GeoDb;
use geofence_policy::Policy;
use libfuzzer_sys::fuzz_target;

const MAX_FLOWS: usize = 512;

const POLICY: &str = r#"
[geoip]
databases = ["fuzz.mmdb"]

[jurisdictions]
prc = ["CN"]

[[rule]]
name = "conf-prc"
apps = ["conferencing"]
to = ["prc", "unknown"]
action = "block"

[default]
action = "allow"
"#;

const LINKS: [LinkType; 4] = [
    LinkType::Ethernet,
    LinkType::RawIp,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
];

struct State {
    engine: Engine,
    ts: u64,
    out: Vec<Event>,
}

fn state() -> &'static Mutex<State> {
    static S: OnceLock<Mutex<State>> = OnceLock::new();
    S.get_or_init(|| {
        let cfg = geofence_policy::load_str("fuzz-engine.toml", POLICY).expect("policy");
        let policy = Policy::from_config(&cfg).expect("policy");
        let ecfg = EngineConfig {
            table: TableConfig {
                max_flows: MAX_FLOWS,
                ..TableConfig::default()
            },
            name_cache: 1024,
            ..EngineConfig::default()
        };
        let engine = Engine::new(
            ecfg,
            Arc::new(SignatureDb::builtin()),
            Arc::new(GeoDb::empty()),
            Arc::new(policy),
        );
        Mutex::new(State {
            engine,
            ts: 1_700_000_000_000_000_000,
            out: Vec::new(),
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let mut guard = state().lock().unwrap_or_else(|e| e.into_inner());
    let st = &mut *guard;
    let mut rest = data;
    while let Some((h, tail)) = rest.split_at_checked(3) {
        let len = usize::from(u16::from_be_bytes([h[0], h[1]])).min(tail.len());
        let (frame, tail) = tail.split_at(len);
        rest = tail;
        st.ts += u64::from(h[2] & 0x3F) * 50_000_000;
        st.engine
            .process_frame(st.ts, LINKS[usize::from(h[2] >> 6)], frame, &mut st.out);
        // The daemon drains events continuously; so does this loop.
        st.out.clear();
    }
    // Time passes between inputs too, so idle flows expire.
    st.ts += 1_000_000_000;
    let live = st.engine.stats().flows.live;
    assert!(live <= MAX_FLOWS as u64, "{live} live flows > {MAX_FLOWS}");
});
