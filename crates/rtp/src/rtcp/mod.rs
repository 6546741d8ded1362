//! RTCP (RFC 3550 §6): compound packets parsed into [`RtcpPacket`]s and built back, with the
//! feedback messages of RFC 4585 (generic NACK, PLI) and RFC 5104 (FIR), and REMB.
//!
//! [`parse_compound`] walks the length words of a compound packet; each sub-packet's length is
//! checked against the buffer before it is read. Packet types this crate does not interpret
//! (APP, XR, unknown feedback formats) come back as [`RtcpPacket::Other`] so a forwarder can
//! pass them on untouched.

mod feedback;
mod stats;

pub use feedback::{Fir, FirEntry, Nack, Pli, Remb};
pub use stats::{ReceiverStats, SenderStats};

use thiserror::Error;

pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;
pub const PT_APP: u8 = 204;
/// Transport-layer feedback (RFC 4585 §6.2): FMT 1 is generic NACK.
pub const PT_RTPFB: u8 = 205;
/// Payload-specific feedback (RFC 4585 §6.3): FMT 1 PLI, FMT 4 FIR (RFC 5104), FMT 15 REMB.
pub const PT_PSFB: u8 = 206;

/// SDES item type of the canonical name (RFC 3550 §6.5.1).
pub const SDES_CNAME: u8 = 1;

/// What is wrong with an RTCP packet, or with one to build.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtcpError {
    #[error("RTCP {what} too short: {needed} bytes needed, {got} present")]
    TooShort {
        what: &'static str,
        needed: usize,
        got: usize,
    },
    #[error("RTCP version is {0}, only version 2 exists")]
    BadVersion(u8),
    #[error("RTCP padding count {0} is zero or larger than the packet")]
    BadPadding(usize),
    #[error("RTCP {what}: {count} items exceed the 5-bit count field (at most 31)")]
    TooMany { what: &'static str, count: usize },
    #[error("RTCP SDES item of type {kind} is {len} bytes; at most 255 fit")]
    SdesItemTooLong { kind: u8, len: usize },
    #[error("RTCP BYE reason is {0} bytes; at most 255 fit")]
    ByeReasonTooLong(usize),
    #[error("RTCP packet body of {0} bytes is not a multiple of 4")]
    Unaligned(usize),
    #[error("RTCP packet of {0} bytes exceeds the 16-bit length field")]
    TooLong(usize),
    #[error("RTCP {what} field value {value} does not fit on the wire")]
    OutOfRange { what: &'static str, value: u64 },
}

/// Sender information of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// 64-bit NTP timestamp (seconds since 1900 in the high word, fraction in the low).
    pub ntp_timestamp: u64,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

impl SenderInfo {
    /// The middle 32 bits of the NTP timestamp: what a receiver echoes as LSR.
    pub fn ntp_middle(&self) -> u32 {
        (self.ntp_timestamp >> 16) as u32
    }
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost: a signed 24-bit value (duplicates can make it negative).
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from this source, or 0.
    pub last_sr: u32,
    /// Delay since that SR in units of 1/65536 s, or 0.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    /// Round-trip time from a report about our stream (RFC 3550 §6.4.1: A − LSR − DLSR),
    /// `arrival` being the middle 32 bits of our NTP clock when the report arrived. `None`
    /// when the peer has not had an SR from us yet, or the result would be negative.
    pub fn round_trip(&self, arrival: u32) -> Option<std::time::Duration> {
        if self.last_sr == 0 {
            return None;
        }
        let units =
            i64::from(arrival.wrapping_sub(self.last_sr)) - i64::from(self.delay_since_last_sr);
        // Units are 1/65536 s; a wrap beyond 2^31 units (9 hours) is nonsense too.
        if !(0..=i64::from(i32::MAX)).contains(&units) {
            return None;
        }
        Some(std::time::Duration::from_micros(
            units as u64 * 1_000_000 / 65536,
        ))
    }
}

/// A sender report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderReport {
    pub ssrc: u32,
    pub info: SenderInfo,
    pub reports: Vec<ReportBlock>,
}

