//! DNS message parser (RFC 1035) for answers that cross the gateway.
//!
//! Zero-copy: names are kept as positions inside the message and decoded
//! (lower-cased) only when asked for, so a parse costs one allocation (the
//! answer list). Bounded: at most [`MAX_ANSWERS`] answer records are read,
//! compression pointers must point strictly backwards (before the start of the
//! name segment that contains them) and at most [`MAX_POINTER_JUMPS`] jumps
//! are followed, names are at most 255 bytes with labels of at most 63 bytes,
//! and label bytes must be printable ASCII other than `.`.
//!
//! [`resolutions`] turns an answer into `address -> names` facts: for each A
//! or AAAA record it follows the CNAME chain back towards the queried name, so
//! `teams.microsoft.com CNAME teams.office.com CNAME s-0005.s-msedge.net A
//! 52.113.194.132` yields `52.113.194.132` with all three names.
//!
//! Over TCP, DNS messages carry a two-byte length prefix: [`parse_tcp_stream`]
//! splits a stream into messages.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// At most this many answer records are read; later ones are ignored and
/// [`DnsMessage::answers_truncated`] is set.
pub const MAX_ANSWERS: usize = 64;
/// At most this many compression pointers are followed while reading a name.
pub const MAX_POINTER_JUMPS: usize = 64;
/// Longest name on the wire (RFC 1035 section 2.3.4), length octets included.
pub const MAX_NAME_LEN: usize = 255;
/// Longest label.
pub const MAX_LABEL_LEN: usize = 63;
/// Longest CNAME chain followed by [`resolutions`].
pub const MAX_CNAME_DEPTH: usize = 16;

const HEADER_LEN: usize = 12;

/// Why a DNS message was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("DNS message truncated")]
    Truncated,
    #[error("DNS name has a bad label type or length")]
    BadLabel,
    #[error("DNS name contains a non-printable or '.' byte")]
    BadNameByte,
    #[error("DNS name longer than 255 bytes")]
    NameTooLong,
    #[error("DNS compression pointer does not point backwards")]
    BadPointer,
    #[error("DNS name follows too many compression pointers")]
    TooManyJumps,
    #[error("DNS record data does not match its type")]
    BadRdata,
}

/// A domain name inside a message: decoded on demand.
#[derive(Clone, Copy)]
pub struct Name<'a> {
    msg: &'a [u8],
    off: u16,
}

impl<'a> Name<'a> {
    /// The labels of the name, in order, as raw bytes (original case).
    pub fn labels(&self) -> Labels<'a> {
        Labels {
            msg: self.msg,
            pos: usize::from(self.off),
            jumps: 0,
        }
    }

    /// True for the root name (no labels).
    pub fn is_root(&self) -> bool {
        self.labels().next().is_none()
    }

    /// Compares two names case-insensitively without allocating.
    pub fn eq_name(&self, other: &Name<'_>) -> bool {
        let mut a = self.labels();
        let mut b = other.labels();
        loop {
            match (a.next(), b.next()) {
                (None, None) => return true,
                (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => {}
                _ => return false,
            }
        }
    }

    /// Compares with a dotted name such as `example.com` (case-insensitive,
    /// a trailing dot is allowed).
    pub fn eq_str(&self, dotted: &str) -> bool {
        let dotted = dotted.strip_suffix('.').unwrap_or(dotted);
        let mut labels = self.labels();
        if dotted.is_empty() {
            return labels.next().is_none();
        }
        for part in dotted.split('.') {
            match labels.next() {
                Some(l) if l.eq_ignore_ascii_case(part.as_bytes()) => {}
                _ => return false,
            }
        }
        labels.next().is_none()
    }

    /// The name lower-cased, labels joined with `.`, no trailing dot (the
    /// root name is the empty string).
    pub fn to_lowercase_string(&self) -> String {
        let mut s = String::with_capacity(32);
        for (i, l) in self.labels().enumerate() {
            if i > 0 {
                s.push('.');
            }
            // Label bytes were checked to be printable ASCII by the parser.
            s.extend(l.iter().map(|b| char::from(b.to_ascii_lowercase())));
        }
        s
    }
}

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_lowercase_string())
    }
}

