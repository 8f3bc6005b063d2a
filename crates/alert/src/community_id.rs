//! Community ID flow hashing, version 1.
//!
//! The Community ID is a flow identifier that Zeek, Suricata, Elastic,
//! Wazuh and others compute the same way, so a SIEM can join Geofence's
//! alert about a flow with the IDS and firewall records of the same flow.
//! Implemented from the public specification (corelight/community-id-spec):
//!
//! 1. Order the two endpoints so the "smaller" one comes first: the one
//!    with the smaller address (compared as network-order bytes), or, for
//!    equal addresses, the smaller port.
//! 2. Hash with SHA-1: the seed (u16, big-endian), the first address, the
//!    second address (4 or 16 bytes), the IP protocol number (u8), one
//!    padding byte 0, the first port and the second port (u16, big-endian).
//! 3. The ID is `"1:"` followed by the standard base64 (with padding) of
//!    the 20-byte digest.
//!
//! Only port-based transports (TCP, UDP, SCTP) are hashed here; ICMP needs
//! the message type and code, which flow alerts do not carry, so ICMP
//! alerts have no `community_id`.

use ring::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY};
use std::net::IpAddr;

/// IP protocol number of a transport name as alerts write it (`tcp`,
/// `udp`, `sctp`); `None` for transports without ports.
pub fn transport_number(proto: &str) -> Option<u8> {
    match proto {
        "tcp" => Some(6),
        "udp" => Some(17),
        "sctp" => Some(132),
        _ => None,
    }
}

/// The Community ID v1 of a flow, or `None` when the two addresses are of
/// different families (no such flow exists on the wire).
pub fn community_id_v1(
    seed: u16,
    proto: u8,
    src: IpAddr,
    src_port: u16,
    dst: IpAddr,
    dst_port: u16,
) -> Option<String> {
    let (a, b) = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (s.octets().to_vec(), d.octets().to_vec()),
        (IpAddr::V6(s), IpAddr::V6(d)) => (s.octets().to_vec(), d.octets().to_vec()),
        _ => return None,
    };
    let src_first = (a.as_slice(), src_port) < (b.as_slice(), dst_port);
    let ((a, ap), (b, bp)) = if src_first {
        ((a, src_port), (b, dst_port))
    } else {
        ((b, dst_port), (a, src_port))
    };
    let mut buf = Vec::with_capacity(2 + 16 + 16 + 2 + 4);
    buf.extend_from_slice(&seed.to_be_bytes());
    buf.extend_from_slice(&a);
    buf.extend_from_slice(&b);
    buf.push(proto);
    buf.push(0);
    buf.extend_from_slice(&ap.to_be_bytes());
    buf.extend_from_slice(&bp.to_be_bytes());
    let hash = digest(&SHA1_FOR_LEGACY_USE_ONLY, &buf);
    Some(format!("1:{}", base64(hash.as_ref())))
}

/// Standard base64 (RFC 4648 alphabet, `=` padding).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    // Published vectors of the specification's baseline (also used by the
    // Zeek and Vector implementations' tests).
    #[test]
    fn spec_vectors_tcp_udp_seed_0_and_1() {
        let cases = [
            (0, 6, "1:wCb3OG7yAFWelaUydu0D+125CLM="),
            (0, 17, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg="),
            (1, 6, "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="),
            (1, 17, "1:OShq+iKDAMVouh/4bMxB9Sz4amw="),
        ];
        for (seed, proto, want) in cases {
            let fwd = community_id_v1(seed, proto, ip("1.2.3.4"), 1122, ip("5.6.7.8"), 3344);
            let rev = community_id_v1(seed, proto, ip("5.6.7.8"), 3344, ip("1.2.3.4"), 1122);
            assert_eq!(fwd.as_deref(), Some(want), "seed {seed} proto {proto}");
            assert_eq!(
                rev.as_deref(),
                Some(want),
                "reverse, seed {seed} proto {proto}"
            );
        }
    }

    #[test]
    fn equal_addresses_order_by_port() {
        let a = community_id_v1(0, 6, ip("192.0.2.1"), 80, ip("192.0.2.1"), 50000);
        let b = community_id_v1(0, 6, ip("192.0.2.1"), 50000, ip("192.0.2.1"), 80);
        assert_eq!(a, b);
        let c = community_id_v1(0, 17, ip("192.0.2.1"), 80, ip("192.0.2.1"), 50000);
        assert_ne!(a, c, "the protocol is part of the hash");
    }

    #[test]
    fn ipv6_is_symmetric_and_mixed_families_have_none() {
        let a = community_id_v1(0, 17, ip("2001:db8::1"), 5000, ip("2001:db8::2"), 3478);
        let b = community_id_v1(0, 17, ip("2001:db8::2"), 3478, ip("2001:db8::1"), 5000);
        assert_eq!(a, b);
        let id = a.expect("v6 id");
        assert!(id.starts_with("1:") && id.len() == 30, "{id}");
        assert_eq!(
            community_id_v1(0, 6, ip("192.0.2.1"), 1, ip("2001:db8::1"), 2),
            None
        );
    }

    #[test]
    fn base64_rfc4648_vectors() {
        let v = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (i, o) in v {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn transport_numbers() {
        assert_eq!(transport_number("tcp"), Some(6));
        assert_eq!(transport_number("udp"), Some(17));
        assert_eq!(transport_number("icmp"), None);
    }
}
