//! Streaming reader for classic pcap and pcapng capture files.
//!
//! One internal buffer is reused for every record, so steady-state reading does not
//! allocate. A packet record larger than [`MAX_RECORD_LEN`] is never buffered: its
//! bytes are read past in fixed-size chunks and the record is counted
//! ([`PcapReader::skipped_records`]), so a corrupt or lying length field (up to 4 GiB)
//! costs reading time, never memory, and one oversized record does not cost the rest
//! of the file. A pcapng packet block whose fields contradict its own length is
//! skipped and counted the same way. Damage to the framing itself (a pcapng block
//! whose trailing length differs, a header cut short) still ends the file with an
//! error: past it there is no trustworthy next record.

use std::io::{BufReader, ErrorKind, Read};

use crate::{DecodeError, LinkType};

/// Largest captured length accepted for one packet (256 KiB, libpcap's maximum snaplen).
pub const MAX_RECORD_LEN: u32 = 256 * 1024;
/// Largest pcapng block buffered: a maximal packet plus room for block fields and options.
const MAX_BLOCK_BODY: u32 = MAX_RECORD_LEN + 4096;

const PCAP_MAGIC_USEC: u32 = 0xA1B2_C3D4;
const PCAP_MAGIC_NSEC: u32 = 0xA1B2_3C4D;
const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_BOM: u32 = 0x1A2B_3C4D;
const BLOCK_IDB: u32 = 1;
const BLOCK_OPB: u32 = 2;
const BLOCK_SPB: u32 = 3;
const BLOCK_EPB: u32 = 6;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

/// One captured frame as stored in the file; `data` borrows the reader's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawPacket<'a> {
    /// Capture time, nanoseconds since the Unix epoch (0 when the file has none, e.g. pcapng SPB).
    pub ts_nanos: u64,
    /// Link type of the interface the frame was captured on.
    pub link: LinkType,
    /// The captured bytes (possibly cut by the snaplen).
    pub data: &'a [u8],
    /// Length of the frame on the wire.
    pub orig_len: u32,
}

/// Timestamp resolution of a pcapng interface.
#[derive(Clone, Copy, Debug)]
enum TsRes {
    /// 10^-k seconds per unit.
    Dec(u8),
    /// 2^-k seconds per unit.
    Bin(u8),
}

#[derive(Clone, Copy, Debug)]
struct Iface {
    link: LinkType,
    snaplen: u32,
    res: TsRes,
    offset_secs: i64,
}

#[derive(Debug)]
enum Format {
    Pcap {
        link: LinkType,
        big_endian: bool,
        nanos: bool,
    },
    PcapNg {
        big_endian: bool,
        ifaces: Vec<Iface>,
    },
}

/// Streaming pcap/pcapng reader over any [`Read`] (buffered internally).
pub struct PcapReader<R: Read> {
    r: BufReader<R>,
    buf: Vec<u8>,
    fmt: Format,
    skipped: u64,
}

impl<R: Read> std::fmt::Debug for PcapReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapReader")
            .field("fmt", &self.fmt)
            .finish_non_exhaustive()
    }
}

/// Where a packet sits in the buffer, found before the buffer is borrowed for return.
struct Found {
    start: usize,
    len: usize,
    ts_nanos: u64,
    link: LinkType,
    orig_len: u32,
}

#[inline]
fn u16_at(b: &[u8], at: usize, big_endian: bool) -> Result<u16, DecodeError> {
    let s: [u8; 2] = b
        .get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .ok_or(DecodeError::Malformed("field outside block"))?;
    Ok(if big_endian {
        u16::from_be_bytes(s)
    } else {
        u16::from_le_bytes(s)
    })
}

#[inline]
fn u32_at(b: &[u8], at: usize, big_endian: bool) -> Result<u32, DecodeError> {
    let s: [u8; 4] = b
        .get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .ok_or(DecodeError::Malformed("field outside block"))?;
    Ok(if big_endian {
        u32::from_be_bytes(s)
    } else {
        u32::from_le_bytes(s)
    })
}

fn units_to_nanos(units: u64, res: TsRes) -> u64 {
    match res {
        TsRes::Dec(k) if k <= 9 => units.saturating_mul(10u64.pow(u32::from(9 - k))),
        TsRes::Dec(k) => 10u64
            .checked_pow(u32::from(k - 9))
            .map_or(0, |div| units / div),
        TsRes::Bin(k) => {
            let ns = (u128::from(units) * 1_000_000_000) >> u32::from(k.min(127));
            u64::try_from(ns).unwrap_or(u64::MAX)
        }
    }
}

