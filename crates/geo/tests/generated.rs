//! Lookups, combination, scopes, staleness and enumeration on databases the
//! test generates with `geofence_testkit::mmdb`.

use geofence_geo::{AddressScope, CountryCode, GeoDb, GeoField, GeoInfo, IpRanges};
use geofence_testkit::mmdb::{
    geoip2_country, geolite2_asn, ip_location_db_country, MmdbBuilder, Value,
};
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn cc(s: &str) -> CountryCode {
    s.parse().expect("country code")
}

fn open(dbs: Vec<(&str, MmdbBuilder)>) -> GeoDb {
    GeoDb::from_sources(
        dbs.into_iter()
            .map(|(n, b)| (n.to_string(), b.to_bytes()))
            .collect(),
    )
    .expect("open")
}

fn country_of(db: &GeoDb, a: &str) -> Option<String> {
    db.lookup(ip(a)).country.map(|c| c.to_string())
}

#[test]
fn combined_country_and_asn_databases() {
    let country = geoip2_country(&[
        ("198.51.100.0/24", "DE", Some("US")),
        ("203.0.113.0/24", "CN", Some("CN")),
        ("2001:db8:1::/48", "RU", None),
    ]);
    let asn = geolite2_asn(&[
        ("198.51.100.0/25", 64496, "Example Transit"),
        ("2001:db8::/32", 64511, "Example v6"),
    ]);
    let db = open(vec![("country.mmdb", country), ("asn.mmdb", asn)]);
    let m = db.databases();
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].name, "country.mmdb");
    assert!(m[0].provides.country && m[0].provides.registered_country && !m[0].provides.asn);
    assert!(m[1].provides.asn && !m[1].provides.country);

    let a = db.lookup(ip("198.51.100.10"));
    assert_eq!(
        a,
        GeoInfo {
            scope: AddressScope::Public,
            country: Some(cc("DE")),
            registered_country: Some(cc("US")),
            asn: Some(64496),
            as_org: Some("Example Transit".to_string()),
        }
    );
    // Country known, ASN not.
    let b = db.lookup(ip("198.51.100.200"));
    assert_eq!((b.country, b.asn, b.as_org), (Some(cc("DE")), None, None));
    // IPv6: country from one db (no registered_country in that record), ASN from the other.
    let c = db.lookup(ip("2001:db8:1::5"));
    assert_eq!(
        (c.country, c.registered_country, c.asn),
        (Some(cc("RU")), None, Some(64511))
    );
    let d = db.lookup(ip("2001:db8:2::5"));
    assert_eq!((d.country, d.asn), (None, Some(64511)));
    assert_eq!(
        db.lookup(ip("192.0.2.1")),
        GeoInfo::unknown(AddressScope::Public)
    );

    assert_eq!(
        db.ranges_for_asns(&[64496]),
        IpRanges::from_cidrs(&["198.51.100.0/25"]).expect("cidr")
    );
    assert_eq!(
        db.ranges_for_asns(&[64511, 1]),
        IpRanges::from_cidrs(&["2001:db8::/32"]).expect("cidr")
    );
}

#[test]
fn first_database_wins_in_lookup_and_in_ranges() {
    let first = ip_location_db_country(&[("198.51.100.0/25", "DE")]);
    let second = ip_location_db_country(&[("198.51.100.0/24", "FR"), ("203.0.113.0/24", "DE")]);
    let db = open(vec![("a.mmdb", first), ("b.mmdb", second)]);
    assert_eq!(country_of(&db, "198.51.100.1").as_deref(), Some("DE"));
    assert_eq!(country_of(&db, "198.51.100.129").as_deref(), Some("FR"));
    assert_eq!(
        db.ranges_for_countries(&[cc("FR")], GeoField::Location),
        IpRanges::from_cidrs(&["198.51.100.128/25"]).expect("cidr")
    );
    assert_eq!(
        db.ranges_for_countries(&[cc("DE")], GeoField::Location),
        IpRanges::from_cidrs(&["198.51.100.0/25", "203.0.113.0/24"]).expect("cidr")
    );
}

