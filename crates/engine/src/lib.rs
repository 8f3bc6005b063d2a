//! # geofence-engine: the pure pipeline
//!
//! The middle of Geofence: every captured frame goes through
//! [`Engine::process_frame`], which decodes it (`geofence-decode`), finds or
//! creates its bidirectional flow ([`flow`]), feeds the first packets of the
//! flow to the classifiers (`geofence-classify`, [`inspect`]), learns names
//! from DNS answers ([`names`]), and once a flow is labelled, tags the
//! destination with its geo facts (`geofence-geo`) and asks the policy
//! (`geofence-policy`) what to do. The result is a stream of [`Event`]s that
//! the daemon turns into nftables elements and alerts, and that
//! `geofencectl replay` prints.
//!
//! No I/O and no clocks: time comes from packet timestamps, so replaying a
//! capture gives the same answers as the live daemon.

#![forbid(unsafe_code)]

pub mod budget;
pub mod direction;
pub mod dnstrust;
pub mod flow;
pub mod handover;
pub mod inspect;
pub mod names;
pub mod recent;
pub mod scoped;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use geofence_classify::sigdb::{AppRef, SignatureDb};
use geofence_classify::{dns, AppId, Method};
use geofence_decode::{
    decode_with, DecodeOptions, LinkType, Packet, Proto, Skip, Tunnel, TunnelKind, TunnelSet,
};
use geofence_geo::{GeoDb, GeoInfo};
use geofence_policy::{Action, Decision, Policy, Query, Verdict};
use serde::Serialize;

use budget::{Grant, Pool, PoolConfig};
use dnstrust::{AnswerTrust, QueryTable, TrustConfig, TrustStats};
use flow::{Dir, Flow, FlowKey, FlowTable, Slot, TableConfig};
use inspect::{FlowInspect, Side, Step};
use names::{NameCache, PeerCache, PeerStats};
use rustc_hash::FxHashMap;
use scoped::ScopedStats;

/// How a flow was labelled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub app: AppRef,
    pub method: Method,
    /// The server name that decided (SNI, DNS name, STUN realm, Agora name).
    pub host: Option<Box<str>>,
    /// Evidence in words, e.g. "stun attribute 0x8055".
    pub evidence: Option<Box<str>>,
}

/// Engine tunables.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub table: TableConfig,
    /// Packets per flow (both directions) inspected before giving up.
    pub inspect_budget: u16,
    /// DNS name cache capacity (addresses).
    pub name_cache: usize,
    /// DNS answers are used at least this long, whatever their TTL.
    pub dns_floor_secs: u64,
    /// DNS answers are used at most this long, whatever their TTL.
    pub dns_ttl_cap_secs: u64,
    /// Bounds of the table of outstanding DNS queries.
    pub dns_trust: TrustConfig,
    /// STUN peer cache capacity (per kind: peers, servers, sockets).
    pub peer_cache: usize,
    /// STUN-learned peers and media servers are remembered this long.
    pub peer_life_secs: u64,
    /// Keep a report of every flow that ends (replay); the daemon does not.
    pub keep_finished: bool,
    /// What the kernel hands over: `Some(n)` when capture is NFLOG, whose
    /// rule logs a connection's original-direction packets while
    /// `ct original packets < n` (plus DNS answers). Inspection then ends
    /// at the last packet the kernel delivers (packet `n - 1`), so a
    /// tentative label (vendor range, ASN, port) decides while the daemon
    /// can still act on it. `None`: every packet is seen (AF_PACKET).
    pub handover: Option<u32>,
    /// Replay only: drop the packets the kernel would not hand over (see
    /// [`handover::KernelView`]), so a capture of the whole traffic is
    /// decided as the live daemon decides it. Needs `handover`.
    pub simulate_handover: bool,
    /// Memory budget for reassembly buffers of all flows.
    pub pool: PoolConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            table: TableConfig::default(),
            inspect_budget: 24,
            name_cache: 65_536,
            dns_floor_secs: 300,
            dns_ttl_cap_secs: 86_400,
            dns_trust: TrustConfig::default(),
            peer_cache: 65_536,
            peer_life_secs: 300,
            keep_finished: false,
            handover: None,
            simulate_handover: false,
            pool: PoolConfig::default(),
        }
    }
}

/// One flow as reported by replay and in alerts.
#[derive(Clone, Debug, Serialize)]
pub struct FlowReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcap: Option<String>,
    pub proto: &'static str,
    pub src_ip: IpAddr,
    pub src_port: u16,
    pub dest_ip: IpAddr,
    pub dest_port: u16,
    pub app: Option<AppId>,
    pub method: Option<Method>,
    pub host: Option<String>,
    pub country: Option<String>,
    pub registered_country: Option<String>,
    pub asn: Option<u32>,
    pub as_org: Option<String>,
    pub jurisdiction: Option<String>,
    pub action: Action,
    pub rule: Option<String>,
    /// How the kernel stops the flow; `Some` only when `action` is block.
    pub verdict: Option<Verdict>,
    pub evidence: Option<String>,
    /// The tunnel the flow was decoded from (`"gre"`, `"gtpu"`, ...); absent
    /// for a flow that was not tunnelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<&'static str>,
    /// Outer (tunnel) address on the client side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel_src: Option<IpAddr>,
    /// Outer (tunnel) address on the server side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel_dst: Option<IpAddr>,
    pub packets: u64,
    pub bytes: u64,
    pub first_ts_ns: u64,
    pub last_ts_ns: u64,
    /// Index of the deciding rule (for the kernel sets); not printed.
    #[serde(skip)]
    pub rule_index: Option<usize>,
    /// The server has answered (the flow is established), so cutting it
    /// needs its conntrack entry removed too; not printed.
    #[serde(skip)]
    pub answered: bool,
}

/// A DNS answer that named an app's server. Only answers to a query the
/// same client sent to the same server become one ([`dnstrust`]).
#[derive(Clone, Debug)]
pub struct DnsLearned {
    pub ts_ns: u64,
    /// The client that asked (DNS answer destination).
    pub client: IpAddr,
    pub resolver: IpAddr,
    /// The address the name resolved to.
    pub addr: IpAddr,
    pub name: String,
    pub app: AppId,
    /// The TTL used: the answer's, capped at `dns_ttl_cap_secs`.
    pub ttl: u32,
    /// The TTL the answer carried.
    pub ttl_received: u32,
    pub geo: GeoInfo,
    pub decision: Decision,
    /// Whom a block learnt from this answer may stop.
    pub scope: DnsScope,
}

