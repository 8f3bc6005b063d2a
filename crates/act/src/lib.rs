//! # geofence-act: decisions become actions
//!
//! The stage after the engine. Every [`Event`] the engine emits carries a
//! typed policy [`Decision`](geofence_policy::Decision) (through its
//! [`FlowReport`] or [`DnsLearned`]); [`act`] turns it into what happens:
//! a dynamic kernel block ([`Block`]: the set element, whether live
//! conntrack entries are cut) and the alert a person or SIEM reads. The
//! daemon hands the [`Block`] to its enforcement thread and writes the alert
//! once the element is in the kernel; `geofencectl replay` calls the same
//! function to report what the daemon would do, so the two cannot drift.
//!
//! [`redecide`] re-decides a dynamic block that is already in the kernel
//! (after a reload, or saved blocks at start) with the same policy call the
//! engine makes.
//!
//! Pure: no I/O, no clocks (time comes from the events).

#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::time::Duration;

use geofence_alert::{Alert, EventKind};
use geofence_classify::AppId;
use geofence_engine::{DnsLearned, DnsScope, Event, FlowReport};
use geofence_geo::GeoDb;
use geofence_nft::model::DynElement;
use geofence_policy::{Action, Config, Policy, Query};
use serde::Serialize;

/// What the action stage needs to know besides the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `false` = monitor mode: nothing reaches the kernel, alerts say so.
    pub enforce: bool,
    /// Blocks learned from DNS answers last at least this long (their TTL
    /// if longer).
    pub dns_floor: Duration,
    /// Lifetime of blocks from detections (SNI, STUN, payload, ranges).
    pub detection: Duration,
    /// `[alerts] community_id_seed`.
    pub community_id_seed: u16,
    /// Mixed into every `flow_id`: the daemon draws it at random when it
    /// starts, so flow ids of different runs do not collide; replay uses 0
    /// (the same capture gets the same ids).
    pub flow_salt: u64,
}

impl Settings {
    /// The settings of a policy file's `[daemon]` table.
    pub fn from_config(c: &Config) -> Settings {
        Settings {
            enforce: c.daemon.enforce,
            dns_floor: Duration::from_secs(u64::from(c.daemon.dns_ttl_floor_secs)),
            detection: Duration::from_secs(u64::from(c.daemon.dynamic_timeout_secs)),
            community_id_seed: c.alerts.community_id_seed,
            flow_salt: 0,
        }
    }
}

/// A dynamic block for the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub elem: DynElement,
    /// The app the block is for (kept to re-decide it after a reload).
    pub app: Option<AppId>,
    /// Remove the conntrack entries of (client, server): the flow is live.
    pub cut: Option<(IpAddr, IpAddr)>,
    /// Capture time of the packet that decided, Unix ns.
    pub decided_ns: u64,
}

/// What one event leads to.
#[derive(Clone, Debug, Default)]
pub enum Actions {
    /// Nothing to do (an allowed flow).
    #[default]
    None,
    /// An alert to write; nothing for the kernel.
    Alert(Alert),
    /// A dynamic block to put in the kernel, then the alert to write once it
    /// is in (with the time it took).
    Block { block: Block, alert: Alert },
}

/// What the kernel does with a flow, as replay reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Enforcement {
    /// Nothing stops the flow.
    None,
    /// A dynamic element keyed by this client (or every client) stops it.
    Dynamic,
    /// A static interval set (known before any packet) stops it.
    Static,
    /// The policy blocks it, but monitor mode installs no verdicts.
    Monitor,
}

impl Enforcement {
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::None => "none",
            Enforcement::Dynamic => "dynamic",
            Enforcement::Static => "static",
            Enforcement::Monitor => "monitor",
        }
    }

    /// True when the kernel drops or rejects the flow's packets.
    pub fn blocks(self) -> bool {
        matches!(self, Enforcement::Dynamic | Enforcement::Static)
    }
}

/// Spreads expiry over ±10 % so blocks learned together do not expire in
/// the same second (and the client's retries re-assert them first).
pub fn jitter(d: Duration, seed: u64) -> Duration {
    let spread = d.as_millis() as u64 / 10;
    if spread == 0 {
        return d;
    }
    let x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33;
    let off = x % (2 * spread + 1);
    Duration::from_millis((d.as_millis() as u64 + off).saturating_sub(spread))
}

