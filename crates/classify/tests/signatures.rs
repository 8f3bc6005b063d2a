//! The signature database: built-in data files, compilation, lookups, error
//! positions, and the shared corpus' server names.

use geofence_classify::app::{AppId, Method, BUILTIN_APPS};
use geofence_classify::sigdb::{SigError, BUILTIN_FILES, KNOWN_MATCHERS};
use geofence_classify::sigs::{AppDef, BytePattern, PortSpec, SignatureFile, StunSig, Transport};
use geofence_classify::{AppRef, Category, SignatureDb};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn apps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/apps.d")
}

fn shared_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn def(id: &str) -> AppDef {
    AppDef {
        id: AppId::new(id).expect("id"),
        name: None,
        category: Category::Conferencing,
        domains: Vec::new(),
        cidrs: Vec::new(),
        asns: Vec::new(),
        ports: Vec::new(),
        ranges_need_ports: false,
        stun: StunSig::default(),
        payload: Vec::new(),
        patterns: Vec::new(),
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn port(proto: Transport, p: &str) -> PortSpec {
    PortSpec {
        proto,
        ports: p.to_string(),
    }
}

fn id_of(db: &SignatureDb, r: Option<AppRef>) -> Option<String> {
    r.map(|r| db.app(r).id.to_string())
}

fn builtin() -> SignatureDb {
    SignatureDb::from_defs(SignatureDb::builtin_defs()).expect("built-in signatures compile")
}

// ---------------------------------------------------------------- data files

#[test]
fn every_file_in_apps_dir_is_listed_and_parses_strictly() {
    let listed: BTreeSet<&str> = BUILTIN_FILES.iter().map(|(n, _)| *n).collect();
    let mut on_disk = BTreeSet::new();
    for entry in std::fs::read_dir(apps_dir()).expect("config/apps.d") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|x| x.to_str()) != Some("toml") {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name")
            .to_string();
        let text = std::fs::read_to_string(&path).expect("read");
        // Strict schema (deny_unknown_fields) straight through toml ...
        let file: SignatureFile = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!file.apps.is_empty(), "{name} defines no app");
        // ... and our own validation.
        SignatureDb::parse_file(&name, &text).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            listed.contains(name.as_str()),
            "{name} is not listed in sigdb::BUILTIN_FILES"
        );
        let compiled = BUILTIN_FILES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t);
        assert_eq!(
            compiled,
            Some(text.as_str()),
            "{name}: compiled-in copy differs"
        );
        on_disk.insert(name);
    }
    let listed: BTreeSet<String> = listed.iter().map(|s| s.to_string()).collect();
    assert_eq!(listed, on_disk, "BUILTIN_FILES and config/apps.d differ");
}

#[test]
fn every_builtin_app_has_a_file_and_a_strong_signal() {
    let defs = SignatureDb::builtin_defs();
    let db = builtin();
    assert_eq!(
        db.apps().len(),
        BUILTIN_APPS.len(),
        "one compiled app per built-in id"
    );
    for id in BUILTIN_APPS {
        assert!(
            BUILTIN_FILES
                .iter()
                .any(|(n, _)| *n == format!("{id}.toml")),
            "no config/apps.d/{id}.toml"
        );
        let d = defs
            .iter()
            .find(|d| d.id.as_str() == *id)
            .unwrap_or_else(|| panic!("{id} not defined"));
        let stun = &d.stun;
        let strong = !d.domains.is_empty()
            || !d.cidrs.is_empty()
            || !d.asns.is_empty()
            || !stun.attributes.is_empty()
            || !stun.message_types.is_empty()
            || !stun.realms.is_empty()
            || !d.payload.is_empty();
        assert!(strong, "{id} has no strong signal");
        assert!(d.name.is_some(), "{id} has no human name");
        assert!(db.find(id).is_some());
    }
    // The default db is the same thing and never fails.
    assert_eq!(SignatureDb::builtin().apps().len(), BUILTIN_APPS.len());
    // Payload names in the data are all known matchers.
    for (_, m) in db.payload_rules() {
        assert!(KNOWN_MATCHERS.contains(&m.as_str()), "{m}");
    }
}

#[test]
fn builtin_domains_are_not_shared_and_not_vendor_wide() {
    let defs = SignatureDb::builtin_defs();
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for d in &defs {
        for dom in &d.domains {
            if let Some(prev) = owner.insert(dom.clone(), d.id.to_string()) {
                panic!("{dom} is claimed by {prev} and {}", d.id);
            }
        }
    }
    for broad in [
        "microsoft.com",
        "office.com",
        "live.com",
        "microsoftonline.com",
        "google.com",
        "googleapis.com",
        "gstatic.com",
        "apple.com",
        "icloud.com",
        "facebook.com",
        "fbcdn.net",
        "qq.com",
        "tencent.com",
        "cisco.com",
        "amazonaws.com",
        "aws",
        "zoho.com",
        "akamaiedge.net",
        "cloudfront.net",
        "aliyuncs.com",
    ] {
        assert!(
            !owner.contains_key(broad),
            "{broad} is vendor-wide, not an app"
        );
    }
}

