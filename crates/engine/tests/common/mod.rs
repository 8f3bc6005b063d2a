//! Shared by the engine's tests (and its flood bench): an engine with the
//! built-in signatures, a policy that blocks conferencing to CN, and a
//! database that places 203.0.113.0/24 (or given networks) in CN; and a
//! STUN message builder.

#![allow(dead_code)]

use std::sync::Arc;

use geofence_classify::SignatureDb;
use geofence_engine::{Engine, EngineConfig};
use geofence_geo::GeoDb;
use geofence_testkit::mmdb::geoip2_country;

/// An engine that blocks conferencing to 203.0.113.0/24 (CN).
pub fn cn_engine(cfg: EngineConfig) -> Engine {
    cn_engine_in(cfg, &["203.0.113.0/24"])
}

/// The same policy, with the database placing `cn` (CIDRs) in CN.
pub fn cn_engine_in(cfg: EngineConfig, cn: &[&str]) -> Engine {
    let policy = geofence_policy::load_str(
        "t.toml",
        "[geoip]\ndatabases = [\"t.mmdb\"]\n[signatures]\ndirs = []\n[jurisdictions]\nprc = [\"CN\"]\n\
         [[rule]]\nname = \"no-conf-prc\"\napps = [\"conferencing\"]\nto = [\"prc\"]\naction = \"block\"\n",
    )
    .expect("policy");
    let policy = geofence_policy::Policy::from_config(&policy).expect("compile");
    let geo = GeoDb::from_sources(vec![(
        "geo".to_string(),
        geoip2_country(&cn.iter().map(|c| (*c, "CN", None)).collect::<Vec<_>>()).to_bytes(),
    )])
    .expect("geo");
    Engine::new(
        cfg,
        Arc::new(SignatureDb::builtin()),
        Arc::new(geo),
        Arc::new(policy),
    )
}

/// A STUN message (RFC 5389 header) with the given attributes.
pub fn stun(msg_type: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (t, v) in attrs {
        body.extend_from_slice(&t.to_be_bytes());
        body.extend_from_slice(&u16::try_from(v.len()).unwrap_or(0).to_be_bytes());
        body.extend_from_slice(v);
        while body.len() % 4 != 0 {
            body.push(0);
        }
    }
    let mut m = Vec::new();
    m.extend_from_slice(&msg_type.to_be_bytes());
    m.extend_from_slice(&u16::try_from(body.len()).unwrap_or(0).to_be_bytes());
    m.extend_from_slice(&0x2112_A442u32.to_be_bytes());
    m.extend_from_slice(&[7; 12]);
    m.extend_from_slice(&body);
    m
}
