//! From policy to kernel intent: a pure function (no I/O) that turns the
//! compiled policy, the geo databases and the app signatures into the
//! [`RulesetSpec`] the nftables stage renders and applies.
//!
//! The static layer is what can be known before any packet: for each
//! `block` rule, the destinations in its jurisdictions (every network of its
//! countries, enumerated from the databases and merged), intersected with
//! the vendor ranges of its apps (or taken whole for an all-traffic rule).
//! First match wins in the policy, so destinations that an earlier
//! non-blocking rule (allow or alert) covers for every client are removed
//! from a later block rule's static set. What cannot be known statically
//! (apps without vendor ranges, DNS and SNI detections, `unknown`
//! destinations outside the enumerable space) is left to the dynamic layer,
//! which the daemon fills from the engine's decisions.

use geofence_classify::sigdb::SignatureDb;
use geofence_classify::AppId;
use geofence_geo::{GeoDb, GeoField, IpRanges};
use geofence_nft::model::{
    DnsRedirect, Hook, NflogSpec, RuleSpec, RulesetSpec, Verdict, DEFAULT_PRIORITY,
};
use geofence_policy::{Action, By, CompiledRule, Config, Mode, Policy};
use std::net::IpAddr;

/// Packets per connection (original direction) handed to the classifier:
/// SYN, ACK and up to four payload segments, so a ClientHello split over
/// several segments (post-quantum key shares) and a QUIC Initial spread
/// over two datagrams are still seen whole.
pub const FIRST_PACKETS: u32 = 8;
/// Bytes copied per logged packet: a full MTU, so ClientHellos and QUIC
/// Initials arrive whole.
pub const SNAPLEN: u32 = 1500;

/// The nftables table the daemon owns.
pub const TABLE: &str = "geofence";

/// Destinations of a rule's `to` that the databases can enumerate.
struct Geo<'a> {
    db: &'a GeoDb,
    public: IpRanges,
    /// Every network with a country, per field (for `unknown`), computed lazily.
    known_loc: Option<IpRanges>,
    known_reg: Option<IpRanges>,
}

impl Geo<'_> {
    fn known(&mut self, field: GeoField) -> IpRanges {
        let slot = match field {
            GeoField::Location => &mut self.known_loc,
            GeoField::Registered => &mut self.known_reg,
        };
        slot.get_or_insert_with(|| {
            self.db
                .ranges_by_country(field)
                .values()
                .fold(IpRanges::new(), |acc, r| acc.union(r))
        })
        .clone()
    }

    fn destinations(&mut self, r: &CompiledRule) -> IpRanges {
        if r.any {
            return self.public.clone();
        }
        let mut out = IpRanges::new();
        if !r.location_countries.is_empty() {
            out = out.union(
                &self
                    .db
                    .ranges_for_countries(&r.location_countries, GeoField::Location),
            );
        }
        if !r.registered_countries.is_empty() {
            out = out.union(
                &self
                    .db
                    .ranges_for_countries(&r.registered_countries, GeoField::Registered),
            );
        }
        if r.includes_unknown && !self.db.databases().is_empty() {
            let known = match r.by {
                By::Location => self.known(GeoField::Location),
                By::Operator => self.known(GeoField::Registered),
                By::Either => self
                    .known(GeoField::Location)
                    .union(&self.known(GeoField::Registered)),
            };
            let unknown = self.public.difference(&known);
            out = out.union(&unknown);
        } else if r.includes_unknown {
            // No database: every public destination is unknown.
            out = self.public.clone();
        }
        out
    }
}

/// The static vendor ranges of the rule's apps (those usable without ports).
fn app_ranges(r: &CompiledRule, sigs: &SignatureDb) -> Option<IpRanges> {
    let apps = r.apps.as_ref()?;
    let mut out = IpRanges::new();
    for a in apps {
        if let Some(app) = sigs.find(a.as_str()) {
            let (ranges, _ports, need_ports) = sigs.static_ranges(app);
            if !need_ports {
                out = out.union(&ranges);
            }
        }
    }
    Some(out)
}

/// Whether an earlier rule for `earlier` apps takes destinations from a
/// later rule for `later` apps: either is for all traffic, or they share an
/// app.
fn overlaps(earlier: Option<&[AppId]>, later: Option<&[AppId]>) -> bool {
    match (earlier, later) {
        (None, _) | (_, None) => true,
        (Some(a), Some(b)) => a.iter().any(|x| b.contains(x)),
    }
}

/// The static layer of [`ruleset_spec`] as a point query, without
/// enumerating the databases: which block rule's static set stops traffic
/// from `src` to `dst` before any packet is classified, or `None`. Replay
/// uses it to report what the kernel does with a flow the engine never
/// labels; a test checks it against the enumerated sets.
pub struct StaticLayer {
    public: IpRanges,
    /// Per policy rule, the vendor ranges of its apps (`None`: all traffic).
    app_ranges: Vec<Option<IpRanges>>,
}

impl StaticLayer {
    pub fn new(policy: &Policy, sigs: &SignatureDb) -> StaticLayer {
        StaticLayer {
            public: IpRanges::public(),
            app_ranges: policy.rules().iter().map(|r| app_ranges(r, sigs)).collect(),
        }
    }