#[test]
fn builtin_same_vendor_services_are_not_apps() {
    let db = builtin();
    for host in [
        "outlook.office.com",
        "login.microsoftonline.com",
        "www.microsoft.com",
        "substrate.office.com",
        "mobile.pipe.aria.microsoft.com",
        "www.google.com",
        "mail.google.com",
        "docs.google.com",
        "stun.l.google.com",
        "www.gstatic.com",
        "www.icloud.com",
        "p53-buy.itunes.apple.com",
        "1-courier.push.apple.com",
        "query.ess.apple.com",
        "www.facebook.com",
        "turner.facebook",
        "www.cisco.com",
        "mail.zoho.com",
        "crm.zoho.eu",
        "www.qq.com",
        "ssl.google-analytics.com",
        "slack.com",
        "webpush.web.wechat.com.lan",
    ] {
        assert_eq!(id_of(&db, db.match_host(host)), None, "{host}");
    }
    for (host, app) in [
        ("zoomfrn99mmr.zoom.us", "zoom"),
        ("eu-api.asm.skype.com", "teams"),
        ("chatsvcagg.teams.microsoft.com", "teams"),
        ("radcom.webex.com", "webex"),
        ("meet.google.com", "meet"),
        ("workspace.turns.goog", "meet"),
        ("web.wechat.com", "wechat"),
        ("static.dingtalk.com", "dingtalk"),
        ("e13.whatsapp.net", "whatsapp"),
        ("gateway.discord.gg", "discord"),
        ("c.europe.discord.media", "discord"),
        ("chat.signal.org", "signal"),
        ("web.telegram.org", "telegram"),
        ("uts-front.line-apps.com", "line"),
        ("104-166-161-75.edge.agora.io", "agora"),
        ("meeting.tencent.com", "tencent-meeting"),
        ("abc.chime.aws", "chime"),
        ("meeting.zoho.eu", "zoho-meeting"),
        ("internal-api.larksuite.com", "lark"),
        ("global.gotomeeting.com", "goto"),
        ("meet.jit.si", "jitsi"),
        ("platform.ringcentral.com", "ringcentral"),
        ("call.viber.com", "viber"),
    ] {
        assert_eq!(
            id_of(&db, db.match_host(host)).as_deref(),
            Some(app),
            "{host}"
        );
    }
}

#[test]
fn builtin_ranges_are_app_specific() {
    let db = builtin();
    let check = |addr: &str, proto: Transport, p: u16, want: Option<&str>| {
        let got = db.match_ip(ip(addr), proto, p).map(|(r, m)| {
            assert_eq!(m, Method::IpRange);
            db.app(r).id.to_string()
        });
        assert_eq!(got.as_deref(), want, "{addr} {proto:?}/{p}");
    };
    check("52.114.250.123", Transport::Udp, 3478, Some("teams"));
    check("52.113.194.132", Transport::Tcp, 443, Some("teams"));
    check("2603:1063:1::1", Transport::Udp, 3480, Some("teams"));
    check("13.107.6.152", Transport::Tcp, 443, None); // Microsoft 365 front door
    check("134.224.90.111", Transport::Udp, 8801, Some("zoom"));
    check("3.7.35.1", Transport::Udp, 8801, None); // AWS entry of Zoom.txt: shared cloud
    check("62.109.229.158", Transport::Udp, 9000, Some("webex"));
    check("4.144.190.10", Transport::Udp, 5004, None); // Webex Azure /24: shared cloud
    check("142.250.82.76", Transport::Udp, 19305, Some("meet"));
    check(
        "[2001:4860:4864:6::81]".trim_matches(['[', ']']),
        Transport::Udp,
        19305,
        Some("meet"),
    );
    check("74.125.250.129", Transport::Udp, 19302, None); // stun.l.google.com: every WebRTC app
    check("142.250.82.76", Transport::Tcp, 443, None);
    check("17.253.144.10", Transport::Tcp, 443, None); // Apple, not FaceTime
    check("17.253.144.10", Transport::Udp, 16384, Some("facetime"));
    check("99.77.130.1", Transport::Udp, 3478, Some("chime"));
    check("91.108.13.23", Transport::Udp, 1400, Some("telegram"));
    check("66.22.196.173", Transport::Udp, 50004, Some("discord"));
    check("67.217.70.1", Transport::Udp, 8200, Some("goto"));
    check("67.217.70.1", Transport::Tcp, 443, None);
    check("8.8.8.8", Transport::Udp, 53, None);
    check("::ffff:134.224.1.1", Transport::Udp, 8801, Some("zoom"));
    assert_eq!(
        id_of(&db, db.match_asn(30103, Transport::Tcp, 443)).as_deref(),
        Some("zoom")
    );
    assert_eq!(id_of(&db, db.match_asn(714, Transport::Tcp, 443)), None);
    assert_eq!(
        id_of(&db, db.match_asn(714, Transport::Udp, 3490)).as_deref(),
        Some("facetime")
    );
    assert_eq!(id_of(&db, db.match_asn(8075, Transport::Udp, 3478)), None);
    assert_eq!(id_of(&db, db.match_asn(15169, Transport::Udp, 19305)), None);
}