/// Turns one engine event into its actions. `reload` marks events from
/// re-deciding live flows after a policy reload (their flows are cut even
/// if the server has not answered yet, and the alert says why).
pub fn act(ev: &Event, s: &Settings, reload: bool) -> Actions {
    match ev {
        Event::Labelled {
            report,
            packet_ts_ns,
        } => on_flow(report, *packet_ts_ns, s, reload),
        Event::Dns(d) => on_dns(d, s),
        Event::AllTraffic { report, .. } => {
            // The static sets stop it in the kernel; say so.
            let mut a = alert_from_flow(report, s);
            a.evidence = Some("destination in the rule's static set (all traffic)".to_string());
            if !s.enforce {
                a.verdict = None;
                a.reason = format!("monitor mode, not enforced: {}", a.explain());
            }
            Actions::Alert(a)
        }
    }
}

fn on_flow(r: &FlowReport, ts: u64, s: &Settings, reload: bool) -> Actions {
    if r.action == Action::Allow {
        return Actions::None;
    }
    let mut a = alert_from_flow(r, s);
    if reload {
        a.evidence = Some(format!(
            "{}; re-decided after a policy reload",
            a.evidence.as_deref().unwrap_or("live flow")
        ));
    }
    let Some(rule_index) = r.rule_index.filter(|_| r.action == Action::Block) else {
        return Actions::Alert(a);
    };
    if !s.enforce {
        a.verdict = None;
        a.reason = format!("monitor mode, not enforced: {}", a.explain());
        return Actions::Alert(a);
    }
    let elem = DynElement {
        rule_index,
        src: Some(r.src_ip),
        dst: r.dest_ip,
        timeout: jitter(s.detection, ts ^ u64::from(r.src_port)),
    };
    Actions::Block {
        block: Block {
            elem,
            app: r.app.clone(),
            cut: (r.answered || reload).then_some((r.src_ip, r.dest_ip)),
            decided_ns: ts,
        },
        alert: a,
    }
}

fn on_dns(d: &DnsLearned, s: &Settings) -> Actions {
    let action = d.decision.action;
    if action == Action::Allow {
        return Actions::None;
    }
    let mut a = Alert::new(EventKind::Dns, action.as_str(), String::new());
    a.app = Some(d.app.to_string());
    a.method = Some("dns".to_string());
    a.server_name = Some(d.name.clone());
    a.src_ip = Some(d.client);
    a.dest_ip = Some(d.addr);
    a.country = d.geo.country.map(|c| c.to_string());
    a.registered_country = d.geo.registered_country.map(|c| c.to_string());
    a.asn = d.geo.asn;
    a.as_org = d.geo.as_org.clone();
    a.jurisdiction = d.decision.jurisdiction.clone();
    a.rule = d.decision.rule.as_ref().map(|r| r.name.clone());
    let ttl = if d.ttl_received > d.ttl {
        format!("ttl {}s, capped from {}s", d.ttl, d.ttl_received)
    } else {
        format!("ttl {}s", d.ttl)
    };
    let scope = match d.scope {
        DnsScope::Client => String::new(),
        DnsScope::ServerWide(r) => format!("; blocked for every client: {}", r.describe()),
        DnsScope::FlowOnly(r) => format!("; not blocked ahead: {}", r.describe()),
    };
    a.evidence = Some(format!(
        "DNS answer from {} to the client's own query ({ttl}), before any packet to the server{scope}",
        d.resolver
    ));
    let src = match d.scope {
        DnsScope::Client => Some(d.client),
        DnsScope::ServerWide(_) => None,
        // Nobody to key a block on: the flow decides when it starts.
        DnsScope::FlowOnly(_) => {
            a.reason = a.explain();
            return Actions::Alert(a);
        }
    };
    let rule = d.decision.rule.as_ref().map(|r| r.index);
    let (true, true, Some(rule_index)) = (action == Action::Block, s.enforce, rule) else {
        a.reason = if action == Action::Block {
            format!("monitor mode, not enforced: {}", a.explain())
        } else {
            a.explain()
        };
        return Actions::Alert(a);
    };
    a.verdict = Some(d.decision.verdict.as_str().to_string());
    a.reason = a.explain();
    let ttl = Duration::from_secs(u64::from(d.ttl)).max(s.dns_floor);
    Actions::Block {
        block: Block {
            elem: DynElement {
                rule_index,
                src,
                dst: d.addr,
                timeout: jitter(ttl, d.ts_ns),
            },
            app: Some(d.app.clone()),
            cut: None,
            decided_ns: d.ts_ns,
        },
        alert: a,
    }
}

