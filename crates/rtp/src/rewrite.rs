//! One continuous output stream out of a switching choice of input streams (the conference's
//! active speaker's video, say): [`StreamRewriter`].
//!
//! The receiver sees one SSRC whose sequence numbers never skip or jump and whose timestamps
//! move on by the wall time between the last packet of the old source and the first of the
//! new one, so its jitter buffer and decoder see a pause, not a new stream. The first packet
//! after a switch has the marker set (a frame/talkspurt boundary). Going back, feedback for the
//! output SSRC (PLI, FIR, NACK) is mapped onto the source that is really sending.

use std::time::Instant;

use crate::rtcp::{Fir, FirEntry, Nack, Pli, RtcpPacket};
use crate::rtp::{edit, RtpPacket, SeqNo};

/// Why [`StreamRewriter::handle_packet`] did not forward a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Not RTP the rewriter can read.
    Malformed,
    /// From a source that is not (or no longer) the selected one.
    NotSelected { ssrc: u32 },
    /// From the selected source but older than its first forwarded packet: its number would
    /// collide with what the previous source already used.
    BeforeSwitch,
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    ssrc: u32,
    /// Highest input sequence number forwarded from this source, and how many numbers it
    /// is past the first one (so "before the switch" stays right after 32768 packets,
    /// where a plain wrapping comparison with the first number would flip).
    highest_in: u16,
    highest_pos: u64,
    seq_offset: u16,
    ts_offset: u32,
}

impl Anchor {
    /// Position of input `seq` counted from the source's first forwarded packet; negative
    /// for packets from before it.
    fn position(&self, seq: u16) -> i64 {
        self.highest_pos as i64 + i64::from(SeqNo(seq).diff(SeqNo(self.highest_in)))
    }
}

#[derive(Debug, Clone, Copy)]
struct Last {
    seq: u16,
    ts: u32,
    arrival: Instant,
}

/// Rewrites packets of the selected input source into the output stream, in place.
#[derive(Debug, Clone)]
pub struct StreamRewriter {
    out_ssrc: u32,
    clock_rate: u32,
    first_seq: u16,
    first_ts: u32,
    selected: Option<u32>,
    anchor: Option<Anchor>,
    last: Option<Last>,
    /// FIR sequence number of ours toward the real source, and the last incoming one mapped.
    fir_seq: u8,
    last_fir_in: Option<(u32, u8)>,
}

impl StreamRewriter {
    /// `out_ssrc`, `first_seq` and `first_ts` should be random (RFC 3550 §5.1); they come from
    /// the caller's RNG. `clock_rate` is the payload's RTP clock in Hz.
    pub fn new(out_ssrc: u32, clock_rate: u32, first_seq: u16, first_ts: u32) -> Self {
        StreamRewriter {
            out_ssrc,
            clock_rate: clock_rate.max(1),
            first_seq,
            first_ts,
            selected: None,
            anchor: None,
            last: None,
            fir_seq: 0,
            last_fir_in: None,
        }
    }

    pub fn out_ssrc(&self) -> u32 {
        self.out_ssrc
    }

    /// The input source being forwarded now (the latest one selected that has sent).
    pub fn active_source(&self) -> Option<u32> {
        self.anchor.map(|a| a.ssrc)
    }

    /// Selects the source to forward from now on. Packets of the previous source are dropped
    /// from this call; the new one is anchored at its first packet.
    pub fn select(&mut self, ssrc: u32) {
        self.selected = Some(ssrc);
    }

