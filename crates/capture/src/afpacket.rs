//! AF_PACKET capture through pnet_datalink, with a classic BPF filter and fanout.
//!
//! pnet reads one packet per `poll()` + `recvfrom()` (no mmap ring), so this source
//! costs ~3 µs per packet, 9-30x more than [`crate::RingSource`]
//! (docs/benchmarks-capture.md); [`crate::open_afpacket`] uses it only when libpcap
//! cannot open the interface. It does offer PACKET_FANOUT. Kernel drop counters
//! (`PACKET_STATISTICS`) need a raw `getsockopt`, which this `unsafe`-free crate cannot
//! issue and pnet does not expose: `stats().dropped` stays 0 for this source.

use std::os::fd::IntoRawFd;
use std::time::{Duration, Instant};

use pnet_datalink::{Channel, Config, DataLinkReceiver, FanoutOption, FanoutType};
use socket2::{Domain, Protocol, SockFilter, Socket, Type};

use crate::{now_nanos, CaptureError, CaptureStats, Captured, LinkType, PacketSource, MAX_BATCH};

/// Options of an [`AfPacketSource`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// Interface name, e.g. `eth0`.
    pub interface: String,
    /// Read buffer per packet; frames longer than this are cut silently by the kernel
    /// (pnet passes no `MSG_TRUNC`). 65536 holds GRO/GSO super-packets.
    pub buffer_size: usize,
    /// Attach the "tcp or udp" BPF filter ([`tcp_udp_filter`]) on Ethernet interfaces.
    pub filter_tcp_udp: bool,
    /// Put the interface in promiscuous mode.
    pub promiscuous: bool,
    /// Socket receive buffer (SO_RCVBUFFORCE when privileged).
    pub recv_buffer: usize,
    /// Poll interval inside `poll_batch`: a batch ends after this long without a packet.
    pub idle_poll: Duration,
}

impl AfPacketConfig {
    /// Defaults for `interface`: 64 KiB frames, BPF filter on, not promiscuous,
    /// 8 MiB socket buffer, 5 ms idle poll.
    pub fn new(interface: impl Into<String>) -> Self {
        AfPacketConfig {
            interface: interface.into(),
            buffer_size: 65536,
            filter_tcp_udp: true,
            promiscuous: false,
            recv_buffer: 8 << 20,
            idle_poll: Duration::from_millis(5),
        }
    }
}

/// Every frame of one interface (or one fanout share of it).
///
/// Stats: `received`, `truncated` (frames that filled the whole buffer); `dropped`
/// is not measurable here (see the module docs).
pub struct AfPacketSource {
    rx: Box<dyn DataLinkReceiver>,
    link: LinkType,
    buffer_size: usize,
    idle_poll: Duration,
    stats: CaptureStats,
}

impl std::fmt::Debug for AfPacketSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketSource")
            .field("link", &self.link)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

// Classic BPF opcodes (linux/bpf_common.h).
const LDH_ABS: u16 = 0x28; // BPF_LD | BPF_H | BPF_ABS
const LDB_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BpfInsn {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Constant operand.
    pub k: u32,
}

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> BpfInsn {
    BpfInsn { code, jt, jf, k }
}

/// Jump offset from instruction `at` to instruction `to`.
const fn j(at: u8, to: u8) -> u8 {
    to - at - 1
}

const DROP: u8 = 15;
const ACCEPT: u8 = 16;

