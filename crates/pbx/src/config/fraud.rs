//! `[fraud]`: caps on what extensions can spend through the trunks, against toll fraud (a
//! stolen phone password used to call premium numbers abroad all night). Emergency calls are
//! never capped.

use serde::Deserialize;

use super::{ConfigError, Kind};

pub(super) const KEYS: &[(&str, Kind)] = &[
    ("max_outbound_calls", Kind::Int),
    ("max_outbound_calls_per_extension", Kind::Int),
    ("max_international_minutes_per_day", Kind::Int),
    ("max_international_minutes_per_day_per_extension", Kind::Int),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFraud {
    max_outbound_calls: Option<i64>,
    max_outbound_calls_per_extension: Option<i64>,
    max_international_minutes_per_day: Option<i64>,
    max_international_minutes_per_day_per_extension: Option<i64>,
}

/// The caps; `None` is no cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fraud {
    /// Concurrent calls out through trunks, all extensions together.
    pub max_outbound_calls: Option<u32>,
    /// Concurrent calls out through trunks by one extension.
    pub max_outbound_calls_per_extension: Option<u32>,
    /// Minutes of international calls per day (the appliance's local day), all together.
    pub max_international_minutes_per_day: Option<u32>,
    /// Minutes of international calls per day by one extension.
    pub max_international_minutes_per_day_per_extension: Option<u32>,
}

pub(super) fn validate(raw: Option<RawFraud>) -> Result<Fraud, ConfigError> {
    let Some(r) = raw else {
        return Ok(Fraud::default());
    };
    let cap = |key: &str, v: Option<i64>, max: i64, what: &str| match v {
        None => Ok(None),
        Some(n) if (1..=max).contains(&n) => Ok(Some(n as u32)),
        Some(n) => Err(ConfigError::at(
            &format!("fraud.{key}"),
            format!("is {n}; use 1 to {max} {what}, or leave it out for no cap"),
        )),
    };
    Ok(Fraud {
        max_outbound_calls: cap(
            "max_outbound_calls",
            r.max_outbound_calls,
            10_000,
            "simultaneous calls",
        )?,
        max_outbound_calls_per_extension: cap(
            "max_outbound_calls_per_extension",
            r.max_outbound_calls_per_extension,
            10_000,
            "simultaneous calls",
        )?,
        max_international_minutes_per_day: cap(
            "max_international_minutes_per_day",
            r.max_international_minutes_per_day,
            1_440_000,
            "minutes",
        )?,
        max_international_minutes_per_day_per_extension: cap(
            "max_international_minutes_per_day_per_extension",
            r.max_international_minutes_per_day_per_extension,
            1_440,
            "minutes",
        )?,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn caps_are_read_and_bad_ones_name_their_key() {
        let c = Config::from_toml(
            "[sip]\ndomain = \"pbx.local\"\n[fraud]\nmax_outbound_calls = 10\n\
             max_international_minutes_per_day_per_extension = 30\n",
        )
        .unwrap();
        assert_eq!(c.fraud.max_outbound_calls, Some(10));
        assert_eq!(
            c.fraud.max_international_minutes_per_day_per_extension,
            Some(30)
        );
        assert_eq!(c.fraud.max_outbound_calls_per_extension, None);
        let e = Config::from_toml(
            "[sip]\ndomain = \"pbx.local\"\n[fraud]\nmax_outbound_calls_per_extension = 0\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("fraud.max_outbound_calls_per_extension"), "{e}");
        assert!(e.contains("leave it out for no cap"), "{e}");
        let e = Config::from_toml("[sip]\ndomain = \"pbx.local\"\n[fraud]\nmax_calls = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_calls"), "{e}");
    }
}
