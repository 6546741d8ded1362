//! B2BUA calls: an INVITE routed to an extension is forked to its contacts, the first 2xx
//! wins and is bridged to the caller through the relay, the CDR is written at the end.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kentongan_sip::dialog::Dialog;
use kentongan_sip::sdp::Sdp;
use kentongan_sip::transaction::TxId;
use kentongan_sip::{HeaderName, Message, Method, Request, Response, StatusCode};
use tracing::{debug, info, warn};

use super::{Clock, Pbx, TxUse, ALLOW, USER_AGENT};
use crate::media::{MediaKind, MediaStream};
use crate::routing::forwarding::{Ring, Visited};
use crate::routing::VoicemailGreeting;
use crate::store::{Cdr, Extension, LiveCall, TransferCdr, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Side {
    Caller,
    Callee,
}

impl Side {
    pub(super) fn other(self) -> Side {
        match self {
            Side::Caller => Side::Callee,
            Side::Callee => Side::Caller,
        }
    }

    /// The same side of a relayed stream.
    pub(super) fn stream(self) -> crate::media::StreamSide {
        match self {
            Side::Caller => crate::media::StreamSide::Caller,
            Side::Callee => crate::media::StreamSide::Callee,
        }
    }
}

pub(super) type CallKey = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ForkState {
    Pending,
    Done,
}

#[derive(Debug)]
pub(super) struct Fork {
    pub(super) tx: TxId,
    pub(super) peer: SocketAddr,
    pub(super) request: Request,
    pub(super) state: ForkState,
}

/// A 2xx to an INVITE we keep resending until its ACK (RFC 3261 §13.3.1.4, RFC 6026).
#[derive(Debug)]
pub(super) struct Pending2xx {
    pub(super) side: Side,
    pub(super) msg: Message,
    pub(super) to: SocketAddr,
    pub(super) next: Instant,
    pub(super) interval: Duration,
    pub(super) deadline: Instant,
}

/// What to do with a pending 2xx now.
pub(super) enum Resend {
    Wait,
    Send,
    /// 64·T1 without an ACK: the dialog is dead (RFC 3261 §13.3.1.4).
    GiveUp,
}

impl Pending2xx {
    const T1: Duration = Duration::from_millis(500);

    pub(super) fn new(side: Side, msg: Message, to: SocketAddr, now: Instant) -> Pending2xx {
        Pending2xx {
            side,
            msg,
            to,
            next: now + Self::T1,
            interval: Self::T1,
            deadline: now + Self::T1 * 64,
        }
    }

    /// Doubles the interval (up to T2, 4 s) each time it says [`Resend::Send`].
    pub(super) fn poll(&mut self, now: Instant) -> Resend {
        if self.next > now {
            return Resend::Wait;
        }
        if now >= self.deadline {
            return Resend::GiveUp;
        }
        self.interval = (self.interval * 2).min(Duration::from_secs(4));
        self.next = now + self.interval;
        Resend::Send
    }
}

#[derive(Debug)]
pub(super) struct ReInvite {
    /// The side that sent the re-INVITE to us.
    pub(super) from: Side,
    pub(super) server_tx: TxId,
    pub(super) request: Request,
}

#[derive(Debug)]
pub(super) struct Call {
    pub(super) call_id: String,
    pub(super) caller: Extension,
    pub(super) callee: Extension,
    pub(super) start_ms: i64,
    pub(super) answer_ms: Option<i64>,
    pub(super) caller_peer: SocketAddr,
    pub(super) caller_invite: Request,
    pub(super) caller_tx: TxId,
    pub(super) our_tag: String,
    pub(super) caller_dialog: Option<Dialog>,
    pub(super) b_call_id: String,
    pub(super) forks: Vec<Fork>,
    pub(super) callee_dialog: Option<Dialog>,
    pub(super) callee_peer: Option<SocketAddr>,
    pub(super) media: Vec<Option<MediaStream>>,
    pub(super) best_failure: Option<StatusCode>,
    pub(super) pending_2xx: Option<Pending2xx>,
    pub(super) reinvite: Option<ReInvite>,
    /// On hold: the held side hears music from the engine.
    pub(super) hold: Option<super::hold::Hold>,
    /// A blind transfer under way (REFER accepted, the target being called).
    pub(super) transfer: Option<super::transfer::Transfer>,
    /// The callee's answer SDP as it sent it (what a transfer target is offered).
    pub(super) callee_sdp: Option<Bytes>,
    /// RFC 4028: the interval the caller refreshes in (it is the refresher), and when the call
    /// is torn down if no refresh (re-INVITE or UPDATE) arrived.
    pub(super) session_expires: Option<u32>,
    pub(super) session_deadline: Option<Instant>,
    /// Unanswered by then: the forks are cancelled and the caller gets 480 (no answer).
    pub(super) ring_deadline: Instant,
    /// The caller's offer and our From header, for the INVITEs to each extension rung.
    pub(super) offer: Option<Sdp>,
    pub(super) from_hdr: String,
    /// Every extension the call has been at (forwarding's loop detection).
    pub(super) visited: Visited,
    /// Where the call goes if the ringing extension answers busy.
    pub(super) on_busy: Option<Extension>,
    /// Where it goes if nobody answers by the instant given.
    pub(super) on_no_answer: Option<(Instant, Extension)>,
    /// A call out through a trunk: its routes and the one being tried.
    pub(super) trunk: Option<super::trunk_calls::TrunkLeg>,
    /// A call in through a trunk: which one, and the DID it called.
    pub(super) inbound: Option<super::inbound::InboundLeg>,
    /// Voicemail is on for the extension ringing: a busy answer without a busy forward goes
    /// to its mailbox.
    pub(super) voicemail: bool,
    /// Unanswered by then (and no no-answer forward), the call goes to the mailbox.
    pub(super) voicemail_at: Option<Instant>,
    /// A ring group ringing its members for this call (until one answers).
    pub(super) group: Option<super::ring_groups::GroupRing>,
    /// Our 2xx to a phone that picked the call up, resent until its ACK (the caller's 200
    /// is in `pending_2xx` at the same time).
    pub(super) pickup_2xx: Option<Pending2xx>,
    /// Parked in a slot: the parker's side is empty until someone retrieves it.
    pub(super) parked: Option<super::parking::Parked>,
    /// Who transferred the call (or, for a consultation call, whose transfer ended it), for
    /// its CDR.
    pub(super) transferred: Option<TransferCdr>,
    /// A `*2` consultation under way: the transferor talks to the target.
    pub(super) consult: Option<super::consult::Consult>,
}

impl Call {
    pub(super) fn answered(&self) -> bool {
        self.answer_ms.is_some()
    }
    pub(super) fn dialog(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::Caller => self.caller_dialog.as_mut(),
            Side::Callee => self.callee_dialog.as_mut(),
        }
    }
    pub(super) fn peer(&self, side: Side) -> Option<SocketAddr> {
        match side {
            Side::Caller => Some(self.caller_peer),
            Side::Callee => self.callee_peer,
        }
    }
}

