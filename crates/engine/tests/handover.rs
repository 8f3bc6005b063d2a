//! What the kernel hands over decides what the engine can decide: in NFLOG
//! mode a tentative label (vendor range that needs ports) must decide at
//! the last packet the kernel delivers, and replay's simulation of the
//! NFLOG rule drops what the kernel would not log.

use std::net::Ipv4Addr;
use std::sync::Arc;

use geofence_classify::{Method, SignatureDb};
use geofence_decode::LinkType;
use geofence_engine::{Engine, EngineConfig, Event};
use geofence_geo::GeoDb;
use geofence_policy::Action;
use geofence_testkit::mmdb::geoip2_country;
use geofence_testkit::pcap::udp_v4;
use geofence_testkit::wire::{dns_query, dns_response};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 77);
const SEC: u64 = 1_000_000_000;

/// A policy whose own `[[app]]` names a CN range only on UDP port 9000.
fn engine(cfg: EngineConfig) -> Engine {
    let text = "[geoip]\ndatabases = [\"t.mmdb\"]\n[signatures]\ndirs = []\n\
        [jurisdictions]\nprc = [\"CN\"]\n\
        [[app]]\nid = \"rangeapp\"\nname = \"Range app\"\ncategory = \"conferencing\"\n\
        cidrs = [\"203.0.113.0/25\"]\nports = [{ proto = \"udp\", ports = \"9000\" }]\n\
        ranges_need_ports = true\n\
        [[rule]]\nname = \"no-conf-prc\"\napps = [\"conferencing\"]\nto = [\"prc\"]\naction = \"block\"\n";
    let config = geofence_policy::load_str("t.toml", text).expect("policy");
    let policy = geofence_policy::Policy::from_config(&config).expect("compile");
    let mut defs = SignatureDb::builtin_defs();
    defs.extend(config.apps.iter().cloned());
    let sigs = SignatureDb::from_defs(defs).expect("sigs");
    let geo = GeoDb::from_sources(vec![(
        "geo".to_string(),
        geoip2_country(&[("203.0.113.0/24", "CN", None)]).to_bytes(),
    )])
    .expect("geo");
    Engine::new(cfg, Arc::new(sigs), Arc::new(geo), Arc::new(policy))
}

/// Sends `n` opaque datagrams from the client to the range on port 9000 and
/// returns the 1-based index of the packet at which the flow was labelled.
fn labelled_at(e: &mut Engine, n: u64) -> Option<(u64, Action)> {
    let mut ev = Vec::new();
    for i in 1..=n {
        let payload = [
            0x5a_u8,
            (i & 0xff) as u8,
            0x11,
            0x22,
            0x33,
            0x44,
            0x55,
            0x66,
        ];
        e.process_frame(
            1_700_000_000 * SEC + i * 1_000_000,
            LinkType::Ethernet,
            &udp_v4(CLIENT, 50000, SERVER, 9000, &payload),
            &mut ev,
        );
        for x in ev.drain(..) {
            if let Event::Labelled { report, .. } = x {
                assert_eq!(report.method, Some(Method::IpRange));
                assert_eq!(report.app.as_ref().map(|a| a.as_str()), Some("rangeapp"));
                return Some((i, report.action));
            }
        }
    }
    None
}

#[test]
fn range_with_ports_decides_at_the_last_packet_the_kernel_hands_over() {
    // NFLOG: `ct original packets < 8` delivers packets 1..=7.
    let mut e = engine(EngineConfig {
        handover: Some(8),
        ..EngineConfig::default()
    });
    assert_eq!(labelled_at(&mut e, 7), Some((7, Action::Block)));
}

#[test]
fn without_a_handover_limit_the_inspection_budget_decides() {
    // AF_PACKET sees every packet: the label waits for the whole budget
    // (24 packets), as it always did; 7 packets are not enough.
    let mut e = engine(EngineConfig::default());
    assert_eq!(labelled_at(&mut e, 7), None);
    let mut e = engine(EngineConfig::default());
    assert_eq!(labelled_at(&mut e, 24).map(|(_, a)| a), Some(Action::Block));
}

#[test]
fn simulated_handover_drops_what_the_kernel_would_not_log() {
    let mut e = engine(EngineConfig {
        handover: Some(8),
        simulate_handover: true,
        ..EngineConfig::default()
    });
    let mut ev = Vec::new();
    let t0 = 1_700_000_000 * SEC;
    // Twenty client packets and twenty replies: the kernel logs the first
    // seven client packets only.
    for i in 0..20u64 {
        e.process_frame(
            t0 + i,
            LinkType::Ethernet,
            &udp_v4(CLIENT, 50001, SERVER, 4000, b"hello-world"),
            &mut ev,
        );
        e.process_frame(
            t0 + i,
            LinkType::Ethernet,
            &udp_v4(SERVER, 4000, CLIENT, 50001, b"olleh-dlrow"),
            &mut ev,
        );
    }
    // DNS answers in the reply direction of a flow the client started are
    // logged whatever the count (past the first packets at a rate the
    // simulation does not model).
    let resolver = Ipv4Addr::new(198, 51, 100, 53);
    let ans = dns_response(0x1234, "example.org", 1, &[SERVER.into()], 60, false);
    e.process_frame(
        t0 + 99,
        LinkType::Ethernet,
        &udp_v4(
            CLIENT,
            40000,
            resolver,
            53,
            &dns_query(0x1234, "example.org", 1),
        ),
        &mut ev,
    );
    for i in 0..10u64 {
        e.process_frame(
            t0 + 100 + i,
            LinkType::Ethernet,
            &udp_v4(resolver, 53, CLIENT, 40000, &ans),
            &mut ev,
        );
    }
    // Answers nobody asked for start a connection of their own: only its
    // first packets are logged.
    for i in 0..10u64 {
        e.process_frame(
            t0 + 200 + i,
            LinkType::Ethernet,
            &udp_v4(resolver, 53, CLIENT, 40001, &ans),
            &mut ev,
        );
    }
    let s = e.stats();
    assert_eq!(s.skipped_not_handed_over, 40 - 7 + 3);
    assert_eq!(s.packets, 7 + 1 + 10 + 7);
}
