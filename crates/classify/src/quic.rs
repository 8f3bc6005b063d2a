//! QUIC client Initial decryption (RFC 9000/9001 for v1, RFC 9369 for v2),
//! to read the TLS ClientHello (SNI, ALPN) a client sends in CRYPTO frames.
//!
//! Initial packets are protected with keys every observer can derive from
//! the Destination Connection ID, so a gateway can read them:
//! HKDF-Extract(version salt, DCID) -> "client in" secret -> key, iv, hp
//! (labels `quic key`/`quic iv`/`quic hp`, or `quicv2 ...` for v2), header
//! protection removed with AES-128-ECB over a 16-byte sample, payload opened
//! with AES-128-GCM. All crypto is `ring`.
//!
//! * [`is_quic_initial`]: cheap header check, no crypto.
//! * [`decrypt_initials`]: decrypts every client Initial packet of one
//!   datagram (coalesced packets are walked; 0-RTT/Handshake are skipped by
//!   their length) and lists the CRYPTO frames.
//! * [`CryptoAssembler`]: joins CRYPTO frames across datagrams (out of order,
//!   duplicated) for one original DCID, bounded to [`CRYPTO_CAP`] bytes, and
//!   hands the contiguous prefix to [`tls::parse_handshake_client_hello`].
//!
//! * [`gquic_client_hello`]: the plaintext CHLO of Google QUIC Q035-Q046.
//!
//! Never panics on any input; every length is checked.

use crate::reassembly::Reassembler;
use crate::tls::{self, HelloParse};
use ring::{aead, hkdf};
use std::borrow::Cow;
use std::ops::Range;
use std::sync::OnceLock;

/// QUIC version 1 (RFC 9000).
pub const VERSION_1: u32 = 0x0000_0001;
/// QUIC version 2 (RFC 9369).
pub const VERSION_2: u32 = 0x6B33_43CF;
/// Longest connection ID in v1/v2.
pub const MAX_CID_LEN: usize = 20;
/// Largest CRYPTO stream prefix a [`CryptoAssembler`] keeps.
pub const CRYPTO_CAP: usize = 16 * 1024;
/// At most this many CRYPTO frames are kept per datagram.
pub const MAX_FRAMES_PER_DATAGRAM: usize = 256;
/// Clients must pad datagrams carrying Initial packets to this size.
pub const MIN_CLIENT_INITIAL_DATAGRAM: usize = 1200;

const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];
const TAG_LEN: usize = 16;
const SAMPLE_LEN: usize = 16;

/// Why a datagram yielded no Initial plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuicError {
    #[error("not a QUIC long-header packet")]
    NotLongHeader,
    #[error("QUIC version {0:#010x} is not v1 or v2")]
    UnsupportedVersion(u32),
    #[error("QUIC packet truncated or a length field is inconsistent")]
    Truncated,
    #[error("connection ID longer than 20 bytes")]
    BadConnectionId,
    #[error("no Initial packet in the datagram")]
    NoInitial,
    #[error("Initial packet failed authentication (not a client Initial, or corrupted)")]
    DecryptFailed,
    #[error("malformed frame in Initial payload")]
    BadFrame,
    #[error("datagram belongs to another connection ID")]
    DcidMismatch,
}

/// A connection ID (at most 20 bytes), stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConnId {
    len: u8,
    bytes: [u8; MAX_CID_LEN],
}

impl ConnId {
    /// `None` if longer than 20 bytes.
    pub fn new(b: &[u8]) -> Option<ConnId> {
        let mut bytes = [0u8; MAX_CID_LEN];
        bytes.get_mut(..b.len())?.copy_from_slice(b);
        Some(ConnId {
            len: b.len() as u8,
            bytes,
        })
    }
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

impl std::fmt::Debug for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnId(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// The decrypted client Initial packets of one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialPackets {
    pub version: u32,
    /// Destination connection ID of the first Initial packet decrypted.
    pub dcid: ConnId,
    /// The DCID the keys were derived from: the client's original DCID
    /// (equal to `dcid` unless keys were supplied by a [`CryptoAssembler`]).
    pub key_dcid: ConnId,
    pub scid: ConnId,
    /// Number of Initial packets decrypted.
    pub packets: usize,
    /// Largest packet number seen.
    pub largest_pn: u64,
    /// A CONNECTION_CLOSE or other non-Initial frame ended a payload early.
    pub stopped_early: bool,
    /// CRYPTO frame data of all packets, back to back.
    plaintext: Vec<u8>,
    frames: Vec<(u64, Range<usize>)>,
}

impl InitialPackets {
    /// CRYPTO frames as (stream offset, data), in packet order.
    pub fn crypto_frames(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.frames
            .iter()
            .filter_map(|(off, r)| Some((*off, self.plaintext.get(r.clone())?)))
    }

