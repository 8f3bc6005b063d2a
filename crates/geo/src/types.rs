//! Address facts shared by every stage: country codes, address scope, the
//! per-address geo record, and sorted IP range sets.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An ISO 3166-1 alpha-2 country code (upper case), e.g. `CN`.
///
/// Parsing accepts only two ASCII letters that are assigned ISO 3166-1 codes
/// or the codes MaxMind-format databases use in practice (`XK`, `EU`, `AP`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Builds a code from a database value; accepts any two ASCII letters
    /// (databases may carry codes newer than our table) and upper-cases them.
    pub fn from_db(s: &str) -> Option<CountryCode> {
        let b = s.as_bytes();
        if b.len() == 2 && b[0].is_ascii_alphabetic() && b[1].is_ascii_alphabetic() {
            Some(CountryCode([
                b[0].to_ascii_uppercase(),
                b[1].to_ascii_uppercase(),
            ]))
        } else {
            None
        }
    }

    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    pub fn bytes(&self) -> [u8; 2] {
        self.0
    }
}

/// Error returned when a string is not an assigned ISO 3166-1 alpha-2 code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an ISO 3166-1 alpha-2 country code (two upper-case letters such as CN, DE, US)"
)]
pub struct BadCountryCode(pub String);

impl FromStr for CountryCode {
    type Err = BadCountryCode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() != 2 || !b[0].is_ascii_uppercase() || !b[1].is_ascii_uppercase() {
            return Err(BadCountryCode(s.to_string()));
        }
        if !crate::iso::is_assigned(s) {
            return Err(BadCountryCode(s.to_string()));
        }
        Ok(CountryCode([b[0], b[1]]))
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CountryCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CountryCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What kind of address this is, before any database is asked.
///
/// Only `Public` addresses can be in a foreign jurisdiction: private,
/// loopback, link-local, multicast and unspecified addresses never are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressScope {
    Public,
    /// RFC 1918, RFC 6598 shared (CGNAT), IPv6 unique-local.
    Private,
    Loopback,
    LinkLocal,
    Multicast,
    /// 0.0.0.0, ::, broadcast and other reserved space.
    Reserved,
}

impl AddressScope {
    pub fn of(ip: IpAddr) -> AddressScope {
        match ip {
            IpAddr::V4(v4) => scope_v4(v4),
            IpAddr::V6(v6) => {
                if let Some(v4) = v6.to_ipv4_mapped() {
                    return scope_v4(v4);
                }
                scope_v6(v6)
            }
        }
    }

    pub fn is_public(self) -> bool {
        self == AddressScope::Public
    }
}

fn scope_v4(ip: Ipv4Addr) -> AddressScope {
    let o = ip.octets();
    if ip.is_loopback() {
        AddressScope::Loopback
    } else if ip.is_private() || (o[0] == 100 && (o[1] & 0xC0) == 64) {
        AddressScope::Private
    } else if ip.is_link_local() {
        AddressScope::LinkLocal
    } else if ip.is_multicast() {
        AddressScope::Multicast
    } else if ip.is_unspecified() || ip.is_broadcast() || o[0] == 0 || o[0] >= 240 {
        AddressScope::Reserved
    } else {
        AddressScope::Public
    }
}

fn scope_v6(ip: Ipv6Addr) -> AddressScope {
    let s = ip.segments();
    if ip.is_loopback() {
        AddressScope::Loopback
    } else if ip.is_unspecified() {
        AddressScope::Reserved
    } else if ip.is_multicast() {
        AddressScope::Multicast
    } else if (s[0] & 0xffc0) == 0xfe80 {
        AddressScope::LinkLocal
    } else if (s[0] & 0xfe00) == 0xfc00 {
        AddressScope::Private
    } else {
        AddressScope::Public
    }
}

/// Everything the geo stage knows about one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeoInfo {
    pub scope: AddressScope,
    /// Where the network is located (`country.iso_code` or `country_code`).
    pub country: Option<CountryCode>,
    /// Where the network's operator is registered (`registered_country.iso_code`).
    pub registered_country: Option<CountryCode>,
    pub asn: Option<u32>,
    pub as_org: Option<String>,
}

impl GeoInfo {
    pub fn unknown(scope: AddressScope) -> GeoInfo {
        GeoInfo {
            scope,
            country: None,
            registered_country: None,
            asn: None,
            as_org: None,
        }
    }
}

/// A sorted, merged, non-overlapping set of inclusive IPv4 and IPv6 ranges.
///
/// This is the currency between the geo databases, the vendor IP lists of
/// the classifier and the nftables interval sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRanges {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

