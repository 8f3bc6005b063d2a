//! What the kernel hands the daemon, simulated for replay.
//!
//! In NFLOG mode the daemon sees only what the table's log rules copy to
//! it: a connection's packets in its original (conntrack) direction while
//! `ct original packets < n`, DNS queries (destination port 53, original
//! direction) past them and DNS answers (source port 53) only in the reply
//! direction of a connection (an answer nobody asked for starts a new
//! connection and is logged only as its first packets). The kernel logs DNS
//! past a flow's first packets at most 2,000 a second per rule; replay does
//! not simulate that rate. Replay of a
//! capture of the whole traffic drops everything else with [`KernelView`],
//! so that it decides on the same packets as the live daemon.
//!
//! Conntrack's original direction is the direction of the first packet it
//! sees of a 5-tuple; its packet counter includes the packet being
//! evaluated, so `< n` logs packets 1 to `n - 1`.
//!
//! A packet decoded from inside a tunnel is, for the kernel, a packet of the
//! tunnel: it is counted on one entry per tunnel and outer address pair, and
//! the DNS rule (source port 53) looks at the outer header, not the inner.

use std::net::IpAddr;

use geofence_decode::{Packet, Proto};
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
        let (key, from) = match &p.tunnel {
            None => (FlowKey::of(p), (p.src, p.sport)),
            Some(t) => {
                // the kernel's entry is the tunnel's: its outer addresses
                // (one entry whatever the inner protocol)
                let outer = Packet {
                    src: t.outer_src,
                    dst: t.outer_dst,
                    proto: Proto::Udp,
                    sport: 0,
                    dport: 0,
                    tunnel: None,
                    ..p.clone()
                };
                let mut key = FlowKey::of(&outer);
                key.tunnel = FlowKey::of(p).tunnel;
                (key, (t.outer_src, 0))
            }
        };
        if self.conns.len() >= MAX_CONNS && !self.conns.contains_key(&key) {
            self.conns.clear();
        }
        let c = self.conns.entry(key).or_insert(Conn {
            orig: from,
            packets: 0,
            last_ns: ts_ns,
        });
        let stale = ts_ns.saturating_sub(c.last_ns) > IDLE_NS;
        if stale {
            *c = Conn {
                orig: from,
                packets: 0,
                last_ns: ts_ns,
            };
        }
        c.last_ns = ts_ns;
        if c.orig != from {
            // Reply direction: only DNS answers (of the outer header: an
            // inner port 53 is invisible to the kernel's rule).
            return p.sport == 53 && p.tunnel.is_none();
        }
        c.packets = c.packets.saturating_add(1);
        c.packets < self.first_packets || (p.dport == 53 && p.tunnel.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geofence_decode::{decode, LinkType};
    use geofence_testkit::pcap::udp_v4;
    use std::net::Ipv4Addr;

    #[test]
    fn dns_is_delivered_like_the_kernel_rules_log_it() {
        let c = Ipv4Addr::new(10, 0, 0, 5);
        let r = Ipv4Addr::new(198, 51, 100, 53);
        let mut k = KernelView::new(8);
        let seen = |k: &mut KernelView, f: Vec<u8>| {
            let p = decode(LinkType::Ethernet, &f).expect("frame");
            k.delivers(&p, 1)
        };
        // A reused client socket: every query and every answer.
        for _ in 0..20 {
            assert!(seen(&mut k, udp_v4(c, 4000, r, 53, b"query")));
            assert!(seen(&mut k, udp_v4(r, 53, c, 4000, b"answer")));
        }
        // An answer nobody asked for is the first packet of a new
        // connection: delivered as such, its replies are not answers.
        let x = Ipv4Addr::new(203, 0, 113, 30);
        assert!(seen(&mut k, udp_v4(x, 53, c, 4001, b"forged")));
        assert!(!seen(&mut k, udp_v4(c, 4001, x, 53, b"reply")));
        // Past the first packets, a non-DNS flow is not delivered.
        for i in 0..10 {
            let d = seen(&mut k, udp_v4(c, 5000, x, 8801, b"media"));
            assert_eq!(d, i < 7, "packet {i}");
        }
    }
}