/// Whom a block learnt from a DNS answer applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "scope", content = "reason")]
pub enum DnsScope {
    /// The client that asked, to that address (the normal case).
    Client,
    /// Every client the rule covers: the client asked over one address
    /// family for an address of the other, so its own address on that
    /// family (the one it will connect from) is unknown.
    ServerWide(ServerWideReason),
    /// Nobody ahead of time: the flow is decided on its own packets.
    FlowOnly(FlowOnlyReason),
}

/// Why a DNS answer may block an address for every client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerWideReason {
    /// Cross-family answer; the address is in the app's vendor ranges.
    CrossFamilyVendorRange,
    /// Cross-family answer; the address is in the app's vendor ASN.
    CrossFamilyVendorAsn,
    /// Cross-family answer, not corroborated by a vendor range or ASN,
    /// within the asking client's budget ([`CROSS_FAMILY_BUDGET`] per
    /// [`CROSS_FAMILY_WINDOW_SECS`]).
    CrossFamilyWithinBudget,
}

/// Why a DNS answer blocks nobody ahead of the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowOnlyReason {
    /// The policy does not block the address (cross-family, so no client
    /// key either).
    NotBlocked,
    /// Cross-family, uncorroborated, and the client spent its budget of
    /// server-wide blocks (or the budget table is full).
    CrossFamilyBudgetSpent,
}

impl ServerWideReason {
    pub fn describe(self) -> &'static str {
        match self {
            ServerWideReason::CrossFamilyVendorRange => {
                "the client resolved over the other address family, and the address is in the app's vendor ranges"
            }
            ServerWideReason::CrossFamilyVendorAsn => {
                "the client resolved over the other address family, and the address is in the app's vendor ASN"
            }
            ServerWideReason::CrossFamilyWithinBudget => {
                "the client resolved over the other address family (uncorroborated; within its budget of server-wide blocks)"
            }
        }
    }
}

impl FlowOnlyReason {
    pub fn describe(self) -> &'static str {
        match self {
            FlowOnlyReason::NotBlocked => "the policy does not block the address",
            FlowOnlyReason::CrossFamilyBudgetSpent => {
                "the client resolved over the other address family and spent its budget of server-wide blocks; the flow is decided on its own packets"
            }
        }
    }
}

/// Uncorroborated server-wide blocks one client may cause per window.
pub const CROSS_FAMILY_BUDGET: u32 = 16;
/// The window of [`CROSS_FAMILY_BUDGET`].
pub const CROSS_FAMILY_WINDOW_SECS: u64 = 600;
/// Clients whose cross-family budget is tracked at a time.
const CROSS_FAMILY_CLIENTS: usize = 4096;

/// What the engine tells its caller.
#[derive(Clone, Debug)]
pub enum Event {
    /// A flow was labelled with an app (sent once per flow, at the packet
    /// that decided). `packet_ts_ns` is that packet's capture time.
    Labelled {
        report: FlowReport,
        packet_ts_ns: u64,
    },
    /// A DNS answer pointed an app's name at an address: pre-emptive.
    Dns(DnsLearned),
    /// A new flow that a rule for all traffic blocks whatever its app (the
    /// kernel's static sets already stop it; reported for the alert log).
    /// Sent once per flow, at its first packet.
    AllTraffic {
        report: FlowReport,
        packet_ts_ns: u64,
    },
}

/// Packet-level counters.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct EngineStats {
    pub frames: u64,
    pub packets: u64,
    pub skipped_not_ip: u64,
    pub skipped_other_proto: u64,
    pub skipped_fragment: u64,
    pub skipped_malformed: u64,
    /// Packets the kernel would not have handed over (replay only).
    pub skipped_not_handed_over: u64,
    /// Tunnels nested deeper than the decoder follows.
    pub skipped_tunnel_depth: u64,
    /// Capture-file records skipped as oversized or damaged (replay only).
    pub skipped_records: u64,
    /// Packets decoded from inside an enabled tunnel.
    pub tunnelled_packets: u64,
    /// DNS answers inside a tunnel: not learnt (their addresses are unverified).
    pub tunnelled_dns_ignored: u64,
    pub dns_answers: u64,
    /// Flows on a DNS port that carried something other than DNS (then
    /// inspected like any other flow).
    pub dns_port_not_dns: u64,
    /// Answers whose TTL was above `dns_ttl_cap_secs`.
    pub dns_ttl_capped: u64,
    /// Answer records not reached from the question (ignored).
    pub dns_records_off_question: u64,
    /// Cross-family answers that blocked nobody ahead (budget spent).
    pub dns_cross_family_refused: u64,
    pub dns_trust: TrustStats,
    pub names: ScopedStats,
    pub peers: PeerStats,
    pub flows: flow::TableStats,
    pub reassembly: budget::PoolStats,
}

impl EngineStats {
    /// Events where a bounded structure was full: queries evicted or
    /// refused, names and peers evicted or refused, cross-family budgets
    /// spent. The daemon alerts when this grows.
    pub fn pressure(&self) -> u64 {
        self.dns_trust.queries_evicted
            + self.dns_trust.queries_refused
            + self.names.pressure()
            + self.peers.pressure()
            + self.dns_cross_family_refused
    }
}

/// The pipeline. Single-threaded; run one per capture thread.
pub struct Engine {
    cfg: EngineConfig,
    sigs: inspect::Sigs,
    geo: Arc<GeoDb>,
    policy: Arc<Policy>,
    flows: FlowTable,
    pool: Pool,
    names: NameCache,
    peers: PeerCache,
    trust: QueryTable,
    /// Per client: (window start, uncorroborated server-wide blocks in it).
    cross_family: FxHashMap<IpAddr, (u64, u32)>,
    finished: Vec<FlowReport>,
    stats: EngineStats,
    last_sweep_ns: u64,
    /// A client socket was identified since the last sweep: its sibling
    /// flows are labelled at the next sweep.
    sockets_pending: bool,
    /// The latest packet timestamp seen.
    clock_ns: u64,
    /// The policy has a `block` rule for all traffic (no `apps`).
    all_traffic_blocks: bool,
    /// Replay: the kernel's NFLOG rule, simulated.
    kernel_view: Option<handover::KernelView>,
    /// What the decoder opens (the policy's `[decode] tunnels`).
    decode: DecodeOptions,
}

const SWEEP_NS: u64 = 1_000_000_000;

/// Packets of a STUN-identified flow parsed for relay peers.
const STUN_FOLLOWUP: u64 = 64;

/// Records the XOR-PEER-ADDRESS peers of a STUN message (and of a STUN
/// message carried in its DATA attribute).
fn harvest_peers(peers: &mut PeerCache, client: IpAddr, app: AppRef, payload: &[u8], ts_ns: u64) {
    let inner = geofence_classify::stun::ms_multiplexed_inner(payload).unwrap_or(payload);
    if let Some(m) = geofence_classify::stun::parse(inner, false) {
        for peer in m.xor_peer_addresses() {
            peers.insert_peer(client, peer, app, ts_ns);
        }
    }
}

