//! Netlink side: turns a [`Ruleset`] into one nf_tables transaction, sends it
//! in one `sendmsg`, checks every ack, and reads the table back.

use crate::ffi::{self, Attr, Dump, ElemOp, Parsed, RawExpr, RawSet, SetParams, Sock};
use crate::model::DynElement;
use crate::render::{AddrField, ChainHook, ChainKind, Family, KeyType, Ruleset, SetDef, Stmt};
use nftnl::{Batch, Chain, ChainType, MsgType, Policy, ProtoFamily, Rule, Table};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Errors of the netlink side.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("cannot open the netfilter netlink socket (needs CAP_NET_ADMIN): {0}")]
    Socket(io::Error),
    #[error("sending the batch failed: {0}")]
    Send(io::Error),
    #[error("receiving from netlink failed: {0}")]
    Recv(io::Error),
    #[error("the kernel rejected message #{seq} ({what}): {err}; the whole transaction was aborted, the previous ruleset is unchanged")]
    Rejected {
        seq: u32,
        what: String,
        err: io::Error,
    },
    #[error("listing {what} failed: {err}")]
    Dump { what: String, err: io::Error },
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("table inet {0} is not present")]
    NoTable(String),
    #[error("conntrack: {0}")]
    Conntrack(String),
}

/// What `apply` did.
#[derive(Debug, Clone)]
pub struct ApplyReport {
    /// Netlink messages in the transaction (without batch begin/end).
    pub messages: usize,
    pub batch_bytes: usize,
    pub build_time: Duration,
    /// `sendmsg` + kernel commit + reading all acks.
    pub commit_time: Duration,
    /// Dynamic elements carried over into the new table.
    pub kept_dynamic: usize,
    /// Dynamic elements given to keep whose set no longer exists.
    pub dropped_dynamic: usize,
    pub verify: VerifyReport,
    pub verify_time: Duration,
}

/// Read-back comparison of the kernel's table with the intent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub table_present: bool,
    /// Per interval set: name, ranges found (interval-end markers not
    /// counted). Dynamic sets are checked for presence only.
    pub set_elements: Vec<(String, usize)>,
    pub chains: Vec<String>,
    pub rules: usize,
    /// Human-readable differences; empty = kernel matches the intent.
    pub problems: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.table_present && self.problems.is_empty()
    }
}

/// One rule's counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCounter {
    /// The rule comment, e.g. `r0/static/v4 Block Zoom in CN`.
    pub rule: String,
    pub packets: u64,
    pub bytes: u64,
}

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const INET: u16 = libc::NFPROTO_INET as u16;
const SOCK_BUF: usize = 64 << 20;
const RECV_BUF: usize = 1 << 20;

/// Handle on one nftables table (family `inet`) through netlink. Blocking
/// I/O: use it from a dedicated thread or `spawn_blocking` (it is `Send`).
pub struct Nft {
    sock: Sock,
    table: String,
    seq: u32,
    buf: Vec<u8>,
}

fn cstring(s: &str) -> Result<CString, NftError> {
    CString::new(s).map_err(|_| NftError::Invalid(format!("name contains NUL: {s:?}")))
}

/// Iterates complete netlink messages in a datagram: (type, seq, bytes).
pub(crate) fn messages(buf: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while let Some(h) = buf.get(off..off + 16) {
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let ty = u16::from_ne_bytes([h[4], h[5]]);
        let seq = u32::from_ne_bytes([h[8], h[9], h[10], h[11]]);
        if len < 16 {
            break;
        }
        let Some(m) = buf.get(off..off + len) else {
            break;
        };
        out.push((ty, seq, m));
        off += (len + 3) & !3;
    }
    out
}

/// For an NLMSG_ERROR message: (errno as positive number or 0, original seq).
fn error_of(m: &[u8]) -> Option<(i32, u32)> {
    let e = i32::from_ne_bytes(m.get(16..20)?.try_into().ok()?);
    let seq = u32::from_ne_bytes(m.get(28..32)?.try_into().ok()?);
    Some((-e, seq))
}

fn be_bytes_v4(x: u32) -> Vec<u8> {
    x.to_be_bytes().to_vec()
}
fn be_bytes_v6(x: u128) -> Vec<u8> {
    x.to_be_bytes().to_vec()
}

fn meta(key: i32, dreg: u32) -> RawExpr {
    RawExpr {
        name: c"meta",
        attrs: vec![
            (nftnl::nftnl_sys::NFTNL_EXPR_META_KEY, Attr::U32(key as u32)),
            (nftnl::nftnl_sys::NFTNL_EXPR_META_DREG, Attr::U32(dreg)),
        ],
    }
}

fn cmp(op: i32, sreg: u32, data: Vec<u8>) -> RawExpr {
    RawExpr {
        name: c"cmp",
        attrs: vec![
            (nftnl::nftnl_sys::NFTNL_EXPR_CMP_SREG, Attr::U32(sreg)),
            (nftnl::nftnl_sys::NFTNL_EXPR_CMP_OP, Attr::U32(op as u32)),
            (nftnl::nftnl_sys::NFTNL_EXPR_CMP_DATA, Attr::Data(data)),
        ],
    }
}

fn payload(base: i32, offset: u32, len: u32, dreg: u32) -> RawExpr {
    use nftnl::nftnl_sys as s;
    RawExpr {
        name: c"payload",
        attrs: vec![
            (s::NFTNL_EXPR_PAYLOAD_DREG, Attr::U32(dreg)),
            (s::NFTNL_EXPR_PAYLOAD_BASE, Attr::U32(base as u32)),
            (s::NFTNL_EXPR_PAYLOAD_OFFSET, Attr::U32(offset)),
            (s::NFTNL_EXPR_PAYLOAD_LEN, Attr::U32(len)),
        ],
    }
}

fn addr_payload(fam: Family, field: AddrField, dreg: u32) -> RawExpr {
    let off = match (fam, field) {
        (Family::V4, AddrField::Saddr) => 12,
        (Family::V4, AddrField::Daddr) => 16,
        (Family::V6, AddrField::Saddr) => 8,
        (Family::V6, AddrField::Daddr) => 24,
    };
    payload(libc::NFT_PAYLOAD_NETWORK_HEADER, off, fam.addr_len(), dreg)
}

fn lookup(sreg: u32, set: &str, id: u32) -> Result<RawExpr, NftError> {
    use nftnl::nftnl_sys as s;
    Ok(RawExpr {
        name: c"lookup",
        attrs: vec![
            (s::NFTNL_EXPR_LOOKUP_SREG, Attr::U32(sreg)),
            (s::NFTNL_EXPR_LOOKUP_SET, Attr::Str(cstring(set)?)),
            (s::NFTNL_EXPR_LOOKUP_SET_ID, Attr::U32(id)),
        ],
    })
}

