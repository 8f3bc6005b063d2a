//! Per-flow inspection: feeds the first packets of a flow to the protocol
//! parsers and the signature database, and turns evidence into a [`Label`].
//!
//! Evidence, strongest first: DNS name of the destination, TLS/QUIC server
//! name, STUN vendor signals, vendor payload headers; then vendor IP ranges,
//! vendor ASNs and ports, which only stand when nothing stronger is found.

use geofence_classify::payload;
use geofence_classify::sigdb::{AppRef, SignatureDb};
use geofence_classify::sigs::Transport;
use geofence_classify::{quic, stun, tls, Method};

use geofence_decode::{Packet, Proto};

use crate::flow::Dir;
use crate::Label;

const DISCORD_DISCOVERY: &str = "discord-ip-discovery";

/// The signature database with its payload matchers resolved once.
pub struct Sigs {
    pub db: std::sync::Arc<SignatureDb>,
    matchers: Vec<(AppRef, &'static str, payload::MatcherFn)>,
    /// The app whose signatures name `line-call`: it also gets the
    /// flow-level counter rule.
    line_app: Option<AppRef>,
    /// The app whose signatures name `discord-ip-discovery`: a discovery
    /// message is a candidate confirmed by its SSRC (see
    /// [`discord_step`]), never a decision alone.
    discord_app: Option<AppRef>,
}

impl Sigs {
    pub fn new(db: std::sync::Arc<SignatureDb>) -> Sigs {
        let matchers = db
            .payload_rules()
            .iter()
            .filter(|(_, name)| name != DISCORD_DISCOVERY)
            .filter_map(|(app, name)| {
                payload::MATCHERS
                    .iter()
                    .find(|(n, _)| *n == name.as_str())
                    .map(|(n, f)| (*app, *n, *f))
            })
            .collect();
        let line_app = db
            .payload_rules()
            .iter()
            .find(|(_, n)| n == "line-call")
            .map(|(a, _)| *a);
        let discord_app = db
            .payload_rules()
            .iter()
            .find(|(_, n)| n == DISCORD_DISCOVERY)
            .map(|(a, _)| *a);
        Sigs {
            db,
            matchers,
            line_app,
            discord_app,
        }
    }
}

/// What is kept per flow while it is being inspected. Boxed in the flow so
/// finished flows cost nothing.
#[derive(Default, Debug)]
pub struct FlowInspect {
    /// Packets inspected so far (both directions).
    pub inspected: u16,
    /// Client-to-server TCP stream reassembly for a ClientHello.
    tls: Option<Box<tls::HelloAssembler>>,
    /// QUIC CRYPTO frames of the client's Initial packets.
    quic: Option<Box<quic::CryptoAssembler>>,
    /// True once the flow is known not to carry TLS.
    not_tls: bool,
    /// The client's SYN sequence number, when the handshake was seen.
    syn_seq: Option<u32>,
    /// STUN messages seen without a vendor signal.
    pub stun_plain: u8,
    /// RTP packets seen.
    pub rtp: u8,
    /// An ICE connectivity check was seen (RFC 8445: Binding request with
    /// USERNAME, MESSAGE-INTEGRITY and ICE-CONTROLLING/CONTROLLED or
    /// PRIORITY).
    pub ice: bool,
    /// LINE call counter tracking per direction (orig, reply).
    line: [SeqRun; 2],
    /// SSRC of a Discord IP-discovery message awaiting confirmation, and
    /// whether it was the response.
    discord: Option<(u32, bool)>,
    /// Candidate from ranges, ASN or port: used if nothing stronger appears.
    pub tentative: Option<Label>,
    /// A host name seen without an app match (for reports).
    pub host: Option<Box<str>>,
    /// Reassembly memory charged to the engine's pool (given back on drop).
    pub charge: crate::budget::Charge,
    /// A TLS record header or a decryptable QUIC Initial was seen: the
    /// client started a handshake whose server name decides the flow.
    pub handshake: bool,
    /// Client bytes fed to handshake reassembly (duplicates included):
    /// reassembly is bounded by bytes, not by segments.
    pub handshake_bytes: u32,
    /// Client datagrams to a QUIC port that were not QUIC, before an
    /// Initial: they count against bytes, not the packet budget.
    pub junk_bytes: u32,
    /// The ClientHello was read (no app): later client segments are only
    /// compared with it, to catch a conflicting second copy.
    verify: bool,
}

/// Client bytes a handshake may take before it is undecidable (about two
/// 16 KiB windows, so retransmissions of a large hello fit).
pub const HANDSHAKE_BYTES: u32 = 32 * 1024;

/// Non-QUIC client bytes tolerated on a QUIC port before an Initial.
pub const JUNK_BYTES: u32 = 16 * 1024;

/// Hard cap on packets inspected while a handshake is pending (empty ACKs
/// and replies included).
pub const HANDSHAKE_PACKETS: u16 = 4096;

impl FlowInspect {
    /// A handshake started and its server name has not been read yet.
    pub fn handshake_pending(&self) -> bool {
        self.handshake && !self.verify
    }