    /// Rewrites one RTP packet received at `now` in place (SSRC, sequence, timestamp,
    /// marker), or says why it must not be forwarded.
    pub fn handle_packet(&mut self, now: Instant, packet: &mut [u8]) -> Result<(), Dropped> {
        let Ok(p) = RtpPacket::parse(packet) else {
            return Err(Dropped::Malformed);
        };
        let h = p.header;
        if self.selected != Some(h.ssrc) {
            return Err(Dropped::NotSelected { ssrc: h.ssrc });
        }
        let mut marker = h.marker;
        let anchor = match self.anchor {
            Some(mut a) if a.ssrc == h.ssrc => {
                let pos = a.position(h.sequence);
                if pos < 0 {
                    return Err(Dropped::BeforeSwitch);
                }
                if SeqNo(h.sequence).is_after(SeqNo(a.highest_in)) {
                    a.highest_in = h.sequence;
                    a.highest_pos = pos as u64;
                    self.anchor = Some(a);
                }
                a
            }
            _ => {
                let (out_seq, out_ts) = match self.last {
                    None => (self.first_seq, self.first_ts),
                    Some(last) => {
                        let gap = now.saturating_duration_since(last.arrival);
                        let ticks = gap.as_micros() * u128::from(self.clock_rate) / 1_000_000;
                        // At least one tick, so the new source's first frame is not taken for
                        // part of the old one's last.
                        let step = u32::try_from(ticks).unwrap_or(u32::MAX).max(1);
                        (last.seq.wrapping_add(1), last.ts.wrapping_add(step))
                    }
                };
                let a = Anchor {
                    ssrc: h.ssrc,
                    highest_in: h.sequence,
                    highest_pos: 0,
                    seq_offset: out_seq.wrapping_sub(h.sequence),
                    ts_offset: out_ts.wrapping_sub(h.timestamp),
                };
                self.anchor = Some(a);
                self.last = None;
                marker = true;
                a
            }
        };
        let out_seq = h.sequence.wrapping_add(anchor.seq_offset);
        let out_ts = h.timestamp.wrapping_add(anchor.ts_offset);
        let newest = match self.last {
            Some(last) => SeqNo(out_seq).is_after(SeqNo(last.seq)),
            None => true,
        };
        if newest {
            self.last = Some(Last {
                seq: out_seq,
                ts: out_ts,
                arrival: now,
            });
        } else if let Some(last) = self.last.as_mut() {
            last.arrival = now;
        }
        // The buffer parsed as RTP, so it holds the fixed header and these cannot fail.
        edit::set_ssrc(packet, self.out_ssrc);
        edit::set_sequence(packet, out_seq);
        edit::set_timestamp(packet, out_ts);
        edit::set_marker(packet, marker);
        Ok(())
    }

