//! End to end with the real logrotate and the shipped
//! `systemd/logrotate.d/geofence` snippet (path and postrotate rewritten to a
//! temp dir): a writer keeps appending while logrotate renames the file, and
//! no line is lost or torn. Skipped when `logrotate` is not installed.

use geofence_alert::{Alert, AlertLog, EventKind};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn rotation_under_load_loses_nothing() {
    let snippet = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../systemd/logrotate.d/geofence"
    );
    let shipped = fs::read_to_string(snippet).expect("shipped logrotate snippet");
    if Command::new("logrotate").arg("--version").output().is_err() {
        geofence_testkit::skip("logrotate is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("alerts.jsonl");
    let marker = dir.path().join("postrotate-ran");
    assert!(shipped.contains("/var/log/geofence/alerts.jsonl"));
    assert!(shipped.contains("kill --kill-whom=main --signal=USR1 geofenced.service"));
    let cfg = shipped
        .replace("/var/log/geofence/alerts.jsonl", &log_path.display().to_string())
        .replace("create 0640 root adm", "create 0640")
        .replace(
            "systemctl kill --kill-whom=main --signal=USR1 geofenced.service >/dev/null 2>&1 || true",
            &format!("touch {}", marker.display()),
        );
    let cfg_path = dir.path().join("geofence.logrotate");
    fs::write(&cfg_path, cfg).expect("write cfg");
    fs::set_permissions(&cfg_path, fs::Permissions::from_mode(0o644)).expect("chmod");

    let mut log = AlertLog::open(&log_path).expect("open");
    let start = Instant::now();
    let mut rotated = false;
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(2500) {
        let mut a = Alert::new(EventKind::Flow, "alert", "load");
        a.flow_id = Some(n);
        log.write(&a);
        n += 1;
        if !rotated && start.elapsed() > Duration::from_millis(500) {
            let out = Command::new("logrotate")
                .arg("-f")
                .arg("-s")
                .arg(dir.path().join("state"))
                .arg(&cfg_path)
                .output()
                .expect("run logrotate");
            assert!(
                out.status.success(),
                "logrotate: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            rotated = true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(log);
    assert!(marker.exists(), "postrotate did not run");

    let old = dir.path().join("alerts.jsonl.1");
    let mut ids = Vec::new();
    let mut per_file = Vec::new();
    for p in [&old, &log_path] {
        let text = fs::read_to_string(p).expect("read");
        assert!(text.ends_with('\n'));
        let mut count = 0;
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).expect("whole JSON line");
            ids.push(v["flow_id"].as_u64().expect("flow_id"));
            count += 1;
        }
        per_file.push(count);
    }
    assert!(per_file[0] > 0 && per_file[1] > 0, "{per_file:?}");
    assert_eq!(
        ids,
        (0..n).collect::<Vec<_>>(),
        "every line exactly once, in order"
    );
    let mode = fs::metadata(&log_path).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    println!(
        "{n} alerts, {} before rotation target, {} after",
        per_file[0], per_file[1]
    );
}
