//! Vendor payload matchers: pure functions over one packet of a flow.
//!
//! Each matcher looks at the transport, the payload, the ports, which side
//! sent the packet and its position in the flow, and returns a [`Match`]
//! (with a host name when the vendor header carries one, e.g. Agora). The
//! [`MATCHERS`] registry maps the stable names used in signature TOML files
//! (`payload = ["zoom-sfu"]`) to the functions; [`matcher`] looks one up.
//!
//! The byte-level facts come from the conferencing reference §3.2 (nDPI's
//! protocol dissectors as facts; no code copied) and were checked against the
//! capture corpus; where the corpus disagrees with the reference the
//! difference is noted at the matcher.
//!
//! Never panics: every access is bounds-checked.

use crate::sigs::Transport;
use crate::stun;

/// One packet as a matcher sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    pub transport: Transport,
    /// Transport payload (after the UDP/TCP header).
    pub payload: &'a [u8],
    pub src_port: u16,
    pub dst_port: u16,
    /// True when the sender is the side that opened the flow.
    pub from_initiator: bool,
    /// 0-based index of this packet in the flow (both directions counted).
    pub index: u32,
}

impl<'a> Packet<'a> {
    /// A UDP packet from the initiator, first in its flow (handy in tests).
    pub fn udp(payload: &'a [u8], src_port: u16, dst_port: u16) -> Self {
        Packet {
            transport: Transport::Udp,
            payload,
            src_port,
            dst_port,
            from_initiator: true,
            index: 0,
        }
    }

    /// A TCP packet from the initiator, first in its flow.
    pub fn tcp(payload: &'a [u8], src_port: u16, dst_port: u16) -> Self {
        Packet {
            transport: Transport::Tcp,
            ..Packet::udp(payload, src_port, dst_port)
        }
    }

    fn either_port(&self, lo: u16, hi: u16) -> bool {
        (lo..=hi).contains(&self.src_port) || (lo..=hi).contains(&self.dst_port)
    }

    fn is_udp(&self) -> bool {
        self.transport == Transport::Udp
    }
}

/// A positive match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match<'a> {
    /// What was seen, stable short label (e.g. "sfu-audio", "ip-discovery").
    pub what: &'static str,
    /// A host name carried in the header (Agora SD-RTN), if any.
    pub host: Option<&'a str>,
}

impl<'a> Match<'a> {
    fn what(what: &'static str) -> Option<Match<'a>> {
        Some(Match { what, host: None })
    }
}

/// A payload matcher.
pub type MatcherFn = for<'a> fn(&Packet<'a>) -> Option<Match<'a>>;

/// Every built-in matcher by its stable name (used in signature files).
pub const MATCHERS: &[(&str, MatcherFn)] = &[
    ("zoom-sfu", zoom_sfu),
    ("zoom-p2p", zoom_p2p),
    ("discord-ip-discovery", discord_ip_discovery),
    ("discord-keepalive", discord_keepalive),
    ("dingtalk", dingtalk),
    ("agora-sdrtn", agora_sdrtn),
    ("telegram-voip", telegram_voip),
    ("telegram-wrapper", telegram_wrapper),
    ("whatsapp-noise", whatsapp_noise),
    ("line-call", line_call),
];

/// Looks a matcher up by name.
pub fn matcher(name: &str) -> Option<MatcherFn> {
    MATCHERS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Runs every matcher; the first hit with its name.
pub fn match_any<'a>(p: &Packet<'a>) -> Option<(&'static str, Match<'a>)> {
    MATCHERS.iter().find_map(|(n, f)| f(p).map(|m| (*n, m)))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*s.first()?, *s.get(1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    let a: [u8; 4] = s.try_into().ok()?;
    Some(u32::from_be_bytes(a))
}

// ---------------------------------------------------------------- RTP / RTCP

/// Fixed RTP header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rtp {
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
}

/// Parses an RTP header: version 2, payload type 0-34 or 96-127, length at
/// least 12 + 4 x CSRC count. RTCP packet types (192-213 in byte 1) are
/// rejected: see [`is_rtcp`].
pub fn rtp_header(payload: &[u8]) -> Option<Rtp> {
    let b0 = *payload.first()?;
    let b1 = *payload.get(1)?;
    if b0 & 0xC0 != 0x80 || (192..=213).contains(&b1) {
        return None;
    }
    let pt = b1 & 0x7F;
    if !(pt <= 34 || (96..=127).contains(&pt)) {
        return None;
    }
    let cc = usize::from(b0 & 0x0F);
    if payload.len() < 12 + 4 * cc {
        return None;
    }
    Some(Rtp {
        pt,
        marker: b1 & 0x80 != 0,
        seq: be16(payload, 2)?,
        ts: be32(payload, 4)?,
        ssrc: be32(payload, 8)?,
    })
}