    /// Maps feedback about the output stream onto the active source, as sent by
    /// `sender_ssrc` (our SSRC on the leg toward that source). `None` when it is not about
    /// the output stream, nothing is active, or (NACK) nothing asked for was sent by the
    /// active source.
    ///
    /// A repeated FIR (same incoming sequence number) keeps our sequence number, a new one
    /// advances it, as RFC 5104 §4.3.1.2 asks of each sender.
    pub fn map_feedback(
        &mut self,
        sender_ssrc: u32,
        feedback: &RtcpPacket<'_>,
    ) -> Option<RtcpPacket<'static>> {
        let anchor = self.anchor?;
        match feedback {
            RtcpPacket::Pli(p) if p.media_ssrc == self.out_ssrc => Some(RtcpPacket::Pli(Pli {
                sender_ssrc,
                media_ssrc: anchor.ssrc,
            })),
            RtcpPacket::Fir(f) => {
                let entry = f.entries.iter().find(|e| e.ssrc == self.out_ssrc)?;
                let key = (f.sender_ssrc, entry.seq);
                if self.last_fir_in != Some(key) {
                    if self.last_fir_in.is_some() {
                        self.fir_seq = self.fir_seq.wrapping_add(1);
                    }
                    self.last_fir_in = Some(key);
                }
                Some(RtcpPacket::Fir(Fir {
                    sender_ssrc,
                    entries: vec![FirEntry {
                        ssrc: anchor.ssrc,
                        seq: self.fir_seq,
                    }],
                }))
            }
            RtcpPacket::Nack(n) if n.media_ssrc == self.out_ssrc => {
                let lost: Vec<u16> = n
                    .lost()
                    .map(|s| s.wrapping_sub(anchor.seq_offset))
                    .filter(|&s| anchor.position(s) >= 0)
                    .collect();
                if lost.is_empty() {
                    return None;
                }
                Some(RtcpPacket::Nack(Nack::from_lost(
                    sender_ssrc,
                    anchor.ssrc,
                    &lost,
                )))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::rtp::{RtpBuilder, RtpHeader};
    use std::time::Duration;

    const A: u32 = 0xaaaa;
    const B: u32 = 0xbbbb;
    const OUT: u32 = 0x0101;

    fn pkt(ssrc: u32, seq: u16, ts: u32, marker: bool) -> Vec<u8> {
        let mut v = Vec::new();
        RtpBuilder::new(
            RtpHeader {
                marker,
                payload_type: 96,
                sequence: seq,
                timestamp: ts,
                ssrc,
            },
            &[1, 2, 3],
        )
        .write_vec(&mut v)
        .unwrap();
        v
    }

    fn run(
        r: &mut StreamRewriter,
        now: Instant,
        ssrc: u32,
        seq: u16,
        ts: u32,
    ) -> Result<(u32, u16, u32, bool), Dropped> {
        let mut v = pkt(ssrc, seq, ts, false);
        r.handle_packet(now, &mut v)?;
        let p = RtpPacket::parse(&v).unwrap();
        assert_eq!(p.payload, &[1, 2, 3]);
        Ok((
            p.header.ssrc,
            p.header.sequence,
            p.header.timestamp,
            p.header.marker,
        ))
    }

    #[test]
    fn switching_sources_keeps_numbers_continuous_across_wraps() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // 90 kHz video, output starting just before both wraps.
        let mut r = StreamRewriter::new(OUT, 90_000, 65534, 4_294_967_000);
        assert_eq!(
            run(&mut r, ms(0), A, 100, 1000),
            Err(Dropped::NotSelected { ssrc: A })
        );
        r.select(A);
        assert_eq!(
            run(&mut r, ms(0), A, 100, 1000),
            Ok((OUT, 65534, 4_294_967_000, true))
        );
        // 4_294_967_000 + 2970 wraps to 2674.
        let a_last = 2674u32;
        assert_eq!(
            run(&mut r, ms(33), A, 101, 3970),
            Ok((OUT, 65535, a_last, false))
        );
        assert_eq!(r.active_source(), Some(A));
        r.select(B);
        assert_eq!(
            run(&mut r, ms(40), A, 102, 6940),
            Err(Dropped::NotSelected { ssrc: A })
        );
        // B's first packet 50 ms after A's last: 4500 ticks on from A's last timestamp.
        assert_eq!(
            run(&mut r, ms(83), B, 60_000, 7),
            Ok((OUT, 0, a_last.wrapping_add(4500), true))
        );
        assert_eq!(r.active_source(), Some(B));
        // B wraps its own numbers; the output follows it one for one.
        assert_eq!(
            run(&mut r, ms(116), B, 60_001, 2977),
            Ok((OUT, 1, a_last.wrapping_add(4500 + 2970), false))
        );
        // A late B packet from before the switch point would collide: dropped.
        assert_eq!(
            run(&mut r, ms(117), B, 59_999, 0),
            Err(Dropped::BeforeSwitch)
        );
        // Back to A, 10 ms later.
        r.select(A);
        assert_eq!(
            run(&mut r, ms(126), A, 110, 30_000),
            Ok((OUT, 2, a_last.wrapping_add(4500 + 2970 + 900), true))
        );
    }

    #[test]
    fn a_switch_with_no_gap_still_moves_the_timestamp() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(OUT, 8000, 10, 500);
        r.select(A);
        run(&mut r, t0, A, 1, 1).unwrap();
        r.select(B);
        assert_eq!(run(&mut r, t0, B, 9, 9), Ok((OUT, 11, 501, true)));
    }

