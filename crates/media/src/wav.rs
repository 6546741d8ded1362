//! RIFF/WAVE files: a reader for PCM16 and G.711 WAVs, a streaming PCM16 writer for
//! recordings, and a [`Player`] that feeds a clip to the engine in 20 ms frames.
//!
//! The reader parses bytes the caller loaded (the crate touches no files); the writer writes
//! into any `Write + Seek` and patches the RIFF and data sizes when finished, so a recording
//! is a valid WAV only after [`WavWriter::finish`].

use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;

use crate::codec::SampleRate;
use crate::g711::Law;
use crate::resample::Resampler;

/// Why a WAV could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// Not a RIFF/WAVE file at all.
    #[error("not a WAV file: {0}")]
    NotWav(&'static str),
    /// A chunk runs past the end of the data.
    #[error("WAV is truncated: the {0} chunk is cut short")]
    Truncated(&'static str),
    /// No `fmt ` chunk before the `data` chunk.
    #[error("WAV has no fmt chunk before its data chunk")]
    MissingFormat,
    /// No `data` chunk.
    #[error("WAV has no data chunk")]
    MissingData,
    /// A sample encoding other than PCM16, µ-law or A-law.
    #[error("WAV encoding {tag:#06x} with {bits} bits per sample is not supported: convert it to 16-bit PCM (sox in.wav -b 16 -e signed out.wav)")]
    UnsupportedEncoding {
        /// WAVE format tag.
        tag: u16,
        /// Bits per sample.
        bits: u16,
    },
    /// A sample rate other than 8, 16 or 48 kHz.
    #[error("WAV sample rate {0} Hz is not supported: use 8000, 16000 or 48000 (sox in.wav -r 8000 out.wav)")]
    UnsupportedRate(u32),
    /// More than two channels.
    #[error("WAV has {0} channels: only mono and stereo are supported (sox in.wav -c 1 out.wav)")]
    UnsupportedChannels(u16),
    /// The recording outgrew the 4 GiB RIFF limit.
    #[error("WAV data would exceed 4 GiB: start a new file")]
    TooLong,
    /// Writing failed.
    #[error("writing the WAV failed: {0}")]
    Io(#[from] std::io::Error),
}

/// How the samples in a WAV's data chunk were stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WavEncoding {
    /// Signed 16-bit little-endian PCM (format 1).
    Pcm16,
    /// 8-bit G.711 (format 7 µ-law, format 6 A-law).
    G711(Law),
}

/// A decoded WAV: interleaved 16-bit samples.
#[derive(Clone, Debug, PartialEq)]
pub struct WavClip {
    /// Sample rate.
    pub rate: SampleRate,
    /// 1 (mono) or 2 (stereo).
    pub channels: u16,
    /// How the file stored its samples.
    pub encoding: WavEncoding,
    /// Interleaved samples (`frames × channels`).
    pub samples: Vec<i16>,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl WavClip {
    /// Parses a whole WAV file held in memory.
    pub fn parse(bytes: &[u8]) -> Result<WavClip, WavError> {
        if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return Err(WavError::NotWav("it does not start with RIFF....WAVE"));
        }
        let mut at = 12;
        let mut format: Option<(WavEncoding, u16, SampleRate)> = None;
        while at + 8 <= bytes.len() {
            let id = &bytes[at..at + 4];
            let size = u32_at(bytes, at + 4) as usize;
            let body = at + 8;
            if id == b"fmt " {
                if size < 16 || body + 16 > bytes.len() {
                    return Err(WavError::Truncated("fmt"));
                }
                let mut tag = u16_at(bytes, body);
                let channels = u16_at(bytes, body + 2);
                let rate = u32_at(bytes, body + 4);
                let bits = u16_at(bytes, body + 14);
                if tag == 0xFFFE {
                    // WAVE_FORMAT_EXTENSIBLE: the real tag opens the sub-format GUID.
                    if size < 40 || body + 26 > bytes.len() {
                        return Err(WavError::Truncated("fmt"));
                    }
                    tag = u16_at(bytes, body + 24);
                }
                let encoding = match (tag, bits) {
                    (1, 16) => WavEncoding::Pcm16,
                    (7, 8) => WavEncoding::G711(Law::MuLaw),
                    (6, 8) => WavEncoding::G711(Law::ALaw),
                    _ => return Err(WavError::UnsupportedEncoding { tag, bits }),
                };
                if channels == 0 || channels > 2 {
                    return Err(WavError::UnsupportedChannels(channels));
                }
                let rate = SampleRate::from_hz(rate).ok_or(WavError::UnsupportedRate(rate))?;
                format = Some((encoding, channels, rate));
            } else if id == b"data" {
                let (encoding, channels, rate) = format.ok_or(WavError::MissingFormat)?;
                // Streaming writers leave the size at 0 or 0xFFFFFFFF: take what is there.
                let end = if size == 0 || body + size > bytes.len() {
                    bytes.len()
                } else {
                    body + size
                };
                let data = &bytes[body..end];
                let samples = match encoding {
                    WavEncoding::Pcm16 => data
                        .chunks_exact(2)
                        .map(|c| i16::from_le_bytes([c[0], c[1]]))
                        .collect(),
                    WavEncoding::G711(law) => data.iter().map(|&c| law.decode(c)).collect(),
                };
                let mut samples: Vec<i16> = samples;
                samples.truncate(samples.len() / channels as usize * channels as usize);
                return Ok(WavClip {
                    rate,
                    channels,
                    encoding,
                    samples,
                });
            }
            // Chunks are padded to an even length.
            at = body.saturating_add(size).saturating_add(size & 1);
        }
        Err(if format.is_some() {
            WavError::MissingData
        } else {
            WavError::MissingFormat
        })
    }

    /// The clip as mono: stereo channels are averaged.
    pub fn to_mono(&self) -> Vec<i16> {
        match self.channels {
            2 => self
                .samples
                .chunks_exact(2)
                .map(|c| ((i32::from(c[0]) + i32::from(c[1])) / 2) as i16)
                .collect(),
            _ => self.samples.clone(),
        }
    }

    /// Duration in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        let frames = self.samples.len() as u64 / u64::from(self.channels.max(1));
        frames * 1000 / u64::from(self.rate.hz())
    }
}

