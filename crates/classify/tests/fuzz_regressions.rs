//! Replays the fuzz regression inputs (`crates/fuzz/regressions/<target>/`:
//! minimised libFuzzer findings and hand-made hostile packets) through the
//! same public APIs and invariants as the fuzz targets in `crates/fuzz`, so
//! they run in a plain `cargo test` on stable, without libFuzzer.

use std::fs;
use std::path::{Path, PathBuf};

use geofence_classify::dns::{self, RData};
use geofence_classify::payload::{self, Packet};
use geofence_classify::quic::{self, CryptoState};
use geofence_classify::sigdb::SignatureDb;
use geofence_classify::sigs::Transport;
use geofence_classify::stun;
use geofence_classify::tls::{self, HelloParse};

fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/regressions")).join(target);
    let mut paths: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let data = fs::read(&p).expect("read regression input");
            (name, data)
        })
        .collect()
}

fn named<'a>(inputs: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    &inputs
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("regression input {name} missing"))
        .1
}

// ------------------------------------------------------------------- DNS

fn dns_check(msg: &dns::DnsMessage<'_>) -> Vec<dns::Resolution> {
    assert!(msg.answers.len() <= dns::MAX_ANSWERS);
    if let Some(q) = &msg.question {
        assert!(q.name.to_lowercase_string().len() <= dns::MAX_NAME_LEN);
    }
    for a in &msg.answers {
        assert!(a.name.to_lowercase_string().len() <= dns::MAX_NAME_LEN);
        if let RData::Cname(n) = a.data {
            assert!(n.to_lowercase_string().len() <= dns::MAX_NAME_LEN);
        }
    }
    let res = dns::resolutions(msg);
    for (i, r) in res.iter().enumerate() {
        assert!(!r.names.is_empty() && r.names.len() <= dns::MAX_CNAME_DEPTH + 1);
        assert!(res[..i].iter().all(|o| o.addr != r.addr));
    }
    res
}

fn dns_input(data: &[u8]) {
    if let Ok(m) = dns::parse_message(data) {
        dns_check(&m);
    }
    let msgs = dns::parse_tcp_stream(data);
    assert!(msgs.len() <= data.len() / 2);
    for m in msgs.iter().flatten() {
        dns_check(m);
    }
}

#[test]
fn dns_regressions() {
    let inputs = regressions("dns");
    assert!(!inputs.is_empty(), "no DNS regression inputs");
    for (name, data) in &inputs {
        eprintln!("dns/{name}");
        dns_input(data);
    }
    // Compression loops and pointer chains are refused, not followed.
    for n in [
        "hostile-compression-self-loop",
        "hostile-compression-ping-pong",
    ] {
        assert_eq!(
            dns::parse_message(named(&inputs, n)).err(),
            Some(dns::DnsError::BadPointer),
            "{n}"
        );
    }
    assert_eq!(
        dns::parse_message(named(&inputs, "hostile-pointer-chain-100")).err(),
        Some(dns::DnsError::TooManyJumps)
    );
    // Lying counts and lengths are truncation, not allocation.
    for n in ["hostile-lying-ancount", "hostile-lying-rdlength"] {
        assert_eq!(
            dns::parse_message(named(&inputs, n)).err(),
            Some(dns::DnsError::Truncated),
            "{n}"
        );
    }
    assert!(dns::parse_tcp_stream(named(&inputs, "hostile-tcp-lying-length")).is_empty());
    // A 40-hop CNAME chain: the address is reported with the last 16 hops.
    let m = dns::parse_message(named(&inputs, "hostile-deep-cname-chain")).expect("chain parses");
    let res = dns_check(&m);
    assert_eq!(res.len(), 1);
    assert_eq!(res[0].names.len(), dns::MAX_CNAME_DEPTH + 1);
    assert_eq!(res[0].names.last().map(String::as_str), Some("h40.example"));
    assert!(!res[0].names.iter().any(|n| n == "h0.example"));
    // A CNAME cycle ends the chain.
    let m = dns::parse_message(named(&inputs, "hostile-cname-cycle")).expect("cycle parses");
    let res = dns_check(&m);
    assert_eq!(res.len(), 1);
    assert_eq!(res[0].names, ["a.example", "b.example"]);
}

