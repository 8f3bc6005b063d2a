//! The compiled policy and the pure decision function.

use crate::config::{Action, By, Config, RuleConfig, TunnelName, Verdict};
use crate::error::{locate, tpath, ConfigError, Invalid, Loc};
use crate::validate::{self, check_cidr, is_jurisdiction_name};
use geofence_classify::sigdb::SignatureDb;
use geofence_classify::sigs::AppDef;
use geofence_classify::{AppId, Category, BUILTIN_APPS, CONFERENCING_GROUP};
use geofence_geo::{CountryCode, GeoInfo, IpRanges};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::OnceLock;

/// One flow to decide on.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The recognised app, if any.
    pub app: Option<&'a AppId>,
    /// What the geo stage knows about `dst`.
    pub geo: &'a GeoInfo,
    /// Server name seen for the flow (TLS/QUIC SNI, DNS question), for
    /// host-name `except` entries.
    pub host: Option<&'a str>,
}

/// A rule's position (0-based, file order) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RuleRef {
    pub index: usize,
    pub name: String,
}

/// Which of the destination's countries made a rule match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    /// `GeoInfo.country`.
    Location,
    /// `GeoInfo.registered_country`.
    Operator,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Location => "location",
            Basis::Operator => "operator",
        }
    }
}

/// Why the decision came out the way it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecidedBy {
    /// `rule` matched.
    Rule,
    /// No rule matched a public destination: `[default]`.
    Default,
    /// The destination is not public (private, loopback, ...): never in a
    /// jurisdiction, always allowed, whatever `[default]` says.
    NonPublic,
}

/// The outcome of [`Policy::decide`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub action: Action,
    pub decided_by: DecidedBy,
    /// The matching rule; None for the default and non-public destinations.
    pub rule: Option<RuleRef>,
    /// The `to` entry that matched: a jurisdiction name, a country code
    /// written directly in `to`, `unknown` or `any`.
    pub jurisdiction: Option<String>,
    /// The destination country that matched (None for `unknown`).
    pub country: Option<CountryCode>,
    /// Which country field matched (None for `unknown`, or `any` without a country).
    pub basis: Option<Basis>,
    /// How to stop the flow; meaningful when `action` is `block`.
    pub verdict: Verdict,
}

impl Decision {
    pub fn is_block(&self) -> bool {
        self.action == Action::Block
    }

    /// True for `block` and `alert`.
    pub fn emits_alert(&self) -> bool {
        self.action.emits_alert()
    }
}

/// One entry of a rule's `to`, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Target {
    /// Every public destination, with or without a country.
    Any,
    /// A public destination with no country under the rule's `by`.
    Unknown,
    /// A named jurisdiction from `[jurisdictions]`.
    Jurisdiction {
        name: String,
        countries: Vec<CountryCode>,
    },
    /// A country code written directly in `to`.
    Country { code: CountryCode },
}

impl Target {
    /// The name as written in `to`.
    pub fn name(&self) -> String {
        match self {
            Target::Any => "any".to_string(),
            Target::Unknown => "unknown".to_string(),
            Target::Jurisdiction { name, .. } => name.clone(),
            Target::Country { code } => code.to_string(),
        }
    }

    fn countries(&self) -> &[CountryCode] {
        match self {
            Target::Jurisdiction { countries, .. } => countries,
            Target::Country { code } => std::slice::from_ref(code),
            Target::Any | Target::Unknown => &[],
        }
    }
}

/// How a destination matched a rule's `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestMatch {
    pub jurisdiction: String,
    pub country: Option<CountryCode>,
    pub basis: Option<Basis>,
}

