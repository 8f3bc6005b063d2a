//! Dynamic blocks that must survive a restart: kept in memory with their
//! absolute expiry and written to `STATE_DIR/dynamic.json` (temporary file,
//! fsync, rename, fsync of the directory: `crate::durable`). A failed write (full disk, read-only file
//! system) is logged and retried later; it never stops enforcement, because
//! the kernel holds the elements anyway.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use geofence_nft::model::DynElement;
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

/// Live dynamic elements, keyed by (rule, src, dst), with their absolute
/// expiry and the app they were decided for.
#[derive(Default)]
pub struct DynState {
    elems: HashMap<Key, (u64, Option<String>)>,
    dirty: bool,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl DynState {
    /// Records (or extends) an element.
    pub fn record(&mut self, e: &DynElement, app: Option<&str>) {
        let exp = unix_now().saturating_add(e.timeout.as_secs().max(1));
        let slot = self
            .elems
            .entry((e.rule_index, e.src, e.dst))
            .or_insert((0, app.map(str::to_string)));
        if exp > slot.0 {
            slot.0 = exp;
            self.dirty = true;
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
        (remove, add)
    }

    /// Elements still alive, with their remaining lifetime.
    pub fn live(&mut self) -> Vec<DynElement> {
        let now = unix_now();
        let before = self.elems.len();
        self.elems.retain(|_, (exp, _)| *exp > now);
        if self.elems.len() != before {
            self.dirty = true;
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
                    st.elems
                        .insert((s.rule_index, s.src, s.dst), (s.expires, s.app));
                }
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring corrupt saved dynamic blocks")
            }
        }
        st
    }

    /// Writes the state if it changed. Errors are returned for the caller
    /// to log; the in-memory state stays dirty so the next call retries.
    pub fn save(&mut self, dir: &Path) -> std::io::Result<bool> {
        if !self.dirty {
            return Ok(false);
        }
        let v: Vec<Saved> = self
            .elems
            .iter()
            .map(|(&(rule_index, src, dst), (expires, app))| Saved {
                rule_index,
                src,
                dst,
                expires: *expires,
                app: app.clone(),
            })
            .collect();
        let text = serde_json::to_vec(&v).map_err(std::io::Error::other)?;
        crate::durable::write_atomic(dir, "dynamic.json", &text)?;
        self.dirty = false;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
