//! # geofence-runtime: from files to a ready pipeline
//!
//! The one place that reads what the pure stages need: the policy file
//! (`geofence-policy`), the app signatures (built-ins from `config/apps.d`,
//! the admin's `[signatures] dirs`, and the policy's own `[[app]]` tables)
//! and the geo databases (`geofence-geo`). The daemon calls [`load`] at start
//! and on every reload; a failed load leaves the caller's running pipeline
//! untouched. `geofencectl` uses the same code, so `check`, `replay` and
//! `explain` see exactly what the daemon would.
//!
//! Also holds [`replay_file`], the offline pipeline over a capture file.

#![forbid(unsafe_code)]

pub mod plan;

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use geofence_act::{act, Actions, Enforcement, Settings};
use geofence_classify::sigdb::SignatureDb;
use geofence_decode::PcapReader;
use geofence_engine::{Engine, EngineConfig, Event, FlowReport};
use geofence_geo::GeoDb;
use geofence_policy::{CaptureKind, Config, ConfigError, Policy};
use serde::Serialize;
use std::collections::HashSet;
use std::net::IpAddr;

/// Why loading failed. Each message names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The policy file (or a signature file it names) is invalid.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The signature set does not compile.
    #[error("signatures: {0}")]
    Signatures(String),
    /// A geo database could not be opened or is corrupt.
    #[error("{0}")]
    Geo(#[from] geofence_geo::GeoError),
    /// The policy names no geo database.
    #[error("{file}: [geoip] databases is empty: name at least one .mmdb file")]
    NoDatabase { file: String },
}

/// Everything the pipeline needs, loaded and validated.
pub struct Loaded {
    pub config: Config,
    pub policy: Arc<Policy>,
    pub sigs: Arc<SignatureDb>,
    pub geo: Arc<GeoDb>,
    /// Where `geo` came from.
    pub geo_paths: Vec<PathBuf>,
}

/// Which geo databases to open.
#[derive(Clone, Debug, Default)]
pub enum GeoChoice {
    /// The `[geoip] databases` of the policy file.
    #[default]
    FromConfig,
    /// These files instead (e.g. `geofencectl replay --geoip`).
    Paths(Vec<PathBuf>),
    /// No database: every destination's country is unknown.
    None,
}

/// Loads the signature database: built-ins, then the policy's signature
/// directories, then its `[[app]]` tables (later definitions of an id win).
pub fn signatures(config: &Config) -> Result<SignatureDb, LoadError> {
    let mut defs = SignatureDb::builtin_defs();
    defs.extend(config.signature_apps.iter().cloned());
    defs.extend(config.apps.iter().cloned());
    SignatureDb::from_defs(defs).map_err(|e| LoadError::Signatures(e.to_string()))
}

/// Reads and validates the policy file only (`geofencectl check`).
pub fn load_config(path: &Path) -> Result<(Config, Policy, SignatureDb), LoadError> {
    let config = geofence_policy::load_file(path)?;
    let sigs = signatures(&config)?;
    let policy = Policy::from_config(&config)?;
    Ok((config, policy, sigs))
}

/// Loads policy, signatures and geo databases.
pub fn load(path: &Path, geo: &GeoChoice) -> Result<Loaded, LoadError> {
    let (config, policy, sigs) = load_config(path)?;
    let paths: Vec<PathBuf> = match geo {
        GeoChoice::FromConfig => {
            if config.geoip.databases.is_empty() {
                return Err(LoadError::NoDatabase {
                    file: path.display().to_string(),
                });
            }
            config.geoip.databases.clone()
        }
        GeoChoice::Paths(p) => p.clone(),
        GeoChoice::None => Vec::new(),
    };
    let geo = if paths.is_empty() {
        GeoDb::empty()
    } else {
        GeoDb::open(&paths)?
    };
    Ok(Loaded {
        config,
        policy: Arc::new(policy),
        sigs: Arc::new(sigs),
        geo: Arc::new(geo),
        geo_paths: paths,
    })
}

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: geofence_decode::DecodeError,
    },
}

/// The engine settings a policy file implies, shared by the daemon and
/// replay so both decide alike: the DNS floor and cap, and in NFLOG mode what the
/// kernel hands over ([`plan::FIRST_PACKETS`] original-direction packets).
pub fn engine_config(config: &Config) -> EngineConfig {
    EngineConfig {
        dns_floor_secs: u64::from(config.daemon.dns_ttl_floor_secs),
        dns_ttl_cap_secs: u64::from(config.daemon.dns_ttl_cap_secs),
        handover: match config.daemon.capture {
            CaptureKind::Nflog => Some(plan::FIRST_PACKETS),
            CaptureKind::Afpacket => None,
        },
        ..EngineConfig::default()
    }
}

