//! `[recording]`: which extensions have every call recorded, where the stereo WAV files go
//! and how long they are kept. No table: nothing is recorded.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Kind};

pub(super) const KEYS: &[(&str, Kind)] = &[
    ("extensions", Kind::StrList),
    ("directory", Kind::Str),
    ("keep_days", Kind::Int),
];

pub const DEFAULT_RECORDING_DIR: &str = "/var/lib/kentongan/recordings";
const DEFAULT_KEEP_DAYS: i64 = 90;

/// The validated `[recording]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// Every call to or from these extensions is recorded.
    pub extensions: Vec<String>,
    pub directory: PathBuf,
    /// Recordings older than this are deleted (at start and daily).
    pub keep_days: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecording {
    #[serde(default)]
    extensions: Vec<String>,
    directory: Option<String>,
    keep_days: Option<i64>,
}

pub(super) fn validate(raw: RawRecording) -> Result<Recording, ConfigError> {
    for (i, e) in raw.extensions.iter().enumerate() {
        if crate::store::Extension::parse(e).is_none() {
            return Err(ConfigError::at(
                &format!("recording.extensions[{i}]"),
                format!("is {e:?}; list extension numbers, e.g. [\"201\"]"),
            ));
        }
    }
    let directory = match raw.directory {
        None => PathBuf::from(DEFAULT_RECORDING_DIR),
        Some(d) if d.starts_with('/') && !d.contains("..") => PathBuf::from(d),
        Some(d) => {
            return Err(ConfigError::at(
                "recording.directory",
                format!("is {d:?}; give an absolute path such as \"{DEFAULT_RECORDING_DIR}\""),
            ))
        }
    };
    let keep_days = match raw.keep_days.unwrap_or(DEFAULT_KEEP_DAYS) {
        n @ 1..=3650 => n as u32,
        n => {
            return Err(ConfigError::at(
                "recording.keep_days",
                format!(
                "is {n}; use a whole number of days from 1 to 3650 (default {DEFAULT_KEEP_DAYS})"
            ),
            ))
        }
    };
    Ok(Recording {
        extensions: raw.extensions,
        directory,
        keep_days,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn rec(t: &str) -> Result<Option<super::Recording>, String> {
        Config::from_toml(&format!("[sip]\ndomain = \"pbx.local\"\n[recording]\n{t}"))
            .map(|c| c.recording)
            .map_err(|e| e.message)
    }

    #[test]
    fn the_issue_example_parses_and_mistakes_name_the_key() {
        let r = rec("extensions = [\"201\"]\ndirectory = \"/var/lib/kentongan/recordings\"\nkeep_days = 90\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.extensions, ["201"]);
        assert_eq!(r.keep_days, 90);
        for (t, expect) in [
            ("keep_days = 0", "`recording.keep_days` is 0"),
            ("directory = \"rec\"", "`recording.directory` is \"rec\""),
            ("extensions = [\"2 01\"]", "`recording.extensions[0]`"),
        ] {
            assert!(rec(t).unwrap_err().contains(expect), "{t}");
        }
    }
}
