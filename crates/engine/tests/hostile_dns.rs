//! Forged DNS against the engine (issue 7, finding 1 and the source-port-53
//! part of finding 4): answers nobody asked for, answers to another
//! client, wrong ids and questions, absurd TTLs, cross-family answers and a
//! UDP client bound to port 53.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use geofence_classify::Method;
use geofence_decode::LinkType;
use geofence_engine::{
    DnsLearned, DnsScope, Engine, EngineConfig, Event, FlowOnlyReason, ServerWideReason,
    CROSS_FAMILY_BUDGET,
};
mod common;
use common::cn_engine_in;
use geofence_testkit::pcap::{tcp_v4, udp_v4, TcpFlags};
use geofence_testkit::wire::{dns_query, dns_response, zoom_sfu_audio, zoom_sfu_hello};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
const OTHER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
const RESOLVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);
const CN_SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 14);
const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * SEC;

fn engine(cfg: EngineConfig) -> Engine {
    cn_engine_in(
        cfg,
        &[
            "203.0.113.0/24",
            "2001:db8:c::/48",
            // A Zoom-operated block (config/apps.d/zoom.toml), placed in CN
            // by this test's database.
            "2407:30c0::/32",
        ],
    )
}

fn feed(e: &mut Engine, t: u64, frame: &[u8]) -> Vec<Event> {
    let mut ev = Vec::new();
    e.process_frame(t, LinkType::Ethernet, frame, &mut ev);
    ev
}

fn dns_events(ev: &[Event]) -> Vec<&DnsLearned> {
    ev.iter()
        .filter_map(|x| match x {
            Event::Dns(d) => Some(d),
            _ => None,
        })
        .collect()
}

/// The label of the flow a SYN from `client` to `server` starts, if any.
fn syn_label(e: &mut Engine, t: u64, client: Ipv4Addr, server: Ipv4Addr) -> Option<String> {
    let ev = feed(
        e,
        t,
        &tcp_v4(client, 50000, server, 443, 1, TcpFlags::SYN, &[]),
    );
    ev.iter().find_map(|x| match x {
        Event::Labelled { report, .. } if report.dest_ip == IpAddr::V4(server) => Some(format!(
            "{}/{}/{}",
            report.app.as_ref().map(|a| a.as_str()).unwrap_or("-"),
            report.method.map(|m| m.as_str()).unwrap_or("-"),
            report.action
        )),
        _ => None,
    })
}

fn answer(id: u16, name: &str, addr: IpAddr, ttl: u32) -> Vec<u8> {
    let qtype = if addr.is_ipv4() { 1 } else { 28 };
    dns_response(id, name, qtype, &[addr], ttl, false)
}

#[test]
fn unsolicited_answer_teaches_nothing() {
    let mut e = engine(EngineConfig::default());
    // The forged answer: nobody asked.
    let ev = feed(
        &mut e,
        T0,
        &udp_v4(
            RESOLVER,
            53,
            CLIENT,
            40000,
            &answer(0x1122, "zoom.us", CN_SERVER.into(), 2_147_483_647),
        ),
    );
    assert!(dns_events(&ev).is_empty(), "{ev:?}");
    assert_eq!(syn_label(&mut e, T0 + SEC, CLIENT, CN_SERVER), None);
    let st = e.stats();
    assert_eq!(st.dns_trust.answers_unsolicited, 1);
    assert_eq!(st.dns_trust.answers_matched, 0);
}

#[test]
fn answer_to_one_client_does_not_label_another_clients_syn() {
    let mut e = engine(EngineConfig::default());
    feed(
        &mut e,
        T0,
        &udp_v4(
            CLIENT,
            40000,
            RESOLVER,
            53,
            &dns_query(0x1122, "zoom.us", 1),
        ),
    );
    let ev = feed(
        &mut e,
        T0 + SEC / 100,
        &udp_v4(
            RESOLVER,
            53,
            CLIENT,
            40000,
            &answer(0x1122, "zoom.us", CN_SERVER.into(), 60),
        ),
    );
    let d = dns_events(&ev);
    assert_eq!(d.len(), 1, "the answer to the client's own query counts");
    assert_eq!(d[0].scope, DnsScope::Client);
    assert_eq!(d[0].client, IpAddr::V4(CLIENT));
    assert_eq!(
        syn_label(&mut e, T0 + SEC, OTHER, CN_SERVER),
        None,
        "another client's SYN to the address is not labelled by that answer"
    );
    assert_eq!(
        syn_label(&mut e, T0 + 2 * SEC, CLIENT, CN_SERVER).as_deref(),
        Some("zoom/dns/block")
    );
}

