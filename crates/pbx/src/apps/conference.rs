//! Conference rooms: PIN entry, joining, the in-room DTMF menu, admin controls.
//!
//! Menu (keys typed during the conference, RFC 4733):
//! `*1` mute/unmute yourself, `*2` quieter, `*3` louder; admins (joined with `admin_pin`)
//! also `*5` lock/unlock the room, `*6` mute/unmute everyone else.

use std::collections::HashMap;

use kentongan_engine::LegId;

use super::{Action, Cue, Prompt};
use crate::config::ConferenceRoom;

/// Wrong PINs allowed before the caller is hung up.
pub const PIN_TRIES: u8 = 3;
/// Listening gain steps for `*2`/`*3`, in dB, and their bounds.
const GAIN_STEP_DB: f32 = 3.0;
const GAIN_MIN_DB: f32 = -12.0;
const GAIN_MAX_DB: f32 = 12.0;

pub const ENTER_PIN: Prompt = Prompt("conf-enter-pin");
pub const WRONG_PIN: Prompt = Prompt("conf-wrong-pin");
pub const ONLY_MEMBER: Prompt = Prompt("conf-only-member");
pub const LOCKED: Prompt = Prompt("conf-locked");
pub const FULL: Prompt = Prompt("conf-full");
pub const MUTED: Prompt = Prompt("conf-muted");
pub const UNMUTED: Prompt = Prompt("conf-unmuted");
pub const ROOM_LOCKED_NOW: Prompt = Prompt("conf-room-locked-now");
pub const ROOM_UNLOCKED: Prompt = Prompt("conf-room-unlocked");
pub const ALL_MUTED: Prompt = Prompt("conf-all-muted");
pub const KICKED: Prompt = Prompt("conf-kicked");
pub const GOODBYE: Prompt = Prompt("goodbye");

/// Every prompt conference rooms use (the prompt set must have them all).
pub const PROMPTS: &[Prompt] = &[
    ENTER_PIN,
    WRONG_PIN,
    ONLY_MEMBER,
    LOCKED,
    FULL,
    MUTED,
    UNMUTED,
    ROOM_LOCKED_NOW,
    ROOM_UNLOCKED,
    ALL_MUTED,
    KICKED,
    GOODBYE,
];

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Typing the PIN.
    Entering { typed: String, tries: u8 },
    In {
        admin: bool,
        muted: bool,
        gain_db: f32,
        /// `*` was pressed: the next key is a menu choice.
        star: bool,
    },
    /// Hung up by the room (wrong PIN, locked, full, kicked): waiting for the prompt to end.
    Leaving,
}

#[derive(Debug, Clone)]
struct Member {
    room: String,
    extension: String,
    state: State,
    joined_ms: i64,
    talking: bool,
}

/// A member as the CLI and `/metrics` see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub leg: LegId,
    pub room: String,
    pub extension: String,
    pub admin: bool,
    pub muted: bool,
    pub talking: bool,
    pub joined_ms: i64,
}

/// The state of every conference room.
#[derive(Debug, Default)]
pub struct Conferences {
    members: HashMap<LegId, Member>,
    /// Joined members per room, in joining order.
    rooms: HashMap<String, Vec<LegId>>,
    locked: HashMap<String, bool>,
}

impl Conferences {
    /// A caller reached `room`: asked for the PIN, or let in.
    pub fn enter(
        &mut self,
        leg: LegId,
        room: &ConferenceRoom,
        extension: &str,
        now_ms: i64,
    ) -> Vec<Action> {
        let needs_pin = room.pin.is_some() || room.admin_pin.is_some();
        self.members.insert(
            leg,
            Member {
                room: room.number.clone(),
                extension: extension.to_owned(),
                state: State::Entering {
                    typed: String::new(),
                    tries: 0,
                },
                joined_ms: now_ms,
                talking: false,
            },
        );
        if needs_pin {
            vec![Action::Say {
                leg,
                prompt: ENTER_PIN,
            }]
        } else {
            self.admit(leg, room, false)
        }
    }

    fn admit(&mut self, leg: LegId, room: &ConferenceRoom, admin: bool) -> Vec<Action> {
        let inside = self.rooms.get(&room.number).map_or(0, Vec::len);
        let refuse = if self.is_locked(&room.number) && !admin {
            Some(LOCKED)
        } else if inside >= room.max_members as usize {
            Some(FULL)
        } else {
            None
        };
        if let Some(prompt) = refuse {
            return self.send_away(leg, prompt);
        }
        let Some(m) = self.members.get_mut(&leg) else {
            return Vec::new();
        };
        m.state = State::In {
            admin,
            muted: false,
            gain_db: 0.0,
            star: false,
        };
        let mut actions = Vec::new();
        let others = self.rooms.entry(room.number.clone()).or_default();
        if others.is_empty() {
            actions.push(Action::Say {
                leg,
                prompt: ONLY_MEMBER,
            });
        }
        for &o in others.iter() {
            actions.push(Action::Cue {
                leg: o,
                cue: Cue::Join,
            });
        }
        others.push(leg);
        actions.push(Action::JoinRoom {
            leg,
            room: room.number.clone(),
        });
        actions
    }

