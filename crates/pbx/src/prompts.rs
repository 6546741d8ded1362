//! The sounds the PBX plays: prompts by id from the prompt set on disk, and tone cues.
//!
//! A prompt is `<[prompts] directory>/<language>/8000/<id>.wav`, read once and kept (clips
//! are shared, so a prompt played to a hundred callers is one copy in memory). A missing or
//! unreadable prompt is logged once with the fix, and a short two-tone cue is played in its
//! place, so a caller still hears that something was said.

use std::collections::HashMap;
use std::path::PathBuf;

use kentongan_engine::{clip_at_engine_rate, Sound};
use kentongan_media::{Clip, ToneSegment, ToneSpec, WavClip};
use tracing::warn;

use crate::apps::{Cue, Prompt};
use crate::config::Prompts as PromptConfig;
use crate::config::{Config, Ivr, IvrGreeting, Language};

pub struct PromptCache {
    dir: PathBuf,
    clips: HashMap<&'static str, Option<Clip>>,
}

impl PromptCache {
    pub fn new(config: &PromptConfig) -> PromptCache {
        PromptCache {
            dir: config.directory.join(config.language.code()).join("8000"),
            clips: HashMap::new(),
        }
    }

    /// The file a prompt is read from.
    pub fn path(&self, prompt: Prompt) -> PathBuf {
        self.dir.join(format!("{}.wav", prompt.0))
    }

    pub fn sound(&mut self, prompt: Prompt) -> Sound {
        let path = self.path(prompt);
        let clip = self.clips.entry(prompt.0).or_insert_with(|| {
            let loaded = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| WavClip::parse(&bytes).map_err(|e| e.to_string()));
            match loaded {
                Ok(wav) => Some(clip_at_engine_rate(&wav)),
                Err(e) => {
                    warn!(
                        prompt = prompt.0,
                        path = %path.display(),
                        error = %e,
                        "prompt missing; playing a tone instead (run `kentongan-pbx prompts build`)"
                    );
                    None
                }
            }
        });
        clip_or_cue(clip.as_ref())
    }
}

/// A clip, or in place of a missing one the two-tone cue.
pub fn clip_or_cue(clip: Option<&Clip>) -> Sound {
    match clip {
        Some(c) => Sound::Clip(c.clone()),
        None => Sound::Tone(ToneSpec::new(
            vec![
                ToneSegment::sine(660.0, 150),
                ToneSegment::pause(50),
                ToneSegment::sine(880.0, 150),
            ],
            false,
            -14.0,
        )),
    }
}

/// Where a menu's spoken greeting is cached: `<[prompts] directory>/ivr/<lang>/<number>.wav`.
pub fn ivr_greeting_path(config: &Config, ivr: &Ivr) -> Option<PathBuf> {
    match &ivr.greeting {
        IvrGreeting::Text { language, .. } => Some(
            config
                .prompts
                .directory
                .join("ivr")
                .join(language.code())
                .join(format!("{}.wav", ivr.number)),
        ),
        IvrGreeting::File(_) => None,
    }
}

/// Each `[[ivr]]` menu's greeting, ready to play (by index in `Config::ivrs`). A text is
/// spoken by espeak-ng the first time (and after it changes) into [`ivr_greeting_path`];
/// a `greeting_file` is read as it is. A greeting that cannot be made is logged with the fix
/// and heard as the two-tone cue, so the menu still works.
pub fn ivr_greetings(config: &Config) -> Vec<Option<Clip>> {
    let synth = kentongan_prompts::EspeakNg::default();
    config
        .ivrs
        .iter()
        .map(|ivr| {
            let path = match (&ivr.greeting, ivr_greeting_path(config, ivr)) {
                (IvrGreeting::Text { text, language }, Some(path)) => {
                    let lang = match language {
                        Language::Indonesian => kentongan_prompts::Language::Id,
                        Language::English => kentongan_prompts::Language::En,
                    };
                    if let Err(e) = kentongan_prompts::speak_cached(text, lang, &path, &synth) {
                        warn!(ivr = %ivr.number, error = %e, "IVR greeting not spoken; callers hear a tone (install espeak-ng, or set `greeting_file`)");
                        return None;
                    }
                    path
                }
                (IvrGreeting::File(p), _) => p.clone(),
                _ => return None,
            };
            let loaded = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| WavClip::parse(&bytes).map_err(|e| e.to_string()));
            match loaded {
                Ok(wav) => Some(clip_at_engine_rate(&wav)),
                Err(e) => {
                    warn!(ivr = %ivr.number, path = %path.display(), error = %e, "IVR greeting unreadable; callers hear a tone (give a 16-bit PCM WAV file)");
                    None
                }
            }
        })
        .collect()
}

pub fn cue(cue: Cue) -> Sound {
    Sound::Tone(match cue {
        Cue::Join => ToneSpec::join(),
        Cue::Leave => ToneSpec::leave(),
        Cue::Beep => ToneSpec::beep(),
    })
}
