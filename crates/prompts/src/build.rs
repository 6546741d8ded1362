//! Rendering the catalogue into a prompt set on disk.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::resample::resample;
use crate::set::{custom_path, prompt_path, Rate};
use crate::synth::Synth;
use crate::wav::{self, Pcm};
use crate::{Catalogue, Language, PromptError, PromptId};

/// What a build did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildReport {
    /// Clips rendered by the synthesiser.
    pub generated: usize,
    /// Clips taken from `custom/<lang>/<id>.wav` instead.
    pub custom: Vec<PromptId>,
    /// Files written (new or changed bytes).
    pub written: usize,
    /// Files left alone because they already held the same bytes.
    pub unchanged: usize,
}

impl fmt::Display for BuildReport {
    /// The one summary line the CLI prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} clips spoken, {} from recordings; {} files written, {} unchanged",
            self.generated,
            self.custom.len(),
            self.written,
            self.unchanged
        )
    }
}

/// Silence threshold for trimming: about -50 dBFS.
const TRIM_LEVEL: i16 = 100;
/// Silence kept at each end after trimming, in ms, so clips do not start with a click.
const TRIM_KEEP_MS: u32 = 30;

/// Renders every clip of `catalogue` in `language` into
/// `out_dir/<lang>/{8000,16000}/<id>.wav` (mono, 16-bit PCM). A recording at
/// `out_dir/custom/<lang>/<id>.wav` (any rate, mono or stereo 16-bit) replaces the generated
/// clip of that id. Each file is written to a temporary name and renamed, so a reader never
/// sees half a file; unchanged files are not rewritten. Same catalogue, recordings and synth
/// give byte-identical files.
pub fn build(
    catalogue: &Catalogue,
    language: Language,
    out_dir: &Path,
    synth: &dyn Synth,
) -> Result<BuildReport, PromptError> {
    let mut report = BuildReport::default();
    for rate in Rate::ALL {
        let dir = out_dir.join(language.code()).join(rate.dir_name());
        fs::create_dir_all(&dir).map_err(|e| PromptError::io("create directory", &dir, e))?;
    }
    for (id, text) in catalogue.clips(language) {
        let custom = custom_path(out_dir, language, id.as_str());
        let source = if custom.is_file() {
            let bytes = fs::read(&custom).map_err(|e| PromptError::io("read", &custom, e))?;
            report.custom.push(id.clone());
            wav::parse(&custom.display().to_string(), &bytes)?
        } else {
            report.generated += 1;
            trim(&synth.speak(language, &text)?)
        };
        for rate in Rate::ALL {
            let pcm = resample(&source, rate.hz());
            let path = prompt_path(out_dir, language, id.as_str(), rate);
            if write_if_changed(&path, &wav::encode(&pcm))? {
                report.written += 1;
            } else {
                report.unchanged += 1;
            }
        }
    }
    Ok(report)
}

/// Speaks one text that is not in the catalogue (an IVR menu's greeting) into `path`, a
/// mono 16-bit WAV at 8 kHz, trimmed like catalogue clips. The text it was made from is kept
/// beside it (`<path>.txt`): when that matches, nothing is spoken again, so the greeting is
/// synthesised once per change of the text, not per start. Returns true when it spoke.
pub fn speak_cached(
    text: &str,
    language: Language,
    path: &Path,
    synth: &dyn Synth,
) -> Result<bool, PromptError> {
    let stamp = path.with_extension("txt");
    let made_from = format!("{}\n{text}", language.code());
    if path.is_file() && fs::read_to_string(&stamp).is_ok_and(|t| t == made_from) {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| PromptError::io("create directory", dir, e))?;
    }
    let pcm = resample(&trim(&synth.speak(language, text)?), Rate::Hz8000.hz());
    write_if_changed(path, &wav::encode(&pcm))?;
    // The stamp goes last: a crash in between only speaks the text again next time.
    write_if_changed(&stamp, made_from.as_bytes())?;
    Ok(true)
}

/// Drops leading and trailing near-silence, keeping a short margin.
fn trim(pcm: &Pcm) -> Pcm {
    let loud = |s: &i16| s.unsigned_abs() > TRIM_LEVEL.unsigned_abs();
    let keep = (pcm.rate_hz * TRIM_KEEP_MS / 1000) as usize;
    let (Some(first), Some(last)) = (
        pcm.samples.iter().position(loud),
        pcm.samples.iter().rposition(loud),
    ) else {
        return pcm.clone();
    };
    let start = first.saturating_sub(keep);
    let end = (last + 1 + keep).min(pcm.samples.len());
    Pcm {
        rate_hz: pcm.rate_hz,
        samples: pcm.samples[start..end].to_vec(),
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename; returns false (and
/// writes nothing) when the file already holds exactly these bytes.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<bool, PromptError> {
    if fs::read(path).map(|old| old == bytes).unwrap_or(false) {
        return Ok(false);
    }
    let tmp = temp_name(path);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        // Best effort: a stale temp file is harmless (dot-named, overwritten next build).
        let _ = fs::remove_file(&tmp);
        return Err(PromptError::io("write", path, e));
    }
    Ok(true)
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn trim_keeps_a_margin_and_leaves_silence_alone() {
        let mut samples = vec![0i16; 8000];
        samples[4000..4100].fill(5000);
        let pcm = Pcm {
            rate_hz: 8000,
            samples,
        };
        let t = trim(&pcm);
        assert_eq!(t.samples.len(), 100 + 2 * 240);
        assert_eq!(t.samples[240], 5000);
        let quiet = Pcm {
            rate_hz: 8000,
            samples: vec![0; 80],
        };
        assert_eq!(trim(&quiet), quiet);
    }

    #[test]
    fn atomic_write_skips_identical_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        assert!(write_if_changed(&path, b"one").unwrap());
        assert!(!write_if_changed(&path, b"one").unwrap());
        assert!(write_if_changed(&path, b"two").unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!temp_name(&path).exists());
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn report_summary_line() {
        let report = BuildReport {
            generated: 3,
            custom: vec![PromptId::new("conf-full").unwrap()],
            written: 6,
            unchanged: 2,
        };
        assert_eq!(
            report.to_string(),
            "3 clips spoken, 1 from recordings; 6 files written, 2 unchanged"
        );
    }
}
