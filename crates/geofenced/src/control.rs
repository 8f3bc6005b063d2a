//! The control socket (`[daemon] control_socket`, default
//! `/run/geofence/control.sock`): `geofencectl reload` connects, writes
//! `reload\n`, and reads one line once the reload has been applied or
//! refused: `ok SUMMARY` or `error MESSAGE`. That is how `systemctl reload`
//! (whose `ExecReload=` runs `geofencectl reload`) reports a failed reload.
//! `geofencectl unblock` writes `unblock ADDRESS [CLIENT]` and reads
//! `ok N` (dynamic blocks removed) or `error MESSAGE`; the daemon names
//! the local user who asked from the socket's peer credentials.
//!
//! Root only: the socket is chmod 0600 right after `bind` (and lives in the
//! daemon's runtime directory, 0750). A client gets 2 s to send its request,
//! at most 128 bytes (the longest `unblock` line, two 45-character IPv6
//! addresses, is 100); anything else is answered with an error and closed, so
//! a stuck or hostile client cannot hold the control loop.

use std::io;
use std::net::IpAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// Most bytes read from a client.
const MAX_REQUEST: usize = 128;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// What a client asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Reload,
    /// Remove the dynamic blocks to `addr` (only the pair elements of
    /// `client` when given).
    Unblock {
        addr: IpAddr,
        client: Option<IpAddr>,
    },
}

/// Binds the socket: creates its directory, replaces a stale socket left
/// by a previous run (never another kind of file), chmod 0600.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ))
        }
        Err(_) => {}
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Accepts the next client; never resolves without a listener.
pub async fn accept(l: Option<&UnixListener>) -> io::Result<UnixStream> {
    match l {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

/// Parses one request line.
pub fn parse(bytes: &[u8]) -> Result<Request, String> {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let ip = |w: &str| {
        w.parse::<IpAddr>().map_err(|_| {
            format!(
                "not an IP address: {:?}",
                w.chars().take(48).collect::<String>()
            )
        })
    };
    match std::str::from_utf8(line).map(str::trim) {
        Ok("reload") => Ok(Request::Reload),
        Ok(other) if other.split_whitespace().next() == Some("unblock") => {
            let words: Vec<&str> = other.split_whitespace().skip(1).collect();
            match words.as_slice() {
                [a] => Ok(Request::Unblock {
                    addr: ip(a)?,
                    client: None,
                }),
                [a, c] => Ok(Request::Unblock {
                    addr: ip(a)?,
                    client: Some(ip(c)?),
                }),
                _ => Err("expected `unblock ADDRESS [CLIENT]`".to_string()),
            }
        }
        Ok(other) => Err(format!(
            "unknown request {:?} (expected `reload` or `unblock`)",
            other.chars().take(32).collect::<String>()
        )),
        Err(_) => Err("request is not UTF-8".to_string()),
    }
}

/// Reads one request (up to a newline, `MAX_REQUEST` bytes, 2 s).
pub async fn read_request(s: &mut UnixStream) -> Result<Request, String> {
    let mut buf = Vec::with_capacity(MAX_REQUEST);
    let read = async {
        let mut chunk = [0u8; MAX_REQUEST];
        while buf.len() < MAX_REQUEST && !buf.contains(&b'\n') {
            let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            let room = MAX_REQUEST - buf.len();
            buf.extend_from_slice(&chunk[..n.min(room)]);
        }
        Ok::<(), String>(())
    };
    tokio::time::timeout(REQUEST_TIMEOUT, read)
        .await
        .map_err(|_| "no request within 2 s".to_string())??;
    parse(&buf)
}

/// Who is on the other end: `NAME (uid N)` from the socket's peer
/// credentials (`SO_PEERCRED`), the name from `/etc/passwd` when found.
pub fn peer_user(s: &UnixStream) -> String {
    match s.peer_cred() {
        Ok(c) => {
            let uid = c.uid();
            match std::fs::read_to_string("/etc/passwd")
                .ok()
                .and_then(|t| user_name(&t, uid))
            {
                Some(n) => format!("{n} (uid {uid})"),
                None => format!("uid {uid}"),
            }
        }
        Err(_) => "unknown local user".to_string(),
    }
}

/// The name of `uid` in a passwd file's text.
fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id = f.nth(1)?.parse::<u32>().ok()?;
        (id == uid && !name.is_empty()).then(|| name.chars().take(64).collect())
    })
}

