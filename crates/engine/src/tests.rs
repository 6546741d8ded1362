//! The engine driven by simulated phones: each sends a tone as real RTP, and what each receives
//! is decoded and checked by frequency.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kentongan_media::goertzel::{goertzel, to_db};
use kentongan_media::ToneGenerator;
use kentongan_media::{Codec, Decoder, Encoder, OpusConfig, SampleRate, ToneSegment, ToneSpec};
use kentongan_rtp::dtmf::DtmfSender;
use kentongan_rtp::rtp::{RtpBuilder, RtpHeader, RtpPacket};

use super::*;

/// A phone: sends its tone in 20 ms RTP packets, records what it hears (8 kHz PCM).
struct Phone {
    leg: LegId,
    codec: Codec,
    pt: u8,
    tone: Option<ToneGenerator>,
    enc: Encoder,
    dec: Decoder,
    seq: u16,
    ts: u32,
    ssrc: u32,
    heard: Vec<i16>,
}

impl Phone {
    fn new(engine: &mut Engine, codec: Codec, pt: u8, freq: Option<f64>) -> Phone {
        let leg = engine.add_leg(LegSpec::new(codec, pt, Some(101))).unwrap();
        let codec = match codec {
            Codec::Opus(_) => Codec::Opus(OpusConfig::voice(SampleRate::Hz8000)),
            c => c,
        };
        let tone = freq.map(|f| {
            ToneGenerator::new(
                ToneSpec::new(vec![ToneSegment::sine(f, 60_000)], true, -12.0),
                8000,
            )
        });
        Phone {
            leg,
            codec,
            pt,
            tone,
            enc: Encoder::new(codec).unwrap(),
            dec: Decoder::new(codec).unwrap(),
            seq: 100,
            ts: 1000,
            ssrc: 0x1234_0000 + leg.0,
            heard: Vec::new(),
        }
    }

    fn packet(&mut self) -> Option<Vec<u8>> {
        let tone = self.tone.as_mut()?;
        let mut pcm = [0i16; 160];
        tone.fill(&mut pcm);
        let mut payload = [0u8; 1500];
        let n = self.enc.encode(&pcm, &mut payload).unwrap();
        let header = RtpHeader {
            marker: false,
            payload_type: self.pt,
            sequence: self.seq,
            timestamp: self.ts,
            ssrc: self.ssrc,
        };
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(self.codec.rtp_timestamp_step());
        let mut out = Vec::new();
        RtpBuilder::new(header, &payload[..n])
            .write_vec(&mut out)
            .unwrap();
        Some(out)
    }

    fn hear(&mut self, packet: &[u8]) {
        let p = RtpPacket::parse(packet).unwrap();
        assert_eq!(
            p.header.payload_type, self.pt,
            "sent with the negotiated payload type"
        );
        let mut pcm = [0i16; 160];
        let n = self.dec.decode(p.payload, &mut pcm).unwrap();
        self.heard.extend_from_slice(&pcm[..n]);
    }

    /// Power (dB) of `freq` over the last second heard.
    fn level(&self, freq: f64) -> f64 {
        let tail = &self.heard[self.heard.len().saturating_sub(8000)..];
        to_db(goertzel(tail, 8000, freq))
    }
}

/// Runs `seconds` of 20 ms frames: every phone sends, the engine ticks, phones hear.
fn run(engine: &mut Engine, t: &mut Instant, phones: &mut [Phone], seconds: u32) -> Vec<Event> {
    let mut events = Vec::new();
    let mut buf = [0u8; 1500];
    for _ in 0..seconds * 50 {
        *t += FRAME;
        for p in phones.iter_mut() {
            if let Some(pkt) = p.packet() {
                engine.handle_rtp(*t, p.leg, &pkt);
            }
        }
        engine.handle_tick(*t);
        let by_leg: HashMap<LegId, usize> =
            phones.iter().enumerate().map(|(i, p)| (p.leg, i)).collect();
        while let Some((leg, n)) = engine.poll_transmit(&mut buf) {
            if let Some(&i) = by_leg.get(&leg) {
                phones[i].hear(&buf[..n]);
            }
        }
        while let Some(e) = engine.poll_event() {
            events.push(e);
        }
    }
    events
}

const PRESENT: f64 = -30.0;
const ABSENT: f64 = -50.0;

