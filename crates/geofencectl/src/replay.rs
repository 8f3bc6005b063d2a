//! `geofencectl replay`: the offline pipeline over capture files.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Policy file.
    #[arg(long, short, default_value = crate::DEFAULT_CONFIG)]
    config: PathBuf,
    /// Print one JSON object per flow (JSON lines) instead of a table.
    #[arg(long)]
    json: bool,
    /// Geo database(s) to use instead of the policy's [geoip] databases.
    #[arg(long = "geoip", value_name = "MMDB")]
    geoip: Vec<PathBuf>,
    /// Use no geo database (every country unknown).
    #[arg(long, conflicts_with = "geoip")]
    no_geoip: bool,
    /// Print pipeline counters to stderr at the end.
    #[arg(long)]
    stats: bool,
    /// pcap or pcapng files.
    #[arg(required = true, value_name = "CAPTURE")]
    captures: Vec<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let geoip = (!a.no_geoip).then_some(a.geoip.as_slice());
    let loaded = match crate::load_or_exit(&a.config, geoip) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if !a.json {
        writeln!(
            out,
            "{:<5} {:<40} {:<40} {:<15} {:<9} {:<4} {:<5} {:<14} {:<6} {:<8} {:>6} {:>9}  host",
            "proto",
            "client",
            "server",
            "app",
            "method",
            "cc",
            "rcc",
            "jurisdiction",
            "action",
            "kernel",
            "pkts",
            "bytes"
        )?;
    }
    let mut failed = false;
    for path in &a.captures {
        let (reports, stats) = match geofence_runtime::replay_file(&loaded, path) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("geofencectl: {e}");
                failed = true;
                continue;
            }
        };
        if a.stats {
            eprintln!("{}: {}", path.display(), serde_json::to_string(&stats)?);
        }
        for flow in &reports {
            if a.json {
                serde_json::to_writer(&mut out, flow).context("writing JSON")?;
                out.write_all(b"\n")?;
            } else {
                let r = &flow.report;
                let client = format!("{}", std::net::SocketAddr::new(r.src_ip, r.src_port));
                let server = format!("{}", std::net::SocketAddr::new(r.dest_ip, r.dest_port));
                writeln!(
                    out,
                    "{:<5} {:<40} {:<40} {:<15} {:<9} {:<4} {:<5} {:<14} {:<6} {:<8} {:>6} {:>9}  {}",
                    r.proto,
                    client,
                    server,
                    r.app.as_ref().map(|a| a.as_str()).unwrap_or("-"),
                    r.method.map(|m| m.as_str()).unwrap_or("-"),
                    r.country.as_deref().unwrap_or("-"),
                    r.registered_country.as_deref().unwrap_or("-"),
                    r.jurisdiction.as_deref().unwrap_or("-"),
                    r.action.as_str(),
                    flow.kernel.as_str(),
                    r.packets,
                    r.bytes,
                    r.host.as_deref().unwrap_or("")
                )?;
            }
        }
    }
    out.flush()?;
    Ok(if failed {
        ExitCode::from(crate::EX_DATAERR)
    } else {
        ExitCode::SUCCESS
    })
}