/// Streams 16-bit PCM into a WAV; the sizes are patched by [`WavWriter::finish`].
pub struct WavWriter<W: Write + Seek> {
    out: W,
    start: u64,
    data_bytes: u64,
}

const HEADER_LEN: u64 = 44;

impl<W: Write + Seek> WavWriter<W> {
    /// Writes a PCM16 header for `rate` and `channels` (1 or 2) at the writer's position.
    pub fn new(mut out: W, rate: SampleRate, channels: u16) -> Result<WavWriter<W>, WavError> {
        if channels == 0 || channels > 2 {
            return Err(WavError::UnsupportedChannels(channels));
        }
        let start = out.stream_position()?;
        let mut h = [0u8; HEADER_LEN as usize];
        h[0..4].copy_from_slice(b"RIFF");
        h[8..12].copy_from_slice(b"WAVE");
        h[12..16].copy_from_slice(b"fmt ");
        h[16..20].copy_from_slice(&16u32.to_le_bytes());
        h[20..22].copy_from_slice(&1u16.to_le_bytes());
        h[22..24].copy_from_slice(&channels.to_le_bytes());
        h[24..28].copy_from_slice(&rate.hz().to_le_bytes());
        h[28..32].copy_from_slice(&(rate.hz() * 2 * u32::from(channels)).to_le_bytes());
        h[32..34].copy_from_slice(&(2 * channels).to_le_bytes());
        h[34..36].copy_from_slice(&16u16.to_le_bytes());
        h[36..40].copy_from_slice(b"data");
        // Sizes stay 0 until finish(); a reader of an unfinished file takes all the data.
        out.write_all(&h)?;
        Ok(WavWriter {
            out,
            start,
            data_bytes: 0,
        })
    }

