//! Applications: what serves a call the PBX answers itself (a [`crate::routing::Destination`]
//! other than an extension). Each is a sans-IO state machine: the core hands it what happened
//! (a leg entered, a key was pressed, a leg hung up, a sound finished) and carries out the
//! [`Action`]s it returns through the media engine and SIP. An application never sees a
//! socket, a packet or a SIP message.

pub mod conference;
pub mod echo;
pub mod features;
pub mod in_call;
pub mod ivr;
pub mod mailbox;
pub mod voicemail;

use kentongan_engine::LegId;

/// A spoken prompt, by its id in the prompt catalogue (`<directory>/<lang>/8000/<id>.wav`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prompt(pub &'static str);

/// The clips of 0 to 19, one each in the catalogue (kentongan-prompts' `say` names them so).
pub(crate) const NUMBERS: [Prompt; 20] = [
    Prompt("n-0"),
    Prompt("n-1"),
    Prompt("n-2"),
    Prompt("n-3"),
    Prompt("n-4"),
    Prompt("n-5"),
    Prompt("n-6"),
    Prompt("n-7"),
    Prompt("n-8"),
    Prompt("n-9"),
    Prompt("n-10"),
    Prompt("n-11"),
    Prompt("n-12"),
    Prompt("n-13"),
    Prompt("n-14"),
    Prompt("n-15"),
    Prompt("n-16"),
    Prompt("n-17"),
    Prompt("n-18"),
    Prompt("n-19"),
];

/// `s` read digit by digit to `leg` (an extension, a caller's number); other characters are
/// skipped.
pub(crate) fn say_digits(leg: LegId, s: &str) -> impl Iterator<Item = Action> + '_ {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(move |d| Action::Say {
            leg,
            prompt: NUMBERS[usize::from(d - b'0')],
        })
}

/// A short tone that needs no words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cue {
    /// Someone joined.
    Join,
    /// Someone left.
    Leave,
    /// A key was taken.
    Beep,
}

/// What an application asks the core to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Say {
        leg: LegId,
        prompt: Prompt,
    },
    Cue {
        leg: LegId,
        cue: Cue,
    },
    /// Into the media room of the named conference (created on first use).
    JoinRoom {
        leg: LegId,
        room: String,
    },
    SetMuted {
        leg: LegId,
        muted: bool,
    },
    SetListenGain {
        leg: LegId,
        gain_db: f32,
    },
    /// The leg hears what it sends (the echo test).
    Echo {
        leg: LegId,
    },
    /// Hang up once everything queued for the leg has played.
    HangUpAfterPrompts {
        leg: LegId,
    },
    /// Once everything queued has played, record what the leg sends (the engine ends it
    /// after `max`, or after `silence` without speech).
    RecordAfterPrompts {
        leg: LegId,
        max: std::time::Duration,
        silence: std::time::Duration,
    },
    /// End the leg's recording now (the recorded message is then stored).
    StopRecording {
        leg: LegId,
    },
    /// Play a stored voicemail message (of the caller's mailbox) to the leg.
    PlayMessage {
        leg: LegId,
        id: i64,
    },
    /// Stop what the leg is being played (a key cut a message short).
    StopSounds {
        leg: LegId,
    },
    /// A message of the caller's mailbox was listened to and kept.
    MarkOld {
        id: i64,
    },
    DeleteMessage {
        id: i64,
    },
    /// Store `pin` (hashed) as the PIN of the caller's mailbox.
    SetPin {
        leg: LegId,
        pin: crate::store::VoicemailPin,
    },
    /// Play a greeting the owner of the mailbox the caller reached recorded.
    PlayRecordedGreeting {
        leg: LegId,
        kind: crate::store::GreetingKind,
    },
    /// `*98`: open the mailbox the caller typed (the core hands its PIN hash and messages
    /// back to the menu).
    OpenMailbox {
        leg: LegId,
        mailbox: String,
    },
    /// Play the greeting of the `[[ivr]]` menu with this index in `Config::ivrs`.
    PlayGreeting {
        leg: LegId,
        menu: usize,
    },
    /// Tell the application (`on_prompts_done`) once everything queued has played.
    NotifyAfterPrompts {
        leg: LegId,
    },
    /// Hand the caller to a configured target (`routing::Dialplan::resolve_target`): an
    /// extension is called and bridged, a service takes the leg over.
    Connect {
        leg: LegId,
        target: String,
    },
}