    /// Number of CRYPTO frames.
    pub fn crypto_frame_count(&self) -> usize {
        self.frames.len()
    }
}

/// Reads a QUIC variable-length integer.
fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *b.get(*pos)?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(*pos..*pos + len)?;
    let mut v = u64::from(first & 0x3F);
    for &x in bytes.iter().skip(1) {
        v = (v << 8) | u64::from(x);
    }
    *pos += len;
    Some(v)
}

fn be32(b: &[u8], pos: usize) -> Option<u32> {
    match b.get(pos..pos + 4)? {
        &[a, b1, c, d] => Some(u32::from_be_bytes([a, b1, c, d])),
        _ => None,
    }
}

/// Long-header packet types as v1 numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LongType {
    Initial,
    ZeroRtt,
    Handshake,
    Retry,
}

fn long_type(version: u32, bits: u8) -> LongType {
    let t = if version == VERSION_2 {
        // v2: Initial 0b01, 0-RTT 0b10, Handshake 0b11, Retry 0b00.
        (bits + 3) & 3
    } else {
        bits & 3
    };
    match t {
        0 => LongType::Initial,
        1 => LongType::ZeroRtt,
        2 => LongType::Handshake,
        _ => LongType::Retry,
    }
}

/// Cheap check: does the datagram start with a v1 or v2 Initial long header
/// with sane connection-ID lengths? (No size or crypto check: see
/// [`MIN_CLIENT_INITIAL_DATAGRAM`].)
pub fn is_quic_initial(d: &[u8]) -> bool {
    let (Some(&b0), Some(version)) = (d.first(), be32(d, 1)) else {
        return false;
    };
    if b0 & 0x80 == 0 || !matches!(version, VERSION_1 | VERSION_2) {
        return false;
    }
    if long_type(version, (b0 >> 4) & 3) != LongType::Initial {
        return false;
    }
    let Some(&dl) = d.get(5) else { return false };
    let dl = usize::from(dl);
    let Some(&sl) = d.get(6 + dl) else {
        return false;
    };
    // Client's first DCID must be at least 8 bytes (RFC 9000 7.2), but
    // later Initials may use the server's choice (any length <= 20).
    dl <= MAX_CID_LEN && usize::from(sl) <= MAX_CID_LEN && d.len() > 7 + dl + usize::from(sl)
}

/// Output length for ring's HKDF.
struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label (RFC 8446 7.1) with an empty context.
fn expand_label(prk: &hkdf::Prk, label: &[u8], out: &mut [u8]) -> Result<(), QuicError> {
    let len = u16::try_from(out.len()).map_err(|_| QuicError::DecryptFailed)?;
    let full_len = u8::try_from(6 + label.len()).map_err(|_| QuicError::DecryptFailed)?;
    let len_b = len.to_be_bytes();
    let info: [&[u8]; 5] = [&len_b, &[full_len], b"tls13 ", label, &[0u8]];
    prk.expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| QuicError::DecryptFailed)
}

/// Client Initial keys for one DCID and version.
struct Keys {
    aead: aead::LessSafeKey,
    iv: [u8; 12],
    hp: aead::quic::HeaderProtectionKey,
}

impl Keys {
    fn derive(version: u32, dcid: &[u8]) -> Result<Keys, QuicError> {
        let (lk, li, lh): (&[u8], &[u8], &[u8]) = if version == VERSION_2 {
            (b"quicv2 key", b"quicv2 iv", b"quicv2 hp")
        } else {
            (b"quic key", b"quic iv", b"quic hp")
        };
        // The HMAC key schedule of the two fixed salts is computed once.
        static SALTS: OnceLock<[hkdf::Salt; 2]> = OnceLock::new();
        let salts = SALTS.get_or_init(|| {
            [
                hkdf::Salt::new(hkdf::HKDF_SHA256, &SALT_V1),
                hkdf::Salt::new(hkdf::HKDF_SHA256, &SALT_V2),
            ]
        });
        let initial = match (version == VERSION_2, salts) {
            (false, [v1, _]) => v1.extract(dcid),
            (true, [_, v2]) => v2.extract(dcid),
        };
        let mut client_secret = [0u8; 32];
        expand_label(&initial, b"client in", &mut client_secret)?;
        let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &client_secret);
        let mut key = [0u8; 16];
        let mut iv = [0u8; 12];
        let mut hp = [0u8; 16];
        expand_label(&prk, lk, &mut key)?;
        expand_label(&prk, li, &mut iv)?;
        expand_label(&prk, lh, &mut hp)?;
        let unbound = aead::UnboundKey::new(&aead::AES_128_GCM, &key)
            .map_err(|_| QuicError::DecryptFailed)?;
        let hp = aead::quic::HeaderProtectionKey::new(&aead::quic::AES_128, &hp)
            .map_err(|_| QuicError::DecryptFailed)?;
        Ok(Keys {
            aead: aead::LessSafeKey::new(unbound),
            iv,
            hp,
        })
    }
}

