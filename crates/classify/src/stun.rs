//! STUN / TURN message parsing (RFC 5389/8489, classic RFC 3489, RFC 4571
//! framing on TCP, Microsoft multiplexed TURN) and RFC 7983 demultiplexing.
//!
//! Zero-copy: a [`StunMessage`] borrows the packet. Never panics on any
//! input: every access is bounds-checked and every loop is bounded by the
//! payload length.
//!
//! Acceptance rules (facts from the conferencing reference, §3.1):
//! * at least 20 header bytes, top two bits of the type zero, type non-zero;
//! * accepted types: `(type & 0x3EEF) <= 0x000B`, or 0x0800-0x0805 (WhatsApp);
//! * with the magic cookie 0x2112A442 (RFC 5389): on UDP the message fills the
//!   datagram exactly (`msg_len + 20 == len`); on TCP it may be preceded by a
//!   2-byte RFC 4571 length and must fit in the segment;
//! * without the cookie (RFC 3489): UDP only, only the classic request /
//!   response / error types, and the attribute walk must end exactly at the
//!   end of the payload;
//! * Microsoft multiplexed TURN: `FF 10`, a BE16 length equal to the payload
//!   length minus 4, 8 more header bytes, the inner message at offset 12.
//!
//! In every accepted message the attributes are well formed: each header fits
//! and each value fits in the message (the last value may omit its padding),
//! either with 4-byte padding or, for Microsoft MS-TURN, with no padding and
//! the walk ending exactly at the end.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// RFC 5389 magic cookie.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;

/// Well-known attribute types.
pub mod attr {
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    pub const USERNAME: u16 = 0x0006;
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub const ERROR_CODE: u16 = 0x0009;
    pub const CHANNEL_NUMBER: u16 = 0x000C;
    pub const LIFETIME: u16 = 0x000D;
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    pub const DATA: u16 = 0x0013;
    pub const REALM: u16 = 0x0014;
    pub const NONCE: u16 = 0x0015;
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// Pre-RFC XOR-MAPPED-ADDRESS code point used by MS-TURN.
    pub const XOR_MAPPED_ADDRESS_MS: u16 = 0x8020;
    pub const PRIORITY: u16 = 0x0024;
    pub const USE_CANDIDATE: u16 = 0x0025;
    pub const SOFTWARE: u16 = 0x8022;
    pub const FINGERPRINT: u16 = 0x8028;
    pub const ICE_CONTROLLED: u16 = 0x8029;
    pub const ICE_CONTROLLING: u16 = 0x802A;
    /// Microsoft MS-Multiplexed-TURN-Session-ID.
    pub const MS_MULTIPLEXED_TURN_SESSION_ID: u16 = 0x8095;
}

/// The four STUN message classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Request,
    Indication,
    SuccessResponse,
    ErrorResponse,
}

/// How the message was found inside the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// The payload starts with the STUN header.
    Plain,
    /// TCP, preceded by an RFC 4571 2-byte length.
    Rfc4571,
    /// Inside a Microsoft multiplexed TURN header (`FF 10`), offset 12.
    MsMultiplexed,
}

/// One parsed STUN/TURN message, borrowing the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StunMessage<'a> {
    /// Message type (class and method bits), e.g. 0x0001 Binding request.
    pub msg_type: u16,
    /// Transaction id: 12 bytes after the cookie (RFC 5389), or the 16 bytes
    /// after the length field (classic RFC 3489, no cookie).
    pub transaction_id: &'a [u8],
    /// True when bytes 4..8 are the RFC 5389 magic cookie.
    pub has_cookie: bool,
    /// The attribute bytes (exactly `msg_len` bytes after the header).
    pub attrs: &'a [u8],
    /// How the message was framed in the payload.
    pub framing: Framing,
    /// Attribute values are padded to 4 bytes (RFC 5389). False for
    /// Microsoft MS-TURN messages (e.g. `teams.pcap` Allocate exchanges),
    /// whose attributes follow each other unpadded: chosen when only the
    /// unpadded walk ends exactly at the end of the message.
    pub padded: bool,
}

/// Classic RFC 3489 message types accepted without the magic cookie.
const CLASSIC_TYPES: [u16; 16] = [
    0x0001, 0x0101, 0x0111, 0x0002, 0x0102, 0x0112, 0x0003, 0x0103, 0x0113, 0x0004, 0x0104, 0x0114,
    0x0115, 0x0006, 0x0106, 0x0116,
];

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*s.first()?, *s.get(1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    let a: [u8; 4] = s.try_into().ok()?;
    Some(u32::from_be_bytes(a))
}

