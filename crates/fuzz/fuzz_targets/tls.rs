//! TLS: ClientHello over a TCP stream, bare handshake, DTLS datagram, and
//! the TCP segment assembler fed segments (with sequence numbers) carved
//! out of the input.
#![no_main]

use geofence_classify::tls::{self, HelloParse};
use libfuzzer_sys::fuzz_target;

fn check(r: &HelloParse<'_>, len: usize) {
    match r {
        HelloParse::Hello(h) => {
            assert!(h.alpn.len() <= tls::MAX_ALPN);
            if let Some(s) = &h.sni {
                assert!(!s.is_empty() && s.len() <= 255);
                assert!(tls::validate_hostname(s.as_bytes()).is_some());
            }
            let _ = h.clone().into_owned();
        }
        HelloParse::NeedMore { have, need } => {
            assert_eq!(*have, len);
            assert!(need > have, "need {need} <= have {have}");
        }
        HelloParse::NotTls => {}
    }
}

fuzz_target!(|data: &[u8]| {
    check(&tls::parse_client_hello(data), data.len());
    check(&tls::parse_handshake_client_hello(data), data.len());
    if let HelloParse::NeedMore { have, need } = tls::parse_dtls_client_hello(data) {
        assert!(need > have);
    }
    let _ = tls::validate_hostname(data);

    // Assembler: header = isn (4 bytes) + cap selector (1 byte), then
    // segments of [seq delta (2 bytes), length (1 byte), bytes...].
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
        let seq = isn.wrapping_add(delta as i32 as u32);
        asm.push(seq, seg);
        assert!(asm.contiguous().len() <= tls::ASSEMBLER_CAP);
        let have = asm.contiguous().len();
        match asm.poll() {
            HelloParse::NeedMore { have: h, need } => {
                assert_eq!(h, have);
                assert!(need > h);
            }
            HelloParse::Hello(_) | HelloParse::NotTls => {}
        }
        let _ = asm.client_hello();
        let _ = asm.overflowed();
    }
});
