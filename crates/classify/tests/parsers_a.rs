//! DNS, TLS/DTLS ClientHello and QUIC Initial parsers: RFC samples, real
//! bytes from the corpus (teams, dingtalk, google meet, dtls captures),
//! truncation at every length, hostile inputs and a deterministic mutation
//! loop that must never panic.

use geofence_classify::dns::{self, rtype, DnsError, RData};
use geofence_classify::quic::{self, CryptoAssembler, CryptoState, QuicError};
use geofence_classify::tls::{self, HelloAssembler, HelloParse};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

const RFC9001_A2: &str = include_str!("../testdata/a/rfc9001_a2_client_initial.hex");
const RFC9001_A2_CRYPTO: &str = include_str!("../testdata/a/rfc9001_a2_crypto_frame.hex");
const RFC9369_A2: &str = include_str!("../testdata/a/rfc9369_a2_client_initial.hex");
const MEET_INITIAL: &str = include_str!("../testdata/a/google_meet_quic_initial.hex");
const TEAMS_DNS: &str = include_str!("../testdata/a/teams_dns_responses.hex");
const TEAMS_HELLO: &str = include_str!("../testdata/a/teams_clienthello.hex");
const DINGTALK_SPLIT: &str = include_str!("../testdata/a/dingtalk_clienthello_split.txt");
const GQUIC_CHLO: &str = include_str!("../testdata/a/gquic_chlo.hex");
const DTLS_HELLOS: &str = include_str!("../testdata/a/dtls_client_hellos.hex");

/// xorshift64*: deterministic pseudo-random numbers for mutation tests.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// One random mutation: bit flip, byte set, length-field lie (0x00/0xff
/// pairs), insertion, deletion or truncation.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        if v.is_empty() {
            v.push(rng.next() as u8);
            continue;
        }
        let i = rng.below(v.len());
        match rng.below(7) {
            0 => v[i] ^= 1 << rng.below(8),
            1 => v[i] = rng.next() as u8,
            2 => {
                v[i] = 0xFF;
                if i + 1 < v.len() {
                    v[i + 1] = 0xFF;
                }
            }
            3 => {
                v[i] = 0;
                if i + 1 < v.len() {
                    v[i + 1] = rng.next() as u8 & 0x3F;
                }
            }
            4 => {
                for _ in 0..1 + rng.below(8) {
                    v.insert(i, rng.next() as u8);
                }
            }
            5 => {
                let n = rng.below(8).min(v.len() - i);
                v.drain(i..i + n);
            }
            _ => v.truncate(i),
        }
    }
    v
}

fn sni_of(p: &HelloParse<'_>) -> Option<String> {
    match p {
        HelloParse::Hello(h) => h.sni.as_deref().map(str::to_string),
        _ => None,
    }
}

// ---------------------------------------------------------------- DNS

fn push_name(out: &mut Vec<u8>, name: &str) {
    for l in name.split('.').filter(|l| !l.is_empty()) {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
}

fn header(id: u16, flags: u16, qd: u16, an: u16) -> Vec<u8> {
    let mut m = Vec::new();
    for x in [id, flags, qd, an, 0, 0] {
        m.extend_from_slice(&x.to_be_bytes());
    }
    m
}

fn record(m: &mut Vec<u8>, owner: &[u8], ty: u16, ttl: u32, rdata: &[u8]) {
    m.extend_from_slice(owner);
    m.extend_from_slice(&ty.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(&ttl.to_be_bytes());
    m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    m.extend_from_slice(rdata);
}

fn encoded(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    push_name(&mut v, name);
    v
}

fn teams_dns() -> Vec<Vec<u8>> {
    TEAMS_DNS
        .lines()
        .filter(|l| !l.is_empty())
        .map(unhex)
        .collect()
}

#[test]
fn dns_teams_corpus_answers_with_cname_chains() {
    let msgs = teams_dns();
    assert_eq!(msgs.len(), 22);
    let mut found = false;
    for raw in &msgs {
        let m = dns::parse_message(raw).expect("every corpus answer parses");
        assert!(m.is_response);
        let q = m.question.expect("question");
        if q.name.eq_str("config.teams.microsoft.com") {
            found = true;
            assert_eq!(m.answers.len(), 4);
            let r = dns::resolutions(&m);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].addr, IpAddr::V4(Ipv4Addr::new(52, 113, 194, 132)));
            assert_eq!(
                r[0].names,
                [
                    "config.teams.microsoft.com",
                    "config.teams.trafficmanager.net",
                    "config-teams.s-0005.s-msedge.net",
                    "s-0005.s-msedge.net"
                ]
            );
            assert!(r[0].ttl <= m.answers.iter().map(|a| a.ttl).min().unwrap_or(0));
        }
        // Every address record yields a resolution whose first name is the
        // question (these answers are all well-formed chains).
        for res in dns::resolutions(&m) {
            assert_eq!(res.names[0], q.name.to_lowercase_string());
        }
    }
    assert!(
        found,
        "the config.teams.microsoft.com answer is in the sample"
    );
}

#[test]
fn dns_every_prefix_of_corpus_answers_is_an_error() {
    for raw in teams_dns() {
        if raw[8..12] != [0, 0, 0, 0] {
            // Authority/additional records are not read: cutting them off
            // still leaves a valid header, question and answers.
            for n in 0..raw.len() {
                let _ = dns::parse_message(&raw[..n]);
            }
            continue;
        }
        for n in 0..raw.len() {
            assert!(
                dns::parse_message(&raw[..n]).is_err(),
                "prefix {n} of {}",
                raw.len()
            );
        }
    }
}