/// The libnftnl expressions of one statement (same as `nft --debug=netlink`).
/// `ct direction original` (0) or `reply` (1).
fn ct_direction(dir: u8) -> Vec<RawExpr> {
    use nftnl::nftnl_sys as s;
    let r1 = libc::NFT_REG_1 as u32;
    vec![
        RawExpr {
            name: c"ct",
            attrs: vec![
                (
                    s::NFTNL_EXPR_CT_KEY,
                    Attr::U32(libc::NFT_CT_DIRECTION as u32),
                ),
                (s::NFTNL_EXPR_CT_DREG, Attr::U32(r1)),
            ],
        },
        cmp(libc::NFT_CMP_EQ, r1, vec![dir]),
    ]
}

/// `ct original|reply packets <op> n`.
fn ct_packets(dir: u8, op: i32, n: u64) -> Vec<RawExpr> {
    use nftnl::nftnl_sys as s;
    let r1 = libc::NFT_REG_1 as u32;
    vec![
        RawExpr {
            name: c"ct",
            attrs: vec![
                (s::NFTNL_EXPR_CT_KEY, Attr::U32(libc::NFT_CT_PKTS as u32)),
                (s::NFTNL_EXPR_CT_DIR, Attr::U8(dir)),
                (s::NFTNL_EXPR_CT_DREG, Attr::U32(r1)),
            ],
        },
        // The counter is a host-order u64: convert so `cmp` (memcmp)
        // compares numerically.
        RawExpr {
            name: c"byteorder",
            attrs: vec![
                (s::NFTNL_EXPR_BYTEORDER_SREG, Attr::U32(r1)),
                (s::NFTNL_EXPR_BYTEORDER_DREG, Attr::U32(r1)),
                (
                    s::NFTNL_EXPR_BYTEORDER_OP,
                    Attr::U32(libc::NFT_BYTEORDER_HTON as u32),
                ),
                (s::NFTNL_EXPR_BYTEORDER_LEN, Attr::U32(8)),
                (s::NFTNL_EXPR_BYTEORDER_SIZE, Attr::U32(8)),
            ],
        },
        cmp(op, r1, n.to_be_bytes().to_vec()),
    ]
}

fn stmt_exprs(st: &Stmt, set_ids: &BTreeMap<String, u32>) -> Result<Vec<RawExpr>, NftError> {
    use nftnl::nftnl_sys as s;
    let r1 = libc::NFT_REG_1 as u32;
    let id = |n: &str| set_ids.get(n).copied().unwrap_or(0);
    Ok(match st {
        Stmt::NfProto(f) => {
            let p = match f {
                Family::V4 => libc::NFPROTO_IPV4,
                Family::V6 => libc::NFPROTO_IPV6,
            };
            vec![
                meta(libc::NFT_META_NFPROTO, r1),
                cmp(libc::NFT_CMP_EQ, r1, vec![p as u8]),
            ]
        }
        Stmt::L4Proto(t) => vec![
            meta(libc::NFT_META_L4PROTO, r1),
            cmp(libc::NFT_CMP_EQ, r1, vec![t.proto_number()]),
        ],
        Stmt::Lookup { family, field, set } => {
            vec![addr_payload(*family, *field, r1), lookup(r1, set, id(set))?]
        }
        Stmt::LookupPair { family, set } => {
            // Concatenations live in 32-bit registers: saddr from REG32_00,
            // daddr right after it.
            let r0 = libc::NFT_REG32_00 as u32;
            let r_d = r0 + family.addr_len() / 4;
            vec![
                addr_payload(*family, AddrField::Saddr, r0),
                addr_payload(*family, AddrField::Daddr, r_d),
                lookup(r0, set, id(set))?,
            ]
        }
        Stmt::Dport { proto, lo, hi } => {
            let mut v = vec![
                meta(libc::NFT_META_L4PROTO, r1),
                cmp(libc::NFT_CMP_EQ, r1, vec![proto.proto_number()]),
                payload(libc::NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, r1),
            ];
            if lo == hi {
                v.push(cmp(libc::NFT_CMP_EQ, r1, lo.to_be_bytes().to_vec()));
            } else {
                // Big-endian data compares numerically with the kernel's memcmp.
                v.push(cmp(libc::NFT_CMP_GTE, r1, lo.to_be_bytes().to_vec()));
                v.push(cmp(libc::NFT_CMP_LTE, r1, hi.to_be_bytes().to_vec()));
            }
            v
        }
        Stmt::Sport { proto, port } => vec![
            meta(libc::NFT_META_L4PROTO, r1),
            cmp(libc::NFT_CMP_EQ, r1, vec![proto.proto_number()]),
            payload(libc::NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2, r1),
            cmp(libc::NFT_CMP_EQ, r1, port.to_be_bytes().to_vec()),
        ],
        Stmt::CtDirectionOriginal => ct_direction(0),
        Stmt::CtDirectionReply => ct_direction(1),
        Stmt::CtOriginalPacketsLt(n) => ct_packets(0, libc::NFT_CMP_LT, *n),
        Stmt::CtOriginalPacketsGe(n) => ct_packets(0, libc::NFT_CMP_GTE, *n),
        Stmt::CtReplyPacketsLt(n) => ct_packets(1, libc::NFT_CMP_LT, *n),
        Stmt::CtReplyPacketsGe(n) => ct_packets(1, libc::NFT_CMP_GTE, *n),
        Stmt::LimitPerSecond(n) => vec![RawExpr {
            name: c"limit",
            attrs: vec![
                (s::NFTNL_EXPR_LIMIT_RATE, Attr::U64(u64::from(*n))),
                (s::NFTNL_EXPR_LIMIT_UNIT, Attr::U64(1)),
                (s::NFTNL_EXPR_LIMIT_BURST, Attr::U32(*n)),
                (
                    s::NFTNL_EXPR_LIMIT_TYPE,
                    Attr::U32(libc::NFT_LIMIT_PKTS as u32),
                ),
                (s::NFTNL_EXPR_LIMIT_FLAGS, Attr::U32(0)),
            ],
        }],
        Stmt::Counter => vec![RawExpr {
            name: c"counter",
            attrs: vec![],
        }],
        Stmt::Log { group, snaplen } => vec![RawExpr {
            name: c"log",
            attrs: vec![
                (s::NFTNL_EXPR_LOG_GROUP, Attr::U16(*group)),
                (s::NFTNL_EXPR_LOG_SNAPLEN, Attr::U32(*snaplen)),
            ],
        }],
        Stmt::Drop => vec![RawExpr {
            name: c"immediate",
            attrs: vec![
                (
                    s::NFTNL_EXPR_IMM_DREG,
                    Attr::U32(libc::NFT_REG_VERDICT as u32),
                ),
                (s::NFTNL_EXPR_IMM_VERDICT, Attr::U32(libc::NF_DROP as u32)),
            ],
        }],
        Stmt::Accept => vec![RawExpr {
            name: c"immediate",
            attrs: vec![
                (
                    s::NFTNL_EXPR_IMM_DREG,
                    Attr::U32(libc::NFT_REG_VERDICT as u32),
                ),
                (s::NFTNL_EXPR_IMM_VERDICT, Attr::U32(libc::NF_ACCEPT as u32)),
            ],
        }],
        Stmt::RejectTcpReset => vec![RawExpr {
            name: c"reject",
            attrs: vec![
                (
                    s::NFTNL_EXPR_REJECT_TYPE,
                    Attr::U32(libc::NFT_REJECT_TCP_RST as u32),
                ),
                (s::NFTNL_EXPR_REJECT_CODE, Attr::U8(0)),
            ],
        }],
        Stmt::Dnat { to } => {
            let r2 = libc::NFT_REG_2 as u32;
            let (fam, addr) = match to {
                std::net::SocketAddr::V4(a) => (libc::NFPROTO_IPV4, a.ip().octets().to_vec()),
                std::net::SocketAddr::V6(a) => (libc::NFPROTO_IPV6, a.ip().octets().to_vec()),
            };
            let imm = |reg: u32, data: Vec<u8>| RawExpr {
                name: c"immediate",
                attrs: vec![
                    (s::NFTNL_EXPR_IMM_DREG, Attr::U32(reg)),
                    (s::NFTNL_EXPR_IMM_DATA, Attr::Data(data)),
                ],
            };
            vec![
                imm(r1, addr),
                imm(r2, to.port().to_be_bytes().to_vec()),
                RawExpr {
                    name: c"nat",
                    attrs: vec![
                        (s::NFTNL_EXPR_NAT_TYPE, Attr::U32(libc::NFT_NAT_DNAT as u32)),
                        (s::NFTNL_EXPR_NAT_FAMILY, Attr::U32(fam as u32)),
                        (s::NFTNL_EXPR_NAT_REG_ADDR_MIN, Attr::U32(r1)),
                        (s::NFTNL_EXPR_NAT_REG_ADDR_MAX, Attr::U32(r1)),
                        (s::NFTNL_EXPR_NAT_REG_PROTO_MIN, Attr::U32(r2)),
                        (s::NFTNL_EXPR_NAT_REG_PROTO_MAX, Attr::U32(r2)),
                        // NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED
                        (s::NFTNL_EXPR_NAT_FLAGS, Attr::U32(0x3)),
                    ],
                },
            ]
        }
        Stmt::RejectIcmpxAdminProhibited => vec![RawExpr {
            name: c"reject",
            attrs: vec![
                (
                    s::NFTNL_EXPR_REJECT_TYPE,
                    Attr::U32(libc::NFT_REJECT_ICMPX_UNREACH as u32),
                ),
                (
                    s::NFTNL_EXPR_REJECT_CODE,
                    Attr::U8(libc::NFT_REJECT_ICMPX_ADMIN_PROHIBITED as u8),
                ),
            ],
        }],
    })
}

