//! The daemon's configuration file (`/etc/kentongan/pbx.toml`): strict shape, one validator.
//!
//! [`Config::from_toml`] is the only way in: it rejects unknown keys by their dotted name, then
//! checks meaning (addresses, port ranges) and returns a [`Config`] that cannot hold a bad mix.
//! Every error names the key and the fix, e.g. "`rtp.ports` must be \"LOW-HIGH\" …".

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use kentongan_firewall::policy::{Cidr, Policy};
use kentongan_firewall::ruleset::Ports;
use kentongan_sip::auth::Algorithm;
use serde::Deserialize;

mod conference;
pub use conference::{ConferenceRoom, Pin};
mod extension_settings;
pub use extension_settings::{ExtensionConfig, DEFAULT_FORWARD_NO_ANSWER_SECONDS};
mod fraud;
mod trunks;
pub use fraud::Fraud;
pub use trunks::{CallingRights, Did, DidSource, Secret, Trunk, CLASSES};
mod ring_groups;
pub use ring_groups::{
    check_against_directory, check_parking_against_directory, NoAnswer, Parking, RingGroup,
    Strategy,
};
mod ivr;
pub use ivr::{Ivr, IvrGreeting};
mod office_hours;
mod recording;
pub use office_hours::{parse_window, OfficeHours};
pub use recording::Recording;
mod features;
pub use features::Features;
mod voicemail;
pub use voicemail::{valid_mail_address, SmtpRelay, SmtpSecurity, Voicemail};
mod web;
pub use web::Web;

/// A configuration problem, phrased for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    /// The dotted key at fault (`sip.listen[1]`), or empty for a syntax error.
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn at(key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            key: key.to_owned(),
            message: format!("`{key}` {}", message.into()),
        }
    }
}

/// A SIP transport the daemon listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenTransport {
    Udp,
    Tcp,
    Tls,
}

impl fmt::Display for ListenTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListenTransport::Udp => "udp",
            ListenTransport::Tcp => "tcp",
            ListenTransport::Tls => "tls",
        })
    }
}

/// One `sip.listen` entry, e.g. `udp:0.0.0.0:5060` or `udp:[::]:5060`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Listen {
    pub transport: ListenTransport,
    pub addr: SocketAddr,
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

/// An inclusive RTP port range; both ends even/odd aligned so RTP is even and RTCP = RTP + 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl PortRange {
    /// Even RTP ports in the range whose RTCP port (+1) is also in it.
    pub fn rtp_ports(&self) -> impl Iterator<Item = u16> {
        let first = self.low + (self.low % 2);
        let high = self.high;
        (first..high).step_by(2)
    }
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// SIP domain and digest realm.
    pub domain: String,
    pub listen: Vec<Listen>,
    /// Digest algorithms offered, in challenge order (RFC 8760: SHA-256 first).
    pub auth_algorithms: Vec<Algorithm>,
    /// PEM certificate chain and key for `tls:` listeners; both or neither (then one is made
    /// at first start next to the database).
    pub tls_certificate: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub rtp_ports: PortRange,
    /// How long a call may ring unanswered before the caller gets 480.
    pub no_answer: std::time::Duration,
    pub database: PathBuf,
    pub metrics_listen: SocketAddr,
    /// `[firewall]`: trusted networks and ban thresholds.
    pub firewall: Policy,
    /// `[web]`: the web admin's HTTPS listeners; `None` (no table) turns it off.
    pub web: Option<Web>,
    /// `[[conference]]`: rooms, in the order written (numbers unique).
    pub conferences: Vec<ConferenceRoom>,
    /// `[prompts]`: where the spoken prompts are, and in which language.
    pub prompts: Prompts,
    /// `[music_on_hold] directory`: WAV files a held caller hears in turn (none there: the
    /// built-in tune).
    pub music_on_hold: PathBuf,
    /// `[[extension_settings]]`: per-extension settings written in the file (numbers unique).
    pub extension_settings: Vec<ExtensionConfig>,
    /// `[[trunk]]`: the ways out, in the order written (names unique).
    pub trunks: Vec<Trunk>,
    /// `[lcr]`: numbering plan and the rates and operators files; `None` when not written.
    pub lcr: Option<kentongan_lcr::config::LcrConfig>,
    /// `[[did]]`: inbound numbers and where they go.
    pub dids: Vec<Did>,
    /// `[fraud]`: caps on outbound calls (all `None` without the table).
    pub fraud: Fraud,
    /// `[[calling_rights]]`: named profiles of what an extension may dial.
    pub calling_rights: Vec<CallingRights>,
    /// `[voicemail]`; `None` (no table) turns voicemail off.
    pub voicemail: Option<Voicemail>,
    /// `[[ring_group]]`: numbers that ring several extensions (numbers unique).
    pub ring_groups: Vec<RingGroup>,
    /// `[parking]`: park number and slots (FreePBX's 70, 71-78 when not written).
    pub parking: Parking,
    /// `[[ivr]]`: auto-attendant menus, in the order written (numbers unique).
    pub ivrs: Vec<Ivr>,
    /// `[[office_hours]]`: schedules used as `hours:NAME` targets (names unique).
    pub office_hours: Vec<OfficeHours>,
    /// `[recording]`; `None` (no table): no call is recorded.
    pub recording: Option<Recording>,
    /// `[features]`: in-call codes on or off.
    pub features: Features,
}

