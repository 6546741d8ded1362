//! Legs the PBX answers itself: an INVITE routed to an application is answered with our own
//! SDP, pointing at a media engine leg; the application (see [`crate::apps`]) then decides
//! what the caller hears, through [`Action`]s carried out here.

use std::net::SocketAddr;
use std::time::Instant;

use kentongan_engine::{LegId, LegSpec, Sound};
use kentongan_media::{Codec, OpusConfig, SampleRate};
use kentongan_sip::dialog::Dialog;
use kentongan_sip::sdp::{Codec as SdpCodec, LocalMedia, Sdp};
use kentongan_sip::transaction::TxId;
use kentongan_sip::{HeaderName, Message, Method, Request, Response, StatusCode};
use tracing::{debug, info, warn};

use super::calls::{media_target, Pending2xx, Resend, Side};
use super::{Clock, Pbx, TxUse, ALLOW, USER_AGENT};
use crate::apps::conference::Conferences;
use crate::apps::Action;
use crate::media::EngineCommand as Command;
use crate::prompts;
use crate::store::{Cdr, ConferenceMemberRow, ConferenceWrite, Extension, LiveCall, Write};

/// The tag of the short silence queued after prompts to learn when they have all played.
const HANG_UP_TAG: u64 = 1;
/// Likewise, to start recording once the greeting and beep have played.
pub(super) const RECORD_TAG: u64 = 2;

/// Which application serves an answered leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum App {
    /// A conference room, by number.
    Conference(String),
    /// A feature code: confirm, then hang up.
    Feature(crate::routing::FeatureCode),
    /// `*43`: the caller hears itself until it hangs up.
    Echo,
    /// `*97`: `mailbox` (the caller's own) listened to; `*98`: None until the caller has
    /// named one.
    Mailbox { mailbox: Option<Extension> },
    /// Leaving a message in `mailbox`.
    Voicemail {
        mailbox: Extension,
        greeting: crate::routing::VoicemailGreeting,
    },
    /// An `[[ivr]]` menu, by index in `Config::ivrs`.
    Ivr(usize),
    /// One side of a call an IVR connected: `other` is the leg it is joined with in `room`.
    Bridged {
        other: LegId,
        room: kentongan_engine::RoomId,
    },
}

pub(super) struct Answered {
    pub(super) call_id: String,
    pub(super) caller: Extension,
    /// The caller's SIP display name (untrusted text).
    pub(super) caller_name: String,
    dialled: String,
    dialog: Dialog,
    peer: SocketAddr,
    port: u16,
    pub(super) app: App,
    pub(super) start_ms: i64,
    pending_2xx: Option<Pending2xx>,
    answer_sdp: Sdp,
    /// The extension an IVR connected the caller to (the CDR's callee).
    pub(super) connected: Option<Extension>,
    /// A leg the PBX called (an IVR's extension): its call is the caller's, so it writes no
    /// CDR or live-call row of its own.
    outgoing: bool,
    /// The trunk and DID of a call from outside.
    pub(super) inbound: Option<super::inbound::InboundLeg>,
}

impl Answered {
    /// The leg of an extension an IVR called, which answered.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn outgoing(
        call_id: String,
        caller: Extension,
        callee: Extension,
        dialog: Dialog,
        peer: SocketAddr,
        port: u16,
        app: App,
        start_ms: i64,
        our_sdp: Sdp,
    ) -> Answered {
        Answered {
            call_id,
            caller,
            caller_name: String::new(),
            dialled: callee.0,
            dialog,
            peer,
            port,
            app,
            start_ms,
            pending_2xx: None,
            answer_sdp: our_sdp,
            connected: None,
            outgoing: true,
            inbound: None,
        }
    }
}

