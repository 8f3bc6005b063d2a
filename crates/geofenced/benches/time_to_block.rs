//! Time to block and leak of the release `geofenced`, on a real kernel.
//!
//! ```text
//! cargo bench -p geofenced --bench time_to_block            # 3 runs
//! cargo bench -p geofenced --bench time_to_block -- --runs 1 --flows 2000 --leak 50
//! ```
//!
//! Each run builds fresh namespaces (client -> gateway -> server, see
//! `geofence_testkit::netns`), writes a generated .mmdb (203.0.113.64/26 and
//! 203.0.113.128/25 in CN, 203.0.113.20 in DE) and a policy that blocks
//! conferencing to CN, starts the daemon in the gateway namespace and waits
//! for its "geofenced started" alert. Then:
//!
//! * **Burst**: one sender in the client namespace (this executable re-run
//!   under `ip netns exec`, raw IPv4 socket) sends the first packet (a Zoom
//!   SFU hello on UDP 8801) of `--flows` new flows back to back, each from a
//!   distinct (client address, server address) pair, so that every flow
//!   needs its own kernel element. Each flow sends a second packet after a
//!   delay taken from a ladder (0.1 ms .. 20 ms). Reported: how many flows
//!   got a block alert, p50/p99/max of the daemon's `enforced_within_us`,
//!   and, measured from outside, for each delay the share of second packets
//!   that still reached the server (a counter per flow in the server
//!   namespace's prerouting hook): the survival curve of "not yet blocked"
//!   measured from the client's send time. Also daemon CPU time during the
//!   burst and netlink socket drops in the gateway namespace.
//! * **Leak**: `--leak` flows each of UDP and TCP, without DNS, right after
//!   a DNS answer, and 2 ms after a DNS answer (a DNS server in the server
//!   namespace answers `nA-B-C-D.zoom.us` with A.B.C.D, a CN address).
//!   Packets of each flow that reach the server are counted by the same
//!   per-flow counters.
//!
//! Environment: `GF_BENCH_DAEMON` runs another daemon binary (A/B),
//! `GF_BENCH_DAEMON_WRAP` prefixes it with an exec-ing command such as
//! `chrt -f 10`, `GF_BENCH_KEEP=1` keeps the run directories in /tmp.
//!
//! Needs root, `ip` and `nft`; skips with a message otherwise. Namespaces,
//! processes and the temporary directory are removed on every path (drop
//! guards, also when a step panics).

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use geofence_testkit::mmdb::geoip2_country;
use geofence_testkit::netns::{require_root, Topology};
use geofence_testkit::wire;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const DAEMON: &str = env!("CARGO_BIN_EXE_geofenced");

/// The daemon under test: `GF_BENCH_DAEMON` (e.g. an older build, for an
/// A/B comparison) or the release build cargo made for this bench.
/// A command that execs the daemon with another scheduling class, from
/// `GF_BENCH_DAEMON_WRAP` (e.g. `chrt -f 10` or `nice -n -10`); it must
/// exec so that the child's pid stays the daemon's.
fn daemon_wrap() -> Vec<String> {
    std::env::var("GF_BENCH_DAEMON_WRAP")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn daemon_path() -> String {
    std::env::var("GF_BENCH_DAEMON").unwrap_or_else(|_| DAEMON.to_string())
}
/// Second-packet delays of the burst, microseconds.
const LADDER_US: [u64; 10] = [100, 250, 500, 1000, 1500, 2000, 3000, 5000, 10_000, 20_000];
const DNS_SERVER: &str = "203.0.113.20";
const MEDIA_PORT: u16 = 8801;
const TLS_PORT: u16 = 443;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------- packets

fn csum_add(mut sum: u32, b: &[u8]) -> u32 {
    for c in b.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += u32::from(w);
    }
    sum
}

fn csum_fold(mut sum: u32) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 + UDP datagram for a raw (`IP_HDRINCL`) socket.
fn ipv4_udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let ulen = 8 + payload.len();
    let tlen = 20 + ulen;
    let mut p = Vec::with_capacity(tlen);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(tlen as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let hsum = csum_fold(csum_add(0, &p));
    p[10..12].copy_from_slice(&hsum.to_be_bytes());
    let mut udp = Vec::with_capacity(ulen);
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&(ulen as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut s = csum_add(0, &src.octets());
    s = csum_add(s, &dst.octets());
    s += 17 + ulen as u32;
    s = csum_add(s, &udp);
    let c = match csum_fold(s) {
        0 => 0xFFFF,
        c => c,
    };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&udp);
    p
}

// ---------------------------------------------------------------- DNS

/// Answers the bench's names: `nA-B-C-D.zoom.us` resolves to A.B.C.D.
fn dns_answer(q: &[u8]) -> Option<Vec<u8>> {
    let (id, name, qtype) = wire::dns_question(q)?;
    let addrs: Vec<IpAddr> = name_addr(&name)
        .filter(|_| qtype == 1)
        .map(IpAddr::V4)
        .into_iter()
        .collect();
    Some(wire::dns_response(
        id,
        &name,
        qtype,
        &addrs,
        60,
        addrs.is_empty(),
    ))
}

