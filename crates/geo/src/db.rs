//! MaxMind-format database reading: open and verify, per-address lookup,
//! range enumeration per country or ASN.
//!
//! Every database is verified when it is opened (search tree, separator and
//! every reachable data record, within the `maxminddb` crate's work limits),
//! and every distinct data record is decoded once into a small table keyed
//! by its data-section offset. A lookup is then one tree walk plus one hash
//! probe: no decoding and no allocation on the packet path (apart from the
//! AS organisation string, which [`GeoInfo`] owns).
//!
//! Several databases combine: for each field the first database (in the
//! order given) that has a value for the address wins.

use crate::types::{AddressScope, CountryCode, GeoInfo, IpRanges};
use maxminddb::{Reader, WithinOptions};
use rustc_hash::FxHashMap;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("cannot read geo database {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("geo database {path} is corrupt or not a MaxMind DB: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("geo database {path} is not usable: {reason}")]
    Unsupported { path: String, reason: String },
}

/// Which country a range query is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GeoField {
    /// Where the network is located: `country.iso_code` / `country_code`.
    Location,
    /// Where the operator is registered: `registered_country.iso_code`; for a
    /// database that has no registered country at all, its location country.
    Registered,
}

/// What a database can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Provides {
    pub country: bool,
    pub registered_country: bool,
    pub asn: bool,
}

/// Metadata of one opened database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbMeta {
    /// The file path (for [`GeoDb::open`]) or the name given to [`GeoDb::from_sources`].
    pub name: String,
    pub database_type: String,
    /// Build time, seconds since the Unix epoch.
    pub build_epoch: u64,
    pub ip_version: u16,
    pub record_size: u16,
    pub node_count: u32,
    /// English description, else any description.
    pub description: Option<String>,
    pub provides: Provides,
}

impl DbMeta {
    /// Whole days between the build time and `now` (0 if built in the future).
    pub fn age_days(&self, now: SystemTime) -> u64 {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        now.saturating_sub(self.build_epoch) / 86_400
    }
}

/// One decoded data record, reduced to what the geo stage uses.
#[derive(Debug, Clone, Default)]
struct Entry {
    country: Option<CountryCode>,
    registered: Option<CountryCode>,
    asn: Option<u32>,
    as_org: Option<Arc<str>>,
}

#[derive(Deserialize)]
struct IsoRec<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Rec<'a> {
    #[serde(borrow, default)]
    country: Option<IsoRec<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<IsoRec<'a>>,
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(borrow, default)]
    autonomous_system_organization: Option<&'a str>,
}

struct Db {
    meta: DbMeta,
    /// Used for enumeration; lookups use `tree`, over the same bytes.
    reader: Reader<Arc<[u8]>>,
    tree: Tree,
    /// Data-section offset -> decoded record (every record reachable from the tree).
    records: FxHashMap<usize, Entry>,
}

/// The search tree, walked directly for lookups (the `maxminddb` reader's
/// walk, plus a jump table for the first 16 bits of IPv4 and IPv6 keys).
/// Every read is bounds-checked; a broken tree yields "no data", never a panic.
struct Tree {
    bytes: Arc<[u8]>,
    node_count: usize,
    record_size: u16,
    /// Record value reached after the first 16 bits of an IPv4 key
    /// (starting at the IPv4 root), indexed by those bits.
    v4_jump: Box<[u32]>,
    /// The same for IPv6 keys from the root; empty for IPv4-only databases.
    v6_jump: Box<[u32]>,
}

impl Tree {
    fn new(bytes: Arc<[u8]>, node_count: u32, record_size: u16, ip_version: u16) -> Tree {
        let mut t = Tree {
            bytes,
            node_count: node_count as usize,
            record_size,
            v4_jump: Box::default(),
            v6_jump: Box::default(),
        };
        // IPv4 root: node 0, or 96 zero bits down in an IPv6 tree.
        let mut v4_root = 0u32;
        if ip_version == 6 {
            for _ in 0..96 {
                if v4_root as usize >= t.node_count {
                    break;
                }
                v4_root = t.record(v4_root, 0).unwrap_or(node_count);
            }
            t.v6_jump = t.jump_table(0);
        }
        t.v4_jump = t.jump_table(v4_root);
        t
    }