#[test]
fn each_member_hears_the_other_two_and_never_itself() {
    let mut t = Instant::now();
    let mut engine = Engine::new(t, 7);
    let room = engine.create_room();
    let freqs = [400.0, 700.0, 1100.0];
    let mut phones: Vec<Phone> = freqs
        .iter()
        .map(|f| Phone::new(&mut engine, Codec::Pcmu, 0, Some(*f)))
        .collect();
    for p in &phones {
        engine.join(p.leg, room).unwrap();
    }
    let events = run(&mut engine, &mut t, &mut phones, 2);
    for (i, p) in phones.iter().enumerate() {
        for (j, f) in freqs.iter().enumerate() {
            let db = p.level(*f);
            if i == j {
                assert!(db < ABSENT, "member {i} hears its own {f} Hz at {db:.1} dB");
            } else {
                assert!(db > PRESENT, "member {i} misses {f} Hz ({db:.1} dB)");
            }
        }
    }
    for p in &phones {
        assert!(engine.is_talking(p.leg));
        assert!(events.contains(&Event::Talking {
            leg: p.leg,
            talking: true
        }));
    }
}

#[test]
fn an_echo_leg_hears_its_own_audio_and_nobody_elses() {
    let mut t = Instant::now();
    let mut engine = Engine::new(t, 9);
    let mut phones = vec![
        Phone::new(&mut engine, Codec::Pcmu, 0, Some(700.0)),
        Phone::new(&mut engine, Codec::Pcma, 8, Some(1100.0)),
    ];
    for p in &phones {
        engine.set_echo(p.leg, true).unwrap();
    }
    run(&mut engine, &mut t, &mut phones, 2);
    assert!(
        phones[0].level(700.0) > PRESENT,
        "{}",
        phones[0].level(700.0)
    );
    assert!(phones[0].level(1100.0) < ABSENT);
    assert!(
        phones[1].level(1100.0) > PRESENT,
        "{}",
        phones[1].level(1100.0)
    );
    assert!(phones[1].level(700.0) < ABSENT);
    // Off again: silence.
    engine.set_echo(phones[0].leg, false).unwrap();
    run(&mut engine, &mut t, &mut phones, 2);
    assert!(phones[0].level(700.0) < ABSENT);
    assert_eq!(
        engine.set_echo(LegId(999), true),
        Err(EngineError::NoLeg(LegId(999)))
    );
}

#[test]
fn a_muted_member_disappears_from_the_others_mix() {
    let mut t = Instant::now();
    let mut engine = Engine::new(t, 7);
    let room = engine.create_room();
    let mut phones = vec![
        Phone::new(&mut engine, Codec::Pcma, 8, Some(400.0)),
        Phone::new(&mut engine, Codec::Pcma, 8, Some(700.0)),
        Phone::new(&mut engine, Codec::Pcma, 8, Some(1100.0)),
    ];
    for p in &phones {
        engine.join(p.leg, room).unwrap();
    }
    run(&mut engine, &mut t, &mut phones, 1);
    engine.set_muted(phones[1].leg, true).unwrap();
    run(&mut engine, &mut t, &mut phones, 1);
    assert!(phones[0].level(700.0) < ABSENT, "muted 700 Hz still heard");
    assert!(phones[2].level(700.0) < ABSENT, "muted 700 Hz still heard");
    assert!(phones[0].level(1100.0) > PRESENT);
    assert!(
        phones[1].level(400.0) > PRESENT,
        "a muted member still hears the room"
    );
    engine.set_muted(phones[1].leg, false).unwrap();
    run(&mut engine, &mut t, &mut phones, 1);
    assert!(phones[0].level(700.0) > PRESENT, "unmuted again");
}

#[test]
fn a_pcmu_member_and_an_opus_member_hear_each_other() {
    let mut t = Instant::now();
    let mut engine = Engine::new(t, 7);
    let room = engine.create_room();
    let opus = Codec::Opus(OpusConfig::voice(SampleRate::Hz48000));
    let mut phones = vec![
        Phone::new(&mut engine, Codec::Pcmu, 0, Some(500.0)),
        Phone::new(&mut engine, opus, 111, Some(900.0)),
    ];
    for p in &phones {
        engine.join(p.leg, room).unwrap();
    }
    run(&mut engine, &mut t, &mut phones, 2);
    assert!(
        phones[0].level(900.0) > PRESENT,
        "PCMU misses Opus: {:.1}",
        phones[0].level(900.0)
    );
    assert!(
        phones[1].level(500.0) > PRESENT,
        "Opus misses PCMU: {:.1}",
        phones[1].level(500.0)
    );
    assert!(phones[0].level(500.0) < ABSENT);
    assert!(phones[1].level(900.0) < ABSENT);
}

