//! Link-level framing (PPP link types, PPPoE, MPLS) and network-layer tunnels (GRE
//! with and without key/sequence/checksum, PPTP's enhanced GRE, IP-in-IP in all four
//! combinations, GTP-U, VXLAN, Geneve): decoded to the inner packet when allowed,
//! left alone when the tunnel is not enabled, bounded in depth, and safe at every
//! truncation length.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use geofence_decode::{
    decode, decode_with, DecodeOptions, LinkType, Proto, Skip, TunnelKind, TunnelSet, GENEVE_PORT,
    GTPU_PORT, MAX_TUNNEL_DEPTH, VXLAN_PORT,
};
use geofence_testkit::encap::*;
use geofence_testkit::pcap::{ip_packet, tcp_v6, udp_v4, udp_v6, TcpFlags};

const C4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
const S4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);
const C6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const S6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x20);
const O4A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const O4B: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const O6A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 1);
const O6B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 2);

fn payload() -> Vec<u8> {
    (0..60u8).collect()
}

/// IPv4/UDP 10.0.0.9:5000 -> 198.51.100.20:8801.
fn inner4() -> Vec<u8> {
    ip_packet(&udp_v4(C4, 5000, S4, 8801, &payload())).to_vec()
}

/// IPv6/TCP [2001:db8::10]:40000 -> [2001:db8:1::20]:443.
fn inner6() -> Vec<u8> {
    ip_packet(&tcp_v6(
        C6,
        40000,
        S6,
        443,
        1,
        TcpFlags::PSH_ACK,
        &payload(),
    ))
    .to_vec()
}

struct Case {
    name: &'static str,
    link: LinkType,
    frame: Vec<u8>,
    /// The network-layer tunnel (None: link-level framing, always decoded).
    kind: Option<TunnelKind>,
    /// Outer addresses the packet must report for a tunnel.
    outer: Option<(IpAddr, IpAddr)>,
    /// Offset of the inner transport payload in the frame.
    at: usize,
    v6_inner: bool,
}

fn eth_v4(proto: u8, body: &[u8]) -> Vec<u8> {
    ethernet(ETHERTYPE_IPV4, &ipv4(O4A, O4B, proto, body))
}

fn eth_v6(next: u8, body: &[u8]) -> Vec<u8> {
    ethernet(ETHERTYPE_IPV6, &ipv6(O6A, O6B, next, body))
}

fn o4() -> Option<(IpAddr, IpAddr)> {
    Some((IpAddr::V4(O4A), IpAddr::V4(O4B)))
}

fn o6() -> Option<(IpAddr, IpAddr)> {
    Some((IpAddr::V6(O6A), IpAddr::V6(O6B)))
}