/// A rule ready for matching and for rendering into kernel rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledRule {
    pub index: usize,
    pub name: String,
    pub description: Option<String>,
    /// None = all traffic (including flows with no recognised app); else the
    /// sorted app ids, with the group `conferencing` expanded.
    pub apps: Option<Vec<AppId>>,
    /// Source scoping; None = every source.
    pub from: Option<IpRanges>,
    pub by: By,
    /// The `to` entries, in order.
    pub targets: Vec<Target>,
    /// Countries matched against `GeoInfo.country` (empty unless `by` is
    /// `location` or `either`), sorted.
    pub location_countries: Vec<CountryCode>,
    /// Countries matched against `GeoInfo.registered_country` (empty unless
    /// `by` is `operator` or `either`), sorted.
    pub registered_countries: Vec<CountryCode>,
    /// `to` includes `unknown`: public destinations with no country under
    /// `by` (for `either`: neither field has a country).
    pub includes_unknown: bool,
    /// `to` is `["any"]`: every public destination.
    pub any: bool,
    pub action: Action,
    /// Meaningful for `block` (always `reject` for other actions).
    pub verdict: Verdict,
    /// Destinations the rule does not apply to.
    pub except: crate::except::Except,
}

impl CompiledRule {
    pub fn rule_ref(&self) -> RuleRef {
        RuleRef {
            index: self.index,
            name: self.name.clone(),
        }
    }

    pub fn applies_to_source(&self, src: IpAddr) -> bool {
        self.from.as_ref().is_none_or(|r| r.contains(src))
    }

    pub fn applies_to_app(&self, app: Option<&AppId>) -> bool {
        match (&self.apps, app) {
            (None, _) => true,
            (Some(list), Some(a)) => list.binary_search(a).is_ok(),
            (Some(_), None) => false,
        }
    }

    /// Whether a public destination falls under `to`; None for non-public
    /// destinations.
    pub fn match_destination(&self, geo: &GeoInfo) -> Option<DestMatch> {
        if !geo.scope.is_public() {
            return None;
        }
        let keys = keys(geo, self.by);
        for t in &self.targets {
            match t {
                Target::Any => {
                    let first = keys.iter().find_map(|(b, c)| c.map(|c| (*b, c)));
                    return Some(DestMatch {
                        jurisdiction: "any".to_string(),
                        country: first.map(|(_, c)| c),
                        basis: first.map(|(b, _)| b),
                    });
                }
                Target::Unknown => {
                    if is_unknown(geo, self.by) {
                        return Some(DestMatch {
                            jurisdiction: "unknown".to_string(),
                            country: None,
                            basis: None,
                        });
                    }
                }
                Target::Jurisdiction { .. } | Target::Country { .. } => {
                    for (basis, c) in keys.iter() {
                        if let Some(c) = c {
                            if t.countries().binary_search(c).is_ok() {
                                return Some(DestMatch {
                                    jurisdiction: t.name(),
                                    country: Some(*c),
                                    basis: Some(*basis),
                                });
                            }
                        }
                    }
                }
            }
        }
        None
    }
}

/// The countries a rule with `by` looks at, location first (no allocation).
fn keys(geo: &GeoInfo, by: By) -> Keys {
    let loc = (Basis::Location, geo.country);
    let reg = (Basis::Operator, geo.registered_country);
    match by {
        By::Location => Keys([Some(loc), None]),
        By::Operator => Keys([Some(reg), None]),
        By::Either => Keys([Some(loc), Some(reg)]),
    }
}

struct Keys([Option<(Basis, Option<CountryCode>)>; 2]);

impl Keys {
    fn iter(&self) -> impl Iterator<Item = &(Basis, Option<CountryCode>)> {
        self.0.iter().flatten()
    }
}

/// Public and no country under `by` (for `either`: in neither field). There
/// is no fallback from `operator` to the location country.
fn is_unknown(geo: &GeoInfo, by: By) -> bool {
    geo.scope.is_public()
        && match by {
            By::Location => geo.country.is_none(),
            By::Operator => geo.registered_country.is_none(),
            By::Either => geo.country.is_none() && geo.registered_country.is_none(),
        }
}

/// A compiled, immutable policy: cheap to query from many threads.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<CompiledRule>,
    default_action: Action,
    default_verdict: Verdict,
    jurisdictions: Vec<(String, Vec<CountryCode>)>,
    categories: HashMap<AppId, Category>,
    tunnels: Vec<TunnelName>,
    undecidable: Action,
}

impl Policy {
    /// Compiles `config` with the built-in apps, the apps from its
    /// signature directories and its `[[app]]` tables.
    pub fn from_config(config: &Config) -> Result<Policy, ConfigError> {
        Policy::compile(config, &[])
    }

