//! Conference mixing: every member hears everyone but themselves.
//!
//! Per frame the mixer sums the contributing members once into `i32`, then gives each
//! contributor `sum − own` saturated to `i16` — O(N·frame) instead of O(N²·frame). Members who
//! contribute nothing (no frame, muted, listen-only, or not talking when the VAD gate is on)
//! all hear the same full mix, reported as [`MixOutput::Shared`]: the engine encodes it once
//! per codec for all of them, so a room with K talkers costs K + 1 encodes per codec.
//!
//! The mixer also meters each member (RFC 6464 level, VAD with onset/hangover) and picks the
//! active speaker with a hold-off, reporting changes as [`MixerEvent`]s.

use std::collections::{HashMap, VecDeque};

use crate::codec::SampleRate;
use crate::level::{level_dbov, TalkChange, Vad, VadConfig};

/// A conference member, named by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(pub u64);

/// Fixed-point unity gain (Q12).
const UNITY: i32 = 1 << 12;

/// How a member takes part.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemberOptions {
    /// Heard by nobody (still hears the room).
    pub muted: bool,
    /// Never heard, never metered as talking (announcements, recorders, supervisors).
    pub listen_only: bool,
    /// Gain applied to this member's voice in everyone else's mix, in dB (0 = unchanged).
    pub gain_db: f32,
}

impl Default for MemberOptions {
    fn default() -> MemberOptions {
        MemberOptions {
            muted: false,
            listen_only: false,
            gain_db: 0.0,
        }
    }
}

/// Mixer settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MixerConfig {
    /// PCM rate of every member's frames (decode to it, resample before if needed).
    pub rate: SampleRate,
    /// Only members the VAD finds talking are mixed. Off: every unmuted frame is mixed.
    pub vad_gate: bool,
    /// Voice-activity detection settings.
    pub vad: VadConfig,
    /// Frames a louder talker must stay loudest before becoming the active speaker.
    pub speaker_holdoff_frames: u16,
}

impl MixerConfig {
    /// VAD gating on, default VAD, 500 ms speaker hold-off.
    pub fn new(rate: SampleRate) -> MixerConfig {
        MixerConfig {
            rate,
            vad_gate: true,
            vad: VadConfig::default(),
            speaker_holdoff_frames: 25,
        }
    }
}

/// What a member should be sent this frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MixOutput<'a> {
    /// The room's full mix ([`Mixer::shared_mix`]), identical for every `Shared` member:
    /// encode it once per codec.
    Shared,
    /// A mix without this member's own voice.
    Own(&'a [i16]),
}

/// Talk and speaker changes, drained with [`Mixer::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MixerEvent {
    /// A member started talking.
    TalkStarted(MemberId),
    /// A member stopped talking.
    TalkStopped(MemberId),
    /// The active speaker changed (None: nobody talks).
    ActiveSpeaker(Option<MemberId>),
}

/// Mixer misuse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MixerError {
    /// No member with that id.
    #[error("no member {0:?} in this mixer: add_member first")]
    UnknownMember(MemberId),
    /// The id is taken.
    #[error("member {0:?} is already in this mixer")]
    DuplicateMember(MemberId),
    /// A frame of the wrong length.
    #[error("frame has {got} samples, the mixer runs {want}-sample frames: decode or resample to the mixer's rate")]
    FrameSize {
        /// Samples passed.
        got: usize,
        /// Samples per frame.
        want: usize,
    },
}

struct Member {
    id: MemberId,
    opts: MemberOptions,
    gain_q12: i32,
    input: Vec<i16>,
    has_input: bool,
    contributing: bool,
    vad: Vad,
    output: Vec<i16>,
}

/// One conference room's mixer.
pub struct Mixer {
    cfg: MixerConfig,
    frame: usize,
    members: Vec<Member>,
    index: HashMap<MemberId, usize>,
    sum: Vec<i32>,
    shared: Vec<i16>,
    events: VecDeque<MixerEvent>,
    speaker: Option<MemberId>,
    candidate: Option<(MemberId, u16)>,
}

