//! Shared helpers for the integration tests in `tests/`: where the
//! project's binaries and the `../shared` material are, and child processes
//! that are killed when a test ends, also when it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use geofence_testkit::netns::Topology;

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

/// Runs `tool` (a test binary such as `gf-e2e-probe`) with `args` in
/// namespace `ns`: its exit code and trimmed stdout.
pub fn run_tool(t: &Topology, tool: &str, ns: &str, args: &[&str]) -> (i32, String) {
    let mut cmd = vec![tool];
    cmd.extend_from_slice(args);
    let o = t.exec(ns, &cmd).expect("tool runs");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).trim().to_string(),
    )
}

/// Starts `tool` with `args` in namespace `ns` and waits for its first
/// output (servers print `listening` once they are ready).
pub fn spawn_tool(t: &Topology, tool: &str, ns: &str, args: &[&str]) -> Reaped {
    let mut cmd = vec![tool];
    cmd.extend_from_slice(args);
    let mut c = t.spawn(ns, &cmd).expect("spawn tool");
    if let Some(out) = c.stdout.as_mut() {
        use std::io::Read;
        let mut b = [0u8; 10];
        let _ = out.read(&mut b);
    }
    Reaped::new(c)
}

/// Starts the built `geofenced` in the gateway namespace with `config`,
/// its log (text format) written to `log`.
pub fn start_daemon(t: &Topology, config: &Path, log: &Path) -> Reaped {
    let bin = workspace_bin("geofenced");
    assert!(bin.exists(), "geofenced not built at {}", bin.display());
    let c = Command::new("ip")
        .args(["netns", "exec", &t.gw])
        .arg(&bin)
        .arg("--config")
        .arg(config)
        .args(["--log-format", "text"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("start geofenced");
    Reaped::new(c)
}