/// Where music on hold is looked for when `[music_on_hold]` does not say.
pub const DEFAULT_MOH_DIR: &str = "/usr/share/kentongan/moh";

/// `[prompts]`: the prompt set the PBX plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompts {
    /// `<directory>/<language>/8000/<id>.wav`, made by `kentongan-pbx prompts build`.
    pub directory: PathBuf,
    pub language: Language,
}

/// A prompt language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Indonesian,
    English,
}

impl Language {
    pub fn code(self) -> &'static str {
        match self {
            Language::Indonesian => "id",
            Language::English => "en",
        }
    }
}

impl Config {
    /// The address `[[extension_settings]] email` gives `ext`'s voicemail, if any.
    pub fn extension_email(&self, ext: &str) -> Option<&str> {
        self.extension_settings
            .iter()
            .find(|s| s.number == ext)
            .and_then(|s| s.email.as_deref())
    }

    /// How long a call rings `ext` before its no-answer forward takes it.
    pub fn forward_no_answer_seconds(&self, ext: &str) -> u32 {
        self.extension_settings
            .iter()
            .find(|s| s.number == ext)
            .map_or(DEFAULT_FORWARD_NO_ANSWER_SECONDS, |s| {
                s.forward_no_answer_seconds
            })
    }

    /// What the firewall opens for this configuration: SIP listeners, the RTP range, and the
    /// metrics port for trusted networks when it listens beyond loopback.
    pub fn firewall_ports(&self) -> Ports {
        let mut ports = Ports {
            rtp: Some((self.rtp_ports.low, self.rtp_ports.high)),
            ..Ports::default()
        };
        for l in &self.listen {
            match l.transport {
                ListenTransport::Udp => ports.sip_udp.push(l.addr.port()),
                ListenTransport::Tcp | ListenTransport::Tls => ports.sip_tcp.push(l.addr.port()),
            }
        }
        ports.sip_udp.sort_unstable();
        ports.sip_udp.dedup();
        ports.sip_tcp.sort_unstable();
        ports.sip_tcp.dedup();
        if !self.metrics_listen.ip().is_loopback() {
            ports.admin_tcp.push(self.metrics_listen.port());
        }
        // The web admin is for trusted networks only, like metrics.
        for l in self.web.iter().flat_map(|w| &w.listen) {
            if !l.ip().is_loopback() && !ports.admin_tcp.contains(&l.port()) {
                ports.admin_tcp.push(l.port());
            }
        }
        ports
    }
}

