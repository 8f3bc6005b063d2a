//! QUIC after decryption: the input supplies the *plaintext* frames of
//! client Initial packets, which are sealed with the real Initial keys
//! (`quic::seal_client_initial_keyed`) so that `decrypt_initials` and
//! `CryptoAssembler` get past the AEAD and parse attacker-chosen frames
//! (CRYPTO offsets and lengths, PADDING, PING, ACK, CONNECTION_CLOSE ...)
//! and reassemble an attacker-chosen CRYPTO stream. Random mutation of the
//! `quic` target's ciphertext almost never authenticates, hence this target.
//!
//! Input: `[flags, dcid_seed]`, then records `[ctl, len_hi, len_lo,
//! plaintext...]`. `flags` bit 0 picks QUIC v2, bits 1-5 the DCID length
//! (mod 21). `ctl` bit 0 starts a new datagram (else the packet is
//! coalesced into the current one), bit 1 puts another DCID in the header
//! (keys still from the original one, as after the server chose its DCID).
#![no_main]

use geofence_classify::quic::{self, CryptoState};
use geofence_classify::tls::HelloParse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&[flags, seed], mut rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let version = if flags & 1 == 0 {
        quic::VERSION_1
    } else {
        quic::VERSION_2
    };
    let dl = usize::from(flags >> 1) % (quic::MAX_CID_LEN + 1);
    let dcid: Vec<u8> = (0..dl).map(|i| seed.wrapping_add(i as u8)).collect();
    let other: Vec<u8> = dcid.iter().map(|b| b ^ 0x5A).collect();
    let scid = [seed; 4];

    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    let mut plain_total = 0usize;
    let mut pn = 0u32;
    while let Some((&[ctl, hi, lo], tail)) = rest.split_first_chunk::<3>() {
        let len = usize::from(u16::from_be_bytes([hi, lo])).min(tail.len());
        let (plain, tail) = tail.split_at(len);
        rest = tail;
        let hdr_dcid = if ctl & 2 == 0 { &dcid } else { &other };
        let Ok(pkt) =
            quic::seal_client_initial_keyed(version, &dcid, hdr_dcid, &scid, &[], pn, plain)
        else {
            continue;
        };
        pn += 1;
        plain_total += plain.len();
        match datagrams.last_mut() {
            Some(d) if ctl & 1 == 0 => d.extend_from_slice(&pkt),
            _ => datagrams.push(pkt),
        }
    }

    let mut asm = quic::CryptoAssembler::new();
    for (i, dg) in datagrams.iter().enumerate() {
        if i == 0 {
            if let Ok(pk) = quic::decrypt_initials(dg) {
                let crypto: usize = pk.crypto_frames().map(|(_, d)| d.len()).sum();
                assert!(crypto <= plain_total);
                assert!(pk.crypto_frame_count() <= quic::MAX_FRAMES_PER_DATAGRAM * pk.packets);
            }
        }
        let before = asm.datagrams();
        match asm.push_datagram(dg) {
            Ok(state) => {
                assert_eq!(asm.datagrams(), before + 1);
                assert!(asm.contiguous().len() <= quic::CRYPTO_CAP);
                match state {
                    CryptoState::NeedMore { have, need } => assert!(need > have),
                    CryptoState::Complete => {
                        assert!(matches!(asm.client_hello(), HelloParse::Hello(_)))
                    }
                    CryptoState::NotTls | CryptoState::TooLarge => {}
                }
            }
            Err(_) => assert_eq!(asm.datagrams(), before),
        }
    }
});