/// RTCP: version 2, packet type (byte 1) 192-213, at least 8 bytes, and the
/// first packet's BE16 length word ((len+1)*4 bytes) fits in the payload.
pub fn is_rtcp(payload: &[u8]) -> bool {
    let (Some(&b0), Some(&b1), Some(words)) = (payload.first(), payload.get(1), be16(payload, 2))
    else {
        return false;
    };
    b0 & 0xC0 == 0x80
        && (192..=213).contains(&b1)
        && payload.len() >= 8
        && (usize::from(words) + 1) * 4 <= payload.len()
}

// --------------------------------------------------------------------- Zoom

/// Zoom SFU media (UDP, either port 8801-8810, payload > 8), 8-byte header
/// `type(1) seq(2) unknown(4) direction(1)`.
///
/// * type 1 (client hello) starts `01 00 02` / `01 00 03`, type 2 (server
///   answer) `02 00 01` / `02 00 02` / `02 00 03`; both carry a 16-byte
///   session id, so at least 24 bytes. (The reference lists `02 00 03` /
///   `02 00 02`; `zoom.pcap` shows `02 00 01` answers, so 1 is accepted.)
/// * type 3 / 4 with bytes 1..4 zero, only from the 4th packet of the flow,
///   and not in WireGuard's shapes (`03 00 00 00` cookie replies are exactly
///   64 bytes, `04 00 00 00` transport messages a multiple of 16 bytes from
///   32 on; Zoom's control packets in the corpus are 13, 18, 81 and 91
///   bytes).
/// * type 5: direction byte 7 is 0 (to Zoom) or 4 (from Zoom), media type at
///   offset 8: 15 audio (RTP v2 at 27), 16 video (RTP v2 at 32), 33-35 RTCP
///   (RTCP at 24), 13 screen share, 30 P2P screen share (>= 23 bytes).
pub fn zoom_sfu<'a>(p: &Packet<'a>) -> Option<Match<'a>> {
    let b = p.payload;
    if !p.is_udp() || !p.either_port(8801, 8810) || b.len() <= 8 {
        return None;
    }
    let (t, b1, b2) = (*b.first()?, *b.get(1)?, *b.get(2)?);
    match t {
        0x01 if b1 == 0 && (b2 == 2 || b2 == 3) && b.len() >= 24 => Match::what("sfu-hello"),
        0x02 if b1 == 0 && (1..=3).contains(&b2) && b.len() >= 24 => Match::what("sfu-answer"),
        0x03 | 0x04 if p.index >= 3 && b1 == 0 && b2 == 0 && *b.get(3)? == 0 => {
            let wireguard = if t == 0x03 {
                b.len() == 64
            } else {
                b.len() >= 32 && b.len().is_multiple_of(16)
            };
            (!wireguard).then_some(Match {
                what: "sfu-control",
                host: None,
            })
        }
        0x05 => {
            let dir = *b.get(7)?;
            if dir != 0 && dir != 4 {
                return None;
            }
            let rtp_at = |off: usize| b.get(off..).and_then(rtp_header).is_some();
            match *b.get(8)? {
                15 if rtp_at(27) => Match::what("sfu-audio"),
                16 if rtp_at(32) => Match::what("sfu-video"),
                33..=35 if b.get(24..).is_some_and(is_rtcp) => Match::what("sfu-rtcp"),
                13 if b.len() >= 23 => Match::what("sfu-screen-share"),
                30 if b.len() >= 23 => Match::what("sfu-p2p-screen-share"),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Zoom P2P (any port, UDP): payload > 36, starts `1f 02 01`, last 4 bytes
/// zero, BE32 at 24 = L1, BE32 at 28+L1 = L2, total = 24+4+L1+4+L2+4.
pub fn zoom_p2p<'a>(p: &Packet<'a>) -> Option<Match<'a>> {
    let b = p.payload;
    if !p.is_udp() || b.len() <= 36 || !b.starts_with(&[0x1f, 0x02, 0x01]) {
        return None;
    }
    if b.get(b.len() - 4..)? != [0, 0, 0, 0] {
        return None;
    }
    let l1 = usize::try_from(be32(b, 24)?).ok()?;
    let at2 = 28usize.checked_add(l1)?;
    let l2 = usize::try_from(be32(b, at2)?).ok()?;
    let total = at2.checked_add(4)?.checked_add(l2)?.checked_add(4)?;
    (total == b.len()).then_some(Match {
        what: "p2p",
        host: None,
    })
}

// ------------------------------------------------------------------ Discord

/// True when `s` is a dotted-quad IPv4 address (ASCII) or an IPv6 literal.
fn ascii_ip(s: &[u8]) -> bool {
    std::str::from_utf8(s).is_ok_and(|s| s.parse::<std::net::IpAddr>().is_ok())
}

/// A Discord voice IP-discovery message (Discord's voice documentation):
/// type, length, SSRC, address, port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscordDiscovery {
    /// Type 2 (the server's answer) rather than type 1 (the client's request).
    pub response: bool,
    /// The voice SSRC the client announces; its RTP and RTCP carry it.
    pub ssrc: u32,
}