pub(crate) fn is_dns_port(port: u16) -> bool {
    matches!(port, 53 | 5353 | 5355)
}

/// Whether a UDP payload is one well-formed DNS message, a query when it
/// goes to the server and a response when it comes from it.
fn is_dns_message(payload: &[u8], to_server: bool) -> bool {
    matches!(dns::parse_message(payload), Ok(m) if m.is_response != to_server && m.opcode == 0)
}

/// Client and server of a new flow, and whether it is a DNS flow. A flow is
/// DNS only when its server uses a DNS port and (over UDP) its first
/// message is well-formed DNS in the right direction; a client socket bound
/// to port 53 that sends anything else is an ordinary client.
/// The last value is true for a flow turned around because the far side
/// was seen first ([`direction::reorient`]).
fn orient(
    p: &Packet<'_>,
    sigs: &SignatureDb,
    peers: &PeerCache,
    ts_ns: u64,
) -> ((IpAddr, u16), (IpAddr, u16), bool, bool) {
    let (client, server) = flow::initiator(p);
    if !is_dns_port(server.1) {
        let (c, s, remote) = direction::reorient(p, client, server, sigs, |sock| {
            peers.socket(&sock, ts_ns).is_some()
        });
        return (c, s, false, remote);
    }
    if p.proto == Proto::Tcp || p.payload.is_empty() {
        return (client, server, true, false);
    }
    let to_server = (p.dst, p.dport) == server;
    if is_dns_message(p.payload, to_server) {
        return (client, server, true, false);
    }
    // Not DNS: the sender started the flow, whatever its port.
    let (src, dst) = ((p.src, p.sport), (p.dst, p.dport));
    (src, dst, false, false)
}

impl Engine {
    pub fn new(
        cfg: EngineConfig,
        sigs: Arc<SignatureDb>,
        geo: Arc<GeoDb>,
        policy: Arc<Policy>,
    ) -> Engine {
        Engine {
            flows: FlowTable::new(cfg.table.clone()),
            pool: Pool::new(cfg.pool.clone()),
            names: NameCache::new(cfg.name_cache, cfg.dns_floor_secs),
            peers: PeerCache::new(cfg.peer_cache, cfg.peer_life_secs),
            trust: QueryTable::new(cfg.dns_trust.clone()),
            cross_family: FxHashMap::default(),
            finished: Vec::new(),
            stats: EngineStats::default(),
            last_sweep_ns: 0,
            sockets_pending: false,
            clock_ns: 0,
            all_traffic_blocks: all_traffic_blocks(&policy),
            kernel_view: cfg
                .handover
                .filter(|_| cfg.simulate_handover)
                .map(handover::KernelView::new),
            decode: decode_options(&policy),
            cfg,
            sigs: inspect::Sigs::new(sigs),
            geo,
            policy,
        }
    }

    /// Swaps in a new policy (reload); flows keep their labels.
    pub fn set_policy(&mut self, policy: Arc<Policy>) {
        self.all_traffic_blocks = all_traffic_blocks(&policy);
        self.decode = decode_options(&policy);
        self.policy = policy;
    }

    /// Swaps in new app signatures; live flows keep their labels.
    pub fn set_signatures(&mut self, sigs: Arc<SignatureDb>) {
        let same_ids = sigs.apps().len() == self.sigs.db.apps().len()
            && sigs
                .apps()
                .iter()
                .zip(self.sigs.db.apps())
                .all(|(a, b)| a.id == b.id);
        self.sigs = inspect::Sigs::new(sigs);
        if !same_ids {
            // Labels hold indices into the old database: drop them rather
            // than let them point at another app.
            for f in self.flows.iter_mut() {
                f.label = None;
                f.inspect = None;
            }
            self.peers = PeerCache::new(self.cfg.peer_cache, self.cfg.peer_life_secs);
            self.names = NameCache::new(self.cfg.name_cache, self.cfg.dns_floor_secs);
        }
    }

    /// Re-decides every live labelled flow under the current policy and
    /// geo databases (after a reload), reporting each again.
    pub fn reevaluate(&mut self, out: &mut Vec<Event>) {
        let now = self.clock_ns;
        let Engine {
            flows,
            sigs,
            geo,
            policy,
            ..
        } = self;
        for f in flows.iter_mut() {
            // Flows that already ended (FIN or RST seen) need no verdict.
            if (f.label.is_some() || f.undecidable.is_some()) && !f.closing {
                let report = make_report(&sigs.db, geo, policy, f);
                out.push(Event::Labelled {
                    report,
                    packet_ts_ns: now,
                });
            }
        }
    }

