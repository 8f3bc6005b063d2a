//! `gf-nft-apply`: command-line driver of the enforcement stage, used by the
//! namespace tests and the docs (run inside a namespace with
//! `ip netns exec NS gf-nft-apply ...`). Not installed with the daemon.
//!
//! ```text
//! gf-nft-apply render SPEC.json                 print the `nft -f` script
//! gf-nft-apply apply SPEC.json                  atomic in-place update (dynamic elements kept); prints the report
//! gf-nft-apply apply-n SPEC_A SPEC_B N [replace] N alternating applies (in place, or full replace)
//! gf-nft-apply verify SPEC.json                 exit 0 if the kernel matches the spec
//! gf-nft-apply add-dyn RULE SRC|- DST MS        add (or refresh) one dynamic element
//! gf-nft-apply add-dyn-each RULE,SRC|-,DST,MS... add many in one batch; a refused element
//!                                               does not keep the others out; prints
//!                                               `failed I REASON` per refused element
//! gf-nft-apply del-dyn-each RULE,SRC|-,DST...   remove many, same tolerance
//! gf-nft-apply fill-dyn RULE                    add the 65,536 pairs 198.51.100.0/24 x
//!                                               203.0.113.0/24 to rule RULE's pair set
//! gf-nft-apply list-dyn                         print dynamic elements
//! gf-nft-apply generation                       print the kernel's ruleset generation
//! gf-nft-apply counters                         print per-rule counters
//! gf-nft-apply delete                           delete the table
//! gf-nft-apply kill-ct SRC|- DST                delete conntrack entries SRC (or any) -> DST
//! gf-nft-apply acct                             set net.netfilter.nf_conntrack_acct=1
//! ```
//! SPEC.json: `{"table": "geofence", "hook": "forward", "priority": -5,
//! "enforce": true, "nflog": null, "rules": [{"index": 0, "name": "...",
//! "verdict": "reject", "src": null, "static_dst": ["203.0.113.10/32"],
//! "static_ports": [], "dynamic": true}]}`

use geofence_geo::IpRanges;
use geofence_nft::{
    render, DynElement, Hook, NflogSpec, Nft, RuleSpec, RulesetSpec, Transport, Verdict,
};
use serde::Deserialize;
use std::time::{Duration, Instant};

#[derive(Deserialize)]
struct SpecFile {
    table: String,
    hook: Hook,
    priority: i32,
    enforce: bool,
    nflog: Option<NflogSpec>,
    rules: Vec<RuleFile>,
}

#[derive(Deserialize)]
struct RuleFile {
    index: usize,
    name: String,
    verdict: Verdict,
    src: Option<Vec<String>>,
    static_dst: Option<Vec<String>>,
    #[serde(default)]
    static_ports: Vec<(Transport, u16, u16)>,
    #[serde(default)]
    dynamic: bool,
}

fn ranges(v: &Option<Vec<String>>) -> Result<Option<IpRanges>, String> {
    v.as_ref()
        .map(|c| IpRanges::from_cidrs(c).map_err(|e| e.to_string()))
        .transpose()
}

fn load(path: &str) -> Result<RulesetSpec, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let f: SpecFile = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let mut rules = Vec::new();
    for r in f.rules {
        rules.push(RuleSpec {
            index: r.index,
            name: r.name,
            verdict: r.verdict,
            src: ranges(&r.src)?,
            static_dst: ranges(&r.static_dst)?,
            static_ports: r.static_ports,
            dynamic: r.dynamic,
        });
    }
    Ok(RulesetSpec {
        table: f.table,
        hook: f.hook,
        priority: f.priority,
        enforce: f.enforce,
        dns_redirect: None,
        nflog: f.nflog,
        rules,
    })
}

fn arg(a: &[String], i: usize) -> Result<&str, String> {
    a.get(i)
        .map(String::as_str)
        .ok_or_else(|| format!("missing argument {i}"))
}

