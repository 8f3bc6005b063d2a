//! # geofence-capture: where packets enter the Geofence pipeline
//!
//! ```text
//! [capture] -> decode -> flow table -> classify -> geo -> policy -> enforce/alert
//! ```
//!
//! Thin I/O layer: every source implements [`PacketSource`] and hands captured frames
//! to a callback as [`Captured`] (timestamp, [`LinkType`], bytes borrowed from the
//! source's own buffer), which the engine passes to `geofence_decode::decode`.
//!
//! * [`NflogSource`]: the production source. An nftables rule such as
//!   `ct direction original ct original packets < 6 log group 7 snaplen 256` sends
//!   only the first packets of each flow to an NFLOG group; the source binds that group
//!   (netlink-packet-netfilter + netlink-sys) and parses the netlink messages without
//!   allocating. Packets are L3 ([`LinkType::RawIp`]). Kernel drops are counted exactly
//!   from NFLOG sequence gaps; `ENOBUFS` is counted and survived.
//! * [`AfPacketSource`]: every packet of an interface through pnet's AF_PACKET
//!   channel, with a hand-written classic BPF "tcp or udp" filter and optional
//!   PACKET_FANOUT_HASH across threads ([`AfPacketSource::open_fanout`]).
//! * [`RingSource`]: the same AF_PACKET capture through libpcap's memory-mapped ring
//!   (TPACKET_V3, `pcap` crate), with a libpcap-compiled "tcp or udp" kernel filter and
//!   kernel drop counters; about ten times cheaper per packet than pnet
//!   (docs/benchmarks-capture.md). [`open_afpacket`] opens it, falling back to pnet if
//!   libpcap fails; this is what the daemon's `afpacket` capture uses.
//! * [`PcapFileSource`]: replays a pcap/pcapng file (via `geofence_decode::PcapReader`).
//!
//! [`sysctl_conntrack_acct`] / [`enable_conntrack_acct`] manage
//! `net.netfilter.nf_conntrack_acct`, without which `ct packets` reads 0 and the
//! "first N packets" rule above matches every packet.
#![forbid(unsafe_code)]

mod afpacket;
mod error;
mod file;
mod nflog;
mod ring;
mod sysctl;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use afpacket::{tcp_udp_filter, AfPacketConfig, AfPacketSource, BpfInsn, TCP_UDP_BPF};
pub use error::CaptureError;
pub use file::PcapFileSource;
pub use geofence_decode::LinkType;
pub use nflog::NflogSource;
pub use ring::{open_afpacket, open_afpacket_explained, RingConfig, RingSource, RING_FILTER};
pub use sysctl::{enable_conntrack_acct, sysctl_conntrack_acct, CONNTRACK_ACCT_PATH};

/// Most packets handed out by one `poll_batch` call.
pub const MAX_BATCH: usize = 1024;

/// One captured frame; `data` borrows the source's buffer for the callback's duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Captured<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_nanos: u64,
    /// How to decode `data`.
    pub link: LinkType,
    /// The captured bytes (possibly cut by a snaplen).
    pub data: &'a [u8],
}

/// Counters of a source. Fields a source cannot measure stay 0 (see each source).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Packets handed to the callback.
    pub received: u64,
    /// Packets known to be lost before reaching us (NFLOG: sequence-number gaps).
    pub dropped: u64,
    /// Times the kernel reported a receive-buffer overrun (`ENOBUFS`).
    pub overruns: u64,
    /// Frames that filled the whole read buffer and may have been cut (AF_PACKET).
    pub truncated: u64,
    /// Messages that could not be parsed and were skipped.
    pub malformed: u64,
    /// Packets the network interface or its driver dropped (ring source: the
    /// interface's `rx_dropped` since the source was opened).
    pub if_dropped: u64,
    /// Packets the kernel accepted for this socket, delivered or dropped (ring source:
    /// `PACKET_STATISTICS` packets, which include `dropped`); 0 where not measurable.
    pub kernel_received: u64,
}

/// A source of captured frames.
pub trait PacketSource {
    /// Waits up to `timeout` for packets, calls `f` for each one available (at most
    /// [`MAX_BATCH`]), and returns how many were delivered. `Ok(0)` means none
    /// arrived in time (or, for a file, that it is exhausted: see [`Self::is_finished`]).
    fn poll_batch(
        &mut self,
        timeout: Duration,
        f: &mut dyn FnMut(Captured<'_>),
    ) -> Result<usize, CaptureError>;

    /// Counters so far.
    fn stats(&self) -> CaptureStats;

    /// Short name of the source kind, for logs (e.g. `"afpacket-ring"`).
    fn name(&self) -> &'static str {
        "capture"
    }

    /// True when the source can never deliver another packet (end of a file).
    fn is_finished(&self) -> bool {
        false
    }
}

/// Wall-clock time in Unix nanoseconds (0 if the clock is before 1970).
pub(crate) fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
