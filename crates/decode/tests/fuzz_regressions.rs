//! Replays the fuzz regression inputs of the `decode` target
//! (`crates/fuzz/regressions/decode/`: minimised libFuzzer findings and
//! hand-made hostile frames and capture files) through the same APIs and
//! invariants as `crates/fuzz/fuzz_targets/decode.rs`, on stable, without
//! libFuzzer.

use std::fs;
use std::path::{Path, PathBuf};

use geofence_decode::{decode, DecodeError, LinkType, PcapReader, Proto, Skip, MAX_RECORD_LEN};

const LINKS: [LinkType; 8] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::RawIp,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Null,
    LinkType::Other(147),
];

fn inputs() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/regressions/decode"
    ));
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.retain(|p| p.is_file());
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, fs::read(&p).expect("read regression input"))
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

/// Everything the fuzz target does with one input; returns the number of
/// records read and the error that ended reading, if any.
fn replay(data: &[u8]) -> (usize, Option<DecodeError>) {
    for link in LINKS {
        if let Ok(p) = decode(link, data) {
            assert!(p.payload.len() <= data.len());
            assert_eq!(p.tcp.is_some(), p.proto == Proto::Tcp);
        }
    }
    let mut r = match PcapReader::new(data) {
        Ok(r) => r,
        Err(e) => return (0, Some(e)),
    };
    let mut n = 0usize;
    loop {
        match r.next_packet() {
            Ok(Some(pkt)) => {
                assert!(pkt.data.len() <= MAX_RECORD_LEN as usize);
                assert!(pkt.data.len() <= data.len());
                let _ = decode(pkt.link, pkt.data);
                n += 1;
                assert!(n <= data.len() / 12 + 1);
            }
            Ok(None) => return (n, None),
            Err(e) => return (n, Some(e)),
        }
    }
}

#[test]
fn decode_regressions() {
    let inputs = inputs();
    assert!(!inputs.is_empty(), "no decode regression inputs");
    for (name, data) in &inputs {
        eprintln!("decode/{name}");
        replay(data);
    }
    // Lying IPv4 lengths: refused, not read past the frame.
    assert_eq!(
        decode(
            LinkType::Ethernet,
            named(&inputs, "hostile-ipv4-lying-lengths")
        )
        .err(),
        Some(Skip::Malformed)
    );
    // 60 chained extension headers end in a verdict, not a loop.
    assert!(decode(LinkType::Ethernet, named(&inputs, "hostile-ipv6-ext-chain")).is_err());
    // Capture files whose first record / block claims 4 GiB: read past
    // (never allocated) to the end of the file, which is then truncated.
    let (n, err) = replay(named(&inputs, "hostile-pcap-record-4gib"));
    assert_eq!(n, 0);
    assert!(matches!(err, Some(DecodeError::Truncated(_))), "{err:?}");
    let (n, err) = replay(named(&inputs, "hostile-pcapng-block-4gib"));
    assert_eq!(n, 0);
    assert!(err.is_some());
}
