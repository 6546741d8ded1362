//! Attended transfer (RFC 5589 §7: REFER whose `Refer-To` carries `Replaces`, RFC 3891).
//!
//! The transferor B is in two calls through the PBX: call 1 with the transferee A (usually
//! held) and the consultation call 2 with the target C. Its REFER on call 1 names, in
//! `Replaces`, its own dialog with the PBX in call 2. As a B2BUA the PBX owns the far legs of
//! both calls, so it needs no INVITE to anyone: it swaps B's side of call 1's relayed streams
//! with C's side of call 2's ([`crate::media::MediaStream::exchange_side`]), so A and C keep
//! the relay ports they already send to and now reach each other; call 1's B side *becomes*
//! C (dialog, peer, extension), B is told "200 OK" and both its legs get a BYE, and call 2
//! ends with its CDR. A phone that was held (music from the engine, after a `sendonly`
//! re-INVITE passed to it) is re-INVITEd `sendrecv` with the other party's media on its own
//! relay port, since otherwise it would keep not sending.
//!
//! A `Replaces` naming no dialog of an answered call gets NOTIFY 481 (RFC 3891 §3).

use kentongan_sip::refer::Replaces;
use kentongan_sip::sdp::Sdp;
use kentongan_sip::transaction::TxId;
use kentongan_sip::{HeaderName, Message, Method, Request, Response, StatusCode};
use tracing::{info, warn};

use super::calls::{CallKey, Side};
use super::transfer::side_sdp;
use super::{Clock, Pbx, TxUse};

impl Pbx {
    /// A REFER from `side` (the transferor) of call `k1` whose Refer-To replaces `replaces`.
    /// The REFER was checked by `on_refer` (answered call, nothing pending).
    pub(super) fn on_attended_refer(
        &mut self,
        clock: Clock,
        k1: CallKey,
        side: Side,
        tx: TxId,
        req: Request,
        replaces: Replaces,
    ) {
        let refer_cseq = Some(req.headers.cseq().map(|c| c.seq).unwrap_or(0));
        let mut ok = Response::for_request(&req, StatusCode(202), None);
        ok.reason = "Accepted".into();
        self.respond(clock, tx, ok);
        self.send_refer_notify(clock, k1, side, refer_cseq, StatusCode(100));
        let referred_by = req
            .headers
            .get_str(&HeaderName::ReferredBy)
            .map(str::to_owned);
        match self.replaced_leg(k1, &replaces) {
            Ok((k2, t)) => {
                self.send_refer_notify(clock, k1, side, refer_cseq, StatusCode::OK);
                self.join_far_sides(clock, k1, side, k2, t, referred_by);
            }
            Err(status) => {
                info!(
                    call = k1,
                    status = status.0,
                    replaces = %replaces.call_id.escape_debug(),
                    "attended transfer refused"
                );
                self.send_refer_notify(clock, k1, side, refer_cseq, status);
            }
        }
    }

    /// The call and side whose dialog with the PBX `replaces` names, if that call can be
    /// joined to `k1`: answered, another call, nothing under way in it.
    fn replaced_leg(
        &mut self,
        k1: CallKey,
        replaces: &Replaces,
    ) -> Result<(CallKey, Side), StatusCode> {
        let Some((k2, t)) = self.replaced_dialog(replaces).filter(|(k2, _)| *k2 != k1) else {
            return Err(StatusCode::CALL_DOES_NOT_EXIST);
        };
        let Some(c2) = self.calls.get(&k2) else {
            return Err(StatusCode::CALL_DOES_NOT_EXIST);
        };
        if !c2.answered() {
            // RFC 3891 §3: replacing an early dialog is for a pickup, not a transfer.
            return Err(StatusCode(486));
        }
        if c2.transfer.is_some() || c2.reinvite.is_some() || c2.parked.is_some() {
            return Err(StatusCode(491));
        }
        if c2.trunk.is_some() || c2.inbound.is_some() {
            // The trunk's channel and CDR belong to call 2; moving its leg is not supported.
            return Err(StatusCode(501));
        }
        Ok((k2, t))
    }

