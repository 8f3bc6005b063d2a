//! AlertLog behaviour on a real filesystem: JSON shape, logrotate, deletion,
//! and a full disk (a 64 KiB tmpfs, root only; skipped otherwise).

use geofence_alert::{Alert, AlertLog, AlertLogOptions, EventKind};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn flow(seq: u64) -> Alert {
    let mut a = Alert {
        event: EventKind::Flow,
        action: "block".into(),
        verdict: Some("drop".into()),
        rule: Some("no-conferencing-to-prc".into()),
        app: Some("zoom".into()),
        method: Some("tls-sni".into()),
        server_name: Some("zoomfrn99mmr.zoom.us".into()),
        proto: Some("tcp".into()),
        src_ip: Some("192.0.2.10".parse().expect("ip")),
        src_port: Some(50123),
        dest_ip: Some("203.0.113.10".parse().expect("ip")),
        dest_port: Some(443),
        country: Some("CN".into()),
        registered_country: Some("CN".into()),
        asn: Some(64500),
        as_org: Some("Example AS".into()),
        jurisdiction: Some("prc".into()),
        evidence: Some("ClientHello server_name".into()),
        enforced_within_us: Some(850),
        flow_id: Some(seq),
        ..Alert::default()
    };
    a.reason = a.explain();
    a
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    let text = fs::read_to_string(path).expect("read alert file");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "file ends mid-line"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

fn opts_fast() -> AlertLogOptions {
    AlertLogOptions {
        retry_interval: Duration::ZERO,
        inode_check_interval: Duration::ZERO,
        ..AlertLogOptions::default()
    }
}

#[test]
fn json_shape_is_flat_stable_and_compact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sub/dir/alerts.jsonl");
    let mut log = AlertLog::open(&path).expect("open");
    log.write(&flow(7));
    let mut minimal = Alert::new(EventKind::Policy, "alert", "policy reloaded: 3 rules");
    minimal.timestamp.clear(); // write() must stamp it
    log.write(&minimal);
    drop(log);

    let raw = fs::read_to_string(&path).expect("read");
    assert!(
        raw.starts_with("{\"timestamp\":\""),
        "timestamp first: {raw}"
    );
    assert!(
        !raw.contains("null"),
        "absent fields must be omitted: {raw}"
    );
    let v = lines(&path);
    assert_eq!(v.len(), 2);

    let full = v[0].as_object().expect("object");
    let mut keys: Vec<&str> = full.keys().map(|k| k.as_str()).collect();
    keys.sort_unstable();
    let mut want = vec![
        "timestamp",
        "event_type",
        "severity",
        "action",
        "verdict",
        "rule",
        "app",
        "method",
        "server_name",
        "proto",
        "src_ip",
        "src_port",
        "dest_ip",
        "dest_port",
        "country",
        "registered_country",
        "asn",
        "as_org",
        "jurisdiction",
        "evidence",
        "reason",
        "enforced_within_us",
        "flow_id",
    ];
    want.sort_unstable();
    assert_eq!(keys, want);
    assert!(
        full.values().all(|x| !x.is_object() && !x.is_array()),
        "flat"
    );
    assert_eq!(full["event_type"], "flow");
    assert_eq!(full["severity"], 1, "a block with a verdict is severity 1");
    assert_eq!(full["dest_ip"], "203.0.113.10");
    assert_eq!(full["dest_port"], 443);
    assert_eq!(full["asn"], 64500);
    assert_eq!(
        full["reason"],
        "blocked: zoom (TLS SNI zoomfrn99mmr.zoom.us) to 203.0.113.10:443/tcp, located in CN \
         (jurisdiction prc), AS64500 Example AS, by rule no-conferencing-to-prc"
    );
    let back: Alert = serde_json::from_value(v[0].clone()).expect("round trip");
    assert_eq!(back.flow_id, Some(7));
    assert_eq!(back.src_ip, flow(7).src_ip);

    let min = v[1].as_object().expect("object");
    let mut keys: Vec<&str> = min.keys().map(|k| k.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["action", "event_type", "reason", "severity", "timestamp"]
    );
    assert_eq!(min["severity"], 2);
    let ts = min["timestamp"].as_str().expect("ts");
    assert_eq!(ts.len(), 27, "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T' && ts.as_bytes()[19] == b'.');

    // The optional fields the flow above leaves out.
    let mut summary = flow(8);
    summary.severity = Some(1);
    summary.host = Some("gw-1".into());
    summary.community_id = Some("1:wCb3OG7yAFWelaUydu0D+125CLM=".into());
    summary.pcap_ts = Some(geofence_alert::rfc3339_from_unix(1_700_000_000, 250));
    summary.repeats = Some(12);
    let text = serde_json::to_string(&summary).expect("json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("parse");
    assert_eq!(v["pcap_ts"], "2023-11-14T22:13:20.000250Z");
    assert_eq!(v["repeats"], 12);
    assert_eq!(v["host"], "gw-1");
    assert_eq!(v["community_id"], "1:wCb3OG7yAFWelaUydu0D+125CLM=");
    assert_eq!(v.as_object().expect("object").len(), want.len() + 4);

    let fmode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
    assert_eq!(fmode, 0o640);
    let dmode = fs::metadata(path.parent().expect("parent"))
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(
        dmode & !0o750,
        0,
        "directory mode {dmode:o} wider than 0750"
    );
}

#[test]
fn explicit_reopen_after_rename_follows_logrotate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.jsonl");
    let rotated = dir.path().join("alerts.jsonl.1");
    let opts = AlertLogOptions {
        inode_check_interval: Duration::from_secs(3600),
        ..AlertLogOptions::default()
    };
    let mut log = AlertLog::open_with(&path, opts).expect("open");
    log.write(&flow(1));
    fs::rename(&path, &rotated).expect("rotate");
    // Until the reopen (SIGHUP from postrotate) lines keep going to the old
    // inode, which now has the rotated name: nothing is lost.
    log.write(&flow(2));
    log.reopen().expect("reopen");
    log.write(&flow(3));
    let ids = |p: &Path| -> Vec<u64> {
        lines(p)
            .iter()
            .map(|v| v["flow_id"].as_u64().expect("id"))
            .collect()
    };
    assert_eq!(ids(&rotated), [1, 2]);
    assert_eq!(ids(&path), [3]);
    assert_eq!(log.stats().reopens, 1);
    assert_eq!(log.stats().written, 3);
}

#[test]
fn inode_change_is_noticed_without_sighup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.jsonl");
    let mut log = AlertLog::open_with(&path, opts_fast()).expect("open");
    log.write(&flow(1));
    fs::rename(&path, dir.path().join("old")).expect("rename");
    fs::write(&path, b"").expect("logrotate create");
    log.write(&flow(2));
    assert_eq!(lines(&path).len(), 1);
    assert_eq!(lines(&path)[0]["flow_id"], 2);
    assert_eq!(log.stats().reopens, 1);
}

