//! Classic pcap writer and frame builders for capture fixtures.
//!
//! Tests across the workspace build their packets here (with `etherparse`'s
//! `PacketBuilder`, so checksums and lengths are right) instead of shipping binary
//! captures:
//!
//! ```
//! use std::net::Ipv4Addr;
//! use geofence_testkit::pcap::{udp_v4, PcapLink, PcapWriter};
//! let frame = udp_v4(Ipv4Addr::new(192, 0, 2, 1), 40000, Ipv4Addr::new(198, 51, 100, 7), 53, b"q");
//! let mut w = PcapWriter::new(Vec::new(), PcapLink::Ethernet).expect("header");
//! w.write_packet(1_700_000_000_000_000_000, &frame).expect("record");
//! let bytes = w.into_inner().expect("flush");
//! assert_eq!(bytes.len(), 24 + 16 + frame.len());
//! ```

use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::PacketBuilder;

/// Source MAC of built frames (locally administered).
pub const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Destination MAC of built frames (locally administered).
pub const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// Length of the Ethernet header the builders prepend.
pub const ETHERNET_HEADER_LEN: usize = 14;

/// Link type written into the pcap file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PcapLink {
    /// LINKTYPE_ETHERNET (1): records are Ethernet frames.
    Ethernet,
    /// LINKTYPE_RAW (101): records are bare IPv4/IPv6 packets.
    RawIp,
    /// Any other LINKTYPE number (e.g. 9 for PPP, 51 for PPPoE).
    Dlt(u32),
}

impl PcapLink {
    /// The LINKTYPE number stored in the file.
    pub fn dlt(self) -> u32 {
        match self {
            PcapLink::Ethernet => 1,
            PcapLink::RawIp => 101,
            PcapLink::Dlt(n) => n,
        }
    }
}

/// Writes a little-endian classic pcap file (microsecond or nanosecond timestamps).
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    w: W,
    nanos: bool,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header with microsecond timestamps (magic `a1b2c3d4`).
    pub fn new(w: W, link: PcapLink) -> io::Result<Self> {
        Self::with_resolution(w, link, false)
    }

    /// Writes the file header with nanosecond timestamps (magic `a1b23c4d`).
    pub fn new_nanos(w: W, link: PcapLink) -> io::Result<Self> {
        Self::with_resolution(w, link, true)
    }

    fn with_resolution(mut w: W, link: PcapLink, nanos: bool) -> io::Result<Self> {
        let magic: u32 = if nanos { 0xA1B2_3C4D } else { 0xA1B2_C3D4 };
        let mut hdr = Vec::with_capacity(24);
        hdr.extend_from_slice(&magic.to_le_bytes());
        hdr.extend_from_slice(&2u16.to_le_bytes());
        hdr.extend_from_slice(&4u16.to_le_bytes());
        hdr.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        hdr.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        hdr.extend_from_slice(&262_144u32.to_le_bytes()); // snaplen
        hdr.extend_from_slice(&link.dlt().to_le_bytes());
        w.write_all(&hdr)?;
        Ok(PcapWriter { w, nanos })
    }

    /// Appends one record holding all of `data`, captured at `ts_nanos` (Unix ns).
    pub fn write_packet(&mut self, ts_nanos: u64, data: &[u8]) -> io::Result<()> {
        self.write_packet_snap(ts_nanos, data, usize::MAX)
    }

    /// Appends one record holding at most `snaplen` bytes of `data`; the original
    /// length field still says `data.len()`, as a snaplen-limited capture would.
    pub fn write_packet_snap(
        &mut self,
        ts_nanos: u64,
        data: &[u8],
        snaplen: usize,
    ) -> io::Result<()> {
        let cap = data.get(..snaplen.min(data.len())).unwrap_or(data);
        let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "packet longer than 4 GiB");
        let secs = u32::try_from(ts_nanos / 1_000_000_000)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "timestamp beyond 2106"))?;
        let sub = ts_nanos % 1_000_000_000;
        let frac = if self.nanos { sub } else { sub / 1000 } as u32;
        let mut rec = Vec::with_capacity(16);
        rec.extend_from_slice(&secs.to_le_bytes());
        rec.extend_from_slice(&frac.to_le_bytes());
        rec.extend_from_slice(
            &u32::try_from(cap.len())
                .map_err(|_| too_big())?
                .to_le_bytes(),
        );
        rec.extend_from_slice(
            &u32::try_from(data.len())
                .map_err(|_| too_big())?
                .to_le_bytes(),
        );
        self.w.write_all(&rec)?;
        self.w.write_all(cap)
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// TCP flags for [`tcp_v4`] / [`tcp_v6`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags {
    /// SYN.
    pub syn: bool,
    /// ACK.
    pub ack: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
    /// PSH.
    pub psh: bool,
}

