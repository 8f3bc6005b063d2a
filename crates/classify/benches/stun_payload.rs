//! STUN parser and payload matcher throughput on corpus samples.
//! `cargo bench -p geofence-classify --bench stun_payload`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use geofence_classify::payload::{self, Packet};
use geofence_classify::stun;

fn sample(text: &str) -> Vec<u8> {
    let hex: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.chars())
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn bench(c: &mut Criterion) {
    let signal = sample(include_str!("../testdata/b/stun_signal_createperm.hex"));
    let realm = sample(include_str!("../testdata/b/stun_signal_401.hex"));
    let teams = sample(include_str!("../testdata/b/teams_ms_multiplexed.hex"));
    let tls = sample(include_str!("../testdata/b/neg_tls_client_hello.hex"));
    let quic = sample(include_str!("../testdata/b/neg_quic_initial.hex"));
    let zoom = sample(include_str!("../testdata/b/zoom_sfu_audio.hex"));
    let agora = sample(include_str!("../testdata/b/agora_sni.hex"));

    c.bench_function("stun_parse_createperm", |b| {
        b.iter(|| stun::parse(black_box(&signal), false))
    });
    c.bench_function("stun_parse_ms_multiplexed", |b| {
        b.iter(|| stun::parse(black_box(&teams), false))
    });
    c.bench_function("stun_parse_reject_tls", |b| {
        b.iter(|| stun::parse(black_box(&tls), true))
    });
    c.bench_function("stun_parse_realm", |b| {
        b.iter(|| stun::parse(black_box(&realm), false).and_then(|m| m.realm()))
    });
    c.bench_function("stun_parse_attrs_and_xor_peers", |b| {
        b.iter(|| {
            let m = stun::parse(black_box(&signal), false)?;
            Some(m.attributes().count() + m.xor_peer_addresses().count())
        })
    });
    c.bench_function("payload_match_any_zoom_audio", |b| {
        b.iter(|| payload::match_any(&Packet::udp(black_box(&zoom), 58117, 8801)).is_some())
    });
    c.bench_function("payload_match_any_agora", |b| {
        b.iter(|| payload::match_any(&Packet::udp(black_box(&agora), 55322, 8130)).is_some())
    });
    c.bench_function("payload_match_any_miss_quic", |b| {
        b.iter(|| payload::match_any(&Packet::udp(black_box(&quic), 50000, 443)).is_some())
    });
    c.bench_function("rtp_header", |b| {
        b.iter(|| payload::rtp_header(black_box(&zoom[27..])))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
