//! RFC 4733 telephone-events: the 4-byte event payload, a receiver that turns the packet
//! stream into one [`Digit`] per key press, and a sender that produces the packets for one.
//!
//! An event is identified by its source and RTP timestamp: every packet of one key press
//! carries the same timestamp (RFC 4733 §2.5.1.2), and a new press gets a new one. That is
//! what makes the receiver robust to the three redundant end packets (the event is already
//! emitted), lost start packets (any packet of the event starts it), lost end packets (the
//! next event or a timeout ends it) and reordering (late packets of an emitted event are
//! recognised by their timestamp).
//!
//! Not handled: long-duration events split into segments (RFC 4733 §2.5.1.3, over 65535
//! clock ticks, 8 s at 8 kHz); the sender refuses them and the receiver reports the longest
//! duration seen. Events 16 and up (tones, line events) parse, but only 0–15 are digits.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::rtp::{RtpBuilder, RtpError, RtpHeader, SeqNo};

/// What is wrong with a telephone-event payload, or with a digit to send.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DtmfError {
    #[error("telephone-event payload is {0} bytes; it needs 4")]
    TooShort(usize),
    #[error("{0:?} is not a DTMF digit; use 0-9, *, #, A-D")]
    NotADigit(char),
    #[error("DTMF duration of {0:?} is {1} clock ticks; send 1..=65535 (longer needs RFC 4733 segments, not supported)")]
    Duration(Duration, u64),
    #[error("DTMF volume {0} is out of range; it is -dBm0 in 0..=63")]
    Volume(u8),
    #[error("DTMF clock rate and packet interval must be non-zero")]
    ZeroRate,
    #[error(transparent)]
    Rtp(#[from] RtpError),
}

const DIGITS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

/// The DTMF digit of an event code 0..=15 (RFC 4733 §3.2).
pub fn event_to_digit(event: u8) -> Option<char> {
    DIGITS.get(usize::from(event)).copied()
}

/// The event code of a DTMF digit; lower-case a–d are accepted.
pub fn digit_to_event(digit: char) -> Option<u8> {
    let d = digit.to_ascii_uppercase();
    DIGITS.iter().position(|&c| c == d).map(|i| i as u8)
}

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfEvent {
    pub event: u8,
    pub end: bool,
    /// Power level in -dBm0, 0..=63 (only the low 6 bits are on the wire).
    pub volume: u8,
    /// Duration so far, in RTP clock ticks, from the event's timestamp.
    pub duration: u16,
}

impl DtmfEvent {
    /// Parses the first four bytes of an RTP payload; extra bytes (RFC 4733 allows several
    /// events in one payload via redundancy, RFC 2198) are ignored.
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        let [event, flags, d0, d1, ..] = *payload else {
            return Err(DtmfError::TooShort(payload.len()));
        };
        Ok(DtmfEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    pub fn to_bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }

    pub fn digit(&self) -> Option<char> {
        event_to_digit(self.event)
    }
}

/// One key press as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digit {
    pub digit: char,
    /// How long the key was held, from the longest duration field seen.
    pub duration: Duration,
    pub ssrc: u32,
    /// The event's RTP timestamp (its identity within the stream).
    pub timestamp: u32,
}

#[derive(Debug, Clone, Copy)]
struct Current {
    ssrc: u32,
    timestamp: u32,
    event: u8,
    duration: u16,
    last_seen: Instant,
}

/// Receives telephone-event packets of one stream and emits one [`Digit`] per press.
///
/// Sans-IO: feed packets with [`handle_packet`](Self::handle_packet), call
/// [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout), and drain
/// [`poll_digit`](Self::poll_digit) after each.
#[derive(Debug, Clone)]
pub struct DtmfReceiver {
    clock_rate: u32,
    end_timeout: Duration,
    current: Option<Current>,
    /// (ssrc, timestamp) of recently emitted events, newest last.
    finished: VecDeque<(u32, u32)>,
    /// Newest event timestamp per source: a packet for an older event that was never seen is
    /// too late to report in order, and is dropped.
    newest: Option<(u32, u32)>,
    out: VecDeque<Digit>,
}

