//! `geofencectl generate man|completions DIR`: man pages (one per
//! subcommand, `geofencectl-check.1`, ...) and shell completions, generated
//! from the clap definitions so they cannot drift from the binary. The
//! Debian package build runs it; the subcommand is hidden from `--help`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

#[derive(clap::Args)]
pub struct Args {
    /// What to write.
    #[arg(value_parser = ["man", "completions"])]
    what: String,
    /// Output directory (created if missing).
    dir: PathBuf,
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let written = match a.what.as_str() {
        "man" => man(&a.dir)?,
        _ => completions(&a.dir)?,
    };
    for p in written {
        println!("{}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn man(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let cmd = crate::Cli::command();
    let mut out = Vec::new();
    let mut write = |name: String, c: clap::Command| -> anyhow::Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(c).render(&mut buf)?;
        std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
        out.push(path);
        Ok(())
    };
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("geofencectl-{}", sub.get_name());
        let c = sub
            .clone()
            .name(name.clone())
            .bin_name(format!("geofencectl {}", sub.get_name()));
        write(name, c)?;
    }
    write("geofencectl".to_string(), cmd)?;
    Ok(out)
}

fn completions(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = crate::Cli::command();
        let p = clap_complete::generate_to(shell, &mut cmd, "geofencectl", dir)
            .with_context(|| format!("writing {shell} completions"))?;
        out.push(p);
    }
    Ok(out)
}
