//! Hostile traffic against the engine (issue 7): memory under a flood of
//! lying QUIC Initials, and evasion of inspection.

use std::net::Ipv4Addr;
use std::sync::Arc;

use geofence_classify::quic::{client_initial_datagram, VERSION_1};
use geofence_classify::SignatureDb;
use geofence_decode::LinkType;
use geofence_engine::budget::PoolConfig;
use geofence_engine::{Engine, EngineConfig, Event, FlowReport};
use geofence_geo::GeoDb;
use geofence_testkit::mmdb::geoip2_country;
use geofence_testkit::pcap::{tcp_v4, udp_v4, TcpFlags};
use geofence_testkit::wire::client_hello;

const CN_SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const OTHER_SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);
const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * SEC;

const POLICY: &str = "[geoip]\ndatabases = [\"t.mmdb\"]\n[signatures]\ndirs = []\n\
    [jurisdictions]\nprc = [\"CN\"]\n\
    [[rule]]\nname = \"no-conf-prc\"\napps = [\"conferencing\"]\nto = [\"prc\"]\naction = \"block\"\n";

fn engine_with(cfg: EngineConfig, policy: &str) -> Engine {
    let policy = geofence_policy::load_str("t.toml", policy).expect("policy");
    let policy = geofence_policy::Policy::from_config(&policy).expect("compile");
    let geo = GeoDb::from_sources(vec![(
        "geo".to_string(),
        geoip2_country(&[("203.0.113.0/24", "CN", None)]).to_bytes(),
    )])
    .expect("geo");
    Engine::new(
        cfg,
        Arc::new(SignatureDb::builtin()),
        Arc::new(geo),
        Arc::new(policy),
    )
}

fn labelled(ev: &[Event]) -> Vec<&FlowReport> {
    ev.iter()
        .filter_map(|x| match x {
            Event::Labelled { report, .. } => Some(report),
            _ => None,
        })
        .collect()
}

/// Finding 3: Initials whose only CRYPTO frame sits at offset 16383 cost
/// their bytes, not the 16 KiB gap; the pool never exceeds its budget; the
/// benign flows mixed into the flood are still decided.
#[test]
fn lying_crypto_offsets_stay_within_the_memory_budget() {
    let budget = 512 << 10;
    let mut e = engine_with(
        EngineConfig {
            pool: PoolConfig {
                budget,
                ..PoolConfig::default()
            },
            ..EngineConfig::default()
        },
        POLICY,
    );
    let hello = client_hello("zoom.us");
    let flood =
        client_initial_datagram(VERSION_1, &[0x5a; 8], 16383, &hello[5..40], 1200).expect("flood");
    let benign =
        client_initial_datagram(VERSION_1, &[0x77; 8], 0, &hello[5..], 1200).expect("benign");
    let mut ev = Vec::new();
    let mut blocked = 0;
    let n = 3000u32;
    for i in 0..n {
        let c = Ipv4Addr::from(0x0a00_0000 + i);
        e.process_frame(
            T0 + u64::from(i) * 1000,
            LinkType::Ethernet,
            &udp_v4(c, 40000, OTHER_SERVER, 443, &flood),
            &mut ev,
        );
        if i == 100 {
            // Per flood flow: its one clipped byte and the cached keys, far
            // from the 16 KiB window the offset claims.
            let per_flow = e.stats().reassembly.used / 101;
            assert!(per_flow < 2048, "{per_flow} bytes per flood flow");
        }
        if i % 100 == 0 {
            let b = Ipv4Addr::new(10, 200, 0, (i / 100) as u8);
            e.process_frame(
                T0 + u64::from(i) * 1000 + 1,
                LinkType::Ethernet,
                &udp_v4(b, 50000, CN_SERVER, 443, &benign),
                &mut ev,
            );
            e.process_frame(
                T0 + u64::from(i) * 1000 + 2,
                LinkType::Ethernet,
                &tcp_v4(b, 50001, CN_SERVER, 443, 7, TcpFlags::SYN, &[]),
                &mut ev,
            );
            e.process_frame(
                T0 + u64::from(i) * 1000 + 3,
                LinkType::Ethernet,
                &tcp_v4(b, 50001, CN_SERVER, 443, 8, TcpFlags::PSH_ACK, &hello),
                &mut ev,
            );
        }
        let s = e.stats().reassembly;
        assert!(s.used <= budget as u64, "{s:?}");
        for r in labelled(&ev) {
            if r.dest_ip == CN_SERVER {
                assert_eq!(r.app.as_ref().map(|a| a.as_str()), Some("zoom"));
                assert_eq!(r.action.as_str(), "block");
                blocked += 1;
            }
        }
        ev.clear();
    }
    assert_eq!(blocked, 2 * n / 100, "every benign zoom flow decided");
    let s = e.stats().reassembly;
    assert!(s.peak <= budget as u64, "{s:?}");
    assert!(
        s.reclaimed > 0,
        "the budget was reached and reclaimed: {s:?}"
    );
}
