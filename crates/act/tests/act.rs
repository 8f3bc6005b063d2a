//! Events to actions, without a kernel: what the daemon sends its
//! enforcement thread (and what replay counts) for each kind of decision.

use std::net::IpAddr;
use std::time::Duration;

use geofence_act::{act, redecide, Actions, Settings};
use geofence_classify::{AppId, Method};
use geofence_engine::{DnsLearned, DnsScope, Event, FlowOnlyReason, FlowReport, ServerWideReason};
use geofence_geo::{AddressScope, GeoDb, GeoInfo};
use geofence_policy::{Action, DecidedBy, Decision, RuleRef, Verdict};
use geofence_testkit::mmdb::geoip2_country;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn settings(enforce: bool) -> Settings {
    Settings {
        enforce,
        dns_floor: Duration::from_secs(300),
        detection: Duration::from_secs(600),
        community_id_seed: 0,
        flow_salt: 0,
    }
}

fn report(action: Action, answered: bool) -> FlowReport {
    FlowReport {
        pcap: None,
        proto: "tcp",
        src_ip: ip("192.0.2.10"),
        src_port: 50000,
        dest_ip: ip("203.0.113.10"),
        dest_port: 443,
        app: Some(AppId::new("zoom").expect("id")),
        method: Some(Method::TlsSni),
        host: Some("zoom.us".to_string()),
        country: Some("CN".to_string()),
        registered_country: None,
        asn: None,
        as_org: None,
        jurisdiction: Some("prc".to_string()),
        action,
        rule: Some("no-conf-prc".to_string()),
        verdict: (action == Action::Block).then_some(Verdict::Reject),
        evidence: None,
        tunnel: None,
        tunnel_src: None,
        tunnel_dst: None,
        packets: 3,
        bytes: 400,
        first_ts_ns: 1,
        last_ts_ns: 2,
        rule_index: Some(2),
        answered,
    }
}

fn labelled(r: FlowReport) -> Event {
    Event::Labelled {
        report: r,
        packet_ts_ns: 42,
    }
}

#[test]
fn a_blocked_flow_becomes_a_client_keyed_element_and_a_cut_when_live() {
    let Actions::Block { block, alert } = act(
        &labelled(report(Action::Block, true)),
        &settings(true),
        false,
    ) else {
        panic!("expected a block");
    };
    assert_eq!(block.elem.rule_index, 2);
    assert_eq!(block.elem.src, Some(ip("192.0.2.10")));
    assert_eq!(block.elem.dst, ip("203.0.113.10"));
    assert!(
        block.elem.timeout >= Duration::from_secs(540)
            && block.elem.timeout <= Duration::from_secs(660)
    );
    assert_eq!(block.cut, Some((ip("192.0.2.10"), ip("203.0.113.10"))));
    assert_eq!(block.decided_ns, 42);
    assert_eq!(alert.verdict.as_deref(), Some("reject"));
    assert!(
        alert.reason.starts_with("blocked (rejected): zoom"),
        "{}",
        alert.reason
    );

    // Not answered yet: nothing to cut, unless a reload re-decided it.
    let Actions::Block { block, .. } = act(
        &labelled(report(Action::Block, false)),
        &settings(true),
        false,
    ) else {
        panic!("expected a block");
    };
    assert_eq!(block.cut, None);
    let Actions::Block { block, alert } = act(
        &labelled(report(Action::Block, false)),
        &settings(true),
        true,
    ) else {
        panic!("expected a block");
    };
    assert!(block.cut.is_some());
    assert!(alert.evidence.as_deref().unwrap_or("").contains("reload"));
}

#[test]
fn monitor_mode_alerts_without_a_verdict_and_allow_does_nothing() {
    let Actions::Alert(a) = act(
        &labelled(report(Action::Block, true)),
        &settings(false),
        false,
    ) else {
        panic!("expected an alert only");
    };
    assert_eq!(a.verdict, None);
    assert!(
        a.reason.starts_with("monitor mode, not enforced"),
        "{}",
        a.reason
    );
    assert!(matches!(
        act(
            &labelled(report(Action::Allow, true)),
            &settings(true),
            false
        ),
        Actions::None
    ));
    assert!(matches!(
        act(
            &labelled(report(Action::Alert, true)),
            &settings(true),
            false
        ),
        Actions::Alert(_)
    ));
}

