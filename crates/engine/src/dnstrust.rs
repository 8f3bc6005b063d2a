//! DNS trust: which answers may teach the engine anything.
//!
//! Anyone can send a packet from port 53. An answer counts only when it
//! answers a query that the same client sent to that same server and that
//! the engine saw: same transport, same client address and port, same
//! server address and port, same transaction id and the same question
//! (name compared case-insensitively, type and class). A matched query is
//! consumed, so a second answer to it (a forger racing the resolver, a
//! replay) is not trusted either. Everything else is counted
//! ([`TrustStats`]) and ignored.
//!
//! The table of outstanding queries is bounded per client (`per_client`;
//! a client over its quota loses its own oldest query) and in the number of
//! clients (`max_clients`; a new client is refused while the table is full,
//! never at another client's expense). Queries expire after `timeout`.
//! Memory: at most `max_clients * per_client` entries of 48 bytes.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

use geofence_classify::dns::Question;
use geofence_decode::Proto;
use rustc_hash::FxHashMap;

/// Bounds of the outstanding-query table.
#[derive(Clone, Debug)]
pub struct TrustConfig {
    /// Clients with outstanding queries.
    pub max_clients: usize,
    /// Outstanding queries per client.
    pub per_client: usize,
    /// A query not answered within this long is forgotten.
    pub timeout_ns: u64,
}

impl Default for TrustConfig {
    fn default() -> Self {
        TrustConfig {
            max_clients: 4096,
            per_client: 64,
            timeout_ns: 10 * 1_000_000_000,
        }
    }
}

/// What the trust check counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrustStats {
    /// Queries recorded.
    pub queries: u64,
    /// Queries pushed out by a newer query of the same client (quota).
    pub queries_evicted: u64,
    /// Queries not recorded because the client table was full.
    pub queries_refused: u64,
    /// Queries that were never answered in time.
    pub queries_expired: u64,
    /// Answers that matched an outstanding query (the only ones used).
    pub answers_matched: u64,
    /// Answers to a client with no outstanding query to that server.
    pub answers_unsolicited: u64,
    /// Answers whose id or question matched no outstanding query of that
    /// client to that server.
    pub answers_mismatched: u64,
    /// Queries outstanding now.
    pub pending: u64,
}

/// The outcome of checking an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerTrust {
    /// It answers an outstanding query (now consumed).
    Matched,
    /// The client asked that server nothing (or the query expired).
    Unsolicited,
    /// The client asked that server, but not this (id or question differ).
    Mismatched,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    proto: Proto,
    client_port: u16,
    server: SocketAddr,
    id: u16,
    question: QKey,
    sent_ns: u64,
}

/// A question, with the name reduced to a hash of its lower-cased labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct QKey {
    name: u64,
    qtype: u16,
    qclass: u16,
}

impl QKey {
    fn of(q: &Question<'_>) -> QKey {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for l in q.name.labels() {
            h.write_usize(l.len());
            for b in l {
                h.write_u8(b.to_ascii_lowercase());
            }
        }
        0u8.hash(&mut h);
        QKey {
            name: h.finish(),
            qtype: q.qtype,
            qclass: q.qclass,
        }
    }
}

/// Outstanding queries, per client.
pub struct QueryTable {
    clients: FxHashMap<IpAddr, VecDeque<Pending>>,
    cfg: TrustConfig,
    stats: TrustStats,
}

impl QueryTable {
    pub fn new(cfg: TrustConfig) -> QueryTable {
        QueryTable {
            clients: FxHashMap::default(),
            cfg: TrustConfig {
                max_clients: cfg.max_clients.max(1),
                per_client: cfg.per_client.max(1),
                timeout_ns: cfg.timeout_ns,
            },
            stats: TrustStats::default(),
        }
    }

    pub fn stats(&self) -> TrustStats {
        self.stats
    }

    /// Records a query `client` sent to `server`.
    pub fn query(
        &mut self,
        proto: Proto,
        client: SocketAddr,
        server: SocketAddr,
        id: u16,
        q: &Question<'_>,
        now_ns: u64,
    ) {
        if !self.clients.contains_key(&client.ip()) && self.clients.len() >= self.cfg.max_clients {
            self.expire(now_ns);
            if self.clients.len() >= self.cfg.max_clients {
                self.stats.queries_refused += 1;
                return;
            }
        }
        let per_client = self.cfg.per_client;
        let timeout = self.cfg.timeout_ns;
        let qs = self.clients.entry(client.ip()).or_default();
        // Expired queries of this client go first, then its oldest.
        while qs
            .front()
            .is_some_and(|p| now_ns.saturating_sub(p.sent_ns) > timeout)
        {
            qs.pop_front();
            self.stats.queries_expired += 1;
            self.stats.pending -= 1;
        }
        if qs.len() >= per_client {
            qs.pop_front();
            self.stats.queries_evicted += 1;
            self.stats.pending -= 1;
        }
        qs.push_back(Pending {
            proto,
            client_port: client.port(),
            server,
            id,
            question: QKey::of(q),
            sent_ns: now_ns,
        });
        self.stats.queries += 1;
        self.stats.pending += 1;
    }

