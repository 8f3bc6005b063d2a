//! The capture thread: packets from a capture source go through the engine;
//! its events become dynamic blocks (to the enforcer) and alerts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use geofence_act::{act, Actions, Settings};
use geofence_alert::{Alert, AlertSender, EventKind};
use geofence_capture::PacketSource;
use geofence_classify::sigdb::SignatureDb;
use geofence_engine::{Engine, Event};
use geofence_geo::GeoDb;
use geofence_policy::Policy;

use crate::enforcer::{monotonic_secs, now_ns, BlockReq, Cmd};

/// Messages to a capture thread.
pub enum Ctl {
    /// A reload: new policy, signatures and databases; live flows are
    /// re-decided under them.
    Swap {
        policy: Arc<Policy>,
        sigs: Arc<SignatureDb>,
        geo: Arc<GeoDb>,
        settings: Settings,
    },
    Stop,
}

pub struct Pipeline {
    pub engine: Engine,
    pub source: Box<dyn PacketSource + Send>,
    pub enforcer: SyncSender<Cmd>,
    pub alerts: AlertSender,
    pub heartbeat: Arc<AtomicU64>,
    pub settings: Settings,
}

impl Pipeline {
    pub fn run(mut self, ctl: Receiver<Ctl>) {
        let mut events = Vec::new();
        let mut idle_polls = 0u32;
        let mut pressure = Pressure::new();
        loop {
            pressure.check(&self.engine, self.source.stats(), &self.alerts);
            self.heartbeat.store(monotonic_secs(), Ordering::Relaxed);
            match ctl.try_recv() {
                Ok(Ctl::Swap {
                    policy,
                    sigs,
                    geo,
                    settings,
                }) => {
                    self.engine.set_signatures(sigs);
                    self.engine.set_geo(geo);
                    self.engine.set_policy(policy);
                    self.settings = settings;
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
                settings: self.settings,
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
            settings: self.settings,
        }
        .handle(events, reload);
    }
}

/// Where decisions go: the action stage turns each event into a kernel
/// block (to the enforcer, which writes the alert once the element is in)
/// and/or an alert.
struct Out<'a> {
    enforcer: &'a SyncSender<Cmd>,
    alerts: &'a AlertSender,
    settings: Settings,
}

impl Out<'_> {
    fn handle(&self, events: &mut Vec<Event>, reload: bool) {
        for ev in events.drain(..) {
            if let Event::Labelled { report, .. } = &ev {
                if report.action == geofence_policy::Action::Allow {
                    tracing::debug!(app = ?report.app, dest = %report.dest_ip, "allowed");
                }
            }
            match act(&ev, &self.settings, reload) {
                Actions::Block { block, alert } => {
                    let req = Box::new(BlockReq {
                        block,
                        alert,
                        ack: None,
                    });
                    if let Err(TrySendError::Full(Cmd::Block(req))) =
                        self.enforcer.try_send(Cmd::Block(req))
                    {
                        // Bounded queue: the block is lost, and says so.
                        crate::enforcer::count_dropped();
                        let mut a = req.alert;
                        a.verdict = None;
                        a.reason = format!("{} (NOT enforced: enforcement queue full)", a.reason);
                        let _ = self.alerts.send(a);
                    }
                }
                Actions::Alert(alert) => {
                    // A full alert queue is counted by the writer.
                    let _ = self.alerts.send(alert);
                }
                Actions::None => {}
            }
        }
    }
}

/// Alerts (at most once a minute) when a bounded structure of the engine
/// (outstanding DNS queries, learnt names and peers, cross-family budgets)
/// or the enforcement queue was full since the last check.
struct Pressure {
    last_check: Instant,
    engine: u64,
    dropped: u64,
    /// Capture losses (NFLOG sequence gaps + ENOBUFS reports) and
    /// reassembly-pool decisions at the last alert.
    lost: u64,
    pool: u64,
}

const PRESSURE_EVERY: Duration = Duration::from_secs(60);

impl Pressure {
    fn new() -> Pressure {
        Pressure {
            last_check: Instant::now(),
            engine: 0,
            dropped: 0,
            lost: 0,
            pool: 0,
        }
    }