/// Decrypts every client Initial packet in a UDP datagram (v1 or v2) and
/// collects their CRYPTO frames. Coalesced 0-RTT/Handshake packets are
/// skipped by their length; a short-header packet ends the walk. Keys come
/// from the first Initial's DCID; an Initial with another DCID ends the walk.
pub fn decrypt_initials(datagram: &[u8]) -> Result<InitialPackets, QuicError> {
    decrypt_inner(datagram, &mut None)
}

/// Client Initial keys derived from an original DCID, reusable across the
/// datagrams of one connection (saves the HKDF work, and keeps working when
/// the client switches to the server's chosen DCID).
pub struct InitialKeys {
    version: u32,
    dcid: ConnId,
    keys: Keys,
}

impl InitialKeys {
    pub fn new(version: u32, original_dcid: &[u8]) -> Result<InitialKeys, QuicError> {
        if !matches!(version, VERSION_1 | VERSION_2) {
            return Err(QuicError::UnsupportedVersion(version));
        }
        let dcid = ConnId::new(original_dcid).ok_or(QuicError::BadConnectionId)?;
        Ok(InitialKeys {
            version,
            dcid,
            keys: Keys::derive(version, original_dcid)?,
        })
    }
    pub fn version(&self) -> u32 {
        self.version
    }
    pub fn original_dcid(&self) -> &ConnId {
        &self.dcid
    }
}

impl std::fmt::Debug for InitialKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitialKeys")
            .field("version", &self.version)
            .field("dcid", &self.dcid)
            .finish_non_exhaustive()
    }
}

/// Like [`decrypt_initials`] but with keys from the client's original DCID
/// (any DCID in the packets is accepted: authentication decides).
pub fn decrypt_initials_with(
    datagram: &[u8],
    keys: &InitialKeys,
) -> Result<InitialPackets, QuicError> {
    decrypt_walk(datagram, Some(keys), &mut None)
}

fn decrypt_inner(
    datagram: &[u8],
    derived: &mut Option<InitialKeys>,
) -> Result<InitialPackets, QuicError> {
    decrypt_walk(datagram, None, derived)
}

