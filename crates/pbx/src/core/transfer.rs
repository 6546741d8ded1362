//! Blind transfer (REFER, RFC 3515; progress as `message/sipfrag` NOTIFYs, RFC 3420).
//!
//! In an answered bridged call, one phone (the transferor) sends REFER with `Refer-To` naming
//! an extension. The PBX accepts (202), tells it "100 Trying", and calls the target itself,
//! offering the media of the phone that stays (the transferee) on the transferor's side of
//! the relay. When the target answers, that side of the call *becomes* the target: its
//! dialog, peer, extension and relay destination; the transferee's dialog and relay ports do
//! not change, so it needs no re-INVITE and hears the target at once. The transferor is told
//! "200 OK" and sent a BYE. If the target does not answer, the transferor is told the
//! failure and the call goes on as it was.
//!
//! The offer to the target lists only the codecs the call already uses (the callee's answer),
//! since the transferee keeps sending what it negotiated. Targets are extensions; a REFER to
//! anything else is refused. A REFER with `Replaces` (attended transfer) is `attended`'s.

use std::net::SocketAddr;

use bytes::Bytes;
use kentongan_sip::dialog::Dialog;
use kentongan_sip::refer::{refer_notify, ReferTo};
use kentongan_sip::sdp::Sdp;
use kentongan_sip::transaction::TxId;
use kentongan_sip::{HeaderName, NameAddr, Request, Response, StatusCode};
use tracing::{info, warn};

use super::calls::{CallKey, Side};
use super::{Clock, Extension, Pbx, TxUse, USER_AGENT};
use crate::routing::Destination;
use crate::store::{LiveCall, Write};

/// A transfer under way in a call.
#[derive(Debug)]
pub(super) struct Transfer {
    /// Who sent the REFER: the side the target will take.
    by: Side,
    target: Extension,
    /// The REFER's CSeq: the `id` of the implicit subscription's Event header. `None`: no
    /// REFER (a parked call ringing back), so nobody is told about progress.
    refer_cseq: Option<u32>,
    /// Asked for with the in-call code `##`: no REFER, but the transferor still goes.
    by_keys: bool,
    /// Our INVITE to the target, for the ACK and the dialog.
    invite: Request,
    peer: SocketAddr,
}

/// `offer` with each media section narrowed to the payload types `answer` kept.
pub(super) fn narrowed(offer: &Sdp, answer: &Sdp) -> Sdp {
    let mut out = offer.clone();
    for (i, m) in out.media.iter_mut().enumerate() {
        let Some(a) = answer.media.get(i) else {
            continue;
        };
        m.formats.retain(|f| a.formats.contains(f));
        let keep = |value: &str| {
            let pt = value.split([' ', '/']).next().unwrap_or("");
            a.formats.iter().any(|f| f == pt)
        };
        m.attributes.retain(|at| match at.name.as_str() {
            "rtpmap" | "fmtp" | "rtcp-fb" => at.value.as_deref().is_some_and(keep),
            _ => true,
        });
    }
    out
}

/// What `side` of an answered call sends, as SDP: the caller's offer narrowed to the codecs
/// the callee's answer kept, or that answer. A phone taking the other side is offered this,
/// since `side` keeps sending what it negotiated.
pub(super) fn side_sdp(call: &super::calls::Call, side: Side) -> Option<Sdp> {
    let answer = call.callee_sdp.as_ref().and_then(|b| Sdp::parse(b).ok());
    match side {
        Side::Caller => call
            .offer
            .as_ref()
            .zip(answer.as_ref())
            .map(|(o, a)| narrowed(o, a)),
        Side::Callee => answer,
    }
}

impl Pbx {
    /// `calls` shows `key` as an answered call between its (possibly new) parties.
    pub(super) fn show_answered(&mut self, key: CallKey) {
        if let Some(c) = self.calls.get(&key) {
            self.writes.push(Write::LiveCall(LiveCall {
                call_id: c.call_id.clone(),
                caller: c.caller.0.clone(),
                callee: c.callee.0.clone(),
                start_ms: c.start_ms,
                answer_ms: c.answer_ms,
                state: "answered".into(),
            }));
        }
    }

