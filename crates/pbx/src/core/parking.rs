//! Call parking (`Destination::Park`, `Destination::ParkSlot`). A phone in a call parks the
//! other party by a blind transfer to the park number (`70`): the PBX takes the first free
//! slot, lends the parked party's side of the relay to the media engine for music on hold
//! (as [`super::hold`] does), and lends the parker's side to say the slot number
//! (`apps::say_digits`) before telling it "200 OK" (sipfrag) and sending its BYE. The call
//! stays a [`super::calls::Call`] with the parker's side empty. Dialling the slot from any
//! phone gives that side to the caller, as a pickup does; after `timeout_seconds` the PBX
//! calls the parker back to take the side, through the blind transfer's INVITE
//! ([`Pbx::call_for_side`]). A parker that does not answer is tried again a timeout later.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kentongan_engine::LegId;
use kentongan_sip::dialog::Dialog;
use kentongan_sip::sdp::Sdp;
use kentongan_sip::transaction::TxId;
use kentongan_sip::{HeaderName, Message, Request, Response, StatusCode};
use tracing::{debug, info, warn};

use super::answered::leg_spec;
use super::calls::{CallKey, Pending2xx, Side};
use super::transfer::side_sdp;
use super::{Clock, Pbx, ALLOW, USER_AGENT};
use crate::media::{EngineCommand, StreamSide};
use crate::store::{Cdr, Extension, LiveCall, Write};

/// Engine tag of the slot announcement's last digit: when it has played, the parker goes.
pub(super) const PARK_TAG: u64 = u64::MAX - 2;

/// A parked call.
#[derive(Debug)]
pub(super) struct Parked {
    pub(super) slot: String,
    /// The side the parker was on, which a retriever (or the parker again) takes.
    pub(super) by: Side,
    parker: Extension,
    /// The REFER's CSeq, for the final NOTIFY.
    refer_cseq: u32,
    /// The parker's side lent to the engine while the slot is said.
    announce: Option<(LegId, usize)>,
    /// Rings back the parker then.
    until: Instant,
    /// The ring-back INVITE is out.
    ringing_back: bool,
}

fn stream_side(side: Side) -> StreamSide {
    match side {
        Side::Caller => StreamSide::Caller,
        Side::Callee => StreamSide::Callee,
    }
}

impl Pbx {
    /// A REFER to the park number from `side` of call `key`.
    pub(super) fn park(&mut self, clock: Clock, key: CallKey, side: Side, tx: TxId, req: &Request) {
        let respond = |pbx: &mut Pbx, status: u16, reason: &str| {
            let mut r = Response::for_request(req, StatusCode(status), None);
            r.reason = reason.into();
            pbx.respond(clock, tx, r);
        };
        let taken: Vec<&str> = self
            .calls
            .values()
            .filter_map(|c| c.parked.as_ref().map(|p| p.slot.as_str()))
            .collect();
        let Some(slot) = self
            .config
            .parking
            .slots()
            .find(|s| !taken.contains(&s.as_str()))
        else {
            return respond(self, 486, "Busy Here: every parking slot is taken");
        };
        let Some(call) = self.calls.get(&key) else {
            return respond(self, 481, "Call Does Not Exist");
        };
        let (Some(parked_sdp), Some(parker_sdp)) =
            (side_sdp(call, side.other()), side_sdp(call, side))
        else {
            return respond(self, 488, "No Media To Park");
        };
        let parker = match side {
            Side::Caller => call.caller.clone(),
            Side::Callee => call.callee.clone(),
        };
        let refer_cseq = req.headers.cseq().map(|c| c.seq).unwrap_or(0);
        respond(self, 202, "Accepted");
        self.send_refer_notify(clock, key, side, Some(refer_cseq), StatusCode(100));
        // The parked party hears music, from the port it already sends to.
        if self.calls.get(&key).is_some_and(|c| c.hold.is_none()) {
            self.start_hold(key, side, &parked_sdp.to_bytes());
        }
        let announce = self.announce_slot(key, side, &parker_sdp, &slot);
        let timeout = Duration::from_secs(u64::from(self.config.parking.timeout_seconds));
        info!(call = key, %slot, %parker, "call parked");
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.parked = Some(Parked {
            slot: slot.clone(),
            by: side,
            parker: parker.clone(),
            refer_cseq,
            announce,
            until: clock.now + timeout,
            ringing_back: false,
        });
        let parked_party = match side.other() {
            Side::Caller => call.caller.0.clone(),
            Side::Callee => call.callee.0.clone(),
        };
        self.writes.push(Write::LiveCall(LiveCall {
            call_id: call.call_id.clone(),
            caller: parked_party,
            callee: slot.clone(),
            start_ms: call.start_ms,
            answer_ms: call.answer_ms,
            state: format!("parked in {slot} by {parker}"),
        }));
        if announce.is_none() {
            self.parker_done(clock, key);
        }
    }

