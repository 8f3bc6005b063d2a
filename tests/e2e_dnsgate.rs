//! The DNS gate on a real kernel: a client that connects to every address
//! of an answer the moment it arrives never reaches a blocked server, over
//! more than 1,000 resolutions, while allowed names resolve and connect.
//!
//! ```text
//! client ──DNS to any resolver──► gateway: nat redirect ─► geofenced's gate ──► srv: test resolver 203.0.113.53
//!    └──TCP 443 at once──► gateway forward chain ──► srv: sink on [::]:443 (counts arrivals)
//! ```
//! The server namespace answers on whole test ranges (local routes):
//! c<N>.zoom.us -> 2001:db8:2::1:N / 203.0.113.96/27 (CN in the test
//! database, Zoom to CN is blocked), d<N>.zoom.us -> 2001:db8:2::2:N /
//! 203.0.113.192/27 (DE, allowed). Every blocked resolution names a new
//! server, so each one is a fresh race against the kernel.
//!
//! Needs root; skips with a message otherwise.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use geofence_testkit::mmdb::geoip2_country;
use geofence_testkit::netns::{require_root, Topology};
use geofence_tests::{spawn_tool, start_daemon, workspace_bin, Reaped};

const RACE: &str = env!("CARGO_BIN_EXE_gf-dns-race");

struct Env {
    t: Topology,
    dir: PathBuf,
}

impl Env {
    fn spawn(&self, ns: &str, args: &[&str]) -> Reaped {
        spawn_tool(&self.t, RACE, ns, args)
    }

    fn race(&self, args: &[&str]) -> Counts {
        let mut cmd = vec![RACE, "race"];
        cmd.extend_from_slice(args);
        let o = self.t.exec(&self.t.client, &cmd).expect("race runs");
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            o.status.success(),
            "race failed: {out} {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Counts::parse(&out)
    }

