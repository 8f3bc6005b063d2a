//! The policy file schema (TOML), as plain deserialized data.
//!
//! Every table uses `deny_unknown_fields`; the semantic checks (unknown
//! jurisdictions and apps, shadowed rules, CIDRs, ...) run in
//! [`crate::Policy::compile`], which [`crate::load_str`] and
//! [`crate::load_file`] call before returning.

use crate::error::SourceText;
use geofence_classify::sigs::AppDef;
use geofence_classify::AppId;
use geofence_geo::CountryCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// A whole policy file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub daemon: DaemonConfig,
    #[serde(default)]
    pub alerts: AlertsConfig,
    pub geoip: GeoipConfig,
    #[serde(default)]
    pub signatures: SignaturesConfig,
    #[serde(default)]
    pub decode: DecodeConfig,
    /// Named sets of countries: `prc = ["CN"]`.
    #[serde(default)]
    pub jurisdictions: BTreeMap<String, Vec<CountryCode>>,
    /// `[[rule]]` tables, in file order (first match wins).
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleConfig>,
    #[serde(default)]
    pub default: DefaultConfig,
    /// `[dns_gate]`: the optional DNS gate (off by default).
    #[serde(default)]
    pub dns_gate: crate::dns_gate::DnsGateConfig,
    /// `[inspection]`: what a flow whose handshake stays undecidable gets.
    #[serde(default)]
    pub inspection: InspectionConfig,
    /// `[[app]]` tables: user-defined apps (same schema as `apps.d` files).
    #[serde(default, rename = "app")]
    pub apps: Vec<AppDef>,
    /// Apps read from the `[signatures] dirs` by [`crate::load_file`]
    /// (already validated there); empty after [`crate::load_str`].
    #[serde(skip)]
    pub signature_apps: Vec<AppDef>,
    /// The text this config was parsed from, for error positions.
    #[serde(skip)]
    pub source: Option<Arc<SourceText>>,
}

/// `[daemon]`: how the daemon captures and enforces.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    #[serde(default)]
    pub mode: Mode,
    /// false = monitor only: decisions and alerts, no kernel rules.
    #[serde(default = "default_true")]
    pub enforce: bool,
    #[serde(default)]
    pub capture: CaptureKind,
    /// AF_PACKET capture interfaces; empty = all. Only with `capture = "afpacket"`.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// NFLOG group the kernel rule logs the first packets of each flow to.
    #[serde(default = "default_nflog_group")]
    pub nflog_group: u16,
    #[serde(default = "default_alert_log")]
    pub alert_log: PathBuf,
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Unix socket (mode 0600) on which the daemon takes `reload` requests
    /// and answers with the result (`geofencectl reload`).
    #[serde(default = "default_control_socket")]
    pub control_socket: PathBuf,
    /// Addresses learnt from DNS answers are kept at least this long.
    #[serde(default = "default_dns_ttl_floor")]
    pub dns_ttl_floor_secs: u32,
    /// Addresses learnt from DNS answers are kept at most this long,
    /// whatever TTL the answer carried.
    #[serde(default = "default_dns_ttl_cap")]
    pub dns_ttl_cap_secs: u32,
    /// Lifetime of a dynamically added kernel set element after it was last
    /// refreshed.
    #[serde(default = "default_dynamic_timeout")]
    pub dynamic_timeout_secs: u32,
}

fn default_true() -> bool {
    true
}
fn default_nflog_group() -> u16 {
    7
}
fn default_alert_log() -> PathBuf {
    PathBuf::from("/var/log/geofence/alerts.jsonl")
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/geofence")
}
fn default_control_socket() -> PathBuf {
    PathBuf::from("/run/geofence/control.sock")
}
fn default_dns_ttl_floor() -> u32 {
    300
}
fn default_dns_ttl_cap() -> u32 {
    86_400
}
fn default_dynamic_timeout() -> u32 {
    3600
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            mode: Mode::default(),
            enforce: true,
            capture: CaptureKind::default(),
            interfaces: Vec::new(),
            nflog_group: default_nflog_group(),
            alert_log: default_alert_log(),
            state_dir: default_state_dir(),
            control_socket: default_control_socket(),
            dns_ttl_floor_secs: default_dns_ttl_floor(),
            dns_ttl_cap_secs: default_dns_ttl_cap(),
            dynamic_timeout_secs: default_dynamic_timeout(),
        }
    }
}

/// `[alerts]`: what every alert line says about where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Gateway name written as `host` on every line; `None` = the
    /// machine's host name at daemon start.
    #[serde(default)]
    pub host: Option<String>,
    /// Seed of the Community ID hash (0 unless every sensor of the SIEM
    /// uses another one).
    #[serde(default)]
    pub community_id_seed: u16,
}

/// `[daemon] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Filter traffic forwarded through this machine (router, firewall).
    #[default]
    Gateway,
    /// Filter this machine's own traffic.
    Host,
}

/// `[daemon] capture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureKind {
    /// The kernel copies the first packets of each flow to an NFLOG group.
    #[default]
    Nflog,
    /// Raw AF_PACKET sockets on `interfaces`.
    Afpacket,
}

/// The database the setup script installs (free ip-location-db, CC0).
pub const FREE_GEOIP_DATABASE: &str = "/var/lib/geofence/geoip/geo-whois-asn-country.mmdb";

/// `[geoip]`: which MaxMind-format databases to read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoipConfig {
    /// One or more `.mmdb` files (country and ASN databases), asked in order.
    /// Relative paths are relative to the policy file's directory.
    pub databases: Vec<PathBuf>,
    /// Warn (and alert) when a database is older than this; 0 disables.
    #[serde(default = "default_max_age")]
    pub max_age_days: u32,
}

