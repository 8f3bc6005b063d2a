//! Caches that outlive flows: the DNS name cache (address -> name chain and
//! app, with TTL) and the STUN peer cache (relay peers inherit an app).
//!
//! Both are bounded; when full, the entries closest to expiry go first.

use geofence_classify::sigdb::AppRef;
use rustc_hash::FxHashMap;
use std::net::{IpAddr, SocketAddr};

/// What a DNS answer taught us about one address.
#[derive(Clone, Debug)]
pub struct NameEntry {
    /// The name that decided the app (or the queried name when none did).
    pub name: Box<str>,
    pub app: Option<AppRef>,
    /// The answer's TTL in seconds, as received.
    pub ttl: u32,
    pub expires_ns: u64,
}

/// Address -> name, bounded.
pub struct NameCache {
    map: FxHashMap<IpAddr, NameEntry>,
    cap: usize,
    /// Entries stay usable at least this long after the answer, whatever the
    /// TTL: clients keep using addresses past short TTLs.
    floor_ns: u64,
}

impl NameCache {
    pub fn new(cap: usize, floor_secs: u64) -> NameCache {
        NameCache {
            map: FxHashMap::default(),
            cap: cap.max(16),
            floor_ns: floor_secs.saturating_mul(1_000_000_000),
        }
    }

    pub fn insert(&mut self, ip: IpAddr, name: &str, app: Option<AppRef>, ttl: u32, now_ns: u64) {
        let life = (u64::from(ttl) * 1_000_000_000).max(self.floor_ns);
        let expires_ns = now_ns.saturating_add(life);
        // An app-bearing entry is not overwritten by an app-less one for the
        // same address (a CDN address answered for two names).
        if let Some(old) = self.map.get(&ip) {
            if old.app.is_some() && app.is_none() && old.expires_ns > now_ns {
                return;
            }
        }
        if self.map.len() >= self.cap && !self.map.contains_key(&ip) {
            self.evict(now_ns);
        }
        self.map.insert(
            ip,
            NameEntry {
                name: Box::from(name),
                app,
                ttl,
                expires_ns,
            },
        );
    }

    pub fn get(&self, ip: &IpAddr, now_ns: u64) -> Option<&NameEntry> {
        self.map.get(ip).filter(|e| e.expires_ns >= now_ns)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn evict(&mut self, now_ns: u64) {
        self.map.retain(|_, e| e.expires_ns >= now_ns);
        if self.map.len() >= self.cap {
            // Still full: drop the quarter closest to expiry.
            let mut exp: Vec<u64> = self.map.values().map(|e| e.expires_ns).collect();
            let k = exp.len() / 4;
            exp.select_nth_unstable(k);
            let cut = exp[k];
            self.map.retain(|_, e| e.expires_ns > cut);
        }
    }
}

/// Relay peers and media servers learned from STUN, which inherit the app of
/// the flow that revealed them.
pub struct PeerCache {
    map: FxHashMap<SocketAddr, (AppRef, u64)>,
    /// Client UDP sockets that carried an identified flow: one socket
    /// belongs to one process, so its other flows (ICE candidates, peers,
    /// public STUN servers) belong to the same app.
    sockets: FxHashMap<SocketAddr, (AppRef, u64)>,
    ips: FxHashMap<IpAddr, (AppRef, u64)>,
    cap: usize,
    life_ns: u64,
}

impl PeerCache {
    pub fn new(cap: usize, life_secs: u64) -> PeerCache {
        PeerCache {
            map: FxHashMap::default(),
            sockets: FxHashMap::default(),
            ips: FxHashMap::default(),
            cap: cap.max(16),
            life_ns: life_secs.saturating_mul(1_000_000_000),
        }
    }

    /// Remembers a peer endpoint (from XOR-PEER-ADDRESS).
    pub fn insert_peer(&mut self, peer: SocketAddr, app: AppRef, now_ns: u64) {
        if self.map.len() >= self.cap {
            self.map.retain(|_, (_, exp)| *exp >= now_ns);
            if self.map.len() >= self.cap {
                self.map.clear();
            }
        }
        self.map
            .insert(peer, (app, now_ns.saturating_add(self.life_ns)));
    }

    /// Remembers a media server address identified by STUN.
    pub fn insert_server(&mut self, ip: IpAddr, app: AppRef, now_ns: u64) {
        if self.ips.len() >= self.cap {
            self.ips.retain(|_, (_, exp)| *exp >= now_ns);
            if self.ips.len() >= self.cap {
                self.ips.clear();
            }
        }
        self.ips
            .insert(ip, (app, now_ns.saturating_add(self.life_ns)));
    }

    /// Remembers a client UDP socket of an identified flow; true when new.
    pub fn insert_socket(&mut self, sock: SocketAddr, app: AppRef, now_ns: u64) -> bool {
        if self.sockets.len() >= self.cap {
            self.sockets.retain(|_, (_, exp)| *exp >= now_ns);
            if self.sockets.len() >= self.cap {
                self.sockets.clear();
            }
        }
        let exp = now_ns.saturating_add(self.life_ns);
        self.sockets.insert(sock, (app, exp)).is_none()
    }

    pub fn socket(&self, sock: &SocketAddr, now_ns: u64) -> Option<AppRef> {
        self.sockets
            .get(sock)
            .filter(|(_, e)| *e >= now_ns)
            .map(|(a, _)| *a)
    }

    pub fn peer(&self, ep: &SocketAddr, now_ns: u64) -> Option<AppRef> {
        self.map
            .get(ep)
            .filter(|(_, e)| *e >= now_ns)
            .map(|(a, _)| *a)
    }

    pub fn server(&self, ip: &IpAddr, now_ns: u64) -> Option<AppRef> {
        self.ips
            .get(ip)
            .filter(|(_, e)| *e >= now_ns)
            .map(|(a, _)| *a)
    }
}
