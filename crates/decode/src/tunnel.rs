//! Encapsulations: which tunnels are decapsulated, and their header parsers.
//!
//! Two kinds of encapsulation reach the decoder, and they are trusted differently:
//!
//! * **Link-level framing** is a fact of the capture: the pcap link type says PPP, or an
//!   Ethernet frame carries a PPPoE session (ethertype 0x8864) or an MPLS label stack
//!   (0x8847/0x8848). The IP packet inside *is* the packet the gateway's kernel routes
//!   and filters (a `ppp0` interface sees it bare), so it is as trustworthy as any other
//!   IP header on that link. These are always decoded ([`crate::ppp`]).
//! * **Network-layer tunnels** carry a whole IP packet inside another routed IP packet:
//!   UDP-port tunnels (GTP-U 2152, VXLAN 4789, Geneve 6081) and IP-protocol tunnels (GRE
//!   47, IP-in-IP 4/41). Any host can send a UDP datagram to port 2152 or a GRE packet
//!   whose inner source is another client's address: nothing on the gateway validates an
//!   inner header, and the kernel's rules only ever match the outer one. Recognising them
//!   by port or protocol number is a guess an attacker can make come true, so each is
//!   decapsulated only when the operator lists it ([`TunnelSet`], policy `[decode]
//!   tunnels`). A packet decoded from inside one carries its [`Tunnel`] (kind and outer
//!   addresses) so the engine can keep inner flows apart and never aim a kernel block at
//!   an inner address.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// UDP port of GTP-U (3GPP TS 29.281).
pub const GTPU_PORT: u16 = 2152;
/// UDP destination port of VXLAN (RFC 7348).
pub const VXLAN_PORT: u16 = 4789;
/// UDP destination port of Geneve (RFC 8926).
pub const GENEVE_PORT: u16 = 6081;

/// Most GTP-U extension headers followed.
const MAX_GTP_EXTS: usize = 8;

/// A network-layer tunnel that is decapsulated only when configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TunnelKind {
    /// GTPv1-U G-PDUs on UDP port 2152 (mobile core networks).
    Gtpu,
    /// GRE (IP protocol 47): RFC 2784/2890 version 0, and PPTP's enhanced GRE
    /// version 1 (RFC 2637) carrying PPP.
    Gre,
    /// IP-in-IP: IPv4 or IPv6 inside IPv4 or IPv6 (IP protocols 4 and 41).
    Ipip,
    /// VXLAN on UDP destination port 4789 (inner Ethernet frame).
    Vxlan,
    /// Geneve on UDP destination port 6081.
    Geneve,
}

impl TunnelKind {
    /// Every kind, in configuration order.
    pub const ALL: [TunnelKind; 5] = [
        TunnelKind::Gtpu,
        TunnelKind::Gre,
        TunnelKind::Ipip,
        TunnelKind::Vxlan,
        TunnelKind::Geneve,
    ];

    /// The configuration and report name (`"gtpu"`, `"gre"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelKind::Gtpu => "gtpu",
            TunnelKind::Gre => "gre",
            TunnelKind::Ipip => "ipip",
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for TunnelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TunnelKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        TunnelKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(())
    }
}

/// The set of tunnels the decoder may decapsulate. The default is empty: no
/// network-layer tunnel is opened unless the operator asks for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TunnelSet(u8);

impl TunnelSet {
    /// No tunnel (the default).
    pub const NONE: TunnelSet = TunnelSet(0);

    /// Every supported tunnel.
    pub fn all() -> TunnelSet {
        TunnelKind::ALL.into_iter().collect()
    }

    /// Whether `kind` is decapsulated.
    pub fn contains(self, kind: TunnelKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// This set plus `kind`.
    #[must_use]
    pub fn with(self, kind: TunnelKind) -> TunnelSet {
        TunnelSet(self.0 | kind.bit())
    }

    /// True when no tunnel is enabled.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<TunnelKind> for TunnelSet {
    fn from_iter<I: IntoIterator<Item = TunnelKind>>(it: I) -> Self {
        it.into_iter().fold(TunnelSet::NONE, TunnelSet::with)
    }
}

/// The outermost network-layer tunnel a packet was decoded from: what the kernel sees
/// (and can match) is the outer header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tunnel {
    /// The tunnel protocol.
    pub kind: TunnelKind,
    /// Source address of the outer IP header.
    pub outer_src: IpAddr,
    /// Destination address of the outer IP header.
    pub outer_dst: IpAddr,
}

#[inline]
pub(crate) fn be16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