#[test]
fn builtin_stun_and_port_hints() {
    let db = builtin();
    assert_eq!(
        id_of(&db, db.stun_attribute(0x8055)).as_deref(),
        Some("teams")
    );
    assert_eq!(
        id_of(&db, db.stun_attribute(0x0103)).as_deref(),
        Some("zoom")
    );
    assert_eq!(
        id_of(&db, db.stun_attribute(0x4002)).as_deref(),
        Some("whatsapp")
    );
    assert_eq!(id_of(&db, db.stun_attribute(0x0006)), None); // USERNAME: standard
    assert_eq!(
        id_of(&db, db.stun_message_type(0x0801)).as_deref(),
        Some("whatsapp")
    );
    assert_eq!(id_of(&db, db.stun_message_type(0x0001)), None);
    assert_eq!(
        id_of(&db, db.stun_realm("Signal.org")).as_deref(),
        Some("signal")
    );
    assert_eq!(
        id_of(&db, db.stun_realm("telegram.org")).as_deref(),
        Some("telegram")
    );
    assert_eq!(
        id_of(&db, db.stun_realm("turn.google.com")).as_deref(),
        Some("meet")
    );
    assert_eq!(id_of(&db, db.stun_realm("example.org")), None);
    assert_eq!(
        id_of(&db, db.stun_realm("turner.facebook")).as_deref(),
        Some("meta-calls")
    );
    assert_eq!(
        id_of(&db, db.stun_realm("viber.com")).as_deref(),
        Some("viber")
    );
    assert_eq!(id_of(&db, db.stun_realm("fb.example")), None);
    // 3478 is everybody's; 443 is everything's.
    assert_eq!(db.match_port(Transport::Udp, 3478), None);
    assert_eq!(db.match_port(Transport::Tcp, 443), None);
    assert_eq!(
        db.match_port(Transport::Udp, 22466)
            .map(|r| db.app(r).id.to_string())
            .as_deref(),
        Some("chime")
    );
    assert_eq!(
        db.match_port(Transport::Udp, 5004)
            .map(|r| db.app(r).id.to_string())
            .as_deref(),
        Some("webex")
    );
    // Zoom's 8801-8810 overlaps RingCentral's 8801-8829: ambiguous, no hint.
    assert_eq!(db.match_port(Transport::Udp, 8801), None);
    // RingCentral's 20000-64999 is far too wide to be a hint.
    assert_eq!(db.match_port(Transport::Udp, 40000), None);
    assert_eq!(
        db.match_port(Transport::Tcp, 5004)
            .map(|r| db.app(r).id.to_string())
            .as_deref(),
        Some("webex")
    );
    assert_eq!(db.match_port(Transport::Udp, 19302), None);
    assert_eq!(
        db.match_port(Transport::Tcp, 8801)
            .map(|r| db.app(r).id.to_string())
            .as_deref(),
        Some("zoom")
    );
    assert_eq!(
        db.match_port(Transport::Udp, 9785)
            .map(|r| db.app(r).id.to_string())
            .as_deref(),
        Some("viber")
    );
    assert_eq!(
        db.match_port(Transport::Udp, 1400)
            .map(|r| db.app(r).id.to_string())
            .as_deref(),
        Some("telegram")
    );
    assert_eq!(db.match_port(Transport::Tcp, 1400), None);
    assert_eq!(db.match_port(Transport::Udp, 65535), None);
}

#[test]
fn static_ranges_for_the_kernel_layer() {
    let db = builtin();
    let fc = db.find("facetime").expect("facetime");
    let (ranges, ports, need) = db.static_ranges(fc);
    assert!(need);
    assert!(ranges.contains(ip("17.1.2.3")));
    assert!(ports
        .iter()
        .any(|p| p.proto == Transport::Udp && p.range() == Some((16384, 16387))));
    let zoom = db.find("zoom").expect("zoom");
    let (ranges, _, need) = db.static_ranges(zoom);
    assert!(!need);
    assert!(ranges.contains(ip("170.114.1.1")));
    assert!(!ranges.contains(ip("3.7.35.1")));
}

