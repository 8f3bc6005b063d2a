//! The alert record: one flat JSON object per line.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// What an alert is about. Serialised lower-case (`"flow"`, `"dns"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A decision about one flow (the common case).
    #[default]
    Flow,
    /// A DNS answer that mapped a watched name to an address.
    Dns,
    /// The policy was loaded, reloaded or rejected.
    Policy,
    /// The enforcement table was changed or removed by someone else.
    Tamper,
    /// The geo database was loaded, refreshed, or failed to load.
    Database,
    /// The daemon itself: start, stop, lost alerts, degraded mode.
    Daemon,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Flow => "flow",
            EventKind::Dns => "dns",
            EventKind::Policy => "policy",
            EventKind::Tamper => "tamper",
            EventKind::Database => "database",
            EventKind::Daemon => "daemon",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert line. Field names are a stable interface (documented in
/// `docs/alerts.md`); absent values are omitted, never written as `null`.
///
/// `action` is the policy's decision (`block`, `alert`, `allow`); `verdict` is
/// what the kernel does to the packets (`drop`, `reject`) and is only present
/// when traffic is actually stopped, so a reader never has to guess whether
/// "alert" meant the traffic went through.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Alert {
    /// RFC 3339 UTC with microseconds, e.g. `2026-11-27T10:41:00.123456Z`.
    /// [`crate::AlertLog::write`] fills it in when it is empty.
    pub timestamp: String,
    /// What the line is about; written as `event_type`, the key Suricata EVE
    /// readers (Wazuh, Elastic's Suricata module, Splunk TA) dispatch on.
    #[serde(rename = "event_type")]
    pub event: EventKind,
    /// The gateway that wrote the line (EVE's sensor `host`): `[alerts]
    /// host` in the policy, else the machine's host name. [`crate::AlertLog`]
    /// fills it in from its options when it is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// 1 (high: traffic stopped, enforcement tampered with), 2 (medium:
    /// alert only, monitor mode, lost alerts, rejected reload), 3 (info).
    /// Same scale as EVE's `alert.severity`; [`crate::AlertLog`] derives it
    /// with [`Alert::derived_severity`] when it is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<u8>,
    /// `block`, `alert` or `allow`.
    pub action: String,
    /// `drop` or `reject` when the kernel stops the traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// Name of the policy rule that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// App id, e.g. `zoom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// How the app was recognised: `dns`, `tls-sni`, `quic-sni`, `stun`,
    /// `payload`, `ip-range`, `asn`, `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Server name seen on the wire (TLS/QUIC SNI, DNS question).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Transport: `tcp`, `udp`, `icmp`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_port: Option<u16>,
    /// ISO 3166-1 alpha-2 country where the destination is located.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Country where the destination's network is registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_org: Option<String>,
    /// The policy jurisdiction the country belongs to, e.g. `prc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
    /// The concrete observation behind `method`, e.g. the STUN attribute or
    /// payload bytes, or counters for daemon events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// One sentence a person reads; see [`Alert::explain`].
    pub reason: String,
    /// Microseconds from the first packet of the flow to the block being in
    /// the kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforced_within_us: Option<u64>,
    /// Flow number, to group alerts of one flow: a hash of the flow and a
    /// random per-start salt, below 2^53 (exact in JSON doubles), so values
    /// from different daemon runs do not collide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<u64>,
    /// Community ID v1 of the flow (TCP/UDP/SCTP), see
    /// [`crate::community_id_v1`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub community_id: Option<String>,
    /// Replay mode only: capture time of the packet that decided, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcap_ts: Option<String>,
    /// Summary lines from [`crate::AlertThrottle`]: how many identical alerts
    /// (same event, action, verdict, rule, app, source and destination) were
    /// suppressed since the first one was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<u64>,
}

impl Alert {
    /// An alert stamped with the current time; other fields empty.
    pub fn new(event: EventKind, action: impl Into<String>, reason: impl Into<String>) -> Alert {
        Alert {
            timestamp: crate::time::now_rfc3339(),
            event,
            action: action.into(),
            reason: reason.into(),
            ..Alert::default()
        }
    }

    /// The severity of this line when none was set: 1 when traffic was
    /// stopped (a `verdict`) or enforcement was tampered with, 2 for alerts
    /// (log only, monitor mode, lost alerts, rejected reloads), 3 for
    /// informational lines (`allow`).
    pub fn derived_severity(&self) -> u8 {
        if self.verdict.is_some() || self.event == EventKind::Tamper {
            1
        } else if self.action == "allow" {
            3
        } else {
            2
        }
    }

