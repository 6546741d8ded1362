//! Call recording with real phones: 201 is listed in `[recording] extensions`; 202 (baresip
//! playing 1 kHz) calls 201 (baresip playing 440 Hz), they talk for a few seconds and 202
//! hangs up. `recordings list --json` then shows one recording with the call's parties and
//! Call-ID (the CDR's), and its file is a stereo WAV whose left channel holds the caller's
//! 1 kHz and right channel the callee's 440 Hz, each without the other (decoded and checked
//! by frequency per channel). The phones still hear each other while recorded. A call that
//! an IVR menu bridged to 201 is recorded the same way.
//! Needs baresip.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::process::Command;
use std::time::{Duration, Instant};

use harness::*;
use kentongan_media::goertzel::{goertzel, to_db};
use kentongan_media::WavClip;

const BASE: u16 = 46560;

/// The loudest 100 ms of `hz` in one channel of interleaved stereo 8 kHz samples (dB).
fn peak(samples: &[i16], channel: usize, hz: f64) -> f64 {
    let mono: Vec<i16> = samples.iter().skip(channel).step_by(2).copied().collect();
    mono.chunks(800)
        .filter(|c| c.len() == 800)
        .map(|c| to_db(goertzel(c, 8000, hz)))
        .fold(f64::NEG_INFINITY, f64::max)
}

/// 202 (1 kHz) dials `dialled`, which leads to 201 (440 Hz, recorded), talks, hangs up;
/// the recording is checked channel by channel.
fn recorded_call(dialled: &str, extra: &str) {
    need("baresip", "baresip");
    let rec_dir = std::env::temp_dir().join(format!("kentongan-rec-{}", ports(0)));
    let port = ports(BASE);
    let sounds = std::env::temp_dir()
        .join(format!("kentongan-pbx-e2e-{}-{port}", std::process::id()))
        .join("sounds");
    let pbx = Pbx::start_with(
        port,
        &format!(
            "\n[prompts]\ndirectory = \"{}\"\n\
             [recording]\nextensions = [\"201\"]\ndirectory = \"{}\"\nkeep_days = 90\n{extra}",
            sounds.display(),
            rec_dir.display()
        ),
    );
    pbx.add_user("201", "pw201");
    pbx.add_user("202", "pw202");
    let port = ports(BASE + 3000);
    let (low, high) = (pbx.dir.join("440.wav"), pbx.dir.join("1k.wav"));
    tone_wav_hz(&low, 30, 440.0);
    tone_wav_hz(&high, 30, 1000.0);
    let callee_dir = baresip_phone(&pbx, "201", "127.0.0.95", port, &low, false);
    let caller_dir = baresip_phone(&pbx, "202", "127.0.0.96", port, &high, false);
    let ctrl = format!("127.0.0.96:{}", ports(BASE + 3000));
    with_ctrl_tcp(&caller_dir, &ctrl);
    let callee = Proc::spawn(
        "baresip 201",
        Command::new("baresip")
            .arg("-f")
            .arg(&callee_dir)
            .args(["-t", "40"]),
        pbx.dir.join("baresip-201.log"),
    );
    assert_eq!(
        pbx.wait_metric("kentongan_registrations", 1, Duration::from_secs(10)),
        1,
        "201 did not register: {}",
        callee.output()
    );
    let caller = Proc::spawn(
        "baresip 202",
        Command::new("baresip").arg("-f").arg(&caller_dir).args([
            "-t",
            "40",
            "-e",
            &format!("/dial {dialled}"),
        ]),
        pbx.dir.join("baresip-202.log"),
    );
    std::thread::sleep(Duration::from_secs(if dialled == "201" { 9 } else { 14 }));
    baresip_ctrl(&ctrl, "hangup", "");

    let deadline = Instant::now() + Duration::from_secs(15);
    let list = loop {
        let out = pbx.cli(&["recordings", "list", "--json"], None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        if !list.is_empty() || Instant::now() > deadline {
            break list;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(
        list.len(),
        1,
        "{list:?}\npbx: {}\ncaller: {}",
        pbx.log(),
        caller.output()
    );
    let r = &list[0];
    assert_eq!(r["caller"], "202");
    assert_eq!(r["callee"], "201");
    let cdr = pbx.cli(&["cdr", "list", "--json"], None);
    let cdr = String::from_utf8_lossy(&cdr.stdout);
    assert!(
        cdr.contains(r["call_id"].as_str().unwrap()),
        "the recording's call id is not the CDR's: {cdr}"
    );
    assert!(r["duration_ms"].as_i64().unwrap() >= 4000, "{r}");
    assert_eq!(pbx.metric("kentongan_recordings_total"), 1);

    let wav = WavClip::parse(&std::fs::read(r["path"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(wav.channels, 2);
    let (l1k, l440) = (peak(&wav.samples, 0, 1000.0), peak(&wav.samples, 0, 440.0));
    let (r1k, r440) = (peak(&wav.samples, 1, 1000.0), peak(&wav.samples, 1, 440.0));
    assert!(
        l1k > -30.0 && l440 < l1k - 15.0,
        "left (caller): 1 kHz {l1k} dB, 440 Hz {l440} dB"
    );
    assert!(
        r440 > -30.0 && r1k < r440 - 15.0,
        "right (callee): 440 Hz {r440} dB, 1 kHz {r1k} dB"
    );

    // The phones heard each other through the recording bridge.
    drop(callee);
    drop(caller);
    let heard = |dir: &std::path::Path, hz: f64| {
        baresip_decoded(dir).map_or(f64::NEG_INFINITY, |p| peak_tones(&p, &[hz])[0])
    };
    assert!(heard(&callee_dir, 1000.0) > -30.0, "201 did not hear 202");
    assert!(heard(&caller_dir, 440.0) > -30.0, "202 did not hear 201");
    let _ = std::fs::remove_dir_all(&rec_dir);
}

#[test]
fn a_recorded_call_leaves_a_stereo_wav_with_one_side_per_channel() {
    recorded_call("201", "");
}

/// The same through an IVR menu whose caller, pressing nothing, is handed to 201.
#[test]
fn a_call_an_ivr_bridged_to_201_is_recorded_too() {
    recorded_call(
        "700",
        "[[ivr]]\nnumber = \"700\"\ngreeting = \"Hello.\"\nlanguage = \"en\"\n\
         timeout_seconds = 1\nretries = 0\ninvalid = \"201\"\n",
    );
}
