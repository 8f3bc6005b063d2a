//! The DNS gate under load, on a real kernel: leaks and added latency.
//!
//! ```text
//! cargo bench -p geofenced --bench dns_gate                       # 10,000 clients at 1,000 and 10,000 q/s
//! cargo bench -p geofenced --bench dns_gate -- --clients 2000 --rates 1000
//! ```
//!
//! Topology (`geofence_testkit::netns`): 10,000 client addresses in the
//! client namespace (2001:db8:1::1:0/112, a local route), the gateway
//! running the release `geofenced`, and in the server namespace a test
//! resolver (203.0.113.53 and 2001:db8:2::53) and a TCP sink on port 443
//! answering for two whole /112 ranges: `c<N>.zoom.us` -> 2001:db8:2::1:N
//! (CN in the generated database; Zoom to CN is blocked) and `d<N>.zoom.us`
//! -> 2001:db8:2::2:N (DE, allowed). Each client, from its own address,
//! asks for one name (every other client a blocked one, each blocked name a
//! new server) at its slot of an open-loop schedule (`--rates` queries per
//! second), and the moment the answer arrives connects to the address in
//! it. Counted: connections the sink accepted on blocked addresses (target
//! 0), and the answer latency seen by the client (p50, p99, p99.9).
//!
//! Two daemon set-ups, each in fresh namespaces: **gate** (`[dns_gate]` on;
//! clients ask 2001:db8:2::53 and the nat redirect takes the query to the
//! gate, which forwards to the same resolver) and **direct** (no gate: the
//! clients' queries go to the resolver through the gateway and the daemon
//! learns from its passive NFLOG copy: the race the gate removes).
//!
//! Needs root, `ip` and `nft`; skips with a message otherwise. Namespaces
//! and processes are removed on every path (drop guards).

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use geofence_testkit::mmdb::geoip2_country;
use geofence_testkit::netns::{require_root, Topology};
use geofence_testkit::wire;

const DAEMON: &str = env!("CARGO_BIN_EXE_geofenced");

fn blocked_addr(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 1, n)
}
fn allowed_addr(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 2, n)
}
fn client_addr(i: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 1, i)
}

/// Helper: the test resolver (AAAA for c<N>/d<N>.zoom.us).
fn auth_mode(addrs: &[String]) -> Result<(), String> {
    let mut threads = Vec::new();
    for a in addrs {
        let s = UdpSocket::bind(a.as_str()).map_err(|e| format!("{a}: {e}"))?;
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                let Some((id, name, qtype)) = wire::dns_question(&buf[..n]) else {
                    continue;
                };
                let (label, zone) = name.split_once('.').unwrap_or(("", ""));
                let num = label.get(1..).and_then(|x| x.parse::<u16>().ok());
                let addr = match (label.as_bytes().first(), zone, num, qtype) {
                    (Some(b'c'), "zoom.us", Some(n), 28) => Some(IpAddr::V6(blocked_addr(n))),
                    (Some(b'd'), "zoom.us", Some(n), 28) => Some(IpAddr::V6(allowed_addr(n))),
                    _ => None,
                };
                let hit: Vec<IpAddr> = addr.into_iter().collect();
                let r = wire::dns_response(id, &name, qtype, &hit, 60, hit.is_empty());
                let _ = s.send_to(&r, from);
            }
        }));
    }
    println!("listening");
    let _ = std::io::stdout().flush();
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// Helper: TCP sink on [::]:443; prints `B` (blocked range) or `A` per
/// accepted connection.
fn sink_mode() -> Result<(), String> {
    let l = std::net::TcpListener::bind("[::]:443").map_err(|e| e.to_string())?;
    println!("listening");
    let _ = std::io::stdout().flush();
    let mut out = std::io::stdout();
    for s in l.incoming().flatten() {
        let tag = match s.local_addr().map(|a| a.ip()) {
            Ok(IpAddr::V6(v6)) if v6.segments()[6] == 1 => "B",
            _ => "A",
        };
        let _ = writeln!(out, "{tag}");
        let _ = out.flush();
    }
    Ok(())
}

