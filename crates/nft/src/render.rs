//! Pure rendering: [`RulesetSpec`] -> [`Ruleset`], a typed description of
//! the `inet` table (sets with elements, chains, rules as statement lists).
//! The same description feeds the netlink apply path (`ffi`/`apply`) and the
//! `nft -f` text printed by [`fmt::Display`].

use crate::model::{
    DnsRedirect, Hook, RuleSpec, RulesetSpec, Transport, Verdict, DNS_GATE_CHAIN,
    DNS_GATE_FORWARD_CHAIN, DNS_SNAPLEN, DSTNAT_PRIORITY, DYN_SET_SIZE,
};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Address family of a set or statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn suffix(self) -> &'static str {
        match self {
            Family::V4 => "v4",
            Family::V6 => "v6",
        }
    }
    fn nft_proto(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }
    fn addr_type(self) -> &'static str {
        match self {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        }
    }
    /// Address length in bytes.
    pub fn addr_len(self) -> u32 {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }
}

/// What a set is keyed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// One address.
    Addr(Family),
    /// `saddr . daddr`.
    AddrPair(Family),
}

impl KeyType {
    pub fn family(self) -> Family {
        match self {
            KeyType::Addr(f) | KeyType::AddrPair(f) => f,
        }
    }
}

/// Which address of the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrField {
    Saddr,
    Daddr,
}

/// A named set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDef {
    pub name: String,
    pub key: KeyType,
    /// `flags interval`: elements are ranges.
    pub interval: bool,
    /// `flags timeout`: elements expire.
    pub timeout: bool,
    /// Ranges for IPv4 interval sets (inclusive), empty otherwise.
    pub v4: Vec<(u32, u32)>,
    /// Ranges for IPv6 interval sets (inclusive), empty otherwise.
    pub v6: Vec<(u128, u128)>,
    /// `size N`: most elements the kernel accepts (dynamic sets).
    pub size: Option<u32>,
}

impl SetDef {
    /// Number of ranges (= elements without the interval-end flag in the kernel).
    pub fn range_count(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

/// One typed statement of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    /// `meta nfproto ipv4|ipv6`.
    NfProto(Family),
    /// `meta l4proto tcp|udp`.
    L4Proto(Transport),
    /// `ip daddr @set` and friends.
    Lookup {
        family: Family,
        field: AddrField,
        set: String,
    },
    /// `ip saddr . ip daddr @set`.
    LookupPair {
        family: Family,
        set: String,
    },
    /// `tcp dport 443` / `tcp dport 3478-3481` (implies the l4proto).
    Dport {
        proto: Transport,
        lo: u16,
        hi: u16,
    },
    /// `udp sport 53` (implies the l4proto).
    Sport {
        proto: Transport,
        port: u16,
    },
    /// `ct direction original`.
    CtDirectionOriginal,
    /// `ct direction reply`.
    CtDirectionReply,
    /// `ct original packets < N`.
    CtOriginalPacketsLt(u64),
    /// `ct original packets >= N`.
    CtOriginalPacketsGe(u64),
    /// `ct reply packets < N`.
    CtReplyPacketsLt(u64),
    /// `ct reply packets >= N`.
    CtReplyPacketsGe(u64),
    /// `limit rate N/second burst N packets`.
    LimitPerSecond(u32),
    Counter,
    /// `log group G snaplen S`.
    Log {
        group: u16,
        snaplen: u32,
    },
    Drop,
    /// `accept`: leave this table's chain.
    Accept,
    /// `reject with tcp reset`.
    RejectTcpReset,
    /// `reject with icmpx admin-prohibited`.
    RejectIcmpxAdminProhibited,
    /// `dnat ip to 192.0.2.1:53` / `dnat ip6 to [2001:db8::1]:53` (nat
    /// chains only; needs a preceding `meta nfproto` of the same family).
    Dnat {
        to: std::net::SocketAddr,
    },
}

impl Stmt {
    pub fn is_verdict(&self) -> bool {
        matches!(
            self,
            Stmt::Drop | Stmt::Accept | Stmt::RejectTcpReset | Stmt::RejectIcmpxAdminProhibited
        )
    }
}

/// A rule: statements plus a comment that names it (used for counters and
/// for tamper detection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDef {
    pub comment: String,
    pub stmts: Vec<Stmt>,
}

