//! `geofenced` refuses a bad policy before touching the kernel, naming the
//! file, line and column.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_geofenced");

#[test]
fn help_lists_options() {
    let o = Command::new(BIN).arg("--help").output().expect("runs");
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("--config"), "{s}");
}

#[test]
fn bad_policy_is_refused_with_position() {
    let dir = std::env::temp_dir().join(format!("gfd-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let p = dir.join("bad.toml");
    std::fs::write(
        &p,
        "[geoip]\ndatabases = [\"x.mmdb\"]\n\n[daemon]\nmode = \"router\"\n",
    )
    .expect("write");
    let o = Command::new(BIN)
        .args(["--config", &p.to_string_lossy(), "--log-format", "text"])
        .output()
        .expect("runs");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{}:5:8", p.display())), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Under systemd (`JOURNAL_STREAM` set) every log line carries its syslog
/// priority, so `journalctl -p err` shows the refusal; elsewhere it does not.
#[test]
fn errors_carry_the_journald_priority_under_systemd() {
    let dir = std::env::temp_dir().join(format!("gfd-journal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let p = dir.join("bad.toml");
    std::fs::write(&p, "[daemon]\nmode = \"router\"\n").expect("write");
    let run = |journal: bool| {
        let mut c = Command::new(BIN);
        c.args(["--config", &p.to_string_lossy()]);
        if journal {
            c.env("JOURNAL_STREAM", "8:12345");
        } else {
            c.env_remove("JOURNAL_STREAM");
        }
        let o = c.output().expect("runs");
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let err = run(true);
    let line = err
        .lines()
        .find(|l| l.contains("geofenced stopped"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(line.starts_with("<3>{"), "{line}");
    let plain = run(false);
    assert!(!plain.contains("<3>"), "{plain}");
    std::fs::remove_dir_all(&dir).ok();
}
