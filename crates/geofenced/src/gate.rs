//! Glue between the DNS gate (`geofence-dnsgate`) and the enforcer: an
//! answer is decided with the engine's own function
//! (`geofence_engine::decide_answer`), turned into blocks and alerts by the
//! same action stage as the passive path (`geofence_act::act`), and
//! released only when the enforcement thread acknowledges every block.

use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};

use geofence_alert::AlertSender;
use geofence_classify::dns;
use geofence_classify::sigdb::SignatureDb;
use geofence_dnsgate::{GateOptions, Gatekeeper, Hold, Withheld};
use geofence_engine::{CrossFamilyBudget, DnsCtx, DnsScope, EngineConfig, EngineStats, Event};
use geofence_geo::GeoDb;
use geofence_policy::{DnsGateConfig, Policy};

use geofence_act::{act, Actions, Settings};

use anyhow::Context;
use geofence_runtime::Loaded;

use crate::enforcer::{now_ns, BlockReq, Cmd};

/// What decisions are made with; swapped on reload.
pub struct GateCtx {
    pub sigs: Arc<SignatureDb>,
    pub geo: Arc<GeoDb>,
    pub policy: Arc<Policy>,
    pub settings: Settings,
    /// TTL cap and floor, as the capture threads' engines have them.
    pub engine: EngineConfig,
}

/// State the shared DNS decision keeps between answers.
#[derive(Default)]
struct Learning {
    cross_family: CrossFamilyBudget,
    stats: EngineStats,
}

pub struct DaemonGatekeeper {
    ctx: RwLock<Arc<GateCtx>>,
    learning: Mutex<Learning>,
    enforcer: SyncSender<Cmd>,
    alerts: AlertSender,
}

impl DaemonGatekeeper {
    pub fn new(ctx: GateCtx, enforcer: SyncSender<Cmd>, alerts: AlertSender) -> Self {
        DaemonGatekeeper {
            ctx: RwLock::new(Arc::new(ctx)),
            learning: Mutex::new(Learning::default()),
            enforcer,
            alerts,
        }
    }

    /// Decisions after a reload use the new policy, signatures and databases.
    pub fn swap(&self, ctx: GateCtx) {
        let new = Arc::new(ctx);
        match self.ctx.write() {
            Ok(mut g) => *g = new,
            Err(p) => *p.into_inner() = new,
        }
    }

    fn ctx(&self) -> Arc<GateCtx> {
        match self.ctx.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

fn withheld(why: impl Into<String>) -> Hold {
    Box::pin(std::future::ready(Err(Withheld(why.into()))))
}

impl Gatekeeper for DaemonGatekeeper {
    fn admit(&self, client: IpAddr, upstream: SocketAddr, answer: &[u8]) -> Hold {
        let m = match dns::parse_message(answer) {
            Ok(m) => m,
            // An answer we cannot read could carry addresses we cannot
            // decide; the client's parser might read it: fail closed.
            Err(e) if answer.get(6..8).is_some_and(|c| c != [0, 0]) => {
                return withheld(format!("unreadable answer ({e})"));
            }
            Err(_) => return Box::pin(std::future::ready(Ok(()))),
        };
        if m.answers_truncated {
            return withheld(format!(
                "answer has more than {} records: not all of them can be decided",
                dns::MAX_ANSWERS
            ));
        }
        let ctx = self.ctx();
        let mut events = Vec::new();
        {
            let mut guard = match self.learning.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let Learning {
                cross_family,
                stats,
            } = &mut *guard;
            let dctx = DnsCtx {
                sigs: &ctx.sigs,
                geo: &ctx.geo,
                policy: &ctx.policy,
                cfg: &ctx.engine,
            };
            // The gate asked this question itself: the answer is trusted.
            geofence_engine::decide_answer(
                &dctx,
                cross_family,
                stats,
                client,
                upstream.ip(),
                &m,
                now_ns(),
                &mut |_, _, _, _| {},
                &mut events,
            );
        }
        // A blocked address that cannot be keyed to anyone ahead of time
        // (cross-family answer, the client's budget of server-wide blocks
        // spent) would reach the client unblocked: withhold the answer
        // instead (the client falls back to the other family, whose
        // answers are keyed to it).
        if ctx.settings.enforce {
            let unkeyable = events.iter().find_map(|e| match e {
                Event::Dns(d) if d.decision.is_block() => match d.scope {
                    DnsScope::FlowOnly(r) => Some(r.describe()),
                    _ => None,
                },
                _ => None,
            });
            if let Some(why) = unkeyable {
                for ev in &events {
                    if let Actions::Alert(a) = act(ev, &ctx.settings, false) {
                        let _ = self.alerts.send(a);
                    }
                }
                return withheld(format!("a blocked address cannot be blocked ahead: {why}"));
            }
        }
        let mut waits = Vec::new();
        for ev in &events {
            match act(ev, &ctx.settings, false) {
                Actions::None => {}
                Actions::Alert(a) => {
                    let _ = self.alerts.send(a);
                }
                Actions::Block { block, alert } => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let req = BlockReq {
                        block,
                        alert,
                        ack: Some(tx),
                    };
                    match self.enforcer.try_send(Cmd::Block(Box::new(req))) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => {
                            crate::enforcer::count_dropped();
                            return withheld("the enforcement queue is full");
                        }
                        Err(TrySendError::Disconnected(_)) => {
                            return withheld("the enforcement thread is gone");
                        }
                    }
                    waits.push(rx);
                }
            }
        }
        Box::pin(async move {
            for rx in waits {
                match rx.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(Withheld(format!("kernel refused the block: {e}"))),
                    Err(_) => {
                        return Err(Withheld("the enforcement thread dropped the block".into()))
                    }
                }
            }
            Ok(())
        })
    }
}