    fn send_away(&mut self, leg: LegId, prompt: Prompt) -> Vec<Action> {
        let mut actions = self.take_out(leg);
        if let Some(m) = self.members.get_mut(&leg) {
            m.state = State::Leaving;
        }
        actions.push(Action::Say { leg, prompt });
        actions.push(Action::HangUpAfterPrompts { leg });
        actions
    }

    /// Removes a leg from its room's member list; tells the others it left.
    fn take_out(&mut self, leg: LegId) -> Vec<Action> {
        let Some(m) = self.members.get(&leg) else {
            return Vec::new();
        };
        let Some(list) = self.rooms.get_mut(&m.room) else {
            return Vec::new();
        };
        let before = list.len();
        list.retain(|&l| l != leg);
        if list.len() == before {
            return Vec::new();
        }
        let actions = list
            .iter()
            .map(|&o| Action::Cue {
                leg: o,
                cue: Cue::Leave,
            })
            .collect();
        if list.is_empty() {
            let room = m.room.clone();
            self.rooms.remove(&room);
            // An empty room forgets its lock, as a meeting that has ended.
            self.locked.remove(&room);
        }
        actions
    }

    /// The caller hung up.
    pub fn leave(&mut self, leg: LegId) -> Vec<Action> {
        let actions = self.take_out(leg);
        self.members.remove(&leg);
        actions
    }

    /// A key the member pressed.
    pub fn on_digit(&mut self, leg: LegId, digit: char, room: &ConferenceRoom) -> Vec<Action> {
        let Some(m) = self.members.get_mut(&leg) else {
            return Vec::new();
        };
        match &mut m.state {
            State::Leaving => Vec::new(),
            State::Entering { typed, tries } => {
                let longest = room
                    .pin
                    .iter()
                    .chain(room.admin_pin.iter())
                    .map(|p| p.len())
                    .max()
                    .unwrap_or(0);
                if digit != '#' {
                    typed.push(digit);
                }
                let admin = room.admin_pin.as_ref().is_some_and(|p| p.matches(typed));
                let member = room.pin.as_ref().is_some_and(|p| p.matches(typed));
                if admin || member {
                    return self.admit(leg, room, admin);
                }
                if digit != '#' && typed.len() < longest {
                    return Vec::new();
                }
                *tries += 1;
                typed.clear();
                if *tries >= PIN_TRIES {
                    return self.send_away(leg, GOODBYE);
                }
                vec![
                    Action::Say {
                        leg,
                        prompt: WRONG_PIN,
                    },
                    Action::Say {
                        leg,
                        prompt: ENTER_PIN,
                    },
                ]
            }
            State::In {
                admin,
                muted,
                gain_db,
                star,
            } => {
                if digit == '*' {
                    *star = true;
                    return Vec::new();
                }
                if !std::mem::take(star) {
                    return Vec::new();
                }
                match (digit, *admin) {
                    ('1', _) => {
                        *muted = !*muted;
                        let muted = *muted;
                        vec![
                            Action::SetMuted { leg, muted },
                            Action::Say {
                                leg,
                                prompt: if muted { MUTED } else { UNMUTED },
                            },
                        ]
                    }
                    ('2' | '3', _) => {
                        let step = if digit == '2' {
                            -GAIN_STEP_DB
                        } else {
                            GAIN_STEP_DB
                        };
                        *gain_db = (*gain_db + step).clamp(GAIN_MIN_DB, GAIN_MAX_DB);
                        vec![
                            Action::SetListenGain {
                                leg,
                                gain_db: *gain_db,
                            },
                            Action::Cue {
                                leg,
                                cue: Cue::Beep,
                            },
                        ]
                    }
                    ('5', true) => {
                        let number = m.room.clone();
                        let locked = !self.is_locked(&number);
                        self.locked.insert(number, locked);
                        vec![Action::Say {
                            leg,
                            prompt: if locked {
                                ROOM_LOCKED_NOW
                            } else {
                                ROOM_UNLOCKED
                            },
                        }]
                    }
                    ('6', true) => {
                        let number = m.room.clone();
                        self.mute_all_but(&number, Some(leg))
                    }
                    _ => Vec::new(),
                }
            }
        }
    }