#[test]
fn deleted_file_is_recreated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("logs/alerts.jsonl");
    let mut log = AlertLog::open_with(&path, opts_fast()).expect("open");
    log.write(&flow(1));
    fs::remove_dir_all(dir.path().join("logs")).expect("rm -r");
    log.write(&flow(2));
    log.write(&flow(3));
    let v = lines(&path);
    assert_eq!(
        v.iter().map(|x| x["flow_id"].as_u64()).collect::<Vec<_>>(),
        [Some(2), Some(3)]
    );
    assert_eq!(
        fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
        0o640
    );
}

#[test]
fn dev_full_never_fails_and_bounds_memory() {
    let opts = AlertLogOptions {
        ring_capacity: 3,
        ..opts_fast()
    };
    let mut log = match AlertLog::open_with(Path::new("/dev/full"), opts) {
        Ok(l) => l,
        Err(e) => {
            geofence_testkit::skip(format_args!("cannot open /dev/full: {e}"));
            return;
        }
    };
    for i in 0..10 {
        log.write(&flow(i));
    }
    log.tick();
    let s = log.stats();
    assert_eq!(s.written, 0);
    assert_eq!(s.buffered, 3);
    assert_eq!(s.dropped, 7);
    assert!(s.failed >= 10, "{s:?}");
    assert!(!log.flush_backlog());
}

