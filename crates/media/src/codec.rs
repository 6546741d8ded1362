//! The codec a call negotiated, and one encoder/decoder pair per codec behind two enums.
//!
//! The engine maps SDP payload types to a [`Codec`] itself (payload numbers are negotiated,
//! never assumed); this module only knows codecs. Both halves work on caller-owned buffers so
//! a 20 ms tick allocates nothing.

use crate::g711::Law;
use crate::plc::Concealer;

/// PCM sample rates the crate handles (all mono).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SampleRate {
    /// 8 kHz narrowband (G.711).
    Hz8000,
    /// 16 kHz wideband (G.722, Opus WB).
    Hz16000,
    /// 48 kHz fullband (Opus FB).
    Hz48000,
}

impl SampleRate {
    /// Samples per second.
    pub const fn hz(self) -> u32 {
        match self {
            SampleRate::Hz8000 => 8000,
            SampleRate::Hz16000 => 16000,
            SampleRate::Hz48000 => 48000,
        }
    }

    /// Samples in one 20 ms frame (160, 320 or 960).
    pub const fn frame_samples(self) -> usize {
        (self.hz() / 50) as usize
    }

    /// The rate for a sample count per second, if the crate supports it.
    pub const fn from_hz(hz: u32) -> Option<SampleRate> {
        match hz {
            8000 => Some(SampleRate::Hz8000),
            16000 => Some(SampleRate::Hz16000),
            48000 => Some(SampleRate::Hz48000),
            _ => None,
        }
    }
}

/// Opus settings for one stream (RFC 7587). The RTP clock is always 48 kHz; `rate` is the
/// PCM rate the engine wants in and out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpusConfig {
    /// PCM rate fed to the encoder and produced by the decoder.
    pub rate: SampleRate,
    /// Target bitrate in bit/s (e.g. 24,000 for wideband voice).
    pub bitrate: u32,
    /// In-band forward error correction (`useinbandfec=1` in SDP).
    pub fec: bool,
    /// Expected packet loss in percent, tunes how much FEC the encoder spends.
    pub loss_percent: u8,
}

impl OpusConfig {
    /// Voice defaults for a rate: 12/24/32 kbit/s, FEC on at 10 % expected loss. (FEC takes
    /// its share of the bitrate: at 20 kbit/s wideband a 1 kHz tone drops to 15 dB SNR.)
    pub const fn voice(rate: SampleRate) -> OpusConfig {
        OpusConfig {
            rate,
            bitrate: match rate {
                SampleRate::Hz8000 => 12_000,
                SampleRate::Hz16000 => 24_000,
                SampleRate::Hz48000 => 32_000,
            },
            fec: true,
            loss_percent: 10,
        }
    }
}

/// A negotiated audio codec, 20 ms frames, mono.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law (SDP `PCMU/8000`).
    Pcmu,
    /// G.711 A-law (SDP `PCMA/8000`).
    Pcma,
    /// Opus (SDP `opus/48000/2`).
    Opus(OpusConfig),
    /// G.722 at 64 kbit/s (SDP `G722/8000`: the RTP clock is 8 kHz, the audio 16 kHz).
    G722,
}

impl Codec {
    /// PCM rate of the decoded audio.
    pub const fn sample_rate(self) -> SampleRate {
        match self {
            Codec::Pcmu | Codec::Pcma => SampleRate::Hz8000,
            Codec::Opus(c) => c.rate,
            Codec::G722 => SampleRate::Hz16000,
        }
    }

    /// PCM samples in a 20 ms frame.
    pub const fn frame_samples(self) -> usize {
        self.sample_rate().frame_samples()
    }

