//! Live equals explain on a real gateway (issue 8), on a real kernel: the
//! daemon in a gateway namespace decides what `geofencectl explain` and
//! `replay` say, in three cases that a gateway meets every day:
//!
//! * a resolver on the gateway itself answers the client (its answers leave
//!   through `output`, its queries arrive through `input`): a client that
//!   connects 50 ms after each answer never reaches a blocked server;
//! * an app known by a vendor range that only counts on its ports (UDP
//!   9000) is blocked within the packets the kernel hands over;
//! * an `allow` rule scoped by `from` ahead of a block rule lets that source
//!   through while every other source is blocked.
//!
//! Needs root; skips with a message otherwise.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use geofence_testkit::mmdb::geoip2_country;
use geofence_testkit::netns::{require_root, Topology};
use geofence_tests::{run_tool, spawn_tool, start_daemon, workspace_bin, Reaped};

const PROBE: &str = env!("CARGO_BIN_EXE_gf-e2e-probe");

struct Env {
    t: Topology,
    dir: PathBuf,
}

impl Env {
    fn probe(&self, ns: &str, args: &[&str]) -> (i32, String) {
        run_tool(&self.t, PROBE, ns, args)
    }

    fn spawn(&self, ns: &str, args: &[&str]) -> Reaped {
        spawn_tool(&self.t, PROBE, ns, args)
    }