/// Writes the one-line answer (newlines in messages become spaces).
pub async fn reply(s: &mut UnixStream, result: &Result<String, String>) {
    let line = match result {
        Ok(m) => format!("ok {}\n", m.replace('\n', " ")),
        Err(e) => format!("error {}\n", e.replace('\n', " ")),
    };
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, s.write_all(line.as_bytes())).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_strictly() {
        assert_eq!(parse(b"reload\n"), Ok(Request::Reload));
        assert_eq!(parse(b" reload \nrest"), Ok(Request::Reload));
        assert!(parse(b"reboot\n").is_err());
        assert_eq!(
            parse(b"unblock 203.0.113.7\n"),
            Ok(Request::Unblock {
                addr: "203.0.113.7".parse().expect("ip"),
                client: None
            })
        );
        assert_eq!(
            parse(b"unblock 2001:db8::7 192.0.2.10\n"),
            Ok(Request::Unblock {
                addr: "2001:db8::7".parse().expect("ip"),
                client: Some("192.0.2.10".parse().expect("ip"))
            })
        );
        assert!(parse(b"unblock\n").is_err());
        assert!(parse(b"unblock example.com\n").is_err());
        assert!(parse(b"unblock 203.0.113.7 192.0.2.10 extra\n").is_err());
        assert!(parse(b"unblocked 203.0.113.7\n").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(&[0xff, 0xfe, b'\n']).is_err());
        let long = parse(&[b'x'; 500]).expect_err("unknown");
        assert!(long.len() < 100, "{long}");
    }

    #[test]
    fn the_longest_unblock_request_fits() {
        let a = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
        let line = format!("unblock {a} {a}\n");
        assert!(line.len() <= MAX_REQUEST, "{}", line.len());
        let dir = std::env::temp_dir().join(format!("gf-control-long-{}", std::process::id()));
        let path = dir.join("control.sock");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let got = rt.block_on(async {
            let l = bind(&path).expect("bind");
            let mut c = UnixStream::connect(&path).await.expect("connect");
            c.write_all(line.as_bytes()).await.expect("write");
            let mut s = accept(Some(&l)).await.expect("accept");
            read_request(&mut s).await
        });
        std::fs::remove_dir_all(&dir).ok();
        let ip: IpAddr = a.parse().expect("ip");
        assert_eq!(
            got,
            Ok(Request::Unblock {
                addr: ip,
                client: Some(ip)
            })
        );
    }

    #[test]
    fn user_names_from_passwd() {
        let t = "root:x:0:0:root:/root:/bin/bash\nbad line\nalice:x:1000:1000::/home/a:/bin/sh\n";
        assert_eq!(user_name(t, 0).as_deref(), Some("root"));
        assert_eq!(user_name(t, 1000).as_deref(), Some("alice"));
        assert_eq!(user_name(t, 7), None);
    }

    #[test]
    fn socket_round_trip_and_stale_socket_replaced_but_not_other_files() {
        let dir = std::env::temp_dir().join(format!("gf-control-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub").join("control.sock");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let l = bind(&path).expect("bind");
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let client = tokio::spawn({
                let path = path.clone();
                async move {
                    let mut c = UnixStream::connect(&path).await.expect("connect");
                    c.write_all(b"reload\n").await.expect("write");
                    let mut out = String::new();
                    c.read_to_string(&mut out).await.expect("read");
                    out
                }
            });
            let mut s = accept(Some(&l)).await.expect("accept");
            // We are the peer: the socket file we created carries our uid.
            let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&path).expect("meta"));
            assert!(
                peer_user(&s).contains(&format!("uid {uid}")),
                "{}",
                peer_user(&s)
            );
            assert_eq!(read_request(&mut s).await, Ok(Request::Reload));
            reply(&mut s, &Err("bad\npolicy".into())).await;
            drop(s);
            assert_eq!(client.await.expect("join"), "error bad policy\n");
            // A client that sends nothing is dropped after the timeout.
            let _silent = UnixStream::connect(&path).await.expect("connect");
            let mut s = accept(Some(&l)).await.expect("accept");
            assert!(read_request(&mut s).await.is_err());
            drop(l);
            // The stale socket of a previous run is replaced.
            bind(&path).expect("rebind");
        });
        std::fs::remove_file(&path).expect("rm");
        std::fs::write(&path, b"not a socket").expect("file");
        assert!(bind(&path).is_err(), "a regular file is never removed");
        assert_eq!(std::fs::read(&path).expect("kept"), b"not a socket");
        std::fs::remove_dir_all(&dir).ok();
    }
}
