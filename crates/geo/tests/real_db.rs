//! (7) Enumeration and lookup on the real ip-location-db
//! `geo-whois-asn-country.mmdb` agree with each other.

use geofence_geo::{CountryCode, GeoDb, GeoField};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

fn db() -> Option<GeoDb> {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/geo/geo-whois-asn-country.mmdb"
    ));
    if !p.is_file() {
        geofence_testkit::skip(format_args!("{} is absent", p.display()));
        return None;
    }
    Some(GeoDb::open(&[p]).expect("open geo-whois"))
}

fn cc(s: &str) -> CountryCode {
    s.parse().expect("cc")
}

#[test]
fn geo_whois_ranges_agree_with_lookup() {
    let Some(db) = db() else { return };
    let m = &db.databases()[0];
    assert_eq!(m.ip_version, 6);
    assert!(m.provides.country && !m.provides.asn && !m.provides.registered_country);
    assert!(m.node_count > 1_000_000);

    let by = db.ranges_by_country(GeoField::Location);
    assert!(by.len() > 200, "{} countries", by.len());
    let cn = &by[&cc("CN")];
    println!(
        "CN: {} v4 ranges, {} v6 ranges",
        cn.v4().len(),
        cn.v6().len()
    );
    assert!(cn.v4().len() > 1000 && cn.v6().len() > 1000);
    assert_eq!(
        &db.ranges_for_countries(&[cc("CN")], GeoField::Location),
        cn
    );

    // Spot checks (values of this build of the database).
    let look = |s: &str| {
        db.lookup(s.parse().expect("ip"))
            .country
            .map(|c| c.to_string())
    };
    assert_eq!(look("1.1.1.1").as_deref(), Some("AU"));
    assert_eq!(look("114.114.114.114").as_deref(), Some("CN"));
    assert_eq!(look("77.88.8.8").as_deref(), Some("RU"));
    assert!(cn.contains("114.114.114.114".parse().expect("ip")));
    assert!(!cn.contains("1.1.1.1".parse().expect("ip")));
    assert!(by[&cc("AU")].contains("1.1.1.1".parse().expect("ip")));
    assert!(by[&cc("RU")].contains("77.88.8.8".parse().expect("ip")));

    // No address is in two countries' ranges.
    let mut all_v4: Vec<(u32, u32, CountryCode)> = by
        .iter()
        .flat_map(|(c, r)| r.v4().iter().map(move |&(a, b)| (a, b, *c)))
        .collect();
    all_v4.sort_unstable();
    for w in all_v4.windows(2) {
        assert!(w[0].1 < w[1].0, "{:?} overlaps {:?}", w[0], w[1]);
    }

    // Pseudo-random addresses: lookup says CN exactly when the CN ranges contain it.
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut in_cn, mut known) = (0, 0);
    for i in 0..40_000 {
        let ip = if i % 2 == 0 {
            IpAddr::V4(Ipv4Addr::from(next() as u32))
        } else {
            // Inside 2000::/4, where the v6 allocations are.
            let hi = (0x2u128 << 124) | (u128::from(next()) << 60 >> 4);
            IpAddr::V6(Ipv6Addr::from(hi | u128::from(next() as u32)))
        };
        let got = db.lookup(ip).country;
        if got.is_some() {
            known += 1;
        }
        if got == Some(cc("CN")) {
            in_cn += 1;
        }
        assert_eq!(
            got == Some(cc("CN")),
            cn.contains(ip),
            "{ip}: lookup {got:?}"
        );
        if let Some(c) = got {
            assert!(
                by[&c].contains(ip),
                "{ip} ({c}) missing from its country's ranges"
            );
        }
    }
    println!("{known} of 40000 random addresses known, {in_cn} CN");
    assert!(in_cn > 100 && known > 15_000);

    // Range ends of every 50th CN range look up as CN.
    for &(lo, hi) in cn.v4().iter().step_by(50) {
        for a in [lo, hi] {
            assert_eq!(db.lookup(IpAddr::V4(a.into())).country, Some(cc("CN")));
        }
    }
    for &(lo, hi) in cn.v6().iter().step_by(50) {
        for a in [lo, hi] {
            assert_eq!(db.lookup(IpAddr::V6(a.into())).country, Some(cc("CN")));
        }
    }
}
