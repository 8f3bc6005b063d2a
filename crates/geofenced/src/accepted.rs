//! The last geo databases the daemon accepted, kept in
//! `STATE_DIR/accepted-geoip/` so that a database the daemon refuses at the
//! next start (a corrupt download, a truncated file after a crash, a file
//! deleted by mistake) does not leave the gateway without enforcement after
//! a reboot, when the kernel table is gone.
//!
//! * After every start or reload that the kernel accepted, each configured
//!   database is copied (only when it differs from the kept copy), the copy
//!   is opened with the same verified loader, then fsynced and renamed into
//!   place (`crate::durable`). A copy that does not verify (the file changed
//!   after it was loaded) is not kept.
//! * At start, when the configured databases are refused, [`fallback`] gives
//!   the kept copies for the same configured paths (all of them, or none).
//!
//! Copies are named after the configured path (`/var/lib/x/y.mmdb` ->
//! `var_lib_x_y.mmdb`), so a policy that lists other files finds no copy
//! instead of a wrong one.

use std::path::{Path, PathBuf};

use geofence_geo::GeoDb;

/// Directory of the kept copies.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("accepted-geoip")
}

/// File name of the kept copy of `configured`.
fn copy_name(configured: &Path) -> String {
    let s: String = configured
        .to_string_lossy()
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // Never a hidden name (temporary files start with a dot) nor empty.
    format!("db_{s}")
}

/// The kept copy of `configured` (it may not exist).
pub fn copy_of(state_dir: &Path, configured: &Path) -> PathBuf {
    dir(state_dir).join(copy_name(configured))
}

/// Keeps a verified copy of each of `configured`. Returns how many copies
/// were written (0 when all were current). Errors name the file.
pub fn keep(state_dir: &Path, configured: &[PathBuf]) -> Result<usize, String> {
    let d = dir(state_dir);
    let mut written = 0;
    for p in configured {
        let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let name = copy_name(p);
        let dest = d.join(&name);
        if std::fs::read(&dest).is_ok_and(|old| old == bytes) {
            continue;
        }
        // Verify exactly these bytes before they become the fallback.
        GeoDb::from_sources(vec![(p.display().to_string(), bytes.clone())])
            .map_err(|e| format!("not keeping a copy: {e}"))?;
        crate::durable::write_atomic(&d, &name, &bytes)
            .map_err(|e| format!("{}: {e}", dest.display()))?;
        written += 1;
    }
    Ok(written)
}

/// The kept copies of `configured`, when every one of them exists.
pub fn fallback(state_dir: &Path, configured: &[PathBuf]) -> Option<Vec<PathBuf>> {
    if configured.is_empty() {
        return None;
    }
    let v: Vec<PathBuf> = configured.iter().map(|p| copy_of(state_dir, p)).collect();
    v.iter().all(|p| p.is_file()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geofence_testkit::mmdb::geoip2_country;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gf-accepted-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    #[test]
    fn keeps_a_verified_copy_and_offers_it_when_the_file_is_corrupt() {
        let d = tmp("keep");
        let db = d.join("geo.mmdb");
        geoip2_country(&[("203.0.113.0/24", "RU", None)])
            .write(&db)
            .expect("mmdb");
        let state = d.join("state");
        let conf = vec![db.clone()];
        assert_eq!(fallback(&state, &conf), None, "nothing kept yet");
        assert_eq!(keep(&state, &conf), Ok(1));
        assert_eq!(keep(&state, &conf), Ok(0), "unchanged: not rewritten");
        // The configured file is now corrupt: the copy still opens.
        std::fs::write(&db, b"not a database").expect("corrupt");
        assert!(GeoDb::open(&conf).is_err());
        let fb = fallback(&state, &conf).expect("fallback");
        let g = GeoDb::open(&fb).expect("copy opens");
        let info = g.lookup("203.0.113.7".parse().expect("ip"));
        assert_eq!(info.country.map(|c| c.to_string()).as_deref(), Some("RU"));
        // A corrupt file is never kept, and the good copy survives.
        assert!(keep(&state, &conf).is_err());
        assert!(GeoDb::open(&fb).is_ok());
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn other_paths_find_no_copy() {
        let d = tmp("other");
        let a = d.join("a.mmdb");
        geoip2_country(&[("203.0.113.0/24", "RU", None)])
            .write(&a)
            .expect("mmdb");
        let state = d.join("state");
        keep(&state, std::slice::from_ref(&a)).expect("keep");
        assert_eq!(fallback(&state, &[d.join("b.mmdb")]), None);
        assert_eq!(fallback(&state, &[a.clone(), d.join("b.mmdb")]), None);
        assert_eq!(fallback(&state, &[]), None);
        assert!(copy_name(Path::new("/var/lib/x y/../z.mmdb")).starts_with("db_var_lib_x_y_.._z"));
        std::fs::remove_dir_all(&d).ok();
    }
}
