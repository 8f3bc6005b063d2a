//! The enforcement thread: owns the nftables handle (libnftnl is not
//! `Send`), applies rulesets, adds dynamic blocks in batches, cuts
//! established flows, persists dynamic blocks and heals the table when
//! someone deletes or edits it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use geofence_act::{redecide as redecide_block, Block};
use geofence_alert::{Alert, AlertSender, EventKind};
use geofence_classify::AppId;
use geofence_geo::GeoDb;
use geofence_nft::apply::Nft;
use geofence_nft::model::{DynElement, RulesetSpec};
use geofence_nft::render::{render, Ruleset};
use geofence_policy::Policy;

use crate::state::{write_snapshot, Admission, DynState, Snapshot};

/// A run-time block decided by the action stage, with the alert to write
/// once it is in the kernel.
pub struct BlockReq {
    pub block: Block,
    pub alert: Alert,
    /// Told once the element is committed in the kernel (or why not): the
    /// DNS gate holds the answer until then.
    pub ack: Option<Ack>,
}

/// The enforcer's answer to a block that waits for it.
pub type Ack = tokio::sync::oneshot::Sender<Result<(), String>>;

/// What dynamic blocks already in the kernel (or saved) are re-decided
/// with: the policy and databases about to be applied.
pub struct Redecide {
    pub policy: Arc<Policy>,
    pub geo: Arc<GeoDb>,
}

pub enum Cmd {
    /// Apply a new ruleset (start, reload); the reply says how it went.
    Apply {
        spec: RulesetSpec,
        /// Every dynamic block (live, or restored from the state file at
        /// start) is re-decided under this policy before the table is
        /// applied: kept, moved to its new rule's set, or dropped.
        redecide: Redecide,
        reply: Sender<Result<String, String>>,
    },
    Block(Box<BlockReq>),
    /// Check the table still holds what we put there; restore it if not.
    Verify,
    /// Cheap check (one small dump) that the table still exists; a full
    /// [`Cmd::Verify`] and restore when it does not. Sent by the watch
    /// thread (`watch.rs`) when it sees the table gone, so that another
    /// tool's `flush ruleset` is undone within milliseconds.
    Presence,
    /// `geofencectl unblock`: remove the matching dynamic blocks from the
    /// kernel and the state, write an alert; the reply is how many.
    Unblock {
        dst: IpAddr,
        client: Option<IpAddr>,
        /// The local user who asked.
        who: String,
        reply: Sender<Result<usize, String>>,
    },
    /// Persist dynamic blocks if they changed.
    Save,
    /// Log time-to-block percentiles.
    Stats,
    Stop,
}

pub struct Enforcer {
    pub nft: Option<Nft>,
    pub enforce: bool,
    pub ruleset: Option<Ruleset>,
    pub state: DynState,
    pub state_dir: PathBuf,
    pub alerts: AlertSender,
    pub heartbeat: Arc<AtomicU64>,
    /// Time-to-block samples in microseconds (bounded ring).
    lat: Vec<u64>,
    lat_next: usize,
    /// The kernel's ruleset generation after our last commit or full check.
    known_gen: Option<u32>,
    /// Periodic checks so far.
    checks: u32,
    /// The saver thread's queue (one snapshot at a time) and the thread.
    saver: Option<Saver>,
    /// Set by the saver when a write failed, so the state is saved again.
    save_failed: Arc<AtomicBool>,
    /// Dynamic-state pressure already alerted.
    reported: crate::state::Pressure,
}

const LAT_SAMPLES: usize = 100_000;

/// Commands the enforcement queue holds; senders of blocks use `try_send`
/// and count what a full queue drops.
pub const QUEUE: usize = 16_384;

static BLOCKS_DROPPED: AtomicU64 = AtomicU64::new(0);

/// Counts a block dropped because the enforcement queue was full.
pub fn count_dropped() {
    BLOCKS_DROPPED.fetch_add(1, Ordering::Relaxed);
}

/// Blocks dropped so far because the enforcement queue was full.
pub fn dropped() -> u64 {
    BLOCKS_DROPPED.load(Ordering::Relaxed)
}
/// Every this many periodic checks (2 s apart), the table is read back in
/// full even if the ruleset generation did not move.
const FULL_CHECK_EVERY: u32 = 15;