    /// A REFER in call `key` from `side`.
    pub(super) fn on_refer(
        &mut self,
        clock: Clock,
        key: CallKey,
        side: Side,
        tx: TxId,
        req: Request,
    ) {
        let refuse = |pbx: &mut Pbx, status: u16, reason: &str| {
            let mut r = Response::for_request(&req, StatusCode(status), None);
            r.reason = reason.into();
            pbx.respond(clock, tx, r);
        };
        let Some(call) = self.calls.get(&key) else {
            return refuse(self, 481, "Call Does Not Exist");
        };
        if !call.answered()
            || call.transfer.is_some()
            || call.reinvite.is_some()
            || call.consult.is_some()
        {
            return refuse(self, 491, "Request Pending");
        }
        let mut refer_to = match ReferTo::from_request(&req) {
            Ok(r) => r,
            Err(_) => return refuse(self, 400, "Bad Refer-To"),
        };
        if let Some(replaces) = refer_to.replaces.take() {
            return self.on_attended_refer(clock, key, side, tx, req, replaces);
        }
        let number = refer_to.target.uri.user().unwrap_or("").to_owned();
        let target = match self.dialplan.resolve(&number, &self.store) {
            Ok(Destination::Extension(e)) => e,
            Ok(Destination::Park) => return self.park(clock, key, side, tx, &req),
            _ => return refuse(self, 403, "Transfer Target Must Be An Extension"),
        };
        let Some(contact) = self
            .registry
            .contacts(&target, clock.unix_s())
            .into_iter()
            .next()
        else {
            return refuse(self, 480, "Transfer Target Not Registered");
        };
        let Some(sdp) = side_sdp(call, side.other()) else {
            return refuse(self, 488, "No Media To Offer");
        };
        let refer_cseq = req.headers.cseq().map(|c| c.seq).unwrap_or(0);
        let mut ok = Response::for_request(&req, StatusCode(202), None);
        ok.reason = "Accepted".into();
        self.respond(clock, tx, ok);
        self.send_refer_notify(clock, key, side, Some(refer_cseq), StatusCode(100));
        let referred_by = req
            .headers
            .get_str(&HeaderName::ReferredBy)
            .map(str::to_owned);
        self.call_for_side(
            clock,
            key,
            side,
            target,
            contact,
            sdp,
            referred_by,
            Some(refer_cseq),
        );
    }

