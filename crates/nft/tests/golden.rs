//! Golden-file tests of the pure renderer (`nft -f` syntax), plus structural
//! checks of the rendered description. Regenerate with `UPDATE_GOLDEN=1`.

use geofence_geo::IpRanges;
use geofence_nft::render::{ChainHook, KeyType, Stmt};
use geofence_nft::{
    render, Hook, NflogSpec, RuleSpec, RulesetSpec, Transport, Verdict, DEFAULT_PRIORITY,
};

fn cidrs(c: &[&str]) -> IpRanges {
    IpRanges::from_cidrs(c).expect("cidrs")
}

fn gateway() -> RulesetSpec {
    RulesetSpec {
        table: "geofence".into(),
        hook: Hook::Forward,
        priority: DEFAULT_PRIORITY,
        enforce: true,
        dns_redirect: None,
        nflog: Some(NflogSpec {
            group: 7,
            first_packets: 4,
            snaplen: 256,
            dns_answers: true,
            dns_rate_per_sec: geofence_nft::model::DNS_RATE_PER_SEC,
        }),
        rules: vec![
            RuleSpec {
                index: 0,
                name: "Block all traffic to CN".into(),
                verdict: Verdict::Reject,
                src: Some(cidrs(&["198.51.100.0/24", "2001:db8:1::/64"])),
                static_dst: Some(
                    cidrs(&[
                        "203.0.113.10/32",
                        "203.0.113.64/26",
                        "240.0.0.0/4",
                        "2001:db8:2::10/128",
                    ])
                    .union(&IpRanges::from_ranges(
                        vec![(0xCB00_71C8, 0xCB00_71D2)],
                        vec![],
                    )),
                ),
                static_ports: vec![],
                dynamic: true,
            },
            RuleSpec {
                index: 1,
                name: "Zoom \"media\" in RU".into(),
                verdict: Verdict::Drop,
                src: None,
                static_dst: Some(IpRanges::from_ranges(
                    vec![(0xCB00_7180, 0xCB00_7185)],
                    vec![],
                )),
                static_ports: vec![(Transport::Udp, 8801, 8810), (Transport::Tcp, 443, 443)],
                dynamic: false,
            },
        ],
    }
}

fn host_monitor() -> RulesetSpec {
    RulesetSpec {
        table: "geofence".into(),
        hook: Hook::Output,
        priority: DEFAULT_PRIORITY,
        enforce: false,
        dns_redirect: None,
        nflog: Some(NflogSpec {
            group: 3,
            first_packets: 6,
            snaplen: 512,
            dns_answers: true,
            dns_rate_per_sec: geofence_nft::model::DNS_RATE_PER_SEC,
        }),
        rules: vec![RuleSpec {
            index: 4,
            name: "Teams to HK (alert)".into(),
            verdict: Verdict::Reject,
            src: None,
            static_dst: None,
            static_ports: vec![],
            dynamic: true,
        }],
    }
}

fn reject_ports() -> RulesetSpec {
    RulesetSpec {
        table: "gf_test".into(),
        hook: Hook::Forward,
        priority: -150,
        enforce: true,
        dns_redirect: None,
        nflog: None,
        rules: vec![RuleSpec {
            index: 2,
            name: "STUN to MO".into(),
            verdict: Verdict::Reject,
            src: Some(cidrs(&["198.51.100.7"])),
            static_dst: Some(cidrs(&["0.0.0.0/0", "::/0"])),
            static_ports: vec![(Transport::Udp, 3478, 3481), (Transport::Tcp, 3478, 3478)],
            dynamic: false,
        }],
    }
}

fn check(name: &str, spec: &RulesetSpec) {
    let text = render(spec).to_string();
    let path = format!("{}/tests/golden/{name}.nft", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).expect("write golden");
    }
    let want =
        std::fs::read_to_string(&path).expect("golden file (run with UPDATE_GOLDEN=1 to create)");
    assert_eq!(text, want, "rendering of {name} differs from {path}");
}

#[test]
fn golden_gateway_enforce() {
    check("gateway_enforce", &gateway());
}

#[test]
fn golden_gateway_dns_gate() {
    let mut spec = gateway();
    spec.dns_redirect = Some(geofence_nft::model::DnsRedirect {
        v4: Some("192.0.2.1:53".parse().expect("v4")),
        v6: Some("[2001:db8::1]:5353".parse().expect("v6")),
    });
    check("gateway_dns_gate", &spec);
    let rs = render(&spec);
    let nat = rs
        .chains
        .iter()
        .find(|c| c.name == "dns_gate")
        .expect("nat chain");
    assert_eq!(nat.kind, geofence_nft::render::ChainKind::Nat);
    assert_eq!(nat.hook, ChainHook::Prerouting);
    assert_eq!(nat.rules.len(), 4, "udp and tcp for each family");
    // Forwarded DNS that escaped the redirect is rejected, in a chain of
    // its own (failing open removes the gate's chains and nothing else).
    let fwd = rs
        .chains
        .iter()
        .find(|c| c.name == "dns_gate_forward")
        .expect("forward chain");
    assert_eq!(fwd.hook, ChainHook::Forward);
    assert!(fwd.rules.iter().all(|r| r.is_verdict()));
    assert!(!rs.chains[0]
        .rules
        .iter()
        .any(|r| r.comment.contains("dns gate")));
    // Monitor mode redirects but never rejects.
    spec.enforce = false;
    let rs = render(&spec);
    assert!(rs.chains.iter().any(|c| c.name == "dns_gate"));
    assert!(!rs.chains.iter().any(|c| c.name == "dns_gate_forward"));
    // Host mode has no redirect.
    spec.hook = Hook::Output;
    assert!(!render(&spec).chains.iter().any(|c| c.name == "dns_gate"));
}

