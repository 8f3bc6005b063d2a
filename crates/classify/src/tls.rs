//! TLS and DTLS ClientHello parser: SNI, ALPN and version from the first
//! bytes a client sends.
//!
//! * [`parse_client_hello`] reads the client-to-server TCP byte stream (TLS
//!   records; the ClientHello may span several records) and says whether it
//!   holds a whole ClientHello, needs more bytes, or is not TLS.
//! * [`parse_handshake_client_hello`] reads a bare handshake message, as QUIC
//!   carries it in CRYPTO frames.
//! * [`parse_dtls_client_hello`] reads a DTLS datagram (WebRTC offers ALPN
//!   `webrtc` / `c-webrtc`).
//! * [`HelloAssembler`] puts the first TCP segments of a flow back in order.
//!
//! Zero-copy where the hello sits in one record (the usual case): the SNI and
//! ALPN strings borrow from the input. Bounded: hellos over
//! [`MAX_HELLO_LEN`] are rejected as [`HelloParse::NotTls`], SNI must look
//! like a host name, at most [`MAX_ALPN`] ALPN entries are kept. Never panics.

use std::borrow::Cow;

use crate::reassembly::Reassembler;

/// Largest ClientHello handshake message accepted (header included).
pub const MAX_HELLO_LEN: usize = 64 * 1024;
/// Largest TLS plaintext record fragment (2^14) plus slack for lenient peers.
const MAX_RECORD_LEN: usize = (1 << 14) + 2048;
/// At most this many ALPN protocol names are kept.
pub const MAX_ALPN: usize = 16;
/// Default and largest window of a [`HelloAssembler`].
pub const ASSEMBLER_CAP: usize = 16 * 1024;

const CONTENT_HANDSHAKE: u8 = 22;
const HS_CLIENT_HELLO: u8 = 1;
const RECORD_HEADER: usize = 5;
const HS_HEADER: usize = 4;

/// Extension numbers used here.
mod ext {
    pub const SERVER_NAME: u16 = 0;
    pub const ALPN: u16 = 16;
    pub const SUPPORTED_VERSIONS: u16 = 43;
    pub const QUIC_TRANSPORT_PARAMETERS: u16 = 57;
    pub const ENCRYPTED_CLIENT_HELLO: u16 = 0xFE0D;
}

/// What a ClientHello says about where the client wants to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// `legacy_version` of the hello (0x0303 for TLS 1.2 and 1.3, 0xFEFD for
    /// DTLS 1.2).
    pub legacy_version: u16,
    /// Highest non-GREASE version in `supported_versions`, else
    /// `legacy_version`.
    pub version: u16,
    /// Server name, lower-cased; `None` when absent or not a plausible host
    /// name (see [`ClientHello::sni_rejected`]).
    pub sni: Option<Cow<'a, str>>,
    /// A server_name extension was present but did not hold a plausible
    /// host name.
    pub sni_rejected: bool,
    /// ALPN protocol names in client order (printable ASCII ones only).
    pub alpn: Vec<Cow<'a, str>>,
    /// The encrypted_client_hello extension is present (the SNI is then the
    /// public outer name).
    pub ech: bool,
    /// QUIC transport parameters are present (the hello came over QUIC).
    pub quic_transport_params: bool,
    /// Number of cipher suites offered.
    pub cipher_suites: u16,
    /// Number of extensions.
    pub extensions: u16,
}

impl ClientHello<'_> {
    /// The same hello with every borrowed string copied.
    pub fn into_owned(self) -> ClientHello<'static> {
        ClientHello {
            legacy_version: self.legacy_version,
            version: self.version,
            sni: self.sni.map(|s| Cow::Owned(s.into_owned())),
            sni_rejected: self.sni_rejected,
            alpn: self
                .alpn
                .into_iter()
                .map(|s| Cow::Owned(s.into_owned()))
                .collect(),
            ech: self.ech,
            quic_transport_params: self.quic_transport_params,
            cipher_suites: self.cipher_suites,
            extensions: self.extensions,
        }
    }

    /// True if the client offers this ALPN protocol.
    pub fn offers_alpn(&self, proto: &str) -> bool {
        self.alpn.iter().any(|a| a == proto)
    }
}

/// Result of looking at the start of a stream or message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloParse<'a> {
    /// A complete, well-formed ClientHello.
    Hello(ClientHello<'a>),
    /// The bytes so far are a valid beginning; `need` is a lower bound for
    /// the total number of bytes required (`have` < `need`).
    NeedMore { have: usize, need: usize },
    /// Not a TLS ClientHello (or malformed, or over the size cap).
    NotTls,
}

