//! RTP packets (RFC 3550 §5): a borrowed view for reading, a builder for writing, and in-place
//! setters for the header fields a relay or rewriter changes.
//!
//! [`RtpPacket::parse`] checks every length field against the buffer before slicing, so a
//! packet that lies about its CSRC count, extension length or padding is an [`RtpError`],
//! never a panic or an out-of-bounds read.

mod ext;
mod seq;

pub use ext::{ExtElement, ExtElements, ExtensionBuilder, ExtensionKind};
pub use seq::{SeqNo, SeqTracker, SeqUpdate};

use thiserror::Error;

/// The only RTP version there is (RFC 3550 §5.1).
pub const RTP_VERSION: u8 = 2;
/// Fixed header size before CSRCs.
pub const FIXED_HEADER_LEN: usize = 12;

/// What is wrong with bytes that were meant to be an RTP packet, or with a packet to build.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtpError {
    #[error("RTP packet too short: {needed} bytes needed for {what}, {got} present")]
    TooShort {
        what: &'static str,
        needed: usize,
        got: usize,
    },
    #[error("RTP version is {0}, only version 2 exists (is this STUN, DTLS or RTCP?)")]
    BadVersion(u8),
    #[error("RTP padding count {count} does not fit the {available} bytes after the header")]
    BadPadding { count: usize, available: usize },
    #[error("RTP padding count must be 1..=255 when the padding bit is set, got 0")]
    ZeroPadding,
    #[error("RTP packet has {0} CSRCs; at most 15 fit the 4-bit CC field")]
    TooManyCsrcs(usize),
    #[error("RTP payload type {0} does not fit 7 bits (0..=127)")]
    PayloadTypeRange(u8),
    #[error(
        "RTP header extension data is {0} bytes; it must be a multiple of 4 and at most 262140"
    )]
    ExtensionLength(usize),
    #[error("buffer of {got} bytes cannot hold the {needed}-byte packet")]
    BufferTooSmall { needed: usize, got: usize },
    #[error("RTP header extension element {id} is invalid: {why}")]
    BadExtensionElement { id: u8, why: &'static str },
}

/// The header fields of an RTP packet that a sender chooses per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtpHeader {
    pub marker: bool,
    /// 7 bits.
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// A header extension (RFC 3550 §5.3.1): the 16-bit profile word and its data (a multiple of
/// four bytes). [`Extension::elements`] reads RFC 8285 elements out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    pub profile: u16,
    pub data: &'a [u8],
}

/// A parsed RTP packet borrowing the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub header: RtpHeader,
    csrcs: &'a [u8],
    pub extension: Option<Extension<'a>>,
    pub payload: &'a [u8],
    /// Number of padding bytes at the end (0 when the P bit is clear), including the count byte.
    pub padding: u8,
}

