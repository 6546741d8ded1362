//! kentongan-tones: what did a phone hear? Prints, per window of a recording, the Goertzel
//! power at the frequencies asked for, as JSON on stdout; end-to-end tests parse it. With
//! `--generate` it writes a tone WAV instead (test prompts, reference signals).
//!
//!     kentongan-tones --freq 425 --freq 1000 --window-ms 100 heard.wav
//!     kentongan-tones --raw pcma --rate 8000 --freq 425 heard.alaw
//!     kentongan-tones --generate ring.wav --tone ringback --duration-ms 5000 --rate 16000

use std::fs;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use kentongan_media::g711::Law;
use kentongan_media::goertzel::{dominant_tone, goertzel, mean_square, to_db};
use kentongan_media::{SampleRate, ToneGenerator, ToneSegment, ToneSpec, WavClip, WavWriter};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Tone powers per window of a WAV or raw G.711 file, as JSON"
)]
struct Cli {
    /// Input file (WAV; or raw G.711 with --raw). Omitted with --generate.
    input: Option<PathBuf>,
    /// Frequencies to measure (Hz), or with --generate the tone's one or two frequencies.
    #[arg(long = "freq")]
    freqs: Vec<f64>,
    /// Window length for the analysis, in milliseconds.
    #[arg(long, default_value_t = 100)]
    window_ms: u32,
    /// The input is headerless G.711 of this law.
    #[arg(long, value_enum)]
    raw: Option<RawLaw>,
    /// Sample rate of raw input, or of the generated WAV.
    #[arg(long, default_value_t = 8000)]
    rate: u32,
    /// Only report a dominant tone holding this power or more (dB, full-scale sine = -3).
    #[arg(long, default_value_t = -50.0)]
    min_db: f64,
    /// Write a tone WAV to this path instead of analysing.
    #[arg(long, value_name = "OUT")]
    generate: Option<PathBuf>,
    /// Preset tone to generate (default: a sine/dual tone at --freq).
    #[arg(long, value_enum)]
    tone: Option<Preset>,
    /// Length of the generated WAV.
    #[arg(long, default_value_t = 1000)]
    duration_ms: u32,
    /// Level of each generated frequency, dB relative to full scale.
    #[arg(long, default_value_t = -13.0)]
    level_db: f64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RawLaw {
    Pcmu,
    Pcma,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Preset {
    Beep,
    Dial,
    Ringback,
    Busy,
    Join,
    Leave,
}

fn rate_of(hz: u32) -> Result<SampleRate> {
    SampleRate::from_hz(hz).with_context(|| format!("--rate {hz} is not 8000, 16000 or 48000"))
}

fn generate(cli: &Cli, out: &PathBuf) -> Result<()> {
    let rate = rate_of(cli.rate)?;
    let spec = match cli.tone {
        Some(Preset::Beep) => ToneSpec::beep(),
        Some(Preset::Dial) => ToneSpec::dial(),
        Some(Preset::Ringback) => ToneSpec::ringback(),
        Some(Preset::Busy) => ToneSpec::busy(),
        Some(Preset::Join) => ToneSpec::join(),
        Some(Preset::Leave) => ToneSpec::leave(),
        None => {
            let seg = match cli.freqs[..] {
                [f] => ToneSegment::sine(f, cli.duration_ms),
                [f1, f2] => ToneSegment::dual(f1, f2, cli.duration_ms),
                _ => bail!("--generate needs --tone or one or two --freq values"),
            };
            ToneSpec::new(vec![seg], false, cli.level_db)
        }
    };
    let spec = if cli.tone.is_some() {
        ToneSpec {
            level_db: cli.level_db,
            ..spec
        }
    } else {
        spec
    };
    let file = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = WavWriter::new(BufWriter::new(file), rate, 1)?;
    let mut g = ToneGenerator::new(spec, rate.hz());
    let total = (u64::from(cli.duration_ms) * u64::from(rate.hz()) / 1000) as usize;
    let mut frame = vec![0i16; rate.frame_samples()];
    let mut done = 0;
    while done < total {
        let n = frame.len().min(total - done);
        g.fill(&mut frame[..n]);
        w.write_samples(&frame[..n])?;
        done += n;
    }
    w.finish()?
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}",
        json!({ "wrote": out.display().to_string(), "rate": rate.hz(), "samples": total })
    );
    Ok(())
}

fn analyze(cli: &Cli, input: &PathBuf) -> Result<()> {
    if cli.freqs.is_empty() {
        bail!("give at least one --freq to measure");
    }
    if cli.window_ms == 0 {
        bail!("--window-ms must be at least 1");
    }
    let bytes = fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let (rate, samples) = match cli.raw {
        Some(law) => {
            let law = match law {
                RawLaw::Pcmu => Law::MuLaw,
                RawLaw::Pcma => Law::ALaw,
            };
            let rate = rate_of(cli.rate)?;
            (
                rate,
                bytes.iter().map(|&c| law.decode(c)).collect::<Vec<_>>(),
            )
        }
        None => {
            let clip =
                WavClip::parse(&bytes).with_context(|| format!("reading {}", input.display()))?;
            (clip.rate, clip.to_mono())
        }
    };
    let win = (u64::from(cli.window_ms) * u64::from(rate.hz()) / 1000).max(1) as usize;
    let min_power = 10f64.powf(cli.min_db / 10.0);
    let windows: Vec<_> = samples
        .chunks(win)
        .enumerate()
        .map(|(i, w)| {
            let powers: Vec<f64> = cli
                .freqs
                .iter()
                .map(|&f| round2(to_db(goertzel(w, rate.hz(), f))))
                .collect();
            json!({
                "start_ms": i as u64 * u64::from(cli.window_ms),
                "samples": w.len(),
                "total_db": round2(to_db(mean_square(w))),
                "powers_db": powers,
                "dominant": dominant_tone(w, rate.hz(), &cli.freqs, min_power),
            })
        })
        .collect();
    let out = json!({
        "file": input.display().to_string(),
        "rate": rate.hz(),
        "window_ms": cli.window_ms,
        "freqs": cli.freqs,
        "windows": windows,
    });
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    if let Err(e) = writeln!(lock, "{out}") {
        // A closed pipe (| head) is not a failure.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match (&cli.generate, &cli.input) {
        (Some(out), None) => generate(&cli, out),
        (None, Some(input)) => analyze(&cli, input),
        (Some(_), Some(_)) => Err(anyhow::anyhow!(
            "--generate writes a file; it takes no input file"
        )),
        (None, None) => Err(anyhow::anyhow!("no input file given")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            eprintln!(
                "hint: kentongan-tones --freq 425 FILE.wav  |  kentongan-tones --generate OUT.wav --freq 1000"
            );
            ExitCode::from(1)
        }
    }
}
