//! The compiled signature database: [`AppDef`]s turned into immutable lookup
//! structures for the hot path.
//!
//! Built once (from the built-in `config/apps.d/*.toml` compiled into the
//! binary, plus admin files), then shared read-only between threads. Every
//! lookup is allocation-free:
//!
//! * [`SignatureDb::match_host`]: suffix match on label boundaries, longest
//!   suffix wins, case-insensitive, trailing dot accepted, `=name` entries
//!   match the exact name only.
//! * [`SignatureDb::match_ip`]: disjoint elementary intervals per address
//!   family, binary search; where ranges of different apps overlap the most
//!   specific (smallest) range wins, and an app whose ranges are broader than
//!   the app (`ranges_need_ports`) only matches on its own ports (then the
//!   next less specific range is tried).
//! * [`SignatureDb::match_port`]: the weakest hint. Only port specs at most
//!   [`MAX_HINT_SPAN`] ports wide take part (the wide media ranges some
//!   vendors publish stay for the static layer), a port names an app only
//!   when no other app claims it, and the well-known shared ports in
//!   [`GENERIC_PORTS`] never name an app.
//!
//! No I/O except the explicit [`SignatureDb::load_dir`].

use crate::app::{AppId, Category, Method};
use crate::sigs::{AppDef, PortSpec, SignatureFile, Transport};
use geofence_geo::IpRanges;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::Path;

/// Names of the built-in payload matchers (implemented in
/// [`crate::payload::MATCHERS`]; a test keeps the two in sync);
/// `payload = [...]` entries must be one of these.
pub const KNOWN_MATCHERS: &[&str] = &[
    "zoom-sfu",
    "zoom-p2p",
    "discord-ip-discovery",
    "discord-keepalive",
    "dingtalk",
    "agora-sdrtn",
    "telegram-voip",
    "telegram-wrapper",
    "whatsapp-noise",
    "line-call",
];

/// Port specs wider than this many ports never count as a port hint.
pub const MAX_HINT_SPAN: u32 = 100;

/// Ports shared by far too many services to name any app by port alone
/// (DNS, HTTP(S), NTP, STUN/TURN, XMPP, alternate HTTP).
pub const GENERIC_PORTS: &[u16] = &[53, 80, 123, 443, 3478, 3479, 5222, 5349, 8080, 8443];

/// The built-in signature files, compiled in. Every `*.toml` in
/// `config/apps.d/` must be listed here (a test checks it).
pub const BUILTIN_FILES: &[(&str, &str)] = &[
    (
        "agora.toml",
        include_str!("../../../config/apps.d/agora.toml"),
    ),
    (
        "chime.toml",
        include_str!("../../../config/apps.d/chime.toml"),
    ),
    (
        "dingtalk.toml",
        include_str!("../../../config/apps.d/dingtalk.toml"),
    ),
    (
        "discord.toml",
        include_str!("../../../config/apps.d/discord.toml"),
    ),
    (
        "facetime.toml",
        include_str!("../../../config/apps.d/facetime.toml"),
    ),
    (
        "goto.toml",
        include_str!("../../../config/apps.d/goto.toml"),
    ),
    (
        "jitsi.toml",
        include_str!("../../../config/apps.d/jitsi.toml"),
    ),
    (
        "lark.toml",
        include_str!("../../../config/apps.d/lark.toml"),
    ),
    (
        "line.toml",
        include_str!("../../../config/apps.d/line.toml"),
    ),
    (
        "meet.toml",
        include_str!("../../../config/apps.d/meet.toml"),
    ),
    (
        "meta-calls.toml",
        include_str!("../../../config/apps.d/meta-calls.toml"),
    ),
    (
        "ringcentral.toml",
        include_str!("../../../config/apps.d/ringcentral.toml"),
    ),
    (
        "signal.toml",
        include_str!("../../../config/apps.d/signal.toml"),
    ),
    (
        "teams.toml",
        include_str!("../../../config/apps.d/teams.toml"),
    ),
    (
        "telegram.toml",
        include_str!("../../../config/apps.d/telegram.toml"),
    ),
    (
        "tencent-meeting.toml",
        include_str!("../../../config/apps.d/tencent-meeting.toml"),
    ),
    (
        "viber.toml",
        include_str!("../../../config/apps.d/viber.toml"),
    ),
    (
        "webex.toml",
        include_str!("../../../config/apps.d/webex.toml"),
    ),
    (
        "wechat.toml",
        include_str!("../../../config/apps.d/wechat.toml"),
    ),
    (
        "whatsapp.toml",
        include_str!("../../../config/apps.d/whatsapp.toml"),
    ),
    (
        "zoho-meeting.toml",
        include_str!("../../../config/apps.d/zoho-meeting.toml"),
    ),
    (
        "zoom.toml",
        include_str!("../../../config/apps.d/zoom.toml"),
    ),
];

