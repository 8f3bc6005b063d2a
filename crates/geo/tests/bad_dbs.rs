//! (5) Corrupt, hostile and truncated databases are refused with an error
//! naming the file; never a panic or a hang.

use geofence_geo::{GeoDb, GeoError};
use geofence_testkit::mmdb::geoip2_country;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn shared_geo() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/geo"));
    if p.is_dir() {
        Some(p)
    } else {
        geofence_testkit::skip(format_args!("{} is absent", p.display()));
        None
    }
}

fn assert_refused(name: &str, r: Result<GeoDb, GeoError>) -> GeoError {
    match r {
        Ok(db) => panic!("{name} was accepted: {:?}", db.databases()),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(name), "error does not name {name}: {msg}");
            e
        }
    }
}

#[test]
fn every_bad_shared_db_is_refused() {
    let Some(dir) = shared_geo() else { return };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("bad"))
        .expect("bad dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "mmdb"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "expected the shared bad/ corpus, found {}",
        files.len()
    );
    for f in &files {
        let t = Instant::now();
        let e = assert_refused(&f.display().to_string(), GeoDb::open(&[f]));
        assert!(
            matches!(e, GeoError::Corrupt { .. } | GeoError::Unsupported { .. }),
            "{e:?}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{} took {:?}",
            f.display(),
            t.elapsed()
        );
        println!("refused: {e}");
    }
}

#[test]
fn open_is_all_or_nothing() {
    let Some(dir) = shared_geo() else { return };
    let good = dir.join("maxmind-test/GeoIP2-Country-Test.mmdb");
    let bad = dir.join("bad/cyclic-data-structure.mmdb");
    assert!(GeoDb::open(&[&good]).is_ok());
    assert_refused("cyclic-data-structure.mmdb", GeoDb::open(&[&good, &bad]));
    let missing = dir.join("no-such-file.mmdb");
    let e = assert_refused("no-such-file.mmdb", GeoDb::open(&[&good, &missing]));
    assert!(matches!(e, GeoError::Io { .. }));
}

fn truncations(name: &str, bytes: &[u8]) {
    // Cuts at the start of, inside and at the end of each section.
    let len = bytes.len();
    let mut cuts = vec![
        0,
        1,
        16,
        len / 4,
        len / 2,
        len - 200.min(len / 2),
        len - 20,
        len - 1,
    ];
    cuts.extend((1..=40).map(|i| len * i / 41));
    for cut in cuts {
        let r = GeoDb::from_sources(vec![(name.to_string(), bytes[..cut].to_vec())]);
        assert_refused(name, r);
    }
}

#[test]
fn truncated_good_dbs_are_refused() {
    let generated = geoip2_country(&[
        ("198.51.100.0/24", "DE", Some("US")),
        ("203.0.113.0/25", "CN", Some("CN")),
        ("2001:db8::/32", "JP", None),
    ])
    .to_bytes();
    assert!(GeoDb::from_sources(vec![("gen.mmdb".into(), generated.clone())]).is_ok());
    truncations("gen.mmdb", &generated);

    let Some(dir) = shared_geo() else { return };
    let p = dir.join("maxmind-test/GeoIP2-Country-Test.mmdb");
    let bytes = std::fs::read(&p).expect("read");
    truncations("GeoIP2-Country-Test.mmdb (truncated)", &bytes);
    // A truncated copy on disk is refused by path, too.
    let tmp = tempfile::tempdir().expect("tmp");
    let cut = tmp.path().join("truncated.mmdb");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    assert_refused("truncated.mmdb", GeoDb::open(&[&cut]));
}

#[test]
fn flipped_bytes_never_panic() {
    // Corrupt the search tree and data section of a generated db byte by byte:
    // each variant is either refused or, if still structurally valid, usable.
    let base = geoip2_country(&[
        ("198.51.100.0/24", "DE", Some("US")),
        ("198.51.100.128/25", "FR", None),
        ("2001:db8::/32", "JP", Some("JP")),
    ])
    .to_bytes();
    let mut refused = 0;
    for i in 0..base.len() {
        for x in [0xffu8, 0x01, 0x80] {
            let mut b = base.clone();
            b[i] ^= x;
            match GeoDb::from_sources(vec![("flip.mmdb".into(), b)]) {
                Ok(db) => {
                    let _ = db.lookup("198.51.100.1".parse().expect("ip"));
                    let _ = db.lookup("2001:db8::1".parse().expect("ip"));
                    let _ = db.ranges_by_country(geofence_geo::GeoField::Location);
                }
                Err(e) => {
                    assert!(e.to_string().contains("flip.mmdb"));
                    refused += 1;
                }
            }
        }
    }
    assert!(refused > base.len(), "only {refused} variants refused");
}
