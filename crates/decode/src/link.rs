//! Link-layer types (pcap DLT / LINKTYPE numbers).

/// The link layer of a captured frame, which decides how [`crate::decode`] finds the
/// IP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// Ethernet II, optionally with 802.1Q / 802.1ad VLAN tags (DLT 1).
    Ethernet,
    /// Linux cooked capture v1, 16-byte header (DLT 113).
    LinuxSll,
    /// Linux cooked capture v2, 20-byte header (DLT 276).
    LinuxSll2,
    /// Raw IP, version taken from the first nibble (DLT 101, also 12 and 14).
    RawIp,
    /// Raw IPv4 only (DLT 228).
    Ipv4,
    /// Raw IPv6 only (DLT 229).
    Ipv6,
    /// BSD loopback: 4-byte address family, then IP (DLT 0 and 108).
    Null,
    /// PPP, with or without HDLC-like address and control bytes (DLT 9).
    Ppp,
    /// PPP in HDLC-like framing, or Cisco HDLC (DLT 50).
    PppHdlc,
    /// PPPoE: each frame starts with a PPPoE session header (DLT 51).
    PppEther,
    /// Cisco HDLC: address, control, Ethernet type (DLT 104).
    CiscoHdlc,
    /// pppd's framing: direction byte, control 0x03, PPP protocol (DLT 166).
    PppPppd,
    /// A direction byte, then PPP (DLT 204).
    PppWithDir,
    /// Anything else; [`crate::decode`] skips such frames as not IP.
    Other(u32),
}

impl LinkType {
    /// Maps a pcap/pcapng link-type number to a [`LinkType`].
    pub fn from_dlt(dlt: u32) -> LinkType {
        match dlt {
            0 | 108 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::RawIp,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            9 => LinkType::Ppp,
            50 => LinkType::PppHdlc,
            51 => LinkType::PppEther,
            104 => LinkType::CiscoHdlc,
            166 => LinkType::PppPppd,
            204 => LinkType::PppWithDir,
            other => LinkType::Other(other),
        }
    }

    /// The canonical pcap link-type number (the inverse of [`LinkType::from_dlt`]).
    pub fn to_dlt(self) -> u32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::RawIp => 101,
            LinkType::LinuxSll => 113,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll2 => 276,
            LinkType::Ppp => 9,
            LinkType::PppHdlc => 50,
            LinkType::PppEther => 51,
            LinkType::CiscoHdlc => 104,
            LinkType::PppPppd => 166,
            LinkType::PppWithDir => 204,
            LinkType::Other(n) => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlt_round_trip() {
        for dlt in [
            0u32, 1, 9, 50, 51, 101, 104, 113, 166, 204, 228, 229, 276, 147, 9999,
        ] {
            assert_eq!(LinkType::from_dlt(dlt).to_dlt(), dlt);
        }
        assert_eq!(LinkType::from_dlt(12), LinkType::RawIp);
        assert_eq!(LinkType::from_dlt(14), LinkType::RawIp);
        assert_eq!(LinkType::from_dlt(108), LinkType::Null);
        assert_eq!(LinkType::from_dlt(105), LinkType::Other(105));
    }
}
