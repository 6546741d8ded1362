//! Kentongan's media engine: the legs of calls that end *in* the PBX, where it plays, listens,
//! mixes and detects DTMF, instead of relaying packets between two phones.
//!
//! **Owns**: per-leg RTP in and out (parse, jitter buffer, decode, RFC 4733 DTMF, encode,
//! packetise with our own SSRC/sequence/timestamp), conference rooms (the mixer: each member
//! hears all others, never itself; talk detection and the active speaker), and what a leg is
//! played (tones and clips queued, mixed over what the leg hears), and recordings of what a leg
//! sends (decoded samples handed out in [`Event::Recorded`]; ended by a limit, silence, a
//! stop or the leg's removal). It is a state machine fed
//! packets and time: [`Engine::handle_rtp`], [`Engine::handle_tick`] every 20 ms (when
//! [`Engine::poll_timeout`] says), then [`Engine::poll_transmit`] and [`Engine::poll_event`].
//!
//! **Does not**: open sockets, read clocks, spawn threads or touch files (the PBX daemon's
//! media thread does that and maps [`LegId`]s to sockets), parse SDP (the caller negotiates and
//! hands in a [`LegSpec`] with the payload types), or relay bridged calls (that is the PBX's
//! pass-through relay, which never decodes).
//!
//! **Principal types**: [`Engine`], [`LegId`], [`LegSpec`], [`RoomId`], [`Sound`], [`Event`],
//! [`RecordSpec`].
//!
//! All audio inside runs at 8 kHz, 20 ms frames: G.711 natively, Opus encoded and decoded at
//! 8 kHz (its RTP clock stays 48 kHz). Rooms therefore mix narrowband; a member on Opus hears
//! and is heard at telephone quality.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use kentongan_engine::{Engine, LegSpec, Sound};
//! use kentongan_media::{Codec, ToneSpec};
//!
//! let t0 = Instant::now();
//! let mut engine = Engine::new(t0, 1);
//! let leg = engine.add_leg(LegSpec::new(Codec::Pcmu, 0, Some(101)))?;
//! engine.play(leg, Sound::Tone(ToneSpec::beep()), 7)?;
//! engine.handle_tick(t0 + Duration::from_millis(20));
//! let mut buf = [0u8; 1500];
//! let (to, n) = engine.poll_transmit(&mut buf).expect("one packet per leg per tick");
//! assert_eq!((to, n), (leg, 12 + 160));
//! # Ok::<(), kentongan_engine::EngineError>(())
//! ```

mod leg;
mod room;

pub use leg::clip_at_engine_rate;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use kentongan_media::{Clip, Codec, MemberId, MemberOptions, MixerEvent, ToneSpec};

use leg::Leg;
use room::Room;

/// The frame every leg and room runs at.
pub const FRAME: Duration = Duration::from_millis(20);
/// Samples per frame at the engine's 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// A leg of a call that ends in the engine (one audio stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u32);

/// A conference room's mixer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(pub u32);

/// What was negotiated for a leg (from SDP: the payload types are never assumed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegSpec {
    pub codec: Codec,
    pub payload_type: u8,
    /// The telephone-event payload type (RFC 4733), if the phone offered it.
    pub dtmf_payload_type: Option<u8>,
}

impl LegSpec {
    pub fn new(codec: Codec, payload_type: u8, dtmf_payload_type: Option<u8>) -> LegSpec {
        LegSpec {
            codec,
            payload_type,
            dtmf_payload_type,
        }
    }
}

/// Something played to a leg, over what it hears from its room.
#[derive(Debug, Clone)]
pub enum Sound {
    Tone(ToneSpec),
    /// A clip at 8 kHz (prompts and music are prepared at the engine's rate).
    Clip(Clip),
    /// Silence for a while (a pause between prompts).
    Silence(Duration),
    /// A clip played over and over until stopped (music on hold).
    Loop(Clip),
}

/// How a recording of a leg's input ends by itself (it also ends at
/// [`Engine::stop_recording`] and when the leg is removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSpec {
    /// The longest recording; reaching it ends with [`RecordEnd::Limit`].
    pub max: Duration,
    /// This long without a frame louder than [`SILENCE_DBOV`] ends it with
    /// [`RecordEnd::Silence`]; the silent tail is not kept.
    pub silence: Duration,
}

/// Frames at or below this level (dBov, as `level_dbov`: larger is quieter) count as silence.
pub const SILENCE_DBOV: u8 = 50;

/// Why a recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordEnd {
    Limit,
    Silence,
    /// [`Engine::stop_recording`], or the leg was removed.
    Stopped,
}

