//! The mailbox menu at `[voicemail] access` (`*97`): a phone calls its own mailbox, types its
//! PIN (RFC 4733 digits, then `#`; three wrong PINs hang up), hears how many new and old
//! messages it has, and then each message, new ones first, after "message from" and the
//! caller's number: `7` deletes it, `9` saves it
//! (marks it old), `1` plays it again, `#` goes on to the next, `*` hangs up. An empty
//! mailbox offers `0` (options) or `*`.
//!
//! `0` opens the mailbox options, in Asterisk's order: `1` records the unavailable greeting
//! (what callers hear when nobody answers, instead of the generated one), `2` the busy
//! greeting, `3` the owner's name (which the generated greetings read instead of the number);
//! each after a beep, until `#`, silence or a minute, stored atomically by the core. `5`
//! changes the PIN (the new PIN, `#`, then again, `#`; 4 to 16 digits, both the same, else
//! nothing changes), `*` hangs up. The core hashes and stores the new PIN.
//!
//! `*98` asks for a mailbox number first (then `#`); the core opens that mailbox, whose PIN
//! is then always required: a mailbox without a PIN, or a number with no mailbox, is told
//! "wrong PIN" after the PIN like any other failure, so the menu reveals nothing.
//!
//! The PIN is checked against its argon2id hash here (pure computation); the messages are
//! handed in at entry, and playing, marking and deleting them are [`Action`]s the core
//! carries out.

use std::collections::HashMap;

use kentongan_engine::LegId;

use super::{say_digits, Action, Prompt, NUMBERS};
use crate::store::{GreetingKind, VoicemailPin};

pub const ENTER_PIN: Prompt = Prompt("vm-enter-pin");
pub const ENTER_MAILBOX: Prompt = Prompt("vm-enter-mailbox");
pub const WRONG_PIN: Prompt = Prompt("vm-wrong-pin");
pub const YOU_HAVE: Prompt = Prompt("vm-you-have");
pub const NEW_MESSAGES: Prompt = Prompt("vm-new-messages");
pub const OLD_MESSAGES: Prompt = Prompt("vm-old-messages");
pub const NO_MESSAGES: Prompt = Prompt("vm-no-messages");
pub const MESSAGE_MENU: Prompt = Prompt("vm-message-menu");
pub const DELETED: Prompt = Prompt("vm-deleted");
pub const SAVED: Prompt = Prompt("vm-saved");
pub const NO_MORE: Prompt = Prompt("vm-no-more-messages");
pub const GOODBYE: Prompt = Prompt("vm-goodbye");
pub const MESSAGE_FROM: Prompt = Prompt("vm-message-from");
pub const UNKNOWN_CALLER: Prompt = Prompt("vm-unknown-caller");
pub const MAIN_MENU: Prompt = Prompt("vm-main-menu");
pub const OPTIONS: Prompt = Prompt("vm-options");
pub const RECORD_GREETING: Prompt = Prompt("vm-record-greeting");
pub const RECORD_BUSY: Prompt = Prompt("vm-record-busy");
pub const RECORD_NAME: Prompt = Prompt("vm-record-name");
pub const GREETING_SAVED: Prompt = Prompt("vm-greeting-saved");
pub const ENTER_NEW_PIN: Prompt = Prompt("vm-enter-new-pin");
pub const REENTER_NEW_PIN: Prompt = Prompt("vm-reenter-new-pin");
pub const PIN_CHANGED: Prompt = Prompt("vm-pin-changed");
pub const PIN_NOT_CHANGED: Prompt = Prompt("vm-pin-not-changed");