// ------------------------------------------------------------ host matching

#[test]
fn host_matching_rules() {
    let mut a = def("alpha");
    a.domains = strs(&["zoom.us", "=exact.example", "example.com"]);
    let mut b = def("beta");
    b.domains = strs(&["sub.example.com"]);
    let db = SignatureDb::from_defs(vec![a, b]).expect("db");
    let m = |h: &str| id_of(&db, db.match_host(h));
    assert_eq!(m("zoom.us").as_deref(), Some("alpha"));
    assert_eq!(m("a.b.zoom.us").as_deref(), Some("alpha"));
    assert_eq!(m("ZoOm.US.").as_deref(), Some("alpha"));
    assert_eq!(m("notzoom.us"), None);
    assert_eq!(m("zoom.us.evil.com"), None);
    assert_eq!(m("us"), None);
    assert_eq!(m(".zoom.us").as_deref(), Some("alpha"));
    assert_eq!(m("exact.example").as_deref(), Some("alpha"));
    assert_eq!(m("EXACT.example.").as_deref(), Some("alpha"));
    assert_eq!(m("www.exact.example"), None);
    // Longest suffix wins.
    assert_eq!(m("x.sub.example.com").as_deref(), Some("beta"));
    assert_eq!(m("sub.example.com").as_deref(), Some("beta"));
    assert_eq!(m("other.example.com").as_deref(), Some("alpha"));
    // Junk never matches and never panics.
    assert_eq!(m(""), None);
    assert_eq!(m("."), None);
    assert_eq!(m(".."), None);
    assert_eq!(m("zoom.us.."), None);
    assert_eq!(m(&"a.".repeat(200)), None);
    assert_eq!(m(&format!("{}zoom.us", "a.".repeat(200))), None); // longer than 253 bytes
    assert_eq!(m("ü.zoom.us").as_deref(), Some("alpha"));
    assert_eq!(m("52.114.250.153"), None);
}

#[test]
fn host_matching_is_fast() {
    let db = builtin();
    let hosts = [
        "zoomfrn99mmr.zoom.us",
        "www.google.com",
        "eu-prod.asyncgw.teams.microsoft.com",
        "a.very.long.name.of.some.cdn.example.net",
        "WEB.WECHAT.COM.",
    ];
    let n = 200_000;
    let t = Instant::now();
    let mut hits = 0usize;
    for i in 0..n {
        if db.match_host(hosts[i % hosts.len()]).is_some() {
            hits += 1;
        }
    }
    let per = t.elapsed().as_nanos() as f64 / n as f64;
    println!("match_host: {per:.0} ns/lookup over {n} lookups (this build profile)");
    assert_eq!(hits, n / hosts.len() * 3);
    // Generous bound so that a debug build on a busy 2-core machine passes;
    // release builds are far below it.
    assert!(per < 20_000.0, "{per} ns per lookup");

    let addrs: Vec<IpAddr> = [
        "134.224.90.111",
        "8.8.8.8",
        "52.114.250.123",
        "2001:4860:4864:6::81",
        "17.1.2.3",
    ]
    .iter()
    .map(|a| ip(a))
    .collect();
    let t = Instant::now();
    let mut hits = 0usize;
    for i in 0..n {
        if db
            .match_ip(addrs[i % addrs.len()], Transport::Udp, 3478)
            .is_some()
        {
            hits += 1;
        }
    }
    let per = t.elapsed().as_nanos() as f64 / n as f64;
    println!("match_ip: {per:.0} ns/lookup over {n} lookups (this build profile)");
    // zoom, teams, facetime (3478 is a FaceTime port); not 8.8.8.8, not Meet v6 on 3478? (it is: Meet's port).
    assert_eq!(hits, n / addrs.len() * 4);
    assert!(per < 20_000.0, "{per} ns per lookup");
}

// ----------------------------------------------------------- range matching