/// What the engine tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A recording of a leg's decoded input ended: 8 kHz mono samples.
    Recorded {
        leg: LegId,
        samples: Vec<i16>,
        end: RecordEnd,
    },
    /// A key was pressed (RFC 4733 telephone-event), once per press.
    Dtmf { leg: LegId, digit: char },
    /// A sound queued with [`Engine::play`] finished playing (or was stopped); `tag` is the
    /// caller's.
    Played { leg: LegId, tag: u64 },
    /// A room member started or stopped talking.
    Talking { leg: LegId, talking: bool },
    /// The loudest talker of a room changed (None: nobody talks).
    ActiveSpeaker { room: RoomId, leg: Option<LegId> },
}

/// Misuse of the engine's commands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("no leg {0:?} in the engine (it was removed, or never added)")]
    NoLeg(LegId),
    #[error("no room {0:?} in the engine (it was removed, or never created)")]
    NoRoom(RoomId),
    #[error("the codec could not be set up: {0}")]
    Codec(String),
    #[error("leg id {0:?} is already in use")]
    LegExists(LegId),
    #[error("{0:?} is not in a room")]
    NotInRoom(LegId),
}

/// The media engine.
pub struct Engine {
    legs: HashMap<LegId, Leg>,
    rooms: HashMap<RoomId, Room>,
    next_leg: u32,
    next_room: u32,
    next_tick: Instant,
    epoch: Instant,
    /// Seeds the SSRCs and initial sequence numbers/timestamps of new legs.
    rng: u64,
    /// Packets of the last tick, back to back in `out`, with their leg and length.
    out: Vec<u8>,
    queued: VecDeque<(LegId, usize, usize)>,
    events: VecDeque<Event>,
    /// Scratch for one frame.
    frame: [i16; FRAME_SAMPLES],
}

