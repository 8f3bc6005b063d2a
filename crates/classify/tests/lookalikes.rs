//! Look-alikes: generic traffic that must not be taken for a conferencing
//! app by any payload matcher. Random UDP and TCP payloads on every vendor
//! port, WireGuard handshake and transport shapes, IKE, game-style
//! type/length/id packets, Source-engine and Quake queries, QUIC-like long
//! headers. Each matcher's positive shape is covered by its own tests
//! (parsers_b.rs); here only the negatives.

use geofence_classify::payload::{self, discord_discovery, Packet, MATCHERS};
use geofence_classify::sigs::Transport;

/// xorshift64*: deterministic, seedable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Ports the matchers care about, plus common game/VPN ports.
const PORTS: &[u16] = &[
    500, 521, 550, 600, 4500, 8801, 8805, 8810, 1194, 51820, 27015, 3074, 7777, 9000, 50004, 443,
];

fn packets<'a>(payload: &'a [u8], rng: &mut Rng) -> Vec<Packet<'a>> {
    let mut out = Vec::new();
    for &port in PORTS {
        for (transport, from_initiator) in [
            (Transport::Udp, true),
            (Transport::Udp, false),
            (Transport::Tcp, true),
        ] {
            out.push(Packet {
                transport,
                payload,
                src_port: 40000 + (rng.next() % 20000) as u16,
                dst_port: port,
                from_initiator,
                index: (rng.next() % 8) as u32,
            });
        }
    }
    out
}

#[track_caller]
fn no_match(what: &str, payload: &[u8], rng: &mut Rng) {
    for p in packets(payload, rng) {
        if let Some((name, m)) = payload::match_any(&p) {
            panic!(
                "{what} ({} bytes, {:?} port {} initiator {}) taken for {name} ({})",
                payload.len(),
                p.transport,
                p.dst_port,
                p.from_initiator,
                m.what
            );
        }
    }
}

fn wireguard(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for (ty, len) in [(1u8, 148usize), (2, 92), (3, 64)] {
        let mut p = rng.bytes(len);
        p[..4].copy_from_slice(&[ty, 0, 0, 0]);
        v.push(p);
    }
    // transport data: type 4, receiver index, 64-bit counter, ciphertext + tag
    for k in [0usize, 1, 5, 40, 80] {
        let mut p = rng.bytes(16 + 16 * k + 16);
        p[..4].copy_from_slice(&[4, 0, 0, 0]);
        v.push(p);
    }
    v
}

/// IKEv1/IKEv2 headers (UDP 500; on 4500 after a 4-byte non-ESP marker),
/// with a run of 0xFF bytes in the body (a nonce or certificate can hold one).
fn ike(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for (version, exchange) in [(0x20u8, 34u8), (0x20, 35), (0x10, 2)] {
        let len = 120usize;
        let mut p = rng.bytes(len);
        p[16] = 33;
        p[17] = version;
        p[18] = exchange;
        p[24..28].copy_from_slice(&(len as u32).to_be_bytes());
        p[40..52].fill(0xFF);
        p[39] = 0;
        p[52] = 0;
        v.push(p.clone());
        let mut natt = vec![0, 0, 0, 0];
        natt.extend_from_slice(&p);
        natt[28..32].copy_from_slice(&(len as u32).to_be_bytes());
        v.push(natt);
    }
    v
}

/// Game-style messages: a BE16 type and BE16 length header (as Discord's
/// IP discovery has), an id, then zero padding; Source-engine and Quake 3
/// connectionless queries; a QUIC-like long header.
fn games(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for ty in [1u16, 2, 3] {
        // type, length 70, random id, NUL padding, random tail: 74 bytes
        let mut p = vec![0u8; 74];
        p[..2].copy_from_slice(&ty.to_be_bytes());
        p[2..4].copy_from_slice(&70u16.to_be_bytes());
        p[4..8].copy_from_slice(&rng.bytes(4));
        if ty == 2 {
            // a "response" whose payload is text, not an address
            p[8..20].copy_from_slice(b"player_00042");
        }
        p[72..74].copy_from_slice(&rng.bytes(2));
        v.push(p);
        // same header, random body
        let mut q = rng.bytes(74);
        q[..4].copy_from_slice(&[0, ty as u8, 0, 0x46]);
        v.push(q);
    }
    let mut a2s = b"\xFF\xFF\xFF\xFFTSource Engine Query\x00".to_vec();
    a2s.extend_from_slice(&[0xFF; 4]);
    v.push(a2s);
    v.push(b"\xFF\xFF\xFF\xFFgetstatus\n".to_vec());
    v.push(b"\xFF\xFF\xFF\xFFgetchallenge 12345 ".to_vec());
    let mut quic = rng.bytes(1200);
    quic[..5].copy_from_slice(&[0xC3, 0, 0, 0, 1]);
    v.push(quic);
    // a game heartbeat of 8 bytes and an 8-byte counter packet
    v.push(vec![0x13, 0x37, 0x00, 0x00, 0, 0, 0, 1]);
    v.push(vec![0xB6, 0x07, 0x00, 0x05, 1, 2, 3, 4]);
    v
}

