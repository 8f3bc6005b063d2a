//! Bulk-load benchmark: country interval sets from the real mmdb, loaded into
//! a throw-away network namespace through nftnl (this crate) and through
//! `nft -f` of the same rendered text, in the same run.
//!
//! `cargo bench -p geofence-nft --bench load` (root). The process re-executes
//! itself inside the namespace (`ip netns exec NS <self> --inner`).

use geofence_geo::{CountryCode, GeoDb, GeoField, IpRanges};
use geofence_nft::{render, Hook, Nft, RuleSpec, RulesetSpec, Verdict, DEFAULT_PRIORITY};
use std::process::Command;
use std::time::Instant;

fn mmdb() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/geo/geo-whois-asn-country.mmdb"
    )
    .to_string()
}

fn spec(rules: Vec<(String, IpRanges)>) -> RulesetSpec {
    RulesetSpec {
        table: "geofence".into(),
        hook: Hook::Forward,
        priority: DEFAULT_PRIORITY,
        enforce: true,
        dns_redirect: None,
        nflog: None,
        rules: rules
            .into_iter()
            .enumerate()
            .map(|(i, (name, r))| RuleSpec {
                index: i,
                name,
                verdict: Verdict::Drop,
                src: None,
                static_dst: Some(r),
                static_ports: vec![],
                dynamic: true,
            })
            .collect(),
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn case(nft: &mut Nft, label: &str, s: &RulesetSpec) {
    let t = Instant::now();
    let rs = render(s);
    let render_ms = ms(t);
    let v4: usize = rs.sets.iter().map(|x| x.v4.len()).sum();
    let v6: usize = rs.sets.iter().map(|x| x.v6.len()).sum();
    println!(
        "## {label}: {} sets, {v4} IPv4 + {v6} IPv6 ranges, {} rules (render {render_ms:.1} ms)",
        rs.sets.len(),
        rs.rule_count()
    );

    if let Err(e) = nft.delete_table() {
        println!("delete failed: {e}");
    }
    let modes = [
        "nftnl apply into empty netns",
        "nftnl apply in place (reload, same content)",
        "nftnl full replace (table add/del/add)",
    ];
    for (i, what) in modes.iter().enumerate() {
        let t = Instant::now();
        let res = if i == 2 {
            nft.replace(&rs, &[])
        } else {
            nft.apply(&rs, &[])
        };
        match res {
            Ok(r) => println!(
                "{what}: total {:.1} ms = build {:.1} + send/commit/acks {:.1} + read-back verify {:.1}; {} msgs, {:.2} MB, verified={}",
                ms(t),
                r.build_time.as_secs_f64() * 1e3,
                r.commit_time.as_secs_f64() * 1e3,
                r.verify_time.as_secs_f64() * 1e3,
                r.messages,
                r.batch_bytes as f64 / 1e6,
                r.verify.ok()
            ),
            Err(e) => println!("{what}: FAILED {e}"),
        }
    }

    let text = rs.to_nft_script();
    let path = std::env::temp_dir().join(format!("gf-bench-{}.nft", std::process::id()));
    if std::fs::write(&path, &text).is_err() {
        println!("cannot write {}", path.display());
        return;
    }
    if let Err(e) = nft.delete_table() {
        println!("delete failed: {e}");
    }
    for run in 1..=2 {
        let t = Instant::now();
        let o = Command::new("nft").arg("-f").arg(&path).output();
        let took = ms(t);
        match o {
            Ok(o) if o.status.success() => {
                let ok = nft.verify(&rs).map(|v| v.ok()).unwrap_or(false);
                println!(
                    "nft -f ({} run {run}, {:.2} MB text): {took:.1} ms; same kernel state as intent={ok}",
                    if run == 1 { "into empty netns" } else { "replace" },
                    text.len() as f64 / 1e6
                );
            }
            Ok(o) => println!(
                "nft -f failed: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .next()
                    .unwrap_or("")
            ),
            Err(e) => println!("nft -f not runnable: {e}"),
        }
    }
    let _ = std::fs::remove_file(&path);
}

fn inner() {
    let path = mmdb();
    let t = Instant::now();
    let db = match GeoDb::open(&[&path]) {
        Ok(db) => db,
        Err(e) => {
            println!("skipping: {path}: {e}");
            return;
        }
    };
    println!("open mmdb: {:.1} ms", ms(t));
    let codes: Vec<CountryCode> = ["CN", "HK", "MO", "RU"]
        .iter()
        .filter_map(|c| c.parse().ok())
        .collect();
    let t = Instant::now();
    let four = db.ranges_for_countries(&codes, GeoField::Location);
    println!("ranges_for_countries(CN,HK,MO,RU): {:.1} ms", ms(t));
    let t = Instant::now();
    let all = db.ranges_by_country(GeoField::Location);
    println!(
        "ranges_by_country (all {} countries): {:.1} ms",
        all.len(),
        ms(t)
    );

    let mut nft = match Nft::new() {
        Ok(n) => n,
        Err(e) => {
            println!("skipping: {e}");
            return;
        }
    };
    case(
        &mut nft,
        "CN+HK+MO+RU, one rule",
        &spec(vec![("CN HK MO RU".into(), four)]),
    );
    let union = all.values().fold(IpRanges::new(), |acc, r| acc.union(r));
    case(
        &mut nft,
        "every country, one rule (union)",
        &spec(vec![("all".into(), union)]),
    );
    let per: Vec<(String, IpRanges)> = all
        .iter()
        .map(|(c, r)| (c.to_string(), r.clone()))
        .collect();
    case(&mut nft, "every country, one rule per country", &spec(per));
    let _ = nft.delete_table();
}

fn main() {
    if std::env::args().any(|a| a == "--inner") {
        inner();
        return;
    }
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if uid.as_deref().ok() != Some("0") {
        println!("skipping: the nft bulk-load bench needs root (network namespace)");
        return;
    }
    let ns = format!("gfbench{}", std::process::id());
    if !Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
    {
        println!("skipping: cannot create a network namespace");
        return;
    }
    struct Guard(String);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _g = Guard(ns.clone());
    let me = std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let _ = Command::new("ip")
        .args(["netns", "exec", &ns, &me, "--inner"])
        .status();
}
