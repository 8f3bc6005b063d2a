//! The client side of the gate (thin tokio code): UDP and TCP listeners,
//! the bounds (rate, in-flight table, TCP clients, idle time), and the
//! sequence per query: check it, forward it, hold the answer until the
//! [`Gatekeeper`] has it enforced, restore the client's id, fit it to the
//! client's UDP size, send it.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant as StdInstant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::limit::RateLimiter;
use crate::msg::{self, QueryRejection, Rcode};
use crate::upstream::Upstreams;
use crate::{bump, GateOptions, GateStats, Gatekeeper};

/// Shared state of a running gate.
pub struct Gate {
    opts: GateOptions,
    keeper: Arc<dyn Gatekeeper>,
    upstreams: Upstreams,
    limiter: Mutex<RateLimiter>,
    inflight: Arc<Semaphore>,
    tcp_slots: Arc<Semaphore>,
    stats: Arc<GateStats>,
}

/// A gate with its listeners running; dropping it stops them.
pub struct RunningGate {
    /// The bound UDP and TCP addresses (ports resolved when 0 was asked).
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    pub stats: Arc<GateStats>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for RunningGate {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

impl Gate {
    /// Binds every listen address (UDP and TCP) and starts serving on the
    /// current tokio runtime. Fails if any address cannot be bound.
    pub async fn start(opts: GateOptions, keeper: Arc<dyn Gatekeeper>) -> io::Result<RunningGate> {
        let gate = Arc::new(Gate {
            upstreams: Upstreams::new(opts.upstreams.clone(), opts.attempt_timeout, opts.attempts),
            limiter: Mutex::new(RateLimiter::new(
                opts.rate_slots,
                opts.client_rate,
                opts.client_burst,
                StdInstant::now(),
            )),
            inflight: Arc::new(Semaphore::new(opts.max_inflight.max(1))),
            tcp_slots: Arc::new(Semaphore::new(opts.max_tcp_clients.max(1))),
            stats: Arc::new(GateStats::default()),
            keeper,
            opts,
        });
        let mut run = RunningGate {
            udp: Vec::new(),
            tcp: Vec::new(),
            stats: gate.stats.clone(),
            tasks: Vec::new(),
        };
        for &addr in &gate.opts.listen {
            let udp = Arc::new(UdpSocket::bind(addr).await?);
            // Same port for TCP when the UDP port was chosen by the kernel.
            let tcp = TcpListener::bind(udp.local_addr()?).await?;
            run.udp.push(udp.local_addr()?);
            run.tcp.push(tcp.local_addr()?);
            run.tasks.push(tokio::spawn(serve_udp(gate.clone(), udp)));
            run.tasks.push(tokio::spawn(serve_tcp(gate.clone(), tcp)));
        }
        Ok(run)
    }

    fn rate_ok(&self, client: &SocketAddr) -> bool {
        let ok = match self.limiter.lock() {
            Ok(mut l) => l.allow(client.ip(), StdInstant::now()),
            Err(p) => p.into_inner().allow(client.ip(), StdInstant::now()),
        };
        if !ok {
            bump(&self.stats.rate_limited);
        }
        ok
    }

    /// Resolves one query through the upstreams and the gatekeeper. The
    /// returned bytes go to the client; `None` = send nothing.
    async fn answer(&self, client: SocketAddr, query: &[u8], t: Transport) -> Option<Vec<u8>> {
        let info = match msg::inspect_query(query) {
            Ok(i) => i,
            Err(QueryRejection::Drop) => {
                bump(&self.stats.bad_queries);
                return None;
            }
            Err(QueryRejection::Answer(rc)) => {
                bump(&self.stats.bad_queries);
                return msg::error_answer(query, rc);
            }
        };
        let tcp = t == Transport::Tcp;
        let (mut answer, upstream) =
            match self.upstreams.resolve(query, &info, tcp, &self.stats).await {
                Ok(a) => a,
                Err(_) => {
                    bump(&self.stats.servfail);
                    return msg::error_answer(query, Rcode::ServFail);
                }
            };
        let hold = self.keeper.admit(client.ip(), upstream, &answer);
        match tokio::time::timeout(self.opts.hold_timeout, hold).await {
            Ok(Ok(())) => {}
            Ok(Err(w)) => {
                tracing::warn!(client = %client, reason = %w, "DNS answer withheld: its blocks are not in force");
                bump(&self.stats.withheld);
                return msg::error_answer(query, Rcode::ServFail);
            }
            Err(_) => {
                tracing::warn!(client = %client, "DNS answer withheld: the kernel did not confirm its blocks in time");
                bump(&self.stats.withheld);
                return msg::error_answer(query, Rcode::ServFail);
            }
        }
        msg::set_id(&mut answer, info.id);
        bump(&self.stats.answered);
        if t == Transport::Udp {
            let limit = msg::udp_limit(info.edns_udp_size, self.opts.max_udp_size);
            if let Some(cut) = msg::truncate_for_udp(&answer, limit) {
                bump(&self.stats.truncated);
                return Some(cut);
            }
        }
        Some(answer)
    }
}

async fn serve_udp(gate: Arc<Gate>, sock: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, client) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP errors from earlier sends surface here; keep serving.
                tracing::debug!(error = %e, "gate UDP receive");
                continue;
            }
        };
        bump(&gate.stats.queries);
        if !gate.rate_ok(&client) {
            // Silently: a spoofed flood gets no reflected traffic.
            continue;
        }
        let Some(query) = buf.get(..n).map(<[u8]>::to_vec) else {
            continue;
        };
        let Ok(permit) = gate.inflight.clone().try_acquire_owned() else {
            bump(&gate.stats.inflight_full);
            if let Some(r) = msg::error_answer(&query, Rcode::Refused) {
                let _ = sock.send_to(&r, client).await;
            }
            continue;
        };
        let (g, s) = (gate.clone(), sock.clone());
        tokio::spawn(async move {
            if let Some(r) = g.answer(client, &query, Transport::Udp).await {
                let _ = s.send_to(&r, client).await;
            }
            drop(permit);
        });
    }
}