#[test]
fn dns_hand_built_compressed_answer_with_aaaa() {
    let mut m = header(7, 0x8180, 1, 3);
    push_name(&mut m, "Teams.Microsoft.com");
    m.extend_from_slice(&[0, 28, 0, 1]);
    // teams.microsoft.com CNAME teams.office.com (compressed "com")
    let mut target = vec![5];
    target.extend_from_slice(b"teams");
    target.push(6);
    target.extend_from_slice(b"office");
    target.extend_from_slice(&[0xC0, 12 + 6 + 10]); // -> "com" of the question
    record(&mut m, &[0xC0, 12], rtype::CNAME, 300, &target);
    let target_off = (m.len() - target.len()) as u8;
    // teams.office.com CNAME s-0005.s-msedge.net
    record(
        &mut m,
        &[0xC0, target_off],
        rtype::CNAME,
        60,
        &encoded("s-0005.s-msedge.net"),
    );
    let last_off = (m.len() - encoded("s-0005.s-msedge.net").len()) as u8;
    let v6: Ipv6Addr = "2603:1063::2".parse().expect("v6");
    record(&mut m, &[0xC0, last_off], rtype::AAAA, 3600, &v6.octets());
    let p = dns::parse_message(&m).expect("parses");
    assert_eq!(p.id, 7);
    assert_eq!(p.rcode, 0);
    assert_eq!(p.question.map(|q| q.qtype), Some(rtype::AAAA));
    assert!(
        matches!(p.answers[0].data, RData::Cname(n) if n.to_lowercase_string() == "teams.office.com")
    );
    let r = dns::resolutions(&p);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].addr, IpAddr::V6(v6));
    assert_eq!(r[0].ttl, 60);
    assert_eq!(
        r[0].names,
        [
            "teams.microsoft.com",
            "teams.office.com",
            "s-0005.s-msedge.net"
        ]
    );
}

#[test]
fn dns_https_record_address_hints() {
    // meet.example CNAME svc.example; svc.example HTTPS 1 . alpn=h3
    // ipv4hint=192.0.2.1,192.0.2.2 ipv6hint=2001:db8::1
    let mut m = header(3, 0x8180, 1, 2);
    push_name(&mut m, "meet.example");
    m.extend_from_slice(&[0, 65, 0, 1]);
    record(
        &mut m,
        &[0xC0, 12],
        rtype::CNAME,
        30,
        &encoded("svc.example"),
    );
    let svc_off = (m.len() - encoded("svc.example").len()) as u8;
    let mut rd = vec![0, 1, 0]; // priority 1, target "."
    rd.extend_from_slice(&[0, 1, 0, 3, 2, b'h', b'3']);
    rd.extend_from_slice(&[0, 4, 0, 8, 192, 0, 2, 1, 192, 0, 2, 2]);
    rd.extend_from_slice(&[0, 6, 0, 16]);
    rd.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().expect("v6").octets());
    record(&mut m, &[0xC0, svc_off], rtype::HTTPS, 300, &rd);
    let p = dns::parse_message(&m).expect("parses");
    let RData::Svcb(s) = p.answers[1].data else {
        panic!("{:?}", p.answers[1])
    };
    assert_eq!(s.priority, 1);
    assert!(s.target.is_root());
    let r = dns::resolutions(&p);
    let addrs: Vec<String> = r.iter().map(|x| x.addr.to_string()).collect();
    assert_eq!(addrs, ["192.0.2.1", "192.0.2.2", "2001:db8::1"]);
    for x in &r {
        assert_eq!(x.names, ["meet.example", "svc.example"]);
        assert_eq!(x.ttl, 30);
    }
    // A hint whose length is not a multiple of 4 is malformed.
    let mut bad = m.clone();
    let pos = bad.len() - rd.len() + 3 + 7 + 3; // ipv4hint length, low byte
    assert_eq!(bad[pos], 8);
    bad[pos] = 7;
    assert_eq!(dns::parse_message(&bad), Err(DnsError::BadRdata));
}

#[test]
fn dns_compression_loops_and_bad_names_are_rejected() {
    // Pointer to itself.
    let mut m = header(1, 0x8180, 1, 0);
    m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
    assert_eq!(dns::parse_message(&m), Err(DnsError::BadPointer));
    // Two names pointing at each other: answer name at X -> question, the
    // question's tail points forward to X.
    let mut m = header(1, 0x8180, 1, 1);
    m.extend_from_slice(&[1, b'a', 0xC0, 20, 0, 1, 0, 1]); // q at 12: "a" + ptr->20
    m.extend_from_slice(&[1, b'b', 0xC0, 12]); // at 20: "b" + ptr->12
    assert_eq!(dns::parse_message(&m), Err(DnsError::BadPointer));
    // Name longer than 255 bytes.
    let mut m = header(1, 0x0100, 1, 0);
    for _ in 0..5 {
        m.push(63);
        m.extend_from_slice(&[b'a'; 63]);
    }
    m.push(0);
    m.extend_from_slice(&[0, 1, 0, 1]);
    assert_eq!(dns::parse_message(&m), Err(DnsError::NameTooLong));
    // Non-printable label byte.
    let mut m = header(1, 0x0100, 1, 0);
    m.extend_from_slice(&[3, b'a', 0x07, b'c', 0, 0, 1, 0, 1]);
    assert_eq!(dns::parse_message(&m), Err(DnsError::BadNameByte));
    // Extended label type 0x40.
    let mut m = header(1, 0x0100, 1, 0);
    m.extend_from_slice(&[0x41, b'a', 0, 0, 1, 0, 1]);
    assert_eq!(dns::parse_message(&m), Err(DnsError::BadLabel));
    // A record with 5 bytes of data.
    let mut m = header(1, 0x8180, 0, 1);
    record(&mut m, &encoded("a.b"), rtype::A, 1, &[1, 2, 3, 4, 5]);
    assert_eq!(dns::parse_message(&m), Err(DnsError::BadRdata));
}

#[test]
fn dns_many_backward_pointer_hops_stop_at_the_cap() {
    // An opaque record whose data is a chain of pointers, each pointing at
    // the previous one (every hop points backwards, so each is legal), then
    // a record whose owner name enters the chain at its end.
    for (hops, ok) in [
        (dns::MAX_POINTER_JUMPS, true),
        (dns::MAX_POINTER_JUMPS + 1, false),
    ] {
        let mut m = header(1, 0x8180, 0, 2);
        let name_off = m.len() as u16;
        record(&mut m, &encoded("x.example"), 99, 1, &[]);
        let rdata_start = m.len() as u16;
        let mut soup = Vec::new();
        let mut prev = name_off;
        for i in 0..hops - 1 {
            soup.extend_from_slice(&(0xC000 | prev).to_be_bytes());
            prev = rdata_start + 2 * i as u16;
        }
        // Patch the opaque record's length and data.
        let len_pos = m.len() - 2;
        m[len_pos..].copy_from_slice(&(soup.len() as u16).to_be_bytes());
        m.extend_from_slice(&soup);
        record(
            &mut m,
            &(0xC000 | prev).to_be_bytes(),
            rtype::A,
            1,
            &[192, 0, 2, 1],
        );
        let r = dns::parse_message(&m);
        if ok {
            let p = r.expect("64 hops are allowed");
            assert_eq!(p.answers[1].name.to_lowercase_string(), "x.example");
        } else {
            assert_eq!(r, Err(DnsError::TooManyJumps));
        }
    }
}

