//! `geofencectl replay` through tunnels and link types, on captures the tests
//! write: the inner flows of every supported encapsulation are classified and
//! reported with their tunnel when the policy enables it, are not decapsulated
//! when it does not, and a forged inner packet never stands for another client.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use geofence_testkit::encap::*;
use geofence_testkit::mmdb::geoip2_country;
use geofence_testkit::pcap::{ip_packet, tcp_v4, tcp_v6, udp_v4, PcapLink, PcapWriter, TcpFlags};
use geofence_testkit::wire::{client_hello, dns_response, zoom_sfu_audio, zoom_sfu_hello};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_geofencectl");

/// Inner client (another LAN client's address) and servers.
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
const ZOOM_TLS: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const ZOOM_SFU: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 99);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9);
const ZOOM6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0x10);
/// Outer (tunnel) endpoints: the LAN host that sends, and its peer.
const OUTER_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 66);
const OUTER_B: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 50);

fn policy(dir: &Path, tunnels: &str) -> PathBuf {
    geoip2_country(&[
        ("203.0.113.0/24", "CN", None),
        ("198.51.100.0/24", "DE", None),
        ("2001:db8:c::/48", "CN", None),
    ])
    .write(&dir.join("geo.mmdb"))
    .expect("mmdb");
    let p = dir.join(format!("policy-{}.toml", tunnels.len()));
    std::fs::write(
        &p,
        format!(
            r#"[geoip]
databases = ["geo.mmdb"]

[signatures]
dirs = []

[decode]
tunnels = [{tunnels}]

[jurisdictions]
prc = ["CN"]

[[rule]]
name = "no-conferencing-to-prc"
apps = ["conferencing"]
to = ["prc"]
action = "block"
"#
        ),
    )
    .expect("policy");
    p
}

const ALL_TUNNELS: &str = r#""gtpu", "gre", "ipip", "vxlan", "geneve""#;

fn write_pcap(path: &Path, link: PcapLink, frames: &[Vec<u8>]) {
    let f = std::fs::File::create(path).expect("pcap");
    let mut w = PcapWriter::new(f, link).expect("writer");
    let mut t = 1_700_000_000_000_000_000u64;
    for fr in frames {
        t += 1_000_000;
        w.write_packet(t, fr).expect("write");
    }
    w.into_inner().expect("flush");
}

