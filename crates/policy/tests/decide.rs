//! Decision semantics: first match wins, source scoping, by location /
//! operator / either, unknown, non-public destinations, alert, default,
//! the conferencing group, all-traffic rules, and explain.

use geofence_classify::AppId;
use geofence_geo::{AddressScope, CountryCode, GeoInfo};
use geofence_policy::{
    load_str, Action, Basis, By, DecidedBy, Decision, Miss, Policy, Query, Target, Verdict,
};
use std::net::IpAddr;

const HEAD: &str = "\
[geoip]
databases = [\"/var/lib/geofence/geoip/geo-whois-asn-country.mmdb\"]

[jurisdictions]
prc = [\"CN\"]
hk_macau = [\"HK\", \"MO\"]
russia = [\"RU\"]
";

fn policy(rules: &str) -> Policy {
    let text = format!("{HEAD}{rules}");
    let cfg = load_str("t.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Policy::from_config(&cfg).unwrap_or_else(|e| panic!("{e}"))
}

fn cc(s: &str) -> Option<CountryCode> {
    Some(s.parse().expect("country"))
}

fn geo(location: Option<&str>, registered: Option<&str>) -> GeoInfo {
    GeoInfo {
        scope: AddressScope::Public,
        country: location.and_then(cc),
        registered_country: registered.and_then(cc),
        asn: None,
        as_org: None,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn app(s: &str) -> AppId {
    AppId::new(s).expect("app id")
}

fn decide(p: &Policy, src: &str, app_id: Option<&str>, g: &GeoInfo) -> Decision {
    let a = app_id.map(app);
    p.decide(&Query {
        src: ip(src),
        dst: ip("203.0.113.10"),
        app: a.as_ref(),
        geo: g,
        host: None,
    })
}

fn rule_name(d: &Decision) -> Option<&str> {
    d.rule.as_ref().map(|r| r.name.as_str())
}

#[test]
fn first_match_wins() {
    let p = policy(
        "[[rule]]\nname = \"allow-zoom-hk\"\napps = [\"zoom\"]\nto = [\"hk_macau\"]\naction = \"allow\"\n\
         [[rule]]\nname = \"block-conf\"\napps = [\"conferencing\"]\nto = [\"prc\", \"hk_macau\"]\naction = \"block\"\n",
    );
    let hk = geo(Some("HK"), None);
    let d = decide(&p, "10.0.0.1", Some("zoom"), &hk);
    assert_eq!(
        (d.action, rule_name(&d)),
        (Action::Allow, Some("allow-zoom-hk"))
    );
    assert_eq!(d.rule.as_ref().map(|r| r.index), Some(0));
    let d = decide(&p, "10.0.0.1", Some("teams"), &hk);
    assert_eq!(
        (d.action, rule_name(&d)),
        (Action::Block, Some("block-conf"))
    );
    assert_eq!(d.rule.as_ref().map(|r| r.index), Some(1));
    assert_eq!(d.jurisdiction.as_deref(), Some("hk_macau"));
    assert_eq!(d.country, cc("HK"));
    assert_eq!(d.basis, Some(Basis::Location));
    assert_eq!(d.decided_by, DecidedBy::Rule);
    // Zoom to CN is not covered by rule 0, falls to rule 1.
    let d = decide(&p, "10.0.0.1", Some("zoom"), &geo(Some("CN"), None));
    assert_eq!(
        (d.action, d.jurisdiction.as_deref()),
        (Action::Block, Some("prc"))
    );
}

#[test]
fn source_scoping() {
    let p = policy(
        "[[rule]]\nname = \"lab\"\nfrom = [\"10.1.0.0/16\", \"2001:db8:1::/48\"]\napps = [\"zoom\"]\nto = [\"prc\"]\naction = \"block\"\n",
    );
    let cn = geo(Some("CN"), None);
    assert_eq!(
        decide(&p, "10.1.200.3", Some("zoom"), &cn).action,
        Action::Block
    );
    assert_eq!(
        decide(&p, "10.2.0.3", Some("zoom"), &cn).action,
        Action::Allow
    );
    assert_eq!(
        decide(&p, "2001:db8:1::77", Some("zoom"), &cn).action,
        Action::Block
    );
    assert_eq!(
        decide(&p, "2001:db8:2::77", Some("zoom"), &cn).action,
        Action::Allow
    );
    // IPv4-mapped IPv6 sources are matched as IPv4.
    assert_eq!(
        decide(&p, "::ffff:10.1.0.9", Some("zoom"), &cn).action,
        Action::Block
    );
}

#[test]
fn by_location_operator_either() {
    let p = policy(
        "[[rule]]\nname = \"loc\"\napps = [\"zoom\"]\nto = [\"prc\"]\nby = \"location\"\naction = \"block\"\n\
         [[rule]]\nname = \"op\"\napps = [\"teams\"]\nto = [\"prc\"]\nby = \"operator\"\naction = \"block\"\n\
         [[rule]]\nname = \"either\"\napps = [\"webex\"]\nto = [\"prc\"]\nby = \"either\"\naction = \"block\"\n",
    );
    // Server in Germany operated by a PRC-registered network.
    let de_cn = geo(Some("DE"), Some("CN"));
    // Server in China operated by a US-registered network.
    let cn_us = geo(Some("CN"), Some("US"));
    assert_eq!(
        decide(&p, "10.0.0.1", Some("zoom"), &de_cn).action,
        Action::Allow
    );
    assert_eq!(
        decide(&p, "10.0.0.1", Some("zoom"), &cn_us).action,
        Action::Block
    );
    let d = decide(&p, "10.0.0.1", Some("teams"), &de_cn);
    assert_eq!((d.action, d.basis), (Action::Block, Some(Basis::Operator)));
    assert_eq!(
        decide(&p, "10.0.0.1", Some("teams"), &cn_us).action,
        Action::Allow
    );
    let d = decide(&p, "10.0.0.1", Some("webex"), &de_cn);
    assert_eq!(
        (d.action, d.basis, d.country),
        (Action::Block, Some(Basis::Operator), cc("CN"))
    );
    let d = decide(&p, "10.0.0.1", Some("webex"), &cn_us);
    assert_eq!((d.action, d.basis), (Action::Block, Some(Basis::Location)));
    assert_eq!(
        decide(&p, "10.0.0.1", Some("webex"), &geo(Some("US"), Some("US"))).action,
        Action::Allow
    );
    // No fallback: operator with no registered country is not the location's.
    assert_eq!(
        decide(&p, "10.0.0.1", Some("teams"), &geo(Some("CN"), None)).action,
        Action::Allow
    );
}

#[test]
fn unknown_jurisdiction_semantics() {
    let p = policy(
        "[[rule]]\nname = \"loc-unknown\"\napps = [\"zoom\"]\nto = [\"unknown\"]\naction = \"alert\"\n\
         [[rule]]\nname = \"op-unknown\"\napps = [\"teams\"]\nto = [\"unknown\"]\nby = \"operator\"\naction = \"alert\"\n\
         [[rule]]\nname = \"either-unknown\"\napps = [\"webex\"]\nto = [\"unknown\"]\nby = \"either\"\naction = \"alert\"\n",
    );
    let none = geo(None, None);
    let loc_only = geo(Some("DE"), None);
    let reg_only = geo(None, Some("DE"));
    let d = decide(&p, "10.0.0.1", Some("zoom"), &none);
    assert_eq!(
        (d.action, d.jurisdiction.as_deref(), d.country),
        (Action::Alert, Some("unknown"), None)
    );
    assert_eq!(
        decide(&p, "10.0.0.1", Some("zoom"), &loc_only).action,
        Action::Allow
    );
    assert_eq!(
        decide(&p, "10.0.0.1", Some("zoom"), &reg_only).action,
        Action::Alert
    );
    assert_eq!(
        decide(&p, "10.0.0.1", Some("teams"), &loc_only).action,
        Action::Alert
    );
    assert_eq!(
        decide(&p, "10.0.0.1", Some("teams"), &reg_only).action,
        Action::Allow
    );
    // either: unknown only when no database gives any country.
    assert_eq!(
        decide(&p, "10.0.0.1", Some("webex"), &none).action,
        Action::Alert
    );
    assert_eq!(
        decide(&p, "10.0.0.1", Some("webex"), &loc_only).action,
        Action::Allow
    );
    assert_eq!(
        decide(&p, "10.0.0.1", Some("webex"), &reg_only).action,
        Action::Allow
    );
}

#[test]
fn non_public_destinations_never_match() {
    let p = policy(
        "[[rule]]\nname = \"all-unknown\"\nto = [\"unknown\"]\naction = \"block\"\n\
         [[rule]]\nname = \"all-any\"\nfrom = [\"192.0.2.0/24\"]\nto = [\"any\"]\naction = \"block\"\n\
         [default]\naction = \"block\"\n",
    );
    for scope in [
        AddressScope::Private,
        AddressScope::Loopback,
        AddressScope::LinkLocal,
        AddressScope::Multicast,
        AddressScope::Reserved,
    ] {
        let mut g = geo(None, None);
        g.scope = scope;
        let d = decide(&p, "192.0.2.1", None, &g);
        assert_eq!(
            (d.action, d.decided_by, d.rule.clone()),
            (Action::Allow, DecidedBy::NonPublic, None),
            "{scope:?}"
        );
        // Even with a (bogus) country, a private address is in no jurisdiction.
        g.country = cc("CN");
        assert_eq!(
            decide(&p, "192.0.2.1", None, &g).action,
            Action::Allow,
            "{scope:?}"
        );
        assert!(p.jurisdictions_of(&g, By::Location).is_empty());
    }
    // The same rules do match public destinations.
    assert_eq!(
        rule_name(&decide(&p, "192.0.2.1", None, &geo(None, None))),
        Some("all-unknown")
    );
    assert_eq!(
        rule_name(&decide(&p, "192.0.2.1", None, &geo(Some("FR"), None))),
        Some("all-any")
    );
    let d = decide(&p, "198.51.100.1", None, &geo(Some("FR"), None));
    assert_eq!(
        (d.action, d.decided_by),
        (Action::Block, DecidedBy::Default)
    );
}

#[test]
fn alert_default_and_verdicts() {
    let p = policy(
        "[[rule]]\nname = \"watch\"\napps = [\"zoom\"]\nto = [\"russia\"]\naction = \"alert\"\n\
         [[rule]]\nname = \"silent\"\napps = [\"zoom\"]\nto = [\"prc\"]\naction = \"block\"\nverdict = \"drop\"\n\
         [[rule]]\nname = \"loud\"\napps = [\"zoom\"]\nto = [\"hk_macau\"]\naction = \"block\"\n",
    );
    let d = decide(&p, "10.0.0.1", Some("zoom"), &geo(Some("RU"), None));
    assert_eq!(d.action, Action::Alert);
    assert!(d.emits_alert() && !d.is_block());
    let d = decide(&p, "10.0.0.1", Some("zoom"), &geo(Some("CN"), None));
    assert_eq!((d.action, d.verdict), (Action::Block, Verdict::Drop));
    let d = decide(&p, "10.0.0.1", Some("zoom"), &geo(Some("MO"), None));
    assert_eq!((d.action, d.verdict), (Action::Block, Verdict::Reject));
    let d = decide(&p, "10.0.0.1", Some("zoom"), &geo(Some("JP"), None));
    assert_eq!(
        (
            d.action,
            d.decided_by,
            d.rule.clone(),
            d.jurisdiction.clone()
        ),
        (Action::Allow, DecidedBy::Default, None, None)
    );
    assert!(!d.emits_alert());

    let p = policy("[[rule]]\nname = \"ok\"\nto = [\"JP\"]\naction = \"allow\"\n[default]\naction = \"block\"\nverdict = \"drop\"\n");
    let d = decide(&p, "10.0.0.1", None, &geo(Some("US"), None));
    assert_eq!(
        (d.action, d.verdict, d.decided_by),
        (Action::Block, Verdict::Drop, DecidedBy::Default)
    );
    assert_eq!(
        decide(&p, "10.0.0.1", None, &geo(Some("JP"), None)).action,
        Action::Allow
    );
}

#[test]
fn conferencing_group_vs_specific_app() {
    let text = format!(
        "{HEAD}[[app]]\nid = \"acme-share\"\ncategory = \"other\"\ndomains = [\"acme.example\"]\n\
         [[app]]\nid = \"acme-voice\"\ndomains = [\"voice.acme.example\"]\n\
         [[rule]]\nname = \"group\"\napps = [\"conferencing\"]\nto = [\"prc\"]\naction = \"block\"\n\
         [[rule]]\nname = \"share\"\napps = [\"acme-share\"]\nto = [\"prc\"]\naction = \"alert\"\n"
    );
    let cfg = load_str("t.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let p = Policy::from_config(&cfg).expect("compiles");
    let cn = geo(Some("CN"), None);
    for builtin in geofence_classify::BUILTIN_APPS {
        assert!(p.app_is_conferencing(&app(builtin)), "{builtin}");
        assert_eq!(
            rule_name(&decide(&p, "10.0.0.1", Some(builtin), &cn)),
            Some("group"),
            "{builtin}"
        );
    }
    assert!(p.app_is_conferencing(&app("acme-voice")));
    assert!(!p.app_is_conferencing(&app("acme-share")));
    assert!(!p.app_is_conferencing(&app("never-defined")));
    assert_eq!(
        rule_name(&decide(&p, "10.0.0.1", Some("acme-voice"), &cn)),
        Some("group")
    );
    assert_eq!(
        rule_name(&decide(&p, "10.0.0.1", Some("acme-share"), &cn)),
        Some("share")
    );
    // Unrecognised flows and unknown apps are not in any app list.
    assert_eq!(
        decide(&p, "10.0.0.1", None, &cn).decided_by,
        DecidedBy::Default
    );
    assert_eq!(
        decide(&p, "10.0.0.1", Some("never-defined"), &cn).decided_by,
        DecidedBy::Default
    );
    // The compiled group lists every conferencing app, sorted, and not acme-share.
    let group = p.rules()[0].apps.clone().expect("apps");
    assert_eq!(group.len(), geofence_classify::BUILTIN_APPS.len() + 1);
    assert!(group.windows(2).all(|w| w[0] < w[1]));
    assert!(!group.contains(&app("acme-share")));
}

#[test]
fn overriding_a_builtin_category_removes_it_from_the_group() {
    let text = format!(
        "{HEAD}[[app]]\nid = \"telegram\"\ncategory = \"other\"\ndomains = [\"telegram.org\"]\n\
         [[rule]]\nname = \"group\"\napps = [\"conferencing\"]\nto = [\"russia\"]\naction = \"block\"\n"
    );
    let cfg = load_str("t.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let p = Policy::from_config(&cfg).expect("compiles");
    assert!(!p.app_is_conferencing(&app("telegram")));
    assert_eq!(
        decide(&p, "10.0.0.1", Some("telegram"), &geo(Some("RU"), None)).action,
        Action::Allow
    );
    assert_eq!(
        decide(&p, "10.0.0.1", Some("zoom"), &geo(Some("RU"), None)).action,
        Action::Block
    );
}

#[test]
fn extra_apps_from_a_catalog() {
    let text = format!("{HEAD}[[rule]]\nname = \"group\"\napps = [\"conferencing\"]\nto = [\"prc\"]\naction = \"block\"\n");
    let cfg = load_str("t.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let extra: geofence_classify::sigs::SignatureFile =
        toml::from_str("[[app]]\nid = \"newcall\"\ndomains = [\"newcall.example\"]\n")
            .expect("sig");
    let p = Policy::compile(&cfg, &extra.apps).expect("compiles");
    assert!(p.app_is_conferencing(&app("newcall")));
    assert_eq!(
        decide(&p, "10.0.0.1", Some("newcall"), &geo(Some("CN"), None)).action,
        Action::Block
    );
    let p = Policy::from_config(&cfg).expect("compiles");
    assert_eq!(
        decide(&p, "10.0.0.1", Some("newcall"), &geo(Some("CN"), None)).action,
        Action::Allow
    );
}

#[test]
fn all_traffic_rule_and_country_codes_in_to() {
    let p = policy(
        "[[rule]]\nname = \"everything-to-kp\"\nto = [\"KP\", \"russia\"]\naction = \"block\"\n",
    );
    for a in [None, Some("zoom"), Some("signal")] {
        let d = decide(&p, "10.0.0.1", a, &geo(Some("KP"), None));
        assert_eq!(
            (d.action, d.jurisdiction.as_deref()),
            (Action::Block, Some("KP")),
            "{a:?}"
        );
        let d = decide(&p, "10.0.0.1", a, &geo(Some("RU"), None));
        assert_eq!(d.jurisdiction.as_deref(), Some("russia"));
    }
    assert_eq!(
        decide(&p, "10.0.0.1", None, &geo(Some("KR"), None)).action,
        Action::Allow
    );
    let r = &p.rules()[0];
    assert!(r.apps.is_none());
    assert_eq!(
        r.location_countries,
        vec![cc("KP").expect("kp"), cc("RU").expect("ru")]
    );
    assert!(r.registered_countries.is_empty());
}

#[test]
fn everything_except_allowlist() {
    let text = "[geoip]\ndatabases = [\"/x.mmdb\"]\n[jurisdictions]\neu = [\"DE\", \"FR\"]\n\
                [[rule]]\nname = \"eu-ok\"\napps = [\"conferencing\"]\nto = [\"eu\"]\naction = \"allow\"\n\
                [[rule]]\nname = \"rest\"\napps = [\"conferencing\"]\nto = [\"any\"]\naction = \"block\"\n";
    let p = Policy::from_config(&load_str("t.toml", text).unwrap_or_else(|e| panic!("{e}")))
        .expect("compiles");
    assert_eq!(
        decide(&p, "10.0.0.1", Some("zoom"), &geo(Some("DE"), None)).action,
        Action::Allow
    );
    let d = decide(&p, "10.0.0.1", Some("zoom"), &geo(Some("US"), Some("US")));
    assert_eq!(
        (d.action, d.jurisdiction.as_deref(), d.country),
        (Action::Block, Some("any"), cc("US"))
    );
    let d = decide(&p, "10.0.0.1", Some("zoom"), &geo(None, None));
    assert_eq!(
        (d.action, d.jurisdiction.as_deref(), d.country),
        (Action::Block, Some("any"), None)
    );
    assert_eq!(
        decide(&p, "10.0.0.1", None, &geo(Some("US"), None)).action,
        Action::Allow
    );
    assert!(p.rules()[1].any);
    assert_eq!(p.rules()[1].targets, vec![Target::Any]);
}

#[test]
fn jurisdictions_of_lists_every_match() {
    let text = "[geoip]\ndatabases = [\"/x.mmdb\"]\n[jurisdictions]\nprc = [\"CN\"]\ngreater_china = [\"CN\", \"HK\", \"MO\", \"TW\"]\nus = [\"US\"]\n";
    let p = Policy::from_config(&load_str("t.toml", text).unwrap_or_else(|e| panic!("{e}")))
        .expect("compiles");
    let g = geo(Some("CN"), Some("US"));
    assert_eq!(
        p.jurisdictions_of(&g, By::Location),
        vec!["greater_china", "prc"]
    );
    assert_eq!(p.jurisdictions_of(&g, By::Operator), vec!["us"]);
    assert_eq!(
        p.jurisdictions_of(&g, By::Either),
        vec!["greater_china", "prc", "us"]
    );
    assert_eq!(
        p.jurisdictions_of(&geo(None, Some("HK")), By::Location),
        vec!["unknown"]
    );
    assert_eq!(
        p.jurisdictions_of(&geo(None, Some("HK")), By::Either),
        vec!["greater_china"]
    );
    assert!(p
        .jurisdictions_of(&geo(Some("FR"), None), By::Location)
        .is_empty());
}

#[test]
fn compiled_rules_for_the_renderer() {
    let p = policy(
        "[[rule]]\nname = \"r\"\nfrom = [\"10.1.0.0/16\"]\napps = [\"zoom\", \"teams\"]\nto = [\"prc\", \"hk_macau\", \"unknown\"]\nby = \"either\"\naction = \"block\"\nverdict = \"drop\"\n",
    );
    let r = &p.rules()[0];
    assert_eq!(
        (r.index, r.name.as_str(), r.by, r.action, r.verdict),
        (0, "r", By::Either, Action::Block, Verdict::Drop)
    );
    assert_eq!(r.apps, Some(vec![app("teams"), app("zoom")]));
    let want: Vec<CountryCode> = ["CN", "HK", "MO"].iter().filter_map(|c| cc(c)).collect();
    assert_eq!(r.location_countries, want);
    assert_eq!(r.registered_countries, want);
    assert!(r.includes_unknown && !r.any);
    let from = r.from.as_ref().expect("from");
    assert!(from.contains(ip("10.1.2.3")) && !from.contains(ip("10.2.0.0")));
}

#[test]
fn explain_names_the_deciding_rule_and_the_misses() {
    let p = policy(
        "[[rule]]\nname = \"lab-only\"\nfrom = [\"10.9.0.0/16\"]\nto = [\"prc\"]\naction = \"block\"\n\
         [[rule]]\nname = \"teams-rule\"\napps = [\"teams\"]\nto = [\"prc\"]\naction = \"block\"\n\
         [[rule]]\nname = \"zoom-russia\"\napps = [\"zoom\"]\nto = [\"russia\"]\naction = \"block\"\n\
         [[rule]]\nname = \"conf-prc\"\napps = [\"conferencing\"]\nto = [\"prc\"]\naction = \"alert\"\n\
         [[rule]]\nname = \"all-prc\"\nto = [\"prc\"]\naction = \"block\"\n",
    );
    let g = GeoInfo {
        asn: Some(4134),
        as_org: Some("CHINANET".to_string()),
        ..geo(Some("CN"), None)
    };
    let zoom = app("zoom");
    let q = Query {
        src: ip("10.1.0.5"),
        dst: ip("203.0.113.9"),
        app: Some(&zoom),
        geo: &g,
        host: None,
    };
    let ex = p.explain(&q);
    assert_eq!(ex.decision, p.decide(&q));
    assert_eq!(
        ex.decision.rule.as_ref().map(|r| r.name.as_str()),
        Some("conf-prc")
    );
    assert_eq!(ex.rules.len(), 5);
    assert_eq!(ex.rules[0].misses, vec![Miss::SourceOutOfScope]);
    assert_eq!(
        ex.rules[1].misses,
        vec![Miss::AppNotInRule {
            app: Some(zoom.clone())
        }]
    );
    assert_eq!(
        ex.rules[2].misses,
        vec![Miss::JurisdictionNotMatched { by: By::Location }]
    );
    assert!(ex.rules[3].decisive && ex.rules[3].matched.is_some());
    assert!(!ex.rules[4].decisive && ex.rules[4].matched.is_some());
    let text = ex.to_string();
    assert!(
        text.contains("rule 4 `conf-prc` (alert): MATCH, decides: location CN is in `prc`"),
        "{text}"
    );
    assert!(
        text.contains("rule 1 `lab-only` (block): no: source is outside `from`"),
        "{text}"
    );
    assert!(text.contains("app `zoom` is not in `apps`"), "{text}");
    assert!(
        text.contains("rule 5 `all-prc` (block): would match"),
        "{text}"
    );
    assert!(text.contains("AS4134 (CHINANET)"), "{text}");
    assert!(
        text.ends_with("decision: alert by rule 4 `conf-prc`, jurisdiction prc"),
        "{text}"
    );

    // Non-public destination: every rule says why.
    let mut private = geo(None, None);
    private.scope = AddressScope::Private;
    let q = Query {
        src: ip("10.1.0.5"),
        dst: ip("10.0.0.1"),
        app: None,
        geo: &private,
        host: None,
    };
    let ex = p.explain(&q);
    assert!(ex
        .rules
        .iter()
        .all(|t| t.misses.contains(&Miss::NonPublicDestination {
            scope: AddressScope::Private
        })));
    assert!(ex.to_string().contains("destination is not public"), "{ex}");
    // Default decision.
    let fr = geo(Some("FR"), None);
    let q = Query {
        src: ip("10.1.0.5"),
        dst: ip("203.0.113.9"),
        app: None,
        geo: &fr,
        host: None,
    };
    assert!(p
        .explain(&q)
        .to_string()
        .ends_with("decision: allow by [default] (no rule matched)"));
    // Serializes for `geofencectl explain --json`.
    let json = serde_json::to_value(p.explain(&q)).expect("json");
    assert_eq!(json["decision"]["action"], "allow");
    assert_eq!(json["decision"]["decided_by"], "default");
}

#[test]
fn policy_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
}

#[test]
fn policy_knows_every_app_the_classifier_ships() {
    let p = policy("");
    let defs = geofence_classify::SignatureDb::builtin_defs();
    assert!(defs.len() >= geofence_classify::BUILTIN_APPS.len());
    for d in defs {
        assert_eq!(
            p.app_is_conferencing(&d.id),
            d.category == geofence_classify::Category::Conferencing,
            "{}",
            d.id
        );
        assert!(p.apps().any(|(a, _)| *a == d.id), "{}", d.id);
    }
}

#[test]
fn except_hands_the_destination_to_the_next_rule() {
    let p = geofence_policy::load_str(
        "t.toml",
        r#"[geoip]
databases = ["x.mmdb"]
[jurisdictions]
prc = ["CN"]

[[rule]]
name = "no-conf-prc"
apps = ["conferencing"]
to = ["prc"]
except = ["203.0.113.10", "198.51.100.0/28", "meet.partner.example"]
action = "block"

[[rule]]
name = "watch-prc"
to = ["prc"]
action = "alert"
"#,
    )
    .and_then(|c| Policy::from_config(&c))
    .unwrap_or_else(|e| panic!("{e}"));
    let cn = geo(Some("CN"), None);
    let zoom = app("zoom");
    let q = |dst: &str, host: Option<&'static str>| Query {
        src: ip("192.0.2.5"),
        dst: ip(dst),
        app: Some(&zoom),
        geo: &cn,
        host,
    };
    let rule = |d: Decision| d.rule.map(|r| r.name);
    // The excepted address and its neighbour.
    assert_eq!(
        rule(p.decide(&q("203.0.113.10", None))).as_deref(),
        Some("watch-prc")
    );
    assert_eq!(
        rule(p.decide(&q("203.0.113.11", None))).as_deref(),
        Some("no-conf-prc")
    );
    assert_eq!(
        rule(p.decide(&q("198.51.100.15", None))).as_deref(),
        Some("watch-prc")
    );
    assert_eq!(
        rule(p.decide(&q("198.51.100.16", None))).as_deref(),
        Some("no-conf-prc")
    );
    // Host names with their subdomains, at a label boundary only.
    let by_host = |h| rule(p.decide(&q("203.0.113.50", Some(h))));
    assert_eq!(
        by_host("eu.meet.partner.example").as_deref(),
        Some("watch-prc")
    );
    assert_eq!(
        by_host("xmeet.partner.example").as_deref(),
        Some("no-conf-prc")
    );
    // explain says why.
    let ex = p.explain(&q("203.0.113.10", None));
    assert!(
        ex.to_string().contains("excepted by `203.0.113.10`"),
        "{ex}"
    );
}
