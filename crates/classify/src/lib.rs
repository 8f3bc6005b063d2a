//! # geofence-classify: the classification stage
//!
//! Given the first packets of a flow (and every DNS answer that crosses the
//! gateway), decide which conferencing or calling app it belongs to, and
//! record the evidence. Pure: no I/O, no clocks (timestamps come in with the
//! packets), bounded memory.
//!
//! * [`app`]: app ids and recognition methods.
//! * [`sigs`]: the signature schema loaded from TOML.
//! * Parsers: [`dns`], [`tls`], [`quic`], [`stun`], [`payload`]: zero-copy,
//!   never panic on any input, fuzzed.
//! * [`reassembly`]: bounded stream reassembly whose memory follows the
//!   bytes received; flags conflicting overlaps.

#![forbid(unsafe_code)]

pub mod app;
pub mod dns;
pub mod payload;
pub mod quic;
pub mod reassembly;
pub mod sigdb;
pub mod sigs;
pub mod stun;
pub mod tls;

pub use app::{AppId, Category, Method, BUILTIN_APPS, CONFERENCING_GROUP};
pub use sigdb::{AppInfo, AppRef, SignatureDb};