    /// Joins the far side of call `k1` (opposite `s`) with the far side of call `k2`
    /// (opposite `t`): the result is call `k1`, whose side `s` is now `k2`'s far phone.
    fn join_far_sides(
        &mut self,
        clock: Clock,
        k1: CallKey,
        s: Side,
        k2: CallKey,
        t: Side,
        referred_by: Option<String>,
    ) {
        let far2 = t.other();
        // Which far phones were put on hold by the transferor: they get a sendrecv re-INVITE.
        let held1 = self
            .calls
            .get(&k1)
            .and_then(|c| c.hold)
            .is_some_and(|h| h.by == s);
        let held2 = self
            .calls
            .get(&k2)
            .and_then(|c| c.hold)
            .is_some_and(|h| h.by == t);
        // Every relayed side back with the relay: music and recordings stop here.
        for k in [k1, k2] {
            self.stop_call_recording(k);
            self.end_hold(k);
        }
        self.send_bye(clock, k1, s);
        self.send_bye(clock, k2, t);
        self.transfer_segment_cdr(clock, k1, s, "attended");
        let transferred = self.calls.get(&k1).and_then(|c| c.transferred.clone());
        // Call 2 leaves the map while both calls change (MSRV 1.75: no get_disjoint_mut).
        let Some(mut c2) = self.calls.remove(&k2) else {
            return;
        };
        let Some(c1) = self.calls.get_mut(&k1) else {
            self.calls.insert(k2, c2);
            return;
        };
        for (m1, m2) in c1.media.iter_mut().zip(c2.media.iter_mut()) {
            if let (Some(m1), Some(m2)) = (m1, m2) {
                if let Err(e) = m1.exchange_side(s.stream(), m2, far2.stream()) {
                    warn!(call = k1, error = %e, "attended transfer: a stream was not joined");
                }
            }
        }
        let far_sdp = side_sdp(&c2, far2).map(|s| s.to_bytes());
        let ext = match far2 {
            Side::Caller => c2.caller.clone(),
            Side::Callee => c2.callee.clone(),
        };
        let dialog = match far2 {
            Side::Caller => c2.caller_dialog.take(),
            Side::Callee => c2.callee_dialog.take(),
        };
        let peer = c2.peer(far2);
        c2.transferred = transferred;
        self.calls.insert(k2, c2);
        let Some(dialog) = dialog else {
            return;
        };
        let Some(c1) = self.calls.get_mut(&k1) else {
            return;
        };
        let new_call_id = dialog.id.call_id.clone();
        let old_call_id = match s {
            Side::Caller => c1.caller_dialog.as_ref().map(|d| d.id.call_id.clone()),
            Side::Callee => Some(c1.b_call_id.clone()),
        };
        match s {
            Side::Caller => {
                c1.caller = ext.clone();
                c1.caller_dialog = Some(dialog);
                if let Some(p) = peer {
                    c1.caller_peer = p;
                }
                // The new caller side's session timer was call 2's business.
                c1.session_expires = None;
                c1.session_deadline = None;
                if let Some(sdp) = far_sdp.as_deref().and_then(|b| Sdp::parse(b).ok()) {
                    c1.offer = Some(sdp);
                }
            }
            Side::Callee => {
                c1.callee = ext.clone();
                c1.callee_dialog = Some(dialog);
                c1.callee_peer = peer;
                c1.b_call_id = new_call_id.clone();
                if let Some(b) = far_sdp {
                    c1.callee_sdp = Some(b.into());
                }
            }
        }
        c1.pending_2xx = None;
        // Call 2 now holds only the transferor's two old sides: it ends (its CDR written),
        // and the far phone's Call-ID leads to call 1 from here on.
        self.end_call(clock, k2, "answered");
        if let Some(old) = old_call_id {
            self.by_call_id.remove(&old);
        }
        self.by_call_id.insert(new_call_id, (k1, s));
        info!(call = k1, target = %ext, "attended transfer done");
        self.show_answered(k1);
        self.watch_in_call(k1);
        for (held, side) in [(held1, s.other()), (held2, s)] {
            if held {
                self.resume_far(clock, k1, side, referred_by.as_deref());
            }
        }
    }

    /// Re-INVITEs `side` of call `k1` with the other side's media on its own relay ports,
    /// `sendrecv`: it was held by the transferor and must send again.
    pub(super) fn resume_far(
        &mut self,
        clock: Clock,
        key: CallKey,
        side: Side,
        referred_by: Option<&str>,
    ) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let Some(mut sdp) = side_sdp(call, side.other()) else {
            return;
        };
        let Some(peer) = call.peer(side) else {
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
        let ip = self.local_ip(peer);
        sdp.rewrite_for_relay(ip, &ports);
        sdp.set_hold(false);
        let contact = self.our_contact(peer);
        let Some(mut inv) = self
            .calls
            .get_mut(&key)
            .and_then(|c| c.dialog(side))
            .map(|d| d.request(Method::Invite))
        else {
            return;
        };
        inv.headers.push(HeaderName::Contact, contact);
        if let Some(by) = referred_by {
            inv.headers.push(HeaderName::ReferredBy, by);
        }
        inv.set_body("application/sdp", sdp.to_bytes());
        self.send(clock, peer, inv, TxUse::Resume { call: key, side });
    }

    /// The answer to [`Pbx::resume_far`]'s re-INVITE: a 2xx is ACKed in that dialog.
    pub(super) fn on_resume_response(
        &mut self,
        key: CallKey,
        side: Side,
        tx: TxId,
        resp: Response,
    ) {
        if resp.status.is_provisional() {
            return;
        }
        self.client_txs.remove(&tx);
        if !resp.status.is_success() {
            warn!(
                call = key,
                status = resp.status.0,
                "attended transfer: the held phone refused to resume; it may stay silent"
            );
            return;
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let peer = call.peer(side);
        let seq = resp.headers.cseq().map(|c| c.seq).unwrap_or(0);
        let (Some(d), Some(peer)) = (call.dialog(side), peer) else {
            return;
        };
        d.on_refresh_response(&resp);
        let mut ack = d.ack(seq);
        self.add_via(&mut ack, peer);
        ack.headers.set(HeaderName::ContentLength, "0");
        self.ep.send_stateless(peer, &Message::Request(ack));
        // Where the resumed phone now wants media (latching refines it).
        if !resp.body.is_empty() {
            let _ = self.sdp_for(key, &resp.body, side.other(), peer);
        }
        info!(
            call = key,
            ?side,
            "attended transfer: the held phone resumed"
        );
    }
}
