//! NFLOG over netlink: binding a group (netlink-packet-netfilter builds the config
//! request) and a zero-copy parser for the packet messages on the hot path.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::nflog::{
    config_request, ConfigCmd, ConfigFlags, ConfigMode, ConfigNla, Timeout,
};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterProtoFamily};
use netlink_sys::{constants::NETLINK_NETFILTER, Socket};

use crate::{now_nanos, CaptureError, CaptureStats, Captured, LinkType, PacketSource, MAX_BATCH};

/// Netlink message type of an NFLOG packet: `NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET`.
const NFULNL_MSG_PACKET_TYPE: u16 = 4 << 8;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const NLA_TYPE_MASK: u16 = 0x3FFF;
const NFULA_TIMESTAMP: u16 = 3;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_SEQ: u16 = 12;
/// Receive buffer requested for the socket (SO_RCVBUFFORCE when permitted).
const SOCKET_RCVBUF: usize = 8 << 20;
/// Flush a partly filled kernel batch after this many hundredths of a second.
const FLUSH_HUNDREDTHS: u32 = 1;
/// Packets the kernel batches into one datagram at most. One: every logged
/// packet reaches the daemon at once. With a larger threshold the kernel
/// holds a lone packet (a DNS answer, the first packet of a flow) until its
/// flush timer fires, up to about 8 ms at HZ=250, and a client connecting
/// right after a DNS answer got its first packets through before the block
/// (docs/benchmarks-enforcement.md, runs C). Only the first packets of each
/// flow and DNS answers are logged, so the extra messages are few.
const QTHRESH: u32 = 1;

/// One NFLOG packet message, borrowed from the datagram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NflogPacket<'a> {
    /// The group (`res_id` of the nfgenmsg header).
    pub group: u16,
    /// The L3 packet (cut to the snaplen); `None` if the rule copied no payload.
    pub payload: Option<&'a [u8]>,
    /// Kernel timestamp, Unix nanoseconds, when the skb carried one.
    pub ts_nanos: Option<u64>,
    /// Per-instance sequence number (with `ConfigFlags::SEQ`).
    pub seq: Option<u32>,
}

#[inline]
fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

#[inline]
fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

#[inline]
fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

#[inline]
fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Calls `f` for every NFLOG packet message in a netlink datagram; other messages
/// (acks, errors) are ignored. Returns the number of malformed messages met (parsing
/// stops at the first one whose length is inconsistent).
pub(crate) fn parse_datagram<'a>(dgram: &'a [u8], mut f: impl FnMut(NflogPacket<'a>)) -> u64 {
    let mut off = 0;
    while off + NLMSG_HDRLEN <= dgram.len() {
        let (Some(len), Some(mtype)) = (ne_u32(dgram, off), ne_u16(dgram, off + 4)) else {
            return 1;
        };
        let len = len as usize;
        let Some(msg) = (len >= NLMSG_HDRLEN)
            .then(|| dgram.get(off..off + len))
            .flatten()
        else {
            return 1;
        };
        if mtype == NFULNL_MSG_PACKET_TYPE {
            let Some(group) = msg.get(NLMSG_HDRLEN + 2..NLMSG_HDRLEN + 4) else {
                return 1;
            };
            let mut pkt = NflogPacket {
                group: u16::from_be_bytes([group[0], group[1]]),
                ..Default::default()
            };
            let mut a = NLMSG_HDRLEN + NFGENMSG_LEN;
            while a + 4 <= msg.len() {
                let (Some(nla_len), Some(nla_type)) = (ne_u16(msg, a), ne_u16(msg, a + 2)) else {
                    break;
                };
                let nla_len = usize::from(nla_len);
                let Some(value) = (nla_len >= 4)
                    .then(|| msg.get(a + 4..a + nla_len))
                    .flatten()
                else {
                    return 1;
                };
                match nla_type & NLA_TYPE_MASK {
                    NFULA_PAYLOAD => pkt.payload = Some(value),
                    NFULA_TIMESTAMP => {
                        if let (Some(s), Some(us)) = (be_u64(value, 0), be_u64(value, 8)) {
                            pkt.ts_nanos = Some(
                                s.saturating_mul(1_000_000_000)
                                    .saturating_add(us.saturating_mul(1000)),
                            );
                        }
                    }
                    NFULA_SEQ => {
                        pkt.seq = value
                            .get(..4)
                            .and_then(|v| v.try_into().ok())
                            .map(u32::from_be_bytes)
                    }
                    _ => {}
                }
                a += align4(nla_len);
            }
            f(pkt);
        }
        off += align4(len);
    }
    0
}

