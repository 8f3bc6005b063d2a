//! Suppression of repeated identical alerts, so a client that retries a
//! blocked destination every second produces one line and a summary, not
//! thousands of lines.

use crate::alert::{Alert, EventKind};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    event: EventKind,
    action: String,
    verdict: Option<String>,
    rule: Option<String>,
    app: Option<String>,
    src_ip: Option<IpAddr>,
    dest_ip: Option<IpAddr>,
    server_name: Option<String>,
}

impl Key {
    fn of(a: &Alert) -> Key {
        Key {
            event: a.event,
            action: a.action.clone(),
            verdict: a.verdict.clone(),
            rule: a.rule.clone(),
            app: a.app.clone(),
            src_ip: a.src_ip,
            dest_ip: a.dest_ip,
            server_name: a.server_name.clone(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    since: Instant,
    suppressed: u64,
    /// The latest suppressed alert, reported in the summary.
    last: Option<Alert>,
}

/// Counters of an [`AlertThrottle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThrottleStats {
    pub passed: u64,
    pub suppressed: u64,
    pub summaries: u64,
    /// Alerts passed unthrottled because the key table was full.
    pub overflow: u64,
}

/// Lets the first alert of a kind through, suppresses identical ones for
/// `window`, then emits one summary line with `repeats = N`.
///
/// Identical means same event, action, verdict, rule, app, source address,
/// destination address and host (ports are ignored: retries use new source
/// ports). `daemon` events are never suppressed. When the key table is full,
/// alerts pass unthrottled: losing visibility is worse than noise.
#[derive(Debug)]
pub struct AlertThrottle {
    window: Duration,
    max_keys: usize,
    map: HashMap<Key, Entry>,
    stats: ThrottleStats,
}

impl AlertThrottle {
    pub fn new(window: Duration, max_keys: usize) -> AlertThrottle {
        AlertThrottle {
            window,
            max_keys,
            map: HashMap::new(),
            stats: ThrottleStats::default(),
        }
    }

    /// Offers one alert at time `now`. Alerts to write are appended to
    /// `out`: the alert itself if it is the first of its kind in the window,
    /// preceded by the summary of the previous window if that one expired
    /// with suppressed repeats.
    pub fn admit(&mut self, a: Alert, now: Instant, out: &mut Vec<Alert>) {
        // Only per-flow decisions repeat; administrative events (daemon,
        // policy, tamper, database) are always written.
        if !matches!(a.event, EventKind::Flow | EventKind::Dns) {
            self.stats.passed += 1;
            out.push(a);
            return;
        }
        let key = Key::of(&a);
        if let Some(e) = self.map.get_mut(&key) {
            if now.saturating_duration_since(e.since) < self.window {
                e.suppressed += 1;
                e.last = Some(a);
                self.stats.suppressed += 1;
                return;
            }
            if let Some(summary) = summarize(e, self.window) {
                self.stats.summaries += 1;
                out.push(summary);
            }
            e.since = now;
            e.suppressed = 0;
            e.last = None;
            self.stats.passed += 1;
            out.push(a);
            return;
        }
        if self.map.len() >= self.max_keys {
            self.stats.overflow += 1;
            self.stats.passed += 1;
            out.push(a);
            return;
        }
        self.map.insert(
            key,
            Entry {
                since: now,
                suppressed: 0,
                last: None,
            },
        );
        self.stats.passed += 1;
        out.push(a);
    }

    /// Ends every window older than `window` at `now`, appending summaries
    /// for those with suppressed repeats. Call about once a second.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<Alert>) {
        let window = self.window;
        let mut summaries = 0;
        self.map.retain(|_, e| {
            if now.saturating_duration_since(e.since) < window {
                return true;
            }
            if let Some(s) = summarize(e, window) {
                summaries += 1;
                out.push(s);
            }
            false
        });
        self.stats.summaries += summaries;
    }

    /// Summaries for everything still open (at shutdown).
    pub fn drain(&mut self, out: &mut Vec<Alert>) {
        let window = self.window;
        for (_, mut e) in self.map.drain() {
            if let Some(s) = summarize(&mut e, window) {
                self.stats.summaries += 1;
                out.push(s);
            }
        }
    }

    pub fn stats(&self) -> ThrottleStats {
        self.stats
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

fn summarize(e: &mut Entry, window: Duration) -> Option<Alert> {
    if e.suppressed == 0 {
        return None;
    }
    let mut s = e.last.take()?;
    s.repeats = Some(e.suppressed);
    s.reason = format!(
        "{} (repeated {} more times within {} s; identical alerts suppressed)",
        s.reason,
        e.suppressed,
        window.as_secs()
    );
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(src: &str, seq: u64) -> Alert {
        Alert {
            timestamp: format!("t{seq}"),
            event: EventKind::Flow,
            action: "block".into(),
            verdict: Some("drop".into()),
            rule: Some("r".into()),
            app: Some("zoom".into()),
            src_ip: src.parse().ok(),
            src_port: Some(40000 + seq as u16),
            dest_ip: "203.0.113.10".parse().ok(),
            reason: "blocked: zoom".into(),
            flow_id: Some(seq),
            ..Alert::default()
        }
    }

    #[test]
    fn first_passes_repeats_are_summarised_after_the_window() {
        let t0 = Instant::now();
        let w = Duration::from_secs(60);
        let mut th = AlertThrottle::new(w, 100);
        let mut out = Vec::new();
        for i in 0..50 {
            th.admit(
                blocked("192.0.2.1", i),
                t0 + Duration::from_secs(i),
                &mut out,
            );
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].flow_id, Some(0));
        th.expire(t0 + Duration::from_secs(59), &mut out);
        assert_eq!(out.len(), 1, "window not over yet");
        th.expire(t0 + Duration::from_secs(60), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].repeats, Some(49));
        assert_eq!(
            out[1].flow_id,
            Some(49),
            "summary carries the latest repeat"
        );
        assert!(out[1]
            .reason
            .ends_with("(repeated 49 more times within 60 s; identical alerts suppressed)"));
        assert!(th.is_empty());
        // A new window starts with a fresh first alert.
        th.admit(
            blocked("192.0.2.1", 100),
            t0 + Duration::from_secs(61),
            &mut out,
        );
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].repeats, None);
        assert_eq!(
            th.stats(),
            ThrottleStats {
                passed: 2,
                suppressed: 49,
                summaries: 1,
                overflow: 0
            }
        );
    }

    #[test]
    fn different_sources_and_daemon_events_are_not_merged() {
        let t0 = Instant::now();
        let mut th = AlertThrottle::new(Duration::from_secs(60), 100);
        let mut out = Vec::new();
        th.admit(blocked("192.0.2.1", 0), t0, &mut out);
        th.admit(blocked("192.0.2.2", 1), t0, &mut out);
        let mut alert_only = blocked("192.0.2.1", 2);
        alert_only.action = "alert".into();
        alert_only.verdict = None;
        th.admit(alert_only, t0, &mut out);
        for _ in 0..3 {
            th.admit(Alert::new(EventKind::Daemon, "alert", "lost"), t0, &mut out);
        }
        assert_eq!(out.len(), 6);
    }

    #[test]
    fn expired_entry_met_by_admit_emits_summary_before_new_alert() {
        let t0 = Instant::now();
        let mut th = AlertThrottle::new(Duration::from_secs(10), 100);
        let mut out = Vec::new();
        th.admit(blocked("192.0.2.1", 0), t0, &mut out);
        th.admit(
            blocked("192.0.2.1", 1),
            t0 + Duration::from_secs(1),
            &mut out,
        );
        th.admit(
            blocked("192.0.2.1", 2),
            t0 + Duration::from_secs(11),
            &mut out,
        );
        let got: Vec<(Option<u64>, Option<u64>)> =
            out.iter().map(|a| (a.flow_id, a.repeats)).collect();
        assert_eq!(got, [(Some(0), None), (Some(1), Some(1)), (Some(2), None)]);
    }

    #[test]
    fn full_table_passes_alerts_through_and_drain_flushes() {
        let t0 = Instant::now();
        let mut th = AlertThrottle::new(Duration::from_secs(60), 2);
        let mut out = Vec::new();
        th.admit(blocked("192.0.2.1", 0), t0, &mut out);
        th.admit(blocked("192.0.2.1", 1), t0, &mut out);
        th.admit(blocked("192.0.2.2", 2), t0, &mut out);
        th.admit(blocked("192.0.2.3", 3), t0, &mut out);
        th.admit(blocked("192.0.2.3", 4), t0, &mut out);
        assert_eq!(out.len(), 4, "third key is over the limit: both pass");
        assert_eq!(th.stats().overflow, 2);
        assert_eq!(th.len(), 2);
        th.drain(&mut out);
        assert_eq!(out.len(), 5);
        assert_eq!(out[4].repeats, Some(1));
    }
}
