//! Where a call to an extension goes once routing found the extension: forwarded before it
//! rings (forward all; DND, or call waiting off during a call, with a busy forward; no phone registered with a no-answer forward),
//! refused (DND or call waiting off during a call: busy; nobody registered: unavailable), or rung with the forwards that apply
//! while it rings (busy, no answer after `forward_no_answer_seconds`). Every extension a call
//! visits is kept in its [`Visited`] list, so a loop (201 → 202 → 201) ends at once with
//! [`Reach::Loop`] and a chain longer than [`MAX_HOPS`] with [`Reach::TooManyHops`], instead of
//! a storm of INVITEs.
//!
//! With voicemail on, a call that would fail busy or unavailable goes to the mailbox of the
//! extension it reached instead ([`Reach::Voicemail`]), and a ringing extension without a
//! no-answer forward hands an unanswered call to its mailbox after the voicemail ring time.
//! Forwards always come first: voicemail is where a call ends, not a detour.
//!
//! Sans-IO: what the core knows about extensions (settings, registrations) comes in through
//! [`Targets`], so every rule is tested without a database or a phone.

use std::time::Duration;

use crate::routing::VoicemailGreeting;
use crate::store::{CallSettings, Extension, ForwardKind};

/// Extensions a call may visit (the one dialled plus forwards) before it fails with 483.
pub const MAX_HOPS: usize = 5;

/// What forwarding needs to know about extensions.
pub trait Targets {
    /// The extension's stored forwarding and DND.
    fn settings(&self, ext: &Extension) -> CallSettings;
    /// Whether any phone is registered for it now.
    fn registered(&self, ext: &Extension) -> bool;
    /// Whether it is in an answered call now (for call waiting off).
    fn in_call(&self, ext: &Extension) -> bool;
    /// Whether the extension (a forward's target) still exists.
    fn exists(&self, ext: &Extension) -> bool;
    /// How long it rings before its no-answer forward takes the call.
    fn no_answer_after(&self, ext: &Extension) -> Duration;
    /// How long it rings before its mailbox takes the call; None when voicemail is off.
    fn voicemail_after(&self, ext: &Extension) -> Option<Duration>;
}

/// The extensions a call has been at, in order.
pub type Visited = Vec<Extension>;

/// Ring `ext`; these forwards take the call if it is busy or not answered in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    pub ext: Extension,
    pub on_busy: Option<Extension>,
    pub on_no_answer: Option<(Duration, Extension)>,
    /// Voicemail is on: busy without a busy forward, or unanswered this long without a
    /// no-answer forward, the call goes to `ext`'s mailbox.
    pub voicemail_after: Option<Duration>,
}

/// Where a call to an extension ends up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    Ring(Ring),
    /// DND (or call waiting off during a call) without a busy forward: 486 Busy Here.
    Busy,
    /// No phone registered and no no-answer forward: 480.
    Unavailable,
    /// The forwards lead back to an extension the call has been at: 482 Loop Detected.
    Loop(Extension),
    /// More than [`MAX_HOPS`] extensions: 483 Too Many Hops.
    TooManyHops,
    /// Busy or unavailable, and voicemail is on: the mailbox of the extension reached.
    Voicemail {
        mailbox: Extension,
        greeting: VoicemailGreeting,
    },
}

/// Follows `ext`'s forwards until an extension is to ring or the call must fail; every
/// extension passed is added to `visited`.
pub fn reach(visited: &mut Visited, mut ext: Extension, t: &dyn Targets) -> Reach {
    loop {
        if visited.contains(&ext) {
            return Reach::Loop(ext);
        }
        if visited.len() >= MAX_HOPS {
            return Reach::TooManyHops;
        }
        visited.push(ext.clone());
        let s = t.settings(&ext);
        let target = |kind: ForwardKind| {
            s.forward(kind)
                .and_then(Extension::parse)
                .filter(|e| t.exists(e))
        };
        if let Some(next) = target(ForwardKind::All) {
            ext = next;
            continue;
        }
        // DND, or call waiting off while in a call: busy (or the busy forward).
        if s.dnd || (s.call_waiting_off && t.in_call(&ext)) {
            match target(ForwardKind::Busy) {
                Some(next) => {
                    ext = next;
                    continue;
                }
                None => return busy_or_voicemail(t, ext, VoicemailGreeting::Busy),
            }
        }
        if !t.registered(&ext) {
            match target(ForwardKind::NoAnswer) {
                Some(next) => {
                    ext = next;
                    continue;
                }
                None => return busy_or_voicemail(t, ext, VoicemailGreeting::Unavailable),
            }
        }
        let on_no_answer = target(ForwardKind::NoAnswer).map(|n| (t.no_answer_after(&ext), n));
        return Reach::Ring(Ring {
            on_busy: target(ForwardKind::Busy),
            on_no_answer,
            voicemail_after: t.voicemail_after(&ext),
            ext,
        });
    }
}

