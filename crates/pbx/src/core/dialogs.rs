//! Inside an established call: ACK, BYE, re-INVITE passed to the other leg, our 2xx resent
//! until ACKed (RFC 6026) and session timers (RFC 4028).

use std::net::SocketAddr;
use std::time::Duration;

use kentongan_sip::transaction::TxId;
use kentongan_sip::{HeaderName, Message, Method, Request, Response, StatusCode};
use tracing::{debug, info, warn};

use super::calls::{CallKey, Pending2xx, ReInvite, Resend, Side};
use super::{Clock, Pbx, TxUse, USER_AGENT};

impl Pbx {
    pub(super) fn start_2xx(
        &mut self,
        clock: Clock,
        key: CallKey,
        side: Side,
        msg: Message,
        to: SocketAddr,
    ) {
        if let Some(c) = self.calls.get_mut(&key) {
            c.pending_2xx = Some(Pending2xx::new(side, msg, to, clock.now));
        }
    }

    pub(super) fn retransmit_2xx(&mut self, clock: Clock) {
        let mut give_up = Vec::new();
        let mut sends = Vec::new();
        for (key, c) in self.calls.iter_mut() {
            for p in [&mut c.pending_2xx, &mut c.pickup_2xx]
                .into_iter()
                .flatten()
            {
                match p.poll(clock.now) {
                    Resend::Wait => {}
                    Resend::Send => sends.push((p.to, p.msg.clone())),
                    Resend::GiveUp => give_up.push(*key),
                }
            }
        }
        for (to, msg) in sends {
            self.ep.send_stateless(to, &msg);
        }
        give_up.dedup();
        for key in give_up {
            warn!(call = key, "no ACK for our 2xx; hanging up");
            self.send_bye(clock, key, Side::Caller);
            self.send_bye(clock, key, Side::Callee);
            self.end_call(clock, key, "answered");
        }
    }

