//! Frame decoding: link layer (-> PPP/PPPoE/MPLS) -> IPv4/IPv6 -> TCP/UDP, and the
//! configured network-layer tunnels (GTP-U, GRE, IP-in-IP, VXLAN, Geneve) down to the
//! inner packet.
//!
//! The decoder chains `etherparse` header slices (no aggregate `SlicedPacket`), which
//! keeps it at a few nanoseconds per packet. Every access is bounds-checked through
//! `get`, so no input can make it panic, and nesting is bounded
//! ([`MAX_TUNNEL_DEPTH`]), so no input can make it recurse without end.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    Ethernet2HeaderSlice, IpAuthHeaderSlice, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice,
    Ipv6HeaderSlice, Ipv6RawExtHeaderSlice, SingleVlanHeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
};

use crate::ppp::{self, MplsNext, PppNext};
use crate::tunnel::{self, be16, Tunnel, TunnelKind, TunnelSet};
use crate::LinkType;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88A8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const ETHERTYPE_QINQ_OLD2: u16 = 0x9200;
/// Transparent Ethernet bridging (an Ethernet frame inside GRE or Geneve).
const ETHERTYPE_TEB: u16 = 0x6558;
/// Most VLAN tags followed (etherparse's own limit is 3 link extensions).
const MAX_VLAN_TAGS: usize = 3;
/// Most IPv6 extension headers followed before giving up.
const MAX_IPV6_EXTS: usize = 8;
/// Most network-layer tunnels opened inside one another; deeper packets are
/// [`Skip::TooDeep`].
pub const MAX_TUNNEL_DEPTH: u8 = 4;

const IPPROTO_IPIP: u8 = 4;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_GRE: u8 = 47;

/// Transport protocol of a decoded packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
}

/// The TCP header fields the flow table needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpInfo {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// SYN flag.
    pub syn: bool,
    /// ACK flag.
    pub ack_flag: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
    /// PSH flag.
    pub psh: bool,
}

/// A decoded TCP or UDP packet; `payload` borrows from the frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Source address (of the innermost packet when decoded from a tunnel).
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// TCP or UDP.
    pub proto: Proto,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// TCP header fields, `None` for UDP.
    pub tcp: Option<TcpInfo>,
    /// Transport payload bytes present in the frame (Ethernet padding excluded).
    pub payload: &'a [u8],
    /// True when the payload is incomplete: the frame was cut by the snaplen, or the
    /// packet is the first fragment of a fragmented datagram.
    pub payload_truncated: bool,
    /// Outermost 802.1Q VLAN id, if tagged.
    pub vlan: Option<u16>,
    /// Length of the IP packet per its header (total length, or 40 + payload length
    /// for IPv6); the captured length when the header says 0 (TSO/jumbo).
    pub ip_len: u32,
    /// The outermost network-layer tunnel this packet came out of, `None` for a
    /// packet that was not tunnelled (link-level PPP, PPPoE and MPLS do not count).
    pub tunnel: Option<Tunnel>,
}

/// Why a frame yields no [`Packet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Skip {
    /// Not IPv4/IPv6 (ARP, LLDP, PPP control, unknown link type ...).
    NotIp,
    /// IP, but neither TCP nor UDP (ICMP, ESP, a tunnel that is not enabled, ...).
    NotTcpUdp,
    /// A non-first IP fragment (it carries no transport header), or a fragment of
    /// a tunnel packet (its inner packet is incomplete).
    Fragment,
    /// A header is cut short or inconsistent.
    Malformed,
    /// More than [`MAX_TUNNEL_DEPTH`] tunnels inside one another.
    TooDeep,
}

/// Decoding choices that are configuration, not facts of the frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Network-layer tunnels to decapsulate (none by default).
    pub tunnels: TunnelSet,
}

/// Decodes one captured frame of link type `link`, with no network-layer tunnel
/// decapsulated (a GTP-U datagram stays a UDP packet; GRE and IP-in-IP are
/// [`Skip::NotTcpUdp`]). See [`decode_with`].
pub fn decode(link: LinkType, data: &[u8]) -> Result<Packet<'_>, Skip> {
    decode_with(link, data, DecodeOptions::default())
}

