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

pub mod flow;
pub mod inspect;
pub mod names;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use geofence_classify::sigdb::{AppRef, SignatureDb};
use geofence_classify::{dns, AppId, Method};
use geofence_decode::{decode, LinkType, Packet, Proto, Skip};
use geofence_geo::{GeoDb, GeoInfo};
use geofence_policy::{Decision, Policy, Query};
use serde::Serialize;

use flow::{Dir, Flow, FlowKey, FlowTable, TableConfig};
use inspect::{FlowInspect, Side, Step};
use names::{NameCache, PeerCache};

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
    /// STUN-learned peers and media servers are remembered this long.
    pub peer_life_secs: u64,
    /// Keep a report of every flow that ends (replay); the daemon does not.
    pub keep_finished: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            table: TableConfig::default(),
            inspect_budget: 24,
            name_cache: 65_536,
            dns_floor_secs: 300,
            peer_life_secs: 300,
            keep_finished: false,
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
    pub action: String,
    pub rule: Option<String>,
    pub verdict: Option<String>,
    pub evidence: Option<String>,
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

/// A DNS answer that named an app's server.
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
    pub ttl: u32,
    pub geo: GeoInfo,
    pub decision: Decision,
}

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
    pub dns_answers: u64,
    pub flows: flow::TableStats,
}

/// The pipeline. Single-threaded; run one per capture thread.
pub struct Engine {
    cfg: EngineConfig,
    sigs: inspect::Sigs,
    geo: Arc<GeoDb>,
    policy: Arc<Policy>,
    flows: FlowTable,
    names: NameCache,
    peers: PeerCache,
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
}

const SWEEP_NS: u64 = 1_000_000_000;

/// Packets of a STUN-identified flow parsed for relay peers.
const STUN_FOLLOWUP: u64 = 64;

/// Records the XOR-PEER-ADDRESS peers of a STUN message (and of a STUN
/// message carried in its DATA attribute).
fn harvest_peers(peers: &mut PeerCache, app: AppRef, payload: &[u8], ts_ns: u64) {
    let inner = geofence_classify::stun::ms_multiplexed_inner(payload).unwrap_or(payload);
    if let Some(m) = geofence_classify::stun::parse(inner, false) {
        for peer in m.xor_peer_addresses() {
            peers.insert_peer(peer, app, ts_ns);
        }
    }
}

