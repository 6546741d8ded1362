//! Tone generation: sines, dual tones and cadences (ringback, busy, beeps), stateful across
//! frames so a tone spanning many 20 ms ticks is one continuous waveform.
//!
//! Each oscillator keeps its phase for the life of the generator, so frame boundaries never
//! show in the waveform; every tone burst ramps in and out over 2 ms so cadence edges do not
//! click.

use std::f64::consts::TAU;

/// One step of a cadence: up to two frequencies (none = silence) for a duration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ToneSegment {
    /// Frequencies in Hz; `0.0` means the slot is unused. Both unused = a pause.
    pub freqs: [f64; 2],
    /// Length in milliseconds.
    pub duration_ms: u32,
}

impl ToneSegment {
    /// A single frequency for `duration_ms`.
    pub const fn sine(freq: f64, duration_ms: u32) -> ToneSegment {
        ToneSegment {
            freqs: [freq, 0.0],
            duration_ms,
        }
    }

    /// Two frequencies summed (DTMF-style) for `duration_ms`.
    pub const fn dual(f1: f64, f2: f64, duration_ms: u32) -> ToneSegment {
        ToneSegment {
            freqs: [f1, f2],
            duration_ms,
        }
    }

    /// Silence for `duration_ms`.
    pub const fn pause(duration_ms: u32) -> ToneSegment {
        ToneSegment {
            freqs: [0.0, 0.0],
            duration_ms,
        }
    }

    fn is_silent(&self) -> bool {
        self.freqs.iter().all(|&f| f <= 0.0)
    }
}

/// A tone: segments played in order, once or repeating, at a level.
#[derive(Clone, Debug, PartialEq)]
pub struct ToneSpec {
    /// The cadence.
    pub segments: Vec<ToneSegment>,
    /// Start again after the last segment.
    pub repeat: bool,
    /// Level of each frequency component in dB relative to full scale (e.g. -13.0).
    pub level_db: f64,
}

impl ToneSpec {
    /// A continuous or one-shot sequence.
    pub fn new(segments: Vec<ToneSegment>, repeat: bool, level_db: f64) -> ToneSpec {
        ToneSpec {
            segments,
            repeat,
            level_db,
        }
    }

    /// Short confirmation beep: 1 kHz for 200 ms, once.
    pub fn beep() -> ToneSpec {
        ToneSpec::new(vec![ToneSegment::sine(1000.0, 200)], false, -10.0)
    }

    /// Dial tone (Indonesia): 425 Hz continuous.
    pub fn dial() -> ToneSpec {
        ToneSpec::new(vec![ToneSegment::sine(425.0, 1000)], true, -13.0)
    }

    /// Ringback (Indonesia): 425 Hz, 1 s on, 4 s off.
    pub fn ringback() -> ToneSpec {
        ToneSpec::new(
            vec![ToneSegment::sine(425.0, 1000), ToneSegment::pause(4000)],
            true,
            -13.0,
        )
    }

    /// Busy (Indonesia): 425 Hz, 0.5 s on, 0.5 s off.
    pub fn busy() -> ToneSpec {
        ToneSpec::new(
            vec![ToneSegment::sine(425.0, 500), ToneSegment::pause(500)],
            true,
            -13.0,
        )
    }

    /// Conference join: a rising pair of beeps (600 Hz then 900 Hz, 100 ms each).
    pub fn join() -> ToneSpec {
        ToneSpec::new(
            vec![
                ToneSegment::sine(600.0, 100),
                ToneSegment::pause(30),
                ToneSegment::sine(900.0, 100),
            ],
            false,
            -13.0,
        )
    }

    /// Conference leave: the falling pair (900 Hz then 600 Hz).
    pub fn leave() -> ToneSpec {
        ToneSpec::new(
            vec![
                ToneSegment::sine(900.0, 100),
                ToneSegment::pause(30),
                ToneSegment::sine(600.0, 100),
            ],
            false,
            -13.0,
        )
    }
}

