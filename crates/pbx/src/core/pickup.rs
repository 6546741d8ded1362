//! Call pickup (`Destination::Pickup`): `*8` answers a call ringing at an extension of the
//! picker's `pickup_group`, `**201` the call ringing at 201. The picker's INVITE becomes the
//! callee side of the ringing [`super::calls::Call`]: the ringing forks are CANCELled, the
//! picker gets our 200 (the caller's offer, narrowed to one codec both offered) and the caller
//! gets a 200 with the picker's media, so the relay joins them as if the picker's phone had
//! been rung. Nothing ringing there: 480 with a reason phrase saying so.

use std::net::SocketAddr;

use kentongan_sip::dialog::Dialog;
use kentongan_sip::sdp::Sdp;
use kentongan_sip::transaction::TxId;
use kentongan_sip::{HeaderName, Message, Request, Response, StatusCode};
use tracing::{debug, info};

use super::calls::{CallKey, Pending2xx, Side};
use super::transfer::narrowed;
use super::{Clock, Pbx, ALLOW, USER_AGENT};
use crate::routing::PickupTarget;
use crate::store::{Cdr, Extension, Write};

/// The caller's offer and the picker's offer narrowed to one codec (the first of the caller's
/// that the picker offered under the same payload type) plus the telephone-events both have:
/// the relay does not transcode, so both sides must send the same thing. `None`: the m= lines
/// do not pair up, or an audio/video line has nothing in common.
pub(super) fn common(caller: &Sdp, picker: &Sdp) -> Option<(Sdp, Sdp)> {
    if caller.media.len() != picker.media.len() {
        return None;
    }
    let mut keep = picker.clone();
    for (i, m) in caller.media.iter().enumerate() {
        let p = &picker.media[i];
        if m.port == 0 || p.port == 0 {
            continue;
        }
        let theirs = p.codecs();
        let same = |pt: u8, name: &str| {
            theirs
                .iter()
                .any(|(q, c)| *q == pt && c.name.eq_ignore_ascii_case(name))
        };
        let codecs = m.codecs();
        let real = codecs.iter().find(|(pt, c)| {
            !c.name.eq_ignore_ascii_case("telephone-event") && same(*pt, &c.name)
        })?;
        let mut formats = vec![real.0.to_string()];
        formats.extend(
            codecs
                .iter()
                .filter(|(pt, c)| {
                    c.name.eq_ignore_ascii_case("telephone-event") && same(*pt, &c.name)
                })
                .map(|(pt, _)| pt.to_string()),
        );
        keep.media[i].formats = formats;
    }
    let to_picker = narrowed(caller, &keep);
    let to_caller = narrowed(picker, &to_picker);
    Some((to_caller, to_picker))
}

impl Pbx {
    /// The picker's `pickup_group` (`[[extension_settings]]`).
    fn pickup_group(&self, ext: &Extension) -> Option<&str> {
        self.config
            .extension_settings
            .iter()
            .find(|s| s.number == ext.0)
            .and_then(|s| s.pickup_group.as_deref())
    }

    /// The call a pickup by `picker` would take: the one ringing longest.
    fn call_to_pick(&self, picker: &Extension, target: &PickupTarget) -> Option<CallKey> {
        let group = match target {
            PickupTarget::Group => Some(self.pickup_group(picker)?),
            PickupTarget::Extension(_) => None,
        };
        self.calls
            .iter()
            .filter(|(_, c)| &c.caller != picker && c.offer.is_some())
            .filter(|(_, c)| {
                c.ringing_extensions().iter().any(|e| match target {
                    PickupTarget::Extension(t) => e == t,
                    PickupTarget::Group => e != picker && self.pickup_group(e) == group,
                })
            })
            .min_by_key(|(k, c)| (c.start_ms, **k))
            .map(|(k, _)| *k)
    }

