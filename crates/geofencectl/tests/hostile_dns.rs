//! `geofencectl replay` on captures with forged DNS (issue 7): answers
//! nobody asked for, answers to another client, wrong transaction ids, and
//! a UDP client bound to source port 53.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use geofence_testkit::mmdb::geoip2_country;
use geofence_testkit::pcap::{tcp_v4, udp_v4, PcapLink, PcapWriter, TcpFlags};
use geofence_testkit::wire::{dns_query, dns_response, zoom_sfu_audio, zoom_sfu_hello};

const BIN: &str = env!("CARGO_BIN_EXE_geofencectl");

fn policy(dir: &Path) -> PathBuf {
    geoip2_country(&[("203.0.113.0/24", "CN", None)])
        .write(&dir.join("geo.mmdb"))
        .expect("mmdb");
    let p = dir.join("policy.toml");
    std::fs::write(
        &p,
        "[geoip]\ndatabases = [\"geo.mmdb\"]\n[signatures]\ndirs = []\n[jurisdictions]\nprc = [\"CN\"]\n\
         [[rule]]\nname = \"no-conferencing-to-prc\"\napps = [\"conferencing\"]\nto = [\"prc\"]\naction = \"block\"\n",
    )
    .expect("policy");
    p
}

fn write(path: &Path, frames: Vec<Vec<u8>>) {
    let f = std::fs::File::create(path).expect("pcap");
    let mut w = PcapWriter::new(f, PcapLink::Ethernet).expect("writer");
    let mut t = 1_700_000_000_000_000_000u64;
    for fr in frames {
        t += 1_000_000;
        w.write_packet(t, &fr).expect("write");
    }
}

fn replay(dir: &Path, frames: Vec<Vec<u8>>) -> Vec<serde_json::Value> {
    let p = policy(dir);
    let cap = dir.join("c.pcap");
    write(&cap, frames);
    let o = Command::new(BIN)
        .args(["replay", "--config"])
        .arg(&p)
        .arg("--json")
        .arg(&cap)
        .output()
        .expect("geofencectl runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn flow<'a>(recs: &'a [serde_json::Value], src: &str, dst_port: u64) -> &'a serde_json::Value {
    recs.iter()
        .find(|r| r["src_ip"] == src && r["dest_port"] == dst_port)
        .unwrap_or_else(|| panic!("no flow {src} -> :{dst_port} in {recs:?}"))
}

const RESOLVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);
const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 14);

fn syn(client: Ipv4Addr, port: u16) -> [Vec<u8>; 2] {
    [
        tcp_v4(client, port, SERVER, 443, 1, TcpFlags::SYN, &[]),
        tcp_v4(SERVER, 443, client, port, 9, TcpFlags::SYN_ACK, &[]),
    ]
}

#[test]
fn replay_uses_only_answers_to_the_clients_own_queries() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = Ipv4Addr::new(10, 0, 0, 5);
    let b = Ipv4Addr::new(10, 0, 0, 9);
    let gw = Ipv4Addr::new(198, 51, 100, 1);
    let forged = dns_response(0x1122, "zoom.us", 1, &[SERVER.into()], 2_147_483_647, false);
    let mut frames = vec![
        // Unsolicited, to another host: must not label b's SYN.
        udp_v4(RESOLVER, 53, gw, 40000, &forged),
        // Unsolicited, to b itself.
        udp_v4(RESOLVER, 53, b, 40000, &forged),
    ];
    frames.extend(syn(b, 50000));
    // b asks, a forger answers with the wrong transaction id.
    frames.push(udp_v4(
        b,
        40001,
        RESOLVER,
        53,
        &dns_query(0x3344, "zoom.us", 1),
    ));
    frames.push(udp_v4(RESOLVER, 53, b, 40001, &forged));
    frames.extend(syn(b, 50001));
    // a asks and gets the real answer: only a's SYN is labelled by it.
    frames.push(udp_v4(
        a,
        40002,
        RESOLVER,
        53,
        &dns_query(0x5566, "zoom.us", 1),
    ));
    frames.push(udp_v4(
        RESOLVER,
        53,
        a,
        40002,
        &dns_response(0x5566, "zoom.us", 1, &[SERVER.into()], 60, false),
    ));
    frames.extend(syn(b, 50002));
    frames.extend(syn(a, 50003));
    let recs = replay(dir.path(), frames);
    for port in [50000u16, 50001, 50002] {
        let r = recs
            .iter()
            .find(|r| r["src_ip"] == "10.0.0.9" && r["src_port"] == port)
            .expect("b's flow");
        assert!(
            r["app"].is_null(),
            "b's SYN from :{port} must not be labelled: {r}"
        );
        assert_eq!(r["action"], "allow", "{r}");
    }
    let r = flow(&recs, "10.0.0.5", 443);
    assert_eq!(r["app"], "zoom", "{r}");
    assert_eq!(r["method"], "dns", "{r}");
    assert_eq!(r["action"], "block", "{r}");
}

#[test]
fn replay_inspects_a_udp_client_on_source_port_53() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = Ipv4Addr::new(10, 0, 0, 5);
    let mut frames = vec![udp_v4(c, 53, SERVER, 8801, &zoom_sfu_hello())];
    for i in 0..4 {
        frames.push(udp_v4(c, 53, SERVER, 8801, &zoom_sfu_audio(i)));
    }
    let recs = replay(dir.path(), frames);
    let r = recs
        .iter()
        .find(|r| r["dest_ip"] == "203.0.113.14" || r["src_ip"] == "203.0.113.14")
        .expect("the flow");
    assert_eq!(r["src_ip"], "10.0.0.5", "{r}");
    assert_eq!(r["src_port"], 53, "{r}");
    assert_eq!(r["dest_port"], 8801, "{r}");
    assert_eq!(r["app"], "zoom", "{r}");
    assert_eq!(r["action"], "block", "{r}");
}
