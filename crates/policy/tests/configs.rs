//! Every shipped config parses and compiles, and every key of every shipped
//! config is checked strictly: renaming it, or adding an unknown key to its
//! table, is rejected at the right line and column.

use geofence_policy::{load_file, load_str, Policy};
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

/// Every `*.toml` directly in `config/` and `config/examples/`.
fn shipped_configs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [config_dir(), config_dir().join("examples")] {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for e in entries {
            let p = e.expect("dir entry").path();
            if p.extension().is_some_and(|x| x == "toml") && p.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_shipped_config_parses_and_compiles() {
    let files = shipped_configs();
    assert!(
        files.iter().any(|p| p.ends_with("config/geofence.toml")),
        "the shipped default is missing: {files:?}"
    );
    assert!(
        files.len() >= 5,
        "expected the default and at least four examples, got {files:?}"
    );
    for f in &files {
        let cfg = load_file(f).unwrap_or_else(|e| panic!("{e}"));
        let policy = Policy::from_config(&cfg).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(policy.rules().len(), cfg.rules.len(), "{}", f.display());
        assert!(!cfg.geoip.databases.is_empty());
    }
}

#[test]
fn shipped_default_has_the_documented_shape() {
    let cfg = load_file(&config_dir().join("geofence.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.daemon.mode, geofence_policy::Mode::Gateway);
    assert!(cfg.daemon.enforce);
    assert_eq!(cfg.daemon.capture, geofence_policy::CaptureKind::Nflog);
    assert_eq!(
        cfg.geoip.databases,
        vec![PathBuf::from(geofence_policy::FREE_GEOIP_DATABASE)],
        "the shipped default must use the database the setup script installs"
    );
    assert_eq!(cfg.jurisdictions.get("prc").map(|v| v.len()), Some(1));
    assert_eq!(cfg.jurisdictions.get("hk_macau").map(|v| v.len()), Some(2));
    assert_eq!(
        cfg.rules.first().map(|r| r.name.as_str()),
        Some("no-conferencing-to-prc")
    );
}

/// Every key path in a document: (key span, key text, inside `[jurisdictions]`).
fn keys(text: &str) -> Vec<(std::ops::Range<usize>, String, bool)> {
    fn walk(
        v: &DeValue<'_>,
        in_juris: bool,
        out: &mut Vec<(std::ops::Range<usize>, String, bool)>,
    ) {
        if let Some(t) = v.as_table() {
            walk_table(t, in_juris, out);
        } else if let Some(a) = v.as_array() {
            for item in a.iter() {
                walk(item.get_ref(), in_juris, out);
            }
        }
    }
    fn walk_table(
        t: &DeTable<'_>,
        in_juris: bool,
        out: &mut Vec<(std::ops::Range<usize>, String, bool)>,
    ) {
        for (k, v) in t.iter() {
            out.push((k.span(), k.get_ref().to_string(), in_juris));
            walk(v.get_ref(), k.get_ref() == "jurisdictions", out);
        }
    }
    let doc = DeTable::parse(text).expect("shipped config parses");
    let mut out = Vec::new();
    walk_table(doc.get_ref(), false, &mut out);
    out
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, text[start..offset].chars().count() + 1)
}

#[test]
fn renaming_any_key_is_an_error_at_that_key() {
    let mut checked = 0;
    for f in shipped_configs() {
        let text = std::fs::read_to_string(&f).expect("read");
        let name = f.display().to_string();
        for (span, key, in_juris) in keys(&text) {
            if in_juris {
                continue; // jurisdiction names are user-chosen, tested below
            }
            // Keys in the same table share a span only if the file repeats
            // a header ([[rule]]); DeTable reports one of them.
            let bad = format!("{key}_x");
            let mutated = format!("{}{bad}{}", &text[..span.start], &text[span.end..]);
            let e = match load_str(&name, &mutated) {
                Ok(_) => panic!("{name}: renaming `{key}` to `{bad}` was accepted"),
                Err(e) => e,
            };
            assert_eq!(
                (e.line, e.col),
                line_col(&text, span.start),
                "{name}: renamed `{key}`:\n{e}"
            );
            assert!(
                e.message.contains(&format!("unknown field `{bad}`")),
                "{name}: {e}"
            );
            assert_eq!(e.file, name);
            checked += 1;
        }
    }
    assert!(checked > 60, "only {checked} keys checked");
}

#[test]
fn an_unknown_key_in_any_table_is_an_error() {
    let mut checked = 0;
    for f in shipped_configs() {
        let text = std::fs::read_to_string(&f).expect("read");
        let name = f.display().to_string();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            let header =
                t.starts_with('[') && !t.starts_with("[\"") && t.contains(']') && !t.contains('=');
            if !header {
                continue;
            }
            let is_juris = t.starts_with("[jurisdictions]");
            let inserted = if is_juris {
                "Bogus = [\"CN\"]"
            } else {
                "bogus_key = 1"
            };
            let mut mutated: Vec<&str> = lines.clone();
            mutated.insert(i + 1, inserted);
            let mutated = mutated.join("\n");
            let e = match load_str(&name, &mutated) {
                Ok(_) => panic!("{name}: `{inserted}` after line {} was accepted", i + 1),
                Err(e) => e,
            };
            assert_eq!((e.line, e.col), (i + 2, 1), "{name}: after `{l}`:\n{e}");
            if is_juris {
                assert!(e.message.contains("not a valid jurisdiction name"), "{e}");
            } else {
                assert!(
                    e.message.contains("unknown field `bogus_key`"),
                    "{name}: {e}"
                );
            }
            assert!(
                e.to_string().starts_with(&format!("{name}:{}:1: ", i + 2)),
                "{e}"
            );
            checked += 1;
        }
    }
    assert!(checked > 25, "only {checked} tables checked");
}

#[test]
fn signature_files_in_apps_d_pass_the_policy_checks() {
    // An admin may point `[signatures] dirs` at a copy of the built-in
    // signatures; they must pass the same checks as [[app]] tables.
    let dir = config_dir().join("apps.d");
    if !dir.is_dir() {
        geofence_testkit::skip(format_args!("{} is absent", dir.display()));
        return;
    }
    let apps = geofence_policy::read_signature_dirs(&[dir]).unwrap_or_else(|e| panic!("{e}"));
    assert!(!apps.is_empty());
}