    /// Swaps in new geo databases.
    pub fn set_geo(&mut self, geo: Arc<GeoDb>) {
        self.geo = geo;
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            flows: self.flows.stats(),
            dns_trust: self.trust.stats(),
            names: self.names.stats(),
            peers: self.peers.stats(),
            reassembly: self.pool.stats(),
            ..self.stats
        }
    }

    pub fn signatures(&self) -> &SignatureDb {
        &self.sigs.db
    }

    /// Decodes one captured frame and processes it.
    pub fn process_frame(&mut self, ts_ns: u64, link: LinkType, data: &[u8], out: &mut Vec<Event>) {
        self.stats.frames += 1;
        match decode_with(link, data, self.decode) {
            Ok(p) => {
                if let Some(v) = self.kernel_view.as_mut() {
                    if !v.delivers(&p, ts_ns) {
                        self.stats.skipped_not_handed_over += 1;
                        return;
                    }
                }
                self.process_packet(ts_ns, &p, out)
            }
            Err(Skip::NotIp) => self.stats.skipped_not_ip += 1,
            Err(Skip::NotTcpUdp) => self.stats.skipped_other_proto += 1,
            Err(Skip::Fragment) => self.stats.skipped_fragment += 1,
            Err(Skip::Malformed) => self.stats.skipped_malformed += 1,
            Err(Skip::TooDeep) => self.stats.skipped_tunnel_depth += 1,
        }
    }

    /// Processes one decoded packet.
    ///
    /// A packet from inside a tunnel (`p.tunnel`) is its own flow, keyed with
    /// the tunnel, and is classified and reported like any other, but its
    /// inner addresses are what the sender wrote, unverified and invisible to
    /// the kernel: such flows read what untunnelled traffic taught (DNS names,
    /// vendor media servers) but teach nothing (no DNS answer, STUN peer or
    /// client socket is learnt from them), and their decisions never become
    /// kernel blocks (see [`make_report`]).
    pub fn process_packet(&mut self, ts_ns: u64, p: &Packet<'_>, out: &mut Vec<Event>) {
        self.stats.packets += 1;
        if p.tunnel.is_some() {
            self.stats.tunnelled_packets += 1;
        }
        self.clock_ns = self.clock_ns.max(ts_ns);
        if ts_ns >= self.last_sweep_ns.saturating_add(SWEEP_NS) {
            self.last_sweep_ns = ts_ns;
            self.sweep(ts_ns, out);
        }
        let key = FlowKey::of(p);
        let slot = match self.flows.find(&key) {
            Some(s) => s,
            None => self.create_flow(key, ts_ns, p, out),
        };
        {
            let Some(f) = self.flows.slot_mut(slot) else {
                return;
            };
            f.last_ns = f.last_ns.max(ts_ns);
            if let Some(t) = p.tcp {
                if t.fin || t.rst {
                    f.closing = true;
                }
            }
        }
        self.flows.touch(slot);
        if self.inspect_packet(slot, key, ts_ns, p, out) {
            self.account(slot, key, ts_ns, out);
        }
    }

    /// Creates the flow of a packet whose flow is not in the table.
    fn create_flow(
        &mut self,
        key: FlowKey,
        ts_ns: u64,
        p: &Packet<'_>,
        out: &mut Vec<Event>,
    ) -> Slot {
        {
            let f = self.new_flow(ts_ns, p);
            if let Some(l) = &f.label {
                // Decided before any payload (DNS name, STUN peer, socket):
                // report now, so enforcement can act on the first packet.
                if socket_evidence(&f, l) {
                    let sock = SocketAddr::new(f.client.0, f.client.1);
                    self.sockets_pending |= self.peers.insert_socket(sock, l.app, ts_ns);
                }
                let report = self.report(&f);
                out.push(Event::Labelled {
                    report,
                    packet_ts_ns: ts_ns,
                });
            } else if self.all_traffic_blocks && (p.src, p.sport) == f.client {
                // Blocked whatever the app turns out to be (reported when
                // the client sends, not for a packet that only claims to
                // answer it, such as an unsolicited DNS answer).
                let report = self.report(&f);
                let by_all_traffic_rule = report
                    .rule_index
                    .and_then(|i| self.policy.rules().get(i))
                    .is_some_and(|r| r.apps.is_none());
                if report.action == Action::Block && by_all_traffic_rule {
                    out.push(Event::AllTraffic {
                        report,
                        packet_ts_ns: ts_ns,
                    });
                }
            }
            let tentative = f.inspect.as_ref().and_then(|s| s.tentative.as_ref());
            if let Some(l) = tentative.filter(|_| f.label.is_none()) {
                if l.method == Method::IpRange && socket_evidence(&f, l) {
                    let sock = SocketAddr::new(f.client.0, f.client.1);
                    self.sockets_pending |= self.peers.insert_socket(sock, l.app, ts_ns);
                }
            }
            let keep = self.cfg.keep_finished;
            let mut ended = Vec::new();
            let slot = self.flows.insert(key, f, &mut |f| {
                if keep {
                    ended.push(f)
                }
            });
            for f in ended {
                let r = self.report(&f);
                self.finished.push(r);
            }
            slot
        }
    }

    /// Updates a flow with its packet and inspects it. True when the flow is
    /// still being inspected (its buffers need accounting).
    fn inspect_packet(
        &mut self,
        slot: Slot,
        _key: FlowKey,
        ts_ns: u64,
        p: &Packet<'_>,
        out: &mut Vec<Event>,
    ) -> bool {
        // Split borrows: the flow lives in the table, the rest in self.
        let Engine {
            flows,
            sigs,
            names,
            peers,
            trust,
            cross_family,
            stats,
            cfg,
            geo,
            policy,
            sockets_pending,
            ..
        } = self;
        let Some(f) = flows.slot_mut(slot) else {
            return false;
        };
        let mut dir = f.dir_of(p);
        f.packets += 1;
        f.bytes += u64::from(p.ip_len);
        match dir {
            Dir::Orig => f.packets_orig = f.packets_orig.saturating_add(1),
            Dir::Reply => f.packets_reply = f.packets_reply.saturating_add(1),
        }
        // DNS: record queries, learn names from the answers to them; the
        // flow itself is never labelled.
        if f.dns {
            if p.payload.is_empty() {
                return false;
            }
            let to_server = dir == Dir::Orig;
            if dns_well_formed(p, to_server) {
                if f.tunnel.is_some() {
                    // DNS inside a tunnel speaks for a client address nobody
                    // verified: neither its queries nor its answers are learnt.
                    if !to_server {
                        stats.tunnelled_dns_ignored += 1;
                    }
                    return false;
                }
                if to_server {
                    record_queries(trust, f, p, ts_ns);
                } else {
                    let ctx = DnsCtx {
                        sigs: &sigs.db,
                        geo,
                        policy,
                        cfg,
                    };
                    learn_dns(&ctx, names, trust, cross_family, stats, f, p, ts_ns, out);
                }
                return false;
            }
            // Not DNS after all: an ordinary flow, inspected like any
            // other. A port-53 side that sends something other than DNS
            // answers is a client.
            stats.dns_port_not_dns += 1;
            f.dns = false;
            if !to_server {
                std::mem::swap(&mut f.client, &mut f.server);
                std::mem::swap(&mut f.packets_orig, &mut f.packets_reply);
                if let Some(t) = f.tunnel.as_mut() {
                    std::mem::swap(&mut t.outer_src, &mut t.outer_dst);
                }
                dir = Dir::Orig;
            }
            let mut st = FlowInspect::default();
            st.tentative = tentative_label(&sigs.db, geo, f.server, f.proto);
            f.inspect = Some(Box::new(st));
        }
        let Some(st) = f.inspect.as_mut() else {
            // A call identified by STUN keeps revealing its relay peers
            // (CreatePermission, Send indications): harvest them.
            if let Some(l) = &f.label {
                if l.method == Method::Stun
                    && f.proto == Proto::Udp
                    && f.tunnel.is_none()
                    && !f.remote_opened
                    && f.packets <= STUN_FOLLOWUP
                {
                    harvest_peers(peers, f.client.0, l.app, p.payload, ts_ns);
                }
            }
            return false;
        };
        let mut side = Side::default();
        let step = inspect::step(st, sigs, p, dir, f.server.1, &mut side);
        // The last packet the kernel hands over ends inspection too: a
        // tentative label must decide while the daemon still sees the flow.
        let handed_over_all = cfg
            .handover
            .is_some_and(|n| dir == Dir::Orig && u64::from(f.packets_orig) + 1 >= u64::from(n));
        let budget_spent =
            (st.inspected >= cfg.inspect_budget && !st.budget_suspended()) || handed_over_all;
        let ice = st.ice;
        let decided = match step {
            Step::Decided(l) => Some(l),
            Step::Undecidable(why) => {
                f.undecidable = Some(why);
                None
            }
            Step::Stop => finish_tentative(f),
            Step::More if budget_spent => finish_tentative(f),
            Step::More => return true,
        };
        // Keep a server name seen without an app for the report.
        if let Some(h) = f.inspect.as_mut().and_then(|s| s.host.take()) {
            f.host = Some(h);
        }
        f.inspect = None;
        let decided = decided.or_else(|| webrtc_label(f, ice, &names.recent, ts_ns));
        if let Some(l) = decided {
            if matches!(l.method, Method::TlsSni | Method::QuicSni) && f.tunnel.is_none() {
                names.recent.note(f.client.0, l.app, ts_ns);
            }
            if l.method == Method::Stun
                && f.proto == Proto::Udp
                && f.tunnel.is_none()
                && !f.remote_opened
            {
                let c = f.client.0;
                peers.insert_server(c, f.server.0, l.app, ts_ns);
                for peer in side.peers {
                    peers.insert_peer(c, peer, l.app, ts_ns);
                }
                harvest_peers(peers, c, l.app, p.payload, ts_ns);
            }
            if socket_evidence(f, &l) {
                let sock = SocketAddr::new(f.client.0, f.client.1);
                *sockets_pending |= peers.insert_socket(sock, l.app, ts_ns);
            }
            f.label = Some(l);
            let report = make_report(&sigs.db, geo, policy, f);
            out.push(Event::Labelled {
                report,
                packet_ts_ns: ts_ns,
            });
        } else if f.undecidable.is_some() {
            let report = make_report(&sigs.db, geo, policy, f);
            out.push(Event::Labelled {
                report,
                packet_ts_ns: ts_ns,
            });
        }
        false
    }

    /// Charges a flow's reassembly buffers to the pool. A flow over its
    /// share, or that cannot be made to fit after reclaiming from the
    /// oldest holders, is decided on what it has.
    fn account(&mut self, slot: Slot, key: FlowKey, ts_ns: u64, out: &mut Vec<Event>) {
        loop {
            let Some(f) = self.flows.slot_mut(slot) else {
                return;
            };
            let first_ns = f.first_ns;
            let Some(st) = f.inspect.as_mut() else {
                return;
            };
            let want = st.held_bytes();
            match self.pool.charge(&mut st.charge, want, key, first_ns) {
                Grant::Granted => break,
                Grant::OverShare => {
                    self.end_inspection(slot, ts_ns, out);
                    return;
                }
                Grant::Full => {
                    if !self.reclaim_one(key, ts_ns, out) {
                        self.pool.note_refused();
                        self.end_inspection(slot, ts_ns, out);
                        return;
                    }
                }
            }
        }
        if self.pool.wants_compaction() {
            let flows = &mut self.flows;
            self.pool.compact(|k, t| {
                flows.get_mut(k).is_some_and(|f| {
                    f.first_ns == t && f.inspect.as_ref().is_some_and(|s| s.charge.bytes() > 0)
                })
            });
        }
    }

    /// Decides the flow that has held reassembly memory the longest (other
    /// than `except`) on what it has. False when no other flow holds any.
    fn reclaim_one(&mut self, except: FlowKey, ts_ns: u64, out: &mut Vec<Event>) -> bool {
        while let Some((k, first)) = self.pool.oldest_holder() {
            if k == except {
                // The asking flow is the oldest holder: it goes first.
                return false;
            }
            let Some(s) = self.flows.find(&k) else {
                continue;
            };
            let holds = self.flows.slot_mut(s).is_some_and(|f| {
                f.first_ns == first && f.inspect.as_ref().is_some_and(|st| st.charge.bytes() > 0)
            });
            if holds {
                self.pool.note_reclaimed();
                self.end_inspection(s, ts_ns, out);
                return true;
            }
        }
        false
    }

    /// Ends a flow's inspection now and decides it on what it has (its
    /// tentative label, if any), reporting a label.
    fn end_inspection(&mut self, slot: Slot, ts_ns: u64, out: &mut Vec<Event>) {
        let Engine {
            flows,
            sigs,
            names,
            peers,
            geo,
            policy,
            sockets_pending,
            ..
        } = self;
        let Some(f) = flows.slot_mut(slot) else {
            return;
        };
        let decided = conclude(f, &names.recent, ts_ns);
        f.inspect = None;
        if f.undecidable.is_some() {
            f.undecidable = Some(inspect::OUT_OF_MEMORY);
        }
        if let Some(l) = decided {
            if socket_evidence(f, &l) {
                let sock = SocketAddr::new(f.client.0, f.client.1);
                *sockets_pending |= peers.insert_socket(sock, l.app, ts_ns);
            }
            f.label = Some(l);
        }
        if f.label.is_some() || f.undecidable.is_some() {
            let report = make_report(&sigs.db, geo, policy, f);
            out.push(Event::Labelled {
                report,
                packet_ts_ns: ts_ns,
            });
        }
    }

    fn new_flow(&mut self, ts_ns: u64, p: &Packet<'_>) -> Flow {
        let (client, server, dns, remote_opened) = orient(p, &self.sigs.db, &self.peers, ts_ns);
        // orient the outer addresses like the flow
        let tunnel = p.tunnel.map(|t| {
            if client == (p.src, p.sport) {
                t
            } else {
                Tunnel {
                    outer_src: t.outer_dst,
                    outer_dst: t.outer_src,
                    ..t
                }
            }
        });
        let mut f = Flow {
            proto: p.proto,
            client,
            server,
            first_ns: ts_ns,
            last_ns: ts_ns,
            packets: 0,
            bytes: 0,
            packets_orig: 0,
            packets_reply: 0,
            inspect: None,
            label: None,
            host: None,
            reported: false,
            closing: false,
            dns,
            tunnel,
            undecidable: None,
            remote_opened,
        };
        if dns {
            return f;
        }
        // An answer to this client's own query named the server: decided
        // before the first payload byte.
        if let Some(e) = self.names.get(&client.0, &server.0, ts_ns) {
            f.label = Some(Label {
                app: e.app,
                method: Method::Dns,
                host: Some(e.name.clone()),
                evidence: Some(format!("dns answer {} (ttl {}s)", e.name, e.ttl).into_boxed_str()),
            });
            return f;
        }
        // A media server or relay peer revealed by a vendor STUN exchange,
        // or a client socket that already carried an identified flow.
        if p.proto == Proto::Udp {
            let cs = SocketAddr::new(client.0, client.1);
            // an inner client socket is not the untunnelled socket of that address
            if let Some(app) = self.peers.socket(&cs, ts_ns).filter(|_| f.tunnel.is_none()) {
                f.label = Some(socket_label(app));
                return f;
            }
            let sa = SocketAddr::new(server.0, server.1);
            if let Some(app) = self
                .peers
                .peer(&client.0, &sa, ts_ns)
                .or_else(|| self.peers.server(&client.0, &server.0, ts_ns))
            {
                f.label = Some(Label {
                    app,
                    method: Method::Stun,
                    host: None,
                    evidence: Some(Box::from("media peer learned from a vendor STUN exchange")),
                });
                return f;
            }
        }
        let mut st = FlowInspect::default();
        st.tentative = tentative_label(&self.sigs.db, &self.geo, server, p.proto);
        f.inspect = Some(Box::new(st));
        f
    }

    /// Labels unlabelled UDP flows whose client socket was identified by
    /// another flow, reporting each as labelled.
    fn label_siblings(&mut self, now_ns: u64, out: &mut Vec<Event>) {
        if !self.sockets_pending {
            return;
        }
        self.sockets_pending = false;
        let Engine {
            flows,
            peers,
            sigs,
            geo,
            policy,
            ..
        } = self;
        for f in flows.iter_mut() {
            if f.label.is_some() || f.proto != Proto::Udp || f.tunnel.is_some() {
                continue;
            }
            let cs = SocketAddr::new(f.client.0, f.client.1);
            if let Some(app) = peers.socket(&cs, now_ns) {
                f.label = Some(socket_label(app));
                f.inspect = None;
                let report = make_report(&sigs.db, geo, policy, f);
                out.push(Event::Labelled {
                    report,
                    packet_ts_ns: now_ns,
                });
            }
        }
    }

    /// Ends idle flows and labels flows that share an identified socket.
    pub fn sweep(&mut self, now_ns: u64, out: &mut Vec<Event>) {
        self.label_siblings(now_ns, out);
        self.trust.expire(now_ns);
        self.names.purge(now_ns);
        self.peers.purge(now_ns);
        let window = CROSS_FAMILY_WINDOW_SECS * 1_000_000_000;
        self.cross_family
            .retain(|_, (start, _)| now_ns.saturating_sub(*start) < window);
        let keep = self.cfg.keep_finished;
        let mut ended = Vec::new();
        self.flows.expire(now_ns, &mut |f| {
            if keep {
                ended.push(f)
            }
        });
        for mut f in ended {
            if let Some(l) = conclude(&mut f, &self.names.recent, now_ns) {
                f.label = Some(l);
            }
            let r = self.report(&f);
            self.finished.push(r);
        }
    }

    /// Ends every flow (end of a capture) and returns the reports of all
    /// flows that ended since the last call, oldest first.
    pub fn finish(&mut self) -> Vec<FlowReport> {
        let now = self.clock_ns;
        for f in self.flows.iter_mut() {
            if let Some(l) = conclude(f, &self.names.recent, now) {
                if socket_evidence(f, &l) {
                    let sock = SocketAddr::new(f.client.0, f.client.1);
                    self.sockets_pending |= self.peers.insert_socket(sock, l.app, now);
                }
                f.label = Some(l);
            }
        }
        let mut ignored = Vec::new();
        self.label_siblings(now, &mut ignored);
        let flows: Vec<Flow> = self.flows.drain().collect();
        for f in flows {
            let r = self.report(&f);
            self.finished.push(r);
        }
        let mut out = std::mem::take(&mut self.finished);
        out.sort_by_key(|r| r.first_ts_ns);
        out
    }

    fn report(&self, f: &Flow) -> FlowReport {
        make_report(&self.sigs.db, &self.geo, &self.policy, f)
    }

    /// What `client` learnt about `ip` from the answer to its own query.
    pub fn name_of(&self, client: &IpAddr, ip: &IpAddr, now_ns: u64) -> Option<&names::NameEntry> {
        self.names.get(client, ip, now_ns)
    }
}