/// Decodes one captured frame of link type `link`, opening the tunnels `opts`
/// enables.
///
/// Lax about truncation: as long as the transport header is present the packet is
/// returned, with `payload_truncated` set if the IP header announces more bytes.
pub fn decode_with(link: LinkType, data: &[u8], opts: DecodeOptions) -> Result<Packet<'_>, Skip> {
    let cx = Ctx {
        tunnels: opts.tunnels,
        vlan: None,
        depth: 0,
        tunnel: None,
        truncated: false,
    };
    match link {
        LinkType::Ethernet => ethernet(data, cx),
        LinkType::LinuxSll => {
            let proto = be16(data, 14).ok_or(Skip::Malformed)?;
            by_ethertype(proto, data.get(16..).ok_or(Skip::Malformed)?, cx)
        }
        LinkType::LinuxSll2 => {
            let proto = be16(data, 0).ok_or(Skip::Malformed)?;
            by_ethertype(proto, data.get(20..).ok_or(Skip::Malformed)?, cx)
        }
        LinkType::RawIp => by_version(data, cx),
        LinkType::Ipv4 => ipv4(data, cx),
        LinkType::Ipv6 => ipv6(data, cx),
        LinkType::Null => {
            let fam: [u8; 4] = data
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .ok_or(Skip::Malformed)?;
            // The family is in the capturing host's byte order (big-endian for DLT 108).
            let (le, be) = (u32::from_le_bytes(fam), u32::from_be_bytes(fam));
            let rest = data.get(4..).ok_or(Skip::Malformed)?;
            // AF_INET is 2 everywhere; AF_INET6 is 10 (Linux), 24 (NetBSD/OpenBSD),
            // 28 (FreeBSD), 30 (Darwin), 23 (Windows).
            let is_v6 = |f: u32| matches!(f, 10 | 23 | 24 | 28 | 30);
            if le == 2 || be == 2 {
                ipv4(rest, cx)
            } else if is_v6(le) || is_v6(be) {
                ipv6(rest, cx)
            } else {
                Err(Skip::NotIp)
            }
        }
        LinkType::Ppp | LinkType::PppHdlc => match ppp::cisco_hdlc(data) {
            // DLT 50 also carries Cisco HDLC frames
            Some((proto, rest)) if link == LinkType::PppHdlc => by_ethertype(proto, rest, cx),
            _ => ppp_frame(data, cx),
        },
        LinkType::PppEther => pppoe(data, cx),
        // a direction byte, then PPP (with or without address and control)
        LinkType::PppWithDir => ppp_frame(data.get(1..).ok_or(Skip::Malformed)?, cx),
        // pppd's own framing: the address byte is the direction, then control 0x03
        LinkType::PppPppd => match data {
            [_, 0x03, rest @ ..] => ppp_frame(rest, cx),
            _ => ppp_frame(data, cx),
        },
        LinkType::CiscoHdlc => {
            let (proto, rest) = ppp::cisco_hdlc(data).ok_or(Skip::Malformed)?;
            by_ethertype(proto, rest, cx)
        }
        LinkType::Other(_) => Err(Skip::NotIp),
    }
}

/// Decoding context carried from the outer layers to the inner ones.
#[derive(Clone, Copy)]
struct Ctx {
    tunnels: TunnelSet,
    vlan: Option<u16>,
    /// Network-layer tunnels opened so far.
    depth: u8,
    /// The outermost tunnel opened, if any.
    tunnel: Option<Tunnel>,
    /// An outer layer was cut short.
    truncated: bool,
}

fn ethernet(data: &[u8], cx: Ctx) -> Result<Packet<'_>, Skip> {
    let eth = Ethernet2HeaderSlice::from_slice(data).map_err(|_| Skip::Malformed)?;
    let rest = data.get(eth.slice().len()..).ok_or(Skip::Malformed)?;
    by_ethertype(eth.ether_type().0, rest, cx)
}

fn by_ethertype(mut ether_type: u16, mut rest: &[u8], mut cx: Ctx) -> Result<Packet<'_>, Skip> {
    let mut tags = 0;
    while matches!(
        ether_type,
        ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD | ETHERTYPE_QINQ_OLD2
    ) {
        if tags == MAX_VLAN_TAGS {
            return Err(Skip::NotIp);
        }
        let tag = SingleVlanHeaderSlice::from_slice(rest).map_err(|_| Skip::Malformed)?;
        if cx.vlan.is_none() {
            cx.vlan = Some(tag.vlan_identifier().value());
        }
        ether_type = tag.ether_type().0;
        rest = rest.get(tag.slice().len()..).ok_or(Skip::Malformed)?;
        tags += 1;
    }
    match ether_type {
        ETHERTYPE_IPV4 => ipv4(rest, cx),
        ETHERTYPE_IPV6 => ipv6(rest, cx),
        ppp::ETHERTYPE_PPPOE_SESSION => pppoe(rest, cx),
        ppp::ETHERTYPE_MPLS | ppp::ETHERTYPE_MPLS_MC => mpls(rest, cx),
        _ => Err(Skip::NotIp),
    }
}