#[test]
fn dns_long_cname_chains_and_cycles_are_bounded() {
    // 200-deep chain c0 -> c1 -> ... -> c199, A record last: only the first
    // 64 answers are read.
    let mut m = header(9, 0x8180, 1, 201);
    push_name(&mut m, "c0.example");
    m.extend_from_slice(&[0, 1, 0, 1]);
    for i in 0..200 {
        record(
            &mut m,
            &encoded(&format!("c{i}.example")),
            rtype::CNAME,
            100,
            &encoded(&format!("c{}.example", i + 1)),
        );
    }
    record(
        &mut m,
        &encoded("c200.example"),
        rtype::A,
        100,
        &[192, 0, 2, 9],
    );
    let p = dns::parse_message(&m).expect("parses");
    assert_eq!(p.answers.len(), dns::MAX_ANSWERS);
    assert!(p.answers_truncated);
    assert!(dns::resolutions(&p).is_empty());

    // 40-deep chain with the A record first: the chain walk stops at 16.
    let mut m = header(9, 0x8180, 1, 41);
    push_name(&mut m, "c0.example");
    m.extend_from_slice(&[0, 1, 0, 1]);
    record(
        &mut m,
        &encoded("c40.example"),
        rtype::A,
        100,
        &[192, 0, 2, 9],
    );
    for i in 0..40 {
        record(
            &mut m,
            &encoded(&format!("c{i}.example")),
            rtype::CNAME,
            100,
            &encoded(&format!("c{}.example", i + 1)),
        );
    }
    let p = dns::parse_message(&m).expect("parses");
    let r = dns::resolutions(&p);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].names.len(), dns::MAX_CNAME_DEPTH + 1);
    assert_eq!(r[0].names.last().map(String::as_str), Some("c40.example"));
    assert_eq!(
        r[0].names[0],
        format!("c{}.example", 40 - dns::MAX_CNAME_DEPTH)
    );

    // Cycle a -> b -> a plus an A record for a.
    let mut m = header(9, 0x8180, 1, 3);
    push_name(&mut m, "a.example");
    m.extend_from_slice(&[0, 1, 0, 1]);
    record(
        &mut m,
        &encoded("a.example"),
        rtype::CNAME,
        5,
        &encoded("b.example"),
    );
    record(
        &mut m,
        &encoded("b.example"),
        rtype::CNAME,
        5,
        &encoded("a.example"),
    );
    record(&mut m, &encoded("a.example"), rtype::A, 5, &[192, 0, 2, 7]);
    let p = dns::parse_message(&m).expect("parses");
    let r = dns::resolutions(&p);
    assert_eq!(r.len(), 1);
    // The walk ends when it would revisit a record; names are unique, the
    // queried name first.
    assert_eq!(r[0].names, ["a.example", "b.example"]);
}

#[test]
fn dns_tcp_stream_splits_messages() {
    let msgs = teams_dns();
    let mut stream = Vec::new();
    for m in &msgs[..3] {
        stream.extend_from_slice(&(m.len() as u16).to_be_bytes());
        stream.extend_from_slice(m);
    }
    let complete = stream.len();
    stream.extend_from_slice(&(msgs[3].len() as u16).to_be_bytes());
    stream.extend_from_slice(&msgs[3][..10]); // partial fourth
    let parsed = dns::parse_tcp_stream(&stream);
    assert_eq!(parsed.len(), 3);
    assert!(parsed.iter().all(|r| r.is_ok()));
    let mut it = dns::split_tcp_stream(&stream);
    assert_eq!(it.by_ref().count(), 3);
    assert_eq!(it.consumed(), complete);
}

#[test]
fn dns_mutations_never_panic() {
    let samples = teams_dns();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut ok = 0usize;
    for i in 0..200_000 {
        let s = &samples[i % samples.len()];
        let m = mutate(&mut rng, s);
        if let Ok(p) = dns::parse_message(&m) {
            ok += 1;
            for r in dns::resolutions(&p) {
                assert!(!r.names.is_empty() && r.names.len() <= dns::MAX_CNAME_DEPTH + 1);
            }
            for a in &p.answers {
                let _ = a.name.to_lowercase_string();
            }
        }
    }
    // Some mutations (e.g. in TTLs or addresses) leave valid messages.
    assert!(ok > 1000, "only {ok} mutants parsed");
}

// ---------------------------------------------------------------- TLS

fn teams_hello() -> Vec<u8> {
    unhex(TEAMS_HELLO)
}

fn dingtalk_segments() -> Vec<(u32, Vec<u8>)> {
    DINGTALK_SPLIT
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (seq, hex) = l.split_once(' ').expect("seq hex");
            (seq.parse().expect("seq"), unhex(hex))
        })
        .collect()
}

/// Re-frames a single-record hello into records of at most `chunk` bytes.
fn reframe(stream: &[u8], chunk: usize) -> Vec<u8> {
    let body = &stream[5..];
    let mut out = Vec::new();
    for c in body.chunks(chunk) {
        out.extend_from_slice(&[0x16, 3, 1]);
        out.extend_from_slice(&(c.len() as u16).to_be_bytes());
        out.extend_from_slice(c);
    }
    out
}