    #[test]
    fn reordered_packets_of_the_active_source_keep_their_order() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(OUT, 8000, 0, 0);
        r.select(A);
        run(&mut r, t0, A, 10, 0).unwrap();
        assert_eq!(run(&mut r, t0, A, 12, 320), Ok((OUT, 2, 320, false)));
        assert_eq!(run(&mut r, t0, A, 11, 160), Ok((OUT, 1, 160, false)));
        // The step at the next switch counts from the newest (seq 2, ts 320).
        r.select(B);
        assert_eq!(
            run(&mut r, t0 + Duration::from_millis(20), B, 0, 0),
            Ok((OUT, 3, 480, true))
        );
    }

    #[test]
    fn a_long_stream_is_not_mistaken_for_pre_switch_packets() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(OUT, 8000, 100, 0);
        r.select(A);
        // 70,000 packets: past the half-way point where 16-bit serial comparison with the
        // first number flips, and past a full wrap.
        for i in 0..70_000u32 {
            let seq = (1000 + i) as u16;
            let out = run(&mut r, t0, A, seq, i * 160).unwrap();
            assert_eq!(out.1, (100 + i) as u16, "packet {i}");
        }
        // A packet reordered by ten keeps its own place.
        assert_eq!(
            run(&mut r, t0, A, (1000 + 69_990) as u16, 0).map(|o| o.1),
            Ok((100 + 69_990) as u16)
        );
    }

    #[test]
    fn malformed_is_dropped() {
        let mut r = StreamRewriter::new(OUT, 8000, 0, 0);
        r.select(A);
        assert_eq!(
            r.handle_packet(Instant::now(), &mut [0x80, 0]),
            Err(Dropped::Malformed)
        );
    }

    #[test]
    fn feedback_goes_to_the_real_source() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(OUT, 90_000, 65534, 0);
        let pli = RtcpPacket::Pli(Pli {
            sender_ssrc: 77,
            media_ssrc: OUT,
        });
        assert_eq!(r.map_feedback(5, &pli), None);
        r.select(A);
        run(&mut r, t0, A, 100, 0).unwrap(); // out 65534
        run(&mut r, t0, A, 101, 0).unwrap(); // out 65535
        r.select(B);
        run(&mut r, t0, B, 7000, 0).unwrap(); // out 0
        run(&mut r, t0, B, 7001, 0).unwrap(); // out 1
        assert_eq!(
            r.map_feedback(5, &pli),
            Some(RtcpPacket::Pli(Pli {
                sender_ssrc: 5,
                media_ssrc: B
            }))
        );
        let other = RtcpPacket::Pli(Pli {
            sender_ssrc: 77,
            media_ssrc: 999,
        });
        assert_eq!(r.map_feedback(5, &other), None);

        let fir = |seq| {
            RtcpPacket::Fir(Fir {
                sender_ssrc: 77,
                entries: vec![FirEntry { ssrc: OUT, seq }],
            })
        };
        let mapped = |seq| {
            Some(RtcpPacket::Fir(Fir {
                sender_ssrc: 5,
                entries: vec![FirEntry { ssrc: B, seq }],
            }))
        };
        assert_eq!(r.map_feedback(5, &fir(40)), mapped(0));
        assert_eq!(r.map_feedback(5, &fir(40)), mapped(0));
        assert_eq!(r.map_feedback(5, &fir(41)), mapped(1));

        // NACK for 65535 (A's), 0 and 1 (B's): only B's go to B, in B's numbers.
        let nack = RtcpPacket::Nack(Nack::from_lost(77, OUT, &[65535, 0, 1]));
        assert_eq!(
            r.map_feedback(5, &nack),
            Some(RtcpPacket::Nack(Nack {
                sender_ssrc: 5,
                media_ssrc: B,
                pairs: vec![(7000, 1)]
            }))
        );
        let only_old = RtcpPacket::Nack(Nack::from_lost(77, OUT, &[65535]));
        assert_eq!(r.map_feedback(5, &only_old), None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever the switching pattern, in-order input from the selected source comes
            /// out as one stream with consecutive sequence numbers and rising timestamps.
            #[test]
            fn output_is_continuous_under_any_switching(
                steps in proptest::collection::vec((0u32..3, 1u16..20, 0u64..100), 1..40),
                first_seq in any::<u16>(),
                first_ts in any::<u32>(),
            ) {
                let t0 = Instant::now();
                let mut r = StreamRewriter::new(OUT, 8000, first_seq, first_ts);
                let mut now = t0;
                let mut next_in = [1000u16, 30_000, 65_000];
                let mut in_ts = [0u32, 1 << 31, u32::MAX - 5000];
                let mut expect_seq = first_seq;
                let mut last_ts: Option<u32> = None;
                let mut previous = None;
                for (source, packets, gap_ms) in steps {
                    let switched = previous != Some(source);
                    previous = Some(source);
                    r.select(source);
                    now += Duration::from_millis(gap_ms);
                    for k in 0..packets {
                        let s = source as usize;
                        let out = run(&mut r, now, source, next_in[s], in_ts[s]).unwrap();
                        prop_assert_eq!(out.0, OUT);
                        prop_assert_eq!(out.1, expect_seq);
                        if let Some(prev) = last_ts {
                            prop_assert!((out.2.wrapping_sub(prev) as i32) > 0);
                        }
                        // Re-selecting the active source is not a switch: no marker.
                        prop_assert_eq!(out.3, k == 0 && switched);
                        last_ts = Some(out.2);
                        expect_seq = expect_seq.wrapping_add(1);
                        next_in[s] = next_in[s].wrapping_add(1);
                        in_ts[s] = in_ts[s].wrapping_add(160);
                        now += Duration::from_millis(20);
                    }
                }
            }

            #[test]
            fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
                let mut r = StreamRewriter::new(OUT, 8000, 0, 0);
                r.select(A);
                let mut b = bytes;
                let _ = r.handle_packet(Instant::now(), &mut b);
            }
        }
    }
}