/// Most blocks sent in one netlink transaction.
const BATCH: usize = 4096;

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The thread that writes `dynamic.json`: serialising tens of thousands of
/// blocks and two fsyncs take milliseconds (much longer on a busy disk),
/// which on the enforcement thread would delay every block queued behind
/// them. A failed write is logged (at most once a minute) and flagged so
/// the enforcer snapshots again.
type Saver = (SyncSender<Snapshot>, std::thread::JoinHandle<()>);

fn spawn_saver(dir: PathBuf) -> (Option<Saver>, Arc<AtomicBool>) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Snapshot>(1);
    let failed = Arc::new(AtomicBool::new(false));
    let flag = failed.clone();
    let spawned = std::thread::Builder::new()
        .name("geofence-state".to_string())
        .spawn(move || {
            let mut last_error: Option<Instant> = None;
            for snap in rx {
                if let Err(e) = write_snapshot(&dir, &snap) {
                    flag.store(true, Ordering::Relaxed);
                    if last_error.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot save dynamic blocks; enforcement continues, retrying");
                        last_error = Some(Instant::now());
                    }
                }
            }
        });
    match spawned {
        Ok(handle) => (Some((tx, handle)), failed),
        Err(e) => {
            // Without the thread the state stays dirty: the shutdown save
            // still writes it.
            tracing::error!(error = %e, "cannot start the state saver thread");
            (None, failed)
        }
    }
}

pub fn monotonic_secs() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs()
}

impl Enforcer {
    pub fn new(
        nft: Option<Nft>,
        enforce: bool,
        state_dir: PathBuf,
        alerts: AlertSender,
        heartbeat: Arc<AtomicU64>,
    ) -> Enforcer {
        let state = DynState::load(&state_dir);
        let (saver, save_failed) = spawn_saver(state_dir.clone());
        Enforcer {
            nft,
            enforce,
            ruleset: None,
            state,
            state_dir,
            alerts,
            heartbeat,
            lat: Vec::new(),
            lat_next: 0,
            known_gen: None,
            checks: 0,
            saver,
            save_failed,
            reported: crate::state::Pressure::default(),
        }
    }

