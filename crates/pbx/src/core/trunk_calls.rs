//! Calls out through trunks: routing (`routing::outbound`) ranked the ways out; this sends the
//! caller's INVITE to the first route's trunk (a provider's `address`, a gateway's current
//! registration), answers a 401/407 with the trunk's credentials once, and on 408, 480, 5xx,
//! a rejected login, or no ringing within [`TRUNK_ANSWER_TIMEOUT`] tries the next route. A trunk
//! at its `max_channels` is skipped (emergency calls still try it, last). Once answered, the
//! call is an ordinary bridged call (`dialogs`); its CDR names the trunk, number, class and cost.

use std::time::{Duration, Instant};

use kentongan_lcr::class::CallClass;
use kentongan_lcr::lcr::TrunkKind;
use kentongan_sip::auth::authorize;
use kentongan_sip::transaction::TxId;
use kentongan_sip::{HeaderName, Method, Request, Response, StatusCode, Uri};
use tracing::{info, warn};

use super::calls::{CallKey, Fork, ForkState};
use super::{Clock, Pbx, TxUse, USER_AGENT};
use crate::config::Config;
use crate::routing::forwarding::Visited;
use crate::routing::outbound::{Outbound, Route, TrunkCall};
use crate::store::{Extension, LiveCall, OutboundCdr, Write};

/// A trunk that neither rings (180/183) nor answers finally within this long is taken to be
/// down, and the next route is tried. Providers answer 100 at once and 180 within a second or
/// two when the far end rings; 8 s leaves room for a slow mobile network.
pub(super) const TRUNK_ANSWER_TIMEOUT: Duration = Duration::from_secs(8);

/// The outbound side of a call.
#[derive(Debug)]
pub(super) struct TrunkLeg {
    pub(super) call: TrunkCall,
    /// The next route of `call.routes` to try.
    next: usize,
    /// The route being tried or carrying the call: it holds one of its trunk's channels.
    current: Option<Route>,
    /// The trunk last tried, for the CDR of a call no trunk took.
    last_trunk: Option<usize>,
    /// The INVITE sent to the current trunk, before its Via, to send again with credentials.
    invite: Option<Request>,
    authenticated: bool,
    /// No ringing from the current trunk by then: next route.
    deadline: Option<Instant>,
    /// Answered: the caller's `max_call_minutes` run out then, and the PBX hangs up.
    hang_up_at: Option<Instant>,
    last_failure: Option<StatusCode>,
}

impl TrunkLeg {
    fn new(call: TrunkCall) -> TrunkLeg {
        TrunkLeg {
            call,
            next: 0,
            current: None,
            last_trunk: None,
            invite: None,
            authenticated: false,
            deadline: None,
            hang_up_at: None,
            last_failure: None,
        }
    }

    /// The CDR fields of this leg, for a call that lasted `seconds` after its answer.
    pub(super) fn cdr(&self, config: &Config, answered_seconds: Option<f64>) -> OutboundCdr {
        let name = |i: usize| config.trunks.get(i).map(|t| t.name.as_str().to_owned());
        let trunk = match &self.current {
            Some(r) => name(r.trunk),
            None => self.last_trunk.and_then(name),
        };
        let cost = match (answered_seconds, &self.current) {
            (Some(s), Some(r)) => r.cost(s.ceil().clamp(0.0, f64::from(u32::MAX)) as u32),
            _ => None,
        };
        OutboundCdr {
            trunk,
            number: self.call.number.clone(),
            class: self.call.class.name().to_owned(),
            cost,
        }
    }
}

/// Loads `[lcr]`'s files for outbound calls; a failure leaves outbound calls off, loudly.
pub(super) fn load_outbound(config: &Config) -> Option<Outbound> {
    match Outbound::load(config) {
        Ok(o) => o,
        Err(e) => {
            warn!(error = %e, "outbound calls through trunks are off until this is fixed and the configuration reloaded");
            None
        }
    }
}

