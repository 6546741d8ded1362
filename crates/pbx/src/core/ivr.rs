//! IVR menus in the core: a caller answered by an `[[ivr]]` menu (see [`crate::apps::ivr`])
//! is handed to the target it chose.
//!
//! A service target (another menu, a room, a mailbox) takes the same engine leg over: the
//! caller's call does not change, only the application serving it. An extension target is
//! called by the PBX from a second engine leg and, once it answers, both legs are joined in a
//! private two-member engine room, so each hears the other (the bridge is in the engine).
//!
//! Why bridge in the engine rather than re-INVITE the caller onto the relay: the caller's
//! media already ends in the engine on the port our 200 named, and moving it would need a
//! re-INVITE every caller honours (sipp scenarios and some desk phones do not), with the
//! call half-broken while it is under way. The engine bridge works for any caller, lets the
//! two sides use different codecs, and keeps both legs where recording and in-call keys can
//! reach them. It costs a decode and an encode per packet, which a two-member room on the
//! G.711 path keeps small (see ARCHITECTURE.md's mixing figures).

use std::net::UdpSocket;
use std::time::Instant;

use kentongan_engine::{LegId, RoomId, Sound};
use kentongan_media::ToneSpec;
use kentongan_sip::dialog::Dialog;
use kentongan_sip::sdp::{Codec as SdpCodec, LocalMedia, Sdp};
use kentongan_sip::transaction::TxId;
use kentongan_sip::{HeaderName, Message, Method, Response};
use tracing::{debug, info, warn};

use super::answered::{leg_spec, Answered, App};
use super::calls::{media_target, Fork, ForkState};
use super::{Clock, Pbx, TxUse, USER_AGENT};
use crate::apps::ivr::{Choice, Menu};
use crate::apps::Action;
use crate::media::EngineCommand as Command;
use crate::routing::forwarding::{Reach, Visited};
use crate::routing::{Destination, VoicemailGreeting};
use crate::store::{Extension, LiveCall, Write};

/// The tag of the silence queued after a menu's prompts, to start its key timeout.
pub(super) const IVR_TAG: u64 = 3;

/// A menu's caller being connected to an extension: our INVITEs to its phones.
pub(super) struct Onward {
    callee: Extension,
    forks: Vec<Fork>,
    call_id: String,
    /// The engine leg's sockets, handed to the engine when a phone answers.
    port: u16,
    sockets: Option<(UdpSocket, UdpSocket)>,
    offer: Sdp,
    /// Unanswered by then: cancelled, as `sip.no_answer_seconds` does for calls.
    deadline: Instant,
    busy: bool,
}

