//! `geofenced`: the Geofence daemon.
//!
//! Start-up: load the policy, signatures and geo databases
//! (`geofence-runtime`), turn on conntrack accounting, apply the nftables
//! table in one transaction and read it back, restore saved dynamic blocks,
//! then capture (NFLOG or AF_PACKET) through the engine on a capture thread
//! while an enforcement thread turns decisions into kernel set elements and
//! the alert thread writes JSON lines. The main thread handles signals
//! (SIGHUP: reload; SIGUSR1: reopen the alert file; SIGTERM/SIGINT: stop),
//! `reload` requests on the control socket (answered with the result), the
//! systemd watchdog, and checks the table (its presence every 20 ms from a
//! watch thread, its contents every two seconds), restoring it if someone
//! changed or deleted it.
//!
//! Fail closed: the kernel table is never removed by the daemon, not on a
//! clean stop and not on a crash (`geofencectl flush` removes it). A reload
//! that fails (bad policy, corrupt database, kernel error) changes nothing.

#![forbid(unsafe_code)]

mod accepted;
mod control;
mod durable;
mod enforcer;
mod gate;
mod journal;
mod pipeline;
mod state;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use geofence_alert::{Alert, AlertLog, AlertLogOptions, AlertSender, AlertThrottle, EventKind};
use geofence_capture::{NflogSource, PacketSource};
use geofence_engine::Engine;
use geofence_policy::CaptureKind;
use geofence_runtime::{plan, GeoChoice, Loaded};

use enforcer::{Cmd, Enforcer};
use geofence_act::Settings;
use pipeline::{Ctl, Pipeline};

#[derive(Parser)]
#[command(
    name = "geofenced",
    version,
    about = "Geofence daemon: per-app jurisdiction policy enforced with nftables"
)]
struct Args {
    /// Policy file.
    #[arg(long, short, default_value = "/etc/geofence/geofence.toml")]
    config: PathBuf,
    /// Log format on stderr: json (for journald/SIEM) or text.
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    log_format: String,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logging(&args.log_format);
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "geofenced stopped");
            eprintln!("geofenced: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GEOFENCE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt().with_env_filter(filter);
    // Under systemd, a `<N>` priority prefix per line lets `journalctl -p
    // err` find the errors; elsewhere plain lines.
    match (format == "json", journal::stderr_is_journal()) {
        (true, true) => b
            .with_writer(journal::Prefixed)
            .json()
            .flatten_event(true)
            .init(),
        (true, false) => b
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .init(),
        (false, true) => b.with_writer(journal::Prefixed).init(),
        (false, false) => b.with_writer(std::io::stderr).init(),
    }
}

fn daemon_alert(alerts: &AlertSender, kind: EventKind, reason: String) {
    alerts.send(Alert::new(kind, "allow", reason));
}

/// A daemon event an operator must act on (severity 2 in the alert log).
fn daemon_warning(alerts: &AlertSender, kind: EventKind, reason: String) {
    alerts.send(Alert::new(kind, "alert", reason));
}

/// The action stage's settings: the policy's, plus this run's flow id salt.
fn act_settings(c: &geofence_policy::Config) -> Settings {
    static SALT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    Settings {
        flow_salt: *SALT.get_or_init(random_u64),
        ..Settings::from_config(c)
    }
}

/// 64 random bits from the kernel, or (no /dev/urandom in the sandbox)
/// the start time and pid mixed.
fn random_u64() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)) {
        Ok(()) => u64::from_ne_bytes(b),
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            t ^ u64::from(std::process::id()).rotate_left(32)
        }
    }
}

/// `host` on alert lines: `[alerts] host`, else the kernel's host name
/// when it is a valid gateway name.
fn gateway_name(c: &geofence_policy::Config) -> Option<String> {
    c.alerts.host.clone().or_else(|| {
        let h = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
        let h = h.trim();
        geofence_policy::is_gateway_name(h).then(|| h.to_string())
    })
}

