//! Caches that outlive flows: the DNS name cache (client + address -> name
//! and app, with TTL) and the STUN peer cache (relay peers, media servers
//! and client sockets inherit an app).
//!
//! Every entry belongs to the client whose traffic taught it ([`Scoped`]):
//! a name labels only the flows of the client that resolved it, a relay
//! peer only the flows of the client whose call revealed it. Each cache is
//! bounded in total and per client, and eviction stays within a client.

use geofence_classify::sigdb::AppRef;
use std::net::{IpAddr, SocketAddr};

use crate::scoped::{Scoped, ScopedStats};

/// What a DNS answer taught us about one address, for one client.
#[derive(Clone, Debug)]
pub struct NameEntry {
    /// The name that decided the app.
    pub name: Box<str>,
    pub app: AppRef,
    /// The answer's TTL in seconds, after the cap.
    pub ttl: u32,
}

/// (client, address) -> name, bounded.
pub struct NameCache {
    map: Scoped<IpAddr, NameEntry>,
    /// The app each client named last (browser WebRTC calls).
    pub recent: crate::recent::RecentApps,
    /// Entries stay usable at least this long after the answer, whatever the
    /// TTL: clients keep using addresses past short TTLs.
    floor_ns: u64,
}

/// Addresses one client may have learnt at a time.
pub const NAMES_PER_CLIENT: usize = 1024;

impl NameCache {
    pub fn new(cap: usize, floor_secs: u64) -> NameCache {
        let cap = cap.max(16);
        NameCache {
            map: Scoped::new(cap, NAMES_PER_CLIENT.min(cap)),
            recent: crate::recent::RecentApps::new(cap),
            floor_ns: floor_secs.saturating_mul(1_000_000_000),
        }
    }

    /// Records that `client` resolved `name` (of `app`) to `ip`.
    pub fn insert(
        &mut self,
        client: IpAddr,
        ip: IpAddr,
        name: &str,
        app: AppRef,
        ttl: u32,
        now_ns: u64,
    ) {
        self.recent.note(client, app, now_ns);
        let life = (u64::from(ttl) * 1_000_000_000).max(self.floor_ns);
        let expires_ns = now_ns.saturating_add(life);
        let e = NameEntry {
            name: Box::from(name),
            app,
            ttl,
        };
        self.map.insert(client, ip, e, expires_ns, now_ns);
    }

    /// What `client` learnt about `ip`, if still live.
    pub fn get(&self, client: &IpAddr, ip: &IpAddr, now_ns: u64) -> Option<&NameEntry> {
        self.map.get(client, ip, now_ns)
    }

    pub fn purge(&mut self, now_ns: u64) {
        self.map.purge(now_ns);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn stats(&self) -> ScopedStats {
        self.map.stats()
    }
}

/// Relay peers and media servers learned from STUN, which inherit the app of
/// the flow that revealed them, for the client of that flow.
pub struct PeerCache {
    peers: Scoped<SocketAddr, AppRef>,
    /// Client UDP sockets that carried an identified flow: one socket
    /// belongs to one process, so its other flows (ICE candidates, peers,
    /// public STUN servers) belong to the same app. Keyed by client, port.
    sockets: Scoped<u16, AppRef>,
    servers: Scoped<IpAddr, AppRef>,
    life_ns: u64,
}

/// Peers (and servers, and sockets) one client may have at a time.
pub const PEERS_PER_CLIENT: usize = 512;

/// Counters of the three peer caches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PeerStats {
    pub peers: ScopedStats,
    pub servers: ScopedStats,
    pub sockets: ScopedStats,
}

impl PeerStats {
    pub fn pressure(&self) -> u64 {
        self.peers.pressure() + self.servers.pressure() + self.sockets.pressure()
    }
}

impl PeerCache {
    pub fn new(cap: usize, life_secs: u64) -> PeerCache {
        let cap = cap.max(16);
        let per = PEERS_PER_CLIENT.min(cap);
        PeerCache {
            peers: Scoped::new(cap, per),
            sockets: Scoped::new(cap, per),
            servers: Scoped::new(cap, per),
            life_ns: life_secs.saturating_mul(1_000_000_000),
        }
    }

    /// Remembers a peer endpoint (from XOR-PEER-ADDRESS) of `client`'s call.
    pub fn insert_peer(&mut self, client: IpAddr, peer: SocketAddr, app: AppRef, now_ns: u64) {
        let exp = now_ns.saturating_add(self.life_ns);
        self.peers.insert(client, peer, app, exp, now_ns);
    }

    /// Remembers a media server address identified by STUN for `client`.
    pub fn insert_server(&mut self, client: IpAddr, ip: IpAddr, app: AppRef, now_ns: u64) {
        let exp = now_ns.saturating_add(self.life_ns);
        self.servers.insert(client, ip, app, exp, now_ns);
    }

    /// Remembers a client UDP socket of an identified flow; true when new.
    pub fn insert_socket(&mut self, sock: SocketAddr, app: AppRef, now_ns: u64) -> bool {
        let exp = now_ns.saturating_add(self.life_ns);
        let new = self.sockets.get(&sock.ip(), &sock.port(), now_ns).is_none();
        self.sockets
            .insert(sock.ip(), sock.port(), app, exp, now_ns)
            && new
    }

    pub fn socket(&self, sock: &SocketAddr, now_ns: u64) -> Option<AppRef> {
        self.sockets.get(&sock.ip(), &sock.port(), now_ns).copied()
    }

    pub fn peer(&self, client: &IpAddr, ep: &SocketAddr, now_ns: u64) -> Option<AppRef> {
        self.peers.get(client, ep, now_ns).copied()
    }

    pub fn server(&self, client: &IpAddr, ip: &IpAddr, now_ns: u64) -> Option<AppRef> {
        self.servers.get(client, ip, now_ns).copied()
    }

    pub fn purge(&mut self, now_ns: u64) {
        self.peers.purge(now_ns);
        self.sockets.purge(now_ns);
        self.servers.purge(now_ns);
    }

    pub fn stats(&self) -> PeerStats {
        PeerStats {
            peers: self.peers.stats(),
            servers: self.servers.stats(),
            sockets: self.sockets.stats(),
        }
    }
}
