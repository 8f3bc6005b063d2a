//! The append-only alert file: never fails, never blocks on a broken disk.

use crate::alert::{Alert, EventKind};
use crate::time::now_rfc3339;
use std::collections::VecDeque;
use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Errors from opening or reopening the alert file.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("cannot create alert directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot open alert file {path} for appending: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("alert path {0} has no file name")]
    NoFileName(PathBuf),
}

/// Counters, for `geofencectl status` and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlertStats {
    /// Lines written to the file (including late ones from the ring and
    /// lost-alert notices).
    pub written: u64,
    /// Write or reopen attempts that failed.
    pub failed: u64,
    /// Alerts waiting in memory for the file to become writable.
    pub buffered: u64,
    /// Alerts discarded because the in-memory ring was full.
    pub dropped: u64,
    /// Successful reopens (SIGHUP, rotation or deletion detected).
    pub reopens: u64,
}

/// Tuning for [`AlertLog`]. The defaults suit the daemon.
#[derive(Debug, Clone)]
pub struct AlertLogOptions {
    /// Alerts kept in memory while the file cannot be written.
    pub ring_capacity: usize,
    /// Minimum time between attempts to write the backlog again.
    pub retry_interval: Duration,
    /// Minimum time between checks that the path still names our file.
    pub inode_check_interval: Duration,
    /// Minimum time between two `tracing` warnings about write failures.
    pub warn_interval: Duration,
    /// Gateway name written as `host` on lines that do not carry one.
    pub host: Option<String>,
}

impl Default for AlertLogOptions {
    fn default() -> Self {
        AlertLogOptions {
            ring_capacity: 10_000,
            retry_interval: Duration::from_secs(1),
            inode_check_interval: Duration::from_secs(1),
            warn_interval: Duration::from_secs(60),
            host: None,
        }
    }
}

/// JSON-lines alert file in append mode.
///
/// [`AlertLog::write`] never returns an error and never panics: when the file
/// cannot be written (disk full, I/O error, directory gone) the serialised
/// line is kept in a bounded ring and written, oldest first, as soon as the
/// file works again, followed by one `daemon` alert counting the alerts that
/// did not fit in the ring. A line is either written whole or not at all: a
/// partial write is cut back off the file.
#[derive(Debug)]
pub struct AlertLog {
    path: PathBuf,
    opts: AlertLogOptions,
    file: Option<File>,
    /// (device, inode) of `file`.
    id: Option<(u64, u64)>,
    ring: VecDeque<Vec<u8>>,
    stats: AlertStats,
    /// Drops not yet reported in a notice line.
    unreported_drops: u64,
    last_error: Option<String>,
    failures_since_warn: u64,
    last_warn: Option<Instant>,
    last_retry: Option<Instant>,
    last_inode_check: Instant,
    failing: bool,
}

impl AlertLog {
    /// Opens `path` for appending with default options, creating the parent
    /// directory (mode 0750) and the file (mode 0640) if missing.
    pub fn open(path: &Path) -> Result<AlertLog, AlertError> {
        AlertLog::open_with(path, AlertLogOptions::default())
    }

    /// [`AlertLog::open`] with explicit options.
    pub fn open_with(path: &Path, opts: AlertLogOptions) -> Result<AlertLog, AlertError> {
        if path.file_name().is_none() {
            return Err(AlertError::NoFileName(path.to_path_buf()));
        }
        let (file, id) = open_file(path)?;
        Ok(AlertLog {
            path: path.to_path_buf(),
            opts,
            file: Some(file),
            id,
            ring: VecDeque::new(),
            stats: AlertStats::default(),
            unreported_drops: 0,
            last_error: None,
            failures_since_warn: 0,
            last_warn: None,
            last_retry: None,
            last_inode_check: Instant::now(),
            failing: false,
        })
    }

    /// Like [`AlertLog::open_with`] but never fails: if the file cannot be
    /// opened now (directory missing and not creatable, permissions, full
    /// disk), the problem is logged and counted, alerts are buffered, and the
    /// open is retried every `retry_interval`. For the daemon, whose
    /// enforcement must start even when the log directory is broken.
    pub fn open_lenient(path: &Path, opts: AlertLogOptions) -> AlertLog {
        match AlertLog::open_with(path, opts.clone()) {
            Ok(log) => log,
            Err(e) => {
                let mut log = AlertLog {
                    path: path.to_path_buf(),
                    opts,
                    file: None,
                    id: None,
                    ring: VecDeque::new(),
                    stats: AlertStats::default(),
                    unreported_drops: 0,
                    last_error: None,
                    failures_since_warn: 0,
                    last_warn: None,
                    last_retry: Some(Instant::now()),
                    last_inode_check: Instant::now(),
                    failing: false,
                };
                log.note_failure("open", &io::Error::other(e.to_string()));
                log
            }
        }
    }