#[test]
fn overlapping_ranges_most_specific_wins() {
    let mut wide = def("wide");
    wide.cidrs = strs(&["10.0.0.0/8", "2001:db8::/32"]);
    let mut narrow = def("narrow");
    narrow.cidrs = strs(&["10.1.0.0/16", "2001:db8:1::/48"]);
    let mut ported = def("ported");
    ported.cidrs = strs(&["10.1.2.0/24"]);
    ported.ports = vec![port(Transport::Udp, "5000-5001")];
    ported.ranges_need_ports = true;
    ported.asns = vec![64500];
    let mut asn_plain = def("asnplain");
    asn_plain.asns = vec![64500, 64501];
    let db = SignatureDb::from_defs(vec![wide, narrow, ported, asn_plain]).expect("db");
    let m = |a: &str, proto, p| id_of(&db, db.match_ip(ip(a), proto, p).map(|x| x.0));
    assert_eq!(m("10.2.0.1", Transport::Tcp, 1).as_deref(), Some("wide"));
    assert_eq!(m("10.1.9.9", Transport::Tcp, 1).as_deref(), Some("narrow"));
    assert_eq!(
        m("10.1.2.3", Transport::Udp, 5001).as_deref(),
        Some("ported")
    );
    // Off its ports the port-bound range steps aside for the next one.
    assert_eq!(
        m("10.1.2.3", Transport::Tcp, 5001).as_deref(),
        Some("narrow")
    );
    assert_eq!(
        m("10.1.2.3", Transport::Udp, 443).as_deref(),
        Some("narrow")
    );
    assert_eq!(
        m("10.255.255.255", Transport::Udp, 1).as_deref(),
        Some("wide")
    );
    assert_eq!(m("11.0.0.0", Transport::Udp, 1), None);
    assert_eq!(m("9.255.255.255", Transport::Udp, 1), None);
    assert_eq!(
        m("2001:db8:1::5", Transport::Udp, 1).as_deref(),
        Some("narrow")
    );
    assert_eq!(
        m("2001:db8:2::5", Transport::Udp, 1).as_deref(),
        Some("wide")
    );
    assert_eq!(
        m("::ffff:10.1.9.9", Transport::Udp, 1).as_deref(),
        Some("narrow")
    );
    assert_eq!(m("2001:db9::1", Transport::Udp, 1), None);
    // ASN shared by two apps: the port-bound one only on its ports.
    assert_eq!(
        id_of(&db, db.match_asn(64500, Transport::Udp, 5000)).as_deref(),
        Some("asnplain")
    );
    assert_eq!(
        id_of(&db, db.match_asn(64501, Transport::Udp, 5000)).as_deref(),
        Some("asnplain")
    );
    assert_eq!(id_of(&db, db.match_asn(64502, Transport::Udp, 5000)), None);
}

#[test]
fn whole_address_space_ranges_do_not_overflow() {
    let mut all = def("all");
    all.cidrs = strs(&["0.0.0.0/0", "::/0"]);
    let mut top = def("top");
    top.cidrs = strs(&[
        "255.255.255.255/32",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
    ]);
    let db = SignatureDb::from_defs(vec![all, top]).expect("db");
    let m = |a: &str| id_of(&db, db.match_ip(ip(a), Transport::Udp, 1).map(|x| x.0));
    assert_eq!(m("255.255.255.255").as_deref(), Some("top"));
    assert_eq!(m("255.255.255.254").as_deref(), Some("all"));
    assert_eq!(m("0.0.0.0").as_deref(), Some("all"));
    assert_eq!(
        m("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").as_deref(),
        Some("top")
    );
    assert_eq!(m("::1").as_deref(), Some("all"));
}

// ------------------------------------------------------------------ misc

#[test]
fn later_definition_with_the_same_id_replaces_the_earlier() {
    let mut z1 = def("zoom");
    z1.domains = strs(&["zoom.us"]);
    z1.cidrs = strs(&["198.51.100.0/24"]);
    let mut other = def("other");
    other.domains = strs(&["other.example"]);
    let mut z2 = def("zoom");
    z2.name = Some("Zoom (site override)".to_string());
    z2.domains = strs(&["zoom.example"]);
    let db = SignatureDb::from_defs(vec![z1, other, z2]).expect("db");
    assert_eq!(db.apps().len(), 2);
    let zoom = db.find("zoom").expect("zoom");
    assert_eq!(zoom, AppRef(0), "override keeps the position");
    assert_eq!(db.app(zoom).name, "Zoom (site override)");
    assert_eq!(db.match_host("zoom.us"), None);
    assert_eq!(db.match_host("a.zoom.example"), Some(zoom));
    assert_eq!(db.match_ip(ip("198.51.100.1"), Transport::Udp, 1), None);
    assert_eq!(db.app(db.find("other").expect("other")).name, "other");
    assert_eq!(db.find("nope"), None);
    // A foreign ref does not panic.
    assert_eq!(db.app(AppRef(999)).id.as_str(), "unknown");

    // Overriding a built-in from admin text.
    let mut defs = SignatureDb::builtin_defs();
    let text = "[[app]]\nid = \"teams\"\nname = \"Teams (local)\"\ndomains = [\"teams.example\"]\n";
    defs.extend(SignatureDb::parse_file("admin.toml", text).expect("admin"));
    let db = SignatureDb::from_defs(defs).expect("db");
    assert_eq!(db.apps().len(), BUILTIN_APPS.len());
    assert_eq!(db.match_host("teams.microsoft.com"), None);
    assert_eq!(
        id_of(&db, db.match_host("x.teams.example")).as_deref(),
        Some("teams")
    );
}