fn dns(client: &str, addr: &str, ttl: u32, scope: DnsScope) -> Event {
    Event::Dns(DnsLearned {
        ttl_received: ttl,
        scope,
        ts_ns: 7,
        client: ip(client),
        resolver: ip("198.51.100.53"),
        addr: ip(addr),
        name: "zoom.us".to_string(),
        app: AppId::new("zoom").expect("id"),
        ttl,
        geo: GeoInfo::unknown(AddressScope::of(ip(addr))),
        decision: Decision {
            action: Action::Block,
            decided_by: DecidedBy::Rule,
            rule: Some(RuleRef {
                index: 1,
                name: "r".to_string(),
            }),
            jurisdiction: Some("prc".to_string()),
            country: None,
            basis: None,
            verdict: Verdict::Drop,
        },
    })
}

#[test]
fn dns_blocks_last_the_ttl_or_the_floor_and_cross_family_is_server_wide() {
    let Actions::Block { block, .. } = act(
        &dns("192.0.2.10", "203.0.113.10", 30, DnsScope::Client),
        &settings(true),
        false,
    ) else {
        panic!("expected a block");
    };
    assert_eq!(block.elem.src, Some(ip("192.0.2.10")));
    // TTL 30 s is below the 300 s floor.
    assert!(
        block.elem.timeout >= Duration::from_secs(270)
            && block.elem.timeout <= Duration::from_secs(330)
    );
    assert_eq!(block.cut, None);
    let Actions::Block { block, .. } = act(
        &dns(
            "192.0.2.10",
            "2001:db8:c::10",
            3600,
            DnsScope::ServerWide(ServerWideReason::CrossFamilyVendorRange),
        ),
        &settings(true),
        false,
    ) else {
        panic!("expected a block");
    };
    assert_eq!(
        block.elem.src, None,
        "AAAA to an IPv4 client cannot be keyed by client"
    );
    assert!(block.elem.timeout >= Duration::from_secs(3240));
    // The reason is in the alert.
    let Actions::Block { alert, .. } = act(
        &dns(
            "192.0.2.10",
            "2001:db8:c::10",
            3600,
            DnsScope::ServerWide(ServerWideReason::CrossFamilyVendorRange),
        ),
        &settings(true),
        false,
    ) else {
        panic!("expected a block");
    };
    assert!(
        alert
            .evidence
            .as_deref()
            .unwrap_or("")
            .contains("blocked for every client"),
        "{:?}",
        alert.evidence
    );
    // Flow-only: an alert, nothing for the kernel ahead of the flow.
    assert!(matches!(
        act(
            &dns(
                "192.0.2.10",
                "2001:db8:c::10",
                3600,
                DnsScope::FlowOnly(FlowOnlyReason::CrossFamilyBudgetSpent),
            ),
            &settings(true),
            false,
        ),
        Actions::Alert(_)
    ));
}

