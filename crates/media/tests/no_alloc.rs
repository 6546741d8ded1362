//! The steady-state per-frame path allocates nothing: a counting allocator watches a second
//! of frames through every per-frame API after warm-up.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;

use kentongan_media::{
    Clip, Codec, Decoder, Encoder, Frame, JitterBuffer, JitterConfig, MemberId, MemberOptions,
    Mixer, MixerConfig, OpusConfig, Player, Resampler, SampleRate, ToneGenerator, ToneSpec,
    WavWriter,
};

struct Counting;

thread_local! {
    // Per thread, so other tests' threads in this binary cannot disturb the count.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

/// One room of `codec` members through jitter → decode → mix → encode, plus the helpers.
fn run(codec: Codec, ticks: u64) -> u64 {
    let n = codec.frame_samples();
    let rate = codec.sample_rate();
    let members = 4;
    let mut mixer = Mixer::new(MixerConfig::new(rate));
    let mut encs: Vec<Encoder> = (0..members).map(|_| Encoder::new(codec).unwrap()).collect();
    let mut decs: Vec<Decoder> = (0..members).map(|_| Decoder::new(codec).unwrap()).collect();
    let mut jbs: Vec<JitterBuffer> = (0..members)
        .map(|_| JitterBuffer::new(JitterConfig::new(codec.rtp_clock_rate())))
        .collect();
    for i in 0..members {
        mixer
            .add_member(MemberId(i), MemberOptions::default())
            .unwrap();
    }
    let mut tone = ToneGenerator::new(ToneSpec::ringback(), rate.hz());
    let mut player = Player::new(Clip::from_samples(rate, vec![100; n * 3]), true);
    let mut up = Resampler::new(rate, SampleRate::Hz48000);
    let mut wav_bytes = vec![0u8; 44 + 2 * n * (ticks as usize + 200)];
    let mut wav = WavWriter::new(Cursor::new(&mut wav_bytes[..]), rate, 1).unwrap();
    let mut pcm = vec![0i16; n];
    let mut wide = vec![0i16; 960];
    let mut packet = vec![0u8; codec.max_payload_bytes()];
    let mut out = vec![0u8; codec.max_payload_bytes()];

    let mut before = 0;
    for t in 0..ticks + 100 {
        if t == 100 {
            before = allocs(); // after warm-up
        }
        let now = t * 20_000;
        for i in 0..members as usize {
            tone.fill(&mut pcm);
            if i == 1 {
                player.next_frame(&mut pcm);
            }
            let len = encs[i].encode(&pcm, &mut packet).unwrap();
            // Every 7th packet lost, so concealment runs too.
            if t % 7 != 3 {
                let ts = (t * u64::from(codec.rtp_timestamp_step())) as u32;
                jbs[i].push(now, t as u16, ts, &packet[..len]);
            }
            let buf = mixer.input_mut(MemberId(i as u64)).unwrap();
            match jbs[i].pop(now + 1) {
                Frame::Audio(p) => {
                    decs[i].decode(p, buf).unwrap();
                }
                Frame::Lost { fec: Some(next) } => {
                    decs[i].decode_fec(next, buf).unwrap();
                }
                Frame::Lost { fec: None } => {
                    decs[i].conceal(buf).unwrap();
                }
                Frame::Empty => buf.fill(0),
            }
        }
        mixer.mix();
        while mixer.poll_event().is_some() {}
        encs[0].encode(mixer.shared_mix(), &mut out).unwrap();
        for i in 0..members {
            let heard = mixer.output_samples(MemberId(i)).unwrap();
            encs[i as usize].encode(heard, &mut out).unwrap();
        }
        up.process(mixer.shared_mix(), &mut wide).unwrap();
        wav.write_samples(mixer.shared_mix()).unwrap();
    }
    allocs() - before
}

#[test]
fn per_frame_path_does_not_allocate() {
    for codec in [
        Codec::Pcmu,
        Codec::Pcma,
        Codec::G722,
        Codec::Opus(OpusConfig::voice(SampleRate::Hz16000)),
        Codec::Opus(OpusConfig::voice(SampleRate::Hz48000)),
    ] {
        assert_eq!(run(codec, 50), 0, "{codec:?} allocated per frame");
    }
}