    /// Appends interleaved samples.
    pub fn write_samples(&mut self, samples: &[i16]) -> Result<(), WavError> {
        let bytes = samples.len() as u64 * 2;
        if self.data_bytes + bytes + HEADER_LEN - 8 > u64::from(u32::MAX) {
            return Err(WavError::TooLong);
        }
        // Converted through a stack buffer: no allocation per frame.
        let mut buf = [0u8; 1024];
        for chunk in samples.chunks(buf.len() / 2) {
            for (b, s) in buf.chunks_exact_mut(2).zip(chunk) {
                b.copy_from_slice(&s.to_le_bytes());
            }
            self.out.write_all(&buf[..chunk.len() * 2])?;
        }
        self.data_bytes += bytes;
        Ok(())
    }

    /// Bytes of sample data written so far.
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// Patches the RIFF and data sizes, leaves the writer after the data, and returns it.
    pub fn finish(mut self) -> Result<W, WavError> {
        let riff = (self.data_bytes + HEADER_LEN - 8) as u32;
        let data = self.data_bytes as u32;
        let end = self.out.stream_position()?;
        self.out.seek(SeekFrom::Start(self.start + 4))?;
        self.out.write_all(&riff.to_le_bytes())?;
        self.out.seek(SeekFrom::Start(self.start + 40))?;
        self.out.write_all(&data.to_le_bytes())?;
        self.out.seek(SeekFrom::Start(end))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Mono audio prepared at the engine's rate, shared cheaply between players (one copy of a
/// prompt or music-on-hold file serves every caller).
#[derive(Clone, Debug, PartialEq)]
pub struct Clip {
    rate: SampleRate,
    samples: Arc<[i16]>,
}

impl Clip {
    /// Mono samples already at `rate`.
    pub fn from_samples(rate: SampleRate, samples: Vec<i16>) -> Clip {
        Clip {
            rate,
            samples: samples.into(),
        }
    }

    /// Converts a WAV to mono at `rate`, compensating the resampler's delay so the clip
    /// starts on its first sample and keeps its length.
    pub fn from_wav(wav: &WavClip, rate: SampleRate) -> Clip {
        let mono = wav.to_mono();
        if wav.rate == rate {
            return Clip::from_samples(rate, mono);
        }
        let mut r = Resampler::new(wav.rate, rate);
        let want = (mono.len() as u64 * u64::from(rate.hz()) / u64::from(wav.rate.hz())) as usize;
        let delay = r.delay();
        // Feed the clip and enough silence to flush the filter's delay.
        let tail = (delay + 1) * wav.rate.hz() as usize / rate.hz() as usize + 1;
        let mut input = mono;
        input.resize(input.len() + tail, 0);
        let mut out = vec![0i16; r.output_len(input.len())];
        let n = r.process(&input, &mut out).unwrap_or(0);
        out.truncate(n);
        let end = (delay + want).min(out.len());
        Clip::from_samples(rate, out[delay.min(end)..end].to_vec())
    }

    /// Sample rate.
    pub fn rate(&self) -> SampleRate {
        self.rate
    }

    /// The samples.
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }
}

/// Plays a [`Clip`] one frame at a time, optionally looping.
#[derive(Clone, Debug)]
pub struct Player {
    clip: Clip,
    pos: usize,
    looping: bool,
}

impl Player {
    /// A player at the clip's start.
    pub fn new(clip: Clip, looping: bool) -> Player {
        Player {
            clip,
            pos: 0,
            looping,
        }
    }

