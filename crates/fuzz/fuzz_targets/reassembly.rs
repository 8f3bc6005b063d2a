//! The stream reassembler and the engine's memory pool against naive
//! models: pieces at attacker-chosen offsets (negative, past the window,
//! overlapping with the same or different bytes), then pool charges of
//! attacker-chosen sizes. Invariants: the contiguous prefix and the
//! conflict flag match a byte-per-slot model where the first copy wins;
//! heap use follows the bytes held (never the offsets claimed); the pool
//! never exceeds its budget and gives every byte back.
#![no_main]

use geofence_classify::reassembly::{Reassembler, MAX_CHUNKS};
use geofence_engine::budget::{Charge, Grant, Pool, PoolConfig};
use geofence_engine::flow::FlowKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((hdr, mut rest)) = data.split_at_checked(2) else {
        return;
    };
    let cap = 1 + usize::from(u16::from_be_bytes([hdr[0], hdr[1]]) % 4096);
    let mut r = Reassembler::new(cap);
    let mut model: Vec<Option<u8>> = vec![None; cap];
    let mut conflict = false;
    let mut dropped = false;
    // Pieces: [offset i32 (4 bytes), length (1 byte), fill byte (1 byte)].
    while let Some((p, tail)) = rest.split_at_checked(6) {
        rest = tail;
        let off = i64::from(i32::from_be_bytes([p[0], p[1], p[2], p[3]]));
        let len = usize::from(p[4]);
        let piece: Vec<u8> = (0..len).map(|i| p[5].wrapping_add((i % 2) as u8)).collect();
        r.insert(off, &piece);
        if off + len as i64 > cap as i64 {
            dropped = true;
        }
        for (k, &b) in piece.iter().enumerate() {
            let pos = off + k as i64;
            if (0..cap as i64).contains(&pos) {
                match model[pos as usize] {
                    None => model[pos as usize] = Some(b),
                    Some(old) if old != b => conflict = true,
                    Some(_) => {}
                }
            }
        }
        if r.dropped() && !dropped {
            // Past MAX_CHUNKS the reassembler drops chunks: the model no
            // longer applies exactly; only bounds are checked from here.
            assert!(r.heap_bytes() <= 2 * cap + (MAX_CHUNKS + 2) * 32 + 64);
            return;
        }
        let expect: Vec<u8> = model.iter().map_while(|x| *x).collect();
        assert_eq!(r.contiguous(), &expect[..]);
        if !r.dropped() {
            assert_eq!(r.conflict(), conflict);
        }
        let held = model.iter().filter(|x| x.is_some()).count();
        assert!(r.heap_bytes() <= 2 * held + (MAX_CHUNKS + 2) * 32 + 64);
    }
    // Pool: charges of the remaining bytes' sizes, across 8 flows.
    let budget = 64 * 1024;
    let mut pool = Pool::new(PoolConfig {
        budget,
        per_flow: 16 * 1024,
    });
    let mut charges: Vec<Charge> = (0..8).map(|_| Charge::default()).collect();
    let key = |i: usize| FlowKey {
        proto: geofence_decode::Proto::Udp,
        lo: (std::net::IpAddr::from([10, 0, 0, i as u8]), 1),
        hi: (std::net::IpAddr::from([10, 0, 0, 200]), 2),
        tunnel: None,
    };
    for (i, w) in data.chunks_exact(2).enumerate() {
        let f = usize::from(w[0]) % 8;
        let want = usize::from(w[1]) * 97;
        let g = pool.charge(&mut charges[f], want, key(f), i as u64);
        if g == Grant::Granted {
            assert_eq!(charges[f].bytes(), want);
        }
        assert!(pool.used() <= budget);
        assert_eq!(pool.used(), charges.iter().map(|c| c.bytes()).sum::<usize>());
        if w[0] & 0x80 != 0 {
            charges[f] = Charge::default();
        }
        if pool.wants_compaction() {
            pool.compact(|_, _| true);
        }
    }
    drop(charges);
    assert_eq!(pool.used(), 0);
});
