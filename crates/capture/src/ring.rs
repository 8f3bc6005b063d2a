//! AF_PACKET capture through a memory-mapped ring, via libpcap (the `pcap` crate).
//!
//! libpcap 1.10 on Linux maps a `PACKET_RX_RING` and (`prepare_tpacket_socket()` in
//! `pcap-linux.c`) uses **TPACKET_V3** (packets
//! packed into blocks that the kernel hands over when full or when the block timeout
//! expires) unless immediate mode is requested, in which case it uses TPACKET_V2 (one
//! frame slot per packet, handed over at once). Either way no syscall is made per
//! packet: a `poll()` wakes the reader and it walks the ring. The "tcp or udp" filter
//! is compiled by libpcap for the interface's link type and attached to the socket, so
//! other frames never reach the ring.
//!
//! The socket is put in non-blocking mode and [`RingSource::poll_batch`] waits with a
//! bounded `poll()` on its descriptor, so it returns on time even without traffic
//! (libpcap's own read timeout is not reliable with TPACKET_V3; platform notes §4).
//!
//! Kernel counters come from `pcap_stats()` (`PACKET_STATISTICS` plus the interface's
//! `rx_dropped`), which the `pcap` crate exposes safely: `dropped` counts packets that
//! passed the filter but found the ring full, `if_dropped` packets the interface itself
//! dropped since the source was opened.
//!
//! Fanout (`PACKET_FANOUT`) is not offered for this source: libpcap has no API for it
//! and setting it on libpcap's descriptor needs a raw `setsockopt`, which this
//! `unsafe`-free crate cannot issue. One ring thread handles far more than one pnet
//! thread (docs/benchmarks-capture.md), and [`crate::AfPacketSource::open_fanout`]
//! remains for pnet.

use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use pcap::{Active, Capture, Precision};

use crate::{CaptureError, CaptureStats, Captured, LinkType, PacketSource, MAX_BATCH};

/// The default kernel filter: TCP and UDP over IPv4 and IPv6.
pub const RING_FILTER: &str = "tcp or udp";

/// How often `poll_batch` refreshes the kernel counters (each refresh is a
/// `getsockopt` and a sysfs read).
const STATS_EVERY: Duration = Duration::from_millis(100);

/// Options of a [`RingSource`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingConfig {
    /// Interface name, e.g. `eth0`.
    pub interface: String,
    /// Bytes kept per packet; longer packets are cut (counted in `stats().truncated`).
    pub snaplen: u32,
    /// Ring size in bytes (libpcap's buffer size).
    pub buffer_size: usize,
    /// BPF filter in pcap syntax compiled by libpcap; `None` captures everything.
    pub filter: Option<String>,
    /// Put the interface in promiscuous mode (needed on a SPAN/mirror port, whose
    /// frames are addressed to other hosts). The kernel reverts it when the socket closes.
    pub promiscuous: bool,
    /// Immediate mode: libpcap then uses TPACKET_V2 and hands over every packet at once.
    /// Off (the default) selects TPACKET_V3 with [`Self::block_timeout`].
    pub immediate: bool,
    /// TPACKET_V3 block retire timeout: the longest a packet waits in a partly filled
    /// block before the reader sees it.
    pub block_timeout: Duration,
}

impl RingConfig {
    /// Defaults for `interface`: snaplen 2048, 32 MiB ring, filter [`RING_FILTER`],
    /// promiscuous, TPACKET_V3 with a 1 ms block timeout (a packet waits at most
    /// ~1 ms in a partly filled block, plus scheduling delay; 10 ms halves the CPU per packet at 50k pps but
    /// delays DNS answers, which drive enforcement, by up to 10 ms:
    /// docs/benchmarks-capture.md).
    pub fn new(interface: impl Into<String>) -> Self {
        RingConfig {
            interface: interface.into(),
            snaplen: 2048,
            buffer_size: 32 << 20,
            filter: Some(RING_FILTER.to_string()),
            promiscuous: true,
            immediate: false,
            block_timeout: Duration::from_millis(1),
        }
    }
}

