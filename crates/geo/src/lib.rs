//! # geofence-geo: the geo stage
//!
//! Sits between classification and policy in the pipeline: every flow's
//! destination address is looked up here and tagged with its location
//! country, registered (operator) country and ASN, read from one or more
//! MaxMind-format `.mmdb` databases. The same databases are enumerated into
//! merged [`IpRanges`] per country or ASN, which the nftables stage turns into
//! kernel interval sets.
//!
//! [`GeoDb`] opens and verifies the databases (corrupt or truncated files are
//! refused with an error naming the file), answers [`GeoDb::lookup`] without
//! decoding or allocating on the packet path, and enumerates
//! [`GeoDb::ranges_for_countries`] / [`GeoDb::ranges_for_asns`] consistently
//! with lookups. Non-public addresses ([`AddressScope`]) are never in any
//! jurisdiction, neither in lookups nor in range sets.
//!
//! Pure apart from reading database files at open time.

#![forbid(unsafe_code)]

mod db;
pub mod iso;
mod types;

pub use db::{DbMeta, GeoDb, GeoError, GeoField, Provides};
pub use types::{AddressScope, BadCidr, BadCountryCode, CountryCode, GeoInfo, IpRanges};