#[test]
fn ipv6_against_ipv4_only_db_is_unknown_and_ipv4_in_ipv6_db_works() {
    let mut v4only = MmdbBuilder::new("ip-location-db-country", 4);
    v4only.insert(
        "198.51.100.0/24",
        Value::map([("country_code", Value::str("NL"))]),
    );
    let db = open(vec![("v4.mmdb", v4only)]);
    assert_eq!(db.databases()[0].ip_version, 4);
    assert_eq!(country_of(&db, "198.51.100.3").as_deref(), Some("NL"));
    assert_eq!(
        country_of(&db, "::ffff:198.51.100.3").as_deref(),
        Some("NL")
    );
    assert_eq!(
        db.lookup(ip("2001:db8::1")),
        GeoInfo::unknown(AddressScope::Public)
    );
    assert_eq!(
        db.ranges_for_countries(&[cc("NL")], GeoField::Location),
        IpRanges::from_cidrs(&["198.51.100.0/24"]).expect("cidr")
    );

    let v6 = ip_location_db_country(&[("198.51.100.0/24", "NL"), ("2001:db8::/32", "BE")]);
    let db = open(vec![("v6.mmdb", v6)]);
    assert_eq!(db.databases()[0].ip_version, 6);
    assert_eq!(country_of(&db, "198.51.100.3").as_deref(), Some("NL"));
    assert_eq!(
        country_of(&db, "::ffff:198.51.100.3").as_deref(),
        Some("NL")
    );
    assert_eq!(country_of(&db, "2001:db8::1").as_deref(), Some("BE"));
    assert_eq!(country_of(&db, "198.51.101.3"), None);
}

#[test]
fn non_public_addresses_never_get_a_country() {
    let mapped = [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "224.0.0.0/4",
        "0.0.0.0/8",
        "240.0.0.0/4",
        "fe80::/10",
        "fc00::/7",
        "ff00::/8",
        "::1/128",
    ];
    let entries: Vec<(&str, &str, Option<&str>)> =
        mapped.iter().map(|c| (*c, "CN", Some("CN"))).collect();
    let mut b = geoip2_country(&entries);
    b.insert(
        "198.51.100.0/24",
        Value::map([("country", Value::map([("iso_code", Value::str("CN"))]))]),
    );
    let asn = geolite2_asn(
        &mapped
            .iter()
            .map(|c| (*c, 64500u32, "Bad"))
            .collect::<Vec<_>>(),
    );
    let db = open(vec![("c.mmdb", b), ("a.mmdb", asn)]);
    // The database does map them: a public address in the same db is found.
    assert_eq!(country_of(&db, "198.51.100.1").as_deref(), Some("CN"));
    for (a, scope) in [
        ("10.1.2.3", AddressScope::Private),
        ("172.20.0.1", AddressScope::Private),
        ("192.168.1.1", AddressScope::Private),
        ("100.100.1.1", AddressScope::Private),
        ("127.0.0.1", AddressScope::Loopback),
        ("169.254.10.1", AddressScope::LinkLocal),
        ("224.0.0.251", AddressScope::Multicast),
        ("239.255.255.250", AddressScope::Multicast),
        ("0.1.2.3", AddressScope::Reserved),
        ("255.255.255.255", AddressScope::Reserved),
        ("fe80::1", AddressScope::LinkLocal),
        ("fd12:3456::1", AddressScope::Private),
        ("ff02::fb", AddressScope::Multicast),
        ("::1", AddressScope::Loopback),
        ("::ffff:10.1.2.3", AddressScope::Private),
        ("::ffff:127.0.0.1", AddressScope::Loopback),
    ] {
        assert_eq!(db.lookup(ip(a)), GeoInfo::unknown(scope), "{a}");
    }
    // Nor do the range sets built for enforcement contain them.
    let cn = db.ranges_for_countries(&[cc("CN")], GeoField::Location);
    assert_eq!(
        cn,
        IpRanges::from_cidrs(&["198.51.100.0/24"]).expect("cidr")
    );
    assert_eq!(
        db.ranges_for_countries(&[cc("CN")], GeoField::Registered),
        IpRanges::new(),
        "only non-public networks have a registered country"
    );
    assert!(db.ranges_for_asns(&[64500]).is_empty());
    assert!(!db
        .ranges_by_country(GeoField::Registered)
        .contains_key(&cc("CN")));
}

