//! Adaptive jitter buffer: RTP payloads in (any order, with `now`), one 20 ms frame out per
//! tick.
//!
//! Playout follows sequence numbers; each packet is one 20 ms frame (the engine negotiates
//! `ptime` 20). Timestamps only feed the jitter estimate (RFC 3550 §6.4.1 interarrival
//! jitter, plus a peak-hold of the per-packet transit deviation that decays over ~1.3 s).
//! The buffer's target depth is `1 + ceil(peak / frame)` frames, clamped to
//! `[min_delay, max_delay]`.
//!
//! How the delay adapts:
//! - **Growth is free**: when the next frame has not arrived (underrun) the playout point does
//!   not move; the tick is [`Frame::Lost`] (the decoder conceals) and the late frames play
//!   when they come. So a delay spike becomes extra buffering instead of discarded audio.
//! - **Shrink is gentle**: while the depth stays more than one frame above target for
//!   [`SHRINK_AFTER_TICKS`] ticks, one frame is dropped; above `max_delay` frames are
//!   dropped at once.
//! - **Silence (DTX)**: an underrun longer than [`PLC_TICKS`] is no longer treated as loss;
//!   ticks become [`Frame::Empty`] and the next talkspurt buffers up to target again.
//! - **Resync**: a sequence jump beyond the buffer (a restarted or switched stream) drops
//!   everything and buffers afresh.
//!
//! Slots are allocated once at construction (`max_payload` bytes each); `push` and `pop`
//! copy into and lend out of them, never allocating.

/// Ticks of underrun reported as [`Frame::Lost`] (60 ms: as long as G.711 concealment has
/// anything to fade) before the buffer assumes silence.
pub const PLC_TICKS: u32 = 3;
/// Ticks the depth must stay above target + 1 before one frame is dropped.
pub const SHRINK_AFTER_TICKS: u32 = 10;
/// Peak-hold decay per packet: the peak loses 1/64 each packet (≈ 1.3 s time constant).
const PEAK_DECAY_SHIFT: u32 = 6;

/// Jitter buffer settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JitterConfig {
    /// RTP clock rate of the stream's codec (8000 for G.711, 48000 for Opus).
    pub clock_rate: u32,
    /// Frame duration (20 ms).
    pub frame_ms: u32,
    /// Smallest target delay.
    pub min_delay_ms: u32,
    /// Largest target delay; buffered audio beyond it is dropped.
    pub max_delay_ms: u32,
    /// Largest payload accepted (bytes); slots are this big.
    pub max_payload: usize,
}

impl JitterConfig {
    /// Defaults for a stream clocked at `clock_rate`: 20 ms frames, 40–200 ms delay, payloads
    /// up to 1,500 bytes.
    pub const fn new(clock_rate: u32) -> JitterConfig {
        JitterConfig {
            clock_rate,
            frame_ms: 20,
            min_delay_ms: 40,
            max_delay_ms: 200,
            max_payload: 1500,
        }
    }
}

/// What one tick plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// The payload of the frame due now.
    Audio(&'a [u8]),
    /// The frame due now is missing: conceal it. `fec` is the *next* frame's payload when it
    /// is already here (Opus can rebuild the lost frame from its in-band FEC).
    Lost {
        /// Payload of the following frame, if buffered.
        fec: Option<&'a [u8]>,
    },
    /// Nothing to play (not started, buffering, or the sender is silent): play silence or
    /// comfort noise.
    Empty,
}

/// What [`JitterBuffer::push`] did with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored for playout.
    Stored,
    /// Same sequence number is already buffered; ignored.
    Duplicate,
    /// Its playout time has passed; ignored.
    Late,
    /// A jump in sequence numbers restarted the buffer at this packet.
    Resync,
    /// Bigger than `max_payload`; ignored.
    TooLarge,
}

/// Counters for RTCP reports and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets stored.
    pub stored: u64,
    /// Duplicates ignored.
    pub duplicates: u64,
    /// Packets that came after their playout time.
    pub late: u64,
    /// Ticks that played `Lost` for a hole (a later frame was present).
    pub lost: u64,
    /// Ticks that played `Lost` waiting for a late frame (underrun).
    pub underruns: u64,
    /// Frames dropped to shrink the delay.
    pub dropped: u64,
    /// Restarts after sequence jumps.
    pub resyncs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    Buffering,
    Playing,
}

