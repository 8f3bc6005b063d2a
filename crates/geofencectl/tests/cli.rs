//! `geofencectl` as an admin runs it: `check`, `replay` and `explain` on
//! files the tests write themselves (a capture, a database, policies).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use geofence_testkit::mmdb::geoip2_country;
use geofence_testkit::pcap::{tcp_v4, udp_v4, udp_v6, PcapLink, PcapWriter, TcpFlags};
use geofence_testkit::wire::{client_hello, dns_query, dns_response};

const BIN: &str = env!("CARGO_BIN_EXE_geofencectl");

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(BIN)
        .args(args)
        .output()
        .expect("geofencectl runs");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn policy(dir: &Path) -> PathBuf {
    geoip2_country(&[
        ("203.0.113.0/24", "CN", None),
        ("198.51.100.0/24", "DE", None),
        ("2001:db8:c::/48", "CN", None),
    ])
    .write(&dir.join("geo.mmdb"))
    .expect("mmdb");
    let p = dir.join("policy.toml");
    std::fs::write(
        &p,
        r#"[geoip]
databases = ["geo.mmdb"]

[signatures]
dirs = []

[jurisdictions]
prc = ["CN"]

[[rule]]
name = "no-conferencing-to-prc"
apps = ["conferencing"]
to = ["prc"]
action = "block"
"#,
    )
    .expect("policy");
    p
}

#[test]
fn check_accepts_every_shipped_config() {
    let mut files = vec![repo().join("config/geofence.toml")];
    for e in std::fs::read_dir(repo().join("config/examples")).expect("examples") {
        files.push(e.expect("entry").path());
    }
    for f in files {
        let (code, out, err) = run(&["check", "--config", &f.to_string_lossy()]);
        assert_eq!(code, 0, "{}: {out}{err}", f.display());
        assert!(out.contains("valid"), "{out}");
    }
}

#[test]
fn check_rejects_broken_config_with_position_and_exit_78() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("bad.toml");
    std::fs::write(
        &p,
        "[geoip]\ndatabases = []\n\n[[rule]]\nname = \"x\"\nto = [\"any\"]\naction = \"blok\"\n",
    )
    .expect("write");
    let (code, _, err) = run(&["check", "--config", &p.to_string_lossy()]);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains(&format!("{}:7:10", p.display())),
        "file:line:col expected: {err}"
    );
    assert!(err.contains("blok"), "{err}");

    std::fs::write(
        &p,
        "[geoip]\ndatabases = []\n[jurisdictions]\nprc = [\"CN\", \"Germany\"]\n",
    )
    .expect("write");
    let (code, _, err) = run(&["check", "--config", &p.to_string_lossy()]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains(":4:14"), "points at the bad code: {err}");
}

/// A capture the test writes: a DNS answer for a Zoom name, then a TCP
/// connection to that address, a Teams TLS connection to DE, a Zoom UDP
/// media flow and an IPv6 DNS exchange.
fn capture(path: &Path) {
    let f = std::fs::File::create(path).expect("pcap");
    let mut w = PcapWriter::new(f, PcapLink::Ethernet).expect("writer");
    let client: Ipv4Addr = "10.1.2.3".parse().expect("ip");
    let resolver: Ipv4Addr = "198.51.100.53".parse().expect("ip");
    let zoom: Ipv4Addr = "203.0.113.10".parse().expect("ip");
    let teams: Ipv4Addr = "198.51.100.7".parse().expect("ip");
    let mut t = 1_700_000_000_000_000_000u64;
    let mut put = |frame: Vec<u8>| {
        t += 1_000_000;
        w.write_packet(t, &frame).expect("write");
    };
    put(udp_v4(
        client,
        40000,
        resolver,
        53,
        &dns_query(0xabcd, "zoom.us", 1),
    ));
    put(udp_v4(
        resolver,
        53,
        client,
        40000,
        &dns_response(0xabcd, "zoom.us", 1, &[zoom.into()], 60, false),
    ));
    put(tcp_v4(client, 50000, zoom, 443, 1, TcpFlags::SYN, &[]));
    put(tcp_v4(zoom, 443, client, 50000, 9, TcpFlags::SYN_ACK, &[]));
    put(tcp_v4(client, 50001, teams, 443, 1, TcpFlags::SYN, &[]));
    put(tcp_v4(teams, 443, client, 50001, 9, TcpFlags::SYN_ACK, &[]));
    put(tcp_v4(
        client,
        50001,
        teams,
        443,
        2,
        TcpFlags::ACK,
        &client_hello("teams.microsoft.com"),
    ));
    let mut sfu = vec![0x01, 0x00, 0x03];
    sfu.extend_from_slice(&[0; 40]);
    put(udp_v4(
        client,
        52000,
        "203.0.113.99".parse().expect("ip"),
        8801,
        &sfu,
    ));
    let c6: Ipv6Addr = "2001:db8:1::2".parse().expect("ip");
    let r6: Ipv6Addr = "2001:db8:1::53".parse().expect("ip");
    put(udp_v6(c6, 40001, r6, 53, &dns_query(0xabcd, "zoom.us", 28)));
    put(udp_v6(
        r6,
        53,
        c6,
        40001,
        &dns_response(
            0xabcd,
            "zoom.us",
            28,
            &["2001:db8:c::10".parse().expect("ip")],
            60,
            false,
        ),
    ));
}

