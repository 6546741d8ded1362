//! Voicemail in the core: a ringing call handed to the mailbox (busy, no answer), the
//! recording started after the greeting, and the recorded message stored: the WAV written
//! atomically beside the database, then its row in the batch's transaction.

use std::io::Cursor;
use std::time::Duration;

use kentongan_engine::{LegId, RecordEnd};
use kentongan_media::{SampleRate, WavWriter};
use tracing::{info, warn};

use super::answered::App;
use super::calls::CallKey;
use super::{Clock, Pbx};
use crate::apps::voicemail::{Limits, Recorded};
use crate::config::{Config, Prompts};
use crate::media::EngineCommand as Command;
use crate::prompts::PromptCache;
use crate::routing::VoicemailGreeting;
use crate::store::{
    greeting_path, voicemail_root, write_message, Extension, GreetingKind, Store, VoicemailMessage,
    VoicemailWrite, Write,
};

/// Shorter than this, a message is a caller hanging up at the beep: not kept.
const MIN_MESSAGE: Duration = Duration::from_millis(500);

/// A message (or, from the mailbox menu, a greeting) being recorded.
#[derive(Debug, Clone)]
pub(super) struct Recording {
    /// A greeting of the mailbox's owner, not a message.
    greeting: Option<GreetingKind>,
    mailbox: Extension,
    caller: Extension,
    caller_name: String,
    started_ms: i64,
}

/// The prompts voicemail speaks, in `[voicemail] language`.
pub(super) fn prompt_cache(config: &Config) -> Option<PromptCache> {
    let vm = config.voicemail.as_ref()?;
    Some(PromptCache::new(&Prompts {
        directory: config.prompts.directory.clone(),
        language: vm.language,
    }))
}

/// Removes what a crash left in the voicemail folder (temporary files, files no row lists).
pub(super) fn clean_at_start(store: &Store, config: &Config) {
    let root = voicemail_root(&config.database);
    match store.clean_voicemail_dir(&root) {
        Ok(0) => {}
        Ok(n) => info!(files = n, dir = %root.display(), "removed unfinished voicemail files"),
        Err(e) => {
            warn!(error = %e, "the voicemail folder could not be checked for unfinished files")
        }
    }
}

fn wav(samples: &[i16]) -> Result<Vec<u8>, kentongan_media::WavError> {
    let mut w = WavWriter::new(Cursor::new(Vec::new()), SampleRate::Hz8000, 1)?;
    w.write_samples(samples)?;
    Ok(w.finish()?.into_inner())
}

impl Pbx {
    /// The stored PIN hash and the messages of `mailbox`, for the `*97` menu.
    pub(super) fn mailbox_for_menu(
        &self,
        mailbox: &Extension,
    ) -> (Option<String>, Vec<crate::apps::mailbox::MessageRef>) {
        let pin = self
            .store
            .voicemail_pin_hash(&mailbox.0)
            .unwrap_or_else(|e| {
                warn!(error = %e, %mailbox, "voicemail PIN could not be read");
                // Fail closed: a hash nothing matches.
                Some(String::new())
            });
        let messages = self
            .store
            .voicemail_list(&mailbox.0)
            .unwrap_or_default()
            .into_iter()
            .map(|m| crate::apps::mailbox::MessageRef {
                id: m.id,
                new: m.status == "new",
                caller: m.caller,
            })
            .collect();
        (pin, messages)
    }

    /// `*98` named a mailbox: the leg's menu now serves it (its PIN still to be typed).
    /// A number without an extension gets no PIN, so no PIN opens it.
    pub(super) fn open_mailbox(&mut self, leg: LegId, number: &str) -> Vec<crate::apps::Action> {
        let ext =
            Extension::parse(number).filter(|e| self.store.user_exists(&e.0).unwrap_or(false));
        let (pin, messages) = match &ext {
            Some(e) => self.mailbox_for_menu(e),
            None => (None, Vec::new()),
        };
        if let (Some(a), Some(e)) = (self.apps.legs.get_mut(&leg), ext) {
            a.app = App::Mailbox { mailbox: Some(e) };
        }
        self.apps.mailboxes.opened(leg, pin, messages)
    }

    /// Plays a stored message to `leg` (the caller's own mailbox's, checked again here).
    pub(super) fn play_message(&mut self, leg: LegId, id: i64) {
        let Some(App::Mailbox {
            mailbox: Some(mailbox),
        }) = self.apps.legs.get(&leg).map(|a| a.app.clone())
        else {
            return;
        };
        let clip = self
            .store
            .voicemail_message(&mailbox.0, id)
            .ok()
            .flatten()
            .and_then(|m| std::fs::read(&m.path).ok())
            .and_then(|bytes| kentongan_media::WavClip::parse(&bytes).ok());
        match clip {
            Some(wav) => self.engine.command(Command::Play {
                leg,
                sound: kentongan_engine::Sound::Clip(kentongan_engine::clip_at_engine_rate(&wav)),
                tag: 0,
            }),
            None => warn!(%mailbox, id, "voicemail message could not be read; skipped"),
        }
    }

