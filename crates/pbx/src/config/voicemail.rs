//! `[voicemail]`: where a call goes that an extension does not take (busy, unanswered after
//! `ring_seconds`, or no phone registered), how long and how many messages, the mailbox
//! access code, the language callers hear, and the SMTP relay for voicemail to email.
//! Without a `[voicemail]` table voicemail is off and such calls fail as before (486/480).

use serde::Deserialize;

use super::{ConfigError, Kind, Language};

pub(super) const KEYS: &[(&str, Kind)] = &[
    ("enabled", Kind::Bool),
    ("ring_seconds", Kind::Int),
    ("max_message_seconds", Kind::Int),
    ("max_messages", Kind::Int),
    ("access", Kind::Str),
    ("language", Kind::Str),
    ("smtp", Kind::Str),
    ("smtp_ca", Kind::Str),
    ("from", Kind::Str),
];

const DEFAULT_RING_SECONDS: i64 = 20;
const DEFAULT_MAX_MESSAGE_SECONDS: i64 = 180;
const DEFAULT_MAX_MESSAGES: i64 = 100;
const DEFAULT_ACCESS: &str = "*97";

/// Feature codes routing already gives a meaning (`routing::FeatureCode`, the echo test).
/// `*98` is any mailbox's menu.
const TAKEN_CODES: &[&str] = &[
    "*43", "*52", "*53", "*70", "*71", "*72", "*73", "*78", "*79", "*90", "*91", "*98",
];

/// The validated `[voicemail]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voicemail {
    pub enabled: bool,
    /// Unanswered this long, a call goes to the mailbox (unless a no-answer forward is set).
    pub ring_seconds: u32,
    pub max_message_seconds: u32,
    /// A full mailbox takes no more messages (the caller is told so).
    pub max_messages: u32,
    /// The code dialled for one's own mailbox, e.g. `*97`.
    pub access: String,
    pub language: Language,
    /// `smtp://host:port` (plain, or `?tls=starttls`) or `smtps://` for voicemail to email.
    pub smtp: Option<SmtpRelay>,
    /// The sender address of voicemail mails.
    pub from: Option<String>,
}

/// An SMTP relay, from `voicemail.smtp` and `voicemail.smtp_ca`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpRelay {
    pub security: SmtpSecurity,
    pub host: String,
    pub port: u16,
    /// PEM certificate authorities the relay's certificate must chain to, instead of the
    /// system's (a relay with a certificate of the office's own CA).
    pub ca: Option<std::path::PathBuf>,
}

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: none (the usual relay on loopback or the office LAN).
    Plain,
    /// `smtp://…?tls=starttls`: plain, then STARTTLS, which the relay must offer; nothing is
    /// sent before TLS is up and the certificate checked.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Tls,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVoicemail {
    enabled: Option<bool>,
    ring_seconds: Option<i64>,
    max_message_seconds: Option<i64>,
    max_messages: Option<i64>,
    access: Option<String>,
    language: Option<String>,
    smtp: Option<String>,
    smtp_ca: Option<String>,
    from: Option<String>,
}

fn number(key: &str, v: Option<i64>, min: i64, max: i64, default: i64) -> Result<u32, ConfigError> {
    match v.unwrap_or(default) {
        n if (min..=max).contains(&n) => Ok(n as u32),
        n => Err(ConfigError::at(
            &format!("voicemail.{key}"),
            format!("is {n}; use a whole number from {min} to {max} (default {default})"),
        )),
    }
}

fn parse_smtp(s: &str) -> Option<SmtpRelay> {
    let (mut security, rest) = if let Some(r) = s.strip_prefix("smtp://") {
        (SmtpSecurity::Plain, r)
    } else {
        (SmtpSecurity::Tls, s.strip_prefix("smtps://")?)
    };
    let rest = match rest.split_once('?') {
        None => rest,
        Some((r, "tls=starttls")) if security == SmtpSecurity::Plain => {
            security = SmtpSecurity::StartTls;
            r
        }
        Some(_) => return None,
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let default_port = if security == SmtpSecurity::Tls {
        465
    } else {
        25
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse::<u16>().ok()?),
        _ => (rest, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ok = !host.is_empty()
        && port != 0
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b));
    ok.then(|| SmtpRelay {
        security,
        host: host.to_owned(),
        port,
        ca: None,
    })
}

/// A plain `local@domain` address (no display name, no comments), as `voicemail.from` and
/// an extension's `--email` must be.
pub fn valid_mail_address(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !domain.is_empty()
        && domain.len() <= 253
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        && local
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:\"@".contains(&b))
}