impl TcpFlags {
    /// A bare SYN (client opening).
    pub const SYN: TcpFlags = TcpFlags {
        syn: true,
        ack: false,
        fin: false,
        rst: false,
        psh: false,
    };
    /// SYN+ACK (server answer).
    pub const SYN_ACK: TcpFlags = TcpFlags {
        syn: true,
        ack: true,
        fin: false,
        rst: false,
        psh: false,
    };
    /// A bare ACK.
    pub const ACK: TcpFlags = TcpFlags {
        syn: false,
        ack: true,
        fin: false,
        rst: false,
        psh: false,
    };
    /// PSH+ACK (a data segment).
    pub const PSH_ACK: TcpFlags = TcpFlags {
        syn: false,
        ack: true,
        fin: false,
        rst: false,
        psh: true,
    };
    /// FIN+ACK.
    pub const FIN_ACK: TcpFlags = TcpFlags {
        syn: false,
        ack: true,
        fin: true,
        rst: false,
        psh: false,
    };
    /// RST.
    pub const RST: TcpFlags = TcpFlags {
        syn: false,
        ack: false,
        fin: false,
        rst: true,
        psh: false,
    };
}

/// Serialisation of the last builder step (UDP or TCP).
trait Build {
    fn build(self, payload: &[u8]) -> Vec<u8>;
}

impl Build for etherparse::PacketBuilderStep<etherparse::UdpHeader> {
    fn build(self, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.size(payload.len()));
        // Writing to a Vec only fails when the payload exceeds the IP length field.
        self.write(&mut v, payload)
            .expect("testkit: UDP payload too large for one IP packet");
        v
    }
}

impl Build for etherparse::PacketBuilderStep<etherparse::TcpHeader> {
    fn build(self, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.size(payload.len()));
        self.write(&mut v, payload)
            .expect("testkit: TCP payload too large for one IP packet");
        v
    }
}

fn tcp_step(
    ip: etherparse::PacketBuilderStep<etherparse::IpHeaders>,
    sport: u16,
    dport: u16,
    seq: u32,
    ack_no: u32,
    flags: TcpFlags,
) -> etherparse::PacketBuilderStep<etherparse::TcpHeader> {
    let mut t = ip.tcp(sport, dport, seq, 64240);
    if flags.syn {
        t = t.syn();
    }
    if flags.ack {
        t = t.ack(ack_no);
    }
    if flags.fin {
        t = t.fin();
    }
    if flags.rst {
        t = t.rst();
    }
    if flags.psh {
        t = t.psh();
    }
    t
}

/// An Ethernet/IPv4/UDP frame. Panics only if `payload` does not fit one IP packet.
pub fn udp_v4(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .ipv4(src.octets(), dst.octets(), 64)
        .udp(sport, dport);
    b.build(payload)
}

/// An Ethernet/IPv6/UDP frame. Panics only if `payload` does not fit one IP packet.
pub fn udp_v6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .ipv6(src.octets(), dst.octets(), 64)
        .udp(sport, dport);
    b.build(payload)
}

