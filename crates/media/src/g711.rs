//! ITU-T G.711 µ-law and A-law.
//!
//! Decoding is a 256-entry table (built at compile time, so there is no init step); encoding
//! finds the segment with `leading_zeros` instead of a search loop, which keeps the encoder
//! branch-light for the mixer's per-member encodes.

/// Which G.711 companding law a stream uses (PCMU = µ-law, PCMA = A-law).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Law {
    /// µ-law (PCMU, North America/Japan).
    MuLaw,
    /// A-law (PCMA, Europe/Indonesia/most of the world).
    ALaw,
}

impl Law {
    /// The code for digital silence: 0xFF (µ-law) or 0xD5 (A-law).
    pub const fn silence(self) -> u8 {
        match self {
            Law::MuLaw => 0xFF,
            Law::ALaw => 0xD5,
        }
    }

    /// Decodes one code to linear PCM.
    #[inline]
    pub fn decode(self, code: u8) -> i16 {
        match self {
            Law::MuLaw => ULAW_TABLE[code as usize],
            Law::ALaw => ALAW_TABLE[code as usize],
        }
    }

    /// Encodes one linear sample.
    #[inline]
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::MuLaw => ulaw_encode(sample),
            Law::ALaw => alaw_encode(sample),
        }
    }

    /// Encodes `pcm` into `out[..pcm.len()]`; returns the number of bytes written
    /// (`min(pcm.len(), out.len())`).
    pub fn encode_slice(self, pcm: &[i16], out: &mut [u8]) -> usize {
        let n = pcm.len().min(out.len());
        match self {
            Law::MuLaw => {
                for (o, &s) in out[..n].iter_mut().zip(pcm) {
                    *o = ulaw_encode(s);
                }
            }
            Law::ALaw => {
                for (o, &s) in out[..n].iter_mut().zip(pcm) {
                    *o = alaw_encode(s);
                }
            }
        }
        n
    }

    /// Decodes `codes` into `out[..codes.len()]`; returns the number of samples written
    /// (`min(codes.len(), out.len())`).
    pub fn decode_slice(self, codes: &[u8], out: &mut [i16]) -> usize {
        let n = codes.len().min(out.len());
        let table = match self {
            Law::MuLaw => &ULAW_TABLE,
            Law::ALaw => &ALAW_TABLE,
        };
        for (o, &c) in out[..n].iter_mut().zip(codes) {
            *o = table[c as usize];
        }
        n
    }
}

/// µ-law bias: shifts the segment boundaries so every segment has 16 equal steps.
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude that still fits segment 7 after the bias is added.
const ULAW_CLIP: i32 = 32635;

/// Encodes one sample to µ-law (G.711 Table 2a, 14-bit magnitude, inverted code).
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut x = i32::from(sample);
    let sign = if x < 0 {
        x = -x;
        0x80
    } else {
        0
    };
    x = x.min(ULAW_CLIP) + ULAW_BIAS;
    // x is in 132..=32767: its top bit sits at position 7..=14, which is the segment + 7.
    let exp = 31 - (x as u32).leading_zeros() - 7;
    let mant = ((x >> (exp + 3)) & 0x0F) as u32;
    !((sign | (exp << 4) | mant) as u8)
}

/// Decodes one µ-law code.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_TABLE[code as usize]
}

/// Encodes one sample to A-law (G.711 Table 1a, 13-bit magnitude, even bits inverted).
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    let x = i32::from(sample);
    // Negative values are one's-complemented so -1 and 0 land in the same step, as G.711 does.
    let (mag, mask) = if x >= 0 { (x, 0xD5) } else { (-x - 1, 0x55) };
    let mag = (mag >> 3) as u32; // 0..=4095
    let bits = 32 - mag.leading_zeros();
    let seg = bits.saturating_sub(5); // 0..=7
    let mant = if seg < 2 {
        (mag >> 1) & 0x0F
    } else {
        (mag >> seg) & 0x0F
    };
    (((seg << 4) | mant) as u8) ^ mask
}

/// Decodes one A-law code.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_TABLE[code as usize]
}

const fn ulaw_decode_calc(code: u8) -> i16 {
    let u = !code;
    let exp = ((u >> 4) & 0x07) as i32;
    let mant = (u & 0x0F) as i32;
    let mag = (((mant << 3) + ULAW_BIAS) << exp) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -mag as i16
    } else {
        mag as i16
    }
}

