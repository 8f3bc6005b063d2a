//! `geofencectl`: the admin CLI of Geofence.
//!
//! * `check`: validate a policy file (exit 0, or 78 with `FILE:LINE:COL`).
//! * `replay`: run the daemon's decode, classify, geo and policy code over
//!   capture files and print one record per flow.
//! * `explain`: say what the policy decides for an address, and why.
//! * `apps`: list the app signatures in force.
//! * `status`, `flush`: show or remove the kernel table.
//! * `reload`: ask the running daemon to reload and wait for the result.
//! * `unblock ADDRESS [--client C]`: ask the running daemon to remove a
//!   dynamic block.
//! * `check-db`: open a geo database with the daemon's own verified loader.
//! * `tail`: the alert log rendered for a person, optionally followed.
//! * `generate`: man pages and shell completions from these definitions
//!   (hidden; the package build runs it).

#![forbid(unsafe_code)]

mod ctl;
mod explain;
mod generate;
mod replay;
mod status;
mod tail;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// sysexits.h EX_CONFIG: configuration error.
const EX_CONFIG: u8 = 78;
/// sysexits.h EX_DATAERR: bad input data (capture, database).
const EX_DATAERR: u8 = 65;

const DEFAULT_CONFIG: &str = "/etc/geofence/geofence.toml";