fn pppoe(data: &[u8], cx: Ctx) -> Result<Packet<'_>, Skip> {
    ppp_frame(ppp::pppoe_session(data).ok_or(Skip::Malformed)?, cx)
}

fn ppp_frame(data: &[u8], cx: Ctx) -> Result<Packet<'_>, Skip> {
    match ppp::ppp(data).ok_or(Skip::Malformed)? {
        (PppNext::Ipv4, rest) => ipv4(rest, cx),
        (PppNext::Ipv6, rest) => ipv6(rest, cx),
        (PppNext::Mpls, rest) => mpls(rest, cx),
        (PppNext::Other, _) => Err(Skip::NotIp),
    }
}

fn mpls(data: &[u8], cx: Ctx) -> Result<Packet<'_>, Skip> {
    match ppp::mpls(data).ok_or(Skip::Malformed)? {
        (MplsNext::Ipv4, rest) => ipv4(rest, cx),
        (MplsNext::Ipv6, rest) => ipv6(rest, cx),
        (MplsNext::Other, _) => Err(Skip::NotIp),
    }
}

fn by_version(data: &[u8], cx: Ctx) -> Result<Packet<'_>, Skip> {
    match data.first().map(|b| b >> 4) {
        Some(4) => ipv4(data, cx),
        Some(6) => ipv6(data, cx),
        Some(_) => Err(Skip::NotIp),
        None => Err(Skip::Malformed),
    }
}

/// Where the IP payload ends: `(end, truncated)` for a header announcing
/// `announced` bytes of which `present` are captured. 0 means "unknown" (TSO/jumbo).
#[inline]
fn clamp_len(announced: usize, present: usize) -> (usize, bool) {
    if announced == 0 {
        (present, false)
    } else if announced <= present {
        (announced, false)
    } else {
        (present, true)
    }
}

fn ipv4(data: &[u8], cx: Ctx) -> Result<Packet<'_>, Skip> {
    let h = Ipv4HeaderSlice::from_slice(data).map_err(|_| Skip::Malformed)?;
    if h.fragments_offset().value() != 0 {
        return Err(Skip::Fragment);
    }
    let hl = h.slice().len();
    let total = usize::from(h.total_len());
    if total != 0 && total < hl {
        return Err(Skip::Malformed);
    }
    let (end, truncated) = clamp_len(total, data.len());
    let ip_len = if total == 0 { data.len() } else { total };
    let l4 = data.get(hl..end).ok_or(Skip::Malformed)?;
    let net = Net {
        src: IpAddr::V4(Ipv4Addr::from(h.source())),
        dst: IpAddr::V4(Ipv4Addr::from(h.destination())),
        truncated: truncated || cx.truncated,
        first_fragment: h.more_fragments(),
        ip_len: u32::try_from(ip_len).unwrap_or(u32::MAX),
        cx,
    };
    transport(h.protocol().0, l4, net)
}

