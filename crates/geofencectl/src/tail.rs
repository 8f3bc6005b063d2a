//! `geofencectl tail`: the alert log for a person.
//!
//! One line per alert: local-free UTC time, a label (`BLOCK`, `TAMPER`,
//! `MONITOR`, `ALERT`, `INFO`) and the alert's own sentence. Colour only
//! when stdout is a terminal and `NO_COLOR` is unset. Filters select by
//! app, jurisdiction and action. `-f` follows the file as `tail -F` does:
//! when logrotate renames it (the path names another inode) the rest of the
//! old file is read, then the new one from its start; a truncated file is
//! read again from the start.
//!
//! The file is untrusted text (server names come from the network): control
//! characters are shown escaped, so no alert can move the cursor, clear
//! the screen or forge a line.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use geofence_alert::{Alert, EventKind};

#[derive(clap::Args)]
pub struct Args {
    /// Keep reading as alerts are written (follows logrotate).
    #[arg(short, long)]
    follow: bool,
    /// Show the last N matching alerts first.
    #[arg(short = 'n', long, default_value_t = 10)]
    lines: usize,
    /// Only alerts about this app id (e.g. zoom).
    #[arg(long)]
    app: Option<String>,
    /// Only alerts in this jurisdiction (e.g. prc, unknown).
    #[arg(long)]
    jurisdiction: Option<String>,
    /// Only alerts with this action.
    #[arg(long, value_parser = ["block", "alert", "allow"])]
    action: Option<String>,
    /// The alert file (default: the policy's `[daemon] alert_log`).
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Policy file naming the alert file.
    #[arg(long, short, default_value = crate::DEFAULT_CONFIG)]
    config: PathBuf,
}

/// Which alerts to show.
#[derive(Default)]
pub struct Filter {
    pub app: Option<String>,
    pub jurisdiction: Option<String>,
    pub action: Option<String>,
}

impl Filter {
    fn active(&self) -> bool {
        self.app.is_some() || self.jurisdiction.is_some() || self.action.is_some()
    }

    fn admits(&self, a: &Alert) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        eq(&self.app, a.app.as_deref())
            && eq(&self.jurisdiction, a.jurisdiction.as_deref())
            && eq(&self.action, Some(a.action.as_str()))
    }
}

/// One line of the file as shown, or `None` when the filter rejects it.
pub fn render(line: &str, f: &Filter, color: bool) -> Option<String> {
    let line = line.trim_end_matches(['\n', '\r']);
    if line.is_empty() {
        return None;
    }
    let Ok(a) = serde_json::from_str::<Alert>(line) else {
        // Not an alert (a hand edit, a half line from a crash): shown
        // as is, unless the user asked for specific alerts.
        return (!f.active()).then(|| format!("?      {}", clean(line)));
    };
    if !f.admits(&a) {
        return None;
    }
    let (label, paint) = if a.verdict.is_some() {
        ("BLOCK", "\x1b[1;31m")
    } else if a.event == EventKind::Tamper {
        ("TAMPER", "\x1b[1;35m")
    } else if a.action == "block" {
        ("MONITOR", "\x1b[33m")
    } else if a.action == "alert" {
        ("ALERT", "\x1b[33m")
    } else {
        ("INFO", "\x1b[2m")
    };
    // `2026-11-27T10:41:00.123456Z` -> `2026-11-27 10:41:00`.
    let ts = a
        .timestamp
        .get(..19)
        .unwrap_or(&a.timestamp)
        .replacen('T', " ", 1);
    let label = if color {
        format!("{paint}{label:<7}\x1b[0m")
    } else {
        format!("{label:<7}")
    };
    let mut out = format!("{} {label} {}", clean(&ts), clean(&a.reason));
    if let Some(h) = &a.host {
        out.push_str(&format!(" [{}]", clean(h)));
    }
    Some(out)
}

/// Control characters (ESC, CR, NUL, ...) escaped as `\u{..}`.
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn alert_file(a: &Args) -> PathBuf {
    if let Some(f) = &a.file {
        return f.clone();
    }
    geofence_policy::load_file(&a.config)
        .map(|c| c.daemon.alert_log)
        .unwrap_or_else(|_| geofence_policy::DaemonConfig::default().alert_log)
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let path = alert_file(a);
    let filter = Filter {
        app: a.app.clone(),
        jurisdiction: a.jurisdiction.clone(),
        action: a.action.clone(),
    };
    let color = io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let file = match File::open(&path) {
        Ok(f) => Some(f),
        Err(e) if a.follow && e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    };
    let mut out = io::stdout().lock();
    let mut pending = Vec::new();
    let mut state = None;
    if let Some(f) = file {
        let ino = f.metadata().map(|m| (m.dev(), m.ino())).ok();
        let mut r = BufReader::new(f);
        let mut last: VecDeque<String> = VecDeque::new();
        let mut pos = 0u64;
        loop {
            let mut buf = Vec::new();
            let n = r.read_until(b'\n', &mut buf)?;
            if n == 0 {
                break;
            }
            if buf.last() != Some(&b'\n') {
                // A line still being written: kept for -f.
                pending = buf;
                break;
            }
            pos += n as u64;
            if let Some(l) = render(&String::from_utf8_lossy(&buf), &filter, color) {
                if a.lines > 0 {
                    if last.len() == a.lines {
                        last.pop_front();
                    }
                    last.push_back(l);
                }
            }
        }
        for l in last {
            if writeln!(out, "{l}").is_err() {
                return Ok(ExitCode::SUCCESS);
            }
        }
        state = Some((r.into_inner(), ino, pos + pending.len() as u64));
    }
    if !a.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let _ = out.flush();
    follow(&path, state, pending, &filter, color, &mut out)
}

