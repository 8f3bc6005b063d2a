//! `gf-dns-race`: traffic tool of the DNS gate namespace tests (not
//! installed). A client that connects to every address of an answer the
//! moment the answer arrives (no pacing), an authoritative test resolver,
//! and a TCP sink that reports every connection that reaches it.
//!
//! ```text
//! gf-dns-race auth ADDR:PORT...        answer (UDP and TCP) c<N>.zoom.us -> CN test addresses,
//!                                      d<N>.zoom.us and d<N>.example.org -> DE test addresses
//! gf-dns-race sink PORT                accept on [::]:PORT; print "accept LOCAL_IP" per connection
//! gf-dns-race race RESOLVER L.ZONE FIRST COUNT a|aaaa PORT [udp|tcp]
//!                                      resolve L<N>.ZONE for N in FIRST..FIRST+COUNT and connect to
//!                                      every address at once; prints a summary line
//! ```
//! Addresses: c<N> -> 2001:db8:2::1:N (AAAA), 203.0.113.(96 + N % 32) (A);
//! d<N> -> 2001:db8:2::2:N, 203.0.113.(192 + N % 32). N < 4096.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use geofence_testkit::wire;

fn addr_for(name: &str, qtype: u16) -> Option<IpAddr> {
    let (label, zone) = name.split_once('.')?;
    let n: u16 = label.get(1..)?.parse().ok()?;
    if n >= 4096 {
        return None;
    }
    let cn = match (label.as_bytes().first()?, zone) {
        (b'c', "zoom.us") => true,
        (b'd', "zoom.us" | "example.org") => false,
        _ => return None,
    };
    Some(match (qtype, cn) {
        (28, true) => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 1, n)),
        (28, false) => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 2, n)),
        (1, true) => IpAddr::from([203, 0, 113, 96 + (n % 32) as u8]),
        (1, false) => IpAddr::from([203, 0, 113, 192 + (n % 32) as u8]),
        _ => return None,
    })
}

fn respond(q: &[u8]) -> Option<Vec<u8>> {
    let (id, name, qtype) = wire::dns_question(q)?;
    let hit: Vec<IpAddr> = addr_for(&name, qtype).into_iter().collect();
    let known = !hit.is_empty();
    Some(wire::dns_response(id, &name, qtype, &hit, 60, !known))
}

fn auth(addrs: &[SocketAddr]) -> Result<(), String> {
    let mut threads = Vec::new();
    for &a in addrs {
        let u = UdpSocket::bind(a).map_err(|e| format!("{a}: {e}"))?;
        let t = TcpListener::bind(a).map_err(|e| format!("{a}: {e}"))?;
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = u.recv_from(&mut buf) {
                if let Some(r) = buf.get(..n).and_then(respond) {
                    let _ = u.send_to(&r, from);
                }
            }
        }));
        threads.push(std::thread::spawn(move || {
            for s in t.incoming().flatten() {
                std::thread::spawn(move || tcp_answer(s));
            }
        }));
    }
    println!("listening");
    let _ = std::io::stdout().flush();
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

