//! Sequence-number arithmetic: wrapping comparison and RFC 3550 A.1 extended sequence tracking.

/// A 16-bit RTP sequence number. Comparison is by serial-number arithmetic (the shorter way
/// round the circle), so it is deliberately not `Ord`: 0 is after 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeqNo(pub u16);

impl SeqNo {
    /// Signed distance from `other` to `self` the short way round: `SeqNo(1).diff(SeqNo(65535))`
    /// is 2. Exactly half-way (32768 apart) counts as negative.
    pub fn diff(self, other: SeqNo) -> i16 {
        self.0.wrapping_sub(other.0) as i16
    }

    /// True when `self` comes after `other`.
    pub fn is_after(self, other: SeqNo) -> bool {
        self.diff(other) > 0
    }

    pub fn next(self) -> SeqNo {
        SeqNo(self.0.wrapping_add(1))
    }

    pub fn forward(self, n: u16) -> SeqNo {
        SeqNo(self.0.wrapping_add(n))
    }
}

/// RFC 3550 A.1 constants.
const MIN_SEQUENTIAL: u8 = 2;
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
const SEQ_MOD: u32 = 1 << 16;

/// What [`SeqTracker::update`] made of a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqUpdate {
    /// A valid packet; `extended` is its 32-bit extended sequence number (cycles + seq).
    /// `in_order` is false for a duplicate or a late (reordered) packet.
    Valid { extended: u32, in_order: bool },
    /// The source is not yet validated (RFC 3550 A.1 probation: two sequential packets).
    Probation,
    /// A jump of more than `MAX_DROPOUT` (3000) ahead or `MAX_MISORDER` (100) behind; dropped
    /// unless the next packet follows it, in which case the sender restarted and tracking
    /// resynchronizes there.
    BadJump,
    /// The packet after a `BadJump` confirmed the restart: tracking started again from it.
    Restarted { extended: u32 },
}

/// Per-source sequence state of RFC 3550 Appendix A.1, including probation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqTracker {
    max_seq: u16,
    /// Shifted count of wraps (a multiple of 65536).
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u8,
    received: u32,
}

impl SeqTracker {
    /// Starts tracking at the first packet seen; it needs one more in sequence to pass probation.
    pub fn new(first_seq: u16) -> Self {
        let mut t = SeqTracker {
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: 0,
            probation: MIN_SEQUENTIAL,
            received: 0,
        };
        t.init(first_seq);
        t.max_seq = first_seq.wrapping_sub(1);
        t
    }

    /// Starts tracking a source already known to be valid (e.g. signalled), no probation.
    pub fn new_validated(first_seq: u16) -> Self {
        let mut t = SeqTracker::new(first_seq);
        t.init(first_seq);
        t.probation = 0;
        t.received = 1;
        t
    }

    fn init(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
    }

    fn extend(&self, seq: u16) -> u32 {
        let d = i64::from(SeqNo(seq).diff(SeqNo(self.max_seq)));
        (i64::from(self.extended_max()) + d) as u32
    }

