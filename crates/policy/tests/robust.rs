//! The parser and validator never panic: truncations, byte flips and
//! garbage give an `Err` with a position inside the text, never a crash.

use geofence_policy::load_str;
use std::path::Path;

fn shipped_texts() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut out = Vec::new();
    for dir in [root.clone(), root.join("examples")] {
        for e in std::fs::read_dir(dir).expect("read dir") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "toml") {
                out.push(std::fs::read_to_string(p).expect("read"));
            }
        }
    }
    out
}

fn check(text: &str) {
    if let Err(e) = load_str("fuzz.toml", text) {
        let lines = text.split('\n').count();
        assert!(
            e.line >= 1 && e.line <= lines,
            "line {} of {lines}: {e}",
            e.line
        );
        assert!(e.col >= 1, "{e}");
        let _ = e.to_string();
    }
}

#[test]
fn truncations_never_panic() {
    for text in shipped_texts() {
        for (i, _) in text.char_indices().step_by(3) {
            check(&text[..i]);
        }
    }
}

#[test]
fn byte_substitutions_never_panic() {
    let subs = ['"', '[', ']', '=', '\n', '#', 'x', '0', ',', '{', 'é', '\\'];
    let mut n = 0u32;
    for text in shipped_texts() {
        let chars: Vec<char> = text.chars().collect();
        for i in (0..chars.len()).step_by(7) {
            let mut c = chars.clone();
            c[i] = subs[(i / 7) % subs.len()];
            check(&c.iter().collect::<String>());
            n += 1;
        }
    }
    assert!(n > 500, "{n}");
}

#[test]
fn garbage_never_panics() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for len in 0..400 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x & 0xff) as u8
            })
            .collect();
        check(&String::from_utf8_lossy(&bytes));
    }
}
