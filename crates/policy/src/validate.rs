//! Checks on the parts of a config that are not rules: `[daemon]`,
//! `[geoip]`, `[signatures]`, `[jurisdictions]` and `[[app]]` definitions.

use crate::config::{CaptureKind, Config};
use crate::error::{tpath, Invalid, Loc, Seg};
use geofence_classify::sigdb::{SigError, SignatureDb, KNOWN_MATCHERS};
use geofence_classify::sigs::AppDef;
use geofence_classify::CONFERENCING_GROUP;
use geofence_geo::IpRanges;
use std::collections::HashSet;
use std::net::IpAddr;

/// Names a jurisdiction may not take: they have a fixed meaning in `to`.
pub const RESERVED_NAMES: &[&str] = &["any", "unknown"];

pub(crate) fn daemon(config: &Config) -> Result<(), Invalid> {
    let d = &config.daemon;
    if !d.interfaces.is_empty() && d.capture != CaptureKind::Afpacket {
        return Err(Invalid::new(
            Loc::value(tpath!["daemon", "interfaces"]),
            "`interfaces` only applies to `capture = \"afpacket\"` (NFLOG capture sees every interface)",
        ));
    }
    let mut seen = HashSet::new();
    for (i, name) in d.interfaces.iter().enumerate() {
        let loc = || Loc::value(tpath!["daemon", "interfaces", i]);
        let ok = !name.is_empty()
            && name.len() <= 15
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
        if !ok {
            return Err(Invalid::new(
                loc(),
                format!("`{name}` is not a network interface name (1 to 15 characters, no '/', ':' or spaces)"),
            ));
        }
        if !seen.insert(name.as_str()) {
            return Err(Invalid::new(
                loc(),
                format!("interface `{name}` is listed twice"),
            ));
        }
    }
    for (key, p) in [
        ("alert_log", &d.alert_log),
        ("state_dir", &d.state_dir),
        ("control_socket", &d.control_socket),
    ] {
        if !p.is_absolute() {
            return Err(Invalid::new(
                Loc::value(tpath!["daemon", key]),
                format!("`{key}` must be an absolute path, got `{}`", p.display()),
            ));
        }
    }
    if d.dynamic_timeout_secs == 0 {
        return Err(Invalid::new(
            Loc::value(tpath!["daemon", "dynamic_timeout_secs"]),
            "`dynamic_timeout_secs` must be at least 1",
        ));
    }
    if d.dns_ttl_cap_secs == 0 || d.dns_ttl_cap_secs < d.dns_ttl_floor_secs {
        return Err(Invalid::new(
            Loc::value(tpath!["daemon", "dns_ttl_cap_secs"]),
            format!(
                "`dns_ttl_cap_secs` ({}) must be at least 1 and at least `dns_ttl_floor_secs` ({})",
                d.dns_ttl_cap_secs, d.dns_ttl_floor_secs
            ),
        ));
    }
    if d.dns_ttl_floor_secs > d.dynamic_timeout_secs {
        return Err(Invalid::new(
            Loc::value(tpath!["daemon", "dns_ttl_floor_secs"]),
            format!(
                "`dns_ttl_floor_secs` ({}) exceeds `dynamic_timeout_secs` ({}): kernel set elements would expire \
                 before the DNS answer that created them",
                d.dns_ttl_floor_secs, d.dynamic_timeout_secs
            ),
        ));
    }
    Ok(())
}

pub(crate) fn decode(config: &Config) -> Result<(), Invalid> {
    let mut seen = HashSet::new();
    for (i, t) in config.decode.tunnels.iter().enumerate() {
        if !seen.insert(*t) {
            return Err(Invalid::new(
                Loc::value(tpath!["decode", "tunnels", i]),
                format!("tunnel `{}` is listed twice", t.as_str()),
            ));
        }
    }
    Ok(())
}

/// A gateway name: 1 to 253 characters, letters, digits and `.-_`, as a
/// host name or an FQDN (SIEMs group and filter on it).
pub fn is_gateway_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