async fn serve_tcp(gate: Arc<Gate>, listener: TcpListener) {
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "gate TCP accept");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(slot) = gate.tcp_slots.clone().try_acquire_owned() else {
            bump(&gate.stats.tcp_refused);
            drop(stream);
            continue;
        };
        let g = gate.clone();
        tokio::spawn(async move {
            tcp_client(&g, stream, client).await;
            drop(slot);
        });
    }
}

/// Serves one TCP client: length-prefixed queries in order, until it closes
/// or stays idle for `tcp_idle`.
async fn tcp_client(gate: &Gate, mut s: TcpStream, client: SocketAddr) {
    let _ = s.set_nodelay(true);
    loop {
        let mut l = [0u8; 2];
        match tokio::time::timeout(gate.opts.tcp_idle, s.read_exact(&mut l)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let mut q = vec![0u8; usize::from(u16::from_be_bytes(l))];
        match tokio::time::timeout(gate.opts.tcp_idle, s.read_exact(&mut q)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        bump(&gate.stats.queries);
        let reply = if !gate.rate_ok(&client) {
            msg::error_answer(&q, Rcode::Refused)
        } else {
            match gate.inflight.clone().try_acquire_owned() {
                Ok(permit) => {
                    let r = gate.answer(client, &q, Transport::Tcp).await;
                    drop(permit);
                    r
                }
                Err(_) => {
                    bump(&gate.stats.inflight_full);
                    msg::error_answer(&q, Rcode::Refused)
                }
            }
        };
        let Some(r) = reply else { continue };
        let Ok(len) = u16::try_from(r.len()) else {
            return;
        };
        let mut out = Vec::with_capacity(r.len() + 2);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&r);
        if s.write_all(&out).await.is_err() {
            return;
        }
    }
}
