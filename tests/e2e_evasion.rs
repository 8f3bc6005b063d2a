//! Evasion of inspection on a real kernel (issue 7, finding 4): a client
//! that writes its ClientHello one byte per TCP segment (TCP_NODELAY, no
//! privileges) pushes the server name past the packets the kernel hands
//! the daemon. The handshake is undecidable; `[inspection] undecidable`
//! (default `block`) cuts it where an app rule blocks the destination, and
//! leaves it alone elsewhere.
//!
//! Topology and daemon as in e2e_daemon.rs: client -> gateway (geofenced,
//! NFLOG) -> servers; 203.0.113.10 is in CN (no conferencing), .20 in DE.
//! Needs root; skips with a message otherwise.

use std::time::{Duration, Instant};

use geofence_testkit::mmdb::geoip2_country;
use geofence_testkit::netns::{require_root, Topology};
use geofence_tests::{run_tool, spawn_tool, workspace_bin, Reaped};

const PROBE: &str = env!("CARGO_BIN_EXE_gf-e2e-probe");

fn probe(t: &Topology, ns: &str, args: &[&str]) -> (i32, String) {
    run_tool(t, PROBE, ns, args)
}

fn spawn(t: &Topology, ns: &str, args: &[&str]) -> Reaped {
    spawn_tool(t, PROBE, ns, args)
}

fn wait_for(path: &std::path::Path, needle: &str) -> String {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let s = std::fs::read_to_string(path).unwrap_or_default();
        if s.contains(needle) || Instant::now() > end {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_client_hello_one_byte_per_segment_is_cut_where_conferencing_is_blocked() {
    if !require_root() {
        return;
    }
    let t = Topology::new("gfv").expect("namespaces");
    let dir = std::env::temp_dir().join(format!("gf-e2e-{}", t.gw));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    geoip2_country(&[
        ("203.0.113.8/29", "CN", None),
        ("203.0.113.20/32", "DE", None),
    ])
    .write(&dir.join("geo.mmdb"))
    .expect("mmdb");
    let d = dir.display();
    let config = dir.join("geofence.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[daemon]
mode = "gateway"
capture = "nflog"
nflog_group = 19
alert_log = "{d}/alerts.jsonl"
state_dir = "{d}/state"

[geoip]
databases = ["{d}/geo.mmdb"]

[signatures]
dirs = []

[jurisdictions]
prc = ["CN"]

[[rule]]
name = "no-conferencing-to-prc"
apps = ["conferencing"]
to = ["prc"]
action = "block"
verdict = "reject"
"#
        ),
    )
    .expect("config");
    let srv = t.srv.clone();
    let cli = t.client.clone();
    let _servers: Vec<Reaped> = ["203.0.113.10:443", "203.0.113.20:443"]
        .iter()
        .map(|a| spawn(&t, &srv, &["tcp-server", a, "60"]))
        .collect();
    let bin = workspace_bin("geofenced");
    assert!(bin.exists(), "geofenced not built at {}", bin.display());
    let _daemon = Reaped::new(
        std::process::Command::new("ip")
            .args(["netns", "exec", &t.gw])
            .arg(&bin)
            .arg("--config")
            .arg(&config)
            .args(["--log-format", "text"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("daemon.log")).expect("log"))
            .spawn()
            .expect("start geofenced"),
    );
    let alerts = dir.join("alerts.jsonl");
    let started = wait_for(&alerts, "geofenced started");
    assert!(
        started.contains("geofenced started"),
        "daemon did not start"
    );

    // Allowed jurisdiction: the byte-wise hello completes its exchange.
    let (code, out) = probe(
        &t,
        &cli,
        &["tls-client", "203.0.113.20:443", "zoom.us", "3", "bytewise"],
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "ok 3"),
        "byte-wise zoom to DE must pass"
    );
    // Blocked jurisdiction: cut, although the SNI never reached the daemon.
    let (code, out) = probe(
        &t,
        &cli,
        &["tls-client", "203.0.113.10:443", "zoom.us", "3", "bytewise"],
    );
    assert_eq!(code, 3, "byte-wise zoom TLS to CN must be cut: {out}");
    assert!(out.starts_with("cut 0"), "cut before any exchange: {out}");
    let a = wait_for(&alerts, "undecidable");
    assert!(
        a.lines().any(|l| l.contains("undecidable")
            && l.contains("203.0.113.10")
            && l.contains("block")),
        "an undecidable-handshake block alert:\n{a}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
