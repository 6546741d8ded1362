//! Sample-rate conversion between 8, 16 and 48 kHz mono: a polyphase windowed-sinc FIR
//! (Kaiser window), linear phase, so every stream gets the same fixed delay.
//!
//! The ratios the PBX needs are all integer (×2, ×3, ×6 and their inverses), so one filter
//! designed at the common rate, split into `L` phases, covers every pair without fractional
//! interpolation. The cutoff sits at 46 % of the lower rate with ~60 dB stop-band
//! attenuation: a 3.5 kHz tone survives 16 → 8 kHz, a 6 kHz tone does not alias into
//! 48 → 8 kHz.

use crate::codec::SampleRate;

/// Width of the filter in periods of the lower rate: 48 gives a ~600 Hz transition at 8 kHz.
const SPAN: usize = 48;
/// Kaiser β for ≈ 60 dB stop-band attenuation.
const KAISER_BETA: f64 = 5.65;
/// Cutoff as a fraction of the lower rate (its Nyquist is 0.5).
const CUTOFF: f64 = 0.46;

/// Errors from [`Resampler::process`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResampleError {
    /// The output slice cannot hold the converted block.
    #[error("resampler output holds {got} samples, this block needs {want}: size it with Resampler::output_len")]
    OutputTooSmall {
        /// Capacity passed.
        got: usize,
        /// Samples the block produces.
        want: usize,
    },
}

/// Streaming converter from one rate to another; keep one per stream.
#[derive(Clone, Debug)]
pub struct Resampler {
    from: SampleRate,
    to: SampleRate,
    up: usize,
    down: usize,
    /// Taps per phase.
    taps: usize,
    /// `up` phases of `taps` coefficients, each phase reversed-free: `bank[p * taps + k]`
    /// weights the input `k` samples before the newest one.
    bank: Vec<f32>,
    /// The last `taps - 1` inputs, oldest first.
    hist: Vec<f32>,
    /// Position of the next output in the upsampled domain (`n · down`).
    next_pos: u64,
    /// Absolute index of the first input of the next block.
    consumed: u64,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Zeroth-order modified Bessel function of the first kind (series), for the Kaiser window.
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..50 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-12 {
            break;
        }
    }
    sum
}

impl Resampler {
    /// A converter from `from` to `to` (equal rates pass samples through).
    pub fn new(from: SampleRate, to: SampleRate) -> Resampler {
        let (f, t) = (from.hz() as usize, to.hz() as usize);
        let g = gcd(f, t);
        let (up, down) = (t / g, f / g);
        if up == down {
            return Resampler {
                from,
                to,
                up: 1,
                down: 1,
                taps: 1,
                bank: vec![1.0],
                hist: Vec::new(),
                next_pos: 0,
                consumed: 0,
            };
        }
        let total = SPAN * up.max(down);
        let high = (f * up) as f64;
        let fc = CUTOFF * f.min(t) as f64 / high; // cycles per high-rate sample
        let mid = (total - 1) as f64 / 2.0;
        let i0b = bessel_i0(KAISER_BETA);
        let mut h: Vec<f64> = (0..total)
            .map(|j| {
                let x = j as f64 - mid;
                let sinc = if x == 0.0 {
                    2.0 * fc
                } else {
                    (2.0 * std::f64::consts::PI * fc * x).sin() / (std::f64::consts::PI * x)
                };
                let r = x / mid;
                let w = bessel_i0(KAISER_BETA * (1.0 - r * r).max(0.0).sqrt()) / i0b;
                sinc * w
            })
            .collect();
        // Unity gain at DC after zero-stuffing by `up`.
        let sum: f64 = h.iter().sum();
        for c in &mut h {
            *c *= up as f64 / sum;
        }
        let taps = total / up;
        let mut bank = vec![0f32; up * taps];
        for p in 0..up {
            for k in 0..taps {
                bank[p * taps + k] = h[p + k * up] as f32;
            }
        }
        Resampler {
            from,
            to,
            up,
            down,
            taps,
            bank,
            hist: vec![0.0; taps - 1],
            next_pos: 0,
            consumed: 0,
        }
    }

    /// Input rate.
    pub fn from_rate(&self) -> SampleRate {
        self.from
    }

    /// Output rate.
    pub fn to_rate(&self) -> SampleRate {
        self.to
    }

    /// The filter's fixed delay, in output samples (rounded down).
    pub fn delay(&self) -> usize {
        let total = self.taps * self.up;
        (total - 1) / (2 * self.down)
    }

    /// Outputs the next block of `input_len` samples produces (a 20 ms frame in gives exactly
    /// a 20 ms frame out).
    pub fn output_len(&self, input_len: usize) -> usize {
        let end = (self.consumed + input_len as u64) * self.up as u64; // exclusive, up-domain
        if end <= self.next_pos {
            return 0;
        }
        ((end - self.next_pos).div_ceil(self.down as u64)) as usize
    }