impl fmt::Debug for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({:?})", self.to_lowercase_string())
    }
}

impl PartialEq for Name<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.eq_name(other)
    }
}

/// Iterator over the labels of a validated name. Stops (rather than fail) on
/// anything unexpected, and follows at most [`MAX_POINTER_JUMPS`] pointers.
pub struct Labels<'a> {
    msg: &'a [u8],
    pos: usize,
    jumps: usize,
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let len = *self.msg.get(self.pos)?;
            match len & 0xC0 {
                0x00 => {
                    if len == 0 {
                        return None;
                    }
                    let start = self.pos + 1;
                    let end = start + usize::from(len);
                    let label = self.msg.get(start..end)?;
                    self.pos = end;
                    return Some(label);
                }
                0xC0 => {
                    self.jumps += 1;
                    if self.jumps > MAX_POINTER_JUMPS {
                        return None;
                    }
                    let lo = *self.msg.get(self.pos + 1)?;
                    let target = (usize::from(len & 0x3F) << 8) | usize::from(lo);
                    if target >= self.pos {
                        return None;
                    }
                    self.pos = target;
                }
                _ => return None,
            }
        }
    }
}

/// Validates the name at `off` and returns it with the offset just after it
/// (after the first pointer, if the name is compressed).
fn read_name(msg: &[u8], off: usize) -> Result<(Name<'_>, usize), DnsError> {
    let name_off = u16::try_from(off).map_err(|_| DnsError::Truncated)?;
    let mut pos = off;
    // Start of the segment being read: a pointer must point before it.
    let mut seg_start = off;
    let mut after: Option<usize> = None;
    let mut jumps = 0usize;
    let mut total = 1usize; // the final zero octet
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Truncated)?;
        match len & 0xC0 {
            0x00 => {
                if len == 0 {
                    let next = after.unwrap_or(pos + 1);
                    return Ok((Name { msg, off: name_off }, next));
                }
                let l = usize::from(len);
                // (len <= 63 is implied by the two top bits being zero)
                total += l + 1;
                if total > MAX_NAME_LEN {
                    return Err(DnsError::NameTooLong);
                }
                let label = msg.get(pos + 1..pos + 1 + l).ok_or(DnsError::Truncated)?;
                if !label
                    .iter()
                    .all(|&b| (0x21..=0x7E).contains(&b) && b != b'.')
                {
                    return Err(DnsError::BadNameByte);
                }
                pos += 1 + l;
            }
            0xC0 => {
                let lo = *msg.get(pos + 1).ok_or(DnsError::Truncated)?;
                let target = (usize::from(len & 0x3F) << 8) | usize::from(lo);
                if target >= seg_start {
                    return Err(DnsError::BadPointer);
                }
                jumps += 1;
                if jumps > MAX_POINTER_JUMPS {
                    return Err(DnsError::TooManyJumps);
                }
                if after.is_none() {
                    after = Some(pos + 2);
                }
                pos = target;
                seg_start = target;
            }
            _ => return Err(DnsError::BadLabel),
        }
    }
}

/// Offset just after the name at `off`, without following pointers.
fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize, DnsError> {
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Truncated)?;
        match len & 0xC0 {
            0x00 if len == 0 => return Ok(pos + 1),
            0x00 => pos += 1 + usize::from(len),
            0xC0 => return Ok(pos + 2),
            _ => return Err(DnsError::BadLabel),
        }
    }
}

/// Record types the parser names.
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const PTR: u16 = 12;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const SVCB: u16 = 64;
    pub const HTTPS: u16 = 65;
}

/// The (first) question of a message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Question<'a> {
    pub name: Name<'a>,
    pub qtype: u16,
    pub qclass: u16,
}

