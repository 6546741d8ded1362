//! Call recording (`[recording] extensions`): a call to or from a listed extension is, once
//! answered, taken into the media engine for its audio: both sides of its relayed audio
//! stream are lent to the engine (the phones keep their ports, as for music on hold), joined
//! in a private two-member room, and what each side sends is recorded. When the call ends
//! the two recordings (the engine hands them out as the legs are removed) become one stereo
//! WAV, caller left and callee right, written atomically into `[recording] directory`; its
//! row (the CDR's call id, time and parties) is committed in the batch after the file is in
//! place.
//!
//! Both legs record in the same engine frames, so the channels are aligned sample for sample.
//! A recorded call gets no music on hold (its sides are already the engine's).

use std::io::Cursor;

use kentongan_engine::{LegId, RecordSpec, RoomId};
use kentongan_media::{SampleRate, WavWriter};
use kentongan_sip::sdp::Sdp;
use tracing::{info, warn};

use super::answered::leg_spec;
use super::calls::CallKey;
use super::{Clock, Pbx};
use crate::media::{EngineCommand, StreamSide};
use crate::store::{write_recording, RecordingRow, Write};

/// The longest call recorded; longer calls keep their first four hours.
const MAX: std::time::Duration = std::time::Duration::from_secs(4 * 3600);

/// A call being recorded.
#[derive(Debug)]
pub(super) struct CallRecording {
    caller_leg: LegId,
    callee_leg: LegId,
    room: RoomId,
    stream: usize,
    /// Halves the engine handed out at the four-hour limit, kept for the call's end.
    limited: Vec<(LegId, Vec<i16>)>,
}

/// Which recording two halves belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum RecKey {
    Call(CallKey),
    /// An IVR-bridged call, by its caller's leg.
    Bridge(LegId),
}

/// An IVR caller bridged to a listed extension (or a listed caller), being recorded: both
/// legs are the engine's already.
#[derive(Debug)]
pub(super) struct BridgeRecording {
    callee_leg: LegId,
    row: RecordingRow,
}

/// What is known of a recording whose call ended, until both halves arrive.
#[derive(Debug)]
pub(super) struct Finishing {
    row: RecordingRow,
    caller_leg: LegId,
    caller: Option<Vec<i16>>,
    callee: Option<Vec<i16>>,
}

/// `<start ms>-<caller>-<callee>`: a number from a trunk (`+62…`, or a caller ID of any
/// shape) keeps its letters and digits, the rest becomes `_` (the name is not parsed back;
/// the row holds the parties).
fn file_name(row: &RecordingRow) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(64)
            .collect()
    };
    format!(
        "{}-{}-{}",
        row.start_ms,
        clean(&row.caller),
        clean(&row.callee)
    )
}

/// Caller left, callee right; the shorter side padded with silence.
fn stereo_wav(left: &[i16], right: &[i16]) -> Result<Vec<u8>, kentongan_media::WavError> {
    let n = left.len().max(right.len());
    let mut frames = Vec::with_capacity(n * 2);
    for i in 0..n {
        frames.push(left.get(i).copied().unwrap_or(0));
        frames.push(right.get(i).copied().unwrap_or(0));
    }
    let mut w = WavWriter::new(Cursor::new(Vec::new()), SampleRate::Hz8000, 2)?;
    w.write_samples(&frames)?;
    Ok(w.finish()?.into_inner())
}

impl Pbx {
    /// Starts recording call `key` (just answered) when `[recording]` lists a party.
    pub(super) fn start_call_recording(&mut self, key: CallKey) {
        let Some(rec) = self.config.recording.as_ref() else {
            return;
        };
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let listed = |e: &str| rec.extensions.iter().any(|x| x == e);
        if !(listed(&call.caller.0) || listed(&call.callee.0)) {
            return;
        }
        self.record_call(key);
    }

