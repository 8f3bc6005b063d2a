//! Link-level framing inside a link: PPP (RFC 1661/1662), PPPoE sessions (RFC 2516),
//! Cisco HDLC and MPLS label stacks (RFC 3032).
//!
//! These are facts of the link, not guesses: the capture's link type says PPP, or the
//! Ethernet type says PPPoE session or MPLS. They are always decoded (see
//! [`crate::tunnel`] for why network-layer tunnels are not).

use crate::tunnel::be16;

/// PPPoE session stage (discovery, 0x8863, carries no IP).
pub(crate) const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
/// MPLS unicast and multicast.
pub(crate) const ETHERTYPE_MPLS: u16 = 0x8847;
pub(crate) const ETHERTYPE_MPLS_MC: u16 = 0x8848;

/// Most MPLS label stack entries followed before giving up.
const MAX_MPLS_LABELS: usize = 8;

/// What a PPP frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PppNext {
    Ipv4,
    Ipv6,
    Mpls,
    /// LCP, IPCP, compressed or encrypted data (MPPE), ...: no IP packet.
    Other,
}

/// Parses a PPP frame: optional HDLC address/control (0xFF 0x03, absent under
/// address-and-control-field compression) and a 2-byte or, under protocol-field
/// compression, 1-byte protocol (a protocol number's first byte is even, its
/// last odd, so an odd first byte is a compressed field).
pub(crate) fn ppp(data: &[u8]) -> Option<(PppNext, &[u8])> {
    let d = match data {
        [0xFF, 0x03, rest @ ..] => rest,
        _ => data,
    };
    let first = *d.first()?;
    let (proto, rest) = if first & 1 == 1 {
        (u16::from(first), d.get(1..)?)
    } else {
        (be16(d, 0)?, d.get(2..)?)
    };
    let next = match proto {
        0x0021 => PppNext::Ipv4,
        0x0057 => PppNext::Ipv6,
        0x0281 => PppNext::Mpls,
        _ => PppNext::Other,
    };
    Some((next, rest))
}

/// The PPP frame inside a PPPoE session header (version 1, type 1, code 0),
/// cut at the header's payload length.
pub(crate) fn pppoe_session(data: &[u8]) -> Option<&[u8]> {
    if *data.first()? != 0x11 || *data.get(1)? != 0x00 {
        return None;
    }
    let len = usize::from(be16(data, 4)?);
    let rest = data.get(6..)?;
    rest.get(..len.min(rest.len()))
}

/// The payload after a Cisco HDLC header (address 0x0F unicast or 0x8F
/// broadcast, control 0) and its Ethernet type.
pub(crate) fn cisco_hdlc(data: &[u8]) -> Option<(u16, &[u8])> {
    if !matches!(data.first()?, 0x0F | 0x8F) || *data.get(1)? != 0 {
        return None;
    }
    Some((be16(data, 2)?, data.get(4..)?))
}

/// What follows an MPLS label stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MplsNext {
    Ipv4,
    Ipv6,
    /// A pseudowire (control word or Ethernet) or anything else: not decoded.
    Other,
}

/// Skips an MPLS label stack up to its bottom-of-stack entry; the payload's first
/// nibble then tells IPv4 from IPv6 (MPLS carries no protocol field).
pub(crate) fn mpls(data: &[u8]) -> Option<(MplsNext, &[u8])> {
    let mut off = 0;
    for _ in 0..MAX_MPLS_LABELS {
        let entry = data.get(off..off + 4)?;
        off += 4;
        if entry.get(2)? & 0x01 != 0 {
            let rest = data.get(off..)?;
            let next = match rest.first().map(|b| b >> 4) {
                Some(4) => MplsNext::Ipv4,
                Some(6) => MplsNext::Ipv6,
                Some(_) => MplsNext::Other,
                None => return None,
            };
            return Some((next, rest));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppp_protocol_fields() {
        let ip = [0x45u8, 0];
        assert_eq!(
            ppp(&[0xFF, 0x03, 0x00, 0x21, 0x45, 0]),
            Some((PppNext::Ipv4, &ip[..]))
        );
        assert_eq!(ppp(&[0x00, 0x21, 0x45, 0]), Some((PppNext::Ipv4, &ip[..])));
        assert_eq!(ppp(&[0x21, 0x45, 0]), Some((PppNext::Ipv4, &ip[..])));
        assert_eq!(
            ppp(&[0xFF, 0x03, 0x57, 0x60]).map(|x| x.0),
            Some(PppNext::Ipv6)
        );
        assert_eq!(ppp(&[0x02, 0x81, 0]).map(|x| x.0), Some(PppNext::Mpls));
        assert_eq!(ppp(&[0xC0, 0x21, 1]).map(|x| x.0), Some(PppNext::Other)); // LCP
        assert_eq!(ppp(&[0xFF, 0x03]), None);
        assert_eq!(ppp(&[0x00]), None);
        assert_eq!(ppp(&[]), None);
    }

    #[test]
    fn pppoe_and_mpls() {
        let s = [0x11, 0x00, 0x12, 0x34, 0x00, 0x03, 0x00, 0x21, 0x45, 0xEE];
        assert_eq!(pppoe_session(&s), Some(&[0x00, 0x21, 0x45][..]));
        assert_eq!(pppoe_session(&[0x11, 0x09, 0, 0, 0, 0]), None); // discovery code
        assert_eq!(pppoe_session(&s[..5]), None);
        // two labels, bottom of stack on the second
        let m = [0, 0, 0x10, 64, 0, 0, 0x21, 64, 0x60, 0];
        assert_eq!(mpls(&m), Some((MplsNext::Ipv6, &m[8..])));
        assert_eq!(mpls(&m[..8]), None);
        // no bottom of stack within the limit
        assert_eq!(mpls(&[0u8; 64]), None);
        assert_eq!(
            mpls(&[0, 0, 1, 64, 0, 0]).map(|x| x.0),
            Some(MplsNext::Other)
        );
        assert_eq!(
            cisco_hdlc(&[0x0F, 0, 0x08, 0x00, 0x45]),
            Some((0x0800, &[0x45][..]))
        );
        assert_eq!(cisco_hdlc(&[0xFF, 0x03, 0x00, 0x21]), None);
    }
}