// ---- the shape as written ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    sip: RawSip,
    #[serde(default)]
    rtp: RawRtp,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    firewall: RawFirewall,
    web: Option<web::RawWeb>,
    #[serde(default)]
    conference: Vec<conference::RawConference>,
    #[serde(default)]
    prompts: RawPrompts,
    #[serde(default)]
    music_on_hold: RawMusicOnHold,
    #[serde(default)]
    extension_settings: Vec<extension_settings::RawExtensionSettings>,
    #[serde(default)]
    trunk: Vec<trunks::RawTrunk>,
    /// Kept raw: kentongan-lcr gives it its shape.
    lcr: Option<toml::Value>,
    #[serde(default)]
    did: Vec<trunks::RawDid>,
    #[serde(default)]
    calling_rights: Vec<trunks::RawRights>,
    voicemail: Option<voicemail::RawVoicemail>,
    fraud: Option<fraud::RawFraud>,
    #[serde(default)]
    ring_group: Vec<ring_groups::RawRingGroup>,
    parking: Option<ring_groups::RawParking>,
    #[serde(default)]
    ivr: Vec<ivr::RawIvr>,
    #[serde(default)]
    office_hours: Vec<office_hours::RawOfficeHours>,
    recording: Option<recording::RawRecording>,
    features: Option<features::RawFeatures>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPrompts {
    directory: Option<String>,
    language: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMusicOnHold {
    directory: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFirewall {
    #[serde(default)]
    trusted: Vec<String>,
    ban_after_failures: Option<i64>,
    ban_window_seconds: Option<i64>,
    ban_seconds: Option<i64>,
    sip_rate_limit: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSip {
    domain: String,
    #[serde(default = "default_listen")]
    listen: Vec<String>,
    #[serde(default = "default_algorithms")]
    auth_algorithms: Vec<String>,
    tls_certificate: Option<String>,
    tls_key: Option<String>,
    no_answer_seconds: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRtp {
    #[serde(default = "default_ports")]
    ports: String,
}

impl Default for RawRtp {
    fn default() -> Self {
        RawRtp {
            ports: default_ports(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    #[serde(default = "default_database")]
    database: String,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            database: default_database(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    #[serde(default = "default_metrics")]
    listen: String,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics {
            listen: default_metrics(),
        }
    }
}

const DEFAULT_NO_ANSWER_SECONDS: u64 = 60;

fn default_listen() -> Vec<String> {
    vec!["udp:0.0.0.0:5060".into()]
}
fn default_algorithms() -> Vec<String> {
    vec!["SHA-256".into(), "MD5".into()]
}
fn default_ports() -> String {
    "10000-20000".into()
}
fn default_database() -> String {
    "/var/lib/kentongan/pbx.db".into()
}
fn default_metrics() -> String {
    "127.0.0.1:9160".into()
}

/// Known keys per table, for "did you mean" style errors with dotted names. Tables listed in
/// [`MANY`] are arrays of tables (`[[conference]]`), each checked like a single table.
const KNOWN: &[(&str, &[(&str, Kind)])] = &[
    (
        "sip",
        &[
            ("domain", Kind::Str),
            ("listen", Kind::StrList),
            ("auth_algorithms", Kind::StrList),
            ("tls_certificate", Kind::Str),
            ("tls_key", Kind::Str),
            ("no_answer_seconds", Kind::Int),
        ],
    ),
    ("rtp", &[("ports", Kind::Str)]),
    ("storage", &[("database", Kind::Str)]),
    ("metrics", &[("listen", Kind::Str)]),
    (
        "firewall",
        &[
            ("trusted", Kind::StrList),
            ("ban_after_failures", Kind::Int),
            ("ban_window_seconds", Kind::Int),
            ("ban_seconds", Kind::Int),
            ("sip_rate_limit", Kind::Int),
        ],
    ),
    ("conference", conference::KEYS),
    (
        "prompts",
        &[("directory", Kind::Str), ("language", Kind::Str)],
    ),
    ("music_on_hold", &[("directory", Kind::Str)]),
    ("web", web::KEYS),
    ("extension_settings", extension_settings::KEYS),
    ("trunk", trunks::TRUNK_KEYS),
    ("lcr", trunks::LCR_KEYS),
    ("did", trunks::DID_KEYS),
    ("calling_rights", trunks::RIGHTS_KEYS),
    ("voicemail", voicemail::KEYS),
    ("fraud", fraud::KEYS),
    ("ring_group", ring_groups::KEYS),
    ("parking", ring_groups::PARKING_KEYS),
    ("ivr", ivr::KEYS),
    ("office_hours", office_hours::KEYS),
    ("recording", recording::KEYS),
    ("features", features::KEYS),
];

/// The tables written as `[[name]]`: there may be many.
const MANY: &[&str] = &[
    "conference",
    "extension_settings",
    "trunk",
    "did",
    "calling_rights",
    "ring_group",
    "ivr",
    "office_hours",
];

#[derive(Clone, Copy)]
enum Kind {
    Str,
    StrList,
    Int,
    Bool,
    /// An inline table of strings: `{ "1" = "201" }`.
    StrMap,
}

impl Kind {
    fn matches(self, v: &toml::Value) -> bool {
        match self {
            Kind::Str => v.is_str(),
            Kind::StrList => v
                .as_array()
                .is_some_and(|a| a.iter().all(toml::Value::is_str)),
            Kind::Int => v.is_integer(),
            Kind::Bool => v.is_bool(),
            Kind::StrMap => v
                .as_table()
                .is_some_and(|t| t.values().all(toml::Value::is_str)),
        }
    }
    fn describe(self) -> &'static str {
        match self {
            Kind::Str => "a string in double quotes",
            Kind::StrList => "a list of strings, e.g. [\"udp:0.0.0.0:5060\"]",
            Kind::Int => "a whole number without quotes",
            Kind::Bool => "true or false, without quotes",
            Kind::StrMap => "a table of strings, e.g. { \"1\" = \"201\" }",
        }
    }
}

fn check_table(
    at: &str,
    name: &str,
    inner: &toml::Table,
    keys: &[(&str, Kind)],
) -> Result<(), ConfigError> {
    for (key, v) in inner {
        let dotted = format!("{at}.{key}");
        let Some((_, kind)) = keys.iter().find(|(k, _)| k == key) else {
            let names: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
            return Err(ConfigError::at(
                &dotted,
                format!(
                    "is not a known key; remove it or check the spelling (known in [{name}]: {})",
                    names.join(", ")
                ),
            ));
        };
        if !kind.matches(v) {
            return Err(ConfigError::at(
                &dotted,
                format!("must be {}", kind.describe()),
            ));
        }
    }
    Ok(())
}

fn check_keys(table: &toml::Table) -> Result<(), ConfigError> {
    for (name, value) in table {
        let Some((_, keys)) = KNOWN.iter().find(|(t, _)| t == name) else {
            let tables: Vec<String> = KNOWN
                .iter()
                .map(|(t, _)| match MANY.contains(t) {
                    true => format!("[[{t}]]"),
                    false => format!("[{t}]"),
                })
                .collect();
            return Err(ConfigError::at(
                name,
                format!(
                    "is not a known table; remove it or check the spelling (known: {})",
                    tables.join(", ")
                ),
            ));
        };
        if MANY.contains(&name.as_str()) {
            let Some(list) = value
                .as_array()
                .filter(|a| a.iter().all(toml::Value::is_table))
            else {
                return Err(ConfigError::at(
                    name,
                    format!("must be written as [[{name}]] headers, one per entry"),
                ));
            };
            for (i, entry) in list.iter().enumerate() {
                if let Some(inner) = entry.as_table() {
                    check_table(&format!("{name}[{i}]"), name, inner, keys)?;
                }
            }
            continue;
        }
        let Some(inner) = value.as_table() else {
            return Err(ConfigError::at(
                name,
                format!("must be a table, written as a [{name}] header"),
            ));
        };
        check_table(name, name, inner, keys)?;
    }
    if !table.contains_key("sip") {
        return Err(ConfigError::at(
            "sip",
            "is missing; add a [sip] table with at least `domain = \"pbx.local\"`",
        ));
    }
    Ok(())
}

impl Config {
    /// Parses and validates a configuration file's text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e.span().map_or(0, |s| {
                text[..s.start.min(text.len())].lines().count().max(1)
            });
            ConfigError {
                key: String::new(),
                message: format!(
                    "not valid TOML at line {line}: {}",
                    e.message().trim().replace('\n', "; ")
                ),
            }
        })?;
        check_keys(&table)?;
        let raw: RawConfig =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    // Keys are checked above, so this is a type error; name the offender.
                    ConfigError {
                        key: String::new(),
                        message: format!("wrong value type: {}", e.message()),
                    }
                })?;
        Config::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
        let domain = raw.sip.domain.trim().to_owned();
        if domain.is_empty()
            || !domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return Err(ConfigError::at(
                "sip.domain",
                format!(
                    "must be a host name such as \"pbx.local\" (letters, digits, '.' and '-'), not {:?}",
                    raw.sip.domain
                ),
            ));
        }
        if raw.sip.listen.is_empty() {
            return Err(ConfigError::at(
                "sip.listen",
                "is empty; list at least one address, e.g. [\"udp:0.0.0.0:5060\"]",
            ));
        }
        let mut listen = Vec::new();
        for (i, entry) in raw.sip.listen.iter().enumerate() {
            let key = format!("sip.listen[{i}]");
            let l = parse_listen(entry).map_err(|m| ConfigError::at(&key, m))?;
            if listen.contains(&l) {
                return Err(ConfigError::at(
                    &key,
                    format!("repeats {entry:?}; list each address once"),
                ));
            }
            listen.push(l);
        }
        let mut auth_algorithms = Vec::new();
        for (i, a) in raw.sip.auth_algorithms.iter().enumerate() {
            let key = format!("sip.auth_algorithms[{i}]");
            let alg = Algorithm::parse(a).ok_or_else(|| {
                ConfigError::at(&key, format!("is {a:?}; use \"SHA-256\" or \"MD5\""))
            })?;
            if auth_algorithms.contains(&alg) {
                return Err(ConfigError::at(
                    &key,
                    format!("repeats {a:?}; list each once"),
                ));
            }
            auth_algorithms.push(alg);
        }
        if auth_algorithms.is_empty() {
            return Err(ConfigError::at(
                "sip.auth_algorithms",
                "is empty; list at least one, e.g. [\"SHA-256\", \"MD5\"]",
            ));
        }
        let (tls_certificate, tls_key) = match (raw.sip.tls_certificate, raw.sip.tls_key) {
            (Some(c), Some(k)) => (Some(PathBuf::from(c)), Some(PathBuf::from(k))),
            (None, None) => (None, None),
            (Some(_), None) => {
                return Err(ConfigError::at(
                    "sip.tls_key",
                    "is missing while `sip.tls_certificate` is set; give both PEM files, or neither for a self-signed certificate",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::at(
                    "sip.tls_certificate",
                    "is missing while `sip.tls_key` is set; give both PEM files, or neither for a self-signed certificate",
                ))
            }
        };
        let rtp_ports = parse_ports(&raw.rtp.ports).map_err(|m| ConfigError::at("rtp.ports", m))?;
        let no_answer = match raw.sip.no_answer_seconds {
            None => std::time::Duration::from_secs(DEFAULT_NO_ANSWER_SECONDS),
            Some(n @ 1..=3600) => std::time::Duration::from_secs(n as u64),
            Some(n) => {
                return Err(ConfigError::at(
                    "sip.no_answer_seconds",
                    format!("is {n}; use a whole number of seconds from 1 to 3600 (default {DEFAULT_NO_ANSWER_SECONDS})"),
                ))
            }
        };
        if raw.storage.database.trim().is_empty() {
            return Err(ConfigError::at(
                "storage.database",
                "is empty; give a file path such as \"/var/lib/kentongan/pbx.db\"",
            ));
        }
        let metrics_listen: SocketAddr = raw.metrics.listen.parse().map_err(|_| {
            ConfigError::at(
                "metrics.listen",
                format!(
                    "must be an IP address and port such as \"127.0.0.1:9160\", not {:?}",
                    raw.metrics.listen
                ),
            )
        })?;
        let firewall = validate_firewall(&raw.firewall)?;
        let conferences = conference::validate(raw.conference)?;
        let language = match raw.prompts.language.as_deref() {
            None | Some("id") => Language::Indonesian,
            Some("en") => Language::English,
            Some(other) => {
                return Err(ConfigError::at(
                    "prompts.language",
                    format!("is {other:?}; use \"id\" (Bahasa Indonesia) or \"en\" (English)"),
                ))
            }
        };
        let prompts = Prompts {
            directory: PathBuf::from(
                raw.prompts
                    .directory
                    .unwrap_or_else(|| "/var/lib/kentongan/sounds".into()),
            ),
            language,
        };
        let music_on_hold = match raw.music_on_hold.directory {
            None => PathBuf::from(DEFAULT_MOH_DIR),
            Some(d) if d.trim().is_empty() || !d.starts_with('/') => {
                return Err(ConfigError::at(
                    "music_on_hold.directory",
                    format!("is {d:?}; give an absolute path such as \"{DEFAULT_MOH_DIR}\""),
                ))
            }
            Some(d) => PathBuf::from(d),
        };
        let web = raw.web.map(web::validate).transpose()?;
        let extension_settings = extension_settings::validate(raw.extension_settings)?;
        let trunks = trunks::validate_trunks(raw.trunk)?;
        let lcr = trunks::validate_lcr(raw.lcr.as_ref(), &trunks)?;
        let dids = trunks::validate_dids(raw.did, &trunks)?;
        let calling_rights = trunks::validate_rights(raw.calling_rights)?;
        let fraud = fraud::validate(raw.fraud)?;
        let voicemail = raw.voicemail.map(voicemail::validate).transpose()?;
        let ivr_language = voicemail.as_ref().map_or(language, |v| v.language);
        let ivrs = ivr::validate(raw.ivr, ivr_language)?;
        for (i, m) in ivrs.iter().enumerate() {
            if conferences.iter().any(|c| c.number == m.number) {
                return Err(ConfigError::at(
                    &format!("ivr[{i}].number"),
                    format!("is {:?}, which a [[conference]] room already has; give the menu its own number", m.number),
                ));
            }
        }
        let office_hours = office_hours::validate(raw.office_hours)?;
        for (i, d) in dids.iter().enumerate() {
            let to = d.to.as_str();
            let missing = match (to.strip_prefix("hours:"), to.strip_prefix("vm:")) {
                (Some(name), _) if !office_hours.iter().any(|h| h.name == name) => Some(format!(
                    "no [[office_hours]] is named {name:?}; correct the name or add that table"
                )),
                (_, Some(_)) if !voicemail.as_ref().is_some_and(|v| v.enabled) => Some(
                    "[voicemail] is not enabled; enable it or route the DID elsewhere".to_owned(),
                ),
                _ => None,
            };
            if let Some(why) = missing {
                return Err(ConfigError::at(
                    &format!("did[{i}].to"),
                    format!("is {to:?}, but {why}"),
                ));
            }
        }
        let hours_targets: Vec<String> = office_hours
            .iter()
            .map(|h| format!("hours:{}", h.name))
            .collect();
        let mut services: Vec<&str> = vec![crate::routing::ECHO_TEST];
        services.extend(hours_targets.iter().map(String::as_str));
        services.extend(conferences.iter().map(|c| c.number.as_str()));
        services.extend(ivrs.iter().map(|m| m.number.as_str()));
        let voicemail_on = voicemail.as_ref().is_some_and(|v| v.enabled);
        if let Some(v) = voicemail.as_ref().filter(|v| v.enabled) {
            services.extend([v.access.as_str(), crate::routing::ANY_MAILBOX]);
        }
        let mut taken: Vec<(&str, String)> = conferences
            .iter()
            .map(|r| (r.number.as_str(), format!("conference room {:?}", r.name)))
            .collect();
        if let Some(v) = voicemail.as_ref().filter(|v| v.enabled) {
            taken.push((v.access.as_str(), "the voicemail access code".into()));
        }
        taken.extend(
            ivrs.iter()
                .map(|m| (m.number.as_str(), "an [[ivr]] menu".to_owned())),
        );
        let ring_groups = ring_groups::validate(raw.ring_group, &taken)?;
        taken.extend(
            ring_groups
                .iter()
                .map(|g| (g.number.as_str(), format!("ring group {:?}", g.name))),
        );
        let parking = ring_groups::validate_parking(raw.parking, &taken)?;
        let mut parking_numbers = vec![parking.park_number()];
        parking_numbers.extend(parking.slots());
        let parking_numbers: Vec<&str> = parking_numbers.iter().map(String::as_str).collect();
        ivr::check_targets(&ivrs, &services, &parking_numbers, voicemail_on)?;
        for (i, h) in office_hours.iter().enumerate() {
            let keys = [
                (format!("office_hours[{i}].in_hours"), &h.in_hours),
                (format!("office_hours[{i}].after_hours"), &h.after_hours),
            ];
            ivr::check_target_list(keys.into_iter(), &services, voicemail_on)?;
        }
        let recording = raw.recording.map(recording::validate).transpose()?;
        let features = raw.features.map(features::validate).unwrap_or_default();
        Ok(Config {
            features,
            fraud,
            ring_groups,
            parking,
            ivrs,
            office_hours,
            recording,
            voicemail,
            trunks,
            lcr,
            dids,
            calling_rights,
            extension_settings,
            conferences,
            prompts,
            music_on_hold,
            web,
            firewall,
            no_answer,
            domain,
            listen,
            auth_algorithms,
            tls_certificate,
            tls_key,
            rtp_ports,
            database: PathBuf::from(raw.storage.database),
            metrics_listen,
        })
    }
}