#[test]
fn wrong_id_wrong_question_and_replays_teach_nothing() {
    let mut e = engine(EngineConfig::default());
    feed(
        &mut e,
        T0,
        &udp_v4(
            CLIENT,
            40000,
            RESOLVER,
            53,
            &dns_query(0x1122, "zoom.us", 1),
        ),
    );
    let forged = [
        // Wrong transaction id.
        answer(0x1123, "zoom.us", CN_SERVER.into(), 60),
        // Wrong question (name).
        answer(0x1122, "us04web.zoom.us", CN_SERVER.into(), 60),
        // Wrong question (type: AAAA asked as A).
        dns_response(0x1122, "zoom.us", 28, &[CN_SERVER.into()], 60, false),
    ];
    for (i, a) in forged.iter().enumerate() {
        let ev = feed(
            &mut e,
            T0 + 1000 + i as u64,
            &udp_v4(RESOLVER, 53, CLIENT, 40000, a),
        );
        assert!(dns_events(&ev).is_empty(), "forgery {i}: {ev:?}");
    }
    // From another resolver address, or to another port of the client.
    let a = answer(0x1122, "zoom.us", CN_SERVER.into(), 60);
    let spoofed = Ipv4Addr::new(198, 51, 100, 54);
    assert!(dns_events(&feed(
        &mut e,
        T0 + 2000,
        &udp_v4(spoofed, 53, CLIENT, 40000, &a)
    ))
    .is_empty());
    assert!(dns_events(&feed(
        &mut e,
        T0 + 2001,
        &udp_v4(RESOLVER, 53, CLIENT, 40001, &a)
    ))
    .is_empty());
    assert_eq!(e.stats().dns_trust.answers_mismatched, 3);
    assert_eq!(syn_label(&mut e, T0 + SEC, CLIENT, CN_SERVER), None);

    // The real answer still matches; a replay of it does not.
    let other = Ipv4Addr::new(203, 0, 113, 15);
    let real = answer(0x1122, "zoom.us", other.into(), 60);
    let ev = feed(
        &mut e,
        T0 + 3000,
        &udp_v4(RESOLVER, 53, CLIENT, 40000, &real),
    );
    assert_eq!(dns_events(&ev).len(), 1);
    let ev = feed(
        &mut e,
        T0 + 3001,
        &udp_v4(RESOLVER, 53, CLIENT, 40000, &real),
    );
    assert!(dns_events(&ev).is_empty(), "a query is answered once");
}

/// An answer to `example.org` that also carries `zoom.us A addr`: a
/// record the question does not lead to.
fn stuffed_answer(id: u16, addr: Ipv4Addr) -> Vec<u8> {
    let mut m = dns_response(id, "example.org", 1, &[], 60, false);
    m[7] = 1; // ancount
    for l in ["zoom", "us"] {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
    m.extend_from_slice(&addr.octets());
    m
}

#[test]
fn records_the_question_does_not_lead_to_are_ignored() {
    let mut e = engine(EngineConfig::default());
    feed(
        &mut e,
        T0,
        &udp_v4(CLIENT, 40000, RESOLVER, 53, &dns_query(7, "example.org", 1)),
    );
    let ev = feed(
        &mut e,
        T0 + 1000,
        &udp_v4(RESOLVER, 53, CLIENT, 40000, &stuffed_answer(7, CN_SERVER)),
    );
    assert!(dns_events(&ev).is_empty(), "{ev:?}");
    assert_eq!(e.stats().dns_trust.answers_matched, 1);
    assert_eq!(e.stats().dns_records_off_question, 1);
    assert_eq!(syn_label(&mut e, T0 + SEC, CLIENT, CN_SERVER), None);
}

#[test]
fn huge_ttl_is_capped() {
    for (cap, expect) in [(None, 86_400u32), (Some(600u64), 600)] {
        let mut cfg = EngineConfig::default();
        if let Some(c) = cap {
            cfg.dns_ttl_cap_secs = c;
        }
        let mut e = engine(cfg);
        feed(
            &mut e,
            T0,
            &udp_v4(CLIENT, 40000, RESOLVER, 53, &dns_query(9, "zoom.us", 1)),
        );
        let ev = feed(
            &mut e,
            T0 + 1000,
            &udp_v4(
                RESOLVER,
                53,
                CLIENT,
                40000,
                &answer(9, "zoom.us", CN_SERVER.into(), 2_147_483_647),
            ),
        );
        let d = dns_events(&ev);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].ttl, expect, "capped");
        assert_eq!(d[0].ttl_received, 2_147_483_647);
        assert_eq!(e.stats().dns_ttl_capped, 1);
        let after = T0 + (u64::from(expect) + 2) * SEC;
        assert_eq!(
            syn_label(&mut e, after, CLIENT, CN_SERVER),
            None,
            "the name is forgotten once the capped TTL is over"
        );
        let mut e2 = engine(EngineConfig::default());
        feed(
            &mut e2,
            T0,
            &udp_v4(CLIENT, 40000, RESOLVER, 53, &dns_query(9, "zoom.us", 1)),
        );
        feed(
            &mut e2,
            T0 + 1000,
            &udp_v4(
                RESOLVER,
                53,
                CLIENT,
                40000,
                &answer(9, "zoom.us", CN_SERVER.into(), 2_147_483_647),
            ),
        );
        assert!(syn_label(&mut e2, T0 + 500 * SEC, CLIENT, CN_SERVER).is_some());
    }
}

