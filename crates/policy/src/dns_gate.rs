//! `[dns_gate]`: the optional forwarding resolver inside the daemon that
//! holds each DNS answer until the blocks it implies are in the kernel (see
//! the `geofence-dnsgate` crate and docs/operations.md). Off by default.

use crate::config::{Config, Mode};
use crate::error::{tpath, Invalid, Loc};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// What DNS does while the daemon is not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GateFailure {
    /// The redirect stays in the kernel: nothing resolves until the daemon
    /// is back (no answer can outrun a block).
    #[default]
    Closed,
    /// The redirect is removed when the daemon stops (also after a crash,
    /// by the unit's `ExecStopPost`): clients reach their resolvers
    /// directly; blocks already in the kernel keep holding.
    Open,
}

impl GateFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            GateFailure::Closed => "closed",
            GateFailure::Open => "open",
        }
    }
}

/// `[dns_gate]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsGateConfig {
    #[serde(default)]
    pub enabled: bool,
    /// Client-facing addresses the gate answers on (UDP and TCP), e.g.
    /// `["192.0.2.1:53"]`. One per address family at most is the redirect
    /// target.
    #[serde(default)]
    pub listen: Vec<SocketAddr>,
    /// Upstream resolvers, in order of preference (e.g. a resolver on the
    /// gateway itself, `127.0.0.1:53`, or the ISP's).
    #[serde(default)]
    pub upstreams: Vec<SocketAddr>,
    /// Redirect clients' DNS (UDP and TCP 53 to any address) to the gate.
    #[serde(default = "default_true")]
    pub redirect: bool,
    /// What DNS does while the daemon is down.
    #[serde(default)]
    pub on_failure: GateFailure,
    #[serde(default = "default_attempt_timeout")]
    pub attempt_timeout_ms: u32,
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Longest wait for the kernel to confirm an answer's blocks.
    #[serde(default = "default_hold_timeout")]
    pub hold_timeout_ms: u32,
    #[serde(default = "default_inflight")]
    pub max_inflight: u32,
    /// Queries per second per client; 0 = unlimited.
    #[serde(default = "default_rate")]
    pub client_rate: u32,
    #[serde(default = "default_burst")]
    pub client_burst: u32,
    #[serde(default = "default_tcp_clients")]
    pub max_tcp_clients: u32,
    #[serde(default = "default_udp_size")]
    pub max_udp_size: u16,
}

fn default_true() -> bool {
    true
}
fn default_attempt_timeout() -> u32 {
    1500
}
fn default_attempts() -> u32 {
    3
}
fn default_hold_timeout() -> u32 {
    2000
}
fn default_inflight() -> u32 {
    4096
}
fn default_rate() -> u32 {
    200
}
fn default_burst() -> u32 {
    400
}
fn default_tcp_clients() -> u32 {
    256
}
fn default_udp_size() -> u16 {
    1232
}

impl Default for DnsGateConfig {
    fn default() -> Self {
        DnsGateConfig {
            enabled: false,
            listen: Vec::new(),
            upstreams: Vec::new(),
            redirect: true,
            on_failure: GateFailure::Closed,
            attempt_timeout_ms: default_attempt_timeout(),
            attempts: default_attempts(),
            hold_timeout_ms: default_hold_timeout(),
            max_inflight: default_inflight(),
            client_rate: default_rate(),
            client_burst: default_burst(),
            max_tcp_clients: default_tcp_clients(),
            max_udp_size: default_udp_size(),
        }
    }
}

pub(crate) fn validate(config: &Config) -> Result<(), Invalid> {
    let g = &config.dns_gate;
    if !g.enabled {
        return Ok(());
    }
    let at = |key: &'static str| Loc::value(tpath!["dns_gate", key]);
    if config.daemon.mode != Mode::Gateway {
        return Err(Invalid::new(
            Loc::value(tpath!["dns_gate", "enabled"]),
            "the DNS gate needs `[daemon] mode = \"gateway\"` (it redirects forwarded client DNS)",
        ));
    }
    // A missing key has no position: point at `enabled`.
    if g.listen.is_empty() {
        return Err(Invalid::new(
            at("enabled"),
            "`listen` needs at least one client-facing address, e.g. [\"192.0.2.1:53\"]",
        ));
    }
    for (i, a) in g.listen.iter().enumerate() {
        if a.ip().is_unspecified() || a.port() == 0 {
            return Err(Invalid::new(
                Loc::value(tpath!["dns_gate", "listen", i]),
                format!(
                    "`{a}`: the gate needs a concrete address and port (the redirect points at it)"
                ),
            ));
        }
    }
    let fams = |v4: bool| g.listen.iter().filter(|a| a.is_ipv4() == v4).count();
    if fams(true) > 1 || fams(false) > 1 {
        return Err(Invalid::new(
            at("listen"),
            "`listen` takes at most one IPv4 and one IPv6 address (each is its family's redirect target)",
        ));
    }
    if g.upstreams.is_empty() {
        return Err(Invalid::new(
            at("enabled"),
            "`upstreams` needs at least one resolver, e.g. [\"127.0.0.1:53\"]",
        ));
    }
    for (i, u) in g.upstreams.iter().enumerate() {
        if g.listen.contains(u) || u.ip().is_unspecified() || u.port() == 0 {
            return Err(Invalid::new(
                Loc::value(tpath!["dns_gate", "upstreams", i]),
                format!(
                    "`{u}` cannot be an upstream (it is the gate itself or not a concrete address)"
                ),
            ));
        }
    }
    let positive = [
        ("attempt_timeout_ms", g.attempt_timeout_ms),
        ("attempts", g.attempts),
        ("hold_timeout_ms", g.hold_timeout_ms),
        ("max_inflight", g.max_inflight),
        ("max_tcp_clients", g.max_tcp_clients),
    ];
    for (key, v) in positive {
        if v == 0 {
            return Err(Invalid::new(at(key), format!("`{key}` must be at least 1")));
        }
    }
    if g.attempts > 10 {
        return Err(Invalid::new(at("attempts"), "`attempts` is at most 10"));
    }
    if g.max_inflight > 1_000_000 {
        return Err(Invalid::new(
            at("max_inflight"),
            "`max_inflight` is at most 1000000",
        ));
    }
    if g.max_udp_size < 512 {
        return Err(Invalid::new(
            at("max_udp_size"),
            "`max_udp_size` is at least 512",
        ));
    }
    if g.client_rate > 0 && g.client_burst < 1 {
        return Err(Invalid::new(
            at("client_burst"),
            "`client_burst` must be at least 1",
        ));
    }
    Ok(())
}
