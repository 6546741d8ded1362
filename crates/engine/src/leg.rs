//! One leg: RTP in (jitter buffer, decoder, DTMF) and out (sounds, encoder, packetiser).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use kentongan_media::{
    Clip, Codec, CodecError, Decoder, Encoder, Frame, JitterBuffer, JitterConfig, OpusConfig,
    Player, SampleRate, ToneGenerator,
};
use kentongan_rtp::dtmf::DtmfReceiver;
use kentongan_rtp::rtp::{RtpBuilder, RtpHeader, RtpPacket};

use crate::{LegSpec, RecordEnd, RecordSpec, RoomId, Sound, FRAME, FRAME_SAMPLES, SILENCE_DBOV};

/// An event without its end packets is over this long after its last packet.
const DTMF_END_TIMEOUT: Duration = Duration::from_millis(300);
/// Q12 fixed point, as the mixer's gains.
const UNITY: i32 = 1 << 12;

enum Playing {
    Tone(ToneGenerator),
    Clip(Player),
    Silence { frames_left: u32 },
}

impl Playing {
    fn new(sound: Sound) -> Playing {
        match sound {
            Sound::Tone(spec) => Playing::Tone(ToneGenerator::new(spec, 8000)),
            Sound::Clip(clip) => Playing::Clip(Player::new(clip, false)),
            Sound::Loop(clip) => Playing::Clip(Player::new(clip, true)),
            Sound::Silence(d) => Playing::Silence {
                frames_left: (d.as_millis() / FRAME.as_millis()).max(1) as u32,
            },
        }
    }

    /// Adds the next frame into `out`; true when the sound has ended.
    fn add_into(&mut self, out: &mut [i16], scratch: &mut [i16]) -> bool {
        let done = match self {
            Playing::Tone(g) => {
                g.fill(scratch);
                g.is_finished()
            }
            Playing::Clip(p) => {
                p.next_frame(scratch);
                p.is_finished()
            }
            Playing::Silence { frames_left } => {
                scratch.fill(0);
                *frames_left = frames_left.saturating_sub(1);
                *frames_left == 0
            }
        };
        for (o, s) in out.iter_mut().zip(scratch.iter()) {
            *o = o.saturating_add(*s);
        }
        done
    }
}

/// Ten minutes at 8 kHz: what a recording allocates when it starts.
const PREALLOCATED_SAMPLES: usize = 10 * 60 * 8000;

/// A recording of what the leg sends, in progress.
struct Recording {
    samples: Vec<i16>,
    max_samples: usize,
    silence_frames: u32,
    /// Frames since the last one above the silence level.
    quiet: u32,
    /// Samples up to the end of the last frame above the silence level.
    voiced_len: usize,
}

pub(crate) struct Leg {
    recording: Option<Recording>,
    spec: LegSpec,
    pub(crate) room: Option<RoomId>,
    jitter: JitterBuffer,
    decoder: Decoder,
    encoder: Encoder,
    dtmf: DtmfReceiver,
    ssrc: u32,
    seq: u16,
    ts: u32,
    /// The first packet of the stream carries the marker bit.
    first: bool,
    sounds: VecDeque<(Playing, u64)>,
    listen_gain_q12: i32,
    /// An echo test: the last frame the leg sent us, which it hears back one frame later.
    pub(crate) echo: Option<Box<[i16; FRAME_SAMPLES]>>,
    payload: Vec<u8>,
    scratch: [i16; FRAME_SAMPLES],
    /// Packets dropped as not RTP or of a payload type not negotiated.
    pub(crate) dropped: u64,
}

/// The codec as the engine runs it: everything at 8 kHz.
fn at_engine_rate(codec: Codec) -> Result<Codec, String> {
    match codec {
        Codec::Pcmu | Codec::Pcma => Ok(codec),
        Codec::Opus(_) => Ok(Codec::Opus(OpusConfig::voice(SampleRate::Hz8000))),
        Codec::G722 => {
            Err("G.722 legs are not mixed by the engine; offer PCMU, PCMA or Opus".into())
        }
    }
}

impl Leg {
    pub(crate) fn new(spec: LegSpec, random: u64) -> Result<Leg, String> {
        let codec = at_engine_rate(spec.codec)?;
        let codec_error = |e: CodecError| e.to_string();
        Ok(Leg {
            recording: None,
            spec: LegSpec { codec, ..spec },
            room: None,
            jitter: JitterBuffer::new(JitterConfig::new(codec.rtp_clock_rate())),
            decoder: Decoder::new(codec).map_err(codec_error)?,
            encoder: Encoder::new(codec).map_err(codec_error)?,
            dtmf: DtmfReceiver::new(8000, DTMF_END_TIMEOUT),
            ssrc: random as u32,
            seq: (random >> 32) as u16,
            ts: (random >> 48) as u32 * 7919,
            first: true,
            sounds: VecDeque::new(),
            listen_gain_q12: UNITY,
            echo: None,
            payload: vec![0; codec.max_payload_bytes()],
            scratch: [0; FRAME_SAMPLES],
            dropped: 0,
        })
    }

