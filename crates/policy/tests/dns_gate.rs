//! `[dns_gate]`: defaults, a valid gate, and each error at its FILE:LINE:COL.

use geofence_policy::{load_str, GateFailure};

/// Lines 1-3; tests append from line 4 on.
const BASE: &str = "\
[geoip]
databases = [\"/var/lib/geofence/geoip/geo-whois-asn-country.mmdb\"]

";

fn err_at(extra: &str, line: usize, col: usize, needle: &str) {
    let text = format!("{BASE}{extra}");
    match load_str("gate.toml", &text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            assert_eq!((e.line, e.col), (line, col), "{e}");
            assert!(e.message.contains(needle), "{e}");
            assert!(e
                .to_string()
                .starts_with(&format!("gate.toml:{line}:{col}: ")));
        }
    }
}

#[test]
fn off_by_default_and_a_valid_gate() {
    let c = load_str("gate.toml", BASE).expect("valid");
    assert!(!c.dns_gate.enabled);
    assert_eq!(c.dns_gate.on_failure, GateFailure::Closed);
    let c = load_str(
        "gate.toml",
        &format!(
            "{BASE}[dns_gate]\nenabled = true\nlisten = [\"192.0.2.1:53\", \"[2001:db8::1]:53\"]\n\
             upstreams = [\"127.0.0.1:53\", \"198.51.100.53:53\"]\non_failure = \"open\"\n"
        ),
    )
    .expect("valid");
    let g = &c.dns_gate;
    assert!(g.enabled && g.redirect);
    assert_eq!(g.listen.len(), 2);
    assert_eq!(g.upstreams[1].to_string(), "198.51.100.53:53");
    assert_eq!(g.on_failure, GateFailure::Open);
    assert_eq!((g.max_inflight, g.max_udp_size), (4096, 1232));
}

#[test]
fn errors_name_their_position() {
    err_at("[dns_gate]\nbogus = 1\n", 5, 1, "unknown field `bogus`");
    err_at(
        "[dns_gate]\nlisten = [\"192.0.2.1\"]\n",
        5,
        11,
        "socket address",
    );
    err_at(
        "[dns_gate]\non_failure = \"maybe\"\n",
        5,
        14,
        "unknown variant `maybe`",
    );
    err_at(
        "[dns_gate]\nenabled = true\nupstreams = [\"127.0.0.1:53\"]\n",
        5,
        11,
        "needs at least one client-facing address",
    );
    err_at(
        "[dns_gate]\nenabled = true\nlisten = [\"0.0.0.0:53\"]\nupstreams = [\"127.0.0.1:53\"]\n",
        6,
        11,
        "concrete address",
    );
    err_at(
        "[dns_gate]\nenabled = true\nlisten = [\"192.0.2.1:53\"]\n",
        5,
        11,
        "`upstreams` needs at least one",
    );
    err_at(
        "[dns_gate]\nenabled = true\nlisten = [\"192.0.2.1:53\"]\nupstreams = [\"192.0.2.1:53\"]\n",
        7,
        14,
        "is the gate itself",
    );
    err_at(
        "[dns_gate]\nenabled = true\nlisten = [\"192.0.2.1:53\"]\nupstreams = [\"127.0.0.1:53\"]\nmax_udp_size = 100\n",
        8,
        16,
        "at least 512",
    );
    err_at(
        "[daemon]\nmode = \"host\"\n[dns_gate]\nenabled = true\nlisten = [\"192.0.2.1:53\"]\nupstreams = [\"127.0.0.1:53\"]\n",
        7,
        11,
        "needs `[daemon] mode",
    );
}