#[test]
fn replay_prints_one_record_per_flow_and_decides() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = policy(dir.path());
    let cap = dir.path().join("small.pcap");
    capture(&cap);
    let (code, out, err) = run(&[
        "replay",
        "--config",
        &p.to_string_lossy(),
        "--json",
        &cap.to_string_lossy(),
    ]);
    assert_eq!(code, 0, "{err}");
    let recs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(recs.len(), 5, "{out}");
    for r in &recs {
        for k in [
            "pcap",
            "proto",
            "src_ip",
            "src_port",
            "dest_ip",
            "dest_port",
            "app",
            "method",
            "host",
            "country",
            "registered_country",
            "asn",
            "jurisdiction",
            "action",
            "rule",
            "packets",
            "bytes",
        ] {
            assert!(r.get(k).is_some(), "field {k} missing in {r}");
        }
        assert_eq!(r["pcap"], "small.pcap");
    }
    let find = |port: u64| recs.iter().find(|r| r["dest_port"] == port).expect("flow");
    let dns = find(53);
    assert!(dns["app"].is_null(), "a DNS flow is never labelled: {dns}");
    let z = find(443);
    let z = if z["dest_ip"] == "203.0.113.10" {
        z
    } else {
        recs.iter()
            .find(|r| r["dest_ip"] == "203.0.113.10")
            .expect("zoom")
    };
    assert_eq!(z["app"], "zoom");
    assert_eq!(z["method"], "dns");
    assert_eq!(z["host"], "zoom.us");
    assert_eq!(z["country"], "CN");
    assert_eq!(z["jurisdiction"], "prc");
    assert_eq!(z["action"], "block");
    assert_eq!(z["rule"], "no-conferencing-to-prc");
    assert_eq!(z["src_ip"], "10.1.2.3", "initiator from the SYN");
    let t = recs
        .iter()
        .find(|r| r["dest_ip"] == "198.51.100.7")
        .expect("teams");
    assert_eq!(t["app"], "teams");
    assert_eq!(t["method"], "tls-sni");
    assert_eq!(t["host"], "teams.microsoft.com");
    assert_eq!(t["action"], "allow", "DE is allowed");
    let m = find(8801);
    assert_eq!(m["app"], "zoom");
    assert_eq!(m["method"], "payload");
    assert_eq!(m["action"], "block");

    // Plain output is a table with a header.
    let (code, out, _) = run(&[
        "replay",
        "--config",
        &p.to_string_lossy(),
        &cap.to_string_lossy(),
    ]);
    assert_eq!(code, 0);
    assert!(out.starts_with("proto"), "{out}");
    assert!(out.contains("zoom.us"));

    // A missing capture is an error naming the file, exit 65.
    let (code, _, err) = run(&[
        "replay",
        "--config",
        &p.to_string_lossy(),
        "/nonexistent.pcap",
    ]);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("/nonexistent.pcap"), "{err}");
}