/// Warns (log and `database` alert) about databases older than `max_age_days`.
fn report_stale_databases(l: &Loaded, alerts: &AlertSender) {
    let now = std::time::SystemTime::now();
    for m in l.geo.stale(l.config.geoip.max_age_days, now) {
        tracing::warn!(database = %m.name, age_days = m.age_days(now), "geo database is older than max_age_days");
        daemon_warning(
            alerts,
            EventKind::Database,
            format!(
                "geo database {} ({}) is {} days old, older than max_age_days = {}: locations may be out of date",
                m.name,
                m.database_type,
                m.age_days(now),
                l.config.geoip.max_age_days
            ),
        );
    }
}

/// Applies `l`'s ruleset. Every dynamic block the enforcer holds (saved
/// ones at start, live ones at a reload) is first re-decided under `l`.
fn apply(tx: &mpsc::SyncSender<Cmd>, l: &Loaded) -> Result<String, String> {
    let spec = plan::ruleset_spec(&l.config, &l.policy, &l.geo, &l.sigs);
    let redecide = enforcer::Redecide {
        policy: l.policy.clone(),
        geo: l.geo.clone(),
    };
    let (rtx, rrx) = mpsc::channel();
    tx.send(Cmd::Apply {
        spec,
        redecide,
        reply: rtx,
    })
    .map_err(|_| "enforcer thread is gone".to_string())?;
    rrx.recv()
        .map_err(|_| "enforcer thread is gone".to_string())?
}

fn open_sources(l: &Loaded) -> anyhow::Result<Vec<Box<dyn PacketSource + Send>>> {
    let d = &l.config.daemon;
    match d.capture {
        CaptureKind::Nflog => {
            let src = NflogSource::bind(d.nflog_group, plan::SNAPLEN)
                .with_context(|| format!("binding NFLOG group {}", d.nflog_group))?;
            Ok(vec![Box::new(src)])
        }
        CaptureKind::Afpacket => {
            let names: Vec<String> = if d.interfaces.is_empty() {
                pnet_datalink::interfaces()
                    .into_iter()
                    .filter(|i| i.is_up() && !i.is_loopback())
                    .map(|i| i.name)
                    .collect()
            } else {
                d.interfaces.clone()
            };
            let mut out: Vec<Box<dyn PacketSource + Send>> = Vec::new();
            for n in names {
                // libpcap's TPACKET_V3 ring when it opens, pnet otherwise.
                let (src, why) = geofence_capture::open_afpacket_explained(&n)
                    .with_context(|| format!("opening AF_PACKET on {n}"))?;
                match why {
                    None => tracing::info!(interface = %n, source = src.name(), "capturing"),
                    Some(e) => {
                        tracing::warn!(interface = %n, source = src.name(), reason = %e, "memory-mapped ring unavailable; capturing with one system call per packet")
                    }
                }
                out.push(src);
            }
            if out.is_empty() {
                bail!("no interface to capture on");
            }
            Ok(out)
        }
    }
}

/// Loads the policy with its configured databases; when those are refused
/// (corrupt, truncated, missing), with the last databases this daemon
/// accepted instead (`accepted`), so that a bad download does not leave a
/// rebooted gateway without enforcement. The second value says why the
/// fallback was used, for the `database` alert.
fn load_at_start(config: &Path) -> anyhow::Result<(Loaded, Option<String>)> {
    let refused = match geofence_runtime::load(config, &GeoChoice::FromConfig) {
        Ok(l) => return Ok((l, None)),
        Err(geofence_runtime::LoadError::Geo(e)) => e,
        Err(e) => return Err(e.into()),
    };
    let (cfg, _, _) = geofence_runtime::load_config(config)?;
    let kept = accepted::dir(&cfg.daemon.state_dir);
    let Some(copies) = accepted::fallback(&cfg.daemon.state_dir, &cfg.geoip.databases) else {
        bail!(
            "{refused}; no previously accepted copy in {} to start from",
            kept.display()
        );
    };
    let l = geofence_runtime::load(config, &GeoChoice::Paths(copies)).with_context(|| {
        format!(
            "{refused}; the previously accepted copy in {} was refused too",
            kept.display()
        )
    })?;
    tracing::error!(error = %refused, fallback = %kept.display(), "configured geo database refused; enforcing with the last accepted copy");
    Ok((
        l,
        Some(format!(
            "configured geo database refused ({refused}); enforcing with the last accepted copy from {}; fix or replace the configured file, then reload",
            kept.display()
        )),
    ))
}