    fn jump_table(&self, root: u32) -> Box<[u32]> {
        let mut table = vec![self.node_count as u32; 1 << 16].into_boxed_slice();
        self.fill(root, 0, 0, &mut table);
        table
    }

    /// Depth-first over the first 16 levels; a record reached early (data or
    /// no data) fills every slot below it.
    fn fill(&self, node: u32, depth: u32, prefix: usize, table: &mut [u32]) {
        if depth == 16 || node as usize >= self.node_count {
            let span = 1usize << (16 - depth);
            let start = prefix << (16 - depth);
            if let Some(slots) = table.get_mut(start..start + span) {
                slots.fill(node);
            }
            return;
        }
        for bit in 0..2u32 {
            let child = self.record(node, bit).unwrap_or(self.node_count as u32);
            self.fill(child, depth + 1, (prefix << 1) | bit as usize, table);
        }
    }

    /// Reads record `bit` (0 left, 1 right) of node `node`.
    #[inline(always)]
    fn record(&self, node: u32, bit: u32) -> Option<u32> {
        let n = node as usize;
        let b = &self.bytes;
        match self.record_size {
            24 => {
                let i = n.checked_mul(6)? + bit as usize * 3;
                let r = b.get(i..i + 3)?;
                Some(u32::from_be_bytes([0, r[0], r[1], r[2]]))
            }
            28 => {
                let r = b.get(n.checked_mul(7)?..n.checked_mul(7)? + 7)?;
                Some(if bit == 0 {
                    u32::from_be_bytes([(r[3] & 0xf0) >> 4, r[0], r[1], r[2]])
                } else {
                    u32::from_be_bytes([r[3] & 0x0f, r[4], r[5], r[6]])
                })
            }
            _ => {
                let i = n.checked_mul(8)? + bit as usize * 4;
                let r = b.get(i..i + 4)?;
                Some(u32::from_be_bytes([r[0], r[1], r[2], r[3]]))
            }
        }
    }

    /// Follows `bits` bits of `key` (most significant first) from `node`;
    /// returns the record value reached: a node index if the key is longer
    /// than the walk, else `node_count` (no data) or a data pointer.
    #[inline(always)]
    fn walk(&self, mut node: u32, key: u128, bits: u32) -> u32 {
        let nc = self.node_count as u32;
        let mut i = 0;
        while i < bits && node < nc {
            let bit = ((key >> (127 - i)) & 1) as u32;
            node = match self.record(node, bit) {
                Some(r) => r,
                None => return nc,
            };
            i += 1;
        }
        node
    }

    /// The data-section offset for a 32-bit (IPv4) or 128-bit key.
    #[inline]
    fn lookup(&self, ip: IpAddr) -> Option<usize> {
        let (jump, key, bits) = match ip {
            IpAddr::V4(a) => (&self.v4_jump, u128::from(u32::from(a)) << 96, 32),
            IpAddr::V6(a) => (&self.v6_jump, u128::from(a), 128),
        };
        let first = *jump.get((key >> 112) as usize)?;
        let rec = self.walk(first, key << 16, bits - 16) as usize;
        // A node index left after all bits means a broken tree: no data.
        rec.checked_sub(self.node_count + 16)
    }
}

impl Db {
    /// The record for `ip`, which must not be an IPv4-mapped IPv6 address.
    #[inline]
    fn entry(&self, ip: IpAddr) -> Option<&Entry> {
        let off = self.tree.lookup(ip)?;
        self.records.get(&off)
    }

    /// The country this database gives for `field`, applying the
    /// registered -> location fallback for databases without registered data.
    #[inline]
    fn field(&self, e: &Entry, field: GeoField) -> Option<CountryCode> {
        match field {
            GeoField::Location => e.country,
            GeoField::Registered if self.meta.provides.registered_country => e.registered,
            GeoField::Registered => e.country,
        }
    }

    fn has_field(&self, field: GeoField) -> bool {
        match field {
            GeoField::Location => self.meta.provides.country,
            GeoField::Registered => {
                self.meta.provides.country || self.meta.provides.registered_country
            }
        }
    }

