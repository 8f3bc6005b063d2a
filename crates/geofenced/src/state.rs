//! Dynamic blocks that must survive a restart: kept in memory with their
//! absolute expiry and written to `STATE_DIR/dynamic.json` (temporary file,
//! fsync, rename, fsync of the directory: `crate::durable`). A failed write (full disk, read-only file
//! system) is logged and retried later; it never stops enforcement, because
//! the kernel holds the elements anyway.
//!
//! Bounded like the kernel sets it mirrors: at most [`DYN_DAEMON_CAP`]
//! elements per set (below the sets' `size`, so an add never fails for lack
//! of room) and at most [`DYN_PER_CLIENT`] per client. A client at its quota
//! trades its own element closest to expiry for the new one (its newest
//! blocks hold); a set that is full takes a new element only in exchange for
//! one of the same client, otherwise the new element is refused. No client
//! can push out another client's blocks. [`DynState::admit`] decides,
//! before the element goes to the kernel; evictions and refusals are
//! counted ([`Pressure`]).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use geofence_nft::model::{DynElement, DYN_DAEMON_CAP};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Saved {
    rule_index: usize,
    src: Option<IpAddr>,
    dst: IpAddr,
    /// Unix seconds.
    expires: u64,
    /// The app the block was decided for (to re-decide it after a reload).
    #[serde(default)]
    app: Option<String>,
}

type Key = (usize, Option<IpAddr>, IpAddr);

/// Whether the element (`src`, `dst`) is one `geofencectl unblock DST
/// [--client C]` removes: every element to `dst` without a client (the
/// server-wide ones and every client's pairs); with one, only that
/// client's pair elements.
pub fn unblock_matches(
    src: Option<IpAddr>,
    dst: IpAddr,
    want: IpAddr,
    client: Option<IpAddr>,
) -> bool {
    dst == want && (client.is_none() || src == client)
}

/// The kernel set an element lives in: (rule, pair set, IPv4).
type SetId = (usize, bool, bool);

fn set_of(k: &Key) -> SetId {
    (k.0, k.1.is_some(), k.2.is_ipv4())
}

/// Dynamic elements one client may hold at a time (all rules together).
pub const DYN_PER_CLIENT: usize = 4096;

/// What bounded the state had to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pressure {
    /// Elements a client lost to its own newer ones.
    pub evicted: u64,
    /// New elements refused because their set was full.
    pub refused: u64,
}

/// Whether a new element may go to the kernel.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Yes; `evict` (if any) must be removed from the kernel.
    Yes { evict: Option<DynElement> },
    /// No: its set is full of other clients' elements.
    Refused,
}

/// Live dynamic elements, keyed by (rule, src, dst), with their absolute
/// expiry and the app they were decided for.
pub struct DynState {
    elems: HashMap<Key, (u64, Option<String>)>,
    /// Per client: its elements by expiry.
    by_src: HashMap<IpAddr, BTreeSet<(u64, Key)>>,
    per_set: HashMap<SetId, usize>,
    set_cap: usize,
    per_client: usize,
    pressure: Pressure,
    dirty: bool,
}