    /// Fills `out` (normally one 20 ms frame at the clip's rate); returns the clip samples
    /// written, the rest is silence once a non-looping clip has ended.
    pub fn next_frame(&mut self, out: &mut [i16]) -> usize {
        let s = self.clip.samples();
        if s.is_empty() {
            out.fill(0);
            return 0;
        }
        let mut written = 0;
        while written < out.len() {
            if self.pos >= s.len() {
                if !self.looping {
                    break;
                }
                self.pos = 0;
            }
            let n = (s.len() - self.pos).min(out.len() - written);
            out[written..written + n].copy_from_slice(&s[self.pos..self.pos + n]);
            self.pos += n;
            written += n;
        }
        out[written..].fill(0);
        written
    }

    /// True once a non-looping clip has played to its end.
    pub fn is_finished(&self) -> bool {
        !self.looping && self.pos >= self.clip.samples().len()
    }

    /// Starts again from the beginning.
    pub fn rewind(&mut self) {
        self.pos = 0;
    }

    /// The rate the player produces.
    pub fn rate(&self) -> SampleRate {
        self.clip.rate()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::goertzel::tests::sine;
    use crate::goertzel::{goertzel, to_db};
    use std::io::Cursor;

    fn write(rate: SampleRate, channels: u16, samples: &[i16]) -> Vec<u8> {
        let mut w = WavWriter::new(Cursor::new(Vec::new()), rate, channels).unwrap();
        for chunk in samples.chunks(160) {
            w.write_samples(chunk).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn writer_header_is_exact() {
        let bytes = write(SampleRate::Hz8000, 1, &[1, -2]);
        let mut want = Vec::new();
        want.extend_from_slice(b"RIFF");
        want.extend_from_slice(&40u32.to_le_bytes());
        want.extend_from_slice(b"WAVEfmt ");
        want.extend_from_slice(&[16, 0, 0, 0, 1, 0, 1, 0]);
        want.extend_from_slice(&8000u32.to_le_bytes());
        want.extend_from_slice(&16000u32.to_le_bytes());
        want.extend_from_slice(&[2, 0, 16, 0]);
        want.extend_from_slice(b"data");
        want.extend_from_slice(&4u32.to_le_bytes());
        want.extend_from_slice(&[1, 0, 0xFE, 0xFF]);
        assert_eq!(bytes, want);
    }

    #[test]
    fn round_trip_mono_and_stereo() {
        for (rate, channels) in [
            (SampleRate::Hz8000, 1),
            (SampleRate::Hz16000, 2),
            (SampleRate::Hz48000, 1),
        ] {
            let samples: Vec<i16> = (0..2000).map(|i| (i * 37 % 65536 - 32768) as i16).collect();
            let bytes = write(rate, channels, &samples);
            let clip = WavClip::parse(&bytes).unwrap();
            assert_eq!(clip.rate, rate);
            assert_eq!(clip.channels, channels);
            assert_eq!(clip.encoding, WavEncoding::Pcm16);
            assert_eq!(clip.samples, samples);
        }
        let clip = WavClip::parse(&write(SampleRate::Hz8000, 2, &[100, 300, -5, -7])).unwrap();
        assert_eq!(clip.to_mono(), vec![200, -6]);
        assert_eq!(clip.duration_ms(), 0);
    }

    fn g711_wav(tag: u16, codes: &[u8], extra_chunk: bool) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF\0\0\0\0WAVE");
        if extra_chunk {
            b.extend_from_slice(b"LIST\x03\0\0\0abc\0"); // odd size: padded
        }
        b.extend_from_slice(b"fmt \x12\0\0\0");
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        b.extend_from_slice(&8000u32.to_le_bytes());
        b.extend_from_slice(&8000u32.to_le_bytes());
        b.extend_from_slice(&[1, 0, 8, 0, 0, 0]);
        b.extend_from_slice(b"data");
        b.extend_from_slice(&(codes.len() as u32).to_le_bytes());
        b.extend_from_slice(codes);
        b
    }

    #[test]
    fn reads_g711_wavs() {
        let clip = WavClip::parse(&g711_wav(7, &[0xFF, 0x80, 0x00], true)).unwrap();
        assert_eq!(clip.encoding, WavEncoding::G711(Law::MuLaw));
        assert_eq!(clip.samples, vec![0, 32124, -32124]);
        let clip = WavClip::parse(&g711_wav(6, &[0xD5, 0xAA], false)).unwrap();
        assert_eq!(clip.samples, vec![8, 32256]);
    }

    #[test]
    fn clear_errors() {
        assert!(matches!(
            WavClip::parse(b"OggS...."),
            Err(WavError::NotWav(_))
        ));
        let mut float = write(SampleRate::Hz8000, 1, &[0]);
        float[20] = 3; // IEEE float
        float[34] = 32;
        let e = WavClip::parse(&float).unwrap_err();
        assert!(matches!(
            e,
            WavError::UnsupportedEncoding { tag: 3, bits: 32 }
        ));
        assert!(e.to_string().contains("sox"), "{e}");
        let mut cd = write(SampleRate::Hz8000, 1, &[0]);
        cd[24..28].copy_from_slice(&44100u32.to_le_bytes());
        assert!(matches!(
            WavClip::parse(&cd),
            Err(WavError::UnsupportedRate(44100))
        ));
        let mut surround = write(SampleRate::Hz8000, 1, &[0]);
        surround[22] = 6;
        assert!(matches!(
            WavClip::parse(&surround),
            Err(WavError::UnsupportedChannels(6))
        ));
        let ok = write(SampleRate::Hz8000, 1, &[0]);
        assert!(matches!(
            WavClip::parse(&ok[..30]),
            Err(WavError::Truncated("fmt"))
        ));
        assert!(matches!(
            WavClip::parse(&ok[..36]),
            Err(WavError::MissingData)
        ));
        assert!(WavWriter::new(Cursor::new(Vec::new()), SampleRate::Hz8000, 3).is_err());
    }

    #[test]
    fn unfinished_recording_still_reads() {
        let mut w = WavWriter::new(Cursor::new(Vec::new()), SampleRate::Hz8000, 1).unwrap();
        w.write_samples(&[5, 6, 7]).unwrap();
        assert_eq!(w.data_bytes(), 6);
        // Dropped without finish(): sizes are 0, the reader takes the bytes present.
        let bytes = w.out.into_inner();
        assert_eq!(WavClip::parse(&bytes).unwrap().samples, vec![5, 6, 7]);
    }

    #[test]
    fn player_resamples_loops_and_pads() {
        let tone = sine(16000, 1000.0, 12000.0, 16000);
        let wav = WavClip::parse(&write(SampleRate::Hz16000, 1, &tone)).unwrap();
        let clip = Clip::from_wav(&wav, SampleRate::Hz8000);
        assert_eq!(clip.samples().len(), 8000);
        let p = to_db(goertzel(&clip.samples()[400..7600], 8000, 1000.0));
        let want = to_db(goertzel(&tone, 16000, 1000.0));
        assert!((p - want).abs() < 0.5, "{p} vs {want}");
        // Delay compensated: the clip starts on its first sample, rising like sin.
        assert!(clip.samples()[0].abs() < 1500 && clip.samples()[1] > 2000);

        let short = Clip::from_samples(SampleRate::Hz8000, (1..=100).collect());
        let mut once = Player::new(short.clone(), false);
        let mut frame = [9i16; 160];
        assert_eq!(once.next_frame(&mut frame), 100);
        assert_eq!(frame[99], 100);
        assert!(frame[100..].iter().all(|&s| s == 0));
        assert!(once.is_finished());
        assert_eq!(once.next_frame(&mut frame), 0);
        once.rewind();
        assert!(!once.is_finished());

        let mut looped = Player::new(short, true);
        assert_eq!(looped.next_frame(&mut frame), 160);
        assert_eq!((frame[99], frame[100], frame[159]), (100, 1, 60));
        assert_eq!(looped.next_frame(&mut frame), 160);
        assert_eq!(frame[0], 61);
        assert!(!looped.is_finished());
        assert_eq!(looped.rate(), SampleRate::Hz8000);
    }
}