    /// Calls `f(range, entry)` for every network with data; IPv4 networks
    /// (also those of an IPv6 database's IPv4 subtree) come as `Net::V4`.
    fn for_each_network(&self, mut f: impl FnMut(Net, &Entry)) {
        let Ok(iter) = self.reader.networks(WithinOptions::default()) else {
            return;
        };
        for item in iter {
            // The tree was verified at open; an error here cannot happen, but
            // if it did the rest of this database is skipped, not panicked on.
            let Ok(res) = item else { break };
            let Some(off) = res.offset() else { continue };
            let Some(e) = self.records.get(&off) else {
                continue;
            };
            let Ok(net) = res.network() else { continue };
            let n = match net {
                ipnetwork::IpNetwork::V4(n) => {
                    let lo = u32::from(n.network());
                    let host = if n.prefix() >= 32 {
                        0
                    } else {
                        u32::MAX >> n.prefix()
                    };
                    Net::V4(lo, lo | host)
                }
                ipnetwork::IpNetwork::V6(n) => {
                    let a = n.network();
                    // Aliases of the IPv4 subtree are skipped by the default
                    // options. A database may still carry its own records
                    // under ::ffff:0:0/96; lookup() never reaches them (mapped
                    // addresses are looked up as IPv4), so neither do ranges.
                    if n.prefix() >= 96 && a.to_ipv4_mapped().is_some() {
                        continue;
                    }
                    let lo = u128::from(a);
                    let host = if n.prefix() >= 128 {
                        0
                    } else {
                        u128::MAX >> n.prefix()
                    };
                    Net::V6(lo, lo | host)
                }
            };
            f(n, e);
        }
    }
}

#[derive(Clone, Copy)]
enum Net {
    V4(u32, u32),
    V6(u128, u128),
}

#[derive(Default)]
struct RawRanges {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl RawRanges {
    fn push(&mut self, n: Net) {
        match n {
            Net::V4(a, b) => self.v4.push((a, b)),
            Net::V6(a, b) => self.v6.push((a, b)),
        }
    }
    fn into_ranges(self) -> IpRanges {
        IpRanges::from_ranges(self.v4, self.v6)
    }
}

/// One or more opened MaxMind-format databases. `Send + Sync`; lookups take `&self`.
///
/// ```
/// use geofence_geo::{GeoDb, GeoField};
/// // Tests build their databases with geofence-testkit; the daemon uses
/// // GeoDb::open(&["/var/lib/GeoIP/GeoLite2-Country.mmdb", ...]).
/// let country = geofence_testkit::mmdb::geoip2_country(&[("198.51.100.0/24", "CN", Some("HK"))]);
/// let asn = geofence_testkit::mmdb::geolite2_asn(&[("198.51.100.0/23", 64496, "Example AS")]);
/// let db = GeoDb::from_sources(vec![
///     ("country.mmdb".into(), country.to_bytes()),
///     ("asn.mmdb".into(), asn.to_bytes()),
/// ])?;
/// let info = db.lookup("198.51.100.7".parse()?);
/// assert_eq!(info.country, Some("CN".parse()?));
/// assert_eq!(info.registered_country, Some("HK".parse()?));
/// assert_eq!((info.asn, info.as_org.as_deref()), (Some(64496), Some("Example AS")));
/// assert!(db.lookup("10.0.0.1".parse()?).country.is_none()); // private: never looked up
/// let cn = db.ranges_for_countries(&["CN".parse()?], GeoField::Location);
/// assert_eq!(cn.v4(), &[(0xc633_6400, 0xc633_64ff)]);
/// assert!(db.stale(30, std::time::SystemTime::now()).is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct GeoDb {
    dbs: Vec<Db>,
    metas: Vec<DbMeta>,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb")
            .field("databases", &self.metas)
            .finish()
    }
}

/// Upper bound on distinct data records decoded at open (a real City database
/// has a few hundred thousand); beyond it the database is refused.
const MAX_RECORDS: usize = 4 << 20;

impl GeoDb {
    /// Opens every file; all-or-nothing. Each file is read into memory and verified.
    pub fn open<P: AsRef<Path>>(paths: &[P]) -> Result<GeoDb, GeoError> {
        let mut sources = Vec::with_capacity(paths.len());
        for p in paths {
            let p = p.as_ref();
            let bytes = std::fs::read(p).map_err(|source| GeoError::Io {
                path: p.to_path_buf(),
                source,
            })?;
            sources.push((p.display().to_string(), bytes));
        }
        GeoDb::from_sources(sources)
    }