    /// Like [`Policy::from_config`], also knowing `extra` apps (for example
    /// definitions the daemon got from elsewhere). Precedence when an id
    /// repeats: built-in (`BUILTIN_APPS` and the classifier's compiled-in
    /// signatures) < `extra` < signature directories < `[[app]]` tables.
    pub fn compile(config: &Config, extra: &[AppDef]) -> Result<Policy, ConfigError> {
        build(config, extra).map_err(|e| e.place(config.source.as_ref()))
    }

    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    pub fn default_action(&self) -> Action {
        self.default_action
    }

    pub fn default_verdict(&self) -> Verdict {
        self.default_verdict
    }

    /// The `[jurisdictions]`, sorted by name.
    pub fn jurisdictions(&self) -> &[(String, Vec<CountryCode>)] {
        &self.jurisdictions
    }

    /// The `[decode] tunnels` the decoder opens (swapped with the policy on
    /// reload).
    pub fn tunnels(&self) -> &[TunnelName] {
        &self.tunnels
    }

    /// True when `app` is known and of category `conferencing`.
    pub fn app_is_conferencing(&self, app: &AppId) -> bool {
        self.categories.get(app) == Some(&Category::Conferencing)
    }

    /// Every app id the policy knows, with its category.
    pub fn apps(&self) -> impl Iterator<Item = (&AppId, Category)> {
        self.categories.iter().map(|(a, c)| (a, *c))
    }

    /// First matching rule wins; `[default]` otherwise. Non-public
    /// destinations are always allowed.
    /// `[inspection] undecidable`.
    pub fn undecidable_action(&self) -> Action {
        self.undecidable
    }

    /// Decides a flow whose handshake stayed undecidable (its app cannot be
    /// known). A rule for all traffic that matches decides as usual.
    /// Otherwise jurisdiction still matters: only when some app rule that
    /// applies to this client would **block** this destination does
    /// `[inspection] undecidable` apply (as that rule's decision, with its
    /// verdict); elsewhere the flow gets what an unrecognised flow gets.
    pub fn decide_undecidable(&self, src: IpAddr, dst: IpAddr, geo: &GeoInfo) -> Decision {
        let plain = self.decide(&Query {
            src,
            dst,
            app: None,
            geo,
            host: None,
        });
        if plain.decided_by != DecidedBy::Default || self.undecidable == Action::Allow {
            return plain;
        }
        for r in &self.rules {
            if r.apps.is_none()
                || r.action != Action::Block
                || !r.applies_to_source(src)
                || r.except.matching(dst, None).is_some()
            {
                continue;
            }
            if let Some(m) = r.match_destination(geo) {
                return Decision {
                    action: self.undecidable,
                    decided_by: DecidedBy::Rule,
                    rule: Some(r.rule_ref()),
                    jurisdiction: Some(m.jurisdiction),
                    country: m.country,
                    basis: m.basis,
                    verdict: r.verdict,
                };
            }
        }
        plain
    }

    pub fn decide(&self, q: &Query) -> Decision {
        if !q.geo.scope.is_public() {
            return self.non_public();
        }
        for r in &self.rules {
            if !r.applies_to_source(q.src)
                || !r.applies_to_app(q.app)
                || r.except.matching(q.dst, q.host).is_some()
            {
                continue;
            }
            if let Some(m) = r.match_destination(q.geo) {
                return Decision {
                    action: r.action,
                    decided_by: DecidedBy::Rule,
                    rule: Some(r.rule_ref()),
                    jurisdiction: Some(m.jurisdiction),
                    country: m.country,
                    basis: m.basis,
                    verdict: r.verdict,
                };
            }
        }
        self.default_decision()
    }

    pub(crate) fn non_public(&self) -> Decision {
        Decision {
            action: Action::Allow,
            decided_by: DecidedBy::NonPublic,
            rule: None,
            jurisdiction: None,
            country: None,
            basis: None,
            verdict: Verdict::Reject,
        }
    }

    pub(crate) fn default_decision(&self) -> Decision {
        Decision {
            action: self.default_action,
            decided_by: DecidedBy::Default,
            rule: None,
            jurisdiction: None,
            country: None,
            basis: None,
            verdict: self.default_verdict,
        }
    }