/// One client's result: answer latency (µs) and what its connection did.
struct Outcome {
    blocked: bool,
    latency_us: Option<u64>,
    connected: bool,
}

async fn one_client(i: u16, idx: u16, resolver: SocketAddr) -> Outcome {
    let blocked = idx.is_multiple_of(2);
    let mut o = Outcome {
        blocked,
        latency_us: None,
        connected: false,
    };
    let src = SocketAddr::new(IpAddr::V6(client_addr(i)), 0);
    let sock = match tokio::net::UdpSocket::bind(src).await {
        Ok(s) => s,
        Err(e) => {
            if i == 0 {
                eprintln!("bind {src}: {e}");
            }
            return o;
        }
    };
    let name = format!("{}{idx}.zoom.us", if blocked { 'c' } else { 'd' });
    let q = wire::dns_query(idx, &name, 28);
    let t0 = Instant::now();
    if let Err(e) = sock.send_to(&q, resolver).await {
        if i == 0 {
            eprintln!("send to {resolver}: {e}");
        }
        return o;
    }
    let mut buf = [0u8; 1500];
    let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(3), sock.recv(&mut buf)).await else {
        return o;
    };
    o.latency_us = Some(t0.elapsed().as_micros() as u64);
    // Connect at once to every address of the answer.
    for ip in wire::dns_addresses(&buf[..n]) {
        let Ok(ts) = tokio::net::TcpSocket::new_v6() else {
            continue;
        };
        if ts.bind(src).is_err() {
            continue;
        }
        let c = tokio::time::timeout(Duration::from_secs(1), ts.connect(SocketAddr::new(ip, 443)));
        if let Ok(Ok(_)) = c.await {
            o.connected = true;
        }
    }
    o
}