/// A bounds-checked reader.
struct Rd<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Rd<'a> {
    fn new(b: &'a [u8]) -> Self {
        Rd { b, pos: 0 }
    }
    fn remaining(&self) -> usize {
        self.b.len().saturating_sub(self.pos)
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.pos)?;
        self.pos += 1;
        Some(v)
    }
    fn u16(&mut self) -> Option<u16> {
        match self.take(2)? {
            &[a, b] => Some(u16::from_be_bytes([a, b])),
            _ => None,
        }
    }
    fn u24(&mut self) -> Option<usize> {
        match self.take(3)? {
            &[a, b, c] => Some((usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c)),
            _ => None,
        }
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

fn is_grease(v: u16) -> bool {
    v & 0x0F0F == 0x0A0A && (v >> 8) == (v & 0xFF)
}

/// Orders TLS and DTLS version numbers (DTLS numbers count down:
/// 0xFEFF is DTLS 1.0, 0xFEFD 1.2, 0xFEFC 1.3).
fn version_rank(v: u16) -> u16 {
    match v {
        0xFEFF => 0x0302,
        0xFEFD => 0x0303,
        0xFEFC => 0x0304,
        _ if v >> 8 == 0xFE => 0,
        _ => v,
    }
}

/// Checks that `name` is a plausible DNS host name and returns it
/// lower-cased (borrowed when it already was). A single trailing dot is
/// dropped.
pub fn validate_hostname(name: &[u8]) -> Option<Cow<'_, str>> {
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    let mut upper = false;
    for label in name.split(|&b| b == b'.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        for &b in label {
            match b {
                b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => {}
                b'A'..=b'Z' => upper = true,
                _ => return None,
            }
        }
        if label.first() == Some(&b'-') || label.last() == Some(&b'-') {
            return None;
        }
    }
    let s = std::str::from_utf8(name).ok()?;
    if upper {
        Some(Cow::Owned(s.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(s))
    }
}

/// Parses the ClientHello body (after the handshake header). `dtls` adds the
/// cookie field.
fn parse_hello_body(body: &[u8], dtls: bool) -> Option<ClientHello<'_>> {
    let mut r = Rd::new(body);
    let legacy_version = r.u16()?;
    if dtls {
        if legacy_version >> 8 != 0xFE {
            return None;
        }
    } else if legacy_version >> 8 != 0x03 {
        return None;
    }
    r.take(32)?; // random
    let sid = r.vec8()?;
    if sid.len() > 32 {
        return None;
    }
    if dtls {
        r.vec8()?; // cookie
    }
    let suites = r.vec16()?;
    if suites.len() < 2 || suites.len() % 2 != 0 {
        return None;
    }
    let comp = r.vec8()?;
    if comp.is_empty() {
        return None;
    }
    let mut hello = ClientHello {
        legacy_version,
        version: legacy_version,
        sni: None,
        sni_rejected: false,
        alpn: Vec::new(),
        ech: false,
        quic_transport_params: false,
        cipher_suites: (suites.len() / 2) as u16,
        extensions: 0,
    };
    if r.remaining() == 0 {
        return Some(hello); // no extensions (old clients)
    }
    let exts = r.vec16()?;
    if r.remaining() != 0 {
        return None;
    }
    let mut er = Rd::new(exts);
    let (mut seen_sni, mut seen_alpn, mut seen_sv) = (false, false, false);
    while er.remaining() > 0 {
        let ty = er.u16()?;
        let data = er.vec16()?;
        hello.extensions = hello.extensions.saturating_add(1);
        match ty {
            ext::SERVER_NAME if !seen_sni => {
                seen_sni = true;
                // An empty server_name is legal in a ServerHello only.
                let mut sr = Rd::new(data);
                let list = sr.vec16()?;
                let mut lr = Rd::new(list);
                while lr.remaining() > 0 {
                    let kind = lr.u8()?;
                    let name = lr.vec16()?;
                    if kind == 0 && hello.sni.is_none() {
                        match validate_hostname(name) {
                            Some(n) => hello.sni = Some(n),
                            None => hello.sni_rejected = true,
                        }
                    }
                }
            }
            ext::ALPN if !seen_alpn => {
                seen_alpn = true;
                let mut ar = Rd::new(data);
                let list = ar.vec16()?;
                let mut lr = Rd::new(list);
                hello.alpn.reserve(4);
                while lr.remaining() > 0 {
                    let p = lr.vec8()?;
                    if hello.alpn.len() < MAX_ALPN
                        && !p.is_empty()
                        && p.iter().all(|b| (0x20..=0x7E).contains(b))
                    {
                        if let Ok(s) = std::str::from_utf8(p) {
                            hello.alpn.push(Cow::Borrowed(s));
                        }
                    }
                }
            }
            ext::SUPPORTED_VERSIONS if !seen_sv => {
                seen_sv = true;
                let mut vr = Rd::new(data);
                let list = vr.vec8()?;
                let mut best: Option<u16> = None;
                for pair in list.chunks_exact(2) {
                    if let &[a, b] = pair {
                        let v = u16::from_be_bytes([a, b]);
                        if is_grease(v) {
                            continue;
                        }
                        let better = match best {
                            None => true,
                            Some(cur) => version_rank(v) > version_rank(cur),
                        };
                        if better {
                            best = Some(v);
                        }
                    }
                }
                if let Some(v) = best {
                    hello.version = v;
                }
            }
            ext::QUIC_TRANSPORT_PARAMETERS => hello.quic_transport_params = true,
            ext::ENCRYPTED_CLIENT_HELLO => hello.ech = true,
            _ => {}
        }
    }
    Some(hello)
}