#[test]
fn redecide_follows_the_policy_it_is_given() {
    let config = geofence_policy::load_str(
        "t.toml",
        "[geoip]\ndatabases = [\"t.mmdb\"]\n[signatures]\ndirs = []\n[jurisdictions]\nprc = [\"CN\"]\n\
         [[rule]]\nname = \"a\"\napps = [\"zoom\"]\nto = [\"prc\"]\naction = \"alert\"\n\
         [[rule]]\nname = \"b\"\napps = [\"conferencing\"]\nto = [\"prc\"]\naction = \"block\"\n",
    )
    .expect("policy");
    let policy = geofence_policy::Policy::from_config(&config).expect("compile");
    let geo = GeoDb::from_sources(vec![(
        "g".to_string(),
        geoip2_country(&[("203.0.113.0/24", "CN", None)]).to_bytes(),
    )])
    .expect("geo");
    let elem = geofence_nft::model::DynElement {
        rule_index: 0,
        src: Some(ip("192.0.2.10")),
        dst: ip("203.0.113.10"),
        timeout: Duration::from_secs(60),
    };
    // Zoom is only alerted now: the block goes.
    assert_eq!(
        redecide(&policy, &geo, &elem, AppId::new("zoom").ok().as_ref()),
        None
    );
    // Teams falls to the block rule at index 1: the block moves there.
    assert_eq!(
        redecide(&policy, &geo, &elem, AppId::new("teams").ok().as_ref()),
        Some(1)
    );
    // Outside the jurisdiction nothing blocks.
    let de = geofence_nft::model::DynElement {
        dst: ip("198.51.100.1"),
        ..elem
    };
    assert_eq!(
        redecide(&policy, &geo, &de, AppId::new("teams").ok().as_ref()),
        None
    );
}

#[test]
fn flow_alerts_carry_a_stable_flow_id_and_the_community_id() {
    let s = settings(true);
    let first = geofence_act::alert_from_flow(&report(Action::Block, true), &s);
    let again = geofence_act::alert_from_flow(&report(Action::Alert, false), &s);
    let id = first.flow_id.expect("flow_id");
    assert_eq!(again.flow_id, Some(id), "one flow, one id");
    assert!(id < 1 << 53, "exact in JSON doubles: {id}");
    let other_run = Settings {
        flow_salt: 0x1234_5678_9abc_def0,
        ..s
    };
    let b = geofence_act::alert_from_flow(&report(Action::Block, true), &other_run);
    assert_ne!(b.flow_id, Some(id), "another daemon run gives other ids");
    let mut later = report(Action::Block, true);
    later.first_ts_ns = 2;
    assert_ne!(
        geofence_act::alert_from_flow(&later, &s).flow_id,
        Some(id),
        "the same 5-tuple reused later is another flow"
    );
    assert_eq!(
        first.community_id,
        geofence_alert::community_id_v1(0, 6, ip("192.0.2.10"), 50000, ip("203.0.113.10"), 443)
    );
    let seeded = Settings {
        community_id_seed: 1,
        ..s
    };
    let c = geofence_act::alert_from_flow(&report(Action::Block, true), &seeded);
    assert_ne!(c.community_id, first.community_id, "the seed is used");
    let mut icmp = report(Action::Block, true);
    icmp.proto = "icmp";
    assert_eq!(
        geofence_act::alert_from_flow(&icmp, &s).community_id,
        None,
        "no type/code, no Community ID"
    );
}

/// The example line in docs/alerts.md ("A real alert") is this test's
/// output: the action stage's alert for a rejected Zoom flow, written by
/// `AlertLog` with a gateway name, byte for byte.
#[test]
fn documented_alert_line_is_real_output() {
    let mut r = report(Action::Block, true);
    r.src_ip = ip("192.0.2.10");
    r.src_port = 50123;
    r.host = Some("zoomfrn99mmr.zoom.us".to_string());
    r.rule = Some("no-conferencing-to-prc".to_string());
    r.first_ts_ns = 1_795_862_460_123_456_000;
    r.evidence = Some("ClientHello server_name".to_string());
    let Actions::Block { mut alert, .. } = act(&labelled(r), &settings(true), false) else {
        panic!("a block");
    };
    alert.timestamp = "2026-11-27T10:41:00.123456Z".to_string();
    alert.enforced_within_us = Some(412);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.jsonl");
    let opts = geofence_alert::AlertLogOptions {
        host: Some("gw-berlin-1".to_string()),
        ..Default::default()
    };
    let mut log = geofence_alert::AlertLog::open_with(&path, opts).expect("open");
    log.write(&alert);
    drop(log);
    let line = std::fs::read_to_string(&path).expect("read");
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/alerts.md"))
            .expect("docs/alerts.md");
    assert!(
        docs.lines().any(|l| l == line.trim_end()),
        "docs/alerts.md must show this line verbatim:\n{line}"
    );
}