#[test]
fn rfc4733_digits_arrive_once_each() {
    let mut t = Instant::now();
    let mut engine = Engine::new(t, 7);
    let leg = engine
        .add_leg(LegSpec::new(Codec::Pcmu, 0, Some(101)))
        .unwrap();
    let sender = DtmfSender {
        payload_type: 101,
        clock_rate: 8000,
        interval: FRAME,
        volume: 10,
    };
    let mut got = Vec::new();
    let mut seq = 1;
    for (k, digit) in "1234#".chars().enumerate() {
        let packets = sender
            .packets(digit, Duration::from_millis(100), 9, seq, 8000 * k as u32)
            .unwrap();
        seq = seq.wrapping_add(packets.len() as u16);
        for p in packets {
            let mut bytes = Vec::new();
            p.write(&mut bytes).unwrap();
            t += FRAME;
            engine.handle_rtp(t, leg, &bytes);
            engine.handle_tick(t);
            while engine.poll_transmit(&mut [0; 1500]).is_some() {}
            while let Some(e) = engine.poll_event() {
                if let Event::Dtmf { digit, .. } = e {
                    got.push(digit);
                }
            }
        }
    }
    assert_eq!(got.into_iter().collect::<String>(), "1234#");
}

#[test]
fn a_played_tone_is_heard_and_reports_its_end() {
    let mut t = Instant::now();
    let mut engine = Engine::new(t, 7);
    let mut phone = Phone::new(&mut engine, Codec::Pcmu, 0, None);
    let short = ToneSpec::new(vec![ToneSegment::sine(1000.0, 400)], false, -10.0);
    engine.play(phone.leg, Sound::Tone(short), 42).unwrap();
    engine
        .play(phone.leg, Sound::Silence(Duration::from_millis(200)), 43)
        .unwrap();
    let mut phones = [phone];
    let events = run(&mut engine, &mut t, &mut phones, 1);
    phone = phones.into_iter().next().unwrap();
    let first = &phone.heard[..3200];
    assert!(to_db(goertzel(first, 8000, 1000.0)) > -20.0);
    let after = &phone.heard[4000..];
    assert!(to_db(goertzel(after, 8000, 1000.0)) < ABSENT);
    let played: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::Played { .. }))
        .collect();
    assert_eq!(
        played,
        [
            &Event::Played {
                leg: phone.leg,
                tag: 42
            },
            &Event::Played {
                leg: phone.leg,
                tag: 43
            }
        ]
    );
}

#[test]
fn outgoing_streams_are_continuous_and_a_stalled_driver_does_not_burst() {
    let t0 = Instant::now();
    let mut engine = Engine::new(t0, 7);
    let leg = engine.add_leg(LegSpec::new(Codec::Pcma, 8, None)).unwrap();
    let mut buf = [0u8; 1500];
    let mut seqs = Vec::new();
    let mut tss = Vec::new();
    let mut t = t0;
    for _ in 0..3 {
        t += FRAME;
        engine.handle_tick(t);
        let (l, n) = engine.poll_transmit(&mut buf).unwrap();
        assert_eq!(l, leg);
        let p = RtpPacket::parse(&buf[..n]).unwrap();
        assert_eq!(p.header.payload_type, 8);
        assert_eq!(p.header.ssrc, engine.legs[&leg].ssrc());
        assert_eq!(
            p.header.marker,
            seqs.is_empty(),
            "marker on the first packet only"
        );
        seqs.push(p.header.sequence);
        tss.push(p.header.timestamp);
    }
    assert_eq!(seqs[1], seqs[0].wrapping_add(1));
    assert_eq!(tss[2], tss[1].wrapping_add(160));
    // Two frames late: both are sent. A second late: one frame, then on time again.
    t += FRAME * 2;
    engine.handle_tick(t);
    let mut n = 0;
    while engine.poll_transmit(&mut buf).is_some() {
        n += 1;
    }
    assert_eq!(n, 2);
    t += Duration::from_secs(1);
    engine.handle_tick(t);
    let mut n = 0;
    while engine.poll_transmit(&mut buf).is_some() {
        n += 1;
    }
    assert_eq!(n, 5, "at most five frames of catch-up");
    assert_eq!(engine.poll_timeout(), t + FRAME);
}

#[test]
fn garbage_and_unnegotiated_payload_types_change_nothing() {
    let t = Instant::now();
    let mut engine = Engine::new(t, 7);
    let leg = engine
        .add_leg(LegSpec::new(Codec::Pcmu, 0, Some(101)))
        .unwrap();
    engine.handle_rtp(t, leg, b"");
    engine.handle_rtp(t, leg, &[0xff; 40]);
    let mut other = Vec::new();
    RtpBuilder::new(
        RtpHeader {
            payload_type: 18,
            ..RtpHeader::default()
        },
        &[0; 20],
    )
    .write_vec(&mut other)
    .unwrap();
    engine.handle_rtp(t, leg, &other);
    engine.handle_rtp(t, LegId(999), &other);
    assert_eq!(engine.legs[&leg].dropped, 3);
    assert!(engine.poll_event().is_none());
    assert_eq!(
        engine.remove_leg(LegId(999)),
        Err(EngineError::NoLeg(LegId(999)))
    );
}