fn all_traffic_blocks(p: &Policy) -> bool {
    p.rules()
        .iter()
        .any(|r| r.apps.is_none() && r.action == Action::Block)
}

/// Whether a label is strong enough to vouch for its client UDP socket (a
/// tunnelled flow vouches for nothing outside itself).
fn socket_evidence(f: &Flow, l: &Label) -> bool {
    f.proto == Proto::Udp
        && f.client.1 >= 1024
        && f.tunnel.is_none()
        && !f.remote_opened
        && !matches!(l.method, Method::Port | Method::Asn)
}

/// The decoder options of a policy's `[decode] tunnels`.
fn decode_options(p: &Policy) -> DecodeOptions {
    use geofence_policy::TunnelName;
    DecodeOptions {
        tunnels: p
            .tunnels()
            .iter()
            .map(|t| match t {
                TunnelName::Gtpu => TunnelKind::Gtpu,
                TunnelName::Gre => TunnelKind::Gre,
                TunnelName::Ipip => TunnelKind::Ipip,
                TunnelName::Vxlan => TunnelKind::Vxlan,
                TunnelName::Geneve => TunnelKind::Geneve,
            })
            .collect::<TunnelSet>(),
    }
}

fn socket_label(app: AppRef) -> Label {
    Label {
        app,
        method: Method::Stun,
        host: None,
        evidence: Some(Box::from(
            "client UDP socket shared with an identified call flow",
        )),
    }
}

