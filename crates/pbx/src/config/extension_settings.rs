//! `[[extension_settings]]`: per-extension service settings written in the config file, checked
//! into [`ExtensionConfig`]s. Forwarding targets and DND live in SQLite (set from the CLI or a
//! phone's feature codes); what is written here are the extension's fixed properties.

use serde::Deserialize;

use super::{ConfigError, Kind};

pub(super) const KEYS: &[(&str, Kind)] = &[
    ("number", Kind::Str),
    ("pickup_group", Kind::Str),
    ("forward_no_answer_seconds", Kind::Int),
    ("email", Kind::Str),
];

/// How long a call rings an extension with a no-answer forward before it is forwarded.
pub const DEFAULT_FORWARD_NO_ANSWER_SECONDS: u32 = 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExtensionSettings {
    number: String,
    pickup_group: Option<String>,
    forward_no_answer_seconds: Option<i64>,
    email: Option<String>,
}

/// One extension's written settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionConfig {
    pub number: String,
    /// `*8` from this extension picks up calls ringing at others of the same group.
    pub pickup_group: Option<String>,
    /// Ringing this long unanswered sends the call to the no-answer forward (if one is set).
    pub forward_no_answer_seconds: u32,
    /// Voicemail is mailed here (with `[voicemail] smtp`), instead of to the address
    /// `user set --email` stored.
    pub email: Option<String>,
}

pub(super) fn validate(
    raw: Vec<RawExtensionSettings>,
) -> Result<Vec<ExtensionConfig>, ConfigError> {
    let mut out: Vec<ExtensionConfig> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("extension_settings[{i}].{k}");
        let number = r.number.trim().to_owned();
        if crate::store::Extension::parse(&number).is_none() {
            return Err(ConfigError::at(
                &key("number"),
                format!(
                    "is {:?}; use the extension's number as `user add` took it, e.g. \"201\"",
                    r.number
                ),
            ));
        }
        if let Some(other) = out.iter().position(|x| x.number == number) {
            return Err(ConfigError::at(
                &key("number"),
                format!("repeats {number:?}, already in extension_settings[{other}]; write one entry per extension"),
            ));
        }
        let pickup_group = match r.pickup_group {
            None => None,
            Some(g) => {
                let ok = !g.is_empty()
                    && g.len() <= 32
                    && g.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !ok {
                    return Err(ConfigError::at(
                        &key("pickup_group"),
                        format!(
                            "is {g:?}; use 1-32 letters, digits, '-', '_' or '.', e.g. \"sales\""
                        ),
                    ));
                }
                Some(g)
            }
        };
        let forward_no_answer_seconds = match r.forward_no_answer_seconds {
            None => DEFAULT_FORWARD_NO_ANSWER_SECONDS,
            Some(n @ 1..=600) => n as u32,
            Some(n) => {
                return Err(ConfigError::at(
                    &key("forward_no_answer_seconds"),
                    format!("is {n}; use a whole number of seconds from 1 to 600 (default {DEFAULT_FORWARD_NO_ANSWER_SECONDS})"),
                ))
            }
        };
        let email = match r.email.as_deref().map(str::trim) {
            None => None,
            Some(a) if super::valid_mail_address(a) => Some(a.to_owned()),
            Some(a) => {
                return Err(ConfigError::at(
                    &key("email"),
                    format!("is {a:?}, which is not a plain mail address; give it as name@domain, e.g. \"ani@kantor.local\" (or leave the key out)"),
                ))
            }
        };
        out.push(ExtensionConfig {
            number,
            pickup_group,
            forward_no_answer_seconds,
            email,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(extra: &str) -> Result<Config, String> {
        Config::from_toml(&format!("[sip]\ndomain = \"pbx.local\"\n{extra}")).map_err(|e| e.message)
    }

    #[test]
    fn settings_as_the_readme_shows_them() {
        let c = load(
            "[[extension_settings]]\nnumber = \"201\"\npickup_group = \"sales\"\n\
             forward_no_answer_seconds = 20\n[[extension_settings]]\nnumber = \"202\"\n",
        )
        .unwrap();
        assert_eq!(c.extension_settings.len(), 2);
        assert_eq!(
            c.extension_settings[0].pickup_group.as_deref(),
            Some("sales")
        );
        assert_eq!(c.extension_settings[1].forward_no_answer_seconds, 20);
        assert_eq!(c.forward_no_answer_seconds("202"), 20);
        assert_eq!(c.forward_no_answer_seconds("299"), 20);
        assert_eq!(c.extension_email("201"), None);
        let c = load("[[extension_settings]]\nnumber = \"201\"\nemail = \" ani@kantor.local \"\n")
            .unwrap();
        assert_eq!(c.extension_email("201"), Some("ani@kantor.local"));
        assert_eq!(c.extension_email("202"), None);
    }

    #[test]
    fn bad_settings_name_the_key() {
        let e = load("[[extension_settings]]\nnumber = \"2 01\"\n").unwrap_err();
        assert!(
            e.starts_with("`extension_settings[0].number` is \"2 01\""),
            "{e}"
        );
        let e = load("[[extension_settings]]\nnumber = \"201\"\nforward_no_answer_seconds = 0\n")
            .unwrap_err();
        assert!(
            e.starts_with("`extension_settings[0].forward_no_answer_seconds` is 0"),
            "{e}"
        );
        let e = load(
            "[[extension_settings]]\nnumber = \"201\"\n[[extension_settings]]\nnumber = \"201\"\n",
        )
        .unwrap_err();
        assert!(
            e.starts_with("`extension_settings[1].number` repeats"),
            "{e}"
        );
        for bad in [
            "ani at kantor",
            "<ani@kantor.local>",
            "Ani <ani@kantor.local>",
            "",
        ] {
            let e = load(&format!(
                "[[extension_settings]]\nnumber = \"201\"\nemail = {bad:?}\n"
            ))
            .unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "`extension_settings[0].email` is {bad:?}, which is not a plain mail address"
                )),
                "{e}"
            );
        }
        let e = load("[[extension_settings]]\nnumber = \"201\"\ndnd = true\n").unwrap_err();
        assert!(
            e.starts_with("`extension_settings[0].dnd` is not a known key"),
            "{e}"
        );
    }
}