impl<R: Read> PcapReader<R> {
    /// Reads the file header (pcap) or first section header block (pcapng).
    pub fn new(r: R) -> Result<Self, DecodeError> {
        let mut me = PcapReader {
            r: BufReader::with_capacity(64 * 1024, r),
            buf: Vec::with_capacity(4096),
            skipped: 0,
            fmt: Format::Pcap {
                link: LinkType::Ethernet,
                big_endian: false,
                nanos: false,
            },
        };
        let magic: [u8; 4] = me
            .read_arr("file header")?
            .ok_or(DecodeError::Truncated("file header"))?;
        let le = u32::from_le_bytes(magic);
        let be = u32::from_be_bytes(magic);
        let (big_endian, nanos) = match (le, be) {
            (PCAP_MAGIC_USEC, _) => (false, false),
            (_, PCAP_MAGIC_USEC) => (true, false),
            (PCAP_MAGIC_NSEC, _) => (false, true),
            (_, PCAP_MAGIC_NSEC) => (true, true),
            (PCAPNG_SHB, _) => {
                me.fmt = Format::PcapNg {
                    big_endian: false,
                    ifaces: Vec::new(),
                };
                me.section_header()?;
                return Ok(me);
            }
            _ => return Err(DecodeError::BadMagic(be)),
        };
        let rest: [u8; 20] = me
            .read_arr("file header")?
            .ok_or(DecodeError::Truncated("file header"))?;
        let network = u32_at(&rest, 16, big_endian)?;
        // libpcap's LT_LINKTYPE: the upper bits carry FCS information
        me.fmt = Format::Pcap {
            link: LinkType::from_dlt(network & 0x03FF_FFFF),
            big_endian,
            nanos,
        };
        Ok(me)
    }

    /// Packet records skipped so far: larger than [`MAX_RECORD_LEN`], or a pcapng
    /// packet block whose captured length or interface does not fit.
    pub fn skipped_records(&self) -> u64 {
        self.skipped
    }

    /// The next packet, `Ok(None)` at a clean end of file. Oversized and damaged
    /// packet records are skipped (and counted), not returned as errors.
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, DecodeError> {
        let found = match self.fmt {
            Format::Pcap {
                link,
                big_endian,
                nanos,
            } => self.next_pcap(link, big_endian, nanos)?,
            Format::PcapNg { .. } => self.next_pcapng()?,
        };
        let Some(f) = found else { return Ok(None) };
        let data = self
            .buf
            .get(f.start..f.start + f.len)
            .ok_or(DecodeError::Malformed("packet outside buffer"))?;
        Ok(Some(RawPacket {
            ts_nanos: f.ts_nanos,
            link: f.link,
            data,
            orig_len: f.orig_len,
        }))
    }

    fn next_pcap(
        &mut self,
        link: LinkType,
        big_endian: bool,
        nanos: bool,
    ) -> Result<Option<Found>, DecodeError> {
        loop {
            let Some(hdr) = self.read_arr::<16>("record header")? else {
                return Ok(None);
            };
            let secs = u64::from(u32_at(&hdr, 0, big_endian)?);
            let frac = u64::from(u32_at(&hdr, 4, big_endian)?);
            let incl = u32_at(&hdr, 8, big_endian)?;
            let orig_len = u32_at(&hdr, 12, big_endian)?;
            if incl > MAX_RECORD_LEN {
                // read past it without buffering; a length beyond the end of the
                // file ends the file as truncated
                self.skip(u64::from(incl))?;
                self.skipped += 1;
                continue;
            }
            let len = incl as usize;
            self.fill(len, "record")?;
            let ts_nanos = secs.saturating_mul(1_000_000_000).saturating_add(if nanos {
                frac
            } else {
                frac.saturating_mul(1000)
            });
            return Ok(Some(Found {
                start: 0,
                len,
                ts_nanos,
                link,
                orig_len,
            }));
        }
    }