#[derive(Parser)]
#[command(
    name = "geofencectl",
    after_help = "Policy reference: docs/policy.md (/usr/share/doc/geofence). Exit codes: 0 ok, 1 error, 65 bad data (capture, database), 78 invalid policy.",
    version,
    about = "Geofence admin CLI: check policies, replay captures, explain decisions"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate a policy file and its signature files; exit 78 on error.
    /// The file is given as `check FILE` or `check --config FILE`.
    Check {
        /// Policy file (default /etc/geofence/geofence.toml).
        #[arg(value_name = "FILE", conflicts_with = "config")]
        file: Option<PathBuf>,
        /// Policy file, as the other subcommands take it.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Also open the configured geo databases and report their age.
        #[arg(long)]
        databases: bool,
        /// One JSON object on stdout instead of text (errors included).
        #[arg(long)]
        json: bool,
    },
    /// Run the offline pipeline (decode, classify, geo, policy) over pcap/pcapng files.
    Replay(replay::Args),
    /// Explain what the policy decides for an address and why.
    Explain(explain::Args),
    /// List the app signatures in force (built-in, signature dirs, policy).
    Apps {
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// A JSON array on stdout instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show the kernel table: per-rule counters and live dynamic blocks (root).
    Status(status::Args),
    /// Remove the kernel table: stops ALL enforcement until geofenced applies it again (root).
    Flush {
        /// Required: flushing opens the gateway.
        #[arg(long)]
        yes: bool,
    },
    /// Ask the running daemon to reload its policy, signatures and databases,
    /// and wait for the result: exit 0 when applied, 1 with the error when
    /// refused (the running policy then stays in force).
    Reload(ctl::ReloadArgs),
    /// Remove a dynamic block (kernel and the daemon's saved state) and
    /// record who did it in the alert log. The policy blocks again on the
    /// next detection; add an `except` entry for a lasting exception.
    Unblock(ctl::UnblockArgs),
    /// What DNS does now that geofenced is down (the unit's ExecStopPost runs
    /// it, also after a crash or SIGKILL): with `[dns_gate] on_failure =
    /// "open"` the DNS redirect is removed so clients reach their resolvers
    /// directly; with "closed" it stays and nothing resolves (root).
    DnsGateDown {
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Open a geo database (.mmdb) with the daemon's own verified loader:
    /// exit 0 if the daemon would accept it, 65 with the reason if not.
    CheckDb {
        /// The database file.
        file: PathBuf,
    },
    /// Show the alert log for a person: one line per alert, newest last,
    /// coloured on a terminal; `-f` follows it (also across logrotate).
    Tail(tail::Args),
    /// Write man pages or shell completions generated from these
    /// definitions into DIR (used by the package build).
    #[command(hide = true)]
    Generate(generate::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("geofencectl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Check {
            file,
            config,
            databases,
            json,
        } => {
            let path = file
                .or(config)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
            check(&path, databases, json)
        }
        Cmd::Replay(a) => replay::run(a),
        Cmd::Explain(a) => explain::run(a),
        Cmd::Apps { config, json } => apps(&config, json),
        Cmd::Status(a) => status::run(&a),
        Cmd::Flush { yes } => flush(yes),
        Cmd::Reload(a) => ctl::reload(&a),
        Cmd::Unblock(a) => ctl::unblock(&a),
        Cmd::CheckDb { file } => Ok(ctl::check_db(&file)),
        Cmd::DnsGateDown { config } => dns_gate_down(&config),
        Cmd::Tail(a) => tail::run(&a),
        Cmd::Generate(a) => generate::run(&a),
    }
}

fn dns_gate_down(config: &std::path::Path) -> anyhow::Result<ExitCode> {
    use geofence_nft::model::{DNS_GATE_CHAIN, DNS_GATE_FORWARD_CHAIN};
    use geofence_policy::GateFailure;
    // Without a readable policy nothing is known about the intent: leave
    // the kernel as it is (fail closed).
    let c = match geofence_policy::load_file(config) {
        Ok(c) => c,
        Err(e) => {
            println!("policy unreadable ({e}); the DNS redirect, if any, stays (fail closed)");
            return Ok(ExitCode::from(EX_CONFIG));
        }
    };
    let g = &c.dns_gate;
    if !g.enabled {
        println!("DNS gate is off: nothing to do");
        return Ok(ExitCode::SUCCESS);
    }
    match g.on_failure {
        GateFailure::Closed => {
            println!("DNS gate fails closed: the DNS redirect stays in the kernel, so clients resolve nothing until geofenced is back; blocks in the kernel keep holding");
        }
        GateFailure::Open => {
            let mut nft = geofence_nft::apply::Nft::with_table(geofence_runtime::plan::TABLE)?;
            let removed = nft.remove_chains(&[DNS_GATE_CHAIN, DNS_GATE_FORWARD_CHAIN])?;
            println!(
                "DNS gate fails open: removed {} (clients reach their resolvers directly; DNS answers are no longer held; blocks in the kernel keep holding)",
                if removed.is_empty() { "nothing, the redirect was not installed".to_string() } else { format!("chain(s) {}", removed.join(", ")) }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn flush(yes: bool) -> anyhow::Result<ExitCode> {
    if !yes {
        eprintln!(
            "geofencectl flush removes table inet {} and with it every block; pass --yes to do it",
            geofence_runtime::plan::TABLE
        );
        return Ok(ExitCode::from(2));
    }
    let mut nft = geofence_nft::apply::Nft::with_table(geofence_runtime::plan::TABLE)?;
    if nft.table_exists()? {
        nft.delete_table()?;
        println!("removed table inet {}; a running geofenced restores it within seconds (stop it first to keep it off)", geofence_runtime::plan::TABLE);
    } else {
        println!(
            "table inet {} was not installed",
            geofence_runtime::plan::TABLE
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads policy, signatures and databases as the daemon would, with
/// `geoip` replacing the policy's databases when given (`None` = no
/// database at all). On error, prints it and returns the exit code.
fn load_or_exit(
    config: &std::path::Path,
    geoip: Option<&[PathBuf]>,
) -> Result<geofence_runtime::Loaded, ExitCode> {
    let choice = match geoip {
        None => geofence_runtime::GeoChoice::None,
        Some([]) => geofence_runtime::GeoChoice::FromConfig,
        Some(p) => geofence_runtime::GeoChoice::Paths(p.to_vec()),
    };
    geofence_runtime::load(config, &choice).map_err(|e| {
        eprintln!("{e}");
        match e {
            geofence_runtime::LoadError::Config(_) => ExitCode::from(EX_CONFIG),
            _ => {
                eprintln!("hint: pass --geoip FILE.mmdb to use another database");
                ExitCode::from(EX_DATAERR)
            }
        }
    })
}

fn check(path: &std::path::Path, databases: bool, json: bool) -> anyhow::Result<ExitCode> {
    use serde_json::json;
    let file = path.display().to_string();
    let fail = |code: u8, e: &geofence_runtime::LoadError| {
        if json {
            let mut v = json!({"file": file, "valid": false, "error": e.to_string()});
            match e {
                geofence_runtime::LoadError::Config(c) if c.line > 0 => {
                    v["position"] = json!({"file": c.file, "line": c.line, "col": c.col});
                    v["error"] = json!(c.message);
                }
                _ => {}
            }
            println!("{v}");
        } else {
            eprintln!("{e}");
        }
        Ok(ExitCode::from(code))
    };
    let (config, policy, sigs) = match geofence_runtime::load_config(path) {
        Ok(x) => x,
        Err(e) => return fail(EX_CONFIG, &e),
    };
    let mut out = json!({
        "file": file,
        "valid": true,
        "jurisdictions": policy.jurisdictions().len(),
        "rules": policy.rules().len(),
        "default": policy.default_action().as_str(),
        "apps": sigs.apps().len(),
    });
    if !json {
        println!(
            "{}: valid: {} jurisdiction(s), {} rule(s), default {}, {} app signature(s)",
            path.display(),
            policy.jurisdictions().len(),
            policy.rules().len(),
            policy.default_action().as_str(),
            sigs.apps().len()
        );
    }
    if databases {
        let db = match geofence_geo::GeoDb::open(&config.geoip.databases) {
            Ok(db) => db,
            Err(e) => return fail(EX_DATAERR, &geofence_runtime::LoadError::Geo(e)),
        };
        let now = std::time::SystemTime::now();
        let max = config.geoip.max_age_days;
        let stale: Vec<String> = db.stale(max, now).iter().map(|m| m.name.clone()).collect();
        let mut list = Vec::new();
        for m in db.databases() {
            let is_stale = stale.contains(&m.name);
            list.push(json!({
                "name": m.name,
                "type": m.database_type,
                "age_days": m.age_days(now),
                "stale": is_stale,
            }));
            if !json {
                println!(
                    "  {}: {} built {} days ago",
                    m.name,
                    m.database_type,
                    m.age_days(now)
                );
                if is_stale {
                    println!("  warning: {} is older than max_age_days = {max}", m.name);
                }
            }
        }
        out["databases"] = json!(list);
        out["max_age_days"] = json!(max);
    }
    if json {
        println!("{out}");
    }
    Ok(ExitCode::SUCCESS)
}

fn apps(path: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let (_, policy, sigs) = match geofence_runtime::load_config(path) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(EX_CONFIG));
        }
    };
    let mut list = Vec::new();
    for a in sigs.apps() {
        let group = if policy.app_is_conferencing(&a.id) {
            "conferencing"
        } else {
            "other"
        };
        if json {
            list.push(serde_json::json!({"id": a.id.as_str(), "group": group, "name": a.name}));
        } else {
            println!("{:<16} {:<13} {}", a.id, group, a.name);
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(list));
    }
    Ok(ExitCode::SUCCESS)
}
