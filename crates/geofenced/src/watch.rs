//! Notices within milliseconds that table `inet geofence` is gone (another
//! tool's `flush ruleset`, e.g. `systemctl restart nftables` with Debian's
//! stock /etc/nftables.conf) and asks the enforcement thread to restore it.
//!
//! Runs on its own thread with its own netlink socket, so the check (one
//! small table dump every [`EVERY`]) never waits behind block batches and
//! never delays them. It only detects; the enforcement thread re-checks
//! (`Cmd::Presence`) and restores, so a request that races a restore is a
//! cheap no-op. The full read-back every 2 s still catches edits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::enforcer::Cmd;

/// Interval between two presence checks.
pub const EVERY: Duration = Duration::from_millis(20);

pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    /// Starts watching `table` (which must already be applied).
    pub fn start(table: &str, etx: SyncSender<Cmd>) -> std::io::Result<Watch> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let table = table.to_string();
        let thread = std::thread::Builder::new()
            .name("geofence-watch".into())
            .spawn(move || {
                let mut nft = match geofence_nft::apply::Nft::with_table(&table) {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot watch the nftables table; a deleted table is restored by the 2 s check only");
                        return;
                    }
                };
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EVERY);
                    if let Ok(false) = nft.table_exists() {
                        let _ = etx.try_send(Cmd::Presence);
                    }
                }
            })?;
        Ok(Watch {
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
