//! Vendor payload matchers on packets built from the input: the first 6
//! bytes choose ports, transport, direction and packet index.
#![no_main]

use geofence_classify::payload::{self, Packet};
use geofence_classify::sigs::Transport;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((h, body)) = data.split_at_checked(6) else {
        return;
    };
    let p = Packet {
        transport: if h[4] & 1 == 0 {
            Transport::Udp
        } else {
            Transport::Tcp
        },
        payload: body,
        src_port: u16::from_be_bytes([h[0], h[1]]),
        dst_port: u16::from_be_bytes([h[2], h[3]]),
        from_initiator: h[4] & 2 == 0,
        index: u32::from(h[5]),
    };
    for (name, f) in payload::MATCHERS {
        if let Some(m) = f(&p) {
            assert!(!m.what.is_empty());
            if let Some(host) = m.host {
                assert!(payload::plausible_hostname(host), "{name}: {host:?}");
            }
        }
        assert!(payload::matcher(name).is_some());
    }
    let _ = payload::match_any(&p);
    let _ = payload::rtp_header(body);
    let _ = payload::is_rtcp(body);
    if let Some(inner) = payload::teams_multiplexed(body) {
        assert!(inner.len() <= body.len());
    }
    let mut t = payload::LineCallTracker::default();
    for _ in 0..payload::LineCallTracker::NEEDED {
        let _ = t.push(&p);
    }
    let _ = t.matched();
});
