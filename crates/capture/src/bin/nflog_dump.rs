//! Binds an NFLOG group in the current network namespace and prints one JSON line
//! per packet, then a final `{"stats":...}` line. Used by the namespace test (run
//! through `ip netns exec NS ...`) and for measurements.
//!
//! ```text
//! geofence-nflog-dump --group 7 [--snaplen 256] [--idle-ms 1500] [--max-ms 20000]
//!            [--enable-acct] [--quiet] [--stall-ms 0]
//! ```
//! Prints `READY` on stderr once bound. Exits after `--idle-ms` without packets
//! (counted from the first packet) or after `--max-ms`. `--stall-ms` waits that long
//! after binding before reading (to provoke receive-buffer overruns in tests).

use std::io::Write;
use std::time::{Duration, Instant};

use geofence_capture::{enable_conntrack_acct, sysctl_conntrack_acct, NflogSource, PacketSource};
use geofence_decode::{decode, Proto};

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time (user + system) of this process in milliseconds, from /proc/self/stat.
fn cpu_ms() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // fields 14 and 15 (utime, stime) are at index 11, 12 after the ")"
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks * 10 // USER_HZ = 100
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let group: u16 = arg(&args, "--group", 7);
    let snaplen: u32 = arg(&args, "--snaplen", 256);
    let idle = Duration::from_millis(arg(&args, "--idle-ms", 1500));
    let max = Duration::from_millis(arg(&args, "--max-ms", 20_000));
    let quiet = args.iter().any(|a| a == "--quiet");
    if args.iter().any(|a| a == "--enable-acct") {
        if let Err(e) = enable_conntrack_acct() {
            eprintln!("enable_conntrack_acct: {e}");
            std::process::exit(2);
        }
    }
    let acct = sysctl_conntrack_acct().ok();
    let mut src = match NflogSource::bind(group, snaplen) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bind: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("READY");
    std::thread::sleep(Duration::from_millis(arg(&args, "--stall-ms", 0)));
    let start = Instant::now();
    let cpu0 = cpu_ms();
    let mut last = None::<Instant>;
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let mut first_ts = None;
    loop {
        let now = Instant::now();
        if now - start > max || last.is_some_and(|l| now - l > idle) {
            break;
        }
        let got = src.poll_batch(Duration::from_millis(100), &mut |c| {
            first_ts.get_or_insert(c.ts_nanos);
            if quiet {
                return;
            }
            let mut line = format!("{{\"ts\":{},\"len\":{}", c.ts_nanos, c.data.len());
            match decode(c.link, c.data) {
                Ok(p) => {
                    let t = p.tcp.unwrap_or_default();
                    let hex: String = p.payload.iter().take(64).map(|b| format!("{b:02x}")).collect();
                    line += &format!(
                        ",\"proto\":\"{}\",\"src\":\"{}\",\"sport\":{},\"dst\":\"{}\",\"dport\":{},\"syn\":{},\"ack\":{},\"fin\":{},\"payload_len\":{},\"payload_hex\":\"{hex}\"}}",
                        if p.proto == Proto::Tcp { "tcp" } else { "udp" },
                        p.src,
                        p.sport,
                        p.dst,
                        p.dport,
                        t.syn,
                        t.ack_flag,
                        t.fin,
                        p.payload.len()
                    );
                }
                Err(skip) => line += &format!(",\"skip\":\"{skip:?}\"}}"),
            }
            let _ = writeln!(out, "{line}");
        });
        match got {
            Ok(0) => {}
            Ok(_) => last = Some(Instant::now()),
            Err(e) => {
                eprintln!("poll: {e}");
                std::process::exit(1);
            }
        }
    }
    let s = src.stats();
    let _ = writeln!(
        out,
        "{{\"stats\":{{\"received\":{},\"dropped\":{},\"overruns\":{},\"malformed\":{}}},\"conntrack_acct\":{},\"cpu_ms\":{}}}",
        s.received,
        s.dropped,
        s.overruns,
        s.malformed,
        acct.map_or("null".to_string(), |a| a.to_string()),
        cpu_ms().saturating_sub(cpu0)
    );
    let _ = out.flush();
}
