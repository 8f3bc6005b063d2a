//! Network-namespace harness for real-kernel tests: client -> gateway ->
//! server over veth pairs, documentation addresses only, torn down on drop
//! (also when the test panics).
//!
//! ```text
//!  client (c0)              gw (g0 | g1)                     srv (s0)
//!  198.51.100.2/24  ----  198.51.100.1 | 203.0.113.1  ----  203.0.113.10, .20 /24
//!  2001:db8:1::2/64 ----  2001:db8:1::1 | 2001:db8:2::1 ---  2001:db8:2::10, ::20 /64
//! ```
//! The gateway forwards IPv4 and IPv6 and has `nf_conntrack_acct=1`.
//!
//! Like a real gateway, the gateway namespace already has the admin's own
//! firewall when a test starts: [`ADMIN_TABLE`], Debian's stock
//! `/etc/nftables.conf` (`table inet filter` with `input`, `forward` and
//! `output` base chains, policy accept). Every kernel test so runs next to a
//! table that is not ours; [`Topology::new_bare`] leaves it out.
//! Needs root and the `ip` and `nft` tools; [`require_root`] tells tests to skip.

use std::io;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub const CLIENT_V4: &str = "198.51.100.2";
pub const CLIENT_V6: &str = "2001:db8:1::2";
pub const GW_CLIENT_V4: &str = "198.51.100.1";
pub const GW_CLIENT_V6: &str = "2001:db8:1::1";
pub const GW_SRV_V4: &str = "203.0.113.1";
pub const GW_SRV_V6: &str = "2001:db8:2::1";
/// Server addresses: the first of each family is the usual "blocked" one in tests.
pub const SRV_V4: [&str; 2] = ["203.0.113.10", "203.0.113.20"];
pub const SRV_V6: [&str; 2] = ["2001:db8:2::10", "2001:db8:2::20"];

/// The admin's firewall loaded in the gateway namespace by [`Topology::new`]:
/// the ruleset of Debian 12's stock `/etc/nftables.conf` (without its
/// `flush ruleset` line, which would act on the whole namespace).
pub const ADMIN_TABLE: &str = "table inet filter {
    chain input { type filter hook input priority filter; policy accept; }
    chain forward { type filter hook forward priority filter; policy accept; }
    chain output { type filter hook output priority filter; policy accept; }
}";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// True when running as root with `ip` available; otherwise prints why the
/// caller should skip and returns false.
pub fn require_root() -> bool {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if uid.as_deref() != Some("0") {
        crate::skip("needs root (network namespaces)");
        return false;
    }
    if Command::new("ip")
        .arg("-V")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        crate::skip("the `ip` tool (iproute2) is not installed");
        return false;
    }
    if Command::new("nft")
        .arg("--version")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        crate::skip("the `nft` tool (nftables) is not installed");
        return false;
    }
    true
}

/// A three-namespace topology, deleted on drop.
#[derive(Debug)]
pub struct Topology {
    pub client: String,
    pub gw: String,
    pub srv: String,
}

fn run(args: &[&str]) -> io::Result<Output> {
    let (prog, rest) = args
        .split_first()
        .ok_or_else(|| io::Error::other("empty command"))?;
    Command::new(prog).args(rest).stdin(Stdio::null()).output()
}

fn check(args: &[&str]) -> io::Result<()> {
    let o = run(args)?;
    if o.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        )))
    }
}

impl Topology {
    /// Creates namespaces `{prefix}{pid}x{n}{c|g|s}`, wires them up and
    /// loads [`ADMIN_TABLE`] in the gateway.
    pub fn new(prefix: &str) -> io::Result<Topology> {
        let t = Topology::new_bare(prefix)?;
        t.ok(&t.gw, &["nft", ADMIN_TABLE])?;
        Ok(t)
    }