fn ipv6(data: &[u8], cx: Ctx) -> Result<Packet<'_>, Skip> {
    let h = Ipv6HeaderSlice::from_slice(data).map_err(|_| Skip::Malformed)?;
    let after = data.get(h.slice().len()..).ok_or(Skip::Malformed)?;
    let plen = usize::from(h.payload_length());
    let (end, truncated) = clamp_len(plen, after.len());
    let mut rest = after.get(..end).ok_or(Skip::Malformed)?;
    let mut next = h.next_header().0;
    let mut first_fragment = false;
    for _ in 0..MAX_IPV6_EXTS {
        match next {
            // hop-by-hop, routing, destination options, mobility, HIP, shim6
            0 | 43 | 60 | 135 | 139 | 140 => {
                let ext = Ipv6RawExtHeaderSlice::from_slice(rest).map_err(|_| Skip::Malformed)?;
                next = ext.next_header().0;
                rest = rest.get(ext.slice().len()..).ok_or(Skip::Malformed)?;
            }
            44 => {
                let frag =
                    Ipv6FragmentHeaderSlice::from_slice(rest).map_err(|_| Skip::Malformed)?;
                if frag.fragment_offset().value() != 0 {
                    return Err(Skip::Fragment);
                }
                first_fragment |= frag.more_fragments();
                next = frag.next_header().0;
                rest = rest.get(frag.slice().len()..).ok_or(Skip::Malformed)?;
            }
            51 => {
                let auth = IpAuthHeaderSlice::from_slice(rest).map_err(|_| Skip::Malformed)?;
                next = auth.next_header().0;
                rest = rest.get(auth.slice().len()..).ok_or(Skip::Malformed)?;
            }
            _ => break,
        }
    }
    let net = Net {
        src: IpAddr::V6(Ipv6Addr::from(h.source())),
        dst: IpAddr::V6(Ipv6Addr::from(h.destination())),
        truncated: truncated || cx.truncated,
        first_fragment,
        ip_len: u32::try_from(if plen == 0 { data.len() } else { 40 + plen }).unwrap_or(u32::MAX),
        cx,
    };
    transport(next, rest, net)
}

/// Network-layer facts carried into the transport decoder.
struct Net {
    src: IpAddr,
    dst: IpAddr,
    truncated: bool,
    first_fragment: bool,
    ip_len: u32,
    cx: Ctx,
}

impl Net {
    /// The context for a packet inside a `kind` tunnel carried by this packet, or
    /// why it cannot be opened.
    fn enter(&self, kind: TunnelKind) -> Result<Ctx, Skip> {
        if self.cx.depth >= MAX_TUNNEL_DEPTH {
            return Err(Skip::TooDeep);
        }
        Ok(Ctx {
            depth: self.cx.depth + 1,
            tunnel: self.cx.tunnel.or(Some(Tunnel {
                kind,
                outer_src: self.src,
                outer_dst: self.dst,
            })),
            truncated: self.truncated,
            ..self.cx
        })
    }

    fn enabled(&self, kind: TunnelKind) -> bool {
        self.cx.tunnels.contains(kind)
    }
}

fn transport(proto: u8, l4: &[u8], net: Net) -> Result<Packet<'_>, Skip> {
    match proto {
        IPPROTO_TCP => {
            let t = match TcpHeaderSlice::from_slice(l4) {
                Ok(t) => t,
                // Cut by the snaplen inside the TCP options (a SYN with 40 option bytes
                // under a 68-byte snaplen): the fixed header still gives ports and flags.
                Err(_) if net.truncated => return tcp_fixed_header(l4, &net),
                Err(_) => return Err(Skip::Malformed),
            };
            let payload = l4.get(t.slice().len()..).unwrap_or_default();
            Ok(Packet {
                src: net.src,
                dst: net.dst,
                proto: Proto::Tcp,
                sport: t.source_port(),
                dport: t.destination_port(),
                tcp: Some(TcpInfo {
                    seq: t.sequence_number(),
                    ack: t.acknowledgment_number(),
                    syn: t.syn(),
                    ack_flag: t.ack(),
                    fin: t.fin(),
                    rst: t.rst(),
                    psh: t.psh(),
                }),
                payload,
                payload_truncated: net.truncated || net.first_fragment,
                vlan: net.cx.vlan,
                ip_len: net.ip_len,
                tunnel: net.cx.tunnel,
            })
        }
        IPPROTO_UDP => {
            let u = UdpHeaderSlice::from_slice(l4).map_err(|_| Skip::Malformed)?;
            let after = l4.get(8..).unwrap_or_default();
            let ulen = usize::from(u.length());
            let (payload, truncated) = if net.first_fragment {
                (after, true)
            } else if ulen == 0 {
                // jumbogram or offloaded: trust the IP length
                (after, net.truncated)
            } else if ulen < 8 {
                return Err(Skip::Malformed);
            } else if ulen - 8 <= after.len() {
                (after.get(..ulen - 8).unwrap_or(after), false)
            } else {
                (after, true)
            };
            let (sport, dport) = (u.source_port(), u.destination_port());
            if !net.first_fragment {
                if let Some(inner) = udp_tunnel(&net, sport, dport, payload) {
                    return inner;
                }
            }
            Ok(Packet {
                src: net.src,
                dst: net.dst,
                proto: Proto::Udp,
                sport,
                dport,
                tcp: None,
                payload,
                payload_truncated: truncated,
                vlan: net.cx.vlan,
                ip_len: net.ip_len,
                tunnel: net.cx.tunnel,
            })
        }
        IPPROTO_IPIP | IPPROTO_IPV6 if net.enabled(TunnelKind::Ipip) => {
            if net.first_fragment {
                return Err(Skip::Fragment);
            }
            let cx = net.enter(TunnelKind::Ipip)?;
            if proto == IPPROTO_IPIP {
                ipv4(l4, cx)
            } else {
                ipv6(l4, cx)
            }
        }
        IPPROTO_GRE if net.enabled(TunnelKind::Gre) => {
            if net.first_fragment {
                return Err(Skip::Fragment);
            }
            let (ether_type, inner) = tunnel::gre_inner(l4).ok_or(Skip::NotTcpUdp)?;
            let cx = net.enter(TunnelKind::Gre)?;
            match ether_type {
                tunnel::GRE_PPP => ppp_frame(inner, cx),
                ETHERTYPE_TEB => ethernet(inner, cx),
                _ => by_ethertype(ether_type, inner, cx),
            }
        }
        _ => Err(Skip::NotTcpUdp),
    }
}