fn cases() -> Vec<Case> {
    let (i4, i6) = (inner4(), inner6());
    let (p4, p6) = (20 + 8, 40 + 20); // inner header lengths
    let link = |name, link, frame, at, v6_inner| Case {
        name,
        link,
        frame,
        kind: None,
        outer: None,
        at,
        v6_inner,
    };
    let tun = |name, kind, frame, outer, at, v6_inner| Case {
        name,
        link: LinkType::Ethernet,
        frame,
        kind: Some(kind),
        outer,
        at,
        v6_inner,
    };
    let ppp4 = ppp(PPP_IPV4, false, false, &i4);
    vec![
        link(
            "pppoe session on ethernet",
            LinkType::Ethernet,
            ethernet(ETHERTYPE_PPPOE_SESSION, &pppoe_session(0x1234, &ppp4)),
            14 + 6 + 2 + p4,
            false,
        ),
        link(
            "pppoe ipv6 on ethernet",
            LinkType::Ethernet,
            ethernet(
                ETHERTYPE_PPPOE_SESSION,
                &pppoe_session(7, &ppp(PPP_IPV6, false, false, &i6)),
            ),
            14 + 6 + 2 + p6,
            true,
        ),
        link(
            "ppp link type, hdlc framing, ipv6",
            LinkType::Ppp,
            ppp(PPP_IPV6, true, false, &i6),
            4 + p6,
            true,
        ),
        link(
            "ppp link type, compressed fields",
            LinkType::Ppp,
            ppp(PPP_IPV4, false, true, &i4),
            1 + p4,
            false,
        ),
        link(
            "ppp_hdlc link type",
            LinkType::PppHdlc,
            ppp(PPP_IPV4, true, false, &i4),
            4 + p4,
            false,
        ),
        link(
            "ppp_ether (pppoe) link type",
            LinkType::PppEther,
            pppoe_session(1, &ppp4),
            8 + p4,
            false,
        ),
        link(
            "ppp_with_dir link type",
            LinkType::PppWithDir,
            [&[1u8][..], &ppp(PPP_IPV4, true, false, &i4)].concat(),
            5 + p4,
            false,
        ),
        link(
            "mpls stack on ethernet",
            LinkType::Ethernet,
            ethernet(ETHERTYPE_MPLS, &mpls(&[16, 17, 18], &i6)),
            14 + 12 + p6,
            true,
        ),
        link(
            "mpls inside pppoe",
            LinkType::Ethernet,
            ethernet(
                ETHERTYPE_PPPOE_SESSION,
                &pppoe_session(2, &ppp(0x0281, false, false, &mpls(&[99], &i4))),
            ),
            14 + 8 + 4 + p4,
            false,
        ),
        tun(
            "gre, plain",
            TunnelKind::Gre,
            eth_v4(IPPROTO_GRE, &gre(ETHERTYPE_IPV4, None, None, false, &i4)),
            o4(),
            14 + 20 + 4 + p4,
            false,
        ),
        tun(
            "gre with key, sequence and checksum over ipv6",
            TunnelKind::Gre,
            eth_v6(
                IPPROTO_GRE,
                &gre(ETHERTYPE_IPV6, Some(5), Some(9), true, &i6),
            ),
            o6(),
            14 + 40 + 16 + p6,
            true,
        ),
        tun(
            "gre with key only",
            TunnelKind::Gre,
            eth_v4(IPPROTO_GRE, &gre(ETHERTYPE_IPV4, Some(1), None, false, &i4)),
            o4(),
            14 + 20 + 8 + p4,
            false,
        ),
        tun(
            "gre bridging an ethernet frame",
            TunnelKind::Gre,
            eth_v4(
                IPPROTO_GRE,
                &gre(
                    ETHERTYPE_TEB,
                    None,
                    Some(3),
                    false,
                    &ethernet(ETHERTYPE_IPV4, &i4),
                ),
            ),
            o4(),
            14 + 20 + 8 + 14 + p4,
            false,
        ),
        tun(
            "pptp enhanced gre with ppp",
            TunnelKind::Gre,
            eth_v4(
                IPPROTO_GRE,
                &pptp_gre(0x4242, Some(1), Some(0), &ppp(PPP_IPV4, true, false, &i4)),
            ),
            o4(),
            14 + 20 + 16 + 4 + p4,
            false,
        ),
        tun(
            "ipip 4in4",
            TunnelKind::Ipip,
            eth_v4(IPPROTO_IPIP, &i4),
            o4(),
            14 + 20 + p4,
            false,
        ),
        tun(
            "ipip 4in6",
            TunnelKind::Ipip,
            eth_v6(IPPROTO_IPIP, &i4),
            o6(),
            14 + 40 + p4,
            false,
        ),
        tun(
            "ipip 6in4",
            TunnelKind::Ipip,
            eth_v4(IPPROTO_IPV6, &i6),
            o4(),
            14 + 20 + p6,
            true,
        ),
        tun(
            "ipip 6in6",
            TunnelKind::Ipip,
            eth_v6(IPPROTO_IPV6, &i6),
            o6(),
            14 + 40 + p6,
            true,
        ),
        tun(
            "gtp-u with sequence number",
            TunnelKind::Gtpu,
            eth_v4(
                IPPROTO_UDP,
                &udp(GTPU_PORT, GTPU_PORT, &gtpu(77, true, &i6)),
            ),
            o4(),
            14 + 20 + 8 + 12 + p6,
            true,
        ),
        tun(
            "vxlan",
            TunnelKind::Vxlan,
            eth_v4(
                IPPROTO_UDP,
                &udp(
                    51000,
                    VXLAN_PORT,
                    &vxlan(42, &ethernet(ETHERTYPE_IPV4, &i4)),
                ),
            ),
            o4(),
            14 + 20 + 8 + 8 + 14 + p4,
            false,
        ),
        tun(
            "geneve with options, ip inside",
            TunnelKind::Geneve,
            eth_v6(
                IPPROTO_UDP,
                &udp(
                    52000,
                    GENEVE_PORT,
                    &geneve(
                        9,
                        ETHERTYPE_IPV4,
                        &[0, 1, 2, 1, 0xAA, 0xBB, 0xCC, 0xDD],
                        &i4,
                    ),
                ),
            ),
            o6(),
            14 + 40 + 8 + 16 + p4,
            false,
        ),
        tun(
            "geneve bridging ethernet",
            TunnelKind::Geneve,
            eth_v4(
                IPPROTO_UDP,
                &udp(
                    52000,
                    GENEVE_PORT,
                    &geneve(9, ETHERTYPE_TEB, &[], &ethernet(ETHERTYPE_IPV6, &i6)),
                ),
            ),
            o4(),
            14 + 20 + 8 + 8 + 14 + p6,
            true,
        ),
    ]
}