fn first_a(r: &[u8]) -> Option<Ipv4Addr> {
    wire::dns_addresses(r).into_iter().find_map(|a| match a {
        IpAddr::V4(v) => Some(v),
        IpAddr::V6(_) => None,
    })
}

/// `nA-B-C-D.zoom.us` -> A.B.C.D
fn name_addr(name: &str) -> Option<Ipv4Addr> {
    let label = name.strip_suffix(".zoom.us")?.strip_prefix('n')?;
    label.replace('-', ".").parse().ok()
}

// ---------------------------------------------------------------- helper modes

/// `--server SECS`: DNS on 203.0.113.20:53 and a TCP sink on :443 (every
/// address the namespace owns), in the server namespace.
fn server_mode(secs: u64) -> Result<(), String> {
    let dns = UdpSocket::bind((DNS_SERVER, 53)).map_err(|e| e.to_string())?;
    dns.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    let tcp = TcpListener::bind(("0.0.0.0", TLS_PORT)).map_err(|e| e.to_string())?;
    tcp.set_nonblocking(true).map_err(|e| e.to_string())?;
    std::thread::spawn(move || loop {
        match tcp.accept() {
            Ok((mut s, _)) => {
                std::thread::spawn(move || {
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                    let mut b = [0u8; 4096];
                    while matches!(s.read(&mut b), Ok(n) if n > 0) {}
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    });
    println!("listening");
    let _ = std::io::stdout().flush();
    let end = Instant::now() + Duration::from_secs(secs);
    let mut buf = [0u8; 1500];
    while Instant::now() < end {
        if let Ok((n, from)) = dns.recv_from(&mut buf) {
            if let Some(r) = buf.get(..n).and_then(dns_answer) {
                let _ = dns.send_to(&r, from);
            }
        }
    }
    Ok(())
}

fn raw_socket() -> Result<Socket, String> {
    // IPPROTO_RAW implies IP_HDRINCL.
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255)))
        .map_err(|e| format!("raw socket: {e}"))?;
    let _ = s.set_send_buffer_size(4 << 20);
    Ok(s)
}

/// `--sender SPEC OUT`: SPEC lines `src sport dst dport delay_us`; sends the
/// hello of every flow back to back and its second packet `delay_us` later.
/// OUT lines: `index t_first_ns t_second_ns`.
fn sender_mode(spec: &Path, out: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(spec).map_err(|e| e.to_string())?;
    let mut flows = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let [src, sport, dst, dport, delay] = f[..] else {
            return Err(format!("bad spec line {l:?}"));
        };
        let p = |s: &str| s.parse::<u64>().map_err(|e| format!("{s}: {e}"));
        flows.push((
            src.parse::<Ipv4Addr>().map_err(|e| e.to_string())?,
            p(sport)? as u16,
            dst.parse::<Ipv4Addr>().map_err(|e| e.to_string())?,
            p(dport)? as u16,
            p(delay)?,
        ));
    }
    let hello: Vec<Vec<u8>> = flows
        .iter()
        .map(|&(s, sp, d, dp, _)| ipv4_udp(s, sp, d, dp, &wire::zoom_sfu_hello()))
        .collect();
    let second: Vec<Vec<u8>> = flows
        .iter()
        .map(|&(s, sp, d, dp, _)| ipv4_udp(s, sp, d, dp, &wire::zoom_sfu_audio(1)))
        .collect();
    let addrs: Vec<SockAddr> = flows
        .iter()
        .map(|&(_, _, d, _, _)| SockAddr::from(SocketAddrV4::new(d, 0)))
        .collect();
    let sock = raw_socket()?;
    let mut t_first = vec![0u64; flows.len()];
    let mut t_second = vec![0u64; flows.len()];
    let mut due: BinaryHeap<std::cmp::Reverse<(Instant, usize)>> = BinaryHeap::new();
    let mut next = 0;
    let mut errors = 0u64;
    let start = Instant::now();
    loop {
        let now = Instant::now();
        while let Some(std::cmp::Reverse((t, i))) = due.peek().copied() {
            if t > now {
                break;
            }
            due.pop();
            t_second[i] = now_ns();
            if sock.send_to(&second[i], &addrs[i]).is_err() {
                errors += 1;
            }
        }
        if next < flows.len() {
            t_first[next] = now_ns();
            if sock.send_to(&hello[next], &addrs[next]).is_err() {
                errors += 1;
            }
            if flows[next].4 > 0 {
                due.push(std::cmp::Reverse((
                    Instant::now() + Duration::from_micros(flows[next].4),
                    next,
                )));
            }
            next += 1;
        } else if due.is_empty() {
            break;
        } else {
            std::hint::spin_loop();
        }
    }
    let mut o = String::new();
    for i in 0..flows.len() {
        o.push_str(&format!("{i} {} {}\n", t_first[i], t_second[i]));
    }
    std::fs::write(out, o).map_err(|e| e.to_string())?;
    println!(
        "sent {} flows in {:.1} ms, {errors} send errors",
        flows.len(),
        start.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

/// One leak-test flow, run in the client namespace. Returns
/// `(local port, server address, outcome)`.
fn leak_flow(
    src: Ipv4Addr,
    proto: &str,
    dns_gap: Option<Duration>,
    dst: Ipv4Addr,
) -> (u16, Ipv4Addr, String) {
    let mut server = dst;
    if let Some(gap) = dns_gap {
        let name = format!("n{}.zoom.us", dst.to_string().replace('.', "-"));
        let answered = (|| {
            let s = UdpSocket::bind((src, 0)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            s.send_to(&wire::dns_query(0x4a21, &name, 1), (DNS_SERVER, 53))
                .ok()?;
            let mut b = [0u8; 1500];
            let (n, _) = s.recv_from(&mut b).ok()?;
            first_a(b.get(..n)?)
        })();
        match answered {
            Some(a) => server = a,
            None => return (0, dst, "no-dns-answer".into()),
        }
        // Connect right after the answer, as a client would (gap 0), or
        // after a gap standing for a LAN round trip.
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
    }
    if proto == "udp" {
        let Ok(s) = UdpSocket::bind((src, 0)) else {
            return (0, server, "bind-failed".into());
        };
        let port = s.local_addr().map(|a| a.port()).unwrap_or(0);
        let mut sent = 0;
        for i in 0..5u16 {
            let p = if i == 0 {
                wire::zoom_sfu_hello()
            } else {
                wire::zoom_sfu_audio(i)
            };
            if s.send_to(&p, (server, MEDIA_PORT)).is_ok() {
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        return (port, server, format!("sent{sent}"));
    }
    let sock = match Socket::new(Domain::IPV4, Type::STREAM, None) {
        Ok(s) => s,
        Err(_) => return (0, server, "socket-failed".into()),
    };
    if sock
        .bind(&SockAddr::from(SocketAddrV4::new(src, 0)))
        .is_err()
    {
        return (0, server, "bind-failed".into());
    }
    let port = sock
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.port())
        .unwrap_or(0);
    let to = SockAddr::from(SocketAddrV4::new(server, TLS_PORT));
    let outcome = match sock.connect_timeout(&to, Duration::from_secs(1)) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => "refused".to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => "timeout".to_string(),
        Err(e) => format!("error:{:?}", e.kind()),
        Ok(()) => {
            let mut s: std::net::TcpStream = sock.into();
            let a = s.write_all(&wire::client_hello("zoom.us")).is_ok();
            std::thread::sleep(Duration::from_millis(50));
            let b = s.write_all(b"ping\n").is_ok();
            std::thread::sleep(Duration::from_millis(50));
            format!("connected,hello_ok={a},ping_ok={b}")
        }
    };
    (port, server, outcome)
}

/// `--leak-client SPEC OUT`: SPEC lines `dns|dns2|nodns udp|tcp src dst` (dns2:
/// connect 2 ms after the answer); OUT lines `mode proto src sport dst
/// outcome`. Eight flows at a time.
fn leak_mode(spec: &Path, out: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(spec).map_err(|e| e.to_string())?;
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let chunks: Vec<Vec<String>> = lines
        .chunks(lines.len().div_ceil(8).max(1))
        .map(<[String]>::to_vec)
        .collect();
    let handles: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            std::thread::spawn(move || {
                let mut out = Vec::new();
                for l in chunk {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    let [mode, proto, src, dst] = f[..] else {
                        continue;
                    };
                    let (Ok(src), Ok(dst)) = (src.parse(), dst.parse()) else {
                        continue;
                    };
                    let (port, server, outcome) = leak_flow(
                        src,
                        proto,
                        match mode {
                            "dns" => Some(Duration::ZERO),
                            "dns2" => Some(Duration::from_millis(2)),
                            _ => None,
                        },
                        dst,
                    );
                    out.push(format!("{mode} {proto} {src} {port} {server} {outcome}"));
                    std::thread::sleep(Duration::from_millis(5));
                }
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().map_err(|_| "leak thread panicked")?);
    }
    std::fs::write(out, all.join("\n") + "\n").map_err(|e| e.to_string())
}

// ---------------------------------------------------------------- orchestration

/// Kills and reaps a child on drop.
struct Proc(Option<Child>);

impl Proc {
    fn id(&self) -> u32 {
        self.0.as_ref().map(Child::id).unwrap_or(0)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Removes the run's directory on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("GF_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[derive(Clone, Copy)]
struct Opts {
    flows: usize,
    leak: usize,
}

fn config_text(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"
[daemon]
mode = "gateway"
enforce = true
capture = "nflog"
nflog_group = 17
alert_log = "{d}/alerts.jsonl"
state_dir = "{d}/state"
dns_ttl_floor_secs = 300
dynamic_timeout_secs = 600

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

[default]
action = "allow"
"#
    )
}

/// Per-flow packet counters at the server's prerouting hook; UDP to the
/// CN pools is dropped there after counting (no socket, no ICMP replies).
const SERVER_NFT: &str = r#"
table inet gfbench {
  counter media { }
  counter leak { }
  set flows { type ipv4_addr . inet_service . ipv4_addr . inet_service; flags dynamic; size 131072; counter; }
  chain pre {
    type filter hook prerouting priority -300;
    ip saddr 198.51.100.0/24 udp dport 8801 counter name media
    ip saddr 198.51.100.10-198.51.100.69 counter name leak
    ip saddr 198.51.100.0/24 update @flows { ip saddr . th sport . ip daddr . th dport }
    ip daddr { 203.0.113.64/26, 203.0.113.128/25 } meta l4proto udp drop
  }
}
"#;

/// Per leak case: packets-at-server histogram, client outcomes, block latencies.
type LeakStats = (BTreeMap<u64, u64>, BTreeMap<String, u64>, Vec<u64>);

type FlowKey = (Ipv4Addr, u16, Ipv4Addr, u16);

fn server_counts(t: &Topology) -> HashMap<FlowKey, u64> {
    let mut m = HashMap::new();
    let Ok(o) = t.exec(
        &t.srv,
        &["nft", "-j", "list", "set", "inet", "gfbench", "flows"],
    ) else {
        return m;
    };
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    let elems = v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["set"]["elem"].as_array())
        .flatten();
    for e in elems {
        let c = &e["elem"]["val"]["concat"];
        let (Some(s), Some(sp), Some(d), Some(dp)) = (
            c[0].as_str().and_then(|x| x.parse().ok()),
            c[1].as_u64(),
            c[2].as_str().and_then(|x| x.parse().ok()),
            c[3].as_u64(),
        ) else {
            continue;
        };
        let n = e["elem"]["counter"]["packets"].as_u64().unwrap_or(0);
        m.insert((s, sp as u16, d, dp as u16), n);
    }
    m
}

/// Packets counted by a named counter in the server namespace.
fn named_counter(t: &Topology, name: &str) -> u64 {
    let o = t
        .stdout(
            &t.srv,
            &["nft", "-j", "list", "counter", "inet", "gfbench", name],
        )
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&o).unwrap_or_default();
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["counter"]["packets"].as_u64())
        .sum()
}

/// (rx packets, rx dropped, tx packets, tx dropped) of a link.
fn link_stats(t: &Topology, ns: &str, dev: &str) -> [u64; 4] {
    let o = t
        .stdout(ns, &["ip", "-j", "-s", "link", "show", "dev", dev])
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&o).unwrap_or_default();
    let s = &v[0]["stats64"];
    let g = |d: &str, k: &str| s[d][k].as_u64().unwrap_or(0);
    [
        g("rx", "packets"),
        g("rx", "dropped"),
        g("tx", "packets"),
        g("tx", "dropped"),
    ]
}

