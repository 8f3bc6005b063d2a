//! # geofence-testkit: test support for every stage
//!
//! Not part of the packet pipeline: helpers that tests across the workspace
//! use to build their own fixtures instead of shipping binary files.
//!
//! - [`encap`]: PPP, PPPoE, MPLS, GRE/PPTP, IP-in-IP, GTP-U, VXLAN and Geneve
//!   headers around built packets.
//! - [`mmdb`]: a small, spec-following MaxMind DB writer (GeoIP2 Country,
//!   GeoLite2 ASN and ip-location-db schemas) for the geo stage's tests.
//! - [`netns`]: client/gateway/server network namespaces for real-kernel tests.
//! - [`pcap`]: a classic pcap writer and Ethernet/IPv4/IPv6 TCP/UDP frame builders.
//! - [`wire`]: protocol messages (TLS ClientHello with SNI, DNS queries and
//!   answers, Zoom SFU media) for tests, probes and benchmarks.

#![forbid(unsafe_code)]

pub mod encap;
pub mod mmdb;
pub mod netns;
pub mod pcap;
pub mod wire;

pub use mmdb::{geoip2_country, geolite2_asn, ip_location_db_country, MmdbBuilder};

/// Reports that a test cannot run here (not root, no `../shared`, a missing
/// tool) and lets the caller return. A developer sees a `skipping:` line;
/// with `GEOFENCE_REQUIRE_FIXTURES=1` (set by CI, where everything a test
/// needs is installed) it fails the test instead, so a skip never passes
/// silently there.
pub fn skip(reason: impl std::fmt::Display) {
    if fixtures_required(std::env::var_os("GEOFENCE_REQUIRE_FIXTURES").as_deref()) {
        panic!("GEOFENCE_REQUIRE_FIXTURES=1, but this test cannot run: {reason}");
    }
    println!("skipping: {reason}");
}

fn fixtures_required(v: Option<&std::ffi::OsStr>) -> bool {
    v.is_some_and(|v| v == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_value_1_turns_a_skip_into_a_failure() {
        assert!(fixtures_required(Some("1".as_ref())));
        for v in [None, Some("0"), Some(""), Some("yes")] {
            assert!(!fixtures_required(v.map(AsRef::as_ref)), "{v:?}");
        }
    }
}
