//! Kentongan's media DSP: codecs, loss concealment, jitter buffer, conference mixer,
//! resampler, tone generator/detector and WAV files — sans-IO, driven per 20 ms frame.
//!
//! **Owns**:
//! - codecs: G.711 µ-law/A-law ([`g711`]), Opus over the system libopus ([`opus`]), G.722
//!   through spandsp ([`g722`], the crate's only `unsafe`), the negotiated [`Codec`] and its
//!   [`Encoder`]/[`Decoder`] pair, repeat-and-fade concealment for G.711/G.722 ([`plc`]);
//! - the adaptive jitter buffer ([`jitter`]);
//! - the conference mixer ([`mixer`]) with per-member level and VAD ([`level`]);
//! - 8/16/48 kHz resampling ([`resample`]), tone power ([`mod@goertzel`]), tone generation
//!   ([`tone`]: beeps, ringback, busy, join/leave), WAV reading/writing and clip playback
//!   ([`wav`]); the `kentongan-tones` test tool (src/bin).
//!
//! **Does not**: open sockets or files, read clocks, spawn threads, or parse RTP/SDP. Payload
//! types are mapped to a [`Codec`] by the caller (they come from SDP, never assumed); RTP
//! sequence numbers and timestamps arrive as plain integers, time as `now_us`. Every
//! per-frame call writes into caller-owned buffers: the steady state allocates nothing.
//!
//! **Principal types**: [`Codec`], [`SampleRate`], [`Encoder`], [`Decoder`], [`g711::Law`],
//! [`JitterBuffer`], [`Frame`], [`Mixer`], [`MixOutput`], [`MixerEvent`], [`Resampler`],
//! [`ToneGenerator`], [`ToneSpec`], [`WavClip`], [`WavWriter`], [`Clip`], [`Player`].
//!
//! One member's tick, as the engine runs it:
//!
//! ```
//! use kentongan_media::{
//!     Codec, Decoder, Encoder, Frame, JitterBuffer, JitterConfig, MemberId, MemberOptions,
//!     MixOutput, Mixer, MixerConfig,
//! };
//!
//! let codec = Codec::Pcma; // from SDP
//! let mut jb = JitterBuffer::new(JitterConfig::new(codec.rtp_clock_rate()));
//! let mut dec = Decoder::new(codec)?;
//! let mut enc = Encoder::new(codec)?;
//! let mut room = Mixer::new(MixerConfig::new(codec.sample_rate()));
//! let (alice, bob) = (MemberId(1), MemberId(2));
//! room.add_member(alice, MemberOptions::default())?;
//! room.add_member(bob, MemberOptions::default())?;
//!
//! // Packets arrive (seq, ts from RTP)…
//! jb.push(0, 7, 160 * 7, &[0xD5; 160]);
//! jb.push(20_000, 8, 160 * 8, &[0xD5; 160]);
//! // …and every 20 ms each member's frame goes jitter buffer → decoder → mixer.
//! let buf = room.input_mut(alice)?;
//! match jb.pop(21_000) {
//!     Frame::Audio(payload) => dec.decode(payload, buf)?,
//!     Frame::Lost { .. } => dec.conceal(buf)?,
//!     Frame::Empty => { buf.fill(0); 0 }
//! };
//! room.mix();
//! // Silence is below the VAD gate: both hear the shared mix, encoded once.
//! assert_eq!(room.output(bob), Some(MixOutput::Shared));
//! let mut payload = [0u8; 160];
//! let n = enc.encode(room.shared_mix(), &mut payload)?;
//! assert_eq!(&payload[..n], &[0xD5; 160][..]); // A-law silence
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod codec;
pub mod g711;
pub mod g722;
pub mod goertzel;
pub mod jitter;
pub mod level;
pub mod mixer;
pub mod opus;
pub mod plc;
pub mod resample;
pub mod tone;
pub mod wav;

pub use codec::{Codec, CodecError, Decoder, Encoder, OpusConfig, SampleRate};
pub use goertzel::{detect_tones, goertzel};
pub use jitter::{Frame, JitterBuffer, JitterConfig, PushOutcome};
pub use level::{level_dbov, Vad, VadConfig};
pub use mixer::{MemberId, MemberOptions, MixOutput, Mixer, MixerConfig, MixerEvent};
pub use resample::Resampler;
pub use tone::{ToneGenerator, ToneSegment, ToneSpec};
pub use wav::{Clip, Player, WavClip, WavError, WavWriter};