    /// Every named jurisdiction the address falls in under `by` (sorted by
    /// name), then `unknown` when it is public with no country under `by`.
    /// Empty for non-public addresses. `any` is not listed.
    pub fn jurisdictions_of(&self, geo: &GeoInfo, by: By) -> Vec<&str> {
        let mut out = Vec::new();
        if !geo.scope.is_public() {
            return out;
        }
        let keys = keys(geo, by);
        for (name, set) in &self.jurisdictions {
            if keys
                .iter()
                .any(|(_, c)| c.is_some_and(|c| set.contains(&c)))
            {
                out.push(name.as_str());
            }
        }
        if is_unknown(geo, by) {
            out.push("unknown");
        }
        out
    }
}

/// The built-in apps and their categories: every id of [`BUILTIN_APPS`]
/// (all conferencing), then the classifier's compiled-in signature files
/// (`config/apps.d`), so the policy knows exactly the apps the classifier
/// can name. Parsed once per process.
fn builtin_categories() -> &'static [(AppId, Category)] {
    static CATS: OnceLock<Vec<(AppId, Category)>> = OnceLock::new();
    CATS.get_or_init(|| {
        let mut map: HashMap<AppId, Category> = BUILTIN_APPS
            .iter()
            .filter_map(|id| AppId::new(id).ok())
            .map(|a| (a, Category::Conferencing))
            .collect();
        for def in SignatureDb::builtin_defs() {
            map.insert(def.id, def.category);
        }
        let mut v: Vec<(AppId, Category)> = map.into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    })
}

/// Validates everything and builds the policy. Checks run in file-section
/// order; the first problem found is returned.
fn build(config: &Config, extra: &[AppDef]) -> Result<Policy, Invalid> {
    validate::daemon(config)?;
    crate::dns_gate::validate(config)?;
    validate::decode(config)?;
    validate::alerts(config)?;
    validate::geoip(config)?;
    validate::signatures(config)?;
    validate::jurisdictions(config)?;
    validate::app_defs(&config.apps)?;

    let mut categories: HashMap<AppId, Category> = builtin_categories().iter().cloned().collect();
    for app in extra
        .iter()
        .chain(&config.signature_apps)
        .chain(&config.apps)
    {
        categories.insert(app.id.clone(), app.category);
    }
    let group: Vec<AppId> = {
        let mut g: Vec<AppId> = categories
            .iter()
            .filter(|(_, c)| **c == Category::Conferencing)
            .map(|(a, _)| a.clone())
            .collect();
        g.sort();
        g
    };

    let juris: BTreeMap<&str, Vec<CountryCode>> = config
        .jurisdictions
        .iter()
        .map(|(k, v)| {
            let mut v = v.clone();
            v.sort();
            (k.as_str(), v)
        })
        .collect();

    let mut rules = Vec::with_capacity(config.rules.len());
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, rc) in config.rules.iter().enumerate() {
        if let Some(first) = names.insert(rc.name.as_str(), i) {
            let line = line_of(config, tpath!["rule", first, "name"]);
            return Err(Invalid::new(
                Loc::value(tpath!["rule", i, "name"]),
                format!(
                    "duplicate rule name `{}` (first used by rule {}{line})",
                    rc.name,
                    first + 1
                ),
            ));
        }
        rules.push(compile_rule(i, rc, &juris, &categories, &group)?);
    }

    if let Some(v) = config.default.verdict {
        if config.default.action != Action::Block {
            return Err(Invalid::new(
                Loc::value(tpath!["default", "verdict"]),
                format!("`verdict = \"{v}\"` only applies to `action = \"block\"`"),
            ));
        }
    }

    for j in 0..rules.len() {
        for i in 0..j {
            if let (Some(a), Some(b)) = (rules.get(i), rules.get(j)) {
                if covers(a, b) {
                    let line = line_of(config, tpath!["rule", i, "name"]);
                    return Err(Invalid::new(
                        Loc::value(tpath!["rule", j, "name"]),
                        format!(
                            "rule `{}` can never match: the earlier rule `{}`{line} matches every flow it would match",
                            b.name, a.name
                        ),
                    ));
                }
            }
        }
    }

    Ok(Policy {
        rules,
        default_action: config.default.action,
        default_verdict: config.default.verdict.unwrap_or_default(),
        jurisdictions: juris.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        categories,
        tunnels: config.decode.tunnels.clone(),
        undecidable: config.inspection.undecidable,
    })
}

