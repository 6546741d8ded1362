//! Just enough WAV for prompts: read 16-bit PCM (espeak-ng's stream, operators' recordings),
//! write mono 16-bit PCM with a fixed 44-byte header.

use crate::PromptError;

/// Mono 16-bit audio at some rate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pcm {
    /// Samples per second.
    pub rate_hz: u32,
    /// The samples.
    pub samples: Vec<i16>,
}

impl Pcm {
    /// Length in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        if self.rate_hz == 0 {
            return 0;
        }
        self.samples.len() as u64 * 1000 / u64::from(self.rate_hz)
    }

    /// Root-mean-square level as a fraction of full scale (0.0 for silence).
    pub fn rms(&self) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let sum: f64 = self.samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (sum / self.samples.len() as f64).sqrt() / 32768.0
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses a RIFF/WAVE file of 16-bit PCM, 1 or 2 channels (stereo is averaged to mono).
/// A `data` size larger than the bytes present is taken as "to the end": espeak-ng writes
/// its stream header before it knows the length.
pub fn parse(what: &str, bytes: &[u8]) -> Result<Pcm, PromptError> {
    let bad = |why: &str| PromptError::BadWav {
        what: what.to_string(),
        why: why.to_string(),
    };
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("no RIFF/WAVE header"));
    }
    let mut at = 12;
    let mut format: Option<(u16, u16, u32, u16)> = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32_at(bytes, at + 4).ok_or_else(|| bad("truncated chunk header"))? as usize;
        let body = at + 8;
        if id == b"fmt " {
            let tag = u16_at(bytes, body).ok_or_else(|| bad("truncated fmt chunk"))?;
            let channels = u16_at(bytes, body + 2).ok_or_else(|| bad("truncated fmt chunk"))?;
            let rate = u32_at(bytes, body + 4).ok_or_else(|| bad("truncated fmt chunk"))?;
            let bits = u16_at(bytes, body + 14).ok_or_else(|| bad("truncated fmt chunk"))?;
            format = Some((tag, channels, rate, bits));
        } else if id == b"data" {
            let (tag, channels, rate, bits) = format.ok_or_else(|| bad("data before fmt"))?;
            // 1 = PCM, 0xFFFE = WAVE_FORMAT_EXTENSIBLE (its sub-format is PCM at 16 bits).
            if !(tag == 1 || tag == 0xFFFE) || bits != 16 {
                return Err(bad(&format!(
                    "format {tag:#x} at {bits} bits (need 16-bit PCM)"
                )));
            }
            if !(channels == 1 || channels == 2) {
                return Err(bad(&format!("{channels} channels (need mono or stereo)")));
            }
            if !(4000..=192_000).contains(&rate) {
                return Err(bad(&format!("sample rate {rate} Hz")));
            }
            let end = body.saturating_add(size).min(bytes.len());
            let data = &bytes[body..end];
            let frame = 2 * usize::from(channels);
            let samples = data
                .chunks_exact(frame)
                .map(|f| {
                    let l = i32::from(i16::from_le_bytes([f[0], f[1]]));
                    if channels == 2 {
                        let r = i32::from(i16::from_le_bytes([f[2], f[3]]));
                        ((l + r) / 2) as i16
                    } else {
                        l as i16
                    }
                })
                .collect();
            return Ok(Pcm {
                rate_hz: rate,
                samples,
            });
        }
        // Chunks are padded to an even size.
        at = body.saturating_add(size).saturating_add(size & 1);
    }
    Err(bad("no data chunk"))
}

/// Encodes mono 16-bit PCM as a canonical 44-byte-header WAV. The bytes depend on the
/// samples and rate only, which keeps builds reproducible.
pub fn encode(pcm: &Pcm) -> Vec<u8> {
    let data_len = (pcm.samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + pcm.samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&pcm.rate_hz.to_le_bytes());
    out.extend_from_slice(&(pcm.rate_hz * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in &pcm.samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_streaming_sizes() {
        let pcm = Pcm {
            rate_hz: 8000,
            samples: vec![0, 1, -1, i16::MAX, i16::MIN],
        };
        let bytes = encode(&pcm);
        assert_eq!(bytes.len(), 44 + 10);
        assert_eq!(parse("t", &bytes).unwrap(), pcm);
        // espeak-ng's stream header: sizes 0x7ffff024 / 0x7ffff000.
        let mut stream = bytes.clone();
        stream[4..8].copy_from_slice(&0x7fff_f024u32.to_le_bytes());
        stream[40..44].copy_from_slice(&0x7fff_f000u32.to_le_bytes());
        assert_eq!(parse("t", &stream).unwrap(), pcm);
    }

    #[test]
    fn stereo_is_averaged_and_bad_files_are_named() {
        let mut bytes = encode(&Pcm {
            rate_hz: 16000,
            samples: vec![100, 300, -50, -150],
        });
        bytes[22] = 2; // channels
        let pcm = parse("t", &bytes).unwrap();
        assert_eq!(pcm.samples, vec![200, -100]);
        bytes[34] = 8; // bits per sample
        let err = parse("greeting.wav", &bytes).unwrap_err().to_string();
        assert!(err.starts_with("greeting.wav is not a WAV file"), "{err}");
        assert!(err.contains("8 bits"), "{err}");
        assert!(parse("x", b"RIFF....AVI ").is_err());
    }
}
