//! `[[ivr]]`: auto-attendant menus. Each has a number, a greeting (text spoken by espeak-ng,
//! or a recorded WAV), how long to wait for a key, how often to repeat, whether callers may
//! type an extension, the keys' targets and where a caller goes who chose nothing.
//!
//! Targets are written as numbers a phone could dial ("201", "600", another IVR's "700") or
//! `vm:EXT` for a mailbox. Whether a target names something is checked once the whole file is
//! read ([`check_targets`]), since a target may be a room or menu written further down.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Kind, Language};

pub(super) const KEYS: &[(&str, Kind)] = &[
    ("number", Kind::Str),
    ("greeting", Kind::Str),
    ("greeting_file", Kind::Str),
    ("language", Kind::Str),
    ("timeout_seconds", Kind::Int),
    ("retries", Kind::Int),
    ("direct_dial", Kind::Bool),
    ("options", Kind::StrMap),
    ("invalid", Kind::Str),
];

const DEFAULT_TIMEOUT_SECONDS: i64 = 5;
const DEFAULT_RETRIES: i64 = 3;

/// What a caller hears when the menu starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IvrGreeting {
    /// Spoken by espeak-ng once, into the prompt directory's `ivr/` cache.
    Text { text: String, language: Language },
    /// A recording the operator made (any rate, mono or stereo 16-bit WAV).
    File(PathBuf),
}

/// One validated `[[ivr]]` menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ivr {
    pub number: String,
    pub greeting: IvrGreeting,
    /// How long after the greeting the menu waits for a first key.
    pub timeout: Duration,
    /// How many times the menu is repeated after no key or a wrong one.
    pub retries: u32,
    /// Typing an extension's number rings it.
    pub direct_dial: bool,
    /// Key → target (a dialled number or `vm:EXT`).
    pub options: BTreeMap<char, String>,
    /// Where a caller goes after the retries; `None`: the PBX says goodbye and hangs up.
    pub invalid: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIvr {
    number: String,
    greeting: Option<String>,
    greeting_file: Option<String>,
    language: Option<String>,
    timeout_seconds: Option<i64>,
    retries: Option<i64>,
    direct_dial: Option<bool>,
    #[serde(default)]
    options: BTreeMap<String, String>,
    invalid: Option<String>,
}

/// A target is a number a phone dials (digits, `*`), `vm:` and an extension, or `hours:`
/// and an `[[office_hours]]` name.
pub(super) fn target_shape_ok(t: &str) -> bool {
    let number = |s: &str| {
        !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_digit() || b == b'*')
    };
    if let Some(name) = t.strip_prefix("hours:") {
        return super::office_hours::name_ok(name);
    }
    match t.strip_prefix("vm:") {
        Some(ext) => number(ext) && !ext.contains('*'),
        None => number(t),
    }
}

/// The first target in `targets` (dotted key, target) that names nothing in this file.
pub(super) fn check_target_list<'a>(
    targets: impl Iterator<Item = (String, &'a String)>,
    services: &[&str],
    voicemail_on: bool,
) -> Result<(), ConfigError> {
    for (key, target) in targets {
        if target.starts_with("vm:") && !voicemail_on {
            return Err(ConfigError::at(
                &key,
                format!("is {target:?}, but voicemail is off; add a [voicemail] table or pick another target"),
            ));
        }
        if target.starts_with("hours:") && !services.contains(&target.as_str()) {
            return Err(ConfigError::at(
                &key,
                format!(
                    "is {target:?}, but no [[office_hours]] has that name; add one or fix the name"
                ),
            ));
        }
        if target.starts_with('*') && !services.contains(&target.as_str()) {
            return Err(ConfigError::at(
                &key,
                format!("is {target:?}, which is no menu, room or mailbox code of this PBX; use an extension, a room, a menu or \"vm:EXT\""),
            ));
        }
    }
    Ok(())
}