/// Conntrack insert_failed + drop + early_drop summed over CPUs (hex table).
fn conntrack_drops(t: &Topology) -> u64 {
    let o = t
        .stdout(&t.gw, &["cat", "/proc/net/stat/nf_conntrack"])
        .unwrap_or_default();
    let mut lines = o.lines();
    let head: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let cols: Vec<usize> = head
        .iter()
        .enumerate()
        .filter(|(_, h)| matches!(**h, "insert_failed" | "drop" | "early_drop"))
        .map(|(i, _)| i)
        .collect();
    lines
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            cols.iter()
                .filter_map(|&i| u64::from_str_radix(f.get(i)?, 16).ok())
                .sum::<u64>()
        })
        .sum()
}

fn path_stats(t: &Topology) -> String {
    let c0 = link_stats(t, &t.client, "c0");
    let g0 = link_stats(t, &t.gw, "g0");
    let g1 = link_stats(t, &t.gw, "g1");
    let s0 = link_stats(t, &t.srv, "s0");
    format!(
        "c0 tx {} (dropped {}), g0 rx {} (dropped {}), g1 tx {} (dropped {}), s0 rx {} (dropped {}), gw conntrack insert_failed+drop+early_drop {}",
        c0[2], c0[3], g0[0], g0[1], g1[2], g1[3], s0[0], s0[1], conntrack_drops(t)
    )
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // fields 14 and 15 of stat (utime, stime) are 12 and 13 after ") S"
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Sum of the Drops column of netlink sockets in a namespace.
fn netlink_drops(t: &Topology) -> u64 {
    t.stdout(&t.gw, &["cat", "/proc/net/netlink"])
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(8)?.parse::<u64>().ok())
        .sum()
}