    /// Whether the packet budget is suspended: a handshake is being
    /// reassembled (bounded by [`HANDSHAKE_BYTES`]) or junk precedes a QUIC
    /// Initial (bounded by [`JUNK_BYTES`]).
    pub fn budget_suspended(&self) -> bool {
        self.inspected < HANDSHAKE_PACKETS
            && ((self.handshake_pending() && self.handshake_bytes <= HANDSHAKE_BYTES)
                || (!self.handshake && self.junk_bytes > 0 && self.junk_bytes <= JUNK_BYTES))
    }

    /// Heap bytes this inspection buffers (reassemblers, QUIC keys).
    pub fn held_bytes(&self) -> usize {
        self.tls.as_ref().map_or(0, |a| {
            std::mem::size_of::<tls::HelloAssembler>() + a.heap_bytes()
        }) + self.quic.as_ref().map_or(0, |a| {
            std::mem::size_of::<quic::CryptoAssembler>() + a.heap_bytes()
        })
    }
}

/// A per-direction run of packets whose 4th byte counts up by one from the
/// first packet's value (LINE calls; reference §3.2).
#[derive(Default, Debug, Clone, Copy)]
struct SeqRun {
    started: bool,
    base: u8,
    count: u8,
    /// Any packet of this direction was seen (counting or not).
    seen: bool,
    /// Every packet of the run starts with the nibble 0xD.
    all_d: bool,
}

/// LINE call rule: at least this many counting packets in each direction.
const LINE_RUN: u8 = 4;

/// LINE call rule when no reply is visible (the kernel hands the daemon
/// only a connection's original direction): this many counting packets
/// from the client, each starting with the nibble 0xD.
const LINE_RUN_ONE_WAY: u8 = 5;

/// Feeds one UDP payload to the LINE counter rule; true once both
/// directions count and their bases are far apart (RTP, whose sequence
/// numbers also count, is excluded by its version bits), or, while no reply
/// packet at all has been seen, once the client's run reaches
/// [`LINE_RUN_ONE_WAY`] packets that all start with 0xD (the first byte of
/// LINE's counted control packets).
fn line_counter(runs: &mut [SeqRun; 2], dir: Dir, pl: &[u8]) -> bool {
    let r = &mut runs[usize::from(dir == Dir::Reply)];
    r.seen = true;
    let (Some(&b0), Some(&b3)) = (pl.first(), pl.get(3)) else {
        return false;
    };
    if pl.len() < 8 || b0 & 0xC0 == 0x80 || b0 < 0x40 {
        return false;
    }
    let is_d = b0 & 0xF0 == 0xD0;
    if !r.started {
        *r = SeqRun {
            started: true,
            base: b3,
            count: 1,
            seen: true,
            all_d: is_d,
        };
    } else if r.base.wrapping_add(r.count) == b3 {
        r.count = r.count.saturating_add(1);
        r.all_d &= is_d;
    }
    let [a, b] = *runs;
    let two_way = a.count >= LINE_RUN && b.count >= LINE_RUN && a.base.abs_diff(b.base) >= 5;
    let one_way = !b.seen && a.all_d && a.count >= LINE_RUN_ONE_WAY && pl.len() >= 12;
    two_way || one_way
}

/// Result of inspecting one packet.
pub enum Step {
    /// Keep inspecting.
    More,
    /// Strong evidence: label the flow, stop inspecting.
    Decided(Label),
    /// Stop inspecting; nothing (more) to learn.
    Stop,
    /// The handshake can no longer be read (evasion): why.
    Undecidable(&'static str),
}

/// Things inspection learned that outlive the flow.
#[derive(Default)]
pub struct Side {
    /// STUN peers (XOR-PEER-ADDRESS) that inherit the flow's app.
    pub peers: Vec<std::net::SocketAddr>,
}

pub fn transport(p: Proto) -> Transport {
    match p {
        Proto::Tcp => Transport::Tcp,
        Proto::Udp => Transport::Udp,
    }
}

fn label(app: AppRef, method: Method, host: Option<&str>, evidence: String) -> Label {
    Label {
        app,
        method,
        host: host.map(Box::from),
        evidence: Some(evidence.into_boxed_str()),
    }
}

/// Inspects one packet of a flow that is still being inspected.
pub fn step(
    st: &mut FlowInspect,
    sigs: &Sigs,
    p: &Packet<'_>,
    dir: Dir,
    server_port: u16,
    side: &mut Side,
) -> Step {
    st.inspected = st.inspected.saturating_add(1);
    let pl = p.payload;
    if let Some(t) = p.tcp {
        if t.syn && !t.ack_flag && dir == Dir::Orig {
            st.syn_seq = Some(t.seq);
        }
    }
    if pl.is_empty() {
        return Step::More;
    }
    let index = u32::from(st.inspected - 1);
    match p.proto {
        Proto::Tcp => step_tcp(st, sigs, p, dir, index),
        Proto::Udp => step_udp(st, sigs, p, dir, server_port, side, index),
    }
}

/// A complete ClientHello: its server name decides, or there is nothing
/// more to learn from this flow.
/// Evidence for an undecidable handshake.
pub const CONFLICT: &str =
    "conflicting overlapping handshake data (two different copies of the same bytes)";
pub const TOO_LONG: &str = "handshake longer than inspection reads";
pub const UNREADABLE: &str = "a TLS handshake record without a readable ClientHello";
pub const INCOMPLETE: &str = "handshake incomplete when inspection ended";
pub const OUT_OF_MEMORY: &str =
    "handshake incomplete when its reassembly ran out of its memory share";

fn hello_step(sigs: &Sigs, st: &mut FlowInspect, sni: Option<&str>, method: Method) -> Step {
    match sni {
        Some(sni) => host_label(sigs, st, sni, method),
        None => Step::Stop,
    }
}

fn host_label(sigs: &Sigs, st: &mut FlowInspect, host: &str, method: Method) -> Step {
    match sigs.db.match_host(host) {
        Some(app) => Step::Decided(label(
            app,
            method,
            Some(host),
            format!("{} {}", method, host),
        )),
        None => {
            // A server name that belongs to no app outweighs a vendor range:
            // vendors run other services (telemetry, office suites) in the
            // same ranges. An address written as the name says nothing.
            if host.parse::<std::net::IpAddr>().is_err() {
                st.tentative = None;
            }
            st.host = Some(Box::from(host));
            Step::Stop
        }
    }
}

fn step_tcp(st: &mut FlowInspect, sigs: &Sigs, p: &Packet<'_>, dir: Dir, index: u32) -> Step {
    let pl = p.payload;
    if st.verify {
        // The hello was read: a later copy of the same bytes that differs
        // means the reader and the server saw different hellos.
        if dir == Dir::Orig {
            if let Some(asm) = st.tls.as_mut() {
                asm.push(p.tcp.map(|t| t.seq).unwrap_or(0), pl);
                if asm.conflict() {
                    return Step::Undecidable(CONFLICT);
                }
            }
        }
        return Step::More;
    }
    if dir == Dir::Orig && !st.not_tls {
        let seq = p.tcp.map(|t| t.seq).unwrap_or(0);
        if st.tls.is_none() {
            // With the handshake seen, segments can be reassembled in any
            // order; without it, the first payload segment must open a
            // TLS record.
            if let Some(syn) = st.syn_seq {
                st.tls = Some(Box::new(tls::HelloAssembler::from_syn(syn)));
            } else if pl.first() == Some(&0x16) {
                st.tls = Some(Box::new(tls::HelloAssembler::new(seq)));
            } else {
                st.not_tls = true;
            }
        }
        if let Some(mut asm) = st.tls.take() {
            asm.push(seq, pl);
            st.handshake_bytes = st
                .handshake_bytes
                .saturating_add(u32::try_from(pl.len()).unwrap_or(u32::MAX));
            if asm.conflict() && st.handshake {
                return Step::Undecidable(CONFLICT);
            }
            match asm.poll() {
                tls::HelloParse::Hello(h) => {
                    st.handshake = true;
                    let step = hello_step(sigs, st, h.sni.as_deref(), Method::TlsSni);
                    if matches!(step, Step::Stop) {
                        // No app: keep watching for a conflicting copy.
                        st.verify = true;
                        st.tls = Some(asm);
                        return Step::More;
                    }
                    st.not_tls = true;
                    return step;
                }
                tls::HelloParse::NeedMore { have, .. } => {
                    // The stream opens a TLS handshake record (the parser
                    // rules TLS out as soon as a byte contradicts it). One
                    // byte is enough: a client that writes a byte per
                    // segment hands the daemon only a few.
                    st.handshake |= have >= 1;
                    st.tls = Some(asm);
                    if st.handshake_bytes > HANDSHAKE_BYTES {
                        return Step::Undecidable(TOO_LONG);
                    }
                    return Step::More;
                }
                tls::HelloParse::NotTls => {
                    st.not_tls = true;
                    // A handshake record header, then no readable hello
                    // (one that cannot fit the window, or garbage).
                    let c = asm.contiguous();
                    if st.handshake && c.len() >= 5 && c.first() == Some(&0x16) {
                        return Step::Undecidable(UNREADABLE);
                    }
                    st.handshake = false;
                }
            }
        }
    }
    if let Some(s) = payload_rules(sigs, Transport::Tcp, p, dir, index) {
        return s;
    }
    // STUN over TCP (RFC 4571 framing, magic cookie required).
    if let Some(m) = stun::parse(pl, true) {
        if let Some(s) = stun_step(st, sigs, &m, &mut Side::default()) {
            return s;
        }
    }
    Step::More
}

fn step_udp(
    st: &mut FlowInspect,
    sigs: &Sigs,
    p: &Packet<'_>,
    dir: Dir,
    server_port: u16,
    side: &mut Side,
    index: u32,
) -> Step {
    let pl = p.payload;
    // QUIC Initial from the client.
    if dir == Dir::Orig && quic::is_quic_initial(pl) {
        if let Ok(init) = quic::decrypt_initials(pl) {
            st.handshake = true;
            let mut asm = st.quic.take().unwrap_or_default();
            if matches!(asm.add(&init), Err(quic::QuicError::DcidMismatch)) {
                // Another connection ID before any hello was read: the
                // earlier Initial was junk (or a retry); start over.
                asm = Box::default();
                let _ = asm.add(&init);
            }
            st.handshake_bytes = st
                .handshake_bytes
                .saturating_add(u32::try_from(pl.len()).unwrap_or(u32::MAX));
            if asm.conflict() {
                return Step::Undecidable(CONFLICT);
            }
            match asm.client_hello() {
                tls::HelloParse::Hello(h) => {
                    return hello_step(sigs, st, h.sni.as_deref(), Method::QuicSni);
                }
                tls::HelloParse::NeedMore { .. } if st.handshake_bytes <= HANDSHAKE_BYTES => {
                    st.quic = Some(asm);
                    return Step::More;
                }
                tls::HelloParse::NeedMore { .. } => return Step::Undecidable(TOO_LONG),
                // A CRYPTO stream that is no ClientHello: junk sealed with
                // Initial keys; a real Initial may follow.
                tls::HelloParse::NotTls => return Step::More,
            }
        }
    }
    // Junk before a QUIC Initial: counted in bytes, not packets.
    if dir == Dir::Orig && !st.handshake && server_port == 443 {
        st.junk_bytes = st
            .junk_bytes
            .saturating_add(u32::try_from(pl.len()).unwrap_or(u32::MAX).max(1));
    }
    // Google QUIC (Q035-Q046): a plaintext CHLO carries the server name.
    if dir == Dir::Orig {
        if let Some(h) = quic::gquic_client_hello(pl) {
            return hello_step(sigs, st, h.sni.as_deref(), Method::QuicSni);
        }
    }
    // STUN/TURN, plain or Microsoft-multiplexed.
    let stun_bytes = stun::ms_multiplexed_inner(pl).unwrap_or(pl);
    if let Some(m) = stun::parse(stun_bytes, false) {
        if let Some(s) = stun_step(st, sigs, &m, side) {
            return s;
        }
        return Step::More;
    }
    // DTLS ClientHello: its SNI (rare) names the server.
    if dir == Dir::Orig && pl.first() == Some(&0x16) {
        if let tls::HelloParse::Hello(h) = tls::parse_dtls_client_hello(pl) {
            if let Some(sni) = h.sni {
                if let Some(app) = sigs.db.match_host(sni.as_ref()) {
                    return Step::Decided(label(
                        app,
                        Method::TlsSni,
                        Some(sni.as_ref()),
                        format!("dtls sni {}", sni.as_ref()),
                    ));
                }
            }
        }
    }
    if let Some(s) = discord_step(st, sigs, p, dir, index) {
        return s;
    }
    if let Some(s) = payload_rules(sigs, Transport::Udp, p, dir, index) {
        return s;
    }
    if payload::rtp_header(pl).is_some() {
        st.rtp = st.rtp.saturating_add(1);
    }
    if let Some(app) = sigs.line_app {
        if line_counter(&mut st.line, dir, pl) {
            return Step::Decided(label(
                app,
                Method::Payload,
                None,
                if st.line[1].seen {
                    "payload line-call (packet counter in both directions)".to_string()
                } else {
                    "payload line-call (packet counter, client direction)".to_string()
                },
            ));
        }
    }
    Step::More
}

/// Vendor STUN signals: message type, attributes, realm, software.
fn stun_step(
    st: &mut FlowInspect,
    sigs: &Sigs,
    m: &stun::StunMessage<'_>,
    side: &mut Side,
) -> Option<Step> {
    let sigs = &*sigs.db;
    // The REALM names the operator of the relay, so it is checked first:
    // Messenger/Instagram calls share WhatsApp's vendor message types and
    // attributes, and only their "facebook" realm tells them apart.
    let found = m
        .realm()
        .and_then(|r| sigs.stun_realm(r).map(|a| (a, format!("stun realm {r}"))))
        .or_else(|| {
            sigs.stun_message_type(m.msg_type)
                .map(|a| (a, format!("stun message type {:#06x}", m.msg_type)))
        })
        .or_else(|| {
            m.attributes().find_map(|(t, _)| {
                sigs.stun_attribute(t)
                    .map(|a| (a, format!("stun attribute {t:#06x}")))
            })
        })
        .or_else(|| {
            m.software().and_then(|s| {
                sigs.stun_software(s)
                    .map(|a| (a, format!("stun software {s}")))
            })
        });
    match found {
        Some((app, ev)) => {
            side.peers.extend(m.xor_peer_addresses());
            let host = m.realm().filter(|r| r.contains('.'));
            Some(Step::Decided(label(app, Method::Stun, host, ev)))
        }
        None => {
            st.stun_plain = st.stun_plain.saturating_add(1);
            st.ice |= is_ice_check(m);
            None
        }
    }
}

/// Built-in payload matchers and byte patterns named by the signatures.
/// Discord voice: an IP-discovery message ([`payload::discord_discovery`])
/// is remembered with its SSRC; the flow is Discord once the other message of
/// the exchange carries the same SSRC, or the client's RTP/RTCP does (the
/// client sends voice with the SSRC it announced; with NFLOG capture only the
/// client's direction is seen). A game or VPN packet that happens to have the
/// shape is not followed by media with its "SSRC".
fn discord_step(
    st: &mut FlowInspect,
    sigs: &Sigs,
    p: &Packet<'_>,
    dir: Dir,
    index: u32,
) -> Option<Step> {
    let app = sigs.discord_app?;
    let ctx = payload::Packet {
        transport: Transport::Udp,
        payload: p.payload,
        src_port: p.sport,
        dst_port: p.dport,
        from_initiator: dir == Dir::Orig,
        index,
    };
    let confirmed = match (payload::discord_discovery(&ctx), st.discord) {
        (Some(d), None) => {
            st.discord = Some((d.ssrc, d.response));
            return Some(Step::More);
        }
        (Some(d), Some((ssrc, response))) => {
            (d.response != response && d.ssrc == ssrc).then_some("request and response")
        }
        (None, Some((ssrc, _))) => (dir == Dir::Orig
            && payload::media_ssrc(p.payload) == Some(ssrc))
        .then_some("then the client's RTP with its SSRC"),
        (None, None) => None,
    }?;
    Some(Step::Decided(label(
        app,
        Method::Payload,
        None,
        format!("payload {DISCORD_DISCOVERY} ({confirmed})"),
    )))
}

fn payload_rules(sigs: &Sigs, t: Transport, p: &Packet<'_>, dir: Dir, index: u32) -> Option<Step> {
    let ctx = payload::Packet {
        transport: t,
        payload: p.payload,
        src_port: p.sport,
        dst_port: p.dport,
        from_initiator: dir == Dir::Orig,
        index,
    };
    for (app, name, f) in &sigs.matchers {
        if let Some(m) = f(&ctx) {
            return Some(Step::Decided(label(
                *app,
                Method::Payload,
                m.host,
                format!("payload {name} ({})", m.what),
            )));
        }
    }
    for (app, pat) in sigs.db.patterns() {
        if pat.matches(t, p.payload) {
            return Some(Step::Decided(label(
                *app,
                Method::Payload,
                None,
                "payload pattern".to_string(),
            )));
        }
    }
    None
}

/// An ICE connectivity check (RFC 8445 section 7.1.2): a Binding request
/// with USERNAME (0x0006), MESSAGE-INTEGRITY (0x0008) and one of PRIORITY
/// (0x0024), ICE-CONTROLLED (0x8029), ICE-CONTROLLING (0x802A).
fn is_ice_check(m: &stun::StunMessage<'_>) -> bool {
    if m.msg_type != 0x0001 {
        return false;
    }
    let (mut user, mut integrity, mut ice) = (false, false, false);
    for (t, _) in m.attributes() {
        match t {
            0x0006 => user = true,
            0x0008 => integrity = true,
            0x0024 | 0x8029 | 0x802A => ice = true,
            _ => {}
        }
    }
    user && integrity && ice
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(b0: u8, counter: u8, len: usize) -> Vec<u8> {
        let mut p = vec![0x5Au8; len];
        p[0] = b0;
        p[3] = counter;
        p
    }

    #[test]
    fn line_counter_one_way_needs_five_d_packets_and_no_reply() {
        // the client's counted control packets, no reply visible (NFLOG)
        let mut runs = [SeqRun::default(); 2];
        let hits: Vec<bool> = (0..5u8)
            .map(|i| line_counter(&mut runs, Dir::Orig, &pkt(0xD0, 0x72 + i, 132)))
            .collect();
        assert_eq!(hits, [false, false, false, false, true]);
        // the same counter from a game/VPN protocol whose first byte is not 0xD_
        let mut runs = [SeqRun::default(); 2];
        for i in 0..20u8 {
            assert!(!line_counter(&mut runs, Dir::Orig, &pkt(0x45, i, 132)));
        }
        // a reply was seen that does not count: one-way rule off
        let mut runs = [SeqRun::default(); 2];
        assert!(!line_counter(&mut runs, Dir::Reply, &[0x01, 0x02, 0x03]));
        for i in 0..20u8 {
            assert!(!line_counter(&mut runs, Dir::Orig, &pkt(0xD0, i, 132)));
        }
        // a run broken by a non-D packet does not count as all-D
        let mut runs = [SeqRun::default(); 2];
        let mut hit = false;
        for i in 0..10u8 {
            let b0 = if i == 2 { 0x60 } else { 0xD2 };
            hit |= line_counter(&mut runs, Dir::Orig, &pkt(b0, i, 132));
        }
        assert!(!hit);
        // both directions counting (a full capture): the two-way rule
        let mut runs = [SeqRun::default(); 2];
        let mut hit = false;
        for i in 0..4u8 {
            hit |= line_counter(&mut runs, Dir::Orig, &pkt(0x70, 0x10 + i, 40));
            hit |= line_counter(&mut runs, Dir::Reply, &pkt(0x70, 0x80 + i, 40));
        }
        assert!(hit);
    }

    fn discord_sigs() -> Sigs {
        let db = SignatureDb::from_defs(SignatureDb::builtin_defs()).expect("builtin signatures");
        Sigs::new(std::sync::Arc::new(db))
    }

    /// Runs `payloads` (direction, bytes) of one UDP flow through `step`;
    /// the evidence of the decision, if any.
    fn run(sigs: &Sigs, payloads: &[(Dir, Vec<u8>)]) -> Option<String> {
        use geofence_testkit::pcap::udp_v4;
        let (c, s) = (
            "10.0.0.5".parse().expect("ip"),
            "198.51.100.9".parse().expect("ip"),
        );
        let mut st = FlowInspect::default();
        for (dir, pl) in payloads {
            let f = match dir {
                Dir::Orig => udp_v4(c, 40000, s, 50004, pl),
                Dir::Reply => udp_v4(s, 50004, c, 40000, pl),
            };
            let p = geofence_decode::decode(geofence_decode::LinkType::Ethernet, &f).expect("udp");
            if let Step::Decided(l) = step(&mut st, sigs, &p, *dir, 50004, &mut Side::default()) {
                return l.evidence.map(|e| e.to_string());
            }
        }
        None
    }

    fn discovery(response: bool, ssrc: u32) -> Vec<u8> {
        let mut b = vec![0u8; 74];
        b[..4].copy_from_slice(&[0, if response { 2 } else { 1 }, 0, 0x46]);
        b[4..8].copy_from_slice(&ssrc.to_be_bytes());
        if response {
            b[8..21].copy_from_slice(b"203.0.113.44\0");
            b[72..74].copy_from_slice(&40000u16.to_be_bytes());
        }
        b
    }

    fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
        let mut b = vec![0x90, 0x78];
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0x10, 0]);
        b.extend_from_slice(&ssrc.to_be_bytes());
        b.extend_from_slice(&[0x5A; 60]);
        b
    }

    /// A Discord IP-discovery shape alone (a game's "type 1, length 70, id,
    /// padding" hello) labels nothing; it takes the same SSRC in the
    /// response or in the client's RTP.
    #[test]
    fn discord_discovery_needs_its_ssrc_confirmed() {
        let sigs = discord_sigs();
        assert!(sigs.discord_app.is_some());
        let game: Vec<(Dir, Vec<u8>)> = std::iter::once((Dir::Orig, discovery(false, 0x1234)))
            .chain((0..6u8).map(|i| (Dir::Orig, vec![0x42, i, 0, 0, 9, 9, 9, 9, 1, 2, 3, 4])))
            .collect();
        assert_eq!(run(&sigs, &game), None);
        // RTP, but with another SSRC
        let other = vec![
            (Dir::Orig, discovery(false, 0x1234)),
            (Dir::Orig, rtp(0x9999, 1)),
            (Dir::Orig, rtp(0x9999, 2)),
        ];
        assert_eq!(run(&sigs, &other), None);
        // a response whose SSRC differs
        let other = vec![
            (Dir::Orig, discovery(false, 0x1234)),
            (Dir::Reply, discovery(true, 0x1235)),
        ];
        assert_eq!(run(&sigs, &other), None);
        // Discord: the client's voice carries the announced SSRC (NFLOG sees
        // only this direction)...
        let voice = vec![
            (Dir::Orig, discovery(false, 0xace3)),
            (Dir::Orig, rtp(0xace3, 1)),
        ];
        assert!(run(&sigs, &voice).is_some_and(|e| e.contains("RTP with its SSRC")));
        // ... or the server's answer does
        let answer = vec![
            (Dir::Orig, discovery(false, 0xace3)),
            (Dir::Reply, discovery(true, 0xace3)),
        ];
        assert!(run(&sigs, &answer).is_some_and(|e| e.contains("request and response")));
    }
}