#[test]
fn stun_and_patterns_compile() {
    let mut a = def("alpha");
    a.stun = StunSig {
        attributes: vec![0xC001],
        message_types: vec![0x0999],
        realms: strs(&["Example.ORG"]),
        software: strs(&["AlphaPhone"]),
    };
    a.patterns = vec![BytePattern {
        proto: Transport::Udp,
        offset: 2,
        hex: "de ad BE ef".to_string(),
        min_len: 8,
        len: None,
    }];
    a.payload = strs(&["zoom-sfu"]);
    let mut b = def("beta");
    b.stun.realms = strs(&["sub.example.org"]);
    let db = SignatureDb::from_defs(vec![a, b]).expect("db");
    assert_eq!(
        id_of(&db, db.stun_attribute(0xC001)).as_deref(),
        Some("alpha")
    );
    assert_eq!(
        id_of(&db, db.stun_message_type(0x0999)).as_deref(),
        Some("alpha")
    );
    assert_eq!(
        id_of(&db, db.stun_realm("turn.EXAMPLE.org")).as_deref(),
        Some("alpha")
    );
    // The longer, more specific needle wins.
    assert_eq!(
        id_of(&db, db.stun_realm("x.sub.example.org")).as_deref(),
        Some("beta")
    );
    assert_eq!(
        id_of(&db, db.stun_software("alphaphone 1.2")).as_deref(),
        Some("alpha")
    );
    assert_eq!(id_of(&db, db.stun_software("")), None);
    let (r, p) = db.patterns().first().expect("pattern");
    assert_eq!(db.app(*r).id.as_str(), "alpha");
    assert!(p.matches(Transport::Udp, &[0, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0]));
    assert!(!p.matches(Transport::Tcp, &[0, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0]));
    assert!(!p.matches(Transport::Udp, &[0, 0, 0xde, 0xad, 0xbe, 0xef, 0])); // < min_len
    assert!(!p.matches(Transport::Udp, &[0, 0, 0xde, 0xad, 0xbe, 0xee, 0, 0]));
    assert!(!p.matches(Transport::Udp, &[]));
    assert_eq!(db.payload_rules().len(), 1);
}

fn assert_at(err: SigError, file: &str, line: usize, col: usize, needle: &str) {
    let s = err.to_string();
    let want = format!("{file}:{line}:{col}: ");
    assert!(s.starts_with(&want), "`{s}` does not start with `{want}`");
    assert!(s.contains(needle), "`{s}` does not mention `{needle}`");
}

#[test]
fn errors_point_at_line_and_column() {
    let bad_cidr = "# c\n[[app]]\nid = \"x\"\ncidrs = [\"192.0.2.0/24\", \"10.0.0.0/33\"]\n";
    let e = SignatureDb::parse_file("a.toml", bad_cidr).expect_err("bad cidr");
    assert_at(e, "a.toml", 4, 26, "10.0.0.0/33");

    let host_bits = "[[app]]\nid = \"x\"\ncidrs = [\"10.0.0.1/8\"]\n";
    let e = SignatureDb::parse_file("h.toml", host_bits).expect_err("host bits");
    assert_at(e, "h.toml", 3, 10, "host bits");

    let bad_port = "[[app]]\nid = \"x\"\nports = [\n  { proto = \"udp\", ports = \"3478\" },\n  { proto = \"udp\", ports = \"9000-70000\" },\n]\n";
    let e = SignatureDb::parse_file("p.toml", bad_port).expect_err("bad port");
    assert_at(e, "p.toml", 5, 3, "9000-70000");

    let bad_proto = "[[app]]\nid = \"x\"\nports = [{ proto = \"sctp\", ports = \"1\" }]\n";
    let e = SignatureDb::parse_file("q.toml", bad_proto).expect_err("bad proto");
    assert_at(e, "q.toml", 3, 20, "sctp");

    let bad_matcher = "[[app]]\nid = \"x\"\npayload = [\"zoom-sfu\", \"zoom-spf\"]\n";
    let e = SignatureDb::parse_file("m.toml", bad_matcher).expect_err("matcher");
    assert_at(e, "m.toml", 3, 24, "unknown payload matcher `zoom-spf`");

    let unknown_key = "[[app]]\nid = \"x\"\ndomainz = [\"a.example\"]\n";
    let e = SignatureDb::parse_file("k.toml", unknown_key).expect_err("unknown key");
    assert_at(e, "k.toml", 3, 1, "domainz");

    let bad_domain = "[[app]]\nid = \"x\"\ndomains = [\"Zoom.US\"]\n";
    let e = SignatureDb::parse_file("d.toml", bad_domain).expect_err("domain");
    assert_at(e, "d.toml", 3, 12, "Zoom.US");

    let bad_id = "[[app]]\nid = \"Bad_Id\"\n";
    let e = SignatureDb::parse_file("i.toml", bad_id).expect_err("id");
    assert_at(e, "i.toml", 2, 6, "Bad_Id");

    let bad_hex = "[[app]]\nid = \"x\"\npatterns = [{ proto = \"udp\", hex = \"abc\" }]\n";
    let e = SignatureDb::parse_file("x.toml", bad_hex).expect_err("hex");
    assert_at(e, "x.toml", 3, 13, "hex");

    let need_ports = "[[app]]\nid = \"x\"\ncidrs = [\"192.0.2.0/24\"]\nranges_need_ports = true\n";
    let e = SignatureDb::parse_file("n.toml", need_ports).expect_err("need ports");
    assert_at(e, "n.toml", 4, 21, "ranges_need_ports");

    // The second app of a file is reported at its own line.
    let second = "[[app]]\nid = \"a\"\ndomains = [\"a.example\"]\n\n[[app]]\nid = \"b\"\ndomains = [\"ok.example\", \"bad..example\"]\n";
    let e = SignatureDb::parse_file("two.toml", second).expect_err("second app");
    assert_at(e, "two.toml", 7, 26, "app `b`");

    let syntax = "[[app]]\nid = \"x\"\ndomains = [\"a.example\"\n";
    let e = SignatureDb::parse_file("s.toml", syntax).expect_err("syntax");
    assert!(e.to_string().starts_with("s.toml:"), "{e}");

    // Without a file, from_defs still refuses bad data, naming the app.
    let mut d = def("y");
    d.payload = strs(&["nope"]);
    let e = SignatureDb::from_defs(vec![d]).expect_err("from_defs");
    assert!(
        matches!(&e, SigError::Invalid { app, .. } if app == "y"),
        "{e}"
    );
    let mut d = def("y");
    d.ports = vec![port(Transport::Tcp, "0")];
    assert!(SignatureDb::from_defs(vec![d]).is_err());
}

