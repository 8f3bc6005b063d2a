//! # geofence-dnsgate: DNS answers wait for the kernel
//!
//! Where it sits: in gate mode, clients' DNS (UDP and TCP port 53, whatever
//! resolver they aimed at) is redirected by the daemon's own nftables nat
//! chain to this forwarding resolver inside `geofenced`. The gate forwards
//! each query to the configured upstream resolvers and, before the answer
//! goes back to the client, hands it to a [`Gatekeeper`] (the daemon): the
//! answer's names are matched against the app signatures, each address is
//! geo-located and decided by the policy (the same function the passive
//! NFLOG path uses, `geofence_engine::answer_decisions`), blocked
//! `(client . server)` pairs go to the enforcement thread, and only when the
//! kernel has acknowledged every element does the gate release the answer.
//! A client therefore cannot connect to a blocked server faster than the
//! block: it does not know the address yet.
//!
//! ```text
//! client ──53──► nat redirect ──► gate ──► upstream resolver
//!                                   │ answer
//!                                   ▼
//!                 Gatekeeper: match_host ▸ geo ▸ policy ▸ Cmd::Block ─► enforcer ─► kernel
//!                                   │ every element committed (ack)
//! client ◄──────────────────────────┘ answer, byte for byte (only the id restored)
//! ```
//!
//! Manners of a real resolver: UDP and TCP; the client's EDNS(0) buffer
//! size (answers larger than it are cut to header + question with TC set,
//! so the client retries over TCP); a fresh random transaction id and a
//! fresh socket (random source port) per upstream query; answers accepted
//! only from the upstream asked, with the id and question asked; per-attempt
//! timeouts, retries and failover over several upstreams; DNSSEC records and
//! flags passed through untouched (the gate only reads). Bounds: a table of
//! queries in flight ([`GateOptions::max_inflight`]), per-client rate limits
//! in fixed memory ([`limit`]), a cap on TCP clients and an idle timeout.
//! When an answer cannot be enforced (kernel error, timeout) the client
//! gets SERVFAIL: fail closed.
//!
//! [`msg`] and [`limit`] are pure; [`server`] and [`upstream`] hold the thin
//! tokio socket code.

#![forbid(unsafe_code)]

pub mod limit;
pub mod msg;
pub mod server;
pub mod upstream;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use server::{Gate, RunningGate};

/// How the gate behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateOptions {
    /// Client-facing addresses, UDP and TCP on each.
    pub listen: Vec<SocketAddr>,
    /// Upstream resolvers, in order of preference.
    pub upstreams: Vec<SocketAddr>,
    /// How long one upstream attempt may take.
    pub attempt_timeout: Duration,
    /// Attempts per query over all upstreams (each failure moves on to the
    /// next upstream).
    pub attempts: u32,
    /// Longest wait for the kernel to commit an answer's blocks; after it the
    /// client gets SERVFAIL.
    pub hold_timeout: Duration,
    /// Queries being resolved at once; more are answered REFUSED.
    pub max_inflight: usize,
    /// Queries per second per client (0 = unlimited).
    pub client_rate: u32,
    /// Burst allowed above the rate.
    pub client_burst: u32,
    /// Buckets of the rate limiter (its memory bound).
    pub rate_slots: usize,
    /// TCP connections at once; more are closed at accept.
    pub max_tcp_clients: usize,
    /// A TCP connection idle this long is closed.
    pub tcp_idle: Duration,
    /// Largest UDP answer sent, whatever the client advertises.
    pub max_udp_size: u16,
}

impl Default for GateOptions {
    fn default() -> Self {
        GateOptions {
            listen: Vec::new(),
            upstreams: Vec::new(),
            attempt_timeout: Duration::from_millis(1500),
            attempts: 3,
            hold_timeout: Duration::from_secs(2),
            max_inflight: 4096,
            client_rate: 200,
            client_burst: 400,
            rate_slots: 65_536,
            max_tcp_clients: 256,
            tcp_idle: Duration::from_secs(10),
            max_udp_size: 1232,
        }
    }
}

/// Why an answer was not released.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("answer withheld: {0}")]
pub struct Withheld(pub String);

/// The wait for an answer's decisions to be in force.
pub type Hold = Pin<Box<dyn Future<Output = Result<(), Withheld>> + Send>>;

/// Decides an answer before it is released: the future completes when every
/// address in `answer` is decided and its blocks, if any, are committed.
pub trait Gatekeeper: Send + Sync + 'static {
    fn admit(&self, client: IpAddr, upstream: SocketAddr, answer: &[u8]) -> Hold;
}

/// A gatekeeper that releases everything (a plain forwarder; tests, bench
/// baseline).
pub struct ReleaseAll;

impl Gatekeeper for ReleaseAll {
    fn admit(&self, _: IpAddr, _: SocketAddr, _: &[u8]) -> Hold {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Counters, readable while the gate runs.
#[derive(Debug, Default)]
pub struct GateStats {
    /// Queries received (UDP datagrams and TCP messages).
    pub queries: AtomicU64,
    /// Answers from upstream released to clients.
    pub answered: AtomicU64,
    /// UDP answers cut to header + question (TC) for the client's size.
    pub truncated: AtomicU64,
    /// Queries over a client's rate.
    pub rate_limited: AtomicU64,
    /// Queries refused because the in-flight table was full.
    pub inflight_full: AtomicU64,
    /// Malformed or unsupported queries.
    pub bad_queries: AtomicU64,
    /// Upstream attempts that timed out or failed.
    pub upstream_failures: AtomicU64,
    /// Datagrams from an upstream that did not answer the query asked.
    pub mismatched_answers: AtomicU64,
    /// Queries answered SERVFAIL because no upstream answered.
    pub servfail: AtomicU64,
    /// Answers withheld (SERVFAIL) because their blocks were not committed.
    pub withheld: AtomicU64,
    /// TCP connections closed at accept (too many).
    pub tcp_refused: AtomicU64,
}

/// A plain copy of [`GateStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub queries: u64,
    pub answered: u64,
    pub truncated: u64,
    pub rate_limited: u64,
    pub inflight_full: u64,
    pub bad_queries: u64,
    pub upstream_failures: u64,
    pub mismatched_answers: u64,
    pub servfail: u64,
    pub withheld: u64,
    pub tcp_refused: u64,
}

impl GateStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            queries: g(&self.queries),
            answered: g(&self.answered),
            truncated: g(&self.truncated),
            rate_limited: g(&self.rate_limited),
            inflight_full: g(&self.inflight_full),
            bad_queries: g(&self.bad_queries),
            upstream_failures: g(&self.upstream_failures),
            mismatched_answers: g(&self.mismatched_answers),
            servfail: g(&self.servfail),
            withheld: g(&self.withheld),
            tcp_refused: g(&self.tcp_refused),
        }
    }
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}