/// Keeps a copy of the databases just accepted (start, reload).
fn keep_accepted(l: &Loaded) {
    match accepted::keep(&l.config.daemon.state_dir, &l.geo_paths) {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            copies = n,
            dir = %accepted::dir(&l.config.daemon.state_dir).display(),
            "kept a copy of the accepted geo database(s) to start from if the configured ones are refused"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not keep a copy of the accepted geo database(s)")
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let (loaded, fallback) = load_at_start(&args.config)?;
    let d = loaded.config.daemon.clone();
    tracing::info!(config = %args.config.display(), rules = loaded.policy.rules().len(), apps = loaded.sigs.apps().len(), databases = loaded.geo_paths.len(), "policy loaded");

    match geofence_capture::enable_conntrack_acct() {
        Ok(()) => tracing::info!("net.netfilter.nf_conntrack_acct=1 (needed to hand only the first packets of each flow to the classifier)"),
        Err(e) => bail!("cannot enable net.netfilter.nf_conntrack_acct: {e}; without it every packet would be logged"),
    }

    let log = AlertLog::open_lenient(
        &d.alert_log,
        AlertLogOptions {
            host: gateway_name(&loaded.config),
            ..AlertLogOptions::default()
        },
    );
    let (alerts, alert_writer) = geofence_alert::spawn_writer_throttled(
        log,
        65_536,
        AlertThrottle::new(Duration::from_secs(60), 100_000),
    )
    .context("starting the alert writer")?;

    let enf_beat = Arc::new(AtomicU64::new(enforcer::monotonic_secs()));
    // Bounded: a flood of decisions cannot grow memory; a full queue is
    // counted and alerted by the senders.
    let (etx, erx) = mpsc::sync_channel::<Cmd>(enforcer::QUEUE);
    let (itx, irx) = mpsc::channel::<Result<(), String>>();
    let (enforce, state_dir, enf_alerts, beat) = (
        d.enforce,
        d.state_dir.clone(),
        alerts.clone(),
        enf_beat.clone(),
    );
    // The netlink handle is not Send: it is created on, and never leaves,
    // the enforcement thread.
    let enf_thread = std::thread::Builder::new()
        .name("geofence-nft".into())
        .spawn(
            move || match geofence_nft::apply::Nft::with_table(plan::TABLE) {
                Ok(nft) => {
                    let _ = itx.send(Ok(()));
                    Enforcer::new(Some(nft), enforce, state_dir, enf_alerts, beat).run(erx);
                }
                Err(e) => {
                    let _ = itx.send(Err(e.to_string()));
                }
            },
        )?;
    match irx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => bail!("opening the nftables netlink socket: {e}"),
        Err(_) => bail!("the enforcement thread died at start"),
    }

    if let Some(why) = &fallback {
        daemon_warning(&alerts, EventKind::Database, why.clone());
    }
    // Saved dynamic blocks are re-decided under this policy and database
    // before they reach the kernel (as after a reload).
    match apply(&etx, &loaded) {
        Ok(summary) => tracing::info!(summary = %summary, enforce = d.enforce, "nftables table applied and verified"),
        Err(e) => bail!("applying the nftables table failed (the previous table, if any, is still in force): {e}"),
    }
    if fallback.is_none() {
        keep_accepted(&loaded);
    }
    // Another tool's `flush ruleset` deletes the table: noticed within
    // watch::EVERY, restored by the enforcement thread at once.
    let watcher = watch::Watch::start(plan::TABLE, etx.clone())?;

    let sources = open_sources(&loaded)?;
    let mut ctls = Vec::new();
    let mut beats = vec![enf_beat];
    let mut threads = Vec::new();
    for (i, source) in sources.into_iter().enumerate() {
        let (ctx, crx) = mpsc::channel::<Ctl>();
        let beat = Arc::new(AtomicU64::new(enforcer::monotonic_secs()));
        let p = Pipeline {
            engine: Engine::new(
                geofence_runtime::engine_config(&loaded.config),
                loaded.sigs.clone(),
                loaded.geo.clone(),
                loaded.policy.clone(),
            ),
            source,
            enforcer: etx.clone(),
            alerts: alerts.clone(),
            heartbeat: beat.clone(),
            settings: act_settings(&loaded.config),
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("geofence-capture-{i}"))
                .spawn(move || p.run(crx))?,
        );
        ctls.push(ctx);
        beats.push(beat);
    }
    let gate = match loaded.config.dns_gate.enabled {
        true => Some(gate::start(&loaded, &etx, &alerts)?),
        false => None,
    };
    report_stale_databases(&loaded, &alerts);
    daemon_alert(
        &alerts,
        EventKind::Daemon,
        format!(
            "geofenced started: {} rule(s), enforce = {}",
            loaded.policy.rules().len(),
            d.enforce
        ),
    );
    let _ = sd_notify::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("enforcing"),
    ]);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let failure = loaded.config.dns_gate.on_failure;
    rt.block_on(control(
        &args.config,
        loaded,
        &etx,
        &ctls,
        &beats,
        &alerts,
        gate.as_ref().map(|g| &*g.keeper),
    ))?;
    if let Some(g) = gate {
        g.stop(failure);
    }

    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    for c in &ctls {
        let _ = c.send(Ctl::Stop);
    }
    for t in threads {
        let _ = t.join();
    }
    watcher.stop();
    let _ = etx.send(Cmd::Stop);
    let _ = enf_thread.join();
    daemon_alert(
        &alerts,
        EventKind::Daemon,
        "geofenced stopped; the nftables table stays in force (geofencectl flush removes it)"
            .to_string(),
    );
    alert_writer.shutdown();
    Ok(())
}

