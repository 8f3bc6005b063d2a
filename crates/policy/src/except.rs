//! A rule's `except`: destinations the rule does not apply to.
//!
//! Entries are addresses (`203.0.113.10`, `2001:db8::7`), CIDRs
//! (`203.0.113.0/28`) or host names (`zoom.example`, which also covers its
//! subdomains, matched against the server name the daemon saw: TLS/QUIC
//! SNI or the DNS question). A flow whose destination is excepted is
//! decided by the later rules (or `[default]`) as if this rule were absent.
//!
//! Address and CIDR exceptions are enforced in the kernel too: they are cut
//! out of the rule's static sets (`geofence-runtime`'s plan). Host-name
//! exceptions can only apply where a name is known, to the daemon's own
//! per-flow decisions; a block rule without `apps` is enforced by address
//! in the kernel before any name is seen, so it refuses them.

use crate::error::{tpath, Invalid, Loc};
use crate::validate::check_cidr;
use geofence_geo::IpRanges;
use serde::Serialize;
use std::collections::HashSet;
use std::net::IpAddr;

/// A rule's compiled `except` (empty when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Except {
    /// Addresses and CIDRs.
    #[serde(skip)]
    pub dst: IpRanges,
    /// The entries as written, for explanations.
    pub entries: Vec<String>,
    /// Host names, lower case, without a trailing dot.
    pub hosts: Vec<String>,
}

impl Except {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry that excepts this destination, if any.
    pub fn matching(&self, dst: IpAddr, host: Option<&str>) -> Option<&str> {
        if self.is_empty() {
            return None;
        }
        if self.dst.contains(dst) {
            return self
                .entries
                .iter()
                .find(|e| entry_contains(e, dst))
                .map(|s| s.as_str());
        }
        let host = host?.trim_end_matches('.');
        self.hosts
            .iter()
            .find(|suffix| host_in(host, suffix))
            .map(|s| s.as_str())
    }
}

fn entry_contains(e: &str, dst: IpAddr) -> bool {
    if let Ok(a) = e.parse::<IpAddr>() {
        return a == dst;
    }
    IpRanges::from_cidrs(&[e]).is_ok_and(|r| r.contains(dst))
}

/// `host` is `suffix` or a subdomain of it (ASCII case-insensitive).
fn host_in(host: &str, suffix: &str) -> bool {
    let (h, s) = (host.len(), suffix.len());
    if h < s || !host[h - s..].eq_ignore_ascii_case(suffix) {
        return false;
    }
    h == s || host.as_bytes()[h - s - 1] == b'.'
}

/// A host name: at least two labels of letters, digits and `-`.
fn is_host_name(d: &str) -> bool {
    d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Compiles rule `i`'s `except`. `static_only`: a block rule for all
/// traffic, which cannot honour host names.
pub(crate) fn compile(
    i: usize,
    list: Option<&[String]>,
    static_only: bool,
) -> Result<Except, Invalid> {
    let Some(list) = list else {
        return Ok(Except::default());
    };
    if list.is_empty() {
        return Err(Invalid::new(
            Loc::value(tpath!["rule", i, "except"]),
            "`except` is empty: omit it to except nothing",
        ));
    }
    let mut out = Except::default();
    let mut seen = HashSet::new();
    for (j, e) in list.iter().enumerate() {
        let loc = || Loc::value(tpath!["rule", i, "except", j]);
        let key = e.to_ascii_lowercase();
        if !seen.insert(key.clone()) {
            return Err(Invalid::new(loc(), format!("`{e}` is listed twice")));
        }
        if e.contains('/') {
            let r = check_cidr(e).map_err(|m| Invalid::new(loc(), m))?;
            out.dst = out.dst.union(&r);
        } else if let Ok(a) = e.parse::<IpAddr>() {
            let len = if a.is_ipv4() { 32 } else { 128 };
            let r = IpRanges::from_cidrs(&[format!("{a}/{len}")])
                .map_err(|m| Invalid::new(loc(), m.to_string()))?;
            out.dst = out.dst.union(&r);
        } else if let Some(rest) = e.strip_prefix("*.") {
            return Err(Invalid::new(
                loc(),
                format!("write `{rest}`: a host-name exception already covers its subdomains"),
            ));
        } else if is_host_name(e.trim_end_matches('.')) {
            if static_only {
                return Err(Invalid::new(
                    loc(),
                    format!(
                        "host name `{e}` cannot be excepted from a block rule without `apps`: the kernel \
                         blocks its destinations by address before any name is seen; except the address \
                         or CIDR instead"
                    ),
                ));
            }
            out.hosts.push(key.trim_end_matches('.').to_string());
        } else {
            return Err(Invalid::new(
                loc(),
                format!(
                    "`{e}` is not an address, a CIDR or a host name (`except` takes destinations, e.g. \
                     \"203.0.113.10\", \"203.0.113.0/28\" or \"meet.example.org\")"
                ),
            ));
        }
        out.entries.push(e.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(list: &[&str]) -> Except {
        let v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        compile(0, Some(&v), false).expect("valid")
    }

    #[test]
    fn addresses_cidrs_and_host_suffixes() {
        let e = ex(&[
            "203.0.113.10",
            "198.51.100.0/28",
            "2001:db8::7",
            "Meet.Example.org",
        ]);
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(e.matching(ip("203.0.113.10"), None), Some("203.0.113.10"));
        assert_eq!(e.matching(ip("203.0.113.11"), None), None, "a neighbour");
        assert_eq!(
            e.matching(ip("198.51.100.15"), None),
            Some("198.51.100.0/28")
        );
        assert_eq!(e.matching(ip("198.51.100.16"), None), None);
        assert_eq!(e.matching(ip("2001:db8::7"), None), Some("2001:db8::7"));
        let far = ip("192.0.2.1");
        assert_eq!(
            e.matching(far, Some("meet.example.org")),
            Some("meet.example.org")
        );
        assert_eq!(
            e.matching(far, Some("a.MEET.example.org.")),
            Some("meet.example.org")
        );
        assert_eq!(
            e.matching(far, Some("evilmeet.example.org")),
            None,
            "label boundary"
        );
        assert_eq!(
            e.matching(far, Some("example.org")),
            None,
            "parent not covered"
        );
        assert_eq!(e.matching(far, None), None);
    }

    #[test]
    fn bad_entries_are_refused() {
        let bad = |list: &[&str], static_only: bool| {
            let v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
            compile(0, Some(&v), static_only)
                .expect_err("refused")
                .message
        };
        assert!(bad(&["prc"], false).contains("not an address, a CIDR or a host name"));
        assert!(bad(&["203.0.113.1/24"], false).contains("host bits"));
        assert!(bad(&["*.zoom.us"], false).contains("write `zoom.us`"));
        assert!(bad(&["a.b", "A.B"], false).contains("listed twice"));
        assert!(bad(&["zoom.us"], true).contains("without `apps`"));
        assert!(compile(0, Some(&[]), false).is_err());
        assert!(compile(0, None, true).expect("absent").is_empty());
    }
}