fn key_params(k: KeyType) -> (u32, u32) {
    // nft datatypes: ipv4_addr = 7, ipv6_addr = 8; a concatenation type is
    // (t1 << 6) | t2 and each member is padded to 32 bits.
    match k {
        KeyType::Addr(Family::V4) => (7, 4),
        KeyType::Addr(Family::V6) => (8, 16),
        KeyType::AddrPair(Family::V4) => ((7 << 6) | 7, 8),
        KeyType::AddrPair(Family::V6) => ((8 << 6) | 8, 32),
    }
}

/// Adds the interval elements of a set: start key, and end key `hi + 1` with
/// INTERVAL_END unless it overflows (platform notes §2.3).
fn add_ranges(raw: &mut RawSet, def: &SetDef) {
    let end = libc::NFT_SET_ELEM_INTERVAL_END as u32;
    for &(lo, hi) in &def.v4 {
        raw.add_elem(&be_bytes_v4(lo), 0, 0);
        if let Some(e) = hi.checked_add(1) {
            raw.add_elem(&be_bytes_v4(e), end, 0);
        }
    }
    for &(lo, hi) in &def.v6 {
        raw.add_elem(&be_bytes_v6(lo), 0, 0);
        if let Some(e) = hi.checked_add(1) {
            raw.add_elem(&be_bytes_v6(e), end, 0);
        }
    }
}

fn timeout_ms(d: Duration) -> u64 {
    (d.as_millis().min(u128::from(u64::MAX))) as u64
}

fn ip_from_key(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b)
            .ok()
            .map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        16 => <[u8; 16]>::try_from(b)
            .ok()
            .map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        _ => None,
    }
}

/// `r12_dyn_v4` -> (12, pair = true, v4); `r3_dst_dyn_v6` -> (3, false, v6).
fn parse_dyn_set(name: &str) -> Option<(usize, bool, Family)> {
    let rest = name.strip_prefix('r')?;
    let (idx, kind) = rest.split_once('_')?;
    let idx = idx.parse().ok()?;
    match kind {
        "dyn_v4" => Some((idx, true, Family::V4)),
        "dyn_v6" => Some((idx, true, Family::V6)),
        "dst_dyn_v4" => Some((idx, false, Family::V4)),
        "dst_dyn_v6" => Some((idx, false, Family::V6)),
        _ => None,
    }
}

/// Rule comment from the rule's user data (TLV: type 0 = comment).
fn comment_of(ud: &[u8]) -> Option<String> {
    let mut off = 0usize;
    while let (Some(&ty), Some(&len)) = (ud.get(off), ud.get(off + 1)) {
        let v = ud.get(off + 2..off + 2 + len as usize)?;
        if ty == 0 {
            let v = v.split(|&b| b == 0).next().unwrap_or(v);
            return Some(String::from_utf8_lossy(v).into_owned());
        }
        off += 2 + len as usize;
    }
    None
}

struct Msgs {
    labels: Vec<String>,
}

/// What the table holds now: sets (flags, key length), chains (hook, priority).
#[derive(Default)]
struct Current {
    sets: BTreeMap<String, (u32, u32, u32)>,
    chains: BTreeMap<String, (Option<u32>, Option<i32>)>,
    /// Per chain, in order: (comment, expression names) of every rule.
    rules: BTreeMap<String, Vec<(String, Vec<String>)>>,
}

/// What identifies a rule on read-back: its comment (which encodes rule,
/// layer, family, ports, log parameters) and its expression names (which
/// encode source restriction, verdict kind and port form).
fn fingerprint(r: &crate::render::RuleDef) -> (String, Vec<String>) {
    let names = r
        .stmts
        .iter()
        .flat_map(|st| stmt_exprs(st, &BTreeMap::new()).unwrap_or_default())
        .map(|e| e.name.to_string_lossy().into_owned())
        .collect();
    (r.comment.clone(), names)
}

/// Set flags that define a set's type (the kernel may report more).
const SET_TYPE_FLAGS: u32 = (libc::NFT_SET_INTERVAL | libc::NFT_SET_TIMEOUT) as u32;

fn set_flags(d: &SetDef) -> u32 {
    let mut f = 0u32;
    if d.interval {
        f |= libc::NFT_SET_INTERVAL as u32;
    }
    if d.timeout {
        f |= libc::NFT_SET_TIMEOUT as u32;
    }
    f
}

