//! Music on hold: what a held caller hears, as one looping 8 kHz clip for the media engine.
//!
//! The operator's WAV files in `[music_on_hold] directory` play in turn (by file name, a
//! second of silence between them). Without any, a tune the PBX makes itself plays: a short
//! melody on a five-note *slendro*-like scale with a metallophone-style decay, generated here
//! rather than shipped as a recording, so there is no licence to track and nothing to
//! download. A file that cannot be used is skipped with a warning that says why; the PBX never
//! fails to start over music.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use kentongan_media::wav::WavClip;
use kentongan_media::{Clip, SampleRate};
use tracing::warn;

const RATE: u32 = 8000;
/// Longer than this in total and the rest of the files are left out: the whole set is held in
/// memory (16 bits at 8 kHz: 10 minutes are about 9.6 MB).
const MAX_SECONDS: usize = 600;
/// Between two files.
const GAP_SECONDS: usize = 1;

/// The built-in tune's scale (Hz): five steps of about 240 cents from D4, near the slendro
/// tuning of a Javanese gamelan. Tests listen for these.
pub const TUNE_NOTES: [f64; 5] = [293.7, 337.4, 387.5, 445.1, 511.3];
/// The melody, as indexes into [`TUNE_NOTES`]; each note lasts [`NOTE_MS`].
const MELODY: [usize; 16] = [0, 2, 3, 4, 3, 2, 1, 0, 1, 2, 4, 3, 2, 1, 2, 0];
const NOTE_MS: u32 = 375;

/// The music, loaded on first use and again after the directory changes: another
/// `[music_on_hold] directory`, or a file added or deleted there (the directory's mtime,
/// which the web admin's rename and delete move), so an uploaded file plays at the next hold.
#[derive(Debug)]
pub struct MusicOnHold {
    directory: PathBuf,
    clip: Option<Clip>,
    /// The directory's mtime when `clip` was loaded (`None`: it did not exist).
    stamp: Option<SystemTime>,
}

impl MusicOnHold {
    pub fn new(directory: &Path) -> MusicOnHold {
        MusicOnHold {
            directory: directory.to_path_buf(),
            clip: None,
            stamp: None,
        }
    }

    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The clip to loop for a held caller (cheap to clone: samples are shared).
    pub fn clip(&mut self) -> Clip {
        let dir = &self.directory;
        // One stat per hold: cheap next to the hold's own INVITE.
        let stamp = std::fs::metadata(dir).and_then(|m| m.modified()).ok();
        if stamp != self.stamp {
            self.clip = None;
            self.stamp = stamp;
        }
        self.clip
            .get_or_insert_with(|| load(dir).unwrap_or_else(builtin_tune))
            .clone()
    }
}

/// The operator's files in `dir`, in turn; `None` when there is none to play.
pub fn load(dir: &Path) -> Option<Clip> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            warn!(directory = %dir.display(), error = %e, "music on hold: the directory cannot be read; playing the built-in tune (check [music_on_hold] directory and its permissions)");
            return None;
        }
    };
    files.sort();
    let mut samples: Vec<i16> = Vec::new();
    for path in files {
        // Hidden files: a web upload still being written (`.NAME.tmp`), editors' leftovers.
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("wav") => {}
            Some("opus" | "ogg" | "mp3") => {
                warn!(file = %path.display(), "music on hold: only WAV files are played; convert it with `sox in.ogg -r 8000 -c 1 -b 16 out.wav`");
                continue;
            }
            _ => continue,
        }
        let clip = match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| WavClip::parse(&b).map_err(|e| e.to_string()))
        {
            Ok(wav) => Clip::from_wav(&wav, SampleRate::Hz8000),
            Err(e) => {
                warn!(file = %path.display(), error = %e, "music on hold: file skipped");
                continue;
            }
        };
        if samples.len() + clip.samples().len() > MAX_SECONDS * RATE as usize {
            warn!(file = %path.display(), "music on hold: more than {MAX_SECONDS} s of music; this file and the rest are left out");
            break;
        }
        if !samples.is_empty() {
            samples.resize(samples.len() + GAP_SECONDS * RATE as usize, 0);
        }
        samples.extend_from_slice(clip.samples());
    }
    (!samples.is_empty()).then(|| Clip::from_samples(SampleRate::Hz8000, samples))
}

