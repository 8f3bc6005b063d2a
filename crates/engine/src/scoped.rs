//! A cache whose entries belong to one client address: what one client
//! taught the engine (a DNS name it resolved, a relay peer its call
//! revealed) is used for that client's flows only, so no client can steer
//! the decisions about another client's traffic.
//!
//! Bounded twice: at most `per_client` entries per client and at most
//! `cap` in total. Eviction never reaches across clients: a client at its
//! quota loses its own entry closest to expiry; when the whole cache is
//! full (after dropping expired entries, at most once per second of packet
//! time), a client that holds entries loses its own oldest one, and a
//! client that holds none is refused. Either way the insertion is counted
//! as pressure ([`ScopedStats`]).

use rustc_hash::FxHashMap;
use std::hash::Hash;
use std::net::IpAddr;

/// Counters of one cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScopedStats {
    /// Entries live now.
    pub live: u64,
    /// Entries a client lost to its own newer entries (quota or full cache).
    pub evicted: u64,
    /// Insertions refused because the cache was full.
    pub refused: u64,
}

impl ScopedStats {
    /// Insertions that met a bound (evicted or refused).
    pub fn pressure(&self) -> u64 {
        self.evicted + self.refused
    }
}

/// Entries keyed by (client, K), with an absolute expiry each.
pub struct Scoped<K, V> {
    clients: FxHashMap<IpAddr, FxHashMap<K, (V, u64)>>,
    len: usize,
    cap: usize,
    per_client: usize,
    last_purge_ns: Option<u64>,
    stats: ScopedStats,
}

const PURGE_EVERY_NS: u64 = 1_000_000_000;

impl<K: Hash + Eq + Copy, V> Scoped<K, V> {
    pub fn new(cap: usize, per_client: usize) -> Scoped<K, V> {
        let cap = cap.max(1);
        Scoped {
            clients: FxHashMap::default(),
            len: 0,
            cap,
            per_client: per_client.clamp(1, cap),
            last_purge_ns: None,
            stats: ScopedStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn stats(&self) -> ScopedStats {
        ScopedStats {
            live: self.len as u64,
            ..self.stats
        }
    }

    /// The live entry of `client` for `k`.
    pub fn get(&self, client: &IpAddr, k: &K, now_ns: u64) -> Option<&V> {
        self.clients
            .get(client)?
            .get(k)
            .filter(|(_, exp)| *exp >= now_ns)
            .map(|(v, _)| v)
    }

    /// Inserts or replaces; false when the cache refused it (full).
    pub fn insert(&mut self, client: IpAddr, k: K, v: V, expires_ns: u64, now_ns: u64) -> bool {
        if let Some(slot) = self.clients.get_mut(&client).and_then(|m| m.get_mut(&k)) {
            *slot = (v, expires_ns);
            return true;
        }
        let own = self.clients.get(&client).map_or(0, |m| m.len());
        if own >= self.per_client {
            self.purge_client(&client, now_ns);
            if self.clients.get(&client).map_or(0, |m| m.len()) >= self.per_client {
                self.evict_own(&client);
            }
        } else if self.len >= self.cap {
            let due = self
                .last_purge_ns
                .is_none_or(|t| now_ns >= t.saturating_add(PURGE_EVERY_NS));
            if due {
                self.purge(now_ns);
            }
            if self.len >= self.cap {
                if own == 0 {
                    self.stats.refused += 1;
                    return false;
                }
                self.evict_own(&client);
            }
        }
        self.clients
            .entry(client)
            .or_default()
            .insert(k, (v, expires_ns));
        self.len += 1;
        true
    }

    /// Removes `client`'s entry for `k`.
    pub fn remove(&mut self, client: &IpAddr, k: &K) -> Option<V> {
        let m = self.clients.get_mut(client)?;
        let (v, _) = m.remove(k)?;
        self.len -= 1;
        if m.is_empty() {
            self.clients.remove(client);
        }
        Some(v)
    }

    /// Drops every expired entry.
    pub fn purge(&mut self, now_ns: u64) {
        self.last_purge_ns = Some(now_ns);
        let mut removed = 0;
        self.clients.retain(|_, m| {
            let before = m.len();
            m.retain(|_, (_, exp)| *exp >= now_ns);
            removed += before - m.len();
            !m.is_empty()
        });
        self.len -= removed;
    }

    fn purge_client(&mut self, client: &IpAddr, now_ns: u64) {
        let Some(m) = self.clients.get_mut(client) else {
            return;
        };
        let before = m.len();
        m.retain(|_, (_, exp)| *exp >= now_ns);
        self.len -= before - m.len();
    }

    /// Removes `client`'s entry closest to expiry.
    fn evict_own(&mut self, client: &IpAddr) {
        let Some(m) = self.clients.get_mut(client) else {
            return;
        };
        let victim = m.iter().min_by_key(|(_, (_, exp))| *exp).map(|(k, _)| *k);
        if let Some(k) = victim {
            m.remove(&k);
            self.len -= 1;
            self.stats.evicted += 1;
        }
    }

    /// Every live entry of every client (for re-labelling after a change).
    pub fn iter(&self) -> impl Iterator<Item = (&IpAddr, &K, &V)> + '_ {
        self.clients
            .iter()
            .flat_map(|(c, m)| m.iter().map(move |(k, (v, _))| (c, k, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn entries_belong_to_their_client() {
        let mut c: Scoped<u32, &str> = Scoped::new(16, 4);
        assert!(c.insert(ip("10.0.0.1"), 7, "a", 100, 0));
        assert_eq!(c.get(&ip("10.0.0.1"), &7, 50), Some(&"a"));
        assert_eq!(c.get(&ip("10.0.0.2"), &7, 50), None);
        assert_eq!(c.get(&ip("10.0.0.1"), &7, 101), None, "expired");
    }

    #[test]
    fn a_client_over_its_quota_only_loses_its_own_entries() {
        let mut c: Scoped<u32, u32> = Scoped::new(1000, 4);
        let victim = ip("10.0.0.1");
        let attacker = ip("10.0.0.66");
        for k in 0..4 {
            c.insert(victim, k, k, 1_000 + u64::from(k), 0);
        }
        for k in 0..10_000 {
            c.insert(attacker, k, k, 10 + u64::from(k), 0);
        }
        assert!(c.len() <= 8);
        for k in 0..4 {
            assert_eq!(c.get(&victim, &k, 5), Some(&k), "victim keeps {k}");
        }
        assert_eq!(c.stats().evicted, 10_000 - 4);
    }

    #[test]
    fn a_full_cache_refuses_newcomers_instead_of_evicting_others() {
        let mut c: Scoped<u32, u32> = Scoped::new(8, 4);
        for (i, who) in ["10.0.0.1", "10.0.0.2"].iter().enumerate() {
            for k in 0..4 {
                c.insert(ip(who), k, k, 1_000 + i as u64, 0);
            }
        }
        assert_eq!(c.len(), 8);
        assert!(!c.insert(ip("10.0.0.3"), 1, 1, 1_000, 1));
        assert_eq!(c.stats().refused, 1);
        // A client that holds entries trades its own oldest.
        assert!(c.insert(ip("10.0.0.1"), 9, 9, 2_000, 1));
        assert_eq!(c.len(), 8);
        for k in 0..4 {
            assert!(c.get(&ip("10.0.0.2"), &k, 2).is_some());
        }
        // Once entries expire, room is made again.
        assert!(c.insert(ip("10.0.0.3"), 1, 1, 5_000_000_000, 3_000_000_000));
        assert_eq!(c.len(), 1);
    }
}
