//! Receiver-side statistics for one source: RFC 3550 A.3 loss and A.8 interarrival jitter,
//! turned into a [`ReportBlock`].
//!
//! Time is a `std::time::Instant` handed in by the caller (the same type the SIP crate takes),
//! never read here. Arrival times are converted to the source's RTP clock by counting from the
//! first packet's arrival, so only differences of instants are used.

use std::time::{Duration, Instant};

use super::{ReportBlock, SenderInfo};
use crate::rtp::{SeqTracker, SeqUpdate};

/// Reception state of one RTP source.
#[derive(Debug, Clone)]
pub struct ReceiverStats {
    ssrc: u32,
    clock_rate: u32,
    seq: Option<SeqTracker>,
    origin: Option<Instant>,
    /// Relative transit time of the previous packet, in RTP clock units.
    transit: Option<u32>,
    /// Jitter scaled by 16, as A.8 keeps it for integer arithmetic. u64 because a hostile or
    /// broken sender's timestamp jumps (|D| up to 2^31) drive it towards 2^35.
    jitter_q4: u64,
    expected_prior: u32,
    received_prior: u32,
    last_sr: Option<(u32, Instant)>,
}

impl ReceiverStats {
    /// `clock_rate` is the payload's RTP clock in Hz (8000 for G.711, 90000 for video).
    pub fn new(ssrc: u32, clock_rate: u32) -> Self {
        ReceiverStats {
            ssrc,
            clock_rate: clock_rate.max(1),
            seq: None,
            origin: None,
            transit: None,
            jitter_q4: 0,
            expected_prior: 0,
            received_prior: 0,
            last_sr: None,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    fn arrival_units(&self, origin: Instant, now: Instant) -> u32 {
        let micros = now.saturating_duration_since(origin).as_micros();
        (micros * u128::from(self.clock_rate) / 1_000_000) as u32
    }

    /// Feeds one received packet of this source: its arrival `now`, sequence number and RTP
    /// timestamp. Returns the sequence verdict so the caller can drop probation/jump packets.
    pub fn handle_rtp(&mut self, now: Instant, seq: u16, rtp_ts: u32) -> SeqUpdate {
        let update = match &mut self.seq {
            Some(t) => t.update(seq),
            None => {
                self.seq = Some(SeqTracker::new(seq));
                self.seq
                    .as_mut()
                    .map_or(SeqUpdate::Probation, |t| t.update(seq))
            }
        };
        match update {
            SeqUpdate::Valid { .. } => {}
            SeqUpdate::Restarted { .. } => {
                self.expected_prior = 0;
                self.received_prior = 0;
                self.transit = None;
            }
            SeqUpdate::Probation | SeqUpdate::BadJump => return update,
        }
        let origin = *self.origin.get_or_insert(now);
        let transit = self.arrival_units(origin, now).wrapping_sub(rtp_ts);
        if let Some(prev) = self.transit {
            let d = u64::from((transit.wrapping_sub(prev) as i32).unsigned_abs());
            // J += (|D| - J) / 16, with J kept ×16 (RFC 3550 A.8). J16 stays below 16 · 2^31,
            // so none of this can overflow.
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        }
        self.transit = Some(transit);
        update
    }

    /// Remembers an SR from this source so the next report carries LSR and DLSR.
    pub fn handle_sender_report(&mut self, now: Instant, info: &SenderInfo) {
        self.last_sr = Some((info.ntp_middle(), now));
    }

    /// Interarrival jitter in RTP clock units.
    pub fn jitter(&self) -> u32 {
        u32::try_from(self.jitter_q4 >> 4).unwrap_or(u32::MAX)
    }

    /// Cumulative packets lost (expected − received), clamped to the 24-bit wire range.
    pub fn cumulative_lost(&self) -> i32 {
        let Some(t) = &self.seq else { return 0 };
        let lost = i64::from(t.expected()) - i64::from(t.received());
        lost.clamp(-0x80_0000, 0x7f_ffff) as i32
    }

    pub fn extended_highest_seq(&self) -> Option<u32> {
        self.seq
            .as_ref()
            .filter(|t| !t.on_probation())
            .map(SeqTracker::extended_max)
    }

    /// Builds the report block for an RR/SR sent at `now`, and starts the next loss interval
    /// (A.3: the fraction is since the previous call). `None` while the source is on probation.
    pub fn report_block(&mut self, now: Instant) -> Option<ReportBlock> {
        let t = self.seq.as_ref().filter(|t| !t.on_probation())?;
        let expected = t.expected();
        let received = t.received();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => (lsr, dlsr_units(now.saturating_duration_since(at))),
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost(),
            highest_seq: t.extended_max(),
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        })
    }
}