/// A receiver report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverReport {
    pub ssrc: u32,
    pub reports: Vec<ReportBlock>,
}

/// One SDES item (type and raw text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesItem<'a> {
    pub kind: u8,
    pub text: &'a [u8],
}

/// The SDES items describing one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesChunk<'a> {
    pub ssrc: u32,
    pub items: Vec<SdesItem<'a>>,
}

impl<'a> SdesChunk<'a> {
    /// A chunk carrying only a CNAME, which is what every compound packet must have.
    pub fn cname(ssrc: u32, cname: &'a [u8]) -> Self {
        SdesChunk {
            ssrc,
            items: vec![SdesItem {
                kind: SDES_CNAME,
                text: cname,
            }],
        }
    }

    pub fn cname_text(&self) -> Option<&'a [u8]> {
        self.items
            .iter()
            .find(|i| i.kind == SDES_CNAME)
            .map(|i| i.text)
    }
}

/// A BYE: the sources leaving and an optional reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bye<'a> {
    pub sources: Vec<u32>,
    pub reason: Option<&'a [u8]>,
}

/// One packet of a compound RTCP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    SenderReport(SenderReport),
    ReceiverReport(ReceiverReport),
    Sdes(Vec<SdesChunk<'a>>),
    Bye(Bye<'a>),
    Nack(Nack),
    Pli(Pli),
    Fir(Fir),
    Remb(Remb),
    /// APP, XR, or a feedback format not interpreted here; `raw` is the whole sub-packet as
    /// received (header and any padding included) so it can be forwarded as is.
    Other {
        packet_type: u8,
        count: u8,
        raw: &'a [u8],
    },
}

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn need(what: &'static str, needed: usize, got: usize) -> Result<(), RtcpError> {
    if got < needed {
        Err(RtcpError::TooShort { what, needed, got })
    } else {
        Ok(())
    }
}

/// Iterates the packets of a compound RTCP packet. After the first error it yields nothing
/// more: a broken length word leaves no way to find the next packet.
#[derive(Debug, Clone)]
pub struct Compound<'a> {
    rest: &'a [u8],
}

/// Parses a compound RTCP packet lazily.
pub fn parse_compound(buf: &[u8]) -> Compound<'_> {
    Compound { rest: buf }
}

impl<'a> Iterator for Compound<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let result = split_one(self.rest);
        match result {
            Ok(split) => {
                self.rest = split.rest;
                Some(parse_one(split.full, split.unpadded))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

// Cuts the next sub-packet off the front of `buf`: as sent, without padding, and the rest.
struct Split<'a> {
    full: &'a [u8],
    unpadded: &'a [u8],
    rest: &'a [u8],
}

fn split_one(buf: &[u8]) -> Result<Split<'_>, RtcpError> {
    need("header", 4, buf.len())?;
    let version = buf[0] >> 6;
    if version != 2 {
        return Err(RtcpError::BadVersion(version));
    }
    let len = 4 * (usize::from(be16(buf, 2)) + 1);
    need("packet (length word)", len, buf.len())?;
    let (full, rest) = buf.split_at(len);
    let mut packet = full;
    if buf[0] & 0x20 != 0 {
        let count = usize::from(packet[len - 1]);
        if count == 0 || count > len - 4 {
            return Err(RtcpError::BadPadding(count));
        }
        packet = &packet[..len - count];
    }
    Ok(Split {
        full,
        unpadded: packet,
        rest,
    })
}

fn report_block(b: &[u8]) -> ReportBlock {
    // Sign-extend the 24-bit cumulative loss.
    let cumulative_lost = (be32(b, 4) << 8) as i32 >> 8;
    ReportBlock {
        ssrc: be32(b, 0),
        fraction_lost: b[4],
        cumulative_lost,
        highest_seq: be32(b, 8),
        jitter: be32(b, 12),
        last_sr: be32(b, 16),
        delay_since_last_sr: be32(b, 20),
    }
}

fn report_blocks(body: &[u8], count: usize) -> Result<Vec<ReportBlock>, RtcpError> {
    need("report blocks", 24 * count, body.len())?;
    Ok(body
        .chunks_exact(24)
        .take(count)
        .map(report_block)
        .collect())
}