fn need(what: &'static str, needed: usize, got: usize) -> Result<(), RtpError> {
    if got < needed {
        Err(RtpError::TooShort { what, needed, got })
    } else {
        Ok(())
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<'a> RtpPacket<'a> {
    /// Parses `buf` as one RTP packet. Only the lengths are validated; the payload type is not
    /// checked against any profile.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        let mut packet = RtpPacket::parse_without_padding(buf)?;
        if buf[0] & 0x20 != 0 {
            let at = packet.header_len();
            let end = buf.len();
            let count = usize::from(buf[end - 1]);
            if count == 0 {
                return Err(RtpError::ZeroPadding);
            }
            if count > end - at {
                return Err(RtpError::BadPadding {
                    count,
                    available: end - at,
                });
            }
            packet.payload = &buf[at..end - count];
            packet.padding = buf[end - 1];
        }
        Ok(packet)
    }

    /// Parses the header, CSRCs and extension but takes everything after them as payload,
    /// padding included, without reading the padding count. SRTP needs this: there the
    /// padding is encrypted, so its count byte is ciphertext until the packet is decrypted.
    pub fn parse_without_padding(buf: &'a [u8]) -> Result<Self, RtpError> {
        need("the fixed header", FIXED_HEADER_LEN, buf.len())?;
        let version = buf[0] >> 6;
        if version != RTP_VERSION {
            return Err(RtpError::BadVersion(version));
        }
        let has_extension = buf[0] & 0x10 != 0;
        let cc = usize::from(buf[0] & 0x0f);
        let header = RtpHeader {
            marker: buf[1] & 0x80 != 0,
            payload_type: buf[1] & 0x7f,
            sequence: be16(buf, 2),
            timestamp: be32(buf, 4),
            ssrc: be32(buf, 8),
        };
        let mut at = FIXED_HEADER_LEN;
        need("the CSRC list", at + 4 * cc, buf.len())?;
        let csrcs = &buf[at..at + 4 * cc];
        at += 4 * cc;
        let extension = if has_extension {
            need("the header extension header", at + 4, buf.len())?;
            let profile = be16(buf, at);
            let len = 4 * usize::from(be16(buf, at + 2));
            at += 4;
            need("the header extension data", at + len, buf.len())?;
            let data = &buf[at..at + len];
            at += len;
            Some(Extension { profile, data })
        } else {
            None
        };
        Ok(RtpPacket {
            header,
            csrcs,
            extension,
            payload: &buf[at..],
            padding: 0,
        })
    }

    /// The contributing sources, in order.
    pub fn csrcs(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        self.csrcs.chunks_exact(4).map(|c| be32(c, 0))
    }

    pub fn csrc_count(&self) -> usize {
        self.csrcs.len() / 4
    }

    /// Total size of the header, CSRCs and extension: where the payload starts.
    pub fn header_len(&self) -> usize {
        FIXED_HEADER_LEN + self.csrcs.len() + self.extension.map_or(0, |e| 4 + e.data.len())
    }
}

impl<'a> Extension<'a> {
    /// The RFC 8285 form of this extension, when the profile word names one.
    pub fn kind(&self) -> Option<ExtensionKind> {
        ExtensionKind::from_profile(self.profile)
    }

    /// Iterates RFC 8285 elements; `None` when the profile is not a one-/two-byte form.
    pub fn elements(&self) -> Option<ExtElements<'a>> {
        self.kind().map(|k| ExtElements::new(k, self.data))
    }
}

/// Writes an RTP packet. Borrowing everything keeps building allocation-free when the caller
/// reuses its output buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpBuilder<'a> {
    pub header: RtpHeader,
    pub csrcs: &'a [u32],
    pub extension: Option<Extension<'a>>,
    pub payload: &'a [u8],
    /// Padding bytes to append (0 for none); the last one carries the count.
    pub padding: u8,
}

impl<'a> RtpBuilder<'a> {
    pub fn new(header: RtpHeader, payload: &'a [u8]) -> Self {
        RtpBuilder {
            header,
            csrcs: &[],
            extension: None,
            payload,
            padding: 0,
        }
    }

    fn check(&self) -> Result<(), RtpError> {
        if self.csrcs.len() > 15 {
            return Err(RtpError::TooManyCsrcs(self.csrcs.len()));
        }
        if self.header.payload_type > 127 {
            return Err(RtpError::PayloadTypeRange(self.header.payload_type));
        }
        if let Some(e) = self.extension {
            if e.data.len() % 4 != 0 || e.data.len() > 4 * usize::from(u16::MAX) {
                return Err(RtpError::ExtensionLength(e.data.len()));
            }
        }
        Ok(())
    }

    /// The size of the packet this builder writes.
    pub fn wire_len(&self) -> usize {
        FIXED_HEADER_LEN
            + 4 * self.csrcs.len()
            + self.extension.map_or(0, |e| 4 + e.data.len())
            + self.payload.len()
            + usize::from(self.padding)
    }

    /// Appends the packet to `out`.
    pub fn write_vec(&self, out: &mut Vec<u8>) -> Result<(), RtpError> {
        self.check()?;
        let start = out.len();
        out.resize(start + self.wire_len(), 0);
        self.write_unchecked(&mut out[start..]);
        Ok(())
    }