impl Pbx {
    /// What a menu's legs wait for (key timeouts, ringing extensions).
    pub(super) fn ivr_deadline(&self) -> Option<Instant> {
        let ring = self.apps.onward.values().map(|o| o.deadline).min();
        match (self.apps.ivrs.poll_timeout(), ring) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn ivr_timeouts(&mut self, clock: Clock) {
        if self
            .apps
            .ivrs
            .poll_timeout()
            .is_some_and(|t| t <= clock.now)
        {
            let actions = self.apps.ivrs.handle_timeout(clock.now);
            self.carry_out(clock, actions);
        }
        let due: Vec<LegId> = self
            .apps
            .onward
            .iter()
            .filter(|(_, o)| o.deadline <= clock.now)
            .map(|(l, _)| *l)
            .collect();
        for leg in due {
            if let Some(o) = self.apps.onward.remove(&leg) {
                info!(leg = leg.0, callee = %o.callee, "IVR call unanswered; cancelled");
                self.cancel_onward(clock, o.forks);
                self.relay.give_port(o.port);
                self.onward_failed(clock, leg, &o.callee, false);
            }
        }
    }

    /// The menu `index` serves `leg` from now on.
    pub(super) fn enter_ivr(&mut self, leg: LegId, index: usize) -> Vec<Action> {
        match self.config.ivrs.get(index) {
            Some(ivr) => {
                let menu = Menu::from_config(index, ivr);
                self.apps.ivrs.enter(leg, menu)
            }
            None => vec![Action::HangUpAfterPrompts { leg }],
        }
    }

    pub(super) fn play_greeting(&mut self, leg: LegId, menu: usize) {
        let clip = self.apps.greetings.get(menu).and_then(Option::as_ref);
        let sound = crate::prompts::clip_or_cue(clip);
        self.engine.command(Command::Play { leg, sound, tag: 0 });
    }

    /// The caller on `leg` chose `target` (an option, a typed extension, or `invalid`).
    pub(super) fn connect_target(&mut self, clock: Clock, leg: LegId, target: &str) {
        let Some(caller) = self.apps.legs.get(&leg).map(|a| a.caller.clone()) else {
            return;
        };
        if let Some(choice) = self.apps.ivrs.choice(leg) {
            let label = match choice {
                Choice::Option(k) => k.to_string(),
                Choice::DirectDial => "direct".into(),
                Choice::Invalid => "invalid".into(),
            };
            self.metrics.ivr_choice(&label);
        }
        let dest = self
            .dialplan
            .resolve_target_at(target, &self.store, clock.unix_s());
        info!(leg = leg.0, %caller, target, ?dest, "IVR target");
        let app = match dest {
            Ok(Destination::Extension(ext)) => return self.call_onward(clock, leg, ext),
            Ok(Destination::Ivr(i)) => App::Ivr(i.0),
            Ok(Destination::Voicemail { mailbox, greeting })
                if self.config.voicemail.as_ref().is_some_and(|v| v.enabled) =>
            {
                App::Voicemail { mailbox, greeting }
            }
            Ok(Destination::Conference(r)) => match self.config.conferences.get(r.0) {
                Some(room) => App::Conference(room.number.clone()),
                None => return self.target_failed(clock, leg),
            },
            Ok(Destination::Mailbox) => App::Mailbox {
                mailbox: Some(caller),
            },
            Ok(Destination::AnyMailbox) => App::Mailbox { mailbox: None },
            Ok(Destination::EchoTest) => App::Echo,
            // Feature codes change the caller's own settings and trunks need the caller's
            // calling rights: neither is something a menu hands a caller to.
            Ok(_) | Err(_) => return self.target_failed(clock, leg),
        };
        self.switch_app(clock, leg, app);
    }

    fn target_failed(&mut self, clock: Clock, leg: LegId) {
        let actions = self.apps.ivrs.target_failed(leg);
        self.carry_out(clock, actions);
    }

    /// Another application takes the leg over (the caller's call stays as it is).
    fn switch_app(&mut self, clock: Clock, leg: LegId, app: App) {
        self.apps.ivrs.leave(leg);
        let Some(a) = self.apps.legs.get_mut(&leg) else {
            return;
        };
        a.app = app.clone();
        let caller = a.caller.clone();
        let actions = self.enter_app(leg, &caller, &app, clock);
        self.carry_out(clock, actions);
    }

    /// Calls `callee`'s phones for the caller on `leg`, offering a new engine leg. The
    /// extension's forward-all, DND and call waiting apply as for a dialled call (its busy
    /// and no-answer forwards do not: a menu's caller then reaches its mailbox or the menu).
    fn call_onward(&mut self, clock: Clock, leg: LegId, callee: Extension) {
        let mut visited = Visited::new();
        let (callee, ring_for) = match self.reach(clock, &mut visited, callee) {
            Reach::Ring(ring) => (ring.ext, ring.voicemail_after),
            Reach::Voicemail { mailbox, greeting } => {
                return self.switch_app(clock, leg, App::Voicemail { mailbox, greeting })
            }
            other => {
                info!(leg = leg.0, reach = ?other, "IVR target cannot take the call");
                return self.target_failed(clock, leg);
            }
        };
        let contacts = self.registry.contacts(&callee, clock.unix_s());
        let Some(first) = contacts.first() else {
            return self.onward_failed(clock, leg, &callee, false);
        };
        let Some(caller) = self.apps.legs.get(&leg).map(|a| a.caller.clone()) else {
            return;
        };
        let (port, rtp, rtcp) = match self.relay.bind_pair(first.source.is_ipv6()) {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "no RTP port for an IVR call");
                return self.target_failed(clock, leg);
            }
        };
        let mut local = LocalMedia::new(self.local_ip(first.source), port);
        local.audio_codecs = vec![
            SdpCodec::pcmu(),
            SdpCodec::pcma(),
            SdpCodec::opus(),
            SdpCodec::telephone_event(),
        ];
        local.session_id = clock.unix_ms.unsigned_abs();
        let offer = local.offer();
        let call_id = self.ep.new_call_id();
        let domain = self.config.domain.clone();
        let from_hdr = format!("<sip:{caller}@{domain}>;tag={}", self.ep.new_tag());
        let mut forks = Vec::new();
        for c in contacts {
            let contact = self.our_contact(c.source);
            let mut inv = super::dialogs::new_invite(
                c.uri.clone(),
                &from_hdr,
                format!("<sip:{callee}@{domain}>"),
                &call_id,
                contact,
            );
            inv.set_body("application/sdp", offer.to_bytes());
            self.add_via(&mut inv, c.source);
            inv.headers.set(HeaderName::MaxForwards, "70");
            inv.headers.push(HeaderName::UserAgent, USER_AGENT);
            match self.ep.send_request(clock.now, c.source, inv.clone()) {
                Ok(tx) => {
                    self.client_txs.insert(tx, TxUse::IvrFork { leg });
                    forks.push(Fork {
                        tx,
                        peer: c.source,
                        request: inv,
                        state: ForkState::Pending,
                    });
                }
                Err(e) => warn!(error = %e, "IVR INVITE not sent"),
            }
        }
        if forks.is_empty() {
            self.relay.give_port(port);
            return self.onward_failed(clock, leg, &callee, false);
        }
        info!(leg = leg.0, %caller, %callee, forks = forks.len(), "IVR calling extension");
        // Ringback after "please hold, connecting you" until a phone answers.
        self.engine.command(Command::Play {
            leg,
            sound: Sound::Tone(ToneSpec::ringback()),
            tag: 0,
        });
        self.apps.onward.insert(
            leg,
            Onward {
                callee,
                forks,
                call_id,
                port,
                sockets: Some((rtp, rtcp)),
                offer,
                deadline: clock.now + ring_for.unwrap_or(self.config.no_answer),
                busy: false,
            },
        );
    }

    /// Nobody took the call: the extension's mailbox if voicemail is on, else the menu
    /// again (the caller is told the choice did not work).
    fn onward_failed(&mut self, clock: Clock, leg: LegId, callee: &Extension, busy: bool) {
        self.engine.command(Command::StopPlaying(leg));
        if self.config.voicemail.as_ref().is_some_and(|v| v.enabled) {
            let greeting = match busy {
                true => VoicemailGreeting::Busy,
                false => VoicemailGreeting::Unavailable,
            };
            let app = App::Voicemail {
                mailbox: callee.clone(),
                greeting,
            };
            return self.switch_app(clock, leg, app);
        }
        self.target_failed(clock, leg);
    }

    /// CANCELs the forks still pending; a late 2xx gets ACK + BYE as an orphan.
    fn cancel_onward(&mut self, clock: Clock, forks: Vec<Fork>) {
        for f in forks.into_iter().filter(|f| f.state == ForkState::Pending) {
            self.client_txs.insert(
                f.tx,
                TxUse::Orphan {
                    request: Box::new(f.request),
                    peer: f.peer,
                },
            );
            match self.ep.cancel(clock.now, f.tx) {
                Ok(ctx) => {
                    self.client_txs.insert(ctx, TxUse::Other);
                }
                Err(e) => debug!(error = %e, "CANCEL not sent"),
            }
        }
    }

    /// The caller left while its extension was ringing.
    pub(super) fn drop_onward(&mut self, clock: Clock, leg: LegId) {
        if let Some(o) = self.apps.onward.remove(&leg) {
            self.cancel_onward(clock, o.forks);
            self.relay.give_port(o.port);
        }
    }

    pub(super) fn on_ivr_fork_response(
        &mut self,
        clock: Clock,
        leg: LegId,
        tx: TxId,
        resp: Response,
    ) {
        if resp.status.is_provisional() {
            return;
        }
        self.client_txs.remove(&tx);
        let Some(o) = self.apps.onward.get_mut(&leg) else {
            return;
        };
        let Some(i) = o.forks.iter().position(|f| f.tx == tx) else {
            return;
        };
        o.forks[i].state = ForkState::Done;
        if !resp.status.is_success() {
            o.busy |= matches!(resp.status.0, 486 | 600);
            if o.forks.iter().any(|f| f.state == ForkState::Pending) {
                return;
            }
            let Some(o) = self.apps.onward.remove(&leg) else {
                return;
            };
            info!(leg = leg.0, callee = %o.callee, status = resp.status.0, "IVR call not answered");
            self.relay.give_port(o.port);
            return self.onward_failed(clock, leg, &o.callee, o.busy);
        }
        let Some(mut o) = self.apps.onward.remove(&leg) else {
            return;
        };
        let fork = o.forks.swap_remove(i);
        self.cancel_onward(clock, std::mem::take(&mut o.forks));
        let Ok(mut dialog) = Dialog::uac(&fork.request, &resp) else {
            self.relay.give_port(o.port);
            return self.onward_failed(clock, leg, &o.callee, false);
        };
        let mut ack = dialog.ack(1);
        self.add_via(&mut ack, fork.peer);
        ack.headers.set(HeaderName::ContentLength, "0");
        self.ep.send_stateless(fork.peer, &Message::Request(ack));
        let answer = Sdp::parse(&resp.body).ok();
        let spec = answer.as_ref().and_then(leg_spec);
        let (Some(answer), Some(spec), Some((rtp, rtcp))) = (answer, spec, o.sockets.take()) else {
            warn!(leg = leg.0, callee = %o.callee, "IVR call answered without usable media; hanging up");
            let bye = dialog.request(Method::Bye);
            self.send(clock, fork.peer, bye, TxUse::Other);
            self.relay.give_port(o.port);
            return self.onward_failed(clock, leg, &o.callee, false);
        };
        let remote = media_target(&answer, 0);
        let callee_leg = match self.engine.add_leg(spec, rtp, rtcp, remote) {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "media engine unavailable for an IVR call");
                let bye = dialog.request(Method::Bye);
                self.send(clock, fork.peer, bye, TxUse::Other);
                self.relay.give_port(o.port);
                return self.target_failed(clock, leg);
            }
        };
        let room = self.engine.create_room();
        self.engine.command(Command::StopPlaying(leg));
        self.engine.command(Command::Join { leg, room });
        self.engine.command(Command::Join {
            leg: callee_leg,
            room,
        });
        self.apps.ivrs.leave(leg);
        let Some(a) = self.apps.legs.get_mut(&leg) else {
            return;
        };
        a.app = App::Bridged {
            other: callee_leg,
            room,
        };
        a.connected = Some(o.callee.clone());
        let (caller, caller_call_id, start_ms) = (a.caller.clone(), a.call_id.clone(), a.start_ms);
        let caller_call_id_for_row = caller_call_id.clone();
        info!(leg = leg.0, callee_leg = callee_leg.0, %caller, callee = %o.callee, "IVR call bridged");
        self.writes.push(Write::LiveCall(LiveCall {
            call_id: caller_call_id,
            caller: caller.0.clone(),
            callee: o.callee.0.clone(),
            start_ms,
            answer_ms: Some(clock.unix_ms),
            state: "answered".into(),
        }));
        self.start_bridge_recording(
            leg,
            callee_leg,
            crate::store::RecordingRow {
                id: 0,
                call_id: caller_call_id_for_row,
                caller: caller.0.clone(),
                callee: o.callee.0.clone(),
                start_ms: clock.unix_ms,
                duration_ms: 0,
                path: String::new(),
                trunk: None,
                number: None,
            },
        );
        self.apps.by_call_id.insert(o.call_id.clone(), callee_leg);
        self.apps.legs.insert(
            callee_leg,
            Answered::outgoing(
                o.call_id,
                caller,
                o.callee,
                dialog,
                fork.peer,
                o.port,
                App::Bridged { other: leg, room },
                clock.unix_ms,
                o.offer,
            ),
        );
        self.update_gauges();
    }

    /// A bridged leg ended: its room goes, and the other side is hung up.
    pub(super) fn end_bridged(&mut self, clock: Clock, leg: LegId, other: LegId, room: RoomId) {
        self.stop_bridge_recording(leg, other);
        self.engine.command(Command::RemoveRoom(room));
        self.hang_up_answered(clock, other, "answered");
    }
}