/// A TLS 1.3-style ClientHello with the given SNI, ALPN list and padding.
fn build_hello(sni: &[u8], alpn: &[&str], pad: usize) -> Vec<u8> {
    let mut exts = Vec::new();
    let mut sn = Vec::new();
    sn.extend_from_slice(&((sni.len() + 3) as u16).to_be_bytes());
    sn.push(0);
    sn.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    sn.extend_from_slice(sni);
    exts.extend_from_slice(&[0, 0]);
    exts.extend_from_slice(&(sn.len() as u16).to_be_bytes());
    exts.extend_from_slice(&sn);
    if !alpn.is_empty() {
        let mut l = Vec::new();
        for a in alpn {
            l.push(a.len() as u8);
            l.extend_from_slice(a.as_bytes());
        }
        exts.extend_from_slice(&[0, 16]);
        exts.extend_from_slice(&((l.len() + 2) as u16).to_be_bytes());
        exts.extend_from_slice(&(l.len() as u16).to_be_bytes());
        exts.extend_from_slice(&l);
    }
    // supported_versions: GREASE, TLS 1.3, TLS 1.2
    exts.extend_from_slice(&[0, 43, 0, 7, 6, 0x7A, 0x7A, 3, 4, 3, 3]);
    let mut left = pad;
    while left > 0 {
        let n = left.min(60_000);
        exts.extend_from_slice(&[0, 21]);
        exts.extend_from_slice(&(n as u16).to_be_bytes());
        exts.extend(std::iter::repeat_n(0u8, n));
        left -= n;
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(&[0x11; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 4, 0x13, 0x01, 0x13, 0x02, 1, 0]);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    // Records of at most 16 KiB.
    let mut out = Vec::new();
    for c in hs.chunks(16 * 1024) {
        out.extend_from_slice(&[0x16, 3, 1]);
        out.extend_from_slice(&(c.len() as u16).to_be_bytes());
        out.extend_from_slice(c);
    }
    out
}

#[test]
fn tls_teams_corpus_hello() {
    let s = teams_hello();
    let p = tls::parse_client_hello(&s);
    let HelloParse::Hello(h) = &p else {
        panic!("not a hello: {p:?}")
    };
    assert_eq!(h.sni.as_deref(), Some("teams.microsoft.com"));
    assert!(
        matches!(h.sni, Some(std::borrow::Cow::Borrowed(_))),
        "zero-copy SNI"
    );
    assert_eq!(h.legacy_version, 0x0303);
    assert!(h.cipher_suites > 4);
    // Strict prefixes all ask for more, with a need beyond what they have.
    for n in 0..s.len() {
        match tls::parse_client_hello(&s[..n]) {
            HelloParse::NeedMore { have, need } => {
                assert_eq!(have, n);
                assert!(need > n && need <= s.len(), "n={n} need={need}");
            }
            other => panic!("prefix {n}: {other:?}"),
        }
    }
}

#[test]
fn tls_hello_spread_over_many_records() {
    let s = teams_hello();
    for chunk in [1, 2, 3, 7, 50, 100] {
        let r = reframe(&s, chunk);
        assert_eq!(
            sni_of(&tls::parse_client_hello(&r)).as_deref(),
            Some("teams.microsoft.com"),
            "chunk {chunk}"
        );
        for n in 0..r.len() {
            match tls::parse_client_hello(&r[..n]) {
                HelloParse::NeedMore { have, need } => {
                    assert!(
                        have == n && need > n && need <= r.len(),
                        "chunk {chunk} n {n}"
                    )
                }
                other => panic!("chunk {chunk} prefix {n}: {other:?}"),
            }
        }
    }
}

#[test]
fn tls_dingtalk_split_over_two_segments() {
    let segs = dingtalk_segments();
    assert_eq!(segs.len(), 2);
    let first = &segs[0].1;
    match tls::parse_client_hello(first) {
        HelloParse::NeedMore { have, need } => {
            assert_eq!(have, 512);
            assert_eq!(need, 517);
        }
        other => panic!("{other:?}"),
    }
    // The SYN of this flow carried 869499457.
    let mut asm = HelloAssembler::from_syn(869_499_457);
    assert_eq!(segs[0].0, 869_499_458);
    asm.push(segs[1].0, &segs[1].1); // out of order
    assert!(matches!(
        asm.client_hello(),
        HelloParse::NeedMore { have: 0, .. }
    ));
    asm.push(segs[0].0, &segs[0].1);
    asm.push(segs[0].0, &segs[0].1); // retransmission
    assert_eq!(
        sni_of(&asm.client_hello()).as_deref(),
        Some("static.dingtalk.com")
    );
}

#[test]
fn tls_one_byte_segments_shuffled_with_duplicates() {
    let s = teams_hello();
    let isn: u32 = 0xFFFF_FF00; // wraps inside the hello
    let mut order: Vec<usize> = (0..s.len()).collect();
    let mut rng = Rng(42);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let mut asm = HelloAssembler::new(isn);
    for (k, &i) in order.iter().enumerate() {
        asm.push(isn.wrapping_add(i as u32), &s[i..i + 1]);
        if k % 5 == 0 {
            // A wrong duplicate must not overwrite the first copy.
            let j = order[rng.below(k + 1)];
            asm.push(isn.wrapping_add(j as u32), &[0xEE]);
        }
        // Old data before the ISN is ignored.
        asm.push(isn.wrapping_sub(3), &[1, 2, 3]);
    }
    assert_eq!(asm.contiguous(), &s[..]);
    assert_eq!(
        sni_of(&asm.client_hello()).as_deref(),
        Some("teams.microsoft.com")
    );
    // poll() after every segment of a many-record hello gives the same
    // answers as parsing every time, and the same final hello.
    let r = reframe(&s, 3);
    let mut a = HelloAssembler::new(5);
    let mut b = HelloAssembler::new(5);
    let mut polled_hello = false;
    for (i, chunk) in r.chunks(7).enumerate() {
        a.push(5 + 7 * i as u32, chunk);
        b.push(5 + 7 * i as u32, chunk);
        let full = b.client_hello();
        match a.poll() {
            HelloParse::Hello(h) => {
                polled_hello = true;
                assert_eq!(full, HelloParse::Hello(h));
            }
            HelloParse::NeedMore { have, need } => {
                assert!(matches!(full, HelloParse::NeedMore { .. }));
                assert!(need > have);
            }
            HelloParse::NotTls => panic!("NotTls"),
        }
    }
    assert!(polled_hello);
    assert!(!asm.overflowed());
}

#[test]
fn tls_assembler_is_bounded() {
    let mut asm = HelloAssembler::new(1000);
    asm.push(1000, &vec![0x16; 20_000]);
    assert_eq!(asm.contiguous().len(), tls::ASSEMBLER_CAP);
    assert!(asm.overflowed());
    asm.push(1000 + 1_000_000, &[1, 2, 3]); // far beyond the window
    assert_eq!(asm.contiguous().len(), tls::ASSEMBLER_CAP);
}

#[test]
fn hellos_longer_than_the_assembler_windows_are_given_up() {
    // 20 KiB hello: parseable on its own, but beyond the 16 KiB windows.
    let big = build_hello(b"big.example", &[], 20 * 1024);
    assert!(matches!(
        tls::parse_client_hello(&big),
        HelloParse::Hello(_)
    ));
    let mut asm = HelloAssembler::new(0);
    asm.push(0, &big[..1000]);
    assert_eq!(asm.poll(), HelloParse::NotTls);
    // Same over QUIC: the first CRYPTO frame announces the length.
    let hs = &big[5..1005];
    let mut payload = crypto_frame(0, hs);
    payload.resize(1150, 0);
    let d =
        quic::seal_client_initial(quic::VERSION_1, &[5u8; 8], &[], &[], 0, &payload).expect("seal");
    let mut qa = CryptoAssembler::new();
    assert_eq!(qa.push_datagram(&d), Ok(CryptoState::TooLarge));
}

#[test]
fn tls_big_hellos() {
    let big = build_hello(b"Big.Example.ORG", &["h2", "http/1.1"], 60 * 1024);
    assert!(big.len() > 60 * 1024);
    let p = tls::parse_client_hello(&big);
    let HelloParse::Hello(h) = &p else {
        panic!("{p:?}")
    };
    assert_eq!(h.sni.as_deref(), Some("big.example.org"));
    assert_eq!(h.alpn, ["h2", "http/1.1"]);
    assert_eq!(h.version, 0x0304);
    for n in (0..big.len()).step_by(97) {
        assert!(
            matches!(
                tls::parse_client_hello(&big[..n]),
                HelloParse::NeedMore { .. }
            ),
            "prefix {n}"
        );
    }
    let too_big = build_hello(b"big.example.org", &[], 66 * 1024);
    assert_eq!(tls::parse_client_hello(&too_big), HelloParse::NotTls);
    // Even its first bytes are refused: the length is known from the header.
    assert_eq!(tls::parse_client_hello(&too_big[..9]), HelloParse::NotTls);
}

#[test]
fn tls_sni_validation_and_non_tls() {
    let bad_sni = build_hello(b"bad host\x01.com", &["webrtc"], 0);
    let p = tls::parse_client_hello(&bad_sni);
    let HelloParse::Hello(h) = &p else {
        panic!("{p:?}")
    };
    assert_eq!(h.sni, None);
    assert!(h.sni_rejected);
    assert!(h.offers_alpn("webrtc"));
    assert_eq!(
        tls::parse_client_hello(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        HelloParse::NotTls
    );
    assert_eq!(
        tls::parse_client_hello(b"SSH-2.0-OpenSSH_9.2"),
        HelloParse::NotTls
    );
    // A ServerHello (handshake type 2) is not a ClientHello.
    let mut sh = teams_hello();
    sh[5] = 2;
    assert_eq!(tls::parse_client_hello(&sh), HelloParse::NotTls);
    // An internal length that overruns its container is malformed.
    let mut bad = teams_hello();
    bad[5 + 4 + 34] = 33; // session id length > 32
    assert_eq!(tls::parse_client_hello(&bad), HelloParse::NotTls);
}

#[test]
fn tls_raw_handshake_message() {
    let s = teams_hello();
    let hs = &s[5..];
    assert_eq!(
        sni_of(&tls::parse_handshake_client_hello(hs)).as_deref(),
        Some("teams.microsoft.com")
    );
    for n in 0..hs.len() {
        assert!(matches!(
            tls::parse_handshake_client_hello(&hs[..n]),
            HelloParse::NeedMore { .. }
        ));
    }
}

#[test]
fn dtls_corpus_and_webrtc_alpn() {
    let mut seen = 0;
    for line in DTLS_HELLOS.lines().filter(|l| !l.is_empty()) {
        let d = unhex(line);
        let p = tls::parse_dtls_client_hello(&d);
        let HelloParse::Hello(h) = &p else {
            panic!("{p:?}")
        };
        assert_eq!(h.legacy_version >> 8, 0xFE);
        assert!(h.cipher_suites > 0);
        seen += 1;
        for n in 0..d.len() {
            assert!(!matches!(
                tls::parse_dtls_client_hello(&d[..n]),
                HelloParse::Hello(_)
            ));
        }
    }
    assert_eq!(seen, 2);
    // Hand-built DTLS 1.2 hello offering ALPN "webrtc" and "c-webrtc".
    let tls_hello = build_hello(b"", &["webrtc", "c-webrtc"], 0);
    let hs = &tls_hello[5..];
    let body = &hs[4..];
    let mut dbody = vec![0xFE, 0xFD];
    dbody.extend_from_slice(&body[2..35]); // random + empty session id
    dbody.push(0); // empty cookie
    dbody.extend_from_slice(&body[35..]);
    let mut dhs = vec![1];
    dhs.extend_from_slice(&(dbody.len() as u32).to_be_bytes()[1..]);
    dhs.extend_from_slice(&[0, 0, 0, 0, 0]);
    dhs.extend_from_slice(&(dbody.len() as u32).to_be_bytes()[1..]);
    dhs.extend_from_slice(&dbody);
    let mut d = vec![0x16, 0xFE, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0];
    d.extend_from_slice(&(dhs.len() as u16).to_be_bytes());
    d.extend_from_slice(&dhs);
    let p = tls::parse_dtls_client_hello(&d);
    let HelloParse::Hello(h) = &p else {
        panic!("{p:?}")
    };
    assert!(h.offers_alpn("webrtc") && h.offers_alpn("c-webrtc"));
    assert!(
        h.sni.is_none() && h.sni_rejected,
        "empty SNI is not a host name"
    );
    assert_eq!(h.version, 0x0304); // highest of supported_versions, GREASE skipped
}

#[test]
fn tls_mutations_never_panic() {
    let mut samples = vec![
        teams_hello(),
        reframe(&teams_hello(), 40),
        build_hello(b"a.example", &["h2"], 300),
    ];
    for (_, s) in dingtalk_segments() {
        samples.push(s);
    }
    let dtls: Vec<Vec<u8>> = DTLS_HELLOS
        .lines()
        .filter(|l| !l.is_empty())
        .map(unhex)
        .collect();
    let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
    let mut hellos = 0usize;
    for i in 0..200_000 {
        let s = &samples[i % samples.len()];
        let m = mutate(&mut rng, s);
        match tls::parse_client_hello(&m) {
            HelloParse::Hello(h) => {
                hellos += 1;
                if let Some(sni) = &h.sni {
                    assert!(tls::validate_hostname(sni.as_bytes()).is_some());
                    assert!(!sni.bytes().any(|b| b.is_ascii_uppercase()));
                }
                assert!(h.alpn.len() <= tls::MAX_ALPN);
            }
            HelloParse::NeedMore { have, need } => assert!(need > have),
            HelloParse::NotTls => {}
        }
        let _ = tls::parse_handshake_client_hello(m.get(5..).unwrap_or(&[]));
        let d = mutate(&mut rng, &dtls[i % dtls.len()]);
        let _ = tls::parse_dtls_client_hello(&d);
    }
    assert!(hellos > 1000, "only {hellos} mutants still parse");
}

// ---------------------------------------------------------------- QUIC

const RFC_DCID: [u8; 8] = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];

fn rfc_plain_payload() -> Vec<u8> {
    let mut p = unhex(RFC9001_A2_CRYPTO);
    p.resize(1162, 0);
    p
}

#[test]
fn quic_rfc9001_a2_decrypts_to_example_com() {
    let d = unhex(RFC9001_A2);
    assert_eq!(d.len(), 1200);
    assert!(quic::is_quic_initial(&d));
    let pk = quic::decrypt_initials(&d).expect("decrypts");
    assert_eq!(pk.version, quic::VERSION_1);
    assert_eq!(pk.dcid.as_bytes(), RFC_DCID);
    assert!(pk.scid.as_bytes().is_empty());
    assert_eq!(pk.packets, 1);
    assert_eq!(pk.largest_pn, 2);
    let frames: Vec<(u64, &[u8])> = pk.crypto_frames().collect();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].0, 0);
    assert_eq!(frames[0].1, &unhex(RFC9001_A2_CRYPTO)[4..]);
    let p = tls::parse_handshake_client_hello(frames[0].1);
    let HelloParse::Hello(h) = &p else {
        panic!("{p:?}")
    };
    assert_eq!(h.sni.as_deref(), Some("example.com"));
    assert_eq!(h.alpn, ["alpn"]);
    assert!(h.quic_transport_params);
    assert_eq!(h.version, 0x0304);
}