/// Parses a Discord voice IP-discovery message. Every field is required:
///
/// * UDP, exactly 74 bytes;
/// * BE16 type at 0: 1 (request) or 2 (response); BE16 length at 2: 70;
/// * BE32 SSRC at 4, not zero;
/// * 64-byte address field at 8: an IPv4/IPv6 literal in ASCII followed only by
///   NUL bytes (the request may leave it all NUL);
/// * BE16 port at 72: not zero in a response;
/// * direction: a request comes from the side that opened the flow, a response
///   from the other side.
///
/// A type/length prefix like `00 01 00 46` is common in game and VPN protocols,
/// so one message alone is only a candidate: the engine labels a flow Discord
/// when the request is confirmed by the response with the same SSRC, or by the
/// client's RTP/RTCP carrying that SSRC ([`media_ssrc`]).
pub fn discord_discovery(p: &Packet<'_>) -> Option<DiscordDiscovery> {
    let b = p.payload;
    if !p.is_udp() || b.len() != 74 || be16(b, 2)? != 70 {
        return None;
    }
    let response = match be16(b, 0)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    if response == p.from_initiator {
        return None;
    }
    let ssrc = be32(b, 4)?;
    if ssrc == 0 {
        return None;
    }
    let field = b.get(8..72)?;
    let name_end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    let (name, pad) = field.split_at(name_end);
    if pad.iter().any(|&c| c != 0) {
        return None;
    }
    let port = be16(b, 72)?;
    let ok = if response {
        !name.is_empty() && ascii_ip(name) && port != 0
    } else {
        name.is_empty() || ascii_ip(name)
    };
    ok.then_some(DiscordDiscovery { response, ssrc })
}

/// The SSRC of an RTP packet (BE32 at 8 of a valid [`rtp_header`]) or of an
/// RTCP packet (BE32 at 4 of a valid [`is_rtcp`] packet).
pub fn media_ssrc(payload: &[u8]) -> Option<u32> {
    if let Some(r) = rtp_header(payload) {
        return Some(r.ssrc);
    }
    if is_rtcp(payload) {
        return be32(payload, 4);
    }
    None
}

/// Discord voice IP discovery, one message: see [`discord_discovery`] for the
/// fields required. As a registry matcher it reports the candidate; the
/// engine does not decide on it alone (it waits for the SSRC to be confirmed).
pub fn discord_ip_discovery<'a>(p: &Packet<'a>) -> Option<Match<'a>> {
    discord_discovery(p).map(|d| Match {
        what: if d.response {
            "ip-discovery-response"
        } else {
            "ip-discovery-request"
        },
        host: None,
    })
}

/// Discord keepalive (UDP): exactly 8 bytes, BE32 at 0 = 0x1337cafe (the
/// other 4 bytes free; any port, either direction).
pub fn discord_keepalive<'a>(p: &Packet<'a>) -> Option<Match<'a>> {
    let b = p.payload;
    (p.is_udp() && b.len() == 8 && b.starts_with(&[0x13, 0x37, 0xca, 0xfe])).then_some(Match {
        what: "keepalive",
        host: None,
    })
}

// ----------------------------------------------------------------- DingTalk

