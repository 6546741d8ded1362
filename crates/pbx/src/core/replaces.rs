//! A new INVITE with a `Replaces` header (RFC 3891 §3): a phone takes over one leg of a call
//! in progress, e.g. the target of an attended transfer done by the phones themselves, or a
//! phone picking up a call another of the same user's phones has.
//!
//! The header names a dialog *the PBX* has with a phone (Call-ID, our tag as `to-tag`, the
//! phone's as `from-tag`). That leg of the call is handed to the new phone: it is answered on
//! the relay ports of the leg it replaces, with the other party's media narrowed to what it
//! offered, so the other party keeps its ports and needs no re-INVITE (unless it was held by
//! the replaced phone, then a `sendrecv` re-INVITE resumes it). The replaced phone gets a BYE.
//! No match is 481; `early-only` on an answered call is 486 (RFC 3891 §3).
//!
//! Only an authenticated extension gets here, and it must name both tags of the dialog,
//! which only the parties to it saw.

use std::net::SocketAddr;

use bytes::Bytes;
use kentongan_sip::dialog::Dialog;
use kentongan_sip::refer::Replaces;
use kentongan_sip::sdp::Sdp;
use kentongan_sip::transaction::TxId;
use kentongan_sip::{HeaderName, Message, Request, Response, StatusCode};
use tracing::{debug, info};

use super::calls::{media_target, CallKey, Side};
use super::transfer::{narrowed, side_sdp};
use super::{Clock, Pbx, ALLOW, USER_AGENT};
use crate::store::Extension;

impl Pbx {
    /// An INVITE from `caller` at `from` whose `Replaces` header is `value`.
    pub(super) fn on_replacing_invite(
        &mut self,
        clock: Clock,
        tx: TxId,
        from: SocketAddr,
        req: Request,
        caller: Extension,
        value: &str,
    ) {
        let refuse = |pbx: &mut Pbx, status: u16, reason: &str| {
            let tag = pbx.ep.new_tag();
            let mut r = Response::for_request(&req, StatusCode(status), Some(&tag));
            r.reason = reason.into();
            pbx.respond(clock, tx, r);
        };
        let Ok(replaces) = Replaces::parse(value) else {
            return refuse(self, 400, "Bad Replaces Header");
        };
        let Some((key, s)) = self.replaced_dialog(&replaces) else {
            info!(%caller, "INVITE with Replaces: no such dialog");
            return refuse(self, 481, "Call/Transaction Does Not Exist");
        };
        let Some(call) = self.calls.get(&key) else {
            return refuse(self, 481, "Call/Transaction Does Not Exist");
        };
        if !call.answered() {
            return refuse(self, 481, "Only An Answered Call Can Be Replaced");
        }
        if replaces.early_only {
            return refuse(self, 486, "Busy Here");
        }
        if call.transfer.is_some() || call.reinvite.is_some() || call.pending_2xx.is_some() {
            return refuse(self, 491, "Request Pending");
        }
        let Some(offer) = Sdp::parse(&req.body).ok() else {
            return refuse(self, 488, "An Offer Is Needed To Replace A Call");
        };
        let other = s.other();
        let Some(their) = side_sdp(call, other) else {
            return refuse(self, 488, "No Media To Answer With");
        };
        // The other party keeps sending what it negotiated: answer with those of its codecs
        // the new phone offered.
        let mut answer = narrowed(&their, &offer);
        if answer.media.iter().all(|m| m.formats.is_empty()) {
            return refuse(self, 488, "No Codec In Common With The Other Party");
        }
        let ports: Vec<u16> = call
            .media
            .iter()
            .map(|m| {
                m.as_ref().map_or(0, |st| match s {
                    Side::Caller => st.caller_port,
                    Side::Callee => st.callee_port,
                })
            })
            .collect();
        let other_held = call.hold.is_some_and(|h| h.by == s);
        let referred_by = req
            .headers
            .get_str(&HeaderName::ReferredBy)
            .map(str::to_owned);
        self.stop_call_recording(key);
        self.end_hold(key);
        self.send_bye(clock, key, s);
        let ip = self.local_ip(from);
        answer.rewrite_for_relay(ip, &ports);
        answer.set_hold(false);
        if let Some(call) = self.calls.get(&key) {
            for (i, m) in call.media.iter().enumerate() {
                if let (Some(st), Some(target)) = (m, media_target(&offer, i)) {
                    st.forget_party(s.stream());
                    st.set_targets(|t| match s {
                        Side::Caller => t.caller = Some(target),
                        Side::Callee => t.callee = Some(target),
                    });
                }
            }
        }
        let tag = self.ep.new_tag();
        let mut r = Response::for_request(&req, StatusCode::OK, Some(&tag));
        let contact = self.our_contact(from);
        r.headers.push(HeaderName::Contact, contact);
        r.headers.push(HeaderName::Allow, ALLOW);
        r.headers.push(HeaderName::Server, USER_AGENT);
        r.set_body("application/sdp", answer.to_bytes());
        let Ok(dialog) = Dialog::uas(&req, &r) else {
            return refuse(self, 400, "Bad Request");
        };
        let bytes = Message::Response(r.clone());
        if let Err(e) = self.ep.respond(clock.now, tx, r) {
            debug!(error = %e, "200 to a replacing phone not sent");
        }
        let new_call_id = dialog.id.call_id.clone();
        let Some(c) = self.calls.get_mut(&key) else {
            return;
        };
        let old_call_id = match s {
            Side::Caller => c.caller_dialog.as_ref().map(|d| d.id.call_id.clone()),
            Side::Callee => Some(c.b_call_id.clone()),
        };
        match s {
            Side::Caller => {
                c.caller = caller.clone();
                c.caller_dialog = Some(dialog);
                c.caller_peer = from;
                c.session_expires = None;
                c.session_deadline = None;
                c.offer = Some(offer);
            }
            Side::Callee => {
                c.callee = caller.clone();
                c.callee_dialog = Some(dialog);
                c.callee_peer = Some(from);
                c.b_call_id = new_call_id.clone();
                c.callee_sdp = Some(Bytes::copy_from_slice(&req.body));
            }
        }
        if let Some(old) = old_call_id {
            self.by_call_id.remove(&old);
        }
        self.by_call_id.insert(new_call_id, (key, s));
        self.start_2xx(clock, key, s, bytes, from);
        info!(call = key, by = %caller, "a leg of the call was replaced (INVITE with Replaces)");
        self.show_answered(key);
        self.watch_in_call(key);
        if other_held {
            self.resume_far(clock, key, other, referred_by.as_deref());
        }
    }

    /// The call and side whose dialog with the PBX `replaces` names.
    pub(super) fn replaced_dialog(&mut self, replaces: &Replaces) -> Option<(CallKey, Side)> {
        let (key, side) = self.by_call_id.get(&replaces.call_id).copied()?;
        let call = self.calls.get_mut(&key)?;
        call.dialog(side)
            .is_some_and(|d| replaces.names(&d.id))
            .then_some((key, side))
    }
}
