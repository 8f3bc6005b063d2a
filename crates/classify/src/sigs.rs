//! The app signature schema: what an app looks like on the wire, as data.
//!
//! Built-in signatures ship as TOML under `config/apps.d/` (compiled into the
//! binaries as defaults); an admin adds or overrides apps with files in
//! `/etc/geofence/apps.d/` or `[[app]]` tables in the policy file, without a
//! rebuild. One file holds any number of `[[app]]` tables.
//!
//! ```toml
//! [[app]]
//! id = "zoom"
//! name = "Zoom"
//! domains = ["zoom.us", "zoom.com"]          # the domain and every subdomain
//! cidrs = ["170.114.0.0/16"]                 # vendor-operated ranges
//! asns = [30103]                             # vendor-operated ASNs
//! ports = [{ proto = "udp", ports = "8801-8810" }]
//! payload = ["zoom-sfu", "zoom-p2p"]         # built-in payload matchers
//! stun = { attributes = [0x0101, 0x0103] }
//! ```

use crate::app::{AppId, Category};
use serde::{Deserialize, Serialize};

/// One file of signatures: any number of `[[app]]` tables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    #[serde(default, rename = "app")]
    pub apps: Vec<AppDef>,
}

/// Everything known about how one app looks on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppDef {
    pub id: AppId,
    /// Human name for explanations ("Microsoft Teams").
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub category: Category,
    /// Registered domains: each matches itself and every subdomain. A leading
    /// `=` matches the exact name only (`=teams.live.com`).
    #[serde(default)]
    pub domains: Vec<String>,
    /// Vendor-operated IP ranges (CIDR). A match here names the app with
    /// method `ip-range`; only list ranges the vendor alone uses.
    #[serde(default)]
    pub cidrs: Vec<String>,
    /// Vendor-operated autonomous systems (method `asn`; needs an ASN database).
    #[serde(default)]
    pub asns: Vec<u32>,
    /// Ports the app uses. Alone they are the weakest hint (method `port`); they
    /// also narrow `cidrs` for static kernel sets when `media_ports_only` is set.
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    /// When true, `cidrs`/`asns` identify the app only on `ports`.
    #[serde(default)]
    pub ranges_need_ports: bool,
    /// STUN/TURN evidence.
    #[serde(default)]
    pub stun: StunSig,
    /// Names of built-in payload matchers (see `payload::MATCHERS`).
    #[serde(default)]
    pub payload: Vec<String>,
    /// Simple byte patterns at fixed offsets.
    #[serde(default)]
    pub patterns: Vec<BytePattern>,
}

/// Transport protocol of a port spec or pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
}

/// `{ proto = "udp", ports = "8801-8810" }` or `ports = "3478"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    pub proto: Transport,
    /// A port or an inclusive range `lo-hi`.
    pub ports: String,
}

impl PortSpec {
    /// The inclusive range, or None when `ports` is malformed.
    pub fn range(&self) -> Option<(u16, u16)> {
        let s = self.ports.trim();
        let (lo, hi) = match s.split_once('-') {
            Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
            None => {
                let p = s.parse().ok()?;
                (p, p)
            }
        };
        if lo <= hi && lo > 0 {
            Some((lo, hi))
        } else {
            None
        }
    }
}

/// STUN/TURN signals that name the app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StunSig {
    /// Attribute types whose presence names the app (e.g. 0x8055 for Teams).
    #[serde(default)]
    pub attributes: Vec<u16>,
    /// Message types whose presence names the app (e.g. 0x0800 for WhatsApp).
    #[serde(default)]
    pub message_types: Vec<u16>,
    /// Substrings of the REALM attribute (e.g. "google.com").
    #[serde(default)]
    pub realms: Vec<String>,
    /// Substrings of the SOFTWARE attribute.
    #[serde(default)]
    pub software: Vec<String>,
}

/// A byte pattern at a fixed payload offset: `{ proto = "udp", offset = 0,
/// hex = "1f0201", min_len = 36 }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BytePattern {
    pub proto: Transport,
    #[serde(default)]
    pub offset: usize,
    /// Bytes as hex, e.g. "1f0201".
    pub hex: String,
    #[serde(default)]
    pub min_len: usize,
    /// Exact payload length, when the pattern is only valid at one length.
    #[serde(default)]
    pub len: Option<usize>,
}

impl BytePattern {
    /// Decodes `hex`; None when it is not valid hex.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        let h: Vec<u8> = self
            .hex
            .bytes()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        if h.len() & 1 == 1 || h.is_empty() {
            return None;
        }
        h.chunks(2)
            .map(|p| {
                let s = std::str::from_utf8(p).ok()?;
                u8::from_str_radix(s, 16).ok()
            })
            .collect()
    }
}
