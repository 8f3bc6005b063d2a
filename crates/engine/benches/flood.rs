//! Memory and throughput under a QUIC Initial flood (issue 7, finding 3).
//!
//! `cargo bench -p geofence-engine --bench flood` sends 60,000 QUIC v1
//! Initials through one engine, one 1,200-byte datagram per client socket,
//! each valid, with its only CRYPTO frame at offset 16383 (a lying offset
//! that used to reserve the whole 16 KiB window per flow). Every 50th flow is
//! benign and must still be decided: a QUIC Initial and a TCP ClientHello
//! for `zoom.us` to a server in a blocked jurisdiction (expected `block`) and
//! a ClientHello for `example.com` to an allowed one (expected no app).
//! Reports peak RSS (VmHWM from /proc/self/status), the reassembly pool's
//! peak, throughput, and whether every benign flow was decided correctly.
//!
//! Options (after `--`): `--flows N`, `--offset O` (CRYPTO offset; 0 is the
//! honest case), `--pcap PATH` (also write the packets as a pcap, to run
//! `geofencectl replay` on the same flood).

use std::net::Ipv4Addr;
use std::time::Instant;

use geofence_classify::quic::{client_initial_datagram, VERSION_1};
use geofence_decode::LinkType;
use geofence_engine::{Engine, EngineConfig, Event};

#[path = "../tests/common/mod.rs"]
mod common;
use common::cn_engine;
use geofence_testkit::pcap::{tcp_v4, udp_v4, PcapLink, PcapWriter, TcpFlags};
use geofence_testkit::wire::client_hello;

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn engine() -> Engine {
    cn_engine(EngineConfig::default())
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let flows: u32 = arg("--flows")
        .and_then(|v| v.parse().ok())
        .unwrap_or(60_000);
    let offset: u64 = arg("--offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(16383);
    let mut pcap = arg("--pcap").map(|p| {
        let f = std::fs::File::create(&p).expect("create pcap");
        PcapWriter::new_nanos(std::io::BufWriter::new(f), PcapLink::Ethernet).expect("pcap header")
    });
    let hello = client_hello("zoom.us");
    let flood = client_initial_datagram(VERSION_1, &[0x5a; 8], offset, &hello[5..40], 1200)
        .expect("flood initial");
    let benign_quic =
        client_initial_datagram(VERSION_1, &[0x77; 8], 0, &hello[5..], 1200).expect("initial");
    let benign_tls = client_hello("zoom.us");
    let other_tls = client_hello("example.com");
    let blocked = Ipv4Addr::new(203, 0, 113, 10);
    let allowed = Ipv4Addr::new(198, 51, 100, 20);

    let mut e = engine();
    let mut ev = Vec::new();
    let rss_before = status_kib("VmRSS:");
    let t0 = 1_700_000_000_000_000_000u64;
    let mut ts = t0;
    let mut packets = 0u64;
    let mut expect_block = 0u32;
    let mut got_block = 0u32;
    let mut wrong = 0u32;
    let start = Instant::now();
    for i in 0..flows {
        let client = Ipv4Addr::from(0x0a00_0000 + (i / 60_000) * 65_536 + (i % 60_000) / 250);
        let port = 1024 + (i % 250) as u16 * 200 + (i / 15_000) as u16;
        let mut frames = vec![udp_v4(client, port, allowed, 443, &flood)];
        if i % 50 == 0 {
            let c = Ipv4Addr::new(10, 200, (i >> 8) as u8, i as u8);
            frames.push(udp_v4(c, 50000, blocked, 443, &benign_quic));
            frames.push(tcp_v4(c, 50001, blocked, 443, 100, TcpFlags::SYN, &[]));
            frames.push(tcp_v4(
                c,
                50001,
                blocked,
                443,
                101,
                TcpFlags::PSH_ACK,
                &benign_tls,
            ));
            frames.push(tcp_v4(c, 50002, allowed, 443, 100, TcpFlags::SYN, &[]));
            frames.push(tcp_v4(
                c,
                50002,
                allowed,
                443,
                101,
                TcpFlags::PSH_ACK,
                &other_tls,
            ));
            expect_block += 2;
        }
        for f in frames {
            ts += 1_000;
            packets += 1;
            e.process_frame(ts, LinkType::Ethernet, &f, &mut ev);
            if let Some(w) = pcap.as_mut() {
                w.write_packet(ts, &f).expect("pcap write");
            }
        }
        for x in ev.drain(..) {
            if let Event::Labelled { report, .. } = x {
                let benign = report.src_ip.to_string().starts_with("10.200.");
                let zoom = report.app.as_ref().is_some_and(|a| a.as_str() == "zoom");
                match (benign, report.dest_ip == std::net::IpAddr::V4(blocked)) {
                    (true, true) if zoom && report.action.as_str() == "block" => got_block += 1,
                    (true, _) => wrong += 1,
                    (false, _) if zoom => wrong += 1,
                    _ => {}
                }
            }
        }
    }
    let el = start.elapsed();
    let st = e.stats();
    println!(
        "flood: {flows} QUIC v1 Initials (CRYPTO offset {offset}) + {} benign flows, {packets} packets",
        expect_block / 2 * 3
    );
    println!(
        "  {:.0} packets/s, {:.2} s; peak RSS {} MiB (VmHWM; {} MiB before the flood)",
        packets as f64 / el.as_secs_f64(),
        el.as_secs_f64(),
        status_kib("VmHWM:") / 1024,
        rss_before / 1024
    );
    println!(
        "  reassembly pool: peak {} KiB, reclaimed {}, over share {}, refused {}; flows live {}, evicted {}",
        st.reassembly.peak / 1024,
        st.reassembly.reclaimed,
        st.reassembly.over_share,
        st.reassembly.refused,
        st.flows.live,
        st.flows.evicted
    );
    println!(
        "  benign zoom flows to the blocked jurisdiction decided `block`: {got_block} of {expect_block}; wrong labels: {wrong}"
    );
    if let Some(w) = pcap {
        w.into_inner().expect("pcap flush");
    }
    if got_block != expect_block || wrong != 0 {
        eprintln!("benign flows were not decided correctly");
        std::process::exit(1);
    }
}
