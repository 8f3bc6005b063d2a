//! Real-kernel tests (root only) of `RingSource` (libpcap mmap ring) through the
//! `geofence-afpacket-count` helper run with `ip netns exec` on the receiving end of a
//! veth pair between two throw-away namespaces (deleted on every path by `Pair`'s Drop;
//! helpers are killed by `Helper`'s Drop).
//!
//! * exactly the N UDP datagrams sent are captured, decoded and counted by the kernel,
//!   while the ARP and ICMP port-unreachable frames of the same exchange stay out
//!   (and do show up with the filter off);
//! * `poll_batch` returns within its timeout on an idle interface, without spinning;
//! * a reader that stalls behind a tiny ring under a flood gets `dropped > 0` from
//!   the kernel, and delivered + dropped adds up to what the kernel accepted;
//! * `open_afpacket` (what the daemon calls) picks the ring.
//!
//! Skips with a message when not root or when `ip`/`nft` are unavailable.

mod common;

use std::time::{Duration, Instant};

use common::{afpacket_count, field, must_skip, nstraffic, run, spawn_in, Pair};

const FLOWS: usize = 8;
const PACKETS: usize = 10;

fn num(line: &str, key: &str) -> u64 {
    field(line, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} in {line}"))
}

/// Runs the counter in B with `args` while `traffic` (an nstraffic command) runs in A.
fn capture(pair: &Pair, args: &[&str], traffic: Option<&[&str]>, limit: Duration) -> String {
    let counter = afpacket_count();
    let mut all = vec!["--iface", pair.vb.as_str()];
    all.extend_from_slice(args);
    let mut cap = spawn_in(&pair.b, &counter, &all);
    cap.wait_ready();
    if let Some(t) = traffic {
        let exe = nstraffic();
        let mut cmd = vec!["ip", "netns", "exec", &pair.a, exe.to_str().expect("path")];
        cmd.extend_from_slice(t);
        let out = run(&cmd, None);
        println!("nstraffic: {}", String::from_utf8_lossy(&out.stdout).trim());
    }
    let out = cap.finish(limit);
    println!("geofence-afpacket-count {args:?}: {}", out.trim());
    out
}

#[test]
fn ring_captures_exactly_the_udp_datagrams() {
    if must_skip() {
        return;
    }
    let pair = Pair::new("rng");
    let sent = (FLOWS * PACKETS) as u64;
    let (flows, packets) = (FLOWS.to_string(), PACKETS.to_string());
    // to a closed port: B answers with ICMP port unreachable (rate-limited), and the
    // first datagram triggers ARP; both cross the same interface
    let traffic = ["udp-flows", "198.51.100.2:9000", &flows, &packets];

    for source in ["ring", "ring-immediate", "auto"] {
        let line = capture(
            &pair,
            &["--source", source, "--ms", "2500", "--per-flow"],
            Some(&traffic),
            Duration::from_secs(20),
        );
        assert_eq!(field(&line, "source"), Some("afpacket-ring"), "{line}");
        assert_eq!(num(&line, "received"), sent, "{line}");
        assert_eq!(num(&line, "decoded"), sent, "{line}");
        assert_eq!(num(&line, "kernel_received"), sent, "{line}");
        assert_eq!(num(&line, "dropped"), 0, "{line}");
        assert_eq!(num(&line, "truncated"), 0, "{line}");
        // the 8 flows' source ports, all seen
        let ports = line.split("\"flows\":[[").nth(1).expect("flows");
        let ports = ports.split(']').next().expect("ports");
        assert_eq!(ports.split(',').count(), FLOWS, "{line}");
    }

    // the same exchange without the filter: more than the UDP datagrams (ICMP, ARP)
    let line = capture(
        &pair,
        &[
            "--source",
            "ring",
            "--ms",
            "2500",
            "--decode",
            "--no-filter",
        ],
        Some(&traffic),
        Duration::from_secs(20),
    );
    assert_eq!(num(&line, "decoded"), sent, "{line}");
    assert!(
        num(&line, "received") > sent,
        "non-UDP frames are captured without the filter: {line}"
    );
}

#[test]
fn ring_poll_returns_on_time_without_traffic() {
    if must_skip() {
        return;
    }
    let pair = Pair::new("rgi");
    for source in ["ring", "ring-immediate"] {
        let started = Instant::now();
        let line = capture(
            &pair,
            &["--source", source, "--ms", "1500", "--poll-ms", "100"],
            None,
            Duration::from_secs(10),
        );
        assert!(started.elapsed() < Duration::from_secs(8), "{line}");
        assert_eq!(num(&line, "received"), 0, "{line}");
        // 1.5 s of 100 ms polls: about 15 empty returns, none much longer than 100 ms
        // (slack for a busy 2-core machine)
        let empty = num(&line, "empty_polls");
        assert!((8..=40).contains(&empty), "{line}");
        assert!(num(&line, "max_poll_ms") < 400, "{line}");
        // waiting is done in poll(), not by spinning
        assert!(num(&line, "cpu_ms") < 300, "{line}");
    }
}

#[test]
fn ring_reports_kernel_drops_when_the_reader_stalls() {
    if must_skip() {
        return;
    }
    let pair = Pair::new("rgd");
    // B discards the flood in its input hook, so no ICMP storm competes for the CPU
    run(
        &["ip", "netns", "exec", &pair.b, "nft", "-f", "-"],
        Some("table inet sink {\n chain in {\n  type filter hook input priority 0;\n  udp dport 9999 drop\n }\n}\n"),
    );
    // a 256 KiB ring that is not read for 3 s while 100,000 datagrams arrive
    let line = capture(
        &pair,
        &[
            "--source",
            "ring",
            "--buffer-kb",
            "256",
            "--stall-ms",
            "3000",
            "--ms",
            "4500",
        ],
        Some(&["udp-blast", "198.51.100.2:9999", "100000", "16"]),
        Duration::from_secs(60),
    );
    let (received, dropped, kernel) = (
        num(&line, "received"),
        num(&line, "dropped"),
        num(&line, "kernel_received"),
    );
    assert!(dropped > 0, "a stalled tiny ring must report drops: {line}");
    assert!(received > 0, "{line}");
    // the kernel's packet count includes the drops: everything is accounted for
    assert_eq!(received + dropped, kernel, "{line}");
    assert!(kernel <= 100_000, "{line}");
}