/// A CIDR string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a CIDR (expected e.g. 198.51.100.0/24 or 2001:db8::/32)")]
pub struct BadCidr(pub String);

impl IpRanges {
    pub fn new() -> IpRanges {
        IpRanges::default()
    }

    /// Builds from unsorted, possibly overlapping ranges.
    pub fn from_ranges(mut v4: Vec<(u32, u32)>, mut v6: Vec<(u128, u128)>) -> IpRanges {
        IpRanges {
            v4: merge(&mut v4),
            v6: merge(&mut v6),
        }
    }

    /// Parses CIDRs (`a.b.c.d/n`, `x::/n`, or a bare address) into ranges.
    pub fn from_cidrs<S: AsRef<str>>(cidrs: &[S]) -> Result<IpRanges, BadCidr> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for c in cidrs {
            match parse_cidr(c.as_ref())? {
                CidrRange::V4(a, b) => v4.push((a, b)),
                CidrRange::V6(a, b) => v6.push((a, b)),
            }
        }
        Ok(IpRanges::from_ranges(v4, v6))
    }

    pub fn v4(&self) -> &[(u32, u32)] {
        &self.v4
    }

    pub fn v6(&self) -> &[(u128, u128)] {
        &self.v6
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => find(&self.v4, u32::from(v4)),
                None => find(&self.v6, u128::from(a)),
            },
        }
    }

    pub fn union(&self, other: &IpRanges) -> IpRanges {
        let mut v4 = self.v4.clone();
        v4.extend_from_slice(&other.v4);
        let mut v6 = self.v6.clone();
        v6.extend_from_slice(&other.v6);
        IpRanges::from_ranges(v4, v6)
    }

    pub fn intersect(&self, other: &IpRanges) -> IpRanges {
        IpRanges {
            v4: intersect(&self.v4, &other.v4),
            v6: intersect(&self.v6, &other.v6),
        }
    }

    /// Every address [`AddressScope::of`] does not call public: private,
    /// shared, loopback, link-local, multicast and reserved space, IPv4 and
    /// IPv6. Range sets for enforcement exclude these.
    pub fn non_public() -> IpRanges {
        const V4: [(u32, u32); 9] = [
            (0x0000_0000, 0x00ff_ffff), // 0.0.0.0/8
            (0x0a00_0000, 0x0aff_ffff), // 10.0.0.0/8
            (0x6440_0000, 0x647f_ffff), // 100.64.0.0/10
            (0x7f00_0000, 0x7fff_ffff), // 127.0.0.0/8
            (0xa9fe_0000, 0xa9fe_ffff), // 169.254.0.0/16
            (0xac10_0000, 0xac1f_ffff), // 172.16.0.0/12
            (0xc0a8_0000, 0xc0a8_ffff), // 192.168.0.0/16
            (0xe000_0000, 0xefff_ffff), // 224.0.0.0/4
            (0xf000_0000, 0xffff_ffff), // 240.0.0.0/4 and broadcast
        ];
        const V6: [(u128, u128); 5] = [
            (0, 1), // :: and ::1
            // ::ffff:0:0/96, IPv4-mapped: never on the wire as IPv6; the
            // IPv4 ranges decide those addresses.
            (0xffff << 32, (0xffff << 32) | 0xffff_ffff),
            (0xfc00 << 112, (0xfe00 << 112) - 1), // fc00::/7
            (0xfe80 << 112, (0xfec0 << 112) - 1), // fe80::/10
            (0xff00 << 112, u128::MAX),           // ff00::/8
        ];
        IpRanges::from_ranges(V4.to_vec(), V6.to_vec())
    }

    /// Every public address: the whole IPv4 and IPv6 space minus
    /// [`IpRanges::non_public`].
    pub fn public() -> IpRanges {
        IpRanges::from_ranges(vec![(0, u32::MAX)], vec![(0, u128::MAX)])
            .difference(&IpRanges::non_public())
    }

    /// The addresses in `self` that are not in `other`.
    pub fn difference(&self, other: &IpRanges) -> IpRanges {
        IpRanges {
            v4: intersect(&self.v4, &complement(&other.v4, u32::MAX)),
            v6: intersect(&self.v6, &complement(&other.v6, u128::MAX)),
        }
    }
}

/// The complement of sorted, merged, non-overlapping ranges within `0..=max`.
fn complement<T: Copy + Ord + Default + num::One>(v: &[(T, T)], max: T) -> Vec<(T, T)> {
    let mut out = Vec::with_capacity(v.len() + 1);
    // Next address not yet covered; None once `max` has been covered.
    let mut next = Some(T::default());
    for &(lo, hi) in v {
        if let Some(n) = next {
            if lo > n {
                if let Some(p) = num::One::pred(lo) {
                    out.push((n, p));
                }
            }
        }
        next = num::One::succ(hi);
    }
    if let Some(n) = next {
        out.push((n, max));
    }
    out
}