/// [`finish_tentative`], then [`webrtc_label`].
fn conclude(f: &mut Flow, recent: &recent::RecentApps, ts_ns: u64) -> Option<Label> {
    let ice = f.inspect.as_ref().is_some_and(|s| s.ice);
    finish_tentative(f).or_else(|| webrtc_label(f, ice, recent, ts_ns))
}

/// A browser WebRTC call: a UDP flow that ran ICE connectivity checks and
/// named no app takes the one app its client named just before
/// ([`recent`]).
fn webrtc_label(f: &Flow, ice: bool, recent: &recent::RecentApps, ts_ns: u64) -> Option<Label> {
    if !ice || f.label.is_some() || f.undecidable.is_some() || f.proto != Proto::Udp {
        return None;
    }
    if f.tunnel.is_some() || !geofence_geo::AddressScope::of(f.server.0).is_public() {
        return None;
    }
    let app = recent.get(&f.client.0, ts_ns)?;
    Some(Label {
        app,
        method: Method::Stun,
        host: None,
        evidence: Some(Box::from(
            "WebRTC ICE check after the client named this app (DNS/SNI)",
        )),
    })
}

/// Turns a tentative label (range, ASN, port) into the flow's label when
/// inspection ends without stronger evidence.
fn finish_tentative(f: &mut Flow) -> Option<Label> {
    if f.label.is_some() {
        return None;
    }
    let mut st = f.inspect.take()?;
    if let Some(h) = st.host.take() {
        f.host = Some(h);
    }
    let t = st.tentative.take().filter(|t| {
        // A port alone is too weak to name an app: it must lead to a
        // public server and the flow must look like media (RTP or STUN).
        t.method != Method::Port
            || (geofence_geo::AddressScope::of(f.server.0).is_public()
                && (st.rtp >= 2 || st.stun_plain > 0))
    });
    if t.is_none() && st.handshake_pending() {
        f.undecidable = Some(inspect::INCOMPLETE);
    }
    t
}