/// DingTalk (TCP): payload > 90 bytes, byte 0 = 0x10, bytes 2..16 =
/// `87 80 01 00 01 00 02 00 02 64 6b 03 00 20` (byte 1 free).
pub fn dingtalk<'a>(p: &Packet<'a>) -> Option<Match<'a>> {
    const FIXED: [u8; 14] = [
        0x87, 0x80, 0x01, 0x00, 0x01, 0x00, 0x02, 0x00, 0x02, 0x64, 0x6b, 0x03, 0x00, 0x20,
    ];
    let b = p.payload;
    (p.transport == Transport::Tcp
        && b.len() > 90
        && b.first() == Some(&0x10)
        && b.get(2..16) == Some(&FIXED[..]))
    .then_some(Match {
        what: "handshake",
        host: None,
    })
}

// -------------------------------------------------------------------- Agora

/// A plausible DNS host name: 1-253 bytes, labels of 1-63 letters, digits or
/// `-` (not at a label's ends), at least two labels, alphabetic TLD.
pub fn plausible_hostname(s: &str) -> bool {
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let mut labels = 0usize;
    let mut last = "";
    for l in s.split('.') {
        let lb = l.as_bytes();
        let ok = !lb.is_empty()
            && lb.len() <= 63
            && lb.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            && lb.first() != Some(&b'-')
            && lb.last() != Some(&b'-');
        if !ok {
            return false;
        }
        labels += 1;
        last = l;
    }
    labels >= 2 && last.bytes().all(|c| c.is_ascii_alphabetic())
}

/// Agora SD-RTN (UDP): payload >= 20, byte 6 = 0x21, bytes 12..16 =
/// `04 53 4E 49` ("\x04SNI"), BE16 name length at 16, byte 18 = 0, server
/// name from offset 19 (e.g. `104-166-161-75.edge.agora.io`). The name must
/// be a plausible host name; it is returned in [`Match::host`] (`what` is
/// "sni-agora" when it ends in `agora.io`, "sni" otherwise).
pub fn agora_sdrtn<'a>(p: &Packet<'a>) -> Option<Match<'a>> {
    let b = p.payload;
    if !p.is_udp() || b.len() < 20 || b.get(6) != Some(&0x21) {
        return None;
    }
    if b.get(12..16) != Some(&[0x04, 0x53, 0x4E, 0x49][..]) || b.get(18) != Some(&0) {
        return None;
    }
    let n = usize::from(be16(b, 16)?);
    let name = std::str::from_utf8(b.get(19..19usize.checked_add(n)?)?).ok()?;
    if !plausible_hostname(name) {
        return None;
    }
    let lower_ok = name.len() >= 8
        && name
            .get(name.len() - 8..)
            .is_some_and(|t| t.eq_ignore_ascii_case("agora.io"));
    Some(Match {
        what: if lower_ok { "sni-agora" } else { "sni" },
        host: Some(name),
    })
}

// ----------------------------------------------------------------- Telegram

/// True when `b` holds a run of exactly `n` 0xFF bytes (bounded by non-0xFF
/// bytes or the ends).
fn has_ff_run(b: &[u8], n: usize) -> bool {
    let mut run = 0usize;
    for &c in b {
        if c == 0xFF {
            run += 1;
        } else {
            if run == n {
                return true;
            }
            run = 0;
        }
    }
    run == n
}

/// Telegram VoIP (UDP): a port in 500-600 on either side, payload >= 40,
/// containing a run of exactly 12 0xFF bytes, and not an IKE message (UDP
/// 500 is IKE's port: a header whose version byte at 17 is 0x10 or 0x20 and
/// whose BE32 length at 24 is the payload's length is IPsec, whatever its
/// nonce or certificate bytes hold; also after NAT traversal's 4-byte zero
/// marker).
pub fn telegram_voip<'a>(p: &Packet<'a>) -> Option<Match<'a>> {
    let b = p.payload;
    // an IKE header at 0, or at 4 after NAT traversal's zero non-ESP marker
    let ike_at = |off: usize| {
        matches!(b.get(off + 17), Some(0x10 | 0x20))
            && be32(b, off + 24)
                .is_some_and(|l| usize::try_from(l).is_ok_and(|l| l + off == b.len()))
    };
    let ike = ike_at(0) || (b.get(..4) == Some(&[0, 0, 0, 0][..]) && ike_at(4));
    (p.is_udp() && p.either_port(500, 600) && b.len() >= 40 && !ike && has_ff_run(b, 12)).then_some(
        Match {
            what: "relay",
            host: None,
        },
    )
}

