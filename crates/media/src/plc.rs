//! Packet-loss concealment for codecs without their own (G.711): a light take on G.711
//! Appendix I. A lost frame repeats the last good one, faded: the first 10 ms of a loss play
//! at full level, then the level drops by 20 % every 10 ms, reaching silence after 60 ms, so a
//! long gap becomes quiet instead of a buzzing loop. The first good frame after a loss is
//! cross-faded with the concealment over a short window to avoid a click.

/// Samples of the cross-fade between concealment and the first good frame (4 ms at 8 kHz).
const MERGE: usize = 32;

/// Repeat-and-fade concealment state for one stream.
#[derive(Clone, Debug)]
pub struct Concealer {
    last: Vec<i16>,
    /// Samples already concealed in the current loss run (0 = not in a loss).
    lost_samples: usize,
    /// Where the next concealed sample is read from `last`.
    cursor: usize,
    have_history: bool,
}

impl Concealer {
    /// A concealer for frames of `frame_samples` samples (10 ms = `frame_samples / 2`).
    pub fn new(frame_samples: usize) -> Concealer {
        Concealer {
            last: vec![0; frame_samples.max(2)],
            lost_samples: 0,
            cursor: 0,
            have_history: false,
        }
    }

    /// Records a good frame; if it ends a loss, fades it in from the concealment in place.
    pub fn good_frame(&mut self, frame: &mut [i16]) {
        let was_lost = self.lost_samples > 0 && self.have_history;
        // The history keeps the frame as received, so a later loss repeats real audio and
        // not the fade-in.
        let keep = frame.len().min(self.last.len());
        for (i, s) in frame
            .iter_mut()
            .take(if was_lost { MERGE } else { 0 })
            .enumerate()
        {
            let conceal = self.next_concealed();
            if i < keep {
                self.last[i] = *s;
            }
            let n = MERGE.min(keep.max(1)) as i32;
            let w = (i + 1) as i32;
            *s = ((i32::from(*s) * w + i32::from(conceal) * (n + 1 - w)) / (n + 1)) as i16;
        }
        let done = if was_lost { MERGE.min(keep) } else { 0 };
        self.last[done..keep].copy_from_slice(&frame[done..keep]);
        self.last[keep..].fill(0);
        self.lost_samples = 0;
        self.cursor = 0;
        self.have_history = true;
    }

    /// Fills `out` with the concealment of one lost frame.
    pub fn conceal(&mut self, out: &mut [i16]) {
        if !self.have_history {
            out.fill(0);
            return;
        }
        for s in out.iter_mut() {
            *s = self.next_concealed();
        }
    }

    fn next_concealed(&mut self) -> i16 {
        let ten_ms = (self.last.len() / 2).max(1);
        // Full level for 10 ms, then a linear ramp losing 20 % per 10 ms: silent at 60 ms.
        let ramp = 5 * ten_ms;
        let past = self.lost_samples.saturating_sub(ten_ms);
        let num = ramp.saturating_sub(past) as i32;
        let s = i32::from(self.last[self.cursor]) * num / ramp as i32;
        self.cursor = (self.cursor + 1) % self.last.len();
        self.lost_samples += 1;
        s as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_heard_yet_conceals_as_silence() {
        let mut c = Concealer::new(160);
        let mut out = [7i16; 160];
        c.conceal(&mut out);
        assert!(out.iter().all(|&s| s == 0));
    }

    #[test]
    fn loss_repeats_then_fades_to_silence_at_60_ms() {
        let mut c = Concealer::new(160);
        let mut good = [1000i16; 160];
        c.good_frame(&mut good);
        let mut out = [0i16; 160];
        c.conceal(&mut out); // 0..20 ms of loss
        assert!(
            out[..80].iter().all(|&s| s == 1000),
            "first 10 ms at full level"
        );
        assert_eq!(out[80], 1000);
        assert_eq!(out[120], (1000 * (400 - 40) / 400) as i16);
        assert_eq!(out[159], (1000 * (400 - 79) / 400) as i16);
        c.conceal(&mut out); // 20..40 ms
        assert_eq!(out[0], (1000 * (400 - 80) / 400) as i16);
        c.conceal(&mut out); // 40..60 ms
        assert_eq!(out[159], 2, "1000 × 1/400");
        c.conceal(&mut out); // 60..80 ms
        assert!(out.iter().all(|&s| s == 0));
    }

    #[test]
    fn recovery_cross_fades_and_resets() {
        let mut c = Concealer::new(160);
        let mut good = [1000i16; 160];
        c.good_frame(&mut good);
        let mut out = [0i16; 160];
        for _ in 0..4 {
            c.conceal(&mut out);
        }
        // Concealment is silent now; the next good frame fades in from 0 over MERGE samples.
        let mut next = [2000i16; 160];
        c.good_frame(&mut next);
        assert_eq!(next[0], (2000 / 33) as i16);
        assert!(next[0] < next[16] && next[16] < next[31]);
        assert!(next[32..].iter().all(|&s| s == 2000));
        // A fresh loss starts at full level again from the new frame.
        c.conceal(&mut out);
        assert_eq!(out[0], 2000);
    }
}
