//! Decode: every link type over the input frame, with no tunnel and with every
//! tunnel enabled, and the pcap/pcapng reader over the input as a whole file
//! (every record read, oversized and damaged records skipped).
#![no_main]

use geofence_decode::{
    decode, decode_with, DecodeOptions, LinkType, PcapReader, Proto, TunnelSet, MAX_RECORD_LEN,
};
use libfuzzer_sys::fuzz_target;

const LINKS: [LinkType; 14] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::RawIp,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Null,
    LinkType::Ppp,
    LinkType::PppHdlc,
    LinkType::PppEther,
    LinkType::CiscoHdlc,
    LinkType::PppPppd,
    LinkType::PppWithDir,
    LinkType::Other(147),
];

fuzz_target!(|data: &[u8]| {
    let all = DecodeOptions {
        tunnels: TunnelSet::all(),
    };
    for link in LINKS {
        if let Ok(p) = decode(link, data) {
            assert!(p.payload.len() <= data.len());
            assert_eq!(p.tcp.is_some(), p.proto == Proto::Tcp);
            assert!(p.tunnel.is_none());
        }
        if let Ok(p) = decode_with(link, data, all) {
            assert!(p.payload.len() <= data.len());
            assert_eq!(p.tcp.is_some(), p.proto == Proto::Tcp);
        }
        assert_eq!(LinkType::from_dlt(link.to_dlt()), link);
    }
    if let Ok(mut r) = PcapReader::new(data) {
        // Each record costs at least 16 bytes (pcap) / 12 bytes (pcapng) of
        // the input, so this loop is bounded by the input size.
        let mut n = 0usize;
        while let Ok(Some(pkt)) = r.next_packet() {
            assert!(pkt.data.len() <= MAX_RECORD_LEN as usize);
            assert!(pkt.data.len() <= data.len());
            let _ = decode(pkt.link, pkt.data);
            let _ = decode_with(pkt.link, pkt.data, all);
            n += 1;
            assert!(n <= data.len() / 12 + 1);
        }
    }
});