#[test]
fn explain_answers_for_ipv4_and_ipv6() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = policy(dir.path());
    let (code, out, err) = run(&[
        "explain",
        "--config",
        &p.to_string_lossy(),
        "203.0.113.10",
        "--host",
        "zoom.us",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("location CN"), "{out}");
    assert!(out.contains("by location: prc"), "{out}");
    assert!(out.contains("app          zoom"), "{out}");
    assert!(out.contains("no-conferencing-to-prc"), "{out}");
    assert!(out.to_lowercase().contains("block"), "{out}");

    let (code, out, _) = run(&[
        "explain",
        "--config",
        &p.to_string_lossy(),
        "2001:db8:c::1",
        "--app",
        "teams",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("location CN"), "{out}");
    assert!(out.contains("block"), "{out}");

    let (code, out, _) = run(&[
        "explain",
        "--config",
        &p.to_string_lossy(),
        "198.51.100.7",
        "--host",
        "zoom.us",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("location DE"), "{out}");
    assert!(out.contains("allow"), "{out}");

    // Private addresses are never in a foreign jurisdiction.
    let (_, out, _) = run(&[
        "explain",
        "--config",
        &p.to_string_lossy(),
        "10.0.0.1",
        "--host",
        "zoom.us",
    ]);
    assert!(out.contains("by location: none"), "{out}");
}

#[test]
fn explain_against_the_real_database() {
    let shared = repo().join("../shared/geo/geo-whois-asn-country.mmdb");
    if !shared.exists() {
        geofence_testkit::skip("../shared/geo/geo-whois-asn-country.mmdb not present");
        return;
    }
    let cfg = repo().join("config/geofence.toml");
    for addr in ["114.114.114.114", "240e::1"] {
        let (code, out, err) = run(&[
            "explain",
            "--config",
            &cfg.to_string_lossy(),
            "--geoip",
            &shared.to_string_lossy(),
            addr,
            "--host",
            "zoom.us",
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("location CN"), "{addr}: {out}");
        assert!(out.contains("block"), "{addr}: {out}");
    }
}

#[test]
fn check_db_accepts_a_database_and_refuses_a_corrupt_one_with_exit_65() {
    let dir = std::env::temp_dir().join(format!("gfctl-checkdb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let good = dir.join("good.mmdb");
    geoip2_country(&[("203.0.113.0/24", "CN", None)])
        .write(&good)
        .expect("mmdb");
    let (code, out, err) = run(&["check-db", &good.to_string_lossy()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("accepted"), "{out}");
    // The MaxMind metadata marker survives, the search tree does not: what
    // a size-and-marker check lets through.
    let mut bytes = std::fs::read(&good).expect("read");
    for b in bytes.iter_mut().take(64) {
        *b = 0xff;
    }
    let bad = dir.join("bad.mmdb");
    std::fs::write(&bad, &bytes).expect("write");
    let (code, _, err) = run(&["check-db", &bad.to_string_lossy()]);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("bad.mmdb"), "names the file: {err}");
    let (code, _, err) = run(&["check-db", &dir.join("missing.mmdb").to_string_lossy()]);
    assert_eq!(code, 65, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reload_without_a_daemon_fails_with_the_reason() {
    let dir = std::env::temp_dir().join(format!("gfctl-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let p = policy(&dir);
    let sock = dir.join("control.sock");
    let (code, _, err) = run(&[
        "reload",
        "--config",
        &p.to_string_lossy(),
        "--socket",
        &sock.to_string_lossy(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot reach geofenced"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unblock_sends_its_request_and_reports_the_count_or_the_failure() {
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir().expect("tmp");
    let p = policy(dir.path());
    let sock = dir.path().join("control.sock");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["unblock".into(), "203.0.113.7".into()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend([
            "--config".into(),
            p.to_string_lossy().into(),
            "--socket".into(),
            sock.to_string_lossy().into(),
        ]);
        v
    };
    // No daemon: non-zero, with the reason.
    let a = args(&["--client", "192.0.2.10"]);
    let (code, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot reach geofenced"), "{err}");
    // A daemon stand-in: answers the first request with a count, the
    // second with a refusal; records what it was asked.
    let l = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let server = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for answer in ["ok 2\n", "error enforcement queue full\n"] {
            let (s, _) = l.accept().expect("accept");
            let mut line = String::new();
            std::io::BufReader::new(&s)
                .read_line(&mut line)
                .expect("read");
            seen.push(line);
            (&s).write_all(answer.as_bytes()).expect("write");
        }
        seen
    });
    let (code, out, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("removed 2 dynamic block(s) to 203.0.113.7 for client 192.0.2.10"),
        "{out}"
    );
    let b = args(&[]);
    let (code, _, err) = run(&b.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 1);
    assert!(err.contains("enforcement queue full"), "{err}");
    let seen = server.join().expect("server");
    assert_eq!(
        seen,
        ["unblock 203.0.113.7 192.0.2.10\n", "unblock 203.0.113.7\n"]
    );
    // Not an address: refused by the parser.
    let (code, _, _) = run(&["unblock", "example.com"]);
    assert_eq!(code, 2);
}

#[test]
fn check_takes_the_file_as_written_in_the_docs_and_as_json() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = policy(dir.path());
    let ps = p.to_string_lossy().to_string();
    // `geofencectl check FILE`, as config/geofence.toml's header says.
    let (code, out, err) = run(&["check", &ps]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("valid: 1 jurisdiction(s), 1 rule(s)"), "{out}");
    let (code, out2, _) = run(&["check", "--config", &ps]);
    assert_eq!((code, out2), (0, out));
    let (code, _, err) = run(&["check", &ps, "--config", &ps]);
    assert_eq!(code, 2, "FILE and --config together are refused: {err}");

    let (code, out, _) = run(&["check", "--json", "--databases", &ps]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(v["valid"], true);
    assert_eq!(v["rules"], 1);
    assert_eq!(v["databases"].as_array().map(|a| a.len()), Some(1));
    assert!(v["databases"][0]["age_days"].is_u64(), "{v}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[geoip]\ndatabases = []\n[jurisdictions]\nprc = [\"CN\", \"Germany\"]\n",
    )
    .expect("write");
    let (code, out, err) = run(&["check", "--json", &bad.to_string_lossy()]);
    assert_eq!(code, 78, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON error object");
    assert_eq!(v["valid"], false);
    assert_eq!(
        (
            v["position"]["line"].as_u64(),
            v["position"]["col"].as_u64()
        ),
        (Some(4), Some(14))
    );
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("Germany")),
        "{v}"
    );
}

#[test]
fn a_corrupt_database_error_says_its_message_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = policy(dir.path());
    // Cut the database in half: metadata gone.
    let db = dir.path().join("geo.mmdb");
    let bytes = std::fs::read(&db).expect("read");
    std::fs::write(&db, &bytes[..bytes.len() / 2]).expect("cut");
    for args in [
        vec!["check", "--databases"],
        vec!["explain", "203.0.113.10", "--config"],
    ] {
        let mut args: Vec<String> = args.into_iter().map(String::from).collect();
        args.push(p.to_string_lossy().to_string());
        let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let (code, _, err) = run(&refs);
        assert_eq!(code, 65, "{err}");
        let first = err.lines().next().unwrap_or_default();
        let tail = first.rsplit(": ").next().unwrap_or_default();
        assert!(!tail.is_empty(), "{err}");
        assert_eq!(err.matches(tail).count(), 1, "repeated message: {err}");
    }
}

#[test]
fn explain_ends_with_a_newline_and_speaks_json() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = policy(dir.path());
    let ps = p.to_string_lossy().to_string();
    let (code, out, err) = run(&["explain", "--config", &ps, "203.0.113.10", "--app", "zoom"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with('\n') && !out.ends_with("\n\n"), "{out:?}");
    let (code, out, err) = run(&[
        "explain",
        "--config",
        &ps,
        "203.0.113.10",
        "--app",
        "zoom",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["country"], "CN");
    assert_eq!(v["app"], "zoom");
    assert_eq!(v["decision"]["decision"]["action"], "block", "{v}");
    assert_eq!(v["jurisdictions_by_location"][0], "prc");
}

#[test]
fn apps_json_lists_every_signature() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = policy(dir.path());
    let ps = p.to_string_lossy().to_string();
    let (_, text, _) = run(&["apps", "--config", &ps]);
    let (code, out, err) = run(&["apps", "--config", &ps, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let list = v.as_array().expect("array");
    assert_eq!(list.len(), text.lines().count());
    assert!(list
        .iter()
        .any(|a| a["id"] == "zoom" && a["group"] == "conferencing"));
}

#[test]
fn status_takes_config_and_json() {
    // Parsing only (reading the kernel needs root and a table): clap must
    // accept the options the other subcommands take.
    let (code, out, err) = run(&["status", "--help"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("--config") && out.contains("--json"), "{out}");
}

const ALERTS: &str = concat!(
    r#"{"timestamp":"2026-11-27T10:41:00.123456Z","event_type":"flow","host":"gw-1","severity":1,"action":"block","verdict":"reject","app":"zoom","jurisdiction":"prc","reason":"blocked (rejected): zoom to 203.0.113.10"}"#,
    "\n",
    r#"{"timestamp":"2026-11-27T10:41:01.000000Z","event_type":"flow","severity":2,"action":"alert","app":"teams","jurisdiction":"unknown","reason":"alert, not blocked: teams to 198.51.100.7"}"#,
    "\n",
    r#"{"timestamp":"2026-11-27T10:41:02.000000Z","event_type":"daemon","severity":3,"action":"allow","reason":"geofenced started\u001b[2J"}"#,
    "\n",
    "garbage line\n",
);

#[test]
fn tail_renders_filters_and_never_passes_escapes() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("alerts.jsonl");
    std::fs::write(&f, ALERTS).expect("write");
    let fs = f.to_string_lossy().to_string();
    let (code, out, err) = run(&["tail", "--file", &fs]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("2026-11-27 10:41:00 BLOCK "), "{out}");
    assert!(
        lines[1].contains("ALERT") && lines[2].contains("INFO"),
        "{out}"
    );
    assert!(
        !out.contains('\x1b'),
        "no colour on a pipe, no escapes: {out:?}"
    );
    let (_, out, _) = run(&["tail", "--file", &fs, "-n", "2"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.starts_with("2026-11-27 10:41:02"),
        "the last two: {out}"
    );
    for (flag, val, want) in [
        ("--app", "zoom", "zoom to 203.0.113.10"),
        ("--jurisdiction", "unknown", "teams"),
        ("--action", "allow", "geofenced started"),
    ] {
        let (code, out, err) = run(&["tail", "--file", &fs, flag, val]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.lines().count(), 1, "{flag} {val}: {out}");
        assert!(out.contains(want), "{flag} {val}: {out}");
    }
}

#[test]
fn tail_follow_crosses_logrotate() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("alerts.jsonl");
    std::fs::write(
        &f,
        "{\"timestamp\":\"2026-11-27T10:40:00.000000Z\",\"event_type\":\"daemon\",\"action\":\"allow\",\"reason\":\"ready\"}\n",
    )
    .expect("create");
    // `-n 1` shows the line above: once it is out, the child is following.
    let mut child = Command::new(BIN)
        .args(["tail", "-f", "-n", "1", "--file", &f.to_string_lossy()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let line = |reason: &str| {
        format!(
            "{{\"timestamp\":\"2026-11-27T10:41:00.000000Z\",\"event_type\":\"flow\",\"action\":\"alert\",\"reason\":\"{reason}\"}}\n"
        )
    };
    let append = |p: &Path, s: &str| {
        let mut h = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(p)
            .expect("open");
        h.write_all(s.as_bytes()).expect("append");
    };
    let wait = |want: &str| -> Result<(), String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(want) => return Ok(()),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Err(format!("`{want}` never shown"))
    };
    let result = (|| {
        wait("ready")?;
        append(&f, &line("first"));
        wait("first")?;
        // logrotate: rename, then the daemon writes a last line to the old
        // file and the next ones to a new file.
        std::fs::rename(&f, dir.path().join("alerts.jsonl.1")).map_err(|e| e.to_string())?;
        append(
            &dir.path().join("alerts.jsonl.1"),
            &line("late in the old file"),
        );
        append(&f, &line("in the new file"));
        wait("late in the old file")?;
        wait("in the new file")?;
        Ok::<(), String>(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    result.expect("follow");
}

#[test]
fn generated_man_pages_and_completions_cover_every_subcommand() {
    let dir = tempfile::tempdir().expect("tmp");
    let man = dir.path().join("man");
    let (code, _, err) = run(&["generate", "man", &man.to_string_lossy()]);
    assert_eq!(code, 0, "{err}");
    for sub in [
        "check", "explain", "status", "tail", "replay", "apps", "flush", "reload", "unblock",
    ] {
        let page = std::fs::read_to_string(man.join(format!("geofencectl-{sub}.1")))
            .unwrap_or_else(|e| panic!("{sub}: {e}"));
        assert!(
            page.starts_with(".ie") || page.contains(".TH"),
            "{sub}: roff"
        );
        assert!(
            page.contains(&format!("geofencectl\\-{sub}")),
            "{sub}: name"
        );
    }
    let top = std::fs::read_to_string(man.join("geofencectl.1")).expect("geofencectl.1");
    assert!(
        top.contains("tail") && !top.contains("generate"),
        "hidden stays hidden"
    );
    let comp = dir.path().join("comp");
    let (code, _, err) = run(&["generate", "completions", &comp.to_string_lossy()]);
    assert_eq!(code, 0, "{err}");
    let bash = std::fs::read_to_string(comp.join("geofencectl.bash")).expect("bash");
    assert!(
        bash.contains("--jurisdiction") && bash.contains("check"),
        "bash completion"
    );
    assert!(comp.join("_geofencectl").is_file() && comp.join("geofencectl.fish").is_file());
}