/// The gate's options from `[dns_gate]`.
pub fn options(c: &DnsGateConfig) -> GateOptions {
    use std::time::Duration;
    GateOptions {
        listen: c.listen.clone(),
        upstreams: c.upstreams.clone(),
        attempt_timeout: Duration::from_millis(u64::from(c.attempt_timeout_ms)),
        attempts: c.attempts,
        hold_timeout: Duration::from_millis(u64::from(c.hold_timeout_ms)),
        max_inflight: c.max_inflight as usize,
        client_rate: c.client_rate,
        client_burst: c.client_burst,
        max_tcp_clients: c.max_tcp_clients as usize,
        max_udp_size: c.max_udp_size,
        ..GateOptions::default()
    }
}

/// The decision context of a loaded policy.
pub fn ctx(l: &Loaded) -> GateCtx {
    GateCtx {
        sigs: l.sigs.clone(),
        geo: l.geo.clone(),
        policy: l.policy.clone(),
        settings: crate::act_settings(&l.config),
        engine: geofence_runtime::engine_config(&l.config),
    }
}

/// The running DNS gate: its own runtime (two workers), listeners, and the
/// gatekeeper the control loop updates on reload.
pub struct GateHandle {
    pub keeper: Arc<DaemonGatekeeper>,
    running: geofence_dnsgate::RunningGate,
    rt: tokio::runtime::Runtime,
}

impl GateHandle {
    pub fn stop(self, failure: geofence_policy::GateFailure) {
        let s = self.running.stats.snapshot();
        drop(self.running);
        self.rt.shutdown_timeout(std::time::Duration::from_secs(1));
        match failure {
            geofence_policy::GateFailure::Closed => tracing::warn!(
                queries = s.queries, answered = s.answered, withheld = s.withheld,
                "DNS gate stopped, failing closed: the DNS redirect stays in the kernel, so clients resolve nothing until geofenced is back (blocks already in the kernel keep holding)"
            ),
            geofence_policy::GateFailure::Open => {
                use geofence_nft::model::{DNS_GATE_CHAIN, DNS_GATE_FORWARD_CHAIN};
                let removed = geofence_nft::apply::Nft::with_table(geofence_runtime::plan::TABLE)
                    .and_then(|mut n| n.remove_chains(&[DNS_GATE_CHAIN, DNS_GATE_FORWARD_CHAIN]));
                match removed {
                    Ok(_) => tracing::warn!(
                        queries = s.queries, answered = s.answered, withheld = s.withheld,
                        "DNS gate stopped, failing open: the DNS redirect is removed, clients reach their resolvers directly; new DNS answers are no longer held (blocks already in the kernel keep holding)"
                    ),
                    Err(e) => tracing::error!(
                        error = %e,
                        "DNS gate stopped but the DNS redirect could not be removed: DNS fails closed until `geofencectl dns-gate-down` succeeds"
                    ),
                }
            }
        }
    }
}

/// Binds the gate's listeners and starts serving.
pub fn start(
    l: &Loaded,
    etx: &SyncSender<Cmd>,
    alerts: &AlertSender,
) -> anyhow::Result<GateHandle> {
    let c = &l.config.dns_gate;
    let keeper = Arc::new(DaemonGatekeeper::new(ctx(l), etx.clone(), alerts.clone()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("geofence-dnsgate")
        .enable_all()
        .build()
        .context("starting the DNS gate runtime")?;
    let k: Arc<dyn geofence_dnsgate::Gatekeeper> = keeper.clone();
    let running = rt
        .block_on(geofence_dnsgate::Gate::start(options(c), k))
        .with_context(|| format!("binding the DNS gate on {:?}", c.listen))?;
    tracing::info!(listen = ?running.udp, upstreams = ?c.upstreams, on_failure = c.on_failure.as_str(), "DNS gate running: answers are held until their blocks are in the kernel");
    Ok(GateHandle {
        keeper,
        running,
        rt,
    })
}
