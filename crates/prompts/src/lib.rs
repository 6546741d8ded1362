//! Kentongan's spoken prompts in Bahasa Indonesia and English: the text catalogue, reading
//! numbers/dates/times as clip sequences, rendering the set with espeak-ng, and finding
//! clips in a built set.
//!
//! **Owns**: the catalogue format and the shipped `catalogue.toml` ([`Catalogue`],
//! [`Catalogue::builtin`]); the [`say`] rules that turn a number, a digit string or a
//! [`CivilDateTime`] into [`PromptId`]s; [`build`], which renders every clip through a
//! [`Synth`] (the real one is [`EspeakNg`]) into `<dir>/<lang>/{8000,16000}/<id>.wav`, with
//! recordings in `<dir>/custom/<lang>/<id>.wav` winning file by file; and [`PromptSet`],
//! which maps an id and a [`Rate`] to its file.
//!
//! **Does not**: play audio, decode codecs or mix (that is the engine, over
//! kentongan-media), read a clock (dates are handed in), or touch the network. Only
//! [`build`] and [`PromptSet`] touch files, and only [`EspeakNg`] runs a program.
//!
//! **Principal types**: [`Catalogue`], [`Prompt`], [`PromptId`], [`Language`],
//! [`CivilDateTime`], [`Synth`], [`EspeakNg`], [`BuildReport`], [`PromptSet`], [`Rate`],
//! [`PromptError`].
//!
//! What the voicemail menu plays for "Pesan dari 201, diterima pada Rabu 2 Desember 2026
//! pukul 14.30":
//!
//! ```
//! use kentongan_prompts::{say, Catalogue, CivilDateTime, Language};
//!
//! let cat = Catalogue::builtin()?;
//! let when = CivilDateTime::new(2026, 12, 2, 14, 30)?;
//! let mut clips = cat.with_number("vm-message-from", &[])?;
//! clips.extend(say::digits("201")?);
//! clips.extend(cat.with_number("vm-received-at", &[])?);
//! clips.extend(say::date_time(Language::Id, &when));
//! let words: Vec<&str> = clips
//!     .iter()
//!     .filter_map(|id| cat.get(id.as_str()))
//!     .map(|p| p.text(Language::Id))
//!     .collect();
//! assert_eq!(
//!     words.join(" "),
//!     "Pesan dari dua nol satu diterima pada Rabu dua Desember dua ribu dua puluh enam \
//!      pukul empat belas tiga puluh"
//! );
//! // The daemon then plays each clip from the built set:
//! // let set = PromptSet::open(Path::new("/var/lib/kentongan/sounds"), Language::Id)?;
//! // for id in &clips { engine.queue(set.path(id, Rate::Hz8000)?) }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod build;
mod catalogue;
mod error;
mod language;
mod resample;
pub mod say;
mod set;
mod synth;
pub mod wav;

pub use build::{build, speak_cached, BuildReport};
pub use catalogue::{Catalogue, Prompt, PromptId, NUMBER_SLOT, SERVICE_PROMPTS};
pub use error::PromptError;
pub use language::{Language, UnknownLanguage};
pub use resample::resample;
pub use say::{CivilDateTime, SayError, Weekday};
pub use set::{PromptSet, Rate};
pub use synth::{EspeakNg, Synth};
pub use wav::Pcm;

impl AsRef<str> for PromptId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}
