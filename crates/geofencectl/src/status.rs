//! `geofencectl status`: what the kernel enforces now (root), as text or
//! JSON. With a readable policy (`--config`, default the installed one)
//! each dynamic block also names its rule.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// Policy file: names the rules of dynamic blocks (optional; the kernel
    /// table is read either way).
    #[arg(long, short, default_value = crate::DEFAULT_CONFIG)]
    config: PathBuf,
    /// One JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// Dynamic blocks listed in text output (JSON lists all).
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let table = geofence_runtime::plan::TABLE;
    let rule_names: Vec<String> = geofence_policy::load_file(&a.config)
        .map(|c| c.rules.iter().map(|r| r.name.clone()).collect())
        .unwrap_or_default();
    let mut nft = geofence_nft::apply::Nft::with_table(table)?;
    if !nft.table_exists()? {
        if a.json {
            println!("{}", json!({"table": table, "installed": false}));
        } else {
            println!("table inet {table} is not installed: nothing is enforced");
        }
        return Ok(ExitCode::from(3));
    }
    let counters = nft.counters()?;
    let dynamic = nft.list_dynamic()?;
    let name = |i: usize| rule_names.get(i).cloned();
    if a.json {
        let c: Vec<_> = counters
            .iter()
            .map(|c| json!({"rule": c.rule, "packets": c.packets, "bytes": c.bytes}))
            .collect();
        let d: Vec<_> = dynamic
            .iter()
            .map(|d| {
                json!({
                    "rule_index": d.rule_index,
                    "rule": name(d.rule_index),
                    "client": d.src.map(|s| s.to_string()),
                    "destination": d.dst.to_string(),
                    "expires_in_secs": d.timeout.as_secs(),
                })
            })
            .collect();
        println!(
            "{}",
            json!({"table": table, "installed": true, "counters": c, "dynamic": d})
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("table inet {table} installed");
    for c in &counters {
        println!(
            "  {:>10} packets {:>12} bytes  {}",
            c.packets, c.bytes, c.rule
        );
    }
    println!("{} dynamic block(s)", dynamic.len());
    for d in dynamic.iter().take(a.limit) {
        let src = d
            .src
            .map(|s| s.to_string())
            .unwrap_or_else(|| "any client".to_string());
        let rule = match name(d.rule_index) {
            Some(n) => format!("rule #{} {n}", d.rule_index + 1),
            None => format!("rule #{}", d.rule_index + 1),
        };
        println!(
            "  {rule}: {src} -> {} expires in {}s",
            d.dst,
            d.timeout.as_secs()
        );
    }
    if dynamic.len() > a.limit {
        println!(
            "  ... {} more (--limit N, or --json)",
            dynamic.len() - a.limit
        );
    }
    Ok(ExitCode::SUCCESS)
}