/// Longest host name we look at (DNS limit).
const MAX_HOST: usize = 253;

/// A handle to one app of a [`SignatureDb`] (index into [`SignatureDb::apps`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct AppRef(pub u16);

/// Identity of one compiled app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppInfo {
    pub id: AppId,
    /// Human name (the id when the definition has none).
    pub name: String,
    pub category: Category,
}

/// Why signatures could not be loaded or compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// A problem at a known place in a file.
    #[error("{file}:{line}:{col}: {message}")]
    At {
        file: String,
        line: usize,
        col: usize,
        message: String,
    },
    /// A definition that does not validate (no file position known).
    #[error("app `{app}`: {message}")]
    Invalid { app: String, message: String },
    /// A file or directory that could not be read.
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

/// A byte pattern ready to test against payloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledPattern {
    pub proto: Transport,
    pub offset: usize,
    pub bytes: Vec<u8>,
    pub min_len: usize,
    pub len: Option<usize>,
}

impl CompiledPattern {
    /// True when `payload` (of transport `proto`) carries the pattern.
    pub fn matches(&self, proto: Transport, payload: &[u8]) -> bool {
        if proto != self.proto || payload.len() < self.min_len {
            return false;
        }
        if let Some(l) = self.len {
            if payload.len() != l {
                return false;
            }
        }
        let end = match self.offset.checked_add(self.bytes.len()) {
            Some(e) => e,
            None => return false,
        };
        payload.get(self.offset..end) == Some(self.bytes.as_slice())
    }
}

/// One disjoint address interval and the apps whose ranges cover it, most
/// specific first (`cands[start..start + len]`).
#[derive(Debug, Clone, Copy)]
struct Segment {
    lo: u128,
    hi: u128,
    start: u32,
    len: u32,
}

#[derive(Debug, Default)]
struct RangeTable {
    segs: Vec<Segment>,
    cands: Vec<AppRef>,
}

impl RangeTable {
    /// `ranges`: (lo, hi, app) inclusive, any order, may overlap.
    fn build(ranges: &[(u128, u128, AppRef)]) -> RangeTable {
        let mut bounds: Vec<u128> = Vec::with_capacity(ranges.len() * 2);
        for &(lo, hi, _) in ranges {
            bounds.push(lo);
            if let Some(n) = hi.checked_add(1) {
                bounds.push(n);
            }
        }
        bounds.sort_unstable();
        bounds.dedup();
        let mut t = RangeTable::default();
        for (i, &lo) in bounds.iter().enumerate() {
            let hi = match bounds.get(i + 1) {
                Some(&n) => n - 1,
                None => u128::MAX,
            };
            let mut here: Vec<(u128, AppRef)> = ranges
                .iter()
                .filter(|&&(a, b, _)| a <= lo && lo <= b)
                .map(|&(a, b, app)| (b - a, app))
                .collect();
            if here.is_empty() {
                continue;
            }
            here.sort_by_key(|&(size, app)| (size, app.0));
            let mut apps: Vec<AppRef> = Vec::with_capacity(here.len());
            for (_, app) in here {
                if !apps.contains(&app) {
                    apps.push(app);
                }
            }
            // Merge with the previous segment when contiguous and identical.
            if let Some(prev) = t.segs.last_mut() {
                let s = prev.start as usize;
                let same = t.cands.get(s..s + prev.len as usize) == Some(apps.as_slice());
                if same && prev.hi.checked_add(1) == Some(lo) {
                    prev.hi = hi;
                    continue;
                }
            }
            t.segs.push(Segment {
                lo,
                hi,
                start: t.cands.len() as u32,
                len: apps.len() as u32,
            });
            t.cands.extend(apps);
        }
        t
    }

