//! A small MaxMind DB (`.mmdb`) writer, so tests generate their own fixtures.
//!
//! Implements the MaxMind DB format version 2.0: a binary search tree (record
//! size 24, 28 or 32 bits), a 16-byte zero separator, a data section and the
//! metadata map after the `\xAB\xCD\xEFMaxMind.com` marker. Data values are
//! written without pointers; identical records are stored once.
//!
//! In an `ip_version` 6 database IPv4 networks are placed under `::/96`,
//! which is where readers look for IPv4 addresses. No aliases
//! (`::ffff:0:0/96`, `2002::/16`) are written.
//!
//! ```
//! use geofence_testkit::mmdb::geoip2_country;
//! let bytes = geoip2_country(&[("198.51.100.0/24", "DE", Some("US"))]).to_bytes();
//! assert!(bytes.len() > 16);
//! ```

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// A value in the data section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    U16(u16),
    U32(u32),
    U64(u64),
    Bool(bool),
    Array(Vec<Value>),
    /// Keys keep their insertion order.
    Map(Vec<(String, Value)>),
}

impl Value {
    /// Convenience constructor for a map from `(&str, Value)` pairs.
    pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// Convenience constructor for a string value.
    pub fn str(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}

const TYPE_STRING: u8 = 2;
const TYPE_UINT16: u8 = 5;
const TYPE_UINT32: u8 = 6;
const TYPE_MAP: u8 = 7;
const TYPE_UINT64: u8 = 9;
const TYPE_ARRAY: u8 = 11;
const TYPE_BOOL: u8 = 14;

/// The metadata marker that precedes the metadata map.
pub const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";

/// Serialises one value into `out` (MaxMind DB data section encoding).
pub fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Str(s) => {
            control(TYPE_STRING, s.len(), out);
            out.extend_from_slice(s.as_bytes());
        }
        Value::U16(n) => uint(TYPE_UINT16, u64::from(*n), out),
        Value::U32(n) => uint(TYPE_UINT32, u64::from(*n), out),
        Value::U64(n) => uint(TYPE_UINT64, *n, out),
        Value::Bool(b) => control(TYPE_BOOL, usize::from(*b), out),
        Value::Array(items) => {
            control(TYPE_ARRAY, items.len(), out);
            for i in items {
                encode_value(i, out);
            }
        }
        Value::Map(pairs) => {
            control(TYPE_MAP, pairs.len(), out);
            for (k, v) in pairs {
                control(TYPE_STRING, k.len(), out);
                out.extend_from_slice(k.as_bytes());
                encode_value(v, out);
            }
        }
    }
}

fn uint(ty: u8, n: u64, out: &mut Vec<u8>) {
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    let payload = &bytes[skip..];
    control(ty, payload.len(), out);
    out.extend_from_slice(payload);
}

