//! `[[office_hours]]`: a named weekly schedule in a time zone, with a holiday file, that
//! sends a call to `in_hours` while open and to `after_hours` otherwise. It is used as a
//! target written `hours:NAME` (an IVR option, `invalid`, a DID's destination).
//!
//! Only the shape is checked here; the time zone and the holiday file are read when the
//! daemon starts or reloads (`routing::hours::load`), since a config check must not depend on
//! the machine it runs on.

use std::path::PathBuf;

use kentongan_lcr::time::{Days, Minute, Window};
use serde::Deserialize;

use super::{ConfigError, Kind};

pub(super) const KEYS: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("timezone", Kind::Str),
    ("open", Kind::StrList),
    ("holidays", Kind::Str),
    ("in_hours", Kind::Str),
    ("after_hours", Kind::Str),
];

/// One validated `[[office_hours]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficeHours {
    pub name: String,
    /// An IANA zone name, e.g. "Asia/Jakarta" (read from the system's zoneinfo).
    pub timezone: String,
    /// When the office is open (local time); `fri 22:00-02:00` runs past midnight.
    pub open: Vec<Window>,
    /// `date,name` lines: closed all day.
    pub holidays: Option<PathBuf>,
    pub in_hours: String,
    pub after_hours: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOfficeHours {
    name: String,
    timezone: String,
    #[serde(default)]
    open: Vec<String>,
    holidays: Option<String>,
    in_hours: String,
    after_hours: String,
}

/// Names are what `hours:NAME` targets say: lowercase letters, digits and `-`.
pub(super) fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `mon-fri 08:00-17:00`, `sat 08:00-12:00`, `daily 00:00-24:00`.
pub fn parse_window(text: &str) -> Option<Window> {
    let (days, times) = text.trim().split_once(' ')?;
    let (from, to) = times.trim().split_once('-')?;
    let window = Window {
        days: Days::parse(days.trim())?,
        from: Minute::parse(from.trim())?,
        to: Minute::parse(to.trim())?,
    };
    (window.from != window.to).then_some(window)
}

pub(super) fn validate(raw: Vec<RawOfficeHours>) -> Result<Vec<OfficeHours>, ConfigError> {
    let mut out: Vec<OfficeHours> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let at = |k: &str| format!("office_hours[{i}].{k}");
        if !name_ok(&r.name) {
            return Err(ConfigError::at(
                &at("name"),
                format!(
                    "is {:?}; use lowercase letters, digits and -, e.g. \"kantor\"",
                    r.name
                ),
            ));
        }
        if out.iter().any(|o| o.name == r.name) {
            return Err(ConfigError::at(
                &at("name"),
                format!(
                    "is {:?}, which another [[office_hours]] already has",
                    r.name
                ),
            ));
        }
        let tz_ok = !r.timezone.is_empty()
            && r.timezone.len() <= 64
            && !r.timezone.contains("..")
            && !r.timezone.starts_with('/')
            && r.timezone
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'));
        if !tz_ok {
            return Err(ConfigError::at(
                &at("timezone"),
                format!("is {:?}; use a zone name such as \"Asia/Jakarta\", \"Asia/Makassar\" or \"Asia/Jayapura\"", r.timezone),
            ));
        }
        let mut open = Vec::new();
        for (j, w) in r.open.iter().enumerate() {
            open.push(parse_window(w).ok_or_else(|| {
                ConfigError::at(
                    &format!("office_hours[{i}].open[{j}]"),
                    format!("is {w:?}; write days and hours, e.g. \"mon-fri 08:00-17:00\" or \"sat 08:00-12:00\""),
                )
            })?);
        }
        let holidays = match r.holidays {
            None => None,
            Some(h) if h.starts_with('/') => Some(PathBuf::from(h)),
            Some(h) => {
                return Err(ConfigError::at(
                    &at("holidays"),
                    format!(
                        "is {h:?}; give an absolute path, e.g. \"/etc/kentongan/holidays.csv\""
                    ),
                ))
            }
        };
        for (key, t) in [("in_hours", &r.in_hours), ("after_hours", &r.after_hours)] {
            if !super::ivr::target_shape_ok(t) || *t == format!("hours:{}", r.name) {
                return Err(ConfigError::at(
                    &at(key),
                    format!("is {t:?}; use a number (\"700\"), a mailbox (\"vm:200\") or other office hours (\"hours:NAME\")"),
                ));
            }
        }
        out.push(OfficeHours {
            name: r.name,
            timezone: r.timezone,
            open,
            holidays,
            in_hours: r.in_hours,
            after_hours: r.after_hours,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn hours(extra: &str) -> Result<Vec<super::OfficeHours>, String> {
        Config::from_toml(&format!(
            "[sip]\ndomain = \"pbx.local\"\n[voicemail]\n{extra}"
        ))
        .map(|c| c.office_hours)
        .map_err(|e| e.message)
    }

    const ISSUE: &str = r#"
[[office_hours]]
name = "kantor"
timezone = "Asia/Jakarta"
open = ["mon-fri 08:00-17:00", "sat 08:00-12:00"]
holidays = "/etc/kentongan/holidays.csv"
in_hours = "700"
after_hours = "vm:200"
"#;

    #[test]
    fn the_issue_example_parses_and_ivrs_may_name_it() {
        let h = hours(ISSUE).unwrap();
        assert_eq!(h[0].open.len(), 2);
        assert_eq!(h[0].open[1].to_string(), "sat 08:00-12:00");
        let with_ivr = format!(
            "{ISSUE}[[ivr]]\nnumber = \"710\"\ngreeting = \"Halo\"\noptions = {{ \"1\" = \"hours:kantor\" }}\n"
        );
        assert!(hours(&with_ivr).is_ok());
        let err = hours(&with_ivr.replace("hours:kantor", "hours:toko")).unwrap_err();
        assert!(err.contains("no [[office_hours]] has that name"), "{err}");
    }

    #[test]
    fn mistakes_name_the_key() {
        for (from, to, expect) in [
            (
                "\"kantor\"",
                "\"Kantor\"",
                "`office_hours[0].name` is \"Kantor\"",
            ),
            (
                "mon-fri 08:00-17:00",
                "mon-fri 8-17",
                "`office_hours[0].open[0]` is",
            ),
            (
                "Asia/Jakarta",
                "../etc/passwd",
                "`office_hours[0].timezone`",
            ),
            (
                "\"/etc/kentongan/holidays.csv\"",
                "\"holidays.csv\"",
                "`office_hours[0].holidays`",
            ),
            (
                "\"vm:200\"",
                "\"voicemail\"",
                "`office_hours[0].after_hours`",
            ),
            ("\"700\"", "\"hours:kantor\"", "`office_hours[0].in_hours`"),
        ] {
            let err = hours(&ISSUE.replacen(from, to, 1)).unwrap_err();
            assert!(err.contains(expect), "{to}: {err}");
        }
    }
}