    fn lookup(&self, x: u128) -> &[AppRef] {
        let i = self.segs.partition_point(|s| s.lo <= x);
        if i == 0 {
            return &[];
        }
        match self.segs.get(i - 1) {
            Some(s) if s.hi >= x => {
                let a = s.start as usize;
                self.cands.get(a..a + s.len as usize).unwrap_or(&[])
            }
            _ => &[],
        }
    }
}

/// Compiled, immutable signatures of every known app. `Send + Sync`.
#[derive(Debug)]
pub struct SignatureDb {
    infos: Vec<AppInfo>,
    unknown: AppInfo,
    /// Per app: its ports as (proto, lo, hi), for `ranges_need_ports`.
    app_ports: Vec<Vec<(Transport, u16, u16)>>,
    need_ports: Vec<bool>,
    static_ips: Vec<IpRanges>,
    static_ports: Vec<Vec<PortSpec>>,
    suffixes: FxHashMap<Box<str>, AppRef>,
    /// Most labels of any suffix entry: longer names skip their leading
    /// labels instead of probing them.
    max_labels: usize,
    exact: FxHashMap<Box<str>, AppRef>,
    v4: RangeTable,
    v6: RangeTable,
    asns: FxHashMap<u32, Vec<AppRef>>,
    /// Disjoint port intervals that name exactly one app: [tcp, udp].
    port_hints: [Vec<(u16, u16, AppRef)>; 2],
    stun_attrs: FxHashMap<u16, AppRef>,
    stun_types: FxHashMap<u16, AppRef>,
    /// Lower-case needles, longest first.
    stun_realms: Vec<(String, AppRef)>,
    stun_software: Vec<(String, AppRef)>,
    payload: Vec<(AppRef, String)>,
    patterns: Vec<(AppRef, CompiledPattern)>,
}

/// Which part of a definition a validation problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    NeedPorts,
    Domain(usize),
    Cidr(usize),
    Asn(usize),
    Port(usize),
    Payload(usize),
    Pattern(usize),
    Stun,
}

fn proto_index(p: Transport) -> usize {
    match p {
        Transport::Tcp => 0,
        Transport::Udp => 1,
    }
}

/// A lower-case host name (labels of `a-z0-9-_`, 1-63 bytes, no leading or
/// trailing `-`), optionally prefixed by `=` for an exact-name entry.
fn check_domain(d: &str) -> Result<(), String> {
    let name = d.strip_prefix('=').unwrap_or(d);
    if name.is_empty() || name.len() > MAX_HOST {
        return Err(format!(
            "`{d}` is not a host name (empty or longer than 253 bytes)"
        ));
    }
    for label in name.split('.') {
        let b = label.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
            && b.first() != Some(&b'-')
            && b.last() != Some(&b'-');
        if !ok {
            return Err(format!(
                "`{d}` is not a lower-case host name (labels of a-z, 0-9, '-', 1 to 63 characters, no trailing dot)"
            ));
        }
    }
    Ok(())
}

/// Parses a CIDR and insists the host bits are zero (`10.0.0.1/8` is
/// almost always a typo).
fn check_cidr(c: &str) -> Result<(), String> {
    let r = IpRanges::from_cidrs(&[c]).map_err(|e| e.to_string())?;
    let (addr, _) = c.split_once('/').unwrap_or((c, ""));
    let ip: IpAddr = addr.parse().map_err(|_| format!("`{c}` is not a CIDR"))?;
    let lo = match ip {
        IpAddr::V4(a) => r.v4().first().map(|x| u128::from(x.0)) == Some(u128::from(u32::from(a))),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(_) => true,
            None => r.v6().first().map(|x| x.0) == Some(u128::from(a)),
        },
    };
    if lo {
        Ok(())
    } else {
        Err(format!("`{c}` has host bits set below its prefix length"))
    }
}