#[test]
fn stale_detection_uses_build_epoch() {
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let fresh = ip_location_db_country(&[("198.51.100.0/24", "DE")])
        .build_epoch(1_800_000_000 - 3 * 86_400);
    let old = geolite2_asn(&[("198.51.100.0/24", 64496, "x")])
        .build_epoch(1_800_000_000 - 45 * 86_400 - 10);
    let future =
        geolite2_asn(&[("198.51.100.0/24", 64496, "x")]).build_epoch(1_800_000_000 + 86_400);
    let db = open(vec![
        ("fresh.mmdb", fresh),
        ("old.mmdb", old),
        ("future.mmdb", future),
    ]);
    let m = db.databases();
    assert_eq!(m[0].build_epoch, 1_800_000_000 - 3 * 86_400);
    assert_eq!(m[0].age_days(now), 3);
    assert_eq!(m[1].age_days(now), 45);
    assert_eq!(m[2].age_days(now), 0);
    let names =
        |v: Vec<&geofence_geo::DbMeta>| v.into_iter().map(|m| m.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(db.stale(30, now)), ["old.mmdb"]);
    assert_eq!(names(db.stale(45, now)), Vec::<String>::new());
    assert_eq!(names(db.stale(44, now)), ["old.mmdb"]);
    assert_eq!(names(db.stale(2, now)), ["fresh.mmdb", "old.mmdb"]);
    // A generated db without an explicit epoch is built now: not stale.
    let db = open(vec![(
        "now.mmdb",
        ip_location_db_country(&[("198.51.100.0/24", "DE")]),
    )]);
    assert!(db.stale(1, SystemTime::now()).is_empty());
    assert_eq!(db.databases()[0].database_type, "ip-location-db-country");
    assert!(db.databases()[0].description.is_some());
}

#[test]
fn enumeration_merges_per_country() {
    let b = geoip2_country(&[
        ("198.51.100.0/25", "CN", Some("US")),
        ("198.51.100.128/25", "CN", None),
        ("198.51.101.0/24", "CN", Some("CN")),
        ("198.51.101.64/26", "JP", Some("CN")),
        ("203.0.113.7", "CN", None),
        ("2001:db8::/33", "CN", Some("CN")),
        ("2001:db8:8000::/33", "CN", Some("CN")),
        ("2001:db8:8000::/48", "KR", Some("US")),
        ("2001:db9::/32", "JP", None),
    ]);
    let db = open(vec![("gen.mmdb", b)]);
    let cn = db.ranges_for_countries(&[cc("CN")], GeoField::Location);
    let want = IpRanges::from_cidrs(&[
        "198.51.100.0/24",
        "198.51.101.0/26",
        "198.51.101.128/25",
        "203.0.113.7",
        "2001:db8::/33",
        "2001:db8:8001::/48",
        "2001:db8:8002::/47",
        "2001:db8:8004::/46",
        "2001:db8:8008::/45",
        "2001:db8:8010::/44",
        "2001:db8:8020::/43",
        "2001:db8:8040::/42",
        "2001:db8:8080::/41",
        "2001:db8:8100::/40",
        "2001:db8:8200::/39",
        "2001:db8:8400::/38",
        "2001:db8:8800::/37",
        "2001:db8:9000::/36",
        "2001:db8:a000::/35",
        "2001:db8:c000::/34",
    ])
    .expect("cidrs");
    assert_eq!(cn, want);
    assert_eq!(cn.v4().len(), 3);
    assert_eq!(
        cn.v6(),
        &[
            (
                0x2001_0db8u128 << 96,
                (0x2001_0db8u128 << 96) | ((1u128 << 95) - 1)
            ),
            ((0x2001_0db8_8001u128) << 80, (0x2001_0db9u128 << 96) - 1)
        ]
    );
    let both = db.ranges_for_countries(&[cc("CN"), cc("JP")], GeoField::Location);
    assert_eq!(
        both,
        cn.union(&IpRanges::from_cidrs(&["198.51.101.64/26", "2001:db9::/32"]).expect("c"))
    );
    // Registered: CN registered, falling back to nothing for records without it
    // (this db provides registered_country, so no fallback to location).
    let reg_cn = db.ranges_for_countries(&[cc("CN")], GeoField::Registered);
    assert_eq!(
        reg_cn,
        IpRanges::from_cidrs(&["198.51.101.0/24", "2001:db8::/33", "2001:db8:8000::/33"])
            .expect("c")
            .difference(&IpRanges::from_cidrs(&["2001:db8:8000::/48"]).expect("c"))
    );
    let by = db.ranges_by_country(GeoField::Location);
    assert_eq!(
        by.keys().map(|c| c.to_string()).collect::<Vec<_>>(),
        ["CN", "JP", "KR"]
    );
    assert_eq!(by[&cc("CN")], cn);
    // Every range agrees with lookup at both ends.
    for (c, r) in &by {
        for &(lo, hi) in r.v4() {
            for a in [lo, hi] {
                let got = db.lookup(IpAddr::V4(a.into())).country;
                assert_eq!(got, Some(*c), "{}", std::net::Ipv4Addr::from(a));
            }
        }
        for &(lo, hi) in r.v6() {
            for a in [lo, hi] {
                assert_eq!(db.lookup(IpAddr::V6(a.into())).country, Some(*c));
            }
        }
    }
    assert!(db
        .ranges_for_countries(&[cc("DE")], GeoField::Location)
        .is_empty());
}

