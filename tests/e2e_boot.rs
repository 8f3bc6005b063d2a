//! The daemon on a gateway that already has its own firewall, and at boot:
//! real kernel, namespaces from `geofence_testkit::netns` (whose gateway
//! namespace holds the admin's `table inet filter` with input, forward and
//! output base chains, as Debian's stock /etc/nftables.conf loads it).
//!
//! * next to that table the daemon starts, enforces and raises no tamper
//!   alert; when another tool runs `flush ruleset` (what `systemctl restart
//!   nftables` does) the table comes back once, with one tamper alert;
//! * a corrupt database at boot, with the table gone (a reboot): the daemon
//!   starts from the last database it accepted and enforces again; saved
//!   dynamic blocks are re-decided before they reach the kernel;
//! * `geofencectl reload` reports a refused reload; SIGUSR1 (logrotate)
//!   reopens the alert file without reloading the policy.
//!
//! Geography: 203.0.113.30 is RU, 203.0.113.20 DE; the policy drops all
//! traffic to RU. Needs root; skips with a message otherwise.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use geofence_testkit::mmdb::geoip2_country;
use geofence_testkit::netns::{require_root, Topology, ADMIN_TABLE};
use geofence_tests::{run_tool, start_daemon, workspace_bin, Reaped};

const PROBE: &str = env!("CARGO_BIN_EXE_gf-e2e-probe");
const BLOCKED: &str = "203.0.113.30:443";
const ALLOWED: &str = "203.0.113.20:443";