    /// Opens databases held in memory; `name` is used in errors and [`DbMeta::name`].
    pub fn from_sources(sources: Vec<(String, Vec<u8>)>) -> Result<GeoDb, GeoError> {
        let mut dbs = Vec::with_capacity(sources.len());
        for (name, bytes) in sources {
            dbs.push(open_one(name, bytes)?);
        }
        let metas = dbs.iter().map(|d| d.meta.clone()).collect();
        Ok(GeoDb { dbs, metas })
    }

    /// No databases: every address is unknown.
    pub fn empty() -> GeoDb {
        GeoDb {
            dbs: Vec::new(),
            metas: Vec::new(),
        }
    }

    /// Everything known about `ip`. Non-public addresses (private, loopback,
    /// link-local, multicast, reserved) are never looked up. IPv4-mapped IPv6
    /// addresses are looked up as IPv4; IPv6 addresses are unknown to IPv4-only
    /// databases.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> GeoInfo {
        let scope = AddressScope::of(ip);
        let mut info = GeoInfo::unknown(scope);
        if !scope.is_public() {
            return info;
        }
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => ip,
            },
            v4 => v4,
        };
        for db in &self.dbs {
            let Some(e) = db.entry(ip) else { continue };
            if info.country.is_none() {
                info.country = e.country;
            }
            if info.registered_country.is_none() {
                info.registered_country = db.field(e, GeoField::Registered);
            }
            if info.asn.is_none() && e.asn.is_some() {
                info.asn = e.asn;
                info.as_org = e.as_org.as_deref().map(str::to_string);
            }
        }
        info
    }

    /// The opened databases, in priority order.
    pub fn databases(&self) -> &[DbMeta] {
        &self.metas
    }

    /// Databases older than `max_age_days` at `now`.
    pub fn stale(&self, max_age_days: u32, now: SystemTime) -> Vec<&DbMeta> {
        self.metas
            .iter()
            .filter(|m| m.age_days(now) > u64::from(max_age_days))
            .collect()
    }

    /// Every network whose `field` is one of `countries`, merged into ranges.
    ///
    /// Consistent with [`GeoDb::lookup`]: where several databases give a
    /// country, the first one wins, so later databases only contribute
    /// networks the earlier ones leave without a value.
    pub fn ranges_for_countries(&self, countries: &[CountryCode], field: GeoField) -> IpRanges {
        let mut all = self.ranges_by_country(field);
        let mut out = IpRanges::new();
        for c in countries {
            if let Some(r) = all.remove(c) {
                out = out.union(&r);
            }
        }
        out
    }

    /// Merged ranges of every country in the databases for `field`.
    pub fn ranges_by_country(&self, field: GeoField) -> BTreeMap<CountryCode, IpRanges> {
        let mut out: BTreeMap<CountryCode, IpRanges> = BTreeMap::new();
        // Address space already answered by higher-priority databases.
        let mut covered = IpRanges::new();
        for db in self.dbs.iter().filter(|d| d.has_field(field)) {
            let mut per: BTreeMap<CountryCode, RawRanges> = BTreeMap::new();
            let mut this_cover = RawRanges::default();
            db.for_each_network(|n, e| {
                if let Some(c) = db.field(e, field) {
                    per.entry(c).or_default().push(n);
                    this_cover.push(n);
                }
            });
            for (c, raw) in per {
                let mut r = raw.into_ranges();
                if !covered.is_empty() {
                    r = r.difference(&covered);
                }
                if r.is_empty() {
                    continue;
                }
                let slot = out.entry(c).or_default();
                *slot = slot.union(&r);
            }
            covered = covered.union(&this_cover.into_ranges());
        }
        // Like lookup(): non-public space is never in any jurisdiction, even
        // where a database maps it.
        let np = IpRanges::non_public();
        out.into_iter()
            .map(|(c, r)| (c, r.difference(&np)))
            .filter(|(_, r)| !r.is_empty())
            .collect()
    }

    /// Every network announced by one of `asns`, merged (first ASN database wins).
    pub fn ranges_for_asns(&self, asns: &[u32]) -> IpRanges {
        let mut out = IpRanges::new();
        let mut covered = IpRanges::new();
        for db in self.dbs.iter().filter(|d| d.meta.provides.asn) {
            let mut hit = RawRanges::default();
            let mut cover = RawRanges::default();
            db.for_each_network(|n, e| {
                if let Some(a) = e.asn {
                    cover.push(n);
                    if asns.contains(&a) {
                        hit.push(n);
                    }
                }
            });
            let mut r = hit.into_ranges();
            if !covered.is_empty() {
                r = r.difference(&covered);
            }
            out = out.union(&r);
            covered = covered.union(&cover.into_ranges());
        }
        out.difference(&IpRanges::non_public())
    }
}