    /// Calls whose refresher went silent (RFC 4028 §10): hang both legs up.
    pub(super) fn expire_sessions(&mut self, clock: Clock) {
        let expired: Vec<CallKey> = self
            .calls
            .iter()
            .filter(|(_, c)| c.session_deadline.is_some_and(|d| d <= clock.now))
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            warn!(
                call = key,
                "session timer expired without a refresh; hanging up"
            );
            self.send_bye(clock, key, Side::Caller);
            self.send_bye(clock, key, Side::Callee);
            self.end_call(clock, key, "answered");
        }
    }

    /// Hang-ups the web admin asked for (`Store::request_hangup`), by Call-ID: a bridged
    /// call ends as at a daemon stop (BYE to answered legs; 480 and CANCELs while ringing),
    /// an application's leg (voicemail, a room, the IVR) as its app would end it.
    pub(super) fn run_call_commands(&mut self, clock: Clock) {
        let ids = match self.store.take_call_commands() {
            Ok(ids) => ids,
            Err(e) => {
                warn!(error = %e, "hang-up requests could not be read");
                return;
            }
        };
        for cid in ids {
            if let Some((key, _)) = self.by_call_id.get(cid.as_str()).copied() {
                info!(call = key, "hung up by the operator");
                if self.calls.get(&key).is_some_and(|c| c.answered()) {
                    self.send_bye(clock, key, Side::Caller);
                    self.send_bye(clock, key, Side::Callee);
                    self.end_call(clock, key, "answered");
                } else {
                    self.fail_caller(clock, key, StatusCode::TEMPORARILY_UNAVAILABLE);
                    self.cancel_forks(clock, key);
                    self.end_call(clock, key, "failed");
                }
            } else if let Some(leg) = self.apps.leg_of(&cid) {
                info!(?leg, "application leg hung up by the operator");
                self.hang_up_answered(clock, leg, "answered");
            }
        }
    }

    pub(super) fn on_ack(&mut self, req: &Request) {
        let Ok(cid) = req.headers.call_id() else {
            return;
        };
        let Some((key, side)) = self.by_call_id.get(cid).copied() else {
            if let Some(leg) = self.apps.leg_of(cid) {
                self.on_answered_ack(leg);
            }
            return;
        };
        if let Some(c) = self.calls.get_mut(&key) {
            if c.pending_2xx.as_ref().is_some_and(|p| p.side == side) {
                c.pending_2xx = None;
            }
            if c.pickup_2xx.as_ref().is_some_and(|p| p.side == side) {
                c.pickup_2xx = None;
            }
        }
    }

    pub(super) fn send_bye(&mut self, clock: Clock, key: CallKey, side: Side) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let peer = call.peer(side);
        let Some(bye) = call.dialog(side).map(|d| d.request(Method::Bye)) else {
            return;
        };
        if let Some(peer) = peer {
            self.send(clock, peer, bye, TxUse::Other);
        }
    }

    pub(super) fn on_in_dialog(&mut self, clock: Clock, tx: TxId, req: Request) {
        let key_side = req
            .headers
            .call_id()
            .ok()
            .and_then(|cid| self.by_call_id.get(cid).copied());
        let Some((key, side)) = key_side else {
            if self.consult_request(clock, tx, &req) {
                return;
            }
            let leg = req.headers.call_id().ok().and_then(|c| self.apps.leg_of(c));
            match leg {
                Some(leg) => self.on_answered_in_dialog(clock, tx, req, leg),
                None => self.reply(clock, tx, &req, StatusCode::CALL_DOES_NOT_EXIST),
            }
            return;
        };
        if let Some(d) = self.calls.get_mut(&key).and_then(|c| c.dialog(side)) {
            if d.on_request(&req).is_err() {
                self.reply(clock, tx, &req, StatusCode::SERVER_INTERNAL_ERROR);
                return;
            }
        }
        if side == Side::Caller && matches!(req.method, Method::Invite | Method::Update) {
            if let Some(c) = self.calls.get_mut(&key) {
                if let Some(se) = c.session_expires {
                    c.session_deadline = Some(clock.now + Duration::from_secs(u64::from(se)));
                }
            }
        }
        match req.method {
            Method::Bye => {
                self.reply(clock, tx, &req, StatusCode::OK);
                if self.parker_left(key, side) || self.consult_bye(clock, key, side) {
                    return;
                }
                self.send_bye(clock, key, side.other());
                self.end_call(clock, key, "answered");
            }
            Method::Invite => self.on_reinvite(clock, key, side, tx, req),
            Method::Refer => self.on_refer(clock, key, side, tx, req),
            _ => self.reply(clock, tx, &req, StatusCode::OK),
        }
    }

    pub(super) fn on_reinvite(
        &mut self,
        clock: Clock,
        key: CallKey,
        side: Side,
        tx: TxId,
        req: Request,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.reinvite.is_some() || call.pending_2xx.is_some() {
            // RFC 3261 §14.2: one INVITE at a time per dialog.
            let mut r = Response::for_request(&req, StatusCode(491), None);
            r.reason = "Request Pending".into();
            self.respond(clock, tx, r);
            return;
        }
        let other = side.other();
        if call.parked.is_some() && call.dialog(other).is_none() {
            return self.answer_parked_reinvite(clock, key, side, tx, req);
        }
        let Some(peer) = call.peer(other) else {
            self.reply(clock, tx, &req, StatusCode::CALL_DOES_NOT_EXIST);
            return;
        };
        let Some(mut inv) = call.dialog(other).map(|d| d.request(Method::Invite)) else {
            self.reply(clock, tx, &req, StatusCode::CALL_DOES_NOT_EXIST);
            return;
        };
        call.reinvite = Some(ReInvite {
            from: side,
            server_tx: tx,
            request: req.clone(),
        });
        let contact = self.our_contact(peer);
        inv.headers.push(HeaderName::Contact, contact);
        if !req.body.is_empty() {
            if let Some(body) = self.sdp_for(key, &req.body, other, peer) {
                inv.set_body("application/sdp", body);
            }
        }
        self.send(clock, peer, inv, TxUse::ReInvite { call: key });
    }

    pub(super) fn on_reinvite_response(
        &mut self,
        clock: Clock,
        key: CallKey,
        tx: TxId,
        resp: Response,
    ) {
        if resp.status.is_provisional() {
            return;
        }
        self.client_txs.remove(&tx);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(ri) = call.reinvite.take() else {
            return;
        };
        let to_side = ri.from;
        let answering = to_side.other();
        let peer_answering = call.peer(answering);
        let seq = resp.headers.cseq().map(|c| c.seq).unwrap_or(0);
        let ack = match (
            resp.status.is_success(),
            call.dialog(answering),
            peer_answering,
        ) {
            (true, Some(d), Some(peer)) => {
                d.on_refresh_response(&resp);
                Some((d.ack(seq), peer))
            }
            _ => None,
        };
        if let Some((mut ack, peer)) = ack {
            self.add_via(&mut ack, peer);
            ack.headers.set(HeaderName::ContentLength, "0");
            self.ep.send_stateless(peer, &Message::Request(ack));
        }
        let Some(peer) = self.calls.get(&key).and_then(|c| c.peer(to_side)) else {
            return;
        };
        let tag = ri
            .request
            .headers
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned));
        let mut r = Response::for_request(&ri.request, resp.status, tag.as_deref());
        r.reason = resp.reason.clone();
        let contact = self.our_contact(peer);
        r.headers.push(HeaderName::Contact, contact);
        if !resp.body.is_empty() {
            if let Some(body) = self.sdp_for(key, &resp.body, to_side, peer) {
                r.set_body("application/sdp", body);
            }
        }
        r.headers.push(HeaderName::Server, USER_AGENT);
        if r.body.is_empty() {
            r.headers.set(HeaderName::ContentLength, "0");
        }
        let bytes = Message::Response(r.clone());
        let success = r.status.is_success();
        if let Err(e) = self.ep.respond(clock.now, ri.server_tx, r) {
            debug!(error = %e, "re-INVITE answer not sent");
        }
        if success {
            self.start_2xx(clock, key, to_side, bytes, peer);
            self.after_reinvite(key, to_side, &ri.request.body, &resp.body);
        }
    }
}

/// A new INVITE the PBX starts (to a phone, a trunk, a transfer target): From, To, Call-ID,
/// CSeq 1, our Contact and Allow. Via, Max-Forwards and User-Agent are added when it is sent.
pub(super) fn new_invite(
    uri: kentongan_sip::Uri,
    from: &str,
    to: String,
    call_id: &str,
    contact: String,
) -> kentongan_sip::Request {
    use kentongan_sip::{HeaderName, Method, Request};
    let mut inv = Request::new(Method::Invite, uri);
    inv.headers.push(HeaderName::From, from);
    inv.headers.push(HeaderName::To, to);
    inv.headers.push(HeaderName::CallId, call_id);
    inv.headers.push(HeaderName::CSeq, "1 INVITE");
    inv.headers.push(HeaderName::Contact, contact);
    inv.headers.push(HeaderName::Allow, super::ALLOW);
    inv
}