// ------------------------------------------------------------------- TLS

fn tls_check(r: &HelloParse<'_>, len: usize) {
    match r {
        HelloParse::Hello(h) => {
            assert!(h.alpn.len() <= tls::MAX_ALPN);
            if let Some(s) = &h.sni {
                assert!(tls::validate_hostname(s.as_bytes()).is_some());
            }
        }
        HelloParse::NeedMore { have, need } => {
            assert_eq!(*have, len);
            assert!(need > have);
        }
        HelloParse::NotTls => {}
    }
}

fn tls_input(data: &[u8]) {
    tls_check(&tls::parse_client_hello(data), data.len());
    tls_check(&tls::parse_handshake_client_hello(data), data.len());
    if let HelloParse::NeedMore { have, need } = tls::parse_dtls_client_hello(data) {
        assert!(need > have);
    }
    // As the fuzz target: isn + cap selector, then (delta, len, bytes)
    // segments.
    let Some((hdr, mut rest)) = data.split_at_checked(5) else {
        return;
    };
    let isn = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    let mut asm = if hdr[4] & 1 == 0 {
        tls::HelloAssembler::new(isn)
    } else {
        tls::HelloAssembler::with_capacity(isn, usize::from(hdr[4]) * 64)
    };
    while let Some((seg_hdr, tail)) = rest.split_at_checked(3) {
        let delta = i16::from_be_bytes([seg_hdr[0], seg_hdr[1]]);
        let len = usize::from(seg_hdr[2]).min(tail.len());
        let (seg, tail) = tail.split_at(len);
        rest = tail;
        asm.push(isn.wrapping_add(delta as i32 as u32), seg);
        assert!(asm.contiguous().len() <= tls::ASSEMBLER_CAP);
        let have = asm.contiguous().len();
        if let HelloParse::NeedMore { have: h, need } = asm.poll() {
            assert_eq!(h, have);
            assert!(need > h);
        }
    }
}

#[test]
fn tls_regressions() {
    let inputs = regressions("tls");
    assert!(!inputs.is_empty(), "no TLS regression inputs");
    for (name, data) in &inputs {
        eprintln!("tls/{name}");
        tls_input(data);
    }
    // Hellos announcing more than the size cap are given up on at once.
    for n in [
        "hostile-enormous-handshake-len",
        "hostile-enormous-hello-records",
    ] {
        let d = named(&inputs, n);
        assert_eq!(tls::parse_client_hello(d), HelloParse::NotTls, "{n}");
        let mut asm = tls::HelloAssembler::new(1000);
        asm.push(1000, d);
        assert_eq!(asm.poll(), HelloParse::NotTls, "{n}");
        assert!(asm.contiguous().len() <= tls::ASSEMBLER_CAP);
    }
    for n in ["hostile-lying-extensions-len", "hostile-lying-sni-len"] {
        assert!(
            !matches!(
                tls::parse_client_hello(named(&inputs, n)),
                HelloParse::Hello(_)
            ),
            "{n}"
        );
    }
    if let HelloParse::Hello(h) = tls::parse_client_hello(named(&inputs, "hostile-many-empty-alpn"))
    {
        assert!(h.alpn.len() <= tls::MAX_ALPN);
    }
}

// ------------------------------------------------------------------ QUIC

fn quic_input(data: &[u8]) {
    let _ = quic::is_quic_initial(data);
    let _ = quic::gquic_client_hello(data);
    if let Ok(pk) = quic::decrypt_initials(data) {
        for (_, d) in pk.crypto_frames() {
            assert!(d.len() <= data.len());
        }
    }
    let mut asm = quic::CryptoAssembler::new();
    let mut rest = data;
    while let Some((h, tail)) = rest.split_at_checked(2) {
        let len = usize::from(u16::from_be_bytes([h[0], h[1]])).min(tail.len());
        let (dg, tail) = tail.split_at(len);
        rest = tail;
        if let Ok(state) = asm.push_datagram(dg) {
            assert!(asm.contiguous().len() <= quic::CRYPTO_CAP);
            if let CryptoState::NeedMore { have, need } = state {
                assert!(need > have);
            }
        }
    }
}

