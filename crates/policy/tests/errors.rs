//! Each validation error names the right line and column and says what is wrong.

use geofence_policy::{load_file, load_str, ConfigError};

/// Lines 1-7; tests append from line 8 on.
const BASE: &str = "\
[geoip]
databases = [\"/var/lib/geofence/geoip/geo-whois-asn-country.mmdb\"]

[jurisdictions]
prc = [\"CN\"]
hk_macau = [\"HK\", \"MO\"]

";

fn err(extra: &str) -> ConfigError {
    let text = format!("{BASE}{extra}");
    match load_str("test.toml", &text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

#[track_caller]
fn check(e: &ConfigError, line: usize, col: usize, needle: &str) {
    assert_eq!((e.line, e.col), (line, col), "position of:\n{e}");
    assert!(e.message.contains(needle), "message lacks {needle:?}:\n{e}");
    assert_eq!(e.file, "test.toml");
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("test.toml:{line}:{col}: ")),
        "{shown}"
    );
    // The source line and a caret under column `col`.
    let lines: Vec<&str> = shown.lines().collect();
    assert!(lines.len() >= 4, "{shown}");
    assert!(lines[2].ends_with(&e.snippet), "{shown}");
    let caret = lines[3].find('^').expect("caret");
    let bar = lines[3].find('|').expect("gutter");
    assert_eq!(caret - bar - 2, col - 1, "caret column:\n{shown}");
}

const RULE_HEAD: &str = "[[rule]]\nname = \"r1\"\n"; // lines 8, 9

#[test]
fn valid_base_is_accepted() {
    let cfg = load_str(
        "test.toml",
        &format!("{BASE}{RULE_HEAD}to = [\"prc\"]\naction = \"block\"\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.rules.len(), 1);
}

#[test]
fn toml_syntax_error() {
    let e = err("[[rule]\n");
    check(&e, 8, 8, "expected `]`");
    assert!(!e.message.is_empty());
}

#[test]
fn unknown_top_level_table() {
    check(
        &err("[deamon]\nmode = \"host\"\n"),
        8,
        2,
        "unknown field `deamon`",
    );
}

#[test]
fn unknown_key_in_rule() {
    check(
        &err(&format!(
            "{RULE_HEAD}to = [\"prc\"]\naction = \"block\"\nactoin = 1\n"
        )),
        12,
        1,
        "unknown field `actoin`",
    );
}

#[test]
fn bad_action_variant() {
    check(
        &err(&format!("{RULE_HEAD}to = [\"prc\"]\naction = \"blok\"\n")),
        11,
        10,
        "unknown variant `blok`",
    );
}

#[test]
fn bad_by_variant() {
    check(
        &err(&format!(
            "{RULE_HEAD}to = [\"prc\"]\nby = \"owner\"\naction = \"block\"\n"
        )),
        11,
        6,
        "unknown variant `owner`",
    );
}

#[test]
fn missing_required_field_points_at_its_table() {
    let e = err("[[rule]]\nname = \"r1\"\naction = \"block\"\n");
    check(&e, 8, 1, "missing field `to`");
}

#[test]
fn invalid_country_code_in_jurisdiction() {
    let text = "[geoip]\ndatabases = [\"/x.mmdb\"]\n[jurisdictions]\nwest = [\"US\", \"ZZ\"]\n";
    let e = load_str("test.toml", text).expect_err("ZZ");
    assert_eq!((e.line, e.col), (4, 15), "{e}");
    assert!(e.message.contains("`ZZ` is not an ISO 3166-1"), "{e}");
    let text = "[geoip]\ndatabases = [\"/x.mmdb\"]\n[jurisdictions]\nwest = [\"us\"]\n";
    let e = load_str("test.toml", text).expect_err("lower case");
    assert_eq!((e.line, e.col), (4, 9), "{e}");
}

#[test]
fn invalid_country_code_in_to() {
    check(
        &err(&format!(
            "{RULE_HEAD}to = [\"prc\", \"XX\"]\naction = \"block\"\n"
        )),
        10,
        14,
        "`XX` is not an ISO 3166-1",
    );
}

#[test]
fn unknown_jurisdiction() {
    let e = err(&format!(
        "{RULE_HEAD}to = [\"prc\", \"prcc\"]\naction = \"block\"\n"
    ));
    check(&e, 10, 14, "unknown jurisdiction `prcc`");
    assert!(e.message.contains("defined: hk_macau, prc"), "{e}");
}

#[test]
fn lower_case_country_in_to_gets_a_hint() {
    let e = err(&format!("{RULE_HEAD}to = [\"ru\"]\naction = \"block\"\n"));
    check(&e, 10, 7, "unknown jurisdiction `ru`");
}

#[test]
fn unknown_app() {
    let e = err(&format!(
        "{RULE_HEAD}apps = [\"zoom\", \"skype\"]\nto = [\"prc\"]\naction = \"block\"\n"
    ));
    check(&e, 10, 17, "unknown app `skype`");
}

#[test]
fn invalid_app_id_syntax() {
    let e = err(&format!(
        "{RULE_HEAD}apps = [\"Zoom\"]\nto = [\"prc\"]\naction = \"block\"\n"
    ));
    check(&e, 10, 9, "`Zoom` is not a valid app id");
}

#[test]
fn app_listed_with_its_group() {
    let e = err(&format!(
        "{RULE_HEAD}apps = [\"conferencing\", \"teams\"]\nto = [\"prc\"]\naction = \"block\"\n"
    ));
    check(&e, 10, 25, "already in the group `conferencing`");
}

#[test]
fn duplicate_rule_names() {
    let e = err(&format!(
        "{RULE_HEAD}to = [\"prc\"]\naction = \"block\"\n[[rule]]\nname = \"r1\"\nto = [\"hk_macau\"]\naction = \"block\"\n"
    ));
    check(
        &e,
        13,
        8,
        "duplicate rule name `r1` (first used by rule 1 (line 9))",
    );
}

#[test]
fn invalid_rule_name() {
    check(
        &err("[[rule]]\nname = \"no conferencing\"\nto = [\"prc\"]\naction = \"block\"\n"),
        9,
        8,
        "not a valid rule name",
    );
}

#[test]
fn duplicate_app_ids() {
    let e = err("[[app]]\nid = \"acme\"\ndomains = [\"acme.example\"]\n[[app]]\nid = \"acme\"\ndomains = [\"acme.example\"]\n");
    check(&e, 12, 6, "app `acme` is defined twice");
}

#[test]
fn app_id_named_like_the_group() {
    check(
        &err("[[app]]\nid = \"conferencing\"\ndomains = [\"x.example\"]\n"),
        9,
        6,
        "name of the app group",
    );
}

#[test]
fn app_without_signatures() {
    check(
        &err("[[app]]\nid = \"ghost\"\nname = \"Ghost\"\n"),
        9,
        6,
        "has no signatures",
    );
}

#[test]
fn unknown_key_in_app() {
    check(
        &err("[[app]]\nid = \"acme\"\ndomain = [\"acme.example\"]\n"),
        10,
        1,
        "unknown field `domain`",
    );
}

#[test]
fn empty_jurisdiction() {
    let text = "[geoip]\ndatabases = [\"/x.mmdb\"]\n[jurisdictions]\nnowhere = []\n";
    let e = load_str("test.toml", text).expect_err("empty");
    assert_eq!((e.line, e.col, e.width), (4, 11, 2), "{e}");
    assert!(
        e.message
            .contains("jurisdiction `nowhere` has no countries"),
        "{e}"
    );
}

#[test]
fn reserved_jurisdiction_names() {
    for (name, col) in [("unknown", 1), ("any", 1)] {
        let text =
            format!("[geoip]\ndatabases = [\"/x.mmdb\"]\n[jurisdictions]\n{name} = [\"CN\"]\n");
        let e = load_str("test.toml", &text).expect_err("reserved");
        assert_eq!((e.line, e.col, e.width), (4, col, name.len()), "{e}");
        assert!(e.message.contains(&format!("`{name}` is reserved")), "{e}");
    }
}

#[test]
fn bad_jurisdiction_name() {
    let text = "[geoip]\ndatabases = [\"/x.mmdb\"]\n[jurisdictions]\nPRC = [\"CN\"]\n";
    let e = load_str("test.toml", text).expect_err("upper case");
    assert_eq!((e.line, e.col), (4, 1), "{e}");
    assert!(e.message.contains("not a valid jurisdiction name"), "{e}");
}

#[test]
fn duplicate_country_in_jurisdiction() {
    let text =
        "[geoip]\ndatabases = [\"/x.mmdb\"]\n[jurisdictions]\nprc = [\"CN\", \"HK\", \"CN\"]\n";
    let e = load_str("test.toml", text).expect_err("dup");
    assert_eq!((e.line, e.col), (4, 20), "{e}");
    assert!(e.message.contains("`CN` is listed twice"), "{e}");
}

#[test]
fn exact_duplicate_rule_is_shadowed() {
    let rule = "apps = [\"zoom\"]\nto = [\"prc\"]\naction = \"block\"\n";
    let e = err(&format!("{RULE_HEAD}{rule}[[rule]]\nname = \"r2\"\n{rule}"));
    check(
        &e,
        14,
        8,
        "rule `r2` can never match: the earlier rule `r1` (line 9)",
    );
}

#[test]
fn wider_earlier_rule_shadows() {
    // Group covers the app, either covers location, the earlier `to` covers the later one.
    let e = err(&format!(
        "{RULE_HEAD}apps = [\"conferencing\"]\nto = [\"prc\", \"hk_macau\"]\nby = \"either\"\naction = \"alert\"\n\
         [[rule]]\nname = \"r2\"\napps = [\"zoom\"]\nto = [\"HK\"]\naction = \"block\"\n"
    ));
    check(&e, 15, 8, "rule `r2` can never match");
    // A rule for all traffic to `any` shadows everything after it.
    let e = err(&format!(
        "{RULE_HEAD}to = [\"any\"]\naction = \"alert\"\n[[rule]]\nname = \"r2\"\nfrom = [\"10.0.0.0/8\"]\nto = [\"unknown\"]\naction = \"block\"\n"
    ));
    check(&e, 13, 8, "rule `r2` can never match");
    // Wider source scope shadows a narrower one.
    let e = err(&format!(
        "{RULE_HEAD}from = [\"10.0.0.0/8\"]\nto = [\"prc\"]\naction = \"block\"\n[[rule]]\nname = \"r2\"\nfrom = [\"10.1.0.0/16\"]\nto = [\"prc\"]\naction = \"alert\"\n"
    ));
    check(&e, 14, 8, "rule `r2` can never match");
}

#[test]
fn narrower_earlier_rules_do_not_shadow() {
    let ok = [
        // by location first, then either: the later rule also sees operator countries.
        "to = [\"prc\"]\naction = \"block\"\n[[rule]]\nname = \"r2\"\nto = [\"prc\"]\nby = \"either\"\naction = \"alert\"\n",
        // narrower source first.
        "from = [\"10.1.0.0/16\"]\nto = [\"prc\"]\naction = \"block\"\n[[rule]]\nname = \"r2\"\nto = [\"prc\"]\naction = \"alert\"\n",
        // an app first, then all traffic.
        "apps = [\"zoom\"]\nto = [\"prc\"]\naction = \"block\"\n[[rule]]\nname = \"r2\"\nto = [\"prc\"]\naction = \"alert\"\n",
        // unknown under either (no country at all) does not cover unknown location.
        "to = [\"unknown\"]\nby = \"either\"\naction = \"block\"\n[[rule]]\nname = \"r2\"\nto = [\"unknown\"]\naction = \"alert\"\n",
        // allow-then-any: the everything-except pattern.
        "to = [\"prc\"]\naction = \"allow\"\n[[rule]]\nname = \"r2\"\nto = [\"any\"]\naction = \"block\"\n",
    ];
    for tail in ok {
        let text = format!("{BASE}{RULE_HEAD}{tail}");
        if let Err(e) = load_str("test.toml", &text) {
            panic!("rejected:\n{text}\n{e}");
        }
    }
}

#[test]
fn invalid_cidr_in_from() {
    check(&err(&format!("{RULE_HEAD}from = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\nto = [\"prc\"]\naction = \"block\"\n")), 10, 23, "not a CIDR");
    check(
        &err(&format!(
            "{RULE_HEAD}from = [\"10.1.2.3/16\"]\nto = [\"prc\"]\naction = \"block\"\n"
        )),
        10,
        9,
        "did you mean `10.1.0.0/16`",
    );
}

#[test]
fn empty_lists_in_rules() {
    check(
        &err(&format!(
            "{RULE_HEAD}from = []\nto = [\"prc\"]\naction = \"block\"\n"
        )),
        10,
        8,
        "omit it to match every source",
    );
    check(
        &err(&format!(
            "{RULE_HEAD}apps = []\nto = [\"prc\"]\naction = \"block\"\n"
        )),
        10,
        8,
        "omit it to match all traffic",
    );
    check(
        &err(&format!("{RULE_HEAD}to = []\naction = \"block\"\n")),
        10,
        6,
        "`to` is empty",
    );
}

#[test]
fn any_must_stand_alone_and_targets_not_repeat() {
    check(
        &err(&format!(
            "{RULE_HEAD}to = [\"prc\", \"any\"]\naction = \"block\"\n"
        )),
        10,
        14,
        "list it alone",
    );
    check(
        &err(&format!(
            "{RULE_HEAD}to = [\"prc\", \"prc\"]\naction = \"block\"\n"
        )),
        10,
        14,
        "`prc` is listed twice",
    );
}

#[test]
fn verdict_only_with_block() {
    check(
        &err(&format!(
            "{RULE_HEAD}to = [\"prc\"]\naction = \"alert\"\nverdict = \"drop\"\n"
        )),
        12,
        11,
        "only applies to `action = \"block\"`",
    );
    check(
        &err("[default]\naction = \"allow\"\nverdict = \"reject\"\n"),
        10,
        11,
        "only applies to `action = \"block\"`",
    );
    check(
        &err(&format!(
            "{RULE_HEAD}to = [\"prc\"]\naction = \"block\"\nverdict = \"deny\"\n"
        )),
        12,
        11,
        "unknown variant `deny`",
    );
}

#[test]
fn invalid_cidr_in_app() {
    check(
        &err("[[app]]\nid = \"acme\"\ncidrs = [\"198.51.100.0/24\", \"198.51.100.0/24x\"]\n"),
        10,
        29,
        "not a CIDR",
    );
}

#[test]
fn bad_port_specs() {
    let e = err("[[app]]\nid = \"acme\"\nports = [{ proto = \"udp\", ports = \"9000-8000\" }]\n");
    check(&e, 10, 35, "`9000-8000` is not a port or port range");
    let e = err("[[app]]\nid = \"acme\"\nports = [{ proto = \"udp\", ports = \"0\" }]\n");
    check(&e, 10, 35, "not a port");
    let e = err("[[app]]\nid = \"acme\"\nports = [{ proto = \"sctp\", ports = \"80\" }]\n");
    check(&e, 10, 20, "unknown variant `sctp`");
}

#[test]
fn bad_hex_patterns() {
    let e = err("[[app]]\nid = \"acme\"\npatterns = [{ proto = \"udp\", hex = \"1f02g1\" }]\n");
    check(&e, 10, 36, "`1f02g1` is not hex bytes");
    let e = err("[[app]]\nid = \"acme\"\npatterns = [{ proto = \"udp\", hex = \"1f0\" }]\n");
    check(&e, 10, 36, "is not hex bytes");
    let e = err("[[app]]\nid = \"acme\"\npatterns = [{ proto = \"udp\", offset = 4, hex = \"1f02\", len = 5 }]\n");
    check(&e, 10, 62, "can never match");
}

#[test]
fn bad_domains() {
    check(
        &err("[[app]]\nid = \"acme\"\ndomains = [\"acme.example\", \"*.acme.example\"]\n"),
        10,
        28,
        "is not a domain name",
    );
}

#[test]
fn except_checks() {
    // Lines 8, 9: RULE_HEAD; 10: to; 11: except.
    let rule = |except: &str, apps: &str| {
        err(&format!(
            "{RULE_HEAD}to = [\"prc\"]\nexcept = {except}\naction = \"block\"\n{apps}"
        ))
    };
    check(
        &rule("[\"prc\"]", "apps = [\"zoom\"]\n"),
        11,
        11,
        "not an address, a CIDR or a host name",
    );
    check(&rule("[\"203.0.113.1/24\"]", ""), 11, 11, "host bits set");
    check(
        &rule(
            "[\"a.example\", \"b.example\", \"a.example\"]",
            "apps = [\"zoom\"]\n",
        ),
        11,
        37,
        "listed twice",
    );
    check(
        &rule("[\"zoom.us\"]", ""),
        11,
        11,
        "block rule without `apps`",
    );
    check(&rule("[]", ""), 11, 10, "`except` is empty");
}

#[test]
fn alerts_checks() {
    check(
        &err("[alerts]\nhost = \"gw 1\"\n"),
        9,
        8,
        "not a gateway name",
    );
    check(&err("[alerts]\nhost = \"\"\n"), 9, 8, "not a gateway name");
    check(&err("[alerts]\ncommunity_id_seed = 65536\n"), 9, 21, "");
    check(
        &err("[alerts]\nsensor = \"x\"\n"),
        9,
        1,
        "unknown field `sensor`",
    );
    let ok = load_str(
        "test.toml",
        &format!("{BASE}[alerts]\nhost = \"gw-berlin-1.example\"\ncommunity_id_seed = 7\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.alerts.host.as_deref(), Some("gw-berlin-1.example"));
    assert_eq!(ok.alerts.community_id_seed, 7);
    assert_eq!(
        ok.geoip.max_age_days, 180,
        "the default fits the free database's release cadence"
    );
}

#[test]
fn daemon_checks() {
    check(
        &err("[daemon]\ncapture = \"nflog\"\ninterfaces = [\"eth0\"]\n"),
        10,
        14,
        "only applies to `capture = \"afpacket\"`",
    );
    check(
        &err("[daemon]\ncapture = \"afpacket\"\ninterfaces = [\"eth0\", \"eth0\"]\n"),
        10,
        23,
        "listed twice",
    );
    check(
        &err("[daemon]\ncapture = \"afpacket\"\ninterfaces = [\"a/b\"]\n"),
        10,
        15,
        "not a network interface name",
    );
    check(
        &err("[daemon]\nalert_log = \"alerts.jsonl\"\n"),
        9,
        13,
        "must be an absolute path",
    );
    check(
        &err("[daemon]\ndns_ttl_floor_secs = 600\ndynamic_timeout_secs = 300\n"),
        9,
        22,
        "exceeds `dynamic_timeout_secs`",
    );
    check(
        &err("[daemon]\ndns_ttl_cap_secs = 60\n"),
        9,
        20,
        "at least `dns_ttl_floor_secs` (300)",
    );
    check(&err("[daemon]\ndns_ttl_cap_secs = -1\n"), 9, 20, "");
    check(
        &err("[daemon]\ndynamic_timeout_secs = 0\n"),
        9,
        24,
        "at least 1",
    );
    check(&err("[daemon]\nnflog_group = 70000\n"), 9, 15, "");
    check(
        &err("[daemon]\nmode = \"router\"\n"),
        9,
        8,
        "unknown variant `router`",
    );
}

#[test]
fn geoip_checks() {
    let e = load_str("test.toml", "[geoip]\ndatabases = []\n").expect_err("empty");
    assert_eq!((e.line, e.col), (2, 13), "{e}");
    assert!(e.message.contains("at least one"), "{e}");
    let e = load_str(
        "test.toml",
        "[geoip]\ndatabases = [\"/a.mmdb\", \"/a.mmdb\"]\n",
    )
    .expect_err("dup");
    assert_eq!((e.line, e.col), (2, 25), "{e}");
    let e = load_str("test.toml", "[daemon]\nenforce = true\n").expect_err("no geoip");
    assert!(e.message.contains("missing field `geoip`"), "{e}");
    assert!(e.line >= 1, "{e}");
}

#[test]
fn columns_count_characters_not_bytes() {
    let e = err(&format!(
        "{RULE_HEAD}description = \"Zürich → Genève\"\nto = [\"zürich\"]\naction = \"block\"\n"
    ));
    check(&e, 11, 7, "unknown jurisdiction `zürich`");
    assert_eq!(e.width, 8, "{e}");
}

#[test]
fn signature_dir_errors_name_their_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let apps = dir.path().join("apps.d");
    std::fs::create_dir(&apps).expect("mkdir");
    std::fs::write(
        apps.join("10-acme.toml"),
        "[[app]]\nid = \"acme\"\ncategory = \"other\"\ndomains = [\"acme.example\"]\n",
    )
    .expect("write");
    let policy_path = dir.path().join("geofence.toml");
    let policy = "[geoip]\ndatabases = [\"/x.mmdb\"]\n[signatures]\ndirs = [\"apps.d\"]\n[jurisdictions]\nprc = [\"CN\"]\n\
                  [[rule]]\nname = \"r\"\napps = [\"acme\"]\nto = [\"prc\"]\naction = \"block\"\n";
    std::fs::write(&policy_path, policy).expect("write");
    // load_file reads the (relative) signature dir, so `acme` is known ...
    let cfg = load_file(&policy_path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.signature_apps.len(), 1);
    assert_eq!(cfg.signatures.dirs, vec![apps.clone()]);
    let p = geofence_policy::Policy::from_config(&cfg).expect("compiles");
    assert!(!p.app_is_conferencing(&geofence_classify::AppId::new("acme").expect("id")));
    // ... load_str does no I/O, so it is not.
    let e = load_str("geofence.toml", policy).expect_err("acme unknown without dirs");
    assert!(e.message.contains("unknown app `acme`"), "{e}");

    // An error inside a signature file names that file.
    let bad = apps.join("20-bad.toml");
    std::fs::write(&bad, "[[app]]\nid = \"other\"\ncidrs = [\"300.0.0.0/8\"]\n").expect("write");
    let e = load_file(&policy_path).expect_err("bad cidr");
    assert_eq!(e.file, bad.display().to_string());
    assert_eq!((e.line, e.col), (3, 10), "{e}");
    // The same id in two signature files.
    std::fs::write(
        &bad,
        "[[app]]\nid = \"acme\"\ndomains = [\"acme2.example\"]\n",
    )
    .expect("write");
    let e = load_file(&policy_path).expect_err("dup id");
    assert_eq!((e.line, e.col), (2, 6), "{e}");
    assert!(
        e.message.contains("already defined in") && e.message.contains("10-acme.toml:2"),
        "{e}"
    );
}

#[test]
fn unreadable_file_has_no_position() {
    let e = load_file(std::path::Path::new("/nonexistent/geofence.toml")).expect_err("missing");
    assert_eq!((e.line, e.col), (0, 0));
    assert!(
        e.to_string()
            .starts_with("/nonexistent/geofence.toml: cannot read"),
        "{e}"
    );
}

#[test]
fn classifier_rules_for_apps_are_enforced_with_positions() {
    check(
        &err("[[app]]\nid = \"acme\"\nasns = [64500, 0]\n"),
        10,
        16,
        "AS0 is a reserved AS number",
    );
    check(
        &err("[[app]]\nid = \"acme\"\npayload = [\"zoom-sfu\", \"acme-magic\"]\n"),
        10,
        24,
        "unknown payload matcher `acme-magic`",
    );
    check(
        &err("[[app]]\nid = \"acme\"\ncidrs = [\"192.0.2.0/24\"]\nranges_need_ports = true\n"),
        11,
        21,
        "needs `ports`",
    );
    check(&err("[[app]]\nid = \"acme\"\npatterns = [{ proto = \"udp\", hex = \"1f\", min_len = 40, len = 20 }]\n"), 10, 62, "needs 40 bytes");
    // Caught by the classifier's own check (the backstop), reported at the id.
    check(
        &err("[[app]]\nid = \"acme\"\nstun = { realms = [\" \"] }\n"),
        9,
        6,
        "app `acme`: empty STUN realm",
    );
}

#[test]
fn every_accepted_app_compiles_in_the_classifier() {
    // The apps of the shipped custom-app example go through the classifier too.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../config/examples/custom-app.toml");
    let cfg = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut defs = geofence_classify::SignatureDb::builtin_defs();
    defs.extend(cfg.apps.iter().cloned());
    let db = geofence_classify::SignatureDb::from_defs(defs).unwrap_or_else(|e| panic!("{e}"));
    assert!(db.find("acme-share").is_some() && db.find("acme-voice").is_some());
}

#[test]
fn description_signatures_and_paths() {
    check(
        &err(&format!(
            "{RULE_HEAD}description = \"two\\nlines\"\nto = [\"prc\"]\naction = \"block\"\n"
        )),
        10,
        15,
        "one line",
    );
    check(
        &err("[signatures]\ndirs = [\"/etc/geofence/apps.d\", \"/etc/geofence/apps.d\"]\n"),
        9,
        33,
        "listed twice",
    );
    check(
        &err("[signatures]\ndirs = [\"\"]\n"),
        9,
        9,
        "empty directory path",
    );
    check(
        &err("[daemon]\ncapture = \"afpacket\"\ninterfaces = [\"averyveryverylongname0\"]\n"),
        10,
        15,
        "not a network interface name",
    );
    let e = load_str("test.toml", "[geoip]\ndatabases = [\"\"]\n").expect_err("empty path");
    assert_eq!((e.line, e.col), (2, 14), "{e}");
    assert!(e.message.contains("empty database path"), "{e}");
}

#[test]
fn errors_without_source_name_the_toml_path() {
    // A hand-built Config (no source text) still gets a useful message.
    let mut cfg = geofence_policy::Config::default();
    cfg.rules.push(geofence_policy::RuleConfig {
        name: "r".to_string(),
        description: None,
        from: None,
        apps: None,
        to: vec!["atlantis".to_string()],
        by: geofence_policy::By::Location,
        action: geofence_policy::Action::Block,
        verdict: None,
        except: None,
    });
    let e = geofence_policy::Policy::from_config(&cfg).expect_err("unknown jurisdiction");
    assert_eq!((e.line, e.col), (0, 0));
    assert!(
        e.to_string()
            .contains("rule[0].to[0]: unknown jurisdiction `atlantis`"),
        "{e}"
    );
}

#[test]
fn decode_tunnels_are_strict() {
    // unknown tunnel name: at the element
    let e = err("[decode]\ntunnels = [\"gre\", \"l2tp\"]\n");
    check(&e, 9, 19, "unknown variant `l2tp`");
    // unknown key in [decode]
    let e = err("[decode]\ntunnel = [\"gre\"]\n");
    check(&e, 9, 1, "unknown field `tunnel`");
    // listed twice: at the repeat
    let e = err("[decode]\ntunnels = [\"gtpu\", \"gre\", \"gtpu\"]\n");
    check(&e, 9, 27, "tunnel `gtpu` is listed twice");
    // accepted, in order, and reaches the compiled policy
    let cfg = load_str(
        "test.toml",
        &format!(
            "{BASE}[decode]\ntunnels = [\"vxlan\", \"gre\", \"ipip\", \"geneve\", \"gtpu\"]\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let p = geofence_policy::Policy::from_config(&cfg).expect("compiles");
    let names: Vec<&str> = p.tunnels().iter().map(|t| t.as_str()).collect();
    assert_eq!(names, ["vxlan", "gre", "ipip", "geneve", "gtpu"]);
    // absent: nothing opened
    let cfg = load_str("test.toml", BASE).expect("base");
    assert!(cfg.decode.tunnels.is_empty());
}