/// State of the applications and their legs.
#[derive(Default)]
pub(super) struct Apps {
    pub(super) legs: std::collections::HashMap<LegId, Answered>,
    pub(super) by_call_id: std::collections::HashMap<String, LegId>,
    pub(super) ivrs: crate::apps::ivr::Ivrs,
    /// Each `[[ivr]]` menu's greeting (by index), made at start and reload.
    pub(super) greetings: Vec<Option<kentongan_media::Clip>>,
    /// IVR callers whose extension is ringing.
    pub(super) onward: std::collections::HashMap<LegId, super::ivr::Onward>,
    pub(super) conferences: Conferences,
    pub(super) voicemail: crate::apps::voicemail::Voicemail,
    pub(super) mailboxes: crate::apps::mailbox::Mailboxes,
    /// Recordings to start once a leg's prompts have played.
    pub(super) record_after: std::collections::HashMap<LegId, kentongan_engine::RecordSpec>,
    /// Messages being recorded: what to store them as when the engine hands them out.
    pub(super) recording: std::collections::HashMap<LegId, super::voicemail::Recording>,
    /// The engine room of each conference with members.
    pub(super) rooms: std::collections::HashMap<String, kentongan_engine::RoomId>,
}

impl Apps {
    /// The answered legs `ext` called from (a room, a feature code), with what it dialled.
    pub(super) fn legs_of<'a>(
        &'a self,
        ext: &'a Extension,
    ) -> impl Iterator<Item = (u32, String)> + 'a {
        self.legs
            .iter()
            .filter(move |(_, a)| &a.caller == ext && !a.outgoing)
            .map(|(leg, a)| (leg.0, a.dialled.clone()))
    }

    pub(super) fn leg_of(&self, call_id: &str) -> Option<LegId> {
        self.by_call_id.get(call_id).copied()
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.legs
            .values()
            .filter_map(|a| a.pending_2xx.as_ref().map(|p| p.next))
            .min()
    }

    pub(super) fn count(&self) -> usize {
        self.legs.len()
    }
}

/// The engine codec for what the answer chose.
fn engine_codec(c: &SdpCodec) -> Option<Codec> {
    match c.name.to_ascii_uppercase().as_str() {
        "PCMU" => Some(Codec::Pcmu),
        "PCMA" => Some(Codec::Pcma),
        "OPUS" => Some(Codec::Opus(OpusConfig::voice(SampleRate::Hz48000))),
        _ => None,
    }
}

/// The leg's codec and payload types from our answer.
pub(super) fn leg_spec(answer: &Sdp) -> Option<LegSpec> {
    let audio = answer
        .media
        .iter()
        .find(|m| m.kind == "audio" && m.port != 0)?;
    let codecs = audio.codecs();
    let dtmf = codecs
        .iter()
        .find(|(_, c)| c.name.eq_ignore_ascii_case("telephone-event"))
        .map(|(pt, _)| *pt);
    let (pt, codec) = codecs
        .iter()
        .find_map(|(pt, c)| engine_codec(c).map(|e| (*pt, e)))?;
    Some(LegSpec::new(codec, pt, dtmf))
}

impl Pbx {
    /// Answers an INVITE with a media engine leg and hands it to `app`.
    pub(super) fn answer_with_app(
        &mut self,
        clock: Clock,
        tx: TxId,
        from: SocketAddr,
        req: Request,
        caller: Extension,
        app: App,
    ) {
        self.answer_with_app_tagged(clock, tx, from, req, caller, app, None)
    }

