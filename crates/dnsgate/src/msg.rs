//! Pure DNS message handling for the gate: what a query asks for, which
//! answer belongs to which query, the few bytes the gate rewrites (the
//! transaction id, and the TC bit of an answer too big for the client), and
//! the error answers it makes itself. No I/O; every function takes bytes and
//! returns bytes or a decision. Parsing is `geofence_classify::dns`.

use geofence_classify::dns;

/// Largest DNS message over UDP without EDNS(0) (RFC 1035 section 4.2.1).
pub const CLASSIC_UDP_SIZE: usize = 512;
/// Smallest DNS header.
pub const HEADER_LEN: usize = 12;

/// Response codes the gate sends itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    /// The query was malformed.
    FormErr = 1,
    /// No upstream answered, or the answer could not be enforced.
    ServFail = 2,
    /// Only standard queries (opcode 0) are forwarded.
    NotImp = 4,
    /// The gate is overloaded (in-flight table full, or rate limited on TCP).
    Refused = 5,
}

/// What a client's query asks for, as far as the gate needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryInfo {
    /// The client's transaction id (restored in the answer).
    pub id: u16,
    /// The question, lower-cased (`example.com`), with type and class.
    pub qname: String,
    pub qtype: u16,
    pub qclass: u16,
    /// The client's EDNS(0) UDP payload size, if it sent an OPT record.
    pub edns_udp_size: Option<u16>,
}

/// Why a query is not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryRejection {
    /// Not worth an answer (too short for a header, or an answer posing as a
    /// query): dropped silently.
    Drop,
    /// Answered with this code (the question copied back when it parses).
    Answer(Rcode),
}

/// Checks a client's message: one question, opcode QUERY, not a response,
/// at most one OPT record.
pub fn inspect_query(buf: &[u8]) -> Result<QueryInfo, QueryRejection> {
    if buf.len() < HEADER_LEN {
        return Err(QueryRejection::Drop);
    }
    let m = dns::parse_message(buf).map_err(|_| QueryRejection::Answer(Rcode::FormErr))?;
    if m.is_response {
        return Err(QueryRejection::Drop);
    }
    if m.opcode != 0 {
        return Err(QueryRejection::Answer(Rcode::NotImp));
    }
    let qdcount = u16::from_be_bytes([buf[4], buf[5]]);
    let Some(q) = m.question.filter(|_| qdcount == 1) else {
        return Err(QueryRejection::Answer(Rcode::FormErr));
    };
    let edns = dns::edns(buf).map_err(|_| QueryRejection::Answer(Rcode::FormErr))?;
    Ok(QueryInfo {
        id: m.id,
        qname: q.name.to_lowercase_string(),
        qtype: q.qtype,
        qclass: q.qclass,
        edns_udp_size: edns.map(|e| e.udp_size),
    })
}

/// The id of a message (first two bytes), if it has a header.
pub fn message_id(buf: &[u8]) -> Option<u16> {
    match buf.get(..2) {
        Some(&[a, b]) => Some(u16::from_be_bytes([a, b])),
        _ => None,
    }
}

/// Writes `id` into a message's header. Nothing else changes.
pub fn set_id(buf: &mut [u8], id: u16) {
    if let Some(h) = buf.get_mut(..2) {
        h.copy_from_slice(&id.to_be_bytes());
    }
}

/// Whether `resp` answers the query `q` that was sent upstream with id
/// `sent_id`: a response, same id, same question (name compared
/// case-insensitively, type, class). Anything else is ignored (a spoofed or
/// stale datagram), and the gate keeps waiting for the real answer.
pub fn answers_query(resp: &[u8], sent_id: u16, q: &QueryInfo) -> bool {
    let Ok(m) = dns::parse_message(resp) else {
        return false;
    };
    m.is_response
        && m.id == sent_id
        && m.question.is_some_and(|rq| {
            rq.name.eq_str(&q.qname) && rq.qtype == q.qtype && rq.qclass == q.qclass
        })
}

/// The largest answer the client accepts over UDP: 512 bytes without
/// EDNS(0), else its advertised size (at least 512), capped at `cap`.
pub fn udp_limit(edns_udp_size: Option<u16>, cap: u16) -> usize {
    match edns_udp_size {
        None => CLASSIC_UDP_SIZE,
        Some(s) => usize::from(s)
            .max(CLASSIC_UDP_SIZE)
            .min(usize::from(cap).max(CLASSIC_UDP_SIZE)),
    }
}

/// An answer cut to fit `limit` bytes for a UDP client: if it is larger, the
/// header and question only, with the TC bit set (RFC 2181 section 9), so
/// the client asks again over TCP. `None` when the answer fits as it is.
pub fn truncate_for_udp(answer: &[u8], limit: usize) -> Option<Vec<u8>> {
    if answer.len() <= limit {
        return None;
    }
    let mut out = header_and_question(answer)?;
    if let Some(f) = out.get_mut(2) {
        *f |= 0x02; // TC
    }
    Some(out)
}

/// Header (counts reset to one question) and the first question of a message.
fn header_and_question(msg: &[u8]) -> Option<Vec<u8>> {
    let head = msg.get(..HEADER_LEN)?;
    let q = dns::first_question_span(msg).ok();
    let mut out = Vec::with_capacity(HEADER_LEN + q.as_ref().map_or(0, |r| r.len()));
    out.extend_from_slice(head);
    out[4..12].fill(0);
    if let Some(r) = q {
        out[5] = 1;
        out.extend_from_slice(msg.get(r)?);
    }
    Some(out)
}

