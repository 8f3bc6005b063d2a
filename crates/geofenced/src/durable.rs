//! Durable replacement of a state file: write a temporary file in the same
//! directory, fsync it, rename it over the target, fsync the directory. A
//! crash or power loss at any point leaves the old file or the new one,
//! never a truncated one (rename alone is atomic but not durable: without
//! the fsyncs ext4/xfs may persist the rename before the data).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Replaces `dir/name` with `bytes` durably. Creates `dir` if needed.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Makes a rename or a new file in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("gf-durable-{}", std::process::id()));
        write_atomic(&dir, "x.json", b"one").expect("first");
        write_atomic(&dir, "x.json", b"two").expect("second");
        assert_eq!(std::fs::read(dir.join("x.json")).expect("read"), b"two");
        let names: Vec<String> = std::fs::read_dir(&dir)
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["x.json".to_string()]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn an_unwritable_directory_is_an_error_not_a_panic() {
        // A regular file where the directory should be.
        let f = std::env::temp_dir().join(format!("gf-durable-file-{}", std::process::id()));
        std::fs::write(&f, b"").expect("file");
        assert!(write_atomic(&f, "x.json", b"one").is_err());
        std::fs::remove_file(&f).ok();
    }
}
