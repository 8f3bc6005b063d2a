//! Prints one sample line per event kind, built with the real types, for
//! docs/alerts.md and for testing a SIEM pipeline:
//! `cargo run -p geofence-alert --example sample_alerts`.

use geofence_alert::{Alert, EventKind};

fn main() {
    let ip = |s: &str| s.parse().ok();
    let mut samples = Vec::new();

    let mut a = Alert {
        timestamp: "2026-11-27T10:41:00.123456Z".into(),
        event: EventKind::Flow,
        action: "block".into(),
        verdict: Some("reject".into()),
        rule: Some("no-conferencing-to-prc".into()),
        app: Some("zoom".into()),
        method: Some("tls-sni".into()),
        server_name: Some("zoomfrn99mmr.zoom.us".into()),
        proto: Some("tcp".into()),
        src_ip: ip("192.0.2.10"),
        src_port: Some(50123),
        dest_ip: ip("203.0.113.10"),
        dest_port: Some(443),
        country: Some("CN".into()),
        jurisdiction: Some("prc".into()),
        enforced_within_us: Some(412),
        flow_id: Some(81234),
        ..Alert::default()
    };
    a.reason = a.explain();
    samples.push(a);

    let mut a = Alert {
        timestamp: "2026-11-27T10:41:02.501877Z".into(),
        event: EventKind::Flow,
        action: "alert".into(),
        rule: Some("conferencing-unplaceable".into()),
        app: Some("teams".into()),
        method: Some("stun".into()),
        evidence: Some("MS-SERVICE-QUALITY attribute".into()),
        proto: Some("udp".into()),
        src_ip: ip("2001:db8:1::20"),
        src_port: Some(50000),
        dest_ip: ip("2001:db8:ffff::7"),
        dest_port: Some(3478),
        jurisdiction: Some("unknown".into()),
        flow_id: Some(81240),
        ..Alert::default()
    };
    a.reason = a.explain();
    samples.push(a);

    let mut a = Alert {
        timestamp: "2026-11-27T10:41:05.000312Z".into(),
        event: EventKind::Dns,
        action: "block".into(),
        verdict: Some("drop".into()),
        rule: Some("no-conferencing-to-adversaries".into()),
        app: Some("telegram".into()),
        method: Some("dns".into()),
        server_name: Some("web.telegram.org".into()),
        src_ip: ip("192.0.2.10"),
        dest_ip: ip("198.51.100.77"),
        country: Some("RU".into()),
        registered_country: Some("GB".into()),
        asn: Some(64501),
        as_org: Some("Example Transit Ltd".into()),
        jurisdiction: Some("russia".into()),
        evidence: Some(
            "DNS answer from 192.0.2.53 (ttl 300s), before any packet to the server".into(),
        ),
        ..Alert::default()
    };
    a.reason = a.explain();
    samples.push(a);

    // Monitor mode (`enforce = false`): the rule says block, nothing is
    // stopped, so there is no verdict.
    let mut a = Alert {
        timestamp: "2026-11-27T10:41:07.250000Z".into(),
        event: EventKind::Flow,
        action: "block".into(),
        rule: Some("no-conferencing-to-prc".into()),
        app: Some("tencent-meeting".into()),
        method: Some("quic-sni".into()),
        server_name: Some("example.meeting.qq.com".into()),
        proto: Some("udp".into()),
        src_ip: ip("192.0.2.33"),
        src_port: Some(61000),
        dest_ip: ip("203.0.113.200"),
        dest_port: Some(443),
        country: Some("CN".into()),
        jurisdiction: Some("prc".into()),
        flow_id: Some(81302),
        ..Alert::default()
    };
    a.reason = format!("monitor mode, not enforced: {}", a.explain());
    samples.push(a);

    samples.push(Alert {
        timestamp: "2026-11-27T10:40:00.000100Z".into(),
        event: EventKind::Daemon,
        action: "allow".into(),
        reason: "geofenced started: 4 rule(s), enforce = true".into(),
        ..Alert::default()
    });
    samples.push(Alert {
        timestamp: "2026-11-27T10:45:31.004211Z".into(),
        event: EventKind::Policy,
        action: "allow".into(),
        reason: "policy reloaded: 4 rule(s)".into(),
        ..Alert::default()
    });
    samples.push(Alert {
        timestamp: "2026-11-27T10:42:10.770001Z".into(),
        event: EventKind::Tamper,
        action: "block".into(),
        reason: "table inet geofence was changed or deleted outside geofenced; restored it with 3 dynamic block(s)".into(),
        ..Alert::default()
    });
    samples.push(Alert {
        timestamp: "2026-11-27T10:43:12.000900Z".into(),
        event: EventKind::Daemon,
        action: "alert".into(),
        evidence: Some("dropped=16".into()),
        reason:
            "alert log: 16 alerts were dropped because /var/log/geofence/alerts.jsonl could not be \
                 written (No space left on device (os error 28)) and the in-memory buffer of 10000 \
                 alerts was full"
                .into(),
        ..Alert::default()
    });

    for mut s in samples {
        // What AlertLog adds with `[alerts] host = "gw-berlin-1"`.
        s.host = Some("gw-berlin-1".into());
        s.severity = Some(s.derived_severity());
        if let (Some(p), Some(src), Some(sp), Some(dst), Some(dp)) = (
            s.proto
                .as_deref()
                .and_then(geofence_alert::transport_number),
            s.src_ip,
            s.src_port,
            s.dest_ip,
            s.dest_port,
        ) {
            s.community_id = geofence_alert::community_id_v1(0, p, src, sp, dst, dp);
        }
        match serde_json::to_string(&s) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("{e}"),
        }
    }
}
