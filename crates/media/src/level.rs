//! Audio level (RFC 6464 style, −dBov) and a voice-activity detector with onset hold-off and
//! hangover, so talk state follows speech without flapping on every syllable gap.

/// RMS level of a frame in dBov (0 = full-scale square wave), floored at −127 as RFC 6464
/// encodes it. Returns the positive magnitude: 0 (loudest) … 127 (silence).
pub fn level_dbov(frame: &[i16]) -> u8 {
    if frame.is_empty() {
        return 127;
    }
    let sum: i64 = frame.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
    if sum == 0 {
        return 127;
    }
    let ms = sum as f64 / (frame.len() as f64 * 32768.0 * 32768.0);
    let db = -10.0 * ms.log10();
    db.round().clamp(0.0, 127.0) as u8
}

/// Voice-activity settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VadConfig {
    /// Frames at or above this loudness (−dBov, smaller is louder) count as voice.
    pub threshold_dbov: u8,
    /// Consecutive voiced frames before talk starts (hold-off against clicks).
    pub onset_frames: u16,
    /// Consecutive quiet frames before talk stops (hangover across pauses).
    pub hangover_frames: u16,
}

impl Default for VadConfig {
    /// −45 dBov, 2 frames (40 ms) onset, 20 frames (400 ms) hangover.
    fn default() -> VadConfig {
        VadConfig {
            threshold_dbov: 45,
            onset_frames: 2,
            hangover_frames: 20,
        }
    }
}

/// What a frame changed in the talk state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TalkChange {
    /// No change.
    None,
    /// Talk started with this frame.
    Started,
    /// Talk stopped with this frame.
    Stopped,
}

/// Per-stream voice-activity detector.
#[derive(Clone, Copy, Debug)]
pub struct Vad {
    cfg: VadConfig,
    talking: bool,
    run: u16,
    level: u8,
}

impl Vad {
    /// A detector in the quiet state.
    pub fn new(cfg: VadConfig) -> Vad {
        Vad {
            cfg,
            talking: false,
            run: 0,
            level: 127,
        }
    }

    /// Feeds one frame's level (from [`level_dbov`]; 127 for a missing frame).
    pub fn update(&mut self, level: u8) -> TalkChange {
        self.level = level;
        let voiced = level <= self.cfg.threshold_dbov;
        if voiced == self.talking {
            self.run = 0;
            return TalkChange::None;
        }
        self.run += 1;
        let need = if self.talking {
            self.cfg.hangover_frames
        } else {
            self.cfg.onset_frames
        };
        if self.run < need.max(1) {
            return TalkChange::None;
        }
        self.run = 0;
        self.talking = voiced;
        if voiced {
            TalkChange::Started
        } else {
            TalkChange::Stopped
        }
    }

    /// Whether the stream is talking.
    pub fn is_talking(&self) -> bool {
        self.talking
    }

    /// The last level fed, −dBov.
    pub fn level(&self) -> u8 {
        self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::tests::sine;

    #[test]
    fn levels() {
        assert_eq!(level_dbov(&[0; 160]), 127);
        assert_eq!(level_dbov(&[]), 127);
        assert_eq!(level_dbov(&[i16::MIN; 160]), 0);
        assert_eq!(level_dbov(&sine(8000, 1000.0, 32767.0, 160)), 3);
        assert_eq!(level_dbov(&sine(8000, 1000.0, 327.67, 160)), 43);
        assert_eq!(level_dbov(&[1; 160]), 90);
    }

    #[test]
    fn onset_and_hangover() {
        let mut v = Vad::new(VadConfig {
            threshold_dbov: 40,
            onset_frames: 2,
            hangover_frames: 3,
        });
        let seq = [
            (20, TalkChange::None),
            (60, TalkChange::None), // a one-frame click does not start talk
            (20, TalkChange::None),
            (20, TalkChange::Started),
            (60, TalkChange::None),
            (60, TalkChange::None),
            (20, TalkChange::None), // a short pause does not stop it
            (60, TalkChange::None),
            (60, TalkChange::None),
            (60, TalkChange::Stopped),
        ];
        for (i, (level, want)) in seq.into_iter().enumerate() {
            assert_eq!(v.update(level), want, "frame {i}");
        }
        assert!(!v.is_talking());
        assert_eq!(v.level(), 60);
    }
}