    fn daemon(&self, config: &str) -> Reaped {
        let cfg = self.dir.join("geofence.toml");
        std::fs::write(&cfg, config).expect("config");
        start_daemon(&self.t, &cfg, &self.dir.join("daemon.log"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// Resolves an allowed name until the gate answers (daemon started).
    fn wait_gate(&self, resolver: &str) {
        let end = Instant::now() + Duration::from_secs(30);
        let mut last = Counts::default();
        while Instant::now() < end {
            last = self.race(&[resolver, "d.zoom.us", "4000", "1", "aaaa", "9"]);
            if last.answers == 1 {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "the gate never answered ({last:?})\ndaemon log:\n{}",
            self.log()
        );
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Debug, Default, PartialEq)]
struct Counts {
    answers: u32,
    connected: u32,
    refused: u32,
    timeout: u32,
    failed: u32,
    noanswer: u32,
}

impl Counts {
    fn parse(s: &str) -> Counts {
        let w: Vec<&str> = s.split_whitespace().collect();
        let get = |k: &str| {
            w.iter()
                .position(|x| *x == k)
                .and_then(|i| w.get(i + 1))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {k} in {s:?}"))
        };
        Counts {
            answers: get("answers"),
            connected: get("connected"),
            refused: get("refused"),
            timeout: get("timeout"),
            failed: get("failed"),
            noanswer: get("noanswer"),
        }
    }
}

fn setup(prefix: &str) -> Option<Env> {
    if !require_root() {
        return None;
    }
    let t = Topology::new(prefix).expect("namespaces");
    let (g, s) = (t.gw.clone(), t.srv.clone());
    t.ok(&s, &["ip", "addr", "add", "203.0.113.53/24", "dev", "s0"])
        .expect("resolver addr");
    for r in ["203.0.113.96/27", "203.0.113.192/27"] {
        t.ok(&s, &["ip", "route", "add", "local", r, "dev", "lo"])
            .expect("local route");
        t.ok(&g, &["ip", "route", "add", r, "via", "203.0.113.10"])
            .expect("gw route");
    }
    for r in ["2001:db8:2::1:0/116", "2001:db8:2::2:0/116"] {
        t.ok(&s, &["ip", "-6", "route", "add", "local", r, "dev", "lo"])
            .expect("local route6");
        t.ok(
            &g,
            &["ip", "-6", "route", "add", r, "via", "2001:db8:2::10"],
        )
        .expect("gw route6");
    }
    let dir = std::env::temp_dir().join(format!("gf-dnsgate-{}", t.gw));
    std::fs::create_dir_all(&dir).expect("dir");
    geoip2_country(&[
        ("203.0.113.96/27", "CN", None),
        ("203.0.113.192/27", "DE", None),
        ("2001:db8:2::1:0/116", "CN", None),
        ("2001:db8:2::2:0/116", "DE", None),
    ])
    .write(&dir.join("geo.mmdb"))
    .expect("mmdb");
    Some(Env { t, dir })
}

fn config(dir: &std::path::Path, gate_extra: &str) -> String {
    let d = dir.display();
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

[dns_gate]
enabled = true
listen = ["198.51.100.1:53", "[2001:db8:1::1]:53"]
upstreams = ["203.0.113.53:53"]
{gate_extra}
"#
    )
}

/// Accepted connections per destination, from the sink's output.
fn accepted(out: &str, prefix: &str) -> usize {
    out.lines()
        .filter(|l| {
            l.strip_prefix("accept ")
                .is_some_and(|ip| ip.starts_with(prefix))
        })
        .count()
}

fn accepted_v4_range(out: &str, lo: u8, hi: u8) -> usize {
    out.lines()
        .filter_map(|l| l.strip_prefix("accept 203.0.113."))
        .filter_map(|o| o.trim().parse::<u8>().ok())
        .filter(|o| (lo..=hi).contains(o))
        .count()
}

#[test]
fn no_connection_reaches_a_blocked_server_however_fast_the_client() {
    let Some(env) = setup("gfdg") else { return };
    let srv = env.t.srv.clone();
    let _auth = env.spawn(&srv, &["auth", "203.0.113.53:53"]);
    let sink = env.spawn(&srv, &["sink", "443"]);
    // One client asks as fast as it can: no rate limit in this test.
    let d = env.daemon(&config(&env.dir, "client_rate = 0"));
    env.wait_gate("[2001:db8:1::1]:53");

    // 1,000 blocked resolutions over IPv6, each a new server, each
    // connected to the moment its answer arrives.
    let blocked6 = env.race(&[
        "[2001:db8:1::1]:53",
        "c.zoom.us",
        "0",
        "1000",
        "aaaa",
        "443",
    ]);
    // 32 more over IPv4 (UDP) and 50 over DNS-over-TCP.
    let blocked4 = env.race(&["198.51.100.1:53", "c.zoom.us", "0", "32", "a", "443"]);
    let blocked_tcp = env.race(&[
        "[2001:db8:1::1]:53",
        "c.zoom.us",
        "1000",
        "50",
        "aaaa",
        "443",
        "tcp",
    ]);
    // A v4 client asking AAAA: its v6 address is unknown, so the first
    // CROSS_FAMILY_BUDGET (16) blocked answers block the server for every
    // client; past the budget no block can be keyed ahead, and the gate
    // withholds the answer (SERVFAIL) rather than let it out unblocked.
    let cross = env.race(&["198.51.100.1:53", "c.zoom.us", "2000", "20", "aaaa", "443"]);
    let allowed = env.race(&["[2001:db8:1::1]:53", "d.zoom.us", "0", "100", "aaaa", "443"]);
    let allowed_other = env.race(&["198.51.100.1:53", "d.example.org", "0", "20", "a", "443"]);
    std::thread::sleep(Duration::from_millis(300));
    sink.signal("KILL");
    let out = sink.output();

    assert_eq!(blocked6.answers, 1000, "{blocked6:?}\n{}", env.log());
    assert_eq!(blocked6.connected, 0, "{blocked6:?}");
    assert_eq!(
        blocked6.refused, 1000,
        "reject verdict: every attempt refused: {blocked6:?}"
    );
    assert_eq!(
        (blocked4.answers, blocked4.connected),
        (32, 0),
        "{blocked4:?}"
    );
    assert_eq!(
        (blocked_tcp.answers, blocked_tcp.connected),
        (50, 0),
        "{blocked_tcp:?}"
    );
    assert_eq!(
        (cross.answers, cross.failed, cross.connected),
        (16, 4, 0),
        "{cross:?}"
    );
    // Counted at the server: not one blocked connection arrived.
    assert_eq!(
        accepted(&out, "2001:db8:2::1:"),
        0,
        "blocked v6 servers reached:\n{out}"
    );
    assert_eq!(
        accepted_v4_range(&out, 96, 127),
        0,
        "blocked v4 servers reached:\n{out}"
    );
    // Allowed names resolve and connect normally, and arrive.
    assert_eq!(
        (allowed.answers, allowed.connected),
        (100, 100),
        "{allowed:?}"
    );
    assert_eq!(
        (allowed_other.answers, allowed_other.connected),
        (20, 20),
        "{allowed_other:?}"
    );
    assert_eq!(accepted(&out, "2001:db8:2::2:"), 100, "{out}");
    assert_eq!(accepted_v4_range(&out, 192, 223), 20);
    // The alerts name the gate's answers.
    let alerts = std::fs::read_to_string(env.dir.join("alerts.jsonl")).unwrap_or_default();
    assert!(
        alerts.contains("\"c999.zoom.us\""),
        "no alert for the last blocked name"
    );
    // `systemctl stop` (SIGTERM) says how DNS fails.
    d.signal("TERM");
    assert!(d.wait_ok(), "clean stop");
    assert!(
        env.log().contains("failing closed"),
        "the journal says DNS fails closed:\n{}",
        env.log()
    );
}

/// Resolves through the gate, then SIGKILLs the daemon and returns the env
/// and what a blocked name did while the daemon was up.
fn killed_daemon(prefix: &str, on_failure: &str) -> Option<(Env, Reaped, Reaped)> {
    let env = setup(prefix)?;
    let srv = env.t.srv.clone();
    let auth = env.spawn(&srv, &["auth", "203.0.113.53:53"]);
    let sink = env.spawn(&srv, &["sink", "443"]);
    let d = env.daemon(&config(&env.dir, &format!("on_failure = \"{on_failure}\"")));
    env.wait_gate("[2001:db8:2::53]:53");
    // A block made through the gate while the daemon is up.
    let before = env.race(&[
        "[2001:db8:2::53]:53",
        "c.zoom.us",
        "3000",
        "1",
        "aaaa",
        "443",
    ]);
    assert_eq!((before.answers, before.refused), (1, 1), "{before:?}");
    d.signal("KILL");
    let _ = d.wait_ok();
    Some((env, auth, sink))
}

#[test]
fn sigkill_fail_closed_nothing_resolves() {
    let Some((env, _auth, _sink)) = killed_daemon("gfdc", "closed") else {
        return;
    };
    // What the unit's ExecStopPost runs: says so, changes nothing.
    let ctl = workspace_bin("geofencectl");
    let cfg = env.dir.join("geofence.toml");
    let o = env
        .t
        .exec(
            &env.t.gw,
            &[
                &ctl.to_string_lossy(),
                "dns-gate-down",
                "--config",
                &cfg.to_string_lossy(),
            ],
        )
        .expect("geofencectl");
    let said = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(said.contains("fails closed"), "{said}");
    // Nothing resolves, whichever resolver and transport the client uses.
    for (resolver, qtype, tcp) in [
        ("203.0.113.53:53", "a", "udp"),
        ("203.0.113.53:53", "aaaa", "tcp"),
        ("[2001:db8:2::53]:53", "aaaa", "udp"),
    ] {
        let c = env.race(&[resolver, "d.zoom.us", "10", "3", qtype, "443", tcp]);
        assert_eq!(c.answers, 0, "{resolver} {tcp}: {c:?}");
        assert_eq!(c.connected, 0);
    }
    let rules = env
        .t
        .stdout(
            &env.t.gw,
            &["nft", "list", "chain", "inet", "geofence", "dns_gate"],
        )
        .expect("nft");
    assert!(rules.contains("dnat"), "the redirect stays:\n{rules}");
}

#[test]
fn sigkill_fail_open_clients_resolve_directly() {
    let Some((env, _auth, sink)) = killed_daemon("gfdo", "open") else {
        return;
    };
    let ctl = workspace_bin("geofencectl");
    let cfg = env.dir.join("geofence.toml");
    let o = env
        .t
        .exec(
            &env.t.gw,
            &[
                &ctl.to_string_lossy(),
                "dns-gate-down",
                "--config",
                &cfg.to_string_lossy(),
            ],
        )
        .expect("geofencectl");
    let said = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        said.contains("fails open") && said.contains("dns_gate"),
        "{said}"
    );
    // Clients reach their own resolver directly, over UDP and TCP.
    let ok = env.race(&["203.0.113.53:53", "d.zoom.us", "10", "3", "aaaa", "443"]);
    assert_eq!((ok.answers, ok.connected), (3, 3), "{ok:?}");
    let ok_tcp = env.race(&["203.0.113.53:53", "d.zoom.us", "20", "2", "a", "443", "tcp"]);
    assert_eq!((ok_tcp.answers, ok_tcp.connected), (2, 2), "{ok_tcp:?}");
    // The block made while the daemon was up still holds ...
    let old = env.race(&["203.0.113.53:53", "c.zoom.us", "3000", "1", "aaaa", "443"]);
    assert_eq!(
        (old.answers, old.connected, old.refused),
        (1, 0, 1),
        "{old:?}"
    );
    // ... but new answers are no longer held: the documented price of
    // failing open.
    let new = env.race(&["203.0.113.53:53", "c.zoom.us", "3001", "1", "aaaa", "443"]);
    assert_eq!((new.answers, new.connected), (1, 1), "{new:?}");
    // A second run (ExecStopPost after a clean stop) is harmless.
    let o = env
        .t
        .exec(
            &env.t.gw,
            &[
                &ctl.to_string_lossy(),
                "dns-gate-down",
                "--config",
                &cfg.to_string_lossy(),
            ],
        )
        .expect("geofencectl");
    assert!(o.status.success());
    sink.signal("KILL");
    let out = sink.output();
    assert_eq!(
        accepted(&out, "2001:db8:2::1:bb8"),
        0,
        "c3000 stays blocked:\n{out}"
    );
}