fn gain_q12(db: f32) -> i32 {
    (10f32.powf(db / 20.0) * UNITY as f32)
        .round()
        .clamp(0.0, 16.0 * UNITY as f32) as i32
}

#[inline]
fn scaled(s: i16, gain: i32) -> i32 {
    if gain == UNITY {
        i32::from(s)
    } else {
        (i32::from(s) * gain) >> 12
    }
}

#[inline]
fn saturate(v: i32) -> i16 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

impl Mixer {
    /// An empty room.
    pub fn new(cfg: MixerConfig) -> Mixer {
        let frame = cfg.rate.frame_samples();
        Mixer {
            cfg,
            frame,
            members: Vec::new(),
            index: HashMap::new(),
            sum: vec![0; frame],
            shared: vec![0; frame],
            events: VecDeque::with_capacity(16),
            speaker: None,
            candidate: None,
        }
    }

    /// Samples per frame.
    pub fn frame_samples(&self) -> usize {
        self.frame
    }

    /// Members in the room.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True with no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Adds a member (allocates its buffers; the per-frame path then allocates nothing).
    pub fn add_member(&mut self, id: MemberId, opts: MemberOptions) -> Result<(), MixerError> {
        if self.index.contains_key(&id) {
            return Err(MixerError::DuplicateMember(id));
        }
        self.index.insert(id, self.members.len());
        self.members.push(Member {
            id,
            opts,
            gain_q12: gain_q12(opts.gain_db),
            input: vec![0; self.frame],
            has_input: false,
            contributing: false,
            vad: Vad::new(self.cfg.vad),
            output: vec![0; self.frame],
        });
        Ok(())
    }

    /// Removes a member; a talking member's talk ends with it.
    pub fn remove_member(&mut self, id: MemberId) -> Result<(), MixerError> {
        let i = self
            .index
            .remove(&id)
            .ok_or(MixerError::UnknownMember(id))?;
        let m = self.members.swap_remove(i);
        if let Some(moved) = self.members.get(i) {
            self.index.insert(moved.id, i);
        }
        if m.vad.is_talking() {
            self.events.push_back(MixerEvent::TalkStopped(id));
        }
        if self.speaker == Some(id) {
            self.speaker = None;
            self.events.push_back(MixerEvent::ActiveSpeaker(None));
        }
        if self.candidate.is_some_and(|(c, _)| c == id) {
            self.candidate = None;
        }
        Ok(())
    }

    fn member(&mut self, id: MemberId) -> Result<&mut Member, MixerError> {
        let i = *self.index.get(&id).ok_or(MixerError::UnknownMember(id))?;
        Ok(&mut self.members[i])
    }

    /// Changes a member's options.
    pub fn set_options(&mut self, id: MemberId, opts: MemberOptions) -> Result<(), MixerError> {
        let m = self.member(id)?;
        m.opts = opts;
        m.gain_q12 = gain_q12(opts.gain_db);
        Ok(())
    }

    /// A member's options.
    pub fn options(&self, id: MemberId) -> Option<MemberOptions> {
        self.index.get(&id).map(|&i| self.members[i].opts)
    }

    /// Copies this frame's decoded audio from a member.
    pub fn set_input(&mut self, id: MemberId, frame: &[i16]) -> Result<(), MixerError> {
        let want = self.frame;
        if frame.len() != want {
            return Err(MixerError::FrameSize {
                got: frame.len(),
                want,
            });
        }
        let m = self.member(id)?;
        m.input.copy_from_slice(frame);
        m.has_input = true;
        Ok(())
    }

    /// The member's input buffer for this frame, to decode straight into (marks the frame as
    /// present).
    pub fn input_mut(&mut self, id: MemberId) -> Result<&mut [i16], MixerError> {
        let m = self.member(id)?;
        m.has_input = true;
        Ok(&mut m.input)
    }