impl RuleDef {
    pub fn is_verdict(&self) -> bool {
        self.stmts.iter().any(Stmt::is_verdict)
    }
}

/// Netfilter hook of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChainHook {
    Forward,
    Output,
    Input,
    Prerouting,
}

impl ChainHook {
    pub fn name(self) -> &'static str {
        match self {
            ChainHook::Forward => "forward",
            ChainHook::Output => "output",
            ChainHook::Input => "input",
            ChainHook::Prerouting => "prerouting",
        }
    }
}

/// Type of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChainKind {
    #[default]
    Filter,
    /// Sees the first packet of each connection only; may rewrite addresses.
    Nat,
}

impl ChainKind {
    pub fn name(self) -> &'static str {
        match self {
            ChainKind::Filter => "filter",
            ChainKind::Nat => "nat",
        }
    }
}

/// A base chain, policy accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainDef {
    pub name: String,
    pub kind: ChainKind,
    pub hook: ChainHook,
    pub priority: i32,
    pub rules: Vec<RuleDef>,
}

/// The complete `table inet <name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub table: String,
    pub sets: Vec<SetDef>,
    pub chains: Vec<ChainDef>,
}

impl Ruleset {
    /// Total number of rules over all chains.
    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }

    pub fn set(&self, name: &str) -> Option<&SetDef> {
        self.sets.iter().find(|s| s.name == name)
    }

    /// An `nft -f` script that atomically replaces the table: create it (so the
    /// delete cannot fail), delete it, define it, all in one transaction.
    pub fn to_nft_script(&self) -> String {
        format!(
            "table inet {t}\ndelete table inet {t}\n{self}",
            t = self.table
        )
    }
}

/// Renders the intent into a table description. Pure and deterministic.
pub fn render(spec: &RulesetSpec) -> Ruleset {
    let mut sets = Vec::new();
    let mut main_rules = Vec::new();
    // Rules of the second base chain, which only logs DNS answers:
    // `output` in gateway mode, `input` in host mode.
    let mut local_rules: Vec<RuleDef> = Vec::new();
    // Gateway mode: an `input` chain that logs clients' queries to a
    // resolver on the gateway itself.
    let mut input_rules: Vec<RuleDef> = Vec::new();

    if let Some(log) = &spec.nflog {
        if log.first_packets > 0 {
            main_rules.push(RuleDef {
                comment: format!(
                    "nflog first {} packets group {} snaplen {}",
                    log.first_packets, log.group, log.snaplen
                ),
                stmts: vec![
                    Stmt::CtDirectionOriginal,
                    Stmt::CtOriginalPacketsLt(u64::from(log.first_packets)),
                    Stmt::Log {
                        group: log.group,
                        snaplen: log.snaplen,
                    },
                ],
            });
        }
        if log.dns_answers {
            let n = u64::from(log.first_packets);
            let log_stmt = Stmt::Log {
                group: log.group,
                snaplen: DNS_SNAPLEN,
            };
            let rate = log.dns_rate_per_sec;
            // Queries past a flow's first packets (a client socket reused
            // for many queries), at a rate; the first packets rule logs
            // the rest.
            main_rules.extend(dns_queries(n, rate, log_stmt.clone(), true));
            // Answers: only the reply direction of a flow the client
            // started; its first packets in full, the rest at a rate.
            let answers = dns_answers(n, rate, log_stmt.clone());
            match spec.hook {
                // Answers to clients from resolvers beyond the gateway pass
                // `forward`; answers from a resolver on the gateway itself
                // (dnsmasq, unbound, systemd-resolved) leave through
                // `output`, and the queries they answer arrive through
                // `input`, where no first-packets rule logs them.
                //
                // With the DNS gate's redirect every client's DNS goes to the
                // gate, which decides each answer before releasing it: the
                // gateway's own DNS chains would only log the gate's answers
                // for a second, passive decision, so they are left out.
                Hook::Forward => {
                    main_rules.extend(answers.iter().cloned());
                    if spec.dns_redirect.is_none() {
                        local_rules = answers;
                        input_rules = dns_queries(n, rate, log_stmt, false);
                    }
                }
                // Host mode: answers to the host's own queries arrive
                // through `input` (they never pass `output`).
                Hook::Output => local_rules = answers,
            }
        }
    }

    for rule in &spec.rules {
        render_rule(rule, spec.enforce, &mut sets, &mut main_rules);
    }

    let (hook, name) = match spec.hook {
        Hook::Forward => (ChainHook::Forward, "forward"),
        Hook::Output => (ChainHook::Output, "output"),
    };
    let mut chains = vec![ChainDef {
        name: name.to_string(),
        kind: ChainKind::Filter,
        hook,
        priority: spec.priority,
        rules: main_rules,
    }];
    if !local_rules.is_empty() {
        let (hook, name) = match spec.hook {
            Hook::Forward => (ChainHook::Output, "output"),
            Hook::Output => (ChainHook::Input, "input"),
        };
        chains.push(ChainDef {
            name: name.to_string(),
            kind: ChainKind::Filter,
            hook,
            priority: spec.priority,
            rules: local_rules,
        });
    }
    if !input_rules.is_empty() {
        chains.push(ChainDef {
            name: "input".to_string(),
            kind: ChainKind::Filter,
            hook: ChainHook::Input,
            priority: spec.priority,
            rules: input_rules,
        });
    }
    // The DNS gate's chains are their own, so that failing open removes
    // exactly them (`Nft::remove_chains`).
    if let Some(r) = &spec.dns_redirect {
        if spec.hook == Hook::Forward {
            chains.push(ChainDef {
                name: DNS_GATE_CHAIN.to_string(),
                kind: ChainKind::Nat,
                hook: ChainHook::Prerouting,
                priority: DSTNAT_PRIORITY,
                rules: redirect_rules(r),
            });
            if spec.enforce {
                chains.push(ChainDef {
                    name: DNS_GATE_FORWARD_CHAIN.to_string(),
                    kind: ChainKind::Filter,
                    hook: ChainHook::Forward,
                    priority: spec.priority,
                    rules: forwarded_dns_rejects(),
                });
            }
        }
    }
    Ruleset {
        table: spec.table.clone(),
        sets,
        chains,
    }
}