impl Default for DynState {
    fn default() -> Self {
        DynState::with_bounds(DYN_DAEMON_CAP, DYN_PER_CLIENT)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl DynState {
    pub fn with_bounds(set_cap: usize, per_client: usize) -> DynState {
        DynState {
            elems: HashMap::new(),
            by_src: HashMap::new(),
            per_set: HashMap::new(),
            set_cap: set_cap.max(1),
            per_client: per_client.max(1),
            pressure: Pressure::default(),
            dirty: false,
        }
    }

    pub fn pressure(&self) -> Pressure {
        self.pressure
    }

    fn index(&mut self, k: Key, exp: u64) {
        if let Some(src) = k.1 {
            self.by_src.entry(src).or_default().insert((exp, k));
        }
        *self.per_set.entry(set_of(&k)).or_default() += 1;
    }

    fn unindex(&mut self, k: &Key, exp: u64) {
        if let Some(src) = k.1 {
            if let Some(s) = self.by_src.get_mut(&src) {
                s.remove(&(exp, *k));
                if s.is_empty() {
                    self.by_src.remove(&src);
                }
            }
        }
        if let Some(n) = self.per_set.get_mut(&set_of(k)) {
            *n = n.saturating_sub(1);
        }
    }

    /// Rebuilds the indexes from `elems`.
    fn reindex(&mut self) {
        self.by_src.clear();
        self.per_set.clear();
        let keys: Vec<(Key, u64)> = self.elems.iter().map(|(k, (e, _))| (*k, *e)).collect();
        for (k, e) in keys {
            self.index(k, e);
        }
    }

    fn remove(&mut self, k: &Key) -> Option<DynElement> {
        let (exp, _) = self.elems.remove(k)?;
        self.unindex(k, exp);
        self.dirty = true;
        let now = unix_now();
        Some(DynElement {
            rule_index: k.0,
            src: k.1,
            dst: k.2,
            timeout: Duration::from_secs(exp.saturating_sub(now)),
        })
    }

    /// The client's element closest to expiry.
    fn oldest_of(&self, src: &IpAddr) -> Option<Key> {
        self.by_src.get(src)?.iter().next().map(|(_, k)| *k)
    }

    /// Decides whether `e` may be added (before it goes to the kernel),
    /// making room within its client's own elements when needed.
    pub fn admit(&mut self, e: &DynElement) -> Admission {
        let k = (e.rule_index, e.src, e.dst);
        if self.elems.contains_key(&k) {
            return Admission::Yes { evict: None };
        }
        let own = e
            .src
            .and_then(|s| self.by_src.get(&s))
            .map_or(0, |s| s.len());
        let set_full = self.per_set.get(&set_of(&k)).copied().unwrap_or(0) >= self.set_cap;
        if own >= self.per_client || (set_full && own > 0) {
            // Trade the client's own oldest element (in the full set when
            // that is what is full).
            let victim = if set_full {
                e.src.and_then(|s| {
                    self.by_src
                        .get(&s)?
                        .iter()
                        .find_map(|(_, v)| (set_of(v) == set_of(&k)).then_some(*v))
                })
            } else {
                e.src.and_then(|s| self.oldest_of(&s))
            };
            if let Some(v) = victim {
                self.pressure.evicted += 1;
                return Admission::Yes {
                    evict: self.remove(&v),
                };
            }
        }
        if set_full {
            self.pressure.refused += 1;
            return Admission::Refused;
        }
        Admission::Yes { evict: None }
    }

    /// Records (or extends) an element.
    pub fn record(&mut self, e: &DynElement, app: Option<&str>) {
        let exp = unix_now().saturating_add(e.timeout.as_secs().max(1));
        let k = (e.rule_index, e.src, e.dst);
        match self.elems.get(&k).map(|(old, _)| *old) {
            Some(old) if exp > old => {
                self.unindex(&k, old);
                if let Some(slot) = self.elems.get_mut(&k) {
                    slot.0 = exp;
                }
                self.index(k, exp);
                self.dirty = true;
            }
            Some(_) => {}
            None => {
                self.elems.insert(k, (exp, app.map(str::to_string)));
                self.index(k, exp);
                self.dirty = true;
            }
        }
    }

    /// Re-decides every element under a new policy: `decide` returns the
    /// rule that blocks it now (None: no longer blocked). Returns the
    /// elements to remove from the kernel and those to add (moved to
    /// another rule's set, with their remaining lifetime).
    pub fn revalidate(
        &mut self,
        decide: &dyn Fn(&DynElement, Option<&str>) -> Option<usize>,
    ) -> (Vec<DynElement>, Vec<DynElement>) {
        let now = unix_now();
        let mut remove = Vec::new();
        let mut add = Vec::new();
        let old = std::mem::take(&mut self.elems);
        for ((rule_index, src, dst), (exp, app)) in old {
            if exp <= now {
                continue;
            }
            let e = DynElement {
                rule_index,
                src,
                dst,
                timeout: Duration::from_secs(exp - now),
            };
            match decide(&e, app.as_deref()) {
                Some(r) if r == rule_index => {
                    self.elems.insert((rule_index, src, dst), (exp, app));
                }
                Some(r) => {
                    remove.push(e.clone());
                    let moved = DynElement { rule_index: r, ..e };
                    self.elems.insert((r, src, dst), (exp, app));
                    add.push(moved);
                }
                None => remove.push(e),
            }
        }
        self.dirty |= !remove.is_empty();
        self.reindex();
        (remove, add)
    }

    /// Elements still alive, with their remaining lifetime.
    pub fn live(&mut self) -> Vec<DynElement> {
        let now = unix_now();
        let before = self.elems.len();
        self.elems.retain(|_, (exp, _)| *exp > now);
        if self.elems.len() != before {
            self.dirty = true;
            self.reindex();
        }
        self.elems
            .iter()
            .map(|(&(rule_index, src, dst), &(exp, _))| DynElement {
                rule_index,
                src,
                dst,
                timeout: Duration::from_secs(exp - now),
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.elems.len()
    }

    /// Forgets the elements `unblock` matches (see [`unblock_matches`]) and
    /// returns them, so they are neither saved nor restored.
    pub fn take_matching(&mut self, dst: IpAddr, client: Option<IpAddr>) -> Vec<DynElement> {
        let keys: Vec<Key> = self
            .elems
            .keys()
            .filter(|k| unblock_matches(k.1, k.2, dst, client))
            .copied()
            .collect();
        keys.iter().filter_map(|k| self.remove(k)).collect()
    }

    pub fn file(dir: &Path) -> PathBuf {
        dir.join("dynamic.json")
    }

    /// Loads the saved elements (missing or unreadable file: empty, with
    /// a warning for the latter).
    pub fn load(dir: &Path) -> DynState {
        let path = DynState::file(dir);
        let mut st = DynState::default();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return st,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read saved dynamic blocks");
                return st;
            }
        };
        match serde_json::from_str::<Vec<Saved>>(&text) {
            Ok(v) => {
                let now = unix_now();
                for s in v.into_iter().filter(|s| s.expires > now) {
                    // A file written by hand (or by an attacker with write
                    // access to the state directory) is held to the same
                    // bounds as live blocks.
                    let e = DynElement {
                        rule_index: s.rule_index,
                        src: s.src,
                        dst: s.dst,
                        timeout: Duration::from_secs(s.expires - now),
                    };
                    if let Admission::Yes { .. } = st.admit(&e) {
                        st.elems
                            .insert((s.rule_index, s.src, s.dst), (s.expires, s.app));
                        st.index((s.rule_index, s.src, s.dst), s.expires);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring corrupt saved dynamic blocks")
            }
        }
        st
    }

    /// The rows to persist if the state changed since the last snapshot
    /// (cheap: a copy, no I/O); marks it clean. The caller writes them with
    /// [`write_snapshot`] (off the enforcement thread) and calls
    /// [`DynState::mark_dirty`] if that fails, so the next one retries.
    pub fn snapshot(&mut self) -> Option<Snapshot> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        Some(Snapshot(
            self.elems
                .iter()
                .map(|(&(rule_index, src, dst), (expires, app))| Saved {
                    rule_index,
                    src,
                    dst,
                    expires: *expires,
                    app: app.clone(),
                })
                .collect(),
        ))
    }

    /// A write of an earlier snapshot failed: the next snapshot is taken
    /// even without a change.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Writes the state if it changed, on the calling thread (start-up,
    /// shutdown, tests). Errors are returned for the caller to log; the
    /// in-memory state stays dirty so the next call retries.
    pub fn save(&mut self, dir: &Path) -> std::io::Result<bool> {
        let Some(snap) = self.snapshot() else {
            return Ok(false);
        };
        if let Err(e) = write_snapshot(dir, &snap) {
            self.mark_dirty();
            return Err(e);
        }
        Ok(true)
    }
}

/// Dynamic blocks as of one moment, ready to be written.
pub struct Snapshot(Vec<Saved>);

/// Serialises a snapshot and writes it durably (temporary file, fsync,
/// rename, fsync of the directory).
pub fn write_snapshot(dir: &Path, snap: &Snapshot) -> std::io::Result<()> {
    let text = serde_json::to_vec(&snap.0).map_err(std::io::Error::other)?;
    crate::durable::write_atomic(dir, "dynamic.json", &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unblock_takes_only_matching_elements_and_they_stay_gone() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let el = |r: usize, src: Option<&str>, dst: &str| DynElement {
            rule_index: r,
            src: src.map(ip),
            dst: ip(dst),
            timeout: Duration::from_secs(600),
        };
        let fill = || {
            let mut st = DynState::default();
            for e in [
                el(0, Some("192.0.2.10"), "203.0.113.7"),
                el(1, Some("192.0.2.10"), "203.0.113.7"),
                el(0, Some("192.0.2.11"), "203.0.113.7"),
                el(0, None, "203.0.113.7"),
                el(0, Some("192.0.2.10"), "203.0.113.8"),
            ] {
                st.record(&e, None);
            }
            st
        };
        let mut st = fill();
        let gone = st.take_matching(ip("203.0.113.7"), Some(ip("192.0.2.10")));
        assert_eq!(gone.len(), 2, "both rules' pairs of that client");
        assert!(gone.iter().all(|e| e.src == Some(ip("192.0.2.10"))));
        assert_eq!(st.len(), 3);
        assert!(st
            .take_matching(ip("203.0.113.7"), Some(ip("192.0.2.10")))
            .is_empty());
        let mut st = fill();
        let gone = st.take_matching(ip("203.0.113.7"), None);
        assert_eq!(gone.len(), 4, "server-wide and every client's pairs");
        let left = st.live();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].dst, ip("203.0.113.8"));
        // Not restored after a restart either.
        let dir = std::env::temp_dir().join(format!("gf-unblock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        st.save(&dir).expect("save");
        let back = DynState::load(&dir).live();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].dst, ip("203.0.113.8"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn save_load_roundtrip_drops_expired() {
        let dir = std::env::temp_dir().join(format!("gf-state-{}", std::process::id()));
        let mut st = DynState::default();
        let e = DynElement {
            rule_index: 2,
            src: Some("198.51.100.2".parse().expect("ip")),
            dst: "203.0.113.10".parse().expect("ip"),
            timeout: Duration::from_secs(600),
        };
        st.record(&e, Some("zoom"));
        assert!(st.save(&dir).expect("save"));
        assert!(!st.save(&dir).expect("clean"));
        let mut back = DynState::load(&dir);
        let live = back.live();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].dst, e.dst);
        assert!(live[0].timeout > Duration::from_secs(590));
        std::fs::remove_dir_all(&dir).ok();
    }

    fn el(src: Option<&str>, dst: &str, secs: u64) -> DynElement {
        DynElement {
            rule_index: 0,
            src: src.map(|s| s.parse().expect("ip")),
            dst: dst.parse().expect("ip"),
            timeout: Duration::from_secs(secs),
        }
    }

    fn add(st: &mut DynState, e: &DynElement) -> Admission {
        let a = st.admit(e);
        if let Admission::Yes { .. } = a {
            st.record(e, Some("zoom"));
        }
        a
    }

    #[test]
    fn a_client_at_its_quota_trades_its_own_oldest_block() {
        let mut st = DynState::with_bounds(100, 4);
        let victim = el(Some("10.0.0.1"), "203.0.113.1", 600);
        assert_eq!(add(&mut st, &victim), Admission::Yes { evict: None });
        for i in 0..4u64 {
            let e = el(Some("10.0.0.66"), &format!("203.0.113.{}", 10 + i), 100 + i);
            assert_eq!(add(&mut st, &e), Admission::Yes { evict: None });
        }
        // The fifth of the attacker's blocks pushes out its own oldest.
        let e = el(Some("10.0.0.66"), "203.0.113.99", 900);
        match add(&mut st, &e) {
            Admission::Yes { evict: Some(old) } => {
                assert_eq!(old.dst.to_string(), "203.0.113.10");
                assert_eq!(old.src, e.src);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(st.len(), 5);
        assert!(st.live().iter().any(|x| x.dst == victim.dst));
        assert_eq!(st.pressure().evicted, 1);
        // Refreshing an existing element needs no room.
        assert_eq!(add(&mut st, &e), Admission::Yes { evict: None });
    }

    #[test]
    fn a_full_set_refuses_newcomers_instead_of_evicting_others() {
        let mut st = DynState::with_bounds(3, 100);
        for c in 1..=3 {
            let e = el(Some(&format!("10.0.0.{c}")), "203.0.113.1", 600);
            assert_eq!(add(&mut st, &e), Admission::Yes { evict: None });
        }
        let newcomer = el(Some("10.0.0.9"), "203.0.113.1", 600);
        assert_eq!(add(&mut st, &newcomer), Admission::Refused);
        // Server-wide elements live in another set.
        assert_eq!(
            add(&mut st, &el(None, "203.0.113.1", 600)),
            Admission::Yes { evict: None }
        );
        // A client that holds an element in the full set trades it.
        let e = el(Some("10.0.0.2"), "203.0.113.7", 600);
        assert!(matches!(
            add(&mut st, &e),
            Admission::Yes { evict: Some(_) }
        ));
        assert_eq!(st.pressure().refused, 1);
        assert_eq!(st.len(), 4);
    }

    #[test]
    fn a_huge_state_file_is_held_to_the_bounds() {
        let dir = std::env::temp_dir().join(format!("gf-state-big-{}", std::process::id()));
        let exp = unix_now() + 600;
        let v: Vec<Saved> = (0..(DYN_PER_CLIENT as u32 + 500))
            .map(|i| Saved {
                rule_index: 0,
                src: Some("10.0.0.66".parse().expect("ip")),
                dst: std::net::IpAddr::from(std::net::Ipv4Addr::from(0xCB00_0000 + i)),
                expires: exp,
                app: None,
            })
            .collect();
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(DynState::file(&dir), serde_json::to_vec(&v).expect("json")).expect("write");
        let st = DynState::load(&dir);
        assert_eq!(st.len(), DYN_PER_CLIENT);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn revalidate_keeps_moves_and_drops() {
        let mut st = DynState::default();
        let mk = |rule_index: usize, dst: &str| DynElement {
            rule_index,
            src: None,
            dst: dst.parse().expect("ip"),
            timeout: Duration::from_secs(100),
        };
        st.record(&mk(0, "203.0.113.1"), Some("zoom"));
        st.record(&mk(0, "203.0.113.2"), Some("teams"));
        st.record(&mk(1, "203.0.113.3"), Some("meet"));
        let (remove, add) = st.revalidate(&|_, app| match app {
            Some("zoom") => Some(0),
            Some("teams") => Some(2),
            _ => None,
        });
        assert_eq!(remove.len(), 2);
        assert_eq!(add.len(), 1);
        assert_eq!(add[0].rule_index, 2);
        let live = st.live();
        assert_eq!(live.len(), 2);
        assert!(live.iter().all(|e| e.dst.to_string() != "203.0.113.3"));
    }
}