/// Plays a [`ToneSpec`] at a sample rate, frame after frame.
#[derive(Clone, Debug)]
pub struct ToneGenerator {
    spec: ToneSpec,
    rate: u32,
    amplitude: f64,
    seg: usize,
    pos: u64,
    seg_len: u64,
    phase: [f64; 2],
    ramp: u64,
    /// Whether the current segment fades in/out: only next to silence (or the very start and
    /// end), so a repeating continuous tone has no dips.
    fade_in: bool,
    fade_out: bool,
    finished: bool,
}

impl ToneGenerator {
    /// A generator for `spec` producing `rate` samples per second.
    pub fn new(spec: ToneSpec, rate: u32) -> ToneGenerator {
        let amplitude = 32767.0 * 10f64.powf(spec.level_db / 20.0);
        let finished = spec.segments.iter().all(|s| s.duration_ms == 0);
        let mut g = ToneGenerator {
            spec,
            rate,
            amplitude,
            seg: 0,
            pos: 0,
            seg_len: 0,
            phase: [0.0; 2],
            ramp: u64::from(rate / 500).max(1),
            fade_in: true,
            fade_out: true,
            finished,
        };
        g.enter(0, true);
        g
    }

    fn enter(&mut self, seg: usize, first: bool) {
        self.seg = seg;
        self.pos = 0;
        self.seg_len = self.len_of(seg);
        let n = self.spec.segments.len();
        let silent = |i: usize| self.spec.segments.get(i).map_or(true, |s| s.is_silent());
        self.fade_in = first || silent(if seg == 0 { n - 1 } else { seg - 1 });
        let next = if seg + 1 < n {
            Some(seg + 1)
        } else if self.spec.repeat {
            Some(0)
        } else {
            None
        };
        self.fade_out = next.map_or(true, silent);
    }

    fn len_of(&self, seg: usize) -> u64 {
        self.spec.segments.get(seg).map_or(0, |s| {
            u64::from(s.duration_ms) * u64::from(self.rate) / 1000
        })
    }

    /// True once a non-repeating tone has played to its end.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Fills `out` with the next samples; returns how many belong to the tone (the rest, if
    /// the tone ended inside this frame, are zero).
    pub fn fill(&mut self, out: &mut [i16]) -> usize {
        let mut written = 0;
        for s in out.iter_mut() {
            if self.finished {
                *s = 0;
                continue;
            }
            while self.pos >= self.seg_len {
                let mut next = self.seg + 1;
                if next >= self.spec.segments.len() {
                    if !self.spec.repeat {
                        self.finished = true;
                        break;
                    }
                    next = 0;
                }
                self.enter(next, false);
            }
            if self.finished {
                *s = 0;
                continue;
            }
            *s = self.sample();
            self.pos += 1;
            written += 1;
        }
        written
    }