#[test]
fn registered_falls_back_to_location_for_dbs_without_it() {
    let db = open(vec![(
        "loc.mmdb",
        ip_location_db_country(&[("198.51.100.0/24", "IR")]),
    )]);
    assert!(!db.databases()[0].provides.registered_country);
    let i = db.lookup(ip("198.51.100.1"));
    assert_eq!(
        (i.country, i.registered_country),
        (Some(cc("IR")), Some(cc("IR")))
    );
    assert_eq!(
        db.ranges_for_countries(&[cc("IR")], GeoField::Registered),
        db.ranges_for_countries(&[cc("IR")], GeoField::Location)
    );
}

#[test]
fn record_sizes_28_and_32_read_the_same() {
    for rs in [24u16, 28, 32] {
        let b = ip_location_db_country(&[("198.51.100.0/24", "DE"), ("2001:db8::/32", "FR")])
            .record_size(rs);
        let db = open(vec![("rs.mmdb", b)]);
        assert_eq!(db.databases()[0].record_size, rs);
        assert_eq!(country_of(&db, "198.51.100.9").as_deref(), Some("DE"));
        assert_eq!(country_of(&db, "2001:db8::9").as_deref(), Some("FR"));
    }
}

#[test]
fn empty_description_is_accepted_but_still_verified() {
    // ip-location-db files carry an empty description map; maxminddb's
    // verifier alone would refuse them.
    let b = ip_location_db_country(&[("198.51.100.0/24", "DE")]).descriptions(&[]);
    let bytes = b.to_bytes();
    let db = GeoDb::from_sources(vec![("nodesc.mmdb".into(), bytes.clone())]).expect("open");
    assert_eq!(db.databases()[0].description, None);
    assert_eq!(country_of(&db, "198.51.100.1").as_deref(), Some("DE"));
    // The rest of the file is still verified: a dirty separator is refused.
    let sep = db.databases()[0].node_count as usize * 6;
    let mut bad = bytes.clone();
    bad[sep + 3] = 0x55;
    let e =
        GeoDb::from_sources(vec![("nodesc-bad.mmdb".into(), bad)]).expect_err("dirty separator");
    assert!(
        e.to_string().contains("nodesc-bad.mmdb") && e.to_string().contains("separator"),
        "{e}"
    );
    // And so is the same corruption with a description.
    let mut bad = ip_location_db_country(&[("198.51.100.0/24", "DE")]).to_bytes();
    bad[sep + 3] = 0x55;
    assert!(GeoDb::from_sources(vec![("desc-bad.mmdb".into(), bad)]).is_err());
}

#[test]
fn open_reads_written_files_in_priority_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = dir.path().join("country.mmdb");
    let b = dir.path().join("asn.mmdb");
    geoip2_country(&[("203.0.113.0/24", "KP", Some("KP"))])
        .write(&a)
        .expect("write a");
    geolite2_asn(&[("203.0.113.0/24", 64499, "Example")])
        .write(&b)
        .expect("write b");
    let db = GeoDb::open(&[&a, &b]).expect("open");
    let names: Vec<&str> = db.databases().iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [a.to_str().expect("utf8"), b.to_str().expect("utf8")]
    );
    let i = db.lookup(ip("203.0.113.9"));
    assert_eq!((i.country, i.asn), (Some(cc("KP")), Some(64499)));
}
