//! Alert stage of the Geofence pipeline: capture -> decode -> classify -> geo
//! -> policy -> **enforce + alert**.
//!
//! Every decision the engine makes (and every notable daemon, policy,
//! database or tamper event) becomes one [`Alert`]: a flat JSON object on one
//! line, in the spirit of Suricata EVE and the Elastic Common Schema, with
//! stable field names, RFC 3339 UTC timestamps with microseconds and a
//! `reason` sentence a person can read. [`AlertLog`] appends them to a file
//! that admins `tail -f` and SIEM shippers ingest; it never fails and never
//! panics, buffers in memory while the disk is full or broken, and follows
//! logrotate by reopening on request or when the path's inode changes.
//! [`spawn_writer`] puts it behind a bounded channel on its own thread, so the
//! enforcement path only ever does a non-blocking send. [`AlertThrottle`]
//! turns a client's endless retries into one line plus a `repeats` summary.
//!
//! Field reference, examples and the ECS mapping: `docs/alerts.md`.

#![forbid(unsafe_code)]

mod alert;
mod community_id;
mod log;
mod throttle;
mod time;
mod writer;

pub use alert::{Alert, EventKind};
pub use community_id::{community_id_v1, transport_number};
pub use log::{AlertError, AlertLog, AlertLogOptions, AlertStats};
pub use throttle::{AlertThrottle, ThrottleStats};
pub use time::{now_rfc3339, rfc3339_from_unix, rfc3339_micros};
pub use writer::{spawn_writer, spawn_writer_throttled, AlertSender, AlertWriter};