    /// Whether the admin's `table inet filter` is still in the gateway.
    pub fn admin_table_present(&self) -> bool {
        self.exec(&self.gw, &["nft", "list", "table", "inet", "filter"])
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Like [`Topology::new`] without the admin's table.
    pub fn new_bare(prefix: &str) -> io::Result<Topology> {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let base = format!("{prefix}{}x{n}", std::process::id());
        let t = Topology {
            client: format!("{base}c"),
            gw: format!("{base}g"),
            srv: format!("{base}s"),
        };
        // From here on, Drop cleans up whatever was created.
        for ns in [&t.client, &t.gw, &t.srv] {
            check(&["ip", "netns", "add", ns])?;
            t.ok(ns, &["ip", "link", "set", "lo", "up"])?;
            // No duplicate address detection: a tentative link-local address
            // would delay neighbour discovery (and the first IPv6 packets)
            // by about a second after the links come up.
            t.ok(ns, &["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"])?;
            t.ok(ns, &["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"])?;
        }
        check(&[
            "ip", "link", "add", "c0", "netns", &t.client, "type", "veth", "peer", "name", "g0",
            "netns", &t.gw,
        ])?;
        check(&[
            "ip", "link", "add", "g1", "netns", &t.gw, "type", "veth", "peer", "name", "s0",
            "netns", &t.srv,
        ])?;
        let c = &t.client;
        let g = &t.gw;
        let s = &t.srv;
        t.ok(c, &["ip", "addr", "add", "198.51.100.2/24", "dev", "c0"])?;
        t.ok(
            c,
            &[
                "ip",
                "-6",
                "addr",
                "add",
                "2001:db8:1::2/64",
                "dev",
                "c0",
                "nodad",
            ],
        )?;
        t.ok(c, &["ip", "link", "set", "c0", "up"])?;
        t.ok(c, &["ip", "route", "add", "default", "via", GW_CLIENT_V4])?;
        t.ok(g, &["ip", "addr", "add", "198.51.100.1/24", "dev", "g0"])?;
        t.ok(
            g,
            &[
                "ip",
                "-6",
                "addr",
                "add",
                "2001:db8:1::1/64",
                "dev",
                "g0",
                "nodad",
            ],
        )?;
        t.ok(g, &["ip", "addr", "add", "203.0.113.1/24", "dev", "g1"])?;
        t.ok(
            g,
            &[
                "ip",
                "-6",
                "addr",
                "add",
                "2001:db8:2::1/64",
                "dev",
                "g1",
                "nodad",
            ],
        )?;
        t.ok(g, &["ip", "link", "set", "g0", "up"])?;
        t.ok(g, &["ip", "link", "set", "g1", "up"])?;
        t.ok(g, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        t.ok(g, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])?;
        // Needed for `ct original packets` (platform notes §3); best effort
        // because conntrack may not be loaded yet in this namespace.
        let _ = t.exec(g, &["sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1"]);
        for a in SRV_V4 {
            t.ok(s, &["ip", "addr", "add", &format!("{a}/24"), "dev", "s0"])?;
        }
        for a in SRV_V6 {
            t.ok(
                s,
                &[
                    "ip",
                    "-6",
                    "addr",
                    "add",
                    &format!("{a}/64"),
                    "dev",
                    "s0",
                    "nodad",
                ],
            )?;
        }
        t.ok(s, &["ip", "link", "set", "s0", "up"])?;
        t.ok(s, &["ip", "route", "add", "default", "via", GW_SRV_V4])?;
        t.ok(
            c,
            &["ip", "-6", "route", "add", "default", "via", GW_CLIENT_V6],
        )?;
        t.ok(
            s,
            &["ip", "-6", "route", "add", "default", "via", GW_SRV_V6],
        )?;
        // Wait until both families forward end to end (neighbour discovery).
        for dst in [SRV_V4[1], SRV_V6[1]] {
            let mut ready = false;
            for _ in 0..20 {
                if t.tcp_reachable(&t.client, dst, 9)? {
                    ready = true;
                    break;
                }
            }
            if !ready {
                return Err(io::Error::other(format!(
                    "{dst} not reachable from the client namespace"
                )));
            }
        }
        Ok(t)
    }

    /// Runs `cmd` inside namespace `ns` and returns its output.
    pub fn exec(&self, ns: &str, cmd: &[&str]) -> io::Result<Output> {
        let mut args = vec!["ip", "netns", "exec", ns];
        args.extend_from_slice(cmd);
        run(&args)
    }

    /// Runs `cmd` inside `ns`; error (with stderr) unless it exits 0.
    pub fn ok(&self, ns: &str, cmd: &[&str]) -> io::Result<()> {
        let mut args = vec!["ip", "netns", "exec", ns];
        args.extend_from_slice(cmd);
        check(&args)
    }

    /// Runs `cmd` inside `ns` and returns its stdout as text (any exit code).
    pub fn stdout(&self, ns: &str, cmd: &[&str]) -> io::Result<String> {
        Ok(String::from_utf8_lossy(&self.exec(ns, cmd)?.stdout).into_owned())
    }

    /// Whether a TCP connection from `ns` to `addr:port` reaches a host: a
    /// completed handshake or a refusal (RST from a closed port) both count,
    /// a timeout or an ICMP error does not. Uses bash's `/dev/tcp`, so no
    /// extra tool is needed.
    pub fn tcp_reachable(&self, ns: &str, addr: &str, port: u16) -> io::Result<bool> {
        let script = format!("exec 3<>/dev/tcp/{addr}/{port}");
        let o = self.exec(ns, &["timeout", "3", "bash", "-c", &script])?;
        let err = String::from_utf8_lossy(&o.stderr);
        Ok(o.status.success() || err.contains("refused"))
    }

    /// Starts `cmd` inside `ns` in the background with piped stdout.
    pub fn spawn(&self, ns: &str, cmd: &[&str]) -> io::Result<Child> {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth ends (and so the peers).
        for ns in [&self.client, &self.gw, &self.srv] {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_forwards_and_cleans_up() {
        if !require_root() {
            return;
        }
        let names;
        {
            let t = Topology::new("gftk").expect("topology");
            names = [t.client.clone(), t.gw.clone(), t.srv.clone()];
            assert!(t.admin_table_present(), "the admin's table is loaded");
            let chains = t
                .stdout(&t.gw, &["nft", "list", "chains", "inet"])
                .expect("nft");
            for c in ["input", "forward", "output"] {
                assert!(chains.contains(&format!("chain {c} ")), "{chains}");
            }
            for dst in [SRV_V4[0], SRV_V4[1], SRV_V6[0], SRV_V6[1]] {
                assert!(
                    t.tcp_reachable(&t.client, dst, 9).expect("bash"),
                    "{dst} unreachable through gw"
                );
            }
            // An address nobody has is not reachable (the check can fail).
            assert!(!t.tcp_reachable(&t.client, "203.0.113.99", 9).expect("bash"));
        }
        let list = String::from_utf8_lossy(&run(&["ip", "netns", "list"]).expect("list").stdout)
            .into_owned();
        for n in names {
            assert!(!list.split_whitespace().any(|w| w == n), "{n} left behind");
        }
    }
}
