//! The pipeline on packets the tests build: flow tracking, labelling from
//! DNS answers before the first payload, TLS reassembly, socket inference,
//! bounded memory under a flood of new flows.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use geofence_classify::{Method, SignatureDb};
use geofence_decode::LinkType;
use geofence_engine::flow::TableConfig;
use geofence_engine::{Engine, EngineConfig, Event};
use geofence_geo::GeoDb;
mod common;
use common::cn_engine_in;
use geofence_testkit::mmdb::geoip2_country;
use geofence_testkit::pcap::{tcp_v4, udp_v4, udp_v6, TcpFlags};
use geofence_testkit::wire::{client_hello_padded, dns_query, dns_response};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
const RESOLVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);
const CN_SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

fn engine(cfg: EngineConfig) -> Engine {
    cn_engine_in(cfg, &["203.0.113.0/24", "2001:db8:c::/48"])
}

const SEC: u64 = 1_000_000_000;

#[test]
fn dns_answer_labels_the_next_flow_before_any_payload() {
    let mut e = engine(EngineConfig::default());
    let mut ev = Vec::new();
    let t0 = 1_700_000_000 * SEC;
    let ans = dns_response(0x1122, "eu01web.zoom.us", 1, &[CN_SERVER.into()], 30, false);
    e.process_frame(
        t0 - SEC / 100,
        LinkType::Ethernet,
        &udp_v4(
            CLIENT,
            40000,
            RESOLVER,
            53,
            &dns_query(0x1122, "eu01web.zoom.us", 1),
        ),
        &mut ev,
    );
    e.process_frame(
        t0,
        LinkType::Ethernet,
        &udp_v4(RESOLVER, 53, CLIENT, 40000, &ans),
        &mut ev,
    );
    let dns: Vec<_> = ev
        .iter()
        .filter_map(|x| match x {
            Event::Dns(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(dns.len(), 1, "one pre-emptive DNS event");
    assert_eq!(dns[0].app.as_str(), "zoom");
    assert_eq!(dns[0].client, CLIENT);
    assert_eq!(dns[0].addr, CN_SERVER);
    assert!(
        dns[0].decision.is_block(),
        "CN zoom is blocked by the policy"
    );
    ev.clear();
    // The SYN, 31 s later (past the 30 s TTL, inside the 300 s floor).
    e.process_frame(
        t0 + 31 * SEC,
        LinkType::Ethernet,
        &tcp_v4(CLIENT, 50000, CN_SERVER, 443, 1, TcpFlags::SYN, &[]),
        &mut ev,
    );
    let Some(Event::Labelled { report, .. }) = ev.first() else {
        panic!("the SYN itself is labelled: {ev:?}");
    };
    assert_eq!(report.app.as_ref().map(|a| a.as_str()), Some("zoom"));
    assert_eq!(report.method, Some(Method::Dns));
    assert_eq!(report.action, geofence_policy::Action::Block);
    assert_eq!(
        report.packets, 0,
        "decided before the first packet is counted"
    );
    // The DNS flow itself is never labelled.
    let reports = e.finish();
    let dnsflow = reports
        .iter()
        .find(|r| r.dest_port == 53)
        .expect("dns flow");
    assert!(dnsflow.app.is_none());
    assert_eq!(
        dnsflow.src_ip, CLIENT,
        "initiator is the client even though only the answer was seen"
    );
}

#[test]
fn dns_entries_expire_after_the_floor() {
    let mut e = engine(EngineConfig {
        dns_floor_secs: 60,
        ..EngineConfig::default()
    });
    let mut ev = Vec::new();
    let t0 = 1_700_000_000 * SEC;
    let ans = dns_response(0x1122, "zoom.us", 1, &[CN_SERVER.into()], 10, false);
    e.process_frame(
        t0 - SEC / 100,
        LinkType::Ethernet,
        &udp_v4(
            CLIENT,
            40000,
            RESOLVER,
            53,
            &dns_query(0x1122, "zoom.us", 1),
        ),
        &mut ev,
    );
    e.process_frame(
        t0,
        LinkType::Ethernet,
        &udp_v4(RESOLVER, 53, CLIENT, 40000, &ans),
        &mut ev,
    );
    ev.clear();
    e.process_frame(
        t0 + 61 * SEC,
        LinkType::Ethernet,
        &tcp_v4(CLIENT, 50000, CN_SERVER, 443, 1, TcpFlags::SYN, &[]),
        &mut ev,
    );
    assert!(ev.is_empty(), "expired name must not label: {ev:?}");
}

#[test]
fn split_client_hello_is_reassembled() {
    let mut e = engine(EngineConfig::default());
    let mut ev = Vec::new();
    let t = 1_700_000_000 * SEC;
    let srv = Ipv4Addr::new(198, 51, 100, 7);
    // Padded so the hello spans two segments.
    let hello = client_hello_padded("teams.microsoft.com", 256);
    let (a, b) = hello.split_at(100);
    e.process_frame(
        t,
        LinkType::Ethernet,
        &tcp_v4(CLIENT, 50001, srv, 443, 1000, TcpFlags::SYN, &[]),
        &mut ev,
    );
    e.process_frame(
        t + 1,
        LinkType::Ethernet,
        &tcp_v4(srv, 443, CLIENT, 50001, 5000, TcpFlags::SYN_ACK, &[]),
        &mut ev,
    );
    // Second segment first (reordered), then the first.
    e.process_frame(
        t + 2,
        LinkType::Ethernet,
        &tcp_v4(CLIENT, 50001, srv, 443, 1001 + 100, TcpFlags::ACK, b),
        &mut ev,
    );
    assert!(ev.is_empty(), "not decidable from the second half");
    e.process_frame(
        t + 3,
        LinkType::Ethernet,
        &tcp_v4(CLIENT, 50001, srv, 443, 1001, TcpFlags::ACK, a),
        &mut ev,
    );
    let Some(Event::Labelled {
        report,
        packet_ts_ns,
    }) = ev.first()
    else {
        panic!("labelled at the completing segment: {ev:?}");
    };
    assert_eq!(*packet_ts_ns, t + 3);
    assert_eq!(report.app.as_ref().map(|a| a.as_str()), Some("teams"));
    assert_eq!(report.method, Some(Method::TlsSni));
    assert_eq!(report.host.as_deref(), Some("teams.microsoft.com"));
    assert_eq!(
        report.action,
        geofence_policy::Action::Allow,
        "198.51.100.0/24 has no country in the test database"
    );
}

#[test]
fn mid_stream_capture_finds_the_initiator_by_ports() {
    let mut e = engine(EngineConfig::default());
    let mut ev = Vec::new();
    let srv = Ipv4Addr::new(198, 51, 100, 8);
    // First seen packet is the server's answer (from 443 to an ephemeral port).
    e.process_frame(
        SEC,
        LinkType::Ethernet,
        &tcp_v4(srv, 443, CLIENT, 51000, 1, TcpFlags::ACK, b"x"),
        &mut ev,
    );
    // And a SYN-ACK first: the receiver is the client.
    e.process_frame(
        SEC,
        LinkType::Ethernet,
        &tcp_v4(srv, 8443, CLIENT, 51001, 1, TcpFlags::SYN_ACK, &[]),
        &mut ev,
    );
    let r = e.finish();
    assert_eq!(r.len(), 2);
    for f in r {
        assert_eq!(f.src_ip, CLIENT);
        assert_eq!(f.dest_ip, srv);
    }
}

#[test]
fn udp_socket_of_an_identified_call_labels_its_sibling_flows() {
    let mut e = engine(EngineConfig::default());
    let mut ev = Vec::new();
    let t = 1_700_000_000 * SEC;
    let peer = Ipv4Addr::new(198, 51, 100, 99);
    // A generic UDP flow from the socket first (no signal of its own).
    e.process_frame(
        t,
        LinkType::Ethernet,
        &udp_v4(CLIENT, 45000, peer, 40000, &[0x42; 60]),
        &mut ev,
    );
    // Then Zoom SFU media from the same socket to a CN server.
    let mut sfu = vec![0x01, 0x00, 0x03];
    sfu.extend_from_slice(&[0; 40]);
    e.process_frame(
        t + SEC / 10,
        LinkType::Ethernet,
        &udp_v4(CLIENT, 45000, CN_SERVER, 8801, &sfu),
        &mut ev,
    );
    assert!(ev
        .iter()
        .any(|x| matches!(x, Event::Labelled { report, .. } if report.dest_port == 8801)));
    // The next sweep (a packet a second later) labels the sibling.
    ev.clear();
    e.process_frame(
        t + 2 * SEC,
        LinkType::Ethernet,
        &udp_v4(CLIENT, 45001, RESOLVER, 9999, &[1; 8]),
        &mut ev,
    );
    let sib = ev
        .iter()
        .find_map(|x| match x {
            Event::Labelled { report, .. } if report.dest_ip == peer => Some(report),
            _ => None,
        })
        .expect("sibling labelled");
    assert_eq!(sib.app.as_ref().map(|a| a.as_str()), Some("zoom"));
    // A different socket of the same client is not.
    let r = e.finish();
    let other = r.iter().find(|f| f.src_port == 45001).expect("other");
    assert!(other.app.is_none());
}

#[test]
fn ipv6_flows_are_labelled_and_decided_like_ipv4() {
    let mut e = engine(EngineConfig::default());
    let mut ev = Vec::new();
    let c6: Ipv6Addr = "2001:db8:1::2".parse().expect("ip");
    let s6: Ipv6Addr = "2001:db8:c::10".parse().expect("ip");
    let r6: Ipv6Addr = "2001:db8:1::53".parse().expect("ip");
    let ans = dns_response(0x1122, "zoom.us", 28, &[s6.into()], 60, false);
    e.process_frame(
        SEC - 1000,
        LinkType::Ethernet,
        &udp_v6(c6, 40000, r6, 53, &dns_query(0x1122, "zoom.us", 28)),
        &mut ev,
    );
    e.process_frame(
        SEC,
        LinkType::Ethernet,
        &udp_v6(r6, 53, c6, 40000, &ans),
        &mut ev,
    );
    assert!(ev
        .iter()
        .any(|x| matches!(x, Event::Dns(d) if d.addr == s6 && d.decision.is_block())));
    ev.clear();
    e.process_frame(
        2 * SEC,
        LinkType::Ethernet,
        &udp_v6(c6, 50000, s6, 8801, &[1; 30]),
        &mut ev,
    );
    let Some(Event::Labelled { report, .. }) = ev.first() else {
        panic!("{ev:?}")
    };
    assert_eq!(report.country.as_deref(), Some("CN"));
    assert_eq!(report.jurisdiction.as_deref(), Some("prc"));
}

#[test]
fn flow_table_stays_bounded_under_a_flood() {
    let mut e = engine(EngineConfig {
        table: TableConfig {
            max_flows: 1000,
            ..TableConfig::default()
        },
        ..EngineConfig::default()
    });
    let mut ev = Vec::new();
    let t = 1_700_000_000 * SEC;
    for i in 0..50_000u32 {
        let src = Ipv4Addr::from(0x0a00_0000 + i);
        // All within one second: nothing is idle, so eviction must act.
        e.process_frame(
            t + u64::from(i),
            LinkType::Ethernet,
            &udp_v4(src, 1024 + (i % 60000) as u16, CN_SERVER, 9, &[0; 16]),
            &mut ev,
        );
        assert!(e.stats().flows.live <= 1000);
    }
    let s = e.stats();
    assert_eq!(s.flows.created, 50_000);
    assert!(s.flows.evicted >= 49_000, "{s:?}");
    assert_eq!(s.flows.live, 1000);
}

#[test]
fn garbage_frames_are_counted_not_fatal() {
    let mut e = engine(EngineConfig::default());
    let mut ev = Vec::new();
    let mut x = 0x1234_5678_9abc_def0u64;
    for i in 0..20_000u64 {
        let len = (i % 200) as usize;
        let mut f = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            f.push(x as u8);
        }
        for link in [LinkType::Ethernet, LinkType::RawIp, LinkType::LinuxSll] {
            e.process_frame(i, link, &f, &mut ev);
        }
    }
    assert_eq!(e.stats().frames, 60_000);
    let _ = e.finish();
}

#[test]
fn all_traffic_rules_report_new_flows_at_their_first_packet() {
    let cfg = geofence_policy::load_str(
        "t.toml",
        "[geoip]\ndatabases = [\"t.mmdb\"]\n[jurisdictions]\nprc = [\"CN\"]\n\
         [[rule]]\nname = \"nothing-to-prc\"\nto = [\"prc\"]\naction = \"block\"\n",
    )
    .expect("policy");
    let policy = geofence_policy::Policy::from_config(&cfg).expect("compile");
    let geo = GeoDb::from_sources(vec![(
        "g".to_string(),
        geoip2_country(&[("203.0.113.0/24", "CN", None)]).to_bytes(),
    )])
    .expect("geo");
    let mut e = Engine::new(
        EngineConfig::default(),
        Arc::new(SignatureDb::builtin()),
        Arc::new(geo),
        Arc::new(policy),
    );
    let mut ev = Vec::new();
    e.process_frame(
        SEC,
        LinkType::Ethernet,
        &tcp_v4(CLIENT, 50000, CN_SERVER, 22, 1, TcpFlags::SYN, &[]),
        &mut ev,
    );
    e.process_frame(
        SEC + 1,
        LinkType::Ethernet,
        &tcp_v4(CLIENT, 50000, CN_SERVER, 22, 2, TcpFlags::ACK, &[]),
        &mut ev,
    );
    e.process_frame(
        SEC,
        LinkType::Ethernet,
        &tcp_v4(
            CLIENT,
            50001,
            Ipv4Addr::new(198, 51, 100, 1),
            22,
            1,
            TcpFlags::SYN,
            &[],
        ),
        &mut ev,
    );
    assert_eq!(ev.len(), 1, "one event, for the CN flow only: {ev:?}");
    let Event::AllTraffic { report, .. } = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(report.rule.as_deref(), Some("nothing-to-prc"));
    assert!(report.app.is_none());
}
