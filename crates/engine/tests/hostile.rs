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

fn run(e: &mut Engine, frames: &[Vec<u8>]) -> Vec<Event> {
    let mut ev = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        e.process_frame(T0 + i as u64 * 1000, LinkType::Ethernet, f, &mut ev);
    }
    ev
}

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

/// SYN, then `hello` cut into `seg`-byte segments.
fn segmented(server: Ipv4Addr, hello: &[u8], seg: usize) -> Vec<Vec<u8>> {
    let mut v = vec![tcp_v4(CLIENT, 40000, server, 443, 1000, TcpFlags::SYN, &[])];
    for (i, c) in hello.chunks(seg).enumerate() {
        let seq = 1001 + (i * seg) as u32;
        v.push(tcp_v4(
            CLIENT,
            40000,
            server,
            443,
            seq,
            TcpFlags::PSH_ACK,
            c,
        ));
    }
    v
}

fn one(ev: &[Event]) -> &FlowReport {
    let l = labelled(ev);
    assert_eq!(l.len(), 1, "{l:#?}");
    l[0]
}

/// Finding 4: a ClientHello written one byte per TCP segment is reassembled
/// (bounded by bytes, not segments) and decides.
#[test]
fn a_client_hello_one_byte_per_segment_is_reassembled() {
    let mut e = engine_with(EngineConfig::default(), POLICY);
    let ev = run(&mut e, &segmented(CN_SERVER, &client_hello("zoom.us"), 1));
    let r = one(&ev);
    assert_eq!(r.app.as_ref().map(|a| a.as_str()), Some("zoom"));
    assert_eq!(r.action.as_str(), "block");
}

/// Finding 4: SNI pushed past the first packets by a long padded hello in
/// many segments still decides when every packet is seen (AF_PACKET,
/// replay), and is undecidable, blocked only where an app rule blocks,
/// when the kernel hands over the first 7 only.
#[test]
fn sni_past_the_handed_over_packets_is_undecidable_not_allowed() {
    let hello = geofence_testkit::wire::client_hello_padded("zoom.us", 3000);
    let mut e = engine_with(EngineConfig::default(), POLICY);
    let r = one(&run(&mut e, &segmented(CN_SERVER, &hello, 100))).clone();
    assert_eq!(r.app.as_ref().map(|a| a.as_str()), Some("zoom"));
    assert_eq!(r.action.as_str(), "block");
    for (server, action) in [(CN_SERVER, "block"), (OTHER_SERVER, "allow")] {
        let mut e = engine_with(
            EngineConfig {
                handover: Some(8),
                ..EngineConfig::default()
            },
            POLICY,
        );
        let ev = run(&mut e, &segmented(server, &hello, 100));
        let r = one(&ev);
        assert_eq!(r.app, None);
        assert_eq!(r.method.map(|m| m.as_str()), Some("undecidable"));
        assert_eq!(r.action.as_str(), action, "{r:?}");
        if action == "block" {
            assert_eq!(r.rule.as_deref(), Some("no-conf-prc"));
        }
    }
}

/// Finding 4: a fake ClientHello (low TTL, never reaches the server) sent
/// before the real one over the same sequence range is evasion.
#[test]
fn conflicting_overlapping_hellos_are_evasion() {
    let fake = client_hello("exam.pl");
    let real = client_hello("zoom.us");
    assert_eq!(fake.len(), real.len());
    let mut frames = segmented(CN_SERVER, &fake, 2000);
    frames.push(tcp_v4(
        CLIENT,
        40000,
        CN_SERVER,
        443,
        1001,
        TcpFlags::PSH_ACK,
        &real,
    ));
    let mut e = engine_with(EngineConfig::default(), POLICY);
    let ev = run(&mut e, &frames);
    let r = one(&ev);
    assert_eq!(r.method.map(|m| m.as_str()), Some("undecidable"));
    assert!(
        r.evidence
            .as_deref()
            .is_some_and(|x| x.contains("conflicting")),
        "{r:?}"
    );
    assert_eq!(r.action.as_str(), "block");
    // The same bytes twice (an ordinary retransmission) are not.
    let mut frames = segmented(CN_SERVER, &fake, 2000);
    frames.push(tcp_v4(
        CLIENT,
        40000,
        CN_SERVER,
        443,
        1001,
        TcpFlags::PSH_ACK,
        &fake,
    ));
    let mut e = engine_with(EngineConfig::default(), POLICY);
    assert!(labelled(&run(&mut e, &frames)).is_empty());
}