    fn sample(&mut self) -> i16 {
        let seg = self.spec.segments[self.seg];
        let mut v = 0.0;
        for (phase, &f) in self.phase.iter_mut().zip(seg.freqs.iter()) {
            if f > 0.0 {
                v += phase.sin();
            }
            // Phases advance through pauses too, so each oscillator is one continuous sine.
            *phase = (*phase + TAU * f.max(0.0) / f64::from(self.rate)) % TAU;
        }
        if seg.is_silent() {
            return 0;
        }
        let from_end = self.seg_len - 1 - self.pos.min(self.seg_len - 1);
        let mut env = 1.0;
        if self.fade_in && self.pos < self.ramp {
            env = (self.pos as f64 + 0.5) / self.ramp as f64;
        }
        if self.fade_out && from_end < self.ramp {
            env = f64::min(env, (from_end as f64 + 0.5) / self.ramp as f64);
        }
        (v * self.amplitude * env).round().clamp(-32768.0, 32767.0) as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::{goertzel, mean_square, to_db};

    #[test]
    fn ringback_cadence_is_one_second_on_four_off() {
        let mut g = ToneGenerator::new(ToneSpec::ringback(), 8000);
        let mut frame = [0i16; 160];
        let mut on = Vec::new();
        for _ in 0..(2 * 250) {
            assert_eq!(g.fill(&mut frame), 160);
            on.push(goertzel(&frame, 8000, 425.0) > 1e-3);
        }
        // 50 frames on, 200 off, twice.
        for (i, &o) in on.iter().enumerate() {
            assert_eq!(o, i % 250 < 50, "frame {i}");
        }
        assert!(!g.is_finished());
    }

    #[test]
    fn busy_and_level() {
        let mut g = ToneGenerator::new(ToneSpec::busy(), 16000);
        let mut frame = vec![0i16; 8000];
        g.fill(&mut frame);
        let p = goertzel(&frame[400..7600], 16000, 425.0);
        assert!((to_db(p) - (-13.0 - 3.01)).abs() < 0.3, "{}", to_db(p));
        g.fill(&mut frame);
        assert_eq!(mean_square(&frame), 0.0);
    }

    #[test]
    fn phase_continuous_across_frames() {
        let mut a = ToneGenerator::new(ToneSpec::dial(), 48000);
        let mut b = ToneGenerator::new(ToneSpec::dial(), 48000);
        let mut whole = vec![0i16; 48000 * 3];
        a.fill(&mut whole);
        let mut parts = vec![0i16; 48000 * 3];
        for chunk in parts.chunks_mut(137) {
            b.fill(chunk);
        }
        assert_eq!(whole, parts);
        // dial() repeats a 1 s segment: no fade at the repeats, full level across them.
        let around_repeat = &whole[48000 - 480..48000 + 480];
        let p = goertzel(around_repeat, 48000, 425.0);
        assert!((to_db(p) - (-16.01)).abs() < 0.2, "{}", to_db(p));
        // No jump between consecutive samples beyond the sine's slope.
        let max_step = whole.windows(2).map(|w| (w[1] - w[0]).abs()).max();
        let slope = (TAU * 425.0 / 48000.0 * 32767.0 * 10f64.powf(-13.0 / 20.0)).ceil() as i16;
        assert!(max_step <= Some(slope + 1), "{max_step:?} > {slope}");
    }

    #[test]
    fn one_shot_finishes_and_pads_with_silence() {
        let mut g = ToneGenerator::new(ToneSpec::beep(), 8000);
        let mut frame = [1i16; 160];
        for _ in 0..10 {
            assert_eq!(g.fill(&mut frame), 160);
        }
        assert!(!g.is_finished());
        assert_eq!(g.fill(&mut frame), 0);
        assert!(g.is_finished());
        assert!(frame.iter().all(|&s| s == 0));
    }

    #[test]
    fn join_rises_leave_falls() {
        for (spec, first, second) in [
            (ToneSpec::join(), 600.0, 900.0),
            (ToneSpec::leave(), 900.0, 600.0),
        ] {
            let mut g = ToneGenerator::new(spec, 8000);
            let mut buf = vec![0i16; 8 * 230];
            assert_eq!(g.fill(&mut buf), 8 * 230);
            let (a, b) = (&buf[..800], &buf[8 * 130..]);
            assert!(goertzel(a, 8000, first) > 100.0 * goertzel(a, 8000, second));
            assert!(goertzel(b, 8000, second) > 100.0 * goertzel(b, 8000, first));
            assert!(g.fill(&mut buf[..1]) == 0 && g.is_finished());
        }
    }

    #[test]
    fn dual_tone_has_both() {
        let spec = ToneSpec::new(vec![ToneSegment::dual(697.0, 1209.0, 100)], false, -10.0);
        let mut g = ToneGenerator::new(spec, 8000);
        let mut buf = [0i16; 800];
        g.fill(&mut buf);
        let lo = goertzel(&buf, 8000, 697.0);
        let hi = goertzel(&buf, 8000, 1209.0);
        assert!(lo > 0.03 && hi > 0.03 && goertzel(&buf, 8000, 852.0) < 1e-3);
    }
}
