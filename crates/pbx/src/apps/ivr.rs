//! The auto-attendant: a caller hears the menu's greeting, presses a key (or types an
//! extension when `direct_dial` is on) and is handed to that key's target. No key within
//! `timeout`, or a key that leads nowhere, repeats the menu up to `retries` times; then the
//! caller goes to `invalid` (or hears goodbye when the menu has none).
//!
//! A key pressed during the greeting cuts it short. With `direct_dial` off, a key is taken at
//! once. With it on, a key may be the first digit of an extension, so the menu waits
//! [`INTER_DIGIT`] after each key (or until `#`) before deciding: a single key that is an
//! option is that option, anything longer is dialled.
//!
//! Time is handed in (`now`); the core asks [`Ivrs::poll_timeout`] when to call
//! [`Ivrs::handle_timeout`]. Where a target leads (an extension, a room, another menu, a
//! mailbox) is the core's business through `routing`; this machine only names the target.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use kentongan_engine::LegId;

use super::{Action, Prompt};

pub const INVALID: Prompt = Prompt("ivr-invalid");
pub const TIMEOUT: Prompt = Prompt("ivr-timeout");
pub const TRANSFERRING: Prompt = Prompt("ivr-transferring");
pub const GOODBYE: Prompt = Prompt("vm-goodbye");

/// Every catalogue prompt a menu uses (its greeting is its own).
pub const PROMPTS: &[Prompt] = &[INVALID, TIMEOUT, TRANSFERRING, GOODBYE];

/// How long direct dial waits for the next digit of a number.
pub const INTER_DIGIT: Duration = Duration::from_secs(2);

/// What a menu does, from its `[[ivr]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    /// Its index in `Config::ivrs` (the greeting the core plays).
    pub index: usize,
    pub timeout: Duration,
    pub retries: u32,
    pub direct_dial: bool,
    pub options: BTreeMap<char, String>,
    pub invalid: Option<String>,
}

impl Menu {
    pub fn from_config(index: usize, ivr: &crate::config::Ivr) -> Menu {
        Menu {
            index,
            timeout: ivr.timeout,
            retries: ivr.retries,
            direct_dial: ivr.direct_dial,
            options: ivr.options.clone(),
            invalid: ivr.invalid.clone(),
        }
    }
}

/// How the caller left the menu (for `/metrics`: IVR calls by option).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Option(char),
    DirectDial,
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Hearing the greeting (or a "try again").
    Greeting,
    /// The greeting has played; waiting for keys.
    Waiting,
    /// Handed to a target or hanging up.
    Done,
}

#[derive(Debug)]
struct Caller {
    menu: Menu,
    phase: Phase,
    /// Failed attempts so far (no key, or a key leading nowhere).
    failures: u32,
    digits: String,
    deadline: Option<Instant>,
}

/// Callers in menus, by leg.
#[derive(Debug, Default)]
pub struct Ivrs {
    legs: HashMap<LegId, Caller>,
}

impl Ivrs {
    /// A caller reached `menu` on `leg` (a new call, or an option of another menu).
    pub fn enter(&mut self, leg: LegId, menu: Menu) -> Vec<Action> {
        let index = menu.index;
        self.legs.insert(
            leg,
            Caller {
                menu,
                phase: Phase::Greeting,
                failures: 0,
                digits: String::new(),
                deadline: None,
            },
        );
        vec![
            Action::PlayGreeting { leg, menu: index },
            Action::NotifyAfterPrompts { leg },
        ]
    }

    /// Everything queued for `leg` has played: the wait for a key starts now.
    pub fn on_prompts_done(&mut self, leg: LegId, now: Instant) {
        let Some(c) = self.legs.get_mut(&leg) else {
            return;
        };
        if c.phase == Phase::Greeting {
            c.phase = Phase::Waiting;
            if c.digits.is_empty() {
                c.deadline = Some(now + c.menu.timeout);
            }
        }
    }

    pub fn on_digit(&mut self, leg: LegId, digit: char, now: Instant) -> Vec<Action> {
        let Some(c) = self.legs.get_mut(&leg) else {
            return Vec::new();
        };
        if c.phase == Phase::Done {
            return Vec::new();
        }
        let mut out = Vec::new();
        if c.digits.is_empty() && c.phase == Phase::Greeting {
            out.push(Action::StopSounds { leg });
        }
        if !c.menu.direct_dial {
            c.digits.clear();
            c.digits.push(digit);
            out.extend(self.decide(leg));
            return out;
        }
        if digit == '#' && !c.digits.is_empty() {
            out.extend(self.decide(leg));
            return out;
        }
        if c.digits.len() < 32 {
            c.digits.push(digit);
        }
        c.deadline = Some(now + INTER_DIGIT);
        out
    }