/// Telegram's custom STUN wrapper (later nDPI; UDP, any port): either 12
/// 0xFF bytes at offset 16 (exactly: bytes 15 and 28 are not 0xFF; control
/// packets), or a BE16 length at 22 covering the rest of the packet from
/// offset 24, where a STUN message or a DTLS record starts. A payload that
/// is itself STUN is not a wrapper. (RTP inside the wrapper is not matched:
/// too loose for an any-port rule, and the corpus has no wrapped packets.)
pub fn telegram_wrapper<'a>(p: &Packet<'a>) -> Option<Match<'a>> {
    let b = p.payload;
    if !p.is_udp() || b.len() < 28 || stun::parse(b, false).is_some() {
        return None;
    }
    if b.get(16..28).is_some_and(|r| r.iter().all(|&c| c == 0xFF))
        && b.get(28).is_some_and(|&c| c != 0xFF)
        && b.get(15).is_some_and(|&c| c != 0xFF)
    {
        return Match::what("wrapper-control");
    }
    let len = usize::from(be16(b, 22)?);
    let inner = b.get(24..)?;
    if len != inner.len() || len < 13 {
        return None;
    }
    if stun::parse(inner, false).is_some() {
        return Match::what("wrapper-stun");
    }
    if dtls_record(inner) {
        return Match::what("wrapper-dtls");
    }
    None
}

/// A DTLS record header (content type 20-25, version FE FD / FE FF, length
/// fits).
fn dtls_record(b: &[u8]) -> bool {
    let (Some(&ct), Some(&v0), Some(&v1), Some(len)) = (b.first(), b.get(1), b.get(2), be16(b, 11))
    else {
        return false;
    };
    (20..=25).contains(&ct)
        && v0 == 0xFE
        && (v1 == 0xFD || v1 == 0xFF)
        && 13 + usize::from(len) <= b.len()
}

// ----------------------------------------------------------------- WhatsApp

/// WhatsApp chat (TCP): Noise prologue `45 44 00 01 00 00 04 08` or
/// `45 44 00 01 00 00 02 08`, or very old clients `57 41 01 05`.
pub fn whatsapp_noise<'a>(p: &Packet<'a>) -> Option<Match<'a>> {
    let b = p.payload;
    if p.transport != Transport::Tcp {
        return None;
    }
    if b.starts_with(&[0x45, 0x44, 0x00, 0x01, 0x00, 0x00])
        && b.get(7) == Some(&0x08)
        && matches!(b.get(6), Some(0x02 | 0x04))
    {
        return Match::what("noise-prologue");
    }
    if b.starts_with(&[0x57, 0x41, 0x01, 0x05]) {
        return Match::what("legacy-prologue");
    }
    None
}

// --------------------------------------------------------------------- LINE

/// LINE call (UDP) fixed-length control packets: 110 bytes `B6 18 00 6A`,
/// 46 bytes `B6 13 00 06`, 8 bytes `B6 07 00 04`. The reference names these
/// only for servers in the LINE list: pair with an IP match.
pub fn line_call<'a>(p: &Packet<'a>) -> Option<Match<'a>> {
    let b = p.payload;
    if !p.is_udp() {
        return None;
    }
    let ok = match b.len() {
        110 => b.starts_with(&[0xB6, 0x18, 0x00, 0x6A]),
        46 => b.starts_with(&[0xB6, 0x13, 0x00, 0x06]),
        8 => b.starts_with(&[0xB6, 0x07, 0x00, 0x04]),
        _ => false,
    };
    ok.then_some(Match {
        what: "control",
        host: None,
    })
}

/// LINE call, IP-independent (stateful, one per flow): the reference's rule
/// is ">= 4 packets per direction whose byte 3 is a consecutive counter,
/// interleaved with RTP". In `line.pcap` every such non-RTP packet starts
/// with a byte 0xD0-0xDF; requiring that nibble keeps the counter rule off
/// `linecall_falsepositve.pcap` (byte 0 = 0x00, a counter but not LINE).
/// RTP packets (first byte 0x80-0xBF) between them are skipped; any other
/// packet resets that direction's run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LineCallTracker {
    last: [Option<u8>; 2],
    run: [u8; 2],
    matched: bool,
}