/// DNS query logging (`dport 53`, original direction): with
/// `after_first`, only past the first `n` packets of a flow (the
/// first-packets rule logs those), at most `rate` a second; without, also
/// the first `n` in full.
fn dns_queries(n: u64, rate: u32, log: Stmt, after_first: bool) -> Vec<RuleDef> {
    let mut out = Vec::new();
    for proto in [Transport::Udp, Transport::Tcp] {
        let base = vec![
            Stmt::Dport {
                proto,
                lo: 53,
                hi: 53,
            },
            Stmt::CtDirectionOriginal,
        ];
        if !after_first && n > 0 {
            let mut stmts = base.clone();
            stmts.extend([Stmt::CtOriginalPacketsLt(n), log.clone()]);
            out.push(RuleDef {
                comment: format!("nflog dns queries {} {log}", proto.name()),
                stmts,
            });
        }
        if rate > 0 {
            let mut stmts = base;
            if n > 0 {
                stmts.push(Stmt::CtOriginalPacketsGe(n));
            }
            stmts.extend([Stmt::LimitPerSecond(rate), log.clone()]);
            out.push(RuleDef {
                comment: format!(
                    "nflog dns queries {} after {n} limit {rate} {log}",
                    proto.name()
                ),
                stmts,
            });
        }
    }
    out
}

/// `meta nfproto F udp|tcp dport 53 dnat to GATE` for each family the gate
/// listens on.
fn redirect_rules(r: &DnsRedirect) -> Vec<RuleDef> {
    let targets = [
        (Family::V4, r.v4.map(std::net::SocketAddr::V4)),
        (Family::V6, r.v6.map(std::net::SocketAddr::V6)),
    ];
    let mut out = Vec::new();
    for (fam, to) in targets {
        let Some(to) = to else { continue };
        for proto in [Transport::Udp, Transport::Tcp] {
            out.push(RuleDef {
                comment: format!("dns gate redirect {} {}", proto.name(), fam.suffix()),
                stmts: vec![
                    Stmt::NfProto(fam),
                    Stmt::Dport {
                        proto,
                        lo: 53,
                        hi: 53,
                    },
                    Stmt::Counter,
                    Stmt::Dnat { to },
                ],
            });
        }
    }
    out
}

