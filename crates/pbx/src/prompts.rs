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
}

pub fn cue(cue: Cue) -> Sound {
    Sound::Tone(match cue {
        Cue::Join => ToneSpec::join(),
        Cue::Leave => ToneSpec::leave(),
        Cue::Beep => ToneSpec::beep(),
    })
}