    /// Converts one block; returns the samples written to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut [i16]) -> Result<usize, ResampleError> {
        let want = self.output_len(input.len());
        if out.len() < want {
            return Err(ResampleError::OutputTooSmall {
                got: out.len(),
                want,
            });
        }
        if self.up == self.down {
            out[..input.len()].copy_from_slice(input);
            return Ok(input.len());
        }
        let h = self.hist.len(); // taps - 1
        let at = |j: usize| -> f32 {
            if j < h {
                self.hist[j]
            } else {
                f32::from(input[j - h])
            }
        };
        let up = self.up as u64;
        for o in out[..want].iter_mut() {
            let i = self.next_pos / up; // newest input used, absolute
            let p = (self.next_pos % up) as usize;
            let newest = (i - self.consumed) as usize + h; // index into hist ++ input
            let coeffs = &self.bank[p * self.taps..(p + 1) * self.taps];
            let mut acc = 0f32;
            for (k, &c) in coeffs.iter().enumerate() {
                acc += c * at(newest - k);
            }
            *o = acc.round().clamp(-32768.0, 32767.0) as i16;
            self.next_pos += self.down as u64;
        }
        // Keep the newest `taps - 1` samples of hist ++ input.
        let n = input.len();
        if n >= h {
            for (d, &s) in self.hist.iter_mut().zip(&input[n - h..]) {
                *d = f32::from(s);
            }
        } else {
            self.hist.copy_within(n.., 0);
            for (d, &s) in self.hist[h - n..].iter_mut().zip(input) {
                *d = f32::from(s);
            }
        }
        self.consumed += n as u64;
        Ok(want)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::goertzel::tests::sine;
    use crate::goertzel::{goertzel, to_db};

    fn run(from: SampleRate, to: SampleRate, input: &[i16]) -> Vec<i16> {
        let mut r = Resampler::new(from, to);
        let frame = from.frame_samples();
        let mut out = Vec::new();
        let mut buf = vec![0i16; to.frame_samples()];
        for chunk in input.chunks(frame) {
            let n = r.process(chunk, &mut buf).unwrap();
            assert_eq!(n, to.frame_samples() * chunk.len() / frame);
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    #[test]
    fn keeps_3500_hz_from_16_to_8_khz() {
        let input = sine(16000, 3500.0, 10000.0, 16000);
        let out = run(SampleRate::Hz16000, SampleRate::Hz8000, &input);
        assert_eq!(out.len(), 8000);
        let before = to_db(goertzel(&input[1600..], 16000, 3500.0));
        let after = to_db(goertzel(&out[800..], 8000, 3500.0));
        assert!((before - after).abs() < 3.0, "{before} → {after}");
    }

    #[test]
    fn attenuates_6_khz_from_48_to_8_khz() {
        let input = sine(48000, 6000.0, 10000.0, 48000);
        let out = run(SampleRate::Hz48000, SampleRate::Hz8000, &input);
        let before = to_db(goertzel(&input, 48000, 6000.0));
        // 6 kHz would alias to 2 kHz at 8 kHz.
        let alias = to_db(goertzel(&out[800..], 8000, 2000.0));
        assert!(before - alias > 30.0, "{before} → alias {alias}");
    }

    #[test]
    fn every_pair_passes_1_khz_with_the_stated_delay() {
        use SampleRate::*;
        for (from, to) in [
            (Hz8000, Hz16000),
            (Hz8000, Hz48000),
            (Hz16000, Hz48000),
            (Hz16000, Hz8000),
            (Hz48000, Hz8000),
            (Hz48000, Hz16000),
            (Hz16000, Hz16000),
        ] {
            let input = sine(from.hz(), 1000.0, 10000.0, from.hz() as usize);
            let out = run(from, to, &input);
            assert_eq!(out.len(), to.hz() as usize, "{from:?}→{to:?}");
            let p = to_db(goertzel(&out[to.frame_samples() * 5..], to.hz(), 1000.0));
            let want = to_db(goertzel(&input, from.hz(), 1000.0));
            assert!((p - want).abs() < 0.5, "{from:?}→{to:?}: {p} vs {want}");
            // The delay is fixed: an impulse comes out at delay() (the filter's centre).
            let mut r = Resampler::new(from, to);
            let mut imp = vec![0i16; from.frame_samples()];
            imp[0] = 20000;
            let mut o = vec![0i16; to.frame_samples()];
            r.process(&imp, &mut o).unwrap();
            let peak = o
                .iter()
                .enumerate()
                .max_by_key(|(_, &v)| v)
                .map(|(i, _)| i)
                .unwrap();
            let d = r.delay();
            assert!(
                peak.abs_diff(d) <= 1,
                "{from:?}→{to:?}: peak {peak} delay {d}"
            );
        }
    }

    #[test]
    fn odd_block_sizes_match_frame_blocks() {
        let input = sine(8000, 700.0, 9000.0, 1600);
        let whole = run(SampleRate::Hz8000, SampleRate::Hz48000, &input);
        let mut r = Resampler::new(SampleRate::Hz8000, SampleRate::Hz48000);
        let mut got = Vec::new();
        let mut buf = vec![0i16; 48 * 7];
        for chunk in input.chunks(7) {
            let n = r.process(chunk, &mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, whole);
        let mut small = [0i16; 10];
        assert_eq!(
            r.process(&input[..160], &mut small),
            Err(ResampleError::OutputTooSmall { got: 10, want: 960 })
        );
    }
}