/// Half a year: the free database's newest release is often months old
/// (167 days when checked), so a tighter default would warn at every start
/// of a fresh install. MaxMind databases, rebuilt twice a week, can use 30.
fn default_max_age() -> u32 {
    180
}

impl Default for GeoipConfig {
    fn default() -> Self {
        GeoipConfig {
            databases: vec![PathBuf::from(FREE_GEOIP_DATABASE)],
            max_age_days: default_max_age(),
        }
    }
}

/// Default directory of admin-supplied app signature files.
pub const DEFAULT_SIGNATURE_DIR: &str = "/etc/geofence/apps.d";

/// `[signatures]`: where extra `[[app]]` files live.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignaturesConfig {
    /// Directories whose `*.toml` files hold `[[app]]` tables. A missing
    /// directory is skipped; relative paths are relative to the policy file.
    #[serde(default = "default_sig_dirs")]
    pub dirs: Vec<PathBuf>,
}

fn default_sig_dirs() -> Vec<PathBuf> {
    vec![PathBuf::from(DEFAULT_SIGNATURE_DIR)]
}

impl Default for SignaturesConfig {
    fn default() -> Self {
        SignaturesConfig {
            dirs: default_sig_dirs(),
        }
    }
}

/// `[decode]`: what the packet decoder may open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeConfig {
    /// Network-layer tunnels whose inner packets are decoded, classified and
    /// reported. Empty by default: a tunnel is recognised by a port or protocol
    /// number anyone can send, and its inner addresses are unverified, so none
    /// is opened unless listed. Link-level PPP, PPPoE and MPLS are always
    /// decoded and are not listed here.
    #[serde(default)]
    pub tunnels: Vec<TunnelName>,
}

/// A tunnel in `[decode] tunnels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelName {
    /// GTPv1-U on UDP port 2152.
    Gtpu,
    /// GRE (IP protocol 47), including PPTP's enhanced GRE.
    Gre,
    /// IPv4/IPv6 in IPv4/IPv6 (IP protocols 4 and 41).
    Ipip,
    /// VXLAN on UDP port 4789.
    Vxlan,
    /// Geneve on UDP port 6081.
    Geneve,
}

impl TunnelName {
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelName::Gtpu => "gtpu",
            TunnelName::Gre => "gre",
            TunnelName::Ipip => "ipip",
            TunnelName::Vxlan => "vxlan",
            TunnelName::Geneve => "geneve",
        }
    }
}

/// One `[[rule]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique; letters, digits, `-` and `_`, at most 48 characters.
    pub name: String,
    /// Free text shown by `geofencectl explain`.
    #[serde(default)]
    pub description: Option<String>,
    /// Source scoping: the rule applies only to flows from these CIDRs.
    #[serde(default)]
    pub from: Option<Vec<String>>,
    /// App ids or the group `conferencing`; absent = all traffic, including
    /// flows no app was recognised for.
    #[serde(default)]
    pub apps: Option<Vec<AppId>>,
    /// Jurisdiction names, ISO country codes, `unknown` or `any`.
    pub to: Vec<String>,
    /// Destinations the rule does not apply to: addresses, CIDRs, host
    /// names (with their subdomains).
    #[serde(default)]
    pub except: Option<Vec<String>>,
    #[serde(default)]
    pub by: By,
    pub action: Action,
    /// Only for `action = "block"`; default `reject`.
    #[serde(default)]
    pub verdict: Option<Verdict>,
}

/// `[inspection]`: what happens to a flow that started a TLS or QUIC
/// handshake and never let its server name be read (split into pieces past
/// what the kernel hands over, conflicting overlapping copies, a
/// reassembly that ran out of its memory share).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectionConfig {
    /// `block`, `alert` or `allow`; applies only to destinations that some
    /// app rule blocks (see docs/policy.md). Default `block`.
    #[serde(default = "default_undecidable")]
    pub undecidable: Action,
}

fn default_undecidable() -> Action {
    Action::Block
}

impl Default for InspectionConfig {
    fn default() -> Self {
        InspectionConfig {
            undecidable: default_undecidable(),
        }
    }
}

/// `[default]`: what happens to public destinations no rule matched.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultConfig {
    #[serde(default = "default_action")]
    pub action: Action,
    /// Only for `action = "block"`; default `reject`.
    #[serde(default)]
    pub verdict: Option<Verdict>,
}

fn default_action() -> Action {
    Action::Allow
}

impl Default for DefaultConfig {
    fn default() -> Self {
        DefaultConfig {
            action: Action::Allow,
            verdict: None,
        }
    }
}

/// What happens to a matching flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Stop the flow (kernel rule when enforcing) and emit an alert.
    Block,
    /// Let the flow pass but emit an alert.
    Alert,
    /// Let the flow pass silently.
    Allow,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Block => "block",
            Action::Alert => "alert",
            Action::Allow => "allow",
        }
    }

    /// True for `block` and `alert`.
    pub fn emits_alert(self) -> bool {
        matches!(self, Action::Block | Action::Alert)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which country of a destination a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    /// Where the server is (`GeoInfo.country`).
    #[default]
    Location,
    /// Where the network's operator is registered (`GeoInfo.registered_country`).
    Operator,
    /// Either of the two.
    Either,
}

impl By {
    pub fn as_str(self) -> &'static str {
        match self {
            By::Location => "location",
            By::Operator => "operator",
            By::Either => "either",
        }
    }
}

impl fmt::Display for By {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a blocked flow is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Send TCP RST / ICMP unreachable so the user gets an immediate error.
    #[default]
    Reject,
    /// Silently discard packets (the app times out).
    Drop,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Reject => "reject",
            Verdict::Drop => "drop",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
