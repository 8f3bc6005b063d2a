//! Real-kernel tests in throw-away network namespaces (client -> gw -> srv).
//! The ruleset is applied inside the gateway namespace by the crate's
//! `gf-nft-apply` helper binary (`ip netns exec GW gf-nft-apply ...`), traffic
//! is made by `gf-nft-probe`; cargo builds both before this test runs.
//! Needs root; skips with a printed line otherwise.

use geofence_testkit::netns::{require_root, Topology, CLIENT_V4, CLIENT_V6, SRV_V4, SRV_V6};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Kernel tests share the CPU with traffic counting: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

struct Env {
    t: Topology,
    apply: String,
    probe: String,
    dir: PathBuf,
}

fn setup(tag: &str) -> Option<Env> {
    if !require_root() {
        return None;
    }
    if std::process::Command::new("bash")
        .arg("-c")
        .arg("true")
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        geofence_testkit::skip("bash not available");
        return None;
    }
    let t = Topology::new("gfn").expect("topology");
    let dir = std::env::temp_dir().join(format!("gfnft-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    Some(Env {
        t,
        apply: env!("CARGO_BIN_EXE_gf-nft-apply").to_string(),
        probe: env!("CARGO_BIN_EXE_gf-nft-probe").to_string(),
        dir,
    })
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Env {
    fn spec(&self, name: &str, json: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, json).expect("write spec");
        p.to_string_lossy().into_owned()
    }

    /// Runs the apply example in the gateway; returns (exit code, stdout).
    fn gw(&self, args: &[&str]) -> (i32, String) {
        let mut cmd = vec![self.apply.as_str()];
        cmd.extend_from_slice(args);
        let o = self.t.exec(&self.t.gw, &cmd).expect("run apply");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    }

    fn probe(&self, ns: &str, args: &[&str]) -> String {
        let mut cmd = vec![self.probe.as_str()];
        cmd.extend_from_slice(args);
        self.t
            .stdout(ns, &cmd)
            .expect("run probe")
            .trim()
            .to_string()
    }

    fn connect(&self, addr: &str, port: u16, timeout_ms: u32) -> String {
        let target = if addr.contains(':') {
            format!("[{addr}]:{port}")
        } else {
            format!("{addr}:{port}")
        };
        self.probe(
            &self.t.client,
            &["tcp-connect", &target, &timeout_ms.to_string()],
        )
    }

    /// Starts a probe server in srv and waits until it listens.
    fn server(&self, args: &[&str]) -> Child {
        let mut cmd = vec![self.probe.as_str()];
        cmd.extend_from_slice(args);
        let mut child = self.t.spawn(&self.t.srv, &cmd).expect("spawn server");
        let out = child.stdout.take().expect("stdout");
        let mut r = BufReader::new(out);
        let mut line = String::new();
        r.read_line(&mut line).expect("server output");
        assert_eq!(line.trim(), "listening", "server did not start");
        child.stdout = Some(r.into_inner());
        child
    }
}

fn finish(mut c: Child) -> String {
    let _ = c.wait();
    let mut s = String::new();
    if let Some(mut o) = c.stdout.take() {
        let _ = o.read_to_string(&mut s);
    }
    s
}

