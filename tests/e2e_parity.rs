//! Live equals replay, on a real kernel, on real traffic shapes: the client
//! side of every TCP and UDP flow of the dev corpus (`../shared/corpus`) is
//! sent again, payload by payload, from a client namespace through a
//! gateway namespace running `geofenced` (NFLOG capture, enforcing) to
//! servers at documentation addresses. Each original server gets its own
//! documentation address, placed by the test's database in the original's
//! country, so jurisdictions are decided as on the original traffic.
//!
//! What the gateway's client-facing interface saw is captured (libpcap) and
//! replayed with `geofencectl replay` under the same policy. The live
//! daemon's alerts and replay must agree: the same (client, server, app,
//! action) decisions on both sides (the grain of the daemon's alert
//! throttle, which writes one line for retries on new ports), and where
//! replay says the kernel blocks a flow dynamically, the live alert says
//! the block reached the kernel. Mismatches: 0.
//!
//! DNS flows of the corpus are not re-sent (their answers name real
//! addresses); DNS paths are covered by e2e_daemon.rs and e2e_gateway.rs.
//!
//! Needs root and `../shared`; skips with a message otherwise.

use std::collections::{BTreeMap, HashMap};
use std::io::BufReader;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use geofence_decode::{decode, PcapReader, Proto};
use geofence_testkit::mmdb::geoip2_country;
use geofence_testkit::netns::{require_root, Topology};
use geofence_tests::{shared_dir, spawn_tool, start_daemon, workspace_bin};
use serde_json::Value;

const PROBE: &str = env!("CARGO_BIN_EXE_gf-e2e-probe");
const SINK_PORT: u16 = 40000;

/// One corpus flow to send again: the client's payloads in capture order.
struct Flow {
    proto: &'static str,
    server: (IpAddr, u16),
    country: Option<String>,
    registered: Option<String>,
    payloads: Vec<Vec<u8>>,
}