struct Env {
    t: Topology,
    dir: PathBuf,
    config: PathBuf,
    _servers: Vec<Reaped>,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Env {
    fn probe(&self, args: &[&str]) -> (i32, String) {
        run_tool(&self.t, PROBE, &self.t.client, args)
    }

    /// Whether a TLS session to `addr` gets through (exit 0) or is dropped.
    fn passes(&self, addr: &str) -> bool {
        let (code, out) = self.probe(&["tls-client", addr, "www.example.org", "1"]);
        assert!(
            code == 0 || code == 3,
            "unexpected probe result {code} {out}"
        );
        code == 0
    }

    fn daemon(&self, log: &str) -> Reaped {
        start_daemon(&self.t, &self.config, &self.dir.join(log))
    }

    fn alerts(&self) -> String {
        std::fs::read_to_string(self.dir.join("alerts.jsonl")).unwrap_or_default()
    }

    fn count(&self, needle: &str) -> usize {
        self.alerts().matches(needle).count()
    }

    fn wait_alert(&self, needle: &str, count: usize) {
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if self.count(needle) >= count {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "no alert {needle:?} (x{count}) within 20 s\nalerts:\n{}",
            self.alerts()
        );
    }

    fn nft(&self, args: &[&str]) -> String {
        let mut cmd = vec!["nft"];
        cmd.extend_from_slice(args);
        self.t.stdout(&self.t.gw, &cmd).unwrap_or_default()
    }

    fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        let bin = workspace_bin("geofencectl");
        let o = std::process::Command::new(&bin)
            .args(args)
            .output()
            .expect("geofencectl runs");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn table_present(&self) -> bool {
        self.nft(&["list", "table", "inet", "geofence"])
            .contains("table inet geofence")
    }
}

fn config_text(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"
[daemon]
mode = "gateway"
enforce = true
capture = "nflog"
nflog_group = 19
alert_log = "{d}/alerts.jsonl"
state_dir = "{d}/state"
control_socket = "{d}/control.sock"

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

fn setup() -> Option<Env> {
    if !require_root() {
        return None;
    }
    let t = Topology::new("gfb").expect("namespaces");
    t.ok(
        &t.srv,
        &["ip", "addr", "add", "203.0.113.30/24", "dev", "s0"],
    )
    .expect("addr");
    let dir = std::env::temp_dir().join(format!("gf-boot-{}", t.gw));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    geoip2_country(&[
        ("203.0.113.20/32", "DE", None),
        ("203.0.113.30/32", "RU", None),
    ])
    .write(&dir.join("geo.mmdb"))
    .expect("mmdb");
    let config = dir.join("geofence.toml");
    std::fs::write(&config, config_text(&dir)).expect("config");
    let mut servers = Vec::new();
    for a in [BLOCKED, ALLOWED] {
        let mut c = t
            .spawn(&t.srv, &[PROBE, "tcp-server", a, "120"])
            .expect("server");
        if let Some(out) = c.stdout.as_mut() {
            use std::io::Read;
            let mut b = [0u8; 10];
            let _ = out.read(&mut b);
        }
        servers.push(Reaped::new(c));
    }
    Some(Env {
        t,
        dir,
        config,
        _servers: servers,
    })
}

#[test]
fn coexists_with_the_admin_firewall_and_recovers_once_from_flush_ruleset() {
    let Some(env) = setup() else { return };
    assert!(
        env.t.admin_table_present(),
        "the admin's table is loaded first"
    );
    assert!(
        env.passes(BLOCKED),
        "nothing blocks before the daemon starts"
    );

    let _daemon = env.daemon("daemon.log");
    env.wait_alert("geofenced started", 1);
    assert!(env.table_present());
    assert!(
        !env.passes(BLOCKED),
        "RU is dropped next to the admin's table"
    );
    assert!(env.passes(ALLOWED), "DE passes");
    // Two full self-checks (every 2 s) later: still no tamper alert, and the
    // admin's table untouched.
    std::thread::sleep(Duration::from_millis(4500));
    assert_eq!(
        env.count("\"event_type\":\"tamper\""),
        0,
        "{}",
        env.alerts()
    );
    let filter = env.nft(&["list", "table", "inet", "filter"]);
    for c in ["input", "forward", "output"] {
        assert!(filter.contains(&format!("chain {c} {{")), "{filter}");
    }

    // `systemctl restart nftables` with Debian's stock file: one transaction
    // that flushes the whole ruleset and loads the admin's table again.
    let conf = env.dir.join("nftables.conf");
    std::fs::write(&conf, format!("flush ruleset\n{ADMIN_TABLE}\n")).expect("conf");
    let conf = conf.to_string_lossy().to_string();
    env.t
        .ok(&env.t.gw, &["nft", "-f", &conf])
        .expect("nft -f nftables.conf");
    env.wait_alert("\"event_type\":\"tamper\"", 1);
    assert!(env.table_present(), "table restored");
    assert!(
        env.t.admin_table_present(),
        "the admin's table is left alone"
    );
    assert!(!env.passes(BLOCKED), "blocking again after the restore");
    assert!(env.passes(ALLOWED));
    // Recovered once, not in a loop: no further tamper alert over two more
    // full self-checks.
    std::thread::sleep(Duration::from_millis(4500));
    assert_eq!(
        env.count("\"event_type\":\"tamper\""),
        1,
        "exactly one tamper alert: {}",
        env.alerts()
    );
}

#[test]
fn corrupt_database_and_deleted_table_at_start_enforce_from_the_last_accepted_copy() {
    let Some(env) = setup() else { return };
    // A block saved by an earlier run for an address this policy allows
    // (DE): it must be re-decided, and dropped, before it reaches the kernel.
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    std::fs::create_dir_all(env.dir.join("state")).expect("state dir");
    std::fs::write(
        env.dir.join("state/dynamic.json"),
        format!(
            r#"[{{"rule_index":0,"src":"198.51.100.2","dst":"203.0.113.20","expires":{expires},"app":"zoom"}},
               {{"rule_index":0,"src":"198.51.100.2","dst":"203.0.113.30","expires":{expires},"app":"zoom"}}]"#
        ),
    )
    .expect("saved blocks");
    let daemon = env.daemon("daemon1.log");
    env.wait_alert("geofenced started", 1);
    let set = env.nft(&["list", "set", "inet", "geofence", "r0_dyn_v4"]);
    assert!(
        set.contains("198.51.100.2 . 203.0.113.30"),
        "a saved block the policy still wants is restored: {set}"
    );
    assert!(
        !set.contains("203.0.113.20"),
        "a saved block the policy no longer wants is not restored: {set}"
    );
    assert!(env.passes(ALLOWED), "DE passes");
    let kept = env.dir.join("state/accepted-geoip");
    let copies = std::fs::read_dir(&kept).map(|d| d.count()).unwrap_or(0);
    assert_eq!(copies, 1, "the accepted database is kept in {kept:?}");

    // A reboot with a corrupt database: daemon gone, table gone, file bad.
    daemon.signal("KILL");
    drop(daemon);
    env.t
        .ok(&env.t.gw, &["nft", "delete", "table", "inet", "geofence"])
        .expect("delete table");
    assert!(env.passes(BLOCKED), "nothing enforced without the table");
    let db = env.dir.join("geo.mmdb");
    let mut bytes = std::fs::read(&db).expect("db");
    for b in bytes.iter_mut().take(64) {
        *b = 0xff;
    }
    std::fs::write(&db, &bytes).expect("corrupt db");
    let (code, _, _) = env.ctl(&["check-db", &db.to_string_lossy()]);
    assert_eq!(code, 65, "the daemon's loader refuses this file");

    let _daemon = env.daemon("daemon2.log");
    env.wait_alert("geofenced started", 2);
    assert!(env.table_present(), "table back");
    assert!(!env.passes(BLOCKED), "RU dropped again, from the kept copy");
    assert!(env.passes(ALLOWED));
    let alerts = env.alerts();
    let db_alert = alerts
        .lines()
        .find(|l| l.contains("\"event_type\":\"database\""))
        .unwrap_or_else(|| panic!("a database alert: {alerts}"));
    assert!(
        db_alert.contains("geo.mmdb") && db_alert.contains("last accepted copy"),
        "{db_alert}"
    );
    assert_eq!(
        std::fs::read_dir(&kept).map(|d| d.count()).unwrap_or(0),
        1,
        "the refused file did not replace the kept copy"
    );
}

#[test]
fn without_a_kept_copy_a_corrupt_database_stops_the_start() {
    let Some(env) = setup() else { return };
    std::fs::write(env.dir.join("geo.mmdb"), b"not a database").expect("corrupt");
    let daemon = env.daemon("daemon.log");
    assert!(
        !daemon.wait_ok(),
        "no database, no copy: the daemon refuses"
    );
    let log = std::fs::read_to_string(env.dir.join("daemon.log")).unwrap_or_default();
    assert!(log.contains("no previously accepted copy"), "{log}");
    assert!(!env.table_present());
}

#[test]
fn reload_reports_refusal_and_sigusr1_only_reopens_the_alert_file() {
    let Some(env) = setup() else { return };
    let daemon = env.daemon("daemon.log");
    env.wait_alert("geofenced started", 1);
    let cfg = env.config.to_string_lossy().to_string();
    let (code, out, err) = env.ctl(&["reload", "--config", &cfg]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("policy reloaded"), "{out}");
    // The alert is written by the alert thread, after the answer.
    env.wait_alert("policy reloaded", 1);

    // A half-edited policy: refused, reported, and the old one stays.
    let good = std::fs::read_to_string(&env.config).expect("config");
    std::fs::write(
        &env.config,
        good.replace("action = \"block\"", "action = \"blok\""),
    )
    .expect("config");
    // The file no longer validates; geofencectl still finds its socket.
    let (code, out, err) = env.ctl(&["reload", "--config", &cfg]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("reload failed") && err.contains("blok"),
        "{err}"
    );
    env.wait_alert("reload rejected", 1);
    assert!(!env.passes(BLOCKED), "the running policy stays in force");

    // logrotate's SIGUSR1 does not reload (the broken file is still there):
    // no new policy alert; the alert file is reopened at its path.
    let log = env.dir.join("alerts.jsonl");
    std::fs::rename(&log, env.dir.join("alerts.jsonl.1")).expect("rotate");
    daemon.signal("USR1");
    std::thread::sleep(Duration::from_millis(1500));
    // Any alert now lands in the new file.
    std::fs::write(&env.config, &good).expect("config");
    daemon.signal("HUP");
    env.wait_alert("policy reloaded", 1);
    let rotated = std::fs::read_to_string(env.dir.join("alerts.jsonl.1")).unwrap_or_default();
    assert_eq!(
        rotated.matches("reload rejected").count(),
        1,
        "USR1 caused no second reload attempt: {rotated}"
    );
    assert_eq!(
        env.alerts().matches("\"event_type\":\"policy\"").count(),
        1,
        "only the SIGHUP reload is in the reopened file: {}",
        env.alerts()
    );
}

/// Debian 12's stock /etc/nftables.conf.
const DEBIAN_NFTABLES_CONF: &str = "#!/usr/sbin/nft -f

flush ruleset

table inet filter {
\tchain input {
\t\ttype filter hook input priority filter;
\t}
\tchain forward {
\t\ttype filter hook forward priority filter;
\t}
\tchain output {
\t\ttype filter hook output priority filter;
\t}
}
";

/// install.sh --fix-nftables-conf: the rewritten stock file reloads (twice,
/// as `systemctl restart nftables` would) without touching our table, and
/// without duplicating the admin's chains; the original file removes it.
#[test]
fn rewritten_debian_nftables_conf_leaves_our_table_alone() {
    if !require_root() {
        return;
    }
    let t = Topology::new("gfr").expect("namespaces");
    let dir = std::env::temp_dir().join(format!("gf-nftconf-{}", t.gw));
    std::fs::create_dir_all(&dir).expect("dir");
    let orig = dir.join("nftables.conf");
    std::fs::write(&orig, DEBIAN_NFTABLES_CONF).expect("write");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/nftables-conf-rewrite.sh"
    );
    let o = std::process::Command::new("bash")
        .arg(script)
        .arg(&orig)
        .output()
        .expect("run rewrite");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let fixed = dir.join("nftables.conf.fixed");
    std::fs::write(&fixed, &o.stdout).expect("write");
    let ours =
        "table inet geofence {\n chain forward { type filter hook forward priority -5; }\n}\n";
    let ours_file = dir.join("ours.nft");
    std::fs::write(&ours_file, ours).expect("write");
    let load = |p: &Path| {
        t.ok(&t.gw, &["nft", "-f", &p.to_string_lossy()])
            .expect("nft -f")
    };
    let has_ours = || {
        t.exec(&t.gw, &["nft", "list", "table", "inet", "geofence"])
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    load(&ours_file);
    load(&fixed);
    load(&fixed);
    assert!(has_ours(), "the rewritten file leaves table inet geofence");
    let chains = t
        .stdout(&t.gw, &["nft", "list", "chains", "inet"])
        .expect("nft");
    assert_eq!(chains.matches("chain ").count(), 4, "{chains}");
    load(&orig);
    assert!(!has_ours(), "the stock file's flush ruleset removes it");
    let _ = std::fs::remove_dir_all(&dir);
}