fn validate_firewall(raw: &RawFirewall) -> Result<Policy, ConfigError> {
    let defaults = Policy::default();
    let mut trusted: Vec<Cidr> = Vec::new();
    for (i, t) in raw.trusted.iter().enumerate() {
        let key = format!("firewall.trusted[{i}]");
        let c: Cidr = t
            .trim()
            .parse()
            .map_err(|e| ConfigError::at(&key, format!("is {t:?}, which {e}")))?;
        if c.prefix() == 0 {
            return Err(ConfigError::at(
                &key,
                format!("is {t:?}, which trusts the whole internet (nothing would ever be banned and SSH would be open to all); list your own networks"),
            ));
        }
        if !trusted.contains(&c) {
            trusted.push(c);
        }
    }
    let number = |key: &str, v: Option<i64>, min: i64, max: i64, default: u64| match v {
        None => Ok(default),
        Some(n) if (min..=max).contains(&n) => Ok(n as u64),
        Some(n) => Err(ConfigError::at(
            &format!("firewall.{key}"),
            format!("is {n}; use a whole number from {min} to {max}"),
        )),
    };
    let day = 86_400;
    Ok(Policy {
        trusted,
        ban_after_failures: number(
            "ban_after_failures",
            raw.ban_after_failures,
            0,
            1000,
            u64::from(defaults.ban_after_failures),
        )? as u32,
        ban_window: std::time::Duration::from_secs(number(
            "ban_window_seconds",
            raw.ban_window_seconds,
            1,
            day,
            defaults.ban_window.as_secs(),
        )?),
        ban_duration: std::time::Duration::from_secs(number(
            "ban_seconds",
            raw.ban_seconds,
            1,
            365 * day,
            defaults.ban_duration.as_secs(),
        )?),
        sip_rate_limit: number(
            "sip_rate_limit",
            raw.sip_rate_limit,
            1,
            1_000_000,
            u64::from(defaults.sip_rate_limit),
        )? as u32,
    })
}

