//! Finding prompts in a built set.

use std::path::{Path, PathBuf};

use crate::{Catalogue, Language, PromptError, PromptId};

/// A playback rate of the prompt set: one directory each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rate {
    /// 8 kHz, for G.711.
    Hz8000,
    /// 16 kHz, for G.722 and Opus (the engine resamples to 48 kHz itself).
    Hz16000,
}

impl Rate {
    /// Both rates a build writes.
    pub const ALL: [Rate; 2] = [Rate::Hz8000, Rate::Hz16000];

    /// Samples per second.
    pub fn hz(self) -> u32 {
        match self {
            Rate::Hz8000 => 8000,
            Rate::Hz16000 => 16000,
        }
    }

    /// The directory name: `8000` or `16000`.
    pub fn dir_name(self) -> &'static str {
        match self {
            Rate::Hz8000 => "8000",
            Rate::Hz16000 => "16000",
        }
    }
}

/// `<dir>/<lang>/<rate>/<id>.wav`.
pub(crate) fn prompt_path(dir: &Path, language: Language, id: &str, rate: Rate) -> PathBuf {
    dir.join(language.code())
        .join(rate.dir_name())
        .join(format!("{id}.wav"))
}

/// `<dir>/custom/<lang>/<id>.wav`.
pub(crate) fn custom_path(dir: &Path, language: Language, id: &str) -> PathBuf {
    dir.join("custom")
        .join(language.code())
        .join(format!("{id}.wav"))
}

/// A built prompt set for one language (the sounds directory, usually
/// `/var/lib/kentongan/sounds`).
#[derive(Clone, Debug)]
pub struct PromptSet {
    dir: PathBuf,
    language: Language,
}

impl PromptSet {
    /// Opens the set of `language` under `dir`; fails with the command to run when none has
    /// been built.
    pub fn open(dir: &Path, language: Language) -> Result<PromptSet, PromptError> {
        let built = Rate::ALL
            .iter()
            .all(|r| dir.join(language.code()).join(r.dir_name()).is_dir());
        if !built {
            return Err(PromptError::NoPromptSet {
                dir: dir.to_path_buf(),
                language,
            });
        }
        Ok(PromptSet {
            dir: dir.to_path_buf(),
            language,
        })
    }

    /// The language of the set.
    pub fn language(&self) -> Language {
        self.language
    }

    /// The WAV file of clip `id` at `rate`, or an error naming the id and the fix.
    pub fn path(&self, id: &PromptId, rate: Rate) -> Result<PathBuf, PromptError> {
        let path = prompt_path(&self.dir, self.language, id.as_str(), rate);
        if path.is_file() {
            Ok(path)
        } else {
            Err(PromptError::MissingPrompt {
                id: id.to_string(),
                language: self.language,
                custom: custom_path(&self.dir, self.language, id.as_str()),
                path,
            })
        }
    }

    /// The bytes of clip `id` at `rate` (a mono 16-bit PCM WAV).
    pub fn load(&self, id: &PromptId, rate: Rate) -> Result<Vec<u8>, PromptError> {
        let path = self.path(id, rate)?;
        std::fs::read(&path).map_err(|e| PromptError::io("read", &path, e))
    }

    /// Clips of `catalogue` this set lacks at either rate, for a check at daemon start.
    pub fn missing(&self, catalogue: &Catalogue) -> Vec<PromptId> {
        catalogue
            .clips(self.language)
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| Rate::ALL.iter().any(|&r| self.path(id, r).is_err()))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = PromptSet::open(dir.path(), Language::Id).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("run `kentongan-pbx prompts build --language id`"),
            "{err}"
        );
        for r in Rate::ALL {
            std::fs::create_dir_all(dir.path().join("en").join(r.dir_name())).unwrap();
        }
        let set = PromptSet::open(dir.path(), Language::En).unwrap();
        let id = PromptId::new("conf-full").unwrap();
        let err = set.path(&id, Rate::Hz8000).unwrap_err().to_string();
        assert!(
            err.starts_with("prompt `conf-full` is missing from "),
            "{err}"
        );
        assert!(err.contains("en/8000/conf-full.wav"), "{err}");
        assert!(err.contains("custom/en/conf-full.wav"), "{err}");
    }
}
