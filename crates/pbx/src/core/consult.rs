//! Attended transfer by in-call keys: `*2` + number (`[features] in_call`).
//!
//! In a bridged call A↔B, B (the transferor) presses `*2` and a number. The PBX has no second
//! dialog with B to consult on, so it consults on the one B already has: B's side of the
//! call's audio stream is moved into a new relay stream of its own
//! ([`crate::media::MediaStream::exchange_side`], so B keeps the port it sends to), A's side is
//! lent to the engine for music on hold ([`super::hold`]), and the target C is INVITEd from
//! the PBX, as from B, on the new stream's other side. Once C answers, B and C talk.
//!
//! - B hangs up while talking to C: C's side is exchanged into the call in B's place, A's
//!   music stops and A and C talk, through the relay ports they already use. The call's B
//!   side *becomes* C (dialog, peer, extension) as in [`super::attended`], and its CDR shows
//!   the attended transfer by B.
//! - B hangs up while C still rings: as FreePBX does, the transfer goes on blind: A keeps its
//!   music until C answers and is joined then; if C does not answer, A is hung up.
//! - C rejects, is busy, does not answer in [`RING_LIMIT`], or hangs up during the
//!   consultation: B's side goes back into the call and A's music stops: A and B talk again.
//! - A hangs up: the call ends as any call does, and C is CANCELled or sent a BYE.
//!
//! Only the first audio stream is consulted on (other m= lines are offered to C disabled).

use std::time::{Duration, Instant};

use bytes::Bytes;
use kentongan_sip::dialog::Dialog;
use kentongan_sip::sdp::Sdp;
use kentongan_sip::transaction::TxId;
use kentongan_sip::{HeaderName, Message, Method, Request, Response, StatusCode};
use tracing::{debug, info, warn};

use super::calls::{media_target, CallKey, Side};
use super::transfer::side_sdp;
use super::{Clock, Extension, Pbx, TxUse};
use crate::media::{MediaKind, MediaStream, StreamSide};
use crate::store::{Cdr, TransferCdr, Write};

/// How long the target may ring before the transferor gets the held party back.
pub(super) const RING_LIMIT: Duration = Duration::from_secs(30);

/// A consultation under way in a call (`Call::consult`).
#[derive(Debug)]
pub(super) struct Consult {
    /// The transferor's side of the call.
    by: Side,
    transferor: Extension,
    target: Extension,
    /// For the consultation's own CDR row.
    call_id: String,
    start_ms: i64,
    answer_ms: Option<i64>,
    /// The call's audio stream (m= index) whose transferor side was moved.
    stream: usize,
    /// Caller side: the transferor's sockets, moved out of the call; callee side: the
    /// target's.
    media: MediaStream,
    /// Our INVITE to the target, while it is not answered.
    invite: Request,
    invite_tx: TxId,
    peer: std::net::SocketAddr,
    ring_deadline: Instant,
    /// The target's dialog and SDP once it answered.
    dialog: Option<Dialog>,
    answer: Option<Bytes>,
    /// The transferor hung up while the target rang: join the target on answer.
    by_left: bool,
}

