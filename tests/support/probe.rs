//! `gf-e2e-probe`: the traffic tool of the end-to-end daemon tests. Real
//! programs sending real packets between network namespaces; not installed.
//!
//! ```text
//! gf-e2e-probe dns-server ADDR:PORT SECS NAME=IP...   answer A/AAAA for NAME (ttl 60), NXDOMAIN otherwise
//! gf-e2e-probe dns-query SERVER:PORT NAME a|aaaa      prints the addresses, one per line
//! gf-e2e-probe dns-query-many SERVER:PORT COUNT NAME  one socket: COUNT-1 queries for x.example,
//!                                                    then NAME (A); prints NAME's addresses
//! gf-e2e-probe dns-forge FROM:PORT TO:PORT NAME IP TTL  send an answer nobody asked for
//! gf-e2e-probe tcp-server ADDR:PORT SECS              accept; read a first message, then echo lines
//! gf-e2e-probe tls-client ADDR:PORT SNI ROUNDS        connect, send a TLS ClientHello with SNI, then
//!                                                    ROUNDS line echoes 100 ms apart; prints
//!                                                    "ok ROUNDS", "refused", "timeout" or "cut N after_ms M";
//!                                                    a 5th argument `bytewise` writes the ClientHello one byte
//!                                                    per TCP segment (TCP_NODELAY, 2 ms apart)
//! gf-e2e-probe udp-server ADDR:PORT SECS              count datagrams for SECS (and while they keep
//!                                                    arriving); prints "received N"
//! gf-e2e-probe udp-send ADDR:PORT COUNT GAP_MS KIND [SRC]   KIND = zoom (Zoom SFU media header) | plain; SRC = source address
//! gf-e2e-probe sink ADDR:PORT SECS                    accept TCP and receive UDP on ADDR:PORT, discard
//! gf-e2e-probe send-flows FILE                        send the client side of recorded flows (JSON lines
//!                                                    {proto, dst, port, payloads: [hex]}), one after another
//! gf-e2e-probe capture IFACE FILE SECS                write what IFACE sees to a pcap file (libpcap),
//!                                                    until SECS pass or FILE.stop exists
//! ```
//! Exit status: 0 = ok, 2 = refused, 3 = timeout or cut, 1 = usage or error.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use geofence_testkit::wire;

fn arg(a: &[String], i: usize) -> Result<&str, String> {
    a.get(i)
        .map(String::as_str)
        .ok_or_else(|| format!("missing argument {i}"))
}

fn num(s: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("not a number: {s}"))
}

fn sock(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| format!("not an address: {s}"))
}

