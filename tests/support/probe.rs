//! `gf-e2e-probe`: the traffic tool of the end-to-end daemon tests. Real
//! programs sending real packets between network namespaces; not installed.
//!
//! ```text
//! gf-e2e-probe dns-server ADDR:PORT SECS NAME=IP...   answer A/AAAA for NAME (ttl 60), NXDOMAIN otherwise
//! gf-e2e-probe dns-query SERVER:PORT NAME a|aaaa      prints the addresses, one per line
//! gf-e2e-probe tcp-server ADDR:PORT SECS              accept; read a first message, then echo lines
//! gf-e2e-probe tls-client ADDR:PORT SNI ROUNDS        connect, send a TLS ClientHello with SNI, then
//!                                                    ROUNDS line echoes 100 ms apart; prints
//!                                                    "ok ROUNDS", "refused", "timeout" or "cut N after_ms M"
//! gf-e2e-probe udp-server ADDR:PORT SECS              count datagrams; prints "received N"
//! gf-e2e-probe udp-send ADDR:PORT COUNT GAP_MS KIND   KIND = zoom (Zoom SFU media header) | plain
//! ```
//! Exit status: 0 = ok, 2 = refused, 3 = timeout or cut, 1 = usage or error.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

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

/// A minimal but well-formed TLS 1.2 record with a ClientHello carrying
/// the server_name extension.
fn client_hello(sni: &str) -> Vec<u8> {
    let name = sni.as_bytes();
    let mut ext = Vec::new();
    let list_len = name.len() + 3;
    ext.extend_from_slice(&[0x00, 0x00]);
    ext.extend_from_slice(&((list_len + 2) as u16).to_be_bytes());
    ext.extend_from_slice(&(list_len as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    ext.extend_from_slice(name);
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x42; 32]);
    body.push(0);
    body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01]);
    body.extend_from_slice(&[0x01, 0x00]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![0x01];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

fn dns_name(b: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    loop {
        let l = *b.get(at)? as usize;
        at += 1;
        if l == 0 {
            return Some((out.to_ascii_lowercase(), at));
        }
        if l > 63 {
            return None;
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(std::str::from_utf8(b.get(at..at + l)?).ok()?);
        at += l;
    }
}

fn dns_answer(q: &[u8], names: &[(String, IpAddr)]) -> Option<Vec<u8>> {
    let (name, end) = dns_name(q, 12)?;
    let qtype = u16::from_be_bytes([*q.get(end)?, *q.get(end + 1)?]);
    let question = q.get(12..end + 4)?;
    let hits: Vec<IpAddr> = names
        .iter()
        .filter(|(n, ip)| {
            *n == name && ((qtype == 1 && ip.is_ipv4()) || (qtype == 28 && ip.is_ipv6()))
        })
        .map(|(_, ip)| *ip)
        .collect();
    let mut r = Vec::new();
    r.extend_from_slice(q.get(0..2)?);
    let known = names.iter().any(|(n, _)| *n == name);
    r.extend_from_slice(&[0x81, if known { 0x80 } else { 0x83 }]);
    r.extend_from_slice(&[0, 1]);
    r.extend_from_slice(&(hits.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(question);
    for ip in hits {
        r.extend_from_slice(&[0xC0, 0x0C]);
        match ip {
            IpAddr::V4(a) => {
                r.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                r.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                r.extend_from_slice(&[0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
                r.extend_from_slice(&a.octets());
            }
        }
    }
    Some(r)
}

fn dns_query(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

fn parse_answers(r: &[u8]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let Some((_, mut at)) = dns_name(r, 12) else {
        return out;
    };
    at += 4;
    let an = r
        .get(6..8)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .unwrap_or(0);
    for _ in 0..an {
        at += 2; // compressed name pointer
        let Some(h) = r.get(at..at + 10) else { break };
        let t = u16::from_be_bytes([h[0], h[1]]);
        let len = u16::from_be_bytes([h[8], h[9]]) as usize;
        at += 10;
        let Some(d) = r.get(at..at + len) else { break };
        match (t, len) {
            (1, 4) => out.push(IpAddr::from([d[0], d[1], d[2], d[3]])),
            (28, 16) => {
                let mut o = [0u8; 16];
                o.copy_from_slice(d);
                out.push(IpAddr::from(o));
            }
            _ => {}
        }
        at += len;
    }
    out
}

fn zoom_media(seq: u16) -> Vec<u8> {
    // Zoom SFU hello (type 1, `01 00 03`) then media packets (type 5,
    // direction 0, media type 15 = audio with RTP at offset 27).
    if seq == 0 {
        let mut p = vec![0x01, 0x00, 0x03];
        p.extend_from_slice(&[0u8; 37]);
        return p;
    }
    let mut p = vec![0x05, 0, 0, 0, 0, 0, 0, 0x00, 15];
    p.extend_from_slice(&[0u8; 18]);
    p.extend_from_slice(&[0x80, 0x6F]);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]);
    p.extend_from_slice(&[0x55u8; 80]);
    p
}

fn run(a: &[String]) -> Result<i32, String> {
    let cmd = arg(a, 1)?;
    let addr = sock(arg(a, 2)?)?;
    match cmd {
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
                    if let Some(r) = dns_answer(&buf[..n], &names) {
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
            s.send_to(&dns_query(name, qtype), addr)
                .map_err(|e| e.to_string())?;
            let mut buf = [0u8; 1500];
            let (n, _) = s
                .recv_from(&mut buf)
                .map_err(|e| format!("no answer: {e}"))?;
            for ip in parse_answers(&buf[..n]) {
                println!("{ip}");
            }
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
            let hello = client_hello(sni);
            let mut done = 0;
            let mut reader = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
            let mut line = String::new();
            let ok = s.write_all(&hello).is_ok()
                && reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false);
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
            while Instant::now() < end {
                if s.recv_from(&mut buf).is_ok() {
                    n += 1;
                }
            }
            println!("received {n}");
            Ok(0)
        }
        "udp-send" => {
            let count = num(arg(a, 3)?)?;
            let gap = num(arg(a, 4)?)?;
            let kind = arg(a, 5)?;
            let bind: SocketAddr = if addr.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            }
            .parse()
            .map_err(|_| "bind")?;
            let s = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
            let mut sent = 0;
            for i in 0..count {
                let p = if kind == "zoom" {
                    zoom_media(i as u16)
                } else {
                    vec![0x42; 64]
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