#[test]
fn load_dir_reads_sorted_toml_files() {
    let dir = std::env::temp_dir().join(format!("geofence-sigdb-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("b.toml"),
        "[[app]]\nid = \"x\"\nname = \"second\"\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("a.toml"),
        "[[app]]\nid = \"x\"\nname = \"first\"\n",
    )
    .expect("write");
    std::fs::write(dir.join("notes.txt"), "not toml").expect("write");
    let defs = SignatureDb::load_dir(&dir).expect("load");
    let names: Vec<_> = defs
        .iter()
        .map(|d| d.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, vec!["first", "second"]);
    let db = SignatureDb::from_defs(defs).expect("db");
    assert_eq!(db.apps().len(), 1);
    assert_eq!(db.apps().first().map(|a| a.name.as_str()), Some("second"));
    std::fs::write(
        dir.join("c.toml"),
        "[[app]]\nid = \"x\"\ncidrs = [\"nope\"]\n",
    )
    .expect("write");
    let e = SignatureDb::load_dir(&dir).expect_err("bad file");
    assert!(e.to_string().contains("c.toml:3:"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(matches!(
        SignatureDb::load_dir(&dir),
        Err(SigError::Io { .. })
    ));
}

#[test]
fn known_matchers_are_the_payload_modules() {
    let mine: BTreeSet<&str> = KNOWN_MATCHERS.iter().copied().collect();
    let theirs: BTreeSet<&str> = geofence_classify::payload::MATCHERS
        .iter()
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(
        mine, theirs,
        "sigdb::KNOWN_MATCHERS and payload::MATCHERS differ"
    );
}

#[test]
fn db_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SignatureDb>();
}

// ---------------------------------------------------------- shared corpus

fn parse_csv_line(line: &str) -> Vec<String> {
    // labels.csv has no quoted fields with commas; keep it simple but honest.
    line.split(',').map(|s| s.trim().to_string()).collect()
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty() && s.parse::<IpAddr>().is_err() && !s.contains(':') && s.contains('.')
}

fn parse_endpoint(s: &str) -> Option<(IpAddr, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.parse().ok()?, port.parse().ok()?))
}