    /// Lends the parker's side to the engine and says `slot` to it.
    fn announce_slot(
        &mut self,
        key: CallKey,
        side: Side,
        parker_sdp: &Sdp,
        slot: &str,
    ) -> Option<(LegId, usize)> {
        let call = self.calls.get(&key)?;
        let stream = call
            .offer
            .as_ref()?
            .media
            .iter()
            .position(|m| m.kind == "audio")?;
        let media = call.media.get(stream)?.as_ref()?;
        let spec = leg_spec(parker_sdp)?;
        let lent = match media.lend(stream_side(side)) {
            Ok(l) => l,
            Err(e) => {
                warn!(call = key, error = %e, "park: the slot cannot be announced");
                return None;
            }
        };
        let leg = match self.engine.add_leg(spec, lent.rtp, lent.rtcp, lent.remote) {
            Ok(leg) => leg,
            Err(e) => {
                warn!(call = key, error = %e, "park: media engine unavailable; the slot is not announced");
                let _ = media.take_back(stream_side(side));
                return None;
            }
        };
        let prompts: Vec<_> = crate::apps::say_digits(leg, slot).collect();
        let n = prompts.len();
        for (i, a) in prompts.into_iter().enumerate() {
            if let crate::apps::Action::Say { prompt, .. } = a {
                let sound = self.prompts.sound(prompt);
                let tag = if i + 1 == n { PARK_TAG } else { 0 };
                self.engine.command(EngineCommand::Play { leg, sound, tag });
            }
        }
        Some((leg, stream))
    }

    /// The engine has said the slot on `leg`.
    pub(super) fn park_announced(&mut self, clock: Clock, leg: LegId) {
        let key = self.calls.iter().find_map(|(k, c)| {
            c.parked
                .as_ref()
                .is_some_and(|p| p.announce.is_some_and(|(l, _)| l == leg))
                .then_some(*k)
        });
        match key {
            Some(key) => self.parker_done(clock, key),
            None => self.engine.remove_leg(leg),
        }
    }

    /// Gives the parker's side back to the relay (the announcement is over).
    fn end_announcement(&mut self, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(p) = call.parked.as_mut() else {
            return;
        };
        let Some((leg, stream)) = p.announce.take() else {
            return;
        };
        let side = p.by;
        self.engine.remove_leg(leg);
        if let Some(Some(media)) = call.media.get(stream) {
            if let Err(e) = media.take_back(stream_side(side)) {
                warn!(call = key, error = %e, "park: the relay could not take the parker's media back");
            }
        }
    }

    /// The parker has heard its slot: the transfer "worked", and it is let go.
    fn parker_done(&mut self, clock: Clock, key: CallKey) {
        self.end_announcement(key);
        let Some((side, cseq)) = self
            .calls
            .get(&key)
            .and_then(|c| c.parked.as_ref())
            .map(|p| (p.by, p.refer_cseq))
        else {
            return;
        };
        self.send_refer_notify(clock, key, side, Some(cseq), StatusCode::OK);
        self.send_bye(clock, key, side);
        self.forget_side(key, side);
    }

