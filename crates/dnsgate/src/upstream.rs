//! Asking the upstream resolvers (thin tokio code).
//!
//! Every attempt uses a fresh socket (the kernel picks a random ephemeral
//! source port) and a fresh random transaction id from the system CSPRNG,
//! so an off-path attacker must guess both to slip in an answer; a UDP
//! socket is connected, so only datagrams from the upstream asked arrive,
//! and those that do not answer the question asked are counted and ignored.
//! An attempt that fails or times out moves on to the next upstream; the
//! upstream that last answered is asked first.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout_at, Instant};

use crate::msg::{self, QueryInfo};
use crate::{bump, GateStats};

/// Largest DNS message.
const MAX_MESSAGE: usize = 65_535;

/// The upstream resolvers and which one answered last.
pub struct Upstreams {
    addrs: Vec<SocketAddr>,
    preferred: AtomicUsize,
    rng: SystemRandom,
    attempt_timeout: Duration,
    attempts: u32,
}

/// Why no answer came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    NoUpstream,
    /// Every attempt failed or timed out.
    Exhausted,
}

impl Upstreams {
    pub fn new(addrs: Vec<SocketAddr>, attempt_timeout: Duration, attempts: u32) -> Upstreams {
        Upstreams {
            addrs,
            preferred: AtomicUsize::new(0),
            rng: SystemRandom::new(),
            attempt_timeout,
            attempts: attempts.max(1),
        }
    }

    fn random_id(&self) -> u16 {
        let mut b = [0u8; 2];
        // SystemRandom only fails if the OS has no entropy source at all;
        // a fixed id would then still be matched by question and port.
        let _ = self.rng.fill(&mut b);
        u16::from_be_bytes(b)
    }

    /// Sends `query` (the client's bytes) upstream with a fresh id until an
    /// upstream answers; returns the answer (with the upstream's id) and who
    /// answered. `tcp` selects DNS over TCP.
    pub async fn resolve(
        &self,
        query: &[u8],
        info: &QueryInfo,
        tcp: bool,
        stats: &GateStats,
    ) -> Result<(Vec<u8>, SocketAddr), UpstreamError> {
        if self.addrs.is_empty() {
            return Err(UpstreamError::NoUpstream);
        }
        let n = self.addrs.len();
        let start = self.preferred.load(Ordering::Relaxed) % n;
        let mut q = query.to_vec();
        for attempt in 0..self.attempts as usize {
            let i = (start + attempt) % n;
            let Some(&up) = self.addrs.get(i) else {
                continue;
            };
            let id = self.random_id();
            msg::set_id(&mut q, id);
            let deadline = Instant::now() + self.attempt_timeout;
            let r = if tcp {
                exchange_tcp(up, &q, id, info, deadline, stats).await
            } else {
                exchange_udp(up, &q, id, info, deadline, stats).await
            };
            match r {
                Some(answer) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok((answer, up));
                }
                None => bump(&stats.upstream_failures),
            }
        }
        Err(UpstreamError::Exhausted)
    }
}

fn unspecified_for(a: &SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

async fn exchange_udp(
    up: SocketAddr,
    q: &[u8],
    id: u16,
    info: &QueryInfo,
    deadline: Instant,
    stats: &GateStats,
) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(unspecified_for(&up)).await.ok()?;
    sock.connect(up).await.ok()?;
    timeout_at(deadline, sock.send(q)).await.ok()?.ok()?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let n = timeout_at(deadline, sock.recv(&mut buf)).await.ok()?.ok()?;
        let got = buf.get(..n)?;
        if msg::answers_query(got, id, info) {
            return Some(got.to_vec());
        }
        bump(&stats.mismatched_answers);
    }
}

async fn exchange_tcp(
    up: SocketAddr,
    q: &[u8],
    id: u16,
    info: &QueryInfo,
    deadline: Instant,
    stats: &GateStats,
) -> Option<Vec<u8>> {
    let mut s = timeout_at(deadline, TcpStream::connect(up))
        .await
        .ok()?
        .ok()?;
    let _ = s.set_nodelay(true);
    let len = u16::try_from(q.len()).ok()?;
    let mut out = Vec::with_capacity(q.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(q);
    timeout_at(deadline, s.write_all(&out)).await.ok()?.ok()?;
    loop {
        let mut l = [0u8; 2];
        timeout_at(deadline, s.read_exact(&mut l))
            .await
            .ok()?
            .ok()?;
        let mut m = vec![0u8; usize::from(u16::from_be_bytes(l))];
        timeout_at(deadline, s.read_exact(&mut m))
            .await
            .ok()?
            .ok()?;
        if msg::answers_query(&m, id, info) {
            return Some(m);
        }
        bump(&stats.mismatched_answers);
    }
}
