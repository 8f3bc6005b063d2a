//! Cost of `Policy::decide` on the shipped default policy, and of loading it.
//!
//! `cargo bench -p geofence-policy --bench decide`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use geofence_classify::AppId;
use geofence_geo::{AddressScope, CountryCode, GeoInfo};
use geofence_policy::{load_file, Policy, Query};
use std::net::IpAddr;
use std::path::Path;

fn shipped() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/geofence.toml")
}

fn bench(c: &mut Criterion) {
    let cfg = load_file(&shipped()).expect("shipped config");
    let policy = Policy::from_config(&cfg).expect("compiles");
    let countries = ["US", "DE", "CN", "HK", "RU", "JP", "FR", "KP", "GB", "BR"];
    let apps: Vec<Option<AppId>> = [None, Some("zoom"), Some("teams"), Some("signal")]
        .iter()
        .map(|a| a.map(|s| AppId::new(s).expect("id")))
        .collect();
    // A deterministic mix: 1024 destinations, some unknown, some private.
    let mut x: u32 = 0x9e37_79b9;
    let mut geos = Vec::new();
    for _ in 0..1024 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let idx = (x % 12) as usize;
        let scope = if x & 15 == 0 {
            AddressScope::Private
        } else {
            AddressScope::Public
        };
        let cc: Option<CountryCode> = countries.get(idx).and_then(|c| c.parse().ok());
        geos.push(GeoInfo {
            scope,
            country: cc,
            registered_country: cc,
            asn: None,
            as_org: None,
        });
    }
    let src: IpAddr = "10.0.0.5".parse().expect("ip");
    let dst: IpAddr = "203.0.113.9".parse().expect("ip");
    c.bench_function("decide/shipped-policy/1024-mixed-queries", |b| {
        b.iter(|| {
            let mut blocked = 0u32;
            for (i, g) in geos.iter().enumerate() {
                let app = apps.get(i % apps.len()).and_then(|a| a.as_ref());
                let d = policy.decide(&Query {
                    src,
                    dst,
                    app,
                    geo: g,
                    host: None,
                });
                blocked += u32::from(d.is_block());
            }
            black_box(blocked)
        })
    });
    let text = std::fs::read_to_string(shipped()).expect("read");
    c.bench_function("load_str+compile/shipped-policy", |b| {
        b.iter(|| {
            let cfg = geofence_policy::load_str("geofence.toml", black_box(&text)).expect("valid");
            black_box(Policy::from_config(&cfg).expect("compiles"))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