    /// Feeds one received sequence number (RFC 3550 A.1 `update_seq`).
    pub fn update(&mut self, seq: u16) -> SeqUpdate {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init(seq);
                    self.received += 1;
                    return SeqUpdate::Valid {
                        extended: self.extended_max(),
                        in_order: true,
                    };
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return SeqUpdate::Probation;
        }
        let result = if udelta < MAX_DROPOUT {
            if udelta == 0 {
                SeqUpdate::Valid {
                    extended: self.extended_max(),
                    in_order: false,
                }
            } else {
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(SEQ_MOD);
                }
                self.max_seq = seq;
                SeqUpdate::Valid {
                    extended: self.extended_max(),
                    in_order: true,
                }
            }
        } else if u32::from(udelta) <= SEQ_MOD - u32::from(MAX_MISORDER) {
            if u32::from(seq) == self.bad_seq {
                self.init(seq);
                SeqUpdate::Restarted {
                    extended: self.extended_max(),
                }
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (SEQ_MOD - 1);
                return SeqUpdate::BadJump;
            }
        } else {
            SeqUpdate::Valid {
                extended: self.extend(seq),
                in_order: false,
            }
        };
        self.received = self.received.wrapping_add(1);
        result
    }

    /// Still on probation: no packet has been accepted yet.
    pub fn on_probation(&self) -> bool {
        self.probation > 0
    }

    /// The highest sequence number seen, extended with the wrap count.
    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// The extended sequence number tracking (re)started at.
    pub fn base(&self) -> u32 {
        self.base_seq
    }

    /// Packets accepted since tracking (re)started, duplicates included (as RFC 3550 counts).
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Packets expected since tracking (re)started: extended max − base + 1.
    pub fn expected(&self) -> u32 {
        self.extended_max()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_compare() {
        assert_eq!(SeqNo(1).diff(SeqNo(65535)), 2);
        assert_eq!(SeqNo(65535).diff(SeqNo(1)), -2);
        assert!(SeqNo(0).is_after(SeqNo(65535)));
        assert!(!SeqNo(65535).is_after(SeqNo(0)));
        assert!(!SeqNo(7).is_after(SeqNo(7)));
        assert_eq!(SeqNo(65535).next(), SeqNo(0));
        assert_eq!(SeqNo(65530).forward(10), SeqNo(4));
        assert_eq!(SeqNo(32768).diff(SeqNo(0)), i16::MIN);
    }

    #[test]
    fn probation_needs_two_in_sequence() {
        let mut t = SeqTracker::new(100);
        assert!(t.on_probation());
        assert_eq!(t.update(100), SeqUpdate::Probation);
        assert_eq!(
            t.update(101),
            SeqUpdate::Valid {
                extended: 101,
                in_order: true
            }
        );
        assert!(!t.on_probation());
        assert_eq!(t.received(), 1);
        assert_eq!(t.expected(), 1);
        assert_eq!(t.base(), 101);
    }

    #[test]
    fn probation_restarts_on_a_gap() {
        let mut t = SeqTracker::new(10);
        assert_eq!(t.update(10), SeqUpdate::Probation);
        assert_eq!(t.update(50), SeqUpdate::Probation);
        assert_eq!(
            t.update(51),
            SeqUpdate::Valid {
                extended: 51,
                in_order: true
            }
        );
    }

    #[test]
    fn wrap_counts_a_cycle_and_late_packets_extend_backwards() {
        let mut t = SeqTracker::new_validated(65534);
        assert_eq!(
            t.update(65535),
            SeqUpdate::Valid {
                extended: 65535,
                in_order: true
            }
        );
        assert_eq!(
            t.update(1),
            SeqUpdate::Valid {
                extended: 65537,
                in_order: true
            }
        );
        // 0 arrives late, after the wrap: it belongs to the new cycle, before 1.
        assert_eq!(
            t.update(0),
            SeqUpdate::Valid {
                extended: 65536,
                in_order: false
            }
        );
        // 65533 arrives very late: it is from the old cycle.
        assert_eq!(
            t.update(65533),
            SeqUpdate::Valid {
                extended: 65533,
                in_order: false
            }
        );
        assert_eq!(t.extended_max(), 65537);
        assert_eq!(t.expected(), 65537 - 65534 + 1);
        assert_eq!(t.received(), 5);
    }

    #[test]
    fn a_big_jump_is_dropped_once_then_taken_as_a_restart() {
        let mut t = SeqTracker::new_validated(1000);
        assert_eq!(t.update(9000), SeqUpdate::BadJump);
        assert_eq!(
            t.update(1001),
            SeqUpdate::Valid {
                extended: 1001,
                in_order: true
            }
        );
        assert_eq!(t.update(20000), SeqUpdate::BadJump);
        assert_eq!(t.update(20001), SeqUpdate::Restarted { extended: 20001 });
        assert_eq!(t.base(), 20001);
        assert_eq!(t.received(), 1);
        assert_eq!(
            t.update(20002),
            SeqUpdate::Valid {
                extended: 20002,
                in_order: true
            }
        );
    }

    #[test]
    fn duplicate_is_valid_but_not_in_order() {
        let mut t = SeqTracker::new_validated(5);
        assert_eq!(
            t.update(5),
            SeqUpdate::Valid {
                extended: 5,
                in_order: false
            }
        );
    }
}