    /// Mixes the frame. Members given no input since the last call count as silent.
    pub fn mix(&mut self) {
        self.sum.fill(0);
        let gate = self.cfg.vad_gate;
        for m in &mut self.members {
            let level = if m.has_input && !m.opts.listen_only {
                level_dbov(&m.input)
            } else {
                127
            };
            match m.vad.update(level) {
                TalkChange::Started => self.events.push_back(MixerEvent::TalkStarted(m.id)),
                TalkChange::Stopped => self.events.push_back(MixerEvent::TalkStopped(m.id)),
                TalkChange::None => {}
            }
            m.contributing = m.has_input
                && !m.opts.muted
                && !m.opts.listen_only
                && m.gain_q12 > 0
                && (!gate || m.vad.is_talking());
            if m.contributing {
                let g = m.gain_q12;
                for (acc, &s) in self.sum.iter_mut().zip(&m.input) {
                    *acc += scaled(s, g);
                }
            }
        }
        for (o, &s) in self.shared.iter_mut().zip(&self.sum) {
            *o = saturate(s);
        }
        for m in &mut self.members {
            if m.contributing {
                let g = m.gain_q12;
                for ((o, &s), &own) in m.output.iter_mut().zip(&self.sum).zip(&m.input) {
                    *o = saturate(s - scaled(own, g));
                }
            }
            m.has_input = false;
        }
        self.pick_speaker();
    }

    fn pick_speaker(&mut self) {
        let loudest = self
            .members
            .iter()
            .filter(|m| m.vad.is_talking() && !m.opts.muted && !m.opts.listen_only)
            .min_by_key(|m| (m.vad.level(), m.id))
            .map(|m| m.id);
        let current_talks = self.speaker.is_some_and(|s| {
            self.index
                .get(&s)
                .is_some_and(|&i| self.members[i].vad.is_talking())
        });
        let next = match loudest {
            None => None,
            Some(l) if Some(l) == self.speaker => {
                self.candidate = None;
                Some(l)
            }
            Some(l) if !current_talks => Some(l),
            Some(l) => {
                let run = match self.candidate {
                    Some((c, n)) if c == l => n + 1,
                    _ => 1,
                };
                self.candidate = Some((l, run));
                if run >= self.cfg.speaker_holdoff_frames {
                    Some(l)
                } else {
                    self.speaker
                }
            }
        };
        if next != self.speaker {
            self.speaker = next;
            self.candidate = None;
            self.events.push_back(MixerEvent::ActiveSpeaker(next));
        }
    }