/// Writes a control byte (and extended type byte and size bytes).
fn control(ty: u8, size: usize, out: &mut Vec<u8>) {
    let (size_bits, extra): (u8, Vec<u8>) = if size < 29 {
        (size as u8, Vec::new())
    } else if size < 29 + 256 {
        (29, vec![(size - 29) as u8])
    } else if size < 285 + 65536 {
        let s = (size - 285) as u16;
        (30, s.to_be_bytes().to_vec())
    } else {
        let s = (size - 65821) as u32;
        assert!(s < (1 << 24), "value too large for the MaxMind DB format");
        (31, s.to_be_bytes()[1..].to_vec())
    };
    if ty <= 7 {
        out.push((ty << 5) | size_bits);
    } else {
        out.push(size_bits);
        out.push(ty - 7);
    }
    out.extend_from_slice(&extra);
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Child {
    Empty,
    Node(usize),
    Data(usize),
}

/// Builds a MaxMind DB in memory. Later inserts win over earlier ones where
/// they overlap.
#[derive(Debug, Clone)]
pub struct MmdbBuilder {
    database_type: String,
    ip_version: u8,
    build_epoch: u64,
    record_size: Option<u16>,
    description: Vec<(String, String)>,
    languages: Vec<String>,
    /// (network bits left-aligned in 128 bits, prefix length in tree bits, value)
    entries: Vec<(u128, u8, Value)>,
}

impl MmdbBuilder {
    /// `ip_version` must be 4 or 6 (panics otherwise: a test bug).
    pub fn new(database_type: &str, ip_version: u8) -> Self {
        assert!(
            ip_version == 4 || ip_version == 6,
            "ip_version must be 4 or 6"
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        MmdbBuilder {
            database_type: database_type.to_string(),
            ip_version,
            build_epoch: now,
            record_size: None,
            description: vec![("en".to_string(), format!("{database_type} test database"))],
            languages: vec!["en".to_string()],
            entries: Vec::new(),
        }
    }

    /// Build time in seconds since the Unix epoch (default: now).
    pub fn build_epoch(mut self, secs: u64) -> Self {
        self.build_epoch = secs;
        self
    }

    /// Record size 24, 28 or 32 bits. Default: the smallest that fits. A size
    /// too small for the database is raised to the smallest that fits.
    pub fn record_size(mut self, bits: u16) -> Self {
        assert!(
            matches!(bits, 24 | 28 | 32),
            "record size must be 24, 28 or 32"
        );
        self.record_size = Some(bits);
        self
    }

    /// Replaces the description map with one English description.
    pub fn description(mut self, text: &str) -> Self {
        self.description = vec![("en".to_string(), text.to_string())];
        self
    }

    /// Replaces the description map (`(language, text)` pairs; may be empty).
    pub fn descriptions(mut self, pairs: &[(&str, &str)]) -> Self {
        self.description = pairs
            .iter()
            .map(|(l, t)| (l.to_string(), t.to_string()))
            .collect();
        self
    }

    /// Maps `cidr` (`a.b.c.d/n`, `x::/n` or a bare address) to `v`.
    ///
    /// Panics on a malformed CIDR or an IPv6 network in an IPv4 database.
    pub fn insert(&mut self, cidr: &str, v: Value) -> &mut Self {
        let (addr, len) = match cidr.split_once('/') {
            Some((a, l)) => (
                a,
                Some(l.parse::<u8>().expect("bad prefix length in test cidr")),
            ),
            None => (cidr, None),
        };
        let ip: IpAddr = addr.parse().expect("bad address in test cidr");
        let (bits, plen) = match (ip, self.ip_version) {
            (IpAddr::V4(a), 4) => {
                let l = len.unwrap_or(32);
                assert!(l <= 32, "bad IPv4 prefix length in test cidr");
                ((u128::from(u32::from(a))) << 96, l)
            }
            (IpAddr::V4(a), _) => {
                let l = len.unwrap_or(32);
                assert!(l <= 32, "bad IPv4 prefix length in test cidr");
                (u128::from(u32::from(a)), 96 + l)
            }
            (IpAddr::V6(_), 4) => panic!("IPv6 network {cidr} in an IPv4-only test database"),
            (IpAddr::V6(a), _) => {
                let l = len.unwrap_or(128);
                assert!(l <= 128, "bad IPv6 prefix length in test cidr");
                (u128::from(a), l)
            }
        };
        let mask = if plen == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(plen))
        };
        self.entries.push((bits & mask, plen, v));
        self
    }

    fn tree_bits(&self) -> u8 {
        if self.ip_version == 4 {
            32
        } else {
            128
        }
    }

    /// Builds the trie: `nodes[i] = [left, right]`, root is node 0.
    fn build_tree(&self) -> (Vec<[Child; 2]>, Vec<Vec<u8>>) {
        let mut nodes: Vec<[Child; 2]> = vec![[Child::Empty, Child::Empty]];
        let mut data: Vec<Vec<u8>> = Vec::new();
        let mut dedupe: HashMap<Vec<u8>, usize> = HashMap::new();
        let width = self.tree_bits();
        for (bits, plen, v) in &self.entries {
            let mut enc = Vec::new();
            encode_value(v, &mut enc);
            let di = *dedupe.entry(enc.clone()).or_insert_with(|| {
                data.push(enc);
                data.len() - 1
            });
            // Bits of this network, numbered from the top of a `width`-bit key.
            let key = if width == 32 { *bits >> 96 } else { *bits };
            let bit =
                |i: u8| -> usize { ((key >> (u32::from(width) - 1 - u32::from(i))) & 1) as usize };
            if *plen == 0 {
                nodes[0] = [Child::Data(di), Child::Data(di)];
                continue;
            }
            let mut node = 0usize;
            for depth in 0..(*plen - 1) {
                let b = bit(depth);
                node = match nodes[node][b] {
                    Child::Node(n) => n,
                    other => {
                        // Empty or a larger network's data: split it.
                        nodes.push([other, other]);
                        let n = nodes.len() - 1;
                        nodes[node][b] = Child::Node(n);
                        n
                    }
                };
            }
            let b = bit(*plen - 1);
            // Replaces whatever was there, including a subtree of smaller networks.
            nodes[node][b] = Child::Data(di);
        }
        // Drop nodes no longer reachable (replaced subtrees) and renumber.
        let mut order = Vec::new();
        let mut map = vec![usize::MAX; nodes.len()];
        let mut queue = std::collections::VecDeque::from([0usize]);
        while let Some(n) = queue.pop_front() {
            map[n] = order.len();
            order.push(n);
            for c in nodes[n] {
                if let Child::Node(k) = c {
                    queue.push_back(k);
                }
            }
        }
        let renumbered = order
            .iter()
            .map(|&n| {
                nodes[n].map(|c| match c {
                    Child::Node(k) => Child::Node(map[k]),
                    other => other,
                })
            })
            .collect();
        (renumbered, data)
    }

    /// Serialises the database.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (nodes, data) = self.build_tree();
        let node_count = nodes.len();
        let mut data_section = Vec::new();
        let mut offsets = Vec::with_capacity(data.len());
        for d in &data {
            offsets.push(data_section.len());
            data_section.extend_from_slice(d);
        }
        let max_record = node_count + 16 + data_section.len();
        let needed = if max_record < (1 << 24) {
            24
        } else if max_record < (1 << 28) {
            28
        } else {
            32
        };
        let record_size = self.record_size.unwrap_or(needed).max(needed);
        let record = |c: Child| -> u32 {
            match c {
                Child::Empty => node_count as u32,
                Child::Node(k) => k as u32,
                Child::Data(d) => (node_count + 16 + offsets[d]) as u32,
            }
        };
        let mut out = Vec::with_capacity(node_count * 8 + 16 + data_section.len() + 256);
        for n in &nodes {
            let (l, r) = (record(n[0]), record(n[1]));
            match record_size {
                24 => {
                    out.extend_from_slice(&l.to_be_bytes()[1..]);
                    out.extend_from_slice(&r.to_be_bytes()[1..]);
                }
                28 => {
                    out.extend_from_slice(&l.to_be_bytes()[1..]);
                    out.push((((l >> 24) & 0x0f) << 4) as u8 | ((r >> 24) & 0x0f) as u8);
                    out.extend_from_slice(&r.to_be_bytes()[1..]);
                }
                _ => {
                    out.extend_from_slice(&l.to_be_bytes());
                    out.extend_from_slice(&r.to_be_bytes());
                }
            }
        }
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&data_section);
        out.extend_from_slice(METADATA_MARKER);
        let meta = Value::Map(vec![
            ("binary_format_major_version".into(), Value::U16(2)),
            ("binary_format_minor_version".into(), Value::U16(0)),
            ("build_epoch".into(), Value::U64(self.build_epoch)),
            (
                "database_type".into(),
                Value::Str(self.database_type.clone()),
            ),
            (
                "description".into(),
                Value::Map(
                    self.description
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
                        .collect(),
                ),
            ),
            ("ip_version".into(), Value::U16(u16::from(self.ip_version))),
            (
                "languages".into(),
                Value::Array(
                    self.languages
                        .iter()
                        .map(|l| Value::Str(l.clone()))
                        .collect(),
                ),
            ),
            ("node_count".into(), Value::U32(node_count as u32)),
            ("record_size".into(), Value::U16(record_size)),
        ]);
        encode_value(&meta, &mut out);
        out
    }

    /// Writes the database to `path`.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.to_bytes())
    }
}

