//! Builds against the real espeak-ng (Debian package `espeak-ng`, installed by scripts/test).

#![allow(clippy::unwrap_used)]

use std::f64::consts::PI;
use std::fs;
use std::path::{Path, PathBuf};

use kentongan_prompts::{
    build, say, wav, Catalogue, EspeakNg, Language, Pcm, PromptError, PromptId, PromptSet, Rate,
    Synth,
};

const SMALL: &str = r#"
[conf-full]
id = "Konferensi ini sudah penuh."
en = "This conference is full."

[vm-unavailable]
id = "Pemilik ekstensi {number} sedang tidak dapat menerima panggilan."
en = "The person at extension {number} is not available."

[n-7]
id = "tujuh"
en = "seven"
"#;

fn read(path: &Path) -> Pcm {
    wav::parse(&path.display().to_string(), &fs::read(path).unwrap()).unwrap()
}

/// Speech, not silence or a click: at least -30 dBFS RMS (espeak-ng speech measures -24 dBFS and up), and a duration that fits the text.
fn assert_speech(pcm: &Pcm, min_ms: u64, max_ms: u64, what: &str) {
    let rms = pcm.rms();
    assert!(rms > 0.03, "{what}: RMS {rms:.4} is too quiet");
    let ms = pcm.duration_ms();
    assert!((min_ms..=max_ms).contains(&ms), "{what}: {ms} ms");
}

fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((
                    path.strip_prefix(dir).unwrap().to_path_buf(),
                    fs::read(&path).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn espeak_speaks_both_languages() {
    let synth = EspeakNg::default();
    for lang in Language::ALL {
        let pcm = synth.speak(lang, "Konferensi ini sudah penuh.").unwrap();
        assert_eq!(pcm.rate_hz, 22050);
        assert_speech(&pcm, 800, 4000, lang.code());
    }
}

#[test]
fn build_writes_both_rates_reproducibly() {
    let cat = Catalogue::parse(SMALL).unwrap();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let synth = EspeakNg::default();
    for lang in Language::ALL {
        let report = build(&cat, lang, a.path(), &synth).unwrap();
        assert_eq!(report.generated, 4, "conf-full, n-7, vm-unavailable.1/.2");
        assert_eq!(report.written, 8);
        assert!(report.custom.is_empty());
        build(&cat, lang, b.path(), &synth).unwrap();

        let set = PromptSet::open(a.path(), lang).unwrap();
        assert!(set.missing(&cat).is_empty());
        for rate in Rate::ALL {
            let full = read(
                &set.path(&PromptId::new("conf-full").unwrap(), rate)
                    .unwrap(),
            );
            assert_eq!(full.rate_hz, rate.hz());
            assert_speech(&full, 800, 4000, &format!("conf-full {lang} {rate:?}"));
            let seven = read(&set.path(&PromptId::new("n-7").unwrap(), rate).unwrap());
            assert_speech(&seven, 200, 1500, &format!("n-7 {lang} {rate:?}"));
            let bytes = set.load(&PromptId::new("n-7").unwrap(), rate).unwrap();
            assert_eq!(&bytes[0..4], b"RIFF");
            assert_eq!(u16::from_le_bytes([bytes[22], bytes[23]]), 1, "mono");
            assert_eq!(u16::from_le_bytes([bytes[34], bytes[35]]), 16, "16-bit");
        }
        // The spliced prompt's halves exist on their own.
        let seq = cat
            .with_number("vm-unavailable", &say::digits("201").unwrap())
            .unwrap();
        for id in [&seq[0], &seq[seq.len() - 1]] {
            read(&set.path(id, Rate::Hz8000).unwrap());
        }
    }
    // Same inputs, same bytes: two builds in separate directories agree file by file,
    // and rebuilding in place changes nothing.
    let (fa, fb) = (all_files(a.path()), all_files(b.path()));
    assert_eq!(fa.len(), 16);
    assert_eq!(fa, fb);
    let again = build(&cat, Language::Id, a.path(), &synth).unwrap();
    assert_eq!((again.written, again.unchanged), (0, 8));
}

#[test]
fn custom_recordings_win_file_by_file() {
    let cat = Catalogue::parse(SMALL).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let custom = dir.path().join("custom").join("en");
    fs::create_dir_all(&custom).unwrap();
    // A recorded "conf-full": a 1 kHz tone at 44.1 kHz, half a second.
    let tone = Pcm {
        rate_hz: 44100,
        samples: (0..22050)
            .map(|i| (8000.0 * (2.0 * PI * 1000.0 * f64::from(i) / 44100.0).sin()) as i16)
            .collect(),
    };
    fs::write(custom.join("conf-full.wav"), wav::encode(&tone)).unwrap();
    let report = build(&cat, Language::En, dir.path(), &EspeakNg::default()).unwrap();
    assert_eq!(report.custom, vec![PromptId::new("conf-full").unwrap()]);
    assert_eq!(report.generated, 3);

    let set = PromptSet::open(dir.path(), Language::En).unwrap();
    for rate in Rate::ALL {
        let got = read(
            &set.path(&PromptId::new("conf-full").unwrap(), rate)
                .unwrap(),
        );
        assert_eq!(got.duration_ms(), 500, "{rate:?}");
        // The tone's level (8000/√2 ≈ 5657) survives: it is the recording, not speech.
        let level = got.rms() * 32768.0;
        assert!((level - 5657.0).abs() < 200.0, "{rate:?}: rms {level}");
        let spoken = read(&set.path(&PromptId::new("n-7").unwrap(), rate).unwrap());
        assert_speech(&spoken, 200, 1500, "n-7 next to a recording");
    }
    // The Indonesian set has no recordings and is all speech.
    let report = build(&cat, Language::Id, dir.path(), &EspeakNg::default()).unwrap();
    assert!(report.custom.is_empty());

    // A recording the PBX cannot play is an error naming the file.
    fs::write(custom.join("n-7.wav"), b"not a wav").unwrap();
    let err = build(&cat, Language::En, dir.path(), &EspeakNg::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("custom/en/n-7.wav is not a WAV file"),
        "{err}"
    );
}

/// A third-party reader (sox) agrees on the format, length and level of a built file.
#[test]
fn sox_reads_the_built_files() {
    let cat = Catalogue::parse(SMALL).unwrap();
    let dir = tempfile::tempdir().unwrap();
    build(&cat, Language::Id, dir.path(), &EspeakNg::default()).unwrap();
    let set = PromptSet::open(dir.path(), Language::Id).unwrap();
    for rate in Rate::ALL {
        let path = set
            .path(&PromptId::new("conf-full").unwrap(), rate)
            .unwrap();
        let ours = read(&path);
        let out = std::process::Command::new("sox")
            .arg(&path)
            .args(["-n", "stat"])
            .output()
            .expect("sox runs (Debian package sox)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stat = String::from_utf8_lossy(&out.stderr);
        let field = |name: &str| -> f64 {
            let line = stat.lines().find(|l| l.starts_with(name)).unwrap();
            line.rsplit(' ').next().unwrap().trim().parse().unwrap()
        };
        let secs = ours.samples.len() as f64 / f64::from(rate.hz());
        assert!((field("Length (seconds)") - secs).abs() < 1e-3, "{stat}");
        assert!(
            (field("RMS     amplitude") - ours.rms()).abs() < 1e-3,
            "{stat}"
        );
        let info = std::process::Command::new("sox")
            .arg("--i")
            .arg(&path)
            .output()
            .unwrap();
        let info = String::from_utf8_lossy(&info.stdout);
        assert!(
            info.contains(&format!("Sample Rate    : {}", rate.hz())),
            "{info}"
        );
        assert!(info.contains("Channels       : 1"), "{info}");
        assert!(info.contains("Precision      : 16-bit"), "{info}");
    }
}

#[test]
fn missing_espeak_names_the_debian_package() {
    let synth = EspeakNg {
        program: PathBuf::from("/nonexistent/espeak-ng"),
        ..EspeakNg::default()
    };
    let err = synth.speak(Language::Id, "halo").unwrap_err();
    assert!(matches!(err, PromptError::SynthMissing { .. }));
    assert!(
        err.to_string()
            .contains("install the Debian package `espeak-ng`"),
        "{err}"
    );
}

/// The whole shipped catalogue renders in both languages, every clip audible.
#[test]
fn builtin_catalogue_builds_in_both_languages() {
    let cat = Catalogue::builtin().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for lang in Language::ALL {
        let report = build(&cat, lang, dir.path(), &EspeakNg::default()).unwrap();
        assert_eq!(report.generated, cat.clips(lang).len());
        let set = PromptSet::open(dir.path(), lang).unwrap();
        assert!(set.missing(&cat).is_empty());
        for (id, text) in cat.clips(lang) {
            let pcm = read(&set.path(&id, Rate::Hz8000).unwrap());
            // About 40-800 ms a word for these voices and rates, and never silent.
            let words = text.split_whitespace().count() as u64;
            assert_speech(
                &pcm,
                150,
                250 + 800 * words,
                &format!("{id} ({lang}: {text:?})"),
            );
        }
    }
}