fn replay(config: &Path, cap: &Path) -> Vec<Value> {
    let o = Command::new(BIN)
        .args(["replay", "--json", "--config"])
        .arg(config)
        .arg(cap)
        .output()
        .expect("geofencectl runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// The inner IP packets of two Zoom flows from `CLIENT`: a TCP connection to
/// 203.0.113.10:443 with a zoom.us ClientHello, and Zoom SFU media to
/// 203.0.113.99:8801. With `v6`, the TLS flow is IPv6 instead.
fn inner_packets(v6: bool) -> Vec<Vec<u8>> {
    let ch = client_hello("zoom.us");
    let mut v = if v6 {
        vec![
            ip_packet(&tcp_v6(CLIENT6, 50000, ZOOM6, 443, 1, TcpFlags::SYN, &[])).to_vec(),
            ip_packet(&tcp_v6(
                ZOOM6,
                443,
                CLIENT6,
                50000,
                9,
                TcpFlags::SYN_ACK,
                &[],
            ))
            .to_vec(),
            ip_packet(&tcp_v6(
                CLIENT6,
                50000,
                ZOOM6,
                443,
                2,
                TcpFlags::PSH_ACK,
                &ch,
            ))
            .to_vec(),
        ]
    } else {
        vec![
            ip_packet(&tcp_v4(CLIENT, 50000, ZOOM_TLS, 443, 1, TcpFlags::SYN, &[])).to_vec(),
            ip_packet(&tcp_v4(
                ZOOM_TLS,
                443,
                CLIENT,
                50000,
                9,
                TcpFlags::SYN_ACK,
                &[],
            ))
            .to_vec(),
            ip_packet(&tcp_v4(
                CLIENT,
                50000,
                ZOOM_TLS,
                443,
                2,
                TcpFlags::PSH_ACK,
                &ch,
            ))
            .to_vec(),
        ]
    };
    v.push(ip_packet(&udp_v4(CLIENT, 52000, ZOOM_SFU, 8801, &zoom_sfu_hello())).to_vec());
    v.push(ip_packet(&udp_v4(CLIENT, 52000, ZOOM_SFU, 8801, &zoom_sfu_audio(1))).to_vec());
    v
}

fn outer_v4(proto: u8, body: &[u8]) -> Vec<u8> {
    ethernet(ETHERTYPE_IPV4, &ipv4(OUTER_A, OUTER_B, proto, body))
}

fn outer_v6(next: u8, body: &[u8]) -> Vec<u8> {
    let a: Ipv6Addr = "2001:db8:ff::66".parse().expect("v6");
    let b: Ipv6Addr = "2001:db8:ff::50".parse().expect("v6");
    ethernet(ETHERTYPE_IPV6, &ipv6(a, b, next, body))
}

fn v4_or_v6(ip: &[u8]) -> (u16, u16) {
    if ip[0] >> 4 == 4 {
        (ETHERTYPE_IPV4, PPP_IPV4)
    } else {
        (ETHERTYPE_IPV6, PPP_IPV6)
    }
}

struct Encap {
    name: &'static str,
    link: PcapLink,
    /// The report's `tunnel` (None for link-level framing).
    tunnel: Option<&'static str>,
    v6: bool,
    wrap: fn(&[u8]) -> Vec<u8>,
}

fn encaps() -> Vec<Encap> {
    vec![
        Encap {
            name: "pppoe",
            link: PcapLink::Ethernet,
            tunnel: None,
            v6: false,
            wrap: |ip| {
                let (_, pp) = v4_or_v6(ip);
                ethernet(
                    ETHERTYPE_PPPOE_SESSION,
                    &pppoe_session(0x11, &ppp(pp, false, false, ip)),
                )
            },
        },
        Encap {
            name: "ppp link type",
            link: PcapLink::Dlt(9),
            tunnel: None,
            v6: true,
            wrap: |ip| ppp(v4_or_v6(ip).1, true, false, ip),
        },
        Encap {
            name: "pppoe link type",
            link: PcapLink::Dlt(51),
            tunnel: None,
            v6: false,
            wrap: |ip| pppoe_session(3, &ppp(v4_or_v6(ip).1, false, false, ip)),
        },
        Encap {
            name: "mpls",
            link: PcapLink::Ethernet,
            tunnel: None,
            v6: false,
            wrap: |ip| ethernet(ETHERTYPE_MPLS, &mpls(&[100, 200], ip)),
        },
        Encap {
            name: "gre",
            link: PcapLink::Ethernet,
            tunnel: Some("gre"),
            v6: false,
            wrap: |ip| outer_v4(IPPROTO_GRE, &gre(v4_or_v6(ip).0, None, None, false, ip)),
        },
        Encap {
            name: "gre with key and sequence over ipv6",
            link: PcapLink::Ethernet,
            tunnel: Some("gre"),
            v6: true,
            wrap: |ip| {
                outer_v6(
                    IPPROTO_GRE,
                    &gre(v4_or_v6(ip).0, Some(7), Some(1), true, ip),
                )
            },
        },
        Encap {
            name: "pptp",
            link: PcapLink::Ethernet,
            tunnel: Some("gre"),
            v6: false,
            wrap: |ip| {
                outer_v4(
                    IPPROTO_GRE,
                    &pptp_gre(9, Some(1), None, &ppp(v4_or_v6(ip).1, true, false, ip)),
                )
            },
        },
        Encap {
            name: "ipip 4in4 / 6in4",
            link: PcapLink::Ethernet,
            tunnel: Some("ipip"),
            v6: true,
            wrap: |ip| {
                let proto = if ip[0] >> 4 == 4 {
                    IPPROTO_IPIP
                } else {
                    IPPROTO_IPV6
                };
                outer_v4(proto, ip)
            },
        },
        Encap {
            name: "ipip 4in6 / 6in6",
            link: PcapLink::Ethernet,
            tunnel: Some("ipip"),
            v6: true,
            wrap: |ip| {
                let proto = if ip[0] >> 4 == 4 {
                    IPPROTO_IPIP
                } else {
                    IPPROTO_IPV6
                };
                outer_v6(proto, ip)
            },
        },
        Encap {
            name: "gtp-u",
            link: PcapLink::Ethernet,
            tunnel: Some("gtpu"),
            v6: false,
            wrap: |ip| outer_v4(IPPROTO_UDP, &udp(2152, 2152, &gtpu(0x1234, false, ip))),
        },
        Encap {
            name: "vxlan",
            link: PcapLink::Ethernet,
            tunnel: Some("vxlan"),
            v6: false,
            wrap: |ip| {
                let inner = ethernet(v4_or_v6(ip).0, ip);
                outer_v4(IPPROTO_UDP, &udp(40000, 4789, &vxlan(5, &inner)))
            },
        },
        Encap {
            name: "geneve",
            link: PcapLink::Ethernet,
            tunnel: Some("geneve"),
            v6: true,
            wrap: |ip| {
                outer_v4(
                    IPPROTO_UDP,
                    &udp(40001, 6081, &geneve(5, v4_or_v6(ip).0, &[], ip)),
                )
            },
        },
    ]
}

fn is_inner(r: &Value) -> bool {
    r["src_ip"] == CLIENT.to_string() || r["src_ip"] == CLIENT6.to_string()
}

/// Through every encapsulation and link type, replay yields the inner Zoom
/// flows (TLS SNI and SFU payload) with their tunnel; with no tunnel enabled
/// the network-layer tunnels are not opened, while link-level framing is.
#[test]
fn replay_classifies_inner_flows_of_every_encapsulation() {
    let dir = tempfile::tempdir().expect("tmp");
    let on = policy(dir.path(), ALL_TUNNELS);
    let off = policy(dir.path(), "");
    for e in encaps() {
        let cap = dir.path().join("cap.pcap");
        let frames: Vec<Vec<u8>> = inner_packets(e.v6).iter().map(|ip| (e.wrap)(ip)).collect();
        write_pcap(&cap, e.link, &frames);
        let recs = replay(&on, &cap);
        let tls_dst = if e.v6 {
            ZOOM6.to_string()
        } else {
            ZOOM_TLS.to_string()
        };
        let tls = recs
            .iter()
            .find(|r| r["dest_ip"] == tls_dst.as_str() && r["dest_port"] == 443)
            .unwrap_or_else(|| panic!("{}: no inner TLS flow in {recs:?}", e.name));
        assert_eq!(tls["app"], "zoom", "{}: {tls}", e.name);
        assert_eq!(tls["method"], "tls-sni", "{}: {tls}", e.name);
        assert_eq!(tls["host"], "zoom.us", "{}", e.name);
        let sfu = recs
            .iter()
            .find(|r| r["dest_ip"] == ZOOM_SFU.to_string() && r["dest_port"] == 8801)
            .unwrap_or_else(|| panic!("{}: no inner SFU flow in {recs:?}", e.name));
        assert_eq!(sfu["app"], "zoom", "{}: {sfu}", e.name);
        assert_eq!(sfu["method"], "payload", "{}: {sfu}", e.name);
        for r in [tls, sfu] {
            match e.tunnel {
                None => {
                    assert!(r.get("tunnel").is_none(), "{}: {r}", e.name);
                    assert_eq!(r["action"], "block", "{}: link-level is enforced", e.name);
                    assert_eq!(r["kernel"], "dynamic", "{}: {r}", e.name);
                }
                Some(t) => {
                    assert_eq!(r["tunnel"], t, "{}: {r}", e.name);
                    assert!(r["tunnel_src"].is_string(), "{}: {r}", e.name);
                    // decided, never a kernel block aimed at an inner address
                    assert_eq!(r["rule"], "no-conferencing-to-prc", "{}", e.name);
                    assert_eq!(r["action"], "alert", "{}: {r}", e.name);
                    assert_eq!(r["kernel"], "none", "{}: no kernel block: {r}", e.name);
                    assert!(
                        r["evidence"]
                            .as_str()
                            .unwrap_or("")
                            .contains("outer header"),
                        "{}: {r}",
                        e.name
                    );
                }
            }
        }
        let recs = replay(&off, &cap);
        let inner = recs.iter().filter(|r| is_inner(r)).count();
        if e.tunnel.is_some() {
            assert_eq!(inner, 0, "{}: decapsulated while off: {recs:?}", e.name);
        } else {
            assert_eq!(inner, 2, "{}: link-level framing is always decoded", e.name);
        }
    }
}

/// Issue 7, finding 2: a LAN host (10.0.0.66) sends UDP to port 2152 whose
/// "inner packets" claim to come from another client (10.0.0.9) and talk to a
/// blocked Zoom server. With GTP-U off (the default) the inner flow is not
/// reported or decided: what replay shows is the outer datagram of the real
/// sender. On the old main the inner 10.0.0.9 flow was reported as a zoom
/// block (a kernel block against 10.0.0.9) and the outer one not at all.
#[test]
fn forged_gtpu_inner_flow_is_not_decided_when_gtpu_is_off() {
    let dir = tempfile::tempdir().expect("tmp");
    let cap = dir.path().join("forged.pcap");
    let mut frames: Vec<Vec<u8>> = inner_packets(false)
        .iter()
        .map(|ip| udp_v4(OUTER_A, 2152, OUTER_B, 2152, &gtpu(1, false, ip)))
        .collect();
    // an inner "DNS answer" to 10.0.0.9 naming 203.0.113.14 as zoom.us
    let forged_dns = dns_response(
        0x1111,
        "zoom.us",
        1,
        &["203.0.113.14".parse().expect("ip")],
        86_400,
        false,
    );
    let inner_dns = ip_packet(&udp_v4(
        "198.51.100.53".parse().expect("ip"),
        53,
        CLIENT,
        40000,
        &forged_dns,
    ))
    .to_vec();
    frames.push(udp_v4(
        OUTER_A,
        2152,
        OUTER_B,
        2152,
        &gtpu(1, false, &inner_dns),
    ));
    // then the real 10.0.0.9 opens an ordinary connection to 203.0.113.14
    let victim_dst: Ipv4Addr = "203.0.113.14".parse().expect("ip");
    frames.push(tcp_v4(
        CLIENT,
        51000,
        victim_dst,
        443,
        1,
        TcpFlags::SYN,
        &[],
    ));
    write_pcap(&cap, PcapLink::Ethernet, &frames);

    // the default: no [decode] section at all
    let default = dir.path().join("default.toml");
    let text = std::fs::read_to_string(policy(dir.path(), "")).expect("read");
    std::fs::write(&default, text.replace("[decode]\ntunnels = []\n", "")).expect("write");
    let recs = replay(&default, &cap);
    assert!(
        !recs.iter().any(|r| is_inner(r) && r["dest_port"] != 443)
            && !recs.iter().any(|r| r["app"] == "zoom"),
        "a forged inner flow was decided: {recs:?}"
    );
    let outer = recs
        .iter()
        .find(|r| r["src_ip"] == OUTER_A.to_string() && r["dest_port"] == 2152)
        .unwrap_or_else(|| panic!("the real sender's datagram is reported: {recs:?}"));
    assert!(outer["app"].is_null());
    assert!(outer.get("tunnel").is_none());
    let victim = recs
        .iter()
        .find(|r| r["dest_ip"] == victim_dst.to_string())
        .expect("the victim's own flow");
    assert!(
        victim["app"].is_null(),
        "forged DNS steered a label: {victim}"
    );
    assert_eq!(victim["action"], "allow");

    // Enabled: the inner flows are reported with their tunnel and the real
    // sender's outer address, alerted (not blocked); the inner DNS answer is
    // not learnt, so the victim's own connection is still untouched.
    let on = policy(dir.path(), r#""gtpu""#);
    let recs = replay(&on, &cap);
    let inner: Vec<&Value> = recs.iter().filter(|r| r.get("tunnel").is_some()).collect();
    assert!(inner.len() >= 2, "{recs:?}");
    for r in &inner {
        assert_eq!(r["tunnel"], "gtpu");
        // oriented like the flow: the client side's outer address (the DNS
        // "answer" runs from the far end)
        let client_side = if r["dest_port"] == 53 {
            OUTER_B
        } else {
            OUTER_A
        };
        assert_eq!(r["tunnel_src"], client_side.to_string(), "{r}");
        assert_ne!(r["action"], "block", "{r}");
        assert!(r["verdict"].is_null(), "{r}");
    }
    assert!(inner.iter().any(|r| r["app"] == "zoom"));
    let victim = recs
        .iter()
        .find(|r| r["dest_ip"] == victim_dst.to_string() && r.get("tunnel").is_none())
        .expect("the victim's own flow");
    assert!(
        victim["app"].is_null(),
        "forged DNS steered a label: {victim}"
    );
}

/// A capture with a 524,501-byte record (over the reader's 256 KiB limit)
/// between flows: the record is skipped and counted, the flows after it are
/// still read.
#[test]
fn replay_skips_an_oversized_record_and_reads_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = policy(dir.path(), "");
    let cap = dir.path().join("big.pcap");
    let inner = inner_packets(false);
    let mut frames: Vec<Vec<u8>> = vec![ethernet(ETHERTYPE_IPV4, &inner[0])];
    frames.push(vec![0x5A; 524_501]);
    frames.extend(inner[1..].iter().map(|ip| ethernet(ETHERTYPE_IPV4, ip)));
    write_pcap(&cap, PcapLink::Ethernet, &frames);
    let o = Command::new(BIN)
        .args(["replay", "--json", "--stats", "--config"])
        .arg(&p)
        .arg(&cap)
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let recs: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(
        recs.iter()
            .any(|r| r["dest_port"] == 8801 && r["app"] == "zoom"),
        "flows after the oversized record are read: {out}"
    );
    assert!(recs.iter().any(|r| r["host"] == "zoom.us"), "{out}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("\"skipped_records\":1"), "{err}");
}

/// With NFLOG capture the kernel logs the first packets of each conntrack
/// entry, and a tunnel is one entry: replay (which simulates it) sees only
/// the inner packets among the tunnel's first ones. With AF_PACKET capture
/// every inner packet is seen.
#[test]
fn nflog_hands_over_only_a_tunnels_first_packets() {
    let dir = tempfile::tempdir().expect("tmp");
    let nflog = policy(dir.path(), r#""gre""#);
    let text = std::fs::read_to_string(&nflog).expect("read");
    let afpacket = dir.path().join("afpacket.toml");
    std::fs::write(
        &afpacket,
        format!("[daemon]\ncapture = \"afpacket\"\n\n{text}"),
    )
    .expect("write");
    // ten keepalive-like inner datagrams of one flow, then the Zoom flows
    let mut inner: Vec<Vec<u8>> = (0..10u8)
        .map(|i| ip_packet(&udp_v4(CLIENT, 30000, OUTER_B, 9000, &[i; 20])).to_vec())
        .collect();
    inner.extend(inner_packets(false));
    let frames: Vec<Vec<u8>> = inner
        .iter()
        .map(|ip| outer_v4(IPPROTO_GRE, &gre(ETHERTYPE_IPV4, None, None, false, ip)))
        .collect();
    let cap = dir.path().join("long.pcap");
    write_pcap(&cap, PcapLink::Ethernet, &frames);
    let zoom = |recs: &[Value]| recs.iter().filter(|r| r["app"] == "zoom").count();
    assert_eq!(zoom(&replay(&afpacket, &cap)), 2);
    let recs = replay(&nflog, &cap);
    assert_eq!(
        zoom(&recs),
        0,
        "the kernel hands over only the tunnel's first packets: {recs:?}"
    );
}