    /// True while the file is open and nothing is waiting in memory.
    pub fn is_healthy(&self) -> bool {
        self.file.is_some() && self.ring.is_empty() && self.unreported_drops == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one alert as a JSON line. An empty `timestamp` is filled with
    /// the current time. Never fails; see the type documentation.
    pub fn write(&mut self, a: &Alert) {
        let line = match serialize(a, self.opts.host.as_deref()) {
            Some(l) => l,
            None => {
                self.stats.failed += 1;
                tracing::warn!("alert could not be serialised; skipped");
                return;
            }
        };
        self.check_inode();
        if !self.ring.is_empty() || self.unreported_drops > 0 || self.file.is_none() {
            // Throttle retries only while the file is failing; a pending
            // drop notice on a healthy file is written at once.
            let force = !self.failing;
            self.retry_backlog(force);
        }
        if self.ring.is_empty() && self.unreported_drops == 0 && self.file.is_some() {
            match self.write_line(&line) {
                Ok(()) => self.stats.written += 1,
                Err(e) => {
                    self.note_failure("write", &e);
                    self.push_ring(line);
                }
            }
        } else {
            self.push_ring(line);
        }
    }

    /// Retries the backlog if one is waiting and the retry interval has
    /// passed. Call it from a periodic timer so buffered alerts land even
    /// when no new alert arrives.
    pub fn tick(&mut self) {
        self.check_inode();
        if !self.ring.is_empty() || self.unreported_drops > 0 || self.file.is_none() {
            self.retry_backlog(false);
        }
    }

    /// Tries to write the backlog now, ignoring the retry interval. Returns
    /// true when nothing is left in memory.
    pub fn flush_backlog(&mut self) -> bool {
        self.retry_backlog(true);
        self.ring.is_empty() && self.unreported_drops == 0
    }

    /// Closes and reopens the path (after logrotate, on SIGHUP). On error
    /// the log keeps buffering and retries by itself.
    pub fn reopen(&mut self) -> Result<(), AlertError> {
        self.file = None;
        self.id = None;
        match open_file(&self.path) {
            Ok((f, id)) => {
                self.file = Some(f);
                self.id = id;
                self.stats.reopens += 1;
                self.last_inode_check = Instant::now();
                if !self.ring.is_empty() || self.unreported_drops > 0 {
                    self.retry_backlog(true);
                }
                Ok(())
            }
            Err(e) => {
                let io_err = match &e {
                    AlertError::CreateDir { source, .. } | AlertError::Open { source, .. } => {
                        io::Error::new(source.kind(), source.to_string())
                    }
                    AlertError::NoFileName(_) => io::Error::other("no file name"),
                };
                self.note_failure("reopen", &io_err);
                Err(e)
            }
        }
    }

    /// Records `n` alerts lost before they reached this log (e.g. a full
    /// queue in front of it). They are counted in `dropped` and reported in
    /// the next lost-alert notice.
    pub fn note_dropped(&mut self, n: u64) {
        self.stats.dropped += n;
        self.unreported_drops += n;
    }

    pub fn stats(&self) -> AlertStats {
        AlertStats {
            buffered: self.ring.len() as u64,
            ..self.stats
        }
    }

    /// Reopens when the path no longer names the open file (rotated by
    /// rename, or deleted). Checked at most once per `inode_check_interval`.
    fn check_inode(&mut self) {
        if self.last_inode_check.elapsed() < self.opts.inode_check_interval {
            return;
        }
        self.last_inode_check = Instant::now();
        let current = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if self.file.is_some() && current.is_some() && current == self.id {
            return;
        }
        if self.file.is_some() {
            tracing::info!(path = %self.path.display(), "alert file was rotated or removed; reopening");
        }
        // Failure is recorded by reopen and retried later.
        let _ = self.reopen();
    }

    fn retry_backlog(&mut self, force: bool) {
        if !force {
            if let Some(t) = self.last_retry {
                if t.elapsed() < self.opts.retry_interval {
                    return;
                }
            }
        }
        self.last_retry = Some(Instant::now());
        if self.file.is_none() {
            match open_file(&self.path) {
                Ok((f, id)) => {
                    self.file = Some(f);
                    self.id = id;
                    self.stats.reopens += 1;
                }
                Err(e) => {
                    let kind = match &e {
                        AlertError::CreateDir { source, .. } | AlertError::Open { source, .. } => {
                            source.kind()
                        }
                        AlertError::NoFileName(_) => io::ErrorKind::InvalidInput,
                    };
                    self.note_failure("reopen", &io::Error::new(kind, e.to_string()));
                    return;
                }
            }
        }
        while let Some(front) = self.ring.pop_front() {
            match self.write_line(&front) {
                Ok(()) => self.stats.written += 1,
                Err(e) => {
                    self.ring.push_front(front);
                    self.note_failure("write", &e);
                    return;
                }
            }
        }
        if self.unreported_drops > 0 {
            let n = self.unreported_drops;
            let cause = self
                .last_error
                .clone()
                .unwrap_or_else(|| "unknown error".into());
            let mut notice = Alert::new(
                EventKind::Daemon,
                "alert",
                format!(
                    "alert log: {n} alerts were dropped because {} could not be written ({cause}) \
                     and the in-memory buffer of {} alerts was full",
                    self.path.display(),
                    self.opts.ring_capacity
                ),
            );
            notice.evidence = Some(format!("dropped={n}"));
            let Some(line) = serialize(&notice, self.opts.host.as_deref()) else {
                self.unreported_drops = 0;
                return;
            };
            match self.write_line(&line) {
                Ok(()) => {
                    self.stats.written += 1;
                    self.unreported_drops = 0;
                }
                Err(e) => {
                    self.note_failure("write", &e);
                    return;
                }
            }
        }
        if self.failing {
            self.failing = false;
            self.failures_since_warn = 0;
            tracing::warn!(path = %self.path.display(), "alert file is writable again; backlog written");
        }
    }

    fn push_ring(&mut self, line: Vec<u8>) {
        if self.opts.ring_capacity == 0 {
            self.stats.dropped += 1;
            self.unreported_drops += 1;
            return;
        }
        while self.ring.len() >= self.opts.ring_capacity {
            self.ring.pop_front();
            self.stats.dropped += 1;
            self.unreported_drops += 1;
        }
        self.ring.push_back(line);
    }

    fn note_failure(&mut self, what: &str, e: &io::Error) {
        self.stats.failed += 1;
        self.failures_since_warn += 1;
        self.failing = true;
        self.last_error = Some(e.to_string());
        let due = match self.last_warn {
            None => true,
            Some(t) => t.elapsed() >= self.opts.warn_interval,
        };
        if due {
            self.last_warn = Some(Instant::now());
            tracing::warn!(
                path = %self.path.display(),
                error = %e,
                failures = self.failures_since_warn,
                buffered = self.ring.len(),
                dropped = self.stats.dropped,
                "alert {what} failed; keeping alerts in memory and retrying"
            );
            self.failures_since_warn = 0;
        }
    }

    /// Writes one whole line or nothing: on a short write followed by an
    /// error, the bytes already written are truncated away.
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "alert file is not open",
            ));
        };
        let mut done = 0usize;
        while done < line.len() {
            let rest = line.get(done..).unwrap_or_default();
            match file.write(rest) {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::WriteZero, "write returned 0");
                    cut_partial(file, done);
                    return Err(e);
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    cut_partial(file, done);
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

impl Drop for AlertLog {
    fn drop(&mut self) {
        if !self.ring.is_empty() || self.unreported_drops > 0 {
            self.retry_backlog(true);
        }
    }
}

/// Removes the last `written` bytes of a failed line, so the file never holds
/// half a JSON object. Only meaningful for regular files.
fn cut_partial(file: &mut File, written: usize) {
    if written == 0 {
        return;
    }
    if let Ok(m) = file.metadata() {
        if m.is_file() {
            let len = m.len().saturating_sub(written as u64);
            if let Err(e) = file.set_len(len) {
                tracing::warn!(error = %e, "could not remove a partly written alert line");
            }
        }
    }
}

/// The line for `a`: an empty timestamp, host or severity is filled in.
fn serialize(a: &Alert, host: Option<&str>) -> Option<Vec<u8>> {
    let fill_host = a.host.is_none() && host.is_some();
    let mut line = if a.timestamp.is_empty() || fill_host || a.severity.is_none() {
        let mut stamped = a.clone();
        if stamped.timestamp.is_empty() {
            stamped.timestamp = now_rfc3339();
        }
        if fill_host {
            stamped.host = host.map(str::to_string);
        }
        stamped.severity = Some(a.severity.unwrap_or_else(|| a.derived_severity()));
        serde_json::to_vec(&stamped).ok()?
    } else {
        serde_json::to_vec(a).ok()?
    };
    line.push(b'\n');
    Some(line)
}

fn open_file(path: &Path) -> Result<(File, Option<(u64, u64)>), AlertError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(dir)
                .map_err(|source| AlertError::CreateDir {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
    }
    let open_err = |source| AlertError::Open {
        path: path.to_path_buf(),
        source,
    };
    let file = match OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o640)
        .open(path)
    {
        Ok(f) => {
            // A restrictive umask must not hide alerts from the admin group.
            let _ = f.set_permissions(Permissions::from_mode(0o640));
            f
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(open_err)?,
        Err(e) => return Err(open_err(e)),
    };
    let id = file.metadata().ok().map(|m| (m.dev(), m.ino()));
    Ok((file, id))
}