    fn check(
        &mut self,
        engine: &Engine,
        cap: geofence_capture::CaptureStats,
        alerts: &AlertSender,
    ) {
        if self.last_check.elapsed() < PRESSURE_EVERY {
            return;
        }
        self.last_check = Instant::now();
        let st = engine.stats();
        let (p, d) = (st.pressure(), crate::enforcer::dropped());
        let lost = cap.dropped + cap.overruns;
        let r = st.reassembly;
        let pool = r.reclaimed + r.over_share + r.refused;
        if p == self.engine && d == self.dropped && lost == self.lost && pool == self.pool {
            return;
        }
        let mut a = Alert::new(
            EventKind::Daemon,
            "alert",
            format!(
                "bounded state under pressure in the last minute: {} engine events (DNS queries evicted {} / refused {}, names evicted {} / refused {}, peers {}, cross-family budgets spent {}), {} blocks dropped by a full enforcement queue, {} packets lost by capture (kernel drops {} / buffer overruns {}), {} handshakes decided on what they had by the reassembly memory budget (reclaimed {} / over share {} / refused {})",
                p - self.engine,
                st.dns_trust.queries_evicted,
                st.dns_trust.queries_refused,
                st.names.evicted,
                st.names.refused,
                st.peers.pressure(),
                st.dns_cross_family_refused,
                d - self.dropped,
                lost - self.lost.min(lost),
                cap.dropped,
                cap.overruns,
                pool - self.pool.min(pool),
                r.reclaimed,
                r.over_share,
                r.refused
            ),
        );
        a.evidence = Some(
            "totals since start; each bound evicts only the same client's entries or refuses newcomers"
                .to_string(),
        );
        let _ = alerts.send(a);
        self.engine = p;
        self.dropped = d;
        self.lost = lost;
        self.pool = pool;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geofence_testkit::mmdb::geoip2_country;
    use geofence_testkit::pcap::udp_v4;
    use geofence_testkit::wire::{dns_query, dns_response};
    use std::net::Ipv4Addr;

    /// A DNS answer that the policy blocks, as the engine reports it.
    fn blocked_dns_event(cfg: &geofence_policy::Config) -> Vec<Event> {
        let policy = Policy::from_config(cfg).expect("compile");
        let geo = GeoDb::from_sources(vec![(
            "geo".to_string(),
            geoip2_country(&[("203.0.113.0/24", "CN", None)]).to_bytes(),
        )])
        .expect("geo");
        let mut e = Engine::new(
            geofence_engine::EngineConfig::default(),
            Arc::new(SignatureDb::builtin()),
            Arc::new(geo),
            Arc::new(policy),
        );
        let (c, r) = (Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(198, 51, 100, 53));
        let mut ev = Vec::new();
        let q = dns_query(7, "zoom.us", 1);
        let a = dns_response(
            7,
            "zoom.us",
            1,
            &[Ipv4Addr::new(203, 0, 113, 14).into()],
            60,
            false,
        );
        let link = geofence_decode::LinkType::Ethernet;
        e.process_frame(1_000, link, &udp_v4(c, 4000, r, 53, &q), &mut ev);
        e.process_frame(2_000, link, &udp_v4(r, 53, c, 4000, &a), &mut ev);
        ev
    }

    #[test]
    fn a_full_enforcement_queue_drops_blocks_counted_and_said() {
        let cfg = geofence_policy::load_str(
            "t.toml",
            "[geoip]\ndatabases = [\"t.mmdb\"]\n[signatures]\ndirs = []\n[jurisdictions]\nprc = [\"CN\"]\n\
             [[rule]]\nname = \"no-conf-prc\"\napps = [\"conferencing\"]\nto = [\"prc\"]\naction = \"block\"\n",
        )
        .expect("policy");
        let mut events = blocked_dns_event(&cfg);
        assert!(events.iter().any(|e| matches!(e, Event::Dns(_))));
        let dir = std::env::temp_dir().join(format!("gf-queue-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("alerts.jsonl");
        let log = geofence_alert::AlertLog::open(&path).expect("log");
        let (alerts, writer) = geofence_alert::spawn_writer(log, 64).expect("writer");
        let (tx, rx) = std::sync::mpsc::sync_channel::<Cmd>(1);
        tx.try_send(Cmd::Stats).expect("fill the queue");
        let before = crate::enforcer::dropped();
        Out {
            enforcer: &tx,
            alerts: &alerts,
            settings: Settings::from_config(&cfg),
        }
        .handle(&mut events, false);
        assert!(crate::enforcer::dropped() > before, "the drop is counted");
        assert!(matches!(rx.try_recv(), Ok(Cmd::Stats)), "queue unchanged");
        assert!(rx.try_recv().is_err());
        writer.shutdown();
        let text = std::fs::read_to_string(&path).expect("alerts");
        assert!(
            text.contains("NOT enforced: enforcement queue full"),
            "{text}"
        );
        assert!(!text.contains("\"verdict\""), "no verdict: {text}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
