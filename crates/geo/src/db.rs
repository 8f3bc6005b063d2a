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
    reader: Reader<Vec<u8>>,
    /// Data-section offset -> decoded record (every record reachable from the tree).
    records: FxHashMap<usize, Entry>,
}

impl Db {
    /// The record for `ip`, which must not be an IPv4-mapped IPv6 address.
    #[inline]
    fn entry(&self, ip: IpAddr) -> Option<&Entry> {
        if ip.is_ipv6() && self.meta.ip_version == 4 {
            return None;
        }
        let off = self.reader.lookup(ip).ok()?.offset()?;
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
        out
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
        out
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
    let reader = Reader::from_source(bytes).map_err(|e| corrupt(name, e))?;
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
    Ok(Db {
        meta,
        reader,
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
