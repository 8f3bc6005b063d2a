//! The bidirectional flow table: 5-tuple keyed, initiator detection, idle
//! timeouts per protocol, and a hard capacity with eviction so memory stays
//! bounded under a flood of new flows.

use geofence_decode::{Packet, Proto, Tunnel, TunnelKind};
use rustc_hash::FxHashMap;
use std::net::IpAddr;

use crate::inspect::FlowInspect;

/// Normalised 5-tuple: the lower endpoint first, so both directions of a
/// flow find the same entry. A flow inside a tunnel is also keyed by the
/// tunnel and its outer endpoints, so a packet forged inside one tunnel never
/// lands in a flow of another tunnel or in an untunnelled flow with the same
/// inner 5-tuple.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FlowKey {
    pub proto: Proto,
    pub lo: (IpAddr, u16),
    pub hi: (IpAddr, u16),
    pub tunnel: Option<TunnelKey>,
}

/// The tunnel part of a [`FlowKey`]: kind and outer endpoints, normalised.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TunnelKey {
    pub kind: TunnelKind,
    pub lo: IpAddr,
    pub hi: IpAddr,
}

impl TunnelKey {
    fn of(t: &Tunnel) -> TunnelKey {
        let (lo, hi) = if t.outer_src <= t.outer_dst {
            (t.outer_src, t.outer_dst)
        } else {
            (t.outer_dst, t.outer_src)
        };
        TunnelKey {
            kind: t.kind,
            lo,
            hi,
        }
    }
}

impl FlowKey {
    pub fn of(p: &Packet<'_>) -> FlowKey {
        let a = (p.src, p.sport);
        let b = (p.dst, p.dport);
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        FlowKey {
            proto: p.proto,
            lo,
            hi,
            tunnel: p.tunnel.as_ref().map(TunnelKey::of),
        }
    }
}

/// Direction of a packet relative to the flow's initiator.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dir {
    /// Initiator (client) to responder (server).
    Orig,
    /// Responder to initiator.
    Reply,
}

/// One tracked flow.
#[derive(Debug)]
pub struct Flow {
    pub proto: Proto,
    pub client: (IpAddr, u16),
    pub server: (IpAddr, u16),
    pub first_ns: u64,
    pub last_ns: u64,
    pub packets: u64,
    pub bytes: u64,
    pub packets_orig: u32,
    pub packets_reply: u32,
    /// Inspection state; `None` once inspection is over (decided or budget spent).
    pub inspect: Option<Box<FlowInspect>>,
    pub label: Option<crate::Label>,
    /// A server name seen without an app match (reports only).
    pub host: Option<Box<str>>,
    /// Set when the flow's decision has been reported (so it is reported once).
    pub reported: bool,
    /// True when the flow saw a TCP FIN or RST (shorter idle timeout).
    pub closing: bool,
    /// A DNS flow: its server uses a DNS port and it carries well-formed
    /// DNS (queries recorded, answers checked, never labelled).
    pub dns: bool,
    /// The tunnel the flow was carried in, oriented like `client` -> `server`
    /// (`outer_src` is the client side's outer address).
    pub tunnel: Option<Tunnel>,
}

impl Flow {
    pub fn dir_of(&self, p: &Packet<'_>) -> Dir {
        if (p.src, p.sport) == self.client && (p.dst, p.dport) == self.server {
            Dir::Orig
        } else {
            Dir::Reply
        }
    }

    /// Whether inspection of this flow is over.
    pub fn inspection_done(&self) -> bool {
        self.inspect.is_none()
    }
}

/// Ports below this are taken as server ports when the initiator is not
/// visible (mid-stream capture).
const WELL_KNOWN_LIMIT: u16 = 1024;

/// Decides which side started the flow from its first seen packet.
pub fn initiator(p: &Packet<'_>) -> ((IpAddr, u16), (IpAddr, u16)) {
    let fwd = ((p.src, p.sport), (p.dst, p.dport));
    let rev = ((p.dst, p.dport), (p.src, p.sport));
    if let Some(t) = p.tcp {
        if t.syn && !t.ack_flag {
            return fwd;
        }
        if t.syn && t.ack_flag {
            return rev;
        }
    }
    // No handshake seen: a packet from a well-known port to an ephemeral
    // one is a reply (the DNS server answering, the web server sending).
    if p.sport < WELL_KNOWN_LIMIT && p.dport >= WELL_KNOWN_LIMIT {
        return rev;
    }
    fwd
}

