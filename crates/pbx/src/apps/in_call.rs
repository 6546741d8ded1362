//! In-call feature codes (`[features] in_call = true`): the digits one phone presses during
//! a bridged call, as a sans-IO state machine. `##` + number + `#` (or a pause) asks for a
//! blind transfer of the other party to that number, `*2` + number the same as an attended
//! transfer (the pressing phone talks to the number first); `*1` toggles recording. Time comes in
//! as `now`; [`Collector::deadline`] says when [`Collector::on_timeout`] is due.
//!
//! Anything else resets quietly: digits pressed for an IVR at the far end must not be
//! swallowed, and the relay forwards every key anyway.

use std::time::{Duration, Instant};

/// A pause this long after a number ends it (or, before the number, abandons the code).
pub const DIGIT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longer than any number the dialplan resolves.
const MAX_NUMBER: usize = 20;

/// What a phone asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InCall {
    /// `##` + number: the other party is transferred (blind) to the number.
    BlindTransfer(String),
    /// `*2` + number: the other party waits on hold while the number is called and talks
    /// to the pressing phone; it is transferred there when the pressing phone hangs up.
    AttendedTransfer(String),
    /// `*1`: recording on if off, off if on.
    ToggleRecording,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    /// `#` or `*` pressed, waiting for the second key.
    Prefix(char),
    /// `##` (attended: `*2`) pressed: the number so far.
    Number {
        attended: bool,
        digits: String,
    },
}

fn asked(attended: bool, digits: String) -> InCall {
    if attended {
        InCall::AttendedTransfer(digits)
    } else {
        InCall::BlindTransfer(digits)
    }
}

/// One phone's keys in one call.
#[derive(Debug, Clone)]
pub struct Collector {
    state: State,
    /// When the code under way is finished or abandoned without another key.
    deadline: Option<Instant>,
}

impl Default for Collector {
    fn default() -> Self {
        Collector {
            state: State::Idle,
            deadline: None,
        }
    }
}

impl Collector {
    pub fn on_digit(&mut self, now: Instant, digit: char) -> Option<InCall> {
        let state = std::mem::replace(&mut self.state, State::Idle);
        self.deadline = None;
        let next = match (state, digit) {
            (State::Idle, '#' | '*') => State::Prefix(digit),
            (State::Idle, _) => State::Idle,
            (State::Prefix('#'), '#') => State::Number {
                attended: false,
                digits: String::new(),
            },
            (State::Prefix('*'), '2') => State::Number {
                attended: true,
                digits: String::new(),
            },
            (State::Prefix('*'), '1') => return Some(InCall::ToggleRecording),
            // A new prefix starts over.
            (State::Prefix(_), '#' | '*') => State::Prefix(digit),
            (State::Prefix(_), _) => State::Idle,
            (State::Number { attended, digits }, '#') if !digits.is_empty() => {
                return Some(asked(attended, digits))
            }
            (State::Number { .. }, '#' | '*') => State::Idle,
            (
                State::Number {
                    attended,
                    mut digits,
                },
                d,
            ) if d.is_ascii_digit() && digits.len() < MAX_NUMBER => {
                digits.push(d);
                State::Number { attended, digits }
            }
            (State::Number { .. }, _) => State::Idle,
        };
        if next != State::Idle {
            self.deadline = Some(now + DIGIT_TIMEOUT);
        }
        self.state = next;
        None
    }

    /// A pause: a number typed after `##` is complete; a lone prefix is abandoned.
    pub fn on_timeout(&mut self, now: Instant) -> Option<InCall> {
        match self.deadline {
            Some(d) if now >= d => {}
            _ => return None,
        }
        self.deadline = None;
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Number { attended, digits } if !digits.is_empty() => {
                Some(asked(attended, digits))
            }
            _ => None,
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(c: &mut Collector, now: Instant, keys: &str) -> Vec<InCall> {
        keys.chars().filter_map(|k| c.on_digit(now, k)).collect()
    }

    #[test]
    fn hash_hash_number_hash_is_a_blind_transfer() {
        let t = Instant::now();
        let mut c = Collector::default();
        assert_eq!(
            press(&mut c, t, "##202#"),
            [InCall::BlindTransfer("202".into())]
        );
        assert_eq!(c.deadline(), None);
    }

    #[test]
    fn a_pause_after_the_number_ends_it_and_not_before() {
        let t = Instant::now();
        let mut c = Collector::default();
        assert!(press(&mut c, t, "##20").is_empty());
        let later = t + Duration::from_secs(1);
        assert!(press(&mut c, later, "2").is_empty());
        // Three seconds from the last key, not the first.
        assert_eq!(c.on_timeout(t + DIGIT_TIMEOUT), None);
        assert_eq!(c.deadline(), Some(later + DIGIT_TIMEOUT));
        assert_eq!(
            c.on_timeout(later + DIGIT_TIMEOUT),
            Some(InCall::BlindTransfer("202".into()))
        );
        assert_eq!(c.on_timeout(later + DIGIT_TIMEOUT * 2), None);
    }

    #[test]
    fn star_one_toggles_recording_and_other_keys_pass() {
        let t = Instant::now();
        let mut c = Collector::default();
        assert_eq!(press(&mut c, t, "5*1"), [InCall::ToggleRecording]);
        assert!(press(&mut c, t, "123*3#4").is_empty());
        // An abandoned prefix expires with nothing to do, and the next code works.
        assert!(press(&mut c, t, "#").is_empty());
        assert_eq!(c.on_timeout(t + DIGIT_TIMEOUT), None);
        assert_eq!(c.deadline(), None);
        assert_eq!(
            press(&mut c, t, "*##7#"),
            [InCall::BlindTransfer("7".into())]
        );
    }

    #[test]
    fn star_two_number_is_an_attended_transfer_by_hash_or_pause() {
        let t = Instant::now();
        let mut c = Collector::default();
        assert_eq!(
            press(&mut c, t, "*2203#"),
            [InCall::AttendedTransfer("203".into())]
        );
        assert!(press(&mut c, t, "*220").is_empty());
        assert_eq!(c.on_timeout(t + DIGIT_TIMEOUT / 2), None);
        assert_eq!(
            c.on_timeout(t + DIGIT_TIMEOUT),
            Some(InCall::AttendedTransfer("20".into()))
        );
        // `*21*` and an empty `*2#` give up; the next code is read afresh.
        assert!(press(&mut c, t, "*21*").is_empty());
        assert_eq!(c.on_timeout(t + DIGIT_TIMEOUT), None);
        assert!(press(&mut c, t, "*2#").is_empty());
        assert_eq!(
            press(&mut c, t, "##5#"),
            [InCall::BlindTransfer("5".into())]
        );
    }

    #[test]
    fn an_empty_or_cancelled_number_does_nothing() {
        let t = Instant::now();
        let mut c = Collector::default();
        assert!(press(&mut c, t, "###").is_empty());
        assert!(press(&mut c, t, "##20*").is_empty());
        assert_eq!(c.on_timeout(t + DIGIT_TIMEOUT), None);
        let long = "1".repeat(MAX_NUMBER + 1);
        assert!(press(&mut c, t, &format!("##{long}#")).is_empty());
    }
}
