//! Leaving a message: a call an extension did not take (busy, unanswered, nobody registered)
//! is answered by the PBX, which plays the owner's recorded busy or unavailable greeting, or
//! else says why ("the person at extension 2 0 1 is not available" / "… is on another call",
//! with the owner's recorded name in place of the number if there is one), asks for a
//! message, beeps, and records what the caller says until `#`, the length limit, a long
//! silence, or the caller hanging up. Then it says goodbye and hangs up.
//!
//! The core stores what the engine recorded (WAV file, then the row); this state machine only
//! decides what the caller hears and when recording starts and stops.

use std::collections::HashMap;
use std::time::Duration;

use kentongan_engine::LegId;

use super::{say_digits, Action, Cue, Prompt};
use crate::routing::VoicemailGreeting;
use crate::store::GreetingKind;

pub const UNAVAILABLE_BEFORE: Prompt = Prompt("vm-unavailable.1");
pub const UNAVAILABLE_AFTER: Prompt = Prompt("vm-unavailable.2");
pub const BUSY_BEFORE: Prompt = Prompt("vm-busy.1");
pub const BUSY_AFTER: Prompt = Prompt("vm-busy.2");
/// After the owner's recorded name.
pub const NAME_UNAVAILABLE: Prompt = Prompt("vm-is-unavailable");
pub const NAME_BUSY: Prompt = Prompt("vm-is-busy");
pub const LEAVE_AFTER_BEEP: Prompt = Prompt("vm-leave-after-beep");
pub const MAILBOX_FULL: Prompt = Prompt("vm-mailbox-full");
pub const SAVED: Prompt = Prompt("vm-saved");
pub const GOODBYE: Prompt = Prompt("vm-goodbye");

/// Every prompt leaving a message uses.
pub const PROMPTS: &[Prompt] = &[
    UNAVAILABLE_BEFORE,
    UNAVAILABLE_AFTER,
    BUSY_BEFORE,
    BUSY_AFTER,
    NAME_UNAVAILABLE,
    NAME_BUSY,
    LEAVE_AFTER_BEEP,
    MAILBOX_FULL,
    SAVED,
    GOODBYE,
];

/// How long a silence ends a message.
pub const SILENCE: Duration = Duration::from_secs(5);

/// What the mailbox allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_message: Duration,
    /// The mailbox holds as many messages as it may.
    pub full: bool,
}

/// The greetings a mailbox's owner recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    pub unavailable: bool,
    pub busy: bool,
    pub name: bool,
}