    /// Mutes every member but `except`; if all of them already are, unmutes them instead.
    fn mute_all_but(&mut self, room: &str, except: Option<LegId>) -> Vec<Action> {
        let others: Vec<LegId> = self
            .rooms
            .get(room)
            .map(|l| l.iter().copied().filter(|&x| Some(x) != except).collect())
            .unwrap_or_default();
        let all_muted = others.iter().all(|o| {
            matches!(
                self.members.get(o).map(|m| &m.state),
                Some(State::In { muted: true, .. })
            )
        });
        let mute = !all_muted;
        let mut actions = Vec::new();
        for o in others {
            if let Some(State::In { muted, .. }) = self.members.get_mut(&o).map(|m| &mut m.state) {
                *muted = mute;
                actions.push(Action::SetMuted {
                    leg: o,
                    muted: mute,
                });
            }
        }
        if let Some(leg) = except {
            actions.push(Action::Say {
                leg,
                prompt: if mute { ALL_MUTED } else { UNMUTED },
            });
        }
        actions
    }

    /// The engine's talk detector changed its mind about a member.
    pub fn on_talking(&mut self, leg: LegId, talking: bool) -> bool {
        match self.members.get_mut(&leg) {
            Some(m) if m.talking != talking => {
                m.talking = talking;
                true
            }
            _ => false,
        }
    }

    /// `conference kick ROOM MEMBER` (from the CLI): false if no such member in the room.
    pub fn kick(&mut self, room: &str, leg: LegId) -> Option<Vec<Action>> {
        self.joined(room, leg)?;
        Some(self.send_away(leg, KICKED))
    }

    /// `conference mute ROOM MEMBER`: toggles the member's mute.
    pub fn toggle_mute(&mut self, room: &str, leg: LegId) -> Option<Vec<Action>> {
        self.joined(room, leg)?;
        let m = self.members.get_mut(&leg)?;
        let State::In { muted, .. } = &mut m.state else {
            return None;
        };
        *muted = !*muted;
        let muted = *muted;
        Some(vec![
            Action::SetMuted { leg, muted },
            Action::Say {
                leg,
                prompt: if muted { MUTED } else { UNMUTED },
            },
        ])
    }

    /// `conference lock|unlock ROOM`.
    pub fn set_locked(&mut self, room: &str, locked: bool) {
        if locked {
            self.locked.insert(room.to_owned(), true);
        } else {
            self.locked.remove(room);
        }
    }

    pub fn is_locked(&self, room: &str) -> bool {
        self.locked.get(room).copied().unwrap_or(false)
    }

    fn joined(&self, room: &str, leg: LegId) -> Option<()> {
        self.rooms.get(room)?.contains(&leg).then_some(())
    }

    /// One member's view, for the mirrored state.
    pub fn view(&self, leg: LegId) -> Option<MemberView> {
        let m = self.members.get(&leg)?;
        let State::In { admin, muted, .. } = m.state else {
            return None;
        };
        Some(MemberView {
            leg,
            room: m.room.clone(),
            extension: m.extension.clone(),
            admin,
            muted,
            talking: m.talking,
            joined_ms: m.joined_ms,
        })
    }

    /// Members of `room` now (joined, not typing a PIN).
    pub fn members_of(&self, room: &str) -> Vec<LegId> {
        self.rooms.get(room).cloned().unwrap_or_default()
    }