fn udp_snmp(t: &Topology, ns: &str) -> String {
    let s = t.stdout(ns, &["cat", "/proc/net/snmp"]).unwrap_or_default();
    let udp: Vec<&str> = s.lines().filter(|l| l.starts_with("Udp:")).collect();
    match udp[..] {
        [h, v] => h
            .split_whitespace()
            .zip(v.split_whitespace())
            .filter(|(k, _)| matches!(*k, "InErrors" | "RcvbufErrors"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

#[derive(Default, Clone)]
struct BlockAlert {
    us: u64,
    ts_ns: u64,
}

/// RFC 3339 `YYYY-MM-DDTHH:MM:SS.ffffffZ` to Unix ns.
fn parse_ts(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let n = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 20 || b.last() != Some(&b'Z') {
        return None;
    }
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, se) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let frac = s.get(20..s.len() - 1).unwrap_or("");
    let mut ns: i64 = 0;
    for (i, c) in frac.chars().take(9).enumerate() {
        ns += i64::from(c.to_digit(10)?) * 10i64.pow(8 - i as u32);
    }
    // days from civil (Howard Hinnant)
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(((days * 24 + h) * 60 + mi) * 60 + se)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(ns as u64)
}

fn block_alerts(dir: &Path) -> HashMap<(Ipv4Addr, Ipv4Addr, &'static str), BlockAlert> {
    let text = std::fs::read_to_string(dir.join("alerts.jsonl")).unwrap_or_default();
    let mut m = HashMap::new();
    for l in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
            continue;
        };
        if v["action"] != "block" {
            continue;
        }
        let kind: &'static str = match v["event_type"].as_str() {
            Some("flow") => "flow",
            Some("dns") => "dns",
            _ => continue,
        };
        let (Some(s), Some(d)) = (
            v["src_ip"].as_str().and_then(|x| x.parse().ok()),
            v["dest_ip"].as_str().and_then(|x| x.parse().ok()),
        ) else {
            continue;
        };
        let Some(us) = v["enforced_within_us"].as_u64() else {
            continue;
        };
        let ts_ns = v["timestamp"].as_str().and_then(parse_ts).unwrap_or(0);
        m.entry((s, d, kind)).or_insert(BlockAlert { us, ts_ns });
    }
    m
}