/// Parses a bare ClientHello handshake message (type 1, 24-bit length,
/// body), as carried in QUIC CRYPTO frames. Extra bytes after the message
/// are ignored.
pub fn parse_handshake_client_hello(hs: &[u8]) -> HelloParse<'_> {
    let Some(&ty) = hs.first() else {
        return HelloParse::NeedMore {
            have: 0,
            need: HS_HEADER,
        };
    };
    if ty != HS_CLIENT_HELLO {
        return HelloParse::NotTls;
    }
    let mut r = Rd::new(hs);
    r.pos = 1;
    let Some(len) = r.u24() else {
        return HelloParse::NeedMore {
            have: hs.len(),
            need: HS_HEADER,
        };
    };
    let total = HS_HEADER + len;
    if total > MAX_HELLO_LEN || len < 38 {
        return HelloParse::NotTls;
    }
    match hs.get(HS_HEADER..total) {
        None => HelloParse::NeedMore {
            have: hs.len(),
            need: total,
        },
        Some(body) => match parse_hello_body(body, false) {
            Some(h) => HelloParse::Hello(h),
            None => HelloParse::NotTls,
        },
    }
}

/// Checks a TLS record header; `Some(fragment length)` if plausible.
fn record_header(h: &[u8]) -> Option<usize> {
    match h {
        &[CONTENT_HANDSHAKE, 3, minor, a, b] if minor <= 4 => {
            let len = usize::from(u16::from_be_bytes([a, b]));
            (1..=MAX_RECORD_LEN).contains(&len).then_some(len)
        }
        _ => None,
    }
}

/// Parses the beginning of a client-to-server TLS stream. The ClientHello
/// may be split across TCP segments (pass everything contiguous received so
/// far) and across several TLS records.
pub fn parse_client_hello(stream: &[u8]) -> HelloParse<'_> {
    // Plausibility of a short prefix: content type, major version.
    let have = stream.len();
    match stream {
        [] => {
            return HelloParse::NeedMore {
                have,
                need: RECORD_HEADER,
            }
        }
        [t, ..] if *t != CONTENT_HANDSHAKE => return HelloParse::NotTls,
        [_, v, ..] if *v != 3 => return HelloParse::NotTls,
        [_, _, m, ..] if *m > 4 => return HelloParse::NotTls,
        _ => {}
    }
    let Some(hdr) = stream.get(..RECORD_HEADER) else {
        return HelloParse::NeedMore {
            have,
            need: RECORD_HEADER,
        };
    };
    let Some(rec_len) = record_header(hdr) else {
        return HelloParse::NotTls;
    };
    let first_end = RECORD_HEADER + rec_len;
    let avail = stream
        .get(RECORD_HEADER..first_end.min(have))
        .unwrap_or(&[]);
    // Handshake header: type and 24-bit length.
    if let Some(&t) = avail.first() {
        if t != HS_CLIENT_HELLO {
            return HelloParse::NotTls;
        }
    }
    let Some(&[_, a, b, c]) = avail.get(..HS_HEADER) else {
        if rec_len < HS_HEADER {
            // The header itself is split over records: rare, handled by
            // the general path below.
            return parse_multi_record(stream);
        }
        return HelloParse::NeedMore {
            have,
            need: RECORD_HEADER + HS_HEADER,
        };
    };
    let hs_len = (usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c);
    let total = HS_HEADER + hs_len;
    if total > MAX_HELLO_LEN || hs_len < 38 {
        return HelloParse::NotTls;
    }
    if total <= rec_len {
        // Fast path: the whole hello is in the first record (zero-copy).
        return match stream.get(RECORD_HEADER + HS_HEADER..RECORD_HEADER + total) {
            None => HelloParse::NeedMore {
                have,
                need: RECORD_HEADER + total,
            },
            Some(body) => match parse_hello_body(body, false) {
                Some(h) => HelloParse::Hello(h),
                None => HelloParse::NotTls,
            },
        };
    }
    parse_multi_record(stream)
}