    /// Records call `key` from now on, whoever its parties are (`*1` in a call, or a
    /// `[recording]` extension's call). Needs the `[recording]` table for the directory.
    pub(super) fn record_call(&mut self, key: CallKey) {
        if self.config.recording.is_none() || self.is_recorded(key) {
            return;
        }
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let Some((stream, media)) = call
            .offer
            .as_ref()
            .and_then(|o| {
                o.media
                    .iter()
                    .position(|m| m.kind == "audio" && m.port != 0)
            })
            .and_then(|i| call.media.get(i)?.as_ref().map(|s| (i, s)))
        else {
            return;
        };
        // Both directions carry what the answer chose.
        let spec = call
            .callee_sdp
            .as_ref()
            .and_then(|b| Sdp::parse(b).ok())
            .as_ref()
            .and_then(leg_spec);
        let Some(spec) = spec else {
            warn!(
                call = key,
                "recording: no codec the engine decodes in the answer; not recorded"
            );
            return;
        };
        let mut legs = Vec::new();
        for side in [StreamSide::Caller, StreamSide::Callee] {
            let leg = media
                .lend(side)
                .and_then(|lent| self.engine.add_leg(spec, lent.rtp, lent.rtcp, lent.remote));
            match leg {
                Ok(l) => legs.push(l),
                Err(e) => {
                    warn!(call = key, error = %e, "recording: the call's media could not be taken over; not recorded");
                    for l in legs {
                        self.engine.remove_leg(l);
                    }
                    let _ = media.take_back(StreamSide::Caller);
                    let _ = media.take_back(StreamSide::Callee);
                    return;
                }
            }
        }
        let (caller_leg, callee_leg) = (legs[0], legs[1]);
        let room = self.engine.create_room();
        let spec = RecordSpec {
            max: MAX,
            silence: MAX,
        };
        for leg in [caller_leg, callee_leg] {
            self.engine.command(EngineCommand::Join { leg, room });
            self.engine.command(EngineCommand::Record { leg, spec });
        }
        info!(call = key, caller = %call.caller, callee = %call.callee, "call recorded");
        self.call_recordings.insert(
            key,
            CallRecording {
                caller_leg,
                callee_leg,
                room,
                stream,
                limited: Vec::new(),
            },
        );
    }

    /// A key pressed on a recorded call's leg (the relay does not see those sides while the
    /// engine records): the in-call codes get it. False: not a recording's leg.
    pub(super) fn recorded_key(&mut self, clock: super::Clock, leg: LegId, digit: char) -> bool {
        let Some((key, side)) = self.call_recordings.iter().find_map(|(k, r)| {
            if r.caller_leg == leg {
                Some((*k, super::calls::Side::Caller))
            } else if r.callee_leg == leg {
                Some((*k, super::calls::Side::Callee))
            } else {
                None
            }
        }) else {
            return false;
        };
        if self.config.features.in_call {
            self.in_call_digit(clock, key, side, digit);
        }
        true
    }

    pub(super) fn is_recorded(&self, key: CallKey) -> bool {
        self.call_recordings.contains_key(&key)
    }

    /// Call `key` is ending: the engine gives the sides back and hands out the recordings.
    pub(super) fn stop_call_recording(&mut self, key: CallKey) {
        let Some(r) = self.call_recordings.remove(&key) else {
            return;
        };
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let row = RecordingRow {
            id: 0,
            call_id: call.call_id.clone(),
            caller: call.caller.0.clone(),
            callee: call.callee.0.clone(),
            start_ms: call.answer_ms.unwrap_or(call.start_ms),
            duration_ms: 0,
            path: String::new(),
            trunk: None,
            number: None,
        };
        self.engine.remove_leg(r.caller_leg);
        self.engine.remove_leg(r.callee_leg);
        self.engine.command(EngineCommand::RemoveRoom(r.room));
        if let Some(Some(media)) = call.media.get(r.stream) {
            let _ = media.take_back(StreamSide::Caller);
            let _ = media.take_back(StreamSide::Callee);
        }
        let f = Finishing {
            row,
            caller_leg: r.caller_leg,
            caller: None,
            callee: None,
        };
        let key = RecKey::Call(key);
        self.finishing.insert(r.caller_leg, key);
        self.finishing.insert(r.callee_leg, key);
        self.finishing_recs.insert(key, f);
        // A half that reached the limit is not handed out again when its leg goes.
        for (leg, samples) in r.limited {
            self.on_call_recorded(leg, samples);
        }
    }

    /// A recording the engine handed out: `None` if it was half of a call recording, else
    /// the samples back (a voicemail message).
    pub(super) fn take_call_recording(
        &mut self,
        leg: LegId,
        samples: Vec<i16>,
    ) -> Option<Vec<i16>> {
        let ours = self.finishing.contains_key(&leg)
            || self.bridge_recordings.contains_key(&leg)
            || self.bridge_recordings.values().any(|b| b.callee_leg == leg)
            || self
                .call_recordings
                .values()
                .any(|r| r.caller_leg == leg || r.callee_leg == leg);
        if !ours {
            return Some(samples);
        }
        self.on_call_recorded(leg, samples);
        None
    }

