//! Measures AlertLog::write cost: `cargo run --release -p geofence-alert
//! --example alert_throughput -- [DIR] [N]`.

use geofence_alert::{Alert, AlertLog, EventKind};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .unwrap_or_else(|| std::env::temp_dir().display().to_string());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let path =
        std::path::Path::new(&dir).join(format!("alert-throughput-{}.jsonl", std::process::id()));
    let mut log = match AlertLog::open(&path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let mut a = Alert {
        event: EventKind::Flow,
        action: "block".into(),
        verdict: Some("drop".into()),
        rule: Some("no-conferencing-to-prc".into()),
        app: Some("zoom".into()),
        method: Some("tls-sni".into()),
        server_name: Some("zoomfrn99mmr.zoom.us".into()),
        proto: Some("tcp".into()),
        src_ip: "192.0.2.10".parse().ok(),
        src_port: Some(50123),
        dest_ip: "203.0.113.10".parse().ok(),
        dest_port: Some(443),
        country: Some("CN".into()),
        jurisdiction: Some("prc".into()),
        ..Alert::default()
    };
    a.reason = a.explain();
    let t = Instant::now();
    for i in 0..n {
        a.flow_id = Some(i);
        a.timestamp = geofence_alert::now_rfc3339();
        log.write(&a);
    }
    let el = t.elapsed();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "{n} alerts in {:.3} s: {:.2} us/alert, {:.0} alerts/s, {} bytes/line, stats {:?}",
        el.as_secs_f64(),
        el.as_secs_f64() * 1e6 / n as f64,
        n as f64 / el.as_secs_f64(),
        size / n.max(1),
        log.stats()
    );
    let _ = std::fs::remove_file(&path);

    // The enforcement path's cost: a non-blocking send to the writer thread.
    let log = match AlertLog::open(&path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let (tx, writer) = match geofence_alert::spawn_writer(log, 65_536) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let t = Instant::now();
    let mut refused = 0u64;
    for i in 0..n {
        a.flow_id = Some(i);
        if !tx.send(a.clone()) {
            refused += 1;
        }
    }
    let el = t.elapsed();
    writer.shutdown();
    println!(
        "send(): {n} alerts in {:.3} s: {:.2} us/send (clone included), {refused} refused by a full queue, file stats {:?}",
        el.as_secs_f64(),
        el.as_secs_f64() * 1e6 / n as f64,
        tx.stats()
    );
    let _ = std::fs::remove_file(&path);
}
