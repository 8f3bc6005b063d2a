//! # geofence-nft: the enforcement stage
//!
//! Last stage of the pipeline: the policy stage decides *what* to block
//! (client ranges × destination ranges × verdict, plus run-time blocks learnt
//! from DNS answers and detections); this crate turns that intent into the
//! nftables table `inet geofence` and keeps the kernel in step with it.
//!
//! * [`model`]: the intent ([`RulesetSpec`], [`RuleSpec`], [`DynElement`]).
//! * [`render`](mod@render): pure `RulesetSpec -> Ruleset` (sets, chains, typed rule
//!   statements); `Display` prints `nft -f` syntax (golden-tested).
//! * [`apply`]: [`Nft`], the netlink side through `nftnl`/`mnl`: one atomic
//!   transaction per apply (in-place update: static sets flushed and
//!   refilled, changed chains rewritten, dynamic sets left alone), sent with
//!   one `sendmsg`, per-message ack checking, read-back verification
//!   (tamper detection), dynamic timeout elements, per-rule counters.
//! * [`conntrack`]: [`kill_conntrack`] to cut flows that are already
//!   established when a block is added; [`ensure_conntrack_acct`] for
//!   `ct original packets`.
//!
//! Helper binaries (tests and docs, not shipped with the daemon):
//! `gf-nft-apply` drives all of the above from JSON spec files inside a
//! network namespace, `gf-nft-probe` makes and counts TCP/UDP test traffic.
//!
//! Only the private `ffi` module contains `unsafe` code (raw libnftnl calls
//! the safe `nftnl` API lacks); see its module documentation.

#![deny(unsafe_code)]

pub mod apply;
pub mod conntrack;
#[allow(unsafe_code)]
mod ffi;
pub mod model;
pub mod render;

pub use apply::{ApplyReport, Nft, NftError, RuleCounter, VerifyReport};
pub use conntrack::{ensure_conntrack_acct, kill_conntrack, kill_conntrack_to};
pub use model::{
    DynElement, Hook, NflogSpec, RuleSpec, RulesetSpec, Transport, Verdict, DEFAULT_PRIORITY,
};
pub use render::{render, Ruleset};