/// The classic BPF program "tcp or udp" for Ethernet frames, written by hand:
/// IPv4 with protocol 6/17; IPv6 whose next header is 6/17 or an extension header
/// (0, 43, 44, 60: left to the decoder); and any 802.1Q/802.1ad-tagged frame that
/// the NIC did not untag. Everything else (ARP, ICMP, LLDP ...) stays in the kernel.
pub const TCP_UDP_BPF: [BpfInsn; 17] = [
    insn(LDH_ABS, 0, 0, 12),                         // 0: ethertype
    insn(JEQ_K, j(1, 2), j(1, 5), 0x0800),           // 1: IPv4?
    insn(LDB_ABS, 0, 0, 14 + 9),                     // 2: IPv4 protocol
    insn(JEQ_K, j(3, ACCEPT), j(3, 4), 6),           // 3
    insn(JEQ_K, j(4, ACCEPT), j(4, DROP), 17),       // 4
    insn(JEQ_K, j(5, 6), j(5, 13), 0x86DD),          // 5: IPv6?
    insn(LDB_ABS, 0, 0, 14 + 6),                     // 6: IPv6 next header
    insn(JEQ_K, j(7, ACCEPT), j(7, 8), 6),           // 7
    insn(JEQ_K, j(8, ACCEPT), j(8, 9), 17),          // 8
    insn(JEQ_K, j(9, ACCEPT), j(9, 10), 0),          // 9: hop-by-hop
    insn(JEQ_K, j(10, ACCEPT), j(10, 11), 43),       // 10: routing
    insn(JEQ_K, j(11, ACCEPT), j(11, 12), 44),       // 11: fragment
    insn(JEQ_K, j(12, ACCEPT), j(12, DROP), 60),     // 12: destination options
    insn(JEQ_K, j(13, ACCEPT), j(13, 14), 0x8100),   // 13: VLAN (A = ethertype)
    insn(JEQ_K, j(14, ACCEPT), j(14, DROP), 0x88A8), // 14: QinQ
    insn(RET_K, 0, 0, 0),                            // 15: DROP
    insn(RET_K, 0, 0, 0x0004_0000),                  // 16: ACCEPT (up to 256 KiB)
];

/// [`TCP_UDP_BPF`] in the form `SO_ATTACH_FILTER` takes.
pub fn tcp_udp_filter() -> Vec<SockFilter> {
    TCP_UDP_BPF
        .iter()
        .map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k))
        .collect()
}

/// Link type of an interface from `/sys/class/net/IF/type` (ARPHRD_*).
fn link_of(interface: &str) -> LinkType {
    let t = std::fs::read_to_string(format!("/sys/class/net/{interface}/type")).unwrap_or_default();
    match t.trim().parse::<u32>() {
        // ARPHRD_NONE (tun, wireguard), ARPHRD_TUNNEL, ARPHRD_TUNNEL6, ARPHRD_SIT, ARPHRD_IPGRE: no L2 header
        Ok(65534 | 768 | 769 | 776 | 778) => LinkType::RawIp,
        // ARPHRD_ETHER, ARPHRD_LOOPBACK (fake Ethernet header) and anything unknown
        _ => LinkType::Ethernet,
    }
}

impl AfPacketSource {
    /// Opens one AF_PACKET socket on `cfg.interface`.
    pub fn open(cfg: &AfPacketConfig) -> Result<Self, CaptureError> {
        Self::open_with_fanout(cfg, None)
    }

    /// Opens `threads` sockets in one PACKET_FANOUT_HASH group, so each flow lands in
    /// exactly one of them; move each source to its own thread.
    pub fn open_fanout(
        cfg: &AfPacketConfig,
        threads: usize,
        group_id: u16,
    ) -> Result<Vec<Self>, CaptureError> {
        let fanout = FanoutOption {
            group_id,
            fanout_type: FanoutType::HASH,
            defrag: true,
            rollover: false,
        };
        (0..threads.max(1))
            .map(|_| Self::open_with_fanout(cfg, Some(fanout)))
            .collect()
    }

    fn open_with_fanout(
        cfg: &AfPacketConfig,
        fanout: Option<FanoutOption>,
    ) -> Result<Self, CaptureError> {
        let iface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == cfg.interface)
            .ok_or_else(|| CaptureError::NoSuchInterface(cfg.interface.clone()))?;
        let link = link_of(&cfg.interface);
        let eth_p_all = (libc::ETH_P_ALL as u16).to_be();
        let sock = Socket::new(
            Domain::PACKET,
            Type::RAW,
            Some(Protocol::from(i32::from(eth_p_all))),
        )?;
        if cfg.filter_tcp_udp && link == LinkType::Ethernet {
            sock.attach_filter(&tcp_udp_filter())?;
        }
        if nix::sys::socket::setsockopt(
            &sock,
            nix::sys::socket::sockopt::RcvBufForce,
            &cfg.recv_buffer,
        )
        .is_err()
        {
            sock.set_recv_buffer_size(cfg.recv_buffer)?;
        }
        let config = Config {
            read_buffer_size: cfg.buffer_size,
            read_timeout: Some(cfg.idle_poll),
            promiscuous: cfg.promiscuous,
            linux_fanout: fanout,
            // pnet binds this socket to the interface and owns (closes) it from here
            socket_fd: Some(sock.into_raw_fd()),
            ..Config::default()
        };
        let rx = match pnet_datalink::channel(&iface, config)? {
            Channel::Ethernet(_tx, rx) => rx,
            _ => return Err(CaptureError::NoSuchInterface(cfg.interface.clone())),
        };
        Ok(AfPacketSource {
            rx,
            link,
            buffer_size: cfg.buffer_size,
            idle_poll: cfg.idle_poll,
            stats: CaptureStats::default(),
        })
    }

    /// How frames of this interface are decoded.
    pub fn link(&self) -> LinkType {
        self.link
    }
}