impl Recorded {
    pub fn has(self, kind: GreetingKind) -> bool {
        match kind {
            GreetingKind::Unavailable => self.unavailable,
            GreetingKind::Busy => self.busy,
            GreetingKind::Name => self.name,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Hearing the greeting and the beep.
    Greeting,
    Recording,
    /// Saying goodbye.
    Done,
}

/// Callers leaving messages, by leg.
#[derive(Debug, Default)]
pub struct Voicemail {
    legs: HashMap<LegId, Stage>,
}

impl Voicemail {
    /// A caller reached `mailbox`'s voicemail on `leg`. `recorded`: the greetings its owner
    /// recorded. The busy or unavailable one, if recorded, is all the caller hears before
    /// the beep; else the generated words read the owner's recorded name, or the number.
    pub fn enter(
        &mut self,
        leg: LegId,
        mailbox: &str,
        greeting: VoicemailGreeting,
        limits: Limits,
        recorded: Recorded,
    ) -> Vec<Action> {
        let say = |prompt| Action::Say { leg, prompt };
        let own = match greeting {
            VoicemailGreeting::Busy => GreetingKind::Busy,
            VoicemailGreeting::Unavailable => GreetingKind::Unavailable,
        };
        // The owner's own words say what to do; only the beep follows. A full mailbox says
        // so in the generated words.
        if recorded.has(own) && !limits.full {
            self.legs.insert(leg, Stage::Greeting);
            return vec![
                Action::PlayRecordedGreeting { leg, kind: own },
                Action::Cue {
                    leg,
                    cue: Cue::Beep,
                },
                Action::RecordAfterPrompts {
                    leg,
                    max: limits.max_message,
                    silence: SILENCE,
                },
            ];
        }
        let mut out = Vec::new();
        if recorded.name {
            out.push(Action::PlayRecordedGreeting {
                leg,
                kind: GreetingKind::Name,
            });
            out.push(say(match greeting {
                VoicemailGreeting::Busy => NAME_BUSY,
                VoicemailGreeting::Unavailable => NAME_UNAVAILABLE,
            }));
        } else {
            let (before, after) = match greeting {
                VoicemailGreeting::Busy => (BUSY_BEFORE, BUSY_AFTER),
                VoicemailGreeting::Unavailable => (UNAVAILABLE_BEFORE, UNAVAILABLE_AFTER),
            };
            out.push(say(before));
            out.extend(say_digits(leg, mailbox));
            out.push(say(after));
        }
        if limits.full {
            self.legs.insert(leg, Stage::Done);
            out.extend([
                say(MAILBOX_FULL),
                say(GOODBYE),
                Action::HangUpAfterPrompts { leg },
            ]);
            return out;
        }
        self.legs.insert(leg, Stage::Greeting);
        out.extend([
            say(LEAVE_AFTER_BEEP),
            Action::Cue {
                leg,
                cue: Cue::Beep,
            },
            Action::RecordAfterPrompts {
                leg,
                max: limits.max_message,
                silence: SILENCE,
            },
        ]);
        out
    }

    /// The core started recording (the prompts have played).
    pub fn on_recording(&mut self, leg: LegId) {
        if let Some(s) = self.legs.get_mut(&leg) {
            *s = Stage::Recording;
        }
    }

    /// `#` ends the message; other keys are part of it (a caller may read out a number).
    pub fn on_digit(&mut self, leg: LegId, digit: char) -> Vec<Action> {
        match self.legs.get(&leg) {
            Some(Stage::Recording) if digit == '#' => vec![Action::StopRecording { leg }],
            _ => Vec::new(),
        }
    }

    /// The recording ended (by `#`, the limit or silence) with `kept` true if it was stored.
    pub fn on_recorded(&mut self, leg: LegId, kept: bool) -> Vec<Action> {
        let Some(stage) = self.legs.get_mut(&leg) else {
            return Vec::new();
        };
        *stage = Stage::Done;
        let mut out = Vec::new();
        if kept {
            out.push(Action::Say { leg, prompt: SAVED });
        }
        out.extend([
            Action::Say {
                leg,
                prompt: GOODBYE,
            },
            Action::HangUpAfterPrompts { leg },
        ]);
        out
    }

    /// The caller hung up (or the PBX did).
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

    const NONE: Recorded = Recorded {
        unavailable: false,
        busy: false,
        name: false,
    };
    const UNAVAILABLE: Recorded = Recorded {
        unavailable: true,
        ..NONE
    };

    const LIMITS: Limits = Limits {
        max_message: Duration::from_secs(180),
        full: false,
    };

    fn said(actions: &[Action]) -> Vec<&'static str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Say { prompt, .. } => Some(prompt.0),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn unanswered_reads_the_number_beeps_then_records() {
        let mut vm = Voicemail::default();
        let leg = LegId(2);
        let a = vm.enter(leg, "201", VoicemailGreeting::Unavailable, LIMITS, NONE);
        assert_eq!(
            said(&a),
            [
                "vm-unavailable.1",
                "n-2",
                "n-0",
                "n-1",
                "vm-unavailable.2",
                "vm-leave-after-beep"
            ]
        );
        let n = a.len();
        assert_eq!(
            a[n - 2],
            Action::Cue {
                leg,
                cue: Cue::Beep
            }
        );
        assert_eq!(
            a[n - 1],
            Action::RecordAfterPrompts {
                leg,
                max: Duration::from_secs(180),
                silence: SILENCE
            }
        );
        // Keys before the recording starts do nothing; during it `#` stops it.
        assert!(vm.on_digit(leg, '#').is_empty());
        vm.on_recording(leg);
        assert!(vm.on_digit(leg, '5').is_empty());
        assert_eq!(vm.on_digit(leg, '#'), [Action::StopRecording { leg }]);
        let a = vm.on_recorded(leg, true);
        assert_eq!(said(&a), ["vm-saved", "vm-goodbye"]);
        assert_eq!(a.last(), Some(&Action::HangUpAfterPrompts { leg }));
        assert!(vm.on_digit(leg, '#').is_empty());
        vm.leave(leg);
        assert_eq!(vm.count(), 0);
        // A recording that ends after the caller left asks for nothing.
        assert!(vm.on_recorded(leg, true).is_empty());
    }

    #[test]
    fn a_recorded_greeting_replaces_the_generated_one_when_unavailable() {
        let mut vm = Voicemail::default();
        let leg = LegId(4);
        let a = vm.enter(
            leg,
            "201",
            VoicemailGreeting::Unavailable,
            LIMITS,
            UNAVAILABLE,
        );
        assert_eq!(
            a[0],
            Action::PlayRecordedGreeting {
                leg,
                kind: GreetingKind::Unavailable
            }
        );
        assert!(said(&a).is_empty(), "{a:?}");
        assert!(matches!(a[2], Action::RecordAfterPrompts { .. }));
        vm.on_recording(leg);
        assert_eq!(vm.on_digit(leg, '#'), [Action::StopRecording { leg }]);
        // A full mailbox says so in the generated words.
        let full = Limits {
            full: true,
            ..LIMITS
        };
        let a = vm.enter(
            LegId(5),
            "201",
            VoicemailGreeting::Unavailable,
            full,
            UNAVAILABLE,
        );
        assert!(said(&a).contains(&"vm-mailbox-full"), "{a:?}");
    }

    #[test]
    fn busy_has_its_own_greeting_and_a_full_mailbox_records_nothing() {
        let mut vm = Voicemail::default();
        // Only an unavailable greeting recorded: busy callers hear the generated words.
        let a = vm.enter(
            LegId(1),
            "201",
            VoicemailGreeting::Busy,
            LIMITS,
            UNAVAILABLE,
        );
        assert_eq!(
            said(&a),
            [
                "vm-busy.1",
                "n-2",
                "n-0",
                "n-1",
                "vm-busy.2",
                "vm-leave-after-beep"
            ]
        );
        let full = Limits {
            full: true,
            ..LIMITS
        };
        let a = vm.enter(LegId(3), "201", VoicemailGreeting::Busy, full, NONE);
        assert_eq!(
            said(&a),
            [
                "vm-busy.1",
                "n-2",
                "n-0",
                "n-1",
                "vm-busy.2",
                "vm-mailbox-full",
                "vm-goodbye"
            ]
        );
        assert!(!a
            .iter()
            .any(|x| matches!(x, Action::RecordAfterPrompts { .. })));
        assert_eq!(
            a.last(),
            Some(&Action::HangUpAfterPrompts { leg: LegId(3) })
        );
        // A message too short to keep still ends politely, without "saved".
        vm.on_recording(LegId(1));
        assert_eq!(said(&vm.on_recorded(LegId(1), false)), ["vm-goodbye"]);
    }

    #[test]
    fn a_recorded_busy_greeting_plays_to_busy_callers_only() {
        let mut vm = Voicemail::default();
        let busy = Recorded { busy: true, ..NONE };
        let a = vm.enter(LegId(1), "201", VoicemailGreeting::Busy, LIMITS, busy);
        assert_eq!(
            a[0],
            Action::PlayRecordedGreeting {
                leg: LegId(1),
                kind: GreetingKind::Busy
            }
        );
        assert!(said(&a).is_empty(), "{a:?}");
        let a = vm.enter(
            LegId(2),
            "201",
            VoicemailGreeting::Unavailable,
            LIMITS,
            busy,
        );
        assert!(
            !a.iter()
                .any(|x| matches!(x, Action::PlayRecordedGreeting { .. })),
            "{a:?}"
        );
        assert_eq!(said(&a)[0], "vm-unavailable.1");
    }

    #[test]
    fn the_recorded_name_replaces_the_number_in_the_generated_greetings() {
        let mut vm = Voicemail::default();
        let name = Recorded { name: true, ..NONE };
        let name_first = |a: &[Action], leg| {
            assert_eq!(
                a[0],
                Action::PlayRecordedGreeting {
                    leg,
                    kind: GreetingKind::Name
                }
            )
        };
        let a = vm.enter(
            LegId(1),
            "201",
            VoicemailGreeting::Unavailable,
            LIMITS,
            name,
        );
        name_first(&a, LegId(1));
        assert_eq!(said(&a), ["vm-is-unavailable", "vm-leave-after-beep"]);
        let a = vm.enter(LegId(2), "201", VoicemailGreeting::Busy, LIMITS, name);
        name_first(&a, LegId(2));
        assert_eq!(said(&a), ["vm-is-busy", "vm-leave-after-beep"]);
        // The owner's own unavailable greeting wins over the name.
        let both = Recorded {
            name: true,
            unavailable: true,
            ..NONE
        };
        let a = vm.enter(
            LegId(3),
            "201",
            VoicemailGreeting::Unavailable,
            LIMITS,
            both,
        );
        assert_eq!(
            a[0],
            Action::PlayRecordedGreeting {
                leg: LegId(3),
                kind: GreetingKind::Unavailable
            }
        );
        assert_eq!(a.len(), 3, "{a:?}");
    }

    #[test]
    fn every_clip_is_in_the_catalogue_in_both_languages() {
        let catalogue = kentongan_prompts::Catalogue::builtin().unwrap();
        for lang in [
            kentongan_prompts::Language::Id,
            kentongan_prompts::Language::En,
        ] {
            let clips: Vec<String> = catalogue
                .clips(lang)
                .into_iter()
                .map(|(id, _)| id.as_str().to_owned())
                .collect();
            for p in PROMPTS.iter().chain(crate::apps::NUMBERS[..10].iter()) {
                assert!(clips.iter().any(|c| c == p.0), "{} missing", p.0);
            }
        }
    }
}
