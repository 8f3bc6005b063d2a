//! Counts TCP/UDP frames on an interface with `AfPacketSource` (pnet, optionally in a
//! HASH fanout group over several threads) or `RingSource` (libpcap mmap ring) and
//! prints one JSON line with totals, kernel counters and the process CPU time (getrusage, all threads). Used for
//! the measurements in docs/benchmarks-capture.md and by the root namespace tests.
//!
//! ```text
//! geofence-afpacket-count --iface IF [--source pnet|ring|ring-immediate|auto] [--ms 5000]
//!     [--threads 1] [--no-filter] [--decode] [--per-flow] [--buffer-kb 32768]
//!     [--poll-ms 50] [--stall-ms 0] [--block-ms N] [--stop-file PATH] [--seq]
//! ```
//! Prints `READY` on stderr once the sockets are open. `--per-flow` adds, per thread,
//! the sorted source ports of the decoded packets (to check that fanout keeps flows whole).
//! `--stall-ms` sleeps that long after READY before reading (to overflow the ring);
//! `--buffer-kb` sets the ring size and `--block-ms` the TPACKET_V3 block timeout (ring
//! sources only). `max_poll_ms` is the longest
//! single `poll_batch(--poll-ms)` call and `empty_polls` the calls that returned 0.
//! `max_delay_us` / `mean_batch_delay_us`: wall time from the capture timestamp of the
//! oldest packet of a batch to the end of that batch (pnet stamps packets when it reads
//! them, so it shows ~0 there). `auto` is `open_afpacket` (what the daemon uses). The run ends `--ms` after READY.

use std::time::{Duration, Instant};

