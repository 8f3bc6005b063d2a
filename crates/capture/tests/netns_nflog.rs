//! Real-kernel test (root only): an nftables "first packets of each flow" NFLOG rule
//! inside a throw-away network namespace, traffic between two namespaces over a
//! veth pair on 198.51.100.0/24, and `NflogSource` (the `geofence-nflog-dump` helper binary, run
//! with `ip netns exec`) receiving exactly the first packets of every flow.
//!
//! Skips with a message when not root or when `ip`/`nft` are unavailable.

mod common;

use std::time::Duration;

use common::{field, must_skip, nflog_dump, nstraffic, run, spawn_in, Pair};

const GROUP: u16 = 7;
/// `ct original packets < LIMIT`: packets 1..LIMIT-1 of each flow are logged.
const LIMIT: usize = 6;

#[derive(Debug)]
struct Logged {
    proto: String,
    sport: u16,
    dport: u16,
    syn: bool,
    payload: String,
}

fn unhex(h: &str) -> String {
    let bytes: Vec<u8> = (0..h.len() / 2)
        .filter_map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn nflog_rule_delivers_only_the_first_packets_of_each_flow() {
    if must_skip() {
        return;
    }
    let pair = Pair::new("cap");
    let (a, b) = (&pair.a, &pair.b);
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
    run(&["ip", "netns", "exec", a, "nft", "-f", "-"], Some(&rules));

    let dump = nflog_dump();
    let traffic = nstraffic();
    let mut capture = spawn_in(
        a,
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
    capture.wait_ready();
    // a second reader of the same group is refused (EBUSY), not silently sharing it
    let second = std::process::Command::new("ip")
        .args(["netns", "exec", a])
        .arg(&dump)
        .args(["--group", &GROUP.to_string(), "--max-ms", "100"])
        .output()
        .expect("run second reader");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "second bind must fail: {err}");
    assert!(
        err.contains(&format!("binding NFLOG group {GROUP} failed")),
        "{err}"
    );

    let mut answer = spawn_in(b, &traffic, &["udp-answer", "198.51.100.2:53", "3"]);
    let mut sink = spawn_in(b, &traffic, &["tcp-sink", "198.51.100.2:8443"]);
    std::thread::sleep(Duration::from_millis(300));
    let t = traffic.to_str().expect("path");
    run(
        &[
            "ip",
            "netns",
            "exec",
            a,
            t,
            "udp-flows",
            "198.51.100.2:9000",
            "4",
            "10",
        ],
        None,
    );
    let dns = run(
        &["ip", "netns", "exec", a, t, "dns", "198.51.100.2:53", "3"],
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
            a,
            t,
            "tcp-send",
            "198.51.100.2:8443",
            "10",
        ],
        None,
    );
    assert!(answer.0.wait().expect("wait").success());
    let sink_out = sink.finish(Duration::from_secs(15));
    assert!(
        sink_out.contains("T0;T1;T2;T3;T4;T5;T6;T7;T8;T9;"),
        "server got {sink_out:?}"
    );

    let out = capture.finish(Duration::from_secs(30));
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

/// A reader that stalls while 150,000 packets are logged overflows its socket
/// buffer: the kernel reports ENOBUFS, and the NFLOG sequence numbers account for
/// every lost packet, so received + dropped equals what was logged.
#[test]
fn nflog_overruns_are_survived_and_counted_exactly() {
    if must_skip() {
        return;
    }
    let pair = Pair::new("ovf");
    let a = &pair.a;
    let rules = format!(
        "table inet gfovf {{
            chain out {{ type filter hook output priority 0;
                udp dport 9999 log group {GROUP} snaplen 128
            }}
        }}\n"
    );
    run(&["ip", "netns", "exec", a, "nft", "-f", "-"], Some(&rules));
    let dump = nflog_dump();
    let mut capture = spawn_in(
        a,
        &dump,
        &[
            "--group",
            &GROUP.to_string(),
            "--quiet",
            "--stall-ms",
            "3000",
            "--idle-ms",
            "3000",
            "--max-ms",
            "60000",
        ],
    );
    capture.wait_ready();
    let t = nstraffic();
    let t = t.to_str().expect("path");
    let blast = run(
        &[
            "ip",
            "netns",
            "exec",
            a,
            t,
            "udp-blast",
            "198.51.100.2:9999",
            "150000",
            "16",
        ],
        None,
    );
    let blast = String::from_utf8_lossy(&blast.stdout).to_string();
    let sent: u64 = field(&blast, "sent")
        .and_then(|v| v.parse().ok())
        .expect("sent");
    // after the reader has caught up, a few more packets reveal any gap at the end
    std::thread::sleep(Duration::from_millis(2500));
    run(
        &[
            "ip",
            "netns",
            "exec",
            a,
            t,
            "udp-flows",
            "198.51.100.2:9999",
            "1",
            "20",
        ],
        None,
    );
    let out = capture.finish(Duration::from_secs(60));
    let stats = out.lines().last().expect("stats line");
    println!("sent {sent} + 20, {stats}");
    let get = |k: &str| -> u64 { field(stats, k).and_then(|v| v.parse().ok()).expect(k) };
    let (received, dropped, overruns) = (get("received"), get("dropped"), get("overruns"));
    assert!(overruns >= 1, "the stalled reader must overflow: {stats}");
    assert!(dropped > 0 && received >= 20, "{stats}");
    assert_eq!(
        received + dropped,
        sent + 20,
        "every logged packet is received or counted as dropped"
    );
}