fn nft_hook(h: ChainHook) -> nftnl::Hook {
    match h {
        ChainHook::Forward => nftnl::Hook::Forward,
        ChainHook::Output => nftnl::Hook::Out,
        ChainHook::Input => nftnl::Hook::In,
        ChainHook::Prerouting => nftnl::Hook::PreRouting,
    }
}

fn hook_num(h: ChainHook) -> u32 {
    nft_hook(h) as u32
}

fn push_labeled(batch: &mut Batch, m: &mut Msgs, raw: &RawSet, op: ElemOp, name: &str) {
    let n = ffi::push_elems(batch, raw, op);
    for c in 0..n {
        m.labels.push(format!(
            "elements of set {name} (message {} of {n}, {} elements in total)",
            c + 1,
            raw.elem_count()
        ));
    }
}

impl Nft {
    /// Opens the netlink socket for table `inet geofence`.
    pub fn new() -> Result<Nft, NftError> {
        Nft::with_table("geofence")
    }

    /// Opens the netlink socket for table `inet <table>`.
    pub fn with_table(table: &str) -> Result<Nft, NftError> {
        cstring(table)?;
        let sock = Sock::open(SOCK_BUF).map_err(NftError::Socket)?;
        Ok(Nft {
            sock,
            table: table.to_string(),
            seq: 0,
            buf: vec![0u8; RECV_BUF],
        })
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Brings the kernel table to `rs` in ONE transaction, in place, then
    /// reads it back. If the kernel rejects any message nothing changes.
    ///
    /// In place means: the table and every set/chain that already exists with
    /// the same type stays; static sets are flushed and refilled, chains whose
    /// rules differ from the intent are flushed and refilled (identical ones
    /// keep their rules and counters), dynamic (timeout) sets are left untouched (their
    /// elements survive), objects no longer wanted are deleted, new ones are
    /// added. `keep_dynamic` is added (or refreshed) in the dynamic sets; pass
    /// the result of [`Nft::list_dynamic`] when the table might have been
    /// deleted meanwhile.
    ///
    /// Why not table add/delete/add (the Mullvad idiom, [`Nft::replace`])?
    /// Measured on 6.18: a freshly created interval set of a few thousand
    /// ranges misses lookups for a moment after commit, so packets to a
    /// blocked address leak during a full replace (8-33 of 2,000 UDP probes
    /// over 100 replaces, with `nft -f` as well); flushing and refilling the
    /// existing set leaked none (see docs/benchmarks-nft.md).
    pub fn apply(
        &mut self,
        rs: &Ruleset,
        keep_dynamic: &[DynElement],
    ) -> Result<ApplyReport, NftError> {
        self.check_table(rs)?;
        let t0 = Instant::now();
        let current = if self.table_exists()? {
            Some(self.current_objects()?)
        } else {
            None
        };
        self.build_and_commit(rs, keep_dynamic, current, t0)
    }

    /// Full replace in one transaction: table add, delete, add, then sets,
    /// elements, chains, rules (the Mullvad idiom). Atomic for the ruleset,
    /// but see [`Nft::apply`] for the lookup gap of newly created large sets.
    pub fn replace(
        &mut self,
        rs: &Ruleset,
        keep_dynamic: &[DynElement],
    ) -> Result<ApplyReport, NftError> {
        self.check_table(rs)?;
        let t0 = Instant::now();
        self.build_and_commit(rs, keep_dynamic, None, t0)
    }

    /// Alias of [`Nft::apply`] with no extra dynamic elements: existing
    /// dynamic elements are preserved by the in-place update.
    pub fn reload(&mut self, rs: &Ruleset) -> Result<ApplyReport, NftError> {
        self.apply(rs, &[])
    }

    fn check_table(&self, rs: &Ruleset) -> Result<(), NftError> {
        if rs.table != self.table {
            return Err(NftError::Invalid(format!(
                "ruleset is for table {} but this handle manages {}",
                rs.table, self.table
            )));
        }
        Ok(())
    }

    /// Sets (name, flags, key length, size) and chains (name, hook, priority) now in the table.
    fn current_objects(&mut self) -> Result<Current, NftError> {
        let sets = self
            .dump(Dump::Sets, None)?
            .into_iter()
            .filter_map(|p| match p {
                Parsed::Set {
                    name,
                    flags,
                    key_len,
                    size,
                    ..
                } => Some((name, (flags, key_len, size))),
                _ => None,
            })
            .collect();
        let chains = self
            .dump(Dump::Chains, None)?
            .into_iter()
            .filter_map(|p| match p {
                Parsed::Chain {
                    name, hook, prio, ..
                } => Some((name, (hook, prio))),
                _ => None,
            })
            .collect();
        let mut rules: BTreeMap<String, Vec<(String, Vec<String>)>> = BTreeMap::new();
        for p in self.dump(Dump::Rules, None)? {
            if let Parsed::Rule(r) = p {
                let comment = comment_of(&r.userdata).unwrap_or_default();
                rules.entry(r.chain).or_default().push((comment, r.exprs));
            }
        }
        Ok(Current {
            sets,
            chains,
            rules,
        })
    }

    /// `current == None`: full replace (table add/del/add). Otherwise an
    /// in-place update against the objects in `current`.
    fn build_and_commit(
        &mut self,
        rs: &Ruleset,
        keep_dynamic: &[DynElement],
        current: Option<Current>,
        t0: Instant,
    ) -> Result<ApplyReport, NftError> {
        let tname = cstring(&rs.table)?;
        let table = Table::new(&tname, ProtoFamily::Inet);
        let mut batch = Batch::new();
        let mut m = Msgs { labels: Vec::new() };
        batch.add(&table, MsgType::Add);
        m.labels.push(format!("add table {}", rs.table));
        let current = match current {
            Some(c) => c,
            None => {
                batch.add(&table, MsgType::Del);
                m.labels.push(format!("delete table {}", rs.table));
                batch.add(&table, MsgType::Add);
                m.labels.push(format!("add table {}", rs.table));
                Current::default()
            }
        };

        // Which existing sets stay (same name and type) and which go.
        let mut reuse: BTreeSet<String> = BTreeSet::new();
        let mut delete_sets = Vec::new();
        for (name, (flags, key_len, size)) in &current.sets {
            // A set without the intended `size` (a table from an older
            // version) is replaced, its live elements re-added.
            let same = rs.set(name).is_some_and(|d| {
                let (_, kl) = key_params(d.key);
                *flags & SET_TYPE_FLAGS == set_flags(d)
                    && *key_len == kl
                    && d.size.is_none_or(|n| n == *size)
            });
            if same {
                reuse.insert(name.clone());
            } else {
                delete_sets.push(name.clone());
            }
        }
        // 1. Flush every existing chain whose rules differ from the intent
        //    (or were changed behind our back); identical rules are kept, so
        //    their counters survive a reload. Delete chains that are unwanted
        //    or whose hook or priority changed (base chains cannot be
        //    re-hooked in place).
        let mut unchanged_chains: BTreeSet<String> = BTreeSet::new();
        for (name, (hook, prio)) in &current.chains {
            let cname = cstring(name)?;
            let chain = Chain::new(&cname, &table);
            let want = rs.chains.iter().find(|c| {
                c.name == *name && *hook == Some(hook_num(c.hook)) && *prio == Some(c.priority)
            });
            let same_rules = match want {
                Some(c) if delete_sets.is_empty() => {
                    let have = current
                        .rules
                        .get(name)
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    have.len() == c.rules.len()
                        && have.iter().zip(&c.rules).all(|(h, r)| *h == fingerprint(r))
                }
                _ => false,
            };
            if same_rules {
                unchanged_chains.insert(name.clone());
            } else {
                let flush = Rule::new(&chain);
                batch.add(&flush, MsgType::Del);
                m.labels.push(format!("flush chain {name}"));
            }
            if want.is_none() {
                batch.add(&chain, MsgType::Del);
                m.labels.push(format!("delete chain {name}"));
            }
        }
        // 2. Delete sets that are unwanted or of another type (their rules are gone).
        for name in &delete_sets {
            let cname = cstring(name)?;
            let raw = RawSet::reference(&tname, &cname, INET);
            batch.add(&raw, MsgType::Del);
            m.labels.push(format!("delete set {name}"));
        }

        // Dynamic elements to carry over, by set.
        let mut keep: BTreeMap<String, Vec<&DynElement>> = BTreeMap::new();
        let mut dropped = 0usize;
        for e in keep_dynamic {
            match e.set_name() {
                Some(n) if rs.set(&n).is_some_and(|d| d.timeout) && !e.timeout.is_zero() => {
                    keep.entry(n).or_default().push(e)
                }
                _ => dropped += 1,
            }
        }
        let mut kept = 0usize;
        // 3. Sets: refill reused static sets, create new ones.
        let mut set_ids = BTreeMap::new();
        for (i, def) in rs.sets.iter().enumerate() {
            let id = i as u32 + 1;
            set_ids.insert(def.name.clone(), id);
            let name = cstring(&def.name)?;
            let keep_here = keep.get(&def.name).map(Vec::as_slice).unwrap_or_default();
            if reuse.contains(&def.name) {
                let mut raw = RawSet::reference(&tname, &name, INET);
                let op = if def.timeout {
                    // Dynamic set: untouched; carried elements added or refreshed.
                    ElemOp::AddOrUpdate
                } else {
                    let empty = RawSet::reference(&tname, &name, INET);
                    batch.add(&ffi::SetFlush(&empty), MsgType::Del);
                    m.labels.push(format!("flush set {}", def.name));
                    ElemOp::AddExcl
                };
                add_ranges(&mut raw, def);
                for e in keep_here {
                    raw.add_elem(&e.key(), 0, timeout_ms(e.timeout).max(1));
                    kept += 1;
                }
                push_labeled(&mut batch, &mut m, &raw, op, &def.name);
            } else {
                let (key_type, key_len) = key_params(def.key);
                let mut raw = RawSet::new(&SetParams {
                    table: &tname,
                    name: &name,
                    family: INET,
                    id,
                    key_type,
                    key_len,
                    flags: set_flags(def),
                    size: def.size,
                });
                add_ranges(&mut raw, def);
                for e in keep_here {
                    raw.add_elem(&e.key(), 0, timeout_ms(e.timeout).max(1));
                    kept += 1;
                }
                batch.add(&raw, MsgType::Add);
                m.labels.push(format!("add set {}", def.name));
                push_labeled(&mut batch, &mut m, &raw, ElemOp::AddExcl, &def.name);
            }
        }
        // 4. Chains (NEWCHAIN on an existing base chain updates it, e.g.
        //    resets a tampered policy) and their rules.
        for cdef in &rs.chains {
            let cname = cstring(&cdef.name)?;
            let mut chain = Chain::new(&cname, &table);
            chain.set_hook(nft_hook(cdef.hook), cdef.priority);
            chain.set_type(match cdef.kind {
                ChainKind::Filter => ChainType::Filter,
                ChainKind::Nat => ChainType::Nat,
            });
            chain.set_policy(Policy::Accept);
            batch.add(&chain, MsgType::Add);
            m.labels.push(format!("add chain {}", cdef.name));
            if unchanged_chains.contains(&cdef.name) {
                continue;
            }
            for r in &cdef.rules {
                let mut rule = Rule::new(&chain);
                for st in &r.stmts {
                    for e in stmt_exprs(st, &set_ids)? {
                        rule.add_expr(&e);
                    }
                }
                rule.set_comment(cstring(&r.comment)?)
                    .map_err(|e| NftError::Invalid(format!("comment {:?}: {e}", r.comment)))?;
                batch.add(&rule, MsgType::Add);
                m.labels.push(format!("add rule `{r}`"));
            }
        }
        let fin = batch.finalize();
        let build_time = t0.elapsed();
        let t1 = Instant::now();
        let batch_bytes = self.commit(&fin, &m)?;
        let commit_time = t1.elapsed();
        let t2 = Instant::now();
        let verify = self.verify(rs)?;
        Ok(ApplyReport {
            messages: m.labels.len(),
            batch_bytes,
            build_time,
            commit_time,
            kept_dynamic: kept,
            dropped_dynamic: dropped,
            verify,
            verify_time: t2.elapsed(),
        })
    }

    /// Sends a finalized batch in one `sendmsg` and checks every ack.
    fn commit(&mut self, fin: &nftnl::FinalizedBatch, m: &Msgs) -> Result<usize, NftError> {
        let pages: Vec<&[u8]> = fin.iter().collect();
        let bytes: usize = pages.iter().map(|p| p.len()).sum();
        let seqs = fin.sequence_numbers();
        // Batch begin/end carry acked sequence numbers only on kernels >= 6.10.
        let acked = (seqs.end - seqs.start) as usize;
        let first_msg_seq = if acked == m.labels.len() + 2 {
            seqs.start + 1
        } else {
            seqs.start
        };
        let label = |seq: u32| -> String {
            seq.checked_sub(first_msg_seq)
                .and_then(|i| m.labels.get(i as usize).cloned())
                .unwrap_or_else(|| "batch begin/end".to_string())
        };
        self.sock.send_pages(&pages).map_err(NftError::Send)?;
        let mut pending: BTreeSet<u32> = seqs.clone().collect();
        let mut failure: Option<(u32, i32)> = None;
        while !pending.is_empty() && failure.is_none() {
            let n = self
                .sock
                .mnl
                .recv_raw(&mut self.buf)
                .map_err(NftError::Recv)?;
            let datagram = self.buf.get(..n).unwrap_or_default();
            for (ty, _, msg) in messages(datagram) {
                if ty != NLMSG_ERROR {
                    continue;
                }
                if let Some((errno, seq)) = error_of(msg) {
                    pending.remove(&seq);
                    if errno != 0 && failure.is_none() {
                        failure = Some((seq, errno));
                    }
                }
            }
        }
        if let Some((seq, errno)) = failure {
            // The kernel queued all its answers during sendmsg: drain them so
            // the next request starts clean.
            while let Ok(Some(_)) = self.sock.recv_nonblocking(&mut self.buf) {}
            return Err(NftError::Rejected {
                seq,
                what: label(seq),
                err: io::Error::from_raw_os_error(errno),
            });
        }
        Ok(bytes)
    }

    fn next_seq(&mut self) -> u32 {
        // Dumps use sequence numbers far from the batch range (which starts at 1).
        self.seq = self.seq.wrapping_add(1);
        0x4000_0000 | (self.seq & 0x3fff_ffff)
    }

    fn dump(&mut self, kind: Dump, set: Option<&str>) -> Result<Vec<Parsed>, NftError> {
        let seq = self.next_seq();
        let table = cstring(&self.table)?;
        let set_c = set.map(cstring).transpose()?;
        let req = ffi::request(kind, INET, &table, set_c.as_deref(), seq);
        let what = match set {
            Some(s) => format!("{kind:?} of set {s} in table {}", self.table),
            None => format!("{kind:?} of table {}", self.table),
        };
        self.sock.mnl.send(&req).map_err(|err| NftError::Dump {
            what: what.clone(),
            err,
        })?;
        let mut out = Vec::new();
        loop {
            let n = self
                .sock
                .mnl
                .recv_raw(&mut self.buf)
                .map_err(|err| NftError::Dump {
                    what: what.clone(),
                    err,
                })?;
            let datagram = self.buf.get(..n).unwrap_or_default();
            for (ty, mseq, msg) in messages(datagram) {
                if mseq != seq {
                    continue;
                }
                match ty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let errno = error_of(msg).map(|e| e.0).unwrap_or(libc::EIO);
                        if errno == 0 {
                            return Ok(out);
                        }
                        return Err(NftError::Dump {
                            what,
                            err: io::Error::from_raw_os_error(errno),
                        });
                    }
                    _ => {
                        // The kernel's chain dump lists every table's chains.
                        if let Some(p) = ffi::parse_msg(kind, msg) {
                            if p.in_table(&self.table) {
                                out.push(p);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The kernel's ruleset generation: a counter that every committed
    /// nftables transaction in this network namespace increments, ours and
    /// everyone else's. Unchanged since the last read = nothing anywhere
    /// changed, so a tamper check costs one small round trip instead of a
    /// dump of every set.
    pub fn generation(&mut self) -> Result<u32, NftError> {
        const NFTA_GEN_ID: u16 = 1;
        let seq = self.next_seq();
        let what = || "ruleset generation".to_string();
        let ty = ((libc::NFNL_SUBSYS_NFTABLES as u16) << 8) | libc::NFT_MSG_GETGEN as u16;
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
        let mut req = Vec::with_capacity(20);
        req.extend_from_slice(&20u32.to_ne_bytes());
        req.extend_from_slice(&ty.to_ne_bytes());
        req.extend_from_slice(&flags.to_ne_bytes());
        req.extend_from_slice(&seq.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        // struct nfgenmsg: AF_UNSPEC, NFNETLINK_V0, res_id 0.
        req.extend_from_slice(&[0, 0, 0, 0]);
        self.sock
            .mnl
            .send(&req)
            .map_err(|err| NftError::Dump { what: what(), err })?;
        let mut gen = None;
        loop {
            let n = self
                .sock
                .mnl
                .recv_raw(&mut self.buf)
                .map_err(|err| NftError::Dump { what: what(), err })?;
            let datagram = self.buf.get(..n).unwrap_or_default();
            for (ty, mseq, msg) in messages(datagram) {
                if mseq != seq {
                    continue;
                }
                if ty == NLMSG_ERROR {
                    let errno = error_of(msg).map(|e| e.0).unwrap_or(libc::EIO);
                    return match (errno, gen) {
                        (0, Some(g)) => Ok(g),
                        (0, None) => Err(NftError::Dump {
                            what: what(),
                            err: io::Error::from_raw_os_error(libc::EPROTO),
                        }),
                        (e, _) => Err(NftError::Dump {
                            what: what(),
                            err: io::Error::from_raw_os_error(e),
                        }),
                    };
                }
                // NFT_MSG_NEWGEN: header, nfgenmsg, then attributes.
                let mut off = 20;
                while let Some(h) = msg.get(off..off + 4) {
                    let len = usize::from(u16::from_ne_bytes([h[0], h[1]]));
                    let kind = u16::from_ne_bytes([h[2], h[3]]) & 0x3fff;
                    if len < 4 {
                        break;
                    }
                    if kind == NFTA_GEN_ID {
                        if let Some(v) = msg.get(off + 4..off + 8) {
                            gen = Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
                        }
                    }
                    off += (len + 3) & !3;
                }
            }
        }
    }

    /// Whether `inet <table>` exists.
    pub fn table_exists(&mut self) -> Result<bool, NftError> {
        let t = self.dump(Dump::Tables, None)?;
        Ok(t.iter()
            .any(|p| matches!(p, Parsed::Table(n) if *n == self.table)))
    }

    fn set_elems(&mut self, set: &str) -> Result<Vec<ffi::ElemInfo>, NftError> {
        let mut v = Vec::new();
        for p in self.dump(Dump::Elems, Some(set))? {
            if let Parsed::Elems { elems, .. } = p {
                v.extend(elems);
            }
        }
        Ok(v)
    }

    /// Compares the kernel's table with `rs`: sets present with the intended
    /// number of ranges, the same chains, the same rules (by comment, in
    /// order). Detects deletion and tampering.
    pub fn verify(&mut self, rs: &Ruleset) -> Result<VerifyReport, NftError> {
        let mut rep = VerifyReport::default();
        if !self.table_exists()? {
            rep.problems
                .push(format!("table inet {} is missing", self.table));
            return Ok(rep);
        }
        rep.table_present = true;
        let sets: Vec<(String, u32)> = self
            .dump(Dump::Sets, None)?
            .into_iter()
            .filter_map(|p| match p {
                Parsed::Set { name, flags, .. } => Some((name, flags)),
                _ => None,
            })
            .collect();
        for def in &rs.sets {
            if !sets.iter().any(|(n, _)| *n == def.name) {
                rep.problems.push(format!("set {} is missing", def.name));
                continue;
            }
            if !def.interval {
                // A dynamic (timeout) set: its elements are the daemon's
                // own run-time blocks, with nothing to compare them to.
                // Dumping them (tens of thousands under a burst) would hold
                // the enforcement thread for milliseconds at every check.
                continue;
            }
            let elems = self.set_elems(&def.name)?;
            let end = libc::NFT_SET_ELEM_INTERVAL_END as u32;
            let n = elems.iter().filter(|e| e.flags & end == 0).count();
            rep.set_elements.push((def.name.clone(), n));
            if def.interval && n != def.range_count() {
                rep.problems.push(format!(
                    "set {} holds {n} ranges, intended {}",
                    def.name,
                    def.range_count()
                ));
            } else if def.interval {
                // Same count: compare the range starts themselves.
                let mut have: Vec<&[u8]> = elems
                    .iter()
                    .filter(|e| e.flags & end == 0)
                    .map(|e| e.key.as_slice())
                    .collect();
                have.sort_unstable();
                let mut want: Vec<Vec<u8>> = def.v4.iter().map(|r| be_bytes_v4(r.0)).collect();
                want.extend(def.v6.iter().map(|r| be_bytes_v6(r.0)));
                want.sort_unstable();
                let differ = have
                    .iter()
                    .zip(&want)
                    .filter(|(h, w)| **h != w.as_slice())
                    .count();
                if differ > 0 {
                    rep.problems.push(format!(
                        "set {} differs from the intent in {differ} range starts",
                        def.name
                    ));
                }
            }
        }
        for (n, _) in &sets {
            if rs.set(n).is_none() {
                rep.problems.push(format!("unexpected set {n}"));
            }
        }
        rep.chains = self
            .dump(Dump::Chains, None)?
            .into_iter()
            .filter_map(|p| match p {
                Parsed::Chain { name, .. } => Some(name),
                _ => None,
            })
            .collect();
        let want: BTreeSet<&str> = rs.chains.iter().map(|c| c.name.as_str()).collect();
        let have: BTreeSet<&str> = rep.chains.iter().map(String::as_str).collect();
        if want != have {
            rep.problems
                .push(format!("chains are {have:?}, intended {want:?}"));
        }
        let rules: Vec<ffi::RuleInfo> = self
            .dump(Dump::Rules, None)?
            .into_iter()
            .filter_map(|p| match p {
                Parsed::Rule(r) => Some(r),
                _ => None,
            })
            .collect();
        rep.rules = rules.len();
        for c in &rs.chains {
            let got: Vec<String> = rules
                .iter()
                .filter(|r| r.chain == c.name)
                .map(|r| comment_of(&r.userdata).unwrap_or_default())
                .collect();
            let want: Vec<&str> = c.rules.iter().map(|r| r.comment.as_str()).collect();
            if got != want {
                rep.problems.push(format!(
                    "chain {} has {} rules {:?}, intended {} rules",
                    c.name,
                    got.len(),
                    got.iter().take(4).collect::<Vec<_>>(),
                    want.len()
                ));
            }
        }
        Ok(rep)
    }

    /// All dynamic elements currently in the kernel, with remaining lifetimes.
    pub fn list_dynamic(&mut self) -> Result<Vec<DynElement>, NftError> {
        let names: Vec<String> = self
            .dump(Dump::Sets, None)?
            .into_iter()
            .filter_map(|p| match p {
                Parsed::Set { name, .. } => Some(name),
                _ => None,
            })
            .collect();
        let mut out = Vec::new();
        for name in names {
            let Some((idx, pair, fam)) = parse_dyn_set(&name) else {
                continue;
            };
            let alen = fam.addr_len() as usize;
            for e in self.set_elems(&name)? {
                let remaining = Duration::from_millis(e.expiration_ms);
                let (src, dst) = if pair {
                    let (a, b) = e.key.split_at(alen.min(e.key.len()));
                    (ip_from_key(a), ip_from_key(b))
                } else {
                    (None, ip_from_key(&e.key))
                };
                let Some(dst) = dst else { continue };
                if pair && src.is_none() {
                    continue;
                }
                out.push(DynElement {
                    rule_index: idx,
                    src,
                    dst,
                    timeout: remaining,
                });
            }
        }
        Ok(out)
    }

    /// Adds run-time blocks in one transaction. Re-adding an element that
    /// is already present does not abort the batch (no NLM_F_EXCL) and
    /// refreshes its timeout.
    pub fn add_dynamic(&mut self, elems: &[DynElement]) -> Result<(), NftError> {
        self.dynamic_batch(elems, ElemOp::AddOrUpdate)
    }

    /// Removes run-time blocks in one transaction (all must exist).
    pub fn remove_dynamic(&mut self, elems: &[DynElement]) -> Result<(), NftError> {
        self.dynamic_batch(elems, ElemOp::Del)
    }

    /// Adds run-time blocks like [`Nft::add_dynamic`], but one element the
    /// kernel refuses (its set no longer exists, mixed address families)
    /// does not keep the others out: it is isolated by retrying halves. Returns the
    /// refused elements (index into `elems`, reason); empty = all added.
    pub fn add_dynamic_each(&mut self, elems: &[DynElement]) -> Vec<(usize, String)> {
        self.dynamic_each(elems, ElemOp::AddOrUpdate)
    }

    /// Removes run-time blocks like [`Nft::remove_dynamic`], but an element
    /// that is already gone (expired, ENOENT) does not keep the others in.
    pub fn remove_dynamic_each(&mut self, elems: &[DynElement]) -> Vec<(usize, String)> {
        self.dynamic_each(elems, ElemOp::Del)
    }

    /// One transaction for all elements; if the kernel refuses it (the whole
    /// transaction is then aborted: platform notes §2.6), the elements whose
    /// set does not exist fail at once (one dump), and the rest is split in
    /// halves and retried until every element that the kernel accepts is
    /// in, and each refused one is isolated: one bad element costs about
    /// 2·log2(n) extra transactions, not the batch. Errors that are not a
    /// refusal (socket, send) fail the elements not yet applied.
    fn dynamic_each(&mut self, elems: &[DynElement], op: ElemOp) -> Vec<(usize, String)> {
        let mut failed: Vec<(usize, String)> = Vec::new();
        let mut todo: Vec<usize> = Vec::with_capacity(elems.len());
        for (i, e) in elems.iter().enumerate() {
            match e.set_name() {
                Some(_) => todo.push(i),
                None => failed.push((i, format!("mixed address families in {e:?}"))),
            }
        }
        let mut sets_checked = false;
        let mut stack = vec![todo];
        while let Some(idx) = stack.pop() {
            if idx.is_empty() {
                continue;
            }
            let chunk: Vec<DynElement> =
                idx.iter().filter_map(|&i| elems.get(i).cloned()).collect();
            match self.dynamic_batch(&chunk, op) {
                Ok(()) => {}
                Err(e @ NftError::Rejected { .. }) if idx.len() == 1 => {
                    failed.push((idx[0], e.to_string()));
                }
                // A full set (ENFILE, the dynamic sets' size bound): every
                // element of that set fails at once, not one by one.
                Err(NftError::Rejected { what, err, .. })
                    if err.raw_os_error() == Some(libc::ENFILE)
                        && what.split_once("elements of set ").is_some() =>
                {
                    let set = what
                        .split_once("elements of set ")
                        .map(|(_, s)| s.to_string())
                        .unwrap_or_default();
                    let (full, rest): (Vec<usize>, Vec<usize>) = idx.into_iter().partition(|&i| {
                        elems.get(i).and_then(DynElement::set_name).as_deref() == Some(set.as_str())
                    });
                    if full.is_empty() {
                        // Not attributable: fall back to halving.
                        let (a, b) = rest.split_at(rest.len() / 2);
                        stack.push(b.to_vec());
                        stack.push(a.to_vec());
                    } else {
                        failed.extend(
                            full.into_iter()
                                .map(|i| (i, format!("set {set} is full: {err}"))),
                        );
                        stack.push(rest);
                    }
                }
                Err(NftError::Rejected { .. }) if !sets_checked => {
                    sets_checked = true;
                    let present: BTreeSet<String> = match self.dump(Dump::Sets, None) {
                        Ok(v) => v
                            .into_iter()
                            .filter_map(|p| match p {
                                Parsed::Set { name, .. } => Some(name),
                                _ => None,
                            })
                            .collect(),
                        Err(_) => BTreeSet::new(),
                    };
                    let (ok, gone): (Vec<usize>, Vec<usize>) = idx.into_iter().partition(|&i| {
                        elems
                            .get(i)
                            .and_then(DynElement::set_name)
                            .is_some_and(|n| present.contains(&n))
                    });
                    for i in gone {
                        let set = elems
                            .get(i)
                            .and_then(DynElement::set_name)
                            .unwrap_or_default();
                        failed.push((
                            i,
                            format!("set {set} does not exist in table inet {}", self.table),
                        ));
                    }
                    stack.push(ok);
                }
                Err(NftError::Rejected { .. }) => {
                    let (a, b) = idx.split_at(idx.len() / 2);
                    stack.push(b.to_vec());
                    stack.push(a.to_vec());
                }
                Err(e) => {
                    let why = e.to_string();
                    failed.extend(idx.into_iter().map(|i| (i, why.clone())));
                    for rest in stack.drain(..) {
                        failed.extend(rest.into_iter().map(|i| (i, why.clone())));
                    }
                }
            }
        }
        failed.sort_by_key(|f| f.0);
        failed
    }

    fn dynamic_batch(&mut self, elems: &[DynElement], op: ElemOp) -> Result<(), NftError> {
        if elems.is_empty() {
            return Ok(());
        }
        let tname = cstring(&self.table)?;
        let mut by_set: BTreeMap<String, RawSet> = BTreeMap::new();
        for e in elems {
            let name = e
                .set_name()
                .ok_or_else(|| NftError::Invalid(format!("mixed address families in {e:?}")))?;
            let cname = cstring(&name)?;
            let raw = by_set
                .entry(name)
                .or_insert_with(|| RawSet::reference(&tname, &cname, INET));
            let t = if op == ElemOp::Del {
                0
            } else {
                timeout_ms(e.timeout).max(1)
            };
            raw.add_elem(&e.key(), 0, t);
        }
        let mut batch = Batch::new();
        let mut m = Msgs { labels: Vec::new() };
        for (name, raw) in &by_set {
            let n = ffi::push_elems(&mut batch, raw, op);
            for _ in 0..n {
                m.labels.push(format!("{op:?} elements of set {name}"));
            }
        }
        let fin = batch.finalize();
        self.commit(&fin, &m).map(|_| ())
    }

    /// Deletes the table (no error if it does not exist).
    pub fn delete_table(&mut self) -> Result<(), NftError> {
        let tname = cstring(&self.table)?;
        let table = Table::new(&tname, ProtoFamily::Inet);
        let mut batch = Batch::new();
        batch.add(&table, MsgType::Add);
        batch.add(&table, MsgType::Del);
        let m = Msgs {
            labels: vec!["add table".into(), "delete table".into()],
        };
        let fin = batch.finalize();
        self.commit(&fin, &m).map(|_| ())
    }

    /// Removes these chains (rules first) from the table in one
    /// transaction; chains that are not there are skipped. Returns the
    /// names removed. Used to drop the DNS gate's redirect when it fails
    /// open.
    pub fn remove_chains(&mut self, names: &[&str]) -> Result<Vec<String>, NftError> {
        if !self.table_exists()? {
            return Ok(Vec::new());
        }
        let present: Vec<String> = self
            .dump(Dump::Chains, None)?
            .into_iter()
            .filter_map(|p| match p {
                Parsed::Chain { name, .. } => Some(name),
                _ => None,
            })
            .filter(|n| names.contains(&n.as_str()))
            .collect();
        if present.is_empty() {
            return Ok(present);
        }
        let tname = cstring(&self.table)?;
        let table = Table::new(&tname, ProtoFamily::Inet);
        let mut batch = Batch::new();
        let mut m = Msgs { labels: Vec::new() };
        for name in &present {
            let cname = cstring(name)?;
            let chain = Chain::new(&cname, &table);
            batch.add(&Rule::new(&chain), MsgType::Del);
            m.labels.push(format!("flush chain {name}"));
            batch.add(&chain, MsgType::Del);
            m.labels.push(format!("delete chain {name}"));
        }
        let fin = batch.finalize();
        self.commit(&fin, &m)?;
        Ok(present)
    }

    /// Per-rule counters (rules with a `counter`), keyed by rule comment.
    pub fn counters(&mut self) -> Result<Vec<RuleCounter>, NftError> {
        Ok(self
            .dump(Dump::Rules, None)?
            .into_iter()
            .filter_map(|p| match p {
                Parsed::Rule(r) => {
                    let (packets, bytes) = r.counter?;
                    Some(RuleCounter {
                        rule: comment_of(&r.userdata).unwrap_or_default(),
                        packets,
                        bytes,
                    })
                }
                _ => None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_handle_can_move_to_a_worker_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Nft>();
        assert_send::<NftError>();
    }

    #[test]
    fn dyn_set_names_parse() {
        assert_eq!(parse_dyn_set("r12_dyn_v4"), Some((12, true, Family::V4)));
        assert_eq!(parse_dyn_set("r3_dst_dyn_v6"), Some((3, false, Family::V6)));
        assert_eq!(parse_dyn_set("r3_dst_v6"), None);
        assert_eq!(parse_dyn_set("x3_dyn_v4"), None);
    }

    #[test]
    fn comments_parse_from_udata() {
        let mut ud = vec![0u8, 6];
        ud.extend_from_slice(b"r0/x\0\0");
        assert_eq!(comment_of(&ud).as_deref(), Some("r0/x"));
        assert_eq!(comment_of(&[0, 200, 1]), None);
        assert_eq!(comment_of(&[]), None);
    }

    #[test]
    fn netlink_messages_split_and_errors_parse() {
        let mut buf = Vec::new();
        // An NLMSG_ERROR (len 36) acking seq 7 with EEXIST.
        buf.extend_from_slice(&36u32.to_ne_bytes());
        buf.extend_from_slice(&2u16.to_ne_bytes());
        buf.extend_from_slice(&0u16.to_ne_bytes());
        buf.extend_from_slice(&7u32.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&(-libc::EEXIST).to_ne_bytes());
        buf.extend_from_slice(&[0u8; 8]);
        buf.extend_from_slice(&7u32.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&[1, 2, 3]); // truncated trailing garbage
        let ms = messages(&buf);
        assert_eq!(ms.len(), 1);
        assert_eq!(error_of(ms[0].2), Some((libc::EEXIST, 7)));
    }
}