fn validate(def: &AppDef) -> Result<(), (Field, String)> {
    for (i, d) in def.domains.iter().enumerate() {
        check_domain(d).map_err(|m| (Field::Domain(i), m))?;
    }
    for (i, c) in def.cidrs.iter().enumerate() {
        check_cidr(c).map_err(|m| (Field::Cidr(i), m))?;
    }
    for (i, a) in def.asns.iter().enumerate() {
        if *a == 0 || *a == 23456 || *a == u32::MAX {
            return Err((Field::Asn(i), format!("AS{a} is a reserved ASN")));
        }
    }
    for (i, p) in def.ports.iter().enumerate() {
        if p.range().is_none() {
            return Err((
                Field::Port(i),
                format!("`{}` is not a port or port range (expected e.g. \"3478\" or \"8801-8810\", 1-65535, lo <= hi)", p.ports),
            ));
        }
    }
    if def.ranges_need_ports && def.ports.is_empty() {
        return Err((
            Field::NeedPorts,
            "ranges_need_ports is set but no ports are listed".to_string(),
        ));
    }
    for (i, m) in def.payload.iter().enumerate() {
        if !KNOWN_MATCHERS.contains(&m.as_str()) {
            return Err((
                Field::Payload(i),
                format!(
                    "unknown payload matcher `{m}`, expected one of {}",
                    KNOWN_MATCHERS.join(", ")
                ),
            ));
        }
    }
    for (i, p) in def.patterns.iter().enumerate() {
        let bytes = p.bytes().ok_or_else(|| {
            (
                Field::Pattern(i),
                format!("`{}` is not an even-length hex string", p.hex),
            )
        })?;
        let need = p.offset.saturating_add(bytes.len());
        if let Some(l) = p.len {
            if need > l || p.min_len > l {
                return Err((
                    Field::Pattern(i),
                    format!("pattern needs {need} bytes but len = {l}"),
                ));
            }
        }
    }
    if def
        .stun
        .realms
        .iter()
        .chain(def.stun.software.iter())
        .any(|s| s.trim().is_empty())
    {
        return Err((
            Field::Stun,
            "empty STUN realm or software string".to_string(),
        ));
    }
    Ok(())
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut off = offset.min(text.len());
    while off > 0 && !text.is_char_boundary(off) {
        off -= 1;
    }
    let before = text.get(..off).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let col = match before.rfind('\n') {
        Some(nl) => before.get(nl + 1..).unwrap_or("").chars().count() + 1,
        None => before.chars().count() + 1,
    };
    (line, col)
}

/// Mirror of the schema that only records where things are.
#[derive(Deserialize)]
struct SpanFile {
    #[serde(default)]
    app: Vec<toml::Spanned<SpanApp>>,
}

#[derive(Deserialize)]
struct SpanApp {
    #[serde(default)]
    domains: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    cidrs: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    asns: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    ports: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    payload: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    patterns: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    stun: Option<toml::Spanned<toml::Value>>,
    #[serde(default)]
    ranges_need_ports: Option<toml::Spanned<toml::Value>>,
}

fn span_of(app: &toml::Spanned<SpanApp>, field: Field) -> usize {
    let a = app.get_ref();
    let pick = |v: &Vec<toml::Spanned<toml::Value>>, i: usize| v.get(i).map(|s| s.span().start);
    let found = match field {
        Field::NeedPorts => a.ranges_need_ports.as_ref().map(|s| s.span().start),
        Field::Domain(i) => pick(&a.domains, i),
        Field::Cidr(i) => pick(&a.cidrs, i),
        Field::Asn(i) => pick(&a.asns, i),
        Field::Port(i) => pick(&a.ports, i),
        Field::Payload(i) => pick(&a.payload, i),
        Field::Pattern(i) => pick(&a.patterns, i),
        Field::Stun => a.stun.as_ref().map(|s| s.span().start),
    };
    found.unwrap_or(app.span().start)
}