    /// Checks an answer `server` sent to `client`; a match consumes the query.
    pub fn answer(
        &mut self,
        proto: Proto,
        client: SocketAddr,
        server: SocketAddr,
        id: u16,
        q: Option<&Question<'_>>,
        now_ns: u64,
    ) -> AnswerTrust {
        let timeout = self.cfg.timeout_ns;
        let verdict = match self.clients.get_mut(&client.ip()) {
            None => AnswerTrust::Unsolicited,
            Some(qs) => {
                let live = |p: &Pending| now_ns.saturating_sub(p.sent_ns) <= timeout;
                let same_path = |p: &Pending| {
                    p.proto == proto && p.client_port == client.port() && p.server == server
                };
                let key = q.map(QKey::of);
                let hit = qs
                    .iter()
                    .position(|p| same_path(p) && live(p) && p.id == id && Some(p.question) == key);
                match hit {
                    Some(i) => {
                        qs.remove(i);
                        self.stats.pending -= 1;
                        if qs.is_empty() {
                            self.clients.remove(&client.ip());
                        }
                        AnswerTrust::Matched
                    }
                    None if qs.iter().any(|p| same_path(p) && live(p)) => AnswerTrust::Mismatched,
                    None => AnswerTrust::Unsolicited,
                }
            }
        };
        match verdict {
            AnswerTrust::Matched => self.stats.answers_matched += 1,
            AnswerTrust::Unsolicited => self.stats.answers_unsolicited += 1,
            AnswerTrust::Mismatched => self.stats.answers_mismatched += 1,
        }
        verdict
    }

    /// Forgets queries older than the timeout.
    pub fn expire(&mut self, now_ns: u64) {
        let timeout = self.cfg.timeout_ns;
        let mut gone = 0u64;
        self.clients.retain(|_, qs| {
            while qs
                .front()
                .is_some_and(|p| now_ns.saturating_sub(p.sent_ns) > timeout)
            {
                qs.pop_front();
                gone += 1;
            }
            !qs.is_empty()
        });
        self.stats.queries_expired += gone;
        self.stats.pending -= gone;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geofence_classify::dns::parse_message;
    use geofence_testkit::wire::{dns_query, dns_response};

    const S: u64 = 1_000_000_000;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    fn ask(t: &mut QueryTable, client: &str, id: u16, name: &str, now: u64) {
        let q = dns_query(id, name, 1);
        let m = parse_message(&q).expect("query");
        let qq = m.question.expect("question");
        t.query(Proto::Udp, sa(client), sa("192.0.2.53:53"), id, &qq, now);
    }

    fn check(t: &mut QueryTable, client: &str, id: u16, name: &str, now: u64) -> AnswerTrust {
        let a = dns_response(id, name, 1, &[], 60, false);
        let m = parse_message(&a).expect("answer");
        t.answer(
            Proto::Udp,
            sa(client),
            sa("192.0.2.53:53"),
            id,
            m.question.as_ref(),
            now,
        )
    }

    #[test]
    fn only_the_answer_to_an_outstanding_query_matches_once() {
        let mut t = QueryTable::new(TrustConfig::default());
        assert_eq!(
            check(&mut t, "10.0.0.5:4000", 7, "zoom.us", 0),
            AnswerTrust::Unsolicited
        );
        ask(&mut t, "10.0.0.5:4000", 7, "Zoom.US", 0);
        assert_eq!(
            check(&mut t, "10.0.0.5:4000", 8, "zoom.us", 1),
            AnswerTrust::Mismatched,
            "wrong id"
        );
        assert_eq!(
            check(&mut t, "10.0.0.5:4000", 7, "teams.microsoft.com", 1),
            AnswerTrust::Mismatched,
            "wrong question"
        );
        assert_eq!(
            check(&mut t, "10.0.0.5:4001", 7, "zoom.us", 1),
            AnswerTrust::Unsolicited,
            "other port"
        );
        assert_eq!(
            check(&mut t, "10.0.0.9:4000", 7, "zoom.us", 1),
            AnswerTrust::Unsolicited,
            "other client"
        );
        assert_eq!(
            check(&mut t, "10.0.0.5:4000", 7, "zoom.us", 1),
            AnswerTrust::Matched,
            "case-insensitive question"
        );
        assert_eq!(
            check(&mut t, "10.0.0.5:4000", 7, "zoom.us", 2),
            AnswerTrust::Unsolicited,
            "consumed"
        );
        assert_eq!(t.stats().pending, 0);
    }

    #[test]
    fn queries_expire() {
        let mut t = QueryTable::new(TrustConfig::default());
        ask(&mut t, "10.0.0.5:4000", 7, "zoom.us", 0);
        assert_eq!(
            check(&mut t, "10.0.0.5:4000", 7, "zoom.us", 11 * S),
            AnswerTrust::Unsolicited
        );
        t.expire(11 * S);
        assert_eq!(t.stats().pending, 0);
        assert_eq!(t.stats().queries_expired, 1);
    }

    #[test]
    fn a_flooding_client_cannot_push_out_another_clients_queries() {
        let mut t = QueryTable::new(TrustConfig {
            max_clients: 4,
            per_client: 8,
            timeout_ns: 10 * S,
        });
        ask(&mut t, "10.0.0.5:4000", 7, "zoom.us", 0);
        for i in 0..10_000u16 {
            ask(&mut t, "10.0.0.66:5000", i, "x.example", 1);
        }
        // Spoofed clients fill the client table: newcomers are refused.
        for c in 0..100u8 {
            ask(&mut t, &format!("10.0.1.{c}:5000"), 1, "x.example", 1);
        }
        assert!(t.stats().pending <= 4 * 8);
        assert!(t.stats().queries_refused > 0);
        assert_eq!(t.stats().queries_evicted, 10_000 - 8);
        assert_eq!(
            check(&mut t, "10.0.0.5:4000", 7, "zoom.us", 2),
            AnswerTrust::Matched
        );
    }
}
