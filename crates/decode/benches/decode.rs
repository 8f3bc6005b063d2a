//! Decoder and reader speed on the real corpus (falls back to built frames when
//! `../shared/corpus` is absent).
//!
//! `cargo bench -p geofence-decode --bench decode`

use std::hint::black_box;
use std::io::Cursor;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use geofence_decode::{decode, LinkType, PcapReader};

fn corpus_files() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/pcap"
    ));
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            if let Ok(bytes) = std::fs::read(e.path()) {
                out.push((e.file_name().to_string_lossy().into_owned(), bytes));
            }
        }
    }
    out.sort();
    out
}

fn corpus_packets(files: &[(String, Vec<u8>)]) -> Vec<(LinkType, Vec<u8>)> {
    let mut pkts = Vec::new();
    for (_, bytes) in files {
        let Ok(mut r) = PcapReader::new(Cursor::new(bytes.as_slice())) else {
            continue;
        };
        while let Ok(Some(p)) = r.next_packet() {
            pkts.push((p.link, p.data.to_vec()));
        }
    }
    if pkts.is_empty() {
        eprintln!("corpus absent: benchmarking built frames");
        let (c, s) = (
            "192.0.2.1".parse().expect("ip"),
            "198.51.100.1".parse().expect("ip"),
        );
        use geofence_testkit::pcap::{tcp_v4, udp_v4, TcpFlags};
        pkts.push((
            LinkType::Ethernet,
            tcp_v4(c, 1, s, 443, 1, TcpFlags::PSH_ACK, &[0u8; 200]),
        ));
        pkts.push((LinkType::Ethernet, udp_v4(c, 1, s, 443, &[0u8; 1200])));
    }
    pkts
}

fn bench(c: &mut Criterion) {
    let files = corpus_files();
    let pkts = corpus_packets(&files);
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(pkts.len() as u64));
    g.bench_function(format!("corpus_{}_packets", pkts.len()), |b| {
        b.iter(|| {
            let mut n = 0usize;
            for (link, data) in &pkts {
                if let Ok(p) = decode(*link, black_box(data)) {
                    n += p.payload.len();
                }
            }
            black_box(n)
        })
    });
    // baseline: etherparse's aggregate lax parser on the same packets
    g.bench_function(format!("lax_sliced_packet_{}_packets", pkts.len()), |b| {
        b.iter(|| {
            let mut n = 0usize;
            for (link, data) in &pkts {
                let r = match link {
                    LinkType::Ethernet => {
                        etherparse::LaxSlicedPacket::from_ethernet(black_box(data)).ok()
                    }
                    LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => {
                        etherparse::LaxSlicedPacket::from_ip(black_box(data)).ok()
                    }
                    _ => None,
                };
                if let Some(p) = r {
                    n += usize::from(p.transport.is_some());
                }
            }
            black_box(n)
        })
    });
    g.finish();

    if let Some((name, bytes)) = files.iter().max_by_key(|(_, b)| b.len()) {
        let mut g = c.benchmark_group("pcap_reader");
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("read_{name}"), |b| {
            b.iter(|| {
                let mut r =
                    PcapReader::new(Cursor::new(bytes.as_slice())).expect("corpus file reads");
                let mut n = 0usize;
                while let Ok(Some(p)) = r.next_packet() {
                    n += p.data.len();
                }
                black_box(n)
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