/// An Ethernet/IPv4/TCP frame (acknowledgment number 0 when ACK is set).
pub fn tcp_v4(
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    seq: u32,
    flags: TcpFlags,
    payload: &[u8],
) -> Vec<u8> {
    tcp_v4_ack(src, sport, dst, dport, seq, 0, flags, payload)
}

/// An Ethernet/IPv4/TCP frame with an explicit acknowledgment number.
#[allow(clippy::too_many_arguments)]
pub fn tcp_v4_ack(
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    seq: u32,
    ack_no: u32,
    flags: TcpFlags,
    payload: &[u8],
) -> Vec<u8> {
    let ip = PacketBuilder::ethernet2(SRC_MAC, DST_MAC).ipv4(src.octets(), dst.octets(), 64);
    tcp_step(ip, sport, dport, seq, ack_no, flags).build(payload)
}

/// An Ethernet/IPv6/TCP frame (acknowledgment number 0 when ACK is set).
pub fn tcp_v6(
    src: Ipv6Addr,
    sport: u16,
    dst: Ipv6Addr,
    dport: u16,
    seq: u32,
    flags: TcpFlags,
    payload: &[u8],
) -> Vec<u8> {
    tcp_v6_ack(src, sport, dst, dport, seq, 0, flags, payload)
}

/// An Ethernet/IPv6/TCP frame with an explicit acknowledgment number.
#[allow(clippy::too_many_arguments)]
pub fn tcp_v6_ack(
    src: Ipv6Addr,
    sport: u16,
    dst: Ipv6Addr,
    dport: u16,
    seq: u32,
    ack_no: u32,
    flags: TcpFlags,
    payload: &[u8],
) -> Vec<u8> {
    let ip = PacketBuilder::ethernet2(SRC_MAC, DST_MAC).ipv6(src.octets(), dst.octets(), 64);
    tcp_step(ip, sport, dport, seq, ack_no, flags).build(payload)
}

/// The IP packet inside a frame built here (strips the Ethernet header), for
/// raw-IP captures (`PcapLink::RawIp`) and NFLOG-style L3 data.
pub fn ip_packet(frame: &[u8]) -> &[u8] {
    frame.get(ETHERNET_HEADER_LEN..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_record_layout() {
        let frame = tcp_v4(
            Ipv4Addr::new(192, 0, 2, 1),
            1234,
            Ipv4Addr::new(203, 0, 113, 9),
            443,
            7,
            TcpFlags::SYN,
            b"",
        );
        assert_eq!(frame.len(), 14 + 20 + 20);
        assert_eq!(&frame[12..14], &[0x08, 0x00]);
        let mut w = PcapWriter::new(Vec::new(), PcapLink::RawIp).expect("header");
        w.write_packet_snap(1_500_000_001_234_567_000, &frame, 20)
            .expect("record");
        let out = w.into_inner().expect("flush");
        assert_eq!(&out[..4], &[0xD4, 0xC3, 0xB2, 0xA1]);
        assert_eq!(u32::from_le_bytes(out[20..24].try_into().expect("4")), 101);
        let rec = &out[24..];
        assert_eq!(
            u32::from_le_bytes(rec[0..4].try_into().expect("4")),
            1_500_000_001
        );
        assert_eq!(
            u32::from_le_bytes(rec[4..8].try_into().expect("4")),
            234_567
        );
        assert_eq!(u32::from_le_bytes(rec[8..12].try_into().expect("4")), 20);
        assert_eq!(u32::from_le_bytes(rec[12..16].try_into().expect("4")), 54);
        assert_eq!(rec.len(), 16 + 20);
    }

    #[test]
    fn v6_udp_frame_has_ipv6_ethertype_and_length() {
        let f = udp_v6(
            "2001:db8::1".parse().expect("v6"),
            5000,
            "2001:db8::2".parse().expect("v6"),
            53,
            b"abc",
        );
        assert_eq!(&f[12..14], &[0x86, 0xDD]);
        assert_eq!(f.len(), 14 + 40 + 8 + 3);
        assert_eq!(ip_packet(&f)[0] >> 4, 6);
    }
}