/// A 64 KiB tmpfs mounted on a temp dir; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount() -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs"])
            .arg(dir.path())
            .output()
            .ok()?;
        if !out.status.success() {
            geofence_testkit::skip(format_args!(
                "full-disk test: mount tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            return None;
        }
        Some(Tmpfs { dir })
    }
    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills the disk: writes until the first alert is buffered. Returns the
/// sequence number of the first alert that did not reach the file.
fn fill(log: &mut AlertLog) -> u64 {
    for seq in 0..10_000 {
        log.write(&flow(seq));
        if log.stats().buffered > 0 {
            return seq;
        }
    }
    panic!("disk never filled: {:?}", log.stats());
}

#[test]
fn full_disk_keeps_alerts_in_order_and_flushes_when_space_returns() {
    let Some(fs_) = Tmpfs::mount() else { return };
    let filler = fs_.path().join("filler");
    fs::write(&filler, vec![b'x'; 32 * 1024]).expect("filler");
    let path = fs_.path().join("log/alerts.jsonl");
    let mut log = AlertLog::open_with(&path, opts_fast()).expect("open");

    let first_lost = fill(&mut log);
    assert!(
        first_lost > 10,
        "expected some room before ENOSPC, got {first_lost}"
    );
    let written_before = log.stats().written;
    for seq in first_lost + 1..first_lost + 40 {
        log.write(&flow(seq));
    }
    let s = log.stats();
    assert_eq!(s.buffered, 40);
    assert_eq!(s.written, written_before, "nothing written while full");
    assert!(s.failed >= 40);
    // No half-written line was left behind by a short write.
    let on_disk = lines(&path);
    assert_eq!(on_disk.len() as u64, first_lost);

    fs::remove_file(&filler).expect("free space");
    log.write(&flow(first_lost + 40));
    let s = log.stats();
    assert_eq!(s.buffered, 0, "{s:?}");
    assert_eq!(s.dropped, 0);
    let v = lines(&path);
    let ids: Vec<u64> = v
        .iter()
        .map(|x| x["flow_id"].as_u64().expect("flow_id"))
        .collect();
    let want: Vec<u64> = (0..=first_lost + 40).collect();
    assert_eq!(
        ids, want,
        "every alert, in order, no notice since none dropped"
    );
    drop(log);
}

#[test]
fn full_disk_with_overflowing_ring_reports_dropped_count() {
    let Some(fs_) = Tmpfs::mount() else { return };
    let filler = fs_.path().join("filler");
    fs::write(&filler, vec![b'x'; 32 * 1024]).expect("filler");
    let path = fs_.path().join("alerts.jsonl");
    let opts = AlertLogOptions {
        ring_capacity: 5,
        ..opts_fast()
    };
    let mut log = AlertLog::open_with(&path, opts).expect("open");
    let first_lost = fill(&mut log);
    for seq in first_lost + 1..=first_lost + 20 {
        log.write(&flow(seq));
    }
    let s = log.stats();
    assert_eq!((s.buffered, s.dropped), (5, 16), "{s:?}");

    fs::remove_file(&filler).expect("free space");
    log.write(&flow(first_lost + 21));
    assert_eq!(log.stats().buffered, 0);
    let v = lines(&path);
    let n = v.len();
    let prefix: Vec<u64> = v[..first_lost as usize]
        .iter()
        .map(|x| x["flow_id"].as_u64().expect("id"))
        .collect();
    assert_eq!(prefix, (0..first_lost).collect::<Vec<_>>());
    let kept: Vec<u64> = v[first_lost as usize..first_lost as usize + 5]
        .iter()
        .map(|x| x["flow_id"].as_u64().expect("id"))
        .collect();
    assert_eq!(
        kept,
        (first_lost + 16..=first_lost + 20).collect::<Vec<_>>(),
        "newest 5 kept, oldest first"
    );
    let notice = &v[n - 2];
    assert_eq!(notice["event_type"], "daemon");
    assert_eq!(notice["evidence"], "dropped=16");
    let reason = notice["reason"].as_str().expect("reason");
    assert!(reason.contains("16 alerts were dropped"), "{reason}");
    assert!(reason.contains("No space left on device"), "{reason}");
    assert_eq!(v[n - 1]["flow_id"], first_lost + 21);
    assert_eq!(n as u64, first_lost + 5 + 1 + 1);
}

#[test]
fn writer_thread_delivers_in_order_and_counts_queue_overflow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.jsonl");
    let log = AlertLog::open(&path).expect("open");
    let (tx, writer) = geofence_alert::spawn_writer(log, 1024).expect("spawn");
    for i in 0..500 {
        assert!(tx.send(flow(i)));
    }
    writer.shutdown();
    let ids: Vec<u64> = lines(&path)
        .iter()
        .map(|v| v["flow_id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, (0..500).collect::<Vec<_>>());
    assert_eq!(tx.stats().written, 500);
    // The writer is gone: sends fail fast instead of blocking.
    assert!(!tx.send(flow(500)));
    assert_eq!(tx.queue_drops(), 1);
}

#[test]
fn writer_reports_queue_overflow_in_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.jsonl");
    // /dev/full-like stall is hard to force; instead a queue of 1 and a burst
    // much faster than the thread: some sends must be refused.
    // A small ring: had queue overflow pushed the healthy file into backlog
    // mode, the ring would overflow too and `dropped` exceed `refused`.
    let opts = AlertLogOptions {
        ring_capacity: 10,
        ..AlertLogOptions::default()
    };
    let log = AlertLog::open_with(&path, opts).expect("open");
    let (tx, writer) = geofence_alert::spawn_writer(log, 1).expect("spawn");
    let mut refused = 0u64;
    for i in 0..20_000 {
        if !tx.send(flow(i)) {
            refused += 1;
        }
    }
    writer.shutdown();
    assert!(refused > 0, "a queue of 1 never filled");
    let v = lines(&path);
    let notices: Vec<&serde_json::Value> =
        v.iter().filter(|x| x["event_type"] == "daemon").collect();
    let reported: u64 = notices
        .iter()
        .map(|n| {
            n["evidence"]
                .as_str()
                .expect("evidence")
                .trim_start_matches("dropped=")
                .parse::<u64>()
                .expect("n")
        })
        .sum();
    assert_eq!(reported, refused);
    assert_eq!((v.len() - notices.len()) as u64 + refused, 20_000);
    // Queue overflow alone must not push a healthy file into backlog mode
    // (which would drop more alerts from the ring), and notices are
    // coalesced: at most one per second plus the final one.
    let s = tx.stats();
    assert_eq!((s.dropped, s.buffered), (refused, 0), "{s:?}");
    assert!(notices.len() <= 3, "{} notices", notices.len());
}

#[test]
fn lenient_open_buffers_until_the_directory_can_be_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A plain file where the log directory should be: open must fail.
    let blocker = dir.path().join("logs");
    fs::write(&blocker, b"not a directory").expect("blocker");
    let path = blocker.join("alerts.jsonl");
    assert!(AlertLog::open_with(&path, opts_fast()).is_err());

    let mut log = AlertLog::open_lenient(&path, opts_fast());
    assert!(!log.is_healthy());
    for i in 0..3 {
        log.write(&flow(i));
    }
    let s = log.stats();
    assert_eq!((s.written, s.buffered), (0, 3), "{s:?}");
    assert!(s.failed >= 4, "open + 3 retries: {s:?}");

    fs::remove_file(&blocker).expect("unblock");
    log.tick();
    assert!(log.is_healthy());
    let ids: Vec<u64> = lines(&path)
        .iter()
        .map(|v| v["flow_id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, [0, 1, 2]);
}

#[test]
fn hostile_strings_cannot_forge_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.jsonl");
    let mut log = AlertLog::open(&path).expect("open");
    let mut a = flow(1);
    // An SNI or DNS name is attacker-controlled.
    a.server_name = Some(
        "evil.example\n{\"event_type\":\"daemon\",\"reason\":\"forged\"}\r\u{0}\u{1b}[2J".into(),
    );
    a.reason = a.explain();
    log.write(&a);
    drop(log);
    let text = fs::read_to_string(&path).expect("read");
    assert_eq!(text.matches('\n').count(), 1, "exactly one line: {text:?}");
    assert!(!text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\0'));
    let v = lines(&path);
    assert_eq!(v[0]["event_type"], "flow");
    assert_eq!(v[0]["server_name"].as_str(), a.server_name.as_deref());
}

#[test]
fn drops_reported_from_outside_are_noticed_at_once_on_a_healthy_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.jsonl");
    // Default (1 s) retry interval: a healthy file must not wait for it.
    let mut log = AlertLog::open(&path).expect("open");
    log.write(&flow(0));
    log.note_dropped(5);
    log.write(&flow(1));
    let s = log.stats();
    assert_eq!((s.buffered, s.dropped, s.written), (0, 5, 3), "{s:?}");
    let v = lines(&path);
    assert_eq!(v[1]["event_type"], "daemon");
    assert_eq!(v[1]["evidence"], "dropped=5");
    assert_eq!(v[2]["flow_id"], 1);
    // A second report within the retry interval is not delayed either.
    log.note_dropped(2);
    log.write(&flow(2));
    let s = log.stats();
    assert_eq!((s.buffered, s.dropped, s.written), (0, 7, 5), "{s:?}");
    let v = lines(&path);
    assert_eq!(v[3]["evidence"], "dropped=2");
    assert_eq!(v[4]["flow_id"], 2);
}

#[test]
fn throttled_writer_writes_first_and_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.jsonl");
    let log = AlertLog::open(&path).expect("open");
    let th = geofence_alert::AlertThrottle::new(Duration::from_millis(500), 1000);
    let (tx, writer) = geofence_alert::spawn_writer_throttled(log, 1024, th).expect("spawn");
    for i in 0..100 {
        assert!(tx.send(flow(i)));
    }
    // Let the window end and the writer's periodic expiry summarise it.
    std::thread::sleep(Duration::from_millis(1500));
    let v = lines(&path);
    assert_eq!(v.len(), 2, "{v:?}");
    assert_eq!(v[0]["flow_id"], 0);
    assert!(v[0].get("repeats").is_none());
    assert_eq!(v[1]["repeats"], 99);
    assert_eq!(v[1]["flow_id"], 99);
    // A new burst: first line now, summary at shutdown.
    for i in 100..110 {
        assert!(tx.send(flow(i)));
    }
    writer.shutdown();
    let v = lines(&path);
    let got: Vec<(u64, Option<u64>)> = v
        .iter()
        .map(|x| (x["flow_id"].as_u64().expect("id"), x["repeats"].as_u64()))
        .collect();
    assert_eq!(
        got,
        [(0, None), (99, Some(99)), (100, None), (109, Some(9))]
    );
}

#[test]
fn gateway_host_option_fills_lines_without_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.jsonl");
    let opts = AlertLogOptions {
        host: Some("gw-berlin-1".into()),
        ..AlertLogOptions::default()
    };
    let mut log = AlertLog::open_with(&path, opts).expect("open");
    log.write(&flow(1));
    let mut own = flow(2);
    own.host = Some("replayed-elsewhere".into());
    own.severity = Some(3);
    log.write(&own);
    drop(log);
    let v = lines(&path);
    assert_eq!(v[0]["host"], "gw-berlin-1");
    assert_eq!(v[0]["severity"], 1);
    assert_eq!(
        v[1]["host"], "replayed-elsewhere",
        "an alert's own host is kept"
    );
    assert_eq!(v[1]["severity"], 3, "an alert's own severity is kept");
}