    fn next_pcapng(&mut self) -> Result<Option<Found>, DecodeError> {
        loop {
            let Some(hdr) = self.read_arr::<8>("block header")? else {
                return Ok(None);
            };
            let big_endian = match &self.fmt {
                Format::PcapNg { big_endian, .. } => *big_endian,
                Format::Pcap { .. } => return Err(DecodeError::Malformed("not pcapng")),
            };
            let btype = u32_at(&hdr, 0, big_endian)?;
            if btype == PCAPNG_SHB {
                // a new section; its byte order may differ, so re-read the length after the BOM
                self.section_header_after_type(hdr)?;
                continue;
            }
            let total = u32_at(&hdr, 4, big_endian)?;
            if total < 12 || !total.is_multiple_of(4) {
                return Err(DecodeError::Malformed("pcapng block length"));
            }
            let body = total - 12;
            if !matches!(btype, BLOCK_IDB | BLOCK_EPB | BLOCK_SPB | BLOCK_OPB) {
                self.skip(u64::from(body) + 4)?;
                continue;
            }
            if body > MAX_BLOCK_BODY {
                if btype == BLOCK_IDB {
                    return Err(DecodeError::RecordTooLarge {
                        len: u64::from(body),
                        limit: MAX_RECORD_LEN,
                    });
                }
                // an oversized packet: read past it, never buffer it
                self.skip(u64::from(body) + 4)?;
                self.skipped += 1;
                continue;
            }
            let body = body as usize;
            self.fill(body + 4, "block")?; // body plus trailing length
            let trailer = u32_at(&self.buf, body, big_endian)?;
            if trailer != total {
                return Err(DecodeError::Malformed(
                    "pcapng trailing block length differs",
                ));
            }
            match btype {
                BLOCK_IDB => self.interface(body, big_endian)?,
                BLOCK_EPB | BLOCK_OPB => {
                    // EPB: 32-bit interface id; obsolete PB: 16-bit id + 16-bit drop count
                    let iface_id = if btype == BLOCK_EPB {
                        u32_at(&self.buf, 0, big_endian)?
                    } else {
                        u32::from(u16_at(&self.buf, 0, big_endian)?)
                    };
                    let Ok(iface) = self.iface(iface_id) else {
                        self.skipped += 1;
                        continue;
                    };
                    let ts_units = (u64::from(u32_at(&self.buf, 4, big_endian)?) << 32)
                        | u64::from(u32_at(&self.buf, 8, big_endian)?);
                    let caplen = u32_at(&self.buf, 12, big_endian)?;
                    let orig_len = u32_at(&self.buf, 16, big_endian)?;
                    let len = caplen as usize;
                    if caplen > MAX_RECORD_LEN || 20 + len > body {
                        // the captured length contradicts the block: damaged
                        self.skipped += 1;
                        continue;
                    }
                    let ts_nanos = units_to_nanos(ts_units, iface.res)
                        .saturating_add_signed(iface.offset_secs.saturating_mul(1_000_000_000));
                    return Ok(Some(Found {
                        start: 20,
                        len,
                        ts_nanos,
                        link: iface.link,
                        orig_len,
                    }));
                }
                _ => {
                    // BLOCK_SPB: no interface id (always 0), no timestamp
                    let Ok(iface) = self.iface(0) else {
                        self.skipped += 1;
                        continue;
                    };
                    let orig_len = u32_at(&self.buf, 0, big_endian)?;
                    let mut len = (orig_len as usize).min(body.saturating_sub(4));
                    if iface.snaplen != 0 {
                        len = len.min(iface.snaplen as usize);
                    }
                    return Ok(Some(Found {
                        start: 4,
                        len,
                        ts_nanos: 0,
                        link: iface.link,
                        orig_len,
                    }));
                }
            }
        }
    }

    fn iface(&self, id: u32) -> Result<Iface, DecodeError> {
        match &self.fmt {
            Format::PcapNg { ifaces, .. } => ifaces
                .get(id as usize)
                .copied()
                .ok_or(DecodeError::UnknownInterface(id)),
            Format::Pcap { .. } => Err(DecodeError::Malformed("not pcapng")),
        }
    }