    /// The in-call code `##` + `number` pressed on `side` of call `key`: as a REFER from
    /// that side, without one (nobody to NOTIFY; a failure leaves the call as it was).
    pub(super) fn transfer_by_keys(
        &mut self,
        clock: Clock,
        key: CallKey,
        side: Side,
        number: &str,
    ) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if !call.answered()
            || call.transfer.is_some()
            || call.reinvite.is_some()
            || call.consult.is_some()
        {
            info!(
                call = key,
                "in-call transfer ignored: the call is busy with another change"
            );
            return;
        }
        let Some((target, contact)) =
            self.keyed_transfer_target(clock, key, number, "in-call transfer")
        else {
            return;
        };
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let Some(sdp) = side_sdp(call, side.other()) else {
            return;
        };
        self.call_for_side(clock, key, side, target, contact, sdp, None, None);
        if let Some(t) = self.calls.get_mut(&key).and_then(|c| c.transfer.as_mut()) {
            t.by_keys = true;
        }
    }

    /// Calls `target` at `contact` to take `side` of call `key`, offering `sdp` (the other
    /// side's media) on that side's relay ports; its answer replaces the side.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn call_for_side(
        &mut self,
        clock: Clock,
        key: CallKey,
        side: Side,
        target: Extension,
        contact: super::Contact,
        mut sdp: Sdp,
        referred_by: Option<String>,
        refer_cseq: Option<u32>,
    ) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let ports: Vec<u16> = call
            .media
            .iter()
            .map(|m| {
                m.as_ref().map_or(0, |s| match side {
                    Side::Caller => s.caller_port,
                    Side::Callee => s.callee_port,
                })
            })
            .collect();
        let transferee = match side.other() {
            Side::Caller => call.caller.clone(),
            Side::Callee => call.callee.clone(),
        };
        let ip = self.local_ip(contact.source);
        sdp.rewrite_for_relay(ip, &ports);
        let sent = self.invite_to(&contact, &transferee, &target, &sdp, referred_by);
        match self
            .ep
            .send_request(clock.now, contact.source, sent.clone())
        {
            Ok(ttx) => {
                self.client_txs.insert(ttx, TxUse::Transfer { call: key });
                info!(call = key, %target, "blind transfer: calling the target");
                if let Some(c) = self.calls.get_mut(&key) {
                    c.transfer = Some(Transfer {
                        by: side,
                        target,
                        refer_cseq,
                        by_keys: false,
                        invite: sent,
                        peer: contact.source,
                    });
                }
            }
            Err(e) => {
                warn!(error = %e, "transfer INVITE not sent");
                self.send_refer_notify(clock, key, side, refer_cseq, StatusCode(503));
                self.ring_back_failed(clock, key);
            }
        }
    }

    /// A new INVITE from the PBX to `target` at `contact`, as from `from` (the caller ID the
    /// target sees), offering `sdp`; Via and the rest set, ready for `send_request`.
    pub(super) fn invite_to(
        &mut self,
        contact: &super::Contact,
        from: &Extension,
        target: &Extension,
        sdp: &Sdp,
        referred_by: Option<String>,
    ) -> Request {
        let domain = self.config.domain.clone();
        let call_id = self.ep.new_call_id();
        let from = format!("<sip:{from}@{domain}>;tag={}", self.ep.new_tag());
        let our = self.our_contact(contact.source);
        let mut inv = super::dialogs::new_invite(
            contact.uri.clone(),
            &from,
            format!("<sip:{target}@{domain}>"),
            &call_id,
            our,
        );
        if let Some(by) = referred_by {
            inv.headers.push(HeaderName::ReferredBy, by);
        }
        inv.set_body("application/sdp", sdp.to_bytes());
        self.add_via(&mut inv, contact.source);
        inv.headers.set(HeaderName::MaxForwards, "70");
        inv.headers.push(HeaderName::UserAgent, USER_AGENT);
        inv
    }

    pub(super) fn send_refer_notify(
        &mut self,
        clock: Clock,
        key: CallKey,
        side: Side,
        refer_cseq: Option<u32>,
        status: StatusCode,
    ) {
        let Some(refer_cseq) = refer_cseq else {
            return;
        };
        let Some(peer) = self.calls.get(&key).and_then(|c| c.peer(side)) else {
            return;
        };
        let contact = self.our_contact(peer);
        let Ok(contact) = NameAddr::parse(&contact) else {
            return;
        };
        let Some(dialog) = self.calls.get_mut(&key).and_then(|c| c.dialog(side)) else {
            return;
        };
        let notify = refer_notify(dialog, &contact, refer_cseq, status);
        self.send(clock, peer, notify, TxUse::Other);
    }

    /// The target's answer to our INVITE.
    /// The extension a transfer dialled on the keypad goes to, and its registered phone;
    /// `None` (logged under `what`) when the number is no extension or nobody is registered.
    pub(super) fn keyed_transfer_target(
        &self,
        clock: Clock,
        key: CallKey,
        number: &str,
        what: &str,
    ) -> Option<(Extension, super::Contact)> {
        let target = match self.dialplan.resolve(number, &self.store) {
            Ok(Destination::Extension(e)) => e,
            _ => {
                info!(call = key, number = %number, "{what}: the number is no extension");
                return None;
            }
        };
        let Some(contact) = self
            .registry
            .contacts(&target, clock.unix_s())
            .into_iter()
            .next()
        else {
            info!(call = key, %target, "{what}: the target is not registered");
            return None;
        };
        Some((target, contact))
    }

    pub(super) fn on_transfer_response(
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
        let Some(t) = self.calls.get_mut(&key).and_then(|c| c.transfer.take()) else {
            return;
        };
        if !resp.status.is_success() {
            info!(
                call = key,
                status = resp.status.0,
                "blind transfer: the target did not answer"
            );
            self.send_refer_notify(clock, key, t.by, t.refer_cseq, resp.status);
            self.ring_back_failed(clock, key);
            return;
        }
        let Ok(dialog) = Dialog::uac(&t.invite, &resp) else {
            self.send_refer_notify(clock, key, t.by, t.refer_cseq, StatusCode(502));
            self.ring_back_failed(clock, key);
            return;
        };
        let mut ack = dialog.ack(1);
        self.add_via(&mut ack, t.peer);
        ack.headers.set(HeaderName::ContentLength, "0");
        self.ep
            .send_stateless(t.peer, &kentongan_sip::Message::Request(ack));
        // The transferor hears it worked, then is let go (a parker has gone already).
        if t.refer_cseq.is_some() || t.by_keys {
            self.send_refer_notify(clock, key, t.by, t.refer_cseq, StatusCode::OK);
            self.send_bye(clock, key, t.by);
            self.transfer_segment_cdr(clock, key, t.by, "blind");
        }
        if let Some(c) = self.calls.get_mut(&key) {
            c.parked = None;
        }
        // A recording's engine legs send to the phone that is leaving; the relay takes over.
        self.stop_call_recording(key);
        // Where the target wants its media: that side's relay destination.
        if let Some(c) = self.calls.get(&key) {
            for m in c.media.iter().flatten() {
                m.forget_party(t.by.stream());
            }
        }
        if !resp.body.is_empty() {
            let _ = self.sdp_for(key, &resp.body, t.by.other(), t.peer);
        }
        self.end_hold(key);
        let new_call_id = dialog.id.call_id.clone();
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let old_call_id = match t.by {
            Side::Caller => call.call_id.clone(),
            Side::Callee => call.b_call_id.clone(),
        };
        match t.by {
            Side::Caller => {
                call.caller = t.target.clone();
                call.caller_dialog = Some(dialog);
                call.caller_peer = t.peer;
                // The new caller side is our UAC dialog: it refreshes nothing of ours.
                call.session_expires = None;
                call.session_deadline = None;
            }
            Side::Callee => {
                call.callee = t.target.clone();
                call.callee_dialog = Some(dialog);
                call.callee_peer = Some(t.peer);
                call.b_call_id = new_call_id.clone();
                if !resp.body.is_empty() {
                    call.callee_sdp = Some(Bytes::copy_from_slice(&resp.body));
                }
            }
        }
        self.by_call_id.remove(&old_call_id);
        self.by_call_id.insert(new_call_id, (key, t.by));
        info!(call = key, target = %t.target, "blind transfer done");
        self.show_answered(key);
        self.watch_in_call(key);
    }

    /// Our INVITE to the target timed out.
    pub(super) fn on_transfer_timeout(&mut self, clock: Clock, key: CallKey) {
        if let Some(t) = self.calls.get_mut(&key).and_then(|c| c.transfer.take()) {
            self.send_refer_notify(clock, key, t.by, t.refer_cseq, StatusCode::REQUEST_TIMEOUT);
            self.ring_back_failed(clock, key);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_offer_to_a_target_keeps_only_the_codecs_in_use() {
        let offer = Sdp::parse(
            b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
              m=audio 4000 RTP/AVP 0 8 111 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
              a=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\n\
              a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n",
        )
        .unwrap();
        let answer = Sdp::parse(
            b"v=0\r\no=- 2 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n\
              m=audio 5000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        )
        .unwrap();
        let n = narrowed(&offer, &answer);
        assert_eq!(n.media[0].formats, ["8", "101"]);
        let text = String::from_utf8(n.to_bytes()).unwrap();
        assert!(!text.contains("opus") && !text.contains("PCMU"), "{text}");
        assert!(
            text.contains("a=fmtp:101 0-15") && text.contains("a=sendrecv"),
            "{text}"
        );
    }
}