    fn on_call_recorded(&mut self, leg: LegId, samples: Vec<i16>) -> bool {
        let Some(key) = self.finishing.remove(&leg) else {
            // The four-hour limit during the call: kept for its end, the rest is not recorded.
            let rec = self
                .call_recordings
                .values_mut()
                .find(|r| r.caller_leg == leg || r.callee_leg == leg);
            return match rec {
                Some(r) => {
                    r.limited.push((leg, samples));
                    true
                }
                None => false,
            };
        };
        let Some(f) = self.finishing_recs.get_mut(&key) else {
            return true;
        };
        if leg == f.caller_leg {
            f.caller = Some(samples);
        } else {
            f.callee = Some(samples);
        }
        if f.caller.is_none() || f.callee.is_none() {
            return true;
        }
        let Some(f) = self.finishing_recs.remove(&key) else {
            return true;
        };
        let (left, right) = (f.caller.unwrap_or_default(), f.callee.unwrap_or_default());
        let Some(dir) = self.config.recording.as_ref().map(|r| r.directory.clone()) else {
            return true;
        };
        let mut row = f.row;
        row.duration_ms = (left.len().max(right.len()) / 8) as i64;
        let name = file_name(&row);
        let written = stereo_wav(&left, &right)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|wav| write_recording(&dir, &name, &wav));
        match written {
            Ok(path) => {
                info!(call_id = %row.call_id, path = %path.display(), seconds = row.duration_ms / 1000, "call recording stored");
                row.path = path.display().to_string();
                self.metrics
                    .recordings_total
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.writes.push(Write::Recording(row));
            }
            Err(e) => {
                warn!(call_id = %row.call_id, dir = %dir.display(), error = %e, "call recording not stored (check that the directory is writable and has space)")
            }
        }
        true
    }

    /// An IVR caller on `caller_leg` was bridged to `callee` on `callee_leg`: recorded when
    /// `[recording]` lists either party.
    pub(super) fn start_bridge_recording(
        &mut self,
        caller_leg: LegId,
        callee_leg: LegId,
        row: RecordingRow,
    ) {
        let Some(rec) = self.config.recording.as_ref() else {
            return;
        };
        if !rec
            .extensions
            .iter()
            .any(|x| *x == row.caller || *x == row.callee)
        {
            return;
        }
        let spec = RecordSpec {
            max: MAX,
            silence: MAX,
        };
        for leg in [caller_leg, callee_leg] {
            self.engine.command(EngineCommand::Record { leg, spec });
        }
        info!(caller = %row.caller, callee = %row.callee, "IVR call recorded");
        self.bridge_recordings
            .insert(caller_leg, BridgeRecording { callee_leg, row });
    }

    /// One side of an IVR-bridged call ended (`a` and `b` its legs): its recording, if any,
    /// is finished when the engine hands out both halves.
    pub(super) fn stop_bridge_recording(&mut self, a: LegId, b: LegId) {
        let (caller_leg, r) = match (
            self.bridge_recordings.remove(&a),
            self.bridge_recordings.remove(&b),
        ) {
            (Some(r), _) => (a, r),
            (None, Some(r)) => (b, r),
            (None, None) => return,
        };
        let key = RecKey::Bridge(caller_leg);
        self.finishing.insert(caller_leg, key);
        self.finishing.insert(r.callee_leg, key);
        self.finishing_recs.insert(
            key,
            Finishing {
                row: r.row,
                caller_leg,
                caller: None,
                callee: None,
            },
        );
    }

    /// Deletes recordings older than `keep_days` (rows first, then files), and what a crash
    /// left (temporary files, files without a row). Run at start and daily.
    pub(super) fn expire_recordings(&mut self, clock: Clock) {
        let Some(rec) = self.config.recording.as_ref() else {
            return;
        };
        let before = clock.unix_ms - i64::from(rec.keep_days) * 86_400_000;
        match self.store.expire_recordings(before, &rec.directory) {
            Ok((0, 0)) => {}
            Ok((rows, files)) => {
                info!(rows, files, dir = %rec.directory.display(), "old call recordings deleted")
            }
            Err(e) => {
                warn!(error = %e, dir = %rec.directory.display(), "old call recordings not deleted")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_name_from_outside_numbers_is_a_recording_name() {
        let row = crate::store::RecordingRow {
            id: 0,
            call_id: "x".into(),
            caller: "+6281100011".into(),
            callee: "../201".into(),
            start_ms: 17,
            duration_ms: 0,
            path: String::new(),
            trunk: None,
            number: None,
        };
        let name = super::file_name(&row);
        assert_eq!(name, "17-_6281100011-___201");
        let dir = tempfile::tempdir().unwrap();
        assert!(crate::store::write_recording(dir.path(), &name, b"RIFF").is_ok());
    }

    #[test]
    fn stereo_is_interleaved_left_right_and_padded() {
        let bytes = super::stereo_wav(&[1, 2, 3], &[10]).unwrap();
        let wav = kentongan_media::WavClip::parse(&bytes).unwrap();
        assert_eq!(wav.channels, 2);
        assert_eq!(wav.samples, [1, 10, 2, 0, 3, 0]);
    }
}