/// The datagram walk. With `given` keys, every Initial of that version is
/// opened with them; without, keys are derived from the first Initial's
/// DCID into `derived` and only Initials with that DCID are opened.
fn decrypt_walk(
    datagram: &[u8],
    given: Option<&InitialKeys>,
    derived: &mut Option<InitialKeys>,
) -> Result<InitialPackets, QuicError> {
    let mut pos = 0usize;
    let mut out: Option<InitialPackets> = None;
    let mut scratch: Vec<u8> = Vec::new();
    let mut first_err: Option<QuicError> = None;
    while pos < datagram.len() {
        let Some(pkt) = datagram.get(pos..) else {
            break;
        };
        let Some(&b0) = pkt.first() else { break };
        if b0 & 0x80 == 0 {
            if out.is_none() && pos == 0 {
                return Err(QuicError::NotLongHeader);
            }
            break; // short header: 1-RTT, always last
        }
        let version = be32(pkt, 1).ok_or(QuicError::Truncated)?;
        if !matches!(version, VERSION_1 | VERSION_2) {
            if out.is_some() {
                break;
            }
            return Err(QuicError::UnsupportedVersion(version));
        }
        let mut p = 5usize;
        let dcid_len = usize::from(*pkt.get(p).ok_or(QuicError::Truncated)?);
        p += 1;
        let dcid = pkt.get(p..p + dcid_len).ok_or(QuicError::Truncated)?;
        p += dcid_len;
        let scid_len = usize::from(*pkt.get(p).ok_or(QuicError::Truncated)?);
        p += 1;
        let scid = pkt.get(p..p + scid_len).ok_or(QuicError::Truncated)?;
        p += scid_len;
        let (Some(dcid_id), Some(scid_id)) = (ConnId::new(dcid), ConnId::new(scid)) else {
            return Err(QuicError::BadConnectionId);
        };
        let ty = long_type(version, (b0 >> 4) & 3);
        if ty == LongType::Retry {
            break; // no length field; a Retry is never coalesced with data
        }
        if ty == LongType::Initial {
            let token_len = varint(pkt, &mut p).ok_or(QuicError::Truncated)?;
            p = usize::try_from(token_len)
                .ok()
                .and_then(|t| p.checked_add(t))
                .ok_or(QuicError::Truncated)?;
        }
        let length = varint(pkt, &mut p).ok_or(QuicError::Truncated)?;
        let pn_offset = p;
        let end = usize::try_from(length)
            .ok()
            .and_then(|l| pn_offset.checked_add(l))
            .filter(|&e| e <= pkt.len())
            .ok_or(QuicError::Truncated)?;
        if ty != LongType::Initial {
            pos += end;
            continue;
        }
        // An Initial.
        let k: &InitialKeys = match given {
            Some(g) if g.version == version => g,
            Some(_) => break,
            None => {
                if derived.is_none() {
                    *derived = Some(InitialKeys::new(version, dcid)?);
                }
                match derived.as_ref() {
                    Some(d) if d.dcid.as_bytes() == dcid && d.version == version => d,
                    _ => break,
                }
            }
        };
        let Some(packet) = pkt.get(..end) else { break };
        match open_packet(&k.keys, packet, pn_offset, &mut scratch) {
            Ok((pn, plain)) => {
                let o = out.get_or_insert_with(|| InitialPackets {
                    version,
                    dcid: dcid_id,
                    key_dcid: k.dcid,
                    scid: scid_id,
                    packets: 0,
                    largest_pn: 0,
                    stopped_early: false,
                    plaintext: Vec::new(),
                    frames: Vec::new(),
                });
                o.packets += 1;
                o.largest_pn = o.largest_pn.max(pn);
                let stopped = parse_frames(plain, &mut o.plaintext, &mut o.frames)?;
                o.stopped_early |= stopped;
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
        pos += end;
    }
    match out {
        Some(o) => Ok(o),
        None => Err(first_err.unwrap_or(QuicError::NoInitial)),
    }
}

/// DCID of the first (long-header) packet of a datagram.
fn first_dcid(d: &[u8]) -> Option<ConnId> {
    let len = usize::from(*d.get(5)?);
    ConnId::new(d.get(6..6 + len)?)
}

/// Removes header protection and opens one packet (`packet` ends at the
/// packet's end). Returns the packet number and the plaintext (in
/// `scratch`).
fn open_packet<'s>(
    k: &Keys,
    packet: &[u8],
    pn_offset: usize,
    scratch: &'s mut Vec<u8>,
) -> Result<(u64, &'s [u8]), QuicError> {
    let sample = packet
        .get(pn_offset + 4..pn_offset + 4 + SAMPLE_LEN)
        .ok_or(QuicError::Truncated)?;
    let mask =
        k.hp.new_mask(sample)
            .map_err(|_| QuicError::DecryptFailed)?;
    let [m0, m1, m2, m3, m4] = mask;
    scratch.clear();
    scratch.extend_from_slice(packet);
    let b0 = scratch.first_mut().ok_or(QuicError::Truncated)?;
    *b0 ^= m0 & 0x0F;
    let pn_len = usize::from(*b0 & 0x03) + 1;
    let mut pn: u64 = 0;
    for (i, m) in [m1, m2, m3, m4].into_iter().take(pn_len).enumerate() {
        let byte = scratch.get_mut(pn_offset + i).ok_or(QuicError::Truncated)?;
        *byte ^= m;
        pn = (pn << 8) | u64::from(*byte);
    }
    let header_len = pn_offset + pn_len;
    if scratch.len() < header_len + TAG_LEN {
        return Err(QuicError::Truncated);
    }
    let mut nonce = k.iv;
    for (n, p) in nonce.iter_mut().skip(4).zip(pn.to_be_bytes()) {
        *n ^= p;
    }
    let (header, body) = scratch.split_at_mut(header_len);
    let plain = k
        .aead
        .open_in_place(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(&*header),
            body,
        )
        .map_err(|_| QuicError::DecryptFailed)?;
    Ok((pn, plain))
}

/// Walks the frames of an Initial payload, copying CRYPTO frame data into
/// `data` and recording (stream offset, range in `data`). Returns true if a
/// frame that ends the walk (CONNECTION_CLOSE or any frame type not allowed
/// in Initial packets) was met.
fn parse_frames(
    plain: &[u8],
    data: &mut Vec<u8>,
    frames: &mut Vec<(u64, Range<usize>)>,
) -> Result<bool, QuicError> {
    let mut p = 0usize;
    while let Some(&ty) = plain.get(p) {
        match ty {
            0x00 => p += padding_run(plain.get(p..).unwrap_or(&[])),
            0x01 => p += 1, // PING
            0x02 | 0x03 => {
                p += 1;
                let mut next = || varint(plain, &mut p).ok_or(QuicError::BadFrame);
                let _largest = next()?;
                let _delay = next()?;
                let count = next()?;
                let _first = next()?;
                // Each range takes at least two bytes: bound the loop.
                if count > plain.len() as u64 {
                    return Err(QuicError::BadFrame);
                }
                for _ in 0..count {
                    next()?;
                    next()?;
                }
                if ty == 0x03 {
                    next()?;
                    next()?;
                    next()?;
                }
            }
            0x06 => {
                p += 1;
                let off = varint(plain, &mut p).ok_or(QuicError::BadFrame)?;
                let len = varint(plain, &mut p).ok_or(QuicError::BadFrame)?;
                let len_us = usize::try_from(len).map_err(|_| QuicError::BadFrame)?;
                let end = p.checked_add(len_us).ok_or(QuicError::BadFrame)?;
                if end > plain.len() || off.saturating_add(len) >= 1 << 62 {
                    return Err(QuicError::BadFrame);
                }
                if frames.len() < MAX_FRAMES_PER_DATAGRAM {
                    if let Some(bytes) = plain.get(p..end) {
                        let start = data.len();
                        data.extend_from_slice(bytes);
                        frames.push((off, start..data.len()));
                    }
                }
                p = end;
            }
            _ => return Ok(true), // CONNECTION_CLOSE or not allowed in Initial
        }
    }
    Ok(false)
}

/// What a Google QUIC client hello (CHLO) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GquicHello<'a> {
    /// Version tag such as `Q043` or `Q046`.
    pub version: [u8; 4],
    /// Server name (`SNI` tag), lower-cased, if a plausible host name.
    pub sni: Option<Cow<'a, str>>,
    /// User agent id (`UAID` tag), printable ASCII only.
    pub uaid: Option<&'a str>,
}