/// " (line N)" for the value at `path`, or "" without source text.
fn line_of(config: &Config, p: Vec<crate::error::Seg>) -> String {
    config
        .source
        .as_ref()
        .and_then(|s| {
            let span = locate(&s.text, p, false)?;
            Some(format!(
                " (line {})",
                crate::error::position(&s.text, span).0
            ))
        })
        .unwrap_or_default()
}

/// Rule names: letters, digits, `-`, `_`, `.`, 1 to 48 characters.
pub fn is_rule_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 48
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
}

fn compile_rule(
    i: usize,
    rc: &RuleConfig,
    juris: &BTreeMap<&str, Vec<CountryCode>>,
    categories: &HashMap<AppId, Category>,
    group: &[AppId],
) -> Result<CompiledRule, Invalid> {
    if !is_rule_name(&rc.name) {
        return Err(Invalid::new(
            Loc::value(tpath!["rule", i, "name"]),
            format!("`{}` is not a valid rule name (letters, digits, '-', '_' or '.', 1 to 48 characters)", rc.name),
        ));
    }

    if let Some(d) = &rc.description {
        if d.chars().any(char::is_control) || d.chars().count() > 200 {
            return Err(Invalid::new(
                Loc::value(tpath!["rule", i, "description"]),
                "`description` must be one line of at most 200 characters",
            ));
        }
    }

    let from = match &rc.from {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(Invalid::new(
                Loc::value(tpath!["rule", i, "from"]),
                "`from` is empty: omit it to match every source",
            ))
        }
        Some(list) => {
            let mut all = IpRanges::new();
            for (j, c) in list.iter().enumerate() {
                let r = check_cidr(c)
                    .map_err(|m| Invalid::new(Loc::value(tpath!["rule", i, "from", j]), m))?;
                all = all.union(&r);
            }
            Some(all)
        }
    };

    let apps = match &rc.apps {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(Invalid::new(
                Loc::value(tpath!["rule", i, "apps"]),
                "`apps` is empty: omit it to match all traffic",
            ))
        }
        Some(list) => {
            let has_group = list.iter().any(|a| a.as_str() == CONFERENCING_GROUP);
            let mut seen = HashSet::new();
            let mut set: BTreeSet<AppId> = BTreeSet::new();
            for (j, a) in list.iter().enumerate() {
                let loc = || Loc::value(tpath!["rule", i, "apps", j]);
                if !seen.insert(a.as_str()) {
                    return Err(Invalid::new(loc(), format!("app `{a}` is listed twice")));
                }
                if a.as_str() == CONFERENCING_GROUP {
                    set.extend(group.iter().cloned());
                    continue;
                }
                match categories.get(a) {
                    None => {
                        return Err(Invalid::new(
                            loc(),
                            format!(
                                "unknown app `{a}` (not built in and not defined by an [[app]] table; the group \
                                 `conferencing` stands for every conferencing app)"
                            ),
                        ))
                    }
                    Some(Category::Conferencing) if has_group => {
                        return Err(Invalid::new(
                            loc(),
                            format!("app `{a}` is already in the group `conferencing` listed in this rule"),
                        ))
                    }
                    Some(_) => {
                        set.insert(a.clone());
                    }
                }
            }
            Some(set.into_iter().collect::<Vec<_>>())
        }
    };

    if rc.to.is_empty() {
        return Err(Invalid::new(
            Loc::value(tpath!["rule", i, "to"]),
            "`to` is empty: name jurisdictions, country codes, \"unknown\" or \"any\"",
        ));
    }
    let mut targets = Vec::with_capacity(rc.to.len());
    let mut seen = HashSet::new();
    for (j, t) in rc.to.iter().enumerate() {
        let loc = || Loc::value(tpath!["rule", i, "to", j]);
        if !seen.insert(t.as_str()) {
            return Err(Invalid::new(loc(), format!("`{t}` is listed twice")));
        }
        let target = match t.as_str() {
            "any" => Target::Any,
            "unknown" => Target::Unknown,
            s if s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()) => {
                match s.parse::<CountryCode>() {
                    Ok(code) => Target::Country { code },
                    Err(e) => return Err(Invalid::new(loc(), e.to_string())),
                }
            }
            s => match juris.get(s) {
                Some(countries) => Target::Jurisdiction {
                    name: s.to_string(),
                    countries: countries.clone(),
                },
                None => {
                    let defined: Vec<&str> = juris.keys().copied().collect();
                    let hint = if is_jurisdiction_name(s) || s.is_empty() {
                        String::new()
                    } else if s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic()) {
                        format!(
                            "; country codes are upper case (`{}`)",
                            s.to_ascii_uppercase()
                        )
                    } else {
                        String::new()
                    };
                    return Err(Invalid::new(
                        loc(),
                        format!(
                            "unknown jurisdiction `{s}` (defined: {}; reserved: any, unknown; or an ISO country code \
                             such as CN){hint}",
                            if defined.is_empty() { "none".to_string() } else { defined.join(", ") }
                        ),
                    ));
                }
            },
        };
        targets.push(target);
    }
    if targets.len() > 1 && targets.contains(&Target::Any) {
        let j = targets.iter().position(|t| *t == Target::Any).unwrap_or(0);
        return Err(Invalid::new(
            Loc::value(tpath!["rule", i, "to", j]),
            "`any` already covers every public destination: list it alone",
        ));
    }

    let except = crate::except::compile(
        i,
        rc.except.as_deref(),
        rc.action == Action::Block && apps.is_none(),
    )?;

    let verdict = match (rc.action, rc.verdict) {
        (Action::Block, v) => v.unwrap_or_default(),
        (_, None) => Verdict::default(),
        (a, Some(v)) => {
            return Err(Invalid::new(
                Loc::value(tpath!["rule", i, "verdict"]),
                format!("`verdict = \"{v}\"` only applies to `action = \"block\"`, not \"{a}\""),
            ))
        }
    };

    let countries: BTreeSet<CountryCode> = targets
        .iter()
        .flat_map(|t| t.countries().iter().copied())
        .collect();
    let countries: Vec<CountryCode> = countries.into_iter().collect();
    let (location_countries, registered_countries) = match rc.by {
        By::Location => (countries, Vec::new()),
        By::Operator => (Vec::new(), countries),
        By::Either => (countries.clone(), countries),
    };
    Ok(CompiledRule {
        index: i,
        name: rc.name.clone(),
        description: rc.description.clone(),
        apps,
        from,
        by: rc.by,
        includes_unknown: targets.contains(&Target::Unknown),
        any: targets.contains(&Target::Any),
        targets,
        location_countries,
        registered_countries,
        action: rc.action,
        verdict,
        except,
    })
}

