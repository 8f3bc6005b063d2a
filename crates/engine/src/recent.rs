//! The conferencing app each client named last (DNS answer to its own
//! query, TLS/QUIC server name), for browser WebRTC calls.
//!
//! A browser's call media carries no name: the page learns the media
//! server over its signalling (HTTPS/WebSocket to the app's names) and then
//! runs ICE (STUN Binding requests with USERNAME, MESSAGE-INTEGRITY and
//! ICE-CONTROLLING/CONTROLLED or PRIORITY, RFC 8445) and DTLS-SRTP to an
//! address no DNS answer named. Such a flow takes the app the same client
//! named within [`WINDOW_NS`], and only when that client named exactly one
//! app in the window (two apps in the window: no label).
//!
//! Bounded: at most `cap` clients; when full, entries older than the window
//! are purged, and a new client that still does not fit is not remembered
//! (counted in `dropped`).

use std::net::IpAddr;

use geofence_classify::AppRef;
use rustc_hash::FxHashMap;

/// How long a named app vouches for the client's next WebRTC flow.
pub const WINDOW_NS: u64 = 60 * 1_000_000_000;

#[derive(Clone, Copy, Debug)]
struct Entry {
    app: AppRef,
    at_ns: u64,
    /// Another app was named in the window ending here: ambiguous until then.
    mixed_until_ns: u64,
}

/// Per-client memory of the last named app.
#[derive(Debug)]
pub struct RecentApps {
    map: FxHashMap<IpAddr, Entry>,
    cap: usize,
    pub dropped: u64,
}

impl RecentApps {
    pub fn new(cap: usize) -> RecentApps {
        RecentApps {
            map: FxHashMap::default(),
            cap: cap.max(1),
            dropped: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// `client` named `app` at `now_ns`.
    pub fn note(&mut self, client: IpAddr, app: AppRef, now_ns: u64) {
        if let Some(e) = self.map.get_mut(&client) {
            if e.app != app && now_ns.saturating_sub(e.at_ns) <= WINDOW_NS {
                e.mixed_until_ns = now_ns.saturating_add(WINDOW_NS);
            }
            e.app = app;
            e.at_ns = e.at_ns.max(now_ns);
            return;
        }
        if self.map.len() >= self.cap {
            self.map.retain(|_, e| {
                now_ns.saturating_sub(e.at_ns) <= WINDOW_NS || e.mixed_until_ns > now_ns
            });
            if self.map.len() >= self.cap {
                self.dropped = self.dropped.saturating_add(1);
                return;
            }
        }
        self.map.insert(
            client,
            Entry {
                app,
                at_ns: now_ns,
                mixed_until_ns: 0,
            },
        );
    }

    /// The one app `client` named within the window before `now_ns`.
    pub fn get(&self, client: &IpAddr, now_ns: u64) -> Option<AppRef> {
        let e = self.map.get(client)?;
        (now_ns.saturating_sub(e.at_ns) <= WINDOW_NS && now_ns >= e.mixed_until_ns).then_some(e.app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn one_app_in_the_window_only() {
        let mut r = RecentApps::new(8);
        r.note(ip(1), AppRef(3), 10 * S);
        assert_eq!(r.get(&ip(1), 20 * S), Some(AppRef(3)));
        assert_eq!(r.get(&ip(2), 20 * S), None, "scoped to the client");
        assert_eq!(r.get(&ip(1), 10 * S + WINDOW_NS + 1), None, "expired");
        // A second app within the window: ambiguous for a window.
        r.note(ip(1), AppRef(4), 30 * S);
        assert_eq!(r.get(&ip(1), 31 * S), None);
        assert_eq!(r.get(&ip(1), 30 * S + WINDOW_NS), Some(AppRef(4)));
    }

    #[test]
    fn bounded_by_clients() {
        let mut r = RecentApps::new(4);
        for n in 0..100 {
            r.note(ip(n), AppRef(1), S);
        }
        assert_eq!(r.len(), 4);
        assert_eq!(r.dropped, 96);
        // Old entries make room once out of the window.
        r.note(ip(500), AppRef(1), S + WINDOW_NS + 1);
        assert_eq!(r.get(&ip(500), S + WINDOW_NS + 2), Some(AppRef(1)));
        assert!(r.len() <= 4);
    }
}