#[test]
fn quic_regressions() {
    let inputs = regressions("quic");
    assert!(!inputs.is_empty(), "no QUIC regression inputs");
    for (name, data) in &inputs {
        eprintln!("quic/{name}");
        quic_input(data);
    }
    for n in ["hostile-lying-varints", "hostile-dcid-len-255"] {
        assert!(quic::decrypt_initials(named(&inputs, n)).is_err(), "{n}");
    }
    assert!(
        quic::gquic_client_hello(named(&inputs, "hostile-gquic-chlo-lying-tag-count")).is_none()
    );
}

// ------------------------------------------------------------------ STUN

fn stun_walk(m: &stun::StunMessage<'_>, data: &[u8]) -> usize {
    assert!(m.wire_len() <= data.len());
    let mut n = 0;
    for (_, v) in m.attributes() {
        assert!(v.len() <= m.attrs.len());
        let _ = m.decode_xor_address(v);
        n += 1;
    }
    assert!(n <= m.attrs.len() / 4);
    let _ = (m.realm(), m.software(), m.username(), m.data());
    let _ = (
        m.xor_mapped_address(),
        m.xor_relayed_address(),
        m.mapped_address(),
    );
    let _ = m.xor_peer_addresses().count();
    n
}

#[test]
fn stun_regressions() {
    let inputs = regressions("stun");
    assert!(!inputs.is_empty(), "no STUN regression inputs");
    for (name, data) in &inputs {
        eprintln!("stun/{name}");
        for tcp in [false, true] {
            if let Some(m) = stun::parse(data, tcp) {
                stun_walk(&m, data);
            }
        }
        if let Some(inner) = stun::ms_multiplexed_inner(data) {
            if let Some(m) = stun::parse(inner, false) {
                stun_walk(&m, inner);
            }
        }
    }
    for tcp in [false, true] {
        assert!(stun::parse(named(&inputs, "hostile-lying-msg-len"), tcp).is_none());
        assert!(stun::parse(named(&inputs, "hostile-tcp-lying-frame-len"), tcp).is_none());
    }
    if let Some(m) = stun::parse(named(&inputs, "hostile-lying-attr-len"), false) {
        assert_eq!(m.attributes().count(), 0);
    }
    let d = named(&inputs, "hostile-many-empty-attrs");
    let m = stun::parse(d, false).expect("1000 empty attributes are a valid message");
    assert_eq!(stun_walk(&m, d), 1000);
    let d = named(&inputs, "hostile-bad-xor-address");
    if let Some(m) = stun::parse(d, false) {
        assert_eq!(m.xor_mapped_address(), None);
    }
}

// -------------------------------------------------- payload, signatures

#[test]
fn payload_regressions() {
    // Present only once the payload fuzzer found something.
    for (name, data) in regressions("payload") {
        eprintln!("payload/{name}");
        let Some((h, body)) = data.split_at_checked(6) else {
            continue;
        };
        let p = Packet {
            transport: if h[4] & 1 == 0 {
                Transport::Udp
            } else {
                Transport::Tcp
            },
            payload: body,
            src_port: u16::from_be_bytes([h[0], h[1]]),
            dst_port: u16::from_be_bytes([h[2], h[3]]),
            from_initiator: h[4] & 2 == 0,
            index: u32::from(h[5]),
        };
        for (_, f) in payload::MATCHERS {
            if let Some(host) = f(&p).and_then(|m| m.host) {
                assert!(payload::plausible_hostname(host));
            }
        }
        let _ = payload::rtp_header(body);
        let _ = payload::is_rtcp(body);
    }
}

#[test]
fn sigdb_regressions() {
    // Present only once the sigdb fuzzer found something.
    for (name, data) in regressions("sigdb") {
        eprintln!("sigdb/{name}");
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        if let Ok(defs) = SignatureDb::parse_file("fuzz.toml", text) {
            if let Ok(db) = SignatureDb::from_defs(defs) {
                for app in db.apps() {
                    assert!(db.find(app.id.as_str()).is_some());
                }
            }
        }
    }
}
