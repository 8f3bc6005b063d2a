//! Counts TCP/UDP frames on an interface with `AfPacketSource` (optionally in a
//! HASH fanout group over several threads) and prints one JSON line with totals and
//! the process CPU time. Used for the measurements in docs/benchmarks-capture.md.
//!
//! ```text
//! geofence-afpacket-count --iface IF [--ms 5000] [--threads 1] [--no-filter] [--decode] [--per-flow]
//! ```
//! Prints `READY` on stderr once the sockets are open. `--per-flow` adds, per thread,
//! the sorted source ports of the decoded packets (to check that fanout keeps flows whole).

use std::time::{Duration, Instant};

use geofence_capture::{AfPacketConfig, AfPacketSource, PacketSource};

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cpu_ms() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) * 10
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let iface: String = arg(&args, "--iface", String::new());
    let ms: u64 = arg(&args, "--ms", 5000);
    let threads: usize = arg(&args, "--threads", 1);
    let per_flow = args.iter().any(|a| a == "--per-flow");
    let decode = per_flow || args.iter().any(|a| a == "--decode");
    let mut cfg = AfPacketConfig::new(iface);
    cfg.filter_tcp_udp = !args.iter().any(|a| a == "--no-filter");
    let sources = if threads > 1 {
        AfPacketSource::open_fanout(&cfg, threads, (std::process::id() & 0xFFFF) as u16)
    } else {
        AfPacketSource::open(&cfg).map(|s| vec![s])
    };
    let sources = match sources {
        Ok(s) => s,
        Err(e) => {
            eprintln!("open: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("READY");
    let cpu0 = cpu_ms();
    let end = Instant::now() + Duration::from_millis(ms);
    let handles: Vec<_> = sources
        .into_iter()
        .map(|mut src| {
            std::thread::spawn(move || {
                let mut decoded = 0u64;
                let mut sports = std::collections::BTreeSet::new();
                while Instant::now() < end {
                    let r = src.poll_batch(Duration::from_millis(50), &mut |c| {
                        if !decode {
                            return;
                        }
                        if let Ok(p) = geofence_decode::decode(c.link, c.data) {
                            decoded += 1;
                            if per_flow {
                                sports.insert(p.sport);
                            }
                        }
                    });
                    if let Err(e) = r {
                        eprintln!("poll: {e}");
                        break;
                    }
                }
                (src.stats(), decoded, sports)
            })
        })
        .collect();
    let mut per_thread = Vec::new();
    let mut flows = Vec::new();
    let (mut total, mut decoded, mut truncated) = (0u64, 0u64, 0u64);
    for h in handles {
        if let Ok((s, d, sports)) = h.join() {
            let list: Vec<String> = sports.iter().map(u16::to_string).collect();
            flows.push(format!("[{}]", list.join(",")));
            per_thread.push(s.received.to_string());
            total += s.received;
            truncated += s.truncated;
            decoded += d;
        }
    }
    println!(
        "{{\"received\":{total},\"decoded\":{decoded},\"truncated\":{truncated},\"per_thread\":[{}],\"flows\":[{}],\"cpu_ms\":{}}}",
        per_thread.join(","),
        flows.join(","),
        cpu_ms().saturating_sub(cpu0)
    );
}