fn busy_or_voicemail(t: &dyn Targets, ext: Extension, greeting: VoicemailGreeting) -> Reach {
    match (t.voicemail_after(&ext), greeting) {
        (Some(_), greeting) => Reach::Voicemail {
            mailbox: ext,
            greeting,
        },
        (None, VoicemailGreeting::Busy) => Reach::Busy,
        (None, VoicemailGreeting::Unavailable) => Reach::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[derive(Default)]
    struct World {
        settings: HashMap<&'static str, CallSettings>,
        registered: Vec<&'static str>,
        in_call: Vec<&'static str>,
        voicemail: bool,
    }

    impl Targets for World {
        fn settings(&self, ext: &Extension) -> CallSettings {
            self.settings
                .get(ext.0.as_str())
                .cloned()
                .unwrap_or_default()
        }
        fn registered(&self, ext: &Extension) -> bool {
            self.registered.contains(&ext.0.as_str())
        }
        fn in_call(&self, ext: &Extension) -> bool {
            self.in_call.contains(&ext.0.as_str())
        }
        fn exists(&self, ext: &Extension) -> bool {
            ext.0.starts_with('2')
        }
        fn no_answer_after(&self, _: &Extension) -> Duration {
            Duration::from_secs(20)
        }
        fn voicemail_after(&self, _: &Extension) -> Option<Duration> {
            self.voicemail.then_some(Duration::from_secs(15))
        }
    }

    fn ext(s: &str) -> Extension {
        Extension(s.into())
    }

    fn world(registered: &[&'static str]) -> World {
        World {
            registered: registered.to_vec(),
            ..World::default()
        }
    }

    fn set(w: &mut World, e: &'static str, kind: ForwardKind, to: &str) {
        w.settings
            .entry(e)
            .or_default()
            .set_forward(kind, Some(to.into()));
    }

    fn go(w: &World, to: &str) -> (Reach, Vec<String>) {
        let mut v = Vec::new();
        let r = reach(&mut v, ext(to), w);
        (r, v.into_iter().map(|e| e.0).collect())
    }

    fn ring(e: &str) -> Reach {
        Reach::Ring(Ring {
            ext: ext(e),
            on_busy: None,
            on_no_answer: None,
            voicemail_after: None,
        })
    }

    #[test]
    fn nothing_set_rings_the_extension_or_finds_it_unavailable() {
        let w = world(&["201"]);
        assert_eq!(go(&w, "201").0, ring("201"));
        assert_eq!(go(&w, "202").0, Reach::Unavailable);
    }

    #[test]
    fn forward_all_goes_on_before_ringing() {
        let mut w = world(&["201", "202", "203"]);
        set(&mut w, "201", ForwardKind::All, "202");
        set(&mut w, "202", ForwardKind::All, "203");
        assert_eq!(
            go(&w, "201"),
            (ring("203"), vec!["201".into(), "202".into(), "203".into()])
        );
    }

    #[test]
    fn dnd_is_busy_or_the_busy_forward() {
        let mut w = world(&["201", "202"]);
        w.settings.entry("201").or_default().dnd = true;
        assert_eq!(go(&w, "201").0, Reach::Busy);
        set(&mut w, "201", ForwardKind::Busy, "202");
        assert_eq!(go(&w, "201").0, ring("202"));
        // Forward all wins over DND.
        set(&mut w, "201", ForwardKind::All, "203");
        assert_eq!(go(&w, "201").0, Reach::Unavailable);
    }

    #[test]
    fn call_waiting_off_is_busy_only_during_a_call() {
        let mut w = world(&["201", "202"]);
        w.settings.entry("201").or_default().call_waiting_off = true;
        assert_eq!(go(&w, "201").0, ring("201"));
        w.in_call.push("201");
        assert_eq!(go(&w, "201").0, Reach::Busy);
        set(&mut w, "201", ForwardKind::Busy, "202");
        assert_eq!(go(&w, "201").0, ring("202"));
        // Call waiting on (the default): a call during a call rings.
        w.settings.entry("201").or_default().call_waiting_off = false;
        assert!(matches!(go(&w, "201").0, Reach::Ring(r) if r.ext == ext("201")));
    }

    #[test]
    fn unregistered_goes_to_the_no_answer_forward() {
        let mut w = world(&["202"]);
        set(&mut w, "201", ForwardKind::NoAnswer, "202");
        assert_eq!(go(&w, "201").0, ring("202"));
    }

    #[test]
    fn a_ringing_extension_carries_its_busy_and_no_answer_forwards() {
        let mut w = world(&["201"]);
        set(&mut w, "201", ForwardKind::Busy, "202");
        set(&mut w, "201", ForwardKind::NoAnswer, "203");
        assert_eq!(
            go(&w, "201").0,
            Reach::Ring(Ring {
                ext: ext("201"),
                on_busy: Some(ext("202")),
                on_no_answer: Some((Duration::from_secs(20), ext("203"))),
                voicemail_after: None,
            })
        );
    }

    #[test]
    fn loops_and_long_chains_fail_instead_of_storming() {
        let mut w = world(&["201", "202"]);
        set(&mut w, "201", ForwardKind::All, "202");
        set(&mut w, "202", ForwardKind::All, "201");
        assert_eq!(go(&w, "201").0, Reach::Loop(ext("201")));
        // A busy forward back to where the call was is a loop too (the call's list goes on).
        let mut w = world(&["201", "202"]);
        set(&mut w, "201", ForwardKind::Busy, "202");
        set(&mut w, "202", ForwardKind::Busy, "201");
        let mut v = Vec::new();
        assert!(
            matches!(reach(&mut v, ext("201"), &w), Reach::Ring(r) if r.on_busy == Some(ext("202")))
        );
        assert!(
            matches!(reach(&mut v, ext("202"), &w), Reach::Ring(r) if r.on_busy == Some(ext("201")))
        );
        assert_eq!(reach(&mut v, ext("201"), &w), Reach::Loop(ext("201")));
        // A chain: 201 → 202 → … → 207, all forwarding on.
        let mut w = world(&["207"]);
        let names = ["201", "202", "203", "204", "205", "206", "207"];
        for pair in names.windows(2) {
            set(&mut w, pair[0], ForwardKind::All, pair[1]);
        }
        let (r, v) = go(&w, "201");
        assert_eq!(r, Reach::TooManyHops);
        assert_eq!(v.len(), MAX_HOPS);
    }

    #[test]
    fn a_forward_to_a_removed_extension_is_ignored() {
        let mut w = world(&["201"]);
        set(&mut w, "201", ForwardKind::All, "999");
        assert_eq!(go(&w, "201").0, ring("201"));
    }

    #[test]
    fn with_voicemail_busy_and_unavailable_reach_the_mailbox_but_forwards_come_first() {
        let vm = |mailbox: &str, greeting| Reach::Voicemail {
            mailbox: ext(mailbox),
            greeting,
        };
        let mut w = world(&["201"]);
        w.voicemail = true;
        assert_eq!(go(&w, "202").0, vm("202", VoicemailGreeting::Unavailable));
        w.settings.entry("201").or_default().dnd = true;
        assert_eq!(go(&w, "201").0, vm("201", VoicemailGreeting::Busy));
        // A forward is followed; the mailbox is the one where the call ends.
        set(&mut w, "201", ForwardKind::Busy, "203");
        assert_eq!(go(&w, "201").0, vm("203", VoicemailGreeting::Unavailable));
        // Ringing carries the time after which the mailbox takes the call.
        let w2 = World {
            voicemail: true,
            ..world(&["201"])
        };
        assert_eq!(
            go(&w2, "201").0,
            Reach::Ring(Ring {
                ext: ext("201"),
                on_busy: None,
                on_no_answer: None,
                voicemail_after: Some(Duration::from_secs(15)),
            })
        );
        // Loops stay loops.
        let mut w3 = World {
            voicemail: true,
            ..world(&["201", "202"])
        };
        set(&mut w3, "201", ForwardKind::All, "202");
        set(&mut w3, "202", ForwardKind::All, "201");
        assert_eq!(go(&w3, "201").0, Reach::Loop(ext("201")));
    }
}