type Open = (File, Option<(u64, u64)>, u64);

fn follow(
    path: &Path,
    mut cur: Option<Open>,
    mut pending: Vec<u8>,
    filter: &Filter,
    color: bool,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let mut progressed = false;
        if let Some((f, _, pos)) = cur.as_mut() {
            match drain(f, pos, &mut pending, &mut chunk, filter, color, out)? {
                None => return Ok(ExitCode::SUCCESS),
                Some(p) => progressed = p,
            }
        }
        // Rotated (another inode at the path), truncated, or appeared.
        let now = std::fs::metadata(path).ok();
        let now_id = now.as_ref().map(|m| (m.dev(), m.ino()));
        match (&mut cur, now_id) {
            (Some((f, id, pos)), Some(n)) if *id != Some(n) => {
                // Lines the daemon wrote to the renamed file before it
                // reopened: read them, then switch.
                if drain(f, pos, &mut pending, &mut chunk, filter, color, out)?.is_none() {
                    return Ok(ExitCode::SUCCESS);
                }
                cur = File::open(path).ok().map(|f| (f, Some(n), 0));
                pending.clear();
                continue;
            }
            (Some((f, _, pos)), Some(_)) if now.as_ref().is_some_and(|m| m.len() < *pos) => {
                f.seek(SeekFrom::Start(0))?;
                *pos = 0;
                pending.clear();
                continue;
            }
            (None, Some(n)) => {
                cur = File::open(path).ok().map(|f| (f, Some(n), 0));
                continue;
            }
            _ => {}
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Reads `f` to its end and shows the complete lines. `Some(read
/// anything)`, or `None` when stdout is gone (the reader quit).
fn drain(
    f: &mut File,
    pos: &mut u64,
    pending: &mut Vec<u8>,
    chunk: &mut [u8],
    filter: &Filter,
    color: bool,
    out: &mut impl Write,
) -> io::Result<Option<bool>> {
    let mut progressed = false;
    loop {
        let n = f.read(chunk)?;
        if n == 0 {
            break;
        }
        progressed = true;
        *pos += n as u64;
        pending.extend_from_slice(&chunk[..n]);
        while let Some(i) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            if let Some(l) = render(&String::from_utf8_lossy(&line), filter, color) {
                if writeln!(out, "{l}").is_err() {
                    return Ok(None);
                }
            }
        }
        // A single line longer than 1 MiB is not an alert the daemon
        // wrote: drop it rather than grow without bound.
        if pending.len() > 1 << 20 {
            pending.clear();
        }
    }
    if out.flush().is_err() {
        return Ok(None);
    }
    Ok(Some(progressed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: &str = r#"{"timestamp":"2026-11-27T10:41:00.123456Z","event_type":"flow","host":"gw-1","severity":1,"action":"block","verdict":"reject","app":"zoom","jurisdiction":"prc","reason":"blocked (rejected): zoom to 203.0.113.10"}"#;

    #[test]
    fn colour_only_when_asked() {
        let f = Filter::default();
        let plain = render(BLOCK, &f, false).expect("line");
        assert_eq!(
            plain,
            "2026-11-27 10:41:00 BLOCK   blocked (rejected): zoom to 203.0.113.10 [gw-1]"
        );
        let coloured = render(BLOCK, &f, true).expect("line");
        assert!(coloured.contains("\x1b[1;31mBLOCK"), "{coloured:?}");
        assert!(coloured.ends_with("[gw-1]"));
    }

    #[test]
    fn escapes_control_characters_from_the_wire() {
        let hostile = BLOCK.replace("zoom to", "zoom\\u001b[2J\\r\\nto");
        let l = render(&hostile, &Filter::default(), false).expect("line");
        assert!(
            !l.contains('\x1b') && !l.contains('\r') && !l.contains('\n'),
            "{l:?}"
        );
        assert!(l.contains("\\u{1b}[2J"), "{l}");
    }

    #[test]
    fn filters_select_and_garbage_is_shown_only_unfiltered() {
        let zoom = Filter {
            app: Some("zoom".into()),
            ..Filter::default()
        };
        let teams = Filter {
            app: Some("teams".into()),
            ..Filter::default()
        };
        let allow = Filter {
            action: Some("allow".into()),
            ..Filter::default()
        };
        assert!(render(BLOCK, &zoom, false).is_some());
        assert!(render(BLOCK, &teams, false).is_none());
        assert!(render(BLOCK, &allow, false).is_none());
        assert_eq!(
            render("not json\n", &Filter::default(), false).as_deref(),
            Some("?      not json")
        );
        assert!(render("not json", &zoom, false).is_none());
        assert!(render("", &Filter::default(), false).is_none());
    }
}
