//! Per-call cost of the DNS, TLS/DTLS and QUIC Initial parsers on real and
//! RFC sample bytes: `cargo bench -p geofence-classify --bench dns_tls_quic`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use geofence_classify::{dns, quic, tls};

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn bench(c: &mut Criterion) {
    let dns_msgs: Vec<Vec<u8>> = include_str!("../testdata/a/teams_dns_responses.hex")
        .lines()
        .filter(|l| !l.is_empty())
        .map(unhex)
        .collect();
    // The 4-record CNAME chain answer for config.teams.microsoft.com.
    let chain = dns_msgs
        .iter()
        .find(|m| {
            dns::parse_message(m)
                .ok()
                .and_then(|p| p.question)
                .is_some_and(|q| q.name.eq_str("config.teams.microsoft.com"))
        })
        .cloned()
        .unwrap_or_default();
    c.bench_function("dns/parse_message cname chain (162 B)", |b| {
        b.iter(|| dns::parse_message(black_box(&chain)).map(|m| m.answers.len()))
    });
    c.bench_function("dns/parse_message + resolutions", |b| {
        b.iter(|| {
            dns::parse_message(black_box(&chain))
                .map(|m| dns::resolutions(&m).len())
                .unwrap_or(0)
        })
    });

    let hello = unhex(include_str!("../testdata/a/teams_clienthello.hex"));
    c.bench_function("tls/parse_client_hello teams (210 B)", |b| {
        b.iter(|| match tls::parse_client_hello(black_box(&hello)) {
            tls::HelloParse::Hello(h) => h.sni.map_or(0, |s| s.len()),
            _ => 0,
        })
    });
    // Same hello cut into 100-byte records (slow path, owned strings).
    let mut multi = Vec::new();
    for ch in hello.get(5..).unwrap_or(&[]).chunks(100) {
        multi.extend_from_slice(&[0x16, 3, 1, 0, ch.len() as u8]);
        multi.extend_from_slice(ch);
    }
    c.bench_function("tls/parse_client_hello 3 records", |b| {
        b.iter(|| {
            matches!(
                tls::parse_client_hello(black_box(&multi)),
                tls::HelloParse::Hello(_)
            )
        })
    });
    let half = hello.get(..100).unwrap_or(&[]).to_vec();
    c.bench_function("tls/parse_client_hello partial (NeedMore)", |b| {
        b.iter(|| tls::parse_client_hello(black_box(&half)))
    });
    c.bench_function("tls/HelloAssembler 2 segments + parse", |b| {
        b.iter(|| {
            let mut a = tls::HelloAssembler::new(1000);
            a.push(1100, hello.get(100..).unwrap_or(&[]));
            a.push(1000, hello.get(..100).unwrap_or(&[]));
            matches!(a.client_hello(), tls::HelloParse::Hello(_))
        })
    });
    let dtls = unhex(
        include_str!("../testdata/a/dtls_client_hellos.hex")
            .lines()
            .nth(1)
            .unwrap_or(""),
    );
    c.bench_function("tls/parse_dtls_client_hello (522 B)", |b| {
        b.iter(|| {
            matches!(
                tls::parse_dtls_client_hello(black_box(&dtls)),
                tls::HelloParse::Hello(_)
            )
        })
    });

    let initial = unhex(include_str!("../testdata/a/rfc9001_a2_client_initial.hex"));
    let meet = unhex(include_str!("../testdata/a/google_meet_quic_initial.hex"));
    c.bench_function("quic/is_quic_initial", |b| {
        b.iter(|| quic::is_quic_initial(black_box(&initial)))
    });
    c.bench_function("quic/decrypt_initials rfc9001 (1200 B)", |b| {
        b.iter(|| quic::decrypt_initials(black_box(&initial)).map(|p| p.packets))
    });
    c.bench_function("quic/meet datagram -> SNI (assembler + hello)", |b| {
        b.iter(|| {
            let mut a = quic::CryptoAssembler::new();
            let _ = a.push_datagram(black_box(&meet));
            match a.client_hello() {
                tls::HelloParse::Hello(h) => h.sni.map_or(0, |s| s.len()),
                _ => 0,
            }
        })
    });
    let gquic = unhex(
        include_str!("../testdata/a/gquic_chlo.hex")
            .lines()
            .next()
            .unwrap_or(""),
    );
    c.bench_function("quic/gquic_client_hello Q046 (1350 B)", |b| {
        b.iter(|| quic::gquic_client_hello(black_box(&gquic)).map(|h| h.sni.is_some()))
    });
    let mut not_quic = initial.clone();
    if let Some(b0) = not_quic.get_mut(0) {
        *b0 = 0x45; // short header
    }
    c.bench_function("quic/decrypt_initials non-QUIC reject", |b| {
        b.iter(|| quic::decrypt_initials(black_box(&not_quic)).is_err())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