/// Reads the plaintext CHLO of Google QUIC versions before Q050 (Q035 to
/// Q046), which older Chrome and Google apps still send: the version sits
/// in the public header (offset 9 for the legacy header with an 8-byte
/// connection ID, offset 1 for Q046's long header), the CHLO tag/value map
/// follows within the first bytes of the payload. No crypto; `None` when the
/// datagram is not such a hello. Q050 and later encrypt their Initials with
/// other salts and are not handled.
pub fn gquic_client_hello(d: &[u8]) -> Option<GquicHello<'_>> {
    let b0 = *d.first()?;
    let at = if b0 & 0x80 != 0 {
        1
    } else if b0 & 0x09 == 0x09 {
        9
    } else {
        return None;
    };
    let version: [u8; 4] = d.get(at..at + 4)?.try_into().ok()?;
    let [q, x, y, z] = version;
    if q != b'Q' || !x.is_ascii_digit() || !y.is_ascii_digit() || !z.is_ascii_digit() {
        return None;
    }
    if (x, y) >= (b'0', b'5') {
        return None; // Q050+: encrypted Initials
    }
    let window = d.get(..d.len().min(at + 4 + 128))?;
    let chlo = window.windows(4).position(|w| w == b"CHLO")?;
    let le16 = |o: usize| -> Option<usize> {
        match d.get(o..o + 2)? {
            &[a, b] => Some(usize::from(u16::from_le_bytes([a, b]))),
            _ => None,
        }
    };
    let le32 = |o: usize| -> Option<usize> {
        match d.get(o..o + 4)? {
            &[a, b, c, e] => usize::try_from(u32::from_le_bytes([a, b, c, e])).ok(),
            _ => None,
        }
    };
    let n = le16(chlo + 4)?;
    if n == 0 || n > 128 {
        return None;
    }
    let table = chlo + 8;
    let values = table + 8 * n;
    let mut hello = GquicHello {
        version,
        sni: None,
        uaid: None,
    };
    let mut prev_end = 0usize;
    for i in 0..n {
        let tag = d.get(table + 8 * i..table + 8 * i + 4)?;
        let end = le32(table + 8 * i + 4)?;
        if end < prev_end {
            return None;
        }
        // Values may run past this datagram (PAD): only read what is here.
        let value = values
            .checked_add(prev_end)
            .zip(values.checked_add(end))
            .and_then(|(a, b)| d.get(a..b));
        match (tag, value) {
            (b"SNI\0", Some(v)) => hello.sni = tls::validate_hostname(v),
            (b"UAID", Some(v)) if v.iter().all(|b| (0x20..=0x7E).contains(b)) => {
                hello.uaid = std::str::from_utf8(v).ok();
            }
            _ => {}
        }
        prev_end = end;
    }
    Some(hello)
}