    /// RTP clock rate (RFC 3551 / RFC 7587): Opus always counts at 48 kHz, G.722 at 8 kHz
    /// (an RFC 1890 mistake kept for compatibility).
    pub const fn rtp_clock_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::G722 => 8000,
            Codec::Opus(_) => 48000,
        }
    }

    /// RTP timestamp increment of one 20 ms frame.
    pub const fn rtp_timestamp_step(self) -> u32 {
        self.rtp_clock_rate() / 50
    }

    /// Upper bound of one encoded 20 ms frame, for sizing output buffers.
    pub const fn max_payload_bytes(self) -> usize {
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::G722 => 160,
            // RFC 6716 caps a frame at 1275 bytes.
            Codec::Opus(_) => 1275,
        }
    }

    /// Two codecs share an encoded stream when their output bytes would be identical.
    pub fn shares_encoding_with(self, other: Codec) -> bool {
        self == other
    }

    /// The G.711 law, for the G.711 codecs.
    pub const fn g711_law(self) -> Option<Law> {
        match self {
            Codec::Pcmu => Some(Law::MuLaw),
            Codec::Pcma => Some(Law::ALaw),
            Codec::Opus(_) | Codec::G722 => None,
        }
    }
}

/// What went wrong in an encode or decode call.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    /// The PCM frame is not the codec's 20 ms size.
    #[error("PCM frame has {got} samples, the codec takes {want} (20 ms): pass whole frames")]
    FrameSize {
        /// Samples passed.
        got: usize,
        /// Samples the codec needs.
        want: usize,
    },
    /// libopus refused the call.
    #[error("libopus {call} failed: {reason}")]
    Opus {
        /// The libopus function or ctl.
        call: &'static str,
        /// libopus' description of the error.
        reason: String,
    },
    /// spandsp failed (G.722).
    #[error("G.722: {0}")]
    G722(&'static str),
    /// The output buffer is too small.
    #[error("output buffer holds {got}, need {want}: size it with Codec::max_payload_bytes / frame_samples")]
    OutputTooSmall {
        /// Capacity passed.
        got: usize,
        /// Capacity needed.
        want: usize,
    },
}

/// Encodes 20 ms PCM frames for one codec.
pub enum Encoder {
    /// G.711 (either law).
    G711(Law),
    /// libopus.
    Opus(crate::opus::OpusEncoder),
    /// spandsp G.722.
    G722(crate::g722::G722Encoder),
}

impl Encoder {
    /// An encoder for `codec`.
    pub fn new(codec: Codec) -> Result<Encoder, CodecError> {
        Ok(match codec {
            Codec::Pcmu => Encoder::G711(Law::MuLaw),
            Codec::Pcma => Encoder::G711(Law::ALaw),
            Codec::Opus(cfg) => Encoder::Opus(crate::opus::OpusEncoder::new(cfg)?),
            Codec::G722 => Encoder::G722(crate::g722::G722Encoder::new()?),
        })
    }

    /// Encodes one 20 ms frame into `out`; returns the payload length.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        match self {
            Encoder::G711(law) => {
                check_frame(pcm.len(), 160)?;
                if out.len() < 160 {
                    return Err(CodecError::OutputTooSmall {
                        got: out.len(),
                        want: 160,
                    });
                }
                Ok(law.encode_slice(pcm, out))
            }
            Encoder::Opus(e) => e.encode(pcm, out),
            Encoder::G722(e) => e.encode(pcm, out),
        }
    }
}

/// Decodes payloads of one codec to 20 ms PCM frames, and conceals lost frames.
pub enum Decoder {
    /// G.711 with repeat-and-fade concealment.
    G711 {
        /// The law.
        law: Law,
        /// Loss concealment state (last good frame).
        plc: Concealer,
    },
    /// libopus (its own PLC and FEC).
    Opus(crate::opus::OpusDecoder),
    /// spandsp G.722 with repeat-and-fade concealment.
    G722 {
        /// The decoder.
        dec: crate::g722::G722Decoder,
        /// Loss concealment state (last good frame, 16 kHz).
        plc: Concealer,
    },
}

impl Decoder {
    /// A decoder for `codec`.
    pub fn new(codec: Codec) -> Result<Decoder, CodecError> {
        Ok(match codec {
            Codec::Pcmu => Decoder::G711 {
                law: Law::MuLaw,
                plc: Concealer::new(160),
            },
            Codec::Pcma => Decoder::G711 {
                law: Law::ALaw,
                plc: Concealer::new(160),
            },
            Codec::Opus(cfg) => Decoder::Opus(crate::opus::OpusDecoder::new(cfg)?),
            Codec::G722 => Decoder::G722 {
                dec: crate::g722::G722Decoder::new()?,
                plc: Concealer::new(320),
            },
        })
    }

