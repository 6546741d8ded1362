//! Tone power at chosen frequencies (the Goertzel algorithm): cheaper than an FFT when only a
//! few bins matter, which is what tone checks in tests and DTMF-style detection need.

/// Power of the `freq` component of `samples` at `rate`, relative to full scale.
///
/// Normalised so a full-scale sine (amplitude 32767) at exactly `freq` gives ≈ 0.5, its mean
/// square; `10·log10` of it is dB relative to a full-scale square wave (dBov). The bin is not
/// rounded to an integer, so any frequency can be asked for; leakage from other tones falls
/// with the window length.
pub fn goertzel(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let n = samples.len();
    if n == 0 || rate == 0 {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) / 32768.0 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let mag2 = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    // |X|² = (A·N/2)² for a sine of amplitude A; A²/2 is its mean square.
    2.0 * mag2 / (n as f64 * n as f64)
}

/// Mean square of `samples` relative to full scale (1.0 = full-scale square wave).
pub fn mean_square(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples
        .iter()
        .map(|&s| {
            let x = f64::from(s) / 32768.0;
            x * x
        })
        .sum();
    sum / samples.len() as f64
}

/// Power to decibels, floored at -120 dB so silence prints as a number.
pub fn to_db(power: f64) -> f64 {
    if power <= 1e-12 {
        -120.0
    } else {
        10.0 * power.log10()
    }
}

/// Goertzel power of each of `freqs` over `samples`, in the order given.
pub fn detect_tones(samples: &[i16], rate: u32, freqs: &[f64]) -> Vec<f64> {
    freqs.iter().map(|&f| goertzel(samples, rate, f)).collect()
}

/// The frequency among `freqs` with the most power, if it reaches `min_power` and the asked
/// frequencies together hold at least half of the frame's power (so noise or speech does not
/// read as a tone, while each half of a dual tone still counts).
pub fn dominant_tone(samples: &[i16], rate: u32, freqs: &[f64], min_power: f64) -> Option<f64> {
    let total = mean_square(samples);
    let mut best: Option<(f64, f64)> = None;
    let mut sum = 0.0;
    for &f in freqs {
        let p = goertzel(samples, rate, f);
        sum += p;
        if best.map_or(true, |(_, bp)| p > bp) {
            best = Some((f, p));
        }
    }
    best.filter(|&(_, p)| p >= min_power && sum >= 0.5 * total)
        .map(|(f, _)| f)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sine(rate: u32, freq: f64, amp: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (amp * (2.0 * std::f64::consts::PI * freq * t).sin()).round() as i16
            })
            .collect()
    }

    #[test]
    fn full_scale_sine_is_half() {
        let s = sine(8000, 1000.0, 32767.0, 800);
        let p = goertzel(&s, 8000, 1000.0);
        assert!((p - 0.5).abs() < 0.01, "{p}");
        assert!((mean_square(&s) - 0.5).abs() < 0.01);
        assert!((to_db(p) + 3.01).abs() < 0.1);
    }

    #[test]
    fn off_frequency_is_far_below() {
        let s = sine(8000, 1000.0, 16000.0, 800);
        let on = goertzel(&s, 8000, 1000.0);
        let off = goertzel(&s, 8000, 1400.0);
        assert!(to_db(on) - to_db(off) > 40.0, "{on} {off}");
    }

    #[test]
    fn detect_and_dominant() {
        let a = sine(16000, 440.0, 8000.0, 1600);
        let b = sine(16000, 350.0, 8000.0, 1600);
        let mix: Vec<i16> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        let p = detect_tones(&mix, 16000, &[350.0, 440.0, 1000.0]);
        assert!(p[0] > 0.02 && p[1] > 0.02 && p[2] < 1e-5, "{p:?}");
        assert_eq!(dominant_tone(&a, 16000, &[350.0, 440.0], 1e-4), Some(440.0));
        assert_eq!(dominant_tone(&[0; 160], 8000, &[440.0], 1e-4), None);
        // Either half of a dual tone is dominant once both are asked for; alone it is not.
        assert!(dominant_tone(&mix, 16000, &[350.0, 440.0], 1e-4).is_some());
        assert_eq!(dominant_tone(&mix, 16000, &[440.0], 1e-4), None);
        assert_eq!(goertzel(&[], 8000, 440.0), 0.0);
        assert_eq!(to_db(0.0), -120.0);
    }
}