fn only(kind: TunnelKind) -> DecodeOptions {
    DecodeOptions {
        tunnels: TunnelSet::NONE.with(kind),
    }
}

fn all() -> DecodeOptions {
    DecodeOptions {
        tunnels: TunnelSet::all(),
    }
}

#[test]
fn every_encapsulation_yields_the_inner_packet() {
    let want = payload();
    for c in cases() {
        let opts = c.kind.map_or(DecodeOptions::default(), only);
        let p = decode_with(c.link, &c.frame, opts).unwrap_or_else(|e| panic!("{}: {e:?}", c.name));
        if c.v6_inner {
            assert_eq!(
                (p.src, p.dst, p.proto, p.sport, p.dport),
                (IpAddr::V6(C6), IpAddr::V6(S6), Proto::Tcp, 40000, 443),
                "{}",
                c.name
            );
        } else {
            assert_eq!(
                (p.src, p.dst, p.proto, p.sport, p.dport),
                (IpAddr::V4(C4), IpAddr::V4(S4), Proto::Udp, 5000, 8801),
                "{}",
                c.name
            );
        }
        assert_eq!(p.payload, &want[..], "{}", c.name);
        assert!(!p.payload_truncated, "{}", c.name);
        match (c.kind, p.tunnel) {
            (None, None) => {}
            (Some(k), Some(t)) => {
                assert_eq!(t.kind, k, "{}", c.name);
                assert_eq!(Some((t.outer_src, t.outer_dst)), c.outer, "{}", c.name);
            }
            (k, t) => panic!("{}: expected tunnel {k:?}, got {t:?}", c.name),
        }
        // everything enabled gives the same packet
        assert_eq!(
            decode_with(c.link, &c.frame, all()),
            Ok(p.clone()),
            "{}",
            c.name
        );
    }
}

/// A tunnel that is not enabled is not opened: an IP-protocol tunnel is not
/// TCP/UDP, a UDP-port tunnel stays the outer datagram. Enabling another tunnel
/// does not open it either.
#[test]
fn tunnels_stay_closed_unless_enabled() {
    for c in cases() {
        let Some(kind) = c.kind else { continue };
        let others: TunnelSet = TunnelKind::ALL.into_iter().filter(|k| *k != kind).collect();
        for opts in [DecodeOptions::default(), DecodeOptions { tunnels: others }] {
            let r = decode_with(c.link, &c.frame, opts);
            assert_eq!(r, decode(c.link, &c.frame), "{}", c.name);
            match kind {
                TunnelKind::Gre | TunnelKind::Ipip => {
                    assert_eq!(r.err(), Some(Skip::NotTcpUdp), "{}", c.name)
                }
                TunnelKind::Gtpu | TunnelKind::Vxlan | TunnelKind::Geneve => {
                    let p = r.unwrap_or_else(|e| panic!("{}: {e:?}", c.name));
                    assert_eq!(p.proto, Proto::Udp, "{}", c.name);
                    assert_eq!(Some((p.src, p.dst)), c.outer, "{}", c.name);
                    assert!(p.tunnel.is_none(), "{}", c.name);
                    assert!(
                        [GTPU_PORT, VXLAN_PORT, GENEVE_PORT].contains(&p.dport),
                        "{}",
                        c.name
                    );
                }
            }
        }
    }
}