/// The inner packet of an enabled UDP-port tunnel, or `None` to keep the datagram
/// as UDP (tunnel not enabled, not this tunnel's header, or an echo/control
/// message). An inner packet that fails to decode is that failure: it was a
/// well-formed tunnel header announcing it.
fn udp_tunnel<'a>(
    net: &Net,
    sport: u16,
    dport: u16,
    payload: &'a [u8],
) -> Option<Result<Packet<'a>, Skip>> {
    if net.enabled(TunnelKind::Gtpu) && (dport == tunnel::GTPU_PORT || sport == tunnel::GTPU_PORT) {
        let inner = tunnel::gtpu_inner(payload)?;
        return Some(
            net.enter(TunnelKind::Gtpu)
                .and_then(|cx| by_version(inner, cx)),
        );
    }
    if net.enabled(TunnelKind::Vxlan) && dport == tunnel::VXLAN_PORT {
        let inner = tunnel::vxlan_inner(payload)?;
        return Some(
            net.enter(TunnelKind::Vxlan)
                .and_then(|cx| ethernet(inner, cx)),
        );
    }
    if net.enabled(TunnelKind::Geneve) && dport == tunnel::GENEVE_PORT {
        let (ether_type, inner) = tunnel::geneve_inner(payload)?;
        if !matches!(ether_type, ETHERTYPE_TEB | ETHERTYPE_IPV4 | ETHERTYPE_IPV6) {
            return None;
        }
        return Some(net.enter(TunnelKind::Geneve).and_then(|cx| {
            if ether_type == ETHERTYPE_TEB {
                ethernet(inner, cx)
            } else {
                by_ethertype(ether_type, inner, cx)
            }
        }));
    }
    None
}

/// A TCP packet whose options were cut off: fields from the fixed 20-byte header,
/// empty payload, `payload_truncated` set.
fn tcp_fixed_header<'a>(l4: &'a [u8], net: &Net) -> Result<Packet<'a>, Skip> {
    let h: &[u8; 20] = l4
        .get(..20)
        .and_then(|h| h.try_into().ok())
        .ok_or(Skip::Malformed)?;
    // data offset below 5 words is malformed, not truncated
    if h[12] >> 4 < 5 {
        return Err(Skip::Malformed);
    }
    let flags = h[13];
    Ok(Packet {
        src: net.src,
        dst: net.dst,
        proto: Proto::Tcp,
        sport: u16::from_be_bytes([h[0], h[1]]),
        dport: u16::from_be_bytes([h[2], h[3]]),
        tcp: Some(TcpInfo {
            seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
            syn: flags & 0x02 != 0,
            ack_flag: flags & 0x10 != 0,
            fin: flags & 0x01 != 0,
            rst: flags & 0x04 != 0,
            psh: flags & 0x08 != 0,
        }),
        payload: &[],
        payload_truncated: true,
        vlan: net.cx.vlan,
        ip_len: net.ip_len,
        tunnel: net.cx.tunnel,
    })
}