/// Builds a protected client Initial packet (for tests and traffic
/// generators): long header with a 4-byte packet number and a 2-byte length,
/// `payload` (frames, the caller pads it) sealed with the client Initial keys
/// of `dcid`. With the RFC 9001 A.2 inputs it reproduces the RFC's bytes.
pub fn seal_client_initial(
    version: u32,
    dcid: &[u8],
    scid: &[u8],
    token: &[u8],
    pn: u32,
    payload: &[u8],
) -> Result<Vec<u8>, QuicError> {
    seal_client_initial_keyed(version, dcid, dcid, scid, token, pn, payload)
}

/// [`seal_client_initial`] with keys from `key_dcid` (the client's original
/// DCID) while the header carries `dcid` (e.g. the server's chosen one).
pub fn seal_client_initial_keyed(
    version: u32,
    key_dcid: &[u8],
    dcid: &[u8],
    scid: &[u8],
    token: &[u8],
    pn: u32,
    payload: &[u8],
) -> Result<Vec<u8>, QuicError> {
    let type_bits: u8 = if version == VERSION_2 { 1 } else { 0 };
    if !matches!(version, VERSION_1 | VERSION_2) {
        return Err(QuicError::UnsupportedVersion(version));
    }
    let (Ok(dl), Ok(sl)) = (u8::try_from(dcid.len()), u8::try_from(scid.len())) else {
        return Err(QuicError::BadConnectionId);
    };
    if usize::from(dl) > MAX_CID_LEN || usize::from(sl) > MAX_CID_LEN {
        return Err(QuicError::BadConnectionId);
    }
    let length = 4 + payload.len() + TAG_LEN;
    // 2-byte varint for the length; the sample needs 16 bytes after pn+4.
    if length >= 1 << 14 || payload.len() + TAG_LEN < 4 + SAMPLE_LEN {
        return Err(QuicError::Truncated);
    }
    let mut pkt = Vec::with_capacity(32 + token.len() + length);
    pkt.push(0xC0 | (type_bits << 4) | 0x03);
    pkt.extend_from_slice(&version.to_be_bytes());
    pkt.push(dl);
    pkt.extend_from_slice(dcid);
    pkt.push(sl);
    pkt.extend_from_slice(scid);
    let tl = token.len() as u64;
    if tl >= 1 << 30 {
        return Err(QuicError::Truncated);
    }
    if tl < 64 {
        pkt.push(tl as u8);
    } else if tl < 1 << 14 {
        pkt.extend_from_slice(&((tl as u16) | 0x4000).to_be_bytes());
    } else {
        pkt.extend_from_slice(&((tl as u32) | 0x8000_0000).to_be_bytes());
    }
    pkt.extend_from_slice(token);
    pkt.extend_from_slice(&((length as u16) | 0x4000).to_be_bytes());
    let pn_offset = pkt.len();
    pkt.extend_from_slice(&pn.to_be_bytes());
    let header_len = pkt.len();
    let k = Keys::derive(version, key_dcid)?;
    let mut nonce = k.iv;
    for (n, p) in nonce.iter_mut().skip(4).zip(u64::from(pn).to_be_bytes()) {
        *n ^= p;
    }
    let mut body = payload.to_vec();
    let tag = k
        .aead
        .seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(pkt.get(..header_len).unwrap_or(&[])),
            &mut body,
        )
        .map_err(|_| QuicError::DecryptFailed)?;
    pkt.extend_from_slice(&body);
    pkt.extend_from_slice(tag.as_ref());
    let sample = pkt
        .get(pn_offset + 4..pn_offset + 4 + SAMPLE_LEN)
        .ok_or(QuicError::Truncated)?;
    let [m0, m1, m2, m3, m4] =
        k.hp.new_mask(sample)
            .map_err(|_| QuicError::DecryptFailed)?;
    if let Some(b0) = pkt.first_mut() {
        *b0 ^= m0 & 0x0F;
    }
    for (i, m) in [m1, m2, m3, m4].into_iter().enumerate() {
        if let Some(b) = pkt.get_mut(pn_offset + i) {
            *b ^= m;
        }
    }
    Ok(pkt)
}

