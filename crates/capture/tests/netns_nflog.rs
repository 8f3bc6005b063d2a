//! Real-kernel test (root only): an nftables "first packets of each flow" NFLOG rule
//! inside a throw-away network namespace, traffic between two namespaces over a
//! veth pair on 198.51.100.0/24, and `NflogSource` (the `nflog_dump` example, run
//! with `ip netns exec`) receiving exactly the first packets of every flow.
//!
//! Skips with a message when not root or when `ip`/`nft` are unavailable.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const GROUP: u16 = 7;
/// `ct original packets < LIMIT`: packets 1..LIMIT-1 of each flow are logged.
const LIMIT: usize = 6;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn tool_works(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(args[0]);
    c.args(&args[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if stdin.is_some() {
        c.stdin(Stdio::piped());
    }
    let mut child = c.spawn().unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Deletes the namespaces (and with them the veth pair and nft table) on drop.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Kills (by handle) a helper process this test started, on drop.
struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/<test binary> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join("examples").join(name);
    assert!(
        p.exists(),
        "{} missing: cargo test builds examples; run via cargo test",
        p.display()
    );
    p
}

fn spawn_in(ns: &str, exe: &PathBuf, args: &[&str]) -> Helper {
    let child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(exe)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn helper");
    Helper(child)
}

#[derive(Debug)]
struct Logged {
    proto: String,
    sport: u16,
    dport: u16,
    syn: bool,
    payload: String,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &line[start..];
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    let end = rest.find(['"', ',', '}'])?;
    Some(&rest[..end])
}

fn unhex(h: &str) -> String {
    let bytes: Vec<u8> = (0..h.len() / 2)
        .filter_map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn nflog_rule_delivers_only_the_first_packets_of_each_flow() {
    if !is_root() {
        println!("skipping: needs root (network namespaces, nftables, NFLOG)");
        return;
    }
    if !tool_works("ip", &["netns", "list"]) || !tool_works("nft", &["--version"]) {
        println!("skipping: `ip netns` or `nft` unavailable");
        return;
    }
    let pid = std::process::id();
    let (a, b) = (format!("gfcapA{pid}"), format!("gfcapB{pid}"));
    let (va, vb) = (format!("gfva{pid}"), format!("gfvb{pid}"));
    let mut guard = Namespaces(Vec::new());
    for ns in [&a, &b] {
        run(&["ip", "netns", "add", ns], None);
        guard.0.push(ns.clone());
    }
    run(
        &[
            "ip", "link", "add", &va, "netns", &a, "type", "veth", "peer", "name", &vb, "netns", &b,
        ],
        None,
    );
    run(
        &["ip", "-n", &a, "addr", "add", "198.51.100.1/24", "dev", &va],
        None,
    );
    run(
        &["ip", "-n", &b, "addr", "add", "198.51.100.2/24", "dev", &vb],
        None,
    );
    for (ns, dev) in [(&a, &va), (&b, &vb)] {
        run(&["ip", "-n", ns, "link", "set", dev, "up"], None);
        run(&["ip", "-n", ns, "link", "set", "lo", "up"], None);
    }
    let rules = format!(
        "table inet gftest {{
            chain out {{ type filter hook output priority 0;
                ct direction original ct original packets < {LIMIT} log group {GROUP} snaplen 256
            }}
            chain in {{ type filter hook input priority 0;
                udp sport 53 log group {GROUP} snaplen 256
            }}
        }}\n"
    );
    run(&["ip", "netns", "exec", &a, "nft", "-f", "-"], Some(&rules));

    let dump = example("nflog_dump");
    let traffic = example("nstraffic");
    let mut capture = spawn_in(
        &a,
        &dump,
        &[
            "--group",
            &GROUP.to_string(),
            "--enable-acct",
            "--idle-ms",
            "1500",
            "--max-ms",
            "20000",
        ],
    );
    // wait for READY on stderr
    let mut err = BufReader::new(capture.0.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("read capture stderr");
    assert_eq!(line.trim(), "READY", "nflog_dump did not start");

    let mut answer = spawn_in(&b, &traffic, &["udp-answer", "198.51.100.2:53", "3"]);
    let mut sink = spawn_in(&b, &traffic, &["tcp-sink", "198.51.100.2:8443"]);
    std::thread::sleep(Duration::from_millis(300));
    let t = traffic.to_str().expect("path");
    run(
        &[
            "ip",
            "netns",
            "exec",
            &a,
            t,
            "udp-flows",
            "198.51.100.2:9000",
            "4",
            "10",
        ],
        None,
    );
    let dns = run(
        &["ip", "netns", "exec", &a, t, "dns", "198.51.100.2:53", "3"],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&dns.stdout).lines().count(),
        3,
        "3 DNS answers"
    );
    run(
        &[
            "ip",
            "netns",
            "exec",
            &a,
            t,
            "tcp-send",
            "198.51.100.2:8443",
            "10",
        ],
        None,
    );
    assert!(answer.0.wait().expect("wait").success());
    let sink_out = sink.0.wait_with_output_ref();
    assert!(
        sink_out.contains("T0;T1;T2;T3;T4;T5;T6;T7;T8;T9;"),
        "server got {sink_out:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    while capture.0.try_wait().expect("try_wait").is_none() {
        assert!(Instant::now() < deadline, "nflog_dump did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut capture.0.stdout.take().expect("stdout"), &mut out)
        .expect("read");
    let lines: Vec<&str> = out.lines().collect();
    let stats = lines.last().expect("stats line");
    assert!(stats.starts_with("{\"stats\""), "{stats}");
    assert!(stats.contains("\"conntrack_acct\":true"), "{stats}");
    assert!(stats.contains("\"dropped\":0"), "{stats}");
    let logged: Vec<Logged> = lines[..lines.len() - 1]
        .iter()
        .map(|l| Logged {
            proto: field(l, "proto")
                .unwrap_or_else(|| panic!("undecoded packet: {l}"))
                .to_string(),
            sport: field(l, "sport")
                .and_then(|v| v.parse().ok())
                .expect("sport"),
            dport: field(l, "dport")
                .and_then(|v| v.parse().ok())
                .expect("dport"),
            syn: field(l, "syn") == Some("true"),
            payload: unhex(field(l, "payload_hex").unwrap_or("")),
        })
        .collect();
    println!("{} packets logged:\n{logged:#?}", logged.len());

    // UDP flows to 9000: 4 flows x 10 packets sent, exactly the first LIMIT-1 of each logged
    let mut flows: std::collections::BTreeMap<u16, Vec<String>> = Default::default();
    for p in logged
        .iter()
        .filter(|p| p.proto == "udp" && p.dport == 9000)
    {
        flows.entry(p.sport).or_default().push(p.payload.clone());
    }
    assert_eq!(flows.len(), 4, "{flows:?}");
    for seen in flows.values() {
        let f = &seen[0][..2];
        let want: Vec<String> = (0..LIMIT - 1).map(|s| format!("{f}S{s}")).collect();
        assert_eq!(
            seen, &want,
            "first packets of UDP flow {f}, and no later ones"
        );
    }
    // DNS: each query (its flow's first packet) and each answer (udp sport 53 rule)
    let queries: Vec<_> = logged
        .iter()
        .filter(|p| p.dport == 53)
        .map(|p| p.payload.as_str())
        .collect();
    let answers: Vec<_> = logged
        .iter()
        .filter(|p| p.sport == 53)
        .map(|p| p.payload.as_str())
        .collect();
    assert_eq!(queries, ["Q0", "Q1", "Q2"]);
    assert_eq!(answers, ["ANSWER:Q0", "ANSWER:Q1", "ANSWER:Q2"]);
    // TCP: SYN, ACK, then data up to the limit; the stream continues unlogged
    let tcp: Vec<&Logged> = logged
        .iter()
        .filter(|p| p.proto == "tcp" && p.dport == 8443)
        .collect();
    assert_eq!(tcp.len(), LIMIT - 1, "{tcp:#?}");
    assert!(
        tcp[0].syn && tcp[0].payload.is_empty(),
        "first logged TCP packet is the SYN"
    );
    let data: String = tcp.iter().map(|p| p.payload.as_str()).collect();
    assert!(
        data.starts_with("T0;"),
        "first data segment logged: {data:?}"
    );
    assert!(
        "T0;T1;T2;T3;T4;T5;T6;T7;T8;T9;".starts_with(&data),
        "logged data is a prefix: {data:?}"
    );
    assert!(
        !data.contains("T9;"),
        "late segments must not be logged: {data:?}"
    );
    // nothing from the server side except DNS answers (output chain logs only our own)
    assert!(logged.iter().all(|p| p.sport != 8443 && p.sport != 9000));
}

trait WaitOutput {
    fn wait_with_output_ref(&mut self) -> String;
}

impl WaitOutput for Child {
    fn wait_with_output_ref(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut o) = self.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut o, &mut s);
        }
        let _ = self.wait();
        s
    }
}
