//! Namespace plumbing shared by the root-only capture tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

pub fn tool_works(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// True (after printing why) when the test cannot run here.
pub fn must_skip() -> bool {
    if !is_root() {
        geofence_testkit::skip("needs root (network namespaces, nftables, packet sockets)");
        return true;
    }
    if !tool_works("ip", &["netns", "list"]) || !tool_works("nft", &["--version"]) {
        geofence_testkit::skip("`ip netns` or `nft` unavailable");
        return true;
    }
    false
}

/// Runs a command to completion and panics (with its stderr) if it fails.
pub fn run(args: &[&str], stdin: Option<&str>) -> Output {
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

/// Two namespaces joined by a veth pair: A = 198.51.100.1, B = 198.51.100.2.
/// Dropping it deletes both namespaces (and with them the veth pair and nft tables).
pub struct Pair {
    pub a: String,
    pub b: String,
    pub va: String,
    pub vb: String,
    created: Vec<String>,
}

impl Pair {
    pub fn new(tag: &str) -> Pair {
        let pid = std::process::id();
        let mut p = Pair {
            a: format!("gf{tag}A{pid}"),
            b: format!("gf{tag}B{pid}"),
            va: format!("gf{tag}a{pid}"),
            vb: format!("gf{tag}b{pid}"),
            created: Vec::new(),
        };
        for ns in [p.a.clone(), p.b.clone()] {
            run(&["ip", "netns", "add", &ns], None);
            p.created.push(ns);
        }
        run(
            &[
                "ip", "link", "add", &p.va, "netns", &p.a, "type", "veth", "peer", "name", &p.vb,
                "netns", &p.b,
            ],
            None,
        );
        run(
            &[
                "ip",
                "-n",
                &p.a,
                "addr",
                "add",
                "198.51.100.1/24",
                "dev",
                &p.va,
            ],
            None,
        );
        run(
            &[
                "ip",
                "-n",
                &p.b,
                "addr",
                "add",
                "198.51.100.2/24",
                "dev",
                &p.vb,
            ],
            None,
        );
        for (ns, dev) in [(&p.a, &p.va), (&p.b, &p.vb)] {
            // no IPv6 autoconfiguration chatter (MLD, router solicitations) in the captures
            run(
                &[
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-q",
                    "-w",
                    "net.ipv6.conf.all.disable_ipv6=1",
                ],
                None,
            );
            run(&["ip", "-n", ns, "link", "set", dev, "up"], None);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"], None);
        }
        p
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in &self.created {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A helper process this test started; killed (by handle) on drop.
pub struct Helper(pub Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Helper {
    /// Waits for a `READY` line on stderr.
    pub fn wait_ready(&mut self) {
        let mut err = BufReader::new(self.0.stderr.take().expect("stderr"));
        let mut line = String::new();
        err.read_line(&mut line).expect("read helper stderr");
        assert_eq!(line.trim(), "READY", "helper did not start: {line}");
    }

    /// Waits (bounded) for exit and returns stdout.
    pub fn finish(&mut self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        while self.0.try_wait().expect("try_wait").is_none() {
            assert!(Instant::now() < deadline, "helper did not finish");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut out = String::new();
        if let Some(mut o) = self.0.stdout.take() {
            std::io::Read::read_to_string(&mut o, &mut out).expect("read stdout");
        }
        out
    }
}

/// The helper binaries of this crate (cargo builds them before integration tests).
pub fn nflog_dump() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_geofence-nflog-dump"))
}

pub fn nstraffic() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_geofence-nstraffic"))
}

pub fn afpacket_count() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_geofence-afpacket-count"))
}

pub fn spawn_in(ns: &str, exe: &PathBuf, args: &[&str]) -> Helper {
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

/// Value of `"key":` in a one-line JSON object (string quotes stripped); enough for
/// the flat lines the examples print.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &line[start..];
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    let end = rest.find(['"', ',', '}'])?;
    Some(&rest[..end])
}