fn corrupt(name: &str, reason: impl std::fmt::Display) -> GeoError {
    GeoError::Corrupt {
        path: name.to_string(),
        reason: reason.to_string(),
    }
}

fn open_one(name: String, bytes: Vec<u8>) -> Result<Db, GeoError> {
    // The maxminddb crate validates bounds and limits work, but it is a parser
    // of hostile input: a panic in it must become an error, not a crash.
    let n = name.clone();
    match std::panic::catch_unwind(move || open_checked(&n, bytes)) {
        Ok(r) => r,
        Err(_) => Err(corrupt(
            &name,
            "the MaxMind DB reader panicked while verifying the file",
        )),
    }
}

/// Full verification pass with `maxminddb`'s verifier: metadata, every
/// search-tree node reachable from the root (cycles and out-of-range records),
/// the 16-byte separator and every referenced data record, with bounded work.
///
/// The verifier also insists on a non-empty `description` map and
/// `database_type`, which real databases do not always have (the
/// ip-location-db files carry an empty description). Those two are cosmetic:
/// for such a file the verifier runs on a copy whose metadata map is
/// re-encoded with placeholders; tree, separator and data bytes are identical.
fn verify(name: &str, bytes: &[u8]) -> Result<(), GeoError> {
    let reader = Reader::from_source(bytes).map_err(|e| corrupt(name, e))?;
    let md = reader.metadata();
    if !md.description.is_empty() && !md.database_type.is_empty() {
        return reader.verify().map_err(|e| corrupt(name, e));
    }
    let marker = b"\xAB\xCD\xEFMaxMind.com";
    let start = bytes
        .windows(marker.len())
        .rposition(|w| w == marker)
        .ok_or_else(|| corrupt(name, "no metadata marker"))?
        + marker.len();
    let mut patched = bytes.get(..start).unwrap_or_default().to_vec();
    meta_enc::metadata(md, &mut patched);
    let copy = Reader::from_source(patched).map_err(|e| corrupt(name, e))?;
    copy.verify().map_err(|e| corrupt(name, e))
}

/// Just enough of the MaxMind DB data encoding to re-encode a metadata map.
mod meta_enc {
    use maxminddb::Metadata;

    fn control(ty: u8, size: usize, out: &mut Vec<u8>) {
        let (bits, extra): (u8, Vec<u8>) = if size < 29 {
            (size as u8, vec![])
        } else if size < 285 {
            (29, vec![(size - 29) as u8])
        } else if size < 65_821 {
            (30, ((size - 285) as u16).to_be_bytes().to_vec())
        } else {
            let s = ((size - 65_821) as u32).min(0x00ff_ffff).to_be_bytes();
            (31, s[1..].to_vec())
        };
        if ty <= 7 {
            out.push((ty << 5) | bits);
        } else {
            out.push(bits);
            out.push(ty - 7);
        }
        out.extend_from_slice(&extra);
    }

    fn string(s: &str, out: &mut Vec<u8>) {
        control(2, s.len(), out);
        out.extend_from_slice(s.as_bytes());
    }

    fn uint(ty: u8, n: u64, out: &mut Vec<u8>) {
        let b = n.to_be_bytes();
        let skip = b.iter().take_while(|&&x| x == 0).count();
        let payload = b.get(skip..).unwrap_or_default();
        control(ty, payload.len(), out);
        out.extend_from_slice(payload);
    }

    pub(super) fn metadata(md: &Metadata, out: &mut Vec<u8>) {
        control(7, 9, out);
        string("binary_format_major_version", out);
        uint(5, u64::from(md.binary_format_major_version), out);
        string("binary_format_minor_version", out);
        uint(5, u64::from(md.binary_format_minor_version), out);
        string("build_epoch", out);
        uint(9, md.build_epoch, out);
        string("database_type", out);
        string(
            if md.database_type.is_empty() {
                "unknown"
            } else {
                &md.database_type
            },
            out,
        );
        string("description", out);
        if md.description.is_empty() {
            control(7, 1, out);
            string("en", out);
            string("-", out);
        } else {
            control(7, md.description.len(), out);
            for (k, v) in &md.description {
                string(k, out);
                string(v, out);
            }
        }
        string("ip_version", out);
        uint(5, u64::from(md.ip_version), out);
        string("languages", out);
        control(11, md.languages.len(), out);
        for l in &md.languages {
            string(l, out);
        }
        string("node_count", out);
        uint(6, u64::from(md.node_count), out);
        string("record_size", out);
        uint(5, u64::from(md.record_size), out);
    }
}