    /// Decodes one payload into `out`; returns the samples written. A G.711 payload of any
    /// length up to `out.len()` decodes; the engine feeds 20 ms ones.
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        match self {
            Decoder::G711 { law, plc } => {
                if out.len() < payload.len() {
                    return Err(CodecError::OutputTooSmall {
                        got: out.len(),
                        want: payload.len(),
                    });
                }
                let n = law.decode_slice(payload, out);
                plc.good_frame(&mut out[..n]);
                Ok(n)
            }
            Decoder::Opus(d) => d.decode(payload, out),
            Decoder::G722 { dec, plc } => {
                let n = dec.decode(payload, out)?;
                plc.good_frame(&mut out[..n]);
                Ok(n)
            }
        }
    }

    /// Produces a replacement for one lost 20 ms frame into `out`.
    pub fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        match self {
            Decoder::G711 { plc, .. } => {
                check_output(out.len(), 160)?;
                plc.conceal(&mut out[..160]);
                Ok(160)
            }
            Decoder::Opus(d) => d.conceal(out),
            Decoder::G722 { plc, .. } => {
                check_output(out.len(), 320)?;
                plc.conceal(&mut out[..320]);
                Ok(320)
            }
        }
    }

    /// Recovers a lost frame from the redundancy carried in the *next* packet (Opus in-band
    /// FEC, see [`crate::jitter::Frame::Lost`]); codecs without FEC conceal instead.
    pub fn decode_fec(
        &mut self,
        next_payload: &[u8],
        out: &mut [i16],
    ) -> Result<usize, CodecError> {
        match self {
            Decoder::G711 { .. } | Decoder::G722 { .. } => self.conceal(out),
            Decoder::Opus(d) => d.decode_fec(next_payload, out),
        }
    }
}

pub(crate) fn check_frame(got: usize, want: usize) -> Result<(), CodecError> {
    if got == want {
        Ok(())
    } else {
        Err(CodecError::FrameSize { got, want })
    }
}

pub(crate) fn check_output(got: usize, want: usize) -> Result<(), CodecError> {
    if got >= want {
        Ok(())
    } else {
        Err(CodecError::OutputTooSmall { got, want })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn codec_timing() {
        assert_eq!(Codec::Pcmu.frame_samples(), 160);
        assert_eq!(Codec::Pcma.rtp_timestamp_step(), 160);
        let wb = Codec::Opus(OpusConfig::voice(SampleRate::Hz16000));
        assert_eq!(wb.frame_samples(), 320);
        assert_eq!(wb.rtp_clock_rate(), 48000);
        assert_eq!(wb.rtp_timestamp_step(), 960);
        assert_eq!(SampleRate::from_hz(48000), Some(SampleRate::Hz48000));
        assert_eq!(SampleRate::from_hz(44100), None);
        assert!(!Codec::Pcmu.shares_encoding_with(Codec::Pcma));
    }

    #[test]
    fn g711_round_trip_through_the_enums() {
        let mut enc = Encoder::new(Codec::Pcma).unwrap();
        let mut dec = Decoder::new(Codec::Pcma).unwrap();
        let pcm: Vec<i16> = (0..160).map(|i| ((i as i16) - 80) * 200).collect();
        let mut payload = [0u8; 160];
        assert_eq!(enc.encode(&pcm, &mut payload).unwrap(), 160);
        let mut out = [0i16; 160];
        assert_eq!(dec.decode(&payload, &mut out).unwrap(), 160);
        for (a, b) in pcm.iter().zip(out.iter()) {
            assert!((a - b).abs() <= 256, "{a} vs {b}");
        }
        assert_eq!(
            enc.encode(&pcm[..100], &mut payload),
            Err(CodecError::FrameSize {
                got: 100,
                want: 160
            })
        );
        assert_eq!(
            dec.decode(&payload, &mut out[..10]),
            Err(CodecError::OutputTooSmall { got: 10, want: 160 })
        );
    }
}