use geofence_capture::{
    open_afpacket_explained, AfPacketConfig, AfPacketSource, PacketSource, RingConfig, RingSource,
};

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// User + system CPU time of the whole process (all threads), in microseconds.
fn cpu_us() -> u64 {
    use nix::sys::resource::{getrusage, UsageWho};
    use nix::sys::time::TimeValLike;
    getrusage(UsageWho::RUSAGE_SELF).map_or(0, |u| {
        let us = u.user_time().num_microseconds() + u.system_time().num_microseconds();
        u64::try_from(us).unwrap_or(0)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let iface: String = arg(&args, "--iface", String::new());
    let ms: u64 = arg(&args, "--ms", 5000);
    let threads: usize = arg(&args, "--threads", 1);
    let per_flow = args.iter().any(|a| a == "--per-flow");
    let seq = args.iter().any(|a| a == "--seq");
    let decode = per_flow || seq || args.iter().any(|a| a == "--decode");
    let source: String = arg(&args, "--source", "pnet".to_string());
    let buffer_kb: usize = arg(&args, "--buffer-kb", 32 << 10);
    let poll_ms: u64 = arg(&args, "--poll-ms", 50);
    let stall_ms: u64 = arg(&args, "--stall-ms", 0);
    let block_ms: u64 = arg(&args, "--block-ms", 0);
    let stop_file: String = arg(&args, "--stop-file", String::new());
    let no_filter = args.iter().any(|a| a == "--no-filter");
    let sources: Result<Vec<Box<dyn PacketSource + Send>>, String> = match source.as_str() {
        "pnet" => {
            let mut cfg = AfPacketConfig::new(iface);
            cfg.filter_tcp_udp = !no_filter;
            let r = if threads > 1 {
                AfPacketSource::open_fanout(&cfg, threads, (std::process::id() & 0xFFFF) as u16)
            } else {
                AfPacketSource::open(&cfg).map(|s| vec![s])
            };
            r.map(|v| {
                v.into_iter()
                    .map(|s| Box::new(s) as Box<dyn PacketSource + Send>)
                    .collect()
            })
            .map_err(|e| e.to_string())
        }
        "ring" | "ring-immediate" if threads == 1 => {
            let mut cfg = RingConfig::new(iface);
            cfg.immediate = source == "ring-immediate";
            cfg.buffer_size = buffer_kb << 10;
            if block_ms > 0 {
                cfg.block_timeout = Duration::from_millis(block_ms);
            }
            if no_filter {
                cfg.filter = None;
            }
            RingSource::open(&cfg)
                .map(|s| vec![Box::new(s) as Box<dyn PacketSource + Send>])
                .map_err(|e| e.to_string())
        }
        "auto" if threads == 1 && !no_filter => open_afpacket_explained(&iface)
            .map(|(s, why)| {
                if let Some(e) = why {
                    eprintln!("ring unavailable, using pnet: {e}");
                }
                vec![s]
            })
            .map_err(|e| e.to_string()),
        other => Err(format!(
            "unsupported --source {other} (ring/auto: one thread, no fanout)"
        )),
    };
    let sources = match sources {
        Ok(s) => s,
        Err(e) => {
            eprintln!("open: {e}");
            std::process::exit(1);
        }
    };
    let name = sources.first().map_or("none", |s| s.name());
    eprintln!("READY");
    let cpu0 = cpu_us();
    let end = Instant::now() + Duration::from_millis(ms);
    std::thread::sleep(Duration::from_millis(stall_ms));
    let handles: Vec<_> = sources
        .into_iter()
        .map(|mut src| {
            let stop_file = stop_file.clone();
            std::thread::spawn(move || {
                let stopped = || !stop_file.is_empty() && std::path::Path::new(&stop_file).exists();
                let mut decoded = 0u64;
                let mut sports = std::collections::BTreeSet::new();
                // (sender pid, sequence number) of udp-blast datagrams, and repeats
                let (mut seen, mut dups) = (std::collections::HashSet::new(), 0u64);
                let (mut max_poll, mut empty) = (Duration::ZERO, 0u64);
                // capture-to-delivery delay of the oldest packet of each batch
                let (mut max_delay, mut sum_delay, mut batches) = (0u64, 0u64, 0u64);
                let mut last = false;
                loop {
                    let mut wait = Duration::from_millis(poll_ms);
                    if Instant::now() >= end || stopped() {
                        if last {
                            break;
                        }
                        // one more short poll after 110 ms, so that the ring source
                        // refreshes its kernel counters (it does so every 100 ms)
                        last = true;
                        std::thread::sleep(Duration::from_millis(110));
                        wait = Duration::from_millis(1);
                    }
                    let t0 = Instant::now();
                    let mut oldest = u64::MAX;
                    let r = src.poll_batch(wait, &mut |c| {
                        oldest = oldest.min(c.ts_nanos);
                        if !decode {
                            return;
                        }
                        if let Ok(p) = geofence_decode::decode(c.link, c.data) {
                            decoded += 1;
                            if per_flow {
                                sports.insert(p.sport);
                            }
                            if let (true, Some(k)) = (seq, p.payload.get(..8)) {
                                let k = u64::from_be_bytes(k.try_into().unwrap_or([0; 8]));
                                if !seen.insert(k) {
                                    dups += 1;
                                }
                            }
                        }
                    });
                    max_poll = max_poll.max(t0.elapsed());
                    if oldest != u64::MAX {
                        let d = now_nanos().saturating_sub(oldest) / 1000;
                        max_delay = max_delay.max(d);
                        sum_delay += d;
                        batches += 1;
                    }
                    match r {
                        Ok(0) => empty += 1,
                        Ok(_) => {}
                        Err(e) => {
                            eprintln!("poll: {e}");
                            break;
                        }
                    }
                }
                let delay = (max_delay, sum_delay.checked_div(batches).unwrap_or(0));
                (
                    src.stats(),
                    decoded,
                    sports,
                    max_poll,
                    empty,
                    delay,
                    (seen.len(), dups),
                )
            })
        })
        .collect();
    let mut per_thread = Vec::new();
    let mut flows = Vec::new();
    let (mut total, mut decoded, mut truncated) = (0u64, 0u64, 0u64);
    let (mut dropped, mut if_dropped, mut kernel) = (0u64, 0u64, 0u64);
    let (mut max_poll, mut empty) = (Duration::ZERO, 0u64);
    let (mut max_delay, mut mean_delay) = (0u64, 0u64);
    let (mut unique, mut dups) = (0u64, 0u64);
    for h in handles {
        if let Ok((s, d, sports, mp, e, (md, avg), (u, du))) = h.join() {
            unique += u as u64;
            dups += du;
            max_delay = max_delay.max(md);
            mean_delay = mean_delay.max(avg);
            dropped += s.dropped;
            if_dropped += s.if_dropped;
            kernel += s.kernel_received;
            max_poll = max_poll.max(mp);
            empty += e;
            let list: Vec<String> = sports.iter().map(u16::to_string).collect();
            flows.push(format!("[{}]", list.join(",")));
            per_thread.push(s.received.to_string());
            total += s.received;
            truncated += s.truncated;
            decoded += d;
        }
    }
    let cpu = cpu_us().saturating_sub(cpu0);
    println!(
        "{{\"source\":\"{name}\",\"received\":{total},\"decoded\":{decoded},\"truncated\":{truncated},\"dropped\":{dropped},\"if_dropped\":{if_dropped},\"kernel_received\":{kernel},\"max_poll_ms\":{},\"empty_polls\":{empty},\"unique_seq\":{unique},\"dup_seq\":{dups},\"max_delay_us\":{max_delay},\"mean_batch_delay_us\":{mean_delay},\"per_thread\":[{}],\"flows\":[{}],\"cpu_ms\":{},\"cpu_us\":{cpu}}}",
        max_poll.as_millis(),
        per_thread.join(","),
        flows.join(","),
        cpu / 1000
    );
}