    fn alerts(&self) -> String {
        std::fs::read_to_string(self.dir.join("alerts.jsonl")).unwrap_or_default()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    fn received(&self, server: Reaped) -> u64 {
        let got = server.output();
        got.trim()
            .trim_start_matches("received ")
            .parse()
            .unwrap_or(u64::MAX)
    }
}

const POLICY: &str = r#"
[daemon]
mode = "gateway"
enforce = true
capture = "nflog"
nflog_group = 19
alert_log = "DIR/alerts.jsonl"
state_dir = "DIR/state"

[geoip]
databases = ["DIR/geo.mmdb"]

[signatures]
dirs = []

[jurisdictions]
prc = ["CN"]
russia = ["RU"]

[[app]]
id = "rangeapp"
name = "Range app"
category = "conferencing"
cidrs = ["203.0.113.12/32"]
ports = [{ proto = "udp", ports = "9000" }]
ranges_need_ports = true

[[rule]]
name = "no-conferencing-to-prc"
apps = ["conferencing"]
to = ["prc"]
action = "block"
verdict = "reject"

[[rule]]
name = "lab-may-reach-russia"
from = ["198.51.100.3/32"]
to = ["russia"]
action = "allow"

[[rule]]
name = "nothing-to-russia"
to = ["russia"]
action = "block"
verdict = "drop"

[default]
action = "allow"
"#;

fn setup() -> Option<(Env, Reaped)> {
    if !require_root() {
        return None;
    }
    let t = Topology::new("gfg").expect("namespaces");
    for a in [
        "203.0.113.11/24",
        "203.0.113.12/24",
        "203.0.113.13/24",
        "203.0.113.30/24",
    ] {
        t.ok(&t.srv, &["ip", "addr", "add", a, "dev", "s0"])
            .expect("addr");
    }
    // A second client address, the lab.
    t.ok(
        &t.client,
        &["ip", "addr", "add", "198.51.100.3/24", "dev", "c0"],
    )
    .expect("lab addr");
    let dir = std::env::temp_dir().join(format!("gf-e2e-{}", t.gw));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    geoip2_country(&[
        ("203.0.113.8/29", "CN", None),
        ("203.0.113.30/32", "RU", None),
    ])
    .write(&dir.join("geo.mmdb"))
    .expect("mmdb");
    let config = dir.join("geofence.toml");
    std::fs::write(&config, POLICY.replace("DIR", &dir.to_string_lossy())).expect("config");
    let daemon = start_daemon(&t, &config, &dir.join("daemon.log"));
    let env = Env { t, dir };
    let end = Instant::now() + Duration::from_secs(30);
    while !env.log().contains("nftables table applied and verified") {
        assert!(Instant::now() < end, "daemon did not start:\n{}", env.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((env, daemon))
}

#[test]
fn live_gateway_decides_what_explain_says() {
    let Some((env, daemon)) = setup() else {
        return;
    };
    let (cli, gw, srv) = (env.t.client.clone(), env.t.gw.clone(), env.t.srv.clone());
    let _servers: Vec<Reaped> = ["203.0.113.11:443", "203.0.113.13:443"]
        .iter()
        .map(|a| env.spawn(&srv, &["tcp-server", a, "60"]))
        .collect();

    // 1. A resolver on the gateway itself.
    let _resolver = env.spawn(
        &gw,
        &[
            "dns-server",
            "198.51.100.1:53",
            "60",
            "a.zoom.us=203.0.113.11",
            "b.zoom.us=203.0.113.13",
            "c.zoom.us=203.0.113.11",
            "d.zoom.us=203.0.113.13",
            "e.zoom.us=203.0.113.11",
        ],
    );
    for name in ["a", "b", "c", "d", "e"] {
        let host = format!("{name}.zoom.us");
        let (_, addr) = env.probe(&cli, &["dns-query", "198.51.100.1:53", &host, "a"]);
        assert!(addr.starts_with("203.0.113.1"), "{host} resolved: {addr:?}");
        std::thread::sleep(Duration::from_millis(50));
        let (code, out) = env.probe(&cli, &["tls-client", &format!("{addr}:443"), &host, "3"]);
        assert_eq!(
            code,
            2,
            "{host} -> {addr}: the SYN must be refused after the gateway resolver's answer: {out}\nalerts:\n{}\nlog:\n{}",
            env.alerts(),
            env.log()
        );
    }

    // 2. A vendor range that only counts on its port: decided within the
    // seven packets the kernel hands over, the rest never arrives.
    let media = env.spawn(&srv, &["udp-server", "203.0.113.12:9000", "4"]);
    let (_, sent) = env.probe(
        &cli,
        &["udp-send", "203.0.113.12:9000", "30", "20", "plain"],
    );
    assert_eq!(sent, "sent 30");
    let n = env.received(media);
    assert!(
        (1..=8).contains(&n),
        "range+port to CN: only the packets before the decision may pass, got {n}\nalerts:\n{}",
        env.alerts()
    );
    assert!(
        env.alerts().contains("\"app\":\"rangeapp\""),
        "{}",
        env.alerts()
    );

    // 3. The lab may reach Russia; the other client may not (static sets).
    let lab = env.spawn(&srv, &["udp-server", "203.0.113.30:7000", "3"]);
    let (_, sent) = env.probe(
        &cli,
        &[
            "udp-send",
            "203.0.113.30:7000",
            "10",
            "20",
            "plain",
            "198.51.100.3",
        ],
    );
    assert_eq!(sent, "sent 10");
    assert_eq!(
        env.received(lab),
        10,
        "the from-scoped exception lets the lab through"
    );
    let other = env.spawn(&srv, &["udp-server", "203.0.113.30:7000", "3"]);
    let (_, sent) = env.probe(
        &cli,
        &[
            "udp-send",
            "203.0.113.30:7000",
            "10",
            "20",
            "plain",
            "198.51.100.2",
        ],
    );
    assert_eq!(sent, "sent 10");
    assert_eq!(env.received(other), 0, "every other source is dropped");

    // What explain says about the same two sources.
    let ctl = workspace_bin("geofencectl");
    let cfg = env.dir.join("geofence.toml");
    for (src, want) in [("198.51.100.3", "allow"), ("198.51.100.2", "block")] {
        let o = std::process::Command::new(&ctl)
            .arg("explain")
            .arg("--config")
            .arg(&cfg)
            .args(["--from", src, "203.0.113.30"])
            .output()
            .expect("explain runs");
        let text = String::from_utf8_lossy(&o.stdout).to_lowercase();
        assert!(text.contains(want), "explain from {src}: {text}");
    }
    // Someone deletes one of our rules (not the table): the ruleset
    // generation moves, the next check reads the table back, restores it
    // and says so.
    let listing = env
        .t
        .stdout(
            &gw,
            &["nft", "-a", "list", "chain", "inet", "geofence", "forward"],
        )
        .expect("list");
    let handle = listing
        .lines()
        .find(|l| l.contains("nothing-to-russia") && l.contains("# handle"))
        .and_then(|l| l.rsplit("# handle ").next())
        .map(|h| h.trim().to_string())
        .expect("a rule of ours with a handle");
    env.t
        .ok(
            &gw,
            &[
                "nft", "delete", "rule", "inet", "geofence", "forward", "handle", &handle,
            ],
        )
        .expect("delete rule");
    let end = Instant::now() + Duration::from_secs(10);
    while !env.alerts().contains("\"tamper\"") {
        assert!(Instant::now() < end, "no tamper alert:\n{}", env.alerts());
        std::thread::sleep(Duration::from_millis(100));
    }
    let other = env.spawn(&srv, &["udp-server", "203.0.113.30:7001", "2"]);
    let (_, sent) = env.probe(
        &cli,
        &[
            "udp-send",
            "203.0.113.30:7001",
            "5",
            "20",
            "plain",
            "198.51.100.2",
        ],
    );
    assert_eq!(sent, "sent 5");
    assert_eq!(env.received(other), 0, "the restored rule drops again");
    drop(daemon);
    std::fs::remove_dir_all(&env.dir).ok();
}
