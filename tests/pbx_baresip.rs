//! Two real softphones (baresip) register with kentongan-pbx and call each other through it:
//! audio (PCMU from a WAV tone) and, in the second test, VP8 video from baresip's fakevideo.
//! Both directions are asserted twice: at the relay (per-direction counters in /metrics) and at
//! the phones (baresip's sndfile module dumps the audio each phone decoded).
//! Needs baresip; run by scripts/test.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use harness::*;

fn two_phones_call(video: bool) {
    need("baresip", "baresip");
    let pbx = Pbx::start(ports(28060));
    pbx.add_user("201", "pw201");
    pbx.add_user("202", "pw202");
    let port = ports(28060 + 3000);
    let wav = pbx.dir.join("tone.wav");
    tone_wav(&wav, 20);
    let a = baresip_phone(&pbx, "201", "127.0.0.5", port, &wav, video);
    let b = baresip_phone(&pbx, "202", "127.0.0.6", port, &wav, video);
    let callee = Proc::spawn(
        "baresip 202",
        Command::new("baresip").arg("-f").arg(&b).args(["-t", "20"]),
        pbx.dir.join("baresip-202.log"),
    );
    assert_eq!(
        pbx.wait_metric("kentongan_registrations", 1, Duration::from_secs(10)),
        1,
        "202 did not register: {}",
        callee.output()
    );
    let mut caller = Proc::spawn(
        "baresip 201",
        Command::new("baresip")
            .arg("-f")
            .arg(&a)
            .args(["-t", "8", "-e", "/dial 202"]),
        pbx.dir.join("baresip-201.log"),
    );
    caller.wait(Duration::from_secs(20));
    let m = |kind: &str, dir: &str| relayed(&pbx, kind, dir);
    let log = || format!("caller:\n{}\ncallee:\n{}", caller.output(), callee.output());
    // ~50 packets/s for several seconds of answered call, each way.
    assert!(m("audio", "to_callee") > 100, "{}", log());
    assert!(m("audio", "to_caller") > 100, "{}", log());
    if video {
        assert!(m("video", "to_callee") > 20, "{}", log());
        assert!(m("video", "to_caller") > 20, "{}", log());
    }
    // What each phone decoded (8 kHz, 16-bit: 16 kB per second).
    let decoded = |dir: &Path| {
        baresip_decoded(dir)
            .and_then(|p| p.metadata().ok())
            .map_or(0, |m| m.len())
    };
    assert!(decoded(&a) > 32_000, "{}", log());
    assert!(decoded(&b) > 32_000, "{}", log());
    let cdr = pbx.cli(&["cdr", "list", "--json"], None);
    assert!(String::from_utf8_lossy(&cdr.stdout).contains("\"answered\""));
}

#[test]
fn baresip_audio_call_both_ways_through_relay() {
    two_phones_call(false);
}

#[test]
fn baresip_video_call_both_ways_through_relay() {
    two_phones_call(true);
}
