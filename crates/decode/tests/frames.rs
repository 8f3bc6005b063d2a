//! `decode` on built frames: every link type, VLAN, IPv4 options, IPv6 extension
//! headers, fragments, GTP-U, and every truncation length.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use geofence_decode::{
    decode, decode_with, DecodeOptions, LinkType, Packet, Proto, Skip, TunnelKind, TunnelSet,
};
use geofence_testkit::pcap::{
    ip_packet, tcp_v4, tcp_v6, udp_v4, udp_v6, TcpFlags, DST_MAC, SRC_MAC,
};

const C4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const S4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);
const C6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const S6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x20);

fn ok(link: LinkType, data: &[u8]) -> Packet<'_> {
    decode(link, data).unwrap_or_else(|e| panic!("{link:?} frame of {} bytes: {e:?}", data.len()))
}

/// Decodes with GTP-U enabled.
fn ok_gtpu(data: &[u8]) -> Packet<'_> {
    let opts = DecodeOptions {
        tunnels: TunnelSet::NONE.with(TunnelKind::Gtpu),
    };
    decode_with(LinkType::Ethernet, data, opts).expect("decodes")
}

fn sll(ip: &[u8], proto: u16) -> Vec<u8> {
    let mut f = vec![0, 0, 0, 1, 0, 6];
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&proto.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

fn sll2(ip: &[u8], proto: u16) -> Vec<u8> {
    let mut f = proto.to_be_bytes().to_vec();
    f.extend_from_slice(&[0, 0, 0, 0, 0, 3, 0, 1, 0, 6]);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(ip);
    f
}

fn null(ip: &[u8], family: [u8; 4]) -> Vec<u8> {
    let mut f = family.to_vec();
    f.extend_from_slice(ip);
    f
}

/// Inserts 802.1Q tags (outermost first) after the MAC addresses.
fn vlan_tagged(frame: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    for (tpid, id) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
    }
    f.extend_from_slice(&frame[12..]);
    f
}

/// Adds 8 bytes of IPv4 options (NOPs + EOL) to an IPv4 packet.
fn with_ipv4_options(ip: &[u8]) -> Vec<u8> {
    let mut p = ip[..20].to_vec();
    p[0] = 0x47;
    let total = u16::from_be_bytes([p[2], p[3]]) + 8;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[1, 1, 1, 1, 1, 1, 1, 0]);
    p.extend_from_slice(&ip[20..]);
    p
}

/// Adds hop-by-hop and destination-options headers to an IPv6 packet.
fn with_ipv6_exts(ip: &[u8]) -> Vec<u8> {
    let mut p = ip[..40].to_vec();
    let upper = p[6];
    p[6] = 0; // hop-by-hop
    let plen = u16::from_be_bytes([p[4], p[5]]) + 16;
    p[4..6].copy_from_slice(&plen.to_be_bytes());
    p.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]); // HBH -> dest opts, PadN
    p.extend_from_slice(&[upper, 0, 1, 4, 0, 0, 0, 0]); // dest opts -> upper
    p.extend_from_slice(&ip[40..]);
    p
}

/// Sets IPv4 fragment fields (offset in 8-byte units).
fn ipv4_fragment(ip: &[u8], more: bool, offset: u16) -> Vec<u8> {
    let mut p = ip.to_vec();
    let v = offset | if more { 0x2000 } else { 0 };
    p[6..8].copy_from_slice(&v.to_be_bytes());
    p
}

