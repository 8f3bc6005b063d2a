//! QUIC: Initial detection, Initial decryption (header protection and AEAD
//! on attacker bytes), CRYPTO-stream assembly across datagrams, and the
//! plaintext gQUIC CHLO.
#![no_main]

use geofence_classify::quic::{self, CryptoState};
use geofence_classify::tls::HelloParse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = quic::is_quic_initial(data);
    if let Some(h) = quic::gquic_client_hello(data) {
        if let Some(s) = &h.sni {
            assert!(!s.is_empty());
        }
    }
    if let Ok(pk) = quic::decrypt_initials(data) {
        assert!(pk.crypto_frame_count() <= quic::MAX_FRAMES_PER_DATAGRAM * pk.packets.max(1));
        for (_off, d) in pk.crypto_frames() {
            assert!(d.len() <= data.len());
        }
        let mut a = quic::CryptoAssembler::new();
        let _ = a.add(&pk);
        let _ = a.add(&pk);
    }
    // The input as several datagrams: [len (2 bytes), bytes]...
    let mut asm = quic::CryptoAssembler::new();
    let mut rest = data;
    while let Some((h, tail)) = rest.split_at_checked(2) {
        let len = usize::from(u16::from_be_bytes([h[0], h[1]])).min(tail.len());
        let (dg, tail) = tail.split_at(len);
        rest = tail;
        let before = asm.datagrams();
        match asm.push_datagram(dg) {
            Ok(state) => {
                assert_eq!(asm.datagrams(), before + 1);
                assert!(asm.contiguous().len() <= quic::CRYPTO_CAP);
                if let CryptoState::NeedMore { have, need } = state {
                    assert!(need > have);
                }
                if state == CryptoState::Complete {
                    assert!(matches!(asm.client_hello(), HelloParse::Hello(_)));
                }
            }
            Err(_) => assert_eq!(asm.datagrams(), before),
        }
    }
});