/// DNS answer logging (`sport 53`) in the reply direction of a tracked
/// flow only: the first `n` packets in full, the rest at most `rate` a
/// second.
fn dns_answers(n: u64, rate: u32, log: Stmt) -> Vec<RuleDef> {
    let mut out = Vec::new();
    for proto in [Transport::Udp, Transport::Tcp] {
        let base = vec![Stmt::Sport { proto, port: 53 }, Stmt::CtDirectionReply];
        if n > 0 {
            let mut stmts = base.clone();
            stmts.extend([Stmt::CtReplyPacketsLt(n), log.clone()]);
            out.push(RuleDef {
                comment: format!("nflog dns answers {} {log}", proto.name()),
                stmts,
            });
        }
        if rate > 0 {
            let mut stmts = base;
            if n > 0 {
                stmts.push(Stmt::CtReplyPacketsGe(n));
            }
            stmts.extend([Stmt::LimitPerSecond(rate), log.clone()]);
            out.push(RuleDef {
                comment: format!(
                    "nflog dns answers {} after {n} limit {rate} {log}",
                    proto.name()
                ),
                stmts,
            });
        }
    }
    out
}

/// With the gate on, DNS that is still forwarded (not redirected: a family
/// the gate has no address for) is rejected.
fn forwarded_dns_rejects() -> Vec<RuleDef> {
    vec![
        RuleDef {
            comment: "dns gate: forwarded dns rejected tcp".to_string(),
            stmts: vec![
                Stmt::Dport {
                    proto: Transport::Tcp,
                    lo: 53,
                    hi: 53,
                },
                Stmt::Counter,
                Stmt::RejectTcpReset,
            ],
        },
        RuleDef {
            comment: "dns gate: forwarded dns rejected udp".to_string(),
            stmts: vec![
                Stmt::Dport {
                    proto: Transport::Udp,
                    lo: 53,
                    hi: 53,
                },
                Stmt::Counter,
                Stmt::RejectIcmpxAdminProhibited,
            ],
        },
    ]
}

fn render_rule(rule: &RuleSpec, enforce: bool, sets: &mut Vec<SetDef>, out: &mut Vec<RuleDef>) {
    let i = rule.index;
    let name = sanitize(&rule.name);
    for fam in [Family::V4, Family::V6] {
        let sfx = fam.suffix();
        let mut src_prefix = Vec::new();
        if let Some(src) = &rule.src {
            let set = format!("r{i}_src_{sfx}");
            sets.push(interval_set(&set, fam, src));
            src_prefix.push(Stmt::Lookup {
                family: fam,
                field: AddrField::Saddr,
                set,
            });
        }
        if let Some(dst) = &rule.static_dst {
            let set = format!("r{i}_dst_{sfx}");
            sets.push(interval_set(&set, fam, dst));
            let mut base = vec![Stmt::NfProto(fam)];
            base.extend(src_prefix.iter().cloned());
            base.push(Stmt::Lookup {
                family: fam,
                field: AddrField::Daddr,
                set,
            });
            if rule.static_ports.is_empty() {
                emit(
                    rule,
                    enforce,
                    base,
                    &format!("r{i}/static/{sfx} {name}"),
                    out,
                );
            } else {
                for &(proto, lo, hi) in &rule.static_ports {
                    let mut b = base.clone();
                    b.push(Stmt::Dport { proto, lo, hi });
                    let label = format!("r{i}/static/{sfx}/{}:{lo}-{hi} {name}", proto.name());
                    emit(rule, enforce, b, &label, out);
                }
            }
        }
        if rule.dynamic {
            let pair = format!("r{i}_dyn_{sfx}");
            sets.push(SetDef {
                name: pair.clone(),
                key: KeyType::AddrPair(fam),
                interval: false,
                timeout: true,
                v4: Vec::new(),
                v6: Vec::new(),
                size: Some(DYN_SET_SIZE),
            });
            let base = vec![
                Stmt::NfProto(fam),
                Stmt::LookupPair {
                    family: fam,
                    set: pair,
                },
            ];
            emit(rule, enforce, base, &format!("r{i}/dyn/{sfx} {name}"), out);

            let dst = format!("r{i}_dst_dyn_{sfx}");
            sets.push(SetDef {
                name: dst.clone(),
                key: KeyType::Addr(fam),
                interval: false,
                timeout: true,
                v4: Vec::new(),
                v6: Vec::new(),
                size: Some(DYN_SET_SIZE),
            });
            let mut base = vec![Stmt::NfProto(fam)];
            base.extend(src_prefix.iter().cloned());
            base.push(Stmt::Lookup {
                family: fam,
                field: AddrField::Daddr,
                set: dst,
            });
            emit(
                rule,
                enforce,
                base,
                &format!("r{i}/dst-dyn/{sfx} {name}"),
                out,
            );
        }
    }
}