#[test]
fn quic_rfc9369_v2_decrypts_to_example_com() {
    let d = unhex(RFC9369_A2);
    assert!(quic::is_quic_initial(&d));
    let pk = quic::decrypt_initials(&d).expect("decrypts");
    assert_eq!(pk.version, quic::VERSION_2);
    let mut asm = CryptoAssembler::new();
    assert_eq!(asm.add(&pk), Ok(CryptoState::Complete));
    assert_eq!(sni_of(&asm.client_hello()).as_deref(), Some("example.com"));
    // The v1 sample's bytes with the v2 version number do not decrypt
    // (different salt and labels), and its type bits mean 0-RTT in v2.
    let mut wrong = unhex(RFC9001_A2);
    wrong[1..5].copy_from_slice(&quic::VERSION_2.to_be_bytes());
    assert!(!quic::is_quic_initial(&wrong));
    assert!(quic::decrypt_initials(&wrong).is_err());
}

#[test]
fn quic_seal_reproduces_rfc_bytes() {
    let v1 = quic::seal_client_initial(
        quic::VERSION_1,
        &RFC_DCID,
        &[],
        &[],
        2,
        &rfc_plain_payload(),
    )
    .expect("seal");
    assert_eq!(v1, unhex(RFC9001_A2));
    let v2 = quic::seal_client_initial(
        quic::VERSION_2,
        &RFC_DCID,
        &[],
        &[],
        2,
        &rfc_plain_payload(),
    )
    .expect("seal");
    assert_eq!(v2, unhex(RFC9369_A2));
}