/// GeoIP2/GeoLite2 Country schema: `{country: {iso_code}, registered_country: {iso_code}}`.
/// `database_type` `GeoIP2-Country`, IPv6 tree (IPv4 under `::/96`).
pub fn geoip2_country(entries: &[(&str, &str, Option<&str>)]) -> MmdbBuilder {
    let mut b = MmdbBuilder::new("GeoIP2-Country", 6);
    for (cidr, country, registered) in entries {
        let mut m = vec![(
            "country".to_string(),
            Value::map([("iso_code", Value::str(country))]),
        )];
        if let Some(r) = registered {
            m.push((
                "registered_country".to_string(),
                Value::map([("iso_code", Value::str(r))]),
            ));
        }
        b.insert(cidr, Value::Map(m));
    }
    b
}

/// ip-location-db country schema: `{country_code}`, `database_type`
/// `ip-location-db-country`, IPv6 tree.
pub fn ip_location_db_country(entries: &[(&str, &str)]) -> MmdbBuilder {
    let mut b = MmdbBuilder::new("ip-location-db-country", 6);
    for (cidr, country) in entries {
        b.insert(cidr, Value::map([("country_code", Value::str(country))]));
    }
    b
}

/// GeoLite2 ASN schema: `{autonomous_system_number, autonomous_system_organization}`,
/// `database_type` `GeoLite2-ASN`, IPv6 tree.
pub fn geolite2_asn(entries: &[(&str, u32, &str)]) -> MmdbBuilder {
    let mut b = MmdbBuilder::new("GeoLite2-ASN", 6);
    for (cidr, asn, org) in entries {
        b.insert(
            cidr,
            Value::map([
                ("autonomous_system_number", Value::U32(*asn)),
                ("autonomous_system_organization", Value::str(org)),
            ]),
        );
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_follow_the_spec() {
        let mut out = Vec::new();
        encode_value(&Value::str("ab"), &mut out);
        assert_eq!(out, [0x42, b'a', b'b']);
        out.clear();
        encode_value(&Value::U64(0x0102), &mut out);
        // extended type 9 -> 0x00 size 2, then 9-7 = 2
        assert_eq!(out, [0x02, 0x02, 0x01, 0x02]);
        out.clear();
        encode_value(&Value::U32(0), &mut out);
        assert_eq!(out, [0xC0]);
        out.clear();
        encode_value(&Value::Str("x".repeat(300)), &mut out);
        assert_eq!(&out[..3], &[0x5E, 0x00, 15]);
        out.clear();
        encode_value(&Value::Str("x".repeat(40)), &mut out);
        assert_eq!(&out[..2], &[0x5D, 11]);
    }
}

/// Reads the writer's output back with the `maxminddb` crate.
#[cfg(test)]
mod readback {
    use super::*;
    use maxminddb::{Reader, WithinOptions};
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct Iso<'a> {
        iso_code: Option<&'a str>,
    }

    #[derive(Deserialize, Debug)]
    struct Rec<'a> {
        #[serde(borrow)]
        country: Option<Iso<'a>>,
        #[serde(borrow)]
        registered_country: Option<Iso<'a>>,
        country_code: Option<&'a str>,
        autonomous_system_number: Option<u32>,
        autonomous_system_organization: Option<&'a str>,
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn country(r: &Reader<Vec<u8>>, a: &str) -> Option<String> {
        let res = r.lookup(ip(a)).expect("lookup");
        let rec: Option<Rec> = res.decode().expect("decode");
        rec.and_then(|x| {
            x.country
                .and_then(|c| c.iso_code)
                .or(x.country_code)
                .map(str::to_string)
        })
    }

    #[test]
    fn geoip2_country_v6_db_with_nested_networks() {
        let b = geoip2_country(&[
            ("198.51.100.0/24", "DE", Some("US")),
            ("198.51.100.128/25", "FR", None),
            ("2001:db8::/32", "JP", Some("JP")),
            ("2001:db8:1::/48", "CN", Some("HK")),
        ])
        .build_epoch(1_700_000_000);
        let r = Reader::from_source(b.to_bytes()).expect("open");
        r.verify().expect("verify");
        let m = r.metadata();
        assert_eq!(m.database_type, "GeoIP2-Country");
        assert_eq!(m.ip_version, 6);
        assert_eq!(m.build_epoch, 1_700_000_000);
        assert_eq!(m.record_size, 24);
        assert_eq!(m.binary_format_major_version, 2);
        assert_eq!(m.languages, vec!["en".to_string()]);

        assert_eq!(country(&r, "198.51.100.1").as_deref(), Some("DE"));
        assert_eq!(country(&r, "198.51.100.200").as_deref(), Some("FR"));
        assert_eq!(country(&r, "198.51.101.1"), None);
        assert_eq!(country(&r, "2001:db8:2::1").as_deref(), Some("JP"));
        assert_eq!(country(&r, "2001:db8:1::1").as_deref(), Some("CN"));
        assert_eq!(country(&r, "2001:db9::1"), None);

        let res = r.lookup(ip("198.51.100.1")).expect("lookup");
        let rec: Rec = res.decode().expect("decode").expect("data");
        assert_eq!(rec.registered_country.and_then(|c| c.iso_code), Some("US"));
        assert_eq!(res.network().expect("net").to_string(), "198.51.100.0/25");
        let res = r.lookup(ip("198.51.100.200")).expect("lookup");
        let rec: Rec = res.decode().expect("decode").expect("data");
        assert!(rec.registered_country.is_none());
        assert_eq!(res.network().expect("net").to_string(), "198.51.100.128/25");
        let res = r.lookup(ip("2001:db8:1::1")).expect("lookup");
        assert_eq!(res.network().expect("net").to_string(), "2001:db8:1::/48");

        // Enumeration: the split /24 appears as its two /25 halves, IPv4 once as V4.
        let mut nets: Vec<String> = r
            .networks(WithinOptions::default())
            .expect("networks")
            .map(|n| n.expect("net").network().expect("network").to_string())
            .collect();
        nets.sort();
        let mut want = vec![
            "198.51.100.0/25",
            "198.51.100.128/25",
            "2001:db8:1::/48",
            // the /32 minus the /48: 16 networks from /33../48 siblings
        ];
        want.sort();
        for w in &want {
            assert!(nets.contains(&w.to_string()), "{w} missing from {nets:?}");
        }
        assert_eq!(nets.len(), 3 + 16, "{nets:?}");
    }

    #[test]
    fn ipv4_only_db_and_record_sizes() {
        for rs in [24u16, 28, 32] {
            let mut b = MmdbBuilder::new("ip-location-db-country", 4).record_size(rs);
            b.insert(
                "0.0.0.0/1",
                Value::map([("country_code", Value::str("AA"))]),
            )
            .insert(
                "192.0.2.0/24",
                Value::map([("country_code", Value::str("BB"))]),
            )
            .insert(
                "192.0.2.7",
                Value::map([("country_code", Value::str("CC"))]),
            );
            let r = Reader::from_source(b.to_bytes()).expect("open");
            r.verify().expect("verify");
            assert_eq!(r.metadata().record_size, rs);
            assert_eq!(r.metadata().ip_version, 4);
            assert_eq!(country(&r, "10.0.0.1").as_deref(), Some("AA"));
            assert_eq!(country(&r, "192.0.2.6").as_deref(), Some("BB"));
            assert_eq!(country(&r, "192.0.2.7").as_deref(), Some("CC"));
            assert_eq!(country(&r, "192.0.2.8").as_deref(), Some("BB"));
            assert_eq!(country(&r, "203.0.113.1"), None);
            assert!(
                r.lookup(ip("2001:db8::1")).is_err(),
                "IPv6 in IPv4 db is an error in maxminddb"
            );
        }
    }

    #[test]
    fn write_creates_a_readable_file() {
        let path =
            std::env::temp_dir().join(format!("geofence-testkit-{}.mmdb", std::process::id()));
        geolite2_asn(&[("192.0.2.0/24", 64496, "Example AS")])
            .write(&path)
            .expect("write");
        let r = Reader::open_readfile(&path).expect("open");
        let _ = std::fs::remove_file(&path);
        let rec: Rec = r
            .lookup(ip("192.0.2.9"))
            .expect("l")
            .decode()
            .expect("d")
            .expect("data");
        assert_eq!(rec.autonomous_system_number, Some(64496));
        assert_eq!(r.metadata().database_type, "GeoLite2-ASN");
    }

    #[test]
    fn later_inserts_win_and_replace_subtrees() {
        let b = ip_location_db_country(&[
            ("203.0.113.0/25", "AA"),
            ("203.0.113.0/24", "BB"),
            ("203.0.113.9", "CC"),
        ]);
        let r = Reader::from_source(b.to_bytes()).expect("open");
        r.verify().expect("verify");
        assert_eq!(country(&r, "203.0.113.1").as_deref(), Some("BB"));
        assert_eq!(country(&r, "203.0.113.9").as_deref(), Some("CC"));
        assert_eq!(country(&r, "203.0.113.200").as_deref(), Some("BB"));
    }

    #[test]
    fn asn_schema_and_empty_db() {
        let b = geolite2_asn(&[
            ("192.0.2.0/24", 64496, "Example AS"),
            ("2001:db8::/32", 4_200_000_000, "Big ASN"),
        ]);
        let r = Reader::from_source(b.to_bytes()).expect("open");
        r.verify().expect("verify");
        let rec: Rec = r
            .lookup(ip("192.0.2.1"))
            .expect("l")
            .decode()
            .expect("d")
            .expect("data");
        assert_eq!(rec.autonomous_system_number, Some(64496));
        assert_eq!(rec.autonomous_system_organization, Some("Example AS"));
        let rec: Rec = r
            .lookup(ip("2001:db8::5"))
            .expect("l")
            .decode()
            .expect("d")
            .expect("data");
        assert_eq!(rec.autonomous_system_number, Some(4_200_000_000));

        let empty = MmdbBuilder::new("GeoLite2-ASN", 6).to_bytes();
        let r = Reader::from_source(empty).expect("open empty");
        r.verify().expect("verify empty");
        assert!(!r.lookup(ip("192.0.2.1")).expect("l").has_data());
    }

    #[test]
    fn long_strings_and_many_networks() {
        let mut b = MmdbBuilder::new("Test", 6);
        let long = "o".repeat(70_000);
        b.insert(
            "2001:db8::/32",
            Value::map([("s", Value::Str(long.clone()))]),
        );
        for i in 0..=255u32 {
            b.insert(
                &format!("198.51.{}.0/24", i),
                Value::map([("n", Value::U32(i))]),
            );
        }
        let bytes = b.to_bytes();
        let r = Reader::from_source(bytes).expect("open");
        r.verify().expect("verify");
        #[derive(Deserialize)]
        struct S {
            s: Option<String>,
            n: Option<u32>,
        }
        let s: S = r
            .lookup(ip("2001:db8::1"))
            .expect("l")
            .decode()
            .expect("d")
            .expect("data");
        assert_eq!(s.s.as_deref(), Some(long.as_str()));
        let s: S = r
            .lookup(ip("198.51.77.1"))
            .expect("l")
            .decode()
            .expect("d")
            .expect("data");
        assert_eq!(s.n, Some(77));
        let count = r.networks(WithinOptions::default()).expect("n").count();
        assert_eq!(count, 257);
    }
}
