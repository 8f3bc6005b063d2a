//! DNS: message parser, CNAME-chain resolutions, DNS-over-TCP stream split.
#![no_main]

use geofence_classify::dns::{self, RData};
use libfuzzer_sys::fuzz_target;

fn check(msg: &dns::DnsMessage<'_>) {
    assert!(msg.answers.len() <= dns::MAX_ANSWERS);
    if let Some(q) = &msg.question {
        let s = q.name.to_lowercase_string();
        assert!(s.len() <= dns::MAX_NAME_LEN);
        assert!(q.name.labels().all(|l| l.len() <= dns::MAX_LABEL_LEN));
    }
    for a in &msg.answers {
        assert!(a.name.to_lowercase_string().len() <= dns::MAX_NAME_LEN);
        match a.data {
            RData::Cname(n) => {
                assert!(n.to_lowercase_string().len() <= dns::MAX_NAME_LEN);
            }
            RData::Svcb(s) => {
                let _ = s.target.to_lowercase_string();
                let _ = s.ipv4_hints().count() + s.ipv6_hints().count();
            }
            _ => {}
        }
    }
    let res = dns::resolutions(msg);
    if !msg.is_response {
        assert!(res.is_empty());
    }
    for (i, r) in res.iter().enumerate() {
        // 16 CNAME hops plus the owner of the address record.
        assert!(
            r.names.len() <= dns::MAX_CNAME_DEPTH + 1,
            "{}",
            r.names.len()
        );
        assert!(!r.names.is_empty());
        // Addresses are reported once.
        assert!(res[..i].iter().all(|o| o.addr != r.addr));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = dns::parse_message(data) {
        check(&msg);
    }
    let msgs = dns::parse_tcp_stream(data);
    // Each message needs at least its 2-byte length prefix.
    assert!(msgs.len() <= data.len() / 2);
    for m in msgs.iter().flatten() {
        check(m);
    }
    let mut it = dns::split_tcp_stream(data);
    for _ in it.by_ref() {}
    assert!(it.consumed() <= data.len());
});