/// Decoded record data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RData<'a> {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(Name<'a>),
    /// SVCB (64) or HTTPS (65) record: its address hints.
    Svcb(Svcb<'a>),
    /// Any other type or class: the raw record data.
    Other(&'a [u8]),
}

/// The parts of an SVCB/HTTPS record (RFC 9460) that name addresses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Svcb<'a> {
    /// 0 for AliasMode.
    pub priority: u16,
    /// Target name (the root name means the owner itself).
    pub target: Name<'a>,
    ipv4hint: &'a [u8],
    ipv6hint: &'a [u8],
}

impl Svcb<'_> {
    /// Addresses of the `ipv4hint` parameter.
    pub fn ipv4_hints(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.ipv4hint.chunks_exact(4).filter_map(|c| {
            let o: [u8; 4] = c.try_into().ok()?;
            Some(Ipv4Addr::from(o))
        })
    }
    /// Addresses of the `ipv6hint` parameter.
    pub fn ipv6_hints(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.ipv6hint.chunks_exact(16).filter_map(|c| {
            let o: [u8; 16] = c.try_into().ok()?;
            Some(Ipv6Addr::from(o))
        })
    }
}

/// Parses SVCB/HTTPS record data starting at `start` (ending at `end`).
fn parse_svcb(buf: &[u8], start: usize, end: usize) -> Result<Svcb<'_>, DnsError> {
    let priority = be16(buf, start)?;
    let (target, mut pos) = read_name(buf, start + 2)?;
    let mut svcb = Svcb {
        priority,
        target,
        ipv4hint: &[],
        ipv6hint: &[],
    };
    while pos < end {
        let key = be16(buf, pos)?;
        let len = usize::from(be16(buf, pos + 2)?);
        let value = buf.get(pos + 4..pos + 4 + len).ok_or(DnsError::Truncated)?;
        pos += 4 + len;
        match key {
            4 if len % 4 == 0 => svcb.ipv4hint = value,
            6 if len % 16 == 0 => svcb.ipv6hint = value,
            4 | 6 => return Err(DnsError::BadRdata),
            _ => {}
        }
    }
    if pos != end {
        return Err(DnsError::BadRdata);
    }
    Ok(svcb)
}

/// One answer record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Answer<'a> {
    pub name: Name<'a>,
    pub rtype: u16,
    /// Class with the mDNS cache-flush bit cleared.
    pub class: u16,
    pub ttl: u32,
    pub data: RData<'a>,
}

/// A parsed DNS message (header, first question, answer section).
#[derive(Debug, Clone, PartialEq)]
pub struct DnsMessage<'a> {
    pub id: u16,
    pub is_response: bool,
    pub opcode: u8,
    /// Truncation (TC) flag: the answer did not fit a UDP datagram.
    pub tc: bool,
    pub rcode: u8,
    pub question: Option<Question<'a>>,
    pub answers: Vec<Answer<'a>>,
    /// More than [`MAX_ANSWERS`] answers were announced; the rest were skipped.
    pub answers_truncated: bool,
}

fn be16(b: &[u8], off: usize) -> Result<u16, DnsError> {
    match b.get(off..off + 2) {
        Some(&[x, y]) => Ok(u16::from_be_bytes([x, y])),
        _ => Err(DnsError::Truncated),
    }
}

fn be32(b: &[u8], off: usize) -> Result<u32, DnsError> {
    match b.get(off..off + 4) {
        Some(&[w, x, y, z]) => Ok(u32::from_be_bytes([w, x, y, z])),
        _ => Err(DnsError::Truncated),
    }
}