#[test]
fn generic_udp_and_tcp_payloads_match_nothing() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    for round in 0..20_000 {
        let len = (rng.next() % 1400) as usize;
        let p = rng.bytes(len);
        no_match(&format!("random payload #{round}"), &p, &mut rng);
    }
    // exactly the lengths the fixed-length matchers want
    for &len in &[8usize, 46, 74, 110] {
        for round in 0..5_000 {
            let p = rng.bytes(len);
            no_match(&format!("random {len}-byte payload #{round}"), &p, &mut rng);
        }
    }
}

#[test]
fn wireguard_ike_and_game_shapes_match_nothing() {
    let mut rng = Rng(0xC0FF_EE00_0000_0042);
    for _ in 0..200 {
        for p in wireguard(&mut rng) {
            no_match("WireGuard", &p, &mut rng);
        }
        for p in ike(&mut rng) {
            no_match("IKE", &p, &mut rng);
        }
    }
    for p in games(&mut rng) {
        // the all-NUL "type 1" request is the one shape that is a Discord
        // candidate by itself (the engine needs its SSRC confirmed); every
        // other game shape matches nothing
        if p.get(..4) == Some(&[0, 1, 0, 0x46])
            && p.get(8..72).is_some_and(|f| f.iter().all(|&c| c == 0))
        {
            continue;
        }
        no_match("game packet", &p, &mut rng);
    }
}

#[test]
fn discord_discovery_requires_every_field() {
    let mut req = vec![0u8; 74];
    req[..4].copy_from_slice(&[0, 1, 0, 0x46]);
    req[4..8].copy_from_slice(&0x0000_ace3u32.to_be_bytes());
    let mut resp = req.clone();
    resp[1] = 2;
    resp[8..21].copy_from_slice(b"203.0.113.44\0");
    resp[72..74].copy_from_slice(&50004u16.to_be_bytes());
    let at = |b: &[u8], from_initiator: bool| {
        discord_discovery(&Packet {
            from_initiator,
            ..Packet::udp(b, 40000, 50004)
        })
    };
    assert!(at(&req, true).is_some_and(|d| !d.response && d.ssrc == 0xace3));
    assert!(at(&resp, false).is_some_and(|d| d.response && d.ssrc == 0xace3));
    // direction: a request from the server, a response from the client
    assert!(at(&req, false).is_none());
    assert!(at(&resp, true).is_none());
    // zero SSRC
    let mut x = req.clone();
    x[4..8].fill(0);
    assert!(at(&x, true).is_none());
    // wrong length field, wrong size
    let mut x = req.clone();
    x[3] = 0x47;
    assert!(at(&x, true).is_none());
    assert!(at(&req[..73], true).is_none());
    // response: no address, text instead of an address, junk after the NUL, port 0
    let mut x = resp.clone();
    x[8..72].fill(0);
    assert!(at(&x, false).is_none());
    let mut x = resp.clone();
    x[8..21].copy_from_slice(b"player_00042\0");
    assert!(at(&x, false).is_none());
    let mut x = resp.clone();
    x[60] = 7;
    assert!(at(&x, false).is_none());
    let mut x = resp.clone();
    x[72..74].fill(0);
    assert!(at(&x, false).is_none());
    // TCP
    assert!(discord_discovery(&Packet::tcp(&req, 40000, 50004)).is_none());
    // every matcher is registered under its documented name
    assert!(MATCHERS.iter().any(|(n, _)| *n == "discord-ip-discovery"));
}