fn parse_one<'a>(full: &'a [u8], p: &'a [u8]) -> Result<RtcpPacket<'a>, RtcpError> {
    let count = p[0] & 0x1f;
    let pt = p[1];
    let body = &p[4..];
    Ok(match pt {
        PT_SR => {
            need("SR", 24, body.len())?;
            let info = SenderInfo {
                ntp_timestamp: u64::from(be32(body, 4)) << 32 | u64::from(be32(body, 8)),
                rtp_timestamp: be32(body, 12),
                packet_count: be32(body, 16),
                octet_count: be32(body, 20),
            };
            RtcpPacket::SenderReport(SenderReport {
                ssrc: be32(body, 0),
                info,
                reports: report_blocks(&body[24..], count.into())?,
            })
        }
        PT_RR => {
            need("RR", 4, body.len())?;
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: be32(body, 0),
                reports: report_blocks(&body[4..], count.into())?,
            })
        }
        PT_SDES => RtcpPacket::Sdes(parse_sdes(body, count.into())?),
        PT_BYE => {
            let n = usize::from(count);
            need("BYE", 4 * n, body.len())?;
            let sources = body[..4 * n].chunks_exact(4).map(|c| be32(c, 0)).collect();
            let rest = &body[4 * n..];
            let reason = match rest.split_first() {
                Some((&len, text)) => {
                    need("BYE reason", usize::from(len), text.len())?;
                    Some(&text[..usize::from(len)])
                }
                None => None,
            };
            RtcpPacket::Bye(Bye { sources, reason })
        }
        PT_RTPFB if count == feedback::FMT_NACK => RtcpPacket::Nack(Nack::parse(body)?),
        PT_PSFB if count == feedback::FMT_PLI => RtcpPacket::Pli(Pli::parse(body)?),
        PT_PSFB if count == feedback::FMT_FIR => RtcpPacket::Fir(Fir::parse(body)?),
        PT_PSFB if count == feedback::FMT_AFB && Remb::is_remb(body) => {
            RtcpPacket::Remb(Remb::parse(body)?)
        }
        _ => RtcpPacket::Other {
            packet_type: pt,
            count,
            raw: full,
        },
    })
}

fn parse_sdes(body: &[u8], count: usize) -> Result<Vec<SdesChunk<'_>>, RtcpError> {
    let mut chunks = Vec::with_capacity(count.min(31));
    let mut at = 0;
    for _ in 0..count {
        need("SDES chunk", at + 4, body.len())?;
        let ssrc = be32(body, at);
        at += 4;
        let mut items = Vec::new();
        loop {
            need("SDES item", at + 1, body.len())?;
            let kind = body[at];
            if kind == 0 {
                // The null item ends the chunk, which is padded to a word boundary.
                at = (at + 4) & !3;
                break;
            }
            need("SDES item", at + 2, body.len())?;
            let len = usize::from(body[at + 1]);
            need("SDES item text", at + 2 + len, body.len())?;
            items.push(SdesItem {
                kind,
                text: &body[at + 2..at + 2 + len],
            });
            at += 2 + len;
        }
        chunks.push(SdesChunk { ssrc, items });
    }
    Ok(chunks)
}

// Writes a header, lets `body` append the rest, then fixes the length word.
pub(crate) fn write_packet(
    out: &mut Vec<u8>,
    count: usize,
    what: &'static str,
    pt: u8,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), RtcpError>,
) -> Result<(), RtcpError> {
    if count > 31 {
        return Err(RtcpError::TooMany { what, count });
    }
    let start = out.len();
    out.extend_from_slice(&[0x80 | count as u8, pt, 0, 0]);
    if let Err(e) = body(out) {
        out.truncate(start);
        return Err(e);
    }
    let len = out.len() - start;
    if len % 4 != 0 {
        out.truncate(start);
        return Err(RtcpError::Unaligned(len));
    }
    let Ok(words) = u16::try_from(len / 4 - 1) else {
        out.truncate(start);
        return Err(RtcpError::TooLong(len));
    };
    out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
    Ok(())
}