    /// Writes the packet at the start of `out`, returning its length.
    pub fn write_slice(&self, out: &mut [u8]) -> Result<usize, RtpError> {
        self.check()?;
        let len = self.wire_len();
        if out.len() < len {
            return Err(RtpError::BufferTooSmall {
                needed: len,
                got: out.len(),
            });
        }
        self.write_unchecked(&mut out[..len]);
        Ok(len)
    }

    // `out` is exactly `self.wire_len()` bytes and `check` has passed.
    fn write_unchecked(&self, out: &mut [u8]) {
        let h = &self.header;
        out[0] = (RTP_VERSION << 6)
            | if self.padding > 0 { 0x20 } else { 0 }
            | if self.extension.is_some() { 0x10 } else { 0 }
            | self.csrcs.len() as u8;
        out[1] = (u8::from(h.marker) << 7) | h.payload_type;
        out[2..4].copy_from_slice(&h.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&h.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&h.ssrc.to_be_bytes());
        let mut at = FIXED_HEADER_LEN;
        for c in self.csrcs {
            out[at..at + 4].copy_from_slice(&c.to_be_bytes());
            at += 4;
        }
        if let Some(e) = self.extension {
            out[at..at + 2].copy_from_slice(&e.profile.to_be_bytes());
            out[at + 2..at + 4].copy_from_slice(&((e.data.len() / 4) as u16).to_be_bytes());
            at += 4;
            out[at..at + e.data.len()].copy_from_slice(e.data);
            at += e.data.len();
        }
        out[at..at + self.payload.len()].copy_from_slice(self.payload);
        at += self.payload.len();
        if self.padding > 0 {
            let end = at + usize::from(self.padding);
            out[at..end].fill(0);
            out[end - 1] = self.padding;
        }
    }
}

/// In-place header edits on a packet that [`RtpPacket::parse`] accepted (or at least holds the
/// 12-byte fixed header): what a rewriter does to a forwarded packet without copying it.
/// Each returns `false`, changing nothing, when `buf` is shorter than the fixed header.
pub mod edit {
    use super::FIXED_HEADER_LEN;

    pub fn set_marker(buf: &mut [u8], marker: bool) -> bool {
        if buf.len() < FIXED_HEADER_LEN {
            return false;
        }
        buf[1] = (buf[1] & 0x7f) | (u8::from(marker) << 7);
        true
    }

    pub fn set_payload_type(buf: &mut [u8], pt: u8) -> bool {
        if buf.len() < FIXED_HEADER_LEN || pt > 127 {
            return false;
        }
        buf[1] = (buf[1] & 0x80) | pt;
        true
    }

    pub fn set_sequence(buf: &mut [u8], seq: u16) -> bool {
        if buf.len() < FIXED_HEADER_LEN {
            return false;
        }
        buf[2..4].copy_from_slice(&seq.to_be_bytes());
        true
    }

    pub fn set_timestamp(buf: &mut [u8], ts: u32) -> bool {
        if buf.len() < FIXED_HEADER_LEN {
            return false;
        }
        buf[4..8].copy_from_slice(&ts.to_be_bytes());
        true
    }

    pub fn set_ssrc(buf: &mut [u8], ssrc: u32) -> bool {
        if buf.len() < FIXED_HEADER_LEN {
            return false;
        }
        buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
        true
    }
}