/// Idle timeouts and capacity.
#[derive(Clone, Debug)]
pub struct TableConfig {
    pub max_flows: usize,
    pub tcp_idle_ns: u64,
    pub tcp_closing_ns: u64,
    pub udp_idle_ns: u64,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            max_flows: 262_144,
            tcp_idle_ns: 300 * 1_000_000_000,
            tcp_closing_ns: 10 * 1_000_000_000,
            udp_idle_ns: 120 * 1_000_000_000,
        }
    }
}

/// Flow table counters.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct TableStats {
    pub created: u64,
    pub expired: u64,
    pub evicted: u64,
    pub live: u64,
}

/// A hash map of flows with bounded size.
pub struct FlowTable {
    map: FxHashMap<FlowKey, Flow>,
    cfg: TableConfig,
    stats: TableStats,
    rng: u64,
}

impl FlowTable {
    pub fn new(cfg: TableConfig) -> FlowTable {
        FlowTable {
            map: FxHashMap::default(),
            cfg,
            stats: TableStats::default(),
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn stats(&self) -> TableStats {
        TableStats {
            live: self.map.len() as u64,
            ..self.stats
        }
    }

    pub fn get_mut(&mut self, k: &FlowKey) -> Option<&mut Flow> {
        self.map.get_mut(k)
    }

    /// Inserts a new flow, evicting first if the table is full. Evicted flows
    /// are handed to `evicted` so their records are not lost.
    pub fn insert(&mut self, k: FlowKey, f: Flow, evicted: &mut dyn FnMut(Flow)) -> &mut Flow {
        if self.map.len() >= self.cfg.max_flows {
            self.make_room(f.first_ns, evicted);
        }
        self.stats.created += 1;
        self.map.entry(k).or_insert(f)
    }

    fn idle_limit(&self, f: &Flow) -> u64 {
        match f.proto {
            Proto::Tcp if f.closing => self.cfg.tcp_closing_ns,
            Proto::Tcp => self.cfg.tcp_idle_ns,
            Proto::Udp => self.cfg.udp_idle_ns,
        }
    }

    /// Removes flows idle longer than their timeout at `now_ns`.
    pub fn expire(&mut self, now_ns: u64, out: &mut dyn FnMut(Flow)) {
        let keys: Vec<FlowKey> = self
            .map
            .iter()
            .filter(|(_, f)| now_ns.saturating_sub(f.last_ns) > self.idle_limit(f))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            if let Some(f) = self.map.remove(&k) {
                self.stats.expired += 1;
                out(f);
            }
        }
    }

    /// Frees at least one slot: expired flows first; otherwise sampled
    /// eviction of the least recently seen flow among a few random ones,
    /// preferring flows whose inspection is over.
    fn make_room(&mut self, now_ns: u64, evicted: &mut dyn FnMut(Flow)) {
        let before = self.map.len();
        self.expire(now_ns, evicted);
        if self.map.len() < before {
            return;
        }
        // Approximate LRU: sample candidates from the hash map's iteration
        // order at a pseudo-random offset.
        let n = self.map.len();
        if n == 0 {
            return;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let start = (self.rng % n as u64) as usize;
        let victim = self
            .map
            .iter()
            .skip(start)
            .chain(self.map.iter())
            .take(8)
            .min_by_key(|(_, f)| (!f.inspection_done(), f.last_ns))
            .map(|(k, _)| *k);
        if let Some(k) = victim {
            if let Some(f) = self.map.remove(&k) {
                self.stats.evicted += 1;
                evicted(f);
            }
        }
    }

    /// Every live flow.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Flow> + '_ {
        self.map.values_mut()
    }

    /// Removes every flow (end of a replay).
    pub fn drain(&mut self) -> impl Iterator<Item = Flow> + '_ {
        self.map.drain().map(|(_, f)| f)
    }
}