pub(crate) fn alerts(config: &Config) -> Result<(), Invalid> {
    if let Some(h) = &config.alerts.host {
        if !is_gateway_name(h) {
            return Err(Invalid::new(
                Loc::value(tpath!["alerts", "host"]),
                format!("`{h}` is not a gateway name (1 to 253 characters: letters, digits, '.', '-', '_')"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn geoip(config: &Config) -> Result<(), Invalid> {
    let g = &config.geoip;
    if g.databases.is_empty() {
        return Err(Invalid::new(
            Loc::value(tpath!["geoip", "databases"]),
            "`databases` needs at least one .mmdb file",
        ));
    }
    let mut seen = HashSet::new();
    for (i, db) in g.databases.iter().enumerate() {
        let loc = || Loc::value(tpath!["geoip", "databases", i]);
        if db.as_os_str().is_empty() {
            return Err(Invalid::new(loc(), "empty database path"));
        }
        if !seen.insert(db) {
            return Err(Invalid::new(
                loc(),
                format!("database `{}` is listed twice", db.display()),
            ));
        }
    }
    Ok(())
}

pub(crate) fn signatures(config: &Config) -> Result<(), Invalid> {
    let mut seen = HashSet::new();
    for (i, dir) in config.signatures.dirs.iter().enumerate() {
        let loc = || Loc::value(tpath!["signatures", "dirs", i]);
        if dir.as_os_str().is_empty() {
            return Err(Invalid::new(loc(), "empty directory path"));
        }
        if !seen.insert(dir) {
            return Err(Invalid::new(
                loc(),
                format!("directory `{}` is listed twice", dir.display()),
            ));
        }
    }
    Ok(())
}

/// Jurisdiction names: lower-case letter first, then lower-case letters,
/// digits, `_` and `-`, at most 32 characters.
pub fn is_jurisdiction_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b.first().is_some_and(|c| c.is_ascii_lowercase())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

pub(crate) fn jurisdictions(config: &Config) -> Result<(), Invalid> {
    for (name, codes) in &config.jurisdictions {
        if RESERVED_NAMES.contains(&name.as_str()) {
            return Err(Invalid::new(
                Loc::key(tpath!["jurisdictions", name.as_str()]),
                format!(
                    "`{name}` is reserved (in `to` it means {}); pick another name",
                    reserved_meaning(name)
                ),
            ));
        }
        if !is_jurisdiction_name(name) {
            return Err(Invalid::new(
                Loc::key(tpath!["jurisdictions", name.as_str()]),
                format!(
                    "`{name}` is not a valid jurisdiction name (lower-case letter first, then lower-case letters, \
                     digits, '_' or '-', at most 32 characters)"
                ),
            ));
        }
        if codes.is_empty() {
            return Err(Invalid::new(
                Loc::value(tpath!["jurisdictions", name.as_str()]),
                format!("jurisdiction `{name}` has no countries"),
            ));
        }
        let mut seen = HashSet::new();
        for (i, c) in codes.iter().enumerate() {
            if !seen.insert(*c) {
                return Err(Invalid::new(
                    Loc::value(tpath!["jurisdictions", name.as_str(), i]),
                    format!("`{c}` is listed twice in jurisdiction `{name}`"),
                ));
            }
        }
    }
    Ok(())
}

pub(crate) fn reserved_meaning(name: &str) -> &'static str {
    match name {
        "any" => "every public destination",
        _ => "a public destination with no country in any database",
    }
}

/// Validates a list of `[[app]]` definitions found at `["app", i]` of one
/// file: ids unique and not the group name, at least one signature, and
/// every domain, CIDR, port range and hex pattern well formed.
pub(crate) fn app_defs(apps: &[AppDef]) -> Result<(), Invalid> {
    let mut seen = HashSet::new();
    for (i, app) in apps.iter().enumerate() {
        let at = |rest: Vec<Seg>| {
            let mut p = tpath!["app", i];
            p.extend(rest);
            Loc::value(p)
        };
        let id = app.id.as_str();
        if id == CONFERENCING_GROUP {
            return Err(Invalid::new(
                at(tpath!["id"]),
                "`conferencing` is the name of the app group (every conferencing app); pick another id",
            ));
        }
        if !seen.insert(id) {
            return Err(Invalid::new(
                at(tpath!["id"]),
                format!("app `{id}` is defined twice in this file"),
            ));
        }
        let has_signal = !app.domains.is_empty()
            || !app.cidrs.is_empty()
            || !app.asns.is_empty()
            || !app.ports.is_empty()
            || !app.payload.is_empty()
            || !app.patterns.is_empty()
            || !app.stun.attributes.is_empty()
            || !app.stun.message_types.is_empty()
            || !app.stun.realms.is_empty()
            || !app.stun.software.is_empty();
        if !has_signal {
            return Err(Invalid::new(
                at(tpath!["id"]),
                format!(
                    "app `{id}` has no signatures and could never be recognised (give domains, cidrs, asns, ports, \
                     stun, payload or patterns)"
                ),
            ));
        }
        for (j, d) in app.domains.iter().enumerate() {
            if !is_domain_pattern(d) {
                return Err(Invalid::new(
                    at(tpath!["domains", j]),
                    format!(
                        "`{d}` is not a domain name (lower-case labels of letters, digits, '-' or '_', separated by \
                         dots; a leading '=' matches the exact name only)"
                    ),
                ));
            }
        }
        for (j, c) in app.cidrs.iter().enumerate() {
            check_cidr(c).map_err(|m| Invalid::new(at(tpath!["cidrs", j]), m))?;
        }
        for (j, a) in app.asns.iter().enumerate() {
            if *a == 0 || *a == 23456 || *a == u32::MAX {
                return Err(Invalid::new(
                    at(tpath!["asns", j]),
                    format!("AS{a} is a reserved AS number"),
                ));
            }
        }
        for (j, m) in app.payload.iter().enumerate() {
            if !KNOWN_MATCHERS.contains(&m.as_str()) {
                return Err(Invalid::new(
                    at(tpath!["payload", j]),
                    format!(
                        "unknown payload matcher `{m}` (built in: {})",
                        KNOWN_MATCHERS.join(", ")
                    ),
                ));
            }
        }
        if app.ranges_need_ports && app.ports.is_empty() {
            return Err(Invalid::new(
                at(tpath!["ranges_need_ports"]),
                "`ranges_need_ports = true` needs `ports`",
            ));
        }
        for (j, p) in app.ports.iter().enumerate() {
            if p.range().is_none() {
                return Err(Invalid::new(
                    at(tpath!["ports", j, "ports"]),
                    format!(
                        "`{}` is not a port or port range (e.g. \"3478\" or \"8801-8810\", ports 1 to 65535, low \
                         end first)",
                        p.ports
                    ),
                ));
            }
        }
        for (j, p) in app.patterns.iter().enumerate() {
            let Some(bytes) = p.bytes() else {
                return Err(Invalid::new(
                    at(tpath!["patterns", j, "hex"]),
                    format!(
                        "`{}` is not hex bytes (an even number of 0-9a-f digits, e.g. \"1f0201\")",
                        p.hex
                    ),
                ));
            };
            let end = p.offset.saturating_add(bytes.len());
            if let Some(len) = p.len {
                if end > len || p.min_len > len {
                    return Err(Invalid::new(
                        at(tpath!["patterns", j, "len"]),
                        format!(
                            "pattern needs {} bytes but `len` is {len}: it can never match",
                            end.max(p.min_len)
                        ),
                    ));
                }
            }
        }
        // Backstop: whatever the classifier would still refuse (it compiles
        // these definitions at start) is refused here, at the app's id.
        if let Err(e) = SignatureDb::from_defs(vec![app.clone()]) {
            let message = match e {
                SigError::Invalid { message, .. } => message,
                other => other.to_string(),
            };
            return Err(Invalid::new(
                at(tpath!["id"]),
                format!("app `{id}`: {message}"),
            ));
        }
    }
    Ok(())
}

fn is_domain_pattern(d: &str) -> bool {
    let d = d.strip_prefix('=').unwrap_or(d);
    if d.is_empty() || d.len() > 253 {
        return false;
    }
    d.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
    })
}

/// A CIDR (or bare address) that parses and has no host bits set.
pub(crate) fn check_cidr(c: &str) -> Result<IpRanges, String> {
    let ranges = IpRanges::from_cidrs(&[c]).map_err(|e| e.to_string())?;
    if let Some((addr, len)) = c.split_once('/') {
        let canonical = match (addr.parse::<IpAddr>(), len.parse::<u32>()) {
            (Ok(IpAddr::V4(a)), Ok(l)) => {
                let mask = u32::MAX.checked_shl(32 - l.min(32)).unwrap_or(0);
                let net = u32::from(a) & mask;
                (net != u32::from(a)).then(|| format!("{}/{l}", std::net::Ipv4Addr::from(net)))
            }
            (Ok(IpAddr::V6(a)), Ok(l)) => {
                let mask = u128::MAX.checked_shl(128 - l.min(128)).unwrap_or(0);
                let net = u128::from(a) & mask;
                (net != u128::from(a)).then(|| format!("{}/{l}", std::net::Ipv6Addr::from(net)))
            }
            _ => None,
        };
        if let Some(fixed) = canonical {
            return Err(format!("`{c}` has host bits set; did you mean `{fixed}`?"));
        }
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_checks() {
        assert!(check_cidr("10.1.0.0/16").is_ok());
        assert!(check_cidr("0.0.0.0/0").is_ok());
        assert!(check_cidr("::/0").is_ok());
        assert!(check_cidr("192.0.2.7").is_ok());
        assert!(check_cidr("2001:db8::/32").is_ok());
        let e = check_cidr("10.1.2.3/16").expect_err("host bits");
        assert!(e.contains("did you mean `10.1.0.0/16`"), "{e}");
        let e = check_cidr("2001:db8::1/32").expect_err("host bits");
        assert!(e.contains("`2001:db8::/32`"), "{e}");
        assert!(check_cidr("10.0.0.0/33").is_err());
        assert!(check_cidr("10.0.0/8").is_err());
        assert!(check_cidr("").is_err());
    }

    #[test]
    fn domain_patterns() {
        assert!(is_domain_pattern("zoom.us"));
        assert!(is_domain_pattern("=teams.live.com"));
        assert!(!is_domain_pattern("Zoom.us"));
        assert!(!is_domain_pattern("zoom..us"));
        assert!(!is_domain_pattern("*.zoom.us"));
        assert!(!is_domain_pattern("="));
        assert!(!is_domain_pattern("-zoom.us"));
        assert!(!is_domain_pattern("zoom-.us"));
    }

    #[test]
    fn jurisdiction_names() {
        assert!(is_jurisdiction_name("prc"));
        assert!(is_jurisdiction_name("hk_macau"));
        assert!(is_jurisdiction_name("five-eyes2"));
        assert!(!is_jurisdiction_name("PRC"));
        assert!(!is_jurisdiction_name("2eyes"));
        assert!(!is_jurisdiction_name(""));
    }
}
