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