fn run(a: &[String]) -> Result<i32, String> {
    let cmd = arg(a, 1)?;
    match cmd {
        "send-flows" => return send_flows(arg(a, 2)?),
        "capture" => return capture(arg(a, 2)?, arg(a, 3)?, num(arg(a, 4)?)?),
        _ => {}
    }
    let addr = sock(arg(a, 2)?)?;
    match cmd {
        "sink" => {
            let secs = num(arg(a, 3)?)?;
            let l = TcpListener::bind(addr).map_err(|e| e.to_string())?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            let u = UdpSocket::bind(addr).map_err(|e| e.to_string())?;
            u.set_nonblocking(true).map_err(|e| e.to_string())?;
            println!("listening");
            let end = Instant::now() + Duration::from_secs(secs);
            let mut buf = [0u8; 65536];
            while Instant::now() < end {
                let mut idle = true;
                match l.accept() {
                    Ok((mut s, _)) => {
                        idle = false;
                        std::thread::spawn(move || {
                            let _ = s.set_nonblocking(false);
                            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                            let mut b = [0u8; 4096];
                            while matches!(s.read(&mut b), Ok(n) if n > 0) {}
                        });
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e.to_string()),
                }
                while u.recv_from(&mut buf).is_ok() {
                    idle = false;
                }
                if idle {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            Ok(0)
        }
        "dns-server" => {
            let secs = num(arg(a, 3)?)?;
            let mut names = Vec::new();
            for spec in a.iter().skip(4) {
                let (n, ip) = spec.split_once('=').ok_or("NAME=IP expected")?;
                names.push((
                    n.to_ascii_lowercase(),
                    ip.parse::<IpAddr>().map_err(|e| e.to_string())?,
                ));
            }
            let s = UdpSocket::bind(addr).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .map_err(|e| e.to_string())?;
            println!("listening");
            let end = Instant::now() + Duration::from_secs(secs);
            let mut buf = [0u8; 1500];
            while Instant::now() < end {
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    if let Some((id, name, qtype)) = wire::dns_question(&buf[..n]) {
                        let known = names.iter().any(|(n, _)| *n == name);
                        let hits: Vec<IpAddr> = names
                            .iter()
                            .filter(|(n, ip)| {
                                *n == name
                                    && ((qtype == 1 && ip.is_ipv4())
                                        || (qtype == 28 && ip.is_ipv6()))
                            })
                            .map(|(_, ip)| *ip)
                            .collect();
                        let r = wire::dns_response(id, &name, qtype, &hits, 60, !known);
                        let _ = s.send_to(&r, from);
                    }
                }
            }
            Ok(0)
        }
        "dns-query" => {
            let name = arg(a, 3)?;
            let qtype = if arg(a, 4)? == "aaaa" { 28 } else { 1 };
            let bind: SocketAddr = if addr.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            }
            .parse()
            .map_err(|_| "bind")?;
            let s = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .map_err(|e| e.to_string())?;
            s.send_to(&wire::dns_query(0x1234, name, qtype), addr)
                .map_err(|e| e.to_string())?;
            let mut buf = [0u8; 1500];
            let (n, _) = s
                .recv_from(&mut buf)
                .map_err(|e| format!("no answer: {e}"))?;
            for ip in wire::dns_addresses(&buf[..n]) {
                println!("{ip}");
            }
            Ok(0)
        }
        "dns-query-many" => {
            let count = num(arg(a, 3)?)?.max(1);
            let name = arg(a, 4)?;
            let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .map_err(|e| e.to_string())?;
            let mut buf = [0u8; 1500];
            let mut last = Vec::new();
            for i in 0..count {
                let (n, q) = if i + 1 == count {
                    (name, 1)
                } else {
                    ("x.example", 1)
                };
                let id = 0x2000 + i as u16;
                s.send_to(&wire::dns_query(id, n, q), addr)
                    .map_err(|e| e.to_string())?;
                let (len, _) = s
                    .recv_from(&mut buf)
                    .map_err(|e| format!("no answer to query {i}: {e}"))?;
                last = wire::dns_addresses(&buf[..len]);
            }
            for ip in last {
                println!("{ip}");
            }
            Ok(0)
        }
        "dns-forge" => {
            let to = sock(arg(a, 3)?)?;
            let name = arg(a, 4)?;
            let ip: IpAddr = arg(a, 5)?.parse().map_err(|_| "IP expected")?;
            let ttl = u32::try_from(num(arg(a, 6)?)?).map_err(|_| "TTL too large")?;
            let qtype = if ip.is_ipv4() { 1 } else { 28 };
            let s = UdpSocket::bind(addr).map_err(|e| e.to_string())?;
            let r = wire::dns_response(0x1234, name, qtype, &[ip], ttl, false);
            s.send_to(&r, to).map_err(|e| e.to_string())?;
            println!("sent");
            Ok(0)
        }
        "tcp-server" => {
            let secs = num(arg(a, 3)?)?;
            let l = TcpListener::bind(addr).map_err(|e| e.to_string())?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            println!("listening");
            let end = Instant::now() + Duration::from_secs(secs);
            while Instant::now() < end {
                match l.accept() {
                    Ok((mut s, _)) => {
                        std::thread::spawn(move || {
                            let _ = s.set_nonblocking(false);
                            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                            let mut first = [0u8; 4096];
                            if s.read(&mut first).unwrap_or(0) == 0 {
                                return;
                            }
                            let Ok(mut w) = s.try_clone() else { return };
                            if writeln!(w, "hello").is_err() {
                                return;
                            }
                            for line in BufReader::new(s).lines() {
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
        "tls-client" => {
            let sni = arg(a, 3)?;
            let rounds = num(arg(a, 4)?)?;
            let t0 = Instant::now();
            let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(s) => s,
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    println!("refused after_ms {}", t0.elapsed().as_millis());
                    return Ok(2);
                }
                Err(_) => {
                    println!("timeout");
                    return Ok(3);
                }
            };
            s.set_read_timeout(Some(Duration::from_millis(1500)))
                .map_err(|e| e.to_string())?;
            let hello = wire::client_hello(sni);
            let mut done = 0;
            let mut reader = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
            let mut line = String::new();
            let sent = if a.get(5).map(String::as_str) == Some("bytewise") {
                s.set_nodelay(true).map_err(|e| e.to_string())?;
                hello.iter().all(|b| {
                    std::thread::sleep(Duration::from_millis(2));
                    s.write_all(std::slice::from_ref(b)).is_ok()
                })
            } else {
                s.write_all(&hello).is_ok()
            };
            let ok = sent && reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false);
            if ok {
                while done < rounds {
                    std::thread::sleep(Duration::from_millis(100));
                    line.clear();
                    if writeln!(s, "ping {done}").is_err() {
                        break;
                    }
                    match reader.read_line(&mut line) {
                        Ok(n) if n > 0 => done += 1,
                        _ => break,
                    }
                }
            }
            if ok && done == rounds {
                println!("ok {done}");
                Ok(0)
            } else {
                println!("cut {done} after_ms {}", t0.elapsed().as_millis());
                Ok(3)
            }
        }
        "udp-server" => {
            let secs = num(arg(a, 3)?)?;
            let s = UdpSocket::bind(addr).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .map_err(|e| e.to_string())?;
            println!("listening");
            let end = Instant::now() + Duration::from_secs(secs);
            let mut n = 0u64;
            let mut buf = [0u8; 2048];
            let mut last = Instant::now();
            // Past SECS, keep counting while datagrams still arrive (a
            // sender slowed down by a loaded machine is not a loss).
            while Instant::now() < end || last.elapsed() < Duration::from_millis(500) {
                if s.recv_from(&mut buf).is_ok() {
                    n += 1;
                    last = Instant::now();
                }
            }
            println!("received {n}");
            Ok(0)
        }
        "udp-send" => {
            let count = num(arg(a, 3)?)?;
            let gap = num(arg(a, 4)?)?;
            let kind = arg(a, 5)?;
            // Optional 6th argument: the source address to send from.
            let bind: SocketAddr = match a.get(6) {
                Some(src) => SocketAddr::new(src.parse().map_err(|_| "bad source")?, 0),
                None => if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                }
                .parse()
                .map_err(|_| "bind")?,
            };
            let s = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
            let mut sent = 0;
            for i in 0..count {
                let p = match (kind, i) {
                    ("zoom", 0) => wire::zoom_sfu_hello(),
                    ("zoom", _) => wire::zoom_sfu_audio(i as u16),
                    _ => vec![0x42; 64],
                };
                if s.send_to(&p, addr).is_ok() {
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(gap));
            }
            println!("sent {sent}");
            Ok(0)
        }
        other => Err(format!("unknown command {other}")),
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    match run(&a) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("gf-e2e-probe: {e}");
            std::process::exit(1)
        }
    }
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("odd hex".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

/// Sends the client side of recorded flows, one flow after another: TCP
/// payloads over a real connection (each written as its own segment),
/// UDP payloads as datagrams from one socket per flow.
fn send_flows(file: &str) -> Result<i32, String> {
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    let mut sent = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let dst: IpAddr = v["dst"]
            .as_str()
            .ok_or("dst")?
            .parse()
            .map_err(|_| "bad dst")?;
        let port = v["port"].as_u64().ok_or("port")? as u16;
        let payloads: Vec<Vec<u8>> = v["payloads"]
            .as_array()
            .ok_or("payloads")?
            .iter()
            .map(|p| unhex(p.as_str().unwrap_or("")))
            .collect::<Result<_, _>>()?;
        let to = SocketAddr::new(dst, port);
        match v["proto"].as_str() {
            Some("tcp") => {
                let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_millis(300)) else {
                    continue;
                };
                let _ = s.set_nodelay(true);
                for p in &payloads {
                    if s.write_all(p).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(3));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Some("udp") => {
                let bind: SocketAddr = if dst.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
                    .parse()
                    .map_err(|_| "bind")?;
                let s = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
                for p in &payloads {
                    let _ = s.send_to(p, to);
                    std::thread::sleep(Duration::from_millis(3));
                }
            }
            _ => return Err("proto".into()),
        }
        sent += 1;
    }
    println!("sent {sent}");
    Ok(0)
}

/// Writes every packet IFACE sees to a pcap file, for SECS seconds or until
/// FILE.stop exists.
fn capture(iface: &str, file: &str, secs: u64) -> Result<i32, String> {
    let mut cap = pcap::Capture::from_device(iface)
        .map_err(|e| e.to_string())?
        .immediate_mode(true)
        .snaplen(65535)
        .timeout(50)
        .open()
        .map_err(|e| e.to_string())?;
    let mut out = cap.savefile(file).map_err(|e| e.to_string())?;
    println!("listening");
    let stop = std::path::PathBuf::from(format!("{file}.stop"));
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end && !stop.exists() {
        match cap.next_packet() {
            Ok(p) => out.write(&p),
            Err(pcap::Error::TimeoutExpired) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    out.flush().map_err(|e| e.to_string())?;
    Ok(0)
}