/// A client Initial datagram (for tests and traffic generators) whose only
/// CRYPTO frame carries `crypto` at stream `offset`, padded with PADDING
/// frames to `datagram_len` bytes (at least the 1200 a client must send).
pub fn client_initial_datagram(
    version: u32,
    dcid: &[u8],
    offset: u64,
    crypto: &[u8],
    datagram_len: usize,
) -> Result<Vec<u8>, QuicError> {
    let mut frames = vec![0x06];
    put_varint(&mut frames, offset)?;
    put_varint(&mut frames, crypto.len() as u64)?;
    frames.extend_from_slice(crypto);
    // Header: 1 + 4 + 1 + dcid + 1 (scid 0) + 1 (token 0) + 2 (length) + 4 (pn).
    let overhead = 14 + dcid.len() + TAG_LEN;
    let target = datagram_len.max(MIN_CLIENT_INITIAL_DATAGRAM);
    if frames.len() + overhead < target {
        frames.resize(target - overhead, 0);
    }
    seal_client_initial(version, dcid, &[], &[], 0, &frames)
}

fn put_varint(out: &mut Vec<u8>, v: u64) -> Result<(), QuicError> {
    if v < 1 << 6 {
        out.push(v as u8);
    } else if v < 1 << 14 {
        out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes());
    } else if v < 1 << 30 {
        out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes());
    } else if v < 1 << 62 {
        out.extend_from_slice(&(v | 0xC000_0000_0000_0000).to_be_bytes());
    } else {
        return Err(QuicError::Truncated);
    }
    Ok(())
}

/// Length of the run of zero bytes (PADDING frames) at the start of `b`.
fn padding_run(b: &[u8]) -> usize {
    let mut n = 0;
    for c in b.chunks_exact(16) {
        if c != [0u8; 16] {
            break;
        }
        n += 16;
    }
    n + b
        .get(n..)
        .map_or(0, |r| r.iter().take_while(|&&x| x == 0).count())
}

/// Progress of a [`CryptoAssembler`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoState {
    /// The contiguous CRYPTO prefix does not hold a whole ClientHello yet.
    NeedMore { have: usize, need: usize },
    /// The prefix holds a whole ClientHello.
    Complete,
    /// The CRYPTO stream is not a ClientHello.
    NotTls,
    /// The ClientHello is longer than [`CRYPTO_CAP`]: it will never
    /// complete here.
    TooLarge,
}

/// Joins the CRYPTO frames of a client's Initial packets (possibly spread
/// over several datagrams, out of order, with duplicates) for one original
/// DCID, keeping at most [`CRYPTO_CAP`] bytes of stream. The Initial keys
/// derived from the first datagram are kept, so later datagrams cost no key
/// derivation and still open after the client switched to the server's DCID.
#[derive(Debug)]
pub struct CryptoAssembler {
    /// Boxed: the AES/GHASH key schedules are large and most flows never
    /// need them.
    keys: Option<Box<InitialKeys>>,
    stream: Reassembler,
    datagrams: usize,
}

impl Default for CryptoAssembler {
    fn default() -> Self {
        Self::new()
    }
}

impl CryptoAssembler {
    pub fn new() -> Self {
        CryptoAssembler {
            keys: None,
            stream: Reassembler::new(CRYPTO_CAP),
            datagrams: 0,
        }
    }

    /// The original DCID this assembler is keyed on (set by the first
    /// datagram or [`InitialPackets`] added).
    pub fn dcid(&self) -> Option<&ConnId> {
        self.keys.as_ref().map(|k| &k.dcid)
    }

    /// Number of datagrams (or packet sets) added.
    pub fn datagrams(&self) -> usize {
        self.datagrams
    }

    /// Adds the CRYPTO frames of one decrypted datagram. Packets whose keys
    /// came from another original DCID (or version) are refused with
    /// [`QuicError::DcidMismatch`].
    pub fn add(&mut self, pk: &InitialPackets) -> Result<CryptoState, QuicError> {
        match &self.keys {
            None => {
                self.keys = Some(Box::new(InitialKeys::new(
                    pk.version,
                    pk.key_dcid.as_bytes(),
                )?))
            }
            Some(k) if k.dcid == pk.key_dcid && k.version == pk.version => {}
            Some(_) => return Err(QuicError::DcidMismatch),
        }
        self.absorb(pk);
        Ok(self.state())
    }

