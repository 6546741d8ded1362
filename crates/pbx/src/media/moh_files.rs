//! The operator's music on hold files as the web admin manages them: list, add, delete in
//! `[music_on_hold] directory`. A file is added only when the media crate's WAV reader takes
//! it as mono at 8, 16 or 48 kHz (what hold music can play without guessing), under a name
//! that cannot leave the directory, written to a temporary file and renamed so a hold never
//! reads half a file. [`super::moh::MusicOnHold`] notices the directory changed and reloads.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use kentongan_media::wav::WavClip;

/// One WAV file of the directory and whether hold music can play it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MohEntry {
    pub name: String,
    pub duration_ms: u64,
    pub rate_hz: u32,
    /// Empty: it plays; else why it is skipped.
    pub problem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MohError {
    #[error("use a name of 1 to 64 letters, digits, '.', '-' or '_' that ends in .wav, e.g. gamelan.wav")]
    Name,
    #[error("{0} exists already; delete it first or pick another name")]
    Exists(String),
    #[error("the file is not a WAV file hold music can read ({0}); convert it with `sox in.mp3 -r 8000 -c 1 -b 16 out.wav`")]
    NotWav(String),
    #[error(
        "the file is stereo; hold music takes mono: convert it with `sox in.wav -c 1 out.wav`"
    )]
    Stereo,
    #[error("could not write {path} ({source}); check that [music_on_hold] directory is writable by the PBX (the default /usr/share/kentongan/moh is read-only: set a directory under /var/lib/kentongan)")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// A file name that stays inside the directory: no separators, no leading dot, `.wav`.
pub fn valid_name(name: &str) -> Result<&str, MohError> {
    let ok = (5..=64).contains(&name.len())
        && !name.starts_with('.')
        && name.to_ascii_lowercase().ends_with(".wav")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(name)
    } else {
        Err(MohError::Name)
    }
}

/// The `.wav` files of `dir` in play order (by name); an absent directory has none.
pub fn list(dir: &Path) -> std::io::Result<Vec<MohEntry>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out: Vec<MohEntry> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.') && n.to_ascii_lowercase().ends_with(".wav"))
        .map(|name| {
            let parsed = std::fs::read(dir.join(&name))
                .map_err(|e| e.to_string())
                .and_then(|b| WavClip::parse(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(w) => MohEntry {
                    name,
                    duration_ms: w.duration_ms(),
                    rate_hz: w.rate.hz(),
                    problem: String::new(),
                },
                Err(problem) => MohEntry {
                    name,
                    duration_ms: 0,
                    rate_hz: 0,
                    problem,
                },
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Checks `wav` and writes it as `dir/name` (tmp + fsync + rename).
pub fn add(dir: &Path, name: &str, wav: &[u8]) -> Result<PathBuf, MohError> {
    let name = valid_name(name)?;
    let clip = WavClip::parse(wav).map_err(|e| MohError::NotWav(e.to_string()))?;
    if clip.channels != 1 {
        return Err(MohError::Stereo);
    }
    let path = dir.join(name);
    if path.exists() {
        return Err(MohError::Exists(name.to_owned()));
    }
    let write_err = |source| MohError::Write {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(write_err)?;
    // A leading dot: hold music and the list skip it while it is being written.
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(wav)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(write_err(e));
    }
    Ok(path)
}

/// Deletes `dir/name`; false when there is no such file.
pub fn delete(dir: &Path, name: &str) -> Result<bool, MohError> {
    let name = valid_name(name)?;
    let path = dir.join(name);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(MohError::Write {
            path: path.display().to_string(),
            source,
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn wav(rate: u32, channels: u16, frames: usize) -> Vec<u8> {
        let data = (frames * usize::from(channels) * 2) as u32;
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&(36 + data).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&rate.to_le_bytes());
        b.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
        b.extend_from_slice(&(channels * 2).to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&data.to_le_bytes());
        b.resize(b.len() + data as usize, 0);
        b
    }

    #[test]
    fn only_safe_names_and_mono_wavs_at_known_rates_are_added() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("moh");
        for bad in ["../x.wav", "a/b.wav", ".hidden.wav", "x.mp3", "", "x y.wav"] {
            assert!(
                matches!(add(&d, bad, &wav(8000, 1, 8)), Err(MohError::Name)),
                "{bad}"
            );
        }
        assert!(matches!(
            add(&d, "s.wav", &wav(8000, 2, 8)),
            Err(MohError::Stereo)
        ));
        assert!(matches!(
            add(&d, "r.wav", &wav(44100, 1, 8)),
            Err(MohError::NotWav(_))
        ));
        assert!(matches!(
            add(&d, "t.wav", b"not a wav"),
            Err(MohError::NotWav(_))
        ));
        assert!(list(&d).unwrap().is_empty(), "nothing was written");
        add(&d, "b-16k.wav", &wav(16000, 1, 16000)).unwrap();
        add(&d, "a.wav", &wav(8000, 1, 4000)).unwrap();
        assert!(matches!(
            add(&d, "a.wav", &wav(8000, 1, 8)),
            Err(MohError::Exists(_))
        ));
        std::fs::write(d.join("broken.wav"), b"RIFF").unwrap();
        let l = list(&d).unwrap();
        let names: Vec<_> = l.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a.wav", "b-16k.wav", "broken.wav"]);
        assert_eq!((l[0].duration_ms, l[0].rate_hz), (500, 8000));
        assert_eq!((l[1].duration_ms, l[1].rate_hz), (1000, 16000));
        assert!(!l[2].problem.is_empty());
        assert!(delete(&d, "a.wav").unwrap());
        assert!(!delete(&d, "a.wav").unwrap());
        assert!(matches!(delete(&d, "../pbx.db"), Err(MohError::Name)));
    }
}