    /// Builds the one-sentence `reason` from the other fields, e.g.
    /// `blocked: zoom (TLS SNI zoomfrn99mmr.zoom.us) to 203.0.113.10, located
    /// in CN (jurisdiction prc), by rule no-conferencing-to-prc`.
    ///
    /// Missing parts are left out; the sentence never invents facts.
    pub fn explain(&self) -> String {
        let mut s = String::with_capacity(160);
        let verb = match self.action.as_str() {
            "block" => match self.verdict.as_deref() {
                Some("reject") => "blocked (rejected)",
                _ => "blocked",
            },
            "alert" => "alert, not blocked",
            "allow" => "allowed",
            other => other,
        };
        s.push_str(verb);
        s.push(':');
        match &self.app {
            Some(app) => {
                s.push(' ');
                s.push_str(app);
            }
            None if self.event == EventKind::Flow => s.push_str(" traffic"),
            None => {
                s.push(' ');
                s.push_str(self.event.as_str());
                s.push_str(" event");
            }
        }
        let how = self.method.as_deref().map(method_label);
        match (how, self.server_name.as_deref(), self.evidence.as_deref()) {
            (Some(how), Some(host), _) => s.push_str(&format!(" ({how} {host})")),
            (Some(how), None, Some(ev)) => s.push_str(&format!(" ({how}: {ev})")),
            (Some(how), None, None) => s.push_str(&format!(" ({how})")),
            (None, Some(host), _) => s.push_str(&format!(" ({host})")),
            (None, None, _) => {}
        }
        if let Some(ip) = self.dest_ip {
            s.push_str(" to ");
            match self.dest_port {
                Some(p) if ip.is_ipv6() => s.push_str(&format!("[{ip}]:{p}")),
                Some(p) => s.push_str(&format!("{ip}:{p}")),
                None => s.push_str(&ip.to_string()),
            }
            if let Some(proto) = &self.proto {
                s.push('/');
                s.push_str(proto);
            }
        }
        match (&self.country, &self.jurisdiction) {
            (Some(c), Some(j)) => s.push_str(&format!(", located in {c} (jurisdiction {j})")),
            (Some(c), None) => s.push_str(&format!(", located in {c}")),
            (None, Some(j)) => s.push_str(&format!(", jurisdiction {j}")),
            (None, None) => {}
        }
        if let Some(rc) = &self.registered_country {
            if self.country.as_ref() != Some(rc) {
                s.push_str(&format!(", registered in {rc}"));
            }
        }
        match (self.asn, &self.as_org) {
            (Some(n), Some(org)) => s.push_str(&format!(", AS{n} {org}")),
            (Some(n), None) => s.push_str(&format!(", AS{n}")),
            _ => {}
        }
        if let Some(rule) = &self.rule {
            s.push_str(match self.action.as_str() {
                "block" => ", by rule ",
                _ => ", rule ",
            });
            s.push_str(rule);
        }
        s
    }
}

/// Human label for a recognition method id.
fn method_label(m: &str) -> &str {
    match m {
        "dns" => "DNS answer for",
        "tls-sni" => "TLS SNI",
        "quic-sni" => "QUIC SNI",
        "stun" => "STUN",
        "payload" => "vendor payload",
        "ip-range" => "vendor IP range",
        "asn" => "vendor ASN",
        "port" => "port only",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zoom() -> Alert {
        Alert {
            timestamp: "2026-11-27T10:41:00.123456Z".into(),
            event: EventKind::Flow,
            action: "block".into(),
            verdict: Some("drop".into()),
            rule: Some("no-conferencing-to-prc".into()),
            app: Some("zoom".into()),
            method: Some("tls-sni".into()),
            server_name: Some("zoomfrn99mmr.zoom.us".into()),
            dest_ip: Some("203.0.113.10".parse().expect("ip")),
            country: Some("CN".into()),
            jurisdiction: Some("prc".into()),
            reason: String::new(),
            ..Alert::default()
        }
    }

    #[test]
    fn explain_matches_documented_sentence() {
        assert_eq!(
            zoom().explain(),
            "blocked: zoom (TLS SNI zoomfrn99mmr.zoom.us) to 203.0.113.10, located in CN \
             (jurisdiction prc), by rule no-conferencing-to-prc"
        );
    }

    #[test]
    fn explain_alert_says_not_blocked_and_uses_evidence() {
        let a = Alert {
            action: "alert".into(),
            verdict: None,
            method: Some("stun".into()),
            server_name: None,
            evidence: Some("SOFTWARE attribute \"Zoom\"".into()),
            dest_ip: Some("2001:db8::5".parse().expect("ip")),
            dest_port: Some(8801),
            proto: Some("udp".into()),
            registered_country: Some("HK".into()),
            asn: Some(64500),
            as_org: Some("Example Net".into()),
            ..zoom()
        };
        assert_eq!(
            a.explain(),
            "alert, not blocked: zoom (STUN: SOFTWARE attribute \"Zoom\") to [2001:db8::5]:8801/udp, \
             located in CN (jurisdiction prc), registered in HK, AS64500 Example Net, rule \
             no-conferencing-to-prc"
        );
    }

    #[test]
    fn severity_follows_enforcement() {
        assert_eq!(zoom().derived_severity(), 1);
        let alert_only = Alert {
            action: "alert".into(),
            verdict: None,
            ..zoom()
        };
        assert_eq!(alert_only.derived_severity(), 2);
        let monitor = Alert {
            verdict: None,
            ..zoom()
        };
        assert_eq!(monitor.derived_severity(), 2);
        assert_eq!(
            Alert::new(EventKind::Tamper, "block", "x").derived_severity(),
            1
        );
        assert_eq!(
            Alert::new(EventKind::Daemon, "allow", "x").derived_severity(),
            3
        );
    }

    #[test]
    fn wire_names_are_event_type_and_server_name() {
        let v = serde_json::to_value(zoom()).expect("json");
        assert_eq!(v["event_type"], "flow");
        assert_eq!(v["server_name"], "zoomfrn99mmr.zoom.us");
        assert!(v.get("event").is_none() && v.get("host").is_none());
    }

    #[test]
    fn explain_without_app_or_destination() {
        let a = Alert::new(EventKind::Database, "alert", "x");
        assert_eq!(a.explain(), "alert, not blocked: database event");
    }
}