/// Receives the packets an nftables `log group N` rule sends to NFLOG group `N`.
///
/// Stats: `dropped` is exact (gaps in the per-group sequence numbers the kernel
/// attaches), `overruns` counts `ENOBUFS` reports, `malformed` unparsable messages.
pub struct NflogSource {
    sock: Socket,
    buf: Vec<u8>,
    group: u16,
    stats: CaptureStats,
    last_seq: Option<u32>,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for NflogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NflogSource")
            .field("group", &self.group)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl NflogSource {
    /// Binds NFLOG group `group` in the caller's network namespace, copying up to
    /// `snaplen` bytes of each packet (the rule's own `snaplen` may cut further).
    /// Needs CAP_NET_ADMIN.
    pub fn bind(group: u16, snaplen: u32) -> Result<Self, CaptureError> {
        let mut sock = Socket::new(NETLINK_NETFILTER)?;
        sock.bind_auto()?;
        // A large buffer absorbs bursts; SO_RCVBUFFORCE passes rmem_max when privileged.
        if nix::sys::socket::setsockopt(
            &sock,
            nix::sys::socket::sockopt::RcvBufForce,
            &SOCKET_RCVBUF,
        )
        .is_err()
        {
            sock.set_rx_buf_sz(SOCKET_RCVBUF)?;
        }
        let mut me = NflogSource {
            sock,
            buf: vec![0; (256 * 1024).max(snaplen as usize + 4096)],
            group,
            stats: CaptureStats::default(),
            last_seq: None,
            timeout: None,
        };
        let req = config_request(
            NetfilterProtoFamily::Inet,
            group,
            vec![
                ConfigCmd::Bind.into(),
                ConfigMode::new_packet(snaplen).into(),
                Timeout::new(FLUSH_HUNDREDTHS).into(),
                ConfigNla::QThresh(QTHRESH),
                ConfigFlags::SEQ.into(),
            ],
        );
        let mut out = vec![0; req.buffer_len()];
        req.serialize(&mut out);
        me.sock.send(&out, 0)?;
        me.await_ack()?;
        Ok(me)
    }

    /// The bound group.
    pub fn group(&self) -> u16 {
        self.group
    }

    /// Waits for the kernel's acknowledgement of the config request.
    fn await_ack(&mut self) -> Result<(), CaptureError> {
        let deadline = Instant::now() + Duration::from_secs(2);
        self.set_timeout(Duration::from_millis(200))?;
        while Instant::now() < deadline {
            let n = match self.sock.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(e.into()),
            };
            let mut off = 0;
            let dgram = self.buf.get(..n).unwrap_or_default();
            while off + NLMSG_HDRLEN <= dgram.len() {
                let len = ne_u32(dgram, off).unwrap_or(0) as usize;
                let Some(msg) = (len >= NLMSG_HDRLEN)
                    .then(|| dgram.get(off..off + len))
                    .flatten()
                else {
                    break;
                };
                if let Ok(m) = NetlinkMessage::<NetfilterMessage>::deserialize(msg) {
                    if let NetlinkPayload::Error(e) = m.payload {
                        return match e.code {
                            None => Ok(()),
                            Some(code) => Err(CaptureError::NflogBind {
                                group: self.group,
                                source: std::io::Error::from_raw_os_error(-code.get()),
                            }),
                        };
                    }
                }
                off += align4(len);
            }
        }
        Err(CaptureError::NoAck(self.group))
    }

    fn set_timeout(&mut self, t: Duration) -> Result<(), CaptureError> {
        // a zero SO_RCVTIMEO would mean "block forever"
        let t = t.max(Duration::from_micros(100));
        if self.timeout != Some(t) {
            socket2::SockRef::from(&self.sock).set_read_timeout(Some(t))?;
            self.timeout = Some(t);
        }
        Ok(())
    }

