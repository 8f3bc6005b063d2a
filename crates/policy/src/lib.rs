//! # geofence-policy: the policy stage
//!
//! Sits after classification (which app is this flow?) and the geo stage
//! (where is its destination, and who operates it?), and before
//! enforcement: given a flow's source, destination, app and [`GeoInfo`],
//! [`Policy::decide`] says `block`, `alert` or `allow`, and why.
//!
//! * The policy language is TOML ([`Config`]): `[daemon]`, `[geoip]`,
//!   `[signatures]`, `[decode]` (which tunnels are opened), `[jurisdictions]` (named country sets), ordered
//!   `[[rule]]`s (first match wins), `[default]`, and user-defined
//!   `[[app]]`s in the classifier's signature schema. `docs/policy.md`
//!   documents every key.
//! * [`load_file`] / [`load_str`] parse strictly (`deny_unknown_fields`
//!   everywhere) and validate everything, including unknown jurisdictions
//!   and apps, bad CIDRs, ports and hex patterns, duplicate names and rules
//!   shadowed by an earlier rule. Every error is a [`ConfigError`] naming
//!   `FILE:LINE:COL`, rendered with the source line and a caret.
//! * [`Policy`] is the compiled, immutable form: pure, no I/O, cheap to
//!   query from many threads. [`Policy::rules`] exposes the compiled rules
//!   (countries per `by`, app lists, source ranges) for the nftables
//!   renderer; [`Policy::explain`] traces every rule for `geofencectl explain`.
//!
//! ```
//! use geofence_geo::{AddressScope, GeoInfo};
//! use geofence_classify::AppId;
//! let cfg = geofence_policy::load_str("example.toml", r#"
//!     [geoip]
//!     databases = ["/var/lib/geofence/geoip/geo-whois-asn-country.mmdb"]
//!     [jurisdictions]
//!     prc = ["CN"]
//!     [[rule]]
//!     name = "no-conferencing-to-prc"
//!     apps = ["conferencing"]
//!     to = ["prc"]
//!     action = "block"
//! "#).expect("valid");
//! let policy = geofence_policy::Policy::from_config(&cfg).expect("compiles");
//! let mut geo = GeoInfo::unknown(AddressScope::Public);
//! geo.country = "CN".parse().ok();
//! let zoom = AppId::new("zoom").expect("id");
//! let d = policy.decide(&geofence_policy::Query {
//!     src: "10.0.0.5".parse().expect("ip"),
//!     dst: "203.0.113.9".parse().expect("ip"),
//!     app: Some(&zoom),
//!     geo: &geo,
//!     host: None,
//! });
//! assert_eq!(d.action, geofence_policy::Action::Block);
//! assert_eq!(d.jurisdiction.as_deref(), Some("prc"));
//! ```
//!
//! [`GeoInfo`]: geofence_geo::GeoInfo

#![forbid(unsafe_code)]

mod config;
mod dns_gate;
mod error;
mod except;
mod explain;
mod load;
mod policy;
mod validate;

pub use config::{
    Action, AlertsConfig, By, CaptureKind, Config, DaemonConfig, DecodeConfig, DefaultConfig,
    GeoipConfig, InspectionConfig, Mode, RuleConfig, SignaturesConfig, TunnelName, Verdict,
    DEFAULT_SIGNATURE_DIR, FREE_GEOIP_DATABASE,
};
pub use dns_gate::{DnsGateConfig, GateFailure};
pub use error::{ConfigError, SourceText};
pub use except::Except;
pub use explain::{Explanation, Miss, RuleTrace};
pub use load::{load_file, load_str, read_signature_dirs};
pub use policy::{
    is_rule_name, Basis, CompiledRule, DecidedBy, Decision, DestMatch, Policy, Query, RuleRef,
    Target,
};
pub use validate::{is_gateway_name, is_jurisdiction_name, RESERVED_NAMES};
