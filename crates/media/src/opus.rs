//! Opus (RFC 6716) through the system libopus, via the `opus2` bindings.
//!
//! Why `opus2`: `audiopus` is unmaintained and no longer builds, and `opus` 0.3/0.4 still sit
//! on `audiopus_sys`. `opus2` (0.4, maintained, the bindings songbird moved to) links the
//! system library through pkg-config with its `dynamic` feature, so Debian's `libopus-dev`
//! 1.3.1 is what runs, and keeps all `unsafe` inside the binding crate: this module has none.
//!
//! Mono only, 20 ms frames, 8/16/48 kHz PCM. Loss is concealed by the decoder's own PLC
//! (a NULL packet) or rebuilt from the next packet's in-band FEC.

use opus2::{Application, Bitrate, Channels};

use crate::codec::{check_frame, check_output, CodecError, OpusConfig};

fn err(call: &'static str, e: opus2::Error) -> CodecError {
    CodecError::Opus {
        call,
        reason: e.description().to_string(),
    }
}

/// An Opus encoder for one outgoing stream.
pub struct OpusEncoder {
    inner: opus2::Encoder,
    frame: usize,
}

impl OpusEncoder {
    /// A VoIP-tuned mono encoder with `cfg`'s bitrate and FEC settings.
    pub fn new(cfg: OpusConfig) -> Result<OpusEncoder, CodecError> {
        let mut inner = opus2::Encoder::new(cfg.rate.hz(), Channels::Mono, Application::Voip)
            .map_err(|e| err("opus_encoder_create", e))?;
        inner
            .set_bitrate(Bitrate::Bits(cfg.bitrate as i32))
            .map_err(|e| err("OPUS_SET_BITRATE", e))?;
        inner
            .set_inband_fec(cfg.fec)
            .map_err(|e| err("OPUS_SET_INBAND_FEC", e))?;
        inner
            .set_packet_loss_perc(i32::from(cfg.loss_percent.min(100)))
            .map_err(|e| err("OPUS_SET_PACKET_LOSS_PERC", e))?;
        Ok(OpusEncoder {
            inner,
            frame: cfg.rate.frame_samples(),
        })
    }

    /// Encodes one 20 ms frame; returns the packet length.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        check_frame(pcm.len(), self.frame)?;
        self.inner
            .encode(pcm, out)
            .map_err(|e| err("opus_encode", e))
    }

    /// Samples of look-ahead the encoder adds (the codec delay).
    pub fn lookahead(&mut self) -> Result<usize, CodecError> {
        self.inner
            .get_lookahead()
            .map(|n| n.max(0) as usize)
            .map_err(|e| err("OPUS_GET_LOOKAHEAD", e))
    }
}

/// An Opus decoder for one incoming stream.
pub struct OpusDecoder {
    inner: opus2::Decoder,
    frame: usize,
}

impl OpusDecoder {
    /// A mono decoder producing `cfg.rate` PCM.
    pub fn new(cfg: OpusConfig) -> Result<OpusDecoder, CodecError> {
        let inner = opus2::Decoder::new(cfg.rate.hz(), Channels::Mono)
            .map_err(|e| err("opus_decoder_create", e))?;
        Ok(OpusDecoder {
            inner,
            frame: cfg.rate.frame_samples(),
        })
    }

