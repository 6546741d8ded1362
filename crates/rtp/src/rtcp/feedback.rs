//! RTCP feedback messages: generic NACK and PLI (RFC 4585 §6), FIR (RFC 5104 §4.3.1) and REMB
//! (draft-alvestrand-rmcat-remb). All share the common header of RFC 4585 §6.1: sender SSRC,
//! media source SSRC, then the FCI.

use super::{be16, be32, need, write_packet, RtcpError, PT_PSFB, PT_RTPFB};

pub(super) const FMT_NACK: u8 = 1;
pub(super) const FMT_PLI: u8 = 1;
pub(super) const FMT_FIR: u8 = 4;
pub(super) const FMT_AFB: u8 = 15;

/// Generic NACK: the media source's lost packets as (PID, BLP) pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    pub sender_ssrc: u32,
    pub media_ssrc: u32,
    /// (packet id, bitmask of the 16 following lost packets).
    pub pairs: Vec<(u16, u16)>,
}

impl Nack {
    /// Packs lost sequence numbers (in any order, duplicates allowed) into PID/BLP pairs.
    /// Ordering is by wrapping distance from the first one, so a run across 65535→0 stays
    /// in one pair.
    pub fn from_lost(sender_ssrc: u32, media_ssrc: u32, lost: &[u16]) -> Self {
        let mut pairs: Vec<(u16, u16)> = Vec::new();
        let Some(&first) = lost.first() else {
            return Nack {
                sender_ssrc,
                media_ssrc,
                pairs,
            };
        };
        let mut sorted: Vec<u16> = lost.to_vec();
        sorted.sort_by_key(|s| s.wrapping_sub(first) as i16);
        sorted.dedup();
        for seq in sorted {
            match pairs.last_mut() {
                Some((pid, blp)) if (1..=16).contains(&seq.wrapping_sub(*pid)) => {
                    *blp |= 1 << (seq.wrapping_sub(*pid) - 1);
                }
                _ => pairs.push((seq, 0)),
            }
        }
        Nack {
            sender_ssrc,
            media_ssrc,
            pairs,
        }
    }

    /// Every sequence number this NACK reports lost, in wire order.
    pub fn lost(&self) -> impl Iterator<Item = u16> + '_ {
        self.pairs.iter().flat_map(|&(pid, blp)| {
            std::iter::once(pid).chain(
                (0..16)
                    .filter(move |bit| blp & (1 << bit) != 0)
                    .map(move |bit| pid.wrapping_add(bit + 1)),
            )
        })
    }

    pub(super) fn parse(body: &[u8]) -> Result<Self, RtcpError> {
        need("NACK", 8, body.len())?;
        let pairs = body[8..]
            .chunks_exact(4)
            .map(|c| (be16(c, 0), be16(c, 2)))
            .collect();
        Ok(Nack {
            sender_ssrc: be32(body, 0),
            media_ssrc: be32(body, 4),
            pairs,
        })
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        write_packet(out, FMT_NACK.into(), "FMT", PT_RTPFB, |o| {
            o.extend_from_slice(&self.sender_ssrc.to_be_bytes());
            o.extend_from_slice(&self.media_ssrc.to_be_bytes());
            for (pid, blp) in &self.pairs {
                o.extend_from_slice(&pid.to_be_bytes());
                o.extend_from_slice(&blp.to_be_bytes());
            }
            Ok(())
        })
    }
}

/// Picture Loss Indication: "send me a keyframe" (RFC 4585 §6.3.1), no FCI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pli {
    pub sender_ssrc: u32,
    pub media_ssrc: u32,
}

impl Pli {
    pub(super) fn parse(body: &[u8]) -> Result<Self, RtcpError> {
        need("PLI", 8, body.len())?;
        Ok(Pli {
            sender_ssrc: be32(body, 0),
            media_ssrc: be32(body, 4),
        })
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        write_packet(out, FMT_PLI.into(), "FMT", PT_PSFB, |o| {
            o.extend_from_slice(&self.sender_ssrc.to_be_bytes());
            o.extend_from_slice(&self.media_ssrc.to_be_bytes());
            Ok(())
        })
    }
}

