//! Hold and music on hold with real peers: baresip 201 calls 202 (a sipp phone whose RTP goes
//! to the test's sink), sending a 700 Hz tone; 201 puts the call on hold through baresip's
//! `ctrl_tcp` (its re-INVITE `sendonly`), later resumes. What reached 202 is decoded and checked
//! by frequency, 100 ms at a time: 201's tone first, then the PBX's music (the built-in tune's
//! notes, or an operator's WAV file from `[music_on_hold] directory`) with none of 201's tone,
//! then 201's tone again after the resume; the relay carries audio back to 201 again after it.
//! (baresip 1.0 stops its own decoded-audio dump when a re-INVITE restarts its player, so the
//! held side is sipp, whose audio the sink keeps.) Needs baresip and sipp.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::process::Command;
use std::time::{Duration, Instant};

use harness::*;
use kentongan_media::g711::alaw_decode;

use kentongan_pbx::media::moh::TUNE_NOTES;

const BASE: u16 = 36060;
const HOLDER_HZ: f64 = 700.0;
/// A note of the operator's own "music" in the second test.
const OPERATOR_HZ: f64 = 523.0;

/// Runs the hold/resume call; returns what reached 202 (8 kHz PCM) and the PBX.
fn hold_call(extra: &str, ip: [&str; 2], base: u16) -> (Pbx, Vec<i16>) {
    need("baresip", "baresip");
    need("sipp", "sip-tester");
    let pbx = Pbx::start_with(ports(base), extra);
    let port = ports(base + 3000);
    pbx.add_user("201", "pw201");
    pbx.add_user("202", "pw202");
    let holder_wav = pbx.dir.join("holder.wav");
    tone_wav_hz(&holder_wav, 30, HOLDER_HZ);
    let a = baresip_phone_with(&pbx, "201", ip[0], port, &holder_wav, false, "PCMA");
    let ctrl_addr = format!("{}:{}", ip[0], port + 100);
    with_ctrl_tcp(&a, &ctrl_addr);
    assert_eq!(register(&pbx, "202", "pw202", ip[1], port), 0);
    let sink = RtpSink::start(ip[1], 0);
    let mut callee = sipp_phone(
        &pbx,
        "callee_answer.xml",
        ip[1],
        port,
        &["-key", "rtp_sink", &sink.addr.port().to_string()],
    );
    let mut caller = Proc::spawn(
        "baresip 201",
        Command::new("baresip")
            .arg("-f")
            .arg(&a)
            .args(["-t", "20", "-e", "/dial 202"]),
        pbx.dir.join("baresip-201.log"),
    );
    let answered = wait_for_value(Duration::from_secs(10), 1, || {
        u64::from(sink.stats().packets > 50)
    });
    assert_eq!(answered, 1, "no call: {}\n{}", caller.output(), pbx.log());
    std::thread::sleep(Duration::from_secs(2));
    let held_at = Instant::now();
    let r = baresip_ctrl(&ctrl_addr, "hold", "");
    assert!(!r.contains("\"ok\":false"), "hold: {r}");
    std::thread::sleep(Duration::from_secs(1));
    let to_caller_held = relayed(&pbx, "audio", "to_caller");
    std::thread::sleep(Duration::from_secs(3));
    let to_caller_resume = relayed(&pbx, "audio", "to_caller");
    let r = baresip_ctrl(&ctrl_addr, "resume", "");
    assert!(!r.contains("\"ok\":false"), "resume: {r}");
    assert!(
        held_at.elapsed() < Duration::from_secs(6),
        "the test fell behind"
    );
    std::thread::sleep(Duration::from_secs(3));
    let to_caller_end = relayed(&pbx, "audio", "to_caller");
    let _ = baresip_ctrl(&ctrl_addr, "quit", "");
    caller.wait(Duration::from_secs(20));
    let log = format!(
        "201:\n{}\n202:\n{}\npbx:\n{}",
        caller.output(),
        callee.output(),
        pbx.log()
    );
    assert_eq!(callee.wait(Duration::from_secs(20)), 0, "{log}");
    assert!(pbx.log().contains("call on hold"), "{log}");
    assert!(pbx.log().contains("call resumed"), "{log}");
    // While held, nothing of 202's went to 201 (the music leg has 202's socket); after the
    // resume the relay carries 202's audio again (2.5 s: ~125 packets).
    assert!(
        to_caller_resume - to_caller_held < 10,
        "relayed to 201 on hold: {}",
        to_caller_resume - to_caller_held
    );
    assert!(
        to_caller_end - to_caller_resume > 100,
        "no audio to 201 after the resume: {log}"
    );
    let pcm: Vec<i16> = sink.payload_bytes(8).into_iter().map(alaw_decode).collect();
    (pbx, pcm)
}

/// Checks what 202 heard: the holder's tone, then `music` (dB per window: the loudest of its
/// notes) without the holder's tone, then the holder's tone again.
fn check_timeline(pcm: &[i16], music: &[f64]) {
    let holder = tone_windows(pcm, HOLDER_HZ);
    let n = holder.len().min(music.len());
    let is_music = |i: usize| music[i] > -30.0 && holder[i] < -45.0;
    let first_music = (0..n).find(|&i| is_music(i));
    let last_music = (0..n).rev().find(|&i| is_music(i));
    let (Some(first), Some(last)) = (first_music, last_music) else {
        panic!("202 never heard music: holder {holder:?}\nmusic {music:?}");
    };
    let held_windows = (first..=last).filter(|&i| is_music(i)).count();
    // About 4 s on hold: most of those windows carry music (notes decay, so not all).
    assert!(held_windows >= 20, "only {held_windows} windows of music");
    assert!(
        (first..=last).all(|i| holder[i] < -40.0),
        "201's tone reached 202 while on hold: {:?}",
        &holder[first..=last]
    );
    let before = holder[..first].iter().filter(|&&d| d > -30.0).count();
    let after = holder[last + 1..n].iter().filter(|&&d| d > -30.0).count();
    assert!(
        before >= 10,
        "202 did not hear 201 before the hold: {before}"
    );
    assert!(
        after >= 10,
        "202 did not hear 201 after the resume: {after}"
    );
}

#[test]
fn a_held_phone_hears_the_builtin_tune_and_two_way_audio_resumes() {
    let none = std::env::temp_dir().join(format!("kentongan-no-moh-{}", std::process::id()));
    let (_pbx, pcm) = hold_call(
        &format!("\n[music_on_hold]\ndirectory = \"{}\"\n", none.display()),
        ["127.0.0.30", "127.0.0.31"],
        BASE,
    );
    let notes: Vec<Vec<f64>> = TUNE_NOTES.iter().map(|f| tone_windows(&pcm, *f)).collect();
    let len = notes.iter().map(Vec::len).min().unwrap_or(0);
    let music: Vec<f64> = (0..len)
        .map(|i| notes.iter().map(|n| n[i]).fold(f64::NEG_INFINITY, f64::max))
        .collect();
    check_timeline(&pcm, &music);
}

#[test]
fn a_held_phone_hears_the_operators_music_file() {
    let dir = std::env::temp_dir().join(format!("kentongan-moh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    tone_wav_hz(&dir.join("01-c5.wav"), 3, OPERATOR_HZ);
    let (_pbx, pcm) = hold_call(
        &format!("\n[music_on_hold]\ndirectory = \"{}\"\n", dir.display()),
        ["127.0.0.32", "127.0.0.33"],
        BASE + 200,
    );
    let music = tone_windows(&pcm, OPERATOR_HZ);
    check_timeline(&pcm, &music);
    let _ = std::fs::remove_dir_all(&dir);
}