impl Pbx {
    /// One gauge set per `[[trunk]]` (at start and reload); registrations start as not current.
    pub(super) fn reset_trunk_gauges(&self) {
        let gauges = self
            .config
            .trunks
            .iter()
            .map(|t| super::TrunkGauges {
                name: t.name.as_str().to_owned(),
                channels_in_use: 0,
                registered: (t.register || t.kind == TrunkKind::Gateway).then_some(false),
                reachable: None,
            })
            .collect();
        if let Ok(mut g) = self.metrics.trunks.lock() {
            *g = gauges;
        }
        self.update_trunk_gauges();
        self.update_gateway_gauges();
    }

    /// Channels in use per trunk, for `/metrics`.
    pub(super) fn update_trunk_gauges(&self) {
        let channels = self.trunk_channels();
        if let Ok(mut g) = self.metrics.trunks.lock() {
            for (t, n) in g.iter_mut().zip(channels) {
                t.channels_in_use = u64::from(n);
            }
        }
    }

    /// Calls on each trunk now (answered or being set up, out or in), by index in
    /// `Config::trunks`.
    pub(super) fn trunk_channels(&self) -> Vec<u32> {
        let mut v = vec![0; self.config.trunks.len()];
        for c in self.calls.values() {
            let out = c
                .trunk
                .as_ref()
                .and_then(|t| t.current.as_ref())
                .map(|r| r.trunk);
            let inbound = c.inbound.as_ref().map(|i| i.trunk);
            if let Some(n) = out.or(inbound).and_then(|t| v.get_mut(t)) {
                *n += 1;
            }
        }
        for a in self.apps.legs.values() {
            if let Some(n) = a.inbound.as_ref().and_then(|i| v.get_mut(i.trunk)) {
                *n += 1;
            }
        }
        v
    }

