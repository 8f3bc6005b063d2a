//! Lookup throughput and whole-database enumeration time on the real
//! ip-location-db `geo-whois-asn-country.mmdb` (skipped when absent).
//!
//! `cargo bench -p geofence-geo --bench lookup`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use geofence_geo::{GeoDb, GeoField};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

const N: usize = 1_000_000;

fn db_path() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/geo/geo-whois-asn-country.mmdb"
    ));
    if p.is_file() {
        Some(p)
    } else {
        println!("skipping geo benches: {} is absent", p.display());
        None
    }
}

/// xorshift64*: deterministic pseudo-random IPv4 addresses.
fn random_v4(n: usize) -> Vec<IpAddr> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
            IpAddr::V4(Ipv4Addr::from((r >> 32) as u32))
        })
        .collect()
}

/// Pseudo-random IPv6 addresses in 2000::/4, where allocations are.
fn random_v6(n: usize) -> Vec<IpAddr> {
    random_v4(2 * n)
        .chunks(2)
        .map(|c| {
            let bits = |ip: &IpAddr| match ip {
                IpAddr::V4(a) => u128::from(u32::from(*a)),
                IpAddr::V6(_) => 0,
            };
            let hi = (bits(&c[0]) << 32 | bits(&c[1])) << 60 >> 4;
            IpAddr::V6(((0x2u128 << 124) | hi).into())
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let Some(path) = db_path() else { return };
    let t = std::time::Instant::now();
    let db = GeoDb::open(&[&path]).expect("open");
    println!("open + verify + record table: {:?}", t.elapsed());
    let ips = random_v4(N);
    let known = ips
        .iter()
        .filter(|ip| db.lookup(**ip).country.is_some())
        .count();
    println!("{known} of {N} random IPv4 addresses have a country");

    let mut g = c.benchmark_group("geo");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("lookup_1M_random_v4", |b| {
        b.iter(|| {
            let mut hits = 0usize;
            for ip in &ips {
                if db.lookup(black_box(*ip)).country.is_some() {
                    hits += 1;
                }
            }
            hits
        })
    });
    // Baseline in the same run: maxminddb's own lookup, stopping at the data
    // offset (no decoding), which is what GeoDb replaces with its tree walk.
    let reader = maxminddb::Reader::open_readfile(&path).expect("reader");
    g.bench_function("baseline_maxminddb_lookup_offset_1M_random_v4", |b| {
        b.iter(|| {
            let mut hits = 0usize;
            for ip in &ips {
                if let Ok(r) = reader.lookup(black_box(*ip)) {
                    if r.offset().is_some() {
                        hits += 1;
                    }
                }
            }
            hits
        })
    });
    let ips6 = random_v6(N);
    g.bench_function("lookup_1M_random_v6_in_2000::/4", |b| {
        b.iter(|| {
            let mut hits = 0usize;
            for ip in &ips6 {
                if db.lookup(black_box(*ip)).country.is_some() {
                    hits += 1;
                }
            }
            hits
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("ranges_by_country_location", |b| {
        b.iter(|| db.ranges_by_country(GeoField::Location).len())
    });
    g.bench_function("open_verify", |b| {
        b.iter(|| GeoDb::open(&[&path]).expect("open").databases().len())
    });
    g.finish();
}

criterion_group!(geo, benches);
criterion_main!(geo);