async fn control(
    config: &Path,
    mut loaded: Loaded,
    etx: &mpsc::SyncSender<Cmd>,
    ctls: &[mpsc::Sender<Ctl>],
    beats: &[Arc<AtomicU64>],
    alerts: &AlertSender,
    gate: Option<&gate::DaemonGatekeeper>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let sock_path = loaded.config.daemon.control_socket.clone();
    let listener = match control::bind(&sock_path) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::error!(socket = %sock_path.display(), error = %e, "cannot open the control socket; `geofencectl reload` will not work (SIGHUP still reloads)");
            None
        }
    };
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut verify = tokio::time::interval(Duration::from_secs(2));
    let mut save = tokio::time::interval(Duration::from_secs(5));
    let mut stats = tokio::time::interval(Duration::from_secs(60));
    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    let mut wd = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    loop {
        tokio::select! {
            _ = hup.recv() => {
                loaded = reload(config, loaded, etx, ctls, alerts).0;
                if let Some(g) = gate {
                    g.swap(gate::ctx(&loaded));
                }
                alerts.reopen();
            }
            // logrotate: reopen the alert file only, never a policy reload.
            _ = usr1.recv() => {
                alerts.reopen();
            }
            conn = control::accept(listener.as_ref()) => {
                let Ok(mut conn) = conn else { continue };
                match control::read_request(&mut conn).await {
                    Ok(control::Request::Reload) => {
                        let (next, result) = reload(config, loaded, etx, ctls, alerts);
                        loaded = next;
                        if let Some(g) = gate {
                            g.swap(gate::ctx(&loaded));
                        }
                        control::reply(&mut conn, &result).await;
                    }
                    Ok(control::Request::Unblock { addr, client }) => {
                        let who = control::peer_user(&conn);
                        let result = unblock(etx, addr, client, who).await;
                        control::reply(&mut conn, &result).await;
                    }
                    Err(e) => control::reply(&mut conn, &Err(e)).await,
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            // Periodic checks are skipped while the queue is full.
            _ = verify.tick() => { let _ = etx.try_send(Cmd::Verify); }
            _ = save.tick() => { let _ = etx.try_send(Cmd::Save); }
            _ = stats.tick() => { let _ = etx.try_send(Cmd::Stats); }
            _ = wd.tick() => {
                if watchdog.is_some() {
                    let now = enforcer::monotonic_secs();
                    let alive = beats.iter().all(|b| now.saturating_sub(b.load(Ordering::Relaxed)) < 10);
                    if alive {
                        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                    } else {
                        tracing::error!("a worker thread is stuck; withholding the watchdog ping so systemd restarts us");
                    }
                }
            }
        }
    }
    if listener.is_some() {
        let _ = std::fs::remove_file(&sock_path);
    }
    Ok(())
}

/// Asks the enforcer to remove dynamic blocks (`geofencectl unblock`) and
/// waits for its answer off the control loop's thread.
async fn unblock(
    etx: &mpsc::SyncSender<Cmd>,
    dst: std::net::IpAddr,
    client: Option<std::net::IpAddr>,
    who: String,
) -> Result<String, String> {
    let (tx, rx) = mpsc::channel();
    etx.try_send(Cmd::Unblock {
        dst,
        client,
        who,
        reply: tx,
    })
    .map_err(|_| "the enforcement queue is full; try again".to_string())?;
    let n = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the enforcer did not answer".to_string())??;
    Ok(n.to_string())
}

/// Loads the policy again; on any error the running policy stays in force.
/// Returns the policy now running and what happened (for the control socket).
fn reload(
    config: &Path,
    old: Loaded,
    etx: &mpsc::SyncSender<Cmd>,
    ctls: &[mpsc::Sender<Ctl>],
    alerts: &AlertSender,
) -> (Loaded, Result<String, String>) {
    let new = match geofence_runtime::load(config, &GeoChoice::FromConfig) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "reload rejected; the running policy stays in force");
            daemon_warning(
                alerts,
                EventKind::Policy,
                format!("reload rejected, running policy kept: {e}"),
            );
            return (old, Err(e.to_string()));
        }
    };
    if new.config.daemon.capture != old.config.daemon.capture
        || new.config.daemon.nflog_group != old.config.daemon.nflog_group
    {
        tracing::warn!("capture settings changed: they take effect at the next restart");
    }
    let (og, ng) = (&old.config.dns_gate, &new.config.dns_gate);
    if og.enabled != ng.enabled || og.listen != ng.listen || og.upstreams != ng.upstreams {
        // The gate's listeners and upstreams are fixed at start; with the
        // redirect now pointing at a gate that is not running, DNS fails
        // closed until the restart.
        tracing::warn!(
            "[dns_gate] enabled/listen/upstreams changed: the DNS gate's listeners follow at the next restart (restart now)"
        );
    }
    match apply(etx, &new) {
        Ok(summary) => {
            for c in ctls {
                let _ = c.send(Ctl::Swap {
                    policy: new.policy.clone(),
                    sigs: new.sigs.clone(),
                    geo: new.geo.clone(),
                    settings: act_settings(&new.config),
                });
            }
            tracing::info!(summary = %summary, "policy reloaded");
            keep_accepted(&new);
            report_stale_databases(&new, alerts);
            let msg = format!("policy reloaded: {} rule(s)", new.policy.rules().len());
            daemon_alert(alerts, EventKind::Policy, msg.clone());
            (new, Ok(msg))
        }
        Err(e) => {
            tracing::error!(error = %e, "applying the reloaded policy failed; the running policy stays in force");
            daemon_warning(
                alerts,
                EventKind::Policy,
                format!("reload failed in the kernel, running policy kept: {e}"),
            );
            (old, Err(format!("the kernel refused the new ruleset: {e}")))
        }
    }
}
