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

/// A menu's caller being connected to an extension, or to a ring group's members: our
/// INVITEs to their phones.
pub(super) struct Onward {
    /// The extension (for a ring group: its number, until a member answers).
    pub(super) callee: Extension,
    pub(super) forks: Vec<Fork>,
    /// A ring group's: which member each fork rings.
    pub(super) members: std::collections::HashMap<TxId, Extension>,
    pub(super) group: Option<super::ivr_groups::IvrGroup>,
    pub(super) call_id: String,
    pub(super) from_hdr: String,
    /// The engine leg's sockets, handed to the engine when a phone answers.
    pub(super) port: u16,
    pub(super) sockets: Option<(UdpSocket, UdpSocket)>,
    pub(super) offer: Sdp,
    /// Unanswered by then: cancelled, as `sip.no_answer_seconds` does for calls (a ring
    /// group's: its next step).
    pub(super) deadline: Instant,
    pub(super) busy: bool,
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
            if self
                .apps
                .onward
                .get(&leg)
                .is_some_and(|o| o.group.is_some())
            {
                self.ivr_group_step(clock, leg);
                continue;
            }
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
        if let Some(choice) = self.apps.ivrs.choice(leg) {
            let label = match choice {
                Choice::Option(k) => k.to_string(),
                Choice::DirectDial => "direct".into(),
                Choice::Invalid => "invalid".into(),
            };
            self.metrics.ivr_choice(&label);
        }
        self.route_target(clock, leg, target, 0);
    }

    /// The caller on `leg` goes to `target`; `hops`: ring groups passed through by their
    /// `no_answer` on the way here.
    pub(super) fn route_target(&mut self, clock: Clock, leg: LegId, target: &str, hops: usize) {
        let Some(caller) = self.apps.legs.get(&leg).map(|a| a.caller.clone()) else {
            return;
        };
        let dest = self
            .dialplan
            .resolve_target_at(target, &self.store, clock.unix_s());
        info!(leg = leg.0, %caller, target, ?dest, "IVR target");
        let app = match dest {
            Ok(Destination::Extension(ext)) => return self.call_onward(clock, leg, ext),
            Ok(Destination::RingGroup(g)) => return self.call_group_onward(clock, leg, g.0, hops),
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

    pub(super) fn target_failed(&mut self, clock: Clock, leg: LegId) {
        let actions = self.apps.ivrs.target_failed(leg);
        self.carry_out(clock, actions);
    }

    /// Another application takes the leg over (the caller's call stays as it is).
    pub(super) fn switch_app(&mut self, clock: Clock, leg: LegId, app: App) {
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
        let Some(mut o) = self.onward_media(clock, first.source, &caller, callee.clone()) else {
            return self.target_failed(clock, leg);
        };
        o.forks = self.onward_forks(clock, leg, &o, &callee);
        if o.forks.is_empty() {
            self.relay.give_port(o.port);
            return self.onward_failed(clock, leg, &callee, false);
        }
        info!(leg = leg.0, %caller, %callee, forks = o.forks.len(), "IVR calling extension");
        self.play_ringback(leg);
        o.deadline = clock.now + ring_for.unwrap_or(self.config.no_answer);
        self.apps.onward.insert(leg, o);
    }

    /// Ringback after "please hold, connecting you" until a phone answers.
    pub(super) fn play_ringback(&mut self, leg: LegId) {
        self.engine.command(Command::Play {
            leg,
            sound: Sound::Tone(ToneSpec::ringback()),
            tag: 0,
        });
    }

    /// A new engine leg's port pair and the offer naming it (facing `toward`'s address
    /// family), for calling `callee` (an extension or a group's number) for `caller`; no
    /// forks yet.
    pub(super) fn onward_media(
        &mut self,
        clock: Clock,
        toward: std::net::SocketAddr,
        caller: &Extension,
        callee: Extension,
    ) -> Option<Onward> {
        let (port, rtp, rtcp) = match self.relay.bind_pair(toward.is_ipv6()) {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "no RTP port for an IVR call");
                return None;
            }
        };
        let mut local = LocalMedia::new(self.local_ip(toward), port);
        local.audio_codecs = vec![
            SdpCodec::pcmu(),
            SdpCodec::pcma(),
            SdpCodec::opus(),
            SdpCodec::telephone_event(),
        ];
        local.session_id = clock.unix_ms.unsigned_abs();
        let domain = self.config.domain.clone();
        Some(Onward {
            callee,
            forks: Vec::new(),
            members: std::collections::HashMap::new(),
            group: None,
            call_id: self.ep.new_call_id(),
            from_hdr: format!("<sip:{caller}@{domain}>;tag={}", self.ep.new_tag()),
            port,
            sockets: Some((rtp, rtcp)),
            offer: local.offer(),
            deadline: clock.now,
            busy: false,
        })
    }

    /// INVITEs `ext`'s registered phones with `o`'s offer; the forks sent.
    pub(super) fn onward_forks(
        &mut self,
        clock: Clock,
        leg: LegId,
        o: &Onward,
        ext: &Extension,
    ) -> Vec<Fork> {
        let domain = self.config.domain.clone();
        let mut forks = Vec::new();
        for c in self.registry.contacts(ext, clock.unix_s()) {
            let contact = self.our_contact(c.source);
            let mut inv = super::dialogs::new_invite(
                c.uri.clone(),
                &o.from_hdr,
                format!("<sip:{ext}@{domain}>"),
                &o.call_id,
                contact,
            );
            inv.set_body("application/sdp", o.offer.to_bytes());
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
        forks
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
    pub(super) fn cancel_onward(&mut self, clock: Clock, forks: Vec<Fork>) {
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
        if !resp.status.is_success() && o.group.is_some() {
            return self.ivr_group_fork_failed(clock, leg, tx);
        }
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
        // A ring group's member answered: that member is the call's other party.
        if let Some(member) = o.members.remove(&tx) {
            info!(leg = leg.0, group = %o.callee, %member, "IVR ring group answered");
            o.callee = member;
        }
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
