//! The enforcement intent, as the policy stage hands it over: which clients,
//! which destinations, which verdict. No I/O here.

use geofence_geo::IpRanges;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// Where the geofence sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hook {
    /// Gateway mode: the box routes client traffic (`hook forward`).
    Forward,
    /// Host mode: the box's own traffic (`hook output`, plus an `input`
    /// chain that only logs DNS answers, which never pass `output`).
    Output,
}

/// What a matching packet gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Silently dropped: the client times out.
    Drop,
    /// TCP gets a reset, everything else ICMP(v6) administratively prohibited:
    /// the client fails fast.
    Reject,
    /// An exception: matching traffic leaves this table's chain, so no later
    /// rule of ours stops it (other tables' chains still see it). Used for
    /// an allow or alert rule scoped by `from` ahead of block rules.
    Accept,
}

/// Transport protocol of a static port match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    pub fn proto_number(self) -> u8 {
        match self {
            Transport::Tcp => 6,
            Transport::Udp => 17,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// Passive packet capture for the classifier through NFLOG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NflogSpec {
    /// NFLOG group the capture stage binds to.
    pub group: u16,
    /// Log the first packets of every flow in the original direction:
    /// `ct original packets < first_packets` (needs `nf_conntrack_acct=1`).
    pub first_packets: u32,
    /// Bytes copied per packet for the first packets.
    pub snaplen: u32,
    /// Also log DNS (port 53) with [`DNS_SNAPLEN`] bytes: answers only as
    /// the reply direction of a tracked flow (an answer nobody asked for
    /// starts a new conntrack entry and is never logged as an answer), the
    /// first `first_packets` of each flow in full, and queries and answers
    /// beyond them at most `dns_rate_per_sec` a second (per rule, all flows
    /// together), so a flood cannot turn every packet into a log message.
    pub dns_answers: bool,
    /// See `dns_answers`; 0 = nothing beyond the first packets.
    #[serde(default = "default_dns_rate")]
    pub dns_rate_per_sec: u32,
}

fn default_dns_rate() -> u32 {
    DNS_RATE_PER_SEC
}

/// Snap length used for DNS answers (a full Ethernet-MTU packet).
pub const DNS_SNAPLEN: u32 = 1500;

/// DNS messages per second logged beyond each flow's first packets (a
/// client socket that sends many queries), per rule.
pub const DNS_RATE_PER_SEC: u32 = 2000;

/// Elements each dynamic set holds at most (`size` in the kernel). The
/// daemon keeps fewer than this ([`DYN_DAEMON_CAP`]), so an add never fails
/// for lack of room.
pub const DYN_SET_SIZE: u32 = 65_536;

/// Dynamic elements the daemon keeps per set; the difference to
/// [`DYN_SET_SIZE`] leaves room for elements it evicted while the kernel
/// still holds them.
pub const DYN_DAEMON_CAP: usize = 60_000;

/// The whole enforcement intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesetSpec {
    /// Table name, family is always `inet` (e.g. `geofence`).
    pub table: String,
    pub hook: Hook,
    /// Base chain priority. [`DEFAULT_PRIORITY`] is `filter - 5`.
    pub priority: i32,
    /// `false` = monitor only: sets and capture rules are installed, no
    /// rule ever drops or rejects.
    pub enforce: bool,
    pub nflog: Option<NflogSpec>,
    pub rules: Vec<RuleSpec>,
    /// The DNS gate's redirect (gateway mode only): clients' DNS goes to
    /// the daemon's own resolver. `None` = no redirect.
    pub dns_redirect: Option<DnsRedirect>,
}

/// Where clients' DNS (UDP and TCP port 53, to any address) is sent: a
/// `nat` chain on `prerouting` (priority `dstnat`) rewrites the destination
/// to the gate's address of the packet's family. When enforcing, port-53
/// traffic that is still forwarded (a family without a gate address) is
/// rejected, so no client resolves around the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRedirect {
    pub v4: Option<std::net::SocketAddrV4>,
    pub v6: Option<std::net::SocketAddrV6>,
}

/// Name of the DNS gate's nat chain.
pub const DNS_GATE_CHAIN: &str = "dns_gate";
/// Name of the DNS gate's filter chain (rejects forwarded DNS).
pub const DNS_GATE_FORWARD_CHAIN: &str = "dns_gate_forward";
/// `dstnat`: where destination NAT runs on `prerouting`.
pub const DSTNAT_PRIORITY: i32 = -100;

/// `filter - 5`: our chain runs before the host's own `filter`-priority
/// chains (firewalld, ufw, docker's nft rules, hand-written `inet filter`),
/// so NFLOG sees the first packets of a flow even if a later host chain drops
/// them, and our drop is final whatever those chains accept (an accept in one
/// base chain does not stop later base chains, a drop does). It stays after
/// `mangle` (-150) and `dstnat` (-100), so we match the real, post-DNAT
/// destination.
pub const DEFAULT_PRIORITY: i32 = -5;

/// One policy rule that blocks something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    /// Position in the policy; names the sets (`r{index}_...`). Must be unique.
    pub index: usize,
    /// Human-readable rule name, shown in counters and rule comments.
    pub name: String,
    pub verdict: Verdict,
    /// Client addresses the rule applies to; `None` = any client.
    pub src: Option<IpRanges>,
    /// Destinations blocked before any packet is seen; `None` = no static layer.
    pub static_dst: Option<IpRanges>,
    /// If non-empty, the static layer also requires `l4proto` + `dport` in
    /// one of these inclusive port ranges.
    pub static_ports: Vec<(Transport, u16, u16)>,
    /// Has dynamic (timeout) sets filled at run time from DNS answers and
    /// detections.
    pub dynamic: bool,
}

/// One run-time block: client `src` (or every client) to server `dst`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DynElement {
    pub rule_index: usize,
    /// `Some` = only this client (`r{i}_dyn_v4/_v6`, keyed `saddr . daddr`);
    /// `None` = every client (`r{i}_dst_dyn_v4/_v6`, keyed `daddr`).
    pub src: Option<IpAddr>,
    pub dst: IpAddr,
    /// Lifetime when adding; remaining lifetime when listed.
    pub timeout: Duration,
}

impl DynElement {
    /// Name of the set this element lives in, or `None` when `src` and `dst`
    /// are of different families.
    pub fn set_name(&self) -> Option<String> {
        let i = self.rule_index;
        match (self.src, self.dst) {
            (None, IpAddr::V4(_)) => Some(format!("r{i}_dst_dyn_v4")),
            (None, IpAddr::V6(_)) => Some(format!("r{i}_dst_dyn_v6")),
            (Some(IpAddr::V4(_)), IpAddr::V4(_)) => Some(format!("r{i}_dyn_v4")),
            (Some(IpAddr::V6(_)), IpAddr::V6(_)) => Some(format!("r{i}_dyn_v6")),
            _ => None,
        }
    }

    /// The set key bytes (network order, concatenations padded to 32 bits).
    pub fn key(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(32);
        if let Some(s) = self.src {
            push_ip(&mut k, s);
        }
        push_ip(&mut k, self.dst);
        k
    }
}

fn push_ip(k: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => k.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => k.extend_from_slice(&a.octets()),
    }
}
