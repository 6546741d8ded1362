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
//!
//! The two far phones may have negotiated different codecs with the transferor (201 PCMU,
//! 203 PCMA); the relay does not transcode, so joining them blindly would give each
//! garbage. [`codec_fix`] decides first: if one phone is known to take the other's codec
//! (its offer listed it), it is re-INVITEd with the other's media once joined; if neither
//! is, the transfer is refused with NOTIFY 488 and both calls go on as they were.

use kentongan_sip::refer::Replaces;
use kentongan_sip::sdp::{Codec, Sdp};
use kentongan_sip::transaction::TxId;
use kentongan_sip::{HeaderName, Message, Method, Request, Response, StatusCode};
use tracing::{info, warn};

use super::calls::{CallKey, Side};
use super::transfer::side_sdp;
use super::{Clock, Pbx, TxUse};

/// What joining two far phones needs for their codecs to agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CodecFix {
    /// Both send the same codec.
    None,
    /// The first call's far phone is re-INVITEd with the second's media.
    First,
    /// The second call's far phone is re-INVITEd with the first's media.
    Second,
}

/// The audio codec a phone sends: the first one of its first audio section that is not
/// telephone-event or comfort noise.
fn sent_codec(sdp: &Sdp) -> Option<Codec> {
    let m = sdp
        .media
        .iter()
        .find(|m| m.kind == "audio" && m.port != 0)?;
    m.codecs().into_iter().map(|(_, c)| c).find(|c| {
        !c.name.eq_ignore_ascii_case("telephone-event") && !c.name.eq_ignore_ascii_case("CN")
    })
}

fn same_codec(a: &Codec, b: &Codec) -> bool {
    a.name.eq_ignore_ascii_case(&b.name)
        && a.clock == b.clock
        && a.channels.unwrap_or(1) == b.channels.unwrap_or(1)
}

/// Whether `known` (everything a phone is known to accept: its offer, or its answer) lists
/// `codec` in its first audio section.
fn accepts(known: &Sdp, codec: &Codec) -> bool {
    known
        .media
        .iter()
        .find(|m| m.kind == "audio" && m.port != 0)
        .is_some_and(|m| m.codecs().iter().any(|(_, c)| same_codec(c, codec)))
}

/// For far phones sending `used1`/`used2`, known to accept `known1`/`known2`: how to join
/// them, or `None` when neither is known to take the other's codec. A side without audio
/// needs nothing.
pub(super) fn codec_fix(used1: &Sdp, known1: &Sdp, used2: &Sdp, known2: &Sdp) -> Option<CodecFix> {
    let (Some(c1), Some(c2)) = (sent_codec(used1), sent_codec(used2)) else {
        return Some(CodecFix::None);
    };
    if same_codec(&c1, &c2) {
        Some(CodecFix::None)
    } else if accepts(known1, &c2) {
        Some(CodecFix::First)
    } else if accepts(known2, &c1) {
        Some(CodecFix::Second)
    } else {
        None
    }
}

/// Everything `side` of `call` is known to accept: a caller's whole offer, a callee's answer.
fn known_sdp(call: &super::calls::Call, side: Side) -> Option<Sdp> {
    match side {
        Side::Caller => call.offer.clone(),
        Side::Callee => call.callee_sdp.as_ref().and_then(|b| Sdp::parse(b).ok()),
    }
}

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
        match self.replaced_leg(k1, side, &replaces) {
            Ok((k2, t, fix)) => {
                self.send_refer_notify(clock, k1, side, refer_cseq, StatusCode::OK);
                self.join_far_sides(clock, k1, side, k2, t, fix, referred_by);
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
    /// joined to `k1` (transferor on side `s`): answered, another call, nothing under way in
    /// it, far phones whose codecs can be made to agree (488 otherwise).
    fn replaced_leg(
        &mut self,
        k1: CallKey,
        s: Side,
        replaces: &Replaces,
    ) -> Result<(CallKey, Side, CodecFix), StatusCode> {
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
        let c1 = self.calls.get(&k1).ok_or(StatusCode::CALL_DOES_NOT_EXIST)?;
        let (far1, far2) = (s.other(), t.other());
        let fix = match (
            side_sdp(c1, far1),
            known_sdp(c1, far1),
            side_sdp(c2, far2),
            known_sdp(c2, far2),
        ) {
            (Some(u1), Some(k1s), Some(u2), Some(k2s)) => codec_fix(&u1, &k1s, &u2, &k2s),
            _ => Some(CodecFix::None),
        };
        match fix {
            Some(fix) => Ok((k2, t, fix)),
            None => {
                warn!(
                    call = k1,
                    "attended transfer refused: the two parties use different codecs and neither accepts the other's (the relay does not transcode)"
                );
                Err(StatusCode(488))
            }
        }
    }

    /// Joins the far side of call `k1` (opposite `s`) with the far side of call `k2`
    /// (opposite `t`): the result is call `k1`, whose side `s` is now `k2`'s far phone.
    #[allow(clippy::too_many_arguments)]
    fn join_far_sides(
        &mut self,
        clock: Clock,
        k1: CallKey,
        s: Side,
        k2: CallKey,
        t: Side,
        fix: CodecFix,
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
        // A phone re-INVITEd off hold or to agree on a codec gets the other's media.
        let again1 = held1 || fix == CodecFix::First;
        let again2 = held2 || fix == CodecFix::Second;
        if fix != CodecFix::None {
            info!(
                call = k1,
                ?fix,
                "attended transfer: the parties' codecs differ; re-INVITEing one with the other's"
            );
        }
        for (held, side) in [(again1, s.other()), (again2, s)] {
            if held {
                self.resume_far(clock, k1, side, referred_by.as_deref());
            }
        }
    }

    /// Re-INVITEs `side` of call `k1` with the other side's media on its own relay ports,
    /// `sendrecv`: it was held by the transferor and must send again, or it must change to
    /// the other side's codec.
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sdp(formats: &str, rtpmaps: &str) -> Sdp {
        let text = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP {formats}\r\n{rtpmaps}"
        );
        Sdp::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn far_phones_on_different_codecs_are_reinvited_or_refused() {
        let pcmu = sdp("0 101", "a=rtpmap:101 telephone-event/8000\r\n");
        let pcma = sdp(
            "8 101",
            "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        );
        let both = sdp("0 8 101", "a=rtpmap:101 telephone-event/8000\r\n");
        let opus = sdp("111", "a=rtpmap:111 opus/48000/2\r\n");
        // Same codec (static payload type or rtpmap, telephone-event ignored): nothing to do.
        assert_eq!(codec_fix(&pcma, &pcma, &pcma, &both), Some(CodecFix::None));
        assert_eq!(codec_fix(&pcmu, &pcmu, &both, &both), Some(CodecFix::None));
        // The first phone offered PCMA too: it is moved to the second's PCMA.
        assert_eq!(codec_fix(&pcmu, &both, &pcma, &pcma), Some(CodecFix::First));
        // Only the second knows both.
        assert_eq!(
            codec_fix(&pcmu, &pcmu, &pcma, &both),
            Some(CodecFix::Second)
        );
        // Neither takes the other's: refused.
        assert_eq!(codec_fix(&pcmu, &pcmu, &pcma, &pcma), None);
        assert_eq!(codec_fix(&opus, &opus, &pcma, &both), None);
        // No audio on a side: nothing to agree on.
        let video = Sdp::parse(
            b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n",
        )
        .unwrap();
        assert_eq!(
            codec_fix(&video, &video, &pcma, &pcma),
            Some(CodecFix::None)
        );
    }
}