/// Every prefix of every encapsulated frame decodes without panicking; once the
/// inner transport header is complete the inner packet comes back with the bytes
/// present and `payload_truncated` set.
#[test]
fn truncation_at_every_length() {
    let want = payload();
    for c in cases() {
        for len in 0..c.frame.len() {
            let r = decode_with(c.link, &c.frame[..len], all());
            if len >= c.at {
                let p = r.unwrap_or_else(|e| panic!("{} cut at {len}: {e:?}", c.name));
                assert!(p.payload_truncated, "{} cut at {len}", c.name);
                assert_eq!(p.payload, &want[..len - c.at], "{} cut at {len}", c.name);
                assert_eq!(p.tunnel.map(|t| t.kind), c.kind, "{} cut at {len}", c.name);
            } else if let Ok(p) = r {
                // only a UDP tunnel's outer datagram may come back before that
                assert!(
                    matches!(
                        c.kind,
                        Some(TunnelKind::Gtpu | TunnelKind::Vxlan | TunnelKind::Geneve)
                    ) && p.tunnel.is_none()
                        && Some((p.src, p.dst)) == c.outer,
                    "{} cut at {len} inside headers decoded: {p:?}",
                    c.name
                );
            }
        }
    }
}

/// Tunnels inside tunnels are followed up to MAX_TUNNEL_DEPTH; the packet reports
/// the outermost one (what the kernel sees); one more level is refused.
#[test]
fn nesting_is_bounded_and_reports_the_outermost_tunnel() {
    let mut pkt = inner4();
    // GRE inside VXLAN: the outermost is VXLAN
    let gre_pkt = ipv4(
        O4A,
        O4B,
        IPPROTO_GRE,
        &gre(ETHERTYPE_IPV4, None, None, false, &pkt),
    );
    let f = eth_v4(
        IPPROTO_UDP,
        &udp(
            1,
            VXLAN_PORT,
            &vxlan(1, &ethernet(ETHERTYPE_IPV4, &gre_pkt)),
        ),
    );
    let p = decode_with(LinkType::Ethernet, &f, all()).expect("nested");
    assert_eq!(p.tunnel.map(|t| t.kind), Some(TunnelKind::Vxlan));
    assert_eq!((p.src, p.dport), (IpAddr::V4(C4), 8801));
    // with only GRE enabled, the VXLAN datagram stays closed
    let p = decode_with(LinkType::Ethernet, &f, only(TunnelKind::Gre)).expect("outer");
    assert_eq!((p.dport, p.tunnel), (VXLAN_PORT, None));
    // IP-in-IP nested MAX_TUNNEL_DEPTH times decodes, once more is TooDeep
    for _ in 0..MAX_TUNNEL_DEPTH {
        pkt = ipv4(O4A, O4B, IPPROTO_IPIP, &pkt);
    }
    let p = decode_with(LinkType::RawIp, &pkt, all()).expect("at the limit");
    assert_eq!(p.src, IpAddr::V4(C4));
    let deeper = ipv4(O4A, O4B, IPPROTO_IPIP, &pkt);
    assert_eq!(
        decode_with(LinkType::RawIp, &deeper, all()).err(),
        Some(Skip::TooDeep)
    );
    // a self-referencing chain of 1,000 levels ends in a verdict, not a stack overflow
    let mut chain = inner4();
    for _ in 0..1000 {
        chain = ipv4(O4A, O4B, IPPROTO_IPIP, &chain);
    }
    assert!(decode_with(LinkType::RawIp, &chain, all()).is_err());
}