/// The longest greeting recorded, and the silence that ends one.
pub const GREETING_MAX: std::time::Duration = std::time::Duration::from_secs(60);
pub const GREETING_SILENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// Every prompt of the menu.
pub const PROMPTS: &[Prompt] = &[
    ENTER_PIN,
    ENTER_MAILBOX,
    WRONG_PIN,
    YOU_HAVE,
    NEW_MESSAGES,
    OLD_MESSAGES,
    NO_MESSAGES,
    MESSAGE_MENU,
    DELETED,
    SAVED,
    NO_MORE,
    GOODBYE,
    MESSAGE_FROM,
    UNKNOWN_CALLER,
    MAIN_MENU,
    OPTIONS,
    RECORD_GREETING,
    RECORD_BUSY,
    RECORD_NAME,
    GREETING_SAVED,
    ENTER_NEW_PIN,
    REENTER_NEW_PIN,
    PIN_CHANGED,
    PIN_NOT_CHANGED,
];

const MAX_TRIES: u8 = 3;
const MAX_PIN_DIGITS: usize = 16;

/// A message as the menu sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    pub id: i64,
    pub new: bool,
    /// The caller's extension or number, read out digit by digit.
    pub caller: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// `*98`: typing the mailbox number.
    Number,
    Pin,
    Messages,
    /// An empty mailbox: `0` options, `*` hangs up.
    Main,
    Options,
    /// Recording a greeting; `#` ends it.
    Greeting(GreetingKind),
    /// Typing the new PIN; the first entry kept until it is typed again.
    NewPin {
        first: Option<String>,
    },
    Done,
}

#[derive(Debug)]
struct Session {
    pin_hash: Option<String>,
    /// `*98`: a PIN is required even if none is set (then nothing matches).
    pin_required: bool,
    typed: String,
    tries: u8,
    /// New messages first, each group oldest first.
    messages: Vec<MessageRef>,
    at: usize,
    stage: Stage,
}

/// Callers in their mailbox, by leg.
#[derive(Debug, Default)]
pub struct Mailboxes {
    legs: HashMap<LegId, Session>,
}

fn say_count(leg: LegId, n: usize, out: &mut Vec<Action>) {
    match NUMBERS.get(n) {
        Some(p) => out.push(Action::Say { leg, prompt: *p }),
        None => out.extend(say_digits(leg, &n.to_string())),
    }
}

fn goodbye(leg: LegId, out: &mut Vec<Action>) {
    out.extend([
        Action::Say {
            leg,
            prompt: GOODBYE,
        },
        Action::HangUpAfterPrompts { leg },
    ]);
}

impl Mailboxes {
    /// A phone called its mailbox; `pin_hash` is the stored PIN (None: none is set, and the
    /// phone's own digest login is what lets it in).
    pub fn enter(
        &mut self,
        leg: LegId,
        pin_hash: Option<String>,
        mut messages: Vec<MessageRef>,
    ) -> Vec<Action> {
        // Stable: each group keeps the order handed in (oldest first).
        messages.sort_by_key(|m| !m.new);
        let stage = if pin_hash.is_some() {
            Stage::Pin
        } else {
            Stage::Messages
        };
        self.legs.insert(
            leg,
            Session {
                pin_hash,
                pin_required: false,
                typed: String::new(),
                tries: 0,
                messages,
                at: 0,
                stage: stage.clone(),
            },
        );
        match stage {
            Stage::Pin => vec![Action::Say {
                leg,
                prompt: ENTER_PIN,
            }],
            _ => self.start(leg),
        }
    }

    /// `*98`: a phone asks for some mailbox; [`Action::OpenMailbox`] follows the number.
    pub fn enter_any(&mut self, leg: LegId) -> Vec<Action> {
        self.legs.insert(
            leg,
            Session {
                pin_hash: None,
                pin_required: true,
                typed: String::new(),
                tries: 0,
                messages: Vec::new(),
                at: 0,
                stage: Stage::Number,
            },
        );
        vec![Action::Say {
            leg,
            prompt: ENTER_MAILBOX,
        }]
    }

