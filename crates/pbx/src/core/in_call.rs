//! In-call feature codes (`[features] in_call = true`) in bridged calls.
//!
//! Once a call is answered, its audio stream is watched by the relay's tap
//! ([`crate::media::MediaStream::watch_dtmf`], with each side's telephone-event payload type
//! from its SDP). The tapped packets become digits here, one `DtmfReceiver` per phone, and
//! the digits go through that phone's [`Collector`]: `##` + number transfers the *other*
//! party to the number (the pressing phone is the transferor, as if it had sent REFER);
//! `*2` and a number consults the number first ([`super::consult`]); `*1` starts or stops
//! recording the call. The relay keeps forwarding every key.

use std::time::Duration;

use kentongan_rtp::dtmf::DtmfReceiver;
use kentongan_sip::sdp::Sdp;
use tracing::{debug, info, warn};

use super::calls::{CallKey, Side};
use super::{Clock, Pbx};
use crate::apps::in_call::{Collector, InCall};
use crate::media::{StreamSide, TappedEvent};

/// An event without an end packet is taken as ended after this.
const END_TIMEOUT: Duration = Duration::from_millis(300);

/// One phone's keys in one call.
#[derive(Debug)]
pub(super) struct Keys {
    rx: DtmfReceiver,
    collector: Collector,
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            rx: DtmfReceiver::new(8000, END_TIMEOUT),
            collector: Collector::default(),
        }
    }
}

/// The telephone-event payload type in the first audio section of `sdp`.
fn event_pt(sdp: &Sdp) -> Option<u8> {
    let m = sdp
        .media
        .iter()
        .find(|m| m.kind == "audio" && m.port != 0)?;
    m.codecs()
        .into_iter()
        .find(|(_, c)| c.name.eq_ignore_ascii_case("telephone-event"))
        .map(|(pt, _)| pt)
}

impl Pbx {
    /// Call `key` is answered (or has new parties): watch its audio for feature codes.
    pub(super) fn watch_in_call(&mut self, key: CallKey) {
        if !self.config.features.in_call {
            return;
        }
        // New parties: whatever the old ones had half typed is gone.
        self.forget_in_call(key);
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let caller_pt = call.offer.as_ref().and_then(event_pt);
        let callee_pt = call
            .callee_sdp
            .as_ref()
            .and_then(|b| Sdp::parse(b).ok())
            .as_ref()
            .and_then(event_pt);
        let audio = call.offer.as_ref().and_then(|o| {
            o.media
                .iter()
                .position(|m| m.kind == "audio" && m.port != 0)
        });
        if let Some(Some(stream)) = audio.and_then(|i| call.media.get(i)) {
            stream.watch_dtmf(key, [caller_pt, callee_pt]);
        }
    }

    /// The relay's tapped telephone-events, as digits through each phone's collector.
    pub(super) fn in_call_events(&mut self, clock: Clock) {
        while let Some(ev) = self.relay.poll_dtmf() {
            self.on_tapped(clock, ev);
        }
    }

    fn on_tapped(&mut self, clock: Clock, ev: TappedEvent) {
        let side = match ev.side {
            StreamSide::Caller => Side::Caller,
            StreamSide::Callee => Side::Callee,
        };
        if !self.calls.get(&ev.call).is_some_and(|c| c.answered()) {
            return;
        }
        let keys = self.in_call.entry((ev.call, side)).or_default();
        if keys
            .rx
            .handle_packet(clock.now, ev.ssrc, ev.timestamp, ev.marker, &ev.payload)
            .is_err()
        {
            return;
        }
        self.drain_keys(clock, ev.call, side);
    }

    /// A digit the media engine decoded on a side it holds (a recorded call).
    pub(super) fn in_call_digit(&mut self, clock: Clock, key: CallKey, side: Side, digit: char) {
        let asked = self
            .in_call
            .entry((key, side))
            .or_default()
            .collector
            .on_digit(clock.now, digit);
        if let Some(a) = asked {
            self.carry_out_in_call(clock, key, side, a);
        }
    }

    fn drain_keys(&mut self, clock: Clock, key: CallKey, side: Side) {
        let mut asked = Vec::new();
        if let Some(keys) = self.in_call.get_mut(&(key, side)) {
            while let Some(d) = keys.rx.poll_digit() {
                debug!(call = key, ?side, digit = %d.digit, "in-call key");
                asked.extend(keys.collector.on_digit(clock.now, d.digit));
            }
            asked.extend(keys.collector.on_timeout(clock.now));
        }
        for a in asked {
            self.carry_out_in_call(clock, key, side, a);
        }
    }

    /// Ends key presses whose packets stopped and codes whose pause came.
    pub(super) fn in_call_timeouts(&mut self, clock: Clock) {
        self.consult_timeouts(clock);
        let due: Vec<(CallKey, Side)> = self
            .in_call
            .iter()
            .filter(|(_, k)| {
                k.rx.poll_timeout().is_some_and(|t| t <= clock.now)
                    || k.collector.deadline().is_some_and(|t| t <= clock.now)
            })
            .map(|(id, _)| *id)
            .collect();
        for (key, side) in due {
            if let Some(k) = self.in_call.get_mut(&(key, side)) {
                k.rx.handle_timeout(clock.now);
            }
            self.drain_keys(clock, key, side);
        }
    }

    pub(super) fn in_call_deadline(&self) -> Option<std::time::Instant> {
        self.in_call
            .values()
            .flat_map(|k| [k.rx.poll_timeout(), k.collector.deadline()])
            .flatten()
            .chain(self.consult_deadline())
            .min()
    }

    /// Call `key` ended: its phones' collectors go.
    pub(super) fn forget_in_call(&mut self, key: CallKey) {
        self.in_call.remove(&(key, Side::Caller));
        self.in_call.remove(&(key, Side::Callee));
    }

    fn carry_out_in_call(&mut self, clock: Clock, key: CallKey, side: Side, asked: InCall) {
        match asked {
            InCall::BlindTransfer(number) => {
                info!(call = key, ?side, number = %number, "in-call code: blind transfer");
                self.transfer_by_keys(clock, key, side, &number);
            }
            InCall::AttendedTransfer(number) => {
                info!(call = key, ?side, number = %number, "in-call code: attended transfer");
                self.consult_by_keys(clock, key, side, &number);
            }
            InCall::ToggleRecording => {
                if self.config.recording.is_none() {
                    warn!(
                        call = key,
                        "*1 pressed, but there is no [recording] table to say where recordings go; add one"
                    );
                } else if self.is_recorded(key) {
                    info!(call = key, ?side, "in-call code: recording off");
                    self.stop_call_recording(key);
                } else {
                    info!(call = key, ?side, "in-call code: recording on");
                    self.record_call(key);
                }
            }
        }
    }
}