fn parse_listen(entry: &str) -> Result<Listen, String> {
    let example = "e.g. \"udp:0.0.0.0:5060\" or \"tls:[::]:5061\"";
    let Some((proto, addr)) = entry.split_once(':') else {
        return Err(format!(
            "must be TRANSPORT:ADDRESS:PORT, {example}, not {entry:?}"
        ));
    };
    let transport = match proto {
        "udp" => ListenTransport::Udp,
        "tcp" => ListenTransport::Tcp,
        "tls" => ListenTransport::Tls,
        other => {
            return Err(format!(
                "has unknown transport {other:?}; use udp, tcp or tls, {example}"
            ))
        }
    };
    let addr: SocketAddr = addr.parse().map_err(|_| {
        format!(
            "has {addr:?}, which is not an IP address and port; write IPv6 in brackets, {example}"
        )
    })?;
    if addr.port() == 0 {
        return Err(format!("needs a port other than 0, {example}"));
    }
    Ok(Listen { transport, addr })
}

fn parse_ports(s: &str) -> Result<PortRange, String> {
    let fix = "e.g. \"10000-20000\"";
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("must be \"LOW-HIGH\", {fix}, not {s:?}"))?;
    let low: u16 = lo
        .trim()
        .parse()
        .map_err(|_| format!("must be \"LOW-HIGH\" with ports 1024-65535, {fix}, not {s:?}"))?;
    let high: u16 = hi
        .trim()
        .parse()
        .map_err(|_| format!("must be \"LOW-HIGH\" with ports 1024-65535, {fix}, not {s:?}"))?;
    if low < 1024 {
        return Err(format!(
            "starts at {low}, below 1024 (reserved ports); start at 1024 or above, {fix}"
        ));
    }
    if low >= high {
        return Err(format!("{s:?} has LOW not below HIGH; swap them, {fix}"));
    }
    let range = PortRange { low, high };
    if range.rtp_ports().count() < 4 {
        return Err(format!(
            "{s:?} is too small: it needs room for at least 4 RTP/RTCP port pairs, {fix}"
        ));
    }
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_listen_and_ports() {
        let c = Config::from_toml(
            "[sip]\ndomain = \"pbx.local\"\nlisten = [\"udp:[::1]:5060\"]\n[rtp]\nports = \"10001-10009\"\n",
        )
        .unwrap();
        assert_eq!(c.listen[0].addr, "[::1]:5060".parse().unwrap());
        assert_eq!(
            c.rtp_ports.rtp_ports().collect::<Vec<_>>(),
            [10002, 10004, 10006, 10008]
        );
    }
}