/// Every (filtered) frame of one interface through libpcap's mmap ring.
///
/// Stats: `received` (handed to the callback), `truncated` (cut by the snaplen),
/// `dropped` (ring full, from the kernel), `if_dropped` (interface drops since open),
/// `kernel_received` (packets that passed the filter, including those dropped).
/// Kernel counters are refreshed at most every 100 ms by `poll_batch`; call
/// [`RingSource::refresh_stats`] for current values.
pub struct RingSource {
    cap: Capture<Active>,
    link: LinkType,
    interface: String,
    stats: CaptureStats,
    /// Last raw `pcap_stats` values (32-bit, wrapping) and when they were read.
    raw: (u32, u32, u32),
    last_stats: Instant,
}

impl std::fmt::Debug for RingSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingSource")
            .field("interface", &self.interface)
            .field("link", &self.link)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn pcap_err(interface: &str) -> impl FnOnce(pcap::Error) -> CaptureError + '_ {
    move |source| CaptureError::Pcap {
        interface: interface.to_string(),
        source,
    }
}

/// `timeval` of a nanosecond-precision capture to Unix nanoseconds.
fn ts_nanos(ts: &libc::timeval) -> u64 {
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let frac = u64::try_from(ts.tv_usec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(frac)
}

impl RingSource {
    /// Opens the ring on `cfg.interface` and attaches the filter.
    pub fn open(cfg: &RingConfig) -> Result<Self, CaptureError> {
        let name = cfg.interface.as_str();
        // libpcap's own message for a missing device varies between versions
        if name.is_empty()
            || name.contains('/')
            || !std::path::Path::new("/sys/class/net").join(name).exists()
        {
            return Err(CaptureError::NoSuchInterface(cfg.interface.clone()));
        }
        let to_i32 = |v: u64| i32::try_from(v).unwrap_or(i32::MAX);
        let cap = Capture::from_device(name)
            .map_err(pcap_err(name))?
            .snaplen(to_i32(u64::from(cfg.snaplen)).max(64))
            .buffer_size(to_i32(cfg.buffer_size as u64))
            .promisc(cfg.promiscuous)
            .immediate_mode(cfg.immediate)
            .timeout(to_i32(cfg.block_timeout.as_millis() as u64).max(1))
            .precision(Precision::Nano)
            .open()
            .map_err(pcap_err(name))?;
        let mut cap = cap.setnonblock().map_err(pcap_err(name))?;
        if let Some(f) = &cfg.filter {
            cap.filter(f, true).map_err(pcap_err(name))?;
        }
        let dlt = u32::try_from(cap.get_datalink().0).unwrap_or(u32::MAX);
        let mut src = RingSource {
            cap,
            link: LinkType::from_dlt(dlt),
            interface: cfg.interface.clone(),
            stats: CaptureStats::default(),
            raw: (0, 0, 0),
            last_stats: Instant::now(),
        };
        // counters start here: what the socket saw before the filter was attached
        // does not count
        src.refresh_stats()?;
        src.stats = CaptureStats::default();
        Ok(src)
    }

    /// How frames of this interface are decoded.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// Reads the kernel counters now and returns the updated stats.
    pub fn refresh_stats(&mut self) -> Result<CaptureStats, CaptureError> {
        let s = self.cap.stats().map_err(pcap_err(&self.interface))?;
        let (r, d, i) = self.raw;
        // pcap_stats counters are 32-bit: accumulate deltas so they do not wrap
        self.stats.kernel_received += u64::from(s.received.wrapping_sub(r));
        self.stats.dropped += u64::from(s.dropped.wrapping_sub(d));
        self.stats.if_dropped += u64::from(s.if_dropped.wrapping_sub(i));
        self.raw = (s.received, s.dropped, s.if_dropped);
        self.last_stats = Instant::now();
        Ok(self.stats)
    }

    /// One non-blocking pass over the ring: delivers up to `max` packets.
    fn drain(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(Captured<'_>),
    ) -> Result<usize, CaptureError> {
        let link = self.link;
        let stats = &mut self.stats;
        self.cap
            .dispatch(Some(max), |p| {
                if p.header.caplen < p.header.len {
                    stats.truncated += 1;
                }
                stats.received += 1;
                f(Captured {
                    ts_nanos: ts_nanos(&p.header.ts),
                    link,
                    data: p.data,
                });
            })
            .map_err(pcap_err(&self.interface))
    }

    /// Waits until the descriptor is readable or `wait` has passed.
    fn wait(&self, wait: Duration) -> Result<(), CaptureError> {
        let ms = u16::try_from(wait.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(&self.cap),
            PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(CaptureError::Io(e.into())),
        }
    }
}

impl PacketSource for RingSource {
    fn poll_batch(
        &mut self,
        timeout: Duration,
        f: &mut dyn FnMut(Captured<'_>),
    ) -> Result<usize, CaptureError> {
        let deadline = Instant::now() + timeout;
        let mut n = 0;
        let mut spurious = 0u32;
        while n < MAX_BATCH {
            let got = self.drain(MAX_BATCH - n, f)?;
            n += got;
            if got > 0 {
                continue;
            }
            let now = Instant::now();
            if n > 0 || now >= deadline {
                break;
            }
            let before = Instant::now();
            self.wait(deadline - now)?;
            // readable but nothing to take (should not happen): do not spin
            if before.elapsed() < Duration::from_micros(50) {
                spurious += 1;
                if spurious > 3 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        if self.last_stats.elapsed() >= STATS_EVERY {
            // the packets are already delivered: a failed counter read must not turn this
            // batch into an error (the counters keep their last values; `refresh_stats`
            // reports the error)
            let _ = self.refresh_stats();
        }
        Ok(n)
    }

    fn stats(&self) -> CaptureStats {
        self.stats
    }

    fn name(&self) -> &'static str {
        "afpacket-ring"
    }
}

/// Opens AF_PACKET capture on `interface` the fastest way available: a libpcap mmap
/// ring ([`RingSource`], [`RingConfig::new`] defaults), or, if libpcap cannot open it,
/// pnet ([`crate::AfPacketSource`], promiscuous, same "tcp or udp" filter).
pub fn open_afpacket(interface: &str) -> Result<Box<dyn PacketSource + Send>, CaptureError> {
    open_afpacket_explained(interface).map(|(s, _)| s)
}

/// Like [`open_afpacket`], and also returns why the ring could not be used when it
/// fell back to pnet (`None` when the ring is in use). Check [`PacketSource::name`].
pub fn open_afpacket_explained(
    interface: &str,
) -> Result<(Box<dyn PacketSource + Send>, Option<CaptureError>), CaptureError> {
    match RingSource::open(&RingConfig::new(interface)) {
        Ok(r) => Ok((Box::new(r), None)),
        Err(e @ CaptureError::NoSuchInterface(_)) => Err(e),
        Err(ring_err) => {
            let mut cfg = crate::AfPacketConfig::new(interface);
            cfg.promiscuous = true;
            match crate::AfPacketSource::open(&cfg) {
                Ok(p) => Ok((Box::new(p), Some(ring_err))),
                Err(_) => Err(ring_err),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_interface_is_an_error() {
        for name in ["gf-no-such-if0", "", "../lo"] {
            let err = RingSource::open(&RingConfig::new(name)).expect_err("must fail");
            assert!(matches!(err, CaptureError::NoSuchInterface(_)), "{err}");
            let Err(err) = open_afpacket(name) else {
                panic!("{name:?} must fail");
            };
            assert!(matches!(err, CaptureError::NoSuchInterface(_)), "{err}");
        }
    }

    #[test]
    fn nanosecond_timestamps() {
        let ts = libc::timeval {
            tv_sec: 1_700_000_000,
            tv_usec: 123_456_789,
        };
        assert_eq!(ts_nanos(&ts), 1_700_000_000_123_456_789);
        let neg = libc::timeval {
            tv_sec: -1,
            tv_usec: 5,
        };
        assert_eq!(ts_nanos(&neg), 5);
    }

    #[test]
    fn libpcap_compiles_the_default_filter() {
        let dead = Capture::dead(pcap::Linktype::ETHERNET).expect("dead capture");
        let prog = dead.compile(RING_FILTER, true).expect("compile");
        // IPv4 UDP and TCP pass, ARP and ICMP do not
        let mut udp = vec![0u8; 14 + 20 + 8];
        udp[12] = 0x08;
        udp[14] = 0x45;
        udp[14 + 9] = 17;
        assert!(prog.filter(&udp));
        udp[14 + 9] = 6;
        assert!(prog.filter(&udp));
        udp[14 + 9] = 1;
        assert!(!prog.filter(&udp), "ICMP");
        let mut arp = vec![0u8; 42];
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert!(!prog.filter(&arp), "ARP");
    }
}