pub(super) fn validate(
    raw: Vec<RawIvr>,
    default_language: Language,
) -> Result<Vec<Ivr>, ConfigError> {
    let mut out: Vec<Ivr> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let at = |k: &str| format!("ivr[{i}].{k}");
        if r.number.is_empty()
            || r.number.len() > 16
            || !r.number.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ConfigError::at(
                &at("number"),
                format!(
                    "is {:?}; use the digits callers dial, e.g. \"700\"",
                    r.number
                ),
            ));
        }
        if out.iter().any(|o| o.number == r.number) {
            return Err(ConfigError::at(
                &at("number"),
                format!(
                    "is {:?}, which another [[ivr]] already has; give each menu its own number",
                    r.number
                ),
            ));
        }
        let language = match r.language.as_deref() {
            None => default_language,
            Some("id") => Language::Indonesian,
            Some("en") => Language::English,
            Some(other) => {
                return Err(ConfigError::at(
                    &at("language"),
                    format!("is {other:?}; use \"id\" (Bahasa Indonesia) or \"en\" (English)"),
                ))
            }
        };
        let greeting = match (r.greeting, r.greeting_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::at(
                    &at("greeting_file"),
                    "is set together with `greeting`; keep one: the text to speak or the recording",
                ))
            }
            (Some(t), None) if !t.trim().is_empty() && t.len() <= 2000 => IvrGreeting::Text {
                text: t.trim().to_owned(),
                language,
            },
            (Some(_), None) => {
                return Err(ConfigError::at(
                    &at("greeting"),
                    "must be a text of 1 to 2000 characters, e.g. \"Tekan 1 untuk penjualan.\"",
                ))
            }
            (None, Some(f)) if f.starts_with('/') => IvrGreeting::File(PathBuf::from(f)),
            (None, Some(f)) => {
                return Err(ConfigError::at(
                    &at("greeting_file"),
                    format!("is {f:?}; give an absolute path to a WAV file, e.g. \"/var/lib/kentongan/sounds/custom/welcome.wav\""),
                ))
            }
            (None, None) => {
                return Err(ConfigError::at(
                    &at("greeting"),
                    "is missing; write the text callers hear (`greeting`) or a recording (`greeting_file`)",
                ))
            }
        };
        let timeout = match r.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS) {
            n @ 1..=60 => Duration::from_secs(n as u64),
            n => {
                return Err(ConfigError::at(
                    &at("timeout_seconds"),
                    format!(
                    "is {n}; use a whole number from 1 to 60 (default {DEFAULT_TIMEOUT_SECONDS})"
                ),
                ))
            }
        };
        let retries = match r.retries.unwrap_or(DEFAULT_RETRIES) {
            n @ 0..=10 => n as u32,
            n => {
                return Err(ConfigError::at(
                    &at("retries"),
                    format!("is {n}; use a whole number from 0 to 10 (default {DEFAULT_RETRIES})"),
                ))
            }
        };
        let mut options = BTreeMap::new();
        for (key, target) in r.options {
            let dotted = format!("ivr[{i}].options.\"{key}\"");
            let mut chars = key.chars();
            let k =
                match (chars.next(), chars.next()) {
                    (Some(c @ ('0'..='9' | '*' | '#')), None) => c,
                    _ => return Err(ConfigError::at(
                        &dotted,
                        "is not one key; options are single keys 0-9, * or #, e.g. \"1\" = \"201\"",
                    )),
                };
            if !target_shape_ok(&target) {
                return Err(ConfigError::at(
                    &dotted,
                    format!("is {target:?}; use a number (\"201\", \"600\", \"700\"), a mailbox (\"vm:201\") or office hours (\"hours:kantor\")"),
                ));
            }
            options.insert(k, target);
        }
        if let Some(t) = &r.invalid {
            if !target_shape_ok(t) {
                return Err(ConfigError::at(
                    &at("invalid"),
                    format!("is {t:?}; use a number (\"200\"), a mailbox (\"vm:200\") or office hours (\"hours:kantor\")"),
                ));
            }
        }
        out.push(Ivr {
            number: r.number,
            greeting,
            timeout,
            retries,
            direct_dial: r.direct_dial.unwrap_or(false),
            options,
            invalid: r.invalid,
        });
    }
    Ok(out)
}

