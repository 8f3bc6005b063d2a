//! MaxMind DB loading on hostile files, then lookups and range listings.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use geofence_geo::{GeoDb, GeoField};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(db) = GeoDb::from_sources(vec![("f".into(), data.to_vec())]) else {
        return;
    };
    for ip in [
        IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1)),
        IpAddr::V4(Ipv4Addr::new(81, 2, 69, 160)),
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0x218, 0, 0, 0, 0, 0, 1)),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ] {
        let _ = db.lookup(ip);
    }
    let _ = db.ranges_by_country(GeoField::Location);
    let _ = db.ranges_by_country(GeoField::Registered);
    let _ = db.ranges_for_asns(&[15169, 0]);
    let _ = db.databases().len();
});