fn rule_json(verdict: &str, dst: &[&str], dynamic: bool) -> String {
    let dst = if dst.is_empty() {
        "null".to_string()
    } else {
        format!(
            "[{}]",
            dst.iter()
                .map(|d| format!("\"{d}\""))
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    format!(
        r#"{{"index":0,"name":"test rule","verdict":"{verdict}","src":["198.51.100.0/24","2001:db8:1::/64"],"static_dst":{dst},"static_ports":[],"dynamic":{dynamic}}}"#
    )
}

fn spec_json(enforce: bool, rule: &str) -> String {
    format!(
        r#"{{"table":"geofence","hook":"forward","priority":-5,"enforce":{enforce},"nflog":{{"group":5,"first_packets":4,"snaplen":128,"dns_answers":true}},"rules":[{rule}]}}"#
    )
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_static_interval_set_rejects_and_drops_v4_and_v6() {
    let _g = lock();
    let Some(env) = setup("a") else { return };
    let srv = env.server(&["tcp-server", "[::]:8080", "30"]);
    // Baseline: everything reachable before any ruleset.
    assert_eq!(env.connect(SRV_V4[0], 8080, 1500), "ok");

    let reject = env.spec(
        "reject.json",
        &spec_json(
            true,
            &rule_json("reject", &["203.0.113.10/32", "2001:db8:2::10/128"], false),
        ),
    );
    let (code, out) = env.gw(&["apply", &reject]);
    assert_eq!(code, 0, "apply failed: {out}");
    assert!(out.contains("ok=true"), "{out}");
    // The applying process has exited; the table stays (daemon-death, f).
    assert_eq!(env.connect(SRV_V4[0], 8080, 1500), "refused");
    assert_eq!(env.connect(SRV_V4[1], 8080, 1500), "ok");
    assert_eq!(env.connect(SRV_V6[0], 8080, 1500), "refused");
    assert_eq!(env.connect(SRV_V6[1], 8080, 1500), "ok");
    let (_, counters) = env.gw(&["counters"]);
    let hits = |label: &str| -> u64 {
        counters
            .lines()
            .find(|l| l.ends_with(label))
            .and_then(|l| l.split('\t').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    };
    assert!(hits("r0/static/v4 test rule [tcp]") >= 1, "{counters}");
    assert!(hits("r0/static/v6 test rule [tcp]") >= 1, "{counters}");
    // Reloading the same intent keeps the rules, so counters survive.
    let (code, out) = env.gw(&["apply", &reject]);
    assert_eq!(code, 0, "{out}");
    let (_, again) = env.gw(&["counters"]);
    assert_eq!(
        again, counters,
        "counters changed across an identical reload"
    );
    assert_eq!(env.connect(SRV_V4[0], 8080, 1500), "refused");

    let drop = env.spec(
        "drop.json",
        &spec_json(
            true,
            &rule_json("drop", &["203.0.113.10/32", "2001:db8:2::10/128"], false),
        ),
    );
    let (code, out) = env.gw(&["apply", &drop]);
    assert_eq!(code, 0, "apply failed: {out}");
    let t = Instant::now();
    assert_eq!(env.connect(SRV_V4[0], 8080, 1200), "timeout");
    assert!(t.elapsed() >= Duration::from_millis(1100));
    assert_eq!(env.connect(SRV_V6[0], 8080, 1200), "timeout");
    assert_eq!(env.connect(SRV_V4[1], 8080, 1500), "ok");
    assert_eq!(env.connect(SRV_V6[1], 8080, 1500), "ok");

    // f: the table survives the process that made it and still verifies.
    let (code, out) = env.gw(&["verify", &drop]);
    assert_eq!(code, 0, "{out}");
    // Tampering is detected: delete the table, verify fails.
    let (code, _) = env.gw(&["delete"]);
    assert_eq!(code, 0);
    let (code, out) = env.gw(&["verify", &drop]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("missing"), "{out}");
    assert_eq!(env.connect(SRV_V4[0], 8080, 1500), "ok");
    drop_child(srv);
}

fn drop_child(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

#[test]
fn b_dynamic_pair_element_cuts_established_flow_and_expires() {
    let _g = lock();
    let Some(env) = setup("b") else { return };
    let srv = env.server(&["tcp-server", "[::]:8081", "40"]);
    let spec = env.spec(
        "dyn.json",
        &spec_json(true, &rule_json("reject", &[], true)),
    );
    let (code, out) = env.gw(&["apply", &spec]);
    assert_eq!(code, 0, "{out}");

    let target = format!("{}:8081", SRV_V4[1]);
    let mut hold = env
        .t
        .spawn(&env.t.client, &[&env.probe, "tcp-hold", &target, "6"])
        .expect("hold");
    let mut r = BufReader::new(hold.stdout.take().expect("stdout"));
    let mut line = String::new();
    r.read_line(&mut line).expect("hold output");
    assert_eq!(line.trim(), "connected");
    std::thread::sleep(Duration::from_millis(500));

    let (code, out) = env.gw(&["add-dyn", "0", CLIENT_V4, SRV_V4[1], "3000"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = env.gw(&["kill-ct", CLIENT_V4, SRV_V4[1]]);
    assert_eq!(code, 0, "{out}");
    let killed: usize = out
        .trim()
        .strip_prefix("killed ")
        .and_then(|n| n.parse().ok())
        .expect("killed N");
    assert!(killed >= 1, "no conntrack entry deleted: {out}");

    let mut rest = String::new();
    r.read_to_string(&mut rest).expect("hold result");
    let _ = hold.wait();
    assert!(
        rest.trim().starts_with("cut"),
        "established flow was not cut: {rest}"
    );

    let (_, list) = env.gw(&["list-dyn"]);
    let remaining: u64 = list
        .lines()
        .find(|l| l.starts_with(&format!("r0 {CLIENT_V4} {}", SRV_V4[1])))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|m| m.parse().ok())
        .expect("element listed");
    assert!(remaining > 0 && remaining <= 3000, "{list}");
    // Blocked for this client only while the element lives...
    assert_eq!(env.connect(SRV_V4[1], 8081, 1500), "refused");
    assert_eq!(env.connect(SRV_V4[0], 8081, 1500), "ok");
    // ...and a reload keeps it (in-place update leaves dynamic sets alone).
    let (code, out) = env.gw(&["apply", &spec]);
    assert_eq!(code, 0, "{out}");
    let (_, list) = env.gw(&["list-dyn"]);
    assert!(
        list.contains(&format!("r0 {CLIENT_V4} {}", SRV_V4[1])),
        "lost on reload: {list}"
    );
    assert_eq!(env.connect(SRV_V4[1], 8081, 1500), "refused");
    // Expiry.
    std::thread::sleep(Duration::from_millis(remaining + 500));
    assert_eq!(env.connect(SRV_V4[1], 8081, 1500), "ok");
    let (_, list) = env.gw(&["list-dyn"]);
    assert!(list.trim().is_empty(), "{list}");
    // Every-client element for IPv6, refresh by re-adding (no EEXIST abort).
    for ms in ["2000", "8000"] {
        let (code, out) = env.gw(&["add-dyn", "0", "-", SRV_V6[1], ms]);
        assert_eq!(code, 0, "re-adding must not fail: {out}");
    }
    let (_, list) = env.gw(&["list-dyn"]);
    let ms: u64 = list
        .split_whitespace()
        .nth(3)
        .and_then(|m| m.parse().ok())
        .expect("listed");
    assert!(ms > 2000, "timeout was not refreshed: {list}");
    assert_eq!(env.connect(SRV_V6[1], 8081, 1500), "refused");
    // Per-client IPv6 pair (saddr . daddr, 32-byte concatenated key).
    let (code, out) = env.gw(&["add-dyn", "0", CLIENT_V6, SRV_V6[0], "5000"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(env.connect(SRV_V6[0], 8081, 1500), "refused");
    let (_, list) = env.gw(&["list-dyn"]);
    assert!(
        list.contains(&format!("r0 {CLIENT_V6} {}", SRV_V6[0])),
        "{list}"
    );
    // The pair blocks only that server for that client: its IPv4 is untouched.
    assert_eq!(env.connect(SRV_V4[0], 8081, 1500), "ok");
    drop_child(srv);
}

#[test]
fn h_host_mode_output_hook_and_port_rules() {
    let _g = lock();
    let Some(env) = setup("h") else { return };
    let srv = env.server(&["tcp-server", "[::]:8084", "20"]);
    let srv2 = env.server(&["tcp-server", "[::]:8085", "20"]);
    // Host mode: the client itself runs the ruleset (hook output) and only
    // TCP port 8084 to .10 / ::10 is blocked.
    let spec = env.spec(
        "host.json",
        r#"{"table":"geofence","hook":"output","priority":-5,"enforce":true,
            "nflog":{"group":2,"first_packets":4,"snaplen":128,"dns_answers":true},
            "rules":[{"index":3,"name":"port rule","verdict":"reject","src":null,
            "static_dst":["203.0.113.10/32","2001:db8:2::10/128"],
            "static_ports":[["tcp",8084,8084],["udp",5000,5010]],"dynamic":false}]}"#,
    );
    let mut cmd = vec![env.apply.as_str(), "apply", spec.as_str()];
    let out = env.t.stdout(&env.t.client, &cmd).expect("apply in client");
    assert!(out.contains("ok=true"), "{out}");
    assert_eq!(env.connect(SRV_V4[0], 8084, 1500), "refused");
    assert_eq!(env.connect(SRV_V6[0], 8084, 1500), "refused");
    assert_eq!(env.connect(SRV_V4[0], 8085, 1500), "ok");
    assert_eq!(env.connect(SRV_V4[1], 8084, 1500), "ok");
    // The gateway has no table at all: enforcement happened on the host.
    let (_, counters) = env.gw(&["counters"]);
    assert!(counters.trim().is_empty(), "{counters}");
    cmd[1] = "counters";
    cmd.truncate(2);
    let counters = env.t.stdout(&env.t.client, &cmd).expect("counters");
    assert!(
        counters.lines().any(
            |l| l.ends_with("r3/static/v4/tcp:8084-8084 port rule [tcp]") && !l.starts_with("0\t")
        ),
        "{counters}"
    );
    // `ct original packets` needs conntrack accounting in this namespace.
    cmd[1] = "acct";
    let out = env.t.stdout(&env.t.client, &cmd).expect("acct");
    assert!(out.starts_with("conntrack accounting"), "{out}");
    let v = env
        .t
        .stdout(
            &env.t.client,
            &["cat", "/proc/sys/net/netfilter/nf_conntrack_acct"],
        )
        .expect("cat");
    assert_eq!(v.trim(), "1");
    drop_child(srv);
    drop_child(srv2);
}

/// `n` /32 ranges spread over 10.0.0.0/8 (set contents only, no traffic).
fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn filler(n: u32, step: u32) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "10.{}.{}.{}",
                (i * step) >> 16 & 255,
                (i * step) >> 8 & 255,
                (i * step) & 255
            )
        })
        .collect()
}

#[test]
fn c_atomic_replace_under_traffic_never_leaks_nor_loses() {
    let _g = lock();
    let Some(env) = setup("c") else { return };
    let mut a: Vec<String> = filler(3000, 4);
    a.push("203.0.113.10/32".into());
    let mut b: Vec<String> = filler(2000, 7);
    b.push("203.0.113.8/30".into());
    let sa = env.spec(
        "a.json",
        &spec_json(true, &rule_json("drop", &refs(&a), true)),
    );
    let sb = env.spec(
        "b.json",
        &spec_json(true, &rule_json("drop", &refs(&b), true)),
    );
    let (code, out) = env.gw(&["apply", &sa]);
    assert_eq!(code, 0, "{out}");

    // Traffic runs for as long as the applies take, whatever the machine
    // load: senders stop when `stop_send` appears, servers on `stop_srv`.
    let stop_send = env.dir.join("stop-send").to_string_lossy().into_owned();
    let stop_srv = env.dir.join("stop-srv").to_string_lossy().into_owned();
    let blocked = env.server(&["udp-server", "203.0.113.10:7000", "300", &stop_srv]);
    let allowed = env.server(&["udp-server", "203.0.113.20:7000", "300", &stop_srv]);
    let sender = |dst: &str| {
        env.t
            .spawn(
                &env.t.client,
                &[&env.probe, "udp-send", dst, "1000000", "2", &stop_send],
            )
            .expect("send")
    };
    let send_b = sender("203.0.113.10:7000");
    let send_a = sender("203.0.113.20:7000");
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let (code, out) = env.gw(&["apply-n", &sa, &sb, "100"]);
    let apply_time = t.elapsed();
    std::fs::write(&stop_send, "").expect("stop senders");
    let sb_out = finish(send_b);
    let sa_out = finish(send_a);
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&stop_srv, "").expect("stop servers");
    assert_eq!(code, 0, "{out}");
    let got_blocked = finish(blocked);
    let got_allowed = finish(allowed);
    let count = |s: &str, key: &str| -> u64 {
        s.split_whitespace()
            .skip_while(|w| *w != key)
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("count")
    };
    let sent_allowed = count(&sa_out, "sent");
    // At 2 ms per datagram the senders covered the whole apply loop.
    assert!(count(&sb_out, "sent") >= 200, "{sb_out}");
    assert_eq!(
        count(&got_blocked, "received"),
        0,
        "blocked server saw packets during reloads"
    );
    assert_eq!(
        count(&got_allowed, "received"),
        sent_allowed,
        "allowed probe lost packets: {got_allowed} vs {sa_out}"
    );
    println!(
        "100 applies in {apply_time:?} ({}); allowed {sent_allowed}/{sent_allowed}, blocked 0",
        out.trim()
    );
}

#[test]
fn d_rejected_batch_leaves_previous_ruleset() {
    let _g = lock();
    let Some(env) = setup("d") else { return };
    let srv = env.server(&["tcp-server", "[::]:8082", "20"]);
    let good = env.spec(
        "good.json",
        &spec_json(true, &rule_json("reject", &["203.0.113.10/32"], true)),
    );
    let other = env.spec(
        "other.json",
        &spec_json(true, &rule_json("reject", &["203.0.113.20/32"], false)),
    );
    let (code, out) = env.gw(&["apply", &good]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = env.gw(&["apply-bad", &other]);
    assert_eq!(code, 5, "the overlapping batch must be rejected: {out}");
    assert!(
        out.contains("elements of set"),
        "error names the failing message: {out}"
    );
    let (code, out) = env.gw(&["verify", &good]);
    assert_eq!(code, 0, "previous ruleset must be intact: {out}");
    assert_eq!(env.connect(SRV_V4[0], 8082, 1500), "refused");
    assert_eq!(env.connect(SRV_V4[1], 8082, 1500), "ok");
    drop_child(srv);
}

#[test]
fn e_monitor_mode_installs_no_verdicts() {
    let _g = lock();
    let Some(env) = setup("e") else { return };
    let srv = env.server(&["tcp-server", "[::]:8083", "20"]);
    let spec = env.spec(
        "mon.json",
        &spec_json(
            false,
            &rule_json("reject", &["203.0.113.10/32", "2001:db8:2::10/128"], true),
        ),
    );
    let (code, out) = env.gw(&["apply", &spec]);
    assert_eq!(code, 0, "{out}");
    let (_, rendered) = env.gw(&["render", &spec]);
    assert!(
        !rendered.contains("drop") && !rendered.contains("reject"),
        "{rendered}"
    );
    assert!(rendered.contains("set r0_dst_v4"), "{rendered}");
    // No rule with a verdict means no rule with a counter either.
    let (_, counters) = env.gw(&["counters"]);
    assert!(counters.trim().is_empty(), "{counters}");
    assert_eq!(env.connect(SRV_V4[0], 8083, 1500), "ok");
    assert_eq!(env.connect(SRV_V6[0], 8083, 1500), "ok");
    drop_child(srv);
}

#[test]
fn g_display_script_loads_with_nft_and_matches() {
    let _g = lock();
    let Some(env) = setup("g") else { return };
    if std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_err()
    {
        geofence_testkit::skip("nft binary not installed");
        return;
    }
    let spec = env.spec(
        "r.json",
        &spec_json(
            true,
            &rule_json(
                "reject",
                &["203.0.113.10/32", "240.0.0.0/4", "2001:db8:2::10/128"],
                true,
            ),
        ),
    );
    let (_, script) = env.gw(&["render", &spec]);
    let path = env.dir.join("r.nft");
    std::fs::write(&path, &script).expect("script");
    env.t
        .ok(&env.t.gw, &["nft", "-f", &path.to_string_lossy()])
        .expect("nft -f of the rendered script");
    let (code, out) = env.gw(&["verify", &spec]);
    assert_eq!(
        code, 0,
        "nft -f result differs from the netlink intent: {out}"
    );

    // Tampering behind our back is detected, and the next apply heals it.
    let gw = &env.t.gw;
    env.t
        .ok(
            gw,
            &[
                "nft", "insert", "rule", "inet", "geofence", "forward", "accept",
            ],
        )
        .expect("insert");
    env.t
        .ok(
            gw,
            &[
                "nft",
                "add",
                "set",
                "inet",
                "geofence",
                "foreign",
                "{ type ipv4_addr; }",
            ],
        )
        .expect("add set");
    env.t
        .ok(
            gw,
            &[
                "nft",
                "delete",
                "element",
                "inet",
                "geofence",
                "r0_dst_v4",
                "{ 203.0.113.10 }",
            ],
        )
        .expect("del");
    let (code, out) = env.gw(&["verify", &spec]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("unexpected set foreign"), "{out}");
    assert!(
        out.contains("r0_dst_v4 holds 1 ranges, intended 2"),
        "{out}"
    );
    assert!(out.contains("chain forward has"), "{out}");
    let (code, out) = env.gw(&["apply", &spec]);
    assert_eq!(code, 0, "{out}");
    // Same number of ranges but a different one is detected too.
    env.t
        .ok(
            gw,
            &[
                "nft",
                "delete",
                "element",
                "inet",
                "geofence",
                "r0_dst_v4",
                "{ 203.0.113.10 }",
            ],
        )
        .expect("del");
    env.t
        .ok(
            gw,
            &[
                "nft",
                "add",
                "element",
                "inet",
                "geofence",
                "r0_dst_v4",
                "{ 203.0.113.11 }",
            ],
        )
        .expect("add");
    let (code, out) = env.gw(&["verify", &spec]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("r0_dst_v4 differs from the intent in 1 range starts"),
        "{out}"
    );
    let (code, out) = env.gw(&["apply", &spec]);
    assert_eq!(code, 0, "{out}");
    let listing = env
        .t
        .stdout(gw, &["nft", "list", "table", "inet", "geofence"])
        .expect("list");
    assert!(!listing.contains("foreign"), "{listing}");
    assert!(!listing.lines().any(|l| l.trim() == "accept"), "{listing}");
    assert!(listing.contains("203.0.113.10"), "{listing}");
}

/// One element the kernel refuses (its rule's set does not exist; already
/// removed) no longer aborts the whole batch: the others are applied.
#[test]
fn i_dynamic_batch_with_a_bad_element_applies_the_others() {
    let _g = lock();
    let Some(env) = setup("i") else { return };
    let spec = env.spec(
        "dyn.json",
        &spec_json(true, &rule_json("reject", &[], true)),
    );
    let (code, out) = env.gw(&["apply", &spec]);
    assert_eq!(code, 0, "{out}");
    let good_a = format!("0,{CLIENT_V4},{},60000", SRV_V4[0]);
    let no_set = format!("7,{CLIENT_V4},{},60000", SRV_V4[1]);
    let good_b = format!("0,-,{},60000", SRV_V6[1]);
    let mixed = format!("0,{CLIENT_V4},{},60000", SRV_V6[0]);
    let good_c = format!("0,{CLIENT_V6},{},60000", SRV_V6[0]);
    let (code, out) = env.gw(&["add-dyn-each", &good_a, &no_set, &good_b, &mixed, &good_c]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("failed 1 ") && out.contains("r7_dyn_v4"),
        "{out}"
    );
    assert!(out.contains("failed 3 "), "{out}");
    assert!(out.contains("applied 3"), "{out}");
    let (_, list) = env.gw(&["list-dyn"]);
    for want in [
        format!("r0 {CLIENT_V4} {}", SRV_V4[0]),
        format!("r0 - {}", SRV_V6[1]),
        format!("r0 {CLIENT_V6} {}", SRV_V6[0]),
    ] {
        assert!(list.contains(&want), "{want} missing: {list}");
    }
    // The all-or-nothing call aborts on the same bad element (the old
    // behaviour, still available): nothing of that batch is added.
    let (code, out) = env.gw(&["add-dyn", "7", CLIENT_V4, SRV_V4[1], "60000"]);
    assert_ne!(code, 0, "{out}");
    // Removal: an element that is already gone (ENOENT) does not keep the
    // present ones in the kernel.
    let absent = format!("0,{CLIENT_V4},{}", SRV_V4[1]);
    let present = format!("0,{CLIENT_V4},{}", SRV_V4[0]);
    let (code, out) = env.gw(&["del-dyn-each", &absent, &present]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("failed 0 ") && out.contains("applied 1"),
        "{out}"
    );
    let (_, list) = env.gw(&["list-dyn"]);
    assert!(
        !list.contains(&format!("r0 {CLIENT_V4} {}", SRV_V4[0])),
        "removed: {list}"
    );
    assert!(list.contains(&format!("r0 - {}", SRV_V6[1])), "{list}");
}

#[test]
fn j_dynamic_sets_are_bounded_also_when_an_old_table_is_upgraded() {
    let _g = lock();
    let Some(env) = setup("j") else { return };
    // A table as an older version left it: a dynamic set without `size`.
    env.t
        .ok(
            &env.t.gw,
            &[
                "nft",
                "add table inet geofence; add set inet geofence r0_dyn_v4 { type ipv4_addr . ipv4_addr; flags timeout; }",
            ],
        )
        .expect("old table");
    let spec = env.spec(
        "dyn.json",
        &spec_json(true, &rule_json("reject", &[], true)),
    );
    let (code, out) = env.gw(&["apply", &spec]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = env.gw(&["verify", &spec]);
    assert_eq!(code, 0, "{out}");
    let listing = env
        .t
        .stdout(&env.t.gw, &["nft", "list", "table", "inet", "geofence"])
        .expect("list");
    for set in ["r0_dyn_v4", "r0_dyn_v6", "r0_dst_dyn_v4", "r0_dst_dyn_v6"] {
        let block = listing
            .split(&format!("set {set} {{"))
            .nth(1)
            .and_then(|r| r.split('}').next())
            .unwrap_or_else(|| panic!("{set} missing:\n{listing}"));
        assert!(block.contains("size 65536"), "{set} unbounded:\n{listing}");
    }
    // DNS answers are logged only in the reply direction, and every DNS
    // log rule is bounded (first packets or a rate).
    for line in listing
        .lines()
        .filter(|l| l.contains("sport 53") || l.contains("dport 53"))
    {
        assert!(
            line.contains("packets <") || line.contains("limit rate"),
            "unbounded: {line}"
        );
        if line.contains("sport 53") {
            assert!(line.contains("ct direction reply"), "{line}");
        }
    }
    // Elements go in up to the size.
    let (code, out) = env.gw(&["add-dyn", "0", CLIENT_V4, SRV_V4[0], "60000"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn k_ruleset_generation_moves_with_every_commit_and_only_then() {
    let _g = lock();
    let Some(env) = setup("gen") else { return };
    let gen = |env: &Env| -> u64 {
        let (code, out) = env.gw(&["generation"]);
        assert_eq!(code, 0, "{out}");
        out.trim().parse().expect("a number")
    };
    let g0 = gen(&env);
    assert_eq!(gen(&env), g0, "nothing committed, nothing moves");
    let spec = env.spec(
        "g.json",
        &spec_json(true, &rule_json("reject", &["203.0.113.10/32"], true)),
    );
    let (code, out) = env.gw(&["apply", &spec]);
    assert_eq!(code, 0, "{out}");
    let g1 = gen(&env);
    assert!(g1 > g0, "our apply commits: {g0} -> {g1}");
    let (code, out) = env.gw(&["add-dyn", "0", "-", "203.0.113.99", "60000"]);
    assert_eq!(code, 0, "{out}");
    let g2 = gen(&env);
    assert!(g2 > g1, "a dynamic element commits too: {g1} -> {g2}");
    // Another tool's change, in another table: the generation says
    // something changed, a full check says whether it was ours.
    env.t
        .ok(&env.t.gw, &["nft", "add", "table", "inet", "someone_else"])
        .expect("nft");
    let g3 = gen(&env);
    assert!(g3 > g2, "another tool's commit: {g2} -> {g3}");
    assert_eq!(gen(&env), g3);
}

/// A full dynamic set (its `size` bound, ENFILE) refuses its new elements
/// at once, named as full, while elements of other sets in the same batch
/// are added.
#[test]
fn j_full_dynamic_set_refuses_its_elements_and_not_the_others() {
    let _g = lock();
    let Some(env) = setup("j") else { return };
    let spec = env.spec(
        "dyn.json",
        &spec_json(true, &rule_json("reject", &[], true)),
    );
    let (code, out) = env.gw(&["apply", &spec]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = env.gw(&["fill-dyn", "0"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "filled 65536 failed 0", "{out}");
    let extra_v4 = "0,192.0.2.1,192.0.2.2,60000".to_string();
    let v6 = format!("0,{CLIENT_V6},{},60000", SRV_V6[0]);
    let (code, out) = env.gw(&["add-dyn-each", &extra_v4, &v6]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("failed 0 set r0_dyn_v4 is full"),
        "the full set is named: {out}"
    );
    assert!(out.contains("applied 1"), "{out}");
    let (_, list) = env.gw(&["list-dyn"]);
    assert!(
        list.contains(&format!("r0 {CLIENT_V6} {}", SRV_V6[0])),
        "the other set's element is in"
    );
    assert!(!list.contains("192.0.2.1 192.0.2.2"), "not added");
}