impl PacketSource for AfPacketSource {
    fn poll_batch(
        &mut self,
        timeout: Duration,
        f: &mut dyn FnMut(Captured<'_>),
    ) -> Result<usize, CaptureError> {
        let deadline = Instant::now() + timeout.max(self.idle_poll);
        let mut n = 0;
        while n < MAX_BATCH {
            match self.rx.next() {
                Ok(frame) => {
                    if frame.len() >= self.buffer_size {
                        self.stats.truncated += 1;
                    }
                    f(Captured {
                        ts_nanos: now_nanos(),
                        link: self.link,
                        data: frame,
                    });
                    self.stats.received += 1;
                    n += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    if n > 0 || Instant::now() >= deadline {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(n)
    }

    fn stats(&self) -> CaptureStats {
        self.stats
    }

    fn name(&self) -> &'static str {
        "afpacket-pnet"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal classic-BPF interpreter for the instructions the filter uses,
    /// with the kernel's rule that an out-of-bounds load drops the packet.
    fn run(prog: &[(u16, u8, u8, u32)], pkt: &[u8]) -> u32 {
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let (code, jt, jf, k) = prog[pc];
            let k_us = k as usize;
            match code {
                LDH_ABS => match pkt.get(k_us..k_us + 2) {
                    Some(b) => a = u32::from(u16::from_be_bytes([b[0], b[1]])),
                    None => return 0,
                },
                LDB_ABS => match pkt.get(k_us) {
                    Some(b) => a = u32::from(*b),
                    None => return 0,
                },
                JEQ_K => {
                    pc += usize::from(if a == k { jt } else { jf });
                }
                RET_K => return k,
                other => panic!("unexpected opcode {other:#x}"),
            }
            pc += 1;
        }
    }

    fn program() -> Vec<(u16, u8, u8, u32)> {
        TCP_UDP_BPF
            .iter()
            .map(|i| (i.code, i.jt, i.jf, i.k))
            .collect()
    }

    fn frame(ethertype: u16, l3: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(l3);
        f
    }

    #[test]
    fn filter_accepts_tcp_udp_and_drops_the_rest() {
        let prog = program();
        assert_eq!(tcp_udp_filter().len(), prog.len());
        let mut v4 = vec![0x45u8; 40];
        let mut v6 = vec![0x60u8; 60];
        for (proto, want) in [(6u8, true), (17, true), (1, false), (50, false), (2, false)] {
            v4[9] = proto;
            assert_eq!(
                run(&prog, &frame(0x0800, &v4)) > 0,
                want,
                "IPv4 proto {proto}"
            );
        }
        for (nh, want) in [
            (6u8, true),
            (17, true),
            (0, true),
            (44, true),
            (43, true),
            (60, true),
            (58, false),
            (59, false),
        ] {
            v6[6] = nh;
            assert_eq!(
                run(&prog, &frame(0x86DD, &v6)) > 0,
                want,
                "IPv6 next header {nh}"
            );
        }
        assert_eq!(run(&prog, &frame(0x0806, &[0; 28])), 0, "ARP");
        assert_eq!(run(&prog, &frame(0x88CC, &[0; 28])), 0, "LLDP");
        assert!(
            run(&prog, &frame(0x8100, &[0; 28])) > 0,
            "tagged frames go to the decoder"
        );
        // truncated frames: out-of-bounds loads drop
        assert_eq!(run(&prog, &frame(0x0800, &[0x45; 5])), 0);
        assert_eq!(run(&prog, &[0u8; 10]), 0);
        // accepted packets are passed whole (up to 256 KiB)
        v4[9] = 6;
        assert_eq!(run(&prog, &frame(0x0800, &v4)), 0x0004_0000);
    }

    #[test]
    fn missing_interface_is_an_error() {
        let err =
            AfPacketSource::open(&AfPacketConfig::new("gf-no-such-if0")).expect_err("must fail");
        assert!(matches!(err, CaptureError::NoSuchInterface(_)), "{err}");
    }
}
