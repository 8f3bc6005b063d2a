//! Encapsulation builders: PPP, PPPoE, MPLS, GRE (with PPTP's enhanced GRE),
//! IP-in-IP, GTP-U, VXLAN and Geneve around packets built with [`crate::pcap`].
//!
//! Each function wraps bytes in one header; compose them to build a frame, e.g.
//! Ethernet / IPv4 / GRE / IPv6 / UDP:
//!
//! ```
//! use geofence_testkit::encap::{ethernet, gre, ipv4, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_GRE};
//! use geofence_testkit::pcap::{ip_packet, udp_v6};
//! let inner = ip_packet(&udp_v6("2001:db8::1".parse().unwrap(), 5000,
//!                               "2001:db8::2".parse().unwrap(), 3478, b"x")).to_vec();
//! let outer = ipv4("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap(), IPPROTO_GRE,
//!                  &gre(ETHERTYPE_IPV6, Some(7), None, false, &inner));
//! let frame = ethernet(ETHERTYPE_IPV4, &outer);
//! assert_eq!(frame.len(), 14 + 20 + 8 + inner.len());
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::pcap::{DST_MAC, SRC_MAC};

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86DD;
pub const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
pub const ETHERTYPE_MPLS: u16 = 0x8847;
/// Transparent Ethernet bridging (Ethernet inside GRE/Geneve).
pub const ETHERTYPE_TEB: u16 = 0x6558;
/// GRE protocol type of PPP.
pub const GRE_PPP: u16 = 0x880B;
pub const PPP_IPV4: u16 = 0x0021;
pub const PPP_IPV6: u16 = 0x0057;
pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_IPV6: u8 = 41;
pub const IPPROTO_GRE: u8 = 47;
pub const IPPROTO_UDP: u8 = 17;

fn be16(v: usize) -> [u8; 2] {
    u16::try_from(v).unwrap_or(u16::MAX).to_be_bytes()
}

/// An Ethernet II frame of `ether_type` around `payload`.
pub fn ethernet(ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = DST_MAC.to_vec();
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&ether_type.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 header (no options, valid checksum) of protocol `proto` around `payload`.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&be16(20 + payload.len()));
    h.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    let ck = !(sum as u16);
    h[10..12].copy_from_slice(&ck.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// An IPv6 header of next header `next` around `payload`.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&be16(payload.len()));
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(payload);
    h
}

/// A UDP header (checksum 0) around `payload`.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&be16(8 + payload.len()));
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// A PPP frame: `hdlc` adds the 0xFF 0x03 address and control bytes;
/// `compressed` writes a one-byte protocol field (protocol-field compression).
pub fn ppp(proto: u16, hdlc: bool, compressed: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    if hdlc {
        f.extend_from_slice(&[0xFF, 0x03]);
    }
    if compressed {
        f.push(proto.to_be_bytes()[1]);
    } else {
        f.extend_from_slice(&proto.to_be_bytes());
    }
    f.extend_from_slice(payload);
    f
}

/// A PPPoE session header (version 1, type 1, code 0) around a PPP frame
/// (protocol field included, no address/control).
pub fn pppoe_session(session: u16, ppp_frame: &[u8]) -> Vec<u8> {
    let mut f = vec![0x11, 0x00];
    f.extend_from_slice(&session.to_be_bytes());
    f.extend_from_slice(&be16(ppp_frame.len()));
    f.extend_from_slice(ppp_frame);
    f
}

/// An MPLS label stack (bottom of stack set on the last label), TTL 64.
pub fn mpls(labels: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        let bos = u32::from(i + 1 == labels.len());
        let e = (l << 12) | (bos << 8) | 64;
        f.extend_from_slice(&e.to_be_bytes());
    }
    f.extend_from_slice(payload);
    f
}

/// A GRE version 0 header of protocol type `proto`, with the optional key,
/// sequence number and checksum (RFC 2784/2890).
pub fn gre(
    proto: u16,
    key: Option<u32>,
    seq: Option<u32>,
    checksum: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut flags = 0u16;
    if checksum {
        flags |= 0x8000;
    }
    if key.is_some() {
        flags |= 0x2000;
    }
    if seq.is_some() {
        flags |= 0x1000;
    }
    let mut f = flags.to_be_bytes().to_vec();
    f.extend_from_slice(&proto.to_be_bytes());
    if checksum {
        f.extend_from_slice(&[0, 0, 0, 0]);
    }
    if let Some(k) = key {
        f.extend_from_slice(&k.to_be_bytes());
    }
    if let Some(s) = seq {
        f.extend_from_slice(&s.to_be_bytes());
    }
    f.extend_from_slice(payload);
    f
}

/// PPTP's enhanced GRE (version 1, RFC 2637) around a PPP frame.
pub fn pptp_gre(call_id: u16, seq: Option<u32>, ack: Option<u32>, ppp_frame: &[u8]) -> Vec<u8> {
    let mut flags = 0x2001u16; // K, version 1
    if seq.is_some() {
        flags |= 0x1000;
    }
    if ack.is_some() {
        flags |= 0x0080;
    }
    let mut f = flags.to_be_bytes().to_vec();
    f.extend_from_slice(&GRE_PPP.to_be_bytes());
    f.extend_from_slice(&be16(ppp_frame.len()));
    f.extend_from_slice(&call_id.to_be_bytes());
    if let Some(s) = seq {
        f.extend_from_slice(&s.to_be_bytes());
    }
    if let Some(a) = ack {
        f.extend_from_slice(&a.to_be_bytes());
    }
    f.extend_from_slice(ppp_frame);
    f
}

/// A GTPv1-U G-PDU (with a sequence number when `seq` is set) around an IP packet.
pub fn gtpu(teid: u32, seq: bool, inner_ip: &[u8]) -> Vec<u8> {
    let opt: &[u8] = if seq { &[0, 1, 0, 0] } else { &[] };
    let mut g = vec![if seq { 0x32 } else { 0x30 }, 0xFF];
    g.extend_from_slice(&be16(opt.len() + inner_ip.len()));
    g.extend_from_slice(&teid.to_be_bytes());
    g.extend_from_slice(opt);
    g.extend_from_slice(inner_ip);
    g
}

/// A VXLAN header (RFC 7348) around an Ethernet frame.
pub fn vxlan(vni: u32, inner_frame: &[u8]) -> Vec<u8> {
    let mut v = vec![0x08, 0, 0, 0];
    v.extend_from_slice(&(vni << 8).to_be_bytes());
    v.extend_from_slice(inner_frame);
    v
}

/// A Geneve header (RFC 8926) of protocol type `proto`, with `options` (a
/// multiple of 4 bytes) around `inner`.
pub fn geneve(vni: u32, proto: u16, options: &[u8], inner: &[u8]) -> Vec<u8> {
    let words = u8::try_from(options.len() / 4).unwrap_or(0x3F) & 0x3F;
    let mut g = vec![words, 0];
    g.extend_from_slice(&proto.to_be_bytes());
    g.extend_from_slice(&(vni << 8).to_be_bytes());
    g.extend_from_slice(options);
    g.extend_from_slice(inner);
    g
}