impl Pbx {
    /// `*2` + `number` pressed on `side` of call `key`.
    pub(super) fn consult_by_keys(&mut self, clock: Clock, key: CallKey, by: Side, number: &str) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if !call.answered()
            || call.transfer.is_some()
            || call.reinvite.is_some()
            || call.consult.is_some()
            || call.hold.is_some()
            || call.parked.is_some()
            || self.is_recorded(key)
        {
            info!(
                call = key,
                "attended transfer by keys ignored: the call is busy with another change"
            );
            return;
        }
        let Some((target, contact)) =
            self.keyed_transfer_target(clock, key, number, "attended transfer by keys")
        else {
            return;
        };
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        // The held party's media: what the target must accept, since it ends up there.
        let Some(mut offer) = side_sdp(call, by.other()) else {
            return;
        };
        let held_sdp = offer.to_bytes();
        let Some(stream) = offer
            .media
            .iter()
            .position(|m| m.kind == "audio" && m.port != 0)
        else {
            return;
        };
        let transferor = match by {
            Side::Caller => call.caller.clone(),
            Side::Callee => call.callee.clone(),
        };
        let by_v6 = call.peer(by).is_some_and(|p| p.is_ipv6());
        let mut media = match self
            .relay
            .allocate(MediaKind::Audio, by_v6, contact.source.is_ipv6())
        {
            Ok(m) => m,
            Err(e) => {
                warn!(call = key, error = %e, "attended transfer by keys: no relay ports; check [rtp] ports");
                return;
            }
        };
        for (i, m) in offer.media.iter_mut().enumerate() {
            if i != stream {
                m.port = 0;
            }
        }
        let ports: Vec<u16> = (0..offer.media.len())
            .map(|i| if i == stream { media.callee_port } else { 0 })
            .collect();
        let ip = self.local_ip(contact.source);
        offer.rewrite_for_relay(ip, &ports);
        let invite = self.invite_to(&contact, &transferor, &target, &offer, None);
        let invite_tx = match self
            .ep
            .send_request(clock.now, contact.source, invite.clone())
        {
            Ok(tx) => tx,
            Err(e) => {
                warn!(call = key, error = %e, "attended transfer by keys: INVITE not sent");
                self.relay.release(media);
                return;
            }
        };
        let moved = self
            .calls
            .get_mut(&key)
            .and_then(|c| c.media.get_mut(stream)?.as_mut())
            .map(|m| m.exchange_side(by.stream(), &mut media, StreamSide::Caller));
        if !matches!(moved, Some(Ok(()))) {
            warn!(call = key, result = ?moved, "attended transfer by keys: the transferor's media could not be moved");
            self.client_txs.insert(
                invite_tx,
                TxUse::Orphan {
                    request: Box::new(invite),
                    peer: contact.source,
                },
            );
            if let Ok(ctx) = self.ep.cancel(clock.now, invite_tx) {
                self.client_txs.insert(ctx, TxUse::Other);
            }
            self.relay.release(media);
            return;
        }
        self.client_txs
            .insert(invite_tx, TxUse::Consult { call: key });
        info!(call = key, %target, "attended transfer by keys: calling the target, the other party on hold");
        if let Some(c) = self.calls.get_mut(&key) {
            c.consult = Some(Consult {
                by,
                call_id: invite
                    .headers
                    .call_id()
                    .map(str::to_owned)
                    .unwrap_or_default(),
                transferor,
                start_ms: clock.unix_ms,
                answer_ms: None,
                target,
                stream,
                media,
                invite,
                invite_tx,
                peer: contact.source,
                ring_deadline: clock.now + RING_LIMIT,
                dialog: None,
                answer: None,
                by_left: false,
            });
        }
        self.start_hold(key, by, &held_sdp);
    }

    /// The target's answer to the consultation INVITE.
    pub(super) fn on_consult_response(
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
        let Some(c) = self.calls.get_mut(&key).and_then(|c| c.consult.as_mut()) else {
            return;
        };
        if !resp.status.is_success() {
            info!(
                call = key,
                status = resp.status.0,
                "attended transfer by keys: the target did not answer; back to the held party"
            );
            return self.consult_failed(clock, key, Some(resp.status.0));
        }
        let Ok(dialog) = Dialog::uac(&c.invite, &resp) else {
            return self.consult_failed(clock, key, Some(502));
        };
        let mut ack = dialog.ack(1);
        let peer = c.peer;
        if let Some(target) = Sdp::parse(&resp.body)
            .ok()
            .and_then(|s| media_target(&s, c.stream))
        {
            c.media.set_targets(|t| t.callee = Some(target));
        }
        c.answer = (!resp.body.is_empty()).then(|| Bytes::copy_from_slice(&resp.body));
        c.answer_ms = Some(clock.unix_ms);
        c.dialog = Some(dialog);
        let by_left = c.by_left;
        self.add_via(&mut ack, peer);
        ack.headers.set(HeaderName::ContentLength, "0");
        self.ep.send_stateless(peer, &Message::Request(ack));
        info!(
            call = key,
            "attended transfer by keys: the target answered; consulting"
        );
        if by_left {
            self.complete_consult(clock, key);
        }
    }

    /// Our INVITE to the target got no answer at all.
    pub(super) fn on_consult_timeout(&mut self, clock: Clock, key: CallKey) {
        if self.calls.get(&key).is_some_and(|c| c.consult.is_some()) {
            self.consult_failed(clock, key, Some(408));
        }
    }

    /// A BYE (answered with 200 already) from `side` of call `key`: `true` if the
    /// consultation took it, so the call goes on.
    pub(super) fn consult_bye(&mut self, clock: Clock, key: CallKey, side: Side) -> bool {
        let Some(call) = self.calls.get_mut(&key) else {
            return false;
        };
        let Some(c) = call.consult.as_mut().filter(|c| c.by == side) else {
            return false;
        };
        if c.dialog.is_some() {
            self.complete_consult(clock, key);
        } else {
            c.by_left = true;
            info!(
                call = key,
                "attended transfer by keys: the transferor left while the target rings; joining on answer"
            );
            // Gone: nothing may be sent to it any more.
            match side {
                Side::Caller => call.caller_dialog = None,
                Side::Callee => call.callee_dialog = None,
            }
        }
        true
    }

    /// The target's side takes the transferor's place in the call.
    fn complete_consult(&mut self, clock: Clock, key: CallKey) {
        let Some(mut c) = self.calls.get_mut(&key).and_then(|c| c.consult.take()) else {
            return;
        };
        let Some(dialog) = c.dialog.take() else {
            return;
        };
        let by = c.by;
        self.consult_cdr(clock, &c, true, None);
        let joined = self
            .calls
            .get_mut(&key)
            .and_then(|call| call.media.get_mut(c.stream)?.as_mut())
            .map(|m| m.exchange_side(by.stream(), &mut c.media, StreamSide::Callee));
        if !matches!(joined, Some(Ok(()))) {
            warn!(call = key, result = ?joined, "attended transfer by keys: the target's media could not be joined; hanging up");
            self.send_dialog_bye(clock, dialog, c.peer);
            self.relay.release(c.media);
            self.send_bye(clock, key, by.other());
            self.end_call(clock, key, "answered");
            return;
        }
        self.relay.release(c.media);
        self.end_hold(key);
        self.transfer_segment_cdr(clock, key, by, "attended");
        let new_call_id = dialog.id.call_id.clone();
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let old_call_id = match by {
            // A transferor that left while the target rang has no dialog any more.
            Side::Caller => call
                .caller_dialog
                .as_ref()
                .map_or_else(|| call.call_id.clone(), |d| d.id.call_id.clone()),
            Side::Callee => call.b_call_id.clone(),
        };
        match by {
            Side::Caller => {
                call.caller = c.target.clone();
                call.caller_dialog = Some(dialog);
                call.caller_peer = c.peer;
                call.session_expires = None;
                call.session_deadline = None;
                if let Some(sdp) = c.answer.as_deref().and_then(|b| Sdp::parse(b).ok()) {
                    call.offer = Some(sdp);
                }
            }
            Side::Callee => {
                call.callee = c.target.clone();
                call.callee_dialog = Some(dialog);
                call.callee_peer = Some(c.peer);
                call.b_call_id = new_call_id.clone();
                if let Some(b) = c.answer {
                    call.callee_sdp = Some(b);
                }
            }
        }
        call.pending_2xx = None;
        if self
            .by_call_id
            .get(&old_call_id)
            .is_some_and(|(k, _)| *k == key)
        {
            self.by_call_id.remove(&old_call_id);
        }
        self.by_call_id.insert(new_call_id, (key, by));
        info!(call = key, target = %c.target, "attended transfer by keys done");
        self.show_answered(key);
        self.watch_in_call(key);
    }

    /// The target is not there (or left): the transferor gets the held party back, or, if it
    /// has gone too, the held party is hung up.
    fn consult_failed(&mut self, clock: Clock, key: CallKey, status: Option<u16>) {
        let Some(mut c) = self.calls.get_mut(&key).and_then(|c| c.consult.take()) else {
            return;
        };
        self.consult_cdr(clock, &c, false, status);
        let back = self
            .calls
            .get_mut(&key)
            .and_then(|call| call.media.get_mut(c.stream)?.as_mut())
            .map(|m| m.exchange_side(c.by.stream(), &mut c.media, StreamSide::Caller));
        if let Some(d) = c.dialog.take() {
            self.send_dialog_bye(clock, d, c.peer);
        }
        self.relay.release(c.media);
        self.end_hold(key);
        if c.by_left || !matches!(back, Some(Ok(()))) {
            info!(
                call = key,
                "attended transfer by keys failed and the transferor is gone; hanging up"
            );
            self.send_bye(clock, key, c.by.other());
            self.send_bye(clock, key, c.by);
            self.end_call(clock, key, "answered");
            return;
        }
        info!(
            call = key,
            "attended transfer by keys: back to the held party"
        );
    }

    /// Call `key` is ending: the target is CANCELled or hung up, the consultation's relay
    /// ports go.
    pub(super) fn end_consult(&mut self, clock: Clock, key: CallKey) {
        let Some(mut c) = self.calls.get_mut(&key).and_then(|c| c.consult.take()) else {
            return;
        };
        self.consult_cdr(clock, &c, false, Some(487));
        match c.dialog.take() {
            Some(d) => self.send_dialog_bye(clock, d, c.peer),
            None => {
                self.client_txs.insert(
                    c.invite_tx,
                    TxUse::Orphan {
                        request: Box::new(c.invite.clone()),
                        peer: c.peer,
                    },
                );
                match self.ep.cancel(clock.now, c.invite_tx) {
                    Ok(ctx) => {
                        self.client_txs.insert(ctx, TxUse::Other);
                    }
                    Err(e) => debug!(error = %e, "CANCEL to the consulted target not sent"),
                }
            }
        }
        self.relay.release(c.media);
    }

    /// The consultation's CDR row, transferor to target; `joined`: it ended in the transfer.
    fn consult_cdr(&mut self, clock: Clock, c: &Consult, joined: bool, failure: Option<u16>) {
        let disposition = match (c.answer_ms, failure) {
            (Some(_), _) => "answered",
            (None, Some(486 | 600)) => "busy",
            (None, Some(408 | 480 | 487) | None) => "no-answer",
            (None, Some(_)) => "failed",
        };
        self.writes.push(Write::Cdr(Cdr {
            caller_name: String::new(),
            call_id: c.call_id.clone(),
            caller: c.transferor.0.clone(),
            callee: c.target.0.clone(),
            start_ms: c.start_ms,
            answer_ms: c.answer_ms,
            end_ms: clock.unix_ms,
            duration_s: c
                .answer_ms
                .map_or(0.0, |a| (clock.unix_ms - a).max(0) as f64 / 1000.0),
            disposition: disposition.into(),
            outbound: None,
            transfer: joined.then(|| TransferCdr {
                transferred_by: c.transferor.0.clone(),
                transfer_kind: "attended".into(),
            }),
        }));
    }

    fn send_dialog_bye(&mut self, clock: Clock, mut dialog: Dialog, peer: std::net::SocketAddr) {
        let bye = dialog.request(Method::Bye);
        self.send(clock, peer, bye, TxUse::Other);
    }

    /// An in-dialog request from a consulted target (no call's side yet): `true` if it was
    /// one. Its BYE ends the consultation; anything else is answered and ignored.
    pub(super) fn consult_request(&mut self, clock: Clock, tx: TxId, req: &Request) -> bool {
        let Ok(cid) = req.headers.call_id() else {
            return false;
        };
        let Some(key) = self.calls.iter().find_map(|(k, c)| {
            c.consult
                .as_ref()
                .and_then(|x| x.dialog.as_ref())
                .filter(|d| d.id.call_id == cid)
                .map(|_| *k)
        }) else {
            return false;
        };
        match req.method {
            Method::Bye => {
                self.reply(clock, tx, req, StatusCode::OK);
                info!(
                    call = key,
                    "attended transfer by keys: the target hung up; back to the held party"
                );
                if let Some(c) = self.calls.get_mut(&key).and_then(|c| c.consult.as_mut()) {
                    // It said goodbye itself: no BYE back.
                    c.dialog = None;
                }
                self.consult_failed(clock, key, None);
            }
            // A consultation is short: a re-INVITE (hold, codec change) is not taken.
            Method::Invite => self.reply(clock, tx, req, StatusCode(488)),
            _ => self.reply(clock, tx, req, StatusCode::OK),
        }
        true
    }

    /// Targets that rang too long.
    pub(super) fn consult_timeouts(&mut self, clock: Clock) {
        let due: Vec<CallKey> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                c.consult
                    .as_ref()
                    .is_some_and(|x| x.dialog.is_none() && x.ring_deadline <= clock.now)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            info!(
                call = key,
                "attended transfer by keys: the target did not answer in time"
            );
            if let Some((tx, invite, peer)) = self
                .calls
                .get(&key)
                .and_then(|c| c.consult.as_ref())
                .map(|c| (c.invite_tx, c.invite.clone(), c.peer))
            {
                self.client_txs.insert(
                    tx,
                    TxUse::Orphan {
                        request: Box::new(invite),
                        peer,
                    },
                );
                if let Ok(ctx) = self.ep.cancel(clock.now, tx) {
                    self.client_txs.insert(ctx, TxUse::Other);
                }
            }
            self.consult_failed(clock, key, Some(408));
        }
    }

    pub(super) fn consult_deadline(&self) -> Option<Instant> {
        self.calls
            .values()
            .filter_map(|c| c.consult.as_ref())
            .filter(|c| c.dialog.is_none())
            .map(|c| c.ring_deadline)
            .min()
    }
}