impl LineCallTracker {
    /// Consecutive packets needed per direction.
    pub const NEEDED: u8 = 4;

    /// Feeds one packet of the flow; true once both directions have a run
    /// of [`Self::NEEDED`] packets (sticky).
    pub fn push(&mut self, p: &Packet<'_>) -> bool {
        if self.matched || !p.is_udp() {
            return self.matched;
        }
        let d = usize::from(!p.from_initiator);
        let b = p.payload;
        let (Some(last), Some(run)) = (self.last.get_mut(d), self.run.get_mut(d)) else {
            return false;
        };
        match (b.first(), b.get(3)) {
            (Some(0x80..=0xBF), _) => {}
            (Some(&b0), Some(&c)) if b0 & 0xF0 == 0xD0 && b.len() >= 12 => {
                *run = if *last == Some(c.wrapping_sub(1)) {
                    run.saturating_add(1)
                } else {
                    1
                };
                *last = Some(c);
            }
            _ => {
                *run = 0;
                *last = None;
            }
        }
        self.matched = self.run.iter().all(|&r| r >= Self::NEEDED);
        self.matched
    }

    pub fn matched(&self) -> bool {
        self.matched
    }
}

/// Microsoft Teams multiplexed TURN (`FF 10`, offset 12): the inner payload
/// (STUN or RTP), see [`stun::ms_multiplexed_inner`].
pub fn teams_multiplexed(payload: &[u8]) -> Option<&[u8]> {
    stun::ms_multiplexed_inner(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_are_unique_and_resolvable() {
        for (i, (n, _)) in MATCHERS.iter().enumerate() {
            assert!(matcher(n).is_some());
            assert!(MATCHERS.iter().skip(i + 1).all(|(m, _)| m != n), "dup {n}");
        }
        assert!(matcher("nope").is_none());
    }

    #[test]
    fn zoom_p2p_length_arithmetic() {
        let ip = b"10.0.0.1";
        let uuid = b"0123456789abcdef";
        let mut v = vec![0x1f, 0x02, 0x01];
        v.resize(24, 0xAA);
        v.extend_from_slice(&(ip.len() as u32).to_be_bytes());
        v.extend_from_slice(ip);
        v.extend_from_slice(&(uuid.len() as u32).to_be_bytes());
        v.extend_from_slice(uuid);
        v.extend_from_slice(&[0, 0, 0, 0]);
        assert!(zoom_p2p(&Packet::udp(&v, 1, 2)).is_some());
        let mut w = v.clone();
        w[27] += 1;
        assert!(zoom_p2p(&Packet::udp(&w, 1, 2)).is_none());
        let n = v.len();
        v[n - 1] = 1;
        assert!(zoom_p2p(&Packet::udp(&v, 1, 2)).is_none());
    }

    #[test]
    fn ff_run_is_exact() {
        let mut v = vec![0u8; 40];
        v[10..22].fill(0xFF);
        assert!(has_ff_run(&v, 12));
        v[22] = 0xFF;
        assert!(!has_ff_run(&v, 12));
        let mut e = vec![0u8; 28];
        e[16..].fill(0xFF);
        assert!(has_ff_run(&e, 12));
    }

    #[test]
    fn hostnames() {
        assert!(plausible_hostname("104-166-161-75.edge.agora.io"));
        assert!(!plausible_hostname("agora"));
        assert!(!plausible_hostname("a..io"));
        assert!(!plausible_hostname("-a.io"));
        assert!(!plausible_hostname("a.1"));
        assert!(!plausible_hostname("a b.io"));
    }

    #[test]
    fn rtp_and_rtcp() {
        let mut v = vec![0x80, 0x60, 0x00, 0x01, 0, 0, 0, 2, 0, 0, 0, 3, 9, 9];
        let r = rtp_header(&v).expect("rtp");
        assert_eq!((r.pt, r.seq, r.ts, r.ssrc), (96, 1, 2, 3));
        v[0] = 0x81; // one CSRC: needs 16 bytes
        assert!(rtp_header(&v).is_none());
        let sr = [0x80, 200, 0x00, 0x01, 0, 0, 0, 1];
        assert!(is_rtcp(&sr) && rtp_header(&sr).is_none());
        assert!(!is_rtcp(&sr[..7]));
    }
}