    /// The parker's dialog is over: requests on its Call-ID no longer reach the call.
    fn forget_side(&mut self, key: CallKey, side: Side) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let cid = match side {
            Side::Caller => call.caller_dialog.as_ref().map(|d| d.id.call_id.clone()),
            Side::Callee => call.callee_dialog.as_ref().map(|d| d.id.call_id.clone()),
        };
        if let Some(cid) = cid {
            if self
                .by_call_id
                .get(&cid)
                .is_some_and(|(k, s)| *k == key && *s == side)
            {
                self.by_call_id.remove(&cid);
            }
        }
        // The parker is no longer in the call (so it is not busy, its BLF key goes dark); the
        // side is the slot until someone takes it, which is also what the CDR shows if the
        // parked party hangs up first.
        let slot = call.parked.as_ref().map(|p| Extension(p.slot.clone()));
        match side {
            Side::Caller => {
                call.caller_dialog = None;
                if let Some(slot) = slot {
                    call.caller = slot;
                }
            }
            Side::Callee => {
                call.callee_dialog = None;
                if let Some(slot) = slot {
                    call.callee = slot;
                }
            }
        }
    }

    /// The parker hung up before we did: the parked call stays.
    pub(super) fn parker_left(&mut self, key: CallKey, side: Side) -> bool {
        if !self
            .calls
            .get(&key)
            .and_then(|c| c.parked.as_ref())
            .is_some_and(|p| p.by == side)
        {
            return false;
        }
        self.end_announcement(key);
        self.forget_side(key, side);
        true
    }

    /// `ext` dialled parking slot `slot`.
    pub(super) fn retrieve_parked(
        &mut self,
        clock: Clock,
        tx: TxId,
        from: SocketAddr,
        req: Request,
        ext: Extension,
        slot: String,
    ) {
        let refuse = |pbx: &mut Pbx, status: StatusCode, phrase: String, disposition: &str| {
            let mut r = Response::for_request(&req, status, Some(&pbx.ep.new_tag()));
            r.reason = phrase;
            pbx.respond(clock, tx, r);
            let call_id = req.headers.call_id().unwrap_or("").to_owned();
            pbx.writes.push(Write::Cdr(Cdr {
                caller_name: super::calls::caller_display_name(&req),
                ..Cdr::refused(
                    call_id,
                    ext.0.clone(),
                    slot.clone(),
                    clock.unix_ms,
                    disposition,
                )
            }));
        };
        let key = self.calls.iter().find_map(|(k, c)| {
            c.parked
                .as_ref()
                .is_some_and(|p| p.slot == slot && !p.ringing_back)
                .then_some(*k)
        });
        let Some(key) = key else {
            return refuse(
                self,
                StatusCode::TEMPORARILY_UNAVAILABLE,
                format!("Temporarily Unavailable: no call is parked in {slot}"),
                "unavailable",
            );
        };
        let Some(side) = self
            .calls
            .get(&key)
            .and_then(|c| c.parked.as_ref())
            .map(|p| p.by)
        else {
            return;
        };
        let parked_sdp = self.calls.get(&key).and_then(|c| side_sdp(c, side.other()));
        let offer = Sdp::parse(&req.body).ok();
        let Some((_, answer)) = offer
            .as_ref()
            .zip(parked_sdp)
            .and_then(|(o, p)| super::pickup::common(&p, o))
        else {
            return refuse(
                self,
                StatusCode::NOT_ACCEPTABLE_HERE,
                "Not Acceptable Here: no codec in common with the parked call".into(),
                "failed",
            );
        };
        self.end_announcement(key);
        self.end_hold(key);
        let Some(other_peer) = self.calls.get(&key).and_then(|c| c.peer(side.other())) else {
            return;
        };
        // Where the retriever wants media: this side's relay destination.
        let _ = self.sdp_for(key, &req.body, side.other(), other_peer);
        let tag = self.ep.new_tag();
        let mut r = Response::for_request(&req, StatusCode::OK, Some(&tag));
        let contact = self.our_contact(from);
        r.headers.push(HeaderName::Contact, contact);
        r.headers.push(HeaderName::Allow, ALLOW);
        r.headers.push(HeaderName::Server, USER_AGENT);
        if let Some(body) = self.sdp_for(key, &answer.to_bytes(), side, from) {
            r.set_body("application/sdp", body);
        }
        let msg = Message::Response(r.clone());
        let dialog = Dialog::uas(&req, &r).ok();
        let new_cid = req.headers.call_id().unwrap_or("").to_owned();
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.parked = None;
        match side {
            Side::Caller => {
                call.caller = ext.clone();
                call.caller_dialog = dialog;
                call.caller_peer = from;
                // The new caller side did not ask for session timers.
                call.session_expires = None;
                call.session_deadline = None;
            }
            Side::Callee => {
                call.callee = ext.clone();
                call.callee_dialog = dialog;
                call.callee_peer = Some(from);
                call.b_call_id = new_cid.clone();
                call.callee_sdp = Some(bytes::Bytes::copy_from_slice(&req.body));
            }
        }
        call.pickup_2xx = Some(Pending2xx::new(side, msg, from, clock.now));
        self.by_call_id.insert(new_cid, (key, side));
        info!(call = key, %slot, by = %ext, "parked call retrieved");
        self.show_answered(key);
        if let Err(e) = self.ep.respond(clock.now, tx, r) {
            debug!(error = %e, "200 to the retriever not sent");
        }
    }

    /// A re-INVITE (hold, a session refresh) from the parked party, whose other side has no
    /// phone: the PBX answers it with the media it already has, so the call is not lost.
    pub(super) fn answer_parked_reinvite(
        &mut self,
        clock: Clock,
        key: CallKey,
        side: Side,
        tx: TxId,
        req: Request,
    ) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let (peer, ours) = (call.peer(side), side_sdp(call, side.other()));
        let Some(peer) = peer else {
            return;
        };
        let mut r = Response::for_request(&req, StatusCode::OK, None);
        let contact = self.our_contact(peer);
        r.headers.push(HeaderName::Contact, contact);
        r.headers.push(HeaderName::Allow, ALLOW);
        if let Some(body) = ours.and_then(|s| self.sdp_for(key, &s.to_bytes(), side, peer)) {
            r.set_body("application/sdp", body);
        }
        info!(
            call = key,
            "re-INVITE from a parked party answered by the PBX"
        );
        self.start_2xx(clock, key, side, Message::Response(r.clone()), peer);
        if let Err(e) = self.ep.respond(clock.now, tx, r) {
            debug!(error = %e, "200 to a parked party's re-INVITE not sent");
        }
    }

    /// Parked calls whose time is up ring back their parker (once a second).
    pub(super) fn expire_parked(&mut self, clock: Clock) {
        let due: Vec<(CallKey, Side, Extension)> = self
            .calls
            .iter()
            .filter_map(|(k, c)| {
                let p = c.parked.as_ref()?;
                (!p.ringing_back && p.until <= clock.now && p.announce.is_none())
                    .then(|| (*k, p.by, p.parker.clone()))
            })
            .collect();
        let timeout = Duration::from_secs(u64::from(self.config.parking.timeout_seconds));
        for (key, side, parker) in due {
            let contact = self
                .registry
                .contacts(&parker, clock.unix_s())
                .into_iter()
                .next();
            let sdp = self.calls.get(&key).and_then(|c| side_sdp(c, side.other()));
            let Some(p) = self.calls.get_mut(&key).and_then(|c| c.parked.as_mut()) else {
                continue;
            };
            let (Some(contact), Some(sdp)) = (contact, sdp) else {
                info!(call = key, %parker, "parked call: the parker is not registered; trying again later");
                p.until = clock.now + timeout;
                continue;
            };
            p.ringing_back = true;
            info!(call = key, slot = %p.slot, %parker, "parked call timed out; ringing back the parker");
            self.call_for_side(clock, key, side, parker, contact, sdp, None, None);
        }
    }

    /// The ring-back was not answered: the call stays parked for another timeout.
    pub(super) fn ring_back_failed(&mut self, clock: Clock, key: CallKey) {
        let timeout = Duration::from_secs(u64::from(self.config.parking.timeout_seconds));
        if let Some(p) = self.calls.get_mut(&key).and_then(|c| c.parked.as_mut()) {
            if p.ringing_back {
                info!(call = key, slot = %p.slot, "ring-back not answered; the call stays parked");
                p.ringing_back = false;
                p.until = clock.now + timeout;
            }
        }
    }
}