/// True for message types this parser accepts (before cookie rules).
pub fn accepted_type(t: u16) -> bool {
    t != 0 && t & 0xC000 == 0 && ((t & 0x3EEF) <= 0x000B || (0x0800..=0x0805).contains(&t))
}

/// True when `attrs` is a well-formed attribute sequence: every header and
/// value fits, padding to 4 bytes, the last value may omit its padding.
fn attrs_well_formed(attrs: &[u8]) -> bool {
    let mut rest = attrs;
    // Each step consumes at least 4 bytes, so the loop is bounded.
    while !rest.is_empty() {
        let Some(len) = be16(rest, 2) else {
            return false;
        };
        let len = usize::from(len);
        let Some(after_value) = 4usize.checked_add(len) else {
            return false;
        };
        if after_value > rest.len() {
            return false;
        }
        let padded = (after_value + 3) & !3;
        if padded >= rest.len() {
            // Either exactly at the end (padded) or only the padding is missing.
            return true;
        }
        rest = rest.get(padded..).unwrap_or(&[]);
    }
    true
}

/// True when the unpadded walk (MS-TURN) ends exactly at the end.
fn attrs_unpadded_exact(attrs: &[u8]) -> bool {
    let mut rest = attrs;
    while !rest.is_empty() {
        let Some(len) = be16(rest, 2) else {
            return false;
        };
        let step = 4 + usize::from(len);
        match rest.get(step..) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    true
}

/// Parses one STUN message at the start of `b` (no framing). `exact`: the
/// message must fill `b` exactly (UDP); otherwise it must fit.
fn parse_plain(b: &[u8], exact: bool, allow_classic: bool) -> Option<StunMessage<'_>> {
    let msg_type = be16(b, 0)?;
    let msg_len = usize::from(be16(b, 2)?);
    let cookie = be32(b, 4)?;
    if b.len() < 20 || !accepted_type(msg_type) {
        return None;
    }
    let end = 20usize.checked_add(msg_len)?;
    if (exact && end != b.len()) || end > b.len() {
        return None;
    }
    let attrs = b.get(20..end)?;
    let has_cookie = cookie == MAGIC_COOKIE;
    if has_cookie {
        let padded = if attrs_well_formed(attrs) {
            true
        } else if attrs_unpadded_exact(attrs) {
            false
        } else {
            return None;
        };
        Some(StunMessage {
            msg_type,
            transaction_id: b.get(8..20)?,
            has_cookie,
            attrs,
            framing: Framing::Plain,
            padded,
        })
    } else {
        if !allow_classic || !CLASSIC_TYPES.contains(&msg_type) || msg_len % 4 != 0 {
            return None;
        }
        // Classic attributes are multiples of 4 bytes: the walk must end
        // exactly at the end of the payload.
        let mut rest = attrs;
        while !rest.is_empty() {
            let len = usize::from(be16(rest, 2)?);
            let step = 4usize.checked_add(len)?;
            if len % 4 != 0 || step > rest.len() {
                return None;
            }
            rest = rest.get(step..)?;
        }
        Some(StunMessage {
            msg_type,
            transaction_id: b.get(4..20)?,
            has_cookie,
            attrs,
            framing: Framing::Plain,
            padded: true,
        })
    }
}

/// The inner payload of a Microsoft multiplexed TURN packet (`FF 10`, BE16
/// length = payload length - 4, 8 more header bytes), or None.
pub fn ms_multiplexed_inner(payload: &[u8]) -> Option<&[u8]> {
    if payload.len() <= 12 || payload.first() != Some(&0xFF) || payload.get(1) != Some(&0x10) {
        return None;
    }
    let len = usize::from(be16(payload, 2)?);
    if len.checked_add(4)? != payload.len() {
        return None;
    }
    payload.get(12..)
}

/// Parses a STUN/TURN message from a UDP datagram (`tcp == false`) or the
/// start of a TCP segment (`tcp == true`). None when the payload is not STUN
/// by the rules in the module documentation.
pub fn parse(payload: &[u8], tcp: bool) -> Option<StunMessage<'_>> {
    if let Some(inner) = ms_multiplexed_inner(payload) {
        let mut m = parse_plain(inner, !tcp, !tcp)?;
        m.framing = Framing::MsMultiplexed;
        return Some(m);
    }
    if tcp {
        // RFC 4571: 2-byte length, then the message (cookie required on TCP).
        if let Some(framed) = be16(payload, 0) {
            let framed = usize::from(framed);
            if framed >= 20 {
                if let Some(inner) = payload.get(2..).and_then(|r| r.get(..framed)) {
                    if let Some(mut m) = parse_plain(inner, true, false) {
                        m.framing = Framing::Rfc4571;
                        return Some(m);
                    }
                }
            }
        }
        let m = parse_plain(payload, false, false)?;
        m.has_cookie.then_some(m)
    } else {
        parse_plain(payload, true, true)
    }
}

