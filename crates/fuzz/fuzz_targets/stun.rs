//! STUN/TURN: message parse (UDP and TCP framing), attribute walk and the
//! typed attribute readers, MS-TURN multiplexing, demux helpers.
#![no_main]

use geofence_classify::stun;
use libfuzzer_sys::fuzz_target;

fn walk(m: &stun::StunMessage<'_>, data: &[u8]) {
    assert!(m.wire_len() <= data.len());
    assert!(m.attrs.len() <= data.len());
    let _ = (
        m.method(),
        m.class(),
        m.is_request(),
        m.is_response(),
        m.is_indication(),
    );
    let mut n = 0usize;
    for (t, v) in m.attributes() {
        assert!(v.len() <= m.attrs.len());
        let _ = m.decode_xor_address(v);
        let _ = m.has_attr(t);
        n += 1;
    }
    // Every attribute takes at least its 4-byte header.
    assert!(n <= m.attrs.len() / 4);
    let _ = (m.realm(), m.software(), m.username(), m.data());
    let _ = (
        m.xor_mapped_address(),
        m.xor_relayed_address(),
        m.mapped_address(),
    );
    let _ = m.xor_peer_addresses().count();
    let _ = m.attr(stun::attr::XOR_MAPPED_ADDRESS);
}

fuzz_target!(|data: &[u8]| {
    for tcp in [false, true] {
        if let Some(m) = stun::parse(data, tcp) {
            walk(&m, data);
        }
    }
    if let Some(inner) = stun::ms_multiplexed_inner(data) {
        assert!(inner.len() < data.len());
        if let Some(m) = stun::parse(inner, false) {
            walk(&m, inner);
        }
    }
    let _ = stun::is_turn_channel_data(data);
    if let Some(&b) = data.first() {
        let _ = stun::demux(b);
        let _ = stun::accepted_type(u16::from_be_bytes([b, data.get(1).copied().unwrap_or(0)]));
    }
});
