//! The capture thread: packets from a capture source go through the engine;
//! its events become dynamic blocks (to the enforcer) and alerts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use geofence_alert::{Alert, AlertSender, EventKind};
use geofence_capture::PacketSource;
use geofence_classify::sigdb::SignatureDb;
use geofence_engine::{DnsLearned, DnsScope, Engine, Event, FlowReport};
use geofence_geo::GeoDb;
use geofence_nft::model::DynElement;
use geofence_policy::{Action, Policy};

use crate::enforcer::{monotonic_secs, now_ns, BlockReq, Cmd};

/// Messages to a capture thread.
pub enum Ctl {
    /// A reload: new policy, signatures and databases; live flows are
    /// re-decided under them.
    Swap {
        policy: Arc<Policy>,
        sigs: Arc<SignatureDb>,
        geo: Arc<GeoDb>,
        timeouts: Timeouts,
    },
    Stop,
}

/// Lifetimes of dynamic blocks.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Floor for blocks learned from DNS answers (their TTL if longer).
    pub dns_floor: Duration,
    /// Blocks from detections (SNI, STUN, payload).
    pub detection: Duration,
}

pub struct Pipeline {
    pub engine: Engine,
    pub source: Box<dyn PacketSource + Send>,
    pub enforcer: Sender<Cmd>,
    pub alerts: AlertSender,
    pub heartbeat: Arc<AtomicU64>,
    pub timeouts: Timeouts,
    pub enforce: bool,
}

/// Spreads expiry over ±10% so blocks learned together do not expire in
/// the same second (and the client's retries re-assert them first).
fn jitter(d: Duration, seed: u64) -> Duration {
    let spread = d.as_millis() as u64 / 10;
    if spread == 0 {
        return d;
    }
    let x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33;
    let off = x % (2 * spread + 1);
    Duration::from_millis((d.as_millis() as u64 + off).saturating_sub(spread))
}

impl Pipeline {
    pub fn run(mut self, ctl: Receiver<Ctl>) {
        let mut events = Vec::new();
        let mut idle_polls = 0u32;
        loop {
            self.heartbeat.store(monotonic_secs(), Ordering::Relaxed);
            match ctl.try_recv() {
                Ok(Ctl::Swap {
                    policy,
                    sigs,
                    geo,
                    timeouts,
                }) => {
                    self.engine.set_signatures(sigs);
                    self.engine.set_geo(geo);
                    self.engine.set_policy(policy);
                    self.timeouts = timeouts;
                    self.engine.reevaluate(&mut events);
                    self.handle(&mut events, true);
                }
                Ok(Ctl::Stop) | Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
            let engine = &mut self.engine;
            let out = Out {
                enforcer: &self.enforcer,
                alerts: &self.alerts,
                timeouts: self.timeouts,
                enforce: self.enforce,
            };
            let pending = &mut events;
            let n = match self
                .source
                .poll_batch(Duration::from_millis(100), &mut |c| {
                    engine.process_frame(c.ts_nanos, c.link, c.data, pending);
                    // Hand a decision on at once: holding it until the
                    // whole batch (up to MAX_BATCH packets) is classified
                    // would add that time to every block in the batch.
                    if !pending.is_empty() {
                        out.handle(pending, false);
                    }
                }) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "capture failed; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                    0
                }
            };
            if n == 0 {
                idle_polls += 1;
                if idle_polls >= 10 {
                    // No traffic for a second: expire flows on wall time.
                    idle_polls = 0;
                    self.engine.sweep(now_ns(), &mut events);
                }
            } else {
                idle_polls = 0;
            }
            self.handle(&mut events, false);
            if self.source.is_finished() {
                break;
            }
        }
    }

    fn handle(&mut self, events: &mut Vec<Event>, reload: bool) {
        Out {
            enforcer: &self.enforcer,
            alerts: &self.alerts,
            timeouts: self.timeouts,
            enforce: self.enforce,
        }
        .handle(events, reload);
    }
}

/// Where decisions go: blocks to the enforcer, the rest to the alert log.
struct Out<'a> {
    enforcer: &'a Sender<Cmd>,
    alerts: &'a AlertSender,
    timeouts: Timeouts,
    enforce: bool,
}