impl Pbx {
    /// Rings `ring.ext`'s registered phones for a caller's INVITE and bridges the first to
    /// answer; `visited` is where forwarding has taken the call so far.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn bridge_to_extension(
        &mut self,
        clock: Clock,
        tx: TxId,
        from: SocketAddr,
        req: Request,
        caller: Extension,
        ring: Ring,
        visited: Visited,
    ) {
        let callee = ring.ext.clone();
        let call_id = req.headers.call_id().unwrap_or("").to_owned();
        self.metrics.calls_total.fetch_add(1, Ordering::Relaxed);
        let contacts = self.registry.contacts(&callee, clock.unix_s());
        if contacts.is_empty() {
            self.reply(clock, tx, &req, StatusCode::TEMPORARILY_UNAVAILABLE);
            self.writes.push(Write::Cdr(Cdr {
                caller_name: caller_display_name(&req),
                ..Cdr::refused(call_id, caller.0, callee.0, clock.unix_ms, "unavailable")
            }));
            return;
        }
        let callee_v6 = contacts[0].source.is_ipv6();
        let Some(key) = self.start_call(clock, tx, from, req, caller, callee, callee_v6, visited)
        else {
            return;
        };
        self.fork_to(clock, key, ring);
    }

    /// Sets up a call for a caller's INVITE: relayed media for each m= line of the offer and
    /// the call's state, with nothing sent to the callee side yet. `None`: refused (answered).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_call(
        &mut self,
        clock: Clock,
        tx: TxId,
        from: SocketAddr,
        req: Request,
        caller: Extension,
        callee: Extension,
        callee_v6: bool,
        visited: Visited,
    ) -> Option<CallKey> {
        let call_id = req.headers.call_id().unwrap_or("").to_owned();
        // Media: one relayed stream per m= line of the offer.
        let offer = if req.body.is_empty() {
            None
        } else {
            match Sdp::parse(&req.body) {
                Ok(s) => Some(s),
                Err(_) => {
                    self.reply(clock, tx, &req, StatusCode::NOT_ACCEPTABLE_HERE);
                    return None;
                }
            }
        };
        let mut media = Vec::new();
        if let Some(offer) = &offer {
            for (i, m) in offer.media.iter().enumerate() {
                if m.port == 0 {
                    media.push(None);
                    continue;
                }
                let kind = MediaKind::from_sdp(&m.kind);
                match self.relay.allocate(kind, from.is_ipv6(), callee_v6) {
                    Ok(s) => {
                        let target = media_target(offer, i);
                        s.set_targets(|t| t.caller = target);
                        media.push(Some(s));
                    }
                    Err(e) => {
                        warn!(error = %e, "no relay ports for a call");
                        for s in media.into_iter().flatten() {
                            self.relay.release(s);
                        }
                        self.reply(clock, tx, &req, StatusCode::SERVICE_UNAVAILABLE);
                        return None;
                    }
                }
            }
        }
        let key = self.next_call;
        self.next_call += 1;
        let b_tag = self.ep.new_tag();
        let display = self
            .store
            .user_name(&caller)
            .ok()
            .flatten()
            .filter(|n| !n.is_empty());
        let domain = self.config.domain.clone();
        let mut from_hdr = format!("<sip:{caller}@{domain}>;tag={b_tag}");
        if let Some(name) = display {
            from_hdr = format!("\"{}\" {from_hdr}", name.replace(['"', '\\'], ""));
        }
        let call = Call {
            call_id: call_id.clone(),
            caller: caller.clone(),
            callee: callee.clone(),
            start_ms: clock.unix_ms,
            answer_ms: None,
            caller_peer: from,
            caller_invite: req.clone(),
            caller_tx: tx,
            our_tag: self.ep.new_tag(),
            caller_dialog: None,
            b_call_id: String::new(),
            forks: Vec::new(),
            callee_dialog: None,
            callee_peer: None,
            media,
            best_failure: None,
            pending_2xx: None,
            reinvite: None,
            hold: None,
            transfer: None,
            callee_sdp: None,
            session_expires: session_expires(&req),
            session_deadline: None,
            ring_deadline: clock.now + self.config.no_answer,
            offer,
            from_hdr,
            visited,
            on_busy: None,
            on_no_answer: None,
            trunk: None,
            inbound: None,
            voicemail: false,
            voicemail_at: None,
            group: None,
            pickup_2xx: None,
            parked: None,
            transferred: None,
            consult: None,
        };
        self.by_call_id.insert(call_id, (key, Side::Caller));
        self.server_invites.insert(tx, key);
        self.calls.insert(key, call);
        Some(key)
    }

    /// Sends the call's INVITE to every registered phone of `ring.ext` (the extension dialled,
    /// or where a forward took the call), with a fresh Call-ID for the callee leg.
    pub(super) fn fork_to(&mut self, clock: Clock, key: CallKey, ring: Ring) {
        let callee = ring.ext;
        let contacts = self.registry.contacts(&callee, clock.unix_s());
        let b_call_id = self.ep.new_call_id();
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let old = std::mem::replace(&mut call.b_call_id, b_call_id.clone());
        call.callee = callee.clone();
        call.forks.clear();
        call.best_failure = None;
        call.ring_deadline = clock.now + self.config.no_answer;
        call.on_busy = ring.on_busy;
        call.on_no_answer = ring.on_no_answer.map(|(after, to)| (clock.now + after, to));
        call.voicemail = ring.voicemail_after.is_some();
        call.voicemail_at = ring
            .voicemail_after
            .filter(|_| call.on_no_answer.is_none())
            .map(|after| clock.now + after);
        self.by_call_id.remove(&old);
        self.by_call_id
            .insert(b_call_id.clone(), (key, Side::Callee));
        let forks = self.send_forks(clock, key, &callee, &contacts);
        let n = forks.len();
        if let Some(call) = self.calls.get_mut(&key) {
            call.forks = forks;
            info!(caller = %call.caller, %callee, forks = n, "call ringing");
            // `calls` shows the extension ringing now (a forward's target after a forward).
            self.writes.push(Write::LiveCall(LiveCall {
                call_id: call.call_id.clone(),
                caller: call.caller.0.clone(),
                callee: callee.0.clone(),
                start_ms: call.start_ms,
                answer_ms: None,
                state: "ringing".into(),
            }));
        }
        self.update_gauges();
        if n == 0 {
            self.fail_caller(clock, key, StatusCode::TEMPORARILY_UNAVAILABLE);
            self.end_call(clock, key, "unavailable");
        }
    }

    /// Sends the call's INVITE (under its callee Call-ID) to each of `callee`'s `contacts`.
    pub(super) fn send_forks(
        &mut self,
        clock: Clock,
        key: CallKey,
        callee: &Extension,
        contacts: &[super::Contact],
    ) -> Vec<Fork> {
        let domain = self.config.domain.clone();
        let Some(call) = self.calls.get(&key) else {
            return Vec::new();
        };
        let (offer, from_hdr) = (call.offer.clone(), call.from_hdr.clone());
        let b_call_id = call.b_call_id.clone();
        let ports: Vec<u16> = call
            .media
            .iter()
            .map(|m| m.as_ref().map_or(0, |s| s.callee_port))
            .collect();
        let mut forks = Vec::new();
        for c in contacts {
            let contact = self.our_contact(c.source);
            let mut inv = super::dialogs::new_invite(
                c.uri.clone(),
                &from_hdr,
                format!("<sip:{callee}@{domain}>"),
                &b_call_id,
                contact,
            );
            if let Some(offer) = &offer {
                let mut sdp = offer.clone();
                let ip = self.local_ip(c.source);
                sdp.rewrite_for_relay(ip, &ports);
                inv.set_body("application/sdp", sdp.to_bytes());
            }
            let mut sent = inv.clone();
            self.add_via(&mut sent, c.source);
            sent.headers.set(HeaderName::MaxForwards, "70");
            sent.headers.push(HeaderName::UserAgent, USER_AGENT);
            match self.ep.send_request(clock.now, c.source, sent.clone()) {
                Ok(ftx) => {
                    self.client_txs.insert(ftx, TxUse::Fork { call: key });
                    forks.push(Fork {
                        tx: ftx,
                        peer: c.source,
                        request: sent,
                        state: ForkState::Pending,
                    });
                }
                Err(e) => warn!(error = %e, "fork not sent"),
            }
        }
        forks
    }

    /// The SDP rewritten for `side` (the side that will receive it).
    pub(super) fn sdp_for(
        &mut self,
        key: CallKey,
        body: &[u8],
        to: Side,
        peer: SocketAddr,
    ) -> Option<Bytes> {
        let mut sdp = Sdp::parse(body).ok()?;
        let ip = self.local_ip(peer);
        let call = self.calls.get(&key)?;
        // Record where the sending side wants media (SDP); latching may refine it.
        let from = to.other();
        for (i, m) in call.media.iter().enumerate() {
            if let Some(s) = m {
                let target = media_target(&sdp, i);
                if target.is_some() {
                    s.set_targets(|t| match from {
                        Side::Caller => t.caller = target,
                        Side::Callee => t.callee = target,
                    });
                }
            }
        }
        let ports: Vec<u16> = call
            .media
            .iter()
            .map(|m| {
                m.as_ref().map_or(0, |s| match to {
                    Side::Caller => s.caller_port,
                    Side::Callee => s.callee_port,
                })
            })
            .collect();
        sdp.rewrite_for_relay(ip, &ports);
        Some(Bytes::from(sdp.to_bytes()))
    }

    pub(super) fn ack_and_bye(
        &mut self,
        clock: Clock,
        request: &Request,
        resp: &Response,
        peer: SocketAddr,
    ) {
        if let Ok(mut d) = Dialog::uac(request, resp) {
            let seq = request.headers.cseq().map(|c| c.seq).unwrap_or(1);
            let mut ack = d.ack(seq);
            self.add_via(&mut ack, peer);
            ack.headers.set(HeaderName::ContentLength, "0");
            self.ep.send_stateless(peer, &Message::Request(ack));
            let bye = d.request(Method::Bye);
            self.send(clock, peer, bye, TxUse::Other);
        }
    }

    pub(super) fn on_fork_response(
        &mut self,
        clock: Clock,
        key: CallKey,
        tx: TxId,
        resp: Response,
    ) {
        if self.calls.get(&key).is_some_and(|c| c.trunk.is_some())
            && self.on_trunk_response(clock, key, tx, &resp)
        {
            return;
        }
        let status = resp.status;
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(fi) = call.forks.iter().position(|f| f.tx == tx) else {
            return;
        };
        let peer = call.forks[fi].peer;
        if status.is_provisional() {
            if status.0 == 100 || call.answered() {
                return;
            }
            let a_req = call.caller_invite.clone();
            let a_tx = call.caller_tx;
            let a_peer = call.caller_peer;
            let tag = call.our_tag.clone();
            let mut r = Response::for_request(&a_req, status, Some(&tag));
            r.reason = resp.reason.clone();
            let contact = self.our_contact(a_peer);
            r.headers.push(HeaderName::Contact, contact);
            if !resp.body.is_empty() {
                if let Some(body) = self.sdp_for(key, &resp.body, Side::Caller, a_peer) {
                    r.set_body("application/sdp", body);
                }
            }
            self.respond(clock, a_tx, r);
            return;
        }
        if status.is_success() {
            if call.answered() || call.forks[fi].state == ForkState::Done {
                // Another fork won, or a 2xx retransmission: ACK (and BYE a loser).
                let request = call.forks[fi].request.clone();
                let winner = call.callee_peer == Some(peer)
                    && call.callee_dialog.as_ref().is_some_and(|d| {
                        resp.headers
                            .to()
                            .ok()
                            .and_then(|t| t.tag().map(str::to_owned))
                            .as_deref()
                            == Some(d.id.remote_tag.as_str())
                    });
                let seq = request.headers.cseq().map(|c| c.seq).unwrap_or(1);
                let ack = call.callee_dialog.as_ref().map(|d| d.ack(seq));
                if winner {
                    if let Some(mut ack) = ack {
                        self.add_via(&mut ack, peer);
                        ack.headers.set(HeaderName::ContentLength, "0");
                        self.ep.send_stateless(peer, &Message::Request(ack));
                    }
                } else {
                    self.ack_and_bye(clock, &request, &resp, peer);
                }
                return;
            }
            call.forks[fi].state = ForkState::Done;
            if let Some(member) = call.group.take().and_then(|g| g.member(tx).cloned()) {
                call.callee = member;
            }
            let request = call.forks[fi].request.clone();
            let Ok(dialog) = Dialog::uac(&request, &resp) else {
                warn!("callee 2xx without a usable dialog; hanging up");
                self.ack_and_bye(clock, &request, &resp, peer);
                return;
            };
            // An INVITE sent again with credentials has a higher CSeq; its ACK carries the same.
            let seq = request.headers.cseq().map(|c| c.seq).unwrap_or(1);
            let mut ack = dialog.ack(seq);
            call.callee_dialog = Some(dialog);
            call.callee_peer = Some(peer);
            call.answer_ms = Some(clock.unix_ms);
            self.add_via(&mut ack, peer);
            ack.headers.set(HeaderName::ContentLength, "0");
            self.ep.send_stateless(peer, &Message::Request(ack));
            self.cancel_forks(clock, key);
            self.answer_caller(clock, key, &resp.body);
            info!(call = key, "call answered");
            self.start_call_recording(key);
            return;
        }
        // A failure from this fork.
        call.forks[fi].state = ForkState::Done;
        let rank = |s: StatusCode| match s.0 {
            486 | 600 => 0,
            603 => 1,
            480 => 3,
            _ => 2,
        };
        if call.best_failure.map_or(true, |b| rank(status) < rank(b)) {
            call.best_failure = Some(status);
        }
        if call.group.is_some() && !call.answered() {
            self.group_fork_failed(clock, key, tx);
            return;
        }
        if call.answered() || call.forks.iter().any(|f| f.state == ForkState::Pending) {
            return;
        }
        let final_status = call
            .best_failure
            .unwrap_or(StatusCode::TEMPORARILY_UNAVAILABLE);
        if matches!(final_status.0, 486 | 600) {
            if let Some(next) = call.on_busy.take() {
                info!(call = key, to = %next, "busy; forwarding");
                self.forward_call(clock, key, next);
                return;
            }
        }
        if call.voicemail {
            // Every phone refused: busy or declined hear the busy greeting, the rest (480,
            // 408, errors) the unavailable one.
            let greeting = match final_status.0 {
                486 | 600 | 603 => VoicemailGreeting::Busy,
                _ => VoicemailGreeting::Unavailable,
            };
            let mailbox = call.callee.clone();
            self.call_to_voicemail(clock, key, mailbox, greeting);
            return;
        }
        self.fail_caller(clock, key, final_status);
        let disposition = match final_status.0 {
            486 | 600 => "busy",
            603 => "declined",
            408 | 480 => "unavailable",
            _ => "failed",
        };
        self.end_call(clock, key, disposition);
    }

    /// The callee side answered with `body` (its SDP): our 200 to the caller, resent until
    /// its ACK, and the call shown as answered.
    pub(super) fn answer_caller(&mut self, clock: Clock, key: CallKey, body: &[u8]) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let a_req = call.caller_invite.clone();
        let a_tx = call.caller_tx;
        let a_peer = call.caller_peer;
        let tag = call.our_tag.clone();
        let (call_id, caller, callee, start_ms) = (
            call.call_id.clone(),
            call.caller.0.clone(),
            call.callee.0.clone(),
            call.start_ms,
        );
        let mut r = Response::for_request(&a_req, StatusCode::OK, Some(&tag));
        let contact = self.our_contact(a_peer);
        r.headers.push(HeaderName::Contact, contact);
        r.headers.push(HeaderName::Allow, ALLOW);
        if let Some(c) = self.calls.get_mut(&key) {
            if let Some(se) = c.session_expires {
                r.headers
                    .push(HeaderName::SessionExpires, format!("{se};refresher=uac"));
                r.headers.push(HeaderName::Require, "timer");
                c.session_deadline = Some(clock.now + Duration::from_secs(u64::from(se)));
            }
        }
        if let Some(body) = self.sdp_for(key, body, Side::Caller, a_peer) {
            r.set_body("application/sdp", body);
        }
        if let Some(c) = self.calls.get_mut(&key) {
            if !body.is_empty() {
                c.callee_sdp = Some(Bytes::copy_from_slice(body));
            }
        }
        r.headers.push(HeaderName::Server, USER_AGENT);
        if r.body.is_empty() {
            r.headers.set(HeaderName::ContentLength, "0");
        }
        let bytes = Message::Response(r.clone());
        if let Ok(d) = Dialog::uas(&a_req, &r) {
            if let Some(c) = self.calls.get_mut(&key) {
                c.caller_dialog = Some(d);
            }
        }
        if let Err(e) = self.ep.respond(clock.now, a_tx, r) {
            debug!(error = %e, "200 to caller not sent");
        }
        self.start_2xx(clock, key, Side::Caller, bytes, a_peer);
        self.watch_in_call(key);
        self.writes.push(Write::LiveCall(LiveCall {
            call_id,
            caller,
            callee,
            start_ms,
            answer_ms: Some(clock.unix_ms),
            state: "answered".into(),
        }));
    }

    pub(super) fn fail_caller(&mut self, clock: Clock, key: CallKey, status: StatusCode) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let r = Response::for_request(&call.caller_invite, status, Some(&call.our_tag));
        let tx = call.caller_tx;
        self.respond(clock, tx, r);
    }

    /// CANCELs every fork still pending; their late answers are handled as orphans.
    pub(super) fn cancel_forks(&mut self, clock: Clock, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let pending: Vec<(TxId, Request, SocketAddr)> = call
            .forks
            .iter_mut()
            .filter(|f| f.state == ForkState::Pending)
            .map(|f| {
                f.state = ForkState::Done;
                (f.tx, f.request.clone(), f.peer)
            })
            .collect();
        for (tx, request, peer) in pending {
            self.client_txs.insert(
                tx,
                TxUse::Orphan {
                    request: Box::new(request),
                    peer,
                },
            );
            match self.ep.cancel(clock.now, tx) {
                Ok(ctx) => {
                    self.client_txs.insert(ctx, TxUse::Other);
                }
                Err(e) => debug!(error = %e, "CANCEL not sent"),
            }
        }
    }

    pub(super) fn on_cancel(
        &mut self,
        clock: Clock,
        tx: TxId,
        req: &Request,
        cancels: Option<TxId>,
    ) {
        let Some(key) = cancels.and_then(|t| self.server_invites.get(&t).copied()) else {
            self.reply(clock, tx, req, StatusCode::CALL_DOES_NOT_EXIST);
            return;
        };
        self.reply(clock, tx, req, StatusCode::OK);
        if self.calls.get(&key).is_some_and(|c| !c.answered()) {
            self.fail_caller(clock, key, StatusCode::REQUEST_TERMINATED);
            self.cancel_forks(clock, key);
            self.end_call(clock, key, "cancelled");
        }
    }

    /// Calls nobody answered within `sip.no_answer_seconds`: cancel the ringing phones and
    /// tell the caller 480, as a PBX's no-answer timeout does. (The transaction layer's
    /// Timer B stops at the first 1xx, so without this a call could ring forever.)
    pub(super) fn expire_unanswered(&mut self, clock: Clock) {
        self.advance_ring_groups(clock);
        // No-answer forwards first: their time is shorter than the PBX's ring limit.
        let forward: Vec<CallKey> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                !c.answered()
                    && c.on_no_answer
                        .as_ref()
                        .is_some_and(|(at, _)| *at <= clock.now)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in forward {
            let Some((_, next)) = self.calls.get_mut(&key).and_then(|c| c.on_no_answer.take())
            else {
                continue;
            };
            info!(call = key, to = %next, "no answer; forwarding");
            self.cancel_forks(clock, key);
            self.forward_call(clock, key, next);
        }
        let to_voicemail: Vec<(CallKey, Extension)> = self
            .calls
            .iter()
            .filter(|(_, c)| !c.answered() && c.voicemail_at.is_some_and(|at| at <= clock.now))
            .map(|(k, c)| (*k, c.callee.clone()))
            .collect();
        for (key, mailbox) in to_voicemail {
            info!(call = key, %mailbox, "no answer; to voicemail");
            self.call_to_voicemail(clock, key, mailbox, VoicemailGreeting::Unavailable);
        }
        let unanswered: Vec<CallKey> = self
            .calls
            .iter()
            .filter(|(_, c)| !c.answered() && c.ring_deadline <= clock.now)
            .map(|(k, _)| *k)
            .collect();
        self.expire_trunk_attempts(clock);
        for key in unanswered {
            info!(call = key, "no answer; cancelling the ringing phones");
            self.fail_caller(clock, key, StatusCode::TEMPORARILY_UNAVAILABLE);
            self.cancel_forks(clock, key);
            self.end_call(clock, key, "no-answer");
        }
    }

    pub(super) fn end_call(&mut self, clock: Clock, key: CallKey, disposition: &str) {
        self.end_consult(clock, key);
        self.stop_call_recording(key);
        self.forget_in_call(key);
        self.end_hold(key);
        let Some(call) = self.calls.remove(&key) else {
            return;
        };
        self.by_call_id.remove(&call.call_id);
        self.by_call_id.remove(&call.b_call_id);
        // A transfer may have given the caller side another dialog (and Call-ID).
        if let Some(d) = &call.caller_dialog {
            if self
                .by_call_id
                .get(&d.id.call_id)
                .is_some_and(|(k, _)| *k == key)
            {
                self.by_call_id.remove(&d.id.call_id);
            }
        }
        self.server_invites.remove(&call.caller_tx);
        for s in call.media.into_iter().flatten() {
            self.relay.release(s);
        }
        let duration_s = call
            .answer_ms
            .map_or(0.0, |a| (clock.unix_ms - a).max(0) as f64 / 1000.0);
        let disposition = if call.answer_ms.is_some() {
            "answered"
        } else {
            disposition
        };
        let outbound = call
            .trunk
            .as_ref()
            .map(|t| t.cdr(&self.config, call.answer_ms.map(|_| duration_s)))
            .or_else(|| call.inbound.as_ref().map(|i| i.cdr(&self.config)));
        info!(call = key, caller = %call.caller, callee = %call.callee, disposition, duration_s, "call ended");
        self.writes.push(Write::EndLiveCall(call.call_id.clone()));
        self.writes.push(Write::Cdr(Cdr {
            caller_name: caller_display_name(&call.caller_invite),
            call_id: call.call_id,
            caller: call.caller.0,
            callee: call.callee.0,
            start_ms: call.start_ms,
            answer_ms: call.answer_ms,
            end_ms: clock.unix_ms,
            duration_s,
            disposition: disposition.to_owned(),
            outbound,
            transfer: call.transferred,
        }));
        self.update_gauges();
        if call.trunk.is_some() || call.inbound.is_some() {
            self.update_trunk_gauges();
        }
    }
}