impl SignatureDb {
    /// The built-in signatures (`config/apps.d`, compiled in). Never fails: a
    /// test guarantees the built-ins compile; were one broken, the others
    /// would still load.
    pub fn builtin() -> SignatureDb {
        let defs = SignatureDb::builtin_defs();
        match SignatureDb::from_defs(defs.clone()) {
            Ok(db) => db,
            Err(_) => {
                let good: Vec<AppDef> = defs.into_iter().filter(|d| validate(d).is_ok()).collect();
                SignatureDb::from_defs(good).unwrap_or_else(|_| SignatureDb::empty())
            }
        }
    }

    /// The parsed built-in definitions, in file-name order (files that do not
    /// parse are skipped; a test guarantees there are none).
    pub fn builtin_defs() -> Vec<AppDef> {
        let mut out = Vec::new();
        for (name, text) in BUILTIN_FILES {
            if let Ok(mut defs) = SignatureDb::parse_file(name, text) {
                out.append(&mut defs);
            }
        }
        out
    }

    fn empty() -> SignatureDb {
        SignatureDb {
            infos: Vec::new(),
            unknown: unknown_info(),
            app_ports: Vec::new(),
            need_ports: Vec::new(),
            static_ips: Vec::new(),
            static_ports: Vec::new(),
            suffixes: FxHashMap::default(),
            max_labels: 0,
            exact: FxHashMap::default(),
            v4: RangeTable::default(),
            v6: RangeTable::default(),
            asns: FxHashMap::default(),
            port_hints: [Vec::new(), Vec::new()],
            stun_attrs: FxHashMap::default(),
            stun_types: FxHashMap::default(),
            stun_realms: Vec::new(),
            stun_software: Vec::new(),
            payload: Vec::new(),
            patterns: Vec::new(),
        }
    }

    /// Parses one signature file (any number of `[[app]]` tables) and
    /// validates every definition; errors carry `file:line:col`.
    pub fn parse_file(name: &str, text: &str) -> Result<Vec<AppDef>, SigError> {
        let at = |off: usize, message: String| {
            let (line, col) = line_col(text, off);
            SigError::At {
                file: name.to_string(),
                line,
                col,
                message,
            }
        };
        let file: SignatureFile = toml::from_str(text).map_err(|e| {
            let off = e.span().map(|s| s.start).unwrap_or(0);
            at(off, e.message().trim().to_string())
        })?;
        for (i, def) in file.apps.iter().enumerate() {
            if let Err((field, message)) = validate(def) {
                let off = match toml::from_str::<SpanFile>(text) {
                    Ok(spans) => spans.app.get(i).map(|a| span_of(a, field)).unwrap_or(0),
                    Err(_) => 0,
                };
                return Err(at(off, format!("app `{}`: {message}", def.id)));
            }
        }
        Ok(file.apps)
    }

    /// Reads every `*.toml` file of `dir`, sorted by file name.
    pub fn load_dir(dir: &Path) -> Result<Vec<AppDef>, SigError> {
        let io = |p: &Path, e: std::io::Error| SigError::Io {
            path: p.display().to_string(),
            message: e.to_string(),
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let path = entry.map_err(|e| io(dir, e))?.path();
            if path.extension().and_then(|x| x.to_str()) == Some("toml") && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        let mut out = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
            out.append(&mut SignatureDb::parse_file(
                &path.display().to_string(),
                &text,
            )?);
        }
        Ok(out)
    }