    /// Parses an IDB whose body is in `self.buf[..body]`.
    fn interface(&mut self, body: usize, big_endian: bool) -> Result<(), DecodeError> {
        let b = self.buf.get(..body).ok_or(DecodeError::Malformed("IDB"))?;
        let link = LinkType::from_dlt(u32::from(u16_at(b, 0, big_endian)?));
        let snaplen = u32_at(b, 4, big_endian)?;
        let mut iface = Iface {
            link,
            snaplen,
            res: TsRes::Dec(6),
            offset_secs: 0,
        };
        let mut off = 8;
        while off + 4 <= body {
            let code = u16_at(b, off, big_endian)?;
            let len = usize::from(u16_at(b, off + 2, big_endian)?);
            if code == 0 {
                break;
            }
            let val = b
                .get(off + 4..off + 4 + len)
                .ok_or(DecodeError::Malformed("IDB option"))?;
            match (code, val) {
                (OPT_IF_TSRESOL, [r]) => {
                    iface.res = if r & 0x80 == 0 {
                        TsRes::Dec(*r)
                    } else {
                        TsRes::Bin(r & 0x7F)
                    };
                }
                (OPT_IF_TSOFFSET, v) if v.len() == 8 => {
                    let a: [u8; 8] = v
                        .try_into()
                        .map_err(|_| DecodeError::Malformed("if_tsoffset"))?;
                    iface.offset_secs = if big_endian {
                        i64::from_be_bytes(a)
                    } else {
                        i64::from_le_bytes(a)
                    };
                }
                _ => {}
            }
            off += 4 + len.div_ceil(4) * 4;
        }
        if let Format::PcapNg { ifaces, .. } = &mut self.fmt {
            if ifaces.len() >= 65536 {
                return Err(DecodeError::Malformed("too many interfaces"));
            }
            ifaces.push(iface);
        }
        Ok(())
    }

    /// Reads a section header block whose 4-byte type has already been consumed.
    fn section_header(&mut self) -> Result<(), DecodeError> {
        let len: [u8; 4] = self
            .read_arr("section header")?
            .ok_or(DecodeError::Truncated("section header"))?;
        let mut hdr = [0u8; 8];
        hdr[..4].copy_from_slice(&PCAPNG_SHB.to_le_bytes());
        hdr[4..].copy_from_slice(&len);
        self.section_header_after_type(hdr)
    }

    /// Reads the rest of an SHB, given its type and length fields (`hdr`).
    fn section_header_after_type(&mut self, hdr: [u8; 8]) -> Result<(), DecodeError> {
        let bom: [u8; 4] = self
            .read_arr("section header")?
            .ok_or(DecodeError::Truncated("section header"))?;
        let big_endian = if u32::from_le_bytes(bom) == PCAPNG_BOM {
            false
        } else if u32::from_be_bytes(bom) == PCAPNG_BOM {
            true
        } else {
            return Err(DecodeError::Malformed("pcapng byte-order magic"));
        };
        let total = u32_at(&hdr, 4, big_endian)?;
        if total < 28 || !total.is_multiple_of(4) {
            return Err(DecodeError::Malformed("section header length"));
        }
        if total > MAX_BLOCK_BODY {
            return Err(DecodeError::RecordTooLarge {
                len: u64::from(total),
                limit: MAX_RECORD_LEN,
            });
        }
        // version, section length, options and trailing length: not needed
        self.skip(u64::from(total - 12))?;
        match &mut self.fmt {
            Format::PcapNg {
                big_endian: be,
                ifaces,
            } => {
                *be = big_endian;
                ifaces.clear();
            }
            f @ Format::Pcap { .. } => {
                *f = Format::PcapNg {
                    big_endian,
                    ifaces: Vec::new(),
                }
            }
        }
        Ok(())
    }

    /// Reads exactly N bytes; `Ok(None)` on a clean EOF before the first byte.
    fn read_arr<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<Option<[u8; N]>, DecodeError> {
        let mut a = [0u8; N];
        let mut got = 0;
        while got < N {
            let dst = a.get_mut(got..).unwrap_or_default();
            match self.r.read(dst) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(DecodeError::Truncated(what)),
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(a))
    }

    /// Reads exactly `n` bytes into the start of the reused buffer.
    fn fill(&mut self, n: usize, what: &'static str) -> Result<(), DecodeError> {
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        let dst = self
            .buf
            .get_mut(..n)
            .ok_or(DecodeError::Malformed("buffer"))?;
        self.r.read_exact(dst).map_err(|e| match e.kind() {
            ErrorKind::UnexpectedEof => DecodeError::Truncated(what),
            _ => DecodeError::Io(e),
        })
    }

    fn skip(&mut self, n: u64) -> Result<(), DecodeError> {
        let copied = std::io::copy(&mut (&mut self.r).take(n), &mut std::io::sink())?;
        if copied < n {
            return Err(DecodeError::Truncated("skipped block"));
        }
        Ok(())
    }
}
