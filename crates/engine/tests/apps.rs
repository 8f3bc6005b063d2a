//! App evidence that only the engine sees whole: which STUN signal names a
//! Meta call (the realm before WhatsApp's shared vendor types), that a
//! generic realm names nothing, and flows seen first from the far side
//! (media opened by the remote peer, a relay's answer, a capture started
//! mid-call) oriented to the local client without teaching any cache.

use std::net::{IpAddr, Ipv4Addr};

use geofence_decode::LinkType;
use geofence_engine::{Engine, EngineConfig};

mod common;
use common::{cn_engine, stun};
use geofence_testkit::pcap::udp_v4;

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 7);
const RELAY: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 54);
const SEC: u64 = 1_000_000_000;

fn engine() -> Engine {
    cn_engine(EngineConfig::default())
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

/// A public client (no scope hint) and a remote peer.
const PUB_CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 5);
const PEER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 77);

fn rtp(seq: u16) -> Vec<u8> {
    let mut v = vec![0x80, 0x6f];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&[0, 0, 1, 0, 0x11, 0x22, 0x33, 0x44]);
    v.extend_from_slice(&[0x5a; 120]);
    v
}

/// (src, src port, dest, dest port, app) of every finished flow.
type Row = (IpAddr, u16, IpAddr, u16, Option<String>);

fn rows(mut e: Engine) -> Vec<Row> {
    e.finish()
        .into_iter()
        .map(|f| {
            (
                f.src_ip,
                f.src_port,
                f.dest_ip,
                f.dest_port,
                f.app.as_ref().map(|a| a.as_str().to_string()),
            )
        })
        .collect()
}

#[test]
fn media_opened_by_the_remote_peer_takes_the_client_sockets_app() {
    let mut e = engine();
    let mut ev = Vec::new();
    // The client's socket carries an identified Zoom SFU flow.
    let mut sfu = vec![0x01, 0x00, 0x03];
    sfu.extend_from_slice(&[0; 40]);
    e.process_frame(
        SEC,
        LinkType::Ethernet,
        &udp_v4(CLIENT, 45000, RELAY, 8801, &sfu),
        &mut ev,
    );
    // Then a remote peer opens media to that socket (both
    // ephemeral ports): the flow belongs to the client's socket.
    for i in 0..3u16 {
        e.process_frame(
            2 * SEC + u64::from(i),
            LinkType::Ethernet,
            &udp_v4(PEER, 50000, CLIENT, 45000, &rtp(i)),
            &mut ev,
        );
    }
    let r = rows(e);
    let peer_flow = r
        .iter()
        .find(|x| x.2 == IpAddr::V4(PEER) || x.0 == IpAddr::V4(PEER))
        .expect("peer flow");
    assert_eq!(peer_flow.0, IpAddr::V4(CLIENT));
    assert_eq!(peer_flow.1, 45000);
    assert_eq!(peer_flow.3, 50000);
    assert_eq!(peer_flow.4.as_deref(), Some("zoom"));
}

#[test]
fn a_relay_answer_seen_first_is_turned_and_classified() {
    // The request was not captured; the relay's Binding success response
    // (with Meta's realm) is the first packet.
    let m = stun(0x0101, &[(REALM, b"turner.facebook")]);
    let mut e = engine();
    let mut ev = Vec::new();
    e.process_frame(
        SEC,
        LinkType::Ethernet,
        &udp_v4(PEER, 40003, CLIENT, 51000, &m),
        &mut ev,
    );
    let r = rows(e);
    assert_eq!(
        r,
        vec![(
            IpAddr::V4(CLIENT),
            51000,
            IpAddr::V4(PEER),
            40003,
            Some("meta-calls".to_string())
        )]
    );
}