const FINISHED_MEMORY: usize = 8;

impl DtmfReceiver {
    /// `clock_rate` of the telephone-event payload type (8000 normally). `end_timeout` is how
    /// long after the last packet an event without an end packet is taken as ended; senders
    /// repeat every 50 ms at most (RFC 4733 §2.5.1.2), so a few hundred ms is safe.
    pub fn new(clock_rate: u32, end_timeout: Duration) -> Self {
        DtmfReceiver {
            clock_rate: clock_rate.max(1),
            end_timeout,
            current: None,
            finished: VecDeque::with_capacity(FINISHED_MEMORY),
            newest: None,
            out: VecDeque::new(),
        }
    }

    fn ticks_to_duration(&self, ticks: u16) -> Duration {
        Duration::from_micros(u64::from(ticks) * 1_000_000 / u64::from(self.clock_rate))
    }

    fn finish(&mut self, c: Current) {
        if let Some(digit) = event_to_digit(c.event) {
            self.out.push_back(Digit {
                digit,
                duration: self.ticks_to_duration(c.duration),
                ssrc: c.ssrc,
                timestamp: c.timestamp,
            });
        }
        if self.finished.len() == FINISHED_MEMORY {
            self.finished.pop_front();
        }
        self.finished.push_back((c.ssrc, c.timestamp));
    }

    /// Feeds one telephone-event RTP packet: its source, timestamp, marker bit and payload.
    /// A payload too short to be an event is an error and changes nothing.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        ssrc: u32,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Result<(), DtmfError> {
        // The marker only says "first packet of an event"; identity is the timestamp, which
        // also covers a lost first packet.
        let _ = marker;
        let ev = DtmfEvent::parse(payload)?;
        let key = (ssrc, timestamp);
        if self.finished.contains(&key) {
            return Ok(());
        }
        if let Some(c) = self.current.as_mut() {
            if (c.ssrc, c.timestamp) == key {
                c.duration = c.duration.max(ev.duration);
                c.last_seen = now;
                if ev.end {
                    let c = *c;
                    self.current = None;
                    self.finish(c);
                }
                return Ok(());
            }
        }
        if let Some((s, newest)) = self.newest {
            if s == ssrc && !SeqNo32(timestamp).is_after(SeqNo32(newest)) {
                return Ok(());
            }
        }
        // A new event: the one in progress lost its end packets.
        if let Some(c) = self.current.take() {
            self.finish(c);
        }
        self.newest = Some(key);
        let c = Current {
            ssrc,
            timestamp,
            event: ev.event,
            duration: ev.duration,
            last_seen: now,
        };
        if ev.end {
            self.finish(c);
        } else {
            self.current = Some(c);
        }
        Ok(())
    }

    /// Ends an event whose packets stopped without an end packet.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(c) = self.current {
            if now.saturating_duration_since(c.last_seen) >= self.end_timeout {
                self.current = None;
                self.finish(c);
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current
            .and_then(|c| c.last_seen.checked_add(self.end_timeout))
    }

    pub fn poll_digit(&mut self) -> Option<Digit> {
        self.out.pop_front()
    }
}

// Serial-number comparison of 32-bit RTP timestamps.
#[derive(Clone, Copy)]
struct SeqNo32(u32);

impl SeqNo32 {
    fn is_after(self, other: SeqNo32) -> bool {
        (self.0.wrapping_sub(other.0) as i32) > 0
    }
}

/// How a [`DtmfSender`] paces its packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfSender {
    pub payload_type: u8,
    pub clock_rate: u32,
    /// Interval between packets (the stream's ptime; 20 ms usually, 50 ms at most).
    pub interval: Duration,
    /// -dBm0, 0..=63; 10 is usual.
    pub volume: u8,
}

/// One packet of a digit to send, `offset` after the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    pub offset: Duration,
    pub header: RtpHeader,
    pub event: DtmfEvent,
}