/// The vendor's static ranges: the tentative label of a new flow.
fn tentative_label(
    sigs: &SignatureDb,
    geo: &GeoDb,
    server: (IpAddr, u16),
    proto: Proto,
) -> Option<Label> {
    let t = inspect::transport(proto);
    sigs.match_ip(server.0, t, server.1)
        .map(|(app, method)| Label {
            app,
            method,
            host: None,
            evidence: Some(Box::from("vendor IP range")),
        })
        .or_else(|| {
            let asn = geo.lookup(server.0).asn?;
            let app = sigs.match_asn(asn, t, server.1)?;
            Some(Label {
                app,
                method: Method::Asn,
                host: None,
                evidence: Some(format!("vendor ASN AS{asn}").into_boxed_str()),
            })
        })
        .or_else(|| {
            let app = sigs.match_port(t, server.1)?;
            Some(Label {
                app,
                method: Method::Port,
                host: None,
                evidence: Some(format!("vendor port {}", server.1).into_boxed_str()),
            })
        })
}

/// The DNS messages of a packet (one per UDP datagram; the complete ones
/// of a TCP segment).
fn dns_messages<'a>(p: &Packet<'a>) -> Vec<Result<dns::DnsMessage<'a>, dns::DnsError>> {
    match p.proto {
        Proto::Udp => vec![dns::parse_message(p.payload)],
        Proto::Tcp => dns::parse_tcp_stream(p.payload),
    }
}

/// Whether a packet of a DNS flow carries DNS: over UDP one well-formed
/// message in the right direction; over TCP every complete message (a
/// segment may hold only part of one).
fn dns_well_formed(p: &Packet<'_>, to_server: bool) -> bool {
    match p.proto {
        Proto::Udp => is_dns_message(p.payload, to_server),
        Proto::Tcp => dns_messages(p)
            .iter()
            .all(|m| matches!(m, Ok(m) if m.is_response != to_server)),
    }
}

/// Records the queries a client sent on a DNS flow.
fn record_queries(trust: &mut QueryTable, f: &Flow, p: &Packet<'_>, ts_ns: u64) {
    let client = SocketAddr::new(f.client.0, f.client.1);
    let server = SocketAddr::new(f.server.0, f.server.1);
    for m in dns_messages(p).into_iter().flatten() {
        if let (false, Some(q)) = (m.is_response, m.question.as_ref()) {
            trust.query(f.proto, client, server, m.id, q, ts_ns);
        }
    }
}

/// What DNS decisions are made with.
pub struct DnsCtx<'a> {
    pub sigs: &'a SignatureDb,
    pub geo: &'a GeoDb,
    pub policy: &'a Policy,
    pub cfg: &'a EngineConfig,
}

/// Per-client budget of server-wide blocks from cross-family answers:
/// client -> (window start ns, blocks spent).
pub type CrossFamilyBudget = FxHashMap<IpAddr, (u64, u32)>;

/// Whom a block learnt from an answer of `app` at `addr` for `client` may
/// stop (see [`DnsScope`]). Spends the client's cross-family budget when
/// nothing corroborates the address.
fn dns_scope(
    ctx: &DnsCtx<'_>,
    cross_family: &mut CrossFamilyBudget,
    client: IpAddr,
    addr: IpAddr,
    app: AppRef,
    asn: Option<u32>,
    ts_ns: u64,
) -> DnsScope {
    if client.is_ipv4() == addr.is_ipv4() {
        return DnsScope::Client;
    }
    let t = inspect::transport(Proto::Tcp);
    if ctx
        .sigs
        .match_ip(addr, t, 443)
        .is_some_and(|(a, _)| a == app)
    {
        return DnsScope::ServerWide(ServerWideReason::CrossFamilyVendorRange);
    }
    if asn.and_then(|n| ctx.sigs.match_asn(n, t, 443)) == Some(app) {
        return DnsScope::ServerWide(ServerWideReason::CrossFamilyVendorAsn);
    }
    let window = CROSS_FAMILY_WINDOW_SECS * 1_000_000_000;
    if !cross_family.contains_key(&client) && cross_family.len() >= CROSS_FAMILY_CLIENTS {
        cross_family.retain(|_, (start, _)| ts_ns.saturating_sub(*start) < window);
        if cross_family.len() >= CROSS_FAMILY_CLIENTS {
            return DnsScope::FlowOnly(FlowOnlyReason::CrossFamilyBudgetSpent);
        }
    }
    let slot = cross_family.entry(client).or_insert((ts_ns, 0));
    if ts_ns.saturating_sub(slot.0) >= window {
        *slot = (ts_ns, 0);
    }
    if slot.1 >= CROSS_FAMILY_BUDGET {
        return DnsScope::FlowOnly(FlowOnlyReason::CrossFamilyBudgetSpent);
    }
    slot.1 += 1;
    DnsScope::ServerWide(ServerWideReason::CrossFamilyWithinBudget)
}

/// Learns from the answers of a DNS flow: only those that answer a query
/// the client sent to this server ([`dnstrust`]), only records reached from
/// the question, TTL capped, names kept for this client alone.
#[allow(clippy::too_many_arguments)]
fn learn_dns(
    ctx: &DnsCtx<'_>,
    names: &mut NameCache,
    trust: &mut QueryTable,
    cross_family: &mut CrossFamilyBudget,
    stats: &mut EngineStats,
    f: &Flow,
    p: &Packet<'_>,
    ts_ns: u64,
    out: &mut Vec<Event>,
) {
    let client = SocketAddr::new(f.client.0, f.client.1);
    let server = SocketAddr::new(f.server.0, f.server.1);
    for m in dns_messages(p).into_iter().flatten() {
        if !m.is_response {
            continue;
        }
        stats.dns_answers += 1;
        let verdict = trust.answer(f.proto, client, server, m.id, m.question.as_ref(), ts_ns);
        if verdict != AnswerTrust::Matched {
            continue;
        }
        let asker = f.client.0;
        decide_answer(
            ctx,
            cross_family,
            stats,
            asker,
            f.server.0,
            &m,
            ts_ns,
            &mut |addr, name, app, ttl| {
                if asker.is_ipv4() == addr.is_ipv4() {
                    names.insert(asker, addr, name, app, ttl, ts_ns);
                }
            },
            out,
        );
    }
}