const fn alaw_decode_calc(code: u8) -> i16 {
    let a = code ^ 0x55;
    let seg = ((a & 0x70) >> 4) as i32;
    let mut t = ((a & 0x0F) as i32) << 4;
    t = match seg {
        0 => t + 8,
        1 => t + 0x108,
        _ => (t + 0x108) << (seg - 1),
    };
    if a & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_decode_calc(i as u8)
        } else {
            ulaw_decode_calc(i as u8)
        };
        i += 1;
    }
    t
}

static ULAW_TABLE: [i16; 256] = build_table(false);
static ALAW_TABLE: [i16; 256] = build_table(true);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_codes() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0); // µ-law's "negative zero"
        assert_eq!(alaw_decode(0xD5), 8); // A-law has no zero: the smallest step is ±8
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(Law::MuLaw.silence(), 0xFF);
        assert_eq!(Law::ALaw.silence(), 0xD5);
    }

    #[test]
    fn full_scale() {
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
    }

    #[test]
    fn known_vectors() {
        // Segment boundaries of G.711 Tables 1 and 2 (values in 16-bit scale).
        assert_eq!(ulaw_encode(1000), 0xCE);
        assert_eq!(ulaw_decode(0xCE), 988);
        assert_eq!(ulaw_encode(-1000), 0x4E);
        assert_eq!(alaw_encode(1000), 0xFA);
        assert_eq!(alaw_decode(0xFA), 1008);
        assert_eq!(alaw_encode(-1000), 0x7A);
        assert_eq!(alaw_decode(0x7A), -1008);
    }

    #[test]
    fn decode_encode_decode_is_identity_for_all_codes() {
        for law in [Law::MuLaw, Law::ALaw] {
            for b in 0..=255u8 {
                let d = law.decode(b);
                assert_eq!(law.decode(law.encode(d)), d, "{law:?} code {b:#04x}");
            }
        }
    }

    #[test]
    fn codes_are_monotonic_and_distinct() {
        // Every non-zero level of each law is a distinct value, so the table cannot be
        // accidentally collapsed, and decode is odd-symmetric.
        for law in [Law::MuLaw, Law::ALaw] {
            let mut vals: Vec<i16> = (0..=255u8).map(|b| law.decode(b)).collect();
            vals.sort_unstable();
            vals.dedup();
            let expected = if law == Law::MuLaw { 255 } else { 256 };
            assert_eq!(vals.len(), expected, "{law:?}");
            for b in 0..128u8 {
                assert_eq!(law.decode(b), -law.decode(b | 0x80), "{law:?} {b:#04x}");
            }
        }
    }

    #[test]
    fn quantisation_error_is_within_half_a_step() {
        for law in [Law::MuLaw, Law::ALaw] {
            for s in (-32000i32..32000).step_by(7) {
                let s = s as i16;
                let d = i32::from(law.decode(law.encode(s)));
                let err = (d - i32::from(s)).abs();
                // The largest step is 1024 (µ-law) / 1024 (A-law) in 16-bit scale.
                let bound = (i32::from(s).abs() / 16).max(16) + 8;
                assert!(err <= bound, "{law:?} {s} -> {d}");
            }
        }
    }

    #[test]
    fn slices() {
        let pcm = [0i16, 1000, -1000, i16::MAX, i16::MIN];
        let mut codes = [0u8; 5];
        assert_eq!(Law::MuLaw.encode_slice(&pcm, &mut codes), 5);
        assert_eq!(codes, [0xFF, 0xCE, 0x4E, 0x80, 0x00]);
        let mut back = [0i16; 5];
        assert_eq!(Law::MuLaw.decode_slice(&codes, &mut back), 5);
        assert_eq!(back, [0, 988, -988, 32124, -32124]);
        assert_eq!(Law::ALaw.encode_slice(&pcm, &mut codes[..3]), 3);
        assert_eq!(&codes[..3], &[0xD5, 0xFA, 0x7A]);
        // A short output truncates instead of panicking.
        assert_eq!(Law::ALaw.decode_slice(&codes, &mut back[..2]), 2);
    }
}
