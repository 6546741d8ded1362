//! Calls in from trunks: an INVITE from a provider trunk's address or a gateway trunk's
//! registration is not challenged like a phone's; its DID (where [`DidSource`] says the trunk
//! puts it) goes through `routing::inbound`, and the call is then served like any other. An
//! unknown DID gets 404 and nothing else happens: no trunk is ever tried for it.

use std::net::SocketAddr;

use kentongan_lcr::lcr::TrunkKind;
use kentongan_sip::transaction::TxId;
use kentongan_sip::{HeaderName, NameAddr, Request, Response, StatusCode};
use tracing::{info, warn};

use super::calls::Side;
use super::{answered, Clock, Pbx};
use crate::config::DidSource;
use crate::routing::inbound::InboundRefusal;
use crate::routing::Destination;
use crate::store::{Cdr, Extension, OutboundCdr, Write};

/// The class an inbound call's CDR carries (outbound calls carry `mobile`, `national`, …).
pub(super) const INBOUND_CLASS: &str = "inbound";

/// The trunk side of a call that came in through a trunk.
#[derive(Debug, Clone)]
pub(super) struct InboundLeg {
    /// Index into `Config::trunks`: the call holds one of its channels.
    pub(super) trunk: usize,
    /// The DID it called, normalised.
    pub(super) did: String,
}

impl InboundLeg {
    pub(super) fn cdr(&self, config: &crate::config::Config) -> OutboundCdr {
        OutboundCdr {
            trunk: config
                .trunks
                .get(self.trunk)
                .map(|t| t.name.as_str().to_owned()),
            number: self.did.clone(),
            class: INBOUND_CLASS.to_owned(),
            cost: None,
        }
    }
}

impl Pbx {
    /// The trunk an INVITE from `from` comes through: a provider whose resolved address has
    /// this IP (providers send from several ports) or whose `match` networks hold it (they
    /// send from several servers), or a gateway registered from this IP.
    pub(super) fn trunk_at(&self, clock: Clock, from: SocketAddr) -> Option<usize> {
        self.config.trunks.iter().enumerate().find_map(|(i, t)| {
            let ours = match t.kind {
                TrunkKind::Provider => {
                    self.dialplan
                        .outbound()
                        .and_then(|o| o.address(i))
                        .is_some_and(|a| a.ip() == from.ip())
                        || t.matches.iter().any(|c| c.contains(from.ip()))
                }
                TrunkKind::Gateway => t.username.as_deref().is_some_and(|u| {
                    self.registry
                        .contacts(&Extension(u.to_owned()), clock.unix_s())
                        .iter()
                        .any(|c| c.source.ip() == from.ip())
                }),
            };
            ours.then_some(i)
        })
    }

    /// The trunk whose gateway account `user` is (a gateway that authenticated its INVITE).
    pub(super) fn gateway_trunk_of(&self, user: &Extension) -> Option<usize> {
        self.config.trunks.iter().position(|t| {
            t.kind == TrunkKind::Gateway && t.username.as_deref() == Some(user.0.as_str())
        })
    }

    /// A trunk's call answered by the PBX itself (menu, room, mailbox): it holds a channel of
    /// its trunk while it lasts, and its CDR names the trunk and the DID.
    #[allow(clippy::too_many_arguments)]
    fn answer_inbound(
        &mut self,
        clock: Clock,
        tx: TxId,
        from: SocketAddr,
        req: Request,
        caller: Extension,
        app: answered::App,
        inbound: InboundLeg,
    ) {
        let call_id = req.headers.call_id().unwrap_or("").to_owned();
        self.answer_with_app(clock, tx, from, req, caller, app);
        if let Some(leg) = self.apps.by_call_id.get(&call_id).copied() {
            if let Some(a) = self.apps.legs.get_mut(&leg) {
                a.inbound = Some(inbound);
            }
            self.update_trunk_gauges();
        }
    }

