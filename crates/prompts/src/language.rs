//! The two languages the prompts are spoken in.

use std::fmt;
use std::str::FromStr;

/// A prompt language; its code is the directory name under the sounds directory and the
/// value of the config's `language` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Bahasa Indonesia (`id`).
    Id,
    /// English (`en`).
    En,
}

impl Language {
    /// Both languages, in the order a full build renders them.
    pub const ALL: [Language; 2] = [Language::Id, Language::En];

    /// The ISO 639-1 code: `id` or `en`.
    pub fn code(self) -> &'static str {
        match self {
            Language::Id => "id",
            Language::En => "en",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A language code that is neither `id` nor `en`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown prompt language `{0}`: use `id` (Bahasa Indonesia) or `en` (English)")]
pub struct UnknownLanguage(pub String);

impl FromStr for Language {
    type Err = UnknownLanguage;

    fn from_str(s: &str) -> Result<Language, UnknownLanguage> {
        match s {
            "id" => Ok(Language::Id),
            "en" => Ok(Language::En),
            other => Err(UnknownLanguage(other.to_string())),
        }
    }
}
