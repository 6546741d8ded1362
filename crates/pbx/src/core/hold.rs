//! Hold and music on hold in a bridged call.
//!
//! A phone holds by re-INVITing with its audio `sendonly` or `inactive` (RFC 3264 §8.4); the
//! re-INVITE goes through to the other phone as usual ([`super::dialogs`]). Once it is
//! accepted, the held phone's side of the relayed audio stream is lent to the media engine
//! ([`crate::media::MediaStream::lend`]), which loops the music to it from the very port the
//! phone already sends to, so the held phone is not re-INVITEd anywhere. A later re-INVITE
//! from the holder that sends again (`sendrecv`/`sendonly` → `sendrecv`) gives the side back
//! to the relay: two-way audio resumes on the ports both phones know.

use kentongan_engine::LegId;
use kentongan_sip::sdp::{Direction, Sdp};
use tracing::{debug, info, warn};

use super::answered::leg_spec;
use super::calls::{CallKey, Side};
use super::Pbx;
use crate::media::{EngineCommand, StreamSide};

/// Engine tag of the music: it loops until the hold ends, so it never reports an end.
const MUSIC_TAG: u64 = u64::MAX - 1;

/// A call on hold: who held, and the engine leg playing music to the other side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hold {
    pub(super) by: Side,
    leg: LegId,
    /// The relayed audio stream (m= line index) whose side was lent.
    stream: usize,
}

/// What an offer does to hold: `Some(true)` holds, `Some(false)` resumes.
fn offer_holds(offer: &Sdp) -> Option<bool> {
    let i = offer
        .media
        .iter()
        .position(|m| m.kind == "audio" && m.port != 0)?;
    // RFC 2543's hold, still sent by old phones: the connection address 0.0.0.0.
    let old_style = offer.media_connection(i).is_some_and(|c| c.is_null());
    Some(match offer.direction(i) {
        Direction::SendOnly | Direction::Inactive => true,
        Direction::SendRecv | Direction::RecvOnly => old_style,
    })
}

fn stream_side(side: Side) -> StreamSide {
    match side {
        Side::Caller => StreamSide::Caller,
        Side::Callee => StreamSide::Callee,
    }
}

impl Pbx {
    /// After a re-INVITE from `from` was accepted (2xx) by the other phone: hold or resume.
    /// `offer` is what `from` sent, `answer` the other phone's own SDP (its payload types).
    pub(super) fn after_reinvite(&mut self, key: CallKey, from: Side, offer: &[u8], answer: &[u8]) {
        let Some(holds) = Sdp::parse(offer).ok().as_ref().and_then(offer_holds) else {
            return;
        };
        let held = self.calls.get(&key).and_then(|c| c.hold);
        match (holds, held) {
            (true, None) => self.start_hold(key, from, answer),
            (false, Some(h)) if h.by == from => self.end_hold(key),
            _ => {}
        }
    }

    pub(super) fn start_hold(&mut self, key: CallKey, by: Side, answer: &[u8]) {
        if self.is_recorded(key) {
            // Both sides are the engine's already (recording); they stay bridged.
            return;
        }
        let held = by.other();
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let Some((stream, media)) = call
            .offer
            .as_ref()
            .and_then(|o| o.media.iter().position(|m| m.kind == "audio"))
            .and_then(|i| call.media.get(i)?.as_ref().map(|s| (i, s)))
        else {
            return;
        };
        // The held phone's payload types: from its answer to the hold, or its earlier SDP.
        let Some(spec) = Sdp::parse(answer).ok().as_ref().and_then(leg_spec) else {
            debug!(
                call = key,
                "hold: no codec the engine plays in the held phone's SDP"
            );
            return;
        };
        let lent = match media.lend(stream_side(held)) {
            Ok(l) => l,
            Err(e) => {
                warn!(call = key, error = %e, "hold: the held phone's media could not be taken over; it hears silence");
                return;
            }
        };
        let leg = match self.engine.add_leg(spec, lent.rtp, lent.rtcp, lent.remote) {
            Ok(leg) => leg,
            Err(e) => {
                warn!(call = key, error = %e, "hold: media engine unavailable; the held phone hears silence");
                let _ = media.take_back(stream_side(held));
                return;
            }
        };
        let sound = kentongan_engine::Sound::Loop(self.moh.clip());
        self.engine.command(EngineCommand::Play {
            leg,
            sound,
            tag: MUSIC_TAG,
        });
        info!(call = key, holder = ?by, "call on hold; music to the held phone");
        if let Some(c) = self.calls.get_mut(&key) {
            c.hold = Some(Hold { by, leg, stream });
        }
    }

    /// Gives the held side back to the relay (resume, or the call is ending).
    pub(super) fn end_hold(&mut self, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(h) = call.hold.take() else {
            return;
        };
        self.engine.remove_leg(h.leg);
        if let Some(Some(media)) = call.media.get(h.stream) {
            if let Err(e) = media.take_back(stream_side(h.by.other())) {
                warn!(call = key, error = %e, "resume: the relay could not take the media back");
            }
        }
        info!(call = key, "call resumed");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sdp(direction: &str) -> Sdp {
        let text = format!(
            "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP 0\r\n{direction}"
        );
        Sdp::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn sendonly_and_inactive_hold_sendrecv_resumes() {
        assert_eq!(offer_holds(&sdp("a=sendonly\r\n")), Some(true));
        assert_eq!(offer_holds(&sdp("a=inactive\r\n")), Some(true));
        assert_eq!(offer_holds(&sdp("a=sendrecv\r\n")), Some(false));
        assert_eq!(offer_holds(&sdp("")), Some(false));
        let old_style = Sdp::parse(
            b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=sendonly\r\nm=audio 4000 RTP/AVP 0\r\n",
        )
        .unwrap();
        assert_eq!(
            offer_holds(&old_style),
            Some(true),
            "session-level direction"
        );
        let rfc2543 = Sdp::parse(
            b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
        )
        .unwrap();
        assert_eq!(offer_holds(&rfc2543), Some(true), "c=0.0.0.0");
    }
}
