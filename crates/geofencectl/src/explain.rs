//! `geofencectl explain`: what the policy decides for one address, and why.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use geofence_classify::sigs::Transport;
use geofence_classify::AppId;
use geofence_policy::{By, Query};

#[derive(clap::Args)]
pub struct Args {
    /// Policy file.
    #[arg(long, short, default_value = crate::DEFAULT_CONFIG)]
    config: PathBuf,
    /// Geo database(s) to use instead of the policy's [geoip] databases.
    #[arg(long = "geoip", value_name = "MMDB")]
    geoip: Vec<PathBuf>,
    /// The destination address (IPv4 or IPv6).
    address: IpAddr,
    /// Server name (SNI or DNS name): the app is looked up from it.
    #[arg(long)]
    host: Option<String>,
    /// App id, e.g. zoom (overrides --host).
    #[arg(long)]
    app: Option<String>,
    /// Destination port: used to recognise the app from vendor ranges and ports.
    #[arg(long)]
    port: Option<u16>,
    /// Transport for --port.
    #[arg(long, default_value = "udp", value_parser = ["udp", "tcp"])]
    proto: String,
    /// Source (client) address, for rules scoped with `from`.
    #[arg(long = "from", default_value = "0.0.0.0")]
    from: IpAddr,
    /// One JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let loaded = match crate::load_or_exit(&a.config, Some(&a.geoip)) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let sigs = &loaded.sigs;
    let transport = if a.proto == "tcp" {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let geo = loaded.geo.lookup(a.address);
    let (app, why): (Option<AppId>, String) = if let Some(id) = &a.app {
        match sigs.find(id) {
            Some(r) => (Some(sigs.app(r).id.clone()), "given with --app".to_string()),
            None => anyhow::bail!("unknown app `{id}` (see `geofencectl apps`)"),
        }
    } else if let Some(h) = &a.host {
        match sigs.match_host(h) {
            Some(r) => (
                Some(sigs.app(r).id.clone()),
                format!("server name {h} is a {} domain", sigs.app(r).name),
            ),
            None => (None, format!("server name {h} matches no app signature")),
        }
    } else if let Some(port) = a.port {
        let by_range = sigs
            .match_ip(a.address, transport, port)
            .map(|(r, _)| (r, "vendor IP range"));
        let by_asn = || {
            let asn = geo.asn?;
            sigs.match_asn(asn, transport, port)
                .map(|r| (r, "vendor ASN"))
        };
        let by_port = || {
            sigs.match_port(transport, port)
                .map(|r| (r, "vendor port (weak hint)"))
        };
        match by_range.or_else(by_asn).or_else(by_port) {
            Some((r, how)) => (
                Some(sigs.app(r).id.clone()),
                format!("{how} on {}/{port}", a.proto),
            ),
            None => (
                None,
                format!(
                    "no app signature for {} port {port} at this address",
                    a.proto
                ),
            ),
        }
    } else {
        match sigs.match_ip(a.address, transport, 0) {
            Some((r, _)) => (Some(sigs.app(r).id.clone()), "vendor IP range".to_string()),
            None => (
                None,
                "no --host, --app or --port given and the address is in no vendor range"
                    .to_string(),
            ),
        }
    };
    let policy = &loaded.policy;
    let ex = policy.explain(&Query {
        src: a.from,
        dst: a.address,
        app: app.as_ref(),
        geo: &geo,
        host: a.host.as_deref(),
    });
    if a.json {
        let v = serde_json::json!({
            "address": a.address.to_string(),
            "scope": format!("{:?}", geo.scope),
            "country": geo.country.map(|c| c.to_string()),
            "registered_country": geo.registered_country.map(|c| c.to_string()),
            "asn": geo.asn,
            "databases": loaded.geo.databases().iter().map(|m| serde_json::json!({"name": m.name, "type": m.database_type})).collect::<Vec<_>>(),
            "jurisdictions_by_location": policy.jurisdictions_of(&geo, By::Location),
            "jurisdictions_by_operator": policy.jurisdictions_of(&geo, By::Operator),
            "app": app.as_ref().map(|a| a.as_str()),
            "app_reason": why,
            "decision": ex,
        });
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("address      {} ({:?})", a.address, geo.scope);
    for m in loaded.geo.databases() {
        println!("database     {} ({})", m.name, m.database_type);
    }
    let show = |j: Vec<&str>| {
        if j.is_empty() {
            "none".to_string()
        } else {
            j.join(", ")
        }
    };
    println!(
        "jurisdictions by location: {}",
        show(policy.jurisdictions_of(&geo, By::Location))
    );
    println!(
        "jurisdictions by operator: {}",
        show(policy.jurisdictions_of(&geo, By::Operator))
    );
    println!(
        "app          {} ({why})",
        app.as_ref().map(|a| a.as_str()).unwrap_or("none")
    );
    println!();
    let text = ex.to_string();
    // The last line ends with a newline like every other line.
    if text.ends_with('\n') {
        print!("{text}");
    } else {
        println!("{text}");
    }
    if a.from.is_unspecified() && policy.rules().iter().any(|r| !r.applies_to_source(a.from)) {
        println!("note: some rules are scoped with `from`; pass --from CLIENT to evaluate them for a client");
    }
    Ok(ExitCode::SUCCESS)
}
