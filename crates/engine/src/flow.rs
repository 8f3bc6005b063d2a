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
    /// The flow started a TLS or QUIC handshake whose server name could
    /// not be read: why (evidence). Decided by `[inspection] undecidable`.
    pub undecidable: Option<&'static str>,
    /// The far side was seen first and the flow was turned around
    /// ([`crate::direction`]): labelled from its payload and its client
    /// socket's history, but it teaches no cache.
    pub remote_opened: bool,
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

/// Index of a flow in the table's slab.
pub type Slot = u32;

const NIL: Slot = Slot::MAX;

/// Idle-timeout classes; each has its own recency list, so the oldest flow
/// of a class is always at the list's head.
const CLASSES: usize = 3;

fn class_of(f: &Flow) -> usize {
    match f.proto {
        Proto::Tcp if f.closing => 1,
        Proto::Tcp => 0,
        Proto::Udp => 2,
    }
}

struct Entry {
    key: FlowKey,
    flow: Flow,
    prev: Slot,
    next: Slot,
    class: u8,
}

/// A hash map of flows with bounded size.
///
/// Flows live in a slab; per idle-timeout class an intrusive doubly linked
/// list orders them by last activity ([`FlowTable::touch`] moves a flow to
/// the tail). Expiry pops list heads while they are idle, so it costs the
/// flows it ends, and eviction at a full table takes the least recently
/// seen flow of all classes: O(1), no scan of the map, and no preference
/// for any flow state (an attacker's half-open inspections age out like
/// everything else).
pub struct FlowTable {
    index: FxHashMap<FlowKey, Slot>,
    slab: Vec<Option<Entry>>,
    free: Vec<Slot>,
    heads: [Slot; CLASSES],
    tails: [Slot; CLASSES],
    cfg: TableConfig,
    stats: TableStats,
}

impl FlowTable {
    pub fn new(cfg: TableConfig) -> FlowTable {
        FlowTable {
            index: FxHashMap::default(),
            slab: Vec::new(),
            free: Vec::new(),
            heads: [NIL; CLASSES],
            tails: [NIL; CLASSES],
            cfg,
            stats: TableStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn stats(&self) -> TableStats {
        TableStats {
            live: self.index.len() as u64,
            ..self.stats
        }
    }

    /// The slot of a live flow.
    pub fn find(&self, k: &FlowKey) -> Option<Slot> {
        self.index.get(k).copied()
    }

    /// The flow in `slot` (None for a free slot).
    pub fn slot_mut(&mut self, slot: Slot) -> Option<&mut Flow> {
        self.entry_mut(slot).map(|e| &mut e.flow)
    }

    pub fn get_mut(&mut self, k: &FlowKey) -> Option<&mut Flow> {
        let s = self.find(k)?;
        self.slot_mut(s)
    }

    fn entry(&self, s: Slot) -> Option<&Entry> {
        self.slab.get(s as usize).and_then(|e| e.as_ref())
    }

    fn entry_mut(&mut self, s: Slot) -> Option<&mut Entry> {
        self.slab.get_mut(s as usize).and_then(|e| e.as_mut())
    }

    fn unlink(&mut self, s: Slot) {
        let Some((prev, next, class)) = self.entry(s).map(|e| (e.prev, e.next, e.class as usize))
        else {
            return;
        };
        match self.entry_mut(prev) {
            Some(p) => p.next = next,
            None => self.heads[class] = next,
        }
        match self.entry_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tails[class] = prev,
        }
    }

    fn link_tail(&mut self, s: Slot, class: usize) {
        let tail = self.tails[class];
        if let Some(e) = self.entry_mut(s) {
            e.prev = tail;
            e.next = NIL;
            e.class = class as u8;
        }
        match self.entry_mut(tail) {
            Some(t) => t.next = s,
            None => self.heads[class] = s,
        }
        self.tails[class] = s;
    }

    /// Marks the flow in `slot` as just seen (after its packet updated it:
    /// a FIN or RST moves it to the closing class).
    pub fn touch(&mut self, slot: Slot) {
        let Some(class) = self.entry(slot).map(|e| class_of(&e.flow)) else {
            return;
        };
        if self.tails[class] == slot {
            return;
        }
        self.unlink(slot);
        self.link_tail(slot, class);
    }

    fn remove_slot(&mut self, s: Slot) -> Option<Flow> {
        self.unlink(s);
        let e = self.slab.get_mut(s as usize)?.take()?;
        self.index.remove(&e.key);
        self.free.push(s);
        Some(e.flow)
    }

    /// Removes a flow.
    pub fn remove(&mut self, k: &FlowKey) -> Option<Flow> {
        let s = self.find(k)?;
        self.remove_slot(s)
    }

    /// Inserts a new flow, evicting first if the table is full. Evicted flows
    /// are handed to `evicted` so their records are not lost.
    pub fn insert(&mut self, k: FlowKey, f: Flow, evicted: &mut dyn FnMut(Flow)) -> Slot {
        if let Some(s) = self.find(&k) {
            return s;
        }
        if self.index.len() >= self.cfg.max_flows {
            self.make_room(f.first_ns, evicted);
        }
        self.stats.created += 1;
        let class = class_of(&f);
        let e = Entry {
            key: k,
            flow: f,
            prev: NIL,
            next: NIL,
            class: class as u8,
        };
        let s = match self.free.pop() {
            Some(s) => {
                if let Some(slot) = self.slab.get_mut(s as usize) {
                    *slot = Some(e);
                }
                s
            }
            None => {
                self.slab.push(Some(e));
                (self.slab.len() - 1) as Slot
            }
        };
        self.index.insert(k, s);
        self.link_tail(s, class);
        s
    }

    fn idle_limit(&self, class: usize) -> u64 {
        match class {
            0 => self.cfg.tcp_idle_ns,
            1 => self.cfg.tcp_closing_ns,
            _ => self.cfg.udp_idle_ns,
        }
    }

    /// Removes flows idle longer than their timeout at `now_ns`. Costs the
    /// flows removed (list heads), not the table size.
    pub fn expire(&mut self, now_ns: u64, out: &mut dyn FnMut(Flow)) {
        for class in 0..CLASSES {
            let limit = self.idle_limit(class);
            loop {
                let h = self.heads[class];
                let idle = match self.entry(h) {
                    Some(e) => now_ns.saturating_sub(e.flow.last_ns) > limit,
                    None => false,
                };
                if !idle {
                    break;
                }
                if let Some(f) = self.remove_slot(h) {
                    self.stats.expired += 1;
                    out(f);
                }
            }
        }
    }

    /// Frees at least one slot: expired flows first; otherwise the least
    /// recently seen flow (the oldest list head), whatever its state.
    fn make_room(&mut self, now_ns: u64, evicted: &mut dyn FnMut(Flow)) {
        let before = self.index.len();
        self.expire(now_ns, evicted);
        if self.index.len() < before {
            return;
        }
        let victim = self
            .heads
            .iter()
            .filter_map(|&h| self.entry(h).map(|e| (e.flow.last_ns, h)))
            .min();
        if let Some((_, s)) = victim {
            if let Some(f) = self.remove_slot(s) {
                self.stats.evicted += 1;
                evicted(f);
            }
        }
    }

    /// Every live flow.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Flow> + '_ {
        self.slab.iter_mut().flatten().map(|e| &mut e.flow)
    }

