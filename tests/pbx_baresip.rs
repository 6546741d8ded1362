//! Two real softphones (baresip) register with kentongan-pbx and call each other through it:
//! audio (PCMU from a WAV tone) and, in the second test, VP8 video from baresip's fakevideo.
//! Both directions are asserted twice: at the relay (per-direction counters in /metrics) and at
//! the phones (baresip's sndfile module dumps the audio each phone decoded).
//! Needs baresip; run by scripts/test.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::*;

fn tone(path: &Path) {
    // 20 s of a 440 Hz tone, 8 kHz mono 16-bit WAV.
    let rate = 8000u32;
    let samples: Vec<u8> = (0..rate * 20)
        .flat_map(|i| {
            let v = (8000.0
                * (2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / f64::from(rate)).sin())
                as i16;
            v.to_le_bytes()
        })
        .collect();
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + samples.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    wav.extend_from_slice(&samples);
    std::fs::write(path, wav).unwrap();
}

/// Writes a baresip config dir for `ext` listening on `ip:port`.
fn phone_dir(pbx: &Pbx, ext: &str, ip: &str, port: u16, video: bool) -> PathBuf {
    let dir = pbx.dir.join(format!("baresip-{ext}"));
    std::fs::create_dir_all(&dir).unwrap();
    let wav = pbx.dir.join("tone.wav");
    if !wav.exists() {
        tone(&wav);
    }
    let video_modules = if video {
        "module\t\t\tfakevideo.so\nmodule\t\t\tvp8.so\nvideo_source\t\tfakevideo,nil\nvideo_display\t\tfakevideo,nil\n"
    } else {
        ""
    };
    std::fs::write(
        dir.join("config"),
        format!(
            "poll_method\t\tepoll\nsip_listen\t\t{ip}:{port}\nnet_interface\t\t{ip}\n\
             audio_player\t\taubridge,x{ext}\naudio_alert\t\taubridge,x{ext}\n\
             audio_source\t\taufile,{wav}\naudio_path\t\t/usr/share/baresip\n\
             module_path\t\t/usr/lib/baresip/modules\nmodule\t\t\tg711.so\n\
             module\t\t\taufile.so\nmodule\t\t\taubridge.so\nmodule\t\t\tsndfile.so\n\
             {video_modules}module_app\t\taccount.so\nmodule_app\t\tmenu.so\n\
             snd_path\t\t{snd}\n",
            wav = wav.display(),
            snd = dir.display(),
        ),
    )
    .unwrap();
    let video_codecs = if video { ";video_codecs=VP8" } else { "" };
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:{ext}@pbx.local>;auth_pass=pw{ext};outbound=\"sip:{}\";regint=600;\
             answermode=auto;audio_codecs=PCMU{video_codecs}\n",
            pbx.sip()
        ),
    )
    .unwrap();
    dir
}

fn decoded_audio_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with("-dec.wav"))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .max()
        .unwrap_or(0)
}

fn two_phones_call(video: bool) {
    need("baresip", "baresip");
    let pbx = Pbx::start(ports(28060));
    pbx.add_user("201", "pw201");
    pbx.add_user("202", "pw202");
    let port = ports(28060 + 3000);
    let a = phone_dir(&pbx, "201", "127.0.0.5", port, video);
    let b = phone_dir(&pbx, "202", "127.0.0.6", port, video);
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
    let m = |kind: &str, dir: &str| {
        pbx.metric(&format!(
            "kentongan_relay_packets_total{{media=\"{kind}\",direction=\"{dir}\"}}"
        ))
    };
    let log = || format!("caller:\n{}\ncallee:\n{}", caller.output(), callee.output());
    // ~50 packets/s for several seconds of answered call, each way.
    assert!(m("audio", "to_callee") > 100, "{}", log());
    assert!(m("audio", "to_caller") > 100, "{}", log());
    if video {
        assert!(m("video", "to_callee") > 20, "{}", log());
        assert!(m("video", "to_caller") > 20, "{}", log());
    }
    // What each phone decoded (8 kHz, 16-bit: 16 kB per second).
    assert!(decoded_audio_bytes(&a) > 32_000, "{}", log());
    assert!(decoded_audio_bytes(&b) > 32_000, "{}", log());
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