#[test]
fn quic_google_meet_corpus_initial() {
    let d = unhex(MEET_INITIAL);
    assert!(quic::is_quic_initial(&d));
    let mut asm = CryptoAssembler::new();
    let st = asm.push_datagram(&d).expect("decrypts");
    assert_eq!(st, CryptoState::Complete);
    let p = asm.client_hello();
    let HelloParse::Hello(h) = &p else {
        panic!("{p:?}")
    };
    assert_eq!(h.sni.as_deref(), Some("meet.google.com"));
    assert!(h.quic_transport_params);
}

#[test]
fn quic_prefixes_and_corruption_fail_cleanly() {
    let d = unhex(RFC9001_A2);
    for n in 0..d.len() {
        assert!(quic::decrypt_initials(&d[..n]).is_err(), "prefix {n}");
    }
    let mut bad = d.clone();
    bad[1000] ^= 1;
    assert_eq!(quic::decrypt_initials(&bad), Err(QuicError::DecryptFailed));
    assert_eq!(
        quic::decrypt_initials(b"\x40abcdef"),
        Err(QuicError::NotLongHeader)
    );
    let mut v = d.clone();
    v[1..5].copy_from_slice(&0xFF00_001Du32.to_be_bytes());
    assert_eq!(
        quic::decrypt_initials(&v),
        Err(QuicError::UnsupportedVersion(0xFF00_001D))
    );
    assert!(!quic::is_quic_initial(&v));
}

/// A v1 Handshake long-header packet with `n` bytes of opaque body.
fn fake_handshake(dcid: &[u8], n: usize) -> Vec<u8> {
    let mut p = vec![0xE0 | 0x03, 0, 0, 0, 1, dcid.len() as u8];
    p.extend_from_slice(dcid);
    p.push(0);
    p.extend_from_slice(&((n as u16) | 0x4000).to_be_bytes());
    p.extend(std::iter::repeat_n(0xAB, n));
    p
}

fn crypto_frame(off: u64, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0x06];
    f.extend_from_slice(&((off as u32) | 0x8000_0000).to_be_bytes());
    f.extend_from_slice(&((data.len() as u16) | 0x4000).to_be_bytes());
    f.extend_from_slice(data);
    f
}

#[test]
fn quic_coalesced_packets() {
    let init = unhex(RFC9001_A2);
    // Handshake first, then the Initial, then a short-header tail.
    let mut d = fake_handshake(&RFC_DCID, 40);
    d.extend_from_slice(&init);
    d.extend_from_slice(&[0x40, 1, 2, 3, 4, 5]);
    let pk = quic::decrypt_initials(&d).expect("finds the Initial");
    assert_eq!(pk.packets, 1);
    assert_eq!(pk.crypto_frame_count(), 1);
    // Two Initials in one datagram: the hello split in two CRYPTO frames,
    // second half first, with PING and ACK frames around.
    let hello = &unhex(RFC9001_A2_CRYPTO)[4..];
    let (a, b) = hello.split_at(100);
    let mut p1 = vec![0x01];
    p1.extend_from_slice(&crypto_frame(100, b));
    p1.extend_from_slice(&[0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00]); // ACK, one range
    p1.resize(300, 0);
    let mut p2 = crypto_frame(0, a);
    p2.resize(300, 0);
    let mut d =
        quic::seal_client_initial(quic::VERSION_1, &RFC_DCID, &[1, 2], &[], 0, &p1).expect("seal");
    d.extend(
        quic::seal_client_initial(quic::VERSION_1, &RFC_DCID, &[1, 2], &[], 1, &p2).expect("seal"),
    );
    let pk = quic::decrypt_initials(&d).expect("decrypts");
    assert_eq!(pk.packets, 2);
    assert_eq!(pk.largest_pn, 1);
    let mut asm = CryptoAssembler::new();
    assert_eq!(asm.add(&pk), Ok(CryptoState::Complete));
    assert_eq!(sni_of(&asm.client_hello()).as_deref(), Some("example.com"));
}