pub(super) fn validate(raw: RawVoicemail) -> Result<Voicemail, ConfigError> {
    let ring_seconds = number(
        "ring_seconds",
        raw.ring_seconds,
        1,
        600,
        DEFAULT_RING_SECONDS,
    )?;
    let max_message_seconds = number(
        "max_message_seconds",
        raw.max_message_seconds,
        5,
        3600,
        DEFAULT_MAX_MESSAGE_SECONDS,
    )?;
    let max_messages = number(
        "max_messages",
        raw.max_messages,
        1,
        10_000,
        DEFAULT_MAX_MESSAGES,
    )?;
    let access = raw.access.unwrap_or_else(|| DEFAULT_ACCESS.into());
    let digits = access.strip_prefix('*').unwrap_or("");
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError::at(
            "voicemail.access",
            format!("is {access:?}; use a star code of 1 to 3 digits, e.g. \"*97\""),
        ));
    }
    if TAKEN_CODES.contains(&access.as_str()) {
        return Err(ConfigError::at(
            "voicemail.access",
            format!("is {access:?}, which is already a feature code; use another, e.g. \"*97\""),
        ));
    }
    let language = match raw.language.as_deref() {
        None | Some("id") => Language::Indonesian,
        Some("en") => Language::English,
        Some(other) => {
            return Err(ConfigError::at(
                "voicemail.language",
                format!("is {other:?}; use \"id\" (Bahasa Indonesia) or \"en\" (English)"),
            ))
        }
    };
    let smtp = match raw.smtp.as_deref().map(str::trim) {
        None => None,
        Some(s) => Some(parse_smtp(s).ok_or_else(|| {
            ConfigError::at(
                "voicemail.smtp",
                format!("is {s:?}; use smtp://HOST:PORT (plain), smtp://HOST:PORT?tls=starttls or smtps://HOST:PORT, e.g. \"smtp://127.0.0.1:25\""),
            )
        })?),
    };
    let smtp = match (smtp, raw.smtp_ca.as_deref().map(str::trim)) {
        (smtp, None) => smtp,
        (None, Some(_)) => {
            return Err(ConfigError::at(
                "voicemail.smtp_ca",
                "is set without `voicemail.smtp`; give the relay too, or remove smtp_ca",
            ))
        }
        (Some(r), Some(_)) if r.security == SmtpSecurity::Plain => {
            return Err(ConfigError::at(
                "voicemail.smtp_ca",
                "is set but `voicemail.smtp` uses no TLS; use smtps://… or smtp://…?tls=starttls, or remove smtp_ca",
            ))
        }
        (Some(r), Some(ca)) if ca.starts_with('/') => Some(SmtpRelay {
            ca: Some(ca.into()),
            ..r
        }),
        (Some(_), Some(ca)) => {
            return Err(ConfigError::at(
                "voicemail.smtp_ca",
                format!("is {ca:?}; give the absolute path of a PEM file, e.g. \"/etc/kentongan/mail-ca.pem\""),
            ))
        }
    };
    let from = raw.from.map(|f| f.trim().to_owned());
    if let Some(f) = &from {
        if !valid_mail_address(f) {
            return Err(ConfigError::at(
                "voicemail.from",
                format!("is {f:?}; use a plain mail address, e.g. \"pbx@kantor.local\""),
            ));
        }
    }
    if smtp.is_some() && from.is_none() {
        return Err(ConfigError::at(
            "voicemail.from",
            "is missing while `voicemail.smtp` is set; give the sender address of voicemail mails, e.g. \"pbx@kantor.local\"",
        ));
    }
    Ok(Voicemail {
        enabled: raw.enabled.unwrap_or(true),
        ring_seconds,
        max_message_seconds,
        max_messages,
        access,
        language,
        smtp,
        from,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn vm(table: &str) -> Result<Option<super::Voicemail>, String> {
        Config::from_toml(&format!(
            "[sip]\ndomain = \"pbx.local\"\n[voicemail]\n{table}"
        ))
        .map(|c| c.voicemail)
        .map_err(|e| e.message)
    }

    #[test]
    fn the_issue_table_is_accepted_as_written() {
        let v = vm(r#"enabled = true
ring_seconds = 20
max_message_seconds = 180
max_messages = 100
access = "*97"
language = "id"
smtp = "smtp://127.0.0.1:25"
from = "pbx@kantor.local"
"#)
        .unwrap()
        .unwrap();
        assert!(v.enabled);
        assert_eq!(
            (v.ring_seconds, v.max_message_seconds, v.max_messages),
            (20, 180, 100)
        );
        assert_eq!(v.access, "*97");
        assert_eq!(v.language, crate::config::Language::Indonesian);
        assert_eq!(
            v.smtp,
            Some(super::SmtpRelay {
                security: super::SmtpSecurity::Plain,
                host: "127.0.0.1".into(),
                port: 25,
                ca: None,
            })
        );
        assert_eq!(v.from.as_deref(), Some("pbx@kantor.local"));
    }

    #[test]
    fn no_table_is_off_and_an_empty_table_is_on_with_defaults() {
        let c = Config::from_toml("[sip]\ndomain = \"pbx.local\"\n").unwrap();
        assert_eq!(c.voicemail, None);
        let v = vm("").unwrap().unwrap();
        assert!(v.enabled);
        assert_eq!((v.ring_seconds, v.max_messages), (20, 100));
        assert_eq!(v.smtp, None);
    }

    #[test]
    fn every_bad_value_names_its_key_and_the_fix() {
        let cases = [
            (
                "ring_seconds = 0",
                "`voicemail.ring_seconds` is 0; use a whole number from 1 to 600",
            ),
            (
                "max_message_seconds = 1",
                "`voicemail.max_message_seconds` is 1",
            ),
            ("max_messages = -3", "`voicemail.max_messages` is -3"),
            (
                "access = \"97\"",
                "`voicemail.access` is \"97\"; use a star code",
            ),
            ("access = \"*72\"", "already a feature code"),
            ("language = \"fr\"", "`voicemail.language` is \"fr\""),
            (
                "smtp = \"mail.local\"\nfrom = \"a@b.c\"",
                "`voicemail.smtp` is \"mail.local\"",
            ),
            (
                "smtp = \"smtp://:25\"\nfrom = \"a@b.c\"",
                "`voicemail.smtp`",
            ),
            (
                "smtp = \"smtp://127.0.0.1:25\"",
                "`voicemail.from` is missing",
            ),
            (
                "smtp = \"smtp://127.0.0.1:25?tls=required\"\nfrom = \"a@b.c\"",
                "?tls=starttls",
            ),
            (
                "smtp = \"smtps://127.0.0.1?tls=starttls\"\nfrom = \"a@b.c\"",
                "`voicemail.smtp` is",
            ),
            (
                "smtp = \"smtp://127.0.0.1:25\"\nsmtp_ca = \"/ca.pem\"\nfrom = \"a@b.c\"",
                "`voicemail.smtp_ca` is set but `voicemail.smtp` uses no TLS",
            ),
            (
                "smtp = \"smtps://127.0.0.1\"\nsmtp_ca = \"ca.pem\"\nfrom = \"a@b.c\"",
                "`voicemail.smtp_ca` is \"ca.pem\"; give the absolute path",
            ),
            (
                "smtp_ca = \"/ca.pem\"",
                "`voicemail.smtp_ca` is set without `voicemail.smtp`",
            ),
            (
                "from = \"pbx at kantor\"",
                "`voicemail.from` is \"pbx at kantor\"",
            ),
            ("from = \"<x>@kantor.local\"", "`voicemail.from`"),
            ("ring = 3", "`voicemail.ring` is not a known key"),
            (
                "enabled = \"yes\"",
                "`voicemail.enabled` must be true or false",
            ),
        ];
        for (table, want) in cases {
            let e = vm(table).unwrap_err();
            assert!(e.contains(want), "{table}: {e}");
        }
    }

    #[test]
    fn smtps_and_default_ports() {
        let v = vm("smtp = \"smtps://mail.kantor.local\"\nfrom = \"pbx@kantor.local\"")
            .unwrap()
            .unwrap();
        assert_eq!(
            v.smtp,
            Some(super::SmtpRelay {
                security: super::SmtpSecurity::Tls,
                host: "mail.kantor.local".into(),
                port: 465,
                ca: None,
            })
        );
        let v = vm("smtp = \"smtp://mail.kantor.local?tls=starttls\"\n\
                    smtp_ca = \"/etc/kentongan/mail-ca.pem\"\nfrom = \"pbx@kantor.local\"")
        .unwrap()
        .unwrap();
        assert_eq!(
            v.smtp,
            Some(super::SmtpRelay {
                security: super::SmtpSecurity::StartTls,
                host: "mail.kantor.local".into(),
                port: 25,
                ca: Some("/etc/kentongan/mail-ca.pem".into()),
            })
        );
        let v = vm("smtp = \"smtp://127.0.0.1:587/?tls=starttls\"\nfrom = \"a@b.c\"")
            .unwrap()
            .unwrap();
        let relay = v.smtp.unwrap();
        assert_eq!(
            (relay.security, relay.port),
            (super::SmtpSecurity::StartTls, 587)
        );
    }
}