/// Parses one DNS message (a UDP payload, or one message of a TCP stream
/// without its length prefix). Reads the header, all questions (keeping the
/// first) and up to [`MAX_ANSWERS`] answers; authority and additional
/// sections are not read.
pub fn parse_message(buf: &[u8]) -> Result<DnsMessage<'_>, DnsError> {
    if buf.len() < HEADER_LEN {
        return Err(DnsError::Truncated);
    }
    let id = be16(buf, 0)?;
    let flags = be16(buf, 2)?;
    let qdcount = be16(buf, 4)?;
    let ancount = be16(buf, 6)?;
    let mut pos = HEADER_LEN;
    let mut question = None;
    for i in 0..qdcount {
        // Only the first question is decoded; others (practically never
        // sent) are skipped without following pointers.
        let next = if i == 0 {
            let (name, next) = read_name(buf, pos)?;
            question = Some(Question {
                name,
                qtype: be16(buf, next)?,
                qclass: be16(buf, next + 2)?,
            });
            next
        } else {
            skip_name(buf, pos)?
        };
        pos = next + 4;
        if pos > buf.len() {
            return Err(DnsError::Truncated);
        }
    }
    let take = usize::from(ancount).min(MAX_ANSWERS);
    // Each record needs at least 11 bytes: do not reserve for lies.
    let mut answers = Vec::with_capacity(take.min(buf.len().saturating_sub(pos) / 11));
    for _ in 0..take {
        let (name, next) = read_name(buf, pos)?;
        let rt = be16(buf, next)?;
        let class = be16(buf, next + 2)? & 0x7FFF;
        let ttl = be32(buf, next + 4)?;
        let rdlen = usize::from(be16(buf, next + 8)?);
        let rd_start = next + 10;
        let rd_end = rd_start + rdlen;
        let rdata = buf.get(rd_start..rd_end).ok_or(DnsError::Truncated)?;
        let data = match (rt, class) {
            (rtype::A, 1) => match rdata {
                &[a, b, c, d] => RData::A(Ipv4Addr::new(a, b, c, d)),
                _ => return Err(DnsError::BadRdata),
            },
            (rtype::AAAA, 1) => {
                let octets: [u8; 16] = rdata.try_into().map_err(|_| DnsError::BadRdata)?;
                RData::Aaaa(Ipv6Addr::from(octets))
            }
            (rtype::CNAME, 1) => {
                let (target, end) = read_name(buf, rd_start)?;
                if end != rd_end {
                    return Err(DnsError::BadRdata);
                }
                RData::Cname(target)
            }
            (rtype::SVCB | rtype::HTTPS, 1) => RData::Svcb(parse_svcb(buf, rd_start, rd_end)?),
            _ => RData::Other(rdata),
        };
        answers.push(Answer {
            name,
            rtype: rt,
            class,
            ttl,
            data,
        });
        pos = rd_end;
    }
    Ok(DnsMessage {
        id,
        is_response: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0x0F) as u8,
        tc: flags & 0x0200 != 0,
        rcode: (flags & 0x000F) as u8,
        question,
        answers,
        answers_truncated: usize::from(ancount) > MAX_ANSWERS,
    })
}

/// Byte range of the first question (name, type and class) of a message,
/// so a responder can copy it into an error answer unchanged.
pub fn first_question_span(buf: &[u8]) -> Result<std::ops::Range<usize>, DnsError> {
    if be16(buf, 4)? == 0 {
        return Err(DnsError::Truncated);
    }
    let end = skip_name(buf, HEADER_LEN)? + 4;
    if end > buf.len() {
        return Err(DnsError::Truncated);
    }
    Ok(HEADER_LEN..end)
}

/// The EDNS(0) OPT pseudo-record of a message (RFC 6891), if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// The sender's UDP payload size (the OPT record's class field).
    pub udp_size: u16,
    /// DNSSEC OK bit.
    pub dnssec_ok: bool,
}

/// Most records walked by [`edns`] (all sections together).
pub const MAX_RECORDS_WALKED: usize = 256;