/// The gate's own answer to `query`: same id and question, QR and RA set,
/// RD copied, `rcode`. `None` when the query has no header.
pub fn error_answer(query: &[u8], rcode: Rcode) -> Option<Vec<u8>> {
    let mut out = header_and_question(query)?;
    let rd = out[2] & 0x01;
    let opcode = out[2] & 0x78;
    out[2] = 0x80 | opcode | rd; // QR, opcode, RD
    out[3] = 0x80 | (rcode as u8); // RA, rcode
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn query(id: u16, name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
        for l in name.split('.') {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        if let Some(sz) = edns {
            m.extend_from_slice(&[0, 0, 41]);
            m.extend_from_slice(&sz.to_be_bytes());
            m.extend_from_slice(&[0, 0, 0x80, 0, 0, 0]);
        }
        m
    }

    fn answer_to(q: &[u8], addrs: usize) -> Vec<u8> {
        let mut a = q.to_vec();
        a[2] |= 0x80;
        a[3] = 0x80;
        a[10] = 0;
        a[11] = 0;
        let qend = dns::first_question_span(q).expect("question").end;
        a.truncate(qend);
        a[7] = addrs as u8;
        for i in 0..addrs {
            a.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, i as u8]);
        }
        a
    }

    #[test]
    fn query_inspection() {
        let q = query(0xBEEF, "Zoom.US", 1, Some(1232));
        let info = inspect_query(&q).expect("valid");
        assert_eq!(info.id, 0xBEEF);
        assert_eq!(info.qname, "zoom.us");
        assert_eq!(info.edns_udp_size, Some(1232));
        assert_eq!(inspect_query(&q[..5]), Err(QueryRejection::Drop));
        let mut resp = q.clone();
        resp[2] |= 0x80;
        assert_eq!(inspect_query(&resp), Err(QueryRejection::Drop));
        let mut notify = q.clone();
        notify[2] = 0x20; // opcode 4 (NOTIFY)
        assert_eq!(
            inspect_query(&notify),
            Err(QueryRejection::Answer(Rcode::NotImp))
        );
        let mut two = q.clone();
        two[5] = 2;
        assert_eq!(
            inspect_query(&two),
            Err(QueryRejection::Answer(Rcode::FormErr))
        );
        let mut none = q.clone();
        none[5] = 0;
        assert!(inspect_query(&none).is_err());
        assert_eq!(
            inspect_query(&q[..q.len() - 3]),
            Err(QueryRejection::Answer(Rcode::FormErr))
        );
    }

    #[test]
    fn id_rewrite_changes_only_the_id() {
        let q = query(7, "example.com", 28, None);
        let mut w = q.clone();
        set_id(&mut w, 0xA5A5);
        assert_eq!(message_id(&w), Some(0xA5A5));
        assert_eq!(&w[2..], &q[2..]);
        set_id(&mut [0u8][..], 1); // too short: no panic, nothing written
        assert_eq!(message_id(&[1]), None);
    }

    #[test]
    fn answer_matching() {
        let q = query(1, "zoom.us", 1, None);
        let info = inspect_query(&q).expect("valid");
        let mut a = answer_to(&q, 1);
        set_id(&mut a, 999);
        assert!(answers_query(&a, 999, &info));
        assert!(!answers_query(&a, 998, &info), "wrong id");
        let other = answer_to(&query(999, "zoom.uz", 1, None), 1);
        assert!(!answers_query(&other, 999, &info), "wrong name");
        let aaaa = answer_to(&query(999, "zoom.us", 28, None), 0);
        assert!(!answers_query(&aaaa, 999, &info), "wrong type");
        let mut as_query = a.clone();
        as_query[2] &= 0x7F;
        assert!(!answers_query(&as_query, 999, &info), "not a response");
        assert!(!answers_query(&a[..20], 999, &info), "cut");
        let mut upper = answer_to(&query(999, "ZOOM.us", 1, None), 1);
        set_id(&mut upper, 999);
        assert!(answers_query(&upper, 999, &info), "case-insensitive");
    }

    #[test]
    fn udp_limits() {
        assert_eq!(udp_limit(None, 1232), 512);
        assert_eq!(udp_limit(Some(100), 1232), 512);
        assert_eq!(udp_limit(Some(4096), 1232), 1232);
        assert_eq!(udp_limit(Some(1000), 1232), 1000);
        assert_eq!(udp_limit(Some(4096), 100), 512);
    }

    #[test]
    fn truncation_keeps_header_and_question() {
        let q = query(5, "many.example", 1, None);
        let a = answer_to(&q, 40); // 40 * 16 bytes of answers: > 512
        assert!(a.len() > 512);
        let t = truncate_for_udp(&a, 512).expect("truncated");
        let m = dns::parse_message(&t).expect("parses");
        assert!(m.tc && m.is_response);
        assert_eq!(m.id, 5);
        assert!(m.answers.is_empty());
        assert!(m.question.expect("q").name.eq_str("many.example"));
        assert!(t.len() <= 512);
        assert_eq!(truncate_for_udp(&a, a.len()), None);
    }

    #[test]
    fn error_answers() {
        let q = query(0x1234, "example.com", 1, Some(4096));
        let e = error_answer(&q, Rcode::ServFail).expect("answer");
        let m = dns::parse_message(&e).expect("parses");
        assert!(m.is_response);
        assert_eq!(m.id, 0x1234);
        assert_eq!(m.rcode, 2);
        assert!(m.question.expect("q").name.eq_str("example.com"));
        assert_eq!(e[2] & 0x01, 1, "RD copied");
        // A query whose question does not parse still gets a header.
        let mut bad = q[..14].to_vec();
        bad[5] = 1;
        let e = error_answer(&bad, Rcode::FormErr).expect("header only");
        assert_eq!(e.len(), HEADER_LEN);
        assert_eq!(e[3] & 0x0F, 1);
        assert_eq!(error_answer(&q[..3], Rcode::FormErr), None);
    }
}
