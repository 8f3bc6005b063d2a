//! Accuracy on the labelled capture corpus in `../shared/corpus`, scored by
//! the corpus' own scorer (`../shared/tools/score-corpus.py`). Fails when
//! recall drops below the bar or when any false positive appears
//! beyond those documented in docs/accuracy.md (none today). Skips with a
//! message when `../shared` or python3 is absent.

use std::process::Command;

use geofence_tests::{shared_dir, workspace_bin};

/// Documented disagreements with the reference labels (docs/accuracy.md).
const KNOWN_FALSE_POSITIVES: &[&str] = &[];

const MIN_RECALL: f64 = 0.97;

#[test]
fn corpus_recall_and_no_new_false_positive() {
    let Some(shared) = shared_dir() else {
        geofence_testkit::skip("../shared (the labelled corpus) is not beside the checkout");
        return;
    };
    if Command::new("python3").arg("--version").output().is_err() {
        geofence_testkit::skip("python3 (needed by the corpus scorer) is not installed");
        return;
    }
    let mut pcaps: Vec<_> = std::fs::read_dir(shared.join("corpus/pcap"))
        .expect("corpus dir")
        .map(|e| e.expect("entry").path())
        .collect();
    pcaps.sort();
    let ctl = workspace_bin("geofencectl");
    assert!(ctl.exists(), "geofencectl not built at {}", ctl.display());
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/geofence.toml");
    let out = Command::new(&ctl)
        .args(["replay", "--config", config, "--json", "--geoip"])
        .arg(shared.join("geo/geo-whois-asn-country.mmdb"))
        .args(&pcaps)
        .output()
        .expect("replay runs");
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = std::env::temp_dir().join(format!("gf-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let flows = dir.join("flows.jsonl");
    std::fs::write(&flows, &out.stdout).expect("write flows");
    let score = Command::new("python3")
        .arg(shared.join("tools/score-corpus.py"))
        .arg(shared.join("corpus/labels.csv"))
        .arg(&flows)
        .output()
        .expect("scorer runs");
    let text = String::from_utf8_lossy(&score.stdout).into_owned();
    println!("{text}");
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        score.status.success(),
        "scorer failed: {}",
        String::from_utf8_lossy(&score.stderr)
    );
    let last = text.lines().last().unwrap_or_default();
    let recall: f64 = last
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("recall="))
        .and_then(|v| v.parse().ok())
        .expect("recall in the scorer's last line");
    assert!(
        recall >= MIN_RECALL,
        "recall {recall} below {MIN_RECALL}\n{text}"
    );
    let fps: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("false positives"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(str::trim)
        .collect();
    for fp in &fps {
        assert!(
            KNOWN_FALSE_POSITIVES.contains(fp),
            "new false positive: {fp}\n{text}"
        );
    }
    assert!(
        !text.contains("capture files with no flow"),
        "every capture yields flows\n{text}"
    );
}