/// One flow of a replay: the engine's report, and what the live daemon's
/// kernel table does with it.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayFlow {
    #[serde(flatten)]
    pub report: FlowReport,
    /// `dynamic`: the action stage put a block for this client and server
    /// in the kernel (at the flow's decision or from a DNS answer before
    /// it); `static`: the static sets stop it from its first packet;
    /// `monitor`: blocked by policy, not enforced; `none`.
    pub kernel: Enforcement,
    /// The engine decided the flow while it ran (the daemon would have
    /// acted and alerted then); `false` for a label given only when the
    /// capture ended (a tentative label on a flow shorter than what the
    /// kernel hands over), which the live daemon never acts on.
    pub decided: bool,
}

/// A flow's identity in reports: protocol and both endpoints.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct FlowId(&'static str, IpAddr, u16, IpAddr, u16);

impl FlowId {
    fn of(r: &FlowReport) -> FlowId {
        FlowId(r.proto, r.src_ip, r.src_port, r.dest_ip, r.dest_port)
    }
}

/// Replays a capture through the daemon's pipeline: in NFLOG mode only the
/// packets the kernel would hand over reach the engine, and every event
/// goes through the same action stage as in the daemon. Records over the
/// reader's size limit or damaged are skipped and counted in
/// `skipped_records`; the rest of the file is read.
pub fn replay_file(
    loaded: &Loaded,
    path: &Path,
) -> Result<(Vec<ReplayFlow>, geofence_engine::EngineStats), ReplayError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let f = File::open(path).map_err(|source| ReplayError::Open {
        path: path.display().to_string(),
        source,
    })?;
    let mut reader = PcapReader::new(BufReader::with_capacity(1 << 20, f)).map_err(|source| {
        ReplayError::Read {
            path: path.display().to_string(),
            source,
        }
    })?;
    let cfg = EngineConfig {
        keep_finished: true,
        simulate_handover: true,
        ..engine_config(&loaded.config)
    };
    let mut engine = Engine::new(
        cfg,
        loaded.sigs.clone(),
        loaded.geo.clone(),
        loaded.policy.clone(),
    );
    let settings = Settings::from_config(&loaded.config);
    // (client, server) pairs the action stage blocked.
    let mut blocked: HashSet<(IpAddr, IpAddr)> = HashSet::new();
    // Server-wide blocks (every client), from family-crossing DNS answers.
    let mut blocked_any: HashSet<IpAddr> = HashSet::new();
    // Flows the engine labelled while running (5-tuple as reported).
    let mut decided: HashSet<FlowId> = HashSet::new();
    // Every event goes through the action stage, as in the daemon.
    let mut record = |events: &mut Vec<Event>| {
        for ev in events.drain(..) {
            if let Event::Labelled { report, .. } | Event::AllTraffic { report, .. } = &ev {
                decided.insert(FlowId::of(report));
            }
            if let Actions::Block { block, .. } = act(&ev, &settings, false) {
                match block.elem.src {
                    Some(src) => blocked.insert((src, block.elem.dst)),
                    None => blocked_any.insert(block.elem.dst),
                };
            }
        }
    };
    let mut last_ts = 0u64;
    let mut events = Vec::new();
    loop {
        let pkt = match reader.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A capture cut off in the middle of a record (a capture tool
            // killed mid-write): keep what was read.
            Err(geofence_decode::DecodeError::Truncated(_)) => break,
            Err(source) => {
                return Err(ReplayError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        engine.process_frame(pkt.ts_nanos, pkt.link, pkt.data, &mut events);
        last_ts = last_ts.max(pkt.ts_nanos);
        record(&mut events);
    }
    // The daemon sweeps once its capture has been idle for a second
    // (labelling flows that share an identified client socket): so does
    // replay at the end of the capture, before the remaining flows end.
    engine.sweep(last_ts.saturating_add(1_000_000_000), &mut events);
    record(&mut events);
    let statics = plan::StaticLayer::new(&loaded.policy, &loaded.sigs);
    let flows = engine
        .finish()
        .into_iter()
        .map(|mut r| {
            r.pcap = Some(name.clone());
            let dynamic =
                blocked.contains(&(r.src_ip, r.dest_ip)) || blocked_any.contains(&r.dest_ip);
            // the kernel sees a tunnelled flow's outer header only
            let (ksrc, kdst) = match (r.tunnel_src, r.tunnel_dst) {
                (Some(a), Some(b)) => (a, b),
                _ => (r.src_ip, r.dest_ip),
            };
            let kernel = if !settings.enforce {
                if r.action == geofence_policy::Action::Block {
                    Enforcement::Monitor
                } else {
                    Enforcement::None
                }
            } else if statics
                .blocking_rule(&loaded.policy, &loaded.geo, ksrc, kdst)
                .is_some()
            {
                Enforcement::Static
            } else if dynamic && r.tunnel.is_none() {
                Enforcement::Dynamic
            } else {
                Enforcement::None
            };
            let decided = decided.contains(&FlowId::of(&r));
            ReplayFlow {
                report: r,
                kernel,
                decided,
            }
        })
        .collect();
    let mut stats = engine.stats();
    stats.skipped_records = reader.skipped_records();
    Ok((flows, stats))
}
