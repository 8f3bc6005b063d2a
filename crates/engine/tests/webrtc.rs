//! Browser WebRTC calls: a UDP flow that runs ICE connectivity checks to an
//! address no DNS answer named takes the one app the same client named
//! just before (DNS answer or TLS SNI), and nothing otherwise.

use std::net::{IpAddr, Ipv4Addr};

use geofence_decode::LinkType;
use geofence_engine::{Engine, EngineConfig};

mod common;
use common::{cn_engine, stun};
use geofence_testkit::pcap::udp_v4;
use geofence_testkit::wire::{dns_query, dns_response};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 7);
const OTHER_CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 8);
const RESOLVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);
const SIGNALLING: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);
const MEDIA: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 77);
const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * SEC;

fn engine() -> Engine {
    cn_engine(EngineConfig::default())
}

/// A browser's ICE check: USERNAME, PRIORITY, ICE-CONTROLLING,
/// MESSAGE-INTEGRITY.
fn ice_check() -> Vec<u8> {
    stun(
        0x0001,
        &[
            (0x0006, b"abcd:efgh"),
            (0x0024, &[0x6e, 0, 0x1e, 0xff]),
            (0x802A, &[1, 2, 3, 4, 5, 6, 7, 8]),
            (0x0008, &[0x33; 20]),
        ],
    )
}

/// `client` resolves `name` (answered with the signalling address).
fn resolve(e: &mut Engine, client: Ipv4Addr, name: &str, at: u64) {
    let mut ev = Vec::new();
    e.process_frame(
        at,
        LinkType::Ethernet,
        &udp_v4(client, 40000, RESOLVER, 53, &dns_query(0x4242, name, 1)),
        &mut ev,
    );
    let ans = dns_response(0x4242, name, 1, &[IpAddr::V4(SIGNALLING)], 300, false);
    e.process_frame(
        at + SEC / 100,
        LinkType::Ethernet,
        &udp_v4(RESOLVER, 53, client, 40000, &ans),
        &mut ev,
    );
}

/// The app of `CLIENT`'s UDP flow to the media address carrying `payloads`.
fn media_app(mut e: Engine, at: u64, payloads: &[Vec<u8>]) -> Option<String> {
    let mut ev = Vec::new();
    for (i, pl) in payloads.iter().enumerate() {
        e.process_frame(
            at + u64::try_from(i).unwrap_or(0) * SEC / 50,
            LinkType::Ethernet,
            &udp_v4(CLIENT, 52000, MEDIA, 50000, pl),
            &mut ev,
        );
    }
    let r = e.finish();
    let f = r
        .iter()
        .find(|f| f.dest_ip == IpAddr::V4(MEDIA))
        .expect("media flow");
    f.app.as_ref().map(|a| a.as_str().to_string())
}

fn call() -> Vec<Vec<u8>> {
    let mut v = vec![ice_check(), ice_check()];
    // DTLS ClientHello-shaped records and SRTP-like packets follow.
    let mut dtls = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 100];
    dtls.extend_from_slice(&[0x11; 100]);
    v.push(dtls);
    for seq in 0..5u8 {
        let mut rtp = vec![0x80, 0x6f, 0, seq, 0, 0, 0, 1, 1, 2, 3, 4];
        rtp.extend_from_slice(&[0x5a; 100]);
        v.push(rtp);
    }
    v
}

#[test]
fn ice_after_the_client_named_one_app_takes_that_app() {
    let mut e = engine();
    resolve(&mut e, CLIENT, "discord.com", T0);
    assert_eq!(
        media_app(e, T0 + 2 * SEC, &call()).as_deref(),
        Some("discord")
    );
}

#[test]
fn ice_without_a_named_app_or_out_of_the_window_labels_nothing() {
    assert_eq!(media_app(engine(), T0, &call()), None);
    let mut e = engine();
    resolve(&mut e, CLIENT, "discord.com", T0);
    assert_eq!(media_app(e, T0 + 120 * SEC, &call()), None, "too late");
    // Another client's name does not count.
    let mut e = engine();
    resolve(&mut e, OTHER_CLIENT, "discord.com", T0);
    assert_eq!(media_app(e, T0 + 2 * SEC, &call()), None, "other client");
}

#[test]
fn two_apps_named_in_the_window_label_nothing() {
    let mut e = engine();
    resolve(&mut e, CLIENT, "discord.com", T0);
    resolve(&mut e, CLIENT, "zoom.us", T0 + SEC);
    assert_eq!(media_app(e, T0 + 2 * SEC, &call()), None);
}

#[test]
fn stun_that_is_not_an_ice_check_labels_nothing() {
    let mut e = engine();
    resolve(&mut e, CLIENT, "discord.com", T0);
    // A plain Binding request (a NAT probe), then generic UDP.
    let mut v = vec![stun(0x0001, &[]), stun(0x0001, &[(0x0006, b"user")])];
    v.extend((0..6).map(|_| vec![0x42; 80]));
    assert_eq!(media_app(e, T0 + 2 * SEC, &v), None);
    // An ICE check to a private address (LAN peer) is not a call server.
    let mut e = engine();
    resolve(&mut e, CLIENT, "discord.com", T0);
    let mut ev = Vec::new();
    for pl in call() {
        e.process_frame(
            T0 + 2 * SEC,
            LinkType::Ethernet,
            &udp_v4(CLIENT, 52001, Ipv4Addr::new(10, 0, 0, 99), 50001, &pl),
            &mut ev,
        );
    }
    let r = e.finish();
    let lan = r.iter().find(|f| f.dest_port == 50001).expect("lan flow");
    assert!(lan.app.is_none());
}