/// Finds the OPT record in the additional section. Walks every record
/// (without decoding it) after the questions; at most
/// [`MAX_RECORDS_WALKED`] records. `Ok(None)` when the message has none.
pub fn edns(buf: &[u8]) -> Result<Option<Edns>, DnsError> {
    let qd = usize::from(be16(buf, 4)?);
    let an = usize::from(be16(buf, 6)?);
    let ns = usize::from(be16(buf, 8)?);
    let ar = usize::from(be16(buf, 10)?);
    if an + ns + ar > MAX_RECORDS_WALKED {
        return Err(DnsError::BadRdata);
    }
    let mut pos = HEADER_LEN;
    for _ in 0..qd.min(MAX_RECORDS_WALKED) {
        pos = skip_name(buf, pos)? + 4;
    }
    let mut found = None;
    for i in 0..an + ns + ar {
        let next = skip_name(buf, pos)?;
        let rt = be16(buf, next)?;
        let class = be16(buf, next + 2)?;
        let ttl = be32(buf, next + 4)?;
        let rdlen = usize::from(be16(buf, next + 8)?);
        pos = next + 10 + rdlen;
        if pos > buf.len() {
            return Err(DnsError::Truncated);
        }
        if rt == 41 && i >= an + ns {
            if found.is_some() {
                // RFC 6891 6.1.1: more than one OPT record is an error.
                return Err(DnsError::BadRdata);
            }
            found = Some(Edns {
                udp_size: class,
                dnssec_ok: ttl & 0x8000 != 0,
            });
        }
    }
    Ok(found)
}

/// Splits a client or server DNS-over-TCP byte stream into messages (each
/// preceded by a two-byte length). Stops at the first incomplete message;
/// [`TcpMessages::consumed`] tells how many bytes were complete.
pub fn split_tcp_stream(stream: &[u8]) -> TcpMessages<'_> {
    TcpMessages { stream, pos: 0 }
}

/// Parses every complete message of a DNS-over-TCP byte stream.
pub fn parse_tcp_stream(stream: &[u8]) -> Vec<Result<DnsMessage<'_>, DnsError>> {
    split_tcp_stream(stream).map(parse_message).collect()
}

/// Iterator over the length-prefixed messages of a TCP stream.
pub struct TcpMessages<'a> {
    stream: &'a [u8],
    pos: usize,
}

impl TcpMessages<'_> {
    /// Bytes of the stream covered by the messages returned so far.
    pub fn consumed(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for TcpMessages<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(be16(self.stream, self.pos).ok()?);
        let start = self.pos + 2;
        let msg = self.stream.get(start..start + len)?;
        self.pos = start + len;
        Some(msg)
    }
}

/// One address a DNS answer resolved, with the names that led to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub addr: IpAddr,
    /// The smallest TTL along the chain (how long the mapping may be cached).
    pub ttl: u32,
    /// Lower-cased names from the head of the chain (normally the queried
    /// name) through each CNAME to the owner of the address record.
    pub names: Vec<String>,
}

/// For each A/AAAA answer of a response (and each address hint of an
/// SVCB/HTTPS answer), the chain of names that led to the address. Follows
/// CNAMEs backwards at most [`MAX_CNAME_DEPTH`] steps and never visits a
/// record twice (cycles end the chain). The queried name is included only
/// when the chain actually reaches it. Duplicate addresses are reported
/// once. Returns nothing for queries.
pub fn resolutions(msg: &DnsMessage<'_>) -> Vec<Resolution> {
    let mut out: Vec<Resolution> = Vec::new();
    if !msg.is_response {
        return out;
    }
    let answers = msg
        .answers
        .get(..msg.answers.len().min(MAX_ANSWERS))
        .unwrap_or(&[]);
    let mut addrs: Vec<IpAddr> = Vec::new();
    for ans in answers {
        addrs.clear();
        match ans.data {
            RData::A(a) => addrs.push(IpAddr::V4(a)),
            RData::Aaaa(a) => addrs.push(IpAddr::V6(a)),
            RData::Svcb(s) => {
                addrs.extend(s.ipv4_hints().map(IpAddr::V4));
                addrs.extend(s.ipv6_hints().map(IpAddr::V6));
            }
            _ => continue,
        }
        addrs.retain(|a| !out.iter().any(|r| r.addr == *a));
        if addrs.is_empty() {
            continue;
        }
        let (names, ttl) = chain_to(answers, ans);
        for &addr in &addrs {
            if !out.iter().any(|r| r.addr == addr) {
                out.push(Resolution {
                    addr,
                    ttl,
                    names: names.clone(),
                });
            }
        }
    }
    out
}