#[test]
fn corpus_server_addresses() {
    let path = shared_dir().join("corpus/labels.csv");
    let Ok(text) = std::fs::read_to_string(&path) else {
        geofence_testkit::skip(format_args!(
            "{} not found (shared/ is absent)",
            path.display()
        ));
        return;
    };
    let db = builtin();
    let mut lines = text.lines();
    let header = parse_csv_line(lines.next().unwrap_or(""));
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .expect("labels.csv column")
    };
    let (c_class, c_server, c_proto, c_expect, c_ndpi) = (
        col("class"),
        col("server"),
        col("proto"),
        col("expect"),
        col("ndpi"),
    );
    let mut by_ip = 0usize;
    let mut positives = 0usize;
    let mut wrong = Vec::new();
    let mut flagged = Vec::new();
    for line in lines {
        let f = parse_csv_line(line);
        let get = |i: usize| f.get(i).map(String::as_str).unwrap_or("");
        let proto = match get(c_proto) {
            "TCP" => Transport::Tcp,
            "UDP" => Transport::Udp,
            _ => continue,
        };
        let Some((addr, port)) = parse_endpoint(get(c_server)) else {
            continue;
        };
        let got = db
            .match_ip(addr, proto, port)
            .map(|(r, _)| db.app(r).id.to_string());
        match (get(c_class), got) {
            ("positive", Some(app)) => {
                positives += 1;
                by_ip += 1;
                if app != get(c_expect) {
                    wrong.push(format!(
                        "{} {:?}/{port} -> {app}, expected {}",
                        addr,
                        proto,
                        get(c_expect)
                    ));
                }
            }
            ("positive", None) => positives += 1,
            (class, Some(app)) => flagged.push(format!(
                "{class:10} {addr} {proto:?}/{port} ({}) -> {app}",
                get(c_ndpi)
            )),
            _ => {}
        }
    }
    println!("positive flows whose server is in a vendor range: {by_ip}/{positives}");
    flagged.sort();
    flagged.dedup();
    for f in &flagged {
        println!("  non-positive flow in a vendor range: {f}");
    }
    assert!(
        wrong.is_empty(),
        "vendor ranges name the wrong app: {wrong:?}"
    );
    // A named non-conferencing service must never sit in an app's range.
    let negatives: Vec<_> = flagged
        .iter()
        .filter(|f| f.starts_with("negative"))
        .collect();
    assert!(
        negatives.is_empty(),
        "negative flows in vendor ranges: {negatives:?}"
    );
}

#[test]
fn corpus_server_names() {
    let path = shared_dir().join("corpus/labels.csv");
    let Ok(text) = std::fs::read_to_string(&path) else {
        geofence_testkit::skip(format_args!(
            "{} not found (shared/ is absent)",
            path.display()
        ));
        return;
    };
    let db = builtin();
    let mut lines = text.lines();
    let header = parse_csv_line(lines.next().unwrap_or(""));
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .expect("labels.csv column")
    };
    let (c_class, c_sni, c_expect, c_ndpi, c_file) = (
        col("class"),
        col("sni"),
        col("expect"),
        col("ndpi"),
        col("file"),
    );
    let mut pos_total = 0usize;
    let mut pos_hit = 0usize;
    let mut misses = Vec::new();
    let mut wrong = Vec::new();
    let mut neg_matches = Vec::new();
    let mut seen = BTreeSet::new();
    for line in lines {
        let f = parse_csv_line(line);
        let get = |i: usize| f.get(i).map(String::as_str).unwrap_or("");
        let (class, sni, expect) = (get(c_class), get(c_sni), get(c_expect));
        if !is_hostname(sni) {
            continue;
        }
        match class {
            "positive" => {
                pos_total += 1;
                match id_of(&db, db.match_host(sni)) {
                    Some(got) if got == expect => pos_hit += 1,
                    Some(got) => wrong.push(format!(
                        "{sni} ({}): expected {expect}, got {got}",
                        get(c_ndpi)
                    )),
                    None => misses.push(format!(
                        "{sni} ({}, {}) expected {expect}",
                        get(c_ndpi),
                        get(c_file)
                    )),
                }
            }
            "negative" | "dns" | "adjacent" => {
                if let Some(got) = id_of(&db, db.match_host(sni)) {
                    if seen.insert((class.to_string(), sni.to_string())) {
                        neg_matches.push(format!("{class:8} {sni} ({}) -> {got}", get(c_ndpi)));
                    }
                }
            }
            _ => {}
        }
    }
    misses.sort();
    misses.dedup();
    println!("positive SNIs matched: {pos_hit}/{pos_total}");
    for m in &misses {
        println!("  miss: {m}");
    }
    for w in &wrong {
        println!("  WRONG: {w}");
    }
    println!("negative/dns/adjacent SNIs that name an app (review each):");
    for n in &neg_matches {
        println!("  {n}");
    }
    assert!(
        wrong.is_empty(),
        "positive SNIs named the wrong app: {wrong:?}"
    );
    assert!(pos_total > 0, "no positive SNIs in labels.csv");
    assert!(
        pos_hit * 100 >= pos_total * 85,
        "only {pos_hit}/{pos_total} positive SNIs matched"
    );
    // A `negative` row is a non-conferencing service: none may name an app,
    // except DNS queries about an app's own name (nDPI labels some of those
    // plain `DNS`; the classifier never labels a resolver flow anyway).
    for n in &neg_matches {
        if n.starts_with("negative") {
            assert!(
                n.contains("(DNS)"),
                "a non-conferencing server name matched an app: {n}"
            );
        }
    }
}