fn run(a: &[String]) -> Result<i32, String> {
    let e = |x: geofence_nft::NftError| x.to_string();
    match arg(a, 1)? {
        "render" => {
            print!("{}", render(&load(arg(a, 2)?)?).to_nft_script());
            Ok(0)
        }
        "apply" => {
            let rs = render(&load(arg(a, 2)?)?);
            let mut nft = Nft::with_table(&rs.table).map_err(e)?;
            let rep = nft.reload(&rs).map_err(e)?;
            println!(
                "applied messages={} bytes={} build_ms={:.1} commit_ms={:.1} verify_ms={:.1} kept_dynamic={} ok={}",
                rep.messages,
                rep.batch_bytes,
                rep.build_time.as_secs_f64() * 1e3,
                rep.commit_time.as_secs_f64() * 1e3,
                rep.verify_time.as_secs_f64() * 1e3,
                rep.kept_dynamic,
                rep.verify.ok()
            );
            for p in &rep.verify.problems {
                println!("problem: {p}");
            }
            Ok(if rep.verify.ok() { 0 } else { 4 })
        }
        "apply-n" => {
            let ra = render(&load(arg(a, 2)?)?);
            let rb = render(&load(arg(a, 3)?)?);
            let n: usize = arg(a, 4)?.parse().map_err(|_| "N")?;
            let replace = a.get(5).map(String::as_str) == Some("replace");
            let mut nft = Nft::with_table(&ra.table).map_err(e)?;
            let t = Instant::now();
            for i in 0..n {
                let rs = if i % 2 == 0 { &ra } else { &rb };
                let rep = if replace {
                    nft.replace(rs, &[])
                } else {
                    nft.reload(rs)
                }
                .map_err(e)?;
                if !rep.verify.ok() {
                    println!("apply {i} not verified: {:?}", rep.verify.problems);
                    return Ok(4);
                }
            }
            println!("applied {n} in {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
            Ok(0)
        }
        "apply-bad" => {
            // Test helper: the spec's ruleset plus an element overlapping the
            // first range of the first interval set, which the kernel rejects
            // (EEXIST), so the whole transaction must abort.
            let mut rs = render(&load(arg(a, 2)?)?);
            let set = rs
                .sets
                .iter_mut()
                .find(|s| s.interval && !s.v4.is_empty())
                .ok_or("no v4 interval set")?;
            let (lo, hi) = set.v4.first().copied().ok_or("empty")?;
            set.v4.push((lo, hi));
            let mut nft = Nft::with_table(&rs.table).map_err(e)?;
            match nft.apply(&rs, &[]) {
                Ok(_) => {
                    println!("unexpectedly applied");
                    Ok(0)
                }
                Err(err) => {
                    println!("rejected: {err}");
                    Ok(5)
                }
            }
        }
        "verify" => {
            let rs = render(&load(arg(a, 2)?)?);
            let mut nft = Nft::with_table(&rs.table).map_err(e)?;
            let rep = nft.verify(&rs).map_err(e)?;
            println!(
                "verify ok={} sets={:?} rules={}",
                rep.ok(),
                rep.set_elements,
                rep.rules
            );
            for p in &rep.problems {
                println!("problem: {p}");
            }
            Ok(if rep.ok() { 0 } else { 4 })
        }
        "add-dyn" => {
            let rule: usize = arg(a, 2)?.parse().map_err(|_| "RULE")?;
            let src = match arg(a, 3)? {
                "-" => None,
                s => Some(s.parse().map_err(|_| "SRC")?),
            };
            let dst = arg(a, 4)?.parse().map_err(|_| "DST")?;
            let ms: u64 = arg(a, 5)?.parse().map_err(|_| "MS")?;
            let mut nft = Nft::new().map_err(e)?;
            nft.add_dynamic(&[DynElement {
                rule_index: rule,
                src,
                dst,
                timeout: Duration::from_millis(ms),
            }])
            .map_err(e)?;
            println!("added");
            Ok(0)
        }
        "fill-dyn" => {
            let rule: usize = arg(a, 2)?.parse().map_err(|_| "RULE")?;
            let mut elems = Vec::with_capacity(65_536);
            for s in 0..=255u8 {
                for d in 0..=255u8 {
                    elems.push(DynElement {
                        rule_index: rule,
                        src: Some(std::net::IpAddr::from([198, 51, 100, s])),
                        dst: std::net::IpAddr::from([203, 0, 113, d]),
                        timeout: Duration::from_secs(120),
                    });
                }
            }
            let mut nft = Nft::new().map_err(e)?;
            let failed = nft.add_dynamic_each(&elems);
            println!(
                "filled {} failed {}",
                elems.len() - failed.len(),
                failed.len()
            );
            Ok(0)
        }
        "add-dyn-each" | "del-dyn-each" => {
            let mut elems = Vec::new();
            for spec in a.iter().skip(2) {
                let f: Vec<&str> = spec.split(',').collect();
                let field = |i: usize| f.get(i).copied().ok_or(format!("bad element {spec}"));
                elems.push(DynElement {
                    rule_index: field(0)?.parse().map_err(|_| "RULE")?,
                    src: match field(1)? {
                        "-" => None,
                        s => Some(s.parse().map_err(|_| "SRC")?),
                    },
                    dst: field(2)?.parse().map_err(|_| "DST")?,
                    timeout: Duration::from_millis(
                        field(3).unwrap_or("0").parse().map_err(|_| "MS")?,
                    ),
                });
            }
            let mut nft = Nft::new().map_err(e)?;
            let failed = if a[1] == "add-dyn-each" {
                nft.add_dynamic_each(&elems)
            } else {
                nft.remove_dynamic_each(&elems)
            };
            for (i, why) in &failed {
                println!("failed {i} {why}");
            }
            println!("applied {}", elems.len() - failed.len());
            Ok(0)
        }
        "list-dyn" => {
            let mut nft = Nft::new().map_err(e)?;
            for d in nft.list_dynamic().map_err(e)? {
                let src = d.src.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
                println!(
                    "r{} {} {} {}",
                    d.rule_index,
                    src,
                    d.dst,
                    d.timeout.as_millis()
                );
            }
            Ok(0)
        }
        "generation" => {
            println!("{}", Nft::new().map_err(e)?.generation().map_err(e)?);
            Ok(0)
        }
        "counters" => {
            let mut nft = Nft::new().map_err(e)?;
            for c in nft.counters().map_err(e)? {
                println!("{}\t{}\t{}", c.packets, c.bytes, c.rule);
            }
            Ok(0)
        }
        "delete" => {
            Nft::new().map_err(e)?.delete_table().map_err(e)?;
            println!("deleted");
            Ok(0)
        }
        "kill-ct" => {
            let d = arg(a, 3)?.parse().map_err(|_| "DST")?;
            let n = match arg(a, 2)? {
                "-" => geofence_nft::kill_conntrack_to(d),
                s => geofence_nft::kill_conntrack(s.parse().map_err(|_| "SRC")?, d),
            }
            .map_err(e)?;
            println!("killed {n}");
            Ok(0)
        }
        "acct" => {
            let changed = geofence_nft::ensure_conntrack_acct().map_err(e)?;
            println!(
                "conntrack accounting {}",
                if changed { "enabled" } else { "already on" }
            );
            Ok(0)
        }
        other => Err(format!("unknown command {other}")),
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    match run(&a) {
        Ok(c) => std::process::exit(c),
        Err(err) => {
            println!("error: {err}");
            std::process::exit(1);
        }
    }
}
