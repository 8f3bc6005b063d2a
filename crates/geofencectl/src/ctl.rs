//! `geofencectl reload` and `geofencectl unblock` (talk to the running daemon over its control
//! socket) and `geofencectl check-db` (the daemon's database check, for
//! scripts such as the GeoIP updater).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// sysexits.h EX_DATAERR.
const EX_DATAERR: u8 = 65;
/// Socket used when the policy file cannot be read (the daemon's default).
const DEFAULT_SOCKET: &str = "/run/geofence/control.sock";

#[derive(clap::Args)]
pub struct ReloadArgs {
    /// Policy file; its `[daemon] control_socket` names the socket.
    #[arg(long, short, default_value = super::DEFAULT_CONFIG)]
    config: PathBuf,
    /// The daemon's control socket (overrides the policy file's).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Give up waiting for the result after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
}

#[derive(clap::Args)]
pub struct UnblockArgs {
    /// Destination address whose dynamic blocks are removed.
    address: std::net::IpAddr,
    /// Only this client's blocks to ADDRESS (without it: the server-wide
    /// blocks and every client's).
    #[arg(long)]
    client: Option<std::net::IpAddr>,
    /// Policy file; its `[daemon] control_socket` names the socket.
    #[arg(long, short, default_value = super::DEFAULT_CONFIG)]
    config: PathBuf,
    /// The daemon's control socket (overrides the policy file's).
    #[arg(long)]
    socket: Option<PathBuf>,
}

/// The control request line for an unblock.
pub fn unblock_line(address: std::net::IpAddr, client: Option<std::net::IpAddr>) -> String {
    match client {
        Some(c) => format!("unblock {address} {c}\n"),
        None => format!("unblock {address}\n"),
    }
}

/// What the daemon answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Ok(String),
    Refused(String),
}

/// Parses the daemon's one-line answer.
pub fn parse_answer(text: &str) -> Result<Answer, String> {
    let line = text.lines().next().unwrap_or_default();
    if let Some(m) = line.strip_prefix("ok") {
        Ok(Answer::Ok(m.trim().to_string()))
    } else if let Some(m) = line.strip_prefix("error") {
        Ok(Answer::Refused(m.trim().to_string()))
    } else if line.is_empty() {
        Err("the daemon closed the connection without an answer".to_string())
    } else {
        Err(format!("unexpected answer from the daemon: {line:?}"))
    }
}

/// Sends `reload` and waits for the answer.
pub fn request_reload(socket: &Path, timeout: Duration) -> Result<Answer, String> {
    request(socket, "reload\n", timeout)
}

/// Sends one request line and waits for the one-line answer.
pub fn request(socket: &Path, line: &str, timeout: Duration) -> Result<Answer, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach geofenced on {}: {e} (is it running? root is needed)",
            socket.display()
        )
    })?;
    s.set_read_timeout(Some(timeout))
        .and_then(|()| s.set_write_timeout(Some(Duration::from_secs(5))))
        .and_then(|()| s.write_all(line.as_bytes()))
        .map_err(|e| format!("{}: {e}", socket.display()))?;
    let mut text = String::new();
    // At most one short line; bound what a wrong peer can make us read.
    s.take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| format!("no answer from geofenced within {timeout:?}: {e}"))?;
    parse_answer(&text)
}

/// `[daemon] control_socket` of a policy file that does not validate, when
/// it is still TOML and the value an absolute path; the default otherwise.
fn socket_of_unvalidated(config: &Path) -> PathBuf {
    std::fs::read_to_string(config)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| {
            t.get("daemon")?
                .get("control_socket")?
                .as_str()
                .map(PathBuf::from)
        })
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// The socket named on the command line, else by the policy file.
fn socket_for(socket: &Option<PathBuf>, config: &Path) -> PathBuf {
    match socket {
        Some(s) => s.clone(),
        None => match geofence_runtime::load_config(config) {
            Ok((c, _, _)) => c.daemon.control_socket,
            // The daemon will refuse this file too, and say why; ask it
            // anyway (at the socket the file names, if it still parses as
            // TOML) so the refusal is logged, alerted and reported.
            Err(e) => {
                eprintln!("geofencectl: warning: {e}");
                socket_of_unvalidated(config)
            }
        },
    }
}

pub fn unblock(a: &UnblockArgs) -> anyhow::Result<ExitCode> {
    let socket = socket_for(&a.socket, &a.config);
    let line = unblock_line(a.address, a.client);
    match request(&socket, &line, Duration::from_secs(60)) {
        Ok(Answer::Ok(n)) => {
            let whom = match a.client {
                Some(c) => format!("for client {c}"),
                None => "for every client".to_string(),
            };
            println!(
                "removed {n} dynamic block(s) to {} {whom}; the policy blocks again on the next detection (an `except` entry makes an exception last)",
                a.address
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(Answer::Refused(e)) => {
            eprintln!("geofencectl: unblock failed: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("geofencectl: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn reload(a: &ReloadArgs) -> anyhow::Result<ExitCode> {
    let socket = socket_for(&a.socket, &a.config);
    match request_reload(&socket, Duration::from_secs(a.timeout_secs.max(1))) {
        Ok(Answer::Ok(m)) => {
            println!("reloaded: {m}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Answer::Refused(e)) => {
            eprintln!("geofencectl: reload failed, the running policy stays in force: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("geofencectl: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn check_db(file: &Path) -> ExitCode {
    match geofence_geo::GeoDb::open(&[file]) {
        Ok(db) => {
            let now = std::time::SystemTime::now();
            for m in db.databases() {
                println!(
                    "{}: accepted: {} built {} days ago",
                    m.name,
                    m.database_type,
                    m.age_days(now)
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(EX_DATAERR)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse() {
        assert_eq!(
            parse_answer("ok 3 rule(s)\n"),
            Ok(Answer::Ok("3 rule(s)".into()))
        );
        assert_eq!(
            parse_answer("error x.toml:3:1: bad\n"),
            Ok(Answer::Refused("x.toml:3:1: bad".into()))
        );
        assert!(parse_answer("").is_err());
        assert!(parse_answer("hello\n").is_err());
    }

    #[test]
    fn socket_found_in_an_invalid_policy() {
        let d = std::env::temp_dir().join(format!("gfctl-sock-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("dir");
        let p = d.join("p.toml");
        std::fs::write(
            &p,
            "[daemon]\ncontrol_socket = \"/tmp/x.sock\"\nmode = \"router\"\n",
        )
        .expect("write");
        assert_eq!(socket_of_unvalidated(&p), PathBuf::from("/tmp/x.sock"));
        std::fs::write(&p, "[daemon]\ncontrol_socket = \"rel.sock\"\n").expect("write");
        assert_eq!(socket_of_unvalidated(&p), PathBuf::from(DEFAULT_SOCKET));
        std::fs::write(&p, "not toml [").expect("write");
        assert_eq!(socket_of_unvalidated(&p), PathBuf::from(DEFAULT_SOCKET));
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn unblock_request_lines() {
        let a: std::net::IpAddr = "203.0.113.7".parse().expect("ip");
        let c: std::net::IpAddr = "2001:db8::10".parse().expect("ip");
        assert_eq!(unblock_line(a, None), "unblock 203.0.113.7\n");
        assert_eq!(
            unblock_line(a, Some(c)),
            "unblock 203.0.113.7 2001:db8::10\n"
        );
    }

    #[test]
    fn no_daemon_is_an_error() {
        let p = std::env::temp_dir().join(format!("gf-no-daemon-{}.sock", std::process::id()));
        assert!(request_reload(&p, Duration::from_secs(1)).is_err());
    }
}