    /// Rooms with at least one member, and how many members in all.
    pub fn counts(&self) -> (usize, usize) {
        (self.rooms.len(), self.rooms.values().map(Vec::len).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn room(extra: &str) -> ConferenceRoom {
        Config::from_toml(&format!(
            "[sip]\ndomain = \"pbx.local\"\n[[conference]]\nnumber = \"800\"\n{extra}"
        ))
        .unwrap()
        .conferences
        .remove(0)
    }

    fn said(actions: &[Action]) -> Vec<&'static str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Say { prompt, .. } => Some(prompt.0),
                _ => None,
            })
            .collect()
    }

    fn type_in(c: &mut Conferences, leg: LegId, keys: &str, r: &ConferenceRoom) -> Vec<Action> {
        keys.chars().flat_map(|d| c.on_digit(leg, d, r)).collect()
    }

    #[test]
    fn a_room_without_pin_lets_the_first_in_alone_and_cues_the_next() {
        let r = room("");
        let mut c = Conferences::default();
        let a = c.enter(LegId(1), &r, "201", 0);
        assert_eq!(said(&a), ["conf-only-member"]);
        assert!(a.contains(&Action::JoinRoom {
            leg: LegId(1),
            room: "800".into()
        }));
        let b = c.enter(LegId(2), &r, "202", 0);
        assert!(said(&b).is_empty());
        assert!(b.contains(&Action::Cue {
            leg: LegId(1),
            cue: Cue::Join
        }));
        assert_eq!(c.members_of("800"), [LegId(1), LegId(2)]);
        let left = c.leave(LegId(1));
        assert_eq!(
            left,
            [Action::Cue {
                leg: LegId(2),
                cue: Cue::Leave
            }]
        );
        assert_eq!(c.counts(), (1, 1));
    }

    #[test]
    fn three_wrong_pins_hang_up_and_the_right_one_joins() {
        let r = room("pin = \"1234\"\nadmin_pin = \"9999\"\n");
        let mut c = Conferences::default();
        assert_eq!(said(&c.enter(LegId(1), &r, "201", 0)), ["conf-enter-pin"]);
        assert_eq!(
            said(&type_in(&mut c, LegId(1), "1111", &r)),
            ["conf-wrong-pin", "conf-enter-pin"]
        );
        assert_eq!(
            said(&type_in(&mut c, LegId(1), "12#", &r)),
            ["conf-wrong-pin", "conf-enter-pin"],
            "# ends a short PIN"
        );
        let third = type_in(&mut c, LegId(1), "0000", &r);
        assert_eq!(said(&third), ["goodbye"]);
        assert!(third.contains(&Action::HangUpAfterPrompts { leg: LegId(1) }));
        assert!(c.members_of("800").is_empty());
        assert!(
            type_in(&mut c, LegId(1), "1234", &r).is_empty(),
            "no second chance"
        );

        assert_eq!(said(&c.enter(LegId(2), &r, "202", 0)), ["conf-enter-pin"]);
        let joined = type_in(&mut c, LegId(2), "1234", &r);
        assert!(joined.contains(&Action::JoinRoom {
            leg: LegId(2),
            room: "800".into()
        }));
        assert!(!c.view(LegId(2)).unwrap().admin);
        c.enter(LegId(3), &r, "203", 0);
        type_in(&mut c, LegId(3), "9999", &r);
        assert!(c.view(LegId(3)).unwrap().admin);
    }

    #[test]
    fn the_menu_mutes_changes_volume_and_admins_lock_and_mute_all() {
        let r = room("admin_pin = \"9999\"\n");
        let mut c = Conferences::default();
        c.enter(LegId(1), &r, "201", 0);
        type_in(&mut c, LegId(1), "9999", &r);
        c.enter(LegId(2), &r, "202", 0);
        type_in(&mut c, LegId(2), "9999", &r);
        let a = type_in(&mut c, LegId(2), "*1", &r);
        assert_eq!(
            a[0],
            Action::SetMuted {
                leg: LegId(2),
                muted: true
            }
        );
        assert!(c.view(LegId(2)).unwrap().muted);
        type_in(&mut c, LegId(2), "*1", &r);
        assert!(!c.view(LegId(2)).unwrap().muted);
        let a = type_in(&mut c, LegId(2), "*2*2", &r);
        assert!(a.contains(&Action::SetListenGain {
            leg: LegId(2),
            gain_db: -6.0
        }));
        assert!(
            type_in(&mut c, LegId(2), "1", &r).is_empty(),
            "a key without * is no command"
        );
        // Admin: *6 mutes everyone else, *5 locks; a locked room refuses a newcomer.
        let a = type_in(&mut c, LegId(1), "*6", &r);
        assert!(a.contains(&Action::SetMuted {
            leg: LegId(2),
            muted: true
        }));
        assert_eq!(
            said(&type_in(&mut c, LegId(1), "*5", &r)),
            ["conf-room-locked-now"]
        );
        assert!(c.is_locked("800"));
        c.enter(LegId(3), &r, "203", 0);
        let refused = type_in(&mut c, LegId(3), "0000", &r);
        assert_eq!(said(&refused), ["conf-wrong-pin", "conf-enter-pin"]);
        let r2 = room("pin = \"1\"\nadmin_pin = \"9999\"\n");
        let locked_out = type_in(&mut c, LegId(3), "1", &r2);
        assert_eq!(said(&locked_out), ["conf-locked"]);
        assert!(locked_out.contains(&Action::HangUpAfterPrompts { leg: LegId(3) }));
    }

    #[test]
    fn a_full_room_refuses_and_the_cli_kicks() {
        let r = room("max_members = 2\n");
        let mut c = Conferences::default();
        c.enter(LegId(1), &r, "201", 0);
        c.enter(LegId(2), &r, "202", 0);
        let third = c.enter(LegId(3), &r, "203", 0);
        assert_eq!(said(&third), ["conf-full"]);
        assert_eq!(c.members_of("800").len(), 2);
        assert!(c.kick("800", LegId(9)).is_none());
        let kicked = c.kick("800", LegId(2)).unwrap();
        assert_eq!(said(&kicked), ["conf-kicked"]);
        assert_eq!(c.members_of("800"), [LegId(1)]);
    }
}