impl Engine {
    /// An engine whose first tick is due one frame after `now`; `seed` keys the SSRCs.
    pub fn new(now: Instant, seed: u64) -> Engine {
        Engine {
            legs: HashMap::new(),
            rooms: HashMap::new(),
            next_leg: 1,
            next_room: 1,
            next_tick: now + FRAME,
            epoch: now,
            rng: seed | 1,
            out: Vec::new(),
            queued: VecDeque::new(),
            events: VecDeque::new(),
            frame: [0; FRAME_SAMPLES],
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: SSRCs need to be unlikely to collide, not secret.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Adds a leg; it sends (silence, until it is played something or joins a room) from the
    /// next tick on.
    pub fn add_leg(&mut self, spec: LegSpec) -> Result<LegId, EngineError> {
        let id = LegId(self.next_leg);
        self.next_leg = self.next_leg.wrapping_add(1).max(1);
        let r = self.random();
        let leg = Leg::new(spec, r).map_err(EngineError::Codec)?;
        self.legs.insert(id, leg);
        Ok(id)
    }

    /// Adds a leg under an id the caller chose (a driver that hands ids out before the leg
    /// reaches the engine's thread); an id in use is an error.
    pub fn add_leg_with_id(&mut self, id: LegId, spec: LegSpec) -> Result<(), EngineError> {
        if self.legs.contains_key(&id) {
            return Err(EngineError::LegExists(id));
        }
        let r = self.random();
        let leg = Leg::new(spec, r).map_err(EngineError::Codec)?;
        self.legs.insert(id, leg);
        Ok(())
    }

    /// Creates a room under an id the caller chose; an id in use keeps its room.
    pub fn create_room_with_id(&mut self, id: RoomId) {
        self.rooms.entry(id).or_insert_with(Room::new);
    }

    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Removes a leg (and takes it out of its room); a recording in progress is handed out
    /// as [`Event::Recorded`] first, so a caller hanging up keeps what it said.
    pub fn remove_leg(&mut self, id: LegId) -> Result<(), EngineError> {
        let mut leg = self.legs.remove(&id).ok_or(EngineError::NoLeg(id))?;
        if let Some(samples) = leg.take_recording() {
            self.events.push_back(Event::Recorded {
                leg: id,
                samples,
                end: RecordEnd::Stopped,
            });
        }
        if let Some(room) = leg.room.and_then(|r| self.rooms.get_mut(&r)) {
            room.remove(id);
        }
        Ok(())
    }

    pub fn leg_count(&self) -> usize {
        self.legs.len()
    }

    /// Queues a sound for a leg; [`Event::Played`] with `tag` follows when it ends.
    pub fn play(&mut self, id: LegId, sound: Sound, tag: u64) -> Result<(), EngineError> {
        let leg = self.legs.get_mut(&id).ok_or(EngineError::NoLeg(id))?;
        leg.queue(sound, tag);
        Ok(())
    }

    /// Stops what a leg is being played and drops its queue (each sound reports `Played`).
    pub fn stop_playing(&mut self, id: LegId) -> Result<(), EngineError> {
        let leg = self.legs.get_mut(&id).ok_or(EngineError::NoLeg(id))?;
        for tag in leg.clear_sounds() {
            self.events.push_back(Event::Played { leg: id, tag });
        }
        Ok(())
    }

    pub fn create_room(&mut self) -> RoomId {
        let id = RoomId(self.next_room);
        self.next_room = self.next_room.wrapping_add(1).max(1);
        self.rooms.insert(id, Room::new());
        id
    }

    /// Removes a room; its members stay as legs that hear nothing but what they are played.
    pub fn remove_room(&mut self, id: RoomId) -> Result<(), EngineError> {
        let room = self.rooms.remove(&id).ok_or(EngineError::NoRoom(id))?;
        for m in room.members() {
            if let Some(leg) = self.legs.get_mut(&m) {
                leg.room = None;
            }
        }
        Ok(())
    }

    /// Puts a leg into a room (out of any other first).
    pub fn join(&mut self, id: LegId, room: RoomId) -> Result<(), EngineError> {
        if !self.rooms.contains_key(&room) {
            return Err(EngineError::NoRoom(room));
        }
        let leg = self.legs.get_mut(&id).ok_or(EngineError::NoLeg(id))?;
        if let Some(old) = leg.room.replace(room) {
            if let Some(r) = self.rooms.get_mut(&old) {
                r.remove(id);
            }
        }
        if let Some(r) = self.rooms.get_mut(&room) {
            r.add(id);
        }
        Ok(())
    }

    /// Takes a leg out of its room.
    pub fn leave(&mut self, id: LegId) -> Result<(), EngineError> {
        let leg = self.legs.get_mut(&id).ok_or(EngineError::NoLeg(id))?;
        let room = leg.room.take().ok_or(EngineError::NotInRoom(id))?;
        if let Some(r) = self.rooms.get_mut(&room) {
            r.remove(id);
        }
        Ok(())
    }

    /// Mutes (nobody hears it) or unmutes a room member.
    pub fn set_muted(&mut self, id: LegId, muted: bool) -> Result<(), EngineError> {
        self.update_member(id, |o| o.muted = muted)
    }

    /// An echo test (`*43`): the leg hears what it sends, 20 ms later, instead of a room.
    pub fn set_echo(&mut self, id: LegId, on: bool) -> Result<(), EngineError> {
        let leg = self.legs.get_mut(&id).ok_or(EngineError::NoLeg(id))?;
        leg.echo = on.then(|| Box::new([0; FRAME_SAMPLES]));
        Ok(())
    }

    /// Starts recording what the leg sends (decoded, 8 kHz), replacing any recording in
    /// progress; [`Event::Recorded`] hands the samples out when it ends. The buffer for
    /// `spec.max` is allocated here, so recording allocates nothing per frame.
    pub fn record(&mut self, id: LegId, spec: RecordSpec) -> Result<(), EngineError> {
        let leg = self.legs.get_mut(&id).ok_or(EngineError::NoLeg(id))?;
        leg.start_recording(spec);
        Ok(())
    }

    /// Ends a leg's recording now ([`Event::Recorded`] with [`RecordEnd::Stopped`]); nothing
    /// happens if it is not recording.
    pub fn stop_recording(&mut self, id: LegId) -> Result<(), EngineError> {
        let leg = self.legs.get_mut(&id).ok_or(EngineError::NoLeg(id))?;
        if let Some(samples) = leg.take_recording() {
            self.events.push_back(Event::Recorded {
                leg: id,
                samples,
                end: RecordEnd::Stopped,
            });
        }
        Ok(())
    }

    /// Gain of what a member hears, in dB (the `*2`/`*3` volume keys).
    pub fn set_listen_gain(&mut self, id: LegId, gain_db: f32) -> Result<(), EngineError> {
        let leg = self.legs.get_mut(&id).ok_or(EngineError::NoLeg(id))?;
        leg.set_listen_gain(gain_db);
        Ok(())
    }

    fn update_member(
        &mut self,
        id: LegId,
        f: impl FnOnce(&mut MemberOptions),
    ) -> Result<(), EngineError> {
        let leg = self.legs.get(&id).ok_or(EngineError::NoLeg(id))?;
        let room = leg.room.ok_or(EngineError::NotInRoom(id))?;
        let r = self.rooms.get_mut(&room).ok_or(EngineError::NoRoom(room))?;
        r.update(id, f);
        Ok(())
    }

    /// Whether a member is talking now (by the room's voice detector).
    pub fn is_talking(&self, id: LegId) -> bool {
        self.legs
            .get(&id)
            .and_then(|l| l.room)
            .and_then(|r| self.rooms.get(&r))
            .is_some_and(|r| r.is_talking(id))
    }

    /// One RTP packet received for a leg. Anything that is not RTP of a negotiated payload
    /// type is dropped, counted, and changes nothing.
    pub fn handle_rtp(&mut self, now: Instant, id: LegId, packet: &[u8]) {
        let now_us = self.us(now);
        if let Some(leg) = self.legs.get_mut(&id) {
            leg.receive(now, now_us, packet);
            while let Some(digit) = leg.poll_digit() {
                self.events.push_back(Event::Dtmf { leg: id, digit });
            }
        }
    }

    fn us(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// When [`Engine::handle_tick`] is due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_tick
    }

    /// Runs every frame that is due by `now`: each leg's input through its jitter buffer and
    /// decoder, each room's mix, and each leg's output encoded into one packet. A driver that
    /// fell behind runs the missed frames at once (phones' jitter buffers absorb it) rather
    /// than letting every stream drift.
    pub fn handle_tick(&mut self, now: Instant) {
        self.out.clear();
        self.queued.clear();
        let mut ran = 0;
        while self.next_tick <= now {
            self.next_tick += FRAME;
            ran += 1;
            if ran > 5 {
                // Five frames late: the driver stalled (or the clock jumped). Start afresh
                // instead of sending a burst.
                self.next_tick = now + FRAME;
                break;
            }
            self.run_frame(now);
        }
    }

    fn run_frame(&mut self, now: Instant) {
        let now_us = self.us(now);
        // 1. Input: every leg's frame, into its room's mixer.
        for (id, leg) in self.legs.iter_mut() {
            leg.handle_timeout(now);
            while let Some(digit) = leg.poll_digit() {
                self.events.push_back(Event::Dtmf { leg: *id, digit });
            }
            let room = leg.room.and_then(|r| self.rooms.get_mut(&r));
            match (room, leg.echo.take()) {
                (Some(room), echo) => {
                    leg.echo = echo;
                    let events = &mut self.events;
                    // A leg in a room may be recorded too (a recorded call bridged here).
                    room.input(*id, |buf| {
                        leg.pull_input(now_us, buf);
                        if let Some((samples, end)) = leg.record_frame(buf) {
                            events.push_back(Event::Recorded {
                                leg: *id,
                                samples,
                                end,
                            });
                        }
                    })
                }
                (None, Some(mut echo)) => {
                    leg.pull_input(now_us, &mut echo[..]);
                    leg.echo = Some(echo);
                }
                (None, None) => {
                    leg.pull_input(now_us, &mut self.frame);
                    if let Some((samples, end)) = leg.record_frame(&self.frame) {
                        self.events.push_back(Event::Recorded {
                            leg: *id,
                            samples,
                            end,
                        });
                    }
                }
            }
        }
        // 2. Mix.
        for (rid, room) in self.rooms.iter_mut() {
            room.mix();
            while let Some(ev) = room.poll_event() {
                self.events.push_back(match ev {
                    MixerEvent::TalkStarted(m) => Event::Talking {
                        leg: leg_of(m),
                        talking: true,
                    },
                    MixerEvent::TalkStopped(m) => Event::Talking {
                        leg: leg_of(m),
                        talking: false,
                    },
                    MixerEvent::ActiveSpeaker(m) => Event::ActiveSpeaker {
                        room: *rid,
                        leg: m.map(leg_of),
                    },
                });
            }
        }
        // 3. Output: what each leg hears, plus what it is played, encoded.
        let mut ids: Vec<LegId> = self.legs.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(leg) = self.legs.get_mut(&id) else {
                continue;
            };
            match (leg.room.and_then(|r| self.rooms.get(&r)), &leg.echo) {
                (Some(room), _) => self.frame.copy_from_slice(room.output(id)),
                (None, Some(echo)) => self.frame.copy_from_slice(&echo[..]),
                (None, None) => self.frame.fill(0),
            }
            for tag in leg.mix_sounds(&mut self.frame) {
                self.events.push_back(Event::Played { leg: id, tag });
            }
            let start = self.out.len();
            if leg.send(&self.frame, &mut self.out) {
                self.queued.push_back((id, start, self.out.len() - start));
            } else {
                self.out.truncate(start);
            }
        }
    }

    /// The next packet to send: its leg and length, copied into `buf`.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<(LegId, usize)> {
        loop {
            let (leg, start, len) = self.queued.pop_front()?;
            if let (Some(src), Some(dst)) = (self.out.get(start..start + len), buf.get_mut(..len)) {
                dst.copy_from_slice(src);
                return Some((leg, len));
            }
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

fn member_of(leg: LegId) -> MemberId {
    MemberId(u64::from(leg.0))
}

fn leg_of(m: MemberId) -> LegId {
    LegId(m.0 as u32)
}

#[cfg(test)]
mod tests;