impl Pbx {
    /// A transfer is replacing `by` (a side) of call `key`: the CDR row of the parties until
    /// now, disposition `transferred`; the call's own row, written at its end, names the new
    /// parties and carries `transferred_by`/`transfer_kind`.
    pub(super) fn transfer_segment_cdr(
        &mut self,
        clock: Clock,
        key: CallKey,
        by: Side,
        kind: &str,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let by_ext = match by {
            Side::Caller => call.caller.0.clone(),
            Side::Callee => call.callee.0.clone(),
        };
        let cdr = Cdr {
            caller_name: caller_display_name(&call.caller_invite),
            call_id: call.call_id.clone(),
            caller: call.caller.0.clone(),
            callee: call.callee.0.clone(),
            start_ms: call.start_ms,
            answer_ms: call.answer_ms,
            end_ms: clock.unix_ms,
            duration_s: call
                .answer_ms
                .map_or(0.0, |a| (clock.unix_ms - a).max(0) as f64 / 1000.0),
            disposition: "transferred".into(),
            outbound: None,
            transfer: None,
        };
        call.transferred = Some(TransferCdr {
            transferred_by: by_ext,
            transfer_kind: kind.into(),
        });
        self.writes.push(Write::Cdr(cdr));
    }
}

/// RFC 4028: the session interval to use when the caller supports timers (at least the
/// 90 s minimum), else None.
pub(super) fn session_expires(req: &Request) -> Option<u32> {
    let supported = req
        .headers
        .option_tags(&HeaderName::Supported)
        .ok()?
        .iter()
        .any(|t| t == "timer");
    if !supported {
        return None;
    }
    let value = req.headers.get_str(&HeaderName::SessionExpires)?;
    let secs: u32 = value.split(';').next()?.trim().parse().ok()?;
    Some(secs.max(90))
}

/// The RTP address an SDP asks for in media section `i`, if it names a real one.
pub(super) fn media_target(sdp: &Sdp, i: usize) -> Option<SocketAddr> {
    let m = sdp.media.get(i)?;
    let c = sdp.media_connection(i)?;
    if c.is_null() || m.port == 0 {
        return None;
    }
    let ip: IpAddr = c.address.parse().ok()?;
    Some(SocketAddr::new(ip, m.port))
}

/// The display name in the caller's From, for the CDR (empty without one).
pub(super) fn caller_display_name(req: &Request) -> String {
    req.headers
        .from()
        .ok()
        .and_then(|f| f.display)
        .unwrap_or_default()
}
