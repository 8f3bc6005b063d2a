//! Deterministic mutation fuzzing: 200,000 mutated inputs through `PcapReader` and
//! `decode`. The only assertion is the crate's promise: no panic, no hang, and the
//! reader never returns more than `MAX_RECORD_LEN` bytes in one packet.

mod common;

use std::io::Cursor;

use common::{corpus_dir, NgWriter, Rng};
use geofence_decode::{
    decode, decode_with, DecodeOptions, LinkType, PcapReader, TunnelSet, MAX_RECORD_LEN,
};
use geofence_testkit::encap;
use geofence_testkit::pcap::{
    ip_packet, tcp_v4, tcp_v6, udp_v4, udp_v6, PcapLink, PcapWriter, TcpFlags,
};

const MUTATIONS: usize = 200_000;

fn seed_frames() -> Vec<Vec<u8>> {
    let c4 = "192.0.2.1".parse().expect("ip");
    let s4 = "198.51.100.2".parse().expect("ip");
    let c6 = "2001:db8::1".parse().expect("ip");
    let s6 = "2001:db8::2".parse().expect("ip");
    let inner = ip_packet(&tcp_v4(c4, 1, s4, 443, 9, TcpFlags::PSH_ACK, b"in")).to_vec();
    let mut gtp = vec![0x34, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x85, 1, 0, 9, 0];
    gtp.extend_from_slice(&inner);
    let glen = (gtp.len() - 8) as u16;
    gtp[2..4].copy_from_slice(&glen.to_be_bytes());
    vec![
        tcp_v4(c4, 40000, s4, 443, 1, TcpFlags::SYN, b""),
        tcp_v6(
            c6,
            40000,
            s6,
            443,
            1,
            TcpFlags::PSH_ACK,
            &[0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5],
        ),
        udp_v4(c4, 5353, s4, 53, b"\x12\x34\x01\x00\x00\x01"),
        udp_v6(c6, 3478, s6, 3478, &[0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42]),
        udp_v4(c4, 2152, s4, 2152, &gtp),
        // GRE/PPTP, IP-in-IP, VXLAN, Geneve, PPPoE and MPLS (Ethernet frames)
        encap::ethernet(
            0x0800,
            &encap::ipv4(
                c4,
                s4,
                47,
                &encap::gre(0x0800, Some(1), Some(2), true, &inner),
            ),
        ),
        encap::ethernet(
            0x0800,
            &encap::ipv4(
                c4,
                s4,
                47,
                &encap::pptp_gre(1, Some(1), Some(1), &encap::ppp(0x21, true, false, &inner)),
            ),
        ),
        encap::ethernet(0x86DD, &encap::ipv6(c6, s6, 4, &inner)),
        encap::ethernet(
            0x0800,
            &encap::ipv4(
                c4,
                s4,
                17,
                &encap::udp(1, 4789, &encap::vxlan(1, &encap::ethernet(0x0800, &inner))),
            ),
        ),
        encap::ethernet(
            0x0800,
            &encap::ipv4(
                c4,
                s4,
                17,
                &encap::udp(1, 6081, &encap::geneve(1, 0x0800, &[0; 4], &inner)),
            ),
        ),
        encap::ethernet(
            0x8864,
            &encap::pppoe_session(1, &encap::ppp(0x21, false, false, &inner)),
        ),
        encap::ethernet(0x8847, &encap::mpls(&[1, 2], &inner)),
    ]
}

fn seed_files(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    let mut w = PcapWriter::new(Vec::new(), PcapLink::Ethernet).expect("hdr");
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(i as u64, f).expect("rec");
    }
    seeds.push(w.into_inner().expect("flush"));
    let mut w = PcapWriter::new_nanos(Vec::new(), PcapLink::RawIp).expect("hdr");
    for f in frames {
        w.write_packet_snap(1, ip_packet(f), 48).expect("rec");
    }
    seeds.push(w.into_inner().expect("flush"));
    let mut ng = NgWriter::new();
    ng.shb(false);
    ng.idb(1, 0, Some(9), Some(3));
    ng.idb(113, 96, Some(0x83), None);
    for (i, f) in frames.iter().enumerate() {
        ng.epb((i % 2) as u32, i as u64, f, f.len() as u32);
    }
    ng.spb(&frames[0]);
    ng.shb(true);
    ng.idb(101, 0, None, None);
    ng.epb(0, 7, ip_packet(&frames[1]), 99);
    seeds.push(ng.out);
    // the head of two small real files, if present
    if let Some(dir) = corpus_dir() {
        for name in ["dnscrypt_skype_false_positive.pcapng", "dingtalk.pcap"] {
            if let Ok(b) = std::fs::read(dir.join(name)) {
                seeds.push(b[..b.len().min(3000)].to_vec());
            }
        }
    }
    seeds
}

#[test]
fn mutated_captures_and_frames_never_panic() {
    let frames = seed_frames();
    let files = seed_files(&frames);
    let links = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::RawIp,
        LinkType::Ipv4,
        LinkType::Ipv6,
        LinkType::Null,
    ];
    let all = DecodeOptions {
        tunnels: TunnelSet::all(),
    };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut packets, mut decoded, mut reader_errors) = (0usize, 0usize, 0usize);
    let mut buf = Vec::new();
    for i in 0..MUTATIONS {
        if i % 2 == 0 {
            buf.clear();
            buf.extend_from_slice(&files[rng.below(files.len())]);
            rng.mutate(&mut buf);
            let Ok(mut r) = PcapReader::new(Cursor::new(buf.as_slice())) else {
                reader_errors += 1;
                continue;
            };
            // bounded: a reader must make progress, each packet consumes input
            for _ in 0..10_000 {
                match r.next_packet() {
                    Ok(Some(p)) => {
                        packets += 1;
                        assert!(p.data.len() <= MAX_RECORD_LEN as usize);
                        decoded += usize::from(decode(p.link, p.data).is_ok());
                        let _ = decode_with(p.link, p.data, all);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        reader_errors += 1;
                        break;
                    }
                }
            }
        } else {
            buf.clear();
            let f = &frames[rng.below(frames.len())];
            let link = links[rng.below(links.len())];
            match link {
                LinkType::Ethernet => buf.extend_from_slice(f),
                LinkType::LinuxSll => {
                    buf.extend_from_slice(&[0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0]);
                    buf.extend_from_slice(&f[12..]);
                }
                LinkType::LinuxSll2 => {
                    buf.extend_from_slice(&f[12..14]);
                    buf.extend_from_slice(&[0; 18]);
                    buf.extend_from_slice(&f[14..]);
                }
                LinkType::Null => {
                    buf.extend_from_slice(&[2, 0, 0, 0]);
                    buf.extend_from_slice(&f[14..]);
                }
                _ => buf.extend_from_slice(&f[14..]),
            }
            rng.mutate(&mut buf);
            if let Ok(p) = decode(link, &buf) {
                decoded += 1;
                // the payload is a sub-slice of the input
                assert!(p.payload.len() <= buf.len());
            }
            if let Ok(p) = decode_with(link, &buf, all) {
                assert!(p.payload.len() <= buf.len());
            }
        }
    }
    println!("{MUTATIONS} mutations: {packets} packets read, {decoded} decoded, {reader_errors} reader errors");
    // the mutations are mild enough that most inputs still parse: a fuzzer that only
    // ever produced garbage would not exercise the deep paths
    assert!(packets > MUTATIONS / 4, "only {packets} packets read");
    assert!(decoded > MUTATIONS / 4, "only {decoded} decoded");
    assert!(
        reader_errors > 1000,
        "mutations should also break files: {reader_errors}"
    );
}
