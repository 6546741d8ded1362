//! `[[trunk]]`, `[lcr]`, `[[did]]` and `[[calling_rights]]`: the ways out of the office and who
//! may take them, checked into typed values. The numbering, rating and routing logic is
//! kentongan-lcr's; this module only turns the file's tables into its inputs.

use std::fmt;

use kentongan_firewall::policy::Cidr;
use kentongan_lcr::config::LcrConfig;
use kentongan_lcr::lcr::{TrunkFacts, TrunkKind};
use kentongan_lcr::operators::OperatorName;
use kentongan_lcr::rates::TrunkName;
use serde::Deserialize;

use super::{ConfigError, Kind};

pub(super) const TRUNK_KEYS: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("kind", Kind::Str),
    ("address", Kind::Str),
    ("register", Kind::Bool),
    ("username", Kind::Str),
    ("password", Kind::Str),
    ("max_channels", Kind::Int),
    ("caller_id", Kind::Str),
    ("operator", Kind::Str),
    ("did_from", Kind::Str),
    ("keepalive_seconds", Kind::Int),
    ("match", Kind::StrList),
];

pub(super) const LCR_KEYS: &[(&str, Kind)] = &[
    ("rates", Kind::Str),
    ("country", Kind::Str),
    ("operators", Kind::Str),
    ("area_code", Kind::Str),
    ("emergency_order", Kind::StrList),
];

pub(super) const DID_KEYS: &[(&str, Kind)] = &[
    ("number", Kind::Str),
    ("to", Kind::Str),
    ("trunk", Kind::Str),
];

pub(super) const RIGHTS_KEYS: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("allow", Kind::StrList),
    ("max_call_minutes", Kind::Int),
];

/// The call classes `[[calling_rights]].allow` may name.
pub const CLASSES: &[&str] = &[
    "emergency",
    "internal",
    "local",
    "national",
    "mobile",
    "tollfree",
    "international",
    "premium",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrunk {
    name: String,
    kind: String,
    address: Option<String>,
    register: Option<bool>,
    username: Option<String>,
    password: Option<String>,
    max_channels: Option<i64>,
    caller_id: Option<String>,
    operator: Option<String>,
    did_from: Option<String>,
    keepalive_seconds: Option<i64>,
    #[serde(default, rename = "match")]
    matches: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDid {
    number: String,
    to: String,
    trunk: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRights {
    name: String,
    #[serde(default)]
    allow: Vec<String>,
    max_call_minutes: Option<i64>,
}

/// A trunk's password: kept for outbound digest authentication, never shown. `Debug` and
/// `Display` print a placeholder, so a logged or printed configuration cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(hidden)")
    }
}

/// One `[[trunk]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    pub name: TrunkName,
    pub kind: TrunkKind,
    /// `host:port` of a provider; `None` for a gateway (it registers to us).
    pub address: Option<String>,
    /// Whether we register to the provider.
    pub register: bool,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub max_channels: Option<u32>,
    pub caller_id: Option<String>,
    pub operator: Option<OperatorName>,
    /// Where an inbound call from this trunk names the number dialled (its DID).
    pub did_from: DidSource,
    /// A provider is sent OPTIONS this often; one that stops answering is skipped by calls.
    pub keepalive_seconds: Option<u32>,
    /// `match`: more addresses or networks a provider's calls come from (its signalling
    /// servers besides `address`); an INVITE from one of them is this trunk's.
    pub matches: Vec<Cidr>,
}

/// The header an inbound call's DID is read from (`[[trunk]] did_from`): providers differ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DidSource {
    /// `"request-uri"` (the default): the Request-URI's user part.
    #[default]
    RequestUri,
    /// `"to"`: the To header's URI (providers that put their own host in the Request-URI).
    To,
    /// `"p-called-party-id"`: RFC 3455's P-Called-Party-ID, as IMS trunks send it.
    PCalledPartyId,
}

impl Trunk {
    /// What the least-cost router needs of this trunk.
    pub fn facts(&self) -> TrunkFacts {
        TrunkFacts {
            name: self.name.clone(),
            kind: self.kind,
            operator: self.operator.clone(),
            max_channels: self.max_channels,
        }
    }
}

/// One `[[did]]`: an inbound number and where its calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Did {
    pub number: String,
    /// A target as IVR options name them: a number of this PBX (extension, room, ring group,
    /// IVR), `vm:EXT` or `hours:NAME`.
    pub to: String,
    pub trunk: Option<TrunkName>,
}

/// One `[[calling_rights]]` profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallingRights {
    pub name: String,
    pub allow: Vec<String>,
    pub max_call_minutes: Option<u32>,
}