/// Every target must name something this file serves: a menu, a room, the mailbox codes, a
/// mailbox (`vm:`, which needs `[voicemail]`), or a number an extension can have (the user
/// directory lives in the database; a number nobody has is told to the caller as invalid).
/// `services` are the numbers taken by services in this file.
/// `parking`: the park and slot numbers, which a menu cannot hand a caller to (parking
/// takes a call being transferred, not a new one): refused here rather than failing as an
/// invalid choice at call time. A `[[ring_group]]` number is a target like an extension's.
pub(super) fn check_targets(
    ivrs: &[Ivr],
    services: &[&str],
    parking: &[&str],
    voicemail_on: bool,
) -> Result<(), ConfigError> {
    for (i, ivr) in ivrs.iter().enumerate() {
        let keys = ivr
            .options
            .iter()
            .map(|(k, t)| (format!("ivr[{i}].options.\"{k}\""), t))
            .chain(ivr.invalid.iter().map(|t| (format!("ivr[{i}].invalid"), t)));
        for (key, target) in keys.clone() {
            if parking.contains(&target.as_str()) {
                return Err(ConfigError::at(
                    &key,
                    format!("is {target:?}, a parking number, which takes transferred calls, not a menu's caller; name an extension, a ring group or a mailbox"),
                ));
            }
        }
        check_target_list(keys, services, voicemail_on)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn ivr(extra: &str) -> Result<Vec<super::Ivr>, String> {
        Config::from_toml(&format!("[sip]\ndomain = \"pbx.local\"\n{extra}"))
            .map(|c| c.ivrs)
            .map_err(|e| e.message)
    }

    #[test]
    fn the_issue_example_parses() {
        let v = ivr(r#"
[voicemail]
language = "en"
[[ivr]]
number = "700"
greeting = "Selamat datang di Kantor. Tekan 1 untuk penjualan, 2 untuk dukungan."
timeout_seconds = 5
retries = 3
direct_dial = true
options = { "1" = "201", "2" = "600", "0" = "200", "9" = "vm:201" }
invalid = "200"
"#)
        .unwrap();
        assert_eq!(v[0].number, "700");
        assert_eq!(v[0].options[&'1'], "201");
        assert_eq!(v[0].options[&'9'], "vm:201");
        assert!(v[0].direct_dial);
        assert_eq!(v[0].retries, 3);
        // The language follows [voicemail] unless the menu names its own.
        assert!(matches!(
            &v[0].greeting,
            super::IvrGreeting::Text {
                language: crate::config::Language::English,
                ..
            }
        ));
    }

    #[test]
    fn mistakes_name_the_key() {
        let base = "[[ivr]]\nnumber = \"700\"\ngreeting = \"Halo\"\n";
        for (extra, expect) in [
            (
                "options = { \"12\" = \"201\" }",
                "`ivr[0].options.\"12\"` is not one key",
            ),
            (
                "options = { \"1\" = \"sales\" }",
                "`ivr[0].options.\"1\"` is \"sales\"",
            ),
            ("options = { \"1\" = \"vm:201\" }", "but voicemail is off"),
            (
                "options = { \"1\" = \"*55\" }",
                "is no menu, room or mailbox code",
            ),
            ("timeout_seconds = 0", "`ivr[0].timeout_seconds` is 0"),
            ("retries = 11", "`ivr[0].retries` is 11"),
            ("greeting_file = \"/x.wav\"", "set together with `greeting`"),
            ("language = \"fr\"", "`ivr[0].language` is \"fr\""),
            (
                "options = { \"1\" = 201 }",
                "`ivr[0].options` must be a table of strings",
            ),
        ] {
            let err = ivr(&format!("{base}{extra}\n")).unwrap_err();
            assert!(err.contains(expect), "{extra}: {err}");
        }
        let err = ivr("[[ivr]]\nnumber = \"700\"\n").unwrap_err();
        assert!(err.contains("`ivr[0].greeting` is missing"), "{err}");
        let err = ivr(&format!("{base}{base}")).unwrap_err();
        assert!(err.contains("another [[ivr]] already has"), "{err}");
    }
}