fn open_checked(name: &str, bytes: Vec<u8>) -> Result<Db, GeoError> {
    verify(name, &bytes)?;
    let bytes: Arc<[u8]> = Arc::from(bytes);
    let reader = Reader::from_source(Arc::clone(&bytes)).map_err(|e| corrupt(name, e))?;
    let md = reader.metadata();
    let description = md
        .description
        .get("en")
        .or_else(|| md.description.values().next())
        .filter(|d| !d.is_empty())
        .cloned();
    let mut records: FxHashMap<usize, Entry> = FxHashMap::default();
    let mut seen = Provides::default();
    // Aliased networks (::ffff:0:0/96, 2002::/16) lead to the same IPv4
    // subtree, so the default walk reaches every record a lookup can reach.
    let iter = reader
        .networks(WithinOptions::default())
        .map_err(|e| corrupt(name, e))?;
    for item in iter {
        let res = item.map_err(|e| corrupt(name, e))?;
        let Some(off) = res.offset() else { continue };
        if records.contains_key(&off) {
            continue;
        }
        if records.len() >= MAX_RECORDS {
            return Err(GeoError::Unsupported {
                path: name.to_string(),
                reason: format!("more than {MAX_RECORDS} distinct data records"),
            });
        }
        let rec: Rec = res
            .decode()
            .map_err(|e| corrupt(name, format!("data record at offset {off}: {e}")))?
            .ok_or_else(|| corrupt(name, format!("data record at offset {off} is missing")))?;
        let e = Entry {
            country: rec
                .country
                .and_then(|c| c.iso_code)
                .or(rec.country_code)
                .and_then(CountryCode::from_db),
            registered: rec
                .registered_country
                .and_then(|c| c.iso_code)
                .and_then(CountryCode::from_db),
            asn: rec.autonomous_system_number,
            as_org: match rec.autonomous_system_number {
                Some(_) => rec.autonomous_system_organization.map(Arc::from),
                None => None,
            },
        };
        seen.country |= e.country.is_some();
        seen.registered_country |= e.registered.is_some();
        seen.asn |= e.asn.is_some();
        records.insert(off, e);
    }
    let t = md.database_type.to_ascii_lowercase();
    let by_type_country = t.contains("country") || t.contains("city") || t.contains("enterprise");
    let by_type_asn = t.contains("asn") || t.contains("isp");
    let provides = Provides {
        country: seen.country || by_type_country,
        // Only MaxMind's own Country/City/Enterprise schemas carry
        // registered_country; for other databases trust the records.
        registered_country: seen.registered_country
            || (by_type_country && (t.starts_with("geoip2") || t.starts_with("geolite2"))),
        asn: seen.asn || by_type_asn,
    };
    if !(provides.country || provides.registered_country || provides.asn) {
        return Err(GeoError::Unsupported {
            path: name.to_string(),
            reason: format!(
                "database type `{}` has no country, registered_country or autonomous_system_number data",
                md.database_type
            ),
        });
    }
    let meta = DbMeta {
        name: name.to_string(),
        database_type: md.database_type.clone(),
        build_epoch: md.build_epoch,
        ip_version: md.ip_version,
        record_size: md.record_size,
        node_count: md.node_count,
        description,
        provides,
    };
    let tree = Tree::new(bytes, meta.node_count, meta.record_size, meta.ip_version);
    Ok(Db {
        meta,
        reader,
        tree,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geodb_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<GeoDb>();
    }

    #[test]
    fn empty_knows_nothing() {
        let g = GeoDb::empty();
        let i = g.lookup("198.51.100.1".parse().expect("ip"));
        assert_eq!(i, GeoInfo::unknown(AddressScope::Public));
        assert!(g.databases().is_empty());
        assert!(g.ranges_by_country(GeoField::Location).is_empty());
    }

    #[test]
    fn garbage_is_refused_with_name() {
        let e = GeoDb::from_sources(vec![("junk.mmdb".into(), vec![0u8; 100])]).expect_err("junk");
        assert!(e.to_string().contains("junk.mmdb"), "{e}");
        let e = GeoDb::open(&["/nonexistent/x.mmdb"]).expect_err("missing");
        assert!(matches!(e, GeoError::Io { .. }));
        assert!(e.to_string().contains("/nonexistent/x.mmdb"), "{e}");
    }
}

#[cfg(test)]
mod tree_tests {
    use super::*;
    use geofence_testkit::mmdb::{ip_location_db_country, MmdbBuilder, Value};
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The direct tree walk gives the same data offset as maxminddb's lookup,
    /// for every record size and both IP versions.
    fn same_as_reader(bytes: Vec<u8>, ips: &[IpAddr]) {
        let db = GeoDb::from_sources(vec![("t.mmdb".into(), bytes)]).expect("open");
        let d = &db.dbs[0];
        for &ip in ips {
            let want = match (ip, d.meta.ip_version) {
                (IpAddr::V6(_), 4) => None,
                _ => d.reader.lookup(ip).expect("lookup").offset(),
            };
            assert_eq!(d.tree.lookup(ip), want, "{ip}");
        }
    }

    fn random_ips(n: usize) -> Vec<IpAddr> {
        let mut x: u64 = 0xdead_beef_cafe_f00d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|i| match i % 4 {
                3 => IpAddr::V6(Ipv6Addr::from(
                    (0x2u128 << 124) | (u128::from(next()) << 60 >> 4) | u128::from(next() as u32),
                )),
                0 => IpAddr::V4(Ipv4Addr::from(next() as u32)),
                1 => IpAddr::V4(Ipv4Addr::from(0xc633_6400 | (next() as u32 & 0x1ff))),
                _ => IpAddr::V6(Ipv6Addr::from(
                    (0x2001_0db8u128 << 96) | (u128::from(next()) << 32 >> (next() % 64)),
                )),
            })
            .collect()
    }

    #[test]
    fn tree_walk_matches_maxminddb() {
        let ips = random_ips(20_000);
        for rs in [24u16, 28, 32] {
            let b = ip_location_db_country(&[
                ("0.0.0.0/2", "AA"),
                ("198.51.100.0/24", "DE"),
                ("198.51.100.128/26", "FR"),
                ("198.51.101.1", "NL"),
                ("2001:db8::/32", "JP"),
                ("2001:db8:8000::/33", "KR"),
                ("2001:db8:1234:5678::/64", "CN"),
            ])
            .record_size(rs);
            same_as_reader(b.to_bytes(), &ips);
            let mut v4 = MmdbBuilder::new("x-country", 4).record_size(rs);
            v4.insert(
                "198.51.100.0/23",
                Value::map([("country_code", Value::str("DE"))]),
            )
            .insert(
                "128.0.0.0/1",
                Value::map([("country_code", Value::str("US"))]),
            );
            same_as_reader(v4.to_bytes(), &ips);
        }
        // A whole-space record: terminal before the jump table's 16 bits.
        let mut all = MmdbBuilder::new("x-country", 6);
        all.insert("::/0", Value::map([("country_code", Value::str("DE"))]));
        same_as_reader(all.to_bytes(), &ips);
    }

    #[test]
    fn tree_walk_matches_maxminddb_on_real_dbs() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/geo");
        let files = [
            "geo-whois-asn-country.mmdb",
            "maxmind-test/GeoIP2-Country-Test.mmdb",
            "maxmind-test/GeoLite2-ASN-Test.mmdb",
            "maxmind-test/GeoLite2-City-Test.mmdb",
        ];
        let mut ips = random_ips(60_000);
        ips.extend(
            [
                "1.1.1.1",
                "114.114.114.114",
                "81.2.69.160",
                "2a02:cf40::1",
                "2001:218::1",
            ]
            .iter()
            .map(|s| s.parse::<IpAddr>().expect("ip")),
        );
        for f in files {
            let p = format!("{dir}/{f}");
            let Ok(bytes) = std::fs::read(&p) else {
                geofence_testkit::skip(format_args!("{p} is absent"));
                continue;
            };
            same_as_reader(bytes, &ips);
        }
    }
}
