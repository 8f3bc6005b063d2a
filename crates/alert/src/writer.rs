//! A writer thread in front of [`AlertLog`], so the enforcement path only
//! ever does a non-blocking channel send.

use crate::alert::Alert;
use crate::log::{AlertLog, AlertStats};
use crate::throttle::AlertThrottle;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

enum Msg {
    Alert(Box<Alert>),
    Reopen,
    Shutdown,
}

#[derive(Default)]
struct Shared {
    /// Alerts refused because the queue was full, not yet handed to the log.
    queue_drops: AtomicU64,
    /// All queue drops ever.
    queue_drops_total: AtomicU64,
    snapshot: Mutex<AlertStats>,
}

/// Cheap, cloneable handle used by the engine. Never blocks.
#[derive(Clone)]
pub struct AlertSender {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
}

/// Owns the writer thread; [`AlertWriter::shutdown`] drains the queue and
/// writes the backlog before returning.
pub struct AlertWriter {
    tx: SyncSender<Msg>,
    thread: Option<JoinHandle<()>>,
}

/// Starts a thread that owns `log`. `queue` is the channel capacity; when it
/// is full, [`AlertSender::send`] drops the alert, counts it, and the loss is
/// reported in the file by a `daemon` notice.
pub fn spawn_writer(log: AlertLog, queue: usize) -> std::io::Result<(AlertSender, AlertWriter)> {
    spawn(log, queue, None)
}

/// [`spawn_writer`] with an [`AlertThrottle`] applied on the writer thread:
/// repeats are suppressed there and summaries written when windows end
/// (checked every quarter second, and all at shutdown).
pub fn spawn_writer_throttled(
    log: AlertLog,
    queue: usize,
    throttle: AlertThrottle,
) -> std::io::Result<(AlertSender, AlertWriter)> {
    spawn(log, queue, Some(throttle))
}

fn spawn(
    log: AlertLog,
    queue: usize,
    throttle: Option<AlertThrottle>,
) -> std::io::Result<(AlertSender, AlertWriter)> {
    let (tx, rx) = mpsc::sync_channel::<Msg>(queue.max(1));
    let shared = Arc::new(Shared::default());
    let sh = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("geofence-alerts".into())
        .spawn(move || writer_loop(log, rx, sh, throttle))?;
    Ok((
        AlertSender {
            tx: tx.clone(),
            shared,
        },
        AlertWriter {
            tx,
            thread: Some(thread),
        },
    ))
}

/// Queue overflows are handed to the log (and so reported by a notice line)
/// at most this often, so an alert storm yields one notice per second, not
/// one per alert.
const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// How often the throttle's finished windows are summarised.
const EXPIRE_INTERVAL: Duration = Duration::from_millis(250);

fn writer_loop(
    mut log: AlertLog,
    rx: mpsc::Receiver<Msg>,
    shared: Arc<Shared>,
    mut throttle: Option<AlertThrottle>,
) {
    let mut last_report: Option<Instant> = None;
    let mut last_expire = Instant::now();
    let mut out: Vec<Alert> = Vec::new();
    let emit = |log: &mut AlertLog, out: &mut Vec<Alert>| {
        for a in out.drain(..) {
            log.write(&a);
        }
    };
    loop {
        let msg = rx.recv_timeout(Duration::from_millis(250));
        let final_round = matches!(msg, Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected));
        if final_round || last_report.is_none_or(|t| t.elapsed() >= DROP_REPORT_INTERVAL) {
            let lost = shared.queue_drops.swap(0, Ordering::Relaxed);
            if lost > 0 {
                log.note_dropped(lost);
                last_report = Some(Instant::now());
            }
        }
        match msg {
            Ok(Msg::Alert(a)) => match throttle.as_mut() {
                Some(th) => {
                    th.admit(*a, Instant::now(), &mut out);
                    emit(&mut log, &mut out);
                }
                None => log.write(&a),
            },
            Ok(Msg::Reopen) => {
                if let Err(e) = log.reopen() {
                    tracing::warn!(error = %e, "alert log reopen failed; will retry");
                }
            }
            Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                // Drain what is already queued, then write the backlog.
                while let Ok(m) = rx.try_recv() {
                    if let Msg::Alert(a) = m {
                        match throttle.as_mut() {
                            Some(th) => th.admit(*a, Instant::now(), &mut out),
                            None => out.push(*a),
                        }
                        emit(&mut log, &mut out);
                    }
                }
                if let Some(th) = throttle.as_mut() {
                    th.drain(&mut out);
                    emit(&mut log, &mut out);
                }
                log.flush_backlog();
                publish(&log, &shared);
                return;
            }
            Err(RecvTimeoutError::Timeout) => log.tick(),
        }
        if let Some(th) = throttle.as_mut() {
            if last_expire.elapsed() >= EXPIRE_INTERVAL {
                last_expire = Instant::now();
                th.expire(last_expire, &mut out);
                emit(&mut log, &mut out);
            }
        }
        publish(&log, &shared);
    }
}

fn publish(log: &AlertLog, shared: &Shared) {
    if let Ok(mut s) = shared.snapshot.lock() {
        *s = log.stats();
    }
}

impl AlertSender {
    /// Queues an alert. Returns false (and counts the loss) if the queue is
    /// full or the writer is gone; never blocks.
    pub fn send(&self, a: Alert) -> bool {
        match self.tx.try_send(Msg::Alert(Box::new(a))) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared.queue_drops.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .queue_drops_total
                    .fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Asks the writer to reopen the file (SIGHUP after logrotate).
    pub fn reopen(&self) -> bool {
        self.tx.try_send(Msg::Reopen).is_ok()
    }

    /// Latest counters published by the writer thread. `dropped` includes
    /// alerts refused by a full queue that the writer has not seen yet.
    pub fn stats(&self) -> AlertStats {
        let mut s = self.shared.snapshot.lock().map(|g| *g).unwrap_or_default();
        s.dropped += self.shared.queue_drops.load(Ordering::Relaxed);
        s
    }

    /// Alerts refused because the queue was full, since start.
    pub fn queue_drops(&self) -> u64 {
        self.shared.queue_drops_total.load(Ordering::Relaxed)
    }
}

impl AlertWriter {
    /// Stops the thread after writing everything queued. Blocks until done.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            // A blocking send is fine here: the writer drains the queue.
            let _ = self.tx.send(Msg::Shutdown);
            if t.join().is_err() {
                tracing::warn!("alert writer thread panicked");
            }
        }
    }
}

impl Drop for AlertWriter {
    fn drop(&mut self) {
        self.stop();
    }
}