fn tcp_answer(mut s: TcpStream) {
    let mut l = [0u8; 2];
    while s.read_exact(&mut l).is_ok() {
        let mut q = vec![0u8; usize::from(u16::from_be_bytes(l))];
        if s.read_exact(&mut q).is_err() {
            return;
        }
        let Some(r) = respond(&q) else { return };
        let mut out = (r.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&r);
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

fn sink(port: u16) -> Result<(), String> {
    let l = TcpListener::bind(("::", port)).map_err(|e| e.to_string())?;
    println!("listening");
    let _ = std::io::stdout().flush();
    for s in l.incoming().flatten() {
        if let Ok(local) = s.local_addr() {
            let ip = match local.ip() {
                IpAddr::V6(v6) => v6
                    .to_ipv4_mapped()
                    .map(IpAddr::V4)
                    .unwrap_or(IpAddr::V6(v6)),
                v4 => v4,
            };
            println!("accept {ip}");
            let _ = std::io::stdout().flush();
        }
    }
    Ok(())
}

fn ask(resolver: SocketAddr, q: &[u8], tcp: bool) -> Option<Vec<u8>> {
    if tcp {
        let mut s = TcpStream::connect_timeout(&resolver, Duration::from_secs(3)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        let mut out = (q.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(q);
        s.write_all(&out).ok()?;
        let mut l = [0u8; 2];
        s.read_exact(&mut l).ok()?;
        let mut m = vec![0u8; usize::from(u16::from_be_bytes(l))];
        s.read_exact(&mut m).ok()?;
        return Some(m);
    }
    let bind: SocketAddr = if resolver.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let u = UdpSocket::bind(bind).ok()?;
    u.connect(resolver).ok()?;
    u.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    u.send(q).ok()?;
    let mut buf = [0u8; 1500];
    let n = u.recv(&mut buf).ok()?;
    Some(buf.get(..n)?.to_vec())
}

fn race(a: &[String]) -> Result<(), String> {
    let get = |i: usize| {
        a.get(i)
            .map(String::as_str)
            .ok_or(format!("missing argument {i}"))
    };
    let resolver: SocketAddr = get(2)?.parse().map_err(|_| "resolver address")?;
    let prefix = get(3)?;
    let first: u16 = get(4)?.parse().map_err(|_| "FIRST")?;
    let count: u16 = get(5)?.parse().map_err(|_| "COUNT")?;
    let qtype = match get(6)? {
        "a" => 1,
        "aaaa" => 28,
        other => return Err(format!("qtype {other}")),
    };
    let port: u16 = get(7)?.parse().map_err(|_| "PORT")?;
    let tcp = a.get(8).is_some_and(|s| s == "tcp");
    let (mut answers, mut connected, mut refused, mut timeout, mut failed, mut noanswer) =
        (0u32, 0u32, 0u32, 0u32, 0u32, 0u32);
    let mut max_gap_us = 0u128;
    for i in first..first.saturating_add(count) {
        // `c.zoom.us` -> `c<N>.zoom.us`.
        let name = match prefix.split_once('.') {
            Some((l, rest)) => format!("{l}{i}.{rest}"),
            None => format!("{prefix}{i}"),
        };
        let q = wire::dns_query(i, &name, qtype);
        let Some(r) = ask(resolver, &q, tcp) else {
            noanswer += 1;
            continue;
        };
        let got = Instant::now();
        let addrs = wire::dns_addresses(&r);
        if addrs.is_empty() {
            failed += 1;
            continue;
        }
        answers += 1;
        for ip in addrs {
            let t = Instant::now();
            max_gap_us = max_gap_us.max(t.duration_since(got).as_micros());
            match TcpStream::connect_timeout(
                &SocketAddr::new(ip, port),
                Duration::from_millis(1500),
            ) {
                Ok(_) => connected += 1,
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => refused += 1,
                Err(e) if e.kind() == ErrorKind::TimedOut => timeout += 1,
                Err(_) => refused += 1,
            }
        }
    }
    println!(
        "answers {answers} connected {connected} refused {refused} timeout {timeout} failed {failed} noanswer {noanswer} max_answer_to_syn_us {max_gap_us}"
    );
    Ok(())
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let r = match a.get(1).map(String::as_str) {
        Some("auth") => a[2..]
            .iter()
            .map(|s| {
                s.parse::<SocketAddr>()
                    .map_err(|_| format!("not an address: {s}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(|v| auth(&v)),
        Some("sink") => a
            .get(2)
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| "PORT".to_string())
            .and_then(sink),
        Some("race") => race(&a),
        _ => Err("usage: gf-dns-race auth|sink|race ...".to_string()),
    };
    if let Err(e) = r {
        eprintln!("gf-dns-race: {e}");
        std::process::exit(1);
    }
}