/// Appends the verdict rule(s) for one match. Reject is split in two: TCP
/// gets a reset, the rest (which the first rule did not stop) gets ICMPX.
fn emit(rule: &RuleSpec, enforce: bool, base: Vec<Stmt>, label: &str, out: &mut Vec<RuleDef>) {
    if !enforce {
        return;
    }
    let proto = base.iter().find_map(|s| match s {
        Stmt::Dport { proto, .. } | Stmt::Sport { proto, .. } | Stmt::L4Proto(proto) => {
            Some(*proto)
        }
        _ => None,
    });
    match rule.verdict {
        Verdict::Drop | Verdict::Accept => {
            let mut s = base;
            s.extend([
                Stmt::Counter,
                if rule.verdict == Verdict::Drop {
                    Stmt::Drop
                } else {
                    Stmt::Accept
                },
            ]);
            out.push(RuleDef {
                comment: label.to_string(),
                stmts: s,
            });
        }
        Verdict::Reject => {
            if proto != Some(Transport::Udp) {
                let mut s = base.clone();
                if proto.is_none() {
                    s.push(Stmt::L4Proto(Transport::Tcp));
                }
                s.extend([Stmt::Counter, Stmt::RejectTcpReset]);
                out.push(RuleDef {
                    comment: format!("{label} [tcp]"),
                    stmts: s,
                });
            }
            if proto != Some(Transport::Tcp) {
                let mut s = base;
                s.extend([Stmt::Counter, Stmt::RejectIcmpxAdminProhibited]);
                out.push(RuleDef {
                    comment: label.to_string(),
                    stmts: s,
                });
            }
        }
    }
}

fn interval_set(name: &str, fam: Family, r: &geofence_geo::IpRanges) -> SetDef {
    let (v4, v6) = match fam {
        Family::V4 => (r.v4().to_vec(), Vec::new()),
        Family::V6 => (Vec::new(), r.v6().to_vec()),
    };
    SetDef {
        name: name.to_string(),
        key: KeyType::Addr(fam),
        interval: true,
        timeout: false,
        v4,
        v6,
        size: None,
    }
}

/// Rule comments end up in a 128-byte kernel attribute and in `nft` syntax:
/// keep printable ASCII without quotes, at most 80 bytes.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect()
}

/// `lo/len` when the range is one CIDR block, else `lo-hi`.
fn fmt_range_v4(f: &mut fmt::Formatter<'_>, lo: u32, hi: u32) -> fmt::Result {
    let span = hi.wrapping_sub(lo);
    let (a, b) = (Ipv4Addr::from(lo), Ipv4Addr::from(hi));
    if lo <= hi && span & span.wrapping_add(1) == 0 && lo & span == 0 {
        let len = 32 - span.count_ones();
        if len == 32 {
            write!(f, "{a}")
        } else {
            write!(f, "{a}/{len}")
        }
    } else {
        write!(f, "{a}-{b}")
    }
}

fn fmt_range_v6(f: &mut fmt::Formatter<'_>, lo: u128, hi: u128) -> fmt::Result {
    let span = hi.wrapping_sub(lo);
    let (a, b) = (Ipv6Addr::from(lo), Ipv6Addr::from(hi));
    if lo <= hi && span & span.wrapping_add(1) == 0 && lo & span == 0 {
        let len = 128 - span.count_ones();
        if len == 128 {
            write!(f, "{a}")
        } else {
            write!(f, "{a}/{len}")
        }
    } else {
        write!(f, "{a}-{b}")
    }
}