/// Slow path: the handshake message spans records. Gathers the fragments
/// into one buffer (bounded by [`MAX_HELLO_LEN`]) and returns an owned hello.
fn parse_multi_record(stream: &[u8]) -> HelloParse<'static> {
    let have = stream.len();
    let mut hs: Vec<u8> = Vec::new();
    let mut pos = 0usize;
    let mut total: Option<usize> = None;
    loop {
        if let Some(t) = total {
            if hs.len() >= t {
                break;
            }
        }
        let Some(hdr) = stream.get(pos..pos + RECORD_HEADER) else {
            // Need at least another header and the missing bytes.
            let missing = match total {
                Some(t) => t - hs.len(),
                None => HS_HEADER.saturating_sub(hs.len()).max(1),
            };
            let need = pos + RECORD_HEADER + missing;
            return HelloParse::NeedMore {
                have,
                need: need.max(have + 1),
            };
        };
        let Some(rec_len) = record_header(hdr) else {
            return HelloParse::NotTls;
        };
        let start = pos + RECORD_HEADER;
        let end = start + rec_len;
        let frag = stream.get(start..end.min(have)).unwrap_or(&[]);
        if hs.len() + frag.len() > MAX_HELLO_LEN + RECORD_HEADER + MAX_RECORD_LEN {
            return HelloParse::NotTls;
        }
        hs.extend_from_slice(frag);
        if total.is_none() && hs.len() >= HS_HEADER {
            match hs.get(..HS_HEADER) {
                Some(&[HS_CLIENT_HELLO, a, b, c]) => {
                    let len = (usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c);
                    let t = HS_HEADER + len;
                    if t > MAX_HELLO_LEN || len < 38 {
                        return HelloParse::NotTls;
                    }
                    total = Some(t);
                }
                _ => return HelloParse::NotTls,
            }
        }
        if end > have {
            // This record is still arriving.
            let missing = match total {
                Some(t) => t.saturating_sub(hs.len()),
                None => 0,
            };
            let rest_of_record = end - have;
            let need = if missing > rest_of_record {
                end + RECORD_HEADER + (missing - rest_of_record)
            } else {
                have + missing.max(1)
            };
            return HelloParse::NeedMore { have, need };
        }
        pos = end;
    }
    let Some(t) = total else {
        return HelloParse::NotTls;
    };
    match hs
        .get(HS_HEADER..t)
        .and_then(|body| parse_hello_body(body, false))
    {
        Some(h) => HelloParse::Hello(h.into_owned()),
        None => HelloParse::NotTls,
    }
}

/// Parses a DTLS ClientHello from the first record of a UDP datagram
/// (DTLS 1.0, 1.2 or 1.3 record header). A hello fragmented over several
/// DTLS handshake fragments is reported as `NeedMore` (not reassembled).
pub fn parse_dtls_client_hello(datagram: &[u8]) -> HelloParse<'_> {
    let mut r = Rd::new(datagram);
    let (Some(ct), Some(ver)) = (r.u8(), r.u16()) else {
        return HelloParse::NotTls;
    };
    if ct != CONTENT_HANDSHAKE || !matches!(ver, 0xFEFF | 0xFEFD | 0xFEFC) {
        return HelloParse::NotTls;
    }
    // epoch (2) + sequence number (6)
    let (Some(epoch), Some(_)) = (r.u16(), r.take(6)) else {
        return HelloParse::NotTls;
    };
    if epoch != 0 {
        return HelloParse::NotTls;
    }
    let Some(frag) = r.vec16() else {
        return HelloParse::NotTls;
    };
    let mut h = Rd::new(frag);
    let (Some(ty), Some(len), Some(_msg_seq), Some(frag_off), Some(frag_len)) =
        (h.u8(), h.u24(), h.u16(), h.u24(), h.u24())
    else {
        return HelloParse::NotTls;
    };
    if ty != HS_CLIENT_HELLO || !(38..=MAX_HELLO_LEN).contains(&len) || frag_off + frag_len > len {
        return HelloParse::NotTls;
    }
    if frag_off != 0 || frag_len < len {
        return HelloParse::NeedMore {
            have: datagram.len(),
            need: datagram.len() + (len - frag_len),
        };
    }
    match h.take(len).and_then(|body| parse_hello_body(body, true)) {
        Some(hello) => HelloParse::Hello(hello),
        None => HelloParse::NotTls,
    }
}

