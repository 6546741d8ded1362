//! Kentongan's RTP wire layer: pure functions and state machines, sans-IO.
//!
//! **Owns**: RTP packets (RFC 3550 §5, header extensions with RFC 8285 elements) as a
//! borrowed view and a builder ([`rtp`]), sequence arithmetic and RFC 3550 A.1 extended
//! sequence tracking, RTP/RTCP demultiplexing (RFC 5761); RTCP compound packets ([`rtcp`]:
//! SR, RR, SDES, BYE, generic NACK, PLI, FIR, REMB) and per-source receiver statistics (RFC
//! 3550 A.3 loss, A.8 jitter, LSR/DLSR); RFC 4733 DTMF events received and sent ([`dtmf`]);
//! one continuous output stream from switching sources, with feedback mapped back
//! ([`rewrite`]); SRTP/SRTCP (RFC 3711, AES_CM_128_HMAC_SHA1_80/_32) with replay protection
//! ([`srtp`]); SDP `a=crypto:` lines (RFC 4568) and key generation from caller randomness
//! ([`sdes`]).
//!
//! **Does not**: open sockets, read clocks, spawn threads or draw randomness. Time is handed
//! in by the caller; key material comes from the caller's RNG. It knows no codec: payloads are
//! bytes (the sibling crate `kentongan-media` decodes them), and it uses no other workspace
//! crate. Malformed input is an error value, never a panic.
//!
//! **Principal types**: [`rtp::RtpPacket`], [`rtp::RtpBuilder`], [`rtp::RtpHeader`],
//! [`rtp::SeqNo`], [`rtp::SeqTracker`], [`rtcp::RtcpPacket`], [`rtcp::parse_compound`],
//! [`rtcp::ReceiverStats`], [`dtmf::DtmfReceiver`], [`dtmf::DtmfSender`],
//! [`rewrite::StreamRewriter`], [`srtp::SrtpContext`], [`srtp::MasterKey`],
//! [`sdes::CryptoAttribute`].
//!
//! ```
//! use kentongan_rtp::rtp::{RtpBuilder, RtpHeader, RtpPacket, is_rtcp};
//!
//! let header = RtpHeader { marker: true, payload_type: 0, sequence: 7, timestamp: 160, ssrc: 42 };
//! let mut wire = Vec::new();
//! RtpBuilder::new(header, &[0xff; 160]).write_vec(&mut wire)?;
//! assert!(!is_rtcp(&wire));
//! let packet = RtpPacket::parse(&wire)?;
//! assert_eq!(packet.header, header);
//! assert_eq!(packet.payload.len(), 160);
//!
//! // The same packet through SRTP, keyed by an SDES line (the key's bytes come from the
//! // caller's CSPRNG; fixed here).
//! use kentongan_rtp::sdes::CryptoAttribute;
//! use kentongan_rtp::srtp::SrtpProfile;
//! let offer = CryptoAttribute::generate(1, SrtpProfile::AesCm128HmacSha1_80, [7; 30]);
//! let answer_side = CryptoAttribute::parse(&format!("a=crypto:{offer}"))?;
//! let (mut tx, mut rx) = (offer.context()?, answer_side.context()?);
//! tx.protect_rtp(&mut wire)?;
//! rx.unprotect_rtp(&mut wire)?;
//! assert_eq!(RtpPacket::parse(&wire)?.header, header);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod dtmf;
pub mod rewrite;
pub mod rtcp;
pub mod rtp;
pub mod sdes;
pub mod srtp;