    /// Decodes one packet into `out` (at least a 20 ms frame); returns the samples written.
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        check_output(out.len(), self.frame)?;
        if payload.is_empty() {
            // An empty slice would mean "lost" to libopus; an empty payload is malformed.
            return Err(CodecError::Opus {
                call: "opus_decode",
                reason: "empty packet".to_string(),
            });
        }
        self.inner
            .decode(payload, out, false)
            .map_err(|e| err("opus_decode", e))
    }

    /// Conceals one lost 20 ms frame with libopus' PLC.
    pub fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        check_output(out.len(), self.frame)?;
        self.inner
            .decode(&[], &mut out[..self.frame], false)
            .map_err(|e| err("opus_decode(PLC)", e))
    }

    /// Rebuilds the lost frame *before* `next_payload` from its in-band FEC (falls back to
    /// PLC inside libopus when the packet carries none).
    pub fn decode_fec(
        &mut self,
        next_payload: &[u8],
        out: &mut [i16],
    ) -> Result<usize, CodecError> {
        check_output(out.len(), self.frame)?;
        if next_payload.is_empty() {
            return self.conceal(out);
        }
        self.inner
            .decode(next_payload, &mut out[..self.frame], true)
            .map_err(|e| err("opus_decode(FEC)", e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::codec::{Codec, Decoder, Encoder, SampleRate};
    use crate::goertzel::tests::sine;
    use crate::goertzel::{goertzel, mean_square, to_db};

    fn snr_db(signal: &[i16], rate: u32) -> f64 {
        let tone = goertzel(signal, rate, 1000.0);
        let rest = (mean_square(signal) - tone).max(1e-12);
        to_db(tone) - to_db(rest)
    }

    #[test]
    fn sine_survives_the_codec_at_every_rate() {
        for rate in [SampleRate::Hz8000, SampleRate::Hz16000, SampleRate::Hz48000] {
            let codec = Codec::Opus(OpusConfig::voice(rate));
            let mut enc = Encoder::new(codec).unwrap();
            let mut dec = Decoder::new(codec).unwrap();
            let n = rate.frame_samples();
            let input = sine(rate.hz(), 1000.0, 10000.0, n * 50);
            let mut packet = vec![0u8; codec.max_payload_bytes()];
            let mut decoded = Vec::new();
            let mut frame = vec![0i16; n];
            for chunk in input.chunks(n) {
                let len = enc.encode(chunk, &mut packet).unwrap();
                assert!(len > 0 && len < 200, "{rate:?}: {len} bytes");
                assert_eq!(dec.decode(&packet[..len], &mut frame).unwrap(), n);
                decoded.extend_from_slice(&frame);
            }
            // Skip the codec delay and the encoder's start-up.
            let tail = &decoded[n * 10..];
            let snr = snr_db(tail, rate.hz());
            assert!(snr > 20.0, "{rate:?}: SNR {snr:.1} dB");
            let level = to_db(goertzel(tail, rate.hz(), 1000.0));
            assert!((level - to_db(goertzel(&input, rate.hz(), 1000.0))).abs() < 3.0);
        }
    }

    #[test]
    fn plc_and_fec_fill_a_lost_frame() {
        let cfg = OpusConfig::voice(SampleRate::Hz16000);
        let mut enc = OpusEncoder::new(cfg).unwrap();
        let mut dec = OpusDecoder::new(cfg).unwrap();
        let input = sine(16000, 1000.0, 10000.0, 320 * 60);
        let packets: Vec<Vec<u8>> = input
            .chunks(320)
            .map(|c| {
                let mut p = vec![0u8; 1275];
                let n = enc.encode(c, &mut p).unwrap();
                p.truncate(n);
                p
            })
            .collect();
        let mut frame = [0i16; 320];
        let mut before = Vec::new();
        for p in &packets[..20] {
            dec.decode(p, &mut frame).unwrap();
            before.extend_from_slice(&frame);
        }
        assert!(snr_db(&before[320 * 10..], 16000) > 20.0);
        // Frame 20 lost: the decoder's PLC continues the tone.
        assert_eq!(dec.conceal(&mut frame).unwrap(), 320);
        assert!(
            goertzel(&frame, 16000, 1000.0) > 1e-3,
            "PLC output is not silence"
        );
        dec.decode(&packets[21], &mut frame).unwrap();
        // Frame 22 lost, recovered from packet 23's FEC.
        assert_eq!(dec.decode_fec(&packets[23], &mut frame).unwrap(), 320);
        // LBRR is a low-bitrate copy: the tone still dominates, at lower fidelity.
        assert!(
            snr_db(&frame, 16000) > 6.0,
            "FEC frame {:.1} dB",
            snr_db(&frame, 16000)
        );
        // SILK's predictors re-converge over ~15 frames (12 dB right after, 40 dB by 20).
        dec.decode(&packets[23], &mut frame).unwrap();
        let mut after = Vec::new();
        for p in &packets[24..60] {
            dec.decode(p, &mut frame).unwrap();
            after.extend_from_slice(&frame);
        }
        let snr = snr_db(&after[320 * 16..], 16000);
        assert!(snr > 20.0, "after recovery {snr:.1} dB");
    }

    #[test]
    fn misuse_is_an_error() {
        let cfg = OpusConfig::voice(SampleRate::Hz48000);
        let mut enc = OpusEncoder::new(cfg).unwrap();
        let mut out = [0u8; 1275];
        assert_eq!(
            enc.encode(&[0; 160], &mut out),
            Err(CodecError::FrameSize {
                got: 160,
                want: 960
            })
        );
        assert!(enc.lookahead().unwrap() > 0);
        let mut dec = OpusDecoder::new(cfg).unwrap();
        let mut small = [0i16; 100];
        assert!(matches!(
            dec.decode(&out[..3], &mut small),
            Err(CodecError::OutputTooSmall { .. })
        ));
        let mut frame = [0i16; 960];
        assert!(matches!(
            dec.decode(&[], &mut frame),
            Err(CodecError::Opus { .. })
        ));
        // A packet with an invalid TOC/length is rejected by libopus, not a panic.
        assert!(matches!(
            dec.decode(&[0xFF, 0xFF, 0xFF], &mut frame),
            Err(CodecError::Opus { .. })
        ));
    }
}
