//! Shared helpers for the integration tests in `tests/`: where the
//! project's binaries and the `../shared` material are, and child processes
//! that are killed when a test ends, also when it fails.

use std::path::PathBuf;
use std::process::Child;

/// A built binary of the workspace (`geofenced`, `geofencectl`), next to the
/// test executable's `deps/` directory.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe
        .parent()
        .and_then(|d| {
            if d.ends_with("deps") {
                d.parent()
            } else {
                Some(d)
            }
        })
        .map(PathBuf::from)
        .unwrap_or_default();
    dir.join(name)
}

/// `../shared` beside the checkout, when present.
pub fn shared_dir() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared"));
    p.is_dir().then_some(p)
}

/// Kills (SIGKILL) and reaps the child on drop.
pub struct Reaped(Option<Child>);

impl Reaped {
    pub fn new(c: Child) -> Reaped {
        Reaped(Some(c))
    }

    pub fn id(&self) -> u32 {
        self.0.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends a signal by name (`HUP`, `TERM`, `KILL`).
    pub fn signal(&self, sig: &str) {
        let _ = std::process::Command::new("kill")
            .args([format!("-{sig}"), self.id().to_string()])
            .status();
    }

    /// Waits for the child to exit and returns its stdout.
    pub fn output(mut self) -> String {
        match self.0.take().map(|c| c.wait_with_output()) {
            Some(Ok(o)) => String::from_utf8_lossy(&o.stdout).into_owned(),
            _ => String::new(),
        }
    }

    /// Waits for the child to exit; true when it exited 0.
    pub fn wait_ok(mut self) -> bool {
        self.0
            .take()
            .and_then(|mut c| c.wait().ok())
            .is_some_and(|s| s.success())
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