impl<'a> StunMessage<'a> {
    /// Method bits (class bits cleared): 0x001 Binding, 0x003 Allocate, ...
    pub fn method(&self) -> u16 {
        (self.msg_type & 0x000F) | ((self.msg_type & 0x00E0) >> 1) | ((self.msg_type & 0x3E00) >> 2)
    }

    /// The message class.
    pub fn class(&self) -> Class {
        match ((self.msg_type >> 7) & 0x2) | ((self.msg_type >> 4) & 0x1) {
            0 => Class::Request,
            1 => Class::Indication,
            2 => Class::SuccessResponse,
            _ => Class::ErrorResponse,
        }
    }

    pub fn is_request(&self) -> bool {
        self.class() == Class::Request
    }

    /// Success or error response.
    pub fn is_response(&self) -> bool {
        matches!(self.class(), Class::SuccessResponse | Class::ErrorResponse)
    }

    pub fn is_indication(&self) -> bool {
        self.class() == Class::Indication
    }

    /// Iterates over `(attr_type, value)`; values exclude padding.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            rest: self.attrs,
            padded: self.padded,
        }
    }

    /// The value of the first attribute of type `t`.
    pub fn attr(&self, t: u16) -> Option<&'a [u8]> {
        self.attributes().find(|(at, _)| *at == t).map(|(_, v)| v)
    }

    /// True when an attribute of type `t` is present.
    pub fn has_attr(&self, t: u16) -> bool {
        self.attr(t).is_some()
    }

    fn attr_str(&self, t: u16) -> Option<&'a str> {
        std::str::from_utf8(self.attr(t)?).ok()
    }

    /// REALM (0x0014) as UTF-8.
    pub fn realm(&self) -> Option<&'a str> {
        self.attr_str(attr::REALM)
    }

    /// SOFTWARE (0x8022) as UTF-8.
    pub fn software(&self) -> Option<&'a str> {
        self.attr_str(attr::SOFTWARE)
    }

    /// USERNAME (0x0006) as UTF-8.
    pub fn username(&self) -> Option<&'a str> {
        self.attr_str(attr::USERNAME)
    }

    /// DATA (0x0013): the relayed payload of a Send/Data indication, which
    /// may itself be STUN (parse it again with [`parse`]).
    pub fn data(&self) -> Option<&'a [u8]> {
        self.attr(attr::DATA)
    }

    /// Decodes an XOR-encoded address attribute value (RFC 5389 §15.2).
    /// Needs the magic cookie (classic messages have no XOR addresses).
    pub fn decode_xor_address(&self, value: &[u8]) -> Option<SocketAddr> {
        if !self.has_cookie {
            return None;
        }
        let family = *value.get(1)?;
        let port = be16(value, 2)? ^ (MAGIC_COOKIE >> 16) as u16;
        let ck = MAGIC_COOKIE.to_be_bytes();
        match (family, value.len()) {
            (0x01, 8) => {
                let a = value.get(4..8)?;
                let mut o = [0u8; 4];
                for (i, x) in o.iter_mut().enumerate() {
                    *x = a.get(i)? ^ ck.get(i)?;
                }
                Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(o)), port))
            }
            (0x02, 20) => {
                let a = value.get(4..20)?;
                let key = ck.iter().chain(self.transaction_id.iter());
                let mut o = [0u8; 16];
                for ((x, k), v) in o.iter_mut().zip(key).zip(a) {
                    *x = v ^ k;
                }
                Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port))
            }
            _ => None,
        }
    }

    /// XOR-MAPPED-ADDRESS (0x0020), decoded; falls back to the pre-RFC code
    /// point 0x8020 that Microsoft MS-TURN still uses (`teams.pcap`).
    pub fn xor_mapped_address(&self) -> Option<SocketAddr> {
        let v = self
            .attr(attr::XOR_MAPPED_ADDRESS)
            .or_else(|| self.attr(attr::XOR_MAPPED_ADDRESS_MS))?;
        self.decode_xor_address(v)
    }

    /// XOR-RELAYED-ADDRESS (0x0016), decoded.
    pub fn xor_relayed_address(&self) -> Option<SocketAddr> {
        self.decode_xor_address(self.attr(attr::XOR_RELAYED_ADDRESS)?)
    }

    /// Every XOR-PEER-ADDRESS (0x0012), decoded (a CreatePermission may carry
    /// several). Undecodable values are skipped.
    pub fn xor_peer_addresses(&self) -> impl Iterator<Item = SocketAddr> + 'a {
        let me = *self;
        self.attributes()
            .filter(|(t, _)| *t == attr::XOR_PEER_ADDRESS)
            .filter_map(move |(_, v)| me.decode_xor_address(v))
    }

    /// MAPPED-ADDRESS (0x0001), plain (RFC 3489 style).
    pub fn mapped_address(&self) -> Option<SocketAddr> {
        let v = self.attr(attr::MAPPED_ADDRESS)?;
        let port = be16(v, 2)?;
        match (*v.get(1)?, v.len()) {
            (0x01, 8) => {
                let a: [u8; 4] = v.get(4..8)?.try_into().ok()?;
                Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port))
            }
            (0x02, 20) => {
                let a: [u8; 16] = v.get(4..20)?.try_into().ok()?;
                Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), port))
            }
            _ => None,
        }
    }

    /// Total wire length of the message (header + attributes), not counting
    /// any RFC 4571 or multiplexing prefix.
    pub fn wire_len(&self) -> usize {
        20 + self.attrs.len()
    }
}