    /// An out-of-dialog INVITE from trunk `trunk`.
    pub(super) fn on_trunk_invite(
        &mut self,
        clock: Clock,
        tx: TxId,
        from: SocketAddr,
        req: Request,
        trunk: usize,
    ) {
        let Some(t) = self.config.trunks.get(trunk).cloned() else {
            return;
        };
        let did = did_of(&req, t.did_from).unwrap_or_default();
        let call_id = req.headers.call_id().unwrap_or("").to_owned();
        let caller = self.caller_number(&req);
        let resolved = self
            .dialplan
            .resolve_inbound(&did, &t.name, &self.store, clock.unix_s());
        let refuse = |pbx: &mut Pbx, status: StatusCode, phrase: &str, number: String| {
            let mut r = Response::for_request(&req, status, Some(&pbx.ep.new_tag()));
            r.reason = phrase.to_owned();
            pbx.respond(clock, tx, r);
            let mut cdr = Cdr::refused(
                call_id.clone(),
                caller.0.clone(),
                number.clone(),
                clock.unix_ms,
                "refused",
            );
            cdr.outbound = Some(OutboundCdr {
                trunk: Some(t.name.as_str().to_owned()),
                number,
                class: INBOUND_CLASS.to_owned(),
                cost: None,
            });
            pbx.writes.push(Write::Cdr(cdr));
        };
        let call = match resolved {
            Ok(c) => c,
            Err(InboundRefusal::Lookup(e)) => {
                warn!(error = %e, "routing an inbound call failed");
                self.reply(clock, tx, &req, StatusCode::SERVER_INTERNAL_ERROR);
                return;
            }
            Err(e) => {
                info!(trunk = t.name.as_str(), %caller, did = %did.escape_debug(), reason = %e, "inbound call refused");
                let number = match &e {
                    InboundRefusal::UnknownDid { number } => number.clone(),
                    InboundRefusal::NotServed { did, .. } => did.clone(),
                    InboundRefusal::Lookup(_) => String::new(),
                };
                refuse(
                    self,
                    StatusCode::NOT_FOUND,
                    "Not Found: no such number here (not a DID of this PBX)",
                    number,
                );
                return;
            }
        };
        let in_use = self.trunk_channels().get(trunk).copied().unwrap_or(0);
        if t.max_channels.is_some_and(|max| in_use >= max) {
            info!(
                trunk = t.name.as_str(),
                in_use, "inbound call over the trunk's max_channels refused"
            );
            refuse(
                self,
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable: all channels of this trunk are in use",
                call.did,
            );
            return;
        }
        info!(trunk = t.name.as_str(), %caller, did = %call.did, to = %call.destination, "inbound call");
        let leg = InboundLeg {
            trunk,
            did: call.did,
        };
        match call.destination {
            Destination::Extension(callee) => {
                self.call_extension(clock, tx, from, req, caller, callee);
                if let Some((key, Side::Caller)) = self.by_call_id.get(&call_id).copied() {
                    if let Some(c) = self.calls.get_mut(&key) {
                        c.inbound = Some(leg);
                    }
                    self.update_trunk_gauges();
                }
            }
            Destination::RingGroup(g) => {
                self.call_ring_group(clock, tx, from, req, caller, g);
                if let Some((key, Side::Caller)) = self.by_call_id.get(&call_id).copied() {
                    if let Some(c) = self.calls.get_mut(&key) {
                        c.inbound = Some(leg);
                    }
                    self.update_trunk_gauges();
                }
            }
            Destination::Conference(room) => {
                let number = self.config.conferences[room.0].number.clone();
                self.answer_inbound(
                    clock,
                    tx,
                    from,
                    req,
                    caller,
                    answered::App::Conference(number),
                    leg,
                )
            }
            Destination::Ivr(menu) => self.answer_inbound(
                clock,
                tx,
                from,
                req,
                caller,
                answered::App::Ivr(menu.0),
                leg,
            ),
            Destination::EchoTest => {
                self.answer_inbound(clock, tx, from, req, caller, answered::App::Echo, leg)
            }
            Destination::AnyMailbox => {
                let app = answered::App::Mailbox { mailbox: None };
                self.answer_inbound(clock, tx, from, req, caller, app, leg)
            }
            Destination::Voicemail { mailbox, greeting } => {
                let app = answered::App::Voicemail { mailbox, greeting };
                self.answer_inbound(clock, tx, from, req, caller, app, leg)
            }
            other => {
                // A destination kind this path does not serve yet: refused, never passed on.
                warn!(to = %other, "inbound calls cannot reach this kind of destination");
                self.reply(clock, tx, &req, StatusCode::NOT_FOUND);
            }
        }
    }

    /// Who is calling, as the callee's phone and the CDR show it: the From number in E.164,
    /// which no extension can be mistaken for; `anonymous` when there is no usable number.
    fn caller_number(&self, req: &Request) -> Extension {
        let user = req
            .headers
            .from()
            .ok()
            .and_then(|f| f.uri.user().map(str::to_owned));
        let number = user.as_deref().and_then(|u| {
            let u = u.split(';').next().unwrap_or(u);
            match self.dialplan.outbound() {
                Some(o) => o.e164(u),
                None => {
                    let digits = u.strip_prefix('+').unwrap_or(u);
                    (!digits.is_empty()
                        && digits.len() <= 15
                        && digits.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| u.to_owned())
                }
            }
        });
        Extension(number.unwrap_or_else(|| "anonymous".to_owned()))
    }
}

/// The number the caller dialled, from where the trunk puts it.
fn did_of(req: &Request, source: DidSource) -> Option<String> {
    let from_header = |name: HeaderName| {
        let v = req.headers.get_str(&name)?;
        let na = NameAddr::parse(v).ok()?;
        na.uri.user().map(str::to_owned)
    };
    let user = match source {
        DidSource::RequestUri => req.uri.user().map(str::to_owned),
        DidSource::To => from_header(HeaderName::To),
        DidSource::PCalledPartyId => req
            .headers
            .iter()
            .find(|h| h.name.as_str().eq_ignore_ascii_case("P-Called-Party-ID"))
            .and_then(|h| NameAddr::parse(h.value.as_str()).ok())
            .and_then(|na| na.uri.user().map(str::to_owned)),
    }?;
    // A user part may carry parameters (`+62215550100;npdi`): the number is before them.
    Some(user.split(';').next().unwrap_or("").to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_did_is_read_where_the_trunk_puts_it() {
        let req = Request::parse(bytes::Bytes::from_static(
            b"INVITE sip:+62215550100;npdi@10.0.0.1 SIP/2.0\r\n\
              Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKx\r\n\
              From: <sip:+6281100011@192.0.2.9>;tag=a\r\nTo: <sip:0215550101@pbx>\r\n\
              p-called-party-id: <sip:+62215550102@ims>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
              Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap();
        assert_eq!(
            did_of(&req, DidSource::RequestUri).as_deref(),
            Some("+62215550100")
        );
        assert_eq!(did_of(&req, DidSource::To).as_deref(), Some("0215550101"));
        assert_eq!(
            did_of(&req, DidSource::PCalledPartyId).as_deref(),
            Some("+62215550102")
        );
    }
}