    /// As [`Pbx::answer_with_app`], with the To tag already sent in provisional answers (a
    /// call that rang before voicemail took it keeps its early dialog's tag).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn answer_with_app_tagged(
        &mut self,
        clock: Clock,
        tx: TxId,
        from: SocketAddr,
        req: Request,
        caller: Extension,
        app: App,
        tag: Option<String>,
    ) {
        let offer = match Sdp::parse(&req.body) {
            Ok(o) => o,
            Err(_) => {
                // No offer (or a broken one): we would have to offer in the 200 and wait for
                // the ACK's answer; phones always offer, so this is refused plainly.
                self.reply(clock, tx, &req, StatusCode::NOT_ACCEPTABLE_HERE);
                return;
            }
        };
        let (port, rtp, rtcp) = match self.relay.bind_pair(from.is_ipv6()) {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "no RTP port for an answered call");
                self.reply(clock, tx, &req, StatusCode::SERVICE_UNAVAILABLE);
                return;
            }
        };
        let mut local = LocalMedia::new(self.local_ip(from), port);
        local.audio_codecs = vec![
            SdpCodec::pcmu(),
            SdpCodec::pcma(),
            SdpCodec::opus(),
            SdpCodec::telephone_event(),
        ];
        local.session_id = clock.unix_ms.unsigned_abs();
        let answer = local.answer(&offer).ok();
        let Some((answer, spec)) = answer.and_then(|a| leg_spec(&a).map(|s| (a, s))) else {
            self.relay.give_port(port);
            let mut r = Response::for_request(&req, StatusCode(488), Some(&self.ep.new_tag()));
            r.reason = "Not Acceptable Here".into();
            r.headers.push(
                HeaderName::Warning,
                "305 kentongan \"offer PCMU, PCMA or opus\"",
            );
            self.respond(clock, tx, r);
            return;
        };
        let remote = media_target(&offer, 0);
        let leg = match self.engine.add_leg(spec, rtp, rtcp, remote) {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "media engine unavailable");
                self.relay.give_port(port);
                self.reply(clock, tx, &req, StatusCode::SERVICE_UNAVAILABLE);
                return;
            }
        };
        let rang_first = tag.is_some();
        let tag = tag.unwrap_or_else(|| self.ep.new_tag());
        let mut r = Response::for_request(&req, StatusCode::OK, Some(&tag));
        let dialled = req.uri.user().unwrap_or("").to_owned();
        let contact = match &app {
            // RFC 4579 §4.1: the focus says so in its Contact.
            App::Conference(_) => {
                let c = self.our_contact(from);
                format!(
                    "{};isfocus",
                    c.replacen("sip:pbx@", &format!("sip:{dialled}@"), 1)
                )
            }
            App::Feature(_)
            | App::Echo
            | App::Voicemail { .. }
            | App::Mailbox { .. }
            | App::Ivr(_)
            | App::Bridged { .. } => self.our_contact(from),
        };
        r.headers.push(HeaderName::Contact, contact);
        r.headers.push(HeaderName::Allow, ALLOW);
        r.headers.push(HeaderName::Server, USER_AGENT);
        r.set_body("application/sdp", answer.to_bytes());
        let Ok(dialog) = Dialog::uas(&req, &r) else {
            self.engine.remove_leg(leg);
            self.relay.give_port(port);
            self.reply(clock, tx, &req, StatusCode::BAD_REQUEST);
            return;
        };
        let msg = Message::Response(r.clone());
        if let Err(e) = self.ep.respond(clock.now, tx, r) {
            debug!(error = %e, "200 to an answered call not sent");
        }
        let call_id = req.headers.call_id().unwrap_or("").to_owned();
        info!(%caller, %dialled, leg = leg.0, "call answered by the PBX");
        if !rang_first {
            // A call that rang an extension first was counted when it started ringing.
            self.metrics
                .calls_total
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.writes.push(Write::LiveCall(LiveCall {
            call_id: call_id.clone(),
            caller: caller.0.clone(),
            callee: dialled.clone(),
            start_ms: clock.unix_ms,
            answer_ms: Some(clock.unix_ms),
            state: "answered".into(),
        }));
        self.apps.by_call_id.insert(call_id.clone(), leg);
        self.apps.legs.insert(
            leg,
            Answered {
                call_id,
                caller: caller.clone(),
                caller_name: super::calls::caller_display_name(&req),
                dialled,
                dialog,
                peer: from,
                port,
                app: app.clone(),
                start_ms: clock.unix_ms,
                pending_2xx: Some(Pending2xx::new(Side::Caller, msg, from, clock.now)),
                answer_sdp: answer,
                connected: None,
                outgoing: false,
                inbound: None,
            },
        );
        let actions = self.enter_app(leg, &caller, &app, clock);
        self.carry_out(clock, actions);
        self.update_gauges();
    }

    /// What `app` does first for a caller on `leg` (a new call, or a menu's target).
    pub(super) fn enter_app(
        &mut self,
        leg: LegId,
        caller: &Extension,
        app: &App,
        clock: Clock,
    ) -> Vec<Action> {
        match app {
            App::Conference(number) => match self.conference(number) {
                Some(room) => self
                    .apps
                    .conferences
                    .enter(leg, &room, &caller.0, clock.unix_ms),
                None => Vec::new(),
            },
            App::Feature(code) => {
                let (change, actions) = crate::apps::features::enter(leg, caller, code);
                if let Some(w) = change {
                    self.change_setting(w);
                }
                actions
            }
            App::Echo => crate::apps::echo::enter(leg),
            App::Mailbox {
                mailbox: Some(mailbox),
            } => {
                let (pin, messages) = self.mailbox_for_menu(mailbox);
                self.apps.mailboxes.enter(leg, pin, messages)
            }
            App::Mailbox { mailbox: None } => self.apps.mailboxes.enter_any(leg),
            App::Voicemail { mailbox, greeting } => {
                let limits = self.voicemail_limits(mailbox);
                let recorded = self.recorded_greetings(mailbox);
                self.apps
                    .voicemail
                    .enter(leg, &mailbox.0, *greeting, limits, recorded)
            }
            App::Ivr(index) => self.enter_ivr(leg, *index),
            App::Bridged { .. } => Vec::new(),
        }
    }

    fn conference(&self, number: &str) -> Option<crate::config::ConferenceRoom> {
        self.config
            .conferences
            .iter()
            .find(|r| r.number == number)
            .cloned()
    }

    /// Does what an application asked.
    pub(super) fn carry_out(&mut self, clock: Clock, actions: Vec<Action>) {
        let mut changed = Vec::new();
        for a in actions {
            match a {
                Action::Say { leg, prompt } => {
                    // Voicemail speaks `[voicemail] language`, everything else `[prompts]`'s.
                    // So do IVR menus, whose language defaults to voicemail's.
                    let voicemail = matches!(
                        self.apps.legs.get(&leg).map(|a| &a.app),
                        Some(App::Voicemail { .. } | App::Mailbox { .. } | App::Ivr(_))
                    );
                    let sound = match (voicemail, self.vm_prompts.as_mut()) {
                        (true, Some(p)) => p.sound(prompt),
                        _ => self.prompts.sound(prompt),
                    };
                    self.engine.command(Command::Play { leg, sound, tag: 0 });
                }
                Action::Cue { leg, cue } => self.engine.command(Command::Play {
                    leg,
                    sound: prompts::cue(cue),
                    tag: 0,
                }),
                Action::JoinRoom { leg, room } => {
                    let id = match self.apps.rooms.get(&room) {
                        Some(id) => *id,
                        None => {
                            let id = self.engine.create_room();
                            self.apps.rooms.insert(room, id);
                            id
                        }
                    };
                    self.engine.command(Command::Join { leg, room: id });
                    changed.push(leg);
                }
                Action::SetMuted { leg, muted } => {
                    self.engine.command(Command::SetMuted { leg, muted });
                    changed.push(leg);
                }
                Action::SetListenGain { leg, gain_db } => {
                    self.engine.command(Command::SetListenGain { leg, gain_db })
                }
                Action::Echo { leg } => self.engine.command(Command::SetEcho { leg, on: true }),
                Action::HangUpAfterPrompts { leg } => self.engine.command(Command::Play {
                    leg,
                    sound: Sound::Silence(std::time::Duration::from_millis(200)),
                    tag: HANG_UP_TAG,
                }),
                Action::RecordAfterPrompts { leg, max, silence } => {
                    self.apps
                        .record_after
                        .insert(leg, kentongan_engine::RecordSpec { max, silence });
                    self.engine.command(Command::Play {
                        leg,
                        sound: Sound::Silence(kentongan_engine::FRAME),
                        tag: RECORD_TAG,
                    });
                }
                Action::StopRecording { leg } => self.engine.command(Command::StopRecording(leg)),
                Action::StopSounds { leg } => self.engine.command(Command::StopPlaying(leg)),
                Action::PlayMessage { leg, id } => self.play_message(leg, id),
                Action::MarkOld { id } => self.change_message(id, false),
                Action::DeleteMessage { id } => self.change_message(id, true),
                Action::OpenMailbox { leg, mailbox } => {
                    let actions = self.open_mailbox(leg, &mailbox);
                    self.carry_out(clock, actions);
                }
                Action::PlayGreeting { leg, menu } => self.play_greeting(leg, menu),
                Action::SetPin { leg, pin } => self.set_pin(leg, &pin),
                Action::PlayRecordedGreeting { leg, kind } => {
                    self.play_recorded_greeting(leg, kind)
                }
                Action::NotifyAfterPrompts { leg } => self.engine.command(Command::Play {
                    leg,
                    sound: Sound::Silence(kentongan_engine::FRAME),
                    tag: super::ivr::IVR_TAG,
                }),
                Action::Connect { leg, target } => self.connect_target(clock, leg, &target),
            }
        }
        for leg in changed {
            self.mirror_member(leg);
        }
        let _ = clock;
    }

    fn mirror_member(&mut self, leg: LegId) {
        if let Some(v) = self.apps.conferences.view(leg) {
            self.writes.push(Write::Conference(ConferenceWrite::Member(
                ConferenceMemberRow {
                    member: i64::from(v.leg.0),
                    room: v.room,
                    extension: v.extension,
                    admin: v.admin,
                    muted: v.muted,
                    talking: v.talking,
                    joined_ms: v.joined_ms,
                },
            )));
        }
    }

    /// What the media engine reported since the last call (the driver calls this when the
    /// engine thread has woken it).
    pub fn handle_media(&mut self, clock: Clock) {
        self.in_call_events(clock);
        while let Some(ev) = self.engine.poll_event() {
            match ev {
                crate::media::MediaEvent::Dtmf { leg, digit } => {
                    debug!(leg = leg.0, %digit, "DTMF");
                    if self.recorded_key(clock, leg, digit) {
                        continue;
                    }
                    let app = self.apps.legs.get(&leg).map(|a| a.app.clone());
                    if let Some(App::Voicemail { .. }) = app {
                        let actions = self.apps.voicemail.on_digit(leg, digit);
                        self.carry_out(clock, actions);
                        continue;
                    }
                    if let Some(App::Ivr(_)) = app {
                        let actions = self.apps.ivrs.on_digit(leg, digit, clock.now);
                        self.carry_out(clock, actions);
                        continue;
                    }
                    if let Some(App::Mailbox { .. }) = app {
                        let actions = self.apps.mailboxes.on_digit(leg, digit);
                        self.carry_out(clock, actions);
                        continue;
                    }
                    let Some(App::Conference(number)) = app else {
                        continue;
                    };
                    let Some(room) = self.conference(&number) else {
                        continue;
                    };
                    let actions = self.apps.conferences.on_digit(leg, digit, &room);
                    self.carry_out(clock, actions);
                    self.mirror_room(&number);
                }
                crate::media::MediaEvent::Played { leg, tag } => {
                    if tag == HANG_UP_TAG {
                        self.hang_up_answered(clock, leg, "answered");
                    } else if tag == RECORD_TAG {
                        self.start_recording(clock, leg);
                    } else if tag == super::parking::PARK_TAG {
                        self.park_announced(clock, leg);
                    } else if tag == super::ivr::IVR_TAG {
                        self.apps.ivrs.on_prompts_done(leg, clock.now);
                    }
                }
                crate::media::MediaEvent::Talking { leg, talking } => {
                    if self.apps.conferences.on_talking(leg, talking) {
                        self.mirror_member(leg);
                    }
                }
                crate::media::MediaEvent::Recorded { leg, samples, end } => {
                    if let Some(samples) = self.take_call_recording(leg, samples) {
                        self.store_recording(clock, leg, &samples, end)
                    }
                }
                crate::media::MediaEvent::ActiveSpeaker { .. } => {}
            }
        }
    }

    fn mirror_room(&mut self, number: &str) {
        self.writes.push(Write::Conference(ConferenceWrite::Room {
            room: number.to_owned(),
            locked: self.apps.conferences.is_locked(number),
        }));
    }

    /// The PBX ends an answered call: BYE to the phone, then the leg is gone.
    pub(super) fn hang_up_answered(&mut self, clock: Clock, leg: LegId, disposition: &str) {
        let Some(a) = self.apps.legs.get_mut(&leg) else {
            return;
        };
        let bye = a.dialog.request(Method::Bye);
        let peer = a.peer;
        self.send(clock, peer, bye, TxUse::Other);
        self.end_answered(clock, leg, disposition);
    }

    /// Removes an answered leg: media, application state, CDR.
    pub(super) fn end_answered(&mut self, clock: Clock, leg: LegId, disposition: &str) {
        let Some(a) = self.apps.legs.remove(&leg) else {
            return;
        };
        self.apps.by_call_id.remove(&a.call_id);
        self.engine.remove_leg(leg);
        self.relay.give_port(a.port);
        let actions = match &a.app {
            App::Conference(number) => {
                let actions = self.apps.conferences.leave(leg);
                if self.apps.conferences.members_of(number).is_empty() {
                    if let Some(room) = self.apps.rooms.remove(number) {
                        self.engine.command(Command::RemoveRoom(room));
                    }
                    self.mirror_room(number);
                }
                self.writes
                    .push(Write::Conference(ConferenceWrite::MemberLeft(i64::from(
                        leg.0,
                    ))));
                actions
            }
            App::Voicemail { .. } => {
                // A recording in progress reaches `store_recording` through the engine's
                // Recorded event for the removed leg.
                self.apps.voicemail.leave(leg);
                self.apps.record_after.remove(&leg);
                Vec::new()
            }
            App::Mailbox { .. } => {
                self.apps.mailboxes.leave(leg);
                Vec::new()
            }
            App::Ivr(_) => {
                self.apps.ivrs.leave(leg);
                self.drop_onward(clock, leg);
                Vec::new()
            }
            App::Bridged { other, room } => {
                self.end_bridged(clock, leg, *other, *room);
                Vec::new()
            }
            App::Feature(_) | App::Echo => Vec::new(),
        };
        if a.outgoing {
            return self.update_gauges();
        }
        self.carry_out(clock, actions);
        let duration_s = (clock.unix_ms - a.start_ms).max(0) as f64 / 1000.0;
        info!(leg = leg.0, caller = %a.caller, dialled = %a.dialled, duration_s, "answered call ended");
        self.writes.push(Write::EndLiveCall(a.call_id.clone()));
        self.writes.push(Write::Cdr(Cdr {
            call_id: a.call_id,
            caller: a.caller.0,
            caller_name: String::new(),
            callee: a.connected.map_or(a.dialled, |c| c.0),
            start_ms: a.start_ms,
            answer_ms: Some(a.start_ms),
            end_ms: clock.unix_ms,
            duration_s,
            disposition: disposition.to_owned(),
            outbound: a.inbound.as_ref().map(|i| i.cdr(&self.config)),
            transfer: None,
        }));
        if a.inbound.is_some() {
            self.update_trunk_gauges();
        }
        self.update_gauges();
    }

    /// A request inside the dialog of an answered leg.
    pub(super) fn on_answered_in_dialog(
        &mut self,
        clock: Clock,
        tx: TxId,
        req: Request,
        leg: LegId,
    ) {
        let Some(a) = self.apps.legs.get_mut(&leg) else {
            self.reply(clock, tx, &req, StatusCode::CALL_DOES_NOT_EXIST);
            return;
        };
        if a.dialog.on_request(&req).is_err() {
            self.reply(clock, tx, &req, StatusCode::SERVER_INTERNAL_ERROR);
            return;
        }
        match req.method {
            Method::Bye => {
                self.reply(clock, tx, &req, StatusCode::OK);
                self.end_answered(clock, leg, "answered");
            }
            Method::Invite => {
                // A re-INVITE (hold, a new address): we keep our side as it is and follow
                // the phone's new address.
                if let Ok(offer) = Sdp::parse(&req.body) {
                    if let Some(to) = media_target(&offer, 0) {
                        self.engine.set_remote(leg, to);
                    }
                }
                let Some(a) = self.apps.legs.get_mut(&leg) else {
                    return;
                };
                a.answer_sdp.origin.session_version += 1;
                let body = a.answer_sdp.to_bytes();
                let peer = a.peer;
                let tag = a.dialog.id.local_tag.clone();
                let mut r = Response::for_request(&req, StatusCode::OK, Some(&tag));
                let contact = self.our_contact(peer);
                r.headers.push(HeaderName::Contact, contact);
                r.headers.push(HeaderName::Server, USER_AGENT);
                r.set_body("application/sdp", body);
                let msg = Message::Response(r.clone());
                if let Err(e) = self.ep.respond(clock.now, tx, r) {
                    debug!(error = %e, "re-INVITE answer not sent");
                }
                if let Some(a) = self.apps.legs.get_mut(&leg) {
                    a.pending_2xx = Some(Pending2xx::new(Side::Caller, msg, peer, clock.now));
                }
            }
            _ => self.reply(clock, tx, &req, StatusCode::OK),
        }
    }

    pub(super) fn on_answered_ack(&mut self, leg: LegId) {
        if let Some(a) = self.apps.legs.get_mut(&leg) {
            a.pending_2xx = None;
        }
    }

    /// Our 2xx to answered legs, resent until their ACK (RFC 6026).
    pub(super) fn retransmit_answered_2xx(&mut self, clock: Clock) {
        let mut give_up = Vec::new();
        let mut sends = Vec::new();
        for (leg, a) in self.apps.legs.iter_mut() {
            let Some(p) = &mut a.pending_2xx else {
                continue;
            };
            match p.poll(clock.now) {
                Resend::Wait => {}
                Resend::Send => sends.push((p.to, p.msg.clone())),
                Resend::GiveUp => give_up.push(*leg),
            }
        }
        for (to, msg) in sends {
            self.ep.send_stateless(to, &msg);
        }
        for leg in give_up {
            warn!(leg = leg.0, "no ACK for our 2xx; hanging up");
            self.hang_up_answered(clock, leg, "failed");
        }
    }

    /// Ends every answered leg (daemon stop).
    pub(super) fn shutdown_answered(&mut self, clock: Clock) {
        let legs: Vec<LegId> = self.apps.legs.keys().copied().collect();
        for leg in legs {
            self.hang_up_answered(clock, leg, "answered");
        }
    }

    /// CLI commands for conference rooms left in the database.
    pub(super) fn run_conference_commands(&mut self, clock: Clock) {
        let commands = match self.store.conference_commands() {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "conference commands could not be read");
                return;
            }
        };
        for c in commands {
            let member = c.member.and_then(|m| u32::try_from(m).ok()).map(LegId);
            let actions = match (c.action.as_str(), member) {
                ("kick", Some(leg)) => self.apps.conferences.kick(&c.room, leg),
                ("mute", Some(leg)) => self.apps.conferences.toggle_mute(&c.room, leg),
                ("lock", _) | ("unlock", _) => {
                    self.apps
                        .conferences
                        .set_locked(&c.room, c.action == "lock");
                    self.mirror_room(&c.room);
                    Some(Vec::new())
                }
                _ => None,
            };
            match actions {
                Some(a) => {
                    info!(room = %c.room, action = %c.action, member = ?c.member, "conference command");
                    self.carry_out(clock, a);
                }
                None => {
                    info!(room = %c.room, action = %c.action, member = ?c.member, "conference command for no such member");
                }
            }
            self.writes
                .push(Write::Conference(ConferenceWrite::CommandDone(c.id)));
        }
    }
}