/// RFC 5761 §4 demultiplexing of RTP and RTCP on one port: the second byte of RTCP is a packet
/// type 192..=223, which read as marker + payload type is PT 64..=95, a range RTP must not use
/// when muxing. Needs at least two bytes; shorter input is neither.
pub fn is_rtcp(first_bytes: &[u8]) -> bool {
    first_bytes.len() >= 2 && (64..=95).contains(&(first_bytes[1] & 0x7f))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_a_plain_pcmu_packet() {
        let mut b = vec![
            0x80, 0x00, 0x12, 0x34, 0, 0, 0x01, 0x40, 0xde, 0xad, 0xbe, 0xef,
        ];
        b.extend_from_slice(&[0xff; 160]);
        let p = RtpPacket::parse(&b).unwrap();
        assert_eq!(
            p.header,
            RtpHeader {
                marker: false,
                payload_type: 0,
                sequence: 0x1234,
                timestamp: 320,
                ssrc: 0xdead_beef
            }
        );
        assert_eq!(p.payload.len(), 160);
        assert_eq!(p.csrc_count(), 0);
        assert_eq!(p.header_len(), 12);
        assert!(p.extension.is_none());
    }

    #[test]
    fn parses_csrcs_extension_padding_and_marker() {
        let b = [
            0xb2, 0xe0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, // V=2 P X CC=2, M, PT 96
            0, 0, 0, 10, 0, 0, 0, 11, // CSRCs
            0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0, // one-byte ext: id 1 len 1
            9, 8, 7, // payload
            0, 0, 3, // padding
        ];
        let p = RtpPacket::parse(&b).unwrap();
        assert!(p.header.marker);
        assert_eq!(p.header.payload_type, 96);
        assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![10, 11]);
        let e = p.extension.unwrap();
        assert_eq!(e.kind(), Some(ExtensionKind::OneByte));
        let els: Vec<_> = e.elements().unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(
            els,
            vec![ExtElement {
                id: 1,
                data: &[0xaa]
            }]
        );
        assert_eq!(p.payload, &[9, 8, 7]);
        assert_eq!(p.padding, 3);
    }

    #[test]
    fn rejects_lies_about_lengths() {
        let base = [0x80u8, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        assert!(matches!(
            RtpPacket::parse(&base[..11]),
            Err(RtpError::TooShort { .. })
        ));
        let mut v = base;
        v[0] = 0x40;
        assert_eq!(RtpPacket::parse(&v), Err(RtpError::BadVersion(1)));
        let mut v = base;
        v[0] = 0x81;
        assert!(matches!(
            RtpPacket::parse(&v),
            Err(RtpError::TooShort {
                what: "the CSRC list",
                ..
            })
        ));
        let mut v = base.to_vec();
        v[0] = 0x90;
        v.extend_from_slice(&[0xbe, 0xde, 0, 2, 0, 0, 0, 0]);
        assert!(matches!(
            RtpPacket::parse(&v),
            Err(RtpError::TooShort {
                what: "the header extension data",
                ..
            })
        ));
        let mut v = base.to_vec();
        v[0] = 0xa0;
        v.extend_from_slice(&[1, 2, 9]);
        assert_eq!(
            RtpPacket::parse(&v),
            Err(RtpError::BadPadding {
                count: 9,
                available: 3
            })
        );
        let mut v = base.to_vec();
        v[0] = 0xa0;
        v.push(0);
        assert_eq!(RtpPacket::parse(&v), Err(RtpError::ZeroPadding));
    }

    #[test]
    fn builder_rejects_what_the_wire_cannot_carry() {
        let h = RtpHeader {
            payload_type: 128,
            ..Default::default()
        };
        assert_eq!(
            RtpBuilder::new(h, &[]).write_vec(&mut Vec::new()),
            Err(RtpError::PayloadTypeRange(128))
        );
        let csrcs = [0u32; 16];
        let b = RtpBuilder {
            csrcs: &csrcs,
            ..RtpBuilder::new(RtpHeader::default(), &[])
        };
        assert_eq!(
            b.write_vec(&mut Vec::new()),
            Err(RtpError::TooManyCsrcs(16))
        );
        let b = RtpBuilder {
            extension: Some(Extension {
                profile: 0xbede,
                data: &[1, 2, 3],
            }),
            ..RtpBuilder::new(RtpHeader::default(), &[])
        };
        assert_eq!(
            b.write_vec(&mut Vec::new()),
            Err(RtpError::ExtensionLength(3))
        );
        let mut small = [0u8; 11];
        assert_eq!(
            RtpBuilder::new(RtpHeader::default(), &[]).write_slice(&mut small),
            Err(RtpError::BufferTooSmall {
                needed: 12,
                got: 11
            })
        );
    }

    #[test]
    fn edits_change_only_their_field() {
        let mut v = Vec::new();
        RtpBuilder::new(
            RtpHeader {
                marker: false,
                payload_type: 8,
                sequence: 1,
                timestamp: 2,
                ssrc: 3,
            },
            b"abc",
        )
        .write_vec(&mut v)
        .unwrap();
        assert!(edit::set_marker(&mut v, true));
        assert!(edit::set_payload_type(&mut v, 0));
        assert!(edit::set_sequence(&mut v, 0xfffe));
        assert!(edit::set_timestamp(&mut v, 0xffff_0000));
        assert!(edit::set_ssrc(&mut v, 0x1234_5678));
        let p = RtpPacket::parse(&v).unwrap();
        assert_eq!(
            p.header,
            RtpHeader {
                marker: true,
                payload_type: 0,
                sequence: 0xfffe,
                timestamp: 0xffff_0000,
                ssrc: 0x1234_5678
            }
        );
        assert_eq!(p.payload, b"abc");
        assert!(!edit::set_ssrc(&mut [0u8; 11], 1));
        assert!(!edit::set_payload_type(&mut v, 200));
    }

    #[test]
    fn rtcp_demux_follows_rfc5761() {
        assert!(is_rtcp(&[0x80, 200])); // SR
        assert!(is_rtcp(&[0x81, 201])); // RR
        assert!(is_rtcp(&[0x81, 206])); // PSFB
        assert!(!is_rtcp(&[0x80, 0])); // PCMU
        assert!(!is_rtcp(&[0x80, 0x80 | 96])); // marker + PT 96
        assert!(!is_rtcp(&[0x80, 0x80 | 111]));
        assert!(!is_rtcp(&[0x80]));
    }

    type Parts = (RtpHeader, Vec<u32>, Option<(u16, Vec<u8>)>, Vec<u8>, u8);

    fn arb_builder_parts() -> impl Strategy<Value = Parts> {
        (
            (
                any::<bool>(),
                0u8..128,
                any::<u16>(),
                any::<u32>(),
                any::<u32>(),
            ),
            proptest::collection::vec(any::<u32>(), 0..16),
            proptest::option::of((
                any::<u16>(),
                proptest::collection::vec(any::<[u8; 4]>(), 0..8),
            )),
            proptest::collection::vec(any::<u8>(), 0..300),
            any::<u8>(),
        )
            .prop_map(|((m, pt, seq, ts, ssrc), csrcs, ext, payload, pad)| {
                let header = RtpHeader {
                    marker: m,
                    payload_type: pt,
                    sequence: seq,
                    timestamp: ts,
                    ssrc,
                };
                let ext = ext.map(|(p, words)| (p, words.concat()));
                (header, csrcs, ext, payload, pad)
            })
    }

    proptest! {
        #[test]
        fn parse_inverts_build((header, csrcs, ext, payload, padding) in arb_builder_parts()) {
            let b = RtpBuilder {
                header,
                csrcs: &csrcs,
                extension: ext.as_ref().map(|(p, d)| Extension { profile: *p, data: d }),
                payload: &payload,
                padding,
            };
            let mut v = vec![0xaa];
            b.write_vec(&mut v).unwrap();
            prop_assert_eq!(v.len(), 1 + b.wire_len());
            let mut s = vec![0u8; b.wire_len() + 5];
            prop_assert_eq!(b.write_slice(&mut s).unwrap(), b.wire_len());
            prop_assert_eq!(&s[..b.wire_len()], &v[1..]);
            let p = RtpPacket::parse(&v[1..]).unwrap();
            prop_assert_eq!(p.header, header);
            prop_assert_eq!(p.csrcs().collect::<Vec<_>>(), csrcs.clone());
            prop_assert_eq!(p.extension, b.extension);
            prop_assert_eq!(p.payload, &payload[..]);
            prop_assert_eq!(p.padding, padding);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(p) = RtpPacket::parse(&bytes) {
                prop_assert!(p.header_len() + p.payload.len() + usize::from(p.padding) == bytes.len());
                if let Some(els) = p.extension.and_then(|e| e.elements()) {
                    for e in els { let _ = e; }
                }
            }
            let _ = is_rtcp(&bytes);
        }
    }
}
