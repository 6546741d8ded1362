//! Kentongan's media DSP: codecs, loss concealment, jitter buffer, conference mixer,
//! resampler, tone generator/detector and WAV files — sans-IO, per 20 ms frame.
//!
//! **Owns**: G.711 µ-law/A-law ([`g711`]), Opus over the system libopus ([`opus`]), G.722
//! through spandsp ([`g722`], the crate's only `unsafe`), the
//! [`Codec`] a call negotiated and its
//! [`Encoder`]/[`Decoder`] pair, G.711 packet-loss concealment ([`plc`]), tone power
//! measurement ([`goertzel`]), tone generation ([`tone`]: beeps, ringback, busy), 8/16/48 kHz
//! resampling ([`resample`]), WAV reading/writing and clip playback ([`wav`]), the adaptive
//! jitter buffer ([`jitter`]), the conference mixer ([`mixer`]) with per-member level and VAD
//! ([`level`]).
//!
//! **Does not**: open sockets, read clocks, spawn threads, or parse RTP/SDP. Payload types are
//! mapped to a [`Codec`] by the caller (they come from SDP, never assumed); RTP sequence
//! numbers and timestamps arrive as plain integers. Every per-frame call writes into
//! caller-owned buffers: the steady state allocates nothing.
//!
//! **Principal types**: [`Codec`], [`SampleRate`], [`Encoder`], [`Decoder`], [`g711::Law`],
//! [`ToneGenerator`], [`ToneSpec`], [`Resampler`], [`WavClip`], [`WavWriter`], [`Clip`],
//! [`Player`], [`JitterBuffer`], [`Frame`], [`Mixer`], [`MixOutput`], [`MixerEvent`].
//!
//! ```
//! use kentongan_media::{Codec, Decoder, Encoder};
//!
//! let mut enc = Encoder::new(Codec::Pcmu)?;
//! let mut dec = Decoder::new(Codec::Pcmu)?;
//! let pcm = [0i16; 160]; // one 20 ms frame at 8 kHz
//! let mut payload = [0u8; 160];
//! let n = enc.encode(&pcm, &mut payload)?;
//! assert_eq!(&payload[..n], &[0xFF; 160][..]); // µ-law silence
//! let mut out = [1i16; 160];
//! dec.decode(&payload[..n], &mut out)?;
//! assert_eq!(out, [0; 160]);
//! # Ok::<(), kentongan_media::CodecError>(())
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