enum CidrRange {
    V4(u32, u32),
    V6(u128, u128),
}

fn parse_cidr(s: &str) -> Result<CidrRange, BadCidr> {
    let bad = || BadCidr(s.to_string());
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().map_err(|_| bad())?)),
        None => (s, None),
    };
    match addr.parse::<IpAddr>().map_err(|_| bad())? {
        IpAddr::V4(a) => {
            let len = len.unwrap_or(32);
            if len > 32 {
                return Err(bad());
            }
            let host = if len == 32 { 0 } else { u32::MAX >> len };
            let lo = u32::from(a) & !host;
            Ok(CidrRange::V4(lo, lo | host))
        }
        IpAddr::V6(a) => {
            let len = len.unwrap_or(128);
            if len > 128 {
                return Err(bad());
            }
            let host = if len == 128 { 0 } else { u128::MAX >> len };
            let lo = u128::from(a) & !host;
            Ok(CidrRange::V6(lo, lo | host))
        }
    }
}

fn merge<T: Copy + Ord + num::One>(v: &mut [(T, T)]) -> Vec<(T, T)> {
    v.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
    for &(lo, hi) in v.iter() {
        if lo > hi {
            continue;
        }
        if let Some(last) = out.last_mut() {
            // Adjacent (last.1 + 1 == lo) or overlapping ranges merge.
            if lo <= last.1 || T::succ(last.1) == Some(lo) {
                if hi > last.1 {
                    last.1 = hi;
                }
                continue;
            }
        }
        out.push((lo, hi));
    }
    out
}

fn find<T: Copy + Ord>(v: &[(T, T)], x: T) -> bool {
    let i = v.partition_point(|&(lo, _)| lo <= x);
    i > 0 && v[i - 1].1 >= x
}