/// The tune played when the operator gave no music: [`MELODY`] on [`TUNE_NOTES`], each note
/// struck and decaying like a metallophone bar (a fundamental and a softer octave).
pub fn builtin_tune() -> Clip {
    let per_note = (RATE * NOTE_MS / 1000) as usize;
    let mut samples = Vec::with_capacity(per_note * MELODY.len());
    for &n in &MELODY {
        let f = TUNE_NOTES[n];
        for i in 0..per_note {
            let t = i as f64 / f64::from(RATE);
            // A 5 ms attack keeps the strike from clicking.
            let attack = (t / 0.005).min(1.0);
            let env = attack * (-t / 0.22).exp();
            let w = 2.0 * std::f64::consts::PI * f * t;
            let v = env * (w.sin() + 0.3 * (2.0 * w).sin());
            samples.push((v * 7000.0) as i16);
        }
    }
    Clip::from_samples(SampleRate::Hz8000, samples)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kentongan_media::goertzel::{goertzel, to_db};

    #[test]
    fn the_builtin_tune_plays_each_note_of_its_scale() {
        let clip = builtin_tune();
        let s = clip.samples();
        assert_eq!(s.len(), 16 * 3000);
        // The first note (index 0 of the melody) is D, the second (index 2) is the third step.
        let first = &s[..3000];
        assert!(to_db(goertzel(first, 8000, TUNE_NOTES[0])) > -25.0);
        assert!(to_db(goertzel(first, 8000, TUNE_NOTES[2])) < -40.0);
        let second = &s[3000..6000];
        assert!(to_db(goertzel(second, 8000, TUNE_NOTES[2])) > -25.0);
        for note in TUNE_NOTES {
            let loudest = s
                .chunks(3000)
                .map(|c| to_db(goertzel(c, 8000, note)))
                .fold(f64::MIN, f64::max);
            assert!(loudest > -25.0, "{note} Hz never played");
        }
    }

    struct Scratch(PathBuf);
    impl Scratch {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn scratch(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("kentongan-moh-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    #[test]
    fn operator_files_play_in_turn_and_bad_ones_are_skipped() {
        let dir = scratch("files");
        let tone = |hz: f64, secs: usize| -> Vec<i16> {
            (0..secs * 8000)
                .map(|i| {
                    (6000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin()) as i16
                })
                .collect()
        };
        let write = |name: &str, samples: &[i16], rate: SampleRate| {
            let f = std::fs::File::create(dir.path().join(name)).unwrap();
            let mut w = kentongan_media::wav::WavWriter::new(f, rate, 1).unwrap();
            w.write_samples(samples).unwrap();
            w.finish().unwrap();
        };
        write("b.wav", &tone(600.0, 1), SampleRate::Hz8000);
        write("a.wav", &tone(900.0, 1), SampleRate::Hz8000);
        std::fs::write(dir.path().join("c.wav"), b"RIFF-not-really").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"not music").unwrap();
        let clip = load(dir.path()).unwrap();
        let s = clip.samples();
        assert_eq!(s.len(), 3 * 8000, "two files and the gap between them");
        assert!(
            to_db(goertzel(&s[..8000], 8000, 900.0)) > -25.0,
            "a.wav first"
        );
        assert!(
            to_db(goertzel(&s[16000..], 8000, 600.0)) > -25.0,
            "then b.wav"
        );
        let empty = scratch("empty");
        assert!(load(empty.path()).is_none());
        assert!(load(&empty.path().join("missing")).is_none());
        let mut moh = MusicOnHold::new(&empty.path().join("missing"));
        assert_eq!(moh.clip().samples().len(), builtin_tune().samples().len());
    }

    #[test]
    fn a_file_added_or_deleted_is_heard_at_the_next_hold() {
        let dir = scratch("reload");
        let mut moh = MusicOnHold::new(dir.path());
        assert_eq!(
            moh.clip().samples(),
            builtin_tune().samples(),
            "no files yet"
        );
        let mut wav = Vec::new();
        {
            let mut w = kentongan_media::wav::WavWriter::new(
                std::io::Cursor::new(&mut wav),
                SampleRate::Hz8000,
                1,
            )
            .unwrap();
            let tone: Vec<i16> = (0..8000)
                .map(|i| {
                    (6000.0 * (2.0 * std::f64::consts::PI * 750.0 * f64::from(i) / 8000.0).sin())
                        as i16
                })
                .collect();
            w.write_samples(&tone).unwrap();
            w.finish().unwrap();
        }
        crate::media::moh_files::add(dir.path(), "upload.wav", &wav).unwrap();
        let s = moh.clip().samples().to_vec();
        assert_eq!(s.len(), 8000, "the uploaded file, not the tune");
        assert!(to_db(goertzel(&s, 8000, 750.0)) > -25.0);
        assert!(crate::media::moh_files::delete(dir.path(), "upload.wav").unwrap());
        assert_eq!(
            moh.clip().samples(),
            builtin_tune().samples(),
            "deleted: the tune again"
        );
    }
}
