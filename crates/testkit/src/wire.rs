//! Protocol messages for tests, probes and benchmarks: a TLS ClientHello
//! with a server name, DNS queries and answers, and Zoom SFU media packets,
//! built byte by byte from the public formats, so every test sends the same
//! well-formed traffic.

use std::net::IpAddr;

/// A TLS 1.2 record holding a ClientHello with the server_name extension;
/// `padding` extra bytes (a padding extension) make it span segments.
pub fn client_hello_padded(sni: &str, padding: usize) -> Vec<u8> {
    let name = sni.as_bytes();
    let mut ext = vec![0x00, 0x00];
    ext.extend_from_slice(&((name.len() + 5) as u16).to_be_bytes());
    ext.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    ext.extend_from_slice(name);
    if padding > 0 {
        ext.extend_from_slice(&[0x00, 0x15]);
        ext.extend_from_slice(&(padding as u16).to_be_bytes());
        ext.extend(std::iter::repeat_n(0u8, padding));
    }
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x42; 32]);
    body.push(0);
    body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![0x01];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// [`client_hello_padded`] without padding.
pub fn client_hello(sni: &str) -> Vec<u8> {
    client_hello_padded(sni, 0)
}

fn put_name(m: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
}

/// A DNS query for `name` (`qtype` 1 = A, 28 = AAAA).
pub fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    put_name(&mut q, name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

/// A DNS answer to a query for `name`: one A/AAAA record per address of
/// `addrs` (the record type follows the address family), NXDOMAIN when
/// `addrs` is empty and `nxdomain` is set.
pub fn dns_response(
    id: u16,
    name: &str,
    qtype: u16,
    addrs: &[IpAddr],
    ttl: u32,
    nxdomain: bool,
) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    let rcode = if addrs.is_empty() && nxdomain {
        0x83
    } else {
        0x80
    };
    m.extend_from_slice(&[0x81, rcode, 0, 1]);
    m.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    put_name(&mut m, name);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    for a in addrs {
        m.extend_from_slice(&[0xC0, 0x0C]);
        let (t, data): (u16, Vec<u8>) = match a {
            IpAddr::V4(v) => (1, v.octets().to_vec()),
            IpAddr::V6(v) => (28, v.octets().to_vec()),
        };
        m.extend_from_slice(&t.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&(data.len() as u16).to_be_bytes());
        m.extend_from_slice(&data);
    }
    m
}

/// The id, lower-cased name and type of a query's question.
pub fn dns_question(q: &[u8]) -> Option<(u16, String, u16)> {
    let id = u16::from_be_bytes([*q.first()?, *q.get(1)?]);
    let mut at = 12;
    let mut name = String::new();
    loop {
        let l = usize::from(*q.get(at)?);
        at += 1;
        if l == 0 {
            break;
        }
        if l > 63 {
            return None;
        }
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(std::str::from_utf8(q.get(at..at + l)?).ok()?);
        at += l;
    }
    let qtype = u16::from_be_bytes([*q.get(at)?, *q.get(at + 1)?]);
    Some((id, name.to_ascii_lowercase(), qtype))
}

/// The A and AAAA addresses of a DNS answer built like [`dns_response`]
/// (answers as name pointers).
pub fn dns_addresses(r: &[u8]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut at = 12;
    while let Some(&l) = r.get(at) {
        at += 1 + usize::from(l);
        if l == 0 {
            break;
        }
    }
    at += 4;
    let an = r
        .get(6..8)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .unwrap_or(0);
    for _ in 0..an {
        let Some(h) = r.get(at + 2..at + 12) else {
            break;
        };
        let t = u16::from_be_bytes([h[0], h[1]]);
        let len = usize::from(u16::from_be_bytes([h[8], h[9]]));
        at += 12;
        let Some(d) = r.get(at..at + len) else { break };
        match (t, d) {
            (1, &[a, b, c, e]) => out.push(IpAddr::from([a, b, c, e])),
            (28, d) if d.len() == 16 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(d);
                out.push(IpAddr::from(o));
            }
            _ => {}
        }
        at += len;
    }
    out
}

/// The first packet of a Zoom SFU session from the client (`01 00 03`),
/// as seen on UDP 8801-8810.
pub fn zoom_sfu_hello() -> Vec<u8> {
    let mut p = vec![0x01, 0x00, 0x03];
    p.extend_from_slice(&[0u8; 37]);
    p
}

/// A Zoom SFU media packet: type 5, audio (15), RTP at offset 27.
pub fn zoom_sfu_audio(seq: u16) -> Vec<u8> {
    let mut p = vec![0x05, 0, 0, 0, 0, 0, 0, 0x00, 15];
    p.extend_from_slice(&[0u8; 18]);
    p.extend_from_slice(&[0x80, 0x6F]);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]);
    p.extend_from_slice(&[0x55u8; 80]);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_round_trip() {
        let q = dns_query(7, "meeting.zoom.us", 28);
        assert_eq!(
            dns_question(&q),
            Some((7, "meeting.zoom.us".to_string(), 28))
        );
        let a: Vec<IpAddr> = vec![
            "2001:db8::1".parse().expect("ip"),
            "192.0.2.1".parse().expect("ip"),
        ];
        let r = dns_response(7, "meeting.zoom.us", 28, &a, 60, false);
        assert_eq!(dns_addresses(&r), a);
        assert_eq!(dns_response(1, "x.example", 1, &[], 60, true)[3], 0x83);
    }

    #[test]
    fn client_hello_lengths_add_up() {
        for pad in [0, 300] {
            let h = client_hello_padded("zoom.us", pad);
            let rec = usize::from(u16::from_be_bytes([h[3], h[4]]));
            assert_eq!(rec + 5, h.len());
            let hs = (usize::from(h[6]) << 16) | (usize::from(h[7]) << 8) | usize::from(h[8]);
            assert_eq!(hs + 4, rec);
        }
    }
}