/// Headers the decoder must not take for a tunnel: GRE with the routing bit or an
/// unknown version, PPTP GRE without a key, a VXLAN datagram without the I flag,
/// Geneve version 1, PPP control frames, PPPoE discovery.
#[test]
fn malformed_or_foreign_headers_are_not_opened() {
    let i4 = inner4();
    let mut bad_gre = gre(ETHERTYPE_IPV4, None, None, false, &i4);
    bad_gre[0] = 0x40; // routing present
    assert_eq!(
        decode_with(LinkType::Ethernet, &eth_v4(IPPROTO_GRE, &bad_gre), all()).err(),
        Some(Skip::NotTcpUdp)
    );
    let mut v2 = gre(ETHERTYPE_IPV4, None, None, false, &i4);
    v2[1] = 0x02;
    assert_eq!(
        decode_with(LinkType::Ethernet, &eth_v4(IPPROTO_GRE, &v2), all()).err(),
        Some(Skip::NotTcpUdp)
    );
    let mut no_key = pptp_gre(1, None, None, &ppp(PPP_IPV4, true, false, &i4));
    no_key[0] &= !0x20;
    assert_eq!(
        decode_with(LinkType::Ethernet, &eth_v4(IPPROTO_GRE, &no_key), all()).err(),
        Some(Skip::NotTcpUdp)
    );
    // an acknowledgment-only PPTP packet carries nothing
    assert!(decode_with(
        LinkType::Ethernet,
        &eth_v4(IPPROTO_GRE, &pptp_gre(1, None, Some(5), &[])),
        all()
    )
    .is_err());
    let mut vx = vxlan(1, &ethernet(ETHERTYPE_IPV4, &i4));
    vx[0] = 0;
    let f = eth_v4(IPPROTO_UDP, &udp(1, VXLAN_PORT, &vx));
    let p = decode_with(LinkType::Ethernet, &f, all()).expect("kept as udp");
    assert_eq!((p.dport, p.tunnel), (VXLAN_PORT, None));
    let mut gv = geneve(1, ETHERTYPE_IPV4, &[], &i4);
    gv[0] = 0x40;
    let f = eth_v4(IPPROTO_UDP, &udp(1, GENEVE_PORT, &gv));
    let p = decode_with(LinkType::Ethernet, &f, all()).expect("kept as udp");
    assert_eq!((p.dport, p.tunnel), (GENEVE_PORT, None));
    // LCP inside PPPoE, PPPoE discovery: not IP
    let lcp = pppoe_session(1, &ppp(0xC021, false, false, &[1, 1, 0, 4]));
    assert_eq!(
        decode(LinkType::Ethernet, &ethernet(ETHERTYPE_PPPOE_SESSION, &lcp)).err(),
        Some(Skip::NotIp)
    );
    assert_eq!(
        decode(
            LinkType::Ethernet,
            &ethernet(0x8863, &[0x11, 0x09, 0, 0, 0, 0])
        )
        .err(),
        Some(Skip::NotIp)
    );
    // a fragmented GRE packet is not opened (its inner packet is incomplete)
    let mut frag = ipv4(
        O4A,
        O4B,
        IPPROTO_GRE,
        &gre(ETHERTYPE_IPV4, None, None, false, &i4),
    );
    frag[6] = 0x20; // more fragments, offset 0
    assert_eq!(
        decode_with(LinkType::RawIp, &frag, all()).err(),
        Some(Skip::Fragment)
    );
    // an IPv6 UDP datagram to the GTP-U port with a non-G-PDU message stays UDP
    let echo = [0x32, 0x01, 0x00, 0x04, 0, 0, 0, 0, 0x00, 0x01, 0, 0];
    let f = udp_v6(C6, 40000, S6, GTPU_PORT, &echo);
    let p = decode_with(LinkType::Ethernet, &f, all()).expect("udp");
    assert_eq!((p.dport, p.tunnel, p.payload), (GTPU_PORT, None, &echo[..]));
}
