//! ITU-T G.722 (64 kbit/s, 16 kHz) through spandsp, the implementation Asterisk and
//! FreeSWITCH use; it follows the ITU reference code bit for bit, which a fresh implementation
//! here could not be checked against (the ITU test vectors are not at hand).
//!
//! This is the crate's only `unsafe`: four spandsp calls on a state pointer this module owns.

#![allow(unsafe_code)]

use std::os::raw::c_int;

use crate::codec::{check_frame, check_output, CodecError};

/// 64 kbit/s: one byte per two 16 kHz samples.
const RATE_BITS: c_int = 64000;

#[repr(C)]
struct EncodeState {
    _opaque: [u8; 0],
}

#[repr(C)]
struct DecodeState {
    _opaque: [u8; 0],
}

extern "C" {
    fn g722_encode_init(s: *mut EncodeState, rate: c_int, options: c_int) -> *mut EncodeState;
    fn g722_encode_free(s: *mut EncodeState) -> c_int;
    fn g722_encode(s: *mut EncodeState, out: *mut u8, amp: *const i16, len: c_int) -> c_int;
    fn g722_decode_init(s: *mut DecodeState, rate: c_int, options: c_int) -> *mut DecodeState;
    fn g722_decode_free(s: *mut DecodeState) -> c_int;
    fn g722_decode(s: *mut DecodeState, amp: *mut i16, data: *const u8, len: c_int) -> c_int;
}

/// Samples in a 20 ms frame at 16 kHz.
const FRAME: usize = 320;

/// A G.722 encoder for one stream.
pub struct G722Encoder {
    state: *mut EncodeState,
}

/// A G.722 decoder for one stream.
pub struct G722Decoder {
    state: *mut DecodeState,
}

// SAFETY: the state is a plain heap block spandsp allocated for this encoder alone; it has no
// thread affinity and is only touched through `&mut self`, so moving it between threads is
// sound. (It is not Sync: no `&self` method touches the state.)
unsafe impl Send for G722Encoder {}
// SAFETY: as for G722Encoder.
unsafe impl Send for G722Decoder {}

impl G722Encoder {
    /// A 64 kbit/s encoder taking 16 kHz samples.
    pub fn new() -> Result<G722Encoder, CodecError> {
        // SAFETY: a null state asks spandsp to allocate one; the result is checked for null.
        let state = unsafe { g722_encode_init(std::ptr::null_mut(), RATE_BITS, 0) };
        if state.is_null() {
            return Err(CodecError::G722("g722_encode_init returned no state"));
        }
        Ok(G722Encoder { state })
    }

    /// Encodes one 20 ms frame (320 samples) into 160 bytes.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        check_frame(pcm.len(), FRAME)?;
        check_output(out.len(), FRAME / 2)?;
        // SAFETY: `state` is live (freed only in Drop); spandsp reads `len` samples from
        // `amp` and writes len/2 bytes at 64 kbit/s, and both slices were checked to be
        // that long.
        let n = unsafe { g722_encode(self.state, out.as_mut_ptr(), pcm.as_ptr(), FRAME as c_int) };
        Ok(n.max(0) as usize)
    }
}

impl Drop for G722Encoder {
    fn drop(&mut self) {
        // SAFETY: the state came from g722_encode_init and is freed exactly once, here.
        unsafe {
            g722_encode_free(self.state);
        }
    }
}

impl G722Decoder {
    /// A 64 kbit/s decoder producing 16 kHz samples.
    pub fn new() -> Result<G722Decoder, CodecError> {
        // SAFETY: as in G722Encoder::new.
        let state = unsafe { g722_decode_init(std::ptr::null_mut(), RATE_BITS, 0) };
        if state.is_null() {
            return Err(CodecError::G722("g722_decode_init returned no state"));
        }
        Ok(G722Decoder { state })
    }

    /// Decodes a payload (two samples per byte) into `out`; returns the samples written.
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        check_output(out.len(), payload.len() * 2)?;
        let len = c_int::try_from(payload.len())
            .map_err(|_| CodecError::G722("payload longer than 2 GiB"))?;
        // SAFETY: `state` is live; spandsp reads `len` bytes and writes 2·len samples, and
        // `out` was checked to hold them.
        let n = unsafe { g722_decode(self.state, out.as_mut_ptr(), payload.as_ptr(), len) };
        Ok(n.max(0) as usize)
    }
}

impl Drop for G722Decoder {
    fn drop(&mut self) {
        // SAFETY: the state came from g722_decode_init and is freed exactly once, here.
        unsafe {
            g722_decode_free(self.state);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::codec::{Codec, Decoder, Encoder};
    use crate::goertzel::tests::sine;
    use crate::goertzel::{goertzel, mean_square, to_db};

    fn round_trip(freq: f64) -> Vec<i16> {
        let mut enc = Encoder::new(Codec::G722).unwrap();
        let mut dec = Decoder::new(Codec::G722).unwrap();
        let input = sine(16000, freq, 10000.0, 320 * 25);
        let mut payload = [0u8; 160];
        let mut frame = [0i16; 320];
        let mut out = Vec::new();
        for chunk in input.chunks(320) {
            assert_eq!(enc.encode(chunk, &mut payload).unwrap(), 160);
            assert_eq!(dec.decode(&payload, &mut frame).unwrap(), 320);
            out.extend_from_slice(&frame);
        }
        out
    }

    #[test]
    fn wideband_tones_survive() {
        // 6 kHz is above what G.711 can carry: it shows the upper sub-band works.
        for freq in [1000.0, 6000.0] {
            let out = round_trip(freq);
            let tail = &out[320 * 5..];
            let tone = goertzel(tail, 16000, freq);
            let snr = to_db(tone) - to_db((mean_square(tail) - tone).max(1e-12));
            assert!(snr > 25.0, "{freq} Hz: SNR {snr:.1} dB");
            assert!((to_db(tone) - to_db(0.5 * (10000.0f64 / 32768.0).powi(2))).abs() < 1.0);
        }
    }

    #[test]
    fn codec_timing_and_misuse() {
        assert_eq!(Codec::G722.frame_samples(), 320);
        // RFC 3551: G.722's RTP clock is 8000 although it samples at 16 kHz.
        assert_eq!(Codec::G722.rtp_timestamp_step(), 160);
        let mut enc = G722Encoder::new().unwrap();
        let mut out = [0u8; 160];
        assert_eq!(
            enc.encode(&[0; 160], &mut out),
            Err(CodecError::FrameSize {
                got: 160,
                want: 320
            })
        );
        let mut dec = G722Decoder::new().unwrap();
        let mut small = [0i16; 10];
        assert_eq!(
            dec.decode(&out, &mut small),
            Err(CodecError::OutputTooSmall { got: 10, want: 320 })
        );
        // Decoding is total: any bytes are valid G.722.
        let mut frame = [0i16; 320];
        assert_eq!(dec.decode(&[0xA5; 160], &mut frame).unwrap(), 320);
    }

    #[test]
    fn loss_is_concealed() {
        let mut dec = Decoder::new(Codec::G722).unwrap();
        let mut enc = Encoder::new(Codec::G722).unwrap();
        let input = sine(16000, 1000.0, 10000.0, 320 * 5);
        let mut payload = [0u8; 160];
        let mut frame = [0i16; 320];
        for chunk in input.chunks(320) {
            enc.encode(chunk, &mut payload).unwrap();
            dec.decode(&payload, &mut frame).unwrap();
        }
        assert_eq!(dec.conceal(&mut frame).unwrap(), 320);
        assert!(goertzel(&frame[..160], 16000, 1000.0) > 0.01);
    }
}
