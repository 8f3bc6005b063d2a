//! The shipped list of public encrypted DNS resolvers
//! (`config/signatures/encrypted-dns.toml`) with the DNS gate example:
//! DoH names, DoT/DoH/DoQ addresses on their ports, and a policy that
//! blocks them while plain DNS and other traffic stay untouched.

use std::net::IpAddr;
use std::path::Path;

use geofence_classify::sigs::Transport;
use geofence_classify::{AppId, SignatureDb};
use geofence_geo::GeoInfo;
use geofence_policy::{load_file, Action, Policy, Query};

fn example() -> (geofence_policy::Config, Policy, SignatureDb) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/examples/dns-gate.toml");
    let c = load_file(&p).unwrap_or_else(|e| panic!("{e}"));
    let policy = Policy::from_config(&c).unwrap_or_else(|e| panic!("{e}"));
    let mut defs = SignatureDb::builtin_defs();
    defs.extend(c.signature_apps.iter().cloned());
    let sigs = SignatureDb::from_defs(defs).expect("signatures");
    (c, policy, sigs)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[test]
fn doh_names_and_resolver_addresses_name_the_app() {
    let (c, _, sigs) = example();
    assert!(c.dns_gate.enabled);
    let app = sigs.find("encrypted-dns").expect("the list is loaded");
    for host in [
        "cloudflare-dns.com",
        "mozilla.cloudflare-dns.com",
        "dns.google",
        "dns.quad9.net",
        "dns.adguard-dns.com",
        "doh.opendns.com",
        "dns.nextdns.io",
    ] {
        assert_eq!(sigs.match_host(host), Some(app), "{host}");
    }
    for other in [
        "google.com",
        "quad9.net",
        "example.org",
        "www.cloudflare.com",
    ] {
        assert_ne!(sigs.match_host(other), Some(app), "{other}");
    }
    // Addresses count on the encrypted DNS ports only.
    for (addr, proto, port) in [
        ("1.1.1.1", Transport::Tcp, 853),
        ("8.8.8.8", Transport::Tcp, 443),
        ("9.9.9.9", Transport::Udp, 853),
        ("2606:4700:4700::1111", Transport::Udp, 443),
        ("2001:4860:4860::8888", Transport::Tcp, 853),
    ] {
        assert_eq!(
            sigs.match_ip(ip(addr), proto, port).map(|(a, _)| a),
            Some(app),
            "{addr} {port}"
        );
    }
    assert_eq!(
        sigs.match_ip(ip("8.8.8.8"), Transport::Udp, 53),
        None,
        "plain DNS is not labelled"
    );
    assert_eq!(
        sigs.match_ip(ip("8.8.8.9"), Transport::Tcp, 853)
            .map(|(a, _)| a),
        None
    );
}

#[test]
fn the_example_policy_blocks_encrypted_dns_only() {
    let (_, policy, _) = example();
    // 1.1.1.1 as the databases place it.
    let geo = GeoInfo {
        scope: geofence_geo::AddressScope::Public,
        country: "AU".parse().ok(),
        registered_country: "AU".parse().ok(),
        asn: Some(13335),
        as_org: None,
    };
    let decide = |app: Option<&str>| {
        let id = app.map(|a| AppId::new(a).expect("id"));
        policy
            .decide(&Query {
                src: ip("192.0.2.10"),
                dst: ip("1.1.1.1"),
                app: id.as_ref(),
                geo: &geo,
                host: None,
            })
            .action
    };
    assert_eq!(decide(Some("encrypted-dns")), Action::Block);
    assert_eq!(decide(None), Action::Allow);
    // The list is not conferencing: `apps = ["conferencing"]` leaves it alone.
    let group = policy.decide(&Query {
        src: ip("192.0.2.10"),
        dst: ip("1.1.1.1"),
        app: Some(&AppId::new("zoom").expect("id")),
        geo: &geo,
        host: None,
    });
    assert_eq!(group.action, Action::Allow);
}