fn intersect<T: Copy + Ord>(a: &[(T, T)], b: &[(T, T)]) -> Vec<(T, T)> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        let lo = a[i].0.max(b[j].0);
        let hi = a[i].1.min(b[j].1);
        if lo <= hi {
            out.push((lo, hi));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

mod num {
    pub trait One: Sized {
        fn succ(x: Self) -> Option<Self>;
        fn pred(x: Self) -> Option<Self>;
    }
    impl One for u32 {
        fn succ(x: u32) -> Option<u32> {
            x.checked_add(1)
        }
        fn pred(x: u32) -> Option<u32> {
            x.checked_sub(1)
        }
    }
    impl One for u128 {
        fn succ(x: u128) -> Option<u128> {
            x.checked_add(1)
        }
        fn pred(x: u128) -> Option<u128> {
            x.checked_sub(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_adjacent_and_overlapping() {
        let r =
            IpRanges::from_cidrs(&["10.0.0.0/25", "10.0.0.128/25", "10.0.0.64/26", "192.0.2.1"])
                .expect("cidrs");
        assert_eq!(r.v4().len(), 2);
        assert!(r.contains("10.0.0.200".parse().expect("ip")));
        assert!(!r.contains("10.0.1.0".parse().expect("ip")));
        assert!(r.contains("::ffff:192.0.2.1".parse().expect("ip")));
        assert!(IpRanges::from_cidrs(&["10.0.0.0/33"]).is_err());
        assert!(IpRanges::from_cidrs(&["240.0.0.0/4"])
            .expect("cidr")
            .contains("255.255.255.255".parse().expect("ip")));
    }

    #[test]
    fn intersect_ranges() {
        let a = IpRanges::from_cidrs(&["10.0.0.0/8", "2001:db8::/32"]).expect("a");
        let b = IpRanges::from_cidrs(&["10.1.0.0/16", "11.0.0.0/8", "2001:db8:1::/48"]).expect("b");
        let c = a.intersect(&b);
        assert_eq!(
            c,
            IpRanges::from_cidrs(&["10.1.0.0/16", "2001:db8:1::/48"]).expect("c")
        );
    }

    #[test]
    fn difference_cuts_holes_and_edges() {
        let r = |c: &[&str]| IpRanges::from_cidrs(c).expect("cidrs");
        let a = r(&["10.0.0.0/8", "2001:db8::/32"]);
        let b = r(&[
            "10.1.0.0/16",
            "10.255.255.255/32",
            "9.0.0.0/8",
            "2001:db8::/33",
        ]);
        let d = a.difference(&b);
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(d.contains(ip("10.0.0.1")));
        assert!(!d.contains(ip("10.1.2.3")));
        assert!(d.contains(ip("10.2.0.0")));
        assert!(!d.contains(ip("10.255.255.255")));
        assert!(d.contains(ip("10.255.255.254")));
        assert!(!d.contains(ip("2001:db8::1")));
        assert!(d.contains(ip("2001:db8:8000::1")));
        assert_eq!(a.difference(&a), IpRanges::new());
    }

    #[test]
    fn public_space_excludes_what_is_never_foreign() {
        let p = IpRanges::public();
        for a in [
            "10.0.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::1",
        ] {
            assert!(!p.contains(a.parse().expect("ip")), "{a}");
        }
        for a in ["198.51.100.1", "8.8.8.8", "2001:db8::1"] {
            assert!(p.contains(a.parse().expect("ip")), "{a}");
        }
        // No IPv6 range covers the IPv4-mapped block.
        let mapped = 0xffff_u128 << 32;
        assert!(!p.v6().iter().any(|&(lo, hi)| lo <= mapped && mapped <= hi));
    }

    #[test]
    fn difference_ranges() {
        let a = IpRanges::from_cidrs(&["10.0.0.0/8", "0.0.0.0/8", "255.0.0.0/8", "2001:db8::/32"])
            .expect("a");
        let b = IpRanges::from_cidrs(&["10.1.0.0/16", "0.0.0.0/9", "255.255.255.255", "::/0"])
            .expect("b");
        let want = IpRanges::from_ranges(
            vec![
                (0x0080_0000, 0x00ff_ffff),
                (0x0a00_0000, 0x0a00_ffff),
                (0x0a02_0000, 0x0aff_ffff),
                (0xff00_0000, 0xffff_fffe),
            ],
            vec![],
        );
        assert_eq!(a.difference(&b), want);
        assert_eq!(a.difference(&IpRanges::new()), a);
        assert!(a.difference(&a).is_empty());
    }

    #[test]
    fn non_public_ranges_match_address_scope() {
        let np = IpRanges::non_public();
        for &(lo, hi) in np.v4() {
            for a in [lo, hi, lo + (hi - lo) / 2] {
                assert!(
                    !AddressScope::of(IpAddr::V4(a.into())).is_public(),
                    "{}",
                    Ipv4Addr::from(a)
                );
            }
            for a in [lo.checked_sub(1), hi.checked_add(1)].into_iter().flatten() {
                let ip = IpAddr::V4(a.into());
                assert_eq!(AddressScope::of(ip).is_public(), !np.contains(ip), "{ip}");
            }
        }
        for &(lo, hi) in np.v6() {
            for a in [lo, hi, lo + (hi - lo) / 2] {
                assert!(
                    !AddressScope::of(IpAddr::V6(a.into())).is_public(),
                    "{}",
                    Ipv6Addr::from(a)
                );
            }
            for a in [lo.checked_sub(1), hi.checked_add(1)].into_iter().flatten() {
                let ip = IpAddr::V6(a.into());
                // IPv4-mapped addresses are classified as IPv4.
                if Ipv6Addr::from(a).to_ipv4_mapped().is_none() {
                    assert_eq!(AddressScope::of(ip).is_public(), !np.contains(ip), "{ip}");
                }
            }
        }
        assert!(np.contains("100.127.255.255".parse().expect("ip")));
        assert!(!np.contains("100.128.0.0".parse().expect("ip")));
        assert!(!np.contains("2001:db8::1".parse().expect("ip")));
    }

    #[test]
    fn scopes() {
        for (ip, s) in [
            ("10.1.2.3", AddressScope::Private),
            ("100.64.0.1", AddressScope::Private),
            ("127.0.0.1", AddressScope::Loopback),
            ("169.254.1.1", AddressScope::LinkLocal),
            ("224.0.0.251", AddressScope::Multicast),
            ("198.51.100.7", AddressScope::Public),
            ("fe80::1", AddressScope::LinkLocal),
            ("fd00::1", AddressScope::Private),
            ("ff02::1", AddressScope::Multicast),
            ("::ffff:192.168.1.1", AddressScope::Private),
            ("2001:db8::1", AddressScope::Public),
        ] {
            assert_eq!(AddressScope::of(ip.parse().expect("ip")), s, "{ip}");
        }
    }

    #[test]
    fn country_codes() {
        assert!("CN".parse::<CountryCode>().is_ok());
        assert!("cn".parse::<CountryCode>().is_err());
        assert!("ZZ".parse::<CountryCode>().is_err());
        assert!("Germany".parse::<CountryCode>().is_err());
        assert_eq!(
            CountryCode::from_db("de").map(|c| c.to_string()),
            Some("DE".to_string())
        );
    }
}