    /// Compiles definitions. A later definition with the same id replaces an
    /// earlier one (admin overrides) and keeps the earlier one's position.
    /// Where two apps claim the same domain, STUN value or exact port, the
    /// later definition wins.
    pub fn from_defs(defs: Vec<AppDef>) -> Result<SignatureDb, SigError> {
        let mut uniq: Vec<AppDef> = Vec::with_capacity(defs.len());
        for def in defs {
            if let Err((_, message)) = validate(&def) {
                return Err(SigError::Invalid {
                    app: def.id.to_string(),
                    message,
                });
            }
            match uniq.iter_mut().find(|d| d.id == def.id) {
                Some(slot) => *slot = def,
                None => uniq.push(def),
            }
        }
        if uniq.len() > usize::from(u16::MAX) {
            return Err(SigError::Invalid {
                app: "*".to_string(),
                message: format!("too many apps ({})", uniq.len()),
            });
        }
        let mut db = SignatureDb::empty();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut port_claims: [Vec<(u16, u16, AppRef)>; 2] = [Vec::new(), Vec::new()];
        for (i, def) in uniq.iter().enumerate() {
            let r = AppRef(i as u16);
            db.infos.push(AppInfo {
                id: def.id.clone(),
                name: def.name.clone().unwrap_or_else(|| def.id.to_string()),
                category: def.category,
            });
            for d in &def.domains {
                match d.strip_prefix('=') {
                    Some(name) => db.exact.insert(name.into(), r),
                    None => db.suffixes.insert(d.as_str().into(), r),
                };
            }
            let ranges = IpRanges::from_cidrs(&def.cidrs).map_err(|e| SigError::Invalid {
                app: def.id.to_string(),
                message: e.to_string(),
            })?;
            v4.extend(
                ranges
                    .v4()
                    .iter()
                    .map(|&(a, b)| (u128::from(a), u128::from(b), r)),
            );
            v6.extend(ranges.v6().iter().map(|&(a, b)| (a, b, r)));
            db.static_ips.push(ranges);
            for a in &def.asns {
                let e = db.asns.entry(*a).or_default();
                if !e.contains(&r) {
                    e.push(r);
                }
            }
            let mut ports = Vec::new();
            for p in &def.ports {
                if let Some((lo, hi)) = p.range() {
                    ports.push((p.proto, lo, hi));
                    if u32::from(hi) - u32::from(lo) < MAX_HINT_SPAN {
                        port_claims[proto_index(p.proto)].push((lo, hi, r));
                    }
                }
            }
            db.app_ports.push(ports);
            db.static_ports.push(def.ports.clone());
            db.need_ports.push(def.ranges_need_ports);
            for a in &def.stun.attributes {
                db.stun_attrs.insert(*a, r);
            }
            for t in &def.stun.message_types {
                db.stun_types.insert(*t, r);
            }
            for s in &def.stun.realms {
                db.stun_realms.push((s.trim().to_ascii_lowercase(), r));
            }
            for s in &def.stun.software {
                db.stun_software.push((s.trim().to_ascii_lowercase(), r));
            }
            for m in &def.payload {
                db.payload.push((r, m.clone()));
            }
            for p in &def.patterns {
                if let Some(bytes) = p.bytes() {
                    db.patterns.push((
                        r,
                        CompiledPattern {
                            proto: p.proto,
                            offset: p.offset,
                            bytes,
                            min_len: p.min_len,
                            len: p.len,
                        },
                    ));
                }
            }
        }
        // Longest needle first so the most specific realm wins; later apps
        // first among equals.
        let by_len = |v: &mut Vec<(String, AppRef)>| {
            v.reverse();
            v.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        };
        db.max_labels = db
            .suffixes
            .keys()
            .map(|k| k.split('.').count())
            .max()
            .unwrap_or(0);
        by_len(&mut db.stun_realms);
        by_len(&mut db.stun_software);
        db.v4 = RangeTable::build(&v4);
        db.v6 = RangeTable::build(&v6);
        for (k, claims) in port_claims.iter().enumerate() {
            if let Some(slot) = db.port_hints.get_mut(k) {
                *slot = unique_ports(claims);
            }
        }
        Ok(db)
    }

    /// Every compiled app, indexed by `AppRef.0`.
    pub fn apps(&self) -> &[AppInfo] {
        &self.infos
    }

    /// The app behind `r` (a placeholder `unknown` app for a foreign ref).
    pub fn app(&self, r: AppRef) -> &AppInfo {
        self.infos.get(usize::from(r.0)).unwrap_or(&self.unknown)
    }

    /// The app with id `id`.
    pub fn find(&self, id: &str) -> Option<AppRef> {
        self.infos
            .iter()
            .position(|a| a.id.as_str() == id)
            .map(|i| AppRef(i as u16))
    }