/// True when every flow `b` matches is also matched by the earlier rule `a`.
fn covers(a: &CompiledRule, b: &CompiledRule) -> bool {
    let from = match (&a.from, &b.from) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(ra), Some(rb)) => rb.intersect(ra) == *rb,
    };
    let apps = match (&a.apps, &b.apps) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(la), Some(lb)) => lb.iter().all(|x| la.binary_search(x).is_ok()),
    };
    from && apps && covers_destinations(a, b)
}

fn covers_destinations(a: &CompiledRule, b: &CompiledRule) -> bool {
    // An earlier rule with exceptions lets some destinations through to
    // the later one (conservatively: any exception does).
    if !a.except.is_empty() {
        return false;
    }
    if a.any {
        return true;
    }
    if b.any {
        return false;
    }
    // Every country a rule names, sorted (one of the two per-`by` lists).
    let all = |r: &'_ CompiledRule| -> Vec<CountryCode> {
        if r.location_countries.is_empty() {
            r.registered_countries.clone()
        } else {
            r.location_countries.clone()
        }
    };
    let (countries_a, countries_b) = (all(a), all(b));
    let countries = countries_b.is_empty()
        || ((a.by == By::Either || a.by == b.by)
            && countries_b
                .iter()
                .all(|c| countries_a.binary_search(c).is_ok()));
    let unknown =
        !b.includes_unknown || (a.includes_unknown && (a.by == b.by || b.by == By::Either));
    countries && unknown
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}
