//! Applications: what serves a call the PBX answers itself (a [`crate::routing::Destination`]
//! other than an extension). Each is a sans-IO state machine: the core hands it what happened
//! (a leg entered, a key was pressed, a leg hung up, a sound finished) and carries out the
//! [`Action`]s it returns through the media engine and SIP. An application never sees a
//! socket, a packet or a SIP message.

pub mod conference;
pub mod echo;
pub mod features;
pub mod mailbox;
pub mod voicemail;

use kentongan_engine::LegId;

/// A spoken prompt, by its id in the prompt catalogue (`<directory>/<lang>/8000/<id>.wav`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prompt(pub &'static str);

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
    /// `*98`: open the mailbox the caller typed (the core hands its PIN hash and messages
    /// back to the menu).
    OpenMailbox {
        leg: LegId,
        mailbox: String,
    },
}
