//! Unenforced window after another tool's `flush ruleset`, on a real kernel.
//!
//! ```text
//! cargo bench -p geofenced --bench flush_window                 # 10 flushes
//! cargo bench -p geofenced --bench flush_window -- --flushes 20 --pps 4000
//! ```
//!
//! Builds namespaces (client -> gateway -> server, `geofence_testkit::netns`,
//! whose gateway holds the admin's `table inet filter`), writes a database
//! with 203.0.113.30 in RU and a policy that drops everything to RU, starts
//! the release daemon in the gateway and waits for "geofenced started".
//! Then a sender in the client namespace (this executable re-run under `ip
//! netns exec`) sends UDP datagrams to 203.0.113.30 at a fixed rate while
//! this process, every 1.5 s, runs in the gateway what `systemctl restart
//! nftables` runs with Debian's stock /etc/nftables.conf: one `nft -f` of
//! `flush ruleset` plus the admin's table. A counter in the server
//! namespace's prerouting hook counts the datagrams that arrive.
//!
//! Reported: datagrams that passed per flush, the window they imply (passed
//! / rate), and the daemon's tamper alerts (one per flush expected).
//! Needs root, `ip` and `nft`; skips with a message otherwise. Namespaces,
//! processes and the temporary directory are removed on drop.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use geofence_testkit::mmdb::geoip2_country;
use geofence_testkit::netns::{require_root, Topology, ADMIN_TABLE};

const DAEMON: &str = env!("CARGO_BIN_EXE_geofenced");
const TARGET: &str = "203.0.113.30:9000";
const FLUSH_EVERY: Duration = Duration::from_millis(1500);

struct Proc(Option<Child>);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sender mode: `send ADDR PPS SECS`, paced on absolute deadlines.
fn send(addr: &str, pps: u64, secs: u64) -> Result<(), String> {
    let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    let gap = Duration::from_nanos(1_000_000_000 / pps.max(1));
    let start = Instant::now();
    let total = pps * secs;
    let mut sent = 0u64;
    for i in 0..total {
        let due = start + gap * i as u32;
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        if s.send_to(&i.to_be_bytes(), addr).is_ok() {
            sent += 1;
        }
    }
    println!("sent {sent} in {:.3} s", start.elapsed().as_secs_f64());
    Ok(())
}

fn config_text(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"
[daemon]
mode = "gateway"
enforce = true
capture = "nflog"
nflog_group = 23
alert_log = "{d}/alerts.jsonl"
state_dir = "{d}/state"

[geoip]
databases = ["{d}/geo.mmdb"]

[signatures]
dirs = []

[jurisdictions]
russia = ["RU"]

[[rule]]
name = "nothing-to-russia"
to = ["russia"]
action = "block"
verdict = "drop"

[default]
action = "allow"
"#
    )
}

const SERVER_NFT: &str = "table inet gfcount {
    chain pre { type filter hook prerouting priority -300; udp dport 9000 counter drop; }
}";

fn arrived(t: &Topology) -> u64 {
    let out = t
        .stdout(&t.srv, &["nft", "list", "table", "inet", "gfcount"])
        .unwrap_or_default();
    out.split("packets ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("timed out waiting for {what}"))
}

fn run(flushes: u32, pps: u64) -> Result<(), String> {
    let t = Topology::new("gffw").map_err(|e| format!("namespaces: {e}"))?;
    t.ok(
        &t.srv,
        &["ip", "addr", "add", "203.0.113.30/24", "dev", "s0"],
    )
    .map_err(|e| e.to_string())?;
    t.ok(&t.srv, &["nft", SERVER_NFT])
        .map_err(|e| e.to_string())?;
    let dir = TempDir(std::env::temp_dir().join(format!("gf-fw-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).map_err(|e| e.to_string())?;
    geoip2_country(&[("203.0.113.30/32", "RU", None)])
        .write(&dir.0.join("geo.mmdb"))
        .map_err(|e| e.to_string())?;
    let config = dir.0.join("geofence.toml");
    std::fs::write(&config, config_text(&dir.0)).map_err(|e| e.to_string())?;
    let conf = dir.0.join("nftables.conf");
    std::fs::write(&conf, format!("flush ruleset\n{ADMIN_TABLE}\n")).map_err(|e| e.to_string())?;
    let alerts = dir.0.join("alerts.jsonl");
    let read_alerts = || std::fs::read_to_string(&alerts).unwrap_or_default();

    let log = std::fs::File::create(dir.0.join("daemon.log")).map_err(|e| e.to_string())?;
    let _daemon = Proc(Some(
        Command::new("ip")
            .args(["netns", "exec", &t.gw, DAEMON, "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| e.to_string())?,
    ));
    wait_for("geofenced started", 30, || {
        read_alerts().contains("geofenced started")
    })?;

    let secs = u64::from(flushes) * FLUSH_EVERY.as_millis() as u64 / 1000 + 2;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let sender = Command::new("ip")
        .args(["netns", "exec", &t.client])
        .arg(&exe)
        .args(["send", TARGET, &pps.to_string(), &secs.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut sender = Proc(Some(sender));
    std::thread::sleep(Duration::from_millis(500));
    let conf_s = conf.to_string_lossy().to_string();
    let mut per_flush = Vec::new();
    for _ in 0..flushes {
        let before = arrived(&t);
        t.ok(&t.gw, &["nft", "-f", &conf_s])
            .map_err(|e| e.to_string())?;
        std::thread::sleep(FLUSH_EVERY);
        per_flush.push(arrived(&t) - before);
    }
    let out = sender
        .0
        .take()
        .ok_or("sender gone")?
        .wait_with_output()
        .map_err(|e| e.to_string())?;
    let tampers = read_alerts().matches("\"event_type\":\"tamper\"").count();
    let total = arrived(&t);
    let gap_ms = 1000.0 / pps as f64;
    per_flush.sort_unstable();
    let max = per_flush.last().copied().unwrap_or(0);
    let mean = per_flush.iter().sum::<u64>() as f64 / per_flush.len().max(1) as f64;
    println!(
        "sender: {}; {pps} datagrams/s to a dropped address",
        String::from_utf8_lossy(&out.stdout).trim()
    );
    println!(
        "{flushes} flushes: datagrams passed per flush {per_flush:?} (total {total}); \
         window mean {:.1} ms, max {:.1} ms; tamper alerts {tampers}",
        mean * gap_ms,
        max as f64 * gap_ms
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("send") {
        let r = match (args.get(2), args.get(3), args.get(4)) {
            (Some(a), Some(p), Some(s)) => match (p.parse(), s.parse()) {
                (Ok(p), Ok(s)) => send(a, p, s),
                _ => Err("send ADDR PPS SECS".into()),
            },
            _ => Err("send ADDR PPS SECS".into()),
        };
        if let Err(e) = r {
            eprintln!("{e}");
            std::process::exit(1);
        }
        return;
    }
    if !require_root() {
        return;
    }
    let opt = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let flushes = opt("--flushes", 10) as u32;
    let pps = opt("--pps", 2000);
    if let Err(e) = run(flushes, pps) {
        eprintln!("flush_window: {e}");
        std::process::exit(1);
    }
}