#[test]
fn quic_hello_across_datagrams_out_of_order_with_duplicates() {
    let hello = build_hello(b"Meet.Example.com", &["h3"], 2500);
    let hs = &hello[5..]; // one record: the bare handshake message
    assert!(hs.len() > 2000);
    let chunks: Vec<(usize, &[u8])> = hs
        .chunks(700)
        .enumerate()
        .map(|(i, c)| (i * 700, c))
        .collect();
    let dcid = [9u8; 8];
    let mut datagrams = Vec::new();
    for (pn, (off, c)) in chunks.iter().enumerate().rev() {
        let mut payload = crypto_frame(*off as u64, c);
        payload.resize(1150, 0);
        datagrams.push(
            quic::seal_client_initial(quic::VERSION_1, &dcid, &[7], b"token", pn as u32, &payload)
                .expect("seal"),
        );
    }
    let mut asm = CryptoAssembler::new();
    let n = datagrams.len();
    for (i, d) in datagrams.iter().enumerate() {
        assert!(quic::is_quic_initial(d));
        let st = asm.push_datagram(d).expect("decrypts");
        if i + 1 < n {
            assert!(
                matches!(st, CryptoState::NeedMore { .. }),
                "datagram {i}: {st:?}"
            );
            assert!(asm.push_datagram(d).is_ok()); // duplicate
        } else {
            assert_eq!(st, CryptoState::Complete);
        }
    }
    assert_eq!(
        sni_of(&asm.client_hello()).as_deref(),
        Some("meet.example.com")
    );
    // Another connection's Initial is refused.
    let other = quic::seal_client_initial(quic::VERSION_1, &[1u8; 8], &[], &[], 0, &[0u8; 1100])
        .expect("seal");
    assert_eq!(asm.push_datagram(&other), Err(QuicError::DcidMismatch));
}

#[test]
fn quic_second_datagram_with_server_chosen_dcid() {
    // The hello spans two datagrams; the second one is sent after the
    // server's Initial, to the server's chosen CID, still under the keys of
    // the original DCID (RFC 9001 5.2).
    let hello = build_hello(b"zoom.us", &["h3"], 1500);
    let hs = &hello[5..];
    let (a, b) = hs.split_at(1000);
    let original = [0x11u8; 8];
    let server_cid = [0x22u8; 5];
    let mut p1 = crypto_frame(0, a);
    p1.resize(1150, 0);
    let mut p2 = crypto_frame(1000, b);
    p2.resize(1150, 0);
    let d1 =
        quic::seal_client_initial(quic::VERSION_2, &original, &[3], &[], 0, &p1).expect("seal");
    let d2 =
        quic::seal_client_initial_keyed(quic::VERSION_2, &original, &server_cid, &[3], &[], 1, &p2)
            .expect("seal");
    // On its own the second datagram cannot be opened (keys come from the
    // wrong DCID).
    assert_eq!(quic::decrypt_initials(&d2), Err(QuicError::DecryptFailed));
    let mut asm = CryptoAssembler::new();
    assert!(matches!(
        asm.push_datagram(&d1),
        Ok(CryptoState::NeedMore { .. })
    ));
    assert_eq!(asm.push_datagram(&d2), Ok(CryptoState::Complete));
    assert_eq!(
        asm.dcid().map(|c| c.as_bytes().to_vec()),
        Some(original.to_vec())
    );
    assert_eq!(sni_of(&asm.client_hello()).as_deref(), Some("zoom.us"));
    // The same through explicit keys.
    let keys = quic::InitialKeys::new(quic::VERSION_2, &original).expect("keys");
    let pk = quic::decrypt_initials_with(&d2, &keys).expect("opens");
    assert_eq!(pk.dcid.as_bytes(), server_cid);
    assert_eq!(pk.key_dcid.as_bytes(), original);
}

#[test]
fn gquic_plaintext_chlo() {
    let samples: Vec<Vec<u8>> = GQUIC_CHLO
        .lines()
        .filter(|l| !l.is_empty())
        .map(unhex)
        .collect();
    assert_eq!(samples.len(), 2);
    let h = quic::gquic_client_hello(&samples[0]).expect("Q046 CHLO");
    assert_eq!(&h.version, b"Q046");
    assert_eq!(h.sni.as_deref(), Some("www.google.com"));
    let h = quic::gquic_client_hello(&samples[1]).expect("Q035 CHLO");
    assert_eq!(&h.version, b"Q035");
    assert_eq!(h.sni.as_deref(), Some("ssl.gstatic.com"));
    assert!(h.uaid.is_some_and(|u| !u.is_empty()));
    // Not IETF QUIC, and IETF Initials are not gQUIC.
    assert!(!quic::is_quic_initial(&samples[0]));
    assert!(quic::gquic_client_hello(&unhex(RFC9001_A2)).is_none());
    // Truncation never yields a wrong name.
    for s in &samples {
        for n in 0..s.len() {
            if let Some(h) = quic::gquic_client_hello(&s[..n]) {
                assert!(
                    h.sni.is_none() || h.sni == quic::gquic_client_hello(s).and_then(|x| x.sni)
                );
            }
        }
    }
    let mut rng = Rng(77);
    for i in 0..50_000 {
        let m = mutate(&mut rng, &samples[i % 2]);
        if let Some(h) = quic::gquic_client_hello(&m) {
            if let Some(sni) = h.sni {
                assert!(tls::validate_hostname(sni.as_bytes()).is_some());
            }
        }
    }
}

