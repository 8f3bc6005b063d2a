//! Tiny traffic generator for namespace tests (std only). Run inside a namespace
//! with `ip netns exec NS geofence-nstraffic <command> ...`:
//!
//! ```text
//! udp-flows  DST:PORT FLOWS PACKETS     FLOWS sockets, each sends PACKETS datagrams "F<f>S<s>"
//! udp-answer BIND:PORT COUNT            replies "ANSWER:<query>" to COUNT datagrams (10 s limit)
//! dns        DST:PORT COUNT             COUNT query sockets, each sends "Q<n>" and waits for the answer
//! tcp-sink   BIND:PORT                  accepts one connection and reads it to the end (10 s limit)
//! tcp-send   DST:PORT SEGMENTS          connects, sends SEGMENTS writes "T<n>;" 20 ms apart
//! udp-blast  DST:PORT COUNT FLOWS       sends COUNT 64-byte datagrams round-robin over FLOWS sockets
//!                                       (payload: pid and sequence number, u32 big endian each)
//! udp-rate   DST:PORT COUNT FLOWS PPS   the same, paced to PPS datagrams per second (1 ms bursts)
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

fn fail(msg: &str) -> ! {
    eprintln!("nstraffic: {msg}");
    std::process::exit(2)
}

fn addr(s: Option<&String>) -> SocketAddr {
    s.and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fail("missing or bad ADDR:PORT"))
}

fn num(s: Option<&String>) -> usize {
    s.and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fail("missing or bad number"))
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let cmd = a.first().map(String::as_str).unwrap_or("");
    let run = || -> std::io::Result<()> {
        match cmd {
            "udp-flows" => {
                let (dst, flows, packets) = (addr(a.get(1)), num(a.get(2)), num(a.get(3)));
                let socks: Vec<UdpSocket> = (0..flows)
                    .map(|_| UdpSocket::bind("0.0.0.0:0"))
                    .collect::<Result<_, _>>()?;
                for s in 0..packets {
                    for (f, sock) in socks.iter().enumerate() {
                        sock.send_to(format!("F{f}S{s}").as_bytes(), dst)?;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            "udp-answer" => {
                let (bind, count) = (addr(a.get(1)), num(a.get(2)));
                let sock = UdpSocket::bind(bind)?;
                sock.set_read_timeout(Some(Duration::from_secs(10)))?;
                let mut buf = [0u8; 2048];
                for _ in 0..count {
                    let (n, peer) = sock.recv_from(&mut buf)?;
                    let mut reply = b"ANSWER:".to_vec();
                    reply.extend_from_slice(&buf[..n]);
                    sock.send_to(&reply, peer)?;
                }
            }
            "dns" => {
                let (dst, count) = (addr(a.get(1)), num(a.get(2)));
                for q in 0..count {
                    let sock = UdpSocket::bind("0.0.0.0:0")?;
                    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
                    sock.send_to(format!("Q{q}").as_bytes(), dst)?;
                    let mut buf = [0u8; 2048];
                    let (n, _) = sock.recv_from(&mut buf)?;
                    println!("{}", String::from_utf8_lossy(&buf[..n]));
                }
            }
            "tcp-sink" => {
                let l = TcpListener::bind(addr(a.get(1)))?;
                l.set_nonblocking(true)?;
                let start = Instant::now();
                let (mut s, _) = loop {
                    match l.accept() {
                        Ok(c) => break c,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            if start.elapsed() > Duration::from_secs(10) {
                                fail("no connection");
                            }
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => return Err(e),
                    }
                };
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                let mut all = Vec::new();
                s.read_to_end(&mut all)?;
                println!("{}", String::from_utf8_lossy(&all));
            }
            "tcp-send" => {
                let (dst, segs) = (addr(a.get(1)), num(a.get(2)));
                let mut s = TcpStream::connect_timeout(&dst, Duration::from_secs(5))?;
                s.set_nodelay(true)?;
                for i in 0..segs {
                    s.write_all(format!("T{i};").as_bytes())?;
                    std::thread::sleep(Duration::from_millis(20));
                }
                s.shutdown(std::net::Shutdown::Write)?;
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest);
            }
            "udp-blast" => {
                let (dst, count, flows) = (addr(a.get(1)), num(a.get(2)), num(a.get(3)).max(1));
                let socks: Vec<UdpSocket> = (0..flows)
                    .map(|_| UdpSocket::bind("0.0.0.0:0"))
                    .collect::<Result<_, _>>()?;
                // payload: sender pid and sequence number (big endian), then filler
                let mut payload = [0x5Au8; 64];
                payload[..4].copy_from_slice(&std::process::id().to_be_bytes());
                let start = Instant::now();
                let mut sent = 0usize;
                for i in 0..count {
                    payload[4..8].copy_from_slice(&(i as u32).to_be_bytes());
                    // ENOBUFS/ECONNREFUSED from ICMP errors are expected under load: keep going
                    if socks[i % flows].send_to(&payload, dst).is_ok() {
                        sent += 1;
                    }
                }
                let secs = start.elapsed().as_secs_f64();
                println!(
                    "{{\"sent\":{sent},\"secs\":{secs:.3},\"pps\":{:.0}}}",
                    sent as f64 / secs
                );
            }
            "udp-rate" => {
                let (dst, count, flows) = (addr(a.get(1)), num(a.get(2)), num(a.get(3)).max(1));
                let pps = num(a.get(4)).max(1) as f64;
                let socks: Vec<UdpSocket> = (0..flows)
                    .map(|_| UdpSocket::bind("0.0.0.0:0"))
                    .collect::<Result<_, _>>()?;
                let payload = [0x5Au8; 64];
                let start = Instant::now();
                let (mut i, mut sent) = (0usize, 0usize);
                while i < count {
                    // send what the schedule allows by now, then sleep about 1 ms; after a
                    // stall catch up by at most 4 ms worth per burst, so a burst never
                    // overflows the receiver's backlog queue (1000 packets)
                    let burst = ((pps / 250.0) as usize).clamp(1, 500);
                    let due = ((start.elapsed().as_secs_f64() * pps) as usize)
                        .min(count)
                        .min(i + burst);
                    while i < due {
                        if socks[i % flows].send_to(&payload, dst).is_ok() {
                            sent += 1;
                        }
                        i += 1;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                let secs = start.elapsed().as_secs_f64();
                println!(
                    "{{\"sent\":{sent},\"secs\":{secs:.3},\"pps\":{:.0}}}",
                    sent as f64 / secs
                );
            }
            _ => fail("unknown command (see the source for usage)"),
        }
        Ok(())
    };
    if let Err(e) = run() {
        fail(&e.to_string());
    }
}