#[test]
fn a_public_sender_to_a_private_client_is_the_server() {
    let mut e = engine();
    let mut ev = Vec::new();
    e.process_frame(
        SEC,
        LinkType::Ethernet,
        &udp_v4(PEER, 40000, CLIENT, 50000, &rtp(1)),
        &mut ev,
    );
    // A STUN/TURN source port, or a STUN response, sent first to a public
    // receiver does not turn the flow: the receiver could be a foreign
    // server that a LAN client wants judged by its own address instead.
    e.process_frame(
        SEC,
        LinkType::Ethernet,
        &udp_v4(PEER, 3478, PUB_CLIENT, 50001, &[0x17; 40]),
        &mut ev,
    );
    let m = stun(0x0101, &[(REALM, b"turner.facebook")]);
    e.process_frame(
        SEC,
        LinkType::Ethernet,
        &udp_v4(PEER, 40005, PUB_CLIENT, 51005, &m),
        &mut ev,
    );
    let mut r = rows(e);
    r.sort_by_key(|x| x.1);
    assert_eq!(r.len(), 3);
    assert_eq!((r[0].0, r[0].1), (IpAddr::V4(PEER), 3478));
    assert_eq!(r[0].3, 50001, "not turned: the sender stays the client");
    assert_eq!((r[1].0, r[1].1, r[1].3), (IpAddr::V4(PEER), 40005, 51005));
    assert_eq!((r[2].0, r[2].1), (IpAddr::V4(CLIENT), 50000));
}

#[test]
fn without_a_hint_the_sender_stays_the_client() {
    let mut e = engine();
    let mut ev = Vec::new();
    // public -> public, ephemeral ports, generic payload
    e.process_frame(
        SEC,
        LinkType::Ethernet,
        &udp_v4(PEER, 40000, PUB_CLIENT, 50000, &[0x42; 60]),
        &mut ev,
    );
    // private -> private
    e.process_frame(
        SEC,
        LinkType::Ethernet,
        &udp_v4(
            Ipv4Addr::new(10, 0, 0, 9),
            40001,
            CLIENT,
            50002,
            &[0x42; 60],
        ),
        &mut ev,
    );
    // a STUN request is not an answer
    e.process_frame(
        SEC,
        LinkType::Ethernet,
        &udp_v4(PEER, 40002, PUB_CLIENT, 50003, &stun(0x0001, &[])),
        &mut ev,
    );
    let mut r = rows(e);
    r.sort_by_key(|x| x.1);
    let senders: Vec<(IpAddr, u16)> = r.iter().map(|x| (x.0, x.1)).collect();
    assert_eq!(
        senders,
        vec![
            (IpAddr::V4(PEER), 40000),
            (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), 40001),
            (IpAddr::V4(PEER), 40002),
        ]
    );
}

#[test]
fn a_strangers_vendor_packet_does_not_label_the_clients_socket() {
    let mut e = engine();
    let mut ev = Vec::new();
    // A stranger sends a WhatsApp-typed STUN request to the client's socket.
    let m = stun(0x0801, &[(0x4002, &[0, 1])]);
    e.process_frame(
        SEC,
        LinkType::Ethernet,
        &udp_v4(PEER, 40000, CLIENT, 50000, &m),
        &mut ev,
    );
    // The client's own traffic from that socket to a CN address, and a
    // sweep a few seconds later.
    e.process_frame(
        2 * SEC,
        LinkType::Ethernet,
        &udp_v4(CLIENT, 50000, RELAY, 40000, &[0x42; 60]),
        &mut ev,
    );
    e.process_frame(
        5 * SEC,
        LinkType::Ethernet,
        &udp_v4(CLIENT, 50001, RELAY, 40001, &[0x42; 60]),
        &mut ev,
    );
    let r = rows(e);
    let stranger = r
        .iter()
        .find(|x| x.2 == IpAddr::V4(PEER))
        .expect("stranger flow, turned to the client");
    assert_eq!((stranger.0, stranger.1), (IpAddr::V4(CLIENT), 50000));
    assert_eq!(stranger.4.as_deref(), Some("whatsapp"));
    let own = r
        .iter()
        .find(|x| x.2 == IpAddr::V4(RELAY) && x.1 == 50000)
        .expect("own flow");
    assert_eq!(own.4, None, "the stranger taught the socket cache");
}