/// A flow in a capture file: (file, proto, client, server).
type FlowAt = (String, &'static str, (IpAddr, u16), (IpAddr, u16));

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The corpus flows, oriented as replay orients them, with their client
/// payloads (TCP retransmissions of the same sequence number dropped).
fn corpus_flows(shared: &Path) -> Vec<Flow> {
    let mut pcaps: Vec<_> = std::fs::read_dir(shared.join("corpus/pcap"))
        .expect("corpus dir")
        .map(|e| e.expect("entry").path())
        .collect();
    pcaps.sort();
    let out = Command::new(workspace_bin("geofencectl"))
        .args(["replay", "--json", "--config"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config/geofence.toml"))
        .arg("--geoip")
        .arg(shared.join("geo/geo-whois-asn-country.mmdb"))
        .args(&pcaps)
        .output()
        .expect("replay runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut flows = Vec::new();
    // (pcap name, proto, client, server) -> index in flows
    let mut index: HashMap<FlowAt, usize> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).expect("json");
        let proto = if v["proto"] == "tcp" { "tcp" } else { "udp" };
        let ip = |k: &str| v[k].as_str().and_then(|s| s.parse().ok());
        let (Some(src), Some(dst)) = (ip("src_ip"), ip("dest_ip")) else {
            continue;
        };
        let sport = v["src_port"].as_u64().unwrap_or(0) as u16;
        let dport = v["dest_port"].as_u64().unwrap_or(0) as u16;
        if [53, 5353, 5355].contains(&dport) || sport == 53 {
            continue;
        }
        let key = (
            v["pcap"].as_str().unwrap_or("").to_string(),
            proto,
            (src, sport),
            (dst, dport),
        );
        index.insert(key, flows.len());
        flows.push(Flow {
            proto,
            server: (dst, dport),
            country: v["country"].as_str().map(str::to_string),
            registered: v["registered_country"].as_str().map(str::to_string),
            payloads: Vec::new(),
        });
    }
    for p in &pcaps {
        let name = p.file_name().expect("name").to_string_lossy().to_string();
        let f = std::fs::File::open(p).expect("pcap");
        let mut r = PcapReader::new(BufReader::new(f)).expect("pcap header");
        let mut last_seq: HashMap<usize, u32> = HashMap::new();
        while let Ok(Some(raw)) = r.next_packet() {
            let Ok(pk) = decode(raw.link, raw.data) else {
                continue;
            };
            if pk.payload.is_empty() {
                continue;
            }
            let proto = if pk.proto == Proto::Tcp { "tcp" } else { "udp" };
            let key = (name.clone(), proto, (pk.src, pk.sport), (pk.dst, pk.dport));
            let Some(&i) = index.get(&key) else {
                continue;
            };
            if let Some(t) = pk.tcp {
                if last_seq.get(&i) == Some(&t.seq) {
                    continue;
                }
                last_seq.insert(i, t.seq);
            }
            flows[i].payloads.push(pk.payload.to_vec());
        }
    }
    flows.retain(|f| !f.payloads.is_empty());
    flows
}

/// A decision as the alert log records it: the daemon's alert throttle
/// writes one line per (client, server, app, action) and suppresses the
/// repeats (retries on new ports) for a minute, so decisions are compared
/// at that grain.
type Key = (IpAddr, IpAddr, Option<String>, String);

fn key_of(v: &Value) -> Option<Key> {
    let ip = |k: &str| v[k].as_str().and_then(|s| s.parse().ok());
    Some((
        ip("src_ip")?,
        ip("dest_ip")?,
        v["app"].as_str().map(str::to_string),
        v["action"].as_str()?.to_string(),
    ))
}

#[test]
fn live_daemon_and_replay_decide_alike_on_the_corpus() {
    if !require_root() {
        return;
    }
    let Some(shared) = shared_dir() else {
        geofence_testkit::skip("../shared (the corpus) is not beside the checkout");
        return;
    };
    let flows = corpus_flows(&shared);
    assert!(flows.len() > 200, "corpus flows: {}", flows.len());

    // One documentation address per original server.
    let mut map: BTreeMap<IpAddr, IpAddr> = BTreeMap::new();
    let (mut n4, mut n6) = (2u32, 1u32);
    for f in &flows {
        if map.contains_key(&f.server.0) {
            continue;
        }
        let a: IpAddr = if f.server.0.is_ipv4() && n4 <= 254 {
            n4 += 1;
            format!("203.0.113.{}", n4 - 1).parse().expect("v4")
        } else {
            n6 += 1;
            format!("2001:db8:2::1:{:x}", n6 - 1).parse().expect("v6")
        };
        map.insert(f.server.0, a);
    }
    let mut geo = Vec::new();
    let mut countries: HashMap<String, usize> = HashMap::new();
    for f in &flows {
        if let Some(c) = &f.country {
            *countries.entry(c.clone()).or_default() += 1;
        }
    }
    for f in &flows {
        let (Some(c), Some(a)) = (&f.country, map.get(&f.server.0)) else {
            continue;
        };
        let cidr = if a.is_ipv4() {
            format!("{a}/32")
        } else {
            format!("{a}/128")
        };
        geo.push((cidr, c.clone(), f.registered.clone()));
    }
    geo.sort();
    geo.dedup_by(|a, b| a.0 == b.0);
    // Block conferencing to the country most servers are in; alert on
    // conferencing anywhere else, so every labelled flow leaves an alert.
    let top = countries
        .iter()
        .max_by_key(|(c, n)| (**n, c.to_string()))
        .map(|(c, _)| c.clone())
        .expect("a country");

    let t = Topology::new("gfp").expect("namespaces");
    let dir = std::env::temp_dir().join(format!("gf-e2e-{}", t.gw));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let entries: Vec<(&str, &str, Option<&str>)> = geo
        .iter()
        .map(|(c, cc, r)| (c.as_str(), cc.as_str(), r.as_deref()))
        .collect();
    geoip2_country(&entries)
        .write(&dir.join("geo.mmdb"))
        .expect("mmdb");
    let policy = format!(
        r#"
[daemon]
mode = "gateway"
enforce = true
capture = "nflog"
nflog_group = 23
alert_log = "{d}/alerts.jsonl"
state_dir = "{d}/state"

[geoip]
databases = ["{d}/geo.mmdb"]

[signatures]
dirs = []

[jurisdictions]
blocked = ["{top}"]

[[rule]]
name = "no-conferencing-to-{top}"
apps = ["conferencing"]
to = ["blocked"]
action = "block"
verdict = "reject"

[[rule]]
name = "watch-conferencing"
apps = ["conferencing"]
to = ["any"]
action = "alert"

[default]
action = "allow"
"#,
        d = dir.display()
    );
    let config = dir.join("geofence.toml");
    std::fs::write(&config, policy).expect("config");

    // Server addresses, and one sink behind a redirect for every port.
    let mut batch = String::new();
    for a in map.values() {
        batch.push_str(&if a.is_ipv4() {
            format!("addr replace {a}/24 dev s0\n")
        } else {
            format!("addr replace {a}/64 dev s0 nodad\n")
        });
    }
    std::fs::write(dir.join("addrs.batch"), batch).expect("batch");
    t.ok(
        &t.srv,
        &["ip", "-batch", &dir.join("addrs.batch").to_string_lossy()],
    )
    .expect("server addresses");
    let nat = format!(
        "table inet sink {{\n chain pre {{\n  type nat hook prerouting priority dstnat;\n  \
         meta l4proto tcp redirect to :{SINK_PORT}\n  meta l4proto udp redirect to :{SINK_PORT}\n }}\n}}\n"
    );
    std::fs::write(dir.join("sink.nft"), nat).expect("nft");
    t.ok(
        &t.srv,
        &["nft", "-f", &dir.join("sink.nft").to_string_lossy()],
    )
    .expect("redirect");

    let spawn = |ns: &str, args: &[&str]| spawn_tool(&t, PROBE, ns, args);
    let _sink = spawn(&t.srv, &["sink", &format!("[::]:{SINK_PORT}"), "300"]);
    let daemon = start_daemon(&t, &config, &dir.join("daemon.log"));
    let log = || std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    let end = Instant::now() + Duration::from_secs(30);
    while !log().contains("nftables table applied and verified") {
        assert!(Instant::now() < end, "daemon did not start:\n{}", log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let pcap = dir.join("gateway.pcap");
    let pcap_s = pcap.to_string_lossy().to_string();
    let cap = spawn(&t.gw, &["capture", "g0", &pcap_s, "600"]);

    // Send the flows, each to its server's documentation address.
    let mut lines = String::new();
    for f in &flows {
        let payloads: Vec<String> = f.payloads.iter().map(|p| hex(p)).collect();
        lines.push_str(
            &serde_json::json!({
                "proto": f.proto,
                "dst": map[&f.server.0].to_string(),
                "port": f.server.1,
                "payloads": payloads,
            })
            .to_string(),
        );
        lines.push('\n');
    }
    let spec = dir.join("flows.jsonl");
    std::fs::write(&spec, lines).expect("flows");
    let o = t
        .exec(&t.client, &[PROBE, "send-flows", &spec.to_string_lossy()])
        .expect("send");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Let the daemon go idle (its sweep labels flows sharing a socket).
    std::thread::sleep(Duration::from_secs(3));
    std::fs::write(format!("{pcap_s}.stop"), b"").expect("stop capture");
    assert!(cap.wait_ok(), "capture failed");
    drop(daemon);

    // Live: every flow alert; whether the block reached the kernel.
    let alerts = std::fs::read_to_string(dir.join("alerts.jsonl")).unwrap_or_default();
    let mut live: HashMap<Key, bool> = HashMap::new();
    for line in alerts.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let kind = v.get("event_type").or_else(|| v.get("event"));
        if kind.and_then(Value::as_str) != Some("flow") {
            continue;
        }
        let Some(k) = key_of(&v) else { continue };
        let enforced = v.get("enforced_within_us").is_some_and(|x| !x.is_null());
        *live.entry(k).or_default() |= enforced;
    }
    // Replay of what the gateway saw: the flows it decided while running,
    // and whether the kernel blocks them dynamically.
    let out = Command::new(workspace_bin("geofencectl"))
        .args(["replay", "--json", "--config"])
        .arg(&config)
        .arg(&pcap)
        .output()
        .expect("replay runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut replayed: HashMap<Key, bool> = HashMap::new();
    let mut replay_flows = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).expect("json");
        if v["decided"] != Value::Bool(true) || v["action"] == "allow" {
            continue;
        }
        let Some(k) = key_of(&v) else { continue };
        replay_flows += 1;
        let dynamic = v["kernel"] == "dynamic" && v["action"] == "block";
        *replayed.entry(k).or_default() |= dynamic;
    }
    let mut mismatches = Vec::new();
    for (k, dynamic) in &replayed {
        match live.get(k) {
            None => mismatches.push(format!("{k:?}: decided by replay, not live")),
            Some(enforced) if *dynamic && !enforced => {
                mismatches.push(format!("{k:?}: replay blocks in the kernel, live did not"))
            }
            Some(_) => {}
        }
    }
    for k in live.keys() {
        if !replayed.contains_key(k) {
            mismatches.push(format!("{k:?}: decided live, not by replay"));
        }
    }
    println!(
        "parity: {} flows sent; {} decisions live, {} by replay ({} flows); {} mismatches",
        flows.len(),
        live.len(),
        replayed.len(),
        replay_flows,
        mismatches.len()
    );
    assert!(
        live.len() >= 50,
        "too few decisions to compare ({}):\n{}",
        live.len(),
        log()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    std::fs::remove_dir_all(&dir).ok();
}