fn recorded(events: &[Event]) -> Vec<(LegId, Vec<i16>, RecordEnd)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Recorded { leg, samples, end } => Some((*leg, samples.clone(), *end)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_recording_holds_what_the_leg_sent_and_ends_at_its_limit() {
    let mut t = Instant::now();
    let mut engine = Engine::new(t, 3);
    let mut phones = vec![Phone::new(&mut engine, Codec::Pcmu, 0, Some(1000.0))];
    let spec = RecordSpec {
        max: Duration::from_secs(2),
        silence: Duration::from_secs(5),
    };
    engine.record(phones[0].leg, spec).unwrap();
    let events = run(&mut engine, &mut t, &mut phones, 3);
    let rec = recorded(&events);
    assert_eq!(rec.len(), 1, "one recording, ended once");
    let (leg, samples, end) = &rec[0];
    assert_eq!((*leg, *end), (phones[0].leg, RecordEnd::Limit));
    assert_eq!(samples.len(), 2 * 8000, "exactly the limit");
    let tail = &samples[samples.len() - 8000..];
    assert!(to_db(goertzel(tail, 8000, 1000.0)) > PRESENT);
    assert!(to_db(goertzel(tail, 8000, 700.0)) < ABSENT);
}

#[test]
fn silence_ends_a_recording_without_its_silent_tail_and_stop_hands_it_out() {
    let mut t = Instant::now();
    let mut engine = Engine::new(t, 5);
    // A phone that sends one second of tone, then nothing.
    let mut talker = vec![Phone::new(&mut engine, Codec::Pcma, 8, Some(1000.0))];
    let spec = RecordSpec {
        max: Duration::from_secs(60),
        silence: Duration::from_secs(2),
    };
    engine.record(talker[0].leg, spec).unwrap();
    let mut events = run(&mut engine, &mut t, &mut talker, 1);
    talker[0].tone = None;
    events.extend(run(&mut engine, &mut t, &mut talker, 3));
    let rec = recorded(&events);
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].2, RecordEnd::Silence);
    // The jitter buffer holds a few frames back, so about a second of tone is kept.
    let secs = rec[0].1.len() as f64 / 8000.0;
    assert!((0.8..=1.2).contains(&secs), "kept {secs} s");

    // Stopped, or the leg removed mid-message: what was said is handed out, once.
    let mut phones = vec![Phone::new(&mut engine, Codec::Pcmu, 0, Some(1000.0))];
    engine.record(phones[0].leg, spec).unwrap();
    run(&mut engine, &mut t, &mut phones, 1);
    engine.stop_recording(phones[0].leg).unwrap();
    engine.stop_recording(phones[0].leg).unwrap();
    let rec = recorded(&run(&mut engine, &mut t, &mut phones, 1));
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].2, RecordEnd::Stopped);
    assert!(rec[0].1.len() >= 7000, "{}", rec[0].1.len());
    engine.record(phones[0].leg, spec).unwrap();
    run(&mut engine, &mut t, &mut phones, 1);
    engine.remove_leg(phones[0].leg).unwrap();
    let mut left = Vec::new();
    while let Some(e) = engine.poll_event() {
        left.push(e);
    }
    assert_eq!(recorded(&left).len(), 1);
    assert_eq!(
        engine.record(LegId(999), spec),
        Err(EngineError::NoLeg(LegId(999)))
    );
}

#[test]
fn a_looped_clip_plays_past_its_end_until_stopped() {
    let mut t = Instant::now();
    let mut engine = Engine::new(t, 7);
    let phone = Phone::new(&mut engine, Codec::Pcma, 8, None);
    // 100 ms of 600 Hz: heard for a whole second only if it starts over.
    let samples: Vec<i16> = (0..800)
        .map(|i| {
            (8000.0 * (2.0 * std::f64::consts::PI * 600.0 * f64::from(i) / 8000.0).sin()) as i16
        })
        .collect();
    let clip = Clip::from_samples(SampleRate::Hz8000, samples);
    engine.play(phone.leg, Sound::Loop(clip), 9).unwrap();
    let mut phones = [phone];
    let events = run(&mut engine, &mut t, &mut phones, 1);
    assert!(events.is_empty(), "{events:?}");
    let late = &phones[0].heard[6000..8000];
    assert!(to_db(goertzel(late, 8000, 600.0)) > -25.0);
    engine.stop_playing(phones[0].leg).unwrap();
    let events = run(&mut engine, &mut t, &mut phones, 1);
    assert_eq!(
        events,
        [Event::Played {
            leg: phones[0].leg,
            tag: 9
        }]
    );
    let after = &phones[0].heard[phones[0].heard.len() - 4000..];
    assert!(to_db(goertzel(after, 8000, 600.0)) < ABSENT);
}
