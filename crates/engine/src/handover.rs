//! What the kernel hands the daemon, simulated for replay.
//!
//! In NFLOG mode the daemon sees only what the table's log rules copy to
//! it: a connection's packets in its original (conntrack) direction while
//! `ct original packets < n`, and DNS answers (source port 53). Replay of a
//! capture of the whole traffic drops everything else with [`KernelView`],
//! so that it decides on the same packets as the live daemon.
//!
//! Conntrack's original direction is the direction of the first packet it
//! sees of a 5-tuple; its packet counter includes the packet being
//! evaluated, so `< n` logs packets 1 to `n - 1`.

use std::net::IpAddr;

use geofence_decode::Packet;
use rustc_hash::FxHashMap;

use crate::flow::FlowKey;

/// Conntrack entries expire; a tuple idle this long starts a new entry
/// (the kernel's UDP stream timeout is 120 s). A TCP tuple reused within it
/// after a close counts on (rare in captures; the kernel would start a new
/// entry).
const IDLE_NS: u64 = 120_000_000_000;

/// Most connections tracked; beyond it the table is cleared (replay only,
/// where memory matters more than the exactness of ancient flows).
const MAX_CONNS: usize = 1 << 20;

struct Conn {
    orig: (IpAddr, u16),
    packets: u32,
    last_ns: u64,
}

/// The NFLOG rules of the daemon's table, as a packet filter.
pub struct KernelView {
    first_packets: u32,
    conns: FxHashMap<FlowKey, Conn>,
}

impl KernelView {
    pub fn new(first_packets: u32) -> KernelView {
        KernelView {
            first_packets,
            conns: FxHashMap::default(),
        }
    }

    /// Whether the kernel would log `p` to the daemon.
    pub fn delivers(&mut self, p: &Packet<'_>, ts_ns: u64) -> bool {
        let key = FlowKey::of(p);
        if self.conns.len() >= MAX_CONNS && !self.conns.contains_key(&key) {
            self.conns.clear();
        }
        let c = self.conns.entry(key).or_insert(Conn {
            orig: (p.src, p.sport),
            packets: 0,
            last_ns: ts_ns,
        });
        let from = (p.src, p.sport);
        let stale = ts_ns.saturating_sub(c.last_ns) > IDLE_NS;
        if stale {
            *c = Conn {
                orig: from,
                packets: 0,
                last_ns: ts_ns,
            };
        }
        c.last_ns = ts_ns;
        // DNS answers are logged whatever their direction or count.
        if p.sport == 53 {
            return true;
        }
        if c.orig != from {
            return false;
        }
        c.packets = c.packets.saturating_add(1);
        c.packets < self.first_packets
    }
}
