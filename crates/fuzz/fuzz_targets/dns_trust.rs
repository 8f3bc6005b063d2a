//! DNS trust: the outstanding-query table and the per-client caches under
//! arbitrary sequences of queries, answers, expiries and insertions.
//! Invariants: the bounds hold, an answer to a query just recorded always
//! matches (unless the client table refused it), a query is answered at
//! most as often as it was asked, and eviction never touches another client's entries.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use geofence_classify::dns;
use geofence_decode::Proto;
use geofence_engine::dnstrust::{AnswerTrust, QueryTable, TrustConfig};
use geofence_engine::scoped::Scoped;
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 4] = ["zoom.us", "ZOOM.us", "teams.microsoft.com", "x.example"];

fn query_msg(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for l in name.split('.') {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

fuzz_target!(|data: &[u8]| {
    let (max_clients, per_client) = (4usize, 3usize);
    let mut t = QueryTable::new(TrustConfig {
        max_clients,
        per_client,
        timeout_ns: 1_000,
    });
    let mut cache: Scoped<u8, u8> = Scoped::new(8, 3);
    let server = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 53)), 53);
    let mut now = 0u64;
    for op in data.chunks_exact(4) {
        let client = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, op[1] % 8)),
            4000 + u16::from(op[1] >> 6),
        );
        let id = u16::from(op[2] % 4);
        let name = NAMES[usize::from(op[3] % 4)];
        let qtype = if op[3] & 0x80 != 0 { 28 } else { 1 };
        let msg = query_msg(id, name, qtype);
        let Ok(m) = dns::parse_message(&msg) else {
            panic!("built query parses")
        };
        let Some(q) = m.question else {
            panic!("built query has a question")
        };
        match op[0] % 6 {
            0 => {
                let refused = t.stats().queries_refused;
                t.query(Proto::Udp, client, server, id, &q, now);
                if t.stats().queries_refused == refused {
                    // Just recorded: its answer matches; answered as many
                    // times as it was asked, never more.
                    let asked = t.stats().pending;
                    let a = t.answer(Proto::Udp, client, server, id, Some(&q), now);
                    assert_eq!(a, AnswerTrust::Matched);
                    let mut extra = 0;
                    while t.answer(Proto::Udp, client, server, id, Some(&q), now)
                        == AnswerTrust::Matched
                    {
                        extra += 1;
                        assert!(
                            extra < asked,
                            "an answer matched more queries than were asked"
                        );
                    }
                }
            }
            1 => t.query(Proto::Udp, client, server, id, &q, now),
            2 => {
                let _ = t.answer(Proto::Udp, client, server, id, Some(&q), now);
            }
            3 => {
                now += u64::from(op[2]) * 16;
                t.expire(now);
            }
            4 => {
                let c = client.ip();
                let others: Vec<(IpAddr, u8, u8)> = cache
                    .iter()
                    .filter(|(o, _, _)| **o != c)
                    .map(|(o, k, v)| (*o, *k, *v))
                    .collect();
                let exp = now + u64::from(op[3]);
                let ok = cache.insert(c, op[2] % 8, op[3], exp, now);
                if ok {
                    assert_eq!(cache.get(&c, &(op[2] % 8), now), Some(&op[3]));
                }
                // Only expired entries of other clients may have gone.
                for (o, k, v) in others {
                    if let Some(got) = cache.get(&o, &k, now) {
                        assert_eq!(*got, v);
                    }
                }
            }
            _ => {
                now += 1;
                cache.purge(now);
            }
        }
        let st = t.stats();
        assert!(st.pending as usize <= max_clients * per_client);
        assert!(cache.len() <= 8);
    }
});
