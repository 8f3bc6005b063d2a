//! App evidence that only the engine sees whole: which STUN signal names a
//! Meta call (the realm before WhatsApp's shared vendor types), and that a
//! generic realm names nothing.

use std::net::Ipv4Addr;
use std::sync::Arc;

use geofence_classify::SignatureDb;
use geofence_decode::LinkType;
use geofence_engine::{Engine, EngineConfig};
use geofence_geo::GeoDb;
use geofence_testkit::mmdb::geoip2_country;
use geofence_testkit::pcap::udp_v4;

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 7);
const RELAY: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 54);
const SEC: u64 = 1_000_000_000;

fn engine() -> Engine {
    let policy = geofence_policy::load_str(
        "t.toml",
        "[geoip]\ndatabases = [\"t.mmdb\"]\n[signatures]\ndirs = []\n[jurisdictions]\nprc = [\"CN\"]\n\
         [[rule]]\nname = \"no-conf-prc\"\napps = [\"conferencing\"]\nto = [\"prc\"]\naction = \"block\"\n",
    )
    .expect("policy");
    let policy = geofence_policy::Policy::from_config(&policy).expect("compile");
    let geo = GeoDb::from_sources(vec![(
        "geo".to_string(),
        geoip2_country(&[("203.0.113.0/24", "CN", None)]).to_bytes(),
    )])
    .expect("geo");
    Engine::new(
        EngineConfig::default(),
        Arc::new(SignatureDb::builtin()),
        Arc::new(geo),
        Arc::new(policy),
    )
}

/// A STUN message (RFC 5389 header) with the given attributes.
fn stun(msg_type: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
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

/// The app of the single flow that one STUN message from the client makes.
fn app_of(msg: &[u8]) -> Option<String> {
    let mut e = engine();
    let mut ev = Vec::new();
    e.process_frame(
        SEC,
        LinkType::Ethernet,
        &udp_v4(CLIENT, 40100, RELAY, 3478, msg),
        &mut ev,
    );
    let r = e.finish();
    assert_eq!(r.len(), 1);
    r.first()
        .and_then(|f| f.app.as_ref())
        .map(|a| a.as_str().to_string())
}

const REALM: u16 = 0x0014;

#[test]
fn facebook_realm_names_a_meta_call_even_with_whatsapp_types() {
    // Meta's relays speak WhatsApp's dialect (type 0x0801, attr 0x4002);
    // the realm is what says Messenger/Instagram.
    let m = stun(0x0801, &[(0x4002, &[0, 1]), (REALM, b"turner.facebook")]);
    assert_eq!(app_of(&m).as_deref(), Some("meta-calls"));
    let m = stun(0x0001, &[(REALM, b"Turner.Facebook")]);
    assert_eq!(app_of(&m).as_deref(), Some("meta-calls"));
}

#[test]
fn whatsapp_types_without_a_realm_stay_whatsapp() {
    let m = stun(0x0801, &[(0x4002, &[0, 1])]);
    assert_eq!(app_of(&m).as_deref(), Some("whatsapp"));
}

#[test]
fn a_generic_realm_names_nothing() {
    for realm in [&b"example.com"[..], b"turn.example.net", b"face", b"book"] {
        let m = stun(0x0001, &[(REALM, realm)]);
        assert_eq!(app_of(&m), None, "{}", String::from_utf8_lossy(realm));
    }
    // A generic binding request without any realm.
    assert_eq!(app_of(&stun(0x0001, &[])), None);
}