    /// Marks a message old, or deletes it (row in the batch, file after the commit).
    pub(super) fn change_message(&mut self, id: i64, delete: bool) {
        let Some(m) = self.store.voicemail_by_id(id).ok().flatten() else {
            return;
        };
        if delete {
            self.writes
                .push(Write::Voicemail(VoicemailWrite::Delete(id)));
            self.deleted_files.push(std::path::PathBuf::from(&m.path));
        } else {
            self.writes
                .push(Write::Voicemail(VoicemailWrite::MarkOld(id)));
        }
        self.mwi.dirty.insert(Extension(m.mailbox));
    }

    /// Files of messages whose rows the last commit deleted.
    pub(super) fn remove_deleted_messages(&mut self) {
        for path in std::mem::take(&mut self.deleted_files) {
            if let Err(e) = std::fs::remove_file(&path) {
                warn!(error = %e, path = %path.display(), "deleted message's file not removed; the next start removes it");
            }
        }
    }

    /// A call ringing an extension goes to its mailbox instead: the phones stop ringing and
    /// the caller's INVITE is answered by voicemail.
    pub(super) fn call_to_voicemail(
        &mut self,
        clock: Clock,
        key: CallKey,
        mailbox: Extension,
        greeting: VoicemailGreeting,
    ) {
        info!(call = key, %mailbox, ?greeting, "call to voicemail");
        self.call_to_app(clock, key, App::Voicemail { mailbox, greeting });
    }

    /// An unanswered call's caller leg handed to an application the PBX answers it with;
    /// the ringing phones are cancelled and the relay's ports given back.
    pub(super) fn call_to_app(&mut self, clock: Clock, key: CallKey, app: App) {
        self.cancel_forks(clock, key);
        let Some(call) = self.calls.remove(&key) else {
            return;
        };
        self.by_call_id.remove(&call.call_id);
        self.by_call_id.remove(&call.b_call_id);
        self.server_invites.remove(&call.caller_tx);
        for s in call.media.into_iter().flatten() {
            self.relay.release(s);
        }
        self.answer_with_app_tagged(
            clock,
            call.caller_tx,
            call.caller_peer,
            call.caller_invite,
            call.caller,
            app,
            Some(call.our_tag),
        );
    }

    pub(super) fn voicemail_limits(&self, mailbox: &Extension) -> Limits {
        let (max_message, max_messages) = self
            .config
            .voicemail
            .as_ref()
            .map_or((180, 100), |v| (v.max_message_seconds, v.max_messages));
        let stored = match self.store.voicemail_counts(&mailbox.0) {
            Ok((new, old)) => new + old,
            Err(e) => {
                warn!(error = %e, %mailbox, "voicemail could not be counted");
                0
            }
        };
        Limits {
            max_message: Duration::from_secs(u64::from(max_message)),
            full: stored >= max_messages,
        }
    }

    /// The greeting and beep have played: record.
    pub(super) fn start_recording(&mut self, clock: Clock, leg: LegId) {
        let Some(spec) = self.apps.record_after.remove(&leg) else {
            return;
        };
        let Some(a) = self.apps.legs.get(&leg) else {
            return;
        };
        let (mailbox, greeting) = match &a.app {
            App::Voicemail { mailbox, .. } => (mailbox, None),
            App::Mailbox {
                mailbox: Some(mailbox),
            } => match self.apps.mailboxes.recording_greeting(leg) {
                Some(kind) => (mailbox, Some(kind)),
                None => return,
            },
            _ => return,
        };
        self.apps.recording.insert(
            leg,
            Recording {
                greeting,
                mailbox: mailbox.clone(),
                caller: a.caller.clone(),
                caller_name: a.caller_name.clone(),
                started_ms: clock.unix_ms,
            },
        );
        self.engine.command(Command::Record { leg, spec });
        if greeting.is_none() {
            self.apps.voicemail.on_recording(leg);
        }
    }

    /// The mailbox's recorded greeting of `kind`, if one was stored and reads as a WAV.
    pub(super) fn recorded_greeting(
        &self,
        mailbox: &Extension,
        kind: GreetingKind,
    ) -> Option<kentongan_media::WavClip> {
        let path = greeting_path(&voicemail_root(&self.config.database), &mailbox.0, kind);
        let bytes = std::fs::read(&path).ok()?;
        match kentongan_media::WavClip::parse(&bytes) {
            Ok(wav) => Some(wav),
            Err(e) => {
                let key = match kind {
                    GreetingKind::Unavailable => 1,
                    GreetingKind::Busy => 2,
                    GreetingKind::Name => 3,
                };
                warn!(error = %e, path = %path.display(), "recorded greeting unreadable; the generated one is played (record it again from the mailbox options, 0 then {key})");
                None
            }
        }
    }

    /// Which greetings the owner of `mailbox` recorded.
    pub(super) fn recorded_greetings(&self, mailbox: &Extension) -> Recorded {
        let has = |kind| self.recorded_greeting(mailbox, kind).is_some();
        Recorded {
            unavailable: has(GreetingKind::Unavailable),
            busy: has(GreetingKind::Busy),
            name: has(GreetingKind::Name),
        }
    }