#[test]
fn aaaa_answer_to_an_ipv4_client_blocks_server_wide_only_with_a_reason() {
    let mut e = engine(EngineConfig::default());
    let mut t = T0;
    let mut ask = |e: &mut Engine, id: u16, addr: Ipv6Addr| -> Vec<DnsLearned> {
        t += SEC / 10;
        feed(
            e,
            t,
            &udp_v4(CLIENT, 40000, RESOLVER, 53, &dns_query(id, "zoom.us", 28)),
        );
        let ev = feed(
            e,
            t + 1000,
            &udp_v4(
                RESOLVER,
                53,
                CLIENT,
                40000,
                &answer(id, "zoom.us", addr.into(), 60),
            ),
        );
        dns_events(&ev).into_iter().cloned().collect()
    };
    // Corroborated: the address is in Zoom's own ranges.
    let vendor: Ipv6Addr = "2407:30c0::10".parse().expect("ip");
    let d = ask(&mut e, 1, vendor);
    assert_eq!(d.len(), 1);
    assert!(d[0].decision.is_block());
    assert_eq!(
        d[0].scope,
        DnsScope::ServerWide(ServerWideReason::CrossFamilyVendorRange)
    );
    // Uncorroborated: server-wide within the client's budget, then not.
    for i in 0..CROSS_FAMILY_BUDGET {
        let addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0x100 + i as u16);
        let d = ask(&mut e, 100 + i as u16, addr);
        assert_eq!(
            d[0].scope,
            DnsScope::ServerWide(ServerWideReason::CrossFamilyWithinBudget),
            "answer {i}"
        );
    }
    let d = ask(&mut e, 999, "2001:db8:c::999".parse().expect("ip"));
    assert_eq!(
        d[0].scope,
        DnsScope::FlowOnly(FlowOnlyReason::CrossFamilyBudgetSpent)
    );
    assert_eq!(e.stats().dns_cross_family_refused, 1);
    assert!(e.stats().pressure() >= 1, "budget exhaustion is pressure");
}

#[test]
fn udp_client_on_source_port_53_is_inspected_and_labelled() {
    for fake_answer_first in [false, true] {
        let mut e = engine(EngineConfig::default());
        let mut ev = Vec::new();
        if fake_answer_first {
            // Try to pass the flow off as DNS with a well-formed answer.
            ev.extend(feed(
                &mut e,
                T0,
                &udp_v4(
                    CLIENT,
                    53,
                    CN_SERVER,
                    8801,
                    &answer(1, "example.org", CN_SERVER.into(), 60),
                ),
            ));
        }
        ev.extend(feed(
            &mut e,
            T0 + SEC / 10,
            &udp_v4(CLIENT, 53, CN_SERVER, 8801, &zoom_sfu_hello()),
        ));
        for i in 0..4u16 {
            ev.extend(feed(
                &mut e,
                T0 + SEC / 5 + u64::from(i),
                &udp_v4(CLIENT, 53, CN_SERVER, 8801, &zoom_sfu_audio(i)),
            ));
        }
        let r = ev
            .iter()
            .find_map(|x| match x {
                Event::Labelled { report, .. } => Some(report),
                _ => None,
            })
            .unwrap_or_else(|| {
                panic!("flow from source port 53 labelled ({fake_answer_first}): {ev:?}")
            });
        assert_eq!(r.app.as_ref().map(|a| a.as_str()), Some("zoom"));
        assert_eq!(r.method, Some(Method::Payload));
        assert_eq!(r.action, geofence_policy::Action::Block);
        assert_eq!(r.src_ip, IpAddr::V4(CLIENT));
        assert_eq!(r.src_port, 53);
        assert_eq!(r.dest_port, 8801);
        assert_eq!(e.stats().dns_port_not_dns, u64::from(fake_answer_first));
    }
}
