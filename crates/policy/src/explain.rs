//! Why a flow got its decision: every rule, matched or why not.

use crate::config::{Action, By};
use crate::policy::{Basis, CompiledRule, DecidedBy, Decision, DestMatch, Policy, Query, RuleRef};
use geofence_classify::AppId;
use geofence_geo::{AddressScope, GeoInfo};
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;

/// Why one rule did not match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Miss {
    /// The destination is not a public address.
    NonPublicDestination { scope: AddressScope },
    /// The source is outside the rule's `from`.
    SourceOutOfScope,
    /// The flow's app (or the lack of one) is not in the rule's `apps`.
    AppNotInRule { app: Option<AppId> },
    /// The destination is in none of the rule's `to` entries under `by`.
    JurisdictionNotMatched { by: By },
    /// The destination (address or server name) is in the rule's `except`.
    Excepted { entry: String },
}

/// One rule's verdict on the query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleTrace {
    pub rule: RuleRef,
    pub action: Action,
    /// Some when the rule matches the flow.
    pub matched: Option<DestMatch>,
    /// Every reason it does not match (empty when it matches).
    pub misses: Vec<Miss>,
    /// This rule made the decision (the first matching rule).
    pub decisive: bool,
}

/// The full story of [`Policy::decide`] for one query; `Display` is the
/// human-readable text `geofencectl explain` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub app: Option<AppId>,
    pub geo: GeoInfo,
    pub rules: Vec<RuleTrace>,
    pub decision: Decision,
}

impl Policy {
    /// Evaluates every rule against `q` (not only up to the first match) and
    /// returns the decision [`Policy::decide`] makes, with reasons.
    pub fn explain(&self, q: &Query) -> Explanation {
        let decision = self.decide(q);
        let mut rules = Vec::with_capacity(self.rules().len());
        for r in self.rules() {
            let (matched, misses) = trace(r, q);
            let decisive = decision.rule.as_ref().is_some_and(|d| d.index == r.index);
            rules.push(RuleTrace {
                rule: r.rule_ref(),
                action: r.action,
                matched,
                misses,
                decisive,
            });
        }
        Explanation {
            src: q.src,
            dst: q.dst,
            app: q.app.cloned(),
            geo: q.geo.clone(),
            rules,
            decision,
        }
    }
}

fn trace(r: &CompiledRule, q: &Query) -> (Option<DestMatch>, Vec<Miss>) {
    let mut misses = Vec::new();
    if !q.geo.scope.is_public() {
        misses.push(Miss::NonPublicDestination { scope: q.geo.scope });
    }
    if !r.applies_to_source(q.src) {
        misses.push(Miss::SourceOutOfScope);
    }
    if !r.applies_to_app(q.app) {
        misses.push(Miss::AppNotInRule {
            app: q.app.cloned(),
        });
    }
    if let Some(e) = r.except.matching(q.dst, q.host) {
        misses.push(Miss::Excepted {
            entry: e.to_string(),
        });
    }
    let dest = r.match_destination(q.geo);
    if dest.is_none() && q.geo.scope.is_public() {
        misses.push(Miss::JurisdictionNotMatched { by: r.by });
    }
    if misses.is_empty() {
        (dest, misses)
    } else {
        (None, misses)
    }
}

fn country(c: Option<geofence_geo::CountryCode>) -> String {
    c.map(|c| c.to_string())
        .unwrap_or_else(|| "none".to_string())
}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Miss::NonPublicDestination { scope } => {
                write!(
                    f,
                    "destination is not public ({scope:?}); no jurisdiction applies"
                )
            }
            Miss::SourceOutOfScope => f.write_str("source is outside `from`"),
            Miss::AppNotInRule { app: Some(a) } => write!(f, "app `{a}` is not in `apps`"),
            Miss::AppNotInRule { app: None } => {
                f.write_str("no app recognised, and the rule lists `apps`")
            }
            Miss::JurisdictionNotMatched { by } => {
                write!(f, "destination is in none of `to` (by {by})")
            }
            Miss::Excepted { entry } => write!(f, "destination is excepted by `{entry}`"),
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let app = self
            .app
            .as_ref()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "unrecognised".to_string());
        writeln!(f, "flow {} -> {} app {}", self.src, self.dst, app)?;
        let asn = match (&self.geo.asn, &self.geo.as_org) {
            (Some(n), Some(o)) => format!("AS{n} ({o})"),
            (Some(n), None) => format!("AS{n}"),
            _ => "none".to_string(),
        };
        writeln!(
            f,
            "destination: scope {:?}, location {}, registered {}, asn {}",
            self.geo.scope,
            country(self.geo.country),
            country(self.geo.registered_country),
            asn
        )?;
        for t in &self.rules {
            write!(
                f,
                "rule {} `{}` ({}): ",
                t.rule.index + 1,
                t.rule.name,
                t.action
            )?;
            match &t.matched {
                Some(m) => {
                    let how = match (m.country, m.basis) {
                        (Some(c), Some(Basis::Location)) => {
                            format!("location {c} is in `{}`", m.jurisdiction)
                        }
                        (Some(c), Some(Basis::Operator)) => {
                            format!("registered country {c} is in `{}`", m.jurisdiction)
                        }
                        _ => format!("destination matches `{}`", m.jurisdiction),
                    };
                    if t.decisive {
                        writeln!(f, "MATCH, decides: {how}")?;
                    } else {
                        writeln!(f, "would match ({how}) but an earlier rule decided")?;
                    }
                }
                None => {
                    let why: Vec<String> = t.misses.iter().map(|m| m.to_string()).collect();
                    writeln!(f, "no: {}", why.join("; "))?;
                }
            }
        }
        let d = &self.decision;
        let verdict = if d.action == Action::Block {
            format!(" ({})", d.verdict)
        } else {
            String::new()
        };
        match (&d.decided_by, &d.rule) {
            (DecidedBy::Rule, Some(r)) => write!(
                f,
                "decision: {}{verdict} by rule {} `{}`, jurisdiction {}",
                d.action,
                r.index + 1,
                r.name,
                d.jurisdiction.as_deref().unwrap_or("none")
            ),
            (DecidedBy::NonPublic, _) => {
                write!(
                    f,
                    "decision: {} (destination is not public; the geofence does not apply)",
                    d.action
                )
            }
            _ => write!(
                f,
                "decision: {}{verdict} by [default] (no rule matched)",
                d.action
            ),
        }
    }
}