/// The alert for a decided flow, with its `flow_id` ([`flow_id`]) and
/// Community ID.
pub fn alert_from_flow(r: &FlowReport, s: &Settings) -> Alert {
    let mut a = Alert::new(EventKind::Flow, r.action.as_str(), String::new());
    a.verdict = r.verdict.map(|v| v.as_str().to_string());
    a.rule = r.rule.clone();
    a.app = r.app.as_ref().map(|x| x.to_string());
    a.method = r.method.map(|m| m.as_str().to_string());
    a.server_name = r.host.clone();
    a.proto = Some(r.proto.to_string());
    a.src_ip = Some(r.src_ip);
    a.src_port = Some(r.src_port);
    a.dest_ip = Some(r.dest_ip);
    a.dest_port = Some(r.dest_port);
    a.country = r.country.clone();
    a.registered_country = r.registered_country.clone();
    a.asn = r.asn;
    a.as_org = r.as_org.clone();
    a.jurisdiction = r.jurisdiction.clone();
    a.evidence = r.evidence.clone();
    a.flow_id = Some(flow_id(r, s.flow_salt));
    a.community_id = geofence_alert::transport_number(r.proto).and_then(|p| {
        geofence_alert::community_id_v1(
            s.community_id_seed,
            p,
            r.src_ip,
            r.src_port,
            r.dest_ip,
            r.dest_port,
        )
    });
    a.reason = a.explain();
    a
}

/// Below 2^53, so JSON readers that use doubles (JavaScript, jq) keep it
/// exact.
const FLOW_ID_MASK: u64 = (1 << 53) - 1;

/// The `flow_id` of a flow: a 64-bit mix of `salt`, the 5-tuple and the
/// flow's first packet time, cut to 53 bits. Every alert about one flow
/// carries the same value. With a random salt per daemon start, two flows
/// (of this run or any other) share an id with probability about
/// n²/2^54 for n flows (under 10^-4 for 10^6 flows).
pub fn flow_id(r: &FlowReport, salt: u64) -> u64 {
    let mut h = mix(salt ^ 0x6765_6f66_656e_6365);
    let mut feed = |x: u64| h = mix(h ^ x);
    for ip in [r.src_ip, r.dest_ip] {
        match ip {
            IpAddr::V4(v4) => feed(u64::from(u32::from(v4))),
            IpAddr::V6(v6) => {
                let n = u128::from(v6);
                feed((n >> 64) as u64);
                feed(n as u64);
            }
        }
    }
    feed(u64::from(r.src_port) << 16 | u64::from(r.dest_port));
    feed(r.proto.bytes().fold(0u64, |acc, b| acc << 8 | u64::from(b)));
    feed(r.first_ts_ns);
    h & FLOW_ID_MASK
}

/// splitmix64's finaliser: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Re-decides a dynamic block already in the kernel under `policy` and
/// `geo`: the index of the rule that blocks it now, or `None` when nothing
/// does. A server-wide element (no client) is decided for the unspecified
/// client address, as the engine decides a DNS answer's family-crossing
/// block.
pub fn redecide(
    policy: &Policy,
    geo: &GeoDb,
    elem: &DynElement,
    app: Option<&AppId>,
) -> Option<usize> {
    let g = geo.lookup(elem.dst);
    let src = elem.src.unwrap_or(if elem.dst.is_ipv4() {
        IpAddr::from([0u8; 4])
    } else {
        IpAddr::from([0u16; 8])
    });
    let d = policy.decide(&Query {
        src,
        dst: elem.dst,
        app,
        geo: &g,
        host: None,
    });
    let block = d.is_block();
    d.rule.filter(|_| block).map(|r| r.index)
}