    /// `*8` or `**NNN` dialled by `picker`.
    pub(super) fn call_pickup(
        &mut self,
        clock: Clock,
        tx: TxId,
        from: SocketAddr,
        req: Request,
        picker: Extension,
        target: PickupTarget,
    ) {
        let refuse = |pbx: &mut Pbx, status: StatusCode, phrase: &str, disposition: &str| {
            let mut r = Response::for_request(&req, status, Some(&pbx.ep.new_tag()));
            r.reason = phrase.to_owned();
            pbx.respond(clock, tx, r);
            let call_id = req.headers.call_id().unwrap_or("").to_owned();
            let dialled = req.uri.user().unwrap_or("").to_owned();
            pbx.writes.push(Write::Cdr(Cdr {
                caller_name: super::calls::caller_display_name(&req),
                ..Cdr::refused(
                    call_id,
                    picker.0.clone(),
                    dialled,
                    clock.unix_ms,
                    disposition,
                )
            }));
        };
        if target == PickupTarget::Group && self.pickup_group(&picker).is_none() {
            info!(%picker, "group pickup without a pickup group");
            return refuse(
                self,
                StatusCode::NOT_FOUND,
                "Not Found: this extension is in no pickup group",
                "failed",
            );
        }
        let Some(key) = self.call_to_pick(&picker, &target) else {
            info!(%picker, ?target, "pickup: nothing ringing");
            return refuse(
                self,
                StatusCode::TEMPORARILY_UNAVAILABLE,
                "Temporarily Unavailable: no call is ringing there",
                "unavailable",
            );
        };
        let picker_offer = Sdp::parse(&req.body).ok();
        let caller_offer = self.calls.get(&key).and_then(|c| c.offer.clone());
        let Some((to_caller, to_picker)) = picker_offer
            .zip(caller_offer)
            .and_then(|(p, c)| common(&c, &p))
        else {
            return refuse(
                self,
                StatusCode::NOT_ACCEPTABLE_HERE,
                "Not Acceptable Here: no codec in common with the ringing call",
                "failed",
            );
        };
        self.cancel_forks(clock, key);
        let picker_call_id = req.headers.call_id().unwrap_or("").to_owned();
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        info!(call = key, %picker, was_ringing = ?call.ringing_extensions(), "call picked up");
        call.group = None;
        call.on_busy = None;
        call.on_no_answer = None;
        call.voicemail = false;
        call.voicemail_at = None;
        call.callee = picker;
        call.callee_peer = Some(from);
        call.answer_ms = Some(clock.unix_ms);
        let old = std::mem::replace(&mut call.b_call_id, picker_call_id.clone());
        self.by_call_id.remove(&old);
        self.by_call_id.insert(picker_call_id, (key, Side::Callee));
        // The picker's side: our answer carries the caller's media on the relay's callee
        // ports, and records where the caller sends (it is already known).
        let tag = self.ep.new_tag();
        let mut r = Response::for_request(&req, StatusCode::OK, Some(&tag));
        let contact = self.our_contact(from);
        r.headers.push(HeaderName::Contact, contact);
        r.headers.push(HeaderName::Allow, ALLOW);
        r.headers.push(HeaderName::Server, USER_AGENT);
        if let Some(body) = self.sdp_for(key, &to_picker.to_bytes(), Side::Callee, from) {
            r.set_body("application/sdp", body);
        }
        let msg = Message::Response(r.clone());
        if let Some(c) = self.calls.get_mut(&key) {
            c.callee_dialog = Dialog::uas(&req, &r).ok();
            c.pickup_2xx = Some(Pending2xx::new(Side::Callee, msg, from, clock.now));
        }
        if let Err(e) = self.ep.respond(clock.now, tx, r) {
            debug!(error = %e, "200 to the picker not sent");
        }
        self.answer_caller(clock, key, &to_caller.to_bytes());
        self.update_gauges();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdp(port: u16, formats: &str, maps: &str) -> Sdp {
        Sdp::parse(
            format!(
                "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=audio {port} RTP/AVP {formats}\r\n{maps}"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn both_sides_get_one_codec_they_share_and_shared_telephone_events() {
        let caller = sdp(
            4000,
            "8 0 101",
            "a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        );
        let picker = sdp(
            5000,
            "0 8 101",
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        );
        let (to_caller, to_picker) = common(&caller, &picker).unwrap();
        assert_eq!(to_caller.media[0].formats, ["8", "101"]);
        assert_eq!(to_picker.media[0].formats, ["8", "101"]);
        assert_eq!(to_caller.media[0].port, 5000);
        assert_eq!(to_picker.media[0].port, 4000);
        let opus_only = sdp(5000, "96", "a=rtpmap:96 opus/48000/2\r\n");
        assert!(common(&caller, &opus_only).is_none());
    }
}
