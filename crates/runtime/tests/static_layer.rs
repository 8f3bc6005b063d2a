//! The kernel's static layer two ways: enumerated into interval sets by
//! `plan::ruleset_spec` (what the daemon loads) and as the point query
//! `plan::StaticLayer` (what replay reports). They must agree everywhere,
//! including `from`-scoped exceptions, which reach the kernel as accept
//! rules ahead of the block rules they except from.

use std::net::IpAddr;

use geofence_classify::SignatureDb;
use geofence_geo::GeoDb;
use geofence_nft::model::{RulesetSpec, Verdict};
use geofence_policy::Policy;
use geofence_runtime::plan::{ruleset_spec, StaticLayer};
use geofence_testkit::mmdb::geoip2_country;

const POLICY: &str = r#"
[geoip]
databases = ["t.mmdb"]
[signatures]
dirs = []
[jurisdictions]
prc = ["CN"]
hostile = ["RU"]

[[app]]
id = "rangeapp"
name = "Range app"
category = "conferencing"
cidrs = ["203.0.113.0/25", "2001:db8:c::/49"]

# The lab may call the PRC; nobody else may.
[[rule]]
name = "lab-exception"
from = ["192.0.2.128/25", "2001:db8:1:8000::/49"]
to = ["prc"]
action = "allow"

[[rule]]
name = "no-rangeapp-prc"
apps = ["rangeapp"]
to = ["prc"]
action = "block"

# Except one RU address from the alert rule: the block rule below takes it.
[[rule]]
name = "watch-ru"
to = ["hostile"]
except = ["198.51.100.7"]
action = "alert"

[[rule]]
name = "nothing-to-ru-or-unknown"
to = ["hostile", "unknown"]
except = ["8.8.8.5", "8.8.8.64/28", "2001:db8:e::5"]
action = "block"
"#;

fn setup() -> (geofence_policy::Config, Policy, SignatureDb, GeoDb) {
    let config = geofence_policy::load_str("t.toml", POLICY).expect("policy");
    let policy = Policy::from_config(&config).expect("compile");
    let mut defs = SignatureDb::builtin_defs();
    defs.extend(config.apps.iter().cloned());
    let sigs = SignatureDb::from_defs(defs).expect("sigs");
    let geo = GeoDb::from_sources(vec![(
        "geo".to_string(),
        geoip2_country(&[
            ("203.0.113.0/24", "CN", None),
            ("198.51.100.0/25", "RU", None),
            ("198.51.100.128/25", "DE", None),
            ("2001:db8:c::/48", "CN", None),
            ("2001:db8:d::/48", "RU", None),
        ])
        .to_bytes(),
    )])
    .expect("geo");
    (config, policy, sigs, geo)
}

/// What the rendered chain does: the first static rule that matches wins.
fn kernel(spec: &RulesetSpec, src: IpAddr, dst: IpAddr) -> Option<usize> {
    for r in &spec.rules {
        let src_ok = r.src.as_ref().is_none_or(|s| s.contains(src));
        let dst_ok = r.static_dst.as_ref().is_some_and(|d| d.contains(dst));
        if src_ok && dst_ok {
            return (r.verdict != Verdict::Accept).then_some(r.index);
        }
    }
    None
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[test]
fn point_query_agrees_with_the_enumerated_sets() {
    let (config, policy, sigs, geo) = setup();
    let spec = ruleset_spec(&config, &policy, &geo, &sigs);
    let layer = StaticLayer::new(&policy, &sigs);
    let sources = [
        "192.0.2.10",
        "192.0.2.200",
        "2001:db8:1::1",
        "2001:db8:1:8000::1",
    ];
    let mut checked = 0;
    for src in sources.iter().map(|s| ip(s)) {
        let v4 = (0..=255u8).flat_map(|h| {
            ["203.0.113", "198.51.100", "192.0.2", "8.8.8"]
                .into_iter()
                .map(move |net| ip(&format!("{net}.{h}")))
        });
        let v6 = (0..=255u16).flat_map(|h| {
            [
                "2001:db8:c:",
                "2001:db8:c:8000:",
                "2001:db8:d:",
                "2001:db8:e:",
            ]
            .into_iter()
            .map(move |net| ip(&format!("{net}:{h:x}")))
        });
        for dst in v4.chain(v6) {
            if src.is_ipv4() != dst.is_ipv4() {
                continue;
            }
            assert_eq!(
                layer.blocking_rule(&policy, &geo, src, dst),
                kernel(&spec, src, dst),
                "{src} -> {dst}"
            );
            checked += 1;
        }
    }
    assert!(checked > 2000, "{checked}");
}

#[test]
fn address_exceptions_are_cut_out_of_the_kernel_sets() {
    let (config, policy, sigs, geo) = setup();
    let spec = ruleset_spec(&config, &policy, &geo, &sigs);
    let layer = StaticLayer::new(&policy, &sigs);
    let src = ip("192.0.2.10");
    for (dst, want) in [
        ("8.8.8.5", None),
        ("8.8.8.4", Some(3)),
        ("8.8.8.6", Some(3)),
        ("8.8.8.64", None),
        ("8.8.8.79", None),
        ("8.8.8.80", Some(3)),
        ("198.51.100.7", Some(3)),
        ("198.51.100.8", None),
        ("2001:db8:e::5", None),
        ("2001:db8:e::6", Some(3)),
    ] {
        let s = if dst.contains(':') {
            ip("2001:db8:1::1")
        } else {
            src
        };
        assert_eq!(kernel(&spec, s, ip(dst)), want, "kernel, {dst}");
        assert_eq!(
            layer.blocking_rule(&policy, &geo, s, ip(dst)),
            want,
            "replay, {dst}"
        );
    }
}

#[test]
fn from_scoped_exception_reaches_the_kernel_ahead_of_the_block() {
    let (config, policy, sigs, geo) = setup();
    let spec = ruleset_spec(&config, &policy, &geo, &sigs);
    let exc = spec
        .rules
        .iter()
        .position(|r| r.verdict == Verdict::Accept)
        .expect("an accept rule for the scoped allow");
    let block = spec
        .rules
        .iter()
        .position(|r| r.name == "no-rangeapp-prc")
        .expect("block rule");
    assert!(exc < block, "the exception must come first");
    assert!(!spec.rules[exc].dynamic);
    // The lab reaches the PRC range; everyone else is stopped statically.
    let cn = ip("203.0.113.9");
    assert_eq!(kernel(&spec, ip("192.0.2.200"), cn), None);
    assert_eq!(kernel(&spec, ip("192.0.2.10"), cn), Some(1));
    let cn6 = ip("2001:db8:c::9");
    assert_eq!(kernel(&spec, ip("2001:db8:1:8000::1"), cn6), None);
    assert_eq!(kernel(&spec, ip("2001:db8:1::1"), cn6), Some(1));
    // An unscoped alert rule takes RU from the later block rule for all.
    assert_eq!(kernel(&spec, ip("192.0.2.10"), ip("198.51.100.5")), None);
    // Unknown (no country) is blocked; a DE address is not.
    assert_eq!(kernel(&spec, ip("192.0.2.10"), ip("8.8.8.8")), Some(3));
    assert_eq!(kernel(&spec, ip("192.0.2.10"), ip("198.51.100.200")), None);
}