/// Helper: COUNT clients, open loop at RATE queries/s, names FIRST.. .
fn clients_mode(a: &[String]) -> Result<(), String> {
    let get = |i: usize| a.get(i).ok_or(format!("missing argument {i}"));
    let resolver: SocketAddr = get(2)?.parse().map_err(|_| "resolver")?;
    let first: u32 = get(3)?.parse().map_err(|_| "first")?;
    let count: u32 = get(4)?.parse().map_err(|_| "count")?;
    let rate: f64 = get(5)?.parse().map_err(|_| "rate")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let results = rt.block_on(async move {
        let start = tokio::time::Instant::now() + Duration::from_millis(200);
        let mut hs = Vec::with_capacity(count as usize);
        for i in 0..count {
            let at = start + Duration::from_secs_f64(f64::from(i) / rate);
            let idx = (first + i) as u16;
            hs.push(tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                one_client(i as u16, idx, resolver).await
            }));
        }
        let mut out = Vec::with_capacity(hs.len());
        for h in hs {
            if let Ok(o) = h.await {
                out.push(o);
            }
        }
        out
    });
    let mut lat: Vec<u64> = results.iter().filter_map(|o| o.latency_us).collect();
    lat.sort_unstable();
    let pct = |q: f64| {
        lat.get(((lat.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    let blocked_connected = results.iter().filter(|o| o.blocked && o.connected).count();
    let allowed = results.iter().filter(|o| !o.blocked).count();
    let allowed_connected = results.iter().filter(|o| !o.blocked && o.connected).count();
    println!(
        "answers {} of {} p50_us {} p99_us {} p999_us {} max_us {} blocked_connected {} allowed_connected {} of {}",
        lat.len(),
        results.len(),
        pct(0.5),
        pct(0.99),
        pct(0.999),
        pct(1.0),
        blocked_connected,
        allowed_connected,
        allowed
    );
    Ok(())
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn self_exe() -> String {
    std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn spawn_helper(
    t: &Topology,
    ns: &str,
    args: &[&str],
) -> Result<(Killed, BufReader<std::process::ChildStdout>), String> {
    let exe = self_exe();
    let mut cmd = vec![exe.as_str()];
    cmd.extend_from_slice(args);
    let mut c = t.spawn(ns, &cmd).map_err(|e| e.to_string())?;
    let out = c.stdout.take().ok_or("no stdout")?;
    let mut r = BufReader::new(out);
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    if line.trim() != "listening" {
        return Err(format!("helper {args:?} did not start: {line:?}"));
    }
    Ok((Killed(c), r))
}

struct Setup {
    t: Topology,
    dir: PathBuf,
    /// Daemon, resolver and sink: stopped before the directory goes.
    procs: Vec<Killed>,
    blocked_accepts: Arc<AtomicU64>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.procs.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn setup(gate: bool) -> Result<Setup, String> {
    let e = |x: std::io::Error| x.to_string();
    let t = Topology::new("gfdb").map_err(e)?;
    let (c, g, s) = (t.client.clone(), t.gw.clone(), t.srv.clone());
    t.ok(&s, &["ip", "addr", "add", "203.0.113.53/24", "dev", "s0"])
        .map_err(e)?;
    t.ok(
        &s,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8:2::53/64",
            "dev",
            "s0",
            "nodad",
        ],
    )
    .map_err(e)?;
    for r in ["2001:db8:2::1:0/112", "2001:db8:2::2:0/112"] {
        t.ok(&s, &["ip", "-6", "route", "add", "local", r, "dev", "lo"])
            .map_err(e)?;
        t.ok(
            &g,
            &["ip", "-6", "route", "add", r, "via", "2001:db8:2::10"],
        )
        .map_err(e)?;
    }
    // Binding to addresses of a local route needs non-local binds on v6.
    t.ok(&c, &["sysctl", "-qw", "net.ipv6.ip_nonlocal_bind=1"])
        .map_err(e)?;
    t.ok(
        &c,
        &[
            "ip",
            "-6",
            "route",
            "add",
            "local",
            "2001:db8:1::1:0/112",
            "dev",
            "lo",
        ],
    )
    .map_err(e)?;
    t.ok(
        &g,
        &[
            "ip",
            "-6",
            "route",
            "add",
            "2001:db8:1::1:0/112",
            "via",
            "2001:db8:1::2",
        ],
    )
    .map_err(e)?;
    let dir = std::env::temp_dir().join(format!("gf-dnsgate-bench-{}", t.gw));
    std::fs::create_dir_all(&dir).map_err(e)?;
    geoip2_country(&[
        ("2001:db8:2::1:0/112", "CN", None),
        ("2001:db8:2::2:0/112", "DE", None),
    ])
    .write(&dir.join("geo.mmdb"))
    .map_err(|x| format!("{x:?}"))?;
    let d = dir.display();
    let gate_cfg = if gate {
        "[dns_gate]\nenabled = true\nlisten = [\"198.51.100.1:53\", \"[2001:db8:1::1]:53\"]\nupstreams = [\"203.0.113.53:53\"]\nclient_rate = 0\nmax_inflight = 16384\n"
    } else {
        ""
    };
    let cfg = format!(
        "[daemon]\nmode = \"gateway\"\nnflog_group = 23\nalert_log = \"{d}/alerts.jsonl\"\nstate_dir = \"{d}/state\"\n\
         [geoip]\ndatabases = [\"{d}/geo.mmdb\"]\n[signatures]\ndirs = []\n[jurisdictions]\nprc = [\"CN\"]\n\
         [[rule]]\nname = \"no-conferencing-to-prc\"\napps = [\"conferencing\"]\nto = [\"prc\"]\naction = \"block\"\n{gate_cfg}"
    );
    std::fs::write(dir.join("geofence.toml"), cfg).map_err(e)?;
    let (auth, _) = spawn_helper(
        &t,
        &s,
        &["--auth", "203.0.113.53:53", "[2001:db8:2::53]:53"],
    )?;
    let (sink, mut sink_out) = spawn_helper(&t, &s, &["--sink"])?;
    let blocked_accepts = Arc::new(AtomicU64::new(0));
    let counter = blocked_accepts.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        while sink_out
            .read_line(&mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            if line.trim() == "B" {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            line.clear();
        }
    });
    let daemon = Command::new("ip")
        .args(["netns", "exec", &g, DAEMON, "--config"])
        .arg(dir.join("geofence.toml"))
        .args(["--log-format", "text"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log")).map_err(e)?)
        .spawn()
        .map_err(e)?;
    let daemon = Killed(daemon);
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let alerts = std::fs::read_to_string(dir.join("alerts.jsonl")).unwrap_or_default();
        if alerts.contains("geofenced started") {
            break;
        }
        if Instant::now() > end {
            let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
            return Err(format!("daemon did not start:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Setup {
        t,
        dir,
        procs: vec![daemon, auth, sink],
        blocked_accepts,
    })
}

fn run(gate: bool, clients: u32, rates: &[u32]) -> Result<(), String> {
    let s = setup(gate)?;
    let mode = if gate {
        "gate"
    } else {
        "direct (passive path, no gate)"
    };
    let exe = self_exe();
    for (k, &rate) in rates.iter().enumerate() {
        // Fresh names and servers per run: every blocked answer is a new race.
        let first = (k as u32 * clients).to_string();
        let before = s.blocked_accepts.load(Ordering::Relaxed);
        let o =
            s.t.exec(
                &s.t.client,
                &[
                    &exe,
                    "--client-role",
                    "[2001:db8:2::53]:53",
                    &first,
                    &clients.to_string(),
                    &rate.to_string(),
                ],
            )
            .map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(500));
        let reached = s.blocked_accepts.load(Ordering::Relaxed) - before;
        let out = String::from_utf8_lossy(&o.stdout);
        println!(
            "| {mode} | {clients} | {rate} | {} | blocked servers reached: {reached} |",
            out.trim()
        );
        let err = String::from_utf8_lossy(&o.stderr);
        if !o.status.success() || !err.trim().is_empty() {
            println!("  client errors: {}", err.trim());
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let helper = match args.get(1).map(String::as_str) {
        Some("--auth") => Some(auth_mode(&args[2..])),
        Some("--sink") => Some(sink_mode()),
        Some("--client-role") => Some(clients_mode(&args)),
        _ => None,
    };
    if let Some(r) = helper {
        if let Err(e) = r {
            eprintln!("dns_gate helper: {e}");
            std::process::exit(1);
        }
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it: do not start a 10,000-client run there.
    if !args.iter().any(|a| a == "--bench") {
        println!("dns_gate: a benchmark; run it with `cargo bench -p geofenced --bench dns_gate`");
        return;
    }
    let mut clients: u32 = 10_000;
    let mut rates: Vec<u32> = vec![1000, 10_000];
    let mut it = args.iter().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--clients" => {
                clients = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(clients)
                    .clamp(2, 30_000)
            }
            "--rates" => {
                rates = it
                    .next()
                    .map(|v| {
                        v.split(',')
                            .filter_map(|r| r.parse().ok())
                            .filter(|r| *r > 0)
                            .collect()
                    })
                    .unwrap_or(rates)
            }
            _ => {}
        }
    }
    if !require_root() {
        return;
    }
    if Command::new("nft").arg("--version").output().is_err() {
        println!("skipping: the `nft` tool is not installed");
        return;
    }
    println!(
        "# dns_gate: {} CPUs, kernel {}, load {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "| set-up | clients | queries/s | client view | at the servers |\n|---|---|---|---|---|"
    );
    for gate in [false, true] {
        if let Err(e) = run(gate, clients, &rates) {
            println!("FAILED ({}): {e}", if gate { "gate" } else { "direct" });
        }
    }
}
