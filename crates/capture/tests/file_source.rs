//! `PcapFileSource` through the `PacketSource` trait.

use std::io::Cursor;
use std::net::Ipv4Addr;
use std::time::Duration;

use geofence_capture::{CaptureError, LinkType, PacketSource, PcapFileSource, MAX_BATCH};
use geofence_testkit::pcap::{udp_v4, PcapLink, PcapWriter};

fn capture(n: usize) -> Vec<u8> {
    let mut w = PcapWriter::new_nanos(Vec::new(), PcapLink::Ethernet).expect("hdr");
    for i in 0..n {
        let f = udp_v4(
            Ipv4Addr::new(192, 0, 2, 1),
            1000 + (i % 50) as u16,
            Ipv4Addr::new(203, 0, 113, 5),
            53,
            &(i as u32).to_be_bytes(),
        );
        w.write_packet(1_000_000_000 + i as u64, &f).expect("rec");
    }
    w.into_inner().expect("flush")
}

#[test]
fn batches_in_order_then_finishes() {
    let n = 2 * MAX_BATCH + 452;
    let mut src = PcapFileSource::new(Cursor::new(capture(n))).expect("open");
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    while !src.is_finished() {
        let got = src
            .poll_batch(Duration::from_millis(10), &mut |c| {
                assert_eq!(c.link, LinkType::Ethernet);
                let p = geofence_decode::decode(c.link, c.data).expect("decodes");
                seen.push((
                    c.ts_nanos,
                    u32::from_be_bytes(p.payload.try_into().expect("4 bytes")),
                ));
            })
            .expect("poll");
        sizes.push(got);
    }
    assert_eq!(sizes, vec![MAX_BATCH, MAX_BATCH, 452]);
    assert_eq!(seen.len(), n);
    for (i, (ts, v)) in seen.iter().enumerate() {
        assert_eq!((*ts, *v), (1_000_000_000 + i as u64, i as u32));
    }
    assert_eq!(src.stats().received, n as u64);
    assert_eq!(
        src.poll_batch(Duration::ZERO, &mut |_| panic!("no more"))
            .expect("eof"),
        0
    );
}

#[test]
fn a_cut_file_delivers_its_packets_then_reports_the_error() {
    let mut bytes = capture(10);
    bytes.truncate(bytes.len() - 3);
    let mut src = PcapFileSource::new(Cursor::new(bytes)).expect("open");
    let mut count = 0;
    assert_eq!(
        src.poll_batch(Duration::ZERO, &mut |_| count += 1)
            .expect("first batch"),
        9
    );
    assert_eq!(count, 9);
    assert!(!src.is_finished(), "the error is still to be reported");
    assert!(matches!(
        src.poll_batch(Duration::ZERO, &mut |_| {}),
        Err(CaptureError::File(_))
    ));
    assert!(src.is_finished());
    assert_eq!(src.stats().malformed, 1);
}

#[test]
fn corpus_file_through_the_trait() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/pcap/stun_zoom.pcapng"
    );
    if !std::path::Path::new(path).exists() {
        geofence_testkit::skip(format_args!("corpus not found at {path}"));
        return;
    }
    let mut src = PcapFileSource::open(path).expect("open");
    let mut decoded = 0;
    let mut total = 0;
    while !src.is_finished() {
        total += src
            .poll_batch(Duration::ZERO, &mut |c| {
                decoded += usize::from(geofence_decode::decode(c.link, c.data).is_ok())
            })
            .expect("poll");
    }
    // tcpdump -r stun_zoom.pcapng | wc -l  => 70
    assert_eq!((total, decoded), (70, 70));
}