    /// Removes every flow (end of a replay).
    pub fn drain(&mut self) -> impl Iterator<Item = Flow> + '_ {
        self.index.clear();
        self.free.clear();
        self.heads = [NIL; CLASSES];
        self.tails = [NIL; CLASSES];
        self.slab.drain(..).flatten().map(|e| e.flow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn flow(i: u32, proto: Proto, ts: u64) -> (FlowKey, Flow) {
        let c = (IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 40000);
        let s = (IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)), 443);
        let k = FlowKey {
            proto,
            lo: c.min(s),
            hi: c.max(s),
            tunnel: None,
        };
        let f = Flow {
            proto,
            client: c,
            server: s,
            first_ns: ts,
            last_ns: ts,
            packets: 0,
            bytes: 0,
            packets_orig: 0,
            packets_reply: 0,
            inspect: Some(Box::default()),
            label: None,
            host: None,
            reported: false,
            closing: false,
            dns: false,
            tunnel: None,
            undecidable: None,
            remote_opened: false,
        };
        (k, f)
    }

    #[test]
    fn eviction_takes_the_least_recently_seen_whatever_its_state() {
        let mut t = FlowTable::new(TableConfig {
            max_flows: 3,
            ..TableConfig::default()
        });
        let mut gone = Vec::new();
        let keys: Vec<FlowKey> = (0..3)
            .map(|i| {
                let (k, f) = flow(
                    i,
                    if i == 1 { Proto::Tcp } else { Proto::Udp },
                    10 + u64::from(i),
                );
                t.insert(k, f, &mut |f| gone.push(f.client));
                k
            })
            .collect();
        // Flow 0 is seen again (still inspecting); flow 1 finished inspecting.
        if let Some(s) = t.find(&keys[0]) {
            if let Some(f) = t.slot_mut(s) {
                f.last_ns = 20;
            }
            t.touch(s);
        }
        if let Some(f) = t.get_mut(&keys[1]) {
            f.inspect = None;
        }
        let (k, f) = flow(9, Proto::Udp, 21);
        t.insert(k, f, &mut |f| gone.push(f.client));
        // Flow 1 (least recently seen) went, although flow 2 is still being
        // inspected: inspection buys no protection.
        assert_eq!(gone.len(), 1);
        assert!(t.find(&keys[1]).is_none());
        let (k, f) = flow(10, Proto::Udp, 22);
        t.insert(k, f, &mut |f| gone.push(f.client));
        assert!(t.find(&keys[2]).is_none());
        assert!(t.find(&keys[0]).is_some());
        assert_eq!(t.len(), 3);
        assert_eq!(t.stats().evicted, 2);
    }

    #[test]
    fn expiry_pops_idle_heads_per_class() {
        let mut t = FlowTable::new(TableConfig::default());
        let sec = 1_000_000_000;
        let (k0, f0) = flow(0, Proto::Udp, 0);
        let (k1, f1) = flow(1, Proto::Tcp, 0);
        let (k2, mut f2) = flow(2, Proto::Tcp, 0);
        f2.closing = true;
        for (k, f) in [(k0, f0), (k1, f1), (k2, f2)] {
            t.insert(k, f, &mut |_| {});
        }
        let mut n = 0;
        t.expire(11 * sec, &mut |_| n += 1);
        assert_eq!((n, t.len()), (1, 2), "closing TCP after 10 s");
        t.expire(121 * sec, &mut |_| n += 1);
        assert_eq!((n, t.len()), (2, 1), "UDP after 120 s");
        assert!(t.find(&k1).is_some());
        t.expire(301 * sec, &mut |_| n += 1);
        assert!(t.is_empty());
        // Slots are reused.
        let (k, f) = flow(3, Proto::Udp, 400 * sec);
        assert!(t.insert(k, f, &mut |_| {}) < 3);
        assert_eq!(t.drain().count(), 1);
    }
}