struct Slot {
    ext: u64,
    filled: bool,
    data: Vec<u8>,
}

/// The adaptive jitter buffer of one incoming stream.
pub struct JitterBuffer {
    cfg: JitterConfig,
    slots: Vec<Slot>,
    state: State,
    /// Extended sequence number to play next.
    next: u64,
    /// Highest extended sequence number stored.
    highest: u64,
    underrun_ticks: u32,
    over_ticks: u32,
    /// Something has played since the last (re)start: frames before `next` are in the past.
    started: bool,
    /// Previous packet's arrival and timestamp, for the transit difference.
    prev: Option<(u64, u32)>,
    /// RFC 3550 interarrival jitter in µs, ×16 fixed point.
    jitter16: u64,
    peak_us: u64,
    stats: JitterStats,
}

/// Extended sequence numbers start here so a backward step never underflows.
const EXT_BASE: u64 = 1 << 32;

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(cfg: JitterConfig) -> JitterBuffer {
        let frame = cfg.frame_ms.max(1);
        let cfg = JitterConfig {
            frame_ms: frame,
            min_delay_ms: cfg.min_delay_ms.max(frame),
            max_delay_ms: cfg.max_delay_ms.max(cfg.min_delay_ms.max(frame)),
            clock_rate: cfg.clock_rate.max(1),
            ..cfg
        };
        let cap = (cfg.max_delay_ms / frame) as usize * 2 + 2;
        let slots = (0..cap)
            .map(|_| Slot {
                ext: 0,
                filled: false,
                data: Vec::with_capacity(cfg.max_payload),
            })
            .collect();
        JitterBuffer {
            cfg,
            slots,
            state: State::Idle,
            next: 0,
            highest: 0,
            underrun_ticks: 0,
            over_ticks: 0,
            started: false,
            prev: None,
            jitter16: 0,
            peak_us: 0,
            stats: JitterStats::default(),
        }
    }

    fn min_frames(&self) -> u64 {
        u64::from(self.cfg.min_delay_ms / self.cfg.frame_ms)
    }

    fn max_frames(&self) -> u64 {
        u64::from(self.cfg.max_delay_ms / self.cfg.frame_ms)
    }

    /// Current target depth in frames.
    pub fn target_frames(&self) -> u64 {
        let frame_us = u64::from(self.cfg.frame_ms) * 1000;
        (1 + self.peak_us.div_ceil(frame_us)).clamp(self.min_frames(), self.max_frames())
    }

    /// Current target delay in milliseconds.
    pub fn target_delay_ms(&self) -> u32 {
        self.target_frames() as u32 * self.cfg.frame_ms
    }

    /// Frames from the playout point to the newest one stored (holes included).
    pub fn depth_frames(&self) -> u64 {
        match self.state {
            State::Idle => 0,
            _ => (self.highest + 1).saturating_sub(self.next),
        }
    }

    /// RFC 3550 interarrival jitter, in RTP timestamp units (for RTCP receiver reports).
    pub fn jitter_rtp_units(&self) -> u32 {
        ((self.jitter16 / 16) * u64::from(self.cfg.clock_rate) / 1_000_000) as u32
    }

    /// Counters.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    fn slot_of(&self, ext: u64) -> usize {
        (ext % self.slots.len() as u64) as usize
    }

    fn clear(&mut self) {
        for s in &mut self.slots {
            s.filled = false;
        }
    }

    fn store(&mut self, ext: u64, payload: &[u8]) {
        let i = self.slot_of(ext);
        let slot = &mut self.slots[i];
        slot.ext = ext;
        slot.filled = true;
        slot.data.clear();
        slot.data.extend_from_slice(payload);
        self.highest = self.highest.max(ext);
        self.stats.stored += 1;
    }

    fn has(&self, ext: u64) -> bool {
        let s = &self.slots[self.slot_of(ext)];
        s.filled && s.ext == ext
    }

    fn estimate(&mut self, now_us: u64, ts: u32) {
        if let Some((prev_now, prev_ts)) = self.prev {
            let arrival = now_us as i64 - prev_now as i64;
            let media = i64::from(ts.wrapping_sub(prev_ts) as i32) * 1_000_000
                / i64::from(self.cfg.clock_rate);
            let d = (arrival - media).unsigned_abs();
            // J += (|D| - J) / 16, kept ×16 to stay in integers.
            self.jitter16 = self.jitter16 + d - self.jitter16 / 16;
            self.peak_us = d.max(self.peak_us - (self.peak_us >> PEAK_DECAY_SHIFT));
        }
        self.prev = Some((now_us, ts));
    }

    /// Offers one received packet (`seq`/`ts` from its RTP header, `now_us` its arrival).
    pub fn push(&mut self, now_us: u64, seq: u16, ts: u32, payload: &[u8]) -> PushOutcome {
        if payload.len() > self.cfg.max_payload {
            return PushOutcome::TooLarge;
        }
        if self.state == State::Idle {
            self.estimate(now_us, ts);
            self.state = State::Buffering;
            self.next = EXT_BASE + u64::from(seq);
            self.highest = self.next;
            self.store(self.next, payload);
            return PushOutcome::Stored;
        }
        let delta = i64::from(seq.wrapping_sub(self.highest as u16) as i16);
        let ext = (self.highest as i64 + delta) as u64;
        let cap = self.slots.len() as u64;
        if ext >= self.next + cap || ext + cap < self.next {
            // Further than the buffer can hold either way: a new stream, not jitter.
            self.clear();
            self.prev = None;
            self.estimate(now_us, ts);
            self.state = State::Buffering;
            self.next = ext;
            self.highest = ext;
            self.underrun_ticks = 0;
            self.over_ticks = 0;
            self.started = false;
            self.store(ext, payload);
            self.stats.resyncs += 1;
            return PushOutcome::Resync;
        }
        if self.has(ext) {
            self.stats.duplicates += 1;
            return PushOutcome::Duplicate;
        }
        self.estimate(now_us, ts);
        if ext < self.next {
            if !self.started && self.highest - ext < cap {
                // Nothing played yet: an earlier frame simply moves the start back.
                self.next = ext;
            } else {
                self.stats.late += 1;
                return PushOutcome::Late;
            }
        }
        self.store(ext, payload);
        PushOutcome::Stored
    }

    /// The frame for this 20 ms tick. Playout depends only on what has arrived (the tick
    /// itself is the clock); `now_us` is taken so push and pop share one time base, and is
    /// unused today.
    pub fn pop(&mut self, _now_us: u64) -> Frame<'_> {
        match self.state {
            State::Idle => return Frame::Empty,
            State::Buffering => {
                if self.depth_frames() < self.target_frames() {
                    return Frame::Empty;
                }
                self.state = State::Playing;
                self.started = true;
                self.underrun_ticks = 0;
                self.over_ticks = 0;
            }
            State::Playing => {}
        }
        let depth = self.depth_frames();
        if depth == 0 {
            self.underrun_ticks += 1;
            if self.underrun_ticks <= PLC_TICKS {
                self.stats.underruns += 1;
                return Frame::Lost { fec: None };
            }
            self.state = State::Buffering;
            return Frame::Empty;
        }
        self.underrun_ticks = 0;
        let target = self.target_frames();
        let mut drop = 0;
        if depth > self.max_frames() {
            drop = depth - target;
            self.over_ticks = 0;
        } else if depth > target + 1 {
            self.over_ticks += 1;
            if self.over_ticks >= SHRINK_AFTER_TICKS {
                drop = 1;
                self.over_ticks = 0;
            }
        } else {
            self.over_ticks = 0;
        }
        for _ in 0..drop {
            let i = self.slot_of(self.next);
            if self.slots[i].ext == self.next {
                self.slots[i].filled = false;
            }
            self.next += 1;
            self.stats.dropped += 1;
        }
        let ext = self.next;
        self.next += 1;
        let i = self.slot_of(ext);
        if self.has(ext) {
            self.slots[i].filled = false;
            Frame::Audio(&self.slots[i].data)
        } else {
            self.stats.lost += 1;
            let n = self.slot_of(ext + 1);
            let fec = self.has(ext + 1).then(|| &self.slots[n].data[..]);
            Frame::Lost { fec }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Out {
        A(u16),
        L(Option<u16>),
        E,
    }
    use Out::*;

    fn cfg() -> JitterConfig {
        JitterConfig {
            max_payload: 2,
            ..JitterConfig::new(8000)
        }
    }

    fn seq_of(p: &[u8]) -> u16 {
        u16::from_le_bytes([p[0], p[1]])
    }

    /// Packets are `(arrival_ms, seq, ts)`; ticks fire at 10, 30, 50 … ms, each after every
    /// packet that has arrived by then.
    fn sim(jb: &mut JitterBuffer, packets: &[(u64, u16, u32)], ticks: usize) -> Vec<Out> {
        let mut packets = packets.to_vec();
        packets.sort_by_key(|p| p.0);
        let mut it = packets.into_iter().peekable();
        let mut out = Vec::new();
        for k in 0..ticks as u64 {
            let t = k * 20 + 10;
            while let Some(&(at, seq, ts)) = it.peek() {
                if at > t {
                    break;
                }
                jb.push(at * 1000, seq, ts, &seq.to_le_bytes());
                it.next();
            }
            out.push(match jb.pop(t * 1000) {
                Frame::Audio(p) => A(seq_of(p)),
                Frame::Lost { fec } => L(fec.map(seq_of)),
                Frame::Empty => E,
            });
        }
        out
    }

    fn steady(from: u16, n: u16) -> Vec<(u64, u16, u32)> {
        (0..n)
            .map(|i| {
                let seq = from.wrapping_add(i);
                (u64::from(i) * 20, seq, u32::from(i) * 160)
            })
            .collect()
    }

    #[test]
    fn in_order_plays_after_min_delay() {
        let mut jb = JitterBuffer::new(cfg());
        assert_eq!(jb.pop(0), Frame::Empty);
        let out = sim(&mut jb, &steady(0, 6), 6);
        assert_eq!(out, vec![E, A(0), A(1), A(2), A(3), A(4)]);
        assert_eq!(jb.target_delay_ms(), 40);
        assert_eq!(jb.jitter_rtp_units(), 0);
    }

    #[test]
    fn loss_is_reported_with_the_next_payload_for_fec() {
        let mut jb = JitterBuffer::new(cfg());
        let mut p = steady(0, 8);
        p.remove(3);
        let out = sim(&mut jb, &p, 8);
        assert_eq!(out, vec![E, A(0), A(1), A(2), L(Some(4)), A(4), A(5), A(6)]);
        assert_eq!(jb.stats().lost, 1);
    }

    #[test]
    fn an_earlier_first_packet_moves_the_start_back() {
        let mut jb = JitterBuffer::new(cfg());
        let p = [(0, 11, 1760), (5, 10, 1600), (20, 12, 1920), (40, 13, 2080)];
        let out = sim(&mut jb, &p, 4);
        // The swap measured 25 ms of jitter: target 3 frames, so the first tick buffers.
        assert_eq!(out, vec![E, A(10), A(11), A(12)]);
        assert_eq!(jb.stats().late, 0);
    }

    #[test]
    fn reorder_within_the_buffer_plays_in_order() {
        let mut jb = JitterBuffer::new(cfg());
        let mut p = steady(0, 8);
        p[3].0 = 85; // seq 3 overtaken by seq 4 (80 ms)
        let out = sim(&mut jb, &p, 8);
        assert_eq!(out, vec![E, A(0), A(1), A(2), A(3), A(4), A(5), A(6)]);
        // |D| of 25 ms for seq 3 raises the target to 1 + ceil(25/20) = 3 frames.
        assert_eq!(jb.target_delay_ms(), 60);
    }

    #[test]
    fn duplicates_and_late_packets_are_ignored() {
        let mut jb = JitterBuffer::new(cfg());
        assert_eq!(jb.push(0, 0, 0, &[0, 0]), PushOutcome::Stored);
        assert_eq!(jb.push(1000, 0, 0, &[0, 0]), PushOutcome::Duplicate);
        assert_eq!(jb.push(20_000, 1, 160, &[1, 0]), PushOutcome::Stored);
        assert_eq!(jb.pop(21_000), Frame::Audio(&[0, 0]));
        assert_eq!(jb.push(40_000, 3, 480, &[3, 0]), PushOutcome::Stored);
        assert_eq!(jb.pop(41_000), Frame::Audio(&[1, 0]));
        assert_eq!(jb.pop(61_000), Frame::Lost { fec: Some(&[3, 0]) });
        assert_eq!(jb.push(62_000, 2, 320, &[2, 0]), PushOutcome::Late);
        assert_eq!(jb.push(62_000, 3, 480, &[3, 0]), PushOutcome::Duplicate);
        assert_eq!(jb.pop(81_000), Frame::Audio(&[3, 0]));
        assert_eq!(jb.push(82_000, 9, 0, &[0; 3]), PushOutcome::TooLarge);
        let s = jb.stats();
        assert_eq!((s.stored, s.duplicates, s.late, s.lost), (3, 2, 1, 1));
    }

    #[test]
    fn sequence_wrap_around() {
        let mut jb = JitterBuffer::new(cfg());
        let out = sim(&mut jb, &steady(65533, 6), 6);
        assert_eq!(out, vec![E, A(65533), A(65534), A(65535), A(0), A(1)]);
    }

    #[test]
    fn delay_spike_grows_the_buffer_then_it_shrinks() {
        let mut jb = JitterBuffer::new(cfg());
        let mut p = steady(0, 200);
        for pkt in &mut p[5..8] {
            pkt.0 = 160; // seq 5, 6, 7 held up and delivered in one burst with seq 8
        }
        let out = sim(&mut jb, &p, 200);
        // Underrun: the playout point waits for seq 5 instead of skipping it.
        assert_eq!(
            &out[..12],
            &[
                E,
                A(0),
                A(1),
                A(2),
                A(3),
                A(4),
                L(None),
                L(None),
                A(5),
                A(6),
                A(7),
                A(8)
            ]
        );
        assert_eq!(jb.stats().underruns, 2);
        // Then the peak decays back to the 40 ms floor and one frame is dropped.
        assert_eq!(jb.target_delay_ms(), 40);
        assert_eq!(jb.stats().dropped, 1);
        let played: Vec<u16> = out[8..]
            .iter()
            .map(|o| match o {
                A(s) => *s,
                other => panic!("{other:?} in {out:?}"),
            })
            .collect();
        let skipped: Vec<u16> = (5..played[played.len() - 1])
            .filter(|s| !played.contains(s))
            .collect();
        assert_eq!(skipped.len(), 1, "{out:?}");
        // Three frames at each tick (target + 1, inside the hysteresis), two after the pop.
        assert_eq!(jb.depth_frames(), 2);
    }

    #[test]
    fn silence_after_plc_then_rebuffer() {
        let mut jb = JitterBuffer::new(cfg());
        let mut p = steady(0, 4);
        // DTX: sequence numbers continue, time and timestamps jump 400 ms.
        p.extend((4..8u16).map(|s| (u64::from(s) * 20 + 400, s, u32::from(s) * 160 + 3200)));
        let out = sim(&mut jb, &p, 30);
        let mut want = vec![E, A(0), A(1), A(2), A(3), L(None), L(None), L(None)];
        // seq 4 arrives at 480 ms (tick 24 buffers it), seq 5 at 500 ms starts playout.
        want.extend([E; 17]);
        want.extend([A(4), A(5), A(6), A(7), L(None)]);
        assert_eq!(out, want);
        assert_eq!(jb.target_delay_ms(), 40, "DTX is not jitter");
        // Rebuffering after silence does not reopen the past: an old frame is late.
        assert_eq!(jb.push(700_000, 2, 320, &[2, 0]), PushOutcome::Late);
    }

    #[test]
    fn sequence_jump_resyncs() {
        let mut jb = JitterBuffer::new(cfg());
        let mut p = steady(0, 3);
        p.extend((0..3u16).map(|i| (60 + u64::from(i) * 20, 5000 + i, 480 + u32::from(i) * 160)));
        let out = sim(&mut jb, &p, 7);
        assert_eq!(out, vec![E, A(0), A(1), E, A(5000), A(5001), A(5002)]);
        assert_eq!(jb.stats().resyncs, 1);
        assert_eq!(jb.push(200_000, 4000, 0, &[0, 0]), PushOutcome::Resync);
    }
}