fn is_dns_port(port: u16) -> bool {
    matches!(port, 53 | 5353 | 5355)
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
            names: NameCache::new(cfg.name_cache, cfg.dns_floor_secs),
            peers: PeerCache::new(16_384, cfg.peer_life_secs),
            finished: Vec::new(),
            stats: EngineStats::default(),
            last_sweep_ns: 0,
            sockets_pending: false,
            clock_ns: 0,
            all_traffic_blocks: all_traffic_blocks(&policy),
            cfg,
            sigs: inspect::Sigs::new(sigs),
            geo,
            policy,
        }
    }

    /// Swaps in a new policy (reload); flows keep their labels.
    pub fn set_policy(&mut self, policy: Arc<Policy>) {
        self.all_traffic_blocks = all_traffic_blocks(&policy);
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
            self.peers = PeerCache::new(16_384, self.cfg.peer_life_secs);
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
            if f.label.is_some() && !f.closing {
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
            ..self.stats
        }
    }

    pub fn signatures(&self) -> &SignatureDb {
        &self.sigs.db
    }

    /// Decodes one captured frame and processes it.
    pub fn process_frame(&mut self, ts_ns: u64, link: LinkType, data: &[u8], out: &mut Vec<Event>) {
        self.stats.frames += 1;
        match decode(link, data) {
            Ok(p) => self.process_packet(ts_ns, &p, out),
            Err(Skip::NotIp) => self.stats.skipped_not_ip += 1,
            Err(Skip::NotTcpUdp) => self.stats.skipped_other_proto += 1,
            Err(Skip::Fragment) => self.stats.skipped_fragment += 1,
            Err(Skip::Malformed) => self.stats.skipped_malformed += 1,
        }
    }

    /// Processes one decoded packet.
    pub fn process_packet(&mut self, ts_ns: u64, p: &Packet<'_>, out: &mut Vec<Event>) {
        self.stats.packets += 1;
        self.clock_ns = self.clock_ns.max(ts_ns);
        if ts_ns >= self.last_sweep_ns.saturating_add(SWEEP_NS) {
            self.last_sweep_ns = ts_ns;
            self.sweep(ts_ns, out);
        }
        let key = FlowKey::of(p);
        if self.flows.get_mut(&key).is_none() {
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
            } else if self.all_traffic_blocks {
                // Blocked whatever the app turns out to be.
                let report = self.report(&f);
                let by_all_traffic_rule = report
                    .rule_index
                    .and_then(|i| self.policy.rules().get(i))
                    .is_some_and(|r| r.apps.is_none());
                if report.action == "block" && by_all_traffic_rule {
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
            self.flows.insert(key, f, &mut |f| {
                if keep {
                    ended.push(f)
                }
            });
            for f in ended {
                let r = self.report(&f);
                self.finished.push(r);
            }
        }
        // Split borrows: the flow lives in the table, the rest in self.
        let Engine {
            flows,
            sigs,
            names,
            peers,
            stats,
            cfg,
            geo,
            policy,
            sockets_pending,
            ..
        } = self;
        let Some(f) = flows.get_mut(&key) else {
            return;
        };
        let dir = f.dir_of(p);
        f.last_ns = f.last_ns.max(ts_ns);
        f.packets += 1;
        f.bytes += u64::from(p.ip_len);
        match dir {
            Dir::Orig => f.packets_orig = f.packets_orig.saturating_add(1),
            Dir::Reply => f.packets_reply = f.packets_reply.saturating_add(1),
        }
        if let Some(t) = p.tcp {
            if t.fin || t.rst {
                f.closing = true;
            }
        }
        // DNS: learn names from answers; the flow itself is never labelled.
        if is_dns_port(f.server.1) {
            if dir == Dir::Reply && !p.payload.is_empty() {
                learn_dns(&sigs.db, names, geo, policy, stats, f, p, ts_ns, out);
            }
            return;
        }
        let Some(st) = f.inspect.as_mut() else {
            // A call identified by STUN keeps revealing its relay peers
            // (CreatePermission, Send indications): harvest them.
            if let Some(l) = &f.label {
                if l.method == Method::Stun && f.proto == Proto::Udp && f.packets <= STUN_FOLLOWUP {
                    harvest_peers(peers, l.app, p.payload, ts_ns);
                }
            }
            return;
        };
        let mut side = Side::default();
        let step = inspect::step(st, sigs, p, dir, f.server.1, &mut side);
        let budget_spent = st.inspected >= cfg.inspect_budget;
        let decided = match step {
            Step::Decided(l) => Some(l),
            Step::Stop => finish_tentative(f),
            Step::More if budget_spent => finish_tentative(f),
            Step::More => return,
        };
        // Keep a server name seen without an app for the report.
        if let Some(h) = f.inspect.as_mut().and_then(|s| s.host.take()) {
            f.host = Some(h);
        }
        f.inspect = None;
        if let Some(l) = decided {
            if l.method == Method::Stun && f.proto == Proto::Udp {
                peers.insert_server(f.server.0, l.app, ts_ns);
                for peer in side.peers {
                    peers.insert_peer(peer, l.app, ts_ns);
                }
                harvest_peers(peers, l.app, p.payload, ts_ns);
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
        }
    }

    fn new_flow(&mut self, ts_ns: u64, p: &Packet<'_>) -> Flow {
        let (client, server) = flow::initiator(p);
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
        };
        if is_dns_port(server.1) {
            return f;
        }
        // A DNS answer seen earlier names the server: decided before the
        // first payload byte.
        if let Some(e) = self.names.get(&server.0, ts_ns) {
            if let Some(app) = e.app {
                f.label = Some(Label {
                    app,
                    method: Method::Dns,
                    host: Some(e.name.clone()),
                    evidence: Some(
                        format!("dns answer {} (ttl {}s)", e.name, e.ttl).into_boxed_str(),
                    ),
                });
                return f;
            }
        }
        // A media server or relay peer revealed by a vendor STUN exchange,
        // or a client socket that already carried an identified flow.
        if p.proto == Proto::Udp {
            let cs = SocketAddr::new(client.0, client.1);
            if let Some(app) = self.peers.socket(&cs, ts_ns) {
                f.label = Some(socket_label(app));
                return f;
            }
            let sa = SocketAddr::new(server.0, server.1);
            if let Some(app) = self
                .peers
                .peer(&sa, ts_ns)
                .or_else(|| self.peers.server(&server.0, ts_ns))
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
        let t = inspect::transport(p.proto);
        st.tentative = self
            .sigs
            .db
            .match_ip(server.0, t, server.1)
            .map(|(app, method)| Label {
                app,
                method,
                host: None,
                evidence: Some(Box::from("vendor IP range")),
            })
            .or_else(|| {
                let asn = self.geo.lookup(server.0).asn?;
                let app = self.sigs.db.match_asn(asn, t, server.1)?;
                Some(Label {
                    app,
                    method: Method::Asn,
                    host: None,
                    evidence: Some(format!("vendor ASN AS{asn}").into_boxed_str()),
                })
            })
            .or_else(|| {
                let app = self.sigs.db.match_port(t, server.1)?;
                Some(Label {
                    app,
                    method: Method::Port,
                    host: None,
                    evidence: Some(format!("vendor port {}", server.1).into_boxed_str()),
                })
            });
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
            if f.label.is_some() || f.proto != Proto::Udp {
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
        let keep = self.cfg.keep_finished;
        let mut ended = Vec::new();
        self.flows.expire(now_ns, &mut |f| {
            if keep {
                ended.push(f)
            }
        });
        for mut f in ended {
            if let Some(l) = finish_tentative(&mut f) {
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
            if let Some(l) = finish_tentative(f) {
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

    /// Looks up a label for a destination the way a new flow would be
    /// labelled before any payload (names, then vendor ranges).
    pub fn name_of(&self, ip: &IpAddr, now_ns: u64) -> Option<&names::NameEntry> {
        self.names.get(ip, now_ns)
    }
}

fn all_traffic_blocks(p: &Policy) -> bool {
    p.rules()
        .iter()
        .any(|r| r.apps.is_none() && r.action == geofence_policy::Action::Block)
}

/// Whether a label is strong enough to vouch for its client UDP socket.
fn socket_evidence(f: &Flow, l: &Label) -> bool {
    f.proto == Proto::Udp && f.client.1 >= 1024 && !matches!(l.method, Method::Port | Method::Asn)
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
    let t = st.tentative?;
    // A port alone is too weak to name an app: it must lead to a public
    // server and the flow must look like media (RTP or STUN seen).
    if t.method == Method::Port
        && !(geofence_geo::AddressScope::of(f.server.0).is_public()
            && (st.rtp >= 2 || st.stun_plain > 0))
    {
        return None;
    }
    Some(t)
}

#[allow(clippy::too_many_arguments)]
fn learn_dns(
    sigs: &SignatureDb,
    names: &mut NameCache,
    geo: &GeoDb,
    policy: &Policy,
    stats: &mut EngineStats,
    f: &Flow,
    p: &Packet<'_>,
    ts_ns: u64,
    out: &mut Vec<Event>,
) {
    let msgs: Vec<dns::DnsMessage> = match p.proto {
        Proto::Udp => dns::parse_message(p.payload).ok().into_iter().collect(),
        Proto::Tcp => dns::parse_tcp_stream(p.payload)
            .into_iter()
            .flatten()
            .collect(),
    };
    for m in msgs {
        if !m.is_response {
            continue;
        }
        stats.dns_answers += 1;
        for r in dns::resolutions(&m) {
            // The most specific name that names an app decides.
            let hit = r
                .names
                .iter()
                .find_map(|n| sigs.match_host(n).map(|a| (a, n.as_str())));
            let shown = hit
                .map(|(_, n)| n)
                .or(r.names.first().map(|s| s.as_str()))
                .unwrap_or("");
            names.insert(r.addr, shown, hit.map(|(a, _)| a), r.ttl, ts_ns);
            if let Some((app, name)) = hit {
                let g = geo.lookup(r.addr);
                let id = sigs.app(app).id.clone();
                let decision = policy.decide(&Query {
                    src: f.client.0,
                    dst: r.addr,
                    app: Some(&id),
                    geo: &g,
                });
                out.push(Event::Dns(DnsLearned {
                    ts_ns,
                    client: f.client.0,
                    resolver: f.server.0,
                    addr: r.addr,
                    name: name.to_string(),
                    app: id,
                    ttl: r.ttl,
                    geo: g,
                    decision,
                }));
            }
        }
    }
}

fn make_report(sigs: &SignatureDb, geo: &GeoDb, policy: &Policy, f: &Flow) -> FlowReport {
    let g = geo.lookup(f.server.0);
    let app = f.label.as_ref().map(|l| sigs.app(l.app).id.clone());
    let decision = policy.decide(&Query {
        src: f.client.0,
        dst: f.server.0,
        app: app.as_ref(),
        geo: &g,
    });
    let host = f
        .label
        .as_ref()
        .and_then(|l| l.host.as_deref())
        .or(f.host.as_deref())
        .map(str::to_string);
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
        method: f.label.as_ref().map(|l| l.method),
        host,
        country: g.country.map(|c| c.to_string()),
        registered_country: g.registered_country.map(|c| c.to_string()),
        asn: g.asn,
        as_org: g.as_org.clone(),
        jurisdiction: decision.jurisdiction.clone(),
        action: decision.action.as_str().to_string(),
        rule: decision.rule.as_ref().map(|r| r.name.clone()),
        verdict: decision
            .is_block()
            .then(|| decision.verdict.as_str().to_string()),
        evidence: f
            .label
            .as_ref()
            .and_then(|l| l.evidence.as_deref())
            .map(str::to_string),
        packets: f.packets,
        bytes: f.bytes,
        first_ts_ns: f.first_ns,
        last_ts_ns: f.last_ns,
        rule_index: decision.rule.as_ref().map(|r| r.index),
        answered: f.packets_reply > 0,
    }
}