    /// The app owning `host` (SNI, DNS name): the longest listed suffix on a
    /// label boundary wins; `=name` entries match only `name` itself.
    /// Case-insensitive, a trailing dot is ignored, no allocation.
    pub fn match_host(&self, host: &str) -> Option<AppRef> {
        let host = host.strip_suffix('.').unwrap_or(host);
        let src = host.as_bytes();
        if src.is_empty() || src.len() > MAX_HOST {
            return None;
        }
        let mut buf = [0u8; MAX_HOST];
        let dst = buf.get_mut(..src.len())?;
        dst.copy_from_slice(src);
        dst.make_ascii_lowercase();
        // Lower-casing ASCII bytes keeps UTF-8 valid.
        let name = std::str::from_utf8(dst).ok()?;
        if !self.exact.is_empty() {
            if let Some(r) = self.exact.get(name) {
                return Some(*r);
            }
        }
        // Skip leading labels no suffix entry is long enough to cover.
        let labels = name.bytes().filter(|&c| c == b'.').count() + 1;
        let mut rest = name;
        for _ in self.max_labels..labels {
            match rest.split_once('.') {
                Some((_, tail)) => rest = tail,
                None => return None,
            }
        }
        loop {
            if let Some(r) = self.suffixes.get(rest) {
                return Some(*r);
            }
            match rest.split_once('.') {
                Some((_, tail)) if !tail.is_empty() => rest = tail,
                _ => return None,
            }
        }
    }

    fn port_ok(&self, app: AppRef, proto: Transport, port: u16) -> bool {
        if !self
            .need_ports
            .get(usize::from(app.0))
            .copied()
            .unwrap_or(false)
        {
            return true;
        }
        self.app_ports
            .get(usize::from(app.0))
            .map(|ps| {
                ps.iter()
                    .any(|&(p, lo, hi)| p == proto && lo <= port && port <= hi)
            })
            .unwrap_or(false)
    }

    /// The app whose vendor range holds `ip` (most specific range first;
    /// ranges marked `ranges_need_ports` count only on the app's ports).
    pub fn match_ip(&self, ip: IpAddr, proto: Transport, port: u16) -> Option<(AppRef, Method)> {
        let cands = match ip {
            IpAddr::V4(a) => self.v4.lookup(u128::from(u32::from(a))),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.v4.lookup(u128::from(u32::from(v4))),
                None => self.v6.lookup(u128::from(a)),
            },
        };
        cands
            .iter()
            .find(|&&app| self.port_ok(app, proto, port))
            .map(|&app| (app, Method::IpRange))
    }

    /// The app operating autonomous system `asn` (respects `ranges_need_ports`).
    pub fn match_asn(&self, asn: u32, proto: Transport, port: u16) -> Option<AppRef> {
        self.asns
            .get(&asn)?
            .iter()
            .rev()
            .find(|&&app| self.port_ok(app, proto, port))
            .copied()
    }

    /// The weakest hint: the one app that claims this (narrow, non-generic)
    /// port.
    pub fn match_port(&self, proto: Transport, port: u16) -> Option<AppRef> {
        if GENERIC_PORTS.contains(&port) {
            return None;
        }
        let v = self.port_hints.get(proto_index(proto))?;
        let i = v.partition_point(|&(lo, _, _)| lo <= port);
        match v.get(i.checked_sub(1)?) {
            Some(&(_, hi, app)) if hi >= port => Some(app),
            _ => None,
        }
    }

    /// The app whose vendor STUN attribute type this is.
    pub fn stun_attribute(&self, attr: u16) -> Option<AppRef> {
        self.stun_attrs.get(&attr).copied()
    }

    /// The app whose vendor STUN message type this is.
    pub fn stun_message_type(&self, t: u16) -> Option<AppRef> {
        self.stun_types.get(&t).copied()
    }

    /// The app whose REALM needle occurs in `realm` (case-insensitive).
    pub fn stun_realm(&self, realm: &str) -> Option<AppRef> {
        find_needle(&self.stun_realms, realm)
    }

    /// The app whose SOFTWARE needle occurs in `s` (case-insensitive).
    pub fn stun_software(&self, s: &str) -> Option<AppRef> {
        find_needle(&self.stun_software, s)
    }

    /// (app, payload matcher name) for every `payload = [...]` entry.
    pub fn payload_rules(&self) -> &[(AppRef, String)] {
        &self.payload
    }

    /// Every compiled byte pattern.
    pub fn patterns(&self) -> &[(AppRef, CompiledPattern)] {
        &self.patterns
    }

    /// The app's own ranges and ports for the nftables static layer, and
    /// whether the ranges only count on those ports.
    pub fn static_ranges(&self, app: AppRef) -> (IpRanges, Vec<PortSpec>, bool) {
        let i = usize::from(app.0);
        (
            self.static_ips.get(i).cloned().unwrap_or_default(),
            self.static_ports.get(i).cloned().unwrap_or_default(),
            self.need_ports.get(i).copied().unwrap_or(false),
        )
    }
}

