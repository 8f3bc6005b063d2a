//! Memory per tracked flow and pipeline cost per packet.
//!
//! `cargo bench -p geofence-engine --bench flows` creates N flows of one
//! UDP packet each (still being inspected, the costliest state) and N
//! labelled-and-finished TCP flows, and reports resident memory per flow
//! from /proc/self/statm; then the per-packet cost of `process_frame` on
//! the same frames.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use geofence_classify::SignatureDb;
use geofence_decode::LinkType;
use geofence_engine::flow::TableConfig;
use geofence_engine::{Engine, EngineConfig};
use geofence_geo::GeoDb;
use geofence_testkit::pcap::{tcp_v4, udp_v4, TcpFlags};

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn engine(max_flows: usize) -> Engine {
    let cfg = geofence_policy::load_str(
        "b.toml",
        "[geoip]\ndatabases = [\"x.mmdb\"]\n[signatures]\ndirs = []\n[jurisdictions]\nprc = [\"CN\"]\n\
         [[rule]]\nname = \"r\"\napps = [\"conferencing\"]\nto = [\"prc\"]\naction = \"block\"\n",
    )
    .expect("policy");
    let policy = geofence_policy::Policy::from_config(&cfg).expect("compile");
    Engine::new(
        EngineConfig {
            table: TableConfig {
                max_flows,
                ..TableConfig::default()
            },
            ..EngineConfig::default()
        },
        Arc::new(SignatureDb::builtin()),
        Arc::new(GeoDb::empty()),
        Arc::new(policy),
    )
}

fn main() {
    const N: u32 = 200_000;
    let srv = Ipv4Addr::new(203, 0, 113, 10);
    let frames: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            udp_v4(
                Ipv4Addr::from(0x0a00_0000 + i),
                40000,
                srv,
                3478,
                &[0x42; 64],
            )
        })
        .collect();
    let mut e = engine(1 << 20);
    let mut ev = Vec::new();
    let before = rss_bytes();
    let t = Instant::now();
    for (i, f) in frames.iter().enumerate() {
        e.process_frame(1_000_000 + i as u64, LinkType::Ethernet, f, &mut ev);
        ev.clear();
    }
    let el = t.elapsed();
    let after = rss_bytes();
    println!(
        "inspecting UDP flows: {} live, {:.0} bytes/flow resident, {:.0} ns/packet (new flow each packet)",
        e.stats().flows.live,
        (after.saturating_sub(before)) as f64 / f64::from(N),
        el.as_nanos() as f64 / f64::from(N)
    );
    drop(e);

    // Flows whose inspection ended: a SYN, then a ClientHello without SNI
    // match would keep state; use a non-TLS first payload so inspection
    // stops at once.
    let mut e = engine(1 << 20);
    let frames: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            tcp_v4(
                Ipv4Addr::from(0x0b00_0000 + i),
                40000,
                srv,
                80,
                1,
                TcpFlags::ACK,
                b"GET / HTTP/1.1\r\n",
            )
        })
        .collect();
    let before = rss_bytes();
    for (i, f) in frames.iter().enumerate() {
        e.process_frame(1_000_000 + i as u64, LinkType::Ethernet, f, &mut ev);
        ev.clear();
    }
    let after = rss_bytes();
    println!(
        "tracked flows after inspection: {} live, {:.0} bytes/flow resident",
        e.stats().flows.live,
        (after.saturating_sub(before)) as f64 / f64::from(N)
    );

    // Steady state: packets of existing flows.
    let t = Instant::now();
    let rounds = 5;
    for r in 0..rounds {
        for (i, f) in frames.iter().enumerate() {
            e.process_frame(
                2_000_000 + (r * N as usize + i) as u64,
                LinkType::Ethernet,
                f,
                &mut ev,
            );
            ev.clear();
        }
    }
    let el = t.elapsed();
    println!(
        "packets of known flows: {:.0} ns/packet",
        el.as_nanos() as f64 / f64::from(N * rounds as u32)
    );
}