/// The CNAME chain (as lower-cased names, head first) that ends at the
/// owner of `ans`, and the smallest TTL on it.
fn chain_to(answers: &[Answer<'_>], ans: &Answer<'_>) -> (Vec<String>, u32) {
    // Chain from the address owner backwards, as answer indices.
    let mut chain: [usize; MAX_CNAME_DEPTH] = [0; MAX_CNAME_DEPTH];
    let mut depth = 0;
    let mut visited: u64 = 0; // answers <= 64
    let mut ttl = ans.ttl;
    let mut head = ans.name;
    while depth < MAX_CNAME_DEPTH {
        let found = answers.iter().take(64).enumerate().find(|(i, a)| {
            visited & (1u64 << i) == 0 && matches!(a.data, RData::Cname(t) if t.eq_name(&head))
        });
        let Some((i, a)) = found else { break };
        visited |= 1u64 << i;
        if let Some(slot) = chain.get_mut(depth) {
            *slot = i;
        }
        depth += 1;
        ttl = ttl.min(a.ttl);
        head = a.name;
    }
    let mut names = Vec::with_capacity(depth + 1);
    for &i in chain.iter().take(depth).rev() {
        if let Some(a) = answers.get(i) {
            let n = a.name.to_lowercase_string();
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    let owner = ans.name.to_lowercase_string();
    if !names.contains(&owner) {
        names.push(owner);
    }
    (names, ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_name(out: &mut Vec<u8>, name: &str) {
        for l in name.split('.') {
            out.push(l.len() as u8);
            out.extend_from_slice(l.as_bytes());
        }
        out.push(0);
    }

    #[test]
    fn query_roundtrip() {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        push_name(&mut m, "Meet.Google.COM");
        m.extend_from_slice(&[0, 1, 0, 1]);
        let p = parse_message(&m).expect("parses");
        assert_eq!(p.id, 0x1234);
        assert!(!p.is_response);
        let q = p.question.expect("question");
        assert_eq!(q.name.to_lowercase_string(), "meet.google.com");
        assert!(q.name.eq_str("meet.google.com."));
        assert!(!q.name.eq_str("meet.google"));
        assert_eq!(q.qtype, rtype::A);
        assert!(resolutions(&p).is_empty());
    }

    #[test]
    fn edns_and_question_span() {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        push_name(&mut m, "example.com");
        m.extend_from_slice(&[0, 1, 0, 1]);
        let qend = m.len();
        // OPT: root name, type 41, class = 1232, ttl with DO set, rdlen 0.
        m.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0x80, 0, 0, 0]);
        assert_eq!(first_question_span(&m), Ok(12..qend));
        assert_eq!(
            edns(&m),
            Ok(Some(Edns {
                udp_size: 1232,
                dnssec_ok: true
            }))
        );
        // Without the OPT record.
        let mut plain = m[..qend].to_vec();
        plain[11] = 0;
        assert_eq!(edns(&plain), Ok(None));
        // Two OPT records are an error; a cut record is truncated.
        let mut two = m.clone();
        two[11] = 2;
        two.extend_from_slice(&[0, 0, 41, 0x02, 0x00, 0, 0, 0, 0, 0, 0]);
        assert_eq!(edns(&two), Err(DnsError::BadRdata));
        assert_eq!(edns(&m[..m.len() - 1]), Err(DnsError::Truncated));
        // Counts that announce more records than the walk allows.
        let mut many = m.clone();
        many[6] = 0xFF;
        assert_eq!(edns(&many), Err(DnsError::BadRdata));
        assert!(first_question_span(&m[..qend - 1]).is_err());
    }

    #[test]
    fn self_pointer_rejected() {
        let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        assert_eq!(parse_message(&m), Err(DnsError::BadPointer));
    }

    #[test]
    fn forward_pointer_rejected() {
        let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&[0xC0, 14, 1, b'a', 0, 0, 1, 0, 1]);
        assert_eq!(parse_message(&m), Err(DnsError::BadPointer));
    }
}