impl fmt::Display for Stmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stmt::NfProto(Family::V4) => f.write_str("meta nfproto ipv4"),
            Stmt::NfProto(Family::V6) => f.write_str("meta nfproto ipv6"),
            Stmt::L4Proto(p) => write!(f, "meta l4proto {}", p.name()),
            Stmt::Lookup { family, field, set } => {
                let fld = match field {
                    AddrField::Saddr => "saddr",
                    AddrField::Daddr => "daddr",
                };
                write!(f, "{} {fld} @{set}", family.nft_proto())
            }
            Stmt::LookupPair { family, set } => {
                let p = family.nft_proto();
                write!(f, "{p} saddr . {p} daddr @{set}")
            }
            Stmt::Dport { proto, lo, hi } if lo == hi => write!(f, "{} dport {lo}", proto.name()),
            Stmt::Dport { proto, lo, hi } => write!(f, "{} dport {lo}-{hi}", proto.name()),
            Stmt::Sport { proto, port } => write!(f, "{} sport {port}", proto.name()),
            Stmt::CtDirectionOriginal => f.write_str("ct direction original"),
            Stmt::CtDirectionReply => f.write_str("ct direction reply"),
            Stmt::CtOriginalPacketsLt(n) => write!(f, "ct original packets < {n}"),
            Stmt::CtOriginalPacketsGe(n) => write!(f, "ct original packets >= {n}"),
            Stmt::CtReplyPacketsLt(n) => write!(f, "ct reply packets < {n}"),
            Stmt::CtReplyPacketsGe(n) => write!(f, "ct reply packets >= {n}"),
            Stmt::LimitPerSecond(n) => write!(f, "limit rate {n}/second burst {n} packets"),
            Stmt::Counter => f.write_str("counter"),
            Stmt::Log { group, snaplen } => write!(f, "log group {group} snaplen {snaplen}"),
            Stmt::Drop => f.write_str("drop"),
            Stmt::Accept => f.write_str("accept"),
            Stmt::RejectTcpReset => f.write_str("reject with tcp reset"),
            Stmt::RejectIcmpxAdminProhibited => f.write_str("reject with icmpx admin-prohibited"),
            Stmt::Dnat { to } => match to {
                std::net::SocketAddr::V4(a) => write!(f, "dnat ip to {a}"),
                std::net::SocketAddr::V6(a) => write!(f, "dnat ip6 to {a}"),
            },
        }
    }
}

impl fmt::Display for RuleDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.stmts {
            write!(f, "{s} ")?;
        }
        write!(f, "comment \"{}\"", self.comment)
    }
}

impl fmt::Display for SetDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\tset {} {{", self.name)?;
        match self.key {
            KeyType::Addr(fam) => writeln!(f, "\t\ttype {}", fam.addr_type())?,
            KeyType::AddrPair(fam) => writeln!(f, "\t\ttype {t} . {t}", t = fam.addr_type())?,
        }
        match (self.interval, self.timeout) {
            (true, true) => writeln!(f, "\t\tflags interval,timeout")?,
            (true, false) => writeln!(f, "\t\tflags interval")?,
            (false, true) => writeln!(f, "\t\tflags timeout")?,
            (false, false) => {}
        }
        if let Some(n) = self.size {
            writeln!(f, "\t\tsize {n}")?;
        }
        if self.range_count() > 0 {
            f.write_str("\t\telements = { ")?;
            let mut first = true;
            for &(lo, hi) in &self.v4 {
                if !first {
                    f.write_str(", ")?;
                }
                first = false;
                fmt_range_v4(f, lo, hi)?;
            }
            for &(lo, hi) in &self.v6 {
                if !first {
                    f.write_str(", ")?;
                }
                first = false;
                fmt_range_v6(f, lo, hi)?;
            }
            f.write_str(" }\n")?;
        }
        writeln!(f, "\t}}")
    }
}

impl fmt::Display for Ruleset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "table inet {} {{", self.table)?;
        for s in &self.sets {
            write!(f, "{s}")?;
        }
        for c in &self.chains {
            writeln!(f, "\tchain {} {{", c.name)?;
            writeln!(
                f,
                "\t\ttype {} hook {} priority {}; policy accept;",
                c.kind.name(),
                c.hook.name(),
                c.priority
            )?;
            for r in &c.rules {
                writeln!(f, "\t\t{r}")?;
            }
            writeln!(f, "\t}}")?;
        }
        writeln!(f, "}}")
    }
}