impl Out<'_> {
    fn handle(&self, events: &mut Vec<Event>, reload: bool) {
        for ev in events.drain(..) {
            match ev {
                Event::Labelled {
                    report,
                    packet_ts_ns,
                } => self.on_flow(report, packet_ts_ns, reload),
                Event::Dns(d) => self.on_dns(d),
                Event::AllTraffic { report, .. } => {
                    // The static sets stop it in the kernel; say so.
                    let mut a = alert_from_flow(&report);
                    a.evidence =
                        Some("destination in the rule's static set (all traffic)".to_string());
                    if !self.enforce {
                        a.verdict = None;
                        a.reason = format!("monitor mode, not enforced: {}", a.explain());
                    }
                    self.alerts.send(a);
                }
            }
        }
    }

    fn on_flow(&self, r: FlowReport, ts: u64, reload: bool) {
        let action = r.action.as_str();
        if action == Action::Allow.as_str() {
            tracing::debug!(app = ?r.app, dest = %r.dest_ip, "allowed");
            return;
        }
        let mut a = alert_from_flow(&r);
        if reload {
            a.evidence = Some(format!(
                "{}; re-decided after a policy reload",
                a.evidence.as_deref().unwrap_or("live flow")
            ));
        }
        let Some(rule_index) = r.rule_index.filter(|_| action == Action::Block.as_str()) else {
            self.alerts.send(a);
            return;
        };
        if !self.enforce {
            a.verdict = None;
            a.reason = format!("monitor mode, not enforced: {}", a.explain());
            self.alerts.send(a);
            return;
        }
        let elem = DynElement {
            rule_index,
            src: Some(r.src_ip),
            dst: r.dest_ip,
            timeout: jitter(self.timeouts.detection, ts ^ u64::from(r.src_port)),
        };
        let cut = (r.answered || reload).then_some((r.src_ip, r.dest_ip));
        let _ = self.enforcer.send(Cmd::Block(Box::new(BlockReq {
            elem,
            app: r.app.as_ref().map(|a| a.to_string()),
            cut,
            decided_ns: ts,
            alert: a,
        })));
    }

    fn on_dns(&self, d: DnsLearned) {
        let action = d.decision.action;
        if action == Action::Allow {
            return;
        }
        let mut a = Alert::new(EventKind::Dns, action.as_str(), String::new());
        a.app = Some(d.app.to_string());
        a.method = Some("dns".to_string());
        a.host = Some(d.name.clone());
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
        let rule = d.decision.rule.as_ref().map(|r| r.index);
        let src = match d.scope {
            DnsScope::Client => Some(d.client),
            DnsScope::ServerWide(_) => None,
            DnsScope::FlowOnly(_) => {
                // Nobody to key a block on: the flow decides when it starts.
                a.reason = a.explain();
                self.alerts.send(a);
                return;
            }
        };
        if action != Action::Block || !self.enforce {
            if action == Action::Block {
                a.reason = format!("monitor mode, not enforced: {}", a.explain());
            } else {
                a.reason = a.explain();
            }
            self.alerts.send(a);
            return;
        }
        a.verdict = Some(d.decision.verdict.as_str().to_string());
        a.reason = a.explain();
        let Some(rule_index) = rule else {
            return;
        };
        let ttl = Duration::from_secs(u64::from(d.ttl)).max(self.timeouts.dns_floor);
        let elem = DynElement {
            rule_index,
            src,
            dst: d.addr,
            timeout: jitter(ttl, d.ts_ns),
        };
        let _ = self.enforcer.send(Cmd::Block(Box::new(BlockReq {
            elem,
            app: Some(d.app.to_string()),
            cut: None,
            decided_ns: d.ts_ns,
            alert: a,
        })));
    }
}

/// The alert for a decided flow.
pub fn alert_from_flow(r: &FlowReport) -> Alert {
    let mut a = Alert::new(EventKind::Flow, r.action.clone(), String::new());
    a.verdict = r.verdict.clone();
    a.rule = r.rule.clone();
    a.app = r.app.as_ref().map(|x| x.to_string());
    a.method = r.method.map(|m| m.as_str().to_string());
    a.host = r.host.clone();
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
    a.reason = a.explain();
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent_and_spreads() {
        let d = Duration::from_secs(300);
        let mut seen = std::collections::HashSet::new();
        for seed in 0..1000u64 {
            let j = jitter(d, seed);
            assert!(
                j >= Duration::from_secs(270) && j <= Duration::from_secs(330),
                "{j:?}"
            );
            seen.insert(j.as_secs());
        }
        assert!(
            seen.len() > 30,
            "expiry must spread over many seconds, got {}",
            seen.len()
        );
    }
}
