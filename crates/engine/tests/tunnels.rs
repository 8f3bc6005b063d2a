//! Tunnels in the engine: `[decode] tunnels` comes with the policy, so a
//! reload (`set_policy`) opens or closes a tunnel for the packets after it;
//! an inner flow never yields a kernel-bound block.

use std::net::Ipv4Addr;
use std::sync::Arc;

use geofence_classify::SignatureDb;
use geofence_decode::LinkType;
use geofence_engine::{Engine, EngineConfig, Event};
use geofence_geo::GeoDb;
use geofence_policy::{Action, Policy};
use geofence_testkit::encap::gtpu;
use geofence_testkit::mmdb::geoip2_country;
use geofence_testkit::pcap::{ip_packet, udp_v4};
use geofence_testkit::wire::zoom_sfu_hello;

fn policy(tunnels: &str) -> Arc<Policy> {
    let cfg = geofence_policy::load_str(
        "t.toml",
        &format!(
            "[geoip]\ndatabases = [\"t.mmdb\"]\n[signatures]\ndirs = []\n[decode]\ntunnels = [{tunnels}]\n\
             [jurisdictions]\nprc = [\"CN\"]\n[[rule]]\nname = \"no-conf-prc\"\napps = [\"conferencing\"]\n\
             to = [\"prc\"]\naction = \"block\"\n"
        ),
    )
    .expect("policy");
    Arc::new(Policy::from_config(&cfg).expect("compile"))
}

#[test]
fn reload_opens_and_closes_a_tunnel() {
    let geo = GeoDb::from_sources(vec![(
        "geo".to_string(),
        geoip2_country(&[("203.0.113.0/24", "CN", None)]).to_bytes(),
    )])
    .expect("geo");
    let mut e = Engine::new(
        EngineConfig::default(),
        Arc::new(SignatureDb::builtin()),
        Arc::new(geo),
        policy(""),
    );
    let outer = (Ipv4Addr::new(10, 0, 0, 66), Ipv4Addr::new(198, 51, 100, 50));
    let frame = |client_port: u16| {
        let inner = ip_packet(&udp_v4(
            Ipv4Addr::new(10, 0, 0, 9),
            client_port,
            Ipv4Addr::new(203, 0, 113, 99),
            8801,
            &zoom_sfu_hello(),
        ))
        .to_vec();
        udp_v4(outer.0, 2152, outer.1, 2152, &gtpu(1, false, &inner))
    };
    let mut out = Vec::new();
    e.process_frame(1, LinkType::Ethernet, &frame(50000), &mut out);
    assert!(
        out.is_empty(),
        "closed: no inner flow, nothing labelled: {out:?}"
    );
    assert_eq!(e.stats().tunnelled_packets, 0);

    e.set_policy(policy("\"gtpu\""));
    e.process_frame(2, LinkType::Ethernet, &frame(50001), &mut out);
    let Some(Event::Labelled { report, .. }) = out.first() else {
        panic!("open: the inner flow is labelled: {out:?}");
    };
    assert_eq!(report.app.as_ref().map(|a| a.as_str()), Some("zoom"));
    assert_eq!(report.tunnel, Some("gtpu"));
    assert_eq!(report.tunnel_src, Some(outer.0.into()));
    assert_eq!(report.action, Action::Alert, "never a kernel block");
    assert_eq!(report.rule_index, None);
    assert_eq!(e.stats().tunnelled_packets, 1);

    out.clear();
    e.set_policy(policy(""));
    e.process_frame(3, LinkType::Ethernet, &frame(50002), &mut out);
    assert!(out.is_empty(), "closed again: {out:?}");
    assert_eq!(e.stats().tunnelled_packets, 1);
}