    /// Receives one datagram; `Ok(None)` when nothing arrived (timeout / would block).
    fn recv(&mut self, flags: libc::c_int) -> Result<Option<usize>, CaptureError> {
        loop {
            match self.sock.recv(&mut &mut self.buf[..], flags) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // the kernel dropped messages; the sequence gap tells how many
                    self.stats.overruns += 1;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None)
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn deliver(&mut self, n: usize, f: &mut dyn FnMut(Captured<'_>)) -> usize {
        let NflogSource {
            buf,
            stats,
            last_seq,
            group,
            ..
        } = self;
        let mut count = 0;
        let dgram = buf.get(..n).unwrap_or_default();
        let mut now = None;
        stats.malformed += parse_datagram(dgram, |p| {
            if p.group != *group {
                return;
            }
            if let Some(seq) = p.seq {
                if let Some(last) = *last_seq {
                    let gap = seq.wrapping_sub(last).wrapping_sub(1);
                    if gap < 1 << 31 {
                        stats.dropped += u64::from(gap);
                    }
                }
                *last_seq = Some(seq);
            }
            let Some(data) = p.payload else { return };
            let ts_nanos = p
                .ts_nanos
                .unwrap_or_else(|| *now.get_or_insert_with(now_nanos));
            f(Captured {
                ts_nanos,
                link: LinkType::RawIp,
                data,
            });
            stats.received += 1;
            count += 1;
        });
        count
    }
}

impl PacketSource for NflogSource {
    fn poll_batch(
        &mut self,
        timeout: Duration,
        f: &mut dyn FnMut(Captured<'_>),
    ) -> Result<usize, CaptureError> {
        self.set_timeout(timeout)?;
        let Some(n) = self.recv(0)? else { return Ok(0) };
        let mut count = self.deliver(n, f);
        while count < MAX_BATCH {
            let Some(n) = self.recv(libc::MSG_DONTWAIT)? else {
                break;
            };
            count += self.deliver(n, f);
        }
        Ok(count)
    }

    fn stats(&self) -> CaptureStats {
        self.stats
    }

    fn name(&self) -> &'static str {
        "nflog"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage};
    use netlink_packet_netfilter::nflog::{PacketNla, ULogMessage};
    use netlink_packet_netfilter::NetfilterHeader;

    /// Serialises an NFLOG packet message with the crate's own encoder.
    fn crate_message(group: u16, nlas: Vec<PacketNla>) -> Vec<u8> {
        let mut m = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::from(NetfilterMessage::new(
                NetfilterHeader::new(NetfilterProtoFamily::IPv4, 0, group),
                ULogMessage::Packet(nlas),
            )),
        );
        m.finalize();
        let mut out = vec![0; m.buffer_len()];
        m.serialize(&mut out);
        out
    }

    #[test]
    fn parses_what_netlink_packet_netfilter_encodes() {
        let payload: Vec<u8> = (0..61u8).collect(); // odd length: exercises padding
        let mut dgram = crate_message(
            7,
            vec![
                PacketNla::Seq(41),
                PacketNla::Mark(3),
                PacketNla::Payload(payload.clone()),
            ],
        );
        dgram.extend(crate_message(
            7,
            vec![PacketNla::Payload(vec![0x45, 1, 2]), PacketNla::Seq(42)],
        ));
        dgram.extend(crate_message(9, vec![PacketNla::Payload(vec![0x60])]));
        let mut got = Vec::new();
        let bad = parse_datagram(&dgram, |p| {
            got.push((p.group, p.payload.map(<[u8]>::to_vec), p.seq, p.ts_nanos))
        });
        assert_eq!(bad, 0);
        assert_eq!(
            got,
            vec![
                (7, Some(payload), Some(41), None),
                (7, Some(vec![0x45, 1, 2]), Some(42), None),
                (9, Some(vec![0x60]), None, None)
            ]
        );
    }

    #[test]
    fn parses_timestamps_and_survives_garbage() {
        // hand-built message: nlmsghdr + nfgenmsg + NFULA_TIMESTAMP + NFULA_PAYLOAD
        let mut m = Vec::new();
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&NFULNL_MSG_PACKET_TYPE.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[2, 0, 0, 5]);
        m.extend_from_slice(&20u16.to_ne_bytes());
        m.extend_from_slice(&NFULA_TIMESTAMP.to_ne_bytes());
        m.extend_from_slice(&1_700_000_000u64.to_be_bytes());
        m.extend_from_slice(&250_000u64.to_be_bytes());
        m.extend_from_slice(&6u16.to_ne_bytes());
        m.extend_from_slice(&(NFULA_PAYLOAD | 0x8000).to_ne_bytes()); // nested flag is masked
        m.extend_from_slice(&[0x45, 0x00, 0, 0]);
        let len = m.len() as u32;
        m[..4].copy_from_slice(&len.to_ne_bytes());
        let mut got = Vec::new();
        assert_eq!(parse_datagram(&m, |p| got.push(p)), 0);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].group, 5);
        assert_eq!(got[0].ts_nanos, Some(1_700_000_000_250_000_000));
        assert_eq!(got[0].payload, Some(&[0x45, 0x00][..]));
        // every truncation and a corrupted length never panic
        for cut in 0..m.len() {
            let _ = parse_datagram(&m[..cut], |_| {});
        }
        let mut bad = m.clone();
        bad[..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(
            parse_datagram(&bad, |_| panic!("no packet from a bad length")),
            1
        );
        let mut bad_nla = m.clone();
        bad_nla[20..22].copy_from_slice(&2u16.to_ne_bytes());
        assert_eq!(
            parse_datagram(&bad_nla, |_| panic!("no packet from a bad attribute")),
            1
        );
    }

    #[test]
    fn mutated_datagrams_never_panic() {
        let mut seed = crate_message(
            7,
            vec![PacketNla::Seq(1), PacketNla::Payload(vec![0x45; 40])],
        );
        seed.extend(crate_message(
            7,
            vec![PacketNla::Mark(9), PacketNla::Payload(vec![0x60; 13])],
        ));
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut packets = 0usize;
        for _ in 0..50_000 {
            let mut d = seed.clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() % d.len() as u64) as usize;
                match next() % 3 {
                    0 => d[i] ^= 1 << (next() % 8),
                    1 => d[i] = [0, 0xFF, 4, 0x80][(next() % 4) as usize],
                    _ => d.truncate(i),
                }
                if d.is_empty() {
                    break;
                }
            }
            parse_datagram(&d, |p| {
                packets += 1;
                // a payload is always a sub-slice of the datagram
                if let Some(pl) = p.payload {
                    assert!(pl.len() <= d.len());
                }
            });
        }
        assert!(
            packets > 10_000,
            "mutations should mostly keep messages parseable: {packets}"
        );
    }
}