/// Iterator over STUN attributes: `(type, value)`, bounded by the attribute
/// bytes; stops at the first malformed attribute.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    rest: &'a [u8],
    padded: bool,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let t = be16(self.rest, 0)?;
        let len = usize::from(be16(self.rest, 2)?);
        let end = 4usize.checked_add(len)?;
        let Some(value) = self.rest.get(4..end) else {
            self.rest = &[];
            return None;
        };
        let next = if self.padded { (end + 3) & !3 } else { end };
        self.rest = self.rest.get(next..).unwrap_or(&[]);
        Some((t, value))
    }
}

/// TURN ChannelData (RFC 8656 §12.4) on UDP: first byte 0x40-0x4F (channel
/// numbers 0x4000-0x4FFF), BE16 length at 2; the datagram holds exactly
/// `4 + length` bytes, optionally padded to a multiple of 4.
pub fn is_turn_channel_data(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    let Some(len) = be16(payload, 2) else {
        return false;
    };
    if !(0x40..=0x4F).contains(&b0) {
        return false;
    }
    let exact = 4 + usize::from(len);
    let padded = (exact + 3) & !3;
    payload.len() == exact || payload.len() == padded
}

/// RFC 7983 / RFC 9443 demultiplexing by the first payload byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Demux {
    /// 0-3.
    Stun,
    /// 16-19.
    Zrtp,
    /// 20-63.
    Dtls,
    /// 64-79.
    TurnChannel,
    /// 128-191.
    RtpRtcp,
    /// Anything else (including QUIC long headers, 192-255).
    Other,
}