    /// What `id` hears from the last [`Mixer::mix`].
    pub fn output(&self, id: MemberId) -> Option<MixOutput<'_>> {
        self.index.get(&id).map(|&i| {
            let m = &self.members[i];
            if m.contributing {
                MixOutput::Own(&m.output)
            } else {
                MixOutput::Shared
            }
        })
    }

    /// The full mix heard by every [`MixOutput::Shared`] member.
    pub fn shared_mix(&self) -> &[i16] {
        &self.shared
    }

    /// What `id` hears as samples, whichever kind it is.
    pub fn output_samples(&self, id: MemberId) -> Option<&[i16]> {
        self.output(id).map(|o| match o {
            MixOutput::Shared => &self.shared[..],
            MixOutput::Own(s) => s,
        })
    }

    /// Every member with what it hears, in an order stable between calls without membership
    /// changes.
    pub fn outputs(&self) -> impl Iterator<Item = (MemberId, MixOutput<'_>)> + '_ {
        self.members.iter().map(|m| {
            let o = if m.contributing {
                MixOutput::Own(&m.output)
            } else {
                MixOutput::Shared
            };
            (m.id, o)
        })
    }

    /// Whether a member is talking (VAD).
    pub fn is_talking(&self, id: MemberId) -> Option<bool> {
        self.index
            .get(&id)
            .map(|&i| self.members[i].vad.is_talking())
    }

    /// A member's last level, −dBov (RFC 6464: 0 loudest, 127 silence).
    pub fn level(&self, id: MemberId) -> Option<u8> {
        self.index.get(&id).map(|&i| self.members[i].vad.level())
    }

    /// The active speaker.
    pub fn active_speaker(&self) -> Option<MemberId> {
        self.speaker
    }

    /// The next talk/speaker change.
    pub fn poll_event(&mut self) -> Option<MixerEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            // xorshift64*: deterministic, good enough for test vectors.
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn sample(&mut self) -> i16 {
            self.next() as i16
        }
    }

    fn ungated() -> MixerConfig {
        MixerConfig {
            vad_gate: false,
            ..MixerConfig::new(SampleRate::Hz8000)
        }
    }

    #[test]
    fn n_minus_one_property_on_random_frames() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..200 {
            let n = 1 + (rng.next() % 12) as usize;
            let mut mx = Mixer::new(ungated());
            let mut frames = Vec::new();
            for i in 0..n {
                let muted = rng.next() % 5 == 0;
                let listen_only = rng.next() % 7 == 0;
                let present = rng.next() % 6 != 0;
                let opts = MemberOptions {
                    muted,
                    listen_only,
                    gain_db: 0.0,
                };
                mx.add_member(MemberId(i as u64), opts).unwrap();
                // Mostly moderate levels, sometimes loud enough to saturate the sum.
                let shift = if rng.next() % 3 == 0 { 0 } else { 3 };
                let f: Vec<i16> = (0..160).map(|_| rng.sample() >> shift).collect();
                if present {
                    mx.set_input(MemberId(i as u64), &f).unwrap();
                }
                frames.push((f, present && !muted && !listen_only));
            }
            mx.mix();
            for i in 0..n {
                let expect: Vec<i16> = (0..160)
                    .map(|k| {
                        let s: i32 = frames
                            .iter()
                            .enumerate()
                            .filter(|&(j, (_, on))| j != i && *on)
                            .map(|(_, (f, _))| i32::from(f[k]))
                            .sum();
                        s.clamp(-32768, 32767) as i16
                    })
                    .collect();
                let got = mx.output_samples(MemberId(i as u64)).unwrap();
                assert_eq!(got, &expect[..], "round {round} member {i} of {n}");
                let shared = matches!(mx.output(MemberId(i as u64)), Some(MixOutput::Shared));
                assert_eq!(shared, !frames[i].1, "round {round} member {i}");
            }
        }
    }

    #[test]
    fn muted_member_is_absent_and_gain_applies() {
        let mut mx = Mixer::new(ungated());
        for i in 0..3 {
            mx.add_member(MemberId(i), MemberOptions::default())
                .unwrap();
        }
        mx.set_options(
            MemberId(1),
            MemberOptions {
                muted: true,
                ..MemberOptions::default()
            },
        )
        .unwrap();
        mx.set_options(
            MemberId(2),
            MemberOptions {
                gain_db: -6.0206,
                ..MemberOptions::default()
            },
        )
        .unwrap();
        mx.set_input(MemberId(0), &[1000; 160]).unwrap();
        mx.set_input(MemberId(1), &[3000; 160]).unwrap();
        mx.input_mut(MemberId(2)).unwrap().fill(4000);
        mx.mix();
        assert_eq!(mx.output_samples(MemberId(0)).unwrap(), &[2000; 160][..]);
        assert_eq!(mx.output(MemberId(1)), Some(MixOutput::Shared));
        assert_eq!(mx.shared_mix(), &[3000; 160][..]);
        assert_eq!(mx.output_samples(MemberId(2)).unwrap(), &[1000; 160][..]);
        // The next frame without inputs is silence for everyone.
        mx.mix();
        assert!(mx.outputs().all(|(_, o)| o == MixOutput::Shared));
        assert_eq!(mx.shared_mix(), &[0; 160][..]);
    }

    #[test]
    fn silent_members_share_one_mix_with_the_vad_gate() {
        let mut mx = Mixer::new(MixerConfig::new(SampleRate::Hz8000));
        for i in 0..5 {
            mx.add_member(MemberId(i), MemberOptions::default())
                .unwrap();
        }
        let speech: Vec<i16> = (0..160)
            .map(|k| if k % 2 == 0 { 3000 } else { -3000 })
            .collect();
        let hiss = [3i16; 160]; // -81 dBov: below the gate, must not leak into the mix
        for frame in 0..3 {
            mx.set_input(MemberId(0), &speech).unwrap();
            for i in 1..5 {
                mx.set_input(MemberId(i), &hiss).unwrap();
            }
            mx.mix();
            let shared = mx
                .outputs()
                .filter(|(_, o)| *o == MixOutput::Shared)
                .count();
            if frame == 0 {
                // Onset hold-off: nobody is talking yet.
                assert_eq!(shared, 5);
                assert_eq!(mx.shared_mix(), &[0; 160][..]);
            } else {
                assert_eq!(shared, 4);
                assert_eq!(mx.shared_mix(), &speech[..]);
                assert_eq!(mx.output_samples(MemberId(0)).unwrap(), &[0; 160][..]);
            }
        }
        assert_eq!(mx.poll_event(), Some(MixerEvent::TalkStarted(MemberId(0))));
        assert_eq!(
            mx.poll_event(),
            Some(MixerEvent::ActiveSpeaker(Some(MemberId(0))))
        );
        assert_eq!(mx.poll_event(), None);
        assert_eq!(mx.is_talking(MemberId(0)), Some(true));
        assert_eq!(mx.level(MemberId(0)), Some(21));
        assert_eq!(mx.level(MemberId(1)), Some(81));
    }

    #[test]
    fn active_speaker_switches_after_the_hold_off() {
        let cfg = MixerConfig {
            speaker_holdoff_frames: 3,
            ..MixerConfig::new(SampleRate::Hz8000)
        };
        let mut mx = Mixer::new(cfg);
        let (a, b) = (MemberId(1), MemberId(2));
        mx.add_member(a, MemberOptions::default()).unwrap();
        mx.add_member(b, MemberOptions::default()).unwrap();
        let loud = [8000i16; 160];
        let soft = [1000i16; 160];
        let mut speakers = Vec::new();
        for f in 0..10 {
            mx.set_input(a, if f < 4 { &loud } else { &soft }).unwrap();
            mx.set_input(b, if f < 4 { &soft } else { &loud }).unwrap();
            mx.mix();
            speakers.push(mx.active_speaker().map(|m| m.0));
        }
        // Both start talking at frame 1 (onset 2); a is louder. b takes over 3 frames after
        // becoming the louder one at frame 4.
        assert_eq!(
            speakers,
            vec![
                None,
                Some(1),
                Some(1),
                Some(1),
                Some(1),
                Some(1),
                Some(2),
                Some(2),
                Some(2),
                Some(2)
            ]
        );
        mx.remove_member(b).unwrap();
        let mut ev = Vec::new();
        while let Some(e) = mx.poll_event() {
            ev.push(e);
        }
        assert_eq!(
            ev[ev.len() - 2..],
            [MixerEvent::TalkStopped(b), MixerEvent::ActiveSpeaker(None)]
        );
        assert_eq!(mx.len(), 1);
        assert_eq!(mx.remove_member(b), Err(MixerError::UnknownMember(b)));
        assert_eq!(
            mx.add_member(a, MemberOptions::default()),
            Err(MixerError::DuplicateMember(a))
        );
        assert_eq!(
            mx.set_input(a, &[0; 10]),
            Err(MixerError::FrameSize { got: 10, want: 160 })
        );
    }

    #[test]
    fn talk_stops_after_the_hangover() {
        let mut mx = Mixer::new(MixerConfig::new(SampleRate::Hz16000));
        let a = MemberId(7);
        mx.add_member(a, MemberOptions::default()).unwrap();
        for _ in 0..2 {
            mx.set_input(a, &[5000; 320]).unwrap();
            mx.mix();
        }
        assert_eq!(mx.is_talking(a), Some(true));
        for _ in 0..19 {
            mx.mix();
        }
        assert_eq!(mx.is_talking(a), Some(true));
        mx.mix();
        assert_eq!(mx.is_talking(a), Some(false));
        let ev: Vec<_> = std::iter::from_fn(|| mx.poll_event()).collect();
        assert_eq!(
            ev,
            vec![
                MixerEvent::TalkStarted(a),
                MixerEvent::ActiveSpeaker(Some(a)),
                MixerEvent::TalkStopped(a),
                MixerEvent::ActiveSpeaker(None)
            ]
        );
    }
}
