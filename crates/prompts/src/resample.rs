//! Offline sample-rate conversion between any two rates (espeak-ng speaks at 22 050 Hz; the
//! PBX plays 8 000 and 16 000 Hz; recordings come at anything).
//!
//! kentongan-media's `Resampler` is a streaming filter for the integer ratios of live calls
//! (8/16/48 kHz); 22 050 → 8 000 is 160/441, so prompts, rendered once per build, use a direct
//! windowed-sinc evaluated at each output instant instead. The output instant is kept as an
//! exact fraction (`n · from / to`), which takes one of `to / gcd(from, to)` values, so the
//! filter is a table of that many phases and the result depends on the input only: builds
//! are reproducible.

use std::f64::consts::PI;

use crate::wav::Pcm;

/// Zero crossings of the sinc kept on each side: ~60 dB stop band with a Blackman window.
const ZERO_CROSSINGS: f64 = 16.0;
/// Pass band as a fraction of the lower rate: 3.6 kHz survives 16 → 8 kHz.
const CUTOFF: f64 = 0.45;

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        (PI * x).sin() / (PI * x)
    }
}

fn blackman(u: f64) -> f64 {
    if u.abs() >= 1.0 {
        0.0
    } else {
        0.42 + 0.5 * (PI * u).cos() + 0.08 * (2.0 * PI * u).cos()
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Converts `input` to `to_hz`, low-pass filtered below the lower rate's Nyquist.
pub fn resample(input: &Pcm, to_hz: u32) -> Pcm {
    let (from, to) = (u64::from(input.rate_hz), u64::from(to_hz));
    if from == to || from == 0 || to == 0 || input.samples.is_empty() {
        return Pcm {
            rate_hz: to_hz,
            samples: input.samples.clone(),
        };
    }
    // Cutoff in cycles per input sample, and the window's half-width in input samples.
    let fc = CUTOFF * from.min(to) as f64 / from as f64;
    let half = ZERO_CROSSINGS / (2.0 * fc);
    let reach = half.ceil() as i64;
    let taps = (2 * reach + 2) as usize;
    // Output instants fall on `to / g` distinct fractions of an input period: one normalised
    // filter phase each, computed once.
    let g = gcd(from, to);
    let phases = (to / g) as usize;
    let mut bank = vec![0.0f64; phases * taps];
    for (p, row) in bank.chunks_exact_mut(taps).enumerate() {
        let frac = (p as u64 * g) as f64 / to as f64;
        for (j, w) in row.iter_mut().enumerate() {
            let x = (j as i64 - reach) as f64 - frac;
            *w = 2.0 * fc * sinc(2.0 * fc * x) * blackman(x / half);
        }
        // Normalising by the tap sum keeps the DC gain exactly 1 at every phase.
        let norm: f64 = row.iter().sum();
        if norm.abs() > 1e-12 {
            row.iter_mut().for_each(|w| *w /= norm);
        }
    }
    let len = input.samples.len() as u64;
    let out_len = len * to / from;
    let mut out = Vec::with_capacity(out_len as usize);
    for n in 0..out_len {
        let num = n * from;
        let centre = (num / to) as i64;
        let row = &bank[((num % to) / g) as usize * taps..][..taps];
        let mut acc = 0.0f64;
        for (j, w) in row.iter().enumerate() {
            let k = centre - reach + j as i64;
            if k >= 0 && (k as u64) < len {
                acc += w * f64::from(input.samples[k as usize]);
            }
        }
        out.push(acc.round().clamp(-32768.0, 32767.0) as i16);
    }
    Pcm {
        rate_hz: to_hz,
        samples: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f64, ms: u32) -> Pcm {
        let n = rate * ms / 1000;
        Pcm {
            rate_hz: rate,
            samples: (0..n)
                .map(|i| (10_000.0 * (2.0 * PI * hz * f64::from(i) / f64::from(rate)).sin()) as i16)
                .collect(),
        }
    }

    /// RMS of the middle half, away from the edges' ramp.
    fn mid_rms(p: &Pcm) -> f64 {
        let q = p.samples.len() / 4;
        let mid = Pcm {
            rate_hz: p.rate_hz,
            samples: p.samples[q..3 * q].to_vec(),
        };
        mid.rms() * 32768.0
    }

    #[test]
    fn pass_band_tone_keeps_its_level_and_length() {
        for to in [8000, 16000] {
            let src = tone(22050, 1000.0, 500);
            let out = resample(&src, to);
            assert_eq!(out.rate_hz, to);
            assert_eq!(out.samples.len() as u32, to / 2);
            let (a, b) = (mid_rms(&src), mid_rms(&out));
            assert!((a - b).abs() / a < 0.02, "{to}: {a} → {b}");
        }
    }

    #[test]
    fn above_nyquist_is_removed() {
        // 6 kHz would alias to 2 kHz at 8 kHz; the filter must take it out.
        let out = resample(&tone(22050, 6000.0, 500), 8000);
        let level = mid_rms(&out);
        assert!(level < 10_000.0 * 0.707 * 0.01, "6 kHz leaked: rms {level}");
    }

    #[test]
    fn same_input_same_output() {
        let src = tone(22050, 440.0, 300);
        assert_eq!(resample(&src, 16000), resample(&src, 16000));
        assert_eq!(resample(&src, 22050).samples, src.samples);
    }
}
