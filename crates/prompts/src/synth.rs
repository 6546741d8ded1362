//! Text-to-speech behind a small trait, and its real implementation over Debian's
//! `espeak-ng`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::wav::{self, Pcm};
use crate::{Language, PromptError};

/// Turns one text into mono 16-bit audio at the synthesiser's own rate. For reproducible
/// builds an implementation must be deterministic: the same text gives the same samples.
pub trait Synth {
    /// Speaks `text` in `language`.
    fn speak(&self, language: Language, text: &str) -> Result<Pcm, PromptError>;
}

/// espeak-ng run as a child process: `espeak-ng -v <voice> -s <wpm> -z --stdout`, text on
/// stdin (so no text is ever taken for an option). Formant synthesis: deterministic, no
/// network, no model files beyond the Debian package.
#[derive(Clone, Debug)]
pub struct EspeakNg {
    /// The program to run; `espeak-ng` on `PATH` by default.
    pub program: PathBuf,
    /// Speaking rate in words per minute for Indonesian.
    pub id_wpm: u32,
    /// Speaking rate in words per minute for English.
    pub en_wpm: u32,
}

impl Default for EspeakNg {
    fn default() -> Self {
        // Slightly below espeak's 175 wpm default: prompts are heard over 8 kHz phone lines.
        EspeakNg {
            program: PathBuf::from("espeak-ng"),
            id_wpm: 150,
            en_wpm: 155,
        }
    }
}

impl EspeakNg {
    fn voice(language: Language) -> &'static str {
        match language {
            Language::Id => "id",
            Language::En => "en",
        }
    }
}

impl Synth for EspeakNg {
    fn speak(&self, language: Language, text: &str) -> Result<Pcm, PromptError> {
        let wpm = match language {
            Language::Id => self.id_wpm,
            Language::En => self.en_wpm,
        };
        let mut child = Command::new(&self.program)
            // -z: no sentence-final pause, so building blocks join without gaps.
            .args([
                "-v",
                Self::voice(language),
                "-s",
                &wpm.to_string(),
                "-z",
                "--stdout",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => PromptError::SynthMissing {
                    program: self.program.clone(),
                },
                _ => PromptError::io("run", &self.program, e),
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A few hundred bytes fit the pipe, so writing before reading cannot block.
            stdin
                .write_all(text.as_bytes())
                .map_err(|e| PromptError::io("write text to", &self.program, e))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| PromptError::io("wait for", &self.program, e))?;
        if !out.status.success() {
            return Err(PromptError::SynthFailed {
                program: self.program.clone(),
                status: out.status.to_string(),
                text: text.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let pcm = wav::parse("espeak-ng's output", &out.stdout)?;
        if pcm.samples.is_empty() {
            return Err(PromptError::SynthFailed {
                program: self.program.clone(),
                status: out.status.to_string(),
                text: text.to_string(),
                stderr: "it produced no audio".to_string(),
            });
        }
        Ok(pcm)
    }
}