/// The inner IP packet of a GTPv1-U G-PDU, or `None` if `p` is not one (echo,
/// error indication, other version, garbage): the datagram is then kept as UDP.
pub(crate) fn gtpu_inner(p: &[u8]) -> Option<&[u8]> {
    let flags = *p.first()?;
    // version 1, protocol type GTP (not GTP'), message type 0xFF (G-PDU)
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

/// The inner Ethernet frame of a VXLAN datagram (RFC 7348): flags with the I bit
/// (0x08; the group-policy extension's 0x80 is tolerated) and a zero last reserved
/// byte. Anything else is kept as UDP.
pub(crate) fn vxlan_inner(p: &[u8]) -> Option<&[u8]> {
    let flags = *p.first()?;
    if flags & 0x08 == 0 || flags & !0x88 != 0 || *p.get(7)? != 0 {
        return None;
    }
    p.get(8..)
}

/// The protocol type and inner bytes of a Geneve datagram (RFC 8926): version 0,
/// options skipped by their announced length.
pub(crate) fn geneve_inner(p: &[u8]) -> Option<(u16, &[u8])> {
    let b0 = *p.first()?;
    if b0 >> 6 != 0 {
        return None;
    }
    let opt_len = usize::from(b0 & 0x3F) * 4;
    let proto = be16(p, 2)?;
    Some((proto, p.get(8 + opt_len..)?))
}

/// GRE protocol type of PPP (PPTP's enhanced GRE).
pub(crate) const GRE_PPP: u16 = 0x880B;

/// The protocol type and payload of a GRE packet.
///
/// Version 0 (RFC 2784 with RFC 2890's key and sequence number): the checksum
/// (C), key (K) and sequence (S) fields are skipped when their flags are set; a
/// packet with the obsolete routing bit (R) is not decapsulated. Version 1 (PPTP,
/// RFC 2637): K must be set and the protocol must be PPP; the payload length and
/// call id replace the key, then the optional sequence (S) and acknowledgment (A)
/// numbers; an acknowledgment-only packet has an empty payload.
pub(crate) fn gre_inner(p: &[u8]) -> Option<(u16, &[u8])> {
    let flags = be16(p, 0)?;
    let proto = be16(p, 2)?;
    let (c, r, k, s) = (
        flags & 0x8000 != 0,
        flags & 0x4000 != 0,
        flags & 0x2000 != 0,
        flags & 0x1000 != 0,
    );
    match flags & 0x0007 {
        0 => {
            if r {
                return None;
            }
            let off = 4 + 4 * (usize::from(c) + usize::from(k) + usize::from(s));
            Some((proto, p.get(off..)?))
        }
        1 => {
            let a = flags & 0x0080 != 0;
            if c || r || !k || proto != GRE_PPP {
                return None;
            }
            let plen = usize::from(be16(p, 4)?);
            let off = 8 + 4 * (usize::from(s) + usize::from(a));
            let rest = p.get(off..)?;
            Some((proto, rest.get(..plen.min(rest.len()))?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sets() {
        for k in TunnelKind::ALL {
            assert_eq!(k.as_str().parse::<TunnelKind>(), Ok(k));
            assert!(!TunnelSet::NONE.contains(k));
            assert!(TunnelSet::all().contains(k));
        }
        assert!("GRE".parse::<TunnelKind>().is_err());
        let s = TunnelSet::NONE.with(TunnelKind::Gre);
        assert!(s.contains(TunnelKind::Gre) && !s.contains(TunnelKind::Gtpu));
        assert!(TunnelSet::default().is_empty());
    }

    #[test]
    fn gre_headers() {
        let ip = [0x45, 0, 0, 20];
        // plain
        let mut g = vec![0, 0, 0x08, 0];
        g.extend_from_slice(&ip);
        assert_eq!(gre_inner(&g), Some((0x0800, &ip[..])));
        // checksum + key + sequence
        let mut g = vec![0xB0, 0, 0x86, 0xDD, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 9];
        g.extend_from_slice(&ip);
        assert_eq!(gre_inner(&g), Some((0x86DD, &ip[..])));
        // routing bit: refused
        assert_eq!(gre_inner(&[0x40, 0, 0x08, 0, 0, 0, 0, 0]), None);
        // version 2: refused
        assert_eq!(gre_inner(&[0, 2, 0x08, 0]), None);
        // PPTP: K + S + A, payload length 4
        let mut g = vec![0x30, 0x81, 0x88, 0x0B, 0, 4, 0, 7, 0, 0, 0, 1, 0, 0, 0, 1];
        g.extend_from_slice(&[0xFF, 0x03, 0x00, 0x21, 0xAA]);
        assert_eq!(
            gre_inner(&g),
            Some((GRE_PPP, &[0xFF, 0x03, 0x00, 0x21][..]))
        );
        // PPTP without K or with another protocol: refused
        assert_eq!(gre_inner(&[0x10, 0x01, 0x88, 0x0B, 0, 0, 0, 0]), None);
        assert_eq!(gre_inner(&[0x20, 0x01, 0x08, 0x00, 0, 0, 0, 0]), None);
        // every cut of a valid header is refused or shorter, never a panic
        for n in 0..g.len() {
            let _ = gre_inner(&g[..n]);
        }
    }

    #[test]
    fn vxlan_and_geneve_headers() {
        let eth = [1u8; 14];
        let mut v = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
        v.extend_from_slice(&eth);
        assert_eq!(vxlan_inner(&v), Some(&eth[..]));
        v[0] = 0x00; // I flag missing
        assert_eq!(vxlan_inner(&v), None);
        v[0] = 0x0C; // unknown flag
        assert_eq!(vxlan_inner(&v), None);
        let mut g = vec![0x01, 0, 0x65, 0x58, 0, 0, 1, 0, 9, 9, 9, 9];
        g.extend_from_slice(&eth);
        assert_eq!(geneve_inner(&g), Some((0x6558, &eth[..])));
        g[0] = 0x41; // version 1
        assert_eq!(geneve_inner(&g), None);
        assert_eq!(geneve_inner(&[0x3F, 0, 8, 0, 0, 0, 0, 0]), None);
    }
}
