//! The shipped Vector configuration (config/siem/vector.toml) reads the alert
//! file the daemon writes and maps every alert field. Vector itself is not
//! installable from Debian, crates.io, PyPI or npm, so `vector validate`
//! cannot run in CI; this test parses the file as TOML and checks the
//! field names its VRL program reads against the real alert format.

use std::collections::BTreeSet;

use geofence_alert::{Alert, EventKind};

fn config() -> toml::Table {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/siem/vector.toml");
    let text = std::fs::read_to_string(path).expect("config/siem/vector.toml");
    text.parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("config/siem/vector.toml is not valid TOML: {e}"))
}

/// Every key an alert line can carry.
fn wire_fields() -> BTreeSet<String> {
    let full = Alert {
        timestamp: "t".into(),
        event: EventKind::Flow,
        host: Some("h".into()),
        severity: Some(1),
        action: "block".into(),
        verdict: Some("drop".into()),
        rule: Some("r".into()),
        app: Some("a".into()),
        method: Some("m".into()),
        server_name: Some("s".into()),
        proto: Some("tcp".into()),
        src_ip: "192.0.2.1".parse().ok(),
        src_port: Some(1),
        dest_ip: "203.0.113.1".parse().ok(),
        dest_port: Some(2),
        country: Some("CN".into()),
        registered_country: Some("HK".into()),
        asn: Some(1),
        as_org: Some("o".into()),
        jurisdiction: Some("j".into()),
        evidence: Some("e".into()),
        reason: "r".into(),
        enforced_within_us: Some(1),
        flow_id: Some(1),
        community_id: Some("1:x".into()),
        pcap_ts: Some("t".into()),
        repeats: Some(1),
    };
    match serde_json::to_value(&full).expect("json") {
        serde_json::Value::Object(m) => m.keys().cloned().collect(),
        other => panic!("not an object: {other}"),
    }
}

/// `g.NAME` references in the VRL program.
fn vrl_reads(src: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = src.as_bytes();
    let mut i = 0;
    while let Some(p) = src[i..].find("g.") {
        let at = i + p;
        let boundary = at == 0 || !(b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_');
        let name: String = src[at + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if boundary && !name.is_empty() {
            out.insert(name);
        }
        i = at + 2;
    }
    out
}

#[test]
fn vector_config_reads_the_daemon_alert_file_and_maps_every_field() {
    let cfg = config();
    let include = cfg["sources"]["geofence_alerts"]["include"]
        .as_array()
        .expect("include list");
    let default_log = geofence_policy::DaemonConfig::default().alert_log;
    assert!(
        include.iter().any(|p| p.as_str() == default_log.to_str()),
        "the file source must read {}",
        default_log.display()
    );
    let remap = &cfg["transforms"]["geofence_ecs"];
    assert_eq!(remap["type"].as_str(), Some("remap"));
    assert_eq!(
        remap["inputs"].as_array().map(|a| a.len()),
        Some(1),
        "remap reads the file source"
    );
    let sink_inputs = cfg["sinks"]["siem"]["inputs"].as_array().expect("inputs");
    assert_eq!(sink_inputs[0].as_str(), Some("geofence_ecs"));

    let reads = vrl_reads(remap["source"].as_str().expect("VRL source"));
    let fields = wire_fields();
    let unknown: Vec<_> = reads.difference(&fields).collect();
    assert!(
        unknown.is_empty(),
        "VRL reads fields alerts never carry: {unknown:?}"
    );
    let unmapped: Vec<_> = fields.difference(&reads).collect();
    assert!(
        unmapped.is_empty(),
        "alert fields the VRL drops: {unmapped:?}"
    );
}

#[test]
fn the_field_scanner_sees_what_it_should() {
    let r = vrl_reads(".a = g.src_ip\n.b = string!(g.event_type) + lg.x\n");
    assert_eq!(r.into_iter().collect::<Vec<_>>(), ["event_type", "src_ip"]);
}