impl DtmfPacket {
    /// Appends the RTP packet to `out`.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), DtmfError> {
        let payload = self.event.to_bytes();
        RtpBuilder::new(self.header, &payload).write_vec(out)?;
        Ok(())
    }
}

/// The end packet is sent three times (RFC 4733 §2.5.1.4) so one loss does not lose it.
pub const END_REPEATS: usize = 3;

fn ticks(d: Duration, clock_rate: u32) -> u64 {
    (d.as_micros() * u128::from(clock_rate) / 1_000_000) as u64
}

impl DtmfSender {
    /// The packets for one press of `digit` held for `duration`: every packet has timestamp
    /// `timestamp`, sequence numbers count up from `first_seq`, the first has the marker, the
    /// duration field grows by one interval per packet, and the final duration is sent
    /// [`END_REPEATS`] times with the end bit. Packet `i` is due `i` intervals after the first;
    /// the caller's next audio continues at sequence `first_seq + len`.
    pub fn packets(
        &self,
        digit: char,
        duration: Duration,
        ssrc: u32,
        first_seq: u16,
        timestamp: u32,
    ) -> Result<Vec<DtmfPacket>, DtmfError> {
        let event = digit_to_event(digit).ok_or(DtmfError::NotADigit(digit))?;
        if self.volume > 63 {
            return Err(DtmfError::Volume(self.volume));
        }
        if self.clock_rate == 0 || self.interval.is_zero() {
            return Err(DtmfError::ZeroRate);
        }
        let total = ticks(duration, self.clock_rate);
        let step = ticks(self.interval, self.clock_rate);
        let Ok(total16) = u16::try_from(total) else {
            return Err(DtmfError::Duration(duration, total));
        };
        if total == 0 || step == 0 {
            return Err(DtmfError::Duration(duration, total));
        }
        let mut durations: Vec<(u16, bool)> = (1..)
            .map(|k| k * step)
            .take_while(|&d| d < total)
            .map(|d| (d as u16, false))
            .collect();
        durations.extend(std::iter::repeat((total16, true)).take(END_REPEATS));
        let mut seq = SeqNo(first_seq);
        let packets = durations
            .into_iter()
            .enumerate()
            .map(|(i, (d, end))| {
                let p = DtmfPacket {
                    offset: self.interval.checked_mul(i as u32).unwrap_or(Duration::MAX),
                    header: RtpHeader {
                        marker: i == 0,
                        payload_type: self.payload_type,
                        sequence: seq.0,
                        timestamp,
                        ssrc,
                    },
                    event: DtmfEvent {
                        event,
                        end,
                        volume: self.volume,
                        duration: d,
                    },
                };
                seq = seq.next();
                p
            })
            .collect();
        Ok(packets)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::rtp::RtpPacket;
    use proptest::prelude::*;

    #[test]
    fn digit_mapping() {
        assert_eq!(event_to_digit(0), Some('0'));
        assert_eq!(event_to_digit(10), Some('*'));
        assert_eq!(event_to_digit(11), Some('#'));
        assert_eq!(event_to_digit(15), Some('D'));
        assert_eq!(event_to_digit(16), None);
        assert_eq!(digit_to_event('b'), Some(13));
        assert_eq!(digit_to_event('#'), Some(11));
        assert_eq!(digit_to_event('x'), None);
    }

    #[test]
    fn payload_bytes() {
        let e = DtmfEvent::parse(&[5, 0x8a, 0x03, 0x20]).unwrap();
        assert_eq!(
            e,
            DtmfEvent {
                event: 5,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(e.digit(), Some('5'));
        assert_eq!(e.to_bytes(), [5, 0x8a, 0x03, 0x20]);
        // The reserved R bit is ignored on receipt.
        assert_eq!(DtmfEvent::parse(&[5, 0x4a, 0, 0]).unwrap().volume, 10);
        assert_eq!(DtmfEvent::parse(&[5, 0x8a, 3]), Err(DtmfError::TooShort(3)));
    }

    fn sender() -> DtmfSender {
        DtmfSender {
            payload_type: 101,
            clock_rate: 8000,
            interval: Duration::from_millis(20),
            volume: 10,
        }
    }

    #[test]
    fn sends_digit_5_for_100ms_exactly() {
        let p = sender()
            .packets('5', Duration::from_millis(100), 0xabc, 65534, 4_294_967_000)
            .unwrap();
        let got: Vec<_> = p
            .iter()
            .map(|p| {
                (
                    p.offset.as_millis(),
                    p.header.marker,
                    p.header.sequence,
                    p.header.timestamp,
                    p.event.end,
                    p.event.duration,
                )
            })
            .collect();
        let ts = 4_294_967_000;
        assert_eq!(
            got,
            vec![
                (0, true, 65534, ts, false, 160),
                (20, false, 65535, ts, false, 320),
                (40, false, 0, ts, false, 480),
                (60, false, 1, ts, false, 640),
                (80, false, 2, ts, true, 800),
                (100, false, 3, ts, true, 800),
                (120, false, 4, ts, true, 800),
            ]
        );
        assert!(p.iter().all(|p| p.header.payload_type == 101
            && p.header.ssrc == 0xabc
            && p.event.event == 5
            && p.event.volume == 10));
        let mut wire = Vec::new();
        p[0].write(&mut wire).unwrap();
        let rtp = RtpPacket::parse(&wire).unwrap();
        assert_eq!(rtp.payload, &[5, 10, 0, 160]);
        assert!(rtp.header.marker);
    }

    #[test]
    fn short_press_is_only_end_packets() {
        let p = sender()
            .packets('#', Duration::from_millis(10), 1, 0, 0)
            .unwrap();
        assert_eq!(p.len(), 3);
        assert!(p[0].header.marker);
        assert!(p.iter().all(|p| p.event.end && p.event.duration == 80));
    }

    #[test]
    fn sender_refuses_bad_input() {
        let s = sender();
        assert_eq!(
            s.packets('x', Duration::from_millis(100), 1, 0, 0),
            Err(DtmfError::NotADigit('x'))
        );
        assert!(matches!(
            s.packets('1', Duration::from_secs(9), 1, 0, 0),
            Err(DtmfError::Duration(_, 72000))
        ));
        assert!(matches!(
            s.packets('1', Duration::ZERO, 1, 0, 0),
            Err(DtmfError::Duration(_, 0))
        ));
        let loud = DtmfSender { volume: 64, ..s };
        assert_eq!(
            loud.packets('1', Duration::from_millis(100), 1, 0, 0),
            Err(DtmfError::Volume(64))
        );
    }

    fn feed(r: &mut DtmfReceiver, t0: Instant, packets: &[DtmfPacket]) {
        for p in packets {
            r.handle_packet(
                t0 + p.offset,
                p.header.ssrc,
                p.header.timestamp,
                p.header.marker,
                &p.event.to_bytes(),
            )
            .unwrap();
        }
    }

    fn drain(r: &mut DtmfReceiver) -> Vec<(char, u128)> {
        std::iter::from_fn(|| r.poll_digit())
            .map(|d| (d.digit, d.duration.as_millis()))
            .collect()
    }

    fn receiver() -> DtmfReceiver {
        DtmfReceiver::new(8000, Duration::from_millis(250))
    }

    #[test]
    fn one_digit_despite_three_end_packets() {
        let t0 = Instant::now();
        let mut r = receiver();
        let p = sender()
            .packets('5', Duration::from_millis(100), 7, 100, 1000)
            .unwrap();
        feed(&mut r, t0, &p[..5]);
        assert_eq!(drain(&mut r), vec![('5', 100)]);
        feed(&mut r, t0, &p[5..]);
        assert_eq!(drain(&mut r), vec![]);
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn lost_start_packets_still_give_the_digit() {
        let t0 = Instant::now();
        let mut r = receiver();
        let p = sender()
            .packets('9', Duration::from_millis(100), 7, 100, 1000)
            .unwrap();
        feed(&mut r, t0, &p[2..]);
        assert_eq!(drain(&mut r), vec![('9', 100)]);
        // Only end packets, marker lost too.
        let p = sender()
            .packets('1', Duration::from_millis(60), 7, 110, 3000)
            .unwrap();
        feed(&mut r, t0, &p[p.len() - 1..]);
        assert_eq!(drain(&mut r), vec![('1', 60)]);
    }

    #[test]
    fn lost_end_packets_end_on_the_next_event_or_the_timeout() {
        let t0 = Instant::now();
        let mut r = receiver();
        let a = sender()
            .packets('1', Duration::from_millis(100), 7, 100, 1000)
            .unwrap();
        let b = sender()
            .packets('2', Duration::from_millis(100), 7, 110, 5000)
            .unwrap();
        feed(&mut r, t0, &a[..4]);
        assert_eq!(drain(&mut r), vec![]);
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_millis(60 + 250)));
        let t1 = t0 + Duration::from_millis(200);
        feed(&mut r, t1, &b[..3]);
        // '1' ended by the start of '2', with the longest duration seen (640 ticks = 80 ms).
        assert_eq!(drain(&mut r), vec![('1', 80)]);
        r.handle_timeout(t1 + Duration::from_millis(40 + 249));
        assert_eq!(drain(&mut r), vec![]);
        r.handle_timeout(t1 + Duration::from_millis(40 + 250));
        assert_eq!(drain(&mut r), vec![('2', 60)]);
        // Late end packets of '2' after the timeout do not repeat it.
        feed(&mut r, t1, &b[4..]);
        assert_eq!(drain(&mut r), vec![]);
    }

    #[test]
    fn reordered_packets_give_one_digit_with_the_full_duration() {
        let t0 = Instant::now();
        let mut r = receiver();
        let p = sender()
            .packets('*', Duration::from_millis(100), 7, 100, 1000)
            .unwrap();
        let order = [1, 0, 3, 4, 2, 6, 5];
        let shuffled: Vec<_> = order.iter().map(|&i| p[i]).collect();
        feed(&mut r, t0, &shuffled);
        assert_eq!(drain(&mut r), vec![('*', 100)]);
    }

    #[test]
    fn a_stale_event_after_a_newer_one_is_dropped() {
        let t0 = Instant::now();
        let mut r = receiver();
        let old = sender()
            .packets('3', Duration::from_millis(40), 7, 1, 1000)
            .unwrap();
        let new = sender()
            .packets('4', Duration::from_millis(40), 7, 9, 2000)
            .unwrap();
        feed(&mut r, t0, &new);
        feed(&mut r, t0, &old);
        assert_eq!(drain(&mut r), vec![('4', 40)]);
    }

    #[test]
    fn repeated_same_digit_is_two_presses() {
        let t0 = Instant::now();
        let mut r = receiver();
        for (seq, ts) in [(0u16, 4_294_966_000u32), (10, 704)] {
            let p = sender()
                .packets('0', Duration::from_millis(40), 7, seq, ts)
                .unwrap();
            feed(&mut r, t0, &p);
        }
        // Across the 32-bit timestamp wrap: 4_294_966_000 → 704 is forward.
        assert_eq!(drain(&mut r), vec![('0', 40), ('0', 40)]);
    }

    proptest! {
        #[test]
        fn parse_inverts_build(event in any::<u8>(), end in any::<bool>(), volume in 0u8..64, duration in any::<u16>()) {
            let e = DtmfEvent { event, end, volume, duration };
            prop_assert_eq!(DtmfEvent::parse(&e.to_bytes()).unwrap(), e);
        }

        #[test]
        fn receiver_never_panics(packets in proptest::collection::vec(
            (0u64..2000, 0u32..3, any::<u32>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..6)), 0..40)) {
            let t0 = Instant::now();
            let mut r = receiver();
            let mut count = 0;
            for (ms, ssrc, ts, m, payload) in packets {
                let _ = r.handle_packet(t0 + Duration::from_millis(ms), ssrc, ts, m, &payload);
                r.handle_timeout(t0 + Duration::from_millis(ms));
                while r.poll_digit().is_some() { count += 1; }
            }
            prop_assert!(count <= 40);
        }
    }
}