/// Sender-side counts of one outgoing stream, for its SRs (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderStats {
    pub ssrc: u32,
    /// Packets sent (wraps at 2^32 as on the wire).
    pub packets: u32,
    /// Payload octets sent, headers and padding excluded.
    pub octets: u32,
}

impl SenderStats {
    pub fn new(ssrc: u32) -> Self {
        SenderStats {
            ssrc,
            ..SenderStats::default()
        }
    }

    /// Counts one packet sent with `payload_len` payload bytes.
    pub fn on_sent(&mut self, payload_len: usize) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
    }

    /// The sender info for an SR sent now: `ntp_timestamp` from the caller's wall clock, and
    /// the RTP timestamp that corresponds to the same instant (RFC 3550 §6.4.1).
    pub fn sender_info(&self, ntp_timestamp: u64, rtp_timestamp: u32) -> SenderInfo {
        SenderInfo {
            ntp_timestamp,
            rtp_timestamp,
            packet_count: self.packets,
            octet_count: self.octets,
        }
    }
}

// A duration in the 1/65536-second units of DLSR, saturating.
fn dlsr_units(d: Duration) -> u32 {
    let units = d.as_micros() * 65536 / 1_000_000;
    u32::try_from(units).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(origin: Instant, ms: u64) -> Instant {
        origin + Duration::from_millis(ms)
    }

    #[test]
    fn no_report_during_probation() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(7, 8000);
        assert_eq!(s.handle_rtp(t0, 10, 0), SeqUpdate::Probation);
        assert_eq!(s.report_block(t0), None);
        assert_eq!(s.extended_highest_seq(), None);
    }

    #[test]
    fn steady_stream_has_no_loss_and_no_jitter() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(7, 8000);
        for i in 0..50u16 {
            s.handle_rtp(
                at(t0, 20 * u64::from(i)),
                65500u16.wrapping_add(i),
                160 * u32::from(i),
            );
        }
        let rb = s.report_block(at(t0, 1000)).unwrap_or_default();
        assert_eq!(rb.ssrc, 7);
        assert_eq!(rb.fraction_lost, 0);
        assert_eq!(rb.cumulative_lost, 0);
        assert_eq!(rb.jitter, 0);
        // 65500 + 49 wraps to 13 in cycle 1.
        assert_eq!(rb.highest_seq, 65536 + 13);
        assert_eq!((rb.last_sr, rb.delay_since_last_sr), (0, 0));
    }

    #[test]
    fn loss_fraction_is_per_interval_and_cumulative_overall() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(1, 8000);
        // Probation: 0 and 1; counting starts at 1. Then 2..=20 except 5, 6, 7 and 8.
        for seq in (0..=20u16).filter(|q| !(5..=8).contains(q)) {
            s.handle_rtp(at(t0, 20 * u64::from(seq)), seq, 160 * u32::from(seq));
        }
        let rb = s.report_block(at(t0, 500)).unwrap_or_default();
        // expected 20 (1..=20), received 16: lost 4, fraction 4/20*256 = 51.
        assert_eq!(rb.cumulative_lost, 4);
        assert_eq!(rb.fraction_lost, 51);
        assert_eq!(rb.highest_seq, 20);
        for seq in 21..=30u16 {
            s.handle_rtp(at(t0, 20 * u64::from(seq)), seq, 160 * u32::from(seq));
        }
        let rb = s.report_block(at(t0, 700)).unwrap_or_default();
        assert_eq!(rb.fraction_lost, 0);
        assert_eq!(rb.cumulative_lost, 4);
        // A duplicate makes received exceed expected in the interval: fraction stays 0,
        // cumulative drops (RFC 3550 §6.4.1 allows it to go negative).
        s.handle_rtp(at(t0, 620), 30, 160 * 30);
        let rb = s.report_block(at(t0, 900)).unwrap_or_default();
        assert_eq!(rb.fraction_lost, 0);
        assert_eq!(rb.cumulative_lost, 3);
    }

    #[test]
    fn jitter_follows_rfc3550_a8() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(1, 8000);
        // Packets sent every 20 ms (160 ticks); the third arrives 10 ms (80 ticks) late.
        let arrivals = [0u64, 20, 50, 60, 80];
        for (i, ms) in arrivals.iter().enumerate() {
            s.handle_rtp(at(t0, *ms), i as u16, 160 * i as u32);
        }
        // Packet 0 is probation (no transit). D: p2 +80, p3 -80, p4 0 (p1 has no predecessor).
        // J16: 0 → 80 - 0 = 80 → 80 + 80 - 5 = 155 → 155 + 0 - 10 = 145. J = 145 >> 4 = 9.
        assert_eq!(s.jitter(), 9);
    }

    #[test]
    fn lsr_and_dlsr_come_from_the_last_sr() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(1, 8000);
        s.handle_rtp(t0, 1, 0);
        s.handle_rtp(at(t0, 20), 2, 160);
        let info = SenderInfo {
            ntp_timestamp: 0x1122_3344_5566_7788,
            ..SenderInfo::default()
        };
        s.handle_sender_report(at(t0, 100), &info);
        let rb = s.report_block(at(t0, 1600)).unwrap_or_default();
        assert_eq!(rb.last_sr, 0x3344_5566);
        // 1.5 s = 98304 / 65536 s.
        assert_eq!(rb.delay_since_last_sr, 98304);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_sequence_timestamps_or_times(
            packets in proptest::collection::vec((proptest::prelude::any::<u16>(), proptest::prelude::any::<u32>(), 0u64..10_000_000), 0..200),
        ) {
            let t0 = Instant::now();
            let mut s = ReceiverStats::new(1, 90_000);
            for (i, (seq, ts, us)) in packets.into_iter().enumerate() {
                s.handle_rtp(t0 + Duration::from_micros(us), seq, ts);
                if i % 17 == 0 {
                    s.handle_sender_report(t0 + Duration::from_micros(us), &SenderInfo::default());
                    let _ = s.report_block(t0);
                }
            }
            let _ = (s.jitter(), s.cumulative_lost(), s.report_block(t0));
        }
    }

    #[test]
    fn jitter_saturates_instead_of_overflowing() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(1, 8000);
        // Timestamps jumping by 2^31 each packet: |D| is maximal every time.
        for i in 0..400u32 {
            s.handle_rtp(t0, i as u16, (i % 2) << 31);
        }
        assert!(s.jitter() > 1 << 30);
    }

    #[test]
    fn round_trip_from_our_sr_echoed_back() {
        use crate::rtcp::ReportBlock;
        // RFC 3550 §6.4.1's example: A = 0xb710:8000 (46864.500 s), LSR = 0xb705:2000
        // (46853.125 s), DLSR = 0x0005:4000 (5.250 s): RTT 6.125 s.
        let rb = ReportBlock {
            last_sr: 0xb705_2000,
            delay_since_last_sr: 0x0005_4000,
            ..ReportBlock::default()
        };
        assert_eq!(
            rb.round_trip(0xb710_8000),
            Some(Duration::from_millis(6125))
        );
        assert_eq!(rb.round_trip(0xb705_2000), None);
        assert_eq!(ReportBlock::default().round_trip(5), None);
    }

    #[test]
    fn sender_stats_fill_the_sr() {
        let mut s = SenderStats::new(9);
        s.on_sent(160);
        s.on_sent(160);
        let info = s.sender_info(0x1_0000_0000, 320);
        assert_eq!(
            (info.packet_count, info.octet_count, info.rtp_timestamp),
            (2, 320, 320)
        );
        assert_eq!(info.ntp_middle(), 0x0001_0000);
    }

    #[test]
    fn restart_resets_the_counts() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(1, 8000);
        for seq in 1..=10u16 {
            s.handle_rtp(at(t0, 20 * u64::from(seq)), seq, 0);
        }
        assert_eq!(s.handle_rtp(at(t0, 240), 40000, 0), SeqUpdate::BadJump);
        assert_eq!(
            s.handle_rtp(at(t0, 260), 40001, 0),
            SeqUpdate::Restarted { extended: 40001 }
        );
        let rb = s.report_block(at(t0, 300)).unwrap_or_default();
        assert_eq!(
            (rb.cumulative_lost, rb.fraction_lost, rb.highest_seq),
            (0, 0, 40001)
        );
    }
}