    /// Plays a recorded greeting of the mailbox a caller reached.
    pub(super) fn play_recorded_greeting(&mut self, leg: LegId, kind: GreetingKind) {
        let Some(App::Voicemail { mailbox, .. }) = self.apps.legs.get(&leg).map(|a| a.app.clone())
        else {
            return;
        };
        match self.recorded_greeting(&mailbox, kind) {
            Some(wav) => self.engine.command(Command::Play {
                leg,
                sound: kentongan_engine::Sound::Clip(kentongan_engine::clip_at_engine_rate(&wav)),
                tag: 0,
            }),
            None => warn!(%mailbox, ?kind, "recorded greeting vanished before it was played"),
        }
    }

    /// A PIN changed in the mailbox menu: hashed here, stored in the batch.
    pub(super) fn set_pin(&mut self, leg: LegId, pin: &crate::store::VoicemailPin) {
        let Some(App::Mailbox {
            mailbox: Some(mailbox),
        }) = self.apps.legs.get(&leg).map(|a| a.app.clone())
        else {
            return;
        };
        match pin.hash() {
            Ok(hash) => {
                info!(%mailbox, "voicemail PIN changed by phone");
                self.writes.push(Write::Voicemail(VoicemailWrite::SetPin {
                    extension: mailbox.0.clone(),
                    hash: hash.clone(),
                }));
                self.apps.mailboxes.pin_stored(leg, hash);
            }
            Err(e) => {
                warn!(error = %e, %mailbox, "new voicemail PIN could not be hashed; the old one stays")
            }
        }
    }

    /// The engine handed out a recording: stored (file, then row), then the caller (if still
    /// there) hears that it was.
    pub(super) fn store_recording(
        &mut self,
        clock: Clock,
        leg: LegId,
        samples: &[i16],
        end: RecordEnd,
    ) {
        let Some(rec) = self.apps.recording.remove(&leg) else {
            return;
        };
        let duration_ms = (samples.len() / 8) as i64;
        if let Some(kind) = rec.greeting {
            return self.store_greeting(clock, leg, &rec.mailbox, kind, samples, duration_ms);
        }
        let mut kept = false;
        if Duration::from_millis(duration_ms as u64) >= MIN_MESSAGE {
            let root = voicemail_root(&self.config.database);
            let name = format!("{}-{}", rec.started_ms, leg.0);
            let written = wav(samples)
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|bytes| write_message(&root, &rec.mailbox.0, &name, &bytes));
            match written {
                Ok(path) => {
                    info!(mailbox = %rec.mailbox, caller = %rec.caller, duration_ms, ?end, "voicemail left");
                    let message = VoicemailMessage {
                        id: 0,
                        mailbox: rec.mailbox.0.clone(),
                        caller: rec.caller.0.clone(),
                        received_ms: rec.started_ms,
                        duration_ms,
                        status: "new".into(),
                        path: path.display().to_string(),
                    };
                    let mailed = self
                        .config
                        .voicemail
                        .as_ref()
                        .is_some_and(|v| v.smtp.is_some());
                    // With a relay, the mail is queued in the message's own transaction.
                    self.writes.push(Write::Voicemail(if mailed {
                        VoicemailWrite::InsertAndMail {
                            message,
                            caller_name: rec.caller_name,
                            to: self
                                .config
                                .extension_email(&rec.mailbox.0)
                                .map(str::to_owned),
                        }
                    } else {
                        VoicemailWrite::Insert(message)
                    }));
                    self.mwi.dirty.insert(rec.mailbox.clone());
                    self.metrics
                        .voicemails_total
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    kept = true;
                }
                Err(e) => warn!(
                    error = %e,
                    dir = %root.display(),
                    mailbox = %rec.mailbox,
                    "voicemail could not be written; check that the folder beside the database is writable and the disk not full"
                ),
            }
        }
        let actions = self.apps.voicemail.on_recorded(leg, kept);
        self.carry_out(clock, actions);
    }

    /// A greeting recorded from the mailbox menu: written atomically over the old one (a
    /// crash leaves the old greeting or the new, never half of one).
    fn store_greeting(
        &mut self,
        clock: Clock,
        leg: LegId,
        mailbox: &Extension,
        kind: GreetingKind,
        samples: &[i16],
        duration_ms: i64,
    ) {
        let mut kept = false;
        if Duration::from_millis(duration_ms as u64) >= MIN_MESSAGE {
            let root = voicemail_root(&self.config.database);
            let written = wav(samples)
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|bytes| write_message(&root, &mailbox.0, kind.file_stem(), &bytes));
            match written {
                Ok(path) => {
                    info!(%mailbox, ?kind, duration_ms, path = %path.display(), "voicemail greeting recorded");
                    kept = true;
                }
                Err(e) => warn!(
                    error = %e,
                    dir = %root.display(),
                    %mailbox,
                    "voicemail greeting could not be written; check that the folder beside the database is writable and the disk not full"
                ),
            }
        }
        let actions = self.apps.mailboxes.on_greeting_recorded(leg, kept);
        self.carry_out(clock, actions);
    }
}