/// Inserts an IPv6 fragment header.
fn ipv6_fragment(ip: &[u8], more: bool, offset: u16) -> Vec<u8> {
    let mut p = ip[..40].to_vec();
    let upper = p[6];
    p[6] = 44;
    let plen = u16::from_be_bytes([p[4], p[5]]) + 8;
    p[4..6].copy_from_slice(&plen.to_be_bytes());
    let off = (offset << 3) | u16::from(more);
    p.extend_from_slice(&[upper, 0]);
    p.extend_from_slice(&off.to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(&ip[40..]);
    p
}

fn gtpu(inner_ip: &[u8], with_ext: bool) -> Vec<u8> {
    let mut g = Vec::new();
    let ext: &[u8] = if with_ext {
        &[0, 0, 0, 0x85, 1, 0x00, 0x09, 0x00]
    } else {
        &[]
    };
    g.push(if with_ext { 0x34 } else { 0x30 });
    g.push(0xFF);
    g.extend_from_slice(&((ext.len() + inner_ip.len()) as u16).to_be_bytes());
    g.extend_from_slice(&0xdead_beefu32.to_be_bytes());
    g.extend_from_slice(ext);
    g.extend_from_slice(inner_ip);
    g
}

fn assert_tcp_v4(p: &Packet<'_>, payload: &[u8]) {
    assert_eq!(p.src, IpAddr::V4(C4));
    assert_eq!(p.dst, IpAddr::V4(S4));
    assert_eq!((p.proto, p.sport, p.dport), (Proto::Tcp, 40000, 443));
    assert_eq!(p.payload, payload);
    assert!(!p.payload_truncated);
}

#[test]
fn tcp_flags_seq_ack_are_reported() {
    let f = geofence_testkit::pcap::tcp_v4_ack(
        C4,
        40000,
        S4,
        443,
        1000,
        2000,
        TcpFlags::PSH_ACK,
        b"GET",
    );
    let p = ok(LinkType::Ethernet, &f);
    let t = p.tcp.expect("tcp info");
    assert_eq!((t.seq, t.ack), (1000, 2000));
    assert!(t.psh && t.ack_flag && !t.syn && !t.fin && !t.rst);
    let syn = tcp_v4(C4, 40000, S4, 443, 5, TcpFlags::SYN, b"");
    let t = ok(LinkType::Ethernet, &syn).tcp.expect("tcp");
    assert!(t.syn && !t.ack_flag);
    let rst = tcp_v6(C6, 1, S6, 2, 5, TcpFlags::RST, b"");
    assert!(ok(LinkType::Ethernet, &rst).tcp.expect("tcp").rst);
    let fin = tcp_v6(C6, 1, S6, 2, 5, TcpFlags::FIN_ACK, b"");
    assert!(ok(LinkType::Ethernet, &fin).tcp.expect("tcp").fin);
}

#[test]
fn every_link_type_yields_the_same_packet() {
    let eth4 = tcp_v4(C4, 40000, S4, 443, 1, TcpFlags::PSH_ACK, b"hello tls");
    let eth6 = udp_v6(C6, 5353, S6, 443, b"quic initial");
    let ip4 = ip_packet(&eth4);
    let ip6 = ip_packet(&eth6);
    let v4_frames: Vec<(LinkType, Vec<u8>)> = vec![
        (LinkType::Ethernet, eth4.clone()),
        (LinkType::LinuxSll, sll(ip4, 0x0800)),
        (LinkType::LinuxSll2, sll2(ip4, 0x0800)),
        (LinkType::RawIp, ip4.to_vec()),
        (LinkType::Ipv4, ip4.to_vec()),
        (LinkType::Null, null(ip4, 2u32.to_le_bytes())),
        (LinkType::Null, null(ip4, 2u32.to_be_bytes())),
        (LinkType::from_dlt(12), ip4.to_vec()),
    ];
    for (link, f) in &v4_frames {
        let p = ok(*link, f);
        assert_tcp_v4(&p, b"hello tls");
        assert_eq!(p.ip_len as usize, ip4.len());
        assert_eq!(p.vlan, None);
    }
    let v6_frames: Vec<(LinkType, Vec<u8>)> = vec![
        (LinkType::Ethernet, eth6.clone()),
        (LinkType::LinuxSll, sll(ip6, 0x86DD)),
        (LinkType::LinuxSll2, sll2(ip6, 0x86DD)),
        (LinkType::RawIp, ip6.to_vec()),
        (LinkType::Ipv6, ip6.to_vec()),
        (LinkType::Null, null(ip6, 10u32.to_le_bytes())),
        (LinkType::Null, null(ip6, 24u32.to_le_bytes())),
        (LinkType::Null, null(ip6, 28u32.to_le_bytes())),
        (LinkType::Null, null(ip6, 30u32.to_be_bytes())),
    ];
    for (link, f) in &v6_frames {
        let p = ok(*link, f);
        assert_eq!((p.src, p.dst), (IpAddr::V6(C6), IpAddr::V6(S6)), "{link:?}");
        assert_eq!(
            (p.proto, p.sport, p.dport, p.tcp),
            (Proto::Udp, 5353, 443, None)
        );
        assert_eq!(p.payload, b"quic initial");
        assert_eq!(p.ip_len as usize, ip6.len());
    }
}

#[test]
fn wrong_link_protocols_are_not_ip() {
    let eth4 = udp_v4(C4, 1, S4, 2, b"x");
    let ip4 = ip_packet(&eth4);
    assert_eq!(
        decode(LinkType::LinuxSll, &sll(ip4, 0x0806)).err(),
        Some(Skip::NotIp)
    );
    assert_eq!(
        decode(LinkType::LinuxSll2, &sll2(ip4, 0x88CC)).err(),
        Some(Skip::NotIp)
    );
    assert_eq!(
        decode(LinkType::Null, &null(ip4, 7u32.to_le_bytes())).err(),
        Some(Skip::NotIp)
    );
    assert_eq!(decode(LinkType::Other(147), &eth4).err(), Some(Skip::NotIp));
    let mut arp = eth4.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(decode(LinkType::Ethernet, &arp).err(), Some(Skip::NotIp));
    // raw IP with a bogus version nibble
    let mut bad = ip4.to_vec();
    bad[0] = 0x55;
    assert_eq!(decode(LinkType::RawIp, &bad).err(), Some(Skip::NotIp));
    // IPv4 ethertype but IPv6 content
    assert_eq!(
        decode(LinkType::Ipv4, ip_packet(&udp_v6(C6, 1, S6, 2, b""))).err(),
        Some(Skip::Malformed)
    );
    // ICMP
    let mut icmp = ip4.to_vec();
    icmp[9] = 1;
    assert_eq!(decode(LinkType::RawIp, &icmp).err(), Some(Skip::NotTcpUdp));
    assert_eq!(decode(LinkType::Ethernet, &[]).err(), Some(Skip::Malformed));
    assert_eq!(decode(LinkType::RawIp, &[]).err(), Some(Skip::Malformed));
}

#[test]
fn vlan_and_qinq_report_the_outer_id() {
    let eth = tcp_v4(C4, 40000, S4, 443, 1, TcpFlags::ACK, b"v");
    let one = vlan_tagged(&eth, &[(0x8100, 200)]);
    let p = ok(LinkType::Ethernet, &one);
    assert_eq!(p.vlan, Some(200));
    assert_tcp_v4(&p, b"v");
    let two = vlan_tagged(&eth, &[(0x88A8, 300), (0x8100, 200)]);
    let p = ok(LinkType::Ethernet, &two);
    assert_eq!(p.vlan, Some(300));
    assert_tcp_v4(&p, b"v");
    // priority bits do not leak into the id
    let prio = vlan_tagged(&eth, &[(0x8100, 0xE000 | 42)]);
    assert_eq!(ok(LinkType::Ethernet, &prio).vlan, Some(42));
    // four tags is more than we follow
    let four = vlan_tagged(&eth, &[(0x8100, 1), (0x8100, 2), (0x8100, 3), (0x8100, 4)]);
    assert_eq!(decode(LinkType::Ethernet, &four).err(), Some(Skip::NotIp));
    // also the etherparse builder's own double VLAN
    let mut built = Vec::new();
    etherparse::PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .double_vlan(
            etherparse::VlanId::try_new(11).expect("id"),
            etherparse::VlanId::try_new(22).expect("id"),
        )
        .ipv6(C6.octets(), S6.octets(), 9)
        .udp(1000, 2000)
        .write(&mut built, b"dv")
        .expect("build");
    let p = ok(LinkType::Ethernet, &built);
    assert_eq!((p.vlan, p.sport, p.payload), (Some(11), 1000, &b"dv"[..]));
}

#[test]
fn ethernet_padding_is_not_payload() {
    let mut f = udp_v4(C4, 53, S4, 5000, b"ab");
    assert!(f.len() < 60);
    f.resize(60, 0);
    let p = ok(LinkType::Ethernet, &f);
    assert_eq!(p.payload, b"ab");
    assert!(!p.payload_truncated);
    let mut t = tcp_v4(C4, 40000, S4, 443, 1, TcpFlags::ACK, b"");
    t.resize(60, 0xAA);
    assert_eq!(ok(LinkType::Ethernet, &t).payload, b"");
}

#[test]
fn ipv4_options_and_ipv6_extension_headers_are_skipped() {
    let eth4 = tcp_v4(C4, 40000, S4, 443, 1, TcpFlags::PSH_ACK, b"opts");
    let ip = with_ipv4_options(ip_packet(&eth4));
    let p = ok(LinkType::RawIp, &ip);
    assert_tcp_v4(&p, b"opts");
    assert_eq!(p.ip_len as usize, ip.len());

    let eth6 = tcp_v6(C6, 40000, S6, 443, 9, TcpFlags::PSH_ACK, b"exts");
    let ip = with_ipv6_exts(ip_packet(&eth6));
    let p = ok(LinkType::RawIp, &ip);
    assert_eq!(
        (p.proto, p.sport, p.dport, p.payload),
        (Proto::Tcp, 40000, 443, &b"exts"[..])
    );
    assert_eq!(p.ip_len as usize, ip.len());
    // an ESP next header is not TCP/UDP
    let mut esp = ip.clone();
    esp[48] = 50;
    assert_eq!(decode(LinkType::RawIp, &esp).err(), Some(Skip::NotTcpUdp));
}

#[test]
fn fragments_first_gives_ports_others_are_skipped() {
    let payload = [7u8; 64];
    let ip4 = ip_packet(&udp_v4(C4, 4000, S4, 53, &payload)).to_vec();
    let first = ipv4_fragment(&ip4, true, 0);
    let p = ok(LinkType::RawIp, &first);
    assert_eq!((p.sport, p.dport), (4000, 53));
    assert!(p.payload_truncated, "a first fragment's payload is partial");
    assert_eq!(p.payload, &payload[..]);
    assert_eq!(
        decode(LinkType::RawIp, &ipv4_fragment(&ip4, true, 3)).err(),
        Some(Skip::Fragment)
    );
    assert_eq!(
        decode(LinkType::RawIp, &ipv4_fragment(&ip4, false, 3)).err(),
        Some(Skip::Fragment)
    );
    // DF alone is not fragmentation
    let mut df = ip4.clone();
    df[6] = 0x40;
    assert!(!ok(LinkType::RawIp, &df).payload_truncated);

    let ip6 = ip_packet(&tcp_v6(C6, 4000, S6, 443, 1, TcpFlags::ACK, &payload)).to_vec();
    let first = ipv6_fragment(&ip6, true, 0);
    let p = ok(LinkType::RawIp, &first);
    assert_eq!((p.proto, p.sport, p.dport), (Proto::Tcp, 4000, 443));
    assert!(p.payload_truncated);
    assert_eq!(
        decode(LinkType::RawIp, &ipv6_fragment(&ip6, false, 10)).err(),
        Some(Skip::Fragment)
    );
    // atomic fragment (offset 0, no more fragments) is a whole packet
    let atomic = ipv6_fragment(&ip6, false, 0);
    assert!(!ok(LinkType::RawIp, &atomic).payload_truncated);
}

#[test]
fn gtpu_is_decoded_to_the_inner_packet() {
    let inner = ip_packet(&tcp_v4(C4, 40000, S4, 443, 1, TcpFlags::PSH_ACK, b"inner")).to_vec();
    let outer_src = Ipv4Addr::new(203, 0, 113, 1);
    let outer_dst = Ipv4Addr::new(203, 0, 113, 2);
    for ext in [false, true] {
        let f = udp_v4(outer_src, 2152, outer_dst, 2152, &gtpu(&inner, ext));
        let p = ok_gtpu(&f);
        assert_tcp_v4(&p, b"inner");
        assert_eq!(p.ip_len as usize, inner.len());
        let t = p.tunnel.expect("tunnel");
        assert_eq!(t.kind, TunnelKind::Gtpu);
        assert_eq!(
            (t.outer_src, t.outer_dst),
            (IpAddr::V4(outer_src), IpAddr::V4(outer_dst))
        );
        // not enabled: the datagram stays the outer UDP packet
        let p = ok(LinkType::Ethernet, &f);
        assert_eq!((p.src, p.dport), (IpAddr::V4(outer_src), 2152));
        assert!(p.tunnel.is_none());
    }
    let inner6 = ip_packet(&udp_v6(C6, 5000, S6, 3478, b"stun")).to_vec();
    let f = udp_v4(outer_src, 2152, outer_dst, 2152, &gtpu(&inner6, true));
    let p = ok_gtpu(&f);
    assert_eq!(
        (p.src, p.dport, p.payload),
        (IpAddr::V6(C6), 3478, &b"stun"[..])
    );
    // a GTP echo request is kept as the outer UDP datagram
    let echo = [0x32, 0x01, 0x00, 0x04, 0, 0, 0, 0, 0x00, 0x01, 0, 0];
    let f = udp_v4(outer_src, 40000, outer_dst, 2152, &echo);
    let p = ok_gtpu(&f);
    assert_eq!(
        (p.src, p.dport, p.payload),
        (IpAddr::V4(outer_src), 2152, &echo[..])
    );
    // a G-PDU whose inner bytes are not IP is kept as UDP too
    let f = udp_v4(
        outer_src,
        2152,
        outer_dst,
        2152,
        &gtpu(b"\x00\x01garbage", false),
    );
    assert_eq!(ok_gtpu(&f).dport, 2152);
}

/// Every prefix of every frame decodes without panicking; once the transport header
/// is complete the packet comes back with the bytes present and `payload_truncated`.
#[test]
fn truncation_at_every_length() {
    let payload: Vec<u8> = (0..120u8).collect();
    let eth4 = tcp_v4(C4, 40000, S4, 443, 1, TcpFlags::PSH_ACK, &payload);
    let eth6 = udp_v6(C6, 5000, S6, 443, &payload);
    let ip4 = ip_packet(&eth4).to_vec();
    let ip6 = ip_packet(&eth6).to_vec();
    let gtp = udp_v4(C4, 2152, S4, 2152, &gtpu(&ip4, true));
    let cases: Vec<(LinkType, Vec<u8>, usize)> = vec![
        // (link, frame, offset of the transport payload)
        (LinkType::Ethernet, eth4.clone(), 14 + 20 + 20),
        (LinkType::Ethernet, eth6.clone(), 14 + 40 + 8),
        (
            LinkType::Ethernet,
            vlan_tagged(&eth4, &[(0x88A8, 3), (0x8100, 4)]),
            22 + 20 + 20,
        ),
        (LinkType::LinuxSll, sll(&ip4, 0x0800), 16 + 40),
        (LinkType::LinuxSll2, sll2(&ip6, 0x86DD), 20 + 48),
        (LinkType::Null, null(&ip6, 30u32.to_le_bytes()), 4 + 48),
        (LinkType::RawIp, with_ipv4_options(&ip4), 28 + 20),
        (LinkType::RawIp, with_ipv6_exts(&ip6), 56 + 8),
        (LinkType::RawIp, ipv6_fragment(&ip6, true, 0), 48 + 8),
        (LinkType::Ethernet, gtp.clone(), 14 + 20 + 8 + 16 + 40),
    ];
    let all = DecodeOptions {
        tunnels: TunnelSet::all(),
    };
    for (link, frame, at) in &cases {
        let full = decode_with(*link, frame, all).expect("full frame");
        assert_eq!(full.payload, &payload[..], "{link:?}");
        for len in 0..frame.len() {
            let r = decode_with(*link, &frame[..len], all);
            if len >= *at {
                let p = r.unwrap_or_else(|e| panic!("{link:?} cut at {len}: {e:?}"));
                assert!(p.payload_truncated, "{link:?} cut at {len}");
                assert_eq!(p.payload, &payload[..len - at], "{link:?} cut at {len}");
                assert_eq!((p.sport, p.dport), (full.sport, full.dport));
            } else if *link == LinkType::Ethernet && frame == &gtp {
                // a cut GTP-U frame may still decode as the outer UDP datagram
                if let Ok(p) = r {
                    assert_eq!(p.dport, 2152);
                }
            } else {
                assert!(
                    r.is_err(),
                    "{link:?} cut at {len} inside headers decoded: {r:?}"
                );
            }
        }
    }
}

/// A SYN with 20 bytes of TCP options cut by a 68-byte snaplen (tcpdump's old
/// default) inside the options still yields ports and flags; a frame that is not
/// cut but whose TCP data offset points past the IP payload is malformed.
#[test]
fn tcp_options_cut_by_snaplen_keep_ports_and_flags() {
    use etherparse::TcpOptionElement::*;
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .ipv4(C4.octets(), S4.octets(), 64)
        .tcp(40000, 443, 77, 64240)
        .syn()
        .options(&[
            MaximumSegmentSize(1460),
            SelectiveAcknowledgementPermitted,
            WindowScale(7),
            Noop,
            Timestamp(1, 0),
        ])
        .expect("options")
        .write(&mut f, &[])
        .expect("build");
    assert_eq!(f.len(), 14 + 20 + 20 + 20);
    let full = ok(LinkType::Ethernet, &f);
    assert!(!full.payload_truncated);
    for cut in 14 + 20 + 20..f.len() {
        let p = ok(LinkType::Ethernet, &f[..cut]);
        assert_eq!((p.sport, p.dport), (40000, 443));
        let t = p.tcp.expect("tcp");
        assert!(t.syn && !t.ack_flag);
        assert_eq!(t.seq, 77);
        assert!(p.payload.is_empty() && p.payload_truncated);
    }
    // cut inside the fixed header: nothing to report
    assert_eq!(
        decode(LinkType::Ethernet, &f[..14 + 20 + 19]).err(),
        Some(Skip::Malformed)
    );
    // not cut, but the data offset claims 60 bytes of header in a 40-byte segment
    let mut bad = f.clone();
    bad[14 + 20 + 12] = 0xF0;
    assert_eq!(
        decode(LinkType::Ethernet, &bad).err(),
        Some(Skip::Malformed)
    );
}