/// Classifies a packet on an established STUN 5-tuple by its first byte.
pub fn demux(first_byte: u8) -> Demux {
    match first_byte {
        0..=3 => Demux::Stun,
        16..=19 => Demux::Zrtp,
        20..=63 => Demux::Dtls,
        64..=79 => Demux::TurnChannel,
        128..=191 => Demux::RtpRtcp,
        _ => Demux::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request() -> Vec<u8> {
        let mut v = vec![0x00, 0x01, 0x00, 0x08];
        v.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        v.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        // SOFTWARE "abc" + 1 padding byte.
        v.extend_from_slice(&[0x80, 0x22, 0x00, 0x03, b'a', b'b', b'c', 0]);
        v
    }

    #[test]
    fn parses_binding_request_and_attributes() {
        let v = binding_request();
        let m = parse(&v, false).expect("stun");
        assert_eq!(m.msg_type, 0x0001);
        assert!(m.has_cookie && m.is_request() && !m.is_response());
        assert_eq!(m.method(), 0x001);
        assert_eq!(m.software(), Some("abc"));
        assert_eq!(m.attributes().count(), 1);
        // Length mismatch on UDP.
        let mut w = v.clone();
        w.push(0);
        assert!(parse(&w, false).is_none());
        // TCP accepts it with RFC 4571 framing.
        let mut t = vec![0, v.len() as u8];
        t.extend_from_slice(&v);
        let m = parse(&t, true).expect("framed");
        assert_eq!(m.framing, Framing::Rfc4571);
    }

    #[test]
    fn unpadded_ms_turn_attributes() {
        // ERROR-CODE with a 5-byte value, then LIFETIME, no padding between.
        let mut v = vec![0x01, 0x13, 0x00, 0x11];
        v.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        v.extend_from_slice(&[7; 12]);
        v.extend_from_slice(&[0x00, 0x09, 0x00, 0x05, 0, 0, 4, 1, b'x']);
        v.extend_from_slice(&[0x00, 0x0d, 0x00, 0x04, 0, 0, 0, 60]);
        let m = parse(&v, false).expect("ms-turn");
        assert!(!m.padded);
        let a: Vec<_> = m.attributes().map(|(t, v)| (t, v.len())).collect();
        assert_eq!(a, vec![(0x0009, 5), (0x000d, 4)]);
        // Neither walk fits: rejected.
        v[23] = 0x06;
        assert!(parse(&v, false).is_none());
    }

    #[test]
    fn classes() {
        let mut v = binding_request();
        v[0] = 0x01;
        v[1] = 0x01;
        assert_eq!(
            parse(&v, false).map(|m| m.class()),
            Some(Class::SuccessResponse)
        );
        v[1] = 0x11;
        assert_eq!(
            parse(&v, false).map(|m| m.class()),
            Some(Class::ErrorResponse)
        );
        v[0] = 0x00;
        v[1] = 0x16; // Send indication
        let m = parse(&v, false).expect("indication");
        assert!(m.is_indication());
        assert_eq!(m.method(), 0x006);
    }

    #[test]
    fn xor_address_v4_and_v6() {
        // RFC 5769 test vector 2.2 (IPv4 response): 192.0.2.1:32853.
        let mut v = vec![0x01, 0x01, 0x00, 0x0c];
        v.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        let txid = [
            0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
        ];
        v.extend_from_slice(&txid);
        v.extend_from_slice(&[
            0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
        ]);
        let m = parse(&v, false).expect("stun");
        assert_eq!(
            m.xor_mapped_address(),
            Some("192.0.2.1:32853".parse().expect("addr"))
        );
        // RFC 5769 2.3 (IPv6): 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
        let mut v = vec![0x01, 0x01, 0x00, 0x18];
        v.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        v.extend_from_slice(&txid);
        v.extend_from_slice(&[0x00, 0x12, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47]);
        v.extend_from_slice(&[
            0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2,
            0xb9, 0xd9,
        ]);
        let m = parse(&v, false).expect("stun v6");
        let peers: Vec<_> = m.xor_peer_addresses().collect();
        assert_eq!(
            peers,
            vec!["[2001:db8:1234:5678:11:2233:4455:6677]:32853"
                .parse()
                .expect("addr")]
        );
    }

    #[test]
    fn classic_requires_exact_walk_and_type() {
        // RFC 3489 Binding request with CHANGE-REQUEST (4 bytes).
        let mut v = vec![0x00, 0x01, 0x00, 0x08];
        v.extend_from_slice(&[0xAB; 16]);
        v.extend_from_slice(&[0x00, 0x03, 0x00, 0x04, 0, 0, 0, 0]);
        let m = parse(&v, false).expect("classic");
        assert!(!m.has_cookie);
        assert_eq!(m.transaction_id.len(), 16);
        // Not on TCP.
        assert!(parse(&v, true).is_none());
        // Walk that overruns.
        v[23] = 0x08;
        assert!(parse(&v, false).is_none());
        // Type outside the classic list (Allocate 0x0003 is in; 0x0005 is not).
        v[23] = 0x04;
        v[1] = 0x05;
        assert!(parse(&v, false).is_none());
    }

    #[test]
    fn ms_multiplexed_and_channel_data() {
        let inner = binding_request();
        let mut v = vec![0xFF, 0x10];
        v.extend_from_slice(&((inner.len() + 8) as u16).to_be_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&inner);
        let m = parse(&v, false).expect("ms");
        assert_eq!(m.framing, Framing::MsMultiplexed);
        v[3] ^= 1;
        assert!(parse(&v, false).is_none());

        assert!(is_turn_channel_data(&[0x40, 0x00, 0x00, 0x03, 1, 2, 3]));
        assert!(is_turn_channel_data(&[0x40, 0x00, 0x00, 0x03, 1, 2, 3, 0]));
        assert!(!is_turn_channel_data(&[0x40, 0x00, 0x00, 0x03, 1, 2]));
        assert!(!is_turn_channel_data(&[0x50, 0x00, 0x00, 0x03, 1, 2, 3]));
        assert_eq!(demux(0x00), Demux::Stun);
        assert_eq!(demux(0x16), Demux::Dtls);
        assert_eq!(demux(0x10), Demux::Zrtp);
        assert_eq!(demux(0x41), Demux::TurnChannel);
        assert_eq!(demux(0x80), Demux::RtpRtcp);
        assert_eq!(demux(0xC3), Demux::Other);
    }
}
