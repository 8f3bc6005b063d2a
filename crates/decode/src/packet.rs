//! Frame decoding: link layer -> IPv4/IPv6 -> TCP/UDP (-> GTP-U inner packet).
//!
//! The decoder chains `etherparse` header slices (no aggregate `SlicedPacket`), which
//! keeps it at a few nanoseconds per packet. Every access is bounds-checked through
//! `get`, so no input can make it panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    Ethernet2HeaderSlice, IpAuthHeaderSlice, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice,
    Ipv6HeaderSlice, Ipv6RawExtHeaderSlice, SingleVlanHeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
};

use crate::LinkType;

/// UDP port of GTP-U (3GPP TS 29.281); such datagrams are decoded as their inner packet.
pub const GTPU_PORT: u16 = 2152;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88A8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const ETHERTYPE_QINQ_OLD2: u16 = 0x9200;
/// Most VLAN tags followed (etherparse's own limit is 3 link extensions).
const MAX_VLAN_TAGS: usize = 3;
/// Most IPv6 extension headers followed before giving up.
const MAX_IPV6_EXTS: usize = 8;
/// Most GTP-U extension headers followed.
const MAX_GTP_EXTS: usize = 8;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// Transport protocol of a decoded packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// Source address (of the inner packet for GTP-U).
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
}

/// Why a frame yields no [`Packet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Skip {
    /// Not IPv4/IPv6 (ARP, LLDP, unknown link type ...).
    NotIp,
    /// IP, but neither TCP nor UDP (ICMP, ESP, ...).
    NotTcpUdp,
    /// A non-first IP fragment: it carries no transport header.
    Fragment,
    /// A header is cut short or inconsistent.
    Malformed,
}

/// Decodes one captured frame of link type `link`.
///
/// Lax about truncation: as long as the transport header is present the packet is
/// returned, with `payload_truncated` set if the IP header announces more bytes.
pub fn decode(link: LinkType, data: &[u8]) -> Result<Packet<'_>, Skip> {
    match link {
        LinkType::Ethernet => {
            let eth = Ethernet2HeaderSlice::from_slice(data).map_err(|_| Skip::Malformed)?;
            let rest = data.get(eth.slice().len()..).ok_or(Skip::Malformed)?;
            by_ethertype(eth.ether_type().0, rest)
        }
        LinkType::LinuxSll => {
            let proto = be16(data, 14).ok_or(Skip::Malformed)?;
            by_ethertype(proto, data.get(16..).ok_or(Skip::Malformed)?)
        }
        LinkType::LinuxSll2 => {
            let proto = be16(data, 0).ok_or(Skip::Malformed)?;
            by_ethertype(proto, data.get(20..).ok_or(Skip::Malformed)?)
        }
        LinkType::RawIp => by_version(data, None, 0),
        LinkType::Ipv4 => ipv4(data, None, 0),
        LinkType::Ipv6 => ipv6(data, None, 0),
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
                ipv4(rest, None, 0)
            } else if is_v6(le) || is_v6(be) {
                ipv6(rest, None, 0)
            } else {
                Err(Skip::NotIp)
            }
        }
        LinkType::Other(_) => Err(Skip::NotIp),
    }
}

#[inline]
fn be16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

fn by_ethertype(mut ether_type: u16, mut rest: &[u8]) -> Result<Packet<'_>, Skip> {
    let mut vlan = None;
    let mut tags = 0;
    while matches!(
        ether_type,
        ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD | ETHERTYPE_QINQ_OLD2
    ) {
        if tags == MAX_VLAN_TAGS {
            return Err(Skip::NotIp);
        }
        let tag = SingleVlanHeaderSlice::from_slice(rest).map_err(|_| Skip::Malformed)?;
        if vlan.is_none() {
            vlan = Some(tag.vlan_identifier().value());
        }
        ether_type = tag.ether_type().0;
        rest = rest.get(tag.slice().len()..).ok_or(Skip::Malformed)?;
        tags += 1;
    }
    match ether_type {
        ETHERTYPE_IPV4 => ipv4(rest, vlan, 0),
        ETHERTYPE_IPV6 => ipv6(rest, vlan, 0),
        _ => Err(Skip::NotIp),
    }
}

fn by_version(data: &[u8], vlan: Option<u16>, depth: u8) -> Result<Packet<'_>, Skip> {
    match data.first().map(|b| b >> 4) {
        Some(4) => ipv4(data, vlan, depth),
        Some(6) => ipv6(data, vlan, depth),
        Some(_) => Err(Skip::NotIp),
        None => Err(Skip::Malformed),
    }
}

/// Where the IP payload ends: `(end, truncated, ip_len)` for a header announcing
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

fn ipv4(data: &[u8], vlan: Option<u16>, depth: u8) -> Result<Packet<'_>, Skip> {
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
        truncated,
        first_fragment: h.more_fragments(),
        vlan,
        ip_len: u32::try_from(ip_len).unwrap_or(u32::MAX),
        depth,
    };
    transport(h.protocol().0, l4, net)
}

fn ipv6(data: &[u8], vlan: Option<u16>, depth: u8) -> Result<Packet<'_>, Skip> {
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
        truncated,
        first_fragment,
        vlan,
        ip_len: u32::try_from(if plen == 0 { data.len() } else { 40 + plen }).unwrap_or(u32::MAX),
        depth,
    };
    transport(next, rest, net)
}

/// Network-layer facts carried into the transport decoder.
struct Net {
    src: IpAddr,
    dst: IpAddr,
    truncated: bool,
    first_fragment: bool,
    vlan: Option<u16>,
    ip_len: u32,
    depth: u8,
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
                vlan: net.vlan,
                ip_len: net.ip_len,
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
            if net.depth == 0 && !net.first_fragment && (dport == GTPU_PORT || sport == GTPU_PORT) {
                if let Some(inner) = gtpu_inner(payload) {
                    return by_version(inner, net.vlan, net.depth + 1);
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
                vlan: net.vlan,
                ip_len: net.ip_len,
            })
        }
        _ => Err(Skip::NotTcpUdp),
    }
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
        vlan: net.vlan,
        ip_len: net.ip_len,
    })
}

/// The inner IP packet of a GTPv1-U G-PDU, or `None` if `p` is not one (echo,
/// error indication, other version, garbage): the datagram is then kept as UDP.
fn gtpu_inner(p: &[u8]) -> Option<&[u8]> {
    let flags = *p.first()?;
    // version 1, protocol type GTP (not GTP')
    if flags >> 5 != 1 || flags & 0x10 == 0 || *p.get(1)? != 0xFF {
        return None;
    }
    let len = usize::from(be16(p, 2)?);
    let mut off = 8;
    if flags & 0x07 != 0 {
        // sequence number, N-PDU number, next extension header type
        let mut next_ext = *p.get(11)?;
        off = 12;
        let mut n = 0;
        while next_ext != 0 {
            n += 1;
            if n > MAX_GTP_EXTS {
                return None;
            }
            let ext_len = usize::from(*p.get(off)?) * 4;
            if ext_len == 0 {
                return None;
            }
            next_ext = *p.get(off + ext_len - 1)?;
            off += ext_len;
        }
    }
    let end = (8 + len).min(p.len());
    let inner = p.get(off..end)?;
    matches!(inner.first().map(|b| b >> 4), Some(4 | 6)).then_some(inner)
}