    /// A caller's INVITE to a public or emergency number: media set up, then the first route.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn call_trunk(
        &mut self,
        clock: Clock,
        tx: TxId,
        from: std::net::SocketAddr,
        req: Request,
        caller: Extension,
        dialled: String,
        mut call: TrunkCall,
    ) {
        self.metrics
            .calls_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some((_, phrase)) = self.fraud_check(clock, &caller, &mut call) {
            let mut r =
                Response::for_request(&req, StatusCode::FORBIDDEN, Some(&self.ep.new_tag()));
            r.reason = phrase.to_owned();
            self.respond(clock, tx, r);
            let call_id = req.headers.call_id().unwrap_or("").to_owned();
            let mut cdr =
                crate::store::Cdr::refused(call_id, caller.0, dialled, clock.unix_ms, "refused");
            cdr.outbound = Some(OutboundCdr {
                trunk: None,
                number: call.number,
                class: call.class.name().to_owned(),
                cost: None,
            });
            self.writes.push(Write::Cdr(cdr));
            return;
        }
        info!(%caller, number = %call.number, class = %call.class, routes = call.routes.len(), "call out through a trunk");
        // The relay's callee side faces the first route's trunk (later routes on another
        // address family are not expected: a provider's address is one name or IP).
        let callee_v6 = call
            .routes
            .first()
            .and_then(|r| self.dialplan.outbound()?.address(r.trunk))
            .is_some_and(|a| a.is_ipv6());
        // The callee is kept as dialled (what `calls` and the CDR show); the trunk gets
        // `call.number`.
        let Some(key) = self.start_call(
            clock,
            tx,
            from,
            req,
            caller,
            Extension(dialled),
            callee_v6,
            Visited::new(),
        ) else {
            return;
        };
        if let Some(c) = self.calls.get_mut(&key) {
            c.trunk = Some(TrunkLeg::new(call));
        }
        self.next_route(clock, key);
    }

    /// Sends the call to its next route that has a free channel and an address; when none is
    /// left the caller gets the last trunk's failure (503 if none answered).
    pub(super) fn next_route(&mut self, clock: Clock, key: CallKey) {
        loop {
            let Some(leg) = self.calls.get_mut(&key).and_then(|c| c.trunk.as_mut()) else {
                return;
            };
            if let Some(r) = leg.current.take() {
                leg.last_trunk = Some(r.trunk);
            }
            leg.invite = None;
            leg.authenticated = false;
            leg.deadline = None;
            let Some(route) = leg.call.routes.get(leg.next).cloned() else {
                let status = leg.last_failure.unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                info!(call = key, status = status.0, "no trunk took the call");
                self.fail_caller(clock, key, status);
                let disposition = match status.0 {
                    486 | 600 => "busy",
                    603 => "declined",
                    408 | 480 => "unavailable",
                    _ => "failed",
                };
                self.end_call(clock, key, disposition);
                return;
            };
            leg.next += 1;
            let emergency = leg.call.class == CallClass::Emergency;
            let Some(trunk) = self.config.trunks.get(route.trunk).cloned() else {
                continue;
            };
            if self.trunk_down(route.trunk) && !emergency {
                info!(
                    call = key,
                    trunk = trunk.name.as_str(),
                    "trunk does not answer keepalives; next route"
                );
                continue;
            }
            let in_use = self.trunk_channels().get(route.trunk).copied().unwrap_or(0);
            if let Some(max) = trunk.max_channels {
                // Emergency calls try a full trunk anyway (its routes put such trunks last).
                if in_use >= max && !emergency {
                    info!(
                        call = key,
                        trunk = trunk.name.as_str(),
                        in_use,
                        max,
                        "trunk at its channel limit; next route"
                    );
                    continue;
                }
            }
            let target = match trunk.kind {
                TrunkKind::Provider => self
                    .dialplan
                    .outbound()
                    .and_then(|o| o.address(route.trunk))
                    .zip(trunk.address.clone()),
                TrunkKind::Gateway => trunk
                    .username
                    .as_deref()
                    .and_then(|u| {
                        self.registry
                            .contacts(&Extension(u.to_owned()), clock.unix_s())
                            .first()
                            .map(|c| c.source)
                    })
                    .map(|a| (a, a.to_string())),
            };
            let Some((peer, host_port)) = target else {
                info!(call = key, trunk = trunk.name.as_str(), "trunk not reachable (address unresolved, or gateway not registered); next route");
                continue;
            };
            if self.send_to_trunk(clock, key, route, peer, &host_port) {
                return;
            }
        }
    }

    /// The INVITE to one trunk: Request-URI and To with the number as the trunk takes it,
    /// From and P-Asserted-Identity with the trunk's caller ID, our relay in the SDP.
    fn send_to_trunk(
        &mut self,
        clock: Clock,
        key: CallKey,
        route: Route,
        peer: std::net::SocketAddr,
        host_port: &str,
    ) -> bool {
        let Some(trunk) = self.config.trunks.get(route.trunk).cloned() else {
            return false;
        };
        let b_call_id = self.ep.new_call_id();
        let tag = self.ep.new_tag();
        let contact = self.our_contact(peer);
        let ip = self.local_ip(peer);
        let Some(call) = self.calls.get_mut(&key) else {
            return false;
        };
        let Some(leg) = call.trunk.as_ref() else {
            return false;
        };
        let number = leg.call.number.clone();
        let Ok(uri) = Uri::parse(&format!("sip:{number}@{host_port}")) else {
            warn!(number = %number.escape_debug(), host_port, "no Request-URI for the trunk");
            return false;
        };
        // The host part alone (a bracketed IPv6 keeps its brackets).
        let host = match host_port.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
            _ => host_port,
        };
        let user = trunk
            .caller_id
            .clone()
            .unwrap_or_else(|| call.caller.0.clone());
        let from_hdr = format!("<sip:{user}@{host}>;tag={tag}");
        let old = std::mem::replace(&mut call.b_call_id, b_call_id.clone());
        call.from_hdr = from_hdr.clone();
        call.forks.clear();
        let offer = call.offer.clone();
        let ports: Vec<u16> = call
            .media
            .iter()
            .map(|m| m.as_ref().map_or(0, |s| s.callee_port))
            .collect();
        let mut inv = super::dialogs::new_invite(
            uri,
            &from_hdr,
            format!("<sip:{number}@{host}>"),
            &b_call_id,
            contact,
        );
        if let Some(cid) = &trunk.caller_id {
            inv.headers.push(
                HeaderName::Other("P-Asserted-Identity".into()),
                format!("<sip:{cid}@{host}>"),
            );
        }
        if let Some(offer) = &offer {
            let mut sdp = offer.clone();
            sdp.rewrite_for_relay(ip, &ports);
            inv.set_body("application/sdp", sdp.to_bytes());
        }
        self.by_call_id.remove(&old);
        self.by_call_id
            .insert(b_call_id, (key, super::calls::Side::Callee));
        info!(call = key, trunk = trunk.name.as_str(), %peer, number = %number, "INVITE to trunk");
        if !self.send_trunk_invite(clock, key, peer, inv) {
            return false;
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return false;
        };
        if let Some(leg) = call.trunk.as_mut() {
            leg.current = Some(route);
            leg.deadline = Some(clock.now + TRUNK_ANSWER_TIMEOUT);
        }
        self.writes.push(Write::LiveCall(LiveCall {
            call_id: call.call_id.clone(),
            caller: call.caller.0.clone(),
            callee: call.callee.0.clone(),
            start_ms: call.start_ms,
            answer_ms: None,
            state: format!("calling {}", trunk.name.as_str()),
        }));
        self.update_gauges();
        self.update_trunk_gauges();
        true
    }

    /// Sends `inv` (without Via) as the call's one fork, keeping it for a credentials resend.
    fn send_trunk_invite(
        &mut self,
        clock: Clock,
        key: CallKey,
        peer: std::net::SocketAddr,
        inv: Request,
    ) -> bool {
        let mut sent = inv.clone();
        self.add_via(&mut sent, peer);
        sent.headers.set(HeaderName::MaxForwards, "70");
        sent.headers.push(HeaderName::UserAgent, USER_AGENT);
        match self.ep.send_request(clock.now, peer, sent.clone()) {
            Ok(ftx) => {
                self.client_txs.insert(ftx, TxUse::Fork { call: key });
                if let Some(call) = self.calls.get_mut(&key) {
                    call.forks = vec![Fork {
                        tx: ftx,
                        peer,
                        request: sent,
                        state: ForkState::Pending,
                    }];
                    if let Some(leg) = call.trunk.as_mut() {
                        leg.invite = Some(inv);
                    }
                }
                true
            }
            Err(e) => {
                warn!(error = %e, "INVITE to trunk not sent");
                false
            }
        }
    }

    /// A trunk's answer to a call's INVITE. `true` when handled here (failures, challenges);
    /// ringing and the 2xx go on through the ordinary bridge code.
    pub(super) fn on_trunk_response(
        &mut self,
        clock: Clock,
        key: CallKey,
        tx: TxId,
        resp: &Response,
    ) -> bool {
        let status = resp.status;
        let Some(call) = self.calls.get_mut(&key) else {
            return true;
        };
        let answered = call.answered();
        let Some(fi) = call.forks.iter().position(|f| f.tx == tx) else {
            return false;
        };
        let Some(leg) = call.trunk.as_mut() else {
            return false;
        };
        if status.is_provisional() {
            if status.0 != 100 {
                leg.deadline = None;
            }
            return false;
        }
        if status.is_success() && !answered && call.forks[fi].state == ForkState::Pending {
            leg.deadline = None;
            leg.hang_up_at = leg
                .call
                .max_call_minutes
                .map(|m| clock.now + Duration::from_secs(u64::from(m) * 60));
        }
        if status.is_success() || answered || call.forks[fi].state == ForkState::Done {
            return false;
        }
        call.forks[fi].state = ForkState::Done;
        let Some(route) = leg.current.clone() else {
            return true;
        };
        let Some(trunk) = self.config.trunks.get(route.trunk).cloned() else {
            return true;
        };
        let peer = call.forks[fi].peer;
        if matches!(status.0, 401 | 407) && !leg.authenticated {
            if let (Some(user), Some(password), Some(mut inv)) =
                (&trunk.username, &trunk.password, leg.invite.clone())
            {
                let uri = inv.uri.to_string();
                let cnonce = self.ep.new_tag();
                if let Some((name, creds)) = authorize(
                    resp,
                    user,
                    password.expose(),
                    &Method::Invite,
                    &uri,
                    &cnonce,
                ) {
                    let seq = inv.headers.cseq().map(|c| c.seq).unwrap_or(1) + 1;
                    inv.headers.set(HeaderName::CSeq, format!("{seq} INVITE"));
                    inv.headers.push(name, creds.to_string());
                    if let Some(leg) = self.calls.get_mut(&key).and_then(|c| c.trunk.as_mut()) {
                        leg.authenticated = true;
                        leg.deadline = Some(clock.now + TRUNK_ANSWER_TIMEOUT);
                    }
                    info!(
                        call = key,
                        trunk = trunk.name.as_str(),
                        status = status.0,
                        "trunk asked for credentials; INVITE sent again with them"
                    );
                    if self.send_trunk_invite(clock, key, peer, inv) {
                        return true;
                    }
                }
            }
        }
        if let Some(leg) = self.calls.get_mut(&key).and_then(|c| c.trunk.as_mut()) {
            leg.last_failure = Some(status);
        }
        // A trunk that is down, full or refuses our login is the trunk's problem: the next
        // route may carry the call. Anything else (busy, no such number) is the callee's.
        let failover = matches!(status.0, 401 | 403 | 407 | 408 | 480) || status.0 >= 500;
        if failover {
            info!(
                call = key,
                trunk = trunk.name.as_str(),
                status = status.0,
                "trunk failed the call; next route"
            );
            self.next_route(clock, key);
        } else {
            self.fail_caller(clock, key, status);
            let disposition = match status.0 {
                486 | 600 => "busy",
                603 => "declined",
                _ => "failed",
            };
            self.end_call(clock, key, disposition);
        }
        true
    }

    /// Trunk attempts that have not rung within [`TRUNK_ANSWER_TIMEOUT`]: cancelled, and the
    /// call goes on to the next route. Answered calls past the caller's `max_call_minutes`:
    /// hung up on both sides.
    pub(super) fn expire_trunk_attempts(&mut self, clock: Clock) {
        let over: Vec<CallKey> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                c.answered()
                    && c.trunk
                        .as_ref()
                        .and_then(|t| t.hang_up_at)
                        .is_some_and(|d| d <= clock.now)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in over {
            info!(call = key, "max_call_minutes reached; hanging up");
            self.send_bye(clock, key, super::calls::Side::Caller);
            self.send_bye(clock, key, super::calls::Side::Callee);
            self.end_call(clock, key, "answered");
        }
        let late: Vec<CallKey> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                !c.answered()
                    && c.trunk
                        .as_ref()
                        .and_then(|t| t.deadline)
                        .is_some_and(|d| d <= clock.now)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in late {
            if let Some(leg) = self.calls.get_mut(&key).and_then(|c| c.trunk.as_mut()) {
                leg.deadline = None;
                leg.last_failure = Some(StatusCode::REQUEST_TIMEOUT);
            }
            info!(call = key, "trunk did not ring in time; next route");
            self.cancel_forks(clock, key);
            self.next_route(clock, key);
        }
    }
}