#[test]
fn quic_mutations_never_panic() {
    let d1 = unhex(RFC9001_A2);
    let d2 = unhex(RFC9369_A2);
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    // Header/ciphertext mutations: mostly authentication failures.
    for i in 0..20_000 {
        let m = mutate(&mut rng, if i % 2 == 0 { &d1 } else { &d2 });
        let _ = quic::is_quic_initial(&m);
        if let Ok(pk) = quic::decrypt_initials(&m) {
            let mut asm = CryptoAssembler::new();
            let _ = asm.add(&pk);
            let _ = asm.client_hello();
        }
    }
    // Plaintext mutations, sealed so they pass authentication and reach the
    // frame parser and the ClientHello parser.
    let plain = rfc_plain_payload();
    let mut decrypted = 0;
    for i in 0..20_000u32 {
        let mut m = mutate(&mut rng, &plain[..300]);
        m.resize(m.len().max(40), 0);
        let d =
            quic::seal_client_initial(quic::VERSION_1, &RFC_DCID, &[], &[], i, &m).expect("seal");
        match quic::decrypt_initials(&d) {
            Ok(pk) => {
                decrypted += 1;
                let mut asm = CryptoAssembler::new();
                let _ = asm.add(&pk);
                let _ = asm.client_hello();
            }
            Err(e) => assert_eq!(e, QuicError::BadFrame),
        }
    }
    assert!(decrypted > 1000);
}

// ---------------------------------------------------------------- corpus

/// Replays every corpus capture through the parsers: every DNS payload must
/// parse without panicking, and for every TCP/UDP flow that nDPI labelled
/// TLS or QUIC with a server name, the SNI read from the reassembled
/// ClientHello (TCP) or the decrypted Initials (QUIC) must equal nDPI's.
#[test]
fn corpus_sni_agrees_with_reference_labels() {
    use geofence_decode::{decode, PcapReader, Proto};
    use std::collections::HashMap;
    use std::net::SocketAddr;

    let shared = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared");
    let corpus = std::path::Path::new(shared).join("corpus");
    let Ok(labels) = std::fs::read_to_string(corpus.join("labels.csv")) else {
        geofence_testkit::skip(format_args!("{shared}/corpus/labels.csv is absent"));
        return;
    };
    // (file, client, server) -> expected SNI, for TLS/QUIC flows.
    let mut expect: HashMap<(String, String, String), String> = HashMap::new();
    for line in labels.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 7 || f[6].is_empty() {
            continue;
        }
        let ndpi = f[5];
        let tlsish = ["TLS", "QUIC"]
            .iter()
            .any(|p| ndpi == *p || ndpi.starts_with(&format!("{p}.")));
        if tlsish {
            expect.insert((f[0].into(), f[3].into(), f[4].into()), f[6].to_string());
        }
    }
    assert!(
        expect.len() > 50,
        "labels.csv lists {} TLS/QUIC flows",
        expect.len()
    );

    enum Flow {
        Tcp(HelloAssembler),
        Quic(CryptoAssembler),
        Done,
    }
    let (mut dns_ok, mut dns_err, mut resolved) = (0usize, 0usize, 0usize);
    let mut found: HashMap<(String, String, String), Option<String>> = HashMap::new();
    let mut files: Vec<_> = std::fs::read_dir(corpus.join("pcap"))
        .expect("pcap dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let file = std::fs::File::open(&path).expect("open capture");
        let mut rd = PcapReader::new(std::io::BufReader::new(file)).expect("capture header");
        let mut flows: HashMap<(SocketAddr, SocketAddr), Flow> = HashMap::new();
        while let Ok(Some(raw)) = rd.next_packet() {
            let Ok(p) = decode(raw.link, raw.data) else {
                continue;
            };
            let src = SocketAddr::new(p.src, p.sport);
            let dst = SocketAddr::new(p.dst, p.dport);
            if p.proto == Proto::Udp && (p.sport == 53 || p.dport == 53) {
                match dns::parse_message(p.payload) {
                    Ok(m) => {
                        dns_ok += 1;
                        resolved += dns::resolutions(&m).len();
                    }
                    Err(_) => dns_err += 1,
                }
                continue;
            }
            let key = (name.clone(), src.to_string(), dst.to_string());
            if !expect.contains_key(&key) {
                continue;
            }
            let flow = match (p.proto, p.tcp) {
                (Proto::Tcp, Some(t)) => flows.entry((src, dst)).or_insert_with(|| {
                    Flow::Tcp(if t.syn {
                        HelloAssembler::from_syn(t.seq)
                    } else {
                        HelloAssembler::new(t.seq)
                    })
                }),
                (Proto::Udp, _) if quic::is_quic_initial(p.payload) => flows
                    .entry((src, dst))
                    .or_insert_with(|| Flow::Quic(CryptoAssembler::new())),
                (Proto::Udp, _) => {
                    if let Some(h) = quic::gquic_client_hello(p.payload) {
                        if let Some(sni) = h.sni {
                            found.entry(key).or_insert(Some(sni.into_owned()));
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            let done = match flow {
                Flow::Tcp(a) => {
                    if p.tcp.is_some_and(|t| t.syn) || p.payload.is_empty() {
                        continue;
                    }
                    a.push(p.tcp.map_or(0, |t| t.seq), p.payload);
                    match a.client_hello() {
                        HelloParse::Hello(h) => Some(h.sni.map(|s| s.into_owned())),
                        HelloParse::NotTls => Some(None),
                        HelloParse::NeedMore { .. } => None,
                    }
                }
                Flow::Quic(a) => match a.push_datagram(p.payload) {
                    Ok(CryptoState::Complete) => Some(sni_of(&a.client_hello())),
                    Ok(CryptoState::NotTls) => Some(None),
                    _ => None,
                },
                Flow::Done => None,
            };
            if let Some(sni) = done {
                found.insert(key, sni);
                *flow = Flow::Done;
            }
        }
    }
    let mut agree = 0;
    let mut missing = Vec::new();
    for (key, want) in &expect {
        match found.get(key) {
            Some(Some(got)) => {
                assert_eq!(got, want, "SNI of {key:?}");
                agree += 1;
            }
            _ => missing.push(key.clone()),
        }
    }
    println!(
        "corpus: {agree}/{} TLS/QUIC/gQUIC SNIs agree with labels.csv, {} without a ClientHello in the capture; DNS: {dns_ok} parsed, {dns_err} rejected, {resolved} address resolutions",
        expect.len(),
        missing.len()
    );
    for m in &missing {
        println!("  no hello: {m:?}");
    }
    assert!(
        agree == expect.len(),
        "SNI found for only {agree} of {} flows",
        expect.len()
    );
    assert!(dns_ok > 50 && resolved > 20);
}