    pub(crate) fn receive(&mut self, now: Instant, now_us: u64, packet: &[u8]) {
        let Ok(p) = RtpPacket::parse(packet) else {
            self.dropped += 1;
            return;
        };
        let h = p.header;
        if Some(h.payload_type) == self.spec.dtmf_payload_type {
            if self
                .dtmf
                .handle_packet(now, h.ssrc, h.timestamp, h.marker, p.payload)
                .is_err()
            {
                self.dropped += 1;
            }
        } else if h.payload_type == self.spec.payload_type {
            self.jitter.push(now_us, h.sequence, h.timestamp, p.payload);
        } else {
            self.dropped += 1;
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.dtmf.poll_timeout().is_some_and(|t| t <= now) {
            self.dtmf.handle_timeout(now);
        }
    }

    pub(crate) fn poll_digit(&mut self) -> Option<char> {
        self.dtmf.poll_digit().map(|d| d.digit)
    }

    /// This frame's received audio, decoded (concealed when lost, silence when none).
    pub(crate) fn pull_input(&mut self, now_us: u64, buf: &mut [i16]) {
        let n = match self.jitter.pop(now_us) {
            Frame::Audio(payload) => self.decoder.decode(payload, buf),
            Frame::Lost { fec: Some(next) } => self.decoder.decode_fec(next, buf),
            Frame::Lost { fec: None } => self.decoder.conceal(buf),
            Frame::Empty => Ok(0),
        };
        let n = n.unwrap_or(0).min(buf.len());
        buf[n..].fill(0);
    }

    pub(crate) fn start_recording(&mut self, spec: RecordSpec) {
        let frames = |d: Duration| (d.as_millis() / FRAME.as_millis()).max(1) as usize;
        let max_samples = frames(spec.max) * FRAME_SAMPLES;
        // Up to ten minutes is allocated here; a longer limit (a call recording) grows the
        // buffer as it fills, a handful of times an hour.
        self.recording = Some(Recording {
            samples: Vec::with_capacity(max_samples.min(PREALLOCATED_SAMPLES)),
            max_samples,
            silence_frames: frames(spec.silence) as u32,
            quiet: 0,
            voiced_len: 0,
        });
    }

    /// The samples recorded so far, ending the recording.
    pub(crate) fn take_recording(&mut self) -> Option<Vec<i16>> {
        self.recording.take().map(|r| r.samples)
    }

    /// Adds one input frame to a recording in progress; the samples and why when it ended.
    pub(crate) fn record_frame(&mut self, frame: &[i16]) -> Option<(Vec<i16>, RecordEnd)> {
        let r = self.recording.as_mut()?;
        let room = r.max_samples - r.samples.len();
        r.samples.extend_from_slice(&frame[..frame.len().min(room)]);
        if kentongan_media::level_dbov(frame) < SILENCE_DBOV {
            r.quiet = 0;
            r.voiced_len = r.samples.len();
        } else {
            r.quiet += 1;
        }
        let end = if r.quiet >= r.silence_frames {
            RecordEnd::Silence
        } else if r.samples.len() >= r.max_samples {
            RecordEnd::Limit
        } else {
            return None;
        };
        let mut r = self.recording.take()?;
        if end == RecordEnd::Silence {
            r.samples.truncate(r.voiced_len);
        }
        Some((r.samples, end))
    }

    pub(crate) fn set_listen_gain(&mut self, gain_db: f32) {
        let g = 10f32.powf(gain_db.clamp(-30.0, 12.0) / 20.0);
        self.listen_gain_q12 = (g * UNITY as f32) as i32;
    }

    pub(crate) fn queue(&mut self, sound: Sound, tag: u64) {
        self.sounds.push_back((Playing::new(sound), tag));
    }

    pub(crate) fn clear_sounds(&mut self) -> Vec<u64> {
        self.sounds.drain(..).map(|(_, tag)| tag).collect()
    }

    /// Applies the listening gain to what the leg hears and adds what it is being played;
    /// returns the tags of sounds that ended.
    pub(crate) fn mix_sounds(&mut self, frame: &mut [i16]) -> Vec<u64> {
        if self.listen_gain_q12 != UNITY {
            for s in frame.iter_mut() {
                let v = (i32::from(*s) * self.listen_gain_q12) >> 12;
                *s = v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
            }
        }
        let mut ended = Vec::new();
        if let Some((playing, tag)) = self.sounds.front_mut() {
            if playing.add_into(frame, &mut self.scratch) {
                ended.push(*tag);
                self.sounds.pop_front();
            }
        }
        ended
    }

    /// Encodes `frame` and appends one RTP packet to `out`; false if nothing could be encoded.
    pub(crate) fn send(&mut self, frame: &[i16], out: &mut Vec<u8>) -> bool {
        let Ok(n) = self.encoder.encode(frame, &mut self.payload) else {
            return false;
        };
        let header = RtpHeader {
            marker: self.first,
            payload_type: self.spec.payload_type,
            sequence: self.seq,
            timestamp: self.ts,
            ssrc: self.ssrc,
        };
        let ok = RtpBuilder::new(header, &self.payload[..n])
            .write_vec(out)
            .is_ok();
        self.first = false;
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(self.spec.codec.rtp_timestamp_step());
        ok
    }

    #[cfg(test)]
    pub(crate) fn ssrc(&self) -> u32 {
        self.ssrc
    }
}

/// A clip prepared for playing to legs.
pub fn clip_at_engine_rate(wav: &kentongan_media::WavClip) -> Clip {
    Clip::from_wav(wav, SampleRate::Hz8000)
}