/// One FIR request: the source asked for a decoder refresh, and the request's sequence
/// number (incremented per new request, so a repeat is recognisable; RFC 5104 §4.3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirEntry {
    pub ssrc: u32,
    pub seq: u8,
}

/// Full Intra Request (RFC 5104 §4.3.1). The media source field of the common header is 0;
/// the targets are in the entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fir {
    pub sender_ssrc: u32,
    pub entries: Vec<FirEntry>,
}

impl Fir {
    pub(super) fn parse(body: &[u8]) -> Result<Self, RtcpError> {
        need("FIR", 8, body.len())?;
        let entries = body[8..]
            .chunks_exact(8)
            .map(|c| FirEntry {
                ssrc: be32(c, 0),
                seq: c[4],
            })
            .collect();
        Ok(Fir {
            sender_ssrc: be32(body, 0),
            entries,
        })
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        write_packet(out, FMT_FIR.into(), "FMT", PT_PSFB, |o| {
            o.extend_from_slice(&self.sender_ssrc.to_be_bytes());
            o.extend_from_slice(&0u32.to_be_bytes());
            for e in &self.entries {
                o.extend_from_slice(&e.ssrc.to_be_bytes());
                o.extend_from_slice(&[e.seq, 0, 0, 0]);
            }
            Ok(())
        })
    }
}

/// Receiver Estimated Maximum Bitrate: an application-layer feedback (PSFB FMT 15) with the
/// "REMB" identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remb {
    pub sender_ssrc: u32,
    /// Bits per second. On the wire it is an 18-bit mantissa and 6-bit exponent, so a value
    /// that needs more precision is rounded down when written.
    pub bitrate: u64,
    pub ssrcs: Vec<u32>,
}

impl Remb {
    pub(super) fn is_remb(body: &[u8]) -> bool {
        body.len() >= 12 && &body[8..12] == b"REMB"
    }

    pub(super) fn parse(body: &[u8]) -> Result<Self, RtcpError> {
        need("REMB", 16, body.len())?;
        let n = usize::from(body[12]);
        let exp = body[13] >> 2;
        let mantissa = (u64::from(body[13] & 3) << 16) | u64::from(be16(body, 14));
        need("REMB SSRC list", 16 + 4 * n, body.len())?;
        let ssrcs = body[16..16 + 4 * n]
            .chunks_exact(4)
            .map(|c| be32(c, 0))
            .collect();
        Ok(Remb {
            sender_ssrc: be32(body, 0),
            // 18 bits shifted by up to 63 can exceed 64 bits: saturate rather than wrap.
            bitrate: u64::try_from(u128::from(mantissa) << exp).unwrap_or(u64::MAX),
            ssrcs,
        })
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        let Ok(n) = u8::try_from(self.ssrcs.len()) else {
            return Err(RtcpError::OutOfRange {
                what: "REMB SSRC count",
                value: self.ssrcs.len() as u64,
            });
        };
        let mut mantissa = self.bitrate;
        let mut exp = 0u8;
        while mantissa >= 1 << 18 {
            mantissa >>= 1;
            exp += 1;
        }
        // A u64 needs at most 46 shifts to fit 18 bits, within the 6-bit exponent.
        write_packet(out, FMT_AFB.into(), "FMT", PT_PSFB, |o| {
            o.extend_from_slice(&self.sender_ssrc.to_be_bytes());
            o.extend_from_slice(&0u32.to_be_bytes());
            o.extend_from_slice(b"REMB");
            o.extend_from_slice(&[n, (exp << 2) | (mantissa >> 16) as u8]);
            o.extend_from_slice(&(mantissa as u16).to_be_bytes());
            for s in &self.ssrcs {
                o.extend_from_slice(&s.to_be_bytes());
            }
            Ok(())
        })
    }
}
