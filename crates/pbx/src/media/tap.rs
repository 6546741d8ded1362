//! The relay's RFC 4733 tap, for in-call feature codes (`[features] in_call`).
//!
//! A stream that is watched ([`crate::media::MediaStream::watch_dtmf`]) knows the
//! telephone-event payload type each side negotiated. The relay thread, after forwarding a
//! packet as always, copies the few bytes that identify a key press (source, timestamp,
//! event payload) into [`Tap`]'s queue and wakes the daemon, which turns them into digits
//! with `kentongan_rtp::dtmf::DtmfReceiver` (clock and state live in the core, not here).
//! An unwatched stream costs one branch per packet.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::StreamSide;

/// Queued packets beyond this are dropped (a flood must not grow memory).
const MAX_QUEUED: usize = 1024;

/// One telephone-event packet seen by the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TappedEvent {
    /// The id the core gave [`crate::media::MediaStream::watch_dtmf`].
    pub call: u64,
    /// The side that sent it.
    pub side: StreamSide,
    pub ssrc: u32,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: [u8; 4],
}

/// A stream's watch: whose events to copy.
#[derive(Debug, Clone, Copy)]
pub(super) struct Watch {
    pub(super) call: u64,
    /// Telephone-event payload type sent by the caller side, the callee side.
    pub(super) pt: [Option<u8>; 2],
}

type Notify = Arc<dyn Fn() + Send + Sync>;

/// The queue between the relay thread and the core.
#[derive(Default)]
pub(super) struct Tap {
    queue: Mutex<VecDeque<TappedEvent>>,
    notify: Mutex<Option<Notify>>,
}

impl Tap {
    pub(super) fn set_notify(&self, notify: Notify) {
        *self.notify.lock().unwrap_or_else(|e| e.into_inner()) = Some(notify);
    }

    pub(super) fn pop(&self) -> Option<TappedEvent> {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    /// Copies `packet` (RTP, sent by `side` of a stream watched as `w`) if it is that side's
    /// telephone-event.
    pub(super) fn look(&self, w: &Watch, side: StreamSide, packet: &[u8]) {
        let i = match side {
            StreamSide::Caller => 0,
            StreamSide::Callee => 1,
        };
        let Some(pt) = w.pt[i] else {
            return;
        };
        if packet.len() < 16 || packet[0] >> 6 != 2 || packet[1] & 0x7f != pt {
            return;
        }
        let mut start = 12 + 4 * usize::from(packet[0] & 0x0f);
        if packet[0] & 0x10 != 0 {
            // Header extension: 4 bytes, then its length in 32-bit words.
            let Some(words) = packet.get(start + 2..start + 4) else {
                return;
            };
            start += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
        }
        let Some(p) = packet.get(start..start + 4) else {
            return;
        };
        let ev = TappedEvent {
            call: w.call,
            side,
            ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
            timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            marker: packet[1] & 0x80 != 0,
            payload: [p[0], p[1], p[2], p[3]],
        };
        {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            if q.len() >= MAX_QUEUED {
                return;
            }
            q.push_back(ev);
        }
        if let Some(n) = self
            .notify
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            n();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_packet(pt: u8, cc: u8, ext_words: Option<u16>) -> Vec<u8> {
        let mut p = vec![
            0x80 | cc | if ext_words.is_some() { 0x10 } else { 0 },
            pt | 0x80,
        ];
        p.extend_from_slice(&7u16.to_be_bytes());
        p.extend_from_slice(&1600u32.to_be_bytes());
        p.extend_from_slice(&0xabcd_0001u32.to_be_bytes());
        for _ in 0..cc {
            p.extend_from_slice(&[0; 4]);
        }
        if let Some(w) = ext_words {
            p.extend_from_slice(&[0xbe, 0xde]);
            p.extend_from_slice(&w.to_be_bytes());
            p.extend(vec![0; 4 * usize::from(w)]);
        }
        p.extend_from_slice(&[11, 0x8a, 0x03, 0x20]);
        p
    }

    #[test]
    fn only_the_sides_event_payload_type_is_copied_past_csrcs_and_extensions() {
        let tap = Tap::default();
        let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let w2 = woken.clone();
        tap.set_notify(Arc::new(move || {
            w2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
        let w = Watch {
            call: 9,
            pt: [Some(101), None],
        };
        tap.look(&w, StreamSide::Caller, &event_packet(101, 2, Some(1)));
        let ev = tap.pop().unwrap();
        assert_eq!(
            (ev.call, ev.side, ev.timestamp, ev.ssrc, ev.marker),
            (9, StreamSide::Caller, 1600, 0xabcd_0001, true)
        );
        assert_eq!(ev.payload, [11, 0x8a, 0x03, 0x20]);
        // Audio, the other side (no event type known), a truncated packet: nothing.
        let mut audio = event_packet(101, 0, None);
        audio[1] = 8;
        tap.look(&w, StreamSide::Caller, &audio);
        tap.look(&w, StreamSide::Callee, &event_packet(101, 0, None));
        tap.look(&w, StreamSide::Caller, &event_packet(101, 0, None)[..15]);
        assert_eq!(tap.pop(), None);
        assert_eq!(woken.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