#[test]
fn golden_host_monitor() {
    check("host_monitor", &host_monitor());
}

#[test]
fn golden_reject_ports() {
    check("reject_ports", &reject_ports());
}

#[test]
fn monitor_mode_has_no_verdicts_but_keeps_sets_and_capture() {
    let rs = render(&host_monitor());
    assert!(rs
        .chains
        .iter()
        .flat_map(|c| &c.rules)
        .all(|r| !r.is_verdict()));
    assert_eq!(
        rs.sets.len(),
        4,
        "dynamic sets exist so the engine can still record detections"
    );
    // Host mode: DNS answers arrive on input, not output.
    let input = rs
        .chains
        .iter()
        .find(|c| c.hook == ChainHook::Input)
        .expect("input chain");
    assert_eq!(input.rules.len(), 4);
    assert!(input.rules.iter().all(|r| r
        .stmts
        .iter()
        .any(|s| matches!(s, Stmt::Sport { port: 53, .. }))));
    // Answers are logged only as the reply direction of a tracked flow.
    assert!(input
        .rules
        .iter()
        .all(|r| r.stmts.contains(&Stmt::CtDirectionReply)));
    // Every DNS rule is bounded: per flow (first packets) or by a rate.
    for r in rs.chains.iter().flat_map(|c| &c.rules) {
        if r.stmts.iter().any(|s| {
            matches!(
                s,
                Stmt::Sport { port: 53, .. } | Stmt::Dport { lo: 53, hi: 53, .. }
            )
        }) {
            assert!(
                r.stmts
                    .iter()
                    .any(|s| matches!(s, Stmt::CtReplyPacketsLt(_) | Stmt::LimitPerSecond(_))),
                "unbounded DNS log rule: {r}"
            );
        }
    }
    // Dynamic sets have a size.
    assert!(rs.sets.iter().all(|s| s.size.is_some()));
    let mut enforcing = host_monitor();
    enforcing.enforce = true;
    let rs = render(&enforcing);
    assert_eq!(
        rs.chains[0].rules.iter().filter(|r| r.is_verdict()).count(),
        8
    );
}

#[test]
fn logging_comes_before_verdicts_and_every_verdict_counts() {
    let rs = render(&gateway());
    let rules = &rs.chains[0].rules;
    let first_verdict = rules.iter().position(|r| r.is_verdict()).expect("verdict");
    let last_log = rules
        .iter()
        .rposition(|r| r.stmts.iter().any(|s| matches!(s, Stmt::Log { .. })))
        .expect("log");
    assert!(last_log < first_verdict);
    for r in rules.iter().filter(|r| r.is_verdict()) {
        let c = r
            .stmts
            .iter()
            .position(|s| *s == Stmt::Counter)
            .expect("counter");
        assert_eq!(
            c + 2,
            r.stmts.len(),
            "counter right before the verdict in {r}"
        );
    }
    // Every rule comment is unique: counters and verification key on them.
    let mut comments: Vec<_> = rules.iter().map(|r| r.comment.clone()).collect();
    comments.sort();
    comments.dedup();
    assert_eq!(comments.len(), rules.len());
}

#[test]
fn reject_splits_tcp_reset_from_icmpx_and_ports_pick_one() {
    let rs = render(&reject_ports());
    let rules = &rs.chains[0].rules;
    // Per family: udp range -> icmpx only; tcp port -> reset only.
    assert_eq!(rules.len(), 4);
    for r in rules {
        let tcp = r.stmts.iter().any(|s| {
            matches!(
                s,
                Stmt::Dport {
                    proto: Transport::Tcp,
                    ..
                }
            )
        });
        let verdict = r.stmts.last().expect("stmt");
        if tcp {
            assert_eq!(*verdict, Stmt::RejectTcpReset);
        } else {
            assert_eq!(*verdict, Stmt::RejectIcmpxAdminProhibited);
        }
    }
    let g = render(&gateway());
    let pair = g.set("r0_dyn_v6").expect("pair set");
    assert_eq!(
        pair.key,
        KeyType::AddrPair(geofence_nft::render::Family::V6)
    );
    assert!(pair.timeout && !pair.interval);
    assert_eq!(g.set("r0_dst_v4").expect("dst").range_count(), 4);
}

#[test]
fn names_are_sanitised_for_comments() {
    let rs = render(&gateway());
    let text = rs.to_string();
    assert!(text.contains("comment \"r1/static/v4/udp:8801-8810 Zoom _media_ in RU\""));
    assert!(rs
        .to_nft_script()
        .starts_with("table inet geofence\ndelete table inet geofence\ntable inet geofence {"));
}