    /// The earliest instant [`Ivrs::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.legs.values().filter_map(|c| c.deadline).min()
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let due: Vec<LegId> = self
            .legs
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| d <= now))
            .map(|(l, _)| *l)
            .collect();
        let mut out = Vec::new();
        for leg in due {
            let Some(c) = self.legs.get_mut(&leg) else {
                continue;
            };
            c.deadline = None;
            if c.digits.is_empty() {
                out.extend(self.fail(leg, TIMEOUT));
            } else {
                out.extend(self.decide(leg));
            }
        }
        out
    }

    /// The core could not reach the target the menu named (no such extension, nobody
    /// registered): the caller is told and tries again.
    pub fn target_failed(&mut self, leg: LegId) -> Vec<Action> {
        match self.legs.get_mut(&leg) {
            Some(c) if c.phase == Phase::Done => {
                c.phase = Phase::Waiting;
                self.fail(leg, INVALID)
            }
            _ => Vec::new(),
        }
    }

    /// How the caller on `leg` left (set once it was handed on).
    pub fn choice(&self, leg: LegId) -> Option<Choice> {
        let c = self.legs.get(&leg)?;
        if c.phase != Phase::Done {
            return None;
        }
        let mut chars = c.digits.chars();
        Some(match (chars.next(), chars.next()) {
            (None, _) => Choice::Invalid,
            (Some(k), None) if c.menu.options.contains_key(&k) => Choice::Option(k),
            _ => Choice::DirectDial,
        })
    }

    fn decide(&mut self, leg: LegId) -> Vec<Action> {
        let Some(c) = self.legs.get_mut(&leg) else {
            return Vec::new();
        };
        c.deadline = None;
        let digits = std::mem::take(&mut c.digits);
        let mut chars = digits.chars();
        let target = match (chars.next(), chars.next()) {
            (Some(k), None) => c.menu.options.get(&k).cloned(),
            _ => None,
        };
        let target = target.or_else(|| {
            (c.menu.direct_dial && digits.len() > 1 && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.clone())
        });
        match target {
            Some(target) => {
                c.phase = Phase::Done;
                c.digits = digits;
                vec![
                    Action::Say {
                        leg,
                        prompt: TRANSFERRING,
                    },
                    Action::Connect { leg, target },
                ]
            }
            None => self.fail(leg, INVALID),
        }
    }

    /// One failed attempt: the menu again, or after the retries the `invalid` target.
    fn fail(&mut self, leg: LegId, why: Prompt) -> Vec<Action> {
        let Some(c) = self.legs.get_mut(&leg) else {
            return Vec::new();
        };
        c.failures += 1;
        c.digits.clear();
        c.deadline = None;
        let say = |prompt| Action::Say { leg, prompt };
        if c.failures > c.menu.retries {
            c.phase = Phase::Done;
            return match c.menu.invalid.clone() {
                Some(target) => vec![say(why), Action::Connect { leg, target }],
                None => vec![say(why), say(GOODBYE), Action::HangUpAfterPrompts { leg }],
            };
        }
        c.phase = Phase::Greeting;
        vec![
            say(why),
            Action::PlayGreeting {
                leg,
                menu: c.menu.index,
            },
            Action::NotifyAfterPrompts { leg },
        ]
    }

    /// The caller hung up, or left the menu for its target.
    pub fn leave(&mut self, leg: LegId) {
        self.legs.remove(&leg);
    }

    pub fn count(&self) -> usize {
        self.legs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn menu(direct_dial: bool, retries: u32) -> Menu {
        Menu {
            index: 0,
            timeout: Duration::from_secs(5),
            retries,
            direct_dial,
            options: [('1', "201".to_owned()), ('2', "701".to_owned())].into(),
            invalid: Some("200".into()),
        }
    }

    fn connect(a: &[Action]) -> Option<&str> {
        a.iter().find_map(|x| match x {
            Action::Connect { target, .. } => Some(target.as_str()),
            _ => None,
        })
    }

    fn said(a: &[Action]) -> Vec<&'static str> {
        a.iter()
            .filter_map(|x| match x {
                Action::Say { prompt, .. } => Some(prompt.0),
                Action::PlayGreeting { .. } => Some("greeting"),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_key_during_the_greeting_cuts_it_and_is_taken_at_once() {
        let (mut m, leg, t0) = (Ivrs::default(), LegId(1), Instant::now());
        let a = m.enter(leg, menu(false, 3));
        assert_eq!(
            a,
            [
                Action::PlayGreeting { leg, menu: 0 },
                Action::NotifyAfterPrompts { leg }
            ]
        );
        assert_eq!(m.poll_timeout(), None, "no timer while the greeting plays");
        let a = m.on_digit(leg, '1', t0);
        assert_eq!(a[0], Action::StopSounds { leg });
        assert_eq!(connect(&a), Some("201"));
        assert_eq!(m.choice(leg), Some(Choice::Option('1')));
        // Keys after the choice do nothing.
        assert!(m.on_digit(leg, '2', t0).is_empty());
    }

    #[test]
    fn no_input_repeats_the_menu_then_goes_to_invalid() {
        let (mut m, leg, t0) = (Ivrs::default(), LegId(1), Instant::now());
        m.enter(leg, menu(false, 2));
        for round in 0..2 {
            let t = t0 + Duration::from_secs(10 * round);
            m.on_prompts_done(leg, t);
            assert_eq!(m.poll_timeout(), Some(t + Duration::from_secs(5)));
            assert!(m.handle_timeout(t + Duration::from_millis(4999)).is_empty());
            let a = m.handle_timeout(t + Duration::from_secs(5));
            assert_eq!(said(&a), ["ivr-timeout", "greeting"], "round {round}");
        }
        let t = t0 + Duration::from_secs(30);
        m.on_prompts_done(leg, t);
        let a = m.handle_timeout(t + Duration::from_secs(5));
        assert_eq!(said(&a), ["ivr-timeout"]);
        assert_eq!(connect(&a), Some("200"));
        assert_eq!(m.choice(leg), Some(Choice::Invalid));
        assert_eq!(m.poll_timeout(), None);
    }

    #[test]
    fn a_wrong_key_counts_as_a_failure_and_without_invalid_the_call_ends() {
        let (mut m, leg, t0) = (Ivrs::default(), LegId(4), Instant::now());
        let mut mn = menu(false, 1);
        mn.invalid = None;
        m.enter(leg, mn);
        m.on_prompts_done(leg, t0);
        assert_eq!(said(&m.on_digit(leg, '9', t0)), ["ivr-invalid", "greeting"]);
        m.on_prompts_done(leg, t0);
        let a = m.on_digit(leg, '7', t0);
        assert_eq!(said(&a), ["ivr-invalid", "vm-goodbye"]);
        assert_eq!(a.last(), Some(&Action::HangUpAfterPrompts { leg }));
    }

    #[test]
    fn direct_dial_collects_digits_until_a_pause_or_hash() {
        let (mut m, leg, t0) = (Ivrs::default(), LegId(2), Instant::now());
        m.enter(leg, menu(true, 3));
        m.on_prompts_done(leg, t0);
        let ms = Duration::from_millis;
        assert_eq!(m.on_digit(leg, '2', t0 + ms(100)), []);
        assert_eq!(m.on_digit(leg, '0', t0 + ms(400)), []);
        assert_eq!(m.on_digit(leg, '2', t0 + ms(700)), []);
        assert_eq!(m.poll_timeout(), Some(t0 + ms(700) + INTER_DIGIT));
        assert!(m.handle_timeout(t0 + ms(2000)).is_empty());
        let a = m.handle_timeout(t0 + ms(2700));
        assert_eq!(connect(&a), Some("202"));
        assert_eq!(m.choice(leg), Some(Choice::DirectDial));
        // The core found no such extension: the caller tries again.
        assert_eq!(said(&m.target_failed(leg)), ["ivr-invalid", "greeting"]);

        // One key that is an option, after the pause, is that option; `#` ends a number.
        let leg = LegId(3);
        m.enter(leg, menu(true, 3));
        m.on_prompts_done(leg, t0);
        m.on_digit(leg, '2', t0);
        assert_eq!(connect(&m.handle_timeout(t0 + INTER_DIGIT)), Some("701"));
        let leg = LegId(5);
        m.enter(leg, menu(true, 3));
        m.on_digit(leg, '2', t0);
        m.on_digit(leg, '0', t0);
        m.on_digit(leg, '1', t0);
        assert_eq!(connect(&m.on_digit(leg, '#', t0)), Some("201"));
    }
}
