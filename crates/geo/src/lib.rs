//! # geofence-geo: the geo stage
//!
//! Sits between classification and policy in the pipeline: every flow's
//! destination address is looked up here and tagged with its location
//! country, registered (operator) country and ASN, read from one or more
//! MaxMind-format `.mmdb` databases. The same databases are enumerated into
//! merged [`IpRanges`] per country or ASN, which the nftables stage turns into
//! kernel interval sets.
//!
//! Pure apart from reading database files at open time.

#![forbid(unsafe_code)]

mod db;
pub mod iso;
mod types;

pub use db::{DbMeta, GeoDb, GeoError, GeoField, Provides};
pub use types::{AddressScope, BadCidr, BadCountryCode, CountryCode, GeoInfo, IpRanges};