    /// The mailbox `*98` asked for: its PIN hash (None: no PIN set, or no such mailbox) and
    /// messages. The PIN is asked next.
    pub fn opened(
        &mut self,
        leg: LegId,
        pin_hash: Option<String>,
        mut messages: Vec<MessageRef>,
    ) -> Vec<Action> {
        let Some(s) = self.legs.get_mut(&leg) else {
            return Vec::new();
        };
        messages.sort_by_key(|m| !m.new);
        s.pin_hash = pin_hash;
        s.messages = messages;
        s.stage = Stage::Pin;
        vec![Action::Say {
            leg,
            prompt: ENTER_PIN,
        }]
    }

    fn start(&mut self, leg: LegId) -> Vec<Action> {
        let Some(s) = self.legs.get_mut(&leg) else {
            return Vec::new();
        };
        s.stage = Stage::Messages;
        let new = s.messages.iter().filter(|m| m.new).count();
        let old = s.messages.len() - new;
        let mut out = Vec::new();
        if s.messages.is_empty() {
            s.stage = Stage::Main;
            out.extend([
                Action::Say {
                    leg,
                    prompt: NO_MESSAGES,
                },
                Action::Say {
                    leg,
                    prompt: MAIN_MENU,
                },
            ]);
            return out;
        }
        out.push(Action::Say {
            leg,
            prompt: YOU_HAVE,
        });
        say_count(leg, new, &mut out);
        out.push(Action::Say {
            leg,
            prompt: NEW_MESSAGES,
        });
        say_count(leg, old, &mut out);
        out.push(Action::Say {
            leg,
            prompt: OLD_MESSAGES,
        });
        out.extend(self.play_current(leg));
        out
    }

    fn play_current(&self, leg: LegId) -> Vec<Action> {
        let Some(m) = self.legs.get(&leg).and_then(|s| s.messages.get(s.at)) else {
            return Vec::new();
        };
        let mut out = vec![Action::Say {
            leg,
            prompt: MESSAGE_FROM,
        }];
        let digits = !m.caller.is_empty() && m.caller.bytes().all(|b| b.is_ascii_digit());
        if digits {
            out.extend(say_digits(leg, &m.caller));
        } else {
            out.push(Action::Say {
                leg,
                prompt: UNKNOWN_CALLER,
            });
        }
        out.extend([
            Action::PlayMessage { leg, id: m.id },
            Action::Say {
                leg,
                prompt: MESSAGE_MENU,
            },
        ]);
        out
    }

    fn next(&mut self, leg: LegId, out: &mut Vec<Action>) {
        let Some(s) = self.legs.get_mut(&leg) else {
            return;
        };
        s.at += 1;
        if s.at < s.messages.len() {
            out.extend(self.play_current(leg));
            return;
        }
        s.stage = Stage::Done;
        out.push(Action::Say {
            leg,
            prompt: NO_MORE,
        });
        goodbye(leg, out);
    }