pub(super) fn validate_trunks(raw: Vec<RawTrunk>) -> Result<Vec<Trunk>, ConfigError> {
    let mut out: Vec<Trunk> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("trunk[{i}].{k}");
        let name = TrunkName::new(r.name.trim()).map_err(|e| {
            ConfigError::at(
                &key("name"),
                format!(
                    "is {:?}: {e}; use letters, digits and `-`, e.g. \"provider\"",
                    r.name
                ),
            )
        })?;
        if let Some(other) = out.iter().position(|t| t.name == name) {
            return Err(ConfigError::at(
                &key("name"),
                format!("repeats {name:?}, already trunk[{other}]; give each trunk its own name"),
            ));
        }
        let kind = match r.kind.as_str() {
            "provider" => TrunkKind::Provider,
            "gateway" => TrunkKind::Gateway,
            other => {
                return Err(ConfigError::at(
                    &key("kind"),
                    format!("is {other:?}; use \"provider\" (we call out to it) or \"gateway\" (a GSM/FXO gateway that registers to us)"),
                ))
            }
        };
        let address = match (kind, r.address) {
            (TrunkKind::Provider, None) => {
                return Err(ConfigError::at(
                    &key("address"),
                    "is missing; a provider trunk needs the provider's \"host:port\", e.g. \"sip.provider.example:5060\"",
                ))
            }
            (_, Some(a)) => Some(check_address(&key("address"), &a)?),
            (TrunkKind::Gateway, None) => None,
        };
        let register = r.register.unwrap_or(false);
        if kind == TrunkKind::Gateway && (r.username.is_none() || r.password.is_none()) {
            return Err(ConfigError::at(
                &key("username"),
                "and `password` are needed for a gateway trunk: the gateway registers to the PBX with them",
            ));
        }
        if register && (r.username.is_none() || r.password.is_none()) {
            return Err(ConfigError::at(
                &key("register"),
                "is true but `username` or `password` is missing; the provider's account details go there",
            ));
        }
        if let Some(u) = &r.username {
            if u.is_empty() || u.chars().any(|c| c.is_control() || c == '@' || c == ' ') {
                return Err(ConfigError::at(
                    &key("username"),
                    "must be the account name alone, without spaces or `@`",
                ));
            }
        }
        if r.password.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::at(&key("password"), "is empty"));
        }
        let max_channels = match r.max_channels {
            None => None,
            Some(n) if (1..=10_000).contains(&n) => Some(n as u32),
            Some(n) => {
                return Err(ConfigError::at(
                    &key("max_channels"),
                    format!("is {n}; use a number of simultaneous calls from 1 to 10000, or leave it out for no limit"),
                ))
            }
        };
        let caller_id = match r.caller_id {
            None => None,
            Some(c) => {
                let digits = c.strip_prefix('+').unwrap_or(&c);
                if digits.is_empty()
                    || digits.len() > 15
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(ConfigError::at(
                        &key("caller_id"),
                        format!("is {c:?}; write the number in E.164 form, e.g. \"+62215550100\""),
                    ));
                }
                Some(c)
            }
        };
        let operator = match r.operator {
            None => None,
            Some(o) => Some(OperatorName::new(&o).map_err(|e| {
                ConfigError::at(
                    &key("operator"),
                    format!(
                        "is {o:?}: {e}; use an operator name of operators.csv, e.g. \"telkomsel\""
                    ),
                )
            })?),
        };
        let did_from = match r.did_from.as_deref() {
            None | Some("request-uri") => DidSource::RequestUri,
            Some("to") => DidSource::To,
            Some("p-called-party-id") => DidSource::PCalledPartyId,
            Some(other) => {
                return Err(ConfigError::at(
                    &key("did_from"),
                    format!("is {other:?}; use \"request-uri\" (the default), \"to\" or \"p-called-party-id\": where this trunk puts the number the caller dialled"),
                ))
            }
        };
        let keepalive_seconds = match r.keepalive_seconds {
            None => None,
            Some(_) if kind == TrunkKind::Gateway => {
                return Err(ConfigError::at(
                    &key("keepalive_seconds"),
                    "is for provider trunks; a gateway's registration to us already shows whether it is there",
                ))
            }
            Some(n) if (1..=3600).contains(&n) => Some(n as u32),
            Some(n) => {
                return Err(ConfigError::at(
                    &key("keepalive_seconds"),
                    format!("is {n}; use 1 to 3600 seconds between OPTIONS (30 is usual), or leave it out for none"),
                ))
            }
        };
        let mut matches = Vec::new();
        for (j, m) in r.matches.iter().enumerate() {
            let at = key(&format!("match[{j}]"));
            if kind == TrunkKind::Gateway {
                return Err(ConfigError::at(
                    &at,
                    "is for provider trunks; a gateway's calls are known by its registration",
                ));
            }
            let cidr = m.parse::<Cidr>().map_err(|e| {
                ConfigError::at(
                    &at,
                    format!("is {m:?}, which {e}; list the provider's signalling addresses or networks, e.g. \"203.0.113.0/24\""),
                )
            })?;
            matches.push(cidr);
        }
        out.push(Trunk {
            matches,
            keepalive_seconds,
            did_from,
            name,
            kind,
            address,
            register,
            username: r.username,
            password: r.password.map(Secret),
            max_channels,
            caller_id,
            operator,
        });
    }
    Ok(out)
}

