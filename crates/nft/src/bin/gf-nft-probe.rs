//! `gf-nft-probe`: tiny traffic tool for the namespace tests (no socat/ncat
//! needed). Not installed with the daemon.
//!
//! ```text
//! gf-nft-probe tcp-server ADDR:PORT SECS          accept + echo lines for SECS seconds
//! gf-nft-probe udp-server ADDR:PORT SECS [STOP]   echo datagrams until SECS pass or file STOP
//!                                          exists; prints "received N" at the end
//! gf-nft-probe tcp-connect ADDR:PORT TIMEOUT_MS   prints ok | refused | timeout | error:..
//! gf-nft-probe tcp-hold ADDR:PORT SECS            connect, exchange a line every 50 ms;
//!                                          prints "ok N" or "cut N after_ms M"
//! gf-nft-probe udp-send ADDR:PORT COUNT GAP_MS [STOP]
//!                                          send until COUNT or file STOP exists;
//!                                          prints "sent N replies M"
//! ```
//! Exit status: 0 = ok, 2 = refused, 3 = timeout/cut, 1 = usage or other error.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

fn arg(args: &[String], i: usize) -> Result<&str, String> {
    args.get(i)
        .map(String::as_str)
        .ok_or_else(|| format!("missing argument {i}"))
}

fn num(s: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("not a number: {s}"))
}

fn addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| format!("not an address: {s}"))
}

fn run(args: &[String]) -> Result<i32, String> {
    let cmd = arg(args, 1)?;
    let a = addr(arg(args, 2)?)?;
    match cmd {
        "tcp-server" => {
            let secs = num(arg(args, 3)?)?;
            let l = TcpListener::bind(a).map_err(|e| e.to_string())?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            println!("listening");
            let end = Instant::now() + Duration::from_secs(secs);
            while Instant::now() < end {
                match l.accept() {
                    Ok((s, _)) => {
                        std::thread::spawn(move || {
                            let _ = s.set_nonblocking(false);
                            let mut w = match s.try_clone() {
                                Ok(w) => w,
                                Err(_) => return,
                            };
                            let r = BufReader::new(s);
                            for line in r.lines() {
                                let Ok(line) = line else { break };
                                if writeln!(w, "{line}").is_err() {
                                    break;
                                }
                            }
                        });
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(0)
        }
        "udp-server" => {
            let secs = num(arg(args, 3)?)?;
            let s = UdpSocket::bind(a).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_millis(50)))
                .map_err(|e| e.to_string())?;
            println!("listening");
            let stop = args.get(4).map(std::path::PathBuf::from);
            let stopped = || stop.as_ref().is_some_and(|p| p.exists());
            let end = Instant::now() + Duration::from_secs(secs);
            let mut n = 0u64;
            let mut buf = [0u8; 2048];
            while Instant::now() < end && !stopped() {
                if let Ok((len, from)) = s.recv_from(&mut buf) {
                    n += 1;
                    let _ = s.send_to(buf.get(..len).unwrap_or_default(), from);
                }
            }
            println!("received {n}");
            Ok(0)
        }
        "tcp-connect" => {
            let ms = num(arg(args, 3)?)?;
            match TcpStream::connect_timeout(&a, Duration::from_millis(ms)) {
                Ok(_) => {
                    println!("ok");
                    Ok(0)
                }
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    println!("refused");
                    Ok(2)
                }
                Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {
                    println!("timeout");
                    Ok(3)
                }
                Err(e) => {
                    println!("error:{e}");
                    Ok(1)
                }
            }
        }
        "tcp-hold" => {
            let secs = num(arg(args, 3)?)?;
            let s = TcpStream::connect_timeout(&a, Duration::from_secs(2))
                .map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_millis(400)))
                .map_err(|e| e.to_string())?;
            let mut w = s.try_clone().map_err(|e| e.to_string())?;
            let mut r = BufReader::new(s);
            println!("connected");
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < Duration::from_secs(secs) {
                let mut line = String::new();
                let ok = writeln!(w, "ping {n}").is_ok()
                    && matches!(r.read_line(&mut line), Ok(l) if l > 0);
                if !ok {
                    println!("cut {n} after_ms {}", start.elapsed().as_millis());
                    return Ok(3);
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            println!("ok {n}");
            Ok(0)
        }
        "udp-send" => {
            let count = num(arg(args, 3)?)?;
            let gap = num(arg(args, 4)?)?;
            let bind: SocketAddr = if a.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
                .parse()
                .map_err(|_| "bind")?;
            let s = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            let mut replies = 0u64;
            let mut buf = [0u8; 2048];
            let mut sent = 0u64;
            let stop = args.get(5).map(std::path::PathBuf::from);
            for i in 0..count {
                if stop.as_ref().is_some_and(|p| p.exists()) {
                    break;
                }
                if s.send_to(format!("probe {i}").as_bytes(), a).is_ok() {
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(gap));
                while s.recv_from(&mut buf).is_ok() {
                    replies += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
            while s.recv_from(&mut buf).is_ok() {
                replies += 1;
            }
            println!("sent {sent} replies {replies}");
            Ok(0)
        }
        other => Err(format!("unknown command {other}")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("probe: {e}");
            std::process::exit(1);
        }
    }
}