/// Finding 4: junk datagrams (and a junk Initial under another connection
/// ID) before the real QUIC Initial do not end inspection.
#[test]
fn junk_before_a_quic_initial_does_not_end_inspection() {
    let hello = client_hello("zoom.us");
    let junk_initial =
        client_initial_datagram(VERSION_1, &[0x11; 8], 0, &[0xEE; 64], 1200).expect("junk initial");
    let real =
        client_initial_datagram(VERSION_1, &[0x22; 8], 0, &hello[5..], 1200).expect("initial");
    let mut frames: Vec<Vec<u8>> = (0..40u8)
        .map(|i| udp_v4(CLIENT, 40000, CN_SERVER, 443, &[0x40 | (i & 0x3f); 200]))
        .collect();
    frames.push(udp_v4(CLIENT, 40000, CN_SERVER, 443, &junk_initial));
    frames.push(udp_v4(CLIENT, 40000, CN_SERVER, 443, &real));
    let mut e = engine_with(EngineConfig::default(), POLICY);
    let ev = run(&mut e, &frames);
    let r = one(&ev);
    assert_eq!(r.app.as_ref().map(|a| a.as_str()), Some("zoom"));
    assert_eq!(r.action.as_str(), "block");
}

/// `[inspection] undecidable` says what an undecidable handshake gets.
#[test]
fn the_policy_chooses_what_undecidable_gets() {
    let hello = geofence_testkit::wire::client_hello_padded("zoom.us", 3000);
    for (setting, action) in [("allow", "allow"), ("alert", "alert"), ("block", "block")] {
        let policy = format!("{POLICY}[inspection]\nundecidable = \"{setting}\"\n");
        let mut e = engine_with(
            EngineConfig {
                handover: Some(8),
                ..EngineConfig::default()
            },
            &policy,
        );
        let ev = run(&mut e, &segmented(CN_SERVER, &hello, 100));
        let r = one(&ev);
        assert_eq!(r.method.map(|m| m.as_str()), Some("undecidable"));
        assert_eq!(r.action.as_str(), action);
    }
}

/// The live case: SYN, the handshake's ACK, then one byte per segment; the
/// kernel hands over 7 packets.
#[test]
fn one_byte_segments_past_the_handover_are_undecidable() {
    let hello = client_hello("zoom.us");
    let mut frames = vec![
        tcp_v4(CLIENT, 40000, CN_SERVER, 443, 1000, TcpFlags::SYN, &[]),
        tcp_v4(CLIENT, 40000, CN_SERVER, 443, 1001, TcpFlags::ACK, &[]),
    ];
    for (i, b) in hello.iter().enumerate() {
        let seq = 1001 + i as u32;
        frames.push(tcp_v4(
            CLIENT,
            40000,
            CN_SERVER,
            443,
            seq,
            TcpFlags::PSH_ACK,
            &[*b],
        ));
    }
    frames.truncate(7);
    let mut e = engine_with(
        EngineConfig {
            handover: Some(8),
            ..EngineConfig::default()
        },
        POLICY,
    );
    let ev = run(&mut e, &frames);
    let r = one(&ev);
    assert_eq!(r.method.map(|m| m.as_str()), Some("undecidable"));
    assert_eq!(r.action.as_str(), "block");
}
