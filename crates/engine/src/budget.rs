//! The engine's memory budget for reassembly.
//!
//! Everything a flow buffers while it is being inspected (the TCP
//! ClientHello reassembler, the QUIC CRYPTO reassembler and its cached
//! Initial keys) is charged to one [`Pool`] with a global byte budget,
//! instead of "per flow × flows":
//!
//! * a flow may hold at most its share ([`PoolConfig::per_flow`]); a flow
//!   that needs more is decided on what it has;
//! * when the pool is full, the flows that have held memory the longest
//!   are decided on what they have and release it, oldest first (a FIFO of
//!   holders: O(1) per reclaimed flow); a flow that cannot be made to fit
//!   is itself decided on what it has.
//!
//! A [`Charge`] lives inside the flow's inspection state and gives its bytes
//! back when dropped, so no path that ends an inspection (a decision, an
//! expiry, an eviction, a reload) can leak budget.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::flow::FlowKey;

/// Pool sizes.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Bytes all flows together may hold for reassembly.
    pub budget: usize,
    /// Bytes one flow may hold.
    pub per_flow: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            budget: 32 << 20,
            per_flow: 24 << 10,
        }
    }
}

/// Pool counters.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct PoolStats {
    /// Bytes held now.
    pub used: u64,
    /// Largest `used` seen.
    pub peak: u64,
    /// Flows decided on what they had because they asked for more than their
    /// share.
    pub over_share: u64,
    /// Flows decided on what they had to make room (oldest holders first).
    pub reclaimed: u64,
    /// Flows decided on what they had because nothing could be reclaimed.
    pub refused: u64,
}

#[derive(Default, Debug)]
struct Shared {
    used: AtomicUsize,
    holders: AtomicUsize,
}

/// Bytes held by one flow; given back on drop.
#[derive(Debug, Default)]
pub struct Charge {
    pool: Option<Arc<Shared>>,
    bytes: usize,
}

impl Charge {
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(p) = &self.pool {
            if self.bytes > 0 {
                p.used.fetch_sub(self.bytes, Ordering::Relaxed);
                p.holders.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// What [`Pool::charge`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Grant {
    /// The flow holds its new size.
    Granted,
    /// The flow asked for more than its share: decide it on what it has.
    OverShare,
    /// The pool is full: reclaim from the oldest holder (its key is
    /// returned by [`Pool::oldest_holder`]) or decide this flow.
    Full,
}

/// The global reassembly pool.
#[derive(Debug)]
pub struct Pool {
    cfg: PoolConfig,
    shared: Arc<Shared>,
    /// Flows that hold bytes, in the order they started holding (entries of
    /// flows that since released are skipped when met, and compacted away).
    fifo: VecDeque<(FlowKey, u64)>,
    stats: PoolStats,
}

impl Pool {
    pub fn new(cfg: PoolConfig) -> Pool {
        Pool {
            cfg,
            shared: Arc::default(),
            fifo: VecDeque::new(),
            stats: PoolStats::default(),
        }
    }

    pub fn used(&self) -> usize {
        self.shared.used.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            used: self.used() as u64,
            ..self.stats
        }
    }

    /// Asks that `charge` (of the flow `key`, started at `first_ns`) now
    /// cover `bytes`. Shrinking always succeeds.
    pub fn charge(
        &mut self,
        charge: &mut Charge,
        bytes: usize,
        key: FlowKey,
        first_ns: u64,
    ) -> Grant {
        if bytes > self.cfg.per_flow {
            self.stats.over_share += 1;
            return Grant::OverShare;
        }
        let used = self.used();
        if bytes > charge.bytes && used - charge.bytes.min(used) + bytes > self.cfg.budget {
            return Grant::Full;
        }
        let shared = self.shared.clone();
        match (charge.bytes, bytes) {
            (0, 0) => {}
            (0, b) => {
                shared.used.fetch_add(b, Ordering::Relaxed);
                shared.holders.fetch_add(1, Ordering::Relaxed);
                self.fifo.push_back((key, first_ns));
            }
            (old, 0) => {
                shared.used.fetch_sub(old, Ordering::Relaxed);
                shared.holders.fetch_sub(1, Ordering::Relaxed);
            }
            (old, b) if b >= old => {
                shared.used.fetch_add(b - old, Ordering::Relaxed);
            }
            (old, b) => {
                shared.used.fetch_sub(old - b, Ordering::Relaxed);
            }
        }
        charge.bytes = bytes;
        charge.pool = Some(shared);
        self.stats.peak = self.stats.peak.max(self.used() as u64);
        Grant::Granted
    }

    /// Pops the flow that has held memory the longest (it may have released
    /// it since: the caller checks and skips it).
    pub fn oldest_holder(&mut self) -> Option<(FlowKey, u64)> {
        self.fifo.pop_front()
    }

    /// The oldest holder without removing it.
    pub fn peek_oldest(&self) -> Option<&(FlowKey, u64)> {
        self.fifo.front()
    }

    pub fn note_reclaimed(&mut self) {
        self.stats.reclaimed += 1;
    }

    pub fn note_refused(&mut self) {
        self.stats.refused += 1;
    }

    /// True when the FIFO holds more than twice the live holders (plus
    /// slack): flows that released without being popped piled up.
    pub fn wants_compaction(&self) -> bool {
        let live = self.shared.holders.load(Ordering::Relaxed);
        self.fifo.len() > 1024 + 2 * live
    }

    /// Drops FIFO entries of flows that no longer hold memory. Called when
    /// [`Pool::wants_compaction`]; amortised O(1) per charge.
    pub fn compact(&mut self, mut still_holds: impl FnMut(&FlowKey, u64) -> bool) {
        self.fifo.retain(|(k, t)| still_holds(k, *t));
    }
}
