//! Real-kernel test (root only): `AfPacketSource` (the `geofence-afpacket-count` helper binary, run
//! with `ip netns exec`) on the receiving end of a veth pair between two throw-away
//! namespaces. Checks that the hand-written cBPF filter passes exactly the UDP
//! datagrams (not the ARP and ICMP port-unreachable frames of the same exchange) and
//! that a two-socket PACKET_FANOUT_HASH group keeps every flow on one socket.
//!
//! Skips with a message when not root or when `ip`/`nft` are unavailable.

mod common;

use std::time::Duration;

use common::{afpacket_count, field, must_skip, nstraffic, run, spawn_in, Pair};

const FLOWS: usize = 8;
const PACKETS: usize = 10;

/// Runs the counter in B while A sends FLOWS x PACKETS datagrams to a closed port
/// (so B answers with ICMP port unreachable, which the socket also sees).
fn capture_once(pair: &Pair, extra: &[&str]) -> String {
    let counter = afpacket_count();
    let traffic = nstraffic();
    let mut args = vec!["--iface", pair.vb.as_str(), "--ms", "2500", "--per-flow"];
    args.extend_from_slice(extra);
    let mut cap = spawn_in(&pair.b, &counter, &args);
    cap.wait_ready();
    let (flows, packets) = (FLOWS.to_string(), PACKETS.to_string());
    let t = traffic.to_str().expect("path");
    run(
        &[
            "ip",
            "netns",
            "exec",
            &pair.a,
            t,
            "udp-flows",
            "198.51.100.2:9000",
            &flows,
            &packets,
        ],
        None,
    );
    let out = cap.finish(Duration::from_secs(20));
    println!("geofence-afpacket-count {extra:?}: {out}");
    out
}

fn num(line: &str, key: &str) -> usize {
    field(line, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} in {line}"))
}

/// `"flows":[[1,2],[3]]` -> per-thread port lists.
fn flows(line: &str) -> Vec<Vec<u16>> {
    let start = line.find("\"flows\":[").expect("flows") + 9;
    let body = &line[start..start + line[start..].find("]]").map_or(1, |e| e + 1)];
    body.split(']')
        .filter(|s| s.contains('['))
        .map(|s| {
            s.trim_start_matches([',', '['])
                .split(',')
                .filter_map(|x| x.trim().parse().ok())
                .collect()
        })
        .collect()
}

#[test]
fn bpf_filter_and_fanout_on_a_real_socket() {
    if must_skip() {
        return;
    }
    let pair = Pair::new("afp");
    let sent = FLOWS * PACKETS;

    // filter on: the UDP datagrams and nothing else (no ARP, no ICMP errors)
    let line = capture_once(&pair, &[]);
    assert_eq!(num(&line, "received"), sent, "{line}");
    assert_eq!(num(&line, "decoded"), sent, "{line}");
    assert_eq!(flows(&line).concat().len(), FLOWS, "{line}");

    // filter off: the same datagrams plus the non-UDP frames the filter kept out (ICMP
    // port unreachable, rate-limited by the kernel to a few, and ARP when resolved)
    let line = capture_once(&pair, &["--no-filter"]);
    assert_eq!(num(&line, "decoded"), sent, "{line}");
    assert!(
        num(&line, "received") > sent,
        "non-UDP frames are captured without the filter: {line}"
    );

    // fanout over two sockets: all packets once, every flow on exactly one socket
    let line = capture_once(&pair, &["--threads", "2"]);
    assert_eq!(num(&line, "received"), sent, "{line}");
    let per_thread = flows(&line);
    assert_eq!(per_thread.len(), 2, "{line}");
    let mut all = per_thread.concat();
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!(
        before,
        all.len(),
        "a flow was seen by both sockets: {per_thread:?}"
    );
    assert_eq!(all.len(), FLOWS, "{per_thread:?}");
}