    pub fn run(mut self, rx: Receiver<Cmd>) {
        loop {
            self.heartbeat.store(monotonic_secs(), Ordering::Relaxed);
            let cmd = match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            match cmd {
                Cmd::Apply {
                    spec,
                    redecide,
                    reply,
                } => {
                    let r = self.apply(&spec, &redecide);
                    let _ = reply.send(r);
                }
                Cmd::Block(first) => {
                    let mut batch = vec![*first];
                    let mut stop = false;
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(Cmd::Block(b)) => batch.push(*b),
                            Ok(Cmd::Stop) => {
                                stop = true;
                                break;
                            }
                            Ok(other) => {
                                self.block(std::mem::take(&mut batch));
                                self.other(other);
                            }
                            Err(_) => break,
                        }
                    }
                    self.block(batch);
                    if stop {
                        break;
                    }
                }
                Cmd::Stop => break,
                other => self.other(other),
            }
        }
        self.save_now();
    }

    fn other(&mut self, c: Cmd) {
        match c {
            Cmd::Verify => self.verify(),
            Cmd::Presence => self.presence(),
            Cmd::Save => self.save(),
            Cmd::Stats => self.stats(),
            Cmd::Apply {
                spec,
                redecide,
                reply,
            } => {
                let r = self.apply(&spec, &redecide);
                let _ = reply.send(r);
            }
            Cmd::Block(b) => self.block(vec![*b]),
            Cmd::Unblock {
                dst,
                client,
                who,
                reply,
            } => {
                let r = self.unblock(dst, client, &who);
                let _ = reply.send(r);
            }
            Cmd::Stop => {}
        }
    }

    fn apply(&mut self, spec: &RulesetSpec, redecide: &Redecide) -> Result<String, String> {
        let rs = render(spec);
        // Rule positions and jurisdictions can change with a new policy or
        // database, and blocks restored from the state file were decided by
        // an earlier one: re-decide every dynamic block (kept, moved to its
        // new rule's set, or dropped) before anything reaches the kernel.
        let (stale, moved) = self.state.revalidate(&|e, app| {
            let app = app.and_then(|a| AppId::new(a).ok());
            redecide_block(&redecide.policy, &redecide.geo, e, app.as_ref())
        });
        let keep = self.state.live();
        let Some(nft) = self.nft.as_mut() else {
            self.ruleset = Some(rs);
            return Ok("no kernel access (dry run)".to_string());
        };
        let report = nft.apply(&rs, &keep).map_err(|e| e.to_string())?;
        let verified = nft
            .verify(&rs)
            .map_err(|e| format!("read-back failed: {e}"))?;
        if !verified.ok() {
            return Err(format!("read-back does not match the intent: {verified:?}"));
        }
        self.ruleset = Some(rs);
        if !stale.is_empty() {
            // Only elements still in the kernel need deleting (one that
            // expires in between is isolated by `remove_dynamic_each`).
            let present: std::collections::HashSet<(usize, Option<IpAddr>, IpAddr)> = nft
                .list_dynamic()
                .map(|v| {
                    v.into_iter()
                        .map(|e| (e.rule_index, e.src, e.dst))
                        .collect()
                })
                .unwrap_or_default();
            let gone: Vec<DynElement> = stale
                .into_iter()
                .filter(|e| present.contains(&(e.rule_index, e.src, e.dst)))
                .collect();
            let failed = nft.remove_dynamic_each(&gone);
            if let Some((_, e)) = failed.first() {
                tracing::warn!(error = %e, failed = failed.len(), "could not remove some dynamic blocks the new policy no longer wants (expired meanwhile?)");
            }
            if !gone.is_empty() || !moved.is_empty() {
                tracing::info!(
                    removed = gone.len() - failed.len(),
                    moved = moved.len(),
                    "dynamic blocks re-decided under the new policy"
                );
            }
        }
        self.note_commit();
        Ok(format!("{report:?}"))
    }

    fn block(&mut self, batch: Vec<BlockReq>) {
        let batch = if self.enforce {
            self.admit(batch)
        } else {
            batch
        };
        if batch.is_empty() {
            return;
        }
        let elems: Vec<DynElement> = batch.iter().map(|b| b.block.elem.clone()).collect();
        // One refused element (its rule's set gone after a reload, ...) does
        // not keep the rest of the batch out of the kernel.
        let failed: Vec<(usize, String)> = match (self.enforce, self.nft.as_mut()) {
            (true, Some(nft)) => nft.add_dynamic_each(&elems),
            (true, None) => (0..elems.len())
                .map(|i| (i, "no kernel access".to_string()))
                .collect(),
            (false, _) => Vec::new(),
        };
        let done = now_ns();
        if self.enforce {
            self.note_commit();
        }
        if let Some((_, first)) = failed.first() {
            tracing::error!(error = %first, failed = failed.len(), blocks = batch.len(), "adding dynamic blocks failed; the other blocks of the batch are in force");
        }
        let mut refused: std::collections::HashMap<usize, String> = failed.into_iter().collect();
        // Release held DNS answers first: each one whose element is in, now.
        let mut batch = batch;
        for (i, b) in batch.iter_mut().enumerate() {
            if let Some(ack) = b.ack.take() {
                let _ = ack.send(match refused.get(&i) {
                    Some(e) => Err(e.clone()),
                    None => Ok(()),
                });
            }
        }
        for (
            i,
            BlockReq {
                block: b, alert, ..
            },
        ) in batch.into_iter().enumerate()
        {
            let mut a = alert;
            if let Some(e) = refused.remove(&i) {
                // No verdict: the traffic was not stopped.
                a.verdict = None;
                a.reason = format!("{} (NOT enforced: {e})", a.reason);
                self.alerts.send(a);
                continue;
            }
            if self.enforce {
                let us = done.saturating_sub(b.decided_ns) / 1000;
                self.state
                    .record(&b.elem, b.app.as_ref().map(|a| a.as_str()));
                a.enforced_within_us = Some(us);
                self.lat_sample(us);
                if let Some((src, dst)) = b.cut {
                    if let Err(e) = geofence_nft::conntrack::kill_conntrack(src, dst) {
                        tracing::warn!(%src, %dst, error = %e, "could not remove conntrack entries");
                    }
                }
            }
            self.alerts.send(a);
        }
    }

    /// Removes the dynamic blocks to `dst` (only `client`'s pairs when
    /// given) from the kernel and from the saved state, and says so in an
    /// alert. Elements in the kernel that the state does not know (added
    /// by an earlier run whose state file was lost) are removed too.
    fn unblock(&mut self, dst: IpAddr, client: Option<IpAddr>, who: &str) -> Result<usize, String> {
        use crate::state::unblock_matches;
        let mut gone = self.state.take_matching(dst, client);
        let mut removed = gone.len();
        if let Some(nft) = self.nft.as_mut() {
            let in_kernel: Vec<DynElement> = nft
                .list_dynamic()
                .map_err(|e| format!("cannot list dynamic blocks: {e}"))?
                .into_iter()
                .filter(|e| unblock_matches(e.src, e.dst, dst, client))
                .collect();
            let known: std::collections::HashSet<(usize, Option<IpAddr>, IpAddr)> =
                gone.iter().map(|e| (e.rule_index, e.src, e.dst)).collect();
            removed += in_kernel
                .iter()
                .filter(|e| !known.contains(&(e.rule_index, e.src, e.dst)))
                .count();
            gone = in_kernel;
            let failed = nft.remove_dynamic_each(&gone);
            if let Some((_, e)) = failed.first() {
                tracing::warn!(error = %e, failed = failed.len(), "could not remove some dynamic blocks (expired meanwhile?)");
            }
            removed = removed.saturating_sub(failed.len());
            self.note_commit();
        }
        let target = match client {
            Some(c) => format!("{dst} for client {c}"),
            None => format!("{dst} for every client"),
        };
        let mut a = Alert::new(
            EventKind::Daemon,
            "allow",
            format!("{removed} dynamic block(s) to {target} removed: unblocked by geofencectl, asked by {who}"),
        );
        a.dest_ip = Some(dst);
        a.src_ip = client;
        a.evidence = Some(format!(
            "who={who}; why=unblocked by geofencectl; the engine blocks again on the next detection while the policy says block (a lasting exception is an `except` entry)"
        ));
        self.alerts.send(a);
        tracing::info!(%dst, client = ?client, removed, who, "dynamic blocks removed by geofencectl unblock");
        Ok(removed)
    }

    /// Holds a batch to the bounds of the dynamic state: refused blocks
    /// are reported as not enforced; blocks a client traded for its newer
    /// ones leave the kernel.
    fn admit(&mut self, batch: Vec<BlockReq>) -> Vec<BlockReq> {
        let mut out = Vec::with_capacity(batch.len());
        let mut evicted = Vec::new();
        for b in batch {
            match self.state.admit(&b.block.elem) {
                Admission::Yes { evict } => {
                    evicted.extend(evict);
                    out.push(b);
                }
                Admission::Refused => {
                    let why = "dynamic block set full of other clients' blocks";
                    if let Some(ack) = b.ack {
                        let _ = ack.send(Err(why.to_string()));
                    }
                    let mut a = b.alert;
                    a.verdict = None;
                    a.reason = format!("{} (NOT enforced: {why})", a.reason);
                    self.alerts.send(a);
                }
            }
        }
        if let Some(nft) = self.nft.as_mut() {
            // One transaction each: an element that already expired in the
            // kernel must not abort the removal of the others.
            for e in evicted {
                let _ = nft.remove_dynamic(std::slice::from_ref(&e));
            }
        }
        out
    }

    fn lat_sample(&mut self, us: u64) {
        if self.lat.len() < LAT_SAMPLES {
            self.lat.push(us);
        } else {
            self.lat[self.lat_next] = us;
            self.lat_next = (self.lat_next + 1) % LAT_SAMPLES;
        }
    }

    fn stats(&mut self) {
        // Bounded state under pressure: one alert per stats period.
        let p = self.state.pressure();
        if p != self.reported {
            let mut a = Alert::new(
                EventKind::Daemon,
                "alert",
                format!(
                    "dynamic blocks at their bounds: {} evicted (a client's own oldest, for its newer blocks), {} refused (set full of other clients' blocks) since start; {} live",
                    p.evicted,
                    p.refused,
                    self.state.len()
                ),
            );
            a.evidence = Some(format!(
                "at most {} per set, {} per client",
                geofence_nft::model::DYN_DAEMON_CAP,
                crate::state::DYN_PER_CLIENT
            ));
            self.alerts.send(a);
            self.reported = p;
        }
        if self.lat.is_empty() {
            return;
        }
        let mut v = self.lat.clone();
        v.sort_unstable();
        let p = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
        tracing::info!(
            samples = v.len(),
            p50_us = p(0.5),
            p99_us = p(0.99),
            max_us = p(1.0),
            dynamic_blocks = self.state.len(),
            "time to block"
        );
    }

    /// Reads the kernel's ruleset generation after a commit of ours (or a
    /// full check): while it stays the same, nothing anywhere changed and
    /// the periodic checks need not read the table back.
    fn note_commit(&mut self) {
        self.known_gen = self.nft.as_mut().and_then(|n| n.generation().ok());
    }

    /// Nothing was committed by anyone since our last commit or full check.
    fn unchanged(&mut self) -> bool {
        let (Some(k), Some(nft)) = (self.known_gen, self.nft.as_mut()) else {
            return false;
        };
        nft.generation().is_ok_and(|g| g == k)
    }

    fn presence(&mut self) {
        if self.nft.is_none() || self.ruleset.is_none() || self.unchanged() {
            return;
        }
        // An error here is left to the periodic full check.
        if let Some(Ok(false)) = self.nft.as_mut().map(|n| n.table_exists()) {
            self.verify_full();
        }
    }

    /// The periodic tamper check: a full read-back only when the ruleset
    /// generation moved (someone committed something, maybe in another
    /// table), and every [`FULL_CHECK_EVERY`] checks regardless (a foreign
    /// commit between ours and our read of the generation would otherwise
    /// go unseen). A full read-back of large static sets takes long enough
    /// to delay the blocks queued behind it.
    fn verify(&mut self) {
        self.checks = self.checks.wrapping_add(1);
        if !self.checks.is_multiple_of(FULL_CHECK_EVERY) && self.unchanged() {
            return;
        }
        self.verify_full();
    }

    fn verify_full(&mut self) {
        let (Some(nft), Some(rs)) = (self.nft.as_mut(), self.ruleset.as_ref()) else {
            return;
        };
        let bad = match nft.verify(rs) {
            Ok(v) if v.ok() => {
                self.note_commit();
                return;
            }
            Ok(v) => format!("{v:?}"),
            Err(e) => e.to_string(),
        };
        tracing::error!(problem = %bad, "nftables table was changed or deleted; restoring it");
        let keep = self.state.live();
        let restored = nft.apply(rs, &keep);
        let mut a = Alert::new(
            EventKind::Tamper,
            "block",
            match &restored {
                Ok(_) => format!("table inet {} was changed or deleted outside geofenced; restored it with {} dynamic block(s)", rs.table, keep.len()),
                Err(e) => format!("table inet {} was changed or deleted outside geofenced; restoring FAILED: {e}", rs.table),
            },
        );
        a.evidence = Some(bad);
        self.alerts.send(a);
        self.note_commit();
    }

    /// Hands the dynamic blocks to the saver thread if they changed: the
    /// serialisation and the fsyncs never hold up a block.
    fn save(&mut self) {
        let _ = self.state.live();
        if let Some(snap) = self.state.snapshot() {
            // The saver is still writing the previous snapshot (a slow
            // disk): take a new one next time.
            let sent = self
                .saver
                .as_ref()
                .is_some_and(|(tx, _)| tx.try_send(snap).is_ok());
            if !sent {
                self.state.mark_dirty();
            }
        }
        if self.save_failed.swap(false, Ordering::Relaxed) {
            self.state.mark_dirty();
        }
    }

    /// At shutdown: the last state, written before the thread ends (after
    /// the saver has finished, so the two never write at once).
    fn save_now(&mut self) {
        if let Some((tx, handle)) = self.saver.take() {
            drop(tx);
            let _ = handle.join();
        }
        if self.save_failed.swap(false, Ordering::Relaxed) {
            self.state.mark_dirty();
        }
        let _ = self.state.live();
        if let Err(e) = self.state.save(&self.state_dir) {
            tracing::warn!(dir = %self.state_dir.display(), error = %e, "cannot save dynamic blocks at shutdown");
        }
    }
}
