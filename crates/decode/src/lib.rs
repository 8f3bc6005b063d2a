//! # geofence-decode: the first stage of the Geofence pipeline
//!
//! ```text
//! capture -> [decode] -> flow table -> classify -> geo -> policy -> enforce/alert
//! ```
//!
//! This crate turns raw frames into [`Packet`]s: addresses, ports, TCP flags and a
//! zero-copy slice of the transport payload. It has two parts:
//!
//! * [`PcapReader`]: a streaming reader for classic pcap (microsecond and nanosecond
//!   magic, both byte orders) and pcapng (several sections, several interfaces with
//!   their own link type and timestamp resolution). It reuses one internal buffer, so
//!   reading does not allocate per packet, and it rejects records larger than
//!   [`MAX_RECORD_LEN`].
//! * [`decode`] / [`decode_with`]: link layer ([`LinkType`]: Ethernet with
//!   802.1Q/QinQ, PPPoE sessions and MPLS label stacks, Linux cooked SLL/SLL2, raw IP,
//!   BSD loopback, the PPP and Cisco HDLC link types), IPv4 (with options) and IPv6
//!   (with extension headers), TCP and UDP. Network-layer tunnels (GTP-U, GRE with
//!   PPTP's enhanced GRE, IP-in-IP, VXLAN, Geneve) are opened only when
//!   [`DecodeOptions::tunnels`] enables them ([`tunnel`] explains why), and a packet
//!   from inside one carries its [`Tunnel`]. It chains
//!   `etherparse` header slices instead of building a full `SlicedPacket`, and it is
//!   lax about snaplen truncation: a packet cut short still yields its ports and the
//!   bytes that are present, flagged with [`Packet::payload_truncated`].
//!
//! Neither part panics on any input; malformed data gives [`DecodeError`] (reader) or
//! [`Skip`] (decoder).
#![forbid(unsafe_code)]

mod error;
mod link;
mod packet;
mod pcap;
mod ppp;
pub mod tunnel;

pub use error::DecodeError;
pub use link::LinkType;
pub use packet::{
    decode, decode_with, DecodeOptions, Packet, Proto, Skip, TcpInfo, MAX_TUNNEL_DEPTH,
};
pub use pcap::{PcapReader, RawPacket, MAX_RECORD_LEN};
pub use tunnel::{Tunnel, TunnelKind, TunnelSet, GENEVE_PORT, GTPU_PORT, VXLAN_PORT};