    pub fn on_digit(&mut self, leg: LegId, digit: char) -> Vec<Action> {
        let Some(s) = self.legs.get_mut(&leg) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match s.stage.clone() {
            Stage::Done => {}
            Stage::Main => match digit {
                '0' => {
                    s.stage = Stage::Options;
                    out.extend([
                        Action::StopSounds { leg },
                        Action::Say {
                            leg,
                            prompt: OPTIONS,
                        },
                    ]);
                }
                '*' => {
                    s.stage = Stage::Done;
                    out.push(Action::StopSounds { leg });
                    goodbye(leg, &mut out);
                }
                _ => {}
            },
            Stage::Options => {
                let say = |prompt| Action::Say { leg, prompt };
                match digit {
                    '1' | '2' | '3' => {
                        let (kind, prompt) = match digit {
                            '1' => (GreetingKind::Unavailable, RECORD_GREETING),
                            '2' => (GreetingKind::Busy, RECORD_BUSY),
                            _ => (GreetingKind::Name, RECORD_NAME),
                        };
                        s.stage = Stage::Greeting(kind);
                        out.extend([
                            Action::StopSounds { leg },
                            say(prompt),
                            Action::Cue {
                                leg,
                                cue: super::Cue::Beep,
                            },
                            Action::RecordAfterPrompts {
                                leg,
                                max: GREETING_MAX,
                                silence: GREETING_SILENCE,
                            },
                        ]);
                    }
                    '5' => {
                        s.stage = Stage::NewPin { first: None };
                        s.typed.clear();
                        out.extend([Action::StopSounds { leg }, say(ENTER_NEW_PIN)]);
                    }
                    '*' => {
                        s.stage = Stage::Done;
                        out.push(Action::StopSounds { leg });
                        goodbye(leg, &mut out);
                    }
                    _ => {}
                }
            }
            Stage::Greeting(_) => {
                if digit == '#' {
                    out.push(Action::StopRecording { leg });
                }
            }
            Stage::NewPin { first } if digit == '#' => {
                let typed = std::mem::take(&mut s.typed);
                match first {
                    None => {
                        s.stage = Stage::NewPin { first: Some(typed) };
                        out.push(Action::Say {
                            leg,
                            prompt: REENTER_NEW_PIN,
                        });
                    }
                    Some(first) => {
                        s.stage = Stage::Options;
                        match VoicemailPin::parse(&typed).filter(|_| typed == first) {
                            Some(pin) => out.extend([
                                Action::SetPin { leg, pin },
                                Action::Say {
                                    leg,
                                    prompt: PIN_CHANGED,
                                },
                            ]),
                            None => out.push(Action::Say {
                                leg,
                                prompt: PIN_NOT_CHANGED,
                            }),
                        }
                        out.push(Action::Say {
                            leg,
                            prompt: OPTIONS,
                        });
                    }
                }
            }
            Stage::NewPin { .. } => {
                if digit.is_ascii_digit() && s.typed.len() < MAX_PIN_DIGITS {
                    s.typed.push(digit);
                }
            }
            Stage::Number if digit == '#' => {
                let number = std::mem::take(&mut s.typed);
                if number.is_empty() {
                    out.push(Action::Say {
                        leg,
                        prompt: ENTER_MAILBOX,
                    });
                } else {
                    out.push(Action::OpenMailbox {
                        leg,
                        mailbox: number,
                    });
                }
            }
            Stage::Number => {
                if digit.is_ascii_digit() && s.typed.len() < 16 {
                    s.typed.push(digit);
                }
            }
            Stage::Pin if digit == '#' => {
                let typed = std::mem::take(&mut s.typed);
                let right = match s.pin_hash.as_deref() {
                    Some(h) => VoicemailPin::verify(h, &typed),
                    // Unreachable for `*97` (no hash: no PIN stage); `*98` never opens a
                    // mailbox without one.
                    None => {
                        // As long as a real check: the time taken must not tell whether the
                        // mailbox exists.
                        crate::admins::verify_dummy(&typed);
                        !s.pin_required
                    }
                };
                if right {
                    return self.start(leg);
                }
                s.tries += 1;
                out.push(Action::Say {
                    leg,
                    prompt: WRONG_PIN,
                });
                if s.tries >= MAX_TRIES {
                    s.stage = Stage::Done;
                    goodbye(leg, &mut out);
                } else {
                    out.push(Action::Say {
                        leg,
                        prompt: ENTER_PIN,
                    });
                }
            }
            Stage::Pin => {
                if digit.is_ascii_digit() && s.typed.len() < MAX_PIN_DIGITS {
                    s.typed.push(digit);
                }
            }
            Stage::Messages => {
                let Some(m) = s.messages.get(s.at).cloned() else {
                    return out;
                };
                match digit {
                    '7' => {
                        out.extend([
                            Action::StopSounds { leg },
                            Action::DeleteMessage { id: m.id },
                            Action::Say {
                                leg,
                                prompt: DELETED,
                            },
                        ]);
                        self.next(leg, &mut out);
                    }
                    '9' | '#' => {
                        out.push(Action::StopSounds { leg });
                        if m.new {
                            out.push(Action::MarkOld { id: m.id });
                        }
                        if digit == '9' {
                            out.push(Action::Say { leg, prompt: SAVED });
                        }
                        self.next(leg, &mut out);
                    }
                    '1' => {
                        out.push(Action::StopSounds { leg });
                        out.extend(self.play_current(leg));
                    }
                    '*' => {
                        s.stage = Stage::Done;
                        out.push(Action::StopSounds { leg });
                        goodbye(leg, &mut out);
                    }
                    '0' => {
                        s.stage = Stage::Options;
                        out.extend([
                            Action::StopSounds { leg },
                            Action::Say {
                                leg,
                                prompt: OPTIONS,
                            },
                        ]);
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// The core stored the PIN (its hash) that [`Action::SetPin`] asked for: the session
    /// now knows it, for a `*98` caller who logs in again in the same call.
    pub fn pin_stored(&mut self, leg: LegId, hash: String) {
        if let Some(s) = self.legs.get_mut(&leg) {
            s.pin_hash = Some(hash);
        }
    }

    /// The greeting recording ended; `kept`: it was stored. Back to the options.
    pub fn on_greeting_recorded(&mut self, leg: LegId, kept: bool) -> Vec<Action> {
        let Some(s) = self.legs.get_mut(&leg) else {
            return Vec::new();
        };
        if !matches!(s.stage, Stage::Greeting(_)) {
            return Vec::new();
        }
        s.stage = Stage::Options;
        let mut out = Vec::new();
        if kept {
            out.push(Action::Say {
                leg,
                prompt: GREETING_SAVED,
            });
        }
        out.push(Action::Say {
            leg,
            prompt: OPTIONS,
        });
        out
    }

    /// The greeting the leg is recording (the recording the core starts is that greeting,
    /// not a message).
    pub fn recording_greeting(&self, leg: LegId) -> Option<GreetingKind> {
        match self.legs.get(&leg)?.stage {
            Stage::Greeting(kind) => Some(kind),
            _ => None,
        }
    }

    pub fn leave(&mut self, leg: LegId) {
        self.legs.remove(&leg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(actions: &[Action]) -> Vec<&'static str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Say { prompt, .. } => Some(prompt.0),
                _ => None,
            })
            .collect()
    }

    fn keys(m: &mut Mailboxes, leg: LegId, keys: &str) -> Vec<Action> {
        keys.chars().flat_map(|k| m.on_digit(leg, k)).collect()
    }

    fn msg(id: i64, new: bool, caller: &str) -> MessageRef {
        MessageRef {
            id,
            new,
            caller: caller.into(),
        }
    }

    fn hash(pin: &str) -> Option<String> {
        Some(VoicemailPin::parse(pin).unwrap().hash().unwrap())
    }

    #[test]
    fn three_wrong_pins_hang_up() {
        let mut m = Mailboxes::default();
        let leg = LegId(1);
        let a = m.enter(leg, hash("4821"), vec![msg(1, true, "202")]);
        assert_eq!(said(&a), ["vm-enter-pin"]);
        assert_eq!(
            said(&keys(&mut m, leg, "1111#")),
            ["vm-wrong-pin", "vm-enter-pin"]
        );
        assert_eq!(
            said(&keys(&mut m, leg, "#")),
            ["vm-wrong-pin", "vm-enter-pin"]
        );
        let a = keys(&mut m, leg, "48211#");
        assert_eq!(said(&a), ["vm-wrong-pin", "vm-goodbye"]);
        assert_eq!(a.last(), Some(&Action::HangUpAfterPrompts { leg }));
        // Nothing after that, not even the right PIN.
        assert!(keys(&mut m, leg, "4821#").is_empty());
    }

    #[test]
    fn the_right_pin_plays_new_messages_first_and_7_9_delete_and_save() {
        let mut m = Mailboxes::default();
        let leg = LegId(2);
        let msgs = vec![
            msg(10, false, "anonymous"),
            msg(11, true, "202"),
            msg(12, true, "0811"),
        ];
        m.enter(leg, hash("4821"), msgs);
        let a = keys(&mut m, leg, "4821#");
        assert_eq!(
            said(&a),
            [
                "vm-you-have",
                "n-2",
                "vm-new-messages",
                "n-1",
                "vm-old-messages",
                "vm-message-from",
                "n-2",
                "n-0",
                "n-2",
                "vm-message-menu"
            ]
        );
        assert!(a.contains(&Action::PlayMessage { leg, id: 11 }));
        let a = m.on_digit(leg, '7');
        assert_eq!(a[0], Action::StopSounds { leg });
        assert!(a.contains(&Action::DeleteMessage { id: 11 }));
        assert!(a.contains(&Action::PlayMessage { leg, id: 12 }));
        let a = m.on_digit(leg, '1');
        assert!(a.contains(&Action::PlayMessage { leg, id: 12 }));
        let a = m.on_digit(leg, '9');
        assert!(a.contains(&Action::MarkOld { id: 12 }));
        assert!(said(&a).contains(&"vm-unknown-caller"), "{a:?}");
        assert!(a.contains(&Action::PlayMessage { leg, id: 10 }));
        // An old message is not marked again; after the last, goodbye.
        let a = m.on_digit(leg, '#');
        assert!(!a.iter().any(|x| matches!(x, Action::MarkOld { .. })));
        assert_eq!(said(&a), ["vm-no-more-messages", "vm-goodbye"]);
        assert_eq!(a.last(), Some(&Action::HangUpAfterPrompts { leg }));
    }

    #[test]
    fn no_pin_set_goes_straight_to_the_messages_and_an_empty_box_says_so() {
        let mut m = Mailboxes::default();
        let a = m.enter(LegId(3), None, Vec::new());
        assert_eq!(said(&a), ["vm-no-messages", "vm-main-menu"]);
        let a = m.on_digit(LegId(3), '*');
        assert_eq!(said(&a), ["vm-goodbye"]);
        assert_eq!(
            a.last(),
            Some(&Action::HangUpAfterPrompts { leg: LegId(3) })
        );
        let many: Vec<MessageRef> = (0..23).map(|id| msg(id, true, "202")).collect();
        let a = m.enter(LegId(4), None, many);
        assert_eq!(
            said(&a)[..4],
            ["vm-you-have", "n-2", "n-3", "vm-new-messages"]
        );
    }

    #[test]
    fn every_clip_is_in_the_catalogue() {
        let catalogue = kentongan_prompts::Catalogue::builtin().unwrap();
        let clips: Vec<String> = catalogue
            .clips(kentongan_prompts::Language::En)
            .into_iter()
            .map(|(id, _)| id.as_str().to_owned())
            .collect();
        for p in PROMPTS.iter().chain(NUMBERS.iter()) {
            assert!(clips.iter().any(|c| c == p.0), "{} missing", p.0);
        }
    }

    #[test]
    fn options_record_a_greeting_and_change_the_pin_typed_twice() {
        let mut m = Mailboxes::default();
        let leg = LegId(7);
        m.enter(leg, hash("4821"), vec![msg(1, true, "202")]);
        keys(&mut m, leg, "4821#");
        let a = m.on_digit(leg, '0');
        assert_eq!(a[0], Action::StopSounds { leg });
        assert_eq!(said(&a), ["vm-options"]);
        let a = m.on_digit(leg, '1');
        assert_eq!(said(&a), ["vm-record-greeting"]);
        assert_eq!(m.recording_greeting(leg), Some(GreetingKind::Unavailable));
        assert!(a.contains(&Action::RecordAfterPrompts {
            leg,
            max: GREETING_MAX,
            silence: GREETING_SILENCE
        }));
        // Keys other than # are part of the greeting.
        assert!(keys(&mut m, leg, "12").is_empty());
        assert_eq!(m.on_digit(leg, '#'), [Action::StopRecording { leg }]);
        assert_eq!(
            said(&m.on_greeting_recorded(leg, true)),
            ["vm-greeting-saved", "vm-options"]
        );
        // Not twice for one recording.
        assert!(m.on_greeting_recorded(leg, true).is_empty());
        assert_eq!(m.recording_greeting(leg), None);
        // 2 the busy greeting, 3 the name.
        assert_eq!(said(&m.on_digit(leg, '2')), ["vm-record-busy"]);
        assert_eq!(m.recording_greeting(leg), Some(GreetingKind::Busy));
        assert_eq!(m.on_digit(leg, '#'), [Action::StopRecording { leg }]);
        m.on_greeting_recorded(leg, false);
        assert_eq!(said(&m.on_digit(leg, '3')), ["vm-record-name"]);
        assert_eq!(m.recording_greeting(leg), Some(GreetingKind::Name));
        assert_eq!(
            said(&m.on_greeting_recorded(leg, true)),
            ["vm-greeting-saved", "vm-options"]
        );

        // A mismatch changes nothing.
        assert_eq!(said(&m.on_digit(leg, '5')), ["vm-enter-new-pin"]);
        assert_eq!(said(&keys(&mut m, leg, "1357#")), ["vm-reenter-new-pin"]);
        let a = keys(&mut m, leg, "1358#");
        assert_eq!(said(&a), ["vm-pin-not-changed", "vm-options"]);
        assert!(!a.iter().any(|x| matches!(x, Action::SetPin { .. })));
        // Too short, though the same twice: nothing either.
        keys(&mut m, leg, "5");
        keys(&mut m, leg, "135#");
        let a = keys(&mut m, leg, "135#");
        assert_eq!(said(&a), ["vm-pin-not-changed", "vm-options"]);
        // The same twice: SetPin with it.
        keys(&mut m, leg, "5");
        keys(&mut m, leg, "1357#");
        let a = keys(&mut m, leg, "1357#");
        assert_eq!(
            a[0],
            Action::SetPin {
                leg,
                pin: VoicemailPin::parse("1357").unwrap()
            }
        );
        assert_eq!(said(&a), ["vm-pin-changed", "vm-options"]);
        let a = m.on_digit(leg, '*');
        assert_eq!(said(&a), ["vm-goodbye"]);
    }

    #[test]
    fn star_98_asks_the_number_then_always_a_pin() {
        let mut m = Mailboxes::default();
        let leg = LegId(5);
        assert_eq!(said(&m.enter_any(leg)), ["vm-enter-mailbox"]);
        assert_eq!(said(&keys(&mut m, leg, "#")), ["vm-enter-mailbox"]);
        assert_eq!(
            keys(&mut m, leg, "2a04#"),
            [Action::OpenMailbox {
                leg,
                mailbox: "204".into()
            }]
        );
        assert_eq!(
            said(&m.opened(leg, hash("4821"), vec![msg(1, true, "202")])),
            ["vm-enter-pin"]
        );
        let a = keys(&mut m, leg, "4821#");
        assert!(a.contains(&Action::PlayMessage { leg, id: 1 }));
        // No PIN set (or no such mailbox): nothing opens it, not even an empty PIN.
        let leg = LegId(6);
        m.enter_any(leg);
        keys(&mut m, leg, "209#");
        m.opened(leg, None, vec![msg(2, true, "202")]);
        for _ in 0..2 {
            assert_eq!(
                said(&keys(&mut m, leg, "#")),
                ["vm-wrong-pin", "vm-enter-pin"]
            );
        }
        let a = keys(&mut m, leg, "0000#");
        assert_eq!(said(&a), ["vm-wrong-pin", "vm-goodbye"]);
        assert!(!a.iter().any(|x| matches!(x, Action::PlayMessage { .. })));
    }
}
