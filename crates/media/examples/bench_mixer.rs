//! Conference mixing throughput: rooms × members of one codec (`--codec pcmu|g722|opus8|
//! opus16|opus48`), each 20 ms tick doing what the engine will do per member — jitter-buffer
//! push/pop, decode, mix, encode (the shared mix once per room, an own mix per talker).
//! Prints members per core; run through `scripts/bench-mixer`. Single-threaded, so the
//! figure is per core.

use std::time::Instant;

use kentongan_media::{
    Codec, Decoder, Encoder, Frame, JitterBuffer, JitterConfig, MemberId, MemberOptions, MixOutput,
    Mixer, MixerConfig, OpusConfig, SampleRate,
};

struct Args {
    rooms: usize,
    members: usize,
    talkers: usize,
    seconds: u64,
}

fn arg(name: &str, default: u64) -> u64 {
    let mut it = std::env::args();
    while let Some(a) = it.next() {
        if a == name {
            if let Some(v) = it.next().and_then(|v| v.parse().ok()) {
                return v;
            }
        }
    }
    default
}

fn codec_arg() -> (String, Codec) {
    let name = std::env::args()
        .skip_while(|a| a != "--codec")
        .nth(1)
        .unwrap_or_else(|| "pcmu".to_string());
    let codec = match name.as_str() {
        "pcmu" => Codec::Pcmu,
        "pcma" => Codec::Pcma,
        "g722" => Codec::G722,
        "opus8" => Codec::Opus(OpusConfig::voice(SampleRate::Hz8000)),
        "opus16" => Codec::Opus(OpusConfig::voice(SampleRate::Hz16000)),
        "opus48" => Codec::Opus(OpusConfig::voice(SampleRate::Hz48000)),
        other => {
            eprintln!(
                "error: unknown --codec {other}\nhint: pcmu, pcma, g722, opus8, opus16 or opus48"
            );
            std::process::exit(2);
        }
    };
    (name, codec)
}

/// Packets a member sends in a loop: a second of encoded audio.
const LOOP: usize = 50;

struct Member {
    jb: JitterBuffer,
    dec: Decoder,
    enc: Encoder,
    packets: Vec<Vec<u8>>,
}

fn main() {
    let a = Args {
        rooms: arg("--rooms", 20) as usize,
        members: arg("--members", 25) as usize,
        talkers: arg("--talkers", 3) as usize,
        seconds: arg("--seconds", 10),
    };
    let (name, codec) = codec_arg();
    let n = codec.frame_samples();
    let rate = codec.sample_rate();
    let mut rooms: Vec<(Mixer, Vec<Member>, Encoder)> = Vec::new();
    let mut seed = 0x1234_5678_9abc_def0u64;
    for _ in 0..a.rooms {
        let mut mixer = Mixer::new(MixerConfig::new(rate));
        let mut members = Vec::new();
        for m in 0..a.members {
            mixer
                .add_member(MemberId(m as u64), MemberOptions::default())
                .expect("fresh ids");
            // Talkers send noise at about -20 dBov, the rest near-silence.
            let mut enc = Encoder::new(codec).expect("codec is built in");
            let packets = (0..LOOP)
                .map(|_| {
                    let pcm: Vec<i16> = (0..n)
                        .map(|_| {
                            seed ^= seed << 13;
                            seed ^= seed >> 7;
                            seed ^= seed << 17;
                            let x = (seed as i16) >> 3;
                            if m < a.talkers {
                                x
                            } else {
                                x >> 10
                            }
                        })
                        .collect();
                    let mut p = vec![0u8; codec.max_payload_bytes()];
                    let len = enc.encode(&pcm, &mut p).expect("one frame");
                    p.truncate(len);
                    p
                })
                .collect();
            members.push(Member {
                jb: JitterBuffer::new(JitterConfig::new(codec.rtp_clock_rate())),
                dec: Decoder::new(codec).expect("codec is built in"),
                enc,
                packets,
            });
        }
        rooms.push((
            mixer,
            members,
            Encoder::new(codec).expect("G.711 is built in"),
        ));
    }
    let ticks = a.seconds * 50;
    let mut out = vec![0u8; codec.max_payload_bytes()];
    let mut bytes_out = 0u64;
    let start = Instant::now();
    for t in 0..ticks {
        let now_us = t * 20_000;
        for (mixer, members, shared_enc) in &mut rooms {
            for (i, m) in members.iter_mut().enumerate() {
                let ts = (t * u64::from(codec.rtp_timestamp_step())) as u32;
                m.jb.push(now_us, t as u16, ts, &m.packets[t as usize % LOOP]);
                let id = MemberId(i as u64);
                let buf = mixer.input_mut(id).expect("member exists");
                match m.jb.pop(now_us + 1) {
                    Frame::Audio(p) => {
                        m.dec.decode(p, buf).expect("one frame");
                    }
                    Frame::Lost { .. } => {
                        m.dec.conceal(buf).expect("frame-sized buffer");
                    }
                    Frame::Empty => buf.fill(0),
                }
            }
            mixer.mix();
            bytes_out += shared_enc
                .encode(mixer.shared_mix(), &mut out)
                .expect("one frame") as u64;
            for (i, m) in members.iter_mut().enumerate() {
                if let Some(MixOutput::Own(pcm)) = mixer.output(MemberId(i as u64)) {
                    bytes_out += m.enc.encode(pcm, &mut out).expect("one frame") as u64;
                }
            }
            while mixer.poll_event().is_some() {}
        }
    }
    let cpu = start.elapsed().as_secs_f64();
    let total = (a.rooms * a.members) as f64;
    let per_core = total * a.seconds as f64 / cpu;
    println!(
        "mixer {name}: {} rooms x {} members ({} talking), {} s of audio in {:.3} s",
        a.rooms, a.members, a.talkers, a.seconds, cpu
    );
    println!(
        "  per member per 20 ms frame: {:.2} us",
        cpu * 1e6 / (total * ticks as f64)
    );
    println!("  members per core (real time): {per_core:.0}");
    println!("  (encoded {bytes_out} bytes)");
}