fn unknown_info() -> AppInfo {
    AppInfo {
        // A constant, valid id: this cannot fail.
        id: AppId::new("unknown").expect("`unknown` is a valid app id"),
        name: "unknown".to_string(),
        category: Category::Other,
    }
}

/// Case-insensitive substring search without allocation.
fn find_needle(needles: &[(String, AppRef)], hay: &str) -> Option<AppRef> {
    let h = hay.as_bytes();
    needles
        .iter()
        .find(|(n, _)| {
            let n = n.as_bytes();
            !n.is_empty()
                && h.len() >= n.len()
                && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
        })
        .map(|(_, r)| *r)
}

/// Splits port claims into disjoint intervals and keeps those claimed by
/// exactly one app.
fn unique_ports(claims: &[(u16, u16, AppRef)]) -> Vec<(u16, u16, AppRef)> {
    let mut bounds: Vec<u32> = Vec::new();
    for &(lo, hi, _) in claims {
        bounds.push(u32::from(lo));
        bounds.push(u32::from(hi) + 1);
    }
    bounds.sort_unstable();
    bounds.dedup();
    let mut out: Vec<(u16, u16, AppRef)> = Vec::new();
    for w in bounds.windows(2) {
        let (lo, next) = match w {
            [a, b] => (*a, *b),
            _ => continue,
        };
        let hi = next - 1;
        let mut owner: Option<AppRef> = None;
        let mut shared = false;
        for &(a, b, app) in claims {
            if u32::from(a) <= lo && lo <= u32::from(b) {
                match owner {
                    None => owner = Some(app),
                    Some(o) if o != app => shared = true,
                    _ => {}
                }
            }
        }
        if let (Some(app), false) = (owner, shared) {
            let (lo, hi) = match (u16::try_from(lo), u16::try_from(hi)) {
                (Ok(l), Ok(h)) => (l, h),
                _ => continue,
            };
            match out.last_mut() {
                Some(last) if last.2 == app && u32::from(last.1) + 1 == u32::from(lo) => {
                    last.1 = hi
                }
                _ => out.push((lo, hi, app)),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars() {
        let t = "a\nbé c\nd";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 2), (2, 1));
        // 'c' is at byte 6 (é is two bytes): column 4.
        assert_eq!(line_col(t, 6), (2, 4));
        assert_eq!(line_col(t, 999), (3, 2));
    }

    #[test]
    fn unique_ports_drop_shared() {
        let a = AppRef(0);
        let b = AppRef(1);
        let u = unique_ports(&[(10, 20, a), (15, 30, b), (40, 40, a)]);
        assert_eq!(u, vec![(10, 14, a), (21, 30, b), (40, 40, a)]);
    }

    #[test]
    fn range_table_most_specific_first() {
        let a = AppRef(0);
        let b = AppRef(1);
        let t = RangeTable::build(&[(0, 100, a), (10, 20, b), (u128::MAX - 1, u128::MAX, b)]);
        assert_eq!(t.lookup(5), &[a]);
        assert_eq!(t.lookup(15), &[b, a]);
        assert_eq!(t.lookup(21), &[a]);
        assert_eq!(t.lookup(101), &[] as &[AppRef]);
        assert_eq!(t.lookup(u128::MAX), &[b]);
    }
}