fn write_block(out: &mut Vec<u8>, b: &ReportBlock) -> Result<(), RtcpError> {
    if !(-0x80_0000..=0x7f_ffff).contains(&b.cumulative_lost) {
        return Err(RtcpError::OutOfRange {
            what: "cumulative lost",
            value: b.cumulative_lost as u64,
        });
    }
    out.extend_from_slice(&b.ssrc.to_be_bytes());
    let lost = (u32::from(b.fraction_lost) << 24) | (b.cumulative_lost as u32 & 0x00ff_ffff);
    out.extend_from_slice(&lost.to_be_bytes());
    for w in [b.highest_seq, b.jitter, b.last_sr, b.delay_since_last_sr] {
        out.extend_from_slice(&w.to_be_bytes());
    }
    Ok(())
}

impl RtcpPacket<'_> {
    /// Appends this packet to `out` (no padding). On error `out` is left as it was.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        match self {
            RtcpPacket::SenderReport(sr) => {
                write_packet(out, sr.reports.len(), "report blocks", PT_SR, |o| {
                    o.extend_from_slice(&sr.ssrc.to_be_bytes());
                    o.extend_from_slice(&sr.info.ntp_timestamp.to_be_bytes());
                    for w in [
                        sr.info.rtp_timestamp,
                        sr.info.packet_count,
                        sr.info.octet_count,
                    ] {
                        o.extend_from_slice(&w.to_be_bytes());
                    }
                    sr.reports.iter().try_for_each(|b| write_block(o, b))
                })
            }
            RtcpPacket::ReceiverReport(rr) => {
                write_packet(out, rr.reports.len(), "report blocks", PT_RR, |o| {
                    o.extend_from_slice(&rr.ssrc.to_be_bytes());
                    rr.reports.iter().try_for_each(|b| write_block(o, b))
                })
            }
            RtcpPacket::Sdes(chunks) => {
                let base = out.len();
                write_packet(out, chunks.len(), "SDES chunks", PT_SDES, |o| {
                    for c in chunks {
                        o.extend_from_slice(&c.ssrc.to_be_bytes());
                        for item in &c.items {
                            let Ok(len) = u8::try_from(item.text.len()) else {
                                return Err(RtcpError::SdesItemTooLong {
                                    kind: item.kind,
                                    len: item.text.len(),
                                });
                            };
                            o.extend_from_slice(&[item.kind, len]);
                            o.extend_from_slice(item.text);
                        }
                        // Null item(s): at least one, up to the next word boundary.
                        o.push(0);
                        while (o.len() - base) % 4 != 0 {
                            o.push(0);
                        }
                    }
                    Ok(())
                })
            }
            RtcpPacket::Bye(bye) => {
                let base = out.len();
                write_packet(out, bye.sources.len(), "BYE sources", PT_BYE, |o| {
                    for s in &bye.sources {
                        o.extend_from_slice(&s.to_be_bytes());
                    }
                    if let Some(reason) = bye.reason {
                        let Ok(len) = u8::try_from(reason.len()) else {
                            return Err(RtcpError::ByeReasonTooLong(reason.len()));
                        };
                        o.push(len);
                        o.extend_from_slice(reason);
                        while (o.len() - base) % 4 != 0 {
                            o.push(0);
                        }
                    }
                    Ok(())
                })
            }
            RtcpPacket::Nack(n) => n.write(out),
            RtcpPacket::Pli(p) => p.write(out),
            RtcpPacket::Fir(f) => f.write(out),
            RtcpPacket::Remb(r) => r.write(out),
            RtcpPacket::Other { raw, .. } => {
                out.extend_from_slice(raw);
                Ok(())
            }
        }
    }
}

/// Builds a compound packet from `packets` in order (RFC 3550 §6.1 wants an SR or RR first
/// and an SDES with CNAME; that is the caller's composition). On error `out` is unchanged.
pub fn write_compound(packets: &[RtcpPacket<'_>], out: &mut Vec<u8>) -> Result<(), RtcpError> {
    let start = out.len();
    for p in packets {
        if let Err(e) = p.write(out) {
            out.truncate(start);
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