/// `host:port` or `[v6]:port`, or a bare host (port 5060).
fn check_address(key: &str, a: &str) -> Result<String, ConfigError> {
    let bad = || {
        ConfigError::at(
            key,
            format!(
                "is {a:?}; write \"host:port\" or \"ip:port\", e.g. \"sip.provider.example:5060\""
            ),
        )
    };
    if a.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(a.to_owned());
    }
    let (host, port) = match a.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
        None => (a, 5060),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !host_ok || port == 0 {
        return Err(bad());
    }
    Ok(format!("{host}:{port}"))
}

pub(super) fn validate_lcr(
    table: Option<&toml::Value>,
    trunks: &[Trunk],
) -> Result<Option<LcrConfig>, ConfigError> {
    let Some(value) = table else {
        return Ok(None);
    };
    let lcr: LcrConfig = value
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::at("lcr", e.message().to_owned()))?;
    lcr.numbering_plan()
        .map_err(|e| ConfigError::at("lcr.country", format!("or `lcr.area_code`: {e}")))?;
    for (i, name) in lcr.emergency_order.iter().enumerate() {
        if !trunks.iter().any(|t| t.name.as_str() == name) {
            return Err(ConfigError::at(
                &format!("lcr.emergency_order[{i}]"),
                format!("names {name:?}, which is not a [[trunk]]"),
            ));
        }
    }
    Ok(Some(lcr))
}

pub(super) fn validate_dids(raw: Vec<RawDid>, trunks: &[Trunk]) -> Result<Vec<Did>, ConfigError> {
    let mut out: Vec<Did> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("did[{i}].{k}");
        let digits = r.number.strip_prefix('+').unwrap_or(&r.number);
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::at(
                &key("number"),
                format!(
                    "is {:?}; write the number callers dial in E.164 form, e.g. \"+62215550100\"",
                    r.number
                ),
            ));
        }
        let number = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
        };
        let ok = match (r.to.strip_prefix("vm:"), r.to.strip_prefix("hours:")) {
            (Some(mailbox), _) => number(mailbox),
            (_, Some(name)) => !name.is_empty(),
            _ => number(&r.to),
        };
        if !ok {
            return Err(ConfigError::at(
                &key("to"),
                format!(
                    "is {:?}; name a number of this PBX (an extension, room, group or IVR, e.g. \"700\"), \
                     a mailbox (\"vm:201\") or office hours (\"hours:kantor\")",
                    r.to
                ),
            ));
        }
        let trunk = match r.trunk {
            None => None,
            Some(t) => match trunks.iter().find(|x| x.name.as_str() == t) {
                Some(x) => Some(x.name.clone()),
                None => {
                    return Err(ConfigError::at(
                        &key("trunk"),
                        format!("names {t:?}, which is not a [[trunk]]"),
                    ))
                }
            },
        };
        if out.iter().any(|d| d.number == r.number && d.trunk == trunk) {
            return Err(ConfigError::at(
                &key("number"),
                format!(
                    "{:?} is listed twice; one [[did]] per number (and trunk)",
                    r.number
                ),
            ));
        }
        out.push(Did {
            number: r.number,
            to: r.to,
            trunk,
        });
    }
    Ok(out)
}

pub(super) fn validate_rights(raw: Vec<RawRights>) -> Result<Vec<CallingRights>, ConfigError> {
    let mut out: Vec<CallingRights> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("calling_rights[{i}].{k}");
        if r.name.is_empty()
            || !r
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ConfigError::at(
                &key("name"),
                format!(
                    "is {:?}; use letters, digits, `-` or `_`, e.g. \"direksi\"",
                    r.name
                ),
            ));
        }
        if out.iter().any(|x| x.name == r.name) {
            return Err(ConfigError::at(
                &key("name"),
                format!("repeats {:?}; one [[calling_rights]] per name", r.name),
            ));
        }
        for (j, class) in r.allow.iter().enumerate() {
            if !CLASSES.contains(&class.as_str()) {
                return Err(ConfigError::at(
                    &format!("calling_rights[{i}].allow[{j}]"),
                    format!("is {class:?}; the classes are {}", CLASSES.join(", ")),
                ));
            }
        }
        let max_call_minutes = match r.max_call_minutes {
            None => None,
            Some(n) if (1..=24 * 60).contains(&n) => Some(n as u32),
            Some(n) => {
                return Err(ConfigError::at(
                    &key("max_call_minutes"),
                    format!("is {n}; use 1 to 1440 minutes, or leave it out for no limit"),
                ))
            }
        };
        out.push(CallingRights {
            name: r.name,
            allow: r.allow,
            max_call_minutes,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_prints() {
        let s = Secret("hunter2".into());
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn addresses_get_a_port() {
        assert_eq!(
            check_address("k", "sip.example:5080").as_deref(),
            Ok("sip.example:5080")
        );
        assert_eq!(
            check_address("k", "sip.example").as_deref(),
            Ok("sip.example:5060")
        );
        assert_eq!(
            check_address("k", "127.0.0.1:5062").as_deref(),
            Ok("127.0.0.1:5062")
        );
        assert!(check_address("k", "sip example:5060").is_err());
        assert!(check_address("k", "sip.example:0").is_err());
        assert!(check_address("k", "sip.example:99999").is_err());
    }
}
