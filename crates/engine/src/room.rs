//! A conference room: one mixer, members by leg.

use kentongan_media::{MemberOptions, Mixer, MixerConfig, MixerEvent, SampleRate};

use crate::{leg_of, member_of, LegId, FRAME_SAMPLES};

pub(crate) struct Room {
    mixer: Mixer,
    silence: [i16; FRAME_SAMPLES],
}

impl Room {
    pub(crate) fn new() -> Room {
        Room {
            mixer: Mixer::new(MixerConfig::new(SampleRate::Hz8000)),
            silence: [0; FRAME_SAMPLES],
        }
    }

    pub(crate) fn add(&mut self, leg: LegId) {
        // Ids are unique per engine, so a duplicate cannot happen; ignoring the error keeps
        // a repeated join harmless.
        let _ = self
            .mixer
            .add_member(member_of(leg), MemberOptions::default());
    }

    pub(crate) fn remove(&mut self, leg: LegId) {
        let _ = self.mixer.remove_member(member_of(leg));
    }

    pub(crate) fn update(&mut self, leg: LegId, f: impl FnOnce(&mut MemberOptions)) {
        let m = member_of(leg);
        if let Some(mut o) = self.mixer.options(m) {
            f(&mut o);
            let _ = self.mixer.set_options(m, o);
        }
    }

    pub(crate) fn members(&self) -> Vec<LegId> {
        self.mixer.outputs().map(|(m, _)| leg_of(m)).collect()
    }

    /// Lets `fill` write a member's frame straight into the mixer's input.
    pub(crate) fn input(&mut self, leg: LegId, fill: impl FnOnce(&mut [i16])) {
        if let Ok(buf) = self.mixer.input_mut(member_of(leg)) {
            fill(buf);
        }
    }

    pub(crate) fn mix(&mut self) {
        self.mixer.mix();
    }

    pub(crate) fn poll_event(&mut self) -> Option<MixerEvent> {
        self.mixer.poll_event()
    }

    /// What a member hears from the last mix.
    pub(crate) fn output(&self, leg: LegId) -> &[i16] {
        self.mixer
            .output_samples(member_of(leg))
            .unwrap_or(&self.silence)
    }

    pub(crate) fn is_talking(&self, leg: LegId) -> bool {
        self.mixer.is_talking(member_of(leg)).unwrap_or(false)
    }
}