/// Decides a trusted DNS answer that `client` got from `resolver`: for each
/// address reached from the question through the CNAME chain whose names
/// name an app, the policy decision, the capped TTL and whom a block may
/// stop ([`DnsScope`]), as an [`Event::Dns`]. `learnt(addr, name, app,
/// ttl)` is told each such address. The one place where an answer becomes
/// decisions: the passive path (after [`dnstrust`] matched the answer to
/// the client's query) and the DNS gate (which asked the question itself)
/// both call it.
#[allow(clippy::too_many_arguments)]
pub fn decide_answer(
    ctx: &DnsCtx<'_>,
    cross_family: &mut CrossFamilyBudget,
    stats: &mut EngineStats,
    client: IpAddr,
    resolver: IpAddr,
    m: &dns::DnsMessage<'_>,
    ts_ns: u64,
    learnt: &mut dyn FnMut(IpAddr, &str, AppRef, u32),
    out: &mut Vec<Event>,
) {
    let Some(q) = m.question.filter(|_| m.is_response) else {
        return;
    };
    let cap = u32::try_from(ctx.cfg.dns_ttl_cap_secs).unwrap_or(u32::MAX);
    for r in dns::resolutions(m) {
        // The chain must start at the question: records about other
        // names (out of bailiwick, stuffed in) teach nothing.
        if !r.names.first().is_some_and(|n| q.name.eq_str(n)) {
            stats.dns_records_off_question += 1;
            continue;
        }
        if r.ttl > cap {
            stats.dns_ttl_capped += 1;
        }
        let ttl = r.ttl.min(cap);
        // The most specific name that names an app decides.
        let Some((app, name)) = r
            .names
            .iter()
            .find_map(|n| ctx.sigs.match_host(n).map(|a| (a, n.as_str())))
        else {
            continue;
        };
        learnt(r.addr, name, app, ttl);
        let g = ctx.geo.lookup(r.addr);
        let id = ctx.sigs.app(app).id.clone();
        let decision = ctx.policy.decide(&Query {
            src: client,
            dst: r.addr,
            app: Some(&id),
            geo: &g,
            host: Some(name),
        });
        let scope = if decision.is_block() {
            dns_scope(ctx, cross_family, client, r.addr, app, g.asn, ts_ns)
        } else if client.is_ipv4() == r.addr.is_ipv4() {
            DnsScope::Client
        } else {
            DnsScope::FlowOnly(FlowOnlyReason::NotBlocked)
        };
        if matches!(scope, DnsScope::FlowOnly(_)) && decision.is_block() {
            stats.dns_cross_family_refused += 1;
        }
        out.push(Event::Dns(DnsLearned {
            ts_ns,
            client,
            resolver,
            addr: r.addr,
            name: name.to_string(),
            app: id,
            ttl,
            ttl_received: r.ttl,
            geo: g,
            decision,
            scope,
        }));
    }
}

/// The report of a flow under the policy.
///
/// A tunnelled flow is decided like any other, but a `block` is reported and
/// alerted as `alert`, with no rule index for the kernel sets: the kernel
/// matches the outer header only, so the choice is between blocking the whole
/// tunnel (every other flow in it, and a lever for anyone who can put one
/// forged packet inside it) and aiming a block at an inner address nobody
/// verified (another client's). Neither is done; the evidence says why.
fn make_report(sigs: &SignatureDb, geo: &GeoDb, policy: &Policy, f: &Flow) -> FlowReport {
    let g = geo.lookup(f.server.0);
    let app = f.label.as_ref().map(|l| sigs.app(l.app).id.clone());
    let host = f
        .label
        .as_ref()
        .and_then(|l| l.host.as_deref())
        .or(f.host.as_deref())
        .map(str::to_string);
    let undecidable = f.undecidable.filter(|_| f.label.is_none());
    let decision = match undecidable {
        Some(_) => policy.decide_undecidable(f.client.0, f.server.0, &g),
        None => policy.decide(&Query {
            src: f.client.0,
            dst: f.server.0,
            app: app.as_ref(),
            geo: &g,
            host: host.as_deref(),
        }),
    };
    let mut evidence = f
        .label
        .as_ref()
        .and_then(|l| l.evidence.as_deref())
        .map(str::to_string)
        .or(undecidable.map(|why| format!("undecidable TLS/QUIC handshake: {why}")));
    let mut action = decision.action;
    let mut rule_index = decision.rule.as_ref().map(|r| r.index);
    if let Some(t) = &f.tunnel {
        let place = format!(
            "inside a {} tunnel {} -> {}",
            t.kind, t.outer_src, t.outer_dst
        );
        let mut e = match evidence.take() {
            Some(e) => format!("{e}; {place}"),
            None => place,
        };
        if action == Action::Block {
            e.push_str(
                "; the policy blocks it but the kernel matches the outer header only: alerted, not blocked",
            );
            action = Action::Alert;
        }
        evidence = Some(e);
        rule_index = None;
    }
    FlowReport {
        pcap: None,
        proto: match f.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        },
        src_ip: f.client.0,
        src_port: f.client.1,
        dest_ip: f.server.0,
        dest_port: f.server.1,
        app,
        method: f
            .label
            .as_ref()
            .map(|l| l.method)
            .or(undecidable.map(|_| Method::Undecidable)),
        host,
        country: g.country.map(|c| c.to_string()),
        registered_country: g.registered_country.map(|c| c.to_string()),
        asn: g.asn,
        as_org: g.as_org.clone(),
        jurisdiction: decision.jurisdiction.clone(),
        action,
        rule: decision.rule.as_ref().map(|r| r.name.clone()),
        verdict: (action == Action::Block).then_some(decision.verdict),
        evidence,
        tunnel: f.tunnel.map(|t| t.kind.as_str()),
        tunnel_src: f.tunnel.map(|t| t.outer_src),
        tunnel_dst: f.tunnel.map(|t| t.outer_dst),
        packets: f.packets,
        bytes: f.bytes,
        first_ts_ns: f.first_ns,
        last_ts_ns: f.last_ns,
        rule_index,
        answered: f.packets_reply > 0,
    }
}
