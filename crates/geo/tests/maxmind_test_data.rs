//! (1) Lookups against MaxMind's public test databases, checked against the
//! JSON source data they were built from.

use geofence_geo::{AddressScope, CountryCode, GeoDb, GeoField};
use serde_json::Value as Json;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/geo/maxmind-test"
    ));
    if p.is_dir() {
        Some(p)
    } else {
        geofence_testkit::skip(format_args!("{} is absent", p.display()));
        None
    }
}

/// One network of the JSON source: inclusive range in the 128-bit tree key
/// space (IPv4 as ::a.b.c.d) and its record.
struct Net {
    lo: u128,
    hi: u128,
    plen: u32,
    rec: Json,
}

fn load_json(path: &std::path::Path) -> Vec<Net> {
    let text = std::fs::read_to_string(path).expect("read json");
    let arr: Vec<serde_json::Map<String, Json>> = serde_json::from_str(&text).expect("json");
    let mut out = Vec::new();
    for obj in arr {
        for (cidr, rec) in obj {
            let (a, l) = cidr.split_once('/').expect("cidr");
            let l: u32 = l.parse().expect("len");
            let (key, plen) = match a.parse::<IpAddr>().expect("addr") {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)), 96 + l),
                IpAddr::V6(v6) => (u128::from(v6), l),
            };
            let host = if plen >= 128 { 0 } else { u128::MAX >> plen };
            out.push(Net {
                lo: key & !host,
                hi: (key & !host) | host,
                plen,
                rec,
            });
        }
    }
    out
}

/// The address to probe for a network: its first address, as IPv4 when it
/// lies in the IPv4 subtree (::/96).
fn probe(n: &Net) -> IpAddr {
    if n.lo >> 32 == 0 && n.plen >= 96 {
        IpAddr::V4(Ipv4Addr::from(n.lo as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(n.lo))
    }
}

/// The most specific network of the source data containing `key`.
fn most_specific(nets: &[Net], key: u128) -> &Net {
    nets.iter()
        .filter(|n| n.lo <= key && key <= n.hi)
        .max_by_key(|n| n.plen)
        .expect("the probe's own network contains it")
}

fn iso(rec: &Json, field: &str) -> Option<CountryCode> {
    rec.get(field)?
        .get("iso_code")?
        .as_str()
        .and_then(CountryCode::from_db)
}

#[test]
fn geoip2_country_test_db_matches_its_source() {
    let Some(dir) = shared() else { return };
    let db = GeoDb::open(&[dir.join("GeoIP2-Country-Test.mmdb")]).expect("open");
    let meta = &db.databases()[0];
    assert_eq!(meta.database_type, "GeoIP2-Country");
    assert!(meta.provides.country && meta.provides.registered_country && !meta.provides.asn);
    let nets = load_json(&dir.join("GeoIP2-Country-Test.json"));
    assert!(nets.len() > 300);
    let (mut checked, mut with_country, mut non_public) = (0, 0, 0);
    for n in &nets {
        let ip = probe(n);
        let want = most_specific(&nets, n.lo);
        let got = db.lookup(ip);
        if !AddressScope::of(ip).is_public() {
            assert_eq!(got.country, None, "{ip} is not public");
            non_public += 1;
            continue;
        }
        let wc = iso(&want.rec, "country");
        let wr = iso(&want.rec, "registered_country");
        assert_eq!(got.country, wc, "country of {ip}");
        assert_eq!(got.registered_country, wr, "registered_country of {ip}");
        assert_eq!(got.asn, None);
        checked += 1;
        if wc.is_some() {
            with_country += 1;
        }
    }
    println!("checked {checked} networks ({with_country} with a country), {non_public} non-public skipped");
    assert!(checked > 300 && with_country > 200);

    // IPv4-mapped input is looked up as IPv4.
    let v4: IpAddr = "81.2.69.160".parse().expect("ip");
    let mapped: IpAddr = "::ffff:81.2.69.160".parse().expect("ip");
    assert_eq!(
        db.lookup(v4).country.map(|c| c.to_string()).as_deref(),
        Some("GB")
    );
    assert_eq!(db.lookup(mapped), db.lookup(v4));
}

#[test]
fn geolite2_asn_test_db_matches_its_source() {
    let Some(dir) = shared() else { return };
    let db = GeoDb::open(&[dir.join("GeoLite2-ASN-Test.mmdb")]).expect("open");
    let meta = &db.databases()[0];
    assert!(meta.provides.asn && !meta.provides.country);
    let nets = load_json(&dir.join("GeoLite2-ASN-Test.json"));
    let mut checked = 0;
    for n in &nets {
        let ip = probe(n);
        if !AddressScope::of(ip).is_public() {
            assert_eq!(db.lookup(ip).asn, None);
            continue;
        }
        let want = most_specific(&nets, n.lo);
        let got = db.lookup(ip);
        let wa = want
            .rec
            .get("autonomous_system_number")
            .and_then(Json::as_u64)
            .map(|a| a as u32);
        let wo = want
            .rec
            .get("autonomous_system_organization")
            .and_then(Json::as_str);
        assert_eq!(got.asn, wa, "asn of {ip}");
        assert_eq!(got.as_org.as_deref(), wo, "org of {ip}");
        assert_eq!(got.country, None);
        checked += 1;
    }
    println!("checked {checked} ASN networks");
    assert!(checked > 600);
}

#[test]
fn city_and_country_dbs_combine_with_asn() {
    let Some(dir) = shared() else { return };
    let db = GeoDb::open(&[
        dir.join("GeoLite2-City-Test.mmdb"),
        dir.join("GeoLite2-ASN-Test.mmdb"),
    ])
    .expect("open");
    assert_eq!(db.databases().len(), 2);
    // 89.160.20.128/121 is SE in the City test data; 1.128.0.0/11 is Telstra (AS1221) in ASN.
    let se = db.lookup("89.160.20.130".parse().expect("ip"));
    assert_eq!(se.country.map(|c| c.to_string()).as_deref(), Some("SE"));
    let au = db.lookup("1.128.0.1".parse().expect("ip"));
    assert_eq!(au.asn, Some(1221));
    assert_eq!(au.as_org.as_deref(), Some("Telstra Pty Ltd"));

    // Enumeration agrees with lookup on the City database.
    let se_ranges = db.ranges_for_countries(&["SE".parse().expect("cc")], GeoField::Location);
    assert!(se_ranges.contains("89.160.20.130".parse().expect("ip")));
    for &(lo, hi) in se_ranges.v4() {
        for a in [lo, hi, lo + (hi - lo) / 2] {
            let ip = IpAddr::V4(Ipv4Addr::from(a));
            assert_eq!(
                db.lookup(ip).country.map(|c| c.to_string()).as_deref(),
                Some("SE"),
                "{ip}"
            );
        }
    }
}

#[test]
fn non_geo_maxmind_dbs_are_refused_or_accepted_by_content() {
    let Some(dir) = shared() else { return };
    // The Anonymous-IP database carries no country or ASN: refused as unusable.
    let e = GeoDb::open(&[dir.join("GeoIP2-Anonymous-IP-Test.mmdb")]).expect_err("anonymous-ip");
    assert!(
        e.to_string().contains("GeoIP2-Anonymous-IP-Test.mmdb"),
        "{e}"
    );
    // The ISP database carries ASNs.
    let isp = GeoDb::open(&[dir.join("GeoIP2-ISP-Test.mmdb")]).expect("isp");
    assert!(isp.databases()[0].provides.asn);
}