/// Reassembles the first bytes of a client-to-server TCP stream from
/// segments that may arrive out of order, duplicated or overlapping.
///
/// `isn` is the sequence number of the first payload byte (the SYN's
/// sequence number + 1, or the first seen segment's sequence number). Bytes
/// beyond the window (16 KiB by default) are dropped; on overlap the first
/// copy received wins and a different second copy is flagged
/// ([`HelloAssembler::conflict`]). Memory follows the bytes received, not
/// the sequence numbers claimed ([`crate::reassembly`]).
#[derive(Debug, Clone)]
pub struct HelloAssembler {
    isn: u32,
    inner: Reassembler,
    /// Lower bound of contiguous bytes needed before parsing again.
    next_need: usize,
}

impl HelloAssembler {
    /// A window of [`ASSEMBLER_CAP`] bytes starting at `isn`.
    pub fn new(isn: u32) -> Self {
        Self::with_capacity(isn, ASSEMBLER_CAP)
    }

    /// For a flow whose SYN carried sequence number `syn_seq` (the first
    /// payload byte is `syn_seq + 1`).
    pub fn from_syn(syn_seq: u32) -> Self {
        Self::new(syn_seq.wrapping_add(1))
    }

    /// A window of `cap` bytes (at most [`ASSEMBLER_CAP`]).
    pub fn with_capacity(isn: u32, cap: usize) -> Self {
        HelloAssembler {
            isn,
            inner: Reassembler::new(cap.min(ASSEMBLER_CAP)),
            next_need: 0,
        }
    }

    /// Adds one segment. Sequence numbers wrap; a segment starting up to
    /// 2^31 bytes before `isn` counts as old data and is clipped.
    pub fn push(&mut self, seq: u32, payload: &[u8]) {
        let rel = i64::from(seq.wrapping_sub(self.isn) as i32);
        self.inner.insert(rel, payload);
    }

    /// The bytes received contiguously from `isn` on.
    pub fn contiguous(&self) -> &[u8] {
        self.inner.contiguous()
    }

    /// Some data fell outside the window and was dropped.
    pub fn overflowed(&self) -> bool {
        self.inner.dropped()
    }

    /// Two segments carried different bytes for the same sequence range.
    pub fn conflict(&self) -> bool {
        self.inner.conflict()
    }

    /// Heap bytes held by this assembler (for a memory budget).
    pub fn heap_bytes(&self) -> usize {
        self.inner.heap_bytes()
    }

    /// Shortcut: [`parse_client_hello`] over the contiguous bytes.
    pub fn client_hello(&self) -> HelloParse<'_> {
        parse_client_hello(self.contiguous())
    }

    /// Like [`HelloAssembler::client_hello`], but does not parse again until
    /// the contiguous bytes reach the last `NeedMore` bound: call it after
    /// every segment without re-parsing (and, for a hello spread over many
    /// records, re-copying) the prefix each time. `NotTls` is returned as
    /// soon as the first bytes rule TLS out, or when the hello cannot fit
    /// the window.
    pub fn poll(&mut self) -> HelloParse<'_> {
        let have = self.inner.contiguous().len();
        if have < self.next_need {
            return HelloParse::NeedMore {
                have,
                need: self.next_need,
            };
        }
        let cap = self.inner.cap();
        let r = parse_client_hello(self.inner.contiguous());
        match r {
            // It can never fit the window: give up like for a non-TLS flow.
            HelloParse::NeedMore { need, .. } if need > cap => HelloParse::NotTls,
            HelloParse::NeedMore { need, .. } => {
                self.next_need = need;
                r
            }
            _ => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_validation() {
        assert_eq!(
            validate_hostname(b"Example.COM").as_deref(),
            Some("example.com")
        );
        assert!(matches!(
            validate_hostname(b"a.b"),
            Some(Cow::Borrowed("a.b"))
        ));
        assert_eq!(validate_hostname(b"x.com.").as_deref(), Some("x.com"));
        for bad in [
            &b""[..],
            b".",
            b"a..b",
            b"-a.com",
            b"a b.com",
            b"a\0.com",
            b"\xc3\xa9.fr",
        ] {
            assert!(validate_hostname(bad).is_none(), "{bad:?}");
        }
        let long = vec![b'a'; 64];
        assert!(validate_hostname(&long).is_none());
    }

    #[test]
    fn grease() {
        assert!(is_grease(0x0A0A));
        assert!(is_grease(0xFAFA));
        assert!(!is_grease(0x0304));
        assert!(!is_grease(0x0A1A));
    }
}
