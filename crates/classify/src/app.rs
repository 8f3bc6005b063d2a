//! App identities and how a flow was recognised.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The built-in app ids (lowercase, stable): used in config, alerts and
/// replay output. Every one has signatures in `config/apps.d/`.
pub const BUILTIN_APPS: &[&str] = &[
    "zoom",
    "teams",
    "webex",
    "meet",
    "goto",
    "jitsi",
    "chime",
    "ringcentral",
    "tencent-meeting",
    "wechat",
    "dingtalk",
    "lark",
    "zoho-meeting",
    "whatsapp",
    "facetime",
    "discord",
    "signal",
    "telegram",
    "line",
    "viber",
    "agora",
    "meta-calls",
];

/// The group name that stands for every app whose category is `conferencing`.
pub const CONFERENCING_GROUP: &str = "conferencing";

/// A stable app id such as `zoom` or `tencent-meeting`.
///
/// Lower-case ASCII letters, digits and `-`, 1 to 32 characters, starting
/// with a letter. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppId(Arc<str>);

/// An app id that does not follow the id rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid app id (lower-case letters, digits and '-', starting with a letter, at most 32 characters)")]
pub struct BadAppId(pub String);

impl AppId {
    pub fn new(s: &str) -> Result<AppId, BadAppId> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 32
            && b[0].is_ascii_lowercase()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
        if ok {
            Ok(AppId(Arc::from(s)))
        } else {
            Err(BadAppId(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AppId {
    type Error = BadAppId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        AppId::new(&s)
    }
}

impl From<AppId> for String {
    fn from(a: AppId) -> String {
        a.0.to_string()
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppId({})", &self.0)
    }
}

/// How a flow was recognised, strongest evidence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// A DNS answer for one of the app's names pointed at this address.
    Dns,
    /// TLS ClientHello server name.
    TlsSni,
    /// Server name from a decrypted QUIC Initial.
    QuicSni,
    /// STUN/TURN vendor attributes, message types or realm.
    Stun,
    /// A vendor's own payload header.
    Payload,
    /// Destination inside a vendor-operated IP range.
    IpRange,
    /// Destination announced by the vendor's own ASN.
    Asn,
    /// Vendor port only: the weakest hint.
    Port,
    /// No app: the flow started a TLS or QUIC handshake whose server name
    /// could not be read (evasion or an unreadable handshake); decided by
    /// `[inspection] undecidable`.
    Undecidable,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Dns => "dns",
            Method::TlsSni => "tls-sni",
            Method::QuicSni => "quic-sni",
            Method::Stun => "stun",
            Method::Payload => "payload",
            Method::IpRange => "ip-range",
            Method::Asn => "asn",
            Method::Port => "port",
            Method::Undecidable => "undecidable",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of app this is; the policy group `conferencing` is every app of
/// category `Conferencing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Conferencing and calling apps (the built-ins).
    #[default]
    Conferencing,
    /// Anything else an admin defines (file sharing, a SaaS, ...).
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_ids_are_valid() {
        for a in BUILTIN_APPS {
            assert!(AppId::new(a).is_ok(), "{a}");
        }
        assert!(AppId::new("Zoom").is_err());
        assert!(AppId::new("").is_err());
        assert!(AppId::new("9x").is_err());
        assert!(AppId::new("a_b").is_err());
    }
}
