//! The crate's one error type.

use std::path::PathBuf;

use crate::say::SayError;
use crate::Language;

/// Everything that can go wrong parsing the catalogue, rendering or finding prompts; each
/// message says what is wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The catalogue is not valid TOML of the expected shape (includes unknown keys).
    #[error("the prompt catalogue is malformed: {message}")]
    CatalogueSyntax {
        /// The TOML parser's message, with the line.
        message: String,
    },
    /// A prompt lacks one language.
    #[error("prompt `{id}` has no `{language}` text: add `{language} = \"...\"` under [{id}] in the catalogue")]
    MissingLanguage {
        /// The prompt id.
        id: String,
        /// The missing language.
        language: Language,
    },
    /// An id that cannot be a file name.
    #[error("`{id}` is not a valid prompt id: use lowercase letters, digits and `-` (at most 64), e.g. `conf-full`")]
    BadId {
        /// The id as written.
        id: String,
    },
    /// A misused `{number}` slot.
    #[error("prompt `{id}`: {why}")]
    BadSlot {
        /// The prompt id.
        id: String,
        /// The rule broken.
        why: String,
    },
    /// Service prompts or building blocks absent from the catalogue.
    #[error("the prompt catalogue lacks {}: add them to crates/prompts/catalogue.toml", missing.join(", "))]
    Incomplete {
        /// The missing ids.
        missing: Vec<String>,
    },
    /// A prompt id the catalogue does not hold.
    #[error("no prompt `{id}` in the catalogue")]
    UnknownPrompt {
        /// The id asked for.
        id: String,
    },
    /// A number handed to a prompt without a `{number}` slot.
    #[error("prompt `{id}` has no `{{number}}` slot: play the number after it instead")]
    NoNumberSlot {
        /// The prompt id.
        id: String,
    },
    /// A value that cannot be read aloud.
    #[error(transparent)]
    Say(#[from] SayError),
    /// espeak-ng is not installed.
    #[error("`{program}` was not found: install the Debian package `espeak-ng` (apt-get install espeak-ng)")]
    SynthMissing {
        /// The program tried.
        program: PathBuf,
    },
    /// espeak-ng ran but failed.
    #[error("`{program}` failed ({status}) on {text:?}: {stderr}")]
    SynthFailed {
        /// The program run.
        program: PathBuf,
        /// Its exit status.
        status: String,
        /// The text it was asked to speak.
        text: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A WAV file or stream this crate cannot read.
    #[error("{what} is not a WAV file this PBX can play: {why}; convert it with `sox IN -r 16000 -c 1 -b 16 OUT.wav`")]
    BadWav {
        /// The file (or "espeak-ng's output").
        what: String,
        /// What is wrong with it.
        why: String,
    },
    /// A file-system operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("write", "read", "create directory").
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No prompt set has been built for this language.
    #[error("no {language} prompt set in {}: run `kentongan-pbx prompts build --language {language}`", dir.display())]
    NoPromptSet {
        /// The sounds directory.
        dir: PathBuf,
        /// The language asked for.
        language: Language,
    },
    /// A prompt missing from a built set.
    #[error("prompt `{id}` is missing from {}: run `kentongan-pbx prompts build --language {language}` (or put a recording at {})", path.display(), custom.display())]
    MissingPrompt {
        /// The prompt id.
        id: String,
        /// The language of the set.
        language: Language,
        /// Where it was expected.
        path: PathBuf,
        /// Where a recording would replace it.
        custom: PathBuf,
    },
}

impl PromptError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        PromptError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