fn pct(v: &mut [u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn client_pool(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 100 + (i % 100) as u8)
}

fn server_pool(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, 113, 128 + (i % 100) as u8)
}

fn self_exe() -> String {
    std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
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

/// Deletes namespaces (and the processes in them) and run directories of
/// earlier runs of this bench that were killed before their drop guards ran
/// (Ctrl-C, SIGKILL): names `gftb{pid}x...` whose pid is gone.
fn remove_stale_namespaces() {
    let dead = |pid: &str| {
        !pid.is_empty()
            && pid.chars().all(|c| c.is_ascii_digit())
            && !Path::new(&format!("/proc/{pid}")).exists()
    };
    // Their run directories (`gf-ttb-{pid}-{run}`) too.
    if let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let pid = n
                .strip_prefix("gf-ttb-")
                .and_then(|r| r.split_once('-'))
                .map(|(p, _)| p.to_string());
            if pid.is_some_and(|p| dead(&p)) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let Ok(o) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for name in String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        let Some(pid) = name
            .strip_prefix("gftb")
            .and_then(|r| r.split_once('x'))
            .map(|(p, _)| p)
        else {
            continue;
        };
        if dead(pid) {
            println!("removing namespace {name} left by an interrupted run");
            // Processes of that run (daemon, server) still inside it.
            if let Ok(p) = Command::new("ip").args(["netns", "pids", name]).output() {
                for pid in String::from_utf8_lossy(&p.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

fn run_once(run: usize, o: Opts) -> Result<String, String> {
    let t = Topology::new("gftb").map_err(|e| format!("namespaces: {e}"))?;
    let dir = TempDir(std::env::temp_dir().join(format!("gf-ttb-{}-{run}", std::process::id())));
    std::fs::create_dir_all(&dir.0).map_err(|e| e.to_string())?;
    let d = &dir.0;
    let sh = |ns: &str, args: &[&str]| t.ok(ns, args).map_err(|e| e.to_string());
    // 100 extra client addresses for the burst, 40 for the leak test.
    for i in (10..70).chain(100..200) {
        sh(
            &t.client,
            &[
                "ip",
                "addr",
                "add",
                &format!("198.51.100.{i}/24"),
                "dev",
                "c0",
            ],
        )?;
    }
    // The server namespace owns the CN pools (AnyIP: local routes on lo).
    for r in ["203.0.113.64/26", "203.0.113.128/25"] {
        sh(&t.srv, &["ip", "route", "add", "local", r, "dev", "lo"])?;
    }
    let nft_file = d.join("server.nft");
    std::fs::write(&nft_file, SERVER_NFT).map_err(|e| e.to_string())?;
    sh(&t.srv, &["nft", "-f", &nft_file.to_string_lossy()])?;
    geoip2_country(&[
        ("203.0.113.64/26", "CN", None),
        ("203.0.113.128/25", "CN", None),
        ("203.0.113.20/32", "DE", None),
    ])
    .write(&d.join("geo.mmdb"))
    .map_err(|e| e.to_string())?;
    let config = d.join("geofence.toml");
    std::fs::write(&config, config_text(d)).map_err(|e| e.to_string())?;

    let exe = self_exe();
    let mut server = t
        .spawn(&t.srv, &[&exe, "--server", "600"])
        .map_err(|e| e.to_string())?;
    if let Some(out) = server.stdout.as_mut() {
        let mut b = [0u8; 10];
        let _ = out.read(&mut b);
    }
    let _server = Proc(Some(server));

    let daemon = Proc(Some(
        Command::new("ip")
            .args(["netns", "exec", &t.gw])
            .args(daemon_wrap())
            .args([&daemon_path(), "--config"])
            .arg(&config)
            .args(["--log-format", "text"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("daemon.log")).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("start geofenced: {e}"))?,
    ));
    let alerts_path = d.join("alerts.jsonl");
    let alerts_text = || std::fs::read_to_string(&alerts_path).unwrap_or_default();
    wait_for("geofenced started", 20, || {
        alerts_text().contains("geofenced started")
    })
    .map_err(|e| {
        format!(
            "{e}\n{}",
            std::fs::read_to_string(d.join("daemon.log")).unwrap_or_default()
        )
    })?;
    let pid = daemon.id();

    // Warm-up: resolve the gateway's neighbours for every server address
    // (plain UDP to port 9: allowed, not conferencing).
    let mut warm = String::new();
    for i in 0..100 {
        warm.push_str(&format!(
            "{} {} {} 9 0\n",
            client_pool(i),
            40000,
            server_pool(i)
        ));
    }
    for i in 0..20usize {
        warm.push_str(&format!("198.51.100.10 40001 203.0.113.{} 9 0\n", 64 + i));
    }
    std::fs::write(d.join("warm.spec"), warm).map_err(|e| e.to_string())?;
    let wspec = d.join("warm.spec").to_string_lossy().into_owned();
    let wout = d.join("warm.out").to_string_lossy().into_owned();
    sh(&t.client, &[&exe, "--sender", &wspec, &wout])?;
    std::thread::sleep(Duration::from_millis(500));

    // ---- burst
    let mut spec = String::new();
    let mut flows = Vec::with_capacity(o.flows);
    for i in 0..o.flows {
        // pair (client i%100, server i/100) distinct for i < 10,000
        let c = client_pool(i);
        let s = server_pool(i / 100);
        let sport = 20000 + (i % 40000) as u16;
        let delay = LADDER_US[i % LADDER_US.len()];
        spec.push_str(&format!("{c} {sport} {s} {MEDIA_PORT} {delay}\n"));
        flows.push((c, sport, s, delay));
    }
    std::fs::write(d.join("burst.spec"), spec).map_err(|e| e.to_string())?;
    // The burst's per-flow counters exist before the burst: inserting
    // thousands of elements from the packet path at this rate loses some
    // (seen: a few thousand of 10,000), updating existing ones does not.
    let mut pre = String::new();
    for chunk in flows.chunks(500) {
        let keys: Vec<String> = chunk
            .iter()
            .map(|(c, sp, s, _)| format!("{c} . {sp} . {s} . {MEDIA_PORT}"))
            .collect();
        pre.push_str(&format!(
            "add element inet gfbench flows {{ {} }}\n",
            keys.join(", ")
        ));
    }
    let pre_file = d.join("burst-flows.nft");
    std::fs::write(&pre_file, pre).map_err(|e| e.to_string())?;
    sh(&t.srv, &["nft", "-f", &pre_file.to_string_lossy()])?;
    let bspec = d.join("burst.spec").to_string_lossy().into_owned();
    let bout = d.join("burst.out").to_string_lossy().into_owned();
    let load0 = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let drops0 = netlink_drops(&t);
    let path0 = path_stats(&t);
    let cpu0 = cpu_ticks(pid).unwrap_or(0);
    let wall0 = Instant::now();
    let sent = t
        .stdout(&t.client, &[&exe, "--sender", &bspec, &bout])
        .map_err(|e| e.to_string())?;
    let is_burst = |s: &Ipv4Addr, dd: &Ipv4Addr| s.octets()[3] >= 100 && dd.octets()[3] >= 128;
    let count_blocks = || {
        block_alerts(d)
            .keys()
            .filter(|(s, dd, k)| *k == "flow" && is_burst(s, dd))
            .count()
    };
    let _ = wait_for("all burst blocks", 30, || count_blocks() >= o.flows);
    // settle: no new block for 1 s
    let mut last = count_blocks();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let n = count_blocks();
        if n == last {
            break;
        }
        last = n;
    }
    let wall = wall0.elapsed();
    let cpu1 = cpu_ticks(pid).unwrap_or(0);
    let drops1 = netlink_drops(&t);
    let path1 = path_stats(&t);
    let alerts = block_alerts(d);
    let counts = server_counts(&t);
    let media_total = named_counter(&t, "media");
    let media_flows: u64 = counts
        .iter()
        .filter(|(k, _)| k.3 == MEDIA_PORT)
        .map(|(_, n)| n)
        .sum();
    let times: Vec<(u64, u64)> = std::fs::read_to_string(&bout)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            Some((*f.get(1)?, *f.get(2)?))
        })
        .collect();

    let mut lat = Vec::new();
    let mut to_alert = Vec::new();
    // Second packets binned by the delay they were really sent at
    // (the sender can be late under load): (flows, passed).
    let edges_us: [u64; 10] = [
        250,
        500,
        1000,
        1500,
        2000,
        3000,
        5000,
        10_000,
        20_000,
        u64::MAX,
    ];
    let mut bins = [(0u64, 0u64); 10];
    let mut missing = 0u64;
    let mut unblocked = 0u64;
    for (i, &(c, sport, s, _)) in flows.iter().enumerate() {
        let a = alerts.get(&(c, s, "flow"));
        if let Some(a) = a {
            lat.push(a.us);
        } else {
            unblocked += 1;
        }
        let (t1, t2) = times.get(i).copied().unwrap_or((0, 0));
        if let Some(a) = a.filter(|a| a.ts_ns > 0 && t1 > 0) {
            to_alert.push(a.ts_ns.saturating_sub(t1) / 1000);
        }
        let n = counts.get(&(c, sport, s, MEDIA_PORT)).copied().unwrap_or(0);
        if n == 0 {
            missing += 1;
            continue;
        }
        if t2 <= t1 || t1 == 0 {
            continue;
        }
        let d = (t2 - t1) / 1000;
        let b = edges_us.iter().position(|&e| d < e).unwrap_or(9);
        bins[b].0 += 1;
        if n >= 2 {
            bins[b].1 += 1;
        }
    }
    let blocks = lat.len();
    let (p50, p99, max) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99), pct(&mut lat, 1.0));
    let (a50, a99) = (pct(&mut to_alert, 0.5), pct(&mut to_alert, 0.99));
    let ticks_per_s = 100.0; // USER_HZ
    let cpu_s = (cpu1.saturating_sub(cpu0)) as f64 / ticks_per_s;
    let mut r = String::new();
    r.push_str(&format!(
        "## run {run}\n\nload before the burst: {load0}\nsender: {}\n",
        sent.trim()
    ));
    r.push_str(&format!(
        "burst: {} flows, {blocks} got a block alert, {unblocked} did not\n",
        o.flows
    ));
    r.push_str(&format!(
        "enforced_within_us (daemon): p50 {p50} us, p99 {p99} us, max {max} us\n"
    ));
    r.push_str(&format!(
        "client send -> daemon decision (the alert's timestamp, taken when the pipeline decides, before the kernel add): p50 {a50} us, p99 {a99} us\n"
    ));
    r.push_str(&format!(
        "daemon CPU during the burst window ({:.1} s incl. 1 s settle): {cpu_s:.2} s; netlink drops in gw ns: {} -> {}\n",
        wall.as_secs_f64(),
        drops0,
        drops1
    ));
    r.push_str(&format!(
        "server: {media_total} packets to UDP 8801 arrived (rule counter), {media_flows} in the per-flow counters, {} per-flow entries; UDP {}\n",
        counts.len(),
        udp_snmp(&t, &t.srv)
    ));
    r.push_str(&format!("path before: {path0}\npath after:  {path1}\n"));
    r.push_str(&format!(
        "second packet of a flow, sent D after its first, reached the server (flows whose first packet never arrived: {missing}):\n"
    ));
    r.push_str("| D (actual) | flows | second packet passed |\n|---|---|---|\n");
    let mut lo = 0u64;
    for (i, &(n, passed)) in bins.iter().enumerate() {
        let hi = edges_us[i];
        let label = if hi == u64::MAX {
            format!(">= {:.2} ms", lo as f64 / 1e3)
        } else {
            format!("{:.2} - {:.2} ms", lo as f64 / 1e3, hi as f64 / 1e3)
        };
        r.push_str(&format!(
            "| {label} | {n} | {passed} ({:.1} %) |\n",
            100.0 * passed as f64 / n.max(1) as f64
        ));
        lo = hi;
    }

    // ---- leak
    let mut spec = String::new();
    for (ci, (mode, proto)) in [
        ("nodns", "udp"),
        ("dns", "udp"),
        ("nodns", "tcp"),
        ("dns", "tcp"),
        ("dns2", "udp"),
        ("dns2", "tcp"),
    ]
    .iter()
    .enumerate()
    {
        for j in 0..o.leak {
            let c = Ipv4Addr::new(198, 51, 100, (10 + ci * 10 + j % 10) as u8);
            let s = Ipv4Addr::new(203, 0, 113, (64 + (j / 10) % 60) as u8);
            spec.push_str(&format!("{mode} {proto} {c} {s}\n"));
        }
    }
    std::fs::write(d.join("leak.spec"), spec).map_err(|e| e.to_string())?;
    let lspec = d.join("leak.spec").to_string_lossy().into_owned();
    let lout = d.join("leak.out").to_string_lossy().into_owned();
    sh(&t.client, &[&exe, "--leak-client", &lspec, &lout])?;
    std::thread::sleep(Duration::from_millis(300));
    let counts = server_counts(&t);
    let leak_total = named_counter(&t, "leak");
    let leak_flows: u64 = counts
        .iter()
        .filter(|(k, _)| (10..70).contains(&k.0.octets()[3]))
        .map(|(_, n)| n)
        .sum();
    let alerts = block_alerts(d);
    let mut by: BTreeMap<(String, String), LeakStats> = BTreeMap::new();
    for l in std::fs::read_to_string(&lout).unwrap_or_default().lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let [mode, proto, src, sport, dst, ref rest @ ..] = f[..] else {
            continue;
        };
        let outcome = rest.join("_");
        let (Ok(src), Ok(sport), Ok(dst)) = (
            src.parse::<Ipv4Addr>(),
            sport.parse::<u16>(),
            dst.parse::<Ipv4Addr>(),
        ) else {
            continue;
        };
        let dport = if proto == "udp" { MEDIA_PORT } else { TLS_PORT };
        let n = counts.get(&(src, sport, dst, dport)).copied().unwrap_or(0);
        let e = by.entry((mode.to_string(), proto.to_string())).or_default();
        *e.0.entry(n).or_default() += 1;
        let oc = outcome.split(',').next().unwrap_or("").to_string();
        *e.1.entry(oc).or_default() += 1;
        let kind = if mode.starts_with("dns") {
            "dns"
        } else {
            "flow"
        };
        if let Some(a) = alerts.get(&(src, dst, kind)) {
            e.2.push(a.us);
        }
    }
    r.push_str(&format!(
        "\nleak: packets of each blocked flow that reached the server ({leak_total} leak-test packets arrived by the rule counter, {leak_flows} in the per-flow counters, DNS included)\n"
    ));
    r.push_str("| case | flows | packets at server: flows | client saw | block alerts, enforced_within_us p50 / max |\n|---|---|---|---|---|\n");
    for ((mode, proto), (hist, oc, mut us)) in by {
        let flows: u64 = hist.values().sum();
        let h: Vec<String> = hist.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let o: Vec<String> = oc.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let n = us.len();
        r.push_str(&format!(
            "| {proto} {} | {flows} | {} | {} | {n}, {} / {} us |\n",
            match mode.as_str() {
                "dns" => "after DNS answer, at once",
                "dns2" => "after DNS answer, 2 ms later",
                _ => "no DNS",
            },
            h.join(", "),
            o.join(", "),
            pct(&mut us, 0.5),
            pct(&mut us, 1.0)
        ));
    }
    let log = std::fs::read_to_string(d.join("daemon.log")).unwrap_or_default();
    let problems: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .take(5)
        .collect();
    if !problems.is_empty() {
        r.push_str(&format!(
            "\ndaemon warnings/errors:\n{}\n",
            problems.join("\n")
        ));
    }
    drop(daemon);
    Ok(r)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let helper = match a(1) {
        "--server" => Some(server_mode(a(2).parse().unwrap_or(600))),
        "--sender" => Some(sender_mode(Path::new(a(2)), Path::new(a(3)))),
        "--leak-client" => Some(leak_mode(Path::new(a(2)), Path::new(a(3)))),
        _ => None,
    };
    if let Some(r) = helper {
        if let Err(e) = r {
            eprintln!("time_to_block helper: {e}");
            std::process::exit(1);
        }
        return;
    }
    let mut runs = 3;
    let mut opts = Opts {
        flows: 10_000,
        leak: 200,
    };
    let mut it = args.get(1..).unwrap_or_default().iter();
    while let Some(x) = it.next() {
        let v = |it: &mut std::slice::Iter<String>| it.next().and_then(|s| s.parse::<usize>().ok());
        match x.as_str() {
            "--runs" => runs = v(&mut it).unwrap_or(runs),
            "--flows" => opts.flows = v(&mut it).unwrap_or(opts.flows).min(10_000),
            "--leak" => opts.leak = v(&mut it).unwrap_or(opts.leak).min(600),
            _ => {}
        }
    }
    if !require_root() {
        return;
    }
    remove_stale_namespaces();
    if Command::new("nft").arg("--version").output().is_err() {
        println!("skipping: the `nft` tool is not installed");
        return;
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "# time_to_block: {nproc} CPUs ({cpu}), kernel {}, load {}",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        load.trim()
    );
    println!("daemon: {} {}\n", daemon_wrap().join(" "), daemon_path());
    for run in 1..=runs {
        match run_once(run, opts) {
            Ok(r) => println!("{r}"),
            Err(e) => println!("## run {run}\n\nFAILED: {e}\n"),
        }
    }
}