    fn absorb(&mut self, pk: &InitialPackets) {
        self.datagrams += 1;
        for (off, data) in pk.crypto_frames() {
            let off = i64::try_from(off).unwrap_or(i64::MAX);
            self.stream.insert(off, data);
        }
    }

    /// Decrypts a datagram (with the cached keys after the first one) and
    /// adds it. A datagram of another connection fails with
    /// [`QuicError::DcidMismatch`] (it does not authenticate under this
    /// connection's keys and carries a different DCID).
    pub fn push_datagram(&mut self, datagram: &[u8]) -> Result<CryptoState, QuicError> {
        let pk = match &self.keys {
            None => {
                let mut derived = None;
                let pk = decrypt_inner(datagram, &mut derived)?;
                self.keys = derived.map(Box::new);
                pk
            }
            Some(k) => match decrypt_initials_with(datagram, k) {
                Ok(pk) => pk,
                Err(QuicError::DecryptFailed) if first_dcid(datagram) != Some(k.dcid) => {
                    return Err(QuicError::DcidMismatch)
                }
                Err(e) => return Err(e),
            },
        };
        self.absorb(&pk);
        Ok(self.state())
    }

    /// Two CRYPTO frames carried different bytes for the same offsets.
    pub fn conflict(&self) -> bool {
        self.stream.conflict()
    }

    /// CRYPTO data fell outside the window and was dropped.
    pub fn overflowed(&self) -> bool {
        self.stream.dropped()
    }

    /// Heap bytes held: the stream and the cached keys (for a memory
    /// budget).
    pub fn heap_bytes(&self) -> usize {
        self.stream.heap_bytes()
            + self
                .keys
                .as_ref()
                .map_or(0, |_| std::mem::size_of::<InitialKeys>())
    }

    /// The CRYPTO stream bytes received contiguously from offset 0.
    pub fn contiguous(&self) -> &[u8] {
        self.stream.contiguous()
    }

    /// Parses the ClientHello from the contiguous prefix.
    pub fn client_hello(&self) -> HelloParse<'_> {
        tls::parse_handshake_client_hello(self.contiguous())
    }

    /// Where the assembly stands.
    pub fn state(&self) -> CryptoState {
        match self.client_hello() {
            HelloParse::Hello(_) => CryptoState::Complete,
            HelloParse::NeedMore { need, .. } if need > CRYPTO_CAP => CryptoState::TooLarge,
            HelloParse::NeedMore { have, need } => CryptoState::NeedMore { have, need },
            HelloParse::NotTls => CryptoState::NotTls,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        // RFC 9000 appendix A.1 examples.
        for (hex, v) in [
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c][..],
                151_288_809_941_952_652u64,
            ),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
        ] {
            let mut p = 0;
            assert_eq!(varint(hex, &mut p), Some(v));
            assert_eq!(p, hex.len());
        }
        let mut p = 0;
        assert_eq!(varint(&[0x40], &mut p), None);
    }

    #[test]
    fn key_derivation_matches_rfc9001_a1() {
        // RFC 9001 A.1: client key/iv/hp for DCID 8394c8f03e515708. Checked
        // indirectly: the hp key must produce the A.2 mask from the A.2 sample.
        let k = Keys::derive(VERSION_1, &[0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08])
            .expect("keys");
        let sample = [
            0xd1, 0xb1, 0xc9, 0x8d, 0xd7, 0x68, 0x9f, 0xb8, 0xec, 0x11, 0xd2, 0x42, 0xb1, 0x23,
            0xdc, 0x9b,
        ];
        assert_eq!(
            k.hp.new_mask(&sample).expect("mask"),
            [0x43, 0x7b, 0x9a, 0xec, 0x36]
        );
        assert_eq!(
            k.iv,
            [0xfa, 0x04, 0x4b, 0x2f, 0x42, 0xa3, 0xfd, 0x3b, 0x46, 0xfb, 0x25, 0x5c]
        );
    }

    #[test]
    fn v2_type_bits() {
        assert_eq!(long_type(VERSION_2, 1), LongType::Initial);
        assert_eq!(long_type(VERSION_2, 0), LongType::Retry);
        assert_eq!(long_type(VERSION_2, 3), LongType::Handshake);
        assert_eq!(long_type(VERSION_1, 0), LongType::Initial);
    }
}