    /// The block rule whose static set holds `dst` for `src`, in chain
    /// order: an earlier allow/alert rule that takes the destination (for
    /// every client, or for `src` by its `from`) ends the search.
    pub fn blocking_rule(
        &self,
        policy: &Policy,
        geo: &GeoDb,
        src: IpAddr,
        dst: IpAddr,
    ) -> Option<usize> {
        if !self.public.contains(dst) {
            return None;
        }
        let g = geo.lookup(dst);
        let in_dest = |r: &CompiledRule| {
            r.any
                || (r.includes_unknown && geo.databases().is_empty())
                || r.match_destination(&g).is_some()
        };
        let mut shadows: Vec<Option<&[AppId]>> = Vec::new();
        for (r, ar) in policy.rules().iter().zip(&self.app_ranges) {
            // Address exceptions are cut out of the rule's sets (below).
            let hit = ar.as_ref().is_none_or(|ar| ar.contains(dst))
                && in_dest(r)
                && !r.except.dst.contains(dst);
            if r.action != Action::Block {
                if hit {
                    match &r.from {
                        None => shadows.push(r.apps.as_deref()),
                        Some(from) if from.contains(src) => return None,
                        Some(_) => {}
                    }
                }
                continue;
            }
            if hit
                && r.applies_to_source(src)
                && !shadows.iter().any(|s| overlaps(*s, r.apps.as_deref()))
            {
                return Some(r.index);
            }
        }
        None
    }
}

/// Builds the kernel intent for `policy`.
pub fn ruleset_spec(
    config: &Config,
    policy: &Policy,
    geo: &GeoDb,
    sigs: &SignatureDb,
) -> RulesetSpec {
    let mut g = Geo {
        db: geo,
        public: IpRanges::public(),
        known_loc: None,
        known_reg: None,
    };
    // Destinations that earlier non-blocking rules take for every client,
    // per app scope: (apps or None for all traffic, destinations).
    let mut shadow: Vec<(Option<Vec<geofence_classify::AppId>>, IpRanges)> = Vec::new();
    let mut rules = Vec::new();
    for r in policy.rules() {
        let dest = g.destinations(r);
        if r.action != Action::Block {
            let taken = match app_ranges(r, sigs) {
                Some(ar) => dest.intersect(&ar),
                None => dest,
            }
            .difference(&r.except.dst);
            match &r.from {
                // For every client: later block rules never see these
                // destinations (for the apps this rule covers).
                None => shadow.push((r.apps.clone(), taken)),
                // For some clients: an exception in the kernel, ahead of
                // the block rules that follow, so those clients' traffic
                // to these destinations leaves our chain.
                Some(from) if !taken.is_empty() => rules.push(RuleSpec {
                    index: r.index,
                    name: r.name.clone(),
                    verdict: Verdict::Accept,
                    src: Some(from.clone()),
                    static_dst: Some(taken),
                    static_ports: Vec::new(),
                    dynamic: false,
                }),
                Some(_) => {}
            }
            continue;
        }
        // `except` addresses and CIDRs never enter the rule's sets.
        let mut static_dst = match app_ranges(r, sigs) {
            Some(ar) => dest.intersect(&ar),
            None => dest,
        }
        .difference(&r.except.dst);
        for (apps, taken) in &shadow {
            if overlaps(apps.as_deref(), r.apps.as_deref()) {
                static_dst = static_dst.difference(taken);
            }
        }
        rules.push(RuleSpec {
            index: r.index,
            name: r.name.clone(),
            verdict: match r.verdict {
                geofence_policy::Verdict::Drop => Verdict::Drop,
                geofence_policy::Verdict::Reject => Verdict::Reject,
            },
            src: r.from.clone(),
            static_dst: if static_dst.is_empty() {
                None
            } else {
                Some(static_dst)
            },
            static_ports: Vec::new(),
            dynamic: true,
        });
    }
    RulesetSpec {
        table: TABLE.to_string(),
        hook: match config.daemon.mode {
            Mode::Gateway => Hook::Forward,
            Mode::Host => Hook::Output,
        },
        priority: DEFAULT_PRIORITY,
        enforce: config.daemon.enforce,
        dns_redirect: dns_redirect(config),
        nflog: Some(NflogSpec {
            group: config.daemon.nflog_group,
            first_packets: FIRST_PACKETS,
            snaplen: SNAPLEN,
            dns_answers: true,
            dns_rate_per_sec: geofence_nft::model::DNS_RATE_PER_SEC,
        }),
        rules,
    }
}

/// The DNS gate's redirect targets, when the gate is on and redirects.
pub fn dns_redirect(config: &Config) -> Option<DnsRedirect> {
    let g = &config.dns_gate;
    if !g.enabled || !g.redirect || config.daemon.mode != Mode::Gateway {
        return None;
    }
    let mut r = DnsRedirect { v4: None, v6: None };
    for a in &g.listen {
        match a {
            std::net::SocketAddr::V4(v4) => r.v4 = r.v4.or(Some(*v4)),
            std::net::SocketAddr::V6(v6) => r.v6 = r.v6.or(Some(*v6)),
        }
    }
    Some(r)
}
